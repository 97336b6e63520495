//! Client tracking, the server's half of client-side caching (Redis's `CLIENT TRACKING`): which
//! clients may hold which keys in a local cache, and the `invalidate` messages they get when
//! those keys change.
//!
//! In the default mode, the keys a client's read-only commands name are remembered for it; the
//! next change to such a key sends one message to each client that had it, and the key is
//! forgotten until it is read again. In broadcast mode (BCAST) a client names key prefixes
//! instead and hears of every change under them, read or not. A flush invalidates every key at
//! once (a null key). Keys are names, not (db, name): a change in any db invalidates, as in
//! Redis.
//!
//! The key table is split like the keyspace and is changed under that keyspace shard's lock,
//! as WATCH's table is: a read's keys are remembered before its shard is let go, so a write
//! that follows the read finds them. With no tracking client, a write pays one atomic load.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use super::{SHARDS, shard_of_slot};
use crate::cluster::slots::key_hash_slot;
use crate::pubsub::{Delivery, Pushes};

/// A client's tracking settings, as `CLIENT TRACKING ON` set them (kept by its connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The client invalidations go to; 0: this one.
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// `CLIENT CACHING yes|no` was given for the next command.
    pub caching: bool,
    /// BCAST prefixes, in byte order (as TRACKINGINFO lists them).
    pub prefixes: BTreeSet<Bytes>,
}

impl Options {
    /// Whether a read-only command's keys are remembered now (Redis's `trackingRememberKeys`):
    /// not in BCAST mode, with OPTIN only after `CLIENT CACHING yes`, with OPTOUT unless
    /// `CLIENT CACHING no` came just before.
    pub fn remembers_reads(&self) -> bool {
        if self.bcast {
            return false;
        }
        if self.optin {
            return self.caching;
        }
        !(self.optout && self.caching)
    }
}

/// A tracking client as writers see it: where its invalidations go.
struct Tracker {
    own: Arc<Pushes>,
    /// `REDIRECT <id>`: that client's pushes.
    redirect: Option<(u64, Arc<Pushes>)>,
    noloop: bool,
    bcast: bool,
}

/// Past this many clients for one key, their ids go in a hash set.
const FEW: usize = 16;

/// The clients that may cache one key.
enum Ids {
    Few(SmallVec<[u64; 2]>),
    Many(HashSet<u64>),
}

impl Ids {
    /// Adds `id`; false when it was there.
    fn insert(&mut self, id: u64) -> bool {
        match self {
            Ids::Few(v) if v.contains(&id) => false,
            Ids::Few(v) if v.len() < FEW => {
                v.push(id);
                true
            }
            Ids::Few(v) => {
                let mut set: HashSet<u64> = v.iter().copied().collect();
                set.insert(id);
                *self = Ids::Many(set);
                true
            }
            Ids::Many(set) => set.insert(id),
        }
    }

    fn len(&self) -> usize {
        match self {
            Ids::Few(v) => v.len(),
            Ids::Many(set) => set.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (few, many) = match self {
            Ids::Few(v) => (&v[..], None),
            Ids::Many(set) => (&[][..], Some(set)),
        };
        few.iter().chain(many.into_iter().flatten()).copied()
    }
}

type KeyShard = HashMap<Bytes, Ids>;

pub struct Tracking {
    /// Key -> clients that may cache it (default mode), split like the keyspace.
    keys: Box<[Mutex<KeyShard>]>,
    nkeys: AtomicUsize,
    /// (key, client) pairs across the table (INFO `tracking_total_items`).
    nitems: AtomicUsize,
    clients: RwLock<HashMap<u64, Tracker>>,
    /// Tracking clients; zero means writes skip everything.
    nclients: AtomicUsize,
    /// BCAST prefix -> clients.
    prefixes: RwLock<BTreeMap<Bytes, Vec<u64>>>,
    nprefixes: AtomicUsize,
    /// `tracking-table-max-keys` (0: no limit).
    pub max_keys: AtomicUsize,
    /// Passes in a row that ended still over the limit: each one tries harder (Redis's
    /// `trackingLimitUsedSlots`).
    over_limit: AtomicUsize,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            keys: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            nkeys: AtomicUsize::new(0),
            nitems: AtomicUsize::new(0),
            clients: RwLock::new(HashMap::new()),
            nclients: AtomicUsize::new(0),
            prefixes: RwLock::new(BTreeMap::new()),
            nprefixes: AtomicUsize::new(0),
            max_keys: AtomicUsize::new(1_000_000),
            over_limit: AtomicUsize::new(0),
        }
    }
}

