//! A SET load through the `redis` crate's async cluster client, for `scripts/bench.sh`'s slot
//! move: what a writing application sees while slots and their keys move between nodes.
//!
//! `--tasks` writers share one cluster connection; each SETs random keys of the bench's key space
//! (`key:0` .. `key:<keys - 1>`, 16-byte values), one request at a time. The client follows
//! `-MOVED` and `-ASK` itself, as an application's would, against Reredis and redis-server alike;
//! a request it cannot complete comes back as an error and is counted. The load starts once
//! connected (then `--ready-file` is written) and stops when `--stop-file` appears,
//! `--max-seconds` have passed or `--max-requests` were sent, whichever comes first.
//!
//! ```text
//! cargo build --release --example cluster_load
//! cluster_load --node 127.0.0.1:7000 --keys 1000000 [--tasks 20] [--ready-file F]
//!              [--stop-file F] [--max-seconds 600] [--max-requests 20000000] [--seed 1]
//!              [--timeline]
//! ```
//! Prints `rps p99_ms errors` on one line: successful SETs per second, the 99th percentile of
//! every request's latency in ms (redirections and retries included: the caller waited for them),
//! and the requests that ended in an error. A summary with the errors by kind goes to stderr.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Arg, Command, value_parser};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use redis::cluster_async::ClusterConnection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// 16 bytes, like the values bench.sh loads.
const VALUE: &str = "vvvvvvvvvvvvvvvv";
/// How often the stop file is looked for.
const STOP_POLL: Duration = Duration::from_millis(20);
/// One attempt at a node, and one request with all its redirections and retries.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// After the stop, how long a request in flight may still take before it is abandoned (and
/// counted as an error). Longer than `REQUEST_TIMEOUT`, so in practice none is.
const DRAIN: Duration = Duration::from_secs(35);

struct Args {
    node: String,
    keys: u64,
    tasks: u64,
    ready_file: Option<PathBuf>,
    stop_file: Option<PathBuf>,
    max_seconds: u64,
    max_requests: u64,
    seed: u64,
    timeline: bool,
}

fn args() -> Args {
    let number = |name: &'static str, default: Option<&'static str>, help: &'static str| {
        let arg = Arg::new(name)
            .long(name)
            .value_parser(value_parser!(u64).range(1..))
            .help(help);
        match default {
            Some(d) => arg.default_value(d),
            None => arg.required(true),
        }
    };
    let m = Command::new("cluster_load")
        .about("SET load through a cluster client; prints `rps p99_ms errors`")
        .arg(
            Arg::new("node")
                .long("node")
                .required(true)
                .help("host:port of any node of the cluster"),
        )
        .arg(number("keys", None, "keys are key:0 .. key:<keys - 1>"))
        .arg(number("tasks", Some("20"), "concurrent writers"))
        .arg(
            Arg::new("ready-file")
                .long("ready-file")
                .value_parser(value_parser!(PathBuf))
                .help("written once connected, when the load starts"),
        )
        .arg(
            Arg::new("stop-file")
                .long("stop-file")
                .value_parser(value_parser!(PathBuf))
                .help("the load stops when this file appears"),
        )
        .arg(number(
            "max-seconds",
            Some("600"),
            "the load stops after this",
        ))
        .arg(number(
            "max-requests",
            Some("20000000"),
            "the load stops after this many",
        ))
        .arg(
            Arg::new("timeline")
                .long("timeline")
                .action(clap::ArgAction::SetTrue)
                .help("also print, per 250 ms of the run, the requests started, their p99 and max"),
        )
        .arg(number(
            "seed",
            Some("1"),
            "writer i draws its keys from seed + i",
        ))
        .get_matches();
    let n = |name: &str| {
        *m.get_one::<u64>(name)
            .expect("has a default or is required")
    };
    Args {
        node: m.get_one::<String>("node").expect("required").clone(),
        keys: n("keys"),
        tasks: n("tasks"),
        ready_file: m.get_one::<PathBuf>("ready-file").cloned(),
        stop_file: m.get_one::<PathBuf>("stop-file").cloned(),
        max_seconds: n("max-seconds"),
        max_requests: n("max-requests"),
        seed: n("seed"),
        timeline: m.get_flag("timeline"),
    }
}

/// What one writer saw.
#[derive(Default)]
struct Tally {
    /// Every request's latency, errors included, in microseconds.
    latencies_us: Vec<u32>,
    /// When each request started, in ms from the start of the run (same order as latencies).
    started_ms: Vec<u32>,
    ok: u64,
    /// Error count and one example message, by the error's code (`MOVED`, `TRYAGAIN`, ...) or kind.
    errors: BTreeMap<String, (u64, String)>,
    last_reply: Option<Instant>,
}

impl Tally {
    fn error(&mut self, kind: String, message: String) {
        self.errors.entry(kind).or_insert((0, message)).0 += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.started_ms.extend(other.started_ms);
        self.ok += other.ok;
        for (kind, (count, message)) in other.errors {
            self.errors.entry(kind).or_insert((0, message)).0 += count;
        }
        self.last_reply = self.last_reply.max(other.last_reply);
    }

    fn error_count(&self) -> u64 {
        self.errors.values().map(|(count, _)| count).sum()
    }
}

