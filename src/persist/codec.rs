//! One value in Redis's RDB object encoding: the type byte and payload that follow a key in an
//! RDB file (and make up a DUMP payload before its version and checksum).
//!
//! Interim: this writes the plain RDB types every Redis version loads (`STRING` 0, `LIST` 1,
//! `SET` 2, `ZSET_2` 5, `HASH` 4; strings length-prefixed, integers as RDB's int encodings) and
//! reads the same. It is the only place the snapshot and the log's rewrite encode values:
//! [`encode_value`] and [`decode_value`] are the two functions to swap for `store::rdb` once that
//! lands (which also reads Redis's compact listpack/intset/quicklist encodings).

use crate::store::hash::{Hash, Limits as HashLimits};
use crate::store::list::List;
use crate::store::set::Set;
use crate::store::zset::{ZLimits, ZSet};
use crate::store::{Sds, Value};

use super::format::{Cursor, Short};

pub const RDB_TYPE_STRING: u8 = 0;
pub const RDB_TYPE_LIST: u8 = 1;
pub const RDB_TYPE_SET: u8 = 2;
pub const RDB_TYPE_HASH: u8 = 4;
pub const RDB_TYPE_ZSET_2: u8 = 5;

const RDB_6BITLEN: u8 = 0;
const RDB_14BITLEN: u8 = 1;
const RDB_32BITLEN: u8 = 0x80;
const RDB_64BITLEN: u8 = 0x81;
const RDB_ENCVAL: u8 = 3;
const RDB_ENC_INT8: u8 = 0;
const RDB_ENC_INT16: u8 = 1;
const RDB_ENC_INT32: u8 = 2;

/// The encodings a decoded value is built in (the node's `*-max-*` settings).
#[derive(Clone, Copy)]
pub struct Limits {
    pub hash: HashLimits,
    pub set_max_intset_entries: usize,
    pub zset: ZLimits,
    pub list_fill: i32,
}

