//! Persistence, end to end: real `reredis` processes killed with SIGKILL under load and started
//! again on the same directory, damaged files, an unwritable directory, and in-process nodes for
//! the faster checks. Every load loop is bounded in count and in time.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster_node::{ClusterNode, cli, free_port};
use common::process::wait;
use rand::{Rng, SeedableRng};
use redis::AsyncCommands;

/// A `reredis` process on free ports, standalone, with its data in `dir`.
struct Proc {
    child: Child,
    port: u16,
}

impl Proc {
    /// Starts the binary and waits until it answers PING (loaded). `uid`: run as that user.
    fn start(dir: &Path, extra: &[&str], uid: Option<u32>) -> Proc {
        for _attempt in 0..5 {
            let (port, http_port) = (free_port(), free_port());
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.with_extension("log"))
                .expect("log file");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_reredis"));
            cmd.args(["--port", &port.to_string()])
                .args(["--http-port", &http_port.to_string()])
                .args(["--bind", "127.0.0.1", "--cluster-enabled", "no"])
                .arg("--dir")
                .arg(dir)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log);
            if let Some(uid) = uid {
                use std::os::unix::process::CommandExt;
                cmd.uid(uid).gid(uid);
            }
            let child = cmd.spawn().expect("reredis starts");
            let mut p = Proc { child, port };
            if p.wait_serving(Duration::from_secs(60)) {
                return p;
            }
            // A port taken between the probe and the bind: try others.
            p.kill9();
        }
        panic!(
            "reredis did not start; see {}",
            dir.with_extension("log").display()
        );
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn wait_serving(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Our child answers, not another test's node that took the port meanwhile.
            if let Ok(mut c) = redis::Client::open(format!("redis://{}/", self.addr()))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                && let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut c)
            {
                let pid = format!("process_id:{}", self.child.id());
                if !info.lines().any(|l| l.trim() == pid) {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return false;
                }
                // PING answers once loading is over.
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn client(&self) -> redis::Client {
        common::client(self.addr())
    }

    async fn connect(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn data_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).expect("data dir");
    d
}

/// Writers hammer the node until `stop` (or their count runs out); each returns the values it
/// saw acknowledged: key `w{id}:{i}` = i, and its counter `ctr{id}` incremented once per i.
async fn writer(addr: SocketAddr, id: usize, max: usize, stop: Arc<AtomicBool>) -> Vec<usize> {
    let mut con = common::client(addr)
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut acked = Vec::new();
    for i in 0..max {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let r: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .set(format!("w{id}:{i}"), i)
            .incr(format!("ctr{id}"), 1)
            .query_async(&mut con)
            .await;
        match r {
            Ok(()) => acked.push(i),
            Err(e) => {
                // Expected at the kill; any earlier error shows in the test's output.
                eprintln!("writer {id}: stopped by {e} after {} writes", acked.len());
                break;
            }
        }
    }
    acked
}

/// Runs `writers` for about `run_for`, SIGKILLs the node while they write, and returns what
/// each writer saw acknowledged and how many writes per second the load reached.
async fn write_then_kill(
    p: &mut Proc,
    writers: usize,
    run_for: Duration,
) -> (Vec<Vec<usize>>, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|id| tokio::spawn(writer(p.addr(), id, 200_000, stop.clone())))
        .collect();
    tokio::time::sleep(run_for).await;
    // Kill while the writers are mid-flight: some writes are in the air, unacknowledged.
    p.kill9();
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("writer ends")
                .expect("writer"),
        );
    }
    let total: usize = acked.iter().map(Vec::len).sum();
    (acked, total as f64 / elapsed)
}

/// For each writer: acknowledged writes missing after the restart, and whether its counter
/// agrees with its keys (no write applied twice, none half applied).
async fn missing_after_restart(p: &Proc, acked: &[Vec<usize>]) -> usize {
    let mut con = p.connect().await;
    let mut missing = 0;
    for (id, list) in acked.iter().enumerate() {
        let ctr: Option<usize> = con.get(format!("ctr{id}")).await.expect("GET");
        let ctr = ctr.unwrap_or(0);
        // The transaction SET+INCR is one log record: the counter counts the keys present.
        let present: usize = con
            .exists(
                (0..ctr.max(list.len()) + 1)
                    .map(|i| format!("w{id}:{i}"))
                    .collect::<Vec<_>>(),
            )
            .await
            .expect("EXISTS");
        assert_eq!(present, ctr, "writer {id}: counter and keys disagree");
        for chunk in list.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|i| format!("w{id}:{i}")).collect();
            let vals: Vec<Option<usize>> = con.mget(&keys).await.expect("MGET");
            for (i, v) in chunk.iter().zip(vals) {
                match v {
                    Some(v) => assert_eq!(v, *i, "writer {id} key {i} has a wrong value"),
                    None => missing += 1,
                }
            }
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_with_appendfsync_always_keeps_every_acknowledged_write() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "always");
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ];
    let mut p = Proc::start(&dir, &args, None);
    let (acked, rate) = write_then_kill(&mut p, 4, Duration::from_millis(1500)).await;
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(total > 100, "the load barely ran: {total} writes");
    let p = Proc::start(&dir, &args, None);
    let missing = missing_after_restart(&p, &acked).await;
    println!(
        "appendfsync always: {total} acknowledged transactions ({rate:.0}/s), {missing} missing after kill -9"
    );
    assert_eq!(missing, 0, "acknowledged writes lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_with_appendfsync_everysec_loses_at_most_about_a_second() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "everysec");
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
    ];
    let mut p = Proc::start(&dir, &args, None);
    let (acked, rate) = write_then_kill(&mut p, 4, Duration::from_millis(1500)).await;
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(total > 100, "the load barely ran: {total} writes");
    let p = Proc::start(&dir, &args, None);
    let missing = missing_after_restart(&p, &acked).await;
    println!(
        "appendfsync everysec: {total} acknowledged transactions ({rate:.0}/s), {missing} missing after kill -9 ({:.3} s of writes)",
        missing as f64 / rate
    );
    assert!(
        (missing as f64) <= rate * 1.5,
        "lost {missing} acknowledged writes, more than ~1 s at {rate:.0}/s"
    );
}

