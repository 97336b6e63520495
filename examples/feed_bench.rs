//! The `/ws` live feed under load, against a running node (`scripts/bench.sh` drives it).
//!
//! Two modes:
//!
//! - `subscribe`: opens N WebSocket clients on the node's `/ws`, subscribes each to a pattern,
//!   waits for every `subscribed` confirmation, then creates the `--ready` file and reads events
//!   until the `--stop` file appears (or `--max-secs` pass). Meanwhile the script measures SET
//!   throughput with `redis-benchmark`; at the end one line gives what the subscribers received:
//!   `feed_subscribers clients=100 events=... lagged=... missed=... closed=0 cpu_s=... secs=...`.
//! - `latency`: one subscriber on `feedlat:*`, then SETs of `feedlat:<i>` at a fixed rate over a
//!   few RESP connections. Each SET's reply and its event are timed on the same clock, and the
//!   line `feed_latency ... p50_ms=... p99_ms=...` gives the distribution of (event arrival −
//!   reply arrival). Negative values (the event came before the reply) are kept as they are and
//!   counted in `before_reply`.
//!
//! Every wait is bounded: the tool always stops by itself.
//!
//! ```text
//! cargo build --release --example feed_bench
//! feed_bench subscribe --http 127.0.0.1:8080 --clients 100 --pattern 'key:*' \
//!     --ready /tmp/ready --stop /tmp/stop --max-secs 600
//! feed_bench latency --resp 127.0.0.1:6379 --http 127.0.0.1:8080 --rate 50000 \
//!     --count 500000 --conns 4 --max-secs 60
//! ```

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Arg, ArgMatches, Command, value_parser};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one client may take to connect and have its subscription confirmed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the stop file is looked for.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Key prefix of the latency mode: distinct from redis-benchmark's `key:*`.
const LAT_PREFIX: &str = "feedlat:";
/// After the last reply, how long the latency mode waits for events still on their way.
const EVENT_GRACE: Duration = Duration::from_secs(2);

fn cli() -> Command {
    let http = Arg::new("http")
        .long("http")
        .required(true)
        .value_parser(value_parser!(SocketAddr))
        .help("the node's HTTP address (its /ws)");
    let max_secs = Arg::new("max-secs")
        .long("max-secs")
        .default_value("600")
        .value_parser(value_parser!(u64).range(1..))
        .help("stop after this many seconds whatever happens");
    Command::new("feed_bench")
        .about("The /ws live feed under load: subscribers for a SET benchmark, or feed latency")
        .subcommand_required(true)
        .subcommand(
            Command::new("subscribe")
                .about("N subscribers reading events until the stop file appears")
                .arg(http.clone())
                .arg(
                    Arg::new("clients")
                        .long("clients")
                        .default_value("1")
                        .value_parser(value_parser!(usize)),
                )
                .arg(Arg::new("pattern").long("pattern").default_value("*"))
                .arg(
                    Arg::new("ready")
                        .long("ready")
                        .required(true)
                        .value_parser(value_parser!(PathBuf))
                        .help("created once every subscription is confirmed"),
                )
                .arg(
                    Arg::new("stop")
                        .long("stop")
                        .required(true)
                        .value_parser(value_parser!(PathBuf))
                        .help("the subscribers stop when this file appears"),
                )
                .arg(max_secs.clone()),
        )
        .subcommand(
            Command::new("latency")
                .about("SETs at a fixed rate; time from each reply to its /ws event")
                .arg(http)
                .arg(
                    Arg::new("resp")
                        .long("resp")
                        .required(true)
                        .value_parser(value_parser!(SocketAddr))
                        .help("the node's RESP address"),
                )
                .arg(
                    Arg::new("rate")
                        .long("rate")
                        .default_value("50000")
                        .value_parser(value_parser!(u64).range(1..))
                        .help("target SETs per second, over all connections"),
                )
                .arg(
                    Arg::new("count")
                        .long("count")
                        .default_value("500000")
                        .value_parser(value_parser!(usize))
                        .help("SETs to send"),
                )
                .arg(
                    Arg::new("conns")
                        .long("conns")
                        .default_value("4")
                        .value_parser(value_parser!(u64).range(1..))
                        .help("RESP connections the SETs are spread over"),
                )
                .arg(max_secs),
        )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match cli().get_matches().subcommand() {
        Some(("subscribe", m)) => subscribe(m).await,
        Some(("latency", m)) => latency(m).await,
        _ => unreachable!("clap requires a subcommand"),
    }
}

