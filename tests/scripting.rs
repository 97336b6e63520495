//! Lua scripting with real clients: the `redis` crate's `Script` (EVALSHA, falling back to
//! EVAL on NOSCRIPT), SCRIPT KILL from a second connection, a script's writes replayed from the
//! append-only log after a restart, and the cluster rules for the keys a script may touch.
//! Replies are compared with redis-server byte for byte in tests/differential/scripting.txt.

mod common;

use std::time::{Duration, Instant};

use redis::AsyncCommands;

async fn connect(h: &reredis::NodeHandle) -> redis::aio::MultiplexedConnection {
    connect_to(h.resp_addr()).await
}

async fn connect_to(addr: std::net::SocketAddr) -> redis::aio::MultiplexedConnection {
    // Scripts here may run for seconds: no response timeout.
    common::connect_waiting(addr).await
}

/// Sends SCRIPT KILL until a script is there to kill (bounded).
async fn kill_script(killer: &mut redis::aio::MultiplexedConnection) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r: redis::RedisResult<()> = redis::cmd("SCRIPT").arg("KILL").query_async(killer).await;
        match r {
            Ok(()) => return,
            Err(e) if e.code() == Some("NOTBUSY") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("SCRIPT KILL failed: {e}"),
        }
    }
}

/// [`process`] with the busy-reply threshold set through `name` (it or its old name), and a
/// connection to it.
async fn process_with_threshold(
    name: &str,
    ms: i64,
) -> (
    tempfile::TempDir,
    common::cluster_node::ClusterNode,
    std::net::SocketAddr,
    redis::aio::MultiplexedConnection,
) {
    let (dir, node, addr) = process();
    let mut admin = connect_to(addr).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(ms)
        .query_async(&mut admin)
        .await
        .expect("CONFIG SET");
    (dir, node, addr, admin)
}

/// Starts, from a connection of its own, a script that runs until it is killed. It publishes
/// to `script-started` first.
async fn run_forever(
    addr: std::net::SocketAddr,
) -> tokio::task::JoinHandle<redis::RedisResult<()>> {
    let mut runner = connect_to(addr).await;
    tokio::spawn(async move {
        redis::cmd("EVAL")
            .arg(
                "redis.call('publish', 'script-started', '1') \
                 local i = 0 while true do i = i + 1 end",
            )
            .arg(0)
            .query_async::<()>(&mut runner)
            .await
    })
}

/// [`run_forever`], returning once the script runs (its message arrived).
async fn run_forever_started(
    addr: std::net::SocketAddr,
) -> tokio::task::JoinHandle<redis::RedisResult<()>> {
    let mut started = common::session::Conn::connect(addr).await;
    started.call_str(&["SUBSCRIBE", "script-started"]).await;
    let forever = run_forever(addr).await;
    tokio::time::timeout(Duration::from_secs(20), started.frame())
        .await
        .expect("the script starts")
        .expect("its message");
    forever
}

/// Kills the script [`run_forever`] started and waits for its client to get the error.
async fn kill_and_join(
    admin: &mut redis::aio::MultiplexedConnection,
    forever: tokio::task::JoinHandle<redis::RedisResult<()>>,
) {
    kill_script(admin).await;
    let killed = tokio::time::timeout(Duration::from_secs(20), forever)
        .await
        .expect("the script stops")
        .expect("task");
    assert!(killed.is_err());
}

