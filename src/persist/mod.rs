//! Persistence: snapshots (`SAVE`, `BGSAVE`, `save` rules), the append-only log (`appendonly`,
//! `appendfsync`, `BGREWRITEAOF`), loading at start-up, and the state `INFO persistence` reports.
//! Formats and guarantees are described in docs/persistence.md; the file formats in
//! [`format`], [`aof`] and [`snapshot`].

pub mod aof;
pub mod check;
pub mod format;
pub mod rdb_file;
pub mod snapshot;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use crate::node::Node;
use format::{Cursor, Next, Reader};
use snapshot::Image;

/// Background job kinds (one at a time, as Redis runs one child).
const JOB_NONE: u8 = 0;
const JOB_BGSAVE: u8 = 1;
const JOB_REWRITE: u8 = 2;

/// How long a failed background save waits before the `save` rules try again (Redis's
/// CONFIG_BGSAVE_RETRY_DELAY).
const RETRY_DELAY_MS: i64 = 5000;

/// Persistence state of a node (the figures `INFO persistence` shows).
#[derive(Default)]
pub struct Persist {
    pub loading: AtomicBool,
    pub loading_start_unix: AtomicI64,
    pub loading_total_bytes: AtomicU64,
    pub loading_loaded_bytes: AtomicU64,
    job: AtomicU8,
    pub job_started_ms: AtomicI64,
    pub rewrite_scheduled: AtomicBool,
    /// BGSAVE SCHEDULE while a rewrite ran: started by the cron once it ends.
    pub bgsave_scheduled: AtomicBool,
    pub last_save_unix: AtomicI64,
    pub last_bgsave_ok: AtomicBool,
    pub last_bgsave_secs: AtomicI64,
    pub last_bgsave_try_ms: AtomicI64,
    pub rdb_saves: AtomicU64,
    pub dirty_at_save: AtomicU64,
    /// The dirty counter when the running BGSAVE took its image.
    dirty_at_job: AtomicU64,
    pub last_rewrite_ok: AtomicBool,
    pub last_rewrite_secs: AtomicI64,
    /// `aof_rewrites`: background rewrites started (BGREWRITEAOF, automatic, CONFIG SET
    /// appendonly yes). The log created at start-up is not one, as in Redis.
    pub rewrites: AtomicU64,
    pub rewrite_failures: AtomicU64,
    pub load_keys_loaded: AtomicU64,
    pub load_keys_expired: AtomicU64,
    /// SHUTDOWN's choice: 0 as configured, 1 SAVE, 2 NOSAVE.
    pub shutdown_save: AtomicU8,
    /// SHUTDOWN NOW: do not wait for lagging replicas.
    pub shutdown_now: AtomicBool,
    /// When turning the log on at run time may be tried again after a failure (unix ms).
    aof_retry_at_ms: AtomicI64,
    /// Numbers snapshots in the order their images were cut (under every shard lock), and
    /// the number of the one in place: a slower save of an older image does not replace a
    /// newer one (FLUSHALL's, taken while a background save still writes).
    snapshot_generation: AtomicU64,
    snapshot_in_place: parking_lot::Mutex<u64>,
    /// The dirty counter read just before the snapshot [`save_before_shutdown`] took: the
    /// save at exit is skipped while it still stands.
    shutdown_saved_dirty: parking_lot::Mutex<Option<u64>>,
    /// A load that failed: start-up stops with this message.
    pub fatal: parking_lot::Mutex<Option<String>>,
}

impl Persist {
    /// Counts a background rewrite as it starts, as Redis's `rewriteAppendOnlyFileBackground`
    /// does (a failed one counts too).
    fn count_rewrite(&self) {
        self.rewrites.fetch_add(1, Ordering::Relaxed);
    }

    pub fn new(now_ms: i64) -> Persist {
        let p = Persist::default();
        p.last_save_unix.store(now_ms / 1000, Ordering::Relaxed);
        p.last_bgsave_ok.store(true, Ordering::Relaxed);
        p.last_rewrite_ok.store(true, Ordering::Relaxed);
        p.last_bgsave_secs.store(-1, Ordering::Relaxed);
        p.last_rewrite_secs.store(-1, Ordering::Relaxed);
        p
    }

    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::Relaxed)
    }

    pub fn bgsave_in_progress(&self) -> bool {
        self.job.load(Ordering::Relaxed) == JOB_BGSAVE
    }

    pub fn rewrite_in_progress(&self) -> bool {
        self.job.load(Ordering::Relaxed) == JOB_REWRITE
    }

    fn try_start(&self, job: u8, now_ms: i64) -> bool {
        let ok = self
            .job
            .compare_exchange(JOB_NONE, job, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if ok {
            self.job_started_ms.store(now_ms, Ordering::Relaxed);
        }
        ok
    }

    fn finish(&self) {
        self.job.store(JOB_NONE, Ordering::Release);
    }

    /// The next snapshot's number: take it with every shard held, as the image is cut.
    fn next_generation(&self) -> u64 {
        self.snapshot_generation.fetch_add(1, Ordering::Relaxed) + 1
    }
}

pub fn now_ms() -> i64 {
    crate::commands::now_ms()
}

/// An I/O error as C's `strerror` words it ("No such file or directory"), for messages that
/// follow Redis's.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Writes a file through a temp file in the same directory: written by `f`, fsynced, renamed
/// over `path`, and the directory fsynced, so a crash leaves the old file or the new one.
pub fn write_atomically(
    path: &Path,
    f: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    write_atomically_in_order(path, f, None).map(|_| ())
}

/// [`write_atomically`], where writers of one file may race and the newest content must win:
/// `order` is (the highest generation renamed into place so far, this content's generation).
/// Content older than what is in place is dropped (false), not renamed over it.
fn write_atomically_in_order(
    path: &Path,
    f: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    order: Option<(&parking_lot::Mutex<u64>, u64)>,
) -> std::io::Result<bool> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        let mut placed = order.map(|(m, generation)| (m.lock(), generation));
        if let Some((in_place, generation)) = &placed
            && *generation < **in_place
        {
            return Ok(false);
        }
        std::fs::rename(&tmp, path)?;
        if let Some((in_place, generation)) = placed.as_mut() {
            **in_place = *generation;
        }
        drop(placed);
        fsync_dir(path)?;
        Ok(true)
    })();
    if !matches!(result, Ok(true)) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A temp file's name beside `path`, unique to this write (two writers of one file, such as
/// two connections' ACL SAVE, must not share a temp file).
fn temp_path(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("temp-{}-{seq}-{name}", std::process::id()))
}

