//! Multi-connection RESP sessions for pub/sub and transaction tests: read whole RESP2/RESP3
//! frames (raw bytes, for byte-for-byte comparison, including pushes that arrive between
//! replies and a peer that closes), and record what every connection receives after every
//! step, so the same script can be run against Reredis and a real `redis-server`
//! ([`RedisServer`]) and the transcripts compared.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use super::redis_server::RedisServer;
use super::resp::encode;

/// Length of the complete frame at the start of `b`, or None if more bytes are needed.
fn frame_len(b: &[u8]) -> Option<usize> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&b[1..line_end]).ok()?;
    let after = line_end + 2;
    match b[0] {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Some(after),
        b'$' | b'=' | b'!' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n: i64 = head.parse().ok()?;
            let n = if matches!(b[0], b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut pos = after;
            for _ in 0..n.max(0) {
                pos += frame_len(&b[pos..])?;
            }
            Some(pos)
        }
        other => panic!("not RESP: {:?}", other as char),
    }
}

/// One connection that reads whole frames.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, args: &[&[u8]]) {
        self.stream.write_all(&encode(args)).await.expect("write");
    }

    /// The next frame, raw; None when the peer closed.
    pub async fn frame(&mut self) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if !self.buf.is_empty()
                && let Some(n) = frame_len(&self.buf)
            {
                return Some(self.buf.drain(..n).collect());
            }
            // Read into the buffer itself: a 64 KiB array here would sit in every future
            // that awaits a frame, and a long test's future would outgrow its thread's stack.
            self.buf.reserve(65536);
            let n = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no frame in time; have {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )
                })
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Sends a command and returns its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args).await;
        self.frame().await.expect("reply")
    }

    pub async fn call_str(&mut self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        String::from_utf8_lossy(&self.call(&args).await).into_owned()
    }

    /// Every frame received before the reply to a `PING <marker>` (which every mode allows).
    pub async fn sync(&mut self) -> Vec<Vec<u8>> {
        const MARK: &[u8] = b"__sync_marker__";
        self.send(&[b"PING", MARK]).await;
        let plain = [b"$15\r\n".as_slice(), MARK, b"\r\n"].concat();
        let pong = [b"*2\r\n$4\r\npong\r\n$15\r\n".as_slice(), MARK, b"\r\n"].concat();
        let mut got = Vec::new();
        for _ in 0..100_000 {
            let f = self.frame().await.expect("sync reply");
            if f == plain || f == pong {
                return got;
            }
            got.push(f);
        }
        panic!("no sync reply");
    }

    /// Reads until the peer closes, returning how many bytes came.
    pub async fn read_to_close(&mut self, limit: Duration) -> Option<usize> {
        let mut total = self.buf.len();
        let mut chunk = vec![0u8; 1 << 20];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(total),
                Ok(Ok(n)) => total += n,
            }
        }
    }
}

/// One step of a script.
pub enum Step {
    /// Send a command on connection `conn`.
    Cmd(usize, Vec<Vec<u8>>),
    /// Send a command on `conn` and drop its reply unrecorded (HELLO, whose reply carries the
    /// client id).
    Quiet(usize, Vec<Vec<u8>>),
    /// Poll `EXISTS key` on `conn` until the key is gone (its TTL passed); not recorded.
    WaitGone(usize, Vec<u8>),
    /// Poll a command on `conn` until its reply contains the bytes given; not recorded.
    WaitUntil(usize, Vec<Vec<u8>>, Vec<u8>),
    /// `CLIENT TRACKING ON REDIRECT <id of connection target> <options>` on `conn`. Replies
    /// that carry a connection's id (CLIENT GETREDIR, TRACKINGINFO, `tracking-redir-broken`)
    /// are recorded with `<id N>` in its place: the two servers number clients differently.
    Redirect(usize, usize, Vec<Vec<u8>>),
}

/// `c(0, "SET k v")`: a command on connection 0 (arguments split on spaces).
pub fn c(conn: usize, line: &str) -> Step {
    Step::Cmd(
        conn,
        line.split(' ').map(|a| a.as_bytes().to_vec()).collect(),
    )
}

