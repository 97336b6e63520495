//! Lists and sorted sets through real clients, and the differential check of
//! `tests/differential/{list,zset}.txt` against Debian's `redis-server`: every reply must match
//! byte for byte, errors included.

mod common;

use std::path::Path;

use common::redis_server::RedisServer;
use common::resp::Conn;
use common::start_node;
use redis::AsyncCommands;

/// Splits a line as redis-cli does: spaces separate, "double quotes" take escapes
/// (`\n \r \t \" \\ \xHH`), 'single quotes' are literal.
fn split_args(line: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut cur = Vec::new();
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    match b[i] {
                        b'n' => cur.push(b'\n'),
                        b'r' => cur.push(b'\r'),
                        b't' => cur.push(b'\t'),
                        b'x' if i + 2 < b.len() => {
                            let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                            cur.push(u8::from_str_radix(h, 16).unwrap());
                            i += 2;
                        }
                        c => cur.push(c),
                    }
                } else {
                    cur.push(b[i]);
                }
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                cur.push(b[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && b[i] != b' ' {
                cur.push(b[i]);
                i += 1;
            }
        }
        out.push(cur);
    }
    out
}

fn scripts(file: &Path) -> Vec<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(file).expect("case file");
    let mut all = Vec::new();
    let mut cur = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t.is_empty() {
            if !cur.is_empty() {
                all.push(std::mem::take(&mut cur));
            }
        } else if !t.starts_with('#') {
            cur.push((n + 1, t.to_string()));
        }
    }
    if !cur.is_empty() {
        all.push(cur);
    }
    all
}

async fn differential(file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/differential")
        .join(file);
    let redis = RedisServer::start().await;
    let node = start_node(&[]).await;
    let ours = node.resp_addr().port();
    let mut mismatches = Vec::new();
    let mut cases = 0;
    for script in scripts(&path) {
        let mut a = Conn::open(("127.0.0.1", redis.port)).await;
        let mut b = Conn::open(("127.0.0.1", ours)).await;
        let flush = vec![b"FLUSHALL".to_vec()];
        a.call(&flush).await;
        b.call(&flush).await;
        for (line_no, line) in &script {
            let args = split_args(line);
            let want = a.call(&args).await;
            let got = b.call(&args).await;
            cases += 1;
            // HELLO's reply carries the connection's id, which differs between servers.
            let hello = args
                .first()
                .is_some_and(|a| a.eq_ignore_ascii_case(b"HELLO"));
            if want != got && !hello {
                mismatches.push(format!(
                    "{file}:{line_no}: {line}\n  redis:   {:?}\n  reredis: {:?}",
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&got)
                ));
            }
        }
    }
    node.shutdown().await;
    assert!(cases >= 150, "{file}: only {cases} cases");
    assert!(
        mismatches.is_empty(),
        "{} of {cases} replies differ from redis-server:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn lists_match_redis_server() {
    differential("list.txt").await;
}

#[tokio::test]
async fn sorted_sets_match_redis_server() {
    differential("zset.txt").await;
}

#[tokio::test]
async fn lists_and_zsets_with_the_redis_crate() {
    let node = start_node(&[]).await;
    let mut c = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let n: i64 = c.rpush("l", &["a", "b", "c"]).await.unwrap();
    assert_eq!(n, 3);
    let v: Vec<String> = c.lrange("l", 0, -1).await.unwrap();
    assert_eq!(v, ["a", "b", "c"]);
    let _: () = c
        .zadd_multiple("z", &[(1.5, "x"), (0.5, "y")])
        .await
        .unwrap();
    let r: Vec<(String, f64)> = c.zrange_withscores("z", 0, -1).await.unwrap();
    assert_eq!(r, [("y".to_string(), 0.5), ("x".to_string(), 1.5)]);
    let rank: Option<i64> = c.zrank("z", "x").await.unwrap();
    assert_eq!(rank, Some(1));
    node.shutdown().await;
}

#[tokio::test]
async fn large_collections_keep_order_and_rank() {
    let node = start_node(&[]).await;
    let mut c = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let members: Vec<(i64, String)> = (0..5000)
        .map(|i| ((i * 7919) % 5000, format!("m{i}")))
        .collect();
    for chunk in members.chunks(500) {
        let _: () = c.zadd_multiple("z", chunk).await.unwrap();
    }
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("z")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(enc, "skiplist");
    let card: i64 = c.zcard("z").await.unwrap();
    assert_eq!(card, 5000);
    for (score, m) in members.iter().step_by(97) {
        let rank: Option<i64> = c.zrank("z", m).await.unwrap();
        assert_eq!(rank, Some(*score), "{m}");
    }
    let mid: Vec<String> = c.zrangebyscore_limit("z", 100, "+inf", 0, 3).await.unwrap();
    assert_eq!(mid.len(), 3);
    let items: Vec<String> = (0..20000).map(|i| format!("e{i}")).collect();
    for chunk in items.chunks(1000) {
        let _: () = c.rpush("l", chunk).await.unwrap();
    }
    let got: Vec<String> = c.lrange("l", 9998, 10001).await.unwrap();
    assert_eq!(got, ["e9998", "e9999", "e10000", "e10001"]);
    let idx: Option<String> = c.lindex("l", -1).await.unwrap();
    assert_eq!(idx.as_deref(), Some("e19999"));
    let used: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("l")
        .query_async(&mut c)
        .await
        .unwrap();
    // Packed nodes: about the element bytes plus a few per element.
    assert!((20000 * 6..20000 * 16).contains(&used), "{used}");
    node.shutdown().await;
}

#[tokio::test]
async fn commands_publish_redis_event_names() {
    let node = start_node(&[]).await;
    let mut sub = node.node.store.events.subscribe();
    let mut c = Conn::open(node.resp_addr()).await;
    for cmd in [
        "RPUSH l a b",
        "LPOP l",
        "RPOPLPUSH l m",
        "LINSERT m BEFORE b x",
        "LSET m 0 y",
        "LTRIM m 0 0",
        "LREM m 0 y",
        "ZADD z 1 a 2 b",
        "ZINCRBY z 1 a",
        "ZREM z a",
        "ZPOPMIN z",
        "ZADD s 1 a",
        "ZUNIONSTORE u 1 s",
        "ZRANGESTORE r s 0 -1",
        "ZREMRANGEBYSCORE s -inf +inf",
    ] {
        let args: Vec<Vec<u8>> = cmd.split(' ').map(|a| a.as_bytes().to_vec()).collect();
        c.call(&args).await;
    }
    let mut got = Vec::new();
    while let Ok(e) = sub.rx.try_recv() {
        got.push(format!("{} {}", e.event, String::from_utf8_lossy(&e.key)));
    }
    assert_eq!(
        got,
        [
            "rpush l",
            "lpop l",
            "lpush m",
            "rpop l",
            "del l",
            "linsert m",
            "lset m",
            "ltrim m",
            "lrem m",
            "del m",
            "zadd z",
            "zincr z",
            "zrem z",
            "zpopmin z",
            "del z",
            "zadd s",
            "zunionstore u",
            "zrangestore r",
            "zremrangebyscore s",
            "del s",
        ]
    );
    node.shutdown().await;
}
