//! The cluster bus over gRPC (tonic): the service peers call, the client calls we make, and the
//! conversion between protobuf messages and our own types. Nothing outside this file sees prost
//! types.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use super::Cluster;
use super::state::{Endpoint, GossipEntry, Header};
use crate::node::Node;
use crate::pubsub::Outgoing;

#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("reredis.cluster.v1");
}

use pb::cluster_bus_client::ClusterBusClient;
use pb::cluster_bus_server::{ClusterBus, ClusterBusServer};

/// Protocol version spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;
const SECRET_HEADER: &str = "x-reredis-cluster-secret";
/// Largest bus message: a migration batch carries at least one whole key, so this bounds the
/// largest value that can move with its slot.
pub const MAX_MESSAGE_BYTES: usize = 600 << 20;

pub fn to_pb_header(h: &Header, http_port: u16) -> pb::NodeHeader {
    pb::NodeHeader {
        version: PROTOCOL_VERSION,
        node_id: h.id.clone(),
        ip: h.endpoint.ip.clone(),
        port: h.endpoint.port as u32,
        bus_port: h.endpoint.bus_port as u32,
        hostname: h.endpoint.hostname.clone(),
        flags: h.flags,
        current_epoch: h.current_epoch,
        config_epoch: h.config_epoch,
        slots: h
            .slots
            .iter()
            .map(|&(a, b)| pb::SlotRange {
                start: a as u32,
                end: b as u32,
            })
            .collect(),
        replica_of: h.replica_of.clone().unwrap_or_default(),
        http_port: http_port as u32,
        provisional: h.provisional,
        keys: h.keys,
        manual_slots: h.manual_slots,
        shard_id: String::new(),
    }
}

