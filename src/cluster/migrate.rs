//! Slot migration for automatic distribution: the keys of a slot move to its next owner over the
//! bus, then the slot is handed over, with Redis Cluster's semantics while it moves.
//!
//! One thread per node (the migrator) moves one slot at a time:
//! 1. the slot is marked migrating to the target (clients asking for a key that is no longer
//!    here get `-ASK`, multi-key commands split across both sides get `-TRYAGAIN`);
//! 2. with the slot's shard locked, a batch of its keys is encoded (RDB object encoding) and its
//!    keys are *pinned* (`Shard::pinned`): this node keeps serving them, held here or not, so no
//!    client is sent to the target's copy before it is known to be current. The lock is let go
//!    for the Transfer round trip, so clients keep the shard (a write waiting for it would stall
//!    its whole connection). Once the target acknowledges, under the lock again, each key still
//!    here as it was sent is deleted here and unpinned (and the log acknowledges that before
//!    the lock is let go, so no client reaches the target's copy first); a key written or
//!    deleted meanwhile stays pinned and goes again in the next batch (as a record, or in its
//!    `deleted` list). A batch with a key that changed so [`UNHELD_TRIES`] times holds the lock
//!    for its round trip (as Redis's MIGRATE holds the whole server), so hot keys move too. The log and the
//!    replication stream carry the pins (a PINS record when a batch is cut, one MOVED record,
//!    delete and unpin, when it settles: see `crate::persist::aof`), so a node restarted from
//!    its log, or a replica that takes over, still knows which keys the target may hold stale
//!    (a key a client deleted here while its batch was on its way);
//! 3. when the slot is empty and nothing is pinned, the target is asked to claim it (it takes a
//!    new config epoch, so its claim wins everywhere), and we record the new owner under the
//!    lock. The lock is not held for that round trip: while the slot migrates no key can appear
//!    in it here (a command for a key not here goes to the target by `-ASK`; stray keys are
//!    refused for it).
//!
//! A batch whose answer is lost may or may not have been applied: its keys stay pinned and are
//! sent again (the target replaces them; deletions are named in `deleted`). Batches are
//! numbered, and the target refuses one older than a batch it applied from us: a late copy of
//! a batch we gave up waiting for must not bring back a value its resend has replaced. While
//! the target is unreachable the move is retried; when the cluster marks it FAIL (or it is
//! forgotten) the move is abandoned and the slots stay here (keys that already moved wait on
//! the failed node, as any key it owns does, and the move resumes when it is back).
//!
//! Stray keys, those of a slot another node owns found here (an interrupted move whose target
//! dropped the slot, or two clusters merged by a MEET), are pushed to the slot's owner the same
//! way, without any slot changing hands: the owner adds the keys it does not have (its own copy
//! wins), and they are deleted here once it acknowledged them (if they did not change
//! meanwhile: the shard is not held for the round trip). So every key ends on exactly one
//! node, the one that serves it.
//!
//! This runs on a plain thread with its own small runtime because the shard lock (a
//! `parking_lot` mutex) is held across an RPC (a held batch, for [`HELD_CALL`] at first, up to
//! [`HELD_CALL_MAX`] after calls that took longer), which an async task may not do.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::bus::{self, MessageType, pb};
use super::slots::key_hash_slot;
use super::state::slot_ranges;
use crate::node::Node;
use crate::persist::aof::{KIND_MOVED, KIND_PINS};
use crate::store::{SLOTS_PER_SHARD, Value, rdb, shard_of_slot};

/// Keys per batch, and the bytes after which a batch is closed early. After each batch the
/// migrator rests as long as the batch took. Measured on 2 cores (1,000,000 keys, half of them
/// moving to a new node under 20 writers of the redis crate's cluster client): without the
/// rest the move took 8.9 s with the writers at 36k SET/s, p99 7.3 ms; with it 15.1 s at 56k
/// SET/s, p99 3.8 ms (redis-cli --cluster rebalance between redis-servers: 65-80 s, p99 about
/// 4 ms). 128-key batches without a rest: 11.4 s, 46k SET/s, p99 4.6 ms.
const BATCH_KEYS: usize = 512;
const BATCH_BYTES: usize = 1 << 20;
/// How long the target may wait for its own shard lock before answering "busy".
pub const IMPORT_LOCK_WAIT: Duration = Duration::from_millis(200);

/// Progress counters, shown by `INFO cluster` and `/metrics`.
#[derive(Default)]
pub struct MigrationStats {
    pub slots_moved: AtomicU64,
    pub keys_moved: AtomicU64,
    pub bytes_moved: AtomicU64,
    pub keys_imported: AtomicU64,
    pub bytes_imported: AtomicU64,
    pub batches_failed: AtomicU64,
    pub moves_abandoned: AtomicU64,
}

/// The queue of slots waiting to move, shared by the driver (which fills it) and the migrator
/// thread (which drains it).
#[derive(Default)]
pub struct Migrator {
    /// (slot, target, stray): `stray` pushes keys of a slot the target owns already.
    queue: Mutex<VecDeque<(u16, String, bool)>>,
    queued: Mutex<HashSet<u16>>,
    wake: Condvar,
    /// Keys moved so far of each slot on its way out (`/api/v1/cluster`'s `moving`).
    moved_of_slot: Mutex<std::collections::HashMap<u16, u64>>,
    pub stats: MigrationStats,
    /// Sender side: the `seq` of our next Transfer batch (see the proto's `TransferBatch`).
    next_seq: AtomicU64,
    /// Receiver side: the `seq` of the last batch applied from each sender to each shard.
    applied: Mutex<std::collections::HashMap<(String, usize), u64>>,
}

