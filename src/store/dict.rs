//! A chained hash table with Redis's `dict` guarantees: a SCAN cursor that survives resizes
//! (reverse-binary increment over the bucket index), fair-enough random sampling for RANDOMKEY,
//! SPOP and active expiry, and one heap node per item.
//!
//! Why not `std`/`hashbrown`: open addressing cannot give SCAN's guarantee (every item present for
//! the whole iteration is returned at least once) because a grow moves items off their home bucket,
//! and neither exposes buckets for random sampling. Tables here stay small (the keyspace is
//! split into shards), so a resize rehashes at once instead of incrementally.

use std::sync::OnceLock;

use rand::Rng;

/// Something stored in a [`Dict`], found by its key bytes.
pub trait Keyed {
    fn key(&self) -> &[u8];
}

struct Node<T> {
    next: Option<Box<Node<T>>>,
    item: T,
}

type Bucket<T> = Option<Box<Node<T>>>;

pub struct Dict<T> {
    buckets: Vec<Bucket<T>>,
    len: usize,
}

fn hasher() -> &'static ahash::RandomState {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    STATE.get_or_init(ahash::RandomState::new)
}

#[inline]
pub fn hash_bytes(key: &[u8]) -> u64 {
    hasher().hash_one(key)
}

const MIN_BUCKETS: usize = 4;