/// RDB's length encoding.
pub fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push((RDB_6BITLEN << 6) | len as u8);
    } else if len < 1 << 14 {
        out.push((RDB_14BITLEN << 6) | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(RDB_32BITLEN);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(RDB_64BITLEN);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// A length, or `Err(encoding)` for a specially encoded string.
fn get_len(c: &mut Cursor) -> Result<Result<u64, u8>, Short> {
    let b = c.u8()?;
    Ok(match b >> 6 {
        0 => Ok((b & 0x3f) as u64),
        1 => Ok((((b & 0x3f) as u64) << 8) | c.u8()? as u64),
        2 if b == RDB_32BITLEN => {
            let v = c.bytes(4)?;
            Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as u64)
        }
        2 if b == RDB_64BITLEN => {
            let v = c.bytes(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(v);
            Ok(u64::from_be_bytes(a))
        }
        RDB_ENCVAL => Err(b & 0x3f),
        _ => return Err(Short),
    })
}

pub fn get_plain_len(c: &mut Cursor) -> Result<u64, Short> {
    get_len(c)?.map_err(|_| Short)
}

/// An RDB string: an integer that fits 32 bits as RDB's int encoding, anything else raw.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11
        && let Some(i) = crate::store::value::parse_i64_strict(s)
    {
        put_int_string(out, i);
        return;
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn put_int_string(out: &mut Vec<u8>, i: i64) {
    if let Ok(v) = i8::try_from(i) {
        out.push((RDB_ENCVAL << 6) | RDB_ENC_INT8);
        out.push(v as u8);
    } else if let Ok(v) = i16::try_from(i) {
        out.push((RDB_ENCVAL << 6) | RDB_ENC_INT16);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(i) {
        out.push((RDB_ENCVAL << 6) | RDB_ENC_INT32);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        let mut b = itoa::Buffer::new();
        let s = b.format(i).as_bytes();
        put_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }
}

pub fn get_string(c: &mut Cursor) -> Result<Vec<u8>, Short> {
    match get_len(c)? {
        Ok(len) => {
            let len = usize::try_from(len).map_err(|_| Short)?;
            Ok(c.bytes(len)?.to_vec())
        }
        Err(enc) => {
            let v: i64 = match enc {
                RDB_ENC_INT8 => c.u8()? as i8 as i64,
                RDB_ENC_INT16 => {
                    let b = c.bytes(2)?;
                    i16::from_le_bytes([b[0], b[1]]) as i64
                }
                RDB_ENC_INT32 => {
                    let b = c.bytes(4)?;
                    i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
                }
                // LZF-compressed strings are never written here.
                _ => return Err(Short),
            };
            Ok(itoa::Buffer::new().format(v).as_bytes().to_vec())
        }
    }
}

/// Writes `v`'s payload to `out`; returns its RDB type byte (written by the caller first).
pub fn encode_value(v: &Value, out: &mut Vec<u8>) -> u8 {
    match v {
        Value::Str(s) => {
            put_string(out, s);
            RDB_TYPE_STRING
        }
        Value::Int(i) => {
            put_int_string(out, *i);
            RDB_TYPE_STRING
        }
        Value::List(l) => {
            put_len(out, l.len() as u64);
            for item in l.iter() {
                put_string(out, item);
            }
            RDB_TYPE_LIST
        }
        Value::Set(s) => {
            put_len(out, s.len() as u64);
            let mut buf = itoa::Buffer::new();
            for m in s.iter() {
                put_string(out, m.bytes(&mut buf));
            }
            RDB_TYPE_SET
        }
        Value::Hash(h) => {
            put_len(out, h.len() as u64);
            for (f, val) in h.iter() {
                put_string(out, f);
                put_string(out, val);
            }
            RDB_TYPE_HASH
        }
        Value::ZSet(z) => {
            put_len(out, z.len() as u64);
            for (m, score) in z.iter() {
                put_string(out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
            RDB_TYPE_ZSET_2
        }
    }
}

/// Reads a payload of RDB type `ty`. Err for unknown types, short input, or contents no Redis
/// would write (an empty collection, a NaN score).
pub fn decode_value(ty: u8, c: &mut Cursor, lim: &Limits) -> Result<Value, Short> {
    // Each element takes at least one byte: a count past the input is damage, not a huge value.
    let count = |c: &mut Cursor| -> Result<usize, Short> {
        let n = get_plain_len(c)?;
        if n == 0 || n as usize > c.rest().len() {
            return Err(Short);
        }
        Ok(n as usize)
    };
    Ok(match ty {
        RDB_TYPE_STRING => Value::from_vec(get_string(c)?),
        RDB_TYPE_LIST => {
            let n = count(c)?;
            let mut l = List::new();
            for _ in 0..n {
                l.push_back(&get_string(c)?, lim.list_fill);
            }
            Value::List(Box::new(l))
        }
        RDB_TYPE_SET => {
            let n = count(c)?;
            let first = get_string(c)?;
            let mut s = Set::for_first(&first);
            s.add(&first, lim.set_max_intset_entries);
            for _ in 1..n {
                if !s.add(&get_string(c)?, lim.set_max_intset_entries) {
                    return Err(Short);
                }
            }
            Value::Set(s)
        }
        RDB_TYPE_HASH => {
            let n = count(c)?;
            let mut h = Hash::default();
            for _ in 0..n {
                let f = get_string(c)?;
                let v = get_string(c)?;
                if !h.set(&f, &v, lim.hash) {
                    return Err(Short);
                }
            }
            Value::Hash(h)
        }
        RDB_TYPE_ZSET_2 => {
            let n = count(c)?;
            let mut items: Vec<(Sds, f64)> = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let m = get_string(c)?;
                let b = c.bytes(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                let score = f64::from_le_bytes(a);
                if score.is_nan() {
                    return Err(Short);
                }
                items.push((Sds::from_vec(m), score));
            }
            let mut z = ZSet::new(
                lim.zset,
                n,
                items.iter().map(|(m, _)| m.len()).max().unwrap_or(0),
            );
            for (m, s) in &items {
                if z.set(m, *s, lim.zset).is_some() {
                    return Err(Short);
                }
            }
            Value::ZSet(Box::new(z))
        }
        _ => return Err(Short),
    })
}
