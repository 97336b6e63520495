//! Helpers shared by the integration tests: start a node in-process on free ports, and talk to
//! any RESP server with raw bytes.
#![allow(dead_code)]

pub mod cluster_keys;
pub mod cluster_node;
pub mod process;
pub mod redis_server;
pub mod resp;
pub mod session;

use std::net::SocketAddr;
use std::time::Duration;

use reredis::NodeHandle;
use reredis::config::{Config, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A node on 127.0.0.1 with both ports picked by the OS, plus any settings given.
pub async fn start_node(settings: &[(&str, &str)]) -> NodeHandle {
    let mut c = Config::ephemeral();
    let mut v = c.values.clone();
    for (k, val) in settings {
        v.set(k, val, Origin::Default).expect("valid test setting");
    }
    c = Config::from_values(v);
    reredis::start(c).await.expect("node starts")
}

/// [`start_node`], returning once the node has loaded its data (snapshot and log).
pub async fn start_loaded(settings: &[(&str, &str)]) -> NodeHandle {
    let h = start_node(settings).await;
    let ready = &h.node.ready;
    assert!(
        wait_for(Duration::from_secs(30), async || ready
            .load(std::sync::atomic::Ordering::Acquire))
        .await,
        "the node loaded its data"
    );
    h
}

/// A multiplexed connection with no response timeout: for commands that wait (blocking reads,
/// long scripts).
pub async fn connect_waiting(addr: SocketAddr) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    client(addr)
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

pub fn client(addr: SocketAddr) -> redis::Client {
    redis::Client::open(format!("redis://{addr}/")).expect("client")
}

/// A raw connection that sends bytes and reads replies up to a marker.
pub struct Raw {
    pub stream: TcpStream,
}

const MARK: &str = "__end_of_replies__";

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect"),
        }
    }

    /// Sends `input`, then an ECHO of a marker, and returns every byte replied before the
    /// marker's reply.
    pub async fn send(&mut self, input: &[u8]) -> Vec<u8> {
        let mut wire = input.to_vec();
        wire.extend_from_slice(
            format!("*2\r\n$4\r\nECHO\r\n${}\r\n{MARK}\r\n", MARK.len()).as_bytes(),
        );
        self.stream.write_all(&wire).await.expect("write");
        let tail = format!("${}\r\n{MARK}\r\n", MARK.len());
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if got.ends_with(tail.as_bytes()) {
                got.truncate(got.len() - tail.len());
                return got;
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .expect("reply before deadline")
                .expect("read");
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends `input` and reads until the server closes the connection.
    pub async fn send_until_close(&mut self, input: &[u8]) -> Vec<u8> {
        self.stream.write_all(input).await.expect("write");
        let mut got = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_to_end(&mut got)).await;
        got
    }
}

/// Encodes a command as a RESP multibulk.
pub fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn wait_for(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
