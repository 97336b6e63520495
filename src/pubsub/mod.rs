//! Pub/Sub: the registry of channels, patterns and shard channels -> subscribers, and delivery
//! of messages to the subscribers' connections.
//!
//! Publishing never waits for a subscriber. Each subscribed connection owns one bounded queue
//! ([`Subscriber`]); a publisher puts the message there and the connection task writes it out,
//! encoded in the protocol the client speaks at that moment (RESP2 array or RESP3 push). Bytes
//! queued and not yet written count against `client-output-buffer-limit pubsub`: past the hard
//! limit, or past the soft limit for longer than its seconds, the subscriber is disconnected, as
//! Redis does, instead of being buffered without bound.
//!
//! Messages from one publisher reach every subscriber in the order they were published: a
//! publisher enqueues synchronously, and each queue is FIFO.
//!
//! Shard channels (SSUBSCRIBE/SPUBLISH) are kept per hash slot, so that when the cluster moves a
//! slot away its subscribers can be dropped in one step ([`PubSub::remove_slot`]). In a cluster,
//! a client's PUBLISH also leaves through the outbox ([`PubSub::open_outbox`]) for the cluster
//! bus to broadcast (an SPUBLISH, to the rest of its shard), and messages published on other
//! nodes enter through [`PubSub::deliver_remote`].

pub mod notify;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cluster::slots::key_hash_slot;
use crate::glob::glob_match;
use crate::resp::Reply;

/// Messages a subscriber may have queued regardless of their size: a backstop for when the
/// byte limits are switched off (`client-output-buffer-limit pubsub 0 0 0`), so a queue never
/// grows without any bound. Reaching it disconnects the subscriber like the hard limit.
pub const MAX_QUEUED_MESSAGES: usize = 1 << 20;

/// Per-message bookkeeping Redis also charges to a client's output buffer (reply headers).
const MESSAGE_OVERHEAD: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

/// One message for one subscriber.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// `message` / `smessage`, or `pmessage` with the pattern that matched.
    Message {
        kind: Kind,
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
    /// `sunsubscribe <channel> <count>` sent when the server drops a shard subscription (the
    /// slot moved to another node).
    ShardDropped { channel: Bytes },
    /// Client tracking: `keys` may have changed (None: every key, after a flush). A RESP3
    /// connection gets an `invalidate` push; a RESP2 one that tracking redirects to, while it
    /// is subscribed, a message on `__redis__:invalidate`; any other, nothing.
    Invalidate {
        keys: Option<Arc<[Bytes]>>,
        redirected: bool,
        /// The flush's null is written in the protocol of the client that tracks, not of
        /// the one it redirects to (as Redis does: `$-1` inside a push when a RESP2 client
        /// redirects to a RESP3 one).
        null_resp3: bool,
    },
    /// Client tracking: the client invalidations were redirected to is gone (RESP3 only).
    RedirectBroken { id: u64 },
}

/// The channel RESP2 connections get redirected invalidations on.
pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

impl Delivery {
    /// Messages a connection writes after the reply of the command that caused them (Redis
    /// defers the invalidations of a client's own writes until its reply is out).
    fn after_reply(&self) -> bool {
        matches!(
            self,
            Delivery::Invalidate { .. } | Delivery::RedirectBroken { .. }
        )
    }
}

/// What other connections need to push to a client: its queue, once it has one, and whether
/// the client is gone (client tracking's REDIRECT).
#[derive(Default)]
pub struct Pushes {
    id: u64,
    kill: CancellationToken,
    counts: Option<Arc<[AtomicUsize; 3]>>,
    queue: OnceLock<Arc<Subscriber>>,
    /// A queue another connection made (see [`Pushes::open_for_others`]), until the owner's
    /// connection task picks up its receiving end.
    handed: parking_lot::Mutex<Option<Inbox>>,
    /// Wakes the owner's connection task when `handed` is filled.
    pub handed_over: Notify,
    closed: AtomicBool,
    /// The client speaks RESP3 (client tracking writes a flush's null in it).
    pub resp3: AtomicBool,
    /// The client tracking redirects to has gone (CLIENT LIST flag `R`).
    pub redirect_broken: AtomicBool,
}

