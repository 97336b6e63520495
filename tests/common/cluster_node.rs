//! A reredis node process in cluster mode on 127.0.0.1, for the tests of real clusters: free
//! ports probed (and probed again when another test takes one first), the tests' defaults for
//! the flags, its log in `node-<port>.log` in its data directory, restarted under the same ID.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use super::process::{self, NodeProcess, wait};

/// How long a node may take to answer after a start or restart (loading its data included).
const READY: Duration = Duration::from_secs(30);

/// redis-cli on 127.0.0.1 (bounded to 30 s: `-c` follows redirections as long as they come).
pub fn cli(port: u16, args: &[&str]) -> String {
    process::cli("127.0.0.1", port, args)
}

/// A port free on 127.0.0.1.
pub fn free_port() -> u16 {
    process::free_port(Ipv4Addr::LOCALHOST)
}

/// A node process, killed on drop.
pub struct ClusterNode {
    proc: NodeProcess,
    pub port: u16,
    pub bus: u16,
    /// The HTTP port, or 0 (picked by the node, unknown here) unless started with
    /// [`ClusterNode::start_with_http`].
    pub http: u16,
    args: Vec<String>,
}

impl ClusterNode {
    /// A node with its data in `dir` and the tests' defaults (node timeout 1 s, rebalance delay
    /// 300 ms); a flag in `extra` replaces the default of that flag. Several nodes may share
    /// `dir`: their file names carry the port.
    pub fn start(dir: &Path, extra: &[&str]) -> ClusterNode {
        Self::launch(dir, extra, false)
    }

    /// As [`ClusterNode::start`], with the HTTP API on a known port, for [`ClusterNode::url`].
    pub fn start_with_http(dir: &Path, extra: &[&str]) -> ClusterNode {
        Self::launch(dir, extra, true)
    }

    /// Free ports are probed, then bound by the node: when another test took one meanwhile,
    /// the node is started again on new ports.
    fn launch(dir: &Path, extra: &[&str], with_http: bool) -> ClusterNode {
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let (port, bus) = (free_port(), free_port());
            let http = if with_http { free_port() } else { 0 };
            let (p, b, h) = (port.to_string(), bus.to_string(), http.to_string());
            let defaults = [
                "--bind",
                "127.0.0.1",
                "--port",
                &p,
                "--http-port",
                &h,
                "--cluster-bus-port",
                &b,
                "--dir",
                dir.to_str().unwrap(),
                "--cluster-node-timeout",
                "1000",
                "--cluster-rebalance-delay",
                "300",
            ];
            let args: Vec<String> = defaults
                .chunks(2)
                .filter(|pair| !extra.contains(&pair[0]))
                .flatten()
                .chain(extra)
                .map(|s| s.to_string())
                .collect();
            let log = dir.join(format!("node-{port}.log"));
            let mut n = ClusterNode {
                proc: NodeProcess::spawn(&[], &args, &log),
                port,
                bus,
                http,
                args,
            };
            if n.serving() {
                return n;
            }
            last_log = n.log();
            n.kill9();
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!("node did not start: {last_log}");
    }

    /// Whether our child (not another test's node on the same port) answers PING in time.
    fn serving(&mut self) -> bool {
        let pid = format!("process_id:{}", self.proc.pid());
        wait(READY, || {
            // Exited: the caller sees it below.
            self.proc.exited()
                || (cli(self.port, &["INFO", "server"])
                    .lines()
                    .any(|l| l.trim() == pid)
                    && cli(self.port, &["PING"]) == "PONG")
        }) && !self.proc.exited()
    }

    /// Its log (stderr), appended across restarts.
    pub fn log(&self) -> String {
        self.proc.log_text()
    }

    /// SIGKILL: no shutdown, nothing saved that was not on disk already.
    pub fn kill9(&mut self) {
        self.proc.kill();
    }

    /// Starts it again (killed first if still running) with the same flags, so on the same
    /// ports and data: the same node ID.
    pub fn restart(&mut self) {
        self.proc.kill();
        let log = self.proc.log.clone();
        self.proc = NodeProcess::spawn(&[], &self.args, &log);
        assert!(
            self.serving(),
            "node on {} did not start: {}",
            self.port,
            self.log()
        );
    }

    /// Its node ID (CLUSTER MYID).
    pub fn id(&self) -> String {
        cli(self.port, &["CLUSTER", "MYID"])
    }

    /// The OS process id, to signal it (SIGSTOP, SIGCONT).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Whether it has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        self.proc.exited()
    }

    /// Waits until it exits, as after a SHUTDOWN.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.proc.wait_exit()
    }

    /// `http://127.0.0.1:<http port><path>`.
    pub fn url(&self, path: &str) -> String {
        assert_ne!(self.http, 0, "started without start_with_http");
        format!("http://127.0.0.1:{}{path}", self.http)
    }
}
