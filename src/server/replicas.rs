//! Replicas that speak Redis's own replication protocol: a `redis-server --replicaof` pointed
//! at this node, `redis-cli --replica`, and `redis-cli --rdb` (a backup of a live node). Our
//! own nodes replicate over the bus instead ([`crate::cluster::replication`]).
//!
//! A client that sends `SYNC` or `PSYNC` leaves the command loop for [`serve`]: the keyspace is
//! copied with every shard locked and, in the same critical section, a tap is opened on the
//! write log, exactly as for a bus replica; the copy goes out as an RDB file
//! ([`crate::persist::rdb_file`]) and then every logged write as the RESP command it was
//! logged as (`SELECT` when the db changes, a transaction or script's effects inside
//! `MULTI`/`EXEC`), with a `PING` every `repl-ping-replica-period` seconds.
//!
//! Offsets: `+FULLRESYNC <stream id> <offset>` names our stream's offset at the copy; from there a
//! Redis replica counts the RESP bytes it receives, and acknowledges them with `REPLCONF ACK`.
//! The feed maps those back to our stream's offsets, so `WAIT` counts these replicas too.
//!
//! Stream IDs: since a replica's offsets count the RESP bytes of its own stream, two replicas
//! fed from different full syncs are at different offsets after the same write. Each full sync
//! therefore names a stream of its own: `+FULLRESYNC` (and the file's `repl-id`) carry an ID
//! made for it, not our replication ID. Were they to share one, a replica promoted later
//! (Sentinel, `REPLICAOF NO ONE`) would accept its sibling's `PSYNC` at an offset that means
//! another place in its own history, and apply commands twice or cut one in half; with its own
//! ID each sibling is refused there and syncs in full.
//!
//! Partial resync: a point of a replica's stream is (our offset, its offset, the db selected
//! there). The ends of what was sent are kept while it is fed; when it goes, they are
//! remembered (by its address and listening port, the last [`RESUME_POINTS`] replicas), with
//! the stream's ID and our replication ID then. A `PSYNC <stream id> <offset>` from it that
//! lands on one of them, while our own ID is unchanged, gets `+CONTINUE <stream id>` and our
//! log's records from there, out of the backlog (`repl-backlog-size`); anything else gets a
//! full sync.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};

use super::clients::ClientState;
use crate::node::Node;
use crate::persist::aof::{self, Tap};
use crate::persist::format::Cursor;
use crate::persist::rdb_file;
use crate::persist::snapshot::{Image, for_each_entry};
use crate::resp::encode_command;
use crate::resp::parser::Parser;
use crate::store::rdb::{self, Limits};

/// What a client asked for with `SYNC`/`PSYNC` (and the `REPLCONF`s before it).
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// `REPLCONF listening-port`: the port the replica serves clients on.
    pub listening_port: u16,
    /// `REPLCONF ip-address`.
    pub ip_address: Option<String>,
    /// `REPLCONF rdb-only 1` (redis-cli --rdb): the file, then the connection closes.
    pub rdb_only: bool,
    /// Set by SYNC/PSYNC: the connection becomes a replica's after the command.
    pub sync: Option<SyncKind>,
    /// PSYNC's replication ID and offset (not `? -1`): where the replica would continue.
    pub psync: Option<(String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// `SYNC`: the RDB file straight away.
    Sync,
    /// `PSYNC`: `+FULLRESYNC <replid> <offset>` first.
    Psync,
}

/// One replica being fed, as `INFO replication` and `ROLE` show it.
#[derive(Debug, Clone)]
pub struct Feed {
    pub ip: String,
    pub port: u16,
    /// `wait_bgsave`, `send_bulk` or `online`.
    pub state: &'static str,
    /// The ID its stream goes by (empty until the sync starts; see the module doc).
    pub stream_id: String,
    /// The offset the replica last acknowledged, in its own count (RESP bytes after the
    /// FULLRESYNC offset).
    pub acked_resp: u64,
    /// The same point as an offset of our stream (what WAIT compares).
    pub acked: u64,
    pub acked_ms: i64,
}

/// The replicas fed over client connections.
#[derive(Default)]
pub struct Replicas {
    feeds: Mutex<BTreeMap<u64, Feed>>,
    /// Signalled when a replica acknowledges an offset (WAIT).
    pub acked: Notify,
    /// Bumped by WAIT: feeds ask their replica for an acknowledgement now (a feed busy
    /// writing sees the change on its next turn; `getack` wakes idle ones).
    getack_gen: AtomicU64,
    getack: Notify,
    /// Where replicas that went stood in their streams, for a partial resync when they come
    /// back (newest last, at most [`RESUME_POINTS`]).
    resume: Mutex<VecDeque<ResumePoint>>,
    /// INFO stats' `sync_full`, `sync_partial_ok`, `sync_partial_err` for these replicas.
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
}

