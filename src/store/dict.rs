//! A chained hash table with Redis's `dict` guarantees: a SCAN cursor that survives resizes
//! (reverse-binary increment over the bucket index), fair-enough random sampling for RANDOMKEY,
//! SPOP and active expiry, one heap node per item, and incremental rehashing.
//!
//! Why not `std`/`hashbrown`: open addressing cannot give SCAN's guarantee (every item present for
//! the whole iteration is returned at least once) because a grow moves items off their home bucket,
//! and neither exposes buckets for random sampling.
//!
//! Resizes are incremental, as in Redis's `dict.c`, so a hash or set with millions of fields never
//! stalls its shard for a whole rehash. A grow or shrink allocates the new table and leaves the
//! items in the old one; then every `get_mut`, `insert`, `insert_new` and `remove` first takes a
//! rehash step, moving a few of the old table's buckets into the new one. While rehashing, lookups
//! check both tables, new items go into the new table, SCAN visits both ([`Dict::scan`]) and
//! random sampling draws from both. `get` takes `&self` and moves nothing: a table that is only
//! read after a resize started keeps both tables (lookups still work, at the price of a second
//! probe) until a later write finishes the move. There is no background rehash: only writes make
//! a table need a resize, and they are also what finishes it.
//!
//! A step moves the old table's last `pace` buckets (Redis moves one bucket from the front;
//! popping from the back frees the emptied table without a pass over it). The pace is chosen when
//! a resize starts so that the move ends before the next grow or shrink could be due: a write
//! changes the item count by at most one and takes a step first, so there are at least as many
//! steps as writes needed to bring the count to the new table's grow or shrink threshold. A new
//! resize therefore never starts during a rehash, by construction rather than by finishing the
//! rest at once. A step moves 2 old buckets in a grow and about 40 in a shrink (an old table under
//! a tenth full: about 4 items).

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
    /// Where items are inserted: the only table, or the new one while rehashing. Its length is a
    /// power of two (or zero before the first insert).
    table: Vec<Bucket<T>>,
    /// While rehashing, the old table's buckets not moved yet: a step moves and pops the last
    /// ones, so bucket `i` of the old table is here while `i < old.len()`. Empty otherwise.
    old: Vec<Bucket<T>>,
    /// The old table's index mask (its size minus one), which `old.len()` no longer tells.
    old_mask: usize,
    /// Old buckets moved per rehash step (module doc).
    pace: usize,
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

/// `size` empty buckets, allocated zeroed as Redis's `zcalloc` does: a big table then comes from
/// fresh pages that cost nothing until touched, where writing `None` into each bucket stalled for
/// 80-130 ms at 8M buckets (standalone measurement on the 2-core dev machine; ~25 µs zeroed).
fn empty_table<T>(size: usize) -> Vec<Bucket<T>> {
    let table = Box::<[Bucket<T>]>::new_zeroed_slice(size);
    // SAFETY: `Option<Box<_>>` is guaranteed to represent `None` as all-zero bytes (the null
    // pointer optimization, `std::option` "Representation"), so the zeroed slice is all `None`.
    unsafe { table.assume_init() }.into_vec()
}

fn chain<T>(bucket: &Bucket<T>) -> impl Iterator<Item = &T> {
    let mut cur = bucket.as_deref();
    std::iter::from_fn(move || {
        let node = cur?;
        cur = node.next.as_deref();
        Some(&node.item)
    })
}

fn chain_mut<T>(bucket: &mut Bucket<T>) -> impl Iterator<Item = &mut T> {
    let mut cur = bucket.as_deref_mut();
    std::iter::from_fn(move || {
        let node = cur.take()?;
        cur = node.next.as_deref_mut();
        Some(&mut node.item)
    })
}

fn find<'a, T: Keyed>(bucket: &'a Bucket<T>, key: &[u8]) -> Option<&'a T> {
    let mut cur = bucket.as_deref();
    while let Some(node) = cur {
        if node.item.key() == key {
            return Some(&node.item);
        }
        cur = node.next.as_deref();
    }
    None
}

fn find_mut<'a, T: Keyed>(bucket: &'a mut Bucket<T>, key: &[u8]) -> Option<&'a mut T> {
    let mut cur = bucket.as_deref_mut();
    while let Some(node) = cur {
        if node.item.key() == key {
            return Some(&mut node.item);
        }
        cur = node.next.as_deref_mut();
    }
    None
}

