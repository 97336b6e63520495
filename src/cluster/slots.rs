//! Key to hash slot: CRC16-XMODEM of the key (or of its `{hash tag}`) modulo 16384, exactly as
//! the Redis Cluster specification defines it.

pub const SLOTS: usize = 16384;

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC16_TABLE: [u16; 256] = crc16_table();

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[((crc >> 8) as u8 ^ b) as usize]
    })
}

/// The part of the key that is hashed: the content of the first `{...}` if it is non-empty,
/// else the whole key (spec: "Hash tags").
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key)
        && let Some(len) = memchr::memchr(b'}', &key[open + 1..])
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

#[inline]
pub fn key_hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS as u16 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vectors_from_the_design() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_hash_slot(b"foo"), 12182);
        assert_eq!(key_hash_slot(b"bar"), 5061);
        assert_eq!(key_hash_slot(b"hello"), 866);
        assert_eq!(key_hash_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_hash_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_hash_slot(b"mykey"), 14687);
    }

    proptest! {
        #[test]
        fn tagged_keys_share_the_slot(tag in "[a-z0-9]{1,12}", a in "[a-z]{0,8}", b in "[a-z]{0,8}") {
            let k1 = format!("{a}{{{tag}}}x");
            let k2 = format!("{b}{{{tag}}}y{{z}}");
            prop_assert_eq!(key_hash_slot(k1.as_bytes()), key_hash_slot(k2.as_bytes()));
            prop_assert_eq!(key_hash_slot(k1.as_bytes()), key_hash_slot(tag.as_bytes()));
        }
    }
}
