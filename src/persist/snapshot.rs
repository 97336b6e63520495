//! Snapshots: a point-in-time image of the keyspace, and the file it is written to.
//!
//! Consistency without fork: [`Image::capture`] locks every shard at once (the order every
//! command uses, so it cannot deadlock), clones their contents (a memory copy, no I/O) and
//! releases them; encoding and writing then run on a blocking thread with no lock held, while
//! clients keep writing. The image is exactly the keyspace at that instant. A log rewrite marks
//! its tail in the same critical section (see `aof::Aof::begin_rewrite`), so base + tail replay
//! every write once. The price is the clone: memory for a second copy while the job runs (as a
//! fork's copy-on-write can cost) and a pause of the clone's length.
//!
//! File: the 8-byte magic [`MAGIC`], then framed records ([`super::format`], crc32 each):
//! - `META` (1): `ctime_ms: u64`, `keys: u64`, then the writer's version as text;
//! - `POSITION` (3), optional: the replication stream the image is, as the log's record of that
//!   kind (Redis's RDB `repl-id`/`repl-offset`), so a restarted replica continues from there;
//! - `ENTRIES` (2): `db: u32` then entries, about 1 MB per record;
//! - `FUNCTIONS` (6), first when there are function libraries: their FUNCTION DUMP payload;
//! - `PINS` (4), after the entries when a slot move has keys pinned: as the log's record of that
//!   kind, so a restart (or a replica's full sync) keeps them;
//! - `END` (255): `records: u64` before it, `keys: u64`. A file without END is refused.
//!
//! An entry is Redis's RDB key/value entry: optional `0xFC` + expiry in unix ms (u64 LE), the
//! RDB type byte, the key as an RDB string, the value's RDB payload ([`crate::store::rdb`]: the
//! encoding DUMP/RESTORE use).

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::store::rdb::{self, Limits};
use crate::store::{Keyspace, Sds, Store, Value};

use super::format::{self, Cursor, Next, Reader, Short, put_u32};

pub const MAGIC: &[u8; 8] = b"RRSNAP1\n";
const KIND_META: u8 = 1;
pub const KIND_ENTRIES: u8 = 2;
const KIND_POSITION: u8 = super::aof::KIND_POSITION;
const KIND_PINS: u8 = super::aof::KIND_PINS;
const KIND_FUNCTIONS: u8 = super::aof::KIND_FUNCTIONS;
const KIND_END: u8 = 255;
const RDB_OPCODE_EXPIRETIME_MS: u8 = rdb::OPCODE_EXPIRETIME_MS;
/// Target size of one ENTRIES record.
const SECTION_BYTES: usize = 1 << 20;

/// One key of an image.
pub struct Item {
    pub key: Sds,
    pub value: Value,
    pub expire_at_ms: Option<i64>,
}

/// The keyspace at one instant, per db.
pub struct Image {
    pub dbs: Vec<Vec<Item>>,
    /// The replication stream the keyspace is at that instant: (replication ID, offset).
    pub position: Option<(String, u64)>,
    /// Keys pinned by a slot move at that instant (`crate::store::Shard::pinned`).
    pub pins: Vec<Vec<u8>>,
    /// The function libraries (their FUNCTION DUMP payload), if there are any.
    pub functions: Option<Vec<u8>>,
}

/// What loading a snapshot found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub keys: u64,
    /// Keys skipped because their TTL had passed.
    pub expired: u64,
    pub position: Option<(String, u64)>,
    /// The function libraries' FUNCTION DUMP payload, for the caller to load.
    pub functions: Option<Vec<u8>>,
}

impl Image {
    /// Copies the keyspace with every shard locked; `at_cut` runs inside the same critical
    /// section (a rewrite starts its tail there).
    pub fn capture(store: &Store, at_cut: impl FnOnce()) -> Image {
        let mut ks = store.lock_all(0);
        let image = Image::from_locked(&mut ks, store.databases());
        at_cut();
        drop(ks);
        image
    }

