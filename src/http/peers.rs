//! The HTTP API across the cluster: which node owns a key, and `/api/v1` requests run by another
//! node over the cluster bus (`Http` RPC). A request about a key owned elsewhere is forwarded to
//! its owner and the owner's answer is returned as it is (docs/api.md, "Across the cluster"), so a
//! browser talks to one node only, even when it reaches that node through a port-forward.
//!
//! A forwarded request carries the [`Forwarded`] marker and is never forwarded again: if the
//! owner's own view disagrees (a slot moved meanwhile), its command path answers with Redis's
//! redirection, which the API reports as 503 (retry).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::AppState;
use super::error::ApiError;
use crate::cluster::bus::{self, BusClient, HttpAnswer, HttpCall};
use crate::cluster::slots::key_hash_slot;
use crate::node::Node;

/// How long a forwarded request may take, the owner's work included.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A relay stream stays open as long as someone watches: no deadline of its own.
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Largest answer a forwarded request may bring back (a key read is cut at 1 MiB by default).
const MAX_ANSWER: usize = 64 << 20;

/// Marks a request that another node forwarded here: it is answered locally, whatever the slot
/// table says.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

/// Bus clients to peers, one per address and purpose, created on first use.
#[derive(Default)]
pub struct Peers {
    calls: Mutex<HashMap<String, BusClient>>,
    streams: Mutex<HashMap<String, BusClient>>,
    /// Failed bus calls and streams of the HTTP surface, for `/metrics` (its messages and their
    /// bytes are in the cluster's `BusStats::traffic` with every other bus message's).
    pub http_errors: AtomicU64,
    pub feed_errors: AtomicU64,
    /// Streams of this node's events open to peers now.
    pub feed_streams: AtomicU64,
    /// Other nodes' own figures for the cluster view, by node ID.
    figures: Mutex<HashMap<String, Figures>>,
}

/// What a node says of itself in its `/api/v1/info`.
#[derive(Debug, Clone)]
pub struct Figures {
    at: Instant,
    refreshing: bool,
    pub keys: Option<u64>,
    pub used_memory: Option<u64>,
    pub ops_per_sec: Option<u64>,
    pub connected_clients: Option<u64>,
    pub keyspace_hits: Option<u64>,
    pub keyspace_misses: Option<u64>,
    /// The slots it is moving away.
    pub moving: Vec<crate::http::view::SlotMove>,
}

impl Figures {
    /// The slots it said it is moving, unless it said so too long ago to still be true.
    pub fn moving_now(&self) -> &[crate::http::view::SlotMove] {
        if self.at.elapsed() < 3 * FIGURES_FRESH {
            &self.moving
        } else {
            &[]
        }
    }
}

impl Peers {
    fn client(
        map: &Mutex<HashMap<String, BusClient>>,
        addr: &str,
        timeout: Duration,
    ) -> Result<BusClient, ApiError> {
        let mut m = map.lock();
        if let Some(c) = m.get(addr) {
            return Ok(c.clone());
        }
        let c = bus::client(addr, timeout)
            .map_err(|e| ApiError::unavailable(format!("bad bus address {addr}: {e}")))?;
        m.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    pub fn call_client(&self, addr: &str) -> Result<BusClient, ApiError> {
        Self::client(&self.calls, addr, CALL_TIMEOUT)
    }

    pub fn stream_client(&self, addr: &str) -> Result<BusClient, ApiError> {
        Self::client(&self.streams, addr, STREAM_TIMEOUT)
    }
}

/// How long another node's figures are shown without asking again, and how long an answer is
/// waited for.
const FIGURES_FRESH: Duration = Duration::from_millis(1000);
const FIGURES_TIMEOUT: Duration = Duration::from_millis(1000);
/// Figures older than this are not shown.
const FIGURES_KEPT: Duration = Duration::from_secs(30);

/// Other masters' own figures (keys, memory, load) for the cluster view. A node never asked is
/// asked now (up to a second); a known one is answered from what it last said and asked again in
/// the background when that is older than a second, so the view a UI polls stays fast.
pub async fn figures(node: &Arc<Node>) -> HashMap<String, Figures> {
    let now = Instant::now();
    let mut asks = tokio::task::JoinSet::new();
    {
        let mut cache = node.feed.peers.figures.lock();
        let others: Vec<Peer> = masters(node)
            .into_iter()
            .filter(|p| !p.myself && !p.failed)
            .collect();
        cache.retain(|id, f| {
            now.duration_since(f.at) < FIGURES_KEPT && others.iter().any(|p| &p.id == id)
        });
        for p in others {
            match cache.get_mut(&p.id) {
                Some(f) if now.duration_since(f.at) < FIGURES_FRESH || f.refreshing => {}
                Some(f) => {
                    f.refreshing = true;
                    // Bounded by FIGURES_TIMEOUT; stores what it learns for the next view.
                    tokio::spawn(ask_figures(node.clone(), p));
                }
                None => {
                    asks.spawn(ask_figures(node.clone(), p));
                }
            }
        }
    }
    while asks.join_next().await.is_some() {}
    node.feed
        .peers
        .figures
        .lock()
        .iter()
        .map(|(id, f)| (id.clone(), f.clone()))
        .collect()
}

async fn ask_figures(node: Arc<Node>, p: Peer) {
    let call = HttpCall {
        method: "GET".into(),
        path_and_query: "/api/v1/info".into(),
        authorization: String::new(),
        body: Vec::new(),
    };
    let answer = tokio::time::timeout(FIGURES_TIMEOUT, forward(&node, &p, call)).await;
    let info = match answer {
        Ok(Ok(a)) if a.status == 200 => serde_json::from_slice::<serde_json::Value>(&a.body).ok(),
        _ => None,
    };
    let mut cache = node.feed.peers.figures.lock();
    match info {
        Some(info) => {
            let stat = |k: &str| info["stats"][k].as_u64();
            cache.insert(
                p.id,
                Figures {
                    at: Instant::now(),
                    refreshing: false,
                    keys: stat("keys"),
                    used_memory: stat("used_memory"),
                    ops_per_sec: stat("ops_per_sec"),
                    connected_clients: stat("connected_clients"),
                    keyspace_hits: stat("keyspace_hits"),
                    keyspace_misses: stat("keyspace_misses"),
                    moving: serde_json::from_value(info["moving"].clone()).unwrap_or_default(),
                },
            );
        }
        None => {
            if let Some(f) = cache.get_mut(&p.id) {
                f.refreshing = false;
            }
        }
    }
}

/// A master of the cluster as the HTTP surface needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    /// `ip:bus-port`.
    pub bus_addr: String,
    pub myself: bool,
    pub failed: bool,
}

