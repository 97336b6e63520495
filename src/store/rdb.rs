//! Values in Redis's RDB object encoding: the payload of `DUMP`/`RESTORE`, the unit a slot
//! migration streams over the bus, and what snapshots store per key.
//!
//! Writing uses the plain RDB types every Redis since 2.x loads: `STRING` (0, integers in the
//! int8/16/32 string encodings), `LIST` (1), `SET` (2), `HASH` (4) and `ZSET_2` (5, binary
//! scores). Reading accepts those plus what Redis 7.0 itself writes: `ZSET` (3), `SET_INTSET`
//! (11), `HASH_LISTPACK` (16), `ZSET_LISTPACK` (17), `LIST_QUICKLIST_2` (18) and LZF-compressed
//! strings, so `RESTORE` takes payloads made by `redis-server`'s `DUMP`. The older ziplist types
//! (10, 12, 13, 14) are refused as "Bad data format". A loaded value gets the encoding our own
//! writes would give it (listpack or hashtable by the configured limits).
//!
//! Streams have no plain type: they are written as Redis 7.0 writes them
//! (`STREAM_LISTPACKS_2`, 19: each macro node's listpack as Redis lays it out, then the
//! stream's counters and its consumer groups with their pending entries), and read from that
//! type or Redis 5/6's `STREAM_LISTPACKS` (15).
//!
//! A `DUMP` payload is the object (type byte + body), the RDB version as two little-endian bytes
//! and Redis's CRC-64 (Jones polynomial, reflected) of everything before it, little-endian.

use super::hash::{self, Hash};
use super::list::List;
use super::sds::Sds;
use super::set::Set;
use super::stream::{self, Group, Pending, Stream, StreamId};
use super::value::{Value, parse_i64_strict};
use super::zset::{ZLimits, ZSet};

/// The RDB version Redis 7.0 writes; `RESTORE` refuses payloads from a newer one.
pub const RDB_VERSION: u16 = 10;

/// RDB opcodes (before a key, or between sections of a file).
pub const OPCODE_FUNCTION2: u8 = 0xF5;
pub const OPCODE_MODULE_AUX: u8 = 0xF7;
pub const OPCODE_IDLE: u8 = 0xF8;
pub const OPCODE_FREQ: u8 = 0xF9;
pub const OPCODE_AUX: u8 = 0xFA;
pub const OPCODE_RESIZEDB: u8 = 0xFB;
pub const OPCODE_EXPIRETIME_MS: u8 = 0xFC;
pub const OPCODE_EXPIRETIME: u8 = 0xFD;
pub const OPCODE_SELECTDB: u8 = 0xFE;
pub const OPCODE_EOF: u8 = 0xFF;

pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
/// Redis 7.2's small sets of strings (read only: a 7.2 master's file for REPLICAOF).
pub const TYPE_SET_LISTPACK: u8 = 20;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Why a payload could not be read. Callers map it to Redis's error texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdbError {
    /// Version or checksum of a DUMP payload is wrong.
    Checksum,
    /// The object itself is malformed, truncated or of a type we do not load.
    Format(&'static str),
}

impl std::fmt::Display for RdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RdbError::Checksum => f.write_str("DUMP payload version or checksum are wrong"),
            RdbError::Format(why) => write!(f, "Bad data format ({why})"),
        }
    }
}

impl std::error::Error for RdbError {}

type Result<T> = std::result::Result<T, RdbError>;

/// The encoding limits a loaded value is built with (the node's current settings).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub hash: hash::Limits,
    pub set_max_intset_entries: usize,
    pub list_fill: i32,
    pub zset: ZLimits,
}

