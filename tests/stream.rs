//! Streams with real clients: blocked XREAD and XREADGROUP woken by XADD from another
//! connection, consumer groups sharing the entries, keyspace events, and a stream with its
//! groups surviving a restart from the append-only log and from a snapshot. Replies are
//! compared with redis-server byte for byte in tests/differential/stream.txt.

mod common;

use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::MultiplexedConnection;

async fn connect(addr: std::net::SocketAddr) -> MultiplexedConnection {
    common::connect_waiting(addr).await
}

async fn q(con: &mut MultiplexedConnection, args: &[&str]) -> Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(con)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The entry IDs in an XREAD/XREADGROUP reply (RESP2: [[key, [[id, fields], ...]], ...]).
fn ids_of(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Array(streams) = v {
        for s in streams {
            if let Value::Array(kv) = s
                && let Some(Value::Array(entries)) = kv.get(1)
            {
                for e in entries {
                    if let Value::Array(e) = e
                        && let Some(Value::BulkString(id)) = e.first()
                    {
                        out.push(String::from_utf8_lossy(id).into_owned());
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_readers_are_woken_by_an_xadd_from_another_client() {
    let h = common::start_node(&[]).await;
    let addr = h.resp_addr();
    let mut writer = connect(addr).await;
    q(&mut writer, &["XADD", "s", "1-1", "old", "x"]).await;
    // Three readers wait for what comes after the last ID (`$`), one of them on two streams.
    let mut readers = Vec::new();
    for i in 0..3 {
        readers.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            let keys: &[&str] = if i == 2 {
                &["XREAD", "BLOCK", "10000", "STREAMS", "other", "s", "$", "$"]
            } else {
                &["XREAD", "BLOCK", "10000", "STREAMS", "s", "$"]
            };
            let started = Instant::now();
            let v = q(&mut c, keys).await;
            (ids_of(&v), started.elapsed())
        }));
    }
    // Every reader is blocked before the write.
    assert!(
        common::wait_for(Duration::from_secs(10), async || {
            h.node.store.blocked.len() == 3
        })
        .await,
        "three blocked clients"
    );
    q(&mut writer, &["XADD", "s", "2-1", "new", "y"]).await;
    for r in readers {
        let (ids, waited) = r.await.expect("reader");
        assert_eq!(
            ids,
            vec!["2-1".to_string()],
            "each reader gets the new entry"
        );
        assert!(waited < Duration::from_secs(9), "woken, not timed out");
    }
    assert_eq!(h.node.store.blocked.len(), 0);

    // A timeout in milliseconds replies nil.
    let mut c = connect(addr).await;
    let started = Instant::now();
    let v = q(&mut c, &["XREAD", "BLOCK", "150", "STREAMS", "s", "$"]).await;
    assert_eq!(v, Value::Nil);
    assert!(started.elapsed() >= Duration::from_millis(140));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_a_group_share_new_entries_and_ack_them() {
    let h = common::start_node(&[]).await;
    let addr = h.resp_addr();
    let mut admin = connect(addr).await;
    q(
        &mut admin,
        &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"],
    )
    .await;
    let mut waiting = Vec::new();
    for name in ["w1", "w2"] {
        waiting.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            let v = q(
                &mut c,
                &[
                    "XREADGROUP",
                    "GROUP",
                    "workers",
                    name,
                    "BLOCK",
                    "10000",
                    "COUNT",
                    "1",
                    "STREAMS",
                    "jobs",
                    ">",
                ],
            )
            .await;
            (name, ids_of(&v))
        }));
    }
    assert!(
        common::wait_for(Duration::from_secs(10), async || {
            h.node.store.blocked.len() == 2
        })
        .await
    );
    // Two jobs: each waiting consumer gets exactly one of them.
    q(&mut admin, &["XADD", "jobs", "1-0", "job", "a"]).await;
    q(&mut admin, &["XADD", "jobs", "2-0", "job", "b"]).await;
    let mut got = Vec::new();
    for w in waiting {
        let (name, ids) = w.await.expect("consumer");
        assert_eq!(ids.len(), 1, "{name} got one job: {ids:?}");
        got.push((name, ids[0].clone()));
    }
    let mut all: Vec<&str> = got.iter().map(|(_, id)| id.as_str()).collect();
    all.sort();
    assert_eq!(all, ["1-0", "2-0"], "no job went to both consumers");
    // Both are pending, each with its consumer, until acknowledged.
    let pending = q(&mut admin, &["XPENDING", "jobs", "workers"]).await;
    let Value::Array(p) = &pending else {
        panic!("XPENDING: {pending:?}")
    };
    assert_eq!(p[0], Value::Int(2));
    for (name, id) in &got {
        let v = q(
            &mut admin,
            &["XPENDING", "jobs", "workers", "-", "+", "10", name],
        )
        .await;
        assert!(
            format!("{v:?}").contains(id.as_str()),
            "{name} owns {id}: {v:?}"
        );
        let acked = q(&mut admin, &["XACK", "jobs", "workers", id]).await;
        assert_eq!(acked, Value::Int(1));
    }
    let pending = q(&mut admin, &["XPENDING", "jobs", "workers"]).await;
    assert!(matches!(&pending, Value::Array(p) if p[0] == Value::Int(0)));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_writes_publish_keyspace_events() {
    let h = common::start_node(&[("notify-keyspace-events", "Et")]).await;
    let mut raw = common::Raw::connect(h.resp_addr()).await;
    // RESP3, so the marker ECHO the raw client reads up to is allowed while subscribed.
    raw.send(&common::cmd(&[b"HELLO", b"3"])).await;
    let sub = raw
        .send(&common::cmd(&[b"PSUBSCRIBE", b"__keyevent@0__:x*"]))
        .await;
    assert!(String::from_utf8_lossy(&sub).contains("psubscribe"));
    let mut con = connect(h.resp_addr()).await;
    q(&mut con, &["XADD", "s", "MAXLEN", "1", "1-1", "a", "1"]).await;
    q(&mut con, &["XADD", "s", "MAXLEN", "1", "2-1", "a", "2"]).await;
    q(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]).await;
    q(&mut con, &["XDEL", "s", "2-1"]).await;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("xdel") && Instant::now() < deadline {
        seen.push_str(&String::from_utf8_lossy(&raw.send(b"").await));
    }
    let order: Vec<&str> = ["xadd", "xtrim", "xgroup-create", "xdel"]
        .into_iter()
        .filter(|e| seen.contains(&format!("__keyevent@0__:{e}\r\n")))
        .collect();
    assert_eq!(order, ["xadd", "xtrim", "xgroup-create", "xdel"], "{seen}");
    h.shutdown().await;
}

/// What must survive a restart: entries, the stream's counters and its groups (positions,
/// pending entries with their owners and delivery counts).
async fn durable_view(con: &mut MultiplexedConnection) -> Vec<Value> {
    vec![
        q(con, &["XRANGE", "s", "-", "+"]).await,
        q(con, &["XINFO", "GROUPS", "s"]).await,
        q(con, &["XPENDING", "s", "g"]).await,
        q(con, &["XINFO", "CONSUMERS", "s", "g"]).await,
        q(
            con,
            &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"],
        )
        .await,
        q(con, &["XLEN", "s"]).await,
    ]
    .into_iter()
    // Idle times are clocks, not state.
    .map(|v| blank_idle(&v))
    .collect()
}

fn blank_idle(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut prev_idle = false;
            for it in items {
                out.push(if prev_idle {
                    Value::Nil
                } else {
                    blank_idle(it)
                });
                prev_idle = matches!(it, Value::BulkString(b) if b == b"idle");
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_groups_survive_a_restart_from_the_log_and_from_a_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8").to_string();
    let settings = [
        ("dir", dir.as_str()),
        ("appendonly", "yes"),
        ("stream-node-max-entries", "10"),
    ];
    let h = common::start_node(&settings).await;
    let mut con = connect(h.resp_addr()).await;
    for i in 0..60 {
        let v = format!("{i}");
        q(&mut con, &["XADD", "s", "*", "n", &v, "pad", "xxxxxxxx"]).await;
    }
    // Approximate trims go by whole nodes; the log gets the exact outcome.
    q(&mut con, &["XTRIM", "s", "MAXLEN", "~", "35"]).await;
    q(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]).await;
    q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "5",
            "STREAMS",
            "s",
            ">",
        ],
    )
    .await;
    q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "COUNT",
            "3",
            "STREAMS",
            "s",
            ">",
        ],
    )
    .await;
    let first: Value = q(&mut con, &["XRANGE", "s", "-", "+", "COUNT", "2"]).await;
    let ids = ids_of(&Value::Array(vec![Value::Array(vec![
        Value::BulkString(b"s".to_vec()),
        first,
    ])]));
    q(&mut con, &["XACK", "s", "g", &ids[0]]).await;
    q(
        &mut con,
        &["XCLAIM", "s", "g", "carol", "0", &ids[1], "RETRYCOUNT", "4"],
    )
    .await;
    // History reads count deliveries too.
    q(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "0"],
    )
    .await;
    q(&mut con, &["XDEL", "s", &ids[1]]).await;
    let before = durable_view(&mut con).await;
    let len = &before[5];
    assert!(
        matches!(len, Value::Int(n) if (35..60).contains(n)),
        "trimmed by whole nodes: {len:?}"
    );
    drop(con);
    h.shutdown().await;
    let log = std::fs::read(root.path().join("appendonly.aof"))
        .expect("the log")
        .to_ascii_lowercase();
    // An argument in a log record: its length (u32, little-endian), then its bytes.
    let has_arg = |a: &[u8]| {
        let mut want = (a.len() as u32).to_le_bytes().to_vec();
        want.extend_from_slice(a);
        log.windows(want.len()).any(|w| w == want)
    };
    assert!(has_arg(b"xclaim") && has_arg(b"xtrim") && has_arg(b"="));
    assert!(
        !has_arg(b"xreadgroup") && !has_arg(b"~") && !has_arg(b"*"),
        "deliveries logged as XCLAIM, trims exact, IDs as generated"
    );

    // From the log.
    let h = common::start_loaded(&settings).await;
    let mut con = connect(h.resp_addr()).await;
    assert_eq!(
        durable_view(&mut con).await,
        before,
        "replayed from the log"
    );
    // The same stream through a snapshot, times and all.
    let full = q(&mut con, &["XINFO", "STREAM", "s", "FULL"]).await;
    q(&mut con, &["SAVE"]).await;
    drop(con);
    h.shutdown().await;
    let snap_settings = [
        ("dir", dir.as_str()),
        ("appendonly", "no"),
        ("stream-node-max-entries", "10"),
    ];
    let h = common::start_loaded(&snap_settings).await;
    let mut con = connect(h.resp_addr()).await;
    assert_eq!(
        q(&mut con, &["XINFO", "STREAM", "s", "FULL"]).await,
        full,
        "loaded from the snapshot"
    );
    h.shutdown().await;
}