fn arg<T: Clone + Send + Sync + 'static>(m: &ArgMatches, name: &str) -> T {
    m.get_one::<T>(name)
        .cloned()
        .unwrap_or_else(|| unreachable!("--{name} is required or has a default"))
}

/// The server's messages, as far as this tool reads them.
#[derive(Deserialize)]
struct ServerMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    missed: Option<u64>,
}

/// Connects to `/ws` and subscribes to `pattern`; returns once the server has confirmed it.
async fn subscriber(http: SocketAddr, pattern: &str) -> anyhow::Result<Ws> {
    let confirmed = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
            .await
            .with_context(|| format!("connecting to ws://{http}/ws"))?;
        let sub = serde_json::json!({"op": "subscribe", "pattern": pattern}).to_string();
        ws.send(Message::Text(sub.into())).await?;
        while let Some(msg) = ws.next().await {
            let Message::Text(t) = msg? else { continue };
            let m: ServerMessage = serde_json::from_str(t.as_str())
                .with_context(|| format!("unexpected message {t}"))?;
            match &*m.kind {
                "subscribed" => return Ok(ws),
                "error" => bail!("subscribe refused: {t}"),
                _ => {}
            }
        }
        bail!("the server closed the socket before confirming the subscription")
    };
    tokio::time::timeout(SUBSCRIBE_TIMEOUT, confirmed)
        .await
        .context("no `subscribed` confirmation in time")?
}

/// What one subscriber received.
#[derive(Default)]
struct Received {
    events: u64,
    /// `lagged` messages, and the events they say were dropped.
    lagged: u64,
    missed: u64,
    /// The server closed the socket before the end.
    closed: bool,
}

/// Reads events until `stop`; cheap per event, since the subscribers share the machine with
/// the node they measure.
async fn drain(mut ws: Ws, stop: CancellationToken) -> Received {
    let mut r = Received::default();
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            msg = ws.next() => msg,
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                if t.as_str().starts_with(r#"{"type":"event""#) {
                    r.events += 1;
                } else if let Ok(m) = serde_json::from_str::<ServerMessage>(t.as_str())
                    && m.kind == "lagged"
                {
                    r.lagged += 1;
                    r.missed += m.missed.unwrap_or(0);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                r.closed = true;
                break;
            }
        }
    }
    r
}