/// A command whose reply is not recorded.
pub fn q(conn: usize, line: &str) -> Step {
    Step::Quiet(
        conn,
        line.split(' ').map(|a| a.as_bytes().to_vec()).collect(),
    )
}

/// Polls `line` on `conn` until its reply contains `needle` (`CLUSTER INFO` until the state is
/// ok, say); not recorded.
pub fn wait_until(conn: usize, line: &str, needle: &str) -> Step {
    Step::WaitUntil(
        conn,
        line.split(' ').map(|a| a.as_bytes().to_vec()).collect(),
        needle.as_bytes().to_vec(),
    )
}

/// A command with arguments given one by one (for arguments with spaces or empty ones).
pub fn ca(conn: usize, args: &[&str]) -> Step {
    Step::Cmd(conn, args.iter().map(|a| a.as_bytes().to_vec()).collect())
}

/// `redirect(0, 1, "BCAST")`: connection 0 turns tracking on, redirected to connection 1.
pub fn redirect(conn: usize, target: usize, options: &str) -> Step {
    Step::Redirect(
        conn,
        target,
        options
            .split(' ')
            .filter(|a| !a.is_empty())
            .map(|a| a.as_bytes().to_vec())
            .collect(),
    )
}

fn step_conn(step: &Step) -> usize {
    match step {
        Step::Cmd(c, _)
        | Step::Quiet(c, _)
        | Step::WaitGone(c, _)
        | Step::WaitUntil(c, ..)
        | Step::Redirect(c, ..) => *c,
    }
}

/// A recorded line with the connections' ids (integer frames equal to one) shown as `<id N>`.
fn hide_ids(line: &str, ids: &[u64]) -> String {
    // Frames are shown with CR and LF escaped.
    ids.iter()
        .enumerate()
        .fold(line.to_string(), |text, (n, id)| {
            text.replace(&format!(":{id}\\r\\n"), &format!(":<id {n}>\\r\\n"))
        })
}

