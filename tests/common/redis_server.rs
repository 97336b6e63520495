//! A real `redis-server` (Debian's package) on a free port, for differential tests.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `redis-server` of our own on a free port, killed (by its own handle) when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    /// Where a cluster-mode server keeps its nodes.conf.
    _dir: Option<tempfile::TempDir>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        Self::start_with(&[], None).await
    }

    /// A server in cluster mode, with its nodes.conf in a directory of its own, on a port whose
    /// bus port (port + 10000) is free too; `extra` adds settings (`--cluster-node-timeout`...).
    pub async fn start_cluster(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf-8 path").to_string();
        let port = super::process::free_port_with_bus(&[std::net::Ipv4Addr::LOCALHOST]);
        let mut args = vec!["--cluster-enabled", "yes", "--dir", &path];
        args.extend_from_slice(extra);
        Self::start_on(port, &args, Some(dir)).await
    }

    pub async fn start_with(extra: &[&str], dir: Option<tempfile::TempDir>) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port, extra, dir).await
    }

    async fn start_on(port: u16, extra: &[&str], dir: Option<tempfile::TempDir>) -> RedisServer {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // Ready once it answers (it accepts connections before it can serve them).
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                let _ = s.write_all(b"PING\r\n").await;
                let mut b = [0u8; 16];
                if let Ok(n) = s.read(&mut b).await
                    && &b[..n] == b"+PONG\r\n"
                {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }
}

impl RedisServer {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends `sig` (`-STOP`, `-CONT`) to the server's process.
    #[allow(dead_code)]
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
