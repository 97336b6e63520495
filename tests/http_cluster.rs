//! The HTTP surface of a real 3-node cluster (node processes on 127.0.0.1): the cluster-wide
//! `/ws` feed relayed over the bus, `cluster` messages, the key listing across nodes, the
//! cluster view with every node's figures, and key requests forwarded to the owning node.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::cluster_keys::{load_keys_cluster, missing_keys};
use common::cluster_node::{ClusterNode, cli};
use common::process::wait;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(20);

/// Every node serves the HTTP API on a known port, writes allowed.
const HTTP_ARGS: &[&str] = &["--http-allow-writes", "yes"];

fn info_field(port: u16, field: &str) -> String {
    cli(port, &["CLUSTER", "INFO"])
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// Three nodes sorted by port (so n[0] gets slots 0-5460, n[1] 5461-10922, n[2] the rest).
fn three_nodes(dir: &Path) -> Vec<ClusterNode> {
    let mut n: Vec<ClusterNode> = (0..3)
        .map(|_| ClusterNode::start_with_http(dir, HTTP_ARGS))
        .collect();
    n.sort_by_key(|x| x.port);
    n
}

fn meet(n: &[ClusterNode]) {
    for other in &n[1..] {
        let r = cli(
            n[0].port,
            &[
                "CLUSTER",
                "MEET",
                "127.0.0.1",
                &other.port.to_string(),
                &other.bus.to_string(),
            ],
        );
        assert_eq!(r, "OK");
    }
    assert!(
        wait(WAIT, || n.iter().all(|x| info_field(
            x.port,
            "cluster_state"
        ) == "ok"
            && cli(x.port, &["CLUSTER", "SLOTS"]).lines().count() >= 15)),
        "the cluster did not form: {}",
        cli(n[0].port, &["CLUSTER", "NODES"])
    );
}

/// A key whose slot `node` (0, 1 or 2 in port order) owns once the cluster is balanced.
fn key_on(node: usize, prefix: &str) -> String {
    let ranges = [(0u16, 5460u16), (5461, 10922), (10923, 16383)];
    let (a, b) = ranges[node];
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| {
            let s = reredis::cluster::slots::key_hash_slot(k.as_bytes());
            (a..=b).contains(&s)
        })
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let r = http().get(url).send().await.expect("GET");
    (r.status(), r.json().await.expect("JSON"))
}

async fn ws_connect(n: &ClusterNode) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", n.http))
        .await
        .expect("ws connect")
        .0
}

async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON message within `timeout`, or None.
async fn ws_next(ws: &mut Ws, timeout: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).ok();
        }
    }
}

/// The next `event` message (skipping `cluster` messages, which come whenever a node's state
/// flaps), within `timeout`.
async fn next_event(ws: &mut Ws, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let m = ws_next(ws, left).await?;
        if m["type"] == "event" {
            return Some(m);
        }
    }
}

/// Writes `key` on `node` until `ws` gets its `set` event from that node (the relay opens its
/// streams on a tick after the first subscription, or after a peer appears), then drains the
/// events of the earlier writes with a final DEL.
async fn expect_relayed(ws: &mut Ws, node: &ClusterNode, key: &str, id: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no relayed event from {id}");
        // A node just restarted may answer CLUSTERDOWN until it has heard from its peers.
        if cli(node.port, &["SET", key, "v"]) != "OK" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if let Some(m) = ws_next(ws, Duration::from_millis(300)).await
            && m["type"] == "event"
        {
            assert_eq!(m["key"], key);
            assert_eq!(m["event"], "set");
            assert_eq!(m["node"], id);
            break;
        }
    }
    cli(node.port, &["DEL", key]);
    loop {
        let m = next_event(ws, Duration::from_secs(5))
            .await
            .expect("DEL relayed");
        assert_eq!(m["node"], id);
        if m["event"] == "del" {
            return;
        }
        assert_eq!(m["event"], "set");
    }
}

