//! MIGRATE from a Reredis node to a real `redis-server` and to another Reredis node: keys move
//! (or are copied) with their values and TTLs, the target's errors come back as Redis words
//! them, and a silent target costs the caller no more than the timeout. The replies are
//! compared byte for byte with those of a `redis-server` running the same script.
//!
//! The tests run on a multi-threaded runtime: a MIGRATE waits for its target on a blocking
//! socket, and an in-process target needs a worker of its own to answer.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::session::{Step, c, ca, transcript};
use common::{client, start_node};
use redis::aio::MultiplexedConnection;

async fn conn(addr: SocketAddr) -> MultiplexedConnection {
    client(addr)
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn call(c: &mut MultiplexedConnection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c).await.expect("reply")
}

/// The reply as redis-cli would print it: `OK`, `NOKEY`, an error's text, a number.
async fn text(c: &mut MultiplexedConnection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query_async::<redis::Value>(c).await {
        Ok(redis::Value::Okay) => "OK".into(),
        Ok(redis::Value::SimpleString(s)) => s,
        Ok(redis::Value::Int(i)) => i.to_string(),
        Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(redis::Value::Nil) => "(nil)".into(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!(
            "{} {}",
            e.code().unwrap_or("?"),
            e.detail().unwrap_or_default()
        ),
    }
}

/// One key of each type, one with a TTL, written through `c`.
async fn fixtures(c: &mut MultiplexedConnection) {
    call(c, &["SET", "s", "hello"]).await;
    call(c, &["SET", "ttl", "soon", "PX", "60000"]).await;
    call(c, &["HSET", "h", "a", "1", "b", "2"]).await;
    call(c, &["RPUSH", "l", "x", "y", "z"]).await;
    call(c, &["SADD", "set", "1", "2", "3"]).await;
    call(c, &["ZADD", "z", "1", "a", "2.5", "b"]).await;
}

/// What a key holds, read through commands (the same on either server).
async fn describe(c: &mut MultiplexedConnection, key: &str) -> String {
    let t = text(c, &["TYPE", key]).await;
    let v = match t.as_str() {
        "string" => call(c, &["GET", key]).await,
        "hash" => call(c, &["HGETALL", key]).await,
        "list" => call(c, &["LRANGE", key, "0", "-1"]).await,
        "set" => call(c, &["SMEMBERS", key]).await,
        "zset" => call(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]).await,
        _ => redis::Value::Nil,
    };
    format!("{t} {v:?}")
}

