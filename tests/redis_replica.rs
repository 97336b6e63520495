//! Redis's replication protocol on a Reredis node: a real `redis-server --replicaof` syncs from
//! it and follows its writes, and `redis-cli --rdb` saves a file Redis loads. Contents are
//! compared with DEBUG DIGEST, which both servers compute the same way.

mod common;

use std::time::Duration;

use common::redis_server::RedisServer;
use common::{start_loaded, wait_for};
use redis::aio::MultiplexedConnection;

async fn conn(port: u16) -> MultiplexedConnection {
    common::client(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn run(c: &mut MultiplexedConnection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

async fn digest(c: &mut MultiplexedConnection) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query_async(c)
        .await
        .expect("DEBUG DIGEST")
}

async fn info_field(c: &mut MultiplexedConnection, section: &str, field: &str) -> String {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(c)
        .await
        .expect("INFO");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .to_string()
}

/// Keys whose values differ between the two servers, by DEBUG DIGEST-VALUE (for a failure
/// message that names them).
async fn differing_keys(
    a: &mut MultiplexedConnection,
    b: &mut MultiplexedConnection,
) -> Vec<String> {
    let mut out = Vec::new();
    for db in 0..4 {
        let _: () = redis::cmd("SELECT").arg(db).query_async(a).await.unwrap();
        let _: () = redis::cmd("SELECT").arg(db).query_async(b).await.unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(a).await.unwrap();
        let theirs: Vec<String> = redis::cmd("KEYS").arg("*").query_async(b).await.unwrap();
        keys.extend(theirs);
        keys.sort();
        keys.dedup();
        for k in keys {
            let da: Vec<String> = redis::cmd("DEBUG")
                .arg("DIGEST-VALUE")
                .arg(&k)
                .query_async(a)
                .await
                .unwrap();
            let db_: Vec<String> = redis::cmd("DEBUG")
                .arg("DIGEST-VALUE")
                .arg(&k)
                .query_async(b)
                .await
                .unwrap();
            if da != db_ {
                out.push(format!("db{db}:{k}"));
            }
        }
    }
    let _: () = redis::cmd("SELECT").arg(0).query_async(a).await.unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query_async(b).await.unwrap();
    out
}

/// Whether `key` shows up on `r` within 20 seconds (a replica loading its master's file
/// answers `-LOADING` meanwhile: not yet).
async fn arrives(r: &mut MultiplexedConnection, key: &str) -> bool {
    wait_for(Duration::from_secs(20), async || {
        match redis::cmd("GET")
            .arg(key)
            .query_async::<Option<String>>(r)
            .await
        {
            Ok(v) => v.is_some(),
            Err(e) if e.to_string().contains("loading the dataset") => false,
            Err(e) => panic!("GET {key}: {e}"),
        }
    })
    .await
}

/// The client ID of the replica's connection (CLIENT LIST TYPE replica), if there is one.
async fn replica_client_id(c: &mut MultiplexedConnection) -> Option<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("replica")
        .query_async(c)
        .await
        .unwrap();
    let line = list.lines().next()?;
    assert!(line.contains(" flags=S "), "a replica's flags: {line}");
    Some(line.split(' ').next()?.to_string())
}

/// Both servers hold the same data (DEBUG DIGEST); the failure names the keys that differ.
async fn assert_same_data(
    m: &mut MultiplexedConnection,
    r: &mut MultiplexedConnection,
    when: &str,
) {
    let (dm, dr) = (digest(m).await, digest(r).await);
    if dm != dr {
        panic!("{when}, differing: {:?}", differing_keys(m, r).await);
    }
}

/// `r` became a replica of `m` (each a Reredis node or a redis-server): its link comes up with
/// the same data (TTLs too), then it follows [`write_after_sync`] and acknowledges it (WAIT on
/// `m` counts it, asking with GETACK).
async fn assert_syncs_and_follows(m: &mut MultiplexedConnection, r: &mut MultiplexedConnection) {
    assert!(
        wait_for(Duration::from_secs(20), async || {
            info_field(r, "replication", "master_link_status").await == "up"
        })
        .await,
        "the replica's link came up"
    );
    // The full copy: every key, TTL and the library.
    assert_same_data(m, r, "after the full sync").await;
    let ttl: i64 = redis::cmd("TTL").arg("n").query_async(r).await.unwrap();
    assert!((900..=1000).contains(&ttl), "TTL on the replica: {ttl}");
    write_after_sync(m).await;
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(m)
        .await
        .unwrap();
    assert_eq!(acked, 1, "WAIT 1 5000");
    assert_same_data(m, r, "after the stream").await;
}

/// REPLICAOF the master on `port`, then waits (bounded) until the link is up.
async fn follow_until_up(r: &mut MultiplexedConnection, port: u16) {
    run(r, &["REPLICAOF", "127.0.0.1", &port.to_string()]).await;
    assert!(
        wait_for(Duration::from_secs(20), async || {
            info_field(r, "replication", "master_link_status").await == "up"
        })
        .await,
        "the link came up"
    );
}

/// Keys of every type, in two dbs, with TTLs and a function library: what the RDB file carries.
async fn load_before_sync(c: &mut MultiplexedConnection) {
    let long = "abc".repeat(3000);
    for args in [
        &["SET", "s", "hello"][..],
        &["SET", "n", "12345", "EX", "1000"],
        &["SET", "long", &long],
        &["RPUSH", "l", "a", "b", "1", "-2"],
        &["HSET", "h", "f", "v", "g", "1"],
        &["SADD", "si", "1", "2", "3"],
        &["SADD", "ss", "a", "b"],
        &["ZADD", "z", "1", "a", "2.5", "b"],
        &["XADD", "x", "1-1", "f", "v"],
        &["XGROUP", "CREATE", "x", "g", "0"],
        &["PFADD", "hll", "a", "b", "c"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function('incr2', function(keys) redis.call('INCR', keys[1]) return redis.call('INCR', keys[1]) end)",
        ],
    ] {
        run(c, args).await;
    }
    for i in 0..300 {
        run(c, &["HSET", "bighash", &format!("f{i}"), &format!("v{i}")]).await;
    }
    run(c, &["SELECT", "3"]).await;
    run(c, &["SET", "in3", "v"]).await;
    run(c, &["SELECT", "0"]).await;
}

/// Writes of many kinds after the sync: what the stream carries. Commands that choose at
/// random or by time (SPOP, XADD *, EX) are sent as what they did.
async fn write_after_sync(c: &mut MultiplexedConnection) {
    for args in [
        &["SET", "s", "world"][..],
        &["APPEND", "s", "!"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["SET", "ttl", "v", "EX", "500"],
        &["EXPIRE", "s", "900"],
        &["PERSIST", "n"],
        &["GETEX", "long", "PX", "100000"],
        &["LPUSH", "l", "z"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["LPOP", "l"],
        &["HINCRBYFLOAT", "h", "g", "0.25"],
        &["HDEL", "bighash", "f1"],
        &["SPOP", "si"],
        &["SMOVE", "ss", "ss2", "a"],
        &["ZINCRBY", "z", "3", "a"],
        &["ZPOPMIN", "z"],
        &["XADD", "x", "*", "g", "w"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "x",
            ">",
        ],
        &["PFADD", "hll", "d"],
        &["SETBIT", "bits", "77", "1"],
        &["GEOADD", "geo", "13.361389", "38.115556", "Palermo"],
        &["RENAME", "hll", "hll2"],
        &["COPY", "h", "hcopy"],
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], 'byscript') return redis.call('LPUSH', KEYS[2], 'x')",
            "2",
            "sc",
            "sl",
        ],
        &["FCALL", "incr2", "1", "counter"],
        &["MULTI"],
        &["INCR", "t1"],
        &["SELECT", "2"],
        &["SET", "in2", "v"],
        &["SELECT", "0"],
        &["EXEC"],
        &["SORT", "l2", "ALPHA", "STORE", "sorted"],
        &["SELECT", "3"],
        &["DEL", "in3"],
        &["SET", "in3b", "v"],
        &["SELECT", "0"],
        &["SET", "gone", "v", "PX", "50"],
    ] {
        run(c, args).await;
    }
    // An expired key is deleted on the replica by the master's DEL.
    tokio::time::sleep(Duration::from_millis(120)).await;
    run(c, &["GET", "gone"]).await;
}

/// A node with its data dir and [`load_before_sync`]'s keys, and a connection to it.
async fn loaded_master() -> (
    tempfile::TempDir,
    reredis::NodeHandle,
    MultiplexedConnection,
) {
    let (data, node, mut m) = debug_node().await;
    load_before_sync(&mut m).await;
    (data, node, m)
}

