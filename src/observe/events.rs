//! The key-event bus. Commands and the store publish one [`KeyEvent`] per change (Redis's
//! `notifyKeyspaceEvent` points, with the same event names and classes); consumers are
//!
//! - *sinks*: called synchronously, in order, on the publishing thread (keyspace notifications
//!   use one, so a notification is published before the command's reply is written, as in Redis);
//! - *subscribers*: a bounded broadcast; a slow one misses events and learns how many (the
//!   `/ws` feed's `lagged` message), and never slows the publisher.
//!
//! With neither, `publish` is one relaxed atomic load: a feed nobody listens to costs nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::broadcast;

/// Event classes, as the letters of `notify-keyspace-events`.
pub mod class {
    pub const GENERIC: u32 = 1 << 2; // g
    pub const STRING: u32 = 1 << 3; // $
    pub const LIST: u32 = 1 << 4; // l
    pub const SET: u32 = 1 << 5; // s
    pub const HASH: u32 = 1 << 6; // h
    pub const ZSET: u32 = 1 << 7; // z
    pub const EXPIRED: u32 = 1 << 8; // x
    pub const EVICTED: u32 = 1 << 9; // e
    pub const STREAM: u32 = 1 << 10; // t
    pub const KEY_MISS: u32 = 1 << 11; // m
    pub const NEW: u32 = 1 << 14; // n
}

#[derive(Debug, Clone)]
pub struct KeyEvent {
    pub db: usize,
    pub key: Bytes,
    /// Redis's event name: "set", "del", "expire", "expired", "rename_from", "lpush", ...
    pub event: &'static str,
    pub class: u32,
    pub ts_ms: i64,
    /// The event as the live feed sends it, encoded by the first client that needs it and
    /// shared by the rest: with many clients, each event is encoded once, not once per client.
    pub encoded: OnceLock<Bytes>,
}

impl KeyEvent {
    pub fn new(db: usize, key: &[u8], event: &'static str, class: u32, ts_ms: i64) -> KeyEvent {
        KeyEvent {
            db,
            key: Bytes::copy_from_slice(key),
            event,
            class,
            ts_ms,
            encoded: OnceLock::new(),
        }
    }
}

pub type Sink = Arc<dyn Fn(&KeyEvent) + Send + Sync>;

/// Events a subscriber may fall behind by before it starts missing them.
pub const SUBSCRIBER_BUFFER: usize = 65536;

pub struct Events {
    sinks: RwLock<Vec<(u64, Sink)>>,
    tx: broadcast::Sender<Arc<KeyEvent>>,
    /// Sinks plus live subscribers: the fast path's only read.
    listeners: Arc<AtomicUsize>,
    next_sink: AtomicUsize,
}

impl Default for Events {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        Events {
            sinks: RwLock::new(Vec::new()),
            tx,
            listeners: Arc::new(AtomicUsize::new(0)),
            next_sink: AtomicUsize::new(0),
        }
    }
}

/// A broadcast receiver that keeps the listener count right when dropped.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<KeyEvent>>,
    listeners: Arc<AtomicUsize>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Events {
    #[inline]
    pub fn has_listeners(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Publishes an event built only when someone listens.
    #[inline]
    pub fn publish_with(&self, make: impl FnOnce() -> KeyEvent) {
        if !self.has_listeners() {
            return;
        }
        let ev = make();
        for (_, sink) in self.sinks.read().iter() {
            sink(&ev);
        }
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(ev));
        }
    }

    pub fn subscribe(&self) -> Subscription {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        Subscription {
            rx: self.tx.subscribe(),
            listeners: self.listeners.clone(),
        }
    }

    /// Adds a synchronous sink; returns its id for [`Events::remove_sink`].
    pub fn add_sink(&self, sink: Sink) -> u64 {
        let id = self.next_sink.fetch_add(1, Ordering::Relaxed) as u64;
        self.sinks.write().push((id, sink));
        self.listeners.fetch_add(1, Ordering::Relaxed);
        id
    }

    pub fn remove_sink(&self, id: u64) {
        let mut s = self.sinks.write();
        let before = s.len();
        s.retain(|(i, _)| *i != id);
        if s.len() < before {
            self.listeners.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(key: &str) -> KeyEvent {
        KeyEvent::new(0, key.as_bytes(), "set", class::STRING, 0)
    }

    #[test]
    fn nothing_is_built_without_listeners() {
        let e = Events::default();
        e.publish_with(|| panic!("built an event nobody listens to"));
    }

    #[test]
    fn sinks_and_subscribers_receive_in_order() {
        let e = Events::default();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let id = e.add_sink(Arc::new(move |ev: &KeyEvent| {
            s2.lock().push(ev.key.clone())
        }));
        let mut sub = e.subscribe();
        e.publish_with(|| ev("a"));
        e.publish_with(|| ev("b"));
        assert_eq!(*seen.lock(), vec![Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(&sub.rx.try_recv().unwrap().key[..], b"a");
        assert_eq!(&sub.rx.try_recv().unwrap().key[..], b"b");
        e.remove_sink(id);
        drop(sub);
        assert!(!e.has_listeners());
    }
}