/// MIGRATE of each kind to a target (a `redis-server` or a Reredis node): single key, KEYS,
/// COPY, REPLACE, NOKEY and BUSYKEY.
async fn moves_keys_to(target: SocketAddr) {
    let node = start_node(&[]).await;
    let mut src = conn(node.resp_addr()).await;
    let mut dst = conn(target).await;
    fixtures(&mut src).await;
    let port = target.port().to_string();
    let migrate = |key: &'static str, extra: &'static [&'static str]| {
        let mut a = vec!["MIGRATE", "127.0.0.1", port.as_str(), key, "0", "5000"];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<String>>()
    };
    let run = async |c: &mut MultiplexedConnection, a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        text(c, &a).await
    };

    let before = describe(&mut src, "s").await;
    assert_eq!(run(&mut src, migrate("s", &[])).await, "OK");
    assert_eq!(text(&mut src, &["EXISTS", "s"]).await, "0");
    assert_eq!(describe(&mut dst, "s").await, before);

    let mut moved = Vec::new();
    for k in ["h", "l", "set", "z"] {
        moved.push(describe(&mut src, k).await);
    }
    assert_eq!(
        run(
            &mut src,
            migrate("", &["KEYS", "h", "missing", "l", "set", "z"])
        )
        .await,
        "OK"
    );
    for (k, before) in ["h", "l", "set", "z"].iter().zip(&moved) {
        assert_eq!(text(&mut src, &["EXISTS", k]).await, "0");
        assert_eq!(&describe(&mut dst, k).await, before);
    }

    // The TTL travels with the key.
    assert_eq!(run(&mut src, migrate("ttl", &["COPY"])).await, "OK");
    assert_eq!(text(&mut src, &["GET", "ttl"]).await, "soon");
    let pttl: i64 = text(&mut dst, &["PTTL", "ttl"]).await.parse().unwrap();
    assert!((50_000..=60_000).contains(&pttl), "PTTL on target: {pttl}");

    assert_eq!(run(&mut src, migrate("s", &[])).await, "NOKEY");
    assert_eq!(
        run(&mut src, migrate("", &["KEYS", "gone1", "gone2"])).await,
        "NOKEY"
    );

    call(&mut src, &["SET", "s", "newer"]).await;
    assert_eq!(
        run(&mut src, migrate("s", &[])).await,
        "ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    assert_eq!(text(&mut src, &["GET", "s"]).await, "newer");
    assert_eq!(text(&mut dst, &["GET", "s"]).await, "hello");
    assert_eq!(
        run(&mut src, migrate("s", &["COPY", "REPLACE"])).await,
        "OK"
    );
    assert_eq!(text(&mut src, &["GET", "s"]).await, "newer");
    assert_eq!(text(&mut dst, &["GET", "s"]).await, "newer");

    // Into another database of the target.
    let port = target.port().to_string();
    let a = ["MIGRATE", "127.0.0.1", &port, "s", "3", "5000"];
    assert_eq!(text(&mut src, &a).await, "OK");
    call(&mut dst, &["SELECT", "3"]).await;
    assert_eq!(text(&mut dst, &["GET", "s"]).await, "newer");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_to_redis_server() {
    let redis = RedisServer::start().await;
    moves_keys_to(redis.addr()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_to_another_reredis_node() {
    let target = start_node(&[]).await;
    moves_keys_to(target.resp_addr()).await;
    target.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_authenticates_with_auth_and_auth2() {
    let target = start_node(&[("requirepass", "sesame")]).await;
    let node = start_node(&[]).await;
    let mut src = conn(node.resp_addr()).await;
    let port = target.resp_addr().port().to_string();
    call(&mut src, &["MSET", "a", "1", "b", "2", "c", "3"]).await;
    let m = |key: &'static str| vec!["MIGRATE", "127.0.0.1", port.as_str(), key, "0", "5000"];

    let without = text(&mut src, &m("a")).await;
    assert_eq!(
        without,
        "ERR Target instance replied with error: NOAUTH Authentication required."
    );
    let wrong = [m("a"), vec!["AUTH", "nope"]].concat();
    assert_eq!(
        text(&mut src, &wrong).await,
        "ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(text(&mut src, &["EXISTS", "a"]).await, "1");

    let auth = [m("a"), vec!["AUTH", "sesame"]].concat();
    assert_eq!(text(&mut src, &auth).await, "OK");
    let auth2 = [m("b"), vec!["AUTH2", "default", "sesame"]].concat();
    assert_eq!(text(&mut src, &auth2).await, "OK");
    assert_eq!(text(&mut src, &["EXISTS", "a", "b", "c"]).await, "1");

    let mut dst = conn(target.resp_addr()).await;
    call(&mut dst, &["AUTH", "sesame"]).await;
    assert_eq!(text(&mut dst, &["GET", "a"]).await, "1");
    assert_eq!(text(&mut dst, &["GET", "b"]).await, "2");
    node.shutdown().await;
    target.shutdown().await;
}

/// A target that accepts the connection and never answers: MIGRATE gives up after its timeout
/// (not the default socket timeout) and the key stays here.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_target_times_out_within_the_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let node = start_node(&[]).await;
    let mut src = conn(node.resp_addr()).await;
    call(&mut src, &["SET", "k", "v"]).await;
    let started = Instant::now();
    let reply = text(&mut src, &["MIGRATE", "127.0.0.1", &port, "k", "0", "300"]).await;
    let took = started.elapsed();
    assert_eq!(reply, "IOERR error or timeout reading to target instance");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert_eq!(text(&mut src, &["GET", "k"]).await, "v");
    // The node kept serving other clients meanwhile, and still does.
    assert_eq!(text(&mut src, &["PING"]).await, "PONG");
    drop(silent);
    node.shutdown().await;
}

/// The same script of MIGRATEs, run from a Reredis node and from a `redis-server`, both
/// migrating to one `redis-server` (flushed in between), gets the same replies.
#[tokio::test(flavor = "multi_thread")]
async fn replies_match_redis_server() {
    let target = RedisServer::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let p = target.port.to_string();
    let p = p.as_str();
    let m = |rest: &[&str]| {
        let mut a = vec!["MIGRATE", "127.0.0.1", p];
        a.extend_from_slice(rest);
        ca(0, &a)
    };
    let script: Vec<Step> = vec![
        c(0, "SET k v"),
        c(0, "SET n 10"),
        c(0, "RPUSH l a b c"),
        m(&["k", "0", "5000"]),
        c(0, "EXISTS k"),
        m(&["k", "0", "5000"]),
        c(0, "SET k v2"),
        m(&["k", "0", "5000"]),
        m(&["k", "0", "5000", "REPLACE", "COPY"]),
        c(0, "GET k"),
        m(&["", "0", "5000", "KEYS", "n", "nope", "l"]),
        c(0, "EXISTS n l"),
        m(&["", "0", "5000", "KEYS", "nope"]),
        m(&["", "0", "5000"]),
        m(&["k", "0", "5000", "KEYS", "k"]),
        m(&["k", "x", "5000"]),
        m(&["k", "0", "soon"]),
        m(&["k", "0", "5000", "AUTH"]),
        m(&["k", "0", "5000", "AUTH2", "user"]),
        m(&["k", "0", "5000", "BOGUS"]),
        m(&["k", "0", "5000", "AUTH", "secret"]),
        m(&["k", "99", "5000", "REPLACE"]),
        m(&["k", "0", "-5", "REPLACE"]),
        m(&["k", "0"]),
        c(0, "MULTI"),
        c(0, "SET m 1"),
        m(&["m", "0", "5000"]),
        m(&["", "0", "5000", "KEYS", "m", "k"]),
        c(0, "EXEC"),
        c(0, "EXISTS m"),
        c(0, "SET k v3"),
        // Refused: Redis finds out on its first write, and says so.
        ca(0, &["MIGRATE", "127.0.0.1", &closed_port, "k", "0", "1000"]),
        // A name that does not resolve (`.invalid` is reserved for that).
        ca(
            0,
            &["MIGRATE", "no-such-host.invalid", "1", "k", "0", "1000"],
        ),
        c(0, "GET k"),
        c(0, "COMMAND INFO migrate"),
        ca(
            0,
            &["COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "5"],
        ),
        ca(
            0,
            &[
                "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "5", "COPY", "KEYS", "a", "b",
            ],
        ),
        ca(
            0,
            &[
                "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "5", "KEYS", "a",
            ],
        ),
        ca(
            0,
            &[
                "COMMAND",
                "GETKEYSANDFLAGS",
                "MIGRATE",
                "h",
                "1",
                "",
                "0",
                "5",
                "KEYS",
                "a",
                "b",
            ],
        ),
        ca(
            0,
            &[
                "COMMAND",
                "GETKEYSANDFLAGS",
                "MIGRATE",
                "h",
                "1",
                "k",
                "0",
                "5",
            ],
        ),
    ];
    let node = start_node(&[]).await;
    let ours = transcript(node.resp_addr(), 1, &script).await;
    let mut t = conn(target.addr()).await;
    call(&mut t, &["FLUSHALL"]).await;
    let source = RedisServer::start().await;
    let theirs = transcript(source.addr(), 1, &script).await;
    for (o, t) in ours.iter().zip(theirs.iter()) {
        assert_eq!(o, t, "\nreredis: {o}\nredis:   {t}");
    }
    assert_eq!(ours.len(), theirs.len());
    let all = ours.join("\n");
    for expected in [
        "+NOKEY",
        "-ERR Target instance replied with error: BUSYKEY",
        "-ERR Target instance replied with error: ERR DB index is out of range",
        "-IOERR error or timeout writing to target instance",
        "-IOERR error or timeout connecting to the client",
    ] {
        assert!(all.contains(expected), "{expected} missing from:\n{all}");
    }
    node.shutdown().await;
}

/// The append-only log records a migrated key as deleted (Redis propagates MIGRATE as DEL) and
/// a copied one not at all: after a restart the moved key is not back, the others are.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_records_migrated_keys_as_deleted() {
    let root = tempfile::tempdir().expect("tempdir");
    let d = root.path().to_str().expect("utf-8 path");
    let settings = [("dir", d), ("appendonly", "yes")];
    let target = start_node(&[]).await;
    let port = target.resp_addr().port().to_string();
    let node = start_node(&settings).await;
    let mut src = conn(node.resp_addr()).await;
    call(
        &mut src,
        &["MSET", "moved", "1", "copied", "2", "kept", "3"],
    )
    .await;
    let m = ["MIGRATE", "127.0.0.1", &port, "moved", "0", "5000"];
    assert_eq!(text(&mut src, &m).await, "OK");
    let c = ["MIGRATE", "127.0.0.1", &port, "copied", "0", "5000", "COPY"];
    assert_eq!(text(&mut src, &c).await, "OK");
    node.shutdown().await;

    let node = start_node(&settings).await;
    let loaded = common::wait_for(Duration::from_secs(20), async || {
        node.node.ready.load(std::sync::atomic::Ordering::Acquire)
    })
    .await;
    assert!(loaded, "the log did not load");
    let mut src = conn(node.resp_addr()).await;
    assert_eq!(text(&mut src, &["EXISTS", "moved"]).await, "0");
    assert_eq!(text(&mut src, &["GET", "copied"]).await, "2");
    assert_eq!(text(&mut src, &["GET", "kept"]).await, "3");
    node.shutdown().await;
    target.shutdown().await;
}

/// SLOWLOG shows MIGRATE's AUTH and AUTH2 credentials as `(redacted)`, as Redis does: those
/// read before an error too, not those after it.
#[tokio::test(flavor = "multi_thread")]
async fn slowlog_hides_migrate_passwords() {
    let node = start_node(&[("slowlog-log-slower-than", "0")]).await;
    let mut c = common::resp::Conn::open(node.resp_addr()).await;
    c.cmd(&["SET", "k", "v"]).await;
    c.cmd(&["SLOWLOG", "RESET"]).await;
    let m = ["MIGRATE", "127.0.0.1", "1", "k", "0", "100"];
    c.cmd(&[&m[..], &["AUTH2", "user", "pass"]].concat()).await;
    c.cmd(&[&m[..], &["AUTH", "pw", "KEYS", "a"]].concat())
        .await;
    c.cmd(&[&m[..], &["BOGUS", "AUTH", "visible"]].concat())
        .await;
    let log = c.cmd(&["SLOWLOG", "GET", "3"]).await;
    assert_eq!(log.matches("(redacted)").count(), 3, "{log}");
    for secret in ["user", "pass", "$2\r\npw"] {
        assert!(!log.contains(secret), "{secret} shown: {log}");
    }
    assert!(log.contains("visible"), "{log}");
    node.shutdown().await;
}

/// The connection to a target is kept (`migrate_cached_sockets`); when the target closed it
/// meanwhile, the next MIGRATE reconnects once and succeeds, as Redis's does.
#[tokio::test(flavor = "multi_thread")]
async fn a_cached_connection_the_target_closed_is_replaced() {
    let target = RedisServer::start().await;
    let port = target.port.to_string();
    let node = start_node(&[]).await;
    let mut src = conn(node.resp_addr()).await;
    call(&mut src, &["MSET", "a", "1", "b", "2"]).await;
    let info = async |c: &mut MultiplexedConnection| text(c, &["INFO", "stats"]).await;
    assert!(info(&mut src).await.contains("migrate_cached_sockets:0"));
    let m = |k: &'static str| ["MIGRATE", "127.0.0.1", port.as_str(), k, "0", "5000"];
    assert_eq!(text(&mut src, &m("a")).await, "OK");
    assert!(info(&mut src).await.contains("migrate_cached_sockets:1"));

    let mut dst = conn(target.addr()).await;
    let killed = text(
        &mut dst,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    )
    .await;
    assert_eq!(killed, "1");
    assert_eq!(text(&mut src, &m("b")).await, "OK");
    assert_eq!(text(&mut dst, &["GET", "a"]).await, "1");
    assert_eq!(text(&mut dst, &["GET", "b"]).await, "2");
    assert!(info(&mut src).await.contains("migrate_cached_sockets:1"));
    node.shutdown().await;
}
