//! Core node behaviour through real clients: the `redis` crate, raw RESP over TCP, redis-cli
//! and redis-benchmark.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Raw, cmd, start_node, wait_for};
use redis::AsyncCommands;

#[tokio::test]
async fn seed_quick_start_with_the_redis_crate() {
    let node = start_node(&[]).await;
    let mut c = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = c.set("mykey", "hello world").await.unwrap();
    let v: String = c.get("mykey").await.unwrap();
    assert_eq!(v, "hello world");
    let n: i64 = c.del("mykey").await.unwrap();
    assert_eq!(n, 1);
    let v: Option<String> = c.get("mykey").await.unwrap();
    assert_eq!(v, None);
    node.shutdown().await;
}

#[tokio::test]
async fn binary_keys_and_values_round_trip() {
    let node = start_node(&[]).await;
    let mut c = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = b"k\0\r\n\xff".to_vec();
    let val = b"\0\r\n\x01binary\r\n".to_vec();
    let _: () = c.set(&key, &val).await.unwrap();
    let got: Vec<u8> = c.get(&key).await.unwrap();
    assert_eq!(got, val);
    node.shutdown().await;
}

#[tokio::test]
async fn pipelined_commands_get_replies_in_order() {
    let node = start_node(&[]).await;
    let mut raw = Raw::connect(node.resp_addr()).await;
    let mut wire = Vec::new();
    for i in 0..1000 {
        wire.extend(cmd(&[b"INCR", b"counter"]));
        if i % 100 == 0 {
            wire.extend(b"PING\r\n");
        }
    }
    let got = raw.send(&wire).await;
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with(":1\r\n+PONG\r\n:2\r\n"));
    assert!(text.ends_with(":1000\r\n"));
    assert_eq!(text.matches("+PONG").count(), 10);
    node.shutdown().await;
}

#[tokio::test]
async fn protocol_errors_reply_then_close() {
    let node = start_node(&[]).await;
    let mut raw = Raw::connect(node.resp_addr()).await;
    let got = raw.send_until_close(b"*1\r\n$-5\r\n").await;
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    let mut raw = Raw::connect(node.resp_addr()).await;
    let got = raw.send_until_close(b"*2\r\n$3\r\nGET\r\n:1\r\n").await;
    assert_eq!(got, b"-ERR Protocol error: expected '$', got ':'\r\n");
    // Other clients are unaffected.
    let mut raw = Raw::connect(node.resp_addr()).await;
    assert_eq!(raw.send(b"PING\r\n").await, b"+PONG\r\n");
    node.shutdown().await;
}

