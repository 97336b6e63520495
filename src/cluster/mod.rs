//! Redis Cluster: hash slots, the node table and epochs (`state`), routing of client commands
//! (`routing`), the gRPC bus (`bus`), `nodes.conf`, and the driver below that runs gossip,
//! failure detection and automatic slot distribution.
//!
//! Lock order: a store shard lock may be taken before `Cluster::state`, never after it.

pub mod bus;
pub mod migrate;
pub mod nodes_conf;
pub mod replication;
pub mod routing;
pub mod slots;
pub mod state;

use crate::persist::aof::KIND_MOVED;
use crate::store::shard_of_slot;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tonic::Status;

use crate::node::Node;
use bus::{MessageType, pb};
use routing::{EndpointType, Routing};
use state::{
    Action, ClusterNode, ClusterState, Endpoint, FailoverStep, GossipEntry, Header, ReplicaMove,
    flag, slot_ranges,
};

/// Calls of a Claim for empty slots handed off before giving up and taking them back.
const CLAIM_ATTEMPTS: u32 = 3;

/// The cluster settings, read once at start.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_timeout_ms: i64,
    pub seeds: Vec<String>,
    pub auto_assign: bool,
    pub announce_ip: String,
    pub announce_port: u16,
    pub announce_bus_port: u16,
    pub announce_hostname: String,
    pub endpoint_type: EndpointType,
    pub require_full_coverage: bool,
    pub secret: Option<String>,
    pub rebalance_delay_ms: i64,
    /// Replicas per shard that automatic distribution sets up (`cluster.replicas`).
    pub replicas: usize,
    /// This node, as a replica, never starts an election by itself.
    pub replica_no_failover: bool,
    pub config_file: PathBuf,
}

/// Bus traffic counters (INFO cluster, `/metrics`).
#[derive(Default)]
pub struct BusStats {
    pub ping_sent: AtomicU64,
    pub ping_received: AtomicU64,
    pub pong_sent: AtomicU64,
    pub pong_received: AtomicU64,
    pub meet_sent: AtomicU64,
    pub meet_received: AtomicU64,
    pub fail_sent: AtomicU64,
    pub fail_received: AtomicU64,
    pub update_sent: AtomicU64,
    pub update_received: AtomicU64,
    pub publish_sent: AtomicU64,
    pub publish_received: AtomicU64,
    /// PUBLISHed messages a peer did not get, by why (`/metrics`): the peer's queue was full
    /// (it is behind), the call to it failed, or the message was too large for the bus.
    pub publish_dropped_behind: AtomicU64,
    pub publish_dropped_failed: AtomicU64,
    pub publish_dropped_too_large: AtomicU64,
    pub errors: AtomicU64,
    pub auth_failures: AtomicU64,
    /// Bytes of every bus message, the HTTP surface's included.
    pub traffic: bus::Traffic,
}

