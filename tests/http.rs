//! The HTTP surface through real clients: reqwest for REST, probes and /metrics, a
//! tokio-tungstenite client for the /ws feed, the `redis` crate for RESP writes, and
//! Prometheus's own tools (`promtool check metrics`, a `prometheus` server scraping the node).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{start_node, wait_for};
use futures_util::{SinkExt as _, StreamExt as _};
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(20);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("http client")
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn get_json(addr: SocketAddr, path: &str) -> (StatusCode, Value) {
    let r = http().get(url(addr, path)).send().await.expect("GET");
    let status = r.status();
    (status, r.json().await.expect("JSON body"))
}

async fn send_json(
    method: reqwest::Method,
    addr: SocketAddr,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = http().request(method, url(addr, path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    (status, r.json().await.expect("JSON body"))
}

/// Generous timeouts: the whole suite runs in parallel on small CI machines, where the client's
/// defaults (1 s to connect, 500 ms per reply) are not always met by a node just started.
async fn redis_conn(addr: SocketAddr) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    common::client(addr)
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("redis connection")
}

async fn ws_connect(addr: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("ws connect");
    ws
}

async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("ws send");
}

/// The next JSON message (skipping pings), within the deadline.
async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("ws message before deadline")
            .expect("ws open")
            .expect("ws frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Subscribes and waits until the server confirms the subscription is in force.
async fn ws_subscribe(ws: &mut Ws, pattern: &str) {
    ws_send(ws, json!({"op":"subscribe","pattern":pattern})).await;
    let m = ws_next(ws).await;
    assert_eq!(
        m,
        json!({"type":"subscribed","pattern":pattern,"scope":"node"}),
        "the confirmation comes first"
    );
}

#[tokio::test]
async fn probes_info_and_cluster_view() {
    let node = start_node(&[]).await;
    let h = node.http_addr();
    let r = http().get(url(h, "/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http().get(url(h, "/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let mut c = redis_conn(node.resp_addr()).await;
    let _: () = c.set("a", "1").await.unwrap();
    let (s, info) = get_json(h, "/api/v1/info").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(info["node"]["addr"], node.resp_addr().to_string());
    assert_eq!(info["node"]["http_addr"], h.to_string());
    assert_eq!(info["node"]["role"], "master");
    assert_eq!(info["node"]["id"].as_str().unwrap().len(), 40);
    assert_eq!(info["stats"]["keys"], 1);
    assert!(info["stats"]["connected_clients"].as_u64().unwrap() >= 1);

    let (s, cluster) = get_json(h, "/api/v1/cluster").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cluster["state"], "ok");
    assert_eq!(cluster["slots_assigned"], 16384);
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["slots"], json!([[0, 16383]]));
    assert_eq!(nodes[0]["myself"], true);
    assert_eq!(nodes[0]["id"], info["node"]["id"]);
    node.shutdown().await;
}

/// With `cluster.enabled`, the cluster view, the node ID and the cluster gauges come from the
/// cluster state (a lone node; the multi-node cluster is tests/cluster.rs's).
#[tokio::test]
async fn cluster_view_of_a_clustered_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&[
        ("cluster.enabled", "yes"),
        ("dir", dir.path().to_str().unwrap()),
    ])
    .await;
    let h = node.http_addr();
    let mut c = redis_conn(node.resp_addr()).await;
    let myid: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(&mut c)
        .await
        .unwrap();
    let (_, info) = get_json(h, "/api/v1/info").await;
    assert_eq!(info["node"]["id"], myid.as_str());
    let (s, cluster) = get_json(h, "/api/v1/cluster").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cluster["mode"], "auto");
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["id"], myid.as_str());
    assert_eq!(nodes[0]["myself"], true);
    assert_eq!(nodes[0]["addr"], node.resp_addr().to_string());
    assert_eq!(nodes[0]["http_addr"], h.to_string());
    let text = http()
        .get(url(h, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("reredis_cluster_known_nodes 1"), "{text}");
    assert!(
        text.contains("reredis_cluster_messages_sent_total{type=\"ping\"}"),
        "{text}"
    );

    // /readyz reports the cluster state; it holds readiness back only when asked to.
    let ready = |h| async move {
        let r = http().get(url(h, "/readyz")).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(
        ready(h).await,
        (StatusCode::OK, "ready\ncluster_state:ok\n".to_string())
    );
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTS")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    let down = common::wait_for(std::time::Duration::from_secs(10), async || {
        ready(h).await.1.contains("cluster_state:fail")
    })
    .await;
    assert!(
        down,
        "slots left unserved fail the cluster (manual mode, one slot added)"
    );
    assert_eq!(ready(h).await.0, StatusCode::OK);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("http-readyz-requires-cluster-ok")
        .arg("yes")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        ready(h).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster down\ncluster_state:fail\n".to_string()
        )
    );
    node.shutdown().await;
}

