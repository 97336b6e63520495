//! Lists, as Redis 7.0's "quicklist": a deque of packed nodes, each a run of entries in one
//! allocation. An entry is `len` (LEB128), the bytes, then its own size written backwards so a
//! node can be walked from either end (Redis's listpack "backlen"). Nodes are bounded by
//! `list-max-listpack-size`: a negative fill caps a node's bytes (-1: 4 KB ... -5: 64 KB), a
//! positive one its entry count. Per element this costs the element plus 2-4 bytes, as Redis.

use std::collections::VecDeque;

/// Node size caps for negative `list-max-listpack-size` values (Redis's `optimization_level`).
const SIZE_CAPS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];

/// Redis's hard cap on entries per node for positive fills (`SIZE_SAFETY_LIMIT`).
const SAFETY_BYTES: usize = 8192;

fn leb_len(mut n: usize) -> usize {
    let mut k = 1;
    while n >= 0x80 {
        n >>= 7;
        k += 1;
    }
    k
}

fn put_leb(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Bytes one entry of `len` data bytes takes in a node.
fn entry_size(len: usize) -> usize {
    let body = leb_len(len) + len;
    body + leb_len(body)
}

fn encode(data: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(entry_size(data.len()));
    put_leb(&mut e, data.len());
    e.extend_from_slice(data);
    let body = e.len();
    let mut back = Vec::with_capacity(4);
    put_leb(&mut back, body);
    e.extend(back.iter().rev());
    e
}

#[derive(Clone, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
}

impl Node {
    /// (data start, data end, entry end) of the entry at byte offset `off`.
    fn entry_at(&self, off: usize) -> (usize, usize, usize) {
        let (mut len, mut shift, mut p) = (0usize, 0, off);
        loop {
            let b = self.buf[p];
            len |= ((b & 0x7f) as usize) << shift;
            p += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let body = p - off + len;
        (p, p + len, off + body + leb_len(body))
    }

    /// Offset of the entry that ends at byte `end`.
    fn entry_before(&self, end: usize) -> usize {
        let (mut body, mut shift, mut p) = (0usize, 0, end);
        loop {
            p -= 1;
            let b = self.buf[p];
            body |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        p - body
    }

    fn offset_of(&self, idx: usize) -> usize {
        if idx <= self.count as usize / 2 {
            let mut off = 0;
            for _ in 0..idx {
                off = self.entry_at(off).2;
            }
            off
        } else {
            let mut off = self.buf.len();
            for _ in idx..self.count as usize {
                off = self.entry_before(off);
            }
            off
        }
    }

    fn get(&self, idx: usize) -> &[u8] {
        let (s, e, _) = self.entry_at(self.offset_of(idx));
        &self.buf[s..e]
    }

    fn insert(&mut self, idx: usize, data: &[u8]) {
        let off = self.offset_of(idx);
        let e = encode(data);
        self.buf.reserve_exact(e.len());
        self.buf.splice(off..off, e);
        self.count += 1;
    }

    fn remove(&mut self, idx: usize) -> Vec<u8> {
        let off = self.offset_of(idx);
        let (s, e, end) = self.entry_at(off);
        let data = self.buf[s..e].to_vec();
        self.buf.drain(off..end);
        self.count -= 1;
        self.shrink();
        data
    }

    /// Removes entries `from..to` (indexes within this node).
    fn remove_range(&mut self, from: usize, to: usize) {
        if from >= to {
            return;
        }
        let a = self.offset_of(from);
        let mut b = a;
        for _ in from..to {
            b = self.entry_at(b).2;
        }
        self.buf.drain(a..b);
        self.count -= (to - from) as u32;
        self.shrink();
    }

    fn shrink(&mut self) {
        if self.buf.capacity() > self.buf.len() * 2 + 64 {
            self.buf.shrink_to_fit();
        }
    }

    fn walk(&self) -> NodeWalk<'_> {
        NodeWalk {
            node: self,
            front: 0,
            back: self.buf.len(),
            left: self.count as usize,
        }
    }
}

/// Walks a node's entries from both ends.
struct NodeWalk<'a> {
    node: &'a Node,
    front: usize,
    back: usize,
    left: usize,
}