/// SETs random keys until `stop`, or until `sent` reaches `max_requests`.
async fn writer(
    run_started: Instant,
    mut conn: ClusterConnection,
    keys: u64,
    seed: u64,
    sent: Arc<AtomicU64>,
    max_requests: u64,
    stop: CancellationToken,
) -> Tally {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut key = String::with_capacity(24);
    let abandon = async {
        stop.cancelled().await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::pin!(abandon);
    while !stop.is_cancelled() && sent.fetch_add(1, Ordering::Relaxed) < max_requests {
        key.clear();
        let _ = write!(key, "key:{}", rng.random_range(0..keys));
        let started = Instant::now();
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(VALUE);
        let reply = tokio::select! {
            reply = set.query_async::<()>(&mut conn) => reply,
            () = &mut abandon => {
                let why = format!("no reply to SET {key} {DRAIN:?} after the stop");
                tally.error("abandoned".into(), why);
                break;
            }
        };
        let now = Instant::now();
        let us = u32::try_from(now.duration_since(started).as_micros()).unwrap_or(u32::MAX);
        tally.latencies_us.push(us);
        let at = started.duration_since(run_started).as_millis();
        tally.started_ms.push(u32::try_from(at).unwrap_or(u32::MAX));
        tally.last_reply = Some(now);
        match reply {
            Ok(()) => tally.ok += 1,
            Err(e) => {
                let kind = e
                    .code()
                    .map_or_else(|| format!("{:?}", e.kind()), str::to_owned);
                tally.error(kind, e.to_string());
            }
        }
    }
    tally
}

/// Cancels `stop` when the stop file appears or at `deadline`, whichever is first.
async fn watch(stop_file: Option<PathBuf>, deadline: Instant, stop: CancellationToken) {
    let mut tick = tokio::time::interval(STOP_POLL);
    while Instant::now() < deadline {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(f) = &stop_file
            && tokio::fs::try_exists(f).await.unwrap_or(false)
        {
            break;
        }
    }
    stop.cancel();
}

/// Per 250 ms of the run (by each request's start): requests, their p99 and max, in ms.
fn print_timeline(all: &Tally) {
    const BUCKET_MS: u32 = 250;
    let mut buckets: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (&at, &us) in all.started_ms.iter().zip(&all.latencies_us) {
        buckets.entry(at / BUCKET_MS).or_default().push(us);
    }
    for (b, mut v) in buckets {
        let p99 = quantile(&mut v, 0.99);
        let max = quantile(&mut v, 1.0);
        eprintln!(
            "timeline {:>6} ms: {:>6} requests, p99 {:.3} max {:.3}",
            b * BUCKET_MS,
            v.len(),
            f64::from(p99) / 1000.0,
            f64::from(max) / 1000.0
        );
    }
}

/// The value at quantile `q` of `v` (reordered in the process); `v` is not empty.
fn quantile(v: &mut [u32], q: f64) -> u32 {
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len());
    *v.select_nth_unstable(rank - 1).1
}

// One thread, like redis-benchmark: the servers measured keep the other core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args();
    let client = redis::cluster::ClusterClient::builder([format!("redis://{}/", a.node)])
        .response_timeout(ATTEMPT_TIMEOUT)
        .overall_response_timeout(Some(REQUEST_TIMEOUT))
        .build()?;
    let conn = client.get_async_connection().await?;

    let stop = CancellationToken::new();
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.max_seconds);
    let mut writers = JoinSet::new();
    for i in 0..a.tasks {
        writers.spawn(writer(
            started,
            conn.clone(),
            a.keys,
            a.seed + i,
            sent.clone(),
            a.max_requests,
            stop.clone(),
        ));
    }
    if let Some(f) = &a.ready_file {
        tokio::fs::write(f, b"").await?;
    }
    let watcher = tokio::spawn(watch(a.stop_file.clone(), deadline, stop.clone()));

    let mut all = Tally::default();
    while let Some(tally) = writers.join_next().await {
        all.merge(tally?);
    }
    // The writers ran out of requests before any stop: end the watcher too.
    stop.cancel();
    watcher.await?;

    let errors = all.error_count();
    let Some(last_reply) = all.last_reply else {
        anyhow::bail!("no request completed ({errors} abandoned)");
    };
    // At least a microsecond: a rate, never a division by zero.
    let seconds = last_reply.duration_since(started).as_secs_f64().max(1e-6);
    let requests = all.latencies_us.len();
    if a.timeline {
        print_timeline(&all);
    }
    let p50 = quantile(&mut all.latencies_us, 0.50);
    let p99 = quantile(&mut all.latencies_us, 0.99);
    let max = quantile(&mut all.latencies_us, 1.0);
    eprintln!(
        "cluster_load: {requests} requests in {seconds:.2} s, {} ok, {errors} errors; \
         latency ms p50 {:.3} p99 {:.3} max {:.3}",
        all.ok,
        f64::from(p50) / 1000.0,
        f64::from(p99) / 1000.0,
        f64::from(max) / 1000.0,
    );
    for (kind, (count, message)) in &all.errors {
        eprintln!("cluster_load: {count} x {kind}, e.g. {message}");
    }
    println!(
        "{:.2} {:.3} {errors}",
        all.ok as f64 / seconds,
        f64::from(p99) / 1000.0
    );
    Ok(())
}