impl Migrator {
    pub fn new() -> Migrator {
        // From the start-up time, so a restarted node's batches still follow its earlier ones
        // (a node sends far fewer than one batch per microsecond).
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        Migrator {
            next_seq: AtomicU64::new(start),
            ..Migrator::default()
        }
    }

    fn batch_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether a moving batch numbered `seq` from `sender` to `shard` is newer than every batch
    /// applied from it there; if so it is recorded as the last. Called with the shard locked, so
    /// two batches for one shard are checked and applied in one order.
    fn newer_batch(&self, sender: &str, shard: usize, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        let mut applied = self.applied.lock();
        let last = applied.entry((sender.to_string(), shard)).or_default();
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }

    /// Queues `slot` to move to node `to` (a slot already queued is left alone).
    pub fn enqueue(&self, slot: u16, to: &str) {
        self.push(slot, to, false);
    }

    /// Queues the keys held here of `slot`, which `to` owns, to be pushed to it.
    pub fn enqueue_stray(&self, slot: u16, to: &str) {
        self.push(slot, to, true);
    }

    fn push(&self, slot: u16, to: &str, stray: bool) {
        if self.queued.lock().insert(slot) {
            self.queue.lock().push_back((slot, to.to_string(), stray));
            self.wake.notify_one();
        }
    }

    /// Slots queued or moving.
    pub fn pending(&self) -> usize {
        self.queued.lock().len()
    }

    /// The next group of queued slots: those of one shard going to one node, moved together
    /// (one lock, shared batches, one claim).
    fn next(&self, wait: Duration) -> Option<(Vec<u16>, String, bool)> {
        let mut q = self.queue.lock();
        if q.is_empty() {
            self.wake.wait_for(&mut q, wait);
        }
        let (first, to, stray) = q.pop_front()?;
        let shard = shard_of_slot(first);
        let mut group = vec![first];
        q.retain(|(s, t, k)| {
            if *t == to && *k == stray && shard_of_slot(*s) == shard {
                group.push(*s);
                false
            } else {
                true
            }
        });
        group.sort_unstable();
        Some((group, to, stray))
    }

    fn done(&self, slots: &[u16]) {
        let mut q = self.queued.lock();
        let mut moved = self.moved_of_slot.lock();
        for s in slots {
            q.remove(s);
            moved.remove(s);
        }
    }

    /// Keys of `slot` moved so far while it moves away (0 when it is not moving).
    pub fn keys_moved_of(&self, slot: u16) -> u64 {
        self.moved_of_slot.lock().get(&slot).copied().unwrap_or(0)
    }

    fn note_moved(&self, keys: &[Vec<u8>]) {
        let mut moved = self.moved_of_slot.lock();
        for k in keys {
            *moved.entry(key_hash_slot(k)).or_default() += 1;
        }
    }
}

/// Why a move stopped.
#[derive(Debug)]
enum Stop {
    /// The slot is no longer ours to move (or the target left): nothing to undo.
    NotOurs,
    /// The target is failing or the node is shutting down: the move was rolled back.
    Abandoned(String),
}

/// Runs the migrator until the node shuts down.
pub fn spawn(node: Arc<Node>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("slot-migrator".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("slot migrator cannot start its runtime: {e}");
                    return;
                }
            };
            let Some(cluster) = node.cluster.clone() else {
                return;
            };
            let mut clients: std::collections::HashMap<String, Client> = Default::default();
            while !node.shutdown.is_cancelled() {
                // Nothing moves before the data files are loaded: a record replayed later
                // (a write, or a MOVED of an earlier move) would change a key already sent.
                if !node.ready.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let Some((slots, to, stray)) = cluster.migrator.next(Duration::from_millis(200))
                else {
                    continue;
                };
                let started = Instant::now();
                let range = format!("{}-{}", slots[0], slots[slots.len() - 1]);
                if stray {
                    match push_strays(&rt, &node, &mut clients, &slots, &to) {
                        Ok(0) => {}
                        Ok(keys) => tracing::info!(
                            slots = %range,
                            to = %to,
                            keys,
                            "stray keys handed to the owner of their slots"
                        ),
                        // The owner is moving those slots on: expected, and retried later.
                        Err(why) if why.ends_with("slot migrating") => tracing::debug!(
                            slots = %range,
                            to = %to,
                            "keys of slots another node serves stay here for now: {why}"
                        ),
                        Err(why) => tracing::warn!(
                            slots = %range,
                            to = %to,
                            "keys of slots another node serves stay here for now: {why}"
                        ),
                    }
                    cluster.migrator.done(&slots);
                    continue;
                }
                match move_slots(&rt, &node, &mut clients, &slots, &to) {
                    Ok((n, keys)) => tracing::info!(
                        slots = %range,
                        count = n,
                        to = %to,
                        keys,
                        ms = started.elapsed().as_millis() as u64,
                        "slots moved with their keys (automatic distribution)"
                    ),
                    Err(Stop::NotOurs) => {}
                    Err(Stop::Abandoned(why)) => {
                        cluster
                            .migrator
                            .stats
                            .moves_abandoned
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(slots = %range, to = %to, "slot move abandoned, the slots stay here: {why}");
                    }
                }
                cluster.migrator.done(&slots);
            }
        })
}