#[tokio::test]
async fn key_listing_walks_the_keyspace_by_cursor() {
    let node = start_node(&[]).await;
    let h = node.http_addr();
    let mut c = redis_conn(node.resp_addr()).await;
    for i in 0..250 {
        let _: () = c.set(format!("user:{i}"), i).await.unwrap();
    }
    let _: () = c.set("other", "x").await.unwrap();
    let _: () = c.set_ex("user:ttl", "x", 100).await.unwrap();
    let _: () = c.set(b"bin:\xff\x00".as_slice(), "x").await.unwrap();

    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..1000 {
        let (s, page) = get_json(
            h,
            &format!("/api/v1/keys?match=user:*&count=40&cursor={cursor}"),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        for k in page["keys"].as_array().unwrap() {
            let key = k["key"].as_str().unwrap().to_string();
            assert_eq!(k["type"], "string");
            assert_eq!(k["slot"], redis_slot(key.as_bytes()));
            if key == "user:ttl" {
                let ttl = k["ttl_ms"].as_i64().unwrap();
                assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
            } else {
                assert_eq!(k["ttl_ms"], -1);
            }
            seen.insert(key);
        }
        cursor = page["cursor"].as_str().unwrap().to_string();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0");
    assert_eq!(seen.len(), 251, "every user:* key, once");
    assert!(!seen.contains("other"));

    let (_, page) = get_json(h, "/api/v1/keys?match=bin:*&count=1000").await;
    let k = &page["keys"][0];
    assert_eq!(k["key_b64"], true);
    assert_eq!(k["key"], "YmluOv8A");

    let (s, err) = get_json(h, "/api/v1/keys?cursor=nope").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["message"], "ERR invalid cursor");
    let (s, err) = get_json(h, "/api/v1/keys?count=many").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "bad_request");
    let (s, err) = get_json(h, "/api/v1/nothing-here").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");
    let (s, err) = send_json(reqwest::Method::POST, h, "/api/v1/keys/k", None, None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(err["error"]["code"], "method_not_allowed");
    node.shutdown().await;
}

fn redis_slot(key: &[u8]) -> u16 {
    reredis::cluster::slots::key_hash_slot(key)
}

#[tokio::test]
async fn one_key_read_write_ttl_rename_delete() {
    let node = start_node(&[("http.allow-writes", "yes")]).await;
    let h = node.http_addr();
    let mut c = redis_conn(node.resp_addr()).await;

    let (s, err) = get_json(h, "/api/v1/keys/missing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");

    let put = json!({"type":"string","value":"hello","ttl_ms":60000});
    let (s, k) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/user%3A1",
        Some(put),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["key"], "user:1");
    assert_eq!(k["type"], "string");
    assert_eq!(k["value"], "hello");
    assert_eq!(k["size"], 5);
    assert_eq!(k["truncated"], false);
    assert!(k["ttl_ms"].as_i64().unwrap() > 50_000);
    let v: String = c.get("user:1").await.unwrap();
    assert_eq!(v, "hello", "the write went to the store");
    let ttl: i64 = c.pttl("user:1").await.unwrap();
    assert!(ttl > 50_000);

    let (_, k) = get_json(h, "/api/v1/keys/user%3A1?limit=2").await;
    assert_eq!(k["value"], "he");
    assert_eq!(k["truncated"], true);

    // Binary key and value, both ways.
    let put = json!({"type":"string","value":"AP8=","value_b64":true});
    let (s, k) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/b%FF",
        Some(put),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["key"], "Yv8=");
    assert_eq!(k["key_b64"], true);
    assert_eq!(k["value"], "AP8=");
    assert_eq!(k["value_b64"], true);
    let v: Vec<u8> = c.get(b"b\xff".as_slice()).await.unwrap();
    assert_eq!(v, b"\x00\xff");

    let patch = json!({"rename_to":"user:2","ttl_ms":null});
    let (s, k) = send_json(
        reqwest::Method::PATCH,
        h,
        "/api/v1/keys/user:1",
        Some(patch),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["key"], "user:2");
    assert_eq!(k["ttl_ms"], -1);
    let exists: bool = c.exists("user:1").await.unwrap();
    assert!(!exists);

    let patch = json!({"ttl_ms":5000});
    let (s, k) = send_json(
        reqwest::Method::PATCH,
        h,
        "/api/v1/keys/user:2",
        Some(patch),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(k["ttl_ms"].as_i64().unwrap() > 4000);

    let _: () = c.set("taken", "x").await.unwrap();
    let patch = json!({"rename_to":"taken"});
    let (s, err) = send_json(
        reqwest::Method::PATCH,
        h,
        "/api/v1/keys/user:2",
        Some(patch),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(err["error"]["code"], "key_exists");

    let (s, err) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/x",
        Some(json!({"type":"string","value":"v","ttl_ms":-5})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "bad_request");
    // A TTL past the end of time is refused before anything changes: the hash stays as it
    // was (PEXPIRE would refuse it only after the write, inside the same transaction), and
    // so does a key a PATCH would rename.
    let hash = json!({"type":"hash","value":[["f","v"]]});
    let (s, _) = send_json(reqwest::Method::PUT, h, "/api/v1/keys/hx", Some(hash), None).await;
    assert_eq!(s, StatusCode::OK);
    for (method, body) in [
        (
            reqwest::Method::PUT,
            json!({"type":"hash","value":[["g","w"]],"ttl_ms":i64::MAX}),
        ),
        (
            reqwest::Method::PATCH,
            json!({"rename_to":"hy","ttl_ms":i64::MAX}),
        ),
    ] {
        let (s, err) = send_json(method, h, "/api/v1/keys/hx", Some(body), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(
            err["error"]["message"],
            "ERR invalid expire time in 'pexpire' command"
        );
    }
    let (s, k) = get_json(h, "/api/v1/keys/hx").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(k["value"], json!([["f", "v"]]));
    assert_eq!(k["ttl_ms"], -1);
    let (s, _) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/x",
        Some(json!({"type":"stream","value":[]})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, d) = send_json(
        reqwest::Method::DELETE,
        h,
        "/api/v1/keys/user:2",
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d, json!({"deleted":1}));
    let (_, d) = send_json(
        reqwest::Method::DELETE,
        h,
        "/api/v1/keys/user:2",
        None,
        None,
    )
    .await;
    assert_eq!(d, json!({"deleted":0}));
    node.shutdown().await;
}

#[tokio::test]
async fn aggregate_types_round_trip_or_are_refused_until_their_commands_land() {
    let node = start_node(&[("http.allow-writes", "yes")]).await;
    let h = node.http_addr();
    let table = reredis::commands::table();
    let cases = [
        ("hash", "hset", json!([["a", "1"], ["b", "2"]])),
        ("list", "rpush", json!(["x", "y", "x"])),
        ("set", "sadd", json!(["m1", "m2"])),
        ("zset", "zadd", json!([["low", 1.5], ["high", 10]])),
        (
            "stream",
            "xadd",
            json!([{"id": "1-1", "fields": [["f", "v"], ["a", "b"]]}]),
        ),
    ];
    for (kind, writer, value) in cases {
        let path = format!("/api/v1/keys/{kind}-key");
        let body = json!({"type": kind, "value": value});
        let (s, k) = send_json(reqwest::Method::PUT, h, &path, Some(body), None).await;
        if table.lookup(writer.as_bytes()).is_none() {
            assert_eq!(s, StatusCode::BAD_REQUEST, "{kind}: {k}");
            assert_eq!(k["error"]["code"], "unsupported_type");
            continue;
        }
        assert_eq!(s, StatusCode::OK, "{kind}: {k}");
        assert_eq!(k["type"], kind);
        let expected = match kind {
            "zset" => json!([["low", 1.5], ["high", 10.0]]),
            _ => value,
        };
        assert_eq!(k["value"], expected, "{kind}");
    }
    node.shutdown().await;
}

/// A stream's entries as XRANGE gives them over RESP: (id, [field, value, ...]).
async fn xrange(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Vec<(String, Vec<Vec<u8>>)> {
    redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(c)
        .await
        .expect("XRANGE")
}

#[tokio::test]
async fn streams_are_read_and_written_as_entries() {
    let node = start_node(&[("http.allow-writes", "yes")]).await;
    let h = node.http_addr();
    let mut c = redis_conn(node.resp_addr()).await;
    let put = |path: &'static str, body: Value| {
        send_json(reqwest::Method::PUT, h, path, Some(body), None)
    };

    // Read: entries in ID order, fields as added (repeats kept), first `limit` entries.
    for (id, fields) in [
        ("1-1", vec!["z", "1", "a", "2", "z", "3"]),
        ("2-0", vec!["f", "v"]),
        ("2-5", vec!["g", "w"]),
    ] {
        let _: String = redis::cmd("XADD")
            .arg("s:read")
            .arg(id)
            .arg(&fields)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let (s, k) = get_json(h, "/api/v1/keys/s:read").await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["type"], "stream");
    assert_eq!(k["encoding"], "stream");
    assert_eq!(k["size"], 3);
    assert_eq!(k["ttl_ms"], -1);
    assert_eq!(k["truncated"], false);
    assert!(k.get("value_b64").is_none(), "{k}");
    assert_eq!(
        k["value"],
        json!([
            {"id": "1-1", "fields": [["z", "1"], ["a", "2"], ["z", "3"]]},
            {"id": "2-0", "fields": [["f", "v"]]},
            {"id": "2-5", "fields": [["g", "w"]]},
        ])
    );
    let (_, cut) = get_json(h, "/api/v1/keys/s:read?limit=2").await;
    assert_eq!(cut["size"], 3);
    assert_eq!(cut["truncated"], true);
    assert_eq!(
        cut["value"],
        json!([k["value"][0], k["value"][1]]),
        "the oldest entries"
    );

    // What GET returns is a body PUT takes: written back, the stream is the same.
    let (s, back) = put(
        "/api/v1/keys/s:copy",
        json!({"type":"stream","value":k["value"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{back}");
    assert_eq!(back["value"], k["value"]);
    assert_eq!(
        xrange(&mut c, "s:copy").await,
        xrange(&mut c, "s:read").await
    );

    // Write: replaces the key; `<ms>`, `<ms>-*` and missing IDs as XADD takes them; TTL.
    let _: () = c.set("s:put", "a string before").await.unwrap();
    let body = json!({"type":"stream","ttl_ms":60_000,"value":[
        {"id":"5","fields":[["a","1"]]},
        {"id":"5-*","fields":[["b","2"]]},
        {"fields":[["c","3"],["c","4"]]},
        {"id":"*","fields":[["d","5"]]},
    ]});
    let (s, k) = put("/api/v1/keys/s:put", body).await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["type"], "stream");
    assert_eq!(k["size"], 4);
    assert!(k["ttl_ms"].as_i64().unwrap() > 50_000, "{k}");
    let entries = xrange(&mut c, "s:put").await;
    let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(&ids[..2], ["5-0", "5-1"]);
    let ms = |id: &str| id.split_once('-').unwrap().0.parse::<u64>().unwrap();
    assert!(
        ms(ids[2]) > 1_600_000_000_000,
        "an automatic ID is the clock: {ids:?}"
    );
    assert!(ids[3] > ids[2] && ms(ids[3]) >= ms(ids[2]), "{ids:?}");
    assert_eq!(
        entries[2].1,
        [b"c".to_vec(), b"3".to_vec(), b"c".to_vec(), b"4".to_vec()]
    );
    assert_eq!(
        k["value"][2],
        json!({"id": ids[2], "fields": [["c","3"],["c","4"]]})
    );
    let pttl: i64 = c.pttl("s:put").await.unwrap();
    assert!(pttl > 50_000);

    // Replacing a stream drops its consumer groups with it.
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "s:put", "g", "0"])
        .query_async(&mut c)
        .await
        .unwrap();
    let body = json!({"type":"stream","value":[{"id":"9-9","fields":[["x","y"]]}]});
    let (s, k) = put("/api/v1/keys/s:put", body).await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["value"], json!([{"id":"9-9","fields":[["x","y"]]}]));
    assert_eq!(k["ttl_ms"], -1, "a PUT without ttl_ms leaves none");
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg(&["GROUPS", "s:put"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(groups.is_empty());

    // Binary: one flag covers every field and value; IDs stay text.
    let body = json!({"type":"stream","value_b64":true,"value":[
        {"id":"1-0","fields":[["Zg==","/wA="]]},
        {"id":"2-0","fields":[["YQ==","Yg=="]]},
    ]});
    let (s, k) = put("/api/v1/keys/s:bin", body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["value_b64"], true);
    assert_eq!(k["value"], body["value"]);
    assert_eq!(
        xrange(&mut c, "s:bin").await,
        [
            ("1-0".to_string(), vec![b"f".to_vec(), b"\xff\x00".to_vec()]),
            ("2-0".to_string(), vec![b"a".to_vec(), b"b".to_vec()]),
        ]
    );

    // Refused before anything runs: the key is left as it was.
    let before = xrange(&mut c, "s:read").await;
    for bad in [
        json!([]),
        json!([{"id":"0-0","fields":[["f","v"]]}]),
        json!([{"id":"3-0","fields":[["f","v"]]},{"id":"2-0","fields":[["f","v"]]}]),
        json!([{"fields":[["f","v"]]},{"id":"3-0","fields":[["f","v"]]}]),
        json!([{"id":"nope","fields":[["f","v"]]}]),
        json!([{"id":"1-1","fields":[]}]),
        json!([["f", "v"]]),
    ] {
        let (s, err) = put("/api/v1/keys/s:read", json!({"type":"stream","value":bad})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {err}");
        assert_eq!(err["error"]["code"], "bad_request", "{bad}");
    }
    assert_eq!(xrange(&mut c, "s:read").await, before);

    // An empty stream (Redis keeps one) reads as no entries.
    let _: String = redis::cmd("XADD")
        .arg(&["s:empty", "1-1", "f", "v"])
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("XDEL")
        .arg(&["s:empty", "1-1"])
        .query_async(&mut c)
        .await
        .unwrap();
    let (s, k) = get_json(h, "/api/v1/keys/s:empty").await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(
        (&k["type"], &k["size"], &k["value"]),
        (&json!("stream"), &json!(0), &json!([]))
    );
    assert_eq!(k["truncated"], false);

    // The listing shows and filters them as any type.
    let (_, page) = get_json(h, "/api/v1/keys?match=s:*&type=stream&count=1000").await;
    let mut listed: Vec<&str> = page["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["type"], "stream");
            k["key"].as_str().unwrap()
        })
        .collect();
    listed.sort();
    assert_eq!(listed, ["s:bin", "s:copy", "s:empty", "s:put", "s:read"]);
    node.shutdown().await;
}

#[tokio::test]
async fn feed_delivers_stream_events_from_resp_and_http_writes() {
    let node = start_node(&[("http.allow-writes", "yes")]).await;
    let mut ws = ws_connect(node.http_addr()).await;
    ws_subscribe(&mut ws, "st:*").await;
    let mut c = redis_conn(node.resp_addr()).await;
    let body = json!({"type":"stream","ttl_ms":60_000,"value":[
        {"id":"1-1","fields":[["f","v"]]},
        {"id":"1-2","fields":[["f","v"]]},
        {"fields":[["g","w"]]},
    ]});
    let (s, k) = send_json(
        reqwest::Method::PUT,
        node.http_addr(),
        "/api/v1/keys/st:1",
        Some(body),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    for cmd in [
        &["XDEL", "st:1", "1-2"][..],
        &["XADD", "st:1", "*", "h", "x"],
        &["XTRIM", "st:1", "MAXLEN", "1"],
        &["XGROUP", "CREATE", "st:1", "g", "$"],
        &["XGROUP", "CREATE", "st:2", "g", "$", "MKSTREAM"],
    ] {
        let _: redis::Value = redis::cmd(cmd[0])
            .arg(&cmd[1..])
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let expected = [
        // The PUT: DEL (of a missing key: no event), one XADD per entry, then PEXPIRE.
        "xadd st:1",
        "xadd st:1",
        "xadd st:1",
        "expire st:1",
        "xdel st:1",
        "xadd st:1",
        "xtrim st:1",
        "xgroup-create st:1",
        "xgroup-create st:2",
    ];
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let ev = ws_next(&mut ws).await;
        assert_eq!(ev["type"], "event", "{ev}");
        got.push(format!(
            "{} {}",
            ev["event"].as_str().unwrap(),
            ev["key"].as_str().unwrap()
        ));
    }
    assert_eq!(got, expected);
    node.shutdown().await;
}

#[tokio::test]
async fn http_writes_wait_out_client_pause_like_resp_writes() {
    let node = start_node(&[("http.allow-writes", "yes")]).await;
    let h = node.http_addr();
    let mut c = redis_conn(node.resp_addr()).await;
    let _: () = c.set("k", "v").await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "60000", "WRITE"])
        .query_async(&mut c)
        .await
        .unwrap();
    // Reads go on; a write waits (here until its client gives up).
    let (s, _) = get_json(h, "/api/v1/keys/k").await;
    assert_eq!(s, StatusCode::OK);
    let r = reqwest::Client::new()
        .delete(url(h, "/api/v1/keys/k"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        r.is_err_and(|e| e.is_timeout()),
        "the DELETE waited for the pause"
    );
    // Checked while the pause holds (EXISTS is a read): the write has not happened.
    let exists: bool = c.exists("k").await.unwrap();
    assert!(exists);
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut c)
        .await
        .unwrap();
    let (s, _) = send_json(reqwest::Method::DELETE, h, "/api/v1/keys/k", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let exists: bool = c.exists("k").await.unwrap();
    assert!(!exists);
    node.shutdown().await;
}

#[tokio::test]
async fn writes_need_allow_writes_or_the_token() {
    let node = start_node(&[("http.token", "s3cret")]).await;
    let h = node.http_addr();
    let body = json!({"type":"string","value":"v"});
    let (s, err) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/k",
        Some(body.clone()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(err["error"]["code"], "writes_disabled");
    let (s, _) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/k",
        Some(body.clone()),
        Some("wrong"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = send_json(reqwest::Method::DELETE, h, "/api/v1/keys/k", None, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, k) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/k",
        Some(body),
        Some("s3cret"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    // Reads stay open.
    let (s, _) = get_json(h, "/api/v1/keys/k").await;
    assert_eq!(s, StatusCode::OK);
    node.shutdown().await;

    let node = start_node(&[]).await;
    let (s, _) = send_json(
        reqwest::Method::PUT,
        node.http_addr(),
        "/api/v1/keys/k",
        Some(json!({"type":"string","value":"v"})),
        Some(""),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "no token configured: no bearer opens writes"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn feed_delivers_matching_events_from_resp_and_http_writes() {
    let node = start_node(&[("http.allow-writes", "yes")]).await;
    let mut ws = ws_connect(node.http_addr()).await;
    ws_subscribe(&mut ws, "user:*").await;
    let mut c = redis_conn(node.resp_addr()).await;
    let _: () = c.set("other", "1").await.unwrap();
    let _: () = c.set("user:1", "a").await.unwrap();
    let ev = ws_next(&mut ws).await;
    assert_eq!(ev["type"], "event");
    assert_eq!(ev["event"], "set");
    assert_eq!(ev["key"], "user:1");
    assert_eq!(ev["db"], 0);
    assert_eq!(ev["node"].as_str().unwrap().len(), 40);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - ev["ts_ms"].as_i64().unwrap()).abs() < 60_000);

    // A REST write goes through the same command path: same event.
    let (s, _) = send_json(
        reqwest::Method::DELETE,
        node.http_addr(),
        "/api/v1/keys/user:1",
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let ev = ws_next(&mut ws).await;
    assert_eq!(
        (ev["event"].as_str(), ev["key"].as_str()),
        (Some("del"), Some("user:1"))
    );

    // Binary keys arrive as base64 with a flag.
    let _: () = c.set(b"user:\xff".as_slice(), "b").await.unwrap();
    let ev = ws_next(&mut ws).await;
    assert_eq!(ev["key"], "dXNlcjr/");
    assert_eq!(ev["key_b64"], true);

    // Bad requests get an error and the socket stays usable.
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(ws_next(&mut ws).await["type"], "error");
    ws_send(&mut ws, json!({"op":"dance"})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "error");

    // Scan answers as /api/v1/keys does.
    ws_send(&mut ws, json!({"op":"scan","match":"other","count":1000})).await;
    let scan = ws_next(&mut ws).await;
    assert_eq!(scan["type"], "scan");
    assert_eq!(scan["cursor"], "0");
    assert_eq!(scan["keys"][0]["key"], "other");
    assert_eq!(scan["keys"][0]["type"], "string");

    // After unsubscribing (confirmed), only the sync scan comes back.
    ws_send(&mut ws, json!({"op":"unsubscribe","pattern":"user:*"})).await;
    assert_eq!(
        ws_next(&mut ws).await,
        json!({"type":"unsubscribed","pattern":"user:*"})
    );
    let _: () = c.set("user:2", "x").await.unwrap();
    ws_send(&mut ws, json!({"op":"scan","match":"__sync__"})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "scan");
    assert!(
        !node.node.store.events.has_listeners(),
        "no pattern, no subscription"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_stalled_client_is_told_what_it_missed_and_never_slows_writes() {
    let node = start_node(&[]).await;
    // A small receive buffer so the stall shows quickly.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream =
        tokio_tungstenite::MaybeTlsStream::Plain(sock.connect(node.http_addr()).await.unwrap());
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{}/ws", node.http_addr()), stream)
            .await
            .unwrap();
    ws_subscribe(&mut ws, "*").await;

    // 150k events, far beyond the bus's 65536-event buffer, while the client reads nothing.
    const ROUNDS: usize = 150;
    const PER: usize = 1000;
    let mut c = redis_conn(node.resp_addr()).await;
    let writes = async {
        for r in 0..ROUNDS {
            let pairs: Vec<(String, usize)> = (0..PER).map(|i| (format!("k{r}:{i}"), i)).collect();
            let _: () = c.mset(&pairs).await.unwrap();
        }
        let _: () = c.set("marker", "end").await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(120), writes)
        .await
        .expect("writes finish while the feed client is stalled");

    let (mut events, mut missed) = (0u64, 0u64);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "marker before deadline"
        );
        let m = ws_next(&mut ws).await;
        match m["type"].as_str() {
            Some("event") => {
                events += 1;
                if m["key"] == "marker" {
                    break;
                }
            }
            Some("lagged") => missed += m["missed"].as_u64().unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(missed > 0, "the client was told it fell behind");
    assert_eq!(
        events + missed,
        (ROUNDS * PER + 1) as u64,
        "every event was either delivered or counted as missed"
    );
    let body = http()
        .get(url(node.http_addr(), "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&body, "reredis_ws_dropped_events_total"),
        Some(missed as f64)
    );
    node.shutdown().await;
}

#[tokio::test]
async fn too_many_feed_clients_are_refused_with_a_close_code() {
    let node = start_node(&[("http.max-ws-clients", "1")]).await;
    let mut first = ws_connect(node.http_addr()).await;
    ws_subscribe(&mut first, "*").await;
    let mut second = ws_connect(node.http_addr()).await;
    let msg = tokio::time::timeout(WAIT, second.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match msg {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::Again);
            assert!(
                f.reason.as_str().contains("http.max-ws-clients"),
                "{}",
                f.reason
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // The first client still works; and shutdown closes it with 1001.
    ws_send(&mut first, json!({"op":"scan"})).await;
    assert_eq!(ws_next(&mut first).await["type"], "scan");
    let stopping = tokio::spawn(node.shutdown());
    let msg = tokio::time::timeout(WAIT, first.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(msg, Message::Close(Some(ref f)) if f.code == CloseCode::Away),
        "{msg:?}"
    );
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
}

/// The value of an unlabelled sample in Prometheus text.
fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_commands() {
    let node = start_node(&[]).await;
    let mut c = redis_conn(node.resp_addr()).await;
    for i in 0..25 {
        let _: () = c.set(format!("k{i}"), i).await.unwrap();
    }
    let _: Option<String> = c.get("nope").await.unwrap();
    let mut ws = ws_connect(node.http_addr()).await;
    ws_subscribe(&mut ws, "*").await;

    let r = http()
        .get(url(node.http_addr(), "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = r.text().await.unwrap();
    assert!(
        body.contains("reredis_commands_total{cmd=\"set\"} 25\n"),
        "{body}"
    );
    assert!(body.contains("reredis_command_duration_seconds_count{cmd=\"set\"} 25\n"));
    assert!(body.contains("reredis_command_duration_seconds_bucket{cmd=\"set\",le=\"+Inf\"} 25\n"));
    assert!(body.contains("reredis_keys{db=\"0\"} 25\n"));
    assert_eq!(metric(&body, "reredis_cluster_state"), Some(1.0));
    assert_eq!(
        metric(&body, "reredis_cluster_slots_assigned"),
        Some(16384.0)
    );
    assert_eq!(metric(&body, "reredis_cluster_known_nodes"), Some(1.0));
    assert_eq!(metric(&body, "reredis_ws_clients"), Some(1.0));
    assert_eq!(metric(&body, "reredis_ws_subscribers"), Some(1.0));
    assert!(metric(&body, "reredis_connected_clients").unwrap() >= 1.0);
    assert!(metric(&body, "reredis_memory_used_bytes").unwrap() > 0.0);

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
    node.shutdown().await;
}

/// A child process killed (by its PID) and reaped when dropped, even if the test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn prometheus_scrapes_the_node() {
    let node = start_node(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: reredis\n    static_configs:\n      - targets: ['{}']\n",
            node.http_addr()
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Reaped(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package) is installed"),
    );
    let query = |q: &'static str| {
        let u = format!("http://127.0.0.1:{port}/api/v1/query");
        async move {
            let r = http().get(u).query(&[("query", q)]).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            let result = v["data"]["result"].as_array()?.first()?.clone();
            result["value"][1].as_str()?.parse::<f64>().ok()
        }
    };
    let scraped = wait_for(Duration::from_secs(60), async || {
        query("up{job=\"reredis\"}").await == Some(1.0)
            && query("reredis_cluster_known_nodes").await == Some(1.0)
    })
    .await;
    assert!(
        scraped,
        "prometheus scraped the node (up == 1 and reredis_* present)"
    );
    assert_eq!(query("reredis_cluster_slots_assigned").await, Some(16384.0));
    node.shutdown().await;
}

/// Errors the HTTP layer itself raises keep the API's shape: a body over the limit is a 413
/// `payload_too_large`, a method an endpoint does not take a 405 `method_not_allowed`.
#[tokio::test]
async fn oversized_bodies_and_wrong_methods_answer_in_the_error_shape() {
    let node = start_node(&[("http.allow-writes", "yes")]).await;
    let h = node.http_addr();
    let big = "x".repeat(reredis::http::api::MAX_BODY + 1);
    let (s, err) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/big",
        Some(json!({"type":"string","value": big})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["error"]["code"], "payload_too_large");
    for path in ["/api/v1/info", "/api/v1/cluster", "/api/v1/keys"] {
        let (s, err) = send_json(reqwest::Method::POST, h, path, Some(json!({})), None).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(err["error"]["code"], "method_not_allowed", "{path}");
    }
    node.shutdown().await;
}

/// A web page of another site cannot use a visitor's browser against the node: `/ws` and
/// writes that carry a foreign `Origin` are refused (403 `cross_origin`), the node's own
/// origin and those in `http.allowed-origins` pass, and requests without `Origin` (tools,
/// client libraries) are not affected.
#[tokio::test]
async fn cross_origin_pages_cannot_open_the_feed_or_write() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let node = start_node(&[("http.allow-writes", "yes")]).await;
    let h = node.http_addr();
    let ws_from = |origin: &'static str| async move {
        let mut req = format!("ws://{h}/ws").into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req).await
    };
    let refused = ws_from("http://evil.example").await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    let own: &'static str = Box::leak(format!("http://{h}").into_boxed_str());
    assert!(ws_from(own).await.is_ok(), "the node's own origin");
    let put = |origin: &'static str| async move {
        http()
            .put(url(h, "/api/v1/keys/k"))
            .header("origin", origin)
            .json(&json!({"type":"string","value":"v"}))
            .send()
            .await
            .unwrap()
    };
    let r = put("http://evil.example").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "cross_origin");
    assert_eq!(put(own).await.status(), StatusCode::OK);
    // A cross-origin read gets its answer (the browser, seeing no CORS header, keeps it from
    // the page); so does a write without Origin.
    let r = http()
        .get(url(h, "/api/v1/info"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = send_json(
        reqwest::Method::PUT,
        h,
        "/api/v1/keys/k",
        Some(json!({"type":"string","value":"w"})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mut c = redis_conn(node.resp_addr()).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("http-allowed-origins")
        .arg("https://ui.example, http://evil.example")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ws_from("http://evil.example").await.is_ok(), "listed");
    assert_eq!(put("http://evil.example").await.status(), StatusCode::OK);
    node.shutdown().await;
}
