//! The cluster bus over gRPC (tonic): the service peers call, the client calls we make, and the
//! conversion between protobuf messages and our own types. Nothing outside this file sees prost
//! types.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use super::Cluster;
use super::state::{Endpoint, GossipEntry, Header};
use crate::glob::glob_match;
use crate::node::Node;
use crate::observe::events::KeyEvent;
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
        shard_id: h.shard_id.clone(),
        repl_offset: h.repl_offset,
    }
}

fn valid_id(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// A request's sender header, decoded (see [`from_pb_header`]); a request without one is
/// refused.
fn sender_header(h: Option<&pb::NodeHeader>, peer: Option<SocketAddr>) -> Result<Header, Status> {
    from_pb_header(
        h.ok_or_else(|| Status::invalid_argument("no sender"))?,
        peer,
    )
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
        shard_id: if valid_id(&h.shard_id) {
            h.shard_id.clone()
        } else {
            String::new()
        },
        repl_offset: h.repl_offset,
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

/// An `/api/v1` request run by the node owning what it is about (see [`ClusterBus::http`]).
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub method: String,
    pub path_and_query: String,
    /// The `Authorization` header the client sent, empty when none.
    pub authorization: String,
    pub body: Vec<u8>,
}

/// The owner's answer to an [`HttpCall`], as its HTTP port would have sent it.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A key event relayed from another node, or a notice that it dropped `missed` of them.
#[derive(Debug, Clone)]
pub struct RelayedEvent {
    pub node_id: String,
    pub db: usize,
    pub key: bytes::Bytes,
    pub event: String,
    pub ts_ms: i64,
    pub missed: u64,
    /// The event as the live feed sends it, encoded once for all clients (as
    /// [`KeyEvent::encoded`](crate::observe::events::KeyEvent::encoded)).
    pub encoded: std::sync::OnceLock<bytes::Bytes>,
}

/// What a bus message is, as `/metrics` labels it (`type`). A call's reply counts under the
/// call's type (a Claim's `ClaimReply` is `claim` traffic), except Gossip, whose reply is a PONG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Ping,
    Pong,
    Meet,
    Fail,
    Update,
    Claim,
    Transfer,
    Publish,
    Http,
    /// The Feed stream: the request that opens it and every event on it.
    FeedEvent,
    /// A replica's stream from its master (the request and every frame).
    Replication,
    /// Failover: vote requests and manual failover requests, and their replies.
    Failover,
}