/// A node with a data dir of its own and DEBUG on (for digests), and a connection to it.
async fn debug_node() -> (
    tempfile::TempDir,
    reredis::NodeHandle,
    MultiplexedConnection,
) {
    node_with(&[("enable-debug-command", "yes")]).await
}

/// A node with a data dir of its own and `settings`, and a connection to it.
async fn node_with(
    settings: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    reredis::NodeHandle,
    MultiplexedConnection,
) {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_string();
    let all: Vec<(&str, &str)> = std::iter::once(("dir", dir.as_str()))
        .chain(settings.iter().copied())
        .collect();
    let node = start_loaded(&all).await;
    let m = conn(node.resp_addr().port()).await;
    (data, node, m)
}

/// A loopback port nothing listens on (a master that is not there).
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until `m` counts `n` connected replicas.
async fn replicas_become(m: &mut MultiplexedConnection, n: &str, within: Duration) -> bool {
    wait_for(within, async || {
        info_field(m, "replication", "connected_slaves").await == n
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_replica_syncs_and_follows_the_stream() {
    let (_data, node, mut m) = loaded_master().await;
    let port = node.resp_addr().port();
    let (replica, mut r) = redis_replica_of(port).await;
    assert_syncs_and_follows(&mut m, &mut r).await;
    let libs: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(libs.len(), 1, "the function library came with the file");

    // The master lists it (online), and so does ROLE.
    let lines = info_field(&mut m, "replication", "slave0").await;
    assert!(
        lines.contains(&format!("port={}", replica.port)) && lines.contains("state=online"),
        "INFO replication: {lines}"
    );
    assert_eq!(
        info_field(&mut m, "replication", "connected_slaves").await,
        "1"
    );
    let gone: i64 = redis::cmd("EXISTS")
        .arg("gone")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(gone, 0, "the expired key was deleted on the replica");

    // ROLE lists it with the offset it acknowledged.
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut m).await.unwrap();
    assert_eq!(role.len(), 3);
    match &role[2] {
        redis::Value::Array(replicas) => assert_eq!(replicas.len(), 1, "ROLE lists the replica"),
        other => panic!("ROLE replicas: {other:?}"),
    }

    // Cut: the replica reconnects by itself and continues where it stopped (PSYNC answered
    // `+CONTINUE`): what it missed comes from our backlog, in the db the stream had selected
    // (no SELECT is sent again).
    run(&mut m, &["SELECT", "2"]).await;
    run(&mut m, &["SET", "in2", "a"]).await;
    run(&mut r, &["SELECT", "2"]).await;
    assert!(arrives(&mut r, "in2").await, "a write in db 2 arrives");
    assert_eq!(info_field(&mut m, "stats", "sync_full").await, "1");
    let before = replica_client_id(&mut m)
        .await
        .expect("the replica's connection");
    assert_eq!(kill_replicas(&mut m).await, 1, "CLIENT KILL TYPE replica");
    assert!(
        wait_for(Duration::from_secs(20), async || {
            replica_client_id(&mut m)
                .await
                .is_some_and(|id| id != before)
                && info_field(&mut r, "replication", "master_link_status").await == "up"
        })
        .await,
        "the replica connected again"
    );
    run(&mut m, &["SET", "after-cut", "1"]).await;
    assert!(
        arrives(&mut r, "after-cut").await,
        "the replica came back after its link was cut"
    );
    assert_eq!(
        info_field(&mut m, "stats", "sync_partial_ok").await,
        "1",
        "a partial resync"
    );
    assert_eq!(
        info_field(&mut m, "stats", "sync_full").await,
        "1",
        "no second full sync"
    );
    run(&mut m, &["SELECT", "0"]).await;
    run(&mut r, &["SELECT", "0"]).await;

    // A write just before shutdown: the node sends it, and waits for the acknowledgement,
    // before it stops (as Redis 7 does for its replicas).
    run(&mut m, &["SET", "last-write", "1"]).await;
    node.shutdown().await;
    let v: Option<String> = redis::cmd("GET")
        .arg("last-write")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(
        v.as_deref(),
        Some("1"),
        "the last write reached the replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_rdb_saves_a_file_redis_loads() {
    let (_data, node, mut m) = loaded_master().await;
    let port = node.resp_addr().port();
    let expect = digest(&mut m).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.rdb");
    let out = tokio::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--rdb"])
        .arg(&file)
        .output()
        .await
        .expect("redis-cli runs");
    assert!(
        out.status.success(),
        "redis-cli --rdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The node serves on, with nobody left as its replica.
    run(&mut m, &["SET", "later", "1"]).await;
    assert!(replicas_become(&mut m, "0", Duration::from_secs(5)).await);

    let path = dir.path().to_str().unwrap().to_string();
    let loaded = RedisServer::start_with(
        &[
            "--dir",
            &path,
            "--dbfilename",
            "backup.rdb",
            "--enable-debug-command",
            "yes",
        ],
        Some(dir),
    )
    .await;
    let mut r = conn(loaded.port).await;
    assert_eq!(digest(&mut r).await, expect, "Redis loaded the same data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replconf_and_sync_are_refused_where_redis_refuses_them() {
    let node = start_loaded(&[]).await;
    let mut c = common::resp::Conn::open(node.resp_addr()).await;
    assert_eq!(
        c.cmd(&["REPLCONF", "listening-port", "6380"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        c.cmd(&["REPLCONF", "capa", "eof", "capa", "psync2"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        c.cmd(&["REPLCONF", "nonsense", "1"]).await,
        "-ERR Unrecognized REPLCONF option: nonsense\r\n"
    );
    assert_eq!(
        c.cmd(&["REPLCONF", "listening-port"]).await,
        "-ERR syntax error\r\n"
    );
    c.cmd(&["MULTI"]).await;
    assert_eq!(
        c.cmd(&["SYNC"]).await,
        "-ERR Command not allowed inside a transaction\r\n"
    );
}

/// A client of its own that sent SYNC: skips the file, then reads the stream's commands (as
/// Redis's test suite's `attach_to_replication_stream` does).
struct StreamReader {
    r: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl StreamReader {
    async fn attach(addr: std::net::SocketAddr) -> StreamReader {
        Self::attach_with(addr, "SYNC").await
    }

    /// [`StreamReader::attach`] with `sync` (`SYNC`, or `PSYNC ? -1`: a Redis replica's).
    async fn attach_with(addr: std::net::SocketAddr, sync: &str) -> StreamReader {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{sync}\r\n").as_bytes()).await.unwrap();
        let mut r = tokio::io::BufReader::new(s);
        let len = loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            // Newlines are the master's keep-alive while it makes the file.
            if let Some(n) = line.trim_end().strip_prefix('$') {
                break n.parse::<usize>().unwrap();
            }
            if sync.starts_with("PSYNC") && line.starts_with("+FULLRESYNC ") {
                continue;
            }
            assert_eq!(line, "\n", "before the file");
        };
        let mut file = vec![0; len];
        r.read_exact(&mut file).await.unwrap();
        assert!(file.starts_with(b"REDIS0010"), "an RDB file");
        StreamReader { r }
    }

    /// The next command of the stream, its arguments joined by spaces.
    async fn next(&mut self) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut line))
            .await
            .expect("a command within 10 s")
            .unwrap();
        let n: usize = line
            .trim_end()
            .strip_prefix('*')
            .expect("an array")
            .parse()
            .unwrap();
        let mut args = Vec::new();
        for _ in 0..n {
            line.clear();
            self.r.read_line(&mut line).await.unwrap();
            let len: usize = line.trim_end()[1..].parse().unwrap();
            let mut arg = vec![0; len + 2];
            self.r.read_exact(&mut arg).await.unwrap();
            arg.truncate(len);
            args.push(String::from_utf8(arg).unwrap());
        }
        args.join(" ")
    }
}

/// Commands reach the stream in the forms Redis propagates: relative times made absolute,
/// results instead of float arithmetic, non-blocking pops of what was taken, no-ops left out,
/// SELECT before MULTI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_writes_in_the_forms_redis_propagates() {
    let node = start_loaded(&[
        ("repl-ping-replica-period", "3600"),
        ("enable-debug-command", "yes"),
    ])
    .await;
    let mut c = conn(node.resp_addr().port()).await;
    let mut stream = StreamReader::attach(node.resp_addr()).await;
    let mut blocked = conn(node.resp_addr().port()).await;
    let far = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1000)
        .to_string();
    for args in [
        &["SET", "a", "1", "EX", "100"][..],
        &["SET", "b", "1", "EXAT", &far],
        &["EXPIREAT", "a", &far],
        &["SET", "p", "v", "pxat", &(far.clone() + "000")],
        &["PEXPIREAT", "p", "1"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["HINCRBYFLOAT", "h", "x", "0.5"],
        &["GETEX", "a"],
        &["GETDEL", "a"],
        &["GETDEL", "a"],
        &["DEL", "a", "nosuch"],
        &["EXPIRE", "nosuch", "10"],
        &["SPOP", "nosuch"],
        &["RPUSH", "l", "x", "y", "z"],
        &["LMPOP", "2", "nol", "l", "LEFT", "COUNT", "2"],
        &["LMPOP", "1", "nol", "LEFT"],
        &["BLPOP", "l", "0"],
        &["ZADD", "z", "1", "a", "2", "b"],
        &["ZMPOP", "1", "z", "MIN", "COUNT", "5"],
    ] {
        run(&mut c, args).await;
    }
    // A blocked pop served by a later push.
    let waiter = tokio::spawn(async move {
        let _: Option<Vec<String>> = redis::cmd("BZPOPMAX")
            .arg("bz")
            .arg(0)
            .query_async(&mut blocked)
            .await
            .unwrap();
    });
    assert!(
        wait_for(Duration::from_secs(5), async || {
            info_field(&mut c, "clients", "blocked_clients").await == "1"
        })
        .await
    );
    run(&mut c, &["ZADD", "bz", "1", "m"]).await;
    waiter.await.unwrap();
    // SCAN deletes the expired keys it meets (active expiry off, so only it can).
    run(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).await;
    run(&mut c, &["SET", "gone", "v", "PX", "1"]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    run(&mut c, &["SCAN", "0", "COUNT", "1000"]).await;
    run(&mut c, &["SELECT", "2"]).await;
    run(&mut c, &["MULTI"]).await;
    run(&mut c, &["INCR", "c"]).await;
    run(&mut c, &["PUBLISH", "news", "inside"]).await;
    run(&mut c, &["INCR", "d"]).await;
    run(&mut c, &["EXEC"]).await;
    run(&mut c, &["SELECT", "0"]).await;
    run(&mut c, &["PUBLISH", "news", "hello"]).await;
    // Writes that change nothing are not propagated (Redis's call() propagates a change).
    for args in [
        &["SETBIT", "bits", "7", "1"][..],
        &["SETBIT", "bits", "7", "1"],
        &["PFADD", "hll", "a"],
        &["PFADD", "hll", "a"],
        &["BITFIELD", "bits", "GET", "u8", "0"],
        // A time already past deletes: as DEL, or UNLINK under lazyfree-lazy-expire.
        &["SET", "g", "v"],
        &["GETEX", "g", "PXAT", "1"],
        &["SET", "x", "v"],
        &["CONFIG", "SET", "lazyfree-lazy-expire", "yes"],
        &["PEXPIREAT", "x", "1"],
        &["CONFIG", "SET", "lazyfree-lazy-expire", "no"],
    ] {
        run(&mut c, args).await;
    }
    run(&mut c, &["SET", "end", "1"]).await;

    let ms = far.clone() + "000";
    let expected = [
        "SELECT 0",
        "SET a 1 PXAT *",
        &format!("SET b 1 PXAT {ms}"),
        &format!("PEXPIREAT a {ms}"),
        &format!("SET p v PXAT {ms}"),
        "DEL p",
        "SET f 1.5 KEEPTTL",
        "HSET h x 0.5",
        "DEL a",
        "RPUSH l x y z",
        "LPOP l 2",
        "LPOP l",
        "ZADD z 1 a 2 b",
        "ZPOPMIN z 2",
        "ZADD bz 1 m",
        "ZPOPMAX bz",
        "SET gone v PXAT *",
        "DEL gone",
        "SELECT 2",
        "MULTI",
        "INCR c",
        "PUBLISH news inside",
        "INCR d",
        "EXEC",
        "SELECT 0",
        "PUBLISH news hello",
        "SETBIT bits 7 1",
        "PFADD hll a",
        "SET g v",
        "DEL g",
        "SET x v",
        "UNLINK x",
        "SET end 1",
    ];
    for want in expected {
        let got = stream.next().await;
        let ok = match want.strip_suffix('*') {
            Some(prefix) => got.starts_with(prefix),
            None => got.eq_ignore_ascii_case(want),
        };
        assert!(ok, "expected `{want}`, the stream has `{got}`");
    }
}

/// A redis-server for a node to follow (DEBUG on, for digests), and a connection to it. A
/// master writes the file for a replica to its dir: a directory of its own.
async fn redis_master() -> (RedisServer, MultiplexedConnection) {
    redis_in_own_dir(&[]).await
}

/// A redis-server replica of the node, in a directory of its own (a replica writes the file
/// it receives to its dir).
async fn redis_replica_of(port: u16) -> (RedisServer, MultiplexedConnection) {
    redis_in_own_dir(&["--replicaof", "127.0.0.1", &port.to_string()]).await
}

/// A redis-server with DEBUG enabled, `extra` settings and a directory of its own, and a
/// connection to it.
async fn redis_in_own_dir(extra: &[&str]) -> (RedisServer, MultiplexedConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    let mut args = vec!["--dir", &path, "--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    let server = RedisServer::start_with(&args, Some(dir)).await;
    let c = conn(server.port).await;
    (server, c)
}

/// The other way: a node follows a redis-server master (REPLICAOF host port), the way to move a
/// live data set to Reredis; then REPLICAOF NO ONE makes it a master with the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_replicates_a_redis_master_then_takes_over() {
    let (master, mut m) = redis_master().await;
    load_before_sync(&mut m).await;

    let data = tempfile::tempdir().unwrap();
    let settings = [
        ("dir", data.path().to_str().unwrap()),
        ("enable-debug-command", "yes"),
        ("appendonly", "yes"),
    ];
    let node = start_loaded(&settings).await;
    let mut r = conn(node.resp_addr().port()).await;
    run(&mut r, &["SET", "mine", "goes away with the full sync"]).await;
    let port = master.port.to_string();
    run(&mut r, &["REPLICAOF", "127.0.0.1", &port]).await;
    assert_syncs_and_follows(&mut m, &mut r).await;
    // The master's messages reach the replica's subscribers (PUBLISH is in its stream).
    let mut sub = common::resp::Conn::open(node.resp_addr()).await;
    sub.send(&[b"SUBSCRIBE", b"news"]).await;
    sub.reply().await;
    run(&mut m, &["PUBLISH", "news", "from the master"]).await;
    let message = String::from_utf8_lossy(&sub.reply().await).into_owned();
    assert!(message.contains("from the master"), "{message}");

    // Writes from clients, scripts' included, are refused while it follows a master.
    let set = ["SET", "k", "v"];
    let script = ["EVAL", "return redis.call('SET', 'x', '1')", "0"];
    for args in [&set[..], &script[..]] {
        let mut cmd = redis::cmd(args[0]);
        cmd.arg(&args[1..]);
        let refused = cmd.query_async::<()>(&mut r).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("You can't write against a read only replica"),
            "{args:?} on the replica: {refused}"
        );
    }
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut r).await.unwrap();
    assert_eq!(role.len(), 5, "ROLE of a replica: {role:?}");

    run(&mut r, &["REPLICAOF", "NO", "ONE"]).await;
    run(&mut r, &["SET", "k", "v"]).await;
    assert_eq!(info_field(&mut r, "replication", "role").await, "master");
    let s: String = redis::cmd("GET")
        .arg("s")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(s, "world!", "the data stays after the takeover");

    // The copy is in our own log: a restart has the master's data (and the write after).
    let expect = digest(&mut r).await;
    node.shutdown().await;
    let node = start_loaded(&settings).await;
    let mut r = conn(node.resp_addr().port()).await;
    assert_eq!(
        digest(&mut r).await,
        expect,
        "the same data after a restart"
    );
}

/// A Redis master busy with a background save answers PSYNC only when it can start the sync,
/// keeping the link alive with bare newlines meanwhile: the node waits them out (it took one
/// for the answer and reconnected every second). And a replica has no min-replicas check: its
/// writes get -READONLY (as Redis's checkGoodReplicasStatus), not -NOREPLICAS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_busy_saving_is_waited_for_and_a_replica_answers_readonly() {
    let (master, mut m) = redis_master().await;
    run(&mut m, &["DEBUG", "POPULATE", "20"]).await;
    run(&mut m, &["CONFIG", "SET", "rdb-key-save-delay", "150000"]).await;
    run(&mut m, &["BGSAVE"]).await;
    let (_data, node, mut r) = node_with(&[]).await;
    let port = master.port.to_string();
    run(&mut r, &["REPLICAOF", "127.0.0.1", &port]).await;
    let synced = wait_for(Duration::from_secs(40), async || {
        info_field(&mut r, "replication", "master_link_status").await == "up"
    })
    .await;
    assert!(synced, "the node synced once the master could");
    assert_eq!(
        info_field(&mut m, "stats", "sync_full").await,
        "1",
        "one full sync: the node did not give up on the newlines and ask again"
    );
    run(&mut r, &["CONFIG", "SET", "min-replicas-to-write", "1"]).await;
    run(&mut r, &["CONFIG", "SET", "min-replicas-max-lag", "10"]).await;
    let refused = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut r)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("read only replica"),
        "{refused}"
    );
    node.shutdown().await;
}

/// `replicaof "host port"` (file, REREDIS_REPLICAOF, --replicaof) follows a master from the
/// start; it is refused in cluster mode and when it is not "host port".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicaof_setting_follows_a_master_from_the_start() {
    let mdir = tempfile::tempdir().unwrap();
    let mpath = mdir.path().to_str().unwrap().to_string();
    let master = RedisServer::start_with(&["--dir", &mpath], Some(mdir)).await;
    let mut m = conn(master.port).await;
    run(&mut m, &["SET", "from-master", "1"]).await;
    let at = format!("127.0.0.1 {}", master.port);
    let node = start_loaded(&[("replicaof", at.as_str())]).await;
    let mut r = conn(node.resp_addr().port()).await;
    assert!(
        arrives(&mut r, "from-master").await,
        "the node synced from the master it was started with"
    );
    assert_eq!(info_field(&mut r, "replication", "role").await, "slave");

    for (settings, why) in [
        (
            vec![("replicaof", at.as_str()), ("cluster.enabled", "yes")],
            "cluster-enabled no",
        ),
        (vec![("replicaof", "127.0.0.1")], "host port"),
    ] {
        let mut v = reredis::config::Config::ephemeral().values.clone();
        for (k, val) in settings {
            v.set(k, val, reredis::config::Origin::Default).unwrap();
        }
        let err = reredis::start(reredis::config::Config::from_values(v))
            .await
            .err()
            .expect("refused at start");
        assert!(err.to_string().contains(why), "{err}");
    }
}