async fn subscribe(m: &ArgMatches) -> anyhow::Result<()> {
    let started = Instant::now();
    let http: SocketAddr = arg(m, "http");
    let clients: usize = arg(m, "clients");
    let pattern: String = arg(m, "pattern");
    let ready: PathBuf = arg(m, "ready");
    let stop_file: PathBuf = arg(m, "stop");
    let deadline = started + Duration::from_secs(arg(m, "max-secs"));

    let stop = CancellationToken::new();
    let mut readers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let ws = subscriber(http, &pattern).await?;
        readers.push(tokio::spawn(drain(ws, stop.clone())));
    }
    std::fs::write(&ready, clients.to_string())
        .with_context(|| format!("writing {}", ready.display()))?;
    let cpu_before = cpu_seconds();
    let measured = Instant::now();

    wait_for_file(&stop_file, deadline).await;
    stop.cancel();
    let mut total = Received::default();
    let mut closed = 0;
    for r in readers {
        let r = r.await?;
        total.events += r.events;
        total.lagged += r.lagged;
        total.missed += r.missed;
        closed += usize::from(r.closed);
    }
    println!(
        "feed_subscribers clients={clients} events={} lagged={} missed={} closed={closed} \
         cpu_s={:.2} secs={:.2}",
        total.events,
        total.lagged,
        total.missed,
        cpu_seconds() - cpu_before,
        measured.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Returns when `path` exists or at `deadline`.
async fn wait_for_file(path: &Path, deadline: Instant) {
    while Instant::now() < deadline && !path.exists() {
        tokio::time::sleep(STOP_POLL).await;
    }
}

/// CPU time (user + system, all threads) this process has used, from `/proc/self/stat`
/// (Linux; clock ticks of 1/100 s, the value every Linux x86 and arm build uses). 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name, field 2, may hold spaces: count fields after its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// Microseconds since `origin`, plus one so that 0 can mean "not yet".
fn stamp(origin: Instant) -> u64 {
    origin.elapsed().as_micros() as u64 + 1
}

/// One SET per index, its reply and its event timed on one clock.
struct Timings {
    origin: Instant,
    replies: Vec<AtomicU64>,
    events: Vec<AtomicU64>,
    /// Events the subscriber was told it missed (`lagged`).
    missed: AtomicU64,
}

async fn latency(m: &ArgMatches) -> anyhow::Result<()> {
    let http: SocketAddr = arg(m, "http");
    let resp: SocketAddr = arg(m, "resp");
    let rate: u64 = arg(m, "rate");
    let count: usize = arg(m, "count");
    let conns = arg::<u64>(m, "conns") as usize;
    let origin = Instant::now();
    let deadline = origin + Duration::from_secs(arg(m, "max-secs"));

    let t = Arc::new(Timings {
        origin,
        replies: (0..count).map(|_| AtomicU64::new(0)).collect(),
        events: (0..count).map(|_| AtomicU64::new(0)).collect(),
        missed: AtomicU64::new(0),
    });
    let ws = subscriber(http, &format!("{LAT_PREFIX}*")).await?;
    let stop = CancellationToken::new();
    let feed = tokio::spawn(read_feed(ws, t.clone(), stop.clone()));

    // Connection c sends the SETs of indices c, c + conns, c + 2 * conns, ...
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = TcpStream::connect(resp)
            .await
            .with_context(|| format!("connecting to {resp}"))?;
        s.set_nodelay(true)?;
        streams.push(s);
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(2 * conns);
    for (c, s) in streams.into_iter().enumerate() {
        let (rd, wr) = s.into_split();
        let mine: Vec<usize> = (c..count).step_by(conns).collect();
        let mine = Arc::new(mine);
        let conn_rate = rate as f64 / conns as f64;
        tasks.push(tokio::spawn(send_sets(
            wr,
            mine.clone(),
            conn_rate,
            start,
            deadline,
        )));
        tasks.push(tokio::spawn(read_replies(rd, mine, t.clone(), deadline)));
    }
    let mut sent = 0u64;
    let mut errors = 0u64;
    for (i, task) in tasks.into_iter().enumerate() {
        let n = task.await??;
        if i % 2 == 0 {
            sent += n;
        } else {
            errors += n;
        }
    }
    let replies_at: Vec<u64> = t
        .replies
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    let replied = replies_at.iter().filter(|&&r| r > 0).count();
    let last_reply = replies_at.iter().copied().max().unwrap_or(0);
    let first_send = start.duration_since(origin).as_micros() as f64;
    let achieved = replied as f64 / ((last_reply as f64 - first_send).max(1.0) / 1e6);

    // Events still in flight: wait until each replied SET has its event or was reported
    // missed, or until nothing arrived for a while.
    let mut last_seen = (0, Instant::now());
    loop {
        let seen = t
            .events
            .iter()
            .filter(|a| a.load(Ordering::Relaxed) > 0)
            .count();
        let now = Instant::now();
        if seen != last_seen.0 {
            last_seen = (seen, now);
        }
        let missed = t.missed.load(Ordering::Relaxed) as usize;
        if seen + missed >= replied || now >= deadline || now - last_seen.1 >= EVENT_GRACE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let (lagged, closed) = feed.await?;
    let missed = t.missed.load(Ordering::Relaxed);

    let mut deltas: Vec<i64> = t
        .events
        .iter()
        .zip(&replies_at)
        .filter(|&(e, &r)| r > 0 && e.load(Ordering::Relaxed) > 0)
        .map(|(e, &r)| e.load(Ordering::Relaxed) as i64 - r as i64)
        .collect();
    deltas.sort_unstable();
    let pct = |p: f64| -> f64 {
        if deltas.is_empty() {
            return f64::NAN;
        }
        let i = ((deltas.len() as f64 * p).ceil() as usize).clamp(1, deltas.len()) - 1;
        deltas[i] as f64 / 1000.0
    };
    let before_reply = deltas.iter().filter(|&&d| d < 0).count();
    println!(
        "feed_latency target_rate={rate} achieved_rate={achieved:.0} sent={sent} replies={replied} \
         errors={errors} events={} lagged={lagged} missed={missed} closed={closed} \
         before_reply={before_reply} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} conns={conns}",
        deltas.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}

/// Times each `feedlat:<i>` event; returns (`lagged` messages, closed early).
async fn read_feed(mut ws: Ws, t: Arc<Timings>, stop: CancellationToken) -> (u64, bool) {
    let mut lagged = 0;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            msg = ws.next() => msg,
        };
        let now = stamp(t.origin);
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return (lagged, true),
        };
        let Ok(m) = serde_json::from_str::<ServerMessage>(text.as_str()) else {
            continue;
        };
        match &*m.kind {
            "event" => {
                if let Some(i) = m
                    .key
                    .as_deref()
                    .and_then(|k| k.strip_prefix(LAT_PREFIX))
                    .and_then(|i| i.parse::<usize>().ok())
                    && let Some(slot) = t.events.get(i)
                {
                    // The first event of the key: each is set once.
                    let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
                }
            }
            "lagged" => {
                lagged += 1;
                t.missed.fetch_add(m.missed.unwrap_or(0), Ordering::Relaxed);
            }
            _ => {}
        }
    }
    (lagged, false)
}

