//! The web UI as a browser first meets it: a real node's HTTP port answers `/` and client-side
//! routes with a page that is never empty, and the probes still answer beside it.

mod common;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn every_node_serves_a_page_at_the_root_and_at_client_routes() {
    let node = common::start_node(&[]).await;
    for path in ["/", "/keys?match=user:*", "/cluster"] {
        let (status, head, body) = get(node.http_addr(), path).await;
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("content-type: text/html"), "{path}: {head}");
        // Either the app, or the page that says how to build it: never a blank one.
        assert!(
            body.contains("id=\"root\"") || body.contains("npm ci"),
            "{path}: {body}"
        );
    }
    let (status, _, body) = get(node.http_addr(), "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, _, _) = get(node.http_addr(), "/api/v1/no-such-endpoint").await;
    assert_eq!(status, 404);
}
