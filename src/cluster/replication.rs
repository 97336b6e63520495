//! Replicas: a replica keeps a copy of its master's data, fed over the bus, and takes over its
//! master's slots when the master fails (the election is in [`super::state`]).
//!
//! The stream (`Replicate`): the master takes an image of its keyspace with every shard locked
//! and, in the same critical section, opens a tap on its write log ([`crate::persist::aof::Tap`]),
//! so the image and the tap split the history exactly, as a log rewrite does. It sends the image
//! as the log's ENTRIES records, a `sync_done` frame carrying the offset at the cut, then every
//! write record as it is appended. Records are the append-only log's own (framed, crc32 each),
//! applied by the replica as start-up applies the log. A full sync first empties the replica.
//!
//! Partial resync (Redis's PSYNC2): a master keeps the last `repl-backlog-size` bytes of its
//! stream, named by its replication ID. A replica whose link broke asks to continue from its
//! offset and gets only what it missed, while the backlog still holds it. A replica promoted to
//! master continues its old master's offsets under a new ID and remembers the old one up to the
//! offset where it took over, so its former siblings that stand at that offset continue from it
//! too. A replica keeps a backlog as well, of its master's stream as it arrives, so once
//! promoted it serves siblings that were behind it. The position (ID and offset) is saved with
//! the data, in every snapshot and at the end of the log at a clean shutdown, so a node that
//! restarts continues too when its master's backlog still holds what it missed (or, restarted as
//! master, lets replicas that stood at its offset continue). A replica that is too far behind,
//! or one killed with only its log on, syncs in full.
//!
//! Consistency: replication is asynchronous, as Redis's. A write acknowledged by a master that
//! fails before its replica received it is lost when the replica takes over; `INFO replication`
//! shows the offsets so the gap can be watched.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tonic::Status;

use super::Cluster;
use super::bus::{self, MessageType, pb};
use super::state::Header;
use crate::node::Node;
use crate::persist::aof::{self, Tap};
use crate::persist::format::{Next, Reader};
use crate::persist::snapshot::{self, Image};

/// Frames carry about this many bytes of records.
const FRAME_BYTES: usize = 1 << 20;

/// What `INFO replication` shows, on both sides.
#[derive(Default)]
pub struct Replication {
    // A replica's side.
    /// The stream from the master is open and the full copy arrived.
    pub link_up: AtomicBool,
    /// When the link went down after being up (0: up, or never up).
    pub down_since_ms: AtomicI64,
    /// This node holds a full copy of its current master's data (a replica that never synced
    /// never takes over).
    pub synced: AtomicBool,
    pub sync_in_progress: AtomicBool,
    /// The master's offset applied here.
    pub offset: AtomicU64,
    pub last_io_ms: AtomicI64,
    /// The master whose data this node holds.
    pub synced_from: Mutex<Option<String>>,
    pub full_syncs: AtomicU64,
    /// Times this node took over its master's slots.
    pub failovers: AtomicU64,
    // A master's side.
    /// Replicas being fed: id -> state.
    pub feeds: Mutex<HashMap<String, FeedState>>,
    /// Signalled when a replica acknowledges an offset (WAIT).
    pub acked: tokio::sync::Notify,
    /// Syncs served: full, partial, and partial ones refused (a full sync followed).
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    // Both sides.
    /// The ID of the stream this node's data follows: its own as a master (Redis's
    /// `master_replid`), its master's as a replica. Empty until first asked for.
    replid: Mutex<String>,
    /// The stream this node followed before it was promoted, and the offset where it took
    /// over (`master_replid2`, `second_repl_offset` - 1).
    pub replid2: Mutex<Option<(String, u64)>>,
    /// Bumped to cut a replica's link to its master (`CLIENT KILL TYPE master`); it
    /// reconnects and continues with a partial resync.
    pub link_generation: AtomicU64,
    pub link_cut: tokio::sync::Notify,
    /// A replica: the data here is stream `replid` up to `offset`, whole (it may continue).
    holds_stream: AtomicBool,
    /// A replica's partial resyncs.
    pub partial_syncs: AtomicU64,
    /// Held while a replica applies a frame and moves its offset, so a snapshot (or shutdown)
    /// sees data and offset agree.
    apply_gate: Mutex<()>,
    /// Set at shutdown: nothing more is applied.
    frozen: AtomicBool,
    /// Automatic distribution chose this replica to start a shard of its own: its link is cut
    /// and [`run`] turns it into an empty master (see [`Replication::leave_shard`]).
    leaving: AtomicBool,
}