fn shard_of(key: &[u8]) -> usize {
    shard_of_slot(key_hash_slot(key))
}

impl Tracking {
    /// Clients with tracking on (INFO `tracking_clients`).
    pub fn clients(&self) -> usize {
        self.nclients.load(Ordering::Relaxed)
    }

    /// Keys in the table (INFO `tracking_total_keys`).
    pub fn total_keys(&self) -> usize {
        self.nkeys.load(Ordering::Relaxed)
    }

    pub fn total_items(&self) -> usize {
        self.nitems.load(Ordering::Relaxed)
    }

    pub fn total_prefixes(&self) -> usize {
        self.nprefixes.load(Ordering::Relaxed)
    }

    /// Turns tracking on for client `id`, or changes how it tracks; `added` are BCAST prefixes
    /// it did not have. `own` must already have a queue.
    pub fn enable(
        &self,
        id: u64,
        own: Arc<Pushes>,
        redirect: Option<(u64, Arc<Pushes>)>,
        opts: &Options,
        added: &[Bytes],
    ) {
        own.redirect_broken.store(false, Ordering::Relaxed);
        let t = Tracker {
            own,
            redirect,
            noloop: opts.noloop,
            bcast: opts.bcast,
        };
        {
            let mut clients = self.clients.write();
            clients.insert(id, t);
            self.nclients.store(clients.len(), Ordering::Relaxed);
        }
        if !added.is_empty() {
            let mut prefixes = self.prefixes.write();
            for p in added {
                prefixes.entry(p.clone()).or_default().push(id);
            }
            self.nprefixes.store(prefixes.len(), Ordering::Relaxed);
        }
    }

    /// Turns tracking off for client `id` (CLIENT TRACKING OFF, RESET, disconnection). Its keys
    /// stay in the table until they change, as in Redis (the last client to leave does not
    /// clear it: one that turns tracking on again still hears of the keys it read before, and
    /// INFO's counts stay Redis's).
    pub fn disable(&self, id: u64, prefixes: &BTreeSet<Bytes>) {
        if !prefixes.is_empty() {
            let mut table = self.prefixes.write();
            for p in prefixes {
                if let Some(ids) = table.get_mut(p) {
                    ids.retain(|&x| x != id);
                    if ids.is_empty() {
                        table.remove(p);
                    }
                }
            }
            self.nprefixes.store(table.len(), Ordering::Relaxed);
        }
        let mut clients = self.clients.write();
        clients.remove(&id);
        self.nclients.store(clients.len(), Ordering::Relaxed);
    }

    fn clear(&self) {
        for shard in self.keys.iter() {
            let mut s = shard.lock();
            let items: usize = s.values().map(Ids::len).sum();
            self.nitems.fetch_sub(items, Ordering::Relaxed);
            self.nkeys.fetch_sub(s.len(), Ordering::Relaxed);
            s.clear();
        }
    }