/// A `reredis` process (as users run it) for the tests of long scripts: they need the
/// runtime's threads as the binary sets them up, not the test's.
fn process() -> (
    tempfile::TempDir,
    common::cluster_node::ClusterNode,
    std::net::SocketAddr,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = common::cluster_node::ClusterNode::start(dir.path(), &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.port));
    (dir, node, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_crate_runs_scripts_by_sha_and_loads_them_when_missing() {
    let h = common::start_node(&[]).await;
    let mut con = connect(&h).await;
    let script = redis::Script::new(
        "redis.call('incrby', KEYS[1], ARGV[1]) return {redis.call('get', KEYS[1]), #ARGV}",
    );
    // The first call gets NOSCRIPT for EVALSHA and loads the script.
    let (v, n): (String, i64) = script
        .key("counter")
        .arg(5)
        .invoke_async(&mut con)
        .await
        .expect("first run");
    assert_eq!((v.as_str(), n), ("5", 1));
    let known: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(script.get_hash())
        .query_async(&mut con)
        .await
        .expect("SCRIPT EXISTS");
    assert_eq!(known, vec![true], "the crate's hash is ours");
    let (v, _): (String, i64) = script
        .key("counter")
        .arg(2)
        .invoke_async(&mut con)
        .await
        .expect("run by sha");
    assert_eq!(v, "7");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .expect("SCRIPT FLUSH");
    let (v, _): (String, i64) = script
        .key("counter")
        .arg(3)
        .invoke_async(&mut con)
        .await
        .expect("run after a flush");
    assert_eq!(v, "10");
    let err = redis::Script::new("return redis.call('lpush', KEYS[1], 'x')")
        .key("counter")
        .invoke_async::<()>(&mut con)
        .await
        .expect_err("WRONGTYPE inside the script");
    assert!(
        err.to_string().contains("WRONGTYPE"),
        "the command's error reaches the client: {err}"
    );
    h.shutdown().await;
}

/// `busy-reply-threshold` (set here by its old name, `lua-time-limit`) is how long other
/// clients wait for a running script before they get -BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_reply_threshold_sets_how_long_clients_wait_for_a_script() {
    let (_dir, _node, addr, mut admin) = process_with_threshold("lua-time-limit", 300).await;
    let set: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("busy-reply-threshold")
        .query_async(&mut admin)
        .await
        .expect("CONFIG GET");
    assert_eq!(set, ["busy-reply-threshold", "300"]);
    let forever = run_forever(addr).await;
    // Until the script runs, a GET is simply answered; once it runs, the GET waits out the
    // threshold (a little less when the script started before the GET was sent).
    let mut c = connect_to(addr).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (e, waited) = loop {
        let started = Instant::now();
        let r: redis::RedisResult<Option<String>> = c.get("k").await;
        match r {
            Err(e) => break (e, started.elapsed()),
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(_) => panic!("the script never ran"),
        }
    };
    assert_eq!(e.code(), Some("BUSY"), "{e}");
    // Far below the 5 s default: the setting is what the client waited for.
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    // Busy from now on: a second client is refused at once.
    let started = Instant::now();
    let again: redis::RedisResult<Option<String>> = c.get("k").await;
    assert_eq!(again.expect_err("BUSY").code(), Some("BUSY"));
    assert!(started.elapsed() < Duration::from_secs(4));
    kill_and_join(&mut admin, forever).await;
}

/// `busy-reply-threshold 0`: never busy (Redis installs no hook): other clients wait for the
/// script, however long, and are then answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_reply_threshold_zero_makes_clients_wait_for_the_script() {
    let (_dir, _node, addr, _admin) = process_with_threshold("busy-reply-threshold", 0).await;
    let mut runner = common::resp::Conn::open(addr).await;
    let second = "local t0 = redis.call('time') \
                  while true do \
                    local t = redis.call('time') \
                    if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 1000000 then break end \
                  end return 1";
    runner.send(&[b"EVAL", second.as_bytes(), b"0"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut other = common::resp::Conn::open(addr).await;
    let started = Instant::now();
    assert_eq!(
        other.cmd(&["GET", "k"]).await,
        "$-1\r\n",
        "answered, not -BUSY"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited for the script"
    );
    assert_eq!(String::from_utf8(runner.reply().await).unwrap(), ":1\r\n");
}

/// FUNCTION STATS while a script (not a function) runs: Redis's -BUSY, as its
/// functionStatsCommand answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_stats_during_a_script_is_busy() {
    let (_dir, _node, addr, mut admin) = process_with_threshold("busy-reply-threshold", 100).await;
    let forever = run_forever_started(addr).await;
    let mut c = common::resp::Conn::open(addr).await;
    let stats = c.cmd(&["FUNCTION", "STATS"]).await;
    assert!(
        stats.starts_with("-BUSY Redis is busy running a script."),
        "{stats}"
    );
    kill_and_join(&mut admin, forever).await;
}