/// Takes the item with `key` out of the chain starting at `link`.
fn unlink<T: Keyed>(mut link: &mut Bucket<T>, key: &[u8]) -> Option<T> {
    loop {
        match link {
            None => return None,
            Some(node) if node.item.key() == key => {
                let mut node = link.take()?;
                *link = node.next.take();
                return Some(node.item);
            }
            Some(node) => link = &mut node.next,
        }
    }
}

/// Drops every chain one node at a time: dropping a long chain recursively could overflow the
/// stack.
fn free_chains<T>(buckets: &mut [Bucket<T>]) {
    for head in buckets {
        let mut cur = head.take();
        while let Some(mut node) = cur {
            cur = node.next.take();
        }
    }
}

/// The cursor after `cursor` for a table with index mask `mask`: the masked bits counted up with
/// their order reversed (`dictScan`).
fn next_cursor(cursor: u64, mask: u64) -> u64 {
    // Set the bits above the mask so the carry of the reversed increment runs through them.
    let v = (cursor | !mask).reverse_bits().wrapping_add(1);
    v.reverse_bits()
}

impl<T: Keyed> Default for Dict<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Keyed> Dict<T> {
    pub const fn new() -> Self {
        Dict {
            table: Vec::new(),
            old: Vec::new(),
            old_mask: 0,
            pace: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets allocated, of both tables while rehashing (for `MEMORY USAGE` and
    /// `DEBUG`-style introspection). The old table's allocation is freed whole when the move
    /// ends, so it counts at its full size until then.
    pub fn buckets(&self) -> usize {
        if self.rehashing() {
            self.table.len() + self.old_mask + 1
        } else {
            self.table.len()
        }
    }

    #[inline]
    fn rehashing(&self) -> bool {
        !self.old.is_empty()
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let hash = hash_bytes(key) as usize;
        if self.rehashing()
            && let Some(bucket) = self.old.get(hash & self.old_mask)
            && let Some(item) = find(bucket, key)
        {
            return Some(item);
        }
        find(&self.table[hash & (self.table.len() - 1)], key)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        if self.len == 0 {
            return None;
        }
        let hash = hash_bytes(key) as usize;
        if self.rehashing() {
            self.rehash_step();
            if let Some(bucket) = self.old.get_mut(hash & self.old_mask)
                && let Some(item) = find_mut(bucket, key)
            {
                return Some(item);
            }
        }
        let mask = self.table.len() - 1;
        find_mut(&mut self.table[hash & mask], key)
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
        if self.rehashing() {
            self.rehash_step();
        }
        if self.len >= self.table.len() {
            self.start_resize((self.len + 1).next_power_of_two().max(MIN_BUCKETS));
        }
        let idx = hash_bytes(item.key()) as usize & (self.table.len() - 1);
        let next = self.table[idx].take();
        self.table[idx] = Some(Box::new(Node { next, item }));
        self.len += 1;
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let hash = hash_bytes(key) as usize;
        let mut found = None;
        if self.rehashing() {
            self.rehash_step();
            found = self
                .old
                .get_mut(hash & self.old_mask)
                .and_then(|bucket| unlink(bucket, key));
        }
        if found.is_none() {
            let mask = self.table.len() - 1;
            found = unlink(&mut self.table[hash & mask], key);
        }
        let item = found?;
        self.len -= 1;
        self.maybe_shrink();
        Some(item)
    }

    fn maybe_shrink(&mut self) {
        // spec (dict.c): shrink when fewer than one item per ten buckets
        if self.table.len() > MIN_BUCKETS && self.len * 10 < self.table.len() {
            self.start_resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    /// Makes a table of `size` buckets the one items go into, and sets the pace at which rehash
    /// steps move the current items there.
    fn start_resize(&mut self, size: usize) {
        // By the pace set below a rehash always ends before the next resize is due, so this
        // finds nothing to move; it stays so that a path that breaks the reasoning costs one
        // stall, not the old table's items.
        debug_assert!(!self.rehashing(), "resize to {size} during a rehash");
        self.finish_rehash();
        let old = std::mem::replace(&mut self.table, empty_table(size));
        if self.len == 0 {
            return;
        }
        self.old_mask = old.len() - 1;
        self.old = old;
        // Writes before a resize can be due again: a grow needs `len` at `size`, a shrink below
        // a tenth of `size`, and each write moves `len` by at most one. The count is taken
        // before a growing insert adds its item and after a shrinking remove took its own, so
        // for both it is a lower bound.
        let until_grow = size.saturating_sub(self.len);
        let until_shrink = if size > MIN_BUCKETS {
            (self.len + 1).saturating_sub(size.div_ceil(10))
        } else {
            usize::MAX
        };
        self.pace = self.old.len().div_ceil(until_grow.min(until_shrink).max(1));
    }

    /// One rehash step: moves the old table's last `pace` buckets. Writes take one; readers
    /// that may take one (a command reading a big hash or set) do too, as Redis's dictFind,
    /// so a table only read after a resize started still ends up with one table.
    pub fn rehash_step(&mut self) {
        self.move_old_buckets(self.pace);
    }

    fn finish_rehash(&mut self) {
        self.move_old_buckets(self.old.len());
    }

    fn move_old_buckets(&mut self, n: usize) {
        if !self.rehashing() {
            return;
        }
        let mask = self.table.len() - 1;
        for _ in 0..n.min(self.old.len()) {
            let Some(mut head) = self.old.pop() else {
                break;
            };
            while let Some(mut node) = head {
                head = node.next.take();
                let idx = hash_bytes(node.item.key()) as usize & mask;
                node.next = self.table[idx].take();
                self.table[idx] = Some(node);
            }
        }
        if self.old.is_empty() {
            // Every bucket was popped, so freeing the old table is one deallocation.
            self.old = Vec::new();
        }
    }

    pub fn clear(&mut self) {
        free_chains(&mut self.table);
        free_chains(&mut self.old);
        self.table = Vec::new();
        self.old = Vec::new();
        self.len = 0;
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.old.iter().chain(&self.table).flat_map(chain)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.old
            .iter_mut()
            .chain(&mut self.table)
            .flat_map(chain_mut)
    }

    /// Removes every item for which `keep` returns false. It visits every bucket anyway, so it
    /// finishes a rehash in progress at once instead of step by step.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.finish_rehash();
        let mut removed = 0;
        for head in &mut self.table {
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

    /// Visits the bucket(s) at `cursor` and returns the next cursor (0 when done). Same algorithm
    /// as Redis's `dictScan`: the cursor counts with its bits reversed, so a table that grew or
    /// shrank between calls is still covered without missing anything present all along. While
    /// rehashing it visits the smaller table's bucket at the cursor, then every bucket of the
    /// larger table that expands from it (those holding the items that bucket would hold there),
    /// and returns the cursor after them in the larger table.
    pub fn scan<'a>(&'a self, cursor: u64, mut visit: impl FnMut(&'a T)) -> u64 {
        if self.table.is_empty() {
            return 0;
        }
        let table_mask = (self.table.len() - 1) as u64;
        if !self.rehashing() {
            chain(&self.table[(cursor & table_mask) as usize]).for_each(visit);
            return next_cursor(cursor, table_mask);
        }
        let old_mask = self.old_mask as u64;
        let (small, small_mask, large, large_mask) = if old_mask < table_mask {
            (&self.old, old_mask, &self.table, table_mask)
        } else {
            (&self.table, table_mask, &self.old, old_mask)
        };
        // `get`: the old table's buckets past `old.len()` were moved already, so they are empty.
        let mut bucket = |buckets: &'a Vec<Bucket<T>>, i: u64| {
            buckets
                .get(i as usize)
                .into_iter()
                .flat_map(chain)
                .for_each(&mut visit);
        };
        bucket(small, cursor & small_mask);
        let mut v = cursor;
        loop {
            bucket(large, v & large_mask);
            v = next_cursor(v, large_mask);
            // Done once the bits the larger table adds wrapped around to zero.
            if v & (small_mask ^ large_mask) == 0 {
                return v;
            }
        }
    }

    /// Bucket `i` of the old table's and the new table's buckets taken as one range (the old
    /// one's first): random picks draw from both while rehashing.
    fn bucket_across(&self, i: usize) -> &Bucket<T> {
        match self.old.get(i) {
            Some(b) => b,
            None => &self.table[i - self.old.len()],
        }
    }

    /// A random item, as Redis's `dictGetFairRandomKey`: a random bucket and then a random
    /// node of its chain would favour items in short chains, so it gathers up to 15 items from
    /// consecutive buckets starting at a random one (jumping elsewhere after a long run of
    /// empty ones, as `dictGetSomeKeys`) and picks one of those. A table of 15 items or fewer
    /// is gathered whole, so each is equally likely.
    pub fn random(&self) -> Option<&T> {
        const GATHER: usize = 15;
        if self.len == 0 {
            return None;
        }
        let mut rng = rand::rng();
        let total = self.old.len() + self.table.len();
        let bucket = |i: usize| self.bucket_across(i);
        let want = GATHER.min(self.len);
        let (mut chosen, mut seen, mut empty_run) = (None, 0usize, 0usize);
        let mut idx = rng.random_range(0..total);
        for _ in 0..want * 10 {
            let before = seen;
            for item in chain(bucket(idx)) {
                // Reservoir sampling: each item gathered so far is kept with equal chance.
                seen += 1;
                if rng.random_range(0..seen) == 0 {
                    chosen = Some(item);
                }
                if seen == want {
                    return chosen;
                }
            }
            if seen == before {
                empty_run += 1;
                if empty_run >= 5 && empty_run > want {
                    idx = rng.random_range(0..total);
                    empty_run = 0;
                    continue;
                }
            } else {
                empty_run = 0;
            }
            idx = (idx + 1) % total;
        }
        chosen.or_else(|| self.random_by_bucket())
    }

    /// A random non-empty bucket, then a random node in its chain (`dictGetRandomKey`).
    fn random_by_bucket(&self) -> Option<&T> {
        let mut rng = rand::rng();
        let total = self.old.len() + self.table.len();
        let bucket = |i: usize| self.bucket_across(i);
        // Load is kept at about 1/10 or more (in both tables while rehashing), so a random probe finds an
        // item quickly; fall back to a linear walk after a bounded number of tries.
        let mut idx = rng.random_range(0..total);
        for _ in 0..64 {
            if bucket(idx).is_some() {
                break;
            }
            idx = rng.random_range(0..total);
        }
        for _ in 0..total {
            if bucket(idx).is_some() {
                break;
            }
            idx = (idx + 1) % total;
        }
        let chain_len = chain(bucket(idx)).count();
        if chain_len == 0 {
            return None;
        }
        chain(bucket(idx)).nth(rng.random_range(0..chain_len))
    }
}

impl<T> Drop for Dict<T> {
    fn drop(&mut self) {
        free_chains(&mut self.table);
        free_chains(&mut self.old);
    }
}

impl<T: Keyed + Clone> Clone for Dict<T> {
    /// A copy with no rehash in progress, sized as the table items go into.
    fn clone(&self) -> Self {
        let mut d = Dict::new();
        if self.table.is_empty() {
            return d;
        }
        d.table = empty_table(self.table.len());
        let mask = d.table.len() - 1;
        for item in self.iter() {
            let idx = hash_bytes(item.key()) as usize & mask;
            let next = d.table[idx].take();
            d.table[idx] = Some(Box::new(Node {
                next,
                item: item.clone(),
            }));
        }
        d.len = self.len;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::hash_map::Entry;
    use std::collections::{HashMap, HashSet};

    #[derive(Clone, Debug, PartialEq)]
    struct Item(Vec<u8>);
    impl Keyed for Item {
        fn key(&self) -> &[u8] {
            &self.0
        }
    }

    fn key(i: u32) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    impl<T: Keyed> Dict<T> {
        /// Whether `key` is still in the old table (a rehash in progress has not moved it).
        fn in_old_table(&self, key: &[u8]) -> bool {
            self.rehashing()
                && self
                    .old
                    .get(hash_bytes(key) as usize & self.old_mask)
                    .is_some_and(|b| find(b, key).is_some())
        }
    }

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            assert!(d.insert(Item(key(i))).is_none());
        }
        assert_eq!(d.len(), 1000);
        for i in 0..1000u32 {
            assert!(d.get(&key(i)).is_some());
        }
        for i in 0..990u32 {
            assert!(d.remove(&key(i)).is_some());
        }
        assert_eq!(d.len(), 10);
        // Shrunk to 16 buckets; the 128 it shrinks from count until their move ends.
        assert!(d.buckets() <= 128 + 16, "table shrank: {}", d.buckets());
        assert!(d.remove(&key(5)).is_none());
    }

    /// Every key is found (and no removed one) at points where a rehash is in progress, through
    /// many grows and then many shrinks.
    #[test]
    fn lookups_are_right_mid_rehash_across_grows_and_shrinks() {
        let mut d = Dict::new();
        let n = 20_000u32;
        let (mut checks, mut grows, mut shrinks) = (0, 0, 0);
        let mut was_rehashing = false;
        let check = |d: &Dict<Item>, present: std::ops::Range<u32>, gone: std::ops::Range<u32>| {
            assert!(d.rehashing());
            assert_eq!(d.buckets(), d.table.len() + d.old_mask + 1);
            for i in present.clone() {
                assert!(d.get(&key(i)).is_some(), "key {i} missing mid-rehash");
            }
            for i in gone {
                assert!(d.get(&key(i)).is_none(), "removed key {i} found mid-rehash");
            }
            assert_eq!(d.iter().count(), present.len());
        };
        for i in 0..n {
            d.insert_new(Item(key(i)));
            assert_eq!(d.len(), i as usize + 1);
            if d.rehashing() && !was_rehashing {
                grows += 1;
            }
            was_rehashing = d.rehashing();
            // Check right after a grow started, and at odd points during the move.
            if d.rehashing() && (d.old.len() == d.old_mask + 1 || i % 251 == 0) {
                check(&d, 0..i + 1, i + 1..i + 50);
                checks += 1;
            }
        }
        for i in 0..n {
            assert_eq!(d.remove(&key(i)), Some(Item(key(i))));
            assert_eq!(d.len(), (n - i - 1) as usize);
            if d.rehashing() && !was_rehashing {
                shrinks += 1;
            }
            was_rehashing = d.rehashing();
            if d.rehashing() && (d.old.len() == d.old_mask + 1 || i % 41 == 0) {
                check(&d, i + 1..n, i.saturating_sub(50)..i + 1);
                checks += 1;
            }
        }
        assert!(d.is_empty());
        assert!(grows >= 10, "grows seen: {grows}");
        assert!(shrinks >= 4, "shrinks seen: {shrinks}");
        assert!(checks >= 50, "mid-rehash checks: {checks}");
    }

    /// SCAN returns every item present for the whole iteration while, between calls, the table
    /// grows and shrinks, resizes start and finish, and calls land mid-rehash.
    #[test]
    fn scan_covers_items_present_throughout_despite_incremental_resizes() {
        let (mut mid_rehash_calls, mut finishes) = (0, 0);
        for seed in 0..12u64 {
            let (mut grows, mut shrinks) = (0, 0);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut d = Dict::new();
            // Keys below 300 stay all along; others come and go.
            for i in 0..300u32 {
                d.insert_new(Item(key(i)));
            }
            let mut volatile: Vec<u32> = Vec::new();
            let mut next_volatile = 1_000_000u32;
            let mut growing = true;
            let mut seen = HashSet::new();
            let mut cursor = 0;
            for call in 0.. {
                assert!(call < 1_000_000, "seed {seed}: scan did not terminate");
                if d.rehashing() {
                    mid_rehash_calls += 1;
                }
                let (size_before, rehashing_before) = (d.table.len(), d.rehashing());
                cursor = d.scan(cursor, |it| {
                    seen.insert(it.0.clone());
                });
                if cursor == 0 {
                    break;
                }
                // Swing between about 300 and 3300 items, a few writes per call.
                if volatile.len() > 3_000 {
                    growing = false;
                } else if volatile.is_empty() {
                    growing = true;
                }
                for _ in 0..rng.random_range(1..12) {
                    if growing {
                        d.insert_new(Item(key(next_volatile)));
                        volatile.push(next_volatile);
                        next_volatile += 1;
                    } else if !volatile.is_empty() {
                        let v = volatile.swap_remove(rng.random_range(0..volatile.len()));
                        assert!(d.remove(&key(v)).is_some());
                    }
                }
                if d.table.len() > size_before {
                    grows += 1;
                } else if d.table.len() < size_before {
                    shrinks += 1;
                }
                if rehashing_before && !d.rehashing() {
                    finishes += 1;
                }
            }
            for i in 0..300u32 {
                assert!(seen.contains(&key(i)), "seed {seed}: missed {i}");
            }
            assert!(
                grows >= 3 && shrinks >= 1,
                "seed {seed}: grows {grows}, shrinks {shrinks} during the scan"
            );
        }
        assert!(
            mid_rehash_calls > 1_000,
            "calls mid-rehash: {mid_rehash_calls}"
        );
        assert!(finishes > 40, "rehashes finished between calls: {finishes}");
    }

    /// A cursor from the middle of one table size, carried across grow and shrink rehashes at
    /// their first, middle and last steps, still covers every item present throughout.
    #[test]
    fn scan_covers_items_when_cursor_crosses_each_rehash_phase() {
        for resume_after_calls in [1usize, 7, 40] {
            for moved_fraction in [0usize, 1, 2, 4] {
                let mut d = Dict::new();
                for i in 0..1024u32 {
                    d.insert_new(Item(key(i)));
                }
                let mut seen = HashSet::new();
                let mut cursor = 0;
                for _ in 0..resume_after_calls {
                    cursor = d.scan(cursor, |it| {
                        seen.insert(it.0.clone());
                    });
                }
                // Grow (1024 items fill 1024 buckets), then move part of the table.
                d.insert_new(Item(key(5_000)));
                assert!(d.rehashing());
                let steps = (d.old.len() / d.pace) * moved_fraction / 4;
                for _ in 0..steps {
                    d.get_mut(b"absent");
                }
                let (mut calls, mut next_removed, mut shrank) = (0, 100u32, false);
                loop {
                    cursor = d.scan(cursor, |it| {
                        seen.insert(it.0.clone());
                    });
                    calls += 1;
                    if cursor == 0 {
                        break;
                    }
                    // From call 50 on, remove 20 keys per call: the table shrinks mid-scan and
                    // the shrink's rehash spans several calls.
                    if calls >= 50 {
                        for _ in 0..20 {
                            if next_removed < 1024 {
                                d.remove(&key(next_removed));
                                next_removed += 1;
                            }
                        }
                        shrank |= d.rehashing() && d.old_mask > d.table.len();
                    }
                    assert!(calls < 100_000);
                }
                assert!(shrank, "no shrink mid-scan");
                for i in 0..100u32 {
                    assert!(
                        seen.contains(&key(i)),
                        "missed {i} (resume {resume_after_calls}, moved {moved_fraction}/4)"
                    );
                }
            }
        }
    }

    #[test]
    fn random_returns_members() {
        let mut d = Dict::new();
        assert!(d.random().is_none());
        for i in 0..50u32 {
            d.insert(Item(key(i)));
        }
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let it = d.random().unwrap();
            assert!(d.get(&it.0).is_some());
            seen.insert(it.0.clone());
        }
        assert!(seen.len() > 40);
    }

    /// While rehashing, random draws from both tables, in rough proportion to their items.
    #[test]
    fn random_draws_from_both_tables_mid_rehash() {
        let mut d = Dict::new();
        let mut i = 0u32;
        while d.len() < 4097 {
            d.insert_new(Item(key(i)));
            i += 1;
        }
        assert!(
            d.rehashing() && d.old_mask + 1 == 4096,
            "grew from 4096 buckets"
        );
        let check = |d: &Dict<Item>, what: &str| {
            let in_old = d.iter().filter(|it| d.in_old_table(&it.0)).count();
            assert!(in_old > 0 && in_old < d.len(), "{what}: {in_old} in old");
            let (mut from_old, mut from_new) = (0, 0);
            for _ in 0..4000 {
                let it = d.random().unwrap();
                assert!(d.get(&it.0).is_some());
                if d.in_old_table(&it.0) {
                    from_old += 1;
                } else {
                    from_new += 1;
                }
            }
            // Expected ~4000 * in_old / len from the old table.
            let expected = 4000 * in_old / d.len();
            assert!(
                from_old > expected / 2 && from_new > (4000 - expected) / 2,
                "{what}: {from_old} from old, {from_new} from new; {in_old} of {} in old",
                d.len()
            );
        };
        // About half of the old table moved.
        for _ in 0..d.old.len() / d.pace / 2 {
            d.get_mut(b"absent");
        }
        check(&d, "grow");
        d.finish_rehash();
        // Shrink: remove until a shrink starts, then move part of it.
        while !d.rehashing() {
            i -= 1;
            d.remove(&key(i));
        }
        for _ in 0..d.old.len() / d.pace / 3 {
            d.get_mut(b"absent");
        }
        check(&d, "shrink");
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Pair {
        key: Vec<u8>,
        value: u64,
    }
    impl Keyed for Pair {
        fn key(&self) -> &[u8] {
            &self.key
        }
    }

    /// Random op sequences against `std`'s HashMap: same answers, same contents, through grows
    /// and shrinks with rehashes in progress. (Debug builds also check that no resize starts
    /// during a rehash.)
    #[test]
    fn matches_hashmap_over_random_ops() {
        let mut rehash_ops = 0;
        for seed in 0..8u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut d: Dict<Pair> = Dict::new();
            let mut m: HashMap<Vec<u8>, u64> = HashMap::new();
            // Phases of random length that favour inserts, then removes, so sizes swing, tables
            // resize, and a shrink can become due soon after a grow.
            let (mut insert_bias, mut phase_end) = (0.3, 0);
            for op in 0..30_000u32 {
                if op == phase_end {
                    insert_bias = if insert_bias > 0.5 { 0.02 } else { 0.9 };
                    phase_end = op + rng.random_range(20..4_000);
                }
                if d.rehashing() {
                    rehash_ops += 1;
                }
                let k = key(rng.random_range(0..4_000u32));
                let ctx = format!("seed {seed} op {op}");
                let roll: f64 = rng.random();
                if roll < insert_bias * 0.5 {
                    let value = rng.random();
                    let old = d.insert(Pair {
                        key: k.clone(),
                        value,
                    });
                    assert_eq!(old.map(|p| p.value), m.insert(k, value), "{ctx}: insert");
                } else if roll < insert_bias {
                    if let Entry::Vacant(slot) = m.entry(k) {
                        let value = rng.random();
                        d.insert_new(Pair {
                            key: slot.key().clone(),
                            value,
                        });
                        slot.insert(value);
                    }
                } else if roll < 0.85 {
                    let got = d.remove(&k).map(|p| p.value);
                    assert_eq!(got, m.remove(&k), "{ctx}: remove");
                } else if roll < 0.92 {
                    let got = d.get_mut(&k).map(|p| {
                        p.value += 1;
                        p.value
                    });
                    let want = m.get_mut(&k).map(|v| {
                        *v += 1;
                        *v
                    });
                    assert_eq!(got, want, "{ctx}: get_mut");
                } else if roll < 0.99 {
                    assert_eq!(d.get(&k).map(|p| p.value), m.get(&k).copied(), "{ctx}: get");
                    if let Some(p) = d.random() {
                        assert_eq!(m.get(&p.key), Some(&p.value), "{ctx}: random");
                    }
                } else if roll < 0.995 {
                    let c = d.clone();
                    assert!(!c.rehashing());
                    assert_eq!(c.len(), m.len(), "{ctx}: clone");
                    for (k, v) in &m {
                        assert_eq!(c.get(k).map(|p| p.value), Some(*v), "{ctx}: clone");
                    }
                } else {
                    let cut: u64 = rng.random();
                    d.retain(|p| p.value < cut);
                    m.retain(|_, v| *v < cut);
                }
                assert_eq!(d.len(), m.len(), "{ctx}: len");
                if op % 500 == 0 || (d.rehashing() && op % 101 == 0) {
                    for (k, v) in &m {
                        assert_eq!(d.get(k).map(|p| p.value), Some(*v), "{ctx}: lost {k:?}");
                    }
                    let mut listed: Vec<_> = d.iter().map(|p| (p.key.clone(), p.value)).collect();
                    listed.sort();
                    let mut want: Vec<_> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    want.sort();
                    assert_eq!(listed, want, "{ctx}: iter");
                    for p in d.iter_mut() {
                        p.value = p.value.wrapping_mul(3);
                    }
                    for v in m.values_mut() {
                        *v = v.wrapping_mul(3);
                    }
                }
            }
            d.clear();
            assert!(d.is_empty() && d.iter().next().is_none() && d.buckets() == 0);
        }
        assert!(rehash_ops > 10_000, "ops during a rehash: {rehash_ops}");
    }

    #[test]
    fn retain_removes() {
        let mut d = Dict::new();
        for i in 0..100u32 {
            d.insert(Item(key(i)));
        }
        d.retain(|it| it.0[3] % 2 == 0);
        assert_eq!(d.len(), 50);
        assert_eq!(d.iter().count(), 50);
    }

    /// Dropping or clearing a dict whose chains are very long, in either table, does not recurse
    /// down the chain (which would overflow the test thread's stack).
    #[test]
    fn long_chains_drop_without_recursion() {
        fn long_chain(n: u32) -> Bucket<Item> {
            let mut head = None;
            for i in 0..n {
                head = Some(Box::new(Node {
                    next: head,
                    item: Item(key(i)),
                }));
            }
            head
        }
        let n = 300_000;
        let mut d = Dict::new();
        d.insert_new(Item(key(u32::MAX)));
        d.table[0] = long_chain(n);
        drop(d);

        let mut d = Dict::new();
        for i in 0..5u32 {
            d.insert_new(Item(key(1_000_000 + i)));
        }
        assert!(d.rehashing());
        d.old[0] = long_chain(n);
        d.clear();
        assert!(d.is_empty() && d.buckets() == 0);
    }

    /// Small and mid-sized tables (down to MIN_BUCKETS), every kind of write, one SCAN call per
    /// op so scans run across grows and shrinks to the smallest table, and random() after every
    /// op: checked against HashMap. (Debug builds also check that no resize starts mid-rehash.)
    #[test]
    fn small_tables_scan_random_and_lookups_match_hashmap() {
        for seed in 0..48u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut d: Dict<Pair> = Dict::new();
            let mut m: HashMap<Vec<u8>, u64> = HashMap::new();
            let range = [8u32, 40, 200, 3000][seed as usize % 4];
            let (mut bias, mut phase_end) = (0.5, 0);
            let mut cursor = 0u64;
            let mut scan_start: Option<HashSet<Vec<u8>>> = None;
            let mut seen: HashSet<Vec<u8>> = HashSet::new();
            let mut removed_since: HashSet<Vec<u8>> = HashSet::new();
            for op in 0..6_000u32 {
                if op == phase_end {
                    bias = if bias > 0.5 { 0.05 } else { 0.95 };
                    phase_end = op + rng.random_range(1..(range * 3));
                }
                let k = key(rng.random_range(0..range));
                let roll: f64 = rng.random();
                if roll < bias * 0.5 {
                    let v = rng.random();
                    let old = d.insert(Pair {
                        key: k.clone(),
                        value: v,
                    });
                    assert_eq!(old.map(|p| p.value), m.insert(k, v), "seed {seed} op {op}");
                } else if roll < bias {
                    if let Entry::Vacant(slot) = m.entry(k) {
                        let v = rng.random();
                        d.insert_new(Pair {
                            key: slot.key().clone(),
                            value: v,
                        });
                        slot.insert(v);
                    }
                } else if roll < 0.9 {
                    let got = d.remove(&k).map(|p| p.value);
                    assert_eq!(got, m.remove(&k), "seed {seed} op {op}");
                    removed_since.insert(k);
                } else {
                    let got = d.get_mut(&k).map(|p| p.value);
                    assert_eq!(got, m.get(&k).copied(), "seed {seed} op {op}");
                }
                assert_eq!(d.len(), m.len(), "seed {seed} op {op}");
                if !d.is_empty() {
                    let r = d.random().expect("random on non-empty");
                    assert_eq!(m.get(&r.key), Some(&r.value));
                } else {
                    assert!(d.random().is_none());
                }
                // One scan call per op.
                if scan_start.is_none() {
                    scan_start = Some(m.keys().cloned().collect());
                    seen.clear();
                    removed_since.clear();
                    cursor = 0;
                }
                cursor = d.scan(cursor, |p| {
                    seen.insert(p.key.clone());
                });
                if cursor == 0 {
                    let start = scan_start.take().unwrap();
                    for k in start {
                        if !removed_since.contains(&k) {
                            assert!(seen.contains(&k), "seed {seed} op {op}: scan missed {k:?}");
                        }
                    }
                }
                if op % 97 == 0 {
                    assert_eq!(d.iter().count(), m.len());
                }
            }
        }
    }
}