impl Limits {
    /// Redis's default encoding thresholds (tests, and tools with no node).
    pub fn redis_defaults() -> Limits {
        Limits {
            hash: hash::Limits {
                entries: 128,
                value: 64,
            },
            set_max_intset_entries: 512,
            list_fill: -2,
            zset: ZLimits {
                entries: 128,
                value: 64,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Appends an RDB length.
pub fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_int_encoded(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(b) = i8::try_from(v) {
        out.push(0xC0 | ENC_INT8);
        out.push(b as u8);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(0xC0 | ENC_INT16);
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(0xC0 | ENC_INT32);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Appends a string, as an int8/16/32 when it is the canonical text of one (as Redis does).
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11
        && let Some(v) = parse_i64_strict(s)
        && write_int_encoded(out, v)
    {
        return;
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn write_i64_string(out: &mut Vec<u8>, v: i64) {
    if !write_int_encoded(out, v) {
        let mut b = itoa::Buffer::new();
        let s = b.format(v).as_bytes();
        write_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }
}

/// Appends the value's type byte and body.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            write_string(out, s);
        }
        Value::Int(i) => {
            out.push(TYPE_STRING);
            write_i64_string(out, *i);
        }
        Value::List(l) => {
            out.push(TYPE_LIST);
            write_len(out, l.len() as u64);
            for e in l.iter() {
                write_string(out, e);
            }
        }
        Value::Set(s) => {
            out.push(TYPE_SET);
            write_len(out, s.len() as u64);
            let mut buf = itoa::Buffer::new();
            for m in s.iter() {
                write_string(out, m.bytes(&mut buf));
            }
        }
        Value::Hash(h) => {
            out.push(TYPE_HASH);
            write_len(out, h.len() as u64);
            for (f, v) in h.iter() {
                write_string(out, f);
                write_string(out, v);
            }
        }
        Value::ZSet(z) => {
            out.push(TYPE_ZSET_2);
            write_len(out, z.len() as u64);
            for (m, score) in z.iter() {
                write_string(out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        Value::Stream(s) => {
            out.push(TYPE_STREAM_LISTPACKS_2);
            write_stream(out, s);
        }
    }
}

fn write_raw_string(out: &mut Vec<u8>, s: &[u8]) {
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The body of `STREAM_LISTPACKS_2` (Redis 7.0's `rdbSaveObject` for streams).
fn write_stream(out: &mut Vec<u8>, s: &Stream) {
    write_len(out, s.node_count() as u64);
    for (master, node) in s.nodes() {
        write_raw_string(out, &master.encode());
        write_raw_string(out, &node.listpack(*master));
    }
    write_len(out, s.len());
    for v in [
        s.last_id.ms,
        s.last_id.seq,
        s.first_id.ms,
        s.first_id.seq,
        s.max_deleted.ms,
        s.max_deleted.seq,
        s.entries_added,
    ] {
        write_len(out, v);
    }
    write_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        write_raw_string(out, name);
        write_len(out, g.last_id.ms);
        write_len(out, g.last_id.seq);
        write_len(out, g.entries_read as u64);
        write_len(out, g.pel.len() as u64);
        for (id, p) in &g.pel {
            out.extend_from_slice(&id.encode());
            out.extend_from_slice(&p.delivery_time.to_le_bytes());
            write_len(out, p.delivery_count);
        }
        write_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            write_raw_string(out, cname);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            write_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id.encode());
            }
        }
    }
}

/// The `DUMP` payload of a value.
pub fn dump(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + v.heap_size());
    write_value(&mut out, v);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a `DUMP` payload's version and checksum and returns the object part (Redis 7.0's
/// verifyDumpPayload: a zero checksum is checked like any other).
pub fn verify_dump(payload: &[u8]) -> Result<&[u8]> {
    if payload.len() < 10 {
        return Err(RdbError::Checksum);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let ver = u16::from_le_bytes([footer[0], footer[1]]);
    if ver > RDB_VERSION {
        return Err(RdbError::Checksum);
    }
    let want = u64::from_le_bytes(footer[2..10].try_into().expect("8 bytes"));
    if crc64(0, &payload[..payload.len() - 8]) != want {
        return Err(RdbError::Checksum);
    }
    Ok(body)
}

/// Reads a `DUMP` payload into a value.
pub fn restore(payload: &[u8], lim: &Limits) -> Result<Value> {
    let body = verify_dump(payload)?;
    let mut r = Reader::new(body);
    let v = r.value(lim)?;
    if !r.is_empty() {
        return Err(RdbError::Format("trailing bytes after the object"));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A cursor over RDB bytes. Every length is checked against what is left before anything is
/// allocated, so a hostile payload cannot make us reserve gigabytes.
pub struct Reader<'a> {
    buf: &'a [u8],
}

enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(RdbError::Format("truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn raw_len(&mut self) -> Result<Len> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Plain((b & 0x3F) as u64),
            1 => Len::Plain((((b & 0x3F) as u64) << 8) | self.u8()? as u64),
            2 => match b {
                0x80 => Len::Plain(u32::from_be_bytes(self.bytes(4)?.try_into().unwrap()) as u64),
                0x81 => Len::Plain(u64::from_be_bytes(self.bytes(8)?.try_into().unwrap())),
                _ => return Err(RdbError::Format("unknown length encoding")),
            },
            _ => Len::Encoded(b & 0x3F),
        })
    }

    /// An RDB length used as a number (IDs, counters): any 64-bit value.
    fn number(&mut self) -> Result<u64> {
        match self.raw_len()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(RdbError::Format("encoded value where a number belongs")),
        }
    }

    fn stream_id(&mut self) -> Result<StreamId> {
        Ok(StreamId::new(self.number()?, self.number()?))
    }

    fn raw_id(&mut self) -> Result<StreamId> {
        StreamId::decode(self.bytes(16)?).ok_or(RdbError::Format("bad stream ID"))
    }

    fn ms_time(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.bytes(8)?.try_into().unwrap()))
    }

    /// A stream (`STREAM_LISTPACKS` or `_2`).
    fn stream(&mut self, t: u8) -> Result<Value> {
        const BAD: RdbError = RdbError::Format("bad stream");
        let n = self.len()?;
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            let master = StreamId::decode(&self.string()?).ok_or(BAD)?;
            let lp = self.string()?;
            nodes.push((master, stream_node_items(master, &listpack_entries(&lp)?)?));
        }
        let mut s = Stream::from_nodes(nodes);
        if s.len() != self.number()? {
            return Err(RdbError::Format("stream length does not match its entries"));
        }
        s.last_id = self.stream_id()?;
        if t == TYPE_STREAM_LISTPACKS_2 {
            s.first_id = self.stream_id()?;
            s.max_deleted = self.stream_id()?;
            s.entries_added = self.number()?;
        } else {
            s.first_id = s.edge_id(true).unwrap_or(StreamId::MIN);
            s.entries_added = s.len();
        }
        let groups = self.len()?;
        for _ in 0..groups {
            let name = self.string()?;
            let last_id = self.stream_id()?;
            let entries_read = if t == TYPE_STREAM_LISTPACKS_2 {
                self.number()? as i64
            } else {
                s.estimate_read(last_id)
                    .unwrap_or(stream::ENTRIES_READ_INVALID)
            };
            let mut g = Group::new(last_id, entries_read);
            let pel = self.len()?;
            for _ in 0..pel {
                let id = self.raw_id()?;
                let delivery_time = self.ms_time()?;
                let delivery_count = self.number()?;
                g.pel.insert(
                    id,
                    Pending {
                        consumer: Sds::new(b""),
                        delivery_time,
                        delivery_count,
                    },
                );
            }
            let consumers = self.len()?;
            let mut owned = std::collections::BTreeSet::new();
            for _ in 0..consumers {
                let cname = self.string()?;
                let seen = self.ms_time()?;
                if !g.create_consumer(&cname, seen) {
                    return Err(RdbError::Format("duplicated consumer name"));
                }
                let own = self.len()?;
                for _ in 0..own {
                    let id = self.raw_id()?;
                    let p = g
                        .pel
                        .get_mut(&id)
                        .ok_or(RdbError::Format("consumer entry not pending in its group"))?;
                    if !owned.insert(id) {
                        return Err(RdbError::Format("pending entry owned by two consumers"));
                    }
                    p.consumer = Sds::new(&cname);
                    if let Some(c) = g.consumers.get_mut(&cname[..]) {
                        c.pel.insert(id);
                    }
                }
            }
            if owned.len() != g.pel.len() {
                return Err(RdbError::Format("pending entry without a consumer"));
            }
            if s.groups.insert(Sds::from_vec(name), g).is_some() {
                return Err(RdbError::Format("duplicated consumer group"));
            }
        }
        Ok(Value::Stream(Box::new(s)))
    }

    /// An RDB length; `max` bounds it (each element needs at least one byte).
    pub fn len(&mut self) -> Result<usize> {
        match self.raw_len()? {
            Len::Plain(n) if n <= self.buf.len() as u64 => Ok(n as usize),
            Len::Plain(_) => Err(RdbError::Format("length past the end")),
            Len::Encoded(_) => Err(RdbError::Format("encoded value where a length belongs")),
        }
    }

    /// An RDB string, decoding the integer and LZF encodings.
    pub fn string(&mut self) -> Result<Vec<u8>> {
        match self.raw_len()? {
            Len::Plain(n) => {
                if n > self.buf.len() as u64 {
                    return Err(RdbError::Format("string past the end"));
                }
                Ok(self.bytes(n as usize)?.to_vec())
            }
            Len::Encoded(ENC_INT8) => Ok(itoa::Buffer::new()
                .format(self.u8()? as i8)
                .as_bytes()
                .to_vec()),
            Len::Encoded(ENC_INT16) => {
                let v = i16::from_le_bytes(self.bytes(2)?.try_into().unwrap());
                Ok(itoa::Buffer::new().format(v).as_bytes().to_vec())
            }
            Len::Encoded(ENC_INT32) => {
                let v = i32::from_le_bytes(self.bytes(4)?.try_into().unwrap());
                Ok(itoa::Buffer::new().format(v).as_bytes().to_vec())
            }
            Len::Encoded(ENC_LZF) => {
                let clen = self.len()?;
                let ulen = match self.raw_len()? {
                    Len::Plain(n) if n <= MAX_LZF_OUT => n as usize,
                    _ => return Err(RdbError::Format("bad LZF length")),
                };
                let c = self.bytes(clen)?;
                lzf_decompress(c, ulen)
            }
            Len::Encoded(_) => Err(RdbError::Format("unknown string encoding")),
        }
    }

    fn double_bin(&mut self) -> Result<f64> {
        let v = f64::from_le_bytes(self.bytes(8)?.try_into().unwrap());
        if v.is_nan() {
            return Err(RdbError::Format("NaN score"));
        }
        Ok(v)
    }

    /// RDB_TYPE_ZSET's text scores: a length byte (253 NaN, 254 +inf, 255 -inf) and the text.
    fn double_text(&mut self) -> Result<f64> {
        let n = self.u8()?;
        match n {
            253 => Err(RdbError::Format("NaN score")),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => std::str::from_utf8(self.bytes(n as usize)?)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| !v.is_nan())
                .ok_or(RdbError::Format("bad score")),
        }
    }