/// Fsyncs the directory holding `path`, so a rename in it is durable.
pub fn fsync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// In a cluster, the data files left at their default names take the port, as
/// `nodes-<port>.conf` does (`dump-7000.rdb`, `appendonly-7000.aof`), so nodes that share a
/// directory (the README's quick start) each keep their own keys. Names set explicitly are used
/// as given; `CONFIG GET` shows the name in use.
pub fn name_files_by_port(config: &mut crate::config::Config, port: u16) {
    if !config.cluster_enabled {
        return;
    }
    for (name, stem, ext) in [
        ("dbfilename", "dump", "rdb"),
        ("appendfilename", "appendonly", "aof"),
    ] {
        if config.values.origin(name) == Some(&crate::config::Origin::Default) {
            let _ = config.values.set(
                name,
                &format!("{stem}-{port}.{ext}"),
                crate::config::Origin::Default,
            );
        }
    }
}

pub fn snapshot_path(node: &Node) -> PathBuf {
    let c = node.config.read();
    Path::new(&c.dir).join(c.get("dbfilename"))
}

pub fn aof_path(node: &Node) -> PathBuf {
    let c = node.config.read();
    Path::new(&c.dir).join(c.get("appendfilename"))
}

fn limits(node: &Node) -> crate::store::rdb::Limits {
    crate::commands::keys::rdb_limits(node)
}

/// Records how far loading got (for INFO) and logs it every few seconds.
fn note_progress(p: &Persist, done: u64, last_log: &std::cell::Cell<Instant>) {
    p.loading_loaded_bytes.store(done, Ordering::Relaxed);
    if last_log.get().elapsed().as_secs() >= 2 {
        last_log.set(Instant::now());
        let total = p.loading_total_bytes.load(Ordering::Relaxed).max(1);
        tracing::info!(
            "Loading: {done} of {total} bytes ({:.1}%)",
            done as f64 * 100.0 / total as f64
        );
    }
}

/// What start-up will load, if anything.
pub fn has_data_to_load(node: &Node) -> bool {
    let aof_on = node.config.read().get_bool("appendonly");
    (aof_on && aof_path(node).exists()) || snapshot_path(node).exists()
}

/// Loads the data files (the log when `appendonly yes` and it exists, else the snapshot), then
/// opens the log for appending when it is on. Runs on a blocking thread while the node answers
/// `-LOADING`; an error stops start-up.
pub fn load_and_open(node: &Arc<Node>) -> anyhow::Result<()> {
    let p = &node.persist;
    p.loading_start_unix
        .store(now_ms() / 1000, Ordering::Relaxed);
    p.loading.store(true, Ordering::Release);
    // A load that fails leaves `loading` set: the shutdown that follows must not save the
    // empty data set over the files it could not read.
    let position = load(node)?;
    if let (Some((replid, offset)), Some(c)) = (position, node.cluster.as_ref()) {
        let is_master = c.state.lock().me().is_master();
        tracing::info!(
            "The data loaded is replication stream {replid} up to offset {offset}: {}",
            if is_master {
                "replicas standing there continue from it"
            } else {
                "asking the master to continue from there"
            }
        );
        c.repl.restore(node, is_master, replid, offset);
    }
    let aof_on = node.config.read().get_bool("appendonly");
    if aof_on {
        let path = aof_path(node);
        if !path.exists() {
            // As Redis: turning the log on starts it from the data already held.
            node.store.aof.buffer_on();
            rewrite_now(node)?;
        }
        let fsync = aof::Fsync::parse(node.config.read().get("appendfsync"));
        node.store.aof.start(&path, fsync)?;
    }
    // Writes are let in only now: one taken between the load and the log's start would be
    // acknowledged and never logged.
    p.loading.store(false, Ordering::Release);
    Ok(())
}

/// Whether this node is a replica, which keeps expired keys when loading (its master deletes
/// them in its stream, as Redis's replicas do).
fn is_replica(node: &Node) -> bool {
    node.cluster
        .as_ref()
        .is_some_and(|c| !c.state.lock().me().is_master())
}

/// Loads the data files; returns the replication position saved with them (see
/// `aof::KIND_POSITION`), if any.
fn load(node: &Arc<Node>) -> anyhow::Result<Option<(String, u64)>> {
    let started = Instant::now();
    let aof_on = node.config.read().get_bool("appendonly");
    let aof = aof_path(node);
    let snap = snapshot_path(node);
    let p = &node.persist;
    let total = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if aof_on && aof.exists() {
        p.loading_total_bytes.store(total(&aof), Ordering::Relaxed);
        tracing::info!(file = %aof.display(), "Loading the append-only log");
        let (n, position) = load_aof(node, &aof, None)?;
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds ({n} records)",
            started.elapsed().as_secs_f64()
        );
        Ok(position)
    } else if snap.exists() {
        p.loading_total_bytes.store(total(&snap), Ordering::Relaxed);
        tracing::info!(file = %snap.display(), "Loading the snapshot");
        let lim = limits(node);
        let last_log = std::cell::Cell::new(Instant::now());
        let progress = |b: u64| note_progress(p, b, &last_log);
        let skip_expired = (!is_replica(node)).then(now_ms);
        if is_redis_rdb(&snap) {
            if node.cluster.is_some() {
                // Its keys belong to slots this node may not own, and to dbs a cluster has not.
                anyhow::bail!(
                    "{} is a Redis RDB file, which a node in cluster mode does not load: load it into a node with cluster-enabled no and move its keys with redis-cli --cluster import (or MIGRATE), or move the file away",
                    snap.display()
                );
            }
            let file = std::fs::read(&snap)
                .map_err(|e| anyhow::anyhow!("{}: {}", snap.display(), strerror(&e)))?;
            let (loaded, expired) =
                crate::server::upstream::load_rdb_at_start(node, &file, skip_expired).map_err(
                    |e| {
                        anyhow::anyhow!(
                            "{}: {e}. Move it away to start without it, or restore a good copy",
                            snap.display()
                        )
                    },
                )?;
            p.load_keys_loaded.store(loaded, Ordering::Relaxed);
            p.load_keys_expired.store(expired, Ordering::Relaxed);
            tracing::info!(
                "DB loaded from a Redis RDB file: {:.3} seconds ({loaded} keys, {expired} expired); the next save writes Reredis's own snapshot format in its place",
                started.elapsed().as_secs_f64()
            );
            return Ok(None);
        }
        let loaded = snapshot::load_file(&snap, &node.store, &lim, skip_expired, &progress)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e}. The snapshot is damaged: move it away to start without it, or restore a good copy"
                )
            })?;
        if let Some(f) = &loaded.functions {
            crate::commands::functions::load_saved(node, f)
                .map_err(|e| anyhow::anyhow!("{}: {e}", snap.display()))?;
        }
        let (loaded, expired, position) = (loaded.keys, loaded.expired, loaded.position);
        p.load_keys_loaded.store(loaded, Ordering::Relaxed);
        p.load_keys_expired.store(expired, Ordering::Relaxed);
        tracing::info!(
            "DB loaded from disk: {:.3} seconds ({loaded} keys, {expired} expired)",
            started.elapsed().as_secs_f64()
        );
        Ok(position)
    } else {
        Ok(None)
    }
}