#[tokio::test]
async fn bulk_past_proto_max_bulk_len_is_refused() {
    let node = start_node(&[("proto-max-bulk-len", "1mb")]).await;
    let mut raw = Raw::connect(node.resp_addr()).await;
    let got = raw
        .send_until_close(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n")
        .await;
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    node.shutdown().await;
}

#[tokio::test]
async fn query_buffer_limit_closes_the_client() {
    let node = start_node(&[("client-query-buffer-limit", "1mb")]).await;
    let mut raw = Raw::connect(node.resp_addr()).await;
    // A bulk announced as 4 MB, sent in part: the buffer passes the limit and the node hangs up.
    let mut wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n".to_vec();
    wire.extend(vec![b'x'; 1_200_000]);
    let got = raw.send_until_close(&wire).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    node.shutdown().await;
}

#[tokio::test]
async fn hello_3_switches_to_resp3() {
    let node = start_node(&[]).await;
    let mut raw = Raw::connect(node.resp_addr()).await;
    let got = raw.send(&cmd(&[b"HELLO", b"3"])).await;
    assert!(
        got.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(raw.send(&cmd(&[b"GET", b"missing"])).await, b"_\r\n");
    assert_eq!(
        raw.send(&cmd(&[b"CONFIG", b"GET", b"maxmemory"])).await,
        b"%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    );
    assert_eq!(
        raw.send(&cmd(&[b"HELLO", b"4"])).await,
        b"-NOPROTO unsupported protocol version\r\n"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn maxclients_refuses_extra_connections() {
    let node = start_node(&[("maxclients", "2")]).await;
    let mut a = Raw::connect(node.resp_addr()).await;
    let mut b = Raw::connect(node.resp_addr()).await;
    assert_eq!(a.send(b"PING\r\n").await, b"+PONG\r\n");
    assert_eq!(b.send(b"PING\r\n").await, b"+PONG\r\n");
    let mut c = Raw::connect(node.resp_addr()).await;
    assert_eq!(
        c.send_until_close(b"").await,
        b"-ERR max number of clients reached\r\n"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn idle_clients_are_closed_after_timeout() {
    let node = start_node(&[("timeout", "1")]).await;
    let mut a = Raw::connect(node.resp_addr()).await;
    assert_eq!(a.send(b"PING\r\n").await, b"+PONG\r\n");
    let closed = a.send_until_close(b"").await;
    assert!(closed.is_empty());
    node.shutdown().await;
}

/// `timeout` and `client-query-buffer-limit` set by CONFIG SET apply to connections already
/// open (as Redis's clientsCron), and the two buffer limits keep Redis's 1mb minimum.
#[tokio::test]
async fn connection_limits_set_at_run_time_apply_to_open_connections() {
    let node = start_node(&[]).await;
    let mut idle = common::resp::Conn::open(node.resp_addr()).await;
    let mut big = common::resp::Conn::open(node.resp_addr()).await;
    let mut subscriber = common::resp::Conn::open(node.resp_addr()).await;
    assert!(subscriber.cmd(&["SUBSCRIBE", "ch"]).await.starts_with('*'));
    let mut admin = common::resp::Conn::open(node.resp_addr()).await;
    for limit in ["proto-max-bulk-len", "client-query-buffer-limit"] {
        assert_eq!(
            admin.cmd(&["CONFIG", "SET", limit, "1000"]).await,
            format!(
                "-ERR CONFIG SET failed (possibly related to argument '{limit}') - argument must be between 1048576 and 9223372036854775807 inclusive\r\n"
            )
        );
    }
    assert_eq!(
        admin
            .cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"])
            .await,
        "+OK\r\n"
    );
    // A bulk announced as 4 MB, sent in part past the new limit: the node hangs up.
    let mut wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n".to_vec();
    wire.extend(vec![b'x'; 1_200_000]);
    big.send_raw(&wire).await;
    assert!(
        big.closed_within(Duration::from_secs(10)).await,
        "the query buffer limit applies"
    );
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "timeout", "1"]).await,
        "+OK\r\n"
    );
    assert!(
        idle.closed_within(Duration::from_secs(10)).await,
        "the idle client is closed"
    );
    assert!(
        !subscriber.closed_within(Duration::from_millis(2500)).await,
        "a subscriber is never timed out"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn active_expiry_removes_keys_nobody_reads() {
    let node = start_node(&[("hz", "50")]).await;
    let mut c = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for i in 0..2000 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .arg("PX")
            .arg(50)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: () = c.set("keep", "1").await.unwrap();
    let n = node.node.clone();
    let gone = wait_for(Duration::from_secs(5), async || {
        n.store.db_sizes()[0].0 == 1
    })
    .await;
    assert!(
        gone,
        "expired keys still stored: {:?}",
        node.node.store.db_sizes()[0]
    );
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(info.contains("expired_keys:2000"), "{info}");
    node.shutdown().await;
}

#[tokio::test]
async fn multi_exec_runs_atomically_and_aborts_on_queue_errors() {
    let node = start_node(&[]).await;
    let mut raw = Raw::connect(node.resp_addr()).await;
    let got = raw
        .send(
            &[
                cmd(&[b"MULTI"]),
                cmd(&[b"SET", b"a", b"1"]),
                cmd(&[b"INCR", b"a"]),
                cmd(&[b"EXEC"]),
            ]
            .concat(),
        )
        .await;
    assert_eq!(got, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n");
    let got = raw
        .send(&[cmd(&[b"MULTI"]), cmd(&[b"SET", b"a"]), cmd(&[b"EXEC"])].concat())
        .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n-ERR wrong number of arguments for 'set' command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn client_kill_and_list() {
    let node = start_node(&[]).await;
    let mut a = Raw::connect(node.resp_addr()).await;
    let mut b = Raw::connect(node.resp_addr()).await;
    assert_eq!(
        b.send(&cmd(&[b"CLIENT", b"SETNAME", b"victim"])).await,
        b"+OK\r\n"
    );
    let list = a.send(&cmd(&[b"CLIENT", b"LIST"])).await;
    let list = String::from_utf8_lossy(&list).to_string();
    assert!(list.contains("name=victim"), "{list}");
    let id_line = list.lines().find(|l| l.contains("name=victim")).unwrap();
    let id = id_line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("id="))
        .unwrap()
        .trim_start_matches(|c: char| !c.is_ascii_digit());
    let got = a
        .send(&cmd(&[b"CLIENT", b"KILL", b"ID", id.as_bytes()]))
        .await;
    assert_eq!(got, b":1\r\n");
    assert!(b.send_until_close(b"").await.is_empty());
    node.shutdown().await;
}

#[tokio::test]
async fn shutdown_command_stops_the_node() {
    let node = start_node(&[]).await;
    let mut a = Raw::connect(node.resp_addr()).await;
    let got = a.send_until_close(&cmd(&[b"SHUTDOWN", b"NOSAVE"])).await;
    assert!(got.is_empty());
    tokio::time::timeout(Duration::from_secs(5), node.stopped())
        .await
        .expect("node stops");
    node.shutdown().await;
}

#[tokio::test]
async fn monitor_sees_other_clients_commands() {
    let node = start_node(&[]).await;
    let mut mon = Raw::connect(node.resp_addr()).await;
    assert_eq!(mon.send(&cmd(&[b"MONITOR"])).await, b"+OK\r\n");
    let mut other = Raw::connect(node.resp_addr()).await;
    other.send(&cmd(&[b"SET", b"watched", b"x y"])).await;
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    use tokio::io::AsyncReadExt;
    while !String::from_utf8_lossy(&got).contains("\"SET\" \"watched\" \"x y\"") {
        let n = tokio::time::timeout_at(deadline, mon.stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    node.shutdown().await;
}

/// RESET ends MONITOR and the connection goes on serving commands (it hung, spinning on the
/// ended feed).
#[tokio::test]
async fn reset_ends_monitor_and_the_connection_goes_on() {
    let node = start_node(&[]).await;
    let mut mon = common::resp::Conn::open(node.resp_addr()).await;
    assert_eq!(mon.cmd(&["MONITOR"]).await, "+OK\r\n");
    assert_eq!(mon.cmd(&["RESET"]).await, "+RESET\r\n");
    assert_eq!(mon.cmd(&["PING"]).await, "+PONG\r\n");
    let mut other = common::resp::Conn::open(node.resp_addr()).await;
    assert_eq!(other.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    assert_eq!(
        mon.cmd(&["GET", "k"]).await,
        "$1\r\nv\r\n",
        "no feed line before it"
    );
    node.shutdown().await;
}

/// What MONITOR shows, with each line's timestamp dropped and a client address written
/// `addr` (a script's commands show `lua` there), up to the monitored `ECHO done`.
async fn monitor_transcript(addr: std::net::SocketAddr, commands: &[&[&str]]) -> Vec<String> {
    use common::resp::Conn;
    let mut mon = Conn::open(addr).await;
    assert_eq!(mon.cmd(&["MONITOR"]).await, "+OK\r\n");
    let mut c = Conn::open(addr).await;
    for args in commands {
        c.cmd(args).await;
    }
    c.cmd(&["ECHO", "done"]).await;
    let mut lines = Vec::new();
    loop {
        let line = String::from_utf8(mon.reply().await).unwrap();
        // "+<time> [<db> <who>] <args>"
        let (prefix, shown) = line.split_once("] ").unwrap_or(("", line.as_str()));
        let who = prefix.rsplit(' ').next().unwrap_or("");
        let who = if who.contains(':') { "addr" } else { who };
        let shown = shown.trim_end().to_string();
        if shown == "\"ECHO\" \"done\"" {
            return lines;
        }
        lines.push(format!("[{who}] {shown}"));
    }
}

/// MONITOR shows a script or function call before the commands it runs (tagged `lua`), a
/// transaction's commands, and no administrative command; as redis-server does.
#[tokio::test]
async fn monitor_shows_scripts_before_their_commands_and_hides_admin_commands() {
    let script: &[&[&str]] = &[
        &["SET", "a", "1"],
        &[
            "EVAL",
            "redis.call('set',KEYS[1],ARGV[1])",
            "1",
            "foo",
            "bar",
        ],
        &["EVAL_RO", "return redis.call('get',KEYS[1])", "1", "foo"],
        &[
            "FUNCTION",
            "LOAD",
            "REPLACE",
            "#!lua name=test\nredis.register_function('test', function() return redis.call('set', 'foo', 'bar') end)",
        ],
        &["FCALL", "test", "0"],
        &["CONFIG", "SET", "maxmemory-samples", "5"],
        &["MULTI"],
        &["INCR", "n"],
        &["EXEC"],
        &["GET", "a"],
    ];
    let node = start_node(&[]).await;
    let ours = monitor_transcript(node.resp_addr(), script).await;
    node.shutdown().await;
    let redis = common::redis_server::RedisServer::start().await;
    let theirs = monitor_transcript(redis.addr(), script).await;
    assert!(
        theirs.iter().any(|l| l.starts_with("[addr] \"EVAL\""))
            && theirs.iter().any(|l| l.starts_with("[lua] \"set\"")),
        "{theirs:?}"
    );
    assert_eq!(ours, theirs);
}

/// A CLIENT KILL that kills its own caller answers first, then closes (Redis's
/// CLOSE_AFTER_REPLY); the others are closed at once.
#[tokio::test]
async fn client_kill_of_oneself_replies_then_closes() {
    let node = start_node(&[]).await;
    let mut me = Raw::connect(node.resp_addr()).await;
    let mut other = Raw::connect(node.resp_addr()).await;
    assert_eq!(other.send(b"PING\r\n").await, b"+PONG\r\n");
    let got = me
        .send_until_close(&cmd(&[b"CLIENT", b"KILL", b"SKIPME", b"no"]))
        .await;
    assert_eq!(got, b":2\r\n");
    assert!(other.send_until_close(b"").await.is_empty());
    node.shutdown().await;
}

fn redis_cli() -> Command {
    Command::new("redis-cli")
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_cli_works_unchanged() {
    let node = start_node(&[]).await;
    let port = node.resp_addr().port().to_string();
    let out = redis_cli()
        .args(["-p", &port, "SET", "mykey", "hello world"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    let out = redis_cli()
        .args(["-p", &port, "GET", "mykey"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world\n");
    // Interactive mode reads commands from stdin when it is not a terminal.
    let mut child = redis_cli()
        .args(["-p", &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"INCR n\nINCR n\nTTL mykey\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n-1\n");
    // Mass insertion with --pipe.
    let mut wire = Vec::new();
    for i in 0..10_000 {
        wire.extend(cmd(&[b"SET", format!("pipe:{i}").as_bytes(), b"v"]));
    }
    let mut child = redis_cli()
        .args(["-p", &port, "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&wire).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 10000"), "{text}");
    let out = redis_cli().args(["-p", &port, "DBSIZE"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10002\n");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_benchmark_runs_clean() {
    let node = start_node(&[]).await;
    let port = node.resp_addr().port().to_string();
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port,
            "-n",
            "5000",
            "-c",
            "10",
            "-P",
            "4",
            "-t",
            "set,get,incr,mset",
            "-q",
            "--csv",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    for t in ["SET", "GET", "INCR", "MSET"] {
        assert!(text.contains(&format!("\"{t}")), "missing {t}: {text}");
    }
    assert!(!err.contains("WARNING"), "{err}");
    node.shutdown().await;
}

/// A node process on a free loopback port with `flags`, and a connection to it. (Eviction is
/// judged by the allocator's count of the node's own memory: a real process, not the test's.)
async fn node_process(
    dir: &std::path::Path,
    flags: &[&str],
) -> (
    common::process::NodeProcess,
    redis::aio::MultiplexedConnection,
    u16,
) {
    use common::process::{NodeProcess, free_port};
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let mut args: Vec<String> = ["--bind", "127.0.0.1", "--port", &port.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--http-port", "0", "--dir"].map(String::from));
    args.push(dir.to_str().unwrap().to_string());
    args.extend(flags.iter().map(|s| s.to_string()));
    let node = NodeProcess::spawn(&[], &args, &dir.join("node.log"));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut conn = None;
    // No response timeout: a loaded machine may take longer than the crate's 500 ms default
    // over a pipeline that evicts as it goes.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    for _ in 0..100 {
        if let Ok(c) = common::client(addr)
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (node, conn.expect("the node answers"), port)
}

async fn info_u64(c: &mut redis::aio::MultiplexedConnection, section: &str, field: &str) -> u64 {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(c)
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from {text}"))
}

/// SETs `{prefix}:{i}` for i in `range`, 1 KB each, pipelined in chunks; the texts of the
/// chunks that had errors.
async fn fill(
    c: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> Vec<String> {
    let value = vec![b'v'; 1024];
    let mut errors = Vec::new();
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(100) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET").arg(format!("{prefix}:{i}")).arg(&value);
        }
        // The crate turns a reply batch with errors into one error naming them.
        let replies: redis::RedisResult<Vec<redis::Value>> = p.query_async(c).await;
        if let Err(e) = replies {
            errors.push(e.to_string());
        }
    }
    errors
}

/// Under maxmemory with an eviction policy, writes keep succeeding and keys are evicted to
/// stay near the limit: allkeys-lru takes the idle keys first; volatile-ttl only keys with a
/// TTL, and writes are refused once none is left. Evictions are counted and published.
#[tokio::test]
async fn maxmemory_evicts_keys_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, mut c, _) = node_process(dir.path(), &["--maxmemory-policy", "allkeys-lru"]).await;
    let base = info_u64(&mut c, "memory", "used_memory").await;
    let limit = base + 8 * 1024 * 1024;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit)
        .query_async(&mut c)
        .await
        .unwrap();
    // Cold keys, written then left idle for more than the LRU clock's one-second resolution.
    assert_eq!(fill(&mut c, "cold", 0..6_000).await, Vec::<String>::new());
    let cold_written: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    // Newer keys push memory past the limit: every write still succeeds.
    assert_eq!(fill(&mut c, "new", 0..6_000).await, Vec::<String>::new());
    let evicted = info_u64(&mut c, "stats", "evicted_keys").await;
    let used = info_u64(&mut c, "memory", "used_memory").await;
    assert!(evicted > 1_000, "{evicted} keys evicted");
    assert!(
        used <= limit + limit / 10,
        "used {used} with maxmemory {limit}"
    );
    let cold_left = {
        let mut n = 0u64;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("cold:*")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .unwrap();
            n += keys.len() as u64;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        n
    };
    let cold_evicted = cold_written.min(6_000) - cold_left;
    eprintln!(
        "allkeys-lru: {evicted} evicted, {cold_evicted} of them idle; used {used} of {limit}"
    );
    // Sampling is approximate (5 keys per eviction), as Redis's: most victims are idle keys.
    assert!(
        cold_evicted * 10 >= evicted * 8,
        "{cold_evicted} of {evicted} evicted keys were idle ones"
    );

    // volatile-ttl: only keys with a TTL go; with none left, writes get -OOM.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("volatile-ttl")
        .query_async(&mut c)
        .await
        .unwrap();
    let value = vec![b'v'; 1024];
    for i in 0..500 {
        let _: () = redis::cmd("SET")
            .arg(format!("ttl:{i}"))
            .arg(&value)
            .arg("EX")
            .arg(1000 + i)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let before = info_u64(&mut c, "stats", "evicted_keys").await;
    let errors = fill(&mut c, "plain", 0..12_000).await;
    let ttl_left: u64 = info_u64(&mut c, "stats", "evicted_keys").await - before;
    assert_eq!(
        ttl_left, 500,
        "every key with a TTL was evicted, and only those"
    );
    assert!(
        !errors.is_empty(),
        "writes past the limit with nothing to evict"
    );
    assert!(errors[0].contains("OOM"), "{}", errors[0]);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// `io-threads`: connections are spread over that many threads, each its own event loop, and
/// clients on different threads still wake, message and watch each other.
#[tokio::test]
async fn clients_on_different_connection_threads_serve_each_other() {
    use common::cluster_node::ClusterNode;
    use common::resp::Conn;
    let dir = tempfile::tempdir().unwrap();
    let node = ClusterNode::start(dir.path(), &["--io-threads", "3"]);
    let io_threads = std::fs::read_dir(format!("/proc/{}/task", node.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with("reredis-io-"))
        .count();
    assert_eq!(io_threads, 3, "one thread per io-threads");
    let addr = format!("127.0.0.1:{}", node.port);
    // Connections are handed out in turn, so neighbours are on different threads.
    let mut conns = Vec::new();
    for _ in 0..6 {
        conns.push(Conn::open(&addr).await);
    }
    assert_eq!(
        conns[0].cmd(&["CONFIG", "GET", "io-threads"]).await,
        "*2\r\n$10\r\nio-threads\r\n$1\r\n3\r\n"
    );
    assert!(
        conns[0]
            .cmd(&["INFO", "server"])
            .await
            .contains("io_threads_active:1\r\n")
    );
    // Each client blocks on its own list; its neighbour pushes to it.
    for (i, c) in conns.iter_mut().enumerate() {
        let key = format!("list{{t}}{i}");
        c.send(&[b"BLPOP", key.as_bytes(), b"10"]).await;
    }
    let mut pusher = Conn::open(&addr).await;
    assert!(
        wait_for(Duration::from_secs(5), async || pusher
            .cmd(&["INFO", "clients"])
            .await
            .contains("blocked_clients:6\r\n"))
        .await
    );
    for i in 0..6 {
        let key = format!("list{{t}}{i}");
        assert_eq!(
            pusher.cmd(&["RPUSH", &key, &format!("v{i}")]).await,
            ":1\r\n"
        );
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let key = format!("list{{t}}{i}");
        let want = format!("*2\r\n${}\r\n{key}\r\n$2\r\nv{i}\r\n", key.len());
        assert_eq!(String::from_utf8(c.reply().await).unwrap(), want);
    }
    // Pub/Sub: one subscriber per thread, a publisher on yet another.
    for c in conns.iter_mut().take(3) {
        assert_eq!(
            c.cmd(&["SUBSCRIBE", "news"]).await,
            "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
        );
    }
    assert_eq!(conns[3].cmd(&["PUBLISH", "news", "hi"]).await, ":3\r\n");
    for c in conns.iter_mut().take(3) {
        assert_eq!(
            String::from_utf8(c.reply().await).unwrap(),
            "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
    }
    // WATCH on one thread is broken by a write from another.
    assert_eq!(conns[4].cmd(&["WATCH", "w"]).await, "+OK\r\n");
    assert_eq!(conns[5].cmd(&["SET", "w", "1"]).await, "+OK\r\n");
    assert_eq!(conns[4].cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(conns[4].cmd(&["GET", "w"]).await, "+QUEUED\r\n");
    assert_eq!(conns[4].cmd(&["EXEC"]).await, "*-1\r\n");
}

/// `tcp-keepalive`: the node's end of a client connection probes an idle peer after that many
/// seconds, as Redis's; 0 leaves it without keepalive. Read from the kernel's socket table.
#[tokio::test]
async fn tcp_keepalive_is_set_on_client_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = start_node(&[("tcp-keepalive", "7")]).await;
    let addr = node.resp_addr();
    // The timer on the node's end of the connection from `client_port`: its kind (2 is
    // keepalive) and the clock ticks (1/100 s) left.
    let timer = |client_port: u16| -> Option<(u32, u64)> {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
        table.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let ours = port(f[1]) == Some(addr.port()) && port(f[2]) == Some(client_port);
            let (kind, when) = f[5].split_once(':')?;
            (ours && f[3] == "01").then(|| {
                (
                    u32::from_str_radix(kind, 16).unwrap(),
                    u64::from_str_radix(when, 16).unwrap(),
                )
            })
        })
    };
    let connect = async || {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"PING\r\n").await.unwrap();
        let mut buf = [0u8; 7];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"+PONG\r\n");
        c
    };
    // Once the reply is acknowledged, an idle connection's only timer is the keepalive one.
    let settled = async |port: u16| {
        let mut last = None;
        wait_for(Duration::from_secs(3), async || {
            last = timer(port);
            last.is_some_and(|(kind, _)| kind != 1)
        })
        .await;
        last.expect("the node's end of the connection")
    };
    let c = connect().await;
    let (kind, ticks) = settled(c.local_addr().unwrap().port()).await;
    assert_eq!(kind, 2, "a keepalive timer");
    assert!(
        ticks <= 700,
        "first probe within 7 s, not Linux's 2 hours: {ticks} ticks"
    );

    let mut admin = common::client(addr)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "tcp-keepalive", "0"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let c = connect().await;
    let (kind, _) = settled(c.local_addr().unwrap().port()).await;
    assert_eq!(kind, 0, "no keepalive with tcp-keepalive 0");
}

/// Lazy free, against our node and redis-server alike: UNLINK of a large value, FLUSHALL ASYNC,
/// and `lazyfree-lazy-user-del` / `-flush`, counted by INFO's `lazyfreed_objects`; a small value
/// and a SYNC flush are freed at once. The keys are gone as soon as the command answers.
#[tokio::test]
async fn large_values_and_async_flushes_are_freed_in_the_background_as_redis() {
    against_both(lazy_free_session).await;
}

/// Runs `session` against a fresh node of ours, then against a fresh redis-server.
async fn against_both(session: impl AsyncFn(std::net::SocketAddr)) {
    let node = start_node(&[]).await;
    eprintln!("against reredis");
    session(node.resp_addr()).await;
    let redis = common::redis_server::RedisServer::start().await;
    eprintln!("against redis-server");
    session(redis.addr()).await;
}

async fn lazy_free_session(addr: std::net::SocketAddr) {
    use redis::aio::MultiplexedConnection as Conn;
    let mut c = common::client(addr)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Runs a command; its reply as a redis::Value.
    let run = async |c: &mut Conn, args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        cmd.arg(&args[1..]);
        cmd.query_async(c).await.unwrap()
    };
    let freed = async |c: &mut Conn| -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(c)
            .await
            .unwrap();
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .expect("field in INFO memory")
                .trim()
                .parse()
                .unwrap()
        };
        // Both are in INFO memory; an object counts as freed once the background is done.
        field("lazyfree_pending_objects");
        field("lazyfreed_objects")
    };
    let settled = async |c: &mut Conn, want: u64| {
        let mut last = 0;
        let ok = wait_for(Duration::from_secs(10), async || {
            last = freed(c).await;
            last == want
        })
        .await;
        assert!(ok, "lazyfreed_objects {last}, expected {want}");
    };
    let big: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let sadd_big: Vec<&str> = ["SADD", "big"]
        .into_iter()
        .chain(big.iter().map(String::as_str))
        .collect();
    run(&mut c, &sadd_big).await;
    run(&mut c, &["SADD", "small", "1", "2", "3"]).await;
    let before = freed(&mut c).await;
    let n = run(&mut c, &["UNLINK", "small", "big", "none"]).await;
    assert_eq!(n, redis::Value::Int(2));
    settled(&mut c, before + 1).await;

    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();
    run(&mut c, &["FLUSHALL", "ASYNC"]).await;
    let size = run(&mut c, &["DBSIZE"]).await;
    assert_eq!(
        size,
        redis::Value::Int(0),
        "gone when FLUSHALL ASYNC answers"
    );
    settled(&mut c, before + 1 + 5000).await;

    // Plain DEL and FLUSHDB free at once, until the settings say otherwise.
    run(&mut c, &sadd_big).await;
    run(&mut c, &["DEL", "big"]).await;
    run(&mut c, &["SET", "k", "v"]).await;
    run(&mut c, &["FLUSHDB"]).await;
    run(&mut c, &["FLUSHALL", "SYNC"]).await;
    settled(&mut c, before + 1 + 5000).await;
    run(&mut c, &["CONFIG", "SET", "lazyfree-lazy-user-del", "yes"]).await;
    run(
        &mut c,
        &["CONFIG", "SET", "lazyfree-lazy-user-flush", "yes"],
    )
    .await;
    run(&mut c, &sadd_big).await;
    run(&mut c, &["DEL", "big"]).await;
    settled(&mut c, before + 2 + 5000).await;
    run(&mut c, &["MSET", "a", "1", "b", "2"]).await;
    run(&mut c, &["FLUSHDB"]).await;
    settled(&mut c, before + 4 + 5000).await;

    // What the server deletes by itself: an expired key, a value SET replaces, a RENAME's
    // destination; each freed at once, then in the background once its setting is on.
    let big_then = async |c: &mut Conn, key: &str| {
        let args: Vec<&str> = ["SADD", key]
            .into_iter()
            .chain(big.iter().map(String::as_str))
            .collect();
        run(c, &args).await;
    };
    let expire_now = async |c: &mut Conn, key: &str| {
        run(c, &["PEXPIRE", key, "1"]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The read finds it expired and deletes it.
        assert_eq!(run(c, &["EXISTS", key]).await, redis::Value::Int(0));
    };
    let mut want = before + 4 + 5000;
    for lazy in [false, true] {
        let setting = if lazy { "yes" } else { "no" };
        for name in ["lazyfree-lazy-expire", "lazyfree-lazy-server-del"] {
            run(&mut c, &["CONFIG", "SET", name, setting]).await;
        }
        big_then(&mut c, "e").await;
        expire_now(&mut c, "e").await;
        big_then(&mut c, "s").await;
        run(&mut c, &["SET", "s", "replaced"]).await;
        big_then(&mut c, "r").await;
        run(&mut c, &["SET", "src", "v"]).await;
        run(&mut c, &["RENAME", "src", "r"]).await;
        if lazy {
            want += 3;
        }
        settled(&mut c, want).await;
        run(&mut c, &["DEL", "s", "r"]).await;
    }
    // CONFIG RESETSTAT counts from zero again.
    run(&mut c, &["CONFIG", "RESETSTAT"]).await;
    settled(&mut c, 0).await;
}

/// `maxmemory-clients`: when the clients' buffers together pass the limit, the client using
/// the most is disconnected (INFO's `evicted_clients` counts it); `CLIENT NO-EVICT on` exempts
/// a client, and then others go instead: the same session against our node and redis-server.
#[tokio::test]
async fn clients_over_maxmemory_clients_are_evicted_largest_first() {
    against_both(client_eviction_session).await;
}

async fn client_eviction_session(addr: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let ask = async |c: &mut TcpStream, req: &[&[u8]]| -> Vec<u8> {
        c.write_all(&cmd(req)).await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("a reply")
            .unwrap();
        buf.truncate(n);
        buf
    };
    // A SET whose 3 MB value is still on its way: the query buffer holds it.
    let big_set_head = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$3000000\r\n";
    let half = vec![b'a'; 1_500_000];
    let closed = async |c: &mut TcpStream| -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    };

    let mut small = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        ask(
            &mut small,
            &[b"CONFIG", b"SET", b"maxmemory-clients", b"2mb"]
        )
        .await,
        b"+OK\r\n"
    );
    let mut big = TcpStream::connect(addr).await.unwrap();
    // Redis may cut it off while the value is still being written.
    let _ = big.write_all(big_set_head).await;
    let _ = big.write_all(&half).await;
    assert!(closed(&mut big).await, "the largest client is disconnected");
    assert_eq!(ask(&mut small, &[b"PING"]).await, b"+PONG\r\n");
    let info = String::from_utf8(ask(&mut small, &[b"INFO", b"stats"]).await).unwrap();
    assert!(info.contains("evicted_clients:1\r\n"), "{info}");

    // Exempt, the large client stays and finishes its command; the others go.
    let mut exempt = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        ask(&mut exempt, &[b"CLIENT", b"NO-EVICT", b"on"]).await,
        b"+OK\r\n"
    );
    exempt.write_all(big_set_head).await.unwrap();
    exempt.write_all(&half).await.unwrap();
    assert!(closed(&mut small).await, "the small client goes instead");
    exempt.write_all(&half).await.unwrap();
    exempt.write_all(b"\r\n").await.unwrap();
    let mut reply = [0u8; 5];
    exempt.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"+OK\r\n");
    let info = String::from_utf8(ask(&mut exempt, &[b"INFO", b"stats"]).await).unwrap();
    assert!(info.contains("evicted_clients:2\r\n"), "{info}");
    assert_eq!(
        ask(&mut exempt, &[b"STRLEN", b"big"]).await,
        b":3000000\r\n"
    );
}

/// A client's buffers show in CLIENT LIST (`qbuf`, `tot-mem`) and in INFO
/// (`client_recent_max_input_buffer`, `mem_clients_normal`) while a large command arrives.
#[tokio::test]
async fn client_buffers_show_in_client_list_and_info() {
    use tokio::io::AsyncWriteExt;
    let node = start_node(&[]).await;
    let mut big = tokio::net::TcpStream::connect(node.resp_addr())
        .await
        .unwrap();
    big.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n")
        .await
        .unwrap();
    big.write_all(&vec![b'a'; 1_500_000]).await.unwrap();
    let mut c = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let field = |text: &str, name: &str| -> usize {
        text.split([' ', '\r', '\n'])
            .find_map(|f| f.strip_prefix(name)?.strip_prefix(['=', ':']))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .parse()
            .unwrap()
    };
    let mut list = String::new();
    assert!(
        wait_for(Duration::from_secs(10), async || {
            list = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut c)
                .await
                .unwrap();
            list.lines().any(|l| field(l, "qbuf") >= 1_500_000)
        })
        .await,
        "{list}"
    );
    let line = list
        .lines()
        .find(|l| field(l, "qbuf") >= 1_500_000)
        .unwrap();
    assert!(field(line, "tot-mem") >= 1_500_000, "{line}");
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        field(&info, "client_recent_max_input_buffer") >= 1_500_000,
        "{info}"
    );
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(field(&info, "mem_clients_normal") >= 1_500_000, "{info}");
}

/// INFO latencystats: a line of latency percentiles per command that ran, named by
/// `latency-tracking-info-percentiles`, none with `latency-tracking no`; the same session
/// against our node and redis-server (values differ: ours are estimated within power-of-two
/// buckets, so only their names and order are compared).
#[tokio::test]
async fn info_latencystats_lists_percentiles_per_command_as_redis() {
    against_both(latencystats_session).await;
}

async fn latencystats_session(addr: std::net::SocketAddr) {
    let mut c = common::client(addr)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let run = async |c: &mut redis::aio::MultiplexedConnection, args: &[&str]| -> String {
        let mut cmd = redis::cmd(args[0]);
        cmd.arg(&args[1..]);
        match cmd.query_async::<redis::Value>(c).await {
            Ok(redis::Value::Okay) => "OK".into(),
            Ok(v) => format!("{v:?}"),
            Err(e) => e.to_string(),
        }
    };
    // The percentiles each command's line names, and whether the values rise with them.
    let lines = async |c: &mut redis::aio::MultiplexedConnection| -> Vec<(String, Vec<String>)> {
        let info: String = redis::cmd("INFO")
            .arg("latencystats")
            .query_async(c)
            .await
            .unwrap();
        info.lines()
            .filter_map(|l| l.strip_prefix("latency_percentiles_usec_"))
            .filter(|l| l.starts_with("set:") || l.starts_with("get:"))
            .map(|l| {
                let (cmd, rest) = l.split_once(':').unwrap();
                let pairs: Vec<(String, f64)> = rest
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (name, v) = p.split_once('=').unwrap();
                        (name.to_string(), v.trim().parse().unwrap())
                    })
                    .collect();
                assert!(
                    pairs.windows(2).all(|w| w[0].1 <= w[1].1) && pairs.iter().all(|p| p.1 > 0.0),
                    "{l}"
                );
                (cmd.to_string(), pairs.into_iter().map(|p| p.0).collect())
            })
            .collect()
    };
    run(&mut c, &["CONFIG", "RESETSTAT"]).await;
    for i in 0..200 {
        run(&mut c, &["SET", &format!("k{i}"), "v"]).await;
        run(&mut c, &["GET", &format!("k{i}")]).await;
    }
    let mut got = lines(&mut c).await;
    got.sort();
    let names = |ps: &[&str]| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            ("get".to_string(), names(&["p50", "p99", "p99.9"])),
            ("set".to_string(), names(&["p50", "p99", "p99.9"])),
        ]
    );
    let setting = "latency-tracking-info-percentiles";
    assert_eq!(
        run(&mut c, &["CONFIG", "SET", setting, "0 50.5 1e2"]).await,
        "OK"
    );
    assert_eq!(
        run(&mut c, &["CONFIG", "GET", setting]).await,
        format!(
            "{:?}",
            redis::Value::Array(vec![
                redis::Value::BulkString(setting.as_bytes().to_vec()),
                redis::Value::BulkString(b"0 50.5 100".to_vec()),
            ])
        )
    );
    let mut got = lines(&mut c).await;
    got.sort();
    assert_eq!(got[0].1, names(&["p0", "p50.5", "p100"]));
    for bad in ["101", "50 x"] {
        let e = run(&mut c, &["CONFIG", "SET", setting, bad]).await;
        assert!(e.contains(setting), "{e}");
    }
    run(&mut c, &["CONFIG", "SET", setting, "50 99 99.9"]).await;
    run(&mut c, &["CONFIG", "SET", "latency-tracking", "no"]).await;
    assert!(lines(&mut c).await.is_empty());
    run(&mut c, &["CONFIG", "SET", "latency-tracking", "yes"]).await;
}

/// DEBUG is refused unless `enable-debug-command` allows it, with Redis's reason; `local`
/// allows clients on loopback.
#[tokio::test]
async fn debug_needs_enable_debug_command() {
    let off = start_node(&[]).await;
    let mut c = common::client(off.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let e = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg(0)
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("DEBUG command not allowed") && e.to_string().contains("\"local\""),
        "{e}"
    );
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("enable-debug-command")
        .arg("yes")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("can't set immutable config"), "{e}");
    off.shutdown().await;

    let local = start_node(&[("enable-debug-command", "local")]).await;
    let mut c = common::client(local.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ok: String = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    local.shutdown().await;
}

/// One command, its reply as `T`.
async fn q<T: redis::FromRedisValue>(
    c: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c).await.unwrap()
}

/// DEBUG RELOAD writes the snapshot, empties the keyspace and loads the file back: keys, TTLs,
/// encodings and the dataset digest are as before; NOSAVE loads the file as it is, NOFLUSH
/// refuses a key already there unless MERGE.
#[tokio::test]
async fn debug_reload_round_trips_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&[
        ("enable-debug-command", "yes"),
        ("dir", dir.path().to_str().unwrap()),
    ])
    .await;
    // No response timeout: a reload (a snapshot written and read back) takes its time on a
    // loaded host.
    let mut c = common::connect_waiting(node.resp_addr()).await;
    let _: () = q(&mut c, &["DEBUG", "POPULATE", "1000"]).await;
    let _: () = q(&mut c, &["SET", "ttl", "v", "EX", "1000"]).await;
    let _: () = q(&mut c, &["RPUSH", "list", "a", "b", "c"]).await;
    let _: () = q(&mut c, &["ZADD", "zset", "1.5", "a", "2", "b"]).await;
    let _: () = q(&mut c, &["SADD", "ints", "1", "2", "3"]).await;
    let fields: Vec<String> = (0..600)
        .flat_map(|i| [format!("f{i}"), "v".into()])
        .collect();
    let mut hset = vec!["HSET", "bighash"];
    hset.extend(fields.iter().map(String::as_str));
    let _: () = q(&mut c, &hset).await;
    let before: String = q(&mut c, &["DEBUG", "DIGEST"]).await;
    assert_ne!(before, "0".repeat(40));

    let ok: String = q(&mut c, &["DEBUG", "RELOAD"]).await;
    assert_eq!(ok, "OK");
    assert!(dir.path().join("dump.rdb").exists());
    assert_eq!(q::<String>(&mut c, &["DEBUG", "DIGEST"]).await, before);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await, 1005);
    let ttl: i64 = q(&mut c, &["TTL", "ttl"]).await;
    assert!((990..=1000).contains(&ttl), "{ttl}");
    for (key, enc) in [
        ("ints", "intset"),
        ("zset", "listpack"),
        ("bighash", "hashtable"),
        ("list", "quicklist"),
    ] {
        assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", key]).await, enc);
    }

    // NOSAVE: what the file holds replaces what is in memory.
    let _: () = q(&mut c, &["SET", "after", "1"]).await;
    let _: () = q(&mut c, &["DEBUG", "RELOAD", "NOSAVE"]).await;
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "after"]).await, 0);
    assert_eq!(q::<String>(&mut c, &["DEBUG", "DIGEST"]).await, before);

    // NOFLUSH without MERGE: a key both in memory and in the file is an error.
    let e = redis::cmd("DEBUG")
        .arg("RELOAD")
        .arg("NOSAVE")
        .arg("NOFLUSH")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("duplicated key"), "{e}");
    let _: () = q(&mut c, &["SET", "ttl", "changed"]).await;
    let _: () = q(&mut c, &["SET", "extra", "1"]).await;
    let _: () = q(&mut c, &["DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"]).await;
    assert_eq!(q::<String>(&mut c, &["GET", "ttl"]).await, "v");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "extra"]).await, 1);

    // Function libraries reload with the keys, as in Redis: NOFLUSH refuses a library already
    // here unless MERGE; a flush empties them first.
    let _: () = q(&mut c, &["FLUSHALL"]).await;
    let lib = |name: &str| {
        format!(
            "#!lua name={name}\nredis.register_function('{name}', function() return 'hello' end)"
        )
    };
    let _: String = q(&mut c, &["FUNCTION", "LOAD", &lib("test1")]).await;
    let _: () = q(&mut c, &["DEBUG", "RELOAD"]).await;
    let e = redis::cmd("DEBUG")
        .arg("RELOAD")
        .arg("NOFLUSH")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("Error trying to load the RDB"),
        "{e}"
    );
    let _: String = q(&mut c, &["FUNCTION", "LOAD", &lib("test2")]).await;
    let _: () = q(&mut c, &["DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"]).await;
    assert_eq!(q::<String>(&mut c, &["FCALL", "test1", "0"]).await, "hello");
    assert_eq!(q::<String>(&mut c, &["FCALL", "test2", "0"]).await, "hello");
    // NOSAVE with a flush: the file's libraries replace what is here.
    let _: () = q(&mut c, &["DEBUG", "RELOAD", "NOSAVE"]).await;
    assert_eq!(q::<String>(&mut c, &["FCALL", "test1", "0"]).await, "hello");
    let e = redis::cmd("FCALL")
        .arg("test2")
        .arg(0)
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Function not found"), "{e}");
    node.shutdown().await;
}