    /// A type byte and the object after it.
    pub fn value(&mut self, lim: &Limits) -> Result<Value> {
        let t = self.u8()?;
        self.object(t, lim)
    }

    /// The body of an object of type `t`.
    pub fn object(&mut self, t: u8, lim: &Limits) -> Result<Value> {
        match t {
            TYPE_STRING => Ok(Value::from_vec(self.string()?)),
            TYPE_LIST => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.string()?);
                }
                build_list(items, lim)
            }
            TYPE_SET => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.string()?);
                }
                build_set(items, lim)
            }
            TYPE_HASH => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(self.remaining() / 2) * 2);
                for _ in 0..n {
                    items.push(self.string()?);
                    items.push(self.string()?);
                }
                build_hash(items, lim)
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let m = self.string()?;
                    let s = if t == TYPE_ZSET {
                        self.double_text()?
                    } else {
                        self.double_bin()?
                    };
                    items.push((Sds::from_vec(m), s));
                }
                build_zset(items, lim)
            }
            TYPE_SET_INTSET => {
                let blob = self.string()?;
                build_set(intset_members(&blob)?, lim)
            }
            TYPE_SET_LISTPACK => {
                let blob = self.string()?;
                build_set(listpack_entries(&blob)?, lim)
            }
            TYPE_HASH_LISTPACK => {
                let blob = self.string()?;
                let items = listpack_entries(&blob)?;
                if items.len() % 2 != 0 {
                    return Err(RdbError::Format("odd listpack hash"));
                }
                build_hash(items, lim)
            }
            TYPE_ZSET_LISTPACK => {
                let blob = self.string()?;
                let items = listpack_entries(&blob)?;
                if items.len() % 2 != 0 {
                    return Err(RdbError::Format("odd listpack zset"));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(m), Some(s)) = (it.next(), it.next()) {
                    let score = std::str::from_utf8(&s)
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                        .filter(|v| !v.is_nan())
                        .ok_or(RdbError::Format("bad score"))?;
                    pairs.push((Sds::from_vec(m), score));
                }
                build_zset(pairs, lim)
            }
            TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.len()?;
                let mut items = Vec::new();
                for _ in 0..nodes {
                    let container = self.len()?;
                    let blob = self.string()?;
                    match container {
                        1 => items.push(blob),
                        2 => items.extend(listpack_entries(&blob)?),
                        _ => return Err(RdbError::Format("unknown quicklist container")),
                    }
                }
                build_list(items, lim)
            }
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => self.stream(t),
            _ => Err(RdbError::Format("unsupported object type")),
        }
    }
}

