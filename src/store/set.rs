//! The set type, in Redis 7.0's two encodings: "intset" (sorted integers packed in one buffer at
//! the narrowest width that holds them, 2, 4 or 8 bytes, as Redis's `intset.c`) while every member
//! is an integer and there are at most `set-max-intset-entries` of them, and "hashtable" (a
//! [`Dict`] of members) otherwise. A set never converts back, as in Redis.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::dict::{Dict, Keyed};
use super::sds::Sds;
use super::value::parse_i64_strict;

/// `set-max-intset-entries`, in an atomic so `CONFIG SET` needs no lock on the write path.
pub struct SetLimits {
    pub max_intset_entries: AtomicUsize,
}

impl Default for SetLimits {
    fn default() -> Self {
        SetLimits {
            max_intset_entries: AtomicUsize::new(512),
        }
    }
}

impl SetLimits {
    pub fn get(&self) -> usize {
        self.max_intset_entries.load(Ordering::Relaxed)
    }
}

/// A member of a "hashtable"-encoded set.
#[derive(Clone)]
pub struct SetMember(pub Sds);

impl Keyed for SetMember {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

/// Sorted integers: byte 0 is the width (2, 4 or 8), then the values little-endian.
#[derive(Clone, Default)]
pub struct IntSet {
    buf: Box<[u8]>,
}

fn width_for(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

impl IntSet {
    fn width(&self) -> usize {
        self.buf.first().map_or(2, |&w| w as usize)
    }

    pub fn len(&self) -> usize {
        match self.buf.len() {
            0 => 0,
            n => (n - 1) / self.width(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn get(&self, i: usize) -> i64 {
        let w = self.width();
        let b = &self.buf[1 + i * w..1 + (i + 1) * w];
        match w {
            2 => i16::from_le_bytes([b[0], b[1]]) as i64,
            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }

    /// `Ok(index)` when present, `Err(insertion point)` otherwise.
    fn search(&self, v: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn contains(&self, v: i64) -> bool {
        self.search(v).is_ok()
    }

    fn rebuild(&mut self, width: usize, values: impl Iterator<Item = i64>, n: usize) {
        if n == 0 {
            self.buf = Box::default();
            return;
        }
        let mut out = Vec::with_capacity(1 + n * width);
        out.push(width as u8);
        for v in values {
            match width {
                2 => out.extend_from_slice(&(v as i16).to_le_bytes()),
                4 => out.extend_from_slice(&(v as i32).to_le_bytes()),
                _ => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
        self.buf = out.into_boxed_slice();
    }

    pub fn insert(&mut self, v: i64) -> bool {
        let Err(at) = self.search(v) else {
            return false;
        };
        let n = self.len();
        let width = self.width().max(width_for(v));
        let old = std::mem::take(self);
        let values = (0..at)
            .map(|i| old.get(i))
            .chain(std::iter::once(v))
            .chain((at..n).map(|i| old.get(i)));
        self.rebuild(width, values, n + 1);
        true
    }

    pub fn remove(&mut self, v: i64) -> bool {
        let Ok(at) = self.search(v) else {
            return false;
        };
        let n = self.len();
        let width = self.width();
        let old = std::mem::take(self);
        let values = (0..n).filter(|&i| i != at).map(|i| old.get(i));
        self.rebuild(width, values, n - 1);
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    pub fn heap_size(&self) -> usize {
        self.buf.len()
    }
}

/// A member as stored: an intset holds integers, a hashtable strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberRef<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl MemberRef<'_> {
    /// The member's bytes (an integer formatted into `buf`).
    pub fn bytes<'b>(&'b self, buf: &'b mut itoa::Buffer) -> &'b [u8] {
        match self {
            MemberRef::Int(i) => buf.format(*i).as_bytes(),
            MemberRef::Str(s) => s,
        }
    }

    pub fn to_sds(&self) -> Sds {
        let mut b = itoa::Buffer::new();
        Sds::new(self.bytes(&mut b))
    }
}

pub enum Set {
    Intset(IntSet),
    Table(Box<Dict<SetMember>>),
}

impl Set {
    /// One incremental rehash step of a big set's table, taken by reads (see
    /// [`Dict::rehash_step`]).
    pub fn rehash_step(&mut self) {
        if let Set::Table(d) = self {
            d.rehash_step();
        }
    }
}

impl Clone for Set {
    fn clone(&self) -> Self {
        match self {
            Set::Intset(i) => Set::Intset(i.clone()),
            Set::Table(d) => Set::Table(Box::new((**d).clone())),
        }
    }
}

impl Default for Set {
    fn default() -> Self {
        Set::Intset(IntSet::default())
    }
}

pub type Members<'a> = Box<dyn Iterator<Item = MemberRef<'a>> + 'a>;

impl Set {
    /// An empty set in the encoding Redis's `setTypeCreate` picks for its first member.
    pub fn for_first(member: &[u8]) -> Set {
        if parse_i64_strict(member).is_some() {
            Set::default()
        } else {
            Set::Table(Box::default())
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Intset(i) => i.len(),
            Set::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Intset(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Intset(i) => parse_i64_strict(member).is_some_and(|v| i.contains(v)),
            Set::Table(d) => d.contains(member),
        }
    }

    pub fn contains_ref(&self, m: MemberRef) -> bool {
        match (self, m) {
            (Set::Intset(i), MemberRef::Int(v)) => i.contains(v),
            (_, m) => {
                let mut b = itoa::Buffer::new();
                self.contains(m.bytes(&mut b))
            }
        }
    }

    /// Adds `member`; true when it is new. Converts as Redis's `setTypeAdd`.
    pub fn add(&mut self, member: &[u8], max_intset_entries: usize) -> bool {
        if let Set::Intset(i) = self {
            match parse_i64_strict(member) {
                Some(v) => {
                    if !i.insert(v) {
                        return false;
                    }
                    if i.len() > max_intset_entries {
                        self.convert_to_table();
                    }
                    return true;
                }
                None => self.convert_to_table(),
            }
        }
        match self {
            Set::Table(d) => {
                if d.contains(member) {
                    false
                } else {
                    d.insert_new(SetMember(Sds::new(member)));
                    true
                }
            }
            Set::Intset(_) => false,
        }
    }

    pub fn add_ref(&mut self, m: MemberRef, max_intset_entries: usize) -> bool {
        let mut b = itoa::Buffer::new();
        self.add(m.bytes(&mut b), max_intset_entries)
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Intset(i) => parse_i64_strict(member).is_some_and(|v| i.remove(v)),
            Set::Table(d) => d.remove(member).is_some(),
        }
    }

    fn convert_to_table(&mut self) {
        if let Set::Intset(i) = self {
            let mut d = Dict::new();
            let mut b = itoa::Buffer::new();
            for v in i.iter() {
                d.insert_new(SetMember(Sds::new(b.format(v).as_bytes())));
            }
            *self = Set::Table(Box::new(d));
        }
    }

    /// Members in Redis's order: ascending for an intset, table order for a hashtable.
    pub fn iter(&self) -> Members<'_> {
        match self {
            Set::Intset(i) => Box::new(i.iter().map(MemberRef::Int)),
            Set::Table(d) => Box::new(d.iter().map(|m| MemberRef::Str(&m.0))),
        }
    }

    pub fn random(&self) -> Option<MemberRef<'_>> {
        match self {
            Set::Intset(i) => {
                let n = i.len();
                (n > 0).then(|| MemberRef::Int(i.get(rand::random_range(0..n))))
            }
            Set::Table(d) => d.random().map(|m| MemberRef::Str(&m.0)),
        }
    }

    /// Removes and returns a random member.
    pub fn pop(&mut self) -> Option<Sds> {
        let m = self.random()?.to_sds();
        self.remove(&m);
        Some(m)
    }

    /// One step of SSCAN: an intset is returned whole with cursor 0, as Redis does.
    pub fn scan<'a>(
        &'a self,
        cursor: u64,
        count: usize,
        mut visit: impl FnMut(MemberRef<'a>),
    ) -> u64 {
        match self {
            Set::Intset(i) => {
                i.iter().for_each(|v| visit(MemberRef::Int(v)));
                0
            }
            Set::Table(d) => {
                let mut cursor = cursor;
                let mut seen = 0usize;
                let mut budget = count.saturating_mul(10);
                loop {
                    cursor = d.scan(cursor, |m| {
                        seen += 1;
                        visit(MemberRef::Str(&m.0));
                    });
                    budget = budget.saturating_sub(1);
                    if cursor == 0 || budget == 0 || seen >= count {
                        return cursor;
                    }
                }
            }
        }
    }

    /// Heap bytes owned by the set (a hashtable measured from a sample of its members).
    pub fn heap_size(&self) -> usize {
        match self {
            Set::Intset(i) => i.heap_size(),
            Set::Table(d) => {
                const SAMPLES: usize = 16;
                let (mut n, mut bytes) = (0usize, 0usize);
                for m in d.iter().take(SAMPLES) {
                    n += 1;
                    bytes += m.0.heap_size();
                }
                let per_item = bytes.checked_div(n).unwrap_or(0);
                std::mem::size_of::<Dict<SetMember>>()
                    + d.buckets() * std::mem::size_of::<usize>()
                    + d.len()
                        * (std::mem::size_of::<SetMember>()
                            + std::mem::size_of::<usize>()
                            + per_item)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(s: &Set) -> Vec<i64> {
        s.iter()
            .map(|m| match m {
                MemberRef::Int(i) => i,
                MemberRef::Str(_) => panic!("not an int"),
            })
            .collect()
    }

    #[test]
    fn intset_sorted_and_widens() {
        let mut s = Set::default();
        for v in [5, -3, 100, 5] {
            s.add(v.to_string().as_bytes(), 512);
        }
        assert_eq!(ints(&s), vec![-3, 5, 100]);
        if let Set::Intset(i) = &s {
            assert_eq!(i.heap_size(), 1 + 3 * 2);
        }
        s.add(b"70000", 512);
        s.add(b"-9223372036854775808", 512);
        assert_eq!(ints(&s), vec![i64::MIN, -3, 5, 100, 70000]);
        assert!(s.contains(b"100"));
        assert!(!s.contains(b"0100"));
        assert!(s.remove(b"5"));
        assert!(!s.remove(b"5"));
        assert_eq!(s.len(), 4);
        assert_eq!(s.encoding(), "intset");
    }

    #[test]
    fn converts_on_string_or_size() {
        let mut s = Set::default();
        s.add(b"1", 2);
        s.add(b"2", 2);
        assert_eq!(s.encoding(), "intset");
        s.add(b"3", 2);
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"1") && s.contains(b"3"));
        let mut s = Set::default();
        s.add(b"1", 512);
        s.add(b"x", 512);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 2);
        assert!(s.contains_ref(MemberRef::Int(1)));
    }

    #[test]
    fn a_big_set_costs_no_more_per_member_than_redis() {
        // redis-server 7.0.15 (jemalloc): 1,353,368 B for 20,000 "member:N" in one set,
        // 67.7 B per member.
        let allocated = crate::store::hash::tests::allocated;
        let before = allocated();
        let mut s = Set::default();
        for i in 0..20_000 {
            s.add(format!("member:{i}").as_bytes(), 512);
        }
        let per_member = (allocated() - before) / 20_000;
        assert_eq!(s.len(), 20_000);
        assert!((32..=67).contains(&per_member), "{per_member} B per member");
    }

    #[test]
    fn pop_empties() {
        let mut s = Set::default();
        for v in 0..10 {
            s.add(v.to_string().as_bytes(), 512);
        }
        let mut seen = std::collections::HashSet::new();
        while let Some(m) = s.pop() {
            assert!(seen.insert(m));
            assert!(seen.len() <= 10);
        }
        assert_eq!(seen.len(), 10);
    }
}
