//! `/metrics`: Prometheus text (`reredis_*`, DESIGN.md "Observability").
//!
//! Everything is read at scrape time from what the node already keeps for INFO (per-command
//! counters and latency buckets, store and client figures) by one custom [`Collector`], so the
//! command path pays nothing for metrics. The label set is bounded: `cmd` takes only names from
//! the command table, `db` only database indexes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder as _, Registry, TextEncoder};

use super::AppState;
use super::view;
use crate::cluster::bus::{Direction, MessageType};
use crate::node::Node;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// A registry holding the node's collector; other subsystems register theirs here.
pub fn registry(node: Arc<Node>) -> Registry {
    let r = Registry::new();
    if let Err(e) = r.register(Box::new(NodeCollector::new(node))) {
        tracing::error!("metrics: cannot register the node collector: {e}");
    }
    r
}

async fn scrape(State(s): State<AppState>) -> Response {
    let families = s.metrics.gather();
    let mut buf = Vec::with_capacity(16 * 1024);
    match TextEncoder::new().encode(&families, &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Name, help and variable labels of every family the node exports.
const FAMILIES: &[(&str, &str, &[&str])] = &[
    (
        "reredis_build_info",
        "Version of this node (always 1)",
        &["version", "redis_version"],
    ),
    (
        "reredis_uptime_seconds",
        "Seconds since the node started",
        &[],
    ),
    (
        "reredis_commands_total",
        "Commands executed, by command",
        &["cmd"],
    ),
    (
        "reredis_command_failures_total",
        "Commands that replied with an error or were rejected before running, by command",
        &["cmd"],
    ),
    (
        "reredis_command_duration_seconds",
        "Time spent executing commands, by command",
        &["cmd"],
    ),
    (
        "reredis_connected_clients",
        "Client connections, internal HTTP clients included",
        &[],
    ),
    (
        "reredis_connections_received_total",
        "Connections accepted",
        &[],
    ),
    (
        "reredis_rejected_connections_total",
        "Connections refused because of maxclients",
        &[],
    ),
    (
        "reredis_net_input_bytes_total",
        "Bytes read from RESP clients",
        &[],
    ),
    (
        "reredis_net_output_bytes_total",
        "Bytes written to RESP clients",
        &[],
    ),
    ("reredis_keys", "Keys, by database", &["db"]),
    (
        "reredis_expiring_keys",
        "Keys with a TTL, by database",
        &["db"],
    ),
    (
        "reredis_memory_used_bytes",
        "Bytes allocated by the node",
        &[],
    ),
    (
        "reredis_memory_max_bytes",
        "The maxmemory setting (0: no limit)",
        &[],
    ),
    (
        "reredis_expired_keys_total",
        "Keys removed because their TTL passed",
        &[],
    ),
    (
        "reredis_evicted_keys_total",
        "Keys removed to stay under maxmemory (maxmemory-policy)",
        &[],
    ),
    (
        "reredis_keyspace_hits_total",
        "Key lookups that found the key",
        &[],
    ),
    (
        "reredis_keyspace_misses_total",
        "Key lookups that did not find the key",
        &[],
    ),
    ("reredis_ws_clients", "Connected /ws live-feed clients", &[]),
    (
        "reredis_ws_subscribers",
        "/ws clients subscribed to at least one pattern",
        &[],
    ),
    (
        "reredis_ws_dropped_events_total",
        "Key events dropped for /ws clients that fell behind",
        &[],
    ),
    (
        "reredis_cluster_state",
        "1 when the cluster state is ok, 0 otherwise",
        &[],
    ),
    (
        "reredis_cluster_slots_assigned",
        "Hash slots assigned to some node",
        &[],
    ),
    (
        "reredis_cluster_node_slots",
        "Hash slots this node serves",
        &[],
    ),
    (
        "reredis_cluster_known_nodes",
        "Nodes this node knows, itself included",
        &[],
    ),
    (
        "reredis_node_role",
        "1 for the role this node has now (master or replica)",
        &["role"],
    ),
    (
        "reredis_replication_connected_replicas",
        "Replicas this master is feeding",
        &[],
    ),
    (
        "reredis_replication_master_link_up",
        "1 while this replica's stream from its master is up (0 on a master)",
        &[],
    ),
    (
        "reredis_replication_offset_bytes",
        "A master's replication offset, or what a replica applied of its master's stream",
        &[],
    ),
    (
        "reredis_cluster_failovers_total",
        "Times this node took over its master's slots (elections won and TAKEOVER)",
        &[],
    ),
    (
        "reredis_ws_relay_streams",
        "Streams of this node's key events open to peers whose /ws clients watch the cluster",
        &[],
    ),
    (
        "reredis_bus_messages_total",
        "Cluster bus messages by type and direction (sent, received; clustered nodes only)",
        &["type", "direction"],
    ),
    (
        "reredis_bus_bytes_total",
        "Encoded size of the cluster bus messages sent and received, by type and direction (clustered nodes only)",
        &["type", "direction"],
    ),
    (
        "reredis_bus_errors_total",
        "Failed cluster bus calls by type (clustered nodes only)",
        &["type"],
    ),
    (
        "reredis_cluster_messages_sent_total",
        "Cluster bus messages sent, by type (clustered nodes only)",
        &["type"],
    ),
    (
        "reredis_cluster_messages_received_total",
        "Cluster bus messages received, by type (clustered nodes only)",
        &["type"],
    ),
    (
        "reredis_cluster_publish_dropped_total",
        "PUBLISHed messages not delivered to other nodes, by reason: queue (this node's bus \
         queue was full), behind (a peer's queue was full), failed (the call to a peer failed), \
         too_large (over the bus's message size) (clustered nodes only)",
        &["reason"],
    ),
    (
        "reredis_cluster_bus_errors_total",
        "Cluster bus calls that failed (clustered nodes only)",
        &[],
    ),
    (
        "reredis_cluster_bus_auth_failures_total",
        "Cluster bus messages refused for a wrong secret (clustered nodes only)",
        &[],
    ),
    (
        "reredis_cluster_bus_sent_bytes_total",
        "Bytes sent on the cluster bus, every message type (clustered nodes only)",
        &[],
    ),
    (
        "reredis_cluster_bus_received_bytes_total",
        "Bytes received on the cluster bus, every message type (clustered nodes only)",
        &[],
    ),
    (
        "reredis_cluster_slots_moving",
        "Slots this node is moving away or waiting to move (automatic distribution)",
        &[],
    ),
    (
        "reredis_cluster_slots_importing",
        "Slots this node is receiving keys for",
        &[],
    ),
    (
        "reredis_cluster_slots_moved_total",
        "Slots this node handed to another node after moving their keys",
        &[],
    ),
    (
        "reredis_cluster_keys_moved_total",
        "Keys this node moved to other nodes with their slots, and received from them",
        &["direction"],
    ),
    (
        "reredis_cluster_bytes_moved_total",
        "Key and value bytes moved with slots, by direction",
        &["direction"],
    ),
];

struct NodeCollector {
    node: Arc<Node>,
    descs: Vec<Desc>,
}

impl NodeCollector {
    fn new(node: Arc<Node>) -> NodeCollector {
        let descs = FAMILIES
            .iter()
            .filter_map(|(name, help, labels)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    labels.iter().map(|l| l.to_string()).collect(),
                    Default::default(),
                )
                .ok()
            })
            .collect();
        NodeCollector { node, descs }
    }
}