    /// [`Image::capture`] of a node's keyspace with its function libraries, read at the same
    /// instant.
    pub fn capture_node(node: &crate::node::Node, at_cut: impl FnOnce()) -> Image {
        let mut functions = None;
        let mut image = Image::capture(&node.store, || {
            functions = crate::commands::functions::dump_all(node);
            at_cut();
        });
        image.functions = functions;
        image
    }

    /// The keyspace `ks` holds (every shard), copied.
    pub fn from_locked(ks: &mut Keyspace, databases: usize) -> Image {
        let mut dbs: Vec<Vec<Item>> = (0..databases).map(|_| Vec::new()).collect();
        let mut pins = Vec::new();
        for (_, shard) in ks.shards_mut() {
            pins.extend(shard.pinned.iter().cloned());
            for (i, db) in shard.dbs.iter().enumerate() {
                for e in db.keys.iter() {
                    let expire_at_ms = if e.has_expire() {
                        db.expires.get(&e.key).map(|x| x.at_ms)
                    } else {
                        None
                    };
                    dbs[i].push(Item {
                        key: e.key.clone(),
                        value: e.value.clone(),
                        expire_at_ms,
                    });
                }
            }
        }
        Image {
            dbs,
            position: None,
            pins,
            functions: None,
        }
    }

    pub fn keys(&self) -> usize {
        self.dbs.iter().map(Vec::len).sum()
    }
}

/// Appends one entry in RDB's key/value form. `scratch` is reused between calls: the value is
/// encoded there (type byte first), since RDB puts the key between the type and the body.
pub fn encode_entry(out: &mut Vec<u8>, item: &Item, scratch: &mut Vec<u8>) {
    encode_parts(out, &item.key, &item.value, item.expire_at_ms, scratch);
}

/// [`encode_entry`] from borrowed parts.
pub fn encode_parts(
    out: &mut Vec<u8>,
    key: &[u8],
    value: &Value,
    expire_at_ms: Option<i64>,
    scratch: &mut Vec<u8>,
) {
    if let Some(at) = expire_at_ms {
        out.push(RDB_OPCODE_EXPIRETIME_MS);
        out.extend_from_slice(&(at as u64).to_le_bytes());
    }
    scratch.clear();
    rdb::write_value(scratch, value);
    out.push(scratch[0]);
    rdb::write_string(out, key);
    out.extend_from_slice(&scratch[1..]);
}

/// Decodes one entry.
pub fn decode_entry(c: &mut Cursor, lim: &Limits) -> Result<Item, Short> {
    let mut b = c.u8()?;
    let mut expire_at_ms = None;
    if b == RDB_OPCODE_EXPIRETIME_MS {
        expire_at_ms = Some(c.u64()? as i64);
        b = c.u8()?;
    }
    let rest = c.rest();
    let mut r = rdb::Reader::new(rest);
    let key = r.string().map_err(|_| Short)?;
    let value = r.object(b, lim).map_err(|_| Short)?;
    let used = rest.len() - r.remaining();
    c.bytes(used)?;
    Ok(Item {
        key: Sds::from_vec(key),
        value,
        expire_at_ms,
    })
}

