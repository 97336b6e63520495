//! The keyspace: values, expiry, and the per-slot index.
//!
//! Keys are split into [`SHARDS`] shards by hash slot range (shard = slot / 64), each behind its own
//! mutex, so connections on different cores rarely meet. A command locks the shards of the keys it
//! names (in ascending shard order, so two commands never deadlock) and works on a [`Keyspace`]
//! view of them; commands that touch everything (FLUSHALL, KEYS, MULTI/EXEC) lock all shards.
//! Nothing here knows about RESP, HTTP or the cluster bus.

pub mod blocking;
pub mod dict;
pub mod evict;
pub mod hash;
pub mod hll;
pub mod lazyfree;
pub mod list;
pub mod rdb;
pub mod sds;
pub mod set;
pub mod stream;
pub mod tracking;
pub mod value;
pub mod watch;
pub mod zset;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;

use crate::cluster::slots::{SLOTS, key_hash_slot};
use crate::observe::events::{Events, KeyEvent, class};
pub use dict::{Dict, Keyed};
pub use sds::Sds;
pub use value::{Entry, LfuTuning, Value};

pub const SHARDS: usize = 256;
pub const SLOTS_PER_SHARD: usize = SLOTS / SHARDS;

#[inline]
pub fn shard_of_slot(slot: u16) -> usize {
    slot as usize / SLOTS_PER_SHARD
}

/// A key with a time to live, kept apart from [`Entry`] so keys without TTL pay nothing for it
/// (as Redis's `expires` dict). Used for active expiry sampling.
#[derive(Clone)]
pub struct Expire {
    pub key: Sds,
    pub at_ms: i64,
}

impl Keyed for Expire {
    fn key(&self) -> &[u8] {
        &self.key
    }
}

#[derive(Default)]
pub struct Db {
    pub keys: Dict<Entry>,
    pub expires: Dict<Expire>,
}

impl Db {
    fn clear(&mut self) {
        self.keys.clear();
        self.expires.clear();
    }
}

/// Runs `f`, which may block for long, after handing the current tokio worker's tasks to
/// another thread (`block_in_place`) when it runs on a worker of a multi-threaded runtime. On
/// a connection thread (a current-thread runtime that enters the node's runtime for commands)
/// and outside a runtime it just runs `f`.
pub fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    if crate::server::on_connection_thread() {
        return f();
    }
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Counters kept under the shard lock, so the hot path never touches a shared cache line.
#[derive(Default, Clone, Copy)]
pub struct ShardStats {
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
    pub expired_stale_perc_samples: u64,
    pub evicted_keys: u64,
}

pub struct Shard {
    pub dbs: Box<[Db]>,
    /// Keys per slot in db 0, the only db a cluster uses.
    slot_counts: Box<[u32; SLOTS_PER_SHARD]>,
    pub stats: ShardStats,
    /// Keys of slots migrating away (db 0) that this node keeps serving whether it holds them or
    /// not: they were sent to the target and the target's copy may differ from ours (changed or
    /// deleted here while the batch was on its way, or a batch whose answer was lost). Routing
    /// sends no client to the target for them (no `-ASK`) until a batch carrying their present
    /// state is acknowledged. Empty outside a slot move; kept by the migrator.
    pub pinned: Pins,
}

/// The keys a slot move pinned in one shard (see [`Shard::pinned`]), counted by slot so that a
/// slot's count costs a lookup, not a pass over every pin.
#[derive(Default)]
pub struct Pins {
    keys: HashSet<Vec<u8>>,
    per_slot: std::collections::HashMap<u16, u32>,
}

impl Pins {
    pub fn insert(&mut self, key: Vec<u8>) -> bool {
        let slot = key_hash_slot(&key);
        let new = self.keys.insert(key);
        if new {
            *self.per_slot.entry(slot).or_default() += 1;
        }
        new
    }

    pub fn remove(&mut self, key: &[u8]) -> bool {
        if !self.keys.remove(key) {
            return false;
        }
        let slot = key_hash_slot(key);
        if let Some(n) = self.per_slot.get_mut(&slot) {
            *n -= 1;
            if *n == 0 {
                self.per_slot.remove(&slot);
            }
        }
        true
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        !self.keys.is_empty() && self.keys.contains(key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.keys.iter()
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.per_slot.clear();
    }

    /// How many keys of `slot` are pinned.
    pub fn in_slot(&self, slot: u16) -> u32 {
        self.per_slot.get(&slot).copied().unwrap_or(0)
    }
}

impl Extend<Vec<u8>> for Pins {
    fn extend<I: IntoIterator<Item = Vec<u8>>>(&mut self, keys: I) {
        for k in keys {
            self.insert(k);
        }
    }
}

impl Shard {
    fn new(databases: usize) -> Shard {
        Shard {
            dbs: (0..databases).map(|_| Db::default()).collect(),
            slot_counts: Box::new([0; SLOTS_PER_SHARD]),
            stats: ShardStats::default(),
            pinned: Pins::default(),
        }
    }

    fn note_insert(&mut self, db: usize, key: &[u8]) {
        if db == 0 {
            self.slot_counts[key_hash_slot(key) as usize % SLOTS_PER_SHARD] += 1;
        }
    }

    fn note_remove(&mut self, db: usize, key: &[u8]) {
        if db == 0 {
            let c = &mut self.slot_counts[key_hash_slot(key) as usize % SLOTS_PER_SHARD];
            *c = c.saturating_sub(1);
        }
    }

    fn recount_slots(&mut self) {
        self.slot_counts.fill(0);
        let keys: Vec<u16> = self.dbs[0]
            .keys
            .iter()
            .map(|e| key_hash_slot(&e.key))
            .collect();
        for slot in keys {
            self.slot_counts[slot as usize % SLOTS_PER_SHARD] += 1;
        }
    }

    fn expire_of(&self, db: usize, key: &[u8]) -> Option<i64> {
        self.dbs[db].expires.get(key).map(|e| e.at_ms)
    }

    /// Whether `key`'s TTL has passed. If so it is deleted (logged, notified, freed as
    /// `lazyfree-lazy-expire` says), unless expiry is held (a pause: see
    /// [`Store::expiry_held_until`]), when it stays, gone only to readers.
    fn expire_if_needed(&mut self, db: usize, key: &[u8], now_ms: i64, store: &Store) -> bool {
        match self.expire_of(db, key) {
            Some(at) if at <= now_ms && store.expiry_held(now_ms) => true,
            _ => self.expire_now_if_needed(db, key, now_ms, store),
        }
    }