impl Pushes {
    /// For the client `id`: its kill switch and subscription counts go with its queue.
    pub fn new(id: u64, kill: CancellationToken, counts: Arc<[AtomicUsize; 3]>) -> Pushes {
        Pushes {
            id,
            kill,
            counts: Some(counts),
            ..Default::default()
        }
    }

    pub fn queue(&self) -> Option<&Arc<Subscriber>> {
        self.queue.get()
    }

    /// The queue, made now if there is none; the receiving end comes back to whoever made it.
    fn make_queue(&self, limits: &Arc<Limits>) -> (Arc<Subscriber>, Option<Inbox>) {
        let mut inbox = None;
        let q = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(MAX_QUEUED_MESSAGES);
            let h = Arc::new(Subscriber {
                id: self.id,
                tx,
                pending: AtomicUsize::new(0),
                soft_since: AtomicI64::new(0),
                kill: self.kill.clone(),
                limits: limits.clone(),
                counts: self.counts.clone(),
            });
            inbox = Some(Inbox { rx, sub: h.clone() });
            h
        });
        (q.clone(), inbox)
    }

    /// Gives the client a queue other connections can push to, if it has none: client tracking
    /// makes one for a REDIRECT target, which may never have subscribed (a RESP3 target gets
    /// `invalidate` pushes all the same). Its connection task is woken to pick it up.
    pub fn open_for_others(&self, limits: &Arc<Limits>) {
        if let (_, Some(inbox)) = self.make_queue(limits) {
            *self.handed.lock() = Some(inbox);
            self.handed_over.notify_one();
        }
    }

    /// The queue's receiving end, if another connection made the queue and it is still here.
    pub fn take_handed(&self) -> Option<Inbox> {
        self.handed.lock().take()
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

impl Delivery {
    pub fn cost(&self) -> usize {
        MESSAGE_OVERHEAD
            + match self {
                Delivery::Message {
                    pattern,
                    channel,
                    payload,
                    ..
                } => pattern.len() + channel.len() + payload.len(),
                Delivery::ShardDropped { channel } => channel.len(),
                Delivery::Invalidate { keys, .. } => keys
                    .as_ref()
                    .map_or(0, |ks| ks.iter().map(|k| k.len() + 16).sum()),
                Delivery::RedirectBroken { .. } => 0,
            }
    }
}

/// Writes a message as Redis does: `*3 message <channel> <payload>` (RESP2) or a `>` push.
pub fn encode_message(out: &mut BytesMut, resp3: bool, d: &Delivery) {
    let mut r = Reply::new(out, resp3);
    if let Delivery::Message {
        kind,
        pattern,
        channel,
        payload,
    } = d
    {
        match kind {
            Kind::Channel => {
                r.push(3);
                r.bulk(b"message");
            }
            Kind::Shard => {
                r.push(3);
                r.bulk(b"smessage");
            }
            Kind::Pattern => {
                r.push(4);
                r.bulk(b"pmessage");
                r.bulk(pattern);
            }
        }
        r.bulk(channel);
        r.bulk(payload);
    }
}

/// Output buffer limits for pub/sub clients (`client-output-buffer-limit pubsub`).
#[derive(Debug, Default)]
pub struct Limits {
    pub hard: AtomicU64,
    pub soft: AtomicU64,
    pub soft_seconds: AtomicU64,
}

/// A subscribed connection as publishers see it: its queue and how far behind it is.
pub struct Subscriber {
    pub id: u64,
    tx: mpsc::Sender<Delivery>,
    /// Bytes queued or being written, not yet on the socket.
    pending: AtomicUsize,
    /// Unix seconds when the soft limit was first exceeded (0: it is not).
    soft_since: AtomicI64,
    kill: CancellationToken,
    limits: Arc<Limits>,
    /// The client's channel, pattern and shard channel counts (see `subscribed`).
    counts: Option<Arc<[AtomicUsize; 3]>>,
}

impl Subscriber {
    /// Queues `d`, or disconnects the subscriber when it is over its output limits.
    pub fn deliver(&self, d: Delivery, now_ms: i64) {
        let limits = &*self.limits;
        if self.kill.is_cancelled() {
            return;
        }
        let cost = d.cost();
        let pending = self.pending.fetch_add(cost, Ordering::Relaxed) + cost;
        if self.subscribed() && self.over_limits(pending as u64, limits, now_ms / 1000) {
            self.pending.fetch_sub(cost, Ordering::Relaxed);
            self.disconnect("overcoming of output buffer limits");
            return;
        }
        match self.tx.try_send(d) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.pending.fetch_sub(cost, Ordering::Relaxed);
                self.disconnect("too many queued messages");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.pending.fetch_sub(cost, Ordering::Relaxed);
            }
        }
    }

    /// Whether the client is subscribed to anything: the pub/sub output limits are for those
    /// (Redis's client classes). A client that only gets tracking invalidations is a normal
    /// client, whose output is not limited (by default in Redis; `normal` limits are not
    /// enforced here), so only the queue's length bounds it.
    fn subscribed(&self) -> bool {
        self.counts
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| n.load(Ordering::Relaxed) > 0))
    }

    /// Redis's `checkClientOutputBufferLimits`.
    fn over_limits(&self, used: u64, limits: &Limits, now_s: i64) -> bool {
        let hard = limits.hard.load(Ordering::Relaxed);
        if hard > 0 && used >= hard {
            return true;
        }
        let soft = limits.soft.load(Ordering::Relaxed);
        if soft > 0 && used >= soft {
            let since = self.soft_since.load(Ordering::Relaxed);
            if since == 0 {
                self.soft_since.store(now_s, Ordering::Relaxed);
                return false;
            }
            return (now_s - since) as u64 > limits.soft_seconds.load(Ordering::Relaxed);
        }
        self.soft_since.store(0, Ordering::Relaxed);
        false
    }

    fn disconnect(&self, why: &str) {
        if !self.kill.is_cancelled() {
            tracing::warn!(
                client = self.id,
                "Client scheduled to be closed ASAP for {why}."
            );
            self.kill.cancel();
        }
    }

    /// The connection wrote `bytes` worth of queued messages to its socket.
    pub fn written(&self, bytes: usize) {
        self.pending.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The receiving end of a subscriber's queue, owned by its connection task.
pub struct Inbox {
    pub rx: mpsc::Receiver<Delivery>,
    pub sub: Arc<Subscriber>,
}

impl Inbox {
    /// Moves queued messages into `out` (at most about `max_bytes`), returning their cost to
    /// pass to [`Subscriber::written`] once they are on the socket.
    pub fn drain(
        &mut self,
        out: &mut BytesMut,
        resp3: bool,
        subs: &mut ClientSubs,
        max_bytes: usize,
    ) -> usize {
        let mut cost = 0;
        let start = out.len();
        while out.len() - start < max_bytes {
            let Ok(d) = self.rx.try_recv() else { break };
            cost += d.cost();
            self.write(out, resp3, subs, d);
        }
        cost
    }

    /// Moves queued messages into `out` before the reply that starts at `mark`; returns their
    /// cost as [`Inbox::drain`] does.
    pub fn splice_before(
        &mut self,
        out: &mut BytesMut,
        mark: usize,
        resp3: bool,
        subs: &mut ClientSubs,
        max_bytes: usize,
    ) -> usize {
        let Ok(first) = self.rx.try_recv() else {
            return 0;
        };
        let reply = out.split_off(mark);
        let mut after = BytesMut::new();
        let mut cost = 0;
        let mut next = Some(first);
        while let Some(d) = next {
            cost += d.cost();
            let to = if d.after_reply() {
                &mut after
            } else {
                &mut *out
            };
            self.write(to, resp3, subs, d);
            if out.len() - mark + after.len() >= max_bytes {
                break;
            }
            next = self.rx.try_recv().ok();
        }
        out.extend_from_slice(&reply);
        out.extend_from_slice(&after);
        cost
    }

    /// Writes one message taken off the queue.
    pub fn write(&self, out: &mut BytesMut, resp3: bool, subs: &mut ClientSubs, d: Delivery) {
        match &d {
            Delivery::Message { .. } => encode_message(out, resp3, &d),
            Delivery::ShardDropped { channel } => {
                subs.shard.remove(channel);
                subs.publish_counts();
                let mut r = Reply::new(out, resp3);
                r.push(3);
                r.bulk(b"sunsubscribe");
                r.bulk(channel);
                r.int(subs.shard.len() as i64);
            }
            Delivery::Invalidate {
                keys,
                redirected,
                null_resp3,
            } => {
                let mut r = Reply::new(out, resp3);
                if resp3 {
                    r.push(2);
                    r.bulk(b"invalidate");
                } else if *redirected && subs.active() {
                    r.array(3);
                    r.bulk(b"message");
                    r.bulk(INVALIDATE_CHANNEL);
                } else {
                    // RESP2 has no way to push outside of subscribe mode.
                    return;
                }
                match keys {
                    Some(keys) => {
                        r.array(keys.len());
                        for k in keys.iter() {
                            r.bulk(k);
                        }
                    }
                    None => {
                        r.set_resp3(*null_resp3);
                        r.null();
                    }
                }
            }
            Delivery::RedirectBroken { id } => {
                if resp3 {
                    let mut r = Reply::new(out, resp3);
                    r.push(2);
                    r.bulk(b"tracking-redir-broken");
                    r.int(*id as i64);
                }
            }
        }
    }
}

/// What one connection is subscribed to (the registry holds the reverse map).
#[derive(Default)]
pub struct ClientSubs {
    pub channels: HashSet<Bytes>,
    /// In subscription order: PUNSUBSCRIBE without arguments replies in this order, as
    /// Redis 7.0 (a list) does.
    pub patterns: Vec<Bytes>,
    pub shard: HashSet<Bytes>,
    handle: Option<Arc<Subscriber>>,
    /// The queue's receiving end until the connection task takes it.
    pub inbox: Option<Inbox>,
    /// Where CLIENT LIST reads sub/psub/ssub.
    counts: Option<Arc<[AtomicUsize; 3]>>,
    /// Where other clients find the queue (client tracking's redirection).
    pushes: Option<Arc<Pushes>>,
}

impl ClientSubs {
    pub fn new(counts: Arc<[AtomicUsize; 3]>, pushes: Arc<Pushes>) -> ClientSubs {
        ClientSubs {
            counts: Some(counts),
            pushes: Some(pushes),
            ..Default::default()
        }
    }

    /// Channels plus patterns: the count SUBSCRIBE/PSUBSCRIBE replies carry.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Whether the client is in subscribe mode (Redis's `CLIENT_PUBSUB`).
    pub fn active(&self) -> bool {
        self.count() + self.shard.len() > 0
    }

    fn publish_counts(&self) {
        if let Some(c) = &self.counts {
            c[0].store(self.channels.len(), Ordering::Relaxed);
            c[1].store(self.patterns.len(), Ordering::Relaxed);
            c[2].store(self.shard.len(), Ordering::Relaxed);
        }
    }

    /// The client's queue handle, created on its first subscription (or when it turns client
    /// tracking on). Messages queued count against `limits`.
    pub fn handle(
        &mut self,
        id: u64,
        kill: &CancellationToken,
        limits: &Arc<Limits>,
    ) -> Arc<Subscriber> {
        if let Some(h) = &self.handle {
            return h.clone();
        }
        let (h, inbox) = match &self.pushes {
            Some(p) => {
                let (h, made) = p.make_queue(limits);
                // Made by another connection: its receiving end waits in `p`, unless the
                // connection task picked it up already.
                (h, made.or_else(|| p.take_handed()))
            }
            None => {
                let standalone =
                    Pushes::new(id, kill.clone(), self.counts.clone().unwrap_or_default());
                standalone.make_queue(limits)
            }
        };
        self.handle = Some(h.clone());
        if inbox.is_some() {
            self.inbox = inbox;
        }
        h
    }
}

type Subscribers = Vec<Arc<Subscriber>>;

/// A PUBLISH (or SPUBLISH, `shard`) made on this node, on its way to the other nodes of the
/// cluster (SPUBLISH: to the other nodes of this node's shard).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub channel: Bytes,
    pub payload: Bytes,
    pub shard: bool,
}