/// The items of one stream node's listpack elements (master entry first).
fn stream_node_items(master: StreamId, el: &[Vec<u8>]) -> Result<Vec<stream::Item>> {
    const BAD: RdbError = RdbError::Format("bad stream listpack");
    let int = |i: usize| -> Result<i64> { el.get(i).and_then(|e| parse_i64_strict(e)).ok_or(BAD) };
    let count = int(0)?;
    let deleted = int(1)?;
    let nfields = usize::try_from(int(2)?).map_err(|_| BAD)?;
    if nfields > el.len() {
        return Err(BAD);
    }
    let fields: Vec<&Vec<u8>> = el.get(3..3 + nfields).ok_or(BAD)?.iter().collect();
    let mut p = 3 + nfields;
    if int(p)? != 0 {
        return Err(BAD);
    }
    p += 1;
    let mut items = Vec::new();
    while p < el.len() {
        let flags = int(p)?;
        let id = StreamId::new(
            master.ms.wrapping_add(int(p + 1)? as u64),
            master.seq.wrapping_add(int(p + 2)? as u64),
        );
        p += 3;
        let mut data = Vec::new();
        if flags & 2 != 0 {
            for (i, f) in fields.iter().enumerate() {
                data.push(Sds::new(f));
                data.push(Sds::new(el.get(p + i).ok_or(BAD)?));
            }
            p += nfields;
        } else {
            let n = usize::try_from(int(p)?).map_err(|_| BAD)?;
            p += 1;
            let pairs = el.get(p..p + n.checked_mul(2).ok_or(BAD)?).ok_or(BAD)?;
            data.extend(pairs.iter().map(|e| Sds::new(e)));
            p += 2 * n;
        }
        p += 1; // lp-count
        if items.last().is_some_and(|it: &stream::Item| it.id >= id) {
            return Err(BAD);
        }
        items.push(stream::item(id, flags & 1 != 0, data));
    }
    if p != el.len()
        || items.is_empty()
        || items.iter().filter(|it| !it.deleted).count() as i64 != count
        || items.iter().filter(|it| it.deleted).count() as i64 != deleted
    {
        return Err(BAD);
    }
    Ok(items)
}

