//! This node as a replica of a Redis master (or of another node) over Redis's replication
//! protocol: `REPLICAOF host port` outside cluster mode. The way to move a live data set from
//! redis-server to Reredis: make the node a replica, let it sync, then `REPLICAOF NO ONE`.
//!
//! The link ([`run`]): `PING`, `REPLCONF listening-port` and `capa psync2`, `PSYNC ? -1`; the
//! master answers `+FULLRESYNC <replid> <offset>` and sends its RDB file, which replaces this
//! node's data (keys of every db, TTLs, function libraries; [`load_rdb`]); then every command
//! of its stream is applied as our log's replay applies commands (and logged here, so our own
//! log and our own replicas follow). `SELECT` and `PING` are kept track of, `MULTI`...`EXEC`
//! applied together, `REPLCONF GETACK` answered with the offset processed, which is also sent
//! once a second. A broken link is retried every second, first with a partial resync
//! (`PSYNC <replid> <offset + 1>`: the master answers `+CONTINUE` and sends what the link
//! missed from its backlog), falling back to a full sync when the master cannot.
//!
//! While a replica, the node refuses writes from its clients (`-READONLY`) and expires no key
//! by itself: its master's DELs do (as a Redis replica).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use crate::persist::aof;
use crate::persist::format::{put_u32, write_record_with};
use crate::resp::parser::Parser;
use crate::store::rdb::{self, Limits};

/// The master this node follows, when it is a replica.
#[derive(Default)]
pub struct Upstream {
    link: Mutex<Option<Arc<Link>>>,
    /// `link` is set (read by every write command).
    active: AtomicBool,
    /// Held while a master's file replaces the data: REPLICAOF waits for a load under way
    /// (Redis loads on its only thread, so nothing runs beside a load), and a load whose link
    /// was replaced or stopped before it began does not begin.
    loading: Mutex<()>,
    /// The replication IDs this node took and kept when it stopped following a master.
    ids: Mutex<OwnIds>,
}

/// What REPLICAOF NO ONE leaves (Redis's shiftReplicationId), changed in one step.
#[derive(Default)]
struct OwnIds {
    /// The replication ID taken then: the history parts from the master's there, and from the
    /// one the node had as a master before.
    own: Option<String>,
    /// The IDs before `own` that a replica fed under them may still continue under (Redis's
    /// replid2): the master's it followed, and its own before that unless a master's file
    /// replaced the data since. Cleared when it follows a master again.
    second: Vec<String>,
    /// INFO's `master_replid2` and `second_repl_offset` - 1: the master's ID it followed and
    /// where our stream stood when it stopped.
    shown: Option<(String, u64)>,
}

/// One `REPLICAOF host port`, and how its link stands (INFO replication, ROLE).
pub struct Link {
    pub host: String,
    pub port: u16,
    stop: CancellationToken,
    /// `connect`, `connecting`, `sync` or `connected` (ROLE's words).
    pub state: Mutex<&'static str>,
    pub up: AtomicBool,
    /// The master's offset processed here (-1 before the first sync). Moves only outside a
    /// transaction (as Redis's `reploff`): a link that breaks inside one resumes before it.
    pub offset: AtomicI64,
    /// The db the master's stream had selected at `offset` (a partial resync continues there:
    /// the master sends no new SELECT).
    pub db: std::sync::atomic::AtomicUsize,
    pub last_io_ms: AtomicI64,
    /// When the link went down after being up (0: up, or never up): INFO's
    /// `master_link_down_since_seconds`.
    pub down_since_ms: AtomicI64,
    /// A full sync's file: its length (-1 until the master sends it), the bytes read so far,
    /// and when the master last sent something (INFO's `master_sync_*`).
    pub transfer_size: AtomicI64,
    pub transfer_read: AtomicU64,
    pub transfer_last_io_ms: AtomicI64,
    /// The master's replication ID.
    pub replid: Mutex<String>,
    pub full_syncs: AtomicU64,
    /// FAILOVER: this link's PSYNC asks the replica it goes to to take over (`FAILOVER`); its
    /// answer ends the failover (`server::failover::succeeded` or `abort`).
    failover: AtomicBool,
}

impl Upstream {
    /// The link, while this node is a replica.
    pub fn link(&self) -> Option<Arc<Link>> {
        self.link.lock().clone()
    }

