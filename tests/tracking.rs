//! Client tracking (client-side caching): transcripts compared byte for byte with a real
//! `redis-server` (RESP3 pushes, RESP2 redirection to `__redis__:invalidate`, OPTIN/OPTOUT,
//! NOLOOP, BCAST prefixes, flushes, errors), the table's limit and INFO fields, and a cache
//! kept by invalidations alone that must end up agreeing with the server under concurrent
//! writes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::session::{Conn, Step, assert_same_as_redis, c, ca, q, redirect};

fn hello3(conn: usize) -> Step {
    q(conn, "HELLO 3")
}

#[tokio::test]
async fn resp3_invalidations_match_redis() {
    assert_same_as_redis(
        2,
        &[
            hello3(0),
            c(0, "CLIENT TRACKINGINFO"),
            c(0, "CLIENT GETREDIR"),
            c(0, "CLIENT TRACKING ON"),
            c(0, "CLIENT TRACKINGINFO"),
            c(0, "CLIENT GETREDIR"),
            // A read, then a write by another client: one invalidation, then the key is
            // forgotten until read again.
            c(0, "GET a"),
            c(1, "SET a 1"),
            c(1, "SET a 2"),
            c(0, "MGET a b c"),
            c(1, "MSET a 3 b 4"),
            c(1, "DEL c"),
            c(1, "SET c 1"),
            // Keys are names, whatever the db.
            c(0, "EXISTS d"),
            c(1, "SELECT 1"),
            c(1, "SET d 1"),
            c(1, "SELECT 0"),
            // A failed read is still a read; a write is not.
            c(0, "HGET a f"),
            c(0, "SET e 1"),
            c(1, "SET a x"),
            c(1, "SET e 2"),
            // The client's own write: its invalidation follows the reply.
            c(0, "GET f"),
            c(0, "SET f 1"),
            c(0, "INCR f"),
            // A transaction's reads are remembered; its own writes come after EXEC's reply.
            c(0, "MULTI"),
            c(0, "GET g"),
            c(0, "SET h 1"),
            c(0, "GET h"),
            c(0, "EXEC"),
            c(1, "SET g 1"),
            c(1, "SET h 2"),
            // Flushes invalidate everything with a null, even with nothing cached.
            c(0, "GET i"),
            c(1, "FLUSHDB"),
            c(1, "SET i 1"),
            c(1, "FLUSHALL"),
            c(0, "FLUSHALL"),
            // Off: nothing more.
            c(0, "GET j"),
            c(0, "CLIENT TRACKING OFF"),
            c(1, "SET j 1"),
            c(0, "CLIENT TRACKINGINFO"),
            // RESET turns tracking off too.
            c(0, "CLIENT TRACKING ON"),
            c(0, "GET k"),
            c(0, "RESET"),
            hello3(0),
            c(1, "SET k 1"),
            c(0, "CLIENT TRACKINGINFO"),
        ],
    )
    .await;
}

/// A script that calls a read command makes its caller cache the keys the script declared,
/// not the keys it read; one that only writes or pings caches nothing; EVAL_RO alone caches
/// nothing (Redis 7.0).
#[tokio::test]
async fn scripts_track_their_declared_keys_as_redis() {
    assert_same_as_redis(
        2,
        &[
            hello3(0),
            c(0, "CLIENT TRACKING ON"),
            ca(
                0,
                &["EVAL", "redis.call('set', 'k3', 'bar')", "2", "k1", "k2"],
            ),
            c(1, "MSET k1 1 k2 1 k3 1"),
            ca(
                0,
                &["EVAL", "return redis.call('get', 'k3')", "2", "k1", "k2"],
            ),
            c(1, "MSET k2 2 k1 2"),
            c(1, "SET k3 2"),
            ca(
                0,
                &["EVAL_RO", "return redis.call('ping')", "2", "k1", "k2"],
            ),
            c(1, "MSET k2 3 k1 3"),
            ca(
                0,
                &["EVAL_RO", "return redis.call('get', 'k1')", "2", "k1", "k2"],
            ),
            c(1, "MSET k2 4 k1 4"),
            c(0, "PING"),
            // The declared keys are remembered at the script's first read: its own later write
            // to one invalidates it after the reply, and leaves it forgotten.
            ca(
                0,
                &[
                    "EVAL",
                    "redis.call('get', KEYS[1]) redis.call('set', KEYS[2], 'x') return 1",
                    "2",
                    "sa",
                    "sb",
                ],
            ),
            c(1, "SET sb y"),
            c(0, "PING"),
        ],
    )
    .await;
}

