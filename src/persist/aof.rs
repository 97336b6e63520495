//! The append-only log: what a write command leaves behind, the thread that writes and fsyncs it,
//! and the reader used at start-up and by `reredis check-aof`.
//!
//! File: the 8-byte magic [`MAGIC`], then framed records ([`super::format`]). A record's payload
//! is one of
//! - `COMMANDS`: `n: u32`, then `n` times `db: u32, argc: u32, argc × (len: u32, bytes)`. One
//!   command, or a whole MULTI/EXEC, so a transaction is replayed entirely or not at all;
//! - `ENTRIES`: a snapshot section (see [`super::snapshot`]): the base a rewrite starts the log
//!   with.
//! - `POSITION`: `len: u32, replication ID, offset: u64`, appended at a clean shutdown: the data
//!   before it is that replication stream up to that offset (Redis keeps the same in its RDB's
//!   `repl-id`/`repl-offset`). It counts only as the log's last record: a write after it means
//!   the data has moved on. Never streamed to replicas.
//! - `PINS`: `n: u32`, then `n` keys (`len: u32, bytes`) of db 0 that a slot move pinned
//!   (`crate::store::Shard::pinned`): sent to the slot's next owner, whose copy may go stale.
//!   Logged when a batch is cut, and after a rewrite's base for the pins at its cut, so a
//!   replay (or a replica) knows which absent keys must not be looked for on the target;
//! - `MOVED`: the same layout: keys the next owner now holds as this node did. A replay
//!   deletes and unpins them in one step (a DEL and a later unpin could be cut apart by a
//!   crash, and the next batch would then delete the target's good copy).
//!
//! Ordering: commands append their record while they still hold the shard locks of their keys, so
//! two commands on one key are logged in the order they ran; commands on different shards commute.
//!
//! Acknowledgement: every append returns the log position just after it. The connection that ran
//! the command holds its replies until [`Aof::acked`] reaches that position: with `appendfsync
//! always` that means written and fsynced (by the writer thread); with `everysec` and `no`, handed
//! to the kernel with write(2) (as Redis does before it replies) by the waiting connection itself
//! when no one else is writing: one write covers every record appended so far, and a reply waits
//! for no thread hand-off. So a killed process loses nothing acknowledged and only a machine
//! crash loses up to the last second (everysec) or what the OS had not flushed (no). The writer
//! thread fsyncs once a second on a second handle (writes go on meanwhile) and writes what
//! nobody waits for (expiries, evictions) within a tenth of a second.
//!
//! Replication taps: the same records feed replicas ([`Aof::add_tap`]), whether the log file is
//! on or not. A tap added inside a snapshot's critical section sees exactly the writes after it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::format::{self, Cursor, Short, put_u32};

pub const MAGIC: &[u8; 8] = b"RRAOF01\n";
pub const KIND_COMMANDS: u8 = 1;
pub const KIND_ENTRIES: u8 = 2;
pub const KIND_POSITION: u8 = 3;
pub const KIND_PINS: u8 = 4;
pub const KIND_MOVED: u8 = 5;
/// The function libraries, as their FUNCTION DUMP payload (snapshots, rewrites, full syncs).
pub const KIND_FUNCTIONS: u8 = 6;

/// A `PINS` or `MOVED` record's payload (after its kind byte): `n: u32`, then `n` keys as
/// `len: u32, bytes`.
pub fn encode_keys<K: AsRef<[u8]>>(p: &mut Vec<u8>, keys: &[K]) {
    put_u32(p, keys.len() as u32);
    for k in keys {
        put_u32(p, k.as_ref().len() as u32);
        p.extend_from_slice(k.as_ref());
    }
}

pub fn decode_keys(c: &mut Cursor) -> Result<Vec<Vec<u8>>, Short> {
    let n = c.u32()?;
    let mut keys = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        let len = c.u32()? as usize;
        keys.push(c.bytes(len)?.to_vec());
    }
    if !c.is_empty() {
        return Err(Short);
    }
    Ok(keys)
}

/// A `POSITION` record's payload (after its kind byte).
pub fn encode_position(p: &mut Vec<u8>, replid: &str, offset: u64) {
    put_u32(p, replid.len() as u32);
    p.extend_from_slice(replid.as_bytes());
    p.extend_from_slice(&offset.to_le_bytes());
}

pub fn decode_position(c: &mut Cursor) -> Result<(String, u64), Short> {
    let len = c.u32()? as usize;
    let id = String::from_utf8(c.bytes(len)?.to_vec()).map_err(|_| Short)?;
    let offset = c.u64()?;
    if !c.is_empty() {
        return Err(Short);
    }
    Ok((id, offset))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always = 0,
    Everysec = 1,
    No = 2,
}

impl Fsync {
    pub fn parse(s: &str) -> Fsync {
        match s {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::Everysec,
        }
    }

    fn from_u8(v: u8) -> Fsync {
        match v {
            0 => Fsync::Always,
            2 => Fsync::No,
            _ => Fsync::Everysec,
        }
    }
}

/// Appends one command to a `COMMANDS` payload under construction.
pub fn encode_command(out: &mut Vec<u8>, db: usize, args: &[Bytes]) {
    put_u32(out, db as u32);
    put_u32(out, args.len() as u32);
    for a in args {
        put_u32(out, a.len() as u32);
        out.extend_from_slice(a);
    }
}

/// A `COMMANDS` record holding `cmds`, framed, appended to `out`.
pub fn command_record(out: &mut Vec<u8>, cmds: &[(usize, Vec<Bytes>)]) {
    format::write_record_with(out, |p| {
        p.push(KIND_COMMANDS);
        put_u32(p, cmds.len() as u32);
        for (db, args) in cmds {
            encode_command(p, *db, args);
        }
    });
}