/// The idle time XINFO CONSUMERS reports for `consumer` of group `g` on `s`.
async fn consumer_idle(con: &mut MultiplexedConnection, consumer: &str) -> i64 {
    let Value::Array(consumers) = q(con, &["XINFO", "CONSUMERS", "s", "g"]).await else {
        panic!("XINFO CONSUMERS");
    };
    for c in consumers {
        let Value::Array(fields) = c else { continue };
        let named = fields
            .iter()
            .any(|f| matches!(f, Value::BulkString(b) if b == consumer.as_bytes()));
        if !named {
            continue;
        }
        let at = fields
            .iter()
            .position(|f| matches!(f, Value::BulkString(b) if b == b"idle"))
            .expect("idle");
        if let Value::Int(n) = fields[at + 1] {
            return n;
        }
    }
    panic!("no consumer {consumer}");
}

/// An approximate MINID trim that empties the stream is logged so that the replay empties it
/// too; consumers keep honest seen times through the log, and claiming counts as being seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trims_and_consumer_times_replay_as_they_happened() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8").to_string();
    let settings = [("dir", dir.as_str()), ("appendonly", "yes")];
    let h = common::start_node(&settings).await;
    let mut con = connect(h.resp_addr()).await;
    q(
        &mut con,
        &["XADD", "s", "MINID", "~", "1000", "5-0", "f", "v"],
    )
    .await;
    q(&mut con, &["XADD", "t", "1-1", "f", "v"]).await;
    q(&mut con, &["XADD", "t", "2-1", "f", "v"]).await;
    q(&mut con, &["XTRIM", "t", "MINID", "~", "9"]).await;
    assert_eq!(q(&mut con, &["XLEN", "s"]).await, Value::Int(0));
    assert_eq!(q(&mut con, &["XLEN", "t"]).await, Value::Int(0));

    q(&mut con, &["XADD", "s", "10-1", "f", "v"]).await;
    q(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]).await;
    q(&mut con, &["XGROUP", "CREATECONSUMER", "s", "g", "alice"]).await;
    q(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // alice claims bob's entry: she is seen now.
    q(&mut con, &["XCLAIM", "s", "g", "alice", "0", "10-1"]).await;
    let idle = consumer_idle(&mut con, "alice").await;
    assert!(idle < 300, "alice claimed just now, idle {idle}");
    drop(con);
    h.shutdown().await;

    let h = common::start_loaded(&settings).await;
    let mut con = connect(h.resp_addr()).await;
    assert_eq!(q(&mut con, &["XLEN", "t"]).await, Value::Int(0), "replayed");
    assert_eq!(q(&mut con, &["XLEN", "s"]).await, Value::Int(1), "replayed");
    for who in ["alice", "bob"] {
        let idle = consumer_idle(&mut con, who).await;
        assert!(
            (0..60_000).contains(&idle),
            "{who} replayed with a seen time of the clock's, idle {idle}"
        );
    }
    h.shutdown().await;
}