#[derive(Debug, Clone)]
pub struct FeedState {
    pub ip: String,
    pub port: u16,
    /// Still sending the full copy.
    pub syncing: bool,
    /// The offset the replica says it applied.
    pub acked: u64,
    /// When it last said so (a replica acknowledges every frame, and once a second when idle).
    pub acked_ms: i64,
}

impl Replication {
    /// The stream from the master is up (INFO's link status; the down time is reset).
    fn link_established(&self) {
        self.link_up.store(true, Ordering::Relaxed);
        self.down_since_ms.store(0, Ordering::Relaxed);
    }

    /// The stream from the master ended; if it was up, it is down from now on.
    fn link_lost(&self) {
        if self.link_up.swap(false, Ordering::Relaxed) {
            self.down_since_ms
                .store(crate::commands::now_ms(), Ordering::Relaxed);
        }
    }

    /// This node's replication ID (see the field).
    pub fn replid(&self) -> String {
        let mut id = self.replid.lock();
        if id.is_empty() {
            *id = crate::node::random_run_id();
        }
        id.clone()
    }

    fn set_replid(&self, id: String) {
        if !id.is_empty() {
            *self.replid.lock() = id;
        }
    }

    /// A replica promoted to master: its stream goes on from the offset it applied, under a
    /// new ID, and the old one is served up to that offset (see the module doc).
    pub fn became_master(&self, node: &Node) {
        // Its own clock expires keys from now on (and its stream carries the deletions).
        node.store.keep_expired.store(false, Ordering::Relaxed);
        let offset = self.offset.load(Ordering::Relaxed);
        let old = std::mem::replace(&mut *self.replid.lock(), crate::node::random_run_id());
        *self.replid2.lock() = (!old.is_empty()).then_some((old, offset));
        node.store.aof.restart_stream_at(offset);
        tracing::info!(
            offset,
            "Replication: this node's stream continues its old master's at offset {offset}"
        );
    }

    /// A master turned replica: it no longer streams its own writes (its backlog goes on with
    /// its new master's stream). What it holds is its
    /// own stream up to its offset, which its new master continues if it took over at that
    /// very offset (no write was lost in between).
    pub fn became_replica(&self, node: &Node) {
        let offset = node.store.aof.repl_offset();
        node.store.aof.stop_stream();
        self.offset.store(offset, Ordering::Relaxed);
        self.replid();
        self.holds_stream.store(true, Ordering::Relaxed);
    }

    /// A replica that dropped its master's data and is now an empty master (CLUSTER RESET, or
    /// automatic distribution starting a shard): nobody holds what it holds, so its stream
    /// starts under a new ID and serves no old one. Call with the gate held, together with the
    /// drop, so that a snapshot sees the old keys with the old position or neither.
    pub fn became_empty_master(&self, node: &Node) {
        node.store.keep_expired.store(false, Ordering::Relaxed);
        self.synced.store(false, Ordering::Relaxed);
        *self.synced_from.lock() = None;
        self.holds_stream.store(false, Ordering::Relaxed);
        *self.replid.lock() = crate::node::random_run_id();
        *self.replid2.lock() = None;
        node.store
            .aof
            .restart_stream_at(self.offset.load(Ordering::Relaxed));
    }

    /// DEBUG CHANGE-REPL-ID: a new replication ID and no old one (replicas then need a full
    /// copy).
    pub fn change_id(&self) {
        *self.replid.lock() = crate::node::random_run_id();
        *self.replid2.lock() = None;
    }

    /// Asks [`run`] to turn this replica into the empty master of a new shard (automatic
    /// distribution): the link to its master is cut first, so nothing is applied after its
    /// data is dropped.
    pub fn leave_shard(&self) {
        self.leaving.store(true, Ordering::Release);
        self.link_generation.fetch_add(1, Ordering::Relaxed);
        self.link_cut.notify_waiters();
    }

    /// Whether [`Replication::leave_shard`] was asked and not done yet.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    /// The replication stream this node's data is, and how far: (replication ID, offset).
    /// None while a replica holds no whole copy. Exact inside a snapshot's critical section
    /// with [`Replication::gate`] held: a master's records are appended under the shard locks,
    /// a replica applies under the gate.
    pub fn position(&self, node: &Node) -> Option<(String, u64)> {
        if node.store.aof.streams_own() {
            Some((self.replid(), node.store.aof.repl_offset()))
        } else if self.holds_stream.load(Ordering::Relaxed) {
            Some((self.replid(), self.offset.load(Ordering::Relaxed)))
        } else {
            None
        }
    }