/// Whether the file at `path` is a Redis RDB file (`REDIS` and a 4-digit version), not one of
/// our snapshots.
fn is_redis_rdb(path: &Path) -> bool {
    let mut head = [0u8; 9];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && head.starts_with(b"REDIS")
        && head[5..].iter().all(u8::is_ascii_digit)
}

/// How a log read ended, for start-up and `check-aof`.
#[derive(Debug)]
pub enum AofEnd {
    Clean,
    /// The last record is cut short at this offset.
    Truncated(u64),
    Corrupt(u64, String),
}

/// Walks a log file, giving each record's payload to `f` (which may reject it as undecodable).
/// Returns the number of records and how the file ended.
pub fn scan_aof(
    path: &Path,
    mut f: impl FnMut(&[u8], u64) -> Result<(), String>,
) -> std::io::Result<(u64, AofEnd)> {
    let file = std::fs::File::open(path)?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    match std::io::Read::read_exact(&mut r, &mut magic) {
        Ok(()) if &magic == aof::MAGIC => {}
        _ => {
            return Ok((
                0,
                AofEnd::Corrupt(0, "not a reredis append-only file (bad magic)".into()),
            ));
        }
    }
    let mut reader = Reader::new(r, aof::MAGIC.len() as u64);
    let mut n = 0;
    loop {
        let at = reader.offset;
        match reader.next_record()? {
            Next::Record(p) => {
                if let Err(why) = f(&p, reader.offset) {
                    return Ok((n, AofEnd::Corrupt(at, why)));
                }
                n += 1;
            }
            Next::End => return Ok((n, AofEnd::Clean)),
            Next::Truncated => return Ok((n, AofEnd::Truncated(at))),
            Next::Corrupt(why) => return Ok((n, AofEnd::Corrupt(at, why.to_string()))),
        }
    }
}

/// Applies a `PINS` or `MOVED` record's payload (after its kind byte; see `aof`'s module doc):
/// pins the keys, or deletes and unpins them.
pub fn apply_keys_record(
    store: &crate::store::Store,
    kind: u8,
    payload: &[u8],
) -> Result<(), format::Short> {
    for key in aof::decode_keys(&mut Cursor::new(payload))? {
        let shard = crate::store::shard_of_slot(crate::cluster::slots::key_hash_slot(&key));
        apply_keys_record_to(&mut store.lock_shard(shard, 0), kind, key);
    }
    Ok(())
}

/// One key of a `PINS` or `MOVED` record, under a keyspace that holds its shard.
fn apply_keys_record_to(ks: &mut crate::store::Keyspace, kind: u8, key: Vec<u8>) {
    let shard = crate::store::shard_of_slot(crate::cluster::slots::key_hash_slot(&key));
    if kind == aof::KIND_MOVED {
        let _ = ks.settle_moved(&key);
    } else if let Ok(p) = ks.pinned_mut(shard) {
        p.insert(key);
    }
}

/// Checks that a record payload decodes (without applying it).
pub fn validate_payload(p: &[u8]) -> Result<(), String> {
    match p.first() {
        Some(&aof::KIND_PINS | &aof::KIND_MOVED) => aof::decode_keys(&mut Cursor::new(&p[1..]))
            .map(|_| ())
            .map_err(|_| "undecodable keys record".into()),
        Some(&aof::KIND_COMMANDS) => aof::decode_commands(&mut Cursor::new(&p[1..]))
            .map(|_| ())
            .map_err(|_| "undecodable command record".into()),
        Some(&aof::KIND_ENTRIES | &aof::KIND_FUNCTIONS) => Ok(()),
        Some(&aof::KIND_POSITION) => aof::decode_position(&mut Cursor::new(&p[1..]))
            .map(|_| ())
            .map_err(|_| "undecodable position record".into()),
        _ => Err("unknown record kind".into()),
    }
}

fn repair_hint(path: &Path) -> String {
    format!(
        "run `reredis check-aof --fix {}` to cut the log at the last good record (what follows is lost), or restore a good copy",
        path.display()
    )
}