/// Sends a `scan` request and returns its answer (`scan` or `error`), passing over `cluster`
/// messages.
async fn ws_scan(ws: &mut Ws, request: Value) -> Value {
    ws_send(ws, request).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("no scan answer");
        let m = ws_next(ws, left).await.expect("no scan answer");
        if m["type"] == "scan" || m["type"] == "error" {
            return m;
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn scrape(n: &ClusterNode) -> String {
    http()
        .get(n.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text")
}

async fn scrapes(n: &[ClusterNode]) -> Vec<String> {
    futures_util::future::join_all(n.iter().map(scrape)).await
}

/// The value of the sample of `family` with exactly these labels (in any order), if scraped.
fn sample(body: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().find_map(|l| {
        let (name_labels, value) = l.rsplit_once(' ')?;
        let got: HashSet<(&str, &str)> = match name_labels.strip_prefix(family)? {
            "" => HashSet::new(),
            rest => rest
                .strip_prefix('{')?
                .strip_suffix('}')?
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k, v.strip_prefix('"')?.strip_suffix('"')?))
                })
                .collect::<Option<_>>()?,
        };
        (got == labels.iter().copied().collect()).then(|| value.parse().ok())?
    })
}

/// `reredis_bus_bytes_total{type,direction}` of one scrape (0 when not exported).
fn bus_bytes(body: &str, kind: &str, direction: &str) -> f64 {
    bus_sample(body, "reredis_bus_bytes_total", kind, direction)
}

fn bus_messages(body: &str, kind: &str, direction: &str) -> f64 {
    bus_sample(body, "reredis_bus_messages_total", kind, direction)
}

fn bus_sample(body: &str, family: &str, kind: &str, direction: &str) -> f64 {
    sample(body, family, &[("type", kind), ("direction", direction)]).unwrap_or(0.0)
}

/// The `{type, direction}` label sets of a family's samples in a scrape.
fn bus_label_sets(body: &str, family: &str) -> Vec<String> {
    let mut sets: Vec<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix(family)?.strip_prefix('{'))
        .filter_map(|l| Some(l.split_once('}')?.0.to_string()))
        .collect();
    sets.sort();
    sets
}

/// `reredis_bus_messages_total` and `reredis_bus_bytes_total` cover the same messages: the same
/// types and directions, and no bytes without a message.
fn assert_bus_messages_match_bytes(body: &str) {
    let sets = bus_label_sets(body, "reredis_bus_bytes_total");
    assert_eq!(
        bus_label_sets(body, "reredis_bus_messages_total"),
        sets,
        "{body}"
    );
    for kind in [
        "ping",
        "pong",
        "meet",
        "fail",
        "update",
        "claim",
        "transfer",
        "publish",
        "http",
        "feed_event",
    ] {
        for direction in ["sent", "received"] {
            let (t, d) = (
                format!("type=\"{kind}\""),
                format!("direction=\"{direction}\""),
            );
            assert!(
                sets.iter().any(|s| s.contains(&t) && s.contains(&d)),
                "{kind} {direction} missing: {sets:?}"
            );
            if bus_bytes(body, kind, direction) > 0.0 {
                assert!(
                    bus_messages(body, kind, direction) > 0.0,
                    "{kind} {direction}: bytes but no messages: {body}"
                );
            }
        }
    }
}