/// DEBUG LOADAOF writes out the log, empties the keyspace and replays the log: the dataset
/// (digest, TTLs, KEEPTTL and PERSIST as they were applied) comes back, from a log that was
/// rewritten (a base of entries, then commands) too. With the log off, the file there is
/// loaded; with none, it is refused.
#[tokio::test]
async fn debug_loadaof_replays_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&[
        ("enable-debug-command", "yes"),
        ("dir", dir.path().to_str().unwrap()),
        ("appendonly", "yes"),
    ])
    .await;
    let mut c = common::connect_waiting(node.resp_addr()).await;
    let _: () = q(&mut c, &["SET", "foo", "bar", "EX", "100"]).await;
    let _: () = q(&mut c, &["SET", "foo", "bar2", "KEEPTTL"]).await;
    let _: () = q(&mut c, &["SET", "gone", "x", "EX", "100"]).await;
    let _: String = q(&mut c, &["GETEX", "gone", "PERSIST"]).await;
    let _: () = q(&mut c, &["RPUSH", "list", "a", "b", "c"]).await;
    let _: () = q(&mut c, &["ZADD", "zset", "1.5", "a", "2", "b"]).await;
    let digest: String = q(&mut c, &["DEBUG", "DIGEST"]).await;
    assert_ne!(digest, "0".repeat(40));
    assert_eq!(q::<String>(&mut c, &["DEBUG", "LOADAOF"]).await, "OK");
    assert_eq!(q::<String>(&mut c, &["DEBUG", "DIGEST"]).await, digest);
    assert_eq!(q::<String>(&mut c, &["GET", "foo"]).await, "bar2");
    let ttl: i64 = q(&mut c, &["TTL", "foo"]).await;
    assert!((90..=100).contains(&ttl), "{ttl}");
    assert_eq!(q::<i64>(&mut c, &["TTL", "gone"]).await, -1);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await, 4);
    // Function libraries are in the log too.
    let lib = "#!lua name=lib\nredis.register_function('f', function() return 'hi' end)";
    let _: String = q(&mut c, &["FUNCTION", "LOAD", lib]).await;
    assert_eq!(q::<String>(&mut c, &["DEBUG", "LOADAOF"]).await, "OK");
    assert_eq!(q::<String>(&mut c, &["FCALL", "f", "0"]).await, "hi");

    // A rewritten log: its base, then what came after.
    let _: String = q(&mut c, &["BGREWRITEAOF"]).await;
    assert!(
        common::wait_for(std::time::Duration::from_secs(30), async || {
            let info: String = q(&mut c, &["INFO", "persistence"]).await;
            info.contains("aof_rewrite_in_progress:0")
                && info.contains("aof_rewrite_scheduled:0")
                && info.contains("aof_rewrites:1")
        })
        .await
    );
    let _: () = q(&mut c, &["LPUSH", "list", "z"]).await;
    let _: () = q(&mut c, &["DEL", "zset"]).await;
    let digest: String = q(&mut c, &["DEBUG", "DIGEST"]).await;
    assert_eq!(q::<String>(&mut c, &["DEBUG", "LOADAOF"]).await, "OK");
    assert_eq!(q::<String>(&mut c, &["DEBUG", "DIGEST"]).await, digest);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "list", "0", "-1"]).await,
        ["z", "a", "b", "c"]
    );

    // With the log off, the file left (or one BGREWRITEAOF writes) is what loads, as in
    // Redis: a write made since is not in it.
    let _: () = q(&mut c, &["CONFIG", "SET", "appendonly", "no"]).await;
    let _: () = q(&mut c, &["SET", "after", "1"]).await;
    assert_eq!(q::<String>(&mut c, &["DEBUG", "LOADAOF"]).await, "OK");
    assert_eq!(q::<String>(&mut c, &["DEBUG", "DIGEST"]).await, digest);
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "aof") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let e = redis::cmd("DEBUG")
        .arg("LOADAOF")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no append only file"), "{e}");
    node.shutdown().await;
}

