//! MULTI/EXEC/DISCARD and WATCH/UNWATCH: interleavings of two connections compared byte for
//! byte with a real `redis-server`, and optimistic locking under contention.

mod common;

use std::time::Duration;

use common::session::{Conn, Step, assert_same_as_redis, c};
use redis::AsyncCommands;

#[tokio::test]
async fn watch_interleavings_match_redis() {
    let script: Vec<Step> = vec![
        // Untouched: EXEC runs.
        c(0, "SET k 1"),
        c(0, "WATCH k"),
        c(0, "MULTI"),
        c(0, "INCR k"),
        c(0, "EXEC"),
        // Another client writes: EXEC gets a null array.
        c(0, "WATCH k"),
        c(1, "SET k 5"),
        c(0, "MULTI"),
        c(0, "INCR k"),
        c(0, "EXEC"),
        c(0, "GET k"),
        // The watcher's own write counts too.
        c(0, "WATCH k"),
        c(0, "SET k 6"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        // Reads and failed writes change nothing.
        c(0, "WATCH k nokey"),
        c(1, "GET k"),
        c(1, "DEL nokey"),
        c(1, "INCR k x"),
        c(1, "SET k v NX"),
        c(0, "MULTI"),
        c(0, "PING"),
        c(0, "EXEC"),
        // Creating a watched key that did not exist breaks it.
        c(0, "WATCH nokey"),
        c(1, "SET nokey 1"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        c(1, "DEL nokey"),
        // UNWATCH forgets; DISCARD forgets.
        c(0, "WATCH k"),
        c(1, "SET k 7"),
        c(0, "UNWATCH"),
        c(0, "MULTI"),
        c(0, "GET k"),
        c(0, "EXEC"),
        c(0, "WATCH k"),
        c(0, "MULTI"),
        c(0, "DISCARD"),
        c(1, "SET k 8"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        // WATCH inside MULTI is an error that does not abort; MULTI cannot nest.
        c(0, "MULTI"),
        c(0, "WATCH k"),
        c(0, "MULTI"),
        c(0, "UNWATCH"),
        c(0, "INCR k"),
        c(0, "EXEC"),
        // Queueing errors abort with EXECABORT, which wins over a broken WATCH.
        c(0, "WATCH k"),
        c(1, "SET k 9"),
        c(0, "MULTI"),
        c(0, "NOSUCHCOMMAND"),
        c(0, "GET"),
        c(0, "EXEC"),
        c(0, "MULTI"),
        c(0, "SET x 1 2 3"),
        c(0, "EXEC"),
        // Runtime errors do not roll back.
        c(0, "MULTI"),
        c(0, "SET s abc"),
        c(0, "INCR s"),
        c(0, "SET s2 x"),
        c(0, "EXEC"),
        // Watches are per db; SELECT after WATCH keeps the db watched.
        c(0, "WATCH k"),
        c(0, "SELECT 1"),
        c(1, "SET k 10"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        c(0, "WATCH k"),
        c(1, "SELECT 1"),
        c(1, "SET k 11"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        c(1, "SELECT 0"),
        c(0, "SELECT 0"),
        // FLUSHDB/FLUSHALL break watches of keys that existed.
        c(0, "WATCH k"),
        c(1, "FLUSHDB"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        c(0, "SET k 1"),
        c(0, "WATCH missing"),
        c(1, "FLUSHALL"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        c(0, "SET k 1"),
        c(0, "WATCH k"),
        c(1, "SELECT 2"),
        c(1, "FLUSHDB"),
        c(1, "SELECT 0"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        // SWAPDB: a watched key that exists in either db changes.
        c(0, "WATCH k"),
        c(1, "SWAPDB 0 3"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        c(0, "WATCH k"),
        c(1, "SWAPDB 0 3"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        c(0, "WATCH nothing"),
        c(1, "SWAPDB 5 6"),
        c(0, "MULTI"),
        c(0, "EXEC"),
        // Expiry of a watched key breaks the watch.
        // Long enough that the key is alive when WATCH runs even on a loaded machine.
        c(0, "SET e v PX 500"),
        c(0, "WATCH e"),
        Step::WaitGone(1, b"e".to_vec()),
        c(0, "MULTI"),
        c(0, "EXEC"),
        // Consumer groups and a stream's last ID change no key as Redis counts changes: a
        // watch of the stream holds (XADD, XDEL, XTRIM and MKSTREAM do break it).
        c(0, "XADD s 1-1 f v"),
        c(0, "WATCH s"),
        c(1, "XGROUP CREATE s g 0"),
        c(1, "XGROUP CREATECONSUMER s g c1"),
        c(1, "XREADGROUP GROUP g c2 COUNT 1 STREAMS s >"),
        c(1, "XGROUP SETID s g 0"),
        c(1, "XGROUP DELCONSUMER s g c1"),
        c(1, "XSETID s 5-0"),
        c(1, "XGROUP DESTROY s g"),
        c(0, "MULTI"),
        c(0, "PING"),
        c(0, "EXEC"),
        c(0, "WATCH s"),
        c(1, "XGROUP CREATE s2 g $ MKSTREAM"),
        c(1, "XADD s 6-0 f v"),
        c(0, "MULTI"),
        c(0, "PING"),
        c(0, "EXEC"),
        // Errors.
        c(0, "WATCH"),
        c(0, "UNWATCH x"),
        c(0, "EXEC"),
        c(0, "DISCARD"),
        c(0, "MULTI"),
        c(0, "EXEC"),
    ];
    assert_same_as_redis(2, &script).await;
}

#[tokio::test]
async fn watched_key_that_expires_before_exec_fails_it() {
    let node = common::start_node(&[("hz", "1")]).await;
    let mut a = Conn::connect(node.resp_addr()).await;
    a.call_str(&["SET", "e", "v", "PX", "100"]).await;
    assert_eq!(a.call_str(&["WATCH", "e"]).await, "+OK\r\n");
    a.call_str(&["MULTI"]).await;
    // Wait out the TTL without touching the key (nothing deletes it before EXEC).
    let mut clock = Conn::connect(node.resp_addr()).await;
    let start = clock.call_str(&["TIME"]).await;
    let secs = |t: &str| -> f64 {
        let parts: Vec<&str> = t
            .split("\r\n")
            .filter(|l| !l.starts_with(['*', '$']))
            .collect();
        parts[0].parse::<f64>().unwrap() + parts[1].parse::<f64>().unwrap() / 1e6
    };
    let t0 = secs(&start);
    assert!(
        common::wait_for(Duration::from_secs(5), async || {
            secs(&clock.call_str(&["TIME"]).await) > t0 + 0.15
        })
        .await
    );
    assert_eq!(a.call_str(&["EXEC"]).await, "*-1\r\n");
    node.shutdown().await;
}

/// Optimistic increments from many connections: WATCH/GET/MULTI/SET/EXEC retried until EXEC
/// succeeds; no increment is lost.
#[tokio::test]
async fn optimistic_locking_loses_no_update() {
    let node = common::start_node(&[]).await;
    let addr = node.resp_addr();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut con = common::client(addr)
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let mut retries = 0;
            for _ in 0..50 {
                for attempt in 0.. {
                    assert!(attempt < 10_000, "starved");
                    let _: () = redis::cmd("WATCH")
                        .arg("counter")
                        .query_async(&mut con)
                        .await
                        .unwrap();
                    let v: Option<i64> = con.get("counter").await.unwrap();
                    let r: Option<(String,)> = redis::pipe()
                        .atomic()
                        .set("counter", v.unwrap_or(0) + 1)
                        .query_async(&mut con)
                        .await
                        .unwrap();
                    if r.is_some() {
                        break;
                    }
                    retries += 1;
                }
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let mut con = common::client(addr)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let v: i64 = con.get("counter").await.unwrap();
    assert_eq!(v, 400, "after {retries} retries");
    node.shutdown().await;
}

/// Bitmap and HyperLogLog writes break WATCH as Redis's do, including PFCOUNT refreshing the
/// cached count it keeps in the value.
#[tokio::test]
async fn bitmap_and_hyperloglog_writes_break_watch_as_redis() {
    let mut s = vec![c(0, "PFADD h a b"), c(0, "SETBIT b 1 1")];
    for (key, write) in [
        ("h", "PFCOUNT h"),
        ("h", "PFCOUNT h"),
        ("h", "PFADD h a"),
        ("h", "PFADD h z"),
        ("b", "SETBIT b 1 1"),
        ("b", "BITFIELD b GET u8 0"),
        ("b", "BITFIELD b SET u8 0 1"),
        ("b", "BITOP OR b b"),
        ("d", "PFMERGE d h"),
        ("d", "BITOP AND d nothing"),
    ] {
        s.extend([
            c(0, &format!("WATCH {key}")),
            c(1, write),
            c(0, "MULTI"),
            c(0, "PING"),
            c(0, "EXEC"),
        ]);
    }
    assert_same_as_redis(2, &s).await;
}
