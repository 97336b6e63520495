//! DUMP and RESTORE against a real `redis-server`: payloads made by Redis 7.0 (listpack, intset,
//! quicklist, LZF-compressed strings) restore here with the same contents, and ours restore in
//! Redis. Values are compared through the commands that read them, not through the payloads.

mod common;

use common::redis_server::RedisServer;
use common::start_node;
use redis::aio::MultiplexedConnection;

/// Each key is created with these commands, in both servers.
fn fixtures() -> Vec<Vec<String>> {
    let long = "abc".repeat(2000); // LZF-compressible
    let mut big_hash = vec!["HSET".to_string(), "h:big".into()];
    for i in 0..600 {
        big_hash.push(format!("field{i}"));
        big_hash.push(format!("value{i}"));
    }
    let mut big_list = vec!["RPUSH".to_string(), "l:big".into()];
    for i in 0..1000 {
        big_list.push(format!("element-{i}-{}", "x".repeat(i % 50)));
    }
    let mut big_zset = vec!["ZADD".to_string(), "z:big".into()];
    for i in 0..200 {
        big_zset.push(format!("{}", i as f64 / 3.0));
        big_zset.push(format!("m{i}"));
    }
    let raw: Vec<Vec<&str>> = vec![
        vec!["SET", "s:small", "hello"],
        vec!["SET", "s:int", "12345"],
        vec!["SET", "s:bigint", "-9223372036854775808"],
        vec!["SET", "s:long", &long],
        vec!["HSET", "h:small", "a", "1", "b", "two", "c", "-300"],
        vec!["SADD", "set:int", "1", "2", "3", "-70000", "4000000000"],
        vec!["SADD", "set:str", "a", "b", "c"],
        vec!["RPUSH", "l:small", "a", "1", "b", "-2", "65535"],
        vec![
            "ZADD", "z:small", "1", "a", "2.5", "b", "-inf", "c", "inf", "d",
        ],
    ];
    let mut all: Vec<Vec<String>> = raw
        .into_iter()
        .map(|c| c.into_iter().map(String::from).collect())
        .collect();
    all.extend([big_hash, big_list, big_zset]);
    all.extend(stream_fixtures());
    all
}

/// Streams: several nodes (fields that change, numbers, long values), deleted entries, and
/// consumer groups with pending entries, consumers and read counters.
fn stream_fixtures() -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut add = |c: &[&str]| out.push(c.iter().map(|s| s.to_string()).collect());
    add(&["XADD", "x:small", "1-1", "a", "1", "b", "two"]);
    add(&["XADD", "x:small", "2-0", "a", "-70000", "b", "x"]);
    add(&["XADD", "x:small", "2-5", "c", "9223372036854775807"]);
    add(&["XGROUP", "CREATE", "x:empty", "g", "$", "MKSTREAM"]);
    for i in 0..250u64 {
        let id = format!("{}-{}", 1_700_000_000_000u64 + i / 3, i % 3);
        let long = "v".repeat((i % 40) as usize * 7);
        let f = if i % 17 == 0 { "other" } else { "field" };
        add(&["XADD", "x:big", &id, f, &i.to_string(), "long", &long]);
    }
    add(&["XDEL", "x:big", "1700000000002-1", "1700000000040-0"]);
    add(&["XGROUP", "CREATE", "x:big", "g1", "0"]);
    add(&[
        "XGROUP",
        "CREATE",
        "x:big",
        "g2",
        "1700000000050-0",
        "ENTRIESREAD",
        "150",
    ]);
    add(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "20",
        "STREAMS",
        "x:big",
        ">",
    ]);
    add(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "bob",
        "COUNT",
        "5",
        "STREAMS",
        "x:big",
        ">",
    ]);
    add(&["XACK", "x:big", "g1", "1700000000001-0", "1700000000003-2"]);
    add(&["XGROUP", "CREATECONSUMER", "x:big", "g2", "idle-one"]);
    out
}

/// The key a fixture command writes.
fn key_of(f: &[String]) -> &str {
    match f[0].as_str() {
        "XGROUP" => &f[2],
        "XREADGROUP" => &f[f.len() - 2],
        _ => &f[1],
    }
}

/// The contents of a key, read back with type-specific commands and sorted where unordered.
async fn contents(c: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    let t: String = redis::cmd("TYPE").arg(key).query_async(c).await.unwrap();
    let mut v: Vec<String> = match t.as_str() {
        "string" => vec![redis::cmd("GET").arg(key).query_async(c).await.unwrap()],
        "hash" => redis::cmd("HGETALL").arg(key).query_async(c).await.unwrap(),
        "set" => redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(c)
            .await
            .unwrap(),
        "list" => redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(c)
            .await
            .unwrap(),
        "zset" => redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(c)
            .await
            .unwrap(),
        // Everything a stream holds, its radix tree size and pending entries' times included.
        "stream" => {
            let full: redis::Value = redis::cmd("XINFO")
                .arg("STREAM")
                .arg(key)
                .arg("FULL")
                .arg("COUNT")
                .arg(0)
                .query_async(c)
                .await
                .unwrap();
            vec![format!("{full:?}")]
        }
        other => panic!("unexpected type {other} for {key}"),
    };
    if t == "set" {
        v.sort();
    }
    if t == "hash" {
        let mut pairs: Vec<(String, String)> =
            v.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        pairs.sort();
        v = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
    }
    let mut out = vec![t];
    out.extend(v);
    out
}