/// A replica that went: who it was, its stream's ID, our replication ID then (our offsets
/// mean the same history only under it), and points of its stream from which it can continue:
/// (our offset, its offset, the db its stream had selected), at the ends of what was sent.
struct ResumePoint {
    ip: String,
    port: u16,
    stream_id: String,
    our_replid: String,
    marks: Vec<Mark>,
}

/// A point of a replica's stream: our stream's offset, the replica's (RESP bytes), and the db
/// selected there (None: none yet).
type Mark = (u64, u64, Option<usize>);

/// Replicas remembered for a partial resync.
const RESUME_POINTS: usize = 16;

impl Replicas {
    pub fn list(&self) -> Vec<Feed> {
        self.feeds.lock().values().cloned().collect()
    }

    /// The client IDs of the replicas' connections.
    pub fn list_ids(&self) -> Vec<u64> {
        self.feeds.lock().keys().copied().collect()
    }

    /// Online replicas that acknowledged our stream up to `offset`.
    pub fn acked_at_least(&self, offset: u64) -> usize {
        self.feeds
            .lock()
            .values()
            .filter(|f| f.state == "online" && f.acked >= offset)
            .count()
    }

    /// Online replicas heard from within `max_lag_secs` (min-replicas-to-write).
    pub fn good(&self, max_lag_secs: i64, now_ms: i64) -> usize {
        self.feeds
            .lock()
            .values()
            .filter(|f| f.state == "online" && now_ms - f.acked_ms <= max_lag_secs * 1000)
            .count()
    }

    /// WAIT: asks every replica to acknowledge what it has (`REPLCONF GETACK *`).
    pub fn request_acks(&self) {
        self.getack_gen.fetch_add(1, Ordering::AcqRel);
        self.getack.notify_waiters();
    }

    /// Replicas connected (syncing or online).
    pub fn count(&self) -> usize {
        self.feeds.lock().len()
    }

    /// Remembers where a replica that went stood (see [`ResumePoint`]).
    fn remember(&self, point: ResumePoint) {
        let mut r = self.resume.lock();
        r.retain(|p| !(p.ip == point.ip && p.port == point.port));
        if r.len() >= RESUME_POINTS {
            r.pop_front();
        }
        r.push_back(point);
    }

    /// Where the replica at `ip`:`port` continues from when it asks for `PSYNC stream_id
    /// offset`: the point of its last stream that ends at `offset - 1` (the last byte it
    /// applied), if that stream was fed here while our replication ID was `our_replid` (as it
    /// is now). The point is used up.
    fn resume_point(
        &self,
        ip: &str,
        port: u16,
        (stream_id, offset): (&str, u64),
        our_replids: &[&str],
    ) -> Option<Mark> {
        let mut r = self.resume.lock();
        let i = r
            .iter()
            .position(|p| p.ip == ip && p.port == port && p.stream_id == stream_id)?;
        let point = r.remove(i)?;
        if !our_replids.contains(&point.our_replid.as_str()) {
            return None;
        }
        point
            .marks
            .into_iter()
            .find(|&(_, resp, _)| offset >= 1 && resp == offset - 1)
    }

    fn set_stream_id(&self, id: u64, stream_id: &str) {
        if let Some(f) = self.feeds.lock().get_mut(&id) {
            f.stream_id = stream_id.to_string();
        }
    }

    fn set_state(&self, id: u64, state: &'static str) {
        if let Some(f) = self.feeds.lock().get_mut(&id) {
            f.state = state;
            f.acked_ms = crate::commands::now_ms();
        }
    }
}

/// Bytes of RESP written per batch of log records.
const BATCH_BYTES: usize = 1 << 20;

