//! The cluster-wide side of the live feed: other nodes' key events for `/ws` clients that asked
//! for `"scope":"cluster"`, and the `cluster` messages sent when membership, node state or slot
//! ownership changes.
//!
//! Relay: while at least one local client wants the cluster's events, this node holds one `Feed`
//! stream (a server-streaming RPC on the bus) from every other master, following membership,
//! and republishes what arrives on a bounded broadcast that those clients read. Back-pressure is
//! the local feed's: each stream is a lossy subscriber on the peer (the peer says how many it
//! dropped), each client a lossy subscriber here; nothing ever waits for a reader. With no such
//! client no stream is open, so peers' write paths pay nothing.
//!
//! One supervisor task per node ([`run`]) does both jobs on a short tick.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::peers::{self, Peer};
use super::view;
use crate::cluster::bus::{self, RelayedEvent};
use crate::node::Node;
use crate::observe::events::SUBSCRIBER_BUFFER;

/// How often membership and the cluster view are looked at.
const TICK: Duration = Duration::from_millis(250);
/// The longest a cluster-scope subscription waits for the streams from peers to open before it
/// is acknowledged anyway.
pub const OPEN_WAIT: Duration = Duration::from_secs(2);
/// Wait before reopening a stream that failed, doubled up to the maximum.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(2);

pub struct Relay {
    tx: broadcast::Sender<Arc<RelayedEvent>>,
    /// Local clients wanting the cluster's events.
    users: Arc<AtomicUsize>,
    wake: Notify,
    /// The cluster view last announced to `/ws` clients.
    cluster: watch::Sender<Option<Arc<view::Cluster>>>,
    /// Bus addresses of the peers whose stream is open (the peer is subscribed to its events).
    open: watch::Sender<HashSet<String>>,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            tx: broadcast::channel(SUBSCRIBER_BUFFER).0,
            users: Arc::new(AtomicUsize::new(0)),
            wake: Notify::new(),
            cluster: watch::channel(None).0,
            open: watch::channel(HashSet::new()).0,
        }
    }
}

/// Other nodes' events for one client; dropping it gives its place back.
pub struct RelaySubscription {
    pub rx: broadcast::Receiver<Arc<RelayedEvent>>,
    users: Arc<AtomicUsize>,
}

impl Drop for RelaySubscription {
    fn drop(&mut self) {
        self.users.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Relay {
    /// Starts (or shares) the relay from every other node.
    pub fn subscribe(&self) -> RelaySubscription {
        let rx = self.tx.subscribe();
        self.users.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        RelaySubscription {
            rx,
            users: self.users.clone(),
        }
    }

    /// The cluster view as announced to `/ws` clients; a change means a `cluster` message.
    pub fn cluster_changes(&self) -> watch::Receiver<Option<Arc<view::Cluster>>> {
        self.cluster.subscribe()
    }

    /// Waits, at most `limit`, until the stream from every other master not marked failed is
    /// open, so that events written on any of them from now on reach this node. Returns whether
    /// they all are.
    pub async fn wait_open(&self, node: &Node, limit: Duration) -> bool {
        let mut open = self.open.subscribe();
        let all_open = |open: &HashSet<String>| {
            peers::masters(node)
                .iter()
                .filter(|p| !p.myself && !p.failed)
                .all(|p| open.contains(&p.bus_addr))
        };
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if all_open(&open.borrow_and_update()) {
                return true;
            }
            // Membership may change without a stream opening: look again now and then.
            let next = (tokio::time::Instant::now() + TICK).min(deadline);
            tokio::select! {
                _ = open.changed() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return all_open(&open.borrow());
            }
        }
    }
}

/// Marks a peer's stream open for as long as it lives.
struct OpenMark<'a> {
    relay: &'a Relay,
    addr: &'a str,
}

impl<'a> OpenMark<'a> {
    fn new(relay: &'a Relay, addr: &'a str) -> OpenMark<'a> {
        relay.open.send_modify(|o| {
            o.insert(addr.to_string());
        });
        OpenMark { relay, addr }
    }
}

