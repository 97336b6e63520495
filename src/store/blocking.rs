//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ...): for each (db, key) a FIFO of
//! waiters. When a list or sorted set appears at a key ([`Blocked::signal`], called by the
//! keyspace whenever such a value is added under a new key) the *first* waiter is woken; it
//! re-runs its command under the shard locks and, served or not, the order is kept: a waiter
//! stays at its place until it is served, times out, is unblocked or disconnects, and then
//! passes the wake-up on to the next waiter of each of its keys (spurious wake-ups are
//! harmless, lost ones would not be).
//!
//! The registry lock is a leaf: taken under shard locks, never held while taking one.
//!
//! As in Redis, blocked clients are served before the reply of the command that woke them
//! (an LPUSH's client that reads the list next finds the element gone): a connection collects
//! the waiters its command woke ([`collect_woken`]) and waits until each re-ran its command
//! ([`wait_settled`]), transitively (a BLMOVE that pushes on waits for the waiters it woke).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// How a waiter was released by `CLIENT UNBLOCK`.
pub mod unblock {
    pub const NONE: u8 = 0;
    pub const TIMEOUT: u8 = 1;
    pub const ERROR: u8 = 2;
    /// The node became a replica (REPLICAOF, FAILOVER): the client gets Redis's `-UNBLOCKED
    /// ... (master -> replica?)` and is disconnected (Redis's disconnectAllBlockedClients).
    pub const DEMOTED: u8 = 3;
}

pub struct Waiter {
    pub client_id: u64,
    pub notify: Notify,
    /// One of [`unblock`]: set by `CLIENT UNBLOCK` before it notifies.
    pub unblocked: AtomicU8,
    /// Wake-ups so far (numbered from 1), and the last one the client has answered: its
    /// re-run that followed it is done (or it stopped waiting); each answer is signalled.
    wakes: AtomicU64,
    settled: AtomicU64,
    settle: Notify,
    /// Keys whose change woke it since its last re-run, in order: a woken client serves the
    /// first of them first, as Redis serves a client from the key that became ready first.
    signalled: Mutex<Vec<Bytes>>,
}

impl Waiter {
    /// The keys that woke it since the last call, in the order they did.
    pub fn take_signalled(&self) -> Vec<Bytes> {
        std::mem::take(&mut *self.signalled.lock())
    }

    /// The wake-ups so far: read just before a re-run, and given to [`Waiter::settled_up_to`]
    /// after it.
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Acquire)
    }

    /// The client re-ran its command (served or still waiting) after wake-up `seen`.
    pub fn settled_up_to(&self, seen: u64) {
        self.settled.fetch_max(seen, Ordering::AcqRel);
        self.settle.notify_waiters();
    }

    /// The client stopped waiting: every wake-up is answered.
    pub fn settled_all(&self) {
        self.settled_up_to(u64::MAX);
    }
}

/// A waiter a command woke, and the number of that wake-up.
pub struct Woken {
    waiter: Arc<Waiter>,
    wake: u64,
}

thread_local! {
    /// The waiters woken by the command running on this thread, while its connection collects
    /// them ([`collect_woken`]; other threads, such as a replica's stream, do not wait).
    static WOKEN: RefCell<Option<Vec<Woken>>> = const { RefCell::new(None) };
}

/// Wakes `w` for a change at `key` (noted first, in order: see `Waiter::signalled`).
fn wake_for(w: &Arc<Waiter>, key: &[u8]) {
    let mut s = w.signalled.lock();
    if !s.iter().any(|k| &k[..] == key) {
        s.push(Bytes::copy_from_slice(key));
    }
    drop(s);
    wake(w);
}

/// Wakes `w`, noting it for the connection collecting on this thread.
fn wake(w: &Arc<Waiter>) {
    // Numbered before the notify, so a re-run that starts at once already counts it.
    let wake = w.wakes.fetch_add(1, Ordering::AcqRel) + 1;
    w.notify.notify_one();
    WOKEN.with(|c| {
        if let Some(v) = c.borrow_mut().as_mut() {
            v.push(Woken {
                waiter: w.clone(),
                wake,
            });
        }
    });
}