impl<'a> Iterator for NodeWalk<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (s, e, end) = self.node.entry_at(self.front);
        self.front = end;
        self.left -= 1;
        Some(&self.node.buf[s..e])
    }
}

impl DoubleEndedIterator for NodeWalk<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let off = self.node.entry_before(self.back);
        let (s, e, _) = self.node.entry_at(off);
        self.back = off;
        self.left -= 1;
        Some(&self.node.buf[s..e])
    }
}

/// A list value (`OBJECT ENCODING` "quicklist").
#[derive(Clone, Default)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
}

/// Whether a node may take `add` more bytes under `fill` (`list-max-listpack-size`).
fn fits(node: &Node, add: usize, fill: i32) -> bool {
    let size = node.buf.len() + add;
    if fill >= 0 {
        (node.count as usize) < (fill.max(1) as usize) && size <= SAFETY_BYTES
    } else {
        size <= SIZE_CAPS[((-fill - 1) as usize).min(4)]
    }
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, data: &[u8], fill: i32) {
        let add = entry_size(data.len());
        match self.nodes.back_mut() {
            Some(n) if fits(n, add, fill) => n.insert(n.count as usize, data),
            _ => {
                let mut n = Node::default();
                n.insert(0, data);
                // A one-node list (the common small list) gets room for one node only.
                if self.nodes.capacity() == 0 {
                    self.nodes.reserve_exact(1);
                }
                self.nodes.push_back(n);
            }
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, data: &[u8], fill: i32) {
        let add = entry_size(data.len());
        match self.nodes.front_mut() {
            Some(n) if fits(n, add, fill) => n.insert(0, data),
            _ => {
                let mut n = Node::default();
                n.insert(0, data);
                // A one-node list (the common small list) gets room for one node only.
                if self.nodes.capacity() == 0 {
                    self.nodes.reserve_exact(1);
                }
                self.nodes.push_front(n);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.front_mut()?;
        let v = n.remove(0);
        if n.count == 0 {
            self.nodes.pop_front();
        }
        self.len -= 1;
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.back_mut()?;
        let v = n.remove(n.count as usize - 1);
        if n.count == 0 {
            self.nodes.pop_back();
        }
        self.len -= 1;
        Some(v)
    }

    /// (node, index in node) of element `idx` (< len), walking from the nearer end.
    fn locate(&self, idx: usize) -> (usize, usize) {
        if idx < self.len / 2 {
            let mut i = idx;
            for (ni, n) in self.nodes.iter().enumerate() {
                if i < n.count as usize {
                    return (ni, i);
                }
                i -= n.count as usize;
            }
        } else {
            let mut from_end = self.len - idx;
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                if from_end <= n.count as usize {
                    return (ni, n.count as usize - from_end);
                }
                from_end -= n.count as usize;
            }
        }
        (0, 0)
    }

    pub fn get(&self, idx: usize) -> Option<&[u8]> {
        if idx >= self.len {
            return None;
        }
        let (ni, i) = self.locate(idx);
        Some(self.nodes[ni].get(i))
    }

    /// Replaces element `idx` (< len).
    pub fn set(&mut self, idx: usize, data: &[u8], fill: i32) {
        if idx >= self.len {
            return;
        }
        let (ni, i) = self.locate(idx);
        let n = &mut self.nodes[ni];
        n.remove(i);
        n.insert(i, data);
        self.split_if_needed(ni, fill);
    }

    /// Inserts `data` so that it becomes element `idx` (<= len).
    pub fn insert(&mut self, idx: usize, data: &[u8], fill: i32) {
        if idx >= self.len {
            return self.push_back(data, fill);
        }
        if idx == 0 {
            return self.push_front(data, fill);
        }
        let (ni, i) = self.locate(idx);
        self.nodes[ni].insert(i, data);
        self.len += 1;
        self.split_if_needed(ni, fill);
    }

    /// Splits node `ni` in two when it grew past the fill limit.
    fn split_if_needed(&mut self, ni: usize, fill: i32) {
        let n = &self.nodes[ni];
        if n.count < 2 || fits(n, 0, fill) {
            return;
        }
        let half = n.count as usize / 2;
        let mut tail = Node::default();
        for e in n.walk().skip(half) {
            tail.insert(tail.count as usize, e);
        }
        let n = &mut self.nodes[ni];
        let total = n.count as usize;
        n.remove_range(half, total);
        self.nodes.insert(ni + 1, tail);
    }

    pub fn remove(&mut self, idx: usize) -> Option<Vec<u8>> {
        if idx >= self.len {
            return None;
        }
        let (ni, i) = self.locate(idx);
        let v = self.nodes[ni].remove(i);
        if self.nodes[ni].count == 0 {
            self.nodes.remove(ni);
        }
        self.len -= 1;
        Some(v)
    }

    /// Removes the first `n` elements.
    pub fn drop_front(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(f) = self.nodes.front_mut() else {
                break;
            };
            let c = f.count as usize;
            if n >= c {
                self.nodes.pop_front();
                n -= c;
            } else {
                f.remove_range(0, n);
                n = 0;
            }
        }
    }

    /// Removes the last `n` elements.
    pub fn drop_back(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(b) = self.nodes.back_mut() else {
                break;
            };
            let c = b.count as usize;
            if n >= c {
                self.nodes.pop_back();
                n -= c;
            } else {
                b.remove_range(c - n, c);
                n = 0;
            }
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        self.nodes.iter().flat_map(|n| n.walk())
    }

    /// Elements from index `start` on, skipping whole nodes.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut skip = start;
        let mut first = 0;
        for n in &self.nodes {
            if skip < n.count as usize {
                break;
            }
            skip -= n.count as usize;
            first += 1;
        }
        self.nodes
            .iter()
            .skip(first)
            .flat_map(|n| n.walk())
            .skip(skip)
    }

    /// How many packed nodes hold the entries (Redis's quicklist nodes).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes of packed entries, over every node.
    pub fn packed_bytes(&self) -> usize {
        self.nodes.iter().map(|n| n.buf.len()).sum()
    }

    /// Heap bytes: node headers plus packed entries.
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(l: &List) -> Vec<Vec<u8>> {
        l.iter().map(|e| e.to_vec()).collect()
    }

    #[test]
    fn against_a_vecdeque() {
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut l = List::new();
        let mut rng = 12345u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for step in 0..5000 {
            let r = next();
            let len = (r % 300) as usize;
            let v: Vec<u8> = (0..len).map(|i| (i as u64 + step) as u8).collect();
            let fill = if step % 2 == 0 { -2 } else { 5 };
            match r % 9 {
                0 | 1 => {
                    l.push_back(&v, fill);
                    model.push_back(v);
                }
                2 | 3 => {
                    l.push_front(&v, fill);
                    model.push_front(v);
                }
                4 => assert_eq!(l.pop_front(), model.pop_front()),
                5 => assert_eq!(l.pop_back(), model.pop_back()),
                6 if !model.is_empty() => {
                    let i = (next() as usize) % (model.len() + 1);
                    l.insert(i, &v, fill);
                    model.insert(i, v);
                }
                7 if !model.is_empty() => {
                    let i = (next() as usize) % model.len();
                    assert_eq!(l.remove(i), model.remove(i));
                }
                8 if !model.is_empty() => {
                    let i = (next() as usize) % model.len();
                    l.set(i, &v, fill);
                    model[i] = v;
                }
                _ => {}
            }
            assert_eq!(l.len(), model.len());
        }
        assert_eq!(items(&l), model.iter().cloned().collect::<Vec<_>>());
        let rev: Vec<Vec<u8>> = l.iter().rev().map(|e| e.to_vec()).collect();
        assert_eq!(rev, model.iter().rev().cloned().collect::<Vec<_>>());
        for (i, m) in model.iter().enumerate() {
            assert_eq!(l.get(i), Some(&m[..]));
        }
        let from: Vec<Vec<u8>> = l.iter_from(7).map(|e| e.to_vec()).collect();
        assert_eq!(from, model.iter().skip(7).cloned().collect::<Vec<_>>());
        l.drop_front(3);
        l.drop_back(4);
        model.drain(..3);
        model.truncate(model.len() - 4);
        assert_eq!(items(&l), model.iter().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn small_elements_are_packed() {
        let mut l = List::new();
        for i in 0..10_000u32 {
            l.push_back(format!("{i:08}").as_bytes(), -2);
        }
        // 8 data bytes + 2 bytes of header per element, plus node overhead.
        assert!(l.heap_size() < 10_000 * 12, "{}", l.heap_size());
    }
}