#[tokio::test]
async fn expired_and_deleted_keys_are_invalidated_as_in_redis() {
    assert_same_as_redis(
        2,
        &[
            hello3(0),
            c(1, "SET t 1 PX 100"),
            c(0, "CLIENT TRACKING ON"),
            c(0, "GET t"),
            Step::WaitGone(1, b"t".to_vec()),
            c(0, "PING"),
            c(0, "GET u"),
            c(1, "SET u 1"),
            c(0, "GET u"),
            c(1, "EXPIRE u 100"),
            c(0, "GET u"),
            c(1, "RENAME u v"),
            c(0, "GET v"),
            c(1, "UNLINK v"),
            c(0, "GET w"),
            c(1, "LPUSH w a"),
            c(0, "LRANGE w 0 -1"),
            c(1, "LPOP w"),
            // The last tracking client turning tracking off leaves the table: turned on again,
            // it still hears of a key it read before.
            c(0, "GET x1"),
            c(0, "CLIENT TRACKING OFF"),
            c(0, "CLIENT TRACKING ON"),
            c(1, "SET x1 1"),
            c(0, "PING"),
        ],
    )
    .await;
}

#[tokio::test]
async fn optin_optout_and_noloop_match_redis() {
    assert_same_as_redis(
        2,
        &[
            hello3(0),
            c(0, "CLIENT TRACKING ON OPTIN"),
            c(0, "GET a"),
            c(0, "CLIENT CACHING YES"),
            c(0, "CLIENT TRACKINGINFO"),
            c(0, "GET b"),
            c(0, "CLIENT TRACKINGINFO"),
            c(1, "SET a 1"),
            c(1, "SET b 1"),
            // CACHING YES holds for a whole transaction.
            c(0, "CLIENT CACHING YES"),
            c(0, "MULTI"),
            c(0, "GET c"),
            c(0, "GET d"),
            c(0, "EXEC"),
            c(0, "GET e"),
            c(1, "MSET c 1 d 1 e 1"),
            c(0, "CLIENT CACHING NO"),
            c(0, "CLIENT TRACKING ON OPTOUT"),
            c(0, "CLIENT TRACKING OFF"),
            c(0, "CLIENT TRACKING ON OPTOUT NOLOOP"),
            c(0, "CLIENT TRACKINGINFO"),
            c(0, "CLIENT CACHING YES"),
            c(0, "CLIENT CACHING NO"),
            c(0, "CLIENT TRACKINGINFO"),
            c(0, "GET f"),
            c(0, "GET g"),
            c(1, "SET f 1"),
            c(1, "SET g 1"),
            // NOLOOP: the client's own writes send it nothing; others' still do.
            c(0, "GET h"),
            c(0, "SET h 1"),
            c(0, "GET h"),
            c(1, "SET h 2"),
            // A pending CACHING survives TRACKING ON given again (not OFF).
            c(0, "CLIENT TRACKING OFF"),
            c(0, "CLIENT TRACKING ON OPTIN"),
            c(0, "CLIENT CACHING YES"),
            c(0, "CLIENT TRACKING ON OPTIN"),
            c(0, "CLIENT TRACKINGINFO"),
            c(0, "GET i"),
            c(1, "SET i 1"),
        ],
    )
    .await;
}