fn build_list(items: Vec<Vec<u8>>, lim: &Limits) -> Result<Value> {
    if items.is_empty() {
        return Err(RdbError::Format("empty list"));
    }
    let mut l = List::new();
    for e in &items {
        l.push_back(e, lim.list_fill);
    }
    Ok(Value::List(Box::new(l)))
}

fn build_set(items: Vec<Vec<u8>>, lim: &Limits) -> Result<Value> {
    let Some(first) = items.first() else {
        return Err(RdbError::Format("empty set"));
    };
    let mut s = Set::for_first(first);
    for m in &items {
        s.add(m, lim.set_max_intset_entries);
    }
    if s.len() != items.len() {
        return Err(RdbError::Format("duplicate set members"));
    }
    Ok(Value::Set(s))
}

/// `items` alternates fields and values.
fn build_hash(items: Vec<Vec<u8>>, lim: &Limits) -> Result<Value> {
    if items.is_empty() {
        return Err(RdbError::Format("empty hash"));
    }
    let mut h = Hash::default();
    for pair in items.chunks_exact(2) {
        if !h.set(&pair[0], &pair[1], lim.hash) {
            return Err(RdbError::Format("duplicate hash fields"));
        }
    }
    Ok(Value::Hash(h))
}

fn build_zset(items: Vec<(Sds, f64)>, lim: &Limits) -> Result<Value> {
    if items.is_empty() {
        return Err(RdbError::Format("empty zset"));
    }
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    if !items.iter().all(|(m, _)| seen.insert(&m[..])) {
        return Err(RdbError::Format("duplicate zset members"));
    }
    Ok(Value::ZSet(ZSet::from_items(&items, lim.zset)))
}