/// Serves a replica on this connection until it goes (or, for `rdb-only`, until the file is
/// sent). `inbuf` holds what the client sent after its SYNC/PSYNC.
pub async fn serve(
    node: &Arc<Node>,
    client: &mut ClientState,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    inbuf: &mut BytesMut,
    hs: Handshake,
) {
    let id = client.info.id;
    let kind = hs.sync.unwrap_or(SyncKind::Sync);
    client.info.replica.store(true, Ordering::Relaxed);
    let ip = hs
        .ip_address
        .clone()
        .unwrap_or_else(|| client.info.addr.ip().to_string());
    node.replicas.feeds.lock().insert(
        id,
        Feed {
            ip: ip.clone(),
            port: hs.listening_port,
            state: "wait_bgsave",
            stream_id: String::new(),
            acked_resp: 0,
            acked: 0,
            acked_ms: crate::commands::now_ms(),
        },
    );
    tracing::info!(client = id, replica = %format!("{ip}:{}", hs.listening_port), rdb_only = hs.rdb_only, "Replica asks for synchronization");
    let kill = client.info.kill.clone();
    let replid = node.replid();
    let who = Who {
        ip: ip.clone(),
        port: hs.listening_port,
        psync: hs.psync.clone(),
    };
    // The stream, once the replica is online: kept here, so where it stood is known however
    // the feed ends (CLIENT KILL drops it mid-write).
    let mut stream: Option<Stream> = None;
    let fed = tokio::select! {
        biased;
        _ = kill.cancelled() => Ok(()),
        r = feed(ReplicaConn { node, id, rd, wr, inbuf, kind }, hs.rdb_only, &who, &mut stream) => r,
    };
    node.replicas.feeds.lock().remove(&id);
    if kind == SyncKind::Psync
        && let Some(st) = stream
    {
        node.replicas.remember(ResumePoint {
            ip,
            port: hs.listening_port,
            stream_id: st.id.clone(),
            our_replid: replid,
            marks: st.marks(),
        });
    }
    match fed {
        Ok(()) => tracing::info!(client = id, "Connection with replica closed"),
        Err(e) => tracing::info!(client = id, "Connection with replica lost: {e}"),
    }
}

/// Who asks for a sync, and from where it would continue.
struct Who {
    ip: String,
    port: u16,
    psync: Option<(String, u64)>,
}

/// A replica's connection, as `feed` and `stream_loop` use it: the node, the client's id, both
/// halves of the socket, its unread input, and how it asked (SYNC or PSYNC).
struct ReplicaConn<'a> {
    node: &'a Arc<Node>,
    id: u64,
    rd: &'a mut OwnedReadHalf,
    wr: &'a mut OwnedWriteHalf,
    inbuf: &'a mut BytesMut,
    kind: SyncKind,
}

impl ReplicaConn<'_> {
    fn io(&mut self) -> Io<'_> {
        Io {
            wr: &mut *self.wr,
            rd: &mut *self.rd,
            inbuf: &mut *self.inbuf,
        }
    }
}