/// A data directory the node cannot write to: -MISCONF for writes (reads still served), nothing
/// acknowledged lost, and writes accepted again once the directory is writable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_dir_refuses_writes_with_misconf_and_recovers() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = data_dir(root.path(), "ro");
    // Root writes anywhere: run the node as `nobody` so a read-only directory is one.
    let uid = (unsafe_getuid() == 0).then_some(65534);
    if let Some(uid) = uid {
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).expect("chown");
    }
    let args = ["--save", "3600 1", "--appendonly", "yes"];
    let p = Proc::start(&dir, &args, uid);
    let mut con = p.connect().await;
    let _: () = con.set("before", "1").await.expect("SET");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let started: String = redis::cmd("BGSAVE")
        .query_async(&mut con)
        .await
        .expect("BGSAVE");
    assert_eq!(started, "Background saving started");
    let failed = common::wait_for(Duration::from_secs(20), async || {
        let info = persistence_info(&mut con).await;
        info.contains("rdb_last_bgsave_status:err")
    })
    .await;
    if !failed {
        let info = persistence_info(&mut con).await;
        let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
        panic!("BGSAVE into a read-only directory did not fail:\n{info}\n--- log\n{log}");
    }
    let err = con
        .set::<_, _, ()>("during", "1")
        .await
        .expect_err("a write while persistence fails");
    assert_eq!(err.code(), Some("MISCONF"), "{err}");
    assert!(
        err.to_string().contains("stop-writes-on-bgsave-error"),
        "{err}"
    );
    let v: String = con.get("before").await.expect("reads are still served");
    assert_eq!(v, "1");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let recovered = common::wait_for(Duration::from_secs(20), async || {
        let _: redis::RedisResult<String> = redis::cmd("BGSAVE").query_async(&mut con).await;
        let info = persistence_info(&mut con).await;
        info.contains("rdb_last_bgsave_status:ok")
    })
    .await;
    assert!(
        recovered,
        "BGSAVE did not succeed once the directory was writable"
    );
    let _: () = con.set("after", "2").await.expect("writes accepted again");
    drop(con);
    drop(p);
    let p = Proc::start(&dir, &args, uid);
    let mut con = p.connect().await;
    let (b, a): (Option<String>, Option<String>) = redis::pipe()
        .get("before")
        .get("after")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!((b.as_deref(), a.as_deref()), (Some("1"), Some("2")));
}

fn unsafe_getuid() -> u32 {
    // The owner of a file we just created is our effective uid.
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::os::unix::fs::MetadataExt::uid(&f.as_file().metadata().expect("metadata"))
}

/// Starts an in-process node on `dir`, waits for it to load or fail, and returns the failure.
async fn load_in_process(
    dir: &Path,
    settings: &[(&str, &str)],
) -> (Option<reredis::NodeHandle>, Option<String>) {
    let mut s: Vec<(&str, &str)> = vec![("dir", dir.to_str().expect("utf-8 path"))];
    s.extend_from_slice(settings);
    let h = common::start_node(&s).await;
    let done = common::wait_for(Duration::from_secs(30), async || {
        h.node.ready.load(Ordering::Acquire) || h.failure().is_some()
    })
    .await;
    assert!(done, "load neither finished nor failed");
    match h.failure() {
        Some(f) => {
            h.shutdown().await;
            (None, Some(f))
        }
        None => (Some(h), None),
    }
}

/// Writes `n` keys `k{i}` = `v{i}` one command at a time through a node with the log on, and
/// returns the log's bytes.
async fn make_log(dir: &Path, n: usize) -> Vec<u8> {
    let h = common::start_node(&[
        ("dir", dir.to_str().expect("utf-8")),
        ("appendonly", "yes"),
        ("appendfsync", "no"),
    ])
    .await;
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for i in 0..n {
        let _: () = con
            .set(format!("k{i}"), format!("v{i}"))
            .await
            .expect("SET");
    }
    drop(con);
    h.shutdown().await;
    std::fs::read(dir.join("appendonly.aof")).expect("the log exists")
}

