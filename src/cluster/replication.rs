//! Replicas: a replica keeps a copy of its master's data, fed over the bus, and takes over its
//! master's slots when the master fails (the election is in [`super::state`]).
//!
//! The stream (`Replicate`): the master takes an image of its keyspace with every shard locked
//! and, in the same critical section, opens a tap on its write log ([`crate::persist::aof::Tap`]),
//! so the image and the tap split the history exactly, as a log rewrite does. It sends the image
//! as the log's ENTRIES records, a `sync_done` frame carrying the offset at the cut, then every
//! write record as it is appended. Records are the append-only log's own (framed, crc32 each),
//! applied by the replica as start-up applies the log. There is no partial resync: a replica that
//! reconnects, or a master that changed, means a full sync, which first empties the replica.
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
}

#[derive(Debug, Clone)]
pub struct FeedState {
    pub ip: String,
    pub port: u16,
    /// Still sending the full copy.
    pub syncing: bool,
    /// The offset the replica says it applied.
    pub acked: u64,
}

impl Replication {
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
        let frame = pb::ReplicationFrame {
            records: std::mem::take(&mut self.buf),
            sync_done: false,
            offset: 0,
        };
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
    let (tap_tx, mut tap_rx) = mpsc::unbounded_channel::<Bytes>();
    let queued = Arc::new(AtomicU64::new(0));
    let tap = Tap {
        tx: tap_tx,
        queued: queued.clone(),
    };
    cluster.repl.feeds.lock().insert(
        from.id.clone(),
        FeedState {
            ip: from.endpoint.ip.clone(),
            port: from.endpoint.port,
            syncing: true,
            acked: 0,
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
                }
                c.repl.acked.notify_waiters();
            }
        });
    }
    tracing::info!(replica = %from.id, "Replica asks for synchronization: starting a full sync");
    let replica = from.id.clone();
    drop(cluster);
    tokio::spawn(async move {
        let node2 = node.clone();
        let out2 = out.clone();
        // The image: every shard locked while it is copied and the tap opened; encoded and sent
        // off the async workers.
        let copied = tokio::task::spawn_blocking(move || {
            let mut at = 0;
            let image = Image::capture(&node2.store, || at = node2.store.aof.add_tap(tap));
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
        let (mut offset, keys, bytes) = match copied {
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
        let done = pb::ReplicationFrame {
            records: Vec::new(),
            sync_done: true,
            offset,
        };
        if out.send(Ok(done)).await.is_err() {
            cluster.repl.feeds.lock().remove(&replica);
            return;
        }
        tracing::info!(replica = %replica, keys, bytes, "Synchronization with replica succeeded");
        if let Some(f) = cluster.repl.feeds.lock().get_mut(&replica) {
            f.syncing = false;
        }
        let mut check = tokio::time::interval(Duration::from_millis(200));
        loop {
            let first = tokio::select! {
                _ = node.shutdown.cancelled() => break,
                _ = out.closed() => break,
                // A master that became a replica (failover) feeds nobody.
                _ = check.tick() => {
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
            let frame = pb::ReplicationFrame {
                records,
                sync_done: false,
                offset,
            };
            cluster.stats.traffic.sent(MessageType::Replication, &frame);
            if out.send(Ok(frame)).await.is_err() {
                break;
            }
        }
        cluster.repl.feeds.lock().remove(&replica);
        tracing::info!(replica = %replica, "Connection with replica lost");
    });
    Ok(rx)
}

/// A replica's side: keeps a stream from the current master open while this node is a replica,
/// applying what arrives. Reconnects after a break (with a full sync).
pub async fn run(node: Arc<Node>) {
    let Some(cluster) = node.cluster.clone() else {
        return;
    };
    let repl = &cluster.repl;
    // Failed attempts in a row: only the first is logged as a warning (a master that is down
    // is retried twice a second until it is back or replaced).
    let mut failures = 0u32;
    loop {
        let target = {
            let st = cluster.state.lock();
            let me = st.me();
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
                repl.link_up.store(false, Ordering::Relaxed);
                Duration::from_millis(100)
            }
            Some((master, addr)) => {
                if repl.synced_from.lock().as_deref() != Some(master.as_str()) {
                    repl.synced.store(false, Ordering::Relaxed);
                }
                if failures == 0 {
                    tracing::info!(master = %master, "Connecting to MASTER {addr}");
                }
                let syncs = repl.full_syncs.load(Ordering::Relaxed);
                let result = link(&node, &master, &addr).await;
                if repl.full_syncs.load(Ordering::Relaxed) != syncs {
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
                repl.link_up.store(false, Ordering::Relaxed);
                repl.sync_in_progress.store(false, Ordering::Relaxed);
                Duration::from_millis(500)
            }
        };
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
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
    let hello = pb::ReplicateRequest {
        sender: Some(sender),
        ack_offset: 0,
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
        });
    };
    repl.sync_in_progress.store(true, Ordering::Relaxed);
    repl.synced.store(false, Ordering::Relaxed);
    *repl.synced_from.lock() = None;
    tracing::info!(master = %master, "MASTER <-> REPLICA sync started: full sync");
    let mut applier = Applier::new(node.clone())?;
    let mut first = true;
    let mut loaded = 0u64;
    let mut check = tokio::time::interval(Duration::from_millis(200));
    loop {
        let frame = tokio::select! {
            _ = node.shutdown.cancelled() => return Ok(()),
            // Promoted, or told to follow another master, while the stream is idle.
            _ = check.tick() => {
                if still_following(node, master) {
                    continue;
                }
                return Ok(());
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
        if first {
            // A full sync replaces whatever this node held.
            first = false;
            flush_all(node);
        }
        let records = frame.records;
        let n = applier.apply(&records)?;
        loaded += n;
        if frame.sync_done {
            ack(frame.offset);
            repl.offset.store(frame.offset, Ordering::Relaxed);
            repl.sync_in_progress.store(false, Ordering::Relaxed);
            repl.synced.store(true, Ordering::Relaxed);
            repl.link_up.store(true, Ordering::Relaxed);
            repl.full_syncs.fetch_add(1, Ordering::Relaxed);
            *repl.synced_from.lock() = Some(master.to_string());
            tracing::info!(master = %master, records = loaded, "MASTER <-> REPLICA sync: Finished with success");
            if node.store.aof.is_on() {
                // The log holds what this node had before the sync: start it again from the
                // copy (as Redis restarts its log after a full sync).
                crate::persist::bgrewriteaof(node);
            }
        } else if frame.offset > 0 {
            repl.offset.store(frame.offset, Ordering::Relaxed);
            ack(frame.offset);
        }
    }
}

fn flush_all(node: &Node) {
    let mut ks = node.store.lock_all(0);
    for db in 0..node.store.databases() {
        ks.flush_db(db);
    }
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
                            for (db, args) in cmds {
                                replayer.replay(db, &args)?;
                            }
                        }
                        Some(&aof::KIND_ENTRIES) => {
                            snapshot::load_entries(&p[1..], &self.node.store, &self.lim, None)
                                .map_err(|_| "undecodable entries record")?;
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
