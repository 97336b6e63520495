//! Sorted sets, in Redis 7.0's two encodings:
//!
//! - "listpack" while small (`zset-max-listpack-entries` members of at most
//!   `zset-max-listpack-value` bytes): one allocation of packed `score, len, member` entries in
//!   (score, member) order, scanned linearly as Redis scans its listpack;
//! - "skiplist" beyond: Redis's skiplist with spans (O(log n) insert, delete, rank and
//!   element-by-rank), its nodes in an arena addressed by `u32`, plus a hash table of arena
//!   indexes for member -> score lookups (4 bytes per member instead of a second copy of it).
//!
//! Every query is expressed as ranks: `count_while` returns how many leading elements satisfy a
//! predicate that is monotone along the order (`score < min`, `member < "b"`), so score and lex
//! ranges, counts and removals all reduce to rank ranges.

use std::cmp::Ordering;

use hashbrown::HashTable;

use super::dict::hash_bytes;
use super::sds::Sds;

/// (score, member) order, as Redis's `zslValueGteMin`/`sdscmp` agree on.
#[inline]
pub fn cmp_entry(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    match s1.partial_cmp(&s2) {
        Some(Ordering::Equal) | None => m1.cmp(m2),
        Some(o) => o,
    }
}

fn leb_put(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// The small encoding: a 4-byte member count, then entries `score | member length (LEB128) |
/// member`, sorted. A score that is an integer below 2^53 is a tag byte 1 and its zigzag LEB128
/// (2 bytes for 0..63), any other a tag byte 0 and the 8 bytes of the double: as compact as
/// Redis's listpack, which keeps such scores as integers too.
/// One allocation of exactly the entries' size (no spare capacity: a small set changes by
/// reallocating, as Redis's listpack does), held in 16 bytes so a [`ZSet`] fits in a value.
#[derive(Clone)]
pub struct Packed {
    buf: Box<[u8]>,
}

impl Default for Packed {
    fn default() -> Self {
        Packed {
            buf: vec![0; HEADER].into_boxed_slice(),
        }
    }
}

const HEADER: usize = 4;
const TAG_DOUBLE: u8 = 0;
const TAG_INT: u8 = 1;
const MAX_EXACT: f64 = (1u64 << 53) as f64;

fn put_score(buf: &mut Vec<u8>, score: f64) {
    if score == score.trunc() && score.abs() < MAX_EXACT {
        let i = score as i64;
        buf.push(TAG_INT);
        leb_put(buf, ((i << 1) ^ (i >> 63)) as u64 as usize);
    } else {
        buf.push(TAG_DOUBLE);
        buf.extend_from_slice(&score.to_le_bytes());
    }
}

impl Packed {
    fn len(&self) -> usize {
        u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize
    }

    fn set_len(&mut self, n: usize) {
        self.buf[..HEADER].copy_from_slice(&(n as u32).to_le_bytes());
    }

    fn leb_at(&self, mut p: usize) -> (usize, usize) {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let b = self.buf[p];
            v |= ((b & 0x7f) as usize) << shift;
            p += 1;
            if b & 0x80 == 0 {
                return (v, p);
            }
            shift += 7;
        }
    }

    /// (score, member start, member end = next entry) of the entry at `off`.
    #[inline]
    fn entry_at(&self, off: usize) -> (f64, usize, usize) {
        let (score, p) = if self.buf[off] == TAG_INT {
            let (z, p) = self.leb_at(off + 1);
            let z = z as u64;
            ((((z >> 1) as i64) ^ -((z & 1) as i64)) as f64, p)
        } else {
            let mut sb = [0u8; 8];
            sb.copy_from_slice(&self.buf[off + 1..off + 9]);
            (f64::from_le_bytes(sb), off + 9)
        };
        let (len, p) = self.leb_at(p);
        (score, p, p + len)
    }

    fn iter(&self) -> PackedIter<'_> {
        PackedIter {
            z: self,
            off: HEADER,
        }
    }

    fn find(&self, member: &[u8]) -> Option<(usize, f64)> {
        let mut off = HEADER;
        while off < self.buf.len() {
            let (s, a, b) = self.entry_at(off);
            if &self.buf[a..b] == member {
                return Some((off, s));
            }
            off = b;
        }
        None
    }

    fn insert(&mut self, member: &[u8], score: f64) {
        // Redis writes the score as text and reads "-0" back as the integer 0.
        let score = if score == 0.0 { 0.0 } else { score };
        let mut off = HEADER;
        while off < self.buf.len() {
            let (s, a, b) = self.entry_at(off);
            if cmp_entry(s, &self.buf[a..b], score, member) == Ordering::Greater {
                break;
            }
            off = b;
        }
        let mut e = Vec::with_capacity(10 + 2 + member.len());
        put_score(&mut e, score);
        leb_put(&mut e, member.len());
        e.extend_from_slice(member);
        let mut buf = Vec::with_capacity(self.buf.len() + e.len());
        buf.extend_from_slice(&self.buf[..off]);
        buf.extend_from_slice(&e);
        buf.extend_from_slice(&self.buf[off..]);
        self.buf = buf.into_boxed_slice();
        let n = self.len() + 1;
        self.set_len(n);
    }

    fn remove_at(&mut self, off: usize) {
        let next = self.entry_at(off).2;
        let mut buf = Vec::with_capacity(self.buf.len() - (next - off));
        buf.extend_from_slice(&self.buf[..off]);
        buf.extend_from_slice(&self.buf[next..]);
        self.buf = buf.into_boxed_slice();
        let n = self.len() - 1;
        self.set_len(n);
    }
}