impl BusStats {
    pub fn note_received(&self, t: pb::PingType) {
        let c = match t {
            pb::PingType::Ping => &self.ping_received,
            pb::PingType::Meet => &self.meet_received,
            pb::PingType::Pong => &self.pong_received,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent_total(&self) -> u64 {
        [
            &self.ping_sent,
            &self.pong_sent,
            &self.meet_sent,
            &self.fail_sent,
            &self.update_sent,
            &self.publish_sent,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    pub fn received_total(&self) -> u64 {
        [
            &self.ping_received,
            &self.pong_received,
            &self.meet_received,
            &self.fail_received,
            &self.update_received,
            &self.publish_received,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// A CLUSTER MEET (or seed) waiting for the peer to answer.
#[derive(Debug, Clone)]
struct PendingMeet {
    ip: String,
    bus_port: u16,
    until_ms: i64,
    in_flight: bool,
    /// Why the last MEET sent failed, for the warning when the MEET gives up.
    last_error: Option<String>,
}

pub struct Cluster {
    pub state: Mutex<ClusterState>,
    routing: RwLock<Arc<Routing>>,
    pub cfg: ClusterConfig,
    pub stats: BusStats,
    pending: Mutex<Vec<PendingMeet>>,
    clients:
        Mutex<HashMap<String, pb::cluster_bus_client::ClusterBusClient<tonic::transport::Channel>>>,
    /// The HTTP port we announce (for the UI's cluster view).
    http_port: u16,
    /// Whether `myself`'s IP was announced (else it is learnt from peers).
    ip_announced: bool,
    /// Slots waiting to move with their keys (automatic distribution).
    pub migrator: migrate::Migrator,
    /// Held while nodes.conf is written.
    save_lock: Mutex<()>,
    /// Replication, on both sides (INFO replication).
    pub repl: replication::Replication,
    /// Why automatic distribution is not moving towards the even layout, if it is not.
    auto_wait: Mutex<AutoWait>,
    /// `cluster-preferred-endpoint-type` in force (CONFIG SET changes it).
    endpoint_type: Mutex<EndpointType>,
}

/// What automatic distribution waits for, and since when (see [`Cluster::note_auto_wait`]).
#[derive(Default)]
struct AutoWait {
    reason: Option<String>,
    since_ms: i64,
    logged: bool,
}

/// How long automatic distribution waits for the same thing before the log says what it is.
const AUTO_WAIT_LOG_MS: i64 = 10_000;

/// A node as the log names it: its ID and address.
fn describe(n: &ClusterNode) -> String {
    format!("{} ({}:{})", n.id, n.endpoint.ip, n.endpoint.port)
}

fn random_node_id() -> String {
    (0..40)
        .map(|_| format!("{:x}", rand::random_range(0..16u8)))
        .collect()
}

impl Cluster {
    /// Loads `nodes.conf` or creates a new identity. A lone new node in automatic mode owns every
    /// slot provisionally.
    pub fn open(
        cfg: ClusterConfig,
        me: Endpoint,
        ip_announced: bool,
        now_ms: i64,
    ) -> anyhow::Result<Cluster> {
        let http_port = me.http_port;
        let mut st = match nodes_conf::load(&cfg.config_file, cfg.node_timeout_ms)? {
            Some(mut st) => {
                // The address may have changed since (a rescheduled pod): announce the new one.
                let m = st.me_mut();
                if !me.ip.is_empty() || m.endpoint.port != me.port {
                    let ip = if me.ip.is_empty() {
                        m.endpoint.ip.clone()
                    } else {
                        me.ip.clone()
                    };
                    m.endpoint = Endpoint { ip, ..me };
                }
                st.dirty = true;
                tracing::info!(id = %st.myself, "loaded cluster state from {}", cfg.config_file.display());
                st
            }
            None => {
                let id = random_node_id();
                let node = ClusterNode::new(id.clone(), me, flag::MYSELF | flag::MASTER);
                let mut st = ClusterState::new(node, cfg.node_timeout_ms);
                if cfg.auto_assign {
                    st.me_mut().provisional = true;
                    for s in 0..slots::SLOTS as u16 {
                        st.slots[s as usize] = Some(id.clone());
                    }
                } else {
                    st.manual = true;
                }
                tracing::info!(id = %id, "no cluster config found; this is a new node");
                st
            }
        };
        st.node_timeout_ms = cfg.node_timeout_ms;
        st.replicas_per_shard = cfg.replicas;
        if cfg.replica_no_failover {
            st.me_mut().flags |= flag::NOFAILOVER;
        } else {
            st.me_mut().flags &= !flag::NOFAILOVER;
        }
        st.require_full_coverage = cfg.require_full_coverage;
        if !cfg.auto_assign {
            st.manual = true;
        }
        st.membership_changed_ms = now_ms;
        if !st.manual {
            // Automatic distribution restarts unfinished moves from the layout; a move recorded
            // before a restart would otherwise redirect clients to a peer that is not importing.
            st.migrating.clear();
            st.importing.clear();
        }
        st.update_state();
        let endpoint_type = cfg.endpoint_type;
        let routing = Routing::from_state(&st, endpoint_type);
        Ok(Cluster {
            state: Mutex::new(st),
            routing: RwLock::new(Arc::new(routing)),
            cfg,
            stats: BusStats::default(),
            pending: Mutex::new(Vec::new()),
            clients: Mutex::new(HashMap::new()),
            http_port,
            ip_announced,
            migrator: migrate::Migrator::new(),
            endpoint_type: Mutex::new(endpoint_type),
            save_lock: Mutex::new(()),
            repl: replication::Replication::default(),
            auto_wait: Mutex::new(AutoWait::default()),
        })
    }

    pub fn routing(&self) -> Arc<Routing> {
        self.routing.read().clone()
    }

    pub fn myself(&self) -> String {
        self.state.lock().myself.clone()
    }

    /// Our header as the bus carries it.
    pub fn my_pb_header(&self) -> pb::NodeHeader {
        let st = self.state.lock();
        bus::to_pb_header(&st.header(0), self.http_port)
    }

    /// Rebuilds the routing snapshot after a state change (call with the state lock held).
    fn publish(&self, st: &mut ClusterState) {
        st.update_state();
        *self.routing.write() = Arc::new(Routing::from_state(st, self.endpoint_type()));
    }

    /// What MOVED/ASK and CLUSTER SLOTS send clients to.
    pub fn endpoint_type(&self) -> EndpointType {
        *self.endpoint_type.lock()
    }

    /// CONFIG SET cluster-preferred-endpoint-type: redirections use it from the next command.
    /// `read` reads the setting; it is read with the type's lock held, so two CONFIG SETs at
    /// once leave the later value in force.
    pub fn refresh_endpoint_type(&self, read: impl FnOnce() -> EndpointType) {
        let changed = {
            let mut cur = self.endpoint_type.lock();
            let t = read();
            std::mem::replace(&mut *cur, t) != t
        };
        if changed {
            let mut st = self.state.lock();
            self.publish(&mut st);
        }
    }

    /// Applies a change made by a command (CLUSTER ADDSLOTS, ...) and refreshes routing.
    pub fn change<R>(&self, f: impl FnOnce(&mut ClusterState) -> R) -> R {
        let mut st = self.state.lock();
        let r = f(&mut st);
        self.publish(&mut st);
        r
    }

    /// A message from us. `keys` is counted by the caller *before* taking the state lock: the
    /// count locks store shards, and shard locks must never be taken under the state lock.
    fn message(
        &self,
        keys: u64,
        st: &ClusterState,
        t: pb::PingType,
        to: &str,
        receiver_ip: String,
    ) -> pb::Ping {
        pb::Ping {
            r#type: t as i32,
            sender: Some(bus::to_pb_header(&st.header(keys), self.http_port)),
            gossip: st.gossip_for(to).iter().map(bus::to_pb_gossip).collect(),
            receiver_ip,
        }
    }

    fn learn_my_ip(&self, st: &mut ClusterState, ip: &str) {
        if self.ip_announced || ip.is_empty() {
            return;
        }
        let me = st.me_mut();
        if me.endpoint.ip != ip {
            me.endpoint.ip = ip.to_string();
            st.dirty = true;
        }
    }

    /// A PING or MEET from a peer: update our view, answer with our PONG.
    pub fn handle_ping(
        &self,
        node: &Arc<Node>,
        msg: pb::Ping,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Result<pb::Ping, Status> {
        let sender = msg
            .sender
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("no sender"))?;
        if sender.version > bus::PROTOCOL_VERSION {
            tracing::debug!(
                version = sender.version,
                "peer speaks a newer bus protocol; using the common fields"
            );
        }
        let h = bus::from_pb_header(sender, peer)?;
        let gossip: Vec<GossipEntry> = msg.gossip.iter().filter_map(bus::from_pb_gossip).collect();
        let now = crate::commands::now_ms();
        let is_meet = msg.r#type() == pb::PingType::Meet;
        let keys = local_keys(node);
        let actions;
        let pong;
        {
            let mut st = self.state.lock();
            if let Some(l) = local
                && (!msg.receiver_ip.is_empty() || st.me().endpoint.ip.is_empty())
            {
                let ip = if msg.receiver_ip.is_empty() {
                    l.ip().to_string()
                } else {
                    msg.receiver_ip.clone()
                };
                self.learn_my_ip(&mut st, &ip);
            }
            if h.id == st.myself {
                return Err(Status::invalid_argument("a node cannot meet itself"));
            }
            let known = st.nodes.contains_key(&h.id);
            if !known && is_meet {
                let mut n = ClusterNode::new(h.id.clone(), h.endpoint.clone(), flag::MASTER);
                n.seen = true;
                n.pong_received_ms = now;
                if st.add_node(n, now) {
                    tracing::info!(node = %h.id, addr = %format!("{}:{}", h.endpoint.ip, h.endpoint.port), "node joined by MEET");
                }
            }
            let mut acts = Vec::new();
            if st.nodes.contains_key(&h.id) {
                acts = st.process_header(&h, false, now);
                acts.extend(st.process_gossip(&h.id, &gossip, now));
            }
            actions = acts;
            let receiver_ip = peer.map(|p| p.ip().to_string()).unwrap_or_default();
            pong = self.message(keys, &st, pb::PingType::Pong, &h.id, receiver_ip);
            self.publish(&mut st);
        }
        self.stats.pong_sent.fetch_add(1, Ordering::Relaxed);
        self.run_actions(node, actions);
        Ok(pong)
    }

    pub fn handle_fail(&self, node: &Arc<Node>, id: &str) {
        let mut st = self.state.lock();
        st.process_fail(id, crate::commands::now_ms());
        self.publish(&mut st);
        drop(st);
        let _ = node;
    }

    pub fn handle_update(&self, node: &Arc<Node>, owner: &str, epoch: u64, ranges: &[(u16, u16)]) {
        let actions = {
            let mut st = self.state.lock();
            let a = st.process_update(owner, epoch, ranges, crate::commands::now_ms());
            self.publish(&mut st);
            a
        };
        self.run_actions(node, actions);
    }

    /// The current owner of `slots` hands them to us (automatic distribution): take them with a
    /// new config epoch so our claim wins everywhere.
    ///
    /// Only the owner may hand a slot over, as this node sees it once the sender's header is
    /// taken in (a repeated claim of slots already ours is answered again, its first answer may
    /// have been lost). A node whose view is behind, say a master that a failover demoted, is
    /// refused: taking its slots would take them from the node that serves them now. The
    /// sender tries again, so a view of ours that is the one behind catches up meanwhile.
    pub fn handle_claim(&self, _node: &Arc<Node>, from: &Header, slots: &[u16]) -> pb::ClaimReply {
        let now = crate::commands::now_ms();
        let refuse = |reason: String| pb::ClaimReply {
            accepted: false,
            config_epoch: 0,
            reason,
        };
        // Slots this node once handed over come back: nodes.conf stops saying so before any
        // key can be written to them here (a restart drops the keys of slots handed over).
        {
            let mut st = self.state.lock();
            let back: Vec<u16> = slots
                .iter()
                .copied()
                .filter(|s| st.released.contains(s))
                .collect();
            if !back.is_empty() {
                for s in &back {
                    st.released.remove(s);
                }
                st.dirty = true;
                drop(st);
                if let Err(e) = self.save(false) {
                    let mut st = self.state.lock();
                    st.released.extend(back);
                    st.dirty = true;
                    tracing::error!("cannot write {}: {e}", self.cfg.config_file.display());
                    return refuse("cannot write nodes.conf".into());
                }
            }
        }
        let mut st = self.state.lock();
        if !st.nodes.contains_key(&from.id) {
            return refuse("unknown sender".into());
        }
        st.process_header(from, false, now);
        // Slots go to masters only (see `migrate::import_batch`).
        if !st.me().is_master() || self.repl.is_leaving() {
            return refuse("not a master".into());
        }
        let me = st.myself.clone();
        if let Some((s, owner)) = slots.iter().find_map(|&s| {
            let owner = st.slots[s as usize].as_deref()?;
            (owner != from.id && owner != me).then_some((s, owner))
        }) {
            return refuse(format!("slot {s} is served by {owner}, not by the sender"));
        }
        for &s in slots {
            st.assign(s, Some(&me));
            st.importing.remove(&s);
        }
        let epoch = st.bump_config_epoch();
        st.me_mut().provisional = false;
        tracing::info!(slots = slots.len(), from = %from.id, epoch, "took over slots handed off by their owner");
        self.publish(&mut st);
        drop(st);
        // The slots are ours once nodes.conf says so: a crash after this reply must not forget.
        self.save_if_dirty();
        pb::ClaimReply {
            accepted: true,
            config_epoch: epoch,
            reason: String::new(),
        }
    }

    /// CLUSTER MEET: remember the address; the driver sends MEET until it answers.
    pub fn meet(&self, ip: String, bus_port: u16) {
        let until = crate::commands::now_ms() + self.cfg.node_timeout_ms.max(5000);
        let mut p = self.pending.lock();
        if !p.iter().any(|m| m.ip == ip && m.bus_port == bus_port) {
            p.push(PendingMeet {
                ip,
                bus_port,
                until_ms: until,
                in_flight: false,
                last_error: None,
            });
        }
    }

    fn client(
        &self,
        addr: &str,
    ) -> Option<pb::cluster_bus_client::ClusterBusClient<tonic::transport::Channel>> {
        let mut c = self.clients.lock();
        if let Some(cl) = c.get(addr) {
            return Some(cl.clone());
        }
        let timeout = Duration::from_millis(self.cfg.node_timeout_ms.clamp(500, 15000) as u64);
        match bus::client(addr, timeout) {
            Ok(cl) => {
                c.insert(addr.to_string(), cl.clone());
                Some(cl)
            }
            Err(e) => {
                tracing::debug!("bad bus address {addr}: {e}");
                None
            }
        }
    }

    fn run_actions(&self, node: &Arc<Node>, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Meet { ip, bus_port } => self.meet(ip, bus_port),
                Action::BroadcastFail { node: failed } => {
                    tracing::warn!(node = %failed, "marking node as failing (quorum reached)");
                    self.broadcast_fail(node, failed);
                }
                Action::Update { to, owner } => self.send_update(node, to, owner),
                Action::BecameReplica { master } => {
                    tracing::warn!(master = %master, "a replica of ours took over our slots (failover): this node is its replica now");
                    // A manual failover paused our writes; they now go to the new master.
                    node.pause.unpause();
                }
                Action::FollowedNewMaster { master } => {
                    tracing::warn!(master = %master, "Configuration change detected: our master's slots were taken over by a node of our shard; reconfiguring myself as its replica");
                }
            }
        }
    }

    fn addr_of(st: &ClusterState, id: &str) -> Option<String> {
        st.nodes
            .get(id)
            .map(|n| format!("{}:{}", n.endpoint.ip, n.endpoint.bus_port))
    }

    fn broadcast_fail(&self, node: &Arc<Node>, failed: String) {
        let (targets, sender) = {
            let st = self.state.lock();
            let targets: Vec<String> = st
                .nodes
                .values()
                .filter(|n| n.id != st.myself && n.id != failed && !n.failed())
                .filter_map(|n| Self::addr_of(&st, &n.id))
                .collect();
            (targets, bus::to_pb_header(&st.header(0), self.http_port))
        };
        for addr in targets {
            let Some(mut cl) = self.client(&addr) else {
                continue;
            };
            let msg = pb::Fail {
                sender: Some(sender.clone()),
                node_id: failed.clone(),
            };
            let secret = self.cfg.secret.clone();
            self.stats.fail_sent.fetch_add(1, Ordering::Relaxed);
            self.stats.traffic.sent(MessageType::Fail, &msg);
            let shutdown = node.shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = cl.report_fail(bus::with_secret(msg, secret.as_deref())) => {}
                }
            });
        }
    }

    fn send_update(&self, node: &Arc<Node>, to: String, owner: String) {
        let (addr, msg) = {
            let st = self.state.lock();
            let Some(addr) = Self::addr_of(&st, &to) else {
                return;
            };
            let Some(o) = st.nodes.get(&owner) else {
                return;
            };
            let msg = pb::Update {
                sender: Some(bus::to_pb_header(&st.header(0), self.http_port)),
                node_id: owner.clone(),
                config_epoch: o.config_epoch,
                slots: slot_ranges(st.slots_of(&owner))
                    .into_iter()
                    .map(|(a, b)| pb::SlotRange {
                        start: a as u32,
                        end: b as u32,
                    })
                    .collect(),
            };
            (addr, msg)
        };
        let Some(mut cl) = self.client(&addr) else {
            return;
        };
        self.stats.update_sent.fetch_add(1, Ordering::Relaxed);
        self.stats.traffic.sent(MessageType::Update, &msg);
        let secret = self.cfg.secret.clone();
        let shutdown = node.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = cl.send_update(bus::with_secret(msg, secret.as_deref())) => {}
            }
        });
    }

    /// Sends one PING (or MEET) and processes the PONG.
    fn ping(
        self: &Arc<Self>,
        node: &Arc<Node>,
        addr: String,
        target: Option<String>,
        t: pb::PingType,
        dialed_ip: String,
    ) {
        let Some(mut cl) = self.client(&addr) else {
            return;
        };
        let keys = local_keys(node);
        let msg = {
            let st = self.state.lock();
            self.message(keys, &st, t, target.as_deref().unwrap_or(""), dialed_ip)
        };
        let counter = match t {
            pb::PingType::Meet => &self.stats.meet_sent,
            _ => &self.stats.ping_sent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats.traffic.sent(MessageType::of_ping(t), &msg);
        let cluster = self.clone();
        let node = node.clone();
        let secret = self.cfg.secret.clone();
        tokio::spawn(async move {
            let reply = tokio::select! {
                _ = node.shutdown.cancelled() => return,
                r = cl.gossip(bus::with_secret(msg, secret.as_deref())) => r,
            };
            match reply {
                Ok(r) => cluster.handle_pong(&node, r.into_inner(), &addr),
                Err(e) => {
                    cluster.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("bus call to {addr} failed: {}", e.message());
                    if t == pb::PingType::Meet {
                        cluster.meet_failed(&addr, e.message());
                    }
                }
            }
        });
    }

    fn meet_pending(&self, addr: &str) -> bool {
        self.pending
            .lock()
            .iter()
            .any(|m| format!("{}:{}", m.ip, m.bus_port) == addr)
    }

    /// The peer at `addr` answered a MEET.
    fn meet_done(&self, addr: &str) {
        self.pending
            .lock()
            .retain(|m| format!("{}:{}", m.ip, m.bus_port) != addr);
    }

    /// A MEET to `addr` failed: it is sent again until it expires.
    fn meet_failed(&self, addr: &str, why: &str) {
        let mut p = self.pending.lock();
        if let Some(m) = p
            .iter_mut()
            .find(|m| format!("{}:{}", m.ip, m.bus_port) == addr)
        {
            m.in_flight = false;
            m.last_error = Some(why.to_string());
        }
    }

    fn handle_pong(&self, node: &Arc<Node>, msg: pb::Ping, addr: &str) {
        self.stats.pong_received.fetch_add(1, Ordering::Relaxed);
        self.stats.traffic.received(MessageType::Pong, &msg);
        let Some(sender) = msg.sender.as_ref() else {
            return;
        };
        let Ok(mut h) = bus::from_pb_header(sender, None) else {
            return;
        };
        if h.endpoint.ip.is_empty() {
            h.endpoint.ip = addr
                .rsplit_once(':')
                .map(|(ip, _)| ip.to_string())
                .unwrap_or_default();
        }
        let gossip: Vec<GossipEntry> = msg.gossip.iter().filter_map(bus::from_pb_gossip).collect();
        let now = crate::commands::now_ms();
        let actions = {
            let mut st = self.state.lock();
            self.learn_my_ip(&mut st, &msg.receiver_ip);
            if h.id == st.myself {
                drop(st);
                self.meet_done(addr);
                return;
            }
            if !st.nodes.contains_key(&h.id) {
                // Only the answer to a MEET of ours adds a node: a PONG to a ping sent before
                // a CLUSTER RESET or FORGET must not bring the node back.
                if !self.meet_pending(addr) {
                    return;
                }
                let mut n = ClusterNode::new(h.id.clone(), h.endpoint.clone(), flag::MASTER);
                n.seen = true;
                if st.add_node(n, now) {
                    tracing::info!(node = %h.id, "met node at {addr}");
                }
            }
            let mut acts = st.process_header(&h, true, now);
            acts.extend(st.process_gossip(&h.id, &gossip, now));
            self.publish(&mut st);
            acts
        };
        self.meet_done(addr);
        self.run_actions(node, actions);
    }

    /// One tick of the driver (10 per second, as Redis's clusterCron).
    fn tick(self: &Arc<Self>, node: &Arc<Node>, tick: u64) {
        let now = crate::commands::now_ms();
        let mut pings: Vec<(String, Option<String>, pb::PingType, String)> = Vec::new();
        let actions;
        let failover;
        {
            let mut st = self.state.lock();
            st.check_timeouts(now);
            actions = st.check_failures(now);
            let is_master = st.me().is_master();
            let offset = self.repl.announced_offset(node, is_master);
            st.me_mut().repl_offset = offset;
            // A replica leaving its shard (automatic distribution) is about to drop its data:
            // it stands for no election, manual or not, until it is done or stays.
            failover = if self.repl.is_leaving() {
                None
            } else {
                // Synced with the master it follows now (a replica moved to another shard
                // holds its old master's data until its new link's sync).
                let synced = self.repl.synced.load(Ordering::Relaxed)
                    && st.me().replica_of.is_some()
                    && *self.repl.synced_from.lock() == st.me().replica_of;
                st.failover_step(now, offset, synced)
            };
            if matches!(failover, Some(FailoverStep::Promoted { .. })) {
                // Before any write is served: the stream goes on from the offset applied here.
                self.repl.became_master(node);
                self.publish(&mut st);
            }
            if !st.manual && !st.importing.is_empty() {
                // Automatic distribution: an import ends when its source hands the slot over
                // (Claim), or here when the source failed, left or no longer owns the slot,
                // or sent nothing for a long while (it gave the move up: a retried batch
                // opens the import again). Long: a source may be held up by a busy shard or
                // one huge key, and its clients bounce between ASK and MOVED meanwhile.
                let quiet_limit = (st.node_timeout_ms * 4).max(60_000);
                let importing: Vec<u16> = st.importing.keys().copied().collect();
                st.import_seen_ms.retain(|s, _| importing.contains(s));
                for s in importing {
                    st.import_seen_ms.entry(s).or_insert(now);
                }
                let stale: Vec<u16> = st
                    .importing
                    .iter()
                    .filter(|(s, from)| {
                        st.nodes.get(*from).is_none_or(|n| n.failed())
                            || st.slots[**s as usize].as_deref() != Some(from.as_str())
                            || now - st.import_seen_ms[*s] > quiet_limit
                    })
                    .map(|(s, _)| *s)
                    .collect();
                for s in stale {
                    st.importing.remove(&s);
                    st.import_seen_ms.remove(&s);
                    st.dirty = true;
                }
            }
            for id in st.pings_due(now, tick.is_multiple_of(10)) {
                if let Some(n) = st.nodes.get(&id) {
                    let addr = format!("{}:{}", n.endpoint.ip, n.endpoint.bus_port);
                    pings.push((addr, Some(id), pb::PingType::Ping, n.endpoint.ip.clone()));
                }
            }
            // Rebuilding routing costs a pass over 16384 slots: only when something changed.
            if st.dirty || st.update_state() {
                self.publish(&mut st);
            }
        }
        {
            let mut p = self.pending.lock();
            // A MEET nobody answered ends here, as Redis drops a node stuck in handshake; the
            // operator hears of it (a wrong port is the usual cause).
            p.retain(|m| {
                let alive = m.until_ms > now;
                if !alive {
                    tracing::warn!(
                        "MEET of {}:{} given up: no cluster bus answered there ({}); check the address and the bus port (the node's port + 10000 unless set with --cluster-bus-port)",
                        m.ip,
                        m.bus_port,
                        m.last_error.as_deref().unwrap_or("no reply"),
                    );
                }
                alive
            });
            for m in p.iter_mut() {
                if !m.in_flight {
                    m.in_flight = true;
                    pings.push((
                        format!("{}:{}", m.ip, m.bus_port),
                        None,
                        pb::PingType::Meet,
                        m.ip.clone(),
                    ));
                }
            }
        }
        self.run_actions(node, actions);
        if let Some(step) = failover {
            self.failover(node, step);
        }
        for (addr, id, t, ip) in pings {
            self.ping(node, addr, id, t, ip);
        }
        // Planning scans every slot: once a second is plenty, and not while moves are queued.
        if self.cfg.auto_assign
            && (tick.is_multiple_of(10) || self.state.lock().me().provisional)
            && self.migrator.pending() == 0
        {
            self.auto_assign(node, now);
        }
        // nodes.conf after every change, within a tick: a node killed right after taking slots
        // must come back owning them.
        self.save_if_dirty();
    }

    /// Carries out a step of this replica's failover (see `ClusterState::failover_step`).
    fn failover(self: &Arc<Self>, node: &Arc<Node>, step: FailoverStep) {
        match step {
            FailoverStep::RequestVotes { epoch, manual } => {
                let (targets, sender) = {
                    let st = self.state.lock();
                    let targets: Vec<String> = st
                        .nodes
                        .values()
                        .filter(|n| {
                            n.id != st.myself
                                && n.is_master()
                                && !n.failed()
                                && st.slot_count(&n.id) > 0
                        })
                        .filter_map(|n| Self::addr_of(&st, &n.id))
                        .collect();
                    (targets, bus::to_pb_header(&st.header(0), self.http_port))
                };
                tracing::info!(
                    epoch,
                    masters = targets.len(),
                    "Starting a failover election for epoch {epoch}."
                );
                for addr in targets {
                    let Some(mut cl) = self.client(&addr) else {
                        continue;
                    };
                    let msg = pb::VoteRequest {
                        sender: Some(sender.clone()),
                        epoch,
                        manual,
                    };
                    self.stats.traffic.sent(MessageType::Failover, &msg);
                    let secret = self.cfg.secret.clone();
                    let cluster = self.clone();
                    let shutdown = node.shutdown.clone();
                    tokio::spawn(async move {
                        let r = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            r = cl.request_vote(bus::with_secret(msg, secret.as_deref())) => r,
                        };
                        if let Ok(r) = r {
                            cluster
                                .stats
                                .traffic
                                .received(MessageType::Failover, r.get_ref());
                            if r.get_ref().granted {
                                cluster.state.lock().note_vote(epoch);
                            } else {
                                tracing::debug!(from = %addr, "vote refused: {}", r.get_ref().reason);
                            }
                        }
                    });
                }
            }
            FailoverStep::AskMaster { master } => {
                let Some(addr) = Self::addr_of(&self.state.lock(), &master) else {
                    return;
                };
                let Some(mut cl) = self.client(&addr) else {
                    return;
                };
                let msg = pb::ManualFailoverRequest {
                    sender: Some(self.my_pb_header()),
                    pause_ms: (state::MANUAL_FAILOVER_TIMEOUT_MS * 2) as u64,
                };
                self.stats.traffic.sent(MessageType::Failover, &msg);
                let secret = self.cfg.secret.clone();
                let cluster = self.clone();
                let shutdown = node.shutdown.clone();
                tokio::spawn(async move {
                    let r = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = cl.manual_failover(bus::with_secret(msg, secret.as_deref())) => r,
                    };
                    let mut st = cluster.state.lock();
                    match r {
                        Ok(r) if r.get_ref().accepted => {
                            let offset = r.get_ref().offset;
                            tracing::info!(
                                offset,
                                "Received replication offset for paused master manual failover: {offset}"
                            );
                            st.election.manual_offset = Some(offset);
                        }
                        Ok(r) => {
                            tracing::warn!(
                                "manual failover refused by the master: {}",
                                r.get_ref().reason
                            );
                            st.election = state::Election::default();
                        }
                        Err(e) => {
                            tracing::warn!(
                                "manual failover: the master did not answer: {}",
                                e.message()
                            );
                            st.election = state::Election::default();
                        }
                    }
                });
            }
            FailoverStep::Promoted { old_master } => {
                tracing::warn!(old_master = %old_master, "Failover election won: I'm the new master.");
                self.after_promotion(node);
            }
            FailoverStep::ManualTimedOut => {
                tracing::warn!("Manual failover timed out.");
            }
        }
    }

    /// This replica now serves its old master's slots: save that, and tell every node at once
    /// (each one's reply carries what it knows back).
    pub fn after_promotion(self: &Arc<Self>, node: &Arc<Node>) {
        self.repl.failovers.fetch_add(1, Ordering::Relaxed);
        self.save_if_dirty();
        let targets: Vec<(String, String, String)> = {
            let st = self.state.lock();
            st.nodes
                .values()
                .filter(|n| n.id != st.myself && n.flags & flag::HANDSHAKE == 0)
                .map(|n| {
                    (
                        format!("{}:{}", n.endpoint.ip, n.endpoint.bus_port),
                        n.id.clone(),
                        n.endpoint.ip.clone(),
                    )
                })
                .collect()
        };
        for (addr, id, ip) in targets {
            self.ping(node, addr, Some(id), pb::PingType::Ping, ip);
        }
    }

    /// A replica asks for our vote (FAILOVER_AUTH_REQUEST).
    pub fn handle_vote(
        &self,
        node: &Arc<Node>,
        h: &Header,
        epoch: u64,
        manual: bool,
    ) -> pb::VoteReply {
        let now = crate::commands::now_ms();
        let (actions, result) = {
            let mut st = self.state.lock();
            if !st.nodes.contains_key(&h.id) {
                return pb::VoteReply {
                    granted: false,
                    reason: "unknown sender".into(),
                };
            }
            let actions = st.process_header(h, false, now);
            let r = st.grant_vote(h, epoch, manual, now);
            self.publish(&mut st);
            (actions, r)
        };
        self.run_actions(node, actions);
        match result {
            Ok(()) => {
                self.save_if_dirty();
                tracing::info!(replica = %h.id, epoch, "Failover auth granted to {} for epoch {epoch}", h.id);
                pb::VoteReply {
                    granted: true,
                    reason: String::new(),
                }
            }
            Err(why) => {
                tracing::info!(replica = %h.id, epoch, "Failover auth denied to {}: {why}", h.id);
                pb::VoteReply {
                    granted: false,
                    reason: why.into(),
                }
            }
        }
    }

    /// A replica of ours starts a manual failover: stop writes, wait for the ones in flight,
    /// and answer with our offset, which the replica reaches before it asks for votes.
    pub async fn handle_manual_failover(
        &self,
        node: &Arc<Node>,
        h: &Header,
        pause_ms: u64,
    ) -> pb::ManualFailoverReply {
        let refuse = |why: &str| pb::ManualFailoverReply {
            accepted: false,
            offset: 0,
            reason: why.into(),
        };
        {
            let st = self.state.lock();
            if !st.me().is_master() {
                return refuse("not a master");
            }
            if st.nodes.get(&h.id).and_then(|n| n.replica_of.as_deref()) != Some(&st.myself) {
                return refuse("not a replica of this master");
            }
        }
        let until = crate::commands::now_ms() + pause_ms.min(30_000) as i64;
        node.pause.pause(until, true);
        // A write that passed the pause check just before it is finishing: let it, then take
        // every shard once so none is still running when the offset is read.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let n = node.clone();
        let offset = tokio::task::spawn_blocking(move || {
            drop(n.store.lock_all(0));
            n.store.aof.repl_offset()
        })
        .await
        .unwrap_or(0);
        tracing::info!(replica = %h.id, offset, "Manual failover requested by replica {}: writes paused", h.id);
        pb::ManualFailoverReply {
            accepted: true,
            offset,
            reason: String::new(),
        }
    }

    fn save_if_dirty(&self) {
        if let Err(e) = self.save(false) {
            tracing::error!("cannot write {}: {e}", self.cfg.config_file.display());
            self.state.lock().dirty = true;
        }
    }

    /// Writes nodes.conf now (CLUSTER SAVECONFIG).
    pub fn save_now(&self) -> std::io::Result<()> {
        self.save(true)
    }

    /// Renders the state under its lock and writes it under `save_lock`, so concurrent savers
    /// (the tick, a Claim reply, the migrator) write one at a time and in the order they read
    /// the state: the file never goes back to an older state.
    fn save(&self, always: bool) -> std::io::Result<()> {
        let _one_writer = self.save_lock.lock();
        let text = {
            let mut st = self.state.lock();
            if !st.dirty && !always {
                return Ok(());
            }
            st.dirty = false;
            nodes_conf::render(&st)
        };
        nodes_conf::write(&self.cfg.config_file, &text)
    }

    /// Automatic distribution (the seed's feature): settle the provisional claim once we have
    /// peers, then move empty slots towards the even layout once membership is stable. Slots
    /// that hold keys stay with their owner here; moving keys is the migration's job. Keys held
    /// here of slots another node serves (strays) are queued to be pushed to that node.
    fn auto_assign(self: &Arc<Self>, node: &Arc<Node>, now: i64) {
        // Not before the data files are loaded: the keys counted here decide which slots are
        // empty enough to hand away, and half of them may still be in the files.
        if !node.ready.load(Ordering::Acquire) {
            return;
        }
        let keys = local_keys(node);
        // Read before the cluster state is locked (the migrator takes a shard, then the state).
        let counts = (keys > 0).then(|| node.store.slot_key_counts());
        let mut handoffs: HashMap<String, Vec<u16>> = HashMap::new();
        let mut strays: HashMap<String, Vec<u16>> = HashMap::new();
        let mut stale = Vec::new();
        {
            let mut st = self.state.lock();
            // (A wait noted earlier does not outlive the paths that plan nothing.)
            if st.manual || !st.me().is_master() {
                self.note_auto_wait(now, None);
            }
            if st.manual {
                return;
            }
            // Replicas hold their master's keys and serve no slots of their own; one whose
            // shard has a replica too many moves to a shard with none, once membership is
            // stable.
            if !st.me().is_master() {
                if now - st.membership_changed_ms < self.cfg.rebalance_delay_ms
                    || self.repl.is_leaving()
                {
                    return;
                }
                match st.auto_replica_move() {
                    Some(ReplicaMove::Follow(master)) => {
                        tracing::info!(master = %master, "automatic distribution: this replica moves to another shard (cluster.replicas)");
                        st.set_my_master(&master, now);
                        self.publish(&mut st);
                    }
                    Some(ReplicaMove::NewShard) => {
                        tracing::info!(
                            "automatic distribution: the cluster lacks a shard and has no empty master to start one: this replica leaves its shard to start it (cluster.replicas)"
                        );
                        self.repl.leave_shard();
                    }
                    None => {}
                }
                return;
            }
            let me_id = st.myself.clone();
            if st.me().provisional {
                self.note_auto_wait(now, None);
                let my_key = st.me().endpoint.sort_key();
                let peers: Vec<&ClusterNode> = st
                    .nodes
                    .values()
                    .filter(|n| n.id != me_id && n.seen)
                    .collect();
                if peers.is_empty() {
                    return;
                }
                let yield_to_peer = keys == 0
                    && peers.iter().any(|p| {
                        (!p.provisional && st.slot_count(&p.id) > 0)
                            || (p.provisional && p.keys > 0)
                            || (p.provisional && p.keys == 0 && p.endpoint.sort_key() < my_key)
                    });
                if yield_to_peer {
                    for s in st.slots.iter_mut() {
                        if s.as_deref() == Some(me_id.as_str()) {
                            *s = None;
                        }
                    }
                    tracing::info!(
                        "joined a cluster: giving up the provisional claim on all slots"
                    );
                } else {
                    let e = st.bump_config_epoch();
                    tracing::info!(
                        epoch = e,
                        keys,
                        "joined a cluster: keeping the slots this node serves"
                    );
                }
                st.me_mut().provisional = false;
                st.membership_changed_ms = now;
                st.dirty = true;
                self.publish(&mut st);
                return;
            }
            if now - st.membership_changed_ms < self.cfg.rebalance_delay_ms {
                self.note_auto_wait(
                    now,
                    Some("membership to stay unchanged for cluster.rebalance-delay".into()),
                );
                return;
            }
            if let Some(p) = st
                .nodes
                .values()
                .find(|n| n.id != me_id && n.provisional && n.seen)
            {
                // Every peer settles its own claim first.
                let why = format!("{} to settle its provisional claim", describe(p));
                self.note_auto_wait(now, Some(why));
                return;
            }
            // A master taking in slots (their keys, or a claim) is not empty, whatever its
            // key count said a moment ago: it stays one until the move is done.
            let importing = !st.importing.is_empty();
            if let Some(master) = st
                .auto_replica_roles(keys)
                .remove(&me_id)
                .filter(|_| !importing)
            {
                self.note_auto_wait(now, None);
                tracing::info!(master = %master, replicas = st.replicas_per_shard, "automatic distribution: this node becomes a replica (cluster.replicas)");
                st.set_my_master(&master, now);
                self.publish(&mut st);
                return;
            }
            for (s, _) in counts.iter().flatten().enumerate().filter(|(_, c)| **c > 0) {
                let slot = s as u16;
                let Some(owner) = st.slots[s].as_deref() else {
                    continue;
                };
                if owner != me_id
                    && st.released.contains(&slot)
                    && !st.importing.contains_key(&slot)
                {
                    stale.push(slot);
                    continue;
                }
                let healthy = st
                    .nodes
                    .get(owner)
                    .is_some_and(|n| !n.failed() && !n.pfailed() && n.seen);
                if owner != me_id && healthy && !st.importing.contains_key(&slot) {
                    strays.entry(owner.to_string()).or_default().push(slot);
                }
            }
            let layout = st.target_layout(keys);
            let mut target = vec![None::<&str>; slots::SLOTS];
            for (id, a, b) in &layout {
                for s in *a..=*b {
                    target[s as usize] = Some(id.as_str());
                }
            }
            let mut claim = Vec::new();
            let mut reclaimed = false;
            // What keeps the layout from being reached, if nothing moves towards it.
            let mut unhealthy: Option<String> = None;
            let mut awaited: Option<String> = None;
            for (s, t) in target.iter().enumerate() {
                let owner = st.slots[s].as_deref();
                // Ours in the layout and unassigned, or bound to a node that no longer claims
                // it (and nobody else has): take it.
                if *t == Some(me_id.as_str())
                    && (owner.is_none() || st.owner_not_claiming.contains(&(s as u16)))
                {
                    // A slot this node handed over before is taken at the next pass, once
                    // nodes.conf no longer says so (a restart drops the keys of slots handed
                    // over: none written after the claim may be among them).
                    if st.released.remove(&(s as u16)) {
                        reclaimed = true;
                        continue;
                    }
                    claim.push(s as u16);
                } else if *t == Some(me_id.as_str())
                    && let Some(o) = owner
                    && o != me_id
                {
                    if awaited.is_none() {
                        awaited = Some(o.to_string());
                    }
                } else if owner == Some(me_id.as_str())
                    && let Some(t) = t
                    && *t != me_id
                {
                    let to = st.nodes.get(*t);
                    let healthy = to.is_some_and(|n| !n.failed() && !n.pfailed() && n.seen);
                    if healthy && !st.migrating.contains_key(&(s as u16)) {
                        handoffs.entry(t.to_string()).or_default().push(s as u16);
                    } else if !healthy && unhealthy.is_none() {
                        // (Stable words: a new text restarts the wait's clock.)
                        unhealthy = Some(match to {
                            Some(n) => format!(
                                "{} to be reachable (failing, or never heard from) before slots are handed to it",
                                describe(n)
                            ),
                            None => format!("{t} to be known before slots are handed to it"),
                        });
                    }
                }
            }
            let why = if !claim.is_empty() || !handoffs.is_empty() {
                None
            } else if let Some(u) = unhealthy {
                Some(u)
            } else {
                awaited.map(|o| {
                    let o = st.nodes.get(&o).map_or(o, describe);
                    format!("slots of the even layout to be handed over by their owners ({o} among them)")
                })
            };
            self.note_auto_wait(now, why);
            if reclaimed {
                st.dirty = true;
            }
            if !claim.is_empty() {
                for &s in &claim {
                    st.assign(s, Some(&me_id));
                }
                let e = st.bump_config_epoch();
                tracing::info!(
                    slots = claim.len(),
                    epoch = e,
                    "claimed unassigned slots of the even layout"
                );
                self.publish(&mut st);
            }
        }
        if !stale.is_empty() {
            self.drop_stale(node, &stale);
        }
        for (to, slots) in strays {
            tracing::debug!(slots = slots.len(), to = %to, "keys found here of slots another node serves: pushing them there");
            for s in slots {
                self.migrator.enqueue_stray(s, &to);
            }
        }
        for (to, slots_wanted) in handoffs {
            self.hand_off(node, to, slots_wanted);
        }
    }

    /// Logs what automatic distribution waits for once the same wait lasted
    /// [`AUTO_WAIT_LOG_MS`], and when it ends: a cluster that does not rebalance says why.
    fn note_auto_wait(&self, now: i64, reason: Option<String>) {
        let mut w = self.auto_wait.lock();
        if w.reason != reason {
            if w.logged
                && let Some(old) = &w.reason
            {
                tracing::info!("automatic distribution no longer waits for {old}");
            }
            *w = AutoWait {
                reason,
                since_ms: now,
                logged: false,
            };
        }
        if !w.logged
            && let Some(r) = &w.reason
            && now - w.since_ms >= AUTO_WAIT_LOG_MS
        {
            tracing::info!(
                seconds = (now - w.since_ms) / 1000,
                "automatic distribution is waiting for {r}"
            );
            w.logged = true;
        }
    }

    /// Deletes the keys found here of slots this node handed over (see
    /// [`ClusterState::released`]), logged as moved away, as when they left.
    fn drop_stale(&self, node: &Arc<Node>, slots: &[u16]) {
        let mut dropped = 0;
        for group in slots.chunk_by(|a, b| shard_of_slot(*a) == shard_of_slot(*b)) {
            let mut ks = node
                .store
                .lock_shard(shard_of_slot(group[0]), crate::commands::now_ms());
            // Checked again under the shard's lock: a slot taken back meanwhile keeps its keys.
            let stale: Vec<u16> = {
                let st = self.state.lock();
                let me = st.myself.as_str();
                group
                    .iter()
                    .copied()
                    .filter(|s| {
                        st.released.contains(s) && st.slots[*s as usize].as_deref() != Some(me)
                    })
                    .collect()
            };
            let keys =
                ks.keys_in_slots(shard_of_slot(group[0]), |s| stale.contains(&s), usize::MAX);
            for k in &keys {
                let _ = ks.settle_moved(k);
            }
            if !keys.is_empty() {
                let names: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                ks.store().aof.append_keys(KIND_MOVED, &names);
                dropped += keys.len();
            }
        }
        if dropped > 0 {
            tracing::warn!(
                keys = dropped,
                slots = ?slot_ranges(slots.iter().copied()),
                "dropped keys of slots this node handed over: the data files held copies older than the handover"
            );
        }
    }

    /// Gives slots to `to`. Empty ones are checked empty and flipped under their shard lock, so
    /// no write lands between the check and the flip, then `to` claims them with a new epoch;
    /// slots holding keys are queued for the migrator, which moves their keys first.
    fn hand_off(self: &Arc<Self>, node: &Arc<Node>, to: String, wanted: Vec<u16>) {
        let mut moved = Vec::new();
        // Every shard of the wanted slots stays locked until the routing commands read shows
        // the new owners: a write that waited for one of them and was then routed by the old
        // table would be applied here, in a slot that is no longer ours (it was: one
        // acknowledged key at a time went astray). One flip and one routing rebuild for all.
        let mut shards: Vec<usize> = wanted.iter().map(|&s| shard_of_slot(s)).collect();
        shards.sort_unstable();
        shards.dedup();
        node.store.with_slot_counts_locked(&shards, |count| {
            let mut st = self.state.lock();
            let me = st.myself.clone();
            for &s in &wanted {
                // A slot the migrator is moving is its to hand over: its Claim is sent without
                // the shard's lock, so an empty count here may be the migrator's doing.
                if st.migrating.contains_key(&s) || st.claiming.contains(&s) {
                    continue;
                }
                if count(s) > 0 {
                    self.migrator.enqueue(s, &to);
                } else if st.slots[s as usize].as_deref() == Some(me.as_str()) {
                    st.hand_over(s, &to);
                    st.handing_off.insert(s);
                    moved.push(s);
                }
            }
            if !moved.is_empty() {
                self.publish(&mut st);
            }
        });
        if moved.is_empty() {
            return;
        }
        let (addr, msg) = {
            let st = self.state.lock();
            let Some(addr) = Self::addr_of(&st, &to) else {
                return;
            };
            let msg = pb::ClaimSlots {
                sender: Some(bus::to_pb_header(&st.header(0), self.http_port)),
                slots: slot_ranges(moved.iter().copied())
                    .into_iter()
                    .map(|(a, b)| pb::SlotRange {
                        start: a as u32,
                        end: b as u32,
                    })
                    .collect(),
            };
            (addr, msg)
        };
        tracing::info!(slots = moved.len(), to = %to, "handing empty slots to their owner in the even layout");
        let Some(mut cl) = self.client(&addr) else {
            return;
        };
        let cluster = self.clone();
        let secret = self.cfg.secret.clone();
        let shutdown = node.shutdown.clone();
        self.stats.traffic.sent(MessageType::Claim, &msg);
        tokio::spawn(async move {
            // A failed call may have been applied there: ask again (a Claim is idempotent)
            // before taking the slots back, or both nodes could serve them for a while, each
            // sending clients to the other.
            let mut attempt = 0;
            let reply = loop {
                let reply = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = cl.claim(bus::with_secret(msg.clone(), secret.as_deref())) => r,
                };
                attempt += 1;
                if reply.is_ok() || attempt == CLAIM_ATTEMPTS {
                    break reply;
                }
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            };
            if let Ok(r) = &reply {
                cluster
                    .stats
                    .traffic
                    .received(MessageType::Claim, r.get_ref());
            }
            let accepted = matches!(&reply, Ok(r) if r.get_ref().accepted);
            let mut st = cluster.state.lock();
            for s in &moved {
                st.handing_off.remove(s);
            }
            if accepted {
                if let Ok(r) = reply {
                    st.note_claim_accepted(&to, r.get_ref().config_epoch);
                }
            } else {
                // The peer did not take them: they are still ours.
                tracing::warn!(to = %to, "slot handoff refused or failed; keeping the slots");
                let me = st.myself.clone();
                for s in &moved {
                    if st.slots[*s as usize].as_deref() == Some(to.as_str()) {
                        st.assign(*s, Some(&me));
                    }
                }
            }
            cluster.publish(&mut st);
        });
    }
}