/// The commands of a `COMMANDS` payload (after its kind byte).
pub fn decode_commands(c: &mut Cursor) -> Result<Vec<(usize, Vec<Bytes>)>, Short> {
    let n = c.u32()?;
    let mut out = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        let db = c.u32()? as usize;
        let argc = c.u32()?;
        if argc == 0 {
            return Err(Short);
        }
        let mut args = Vec::with_capacity((argc as usize).min(1024));
        for _ in 0..argc {
            let len = c.u32()? as usize;
            args.push(Bytes::copy_from_slice(c.bytes(len)?));
        }
        out.push((db, args));
    }
    if !c.is_empty() {
        return Err(Short);
    }
    Ok(out)
}

/// Records appended but not yet handed to the writer thread.
struct Pending {
    buf: Vec<u8>,
    /// Log position after the last appended byte (counts every byte ever appended).
    seq: u64,
    /// While a rewrite runs: a copy of everything appended since its snapshot point.
    tail: Option<Vec<u8>>,
    /// Replicas fed with every record (see [`Aof::add_tap`]).
    taps: Vec<Tap>,
    /// Bytes of records fed to replicas since start (the master's replication offset).
    repl_offset: u64,
    backlog: Backlog,
    /// This node is a replica: the backlog holds its master's stream, as received
    /// ([`Aof::mirror`]), and this node's own records feed neither it nor the offset.
    mirroring: bool,
}

/// The replication backlog (Redis's `repl-backlog-size`): the last records of the replication
/// stream, so a replica that lost its link for a moment continues from its offset instead of
/// copying everything again. Kept by a master from its first replica on.
#[derive(Default)]
struct Backlog {
    active: bool,
    limit: usize,
    records: std::collections::VecDeque<Bytes>,
    bytes: usize,
    /// The replication offset of the first byte held.
    start: u64,
}

impl Backlog {
    fn push(&mut self, record: Bytes) {
        self.bytes += record.len();
        self.records.push_back(record);
        // Whole records only: a replica resumes on a record boundary.
        while self.bytes > self.limit {
            let Some(r) = self.records.pop_front() else {
                break;
            };
            self.bytes -= r.len();
            self.start += r.len() as u64;
        }
    }

    /// What follows offset `from`, when the backlog still holds all of it. A chunk is a record
    /// on a master and a frame of records on a replica; a replica's offset always falls
    /// between two records, so a chunk cut at `from` starts with a whole record.
    fn since(&self, from: u64) -> Option<Vec<Bytes>> {
        if !self.active || from < self.start || from > self.end() {
            return None;
        }
        let mut at = self.start;
        let mut out = Vec::new();
        for r in &self.records {
            let end = at + r.len() as u64;
            if at >= from {
                out.push(r.clone());
            } else if end > from {
                out.push(r.slice((from - at) as usize..));
            }
            at = end;
        }
        Some(out)
    }

    /// The offset just past the last byte held.
    fn end(&self) -> u64 {
        self.start + self.bytes as u64
    }

    /// Empties the backlog and starts it at `offset`.
    fn restart(&mut self, offset: u64) {
        self.records.clear();
        self.bytes = 0;
        self.start = offset;
        self.active = true;
    }
}

/// What `INFO replication` shows of the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogInfo {
    pub active: bool,
    pub size: usize,
    pub first_byte_offset: u64,
    pub histlen: usize,
}

/// A replica's feed: every record appended after it was added, until its queue is over
/// `client-output-buffer-limit replica` (see [`Aof::replica_limits`]): the hard limit, or the
/// soft one for longer than its seconds, for a replica over Redis's protocol; the hard limit
/// only for a cluster replica fed over the bus (whose first copy takes long and is not a
/// client's output). A replica that cannot keep up is cut off and syncs again, as Redis's is.
pub struct Tap {
    pub tx: tokio::sync::mpsc::UnboundedSender<Bytes>,
    /// Bytes sent and not yet taken by the replica's stream.
    pub queued: Arc<AtomicU64>,
    /// Unix seconds since when the queue is over the soft limit (0: it is not).
    soft_since: i64,
    /// Cancelled when the tap is cut for its limit: the replica's connection closes then, even
    /// while a write to it waits (Redis frees the client at once). None: a bus replica.
    cut: Option<tokio_util::sync::CancellationToken>,
}

impl Tap {
    /// The feed of a replica connected over Redis's protocol; `cut` closes its connection.
    pub fn new(
        tx: tokio::sync::mpsc::UnboundedSender<Bytes>,
        queued: Arc<AtomicU64>,
        cut: tokio_util::sync::CancellationToken,
    ) -> Tap {
        Tap {
            tx,
            queued,
            soft_since: 0,
            cut: Some(cut),
        }
    }

    /// The feed of a cluster replica over the bus.
    pub fn for_bus(tx: tokio::sync::mpsc::UnboundedSender<Bytes>, queued: Arc<AtomicU64>) -> Tap {
        Tap {
            tx,
            queued,
            soft_since: 0,
            cut: None,
        }
    }

    /// Whether a queue of `q` bytes is within `[hard, soft, soft seconds]` (0: no limit), as
    /// Redis's checkClientOutputBufferLimits (a bus replica: the hard limit only).
    fn within(&mut self, q: u64, limits: [u64; 3]) -> bool {
        let [hard, soft, secs] = if self.cut.is_some() {
            limits
        } else {
            [limits[0], 0, 0]
        };
        if hard > 0 && q >= hard {
            return false;
        }
        if soft == 0 || q < soft {
            self.soft_since = 0;
            return true;
        }
        let now = crate::commands::now_ms() / 1000;
        if self.soft_since == 0 {
            self.soft_since = now;
        }
        now - self.soft_since <= secs as i64
    }
}
/// Under `appendfsync always`, the longest the writer thread waits for more writes to share
/// an fsync (see `writer_loop`).
const GATHER: Duration = Duration::from_micros(250);