struct PackedIter<'a> {
    z: &'a Packed,
    off: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a [u8], f64);
    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.z.buf.len() {
            return None;
        }
        let (s, a, b) = self.z.entry_at(self.off);
        self.off = b;
        Some((&self.z.buf[a..b], s))
    }
}

const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;

/// One level of a node: the link to the next node at that level.
///
/// A search step reads one `Level` and nothing else: the next node's score is copied here, and
/// so is where the next node's levels are (`next_off`), so neither the next node's record nor
/// a pointer to its levels is read (each would be a cache miss in a large set; the member is
/// read only when the scores tie). A node's levels are contiguous, so going down a level at
/// the same node stays in the same cache line or the next. Scores never change in place (a new
/// score is a delete and an insert), so the copies stay right.
#[derive(Clone, Copy)]
struct Level {
    next: u32,
    span: u32,
    /// Offset of `next`'s levels in [`Skip::levels`] (meaningless at the end).
    next_off: u32,
    /// The score of `next` (meaningless at the end).
    score: f64,
}

const END: Level = Level {
    next: NIL,
    span: 0,
    next_off: 0,
    score: 0.0,
};

#[derive(Clone)]
struct SkipNode {
    member: Sds,
    score: f64,
    back: u32,
    /// Its levels: `levels[off..off + height]` of the [`Skip`].
    off: u32,
    height: u8,
}

/// The large encoding: skiplist (arena) + member index.
#[derive(Clone)]
pub struct Skip {
    /// `nodes[0]` is the header.
    nodes: Vec<SkipNode>,
    free: Vec<u32>,
    /// Every node's levels, each node's in one run (the header's first, at 0).
    levels: Vec<Level>,
    /// Runs freed, by height - 1, for nodes of the same height to reuse.
    free_levels: Vec<Vec<u32>>,
    tail: u32,
    level: usize,
    len: usize,
    index: HashTable<u32>,
}

fn random_level() -> usize {
    // spec (t_zset.c): p = 1/4, at most 32 levels
    let mut lvl = 1;
    while lvl < MAX_LEVEL && rand::random::<u32>() & 0xFFFF < 0xFFFF / 4 {
        lvl += 1;
    }
    lvl
}

