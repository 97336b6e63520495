//! Streams (Redis's `t_stream.c`): entries ordered by ID, kept in *macro nodes* the way Redis
//! keeps them in listpacks under a radix tree, and consumer groups with their pending entries.
//!
//! The node layout is modelled, not just the entries, because it shows: `XADD`/`XTRIM` with `~`
//! remove whole nodes only, `XINFO STREAM` reports the radix tree's size, and a node's bytes
//! decide when the next one starts (`stream-node-max-bytes`). So each node keeps its master
//! entry's fields, its items with their deleted flags, and the exact size the listpack would
//! have in Redis (element by element, as `lpAppend` would encode them). The values are our own
//! structures; [`Node::listpack`] writes the listpack itself for DUMP and snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::sds::Sds;
use super::value::parse_i64_strict;

/// A stream entry ID: milliseconds and a sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The next ID (`streamIncrID`); None past the last possible one.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                return None;
            }
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (`streamDecrID`); None before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                return None;
            }
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    /// `<ms>-<seq>`.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41);
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(self.ms).as_bytes());
        out.push(b'-');
        out.extend_from_slice(b.format(self.seq).as_bytes());
        out
    }

    /// The 16 big-endian bytes Redis's radix trees are keyed by.
    pub fn encode(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.ms.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    pub fn decode(k: &[u8]) -> Option<StreamId> {
        if k.len() != 16 {
            return None;
        }
        Some(StreamId::new(
            u64::from_be_bytes(k[..8].try_into().ok()?),
            u64::from_be_bytes(k[8..].try_into().ok()?),
        ))
    }
}

/// `stream-node-max-bytes` and `stream-node-max-entries`, kept in atomics for `CONFIG SET`.
pub struct StreamLimits {
    pub max_bytes: AtomicUsize,
    pub max_entries: AtomicUsize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_bytes: AtomicUsize::new(4096),
            max_entries: AtomicUsize::new(100),
        }
    }
}

/// A snapshot of [`StreamLimits`] for one command.
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    pub max_bytes: usize,
    pub max_entries: usize,
}

impl StreamLimits {
    pub fn get(&self) -> NodeLimits {
        NodeLimits {
            max_bytes: self.max_bytes.load(Ordering::Relaxed),
            max_entries: self.max_entries.load(Ordering::Relaxed),
        }
    }
}

/// Largest listpack Redis lets a stream node grow to (`STREAM_LISTPACK_MAX_SIZE`).
pub const LISTPACK_MAX: usize = 1 << 30;
/// A listpack's header (total bytes, element count) and end byte.
const LP_OVERHEAD: usize = 7;

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