    /// Stops a replica's applying for a moment (while held) or for good (`freeze`).
    pub fn gate(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.apply_gate.lock()
    }

    /// [`Replication::gate`] if no one holds it.
    pub fn try_gate(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        self.apply_gate.try_lock()
    }

    /// At shutdown: nothing more is applied, so the position saved with the data stays true.
    pub fn freeze(&self) {
        let _gate = self.gate();
        self.frozen.store(true, Ordering::Relaxed);
    }

    /// At start-up, the position saved with the data just loaded. A replica asks its master to
    /// continue from there. A master starts a new stream at that offset and serves the loaded
    /// one up to it, as a promoted replica does (Redis shifts its ID the same way): replicas
    /// that stood exactly there continue, and one that had received writes the data on disk
    /// lacks (a snapshot older than a crash) cannot continue a history that was not kept.
    pub fn restore(&self, node: &Node, is_master: bool, replid: String, offset: u64) {
        self.set_replid(replid);
        if is_master {
            self.offset.store(offset, Ordering::Relaxed);
            self.became_master(node);
        } else {
            self.offset.store(offset, Ordering::Relaxed);
            self.holds_stream.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the stream `id` up to `offset` is one this master can continue.
    fn continues(&self, id: &str, offset: u64) -> bool {
        if *id == *self.replid() {
            return true;
        }
        matches!(&*self.replid2.lock(), Some((old, at)) if old == id && offset <= *at)
    }

    /// Replicas done with their first sync whose last acknowledgement is at most `max_lag_s`
    /// seconds old (Redis's `repl_good_slaves_count`).
    pub fn good_replicas(&self, max_lag_s: i64, now_ms: i64) -> usize {
        self.feeds
            .lock()
            .values()
            .filter(|f| !f.syncing && (now_ms - f.acked_ms) / 1000 <= max_lag_s)
            .count()
    }

    /// Replicas that acknowledged `offset` or more.
    pub fn acked_at_least(&self, offset: u64) -> usize {
        self.feeds
            .lock()
            .values()
            .filter(|f| !f.syncing && f.acked >= offset)
            .count()
    }

    /// The offset this node announces: a master's stream, or what a replica applied.
    pub fn announced_offset(&self, node: &Node, is_master: bool) -> u64 {
        if is_master {
            node.store.aof.repl_offset()
        } else {
            self.offset.load(Ordering::Relaxed)
        }
    }
}

/// A writer that cuts what `snapshot::write_entries` writes into frames of whole records (it
/// writes one record per `write_all`).
struct FrameWriter<'a> {
    buf: Vec<u8>,
    out: &'a mpsc::Sender<Result<pb::ReplicationFrame, Status>>,
    sent: u64,
}

impl Write for FrameWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= FRAME_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // The copy's frames carry no offset: the `sync_done` frame after them does.
        let frame = records_frame(std::mem::take(&mut self.buf), 0);
        self.sent += frame.records.len() as u64;
        self.out
            .blocking_send(Ok(frame))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "replica gone"))
    }
}