impl Skip {
    fn new() -> Skip {
        Skip {
            nodes: vec![SkipNode {
                member: Sds::default(),
                score: 0.0,
                back: NIL,
                off: 0,
                height: MAX_LEVEL as u8,
            }],
            free: Vec::new(),
            levels: vec![END; MAX_LEVEL],
            free_levels: vec![Vec::new(); MAX_LEVEL],
            tail: NIL,
            level: 1,
            len: 0,
            index: HashTable::new(),
        }
    }

    /// Level `i` of node `x`.
    #[inline]
    fn level_of(&self, x: u32, i: usize) -> &Level {
        &self.levels[self.nodes[x as usize].off as usize + i]
    }

    /// Whether the entry `l` leads to sorts before (`score`, `member`), as [`cmp_entry`]; the
    /// next node is read only when the scores tie.
    #[inline]
    fn leads_before(&self, l: &Level, score: f64, member: &[u8]) -> bool {
        match l.score.partial_cmp(&score) {
            Some(Ordering::Less) => true,
            Some(Ordering::Greater) => false,
            _ => *self.nodes[l.next as usize].member < *member,
        }
    }

    fn find(&self, member: &[u8]) -> Option<u32> {
        let nodes = &self.nodes;
        self.index
            .find(hash_bytes(member), |&i| {
                &*nodes[i as usize].member == member
            })
            .copied()
    }