fn family(name: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let help = FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, h, _)| *h)
        .unwrap_or_default();
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = proto::LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.to_string());
            l
        })
        .collect()
}

fn gauge(pairs: &[(&str, &str)], v: f64) -> proto::Metric {
    let mut g = proto::Gauge::default();
    g.set_value(v);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_gauge(g);
    m
}

fn counter(pairs: &[(&str, &str)], v: f64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(v);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

/// A counter family labelled by bus message type and direction, every pair present.
fn by_type_and_direction(name: &str, v: impl Fn(MessageType, Direction) -> u64) -> MetricFamily {
    let metrics = MessageType::ALL
        .iter()
        .flat_map(|&t| Direction::ALL.map(|d| (t, d)))
        .map(|(t, d)| {
            counter(
                &[("type", t.label()), ("direction", d.label())],
                v(t, d) as f64,
            )
        })
        .collect();
    family(name, MetricType::COUNTER, metrics)
}

fn one_gauge(name: &str, v: f64) -> MetricFamily {
    family(name, MetricType::GAUGE, vec![gauge(&[], v)])
}

fn one_counter(name: &str, v: f64) -> MetricFamily {
    family(name, MetricType::COUNTER, vec![counter(&[], v)])
}

impl Collector for NodeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let node = &self.node;
        let mut out = vec![
            family(
                "reredis_build_info",
                MetricType::GAUGE,
                vec![gauge(
                    &[
                        ("version", env!("CARGO_PKG_VERSION")),
                        ("redis_version", crate::REDIS_VERSION),
                    ],
                    1.0,
                )],
            ),
            one_gauge("reredis_uptime_seconds", node.uptime().as_secs_f64()),
        ];
        out.extend(command_families(node));
        let stats = &node.stats;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
        out.extend([
            one_gauge("reredis_connected_clients", node.clients.len() as f64),
            one_counter(
                "reredis_connections_received_total",
                load(&stats.connections_received),
            ),
            one_counter(
                "reredis_rejected_connections_total",
                load(&stats.rejected_connections),
            ),
            one_counter(
                "reredis_net_input_bytes_total",
                load(&stats.net_input_bytes),
            ),
            one_counter(
                "reredis_net_output_bytes_total",
                load(&stats.net_output_bytes),
            ),
        ]);
        // Off the runtime's worker: a running script holds every shard.
        let sizes = crate::store::off_worker(|| node.store.db_sizes());
        let dbs: Vec<String> = (0..sizes.len()).map(|i| i.to_string()).collect();
        out.push(family(
            "reredis_keys",
            MetricType::GAUGE,
            sizes
                .iter()
                .zip(&dbs)
                .map(|((keys, _), db)| gauge(&[("db", db)], *keys as f64))
                .collect(),
        ));
        out.push(family(
            "reredis_expiring_keys",
            MetricType::GAUGE,
            sizes
                .iter()
                .zip(&dbs)
                .map(|((_, expires), db)| gauge(&[("db", db)], *expires as f64))
                .collect(),
        ));
        let shard = crate::store::off_worker(|| node.store.stats());
        out.extend([
            one_gauge(
                "reredis_memory_used_bytes",
                stats.used_memory.load(Ordering::Relaxed) as f64,
            ),
            one_gauge(
                "reredis_memory_max_bytes",
                node.config.read().maxmemory as f64,
            ),
            one_counter("reredis_expired_keys_total", shard.expired_keys as f64),
            one_counter("reredis_evicted_keys_total", shard.evicted_keys as f64),
            one_counter("reredis_keyspace_hits_total", shard.keyspace_hits as f64),
            one_counter(
                "reredis_keyspace_misses_total",
                shard.keyspace_misses as f64,
            ),
            one_gauge(
                "reredis_ws_clients",
                node.feed.clients.load(Ordering::Relaxed) as f64,
            ),
            one_gauge(
                "reredis_ws_subscribers",
                node.feed.subscribers.load(Ordering::Relaxed) as f64,
            ),
            one_counter(
                "reredis_ws_dropped_events_total",
                node.feed.dropped_events.load(Ordering::Relaxed) as f64,
            ),
            one_gauge(
                "reredis_ws_relay_streams",
                load(&node.feed.peers.feed_streams),
            ),
        ]);
        let cluster = view::cluster(node);
        out.extend([
            one_gauge(
                "reredis_cluster_state",
                if cluster.state == "ok" { 1.0 } else { 0.0 },
            ),
            one_gauge(
                "reredis_cluster_slots_assigned",
                cluster.slots_assigned as f64,
            ),
            one_gauge(
                "reredis_cluster_node_slots",
                cluster
                    .nodes
                    .iter()
                    .filter(|n| n.myself)
                    .flat_map(|n| &n.slots)
                    .map(|[a, b]| f64::from(b - a + 1))
                    .sum(),
            ),
            one_gauge("reredis_cluster_known_nodes", cluster.nodes.len() as f64),
        ]);
        if let Some(c) = &node.cluster {
            let r = &c.repl;
            let is_master = c.state.lock().me().is_master();
            out.push(family(
                "reredis_node_role",
                MetricType::GAUGE,
                ["master", "replica"]
                    .iter()
                    .map(|role| {
                        let now = (*role == "master") == is_master;
                        gauge(&[("role", role)], if now { 1.0 } else { 0.0 })
                    })
                    .collect(),
            ));
            out.extend([
                one_gauge(
                    "reredis_replication_connected_replicas",
                    r.feeds.lock().len() as f64,
                ),
                one_gauge(
                    "reredis_replication_master_link_up",
                    if !is_master && r.link_up.load(Ordering::Relaxed) {
                        1.0
                    } else {
                        0.0
                    },
                ),
                one_gauge(
                    "reredis_replication_offset_bytes",
                    r.announced_offset(node, is_master) as f64,
                ),
                one_counter(
                    "reredis_cluster_failovers_total",
                    r.failovers.load(Ordering::Relaxed) as f64,
                ),
            ]);
            let b = &c.stats;
            let p = &node.feed.peers;
            out.extend([
                by_type_and_direction("reredis_bus_messages_total", |t, d| {
                    b.traffic.messages(t, d)
                }),
                by_type_and_direction("reredis_bus_bytes_total", |t, d| b.traffic.bytes(t, d)),
                family(
                    "reredis_bus_errors_total",
                    MetricType::COUNTER,
                    [
                        ("gossip", &b.errors),
                        ("http", &p.http_errors),
                        ("feed", &p.feed_errors),
                    ]
                    .iter()
                    .map(|(t, v)| counter(&[("type", t)], load(v)))
                    .collect(),
                ),
            ]);
            let by_type = |pairs: [(&str, &std::sync::atomic::AtomicU64); 6]| {
                pairs
                    .iter()
                    .map(|(t, v)| counter(&[("type", t)], load(v)))
                    .collect()
            };
            out.extend([
                family(
                    "reredis_cluster_messages_sent_total",
                    MetricType::COUNTER,
                    by_type([
                        ("ping", &b.ping_sent),
                        ("pong", &b.pong_sent),
                        ("meet", &b.meet_sent),
                        ("fail", &b.fail_sent),
                        ("update", &b.update_sent),
                        ("publish", &b.publish_sent),
                    ]),
                ),
                family(
                    "reredis_cluster_messages_received_total",
                    MetricType::COUNTER,
                    by_type([
                        ("ping", &b.ping_received),
                        ("pong", &b.pong_received),
                        ("meet", &b.meet_received),
                        ("fail", &b.fail_received),
                        ("update", &b.update_received),
                        ("publish", &b.publish_received),
                    ]),
                ),
                family(
                    "reredis_cluster_publish_dropped_total",
                    MetricType::COUNTER,
                    vec![
                        counter(&[("reason", "queue")], load(&node.pubsub.outbox_dropped)),
                        counter(&[("reason", "behind")], load(&b.publish_dropped_behind)),
                        counter(&[("reason", "failed")], load(&b.publish_dropped_failed)),
                        counter(
                            &[("reason", "too_large")],
                            load(&b.publish_dropped_too_large),
                        ),
                    ],
                ),
                one_counter("reredis_cluster_bus_errors_total", load(&b.errors)),
                one_counter(
                    "reredis_cluster_bus_auth_failures_total",
                    load(&b.auth_failures),
                ),
                one_counter(
                    "reredis_cluster_bus_sent_bytes_total",
                    b.traffic.total(Direction::Sent) as f64,
                ),
                one_counter(
                    "reredis_cluster_bus_received_bytes_total",
                    b.traffic.total(Direction::Received) as f64,
                ),
            ]);
            let m = &c.migrator.stats;
            let (moving, importing) = {
                let st = c.state.lock();
                (st.migrating.len(), st.importing.len())
            };
            let in_out = |sent: &std::sync::atomic::AtomicU64,
                          received: &std::sync::atomic::AtomicU64| {
                vec![
                    counter(&[("direction", "out")], load(sent)),
                    counter(&[("direction", "in")], load(received)),
                ]
            };
            out.extend([
                one_gauge(
                    "reredis_cluster_slots_moving",
                    moving.max(c.migrator.pending()) as f64,
                ),
                one_gauge("reredis_cluster_slots_importing", importing as f64),
                one_counter("reredis_cluster_slots_moved_total", load(&m.slots_moved)),
                family(
                    "reredis_cluster_keys_moved_total",
                    MetricType::COUNTER,
                    in_out(&m.keys_moved, &m.keys_imported),
                ),
                family(
                    "reredis_cluster_bytes_moved_total",
                    MetricType::COUNTER,
                    in_out(&m.bytes_moved, &m.bytes_imported),
                ),
            ]);
        }
        out
    }
}