/// EXECs that arrive while a script runs wait for it without holding a thread: more of them
/// than the node has runtime threads still leave SCRIPT KILL one, and each runs once the
/// script is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_waiting_for_a_script_leave_a_thread_for_script_kill() {
    // No -BUSY during this test: the EXECs wait for the script to end.
    let (_dir, _node, addr, mut admin) =
        process_with_threshold("busy-reply-threshold", 120_000).await;
    // Transactions queued before the script starts; their EXECs come while it runs.
    let mut queued = Vec::new();
    for i in 0..4 {
        let mut c = connect_to(addr).await;
        let _: () = redis::cmd("MULTI")
            .query_async(&mut c)
            .await
            .expect("MULTI");
        let q: redis::Value = redis::cmd("INCR")
            .arg(format!("counter{i}"))
            .query_async(&mut c)
            .await
            .expect("INCR");
        assert_eq!(q, redis::Value::SimpleString("QUEUED".into()));
        queued.push(c);
    }
    let forever = run_forever_started(addr).await;
    let mut execs = Vec::new();
    let sent = Instant::now();
    for mut c in queued {
        execs.push(tokio::spawn(async move {
            let r: redis::RedisResult<(i64,)> = redis::cmd("EXEC").query_async(&mut c).await;
            (r, sent.elapsed())
        }));
    }
    // The kill comes at least this long after the transactions were sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill_and_join(&mut admin, forever).await;
    for e in execs {
        let (r, waited) = tokio::time::timeout(Duration::from_secs(20), e)
            .await
            .expect("the transaction is answered once the script is gone")
            .expect("task");
        assert_eq!(r.expect("EXEC"), (1,));
        assert!(
            waited >= Duration::from_millis(250),
            "answered after {waited:?}, while the script ran"
        );
    }
}