    /// [`Shard::expire_if_needed`] deleting an expired key even while expiry is held: a
    /// write must not find it (Redis assumes no writes run during a pause; a few still do,
    /// such as a replica's stream or a slot move, and they see the key gone).
    fn expire_now_if_needed(&mut self, db: usize, key: &[u8], now_ms: i64, store: &Store) -> bool {
        match self.expire_of(db, key) {
            Some(at) if at <= now_ms => {
                let e = self.remove(db, key);
                self.stats.expired_keys += 1;
                publish_expired(store, db, key, now_ms);
                if let Some(e) = e {
                    stream_gone(store, db, key, &e.value);
                    store.lazyfree.dispose(e, &store.lazyfree.lazy_expire);
                }
                true
            }
            _ => false,
        }
    }

    fn remove(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        let e = self.dbs[db].keys.remove(key)?;
        if e.has_expire() {
            self.dbs[db].expires.remove(key);
        }
        self.note_remove(db, key);
        Some(e)
    }

    /// One round of active expiry on one db: sample up to `samples` keys with a TTL and delete
    /// the expired ones. Returns (sampled, expired).
    fn active_expire(
        &mut self,
        db: usize,
        samples: usize,
        now_ms: i64,
        store: &Store,
    ) -> (usize, usize) {
        let d = &self.dbs[db];
        if d.expires.is_empty() {
            return (0, 0);
        }
        let mut victims: SmallVec<[Sds; 20]> = SmallVec::new();
        let n = samples.min(d.expires.len());
        for _ in 0..n {
            if let Some(e) = d.expires.random()
                && e.at_ms <= now_ms
                && !victims.contains(&e.key)
            {
                victims.push(e.key.clone());
            }
        }
        let expired = victims.len();
        for k in victims {
            self.expire_if_needed(db, &k, now_ms, store);
        }
        (n, expired)
    }
}

/// A stream left `key` (deleted, expired, evicted, overwritten): its XREADGROUP waiters are
/// woken to be told so (`-UNBLOCKED`), as Redis's `signalKeyAsReady` on a deleted stream.
fn stream_gone(store: &Store, db: usize, key: &[u8], old: &Value) {
    if matches!(old, Value::Stream(_)) {
        store.blocked.signal_all(db, key);
    }
}

/// A key removed because its TTL passed: logged as a DEL (so a replay of the log removes it at
/// the same point, never later), WATCHers see a change, listeners an "expired".
fn publish_expired(store: &Store, db: usize, key: &[u8], now_ms: i64) {
    publish_removed(store, db, key, now_ms, "expired", class::EXPIRED);
}

/// A key removed by the node itself (expiry, eviction): logged as a DEL, so replicas and a
/// replay remove it too, touched for WATCHers, published as `event`.
fn publish_removed(
    store: &Store,
    db: usize,
    key: &[u8],
    now_ms: i64,
    event: &'static str,
    class: u32,
) {
    store.aof.append_del(db, key);
    store.key_changed(db, key, true, None);
    store
        .events
        .publish_with(|| KeyEvent::new(db, key, event, class, now_ms));
}

/// A key was added to a db (Redis's `dbAdd`): the `n` class of keyspace notifications.
fn publish_new(store: &Store, db: usize, key: &[u8], now_ms: i64) {
    if !store.notify_new.load(Ordering::Relaxed) {
        return;
    }
    store
        .events
        .publish_with(|| KeyEvent::new(db, key, "new", class::NEW, now_ms));
}

pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    /// Where key changes are published (commands publish through `Ctx::notify`).
    pub events: Arc<Events>,
    /// Clients blocked on keys; woken when a list or sorted set appears under a new key.
    pub blocked: blocking::Blocked,
    databases: usize,
    /// Bumped by every write; `INFO` uses it.
    dirty: AtomicU64,
    /// Whether the background cycle deletes expired keys (`DEBUG SET-ACTIVE-EXPIRE`); keys
    /// read after their TTL are deleted either way.
    pub active_expire: std::sync::atomic::AtomicBool,
    /// Until when (unix ms) expired keys are kept: while clients are paused (CLIENT PAUSE,
    /// a failover), as Redis, nothing expires, so the dataset a paused master shows its
    /// replicas stays still; readers see expired keys gone all the same. Shared with the
    /// node's pause state, which sets it.
    pub expiry_held_until: Arc<AtomicI64>,
    /// A replica keeps expired keys (readers see them gone) until its master's stream deletes
    /// them, as Redis's replicas: one that deleted a key on its own clock could miss a write
    /// the master applied to it just before it expired there (a PERSIST, an INCR), and the
    /// two copies would part for good.
    pub keep_expired: std::sync::atomic::AtomicBool,
    /// Keys clients WATCH.
    pub watches: watch::Watches,
    /// Keys clients cache (CLIENT TRACKING).
    pub tracking: tracking::Tracking,
    /// Whether read misses publish "keymiss" events (`notify-keyspace-events` with `m`).
    pub notify_keymiss: std::sync::atomic::AtomicBool,
    /// Whether key creations publish "new" events (`notify-keyspace-events` with `n`); like
    /// key misses, only keyspace notifications ask for them, not the live feed.
    pub notify_new: std::sync::atomic::AtomicBool,
    /// Whether accesses count in the LFU counters, and how (`maxmemory-policy`,
    /// `lfu-log-factor`, `lfu-decay-time`).
    pub lfu: LfuTuning,
    /// `hash-max-listpack-*`, read by hash writes.
    pub hash_limits: hash::HashLimits,
    /// `set-max-intset-entries`, read by set writes.
    pub set_limits: set::SetLimits,
    /// `stream-node-max-bytes` and `stream-node-max-entries`, read by XADD.
    pub stream_limits: stream::StreamLimits,
    /// Per-shard db-0 key counts as last read by [`Store::db0_keys_nonblocking`].
    last_db0_keys: Box<[AtomicU64]>,
    /// The append-only log writes go to (off unless `appendonly yes`).
    pub aof: Arc<crate::persist::aof::Aof>,
    /// Large values and flushed databases freed in the background.
    pub lazyfree: lazyfree::LazyFree,
}