/// Writes `image` as ENTRIES records (the body of a snapshot and the base of a rewritten log).
/// Returns the number of records written.
pub fn write_entries(w: &mut impl Write, image: &Image) -> std::io::Result<u64> {
    let mut records = 0;
    let mut payload = Vec::with_capacity(SECTION_BYTES + 4096);
    let mut framed = Vec::with_capacity(SECTION_BYTES + 4096);
    if let Some(f) = &image.functions {
        payload.push(KIND_FUNCTIONS);
        payload.extend_from_slice(f);
        format::write_record(&mut framed, &payload);
        w.write_all(&framed)?;
        records += 1;
    }
    let mut scratch = Vec::new();
    for (db, items) in image.dbs.iter().enumerate() {
        let start = |p: &mut Vec<u8>| {
            p.clear();
            p.push(KIND_ENTRIES);
            put_u32(p, db as u32);
        };
        start(&mut payload);
        let mut n = 0;
        for item in items {
            encode_entry(&mut payload, item, &mut scratch);
            n += 1;
            if payload.len() >= SECTION_BYTES {
                framed.clear();
                format::write_record(&mut framed, &payload);
                w.write_all(&framed)?;
                records += 1;
                start(&mut payload);
                n = 0;
            }
        }
        if n > 0 {
            framed.clear();
            format::write_record(&mut framed, &payload);
            w.write_all(&framed)?;
            records += 1;
        }
    }
    if !image.pins.is_empty() {
        payload.clear();
        payload.push(KIND_PINS);
        super::aof::encode_keys(&mut payload, &image.pins);
        framed.clear();
        format::write_record(&mut framed, &payload);
        w.write_all(&framed)?;
        records += 1;
    }
    Ok(records)
}

/// Writes a whole snapshot file to `path` (temp file, fsync, rename, fsync of the directory).
/// Writes `image` to `path` (atomically); the size written, or None when a newer snapshot took
/// its place meanwhile (`order`: see `write_atomically_in_order`).
pub fn write_file(
    path: &Path,
    image: &Image,
    now_ms: i64,
    order: Option<(&parking_lot::Mutex<u64>, u64)>,
) -> std::io::Result<Option<u64>> {
    let mut size = 0;
    let placed = super::write_atomically_in_order(
        path,
        |f| {
            let mut w = BufWriter::with_capacity(1 << 20, f);
            w.write_all(MAGIC)?;
            let mut meta = vec![KIND_META];
            meta.extend_from_slice(&(now_ms as u64).to_le_bytes());
            meta.extend_from_slice(&(image.keys() as u64).to_le_bytes());
            meta.extend_from_slice(concat!("reredis ", env!("CARGO_PKG_VERSION")).as_bytes());
            let mut framed = Vec::new();
            format::write_record(&mut framed, &meta);
            w.write_all(&framed)?;
            let mut records = 1;
            if let Some((id, offset)) = &image.position {
                let mut p = vec![KIND_POSITION];
                super::aof::encode_position(&mut p, id, *offset);
                framed.clear();
                format::write_record(&mut framed, &p);
                w.write_all(&framed)?;
                records += 1;
            }
            records += write_entries(&mut w, image)?;
            let mut end = vec![KIND_END];
            end.extend_from_slice(&records.to_le_bytes());
            end.extend_from_slice(&(image.keys() as u64).to_le_bytes());
            framed.clear();
            format::write_record(&mut framed, &end);
            w.write_all(&framed)?;
            w.flush()?;
            size = w.get_ref().metadata()?.len();
            Ok(())
        },
        order,
    )?;
    Ok(placed.then_some(size))
}

/// Why a file could not be loaded: what, in which file, at which byte.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {what} at offset {offset}")]
pub struct BadFile {
    pub file: String,
    pub offset: u64,
    pub what: String,
}

/// Inserts the entries of an ENTRIES payload (after its kind byte) into `store`. Keys whose TTL
/// already passed are skipped when `skip_expired_before` is set. Returns (loaded, expired).
pub fn load_entries(
    payload: &[u8],
    store: &Store,
    lim: &Limits,
    skip_expired_before: Option<i64>,
) -> Result<(u64, u64), Short> {
    let (mut loaded, mut expired) = (0, 0);
    for_each_entry(payload, store.databases(), lim, |db, item| {
        if let (Some(now), Some(at)) = (skip_expired_before, item.expire_at_ms)
            && at <= now
        {
            expired += 1;
            return Ok(());
        }
        let mut ks = store.lock_keys(&[&item.key[..]], 0);
        ks.set(db, &item.key, item.value, item.expire_at_ms, false)
            .map_err(|_| Short)?;
        loaded += 1;
        Ok(())
    })?;
    Ok((loaded, expired))
}