/// The node's registry of who listens to what.
#[derive(Default)]
pub struct PubSub {
    channels: RwLock<HashMap<Bytes, Subscribers>>,
    /// Patterns in the order they were first subscribed.
    patterns: RwLock<Vec<(Bytes, Subscribers)>>,
    /// Shard channels, per hash slot.
    shard: RwLock<HashMap<u16, HashMap<Bytes, Subscribers>>>,
    /// Whether any pattern exists, read by PUBLISH before taking the pattern lock.
    npatterns: AtomicUsize,
    pub limits: Arc<Limits>,
    /// Where clients' PUBLISHes wait for the cluster bus (clustered nodes only).
    outbox: OnceLock<mpsc::Sender<Outgoing>>,
    /// PUBLISHes not broadcast because the outbox was full (pub/sub is at most once).
    pub outbox_dropped: AtomicU64,
}

fn remove_id(subs: &mut Subscribers, id: u64) {
    subs.retain(|s| s.id != id);
}

impl PubSub {
    /// SUBSCRIBE one channel; returns false if the client already was.
    pub fn subscribe(
        &self,
        c: &mut ClientSubs,
        id: u64,
        kill: &CancellationToken,
        ch: &Bytes,
    ) -> bool {
        if c.channels.contains(ch) {
            return false;
        }
        let h = c.handle(id, kill, &self.limits);
        c.channels.insert(ch.clone());
        self.channels.write().entry(ch.clone()).or_default().push(h);
        c.publish_counts();
        true
    }