async fn load(c: &mut MultiplexedConnection) {
    for f in fixtures() {
        let mut cmd = redis::cmd(&f[0]);
        for a in &f[1..] {
            cmd.arg(a);
        }
        let _: redis::Value = cmd.query_async(c).await.unwrap();
    }
}

async fn copy_all(from: &mut MultiplexedConnection, to: &mut MultiplexedConnection) {
    let mut keys: Vec<String> = fixtures().iter().map(|f| key_of(f).to_string()).collect();
    keys.dedup();
    for key in &keys {
        let payload: Vec<u8> = redis::cmd("DUMP").arg(key).query_async(from).await.unwrap();
        let ok: String = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(&payload)
            .query_async(to)
            .await
            .unwrap_or_else(|e| panic!("RESTORE {key}: {e}"));
        assert_eq!(ok, "OK");
        assert_eq!(
            contents(from, key).await,
            contents(to, key).await,
            "{key} after DUMP/RESTORE"
        );
    }
}

#[tokio::test]
async fn payloads_cross_between_redis_and_reredis_both_ways() {
    let redis = RedisServer::start().await;
    let node = start_node(&[]).await;
    let mut r = common::client(redis.addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut ours = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Redis checks every listpack it is given, deeply.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("sanitize-dump-payload")
        .arg("yes")
        .query_async(&mut r)
        .await
        .unwrap();
    // Redis -> Reredis: Redis 7.0 writes listpacks, intsets, quicklists and LZF strings.
    load(&mut r).await;
    copy_all(&mut r, &mut ours).await;
    // Encodings follow our limits, as a fresh write would.
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("h:big")
        .query_async(&mut ours)
        .await
        .unwrap();
    assert_eq!(enc, "hashtable");
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("set:int")
        .query_async(&mut ours)
        .await
        .unwrap();
    assert_eq!(enc, "intset");
    // Reredis -> Redis.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut r).await.unwrap();
    copy_all(&mut ours, &mut r).await;
}

#[tokio::test]
async fn restore_errors_and_options_match_redis() {
    let redis = RedisServer::start().await;
    let node = start_node(&[]).await;
    let mut results: Vec<Vec<String>> = Vec::new();
    for addr in [redis.addr(), node.resp_addr()] {
        let mut c = common::client(addr)
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query_async(&mut c)
            .await
            .unwrap();
        let payload: Vec<u8> = redis::cmd("DUMP")
            .arg("k")
            .query_async(&mut c)
            .await
            .unwrap();
        let mut corrupt = payload.clone();
        let n = corrupt.len();
        corrupt[n - 3] ^= 0x55;
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![b"k".to_vec(), b"0".to_vec(), payload.clone()],
            vec![b"k2".to_vec(), b"-1".to_vec(), payload.clone()],
            vec![b"k2".to_vec(), b"x".to_vec(), payload.clone()],
            vec![b"k2".to_vec(), b"0".to_vec(), corrupt],
            vec![b"k2".to_vec(), b"0".to_vec(), b"short".to_vec()],
            vec![
                b"k".to_vec(),
                b"0".to_vec(),
                payload.clone(),
                b"REPLACE".to_vec(),
            ],
            vec![
                b"k".to_vec(),
                b"0".to_vec(),
                payload.clone(),
                b"BOGUS".to_vec(),
            ],
            vec![
                b"k3".to_vec(),
                b"0".to_vec(),
                payload.clone(),
                b"IDLETIME".to_vec(),
                b"-1".to_vec(),
            ],
            vec![
                b"k3".to_vec(),
                b"0".to_vec(),
                payload.clone(),
                b"FREQ".to_vec(),
                b"300".to_vec(),
            ],
            // An absolute TTL in the past: OK, and the key is not created.
            vec![
                b"k4".to_vec(),
                b"1000".to_vec(),
                payload.clone(),
                b"ABSTTL".to_vec(),
            ],
            vec![b"k5".to_vec(), b"100000".to_vec(), payload.clone()],
        ];
        let mut got = Vec::new();
        for args in cases {
            let mut cmd = redis::cmd("RESTORE");
            for a in &args {
                cmd.arg(&a[..]);
            }
            let r: redis::RedisResult<String> = cmd.query_async(&mut c).await;
            got.push(match r {
                Ok(s) => s,
                Err(e) => format!("{:?} {}", e.kind(), e.detail().unwrap_or("")),
            });
        }
        let exists: i64 = redis::cmd("EXISTS")
            .arg("k4")
            .query_async(&mut c)
            .await
            .unwrap();
        got.push(format!("k4 exists {exists}"));
        let ttl: i64 = redis::cmd("PTTL")
            .arg("k5")
            .query_async(&mut c)
            .await
            .unwrap();
        got.push(format!("k5 ttl set {}", ttl > 90_000 && ttl <= 100_000));
        // IDLETIME longer than the server has been up.
        let _: () = redis::cmd("RESTORE")
            .arg("k6")
            .arg(0)
            .arg(&payload[..])
            .arg("IDLETIME")
            .arg(100_000)
            .query_async(&mut c)
            .await
            .unwrap();
        let idle: i64 = redis::cmd("OBJECT")
            .arg("IDLETIME")
            .arg("k6")
            .query_async(&mut c)
            .await
            .unwrap();
        got.push(format!(
            "k6 idle set {}",
            (100_000..=100_010).contains(&idle)
        ));
        results.push(got);
    }
    assert_eq!(results[0], results[1]);
}
