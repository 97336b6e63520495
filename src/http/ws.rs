//! `/ws`: the live feed of key events (docs/api.md, "Live feed"). One task per client reads its
//! requests and forwards the events of the key-event bus whose key matches one of its glob
//! patterns.
//!
//! Back-pressure: a client is a lossy subscriber of the bus's bounded broadcast. When its socket
//! is slow the task stops draining the broadcast, the broadcast overwrites what it missed, and
//! the client is told `{"type":"lagged","missed":N}`: the store never waits for a client. A
//! client with no pattern holds no subscription, so a feed nobody listens to costs nothing.
//!
//! Scope: `"scope":"cluster"` asks for every node's events: other nodes' events come through the
//! relay (`relay.rs`), with the same back-pressure. A node outside a cluster is the whole
//! cluster, so its own events are exactly that. Every client also gets a `cluster` message when
//! membership, a node's state or slot ownership changes.
//!
//! `scan` is the REST key listing ([`api::keys_page`]) over the socket: the whole cluster by
//! default, as `/api/v1/keys`, whatever scope the client's subscriptions have.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use futures_util::SinkExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::AppState;
use super::api::{self, KeyEntry, KeysQuery, Lister};
use super::peers::Peers;
use super::relay::{Relay, RelaySubscription};
use super::view::{self, bytes_to_json};
use crate::cluster::bus::RelayedEvent;
use crate::glob::glob_match;
use crate::node::Node;
use crate::observe::events::{KeyEvent, Subscription};

/// Largest request a client may send; requests are small JSON objects.
const MAX_MESSAGE: usize = 64 * 1024;
/// Patterns one client may hold.
const MAX_PATTERNS: usize = 256;
/// Events written per flush: batching keeps syscalls low when writes come fast.
const BATCH: usize = 256;
/// How long a client's task rests after sending events before it takes the next ones: see
/// [`rest`].
const REST: Duration = Duration::from_micros(1);
/// Subscribers that share one millisecond of rest, and the longest rest (a frame at 60 Hz).
const SUBSCRIBERS_PER_MS: usize = 20;
const MAX_REST: Duration = Duration::from_millis(16);

/// Feed figures for `/metrics`, and the feed's and the API's cluster-wide parts.
#[derive(Default)]
pub struct FeedStats {
    /// Connected `/ws` clients.
    pub clients: AtomicUsize,
    /// Clients holding at least one pattern (subscribed to the bus).
    pub subscribers: AtomicUsize,
    /// Events dropped for clients that fell behind.
    pub dropped_events: AtomicU64,
    /// Other nodes' events for clients of the cluster scope.
    pub relay: Relay,
    /// Bus clients for forwarded requests and relay streams.
    pub peers: Peers,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(State(s): State<AppState>, parts: Parts, ws: WebSocketUpgrade) -> Response {
    let lister = Lister::of(&parts);
    let tasks = s.tasks.clone();
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| {
            // Tracked, so node shutdown waits for the feed to say goodbye.
            tasks.track_future(async move {
                let Some(slot) = Admission::take(&s.node) else {
                    refuse(socket, &s.node).await;
                    return;
                };
                Feed::new(s.node.clone(), lister, slot).run(socket).await;
            })
        })
}

/// A place among `http.max-ws-clients`, given back when dropped.
struct Admission {
    node: Arc<Node>,
}

