//! Cluster behaviour with real node processes on 127.0.0.1: the seed's 3-node quick start,
//! redirections, redis-cli -c, the `redis` crate's cluster client, `redis-cli --cluster`,
//! failure detection after kill -9, restart under the same ID, nodes.conf and bus secret checks.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct NodeProc {
    child: Child,
    port: u16,
    bus: u16,
    dir: PathBuf,
    args: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

impl NodeProc {
    fn start(dir: &Path, extra: &[&str]) -> NodeProc {
        let (port, bus) = (free_port(), free_port());
        let args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--http-port",
            "0",
            "--cluster-bus-port",
            &bus.to_string(),
            "--dir",
            dir.to_str().unwrap(),
            "--cluster-node-timeout",
            "1000",
            "--cluster-rebalance-delay",
            "300",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().map(|s| s.to_string()))
        .collect();
        let child = spawn(&args, dir);
        let n = NodeProc {
            child,
            port,
            bus,
            dir: dir.to_path_buf(),
            args,
        };
        n.wait_ready();
        n
    }

    fn wait_ready(&self) {
        assert!(
            wait(Duration::from_secs(10), || cli(self.port, &["PING"])
                == "PONG"),
            "node on {} did not start: {}",
            self.port,
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("node-{}.log", self.port)))
            .unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = spawn(&self.args, &self.dir);
        self.wait_ready();
    }

    fn id(&self) -> String {
        cli(self.port, &["CLUSTER", "MYID"])
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(args: &[String], dir: &Path) -> Child {
    let port = args
        .iter()
        .position(|a| a == "--port")
        .map(|i| args[i + 1].clone())
        .unwrap_or_default();
    let log = std::fs::File::create(dir.join(format!("node-{port}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_reredis"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("reredis starts")
}

fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Slot ranges per port as CLUSTER SLOTS on `port` reports them.
fn slot_map(port: u16) -> Vec<(u16, u16, u16)> {
    let text = cli(port, &["CLUSTER", "SLOTS"]);
    let l: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    // Each entry: start, end, ip, port, id (empty metadata prints nothing).
    while i + 4 < l.len() {
        let (a, b, p) = (l[i].parse(), l[i + 1].parse(), l[i + 3].parse());
        if let (Ok(a), Ok(b), Ok(p)) = (a, b, p) {
            out.push((a, b, p));
            i += 5;
        } else {
            i += 1;
        }
    }
    out.sort();
    out
}

fn three_nodes(dir: &Path, extra: &[&str]) -> Vec<NodeProc> {
    let mut nodes: Vec<NodeProc> = (0..3).map(|_| NodeProc::start(dir, extra)).collect();
    nodes.sort_by_key(|n| n.port);
    nodes
}

fn info_field(port: u16, field: &str) -> String {
    cli(port, &["CLUSTER", "INFO"])
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn seed_quick_start_forms_a_balanced_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let n = three_nodes(dir.path(), &[]);
    // A lone node owns every slot and serves every key.
    assert_eq!(info_field(n[0].port, "cluster_state"), "ok");
    assert_eq!(info_field(n[0].port, "cluster_slots_assigned"), "16384");
    assert_eq!(cli(n[0].port, &["SET", "lone", "1"]), "OK");
    assert_eq!(cli(n[0].port, &["DEL", "lone"]), "1");
    for other in &n[1..] {
        assert_eq!(
            cli(
                n[0].port,
                &[
                    "CLUSTER",
                    "MEET",
                    "127.0.0.1",
                    &other.port.to_string(),
                    &other.bus.to_string()
                ]
            ),
            "OK"
        );
    }
    let want = vec![
        (0, 5460, n[0].port),
        (5461, 10922, n[1].port),
        (10923, 16383, n[2].port),
    ];
    for node in &n {
        assert!(
            wait(Duration::from_secs(20), || slot_map(node.port) == want
                && info_field(node.port, "cluster_state") == "ok"),
            "node {} sees {:?}, want {:?}\n{}",
            node.port,
            slot_map(node.port),
            want,
            cli(node.port, &["CLUSTER", "NODES"])
        );
    }
    // Redirections exactly as Redis sends them.
    assert_eq!(
        cli(n[0].port, &["SET", "mykey", "x"]),
        format!("MOVED 14687 127.0.0.1:{}", n[2].port)
    );
    assert_eq!(cli(n[2].port, &["SET", "mykey", "distributed!"]), "OK");
    assert_eq!(
        cli(n[0].port, &["MSET", "foo", "1", "bar", "2"]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    // redis-cli -c follows them.
    let out = Command::new("redis-cli")
        .args(["-c", "-p", &n[0].port.to_string(), "GET", "mykey"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "distributed!");
    assert_eq!(info_field(n[1].port, "cluster_known_nodes"), "3");
    assert_eq!(info_field(n[1].port, "cluster_size"), "3");
}

#[test]
fn redis_crate_cluster_client_works_across_slots() {
    let dir = tempfile::tempdir().unwrap();
    let n = three_nodes(dir.path(), &[]);
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
    assert!(wait(Duration::from_secs(20), || n.iter().all(
        |x| slot_map(x.port).len() == 3 && info_field(x.port, "cluster_state") == "ok"
    )));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use redis::AsyncCommands;
        let urls: Vec<String> = n
            .iter()
            .map(|x| format!("redis://127.0.0.1:{}/", x.port))
            .collect();
        let client = redis::cluster::ClusterClient::new(urls).unwrap();
        let mut c = client.get_async_connection().await.unwrap();
        for i in 0..10_000 {
            let _: () = c.set(format!("key:{i}"), i).await.unwrap();
        }
        for i in (0..10_000).step_by(7) {
            let v: i64 = c.get(format!("key:{i}")).await.unwrap();
            assert_eq!(v, i);
        }
    });
    // Keys are spread over the three nodes by slot.
    let sizes: Vec<i64> = n
        .iter()
        .map(|x| cli(x.port, &["DBSIZE"]).parse().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<i64>(), 10_000);
    assert!(sizes.iter().all(|&s| s > 3000), "{sizes:?}");
}

#[test]
fn redis_cli_cluster_create_check_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let n = three_nodes(dir.path(), &[]);
    let addrs: Vec<String> = n.iter().map(|x| format!("127.0.0.1:{}", x.port)).collect();
    let mut create = Command::new("redis-cli");
    create
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .arg("--cluster-yes");
    let out = create.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[OK] All 16384 slots covered."),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = Command::new("redis-cli")
        .args(["--cluster", "check", &addrs[0]])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("[OK] All nodes agree about slots configuration."),
        "{text}"
    );
    assert!(text.contains("[OK] All 16384 slots covered."), "{text}");
    let info = Command::new("redis-cli")
        .args(["--cluster", "info", &addrs[1]])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("3 masters"), "{text}");
    assert_eq!(info_field(n[0].port, "cluster_slot_mode"), "manual");
}

#[test]
fn killed_node_is_marked_failed_and_rejoins_under_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = three_nodes(dir.path(), &[]);
    for i in 1..3 {
        let (p, b) = (n[i].port, n[i].bus);
        cli(
            n[0].port,
            &[
                "CLUSTER",
                "MEET",
                "127.0.0.1",
                &p.to_string(),
                &b.to_string(),
            ],
        );
    }
    assert!(wait(Duration::from_secs(20), || n.iter().all(
        |x| slot_map(x.port).len() == 3 && info_field(x.port, "cluster_state") == "ok"
    )));
    let victim_id = n[2].id();
    n[2].kill9();
    let killed_at = Instant::now();
    let failed = |port: u16| {
        cli(port, &["CLUSTER", "NODES"])
            .lines()
            .any(|l| l.starts_with(&victim_id) && l.contains("fail") && !l.contains("fail?"))
    };
    assert!(
        wait(Duration::from_secs(10), || failed(n[0].port)
            && failed(n[1].port)),
        "{}",
        cli(n[0].port, &["CLUSTER", "NODES"])
    );
    // node-timeout is 1000 ms: the spec's bound is a few timeouts; we require 2 x node-timeout
    // plus gossip slack.
    assert!(
        killed_at.elapsed() < Duration::from_millis(4000),
        "took {:?}",
        killed_at.elapsed()
    );
    assert_eq!(info_field(n[0].port, "cluster_state"), "fail");
    assert!(cli(n[0].port, &["GET", "hello"]).starts_with("CLUSTERDOWN"));
    n[2].restart();
    assert_eq!(n[2].id(), victim_id, "restarted node keeps its ID");
    assert!(
        wait(Duration::from_secs(15), || info_field(
            n[0].port,
            "cluster_state"
        ) == "ok"
            && !failed(n[0].port)),
        "{}",
        cli(n[0].port, &["CLUSTER", "NODES"])
    );
    assert_eq!(slot_map(n[2].port).len(), 3);
}

#[test]
fn corrupt_nodes_conf_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join(format!("nodes-{port}.conf")),
        "this is not a nodes file\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reredis"))
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--http-port",
            "0",
            "--cluster-bus-port",
            "0",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("nodes-{port}.conf")) && err.contains("corrupt"),
        "{err}"
    );
}