/// A link to a redis-server master that breaks resumes with a partial resync: the master sends
/// only what the node missed (`sync_partial_ok`, no second full sync), in the db its stream had
/// selected, and the node ends with the master's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_link_to_a_redis_master_resumes_with_a_partial_resync() {
    let (master, mut m) = redis_master().await;
    run(&mut m, &["SET", "before", "1"]).await;
    let node = start_loaded(&[("enable-debug-command", "yes")]).await;
    let mut r = conn(node.resp_addr().port()).await;
    let port = master.port.to_string();
    run(&mut r, &["REPLICAOF", "127.0.0.1", &port]).await;
    assert!(arrives(&mut r, "before").await, "the first (full) sync");
    // The master's stream selects db 2 and stays there.
    run(&mut m, &["SELECT", "2"]).await;
    run(&mut m, &["SET", "in2", "a"]).await;
    run(&mut r, &["SELECT", "2"]).await;
    assert!(arrives(&mut r, "in2").await, "a write in db 2 arrives");

    for round in 0..2 {
        // The master drops the link; what it takes meanwhile reaches the node on reconnection.
        run(&mut m, &["CLIENT", "KILL", "TYPE", "replica"]).await;
        let key = format!("while-down-{round}");
        run(&mut m, &["SET", &key, "b"]).await;
        run(&mut m, &["MULTI"]).await;
        run(&mut m, &["INCR", "counter"]).await;
        run(&mut m, &["RPUSH", "list", &key]).await;
        run(&mut m, &["EXEC"]).await;
        assert!(arrives(&mut r, &key).await, "round {round}: {key} arrives");
    }
    assert_eq!(info_field(&mut m, "stats", "sync_full").await, "1");
    assert_eq!(info_field(&mut m, "stats", "sync_partial_ok").await, "2");
    let _: () = redis::cmd("SELECT")
        .arg(0)
        .query_async(&mut r)
        .await
        .unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(0)
        .query_async(&mut m)
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), async || digest(&mut m).await
            == digest(&mut r).await)
        .await,
        "the same data: {:?}",
        differing_keys(&mut m, &mut r).await
    );
    node.shutdown().await;
}