/// Runs `script` on `conns` fresh connections to `addr`. After every command, every
/// connection is synced, and what each received is recorded:
/// `step N conn C: <frames>` lines, CR/LF shown escaped.
pub async fn transcript(addr: SocketAddr, conns: usize, script: &[Step]) -> Vec<String> {
    let mut cs = Vec::new();
    for _ in 0..conns {
        cs.push(Conn::connect(addr).await);
    }
    // Client ids, for scripts that redirect invalidations.
    let mut ids = Vec::new();
    if script.iter().any(|s| matches!(s, Step::Redirect(..))) {
        for c in cs.iter_mut() {
            let reply = c.call_str(&["CLIENT", "ID"]).await;
            ids.push(reply.trim()[1..].parse::<u64>().expect("client id"));
        }
    }
    let mut out = Vec::new();
    let mut in_multi = vec![false; conns];
    for (i, step) in script.iter().enumerate() {
        eprintln!("{addr} step {i}");
        let redirected;
        let mut label = None;
        let step = match step {
            Step::Redirect(conn, target, options) => {
                let mut args: Vec<Vec<u8>> = ["CLIENT", "TRACKING", "ON", "REDIRECT"]
                    .iter()
                    .map(|a| a.as_bytes().to_vec())
                    .collect();
                args.push(ids[*target].to_string().into_bytes());
                args.extend(options.iter().cloned());
                label = Some(format!("CLIENT TRACKING ON REDIRECT <id {target}>"));
                redirected = Step::Cmd(*conn, args);
                &redirected
            }
            other => other,
        };
        match step {
            Step::Redirect(..) => unreachable!("turned into a command above"),
            Step::Cmd(conn, args) => {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
                let name = String::from_utf8_lossy(args[0]).to_ascii_uppercase();
                cs[*conn].send(&args).await;
                // A connection inside MULTI would queue the sync PING: read its one reply.
                let mut own = None;
                if in_multi[*conn] || name == "MULTI" {
                    let f = cs[*conn].frame().await.expect("reply");
                    if name == "MULTI" && f == b"+OK\r\n" {
                        in_multi[*conn] = true;
                    } else if matches!(name.as_str(), "EXEC" | "DISCARD" | "RESET") {
                        in_multi[*conn] = false;
                    }
                    own = Some(vec![f]);
                }
                // The connection that sent the command is synced first: once its reply is
                // in, what the command sent to others (messages, notifications, wake-ups) is
                // theirs ahead of any later command, as Redis promises; without that reply,
                // two connections' commands have no order (ours run on different threads).
                let me = step_conn(step);
                let mut received = vec![Vec::new(); cs.len()];
                for j in std::iter::once(me).chain((0..cs.len()).filter(|&j| j != me)) {
                    received[j] = match own.take_if(|_| j == me) {
                        Some(f) => f,
                        None if in_multi[j] => continue,
                        None => cs[j].sync().await,
                    };
                }
                for (j, frames) in received.into_iter().enumerate() {
                    if !frames.is_empty() {
                        let text: Vec<String> = frames
                            .iter()
                            .map(|f| {
                                String::from_utf8_lossy(f)
                                    .replace('\r', "\\r")
                                    .replace('\n', "\\n")
                            })
                            .collect();
                        let shown = label
                            .clone()
                            .unwrap_or_else(|| String::from_utf8_lossy(&args.join(&b' ')).into());
                        let line = format!("step {i} ({shown}) conn {j}: {}", text.join(" "));
                        let names_ids = line.contains("GETREDIR")
                            || line.contains("TRACKING")
                            || line.contains("tracking-redir-broken");
                        out.push(if names_ids {
                            hide_ids(&line, &ids)
                        } else {
                            line
                        });
                    }
                }
            }
            Step::Quiet(conn, args) => {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
                cs[*conn].call(&args).await;
            }
            Step::WaitGone(conn, key) => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                loop {
                    let r = cs[*conn].call(&[b"EXISTS", key]).await;
                    if r == b":0\r\n" {
                        break;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "key never expired");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Step::WaitUntil(conn, args, needle) => {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                loop {
                    let r = cs[*conn].call(&args).await;
                    if r.windows(needle.len()).any(|w| w == needle.as_slice()) {
                        break;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{} never came: {}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(&r)
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    out
}

/// Runs `script` against a fresh Reredis node and a fresh `redis-server` and asserts the
/// transcripts are identical.
pub async fn assert_same_as_redis(conns: usize, script: &[Step]) {
    let node = crate::common::start_node(&[]).await;
    let redis = RedisServer::start().await;
    compare(conns, script, node, redis).await;
}

/// [`assert_same_as_redis`] with cluster mode on at both ends: a lone Reredis node assigning
/// slots by hand (`cluster.auto-assign no`, exactly Redis's behaviour) and a `redis-server`
/// started with `--cluster-enabled yes`. Both start with no slots.
pub async fn assert_same_as_redis_cluster(conns: usize, script: &[Step]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = crate::common::start_node(&[
        ("cluster.enabled", "yes"),
        ("cluster.auto-assign", "no"),
        ("dir", dir.path().to_str().expect("utf-8 path")),
    ])
    .await;
    let redis = RedisServer::start_cluster(&[]).await;
    compare(conns, script, node, redis).await;
}

async fn compare(conns: usize, script: &[Step], node: reredis::NodeHandle, redis: RedisServer) {
    let ours = transcript(node.resp_addr(), conns, script).await;
    let theirs = transcript(redis.addr(), conns, script).await;
    assert_same_lines(&ours, &theirs);
    node.shutdown().await;
}

/// Two servers' observations, line for line: the first that differs is named.
pub fn assert_same_lines(ours: &[String], theirs: &[String]) {
    for (o, t) in ours.iter().zip(theirs.iter()) {
        assert_eq!(o, t, "\nreredis: {o}\nredis:   {t}");
    }
    assert_eq!(
        ours.len(),
        theirs.len(),
        "\nreredis: {ours:#?}\nredis: {theirs:#?}"
    );
}
