//! Lists and sorted sets through real clients (the byte-for-byte comparison with
//! `redis-server` is `tests/differential/{list,zset}.txt`, run by tests/differential.rs).

mod common;

use common::resp::Conn;
use common::start_node;
use redis::AsyncCommands;

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
