//! Differential test of cluster mode: a 3-master `redis-server --cluster-enabled yes` cluster and
//! a 3-node Reredis cluster, both formed the same way (`redis-cli --cluster create`, so slots
//! 0-5460 / 5461-10922 / 10923-16383 on nodes 0 / 1 / 2), get the same commands on the same node
//! index over raw RESP, and the reply bytes must be equal.
//!
//! Node IDs and ports necessarily differ between the two clusters: both replies are normalised
//! first (an ID becomes `<id0>`, the port of node 1 `<port1>`, its bus port `<bus1>`), and nothing
//! else is. A few replies carry values that differ from run to run on either side (CLUSTER NODES
//! ping/pong times, CLUSTER SHARDS replication offsets, the bus message counters of CLUSTER INFO):
//! those values are blanked, their place and syntax still compared.
//!
//! CLUSTER INFO: Reredis documents extra fields (slot mode, draining, slot-move progress), so
//! Redis's field names must appear in our reply in Redis's order (an ordered subsequence), our
//! other fields must be the documented ones, and the values of the state fields must be equal.
//!
//! Left out on purpose: the order of CLUSTER GETKEYSINSLOT's keys (Redis keeps a per-slot key
//! list, newest first; our store has no per-slot order), so those keys are compared as a set.
//! `CLUSTER_DIFF_VERBOSE=1` prints every comparison, equal or not.
//!
//! The phases run in order on the same two clusters: a stable cluster (MOVED, CROSSSLOT,
//! READONLY/READWRITE, key slots, the CLUSTER views in RESP2 and RESP3, bad subcommands), a
//! manual migration of one slot (ASK, ASKING, TRYAGAIN, the `[slot->-id]` brackets), and last
//! the uncovered cluster (CLUSTERDOWN). Every difference is collected and reported at the end.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{NodeProcess, cli, free_port_with_bus, wait};
use common::redis_server::RedisServer;
use common::resp::Conn;

/// Both clusters use it; the test never waits for a failure detection, so it only has to be
/// long enough that a busy machine does not mark live nodes as failing.
const NODE_TIMEOUT: &str = "5000";

// Keys and their slots (CRC16 mod 16384), by the node that owns them.
/// Slot 866, node 0: the slot the migration phase moves.
const ON_0: &str = "hello";
/// Slot 5474, node 1.
const ON_1: &str = "user";
/// Slot 12182, node 2.
const ON_2: &str = "foo";
/// Slot 14687, node 2.
const ON_2_B: &str = "mykey";

// ---------------------------------------------------------------------------------------------
// The two clusters

/// The processes of one cluster, killed (each by its own handle) when dropped, also on panic.
enum Processes {
    Redis {
        _servers: Vec<RedisServer>,
    },
    Reredis {
        nodes: Vec<NodeProcess>,
        _dir: tempfile::TempDir,
    },
}

/// One 3-node cluster, seen by the test: ports, IDs (by node index) and a connection to each node.
struct Side {
    name: &'static str,
    ports: Vec<u16>,
    ids: Vec<String>,
    conns: Vec<Conn>,
    processes: Processes,
}

impl Side {
    async fn redis() -> Side {
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers
                .push(RedisServer::start_cluster(&["--cluster-node-timeout", NODE_TIMEOUT]).await);
        }
        let ports = servers.iter().map(|s| s.port).collect();
        Side::formed(
            "redis-server",
            ports,
            Processes::Redis { _servers: servers },
        )
        .await
    }

    async fn reredis() -> Side {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for i in 0..3 {
            let port = free_port_with_bus(&[Ipv4Addr::LOCALHOST]);
            let data = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&data).expect("data dir");
            let args: Vec<String> = [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--http-port",
                "0",
                "--dir",
                data.to_str().expect("utf-8 path"),
                "--cluster-node-timeout",
                NODE_TIMEOUT,
                // Redis's way: no slots until the operator assigns them.
                "--cluster-auto-assign",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let node = NodeProcess::spawn(&[], &args, &dir.path().join(format!("node{i}.log")));
            assert!(
                wait(Duration::from_secs(10), || cli(
                    "127.0.0.1",
                    port,
                    &["PING"]
                ) == "PONG"),
                "reredis node {i} did not start: {}",
                node.log_text()
            );
            nodes.push(node);
            ports.push(port);
        }
        Side::formed("reredis", ports, Processes::Reredis { nodes, _dir: dir }).await
    }

    /// `redis-cli --cluster create` over the three nodes, then waits until every node sees the
    /// whole cluster and says it is ok.
    async fn formed(name: &'static str, ports: Vec<u16>, processes: Processes) -> Side {
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .arg("--cluster-yes")
            .output()
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("[OK] All 16384 slots covered."),
            "{name}: cluster create failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ready = wait(Duration::from_secs(30), || {
            ports.iter().all(|&p| {
                let info = cli("127.0.0.1", p, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            })
        });
        assert!(
            ready,
            "{name}: the cluster did not become ok: {}",
            cli("127.0.0.1", ports[0], &["CLUSTER", "NODES"])
        );
        let ids = ports
            .iter()
            .map(|&p| cli("127.0.0.1", p, &["CLUSTER", "MYID"]))
            .collect();
        let mut conns = Vec::new();
        for &p in &ports {
            conns.push(Conn::open(("127.0.0.1", p)).await);
        }
        Side {
            name,
            ports,
            ids,
            conns,
            processes,
        }
    }

    /// `args` with `$id0`..`$id2` replaced by this cluster's node IDs.
    fn args(&self, args: &[&str]) -> Vec<Vec<u8>> {
        args.iter()
            .map(|a| match a.strip_prefix("$id") {
                Some(i) => self.ids[i.parse::<usize>().expect("$id<n>")]
                    .as_bytes()
                    .to_vec(),
                None => a.as_bytes().to_vec(),
            })
            .collect()
    }

    async fn call(&mut self, node: usize, args: &[&str]) -> Vec<u8> {
        let args = self.args(args);
        self.conns[node].call(&args).await
    }

    /// New connections to every node (a clean ASKING/READONLY state, or RESP3 after `HELLO 3`).
    async fn reconnect(&mut self, resp3: bool) {
        for i in 0..self.ports.len() {
            self.conns[i] = Conn::open(("127.0.0.1", self.ports[i])).await;
            if resp3 {
                let hello = self.conns[i].cmd(&["HELLO", "3"]).await;
                assert!(hello.starts_with('%'), "{}: HELLO 3: {hello}", self.name);
            }
        }
    }

    fn info(&self, node: usize) -> String {
        cli("127.0.0.1", self.ports[node], &["CLUSTER", "INFO"])
    }

    /// What this side's log says, for a failure message.
    fn logs(&self) -> String {
        match &self.processes {
            Processes::Redis { .. } => String::new(),
            Processes::Reredis { nodes, .. } => nodes.iter().map(|n| n.log_text()).collect(),
        }
    }

    /// Replaces this cluster's IDs and addresses in `text` by names that are the same on both.
    fn names(&self, text: &[u8]) -> Vec<u8> {
        let mut s = String::from_utf8_lossy(text).into_owned();
        for (i, id) in self.ids.iter().enumerate() {
            s = s.replace(id.as_str(), &format!("<id{i}>"));
        }
        for (i, p) in self.ports.iter().enumerate() {
            s = s.replace(&format!("@{}", p + 10_000), &format!("@<bus{i}>"));
            s = s.replace(&format!(":{p}"), &format!(":<port{i}>"));
        }
        s.into_bytes()
    }

    fn port_name(&self, text: &[u8]) -> Option<Vec<u8>> {
        let i = self
            .ports
            .iter()
            .position(|p| p.to_string().as_bytes() == text)?;
        Some(format!("<port{i}>").into_bytes())
    }
}