/// Keys `k0..` present after a load must be a prefix of what was written, with right values.
async fn loaded_prefix(h: &reredis::NodeHandle, n: usize) -> usize {
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let vals: Vec<Option<String>> = con.mget(&keys).await.expect("MGET");
    let present = vals.iter().take_while(|v| v.is_some()).count();
    assert!(
        vals[present..].iter().all(Option::is_none),
        "loaded keys are not a prefix"
    );
    for (i, v) in vals.iter().take(present).enumerate() {
        assert_eq!(
            v.as_deref(),
            Some(format!("v{i}").as_str()),
            "wrong value loaded"
        );
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_logs_load_a_prefix_when_truncated_and_are_refused_when_corrupt() {
    let root = tempfile::tempdir().expect("tempdir");
    let n = 60;
    let good = make_log(&data_dir(root.path(), "source"), n).await;
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut truncated, mut refused) = (0, 0);
    for iter in 0..24 {
        let dir = data_dir(root.path(), &format!("case{iter}"));
        let mut bytes = good.clone();
        let truncate = iter % 2 == 0;
        if truncate {
            let cut = rng.random_range(8..bytes.len());
            bytes.truncate(cut);
        } else {
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
            }
        }
        std::fs::write(dir.join("appendonly.aof"), &bytes).expect("write case");
        let (h, failure) = load_in_process(&dir, &[("appendonly", "yes")]).await;
        match (truncate, h, failure) {
            (true, Some(h), None) => {
                let got = loaded_prefix(&h, n).await;
                assert!(
                    got < n,
                    "seed {seed} case {iter}: a truncated log loaded everything"
                );
                h.shutdown().await;
                // The torn record was cut off: the file ends at a record boundary now.
                let after = std::fs::read(dir.join("appendonly.aof")).expect("log");
                assert!(
                    after.len() <= bytes.len()
                        && good.starts_with(&after[..after.len().min(good.len())])
                );
                truncated += 1;
            }
            (false, None, Some(why)) => {
                assert!(
                    why.contains("appendonly.aof") && why.contains("offset"),
                    "seed {seed} case {iter}: unclear refusal: {why}"
                );
                assert!(
                    why.contains("check-aof --fix"),
                    "no repair command named: {why}"
                );
                assert!(!why.contains("panicked"), "{why}");
                refused += 1;
            }
            (t, h, f) => panic!(
                "seed {seed} case {iter}: truncated={t} loaded={} failure={f:?}",
                h.is_some()
            ),
        }
    }
    assert_eq!((truncated, refused), (12, 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshots_are_refused_never_half_loaded() {
    let root = tempfile::tempdir().expect("tempdir");
    let src = data_dir(root.path(), "source");
    let h = common::start_node(&[("dir", src.to_str().expect("utf-8"))]).await;
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for i in 0..50 {
        let _: () = con
            .set(format!("k{i}"), format!("v{i}"))
            .await
            .expect("SET");
    }
    let _: () = con.rpush("list", &["a", "b", "c"]).await.expect("RPUSH");
    let _: () = con.hset("hash", "f", "v").await.expect("HSET");
    let _: () = con.zadd("zset", "m", 2.5).await.expect("ZADD");
    let _: () = con.sadd("set", &["1", "x"]).await.expect("SADD");
    let ok: String = redis::cmd("SAVE")
        .query_async(&mut con)
        .await
        .expect("SAVE");
    assert_eq!(ok, "OK");
    drop(con);
    h.shutdown().await;
    let good = std::fs::read(src.join("dump.rdb")).expect("snapshot written");
    // The good file loads everything.
    let (h, failure) = load_in_process(&src, &[]).await;
    assert_eq!(failure, None);
    let h = h.expect("loaded");
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let size: usize = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .expect("DBSIZE");
    assert_eq!(size, 54);
    let z: Vec<(String, f64)> = con.zrange_withscores("zset", 0, -1).await.expect("ZRANGE");
    assert_eq!(z, vec![("m".to_string(), 2.5)]);
    drop(con);
    h.shutdown().await;
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for iter in 0..16 {
        let dir = data_dir(root.path(), &format!("case{iter}"));
        let mut bytes = good.clone();
        if iter % 2 == 0 {
            bytes.truncate(rng.random_range(0..bytes.len()));
        } else {
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << rng.random_range(0..8);
        }
        std::fs::write(dir.join("dump.rdb"), &bytes).expect("write case");
        let (h, failure) = load_in_process(&dir, &[]).await;
        assert!(
            h.is_none(),
            "seed {seed} case {iter}: a damaged snapshot was loaded"
        );
        let why = failure.expect("a reason");
        assert!(
            why.contains("dump.rdb") && why.contains("offset"),
            "seed {seed} case {iter}: {why}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_aof_reports_and_fixes_a_torn_log_and_aof_load_truncated_no_refuses_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "torn");
    let mut bytes = make_log(&dir, 20).await;
    bytes.truncate(bytes.len() - 3);
    let file = dir.join("appendonly.aof");
    std::fs::write(&file, &bytes).expect("write");
    let (h, failure) =
        load_in_process(&dir, &[("appendonly", "yes"), ("aof-load-truncated", "no")]).await;
    assert!(h.is_none());
    assert!(failure.expect("refused").contains("truncated"));
    let bin = env!("CARGO_BIN_EXE_reredis");
    let out = Command::new(bin)
        .args(["check-aof"])
        .arg(&file)
        .output()
        .expect("check-aof runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("19 good records") && text.contains("--fix"),
        "{text}"
    );
    let out = Command::new(bin)
        .args(["check-aof", "--fix"])
        .arg(&file)
        .output()
        .expect("check-aof runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(bin)
        .args(["check-aof"])
        .arg(&file)
        .output()
        .expect("check-aof runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid: 19 records"));
    let (h, failure) =
        load_in_process(&dir, &[("appendonly", "yes"), ("aof-load-truncated", "no")]).await;
    assert_eq!(failure, None);
    let h = h.expect("loads after the fix");
    assert_eq!(loaded_prefix(&h, 20).await, 19);
    h.shutdown().await;
}

/// While a big log loads: `loading:1`, `-LOADING` for data commands, `/readyz` not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_is_visible_until_the_data_is_in() {
    use reredis::persist::aof;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "big");
    let n = 100_000;
    let mut file = aof::MAGIC.to_vec();
    for i in 0..n {
        let args = [
            bytes::Bytes::from_static(b"SET"),
            bytes::Bytes::from(format!("key:{i}")),
            bytes::Bytes::from(format!("{i}")),
        ];
        aof::command_record(&mut file, &[(0, args.to_vec())]);
    }
    std::fs::write(dir.join("appendonly.aof"), &file).expect("write log");
    let h =
        common::start_node(&[("dir", dir.to_str().expect("utf-8")), ("appendonly", "yes")]).await;
    let mut raw = common::resp::Conn::open(h.resp_addr()).await;
    let info = raw.cmd(&["INFO", "persistence"]).await;
    let get = raw.cmd(&["GET", "key:1"]).await;
    let ready = reqwest::get(format!("http://{}/readyz", h.http_addr()))
        .await
        .expect("readyz")
        .status();
    assert!(info.contains("loading:1"), "{info}");
    assert!(info.contains("loading_total_bytes:"), "{info}");
    assert_eq!(get, "-LOADING Redis is loading the dataset in memory\r\n");
    assert_eq!(ready.as_u16(), 503);
    let loaded = common::wait_for(Duration::from_secs(120), async || {
        h.node.ready.load(Ordering::Acquire)
    })
    .await;
    assert!(loaded);
    let get = raw.cmd(&["GET", "key:99999"]).await;
    assert_eq!(get, "$5\r\n99999\r\n");
    let ready = reqwest::get(format!("http://{}/readyz", h.http_addr()))
        .await
        .expect("readyz")
        .status();
    assert_eq!(ready.as_u16(), 200);
    h.shutdown().await;
}

/// The same big log, loaded by a cluster node that serves no slot: as in Redis's
/// processCommand, the cluster redirection is decided before `-LOADING`, so a key command gets
/// `-CLUSTERDOWN` while a keyless one gets `-LOADING`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_redirection_comes_before_loading() {
    use reredis::config::Origin;
    use reredis::persist::aof;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "big-cluster");
    let mut file = aof::MAGIC.to_vec();
    for i in 0..300_000 {
        let args = [
            bytes::Bytes::from_static(b"SET"),
            bytes::Bytes::from(format!("key:{i}")),
            bytes::Bytes::from(format!("{i}")),
        ];
        aof::command_record(&mut file, &[(0, args.to_vec())]);
    }
    std::fs::write(dir.join("appendonly.aof"), &file).expect("write log");
    let mut c = reredis::config::Config::ephemeral();
    let mut v = c.values.clone();
    for (k, val) in [
        ("dir", dir.to_str().expect("utf-8")),
        ("appendonly", "yes"),
        ("cluster.enabled", "yes"),
        ("cluster.auto-assign", "no"),
    ] {
        v.set(k, val, Origin::Default).expect("valid setting");
    }
    // Given explicitly: a cluster node's default log name carries its port.
    let flag = Origin::Flag("--appendfilename".into());
    v.set("appendfilename", "appendonly.aof", flag)
        .expect("valid setting");
    c = reredis::config::Config::from_values(v);
    let h = reredis::start(c).await.expect("node starts");
    let mut raw = common::resp::Conn::open(h.resp_addr()).await;
    let before = raw.cmd(&["INFO", "persistence"]).await;
    let get = raw.cmd(&["GET", "key:1"]).await;
    let ping = raw.cmd(&["PING"]).await;
    let after = raw.cmd(&["INFO", "persistence"]).await;
    // Both replies came while the log was loading.
    assert!(before.contains("loading:1"), "{before}");
    assert!(
        after.contains("loading:1"),
        "the log loaded too fast: {after}"
    );
    assert_eq!(get, "-CLUSTERDOWN Hash slot not served\r\n");
    assert_eq!(ping, "-LOADING Redis is loading the dataset in memory\r\n");
    h.shutdown().await;
}

/// A node that cannot persist refuses writes with `-MISCONF`, but only after the cluster
/// redirection: a write to a slot it does not serve gets `-CLUSTERDOWN` (Redis's order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_redirection_comes_before_misconf() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "misconf-cluster");
    let h = common::start_node(&[
        ("dir", dir.to_str().expect("utf-8")),
        ("save", "3600 1"),
        ("cluster.enabled", "yes"),
        ("cluster.auto-assign", "no"),
        ("cluster.require-full-coverage", "no"),
    ])
    .await;
    let mut raw = common::resp::Conn::open(h.resp_addr()).await;
    // slot("foo") = 12182, slot("bar") = 5061: serve foo's slot only.
    assert_eq!(raw.cmd(&["CLUSTER", "ADDSLOTS", "12182"]).await, "+OK\r\n");
    let ok = common::wait_for(Duration::from_secs(10), async || {
        raw.cmd(&["CLUSTER", "INFO"])
            .await
            .contains("cluster_state:ok")
    })
    .await;
    assert!(ok, "the cluster state never became ok");
    // Stands for a failed BGSAVE (the node is not run as a user a directory can refuse).
    h.node
        .persist
        .last_bgsave_ok
        .store(false, Ordering::Relaxed);
    let served = raw.cmd(&["SET", "foo", "1"]).await;
    let elsewhere = raw.cmd(&["SET", "bar", "1"]).await;
    assert!(served.starts_with("-MISCONF "), "{served}");
    assert_eq!(elsewhere, "-CLUSTERDOWN Hash slot not served\r\n");
    h.shutdown().await;
}