impl Store {
    pub fn new(databases: usize, events: Arc<Events>) -> Store {
        Store {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(databases)))
                .collect(),
            events,
            blocked: blocking::Blocked::default(),
            databases,
            dirty: AtomicU64::new(0),
            active_expire: std::sync::atomic::AtomicBool::new(true),
            expiry_held_until: Arc::default(),
            keep_expired: Default::default(),
            watches: watch::Watches::default(),
            tracking: tracking::Tracking::default(),
            notify_keymiss: Default::default(),
            notify_new: Default::default(),
            lfu: LfuTuning::default(),
            hash_limits: hash::HashLimits::default(),
            set_limits: set::SetLimits::default(),
            stream_limits: stream::StreamLimits::default(),
            last_db0_keys: (0..SHARDS).map(|_| AtomicU64::new(0)).collect(),
            aof: Arc::default(),
            lazyfree: Default::default(),
        }
    }

    pub fn databases(&self) -> usize {
        self.databases
    }

    /// Whether expired keys are kept at `now_ms` (see [`Store::expiry_held_until`] and
    /// [`Store::keep_expired`]).
    #[inline]
    pub fn expiry_held(&self, now_ms: i64) -> bool {
        self.keep_expired.load(Ordering::Relaxed)
            || self.expiry_held_until.load(Ordering::Relaxed) > now_ms
    }

    /// A key changed (Redis's `signalModifiedKey`), with its shard locked: transactions
    /// WATCHing it will fail, clients caching it are told. `by_expiry`: it was deleted because
    /// its TTL passed; `writer`: the client whose command changed it.
    pub fn key_changed(&self, db: usize, key: &[u8], by_expiry: bool, writer: Option<u64>) {
        self.watches.touch(db, key, by_expiry);
        self.tracking.invalidate(key, writer);
    }

    /// The LRU clock: unix seconds, stored in each entry on access. (Redis keeps 24 bits of it
    /// and INFO shows those; counting from the epoch, not from start-up, lets RESTORE ...
    /// IDLETIME give a key an idle time longer than the node has been up.)
    pub fn lru_clock(&self) -> u32 {
        self.lru_clock_at(crate::commands::now_ms())
    }

    /// The LRU clock at `now_ms`, the time a command already read (one clock read fewer per
    /// command); a `now_ms` of 0 (start-up replay) reads the clock.
    pub fn lru_clock_at(&self, now_ms: i64) -> u32 {
        let now = if now_ms > 0 {
            now_ms
        } else {
            crate::commands::now_ms()
        };
        (now.max(0) / 1000) as u32
    }

    pub fn add_dirty(&self, n: u64) {
        if n > 0 {
            self.dirty.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn dirty(&self) -> u64 {
        self.dirty.load(Ordering::Relaxed)
    }

    /// Locks the shards holding `keys` (ascending order; duplicates collapse).
    pub fn lock_keys<'a, K: AsRef<[u8]>>(&'a self, keys: &[K], now_ms: i64) -> Keyspace<'a> {
        self.lock_shards(&Store::shards_of(keys), now_ms)
    }

    pub fn lock_shards<'a>(&'a self, idx: &[usize], now_ms: i64) -> Keyspace<'a> {
        let guards = idx.iter().map(|&i| (i, self.shards[i].lock())).collect();
        Keyspace {
            guards,
            all: false,
            now_ms,
            lru: self.lru_clock_at(now_ms),
            store: self,
        }
    }

    /// [`Store::lock_shards`] (every shard when `idx` is None), unless `give_up` says so while
    /// a shard is held by someone else: then None, with nothing held. Waits in slices of a
    /// millisecond, so a lock a running script holds (for as long as it runs) does not hold
    /// the caller's thread: it goes back and waits for the script without a thread.
    pub fn lock_shards_unless<'a>(
        &'a self,
        idx: Option<&[usize]>,
        now_ms: i64,
        give_up: impl Fn() -> bool,
    ) -> Option<Keyspace<'a>> {
        let every = idx.is_none();
        let all: SmallVec<[usize; 4]>;
        let idx = match idx {
            Some(i) => i,
            None => {
                all = (0..self.shards.len()).collect();
                &all
            }
        };
        let mut guards = SmallVec::with_capacity(idx.len());
        for &i in idx {
            let g = loop {
                if let Some(g) = self.shards[i].try_lock_for(std::time::Duration::from_millis(1)) {
                    break g;
                }
                if give_up() {
                    return None;
                }
            };
            guards.push((i, g));
        }
        Some(Keyspace {
            all: every,
            guards,
            now_ms,
            lru: self.lru_clock_at(now_ms),
            store: self,
        })
    }

    /// The shards of `keys`, sorted (the order every lock taker uses).
    pub fn shards_of<K: AsRef<[u8]>>(keys: &[K]) -> SmallVec<[usize; 4]> {
        let mut idx: SmallVec<[usize; 4]> = keys
            .iter()
            .map(|k| shard_of_slot(key_hash_slot(k.as_ref())))
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx
    }

    /// A view with no shard locked, for commands that name no keys.
    pub fn lock_none(&self, now_ms: i64) -> Keyspace<'_> {
        Keyspace {
            guards: SmallVec::new(),
            all: false,
            now_ms,
            lru: self.lru_clock_at(now_ms),
            store: self,
        }
    }

    pub fn lock_all(&self, now_ms: i64) -> Keyspace<'_> {
        let guards = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.lock()))
            .collect();
        Keyspace {
            guards,
            all: true,
            now_ms,
            lru: self.lru_clock_at(now_ms),
            store: self,
        }
    }

    pub fn lock_shard(&self, i: usize, now_ms: i64) -> Keyspace<'_> {
        self.lock_shards(&[i], now_ms)
    }

    /// Like [`Store::lock_shard`], giving up after `wait` (the bus uses it so two nodes moving
    /// slots of the same shard towards each other cannot wait on each other forever).
    pub fn try_lock_shard(
        &self,
        i: usize,
        now_ms: i64,
        wait: std::time::Duration,
    ) -> Option<Keyspace<'_>> {
        let guard = self.shards[i].try_lock_for(wait)?;
        Some(Keyspace {
            guards: smallvec::smallvec![(i, guard)],
            all: false,
            now_ms,
            lru: self.lru_clock_at(now_ms),
            store: self,
        })
    }

    /// Sum of per-shard counters (each shard locked in turn).
    pub fn stats(&self) -> ShardStats {
        self.lock_none(0).stats()
    }

    pub fn reset_stats(&self) {
        self.lock_none(0).reset_stats();
    }

    /// (keys, keys with a TTL) per db, for `INFO keyspace` and `DBSIZE`.
    pub fn db_sizes(&self) -> Vec<(usize, usize)> {
        self.lock_none(0).db_sizes()
    }

    /// Keys in db 0 without waiting for any shard: a shard that is busy (a slot migration holds
    /// it for a round trip) counts as it did the last time it was read. For gossip, which must
    /// not stall behind a migration.
    pub fn db0_keys_nonblocking(&self) -> u64 {
        let mut total = 0;
        for (s, seen) in self.shards.iter().zip(self.last_db0_keys.iter()) {
            match s.try_lock() {
                Some(g) => {
                    let n = g.dbs[0].keys.len() as u64;
                    seen.store(n, Ordering::Relaxed);
                    total += n;
                }
                None => total += seen.load(Ordering::Relaxed),
            }
        }
        total
    }

    /// Runs `f` while every shard in `shards` (ascending, no duplicates: the order commands
    /// take theirs in) is locked, giving it the key count of any slot of those shards. Keys a
    /// slot move pinned count too, held here or not: a slot with pins is not empty (its next
    /// owner may hold copies of them that a client deleted here since).
    pub fn with_slot_counts_locked<R>(
        &self,
        shards: &[usize],
        f: impl FnOnce(&dyn Fn(u16) -> u32) -> R,
    ) -> R {
        debug_assert!(shards.windows(2).all(|w| w[0] < w[1]));
        let mut guards: Vec<Option<MutexGuard<'_, Shard>>> = (0..SHARDS).map(|_| None).collect();
        for &i in shards {
            guards[i] = Some(self.shards[i].lock());
        }
        let count = |slot: u16| {
            guards[shard_of_slot(slot)].as_ref().map_or(0, |g| {
                g.slot_counts[slot as usize % SLOTS_PER_SHARD] + g.pinned.in_slot(slot)
            })
        };
        f(&count)
    }

    /// The key count of every slot (each shard locked once, in turn).
    pub fn slot_key_counts(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.shards.len() * SLOTS_PER_SHARD);
        for shard in &self.shards {
            out.extend_from_slice(&shard.lock().slot_counts[..]);
        }
        out
    }

    pub fn count_keys_in_slot(&self, slot: u16) -> u32 {
        let s = self.shards[shard_of_slot(slot)].lock();
        s.slot_counts[slot as usize % SLOTS_PER_SHARD]
    }

    /// One cycle of active expiry over every shard and db, as Redis's `activeExpireCycle`:
    /// sample 20 keys with a TTL, delete the expired ones, repeat while more than 10% of the
    /// sample was expired, bounded by `budget` rounds per shard so one cycle stays short.
    pub fn active_expire_cycle(&self, now_ms: i64, budget: usize) -> usize {
        let mut total = 0;
        if self.expiry_held(now_ms) {
            return 0;
        }
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            for db in 0..self.databases {
                for _ in 0..budget {
                    let (sampled, expired) = s.active_expire(db, 20, now_ms, self);
                    total += expired;
                    if sampled == 0 || expired * 10 <= sampled {
                        break;
                    }
                }
            }
        }
        total
    }
}

