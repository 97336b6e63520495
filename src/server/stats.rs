//! Server statistics behind INFO and (later) `/metrics`: counters, per-command stats, the slow
//! log, latency events, MONITOR subscribers and memory figures from the allocator.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::commands::CmdError;
use crate::node::Node;
use crate::server::clients::ClientState;

/// Bytes allocated by the process, from jemalloc's statistics.
pub fn used_memory() -> usize {
    use tikv_jemalloc_ctl::{epoch, raw, stats};
    if epoch::advance().is_err() {
        return 0;
    }
    let allocated = stats::allocated::read().unwrap_or(0);
    // Freed blocks parked in threads' caches still count as allocated to jemalloc; they are
    // not ours (eviction would otherwise see no effect from what it frees until the caches
    // flush). 4096 is MALLCTL_ARENAS_ALL: the sum over arenas.
    // SAFETY: the name is NUL-terminated and the value a size_t, as jemalloc documents it.
    let cached: usize = unsafe { raw::read(b"stats.arenas.4096.tcache_bytes\0") }.unwrap_or(0);
    allocated.saturating_sub(cached)
}

/// Resident set size of the process, from /proc (0 where unavailable).
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<usize>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// Clients disconnected by `maxmemory-clients`.
    pub evicted_clients: AtomicU64,
    pub commands_processed: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub error_replies: AtomicU64,
    errors: Mutex<HashMap<String, u64>>,
    /// Refreshed by the background task; read on the write path for maxmemory.
    pub used_memory: AtomicUsize,
    peak_memory: AtomicUsize,
    /// Recent (time, commands processed) samples for `instantaneous_ops_per_sec`.
    ops_samples: Mutex<VecDeque<(std::time::Instant, u64)>>,
}

impl Stats {
    pub fn note_error(&self, e: &CmdError) {
        if matches!(e, CmdError::Counted(_)) {
            return;
        }
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let text = e.to_string();
        // The code is what precedes the first space within the reply's first 32 bytes (its
        // '-' included), else ERR, as Redis's afterErrorReply.
        let window = &text.as_bytes()[..text.len().min(31)];
        let code = match window.iter().position(|&b| b == b' ') {
            Some(i) if i > 0 => text[..i].to_string(),
            _ => "ERR".to_string(),
        };
        *self.errors.lock().entry(code).or_default() += 1;
    }

    pub fn error_counts(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .errors
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort();
        v
    }

    pub fn refresh_memory(&self) -> usize {
        let used = used_memory();
        self.used_memory.store(used, Ordering::Relaxed);
        self.peak_memory.fetch_max(used, Ordering::Relaxed);
        used
    }

    /// Records a sample of the command counter (called by the background task).
    pub fn sample_ops(&self) {
        let mut s = self.ops_samples.lock();
        s.push_back((
            std::time::Instant::now(),
            self.commands_processed.load(Ordering::Relaxed),
        ));
        while s.len() > 16 {
            s.pop_front();
        }
    }

    pub fn ops_per_sec(&self) -> u64 {
        let s = self.ops_samples.lock();
        match (s.front(), s.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (b.1.saturating_sub(a.1) as f64 / (b.0 - a.0).as_secs_f64()) as u64
            }
            _ => 0,
        }
    }

    pub fn peak_memory(&self, used: usize) -> usize {
        self.peak_memory
            .fetch_max(used, Ordering::Relaxed)
            .max(used)
    }

    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.rejected_connections,
            &self.evicted_clients,
            &self.commands_processed,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.error_replies,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.errors.lock().clear();
        self.peak_memory
            .store(self.used_memory.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Calls, time and failures of one command (INFO commandstats, LATENCY HISTOGRAM).
#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub failed_calls: AtomicU64,
    pub rejected_calls: AtomicU64,
    /// Calls per power-of-two microsecond bucket (bucket i: < 2^i µs).
    pub histogram: [AtomicU64; 24],
}

impl CmdStat {
    pub fn record(&self, d: Duration) {
        self.record_run(d, true, true);
    }