#[tokio::test]
async fn bcast_prefixes_match_redis() {
    assert_same_as_redis(
        2,
        &[
            hello3(0),
            c(0, "CLIENT TRACKING ON BCAST PREFIX user: PREFIX cart:"),
            c(0, "CLIENT TRACKINGINFO"),
            // No read needed; every change under a prefix, and only there.
            c(1, "SET user:1 a"),
            c(1, "SET user:1 b"),
            c(1, "SET other 1"),
            c(1, "HSET cart:7 f v"),
            // One command's changes go in one message per prefix, keys in byte order.
            c(1, "MSET user:2 x user:1 y cart:1 z other 3 user:2 w"),
            c(1, "MULTI"),
            c(1, "SET user:9 a"),
            c(1, "DEL user:1 cart:7"),
            c(1, "EXEC"),
            c(0, "GET other"),
            c(1, "SET other 2"),
            // More prefixes may be added; overlapping ones are refused.
            c(0, "CLIENT TRACKING ON BCAST PREFIX order:"),
            c(0, "CLIENT TRACKING ON BCAST PREFIX us"),
            c(0, "CLIENT TRACKING ON BCAST PREFIX x PREFIX xy"),
            c(0, "CLIENT TRACKINGINFO"),
            c(1, "SET order:1 x"),
            c(1, "FLUSHALL"),
            c(0, "CLIENT TRACKING ON"),
            c(0, "CLIENT TRACKING OFF"),
            // BCAST with no prefix: every key; NOLOOP spares the client's own writes.
            c(0, "CLIENT TRACKING ON BCAST NOLOOP"),
            c(0, "CLIENT TRACKINGINFO"),
            c(1, "SET anything 1"),
            c(0, "SET mine 1"),
            c(0, "MSET mine 2 also-mine 2"),
            c(1, "MSET theirs 1 mine 3"),
        ],
    )
    .await;
}