/// `aof_rewrites` counts background rewrites only, as in Redis 7.0 (checked against
/// redis-server 7.0.15: 0 after starting with `appendonly yes`, 1 after a BGREWRITEAOF, 1 after
/// `CONFIG SET appendonly yes` on a node started without the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_rewrites_counts_rewrites_not_the_log_created_at_start() {
    let root = tempfile::tempdir().expect("tempdir");
    let rewrites = async |raw: &mut common::resp::Conn| -> Option<String> {
        let done = common::wait_for(Duration::from_secs(30), async || {
            let info = raw.cmd(&["INFO", "persistence"]).await;
            info.contains("aof_rewrite_in_progress:0") && info.contains("aof_enabled:1")
        })
        .await;
        assert!(done, "the log never came on");
        let info = raw.cmd(&["INFO", "persistence"]).await;
        info.lines()
            .find_map(|l| l.strip_prefix("aof_rewrites:"))
            .map(|v| v.trim().to_string())
    };

    let dir = data_dir(root.path(), "on-at-start");
    let d = dir.to_str().expect("utf-8");
    let h = common::start_node(&[("dir", d), ("appendonly", "yes")]).await;
    let mut raw = common::resp::Conn::open(h.resp_addr()).await;
    assert_eq!(rewrites(&mut raw).await.as_deref(), Some("0"));
    let started = raw.cmd(&["BGREWRITEAOF"]).await;
    assert_eq!(
        started,
        "+Background append only file rewriting started\r\n"
    );
    assert_eq!(rewrites(&mut raw).await.as_deref(), Some("1"));
    h.shutdown().await;

    let dir = data_dir(root.path(), "on-later");
    let d = dir.to_str().expect("utf-8");
    let h = common::start_node(&[("dir", d), ("appendonly", "no")]).await;
    let mut raw = common::resp::Conn::open(h.resp_addr()).await;
    let off = raw.cmd(&["INFO", "persistence"]).await;
    assert!(off.contains("aof_rewrites:0"), "{off}");
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "appendonly", "yes"]).await,
        "+OK\r\n"
    );
    assert_eq!(rewrites(&mut raw).await.as_deref(), Some("1"));
    h.shutdown().await;
}