/// DEBUG SLEEP stops the node as it stops Redis: another client's command waits for it.
/// DEBUG SET-ACTIVE-EXPIRE 0 leaves expired keys nobody reads in place until it is 1 again.
/// (Several runtime threads: the sleep holds one, the waiting SET another.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debug_sleep_and_set_active_expire() {
    let node = start_node(&[("enable-debug-command", "yes"), ("hz", "50")]).await;
    let addr = node.resp_addr();
    let mut a = common::connect_waiting(addr).await;
    // Both connected first: a connection made during the sleep waits for it too.
    let mut b = common::connect_waiting(addr).await;
    let t0 = std::time::Instant::now();
    let sleeper = tokio::spawn(async move {
        let r = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1")
            .query_async::<String>(&mut a)
            .await;
        (r, t0.elapsed())
    });
    // Well after the sleep began (nothing tells its start from outside: the node is stopped).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _: () = b.set("k", "v").await.unwrap();
    let set_done = t0.elapsed();
    let (r, slept) = sleeper.await.unwrap();
    assert_eq!(r.unwrap(), "OK");
    assert!(slept >= Duration::from_secs(1), "{slept:?}");
    assert!(
        set_done + Duration::from_millis(100) >= slept,
        "SET answered at {set_done:?}, before the DEBUG SLEEP that began earlier ended ({slept:?})"
    );

    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query_async(&mut b)
        .await
        .unwrap();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("e{i}"))
            .arg("v")
            .arg("PX")
            .arg(20)
            .query_async(&mut b)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        node.node.store.db_sizes()[0].0,
        101,
        "keys expired actively"
    );
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(1)
        .query_async(&mut b)
        .await
        .unwrap();
    let n = node.node.clone();
    assert!(
        wait_for(Duration::from_secs(5), async || n.store.db_sizes()[0].0
            == 1)
        .await,
        "{:?}",
        node.node.store.db_sizes()[0]
    );
    node.shutdown().await;
}