/// A replica whose link is down (its master's port has nothing listening), as Redis:
/// `replica-read-only` and `replica-serve-stale-data` decide what its clients get (`-READONLY`,
/// `-MASTERDOWN` for commands not flagged `stale`, PING among them, which is why this is not a
/// `session` transcript: those sync with PING; an EXEC by what it queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_its_link_down_answers_as_redis() {
    const SCRIPT: &[&str] = &[
        "CONFIG GET repl-timeout",
        "CONFIG GET replica-read-only",
        "CONFIG GET replica-serve-stale-data",
        "CONFIG GET slave-read-only",
        "CONFIG GET slave-serve-stale-data",
        "SET k v1",
        "REPLICAOF 127.0.0.1 1",
        "GET k",
        "SET k v2",
        "CONFIG SET replica-serve-stale-data no",
        "GET k",
        "PING",
        // Scripts: one without a `#!lua` line is refused, one with `allow-stale` runs and
        // may call only `stale` commands, one that may write is refused first (read-only).
        "EVAL return(redis.call('get','k')) 0",
        "EVAL|#!lua flags=allow-stale,no-writes\nreturn redis.pcall('get','k')['err']|0",
        "EVAL|#!lua flags=allow-stale,no-writes\nreturn redis.call('info','server') ~= nil|0",
        "EVAL|#!lua flags=no-writes\nreturn 1|0",
        "EVAL|#!lua\nreturn 1|0",
        "SET k v2",
        "CONFIG SET replica-read-only no",
        "SET k v2",
        "MULTI",
        "GET k",
        "EXEC",
        "MULTI",
        "CONFIG GET replica-read-only",
        "EXEC",
        "CONFIG SET replica-serve-stale-data yes",
        "SET k v3",
        "GET k",
        "CONFIG SET replica-read-only yes",
        "SET k v4",
        "REPLICAOF NO ONE",
        "SET k v5",
        "GET k",
    ];
    async fn replies(addr: std::net::SocketAddr) -> Vec<String> {
        let mut conn = common::session::Conn::connect(addr).await;
        let mut out = Vec::new();
        for line in SCRIPT {
            // `|` separates arguments that hold spaces.
            let args: Vec<&str> = if line.contains('|') {
                line.split('|').collect()
            } else {
                line.split(' ').collect()
            };
            out.push(format!("{line} -> {}", conn.call_str(&args).await));
        }
        out
    }
    let node = start_loaded(&[]).await;
    let ours = replies(node.resp_addr()).await;
    node.shutdown().await;
    let redis = RedisServer::start().await;
    let theirs = replies(redis.addr()).await;
    common::session::assert_same_lines(&ours, &theirs);
    assert!(ours[10].contains("-MASTERDOWN"), "{ours:?}");
    assert!(ours[13].contains("stale replica"), "{ours:?}");
    assert!(ours[19].contains("-MASTERDOWN"), "{ours:?}");
}

/// `repl-timeout`, both ways: a PSYNC replica that never acknowledges is dropped (a SYNC client
/// such as `redis-cli --replica`, which never does, is not), and a node whose master goes
/// silent (DEBUG SLEEP on a redis-server) takes its link down, then resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_replicas_and_masters_are_dropped_after_repl_timeout() {
    let node = start_loaded(&[("repl-timeout", "1")]).await;
    let mut c = conn(node.resp_addr().port()).await;
    let mut silent = StreamReader::attach_with(node.resp_addr(), "PSYNC ? -1").await;
    let _sync_client = StreamReader::attach(node.resp_addr()).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut silent.r, &mut rest),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the replica that never acknowledged was dropped"
    );
    assert!(
        replica_client_id(&mut c).await.is_some(),
        "the SYNC client stays"
    );
    node.shutdown().await;

    let (master, mut m) = redis_master().await;
    run(&mut m, &["CONFIG", "SET", "repl-ping-replica-period", "1"]).await;
    let node = start_loaded(&[("repl-timeout", "2")]).await;
    let mut r = conn(node.resp_addr().port()).await;
    let port = master.port.to_string();
    run(&mut r, &["REPLICAOF", "127.0.0.1", &port]).await;
    let link = async |r: &mut MultiplexedConnection, want: &str| {
        wait_for(Duration::from_secs(20), async || {
            info_field(r, "replication", "master_link_status").await == want
        })
        .await
    };
    assert!(link(&mut r, "up").await, "the link comes up");
    let mut sleeper =
        common::connect_waiting(std::net::SocketAddr::from(([127, 0, 0, 1], master.port))).await;
    let sleep = tokio::spawn(async move {
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(4)
            .query_async(&mut sleeper)
            .await
            .unwrap();
    });
    assert!(
        link(&mut r, "down").await,
        "the link goes down while the master says nothing"
    );
    sleep.await.unwrap();
    assert!(link(&mut r, "up").await, "and comes back up after");
    node.shutdown().await;
}

