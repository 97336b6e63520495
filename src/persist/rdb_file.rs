//! Redis's RDB file: the container a full sync sends to a Redis replica (`SYNC`/`PSYNC`) and
//! `redis-cli --rdb` saves. Our own snapshot wraps the same entries in checksummed records
//! ([`super::snapshot`]); this is the plain form every Redis 7.0+ loads:
//!
//! `REDIS0010`, auxiliary fields (`0xFA` name value), the function libraries (`0xF5` code, as
//! FUNCTION DUMP holds them), then per non-empty db `0xFE` db, `0xFB` keys expires, and the
//! entries (the snapshot's, byte for byte), `0xFF`, and the CRC-64 of everything before it.

use super::snapshot::{Image, encode_entry};
use crate::store::rdb::{
    self, OPCODE_AUX, OPCODE_EOF, OPCODE_RESIZEDB, OPCODE_SELECTDB, RDB_VERSION,
};
/// A FUNCTION DUMP payload ends with the RDB version (2 bytes) and a CRC-64 (8 bytes).
const DUMP_TRAILER: usize = 10;

/// The RDB file of `image`, with `aux` as its auxiliary fields (after `redis-ver`,
/// `redis-bits`, `ctime`).
pub fn encode(image: &Image, aux: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + image.keys() * 32);
    out.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
    let ctime = (crate::commands::now_ms() / 1000).to_string();
    let fixed = [
        ("redis-ver", crate::REDIS_VERSION.to_string()),
        ("redis-bits", "64".to_string()),
        ("ctime", ctime),
    ];
    for (name, value) in fixed
        .iter()
        .map(|(n, v)| (*n, v))
        .chain(aux.iter().map(|(n, v)| (*n, v)))
    {
        out.push(OPCODE_AUX);
        rdb::write_string(&mut out, name.as_bytes());
        rdb::write_string(&mut out, value.as_bytes());
    }
    if let Some(f) = &image.functions
        && f.len() >= DUMP_TRAILER
    {
        out.extend_from_slice(&f[..f.len() - DUMP_TRAILER]);
    }
    let mut scratch = Vec::new();
    for (db, items) in image.dbs.iter().enumerate() {
        if items.is_empty() {
            continue;
        }
        out.push(OPCODE_SELECTDB);
        rdb::write_len(&mut out, db as u64);
        out.push(OPCODE_RESIZEDB);
        rdb::write_len(&mut out, items.len() as u64);
        let expires = items.iter().filter(|i| i.expire_at_ms.is_some()).count();
        rdb::write_len(&mut out, expires as u64);
        for item in items {
            encode_entry(&mut out, item, &mut scratch);
        }
    }
    out.push(OPCODE_EOF);
    let crc = rdb::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::snapshot::Item;
    use crate::store::{Sds, Value};

    #[test]
    fn an_empty_image_is_header_aux_eof_and_checksum() {
        let image = Image {
            dbs: vec![Vec::new(), Vec::new()],
            position: None,
            pins: Vec::new(),
            functions: None,
        };
        let f = encode(&image, &[]);
        assert!(f.starts_with(b"REDIS0010\xfa\x09redis-ver"));
        let body = &f[..f.len() - 8];
        assert_eq!(body.last(), Some(&OPCODE_EOF));
        let crc = u64::from_le_bytes(f[f.len() - 8..].try_into().unwrap());
        assert_eq!(crc, rdb::crc64(0, body));
        // Aux fields and then EOF: no SELECTDB (nor anything else) between them. (Walked
        // field by field: a byte of `ctime` or of the checksum may equal an opcode.)
        let mut r = rdb::Reader::new(&body[b"REDIS0010".len()..]);
        let mut aux = 0;
        loop {
            match r.u8().unwrap() {
                OPCODE_AUX => {
                    r.string().unwrap();
                    r.string().unwrap();
                    aux += 1;
                }
                op => {
                    assert_eq!(op, OPCODE_EOF);
                    break;
                }
            }
        }
        assert!(aux > 0);
        assert!(r.is_empty());
    }

    #[test]
    fn a_db_section_names_its_db_and_counts() {
        let item = |k: &str, ttl: Option<i64>| Item {
            key: Sds::from_vec(k.as_bytes().to_vec()),
            value: Value::from_bytes(b"v"),
            expire_at_ms: ttl,
        };
        let image = Image {
            dbs: vec![Vec::new(), vec![item("a", None), item("b", Some(1 << 42))]],
            position: None,
            pins: Vec::new(),
            functions: None,
        };
        let f = encode(&image, &[("repl-offset", "7".into())]);
        let at = f
            .windows(2)
            .position(|w| w == [OPCODE_SELECTDB, 1])
            .expect("db 1 selected");
        assert_eq!(&f[at + 2..at + 5], &[OPCODE_RESIZEDB, 2, 1]);
        // The entries follow as the snapshot encodes them: `a` plain, `b` after its expiry.
        assert_eq!(&f[at + 5..at + 9], &[0, 1, b'a', 1]);
        assert_eq!(f[at + 10], 0xFC);
    }
}