/// CONFIG REWRITE writes what CONFIG SET and ACL SETUSER changed into the `--config` file, in
/// its own format (YAML here), and a restart from that file comes back with them: the users
/// as they stand, not the `user` lines the node started with (Redis's rewriteConfigUserOption).
#[tokio::test]
async fn config_rewrite_keeps_settings_and_users_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reredis.yaml");
    std::fs::write(&file, "hz: 15\nuser:\n  - \"alice on >a-pass ~a* +get\"\n").unwrap();
    let file_flag = file.to_str().unwrap().to_string();
    let (mut node, mut c, _) = node_process(dir.path(), &["--config", &file_flag]).await;
    for args in [
        vec!["CONFIG", "SET", "hz", "20", "notify-keyspace-events", "KEA"],
        vec!["ACL", "SETUSER", "alice", "+set"],
        vec!["ACL", "SETUSER", "bob", "on", ">b-pass", "~b*", "+@read"],
        vec!["CONFIG", "REWRITE"],
    ] {
        let _: () = redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
    let users: Vec<String> = redis::cmd("ACL")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("\"hz\": 20"), "{written}");
    assert!(!written.contains("dbfilename"), "{written}");
    node.kill();

    let (_node, mut c, _) = node_process(dir.path(), &["--config", &file_flag]).await;
    let hz: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hz")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(hz, ["hz", "20"]);
    let events: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(events[1], "AKE");
    let again: Vec<String> = redis::cmd("ACL")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    // (The default user, declared in the file, is reset before its rules: that adds
    // `sanitize-payload`, as Redis does for the same file.)
    let expected: Vec<String> = users
        .iter()
        .map(|u| {
            u.replace(
                "user default on nopass ~*",
                "user default on nopass sanitize-payload ~*",
            )
        })
        .collect();
    assert_eq!(
        again, expected,
        "the users as they were at the rewrite\n{written}"
    );
    let _: () = redis::cmd("AUTH")
        .arg("bob")
        .arg("b-pass")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("AUTH")
        .arg("alice")
        .arg("a-pass")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("a1")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
}