/// A master's command this node cannot run (a module's, a newer Redis's) is skipped, as a Redis
/// replica does, and the stream goes on over the same link: stopping there would stop at it
/// again after every resync. The master here is a script: a real Redis sends only commands we
/// know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_node_cannot_run_is_skipped_and_the_stream_goes_on() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    // An empty RDB file, as redis-server makes it.
    let (redis, _) = redis_master().await;
    let empty_rdb = {
        let mut s = tokio::net::TcpStream::connect(redis.addr()).await.unwrap();
        s.write_all(b"SYNC\r\n").await.unwrap();
        let mut r = BufReader::new(s);
        let len = loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            if let Some(n) = line.trim_end().strip_prefix('$') {
                break n.parse::<usize>().unwrap();
            }
        };
        let mut file = vec![0; len];
        r.read_exact(&mut file).await.unwrap();
        file
    };
    drop(redis);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master_port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepted.clone();
    let master = tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (rd, mut wr) = s.into_split();
            let mut rd = BufReader::new(rd);
            // PING, REPLCONF listening-port, REPLCONF capa, then PSYNC.
            for reply in ["+PONG", "+OK", "+OK"] {
                read_command(&mut rd).await;
                wr.write_all(format!("{reply}\r\n").as_bytes())
                    .await
                    .unwrap();
            }
            assert!(read_command(&mut rd).await.starts_with("PSYNC"));
            let id = "a".repeat(40);
            let mut out = format!("+FULLRESYNC {id} 0\r\n${}\r\n", empty_rdb.len()).into_bytes();
            out.extend_from_slice(&empty_rdb);
            out.extend_from_slice(b"*2\r\n$9\r\nNOSUCHCMD\r\n$1\r\nx\r\n");
            out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n1\r\n");
            wr.write_all(&out).await.unwrap();
            // The node's ACKs, until it goes.
            let mut sink = Vec::new();
            let _ = rd.read_to_end(&mut sink).await;
        }
    });
    async fn read_command(rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut line = String::new();
        rd.read_line(&mut line).await.unwrap();
        let n: usize = line.trim_end()[1..].parse().unwrap();
        let mut args = Vec::new();
        for _ in 0..n {
            line.clear();
            rd.read_line(&mut line).await.unwrap();
            line.clear();
            rd.read_line(&mut line).await.unwrap();
            args.push(line.trim_end().to_string());
        }
        args.join(" ")
    }

    let node = start_loaded(&[]).await;
    let mut r = conn(node.resp_addr().port()).await;
    run(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &master_port.to_string()],
    )
    .await;
    assert!(
        arrives(&mut r, "after").await,
        "the write after the unknown command arrives"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one link, never broken"
    );
    assert_eq!(
        info_field(&mut r, "replication", "master_link_status").await,
        "up"
    );
    node.shutdown().await;
    master.abort();
}

/// A node started on a directory holding Redis's `dump.rdb` loads it (every type, TTLs, dbs,
/// function libraries): a Redis data set moves by starting a node where it is. A file that
/// cannot be read stops the start, and nothing is saved over it on the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_dump_rdb_is_loaded_at_start_up() {
    let (master, mut m) = redis_master().await;
    load_before_sync(&mut m).await;
    run(&mut m, &["SAVE"]).await;
    let dir: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query_async(&mut m)
        .await
        .unwrap();
    let rdb = std::fs::read(std::path::Path::new(&dir[1]).join("dump.rdb")).unwrap();
    let expect = digest(&mut m).await;
    drop(master);

    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("dump.rdb"), &rdb).unwrap();
    let settings = [
        ("dir", data.path().to_str().unwrap()),
        ("enable-debug-command", "yes"),
        ("save", "3600 1"),
    ];
    let node = start_loaded(&settings).await;
    let mut r = conn(node.resp_addr().port()).await;
    assert_eq!(digest(&mut r).await, expect, "the same data as Redis had");
    let ttl: i64 = redis::cmd("TTL")
        .arg("n")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(ttl > 900, "TTLs kept: {ttl}");
    node.shutdown().await;

    // In cluster mode the file is refused (its keys' slots and dbs are not this node's).
    let cdir = tempfile::tempdir().unwrap();
    std::fs::write(cdir.path().join("redis.rdb"), &rdb).unwrap();
    let mut v = reredis::config::Config::ephemeral().values.clone();
    for (k, val) in [
        ("dir", cdir.path().to_str().unwrap()),
        ("cluster.enabled", "yes"),
    ] {
        v.set(k, val, reredis::config::Origin::Default).unwrap();
    }
    // Given (not left at its default, which would take the node's port in cluster mode).
    v.set(
        "dbfilename",
        "redis.rdb",
        reredis::config::Origin::Flag("--dbfilename".into()),
    )
    .unwrap();
    let node = reredis::start(reredis::config::Config::from_values(v))
        .await
        .unwrap();
    let why = stop_reason(&node, "a node in cluster mode refuses a Redis RDB file").await;
    assert!(why.contains("cluster mode does not load"), "{why}");
    node.shutdown().await;

    // A damaged file: the node stops, and the file is left as it was.
    let broken = &rdb[..rdb.len() / 2];
    std::fs::write(data.path().join("dump.rdb"), broken).unwrap();
    let node = common::start_node(&settings).await;
    let why = stop_reason(&node, "the node stops on a file it cannot load").await;
    assert!(why.contains("dump.rdb"), "{why}");
    node.shutdown().await;
    assert_eq!(
        std::fs::read(data.path().join("dump.rdb")).unwrap(),
        broken,
        "nothing saved over the file it could not read"
    );
}

/// Waits (20 s at most, else panics with `what`) for `node` to stop by itself, and returns
/// why it did (its fatal start-up error).
async fn stop_reason(node: &reredis::NodeHandle, what: &str) -> String {
    let stopped = node.node.shutdown.clone();
    tokio::time::timeout(Duration::from_secs(20), stopped.cancelled())
        .await
        .expect(what);
    node.node.persist.fatal.lock().clone().unwrap_or_default()
}

