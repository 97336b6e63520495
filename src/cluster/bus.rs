//! The cluster bus over gRPC (tonic): the service peers call, the client calls we make, and the
//! conversion between protobuf messages and our own types. Nothing outside this file sees prost
//! types.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message as _;
use tonic::{Request, Response, Status};

use super::Cluster;
use super::state::{Endpoint, GossipEntry, Header};
use crate::glob::glob_match;
use crate::node::Node;
use crate::observe::events::KeyEvent;

#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("reredis.cluster.v1");
}

use pb::cluster_bus_client::ClusterBusClient;
use pb::cluster_bus_server::{ClusterBus, ClusterBusServer};

/// Protocol version spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;
const SECRET_HEADER: &str = "x-reredis-cluster-secret";

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
}

/// Bytes of the HTTP surface's bus messages (encoded protobuf sizes), for `/metrics`.
#[derive(Debug, Default)]
pub struct Traffic {
    pub http_sent: AtomicU64,
    pub http_received: AtomicU64,
    pub feed_sent: AtomicU64,
    pub feed_received: AtomicU64,
}

fn add(counter: &AtomicU64, bytes: usize) {
    counter.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// A peer's key events as they happen ([`open_feed`]).
pub struct EventStream(tonic::Streaming<pb::FeedEvent>);

impl EventStream {
    /// The next event; `None` when the peer ended the stream.
    pub async fn next(&mut self, traffic: &Traffic) -> Result<Option<RelayedEvent>, Status> {
        let got = self.0.message().await?;
        if let Some(e) = &got {
            add(&traffic.feed_received, e.encoded_len());
        }
        Ok(got.map(|e| RelayedEvent {
            node_id: e.node_id,
            db: e.db as usize,
            key: e.key.into(),
            event: e.event,
            ts_ms: e.ts_ms,
            missed: e.missed,
        }))
    }
}

pub type BusClient = ClusterBusClient<tonic::transport::Channel>;

/// Asks a peer for its key events matching `patterns` (all when empty).
pub async fn open_feed(
    client: &mut BusClient,
    secret: Option<&str>,
    patterns: Vec<Vec<u8>>,
) -> Result<EventStream, Status> {
    let req = pb::FeedRequest {
        version: PROTOCOL_VERSION,
        patterns,
    };
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
    add(&traffic.http_sent, req.encoded_len());
    let r = client.http(with_secret(req, secret)).await?.into_inner();
    add(&traffic.http_received, r.encoded_len());
    Ok(HttpAnswer {
        status: r.status.min(u16::MAX as u32) as u16,
        content_type: r.content_type,
        body: r.body,
    })
}

/// The key events [`ClusterBus::feed`] streams to a peer.
type FeedStream = Pin<Box<dyn futures_util::Stream<Item = Result<pb::FeedEvent, Status>> + Send>>;

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
        let patterns = req.into_inner().patterns;
        let sub = StreamedFeed::new(self.node.clone());
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
                    let peers = &sub.node.feed.peers;
                    peers.feed_events_sent.fetch_add(1, Ordering::Relaxed);
                    add(&peers.traffic.feed_sent, ev.encoded_len());
                    return Some((Ok(ev), sub));
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn http(&self, req: Request<pb::HttpRequest>) -> Result<Response<pb::HttpReply>, Status> {
        use tracing::Instrument as _;
        self.authorize(&req)?;
        self.cluster()?;
        let span = server_span(&req, "bus Http");
        let peer = req.remote_addr();
        let m = req.into_inner();
        let traffic = &self.node.feed.peers.traffic;
        add(&traffic.http_received, m.encoded_len());
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
        add(&traffic.http_sent, reply.encoded_len());
        Ok(Response::new(reply))
    }

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
}

/// A peer's subscription to this node's events, counted while open.
struct StreamedFeed {
    events: crate::observe::events::Subscription,
    node: Arc<Node>,
}

impl StreamedFeed {
    fn new(node: Arc<Node>) -> StreamedFeed {
        node.feed.peers.feed_streams.fetch_add(1, Ordering::Relaxed);
        StreamedFeed {
            events: node.store.events.subscribe(),
            node,
        }
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
    let svc = ClusterBusServer::new(BusService { node }).max_decoding_message_size(4 << 20);
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
