//! Reredis node processes for tests: the binary started with a given environment and flags, its
//! log in a file, killed on drop (only the child this helper started), plus redis-cli, HTTP and
//! bounded waits. Addresses are loopback only.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The node binary with a clean `REREDIS_*` environment (the node rejects variables it does
/// not know, and the caller's shell may have some) plus `env`, and `args` as flags.
pub fn reredis(env: &[(String, String)], args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reredis"));
    for (k, _) in std::env::vars() {
        if k.starts_with("REREDIS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args(args);
    cmd
}

pub struct NodeProcess {
    child: Child,
    pub log: PathBuf,
}

impl NodeProcess {
    /// Starts a node; its stderr (the log) goes to `log`, appended so restarts keep history.
    pub fn spawn(env: &[(String, String)], args: &[String], log: &Path) -> NodeProcess {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = reredis(env, args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("reredis starts");
        NodeProcess {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a pod or container is killed past its grace period.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The OS process id: to signal it, or to tell it from another node that took its port.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (it is reaped then).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits until it exits, as after a SHUTDOWN.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for the node to exit")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-cli -h host -p port args...`, stdout trimmed. Bounded to 30 s: `-c` follows
/// redirections for as long as they come.
pub fn cli(host: &str, port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["30", "redis-cli", "-h", host, "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// Polls `f` every 50 ms until it holds or `timeout` passes.
pub fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn bindable(ip: Ipv4Addr, port: u16) -> bool {
    TcpListener::bind((ip, port)).is_ok()
}

/// Ports other tools and sessions on the test machines keep for themselves (the quick-start and
/// deployment ports): tests never take them, even when they happen to be free. Also 16384, the
/// slot count: the cluster differential test names every `:<port>` in a reply, and a node on
/// port 16384 turned CLUSTER INFO's `cluster_slots_assigned:16384` into a port name.
const RESERVED: &[std::ops::RangeInclusive<u16>] = &[
    6379..=6381,
    16379..=16381,
    16384..=16384,
    17001..=17003,
    42001..=42004,
    52001..=52003,
];

fn reserved(port: u16) -> bool {
    RESERVED.iter().any(|r| r.contains(&port))
}

/// A port free on every address in `ips` whose cluster bus port (port + 10000) is free too,
/// below the ephemeral range so outgoing connections do not take it meanwhile.
pub fn free_port_with_bus(ips: &[Ipv4Addr]) -> u16 {
    for _ in 0..1000 {
        let port = rand::random_range(10_000..22_000u16);
        if !reserved(port)
            && !reserved(port + 10_000)
            && ips
                .iter()
                .all(|&ip| bindable(ip, port) && bindable(ip, port + 10_000))
        {
            return port;
        }
    }
    panic!("no free port pair on {ips:?}");
}

/// A port the OS picks as free on `ip` (never a reserved one).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    for _ in 0..1000 {
        let port = TcpListener::bind((ip, 0))
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if !reserved(port) {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// `GET path` over HTTP/1.1: the status code and body, or None when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        code,
        if chunked {
            dechunk(body)?
        } else {
            body.to_string()
        },
    ))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}
