//! The hash type, in Redis's two encodings: "listpack" (every field and value in one contiguous
//! buffer, in insertion order, while the hash is small) and "hashtable" (a [`Dict`] of field/value
//! nodes). A hash converts to "hashtable" when it grows past `hash-max-listpack-entries` fields or
//! is given a field or value longer than `hash-max-listpack-value` bytes, and never converts back,
//! as Redis 7.0 does.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::dict::{Dict, Keyed};
use super::sds::Sds;

/// The conversion thresholds, kept in atomics so `CONFIG SET` takes effect without a lock on the
/// write path.
pub struct HashLimits {
    pub max_listpack_entries: AtomicUsize,
    pub max_listpack_value: AtomicUsize,
}

impl Default for HashLimits {
    fn default() -> Self {
        HashLimits {
            max_listpack_entries: AtomicUsize::new(512),
            max_listpack_value: AtomicUsize::new(64),
        }
    }
}

/// A snapshot of [`HashLimits`] for one command.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub entries: usize,
    pub value: usize,
}

impl HashLimits {
    pub fn get(&self) -> Limits {
        Limits {
            entries: self.max_listpack_entries.load(Ordering::Relaxed),
            value: self.max_listpack_value.load(Ordering::Relaxed),
        }
    }
}

/// One field of a "hashtable"-encoded hash.
#[derive(Clone)]
pub struct HashField {
    pub field: Sds,
    pub value: Sds,
}

impl Keyed for HashField {
    fn key(&self) -> &[u8] {
        &self.field
    }
}

/// Strings in one exactly-sized buffer: a 4-byte count of strings, then each string as a LEB128
/// length and its bytes. Fields and values alternate. One allocation for the whole hash and
/// 1 byte of overhead per string up to 127 bytes (Redis's listpack spends 2).
#[derive(Clone, Default)]
pub struct Listpack {
    buf: Box<[u8]>,
}

const HEADER: usize = 4;

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Reads the string at `pos`: (bytes, position after it).
fn read_at(buf: &[u8], mut pos: usize) -> (&[u8], usize) {
    let mut n = 0usize;
    let mut shift = 0;
    while let Some(&b) = buf.get(pos) {
        pos += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = (pos + n).min(buf.len());
    (&buf[pos..end], end)
}

impl Listpack {
    /// Number of strings stored.
    fn count(&self) -> usize {
        count_of(&self.buf)
    }

    pub fn pairs(&self) -> usize {
        self.count() / 2
    }

    pub fn iter(&self) -> ListpackPairs<'_> {
        ListpackPairs {
            buf: &self.buf,
            pos: HEADER.min(self.buf.len()),
        }
    }

    /// (start of the field, start of the value, end of the value) of `field`.
    fn find(&self, field: &[u8]) -> Option<(usize, usize, usize)> {
        let mut pos = HEADER;
        while pos < self.buf.len() {
            let start = pos;
            let (f, vpos) = read_at(&self.buf, pos);
            let (_, end) = read_at(&self.buf, vpos);
            if f == field {
                return Some((start, vpos, end));
            }
            pos = end;
        }
        None
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let (_, vpos, _) = self.find(field)?;
        Some(read_at(&self.buf, vpos).0)
    }

    /// Rebuilds the buffer as `head` + `middle` + `tail` with `count` strings, exactly sized.
    fn rebuild(&mut self, count: usize, head: &[u8], middle: &[u8], tail: &[u8]) {
        if count == 0 {
            self.buf = Box::default();
            return;
        }
        let mut v = Vec::with_capacity(HEADER + head.len() + middle.len() + tail.len());
        v.extend_from_slice(&(count as u32).to_le_bytes());
        v.extend_from_slice(head);
        v.extend_from_slice(middle);
        v.extend_from_slice(tail);
        self.buf = v.into_boxed_slice();
    }

    /// Sets `field` to `value`; true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let mut enc = Vec::with_capacity(field.len() + value.len() + 4);
        match self.find(field) {
            Some((_, vpos, end)) => {
                put_len(&mut enc, value.len());
                enc.extend_from_slice(value);
                let buf = std::mem::take(&mut self.buf);
                self.rebuild(count_of(&buf), &buf[HEADER..vpos], &enc, &buf[end..]);
                false
            }
            None => {
                put_len(&mut enc, field.len());
                enc.extend_from_slice(field);
                put_len(&mut enc, value.len());
                enc.extend_from_slice(value);
                let buf = std::mem::take(&mut self.buf);
                let body = buf.get(HEADER..).unwrap_or(&[]);
                self.rebuild(count_of(&buf) + 2, body, &enc, &[]);
                true
            }
        }
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        let Some((start, _, end)) = self.find(field) else {
            return false;
        };
        let buf = std::mem::take(&mut self.buf);
        self.rebuild(count_of(&buf) - 2, &buf[HEADER..start], &[], &buf[end..]);
        true
    }

    pub fn heap_size(&self) -> usize {
        self.buf.len()
    }
}