/// Runs `f` (a command), returning the waiters it woke.
pub fn collect_woken<R>(f: impl FnOnce() -> R) -> (R, Vec<Woken>) {
    /// Puts the thread's previous state back, even if `f` panics.
    struct Restore(Option<Option<Vec<Woken>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(prev) = self.0.take() {
                WOKEN.with(|c| c.replace(prev));
            }
        }
    }
    let mut restore = Restore(Some(WOKEN.with(|c| c.replace(Some(Vec::new())))));
    let r = f();
    let prev = restore.0.take().expect("set above");
    let woken = WOKEN.with(|c| c.replace(prev)).unwrap_or_default();
    (r, woken)
}

/// Waits until every waiter of `woken` re-ran its command since it was woken, for at most
/// `limit` in all (a waiter that is itself waiting on us, in a cycle, ends it).
pub async fn wait_settled(woken: Vec<Woken>, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    for w in woken {
        loop {
            let settled = w.waiter.settle.notified();
            if w.waiter.settled.load(Ordering::Acquire) >= w.wake {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return;
            }
        }
    }
}

struct Blocker {
    waiter: Arc<Waiter>,
    db: usize,
    keys: Vec<Bytes>,
}

#[derive(Default)]
struct Inner {
    /// db -> key -> waiters, first come first served.
    keys: HashMap<usize, HashMap<Bytes, VecDeque<Arc<Waiter>>>>,
    clients: HashMap<u64, Blocker>,
}

#[derive(Default)]
pub struct Blocked {
    inner: Mutex<Inner>,
    /// Blocked clients: the `signal` fast path's only read, and INFO's `blocked_clients`.
    count: AtomicUsize,
}