    pub fn is_replica(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// The replication ID taken at the last `REPLICAOF NO ONE` (None if it never followed a
    /// master).
    pub fn own_replid(&self) -> Option<String> {
        self.ids.lock().own.clone()
    }

    /// The replication IDs before the last `REPLICAOF NO ONE` a replica fed under them may
    /// still continue under.
    pub fn replid2(&self) -> Vec<String> {
        self.ids.lock().second.clone()
    }

    /// INFO's `master_replid2` and where our stream stood then (None until the node stops
    /// following a master).
    pub fn shown_replid2(&self) -> Option<(String, u64)> {
        self.ids.lock().shown.clone()
    }

    /// Whether the link to the master is up (synced and streaming).
    pub fn link_up(&self) -> bool {
        self.link
            .lock()
            .as_ref()
            .is_some_and(|l| l.up.load(Ordering::Relaxed))
    }

    /// `REPLICAOF host port`: follows that master from now on (a new link replaces any other).
    /// Returns false when it already follows it.
    pub fn follow(&self, node: &Arc<Node>, host: String, port: u16) -> bool {
        self.follow_with(node, host, port, None, false)
    }

    /// FAILOVER's last step: this master follows its replica at `host:port`, asking it to
    /// take over (`PSYNC <id> <offset + 1> FAILOVER`, where `id` and `offset` are where this
    /// node's stream to it stands, so that it continues from there).
    pub fn follow_for_failover(
        &self,
        node: &Arc<Node>,
        host: String,
        port: u16,
        position: (String, i64),
    ) -> bool {
        self.follow_with(node, host, port, Some(position), true)
    }

    fn follow_with(
        &self,
        node: &Arc<Node>,
        host: String,
        port: u16,
        position: Option<(String, i64)>,
        failover: bool,
    ) -> bool {
        let _load = self.loading.lock();
        let mut cur = self.link.lock();
        if cur
            .as_ref()
            .is_some_and(|l| l.host.eq_ignore_ascii_case(&host) && l.port == port)
        {
            return false;
        }
        // Following a master again: no replica continues under an ID from before.
        let mut ids = self.ids.lock();
        (ids.second, ids.shown) = (Vec::new(), None);
        drop(ids);
        // A link that was up is down from now (Redis frees the old master's client).
        let mut down_since = 0;
        if let Some(old) = cur.take() {
            old.stop.cancel();
            down_since = if old.up.load(Ordering::Relaxed) {
                crate::commands::now_ms()
            } else {
                old.down_since_ms.load(Ordering::Relaxed)
            };
        }
        let link = Arc::new(Link {
            host,
            port,
            stop: CancellationToken::new(),
            state: Mutex::new("connect"),
            up: AtomicBool::new(false),
            offset: AtomicI64::new(position.as_ref().map_or(-1, |p| p.1)),
            db: Default::default(),
            last_io_ms: AtomicI64::new(0),
            down_since_ms: AtomicI64::new(down_since),
            transfer_size: AtomicI64::new(-1),
            transfer_read: AtomicU64::new(0),
            transfer_last_io_ms: AtomicI64::new(0),
            replid: Mutex::new(position.map(|p| p.0).unwrap_or_default()),
            full_syncs: AtomicU64::new(0),
            failover: AtomicBool::new(failover),
        });
        *cur = Some(link.clone());
        self.active.store(true, Ordering::Relaxed);
        drop(cur);
        // Clients blocked here as on a master get an error and go (Redis's
        // replicationSetMaster: disconnectAllBlockedClients).
        node.store
            .blocked
            .release_all(crate::store::blocking::unblock::DEMOTED);
        // A replica's keys expire by its master's DELs only (see `Store::keep_expired`).
        node.store.keep_expired.store(true, Ordering::Relaxed);
        tracing::info!(master = %format!("{}:{}", link.host, link.port), "Connecting to MASTER (REPLICAOF)");
        node.runtime.spawn(run(node.clone(), link));
        true
    }

    /// `REPLICAOF NO ONE`: a master again, with the data it holds.
    pub fn stop(&self, node: &Node) {
        let _load = self.loading.lock();
        if let Some(link) = self.link.lock().take() {
            self.active.store(false, Ordering::Relaxed);
            // A new ID, as Redis's shiftReplicationId. The master's (the one our replicas fed
            // while we followed it know) stays good for them to continue under (Redis's
            // replid2), and so does ours before it unless a master's file replaced the data
            // meanwhile (a FAILOVER that went no further than following its target, which
            // continued our stream, replaced nothing).
            let mut ids = self.ids.lock();
            let before = ids.own.take().unwrap_or_else(|| node.run_id.clone());
            ids.own = Some(crate::node::random_run_id());
            let followed = link.replid.lock().clone();
            ids.shown =
                (!followed.is_empty()).then(|| (followed.clone(), node.store.aof.repl_offset()));
            ids.second = std::iter::once(followed)
                .filter(|f| !f.is_empty())
                .chain((link.full_syncs.load(Ordering::Relaxed) == 0).then_some(before))
                .collect();
            drop(ids);
            link.stop.cancel();
            node.store.keep_expired.store(false, Ordering::Relaxed);
            tracing::info!("MASTER MODE enabled (REPLICAOF NO ONE)");
        }
    }
}

/// Keeps the link to the master up until it is replaced or stopped.
async fn run(node: Arc<Node>, link: Arc<Link>) {
    loop {
        let r = tokio::select! {
            _ = link.stop.cancelled() => return,
            _ = node.shutdown.cancelled() => return,
            r = sync(&node, &link) => r,
        };
        if link.up.swap(false, Ordering::Relaxed) {
            link.down_since_ms
                .store(crate::commands::now_ms(), Ordering::Relaxed);
        }
        *link.state.lock() = "connect";
        // (A failover's target that refused its PSYNC ended the failover in `sync`; one that
        // could not be reached is tried again, the failover still in progress, as Redis.)
        if let Err(e) = r {
            tracing::warn!(master = %format!("{}:{}", link.host, link.port), "MASTER <-> REPLICA link: {e}; retrying in a second");
        }
        tokio::select! {
            _ = link.stop.cancelled() => return,
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Sends one command.
async fn send(w: &mut tokio::net::tcp::OwnedWriteHalf, args: &[&[u8]]) -> Result<(), String> {
    let mut out = Vec::new();
    crate::resp::encode_command(&mut out, args.iter().copied());
    w.write_all(&out).await.map_err(|e| e.to_string())
}

/// `repl-timeout`.
fn repl_timeout(node: &Node) -> Duration {
    Duration::from_secs(node.config.read().get_int("repl-timeout").max(1) as u64)
}

/// One line from the master, within `timeout`.
async fn line(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    timeout: Duration,
) -> Result<String, String> {
    let mut s = String::new();
    let n = tokio::time::timeout(timeout, r.read_line(&mut s))
        .await
        .map_err(|_| {
            format!(
                "the master did not answer within {} seconds (repl-timeout)",
                timeout.as_secs()
            )
        })?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("the master closed the connection".into());
    }
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// One connection to the master: handshake, full sync, then the stream until it breaks.
async fn sync(node: &Arc<Node>, link: &Link) -> Result<(), String> {
    *link.state.lock() = "connecting";
    let sock = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((link.host.as_str(), link.port)),
    )
    .await
    .map_err(|_| "connecting timed out".to_string())?
    .map_err(|e| format!("cannot connect: {e}"))?;
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    let (masteruser, masterauth) = {
        let c = node.config.read();
        (
            c.get("masteruser").to_string(),
            c.get("masterauth").to_string(),
        )
    };
    send(&mut wr, &[b"PING"]).await?;
    let pong = line(&mut rd, repl_timeout(node)).await?;
    if pong.starts_with("-NOAUTH") || !masterauth.is_empty() {
        if masterauth.is_empty() {
            return Err(format!("the master needs a password (masterauth): {pong}"));
        }
        let mut auth: Vec<&[u8]> = vec![b"AUTH"];
        if !masteruser.is_empty() {
            auth.push(masteruser.as_bytes());
        }
        auth.push(masterauth.as_bytes());
        send(&mut wr, &auth).await?;
        let r = line(&mut rd, repl_timeout(node)).await?;
        if !r.starts_with('+') {
            return Err(format!("AUTH refused by the master: {r}"));
        }
    } else if pong.starts_with('-') && !pong.starts_with("-NOAUTH") {
        return Err(format!("the master answered PING with {pong}"));
    }
    let port = node.resp_addr.port().to_string();
    send(&mut wr, &[b"REPLCONF", b"listening-port", port.as_bytes()]).await?;
    line(&mut rd, repl_timeout(node)).await?;
    send(&mut wr, &[b"REPLCONF", b"capa", b"psync2"]).await?;
    line(&mut rd, repl_timeout(node)).await?;
    // What this link already holds (after an earlier sync) lets the master send only what it
    // missed.
    let cached = {
        let replid = link.replid.lock().clone();
        let offset = link.offset.load(Ordering::Relaxed);
        (!replid.is_empty() && offset >= 0).then_some((replid, offset))
    };
    let (psync_id, psync_offset) = match &cached {
        Some((replid, offset)) => (replid.clone(), (offset + 1).to_string()),
        None => ("?".to_string(), "-1".to_string()),
    };
    let mut psync: Vec<&[u8]> = vec![b"PSYNC", psync_id.as_bytes(), psync_offset.as_bytes()];
    let failing_over = link.failover.load(Ordering::Relaxed);
    if failing_over {
        psync.push(b"FAILOVER");
    }
    if let Err(e) = send(&mut wr, &psync).await {
        if failing_over && link.failover.swap(false, Ordering::Relaxed) {
            crate::server::failover::abort(node, "Write error to failover target");
        }
        return Err(e);
    }
    // A master busy with a child (a BGSAVE, a rewrite) keeps the link alive with bare
    // newlines before its answer (Redis's replicationCron); they are not the answer.
    let reply = loop {
        let l = line(&mut rd, repl_timeout(node)).await?;
        if !l.is_empty() {
            break l;
        }
    };
    // The replica took over once it answers as a master (a full sync is fine too, as Redis);
    // any other answer (an error, -LOADING, -NOMASTERLINK) ends the failover, as Redis's
    // syncWithMaster: the node is a master again.
    if failing_over && link.failover.swap(false, Ordering::Relaxed) {
        if reply.starts_with("+FULLRESYNC") || reply.starts_with("+CONTINUE") {
            crate::server::failover::succeeded(node);
        } else {
            crate::server::failover::abort(node, "Failover target rejected psync request");
            return Err(format!("failover target refused PSYNC: {reply}"));
        }
    }
    let mut words = reply.split(' ');
    let offset = match (words.next(), cached) {
        (Some("+FULLRESYNC"), _) => {
            // What this link held no longer describes the data (a failed load may leave it
            // half replaced): only a full sync may follow this one until it succeeds.
            link.offset.store(-1, Ordering::Relaxed);
            link.replid.lock().clear();
            let replid = words.next().unwrap_or_default().to_string();
            let offset: i64 = words
                .next()
                .and_then(|o| o.parse().ok())
                .ok_or_else(|| format!("PSYNC answered with {reply}"))?;
            full_sync(node, link, &mut rd, &mut wr, replid, offset).await?;
            offset
        }
        (Some("+CONTINUE"), Some((_, offset))) => {
            // `+CONTINUE <replid>`: the master's ID changed (it was promoted), the stream did not.
            if let Some(new_id) = words.next().filter(|w| !w.is_empty()) {
                *link.replid.lock() = new_id.to_string();
            }
            tracing::info!(master = %format!("{}:{}", link.host, link.port), offset, "Successful partial resynchronization with master");
            offset
        }
        _ => return Err(format!("PSYNC answered with {reply}")),
    };
    link.last_io_ms
        .store(crate::commands::now_ms(), Ordering::Relaxed);
    link.up.store(true, Ordering::Relaxed);
    link.down_since_ms.store(0, Ordering::Relaxed);
    *link.state.lock() = "connected";
    send(
        &mut wr,
        &[b"REPLCONF", b"ACK", offset.to_string().as_bytes()],
    )
    .await?;
    stream(node, link, rd, wr, offset).await
}

/// The master's RDB file after `+FULLRESYNC <replid> <offset>`: read, and loaded in place of
/// this node's data.
async fn full_sync(
    node: &Arc<Node>,
    link: &Link,
    rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    replid: String,
    offset: i64,
) -> Result<(), String> {
    *link.state.lock() = "sync";
    let heard = || {
        link.transfer_last_io_ms
            .store(crate::commands::now_ms(), Ordering::Relaxed)
    };
    link.transfer_size.store(-1, Ordering::Relaxed);
    link.transfer_read.store(0, Ordering::Relaxed);
    heard();
    tracing::info!(master = %format!("{}:{}", link.host, link.port), "Full resync from master: {replid}:{offset}");
    // The file: newlines while the master makes it, then `$<length>` and the bytes.
    let len: usize = loop {
        let l = line(rd, repl_timeout(node)).await?;
        heard();
        if let Some(n) = l.strip_prefix('$') {
            if n.starts_with("EOF:") {
                return Err(
                    "the master sent a diskless EOF-marked file, which we did not ask for".into(),
                );
            }
            let len: usize = n.parse().map_err(|_| format!("bad file length {n}"))?;
            link.transfer_size.store(len as i64, Ordering::Relaxed);
            break len;
        }
        if !l.is_empty() {
            return Err(format!("expected the RDB file, got {l}"));
        }
    };
    // Read in pieces, each within `repl-timeout`: a master that stalls mid-transfer takes the
    // link down (and it is retried) rather than leaving it syncing for ever.
    let timeout = repl_timeout(node);
    let mut file = vec![0; len];
    let mut got = 0;
    while got < len {
        let n = tokio::time::timeout(timeout, rd.read(&mut file[got..]))
            .await
            .map_err(|_| {
                format!(
                    "Timeout receiving the RDB file from the master ({} of {len} bytes in; repl-timeout)",
                    got
                )
            })?
            .map_err(|e| format!("reading the RDB file: {e}"))?;
        if n == 0 {
            return Err("the master closed the connection during the transfer".into());
        }
        got += n;
        link.transfer_read.store(got as u64, Ordering::Relaxed);
        heard();
    }
    let loader = node.clone();
    let stop = link.stop.clone();
    let mut load = tokio::task::spawn_blocking(move || {
        let _load = loader.upstream.loading.lock();
        if stop.is_cancelled() {
            return Err("REPLICAOF changed before the copy was loaded".to_string());
        }
        load_rdb(&loader, &file)
    });
    // Newlines tell the master we are alive while the copy loads (as Redis's replicas do).
    let mut alive = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let keys = loop {
        tokio::select! {
            r = &mut load => break r.map_err(|e| e.to_string())??,
            _ = alive.tick() => wr.write_all(b"\n").await.map_err(|e| e.to_string())?,
        }
    };
    *link.replid.lock() = replid;
    link.offset.store(offset, Ordering::Relaxed);
    link.db.store(0, Ordering::Relaxed);
    link.full_syncs.fetch_add(1, Ordering::Relaxed);
    tracing::info!(keys, "MASTER <-> REPLICA sync: Finished with success");
    if node.store.aof.is_on() {
        // The log holds what this node had before: start it again from the copy.
        crate::persist::bgrewriteaof(node);
    }
    Ok(())
}

/// The master's stream from `offset` on, applied until the link breaks.
async fn stream(
    node: &Arc<Node>,
    link: &Link,
    rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut offset: i64,
) -> Result<(), String> {
    let mut replayer = crate::commands::Replayer::new(node)
        .ok_or("no client for the replication stream")?
        .logging();
    let mut parser = Parser::new(usize::MAX);
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut args: Vec<Bytes> = Vec::new();
    let mut db = link.db.load(Ordering::Relaxed);
    let mut multi: Option<Vec<(usize, Vec<Bytes>)>> = None;
    let mut ack = tokio::time::interval(Duration::from_secs(1));
    // What the buffered reader read ahead belongs to the stream.
    inbuf.extend_from_slice(rd.buffer());
    let mut rd = rd.into_inner();
    loop {
        loop {
            let before = inbuf.len();
            let parsed = parser.parse(&mut inbuf, &mut args).map_err(|e| {
                // Where the stream stands is lost: the next sync must be a full one.
                link.offset.store(-1, Ordering::Relaxed);
                format!("protocol error in the master's stream: {}", e.0)
            })?;
            if !parsed {
                break;
            }
            let consumed = (before - inbuf.len()) as i64;
            offset += consumed;
            if args.is_empty() {
                continue;
            }
            let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
            match name.as_str() {
                "ping" => {}
                "select" => {
                    // As a Redis replica, a SELECT it cannot follow fails and leaves the db as
                    // it was (logged: the data now differs from the master's).
                    match args
                        .get(1)
                        .and_then(|a| std::str::from_utf8(a).ok())
                        .and_then(|s| s.parse().ok())
                        .filter(|&d| d < node.store.databases())
                    {
                        Some(d) => db = d,
                        None => tracing::error!(
                            "the master selected a db that does not exist here (databases is too small): its writes go to db {db}"
                        ),
                    }
                }
                "replconf" => {
                    if args
                        .get(1)
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"getack"))
                    {
                        // The offset before this GETACK, as Redis's replicas answer.
                        let o = (offset - consumed).to_string();
                        send(&mut wr, &[b"REPLCONF", b"ACK", o.as_bytes()]).await?;
                    }
                }
                "multi" => multi = Some(Vec::new()),
                "exec" => {
                    // Applied as one step: readers here never see half of it.
                    let cmds = multi.take().unwrap_or_default();
                    if let Err(e) = replayer.replay_all(&cmds) {
                        tracing::error!(
                            "== CRITICAL == a transaction from the master could not be applied whole here, the data now differs from the master's: {e}"
                        );
                    }
                }
                _ => {
                    // A master older than 7.0 sends relative TTLs: made absolute here, as our
                    // log keeps them (the replay's clock stands still).
                    let now = crate::commands::now_ms();
                    let cmd = crate::persist::rewrite_for_log(&name, &args, now)
                        .unwrap_or_else(|| args.clone());
                    if cmd.is_empty() {
                        continue;
                    }
                    match multi.as_mut() {
                        Some(queue) => queue.push((db, cmd)),
                        None => replay(&mut replayer, db, &cmd),
                    }
                }
            }
            if multi.is_none() {
                link.offset.store(offset, Ordering::Relaxed);
                link.db.store(db, Ordering::Relaxed);
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut inbuf) => {
                match r {
                    Ok(0) => return Err("the master closed the connection".into()),
                    Err(e) => return Err(e.to_string()),
                    Ok(_) => link.last_io_ms.store(crate::commands::now_ms(), Ordering::Relaxed),
                }
            }
            _ = ack.tick() => {
                // The master PINGs every `repl-ping-replica-period`: silence for `repl-timeout`
                // means the link is dead even if the connection does not say so.
                let timeout = node.config.read().get_int("repl-timeout").max(1);
                let silent = crate::commands::now_ms() - link.last_io_ms.load(Ordering::Relaxed);
                if silent > timeout * 1000 {
                    return Err(format!("MASTER timeout: no data nor PING received for {timeout} seconds (repl-timeout)"));
                }
                // What is applied: not a transaction's first half.
                let o = link.offset.load(Ordering::Relaxed).to_string();
                send(&mut wr, &[b"REPLCONF", b"ACK", o.as_bytes()]).await?;
            }
        }
    }
}

/// Applies one command of the master's stream. One this node cannot run (a module's, a newer
/// Redis's) is skipped with an error in the log, as a Redis replica answers its master an
/// error and goes on: stopping there would stop at it again after every resync.
fn replay(replayer: &mut crate::commands::Replayer, db: usize, cmd: &[Bytes]) {
    if let Err(e) = replayer.replay(db, cmd) {
        tracing::error!(
            command = %String::from_utf8_lossy(&cmd[0]),
            "== CRITICAL == a command from the master could not be applied here, the data now differs from the master's: {e}"
        );
    }
}

use crate::store::rdb::{
    OPCODE_AUX, OPCODE_EOF, OPCODE_EXPIRETIME, OPCODE_EXPIRETIME_MS, OPCODE_FREQ, OPCODE_FUNCTION2,
    OPCODE_IDLE, OPCODE_MODULE_AUX, OPCODE_RESIZEDB, OPCODE_SELECTDB,
};

/// Replaces this node's data with what a Redis RDB file holds. Returns the keys loaded.
pub fn load_rdb(node: &Arc<Node>, file: &[u8]) -> Result<u64, String> {
    // Clients get -LOADING meanwhile (INFO's loading:1), as from a Redis replica loading its
    // master's file.
    struct Loading<'a>(&'a crate::persist::Persist);
    impl Drop for Loading<'_> {
        fn drop(&mut self) {
            self.0.loading.store(false, Ordering::Release);
        }
    }
    let p = &node.persist;
    p.loading_start_unix
        .store(crate::commands::now_ms() / 1000, Ordering::Relaxed);
    p.loading_total_bytes
        .store(file.len() as u64, Ordering::Relaxed);
    p.loading_loaded_bytes.store(0, Ordering::Relaxed);
    p.loading.store(true, Ordering::Release);
    let _loading = Loading(p);
    let lim = crate::commands::keys::rdb_limits(node);
    let Parsed { entries, functions } = parse_rdb(file, &lim, node.store.databases())?;
    // Our own replicas sync again from the new data set (as Redis's do when it attaches to
    // a new master).
    for r in node.replicas.list_ids() {
        if let Some(c) = node.clients.get(r) {
            c.kill.cancel();
        }
    }
    let lazy = node.config.read().get_bool("replica-lazy-flush");
    crate::cluster::replication::drop_keys(node, lazy, true);
    crate::commands::functions::flush_libraries(node);
    let aof = &node.store.aof;
    if let Some(f) = functions {
        crate::commands::functions::load_saved(node, &f)?;
        aof.append_with(|out| {
            write_record_with(out, |p| {
                p.push(aof::KIND_FUNCTIONS);
                p.extend_from_slice(&f);
            })
        });
    }
    let mut keys = 0;
    for payload in entries {
        let (loaded, _) = crate::persist::snapshot::load_entries(&payload, &node.store, &lim, None)
            .map_err(|_| "a key of the RDB file could not be loaded")?;
        keys += loaded;
        p.loading_loaded_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        // Logged as the entries they are, after the FLUSHALL above: a replay of our log (or a
        // replica of ours) ends with this data set too.
        aof.append_with(|out| {
            write_record_with(out, |p| {
                p.push(aof::KIND_ENTRIES);
                p.extend_from_slice(&payload);
            })
        });
    }
    Ok(keys)
}