/// The open file and what the writer knows about it.
struct Output {
    file: Option<File>,
    path: PathBuf,
    /// Bytes in the file that are known good (a failed write is cut back to this).
    len: u64,
}

/// The log's state, shared by appenders (commands), the writer thread and rewrites.
pub struct Aof {
    on: AtomicBool,
    /// `client-output-buffer-limit replica`: hard bytes, soft bytes, soft seconds (0: none).
    pub replica_limits: [AtomicU64; 3],
    /// Replicas are fed (some tap is open).
    feeding: AtomicBool,
    /// `repl_offset`, readable without the lock (a connection notes where its last write
    /// ended, for WAIT).
    repl_end: AtomicU64,
    fsync: AtomicU8,
    pending: Mutex<Pending>,
    wake: Condvar,
    output: Mutex<Output>,
    /// Log position every reply may be released up to.
    acked: watch::Sender<u64>,
    /// False while the last write or fsync failed (writes are refused with -MISCONF).
    pub write_ok: AtomicBool,
    pub last_error: Mutex<String>,
    /// File size after the last rewrite (or at load), for auto-aof-rewrite-percentage.
    pub base_size: AtomicU64,
    pub size: AtomicU64,
    stop: AtomicBool,
    /// Set from [`Aof::buffer_on`] to [`Aof::start`]: the log does not exist yet.
    creating: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Unix ms of the last fsync, for INFO.
    pub last_fsync_ms: AtomicU64,
    /// Written since the last fsync (by the writer thread or a connection).
    unsynced: AtomicBool,
    /// The last connections that waited for an acknowledgement, and when (µs since `epoch`),
    /// in a ring: see [`Aof::crowded`].
    recent_waiters: [(AtomicU64, AtomicU64); RECENT],
    recent_next: AtomicUsize,
    epoch: Instant,
}

/// How many recent waiters [`Aof::crowded`] remembers.
const RECENT: usize = 8;
/// Waiters this recent (µs) count towards a crowd.
const CROWD_US: u64 = 200;
/// Distinct connections among the recent waiters that make a crowd.
const CROWD: usize = 4;