    pub fn unsubscribe(&self, c: &mut ClientSubs, id: u64, ch: &[u8]) -> bool {
        if !c.channels.remove(ch) {
            return false;
        }
        let mut map = self.channels.write();
        if let Some(subs) = map.get_mut(ch) {
            remove_id(subs, id);
            if subs.is_empty() {
                map.remove(ch);
            }
        }
        c.publish_counts();
        true
    }

    pub fn psubscribe(
        &self,
        c: &mut ClientSubs,
        id: u64,
        kill: &CancellationToken,
        pat: &Bytes,
    ) -> bool {
        if c.patterns.contains(pat) {
            return false;
        }
        let h = c.handle(id, kill, &self.limits);
        c.patterns.push(pat.clone());
        let mut pats = self.patterns.write();
        match pats.iter_mut().find(|(p, _)| p == pat) {
            Some((_, subs)) => subs.push(h),
            None => pats.push((pat.clone(), vec![h])),
        }
        self.npatterns.store(pats.len(), Ordering::Relaxed);
        c.publish_counts();
        true
    }

    pub fn punsubscribe(&self, c: &mut ClientSubs, id: u64, pat: &[u8]) -> bool {
        let Some(i) = c.patterns.iter().position(|p| p == pat) else {
            return false;
        };
        c.patterns.remove(i);
        let mut pats = self.patterns.write();
        if let Some(i) = pats.iter().position(|(p, _)| p == pat) {
            remove_id(&mut pats[i].1, id);
            if pats[i].1.is_empty() {
                pats.remove(i);
            }
        }
        self.npatterns.store(pats.len(), Ordering::Relaxed);
        c.publish_counts();
        true
    }