/// Loads a Redis RDB file found where this node keeps its snapshot (`dir`/`dbfilename`, whose
/// default name is Redis's `dump.rdb`) into the empty store at start-up: a Redis data set moves
/// to Reredis by starting a node on its directory. Keys already expired are skipped (as Redis
/// does as a master), when `skip_expired_before` is given. Returns the keys loaded and skipped.
pub fn load_rdb_at_start(
    node: &Arc<Node>,
    file: &[u8],
    skip_expired_before: Option<i64>,
) -> Result<(u64, u64), String> {
    let lim = crate::commands::keys::rdb_limits(node);
    let Parsed { entries, functions } = parse_rdb(file, &lim, node.store.databases())?;
    if let Some(f) = functions {
        crate::commands::functions::load_saved(node, &f)?;
    }
    let (mut keys, mut expired) = (0, 0);
    for payload in entries {
        let (k, e) = crate::persist::snapshot::load_entries(
            &payload,
            &node.store,
            &lim,
            skip_expired_before,
        )
        .map_err(|_| "a key of the RDB file could not be loaded")?;
        keys += k;
        expired += e;
        node.persist
            .loading_loaded_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
    }
    Ok((keys, expired))
}

/// What an RDB file holds, in the forms our loaders take.
struct Parsed {
    /// Our snapshot's ENTRIES payloads (`db: u32`, then entries), one per db section.
    entries: Vec<Vec<u8>>,
    /// The function libraries as a FUNCTION DUMP payload.
    functions: Option<Vec<u8>>,
}