/// ROLE's first word.
async fn role_of(c: &mut MultiplexedConnection) -> String {
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(c).await.unwrap();
    match &role[0] {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

/// FAILOVER, both ways with a real redis-server: a node hands its master role to its Redis
/// replica (which continues the stream: a partial resync), and a Redis master hands it back to
/// the node (which takes over on `PSYNC ... FAILOVER`). No acknowledged write is lost, and
/// the old master follows the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_hands_the_master_role_over_both_ways() {
    let (_data, ours, mut n) = loaded_master().await;
    // (Started as a master; it becomes our replica first.)
    let (redis, mut r) = redis_master().await;
    let nport = ours.resp_addr().port().to_string();
    run(&mut r, &["REPLICAOF", "127.0.0.1", &nport]).await;
    assert_syncs_and_follows(&mut n, &mut r).await;

    // Ours -> Redis: writes pause, the replica catches up, then takes over.
    run(&mut n, &["SET", "before", "1"]).await;
    run(&mut n, &["FAILOVER", "TIMEOUT", "10000"]).await;
    let failed_over = wait_for(Duration::from_secs(20), async || {
        role_of(&mut n).await == "slave" && role_of(&mut r).await == "master"
    })
    .await;
    assert!(failed_over, "the node follows its old replica");
    assert!(
        wait_for(Duration::from_secs(20), async || {
            info_field(&mut n, "replication", "master_link_status").await == "up"
        })
        .await,
        "the old master follows the new one"
    );
    assert_eq!(
        info_field(&mut n, "replication", "master_failover_state").await,
        "no-failover"
    );
    let partial: u64 = info_field(&mut r, "stats", "sync_partial_ok")
        .await
        .parse()
        .unwrap();
    assert_eq!(partial, 1, "the node continued from its own stream");
    let refused = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut n)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("read only replica"),
        "{refused}"
    );
    run(&mut r, &["SET", "on-redis", "2"]).await;
    assert!(arrives(&mut n, "on-redis").await);
    assert_same_data(&mut r, &mut n, "after the first failover").await;

    // Redis -> ours: the node becomes a master on PSYNC FAILOVER; Redis follows it.
    run(&mut r, &["FAILOVER"]).await;
    let back = wait_for(Duration::from_secs(20), async || {
        role_of(&mut n).await == "master" && role_of(&mut r).await == "slave"
    })
    .await;
    assert!(back, "the node took over on PSYNC FAILOVER");
    run(&mut n, &["SET", "after", "3"]).await;
    assert!(arrives(&mut r, "after").await);
    assert_same_data(&mut n, &mut r, "after the second failover").await;
    for key in ["before", "on-redis", "after"] {
        let v: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut n)
            .await
            .unwrap();
        assert!(v.is_some(), "{key} kept");
    }

    // Checks as Redis's: a named target must be a replica; ABORT ends a wait for sync.
    let err = redis::cmd("FAILOVER")
        .arg("TO")
        .arg("127.0.0.1")
        .arg("1")
        .query_async::<()>(&mut n)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not a replica"), "{err}");
    assert!(
        wait_for(Duration::from_secs(20), async || {
            info_field(&mut n, "replication", "slave0")
                .await
                .contains("state=online")
        })
        .await
    );
    // The replica stops: a write it cannot acknowledge keeps the failover waiting for sync.
    redis.signal("-STOP");
    run(&mut n, &["SET", "unacked", "x"]).await;
    run(&mut n, &["FAILOVER"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        info_field(&mut n, "replication", "master_failover_state").await,
        "waiting-for-sync"
    );
    // Writes wait (CLIENT UNPAUSE does not lift a failover's pause); reads go on.
    run(&mut n, &["CLIENT", "UNPAUSE"]).await;
    let mut w = common::resp::Conn::open(ours.resp_addr()).await;
    w.send(&[b"SET", b"held", b"1"]).await;
    assert!(
        !w.has_reply_within(Duration::from_millis(500)).await,
        "a write during the failover waits"
    );
    run(&mut n, &["GET", "before"]).await;
    run(&mut n, &["FAILOVER", "ABORT"]).await;
    assert_eq!(w.reply().await, b"+OK\r\n", "the write goes on after ABORT");
    assert_eq!(
        info_field(&mut n, "replication", "master_failover_state").await,
        "no-failover"
    );
    assert_eq!(role_of(&mut n).await, "master");
    run(&mut n, &["SET", "writes", "resume"]).await;

    // A target that cannot be reached once the failover goes on to it (FORCE, past TIMEOUT):
    // the node keeps trying, writes still paused, until ABORT (as Redis).
    let rport = redis.port.to_string();
    let force = [
        "FAILOVER",
        "TO",
        "127.0.0.1",
        &rport,
        "FORCE",
        "TIMEOUT",
        "200",
    ];
    run(&mut n, &force).await;
    redis.signal("-KILL");
    assert!(
        wait_for(Duration::from_secs(20), async || {
            info_field(&mut n, "replication", "master_failover_state").await
                == "failover-in-progress"
        })
        .await,
        "the failover goes on to the target"
    );
    // Past a few reconnection attempts (one a second), it is still in progress.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        info_field(&mut n, "replication", "master_failover_state").await,
        "failover-in-progress"
    );
    assert_eq!(role_of(&mut n).await, "slave");
    let mut w = common::resp::Conn::open(ours.resp_addr()).await;
    w.send(&[b"SET", b"held", b"2"]).await;
    assert!(
        !w.has_reply_within(Duration::from_millis(300)).await,
        "writes stay paused while the target is tried"
    );
    run(&mut n, &["FAILOVER", "ABORT"]).await;
    assert_eq!(w.reply().await, b"+OK\r\n", "the write goes on after ABORT");
    assert_eq!(role_of(&mut n).await, "master");
    assert_eq!(
        info_field(&mut n, "replication", "master_failover_state").await,
        "no-failover"
    );
    ours.shutdown().await;
}

/// Whether `replicas` replicas acknowledge everything written so far within 20 seconds (short
/// WAITs, each well inside the client's response timeout).
async fn acked_by(c: &mut MultiplexedConnection, replicas: i64) -> bool {
    wait_for(Duration::from_secs(20), async || {
        let n: i64 = redis::cmd("WAIT")
            .arg(replicas)
            .arg(100)
            .query_async(c)
            .await
            .unwrap();
        n >= replicas
    })
    .await
}

/// Two Redis replicas of the node, synced at different points: the later one is promoted
/// (as Sentinel does) and the other moved to it. The sibling must not continue at an offset
/// that means another place in the promoted one's stream (commands applied twice, or cut in
/// half): it ends with exactly the promoted replica's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_moved_to_a_promoted_redis_replica_keeps_the_same_data() {
    let (_data, node, mut m) = loaded_master().await;
    let port = node.resp_addr().port();
    let (_early_server, mut early) = redis_replica_of(port).await;
    assert_syncs_and_follows(&mut m, &mut early).await;
    // A few writes only the first replica receives in its stream (the second, in its file),
    // then many that both receive.
    for _ in 0..5 {
        run(&mut m, &["INCR", "counter"]).await;
    }
    let (late_server, mut late) = redis_replica_of(port).await;
    assert!(
        wait_for(Duration::from_secs(20), async || {
            info_field(&mut late, "replication", "master_link_status").await == "up"
        })
        .await,
        "the second replica's link came up"
    );
    for i in 0..50 {
        run(&mut m, &["INCR", "counter"]).await;
        run(&mut m, &["RPUSH", "log", &format!("entry-{i}")]).await;
    }
    assert!(acked_by(&mut m, 2).await, "WAIT 2");
    assert_same_data(&mut m, &mut early, "first replica").await;
    assert_same_data(&mut m, &mut late, "second replica").await;
    let before: i64 = redis::cmd("GET")
        .arg("counter")
        .query_async(&mut m)
        .await
        .unwrap();

    // The master goes; the later replica takes over and the other follows it.
    node.shutdown().await;
    run(&mut late, &["REPLICAOF", "NO", "ONE"]).await;
    run(
        &mut early,
        &["REPLICAOF", "127.0.0.1", &late_server.port.to_string()],
    )
    .await;
    assert!(
        wait_for(Duration::from_secs(20), async || {
            info_field(&mut early, "replication", "master_link_status").await == "up"
        })
        .await,
        "the sibling follows the promoted replica"
    );
    for _ in 0..10 {
        run(&mut late, &["INCR", "counter"]).await;
    }
    assert!(
        acked_by(&mut late, 1).await,
        "WAIT 1 on the promoted replica"
    );
    assert_same_data(&mut late, &mut early, "the sibling after the promotion").await;
    let counter: i64 = redis::cmd("GET")
        .arg("counter")
        .query_async(&mut early)
        .await
        .unwrap();
    assert_eq!(counter, before + 10);
}

/// A Redis master propagates an approximate trim as `MAXLEN = <len> LIMIT <n>` (it keeps the
/// LIMIT): the node following it applies it, as a Redis replica does, instead of refusing it
/// and losing the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approximate_trims_from_a_redis_master_are_applied() {
    let (master, mut m) = redis_master().await;
    run(&mut m, &["CONFIG", "SET", "stream-node-max-entries", "4"]).await;
    let data = tempfile::tempdir().unwrap();
    let settings = [
        ("dir", data.path().to_str().unwrap()),
        ("enable-debug-command", "yes"),
    ];
    let node = start_loaded(&settings).await;
    let mut r = conn(node.resp_addr().port()).await;
    follow_until_up(&mut r, master.port).await;
    for i in 0..40 {
        let v = i.to_string();
        run(
            &mut m,
            &["XADD", "s", "MAXLEN", "~", "6", "LIMIT", "8", "*", "n", &v],
        )
        .await;
    }
    run(&mut m, &["XTRIM", "s", "MINID", "~", "0-1", "LIMIT", "4"]).await;
    assert!(acked_by(&mut m, 1).await, "WAIT 1");
    assert_same_data(&mut m, &mut r, "after the trims").await;
    node.shutdown().await;
}

