//! What the HTTP surface reports about this node and the cluster: the `/api/v1/info` and
//! `/api/v1/cluster` documents (also read by `/metrics` and the `/ws` feed), and bytes as JSON.
//!
//! The cluster view takes its node list from one place, [`known_nodes`]: the cluster's node
//! table when `cluster.enabled`, else this node alone, owning every slot.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use serde::Serialize;

use crate::cluster::slots::SLOTS;
use crate::cluster::state::flag;
use crate::node::Node;

/// Keys, members and values in JSON: UTF-8 text when valid, otherwise base64 (and the caller
/// sets the companion `*_b64` flag).
pub fn bytes_to_json(b: &[u8]) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(b) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => (
            Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b)),
            true,
        ),
    }
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// This node's ID as other nodes and clients see it: the cluster node ID when clustered, else
/// the run ID (40 hex characters like a node ID).
pub fn node_id(node: &Node) -> String {
    match &node.cluster {
        Some(c) => c.state.lock().myself.clone(),
        None => node.run_id.clone(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub id: String,
    pub addr: String,
    pub http_addr: String,
    pub version: &'static str,
    pub role: &'static str,
    pub uptime_s: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStats {
    pub ops_per_sec: u64,
    pub connected_clients: usize,
    pub used_memory: usize,
    pub keys: usize,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub commands_processed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub node: NodeInfo,
    pub stats: NodeStats,
    /// The slots this node is moving away now, with their progress (a slot's move is known to
    /// its old owner; the cluster view gathers them from every node).
    pub moving: Vec<SlotMove>,
}

pub fn info(node: &Node) -> Info {
    // Off the runtime's worker: a running script holds every shard.
    let shard = crate::store::off_worker(|| node.store.stats());
    Info {
        node: NodeInfo {
            id: node_id(node),
            addr: node.resp_addr.to_string(),
            http_addr: node.http_addr.to_string(),
            version: env!("CARGO_PKG_VERSION"),
            role: match &node.cluster {
                Some(c) if !c.state.lock().me().is_master() => "replica",
                _ => "master",
            },
            uptime_s: node.uptime().as_secs(),
        },
        stats: NodeStats {
            ops_per_sec: node.stats.ops_per_sec(),
            connected_clients: node.clients.len(),
            used_memory: node.stats.used_memory.load(Ordering::Relaxed),
            keys: total_keys(node),
            keyspace_hits: shard.keyspace_hits,
            keyspace_misses: shard.keyspace_misses,
            commands_processed: node.stats.commands_processed.load(Ordering::Relaxed),
        },
        moving: moves(node, false),
    }
}

/// The slot moves this node takes part in: those it sends, and with `incoming` those it
/// receives (whose progress only the sender knows: `keys_moved` is 0 for them).
pub fn moves(node: &Node, incoming: bool) -> Vec<SlotMove> {
    let Some(c) = &node.cluster else {
        return Vec::new();
    };
    let st = c.state.lock();
    let mut out: Vec<SlotMove> = st
        .migrating
        .iter()
        .map(|(&slot, to)| SlotMove {
            slot,
            from: st.myself.clone(),
            to: to.clone(),
            keys_moved: c.migrator.keys_moved_of(slot),
        })
        .collect();
    if incoming {
        out.extend(st.importing.iter().map(|(&slot, from)| SlotMove {
            slot,
            from: from.clone(),
            to: st.myself.clone(),
            keys_moved: 0,
        }));
    }
    out.sort_by_key(|m| m.slot);
    out
}

/// Merges moves another node reported sending into `moving`: the sender's entry replaces what
/// the receiving side knew of that slot.
pub fn merge_moves(moving: &mut Vec<SlotMove>, theirs: &[SlotMove]) {
    for m in theirs {
        match moving.iter_mut().find(|x| x.slot == m.slot) {
            Some(x) => *x = m.clone(),
            None => moving.push(m.clone()),
        }
    }
    moving.sort_by_key(|m| m.slot);
}

pub fn total_keys(node: &Node) -> usize {
    crate::store::off_worker(|| node.store.db_sizes())
        .iter()
        .map(|(keys, _)| keys)
        .sum()
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterNode {
    pub id: String,
    pub addr: String,
    pub http_addr: String,
    pub role: &'static str,
    pub state: &'static str,
    pub config_epoch: u64,
    /// Inclusive slot ranges.
    pub slots: Vec<[u16; 2]>,
    /// How many slots it serves: a draining node's count goes to 0 as its slots move.
    pub slot_count: usize,
    /// Leaving the cluster (CLUSTER DRAIN): its slots and keys move to the other nodes.
    pub draining: bool,
    pub keys: usize,
    pub used_memory: usize,
    pub ops_per_sec: u64,
    pub connected_clients: usize,
    /// Since the node started (the UI charts the ratio between two readings).
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub myself: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SlotMove {
    pub slot: u16,
    pub from: String,
    pub to: String,
    pub keys_moved: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub state: &'static str,
    pub mode: &'static str,
    pub slots_assigned: usize,
    pub nodes: Vec<ClusterNode>,
    pub moving: Vec<SlotMove>,
}

/// Every node this node knows, itself included: the one source of the cluster view.
pub fn known_nodes(node: &Node) -> Vec<ClusterNode> {
    known(node).2
}

/// Whether the cluster state is ok and its slot mode, with the node list.
fn known(node: &Node) -> (bool, &'static str, Vec<ClusterNode>) {
    // Lock rule: the store's shards are never locked while `cluster.state` is held, so this
    // node's own figures are read first.
    let i = info(node);
    let Some(c) = &node.cluster else {
        let me = ClusterNode {
            id: i.node.id,
            addr: i.node.addr,
            http_addr: i.node.http_addr,
            role: i.node.role,
            state: "ok",
            config_epoch: 0,
            slots: vec![[0, (SLOTS - 1) as u16]],
            slot_count: SLOTS,
            draining: false,
            keys: i.stats.keys,
            used_memory: i.stats.used_memory,
            ops_per_sec: i.stats.ops_per_sec,
            connected_clients: i.stats.connected_clients,
            keyspace_hits: i.stats.keyspace_hits,
            keyspace_misses: i.stats.keyspace_misses,
            myself: true,
        };
        return (true, "standalone", vec![me]);
    };
    let st = c.state.lock();
    let mut ranges: HashMap<&str, Vec<[u16; 2]>> = HashMap::new();
    for (slot, owner) in st.slots.iter().enumerate() {
        let Some(owner) = owner else { continue };
        let slot = slot as u16;
        let r = ranges.entry(owner.as_str()).or_default();
        match r.last_mut() {
            Some([_, end]) if *end + 1 == slot => *end = slot,
            _ => r.push([slot, slot]),
        }
    }
    let nodes = st
        .nodes
        .values()
        .map(|n| {
            let myself = n.id == st.myself;
            let ep = &n.endpoint;
            // Our own IP may still be unknown (learnt from peers): fall back to the bound address.
            let host = if !ep.ip.is_empty() {
                ep.ip.clone()
            } else if myself {
                node.resp_addr.ip().to_string()
            } else {
                String::new()
            };
            let join = |port: u16| {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            };
            let slots = ranges.remove(n.id.as_str()).unwrap_or_default();
            ClusterNode {
                id: n.id.clone(),
                addr: if myself {
                    i.node.addr.clone()
                } else {
                    join(ep.port)
                },
                http_addr: if myself {
                    i.node.http_addr.clone()
                } else if ep.http_port == 0 {
                    String::new()
                } else {
                    join(ep.http_port)
                },
                role: if n.is_master() { "master" } else { "replica" },
                state: if n.failed() {
                    "fail"
                } else if n.pfailed() {
                    "pfail"
                } else {
                    "ok"
                },
                config_epoch: n.config_epoch,
                slot_count: slots.iter().map(|[a, b]| usize::from(b - a) + 1).sum(),
                draining: n.flags & flag::DRAINING != 0,
                slots,
                keys: if myself {
                    i.stats.keys
                } else {
                    n.keys as usize
                },
                // Other nodes' memory and load are not on the bus: the API asks them.
                used_memory: if myself { i.stats.used_memory } else { 0 },
                ops_per_sec: if myself { i.stats.ops_per_sec } else { 0 },
                connected_clients: if myself { i.stats.connected_clients } else { 0 },
                keyspace_hits: if myself { i.stats.keyspace_hits } else { 0 },
                keyspace_misses: if myself { i.stats.keyspace_misses } else { 0 },
                myself,
            }
        })
        .collect();
    let mode = if st.manual { "manual" } else { "auto" };
    (st.ok, mode, nodes)
}

pub fn cluster(node: &Arc<Node>) -> Cluster {
    let (ok, mode, nodes) = known(node);
    let slots_assigned = nodes.iter().map(|n| n.slot_count).sum();
    let state = if node.cluster.is_some() {
        if ok { "ok" } else { "fail" }
    } else if slots_assigned == SLOTS && nodes.iter().all(|n| n.state == "ok") {
        "ok"
    } else {
        "fail"
    };
    Cluster {
        state,
        mode,
        slots_assigned,
        nodes,
        moving: moves(node, true),
    }
}