/// Bytes a listpack element takes, back-length included (`lpEncodeBacklen`).
fn backlen(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn int_elt(v: i64) -> usize {
    let enc = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if (-32768..=32767).contains(&v) {
        3
    } else if (-8388608..=8388607).contains(&v) {
        4
    } else if (-2147483648..=2147483647).contains(&v) {
        5
    } else {
        9
    };
    enc + backlen(enc)
}

fn str_elt(s: &[u8]) -> usize {
    if s.len() <= 20
        && let Some(v) = parse_i64_strict(s)
    {
        return int_elt(v);
    }
    let enc = if s.len() < 64 {
        1 + s.len()
    } else if s.len() < 4096 {
        2 + s.len()
    } else {
        5 + s.len()
    };
    enc + backlen(enc)
}

/// One entry of a node. `data` holds field, value, field, value, ...
#[derive(Clone)]
pub struct Item {
    pub id: StreamId,
    pub deleted: bool,
    same_fields: bool,
    pub data: Box<[Sds]>,
}

impl Item {
    pub fn pairs(&self) -> &[Sds] {
        &self.data
    }
}

/// A macro node: the listpack of Redis, as items. Keyed in [`Stream`] by its master ID (the
/// first item's ID when it was made).
#[derive(Clone)]
pub struct Node {
    master_fields: Box<[Sds]>,
    items: Vec<Item>,
    live: u64,
    deleted: u64,
    /// Listpack bytes of everything but the header, the end byte and the two counters.
    body: usize,
}

impl Node {
    /// An empty node whose master entry has the fields of `first` (field, value, ...).
    fn new(first: &[Sds]) -> Node {
        let master_fields: Box<[Sds]> = first.iter().step_by(2).cloned().collect();
        let body = int_elt(master_fields.len() as i64)
            + int_elt(0)
            + master_fields.iter().map(|f| str_elt(f)).sum::<usize>();
        Node {
            master_fields,
            items: Vec::new(),
            live: 0,
            deleted: 0,
            body,
        }
    }

    /// Appends an item (its ID above the node's last), counting its listpack bytes as Redis
    /// encodes them: without its field names when they are the master entry's.
    fn push(&mut self, master: StreamId, mut it: Item) {
        it.same_fields = self.master_fields.len() * 2 == it.data.len()
            && self
                .master_fields
                .iter()
                .zip(it.data.iter().step_by(2))
                .all(|(a, b)| a[..] == b[..]);
        self.body += item_body(it.id, master, &it.data, it.same_fields);
        if it.deleted {
            self.deleted += 1;
        } else {
            self.live += 1;
        }
        self.items.push(it);
    }

    /// Bytes of the node's listpack in Redis (`lpBytes`).
    pub fn lp_bytes(&self) -> usize {
        LP_OVERHEAD + int_elt(self.live as i64) + int_elt(self.deleted as i64) + self.body
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The node as Redis's listpack (master entry, then each item, deleted ones flagged).
    pub fn listpack(&self, master: StreamId) -> Vec<u8> {
        let mut lp = Listpack::default();
        lp.int(self.live as i64);
        lp.int(self.deleted as i64);
        lp.int(self.master_fields.len() as i64);
        for f in self.master_fields.iter() {
            lp.string(f);
        }
        lp.int(0);
        for it in &self.items {
            let mut flags = 0;
            if it.deleted {
                flags |= FLAG_DELETED;
            }
            if it.same_fields {
                flags |= FLAG_SAMEFIELDS;
            }
            lp.int(flags);
            lp.int(it.id.ms.wrapping_sub(master.ms) as i64);
            lp.int(it.id.seq.wrapping_sub(master.seq) as i64);
            let n = it.data.len() / 2;
            if it.same_fields {
                for v in it.data.iter().skip(1).step_by(2) {
                    lp.string(v);
                }
            } else {
                lp.int(n as i64);
                for s in it.data.iter() {
                    lp.string(s);
                }
            }
            lp.int(item_lp_count(n, it.same_fields));
        }
        lp.finish()
    }
}

/// The `lp-count` closing an item: how many elements it has before it.
fn item_lp_count(numfields: usize, same_fields: bool) -> i64 {
    let mut c = numfields as i64 + 3;
    if !same_fields {
        c += numfields as i64 + 1;
    }
    c
}

fn item_body(id: StreamId, master: StreamId, data: &[Sds], same_fields: bool) -> usize {
    let numfields = data.len() / 2;
    let mut n = int_elt(FLAG_SAMEFIELDS) // the flags take one byte, whatever they are
        + int_elt(id.ms.wrapping_sub(master.ms) as i64)
        + int_elt(id.seq.wrapping_sub(master.seq) as i64)
        + int_elt(item_lp_count(numfields, same_fields));
    if same_fields {
        n += data
            .iter()
            .skip(1)
            .step_by(2)
            .map(|v| str_elt(v))
            .sum::<usize>();
    } else {
        n += int_elt(numfields as i64) + data.iter().map(|s| str_elt(s)).sum::<usize>();
    }
    n
}

/// Writes a listpack (Redis's `listpack.c` encodings).
#[derive(Default)]
pub struct Listpack {
    body: Vec<u8>,
    count: usize,
}

impl Listpack {
    fn backlen(&mut self, len: usize) {
        // 7 bits a byte, highest first; every byte but the first has the high bit set, so the
        // length reads backwards from the element's end (`lpEncodeBacklen`).
        let n = backlen(len);
        for i in (0..n).rev() {
            let b = ((len >> (7 * i)) & 127) as u8;
            self.body.push(if i == n - 1 { b } else { b | 128 });
        }
    }

    pub fn int(&mut self, v: i64) {
        let start = self.body.len();
        if (0..=127).contains(&v) {
            self.body.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1fff;
            self.body.push(0xc0 | (u >> 8) as u8);
            self.body.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            self.body.push(0xf1);
            self.body.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8388608..=8388607).contains(&v) {
            self.body.push(0xf2);
            self.body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (-2147483648..=2147483647).contains(&v) {
            self.body.push(0xf3);
            self.body.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.body.push(0xf4);
            self.body.extend_from_slice(&v.to_le_bytes());
        }
        let len = self.body.len() - start;
        self.backlen(len);
        self.count += 1;
    }

    pub fn string(&mut self, s: &[u8]) {
        if s.len() <= 20
            && let Some(v) = parse_i64_strict(s)
        {
            return self.int(v);
        }
        let start = self.body.len();
        if s.len() < 64 {
            self.body.push(0x80 | s.len() as u8);
        } else if s.len() < 4096 {
            self.body.push(0xe0 | (s.len() >> 8) as u8);
            self.body.push(s.len() as u8);
        } else {
            self.body.push(0xf0);
            self.body.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        self.body.extend_from_slice(s);
        let len = self.body.len() - start;
        self.backlen(len);
        self.count += 1;
    }

    pub fn finish(self) -> Vec<u8> {
        let total = self.body.len() + LP_OVERHEAD;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(self.count.min(65535) as u16).to_le_bytes());
        out.extend_from_slice(&self.body);
        out.push(0xff);
        out
    }
}

/// A pending entry: delivered to a consumer, not yet acknowledged (Redis's `streamNACK`).
#[derive(Clone, Debug)]
pub struct Pending {
    pub consumer: Sds,
    pub delivery_time: i64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Consumer {
    pub seen_time: i64,
    pub pel: BTreeSet<StreamId>,
}

/// `entries_read` of a group whose position in the stream is unknown.
pub const ENTRIES_READ_INVALID: i64 = -1;

#[derive(Clone, Debug)]
pub struct Group {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Sds, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Adds a consumer; false if it exists.
    pub fn create_consumer(&mut self, name: &[u8], now: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            Sds::new(name),
            Consumer {
                seen_time: now,
                pel: BTreeSet::new(),
            },
        );
        true
    }

    /// Removes a consumer and its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Removes one pending entry from the group and its consumer.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(p) => {
                if let Some(c) = self.consumers.get_mut(&p.consumer[..]) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Gives the pending entry `id` to `consumer` (made if missing, and seen at `seen_ms`
    /// either way), creating the entry when there is none; returns it for the caller to set
    /// times and counts.
    pub fn assign(
        &mut self,
        id: StreamId,
        consumer: &[u8],
        now: i64,
        seen_ms: i64,
    ) -> &mut Pending {
        match self.consumers.get_mut(consumer) {
            Some(c) => c.seen_time = seen_ms,
            None => {
                self.create_consumer(consumer, seen_ms);
            }
        }
        let p = self.pel.entry(id).or_insert_with(|| Pending {
            consumer: Sds::new(consumer),
            delivery_time: now,
            delivery_count: 0,
        });
        if &p.consumer[..] != consumer {
            if let Some(old) = self.consumers.get_mut(&p.consumer[..]) {
                old.pel.remove(&id);
            }
            p.consumer = Sds::new(consumer);
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        self.pel.get_mut(&id).expect("just inserted")
    }

    pub fn heap_size(&self) -> usize {
        self.pel.len() * 64
            + self
                .consumers
                .iter()
                .map(|(n, c)| 64 + n.heap_size() + c.pel.len() * 24)
                .sum::<usize>()
    }
}

/// How to trim (`XADD`/`XTRIM`'s MAXLEN and MINID).
#[derive(Clone, Copy, Debug)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Clone, Default)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Node>,
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Sds, Group>,
}

impl Stream {
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&StreamId, &Node)> {
        self.nodes.iter()
    }

    /// Macro nodes (`radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The ID an XADD gets (`streamAppendItem`'s choice): `given` with `seq_given` false is
    /// `<ms>-*`. None: not greater than the last ID.
    pub fn next_id(
        &self,
        given: Option<StreamId>,
        seq_given: bool,
        now_ms: u64,
    ) -> Option<StreamId> {
        let id = match given {
            Some(id) if seq_given => id,
            Some(id) => {
                if self.last_id.ms == id.ms {
                    if self.last_id.seq == u64::MAX {
                        return None;
                    }
                    StreamId::new(id.ms, self.last_id.seq + 1)
                } else {
                    id
                }
            }
            None => {
                if now_ms > self.last_id.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    self.last_id.incr()?
                }
            }
        };
        (id > self.last_id).then_some(id)
    }

    /// Appends an entry (`id` greater than the last one; `pairs` field, value, ...).
    pub fn append(&mut self, id: StreamId, pairs: &[impl AsRef<[u8]>], lim: NodeLimits) {
        let total: usize = pairs.iter().map(|p| p.as_ref().len()).sum();
        let max_bytes = if lim.max_bytes == 0 || lim.max_bytes > LISTPACK_MAX {
            LISTPACK_MAX
        } else {
            lim.max_bytes
        };
        let need_new = match self.nodes.last_key_value() {
            None => true,
            Some((_, n)) => {
                n.lp_bytes() + total >= max_bytes
                    || (lim.max_entries != 0 && (n.live + n.deleted) as usize >= lim.max_entries)
                    // XSETID may move the last ID below a deleted entry's: a node's items stay
                    // in order (Redis appends there anyway; the lookups here rely on order).
                    || n.items.last().is_some_and(|it| it.id >= id)
            }
        };
        let data: Box<[Sds]> = pairs.iter().map(|p| Sds::new(p.as_ref())).collect();
        if need_new {
            self.nodes.insert(id, Node::new(&data));
        }
        let (&master, node) = self.nodes.iter_mut().next_back().expect("a node");
        node.push(master, item(id, false, data.into_vec()));
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
    }

    /// The master ID of the node that would hold `id`.
    fn node_key_for(&self, id: StreamId) -> Option<StreamId> {
        self.nodes.range(..=id).next_back().map(|(k, _)| *k)
    }

    /// The live entry `id`.
    pub fn get(&self, id: StreamId) -> Option<&Item> {
        let node = &self.nodes[&self.node_key_for(id)?];
        let i = node.items.binary_search_by(|it| it.id.cmp(&id)).ok()?;
        let it = &node.items[i];
        (!it.deleted).then_some(it)
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// Live entries from `start` to `end` (inclusive), at most `count` (0: all), from the end
    /// when `rev`.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, count: usize) -> Vec<&Item> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        let full = |out: &Vec<&Item>| count != 0 && out.len() >= count;
        if !rev {
            let from = self.node_key_for(start).unwrap_or(start);
            'nodes: for (_, node) in self.nodes.range(from..) {
                for it in &node.items {
                    if it.id < start || it.deleted {
                        continue;
                    }
                    if it.id > end || full(&out) {
                        break 'nodes;
                    }
                    out.push(it);
                }
            }
        } else {
            'nodes_rev: for (_, node) in self.nodes.range(..=end).rev() {
                for it in node.items.iter().rev() {
                    if it.id > end || it.deleted {
                        continue;
                    }
                    if it.id < start || full(&out) {
                        break 'nodes_rev;
                    }
                    out.push(it);
                }
            }
        }
        out
    }

    /// First (or last) live entry's ID (`streamGetEdgeID` skipping tombstones).
    pub fn edge_id(&self, first: bool) -> Option<StreamId> {
        self.range(StreamId::MIN, StreamId::MAX, !first, 1)
            .first()
            .map(|it| it.id)
    }

    /// The last live entry's ID, 0-0 when there is none (`streamLastValidID`).
    pub fn last_valid_id(&self) -> StreamId {
        self.edge_id(false).unwrap_or(StreamId::MIN)
    }

    /// Marks one live entry deleted (XDEL); a node whose last live entry goes is dropped.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(key) = self.node_key_for(id) else {
            return false;
        };
        let node = self.nodes.get_mut(&key).expect("node");
        let Ok(i) = node.items.binary_search_by(|it| it.id.cmp(&id)) else {
            return false;
        };
        if node.items[i].deleted {
            return false;
        }
        if node.live == 1 {
            self.nodes.remove(&key);
        } else {
            node.items[i].deleted = true;
            node.live -= 1;
            node.deleted += 1;
        }
        self.length -= 1;
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        true
    }

    /// Removes entries as Redis's `streamTrim`: whole nodes first; with `approx` only whole
    /// nodes; `limit` (0: none) bounds the entries removed, checked between nodes. Returns how
    /// many entries went.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        loop {
            if let Trim::MaxLen(max) = how
                && self.length <= max
            {
                break;
            }
            let Some((&key, node)) = self.nodes.first_key_value() else {
                break;
            };
            let entries = node.live;
            // LIMIT stops before a node that would take the count past it.
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(max) => self.length - entries >= max,
                Trim::MinId(min) => node.items.last().is_some_and(|it| it.id < min),
            };
            if remove_node {
                self.nodes.remove(&key);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let node = self.nodes.get_mut(&key).expect("node");
            for it in node.items.iter_mut() {
                if it.deleted {
                    continue;
                }
                let stop = match how {
                    Trim::MaxLen(max) => self.length <= max,
                    Trim::MinId(min) => it.id >= min,
                };
                if stop {
                    break;
                }
                it.deleted = true;
                node.live -= 1;
                node.deleted += 1;
                self.length -= 1;
                deleted += 1;
            }
            break;
        }
        if deleted > 0 {
            self.first_id = self.edge_id(true).unwrap_or(StreamId::MIN);
        }
        deleted
    }

    /// How many entries were ever added up to `id` (`streamEstimateDistanceFromFirstEverEntry`);
    /// None when it cannot be known.
    pub fn estimate_read(&self, id: StreamId) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added as i64);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added as i64),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => {
                    return Some(self.entries_added.saturating_sub(self.length) as i64);
                }
                std::cmp::Ordering::Equal => {
                    return Some(self.entries_added.saturating_sub(self.length) as i64 + 1);
                }
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// Whether a deleted entry may lie between `start` and the end (`streamRangeHasTombstones`).
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.length == 0 || self.max_deleted.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// A group's lag (`streamReplyWithCGLag`); None when it cannot be known.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != ENTRIES_READ_INVALID && !self.has_tombstones_from(g.last_id) {
            return Some((self.entries_added as i64).saturating_sub(g.entries_read));
        }
        self.estimate_read(g.last_id)
            .map(|read| (self.entries_added as i64).saturating_sub(read))
    }

    /// A group moved its last delivered ID to `id` (a delivery of a new entry): its read
    /// counter follows, as XREADGROUP keeps it.
    pub fn advance_group(&self, g: &mut Group, id: StreamId) {
        if id <= g.last_id {
            return;
        }
        if g.entries_read != ENTRIES_READ_INVALID && !self.has_tombstones_from(id) {
            g.entries_read = g.entries_read.saturating_add(1);
        } else if self.entries_added != 0 {
            g.entries_read = self.estimate_read(id).unwrap_or(ENTRIES_READ_INVALID);
        }
        g.last_id = id;
    }

    /// Nodes of Redis's radix tree over the node keys (`radix-tree-nodes`): the compressed
    /// trie of their 16-byte big-endian encodings, counted as `rax.c` lays it out.
    pub fn rax_nodes(&self) -> usize {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|k| k.encode()).collect();
        if keys.is_empty() {
            return 1;
        }
        fn count(keys: &[[u8; 16]], depth: usize) -> usize {
            if depth == 16 {
                return 1;
            }
            // A run of bytes all keys share is one compressed node.
            let mut d = depth;
            while d < 16 && keys.iter().all(|k| k[d] == keys[0][d]) {
                d += 1;
            }
            if d > depth {
                return 1 + count(keys, d);
            }
            // Keys are sorted: split them by the byte at `depth`.
            let mut n = 1;
            let mut i = 0;
            while i < keys.len() {
                let b = keys[i][depth];
                let j = i + keys[i..].iter().take_while(|k| k[depth] == b).count();
                n += count(&keys[i..j], depth + 1);
                i = j;
            }
            n
        }
        count(&keys, 0)
    }

    /// Rebuilds a stream from its parts (a snapshot or RESTORE): nodes as Redis lays them out.
    pub fn from_nodes(nodes: Vec<(StreamId, Vec<Item>)>) -> Stream {
        let mut s = Stream::default();
        for (master, items) in nodes {
            let Some(first) = items.first() else {
                continue;
            };
            let mut node = Node::new(&first.data);
            for it in items {
                node.push(master, it);
            }
            s.length += node.live;
            s.nodes.insert(master, node);
        }
        s
    }

    /// Heap bytes, roughly (MEMORY USAGE): the listpacks Redis would hold plus the groups.
    pub fn heap_size(&self) -> usize {
        self.nodes
            .values()
            .map(|n| n.lp_bytes() + 48)
            .sum::<usize>()
            + self
                .groups
                .iter()
                .map(|(n, g)| 64 + n.heap_size() + g.heap_size())
                .sum::<usize>()
    }
}

