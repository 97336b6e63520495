//! Commands for the HTTP surface: an internal client, registered in the client registry like a
//! RESP connection, that runs commands through [`commands::call`] (so they produce the same key
//! events, command statistics, slow log and MONITOR lines), and a decoder for their RESP2 replies.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::error::ApiError;
use crate::commands;
use crate::node::Node;
use crate::server::clients::ClientState;

/// A decoded RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Bytes>),
    Array(Option<Vec<Frame>>),
}

impl Frame {
    pub fn int(&self) -> Result<i64, ApiError> {
        match self {
            Frame::Int(n) => Ok(*n),
            other => Err(unexpected(other)),
        }
    }

    /// A bulk or simple string's bytes.
    pub fn bytes(&self) -> Result<Bytes, ApiError> {
        match self {
            Frame::Bulk(Some(b)) => Ok(b.clone()),
            Frame::Simple(s) => Ok(Bytes::copy_from_slice(s.as_bytes())),
            other => Err(unexpected(other)),
        }
    }

    /// An array of bulk strings.
    pub fn bulks(&self) -> Result<Vec<Bytes>, ApiError> {
        match self {
            Frame::Array(Some(items)) => items.iter().map(Frame::bytes).collect(),
            Frame::Array(None) => Ok(Vec::new()),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(f: &Frame) -> ApiError {
    ApiError::internal(format!("unexpected reply from a command: {f:?}"))
}

/// One internal client for the duration of an HTTP request or a `/ws` operation. It appears in
/// `CLIENT LIST` (named `http`) while it lives.
pub struct Session {
    node: Arc<Node>,
    client: ClientState,
    out: BytesMut,
}

impl Session {
    pub fn open(node: &Arc<Node>, peer: SocketAddr) -> Result<Session, ApiError> {
        // Internal clients do not count against `maxclients`: an operator's UI must keep working
        // when RESP clients fill the node.
        let info = node
            .clients
            .register(peer, node.http_addr, usize::MAX, commands::now_ms())
            .ok_or_else(|| ApiError::unavailable("the client registry is full"))?;
        *info.name.lock() = Some(Bytes::from_static(b"http"));
        // Authenticated, and not subject to ACL users: the HTTP surface has its own gate
        // (http.allow-writes, http.token); `requirepass` and ACL guard RESP.
        let mut client = ClientState::new(info, true);
        client.acl_exempt = true;
        Ok(Session {
            node: node.clone(),
            client,
            out: BytesMut::with_capacity(1024),
        })
    }

    /// Reads of keys may be served by this node when it is a replica (READONLY).
    pub fn read_from_replica(&mut self) {
        self.client.readonly = true;
    }

    /// Runs one command and returns its reply, error replies included.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Frame, ApiError> {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        self.call_owned(&args)
    }

    fn call_owned(&mut self, args: &[Bytes]) -> Result<Frame, ApiError> {
        // A script still running after `wait_unpaused` gave it its time: refused, not waited
        // for on a runtime thread.
        if self.node.scripts.is_running() {
            return Err(ApiError::unavailable(self.node.scripts.busy_error()));
        }
        self.out.clear();
        if commands::call(&self.node, &mut self.client, &mut self.out, args)
            == commands::After::ScriptBusy
        {
            return Err(ApiError::unavailable(self.node.scripts.busy_error()));
        }
        match decode(&self.out) {
            Some((frame, used)) if used == self.out.len() => Ok(frame),
            _ => Err(ApiError::internal("undecodable reply from a command")),
        }
    }

    /// Runs one command; an error reply becomes an [`ApiError`].
    pub fn run(&mut self, args: &[&[u8]]) -> Result<Frame, ApiError> {
        match self.call(args)? {
            Frame::Error(e) => Err(ApiError::from_redis(&e)),
            f => Ok(f),
        }
    }

    /// Resolves once the append-only log acknowledged this session's writes (as a RESP
    /// connection's replies wait for it). Take it, drop the session, then await it.
    pub fn logged(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let node = self.node.clone();
        let seq = self.client.aof_seq;
        async move { node.store.aof.wait_acked(seq).await }
    }

    /// Runs `cmds` in MULTI/EXEC, so no other client sees them half done; the first error
    /// reply (when queueing or running) becomes an [`ApiError`].
    pub fn transaction(&mut self, cmds: &[Vec<Bytes>]) -> Result<Vec<Frame>, ApiError> {
        self.run(&[b"MULTI"])?;
        for c in cmds {
            if let Frame::Error(e) = self.call_owned(c)? {
                let _ = self.call(&[b"DISCARD"]);
                return Err(ApiError::from_redis(&e));
            }
        }
        let replies = match self.run(&[b"EXEC"])? {
            Frame::Array(Some(r)) => r,
            other => return Err(unexpected(&other)),
        };
        if let Some(Frame::Error(e)) = replies.iter().find(|f| matches!(f, Frame::Error(_))) {
            return Err(ApiError::from_redis(e));
        }
        Ok(replies)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.node.clients.unregister(self.client.info.id);
    }
}

/// Waits out a `CLIENT PAUSE` as a RESP client would (a `WRITE` pause holds writes only), and
/// a running script (up to the time Redis gives it before `-BUSY`), before an HTTP request runs
/// its commands.
pub async fn wait_unpaused(node: &Node, is_write: bool) {
    node.scripts.wait_until_idle().await;
    while let Some(until) = node.pause.deadline(is_write, commands::now_ms()) {
        let wait = (until - commands::now_ms()).clamp(0, 100) as u64;
        tokio::select! {
            _ = node.pause.unpaused.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
            _ = node.shutdown.cancelled() => return,
        }
    }
}

/// Whether the command table has `name` (types arrive one family at a time).
pub fn has_command(name: &str) -> bool {
    commands::table().lookup(name.as_bytes()).is_some()
}

/// Decodes one RESP2 reply at the front of `buf`: the frame and the bytes it used.
pub(crate) fn decode(buf: &[u8]) -> Option<(Frame, usize)> {
    let end = memchr::memchr(b'\n', buf)?;
    if end < 1 || buf[end - 1] != b'\r' {
        return None;
    }
    let line = std::str::from_utf8(&buf[1..end - 1]).ok()?;
    let next = end + 1;
    match *buf.first()? {
        b'+' => Some((Frame::Simple(line.to_string()), next)),
        b'-' => Some((Frame::Error(line.to_string()), next)),
        b':' => Some((Frame::Int(line.parse().ok()?), next)),
        b'$' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some((Frame::Bulk(None), next));
            }
            let n = n as usize;
            let data = buf.get(next..next + n)?;
            Some((
                Frame::Bulk(Some(Bytes::copy_from_slice(data))),
                next + n + 2,
            ))
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some((Frame::Array(None), next));
            }
            let mut items = Vec::with_capacity((n as usize).min(4096));
            let mut pos = next;
            for _ in 0..n {
                let (f, used) = decode(buf.get(pos..)?)?;
                items.push(f);
                pos += used;
            }
            Some((Frame::Array(Some(items)), pos))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_replies() {
        let wire = b"*3\r\n$3\r\nfoo\r\n:-2\r\n*2\r\n$-1\r\n+OK\r\n";
        let (f, used) = decode(wire).unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(
            f,
            Frame::Array(Some(vec![
                Frame::Bulk(Some(Bytes::from_static(b"foo"))),
                Frame::Int(-2),
                Frame::Array(Some(vec![Frame::Bulk(None), Frame::Simple("OK".into())])),
            ]))
        );
        assert_eq!(decode(b"$5\r\nab"), None);
        assert_eq!(
            decode(b"-ERR x\r\n").unwrap().0,
            Frame::Error("ERR x".into())
        );
    }
}
