//! Functions (FUNCTION LOAD, FCALL) with real clients: libraries survive a restart from the
//! append-only log, from a rewritten log and from a snapshot; FUNCTION DUMP payloads cross
//! between redis-server and reredis both ways; FUNCTION KILL stops a long function while other
//! clients are told which KILL to use. Replies are compared with redis-server byte for byte
//! in tests/differential/function.txt.

mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use redis::aio::MultiplexedConnection;

const LIBRARY: &str = "#!lua name=counters\n\
    local function bump(keys, args)\n\
      return redis.call('incrby', keys[1], args[1])\n\
    end\n\
    redis.register_function('bump', bump)\n\
    redis.register_function{function_name='peek', callback=function(keys) \
      return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}\n";

async fn connect(addr: std::net::SocketAddr) -> MultiplexedConnection {
    common::connect_waiting(addr).await
}

async fn fcall(
    con: &mut MultiplexedConnection,
    f: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::Value {
    let mut c = redis::cmd("FCALL");
    c.arg(f).arg(keys.len());
    for k in keys {
        c.arg(*k);
    }
    for a in args {
        c.arg(*a);
    }
    c.query_async(con)
        .await
        .unwrap_or_else(|e| panic!("FCALL {f}: {e}"))
}

async fn load(con: &mut MultiplexedConnection, code: &str) {
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(code)
        .query_async(con)
        .await
        .expect("FUNCTION LOAD");
    assert!(code.contains(&format!("name={name}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libraries_survive_restarts_from_the_log_a_rewrite_and_a_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8").to_string();
    let with_log = [("dir", dir.as_str()), ("appendonly", "yes")];
    let h = common::start_loaded(&with_log).await;
    let mut con = connect(h.resp_addr()).await;
    load(&mut con, LIBRARY).await;
    assert_eq!(
        fcall(&mut con, "bump", &["n"], &["5"]).await,
        redis::Value::Int(5)
    );
    // SCRIPT FLUSH empties the script cache, not the libraries.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    drop(con);
    h.shutdown().await;

    // From the log (FUNCTION LOAD is a logged write).
    let h = common::start_loaded(&with_log).await;
    let mut con = connect(h.resp_addr()).await;
    assert_eq!(
        fcall(&mut con, "bump", &["n"], &["1"]).await,
        redis::Value::Int(6)
    );
    // From a rewritten log: the libraries are in its base.
    let _: String = redis::cmd("BGREWRITEAOF")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        common::wait_for(Duration::from_secs(30), async || {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query_async(&mut con)
                .await
                .unwrap();
            info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrites:1")
        })
        .await,
        "the rewrite finished"
    );
    let _: String = redis::cmd("SAVE").query_async(&mut con).await.unwrap();
    drop(con);
    h.shutdown().await;
    let log = std::fs::read(root.path().join("appendonly.aof")).expect("the log");
    assert!(
        !log.windows(4).any(|w| w.eq_ignore_ascii_case(b"load")),
        "the rewritten log holds the library as a FUNCTIONS record, not as FUNCTION LOAD"
    );
    let h = common::start_loaded(&with_log).await;
    let mut con = connect(h.resp_addr()).await;
    assert_eq!(
        fcall(&mut con, "bump", &["n"], &["1"]).await,
        redis::Value::Int(7)
    );
    drop(con);
    h.shutdown().await;

    // From the snapshot alone (SAVEd before the last bump).
    let snapshot_only = [("dir", dir.as_str()), ("appendonly", "no")];
    let h = common::start_loaded(&snapshot_only).await;
    let mut con = connect(h.resp_addr()).await;
    let peek = fcall(&mut con, "peek", &["n"], &[]).await;
    assert_eq!(peek, redis::Value::BulkString(b"6".to_vec()));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_whose_code_never_ends_is_stopped_after_500_ms() {
    let h = common::start_node(&[]).await;
    let mut con = connect(h.resp_addr()).await;
    let started = Instant::now();
    let r: redis::RedisResult<String> = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=forever\nwhile true do end")
        .query_async(&mut con)
        .await;
    let e = r.expect_err("stopped");
    assert!(e.to_string().contains("FUNCTION LOAD timeout"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The node goes on: a library loads and runs.
    load(&mut con, LIBRARY).await;
    assert_eq!(
        fcall(&mut con, "bump", &["n"], &["2"]).await,
        redis::Value::Int(2)
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_payloads_cross_between_redis_and_reredis_both_ways() {
    let redis = RedisServer::start().await;
    let node = common::start_node(&[]).await;
    let mut r = connect(redis.addr()).await;
    let mut ours = connect(node.resp_addr()).await;
    // A long library, so Redis compresses it (LZF) in its payload.
    let mut big = LIBRARY.replace("counters", "big");
    big = big
        .replace("'bump'", "'bump2'")
        .replace("'peek'", "'peek2'");
    big.push_str(&"-- padding padding padding padding\n".repeat(40));
    for code in [LIBRARY, big.as_str()] {
        load(&mut r, code).await;
    }
    let payload: Vec<u8> = redis::cmd("FUNCTION")
        .arg("DUMP")
        .query_async(&mut r)
        .await
        .unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&payload)
        .query_async(&mut ours)
        .await
        .expect("Redis's payload restores here");
    assert_eq!(
        fcall(&mut ours, "bump2", &["x"], &["3"]).await,
        redis::Value::Int(3)
    );
    // A second RESTORE of the same libraries collides, as in Redis; REPLACE takes it.
    let again: redis::RedisResult<()> = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&payload)
        .query_async(&mut ours)
        .await;
    assert!(again.unwrap_err().to_string().contains("already exists"));
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&payload)
        .arg("REPLACE")
        .query_async(&mut ours)
        .await
        .unwrap();

    let ours_payload: Vec<u8> = redis::cmd("FUNCTION")
        .arg("DUMP")
        .query_async(&mut ours)
        .await
        .unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&ours_payload)
        .arg("FLUSH")
        .query_async(&mut r)
        .await
        .expect("our payload restores in Redis");
    assert_eq!(
        fcall(&mut r, "bump", &["y"], &["4"]).await,
        redis::Value::Int(4)
    );
    let list: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut r)
        .await
        .unwrap();
    let text = format!("{list:?}");
    assert!(text.contains("peek2") && text.contains("reads"), "{text}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_kill_stops_a_long_function_and_others_are_told_to_use_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = common::cluster_node::ClusterNode::start(dir.path(), &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.port));
    let mut admin = connect(addr).await;
    load(
        &mut admin,
        "#!lua name=slow\nredis.register_function('spin', function() \
         local i = 0 while true do i = i + 1 end end)\n",
    )
    .await;
    let mut runner = connect(addr).await;
    let spinning = tokio::spawn(async move {
        redis::cmd("FCALL")
            .arg("spin")
            .arg(0)
            .query_async::<()>(&mut runner)
            .await
    });
    // The function runs before the other client's command is sent (FUNCTION STATS is served
    // while it does), else that command could simply run first.
    assert!(
        common::wait_for(Duration::from_secs(10), async || {
            let stats: redis::Value = redis::cmd("FUNCTION")
                .arg("STATS")
                .query_async(&mut admin)
                .await
                .unwrap();
            format!("{stats:?}").contains("spin")
        })
        .await,
        "the function started"
    );
    // Another client waits, then is told to use FUNCTION KILL.
    let mut other = connect(addr).await;
    let started = Instant::now();
    let busy: redis::RedisResult<()> = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut other)
        .await;
    let e = busy.expect_err("BUSY while the function runs");
    assert!(
        e.to_string().contains("FUNCTION KILL"),
        "names FUNCTION KILL: {e}"
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
    // SCRIPT KILL does not stop a function; FUNCTION KILL does.
    let wrong: redis::RedisResult<()> = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut admin)
        .await;
    assert_eq!(wrong.expect_err("refused").code(), Some("BUSY"));
    let stats: redis::Value = redis::cmd("FUNCTION")
        .arg("STATS")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(format!("{stats:?}").contains("spin"), "{stats:?}");
    let _: () = redis::cmd("FUNCTION")
        .arg("KILL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), spinning)
        .await
        .expect("the function stops")
        .expect("task");
    assert!(r.unwrap_err().to_string().contains("killed"));
    let ok: String = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut other)
        .await
        .unwrap();
    assert_eq!(ok, "OK");
}