    /// A new node of height `lvl`: its index and the offset of its levels.
    fn alloc(&mut self, member: Sds, score: f64, lvl: usize) -> (u32, u32) {
        let off = match self.free_levels[lvl - 1].pop() {
            Some(off) => off,
            None => {
                if self.levels.len() + lvl > self.levels.capacity() {
                    // Grow by an eighth: a doubling Vec would leave up to half unused.
                    self.levels.reserve_exact(self.levels.len() / 8 + MAX_LEVEL);
                }
                let off = self.levels.len() as u32;
                self.levels.resize(self.levels.len() + lvl, END);
                off
            }
        };
        let node = SkipNode {
            member,
            score,
            back: NIL,
            off,
            height: lvl as u8,
        };
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = node;
            return (i, off);
        }
        if self.nodes.len() == self.nodes.capacity() {
            self.nodes.reserve_exact(self.nodes.len() / 8 + 16);
        }
        self.nodes.push(node);
        ((self.nodes.len() - 1) as u32, off)
    }

    /// Inserts a member known to be absent.
    fn insert(&mut self, member: &[u8], score: f64) {
        let (new, _) = self.alloc(Sds::new(member), score, random_level());
        self.link(new);
        let Skip { nodes, index, .. } = self;
        index.insert_unique(hash_bytes(member), new, |&i| {
            hash_bytes(&nodes[i as usize].member)
        });
    }

    /// Links node `x` (allocated, not linked) at the place of its score and member, with the
    /// height it has.
    fn link(&mut self, x: u32) {
        // Where the levels of the node before the new one at each level are (the node itself
        // is needed only at level 0: `prev` once the search is down there).
        let mut update_off = [0u32; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let (score, lvl, new_off) = {
            let n = &self.nodes[x as usize];
            (n.score, n.height as usize, n.off)
        };
        let mut prev = 0u32;
        {
            let member = &self.nodes[x as usize].member[..];
            let mut off = 0u32;
            for i in (0..self.level).rev() {
                rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
                loop {
                    let l = self.levels[off as usize + i];
                    if l.next == NIL || !self.leads_before(&l, score, member) {
                        break;
                    }
                    rank[i] += l.span;
                    (prev, off) = (l.next, l.next_off);
                }
                update_off[i] = off;
            }
        }
        if lvl > self.level {
            for i in self.level..lvl {
                rank[i] = 0;
                update_off[i] = 0;
                self.levels[i].span = self.len as u32;
            }
            self.level = lvl;
        }
        for i in 0..lvl {
            let u = update_off[i] as usize + i;
            let l = self.levels[u];
            self.levels[new_off as usize + i] = Level {
                span: l.span - (rank[0] - rank[i]),
                ..l
            };
            self.levels[u] = Level {
                next: x,
                span: rank[0] - rank[i] + 1,
                next_off: new_off,
                score,
            };
        }
        for (i, &u) in update_off.iter().enumerate().take(self.level).skip(lvl) {
            self.levels[u as usize + i].span += 1;
        }
        self.nodes[x as usize].back = if prev == 0 { NIL } else { prev };
        let n0 = self.levels[new_off as usize].next;
        if n0 != NIL {
            self.nodes[n0 as usize].back = x;
        } else {
            self.tail = x;
        }
        self.len += 1;
    }

    /// Where the levels of the node before `x` (present) are at each level.
    fn path_to(&self, x: u32) -> [u32; MAX_LEVEL] {
        let mut update_off = [0u32; MAX_LEVEL];
        let n = &self.nodes[x as usize];
        let (score, member) = (n.score, &n.member[..]);
        let mut off = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let l = self.levels[off as usize + i];
                if l.next == NIL || l.next == x || !self.leads_before(&l, score, member) {
                    break;
                }
                off = l.next_off;
            }
            update_off[i] = off;
        }
        update_off
    }

    /// Unlinks node `x` (present; `update_off` is its [`Skip::path_to`]), leaving the node, its
    /// levels and its index entry in place.
    fn unlink(&mut self, x: u32, update_off: &[u32; MAX_LEVEL]) {
        let x_off = self.nodes[x as usize].off;
        for (i, &u) in update_off.iter().enumerate().take(self.level) {
            let u = u as usize + i;
            if self.levels[u].next == x {
                let xl = self.levels[x_off as usize + i];
                let ul = &mut self.levels[u];
                ul.span = ul.span + xl.span - 1;
                ul.next = xl.next;
                ul.next_off = xl.next_off;
                ul.score = xl.score;
            } else {
                self.levels[u].span -= 1;
            }
        }
        let n0 = self.levels[x_off as usize].next;
        let back = self.nodes[x as usize].back;
        if n0 != NIL {
            self.nodes[n0 as usize].back = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.levels[self.level - 1].next == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// Gives node `x` (present) a new score. The node keeps its member, its levels and its
    /// index entry: when the new score leaves it between the same neighbours only the copies of
    /// its score in the levels that lead to it change, otherwise it is unlinked and linked
    /// again at its new place (as Redis's `zslUpdateScore`, without a new node).
    fn rescore(&mut self, x: u32, score: f64) {
        let update_off = self.path_to(x);
        let stays = {
            let n = &self.nodes[x as usize];
            let member = &n.member[..];
            let after_back = n.back == NIL || {
                let b = &self.nodes[n.back as usize];
                cmp_entry(b.score, &b.member, score, member) == Ordering::Less
            };
            let next = self.levels[n.off as usize].next;
            let before_next = next == NIL || {
                let f = &self.nodes[next as usize];
                cmp_entry(f.score, &f.member, score, member) == Ordering::Greater
            };
            after_back && before_next
        };
        if stays {
            let height = self.nodes[x as usize].height as usize;
            for (i, &u) in update_off.iter().enumerate().take(height) {
                self.levels[u as usize + i].score = score;
            }
            self.nodes[x as usize].score = score;
            return;
        }
        self.unlink(x, &update_off);
        self.nodes[x as usize].score = score;
        self.link(x);
    }

    /// Unlinks node `x` (present) and frees it.
    fn delete(&mut self, x: u32) {
        let update_off = self.path_to(x);
        self.unlink(x, &update_off);
        let member_hash = hash_bytes(&self.nodes[x as usize].member);
        if let Ok(e) = self.index.find_entry(member_hash, |&i| i == x) {
            e.remove();
        }
        let (x_off, height) = (self.nodes[x as usize].off, self.nodes[x as usize].height);
        let n = &mut self.nodes[x as usize];
        n.member = Sds::default();
        n.height = 0;
        self.free_levels[height as usize - 1].push(x_off);
        self.free.push(x);
    }

    fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut off = 0u32;
        let mut rank = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.levels[off as usize + i];
                if l.next == NIL {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if !pred(n.score, &n.member) {
                    break;
                }
                rank += l.span as usize;
                off = l.next_off;
            }
        }
        rank
    }

    /// The node at 0-based `rank` (< len).
    fn at(&self, rank: usize) -> u32 {
        let target = rank + 1;
        let mut traversed = 0usize;
        let (mut x, mut off) = (0u32, 0u32);
        for i in (0..self.level).rev() {
            loop {
                let l = self.levels[off as usize + i];
                if l.next == NIL || traversed + l.span as usize > target {
                    break;
                }
                traversed += l.span as usize;
                (x, off) = (l.next, l.next_off);
            }
            if traversed == target {
                return x;
            }
        }
        NIL
    }

    fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<SkipNode>()
            + self
                .nodes
                .iter()
                .map(|n| n.member.heap_size())
                .sum::<usize>()
            + self.levels.capacity() * std::mem::size_of::<Level>()
            + self
                .free_levels
                .iter()
                .map(|f| f.capacity() * 4)
                .sum::<usize>()
            + self.free.capacity() * 4
            + self.index.allocation_size()
    }
}

