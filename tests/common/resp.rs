//! Raw RESP conversations: send a command, read exactly one reply (RESP2 or RESP3) as bytes.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, ToSocketAddrs};

pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one complete RESP2/RESP3 reply, returning its raw bytes.
pub async fn read_reply(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pending = 1usize;
    while pending > 0 {
        pending -= 1;
        let mut line = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_until(b'\n', &mut line))
            .await
            .expect("reply within 10s")
            .expect("read");
        assert!(n > 0, "connection closed mid-reply");
        out.extend_from_slice(&line);
        let body = std::str::from_utf8(&line[1..line.len() - 2]).unwrap_or("");
        match line[0] {
            b'$' | b'=' | b'!' => {
                let len: i64 = body.parse().expect("bulk length");
                if len >= 0 {
                    let mut data = vec![0u8; len as usize + 2];
                    r.read_exact(&mut data).await.expect("bulk body");
                    out.extend_from_slice(&data);
                }
            }
            b'*' | b'~' | b'>' => {
                let len: i64 = body.parse().expect("array length");
                if len > 0 {
                    pending += len as usize;
                }
            }
            b'%' | b'|' => {
                let len: i64 = body.parse().expect("map length");
                pending += 2 * len as usize;
            }
            _ => {}
        }
    }
    out
}

/// One connection, one reply per command.
pub struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    pub async fn open(addr: impl ToSocketAddrs) -> Conn {
        Conn {
            r: BufReader::new(TcpStream::connect(addr).await.expect("connect")),
        }
    }

    /// Sends a command without waiting for its reply.
    pub async fn send(&mut self, args: &[&[u8]]) {
        let owned: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        self.r
            .get_mut()
            .write_all(&encode(&owned))
            .await
            .expect("write");
    }

    /// Writes `bytes` as they are (a partial or malformed request).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // The peer may hang up part-way (that can be the point of the test).
        let _ = self.r.get_mut().write_all(bytes).await;
    }

    /// Sends several commands in one write (a pipeline), without waiting for replies.
    pub async fn send_many(&mut self, cmds: &[&[&[u8]]]) {
        let mut bytes = Vec::new();
        for args in cmds {
            let owned: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            bytes.extend(encode(&owned));
        }
        self.r.get_mut().write_all(&bytes).await.expect("write");
    }

    /// Reads the next reply.
    pub async fn reply(&mut self) -> Vec<u8> {
        read_reply(&mut self.r).await
    }

    pub async fn call(&mut self, args: &[Vec<u8>]) -> Vec<u8> {
        self.r
            .get_mut()
            .write_all(&encode(args))
            .await
            .expect("write");
        read_reply(&mut self.r).await
    }

    /// `call` with string arguments, the reply as text.
    pub async fn cmd(&mut self, args: &[&str]) -> String {
        let owned: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        String::from_utf8_lossy(&self.call(&owned).await).into_owned()
    }

    /// Whether the server closes the connection within `wait` (nothing more to read).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.r.fill_buf())
            .await
            .is_ok_and(|r| r.is_ok_and(|b| b.is_empty()))
    }

    /// Whether a reply arrives within `wait` (for checking that a client stays blocked).
    pub async fn has_reply_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.r.fill_buf())
            .await
            .is_ok_and(|r| r.is_ok_and(|b| !b.is_empty()))
    }
}