impl Blocked {
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `client_id` behind the current waiters of each key.
    pub fn block(&self, client_id: u64, db: usize, keys: &[Bytes]) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter {
            client_id,
            notify: Notify::new(),
            unblocked: AtomicU8::new(unblock::NONE),
            wakes: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            settle: Notify::new(),
            signalled: Mutex::new(Vec::new()),
        });
        let mut g = self.inner.lock();
        let mut distinct: Vec<Bytes> = Vec::with_capacity(keys.len());
        for k in keys {
            if !distinct.contains(k) {
                distinct.push(k.clone());
            }
        }
        let per_db = g.keys.entry(db).or_default();
        for k in &distinct {
            per_db
                .entry(k.clone())
                .or_default()
                .push_back(waiter.clone());
        }
        let old = g.clients.insert(
            client_id,
            Blocker {
                waiter: waiter.clone(),
                db,
                keys: distinct,
            },
        );
        if let Some(old) = old {
            // A client blocks once at a time; replace a stale record rather than leak it.
            Self::remove_from_queues(&mut g, &old);
        }
        self.count.store(g.clients.len(), Ordering::Relaxed);
        waiter
    }

    fn remove_from_queues(g: &mut Inner, b: &Blocker) {
        if let Some(per_db) = g.keys.get_mut(&b.db) {
            for k in &b.keys {
                if let Some(q) = per_db.get_mut(k) {
                    q.retain(|w| !Arc::ptr_eq(w, &b.waiter));
                    if q.is_empty() {
                        per_db.remove(k);
                    }
                }
            }
            if per_db.is_empty() {
                g.keys.remove(&b.db);
            }
        }
    }

    /// Removes `client_id` from every queue (served, timed out, unblocked or gone) and wakes
    /// the next waiter of each of its keys, in case the wake-up it took was meant for them.
    pub fn unblock(&self, client_id: u64) {
        let mut g = self.inner.lock();
        let Some(b) = g.clients.remove(&client_id) else {
            return;
        };
        Self::remove_from_queues(&mut g, &b);
        self.count.store(g.clients.len(), Ordering::Relaxed);
        if let Some(per_db) = g.keys.get(&b.db) {
            for k in &b.keys {
                if let Some(w) = per_db.get(k).and_then(|q| q.front()) {
                    wake_for(w, k);
                }
            }
        }
    }

    /// `client_id` re-ran its command after a wake-up and still waits: wake the waiter behind
    /// it on each of its keys, in case what is there serves that one (a BZPOPMIN first in
    /// line takes no list; an XREAD no sorted set), as Redis serves every waiter of the
    /// value's kind in turn. A wake-up this passes on in vain is passed on again, so it runs
    /// down the queue once at most.
    pub fn pass_on(&self, client_id: u64) {
        let g = self.inner.lock();
        let Some(b) = g.clients.get(&client_id) else {
            return;
        };
        let Some(per_db) = g.keys.get(&b.db) else {
            return;
        };
        for k in &b.keys {
            let Some(q) = per_db.get(k) else {
                continue;
            };
            if let Some(next) = q
                .iter()
                .position(|w| Arc::ptr_eq(w, &b.waiter))
                .and_then(|i| q.get(i + 1))
            {
                wake_for(next, k);
            }
        }
    }

    /// A list or sorted set now exists at `key`: wake its first waiter.
    pub fn signal(&self, db: usize, key: &[u8]) {
        if self.is_empty() {
            return;
        }
        let g = self.inner.lock();
        if let Some(w) = g
            .keys
            .get(&db)
            .and_then(|m| m.get(key))
            .and_then(|q| q.front())
        {
            wake_for(w, key);
        }
    }

    /// A stream at `key` got entries (or lost a group): wake every waiter, since XREAD
    /// waiters do not consume what they read and each waits for its own IDs.
    pub fn signal_all(&self, db: usize, key: &[u8]) {
        if self.is_empty() {
            return;
        }
        let g = self.inner.lock();
        if let Some(q) = g.keys.get(&db).and_then(|m| m.get(key)) {
            for w in q {
                wake_for(w, key);
            }
        }
    }

    /// Every key of `db` may hold another value now (SWAPDB): wake the first waiter of each
    /// key there, or every waiter where `all` says so (a stream came or went, as
    /// [`Blocked::signal_all`]). A woken waiter re-runs its command and keeps waiting when
    /// nothing there serves it.
    pub fn signal_db(&self, db: usize, all: impl Fn(&[u8]) -> bool) {
        if self.is_empty() {
            return;
        }
        let g = self.inner.lock();
        for (key, q) in g.keys.get(&db).into_iter().flatten() {
            let n = if all(key) { q.len() } else { 1 };
            for w in q.iter().take(n) {
                wake_for(w, key);
            }
        }
    }

    /// The keys of `db` somebody waits for.
    pub fn keys_of(&self, db: usize) -> Vec<Bytes> {
        if self.is_empty() {
            return Vec::new();
        }
        let g = self.inner.lock();
        g.keys
            .get(&db)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Releases every blocked client with `how` (one of [`unblock`]); each leaves its queues as
    /// it answers.
    pub fn release_all(&self, how: u8) {
        if self.is_empty() {
            return;
        }
        let g = self.inner.lock();
        for b in g.clients.values() {
            b.waiter.unblocked.store(how, Ordering::Relaxed);
            b.waiter.notify.notify_one();
        }
    }

    /// The waiter of a blocked client (CLIENT UNBLOCK).
    pub fn waiter(&self, client_id: u64) -> Option<Arc<Waiter>> {
        self.inner
            .lock()
            .clients
            .get(&client_id)
            .map(|b| b.waiter.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_waiter_is_woken_and_passes_the_wakeup_on() {
        let b = Blocked::default();
        let k = Bytes::from_static(b"k");
        let w1 = b.block(1, 0, std::slice::from_ref(&k));
        let w2 = b.block(2, 0, &[k.clone(), Bytes::from_static(b"other")]);
        assert_eq!(b.len(), 2);
        b.signal(0, b"k");
        tokio::time::timeout(std::time::Duration::from_secs(1), w1.notify.notified())
            .await
            .expect("first waiter woken");
        b.unblock(1);
        tokio::time::timeout(std::time::Duration::from_secs(1), w2.notify.notified())
            .await
            .expect("second waiter woken when the first leaves");
        b.unblock(2);
        assert!(b.is_empty());
        assert!(b.inner.lock().keys.is_empty());
    }
}