    /// Remembers that client `id` read `keys` (their keyspace shards are locked).
    pub fn remember<'k>(&self, id: u64, keys: impl IntoIterator<Item = &'k [u8]>) {
        for key in keys {
            let mut s = self.keys[shard_of(key)].lock();
            match s.get_mut(key) {
                Some(ids) => {
                    if ids.insert(id) {
                        self.nitems.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    // A copy: the argument may share a connection's whole input buffer.
                    let mut ids = SmallVec::new();
                    ids.push(id);
                    s.insert(Bytes::copy_from_slice(key), Ids::Few(ids));
                    self.nkeys.fetch_add(1, Ordering::Relaxed);
                    self.nitems.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// `key` changed (its keyspace shard is locked): the clients that may cache it, and those
    /// with a prefix of it in BCAST mode, are told. `writer`: the client whose command changed
    /// it, which NOLOOP spares; None for the node's own changes (expiry, eviction, a slot
    /// move).
    #[inline]
    pub fn invalidate(&self, key: &[u8], writer: Option<u64>) {
        // (A table with keys and no tracking client left is still kept up to date.)
        if self.clients() > 0 || self.total_keys() > 0 {
            self.invalidate_slow(key, writer);
        }
    }

    fn invalidate_slow(&self, key: &[u8], writer: Option<u64>) {
        if self.total_prefixes() > 0 && self.prefixes.read().keys().any(|p| key.starts_with(p)) {
            let owned = Bytes::copy_from_slice(key);
            let batched = BATCH.with_borrow_mut(|b| match b {
                Some(b) => {
                    b.keys.insert(owned.clone(), writer);
                    true
                }
                None => false,
            });
            if !batched {
                self.broadcast(BTreeMap::from([(owned, writer)]));
            }
        }
        // A write to a key nobody cached costs a lookup, no copy.
        let Some((key, ids)) = self.keys[shard_of(key)].lock().remove_entry(key) else {
            return;
        };
        self.forgot(&ids);
        self.notify(key, &ids, writer, crate::commands::now_ms());
    }

    /// Starts gathering the BCAST invalidations of the command running on this thread, to send
    /// them together when it ends ([`BatchGuard`]), as Redis sends one message per prefix per
    /// event-loop turn. A command inside EXEC joins EXEC's batch. None when no client
    /// broadcasts.
    pub fn batch(&self) -> Option<BatchGuard<'_>> {
        if self.total_prefixes() == 0 {
            return None;
        }
        BATCH.with_borrow_mut(|b| b.get_or_insert_with(Batch::default).depth += 1);
        Some(BatchGuard { tracking: self })
    }

    /// Sends each BCAST client one message per prefix of its with the `keys` under it (a
    /// NOLOOP client: those another client changed), in byte order as Redis lists them.
    fn broadcast(&self, keys: BTreeMap<Bytes, Option<u64>>) {
        let now = crate::commands::now_ms();
        let prefixes = self.prefixes.read();
        let clients = self.clients.read();
        for (prefix, ids) in prefixes.iter() {
            let under: Vec<(&Bytes, Option<u64>)> = keys
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, w)| (k, *w))
                .collect();
            if under.is_empty() {
                continue;
            }
            let all: Arc<[Bytes]> = under.iter().map(|(k, _)| (*k).clone()).collect();
            for id in ids {
                let Some(t) = clients.get(id) else { continue };
                if !t.noloop || under.iter().all(|(_, w)| *w != Some(*id)) {
                    send(t, Some(all.clone()), now);
                    continue;
                }
                let others: Arc<[Bytes]> = under
                    .iter()
                    .filter(|(_, w)| *w != Some(*id))
                    .map(|(k, _)| (*k).clone())
                    .collect();
                if !others.is_empty() {
                    send(t, Some(others), now);
                }
            }
        }
    }

    fn forgot(&self, ids: &Ids) {
        self.nkeys.fetch_sub(1, Ordering::Relaxed);
        self.nitems.fetch_sub(ids.len(), Ordering::Relaxed);
    }

    /// Sends the invalidation of `key` to the default-mode clients among `ids`.
    fn notify(&self, key: Bytes, ids: &Ids, writer: Option<u64>, now: i64) {
        let keys: Arc<[Bytes]> = Arc::new([key]);
        let clients = self.clients.read();
        for id in ids.iter() {
            // A client that switched to BCAST since it read the key gets no message for it.
            if let Some(t) = clients.get(&id)
                && !t.bcast
                && !(t.noloop && writer == Some(id))
            {
                send(t, Some(keys.clone()), now);
            }
        }
    }

    /// Every key was flushed: every tracking client gets a null invalidation and the table is
    /// emptied (Redis's `trackingInvalidateKeysOnFlush`).
    pub fn flushed(&self) {
        if self.clients() > 0 {
            let now = crate::commands::now_ms();
            for t in self.clients.read().values() {
                send(t, None, now);
            }
        }
        if self.total_keys() > 0 {
            self.clear();
        }
    }

    /// Keeps the table within `tracking-table-max-keys`: keys over the limit are forgotten and
    /// their clients told, as if the keys had changed (a few hundred per call at most, more
    /// each time a call ends still over the limit).
    #[inline]
    pub fn enforce_limit(&self) {
        let max = self.max_keys.load(Ordering::Relaxed);
        if max > 0 && self.total_keys() > max {
            self.evict_over(max);
        }
    }

    fn evict_over(&self, max: usize) {
        let mut effort = 100 * (self.over_limit.load(Ordering::Relaxed) + 1);
        let now = crate::commands::now_ms();
        let start = rand::random_range(0..SHARDS);
        'shards: for i in 0..SHARDS {
            let shard = &self.keys[(start + i) % SHARDS];
            loop {
                if self.total_keys() <= max {
                    self.over_limit.store(0, Ordering::Relaxed);
                    return;
                }
                if effort == 0 {
                    break 'shards;
                }
                let taken = {
                    let mut s = shard.lock();
                    let Some(key) = s.keys().next().cloned() else {
                        continue 'shards;
                    };
                    s.remove_entry(&key)
                };
                effort -= 1;
                if let Some((key, ids)) = taken {
                    self.forgot(&ids);
                    self.notify(key, &ids, None, now);
                }
            }
        }
        self.over_limit.fetch_add(1, Ordering::Relaxed);
    }
}