/// A new item for [`Stream::from_nodes`].
pub fn item(id: StreamId, deleted: bool, data: Vec<Sds>) -> Item {
    Item {
        id,
        deleted,
        same_fields: false,
        data: data.into_boxed_slice(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: NodeLimits = NodeLimits {
        max_bytes: 4096,
        max_entries: 100,
    };

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    #[test]
    fn nodes_split_by_entries_and_trim_approx_takes_whole_nodes() {
        let mut s = Stream::default();
        for i in 1..=250 {
            s.append(id(i, 0), &[b"f".as_slice(), b"v".as_slice()], LIM);
        }
        assert_eq!(s.node_count(), 3);
        assert_eq!(s.trim(Trim::MaxLen(120), true, 0), 100);
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
        assert_eq!(s.len(), 120);
        assert_eq!(s.first_id, id(131, 0));
        assert_eq!(
            s.range(StreamId::MIN, StreamId::MAX, false, 2)[0].id,
            id(131, 0)
        );
        assert_eq!(
            s.range(StreamId::MIN, StreamId::MAX, true, 1)[0].id,
            id(250, 0)
        );
    }

    #[test]
    fn listpack_size_matches_what_is_written() {
        let mut s = Stream::default();
        s.append(id(5, 1), &[b"name".as_slice(), b"12345"], LIM);
        s.append(
            id(5, 2),
            &[b"name".as_slice(), b"x".repeat(100).as_slice()],
            LIM,
        );
        s.append(id(7, 0), &[b"other".as_slice(), b"-5000", b"b", b"c"], LIM);
        s.delete(id(5, 2));
        let (&master, node) = s.nodes().next().unwrap();
        assert_eq!(node.listpack(master).len(), node.lp_bytes());
    }

    #[test]
    fn an_id_below_a_deleted_one_starts_a_node_and_stays_findable() {
        // XADD 1-1, XADD 5-0, XDEL 5-0, XSETID 3-0, XADD 4-0.
        let mut s = Stream::default();
        s.append(id(1, 1), &[b"f".as_slice(), b"v"], LIM);
        s.append(id(5, 0), &[b"f".as_slice(), b"v"], LIM);
        assert!(s.delete(id(5, 0)));
        s.last_id = id(3, 0);
        s.append(id(4, 0), &[b"f".as_slice(), b"v"], LIM);
        assert_eq!(s.node_count(), 2);
        assert!(s.get(id(4, 0)).is_some());
        let ids: Vec<StreamId> = s
            .range(StreamId::MIN, StreamId::MAX, false, 0)
            .iter()
            .map(|it| it.id)
            .collect();
        assert_eq!(ids, [id(1, 1), id(4, 0)]);
        assert!(s.delete(id(4, 0)));
    }

    #[test]
    fn delete_and_ids() {
        let mut s = Stream::default();
        assert_eq!(s.next_id(Some(id(0, 0)), false, 0), Some(id(0, 1)));
        s.append(id(1, 1), &[b"a".as_slice(), b"b"], LIM);
        assert_eq!(s.next_id(Some(id(1, 0)), false, 0), Some(id(1, 2)));
        assert_eq!(s.next_id(Some(id(1, 1)), true, 0), None);
        assert_eq!(s.next_id(None, true, 10), Some(id(10, 0)));
        assert!(s.delete(id(1, 1)));
        assert!(!s.delete(id(1, 1)));
        assert_eq!(s.node_count(), 0);
        assert_eq!(s.max_deleted, id(1, 1));
        assert_eq!(s.rax_nodes(), 1);
    }
}