impl MessageType {
    pub const ALL: [MessageType; 12] = [
        MessageType::Ping,
        MessageType::Pong,
        MessageType::Meet,
        MessageType::Fail,
        MessageType::Update,
        MessageType::Claim,
        MessageType::Transfer,
        MessageType::Publish,
        MessageType::Http,
        MessageType::FeedEvent,
        MessageType::Replication,
        MessageType::Failover,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MessageType::Ping => "ping",
            MessageType::Pong => "pong",
            MessageType::Meet => "meet",
            MessageType::Fail => "fail",
            MessageType::Update => "update",
            MessageType::Claim => "claim",
            MessageType::Transfer => "transfer",
            MessageType::Publish => "publish",
            MessageType::Http => "http",
            MessageType::FeedEvent => "feed_event",
            MessageType::Replication => "replication",
            MessageType::Failover => "failover",
        }
    }

    pub fn of_ping(t: pb::PingType) -> MessageType {
        match t {
            pb::PingType::Ping => MessageType::Ping,
            pb::PingType::Meet => MessageType::Meet,
            pb::PingType::Pong => MessageType::Pong,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Sent, Direction::Received];

    pub fn label(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// Every bus message sent and received, by type, for `/metrics`: how many, and their bytes (the
/// encoded protobuf size of the message; gRPC and HTTP/2 framing not included; an `Ack` reply is
/// empty and not counted). Counted in one place so the two always cover the same messages. Two
/// relaxed atomic adds per message; `encoded_len` walks the message without encoding it.
#[derive(Debug, Default)]
pub struct Traffic {
    bytes: [[AtomicU64; 2]; MessageType::ALL.len()],
    messages: [[AtomicU64; 2]; MessageType::ALL.len()],
}

impl Traffic {
    pub fn sent(&self, t: MessageType, msg: &impl prost::Message) {
        self.add(t, Direction::Sent, msg.encoded_len());
    }

    pub fn received(&self, t: MessageType, msg: &impl prost::Message) {
        self.add(t, Direction::Received, msg.encoded_len());
    }

    /// Bytes sent that are not one message of ours (a replica's full copy, framed as it goes).
    pub fn sent_bytes(&self, t: MessageType, bytes: u64) {
        self.add(t, Direction::Sent, bytes as usize);
    }

    fn add(&self, t: MessageType, d: Direction, bytes: usize) {
        self.bytes[t as usize][d as usize].fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages[t as usize][d as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn messages(&self, t: MessageType, d: Direction) -> u64 {
        self.messages[t as usize][d as usize].load(Ordering::Relaxed)
    }

    pub fn bytes(&self, t: MessageType, d: Direction) -> u64 {
        self.bytes[t as usize][d as usize].load(Ordering::Relaxed)
    }

    /// Bytes of every type in one direction.
    pub fn total(&self, d: Direction) -> u64 {
        MessageType::ALL.iter().map(|&t| self.bytes(t, d)).sum()
    }
}

/// A peer's key events as they happen ([`open_feed`]).
pub struct EventStream(tonic::Streaming<pb::FeedEvent>);

impl EventStream {
    /// The next event; `None` when the peer ended the stream.
    pub async fn next(&mut self, traffic: &Traffic) -> Result<Option<RelayedEvent>, Status> {
        let got = self.0.message().await?;
        if let Some(e) = &got {
            traffic.received(MessageType::FeedEvent, e);
        }
        Ok(got.map(|e| RelayedEvent {
            node_id: e.node_id,
            db: e.db as usize,
            key: e.key.into(),
            event: e.event,
            ts_ms: e.ts_ms,
            missed: e.missed,
            encoded: std::sync::OnceLock::new(),
        }))
    }
}

pub type BusClient = ClusterBusClient<tonic::transport::Channel>;

/// Asks a peer for its key events matching `patterns` (all when empty).
pub async fn open_feed(
    client: &mut BusClient,
    secret: Option<&str>,
    patterns: Vec<Vec<u8>>,
    traffic: &Traffic,
) -> Result<EventStream, Status> {
    let req = pb::FeedRequest {
        version: PROTOCOL_VERSION,
        patterns,
    };
    traffic.sent(MessageType::FeedEvent, &req);
    let stream = client.feed(with_secret(req, secret)).await?.into_inner();
    Ok(EventStream(stream))
}

/// Has a peer answer an `/api/v1` request.
pub async fn call_http(
    client: &mut BusClient,
    secret: Option<&str>,
    call: HttpCall,
    traffic: &Traffic,
) -> Result<HttpAnswer, Status> {
    let req = pb::HttpRequest {
        version: PROTOCOL_VERSION,
        method: call.method,
        path_and_query: call.path_and_query,
        authorization: call.authorization,
        body: call.body,
    };
    traffic.sent(MessageType::Http, &req);
    let r = client.http(with_secret(req, secret)).await?.into_inner();
    traffic.received(MessageType::Http, &r);
    Ok(HttpAnswer {
        status: r.status.min(u16::MAX as u32) as u16,
        content_type: r.content_type,
        body: r.body,
    })
}

/// The key events [`ClusterBus::feed`] streams to a peer.
type FeedStream = Pin<Box<dyn futures_util::Stream<Item = Result<pb::FeedEvent, Status>> + Send>>;

/// A replica's stream of records from its master.
type ReplicateStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<pb::ReplicationFrame, Status>> + Send>>;

#[tonic::async_trait]
impl ClusterBus for BusService {
    type FeedStream = FeedStream;

    /// Streams this node's key events (never relayed ones, so relays do not loop). The stream
    /// is a lossy subscriber of the event bus: when the peer reads slowly the bus drops events
    /// for it and the peer gets a `missed` notice; the store never waits.
    async fn feed(
        &self,
        req: Request<pb::FeedRequest>,
    ) -> Result<Response<Self::FeedStream>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        let node_id = c.myself();
        let req = req.into_inner();
        c.stats.traffic.received(MessageType::FeedEvent, &req);
        let patterns = req.patterns;
        let sub = StreamedFeed::new(self.node.clone())?;
        let shutdown = self.node.shutdown.clone();
        let stream = futures_util::stream::unfold(sub, move |mut sub| {
            let shutdown = shutdown.clone();
            let node_id = node_id.clone();
            let patterns = patterns.clone();
            async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    let got = tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        got = sub.events.rx.recv() => got,
                    };
                    let ev = match got {
                        Ok(ev) if wanted(&patterns, &ev) => to_pb_event(&node_id, &ev),
                        Ok(_) => continue,
                        Err(RecvError::Lagged(n)) => pb::FeedEvent {
                            node_id: node_id.clone(),
                            missed: n,
                            ..Default::default()
                        },
                        Err(RecvError::Closed) => return None,
                    };
                    sub.cluster.stats.traffic.sent(MessageType::FeedEvent, &ev);
                    return Some((Ok(ev), sub));
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn http(&self, req: Request<pb::HttpRequest>) -> Result<Response<pb::HttpReply>, Status> {
        use tracing::Instrument as _;
        self.authorize(&req)?;
        let traffic = &self.cluster()?.stats.traffic;
        let span = server_span(&req, "bus Http");
        let peer = req.remote_addr();
        let m = req.into_inner();
        traffic.received(MessageType::Http, &m);
        let call = HttpCall {
            method: m.method,
            path_and_query: m.path_and_query,
            authorization: m.authorization,
            body: m.body,
        };
        let a = crate::http::peers::answer(&self.node, call, peer)
            .instrument(span)
            .await;
        let reply = pb::HttpReply {
            status: a.status as u32,
            content_type: a.content_type,
            body: a.body,
        };
        traffic.sent(MessageType::Http, &reply);
        Ok(Response::new(reply))
    }

    type ReplicateStream = ReplicateStream;

    /// A replica's stream (see `replication`).
    async fn replicate(
        &self,
        req: Request<tonic::Streaming<pb::ReplicateRequest>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        let peer = req.remote_addr();
        let mut inbound = req.into_inner();
        let msg = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no hello"))?;
        c.stats.traffic.received(MessageType::Replication, &msg);
        let h = sender_header(msg.sender.as_ref(), peer)?;
        let psync = (!msg.replid.is_empty()).then(|| (msg.replid.clone(), msg.offset));
        let rx = super::replication::serve(self.node.clone(), h, psync, inbound)?;
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn request_vote(
        &self,
        req: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteReply>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        let peer = req.remote_addr();
        let msg = req.into_inner();
        c.stats.traffic.received(MessageType::Failover, &msg);
        let h = sender_header(msg.sender.as_ref(), peer)?;
        let reply = c.handle_vote(&self.node, &h, msg.epoch, msg.manual);
        c.stats.traffic.sent(MessageType::Failover, &reply);
        Ok(Response::new(reply))
    }

    async fn manual_failover(
        &self,
        req: Request<pb::ManualFailoverRequest>,
    ) -> Result<Response<pb::ManualFailoverReply>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        let peer = req.remote_addr();
        let msg = req.into_inner();
        c.stats.traffic.received(MessageType::Failover, &msg);
        let h = sender_header(msg.sender.as_ref(), peer)?;
        let reply = c.handle_manual_failover(&self.node, &h, msg.pause_ms).await;
        c.stats.traffic.sent(MessageType::Failover, &reply);
        Ok(Response::new(reply))
    }

    async fn gossip(&self, req: Request<pb::Ping>) -> Result<Response<pb::Ping>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        let peer = req.remote_addr();
        let local = req.local_addr();
        let msg = req.into_inner();
        c.stats.note_received(msg.r#type());
        c.stats
            .traffic
            .received(MessageType::of_ping(msg.r#type()), &msg);
        let pong = c.handle_ping(&self.node, msg, peer, local)?;
        c.stats.traffic.sent(MessageType::Pong, &pong);
        Ok(Response::new(pong))
    }

    async fn report_fail(&self, req: Request<pb::Fail>) -> Result<Response<pb::Ack>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        c.stats.fail_received.fetch_add(1, Ordering::Relaxed);
        let msg = req.into_inner();
        c.stats.traffic.received(MessageType::Fail, &msg);
        c.handle_fail(&self.node, &msg.node_id);
        Ok(Response::new(pb::Ack {}))
    }

    async fn send_update(&self, req: Request<pb::Update>) -> Result<Response<pb::Ack>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        c.stats.update_received.fetch_add(1, Ordering::Relaxed);
        let msg = req.into_inner();
        c.stats.traffic.received(MessageType::Update, &msg);
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
        c.stats.traffic.received(MessageType::Claim, &msg);
        let header = sender_header(msg.sender.as_ref(), peer)?;
        let mut slots = Vec::new();
        for r in &msg.slots {
            if r.start > r.end || r.end >= super::slots::SLOTS as u32 {
                return Err(Status::invalid_argument("bad slot range"));
            }
            slots.extend(r.start as u16..=r.end as u16);
        }
        let reply = c.handle_claim(&self.node, &header, &slots);
        c.stats.traffic.sent(MessageType::Claim, &reply);
        Ok(Response::new(reply))
    }

    async fn transfer(
        &self,
        req: Request<pb::TransferBatch>,
    ) -> Result<Response<pb::TransferReply>, Status> {
        self.authorize(&req)?;
        let traffic = &self.cluster()?.stats.traffic;
        let peer = req.remote_addr();
        let mut msg = req.into_inner();
        traffic.received(MessageType::Transfer, &msg);
        let header = sender_header(msg.sender.take().as_ref(), peer)?;
        // Decoding and inserting a batch takes a shard lock (bounded wait): off the async workers.
        let node = self.node.clone();
        let store_node = self.node.clone();
        let (reply, seq) =
            tokio::task::spawn_blocking(move || super::migrate::import(&node, &header, msg))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        // Acknowledged only once the imported keys are in the append-only log (when it is on).
        store_node.store.aof.wait_acked(seq).await;
        traffic.sent(MessageType::Transfer, &reply);
        Ok(Response::new(reply))
    }

    async fn publish(&self, req: Request<pb::PublishBatch>) -> Result<Response<pb::Ack>, Status> {
        self.authorize(&req)?;
        let c = self.cluster()?;
        c.stats.publish_received.fetch_add(1, Ordering::Relaxed);
        let batch = req.into_inner();
        c.stats.traffic.received(MessageType::Publish, &batch);
        let now = crate::commands::now_ms();
        for m in &batch.messages {
            self.node
                .pubsub
                .deliver_remote(&m.channel, &m.message, m.shard, now);
        }
        Ok(Response::new(pb::Ack {}))
    }
}

/// A peer's subscription to this node's events, counted while open.
struct StreamedFeed {
    events: crate::observe::events::Subscription,
    node: Arc<Node>,
    cluster: Arc<Cluster>,
}

impl StreamedFeed {
    fn new(node: Arc<Node>) -> Result<StreamedFeed, Status> {
        let cluster = node
            .cluster
            .clone()
            .ok_or_else(|| Status::unavailable("cluster disabled"))?;
        node.feed.peers.feed_streams.fetch_add(1, Ordering::Relaxed);
        Ok(StreamedFeed {
            events: node.store.events.subscribe(),
            node,
            cluster,
        })
    }
}

impl Drop for StreamedFeed {
    fn drop(&mut self) {
        self.node
            .feed
            .peers
            .feed_streams
            .fetch_sub(1, Ordering::Relaxed);
    }
}

fn wanted(patterns: &[Vec<u8>], ev: &KeyEvent) -> bool {
    patterns.is_empty()
        || matches!(ev.event, "flushdb" | "flushall")
        || patterns.iter().any(|p| glob_match(p, &ev.key, false))
}

fn to_pb_event(node_id: &str, ev: &KeyEvent) -> pb::FeedEvent {
    pb::FeedEvent {
        node_id: node_id.to_string(),
        db: ev.db as u32,
        key: ev.key.to_vec(),
        event: ev.event.to_string(),
        ts_ms: ev.ts_ms,
        missed: 0,
    }
}

fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .inject_context(&cx, &mut MetadataInjector(metadata));
    }
}

/// A server span for a bus call, child of the caller's span when the call carries one.
fn server_span<T>(req: &Request<T>, name: &'static str) -> tracing::Span {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let span = tracing::info_span!("bus.rpc", otel.name = name, otel.kind = "server");
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&MetadataExtractor(req.metadata()));
    // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
    let _ = span.set_parent(parent);
    span
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct MetadataExtractor<'a>(&'a tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
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
    // Answers as large as requests may be (tonic's default is 4 MiB: a forwarded read of a
    // large key, or a slot's batch, would fail to decode).
    Ok(ClusterBusClient::new(ep.connect_lazy()).max_decoding_message_size(MAX_MESSAGE_BYTES))
}

/// A request to a peer, with the cluster secret and the current trace context (W3C
/// `traceparent` in the metadata, so one trace crosses nodes; nothing without a sampled span).
pub fn with_secret<T>(msg: T, secret: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    inject_trace_context(req.metadata_mut());
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
/// other node (Redis Cluster sends PUBLISH to all nodes on its bus) and its SPUBLISHes to the
/// rest of its shard, and unsubscribes the shard channels of slots its shard no longer serves.
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

/// Hands each PUBLISH to every other node's queue, and each SPUBLISH to the queues of this
/// node's shard. Each peer has its own queue and sending task, so a slow or unreachable peer
/// delays only itself, and receives the messages in publish order.
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
        let chunk = next_chunk(first, &mut outbox, &cluster.stats.publish_dropped_too_large);
        if chunk.is_empty() {
            continue;
        }
        let targets = cluster.publish_targets();
        // A peer gone from the table loses its queue, which ends its task.
        peers.retain(|addr, _| targets.iter().any(|(a, _)| a == addr));
        // What a node outside this shard gets: the chunk without its shard messages.
        let mut unsharded: Option<Chunk> = None;
        for (addr, same_shard) in targets {
            let chunk = if same_shard || !chunk.iter().any(|m| m.shard) {
                chunk.clone()
            } else {
                let c = unsharded
                    .get_or_insert_with(|| chunk.iter().filter(|m| !m.shard).cloned().collect());
                if c.is_empty() {
                    continue;
                }
                c.clone()
            };
            let queue = peers.entry(addr.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(PEER_CHUNKS);
                senders.spawn(send_publishes(node.clone(), cluster.clone(), addr, rx));
                tx
            });
            if queue.try_send(chunk.clone()).is_err() {
                cluster.stats.errors.fetch_add(1, Ordering::Relaxed);
                cluster
                    .stats
                    .publish_dropped_behind
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                tracing::debug!("a peer is behind: PUBLISH not sent to it");
            }
        }
    }
    drop(peers);
    senders.close();
    senders.wait().await;
}