/// A sorted set value.
#[derive(Clone)]
pub enum ZSet {
    Packed(Packed),
    Skip(Box<Skip>),
}

/// The `zset-max-listpack-*` limits in force.
#[derive(Clone, Copy, Debug)]
pub struct ZLimits {
    pub entries: usize,
    pub value: usize,
}

impl ZSet {
    /// An empty set in the encoding Redis's `zsetTypeCreate` picks for `size_hint` members of
    /// at most `value_len_hint` bytes.
    pub fn new(lim: ZLimits, size_hint: usize, value_len_hint: usize) -> ZSet {
        if lim.entries == 0 || size_hint > lim.entries || value_len_hint > lim.value {
            ZSet::Skip(Box::new(Skip::new()))
        } else {
            ZSet::Packed(Packed::default())
        }
    }

    /// A set holding `items` (sorted or not, members distinct), encoded by its final size as
    /// Redis's `zsetConvertToListpackIfNeeded` does for STORE results.
    pub fn from_items(items: &[(Sds, f64)], lim: ZLimits) -> ZSet {
        let maxlen = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let mut z = if items.len() <= lim.entries && maxlen <= lim.value {
            ZSet::Packed(Packed::default())
        } else {
            ZSet::Skip(Box::new(Skip::new()))
        };
        for (m, s) in items {
            z.insert_new(m, *s);
        }
        z
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Packed(_) => "listpack",
            ZSet::Skip(_) => "skiplist",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ZSet::Packed(p) => p.len(),
            ZSet::Skip(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Packed(p) => p.find(member).map(|(_, s)| s),
            ZSet::Skip(s) => s.find(member).map(|i| s.nodes[i as usize].score),
        }
    }

    fn insert_new(&mut self, member: &[u8], score: f64) {
        match self {
            ZSet::Packed(p) => p.insert(member, score),
            ZSet::Skip(s) => s.insert(member, score),
        }
    }

    /// Moves the set to the "skiplist" encoding (if not there already), whatever its size (past
    /// the limits, and for SORT, which does this in Redis).
    pub fn convert_to_skiplist(&mut self) {
        if let ZSet::Packed(p) = self {
            let mut s = Skip::new();
            for (m, sc) in p.iter() {
                s.insert(m, sc);
            }
            *self = ZSet::Skip(Box::new(s));
        }
    }

    /// Sets `member`'s score, adding it if absent (converting to "skiplist" past the limits).
    /// Returns the previous score.
    pub fn set(&mut self, member: &[u8], score: f64, lim: ZLimits) -> Option<f64> {
        let old = self.score(member);
        if old.is_some() {
            self.rescore(member, score);
        } else {
            self.add_new(member, score, lim);
        }
        old
    }

    /// Gives `member`, which the caller found present, a new score: [`ZSet::set`] without its
    /// lookup of the old score (the size and the members do not change, so neither does the
    /// encoding).
    pub fn rescore(&mut self, member: &[u8], score: f64) {
        match self {
            ZSet::Packed(p) => {
                if let Some((off, _)) = p.find(member) {
                    p.remove_at(off);
                    p.insert(member, score);
                }
            }
            ZSet::Skip(s) => {
                if let Some(x) = s.find(member) {
                    s.rescore(x, score);
                }
            }
        }
    }