/// FAILOVER ... FORCE to a Redis replica that did not catch up: past the timeout the node
/// asks it to take over by the ID of the stream it feeds it (a Redis replica checks `PSYNC
/// <id> ... FAILOVER` against its own), and follows it with a full sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_failover_hands_over_to_a_redis_replica_behind() {
    let (_data, ours, mut n) = loaded_master().await;
    let (redis, mut r) = redis_replica_of(ours.resp_addr().port()).await;
    assert_syncs_and_follows(&mut n, &mut r).await;
    redis.signal("-STOP");
    run(&mut n, &["SET", "unacked", "x"]).await;
    let rport = redis.port.to_string();
    run(
        &mut n,
        &[
            "FAILOVER",
            "TO",
            "127.0.0.1",
            &rport,
            "FORCE",
            "TIMEOUT",
            "300",
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.signal("-CONT");
    let handed_over = wait_for(Duration::from_secs(20), async || {
        role_of(&mut r).await == "master"
            && role_of(&mut n).await == "slave"
            && info_field(&mut n, "replication", "master_link_status").await == "up"
    })
    .await;
    assert!(
        handed_over,
        "the forced failover went through: ours {} ({}), redis {}",
        role_of(&mut n).await,
        info_field(&mut n, "replication", "master_failover_state").await,
        role_of(&mut r).await
    );
    run(&mut r, &["SET", "on-redis", "1"]).await;
    assert!(arrives(&mut n, "on-redis").await);
    ours.shutdown().await;
}

/// A master that answers the replication handshake, announces a 1000-byte file and sends 10
/// bytes of it, then holds the connection for as long as the test runs: a replica stays in
/// its transfer. Returns the port it listens on.
async fn stalling_master() -> u16 {
    fake_master(b"$1000\r\nREDIS0009\x01".to_vec()).await
}

/// A master that answers the replication handshake with `+FULLRESYNC <id> 0` followed by
/// `after` (the file, and maybe a stream), then holds the connection for as long as the test
/// runs. Returns the port it listens on.
async fn fake_master(after: Vec<u8>) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let after = after.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                let mut line = String::new();
                loop {
                    // One command: `*N`, then N bulk strings.
                    line.clear();
                    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let Some(n) = line.trim().strip_prefix('*').and_then(|n| n.parse().ok()) else {
                        continue;
                    };
                    let mut args: Vec<String> = Vec::new();
                    for _ in 0..n {
                        line.clear();
                        rd.read_line(&mut line).await.unwrap();
                        let len: usize = line.trim()[1..].parse().unwrap();
                        let mut arg = vec![0; len + 2];
                        rd.read_exact(&mut arg).await.unwrap();
                        args.push(String::from_utf8_lossy(&arg[..len]).to_uppercase());
                    }
                    let reply: &[u8] = match args[0].as_str() {
                        "PING" => b"+PONG\r\n",
                        "PSYNC" => {
                            let id = "a".repeat(40);
                            let head = format!("+FULLRESYNC {id} 0\r\n");
                            wr.write_all(head.as_bytes()).await.unwrap();
                            wr.write_all(&after).await.unwrap();
                            // Held: the rest of the file never comes.
                            std::future::pending::<()>().await;
                            return;
                        }
                        _ => b"+OK\r\n",
                    };
                    wr.write_all(reply).await.unwrap();
                }
            });
        }
    });
    port
}

/// Cuts the one replica's link; it comes back (a write after the cut arrives) by a partial
/// resync, its only full sync the first.
async fn continues_after_a_cut(m: &mut MultiplexedConnection, r: &mut MultiplexedConnection) {
    assert_eq!(kill_replicas(m).await, 1, "CLIENT KILL TYPE replica");
    run(m, &["SET", "after", "1"]).await;
    assert!(arrives(r, "after").await, "the replica came back");
    assert_eq!(
        info_field(m, "stats", "sync_partial_ok").await,
        "1",
        "a partial resync"
    );
    assert_eq!(info_field(m, "stats", "sync_full").await, "1");
}

/// CLIENT KILL TYPE replica: how many went.
async fn kill_replicas(m: &mut MultiplexedConnection) -> i64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(m)
        .await
        .unwrap()
}

/// `field:value` of INFO replication, with the seconds since the master last sent something
/// shown as `<recent>` when under 3 (the two servers read their clocks at different moments).
async fn field_seen(c: &mut MultiplexedConnection, f: &str) -> String {
    let v = info_field(c, "replication", f).await;
    let recent = f == "master_sync_last_io_seconds_ago"
        && v.parse::<i64>().is_ok_and(|s| (0..3).contains(&s));
    format!("{f}:{}", if recent { "<recent>" } else { &v })
}

/// What `INFO replication` says of one server's link as it follows a master that is not
/// there, then one stuck in the middle of its file, then none (its replication ID parts from
/// the one it had).
async fn link_story(c: &mut MultiplexedConnection, dead: u16, stalling: u16) -> Vec<String> {
    let mut seen = Vec::new();
    let fields = [
        "master_link_status",
        "master_sync_in_progress",
        "master_sync_total_bytes",
        "master_sync_read_bytes",
        "master_sync_left_bytes",
        "master_sync_perc",
        "master_sync_last_io_seconds_ago",
        "master_link_down_since_seconds",
    ];
    let before = info_field(c, "replication", "master_replid").await;
    run(c, &["REPLICAOF", "127.0.0.1", &dead.to_string()]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for f in fields {
        seen.push(field_seen(c, f).await);
    }
    run(c, &["REPLICAOF", "127.0.0.1", &stalling.to_string()]).await;
    let mut reading = false;
    for _ in 0..100 {
        if info_field(c, "replication", "master_sync_read_bytes").await == "10" {
            reading = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reading, "the replica never got into the transfer");
    for f in fields {
        seen.push(field_seen(c, f).await);
    }
    run(c, &["REPLICAOF", "NO", "ONE"]).await;
    let after = info_field(c, "replication", "master_replid").await;
    seen.push(format!(
        "a new replication id after REPLICAOF NO ONE: {}",
        after != before && after.len() == 40 && after != "a".repeat(40)
    ));
    seen
}

/// A replica's link in `INFO replication` as Redis shows it: how long it has been down
/// (-1 before it was ever up), a full sync's progress while the file arrives, and a
/// replication ID of its own after REPLICAOF NO ONE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicas_link_and_transfer_show_in_info_as_in_redis() {
    let dead = unused_port();
    let stalling = stalling_master().await;
    let (_redis, mut rc) = redis_in_own_dir(&[]).await;
    let want = link_story(&mut rc, dead, stalling).await;
    assert!(
        want.contains(&"master_sync_total_bytes:1000".to_string()),
        "{want:?}"
    );
    let (_data, node, mut ours) = node_with(&[]).await;
    assert_eq!(link_story(&mut ours, dead, stalling).await, want);

    // Down after being up: counted from when the link went.
    let (master, _m) = redis_master().await;
    let port = master.port.to_string();
    run(&mut ours, &["REPLICAOF", "127.0.0.1", &port]).await;
    let up = wait_for(Duration::from_secs(20), async || {
        info_field(&mut ours, "replication", "master_link_status").await == "up"
    })
    .await;
    assert!(up, "the link to the master never came up");
    assert_eq!(
        info_field(&mut ours, "replication", "master_link_down_since_seconds").await,
        "",
        "no down time while the link is up"
    );
    drop(master);
    let down = wait_for(Duration::from_secs(20), async || {
        info_field(&mut ours, "replication", "master_link_status").await == "down"
    })
    .await;
    assert!(down, "the link stayed up without a master");
    let since: i64 = info_field(&mut ours, "replication", "master_link_down_since_seconds")
        .await
        .parse()
        .unwrap();
    assert!((0..20).contains(&since), "{since}");
    node.shutdown().await;
}

/// A transaction from the master is applied on the node as one step, as a Redis replica runs
/// its master's EXEC: a reader of the replica never sees half of one (here: `a` and `b` are
/// set to the same value by each transaction, with many writes between them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masters_transactions_are_applied_whole() {
    const TRANSACTIONS: usize = 200;
    let (master, mut m) = redis_master().await;
    let (_data, node, mut r) = node_with(&[]).await;
    follow_until_up(&mut r, master.port).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let mut r = conn(node.resp_addr().port()).await;
        tokio::spawn(async move {
            let (mut reads, mut torn) = (0u64, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) && reads < 1_000_000 {
                let (a, b): (Option<String>, Option<String>) = redis::cmd("MGET")
                    .arg("a")
                    .arg("b")
                    .query_async(&mut r)
                    .await
                    .unwrap();
                reads += 1;
                if a != b {
                    torn.push((a, b));
                }
            }
            (reads, torn)
        })
    };
    for i in 0..TRANSACTIONS {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("SET").arg("a").arg(i);
        for _ in 0..50 {
            pipe.cmd("INCR").arg("filler");
        }
        pipe.cmd("SET").arg("b").arg(i);
        let _: redis::Value = pipe.query_async(&mut m).await.unwrap();
    }
    let last = (TRANSACTIONS - 1).to_string();
    let caught_up = wait_for(Duration::from_secs(20), async || {
        let b: Option<String> = redis::cmd("GET")
            .arg("b")
            .query_async(&mut r)
            .await
            .unwrap();
        b.as_deref() == Some(last.as_str())
    })
    .await;
    assert!(caught_up, "the replica did not get the last transaction");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, torn) = reader.await.unwrap();
    assert!(
        torn.is_empty(),
        "{} of {reads} reads saw half a transaction: {:?}",
        torn.len(),
        &torn[..torn.len().min(5)]
    );
    assert!(reads > 0);
    node.shutdown().await;
}