async fn feed(
    mut conn: ReplicaConn<'_>,
    rdb_only: bool,
    who: &Who,
    slot: &mut Option<Stream>,
) -> Result<(), String> {
    let (node, id, kind) = (conn.node, conn.id, conn.kind);
    let (tap_tx, mut tap_rx) = mpsc::unbounded_channel::<Bytes>();
    let queued = Arc::new(AtomicU64::new(0));
    let kill = node
        .clients
        .get(id)
        .map(|c| c.kill.clone())
        .unwrap_or_default();
    let tap = Tap::new(tap_tx, queued.clone(), kill);
    let replid = node.replid();
    let lim = crate::commands::keys::rdb_limits(node);
    // A replica fed here a moment ago continues where it stopped, when our backlog still
    // holds what it missed (Redis's partial resync, `+CONTINUE`).
    let resume = if rdb_only {
        None
    } else {
        continue_from(node, who, &replid)
    };
    let tap = match resume {
        None => tap,
        Some(mark) => match node.store.aof.add_tap_from(tap, mark.0) {
            Err(tap) => {
                node.replicas
                    .sync_partial_err
                    .fetch_add(1, Ordering::Relaxed);
                tap
            }
            Ok(backlog) => {
                let stream_id = who.psync.clone().map(|p| p.0).unwrap_or_default();
                node.replicas.set_stream_id(id, &stream_id);
                write(
                    node,
                    &mut conn.io(),
                    format!("+CONTINUE {stream_id}\r\n").as_bytes(),
                )
                .await?;
                node.replicas
                    .sync_partial_ok
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    client = id,
                    offset = mark.1,
                    "Partial resynchronization request accepted: sending what the replica missed"
                );
                node.replicas.set_state(id, "online");
                let mut st = Stream::new(stream_id, mark.0, lim, node.store.databases());
                (st.resp, st.db, st.acked_mark) = (mark.1, mark.2, mark);
                let missed: Vec<u8> = backlog.concat();
                queued.fetch_add(missed.len() as u64, Ordering::Relaxed);
                let stream = slot.insert(st);
                if !missed.is_empty() {
                    stream
                        .send_records(
                            node,
                            &mut conn.io(),
                            Some(Bytes::from(missed)),
                            &mut tap_rx,
                            &queued,
                        )
                        .await?;
                }
                return stream_loop(conn, stream, tap_rx, queued).await;
            }
        },
    };
    if kind == SyncKind::Psync && who.psync.is_some() {
        node.replicas
            .sync_partial_err
            .fetch_add(1, Ordering::Relaxed);
    }
    node.replicas.sync_full.fetch_add(1, Ordering::Relaxed);
    // The copy and the tap split the history exactly (see the module doc); an rdb-only
    // client gets no stream, so no tap.
    let copier = node.clone();
    let (image, at) = tokio::task::spawn_blocking(move || {
        let mut at = 0;
        let image = Image::capture_node(&copier, || {
            at = if rdb_only {
                copier.store.aof.repl_offset()
            } else {
                copier.store.aof.add_tap(tap)
            };
        });
        (image, at)
    })
    .await
    .map_err(|e| e.to_string())?;
    // A stream of its own (see the module doc).
    let stream_id = crate::node::random_run_id();
    node.replicas.set_stream_id(id, &stream_id);
    if kind == SyncKind::Psync {
        write(
            node,
            &mut conn.io(),
            format!("+FULLRESYNC {stream_id} {at}\r\n").as_bytes(),
        )
        .await?;
    }
    node.replicas.set_state(id, "send_bulk");
    let keys = image.keys();
    let aux = [
        ("repl-stream-db", "0".to_string()),
        ("repl-id", stream_id.clone()),
        ("repl-offset", at.to_string()),
        ("aof-base", "0".to_string()),
    ];
    let mut encoding = tokio::task::spawn_blocking(move || rdb_file::encode(&image, &aux));
    // Redis's keep-alive while the file is made: newlines, which a replica skips.
    let mut keepalive = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let rdb = loop {
        tokio::select! {
            r = &mut encoding => break r.map_err(|e| e.to_string())?,
            _ = keepalive.tick() => write(node, &mut conn.io(), b"\n").await?,
        }
    };
    write(
        node,
        &mut conn.io(),
        format!("${}\r\n", rdb.len()).as_bytes(),
    )
    .await?;
    write(node, &mut conn.io(), &rdb).await?;
    tracing::info!(
        client = id,
        keys,
        bytes = rdb.len(),
        "Synchronization with replica succeeded"
    );
    drop(rdb);
    if rdb_only {
        return Ok(());
    }
    node.replicas.set_state(id, "online");
    let stream = slot.insert(Stream::new(stream_id, at, lim, node.store.databases()));
    stream_loop(conn, stream, tap_rx, queued).await
}

/// Where the replica `who` continues from, when it asks for a partial resync of the stream
/// it was fed here (`PSYNC <stream id> <offset>`) up to that offset, and our replication ID
/// is still `replid`.
fn continue_from(node: &Node, who: &Who, replid: &str) -> Option<Mark> {
    let (asked_id, offset) = who.psync.as_ref()?;
    // (Or an ID before REPLICAOF NO ONE: see `Upstream::stop`.)
    let before = node.upstream.replid2();
    let ours: Vec<&str> = std::iter::once(replid)
        .chain(before.iter().map(String::as_str))
        .collect();
    node.replicas
        .resume_point(&who.ip, who.port, (asked_id, *offset), &ours)
}

