//! `reredis healthcheck`: probes this node's `/healthz` and exits 0 when it answers 200.
//!
//! Container images without curl or wget (the Dockerfile's distroless runtime) use it as their
//! `HEALTHCHECK`. It reads the same configuration as the server (flags after `healthcheck`,
//! `REREDIS_*`, `--config`), so the probe follows the node's `http-port` and `bind` with nothing
//! repeated.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{self, LoadError};

const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the probe: `args` are the command line without the `healthcheck` word.
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    env: impl IntoIterator<Item = (String, String)>,
) -> ExitCode {
    let config = match cli::load(args, env) {
        Ok(l) => l.config,
        Err(LoadError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("reredis healthcheck: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = SocketAddr::new(probe_ip(&config.bind), config.http_port);
    match probe(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("reredis healthcheck: http://{addr}/healthz: {why}");
            ExitCode::from(1)
        }
    }
}

/// The address to reach a listener bound to `bind`: loopback for the wildcard addresses.
fn probe_ip(bind: &str) -> IpAddr {
    match bind.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() && ip.is_ipv6() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

fn probe(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    // The status line is all we need; a short read bound keeps a misbehaving peer harmless.
    let mut head = Vec::with_capacity(64);
    stream
        .take(64)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    let status = String::from_utf8_lossy(&head);
    let status = status.lines().next().unwrap_or_default();
    if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!("answered {status:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_probed_on_loopback() {
        assert_eq!(probe_ip("0.0.0.0"), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(probe_ip("::"), IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            probe_ip("127.0.0.7"),
            "127.0.0.7".parse::<IpAddr>().unwrap()
        );
    }
}