fn valid_id(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Decodes and validates a header; `peer` fills in an address the sender did not announce.
pub fn from_pb_header(h: &pb::NodeHeader, peer: Option<SocketAddr>) -> Result<Header, Status> {
    if !valid_id(&h.node_id) {
        return Err(Status::invalid_argument("bad node id"));
    }
    if h.port > u16::MAX as u32 || h.bus_port > u16::MAX as u32 || h.http_port > u16::MAX as u32 {
        return Err(Status::invalid_argument("bad port"));
    }
    let mut slots = Vec::with_capacity(h.slots.len());
    for r in &h.slots {
        if r.start > r.end || r.end >= super::slots::SLOTS as u32 {
            return Err(Status::invalid_argument("bad slot range"));
        }
        slots.push((r.start as u16, r.end as u16));
    }
    let mut ip = h.ip.clone();
    if ip.is_empty()
        && let Some(p) = peer
    {
        ip = p.ip().to_string();
    }
    Ok(Header {
        id: h.node_id.clone(),
        endpoint: Endpoint {
            ip,
            port: h.port as u16,
            bus_port: h.bus_port as u16,
            hostname: h.hostname.clone(),
            http_port: h.http_port as u16,
        },
        flags: h.flags,
        current_epoch: h.current_epoch,
        config_epoch: h.config_epoch,
        slots,
        replica_of: (!h.replica_of.is_empty()).then(|| h.replica_of.clone()),
        provisional: h.provisional,
        keys: h.keys,
        manual_slots: h.manual_slots,
    })
}

pub fn to_pb_gossip(g: &GossipEntry) -> pb::GossipEntry {
    pb::GossipEntry {
        node_id: g.id.clone(),
        ip: g.endpoint.ip.clone(),
        port: g.endpoint.port as u32,
        bus_port: g.endpoint.bus_port as u32,
        hostname: g.endpoint.hostname.clone(),
        flags: g.flags,
        ping_sent_ms: g.ping_sent_ms.max(0) as u64,
        pong_received_ms: g.pong_received_ms.max(0) as u64,
    }
}

pub fn from_pb_gossip(g: &pb::GossipEntry) -> Option<GossipEntry> {
    if !valid_id(&g.node_id) || g.port > u16::MAX as u32 || g.bus_port > u16::MAX as u32 {
        return None;
    }
    Some(GossipEntry {
        id: g.node_id.clone(),
        endpoint: Endpoint {
            ip: g.ip.clone(),
            port: g.port as u16,
            bus_port: g.bus_port as u16,
            hostname: g.hostname.clone(),
            http_port: 0,
        },
        flags: g.flags,
        ping_sent_ms: g.ping_sent_ms.min(i64::MAX as u64) as i64,
        pong_received_ms: g.pong_received_ms.min(i64::MAX as u64) as i64,
    })
}

/// The service peers call.
pub struct BusService {
    node: Arc<Node>,
}

impl BusService {
    fn cluster(&self) -> Result<&Cluster, Status> {
        self.node
            .cluster
            .as_deref()
            .ok_or_else(|| Status::unavailable("cluster disabled"))
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let c = self.cluster()?;
        let Some(secret) = &c.cfg.secret else {
            return Ok(());
        };
        let given = req
            .metadata()
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        use subtle::ConstantTimeEq;
        if given.ct_eq(secret.as_bytes()).into() {
            Ok(())
        } else {
            c.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            Err(Status::unauthenticated("wrong cluster secret"))
        }
    }
}

#[tonic::async_trait]
impl ClusterBus for BusService {
    async fn gossip(&self, req: Request<pb::Ping>) -> Result<Response<pb::Ping>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        let peer = req.remote_addr();
        let local = req.local_addr();
        let msg = req.into_inner();
        c.stats.note_received(msg.r#type());
        let pong = c.handle_ping(&self.node, msg, peer, local)?;
        Ok(Response::new(pong))
    }

    async fn report_fail(&self, req: Request<pb::Fail>) -> Result<Response<pb::Ack>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        c.stats.fail_received.fetch_add(1, Ordering::Relaxed);
        let msg = req.into_inner();
        c.handle_fail(&self.node, &msg.node_id);
        Ok(Response::new(pb::Ack {}))
    }

    async fn send_update(&self, req: Request<pb::Update>) -> Result<Response<pb::Ack>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        c.stats.update_received.fetch_add(1, Ordering::Relaxed);
        let msg = req.into_inner();
        let ranges: Vec<(u16, u16)> = msg
            .slots
            .iter()
            .filter(|r| r.start <= r.end && r.end < super::slots::SLOTS as u32)
            .map(|r| (r.start as u16, r.end as u16))
            .collect();
        c.handle_update(&self.node, &msg.node_id, msg.config_epoch, &ranges);
        Ok(Response::new(pb::Ack {}))
    }

    async fn claim(
        &self,
        req: Request<pb::ClaimSlots>,
    ) -> Result<Response<pb::ClaimReply>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        let peer = req.remote_addr();
        let msg = req.into_inner();
        let sender = msg
            .sender
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("no sender"))?;
        let header = from_pb_header(sender, peer)?;
        let mut slots = Vec::new();
        for r in &msg.slots {
            if r.start > r.end || r.end >= super::slots::SLOTS as u32 {
                return Err(Status::invalid_argument("bad slot range"));
            }
            slots.extend(r.start as u16..=r.end as u16);
        }
        let reply = c.handle_claim(&self.node, &header, &slots);
        Ok(Response::new(reply))
    }

    async fn transfer(
        &self,
        req: Request<pb::TransferBatch>,
    ) -> Result<Response<pb::TransferReply>, Status> {
        self.authorize(&req)?;
        self.cluster()?;
        let peer = req.remote_addr();
        let mut msg = req.into_inner();
        let sender = msg
            .sender
            .take()
            .ok_or_else(|| Status::invalid_argument("no sender"))?;
        let header = from_pb_header(&sender, peer)?;
        // Decoding and inserting a batch takes a shard lock (bounded wait): off the async workers.
        let node = self.node.clone();
        let reply =
            tokio::task::spawn_blocking(move || super::migrate::import(&node, &header, msg))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(reply))
    }

    async fn publish(&self, req: Request<pb::PublishBatch>) -> Result<Response<pb::Ack>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        c.stats.publish_received.fetch_add(1, Ordering::Relaxed);
        let batch = req.into_inner();
        let now = crate::commands::now_ms();
        for m in &batch.messages {
            self.node.pubsub.deliver_remote(&m.channel, &m.message, now);
        }
        Ok(Response::new(pb::Ack {}))
    }
}