/// Every master this node knows, itself included, sorted by node ID (the order of a
/// cluster-wide key listing). Empty outside a cluster.
pub fn masters(node: &Node) -> Vec<Peer> {
    let Some(c) = &node.cluster else {
        return Vec::new();
    };
    let st = c.state.lock();
    // BTreeMap: already in ID order.
    st.nodes
        .values()
        .filter(|n| n.is_master())
        .map(|n| Peer {
            id: n.id.clone(),
            bus_addr: format!("{}:{}", n.endpoint.ip, n.endpoint.bus_port),
            myself: n.id == st.myself,
            failed: n.failed(),
        })
        .collect()
}

/// The node owning `key`'s slot, when that is another node.
pub fn owner_elsewhere(node: &Node, key: &[u8]) -> Option<Peer> {
    let c = node.cluster.as_ref()?;
    let st = c.state.lock();
    let owner = st.slots.get(key_hash_slot(key) as usize)?.as_ref()?;
    if *owner == st.myself {
        return None;
    }
    let n = st.nodes.get(owner)?;
    Some(Peer {
        id: n.id.clone(),
        bus_addr: format!("{}:{}", n.endpoint.ip, n.endpoint.bus_port),
        myself: false,
        failed: n.failed(),
    })
}

/// The request as the owner should run it.
pub fn call_from(parts: &Parts, path_and_query: String, body: Vec<u8>) -> HttpCall {
    HttpCall {
        method: parts.method.as_str().to_string(),
        path_and_query,
        authorization: parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body,
    }
}

/// Has `peer` answer `call` over the bus.
pub async fn forward(node: &Node, peer: &Peer, call: HttpCall) -> Result<HttpAnswer, ApiError> {
    let Some(cluster) = node.cluster.as_deref() else {
        return Err(ApiError::unavailable("cluster disabled"));
    };
    let secret = cluster.cfg.secret.as_deref();
    let mut client = node.feed.peers.call_client(&peer.bus_addr)?;
    let answer = tokio::select! {
        a = bus::call_http(&mut client, secret, call, &cluster.stats.traffic) => a,
        _ = node.shutdown.cancelled() => return Err(ApiError::unavailable("node shutting down")),
    };
    answer.map_err(|e| {
        node.feed.peers.http_errors.fetch_add(1, Ordering::Relaxed);
        ApiError::unavailable(format!(
            "node {} ({}) did not answer: {}",
            peer.id,
            peer.bus_addr,
            e.message()
        ))
    })
}

/// The owner's answer as this node's response.
pub fn to_response(a: HttpAnswer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut r = (status, a.body).into_response();
    if let Ok(v) = HeaderValue::from_str(&a.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// Answers an `/api/v1` request a peer forwarded: runs it through this node's API routes, marked
/// [`Forwarded`].
pub async fn answer(node: &Arc<Node>, call: HttpCall, peer: Option<SocketAddr>) -> HttpAnswer {
    match run_locally(node, call, peer).await {
        Ok(a) => a,
        Err(e) => {
            let r = e.into_response();
            let status = r.status().as_u16();
            let body = axum::body::to_bytes(r.into_body(), MAX_ANSWER)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            HttpAnswer {
                status,
                content_type: "application/json".into(),
                body,
            }
        }
    }
}

async fn run_locally(
    node: &Arc<Node>,
    call: HttpCall,
    peer: Option<SocketAddr>,
) -> Result<HttpAnswer, ApiError> {
    if !call.path_and_query.starts_with("/api/v1/") {
        return Err(ApiError::bad_request("only /api/v1 requests are forwarded"));
    }
    let mut req = axum::http::Request::builder()
        .method(call.method.as_str())
        .uri(call.path_and_query.as_str());
    if !call.authorization.is_empty() {
        req = req.header(header::AUTHORIZATION, call.authorization.as_str());
    }
    let mut req = req
        .body(Body::from(call.body))
        .map_err(|e| ApiError::bad_request(format!("bad forwarded request: {e}")))?;
    req.extensions_mut().insert(Forwarded);
    req.extensions_mut().insert(ConnectInfo(
        peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
    ));
    let state = AppState {
        node: node.clone(),
        // The API routes read neither.
        metrics: prometheus::Registry::new(),
        tasks: TaskTracker::new(),
    };
    let Ok(resp) = super::api::routes().with_state(state).oneshot(req).await;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| ApiError::internal(format!("reading the answer: {e}")))?;
    Ok(HttpAnswer {
        status,
        content_type,
        body: body.to_vec(),
    })
}
