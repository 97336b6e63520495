//! Values and keyspace entries. Strings follow Redis's encodings: an integer that round-trips
//! is kept as `Int` ("int"), anything else as bytes ("embstr" up to 44 bytes, "raw" beyond, or once
//! modified in place by APPEND/SETRANGE/SETBIT, as Redis does).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::dict::Keyed;
use super::hash::Hash;
use super::list::List;
use super::sds::Sds;
use super::set::Set;
use super::stream::Stream;
use super::zset::ZSet;

/// Longest string Redis stores as "embstr".
pub const EMBSTR_MAX: usize = 44;

pub enum Value {
    Str(Sds),
    Int(i64),
    Hash(Hash),
    Set(Set),
    List(Box<List>),
    ZSet(ZSet),
    Stream(Box<Stream>),
}

impl Value {
    /// A string value in the encoding Redis would pick for it (`tryObjectEncoding`).
    pub fn from_bytes(b: &[u8]) -> Value {
        if b.len() <= 20
            && let Some(i) = parse_i64_strict(b)
        {
            return Value::Int(i);
        }
        Value::Str(Sds::new(b))
    }

    pub fn from_vec(v: Vec<u8>) -> Value {
        if v.len() <= 20
            && let Some(i) = parse_i64_strict(&v)
        {
            return Value::Int(i);
        }
        Value::Str(Sds::from_vec(v))
    }

    /// Redis's TYPE name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::Int(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::List(_) => "list",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// Whether this value appearing under a key can serve clients blocked on it.
    pub fn may_unblock(&self) -> bool {
        matches!(self, Value::List(_) | Value::ZSet(_) | Value::Stream(_))
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::Str(_) | Value::Int(_))
    }

    /// Heap bytes owned by the value beyond the entry itself.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::Int(_) => 0,
            Value::Hash(h) => h.heap_size(),
            Value::Set(s) => s.heap_size(),
            Value::List(l) => std::mem::size_of::<List>() + l.heap_size(),
            Value::ZSet(z) => z.heap_size(),
            Value::Stream(s) => std::mem::size_of::<Stream>() + s.heap_size(),
        }
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Value::Str(s) => Value::Str(s.clone()),
            Value::Int(i) => Value::Int(*i),
            Value::Hash(h) => Value::Hash(h.clone()),
            Value::Set(s) => Value::Set(s.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::ZSet(z) => Value::ZSet(z.clone()),
            Value::Stream(s) => Value::Stream(s.clone()),
        }
    }
}