impl<T: Keyed> Default for Dict<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Keyed> Dict<T> {
    pub const fn new() -> Self {
        Dict {
            buckets: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets (for `MEMORY USAGE` and `DEBUG`-style introspection).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    #[inline]
    fn index(&self, hash: u64) -> usize {
        (hash as usize) & (self.buckets.len() - 1)
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let mut cur = self.buckets[self.index(hash_bytes(key))].as_deref();
        while let Some(node) = cur {
            if node.item.key() == key {
                return Some(&node.item);
            }
            cur = node.next.as_deref();
        }
        None
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        if self.len == 0 {
            return None;
        }
        let idx = self.index(hash_bytes(key));
        let mut cur = self.buckets[idx].as_deref_mut();
        while let Some(node) = cur {
            if node.item.key() == key {
                return Some(&mut node.item);
            }
            cur = node.next.as_deref_mut();
        }
        None
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts `item`, replacing and returning an item with the same key.
    pub fn insert(&mut self, item: T) -> Option<T> {
        if let Some(slot) = self.get_mut(item.key()) {
            return Some(std::mem::replace(slot, item));
        }
        self.insert_new(item);
        None
    }

    /// Inserts an item whose key the caller knows is absent.
    pub fn insert_new(&mut self, item: T) {
        if self.len >= self.buckets.len() {
            self.resize((self.len + 1).next_power_of_two().max(MIN_BUCKETS));
        }
        let idx = self.index(hash_bytes(item.key()));
        let next = self.buckets[idx].take();
        self.buckets[idx] = Some(Box::new(Node { next, item }));
        self.len += 1;
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let idx = self.index(hash_bytes(key));
        let mut link = &mut self.buckets[idx];
        loop {
            match link {
                None => return None,
                Some(node) if node.item.key() == key => {
                    let mut node = link.take()?;
                    *link = node.next.take();
                    self.len -= 1;
                    let item = node.item;
                    self.maybe_shrink();
                    return Some(item);
                }
                Some(node) => link = &mut node.next,
            }
        }
    }

    fn maybe_shrink(&mut self) {
        // spec (dict.c): shrink when fewer than one item per ten buckets
        if self.buckets.len() > MIN_BUCKETS && self.len * 10 < self.buckets.len() {
            self.resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    fn resize(&mut self, size: usize) {
        let old = std::mem::take(&mut self.buckets);
        self.buckets.resize_with(size, || None);
        for mut head in old {
            while let Some(mut node) = head {
                head = node.next.take();
                let idx = self.index(hash_bytes(node.item.key()));
                node.next = self.buckets[idx].take();
                self.buckets[idx] = Some(node);
            }
        }
    }

    pub fn clear(&mut self) {
        // Unlink chains iteratively: dropping a long chain recursively could overflow the stack.
        for head in &mut self.buckets {
            let mut cur = head.take();
            while let Some(mut node) = cur {
                cur = node.next.take();
            }
        }
        self.buckets = Vec::new();
        self.len = 0;
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.buckets.iter().flat_map(|b| {
            let mut cur = b.as_deref();
            std::iter::from_fn(move || {
                let node = cur?;
                cur = node.next.as_deref();
                Some(&node.item)
            })
        })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.buckets.iter_mut().flat_map(|b| {
            let mut cur = b.as_deref_mut();
            std::iter::from_fn(move || {
                let node = cur.take()?;
                cur = node.next.as_deref_mut();
                Some(&mut node.item)
            })
        })
    }

    /// Removes every item for which `keep` returns false.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut removed = 0;
        for head in &mut self.buckets {
            let mut link = head;
            while link.is_some() {
                if link.as_ref().is_some_and(|n| !keep(&n.item)) {
                    if let Some(mut node) = link.take() {
                        *link = node.next.take();
                        removed += 1;
                    }
                } else if let Some(node) = link {
                    link = &mut node.next;
                }
            }
        }
        self.len -= removed;
        self.maybe_shrink();
    }

    /// Visits one bucket at `cursor` and returns the next cursor (0 when done). Same algorithm as
    /// Redis's `dictScan`: the cursor counts with its bits reversed, so a table that grew or
    /// shrank between calls is still covered without missing anything present all along.
    pub fn scan<'a>(&'a self, cursor: u64, mut visit: impl FnMut(&'a T)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = (self.buckets.len() - 1) as u64;
        let mut cur = self.buckets[(cursor & mask) as usize].as_deref();
        while let Some(node) = cur {
            visit(&node.item);
            cur = node.next.as_deref();
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// A random item: a random non-empty bucket, then a random node in its chain.
    pub fn random(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let mut rng = rand::rng();
        let mask = self.buckets.len() - 1;
        let start = rng.random::<u64>() as usize & mask;
        // Load is kept above 1/10, so a random probe finds a bucket quickly; fall back to a
        // linear walk after a bounded number of tries.
        let mut idx = start;
        for i in 0..64usize {
            idx = if i == 0 {
                start
            } else {
                rng.random::<u64>() as usize & mask
            };
            if self.buckets[idx].is_some() {
                break;
            }
        }
        while self.buckets[idx].is_none() {
            idx = (idx + 1) & mask;
        }
        let mut chain_len = 0;
        let mut cur = self.buckets[idx].as_deref();
        while let Some(n) = cur {
            chain_len += 1;
            cur = n.next.as_deref();
        }
        let pick = rng.random_range(0..chain_len);
        let mut cur = self.buckets[idx].as_deref();
        for _ in 0..pick {
            cur = cur.and_then(|n| n.next.as_deref());
        }
        cur.map(|n| &n.item)
    }
}

impl<T> Drop for Dict<T> {
    fn drop(&mut self) {
        for head in &mut self.buckets {
            let mut cur = head.take();
            while let Some(mut node) = cur {
                cur = node.next.take();
            }
        }
    }
}

impl<T: Keyed + Clone> Clone for Dict<T> {
    fn clone(&self) -> Self {
        let mut d = Dict::new();
        if !self.buckets.is_empty() {
            d.resize(self.buckets.len());
        }
        for item in self.iter() {
            d.insert_new(item.clone());
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[derive(Clone, Debug, PartialEq)]
    struct Item(Vec<u8>);
    impl Keyed for Item {
        fn key(&self) -> &[u8] {
            &self.0
        }
    }

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            assert!(d.insert(Item(i.to_be_bytes().to_vec())).is_none());
        }
        assert_eq!(d.len(), 1000);
        for i in 0..1000u32 {
            assert!(d.get(&i.to_be_bytes()).is_some());
        }
        for i in 0..990u32 {
            assert!(d.remove(&i.to_be_bytes()).is_some());
        }
        assert_eq!(d.len(), 10);
        assert!(d.buckets() <= 128, "table shrank: {}", d.buckets());
        assert!(d.remove(&5u32.to_be_bytes()).is_none());
    }

    #[test]
    fn scan_covers_items_present_throughout_despite_resizes() {
        let mut d = Dict::new();
        for i in 0..500u32 {
            d.insert(Item(i.to_be_bytes().to_vec()));
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |it| {
                seen.insert(it.0.clone());
            });
            // Grow and shrink the table while scanning; keys 0..250 stay all along.
            step += 1;
            assert!(step < 100_000, "scan did not terminate");
            if step < 30 && step.is_multiple_of(3) {
                for j in 0..200u32 {
                    d.insert(Item((100_000 + step * 1000 + j).to_be_bytes().to_vec()));
                }
            } else if step == 35 {
                for j in 250..500u32 {
                    d.remove(&j.to_be_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..250u32 {
            assert!(seen.contains(i.to_be_bytes().as_slice()), "missed {i}");
        }
    }

    #[test]
    fn random_returns_members() {
        let mut d = Dict::new();
        assert!(d.random().is_none());
        for i in 0..50u32 {
            d.insert(Item(i.to_be_bytes().to_vec()));
        }
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let it = d.random().unwrap();
            assert!(d.get(&it.0).is_some());
            seen.insert(it.0.clone());
        }
        assert!(seen.len() > 40);
    }

    #[test]
    fn retain_removes() {
        let mut d = Dict::new();
        for i in 0..100u32 {
            d.insert(Item(i.to_be_bytes().to_vec()));
        }
        d.retain(|it| it.0[3] % 2 == 0);
        assert_eq!(d.len(), 50);
        assert_eq!(d.iter().count(), 50);
    }
}