    /// One run of a command: its time always; a call unless it is the re-run of a blocked
    /// command (Redis counts a blocking command once, when it first runs); a latency sample
    /// once it is done (Redis samples a blocked command when it is unblocked).
    pub fn record_run(&self, d: Duration, call: bool, done: bool) {
        let us = d.as_micros() as u64;
        if call {
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
        self.usec.fetch_add(us, Ordering::Relaxed);
        if done {
            let bucket = (64 - us.leading_zeros() as usize).min(self.histogram.len() - 1);
            self.histogram[bucket].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn failed(&self) {
        self.failed_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self) {
        self.rejected_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram's buckets as they are now (each read once, so they agree with each
    /// other better than reads spread over a computation would).
    pub fn histogram_counts(&self) -> [u64; 24] {
        std::array::from_fn(|i| self.histogram[i].load(Ordering::Relaxed))
    }

    pub fn reset(&self) {
        for c in [
            &self.calls,
            &self.usec,
            &self.failed_calls,
            &self.rejected_calls,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for h in &self.histogram {
            h.store(0, Ordering::Relaxed);
        }
    }
}

/// The latency under which `p` percent of the calls counted in `counts` (a
/// [`CmdStat::histogram_counts`]) ran, in microseconds: found in the power-of-two buckets and
/// placed within its bucket by linear interpolation (an estimate of at most a bucket's width;
/// Redis's HdrHistogram keeps three significant digits).
pub fn percentile_us(counts: &[u64], p: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let target = ((p / 100.0) * total as f64).ceil().clamp(1.0, total as f64);
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= target {
            let (lo, hi) = if i == 0 {
                (0.0, 1.0)
            } else {
                ((1u64 << (i - 1)) as f64, (1u64 << i) as f64)
            };
            return lo + (hi - lo) * (target - below as f64) / n as f64;
        }
        below += n;
    }
    (1u64 << (counts.len() - 1)) as f64
}

pub struct SlowEntry {
    pub id: u64,
    pub time_s: i64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub client_addr: String,
    pub client_name: String,
}

/// Redis keeps at most 32 arguments of 128 bytes per slow log entry.
const SLOWLOG_MAX_ARGC: usize = 32;
const SLOWLOG_MAX_ARGLEN: usize = 128;

#[derive(Default)]
pub struct SlowLog {
    entries: Mutex<VecDeque<SlowEntry>>,
    next_id: AtomicU64,
    /// Microseconds (from `slowlog-log-slower-than`; negative: off).
    pub threshold_us: AtomicI64,
    pub max_len: AtomicUsize,
}

impl SlowLog {
    pub fn maybe_record(
        &self,
        _node: &Node,
        client: &ClientState,
        args: &[Bytes],
        d: Duration,
        now_ms: i64,
    ) {
        let threshold = self.threshold_us.load(Ordering::Relaxed);
        if threshold < 0 || (d.as_micros() as i64) < threshold {
            return;
        }
        let mut kept: Vec<Bytes> = Vec::with_capacity(args.len().min(SLOWLOG_MAX_ARGC));
        for (i, a) in args.iter().enumerate() {
            if i == SLOWLOG_MAX_ARGC - 1 && args.len() > SLOWLOG_MAX_ARGC {
                kept.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    args.len() - i
                )));
                break;
            }
            if a.len() > SLOWLOG_MAX_ARGLEN {
                let mut b = a[..SLOWLOG_MAX_ARGLEN].to_vec();
                b.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - SLOWLOG_MAX_ARGLEN).as_bytes(),
                );
                kept.push(Bytes::from(b));
            } else {
                kept.push(a.clone());
            }
        }
        let name = client.info.name.lock().clone().unwrap_or_default();
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time_s: now_ms / 1000,
            micros: d.as_micros() as u64,
            args: kept,
            client_addr: client.info.addr.to_string(),
            client_name: String::from_utf8_lossy(&name).into_owned(),
        };
        let max = self.max_len.load(Ordering::Relaxed);
        let mut e = self.entries.lock();
        e.push_front(entry);
        e.truncate(max);
    }

    pub fn with_entries<R>(&self, f: impl FnOnce(&VecDeque<SlowEntry>) -> R) -> R {
        f(&self.entries.lock())
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Latency events (LATENCY LATEST/HISTORY): the last 160 samples per event, as Redis keeps.
/// (time in seconds, ms) samples and the worst ms seen.
type EventHistory = (VecDeque<(i64, u64)>, u64);

#[derive(Default)]
pub struct LatencyMonitor {
    events: Mutex<HashMap<String, EventHistory>>,
    /// `latency-monitor-threshold` (0: off), read by every command.
    pub threshold_ms: std::sync::atomic::AtomicU64,
}

const LATENCY_HISTORY: usize = 160;

impl LatencyMonitor {
    pub fn add(&self, event: &str, now_s: i64, ms: u64) {
        let mut ev = self.events.lock();
        let (hist, max) = ev.entry(event.to_string()).or_default();
        if let Some(last) = hist.back_mut()
            && last.0 == now_s
        {
            last.1 = last.1.max(ms);
            *max = (*max).max(ms);
            return;
        }
        hist.push_back((now_s, ms));
        if hist.len() > LATENCY_HISTORY {
            hist.pop_front();
        }
        *max = (*max).max(ms);
    }

    /// (event, last time, last ms, max ms) per event.
    pub fn latest(&self) -> Vec<(String, i64, u64, u64)> {
        let ev = self.events.lock();
        let mut v: Vec<_> = ev
            .iter()
            .filter_map(|(k, (h, max))| h.back().map(|(t, ms)| (k.clone(), *t, *ms, *max)))
            .collect();
        v.sort();
        v
    }

    /// An event's samples (oldest first) and its all-time high, if it has any.
    pub fn series(&self, event: &str) -> Option<(Vec<(i64, u64)>, u64)> {
        let ev = self.events.lock();
        let (h, max) = ev.get(event)?;
        (!h.is_empty()).then(|| (h.iter().copied().collect(), *max))
    }

    pub fn history(&self, event: &str) -> Vec<(i64, u64)> {
        self.events
            .lock()
            .get(event)
            .map(|(h, _)| h.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Resets the given events (all when empty); returns how many were reset.
    pub fn reset(&self, names: &[String]) -> usize {
        let mut ev = self.events.lock();
        if names.is_empty() {
            let n = ev.len();
            ev.clear();
            return n;
        }
        names
            .iter()
            .filter(|n| ev.remove(n.as_str()).is_some())
            .count()
    }
}

/// Clients in MONITOR mode, fed one line per executed command.
#[derive(Default)]
pub struct Monitors {
    subscribers: Mutex<Vec<(u64, mpsc::Sender<Bytes>)>>,
    count: AtomicUsize,
}

/// Lines a MONITOR client may have queued before lines are dropped for it.
pub const MONITOR_QUEUE: usize = 4096;

impl Monitors {
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    pub fn add(&self, id: u64, tx: mpsc::Sender<Bytes>) {
        let mut s = self.subscribers.lock();
        s.push((id, tx));
        self.count.store(s.len(), Ordering::Relaxed);
    }

    pub fn remove(&self, id: u64) {
        let mut s = self.subscribers.lock();
        s.retain(|(i, _)| *i != id);
        self.count.store(s.len(), Ordering::Relaxed);
    }

    pub fn feed(&self, client: &ClientState, args: &[Bytes], now_ms: i64) {
        // A script's commands are shown as Redis shows them: from "lua", not the caller.
        let who = if client.in_script() {
            "lua".to_string()
        } else {
            client.info.addr.to_string()
        };
        let mut line = format!(
            "+{}.{:06} [{} {who}]",
            now_ms / 1000,
            (now_ms % 1000) * 1000,
            client.db,
        );
        for a in args {
            line.push(' ');
            line.push_str(&repr(a));
        }
        line.push_str("\r\n");
        let line = Bytes::from(line);
        let mut s = self.subscribers.lock();
        s.retain(|(_, tx)| !tx.is_closed());
        for (id, tx) in s.iter() {
            if *id != client.info.id {
                let _ = tx.try_send(line.clone());
            }
        }
        self.count.store(s.len(), Ordering::Relaxed);
    }
}

/// Quotes bytes as Redis's `sdscatrepr`.
pub fn repr(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_escapes() {
        assert_eq!(repr(b"a\"b\n\x01"), "\"a\\\"b\\n\\x01\"");
    }

    #[test]
    fn latency_keeps_max_per_second() {
        let l = LatencyMonitor::default();
        l.add("command", 10, 5);
        l.add("command", 10, 7);
        l.add("command", 11, 3);
        assert_eq!(l.history("command"), vec![(10, 7), (11, 3)]);
        assert_eq!(l.latest(), vec![("command".to_string(), 11, 3, 7)]);
    }
}