/// Serves the bus until the node shuts down.
pub async fn serve(node: Arc<Node>, listener: tokio::net::TcpListener) {
    let shutdown = node.shutdown.clone();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let svc =
        ClusterBusServer::new(BusService { node }).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let result = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!("cluster bus stopped: {e}");
    }
}

/// A client to one peer's bus, created on demand and reused.
pub fn client(
    addr: &str,
    timeout: Duration,
) -> Result<ClusterBusClient<tonic::transport::Channel>, String> {
    let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_millis(1000).min(timeout))
        .timeout(timeout)
        .tcp_nodelay(true);
    Ok(ClusterBusClient::new(ep.connect_lazy()))
}

pub fn with_secret<T>(msg: T, secret: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(s) = secret
        && let Ok(v) = s.parse()
    {
        req.metadata_mut().insert(SECRET_HEADER, v);
    }
    req
}

// ---------------------------------------------------------------------------------------------
// Pub/Sub across the cluster

/// PUBLISHes waiting for the bus before new ones are dropped (pub/sub is at most once).
const OUTBOX_MESSAGES: usize = 1 << 16;
/// Chunks of messages waiting for one peer before that peer misses some.
const PEER_CHUNKS: usize = 4096;
/// Bounds of one call to a peer, well under [`MAX_MESSAGE_BYTES`].
const BATCH_MESSAGES: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;
/// Room for a call's framing around one message.
const BATCH_OVERHEAD: usize = 1024;

/// Messages taken off the outbox together, shared by every peer's queue.
type Chunk = Arc<[pb::PublishedMessage]>;

/// Pub/Sub in a cluster, for as long as the node runs: broadcasts this node's PUBLISHes to every
/// other node (Redis Cluster sends PUBLISH to all nodes on its bus), and unsubscribes the shard
/// channels of slots this node no longer serves.
pub async fn run_pubsub(node: Arc<Node>) {
    let Some(cluster) = node.cluster.clone() else {
        return;
    };
    let Some(outbox) = node.pubsub.open_outbox(OUTBOX_MESSAGES) else {
        return;
    };
    tokio::join!(
        broadcast_publishes(&node, &cluster, outbox),
        drop_moved_shard_channels(&node)
    );
}

/// Hands each PUBLISH to every other node's queue. Each peer has its own queue and sending
/// task, so a slow or unreachable peer delays only itself, and receives the messages in
/// publish order.
async fn broadcast_publishes(
    node: &Arc<Node>,
    cluster: &Arc<Cluster>,
    mut outbox: mpsc::Receiver<Outgoing>,
) {
    let senders = TaskTracker::new();
    let mut peers: HashMap<String, mpsc::Sender<Chunk>> = HashMap::new();
    loop {
        let first = tokio::select! {
            _ = node.shutdown.cancelled() => break,
            m = outbox.recv() => match m {
                Some(m) => m,
                None => break,
            },
        };
        let chunk = next_chunk(first, &mut outbox);
        if chunk.is_empty() {
            continue;
        }
        let targets = cluster.publish_targets();
        // A peer gone from the table loses its queue, which ends its task.
        peers.retain(|addr, _| targets.contains(addr));
        for addr in targets {
            let queue = peers.entry(addr.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(PEER_CHUNKS);
                senders.spawn(send_publishes(node.clone(), cluster.clone(), addr, rx));
                tx
            });
            if queue.try_send(chunk.clone()).is_err() {
                cluster.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("a peer is behind: PUBLISH not sent to it");
            }
        }
    }
    drop(peers);
    senders.close();
    senders.wait().await;
}