/// Notes an access to `e` at `lru` (the store's clock): its LRU time, and under an LFU policy
/// its counter too.
#[inline]
fn access(e: &mut Entry, lru: u32, store: &Store) {
    if store.lfu.is_on() {
        e.access_lfu(lru, &store.lfu);
    } else {
        e.touch(lru);
    }
}

/// The locked part of the keyspace a command works on.
pub struct Keyspace<'a> {
    guards: SmallVec<[(usize, MutexGuard<'a, Shard>); 2]>,
    all: bool,
    pub now_ms: i64,
    lru: u32,
    store: &'a Store,
}

/// A key that a command touched without locking it first: a command-table bug, reported to the
/// client instead of panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLocked;

impl<'a> Keyspace<'a> {
    pub fn store(&self) -> &'a Store {
        self.store
    }

    fn shard_index(&self, key: &[u8]) -> Result<usize, NotLocked> {
        let want = shard_of_slot(key_hash_slot(key));
        if self.all {
            return Ok(want);
        }
        self.guards
            .iter()
            .position(|(i, _)| *i == want)
            .ok_or(NotLocked)
    }

    fn shard(&mut self, key: &[u8]) -> Result<&mut Shard, NotLocked> {
        let i = self.shard_index(key)?;
        Ok(&mut self.guards[i].1)
    }

    /// Like `shard`, borrowing only the guards (so `self.store` stays readable).
    fn shard_of(&mut self, key: &[u8]) -> Result<&mut Shard, NotLocked> {
        self.shard_at_mut(shard_of_slot(key_hash_slot(key)))
    }

    /// Shard number `index`, if it is locked here.
    fn shard_at(&self, index: usize) -> Option<&Shard> {
        if self.all {
            return self.guards.get(index).map(|(_, g)| &**g);
        }
        self.guards
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, g)| &**g)
    }

    fn shard_at_mut(&mut self, index: usize) -> Result<&mut Shard, NotLocked> {
        if self.all {
            return Ok(&mut self.guards[index].1);
        }
        self.guards
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, g)| &mut **g)
            .ok_or(NotLocked)
    }

    /// Runs `f` on shard `i`: through this view's guard when it holds the shard (a command
    /// inside EXEC or a script, which holds every shard, must not lock one twice: the lock is
    /// not reentrant), else locked for the call. A view that holds some shards but not `i`
    /// waits at most a moment for it (locking out of order could deadlock) and gives up: None.
    pub fn with_shard<R>(&mut self, i: usize, f: impl FnOnce(&mut Shard) -> R) -> Option<R> {
        if let Ok(s) = self.shard_at_mut(i) {
            return Some(f(s));
        }
        let store = self.store;
        if self.guards.is_empty() {
            return Some(f(&mut store.shards[i].lock()));
        }
        store.shards[i]
            .try_lock_for(std::time::Duration::from_millis(50))
            .map(|mut g| f(&mut g))
    }

    /// Whether this view holds every shard (EXEC, a script, SORT).
    pub fn holds_all(&self) -> bool {
        self.all
    }

    fn shard_count(&self) -> usize {
        self.store.shards.len()
    }

    /// [`Store::stats`], read through this view (see [`Keyspace::with_shard`]).
    pub fn stats(&mut self) -> ShardStats {
        let mut total = ShardStats::default();
        for i in 0..self.shard_count() {
            if let Some(st) = self.with_shard(i, |s| s.stats) {
                total.keyspace_hits += st.keyspace_hits;
                total.keyspace_misses += st.keyspace_misses;
                total.expired_keys += st.expired_keys;
                total.evicted_keys += st.evicted_keys;
                total.expired_stale_perc_samples += st.expired_stale_perc_samples;
            }
        }
        total
    }

    /// [`Store::reset_stats`], through this view.
    pub fn reset_stats(&mut self) {
        for i in 0..self.shard_count() {
            self.with_shard(i, |s| s.stats = ShardStats::default());
        }
    }

    /// [`Store::db_sizes`], through this view.
    pub fn db_sizes(&mut self) -> Vec<(usize, usize)> {
        let mut sizes = vec![(0, 0); self.store.databases];
        for i in 0..self.shard_count() {
            self.with_shard(i, |s| {
                for (d, db) in s.dbs.iter().enumerate() {
                    sizes[d].0 += db.keys.len();
                    sizes[d].1 += db.expires.len();
                }
            });
        }
        sizes
    }

    /// Runs `f` with the key count of `slot` (pinned keys included, as
    /// [`Store::with_slot_counts_locked`]) while its shard stays locked, so no write can put a
    /// key in the slot before `f` is done (CLUSTER SETSLOT NODE hands an empty slot away).
    /// None if the shard could not be had (see [`Keyspace::with_shard`]).
    pub fn with_slot_count_held<R>(&mut self, slot: u16, f: impl FnOnce(u32) -> R) -> Option<R> {
        self.with_shard(shard_of_slot(slot), |s| {
            f(s.slot_counts[slot as usize % SLOTS_PER_SHARD] + s.pinned.in_slot(slot))
        })
    }

    /// [`Store::count_keys_in_slot`], through this view.
    pub fn count_keys_in_slot(&mut self, slot: u16) -> u32 {
        self.with_shard(shard_of_slot(slot), |s| {
            s.slot_counts[slot as usize % SLOTS_PER_SHARD]
        })
        .unwrap_or(0)
    }

    /// Whether `key` (db 0) is pinned to this node while its slot migrates: see [`Shard::pinned`].
    pub fn is_pinned(&self, key: &[u8]) -> bool {
        self.shard_at(shard_of_slot(key_hash_slot(key)))
            .is_some_and(|s| s.pinned.contains(key))
    }

    /// The pinned keys of a locked shard (the migrator's bookkeeping): see [`Shard::pinned`].
    pub fn pinned_mut(&mut self, shard: usize) -> Result<&mut Pins, NotLocked> {
        self.shard_at_mut(shard).map(|s| &mut s.pinned)
    }

    /// Drops `key` (db 0), which its slot's next owner now holds, and its pin; as Redis's
    /// MIGRATE, a transaction watching it fails. What a slot move does once the target has the
    /// key, and what the replay of a MOVED record does (see `crate::persist::aof`).
    pub fn settle_moved(&mut self, key: &[u8]) -> Result<(), NotLocked> {
        if self.remove(0, key)?.is_some() {
            self.store.key_changed(0, key, false, None);
        }
        self.pinned_mut(shard_of_slot(key_hash_slot(key)))?
            .remove(key);
        Ok(())
    }

    /// The live entry for `key`, expiring it first if its TTL passed. Counts a hit or miss, and
    /// an access (LRU time, LFU counter).
    pub fn lookup_read(&mut self, db: usize, key: &[u8]) -> Result<Option<&mut Entry>, NotLocked> {
        self.lookup_read_with(db, key, true)
    }

    /// [`Keyspace::lookup_read`] without counting an access, as Redis's `LOOKUP_NOTOUCH` (TYPE,
    /// EXISTS, TTL: asking about a key does not make it recently or frequently used).
    pub fn lookup_read_notouch(
        &mut self,
        db: usize,
        key: &[u8],
    ) -> Result<Option<&mut Entry>, NotLocked> {
        self.lookup_read_with(db, key, false)
    }

    /// [`Keyspace::lookup_read`] counting an access only when `touch`.
    pub fn lookup_read_with(
        &mut self,
        db: usize,
        key: &[u8],
        touch: bool,
    ) -> Result<Option<&mut Entry>, NotLocked> {
        let (now, lru) = (self.now_ms, self.lru);
        let store = self.store;
        let s = self.shard_of(key)?;
        let found = if s.expire_if_needed(db, key, now, store) {
            None
        } else {
            s.dbs[db].keys.get_mut(key)
        };
        match found {
            Some(e) => {
                s.stats.keyspace_hits += 1;
                if touch {
                    access(e, lru, store);
                }
                Ok(Some(e))
            }
            None => {
                s.stats.keyspace_misses += 1;
                // Redis notifies a miss where it counts one; only keyspace notifications ask
                // for it (it is a read, not news for the live feed).
                if store.notify_keymiss.load(Ordering::Relaxed) {
                    store
                        .events
                        .publish_with(|| KeyEvent::new(db, key, "keymiss", class::KEY_MISS, now));
                }
                Ok(None)
            }
        }
    }

    /// The live entry for `key`, for a command about to modify it (no hit/miss counted).
    pub fn lookup_write(&mut self, db: usize, key: &[u8]) -> Result<Option<&mut Entry>, NotLocked> {
        let (now, lru) = (self.now_ms, self.lru);
        let store = self.store;
        let s = self.shard_of(key)?;
        s.expire_now_if_needed(db, key, now, store);
        let found = s.dbs[db].keys.get_mut(key);
        if let Some(e) = found {
            access(e, lru, store);
            return Ok(Some(e));
        }
        Ok(None)
    }

    /// The live entry for `key` without counting an access (OBJECT, MEMORY USAGE, TYPE checks).
    pub fn peek(&mut self, db: usize, key: &[u8]) -> Result<Option<&Entry>, NotLocked> {
        let now = self.now_ms;
        let store = self.store;
        let s = self.shard_of(key)?;
        if s.expire_if_needed(db, key, now, store) {
            return Ok(None);
        }
        Ok(s.dbs[db].keys.get(key))
    }

    /// Deletes `key` if its TTL passed, even while expiry is held (a slot move neither carries
    /// nor waits for keys that are gone). Whether it did.
    pub fn purge_expired(&mut self, db: usize, key: &[u8]) -> Result<bool, NotLocked> {
        let (now, store) = (self.now_ms, self.store);
        let s = self.shard_of(key)?;
        Ok(s.expire_now_if_needed(db, key, now, store))
    }

    /// The entry for `key` by shared reference, so a command can hold several at once (SINTER,
    /// SUNION). No expiry or access accounting: look each key up with `lookup_read` first.
    pub fn get(&self, db: usize, key: &[u8]) -> Result<Option<&Entry>, NotLocked> {
        let i = self.shard_index(key)?;
        Ok(self.guards[i].1.dbs[db].keys.get(key))
    }

    /// Runs `f` on shard `i`, using this view's lock when it holds it, else locking the shard
    /// just for the call (SCAN walks shards one at a time without holding them all).
    pub fn visit_shard<R>(&mut self, i: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        if let Some((_, g)) = self.guards.iter_mut().find(|(j, _)| *j == i) {
            return f(g);
        }
        let mut g = self.store.shards[i].lock();
        f(&mut g)
    }

    /// Deletes those of `keys` (all in shard `i`) that have expired, as a read that met them
    /// would (SCAN's lazy expiry, as Redis's).
    pub fn expire_met(&mut self, i: usize, db: usize, keys: &[Sds]) {
        let now = self.now_ms;
        let store = self.store;
        self.visit_shard(i, |s| {
            for k in keys {
                s.expire_if_needed(db, k, now, store);
            }
        });
    }

    /// [`Keyspace::exists`] counting an access when the key is there (Redis's
    /// lookupKeyWrite: EXPIRE, RENAME and MOVE make a key recently and frequently used), with
    /// no hit or miss counted.
    pub fn exists_touch(&mut self, db: usize, key: &[u8]) -> Result<bool, NotLocked> {
        let (now, lru) = (self.now_ms, self.lru);
        let store = self.store;
        let s = self.shard_of(key)?;
        if s.expire_if_needed(db, key, now, store) {
            return Ok(false);
        }
        Ok(match s.dbs[db].keys.get_mut(key) {
            Some(e) => {
                access(e, lru, store);
                true
            }
            None => false,
        })
    }

    pub fn exists(&mut self, db: usize, key: &[u8]) -> Result<bool, NotLocked> {
        let now = self.now_ms;
        let store = self.store;
        let s = self.shard_of(key)?;
        Ok(!s.expire_if_needed(db, key, now, store) && s.dbs[db].keys.contains(key))
    }

    /// Stores `value` under `key`. `ttl`: `None` clears any TTL, `Some(ms)` sets one;
    /// with `keep_ttl` an existing TTL stays.
    pub fn set(
        &mut self,
        db: usize,
        key: &[u8],
        value: Value,
        expire_at_ms: Option<i64>,
        keep_ttl: bool,
    ) -> Result<(), NotLocked> {
        let lru = self.lru;
        let now = self.now_ms;
        let store = self.store;
        let s = self.shard_of(key)?;
        s.expire_now_if_needed(db, key, now, store);
        let d = &mut s.dbs[db];
        let had_expire;
        if let Some(e) = d.keys.get_mut(key) {
            had_expire = e.has_expire();
            let old = std::mem::replace(&mut e.value, value);
            stream_gone(store, db, key, &old);
            store
                .lazyfree
                .dispose_value(old, &store.lazyfree.lazy_server_del);
            e.clear_raw();
            access(e, lru, store);
            if !keep_ttl || !had_expire {
                e.set_has_expire(expire_at_ms.is_some());
            }
        } else {
            had_expire = false;
            let ready = value.may_unblock();
            // XREAD waiters do not consume: a stream wakes them all.
            let stream = matches!(value, Value::Stream(_));
            let mut e = Entry::new(Sds::new(key), value, lru);
            e.set_has_expire(expire_at_ms.is_some());
            d.keys.insert_new(e);
            s.note_insert(db, key);
            publish_new(store, db, key, now);
            if stream {
                store.blocked.signal_all(db, key);
            } else if ready {
                store.blocked.signal(db, key);
            }
        }
        let d = &mut s.dbs[db];
        match expire_at_ms {
            Some(at) => {
                d.expires.insert(Expire {
                    key: Sds::new(key),
                    at_ms: at,
                });
            }
            None if had_expire && !keep_ttl => {
                d.expires.remove(key);
            }
            None => {}
        }
        Ok(())
    }

    /// Inserts an entry moved from elsewhere (RENAME, MOVE, COPY), replacing any old value.
    pub fn put_entry(
        &mut self,
        db: usize,
        mut entry: Entry,
        expire_at_ms: Option<i64>,
    ) -> Result<(), NotLocked> {
        let key = entry.key.clone();
        let (store, now) = (self.store, self.now_ms);
        if let Some(old) = self.remove(db, &key)? {
            store.lazyfree.dispose(old, &store.lazyfree.lazy_server_del);
        }
        if matches!(entry.value, Value::Stream(_)) {
            self.store.blocked.signal_all(db, &key);
        } else if entry.value.may_unblock() {
            self.store.blocked.signal(db, &key);
        }
        let s = self.shard(&key)?;
        entry.set_has_expire(expire_at_ms.is_some());
        s.dbs[db].keys.insert_new(entry);
        s.note_insert(db, &key);
        publish_new(store, db, &key, now);
        if let Some(at) = expire_at_ms {
            s.dbs[db].expires.insert(Expire { key, at_ms: at });
        }
        Ok(())
    }

    pub fn remove(&mut self, db: usize, key: &[u8]) -> Result<Option<Entry>, NotLocked> {
        let now = self.now_ms;
        let store = self.store;
        let s = self.shard_of(key)?;
        if s.expire_now_if_needed(db, key, now, store) {
            return Ok(None);
        }
        let e = s.remove(db, key);
        if let Some(e) = &e {
            stream_gone(store, db, key, &e.value);
        }
        Ok(e)
    }

    /// The absolute expiry time of a live key, if it has one.
    pub fn expire_at(&mut self, db: usize, key: &[u8]) -> Result<Option<i64>, NotLocked> {
        let s = self.shard(key)?;
        Ok(s.expire_of(db, key))
    }

    /// Sets or clears the TTL of an existing key; returns false when the key does not exist.
    pub fn set_expire(
        &mut self,
        db: usize,
        key: &[u8],
        at_ms: Option<i64>,
    ) -> Result<bool, NotLocked> {
        let s = self.shard(key)?;
        let d = &mut s.dbs[db];
        let Some(e) = d.keys.get_mut(key) else {
            return Ok(false);
        };
        e.set_has_expire(at_ms.is_some());
        match at_ms {
            Some(at) => {
                d.expires.insert(Expire {
                    key: Sds::new(key),
                    at_ms: at,
                });
            }
            None => {
                d.expires.remove(key);
            }
        }
        Ok(true)
    }

    /// Keys in a db across the locked shards.
    pub fn dbsize(&self, db: usize) -> usize {
        self.guards.iter().map(|(_, s)| s.dbs[db].keys.len()).sum()
    }

    /// Locked shards, in ascending order, for whole-keyspace commands.
    pub fn shards_mut(&mut self) -> impl Iterator<Item = (usize, &mut Shard)> {
        self.guards.iter_mut().map(|(i, s)| (*i, &mut **s))
    }

    /// Empties `db` in every locked shard; with `lazy`, its tables are freed in the background
    /// (`FLUSHDB ASYNC`), so the shards are held only to take them out. Every client caching
    /// keys is told to drop them all (tracking does not know dbs apart).
    pub fn flush_db(&mut self, db: usize, lazy: bool) -> usize {
        let n = self.flush_one(db, lazy);
        self.store.tracking.flushed();
        n
    }

    /// Empties every db in every locked shard, as [`Keyspace::flush_db`] does one.
    pub fn flush_all(&mut self, lazy: bool) -> usize {
        let n = (0..self.store.databases())
            .map(|db| self.flush_one(db, lazy))
            .sum();
        self.store.tracking.flushed();
        n
    }

    fn flush_one(&mut self, db: usize, lazy: bool) -> usize {
        let watches = &self.store.watches;
        if watches.active() {
            let guards = &self.guards;
            let exists = |k: &[u8]| guards.iter().any(|(_, s)| s.dbs[db].keys.contains(k));
            watches.touch_db(db, exists, |_| None);
        }
        for key in self.store.blocked.keys_of(db) {
            if let Some(e) = self
                .guards
                .iter()
                .find_map(|(_, s)| s.dbs[db].keys.get(&key))
            {
                stream_gone(self.store, db, &key, &e.value);
            }
        }
        let mut n = 0;
        let mut taken = Vec::new();
        for (_, s) in self.guards.iter_mut() {
            n += s.dbs[db].keys.len();
            if lazy {
                taken.push(std::mem::take(&mut s.dbs[db]));
            } else {
                s.dbs[db].clear();
            }
            if db == 0 {
                s.recount_slots();
            }
        }
        if lazy && n > 0 {
            self.store
                .lazyfree
                .free(lazyfree::Garbage::Dbs(taken), n as u64);
        }
        n
    }

    /// Removes `key` as `UNLINK` does: a value that takes more than
    /// [`lazyfree::THRESHOLD`] steps to free is freed in the background.
    pub fn unlink(&mut self, db: usize, key: &[u8]) -> Result<bool, NotLocked> {
        let Some(e) = self.remove(db, key)? else {
            return Ok(false);
        };
        if lazyfree::free_effort(&e.value) > lazyfree::THRESHOLD {
            self.store.lazyfree.free(lazyfree::Garbage::Entry(e), 1);
        }
        Ok(true)
    }

    pub fn swap_db(&mut self, a: usize, b: usize) {
        let watches = &self.store.watches;
        if watches.active() {
            let now = self.now_ms;
            let guards = &self.guards;
            let exists =
                |db: usize, k: &[u8]| guards.iter().any(|(_, s)| s.dbs[db].keys.contains(k));
            // For the db swapped in: Some(expired?) when the key is there.
            let state = |db: usize, k: &[u8]| {
                guards.iter().find_map(|(_, s)| {
                    s.dbs[db]
                        .keys
                        .contains(k)
                        .then(|| s.expire_of(db, k).is_some_and(|at| at <= now))
                })
            };
            watches.touch_db(a, |k| exists(a, k), |k| state(b, k));
            watches.touch_db(b, |k| exists(b, k), |k| state(a, k));
        }
        let is_stream = |guards: &[(usize, MutexGuard<'_, Shard>)], db: usize, k: &[u8]| {
            guards.iter().any(|(_, s)| {
                matches!(s.dbs[db].keys.get(k), Some(e) if matches!(e.value, Value::Stream(_)))
            })
        };
        // Waited keys whose stream goes away with the swap (their XREADGROUP waiters are told).
        let had_streams: Vec<Vec<bytes::Bytes>> = [a, b]
            .iter()
            .map(|&db| {
                let waited = self.store.blocked.keys_of(db);
                waited
                    .into_iter()
                    .filter(|k| is_stream(&self.guards, db, k))
                    .collect()
            })
            .collect();
        for (_, s) in self.guards.iter_mut() {
            s.dbs.swap(a, b);
            if a == 0 || b == 0 {
                s.recount_slots();
            }
        }
        // Clients blocked on keys of either db may be served by what was swapped in.
        let guards = &self.guards;
        for (db, had) in [a, b].into_iter().zip(&had_streams) {
            self.store.blocked.signal_db(db, |k| {
                is_stream(guards, db, k) || had.iter().any(|h| &h[..] == k)
            });
        }
    }

    /// A random live key of `db` among the locked shards (expired keys met on the way are
    /// deleted, as Redis does).
    pub fn random_key(&mut self, db: usize) -> Option<Sds> {
        let now = self.now_ms;
        let held = self.store.expiry_held(now);
        let mut tries = 100;
        let nonempty: SmallVec<[usize; 32]> = self
            .guards
            .iter()
            .enumerate()
            .filter(|(_, (_, s))| !s.dbs[db].keys.is_empty())
            .map(|(i, _)| i)
            .collect();
        if nonempty.is_empty() {
            return None;
        }
        // Weight shards by size so every key is about equally likely; `total` follows the
        // deletions below. Each try returns a live key or deletes an expired one, so this ends:
        // as Redis's dbRandomKey, it goes on until a live key is found or the db is empty.
        let mut total: usize = nonempty
            .iter()
            .map(|&i| self.guards[i].1.dbs[db].keys.len())
            .sum();
        while total > 0 {
            let mut pick = rand::random_range(0..total);
            let mut chosen = None;
            for &i in &nonempty {
                let n = self.guards[i].1.dbs[db].keys.len();
                if pick < n {
                    chosen = Some(i);
                    break;
                }
                pick -= n;
            }
            let s = &mut self.guards[chosen?].1;
            let key = s.dbs[db].keys.random()?.key.clone();
            if !s.expire_if_needed(db, &key, now, self.store) {
                return Some(key);
            }
            if held {
                // Expired keys stay (a pause, a replica): draw again, and after 100 draws give
                // an expired one rather than loop on them (Redis's replica does the same).
                tries -= 1;
                if tries == 0 {
                    return Some(key);
                }
            } else {
                total -= 1;
            }
        }
        None
    }

    /// About `limit` db-0 keys of locked shard `shard` whose slot passes `want`, going on from
    /// `cursor` (SCAN's cursor over the shard's table: every key present from the first call
    /// to the one that sets `cursor` back to 0 is returned once at least, across resizes). A
    /// bucket is taken whole, so a few more than `limit` may come. For slot migration: each
    /// batch goes on where the last one stopped instead of walking past the keys of the slots
    /// that stay, from the start of the shard, every time.
    pub fn keys_in_slots_from(
        &mut self,
        shard: usize,
        want: impl Fn(u16) -> bool,
        limit: usize,
        cursor: &mut u64,
    ) -> Vec<Sds> {
        let mut out = Vec::new();
        let Some(s) = self.shard_at(shard) else {
            *cursor = 0;
            return out;
        };
        loop {
            *cursor = s.dbs[0].keys.scan(*cursor, |e| {
                if want(key_hash_slot(&e.key)) {
                    out.push(e.key.clone());
                }
            });
            if *cursor == 0 || out.len() >= limit {
                return out;
            }
        }
    }

    /// Up to `limit` db-0 keys of locked shard `shard` whose slot passes `want` (slot migration).
    pub fn keys_in_slots(
        &mut self,
        shard: usize,
        want: impl Fn(u16) -> bool,
        limit: usize,
    ) -> Vec<Sds> {
        let Some(s) = self.shard_at(shard) else {
            return Vec::new();
        };
        s.dbs[0]
            .keys
            .iter()
            .filter(|e| want(key_hash_slot(&e.key)))
            .take(limit)
            .map(|e| e.key.clone())
            .collect()
    }

    /// Keys of one slot in db 0 (for CLUSTER GETKEYSINSLOT and slot migration).
    pub fn keys_in_slot(&mut self, slot: u16, limit: usize) -> Vec<Sds> {
        self.keys_in_slots(shard_of_slot(slot), |s| s == slot, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_of_key(k: &[u8]) -> usize {
        shard_of_slot(key_hash_slot(k))
    }

    /// A slot with pinned keys is not empty (its handoff waits), held here or not, and a
    /// settled key leaves it: the count is kept as pins come and go.
    #[test]
    fn pinned_keys_count_in_their_slot_until_settled() {
        let store = Store::new(1, Arc::new(Events::default()));
        let (a, b) = (b"{s}a".as_slice(), b"{s}b".as_slice());
        let slot = key_hash_slot(a);
        let shard = shard_of_slot(slot);
        let count = || store.with_slot_counts_locked(&[shard], |c| c(slot));
        {
            let mut ks = store.lock_shard(shard, 0);
            ks.set(0, a, Value::Str(Sds::new(b"1")), None, false)
                .unwrap();
            let p = ks.pinned_mut(shard).unwrap();
            p.insert(a.to_vec());
            p.insert(b.to_vec());
            assert!(!p.insert(b.to_vec()), "a key is pinned once");
        }
        assert_eq!(
            count(),
            1 + 2,
            "one key held, two pinned (one of them not held)"
        );
        store.lock_shard(shard, 0).settle_moved(a).unwrap();
        assert_eq!(count(), 1, "a is gone and unpinned, b still pinned");
        let mut ks = store.lock_shard(shard, 0);
        assert!(ks.is_pinned(b) && !ks.is_pinned(a));
        assert!(matches!(ks.peek(0, a), Ok(None)));
        ks.settle_moved(b).unwrap();
        drop(ks);
        assert_eq!(count(), 0);
    }

    /// RANDOMKEY deletes expired keys it meets; one that empties a shard must not make the next
    /// draw land on that shard and answer nil while another shard still holds a live key.
    #[test]
    fn random_key_finds_the_live_key_after_a_shard_is_emptied_by_expiry() {
        // The expired key in a lower shard than the live one: the first of the non-empty shards.
        let (expired, live) = (0..)
            .map(|i| (format!("x{i}"), format!("y{i}")))
            .find(|(x, y)| shard_of_key(x.as_bytes()) < shard_of_key(y.as_bytes()))
            .unwrap();
        for _ in 0..200 {
            let store = Store::new(1, Arc::new(Events::default()));
            for (k, at) in [(&expired, Some(1_000)), (&live, None)] {
                let mut ks = store.lock_keys(&[k.as_bytes()], 0);
                let e = Entry::new(Sds::new(k.as_bytes()), Value::Int(1), 0);
                ks.put_entry(0, e, at).unwrap();
            }
            let mut ks = store.lock_all(2_000);
            let got = ks.random_key(0).map(|k| k.to_vec());
            assert_eq!(got.as_deref(), Some(live.as_bytes()));
        }
    }

    /// A slot move's batches taken from a cursor cover every key of the moving slots once they
    /// are deleted as they go (as the migrator does), and none of the others, while the shard
    /// grows and shrinks under them.
    #[test]
    fn keys_in_slots_from_covers_the_moving_slots_across_resizes() {
        let store = Store::new(1, Arc::new(Events::default()));
        let shard = 3;
        let slots: Vec<u16> = (0..SLOTS as u16)
            .filter(|&s| shard_of_slot(s) == shard)
            .collect();
        let moving = |slot: u16| slot.is_multiple_of(2);
        let keys_of = |prefix: &str, n: usize| -> Vec<String> {
            (0..)
                .map(|i| format!("{prefix}{i}"))
                .filter(|k| shard_of_key(k.as_bytes()) == shard)
                .take(n)
                .collect()
        };
        let put = |k: &str| {
            let mut ks = store.lock_keys(&[k.as_bytes()], 0);
            let e = Entry::new(Sds::new(k.as_bytes()), Value::Int(1), 0);
            ks.put_entry(0, e, None).unwrap();
        };
        let first = keys_of("k", 3000);
        first.iter().for_each(|k| put(k));
        let later = keys_of("late", 2000);
        let want: std::collections::BTreeSet<String> = first
            .iter()
            .filter(|k| moving(key_hash_slot(k.as_bytes())))
            .cloned()
            .collect();
        assert!(want.len() > 1000 && slots.len() == SLOTS / SHARDS);
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = 0;
        let mut batches = 0;
        loop {
            let mut ks = store.lock_shard(shard, 0);
            let batch = ks.keys_in_slots_from(shard, moving, 50, &mut cursor);
            for k in &batch {
                let k = String::from_utf8(k.to_vec()).unwrap();
                assert!(moving(key_hash_slot(k.as_bytes())), "{k} is not moving");
                ks.remove(0, k.as_bytes()).unwrap();
                seen.insert(k);
            }
            drop(ks);
            // Keys of the slots that stay arrive meanwhile: the table grows under the cursor.
            if batches < later.len() / 100 {
                later[batches * 100..batches * 100 + 100]
                    .iter()
                    .filter(|k| !moving(key_hash_slot(k.as_bytes())))
                    .for_each(|k| put(k));
            }
            batches += 1;
            if batch.is_empty() && cursor == 0 {
                break;
            }
            assert!(batches < 10_000);
        }
        assert_eq!(seen, want);
        let mut ks = store.lock_shard(shard, 0);
        assert!(ks.keys_in_slots(shard, moving, 10).is_empty());
    }

    /// As Redis's dbRandomKey, RANDOMKEY keeps deleting expired keys until it meets a live one:
    /// however many expired keys wait for reclaiming, a live key is found.
    #[test]
    fn random_key_goes_past_any_number_of_expired_keys() {
        for _ in 0..5 {
            let store = Store::new(1, Arc::new(Events::default()));
            let keys: Vec<String> = (0..500).map(|i| format!("gone:{i}")).collect();
            for k in &keys {
                let mut ks = store.lock_keys(&[k.as_bytes()], 0);
                let e = Entry::new(Sds::new(k.as_bytes()), Value::Int(1), 0);
                ks.put_entry(0, e, Some(1_000)).unwrap();
            }
            let mut ks = store.lock_keys(&[b"alive"], 0);
            let e = Entry::new(Sds::new(b"alive"), Value::Int(1), 0);
            ks.put_entry(0, e, None).unwrap();
            drop(ks);
            let mut ks = store.lock_all(2_000);
            assert_eq!(ks.random_key(0).as_deref(), Some(&b"alive"[..]));
        }
    }
}