#[test]
fn a_peer_with_another_secret_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let a = NodeProc::start(dir.path(), &["--cluster-secret", "s3cret"]);
    let b = NodeProc::start(dir.path(), &["--cluster-secret", "other"]);
    let c = NodeProc::start(dir.path(), &["--cluster-secret", "s3cret"]);
    cli(
        a.port,
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &b.port.to_string(),
            &b.bus.to_string(),
        ],
    );
    cli(
        a.port,
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &c.port.to_string(),
            &c.bus.to_string(),
        ],
    );
    assert!(wait(Duration::from_secs(10), || info_field(
        a.port,
        "cluster_known_nodes"
    ) == "2"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        info_field(a.port, "cluster_known_nodes"),
        "2",
        "{}",
        cli(a.port, &["CLUSTER", "NODES"])
    );
    assert_eq!(info_field(b.port, "cluster_known_nodes"), "1");
}

#[test]
fn manual_mode_starts_with_no_slots_as_redis() {
    let dir = tempfile::tempdir().unwrap();
    let a = NodeProc::start(dir.path(), &["--cluster-auto-assign", "no"]);
    assert_eq!(info_field(a.port, "cluster_slots_assigned"), "0");
    assert_eq!(info_field(a.port, "cluster_state"), "fail");
    assert_eq!(
        cli(a.port, &["GET", "x"]),
        "CLUSTERDOWN Hash slot not served"
    );
    assert_eq!(
        cli(a.port, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        "OK"
    );
    assert_eq!(
        cli(a.port, &["CLUSTER", "ADDSLOTS", "5"]),
        "ERR Slot 5 is already busy"
    );
    assert!(wait(Duration::from_secs(5), || info_field(
        a.port,
        "cluster_state"
    ) == "ok"));
    assert_eq!(cli(a.port, &["SET", "x", "1"]), "OK");
    assert_eq!(
        cli(a.port, &["CLUSTER", "FORGET", &a.id()]),
        "ERR I tried hard but I can't forget myself..."
    );
}