/// BGREWRITEAOF and BGSAVE while clients write: the rewritten log (base + tail) and the snapshot
/// hold every write exactly once, and the snapshot is one instant (pairs written together in
/// MULTI/EXEC are equal in it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewrite_and_snapshot_while_serving_writes() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "rw");
    let d = dir.to_str().expect("utf-8");
    let h = common::start_node(&[("dir", d), ("appendonly", "yes")]).await;
    let addr = h.resp_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|id| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut con = common::client(addr)
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect");
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 100_000 {
                    let _: () = redis::pipe()
                        .atomic()
                        .incr(format!("a{id}"), 1)
                        .incr(format!("b{id}"), 1)
                        .rpush(format!("l{id}"), n)
                        .query_async(&mut con)
                        .await
                        .expect("write");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut con = common::client(addr)
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r: String = redis::cmd("BGREWRITEAOF")
        .query_async(&mut con)
        .await
        .expect("BGREWRITEAOF");
    assert_eq!(r, "Background append only file rewriting started");
    let done = common::wait_for(Duration::from_secs(30), async || {
        let info = persistence_info(&mut con).await;
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrites:1")
    })
    .await;
    assert!(done, "rewrite did not finish");
    let r: String = redis::cmd("BGSAVE")
        .query_async(&mut con)
        .await
        .expect("BGSAVE");
    assert_eq!(r, "Background saving started");
    let saved = common::wait_for(Duration::from_secs(30), async || {
        let info = persistence_info(&mut con).await;
        info.contains("rdb_bgsave_in_progress:0") && info.contains("rdb_saves:1")
    })
    .await;
    assert!(saved, "BGSAVE did not finish");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = Vec::new();
    for w in writers {
        counts.push(w.await.expect("writer"));
    }
    drop(con);
    h.shutdown().await;
    // The log: every write once.
    let (h, failure) = load_in_process(&dir, &[("appendonly", "yes")]).await;
    assert_eq!(failure, None);
    let h = h.expect("loaded");
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for (id, n) in counts.iter().enumerate() {
        let (a, b, len): (u64, u64, u64) = redis::pipe()
            .get(format!("a{id}"))
            .get(format!("b{id}"))
            .llen(format!("l{id}"))
            .query_async(&mut con)
            .await
            .expect("read");
        assert_eq!((a, b, len), (*n, *n, *n), "writer {id} after log replay");
        let last: Vec<u64> = con.lrange(format!("l{id}"), -1, -1).await.expect("LRANGE");
        assert_eq!(last, vec![n - 1]);
    }
    drop(con);
    h.shutdown().await;
    // The snapshot: one instant.
    std::fs::remove_file(dir.join("appendonly.aof")).expect("remove log");
    let (h, failure) = load_in_process(&dir, &[]).await;
    assert_eq!(failure, None);
    let h = h.expect("loaded");
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for id in 0..counts.len() {
        let (a, b, len): (u64, u64, u64) = redis::pipe()
            .get(format!("a{id}"))
            .get(format!("b{id}"))
            .llen(format!("l{id}"))
            .query_async(&mut con)
            .await
            .expect("read");
        assert!(
            a > 0 && a == b && b == len,
            "writer {id}: snapshot not one instant: {a} {b} {len}"
        );
    }
    drop(con);
    h.shutdown().await;
}