/// Parses a decimal i64 exactly as Redis's `string2ll`: optional '-', no '+', no leading zeros,
/// no spaces, and the text must round-trip.
pub fn parse_i64_strict(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = if b[0] == b'-' {
        (true, &b[1..])
    } else {
        (false, b)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

const HAS_EXPIRE: u8 = 1;
const RAW: u8 = 2;

/// One key and its value. `lru` is the store's clock (seconds) at the last access.
pub struct Entry {
    pub key: Sds,
    pub value: Value,
    lru: u32,
    flags: u8,
    /// Access counter for `OBJECT FREQ` (logarithmic, as Redis's LFU counter).
    freq: u8,
}

impl Keyed for Entry {
    fn key(&self) -> &[u8] {
        &self.key
    }
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Entry {
            key: self.key.clone(),
            value: self.value.clone(),
            lru: self.lru,
            flags: self.flags,
            freq: self.freq,
        }
    }
}

/// Redis's initial LFU counter value for a new key.
const LFU_INIT_VAL: u8 = 5;

/// The LFU settings the hot path reads (set from the configuration: `Node::apply_config`).
#[derive(Debug)]
pub struct LfuTuning {
    /// An LFU `maxmemory-policy` is in force: accesses update the counter.
    pub on: AtomicBool,
    /// `lfu-log-factor` (Redis's default 10).
    pub log_factor: AtomicU32,
    /// `lfu-decay-time`, minutes (Redis's default 1).
    pub decay_minutes: AtomicU32,
}

impl Default for LfuTuning {
    fn default() -> Self {
        LfuTuning {
            on: AtomicBool::new(false),
            log_factor: AtomicU32::new(10),
            decay_minutes: AtomicU32::new(1),
        }
    }
}

impl LfuTuning {
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub fn log_factor(&self) -> u32 {
        self.log_factor.load(Ordering::Relaxed)
    }

    pub fn decay_minutes(&self) -> u32 {
        self.decay_minutes.load(Ordering::Relaxed)
    }
}

impl Entry {
    pub fn new(key: Sds, value: Value, lru: u32) -> Entry {
        Entry {
            key,
            value,
            lru,
            flags: 0,
            freq: LFU_INIT_VAL,
        }
    }

    #[inline]
    pub fn has_expire(&self) -> bool {
        self.flags & HAS_EXPIRE != 0
    }

    pub fn set_has_expire(&mut self, on: bool) {
        if on {
            self.flags |= HAS_EXPIRE;
        } else {
            self.flags &= !HAS_EXPIRE;
        }
    }

    /// Marks a string as modified in place, so `OBJECT ENCODING` says "raw" as Redis does.
    pub fn set_raw(&mut self) {
        self.flags |= RAW;
    }

    pub fn clear_raw(&mut self) {
        self.flags &= !RAW;
    }

    /// Whether [`Entry::set_raw`] marked it.
    pub fn is_raw(&self) -> bool {
        self.flags & RAW != 0
    }

    #[inline]
    pub fn touch(&mut self, lru: u32) {
        self.lru = lru;
    }

    /// An access under an LFU maxmemory policy (Redis's `updateLFU`): the counter first loses
    /// what it decayed since the last access, then counts this one logarithmically (the
    /// higher it is, the less likely it grows: `lfu-log-factor`), and the access time is now.
    pub fn access_lfu(&mut self, now: u32, lfu: &LfuTuning) {
        let mut f = self.freq_at(now, lfu.decay_minutes());
        if f < 255 {
            let base = f.saturating_sub(LFU_INIT_VAL) as f64;
            if rand::random::<f64>() < 1.0 / (base * lfu.log_factor() as f64 + 1.0) {
                f += 1;
            }
        }
        self.freq = f;
        self.lru = now;
    }

    /// The LFU counter as of `now` (the store's clock): less one for every `decay_minutes`
    /// minutes since the last access, counted in whole clock minutes as Redis's
    /// `LFUDecrAndReturn` does (0: no decay).
    pub fn freq_at(&self, now: u32, decay_minutes: u32) -> u8 {
        if decay_minutes == 0 {
            return self.freq;
        }
        let periods = (now / 60).saturating_sub(self.lru / 60) / decay_minutes;
        self.freq.saturating_sub(periods.min(255) as u8)
    }

    pub fn lru(&self) -> u32 {
        self.lru
    }

    pub fn freq(&self) -> u8 {
        self.freq
    }

    /// Sets the LFU counter (`RESTORE ... FREQ`).
    pub fn set_freq(&mut self, f: u8) {
        self.freq = f;
    }

    /// `OBJECT ENCODING` name.
    pub fn encoding(&self) -> &'static str {
        match &self.value {
            Value::Int(_) => "int",
            Value::Str(s) => {
                if self.flags & RAW != 0 || s.len() > EMBSTR_MAX {
                    "raw"
                } else {
                    "embstr"
                }
            }
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::List(_) => "quicklist",
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }

    /// Approximate bytes this entry occupies (node, key, value), for `MEMORY USAGE`.
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Entry>() + 8 + self.key.heap_size() + self.value.heap_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64_strict(b"123"), Some(123));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64_strict(b"9223372036854775808"), None);
        assert_eq!(parse_i64_strict(b"0123"), None);
        assert_eq!(parse_i64_strict(b"+1"), None);
        assert_eq!(parse_i64_strict(b"-0"), None);
        assert_eq!(parse_i64_strict(b" 1"), None);
        assert_eq!(parse_i64_strict(b""), None);
    }

    #[test]
    fn entry_is_compact() {
        assert!(
            std::mem::size_of::<Value>() <= 24,
            "{}",
            std::mem::size_of::<Value>()
        );
        assert!(
            std::mem::size_of::<Entry>() <= 56,
            "{}",
            std::mem::size_of::<Entry>()
        );
        // A sorted set is held in the value itself, not behind one more allocation.
        assert!(
            std::mem::size_of::<ZSet>() <= 16,
            "{}",
            std::mem::size_of::<ZSet>()
        );
    }
}
