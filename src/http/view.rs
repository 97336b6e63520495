//! What the HTTP surface reports about this node and the cluster: the `/api/v1/info` and
//! `/api/v1/cluster` documents (also read by `/metrics` and the `/ws` feed), and bytes as JSON.
//!
//! The cluster view takes its node list from one place, [`known_nodes`]: until this node can
//! join a cluster it knows only itself, owning every slot; the cluster work replaces that
//! function's body with the node table.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use serde::Serialize;

use crate::cluster::slots::SLOTS;
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

/// This node's ID as other nodes and clients see it (the cluster node ID once the cluster
/// lands; the run ID, 40 hex characters like a node ID, until then).
pub fn node_id(node: &Node) -> &str {
    &node.run_id
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
}

pub fn info(node: &Node) -> Info {
    let shard = node.store.stats();
    Info {
        node: NodeInfo {
            id: node_id(node).to_string(),
            addr: node.resp_addr.to_string(),
            http_addr: node.http_addr.to_string(),
            version: env!("CARGO_PKG_VERSION"),
            role: "master",
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
    }
}

pub fn total_keys(node: &Node) -> usize {
    node.store.db_sizes().iter().map(|(keys, _)| keys).sum()
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
    pub keys: usize,
    pub used_memory: usize,
    pub ops_per_sec: u64,
    pub myself: bool,
}

#[derive(Debug, Clone, Serialize)]
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
    let i = info(node);
    vec![ClusterNode {
        id: i.node.id,
        addr: i.node.addr,
        http_addr: i.node.http_addr,
        role: i.node.role,
        state: "ok",
        config_epoch: 0,
        slots: vec![[0, (SLOTS - 1) as u16]],
        keys: i.stats.keys,
        used_memory: i.stats.used_memory,
        ops_per_sec: i.stats.ops_per_sec,
        myself: true,
    }]
}

pub fn cluster(node: &Arc<Node>) -> Cluster {
    let nodes = known_nodes(node);
    let slots_assigned = nodes
        .iter()
        .flat_map(|n| n.slots.iter())
        .map(|[a, b]| (*b as usize) - (*a as usize) + 1)
        .sum();
    let state = if slots_assigned == SLOTS && nodes.iter().all(|n| n.state == "ok") {
        "ok"
    } else {
        "fail"
    };
    Cluster {
        state,
        mode: if nodes.len() == 1 {
            "standalone"
        } else {
            "auto"
        },
        slots_assigned,
        nodes,
        moving: Vec::new(),
    }
}