    pub fn ssubscribe(
        &self,
        c: &mut ClientSubs,
        id: u64,
        kill: &CancellationToken,
        ch: &Bytes,
    ) -> bool {
        if c.shard.contains(ch) {
            return false;
        }
        let h = c.handle(id, kill, &self.limits);
        c.shard.insert(ch.clone());
        self.shard
            .write()
            .entry(key_hash_slot(ch))
            .or_default()
            .entry(ch.clone())
            .or_default()
            .push(h);
        c.publish_counts();
        true
    }

    pub fn sunsubscribe(&self, c: &mut ClientSubs, id: u64, ch: &[u8]) -> bool {
        if !c.shard.remove(ch) {
            return false;
        }
        let slot = key_hash_slot(ch);
        let mut map = self.shard.write();
        if let Some(chans) = map.get_mut(&slot) {
            if let Some(subs) = chans.get_mut(ch) {
                remove_id(subs, id);
                if subs.is_empty() {
                    chans.remove(ch);
                }
            }
            if chans.is_empty() {
                map.remove(&slot);
            }
        }
        c.publish_counts();
        true
    }

    /// What client `id` is subscribed to, read from the registry (another connection's own
    /// sets are out of reach): its channels, its patterns and its shard channels.
    pub fn subscriptions_of(&self, id: u64) -> [Vec<Bytes>; 3] {
        let has = |subs: &Subscribers| subs.iter().any(|s| s.id == id);
        let channels = (self.channels.read().iter())
            .filter(|(_, subs)| has(subs))
            .map(|(ch, _)| ch.clone())
            .collect();
        let patterns = (self.patterns.read().iter())
            .filter(|(_, subs)| has(subs))
            .map(|(p, _)| p.clone())
            .collect();
        let shard = (self.shard.read().values())
            .flat_map(|chans| chans.iter())
            .filter(|(_, subs)| has(subs))
            .map(|(ch, _)| ch.clone())
            .collect();
        [channels, patterns, shard]
    }

