//! Keyspace notifications (`notify-keyspace-events`): the class letters as Redis parses and
//! prints them, and the event-bus sink that publishes `__keyspace@<db>__:<key>` and
//! `__keyevent@<db>__:<event>` messages.
//!
//! The sink is registered only while some class is enabled, so with notifications off (the
//! default) the write path does not build events for them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::PubSub;
use crate::observe::events::{KeyEvent, class};
use crate::store::Store;

pub const KEYSPACE: u32 = 1 << 0; // K
pub const KEYEVENT: u32 = 1 << 1; // E
pub const MODULE: u32 = 1 << 13; // d
/// `A`: every class but key-miss and new.
pub const ALL: u32 = class::GENERIC
    | class::STRING
    | class::LIST
    | class::SET
    | class::HASH
    | class::ZSET
    | class::EXPIRED
    | class::EVICTED
    | class::STREAM
    | MODULE;

/// The letter of each class, in the order Redis prints them.
const CLASSES: [(u32, char); 11] = [
    (class::GENERIC, 'g'),
    (class::STRING, '$'),
    (class::LIST, 'l'),
    (class::SET, 's'),
    (class::HASH, 'h'),
    (class::ZSET, 'z'),
    (class::EXPIRED, 'x'),
    (class::EVICTED, 'e'),
    (class::STREAM, 't'),
    (MODULE, 'd'),
    (class::NEW, 'n'),
];
/// The letters printed after the classes (never folded into `A`).
const KINDS: [(u32, char); 3] = [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (class::KEY_MISS, 'm')];

fn letters(flags: u32, table: &[(u32, char)]) -> impl Iterator<Item = char> + '_ {
    table
        .iter()
        .filter(move |(bit, _)| flags & bit != 0)
        .map(|(_, c)| *c)
}

/// Redis's `keyspaceEventsStringToFlags`.
pub fn parse_flags(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        flags |= match c {
            'A' => ALL,
            _ => CLASSES
                .iter()
                .chain(&KINDS)
                .find(|(_, l)| *l == c)
                .map(|(bit, _)| *bit)?,
        };
    }
    Some(flags)
}

/// Redis's `keyspaceEventsFlagsToString`: what CONFIG GET prints.
pub fn flags_to_string(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        s.extend(letters(flags, &CLASSES));
    }
    s.extend(letters(flags, &KINDS));
    s
}

/// Every class letter, one per flag, in a fixed order: the stored form of the setting. It keeps
/// what the printed form loses (Redis prints `A` for `An`, yet `n` stays on).
fn lossless(flags: u32) -> String {
    letters(flags, &CLASSES)
        .chain(letters(flags, &KINDS))
        .collect()
}

/// Parses a `notify-keyspace-events` value into the form the config table stores.
pub fn parse_setting(_current: &str, raw: &str) -> Result<String, String> {
    parse_flags(raw)
        .map(lossless)
        .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string())
}

/// What CONFIG GET prints for a stored value.
pub fn show_setting(stored: &str) -> String {
    flags_to_string(parse_flags(stored).unwrap_or(0))
}

/// Publishes one event as Redis's `notifyKeyspaceEvent` does.
fn publish(pubsub: &PubSub, flags: u32, ev: &KeyEvent) {
    if flags & ev.class == 0 {
        return;
    }
    let mut db = itoa::Buffer::new();
    let db = db.format(ev.db);
    if flags & KEYSPACE != 0 {
        let mut ch = Vec::with_capacity(16 + ev.key.len());
        ch.extend_from_slice(b"__keyspace@");
        ch.extend_from_slice(db.as_bytes());
        ch.extend_from_slice(b"__:");
        ch.extend_from_slice(&ev.key);
        pubsub.publish(&ch, ev.event.as_bytes(), ev.ts_ms);
    }
    if flags & KEYEVENT != 0 {
        let mut ch = Vec::with_capacity(16 + ev.event.len());
        ch.extend_from_slice(b"__keyevent@");
        ch.extend_from_slice(db.as_bytes());
        ch.extend_from_slice(b"__:");
        ch.extend_from_slice(ev.event.as_bytes());
        pubsub.publish(&ch, &ev.key, ev.ts_ms);
    }
}

/// Keeps the notification sink registered on the event bus exactly while some class is on.
#[derive(Default)]
pub struct Notifier {
    /// (flags in force, sink id)
    state: Mutex<(u32, Option<u64>)>,
}

impl Notifier {
    /// Applies a new `notify-keyspace-events` value (at start and after CONFIG SET).
    pub fn apply(&self, flags: u32, store: &Store, pubsub: &Arc<PubSub>) {
        let events = &store.events;
        let mut st = self.state.lock();
        let publishing = flags & (KEYSPACE | KEYEVENT) != 0;
        store.notify_keymiss.store(
            publishing && flags & class::KEY_MISS != 0,
            Ordering::Relaxed,
        );
        store
            .notify_new
            .store(publishing && flags & class::NEW != 0, Ordering::Relaxed);
        if st.0 == flags && (st.1.is_some() || flags == 0) {
            return;
        }
        if let Some(id) = st.1.take() {
            events.remove_sink(id);
        }
        st.0 = flags;
        // Without K or E, or without any class, Redis publishes nothing.
        if !publishing || flags & !(KEYSPACE | KEYEVENT) == 0 {
            return;
        }
        let pubsub = pubsub.clone();
        st.1 = Some(events.add_sink(Arc::new(move |ev: &KeyEvent| {
            // Events of ours that Redis does not have (the live feed shows them).
            if ev.key.is_empty() && matches!(ev.event, "flushdb" | "flushall") {
                return;
            }
            publish(&pubsub, flags, ev)
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_forms_match_redis() {
        let round = |raw: &str| show_setting(&parse_setting("", raw).unwrap());
        assert_eq!(round(""), "");
        assert_eq!(round("KEA"), "AKE");
        assert_eq!(round("Agm$Kn"), "AKm");
        assert_eq!(round("d"), "d");
        assert_eq!(round("Ex$g"), "g$xE");
        assert_eq!(round("nE"), "nE");
        assert_eq!(round("g$lshzxetdn"), "A");
        assert!(parse_setting("", "q").is_err());
        let stored = parse_setting("", "An").unwrap();
        assert_ne!(
            parse_flags(&stored).unwrap() & class::NEW,
            0,
            "n survives A"
        );
    }
}
