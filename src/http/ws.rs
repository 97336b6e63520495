//! `/ws`: the live feed of key events (docs/api.md, "Live feed"). One task per client reads its
//! requests and forwards the events of the key-event bus whose key matches one of its glob
//! patterns.
//!
//! Back-pressure: a client is a lossy subscriber of the bus's bounded broadcast. When its socket
//! is slow the task stops draining the broadcast, the broadcast overwrites what it missed, and
//! the client is told `{"type":"lagged","missed":N}`: the store never waits for a client. A
//! client with no pattern holds no subscription, so a feed nobody listens to costs nothing.
//!
//! Scope: `"scope":"cluster"` asks for every node's events. A node outside a cluster is the
//! whole cluster, so its own events are exactly that; relaying other nodes' events over the
//! cluster bus comes with the cluster work (see [`Scope`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use futures_util::SinkExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::AppState;
use super::api::{KeyEntry, KeysQuery, peer, scan_page};
use super::exec::Session;
use super::view::{self, bytes_to_json};
use crate::glob::glob_match;
use crate::node::Node;
use crate::observe::events::{KeyEvent, Subscription};

/// Largest request a client may send; requests are small JSON objects.
const MAX_MESSAGE: usize = 64 * 1024;
/// Patterns one client may hold.
const MAX_PATTERNS: usize = 256;
/// Events written per flush: batching keeps syscalls low when writes come fast.
const BATCH: usize = 256;

/// Feed figures for `/metrics`.
#[derive(Default)]
pub struct FeedStats {
    /// Connected `/ws` clients.
    pub clients: AtomicUsize,
    /// Clients holding at least one pattern (subscribed to the bus).
    pub subscribers: AtomicUsize,
    /// Events dropped for clients that fell behind.
    pub dropped_events: AtomicU64,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(State(s): State<AppState>, parts: Parts, ws: WebSocketUpgrade) -> Response {
    let peer = peer(&parts.extensions);
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
                Feed::new(s.node.clone(), peer, slot).run(socket).await;
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
        /// Checked (an unknown scope is a bad request) but not yet acted on: see [`Scope`].
        #[serde(default, rename = "scope")]
        _scope: Scope,
    },
    Unsubscribe {
        pattern: String,
    },
    Scan {
        #[serde(rename = "match")]
        pattern: Option<String>,
        cursor: Option<String>,
        count: Option<usize>,
        #[serde(rename = "type")]
        kind: Option<String>,
    },
}

/// Whose events a subscription wants. Until the cluster bus relays events between nodes, this
/// node is the only one it knows ([`view::known_nodes`]), so both scopes read the local bus.
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
    peer: std::net::SocketAddr,
    patterns: Vec<Vec<u8>>,
    sub: Option<Subscription>,
    _slot: Admission,
}

impl Feed {
    fn new(node: Arc<Node>, peer: std::net::SocketAddr, slot: Admission) -> Feed {
        Feed {
            node_id: view::node_id(&node),
            node,
            peer,
            patterns: Vec::new(),
            sub: None,
            _slot: slot,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let shutdown = self.node.shutdown.clone();
        let mut out: Vec<Message> = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let frame = CloseFrame { code: close_code::AWAY, reason: "node shutting down".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(t))) => self.handle(t.as_str(), &mut out),
                    Some(Ok(Message::Binary(_))) => out.push(Reply::Error {
                        message: "requests are JSON text frames".into(),
                    }.message()),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {} // ping/pong: answered by the WebSocket layer
                    Some(Err(e)) => {
                        tracing::debug!(peer = %self.peer, "ws read: {e}");
                        let frame = CloseFrame { code: close_code::SIZE, reason: "bad or oversized frame".into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        break;
                    }
                },
                first = recv(&mut self.sub) => self.take_events(first, &mut out),
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
        self.set_subscribed(false);
    }

    fn handle(&mut self, text: &str, out: &mut Vec<Message>) {
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
            Request::Subscribe { pattern, .. } => {
                let p = pattern.into_bytes();
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
                self.set_subscribed(true);
            }
            Request::Unsubscribe { pattern } => {
                self.patterns.retain(|p| p[..] != *pattern.as_bytes());
                if self.patterns.is_empty() {
                    self.set_subscribed(false);
                }
            }
            Request::Scan {
                pattern,
                cursor,
                count,
                kind,
            } => {
                let q = KeysQuery {
                    pattern,
                    cursor,
                    count,
                    kind,
                };
                let page = Session::open(&self.node, self.peer)
                    .and_then(|mut s| scan_page(&mut s, &self.node_id, &q));
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

    fn set_subscribed(&mut self, on: bool) {
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
    }

    fn wants(&self, ev: &KeyEvent) -> bool {
        // A flush changes every key: every subscriber hears of it.
        matches!(ev.event, "flushdb" | "flushall")
            || self.patterns.iter().any(|p| glob_match(p, &ev.key, false))
    }

    /// Queues the event just received and whatever else is already waiting (up to a batch).
    fn take_events(&mut self, first: Result<Arc<KeyEvent>, RecvError>, out: &mut Vec<Message>) {
        let mut next = match first {
            Ok(ev) => Ok(ev),
            Err(RecvError::Lagged(n)) => Err(n),
            Err(RecvError::Closed) => {
                self.set_subscribed(false);
                return;
            }
        };
        loop {
            match next {
                Ok(ev) => {
                    if self.wants(&ev) {
                        out.push(self.event_message(&ev));
                    }
                }
                Err(missed) => {
                    self.node
                        .feed
                        .dropped_events
                        .fetch_add(missed, Ordering::Relaxed);
                    out.push(Reply::Lagged { missed }.message());
                }
            }
            if out.len() >= BATCH {
                return;
            }
            let Some(sub) = self.sub.as_mut() else {
                return;
            };
            next = match sub.rx.try_recv() {
                Ok(ev) => Ok(ev),
                Err(TryRecvError::Lagged(n)) => Err(n),
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return,
            };
        }
    }

    fn event_message(&self, ev: &KeyEvent) -> Message {
        let (key, key_b64) = bytes_to_json(&ev.key);
        Reply::Event {
            event: ev.event,
            key: &key,
            key_b64,
            db: ev.db,
            node: &self.node_id,
            ts_ms: ev.ts_ms,
        }
        .message()
    }
}

async fn recv(sub: &mut Option<Subscription>) -> Result<Arc<KeyEvent>, RecvError> {
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