/// A master's side of `Replicate`: the frames to stream to replica `from`, whose later
/// messages (`acks`) acknowledge what it applied.
pub fn serve(
    node: Arc<Node>,
    from: Header,
    psync: Option<(String, u64)>,
    mut acks: tonic::Streaming<pb::ReplicateRequest>,
) -> Result<mpsc::Receiver<Result<pb::ReplicationFrame, Status>>, Status> {
    let Some(cluster) = node.cluster.clone() else {
        return Err(Status::failed_precondition("cluster disabled"));
    };
    {
        let st = cluster.state.lock();
        if !st.me().is_master() {
            return Err(Status::failed_precondition("not a master"));
        }
        if !st.nodes.contains_key(&from.id) {
            return Err(Status::failed_precondition("unknown replica"));
        }
    }
    let (out, rx) = mpsc::channel(4);
    let (tap_tx, tap_rx) = mpsc::unbounded_channel::<Bytes>();
    let queued = Arc::new(AtomicU64::new(0));
    let tap = Tap::for_bus(tap_tx, queued.clone());
    cluster.repl.feeds.lock().insert(
        from.id.clone(),
        FeedState {
            ip: from.endpoint.ip.clone(),
            port: from.endpoint.port,
            syncing: true,
            acked: 0,
            acked_ms: crate::commands::now_ms(),
        },
    );
    {
        let node = node.clone();
        let replica = from.id.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = acks.message().await {
                let Some(c) = node.cluster.as_ref() else {
                    return;
                };
                if let Some(f) = c.repl.feeds.lock().get_mut(&replica) {
                    f.acked = f.acked.max(m.ack_offset);
                    f.acked_ms = crate::commands::now_ms();
                }
                c.repl.acked.notify_waiters();
            }
        });
    }
    let replica = from.id.clone();
    // A partial resync when the replica's stream is ours and the backlog holds what follows.
    let tap = match psync {
        Some((id, offset)) if cluster.repl.continues(&id, offset) => {
            match node.store.aof.add_tap_from(tap, offset) {
                Ok(backlog) => {
                    cluster.repl.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
                    let bytes: usize = backlog.iter().map(|r| r.len()).sum();
                    tracing::info!(replica = %replica, offset, backlog_bytes = bytes, "Partial resynchronization request from replica accepted: sending {bytes} bytes of backlog");
                    tokio::spawn(stream(
                        node.clone(),
                        replica,
                        out,
                        tap_rx,
                        queued,
                        offset,
                        Some(backlog),
                    ));
                    return Ok(rx);
                }
                Err(tap) => {
                    cluster
                        .repl
                        .sync_partial_err
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(replica = %replica, offset, "Unable to partial resync with replica: its offset is outside the backlog; starting a full sync");
                    tap
                }
            }
        }
        Some((id, offset)) => {
            cluster
                .repl
                .sync_partial_err
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(replica = %replica, offset, "Partial resynchronization not accepted: replication ID {id} is not ours; starting a full sync");
            tap
        }
        None => {
            tracing::info!(replica = %replica, "Replica asks for synchronization: starting a full sync");
            tap
        }
    };
    cluster.repl.sync_full.fetch_add(1, Ordering::Relaxed);
    drop(cluster);
    tokio::spawn(async move {
        let node2 = node.clone();
        let out2 = out.clone();
        // The image: every shard locked while it is copied and the tap opened; encoded and sent
        // off the async workers.
        let copied = tokio::task::spawn_blocking(move || {
            let mut at = 0;
            let image = Image::capture_node(&node2, || at = node2.store.aof.add_tap(tap));
            let keys = image.keys();
            let mut w = FrameWriter {
                buf: Vec::with_capacity(FRAME_BYTES + 4096),
                out: &out2,
                sent: 0,
            };
            snapshot::write_entries(&mut w, &image)?;
            w.flush()?;
            drop(image);
            Ok::<_, std::io::Error>((at, keys, w.sent))
        })
        .await;
        let Some(cluster) = node.cluster.clone() else {
            return;
        };
        let (offset, keys, bytes) = match copied {
            Ok(Ok(v)) => v,
            _ => {
                cluster.repl.feeds.lock().remove(&replica);
                return;
            }
        };
        cluster
            .stats
            .traffic
            .sent_bytes(MessageType::Replication, bytes);
        tracing::info!(replica = %replica, keys, bytes, "Synchronization with replica succeeded");
        stream(node, replica, out, tap_rx, queued, offset, None).await;
    });
    Ok(rx)
}

/// A frame of stream records ending at replication offset `offset`.
fn records_frame(records: Vec<u8>, offset: u64) -> pb::ReplicationFrame {
    pb::ReplicationFrame {
        records,
        sync_done: false,
        offset,
        replid: String::new(),
        partial: false,
    }
}