/// Members of a Redis intset blob: encoding (2, 4 or 8) and count as u32 LE, then the values.
fn intset_members(blob: &[u8]) -> Result<Vec<Vec<u8>>> {
    if blob.len() < 8 {
        return Err(RdbError::Format("short intset"));
    }
    let enc = u32::from_le_bytes(blob[0..4].try_into().unwrap()) as usize;
    let n = u32::from_le_bytes(blob[4..8].try_into().unwrap()) as usize;
    if !matches!(enc, 2 | 4 | 8) || blob.len() != 8 + enc * n || n == 0 {
        return Err(RdbError::Format("bad intset"));
    }
    let mut buf = itoa::Buffer::new();
    Ok(blob[8..]
        .chunks_exact(enc)
        .map(|c| {
            let v = match enc {
                2 => i16::from_le_bytes(c.try_into().unwrap()) as i64,
                4 => i32::from_le_bytes(c.try_into().unwrap()) as i64,
                _ => i64::from_le_bytes(c.try_into().unwrap()),
            };
            buf.format(v).as_bytes().to_vec()
        })
        .collect())
}

/// The entries of a Redis listpack, integers as their decimal text.
pub fn listpack_entries(lp: &[u8]) -> Result<Vec<Vec<u8>>> {
    const BAD: RdbError = RdbError::Format("bad listpack");
    if lp.len() < 7 || u32::from_le_bytes(lp[0..4].try_into().unwrap()) as usize != lp.len() {
        return Err(BAD);
    }
    let mut p = 6;
    let mut out = Vec::new();
    let mut buf = itoa::Buffer::new();
    let int = |v: i64, buf: &mut itoa::Buffer| buf.format(v).as_bytes().to_vec();
    loop {
        let b = *lp.get(p).ok_or(BAD)?;
        if b == 0xFF {
            break;
        }
        let need = |n: usize| if p + n <= lp.len() { Ok(()) } else { Err(BAD) };
        let (entry, len) = if b & 0x80 == 0 {
            (int((b & 0x7F) as i64, &mut buf), 1)
        } else if b & 0xC0 == 0x80 {
            let n = (b & 0x3F) as usize;
            need(1 + n)?;
            (lp[p + 1..p + 1 + n].to_vec(), 1 + n)
        } else if b & 0xE0 == 0xC0 {
            need(2)?;
            let raw = (((b & 0x1F) as u16) << 8) | lp[p + 1] as u16;
            let v = ((raw << 3) as i16 >> 3) as i64; // 13-bit two's complement
            (int(v, &mut buf), 2)
        } else if b & 0xF0 == 0xE0 {
            need(2)?;
            let n = (((b & 0x0F) as usize) << 8) | lp[p + 1] as usize;
            need(2 + n)?;
            (lp[p + 2..p + 2 + n].to_vec(), 2 + n)
        } else {
            match b {
                0xF0 => {
                    need(5)?;
                    let n = u32::from_le_bytes(lp[p + 1..p + 5].try_into().unwrap()) as usize;
                    need(5 + n)?;
                    (lp[p + 5..p + 5 + n].to_vec(), 5 + n)
                }
                0xF1 => {
                    need(3)?;
                    let v = i16::from_le_bytes(lp[p + 1..p + 3].try_into().unwrap());
                    (int(v as i64, &mut buf), 3)
                }
                0xF2 => {
                    need(4)?;
                    let raw = u32::from_le_bytes([lp[p + 1], lp[p + 2], lp[p + 3], 0]);
                    let v = ((raw << 8) as i32 >> 8) as i64; // 24-bit two's complement
                    (int(v, &mut buf), 4)
                }
                0xF3 => {
                    need(5)?;
                    let v = i32::from_le_bytes(lp[p + 1..p + 5].try_into().unwrap());
                    (int(v as i64, &mut buf), 5)
                }
                0xF4 => {
                    need(9)?;
                    let v = i64::from_le_bytes(lp[p + 1..p + 9].try_into().unwrap());
                    (int(v, &mut buf), 9)
                }
                _ => return Err(BAD),
            }
        };
        out.push(entry);
        // The back-length: the entry's size in 7-bit groups, 1 to 5 bytes.
        let back = match len {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        };
        p += len + back;
    }
    if p + 1 != lp.len() {
        return Err(BAD);
    }
    let declared = u16::from_le_bytes([lp[4], lp[5]]);
    if declared != u16::MAX && declared as usize != out.len() {
        return Err(BAD);
    }
    Ok(out)
}