/// Refused calls count in `rejected_calls` of the command refused, as Redis's rejectCommand:
/// a wrong number of arguments (also queued in MULTI), a RESP2 subscriber's command, a
/// redirection; CLIENT LIST names the command refused. Compared with redis-server.
#[tokio::test]
async fn rejected_calls_are_counted_as_redis() {
    let node = start_node(&[]).await;
    let redis = common::redis_server::RedisServer::start().await;
    let mut seen = Vec::new();
    for addr in [node.resp_addr(), redis.addr()] {
        let mut c = common::resp::Conn::open(addr).await;
        let mut sub = common::resp::Conn::open(addr).await;
        let id = c.cmd(&["CLIENT", "ID"]).await;
        let id = id.trim_start_matches(':').trim_end().to_string();
        assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]).await, "+OK\r\n");
        assert!(c.cmd(&["GET"]).await.starts_with("-ERR wrong number"));
        let list = sub.cmd(&["CLIENT", "LIST", "ID", &id]).await;
        assert!(list.contains(" cmd=get "), "{list}");
        assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
        assert!(c.cmd(&["GET"]).await.starts_with("-ERR wrong number"));
        assert!(c.cmd(&["EXEC"]).await.starts_with("-EXECABORT"));
        assert!(sub.cmd(&["SUBSCRIBE", "ch"]).await.starts_with('*'));
        assert!(
            sub.cmd(&["GET", "k"])
                .await
                .starts_with("-ERR Can't execute 'get'")
        );
        let info = c.cmd(&["INFO", "commandstats"]).await;
        let get = info
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_get:"))
            .unwrap_or_else(|| panic!("no cmdstat_get in {info}"))
            .to_string();
        let counts: Vec<&str> = get
            .split(',')
            .filter(|f| f.contains("calls=") && !f.starts_with("usec"))
            .collect();
        seen.push(counts.join(","));
    }
    assert_eq!(seen[0], seen[1], "ours vs redis-server");
    assert_eq!(seen[1], "calls=0,rejected_calls=3,failed_calls=0");
    node.shutdown().await;
}