/// Streams to a replica that holds our data up to `offset` (its copy just sent, or `backlog`
/// for a partial resync): the `sync_done` frame, what `backlog` holds after `offset`, then
/// every record the tap brings, until the replica or this node's master role goes.
async fn stream(
    node: Arc<Node>,
    replica: String,
    out: mpsc::Sender<Result<pb::ReplicationFrame, Status>>,
    mut tap_rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicU64>,
    mut offset: u64,
    backlog: Option<Vec<Bytes>>,
) {
    let Some(cluster) = node.cluster.clone() else {
        return;
    };
    let start = pb::ReplicationFrame {
        records: Vec::new(),
        sync_done: true,
        offset,
        replid: cluster.repl.replid(),
        partial: backlog.is_some(),
    };
    if out.send(Ok(start)).await.is_err() {
        cluster.repl.feeds.lock().remove(&replica);
        return;
    }
    if let Some(backlog) = backlog {
        let mut records = Vec::new();
        for (i, r) in backlog.iter().enumerate() {
            records.extend_from_slice(r);
            if records.len() >= FRAME_BYTES || i + 1 == backlog.len() {
                offset += records.len() as u64;
                let frame = records_frame(std::mem::take(&mut records), offset);
                cluster.stats.traffic.sent(MessageType::Replication, &frame);
                if out.send(Ok(frame)).await.is_err() {
                    cluster.repl.feeds.lock().remove(&replica);
                    return;
                }
            }
        }
    }
    if let Some(f) = cluster.repl.feeds.lock().get_mut(&replica) {
        f.syncing = false;
        // Online from now: a long full sync is no lag (Redis resets the ack time here too).
        f.acked_ms = crate::commands::now_ms();
    }
    let mut check = tokio::time::interval(Duration::from_millis(200));
    // Shutting down: until when the replica may take to acknowledge every write.
    let mut draining: Option<tokio::time::Instant> = None;
    let in_sync = || {
        let acked = cluster.repl.feeds.lock().get(&replica).map(|f| f.acked);
        acked >= Some(node.store.aof.repl_offset())
    };
    loop {
        let first = tokio::select! {
            // As Redis 7 at shutdown: the replica gets every write the master made (at most
            // `shutdown-timeout`; SHUTDOWN NOW does not wait), so a failover loses none.
            _ = node.shutdown.cancelled(), if draining.is_none() => {
                if node.persist.shutdown_now.load(Ordering::Relaxed) {
                    break;
                }
                let limit = node.config.read().shutdown_timeout_secs.max(1);
                draining = Some(tokio::time::Instant::now() + Duration::from_secs(limit));
                continue;
            }
            _ = cluster.repl.acked.notified(), if draining.is_some() => {
                if in_sync() {
                    tracing::info!(replica = %replica, "Replica acknowledged every write: shutting down its stream");
                    break;
                }
                continue;
            }
            _ = out.closed() => break,
            // A master that became a replica (failover) feeds nobody.
            _ = check.tick() => {
                if let Some(deadline) = draining {
                    if in_sync() {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!(replica = %replica, "Lagging replica at shutdown: it did not acknowledge every write within shutdown-timeout");
                        break;
                    }
                    continue;
                }
                if cluster.state.lock().me().is_master() {
                    continue;
                }
                break;
            }
            r = tap_rx.recv() => r,
        };
        // None: the log dropped the tap (the replica fell too far behind).
        let Some(first) = first else {
            tracing::warn!(replica = %replica, "replica fell too far behind: closing its stream (it will sync again)");
            break;
        };
        let mut records = first.to_vec();
        while records.len() < FRAME_BYTES {
            match tap_rx.try_recv() {
                Ok(r) => records.extend_from_slice(&r),
                Err(_) => break,
            }
        }
        queued.fetch_sub(records.len() as u64, Ordering::Relaxed);
        offset += records.len() as u64;
        let frame = records_frame(records, offset);
        cluster.stats.traffic.sent(MessageType::Replication, &frame);
        if out.send(Ok(frame)).await.is_err() {
            break;
        }
    }
    cluster.repl.feeds.lock().remove(&replica);
    tracing::info!(replica = %replica, "Connection with replica lost");
}