fn local_keys(node: &Node) -> u64 {
    node.store.db0_keys_nonblocking()
}

/// Resolves `host:port[@busport]` seeds with retry (DNS may not exist yet in a fresh StatefulSet)
/// and MEETs them.
async fn meet_seeds(node: Arc<Node>, cluster: Arc<Cluster>) {
    let mut pending: Vec<String> = cluster.cfg.seeds.clone();
    let mut delay = Duration::from_millis(200);
    while !pending.is_empty() {
        let mut left = Vec::new();
        for seed in pending {
            let (hostport, bus) = match seed.split_once('@') {
                Some((hp, b)) => (hp.to_string(), b.parse::<u16>().ok()),
                None => (seed.clone(), None),
            };
            let resolved = tokio::net::lookup_host(hostport.as_str())
                .await
                .ok()
                .and_then(|mut a| a.next());
            match resolved {
                Some(addr) => {
                    let bus_port = bus.unwrap_or(addr.port().wrapping_add(10000));
                    if addr == node.resp_addr
                        || (addr.ip().is_loopback() && addr.port() == node.resp_addr.port())
                    {
                        continue; // ourselves
                    }
                    cluster.meet(addr.ip().to_string(), bus_port);
                }
                None => left.push(seed),
            }
        }
        pending = left;
        if pending.is_empty() {
            break;
        }
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// The cluster driver: gossip, failure detection, automatic distribution, nodes.conf.
pub async fn run(node: Arc<Node>) {
    let Some(cluster) = node.cluster.clone() else {
        return;
    };
    tokio::spawn(meet_seeds(node.clone(), cluster.clone()));
    tokio::spawn(replication::run(node.clone()));
    let migrator = match migrate::spawn(node.clone()) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!("cannot start the slot migrator: {e}");
            None
        }
    };
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = 0u64;
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        cluster.tick(&node, tick);
        tick += 1;
    }
    if let Some(h) = migrator {
        // It notices the shutdown within its poll interval (or after its current batch).
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    cluster.save_if_dirty();
}