/// `first` and whatever else is already in the outbox, up to one call's bounds. A message too
/// large for the bus is left out, with a warning.
fn next_chunk(first: Outgoing, outbox: &mut mpsc::Receiver<Outgoing>) -> Chunk {
    let mut messages = Vec::new();
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(m) = next.take() {
        let size = m.channel.len() + m.payload.len();
        if size + BATCH_OVERHEAD > MAX_MESSAGE_BYTES {
            tracing::warn!(
                bytes = size,
                "PUBLISH too large for the cluster bus: delivered on this node only"
            );
        } else {
            bytes += size;
            messages.push(pb::PublishedMessage {
                channel: m.channel,
                message: m.payload,
            });
        }
        if messages.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
            next = outbox.try_recv().ok();
        }
    }
    messages.into()
}

/// One peer's sender: one call at a time, each carrying every chunk queued meanwhile (within
/// a call's bounds), so a slow link sends fewer, larger calls instead of falling behind.
async fn send_publishes(
    node: Arc<Node>,
    cluster: Arc<Cluster>,
    addr: String,
    mut queue: mpsc::Receiver<Chunk>,
) {
    let Some(mut client) = cluster.client(&addr) else {
        return;
    };
    let me = cluster.myself();
    let secret = cluster.cfg.secret.clone();
    let mut held: Option<Chunk> = None;
    loop {
        let first = match held.take() {
            Some(c) => c,
            None => tokio::select! {
                _ = node.shutdown.cancelled() => return,
                c = queue.recv() => match c {
                    Some(c) => c,
                    None => return,
                },
            },
        };
        let mut messages = first.to_vec();
        let mut bytes = chunk_bytes(&first);
        while let Ok(c) = queue.try_recv() {
            let more = chunk_bytes(&c);
            if messages.len() + c.len() > BATCH_MESSAGES || bytes + more > BATCH_BYTES {
                held = Some(c);
                break;
            }
            messages.extend_from_slice(&c);
            bytes += more;
        }
        let batch = pb::PublishBatch {
            version: PROTOCOL_VERSION,
            sender_id: me.clone(),
            messages,
        };
        let sent = tokio::select! {
            _ = node.shutdown.cancelled() => return,
            r = client.publish(with_secret(batch, secret.as_deref())) => r,
        };
        match sent {
            Ok(_) => {
                cluster.stats.publish_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                cluster.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("PUBLISH to {addr} failed: {}", e.message());
            }
        }
    }
}

fn chunk_bytes(c: &[pb::PublishedMessage]) -> usize {
    c.iter().map(|m| m.channel.len() + m.message.len()).sum()
}

impl Cluster {
    /// Bus addresses a PUBLISH goes to: every other node we have heard from that is not
    /// failing (Redis skips nodes in handshake and without a link).
    fn publish_targets(&self) -> Vec<String> {
        let st = self.state.lock();
        st.nodes
            .values()
            .filter(|n| n.id != st.myself && n.seen && !n.failed())
            .map(|n| format!("{}:{}", n.endpoint.ip, n.endpoint.bus_port))
            .collect()
    }
}

/// Redis 7.0: when a node stops serving a slot (CLUSTER SETSLOT, DELSLOTS, a newer claim by
/// gossip or UPDATE, a handoff) the slot's shard channels are unsubscribed and their subscribers
/// get `sunsubscribe` pushes. Checked at the cluster driver's pace, over the slots that have
/// shard subscribers only.
async fn drop_moved_shard_channels(node: &Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let routing = node.routing();
        node.pubsub
            .drop_unserved_slots(|slot| routing.serves(slot), crate::commands::now_ms());
    }
}