/// A replica's side: keeps a stream from the current master open while this node is a replica,
/// applying what arrives. Reconnects after a break, continuing from its offset when the
/// master's backlog still holds what it missed.
pub async fn run(node: Arc<Node>) {
    let Some(cluster) = node.cluster.clone() else {
        return;
    };
    let repl = &cluster.repl;
    let replica = !cluster.state.lock().me().is_master();
    node.store.keep_expired.store(replica, Ordering::Relaxed);
    // The data files first: what they hold (and the position saved with them) decides whether
    // the master can continue from there.
    while !node.ready.load(Ordering::Acquire) {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    // Failed attempts in a row: only the first is logged as a warning (a master that is down
    // is retried twice a second until it is back or replaced).
    let mut failures = 0u32;
    loop {
        if repl.is_leaving() {
            start_own_shard(&node, &cluster);
        }
        let target = {
            let st = cluster.state.lock();
            let me = st.me();
            // A replica's keys expire by its master's stream only (see `Store::keep_expired`);
            // set under the state lock, so a promotion (which clears it under the same lock)
            // is not overwritten by this older view.
            node.store.keep_expired.store(
                !me.is_master() && me.replica_of.is_some(),
                Ordering::Relaxed,
            );
            match me.replica_of.as_deref().filter(|_| !me.is_master()) {
                Some(m) => st.nodes.get(m).map(|n| {
                    (
                        m.to_string(),
                        format!("{}:{}", n.endpoint.ip, n.endpoint.bus_port),
                    )
                }),
                None => None,
            }
        };
        let wait = match target {
            None => {
                // A master: the next link (as a replica again) starts with no down time.
                repl.link_up.store(false, Ordering::Relaxed);
                repl.down_since_ms.store(0, Ordering::Relaxed);
                Duration::from_millis(100)
            }
            Some((master, addr)) => {
                if node.store.aof.streams_own() {
                    // This node was a master until now.
                    repl.became_replica(&node);
                }
                if repl.synced_from.lock().as_deref() != Some(master.as_str()) {
                    repl.synced.store(false, Ordering::Relaxed);
                }
                if failures == 0 {
                    tracing::info!(master = %master, "Connecting to MASTER {addr}");
                }
                let syncs = || {
                    repl.full_syncs.load(Ordering::Relaxed)
                        + repl.partial_syncs.load(Ordering::Relaxed)
                };
                let before = syncs();
                let generation = repl.link_generation.load(Ordering::Relaxed);
                let result = link(&node, &master, &addr).await;
                // Cut on request: reconnect at Redis's pace (its replication cron runs once a
                // second).
                let pause = if repl.link_generation.load(Ordering::Relaxed) != generation {
                    Duration::from_secs(1)
                } else {
                    Duration::from_millis(500)
                };
                if syncs() != before {
                    failures = 0; // it worked for a while: a new break is news
                }
                match result {
                    Ok(()) => failures = 0,
                    Err(e) if failures == 0 => {
                        failures += 1;
                        tracing::warn!(master = %master, "replication link to {addr}: {e}; retrying");
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::debug!(master = %master, "replication link to {addr}: {e}");
                    }
                }
                repl.link_lost();
                repl.sync_in_progress.store(false, Ordering::Relaxed);
                pause
            }
        };
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A replica chosen to start a shard (see [`Replication::leave_shard`]), outside any link:
/// unless the choice no longer stands (the table changed meanwhile: it then stays and
/// reconnects), it drops what it holds of its master's data, then becomes an empty master whose
/// stream starts under a new ID (nobody holds it, so nobody continues it). While it leaves it
/// stands for no election (see the driver's tick and CLUSTER FAILOVER), so its data is never
/// the shard's when it goes.
fn start_own_shard(node: &Arc<Node>, cluster: &Cluster) {
    use super::state::{Election, ReplicaMove};
    let repl = &cluster.repl;
    {
        let mut st = cluster.state.lock();
        if st.me().is_master() || st.auto_replica_move() != Some(ReplicaMove::NewShard) {
            drop(st);
            repl.leaving.store(false, Ordering::Release);
            tracing::info!(
                "automatic distribution: starting a shard is no longer needed; this replica stays"
            );
            return;
        }
        st.election = Election::default();
    }
    let dropped = {
        let _gate = repl.gate();
        let dropped = drop_keys(node, false, true);
        node.store.add_dirty(dropped as u64 + 1);
        repl.became_empty_master(node);
        let now = crate::commands::now_ms();
        cluster.change(|st| st.leave_shard(now));
        dropped
    };
    repl.leaving.store(false, Ordering::Release);
    tracing::info!(
        keys = dropped,
        "automatic distribution: this replica dropped its master's data and starts a shard of its own (cluster.replicas)"
    );
    // A snapshot holding the old master's keys must not bring them back after a restart.
    if !node.config.read().get("save").is_empty() {
        crate::persist::bgsave(node);
    }
}

/// Whether this node is still a replica of `master`.
fn still_following(node: &Node, master: &str) -> bool {
    node.cluster.as_ref().is_some_and(|c| {
        let st = c.state.lock();
        let me = st.me();
        !me.is_master() && me.replica_of.as_deref() == Some(master)
    })
}

async fn link(node: &Arc<Node>, master: &str, addr: &str) -> Result<(), String> {
    let cluster = node.cluster.clone().ok_or("cluster disabled")?;
    let repl = &cluster.repl;
    let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let channel = ep.connect().await.map_err(|e| e.to_string())?;
    let mut client = pb::cluster_bus_client::ClusterBusClient::new(channel)
        .max_decoding_message_size(bus::MAX_MESSAGE_BYTES);
    let sender = cluster.my_pb_header();
    // Ask to continue where we are when what we hold is this master's stream (or the stream it
    // followed before it took over from our old master).
    let holds = repl.holds_stream.load(Ordering::Relaxed);
    let psync = holds.then(|| (repl.replid(), repl.offset.load(Ordering::Relaxed)));
    let hello = pb::ReplicateRequest {
        sender: Some(sender),
        ack_offset: 0,
        replid: psync.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
        offset: psync.as_ref().map_or(0, |p| p.1),
    };
    cluster.stats.traffic.sent(MessageType::Replication, &hello);
    // Our side of the stream: the hello, then an ack after every frame applied.
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<pb::ReplicateRequest>();
    let _ = ack_tx.send(hello);
    let outbound = futures_util::stream::poll_fn(move |cx| ack_rx.poll_recv(cx));
    let mut stream = client
        .replicate(bus::with_secret(outbound, cluster.cfg.secret.as_deref()))
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    let ack = |offset: u64| {
        let _ = ack_tx.send(pb::ReplicateRequest {
            sender: None,
            ack_offset: offset,
            ..Default::default()
        });
    };
    repl.sync_in_progress.store(true, Ordering::Relaxed);
    repl.synced.store(false, Ordering::Relaxed);
    *repl.synced_from.lock() = None;
    match &psync {
        Some((id, offset)) => {
            tracing::info!(master = %master, "Trying a partial resynchronization (request {id}:{offset})")
        }
        None => tracing::info!(master = %master, "MASTER <-> REPLICA sync started: full sync"),
    }
    let mut applier = Applier::new(node.clone())?;
    let mut first = true;
    let mut loaded = 0u64;
    let mut check = tokio::time::interval(Duration::from_millis(200));
    let mut last_ack_ms = 0;
    let generation = repl.link_generation.load(Ordering::Relaxed);
    let cut = || repl.link_generation.load(Ordering::Relaxed) != generation;
    loop {
        if cut() {
            return Err("link cut on request (CLIENT KILL TYPE master)".into());
        }
        let frame = tokio::select! {
            _ = node.shutdown.cancelled() => return Ok(()),
            _ = repl.link_cut.notified() => continue,
            // Promoted, or told to follow another master, while the stream is idle.
            _ = check.tick() => {
                if !still_following(node, master) {
                    return Ok(());
                }
                // Idle: acknowledge once a second all the same, so the master knows this
                // replica is there (`min-replicas-max-lag`), as Redis's REPLCONF ACK.
                let now = crate::commands::now_ms();
                if repl.synced.load(Ordering::Relaxed) && now - last_ack_ms >= 1000 {
                    last_ack_ms = now;
                    ack(repl.offset.load(Ordering::Relaxed));
                }
                continue;
            }
            f = stream.message() => f.map_err(|e| e.message().to_string())?,
        };
        let Some(frame) = frame else {
            return Err("the master closed the stream".into());
        };
        cluster
            .stats
            .traffic
            .received(MessageType::Replication, &frame);
        repl.last_io_ms
            .store(crate::commands::now_ms(), Ordering::Relaxed);
        if !still_following(node, master) {
            return Ok(());
        }
        let _gate = repl.gate();
        // Asked again under the gate: a CLUSTER RESET may have dropped this master's data
        // while the frame arrived.
        if repl.frozen.load(Ordering::Relaxed) || !still_following(node, master) {
            return Ok(());
        }
        if first && frame.sync_done && frame.partial {
            // The master continues the stream from our offset: nothing to copy.
            first = false;
            if psync.as_ref().map(|p| p.1) != Some(frame.offset) {
                return Err(format!(
                    "the master continues at offset {}, not ours",
                    frame.offset
                ));
            }
            repl.set_replid(frame.replid);
            // What the backlog holds goes on when it ends here (see `Aof::mirror`).
            node.store.aof.mirror(Bytes::new(), frame.offset);
            repl.sync_in_progress.store(false, Ordering::Relaxed);
            repl.synced.store(true, Ordering::Relaxed);
            repl.link_established();
            repl.partial_syncs.fetch_add(1, Ordering::Relaxed);
            *repl.synced_from.lock() = Some(master.to_string());
            tracing::info!(master = %master, offset = frame.offset, "MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization");
            continue;
        }
        if first {
            // A full sync replaces whatever this node held.
            first = false;
            repl.holds_stream.store(false, Ordering::Relaxed);
            flush_all(node);
        }
        let records = frame.records;
        let n = match applier.apply(&records) {
            Ok(n) => n,
            Err(e) => {
                // Part of a frame applied: this copy can only be replaced.
                repl.holds_stream.store(false, Ordering::Relaxed);
                return Err(e);
            }
        };
        loaded += n;
        if frame.sync_done {
            repl.set_replid(frame.replid);
            node.store.aof.mirror_from(frame.offset);
            repl.holds_stream.store(true, Ordering::Relaxed);
            ack(frame.offset);
            repl.offset.store(frame.offset, Ordering::Relaxed);
            repl.sync_in_progress.store(false, Ordering::Relaxed);
            repl.synced.store(true, Ordering::Relaxed);
            repl.link_established();
            repl.full_syncs.fetch_add(1, Ordering::Relaxed);
            *repl.synced_from.lock() = Some(master.to_string());
            tracing::info!(master = %master, records = loaded, "MASTER <-> REPLICA sync: Finished with success");
            if node.store.aof.is_on() {
                // The log holds what this node had before the sync: start it again from the
                // copy (as Redis restarts its log after a full sync).
                crate::persist::bgrewriteaof(node);
            }
        } else if frame.offset > 0 {
            node.store.aof.mirror(Bytes::from(records), frame.offset);
            repl.offset.store(frame.offset, Ordering::Relaxed);
            ack(frame.offset);
        }
    }
}

/// Empties the keyspace for a full sync (in the background with `replica-lazy-flush`), and
/// forgets the pins of slot moves (the master's image carries its own).
fn flush_all(node: &Node) {
    let lazy = node.config.read().get_bool("replica-lazy-flush");
    drop_keys(node, lazy, false);
    // The master's copy brings its function libraries (or none), as Redis's emptyData.
    crate::commands::functions::flush_libraries(node);
}

/// Empties the keyspace and forgets the pins of slot moves; `logged`: a FLUSHALL goes into the
/// log too, so a restart does not bring the keys back. Returns how many keys went.
pub(crate) fn drop_keys(node: &Node, lazy: bool, logged: bool) -> usize {
    let mut ks = node.store.lock_all(0);
    let dropped = ks.flush_all(lazy);
    for (_, shard) in ks.shards_mut() {
        shard.pinned.clear();
    }
    if logged {
        node.store
            .aof
            .append_command(0, &[Bytes::from_static(b"FLUSHALL")]);
    }
    dropped
}

/// Applies replicated records as start-up applies the log, and logs the writes in this node's
/// own log.
struct Applier {
    node: Arc<Node>,
    lim: crate::store::rdb::Limits,
}

impl Applier {
    fn new(node: Arc<Node>) -> Result<Applier, String> {
        let lim = crate::commands::keys::rdb_limits(&node);
        Ok(Applier { node, lim })
    }

    /// Applies every record of a frame; returns how many.
    fn apply(&mut self, records: &[u8]) -> Result<u64, String> {
        let mut replayer = crate::commands::Replayer::new(&self.node)
            .ok_or("no client for the replication stream")?
            .logging();
        let mut r = Reader::new(records, 0);
        let mut n = 0;
        loop {
            match r.next_record().map_err(|e| e.to_string())? {
                Next::Record(p) => {
                    match p.first() {
                        Some(&aof::KIND_COMMANDS) => {
                            let cmds = aof::decode_commands(
                                &mut crate::persist::format::Cursor::new(&p[1..]),
                            )
                            .map_err(|_| "undecodable command record")?;
                            // A record of several commands is a transaction (EXEC, a script):
                            // applied as one step.
                            if cmds.len() > 1 {
                                replayer.replay_all(&cmds)?;
                            } else {
                                for (db, args) in cmds {
                                    replayer.replay(db, &args)?;
                                }
                            }
                        }
                        Some(&aof::KIND_ENTRIES) => {
                            snapshot::load_entries(&p[1..], &self.node.store, &self.lim, None)
                                .map_err(|_| "undecodable entries record")?;
                        }
                        Some(&aof::KIND_FUNCTIONS) => {
                            crate::commands::functions::load_saved(&self.node, &p[1..])?;
                        }
                        Some(&kind @ (aof::KIND_PINS | aof::KIND_MOVED)) => {
                            let store = &self.node.store;
                            crate::persist::apply_keys_record(store, kind, &p[1..])
                                .map_err(|_| "undecodable keys record")?;
                            // Logged (and fed on to our own replicas) as the master logged it:
                            // the same record, not decoded again.
                            if store.aof.is_recording() {
                                store.aof.append_with(|out| {
                                    crate::persist::format::write_record(out, &p)
                                });
                            }
                        }
                        _ => return Err("unknown record kind".into()),
                    }
                    n += 1;
                }
                Next::End => return Ok(n),
                Next::Truncated => return Err("a record cut in two".into()),
                Next::Corrupt(why) => return Err(format!("a damaged record: {why}")),
            }
        }
    }
}