    /// Drops every subscription of a client (RESET, disconnect), without replies.
    pub fn remove_client(&self, c: &mut ClientSubs, id: u64) {
        for ch in c.channels.clone() {
            self.unsubscribe(c, id, &ch);
        }
        for p in c.patterns.clone() {
            self.punsubscribe(c, id, &p);
        }
        for ch in c.shard.clone() {
            self.sunsubscribe(c, id, &ch);
        }
    }

    /// PUBLISH: delivers to the channel's subscribers and to every matching pattern's;
    /// returns how many deliveries were made (a client matching twice counts twice).
    pub fn publish(&self, channel: &[u8], payload: &[u8], now_ms: i64) -> usize {
        let mut n = 0;
        let mut owned: Option<(Bytes, Bytes)> = None;
        let mut own = || {
            owned
                .get_or_insert_with(|| {
                    (
                        Bytes::copy_from_slice(channel),
                        Bytes::copy_from_slice(payload),
                    )
                })
                .clone()
        };
        if let Some(subs) = self.channels.read().get(channel) {
            for s in subs {
                let (channel, payload) = own();
                s.deliver(
                    Delivery::Message {
                        kind: Kind::Channel,
                        pattern: Bytes::new(),
                        channel,
                        payload,
                    },
                    now_ms,
                );
                n += 1;
            }
        }
        if self.npatterns.load(Ordering::Relaxed) > 0 {
            for (pat, subs) in self.patterns.read().iter() {
                if !glob_match(pat, channel, false) {
                    continue;
                }
                for s in subs {
                    let (channel, payload) = own();
                    s.deliver(
                        Delivery::Message {
                            kind: Kind::Pattern,
                            pattern: pat.clone(),
                            channel,
                            payload,
                        },
                        now_ms,
                    );
                    n += 1;
                }
            }
        }
        n
    }

    /// A client's PUBLISH: delivered here as [`PubSub::publish`] does, and, in a cluster, queued
    /// for the bus to deliver on every other node. Returns the deliveries made here, as Redis
    /// Cluster's PUBLISH does.
    pub fn publish_everywhere(&self, channel: &[u8], payload: &[u8], now_ms: i64) -> usize {
        self.send_out(channel, payload, false);
        self.publish(channel, payload, now_ms)
    }

    /// A client's SPUBLISH: delivered here as [`PubSub::spublish`] does, and, in a cluster,
    /// queued for the bus to deliver on the other nodes of this node's shard (its master or
    /// replicas: Redis 7.0's clusterPropagatePublish). Returns the deliveries made here.
    pub fn spublish_in_shard(&self, channel: &[u8], payload: &[u8], now_ms: i64) -> usize {
        self.send_out(channel, payload, true);
        self.spublish(channel, payload, now_ms)
    }

