//! The `/ws` feed's cost and latency, on a node started in-process:
//!
//! 1. SET throughput with 0, 1 and 100 feed subscribers (pattern `*`, each draining its
//!    socket): the feed's cost to the write path (goals: < 2% with one, < 10% with 100).
//! 2. Feed latency, p50/p99, from sending a SET to its event arriving on a subscriber, with
//!    writes paced at a fixed rate (goal: p99 < 5 ms at 50k writes/s).
//!
//! ```text
//! cargo run --release --example ws_bench -- [seconds=5] [clients=50] [pipeline=16] [rate=50000]
//! ```
//! Prints one line per measurement; compare runs on the same machine, never across machines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use reredis::config::{Config, Origin};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Args {
    seconds: u64,
    clients: usize,
    pipeline: usize,
    rate: u64,
}

fn args() -> Args {
    let v: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("numeric arguments: seconds clients pipeline rate")
        })
        .collect();
    Args {
        seconds: v.first().copied().unwrap_or(5),
        clients: v.get(1).copied().unwrap_or(50) as usize,
        pipeline: v.get(2).copied().unwrap_or(16) as usize,
        rate: v.get(3).copied().unwrap_or(50_000),
    }
}

async fn subscriber(http: std::net::SocketAddr, pattern: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .expect("ws connect");
    let sub = format!(r#"{{"op":"subscribe","pattern":"{pattern}"}}"#);
    ws.send(Message::Text(sub.into())).await.expect("subscribe");
    // The scan reply proves the subscription is in force (requests are handled in order).
    let sync = r#"{"op":"scan","match":"__sync__","count":1}"#;
    ws.send(Message::Text(sync.into())).await.expect("sync");
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m
            && t.as_str().contains(r#""type":"scan""#)
        {
            break;
        }
    }
    ws
}

/// Drains a subscriber until `stop`; returns (events, missed).
async fn drain(mut ws: Ws, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut events, mut missed) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), ws.next()).await
        else {
            continue;
        };
        // Cheap on the common path: the subscribers share the machine with the node.
        if t.as_str().starts_with(r#"{"type":"event""#) {
            events += 1;
        } else if t.as_str().contains(r#""type":"lagged""#) {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
            missed += v["missed"].as_u64().unwrap_or(0);
        }
    }
    (events, missed)
}

async fn set_throughput(node: &reredis::NodeHandle, a: &Args, subscribers: usize) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let mut drains = Vec::new();
    for _ in 0..subscribers {
        let ws = subscriber(node.http_addr(), "*").await;
        drains.push(tokio::spawn(drain(ws, stop.clone())));
    }
    let client = redis::Client::open(format!("redis://{}/", node.resp_addr())).expect("client");
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut writers = Vec::new();
    for c in 0..a.clients {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let (done, pipeline) = (done.clone(), a.pipeline);
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let mut p = redis::pipe();
                for _ in 0..pipeline {
                    p.set(format!("bench:{c}:{}", i % 10_000), i).ignore();
                    i += 1;
                }
                let _: () = p.query_async(&mut conn).await.expect("SET pipeline");
                done.fetch_add(pipeline as u64, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for w in writers {
        w.await.expect("writer");
    }
    let ops = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (mut events, mut missed) = (0, 0);
    for d in drains {
        let (e, m) = d.await.expect("drain");
        events += e;
        missed += m;
    }
    println!(
        "SET throughput, {subscribers:>3} subscribers: {ops:>10.0} ops/s \
         (feed delivered {events}, dropped {missed})"
    );
    ops
}

async fn feed_latency(node: &reredis::NodeHandle, a: &Args) {
    let total = (a.rate * a.seconds) as usize;
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let origin = Instant::now();
    let mut ws = subscriber(node.http_addr(), "lat:*").await;
    let reader = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut lat_us = Vec::with_capacity(total);
            let mut missed = 0u64;
            let end = Instant::now() + Duration::from_secs(straggler_wait_secs(total));
            while lat_us.len() as u64 + missed < total as u64 && Instant::now() < end {
                let Ok(Some(Ok(Message::Text(t)))) =
                    tokio::time::timeout(Duration::from_secs(1), ws.next()).await
                else {
                    continue;
                };
                let now = origin.elapsed().as_micros() as u64;
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                if v["type"] == "lagged" {
                    missed += v["missed"].as_u64().unwrap_or(0);
                    continue;
                }
                let Some(i) = v["key"]
                    .as_str()
                    .and_then(|k| k.strip_prefix("lat:"))
                    .and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                lat_us.push(now.saturating_sub(sent[i].load(Ordering::Relaxed)));
            }
            (lat_us, missed)
        })
    };
    let client = redis::Client::open(format!("redis://{}/", node.resp_addr())).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // Paced in 1 ms ticks: rate/1000 SETs per tick, pipelined.
    let per_tick = (a.rate / 1000).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0;
    while i < total {
        tick.tick().await;
        let mut p = redis::pipe();
        let n = per_tick.min(total - i);
        let now = origin.elapsed().as_micros() as u64;
        for j in i..i + n {
            sent[j].store(now, Ordering::Relaxed);
            p.set(format!("lat:{j}"), j).ignore();
        }
        let _: () = p.query_async(&mut conn).await.expect("SET pipeline");
        i += n;
    }
    let (mut lat, missed) = reader.await.expect("reader");
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "feed latency at {} writes/s: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms \
         ({} events, {} dropped)",
        a.rate,
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or(0) as f64 / 1000.0,
        lat.len(),
        missed
    );
}

/// How long the latency reader waits for stragglers: the run plus a margin.
fn straggler_wait_secs(total: usize) -> u64 {
    30 + (total / 10_000) as u64
}

#[tokio::main]
async fn main() {
    let a = args();
    let mut values = Config::ephemeral().values;
    values
        .set("http.max-ws-clients", "1000", Origin::Default)
        .expect("setting");
    let node = reredis::start(Config::from_values(values))
        .await
        .expect("node starts");
    let base = set_throughput(&node, &a, 0).await;
    for subs in [1, 100] {
        let ops = set_throughput(&node, &a, subs).await;
        println!("    cost vs no feed: {:.1}%", (1.0 - ops / base) * 100.0);
    }
    feed_latency(&node, &a).await;
    node.shutdown().await;
}