/// An EXEC refused because a script has run past the busy threshold discards its transaction,
/// as Redis (`-EXECABORT ... BUSY ...`): the client is out of MULTI and nothing queued ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_refused_while_a_script_is_busy_discards_its_transaction() {
    let (_dir, _node, addr, mut admin) = process_with_threshold("busy-reply-threshold", 100).await;
    let mut t = common::session::Conn::connect(addr).await;
    assert_eq!(t.call_str(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(t.call_str(&["SET", "k", "1"]).await, "+QUEUED\r\n");
    let forever = run_forever_started(addr).await;
    assert_eq!(
        t.call_str(&["EXEC"]).await,
        "-EXECABORT Transaction discarded because of: BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    kill_and_join(&mut admin, forever).await;
    assert_eq!(t.call_str(&["PING"]).await, "+PONG\r\n");
    assert_eq!(t.call_str(&["GET", "k"]).await, "$-1\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_kill_stops_a_script_that_has_not_written_and_refuses_one_that_has() {
    let (_dir, _node, addr) = process();
    let mut killer = connect_to(addr).await;
    let nothing: redis::RedisResult<()> = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut killer)
        .await;
    let e = nothing.expect_err("nothing runs");
    assert_eq!(e.code(), Some("NOTBUSY"), "{e}");

    // A script that would run forever, running (a GET sent before it started would simply
    // be answered).
    let forever = run_forever_started(addr).await;
    // Other clients wait for it, then get -BUSY once it has run 5 s, and meanwhile they hold
    // none of the threads SCRIPT KILL needs.
    let mut others = Vec::new();
    for _ in 0..4 {
        let mut c = connect_to(addr).await;
        others.push(tokio::spawn(async move {
            let started = Instant::now();
            let r: redis::RedisResult<Option<String>> = c.get("k").await;
            (r, started.elapsed())
        }));
    }
    for o in others {
        let (r, waited) = tokio::time::timeout(Duration::from_secs(30), o)
            .await
            .expect("a waiting client is answered")
            .expect("task");
        let e = r.expect_err("BUSY");
        assert_eq!(e.code(), Some("BUSY"), "{e}");
        assert!(
            waited >= Duration::from_secs(4),
            "answered after {waited:?}"
        );
    }
    kill_script(&mut killer).await;
    let killed = tokio::time::timeout(Duration::from_secs(20), forever)
        .await
        .expect("the script stops")
        .expect("task");
    let e = killed.expect_err("a killed script fails");
    assert!(
        e.to_string()
            .contains("Script killed by user with SCRIPT KILL"),
        "{e}"
    );

    // A script that wrote cannot be killed; this one ends by itself after 1.5 s.
    let mut writer = connect_to(addr).await;
    let bounded = tokio::spawn(async move {
        redis::cmd("EVAL")
            .arg(
                "redis.call('set', 'w', 1) \
                 local t0 = redis.call('time') local n = 0 \
                 repeat \
                   local t = redis.call('time') n = n + 1 \
                   local us = (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) \
                 until us > 1500000 \
                 return 1",
            )
            .arg(0)
            .query_async::<i64>(&mut writer)
            .await
    });
    let mut refused = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bounded.is_finished() && Instant::now() < deadline {
        let r: redis::RedisResult<()> = redis::cmd("SCRIPT")
            .arg("KILL")
            .query_async(&mut killer)
            .await;
        if let Err(e) = r
            && e.code() == Some("UNKILLABLE")
        {
            // Nor may the node stop and save half of it: only SHUTDOWN NOSAVE would.
            let stop: redis::RedisResult<()> =
                redis::cmd("SHUTDOWN").query_async(&mut killer).await;
            let e = stop.expect_err("SHUTDOWN during a script");
            assert_eq!(e.code(), Some("BUSY"), "{e}");
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = tokio::time::timeout(Duration::from_secs(60), bounded)
        .await
        .expect("the bounded script ends")
        .expect("task")
        .expect("it ran to the end");
    assert_eq!(done, 1);
    assert!(refused, "SCRIPT KILL refused a script that had written");
    let w: i64 = killer.get("w").await.expect("GET");
    assert_eq!(w, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_writes_are_logged_as_its_effects_and_replayed_after_a_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8").to_string();
    let settings = [("dir", dir.as_str()), ("appendonly", "yes")];
    let h = common::start_node(&settings).await;
    let mut con = connect(&h).await;
    let n: i64 = redis::cmd("EVAL")
        .arg(
            "redis.call('set', KEYS[1], ARGV[1]) \
             redis.call('rpush', KEYS[2], 'a', 'b') \
             redis.call('incrbyfloat', KEYS[3], 0.5) \
             return redis.call('llen', KEYS[2])",
        )
        .arg(3)
        .arg("s")
        .arg("l")
        .arg("f")
        .arg("v")
        .query_async(&mut con)
        .await
        .expect("EVAL");
    assert_eq!(n, 2);
    drop(con);
    h.shutdown().await;
    let log = std::fs::read(root.path().join("appendonly.aof")).expect("the log");
    let text = String::from_utf8_lossy(&log).to_ascii_lowercase();
    assert!(
        text.contains("rpush") && !text.contains("eval"),
        "the log holds the script's commands, not the script"
    );

    let h = common::start_loaded(&settings).await;
    let mut con = connect(&h).await;
    let s: String = con.get("s").await.expect("GET s");
    let l: Vec<String> = con.lrange("l", 0, -1).await.expect("LRANGE");
    let f: String = con.get("f").await.expect("GET f");
    assert_eq!(
        (s.as_str(), l, f.as_str()),
        ("v", vec!["a".into(), "b".into()], "0.5")
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_a_script_keeps_to_the_slot_of_its_keys_unless_compatible() {
    let h = common::start_node(&[("cluster.enabled", "yes")]).await;
    let mut con = connect(&h).await;
    let eval = |script: &str, keys: &[&str]| {
        let mut c = redis::cmd("EVAL");
        c.arg(script).arg(keys.len());
        for k in keys {
            c.arg(*k);
        }
        c
    };
    // Keys of one slot (a hash tag) are fine, declared or not.
    let v: String = eval(
        "redis.call('set', KEYS[1], 'x') redis.call('set', '{t}undeclared', 'y') \
         return redis.call('get', KEYS[2])",
        &["{t}a", "{t}undeclared"],
    )
    .query_async(&mut con)
    .await
    .expect("one slot");
    assert_eq!(v, "y");
    // Declared keys of two slots: refused before the script runs.
    let e = eval("return 1", &["a", "b"])
        .query_async::<i64>(&mut con)
        .await
        .expect_err("CROSSSLOT");
    assert_eq!(e.code(), Some("CROSSSLOT"), "{e}");
    // An undeclared key of another slot: a compatible-mode script (no shebang) may touch it
    // while this node serves it (Redis's SCRIPT_ALLOW_CROSS_SLOT); a `#!lua` one is refused
    // inside the script, as Redis does.
    let v: Option<String> = eval("return redis.call('get', 'b')", &["a"])
        .query_async(&mut con)
        .await
        .expect("compatible mode");
    assert_eq!(v, None);
    let e = eval("#!lua\nreturn redis.call('get', 'b')", &["a"])
        .query_async::<()>(&mut con)
        .await
        .expect_err("another slot");
    assert!(
        e.to_string()
            .contains("Script attempted to access keys that do not hash to the same slot"),
        "{e}"
    );
    // No declared keys: the first key touched sets the slot.
    let e = eval(
        "#!lua\nredis.call('set', '{u}1', 'x') return redis.call('get', '{v}1')",
        &[],
    )
    .query_async::<()>(&mut con)
    .await
    .expect_err("two slots");
    assert!(
        e.to_string().contains("do not hash to the same slot"),
        "{e}"
    );
    let v: String = con.get("{u}1").await.expect("the first write stays");
    assert_eq!(v, "x");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcall_cannot_swallow_script_kill() {
    let (_dir, _node, addr) = process();
    let mut killer = connect_to(addr).await;
    let mut runner = connect_to(addr).await;
    let stubborn = tokio::spawn(async move {
        redis::cmd("EVAL")
            .arg(
                "while true do pcall(function() while true do end end) \
                 xpcall(function() while true do end end, function(e) return e end) end",
            )
            .arg(0)
            .query_async::<()>(&mut runner)
            .await
    });
    kill_script(&mut killer).await;
    let e = tokio::time::timeout(Duration::from_secs(20), stubborn)
        .await
        .expect("the script stops despite its pcall")
        .expect("task")
        .expect_err("killed");
    assert!(e.to_string().contains("Script killed"), "{e}");
}

/// Commands that read every shard (INFO, MEMORY STATS, CONFIG RESETSTAT) inside a script or a
/// transaction, which already hold them all, once waited on themselves forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reading_every_shard_work_inside_scripts_and_transactions() {
    let h = common::start_node(&[]).await;
    let mut con = connect(&h).await;
    let _: () = con.set("k", "v").await.expect("SET");
    let info: String = tokio::time::timeout(
        Duration::from_secs(10),
        redis::cmd("EVAL")
            .arg("return redis.call('info', 'keyspace')")
            .arg(0)
            .query_async(&mut con),
    )
    .await
    .expect("INFO inside a script answers")
    .expect("EVAL");
    assert!(info.contains("db0:keys=1"), "{info}");
    let (info, _, _): (String, redis::Value, redis::Value) = tokio::time::timeout(
        Duration::from_secs(10),
        redis::pipe()
            .atomic()
            .cmd("INFO")
            .arg("keyspace")
            .cmd("MEMORY")
            .arg("STATS")
            .cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut con),
    )
    .await
    .expect("MULTI/INFO/EXEC answers")
    .expect("EXEC");
    assert!(info.contains("db0:keys=1"), "{info}");
    h.shutdown().await;
}

/// INFO memory counts the cached scripts, libraries and functions, as redis-server does after
/// the same commands (SCRIPT LOAD, FUNCTION LOAD, SCRIPT FLUSH ASYNC, FUNCTION FLUSH).
#[tokio::test]
async fn info_memory_counts_scripts_and_functions_as_redis() {
    async fn figures(addr: std::net::SocketAddr) -> Vec<String> {
        let mut c = common::connect_waiting(addr).await;
        let mut seen = Vec::new();
        let steps: [&[&str]; 6] = [
            &["SCRIPT", "LOAD", "return 1"],
            &["SCRIPT", "LOAD", "return 2"],
            &["EVAL", "return 3", "0"],
            &[
                "FUNCTION",
                "LOAD",
                "#!lua name=lib\nredis.register_function('f1', function() return 1 end)\nredis.register_function('f2', function() return 2 end)",
            ],
            &["SCRIPT", "FLUSH", "ASYNC"],
            &["FUNCTION", "FLUSH"],
        ];
        for step in steps {
            let mut cmd = redis::cmd(step[0]);
            cmd.arg(&step[1..]);
            let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
            let info: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut c)
                .await
                .unwrap();
            seen.push(
                info.lines()
                    .filter(|l| l.starts_with("number_of_"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        seen
    }
    let node = common::start_node(&[]).await;
    let ours = figures(node.resp_addr()).await;
    node.shutdown().await;
    let redis = common::redis_server::RedisServer::start().await;
    let theirs = figures(redis.addr()).await;
    assert!(theirs[3].contains("number_of_functions:2"), "{theirs:?}");
    assert_eq!(ours, theirs);
}

/// Errors inside scripts are counted as Redis counts them: a command refused inside a script
/// (OOM, wrong arity) is an error reply and a rejected call of that command; a script that ends
/// on a command's error fails EVAL without counting that error twice; `redis.error_reply` is
/// counted under its own code; error tables of failed calls say `ignore_error_stats_update`.
/// Compared with redis-server, INFO's errorstats and commandstats (times left out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_inside_scripts_are_counted_as_redis_counts_them() {
    async fn stats(addr: std::net::SocketAddr) -> Vec<String> {
        let mut c = common::session::Conn::connect(addr).await;
        let mut seen = Vec::new();
        let steps: &[&[&str]] = &[
            &["CONFIG", "SET", "maxmemory", "1"],
            &["EVAL", "return redis.call('set','x','y')", "1", "x"],
            &[
                "EVAL",
                "local t = redis.pcall('set','x','y') return t['err']",
                "1",
                "x",
            ],
            &["EVAL", "return redis.pcall('set','x','y')", "1", "x"],
            &["CONFIG", "SET", "maxmemory", "0"],
            &["EVAL", "return redis.call('select',99)", "0"],
            &[
                "EVAL",
                "return redis.error_reply('MY_ERR_CODE custom msg')",
                "0",
            ],
            &[
                "EVAL",
                "local t = redis.pcall('nosuch') return t.ignore_error_stats_update",
                "0",
            ],
            &["EVAL", "return redis.call('get')", "0"],
            &["EVAL", "return redis.pcall('get', 'a', 'b')", "0"],
            &["EVAL", "error('plain')", "0"],
            // Errors inside an array reply: counted unless a call's.
            &["EVAL", "return {1, redis.error_reply('NESTED x')}", "0"],
            &[
                "EVAL",
                "return {redis.pcall('nosuch'), redis.pcall('get')}",
                "0",
            ],
        ];
        seen.push(c.call_str(&["CONFIG", "RESETSTAT"]).await);
        for args in steps {
            seen.push(c.call_str(args).await);
        }
        for section in ["errorstats", "commandstats"] {
            let info = c.call_str(&["INFO", section]).await;
            for line in info.lines() {
                if line.starts_with("errorstat_")
                    || [
                        "cmdstat_eval:",
                        "cmdstat_set:",
                        "cmdstat_get:",
                        "cmdstat_select:",
                    ]
                    .iter()
                    .any(|p| line.starts_with(p))
                {
                    // Times differ; the counts are what is compared.
                    let counts: Vec<&str> = line
                        .split([':', ','])
                        .filter(|f| !f.starts_with("usec"))
                        .collect();
                    seen.push(counts.join(","));
                }
            }
        }
        // (Redis lists commands in its dictionary's order.)
        seen.sort();
        let total = c.call_str(&["INFO", "stats"]).await;
        seen.extend(
            total
                .lines()
                .filter(|l| l.starts_with("total_error_replies"))
                .map(str::to_string),
        );
        seen
    }
    let node = common::start_node(&[]).await;
    let ours = stats(node.resp_addr()).await;
    node.shutdown().await;
    let redis = common::redis_server::RedisServer::start().await;
    let theirs = stats(redis.addr()).await;
    common::session::assert_same_lines(&ours, &theirs);
    assert!(
        ours.iter().any(|l| l == "errorstat_OOM,count=3"),
        "{ours:#?}"
    );
}