    /// Queues a message for the cluster bus (clustered nodes only; at most once: a full
    /// outbox drops it, with a warning now and then).
    fn send_out(&self, channel: &[u8], payload: &[u8], shard: bool) {
        let Some(outbox) = self.outbox.get() else {
            return;
        };
        let m = Outgoing {
            channel: Bytes::copy_from_slice(channel),
            payload: Bytes::copy_from_slice(payload),
            shard,
        };
        if outbox.try_send(m).is_err() {
            let dropped = self.outbox_dropped.fetch_add(1, Ordering::Relaxed);
            if dropped.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped = dropped + 1,
                    "cluster bus is behind: PUBLISH not sent to the other nodes"
                );
            }
        }
    }

    /// Opens the queue [`PubSub::publish_everywhere`] fills, for the cluster bus to drain;
    /// `None` if it is already open.
    pub fn open_outbox(&self, capacity: usize) -> Option<mpsc::Receiver<Outgoing>> {
        let (tx, rx) = mpsc::channel(capacity);
        self.outbox.set(tx).ok()?;
        Some(rx)
    }

    /// SPUBLISH: delivers to the shard channel's subscribers only.
    pub fn spublish(&self, channel: &[u8], payload: &[u8], now_ms: i64) -> usize {
        let map = self.shard.read();
        let Some(subs) = map
            .get(&key_hash_slot(channel))
            .and_then(|chans| chans.get(channel))
        else {
            return 0;
        };
        let channel = Bytes::copy_from_slice(channel);
        let payload = Bytes::copy_from_slice(payload);
        for s in subs {
            s.deliver(
                Delivery::Message {
                    kind: Kind::Shard,
                    pattern: Bytes::new(),
                    channel: channel.clone(),
                    payload: payload.clone(),
                },
                now_ms,
            );
        }
        subs.len()
    }

    /// The seam for the cluster bus: a PUBLISH (`shard`: SPUBLISH) made on another node,
    /// delivered to this node's subscribers exactly as a local one would be.
    pub fn deliver_remote(
        &self,
        channel: &[u8],
        payload: &[u8],
        shard: bool,
        now_ms: i64,
    ) -> usize {
        if shard {
            self.spublish(channel, payload, now_ms)
        } else {
            self.publish(channel, payload, now_ms)
        }
    }

    /// The cluster moved `slot` away: its shard channels' subscribers get `sunsubscribe` and
    /// the channels are forgotten (Redis's `removeChannelsInSlot`, which goes through the
    /// channels in byte order).
    pub fn remove_slot(&self, slot: u16, now_ms: i64) {
        let Some(chans) = self.shard.write().remove(&slot) else {
            return;
        };
        let mut chans: Vec<(Bytes, Subscribers)> = chans.into_iter().collect();
        chans.sort_by(|a, b| a.0.cmp(&b.0));
        for (channel, subs) in chans {
            for s in subs {
                s.deliver(
                    Delivery::ShardDropped {
                        channel: channel.clone(),
                    },
                    now_ms,
                );
            }
        }
    }

    /// Drops the shard channels of every slot this node no longer `serves` (see
    /// [`PubSub::remove_slot`]).
    pub fn drop_unserved_slots(&self, serves: impl Fn(u16) -> bool, now_ms: i64) {
        let lost: Vec<u16> = self
            .shard
            .read()
            .keys()
            .copied()
            .filter(|&s| !serves(s))
            .collect();
        for slot in lost {
            self.remove_slot(slot, now_ms);
        }
    }

    /// Active channels matching `pattern` (PUBSUB CHANNELS).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels
            .read()
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    pub fn shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.shard
            .read()
            .values()
            .flat_map(|m| m.keys())
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.read().get(channel).map_or(0, |s| s.len())
    }

    pub fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.shard
            .read()
            .get(&key_hash_slot(channel))
            .and_then(|m| m.get(channel))
            .map_or(0, |s| s.len())
    }

    /// Distinct patterns subscribed by anyone (PUBSUB NUMPAT).
    pub fn numpat(&self) -> usize {
        self.npatterns.load(Ordering::Relaxed)
    }

    /// Channels and patterns with subscribers (INFO's `pubsub_channels`, `pubsub_patterns`).
    pub fn sizes(&self) -> (usize, usize) {
        (self.channels.read().len(), self.numpat())
    }

    /// Shard channels with at least one subscriber (INFO `pubsubshard_channels`).
    pub fn shard_count(&self) -> usize {
        self.shard.read().values().map(|m| m.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> (ClientSubs, CancellationToken) {
        let counts = Arc::new([
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        ]);
        let kill = CancellationToken::new();
        let pushes = Pushes::new(1, kill.clone(), counts.clone());
        (ClientSubs::new(counts, Arc::new(pushes)), kill)
    }

    fn recv_all(c: &mut ClientSubs) -> Vec<Delivery> {
        let inbox = c.inbox.as_mut().expect("subscribed");
        let mut v = Vec::new();
        while let Ok(d) = inbox.rx.try_recv() {
            inbox.sub.written(d.cost());
            v.push(d);
        }
        v
    }

    #[test]
    fn channel_and_pattern_both_receive_in_order() {
        let ps = PubSub::default();
        let (mut a, ka) = sub();
        assert!(ps.subscribe(&mut a, 1, &ka, &Bytes::from("news")));
        assert!(!ps.subscribe(&mut a, 1, &ka, &Bytes::from("news")));
        assert!(ps.psubscribe(&mut a, 1, &ka, &Bytes::from("n*")));
        assert_eq!(ps.publish(b"news", b"1", 0), 2);
        assert_eq!(ps.publish(b"news", b"2", 0), 2);
        assert_eq!(ps.publish(b"other", b"x", 0), 0);
        let got: Vec<(Kind, Bytes)> = recv_all(&mut a)
            .into_iter()
            .map(|d| match d {
                Delivery::Message { kind, payload, .. } => (kind, payload),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Kind::Channel, Bytes::from("1")),
                (Kind::Pattern, Bytes::from("1")),
                (Kind::Channel, Bytes::from("2")),
                (Kind::Pattern, Bytes::from("2")),
            ]
        );
        ps.remove_client(&mut a, 1);
        assert_eq!(ps.publish(b"news", b"3", 0), 0);
        assert_eq!(ps.numpat(), 0);
        assert!(ps.channels(None).is_empty());
    }

    #[test]
    fn hard_limit_disconnects() {
        let ps = PubSub::default();
        ps.limits.hard.store(1000, Ordering::Relaxed);
        let (mut a, ka) = sub();
        ps.subscribe(&mut a, 1, &ka, &Bytes::from("c"));
        for _ in 0..100 {
            ps.publish(b"c", &[b'x'; 100], 0);
        }
        assert!(ka.is_cancelled());
        assert!(recv_all(&mut a).len() < 10);
    }

    #[test]
    fn invalidations_to_a_client_that_is_not_subscribed_are_not_limited() {
        let ps = PubSub::default();
        ps.limits.hard.store(1000, Ordering::Relaxed);
        let (mut a, ka) = sub();
        let q = a.handle(1, &ka, &ps.limits);
        let invalidate = || Delivery::Invalidate {
            keys: Some(Arc::from(vec![Bytes::from(vec![b'k'; 100])])),
            redirected: false,
            null_resp3: true,
        };
        for _ in 0..100 {
            q.deliver(invalidate(), 0);
        }
        assert!(
            !ka.is_cancelled(),
            "a normal client's output is not limited"
        );
        assert_eq!(recv_all(&mut a).len(), 100);
        ps.subscribe(&mut a, 1, &ka, &Bytes::from("c"));
        for _ in 0..100 {
            q.deliver(invalidate(), 0);
        }
        assert!(ka.is_cancelled(), "a subscriber's is");
    }

    #[test]
    fn soft_limit_disconnects_after_its_seconds() {
        let ps = PubSub::default();
        ps.limits.soft.store(500, Ordering::Relaxed);
        ps.limits.soft_seconds.store(2, Ordering::Relaxed);
        let (mut a, ka) = sub();
        ps.subscribe(&mut a, 1, &ka, &Bytes::from("c"));
        for _ in 0..10 {
            ps.publish(b"c", &[b'x'; 100], 10_000);
        }
        assert!(!ka.is_cancelled(), "over the soft limit, but not for long");
        ps.publish(b"c", b"x", 12_000);
        assert!(
            !ka.is_cancelled(),
            "exactly the soft seconds is still allowed"
        );
        ps.publish(b"c", b"x", 13_000);
        assert!(ka.is_cancelled());
    }

    #[test]
    fn shard_channels_by_slot() {
        let ps = PubSub::default();
        let (mut a, ka) = sub();
        ps.ssubscribe(&mut a, 1, &ka, &Bytes::from("{u}a"));
        ps.ssubscribe(&mut a, 1, &ka, &Bytes::from("{u}b"));
        assert_eq!(
            ps.publish(b"{u}a", b"x", 0),
            0,
            "PUBLISH does not reach shard channels"
        );
        assert_eq!(ps.spublish(b"{u}a", b"x", 0), 1);
        assert_eq!(ps.shard_numsub(b"{u}b"), 1);
        ps.remove_slot(key_hash_slot(b"u"), 0);
        assert_eq!(ps.shard_numsub(b"{u}b"), 0);
        let got = recv_all(&mut a);
        assert_eq!(got.len(), 3);
        let mut out = BytesMut::new();
        let inbox = a.inbox.take().expect("inbox");
        for d in got {
            inbox.write(&mut out, false, &mut a, d);
        }
        assert!(!a.active());
    }
}