/// TTLs survive a restart as absolute times (a relative EXPIRE is not restarted), expired keys
/// stay gone, and SPOP's random choice replays as what it popped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_random_pops_replay_exactly() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "ttl");
    let d = dir.to_str().expect("utf-8");
    let h = common::start_node(&[("dir", d), ("appendonly", "yes")]).await;
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("x")
        .arg("PX")
        .arg(100)
        .query_async(&mut con)
        .await
        .expect("SET PX");
    let _: () = redis::cmd("SETEX")
        .arg("long")
        .arg(100)
        .arg("y")
        .query_async(&mut con)
        .await
        .expect("SETEX");
    let _: () = con.set("e", "z").await.expect("SET");
    let _: () = con.expire("e", 100).await.expect("EXPIRE");
    let _: () = con
        .sadd("s", &["a", "b", "c", "d", "e"])
        .await
        .expect("SADD");
    let popped: Vec<String> = redis::cmd("SPOP")
        .arg("s")
        .arg(2)
        .query_async(&mut con)
        .await
        .expect("SPOP");
    let mut before: Vec<String> = con.smembers("s").await.expect("SMEMBERS");
    before.sort();
    assert_eq!(popped.len(), 2);
    // A blocked pop served later is logged when it is served.
    let mut blocked = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let pop = tokio::spawn(async move {
        let r: Option<(String, String)> = redis::cmd("BLPOP")
            .arg("q")
            .arg(10)
            .query_async(&mut blocked)
            .await
            .expect("BLPOP");
        r
    });
    let waiting = common::wait_for(Duration::from_secs(10), async || {
        let n: usize = redis::cmd("INFO")
            .arg("clients")
            .query_async::<String>(&mut con)
            .await
            .map(|i| i.contains("blocked_clients:1") as usize)
            .unwrap_or(0);
        n == 1
    })
    .await;
    assert!(waiting, "BLPOP did not block");
    let _: () = con.rpush("q", &["x", "y"]).await.expect("RPUSH");
    assert_eq!(
        pop.await.expect("BLPOP task"),
        Some(("q".to_string(), "x".to_string()))
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // "short" expired: reading it deletes it (logged as DEL).
    let gone: Option<String> = con.get("short").await.expect("GET");
    assert_eq!(gone, None);
    // A time already past deletes the key whatever the condition, and RESTORE ... ABSTTL of
    // a past time deletes what it replaces: both are logged as the DEL they were (replayed as
    // the conditional command, with the clock stopped, they would bring the key back).
    let dump: Vec<u8> = redis::cmd("DUMP")
        .arg("s")
        .query_async(&mut con)
        .await
        .expect("DUMP");
    for (key, args) in [
        ("p", vec!["EXPIRE", "p", "-1", "NX"]),
        ("r", vec!["PEXPIREAT", "r", "1", "LT"]),
    ] {
        let _: () = con.sadd(key, "old").await.expect("SADD");
        let n: i64 = redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut con)
            .await
            .expect("expire");
        assert_eq!(n, 1, "{args:?}");
        let _: () = con.sadd(key, "new").await.expect("SADD");
    }
    let _: () = con.sadd("t", "old").await.expect("SADD");
    let _: () = redis::cmd("RESTORE")
        .arg("t")
        .arg(1)
        .arg(&dump)
        .arg("ABSTTL")
        .arg("REPLACE")
        .query_async(&mut con)
        .await
        .expect("RESTORE");
    let _: () = con.sadd("t", "new").await.expect("SADD");
    drop(con);
    h.shutdown().await;
    let (h, failure) = load_in_process(&dir, &[("appendonly", "yes")]).await;
    assert_eq!(failure, None);
    let h = h.expect("loaded");
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let ttl_long: i64 = con.ttl("long").await.expect("TTL");
    let ttl_e: i64 = con.ttl("e").await.expect("TTL");
    assert!(
        (95..=99).contains(&ttl_long),
        "SETEX's TTL restarted or lost: {ttl_long}"
    );
    assert!(
        (95..=99).contains(&ttl_e),
        "EXPIRE's TTL restarted or lost: {ttl_e}"
    );
    let short: Option<String> = con.get("short").await.expect("GET");
    assert_eq!(short, None);
    let mut after: Vec<String> = con.smembers("s").await.expect("SMEMBERS");
    after.sort();
    assert_eq!(after, before, "SPOP replayed a different choice");
    for key in ["p", "r", "t"] {
        let members: Vec<String> = con.smembers(key).await.expect("SMEMBERS");
        assert_eq!(
            members,
            ["new"],
            "{key}: the past-time delete replayed as it ran"
        );
        let ttl: i64 = con.ttl(key).await.expect("TTL");
        assert_eq!(ttl, -1, "{key}");
    }
    let q: Vec<String> = con.lrange("q", 0, -1).await.expect("LRANGE");
    assert_eq!(
        q,
        vec!["y".to_string()],
        "the served BLPOP was not replayed"
    );
    drop(con);
    h.shutdown().await;
}

fn cluster_ok(n: &[ClusterNode]) -> bool {
    n.iter().all(|x| {
        cli(x.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            && cli(x.port, &["CLUSTER", "SLOTS"]).lines().count() > 0
    })
}

/// Slot ranges as `start-end id` lines, sorted, as seen from `port`.
fn slot_owners(port: u16) -> Vec<String> {
    let mut v: Vec<String> = cli(port, &["CLUSTER", "NODES"])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!(
                "{} {}",
                f[0],
                f.get(8..).map(|s| s.join(",")).unwrap_or_default()
            )
        })
        .collect();
    v.sort();
    v
}

/// A whole cluster killed with SIGKILL and started again on the same directory comes back with
/// the same node IDs, the same slots, and every key.
#[test]
fn a_cluster_killed_and_restarted_keeps_ids_slots_and_keys() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "cluster");
    let mut n: Vec<ClusterNode> = (0..3)
        .map(|_| ClusterNode::start(&dir, &["--appendonly", "yes"]))
        .collect();
    for other in &n[1..] {
        cli(
            n[0].port,
            &[
                "CLUSTER",
                "MEET",
                "127.0.0.1",
                &other.port.to_string(),
                &other.bus.to_string(),
            ],
        );
    }
    // Formed: the even layout, one range per node (slots are handed over in steps, so three
    // owners alone may still be a layout in the making).
    assert!(
        wait(Duration::from_secs(30), || cluster_ok(&n)
            && slot_owners(n[0].port)
                .iter()
                .filter(|l| l.len() > 41 && !l.contains(','))
                .count()
                == 3),
        "cluster did not form"
    );
    let ids: Vec<String> = n
        .iter()
        .map(|x| cli(x.port, &["CLUSTER", "MYID"]))
        .collect();
    let owners = slot_owners(n[0].port);
    let urls: Vec<String> = n
        .iter()
        .map(|x| format!("redis://127.0.0.1:{}/", x.port))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let keys = 600;
    rt.block_on(async {
        let client = redis::cluster::ClusterClient::new(urls.clone()).expect("cluster client");
        let mut c = client.get_async_connection().await.expect("connect");
        for i in 0..keys {
            let _: () = c.set(format!("key:{i}"), i).await.expect("SET");
        }
    });
    let per_node: Vec<String> = n.iter().map(|x| cli(x.port, &["DBSIZE"])).collect();
    for x in n.iter_mut() {
        x.kill9();
    }
    for x in n.iter_mut() {
        x.restart();
    }
    assert!(
        wait(Duration::from_secs(30), || cluster_ok(&n)),
        "cluster did not come back"
    );
    let ids_after: Vec<String> = n
        .iter()
        .map(|x| cli(x.port, &["CLUSTER", "MYID"]))
        .collect();
    assert_eq!(ids_after, ids);
    assert_eq!(slot_owners(n[0].port), owners);
    // Each node holds exactly its own keys again (its files are its own).
    let per_node_after: Vec<String> = n.iter().map(|x| cli(x.port, &["DBSIZE"])).collect();
    assert_eq!(per_node_after, per_node);
    rt.block_on(async {
        let client = redis::cluster::ClusterClient::new(urls).expect("cluster client");
        let mut c = client.get_async_connection().await.expect("connect");
        for i in 0..keys {
            let v: Option<i64> = c.get(format!("key:{i}")).await.expect("GET");
            assert_eq!(v, Some(i), "key:{i} after the restart");
        }
    });
}