impl Default for Aof {
    fn default() -> Self {
        Aof {
            on: AtomicBool::new(false),
            // Redis's default: 256mb 64mb 60.
            replica_limits: [
                AtomicU64::new(256 << 20),
                AtomicU64::new(64 << 20),
                AtomicU64::new(60),
            ],
            feeding: AtomicBool::new(false),
            repl_end: AtomicU64::new(0),
            fsync: AtomicU8::new(Fsync::Everysec as u8),
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                seq: 0,
                tail: None,
                taps: Vec::new(),
                repl_offset: 0,
                backlog: Backlog {
                    limit: 1 << 20,
                    ..Backlog::default()
                },
                mirroring: false,
            }),
            wake: Condvar::new(),
            output: Mutex::new(Output {
                file: None,
                path: PathBuf::new(),
                len: 0,
            }),
            acked: watch::channel(0).0,
            write_ok: AtomicBool::new(true),
            last_error: Mutex::new(String::new()),
            base_size: AtomicU64::new(0),
            size: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            creating: AtomicBool::new(false),
            thread: Mutex::new(None),
            last_fsync_ms: AtomicU64::new(0),
            unsynced: AtomicBool::new(false),
            recent_waiters: Default::default(),
            recent_next: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Aof {
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Whether the log is being created (turned on at run time: its first rewrite is running,
    /// see [`Aof::buffer_on`]).
    pub fn is_creating(&self) -> bool {
        self.creating.load(Ordering::Relaxed)
    }

    /// The log's creation failed or was called off: collecting stops and what was collected
    /// for it goes (the next attempt starts again from the data in memory).
    pub fn cancel_creation(&self) {
        self.stop();
        let mut p = self.pending.lock();
        p.buf.clear();
        p.tail = None;
    }

    pub fn set_fsync(&self, f: Fsync) {
        self.fsync.store(f as u8, Ordering::Relaxed);
    }

    pub fn fsync_policy(&self) -> Fsync {
        Fsync::from_u8(self.fsync.load(Ordering::Relaxed))
    }

    /// Whether writes must be recorded: the log is on, or replicas are fed (or may reconnect to
    /// the backlog).
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.is_on() || self.feeding.load(Ordering::Relaxed)
    }

    /// Appends one framed record built by `f`, to the log and to every replica's feed; returns
    /// the log position after it (0 when the log is off). Called with the command's shard
    /// locks held: keep it short.
    pub fn append_with(&self, f: impl FnOnce(&mut Vec<u8>)) -> u64 {
        self.append_record(f, true, true)
    }

    /// Appends a `POSITION` record (see the module doc) to the log file only. Returns the log
    /// position after it (0 when the log is off).
    pub fn append_position(&self, replid: &str, offset: u64) -> u64 {
        if !self.is_on() {
            return 0;
        }
        self.append_record(
            |out| {
                format::write_record_with(out, |p| {
                    p.push(KIND_POSITION);
                    encode_position(p, replid, offset);
                })
            },
            false,
            true,
        )
    }

    /// Some replica is fed (or a backlog kept for one).
    pub fn is_feeding(&self) -> bool {
        self.feeding.load(Ordering::Relaxed)
    }

    /// Feeds one command to replicas only, not to the log file: what Redis propagates to its
    /// replicas and not to its AOF (PUBLISH and SPUBLISH outside cluster mode, so subscribers
    /// of a replica hear them). Nothing when no replica is fed.
    pub fn append_stream_only(&self, db: usize, args: &[Bytes]) {
        if !self.is_feeding() {
            return;
        }
        self.append_record(
            |out| {
                format::write_record_with(out, |p| {
                    p.push(KIND_COMMANDS);
                    put_u32(p, 1);
                    encode_command(p, db, args);
                })
            },
            true,
            false,
        );
    }

    /// `stream`: to replicas' feeds; `file`: to the log file (when it is on).
    fn append_record(&self, f: impl FnOnce(&mut Vec<u8>), stream: bool, file: bool) -> u64 {
        if !self.is_recording() {
            return 0;
        }
        let mut p = self.pending.lock();
        let start = p.buf.len();
        f(&mut p.buf);
        let added = p.buf.len() - start;
        if stream && !p.mirroring && (!p.taps.is_empty() || p.backlog.active) {
            let record = Bytes::copy_from_slice(&p.buf[start..]);
            p.repl_offset += added as u64;
            self.repl_end.store(p.repl_offset, Ordering::Relaxed);
            let limits = self
                .replica_limits
                .each_ref()
                .map(|l| l.load(Ordering::Relaxed));
            p.taps.retain_mut(|t| {
                let q = t.queued.fetch_add(added as u64, Ordering::Relaxed) + added as u64;
                if !t.within(q, limits) {
                    tracing::warn!(
                        queued = q,
                        "a replica is over client-output-buffer-limit replica: disconnected, it will sync again"
                    );
                    if let Some(cut) = &t.cut {
                        cut.cancel();
                    }
                    return false;
                }
                t.tx.send(record.clone()).is_ok()
            });
            if p.backlog.active {
                p.backlog.push(record);
            } else if p.taps.is_empty() {
                self.feeding.store(false, Ordering::Relaxed);
            }
        }
        if !self.is_on() || !file {
            p.buf.truncate(start);
            return 0;
        }
        p.seq += added as u64;
        let Pending { buf, tail, .. } = &mut *p;
        if let Some(tail) = tail.as_mut() {
            tail.extend_from_slice(&buf[start..]);
        }
        let seq = p.seq;
        drop(p);
        // Under `always` the writer thread writes and fsyncs before anything is acknowledged.
        // Otherwise whoever waits for a position writes the buffer itself ([`Aof::wait_acked`]),
        // and the writer thread picks up the rest within its idle period.
        if self.fsync_policy() == Fsync::Always {
            self.wake.notify_one();
        }
        seq
    }

    /// Logs one command.
    pub fn append_command(&self, db: usize, args: &[Bytes]) -> u64 {
        self.append_with(|out| {
            format::write_record_with(out, |p| {
                p.push(KIND_COMMANDS);
                put_u32(p, 1);
                encode_command(p, db, args);
            })
        })
    }

    /// Logs a DEL of `key`: for keys removed outside the command path (expiry; slot migration
    /// handing keys to another node must do the same), so a replay removes them when they were.
    pub fn append_del(&self, db: usize, key: &[u8]) -> u64 {
        self.append_with(|out| {
            format::write_record_with(out, |p| {
                p.push(KIND_COMMANDS);
                put_u32(p, 1);
                put_u32(p, db as u32);
                put_u32(p, 2);
                put_u32(p, 3);
                p.extend_from_slice(b"DEL");
                put_u32(p, key.len() as u32);
                p.extend_from_slice(key);
            })
        })
    }

    /// Logs a `PINS` or `MOVED` record (see the module doc) of db-0 `keys`.
    pub fn append_keys<K: AsRef<[u8]>>(&self, kind: u8, keys: &[K]) -> u64 {
        self.append_with(|out| {
            format::write_record_with(out, |p| {
                p.push(kind);
                encode_keys(p, keys);
            })
        })
    }

    /// Feeds a replica every record appended from now on; returns the replication offset at
    /// this point. Call with every shard locked (inside [`super::snapshot::Image::capture`]),
    /// so the replica's copy and its feed split the history exactly.
    pub fn add_tap(&self, tap: Tap) -> u64 {
        let mut p = self.pending.lock();
        p.taps.push(tap);
        Self::start_backlog(&mut p);
        self.feeding.store(true, Ordering::Relaxed);
        p.repl_offset
    }

    /// A partial resync: feeds a replica every record after offset `from`, first those the
    /// backlog holds (returned), then every record appended from now on. The tap is given back
    /// when the backlog no longer holds what follows `from`: the replica needs a full copy.
    pub fn add_tap_from(&self, tap: Tap, from: u64) -> Result<Vec<Bytes>, Tap> {
        let mut p = self.pending.lock();
        if from > p.repl_offset {
            return Err(tap);
        }
        match p.backlog.since(from) {
            Some(records) => {
                p.taps.push(tap);
                self.feeding.store(true, Ordering::Relaxed);
                Ok(records)
            }
            None => Err(tap),
        }
    }

    fn start_backlog(p: &mut Pending) {
        if !p.backlog.active {
            p.backlog.active = true;
            p.backlog.start = p.repl_offset;
        }
    }

    /// This node starts a stream of its own at `offset` (a replica promoted to master continues
    /// its old master's offsets; a restarted master its own). What the backlog mirrored of the
    /// old master's stream up to `offset` stays, so that master's other replicas continue from
    /// here even when they were behind; otherwise the backlog starts empty at `offset`.
    pub fn restart_stream_at(&self, offset: u64) {
        let mut p = self.pending.lock();
        let keep = p.mirroring && p.backlog.active && p.backlog.end() == offset;
        if !keep {
            p.backlog.restart(offset);
        }
        p.mirroring = false;
        p.repl_offset = offset;
        self.repl_end.store(offset, Ordering::Relaxed);
        self.feeding.store(true, Ordering::Relaxed);
    }

    /// This node stops being a master and becomes a replica: its backlog (its own stream up to
    /// now) is kept and goes on with what the new master sends ([`Aof::mirror`]), when that
    /// master continues this stream. Its own replicas' streams end by themselves.
    pub fn stop_stream(&self) {
        let mut p = self.pending.lock();
        p.mirroring = true;
        self.feeding.store(!p.taps.is_empty(), Ordering::Relaxed);
    }

    /// Whether this node streams its own writes (a master with a backlog), as opposed to a
    /// replica mirroring its master's.
    pub fn streams_own(&self) -> bool {
        let p = self.pending.lock();
        p.backlog.active && !p.mirroring
    }

    /// A replica: `records`, received from its master, end at the master's offset `end`. They
    /// go into the backlog as they came, so that after a failover this node serves its former
    /// siblings from where each stands. A gap (a full sync, or a master that does not continue
    /// what the backlog holds) starts the backlog again at the new position.
    pub fn mirror(&self, records: Bytes, end: u64) {
        let mut p = self.pending.lock();
        let start = end.saturating_sub(records.len() as u64);
        if !p.backlog.active || p.backlog.end() != start || !p.mirroring {
            p.backlog.restart(start);
            p.mirroring = true;
        }
        if !records.is_empty() {
            p.backlog.push(records);
        }
        p.repl_offset = end;
        self.repl_end.store(end, Ordering::Relaxed);
    }

    /// A replica after a full sync: the backlog starts empty at the master's offset `at`.
    pub fn mirror_from(&self, at: u64) {
        let mut p = self.pending.lock();
        p.backlog.restart(at);
        p.mirroring = true;
        p.repl_offset = at;
        self.repl_end.store(at, Ordering::Relaxed);
    }

    /// `repl-backlog-size`.
    pub fn set_backlog_limit(&self, bytes: usize) {
        let mut p = self.pending.lock();
        p.backlog.limit = bytes.max(16 * 1024);
        // Trimmed at the next record.
    }

    pub fn backlog_info(&self) -> BacklogInfo {
        let p = self.pending.lock();
        BacklogInfo {
            active: p.backlog.active,
            size: p.backlog.limit,
            first_byte_offset: if p.backlog.active {
                p.backlog.start + 1
            } else {
                0
            },
            histlen: p.backlog.bytes,
        }
    }

    /// The replication offset: bytes fed to replicas so far.
    pub fn repl_offset(&self) -> u64 {
        self.pending.lock().repl_offset
    }

    /// The replication offset after the last append, without the lock: at or past the end of
    /// the caller's own last record when read right after appending it.
    pub fn repl_written(&self) -> u64 {
        self.repl_end.load(Ordering::Relaxed)
    }

    /// Replicas being fed now.
    pub fn taps(&self) -> usize {
        self.pending.lock().taps.len()
    }

    /// A receiver of the acknowledged position.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }

    pub fn acked(&self) -> u64 {
        *self.acked.borrow()
    }

    /// Waits until everything up to `seq` may be acknowledged (or the log was turned off).
    ///
    /// Under `everysec` and `no` the caller writes the pending buffer itself when no one else
    /// is writing (group commit: one write(2) covers every connection's records appended so
    /// far, as Redis writes its buffer once per event-loop turn), so a reply waits for no
    /// thread hand-off; under `always` the writer thread writes and fsyncs.
    pub async fn wait_acked(&self, seq: u64) {
        self.wait_acked_by(seq, 0).await;
    }

    /// [`Aof::wait_acked`] for connection `waiter` (0: none in particular). Under `everysec`
    /// and `no`, a connection that finds others waiting around the same time lets the tasks
    /// ready on its thread run first (one yield), so that they append before it writes and
    /// one write(2) carries all their records, as Redis's one write per event-loop turn. A
    /// lone client never yields: the yield would cost it a scheduler round per command.
    pub async fn wait_acked_by(&self, seq: u64, waiter: u64) {
        // While the log is being created (turned on at run time), replies do not wait for it,
        // as Redis's do not while its first rewrite runs: the writes are in memory and land
        // in the log when it is in place.
        if seq == 0 || self.acked() >= seq || self.is_creating() {
            return;
        }
        if self.fsync_policy() != Fsync::Always && self.crowded(waiter) {
            tokio::task::yield_now().await;
            if self.acked() >= seq {
                return;
            }
        }
        let mut rx = self.subscribe();
        loop {
            if *rx.borrow_and_update() >= seq {
                return;
            }
            if self.fsync_policy() != Fsync::Always && self.write_through() {
                continue;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether at least [`CROWD`] connections, `waiter` among them, waited for the log in the
    /// last [`CROWD_US`] (then more are likely on their way).
    fn crowded(&self, waiter: u64) -> bool {
        if waiter == 0 {
            return false;
        }
        let now = self.epoch.elapsed().as_micros() as u64;
        let i = self.recent_next.fetch_add(1, Ordering::Relaxed) % RECENT;
        self.recent_waiters[i].0.store(waiter, Ordering::Relaxed);
        self.recent_waiters[i].1.store(now, Ordering::Relaxed);
        let mut seen = [0u64; RECENT];
        let mut distinct = 0;
        for (id, at) in &self.recent_waiters {
            let id = id.load(Ordering::Relaxed);
            if now.saturating_sub(at.load(Ordering::Relaxed)) < CROWD_US
                && id != 0
                && !seen[..distinct].contains(&id)
            {
                seen[distinct] = id;
                distinct += 1;
            }
        }
        distinct >= CROWD
    }

    /// Writes what is pending from the caller's thread, unless another writer holds the file
    /// (it acknowledges when done). Returns whether it wrote (or found nothing to write).
    fn write_through(&self) -> bool {
        let Some(mut out) = self.output.try_lock() else {
            return false;
        };
        if out.file.is_none() {
            return false;
        }
        let Ok(seq) = self.write_pending(&mut out) else {
            drop(out);
            // The writer thread retries and reports recovery.
            self.wake.notify_one();
            return false;
        };
        drop(out);
        if !self.write_ok.load(Ordering::Relaxed) {
            // Failing: only the writer thread declares it solved.
            self.wake.notify_one();
            return false;
        }
        // Every waiter is woken, even when another writer already acknowledged this far: one
        // that found the file busy tries again at once instead of waiting for the writer thread.
        self.acked.send_modify(|a| *a = (*a).max(seq));
        true
    }

    /// Starts collecting appends before the file exists (a rewrite that creates the log is
    /// about to take its snapshot; [`Aof::start`] then writes to it).
    pub fn buffer_on(&self) {
        self.creating.store(true, Ordering::Relaxed);
        self.on.store(true, Ordering::Release);
    }

    /// Opens `path` for appending (it must exist, with its magic) and starts the writer thread.
    pub fn start(self: &Arc<Self>, path: &Path, fsync: Fsync) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        let len = file.metadata()?.len();
        {
            let mut o = self.output.lock();
            o.file = Some(file);
            o.path = path.to_path_buf();
            o.len = len;
        }
        self.size.store(len, Ordering::Relaxed);
        self.base_size.store(len, Ordering::Relaxed);
        self.set_fsync(fsync);
        // Positions continue from where the last writer stopped, so waiters are not confused.
        {
            let p = self.pending.lock();
            self.acked.send_replace(p.seq);
        }
        self.stop.store(false, Ordering::Relaxed);
        self.creating.store(false, Ordering::Relaxed);
        self.on.store(true, Ordering::Release);
        let me = self.clone();
        let handle = std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || me.writer_loop())?;
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    /// Stops appending, writes and fsyncs what is pending, and joins the writer thread.
    pub fn stop(&self) {
        self.creating.store(false, Ordering::Relaxed);
        self.on.store(false, Ordering::Release);
        self.stop.store(true, Ordering::Release);
        self.wake.notify_all();
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
        let mut o = self.output.lock();
        if let Some(f) = o.file.take() {
            let _ = f.sync_all();
        }
        o.len = 0;
        // Nobody waits for a log that is off.
        let seq = self.pending.lock().seq;
        self.acked.send_replace(seq);
    }

    fn writer_loop(&self) {
        let mut last_fsync = Instant::now();
        let mut failing = false;
        // Under `always`: how much the next fsync waits for (see below), and the log position
        // of the last pass.
        let mut gather_target = 0u64;
        let mut last_seq = self.pending.lock().seq;
        loop {
            let stopping = {
                let mut p = self.pending.lock();
                let always = self.fsync_policy() == Fsync::Always;
                if p.buf.is_empty() && !self.stop.load(Ordering::Acquire) {
                    // Under `always` every append wakes this thread; otherwise it comes round
                    // for what nobody waits for (expiries, evictions) and the once-a-second
                    // fsync.
                    let wait = if failing || always {
                        Duration::from_secs(1)
                    } else {
                        Duration::from_millis(100)
                    };
                    self.wake.wait_for(&mut p, wait);
                }
                if always && !failing {
                    // Group commit. The clients the last fsync answered send their next writes
                    // within a moment of each other; the clients that wrote during that fsync
                    // are waiting already. Going at once would sync the waiting ones alone and
                    // split the clients into two groups that take turns, each paying an fsync
                    // per write (measured: 23 writes per fsync for 50 clients). So wait
                    // (briefly) for what arrived during the last fsync plus half of what it
                    // answered: one fsync covers nearly every client, as Redis's one fsync per
                    // event-loop turn does (32 per fsync; Redis 29). A lone client's target is
                    // its own write: no wait.
                    let until = Instant::now() + GATHER;
                    while !p.buf.is_empty()
                        && (p.buf.len() as u64) < gather_target
                        && !self.stop.load(Ordering::Acquire)
                    {
                        if self.wake.wait_until(&mut p, until).timed_out() {
                            break;
                        }
                    }
                }
                self.stop.load(Ordering::Acquire)
            };
            let policy = self.fsync_policy();
            let mut out = self.output.lock();
            let Ok(seq) = self.write_pending(&mut out) else {
                failing = true;
                drop(out);
                if stopping {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            let answered = seq.saturating_sub(last_seq);
            last_seq = seq;
            let fsync_now = self.unsynced.load(Ordering::Relaxed)
                && match policy {
                    Fsync::Always => true,
                    Fsync::Everysec => last_fsync.elapsed() >= Duration::from_secs(1) || stopping,
                    Fsync::No => stopping,
                };
            if fsync_now {
                self.unsynced.store(false, Ordering::Relaxed);
                // Under `always` the file stays held (nothing is acknowledged before its
                // fsync). Otherwise the fsync runs on a second handle, so connections keep
                // writing meanwhile, as Redis fsyncs in a background thread.
                let synced = if policy == Fsync::Always {
                    out.file.as_ref().map(|f| f.sync_data())
                } else {
                    let f = out.file.as_ref().map(File::try_clone);
                    drop(out);
                    let r = f.map(|f| f.and_then(|f| f.sync_data()));
                    out = self.output.lock();
                    r
                };
                if let Some(Err(e)) = synced {
                    self.unsynced.store(true, Ordering::Relaxed);
                    failing = true;
                    self.fail("Error fsyncing the AOF file", &e);
                    drop(out);
                    if stopping {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                last_fsync = Instant::now();
                self.last_fsync_ms.store(unix_ms(), Ordering::Relaxed);
            }
            drop(out);
            // A pass that wrote and synced what it had ends a failure, whoever met it (a
            // connection writing through reports it here).
            failing = false;
            if !self.write_ok.swap(true, Ordering::Relaxed) {
                tracing::warn!("AOF write error looks solved, accepting writes again");
            }
            // Under `always` the position is acknowledged only once fsynced. Waiters are woken
            // on every pass: one that found the file busy tries again.
            if policy != Fsync::Always || !self.unsynced.load(Ordering::Relaxed) {
                if policy == Fsync::Always {
                    gather_target = self.pending.lock().buf.len() as u64 + answered / 2;
                }
                self.acked.send_modify(|a| *a = (*a).max(seq));
            }
            if stopping {
                return;
            }
        }
    }

    /// Writes the records appended so far to `out` (held by the caller); returns the log
    /// position they end at. On an error they go back in front of anything appended meanwhile,
    /// and writes are refused until a later write succeeds.
    /// Writes what is pending to the file from the caller's thread, waiting for the file if
    /// another writer has it, so the file holds every record appended so far (DEBUG LOADAOF
    /// reads it back). Acknowledging (and fsyncing under `always`) stays the writer's job.
    pub fn write_pending_now(&self) -> Result<(), String> {
        let mut out = self.output.lock();
        if out.file.is_none() {
            return Ok(());
        }
        self.write_pending(&mut out)
            .map(|_| ())
            .map_err(|()| self.last_error.lock().clone())
    }

    fn write_pending(&self, out: &mut Output) -> Result<u64, ()> {
        let (data, seq) = {
            let mut p = self.pending.lock();
            (std::mem::take(&mut p.buf), p.seq)
        };
        if data.is_empty() {
            return Ok(seq);
        }
        if let Err(e) = write_at_end(out, &data) {
            self.fail("Error writing to the AOF file", &e);
            let mut p = self.pending.lock();
            let mut again = data;
            again.extend_from_slice(&p.buf);
            p.buf = again;
            return Err(());
        }
        self.unsynced.store(true, Ordering::Relaxed);
        self.size.store(out.len, Ordering::Relaxed);
        Ok(seq)
    }

    /// A write or fsync failed: writes are refused with `-MISCONF Errors writing to the AOF
    /// file: <reason>`, the reason as C's strerror words it, as Redis's (no "(os error N)").
    fn fail(&self, what: &str, e: &std::io::Error) {
        if self.write_ok.swap(false, Ordering::Relaxed) {
            tracing::warn!("{what}: {e}");
        }
        let text = e.to_string();
        let reason = match text.rfind(" (os error ") {
            Some(i) if text.ends_with(')') => &text[..i],
            _ => &text,
        };
        *self.last_error.lock() = reason.to_string();
    }

    /// Marks the snapshot point of a rewrite: from now on appends are also copied to its tail.
    /// Call with every shard locked, so the snapshot and the tail split the history exactly.
    pub fn begin_rewrite(&self) {
        self.pending.lock().tail = Some(Vec::new());
    }

    pub fn abort_rewrite(&self) {
        self.pending.lock().tail = None;
    }

    /// Finishes a rewrite: `tmp` holds the magic and the snapshot; the tail is appended, the file
    /// fsynced and renamed over the log, and the writer continues on it. Appends wait meanwhile.
    pub fn finish_rewrite(&self, tmp: &Path, target: &Path) -> std::io::Result<u64> {
        let mut out = self.output.lock();
        let mut p = self.pending.lock();
        let tail = p.tail.take().unwrap_or_default();
        let result = (|| {
            let mut f = std::fs::OpenOptions::new().append(true).open(tmp)?;
            f.write_all(&tail)?;
            f.sync_all()?;
            std::fs::rename(tmp, target)?;
            super::fsync_dir(target)?;
            let len = f.metadata()?.len();
            Ok((f, len))
        })();
        match result {
            Ok((f, len)) => {
                // Everything appended so far is in the new file: the old buffer is obsolete.
                p.buf.clear();
                let seq = p.seq;
                drop(p);
                if self.is_on() {
                    out.file = Some(f);
                    out.len = len;
                    out.path = target.to_path_buf();
                }
                drop(out);
                self.size.store(len, Ordering::Relaxed);
                self.base_size.store(len, Ordering::Relaxed);
                self.acked.send_replace(seq);
                Ok(len)
            }
            Err(e) => {
                drop(p);
                drop(out);
                let _ = std::fs::remove_file(tmp);
                Err(e)
            }
        }
    }
}

fn write_at_end(out: &mut Output, data: &[u8]) -> std::io::Result<()> {
    let Some(f) = out.file.as_mut() else {
        return Ok(());
    };
    match f.write_all(data) {
        Ok(()) => {
            out.len += data.len() as u64;
            Ok(())
        }
        Err(e) => {
            // A partial record must not stay in the file: cut back to the last good length.
            let _ = f.set_len(out.len);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::format::{Next, Reader};
    use proptest::prelude::*;

    fn tap() -> (Tap, tokio::sync::mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let tap = Tap::for_bus(tx, Arc::new(AtomicU64::new(0)));
        (tap, rx)
    }

    #[test]
    fn the_backlog_serves_offsets_it_still_holds_on_record_boundaries() {
        let aof = Aof::default();
        aof.set_backlog_limit(16 * 1024);
        let k = |i: usize| Bytes::from(format!("key:{i}"));
        let v = Bytes::from(vec![b'x'; 1000]);
        // Nothing recorded before the first replica: no backlog.
        aof.append_command(0, &[Bytes::from("SET"), k(0), v.clone()]);
        assert_eq!(aof.repl_offset(), 0);
        assert!(!aof.backlog_info().active);
        let (first, mut first_rx) = tap();
        assert_eq!(aof.add_tap(first), 0);
        let mut ends = vec![0u64];
        for i in 1..=10 {
            aof.append_command(0, &[Bytes::from("SET"), k(i), v.clone()]);
            ends.push(aof.repl_offset());
        }
        let info = aof.backlog_info();
        assert!(info.active);
        assert_eq!((info.first_byte_offset, info.histlen as u64), (1, ends[10]));
        // From a record boundary: the records after it, the same bytes the live tap got.
        let mut live = Vec::new();
        while let Ok(r) = first_rx.try_recv() {
            live.extend_from_slice(&r);
        }
        let (t, _rx) = tap();
        let since: Vec<u8> = aof.add_tap_from(t, ends[4]).ok().unwrap().concat();
        assert_eq!(since, live[ends[4] as usize..]);
        assert_eq!(aof.add_tap_from(tap().0, ends[10]).ok().unwrap().len(), 0);
        // Past the end: a full sync.
        assert!(aof.add_tap_from(tap().0, ends[10] + 1).is_err());
        // Past the limit, the oldest records go, whole.
        for i in 11..=40 {
            aof.append_command(0, &[Bytes::from("SET"), k(i), v.clone()]);
        }
        let info = aof.backlog_info();
        assert!(info.histlen <= 16 * 1024, "{info:?}");
        assert!(aof.add_tap_from(tap().0, ends[4]).is_err());
        let from = info.first_byte_offset - 1;
        assert!(aof.add_tap_from(tap().0, from).is_ok());
        // A promoted replica starts its stream at the offset it applied.
        aof.restart_stream_at(1_000_000);
        assert_eq!(aof.repl_offset(), 1_000_000);
        assert!(aof.add_tap_from(tap().0, 1_000_000).is_ok());
        assert!(aof.add_tap_from(tap().0, 999_999).is_err());
        assert!(aof.streams_own());
        aof.stop_stream();
        assert!(!aof.streams_own());
    }

    #[test]
    fn a_replica_mirrors_its_masters_stream_and_serves_it_once_promoted() {
        let aof = Aof::default();
        aof.set_backlog_limit(16 * 1024);
        // The master's stream, as frames of records (ends at each record boundary).
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for i in 0..6 {
            let cmd = vec![(0, vec![Bytes::from("SET"), Bytes::from(format!("k{i}"))])];
            command_record(&mut stream, &cmd);
            ends.push(500 + stream.len() as u64);
        }
        let stream = Bytes::from(stream);
        let at = |end: u64| (end - 500) as usize;
        aof.mirror_from(500);
        aof.mirror(stream.slice(..at(ends[2])), ends[2]);
        aof.mirror(stream.slice(at(ends[2])..), ends[5]);
        assert!(!aof.streams_own());
        // The replica's own writes (the stream replayed) do not move the offset.
        aof.append_command(0, &[Bytes::from("SET"), Bytes::from("own")]);
        assert_eq!(aof.repl_offset(), ends[5]);
        // Promoted at the offset it applied: a sibling that stood at any record boundary since
        // the full sync continues from here with exactly the bytes it missed.
        aof.restart_stream_at(ends[5]);
        assert!(aof.streams_own());
        for (i, &from) in [500].iter().chain(&ends).enumerate() {
            let got: Vec<u8> = aof.add_tap_from(tap().0, from).ok().unwrap().concat();
            assert_eq!(got, stream[at(from)..], "from record {i}");
        }
        assert!(aof.add_tap_from(tap().0, 499).is_err());
        // A gap (the new master does not continue what is held): the backlog starts again.
        aof.stop_stream();
        aof.mirror(Bytes::from_static(b"xyz"), 10_003);
        assert_eq!(aof.backlog_info().first_byte_offset, 10_001);
        aof.restart_stream_at(20_000);
        assert_eq!(aof.backlog_info().first_byte_offset, 20_001);
        assert_eq!(aof.backlog_info().histlen, 0);
    }

    fn commands() -> impl Strategy<Value = Vec<Vec<(usize, Vec<Bytes>)>>> {
        let arg = proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from);
        let cmd = (0usize..16, proptest::collection::vec(arg, 1..5));
        proptest::collection::vec(proptest::collection::vec(cmd, 1..3), 1..12)
    }

    proptest! {
        /// Records read back as written; any cut yields exactly the records wholly before it
        /// and then `Truncated` (or `End` at a boundary), never a wrong record.
        #[test]
        fn records_round_trip_and_cuts_give_prefixes(records in commands(), cut in any::<prop::sample::Index>()) {
            let mut file = Vec::new();
            let mut ends = Vec::new();
            for r in &records {
                command_record(&mut file, r);
                ends.push(file.len());
            }
            let cut = cut.index(file.len() + 1);
            let mut reader = Reader::new(&file[..cut], 0);
            let mut got = Vec::new();
            let end = loop {
                match reader.next_record().unwrap() {
                    Next::Record(p) => {
                        prop_assert_eq!(p[0], KIND_COMMANDS);
                        got.push(decode_commands(&mut Cursor::new(&p[1..])).unwrap());
                    }
                    other => break other,
                }
            };
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            prop_assert_eq!(&got[..], &records[..whole]);
            if ends.contains(&cut) || cut == 0 {
                prop_assert_eq!(end, Next::End);
            } else {
                prop_assert_eq!(end, Next::Truncated);
            }
        }
    }
}