/// The CLUSTER INFO fields Reredis adds to Redis's (README: slot mode, draining, slot-move
/// progress).
const OUR_INFO_FIELDS: &[&str] = &[
    "cluster_slot_mode",
    "cluster_draining",
    "cluster_slots_migrating",
    "cluster_slots_importing",
    "cluster_slots_move_queue",
    "cluster_slots_moved",
    "cluster_keys_moved",
    "cluster_bytes_moved",
    "cluster_keys_imported",
    "cluster_bytes_imported",
    "cluster_move_batches_failed",
    "cluster_moves_abandoned",
];

/// Redis's bus message types, in the order CLUSTER INFO lists their counters.
const MESSAGE_TYPES: &[&str] = &[
    "ping",
    "pong",
    "meet",
    "fail",
    "publish",
    "auth-req",
    "auth-ack",
    "update",
    "mfstart",
    "module",
    "publishshard",
];

/// Removes the per-type message counters from `fields`, checking that each is non-zero and
/// that they come in Redis's type order right before their total.
fn take_counters_by_type(fields: &mut Vec<(String, String)>) -> Result<(), String> {
    for dir in ["sent", "received"] {
        let total = format!("cluster_stats_messages_{dir}");
        let mut last = None;
        let mut i = 0;
        while i < fields.len() {
            let (k, v) = &fields[i];
            let Some(kind) = k
                .strip_prefix("cluster_stats_messages_")
                .and_then(|k| k.strip_suffix(&format!("_{dir}")))
            else {
                i += 1;
                continue;
            };
            let Some(pos) = MESSAGE_TYPES.iter().position(|t| *t == kind) else {
                return Err(format!("unknown message type in {k}"));
            };
            if last.is_some_and(|l| l >= pos) {
                return Err(format!("{k} out of Redis's type order"));
            }
            if v.parse::<u64>().map_or(true, |n| n == 0) {
                return Err(format!(
                    "{k}:{v} (Redis lists a type only once it counts one)"
                ));
            }
            if fields
                .get(i + 1)
                .is_some_and(|(next, _)| !next.starts_with("cluster_stats_messages_"))
            {
                return Err(format!("{k} is not followed by {total}"));
            }
            last = Some(pos);
            fields.remove(i);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Replies as trees, to normalise them in place and print them

/// One RESP2/RESP3 frame. Line frames keep their text, bulk frames their data (None for a null
/// bulk), aggregates their items (None for a null array); `kind` is the type byte.
#[derive(Clone, Debug, PartialEq)]
enum Frame {
    Line(u8, Vec<u8>),
    Bulk(u8, Option<Vec<u8>>),
    Agg(u8, Option<Vec<Frame>>),
}

fn parse(b: &[u8]) -> Frame {
    let mut pos = 0;
    let f = parse_at(b, &mut pos);
    assert_eq!(pos, b.len(), "one frame: {}", b.escape_ascii());
    f
}

fn parse_at(b: &[u8], pos: &mut usize) -> Frame {
    let kind = b[*pos];
    let end = *pos
        + b[*pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("CRLF");
    let head = &b[*pos + 1..end];
    *pos = end + 2;
    let len = || -> i64 {
        std::str::from_utf8(head)
            .ok()
            .and_then(|h| h.parse().ok())
            .expect("length")
    };
    match kind {
        b'$' | b'=' | b'!' => {
            let n = len();
            if n < 0 {
                return Frame::Bulk(kind, None);
            }
            let data = b[*pos..*pos + n as usize].to_vec();
            *pos += n as usize + 2;
            Frame::Bulk(kind, Some(data))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = len();
            if n < 0 {
                return Frame::Agg(kind, None);
            }
            let count = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let items = (0..count).map(|_| parse_at(b, pos)).collect();
            Frame::Agg(kind, Some(items))
        }
        _ => Frame::Line(kind, head.to_vec()),
    }
}

fn encode(f: &Frame, out: &mut Vec<u8>) {
    match f {
        Frame::Line(k, text) => {
            out.push(*k);
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Bulk(k, None) | Frame::Agg(k, None) => {
            out.push(*k);
            out.extend_from_slice(b"-1\r\n");
        }
        Frame::Bulk(k, Some(data)) => {
            out.push(*k);
            out.extend_from_slice(format!("{}\r\n", data.len()).as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Agg(k, Some(items)) => {
            let n = if matches!(k, b'%' | b'|') {
                items.len() / 2
            } else {
                items.len()
            };
            out.push(*k);
            out.extend_from_slice(format!("{n}\r\n").as_bytes());
            for i in items {
                encode(i, out);
            }
        }
    }
}

fn to_bytes(f: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode(f, &mut out);
    out
}

/// The text of a bulk or verbatim reply (without the verbatim `txt:` prefix).
fn text_of(f: &Frame) -> String {
    match f {
        Frame::Bulk(b'=', Some(d)) => String::from_utf8_lossy(&d[4..]).into_owned(),
        Frame::Bulk(_, Some(d)) => String::from_utf8_lossy(d).into_owned(),
        other => panic!("not a text reply: {}", to_bytes(other).escape_ascii()),
    }
}

/// `f` with its text replaced, keeping its frame kind (and verbatim format).
fn with_text(f: &Frame, text: &str) -> Frame {
    match f {
        Frame::Bulk(b'=', Some(d)) => {
            let mut data = d[..4].to_vec();
            data.extend_from_slice(text.as_bytes());
            Frame::Bulk(b'=', Some(data))
        }
        Frame::Bulk(k, Some(_)) => Frame::Bulk(*k, Some(text.as_bytes().to_vec())),
        other => other.clone(),
    }
}

/// Blanks the value after a map key (RESP3 map or RESP2 flat array) named `key`.
fn blank_values_of(f: &mut Frame, key: &[u8]) {
    if let Frame::Agg(_, Some(items)) = f {
        for i in 1..items.len() {
            if matches!(&items[i - 1], Frame::Bulk(_, Some(k)) if k == key) {
                items[i] = Frame::Line(b'?', b"<blank>".to_vec());
            }
        }
        for item in items.iter_mut() {
            blank_values_of(item, key);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing

struct Pair {
    redis: Side,
    ours: Side,
    differences: Vec<String>,
    compared: usize,
}

impl Pair {
    /// Node IDs and addresses named the same on both sides: in text everywhere, and a port
    /// integer where one stands (after an IP in CLUSTER SLOTS, after `port` in CLUSTER SHARDS).
    fn normalise(side: &Side, f: &Frame) -> Frame {
        match f {
            Frame::Line(k, t) => Frame::Line(*k, side.names(t)),
            Frame::Bulk(k, d) => Frame::Bulk(*k, d.as_ref().map(|d| side.names(d))),
            Frame::Agg(k, None) => Frame::Agg(*k, None),
            Frame::Agg(k, Some(items)) => {
                let mut out: Vec<Frame> = Vec::new();
                for item in items {
                    let port_here = match (out.last(), item) {
                        (Some(Frame::Bulk(_, Some(prev))), Frame::Line(b':', n))
                            if prev == b"127.0.0.1" || prev == b"port" =>
                        {
                            side.port_name(n)
                        }
                        _ => None,
                    };
                    out.push(match port_here {
                        Some(name) => Frame::Line(b':', name),
                        None => Pair::normalise(side, item),
                    });
                }
                Frame::Agg(*k, Some(out))
            }
        }
    }

    /// Sends `args` to node `node` of both clusters and returns both replies, normalised.
    async fn both(&mut self, node: usize, args: &[&str]) -> (Frame, Frame) {
        let r = self.redis.call(node, args).await;
        let o = self.ours.call(node, args).await;
        (
            Pair::normalise(&self.redis, &parse(&r)),
            Pair::normalise(&self.ours, &parse(&o)),
        )
    }

    fn record(&mut self, what: &str, redis: &Frame, ours: &Frame) {
        self.compared += 1;
        if std::env::var_os("CLUSTER_DIFF_VERBOSE").is_some() {
            eprintln!(
                "{what}\n    redis-server: {}\n    reredis:      {}",
                to_bytes(redis).escape_ascii(),
                to_bytes(ours).escape_ascii()
            );
        }
        if redis != ours {
            self.differences.push(format!(
                "{what}\n    redis-server: {}\n    reredis:      {}",
                to_bytes(redis).escape_ascii(),
                to_bytes(ours).escape_ascii()
            ));
        }
    }

    /// The same command on node `node` of both clusters: the normalised replies must be equal,
    /// and Redis's must start with `expect` (so the test cannot pass on two equal mistakes).
    async fn same(&mut self, node: usize, args: &[&str], expect: &str) -> Frame {
        let (r, o) = self.both(node, args).await;
        let rb = to_bytes(&r);
        assert!(
            rb.starts_with(expect.as_bytes()),
            "the test's premise: redis-server answers {args:?} on node {node} with {expect:?}..., got {}",
            rb.escape_ascii()
        );
        self.record(&format!("node {node}: {}", args.join(" ")), &r, &o);
        r
    }

    /// CLUSTER NODES: lines sorted by node, the ping/pong times blanked (numbers on both).
    async fn cluster_nodes(&mut self, node: usize, label: &str) {
        let (r, o) = self.both(node, &["CLUSTER", "NODES"]).await;
        let shape = |f: &Frame| -> Frame {
            let text = text_of(f);
            let mut lines: Vec<String> = text
                .lines()
                .map(|l| {
                    let mut fields: Vec<String> = l.split(' ').map(str::to_string).collect();
                    for t in fields.iter_mut().skip(4).take(2) {
                        if t.parse::<u64>().is_ok() {
                            *t = "<ms>".into();
                        }
                    }
                    fields.join(" ")
                })
                .collect();
            lines.sort();
            let ends_with_newline = text.ends_with('\n');
            let mut joined = lines.join("\n");
            if ends_with_newline {
                joined.push('\n');
            }
            with_text(f, &joined)
        };
        let (r, o) = (shape(&r), shape(&o));
        self.record(&format!("node {node}: CLUSTER NODES ({label})"), &r, &o);
    }

    /// CLUSTER INFO: the frame kind and line syntax are compared whole; Redis's field names
    /// must appear in ours in the same order, and ours may add only the documented
    /// [`OUR_INFO_FIELDS`]; the values of the state fields must be equal.
    ///
    /// The bus message counters by type (`cluster_stats_messages_ping_sent`...) are listed, as
    /// in Redis, only once such a message went out (came in), and which ones have depends on
    /// timing (gossip rounds, UPDATE messages): each side's must be non-zero and in Redis's
    /// type order; their values, like the totals', are blanked.
    async fn cluster_info(&mut self, node: usize, label: &str) {
        let (r, o) = self.both(node, &["CLUSTER", "INFO"]).await;
        let fields = |f: &Frame| -> Vec<(String, String)> {
            text_of(f)
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once(':').unwrap_or((l, "<no colon>"));
                    (k.to_string(), v.to_string())
                })
                .collect()
        };
        let (mut rf, mut of) = (fields(&r), fields(&o));
        let what = format!("node {node}: CLUSTER INFO ({label})");
        for (side, fields) in [("redis-server", &mut rf), ("reredis", &mut of)] {
            if let Err(e) = take_counters_by_type(fields) {
                self.differences
                    .push(format!("{what}\n    {side}'s message counters: {e}"));
            }
        }
        let mut at = 0;
        let mut kept = Vec::new();
        for (k, v) in &rf {
            match of[at..].iter().position(|(ok, _)| ok == k) {
                Some(i) => {
                    for (extra, _) in &of[at..at + i] {
                        if !OUR_INFO_FIELDS.contains(&extra.as_str()) {
                            kept.push((format!("<undocumented: {extra}>"), String::new()));
                        }
                    }
                    at += i + 1;
                    kept.push(of[at - 1].clone());
                }
                None => kept.push((format!("<missing or out of order: {k}>"), v.clone())),
            }
        }
        for (extra, _) in &of[at..] {
            if !OUR_INFO_FIELDS.contains(&extra.as_str()) {
                kept.push((format!("<undocumented: {extra}>"), String::new()));
            }
        }
        let blank = |k: &str| k.starts_with("cluster_stats_messages_");
        let shape = |f: &Frame, fields: &[(String, String)]| -> Frame {
            let text: String = fields
                .iter()
                .map(|(k, v)| {
                    let v = if blank(k) && v.parse::<u64>().is_ok() {
                        "<n>"
                    } else {
                        v
                    };
                    format!("{k}:{v}\r\n")
                })
                .collect();
            // The text is rebuilt from fields: the original must have ended each line in CRLF.
            let raw = text_of(f);
            let crlf = raw.ends_with("\r\n") && !raw.replace("\r\n", "").contains('\n');
            with_text(
                f,
                &format!("{text}{}", if crlf { "" } else { "<not CRLF lines>" }),
            )
        };
        let (r, o) = (shape(&r, &rf), shape(&o, &kept));
        self.record(
            &format!("{what}; Redis's fields, as a subsequence of ours"),
            &r,
            &o,
        );
    }

    /// CLUSTER SHARDS: shards sorted (Redis lists them in hash-table order), replication
    /// offsets blanked.
    async fn cluster_shards(&mut self, node: usize, label: &str) {
        let (r, o) = self.both(node, &["CLUSTER", "SHARDS"]).await;
        let shape = |f: &Frame| -> Frame {
            let mut f = f.clone();
            blank_values_of(&mut f, b"replication-offset");
            if let Frame::Agg(_, Some(shards)) = &mut f {
                shards.sort_by_key(to_bytes);
            }
            f
        };
        let (r, o) = (shape(&r), shape(&o));
        self.record(&format!("node {node}: CLUSTER SHARDS ({label})"), &r, &o);
    }

    async fn views(&mut self, label: &str) {
        for node in 0..3 {
            self.cluster_nodes(node, label).await;
            self.cluster_info(node, label).await;
            self.same(node, &["CLUSTER", "SLOTS"], "").await;
            self.cluster_shards(node, label).await;
        }
    }

    async fn reconnect(&mut self, resp3: bool) {
        self.redis.reconnect(resp3).await;
        self.ours.reconnect(resp3).await;
    }

    /// Waits until every node of both clusters reports `state` in CLUSTER INFO.
    fn wait_state(&self, state: &str) {
        let want = format!("cluster_state:{state}");
        for side in [&self.redis, &self.ours] {
            let reached = wait(Duration::from_secs(20), || {
                (0..3).all(|i| side.info(i).contains(&want))
            });
            assert!(
                reached,
                "{}: not {want}: {:?}\n{}",
                side.name,
                (0..3).map(|i| side.info(i)).collect::<Vec<_>>(),
                side.logs()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The phases

/// MOVED, CROSSSLOT, MULTI with a redirection, READONLY/READWRITE, ASKING outside a migration.
async fn redirections(p: &mut Pair) {
    p.same(0, &["GET", ON_2], "-MOVED 12182 127.0.0.1:<port2>")
        .await;
    p.same(0, &["SET", ON_1, "v"], "-MOVED 5474 127.0.0.1:<port1>")
        .await;
    p.same(1, &["GET", ON_0], "-MOVED 866 127.0.0.1:<port0>")
        .await;
    p.same(2, &["EXISTS", ON_0, "{hello}x"], "-MOVED 866").await;
    p.same(0, &["GET", ON_0], "$-1").await;
    p.same(0, &["SET", ON_0, "v"], "+OK").await;
    // Keys of different slots: CROSSSLOT, whether or not this node serves them.
    p.same(0, &["MSET", ON_0, "1", ON_2, "2"], "-CROSSSLOT")
        .await;
    p.same(0, &["MSET", ON_0, "1", "b", "2"], "-CROSSSLOT")
        .await;
    p.same(1, &["DEL", ON_0, ON_2], "-CROSSSLOT").await;
    p.same(2, &["MGET", ON_2, ON_2_B], "-CROSSSLOT").await;
    p.same(0, &["MSET", "{foo}a", "1", "{foo}b", "2"], "-MOVED 12182")
        .await;
    p.same(2, &["MSET", "{foo}a", "1", "{foo}b", "2"], "+OK")
        .await;
    p.same(2, &["DEL", "{foo}a", "{foo}b"], ":2").await;
    // A keyless command is served anywhere.
    p.same(1, &["PING"], "+PONG").await;
    // A redirection inside MULTI is an error at queue time; EXEC then aborts.
    p.same(0, &["MULTI"], "+OK").await;
    p.same(0, &["SET", ON_2, "1"], "-MOVED 12182").await;
    p.same(0, &["SET", ON_0, "1"], "+QUEUED").await;
    p.same(0, &["EXEC"], "-EXECABORT").await;
    // READONLY on a master changes nothing for keys of another master.
    p.same(0, &["READONLY"], "+OK").await;
    p.same(0, &["GET", ON_1], "-MOVED 5474").await;
    p.same(0, &["READWRITE"], "+OK").await;
    p.same(0, &["READONLY", "x"], "-ERR wrong number").await;
    p.same(0, &["READWRITE", "x"], "-ERR wrong number").await;
    // ASKING for a slot that is not importing: the usual MOVED.
    p.same(0, &["ASKING"], "+OK").await;
    p.same(0, &["GET", ON_1], "-MOVED 5474").await;
    p.same(0, &["ASKING", "x"], "-ERR wrong number").await;
    p.same(0, &["DEL", ON_0], ":1").await;
    // Commands that hold every shard are routed by their keys too.
    p.same(0, &["SORT_RO", ON_2], "-MOVED 12182").await;
    p.same(0, &["MULTI"], "+OK").await;
    p.same(0, &["SET", ON_0, "1"], "+QUEUED").await;
    p.same(0, &["SORT", ON_0, "STORE", ON_2], "-CROSSSLOT")
        .await;
    p.same(0, &["EXEC"], "-EXECABORT").await;
    p.same(
        0,
        &["CLUSTER", "DELSLOTSRANGE", "1", "2", "3"],
        "-ERR wrong number",
    )
    .await;
    // The endpoint clients are sent to can be changed at run time.
    let set_endpoint = |t| ["CONFIG", "SET", "cluster-preferred-endpoint-type", t];
    p.same(2, &set_endpoint("unknown-endpoint"), "+OK").await;
    p.same(2, &["GET", ON_0], "-MOVED 866 :<port0>").await;
    p.same(2, &set_endpoint("ip"), "+OK").await;
    p.same(2, &["GET", ON_0], "-MOVED 866 127.0.0.1:<port0>")
        .await;
}

/// Scripts in a cluster: a compatible-mode script (no shebang) or one flagged
/// `allow-cross-slot-keys` may touch keys of several local slots, a `#!lua` one may not;
/// `no-cluster` refuses to run; a key served elsewhere is refused; whole-keyspace commands
/// called by a script with declared keys see the whole keyspace of the node.
async fn scripts(p: &mut Pair) {
    let two_slots = "redis.call('set','foo','1'); redis.call('set','mykey','2'); return 1";
    p.same(2, &["EVAL", two_slots, "0"], ":1").await;
    let shebang = format!("#!lua\n{two_slots}");
    p.same(
        2,
        &["EVAL", &shebang, "0"],
        "-ERR Script attempted to access keys that do not hash to the same slot",
    )
    .await;
    let allowed = format!("#!lua flags=allow-cross-slot-keys\n{two_slots}");
    p.same(2, &["EVAL", &allowed, "0"], ":1").await;
    p.same(
        2,
        &["EVAL", "#!lua flags=no-cluster\nreturn 1", "0"],
        "-ERR Can not run script on cluster",
    )
    .await;
    p.same(
        0,
        &["EVAL", "return redis.call('get','foo')", "0"],
        "-ERR Script attempted to access a non local key in a cluster node",
    )
    .await;
    p.same(2, &["DEL", "foo"], ":1").await;
    p.same(2, &["DEL", "mykey"], ":1").await;
    // Keys of node 0 in many slots (so in many of our shards).
    let keys: Vec<String> = (0..400)
        .map(|i| format!("k{i}"))
        .filter(|k| reredis::cluster::slots::key_hash_slot(k.as_bytes()) <= 5460)
        .take(60)
        .collect();
    for k in &keys {
        p.same(0, &["SET", k, "v"], "+OK").await;
    }
    p.same(
        0,
        &["EVAL", "return redis.call('dbsize')", "1", ON_0],
        ":60",
    )
    .await;
    p.same(
        0,
        &["EVAL", "return #redis.call('keys','k*')", "1", ON_0],
        ":60",
    )
    .await;
    p.same(
        0,
        &[
            "EVAL",
            "redis.call('flushall') return redis.call('dbsize')",
            "1",
            ON_0,
        ],
        ":0",
    )
    .await;
    p.same(0, &["DBSIZE"], ":0").await;
}

/// CLUSTER KEYSLOT / COUNTKEYSINSLOT / GETKEYSINSLOT values.
async fn key_slots(p: &mut Pair) {
    for key in ["hello", "{user}1", "a{}b", "{}x", "{{x}}", "\u{0}\r\n", ""] {
        p.same(0, &["CLUSTER", "KEYSLOT", key], ":").await;
    }
    for i in 1..=4 {
        p.same(1, &["SET", &format!("{{user}}{i}"), "v"], "+OK")
            .await;
    }
    p.same(1, &["CLUSTER", "COUNTKEYSINSLOT", "5474"], ":4")
        .await;
    p.same(0, &["CLUSTER", "COUNTKEYSINSLOT", "5474"], ":0")
        .await;
    p.same(1, &["CLUSTER", "COUNTKEYSINSLOT", "0"], ":0").await;
    p.same(1, &["CLUSTER", "GETKEYSINSLOT", "5474", "0"], "*0")
        .await;
    p.same(1, &["CLUSTER", "GETKEYSINSLOT", "100", "10"], "*0")
        .await;
    // The keys of a slot. Redis lists them newest first (its per-slot key list); our store has
    // no per-slot order, so the keys are compared as a set, and for a count below the number of
    // keys only how many come back.
    let sorted = |f: &Frame| -> Frame {
        let mut f = f.clone();
        if let Frame::Agg(_, Some(keys)) = &mut f {
            keys.sort_by_key(to_bytes);
        }
        f
    };
    let (r, o) = p.both(1, &["CLUSTER", "GETKEYSINSLOT", "5474", "10"]).await;
    assert!(
        to_bytes(&r).starts_with(b"*4"),
        "{}",
        to_bytes(&r).escape_ascii()
    );
    p.record(
        "node 1: CLUSTER GETKEYSINSLOT 5474 10 (as a set)",
        &sorted(&r),
        &sorted(&o),
    );
    let (r, o) = p.both(1, &["CLUSTER", "GETKEYSINSLOT", "5474", "2"]).await;
    let count = |f: &Frame| match f {
        Frame::Agg(b'*', Some(keys)) => Frame::Line(b'*', keys.len().to_string().into_bytes()),
        other => other.clone(),
    };
    p.record(
        "node 1: CLUSTER GETKEYSINSLOT 5474 2 (how many)",
        &count(&r),
        &count(&o),
    );
    p.same(
        1,
        &["DEL", "{user}1", "{user}2", "{user}3", "{user}4"],
        ":4",
    )
    .await;
}

/// Errors for bad CLUSTER subcommands and arguments.
async fn bad_arguments(p: &mut Pair) {
    let cases: &[&[&str]] = &[
        &["CLUSTER"],
        &["CLUSTER", "NOSUCH"],
        &["CLUSTER", "NOSUCH", "a", "b"],
        &["CLUSTER", "KEYSLOT"],
        &["CLUSTER", "KEYSLOT", "a", "b"],
        &["CLUSTER", "INFO", "x"],
        &["CLUSTER", "NODES", "x"],
        &["CLUSTER", "SLOTS", "x"],
        &["CLUSTER", "SHARDS", "x"],
        &["CLUSTER", "MYID", "x"],
        &["CLUSTER", "COUNTKEYSINSLOT"],
        &["CLUSTER", "COUNTKEYSINSLOT", "x"],
        &["CLUSTER", "COUNTKEYSINSLOT", "-1"],
        &["CLUSTER", "COUNTKEYSINSLOT", "16384"],
        &["CLUSTER", "GETKEYSINSLOT", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "x", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "x"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "-1"],
        &["CLUSTER", "GETKEYSINSLOT", "16384", "1"],
        &["CLUSTER", "ADDSLOTS"],
        &["CLUSTER", "ADDSLOTS", "0"],
        &["CLUSTER", "ADDSLOTS", "6000"],
        &["CLUSTER", "ADDSLOTS", "x"],
        &["CLUSTER", "ADDSLOTS", "16384"],
        &["CLUSTER", "ADDSLOTS", "-1"],
        &["CLUSTER", "ADDSLOTSRANGE", "1"],
        &["CLUSTER", "ADDSLOTSRANGE", "5", "1"],
        &["CLUSTER", "ADDSLOTSRANGE", "0", "10"],
        &["CLUSTER", "ADDSLOTSRANGE", "0", "x"],
        &["CLUSTER", "ADDSLOTSRANGE", "0", "1", "2"],
        &["CLUSTER", "DELSLOTS", "x"],
        &["CLUSTER", "DELSLOTSRANGE", "5", "1"],
        &["CLUSTER", "SETSLOT", "0"],
        &["CLUSTER", "SETSLOT", "0", "NODE"],
        &["CLUSTER", "SETSLOT", "0", "BOGUS"],
        &["CLUSTER", "SETSLOT", "0", "BOGUS", "x"],
        &["CLUSTER", "SETSLOT", "x", "STABLE"],
        &["CLUSTER", "SETSLOT", "16384", "STABLE"],
        &[
            "CLUSTER",
            "SETSLOT",
            "0",
            "NODE",
            "0123456789012345678901234567890123456789",
        ],
        &["CLUSTER", "SETSLOT", "0", "NODE", "nosuchnode"],
        &["CLUSTER", "SETSLOT", "0", "MIGRATING", "nosuchnode"],
        &["CLUSTER", "SETSLOT", "0", "IMPORTING", "nosuchnode"],
        &["CLUSTER", "SETSLOT", "6000", "MIGRATING", "$id2"],
        &["CLUSTER", "SETSLOT", "0", "IMPORTING", "$id0"],
        &["CLUSTER", "FORGET"],
        &["CLUSTER", "FORGET", "$id0"],
        &["CLUSTER", "FORGET", "nosuchnode"],
        &["CLUSTER", "MEET"],
        &["CLUSTER", "MEET", "127.0.0.1"],
        &["CLUSTER", "MEET", "127.0.0.1", "x"],
        &["CLUSTER", "MEET", "127.0.0.1", "-1"],
        &["CLUSTER", "MEET", "127.0.0.1", "70000"],
        &["CLUSTER", "MEET", "not-an-ip", "7000"],
        &["CLUSTER", "MEET", "127.0.0.1", "7000", "x"],
        &["CLUSTER", "MEET", "127.0.0.1", "7000", "7001", "x"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "5"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "-1"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "x"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "nosuchnode"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "$id1"],
        &["CLUSTER", "REPLICAS", "nosuchnode"],
        &["CLUSTER", "REPLICAS", "$id1"],
        &["CLUSTER", "SLAVES", "$id1"],
        &["CLUSTER", "FLUSHSLOTS", "x"],
        &["CLUSTER", "BUMPEPOCH", "x"],
        &["CLUSTER", "SAVECONFIG", "x"],
    ];
    for args in cases {
        p.same(0, args, "").await;
    }
    // With a key on node 0 (so that a wrong answer cannot reset the node): RESET and FLUSHSLOTS
    // refuse a node that holds keys.
    p.same(0, &["SET", ON_0, "v"], "+OK").await;
    p.same(0, &["CLUSTER", "RESET", "BOGUS"], "-ERR").await;
    p.same(0, &["CLUSTER", "RESET", "HARD", "x"], "-ERR").await;
    p.same(0, &["CLUSTER", "RESET"], "-ERR").await;
    p.same(0, &["CLUSTER", "FLUSHSLOTS"], "-ERR").await;
    // A cluster has one database: MOVE, SWAPDB and COPY to another db are refused.
    p.same(0, &["MOVE", ON_0, "1"], "-ERR").await;
    p.same(0, &["MOVE", ON_0, "x"], "-ERR").await;
    p.same(0, &["SWAPDB", "0", "1"], "-ERR").await;
    p.same(0, &["SWAPDB", "x", "1"], "-ERR").await;
    p.same(0, &["COPY", ON_0, "{hello}copy", "DB", "1"], "-ERR")
        .await;
    p.same(0, &["COPY", ON_0, "{hello}copy", "DB", "x"], "-ERR")
        .await;
    p.same(0, &["COPY", ON_0, "{hello}copy", "DB", "99"], "-ERR")
        .await;
    p.same(0, &["COPY", ON_0, "{hello}copy", "DB", "0"], ":1")
        .await;
    p.same(0, &["DEL", ON_0, "{hello}copy"], ":2").await;
}

/// EXEC is routed by the keys of the whole transaction (Redis's getNodeByQuery): keys of two
/// slots, even both served here, get CROSSSLOT and discard it; a command redirected while
/// queued fails it (EXECABORT).
async fn transactions(p: &mut Pair) {
    p.same(0, &["MULTI"], "+OK").await;
    p.same(0, &["SET", ON_0, "1"], "+QUEUED").await;
    // `bar`: slot 5061, also node 0's.
    p.same(0, &["SET", "bar", "2"], "+QUEUED").await;
    p.same(0, &["EXEC"], "-CROSSSLOT").await;
    p.same(0, &["EXEC"], "-ERR EXEC without MULTI").await;
    p.same(0, &["GET", ON_0], "$-1").await;
    p.same(0, &["MULTI"], "+OK").await;
    p.same(0, &["SET", ON_0, "1"], "+QUEUED").await;
    p.same(0, &["INCR", "{hello}n"], "+QUEUED").await;
    p.same(0, &["PING"], "+QUEUED").await;
    p.same(0, &["EXEC"], "*3").await;
    p.same(0, &["MULTI"], "+OK").await;
    p.same(0, &["GET", ON_2], "-MOVED").await;
    p.same(0, &["EXEC"], "-EXECABORT").await;
    p.same(0, &["DEL", ON_0, "{hello}n"], ":2").await;
}

/// Slot 866 (key `hello`) from node 0 to node 1, by hand: ASK, ASKING, TRYAGAIN.
async fn migration(p: &mut Pair) {
    p.same(0, &["SET", "{hello}here", "v"], "+OK").await;
    p.same(
        1,
        &["CLUSTER", "SETSLOT", "866", "IMPORTING", "$id0"],
        "+OK",
    )
    .await;
    p.same(
        0,
        &["CLUSTER", "SETSLOT", "866", "MIGRATING", "$id1"],
        "+OK",
    )
    .await;
    // The source serves the keys it still has and sends the others on with ASK.
    p.same(0, &["GET", "{hello}here"], "$1").await;
    p.same(0, &["GET", ON_0], "-ASK 866 127.0.0.1:<port1>")
        .await;
    p.same(0, &["SET", ON_0, "v"], "-ASK 866 127.0.0.1:<port1>")
        .await;
    p.same(0, &["DEL", ON_0], "-ASK 866").await;
    p.same(0, &["MGET", "{hello}here", "{hello}gone"], "-TRYAGAIN")
        .await;
    p.same(0, &["MGET", "{hello}gone", "{hello}gone2"], "-ASK 866")
        .await;
    p.same(0, &["MGET", "{hello}here", ON_2], "-CROSSSLOT")
        .await;
    // A node that takes no part in the move still sends clients to the owner.
    p.same(2, &["GET", ON_0], "-MOVED 866 127.0.0.1:<port0>")
        .await;
    // The target: MOVED without ASKING, served after ASKING (one command only).
    p.same(1, &["GET", ON_0], "-MOVED 866 127.0.0.1:<port0>")
        .await;
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["GET", ON_0], "$-1").await;
    p.same(1, &["GET", ON_0], "-MOVED 866").await;
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["MGET", "{hello}a", "{hello}b"], "-TRYAGAIN")
        .await;
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["SET", "{hello}moved", "v"], "+OK").await;
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["GET", "{hello}moved"], "$1").await;
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["MGET", "{hello}moved", "{hello}b"], "-TRYAGAIN")
        .await;
    p.same(1, &["CLUSTER", "COUNTKEYSINSLOT", "866"], ":1")
        .await;
    // A script's calls are routed as the caller's own commands (scriptVerifyClusterState): a
    // key the source no longer has is not local there, and the target serves a script's
    // calls under the caller's ASKING only.
    let non_local = "-ERR Script attempted to access a non local key in a cluster node";
    p.same(
        0,
        &["EVAL", "return redis.call('GET', '{hello}here')", "0"],
        "$1",
    )
    .await;
    p.same(
        0,
        &["EVAL", "return redis.call('GET', '{hello}gone')", "0"],
        non_local,
    )
    .await;
    p.same(
        0,
        &["EVAL", "return redis.call('SET', '{hello}gone', 'v')", "0"],
        non_local,
    )
    .await;
    p.same(
        0,
        &[
            "EVAL",
            "return redis.call('GET', KEYS[1])",
            "1",
            "{hello}gone",
        ],
        "-ASK 866",
    )
    .await;
    p.same(
        1,
        &["EVAL", "return redis.call('GET', '{hello}moved')", "0"],
        non_local,
    )
    .await;
    // The script's own ASKING does not count: its calls are routed with the caller's.
    let own_asking = "redis.call('ASKING') return redis.call('GET', '{hello}moved')";
    p.same(1, &["EVAL", own_asking, "0"], non_local).await;
    p.same(1, &["ASKING"], "+OK").await;
    let set = "return redis.call('SET', KEYS[1], 'by-script')";
    p.same(1, &["EVAL", set, "1", "{hello}scripted"], "+OK")
        .await;
    p.same(1, &["ASKING"], "+OK").await;
    // (A key missing here next to one that is here: TRYAGAIN inside, so not local.)
    let del_two = "return redis.call('DEL', KEYS[1], '{hello}moved2')";
    p.same(1, &["EVAL", del_two, "1", "{hello}scripted"], non_local)
        .await;
    p.same(1, &["ASKING"], "+OK").await;
    let del = "return redis.call('DEL', KEYS[1])";
    p.same(1, &["EVAL", del, "1", "{hello}scripted"], ":1")
        .await;
    // One key named twice is one key; ASKING holds for a whole transaction.
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["MGET", "{hello}gone", "{hello}gone"], "*2")
        .await;
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["MULTI"], "+OK").await;
    p.same(1, &["GET", "{hello}moved"], "+QUEUED").await;
    p.same(1, &["GET", "{hello}gone"], "+QUEUED").await;
    p.same(1, &["EXEC"], "-TRYAGAIN").await;
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["MULTI"], "+OK").await;
    p.same(1, &["GET", "{hello}moved"], "+QUEUED").await;
    p.same(1, &["EXEC"], "*1").await;
    p.same(1, &["GET", "{hello}moved"], "-MOVED 866").await;
    // A transaction that ends without running (DISCARD, or EXEC with nothing keyed queued)
    // uses the ASKING up too.
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["MULTI"], "+OK").await;
    p.same(1, &["GET", "{hello}moved"], "+QUEUED").await;
    p.same(1, &["DISCARD"], "+OK").await;
    p.same(1, &["GET", "{hello}moved"], "-MOVED 866").await;
    p.same(1, &["ASKING"], "+OK").await;
    p.same(1, &["MULTI"], "+OK").await;
    p.same(1, &["PING"], "+QUEUED").await;
    p.same(1, &["EXEC"], "*1").await;
    p.same(1, &["GET", "{hello}moved"], "-MOVED 866").await;
    // Redis's MIGRATING/IMPORTING checks on slots in this state.
    p.same(
        1,
        &["CLUSTER", "SETSLOT", "866", "MIGRATING", "$id2"],
        "-ERR",
    )
    .await;
    p.same(
        0,
        &["CLUSTER", "SETSLOT", "866", "IMPORTING", "$id2"],
        "-ERR",
    )
    .await;
    p.same(0, &["CLUSTER", "SETSLOT", "866", "NODE", "$id1"], "-ERR")
        .await;
    // The importing node assigning the slot to its owner keeps importing it.
    p.same(1, &["CLUSTER", "SETSLOT", "866", "NODE", "$id0"], "+OK")
        .await;
    p.views("slot 866 migrating from node 0 to node 1").await;
    // Back to stable; the key on the target goes.
    p.same(0, &["CLUSTER", "SETSLOT", "866", "STABLE"], "+OK")
        .await;
    p.same(1, &["CLUSTER", "SETSLOT", "866", "STABLE"], "+OK")
        .await;
    p.same(0, &["DEL", "{hello}here"], ":1").await;
    p.same(1, &["CLUSTER", "GETKEYSINSLOT", "866", "10"], "*1")
        .await;
    p.cluster_nodes(0, "after SETSLOT STABLE").await;
    p.cluster_nodes(1, "after SETSLOT STABLE").await;
}

/// Node 2's slots unassigned on every node: the cluster fails; CLUSTERDOWN for every key.
async fn uncovered(p: &mut Pair) {
    // The owner first: a node that dropped the slots while their owner still claims them takes
    // them back from its next ping (Redis does too), which a loaded machine has time for.
    for node in [2, 1, 0] {
        p.same(node, &["CLUSTER", "DELSLOTSRANGE", "10923", "16383"], "+OK")
            .await;
    }
    p.wait_state("fail");
    p.reconnect(false).await;
    p.same(0, &["GET", ON_2], "-CLUSTERDOWN Hash slot not served")
        .await;
    p.same(0, &["GET", ON_0], "-CLUSTERDOWN The cluster is down")
        .await;
    p.same(1, &["GET", ON_0], "-CLUSTERDOWN The cluster is down")
        .await;
    p.same(
        2,
        &["SET", ON_2_B, "v"],
        "-CLUSTERDOWN Hash slot not served",
    )
    .await;
    p.same(0, &["MSET", ON_0, "1", ON_2, "2"], "-CROSSSLOT")
        .await;
    p.same(0, &["PING"], "+PONG").await;
    p.same(0, &["CLUSTER", "KEYSLOT", ON_2], ":12182").await;
    p.same(
        2,
        &["CLUSTER", "DELSLOTS", "12182"],
        "-ERR Slot 12182 is already unassigned",
    )
    .await;
    p.same(2, &["CLUSTER", "DELSLOTSRANGE", "16000", "16383"], "-ERR")
        .await;
    p.same(
        0,
        &["CLUSTER", "ADDSLOTS", "0"],
        "-ERR Slot 0 is already busy",
    )
    .await;
    p.views("slots 10923-16383 unassigned").await;
}

#[tokio::test]
async fn cluster_replies_match_redis() {
    let started = Instant::now();
    let redis = Side::redis().await;
    let ours = Side::reredis().await;
    let mut p = Pair {
        redis,
        ours,
        differences: Vec::new(),
        compared: 0,
    };
    eprintln!("both clusters formed in {:?}", started.elapsed());

    redirections(&mut p).await;
    key_slots(&mut p).await;
    bad_arguments(&mut p).await;
    transactions(&mut p).await;
    scripts(&mut p).await;
    p.views("stable, RESP2").await;
    p.reconnect(true).await;
    p.views("stable, RESP3").await;
    p.same(0, &["GET", ON_2], "-MOVED").await;
    p.reconnect(false).await;
    migration(&mut p).await;
    uncovered(&mut p).await;

    eprintln!(
        "{} comparisons in {:?}, {} differences",
        p.compared,
        started.elapsed(),
        p.differences.len()
    );
    assert!(
        p.differences.is_empty(),
        "{} of {} replies differ from redis-server's:\n{}",
        p.differences.len(),
        p.compared,
        p.differences.join("\n")
    );
}