thread_local! {
    /// The BCAST invalidations of the command running on this thread (see [`Tracking::batch`]):
    /// each key and the client that last changed it.
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Batch {
    /// Commands in the batch still running (EXEC and the command it runs).
    depth: u32,
    keys: BTreeMap<Bytes, Option<u64>>,
}

/// Ends a command's batch of BCAST invalidations: the outermost sends them.
pub struct BatchGuard<'a> {
    tracking: &'a Tracking,
}

impl Drop for BatchGuard<'_> {
    fn drop(&mut self) {
        let done = BATCH.with_borrow_mut(|b| {
            let batch = b.as_mut()?;
            batch.depth -= 1;
            if batch.depth > 0 {
                return None;
            }
            b.take().map(|b| b.keys)
        });
        if let Some(keys) = done.filter(|k| !k.is_empty()) {
            self.tracking.broadcast(keys);
        }
    }
}

/// Queues one invalidation for `t`: to its own connection, or to the client it redirects to
/// (`tracking-redir-broken` to its own, RESP3 only, once that client is gone).
fn send(t: &Tracker, keys: Option<Arc<[Bytes]>>, now: i64) {
    let (to, redirected) = match &t.redirect {
        None => (&t.own, false),
        Some((id, target)) if target.is_closed() => {
            t.own.redirect_broken.store(true, Ordering::Relaxed);
            if let Some(q) = t.own.queue() {
                q.deliver(Delivery::RedirectBroken { id: *id }, now);
            }
            return;
        }
        Some((_, target)) => (target, true),
    };
    // Every tracking client and redirect target has a queue (see `commands::tracking`).
    if let Some(q) = to.queue() {
        let null_resp3 = t.own.resp3.load(Ordering::Relaxed);
        q.deliver(
            Delivery::Invalidate {
                keys,
                redirected,
                null_resp3,
            },
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_remembered_per_key_and_forgotten_once_invalidated() {
        let t = Tracking::default();
        let own = Arc::new(Pushes::default());
        t.enable(1, own, None, &Options::default(), &[]);
        t.remember(1, [&b"a"[..], b"b", b"a"]);
        t.remember(2, [&b"a"[..]]);
        assert_eq!((t.total_keys(), t.total_items()), (2, 3));
        t.invalidate(b"a", None);
        assert_eq!((t.total_keys(), t.total_items()), (1, 1));
        t.disable(1, &BTreeSet::new());
        assert_eq!(
            (t.clients(), t.total_keys(), t.total_items()),
            (0, 1, 1),
            "the last client to leave keeps the table, as Redis"
        );
        // Kept up to date with no client: a change still forgets the key.
        t.invalidate(b"b", None);
        assert_eq!((t.total_keys(), t.total_items()), (0, 0));
    }

    #[test]
    fn many_readers_of_one_key_are_counted_once_each() {
        let mut ids = Ids::Few(SmallVec::new());
        for id in 0..100 {
            assert!(ids.insert(id));
        }
        for id in 0..100 {
            assert!(!ids.insert(id));
        }
        assert_eq!(ids.len(), 100);
        assert_eq!(ids.iter().count(), 100);
    }

    #[test]
    fn optin_and_optout_decide_with_caching() {
        let mut o = Options::default();
        assert!(o.remembers_reads());
        o.optin = true;
        assert!(!o.remembers_reads());
        o.caching = true;
        assert!(o.remembers_reads());
        o = Options {
            optout: true,
            ..Options::default()
        };
        assert!(o.remembers_reads());
        o.caching = true;
        assert!(!o.remembers_reads());
        o = Options {
            bcast: true,
            ..Options::default()
        };
        assert!(!o.remembers_reads());
    }

    #[test]
    fn the_limit_forgets_keys_until_the_table_fits() {
        let t = Tracking::default();
        t.enable(
            1,
            Arc::new(Pushes::default()),
            None,
            &Options::default(),
            &[],
        );
        let keys: Vec<Vec<u8>> = (0..50).map(|i| format!("k{i}").into_bytes()).collect();
        t.remember(1, keys.iter().map(|k| &k[..]));
        t.max_keys.store(10, Ordering::Relaxed);
        t.enforce_limit();
        assert_eq!(t.total_keys(), 10);
        assert_eq!(t.total_items(), 10);
    }
}