/// `first` and whatever else is already in the outbox, up to one call's bounds. A message too
/// large for the bus is left out, with a warning, and counted in `too_large`.
fn next_chunk(
    first: Outgoing,
    outbox: &mut mpsc::Receiver<Outgoing>,
    too_large: &AtomicU64,
) -> Chunk {
    let mut messages = Vec::new();
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(m) = next.take() {
        let size = m.channel.len() + m.payload.len();
        if size + BATCH_OVERHEAD > MAX_MESSAGE_BYTES {
            too_large.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                bytes = size,
                "PUBLISH too large for the cluster bus: delivered on this node only"
            );
        } else {
            bytes += size;
            messages.push(pb::PublishedMessage {
                channel: m.channel,
                message: m.payload,
                shard: m.shard,
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
        let count = messages.len() as u64;
        let batch = pb::PublishBatch {
            version: PROTOCOL_VERSION,
            sender_id: me.clone(),
            messages,
        };
        cluster.stats.traffic.sent(MessageType::Publish, &batch);
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
                cluster
                    .stats
                    .publish_dropped_failed
                    .fetch_add(count, Ordering::Relaxed);
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
    /// failing (Redis skips nodes in handshake and without a link), each with whether it is of
    /// this node's shard (this node's master, or a replica of it or of this node's master),
    /// which an SPUBLISH also goes to (Redis's clusterGetNodesServingMySlots).
    fn publish_targets(&self) -> Vec<(String, bool)> {
        let st = self.state.lock();
        let me = st.me();
        let primary = match me.replica_of.as_deref() {
            Some(m) if !me.is_master() => m,
            _ => st.myself.as_str(),
        };
        st.nodes
            .values()
            .filter(|n| n.id != st.myself && n.seen && !n.failed())
            .map(|n| {
                let same_shard =
                    n.id == primary || (!n.is_master() && n.replica_of.as_deref() == Some(primary));
                (
                    format!("{}:{}", n.endpoint.ip, n.endpoint.bus_port),
                    same_shard,
                )
            })
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
            .drop_unserved_slots(|slot| routing.shard_serves(slot), crate::commands::now_ms());
    }
}