/// `promtool check metrics` finds nothing to say about a scrape.
fn promtool_check(body: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cluster_feed_and_cluster_messages_across_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = three_nodes(dir.path());
    rt().block_on(async {
        // A client connected before the nodes meet hears of the new members, and its
        // cluster-scope feed follows them.
        let mut watcher = ws_connect(&n[0]).await;
        ws_send(
            &mut watcher,
            json!({"op":"subscribe","pattern":"joined:*","scope":"cluster"}),
        )
        .await;
        meet(&n);
        let deadline = Instant::now() + WAIT;
        let mut seen = None;
        while Instant::now() < deadline {
            let Some(m) = ws_next(&mut watcher, Duration::from_secs(1)).await else {
                continue;
            };
            if m["type"] == "cluster"
                && m["state"] == "ok"
                && m["nodes"].as_array().map(Vec::len) == Some(3)
                && m["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|x| !x["slots"].as_array().unwrap().is_empty())
            {
                seen = Some(m);
                break;
            }
        }
        assert!(
            seen.is_some(),
            "no cluster message with state ok and three nodes owning slots"
        );
        let joined = key_on(2, "joined:");
        let id3 = n[2].id();
        expect_relayed(&mut watcher, &n[2], &joined, &id3).await;

        // `scan` on node 1 lists the whole cluster as /api/v1/keys does: the same pages and
        // cursors, each key once with its owner, only the keys matching.
        let ids: Vec<String> = n.iter().map(ClusterNode::id).collect();
        let mut want = HashMap::new();
        for (at, node) in n.iter().enumerate() {
            for i in 0..8 {
                let key = key_on(at, &format!("scan:{i}:"));
                assert_eq!(cli(node.port, &["SET", &key, "v"]), "OK");
                want.insert(key, ids[at].clone());
            }
            assert_eq!(cli(node.port, &["SET", &key_on(at, "other:"), "v"]), "OK");
        }
        let mut scanner = ws_connect(&n[0]).await;
        let mut seen = HashMap::new();
        let mut cursor = "0".to_string();
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 100, "the scan does not end");
            // Every other page through REST: the cursors are the same.
            let page = if pages % 2 == 1 {
                ws_scan(
                    &mut scanner,
                    json!({"op":"scan","match":"scan:*","count":5,"cursor":cursor}),
                )
                .await
            } else {
                let (s, page) = get_json(&n[0].url(&format!(
                    "/api/v1/keys?match=scan:*&count=5&cursor={cursor}"
                )))
                .await;
                assert_eq!(s, StatusCode::OK, "{page}");
                page
            };
            for k in page["keys"].as_array().unwrap() {
                let key = k["key"].as_str().unwrap().to_string();
                assert!(key.starts_with("scan:"), "{key} does not match");
                let owner = k["node"].as_str().unwrap().to_string();
                assert!(seen.insert(key.clone(), owner).is_none(), "{key} twice");
            }
            cursor = page["cursor"].as_str().unwrap().to_string();
            if cursor == "0" {
                break;
            }
            let (id, _) = cursor.split_once(':').expect("a cluster cursor");
            assert!(ids.iter().any(|x| x == id), "{cursor}");
        }
        assert_eq!(seen, want);
        assert!(pages >= 3, "8 keys on each node, 5 a page: {pages} pages");
        // This node's keys only, on request; a bad cursor is an error and the socket stays.
        let page = ws_scan(
            &mut scanner,
            json!({"op":"scan","match":"scan:*","count":1000,"scope":"node"}),
        )
        .await;
        let local: HashSet<&str> = page["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        let mine: HashSet<&str> = want
            .iter()
            .filter(|(_, owner)| **owner == ids[0])
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!((page["cursor"].as_str(), local), (Some("0"), mine));
        let page = ws_scan(&mut scanner, json!({"op":"scan","cursor":"no-such-cursor"})).await;
        assert_eq!(page["type"], "error", "{page}");
        let page = ws_scan(&mut scanner, json!({"op":"scan","match":"other:*"})).await;
        assert_eq!(page["keys"].as_array().map(Vec::len), Some(3), "{page}");

        // A cluster-scope feed on node 1 gets a write on node 3; a node-scope one does not.
        let mut feed = ws_connect(&n[0]).await;
        ws_send(
            &mut feed,
            json!({"op":"subscribe","pattern":"relay:*","scope":"cluster"}),
        )
        .await;
        let mut local = ws_connect(&n[0]).await;
        ws_send(&mut local, json!({"op":"subscribe","pattern":"relay:*"})).await;
        let key = key_on(2, "relay:");
        expect_relayed(&mut feed, &n[2], &key, &id3).await;
        // Once the relay is up, a write shows up at once, and local events keep coming with
        // this node's ID.
        let t0 = Instant::now();
        cli(n[2].port, &["SET", &key, "again"]);
        let m = next_event(&mut feed, Duration::from_secs(5))
            .await
            .expect("SET relayed");
        assert_eq!(
            (m["event"].as_str(), m["node"].as_str()),
            (Some("set"), Some(id3.as_str()))
        );
        println!("relayed SET after {:?} (redis-cli included)", t0.elapsed());
        let key1 = key_on(0, "relay:");
        cli(n[0].port, &["SET", &key1, "x"]);
        let m = next_event(&mut feed, Duration::from_secs(5))
            .await
            .expect("local event");
        assert_eq!(m["key"], key1.as_str());
        assert_eq!(m["node"], n[0].id().as_str());
        let m = next_event(&mut local, Duration::from_secs(5))
            .await
            .expect("local event");
        assert_eq!(
            m["key"],
            key1.as_str(),
            "the node scope sees only this node's events"
        );

        // A restarted peer is streamed from again.
        n[2].restart();
        expect_relayed(&mut feed, &n[2], &key, &id3).await;

        // Without a cluster-scope client the relay closes its streams: node 3 serves none.
        drop(feed);
        drop(watcher);
        let metric = |body: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix("reredis_ws_relay_streams "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let body = http()
                .get(n[2].url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if metric(&body) == Some(0.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "relay stream still open: {:?}",
                metric(&body)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A cluster-scope subscription is acknowledged once the streams from the other
        // masters are open: one write on each, made right after `subscribed`, arrives (no
        // write repeated until the relay is up, as above).
        let mut fresh = ws_connect(&n[0]).await;
        ws_send(
            &mut fresh,
            json!({"op":"subscribe","pattern":"after-ack:*","scope":"cluster"}),
        )
        .await;
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = ws_next(&mut fresh, left).await.expect("subscribed");
            if m["type"] == "subscribed" {
                assert_eq!(m["scope"], "cluster", "{m}");
                break;
            }
        }
        let (k2, k3) = (key_on(1, "after-ack:"), key_on(2, "after-ack:"));
        assert_eq!(cli(n[1].port, &["SET", &k2, "v"]), "OK");
        assert_eq!(cli(n[2].port, &["SET", &k3, "v"]), "OK");
        let mut got = HashSet::new();
        while got.len() < 2 {
            let m = next_event(&mut fresh, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("only {got:?} arrived"));
            got.insert(m["key"].as_str().unwrap().to_string());
        }
        assert_eq!(got, HashSet::from([k2, k3]));
    });
}

#[test]
fn rest_across_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let n = three_nodes(dir.path());
    meet(&n);
    let ids: Vec<String> = n.iter().map(ClusterNode::id).collect();
    let started = Instant::now();
    // 150 keys spread over the nodes, written by a cluster client.
    let want: HashSet<String> = (0..150).map(|i| format!("spread:{i}")).collect();
    rt().block_on(async {
        let urls: Vec<String> = n
            .iter()
            .map(|x| format!("redis://127.0.0.1:{}/", x.port))
            .collect();
        let client = redis::cluster::ClusterClient::new(urls).unwrap();
        let mut c = client.get_async_connection().await.unwrap();
        for k in &want {
            let _: () = redis::AsyncCommands::set(&mut c, k, "v").await.unwrap();
        }
    });
    println!("{} keys written at {:?}", want.len(), started.elapsed());
    let sizes: Vec<u64> = n
        .iter()
        .map(|x| cli(x.port, &["DBSIZE"]).parse().unwrap())
        .collect();
    assert!(sizes.iter().all(|&s| s > 0), "{sizes:?}");
    rt().block_on(async {
        // The listing from node 1 walks every node: each key exactly once, with its owner.
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut cursor = "0".to_string();
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 1000, "the listing does not end");
            let (s, page) = get_json(&n[0].url(&format!(
                "/api/v1/keys?match=spread:*&count=20&cursor={cursor}"
            )))
            .await;
            assert_eq!(s, StatusCode::OK, "{page}");
            for k in page["keys"].as_array().unwrap() {
                let key = k["key"].as_str().unwrap().to_string();
                let owner = k["node"].as_str().unwrap().to_string();
                assert!(
                    seen.insert(key.clone(), owner).is_none(),
                    "{key} listed twice"
                );
            }
            cursor = page["cursor"].as_str().unwrap().to_string();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), want);
        println!("listed in {pages} pages at {:?}", started.elapsed());
        for (k, owner) in &seen {
            let slot = reredis::cluster::slots::key_hash_slot(k.as_bytes());
            let at = if slot <= 5460 {
                0
            } else if slot <= 10922 {
                1
            } else {
                2
            };
            assert_eq!(owner, &ids[at], "{k} (slot {slot})");
        }
        // scope=node lists only this node's keys.
        let (_, page) =
            get_json(&n[1].url("/api/v1/keys?scope=node&count=1000&match=spread:*")).await;
        assert_eq!(page["keys"].as_array().unwrap().len() as u64, sizes[1]);

        // The cluster view from node 1 has every node's own figures: with a client connected
        // to each node that read a key there (one hit, one miss).
        let mut held = Vec::new();
        for (i, node) in n.iter().enumerate() {
            let client = redis::Client::open(format!("redis://127.0.0.1:{}/", node.port)).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let key = key_on(i, "view-hit:");
            let _: () = redis::AsyncCommands::set(&mut conn, &key, "v")
                .await
                .unwrap();
            let _: String = redis::AsyncCommands::get(&mut conn, &key).await.unwrap();
            let missing = key_on(i, "view-miss:");
            let _: Option<String> = redis::AsyncCommands::get(&mut conn, &missing)
                .await
                .unwrap();
            held.push(conn);
        }
        // Other nodes' figures are asked for at most once a second (a view answers from the
        // last ones and asks again in the background).
        let figures_of = |c: &Value, id: &str| -> Value {
            c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("{id} missing from {c}"))
        };
        let shows_all = |c: &Value| {
            ids.iter().enumerate().all(|(i, id)| {
                let node = figures_of(c, id);
                let at_least = |f: &str, v: u64| node[f].as_u64().is_some_and(|x| x >= v);
                node["keys"].as_u64() == Some(sizes[i] + 1)
                    && at_least("used_memory", 1)
                    && at_least("connected_clients", 1)
                    && at_least("keyspace_hits", 1)
                    && at_least("keyspace_misses", 1)
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let c = loop {
            let (s, c) = get_json(&n[0].url("/api/v1/cluster")).await;
            assert_eq!(s, StatusCode::OK);
            if shows_all(&c) || Instant::now() > deadline {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(shows_all(&c), "{c}");
        drop(held);

        println!("cluster view at {:?}", started.elapsed());
        // A key node 2 owns, written, read, changed and deleted through node 1 and node 3.
        let key = key_on(1, "owned-by-2:");
        let r = http()
            .put(n[0].url(&format!("/api/v1/keys/{key}")))
            .json(&json!({"type":"string","value":"through node 1","ttl_ms":600000}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["node"], ids[1].as_str());
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &n[0].port.to_string(), "GET", &key])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "through node 1"
        );
        assert_eq!(cli(n[1].port, &["GET", &key]), "through node 1");
        let (s, v) = get_json(&n[2].url(&format!("/api/v1/keys/{key}"))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["value"], "through node 1");
        assert!(v["ttl_ms"].as_i64().unwrap() > 0);
        let r = http()
            .patch(n[2].url(&format!("/api/v1/keys/{key}")))
            .json(&json!({"ttl_ms": null}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(cli(n[1].port, &["PTTL", &key]), "-1");
        // A rename to a key another node owns: Redis's CROSSSLOT (400), not a redirection.
        let elsewhere = key_on(2, "owned-by-3:");
        let r = http()
            .patch(n[2].url(&format!("/api/v1/keys/{key}")))
            .json(&json!({ "rename_to": elsewhere }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("CROSSSLOT"),
            "{v}"
        );
        // A value larger than a gRPC message's default limit (4 MiB) read through a node that
        // does not own it: the forwarded answer decodes.
        // (A list of 1,000 items of 8 KB: the view shows up to 1,000 items.)
        let big_key = key_on(1, "big:");
        let items: Vec<String> = (0..1000).map(|i| format!("{i:08}").repeat(1024)).collect();
        let r = http()
            .put(n[0].url(&format!("/api/v1/keys/{big_key}")))
            .json(&json!({"type":"list","value": items}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let (s, v) = get_json(&n[2].url(&format!("/api/v1/keys/{big_key}"))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["value"].as_array().map(Vec::len), Some(1000));
        assert_eq!(v["value"][999], items[999].as_str());
        let (s, v) = get_json(&n[0].url("/api/v1/keys/no-such-key-anywhere")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        let r = http()
            .delete(n[2].url(&format!("/api/v1/keys/{key}")))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["deleted"], 1);
        assert_eq!(cli(n[1].port, &["EXISTS", &key]), "0");

        // The bus traffic shows in /metrics, by type and direction, and passes promtool.
        let body = scrape(&n[0]).await;
        assert!(bus_messages(&body, "http", "sent") > 0.0, "{body}");
        assert!(bus_bytes(&body, "http", "sent") > 0.0, "{body}");
        assert!(bus_messages(&body, "ping", "sent") > 0.0, "{body}");
        let owner = scrape(&n[1]).await;
        assert!(bus_messages(&owner, "http", "received") > 0.0, "{owner}");
        assert!(bus_bytes(&owner, "http", "received") > 0.0, "{owner}");
        promtool_check(&body);
    });
}

#[test]
fn bus_bytes_are_counted_by_type_and_direction() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = three_nodes(dir.path());
    // Keys written to a lone node move with their slots when the others join (Transfer).
    for i in 0..30 {
        assert_eq!(cli(n[0].port, &["SET", &format!("moving:{i}"), "v"]), "OK");
    }
    meet(&n);
    assert!(
        wait(WAIT, || n.iter().all(|x| cli(x.port, &["DBSIZE"]) != "0")),
        "the keys did not spread"
    );
    rt().block_on(async {
        let sum = |bodies: &[String], kind: &str, direction: &str| -> f64 {
            bodies.iter().map(|b| bus_bytes(b, kind, direction)).sum()
        };
        // Forming the cluster: gossip both ways on every node; slot handoffs and key batches
        // from the node that held them all.
        let before = scrapes(&n).await;
        for body in &before {
            for (kind, direction) in [
                ("ping", "sent"),
                ("ping", "received"),
                ("pong", "sent"),
                ("pong", "received"),
            ] {
                assert!(
                    bus_bytes(body, kind, direction) > 0.0,
                    "{kind} {direction}: {body}"
                );
            }
            let sent = sample(body, "reredis_cluster_bus_sent_bytes_total", &[]).unwrap();
            let received = sample(body, "reredis_cluster_bus_received_bytes_total", &[]).unwrap();
            assert!(sent > 0.0 && received > 0.0, "{body}");
            // The totals are read after the parts, during gossip: never less than their sum.
            for (total, direction) in [(sent, "sent"), (received, "received")] {
                let parts: f64 = body
                    .lines()
                    .filter(|l| l.starts_with("reredis_bus_bytes_total{"))
                    .filter(|l| l.contains(&format!("direction=\"{direction}\"")))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum();
                assert!(total >= parts && parts > 0.0, "{direction}: {body}");
            }
        }
        assert!(sum(&before, "meet", "sent") > 0.0);
        assert!(sum(&before, "meet", "received") > 0.0);
        for kind in ["claim", "transfer"] {
            assert!(
                bus_bytes(&before[0], kind, "sent") > 0.0,
                "{kind}: {}",
                before[0]
            );
            assert!(sum(&before[1..], kind, "received") > 0.0, "{kind}");
            // Counted as messages too, not only as bytes.
            assert!(bus_messages(&before[0], kind, "sent") > 0.0, "{kind}");
            let received: f64 = before[1..]
                .iter()
                .map(|b| bus_messages(b, kind, "received"))
                .sum();
            assert!(received > 0.0, "{kind}");
        }
        for body in &before {
            assert_bus_messages_match_bytes(body);
        }

        // A PUBLISH on node 1 is broadcast to the two others: its bytes, payload included.
        let payload = "p".repeat(1000);
        assert_eq!(cli(n[0].port, &["PUBLISH", "news", &payload]), "0");
        let grew = |before: &[String], after: &[String], i: usize, direction: &str| {
            bus_bytes(&after[i], "publish", direction) - bus_bytes(&before[i], "publish", direction)
        };
        // Each peer has its own sender task: all three counts are waited for (on a loaded host
        // one receiver may count before the other sender task has run).
        let deadline = Instant::now() + WAIT;
        let after = loop {
            let after = scrapes(&n).await;
            if grew(&before, &after, 1, "received") >= 1000.0
                && grew(&before, &after, 2, "received") >= 1000.0
                && grew(&before, &after, 0, "sent") >= 2.0 * 1000.0
            {
                break after;
            }
            assert!(
                Instant::now() < deadline,
                "PUBLISH bytes not counted: {after:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            grew(&before, &after, 0, "sent") >= 2.0 * 1000.0,
            "{}",
            after[0]
        );
        for i in [1, 2] {
            assert!(
                grew(&before, &after, i, "received") >= 1000.0,
                "{}",
                after[i]
            );
            assert_eq!(grew(&before, &after, i, "sent"), 0.0);
        }

        // A cluster-scope feed on node 1 relays node 3's events: Feed stream bytes both ways.
        let mut feed = ws_connect(&n[0]).await;
        ws_send(
            &mut feed,
            json!({"op":"subscribe","pattern":"fed:*","scope":"cluster"}),
        )
        .await;
        let id3 = n[2].id();
        expect_relayed(&mut feed, &n[2], &key_on(2, "fed:"), &id3).await;
        let after = scrapes(&n).await;
        assert!(
            bus_bytes(&after[0], "feed_event", "received") > 0.0,
            "{}",
            after[0]
        );
        assert!(
            bus_bytes(&after[2], "feed_event", "sent") > 0.0,
            "{}",
            after[2]
        );
        promtool_check(&after[0]);
        assert!(bus_messages(&after[2], "feed_event", "sent") > 0.0);
        assert_bus_messages_match_bytes(&after[0]);

        // Node 3 dies: the two others agree it failed and one tells the other (FAIL).
        assert_eq!(sum(&after, "fail", "sent"), 0.0);
        let dropped = |body: &str, reason: &str| {
            sample(
                body,
                "reredis_cluster_publish_dropped_total",
                &[("reason", reason)],
            )
            .unwrap_or_else(|| panic!("no dropped PUBLISH count for {reason}: {body}"))
        };
        for reason in ["queue", "behind", "failed", "too_large"] {
            assert_eq!(dropped(&after[0], reason), 0.0, "{reason}");
        }
        n.pop();
        // Until node 3 is marked failed, a PUBLISH is still sent to it: the call fails, and
        // the message counts as one node 3 did not get.
        assert_eq!(cli(n[0].port, &["PUBLISH", "news", "lost"]), "0");
        let deadline = Instant::now() + WAIT;
        while dropped(&scrape(&n[0]).await, "failed") < 1.0 {
            assert!(Instant::now() < deadline, "failed PUBLISH not counted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let bodies = scrapes(&n).await;
            if sum(&bodies, "fail", "sent") > 0.0 && sum(&bodies, "fail", "received") > 0.0 {
                break;
            }
            assert!(Instant::now() < deadline, "FAIL bytes not counted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// `POST /api/v1/cluster/nodes/{id}/drain` through one node drains another: its slots and keys
/// move to the two others, `/api/v1/cluster` follows it to 0 slots, and it can then be
/// forgotten. `DELETE` cancels; in manual slot mode a drain is a 409.
#[test]
fn a_node_drained_over_http_hands_over_its_slots_and_keys() {
    const KEYS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let n = three_nodes(dir.path());
    meet(&n);
    let ports: Vec<u16> = n.iter().map(|x| x.port).collect();
    let rt = rt();
    rt.block_on(load_keys_cluster(&ports, "drain", KEYS));
    let leaving = n[2].id();
    let drain_url = n[0].url(&format!("/api/v1/cluster/nodes/{leaving}/drain"));
    rt.block_on(async {
        let view_of = |c: &Value, id: &str| {
            c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("{id} missing from {c}"))
        };
        let (_, c) = get_json(&n[0].url("/api/v1/cluster")).await;
        let before = view_of(&c, &leaving);
        assert_eq!(before["draining"], false, "{before}");
        assert_eq!(before["slot_count"], 16384 - 10923, "{before}");

        // Not a node of this cluster, and not a method this endpoint takes.
        let r = http()
            .post(n[0].url(&format!("/api/v1/cluster/nodes/{}/drain", "f".repeat(40))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let (s, v) = get_json(&drain_url).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");

        // Drain and cancel at once (within the rebalance delay): nothing moves.
        let r = http().post(&drain_url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["node"], leaving.as_str(), "{v}");
        assert_eq!(v["draining"], true, "{v}");
        let r = http().delete(&drain_url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["draining"], false, "{v}");
        assert_eq!(info_field(n[2].port, "cluster_draining"), "0");

        // The drain itself, asked of node 1 and run by node 3; node 1 watches it to the end.
        let r = http().post(&drain_url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen_counts = Vec::new();
        // Slot moves of the draining node: as it reports them itself (`/api/v1/info`, polled
        // often: a slot is in flight for a few milliseconds of each group's move), and as node
        // 1's cluster view shows them (other nodes' reports are refreshed once a second, so
        // that view may miss every move of a quick drain); the most keys shown for one slot.
        let (mut seen_moves, mut relayed_moves, mut most_keys) = (0usize, 0usize, 0u64);
        let mut polls = 0u64;
        loop {
            let (_, own) = get_json(&n[2].url("/api/v1/info")).await;
            for m in own["moving"].as_array().unwrap() {
                assert_eq!(m["from"], leaving.as_str(), "{m}");
                assert_ne!(m["to"], leaving.as_str(), "{m}");
                seen_moves += 1;
                most_keys = most_keys.max(m["keys_moved"].as_u64().unwrap());
            }
            polls += 1;
            if polls % 5 != 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let (_, c) = get_json(&n[0].url("/api/v1/cluster")).await;
            let me = view_of(&c, &leaving);
            let left = me["slot_count"].as_u64().unwrap();
            if seen_counts.last() != Some(&left) {
                seen_counts.push(left);
            }
            // The two staying nodes trade slots too (two nodes split the slots in halves).
            for m in c["moving"].as_array().unwrap() {
                let known = |id: &Value| {
                    c["nodes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| &x["id"] == id)
                };
                assert!(
                    known(&m["from"]) && known(&m["to"]) && m["from"] != m["to"],
                    "{m}"
                );
                assert_ne!(m["to"], leaving.as_str(), "{m}");
                if m["from"] == leaving.as_str() {
                    relayed_moves += 1;
                }
            }
            if left == 0
                && me["draining"] == true
                && c["slots_assigned"] == 16384
                && c["state"] == "ok"
            {
                break;
            }
            assert!(Instant::now() < deadline, "drain not done: {c}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "slots left on the draining node, as node 1 saw them: {seen_counts:?}; \
             {seen_moves} moves of its slots seen on it ({relayed_moves} in node 1's view), \
             up to {most_keys} keys moved of one"
        );
        assert!(seen_moves > 0, "no slot move shown while 5461 slots moved");
        // Once the drain is over, nothing is shown moving (peers' reports age out).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, c) = get_json(&n[0].url("/api/v1/cluster")).await;
            if c["moving"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moves still shown: {}",
                c["moving"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(
        wait(WAIT, || cli(n[2].port, &["DBSIZE"]) == "0"),
        "keys left on the drained node: {}",
        cli(n[2].port, &["DBSIZE"])
    );
    let staying = &ports[..2];
    let sizes: Vec<u64> = staying
        .iter()
        .map(|&p| cli(p, &["DBSIZE"]).parse().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), KEYS as u64, "{sizes:?}");
    assert_eq!(
        rt.block_on(missing_keys(staying, "drain", KEYS)),
        Vec::<String>::new()
    );
    for &p in staying {
        assert_eq!(cli(p, &["CLUSTER", "FORGET", &leaving]), "OK");
    }
    assert_eq!(
        rt.block_on(missing_keys(staying, "drain", KEYS)),
        Vec::<String>::new()
    );

    // Manual slot mode (an ADDSLOTS on a lone node): the drain is refused with Redis's reason.
    let manual = ClusterNode::start_with_http(dir.path(), HTTP_ARGS);
    assert_eq!(cli(manual.port, &["CLUSTER", "ADDSLOTS", "0"]), "OK");
    let url = manual.url(&format!("/api/v1/cluster/nodes/{}/drain", manual.id()));
    rt.block_on(async {
        let r = http().post(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "conflict", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("manual mode"), "{v}");
    });
}

/// A replica lists its own copy of the keys (`scope=node`): its TYPE and PTTL reads are replica
/// reads, not redirected to the master.
#[test]
fn a_replica_lists_its_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--http-allow-writes", "yes", "--cluster-auto-assign", "no"];
    let a = ClusterNode::start_with_http(dir.path(), &args);
    let b = ClusterNode::start_with_http(dir.path(), &args);
    assert_eq!(
        cli(a.port, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        "OK"
    );
    let meet = cli(
        a.port,
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &b.port.to_string(),
            &b.bus.to_string(),
        ],
    );
    assert_eq!(meet, "OK");
    assert!(wait(WAIT, || cli(b.port, &["CLUSTER", "NODES"])
        .lines()
        .count()
        == 2));
    assert_eq!(cli(b.port, &["CLUSTER", "REPLICATE", &a.id()]), "OK");
    for i in 0..20 {
        let k = format!("k{i}");
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &a.port.to_string(), "SET", &k, "v"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    }
    assert!(
        wait(WAIT, || cli(b.port, &["DBSIZE"]) == "20"),
        "the replica has the keys: {}",
        b.log()
    );
    rt().block_on(async {
        let (s, v) = get_json(&b.url("/api/v1/keys?scope=node&count=100")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let keys = v["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 20, "{v}");
        assert!(
            keys.iter()
                .all(|k| k["type"] == "string" && k["ttl_ms"] == -1),
            "{v}"
        );
    });
}