/// Reads a Redis RDB file: Redis 7.0's (version 10) and older, and 7.2's (11) except its
/// new stream encoding.
fn parse_rdb(file: &[u8], lim: &Limits, databases: usize) -> Result<Parsed, String> {
    let bad = |what: &str| format!("the RDB file is not readable: {what}");
    if file.len() < 9 + 1 + 8 || !file.starts_with(b"REDIS") {
        return Err(bad("no REDIS header"));
    }
    let version: u16 = std::str::from_utf8(&file[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("version"))?;
    if version > rdb::RDB_VERSION + 1 {
        return Err(bad(&format!("version {version} is newer than we read")));
    }
    let body = &file[..file.len() - 8];
    let crc = u64::from_le_bytes(file[file.len() - 8..].try_into().expect("8 bytes"));
    if crc != 0 && rdb::crc64(0, body) != crc {
        return Err(bad("checksum mismatch"));
    }
    let mut r = rdb::Reader::new(&body[9..]);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut functions: Vec<u8> = Vec::new();
    let mut db = 0usize;
    let mut payload: Option<Vec<u8>> = None;
    let mut expire: Option<i64> = None;
    loop {
        let op = r.u8().map_err(|_| bad("truncated"))?;
        match op {
            OPCODE_EOF => break,
            OPCODE_AUX => {
                r.string().map_err(|_| bad("aux field"))?;
                r.string().map_err(|_| bad("aux field"))?;
            }
            OPCODE_SELECTDB => {
                db = r.len().map_err(|_| bad("SELECTDB"))?;
                if db >= databases {
                    return Err(bad(&format!(
                        "db {db} does not exist here (databases {databases})"
                    )));
                }
                out.extend(payload.take());
            }
            OPCODE_RESIZEDB => {
                r.len().map_err(|_| bad("RESIZEDB"))?;
                r.len().map_err(|_| bad("RESIZEDB"))?;
            }
            OPCODE_EXPIRETIME_MS => {
                let b = r.bytes(8).map_err(|_| bad("expire"))?;
                expire = Some(i64::from_le_bytes(b.try_into().expect("8 bytes")));
            }
            OPCODE_EXPIRETIME => {
                let b = r.bytes(4).map_err(|_| bad("expire"))?;
                expire = Some(i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64 * 1000);
            }
            OPCODE_IDLE => {
                r.len().map_err(|_| bad("idle"))?;
            }
            OPCODE_FREQ => {
                r.u8().map_err(|_| bad("freq"))?;
            }
            OPCODE_FUNCTION2 => {
                let code = r.string().map_err(|_| bad("function library"))?;
                functions.push(OPCODE_FUNCTION2);
                rdb::write_string(&mut functions, &code);
            }
            OPCODE_MODULE_AUX => return Err(bad("module data (modules are not supported)")),
            t => {
                // A key: the type byte, the key, the value, as our entries hold them.
                let start = body.len() - r.remaining();
                r.string().map_err(|_| bad("key"))?;
                r.object(t, lim)
                    .map_err(|e| bad(&format!("value of type {t}: {e:?}")))?;
                let end = body.len() - r.remaining();
                // Payloads of about a megabyte: our log's record size.
                if payload.as_ref().is_some_and(|p| p.len() >= 1 << 20) {
                    out.extend(payload.take());
                }
                let p = payload.get_or_insert_with(|| {
                    let mut p = Vec::new();
                    put_u32(&mut p, db as u32);
                    p
                });
                if let Some(at) = expire.take() {
                    p.push(OPCODE_EXPIRETIME_MS);
                    p.extend_from_slice(&(at as u64).to_le_bytes());
                }
                p.push(t);
                p.extend_from_slice(&body[start..end]);
            }
        }
    }
    out.extend(payload.take());
    let functions = (!functions.is_empty()).then(|| {
        functions.extend_from_slice(&rdb::RDB_VERSION.to_le_bytes());
        let crc = rdb::crc64(0, &functions);
        functions.extend_from_slice(&crc.to_le_bytes());
        functions
    });
    Ok(Parsed {
        entries: out,
        functions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::snapshot::{Image, Item};
    use crate::store::{Sds, Value};

    fn lim() -> Limits {
        Limits::redis_defaults()
    }

    #[test]
    fn an_rdb_file_of_ours_parses_back_into_its_entries() {
        let item = |k: &str, ttl: Option<i64>| Item {
            key: Sds::from_vec(k.as_bytes().to_vec()),
            value: Value::from_bytes(b"v"),
            expire_at_ms: ttl,
        };
        let image = Image {
            dbs: vec![
                vec![item("a", None)],
                Vec::new(),
                vec![item("b", Some(1 << 42))],
            ],
            position: None,
            pins: Vec::new(),
            functions: None,
        };
        let file = crate::persist::rdb_file::encode(&image, &[("repl-offset", "0".into())]);
        let Parsed { entries, functions } = parse_rdb(&file, &lim(), 16).unwrap();
        assert!(functions.is_none());
        assert_eq!(entries.len(), 2, "one payload per non-empty db");
        let mut seen = Vec::new();
        for p in &entries {
            crate::persist::snapshot::for_each_entry(p, 16, &lim(), |db, it| {
                seen.push((db, it.key.to_vec(), it.expire_at_ms));
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(
            seen,
            [(0, b"a".to_vec(), None), (2, b"b".to_vec(), Some(1 << 42))]
        );
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let image = Image {
            dbs: vec![Vec::new()],
            position: None,
            pins: Vec::new(),
            functions: None,
        };
        let mut file = crate::persist::rdb_file::encode(&image, &[]);
        let n = file.len();
        file[n - 9] ^= 1; // the EOF opcode
        assert!(parse_rdb(&file, &lim(), 16).is_err());
        assert!(parse_rdb(b"NOTREDIS", &lim(), 16).is_err());
    }
}