type Client = pb::cluster_bus_client::ClusterBusClient<tonic::transport::Channel>;

/// The bus client for `addr`, made once per address.
fn client_for(
    rt: &tokio::runtime::Runtime,
    clients: &mut std::collections::HashMap<String, Client>,
    cluster: &super::Cluster,
    addr: &str,
) -> Result<Client, String> {
    if let Some(c) = clients.get(addr) {
        return Ok(c.clone());
    }
    let timeout = Duration::from_millis(cluster.cfg.node_timeout_ms.clamp(1000, 15000) as u64);
    let _enter = rt.enter();
    let c = bus::client(addr, timeout).map_err(|e| format!("bad address {addr}: {e}"))?;
    clients.insert(addr.to_string(), c.clone());
    Ok(c)
}

/// Slots of one shard moved or pushed together: the shard, which of its slots are in the group,
/// and the group's ranges as the bus names them.
struct ShardGroup {
    shard: usize,
    member: [bool; SLOTS_PER_SHARD],
    ranges: Vec<pb::SlotRange>,
}

impl ShardGroup {
    fn new(slots: &[u16]) -> ShardGroup {
        let mut member = [false; SLOTS_PER_SHARD];
        for &s in slots {
            member[s as usize % SLOTS_PER_SHARD] = true;
        }
        ShardGroup {
            shard: shard_of_slot(slots[0]),
            member,
            ranges: slot_ranges(slots.iter().copied())
                .into_iter()
                .map(|(a, b)| pb::SlotRange {
                    start: a as u32,
                    end: b as u32,
                })
                .collect(),
        }
    }

    /// Up to a batch of the group's keys, from its shard locked in `ks`.
    fn keys(&self, ks: &mut crate::store::Keyspace<'_>) -> Vec<crate::store::Sds> {
        ks.keys_in_slots(
            self.shard,
            |slot| self.member[slot as usize % SLOTS_PER_SHARD],
            BATCH_KEYS,
        )
    }

    /// The next batch of the group's keys: going on from `cursor` through the shard, and once
    /// a pass ends with nothing found there, from its start (empty only when the group's slots
    /// hold no key). A shard with many keys of slots that stay is not walked from its start for
    /// every batch.
    fn next_keys(
        &self,
        ks: &mut crate::store::Keyspace<'_>,
        cursor: &mut u64,
    ) -> Vec<crate::store::Sds> {
        let mut keys = ks.keys_in_slots_from(
            self.shard,
            |slot| self.member[slot as usize % SLOTS_PER_SHARD],
            BATCH_KEYS,
            cursor,
        );
        if keys.is_empty() {
            keys = self.keys(ks);
        }
        // Expired keys kept while clients are paused go now: the slot must empty.
        keys.retain(|k| !matches!(ks.purge_expired(0, k), Ok(true)));
        keys
    }
}

/// Encodes up to a batch of `keys` (RDB object encoding); returns the records, the keys they
/// hold and their bytes.
fn encode_keys(
    ks: &mut crate::store::Keyspace<'_>,
    keys: &[crate::store::Sds],
) -> (Vec<pb::KeyRecord>, Vec<Vec<u8>>, usize) {
    let mut records = Vec::with_capacity(keys.len());
    let mut sent = Vec::with_capacity(keys.len());
    let mut bytes = 0usize;
    for k in keys {
        let Ok(Some(e)) = ks.peek(0, k) else { continue };
        let mut value = Vec::new();
        rdb::write_value(&mut value, &e.value);
        let at = ks.expire_at(0, k).ok().flatten().unwrap_or(0);
        bytes += k.len() + value.len();
        records.push(pb::KeyRecord {
            db: 0,
            key: k.to_vec(),
            value,
            expire_at_ms: at,
        });
        sent.push(k.to_vec());
        if bytes >= BATCH_BYTES {
            break;
        }
    }
    (records, sent, bytes)
}