#[tokio::test]
async fn tracking_errors_match_redis() {
    assert_same_as_redis(
        1,
        &[
            c(0, "CLIENT TRACKING"),
            c(0, "CLIENT TRACKING MAYBE"),
            c(0, "CLIENT TRACKING ON FOO"),
            c(0, "CLIENT TRACKING ON PREFIX"),
            c(0, "CLIENT TRACKING ON PREFIX a"),
            c(0, "CLIENT TRACKING ON BCAST OPTIN"),
            c(0, "CLIENT TRACKING ON BCAST OPTOUT"),
            c(0, "CLIENT TRACKING ON OPTIN OPTOUT"),
            c(0, "CLIENT TRACKING ON REDIRECT"),
            c(0, "CLIENT TRACKING ON REDIRECT x"),
            c(0, "CLIENT TRACKING ON REDIRECT 987654"),
            c(0, "CLIENT TRACKING ON REDIRECT 0"),
            c(0, "CLIENT TRACKING ON REDIRECT -1"),
            c(0, "CLIENT TRACKING MAYBE BCAST"),
            c(0, "CLIENT TRACKING OFF"),
            c(0, "CLIENT TRACKING OFF BCAST PREFIX a"),
            c(0, "CLIENT CACHING YES"),
            c(0, "CLIENT CACHING"),
            c(0, "CLIENT GETREDIR x"),
            c(0, "CLIENT TRACKINGINFO x"),
            c(0, "CLIENT TRACKING ON OPTIN"),
            c(0, "CLIENT CACHING NO"),
            c(0, "CLIENT CACHING MAYBE"),
            c(0, "CLIENT TRACKING ON OPTOUT"),
            c(0, "CLIENT TRACKING ON BCAST"),
            c(0, "CLIENT TRACKING OFF"),
            c(0, "CLIENT TRACKING ON BCAST"),
            c(0, "CLIENT TRACKING ON"),
            ca(0, &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", ""]),
            c(0, "CLIENT TRACKING OFF"),
            c(0, "CLIENT TRACKING ON BCAST PREFIX ab PREFIX a"),
            c(0, "CLIENT TRACKINGINFO"),
            c(0, "CLIENT TRACKING ON BCAST PREFIX b PREFIX a"),
            c(0, "CLIENT TRACKINGINFO"),
            c(
                0,
                "COMMAND INFO CLIENT|TRACKING CLIENT|TRACKINGINFO CLIENT|GETREDIR CLIENT|CACHING",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn resp2_redirection_to_a_subscriber_matches_redis() {
    assert_same_as_redis(
        3,
        &[
            c(1, "SUBSCRIBE __redis__:invalidate"),
            redirect(0, 1, ""),
            c(0, "CLIENT GETREDIR"),
            c(0, "CLIENT TRACKINGINFO"),
            c(0, "GET a"),
            c(2, "SET a 1"),
            c(0, "GET a"),
            c(0, "SET a 2"),
            c(2, "FLUSHALL"),
            // A RESP2 client tracking for itself gets nothing: RESP2 cannot push.
            c(2, "CLIENT TRACKING ON"),
            c(2, "GET b"),
            c(0, "SET b 1"),
            // A RESP3 target gets pushes even without subscribing; BCAST redirects too.
            hello3(1),
            c(1, "UNSUBSCRIBE"),
            c(0, "GET c"),
            c(2, "SET c 1"),
            c(0, "CLIENT TRACKING OFF"),
            redirect(0, 1, "BCAST PREFIX p"),
            c(0, "CLIENT TRACKINGINFO"),
            c(2, "SET p1 1"),
            c(2, "SET q1 1"),
        ],
    )
    .await;
}

#[tokio::test]
async fn resp3_redirect_target_that_never_subscribed_matches_redis() {
    assert_same_as_redis(
        3,
        &[
            // Connection 1 speaks RESP3 and never subscribes: invalidations redirected to it
            // arrive as pushes all the same.
            hello3(1),
            redirect(0, 1, ""),
            c(0, "GET a"),
            c(2, "SET a 1"),
            c(0, "MGET b c"),
            c(0, "SET b 1"),
            c(0, "GET c"),
            c(2, "RPUSH c x"),
            c(0, "GET d"),
            c(2, "SET d 1"),
            // A flush's null is written in the tracking client's protocol, inside the
            // target's message: `$-1` in a push here, `_` in a RESP2 message below.
            c(2, "FLUSHALL"),
            q(1, "HELLO 2"),
            c(1, "SUBSCRIBE __redis__:invalidate"),
            hello3(0),
            c(0, "GET e"),
            c(2, "SET e 1"),
            c(2, "FLUSHALL"),
        ],
    )
    .await;
}

/// Reads `INFO` fields of the node at `c`.
async fn info_fields(c: &mut Conn, names: &[&str]) -> Vec<u64> {
    let text = c.call_str(&["INFO", "everything"]).await;
    names
        .iter()
        .map(|n| {
            text.lines()
                .find_map(|l| l.strip_prefix(n)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("{n} in INFO"))
                .trim()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_broken_redirect_is_reported_to_the_tracking_client() {
    let node = common::start_node(&[]).await;
    let addr = node.resp_addr();
    let mut a = Conn::connect(addr).await;
    let mut target = Conn::connect(addr).await;
    let mut writer = Conn::connect(addr).await;
    a.call_str(&["HELLO", "3"]).await;
    let target_id = target.call_str(&["CLIENT", "ID"]).await.trim()[1..].to_string();
    assert_eq!(
        a.call_str(&["CLIENT", "TRACKING", "ON", "REDIRECT", &target_id])
            .await,
        "+OK\r\n"
    );
    drop(target);
    // Once the target is gone, the next invalidation tells the tracking client instead.
    let gone = common::wait_for(Duration::from_secs(5), async || {
        !writer
            .call_str(&["CLIENT", "LIST", "ID", &target_id])
            .await
            .contains("id=")
    })
    .await;
    assert!(gone);
    a.call_str(&["GET", "k"]).await;
    writer.call_str(&["SET", "k", "1"]).await;
    assert_eq!(
        a.sync().await,
        vec![format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{target_id}\r\n").into_bytes()]
    );
    let info = a.call_str(&["CLIENT", "INFO"]).await;
    assert!(info.contains("flags=tR "), "{info}");
    assert!(info.contains(&format!("redir={target_id} ")), "{info}");
    node.shutdown().await;
}

#[tokio::test]
async fn the_table_is_counted_in_info_and_bounded_by_its_limit() {
    let node = common::start_node(&[]).await;
    let addr = node.resp_addr();
    let mut writer = Conn::connect(addr).await;
    let mut a = Conn::connect(addr).await;
    a.call_str(&["HELLO", "3"]).await;
    // INFO counts tracking clients, keys, (key, client) pairs and prefixes.
    let mut b = Conn::connect(addr).await;
    b.call_str(&["HELLO", "3"]).await;
    b.call_str(&["CLIENT", "TRACKING", "ON"]).await;
    a.call_str(&["CLIENT", "TRACKING", "OFF"]).await;
    a.call_str(&[
        "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x", "PREFIX", "y",
    ])
    .await;
    for k in ["k1", "k2", "k3"] {
        b.call_str(&["GET", k]).await;
    }
    let mut c = Conn::connect(addr).await;
    c.call_str(&["HELLO", "3"]).await;
    c.call_str(&["CLIENT", "TRACKING", "ON"]).await;
    c.call_str(&["GET", "k1"]).await;
    let flags = |info: String| {
        info.split(' ')
            .find(|f| f.starts_with("flags="))
            .map(str::to_string)
    };
    assert_eq!(
        flags(a.call_str(&["CLIENT", "INFO"]).await).as_deref(),
        Some("flags=tB")
    );
    assert_eq!(
        flags(c.call_str(&["CLIENT", "INFO"]).await).as_deref(),
        Some("flags=t")
    );
    let names = [
        "tracking_clients",
        "tracking_total_keys",
        "tracking_total_items",
        "tracking_total_prefixes",
    ];
    assert_eq!(info_fields(&mut writer, &names).await, vec![3, 3, 4, 2]);

    // Over tracking-table-max-keys, keys are forgotten and their readers told.
    writer
        .call_str(&["CONFIG", "SET", "tracking-table-max-keys", "2"])
        .await;
    b.call_str(&["PING"]).await;
    assert_eq!(info_fields(&mut writer, &names[1..2]).await, vec![2]);
    let told: Vec<Vec<u8>> = [b.sync().await, c.sync().await].concat();
    assert!(
        told.iter()
            .all(|f| f.starts_with(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk")),
        "{told:?}"
    );
    assert!(!told.is_empty());
    node.shutdown().await;
}

/// A client-side cache kept only by invalidations: reads fill it from the server, pushes
/// drop keys from it. Whatever it holds once the writers stopped must be what the server has.
#[tokio::test]
async fn a_cache_kept_by_invalidations_agrees_with_the_server_after_concurrent_writes() {
    let node = common::start_node(&[]).await;
    let addr = node.resp_addr();
    const KEYS: usize = 20;
    const WRITES: usize = 2000;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            tokio::spawn(async move {
                let mut c = Conn::connect(addr).await;
                // Half of the keys change; the reader's cache keeps the other half.
                for i in 0..WRITES {
                    let k = format!("key:{}", (i * 7 + w) % (KEYS / 2));
                    c.call_str(&["SET", &k, &format!("{w}-{i}")]).await;
                }
            })
        })
        .collect();
    let mut reader = Conn::connect(addr).await;
    reader.call_str(&["HELLO", "3"]).await;
    reader.call_str(&["CLIENT", "TRACKING", "ON"]).await;
    let mut cache: HashMap<String, Vec<u8>> = HashMap::new();
    let mut served_from_cache = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while writers.iter().any(|w| !w.is_finished()) && tokio::time::Instant::now() < deadline {
        let k = format!("key:{}", round % KEYS);
        round += 1;
        if cache.contains_key(&k) {
            served_from_cache += 1;
        } else {
            reader.send(&[b"GET", k.as_bytes()]).await;
            // Pushes may come before the reply; they are applied in order.
            loop {
                let f = reader.frame().await.expect("frame");
                if f.starts_with(b">") {
                    invalidate(&mut cache, &f);
                } else {
                    cache.insert(k.clone(), f);
                    break;
                }
            }
        }
        if round % 50 == 0 {
            for f in reader.sync().await {
                invalidate(&mut cache, &f);
            }
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    for f in reader.sync().await {
        invalidate(&mut cache, &f);
    }
    assert!(served_from_cache > 0, "nothing was served from the cache");
    // What the writes left cached stays; what they invalidated is read again.
    let survived = cache.len();
    for i in 0..KEYS {
        let k = format!("key:{i}");
        if let std::collections::hash_map::Entry::Vacant(e) = cache.entry(k) {
            let v = reader.call(&[b"GET", e.key().as_bytes()]).await;
            e.insert(v);
        }
    }
    eprintln!("{survived} of {KEYS} keys cached during the writes were never invalidated");
    let mut check = Conn::connect(addr).await;
    check.call_str(&["HELLO", "3"]).await;
    for (k, cached) in &cache {
        let now = check.call(&[b"GET", k.as_bytes()]).await;
        assert_eq!(
            String::from_utf8_lossy(cached),
            String::from_utf8_lossy(&now),
            "{k} is stale in the cache"
        );
    }
    node.shutdown().await;
}

/// Applies one `invalidate` push to `cache` (a null: every key).
fn invalidate(cache: &mut HashMap<String, Vec<u8>>, frame: &[u8]) {
    let text = String::from_utf8_lossy(frame);
    assert!(text.starts_with(">2\r\n$10\r\ninvalidate\r\n"), "{text}");
    let rest = &text[">2\r\n$10\r\ninvalidate\r\n".len()..];
    if rest == "_\r\n" {
        cache.clear();
        return;
    }
    // `*N`, then `$len` and the key, N times.
    for key in rest
        .split("\r\n")
        .skip(2)
        .step_by(2)
        .filter(|k| !k.is_empty())
    {
        cache.remove(key);
    }
}

/// The `redis` crate's own client-side cache (RESP3, CLIENT TRACKING ON): repeated reads are
/// served from it, and another client's write reaches it as an invalidation, after which the
/// new value is read.
#[tokio::test]
async fn the_redis_crate_client_side_cache_stays_fresh() {
    use redis::AsyncCommands;
    let node = common::start_node(&[]).await;
    let url = format!("redis://{}/?protocol=resp3", node.resp_addr());
    let client = redis::Client::open(url).unwrap();
    let config =
        redis::AsyncConnectionConfig::new().set_cache_config(redis::caching::CacheConfig::new());
    let mut cached = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let mut other = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = other.set("k", "1").await.unwrap();
    for _ in 0..3 {
        let v: String = cached.get("k").await.unwrap();
        assert_eq!(v, "1");
    }
    let stats = cached.get_cache_statistics().expect("caching is on");
    assert_eq!((stats.miss, stats.hit), (1, 2), "{stats:?}");
    let _: () = other.set("k", "2").await.unwrap();
    let fresh = common::wait_for(Duration::from_secs(5), async || {
        let v: String = cached.get("k").await.unwrap();
        v == "2"
    })
    .await;
    assert!(fresh, "the cache kept serving the old value");
    let stats = cached.get_cache_statistics().expect("caching is on");
    assert!(stats.invalidate >= 1, "{stats:?}");
    node.shutdown().await;
}

/// A key evicted to make room for a command is invalidated before that command's reply (Redis
/// evicts before it runs a command), on both servers.
#[tokio::test]
async fn an_eviction_is_invalidated_before_the_reply_that_caused_it() {
    async fn scenario(addr: std::net::SocketAddr) -> Vec<String> {
        let mut c = Conn::connect(addr).await;
        c.call_str(&["HELLO", "3"]).await;
        assert_eq!(c.call_str(&["CLIENT", "TRACKING", "on"]).await, "+OK\r\n");
        let used = info_fields(&mut c, &["used_memory"]).await[0];
        let limit = (used + 100 * 1024).to_string();
        c.call_str(&["CONFIG", "SET", "maxmemory", &limit]).await;
        c.call_str(&["CONFIG", "SET", "maxmemory-policy", "volatile-random"])
            .await;
        c.call_str(&["SETEX", "volatile-key", "10000", "x"]).await;
        c.call_str(&["GET", "volatile-key"]).await;
        // About 200 KB: over the limit, so the next command evicts the volatile key first.
        // Pipelined, so both commands run in the same millisecond.
        c.send(&[b"SETBIT", b"big-key", b"1600000", b"0"]).await;
        c.send(&[b"GETBIT", b"big-key", b"0"]).await;
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(String::from_utf8_lossy(&c.frame().await.unwrap()).into_owned());
        }
        c.call_str(&["CONFIG", "SET", "maxmemory", "0"]).await;
        frames
    }
    let want = [
        ":0\r\n",
        ">2\r\n$10\r\ninvalidate\r\n*1\r\n$12\r\nvolatile-key\r\n",
        ":0\r\n",
    ];
    let redis = common::redis_server::RedisServer::start().await;
    assert_eq!(scenario(redis.addr()).await, want, "redis-server");
    let node = common::start_node(&[]).await;
    assert_eq!(scenario(node.resp_addr()).await, want, "reredis");
    node.shutdown().await;
}
