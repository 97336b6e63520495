//! Freeing on a background thread (Redis's lazy free): `UNLINK` of a large value, `FLUSHALL` /
//! `FLUSHDB ASYNC`, and the same for `DEL` and plain flushes under `lazyfree-lazy-user-del` /
//! `lazyfree-lazy-user-flush`. The command takes the value (or a database's tables) out of the
//! keyspace under the shard lock, which is cheap, and hands it here; dropping ten million keys
//! would otherwise hold every shard, and so every client, for seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use parking_lot::Mutex;

use super::value::Value;
use super::{Db, Entry};

/// A value whose freeing takes more steps than this goes to the background (Redis's
/// `LAZYFREE_THRESHOLD`); a smaller one is freed at once, which is cheaper than handing it over.
pub const THRESHOLD: usize = 64;

/// What is handed to the freeing thread.
pub enum Garbage {
    Entry(Entry),
    Value(Value),
    Dbs(Vec<Db>),
}

#[derive(Default)]
pub struct LazyFree {
    /// To the freeing thread, started on first use; it stops when the store is dropped.
    tx: Mutex<Option<mpsc::Sender<(Garbage, u64)>>>,
    /// Objects handed over and not yet freed (`INFO`'s `lazyfree_pending_objects`).
    pending: Arc<AtomicU64>,
    /// Objects freed there so far (`lazyfreed_objects`).
    freed: Arc<AtomicU64>,
    /// `lazyfree-lazy-user-del`: `DEL` frees as `UNLINK` does.
    pub user_del: AtomicBool,
    /// `lazyfree-lazy-expire`: keys whose TTL passed.
    pub lazy_expire: AtomicBool,
    /// `lazyfree-lazy-eviction`: keys evicted under `maxmemory`.
    pub lazy_eviction: AtomicBool,
    /// `lazyfree-lazy-server-del`: values a command replaces or deletes as a side effect (SET
    /// over a key, RENAME or COPY onto one, a SORT/ZUNIONSTORE/... destination).
    pub lazy_server_del: AtomicBool,
}

impl LazyFree {
    /// Frees `garbage`, `objects` keys or values, in the background.
    pub fn free(&self, garbage: Garbage, objects: u64) {
        self.pending.fetch_add(objects, Ordering::Relaxed);
        let mut tx = self.tx.lock();
        if tx.is_none() {
            *tx = self.start();
        }
        let sent = match tx.as_ref() {
            Some(t) => t.send((garbage, objects)).map_err(|e| e.0),
            None => Err((garbage, objects)),
        };
        if let Err((garbage, objects)) = sent {
            // No thread (it could not be started): freed here, as without lazy free.
            drop(garbage);
            self.pending.fetch_sub(objects, Ordering::Relaxed);
        }
    }

    /// CONFIG RESETSTAT: `lazyfreed_objects` counts from zero again.
    pub fn reset_stats(&self) {
        self.freed.store(0, Ordering::Relaxed);
    }

    /// Frees a removed entry: in the background when `lazy` is on and it is large enough to
    /// be worth it, else here.
    pub fn dispose(&self, e: Entry, lazy: &AtomicBool) {
        if lazy.load(Ordering::Relaxed) && free_effort(&e.value) > THRESHOLD {
            self.free(Garbage::Entry(e), 1);
        }
    }

    /// [`LazyFree::dispose`] for a value replaced in place.
    pub fn dispose_value(&self, v: Value, lazy: &AtomicBool) {
        if lazy.load(Ordering::Relaxed) && free_effort(&v) > THRESHOLD {
            self.free(Garbage::Value(v), 1);
        }
    }

    fn start(&self) -> Option<mpsc::Sender<(Garbage, u64)>> {
        let (tx, rx) = mpsc::channel::<(Garbage, u64)>();
        let (pending, freed) = (self.pending.clone(), self.freed.clone());
        let spawned = std::thread::Builder::new()
            .name("reredis-lazyfree".into())
            .spawn(move || {
                for (garbage, objects) in rx {
                    drop(garbage);
                    pending.fetch_sub(objects, Ordering::Relaxed);
                    freed.fetch_add(objects, Ordering::Relaxed);
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!("cannot start the lazy-free thread: {e}");
                None
            }
        }
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn freed(&self) -> u64 {
        self.freed.load(Ordering::Relaxed)
    }
}

/// How many steps freeing `v` takes (Redis's `lazyfreeGetFreeEffort`): one per element of a
/// table, skiplist or list, one for a string or a compact encoding (a single allocation).
pub fn free_effort(v: &Value) -> usize {
    match v {
        Value::Str(_) | Value::Int(_) => 1,
        Value::List(l) => l.len(),
        Value::Hash(h) if h.encoding() == "hashtable" => h.len(),
        Value::Set(s) if s.encoding() == "hashtable" => s.len(),
        Value::ZSet(z) if z.encoding() == "skiplist" => z.len(),
        Value::Hash(_) | Value::Set(_) | Value::ZSet(_) => 1,
        // One per node, and per group its first group's pending entries (as Redis estimates).
        Value::Stream(s) => {
            let pel = s.groups.values().next().map_or(0, |g| g.pel.len());
            s.node_count() + s.groups.len() * (1 + pel)
        }
    }
}