/// Pushes the keys held here of `group`'s slots, which `to` owns, to `to` (see the module doc).
/// Gives up after a few failed attempts: the driver finds the keys again later.
fn push_strays(
    rt: &tokio::runtime::Runtime,
    node: &Arc<Node>,
    clients: &mut std::collections::HashMap<String, Client>,
    group: &[u16],
    to: &str,
) -> Result<u64, String> {
    let cluster = node.cluster.as_ref().expect("migrator runs in a cluster");
    let still_strays = |slots: &[u16]| -> Vec<u16> {
        let st = cluster.state.lock();
        slots
            .iter()
            .copied()
            .filter(|&s| {
                st.slots[s as usize].as_deref() == Some(to) && !st.importing.contains_key(&s)
            })
            .collect()
    };
    let slots = still_strays(group);
    if slots.is_empty() {
        return Ok(0);
    }
    let addr = {
        let st = cluster.state.lock();
        super::Cluster::addr_of(&st, to).ok_or("owner unknown")?
    };
    let client = client_for(rt, clients, cluster, &addr)?;
    let group = ShardGroup::new(&slots);
    let secret = cluster.cfg.secret.clone();
    let (mut pushed, mut failures) = (0u64, 0u32);
    let mut cursor = 0u64;
    while !node.shutdown.is_cancelled() {
        if still_strays(&slots).len() != slots.len() {
            return Err("the slots changed owner".into());
        }
        let mut ks = node
            .store
            .lock_shard(group.shard, crate::commands::now_ms());
        let keys = group.next_keys(&mut ks, &mut cursor);
        if keys.is_empty() {
            return Ok(pushed);
        }
        let (records, sent, bytes) = encode_keys(&mut ks, &keys);
        let copies: Vec<(Vec<u8>, i64)> = records
            .iter()
            .map(|r| (r.value.clone(), r.expire_at_ms))
            .collect();
        let batch = pb::TransferBatch {
            sender: Some(my_header(cluster)),
            slots: group.ranges.clone(),
            keys: records,
            deleted: Vec::new(),
            stray: true,
            seq: cluster.migrator.batch_seq(),
        };
        // The shard is let go for the round trip: its other slots' clients would wait for it.
        // Clients are not served these slots here (another node owns them), so the keys
        // hardly change meanwhile; one that did (a replayed write, expiry) stays for the next
        // pass.
        drop(ks);
        let mut c = client.clone();
        let traffic = &cluster.stats.traffic;
        traffic.sent(MessageType::Transfer, &batch);
        let reply =
            rt.block_on(async { c.transfer(bus::with_secret(batch, secret.as_deref())).await });
        if let Ok(r) = &reply {
            traffic.received(MessageType::Transfer, r.get_ref());
        }
        let mut ks = node
            .store
            .lock_shard(group.shard, crate::commands::now_ms());
        // The slots may have come here meanwhile (their owner moved them to us, with the same
        // keys): then nothing is deleted, the keys are ours again.
        if still_strays(&slots).len() != slots.len() {
            return Err("the slots changed owner".into());
        }
        let why = match reply {
            Ok(r) if r.get_ref().accepted => {
                // As a replay of the MOVED record does: deleted and unpinned.
                let sent: Vec<Vec<u8>> = sent
                    .into_iter()
                    .zip(&copies)
                    .filter(|(k, (value, at))| unchanged(&mut ks, k, value, *at))
                    .map(|(k, _)| k)
                    .collect();
                for k in &sent {
                    let _ = ks.settle_moved(k);
                }
                if !sent.is_empty() {
                    ks.store().aof.append_keys(KIND_MOVED, &sent);
                }
                pushed += sent.len() as u64;
                let s = &cluster.migrator.stats;
                s.keys_moved.fetch_add(sent.len() as u64, Ordering::Relaxed);
                s.bytes_moved.fetch_add(bytes as u64, Ordering::Relaxed);
                continue;
            }
            // Resending is safe either way: the owner adds only keys it does not have.
            Ok(r) => format!("refused: {}", r.get_ref().reason),
            Err(e) => format!("failed: {}", e.message()),
        };
        drop(ks);
        cluster
            .migrator
            .stats
            .batches_failed
            .fetch_add(1, Ordering::Relaxed);
        failures += 1;
        if failures >= 5 {
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(100 << failures));
    }
    Ok(pushed)
}

/// A key that changed here this many times while on its way goes next in a batch that holds
/// the shard for its round trip, so even a key written all the time moves.
const UNHELD_TRIES: u32 = 2;
/// How long a batch that holds the shard may first wait for its answer: every client of the
/// shard's slots waits as long. One that takes longer fails; the next held batch (once an
/// unheld one was answered) gets twice the time, up to [`HELD_CALL_MAX`], so a slow target
/// still gets a hot key in the end.
const HELD_CALL: Duration = Duration::from_secs(1);
const HELD_CALL_MAX: Duration = Duration::from_secs(16);