fn count_of(buf: &[u8]) -> usize {
    match buf.get(..HEADER) {
        Some(h) => u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize,
        None => 0,
    }
}

pub struct ListpackPairs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ListpackPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (f, vpos) = read_at(self.buf, self.pos);
        let (v, end) = read_at(self.buf, vpos);
        self.pos = end;
        Some((f, v))
    }
}

pub enum Hash {
    Listpack(Listpack),
    Table(Box<Dict<HashField>>),
}

impl Hash {
    /// One incremental rehash step of a big hash's table, taken by reads (see
    /// [`Dict::rehash_step`]).
    pub fn rehash_step(&mut self) {
        if let Hash::Table(d) = self {
            d.rehash_step();
        }
    }
}

impl Clone for Hash {
    fn clone(&self) -> Self {
        match self {
            Hash::Listpack(l) => Hash::Listpack(l.clone()),
            Hash::Table(d) => Hash::Table(Box::new((**d).clone())),
        }
    }
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Listpack(Listpack::default())
    }
}

/// An iterator over (field, value) pairs of either encoding.
pub type Pairs<'a> = Box<dyn Iterator<Item = (&'a [u8], &'a [u8])> + 'a>;

impl Hash {
    pub fn len(&self) -> usize {
        match self {
            Hash::Listpack(l) => l.pairs(),
            Hash::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `OBJECT ENCODING` name.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Listpack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Listpack(l) => l.get(field),
            Hash::Table(d) => d.get(field).map(|f| &f.value[..]),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts to "hashtable" before a write that would break the listpack limits: a field or
    /// value longer than `limits.value` (Redis's `hashTypeTryConversion`).
    pub fn prepare_write(&mut self, field: &[u8], value: &[u8], limits: Limits) {
        if matches!(self, Hash::Listpack(_))
            && (field.len() > limits.value || value.len() > limits.value)
        {
            self.convert_to_table();
        }
    }

    /// Sets `field` to `value`, converting encodings as Redis does; true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        self.prepare_write(field, value, limits);
        let new = match self {
            Hash::Listpack(l) => l.set(field, value),
            Hash::Table(d) => {
                if let Some(f) = d.get_mut(field) {
                    f.value = Sds::new(value);
                    false
                } else {
                    d.insert_new(HashField {
                        field: Sds::new(field),
                        value: Sds::new(value),
                    });
                    true
                }
            }
        };
        if let Hash::Listpack(l) = self
            && l.pairs() > limits.entries
        {
            self.convert_to_table();
        }
        new
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(l) => l.remove(field),
            Hash::Table(d) => d.remove(field).is_some(),
        }
    }

    fn convert_to_table(&mut self) {
        if let Hash::Listpack(l) = self {
            let mut d = Dict::new();
            for (f, v) in l.iter() {
                d.insert_new(HashField {
                    field: Sds::new(f),
                    value: Sds::new(v),
                });
            }
            *self = Hash::Table(Box::new(d));
        }
    }