/// An online replica's stream: our log's records as commands, PINGs, GETACKs, its ACKs.
async fn stream_loop(
    conn: ReplicaConn<'_>,
    stream: &mut Stream,
    mut tap_rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicU64>,
) -> Result<(), String> {
    let ReplicaConn {
        node,
        id,
        rd,
        wr,
        inbuf,
        kind,
    } = conn;
    let mut io = Io { wr, rd, inbuf };
    let mut parser = Parser::new(node.proto_max_bulk_len.load(Ordering::Relaxed));
    let mut args: Vec<Bytes> = Vec::new();
    let period = || {
        Duration::from_secs(
            node.config
                .read()
                .get_int("repl-ping-replica-period")
                .max(1) as u64,
        )
    };
    let interval = |p: Duration| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + p, p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    };
    let mut ping = interval(period());
    let mut role = interval(Duration::from_millis(200));
    let mut getacks_seen = node.replicas.getack_gen.load(Ordering::Acquire);
    // A PSYNC replica acknowledges every second; one silent for `repl-timeout` is dropped (as
    // Redis's replicationCron). SYNC clients (`redis-cli --replica`) never acknowledge.
    let mut last_ack = tokio::time::Instant::now();
    // Shutting down: until when the replica may take to acknowledge every write.
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        let getack = node.replicas.getack.notified();
        // WAIT asked for acknowledgements: what is queued goes first, so the answer covers it.
        let asked = node.replicas.getack_gen.load(Ordering::Acquire);
        if asked != getacks_seen {
            getacks_seen = asked;
            stream
                .send_queued(node, &mut io, &mut tap_rx, &queued)
                .await?;
            stream.send_getack(node, &mut io).await?;
        }
        // What the replica sent (read by the select below, or aside while a write waited),
        // before anything looks at when it last said it was alive.
        while parser.parse(io.inbuf, &mut args).map_err(|e| e.0)? {
            // A replica loading the file says it is alive with bare newlines (as Redis's
            // replicas do, and Redis's masters count them).
            if args.is_empty() {
                last_ack = tokio::time::Instant::now();
            }
            if args.len() >= 3
                && args[0].eq_ignore_ascii_case(b"replconf")
                && args[1].eq_ignore_ascii_case(b"ack")
                && let Some(offset) = std::str::from_utf8(&args[2])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            {
                stream.acknowledged(&node.replicas, id, offset);
                last_ack = tokio::time::Instant::now();
            }
        }
        if draining.is_some() && stream.acked >= stream.ours {
            tracing::info!(
                client = id,
                "Replica acknowledged every write: closing its stream"
            );
            return Ok(());
        }
        let deadline = super::sleep_until_some(draining);
        tokio::select! {
            biased;
            // As Redis 7 at shutdown: the replica gets every write made (for at most
            // `shutdown-timeout`; SHUTDOWN NOW does not wait), as the bus replicas do.
            _ = node.shutdown.cancelled(), if draining.is_none() => {
                if node.persist.shutdown_now.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let limit = node.config.read().shutdown_timeout_secs.max(1);
                draining = Some(tokio::time::Instant::now() + Duration::from_secs(limit));
                stream.send_queued(node, &mut io, &mut tap_rx, &queued).await?;
                stream.send_getack(node, &mut io).await?;
            }
            _ = deadline => {
                tracing::warn!(client = id, "Lagging replica at shutdown: it did not acknowledge every write within shutdown-timeout");
                return Ok(());
            }
            r = io.rd.read_buf(&mut *io.inbuf) => {
                match r {
                    Ok(0) => return Err("the replica closed the connection".into()),
                    Err(e) => return Err(e.to_string()),
                    Ok(n) => {
                        node.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
            // A cluster master that became a replica (failover) appends nothing more to feed.
            _ = role.tick() => {
                let timeout = Duration::from_secs(node.config.read().get_int("repl-timeout").max(1) as u64);
                if kind == SyncKind::Psync && last_ack.elapsed() > timeout {
                    return Err(format!("timeout: no acknowledgement for {} seconds (repl-timeout)", timeout.as_secs()));
                }
                if let Some(c) = &node.cluster
                    && !c.state.lock().me().is_master()
                {
                    return Err("this node is no longer a master".into());
                }
            }
            // Handled at the top of the loop.
            _ = getack => {}
            _ = ping.tick() => {
                stream.send_extra(node, &mut io, &resp_command_bytes(&[b"PING"])).await?;
                let p = period();
                if p != ping.period() {
                    ping = interval(p);
                }
            }
            r = tap_rx.recv() => {
                // None: the log dropped the tap (the replica fell too far behind).
                let Some(first) = r else {
                    return Err("the replica fell too far behind (over the output buffer limit); it will sync again".into());
                };
                stream.send_records(node, &mut io, Some(first), &mut tap_rx, &queued).await?;
            }
        }
    }
}

/// A replica's stream: where it stands in both counts.
struct Stream {
    /// The ID this replica knows its stream by (see the module doc).
    id: String,
    /// Our stream's offset after the last record sent.
    ours: u64,
    /// The replica's offset after the last byte sent.
    resp: u64,
    /// (ours, resp) at the end of each batch not yet acknowledged (at most [`UNACKED_MAX`]: a
    /// client that never acknowledges, such as `redis-cli --replica`, costs no more).
    unacked: VecDeque<Mark>,
    /// The last batch end the replica acknowledged (where it may continue from too).
    acked_mark: Mark,
    /// Our stream's offset the replica acknowledged.
    acked: u64,
    /// The db the replica has selected (None: none yet, as after a full sync).
    db: Option<usize>,
    /// Encoding limits and db count, to read the entries of imported keys.
    lim: Limits,
    databases: usize,
    out: Vec<u8>,
}

/// Batches remembered for acknowledgement; older ones are forgotten (a later acknowledgement
/// covers them).
const UNACKED_MAX: usize = 4096;

impl Stream {
    fn new(id: String, at: u64, lim: Limits, databases: usize) -> Stream {
        Stream {
            id,
            ours: at,
            resp: at,
            unacked: VecDeque::new(),
            acked_mark: (at, at, None),
            acked: at,
            db: None,
            lim,
            databases,
            out: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends `first` and the records queued behind it, in batches of about [`BATCH_BYTES`].
    async fn send_records(
        &mut self,
        node: &Node,
        io: &mut Io<'_>,
        mut first: Option<Bytes>,
        tap_rx: &mut mpsc::UnboundedReceiver<Bytes>,
        queued: &AtomicU64,
    ) -> Result<(), String> {
        loop {
            let mut out = std::mem::take(&mut self.out);
            out.clear();
            let mut taken = 0;
            while out.len() < BATCH_BYTES {
                let Some(r) = first.take().or_else(|| tap_rx.try_recv().ok()) else {
                    break;
                };
                taken += r.len();
                self.records(&r, &mut out);
            }
            if taken == 0 {
                self.out = out;
                return Ok(());
            }
            queued.fetch_sub(taken as u64, Ordering::Relaxed);
            let sent = write(node, io, &out).await;
            self.resp += out.len() as u64;
            self.out = out;
            sent?;
            self.mark();
        }
    }

    /// Notes the end of what was sent as a point the replica may acknowledge, or continue
    /// from after a reconnection.
    fn mark(&mut self) {
        if self.unacked.len() >= UNACKED_MAX {
            self.unacked.pop_front();
        }
        self.unacked.push_back((self.ours, self.resp, self.db));
    }

    /// Where the replica may continue from, oldest first: what it acknowledged, then the ends
    /// of what was sent since.
    fn marks(&self) -> Vec<Mark> {
        std::iter::once(self.acked_mark)
            .chain(self.unacked.iter().copied())
            .collect()
    }

    /// Sends every record queued now.
    async fn send_queued(
        &mut self,
        node: &Node,
        io: &mut Io<'_>,
        tap_rx: &mut mpsc::UnboundedReceiver<Bytes>,
        queued: &AtomicU64,
    ) -> Result<(), String> {
        self.send_records(node, io, None, tap_rx, queued).await
    }

    async fn send_getack(&mut self, node: &Node, io: &mut Io<'_>) -> Result<(), String> {
        self.send_extra(
            node,
            io,
            &resp_command_bytes(&[b"REPLCONF", b"GETACK", b"*"]),
        )
        .await
    }

    /// Appends the RESP form of the log records in `records` (framed, as the tap gives them).
    fn records(&mut self, mut records: &[u8], out: &mut Vec<u8>) {
        while records.len() >= 12 {
            let len = u32::from_le_bytes(records[..4].try_into().expect("4 bytes")) as usize;
            let Some(payload) = records.get(8..8 + len) else {
                break;
            };
            self.record(payload, out);
            let used = (12 + len).min(records.len());
            self.ours += used as u64;
            records = &records[used..];
        }
    }

    fn record(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let Some((&kind, rest)) = payload.split_first() else {
            return;
        };
        let mut c = Cursor::new(rest);
        match kind {
            aof::KIND_COMMANDS => {
                let Ok(cmds) = aof::decode_commands(&mut c) else {
                    return;
                };
                let wrap = cmds.len() > 1;
                if wrap {
                    // As Redis: the db of the first command is selected before MULTI.
                    self.select(cmds[0].0, out);
                    encode_command(out, [&b"MULTI"[..]]);
                }
                for (db, args) in &cmds {
                    self.select(*db, out);
                    encode_command(out, args.iter().map(|a| &a[..]));
                }
                if wrap {
                    encode_command(out, [&b"EXEC"[..]]);
                }
            }
            // Keys a slot move handed to their next owner: gone from here, so from the
            // replica too.
            aof::KIND_MOVED => {
                let Ok(keys) = aof::decode_keys(&mut c) else {
                    return;
                };
                for key in keys {
                    self.select(0, out);
                    encode_command(out, [&b"DEL"[..], &key]);
                }
            }
            // Keys a slot move brought in: RESTOREd whole, with their absolute TTL.
            aof::KIND_ENTRIES => {
                let selected = &mut self.db;
                let _ = for_each_entry(rest, self.databases, &self.lim, |db, item| {
                    select_db(selected, db, out);
                    let payload = rdb::dump(&item.value);
                    let ttl = item.expire_at_ms.unwrap_or(0).to_string();
                    encode_command(
                        out,
                        [
                            &b"RESTORE"[..],
                            &item.key,
                            ttl.as_bytes(),
                            &payload,
                            b"REPLACE",
                            b"ABSTTL",
                        ],
                    );
                    Ok(())
                });
            }
            // Pins and positions concern our own replicas' bookkeeping only.
            _ => {}
        }
    }

    fn select(&mut self, db: usize, out: &mut Vec<u8>) {
        select_db(&mut self.db, db, out);
    }

    /// Writes bytes that are part of the replica's stream but not of ours (PING, GETACK).
    async fn send_extra(
        &mut self,
        node: &Node,
        io: &mut Io<'_>,
        bytes: &[u8],
    ) -> Result<(), String> {
        write(node, io, bytes).await?;
        self.resp += bytes.len() as u64;
        self.mark();
        Ok(())
    }

    /// `REPLCONF ACK offset`: the replica applied everything up to `offset` (its count).
    fn acknowledged(&mut self, replicas: &Replicas, id: u64, offset: u64) {
        let mut acked = None;
        while let Some(&(ours, resp, db)) = self.unacked.front() {
            if resp > offset {
                break;
            }
            acked = Some(ours);
            self.acked_mark = (ours, resp, db);
            self.unacked.pop_front();
        }
        if self.unacked.is_empty() && offset >= self.resp {
            acked = Some(self.ours);
        }
        if let Some(a) = acked {
            self.acked = self.acked.max(a);
        }
        if let Some(f) = replicas.feeds.lock().get_mut(&id) {
            f.acked_resp = f.acked_resp.max(offset);
            f.acked_ms = crate::commands::now_ms();
            f.acked = f.acked.max(self.acked);
        }
        replicas.acked.notify_waiters();
    }
}

/// SELECTs `db` in the replica's stream unless it is `selected` already.
fn select_db(selected: &mut Option<usize>, db: usize, out: &mut Vec<u8>) {
    if *selected != Some(db) {
        encode_command(out, [&b"SELECT"[..], db.to_string().as_bytes()]);
        *selected = Some(db);
    }
}

fn resp_command_bytes(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_command(&mut out, args.iter().copied());
    out
}

/// A replica's connection as its feed writes to it. What the replica sends while a write
/// waits is read aside into `inbuf` (the stream loop parses it), so a replica that takes
/// nothing but says it is alive (newlines while it loads the file, as Redis's replicas do) is
/// told from one that is gone.
struct Io<'a> {
    wr: &'a mut OwnedWriteHalf,
    rd: &'a mut OwnedReadHalf,
    inbuf: &'a mut BytesMut,
}

/// Writes to a replica. One that neither takes a byte nor sends one for `repl-timeout`
/// (stopped, or its network gone without a word) is dropped, as Redis drops a replica silent
/// that long; a write waiting on it would otherwise keep the feed from noticing. A large file
/// may take long: it goes in pieces, each within the timeout.
async fn write(node: &Node, io: &mut Io<'_>, bytes: &[u8]) -> Result<(), String> {
    const PIECE: usize = 1 << 20;
    let timeout = Duration::from_secs(node.config.read().get_int("repl-timeout").max(1) as u64);
    let Io { wr, rd, inbuf } = io;
    for piece in bytes.chunks(PIECE) {
        let mut sending = std::pin::pin!(wr.write_all(piece));
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                r = &mut sending => {
                    r.map_err(|e| e.to_string())?;
                    break;
                }
                r = rd.read_buf(&mut **inbuf) => match r {
                    Ok(0) => return Err("the replica closed the connection".into()),
                    Err(e) => return Err(e.to_string()),
                    Ok(n) => {
                        node.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        // A newline or an ACK (both end in one) says it is alive, as Redis
                        // counts them; what a replica sends is small, so a growing buffer
                        // is not one.
                        if inbuf.len() > node.query_buffer_limit.load(Ordering::Relaxed) {
                            return Err("the replica sent more than client-query-buffer-limit while it took nothing".into());
                        }
                        if inbuf[inbuf.len() - n..].contains(&b'\n') {
                            heard = tokio::time::Instant::now();
                        }
                    }
                },
                _ = tokio::time::sleep_until(heard + timeout) => {
                    return Err(format!(
                        "timeout: the replica took nothing and said nothing for {} seconds (repl-timeout)",
                        timeout.as_secs()
                    ));
                }
            }
        }
        node.stats
            .net_output_bytes
            .fetch_add(piece.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Stream {
        Stream::new(String::new(), 100, Limits::redis_defaults(), 16)
    }

    fn commands(cmds: &[(usize, &[&str])]) -> Vec<u8> {
        let cmds: Vec<(usize, Vec<Bytes>)> = cmds
            .iter()
            .map(|(db, args)| {
                (
                    *db,
                    args.iter().map(|a| Bytes::from(a.to_string())).collect(),
                )
            })
            .collect();
        let mut framed = Vec::new();
        aof::command_record(&mut framed, &cmds);
        framed
    }

    #[test]
    fn a_command_is_sent_after_the_select_of_its_db() {
        let mut s = stream();
        let mut out = Vec::new();
        let rec = commands(&[(2, &["SET", "k", "v"])]);
        s.records(&rec, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
        assert_eq!(s.ours, 100 + rec.len() as u64);
        // Same db: no SELECT again.
        out.clear();
        s.records(&commands(&[(2, &["DEL", "k"])]), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"
        );
    }

    #[test]
    fn imported_keys_are_restored_with_their_absolute_ttl() {
        let mut s = stream();
        let mut framed = Vec::new();
        crate::persist::format::write_record_with(&mut framed, |p| {
            p.push(aof::KIND_ENTRIES);
            crate::persist::format::put_u32(p, 3);
            let v = crate::store::Value::from_bytes(b"hello");
            crate::persist::snapshot::encode_parts(
                p,
                b"k",
                &v,
                Some(1_900_000_000_000),
                &mut Vec::new(),
            );
        });
        let mut out = Vec::new();
        s.records(&framed, &mut out);
        let payload = rdb::dump(&crate::store::Value::from_bytes(b"hello"));
        let mut want = resp_command_bytes(&[b"SELECT", b"3"]);
        encode_command(
            &mut want,
            [
                &b"RESTORE"[..],
                b"k",
                b"1900000000000",
                &payload,
                b"REPLACE",
                b"ABSTTL",
            ],
        );
        assert_eq!(out, want);
        assert_eq!(s.ours, 100 + framed.len() as u64);
    }

    #[test]
    fn a_transaction_is_wrapped_in_multi_exec() {
        let mut s = stream();
        let mut out = Vec::new();
        s.records(
            &commands(&[(0, &["INCR", "a"]), (1, &["INCR", "b"])]),
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        let names: Vec<&str> = text
            .split("\r\n")
            .filter(|l| l.chars().all(|c| c.is_ascii_uppercase()) && !l.is_empty())
            .collect();
        assert_eq!(names, ["SELECT", "MULTI", "INCR", "SELECT", "INCR", "EXEC"]);
    }

    #[test]
    fn acks_in_resp_bytes_map_back_to_our_offsets() {
        let replicas = Replicas::default();
        let mut s = stream();
        replicas.feeds.lock().insert(
            7,
            Feed {
                ip: "127.0.0.1".into(),
                port: 1,
                state: "online",
                stream_id: String::new(),
                acked_resp: 0,
                acked: 0,
                acked_ms: 0,
            },
        );
        s.unacked.push_back((150, 180, Some(0)));
        s.unacked.push_back((200, 260, Some(0)));
        s.ours = 200;
        s.resp = 274; // a PING after the second batch
        s.acknowledged(&replicas, 7, 179);
        assert_eq!(replicas.acked_at_least(150), 0);
        s.acknowledged(&replicas, 7, 180);
        assert_eq!(replicas.acked_at_least(150), 1);
        assert_eq!(replicas.acked_at_least(200), 0);
        s.acknowledged(&replicas, 7, 260);
        assert_eq!(replicas.acked_at_least(200), 1);
        assert!(s.unacked.is_empty());
        s.acknowledged(&replicas, 7, 274);
        assert_eq!(replicas.list()[0].acked_resp, 274);
    }
}