/// INFO persistence's text (empty when the node does not answer).
async fn persistence_info(con: &mut redis::aio::MultiplexedConnection) -> String {
    redis::cmd("INFO")
        .arg("persistence")
        .query_async(con)
        .await
        .unwrap_or_default()
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` with a file, until a write fails for lack of space.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 4096];
    for _ in 0..100_000 {
        if f.write_all(&chunk).and_then(|_| f.sync_all()).is_err() {
            break;
        }
    }
    path
}

/// The disk fills up under the append-only log: the write that cannot be logged is not
/// acknowledged, new writes get `-MISCONF Errors writing to the AOF file`, and once space
/// returns the pending write is acknowledged, writes are accepted, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_with_misconf_and_recovers_when_space_returns() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(&root.path().join("small"), "512k") else {
        println!("cannot mount a tmpfs here (not root?): skipped");
        return;
    };
    let dir = fs.0.clone();
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ];
    let mut p = Proc::start(&dir, &args, None);
    let mut con = p.connect().await;
    let _: () = con.set("before", "1").await.expect("SET");
    let filler = fill(&dir);
    // This write reaches memory but not the log: its reply waits (a raw connection: client
    // libraries time out).
    let mut raw = common::resp::Conn::open(p.addr()).await;
    let big = "x".repeat(20_000);
    raw.send(&[b"SET", b"during", big.as_bytes()]).await;
    let failing = common::wait_for(Duration::from_secs(20), async || {
        let info = persistence_info(&mut con).await;
        info.contains("aof_last_write_status:err")
    })
    .await;
    assert!(failing, "the log write on a full disk did not fail");
    let err = con
        .set::<_, _, ()>("probe", "1")
        .await
        .expect_err("refused");
    assert!(
        // Redis's words: strerror, no "(os error N)".
        err.to_string()
            .contains("Errors writing to the AOF file: No space left on device")
            && !err.to_string().contains("os error"),
        "{err}"
    );
    assert!(
        !raw.has_reply_within(Duration::from_millis(300)).await,
        "a write that is not in the log was acknowledged"
    );
    let v: String = con.get("before").await.expect("reads still served");
    assert_eq!(v, "1");
    std::fs::remove_file(&filler).expect("free space");
    let acked = tokio::time::timeout(Duration::from_secs(20), raw.reply()).await;
    assert_eq!(
        acked.ok(),
        Some(b"+OK\r\n".to_vec()),
        "the pending write after recovery"
    );
    let ok = common::wait_for(Duration::from_secs(20), async || {
        con.set::<_, _, ()>("after", "2").await.is_ok()
    })
    .await;
    assert!(ok, "writes not accepted once space returned");
    drop(con);
    p.kill9();
    let p = Proc::start(&dir, &args, None);
    let mut con = p.connect().await;
    let (b, d, a): (Option<String>, Option<usize>, Option<String>) = redis::pipe()
        .get("before")
        .strlen("during")
        .get("after")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(
        (b.as_deref(), d, a.as_deref()),
        (Some("1"), Some(20_000), Some("2"))
    );
    drop(con);
    drop(p);
    drop(fs);
}

/// A final snapshot that cannot be written keeps the node running, as Redis: SHUTDOWN answers
/// `-ERR Errors trying to SHUTDOWN. Check logs.` and SIGTERM is logged and ignored, with every
/// write still there and writes still accepted; once the snapshot can be written, SHUTDOWN
/// saves and stops, and a restart finds the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_snapshot_that_fails_keeps_the_node_running() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "final-save");
    let args = ["--save", "3600 1", "--appendonly", "no"];
    let mut p = Proc::start(&dir, &args, None);
    let mut con = p.connect().await;
    let _: () = con.set("k", "v").await.expect("SET");
    // The snapshot's name is taken by a directory: its rename fails (even for root).
    let blocker = dir.join("dump.rdb");
    std::fs::create_dir(&blocker).expect("mkdir dump.rdb");
    let err = redis::cmd("SHUTDOWN")
        .query_async::<()>(&mut con)
        .await
        .expect_err("SHUTDOWN refused");
    assert!(
        err.to_string()
            .contains("Errors trying to SHUTDOWN. Check logs."),
        "{err}"
    );
    let _: () = con.set("after-shutdown", "1").await.expect("writes go on");
    let ok = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -TERM");
    let logged = wait(Duration::from_secs(20), || {
        std::fs::read_to_string(dir.with_extension("log"))
            .unwrap_or_default()
            .contains("SIGTERM received but errors trying to shut down the server")
    });
    assert!(logged, "the failed SIGTERM is logged");
    assert!(
        p.child.try_wait().expect("try_wait").is_none(),
        "the node still runs"
    );
    let _: () = con.set("after-sigterm", "1").await.expect("writes go on");
    // A background save that fails does refuse writes (-MISCONF), and an EXEC with a write
    // queued before it failed is discarded for it, as Redis.
    let mut tx = common::resp::Conn::open(p.addr()).await;
    assert_eq!(tx.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(tx.cmd(&["SET", "in-tx", "1"]).await, "+QUEUED\r\n");
    let _: () = redis::cmd("BGSAVE")
        .query_async(&mut con)
        .await
        .expect("BGSAVE");
    let failed = common::wait_for(Duration::from_secs(20), async || {
        let info = persistence_info(&mut con).await;
        info.contains("rdb_last_bgsave_status:err")
    })
    .await;
    assert!(failed, "the background save fails");
    let exec = tx.cmd(&["EXEC"]).await;
    assert!(
        exec.starts_with("-EXECABORT Transaction discarded because of: MISCONF"),
        "{exec}"
    );
    // A script declared a writer (`#!lua` without no-writes) is refused before it runs; a
    // read-only one and a compatible-mode one run (the latter fails at a write, if any).
    let declared = tx.cmd(&["EVAL", "#!lua\nreturn 1", "0"]).await;
    assert!(declared.starts_with("-MISCONF"), "{declared}");
    assert_eq!(
        tx.cmd(&["EVAL", "#!lua flags=no-writes\nreturn 1", "0"])
            .await,
        ":1\r\n"
    );
    assert_eq!(tx.cmd(&["EVAL", "return 1", "0"]).await, ":1\r\n");

    std::fs::remove_dir(&blocker).expect("rmdir");
    let _ = redis::cmd("SHUTDOWN").query_async::<()>(&mut con).await;
    let exited = wait(Duration::from_secs(20), || {
        p.child.try_wait().is_ok_and(|s| s.is_some())
    });
    assert!(exited, "SHUTDOWN stops the node once it can save");
    let p = Proc::start(&dir, &args, None);
    let mut con = p.connect().await;
    for key in ["k", "after-shutdown", "after-sigterm"] {
        let v: Option<String> = con.get(key).await.expect("GET");
        assert!(v.is_some(), "{key} saved by the final snapshot");
    }
}