/// Upper bounds of the latency buckets the command path keeps (bucket i: under 2^i µs); the
/// last one is open and becomes `+Inf`.
fn bucket_bound_seconds(i: usize) -> f64 {
    (1u64 << i) as f64 / 1e6
}

/// Calls, failures and latency histograms of every command that has run since the last
/// CONFIG RESETSTAT (commands never called are left out, as INFO commandstats does).
fn command_families(node: &Node) -> [MetricFamily; 3] {
    let mut calls = Vec::new();
    let mut failures = Vec::new();
    let mut durations = Vec::new();
    for (c, stat) in crate::commands::table()
        .all
        .iter()
        .zip(node.cmd_stats.iter())
    {
        let counts = stat.histogram_counts();
        // The count comes from the buckets read just now, so `+Inf` always equals it even while
        // commands run during the scrape.
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let name = c.fullname.as_str();
        let failed =
            stat.failed_calls.load(Ordering::Relaxed) + stat.rejected_calls.load(Ordering::Relaxed);
        calls.push(counter(&[("cmd", name)], total as f64));
        failures.push(counter(&[("cmd", name)], failed as f64));
        let mut cumulative = 0;
        let buckets = counts[..counts.len() - 1]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                cumulative += n;
                let mut b = proto::Bucket::default();
                b.set_upper_bound(bucket_bound_seconds(i));
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        let mut h = proto::Histogram::default();
        h.set_sample_count(total);
        h.set_sample_sum(stat.usec.load(Ordering::Relaxed) as f64 / 1e6);
        h.set_bucket(buckets);
        let mut m = proto::Metric::from_label(labels(&[("cmd", name)]));
        m.set_histogram(h);
        durations.push(m);
    }
    [
        family("reredis_commands_total", MetricType::COUNTER, calls),
        family(
            "reredis_command_failures_total",
            MetricType::COUNTER,
            failures,
        ),
        family(
            "reredis_command_duration_seconds",
            MetricType::HISTOGRAM,
            durations,
        ),
    ]
}