    /// Adds `member`, which the caller found absent (converting to "skiplist" past the limits):
    /// [`ZSet::set`] without its lookup.
    pub fn add_new(&mut self, member: &[u8], score: f64, lim: ZLimits) {
        if let ZSet::Packed(p) = self
            && (p.len() + 1 > lim.entries || member.len() > lim.value)
        {
            self.convert_to_skiplist();
        }
        self.insert_new(member, score);
    }

    /// Removes `member`, returning its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Packed(p) => {
                let (off, s) = p.find(member)?;
                p.remove_at(off);
                Some(s)
            }
            ZSet::Skip(sk) => {
                let x = sk.find(member)?;
                let s = sk.nodes[x as usize].score;
                sk.delete(x);
                Some(s)
            }
        }
    }

    /// How many leading elements (in ascending order) satisfy `pred`, which must hold for a
    /// prefix of the order and fail after it.
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Packed(p) => p.iter().take_while(|(m, s)| pred(*s, m)).count(),
            ZSet::Skip(s) => s.count_while(pred),
        }
    }

    /// 0-based ascending rank of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.count_while(|s, m| cmp_entry(s, m, score, member) == Ordering::Less))
    }

    /// Elements from ascending rank `start` on (or, with `rev`, from `start` downwards).
    pub fn iter_from(
        &self,
        start: usize,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        if start >= self.len() {
            return Box::new(std::iter::empty());
        }
        match self {
            ZSet::Packed(p) => {
                if rev {
                    let all: Vec<(&[u8], f64)> = p.iter().take(start + 1).collect();
                    Box::new(all.into_iter().rev())
                } else {
                    Box::new(p.iter().skip(start))
                }
            }
            ZSet::Skip(s) => {
                let mut x = s.at(start);
                Box::new(std::iter::from_fn(move || {
                    if x == NIL || x == 0 {
                        return None;
                    }
                    let n = &s.nodes[x as usize];
                    x = if rev { n.back } else { s.level_of(x, 0).next };
                    Some((&*n.member, n.score))
                }))
            }
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        self.iter_from(0, false)
    }

    /// The element at ascending rank `r`.
    pub fn at(&self, r: usize) -> Option<(&[u8], f64)> {
        self.iter_from(r, false).next()
    }

    pub fn heap_size(&self) -> usize {
        match self {
            ZSet::Packed(p) => p.buf.len(),
            ZSet::Skip(s) => std::mem::size_of::<Skip>() + s.heap_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[derive(Clone, Debug)]
    struct E(f64, Vec<u8>);
    impl PartialEq for E {
        fn eq(&self, o: &Self) -> bool {
            self.cmp(o) == Ordering::Equal
        }
    }
    impl Eq for E {}
    impl PartialOrd for E {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for E {
        fn cmp(&self, o: &Self) -> Ordering {
            cmp_entry(self.0, &self.1, o.0, &o.1)
        }
    }

    /// The skiplist's links agree with its nodes: at every level, each link's copy of the next
    /// node's score and levels' offset is right, and the spans walked to a node add up to its
    /// rank.
    fn check_links(s: &Skip) {
        let mut rank_of = std::collections::HashMap::new();
        let mut x = s.level_of(0, 0).next;
        while x != NIL {
            rank_of.insert(x, rank_of.len() + 1);
            x = s.level_of(x, 0).next;
        }
        assert_eq!(rank_of.len(), s.len);
        for i in 0..s.level {
            let (mut x, mut rank) = (0u32, 0usize);
            loop {
                let l = *s.level_of(x, i);
                if l.next == NIL {
                    break;
                }
                let n = &s.nodes[l.next as usize];
                assert!((n.height as usize) > i);
                assert_eq!(l.score.to_bits(), n.score.to_bits());
                assert_eq!(l.next_off, n.off);
                rank += l.span as usize;
                assert_eq!(rank_of[&l.next], rank, "span at level {i}");
                x = l.next;
            }
        }
    }

    fn check(z: &ZSet, model: &BTreeSet<E>) {
        assert_eq!(z.len(), model.len());
        if let ZSet::Skip(s) = z {
            check_links(s);
        }
        let got: Vec<E> = z.iter().map(|(m, s)| E(s, m.to_vec())).collect();
        let want: Vec<E> = model.iter().cloned().collect();
        assert_eq!(got, want);
        let rev: Vec<E> = if z.is_empty() {
            vec![]
        } else {
            z.iter_from(z.len() - 1, true)
                .map(|(m, s)| E(s, m.to_vec()))
                .collect()
        };
        assert_eq!(rev, want.iter().rev().cloned().collect::<Vec<_>>());
        for (i, e) in want.iter().enumerate() {
            assert_eq!(z.rank(&e.1), Some(i));
            assert_eq!(z.at(i).map(|(m, s)| E(s, m.to_vec())), Some(e.clone()));
        }
    }

    #[test]
    fn both_encodings_match_a_model() {
        for lim in [
            ZLimits {
                entries: 128,
                value: 64,
            },
            ZLimits {
                entries: 0,
                value: 64,
            },
        ] {
            let mut z = ZSet::new(lim, 1, 1);
            let mut model = BTreeSet::<E>::new();
            let mut rng = 99u64;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            for step in 0..4000 {
                let m = format!("m{}", next() % 300).into_bytes();
                let s = (next() % 50) as f64 / 2.0;
                if next() % 3 == 0 {
                    let old = z.remove(&m);
                    let had = model.iter().find(|e| e.1 == m).cloned();
                    assert_eq!(old, had.as_ref().map(|e| e.0));
                    if let Some(e) = had {
                        model.remove(&e);
                    }
                } else {
                    let old = z.set(&m, s, lim);
                    let had = model.iter().find(|e| e.1 == m).cloned();
                    assert_eq!(old, had.as_ref().map(|e| e.0));
                    if let Some(e) = had {
                        model.remove(&e);
                    }
                    model.insert(E(s, m));
                }
                if step % 500 == 0 {
                    check(&z, &model);
                }
            }
            check(&z, &model);
            let below = z.count_while(|s, _| s < 10.0);
            assert_eq!(below, model.iter().filter(|e| e.0 < 10.0).count());
        }
    }

    #[test]
    fn compact_layout() {
        assert!(
            std::mem::size_of::<ZSet>() <= 24,
            "{}",
            std::mem::size_of::<ZSet>()
        );
        let lim = ZLimits {
            entries: 128,
            value: 64,
        };
        let mut z = ZSet::new(lim, 1, 1);
        for (i, s) in [
            0.0,
            -0.0,
            1.5,
            -7.0,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9e15,
        ]
        .iter()
        .enumerate()
        {
            z.set(format!("m{i}").as_bytes(), *s, lim);
        }
        let got: Vec<f64> = z.iter().map(|(_, s)| s).collect();
        assert_eq!(
            got,
            [
                f64::NEG_INFINITY,
                -7.0,
                0.0,
                0.0,
                1.5,
                9e15,
                1e300,
                f64::INFINITY
            ]
        );
        assert!(got[2].is_sign_positive() && got[3].is_sign_positive());
    }

    #[test]
    fn converts_past_the_limits() {
        let lim = ZLimits {
            entries: 4,
            value: 8,
        };
        let mut z = ZSet::new(lim, 1, 1);
        for i in 0..4 {
            z.set(format!("{i}").as_bytes(), i as f64, lim);
        }
        assert_eq!(z.encoding(), "listpack");
        z.set(b"x", 9.0, lim);
        assert_eq!(z.encoding(), "skiplist");
        let mut z = ZSet::new(lim, 1, 1);
        z.set(b"a-very-long-member", 1.0, lim);
        assert_eq!(z.encoding(), "skiplist");
    }
}