    /// Pairs in Redis's order: insertion order for a listpack, table order for a hashtable.
    pub fn iter(&self) -> Pairs<'_> {
        match self {
            Hash::Listpack(l) => Box::new(l.iter()),
            Hash::Table(d) => Box::new(d.iter().map(|f| (&f.field[..], &f.value[..]))),
        }
    }

    /// A random pair (None when empty).
    pub fn random(&self) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Listpack(l) => {
                let n = l.pairs();
                if n == 0 {
                    return None;
                }
                l.iter().nth(rand::random_range(0..n))
            }
            Hash::Table(d) => d.random().map(|f| (&f.field[..], &f.value[..])),
        }
    }

    /// One step of HSCAN: the pairs visited and the next cursor. A listpack is returned whole
    /// with cursor 0, as Redis does for compact encodings.
    pub fn scan<'a>(
        &'a self,
        cursor: u64,
        count: usize,
        mut visit: impl FnMut(&'a [u8], &'a [u8]),
    ) -> u64 {
        match self {
            Hash::Listpack(l) => {
                for (f, v) in l.iter() {
                    visit(f, v);
                }
                0
            }
            Hash::Table(d) => {
                let mut cursor = cursor;
                let mut seen = 0usize;
                let mut budget = count.saturating_mul(10);
                loop {
                    cursor = d.scan(cursor, |f| {
                        seen += 1;
                        visit(&f.field, &f.value);
                    });
                    budget = budget.saturating_sub(1);
                    if cursor == 0 || budget == 0 || seen >= count {
                        return cursor;
                    }
                }
            }
        }
    }

    /// Heap bytes owned by the hash. A hashtable is measured from a sample of its fields (as
    /// Redis's `MEMORY USAGE` samples), plus its nodes and buckets.
    pub fn heap_size(&self) -> usize {
        match self {
            Hash::Listpack(l) => l.heap_size(),
            Hash::Table(d) => {
                const SAMPLES: usize = 16;
                let (mut n, mut bytes) = (0usize, 0usize);
                for f in d.iter().take(SAMPLES) {
                    n += 1;
                    bytes += f.field.heap_size() + f.value.heap_size();
                }
                let per_item = bytes.checked_div(n).unwrap_or(0);
                std::mem::size_of::<Dict<HashField>>()
                    + d.buckets() * std::mem::size_of::<usize>()
                    + d.len()
                        * (std::mem::size_of::<HashField>()
                            + std::mem::size_of::<usize>()
                            + per_item)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        entries: 4,
        value: 10,
    };

    #[test]
    fn listpack_keeps_insertion_order_and_replaces_in_place() {
        let mut h = Hash::default();
        assert!(h.set(b"a", b"1", LIMITS));
        assert!(h.set(b"b", b"2", LIMITS));
        assert!(!h.set(b"a", b"one", LIMITS));
        assert!(h.set(b"c", b"", LIMITS));
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(
            pairs,
            vec![
                (&b"a"[..], &b"one"[..]),
                (&b"b"[..], &b"2"[..]),
                (&b"c"[..], &b""[..])
            ]
        );
        assert_eq!(h.encoding(), "listpack");
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(b"c"), Some(&b""[..]));
        assert_eq!(h.get(b"b"), None);
    }

    #[test]
    fn long_strings_use_multi_byte_lengths() {
        let mut h = Hash::default();
        let big = vec![b'x'; 300];
        let limits = Limits {
            entries: 10,
            value: 1000,
        };
        h.set(&big, &big, limits);
        h.set(b"k", b"v", limits);
        assert_eq!(h.get(&big), Some(&big[..]));
        assert_eq!(h.get(b"k"), Some(&b"v"[..]));
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn converts_on_count_and_length() {
        let mut h = Hash::default();
        for i in 0..4u8 {
            h.set(&[i], b"v", LIMITS);
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"x", b"v", LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 5);
        let mut h = Hash::default();
        h.set(b"a", b"0123456789", LIMITS);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"a", b"0123456789a", LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"a"), Some(&b"0123456789a"[..]));
    }

    /// jemalloc's allocated bytes, exact for this thread's allocations: its cache is switched
    /// off first (cached frees would otherwise be counted late, by some hundred KB).
    pub(crate) fn allocated() -> usize {
        // SAFETY: "thread.tcache.enabled" takes a bool, which is what is written.
        let _ = unsafe { tikv_jemalloc_ctl::raw::write(b"thread.tcache.enabled\0", false) };
        let _ = tikv_jemalloc_ctl::epoch::advance();
        tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0)
    }

    #[test]
    fn a_big_hash_costs_no_more_per_field_than_redis() {
        // redis-server 7.0.15 (jemalloc): 1,674,400 B for 20,000 "field:N" -> "value:N" in one
        // hash, 83.7 B per field (dictEntry, two sds, buckets).
        let limits = Limits {
            entries: 128,
            value: 64,
        };
        let before = allocated();
        let mut h = Hash::default();
        for i in 0..20_000 {
            h.set(
                format!("field:{i}").as_bytes(),
                format!("value:{i}").as_bytes(),
                limits,
            );
        }
        let per_field = (allocated() - before) / 20_000;
        assert_eq!(h.len(), 20_000);
        assert!((56..=83).contains(&per_field), "{per_field} B per field");
    }

    #[test]
    fn scan_of_a_table_visits_everything() {
        let mut h = Hash::default();
        for i in 0..100u32 {
            h.set(&i.to_be_bytes(), b"v", LIMITS);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        for _ in 0..1000 {
            cursor = h.scan(cursor, 10, |f, _| {
                seen.insert(f.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 100);
    }
}