/// Sends `SET feedlat:<i> <i>` for each of `mine` at `rate` per second from `start`, in
/// batches of what is due (one write per batch). Returns the SETs sent.
async fn send_sets(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mine: Arc<Vec<usize>>,
    rate: f64,
    start: Instant,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut buf = Vec::new();
    let mut sent = 0;
    while sent < mine.len() && Instant::now() < deadline {
        let due = ((start.elapsed().as_secs_f64() * rate) as usize).min(mine.len());
        if due <= sent {
            tokio::time::sleep(Duration::from_micros(500)).await;
            continue;
        }
        buf.clear();
        for &i in &mine[sent..due] {
            let key = format!("{LAT_PREFIX}{i}");
            let val = i.to_string();
            buf.extend_from_slice(
                format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{val}\r\n",
                    key.len(),
                    val.len()
                )
                .as_bytes(),
            );
        }
        wr.write_all(&buf).await?;
        sent = due;
    }
    Ok(sent as u64)
}

/// Reads the SET replies of one connection, in order, timing each by the read it came in.
/// Returns the error replies seen.
async fn read_replies(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mine: Arc<Vec<usize>>,
    t: Arc<Timings>,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut next, mut errors, mut line_start) = (0, 0, true);
    while next < mine.len() {
        let n = match tokio::time::timeout_at(deadline.into(), rd.read(&mut buf)).await {
            Err(_) => break,
            Ok(r) => r?,
        };
        if n == 0 {
            bail!("the server closed a RESP connection");
        }
        let now = stamp(t.origin);
        // A SET answers with one line, `+OK` or an error: count lines.
        for &b in &buf[..n] {
            if line_start && b == b'-' {
                errors += 1;
            }
            line_start = b == b'\n';
            if line_start && let Some(&i) = mine.get(next) {
                t.replies[i].store(now, Ordering::Relaxed);
                next += 1;
            }
        }
    }
    Ok(errors)
}