/// Decodes an ENTRIES payload (of one of `databases` dbs), giving each entry to `f`.
pub fn for_each_entry(
    payload: &[u8],
    databases: usize,
    lim: &Limits,
    mut f: impl FnMut(usize, Item) -> Result<(), Short>,
) -> Result<(), Short> {
    let mut c = Cursor::new(payload);
    let db = c.u32()? as usize;
    if db >= databases {
        return Err(Short);
    }
    while !c.is_empty() {
        f(db, decode_entry(&mut c, lim)?)?;
    }
    Ok(())
}

/// Loads a snapshot file into `store`, skipping keys whose TTL passed before
/// `skip_expired_before` when set (a replica keeps them: its master deletes them in its stream).
pub fn load_file(
    path: &Path,
    store: &Store,
    lim: &Limits,
    skip_expired_before: Option<i64>,
    progress: &dyn Fn(u64),
) -> Result<Loaded, BadFile> {
    let file_name = path.display().to_string();
    let bad = |offset: u64, what: &str| BadFile {
        file: file_name.clone(),
        offset,
        what: what.to_string(),
    };
    let f = std::fs::File::open(path).map_err(|e| bad(0, &format!("cannot open: {e}")))?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut magic = [0u8; 8];
    std::io::Read::read_exact(&mut r, &mut magic).map_err(|_| bad(0, "not a snapshot file"))?;
    if &magic != MAGIC {
        return Err(bad(0, "not a reredis snapshot (bad magic)"));
    }
    let mut reader = Reader::new(r, 8);
    let (mut loaded, mut expired, mut records) = (0u64, 0u64, 0u64);
    let mut position = None;
    let mut functions = None;
    loop {
        let at = reader.offset;
        let rec = match reader.next_record() {
            Ok(Next::Record(p)) => p,
            Ok(Next::End) | Ok(Next::Truncated) => {
                return Err(bad(at, "snapshot ends before its END record (truncated)"));
            }
            Ok(Next::Corrupt(why)) => return Err(bad(at, why)),
            Err(e) => return Err(bad(at, &format!("read error: {e}"))),
        };
        progress(reader.offset);
        match rec.first() {
            Some(&KIND_META) => {}
            Some(&KIND_POSITION) => {
                let p = super::aof::decode_position(&mut Cursor::new(&rec[1..]))
                    .map_err(|_| bad(at, "bad POSITION record"))?;
                position = Some(p);
            }
            Some(&KIND_ENTRIES) => {
                let (l, e) = load_entries(&rec[1..], store, lim, skip_expired_before)
                    .map_err(|_| bad(at, "undecodable entry"))?;
                loaded += l;
                expired += e;
            }
            Some(&KIND_PINS) => {
                super::apply_keys_record(store, KIND_PINS, &rec[1..])
                    .map_err(|_| bad(at, "bad PINS record"))?;
            }
            Some(&KIND_FUNCTIONS) => functions = Some(rec[1..].to_vec()),
            Some(&KIND_END) => {
                let mut c = Cursor::new(&rec[1..]);
                let want_records = c.u64().map_err(|_| bad(at, "bad END record"))?;
                let want_keys = c.u64().map_err(|_| bad(at, "bad END record"))?;
                if want_records != records || want_keys != loaded + expired {
                    return Err(bad(at, "END record does not match the contents"));
                }
                if !matches!(reader.next_record(), Ok(Next::End)) {
                    return Err(bad(reader.offset, "data after the END record"));
                }
                return Ok(Loaded {
                    keys: loaded,
                    expired,
                    position,
                    functions,
                });
            }
            _ => return Err(bad(at, "unknown record kind")),
        }
        records += 1;
    }
}