/// Largest string an LZF blob may expand to (Redis's proto-max-bulk-len default).
const MAX_LZF_OUT: u64 = 512 * 1024 * 1024;

/// LZF decompression (the format of Marc Lehmann's liblzf, which Redis uses).
fn lzf_decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>> {
    const BAD: RdbError = RdbError::Format("bad LZF data");
    let mut out: Vec<u8> = Vec::with_capacity(out_len.min(input.len() * 64));
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if i + n > input.len() || out.len() + n > out_len {
                return Err(BAD);
            }
            out.extend_from_slice(&input[i..i + n]);
            i += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += *input.get(i).ok_or(BAD)? as usize;
                i += 1;
            }
            n += 2;
            let back = ((ctrl & 0x1F) << 8) + *input.get(i).ok_or(BAD)? as usize + 1;
            i += 1;
            if back > out.len() || out.len() + n > out_len {
                return Err(BAD);
            }
            let start = out.len() - back;
            for k in 0..n {
                let c = out[start + k];
                out.push(c);
            }
        }
    }
    if out.len() != out_len {
        return Err(BAD);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CRC-64 (Jones polynomial, reflected, as Redis's crc64.c)

const CRC64_POLY_REFLECTED: u64 = 0x95AC_9329_AC4B_C9B5;

const fn crc64_table() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ CRC64_POLY_REFLECTED
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC64_TABLE: [u64; 256] = crc64_table();

/// Redis's `crc64(crc, data)`.
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    for &b in data {
        crc = CRC64_TABLE[((crc ^ b as u64) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::redis_defaults()
    }

    #[test]
    fn crc64_matches_redis_test_vector() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn dump_of_a_small_string_is_byte_identical_to_redis() {
        // redis-cli DUMP of "hello" (Redis 7.0): type 0, length 5, version 10, CRC-64.
        let payload = dump(&Value::from_bytes(b"hello"));
        assert_eq!(&payload[..9], b"\x00\x05hello\x0a\x00");
        assert_eq!(restore(&payload, &lim()).unwrap().type_name(), "string");
        // An integer uses the int8 string encoding, as Redis's DUMP of "1" does: "\x00\xc0\x01".
        assert_eq!(&dump(&Value::Int(1))[..3], b"\x00\xc0\x01");
    }

    #[test]
    fn every_type_round_trips() {
        let l = lim();
        let mut list = List::new();
        for i in 0..300 {
            list.push_back(format!("item-{i}").as_bytes(), -2);
        }
        let mut h = Hash::default();
        for i in 0..200 {
            h.set(format!("f{i}").as_bytes(), b"v", l.hash);
        }
        let mut s = Set::for_first(b"1");
        for m in ["1", "2", "-70000", "x"] {
            s.add(m.as_bytes(), 512);
        }
        let z = ZSet::from_items(
            &[
                (Sds::new(b"a"), 1.5),
                (Sds::new(b"b"), f64::INFINITY),
                (Sds::new(b"c"), -3.0),
            ],
            l.zset,
        );
        let values = [
            Value::from_bytes(b"plain text"),
            Value::Int(i64::MIN),
            Value::Int(123456),
            Value::List(Box::new(list)),
            Value::Hash(h),
            Value::Set(s),
            Value::ZSet(z),
        ];
        // Compared as sorted element lists: hashtable iteration order may change on reload.
        let canon = |v: &Value| {
            let mut body = Vec::new();
            write_value(&mut body, v);
            let mut r = Reader::new(&body[1..]);
            let mut items: Vec<Vec<u8>> = match body[0] {
                TYPE_STRING => vec![r.string().unwrap()],
                TYPE_ZSET_2 => (0..r.len().unwrap())
                    .map(|_| {
                        let mut m = r.string().unwrap();
                        m.extend_from_slice(&r.double_bin().unwrap().to_le_bytes());
                        m
                    })
                    .collect(),
                TYPE_HASH => (0..r.len().unwrap())
                    .map(|_| [r.string().unwrap(), r.string().unwrap()].concat())
                    .collect(),
                _ => (0..r.len().unwrap()).map(|_| r.string().unwrap()).collect(),
            };
            if body[0] != TYPE_LIST {
                items.sort();
            }
            (body[0], items)
        };
        for v in values {
            let back = restore(&dump(&v), &l).unwrap();
            assert_eq!(canon(&back), canon(&v), "{}", v.type_name());
        }
    }

    #[test]
    fn bad_checksum_version_and_truncation_are_refused() {
        let mut p = dump(&Value::from_bytes(b"hello"));
        let n = p.len();
        p[n - 1] ^= 1;
        assert_eq!(restore(&p, &lim()).err(), Some(RdbError::Checksum));
        let mut p = dump(&Value::from_bytes(b"hello"));
        p[n - 10] = 11; // RDB version 11
        assert_eq!(restore(&p, &lim()).err(), Some(RdbError::Checksum));
        // A zero checksum is checked like any other (Redis 7.0).
        let mut p = dump(&Value::from_bytes(b"hello"));
        p[n - 8..].fill(0);
        assert_eq!(restore(&p, &lim()).err(), Some(RdbError::Checksum));
        // A body cut short, with its checksum: a format error, no panic.
        let body = sealed(vec![TYPE_LIST, 3, 1, b'a']);
        assert!(matches!(restore(&body, &lim()), Err(RdbError::Format(_))));
    }

    /// `body` with the version and checksum a DUMP payload ends with.
    fn sealed(mut body: Vec<u8>) -> Vec<u8> {
        body.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64(0, &body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    #[test]
    fn reads_redis_listpack_intset_and_lzf_encodings() {
        // A listpack with "a", 5, -1000 and a 13-bit int.
        let mut lp = vec![0u8; 6];
        lp.extend_from_slice(&[0x81, b'a', 2]); // 6-bit string
        lp.extend_from_slice(&[5, 1]); // 7-bit uint
        lp.extend_from_slice(&[0xF1, 0x18, 0xFC, 3]); // int16 -1000
        lp.extend_from_slice(&[0xDF, 0xFF, 2]); // 13-bit int -1
        lp.push(0xFF);
        let total = lp.len() as u32;
        lp[0..4].copy_from_slice(&total.to_le_bytes());
        lp[4..6].copy_from_slice(&4u16.to_le_bytes());
        assert_eq!(
            listpack_entries(&lp).unwrap(),
            vec![
                b"a".to_vec(),
                b"5".to_vec(),
                b"-1000".to_vec(),
                b"-1".to_vec()
            ]
        );
        let mut is = Vec::new();
        is.extend_from_slice(&2u32.to_le_bytes());
        is.extend_from_slice(&2u32.to_le_bytes());
        is.extend_from_slice(&(-3i16).to_le_bytes());
        is.extend_from_slice(&7i16.to_le_bytes());
        assert_eq!(
            intset_members(&is).unwrap(),
            vec![b"-3".to_vec(), b"7".to_vec()]
        );
        // LZF: a literal run "ab" then a back-reference copying 4 bytes from 2 back.
        assert_eq!(
            lzf_decompress(&[0x01, b'a', b'b', 0x40, 0x01], 6).unwrap(),
            b"ababab".to_vec()
        );
        assert!(lzf_decompress(&[0x40, 0x05], 3).is_err());
    }

    #[test]
    fn hostile_lengths_do_not_allocate_or_panic() {
        let mut body = vec![TYPE_SET, 0x81];
        body.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(restore(&sealed(body), &lim()).is_err());
        for len in 0..40 {
            let p = dump(&Value::from_bytes(b"some value that is long enough"));
            let _ = restore(&sealed(p[..len.min(p.len())].to_vec()), &lim());
        }
    }
}