impl Admission {
    fn take(node: &Arc<Node>) -> Option<Admission> {
        let max = node.config.read().http_max_ws_clients;
        let stats = &node.feed;
        let prev = stats.clients.fetch_add(1, Ordering::Relaxed);
        if prev >= max {
            stats.clients.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Admission { node: node.clone() })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.node.feed.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Too many clients: close at once with 1013 (try again later) and a reason a person can read.
async fn refuse(mut socket: WebSocket, node: &Node) {
    let max = node.config.read().http_max_ws_clients;
    let frame = CloseFrame {
        code: close_code::AGAIN,
        reason: format!("too many /ws clients (http.max-ws-clients = {max})").into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Subscribe {
        pattern: String,
        #[serde(default)]
        scope: Scope,
    },
    Unsubscribe {
        pattern: String,
    },
    /// A page of the key listing, as `/api/v1/keys` gives it (same fields, same cursor).
    Scan(KeysQuery),
}

/// Whose events a client wants. It is the client's, not one pattern's: once a subscription asks
/// for the cluster, every pattern of the client matches every node's events.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Scope {
    #[default]
    Node,
    Cluster,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Reply<'a> {
    Event {
        event: &'a str,
        key: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        key_b64: bool,
        db: usize,
        node: &'a str,
        ts_ms: i64,
    },
    Scan {
        cursor: String,
        keys: Vec<KeyEntry>,
    },
    Lagged {
        missed: u64,
    },
    /// The subscription is in force: events that match it are delivered from now on. For the
    /// cluster scope, once the streams from every other reachable master are open (waited for
    /// at most `relay::OPEN_WAIT`; one still connecting then delivers once it is).
    Subscribed {
        pattern: &'a str,
        scope: &'static str,
    },
    Unsubscribed {
        pattern: &'a str,
    },
    Cluster {
        #[serde(flatten)]
        view: &'a view::Cluster,
    },
    Error {
        message: String,
    },
}

impl Reply<'_> {
    fn message(&self) -> Message {
        // Serialising these types cannot fail: no maps with non-string keys, no floats.
        Message::Text(serde_json::to_string(self).unwrap_or_default().into())
    }
}

struct Feed {
    node: Arc<Node>,
    node_id: String,
    /// The client, as its key listings are asked for.
    lister: Lister,
    patterns: Vec<Vec<u8>>,
    scope: Scope,
    sub: Option<Subscription>,
    remote: Option<RelaySubscription>,
    _slot: Admission,
}

impl Feed {
    fn new(node: Arc<Node>, lister: Lister, slot: Admission) -> Feed {
        Feed {
            node_id: view::node_id(&node),
            node,
            lister,
            patterns: Vec::new(),
            scope: Scope::Node,
            sub: None,
            remote: None,
            _slot: slot,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let shutdown = self.node.shutdown.clone();
        let mut out: Vec<Message> = Vec::with_capacity(BATCH);
        let mut cluster = self.node.feed.relay.cluster_changes();
        cluster.borrow_and_update();
        // Set after a batch of events went out: until then the task does not wait on the
        // broadcasts, so writers do not wake it for every event (see `REST`).
        let mut rest_until: Option<Instant> = None;
        // Set after a full batch: more are waiting, take them without resting.
        let mut more = false;
        loop {
            let mut delivered = false;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let frame = CloseFrame { code: close_code::AWAY, reason: "node shutting down".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(t))) => self.handle(t.as_str(), &mut out).await,
                    Some(Ok(Message::Binary(_))) => out.push(Reply::Error {
                        message: "requests are JSON text frames".into(),
                    }.message()),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {} // ping/pong: answered by the WebSocket layer
                    Some(Err(e)) => {
                        tracing::debug!(peer = %self.lister.peer, "ws read: {e}");
                        let frame = CloseFrame { code: close_code::SIZE, reason: "bad or oversized frame".into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        break;
                    }
                },
                _ = std::future::ready(()), if more => {
                    delivered = self.drain(&mut out);
                }
                _ = sleep_until(rest_until), if rest_until.is_some() => {
                    rest_until = None;
                    delivered = self.drain(&mut out);
                }
                first = recv(&mut self.sub), if rest_until.is_none() && !more => {
                    self.take_events(first, &mut out);
                    self.take_relayed(None, &mut out);
                    delivered = true;
                }
                first = recv_relayed(&mut self.remote), if rest_until.is_none() && !more => {
                    self.take_relayed(Some(first), &mut out);
                    self.take_events_waiting(&mut out);
                    delivered = true;
                }
                Ok(()) = cluster.changed() => {
                    if let Some(view) = cluster.borrow_and_update().clone() {
                        out.push(Reply::Cluster { view: &view }.message());
                    }
                }
            }
            more = delivered && out.len() >= BATCH;
            if delivered && !more {
                rest_until = Some(Instant::now() + rest(&self.node));
            }
            if out.is_empty() {
                continue;
            }
            let sent = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = send_all(&mut socket, &mut out) => r,
            };
            if sent.is_err() {
                break;
            }
        }
        self.patterns.clear();
        self.sync_subscriptions();
    }

    /// Answers one request. A `scan` of the cluster waits for the other nodes' parts (bounded
    /// by the bus call timeout); meanwhile events wait in the broadcast, under its usual
    /// back-pressure.
    async fn handle(&mut self, text: &str, out: &mut Vec<Message>) {
        let req = match serde_json::from_str::<Request>(text) {
            Ok(r) => r,
            Err(e) => {
                out.push(
                    Reply::Error {
                        message: format!("bad request: {e}"),
                    }
                    .message(),
                );
                return;
            }
        };
        match req {
            Request::Subscribe { pattern, scope } => {
                if scope == Scope::Cluster {
                    self.scope = Scope::Cluster;
                }
                let p = pattern.as_bytes().to_vec();
                if !self.patterns.contains(&p) {
                    if self.patterns.len() >= MAX_PATTERNS {
                        out.push(
                            Reply::Error {
                                message: format!("at most {MAX_PATTERNS} patterns per client"),
                            }
                            .message(),
                        );
                        return;
                    }
                    self.patterns.push(p);
                }
                self.sync_subscriptions();
                if self.remote.is_some() {
                    let relay = &self.node.feed.relay;
                    if !relay.wait_open(&self.node, super::relay::OPEN_WAIT).await {
                        tracing::debug!("cluster feed: some peer's stream is not open yet");
                    }
                }
                out.push(
                    Reply::Subscribed {
                        pattern: &pattern,
                        scope: match self.scope {
                            Scope::Node => "node",
                            Scope::Cluster => "cluster",
                        },
                    }
                    .message(),
                );
            }
            Request::Unsubscribe { pattern } => {
                self.patterns.retain(|p| p[..] != *pattern.as_bytes());
                self.sync_subscriptions();
                out.push(Reply::Unsubscribed { pattern: &pattern }.message());
            }
            Request::Scan(q) => {
                let page = api::keys_page(&self.node, &self.lister, &q).await;
                out.push(match page {
                    Ok(p) => Reply::Scan {
                        cursor: p.cursor,
                        keys: p.keys,
                    }
                    .message(),
                    Err(e) => Reply::Error { message: e.message }.message(),
                });
            }
        }
    }

    /// Holds the subscriptions the patterns and scope need: none without a pattern, the
    /// relay only for the cluster scope of a clustered node.
    fn sync_subscriptions(&mut self) {
        let on = !self.patterns.is_empty();
        match (on, self.sub.is_some()) {
            (true, false) => {
                self.sub = Some(self.node.store.events.subscribe());
                self.node.feed.subscribers.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                self.sub = None;
                self.node.feed.subscribers.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let relayed = on && self.scope == Scope::Cluster && self.node.cluster.is_some();
        if relayed && self.remote.is_none() {
            self.remote = Some(self.node.feed.relay.subscribe());
        } else if !relayed {
            self.remote = None;
        }
    }

    fn wants(&self, event: &str, key: &[u8]) -> bool {
        // A flush changes every key: every subscriber hears of it.
        matches!(event, "flushdb" | "flushall")
            || self.patterns.iter().any(|p| glob_match(p, key, false))
    }

    fn lagged(&self, missed: u64, out: &mut Vec<Message>) {
        self.node
            .feed
            .dropped_events
            .fetch_add(missed, Ordering::Relaxed);
        out.push(Reply::Lagged { missed }.message());
    }

    /// Takes the events that arrived while the task rested, up to a batch. Returns whether
    /// there were any: with none, the task waits on the broadcasts again.
    fn drain(&mut self, out: &mut Vec<Message>) -> bool {
        let local = self.take_events_waiting(out);
        let relayed = self.take_relayed(None, out);
        local + relayed > 0
    }

    /// Queues the event just received and whatever else is already waiting (up to a batch).
    fn take_events(&mut self, first: Result<Arc<KeyEvent>, RecvError>, out: &mut Vec<Message>) {
        match first {
            Ok(ev) => self.push_event(&ev, out),
            Err(RecvError::Lagged(n)) => self.lagged(n, out),
            Err(RecvError::Closed) => {
                self.patterns.clear();
                self.sync_subscriptions();
                return;
            }
        }
        self.take_events_waiting(out);
    }

    /// Queues this node's events already in the broadcast, until the batch is full. Returns
    /// how many it took, matching or not.
    fn take_events_waiting(&mut self, out: &mut Vec<Message>) -> usize {
        let mut taken = 0;
        while out.len() < BATCH {
            let Some(sub) = self.sub.as_mut() else {
                break;
            };
            match sub.rx.try_recv() {
                Ok(ev) => self.push_event(&ev, out),
                Err(TryRecvError::Lagged(n)) => self.lagged(n, out),
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
            taken += 1;
        }
        taken
    }

    fn push_event(&self, ev: &KeyEvent, out: &mut Vec<Message>) {
        if self.wants(ev.event, &ev.key) {
            let frame = ev
                .encoded
                .get_or_init(|| event_json(ev.event, &ev.key, ev.db, &self.node_id, ev.ts_ms));
            out.push(text_frame(frame));
        }
    }

    /// As [`Feed::take_events`], for other nodes' events (`first` is `None` when nothing woke
    /// the task for them). Returns how many it took from the relay, matching or not.
    fn take_relayed(
        &mut self,
        first: Option<Result<Arc<RelayedEvent>, RecvError>>,
        out: &mut Vec<Message>,
    ) -> usize {
        let mut taken = usize::from(first.is_some());
        let mut next = match first {
            Some(Ok(ev)) => Some(Ok(ev)),
            Some(Err(RecvError::Lagged(n))) => Some(Err(n)),
            Some(Err(RecvError::Closed)) => {
                self.remote = None;
                return 0;
            }
            None => None,
        };
        loop {
            match next {
                // The peer dropped events for this node's relay: every client missed them.
                Some(Ok(ev)) if ev.missed > 0 => self.lagged(ev.missed, out),
                Some(Ok(ev)) if self.wants(&ev.event, &ev.key) => {
                    let frame = ev.encoded.get_or_init(|| {
                        event_json(&ev.event, &ev.key, ev.db, &ev.node_id, ev.ts_ms)
                    });
                    out.push(text_frame(frame));
                }
                Some(Err(missed)) => self.lagged(missed, out),
                Some(Ok(_)) | None => {}
            }
            if out.len() >= BATCH {
                return taken;
            }
            let Some(remote) = self.remote.as_mut() else {
                return taken;
            };
            next = match remote.rx.try_recv() {
                Ok(ev) => Some(Ok(ev)),
                Err(TryRecvError::Lagged(n)) => Some(Err(n)),
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return taken,
            };
            taken += 1;
        }
    }
}

/// An event as the feed's JSON text.
fn event_json(event: &str, key: &[u8], db: usize, node: &str, ts_ms: i64) -> Bytes {
    let (key, key_b64) = bytes_to_json(key);
    let reply = Reply::Event {
        event,
        key: &key,
        key_b64,
        db,
        node,
        ts_ms,
    };
    // Sized for the fixed fields, so the encoding writes into one allocation.
    let mut json = Vec::with_capacity(96 + key.len() + node.len());
    // Cannot fail, as `Reply::message`.
    let _ = serde_json::to_writer(&mut json, &reply);
    Bytes::from(json)
}

/// A text frame of JSON made by [`event_json`], sharing its bytes.
fn text_frame(json: &Bytes) -> Message {
    // `event_json` writes UTF-8 (serde_json's output), so this cannot fail.
    Message::Text(Utf8Bytes::try_from(json.clone()).unwrap_or_default())
}

/// How long a client's task rests after sending events before it takes the next ones. While
/// it rests, the events it will send wait in the broadcast and writers do not wake it: under a
/// fast stream of writes it wakes and writes to its socket about once per rest, not once per
/// event, which was most of what the feed cost the node. An event after a quiet spell goes out
/// at once.
///
/// Tokio's timer rounds a deadline up to its next millisecond tick, so with up to
/// [`SUBSCRIBERS_PER_MS`] subscribers the rest lasts until that tick (under a millisecond, half
/// of one on average). With more, it grows by a millisecond per [`SUBSCRIBERS_PER_MS`], up to
/// [`MAX_REST`], so the node's wake-ups and socket writes stay near 20 per millisecond however
/// many clients watch (a browser draws at most once per 16 ms anyway).
fn rest(node: &Node) -> Duration {
    let subscribers = node.feed.subscribers.load(Ordering::Relaxed);
    let ms = (subscribers / SUBSCRIBERS_PER_MS) as u32;
    (REST + Duration::from_millis(u64::from(ms))).min(MAX_REST)
}

/// Sleeps until `at`; pending forever without a time (the branch is then disabled anyway).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn recv(sub: &mut Option<Subscription>) -> Result<Arc<KeyEvent>, RecvError> {
    match sub {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_relayed(sub: &mut Option<RelaySubscription>) -> Result<Arc<RelayedEvent>, RecvError> {
    match sub {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes the queued messages with one flush.
async fn send_all(socket: &mut WebSocket, out: &mut Vec<Message>) -> Result<(), axum::Error> {
    for m in out.drain(..) {
        socket.feed(m).await?;
    }
    socket.flush().await
}