/// INFO's sections come in Redis's order whatever the order asked (its genRedisInfoString):
/// compared with redis-server for `INFO everything` and for sections named out of order.
#[tokio::test]
async fn info_sections_come_in_redis_order() {
    let node = start_node(&[]).await;
    let redis = common::redis_server::RedisServer::start().await;
    let headers = async |addr, args: &[&str]| -> Vec<String> {
        let mut c = common::resp::Conn::open(addr).await;
        c.cmd(args)
            .await
            .lines()
            .filter(|l| l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    for args in [
        &["INFO", "everything"][..],
        &["INFO", "keyspace", "commandstats", "server"][..],
    ] {
        let ours = headers(node.resp_addr(), args).await;
        assert!(ours.len() >= 3, "{ours:?}");
        assert_eq!(ours, headers(redis.addr(), args).await, "{args:?}");
    }
    node.shutdown().await;
}

/// CLIENT LIST's view of a transaction, as Redis's: `multi=` counts the commands queued, and
/// while EXEC runs them the client still shows `flags=x`, `multi=<queued>` and `cmd=exec`.
#[tokio::test]
async fn client_list_shows_a_transaction_as_redis() {
    let node = start_node(&[]).await;
    let redis = common::redis_server::RedisServer::start().await;
    for addr in [node.resp_addr(), redis.addr()] {
        let mut c = common::resp::Conn::open(addr).await;
        let mut other = common::resp::Conn::open(addr).await;
        let id = c.cmd(&["CLIENT", "ID"]).await;
        let id = id.trim_start_matches(':').trim_end().to_string();
        assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
        assert_eq!(c.cmd(&["SET", "a", "1"]).await, "+QUEUED\r\n");
        assert_eq!(c.cmd(&["GET", "a"]).await, "+QUEUED\r\n");
        let seen = other.cmd(&["CLIENT", "LIST", "ID", &id]).await;
        assert!(
            seen.contains(" flags=x ") && seen.contains(" multi=2 "),
            "{addr}: {seen}"
        );
        assert_eq!(c.cmd(&["CLIENT", "INFO"]).await, "+QUEUED\r\n");
        let exec = c.cmd(&["EXEC"]).await;
        assert!(
            exec.contains(" flags=x ") && exec.contains(" multi=3 ") && exec.contains(" cmd=exec "),
            "{addr}: {exec}"
        );
        let after = other.cmd(&["CLIENT", "LIST", "ID", &id]).await;
        assert!(
            after.contains(" flags=N ") && after.contains(" multi=-1 "),
            "{addr}: {after}"
        );
    }
    node.shutdown().await;
}

/// A client waiting on CLIENT PAUSE is blocked, not idle (Redis's BLOCKED_POSTPONE): with
/// `timeout` shorter than the pause, its write runs when the pause ends.
#[tokio::test]
async fn a_paused_client_is_not_closed_as_idle() {
    let node = start_node(&[("timeout", "1")]).await;
    let mut pauser = common::resp::Conn::open(node.resp_addr()).await;
    let mut writer = common::resp::Conn::open(node.resp_addr()).await;
    assert_eq!(
        pauser.cmd(&["CLIENT", "PAUSE", "2500", "WRITE"]).await,
        "+OK\r\n"
    );
    writer.send(&[b"SET", b"k", b"v"]).await;
    assert_eq!(String::from_utf8(writer.reply().await).unwrap(), "+OK\r\n");
    node.shutdown().await;
}