impl Drop for OpenMark<'_> {
    fn drop(&mut self) {
        self.relay.open.send_modify(|o| {
            o.remove(self.addr);
        });
    }
}

/// Runs the relay and the cluster watch until the node shuts down (clustered nodes only).
pub async fn run(node: Arc<Node>) {
    if node.cluster.is_none() {
        return;
    }
    let relay = &node.feed.relay;
    let mut streams: HashMap<String, (String, CancellationToken)> = HashMap::new();
    let mut announced: Option<Fingerprint> = None;
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => break,
            _ = relay.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
        if node.feed.clients.load(Ordering::Relaxed) > 0 {
            let c = view::cluster(&node);
            let f = fingerprint(&c);
            if announced.as_ref() != Some(&f) {
                announced = Some(f);
                relay.cluster.send_replace(Some(Arc::new(c)));
            }
        } else {
            announced = None;
        }
        let wanted: HashMap<String, String> = if relay.users.load(Ordering::Relaxed) > 0 {
            peers::masters(&node)
                .into_iter()
                .filter(|p| !p.myself)
                .map(|Peer { id, bus_addr, .. }| (id, bus_addr))
                .collect()
        } else {
            HashMap::new()
        };
        streams.retain(|id, (addr, cancel)| {
            let keep = wanted.get(id) == Some(addr);
            if !keep {
                cancel.cancel();
            }
            keep
        });
        for (id, addr) in wanted {
            if streams.contains_key(&id) {
                continue;
            }
            let cancel = node.shutdown.child_token();
            tokio::spawn(relay_from(node.clone(), addr.clone(), cancel.clone()));
            streams.insert(id, (addr, cancel));
        }
    }
    for (_, (_, cancel)) in streams {
        cancel.cancel();
    }
}

/// What a `cluster` message is about: membership, each node's state and role, slot ownership,
/// and which slots this node is moving (not how far each move is).
#[derive(PartialEq, Eq)]
struct Fingerprint {
    state: &'static str,
    nodes: Vec<(String, &'static str, &'static str, Vec<[u16; 2]>)>,
    moving: Vec<(u16, String)>,
}

fn fingerprint(c: &view::Cluster) -> Fingerprint {
    Fingerprint {
        state: c.state,
        nodes: c
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.state, n.role, n.slots.clone()))
            .collect(),
        moving: c.moving.iter().map(|m| (m.slot, m.to.clone())).collect(),
    }
}

/// Keeps a stream of one peer's events open until cancelled, reopening it when it fails.
async fn relay_from(node: Arc<Node>, addr: String, cancel: CancellationToken) {
    let mut retry = RETRY_MIN;
    loop {
        let opened = tokio::select! {
            _ = cancel.cancelled() => return,
            r = pump(&node, &addr) => r,
        };
        match opened {
            Ok(true) => retry = RETRY_MIN,
            Ok(false) => {}
            Err(e) => {
                node.feed.peers.feed_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %addr, "event relay: {e}");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Copies one stream to the local broadcast until it ends; `Ok(true)` when it delivered.
async fn pump(node: &Node, addr: &str) -> Result<bool, String> {
    let Some(cluster) = node.cluster.as_deref() else {
        return Err("cluster disabled".into());
    };
    let traffic = &cluster.stats.traffic;
    let mut client = node.feed.peers.stream_client(addr).map_err(|e| e.message)?;
    let mut stream = bus::open_feed(
        &mut client,
        cluster.cfg.secret.as_deref(),
        Vec::new(),
        traffic,
    )
    .await
    .map_err(|e| e.message().to_string())?;
    let _open = OpenMark::new(&node.feed.relay, addr);
    let mut delivered = false;
    while let Some(ev) = stream
        .next(traffic)
        .await
        .map_err(|e| e.message().to_string())?
    {
        delivered = true;
        // No receiver: the last client just left and the supervisor will close this stream.
        let _ = node.feed.relay.tx.send(Arc::new(ev));
    }
    Ok(delivered)
}