/// Moves a group of slots of one shard to `to`; returns how many slots moved and how many keys.
///
/// A move that stops early keeps its pinned keys: the target may still hold copies older than
/// ours (a key deleted here while its batch was on its way). They go first in the next move of
/// their slots (as records or deletions), and a stray push of them back here is dropped (see
/// `import_batch`). Pins are logged (PINS and MOVED records, see `crate::persist::aof`), so a
/// restart, and a replica that takes over, keep them.
fn move_slots(
    rt: &tokio::runtime::Runtime,
    node: &Arc<Node>,
    clients: &mut std::collections::HashMap<String, Client>,
    group: &[u16],
    to: &str,
) -> Result<(usize, u64), Stop> {
    let cluster = node.cluster.as_ref().expect("migrator runs in a cluster");
    // Keep the slots that are still ours, mark them migrating, and find the target's address.
    // Once an operator has taken over (a manual slot command), queued automatic moves do not
    // start, and a slot an operator set migrating is left to the operator. (A move already
    // under way finishes: stopping it would strand the keys already sent.)
    let (slots, addr) = {
        let mut st = cluster.state.lock();
        if st.manual {
            return Err(Stop::NotOurs);
        }
        let me = st.myself.clone();
        let slots: Vec<u16> = group
            .iter()
            .copied()
            .filter(|&s| {
                st.slots[s as usize].as_deref() == Some(me.as_str())
                    && st.migrating.get(&s).is_none_or(|t| t == to)
            })
            .collect();
        let Some(addr) = super::Cluster::addr_of(&st, to) else {
            return Err(Stop::NotOurs);
        };
        if slots.is_empty() {
            return Err(Stop::NotOurs);
        }
        for &s in &slots {
            st.migrating.insert(s, to.to_string());
        }
        st.dirty = true;
        cluster.publish(&mut st);
        (slots, addr)
    };
    let client =
        client_for(rt, clients, cluster, &addr).map_err(|why| abandon(node, &slots, to, why))?;
    let group = ShardGroup::new(&slots);
    let secret = cluster.cfg.secret.clone();
    let mut moved = 0u64;
    let mut last_logged = 0u64;
    let mut backoff = Duration::from_millis(50);
    let mut held_call = HELD_CALL;
    // A held batch timed out: none is held again until an unheld one is answered (the target
    // answers at all), so a target that does not answer stalls the shard once, not again and
    // again.
    let mut held_failed = false;
    // Pinned keys that changed here while on their way, and how many times.
    let mut tries: std::collections::HashMap<Vec<u8>, u32> = Default::default();
    let mut cursor = 0u64;
    loop {
        if node.shutdown.is_cancelled() {
            return Err(abandon(node, &slots, to, "shutting down".into()));
        }
        let batch_started = Instant::now();
        let mut ks = node
            .store
            .lock_shard(group.shard, crate::commands::now_ms());
        // Checked with the shard held, before every batch and the Claim: a node that became a
        // replica (a failover), or lost the slots, or whose move was rolled back, must not go
        // on deleting keys and handing slots away that its new master or their new owner
        // serves. Its pins stay (see `abandon`).
        if let Some(why) = still_moving(cluster, &slots, to) {
            drop(ks);
            return Err(abandon(node, &slots, to, why));
        }
        let mut keys = group.next_keys(&mut ks, &mut cursor);
        // Pinned keys go in every batch until they settle: as records if held here, else as
        // deletions.
        let pinned: Vec<Vec<u8>> = ks
            .pinned_mut(group.shard)
            .map(|p| {
                p.iter()
                    .filter(|k| group.member[key_hash_slot(k) as usize % SLOTS_PER_SHARD])
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut deleted = Vec::new();
        if !pinned.is_empty() {
            let listed: HashSet<&[u8]> = keys.iter().map(|k| &k[..]).collect();
            let mut extra = Vec::new();
            for k in pinned {
                if listed.contains(&k[..]) {
                    continue;
                }
                if matches!(ks.peek(0, &k), Ok(Some(_))) {
                    extra.push(crate::store::Sds::from_vec(k));
                } else {
                    deleted.push(k);
                }
            }
            keys.extend(extra);
        }
        let outcome: Result<(), String> = if keys.is_empty() && deleted.is_empty() {
            // Empty: hand the slots over, once the log holds every deletion (a restart must not
            // bring moved keys back here). The shard is held neither while the log catches up
            // nor for the round trip: while the slots migrate, no key can appear in them here
            // (a command for a key that is not here goes to the target by -ASK, and stray keys
            // are refused for them), so they stay empty until the answer.
            drop(ks);
            rt.block_on(node.store.aof.wait_acked(last_logged));
            cluster.state.lock().claiming.extend(slots.iter().copied());
            let msg = pb::ClaimSlots {
                sender: Some(my_header(cluster)),
                slots: group.ranges.clone(),
            };
            let mut c = client.clone();
            let traffic = &cluster.stats.traffic;
            traffic.sent(MessageType::Claim, &msg);
            let reply =
                rt.block_on(async { c.claim(bus::with_secret(msg, secret.as_deref())).await });
            if let Ok(r) = &reply {
                traffic.received(MessageType::Claim, r.get_ref());
            }
            // The new owner is published while the shard is held, so a command that routes
            // under the shard's lock never sees a view older than the keys it guards.
            let mut ks = node
                .store
                .lock_shard(group.shard, crate::commands::now_ms());
            let mut st = cluster.state.lock();
            // A failed call may have been applied there: until a later Claim answers, our
            // messages keep not claiming the slots, or one of them (at an epoch we took
            // meanwhile) could win them back from the target, which would then send clients
            // back here while we send them there (a redirect loop). Clients meanwhile get ASK
            // from here, as for any key already moved.
            if reply.is_ok() {
                for s in &slots {
                    st.claiming.remove(s);
                }
            }
            match reply {
                Ok(r) if r.get_ref().accepted => {
                    let epoch = r.get_ref().config_epoch;
                    for &s in &slots {
                        st.hand_over(s, to);
                        st.migrating.remove(&s);
                    }
                    st.note_claim_accepted(to, epoch);
                    st.dirty = true;
                    cluster.publish(&mut st);
                    drop(st);
                    let left = group.keys(&mut ks).len();
                    drop(ks);
                    if left > 0 {
                        // Not expected (see above); the stray-key pass hands them over.
                        tracing::warn!(
                            to = %to,
                            keys = left,
                            "keys appeared in slots while they were handed over; they follow as stray keys"
                        );
                    }
                    cluster.save_if_dirty();
                    cluster
                        .migrator
                        .stats
                        .slots_moved
                        .fetch_add(slots.len() as u64, Ordering::Relaxed);
                    return Ok((slots.len(), moved));
                }
                Ok(r) => Err(format!("claim refused: {}", r.get_ref().reason)),
                Err(e) => Err(format!("claim failed: {}", e.message())),
            }
        } else {
            let (records, sent, bytes) = encode_keys(&mut ks, &keys);
            // What the target gets of each key, to tell after its answer whether the key changed
            // here meanwhile.
            let copies: Vec<(Vec<u8>, i64)> = records
                .iter()
                .map(|r| (r.value.clone(), r.expire_at_ms))
                .collect();
            if let Ok(p) = ks.pinned_mut(group.shard) {
                p.extend(sent.iter().cloned());
            }
            // Logged (and fed to replicas) with the shard held, before any client can change
            // one of these keys: a replay that finds one deleted after this knows the
            // target's copy is stale.
            if !sent.is_empty() {
                node.store.aof.append_keys(KIND_PINS, &sent);
            }
            let batch = pb::TransferBatch {
                sender: Some(my_header(cluster)),
                slots: group.ranges.clone(),
                keys: records,
                deleted: deleted.clone(),
                stray: false,
                seq: cluster.migrator.batch_seq(),
            };
            // Clients keep the shard during the round trip (a write waiting for it would stall
            // its whole connection), unless one of the keys kept changing on its way.
            let hold = !held_failed
                && !tries.is_empty()
                && sent
                    .iter()
                    .chain(&deleted)
                    .any(|k| tries.get(k).is_some_and(|&n| n >= UNHELD_TRIES));
            let held = if hold {
                Some(ks)
            } else {
                drop(ks);
                None
            };
            let mut c = client.clone();
            let traffic = &cluster.stats.traffic;
            traffic.sent(MessageType::Transfer, &batch);
            let reply = rt.block_on(async {
                let call = c.transfer(bus::with_secret(batch, secret.as_deref()));
                if !hold {
                    return call.await;
                }
                tokio::time::timeout(held_call, call)
                    .await
                    .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("held too long")))
            });
            if let Ok(r) = &reply {
                traffic.received(MessageType::Transfer, r.get_ref());
            }
            let mut ks = held.unwrap_or_else(|| {
                node.store
                    .lock_shard(group.shard, crate::commands::now_ms())
            });
            match reply {
                Ok(r) if r.get_ref().accepted => {
                    // A key the target now holds as we do is gone from here for good (the
                    // append-only log says so in one MOVED record); a key that changed here
                    // meanwhile stays pinned and goes again in the next batch.
                    let mut gone = Vec::with_capacity(sent.len());
                    let mut settled = Vec::new();
                    for (k, (value, at)) in sent.into_iter().zip(&copies) {
                        if hold || unchanged(&mut ks, &k, value, *at) {
                            let _ = ks.settle_moved(&k);
                            tries.remove(&k);
                            gone.push(k);
                        } else {
                            *tries.entry(k).or_default() += 1;
                        }
                    }
                    for k in deleted {
                        if hold || !matches!(ks.peek(0, &k), Ok(Some(_))) {
                            if let Ok(p) = ks.pinned_mut(group.shard) {
                                p.remove(&k);
                            }
                            tries.remove(&k);
                            settled.push(k);
                        } else {
                            *tries.entry(k).or_default() += 1;
                        }
                    }
                    if !gone.is_empty() || !settled.is_empty() {
                        let keys: Vec<&[u8]> =
                            gone.iter().chain(&settled).map(|k| &k[..]).collect();
                        last_logged = ks.store().aof.append_keys(KIND_MOVED, &keys);
                        // Once the shard is let go, a client asking for one of these keys is
                        // sent to the target and may write it there: the record must be in the
                        // log first, or a restart would find the key here again, pinned, and
                        // its next batch would overwrite that write with the old value. (Redis
                        // writes the log before it serves the next client the same way.)
                        rt.block_on(node.store.aof.wait_acked(last_logged));
                    }
                    drop(ks);
                    // Rest as long as the batch took: the move uses at most half a core, and
                    // clients keep the rest (see BATCH_KEYS).
                    std::thread::sleep(batch_started.elapsed());
                    cluster.migrator.note_moved(&gone);
                    moved += gone.len() as u64;
                    let s = &cluster.migrator.stats;
                    s.keys_moved.fetch_add(gone.len() as u64, Ordering::Relaxed);
                    s.bytes_moved.fetch_add(bytes as u64, Ordering::Relaxed);
                    backoff = Duration::from_millis(50);
                    if hold {
                        held_call = HELD_CALL;
                    }
                    held_failed = false;
                    continue;
                }
                // The batch may have been applied: its keys stay pinned and go again, held
                // again with more time if the target did not answer in time.
                failed => {
                    if hold {
                        held_call = (held_call * 2).min(HELD_CALL_MAX);
                        held_failed = true;
                    }
                    match failed {
                        Ok(r) => Err(format!("batch refused: {}", r.get_ref().reason)),
                        Err(e) => Err(format!("batch failed: {}", e.message())),
                    }
                }
            }
        };
        if let Err(why) = outcome {
            cluster
                .migrator
                .stats
                .batches_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(to = %to, "slot move: {why}; retrying");
            // Give up only when the target is failing or gone, or the slots are no longer ours.
            let verdict = {
                let st = cluster.state.lock();
                let me = st.myself.clone();
                if slots
                    .iter()
                    .any(|&s| st.slots[s as usize].as_deref() != Some(me.as_str()))
                {
                    Some(Stop::Abandoned(
                        "slot ownership changed during the move".into(),
                    ))
                } else {
                    match st.nodes.get(to) {
                        None => Some(Stop::Abandoned("target left the cluster".into())),
                        // PFAIL is only a suspicion (a busy peer can miss a ping): keep trying
                        // until the cluster agrees it failed.
                        Some(n) if n.failed() => {
                            Some(Stop::Abandoned(format!("target failed ({why})")))
                        }
                        Some(n) if !n.is_master() => {
                            Some(Stop::Abandoned("the target became a replica".into()))
                        }
                        _ => None,
                    }
                }
            };
            if let Some(Stop::Abandoned(why)) = verdict {
                return Err(abandon(node, &slots, to, why));
            }
            // Jittered, so two nodes that keep meeting on the same shard fall out of step.
            let jitter = rand::random_range(0..=backoff.as_millis() as u64);
            std::thread::sleep(backoff + Duration::from_millis(jitter));
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// Whether `key` is here as it was sent: the same encoded value and expiry.
fn unchanged(ks: &mut crate::store::Keyspace<'_>, key: &[u8], value: &[u8], at: i64) -> bool {
    let Ok(Some(e)) = ks.peek(0, key) else {
        return false;
    };
    let mut now = Vec::with_capacity(value.len());
    rdb::write_value(&mut now, &e.value);
    now == value && ks.expire_at(0, key).ok().flatten().unwrap_or(0) == at
}

fn my_header(cluster: &super::Cluster) -> pb::NodeHeader {
    let st = cluster.state.lock();
    bus::to_pb_header(&st.header(0), cluster.http_port)
}

/// Why the move of `slots` to `to` must stop, if it must: this node is no longer a master, a
/// slot is no longer its own, or the slot no longer migrates to `to`.
fn still_moving(cluster: &super::Cluster, slots: &[u16], to: &str) -> Option<String> {
    let st = cluster.state.lock();
    let me = st.myself.clone();
    if !st.me().is_master() {
        return Some("this node became a replica".into());
    }
    if st.nodes.get(to).is_some_and(|n| !n.is_master()) {
        return Some("the target became a replica".into());
    }
    if slots
        .iter()
        .any(|&s| st.slots[s as usize].as_deref() != Some(me.as_str()))
    {
        return Some("slot ownership changed during the move".into());
    }
    if slots
        .iter()
        .any(|s| st.migrating.get(s).map(String::as_str) != Some(to))
    {
        return Some("the move was rolled back".into());
    }
    None
}

/// Rolls a move back: the slots stay here (unless another node won them meanwhile) and are no
/// longer migrating.
/// A slot an operator set migrating elsewhere meanwhile (CLUSTER SETSLOT) keeps that state.
fn abandon(node: &Node, slots: &[u16], to: &str, why: String) -> Stop {
    if let Some(cluster) = &node.cluster {
        let mut st = cluster.state.lock();
        for s in slots {
            if st.migrating.get(s).is_some_and(|t| t == to) {
                st.migrating.remove(s);
            }
            st.claiming.remove(s);
        }
        st.dirty = true;
        cluster.publish(&mut st);
    }
    Stop::Abandoned(why)
}

/// The receiving side of Transfer: mark the slot importing from the sender and store the keys.
/// Returns the reply and the append-only log position to wait for before sending it.
pub fn import(
    node: &Node,
    sender: &super::state::Header,
    batch: pb::TransferBatch,
) -> (pb::TransferReply, u64) {
    let mut seq = 0;
    let reply = import_batch(node, sender, batch, &mut seq);
    (reply, seq)
}

fn import_batch(
    node: &Node,
    sender: &super::state::Header,
    batch: pb::TransferBatch,
    seq: &mut u64,
) -> pb::TransferReply {
    let refuse = |reason: &str| pb::TransferReply {
        accepted: false,
        reason: reason.to_string(),
    };
    let Some(cluster) = &node.cluster else {
        return refuse("cluster disabled");
    };
    // A node still loading its files would replay records over what it takes in (the MOVED
    // record of an earlier move of these keys deletes them again): the sender retries.
    if !node.ready.load(Ordering::Acquire) {
        return refuse("loading");
    }
    let mut slots = Vec::new();
    for r in &batch.slots {
        if r.start > r.end || r.end >= super::slots::SLOTS as u32 {
            return refuse("bad slot range");
        }
        slots.extend(r.start as u16..=r.end as u16);
    }
    let Some(&first) = slots.first() else {
        return refuse("no slots");
    };
    let shard = shard_of_slot(first);
    if slots.iter().any(|&s| shard_of_slot(s) != shard) {
        return refuse("slots of more than one shard");
    }
    let mut reclaimed = Vec::new();
    {
        let mut st = cluster.state.lock();
        if !st.nodes.contains_key(&sender.id) {
            return refuse("unknown sender");
        }
        // Keys go to masters only: a node that became a replica (or is leaving its shard to
        // start one) would drop them at its next sync, after their sender deleted its copy.
        if !st.me().is_master() || cluster.repl.is_leaving() {
            return refuse("not a master");
        }
        let me = st.myself.clone();
        let mine = |s: u16| st.slots[s as usize].as_deref() == Some(me.as_str());
        if batch.stray {
            // Stray keys come only for slots served here, and not while those slots move away
            // (the move hands them over empty: see `move_slots`).
            if !slots.iter().all(|&s| mine(s)) {
                return refuse("not the owner of the slot");
            }
            if slots.iter().any(|s| st.migrating.contains_key(s)) {
                return refuse("slot migrating");
            }
        } else if slots.iter().any(|&s| mine(s)) {
            return refuse("slot already served here");
        } else if slots
            .iter()
            .any(|&s| st.slots[s as usize].as_deref() != Some(sender.id.as_str()))
        {
            // Only a slot's owner moves its keys (as this node sees it: a sender our view has
            // not caught up with tries again).
            return refuse("the sender does not serve the slot");
        }
        let mut changed = false;
        let now = crate::commands::now_ms();
        for &s in slots.iter().filter(|_| !batch.stray) {
            st.import_seen_ms.insert(s, now);
            if st.importing.get(&s) != Some(&sender.id) {
                st.importing.insert(s, sender.id.clone());
                changed = true;
            }
            if st.released.remove(&s) {
                reclaimed.push(s);
            }
        }
        if changed || !reclaimed.is_empty() {
            st.dirty = true;
            cluster.publish(&mut st);
        }
    }
    // A slot this node once handed over comes back: its keys here are current again, and
    // nodes.conf must say so before any is taken in (a restart drops the keys of slots
    // handed over: see `ClusterState::released`).
    if !reclaimed.is_empty()
        && let Err(e) = cluster.save(false)
    {
        // Still handed over as far as the file knows: the sender's retry tries again.
        let mut st = cluster.state.lock();
        st.released.extend(reclaimed);
        st.dirty = true;
        drop(st);
        tracing::error!("cannot write {}: {e}", cluster.cfg.config_file.display());
        return refuse("cannot write nodes.conf");
    }
    // Decode everything before taking the shard, so the lock is held only to insert.
    let lim = crate::commands::keys::rdb_limits(node);
    let mut entries = Vec::with_capacity(batch.keys.len());
    let mut bytes = 0u64;
    for k in &batch.keys {
        if k.db != 0 || !slots.contains(&key_hash_slot(&k.key)) {
            return refuse("key outside the slot");
        }
        let mut r = rdb::Reader::new(&k.value);
        let value: Value = match r.value(&lim) {
            Ok(v) if r.is_empty() => v,
            _ => return refuse("bad value encoding"),
        };
        bytes += (k.key.len() + k.value.len()) as u64;
        let at = (k.expire_at_ms > 0).then_some(k.expire_at_ms);
        entries.push((k.key.clone(), value, at));
    }
    let now = crate::commands::now_ms();
    let Some(mut ks) = node.store.try_lock_shard(shard, now, IMPORT_LOCK_WAIT) else {
        return refuse("busy");
    };
    // Checked again under the shard's lock: a move of ours may have started meanwhile (it marks
    // the slots migrating before it takes the shard).
    if batch.stray {
        let routing = node.routing();
        if slots
            .iter()
            .any(|&s| !routing.serves(s) || routing.is_open(s))
        {
            return refuse("slot migrating");
        }
    } else if !cluster.migrator.newer_batch(&sender.id, shard, batch.seq) {
        return refuse("stale batch");
    }
    for k in &batch.deleted {
        if slots.contains(&key_hash_slot(k)) && matches!(ks.remove(0, k), Ok(Some(_))) {
            *seq = ks.store().aof.append_del(0, k);
            ks.store().key_changed(0, k, false, None);
        }
    }
    let lru = ks.store().lru_clock();
    let mut n = entries.len() as u64;
    let mut kept = 0u64;
    for (key, value, at) in entries {
        // Our own copy wins over a stray one, and so does our deletion of a key a move of
        // ours had sent there (still pinned here: see `move_slots`).
        if batch.stray && (matches!(ks.peek(0, &key), Ok(Some(_))) || ks.is_pinned(&key)) {
            kept += 1;
            continue;
        }
        // Logged as an entry, so a restart keeps what this node acknowledged importing.
        *seq = crate::persist::log_imported(ks.store(), 0, &key, &value, at).max(*seq);
        ks.store().key_changed(0, &key, false, None);
        let e = crate::store::Entry::new(crate::store::Sds::from_vec(key), value, lru);
        let _ = ks.put_entry(0, e, at);
    }
    drop(ks);
    if kept > 0 {
        n -= kept;
        tracing::warn!(
            from = %sender.id,
            keys = kept,
            "stray keys dropped: this node, which serves their slot, has keys of the same name (or deleted them)"
        );
    }
    let s = &cluster.migrator.stats;
    s.keys_imported.fetch_add(n, Ordering::Relaxed);
    s.bytes_imported.fetch_add(bytes, Ordering::Relaxed);
    pb::TransferReply {
        accepted: true,
        reason: String::new(),
    }
}