/// A replica that stops taking the stream (here a stopped redis-server, its socket full) is
/// dropped after `repl-timeout`, as Redis drops it, instead of holding its feed on a write for
/// as long as it stays stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_is_dropped_after_repl_timeout() {
    stopped_replica_is_dropped(&["repl-timeout", "2"]).await;
}

/// A replica whose stream queues past `client-output-buffer-limit replica` is disconnected
/// at once (here long before `repl-timeout`), as Redis frees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_over_its_output_buffer_limit_is_dropped() {
    stopped_replica_is_dropped(&["client-output-buffer-limit", "replica 2mb 0 0"]).await;
}

/// A redis-server replica of a node, stopped while the node writes 48 MB with `setting`
/// set: the node drops it within 20 s.
async fn stopped_replica_is_dropped(setting: &[&str]) {
    let (_data, node, mut m) = node_with(&[]).await;
    let (replica, _r) = redis_replica_of(node.resp_addr().port()).await;
    assert!(acked_by(&mut m, 1).await, "the replica never synced");
    run(&mut m, &[&["CONFIG", "SET"][..], setting].concat()).await;
    replica.signal("-STOP");
    // More than the sockets between them hold: the feed's write waits on the replica.
    let value = "v".repeat(1 << 20);
    for i in 0..48 {
        run(&mut m, &["SET", &format!("big{i}"), &value]).await;
    }
    let dropped = replicas_become(&mut m, "0", Duration::from_secs(20)).await;
    replica.signal("-CONT");
    assert!(dropped, "the stopped replica was never dropped");
    node.shutdown().await;
}

/// A node that followed a master for a while without taking its data (no full sync: here a
/// master that is not there) and stopped again takes a new replication ID, and its replicas
/// still continue where they stood (Redis keeps the old ID as its second one); the link's down
/// time starts when a link that was up is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_continue_after_their_master_briefly_followed_another() {
    let (_data, node, mut m) = node_with(&[]).await;
    let (_replica, mut r) = redis_replica_of(node.resp_addr().port()).await;
    assert!(acked_by(&mut m, 1).await, "the replica never synced");
    let dead = unused_port();
    let before = info_field(&mut m, "replication", "master_replid").await;
    run(&mut m, &["REPLICAOF", "127.0.0.1", &dead.to_string()]).await;
    run(&mut m, &["REPLICAOF", "NO", "ONE"]).await;
    let after = info_field(&mut m, "replication", "master_replid").await;
    assert_ne!(after, before, "a new replication ID");
    continues_after_a_cut(&mut m, &mut r).await;

    // A link that was up and is replaced: down from then, not "never up" (-1).
    let (master, _mc) = redis_master().await;
    follow_until_up(&mut m, master.port).await;
    run(&mut m, &["REPLICAOF", "127.0.0.1", &dead.to_string()]).await;
    let since = info_field(&mut m, "replication", "master_link_down_since_seconds").await;
    assert!(since == "0" || since == "1", "{since}");
    node.shutdown().await;
}

/// A replica that takes nothing for a while but says it is alive (newlines, as a Redis replica
/// sends while it loads a large file) is kept past `repl-timeout`, as Redis keeps it; once it
/// falls silent too, it is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_replica_that_says_it_is_alive_is_kept() {
    use tokio::io::AsyncWriteExt;
    let (_data, node, mut m) = node_with(&[]).await;
    run(&mut m, &["CONFIG", "SET", "repl-timeout", "2"]).await;
    // Two replicas that ask for a sync and then read nothing at all: one sends newlines (it is
    // alive), the other bytes that say nothing.
    let mut replicas = Vec::new();
    for port in ["7777", "7778"] {
        let mut replica = tokio::net::TcpStream::connect(node.resp_addr())
            .await
            .unwrap();
        let hello = format!("REPLCONF listening-port {port}\r\nPSYNC ? -1\r\n");
        replica.write_all(hello.as_bytes()).await.unwrap();
        replicas.push(replica);
    }
    assert!(replicas_become(&mut m, "2", Duration::from_secs(10)).await);
    let value = "v".repeat(1 << 20);
    for i in 0..48 {
        run(&mut m, &["SET", &format!("big{i}"), &value]).await;
    }
    // Three timeouts' worth: the one that says it is alive stays, the other goes.
    for _ in 0..12 {
        replicas[0].write_all(b"\n").await.unwrap();
        let _ = replicas[1].write_all(b"x").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let kept = info_field(&mut m, "replication", "slave0").await;
    assert_eq!(
        info_field(&mut m, "replication", "connected_slaves").await,
        "1",
        "kept: {kept}"
    );
    assert!(kept.contains("port=7777"), "{kept}");
    let replica = replicas.remove(0);
    // Silent now: dropped.
    let dropped = replicas_become(&mut m, "0", Duration::from_secs(20)).await;
    assert!(dropped, "a silent replica was kept");
    drop(replica);
    node.shutdown().await;
}

/// A chain: a redis-server replica of a node that itself follows a redis-server master. When
/// the node stops following (REPLICAOF NO ONE), its replica continues under the master's ID it
/// was fed with (Redis's replid2) when its link is cut: a partial resync, not a full one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_replica_continues_after_its_master_is_promoted() {
    let (master, mut top) = redis_master().await;
    run(&mut top, &["SET", "from-top", "1"]).await;
    let (_data, node, mut m) = debug_node().await;
    follow_until_up(&mut m, master.port).await;
    let (_replica, mut r) = redis_replica_of(node.resp_addr().port()).await;
    assert!(arrives(&mut r, "from-top").await, "the chain never synced");
    run(&mut top, &["SET", "through", "1"]).await;
    assert!(
        arrives(&mut r, "through").await,
        "the chain does not follow"
    );
    run(&mut m, &["REPLICAOF", "NO", "ONE"]).await;
    // INFO shows the master's ID as the second one, as Redis's does.
    assert_eq!(
        info_field(&mut m, "replication", "master_replid2").await,
        info_field(&mut top, "replication", "master_replid").await
    );
    continues_after_a_cut(&mut m, &mut r).await;
    assert_same_data(&mut m, &mut r, "after the partial resync").await;
    node.shutdown().await;
}

/// A transaction from the master with a command this server does not have is discarded
/// whole, as Redis's replica discards it (EXECABORT); the stream goes on after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masters_transaction_with_an_unknown_command_is_discarded_whole() {
    // An empty RDB file (version 9, a zero checksum: not checked), then the stream.
    let mut after = b"$18\r\nREDIS0009\xff".to_vec();
    after.extend_from_slice(&[0; 8]);
    for cmd in [
        &["MULTI"][..],
        &["SET", "a", "1"],
        &["NOSUCHCOMMAND", "x"],
        &["SET", "b", "1"],
        &["EXEC"],
        &["SET", "c", "1"],
    ] {
        after.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
        for a in cmd {
            after.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    let port = fake_master(after).await.to_string();
    let story = async |c: &mut MultiplexedConnection| -> Vec<Option<String>> {
        run(c, &["REPLICAOF", "127.0.0.1", &port]).await;
        // (-LOADING while the file loads counts as not yet.)
        let came = wait_for(Duration::from_secs(20), async || {
            let v: Result<Option<String>, _> = redis::cmd("GET").arg("c").query_async(c).await;
            v.is_ok_and(|v| v.is_some())
        })
        .await;
        assert!(came, "the stream after the transaction never arrived");
        let mut seen = Vec::new();
        for k in ["a", "b", "c"] {
            seen.push(redis::cmd("GET").arg(k).query_async(c).await.unwrap());
        }
        seen
    };
    let (_redis, mut rc) = redis_in_own_dir(&[]).await;
    let want = story(&mut rc).await;
    assert_eq!(want, [None, None, Some("1".to_string())]);
    let (_data, node, mut m) = debug_node().await;
    assert_eq!(story(&mut m).await, want);
    node.shutdown().await;
}