/// FLUSHALL with `save` rules saves the emptied data set at once (as Redis's
/// flushAllDataAndResetRDB): killed right after, the node does not come back with the flushed
/// keys from the snapshot before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_with_save_rules_saves_the_empty_data_set() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "flushall");
    let args = ["--save", "3600 1", "--appendonly", "no"];
    let mut p = Proc::start(&dir, &args, None);
    let mut con = p.connect().await;
    let _: () = con.set("k", "v").await.expect("SET");
    let _: () = redis::cmd("SAVE")
        .query_async(&mut con)
        .await
        .expect("SAVE");
    let saves = |info: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("rdb_saves:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_default()
    };
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut con)
        .await
        .expect("FLUSHALL");
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(&mut con)
        .await
        .expect("INFO");
    assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
    assert_eq!(
        saves(&info),
        1,
        "FLUSHALL's save is not a SAVE command: {info}"
    );
    p.kill9();
    let mut p = Proc::start(&dir, &args, None);
    let mut con = p.connect().await;
    let n: u64 = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .expect("DBSIZE");
    assert_eq!(n, 0, "the flushed keys came back");

    // From a script (which holds the function libraries every snapshot carries), the save is
    // a background save right after it.
    let _: () = con.set("k2", "v").await.expect("SET");
    let _: () = redis::cmd("SAVE")
        .query_async(&mut con)
        .await
        .expect("SAVE");
    let r: String = redis::cmd("EVAL")
        .arg("return redis.call('flushall')")
        .arg(0)
        .query_async(&mut con)
        .await
        .expect("FLUSHALL in a script");
    assert_eq!(r, "OK");
    // Inside a transaction too (a script run by EXEC holds the function engine as well).
    let mut tx = common::resp::Conn::open(p.addr()).await;
    assert_eq!(tx.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(
        tx.cmd(&["EVAL", "return redis.call('flushall')", "0"])
            .await,
        "+QUEUED\r\n"
    );
    assert_eq!(tx.cmd(&["EXEC"]).await, "*1\r\n+OK\r\n");
    let saved = common::wait_for(Duration::from_secs(20), async || {
        let info = persistence_info(&mut con).await;
        saves(&info) >= 2 && info.contains("rdb_bgsave_in_progress:0")
    })
    .await;
    assert!(saved, "a background save follows the script");
    p.kill9();
    let p = Proc::start(&dir, &args, None);
    let mut con = p.connect().await;
    let n: u64 = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .expect("DBSIZE");
    assert_eq!(n, 0, "the keys flushed by the script came back");
}

/// `CONFIG SET appendonly yes` whose log cannot be created (its name taken by a directory):
/// writes go on being acknowledged (they waited for the log for ever), and the node tries
/// again every few seconds, as Redis, until the log is in place with every write in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_the_log_on_retries_until_it_can_be_created() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(root.path(), "aof-on");
    let d = dir.to_str().expect("utf-8");
    let h = common::start_node(&[("dir", d), ("appendonly", "no")]).await;
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = con.set("before", "1").await.expect("SET");
    let blocker = dir.join("appendonly.aof");
    std::fs::create_dir(&blocker).expect("mkdir");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query_async(&mut con)
        .await
        .expect("CONFIG SET");
    for i in 0..20 {
        let _: () = con
            .set(format!("during{i}"), i)
            .await
            .expect("acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_dir(&blocker).expect("rmdir");
    let created = common::wait_for(Duration::from_secs(30), async || {
        std::fs::metadata(&blocker).is_ok_and(|m| m.is_file())
            && redis::cmd("INFO")
                .arg("persistence")
                .query_async::<String>(&mut con)
                .await
                .is_ok_and(|i| {
                    i.contains("aof_enabled:1") && i.contains("aof_rewrite_in_progress:0")
                })
    })
    .await;
    assert!(created, "the log was created once it could be");
    let _: () = con.set("after", "1").await.expect("SET");
    drop(con);
    h.shutdown().await;
    let (h, failure) = load_in_process(&dir, &[("appendonly", "yes")]).await;
    assert_eq!(failure, None);
    let h = h.expect("loaded");
    let mut con = common::client(h.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let n: u64 = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .expect("DBSIZE");
    assert_eq!(n, 22, "before, the 20 writes during the retries, after");
    h.shutdown().await;
}
