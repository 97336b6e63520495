//! WATCH: which clients watch which keys, so that a change to a key makes their transactions
//! fail (Redis's `touchWatchedKey`, `touchAllWatchedKeysInDb`).
//!
//! The table is split like the keyspace (by the key's shard) and is only ever changed or read
//! while that keyspace shard is locked, so a write and a WATCH of the same key cannot race.
//! With nobody watching, a write pays one relaxed atomic load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::{SHARDS, shard_of_slot};
use crate::cluster::slots::key_hash_slot;

/// One client's transaction state as writers see it: set when a watched key changes.
#[derive(Debug, Default)]
pub struct Watcher {
    dirty: AtomicBool,
}

impl Watcher {
    pub fn new() -> Arc<Watcher> {
        Arc::new(Watcher::default())
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Relaxed)
    }

    pub fn set_dirty(&self, on: bool) {
        self.dirty.store(on, Ordering::Relaxed);
    }
}

struct Watch {
    db: usize,
    watcher: Arc<Watcher>,
    /// The key was already logically expired when WATCH ran: its deletion by expiry is no
    /// change (Redis 7.0's `watchedKey.expired`).
    expired: bool,
}

type WatchShard = HashMap<Bytes, SmallVec<[Watch; 1]>>;

pub struct Watches {
    shards: Box<[Mutex<WatchShard>]>,
    /// Watch entries across all shards; zero means writes skip everything.
    count: AtomicUsize,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            count: AtomicUsize::new(0),
        }
    }
}

fn shard_of(key: &[u8]) -> usize {
    shard_of_slot(key_hash_slot(key))
}

impl Watches {
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Adds a watch; false when `w` already watches `key` in `db`.
    pub fn watch(&self, db: usize, key: &Bytes, w: &Arc<Watcher>, expired: bool) -> bool {
        let mut s = self.shards[shard_of(key)].lock();
        let list = s.entry(key.clone()).or_default();
        if list
            .iter()
            .any(|x| x.db == db && Arc::ptr_eq(&x.watcher, w))
        {
            return false;
        }
        list.push(Watch {
            db,
            watcher: w.clone(),
            expired,
        });
        self.count.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn unwatch(&self, db: usize, key: &[u8], w: &Arc<Watcher>) {
        let mut s = self.shards[shard_of(key)].lock();
        let Some(list) = s.get_mut(key) else { return };
        let before = list.len();
        list.retain(|x| !(x.db == db && Arc::ptr_eq(&x.watcher, w)));
        self.count.fetch_sub(before - list.len(), Ordering::Relaxed);
        if list.is_empty() {
            s.remove(key);
        }
    }

    /// A key changed: its watchers' transactions will fail. `by_expiry`: the change is the
    /// deletion of the key because its TTL passed.
    #[inline]
    pub fn touch(&self, db: usize, key: &[u8], by_expiry: bool) {
        if self.active() {
            self.touch_slow(db, key, by_expiry);
        }
    }

    fn touch_slow(&self, db: usize, key: &[u8], by_expiry: bool) {
        let mut s = self.shards[shard_of(key)].lock();
        let Some(list) = s.get_mut(key) else { return };
        for w in list.iter_mut().filter(|w| w.db == db) {
            if w.expired {
                // Redis: an already expired key being deleted is logically no change; any
                // other change (the key created again) is one.
                w.expired = false;
                if by_expiry {
                    continue;
                }
            }
            w.watcher.set_dirty(true);
        }
    }

    /// FLUSHDB/FLUSHALL/SWAPDB on `db`: every watched key of it that `exists` says exists
    /// (in the db being emptied, or in the one replacing it) changes. `replacement` tells, for
    /// SWAPDB, whether the key exists in the db swapped in and whether it is expired there.
    pub fn touch_db(
        &self,
        db: usize,
        exists_in_emptied: impl Fn(&[u8]) -> bool,
        replacement: impl Fn(&[u8]) -> Option<bool>,
    ) {
        if !self.active() {
            return;
        }
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            for (key, list) in s.iter_mut() {
                let emptied = exists_in_emptied(key);
                let replaced = replacement(key);
                if !emptied && replaced.is_none() {
                    continue;
                }
                for w in list.iter_mut().filter(|w| w.db == db) {
                    if w.expired {
                        match replaced {
                            None => {
                                w.expired = false;
                                continue;
                            }
                            Some(true) => continue,
                            Some(false) => {}
                        }
                    } else if !emptied && replaced == Some(true) {
                        w.expired = true;
                        continue;
                    }
                    w.watcher.set_dirty(true);
                }
            }
        }
    }

    /// Whether `w` watches `key` in `db` and the key was alive when watched (EXEC fails if
    /// such a key has expired since, even before anything deleted it).
    pub fn watched_alive(&self, db: usize, key: &[u8], w: &Arc<Watcher>) -> bool {
        let s = self.shards[shard_of(key)].lock();
        s.get(key).is_some_and(|list| {
            list.iter()
                .any(|x| x.db == db && Arc::ptr_eq(&x.watcher, w) && !x.expired)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_marks_only_watchers_of_that_key_and_db() {
        let ws = Watches::default();
        let a = Watcher::new();
        let b = Watcher::new();
        let k = Bytes::from("k");
        assert!(!ws.active());
        assert!(ws.watch(0, &k, &a, false));
        assert!(!ws.watch(0, &k, &a, false));
        assert!(ws.watch(1, &k, &b, false));
        ws.touch(0, b"k", false);
        assert!(a.is_dirty());
        assert!(!b.is_dirty());
        ws.unwatch(0, b"k", &a);
        ws.unwatch(1, b"k", &b);
        assert!(!ws.active());
    }

    #[test]
    fn expiry_of_an_already_expired_key_is_no_change() {
        let ws = Watches::default();
        let a = Watcher::new();
        ws.watch(0, &Bytes::from("k"), &a, true);
        ws.touch(0, b"k", true);
        assert!(!a.is_dirty());
        ws.touch(0, b"k", false);
        assert!(a.is_dirty());
    }
}