/// Replays the log; returns the number of records and the replication position its last
/// record gives, if it is a `POSITION` record.
/// Replays the log at `path` into the node's store, or into `held`, a keyspace the caller
/// holds whole (DEBUG LOADAOF).
fn load_aof(
    node: &Arc<Node>,
    path: &Path,
    mut held: Option<&mut crate::store::Keyspace>,
) -> anyhow::Result<(u64, Option<(String, u64)>)> {
    let lim = limits(node);
    let mut replayer = crate::commands::Replayer::new(node)
        .ok_or_else(|| anyhow::anyhow!("no client for the log replay"))?;
    let p = &node.persist;
    let last_log = std::cell::Cell::new(Instant::now());
    let mut position = None;
    let (n, end) = scan_aof(path, |payload, offset| {
        note_progress(p, offset, &last_log);
        // A position holds only while nothing follows it.
        position = None;
        match payload.first() {
            Some(&aof::KIND_COMMANDS) => {
                let cmds = aof::decode_commands(&mut Cursor::new(&payload[1..]))
                    .map_err(|_| "undecodable command record".to_string())?;
                for (db, args) in cmds {
                    match held.as_deref_mut() {
                        Some(ks) => replayer.replay_held(ks, db, &args)?,
                        None => replayer.replay(db, &args)?,
                    }
                }
                Ok(())
            }
            Some(&aof::KIND_ENTRIES) => {
                // The base of a rewritten log keeps keys that have expired since: commands after
                // it may have run while they were alive; expiry deletes them after loading.
                let undecodable = |_| "undecodable snapshot entries".to_string();
                let l = match held.as_deref_mut() {
                    Some(ks) => {
                        let mut l = 0;
                        snapshot::for_each_entry(
                            &payload[1..],
                            ks.store().databases(),
                            &lim,
                            |db, e| {
                                l += 1;
                                ks.set(db, &e.key, e.value, e.expire_at_ms, false)
                                    .map_err(|_| format::Short)
                            },
                        )
                        .map_err(undecodable)?;
                        l
                    }
                    None => {
                        snapshot::load_entries(&payload[1..], &node.store, &lim, None)
                            .map_err(undecodable)?
                            .0
                    }
                };
                p.load_keys_loaded.fetch_add(l, Ordering::Relaxed);
                Ok(())
            }
            Some(&kind @ (aof::KIND_PINS | aof::KIND_MOVED)) => {
                let undecodable = |_| "undecodable keys record".to_string();
                match held.as_deref_mut() {
                    Some(ks) => {
                        for key in aof::decode_keys(&mut Cursor::new(&payload[1..]))
                            .map_err(undecodable)?
                        {
                            apply_keys_record_to(ks, kind, key);
                        }
                        Ok(())
                    }
                    None => {
                        apply_keys_record(&node.store, kind, &payload[1..]).map_err(undecodable)
                    }
                }
            }
            Some(&aof::KIND_FUNCTIONS) => {
                crate::commands::functions::load_saved(node, &payload[1..])
            }
            Some(&aof::KIND_POSITION) => {
                position = Some(
                    aof::decode_position(&mut Cursor::new(&payload[1..]))
                        .map_err(|_| "undecodable position record".to_string())?,
                );
                Ok(())
            }
            _ => Err("unknown record kind".into()),
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    match end {
        AofEnd::Clean => Ok((n, position)),
        AofEnd::Truncated(offset) => {
            if !node.config.read().get_bool("aof-load-truncated") {
                anyhow::bail!(
                    "Unexpected end of file reading the append only file {} at offset {offset} (a truncated last record); aof-load-truncated is no: {}",
                    path.display(),
                    repair_hint(path)
                );
            }
            tracing::warn!(
                "!!! Warning: short read while loading the AOF file {}!!! The last record at offset {offset} is incomplete (a crash while writing it?); cutting the file there and continuing ({n} records loaded)",
                path.display()
            );
            let f = std::fs::OpenOptions::new().write(true).open(path)?;
            f.set_len(offset)?;
            f.sync_all()?;
            // Cut short by a crash: not a clean shutdown's position.
            Ok((n, None))
        }
        AofEnd::Corrupt(offset, why) => anyhow::bail!(
            "Bad file format reading the append only file {} at offset {offset}: {why}; refusing to start with part of the data: {}",
            path.display(),
            repair_hint(path)
        ),
    }
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("Background save already in progress")]
    InProgress,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Writes a snapshot on this thread (the caller holds the job slot). Only a `background`
/// save that fails sets `rdb_last_bgsave_status:err` (and so MISCONF), as Redis's
/// backgroundSaveDoneHandler; a failed SAVE or final save at shutdown leaves it, as rdbSave.
/// `generation`: the image's number ([`Persist::next_generation`]).
fn save_blocking(
    node: &Node,
    (image, generation): (Image, u64),
    dirty: u64,
    background: bool,
) -> std::io::Result<()> {
    let started = Instant::now();
    let path = snapshot_path(node);
    let keys = image.keys();
    let p = &node.persist;
    let result = snapshot::write_file(
        &path,
        &image,
        now_ms(),
        Some((&p.snapshot_in_place, generation)),
    );
    drop(image);
    p.last_bgsave_try_ms.store(now_ms(), Ordering::Relaxed);
    match &result {
        Ok(None) => {
            tracing::info!("Snapshot dropped: a newer one (FLUSHALL's) was saved meanwhile");
        }
        Ok(Some(size)) => {
            p.last_save_unix.store(now_ms() / 1000, Ordering::Relaxed);
            p.dirty_at_save.store(dirty, Ordering::Relaxed);
            p.last_bgsave_ok.store(true, Ordering::Relaxed);
            tracing::info!(
                "DB saved on disk: {} ({keys} keys, {size} bytes, {:.3} seconds)",
                path.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Err(e) => {
            if background {
                p.last_bgsave_ok.store(false, Ordering::Relaxed);
            }
            tracing::warn!("Failed saving the DB to {}: {e}", path.display());
        }
    }
    p.last_bgsave_secs
        .store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
    result.map(|_| ())
}

/// SAVE: a snapshot written before the reply.
pub fn save(node: &Node) -> Result<(), SaveError> {
    if !node.persist.try_start(JOB_BGSAVE, now_ms()) {
        return Err(SaveError::InProgress);
    }
    let dirty = node.store.dirty();
    let image = capture_with_position(node);
    let r = save_blocking(node, image, dirty, false);
    node.persist.finish();
    Ok(r?)
}

/// DEBUG RELOAD, with every shard held in `ks`: saves a snapshot (unless `save` is false),
/// empties the keyspace (unless `flush` is false), and loads the snapshot file back, as
/// Redis's does (keys whose TTL passed stay out). With `merge` a loaded key replaces one
/// already there; without, one already there is an error and the rest of the file is not
/// loaded. Returns the keys loaded.
pub fn debug_reload(
    node: &Node,
    ks: &mut crate::store::Keyspace,
    save: bool,
    flush: bool,
    merge: bool,
) -> Result<u64, String> {
    let path = snapshot_path(node);
    if save {
        if !node.persist.try_start(JOB_BGSAVE, now_ms()) {
            return Err("Background save already in progress".into());
        }
        let dirty = node.store.dirty();
        let image = image_of_locked(node, ks);
        let r = save_blocking(node, image, dirty, false);
        node.persist.finish();
        r.map_err(|e| format!("Error saving the snapshot: {e}"))?;
    }
    // Read into a store of its own first: a file that does not load leaves the keyspace as it
    // was when `flush` is false, and the encodings are the ones loading picks.
    let loaded = crate::store::Store::new(node.store.databases(), Default::default());
    let found = snapshot::load_file(&path, &loaded, &limits(node), Some(now_ms()), &|_| {})
        .map_err(|e| format!("Error trying to load the RDB dump: {e}"))?;
    let image = Image::capture(&loaded, || {});
    drop(loaded);
    // Libraries first, as Redis's file holds them before the keys: a flush empties them too
    // (Redis's emptyData), NOFLUSH refuses a library already here unless MERGE replaces it.
    use crate::commands::functions::{RestorePolicy, flush_libraries, restore_payload};
    let policy = match (flush, merge) {
        (true, _) => RestorePolicy::Flush,
        (false, true) => RestorePolicy::Replace,
        (false, false) => RestorePolicy::Append,
    };
    match &found.functions {
        Some(f) => restore_payload(node, f, policy)
            .map_err(|e| format!("Error trying to load the RDB dump: {e}"))?,
        None if flush => flush_libraries(node),
        None => {}
    }
    if flush {
        ks.flush_all(false);
    }
    for (db, items) in image.dbs.into_iter().enumerate() {
        for item in items {
            let unlocked = |_| "DEBUG RELOAD without the keyspace locked".to_string();
            if !merge && ks.peek(db, &item.key).map_err(unlocked)?.is_some() {
                return Err(format!(
                    "Error trying to load the RDB dump: duplicated key '{}' in DB {db}",
                    String::from_utf8_lossy(&item.key)
                ));
            }
            ks.set(db, &item.key, item.value, item.expire_at_ms, false)
                .map_err(unlocked)?;
        }
    }
    tracing::warn!("DB reloaded by DEBUG RELOAD");
    Ok(found.keys)
}

/// DEBUG LOADAOF, as Redis's: writes what the log has pending, empties the keyspace (held whole
/// by the caller) and replays the log into it. Nothing is logged or counted as a change.
pub fn debug_loadaof(node: &Arc<Node>, ks: &mut crate::store::Keyspace) -> Result<u64, String> {
    let path = aof_path(node);
    if node.store.aof.is_on() {
        node.store
            .aof
            .write_pending_now()
            .map_err(|e| format!("Error writing the append only file: {e}"))?;
    } else if !path.exists() {
        // (Redis exits here.) With the log off, BGREWRITEAOF still writes one to load.
        return Err("DEBUG LOADAOF: there is no append only file to load (appendonly is no and no BGREWRITEAOF wrote one)".into());
    }
    // Emptied as Redis's emptyData does: keys and function libraries (the log has both).
    ks.flush_all(false);
    for (_, shard) in ks.shards_mut() {
        shard.pinned.clear();
    }
    crate::commands::functions::flush_libraries(node);
    let (n, _) = load_aof(node, &path, Some(ks)).map_err(|e| e.to_string())?;
    tracing::warn!("Append Only File loaded by DEBUG LOADAOF ({n} records)");
    Ok(n)
}

/// A snapshot's image with the replication position it is at (see `Replication::position`):
/// a replica does not apply its master's stream meanwhile. With its number.
fn capture_with_position(node: &Node) -> (Image, u64) {
    let repl = node.cluster.as_ref().map(|c| &c.repl);
    let _gate = repl.map(|r| r.gate());
    let mut position = None;
    let mut generation = 0;
    let mut image = Image::capture_node(node, || {
        position = repl.and_then(|r| r.position(node));
        generation = node.persist.next_generation();
    });
    image.position = position;
    (image, generation)
}

/// The keyspace `ks` holds whole, as a snapshot image with its number (DEBUG RELOAD,
/// FLUSHALL). The replication position only if its gate is free (a replica may be half-way
/// through a frame; the gate comes before the shards, so it is only tried here).
fn image_of_locked(node: &Node, ks: &mut crate::store::Keyspace) -> (Image, u64) {
    let mut image = Image::from_locked(ks, node.store.databases());
    image.functions = crate::commands::functions::dump_all(node);
    image.position = node.cluster.as_ref().and_then(|c| {
        let _gate = c.repl.try_gate()?;
        c.repl.position(node)
    });
    (image, node.persist.next_generation())
}

/// FLUSHALL with `save` rules, as Redis's flushAllDataAndResetRDB: the emptied data set (every
/// shard held in `ks`) is saved at once, so a restart cannot bring the flushed keys back. It
/// takes the place of a snapshot a background save is still writing: that one, of an older
/// image, is dropped when it ends (Redis kills its child).
///
/// From a script (`in_script`; also the log's replay and a master's stream, which run as one)
/// the save is a background save started right after it: a running script holds the function
/// engine, whose libraries every snapshot carries, so saving here would wait on itself.
pub fn save_after_flush(node: &Node, ks: &mut crate::store::Keyspace, in_script: bool) {
    if node.persist.is_loading() || node.config.read().get("save").is_empty() {
        return;
    }
    if in_script {
        node.persist.bgsave_scheduled.store(true, Ordering::Relaxed);
        return;
    }
    let dirty = node.store.dirty();
    let image = image_of_locked(node, ks);
    let _ = save_blocking(node, image, dirty, false);
}

/// BGSAVE: false when a job already runs.
pub fn bgsave(node: &Arc<Node>) -> bool {
    if !node.persist.try_start(JOB_BGSAVE, now_ms()) {
        return false;
    }
    // `rdb_saves` counts attempts (SAVE and every background save), as Redis's.
    node.persist.rdb_saves.fetch_add(1, Ordering::Relaxed);
    let node = node.clone();
    tokio::task::spawn_blocking(move || {
        let dirty = node.store.dirty();
        node.persist.dirty_at_job.store(dirty, Ordering::Relaxed);
        let image = capture_with_position(&node);
        let _ = save_blocking(&node, image, dirty, true);
        node.persist.finish();
    });
    true
}

/// Rewrites the log on this thread: a snapshot of the keyspace as its base, then every record
/// appended since the snapshot point, then an atomic rename over the log.
fn rewrite_now(node: &Node) -> std::io::Result<u64> {
    let started = Instant::now();
    let target = aof_path(node);
    let aof = &node.store.aof;
    let image = Image::capture_node(node, || aof.begin_rewrite());
    let tmp = temp_path(&target);
    let result = (|| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        w.write_all(aof::MAGIC)?;
        snapshot::write_entries(&mut w, &image)?;
        w.flush()?;
        drop(image);
        aof.finish_rewrite(&tmp, &target)
    })();
    let p = &node.persist;
    match &result {
        Ok(size) => {
            p.last_rewrite_ok.store(true, Ordering::Relaxed);
            p.rewrite_failures.store(0, Ordering::Relaxed);
            tracing::info!(
                "Background AOF rewrite finished successfully ({size} bytes, {:.3} seconds)",
                started.elapsed().as_secs_f64()
            );
        }
        Err(e) => {
            aof.abort_rewrite();
            let _ = std::fs::remove_file(&tmp);
            p.last_rewrite_ok.store(false, Ordering::Relaxed);
            p.rewrite_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("Background AOF rewrite failed: {e}");
        }
    }
    p.last_rewrite_secs
        .store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
    result
}

/// What BGREWRITEAOF did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    Started,
    /// After the running BGSAVE.
    Scheduled,
    AlreadyRunning,
}

pub fn bgrewriteaof(node: &Arc<Node>) -> Rewrite {
    if node.persist.rewrite_in_progress() {
        return Rewrite::AlreadyRunning;
    }
    if !node.persist.try_start(JOB_REWRITE, now_ms()) {
        node.persist
            .rewrite_scheduled
            .store(true, Ordering::Relaxed);
        return Rewrite::Scheduled;
    }
    node.persist
        .rewrite_scheduled
        .store(false, Ordering::Relaxed);
    node.persist.count_rewrite();
    let node = node.clone();
    tokio::task::spawn_blocking(move || {
        let _ = rewrite_now(&node);
        node.persist.finish();
    });
    Rewrite::Started
}

/// Logs a key that arrived outside the command path (a slot migration importing it) as an
/// `ENTRIES` record, so a replay recreates it; returns the log position to wait for before
/// acknowledging the import. Call with the key's shard locked, after inserting it. Keys removed
/// outside the command path (the sender's side of a migration) are logged with
/// `store.aof.append_del`.
pub fn log_imported(
    store: &crate::store::Store,
    db: usize,
    key: &[u8],
    value: &crate::store::Value,
    expire_at_ms: Option<i64>,
) -> u64 {
    store.aof.append_with(|out| {
        format::write_record_with(out, |p| {
            p.push(aof::KIND_ENTRIES);
            format::put_u32(p, db as u32);
            snapshot::encode_parts(p, key, value, expire_at_ms, &mut Vec::new());
        })
    })
}

/// CONFIG SET appendonly / appendfsync at run time.
pub fn apply_config(node: &Arc<Node>) {
    let (on, fsync) = {
        let c = node.config.read();
        (
            c.get_bool("appendonly"),
            aof::Fsync::parse(c.get("appendfsync")),
        )
    };
    let aof = &node.store.aof;
    aof.set_fsync(fsync);
    if node.persist.is_loading() || on == aof.is_on() {
        return;
    }
    if on {
        // As Redis: a rewrite creates the log from the current data, in the background;
        // writes from now on are collected and land in it.
        aof.buffer_on();
        // Counted now, as Redis counts the rewrite it starts for CONFIG SET.
        node.persist.count_rewrite();
        let node = node.clone();
        tokio::task::spawn_blocking(move || {
            // Wait for a running job (bounded): one snapshot at a time.
            let mut slot = false;
            for _ in 0..6000 {
                if node.persist.try_start(JOB_REWRITE, now_ms()) {
                    slot = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let aof = &node.store.aof;
            let failed = |why: String| {
                // As Redis: the log stays wanted (`appendonly yes`), and the cron tries again.
                tracing::warn!(
                    "cannot turn the append-only log on: {why}; trying again in 5 seconds"
                );
                aof.cancel_creation();
                node.persist
                    .aof_retry_at_ms
                    .store(now_ms() + RETRY_DELAY_MS, Ordering::Relaxed);
            };
            if !slot {
                failed("another background job is still running".into());
                return;
            }
            let path = aof_path(&node);
            let r = rewrite_now(&node);
            if !node.config.read().get_bool("appendonly") {
                // Turned off again meanwhile: the log is not started.
                aof.cancel_creation();
            } else if let Err(e) = r.and_then(|_| aof.start(&path, fsync)) {
                failed(e.to_string());
            }
            node.persist.finish();
        });
    } else {
        aof.stop();
    }
}

/// The -MISCONF error while writes must be refused, as Redis's `writeCommandsDeniedByDiskError`.
pub fn write_denied(node: &Node) -> Option<String> {
    let aof = &node.store.aof;
    if aof.is_on() && !aof.write_ok.load(Ordering::Relaxed) {
        let why = aof.last_error.lock().clone();
        return Some(format!("MISCONF Errors writing to the AOF file: {why}"));
    }
    let p = &node.persist;
    if !p.last_bgsave_ok.load(Ordering::Relaxed) {
        let c = node.config.read();
        if c.get_bool("stop-writes-on-bgsave-error") && !c.get("save").is_empty() {
            return Some(
                "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error."
                    .into(),
            );
        }
    }
    None
}

/// Once per cron tick: the `save` rules, a scheduled or automatic log rewrite.
pub fn cron(node: &Arc<Node>) {
    let p = &node.persist;
    if p.is_loading() {
        return;
    }
    let now = now_ms();
    if p.rewrite_scheduled.load(Ordering::Relaxed) && p.job.load(Ordering::Relaxed) == JOB_NONE {
        bgrewriteaof(node);
        return;
    }
    if p.job.load(Ordering::Relaxed) != JOB_NONE {
        return;
    }
    // The log turned on at run time whose creation failed: tried again.
    if !node.store.aof.is_on()
        && node.config.read().get_bool("appendonly")
        && now >= p.aof_retry_at_ms.load(Ordering::Relaxed)
    {
        apply_config(node);
        return;
    }
    if p.bgsave_scheduled.swap(false, Ordering::Relaxed) {
        bgsave(node);
        return;
    }
    let (rules, pct, min_size) = {
        let c = node.config.read();
        (
            crate::config::parse_save_points(c.get("save")).unwrap_or_default(),
            c.get_int("auto-aof-rewrite-percentage"),
            c.get_int("auto-aof-rewrite-min-size") as u64,
        )
    };
    let changes = node
        .store
        .dirty()
        .saturating_sub(p.dirty_at_save.load(Ordering::Relaxed));
    let since = now / 1000 - p.last_save_unix.load(Ordering::Relaxed);
    let may_retry = p.last_bgsave_ok.load(Ordering::Relaxed)
        || now - p.last_bgsave_try_ms.load(Ordering::Relaxed) > RETRY_DELAY_MS;
    if may_retry
        && rules
            .iter()
            .any(|&(secs, n)| changes >= n && since >= secs as i64 && changes > 0)
    {
        tracing::info!("{changes} changes in {since} seconds. Saving...");
        bgsave(node);
        return;
    }
    let aof = &node.store.aof;
    if aof.is_on() && pct > 0 {
        let size = aof.size.load(Ordering::Relaxed);
        let base = aof.base_size.load(Ordering::Relaxed).max(1);
        if size > min_size && (size - base.min(size)) * 100 / base >= pct as u64 {
            tracing::info!(
                "Starting automatic rewriting of AOF on {}% growth",
                (size - base.min(size)) * 100 / base
            );
            bgrewriteaof(node);
        }
    }
}

/// Whether stopping saves a snapshot: SHUTDOWN SAVE (`choice` 1), or `save` rules unless
/// SHUTDOWN NOSAVE (2).
fn snapshot_due_at_stop(node: &Node, choice: u8) -> bool {
    choice == 1 || (choice == 0 && !node.config.read().get("save").is_empty())
}

/// Waits (up to a minute) for a running background job rather than race it for the file.
fn wait_for_job(node: &Node) {
    for _ in 0..600 {
        if node.persist.job.load(Ordering::Relaxed) == JOB_NONE {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// SHUTDOWN and SIGTERM, before the node stops: the final snapshot when one is due, with
/// writes paused, so that one that cannot be written keeps the node running (Redis's
/// prepareForShutdown: "Error trying to save the DB, can't exit") instead of stopping it with
/// the writes since the last snapshot lost. On success writes stay paused while the node
/// stops (a paused write is never run: its client is disconnected), and the save at exit
/// ([`on_shutdown`]) is skipped unless a write came in between. Blocks for the save.
pub fn save_before_shutdown(node: &Node, choice: u8) -> Result<(), String> {
    if node.persist.is_loading() || !snapshot_due_at_stop(node, choice) {
        return Ok(());
    }
    node.pause.set_stopping(true);
    wait_for_job(node);
    tracing::info!("Saving the final snapshot before exiting.");
    let dirty = node.store.dirty();
    match save(node) {
        Ok(()) => {
            tracing::info!("DB saved on disk");
            *node.persist.shutdown_saved_dirty.lock() = Some(dirty);
            Ok(())
        }
        Err(e) => {
            tracing::warn!("Error trying to save the DB, can't exit: {e}");
            node.pause.set_stopping(false);
            Err(e.to_string())
        }
    }
}

/// At shutdown: flush and fsync the log, and save a snapshot when `save` rules are set (or
/// SHUTDOWN SAVE asked), as Redis does, unless [`save_before_shutdown`] saved this dataset.
pub fn on_shutdown(node: &Node) {
    if node.persist.is_loading() {
        return;
    }
    // The log ends with where this node stands in its replication stream, so a restart
    // continues it (see `aof::KIND_POSITION`).
    if let Some(c) = node.cluster.as_ref() {
        c.repl.freeze();
        if let Some((replid, offset)) = c.repl.position(node) {
            node.store.aof.append_position(&replid, offset);
        }
    }
    node.store.aof.stop();
    let choice = node.persist.shutdown_save.load(Ordering::Relaxed);
    let saved = *node.persist.shutdown_saved_dirty.lock();
    if snapshot_due_at_stop(node, choice) && saved != Some(node.store.dirty()) {
        wait_for_job(node);
        tracing::info!("Saving the final snapshot before exiting.");
        if let Err(e) = save(node) {
            tracing::warn!("Error trying to save the DB, can't exit: {e}");
        }
    }
}

/// A command to log, in the form replay needs: relative times made absolute (so a replay does
/// not extend TTLs), as Redis propagates them. `None`: log the command as it came.
pub fn rewrite_for_log(name: &str, args: &[Bytes], now_ms: i64) -> Option<Vec<Bytes>> {
    let secs_to_ms = |v: &[u8]| -> Option<String> {
        let s: i64 = std::str::from_utf8(v).ok()?.parse().ok()?;
        Some(s.checked_mul(1000)?.to_string())
    };
    let abs = |v: &[u8], mul: i64| -> Option<Bytes> {
        let n: i64 = std::str::from_utf8(v).ok()?.parse().ok()?;
        let at = n.checked_mul(mul)?.checked_add(now_ms)?;
        Some(Bytes::from(at.to_string()))
    };
    let eq = |a: &[u8], b: &str| a.eq_ignore_ascii_case(b.as_bytes());
    // An expiry already past deletes the key: logged as the DEL it was (as Redis), unless a
    // condition (NX, XX, GT, LT) may have kept it from applying.
    let at_or_del = |cmd: &'static [u8], key: &Bytes, at: Bytes, conditions: bool| {
        let ms: Option<i64> = std::str::from_utf8(&at).ok().and_then(|s| s.parse().ok());
        if !conditions && ms.is_some_and(|ms| ms <= now_ms) {
            vec![Bytes::from_static(b"DEL"), key.clone()]
        } else {
            vec![Bytes::from_static(cmd), key.clone(), at]
        }
    };
    match name {
        "setex" | "psetex" if args.len() == 4 => {
            let at = abs(&args[2], if name == "setex" { 1000 } else { 1 })?;
            Some(vec![
                Bytes::from_static(b"SET"),
                args[1].clone(),
                args[3].clone(),
                Bytes::from_static(b"PXAT"),
                at,
            ])
        }
        "set" => {
            let i = args
                .iter()
                .skip(3)
                .position(|a| eq(a, "EX") || eq(a, "PX") || eq(a, "EXAT") || eq(a, "PXAT"))?
                + 3;
            let v = args.get(i + 1)?;
            let at = if eq(&args[i], "EXAT") {
                Bytes::from(secs_to_ms(v)?)
            } else if eq(&args[i], "PXAT") {
                v.clone()
            } else {
                abs(v, if eq(&args[i], "EX") { 1000 } else { 1 })?
            };
            let mut out = args.to_vec();
            out[i] = Bytes::from_static(b"PXAT");
            out[i + 1] = at;
            Some(out)
        }
        "expireat" | "pexpireat" if args.len() >= 3 => {
            let at = if name == "expireat" {
                Bytes::from(secs_to_ms(&args[2])?)
            } else {
                args[2].clone()
            };
            let mut out = at_or_del(b"PEXPIREAT", &args[1], at, args.len() > 3);
            out.extend_from_slice(&args[3..]);
            Some(out)
        }
        // GETEX with no option changes nothing.
        "getex" if args.len() == 2 => Some(Vec::new()),
        "expire" | "pexpire" if args.len() >= 3 => {
            let at = abs(&args[2], if name == "expire" { 1000 } else { 1 })?;
            let mut out = at_or_del(b"PEXPIREAT", &args[1], at, args.len() > 3);
            out.extend_from_slice(&args[3..]);
            Some(out)
        }
        "getex" if args.len() >= 3 => {
            if eq(&args[2], "PERSIST") {
                return Some(vec![Bytes::from_static(b"PERSIST"), args[1].clone()]);
            }
            let opt = &args[2];
            let v = args.get(3)?;
            let at = if eq(opt, "EX") {
                abs(v, 1000)?
            } else if eq(opt, "PX") {
                abs(v, 1)?
            } else if eq(opt, "EXAT") {
                Bytes::from(secs_to_ms(v)?)
            } else {
                v.clone()
            };
            Some(at_or_del(b"PEXPIREAT", &args[1], at, false))
        }
        "restore" | "restore-asking"
            if args.len() >= 4 && !args[4..].iter().any(|a| eq(a, "ABSTTL")) =>
        {
            if &args[2][..] == b"0" {
                return None;
            }
            let mut out = args.to_vec();
            out[2] = abs(&args[2], 1)?;
            out.push(Bytes::from_static(b"ABSTTL"));
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Racing writers of one file: the newest content stays in place, whatever order the
    /// writes end in (an older one ending later is dropped, its temp file removed).
    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.rdb");
        let in_place = parking_lot::Mutex::new(0);
        let write = |text: &'static str, generation| {
            write_atomically_in_order(
                &path,
                |f| f.write_all(text.as_bytes()),
                Some((&in_place, generation)),
            )
            .unwrap()
        };
        assert!(write("one", 1));
        assert!(write("three", 3));
        assert!(!write("two", 2), "older than the one in place");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    fn args(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn logged(a: &[&str]) -> Option<Vec<String>> {
        let name = a[0].to_ascii_lowercase();
        rewrite_for_log(&name, &args(a), 1_000_000).map(|v| {
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        })
    }

    #[test]
    fn imported_keys_are_logged_as_entries_that_load_back() {
        use crate::store::{Store, Value};
        let src = Store::new(16, Default::default());
        src.aof.buffer_on();
        let seq = log_imported(
            &src,
            0,
            b"k",
            &Value::from_bytes(b"v"),
            Some(4_000_000_000_000),
        );
        assert!(seq > 0);
        let dst = Store::new(16, Default::default());
        let lim = crate::store::rdb::Limits::redis_defaults();
        // The record as the log holds it: framed, kind ENTRIES.
        let mut buf = Vec::new();
        src.aof.append_with(|out| buf = out.clone());
        let mut r = format::Reader::new(&buf[..], 0);
        let Ok(Next::Record(p)) = r.next_record() else {
            panic!("no record");
        };
        assert_eq!(p[0], aof::KIND_ENTRIES);
        assert_eq!(
            snapshot::load_entries(&p[1..], &dst, &lim, None),
            Ok((1, 0))
        );
        let mut ks = dst.lock_keys(&[b"k"], 0);
        assert!(
            matches!(ks.peek(0, b"k"), Ok(Some(e)) if matches!(&e.value, Value::Str(s) if &s[..] == b"v"))
        );
        assert_eq!(ks.expire_at(0, b"k"), Ok(Some(4_000_000_000_000)));
    }

    #[test]
    fn slot_move_pins_survive_a_snapshot_and_moved_records_settle_them() {
        use crate::store::{Store, Value};
        let pin = |st: &Store, k: &[u8]| {
            let shard = crate::store::shard_of_slot(crate::cluster::slots::key_hash_slot(k));
            st.lock_shard(shard, 0)
                .pinned_mut(shard)
                .unwrap()
                .insert(k.to_vec());
        };
        let pinned = |st: &Store, k: &[u8]| st.lock_keys(&[k], 0).is_pinned(k);
        let held = |st: &Store, k: &[u8]| matches!(st.lock_keys(&[k], 0).peek(0, k), Ok(Some(_)));
        let src = Store::new(16, Default::default());
        for k in [&b"a"[..], b"b"] {
            let mut ks = src.lock_keys(&[k], 0);
            ks.set(0, k, Value::from_bytes(b"v"), None, false).unwrap();
        }
        // a and b were sent; c too, and a client deleted it here since.
        for k in [&b"a"[..], b"b", b"c"] {
            pin(&src, k);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.rrs");
        let image = Image::capture(&src, || {});
        assert_eq!(image.pins.len(), 3);
        snapshot::write_file(&path, &image, 1, None).unwrap();
        let dst = Store::new(16, Default::default());
        let loaded = snapshot::load_file(
            &path,
            &dst,
            &crate::store::rdb::Limits::redis_defaults(),
            None,
            &|_| {},
        )
        .unwrap();
        assert_eq!(loaded.keys, 2);
        for k in [&b"a"[..], b"b", b"c"] {
            assert!(pinned(&dst, k), "{k:?} pinned after loading");
        }
        // b's batch settled (the target holds it as we did), and so did c's deletion.
        let mut payload = Vec::new();
        aof::encode_keys(&mut payload, &[&b"b"[..], b"c"]);
        apply_keys_record(&dst, aof::KIND_MOVED, &payload).unwrap();
        assert!(pinned(&dst, b"a") && held(&dst, b"a"));
        assert!(!pinned(&dst, b"b") && !held(&dst, b"b"));
        assert!(!pinned(&dst, b"c") && !held(&dst, b"c"));
        assert_eq!(
            aof::decode_keys(&mut Cursor::new(&payload[..1])),
            Err(format::Short)
        );
    }

    #[test]
    fn relative_times_are_logged_as_absolute() {
        let s = |v: &[&str]| Some(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            logged(&["SET", "k", "v", "EX", "10", "NX"]),
            s(&["SET", "k", "v", "PXAT", "1010000", "NX"])
        );
        assert_eq!(
            logged(&["set", "k", "v", "px", "5"]),
            s(&["set", "k", "v", "PXAT", "1000005"])
        );
        assert_eq!(
            logged(&["SET", "k", "v", "pxat", "7"]),
            s(&["SET", "k", "v", "PXAT", "7"])
        );
        assert_eq!(logged(&["SET", "k", "v"]), None);
        assert_eq!(
            logged(&["SETEX", "k", "2", "v"]),
            s(&["SET", "k", "v", "PXAT", "1002000"])
        );
        assert_eq!(
            logged(&["PSETEX", "k", "2", "v"]),
            s(&["SET", "k", "v", "PXAT", "1000002"])
        );
        assert_eq!(
            logged(&["EXPIRE", "k", "3", "GT"]),
            s(&["PEXPIREAT", "k", "1003000", "GT"])
        );
        assert_eq!(
            logged(&["PEXPIRE", "k", "3"]),
            s(&["PEXPIREAT", "k", "1000003"])
        );
        assert_eq!(logged(&["GETEX", "k", "PERSIST"]), s(&["PERSIST", "k"]));
        // Times already past (the clock is at 1,000,000 ms) delete the key, as Redis logs it,
        // unless a condition may have kept it from applying.
        assert_eq!(logged(&["GETEX", "k", "EXAT", "9"]), s(&["DEL", "k"]));
        assert_eq!(logged(&["EXPIREAT", "k", "9"]), s(&["DEL", "k"]));
        assert_eq!(
            logged(&["PEXPIREAT", "k", "9", "NX"]),
            s(&["PEXPIREAT", "k", "9", "NX"])
        );
        assert_eq!(
            logged(&["EXPIREAT", "k", "5000"]),
            s(&["PEXPIREAT", "k", "5000000"])
        );
        assert_eq!(
            logged(&["GETEX", "k", "EX", "1"]),
            s(&["PEXPIREAT", "k", "1001000"])
        );
        assert_eq!(
            logged(&["RESTORE", "k", "50", "payload"]),
            s(&["RESTORE", "k", "1000050", "payload", "ABSTTL"])
        );
        assert_eq!(logged(&["RESTORE", "k", "0", "payload"]), None);
        assert_eq!(logged(&["RESTORE", "k", "99", "payload", "ABSTTL"]), None);
    }
}
