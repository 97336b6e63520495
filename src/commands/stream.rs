//! Stream commands: XADD XRANGE XREVRANGE XLEN XDEL XTRIM XSETID XREAD XREADGROUP XGROUP XACK
//! XPENDING XCLAIM XAUTOCLAIM XINFO, with Redis 7.0's replies and errors (`t_stream.c`).
//!
//! What reaches the log and replicas is what Redis propagates: XADD with the ID it generated
//! and an approximate trim made exact; XREADGROUP, XCLAIM and XAUTOCLAIM as one `XCLAIM ...
//! FORCE JUSTID` per entry (with its delivery time and count) and `XGROUP SETID` for the
//! group's position, so a replay gets the same pending entries without the clock.

use bytes::Bytes;
use smallvec::SmallVec;

use super::Ctx;
use super::args::eq_ic;
use super::blocking::{self, DenyReply};
use super::error::{CmdError, CmdResult};
use super::table::*;
use super::{reply_help, subcommand_syntax_error};
use crate::commands::flags::*;
use crate::observe::events::class;
use crate::resp::Reply;
use crate::store::stream::{ENTRIES_READ_INVALID, Group, Item, Stream, StreamId, Trim};
use crate::store::value::parse_i64_strict;
use crate::store::{Keyspace, Value};

const INVALID_ID: &str = "Invalid stream ID specified as stream command argument";
/// Entries a blocked XREAD without COUNT gets when woken (`XREAD_BLOCKED_DEFAULT_COUNT`).
const BLOCKED_DEFAULT_COUNT: usize = 1000;

fn pick(v: &mut Value) -> Option<&mut Stream> {
    match v {
        Value::Stream(s) => Some(s),
        _ => None,
    }
}

fn stream_read<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut Stream>, CmdError> {
    super::typed(ks.lookup_read(db, key)?, pick)
}

fn stream_write<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut Stream>, CmdError> {
    super::typed(ks.lookup_write(db, key)?, pick)
}

fn ll(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64_strict(arg).ok_or(CmdError::NotInteger)
}

fn ll_or(arg: &[u8], msg: &str) -> Result<i64, CmdError> {
    parse_i64_strict(arg).ok_or_else(|| CmdError::err(msg))
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn id_arg(id: StreamId) -> Bytes {
    Bytes::from(id.to_bytes())
}

// ---------------------------------------------------------------------------------------------
// IDs

/// C's `strtoull` over a whole string, as Redis's `string2ull` falls back to it: leading
/// spaces, a sign (a minus negates, wrapping), at least one digit, nothing after.
fn strtoull(s: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if i >= s.len() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[i..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Redis's `string2ull`: a strict signed integer that is not negative, else `strtoull`.
fn string2ull(s: &[u8]) -> Option<u64> {
    match parse_i64_strict(s) {
        Some(v) if v < 0 => None,
        Some(v) => Some(v as u64),
        None => strtoull(s),
    }
}

/// `streamGenericParseIDOrReply`: `-`, `+` (unless `strict`), `<ms>`, `<ms>-<seq>`, and with
/// `seq_star` `<ms>-*`. Returns the ID and whether the sequence was given.
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    seq_star: bool,
) -> Result<(StreamId, bool), CmdError> {
    let invalid = || CmdError::err(INVALID_ID);
    if arg.len() > 127 {
        return Err(invalid());
    }
    // A C string: it ends at the first NUL.
    let s = &arg[..memchr::memchr(0, arg).unwrap_or(arg.len())];
    if strict && (s == b"-" || s == b"+") {
        return Err(invalid());
    }
    if s == b"-" {
        return Ok((StreamId::MIN, true));
    }
    if s == b"+" {
        return Ok((StreamId::MAX, true));
    }
    match memchr::memchr(b'-', s) {
        Some(dash) => {
            let ms = string2ull(&s[..dash]).ok_or_else(invalid)?;
            let rest = &s[dash + 1..];
            if seq_star && rest == b"*" {
                return Ok((StreamId::new(ms, 0), false));
            }
            let seq = string2ull(rest).ok_or_else(invalid)?;
            Ok((StreamId::new(ms, seq), true))
        }
        None => {
            let ms = string2ull(s).ok_or_else(invalid)?;
            Ok((StreamId::new(ms, missing_seq), true))
        }
    }
}

fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    parse_id_full(arg, missing_seq, false, false).map(|(id, _)| id)
}

fn parse_strict_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    parse_id_full(arg, missing_seq, true, false).map(|(id, _)| id)
}

/// A range bound (`streamParseIntervalIDOrReply`): `(` makes it exclusive.
fn interval_id(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), CmdError> {
    if arg.len() > 1 && arg[0] == b'(' {
        Ok((parse_strict_id(&arg[1..], missing_seq)?, true))
    } else {
        Ok((parse_id(arg, missing_seq)?, false))
    }
}

fn range_start(arg: &[u8]) -> Result<StreamId, CmdError> {
    let (id, ex) = interval_id(arg, 0)?;
    if ex {
        id.incr()
            .ok_or_else(|| CmdError::err("invalid start ID for the interval"))
    } else {
        Ok(id)
    }
}

fn range_end(arg: &[u8]) -> Result<StreamId, CmdError> {
    let (id, ex) = interval_id(arg, u64::MAX)?;
    if ex {
        id.decr()
            .ok_or_else(|| CmdError::err("invalid end ID for the interval"))
    } else {
        Ok(id)
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

fn reply_id(out: &mut Reply, id: StreamId) {
    // `<ms>-<seq>` formatted on the stack: at most 20 + 1 + 20 bytes.
    let mut buf = [0u8; 41];
    let (mut a, mut b) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (ms, seq) = (a.format(id.ms).as_bytes(), b.format(id.seq).as_bytes());
    buf[..ms.len()].copy_from_slice(ms);
    buf[ms.len()] = b'-';
    buf[ms.len() + 1..ms.len() + 1 + seq.len()].copy_from_slice(seq);
    out.bulk(&buf[..ms.len() + 1 + seq.len()]);
}

fn reply_item(out: &mut Reply, it: &Item) {
    out.array(2);
    reply_id(out, it.id);
    out.array(it.data.len());
    for d in it.data.iter() {
        out.bulk(d);
    }
}

fn reply_items(out: &mut Reply, items: &[&Item]) {
    out.array(items.len());
    for it in items {
        reply_item(out, it);
    }
}

// ---------------------------------------------------------------------------------------------
// XADD, XTRIM

/// MAXLEN/MINID/LIMIT (and for XADD NOMKSTREAM and the ID), as `streamParseAddOrTrimArgsOrReply`.
struct AddTrim {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    /// Index of the trim threshold argument (its `~`/`=` is just before it, when given).
    trim_arg: usize,
    id: Option<StreamId>,
    seq_given: bool,
    no_mkstream: bool,
    /// Index of the ID argument (XADD).
    id_pos: usize,
}

fn parse_add_trim(ctx: &Ctx, args: &[Bytes], xadd: bool) -> Result<AddTrim, CmdError> {
    let mut a = AddTrim {
        trim: None,
        approx: false,
        limit: 0,
        trim_arg: 0,
        id: None,
        seq_given: true,
        no_mkstream: false,
        id_pos: 0,
    };
    let mut limit_given = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i][..];
        if xadd && opt == b"*" {
            break;
        } else if (eq_ic(opt, "maxlen") || eq_ic(opt, "minid")) && more > 0 {
            if a.trim.is_some() {
                return Err(CmdError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            a.approx = false;
            let next = &args[i + 1][..];
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if eq_ic(opt, "maxlen") {
                let n = ll(&args[i + 1])?;
                if n < 0 {
                    return Err(CmdError::err("The MAXLEN argument must be >= 0."));
                }
                a.trim = Some(Trim::MaxLen(n as u64));
            } else {
                a.trim = Some(Trim::MinId(parse_strict_id(&args[i + 1], 0)?));
            }
            i += 1;
            a.trim_arg = i;
        } else if eq_ic(opt, "limit") && more > 0 {
            let n = ll(&args[i + 1])?;
            if n < 0 {
                return Err(CmdError::err("The LIMIT argument must be >= 0."));
            }
            a.limit = n as u64;
            limit_given = true;
            i += 1;
        } else if xadd && eq_ic(opt, "nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            let (id, seq_given) = parse_id_full(opt, 0, true, true)?;
            a.id = Some(id);
            a.seq_given = seq_given;
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    a.id_pos = i;
    // (LIMIT 0 is as good as none, here and below: Redis tests the value.)
    if a.limit != 0 && a.trim.is_none() {
        return Err(CmdError::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && a.trim.is_none() {
        return Err(CmdError::err(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if ctx.client.obeyed {
        // A master's stream and the log carry exact thresholds (see `exact_trim_args`; a
        // Redis master keeps its LIMIT there): no cap on the work.
        a.limit = 0;
    } else if limit_given {
        if !a.approx {
            return Err(CmdError::err(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if a.approx {
        // At most 100 nodes' worth, capped on both sides as Redis does.
        let per_node = ctx.node.store.stream_limits.get().max_entries as u64;
        a.limit = per_node.saturating_mul(100);
        if a.limit == 0 {
            a.limit = 10_000;
        }
        a.limit = a.limit.min(1_000_000);
    }
    Ok(a)
}

/// The logged form of a command that trimmed approximately: `~` becomes `=`, the threshold
/// what the trim left (so a replay removes the same entries), LIMIT goes.
fn exact_trim_args(args: &[Bytes], a: &AddTrim, s: &Stream) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if i + 1 == a.trim_arg && &args[i][..] == b"~" {
            out.push(b("="));
        } else if i == a.trim_arg {
            out.push(match a.trim {
                Some(Trim::MaxLen(_)) => Bytes::from(s.len().to_string()),
                // An emptied stream: a threshold above every ID, so the replay empties it too
                // (Redis's streamGetEdgeID on an empty stream).
                _ => id_arg(s.edge_id(true).unwrap_or(StreamId::MAX)),
            });
        } else if i >= 2 && i < a.id_pos && eq_ic(&args[i], "limit") {
            // The parser took LIMIT only with its value after it.
            i += 2;
            continue;
        } else {
            out.push(args[i].clone());
        }
        i += 1;
    }
    out
}

/// Adds XADD's entry to `s`: its ID, or Redis's error for the ID or the size.
fn add_entry(
    s: &mut Stream,
    a: &AddTrim,
    fields: &[Bytes],
    now: u64,
    lim: crate::store::stream::NodeLimits,
) -> Result<StreamId, CmdError> {
    if s.last_id == StreamId::MAX {
        return Err(CmdError::err(
            "The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    // `<ms>-*` past the last sequence of that millisecond: redis-server 7.0.15 answers with its
    // message for oversized elements here (tests/differential/stream.txt).
    if let Some(want) = a.id
        && !a.seq_given
        && want.ms == s.last_id.ms
        && s.last_id.seq == u64::MAX
    {
        return Err(CmdError::err("Elements are too large to be stored"));
    }
    let Some(id) = s.next_id(a.id, a.seq_given, now) else {
        return Err(CmdError::err(
            "The ID specified in XADD is equal or smaller than the target stream top item",
        ));
    };
    let total: usize = fields.iter().map(|f| f.len()).sum();
    if total > crate::store::stream::LISTPACK_MAX {
        return Err(CmdError::err("Elements are too large to be stored"));
    }
    s.append(id, fields, lim);
    Ok(id)
}

pub fn xadd(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let a = parse_add_trim(ctx, args, true)?;
    let field_pos = a.id_pos + 1;
    if args.len() < field_pos + 2 || (args.len() - field_pos) % 2 == 1 {
        return Err(CmdError::Arity("xadd".into()));
    }
    if a.seq_given && a.id == Some(StreamId::MIN) {
        return Err(CmdError::err(
            "The ID specified in XADD must be greater than 0-0",
        ));
    }
    let db = ctx.client.db;
    let key = &args[1];
    let lim = ctx.node.store.stream_limits.get();
    let now = ctx.now_ms.max(0) as u64;
    let fields = &args[field_pos..];
    let id = match stream_write(ks, db, key)? {
        Some(s) => add_entry(s, &a, fields, now, lim)?,
        None if a.no_mkstream => {
            ctx.out.null();
            ctx.log_as = Some(Vec::new());
            return Ok(());
        }
        None => {
            // The stream exists from here, even if the entry is refused (as in Redis).
            let mut s = Box::<Stream>::default();
            let added = add_entry(&mut s, &a, fields, now, lim);
            ks.set(db, key, Value::Stream(s), None, false)?;
            added?
        }
    };
    reply_id(&mut ctx.out, id);
    ctx.signal_modified(key);
    ctx.notify(class::STREAM, "xadd", key);
    ctx.dirty(1);
    // What the log gets is built only when there is a log (or a replica) to get it.
    let logging = ctx.node.store.aof.is_recording();
    let mut logged: Option<Vec<Bytes>> = None;
    if let Some(trim) = a.trim {
        let s = stream_write(ks, db, key)?.expect("stream");
        if s.trim(trim, a.approx, a.limit) > 0 {
            ctx.notify(class::STREAM, "xtrim", key);
        }
        if a.approx && logging {
            logged = Some(exact_trim_args(args, &a, s));
        }
    }
    if logging && (a.id.is_none() || !a.seq_given) {
        let mut l = logged.unwrap_or_else(|| args.to_vec());
        // LIMIT pairs dropped before the ID move it left.
        let pos = l.len() - (args.len() - a.id_pos);
        l[pos] = id_arg(id);
        logged = Some(l);
    }
    if logged.is_some() {
        ctx.log_as = logged;
    }
    ctx.node.store.blocked.signal_all(db, key);
    Ok(())
}

pub fn xtrim(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let a = parse_add_trim(ctx, args, false)?;
    let db = ctx.client.db;
    let key = &args[1];
    let Some(s) = stream_write(ks, db, key)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let trimmed = s.trim(a.trim.expect("checked"), a.approx, a.limit);
    if a.approx {
        ctx.log_as = Some(if trimmed > 0 {
            exact_trim_args(args, &a, s)
        } else {
            Vec::new()
        });
    }
    if trimmed > 0 {
        ctx.signal_modified(key);
        ctx.notify(class::STREAM, "xtrim", key);
        ctx.dirty(trimmed);
    }
    ctx.out.int(trimmed as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XRANGE, XREVRANGE, XLEN, XDEL, XSETID

fn range_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], rev: bool) -> CmdResult {
    let (sa, ea) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = range_start(sa)?;
    let end = range_end(ea)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if eq_ic(&args[j], "COUNT") && j + 1 < args.len() {
            count = ll(&args[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some(s) = stream_read(ks, ctx.client.db, &args[1])? else {
        ctx.out.array(0);
        return Ok(());
    };
    if count == 0 {
        ctx.out.null_array();
        return Ok(());
    }
    let items = s.range(start, end, rev, count.max(0) as usize);
    reply_items(&mut ctx.out, &items);
    Ok(())
}

pub fn xrange(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    range_generic(ctx, ks, args, false)
}

pub fn xrevrange(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    range_generic(ctx, ks, args, true)
}

pub fn xlen(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = stream_read(ks, ctx.client.db, &args[1])?.map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn xdel(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let Some(s) = stream_write(ks, db, &args[1])? else {
        ctx.out.int(0);
        return Ok(());
    };
    let ids = args[2..]
        .iter()
        .map(|a| parse_strict_id(a, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut deleted = 0;
    let mut first_entry = false;
    for id in ids {
        if !first_entry && id == s.first_id {
            first_entry = true;
        }
        if s.delete(id) {
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.is_empty() {
            s.first_id = StreamId::MIN;
        } else if first_entry {
            s.first_id = s.edge_id(true).unwrap_or(StreamId::MAX);
        }
        ctx.signal_modified(&args[1]);
        ctx.notify(class::STREAM, "xdel", &args[1]);
        ctx.dirty(deleted);
    }
    ctx.out.int(deleted as i64);
    Ok(())
}

pub fn xsetid(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let id = parse_strict_id(&args[2], 0)?;
    let mut entries_added: Option<i64> = None;
    let mut max_xdel: Option<StreamId> = None;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if eq_ic(&args[i], "ENTRIESADDED") && more > 0 {
            let n = ll(&args[i + 1])?;
            if n < 0 {
                return Err(CmdError::err("entries_added must be positive"));
            }
            entries_added = Some(n);
            i += 2;
        } else if eq_ic(&args[i], "MAXDELETEDID") && more > 0 {
            let m = parse_strict_id(&args[i + 1], 0)?;
            if id < m {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_xdel = Some(m);
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let db = ctx.client.db;
    let Some(s) = stream_write(ks, db, &args[1])? else {
        return Err(CmdError::NoSuchKey);
    };
    if !s.is_empty() {
        if id < s.last_valid_id() {
            return Err(CmdError::err(
                "The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if let Some(n) = entries_added
            && (s.len() as i64) > n
        {
            return Err(CmdError::err(
                "The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    s.last_id = id;
    if let Some(n) = entries_added {
        s.entries_added = n as u64;
    }
    if let Some(m) = max_xdel.filter(|m| !m.is_zero()) {
        s.max_deleted = m;
    }
    ctx.notify_only(class::STREAM, "xsetid", &args[1]);
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XREAD, XREADGROUP

/// The keys of XREAD/XREADGROUP: the first half of what follows STREAMS.
pub fn xread_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    let xreadgroup = args[0].len() == 10;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = &args[i];
        if eq_ic(a, "STREAMS") && more > 0 {
            // As Redis's key spec (`limit 2`): the first half, rounded down.
            let n = args.len() - (i + 1);
            return (i + 1..i + 1 + n / 2).collect();
        }
        if (eq_ic(a, "BLOCK") || eq_ic(a, "COUNT")) && more > 0 {
            i += 1;
        } else if xreadgroup && eq_ic(a, "GROUP") && more >= 2 {
            i += 2;
        }
        i += 1;
    }
    SmallVec::new()
}

/// A `BLOCK` timeout in milliseconds (`getTimeoutFromObjectOrReply` with `UNIT_MILLISECONDS`);
/// None is 0, wait for ever.
fn block_ms(arg: &[u8], now_ms: i64) -> Result<Option<std::time::Duration>, CmdError> {
    let ms = parse_i64_strict(arg)
        .ok_or_else(|| CmdError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    if ms == 0 {
        return Ok(None);
    }
    if ms > i64::MAX - now_ms {
        return Err(CmdError::err("timeout is out of range"));
    }
    Ok(Some(std::time::Duration::from_millis(ms as u64)))
}

/// What to read from one stream.
#[derive(Clone, Copy)]
enum From {
    After(StreamId),
    /// `>`: entries never delivered to the group.
    New,
}

fn xread_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], group_cmd: bool) -> CmdResult {
    let mut timeout: Option<Option<std::time::Duration>> = None;
    let mut count: usize = 0;
    let mut streams_arg = 0;
    let mut nstreams = 0;
    let mut noack = false;
    let mut group: Option<(&Bytes, &Bytes)> = None;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let o = &args[i];
        if eq_ic(o, "BLOCK") && more > 0 {
            if ctx.client.in_script() {
                return Err(CmdError::err(format!(
                    "{} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(&args[0])
                )));
            }
            i += 1;
            timeout = Some(block_ms(&args[i], ctx.now_ms)?);
        } else if eq_ic(o, "COUNT") && more > 0 {
            i += 1;
            count = ll(&args[i])?.max(0) as usize;
        } else if eq_ic(o, "STREAMS") && more > 0 {
            streams_arg = i + 1;
            let n = args.len() - streams_arg;
            if !n.is_multiple_of(2) {
                // Redis 7.0 names XREAD and `$` here for XREADGROUP too.
                return Err(CmdError::err(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            nstreams = n / 2;
            break;
        } else if eq_ic(o, "GROUP") && more >= 2 {
            if !group_cmd {
                return Err(CmdError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            group = Some((&args[i + 1], &args[i + 2]));
            i += 2;
        } else if eq_ic(o, "NOACK") {
            if !group_cmd {
                return Err(CmdError::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if streams_arg == 0 {
        return Err(CmdError::Syntax);
    }
    if group_cmd && group.is_none() {
        return Err(CmdError::err("Missing GROUP option for XREADGROUP"));
    }
    let db = ctx.client.db;
    let keys = &args[streams_arg..streams_arg + nstreams];
    let rerun = ctx.client.blocked.is_some();
    let mut from: Vec<From> = Vec::with_capacity(nstreams);
    for (k, idarg) in keys.iter().zip(&args[streams_arg + nstreams..]) {
        let s = match stream_read(ks, db, k) {
            Err(CmdError::WrongType) if rerun => None,
            r => r?,
        };
        if rerun && group.is_some() && s.is_none() {
            // Deleted or replaced while the client waited (Redis 7.0's reply).
            return Err(CmdError::Msg(
                "UNBLOCKED the stream key no longer exists".into(),
            ));
        }
        if let Some((g, _)) = group
            && s.as_ref().is_none_or(|s| !s.groups.contains_key(&g[..]))
        {
            if rerun {
                return Err(CmdError::Msg(
                    "NOGROUP the consumer group this client was blocked on no longer exists".into(),
                ));
            }
            return Err(CmdError::Msg(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(g)
            )));
        }
        if &idarg[..] == b"$" {
            if group_cmd {
                return Err(CmdError::err(
                    "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                ));
            }
            from.push(From::After(s.map_or(StreamId::MIN, |s| s.last_id)));
        } else if &idarg[..] == b">" {
            if !group_cmd {
                return Err(CmdError::err(
                    "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                ));
            }
            from.push(From::New);
        } else {
            from.push(From::After(parse_strict_id(idarg, 0)?));
        }
    }
    // A re-run after a wake-up reads from where the first run stood (`$` then meant the last
    // ID of that moment), with XREAD's default count for woken clients.
    if rerun {
        if let Some(saved) = ctx.client.blocked.as_ref().map(|b| &b.stream_ids)
            && saved.len() == from.len()
        {
            for (f, s) in from.iter_mut().zip(saved) {
                if let (From::After(_), Some(id)) = (&f, s) {
                    *f = From::After(*id);
                }
            }
        }
        if count == 0 {
            count = BLOCKED_DEFAULT_COUNT;
        }
    }
    let mut served = 0;
    let mark = ctx.out.len();
    // The reply's header is written once the number of streams served is known.
    let mut body: Vec<u8> = Vec::new();
    let resp3 = ctx.out.resp3();
    // A woken client looks first at the streams that woke it, in the order they did.
    for idx in blocking::woken_order(ctx, keys) {
        let k = &keys[idx];
        let now = ctx.now_ms;
        // XREAD reads; XREADGROUP changes its group.
        let found = if group.is_some() {
            stream_write(ks, db, k)
        } else {
            stream_read(ks, db, k)
        };
        let Some(s) = (match found {
            Err(CmdError::WrongType) if rerun => None,
            r => r?,
        }) else {
            continue;
        };
        let mut buf = bytes::BytesMut::new();
        let mut out = Reply::new(&mut buf, resp3);
        // A woken client is served once the stream's last ID passed where it waited, even if
        // the new entries are gone already (an empty list then), as Redis's blocked.c.
        let did = match (group, from[idx]) {
            (None, From::After(after)) => {
                let nothing_new = if rerun {
                    s.last_id <= after
                } else {
                    s.is_empty() || s.last_valid_id() <= after
                };
                if nothing_new {
                    false
                } else {
                    let Some(start) = after.incr() else { continue };
                    if !resp3 {
                        out.array(2);
                    }
                    out.bulk(k);
                    let items = s.range(start, StreamId::MAX, false, count);
                    reply_items(&mut out, &items);
                    true
                }
            }
            (None, From::New) => false,
            (Some((g, c)), f) => {
                let read = ReadGroup {
                    count,
                    noack,
                    now,
                    resp3,
                    rerun,
                };
                read_group(ctx, s, k, (g, c), f, read, &mut out)?
            }
        };
        if did {
            served += 1;
            body.extend_from_slice(&buf);
            // A woken client gets one stream, as Redis serves it for the key that woke it.
            if rerun {
                break;
            }
        }
    }
    ctx.out.truncate(mark);
    // XREADGROUP's changes are logged as the XCLAIM and XGROUP SETID records it gathered.
    ctx.log_as = Some(Vec::new());
    if served > 0 {
        if resp3 {
            ctx.out.map(served);
        } else {
            ctx.out.array(served);
        }
        ctx.out.buf().extend_from_slice(&body);
        return Ok(());
    }
    match timeout {
        Some(t) => {
            let first = ctx.client.blocked.is_none();
            blocking::block(ctx, keys, t, DenyReply::NullArray)?;
            if first && let Some(b) = ctx.client.blocked.as_mut() {
                b.stream_ids = from
                    .iter()
                    .map(|f| match f {
                        From::After(id) => Some(*id),
                        From::New => None,
                    })
                    .collect();
            }
            Ok(())
        }
        None => {
            ctx.out.null_array();
            Ok(())
        }
    }
}

/// How XREADGROUP reads each stream.
#[derive(Clone, Copy)]
struct ReadGroup {
    count: usize,
    noack: bool,
    now: i64,
    resp3: bool,
    /// A blocked client's re-run after a wake-up.
    rerun: bool,
}

/// XREADGROUP on one stream. Returns whether it replied for this stream.
fn read_group(
    ctx: &mut Ctx,
    s: &mut Stream,
    key: &Bytes,
    (gname, consumer): (&Bytes, &Bytes),
    from: From,
    read: ReadGroup,
    out: &mut Reply,
) -> Result<bool, CmdError> {
    let ReadGroup {
        count,
        noack,
        now,
        resp3,
        rerun,
    } = read;
    let Some(g) = s.groups.get(&gname[..]) else {
        // Destroyed while the client waited.
        return Err(CmdError::Msg(
            "NOGROUP the consumer group this client was blocked on no longer exists".into(),
        ));
    };
    let (start, history) = match from {
        From::After(id) => (id, true),
        From::New => {
            let nothing_new = if rerun {
                s.last_id <= g.last_id
            } else {
                s.is_empty() || s.last_valid_id() <= g.last_id
            };
            if nothing_new {
                return Ok(false);
            }
            (g.last_id, false)
        }
    };
    let mut g = s.groups.remove(&gname[..]).expect("group");
    let logging = ctx.node.store.aof.is_recording();
    let mut logs: Vec<Vec<Bytes>> = Vec::new();
    // Seen times are the wall clock's, replayed or not (Redis's mstime()).
    if g.create_consumer(consumer, super::now_ms()) {
        ctx.notify_only(class::STREAM, "xgroup-createconsumer", key);
        // Logged on its own: with NOACK (or an empty history) no XCLAIM would create it.
        logs.push(vec![
            b("XGROUP"),
            b("CREATECONSUMER"),
            key.clone(),
            gname.clone(),
            consumer.clone(),
        ]);
    }
    if let Some(c) = g.consumers.get_mut(&consumer[..]) {
        c.seen_time = super::now_ms();
    }
    if !resp3 {
        out.array(2);
    }
    out.bulk(key);
    if history {
        let Some(start) = start.incr() else {
            out.array(0);
            s.groups.insert(gname.as_ref().into(), g);
            return Ok(true);
        };
        let ids: Vec<StreamId> = g.consumers[&consumer[..]]
            .pel
            .range(start..)
            .take(if count == 0 { usize::MAX } else { count })
            .copied()
            .collect();
        out.array(ids.len());
        for id in ids {
            match s.get(id) {
                Some(it) => {
                    reply_item(out, it);
                    let p = g.pel.get_mut(&id).expect("pending");
                    p.delivery_time = now;
                    p.delivery_count += 1;
                    if logging {
                        logs.push(xclaim_record(key, gname, &g, id));
                    }
                }
                None => {
                    out.array(2);
                    reply_id(out, id);
                    out.null_array();
                }
            }
        }
    } else {
        let start = start.incr().expect("below the last ID");
        let items = s.range(start, StreamId::MAX, false, count);
        let last = items.last().map(|it| it.id);
        reply_items(out, &items);
        let ids: Vec<StreamId> = items.iter().map(|it| it.id).collect();
        for id in ids {
            s.advance_group(&mut g, id);
            if !noack {
                let p = g.assign(id, consumer, now, super::now_ms());
                p.delivery_time = now;
                p.delivery_count = 1;
                if logging {
                    logs.push(xclaim_record(key, gname, &g, id));
                }
            }
        }
        if last.is_some() && logging {
            logs.push(setid_record(key, gname, &g));
        }
    }
    s.groups.insert(gname.as_ref().into(), g);
    ctx.dirty(1);
    ctx.log_more.extend(logs);
    Ok(true)
}

/// `XCLAIM <key> <group> <consumer> 0 <id> TIME <ms> RETRYCOUNT <n> FORCE JUSTID LASTID <id>`
/// for one pending entry (`streamPropagateXCLAIM`).
fn xclaim_record(key: &Bytes, gname: &Bytes, g: &Group, id: StreamId) -> Vec<Bytes> {
    let p = &g.pel[&id];
    vec![
        b("XCLAIM"),
        key.clone(),
        gname.clone(),
        Bytes::copy_from_slice(&p.consumer),
        b("0"),
        id_arg(id),
        b("TIME"),
        Bytes::from(p.delivery_time.to_string()),
        b("RETRYCOUNT"),
        Bytes::from(p.delivery_count.to_string()),
        b("FORCE"),
        b("JUSTID"),
        b("LASTID"),
        id_arg(g.last_id),
    ]
}

/// The logged record of a pending entry dropped because its entry is gone: XCLAIM of a
/// missing entry removes it on replay too.
fn xclaim_gone_record(
    key: &Bytes,
    gname: &Bytes,
    consumer: &[u8],
    g: &Group,
    id: StreamId,
) -> Vec<Bytes> {
    vec![
        b("XCLAIM"),
        key.clone(),
        gname.clone(),
        Bytes::copy_from_slice(consumer),
        b("0"),
        id_arg(id),
        b("JUSTID"),
        b("LASTID"),
        id_arg(g.last_id),
    ]
}

/// `XGROUP SETID <key> <group> <id> ENTRIESREAD <n>` (`streamPropagateGroupID`).
fn setid_record(key: &Bytes, gname: &Bytes, g: &Group) -> Vec<Bytes> {
    vec![
        b("XGROUP"),
        b("SETID"),
        key.clone(),
        gname.clone(),
        id_arg(g.last_id),
        b("ENTRIESREAD"),
        Bytes::from(g.entries_read.to_string()),
    ]
}

pub fn xread(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    xread_generic(ctx, ks, args, false)
}

pub fn xreadgroup(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    xread_generic(ctx, ks, args, true)
}

// ---------------------------------------------------------------------------------------------
// XGROUP

/// `ENTRIESREAD <n>`: a count, or -1 for unknown.
fn entries_read_arg(arg: &[u8]) -> Result<i64, CmdError> {
    let n = ll(arg)?;
    if n < 0 && n != ENTRIES_READ_INVALID {
        return Err(CmdError::err(
            "value for ENTRIESREAD must be positive or -1",
        ));
    }
    Ok(n)
}

/// The stream and group an XGROUP subcommand needs (Redis checks in this order).
fn xgroup_target<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    args: &[Bytes],
    need_group: bool,
) -> Result<&'k mut Stream, CmdError> {
    let Some(s) = stream_write(ks, db, &args[2])? else {
        return Err(CmdError::err(
            "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        ));
    };
    if need_group && !s.groups.contains_key(&args[3][..]) {
        return Err(no_group_for_key(&args[3], &args[2]));
    }
    Ok(s)
}

fn no_group_for_key(group: &[u8], key: &[u8]) -> CmdError {
    CmdError::Msg(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

/// XGROUP CREATE/SETID with `$`: logged with the ID it stood for.
fn log_dollar_as(ctx: &mut Ctx, args: &[Bytes], id: StreamId) {
    if &args[4][..] == b"$" {
        let mut l = args.to_vec();
        l[4] = id_arg(id);
        ctx.log_as = Some(l);
    }
}

pub fn xgroup_create(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_INVALID;
    let mut i = 5;
    while i < args.len() {
        if eq_ic(&args[i], "MKSTREAM") {
            mkstream = true;
            i += 1;
        } else if eq_ic(&args[i], "ENTRIESREAD") && i + 1 < args.len() {
            entries_read = entries_read_arg(&args[i + 1])?;
            i += 2;
        } else {
            return Err(subcommand_syntax_error(args));
        }
    }
    let db = ctx.client.db;
    let key = &args[2];
    let exists = stream_write(ks, db, key)?.is_some();
    if !exists && !mkstream {
        xgroup_target(ks, db, args, false)?;
    }
    if args.len() > 8 {
        return Err(subcommand_syntax_error(args));
    }
    let id = if &args[4][..] == b"$" {
        match stream_write(ks, db, key)? {
            Some(s) => s.last_id,
            None => StreamId::MIN,
        }
    } else {
        parse_strict_id(&args[4], 0)?
    };
    if !exists {
        ks.set(db, key, Value::Stream(Box::default()), None, false)?;
        ctx.signal_modified(key);
    }
    let s = stream_write(ks, db, key)?.expect("stream");
    if s.groups.contains_key(&args[3][..]) {
        return Err(CmdError::Msg(
            "BUSYGROUP Consumer Group name already exists".into(),
        ));
    }
    s.groups
        .insert(args[3].as_ref().into(), Group::new(id, entries_read));
    ctx.out.ok();
    ctx.dirty(1);
    ctx.notify_only(class::STREAM, "xgroup-create", key);
    log_dollar_as(ctx, args, id);
    Ok(())
}

pub fn xgroup_setid(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // Options first, then the key and group, then the argument count (Redis's order).
    let mut entries_read = ENTRIES_READ_INVALID;
    let mut i = 5;
    while i < args.len() {
        if eq_ic(&args[i], "ENTRIESREAD") && i + 1 < args.len() {
            entries_read = entries_read_arg(&args[i + 1])?;
            i += 2;
        } else {
            return Err(subcommand_syntax_error(args));
        }
    }
    let db = ctx.client.db;
    let s = xgroup_target(ks, db, args, true)?;
    if args.len() != 5 && args.len() != 7 {
        return Err(subcommand_syntax_error(args));
    }
    let id = if &args[4][..] == b"$" {
        s.last_id
    } else {
        parse_id(&args[4], 0)?
    };
    let g = s.groups.get_mut(&args[3][..]).expect("checked");
    g.last_id = id;
    g.entries_read = entries_read;
    ctx.out.ok();
    ctx.dirty(1);
    ctx.notify_only(class::STREAM, "xgroup-setid", &args[2]);
    log_dollar_as(ctx, args, id);
    Ok(())
}

pub fn xgroup_destroy(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let s = xgroup_target(ks, db, args, false)?;
    if s.groups.remove(&args[3][..]).is_some() {
        ctx.out.int(1);
        ctx.dirty(1);
        ctx.notify_only(class::STREAM, "xgroup-destroy", &args[2]);
        // Consumers blocked on the group are told it is gone.
        ctx.node.store.blocked.signal_all(db, &args[2]);
    } else {
        ctx.out.int(0);
    }
    Ok(())
}

pub fn xgroup_createconsumer(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let s = xgroup_target(ks, db, args, true)?;
    let g = s.groups.get_mut(&args[3][..]).expect("checked");
    let created = g.create_consumer(&args[4], super::now_ms());
    if created {
        ctx.dirty(1);
        ctx.notify_only(class::STREAM, "xgroup-createconsumer", &args[2]);
    } else {
        ctx.log_as = Some(Vec::new());
    }
    ctx.out.int(created as i64);
    Ok(())
}

pub fn xgroup_delconsumer(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let s = xgroup_target(ks, db, args, true)?;
    let g = s.groups.get_mut(&args[3][..]).expect("checked");
    let pending = match g.delete_consumer(&args[4]) {
        Some(n) => {
            ctx.dirty(1);
            ctx.notify_only(class::STREAM, "xgroup-delconsumer", &args[2]);
            n
        }
        None => 0,
    };
    ctx.out.int(pending as i64);
    Ok(())
}

pub fn xgroup_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// XACK, XPENDING, XCLAIM, XAUTOCLAIM

fn no_key_or_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::Msg(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

pub fn xack(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let Some(s) = stream_write(ks, db, &args[1])? else {
        ctx.out.int(0);
        return Ok(());
    };
    let Some(g) = s.groups.get_mut(&args[2][..]) else {
        ctx.out.int(0);
        return Ok(());
    };
    let ids = args[3..]
        .iter()
        .map(|a| parse_strict_id(a, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut acked = 0;
    for id in ids {
        if g.ack(id) {
            acked += 1;
        }
    }
    ctx.dirty(acked);
    ctx.out.int(acked as i64);
    Ok(())
}

pub fn xpending(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let justinfo = args.len() == 3;
    if args.len() != 3 && (args.len() < 6 || args.len() > 9) {
        return Err(CmdError::Syntax);
    }
    let mut minidle = 0i64;
    let mut range = (StreamId::MIN, StreamId::MAX, 0i64);
    let mut consumer: Option<&Bytes> = None;
    if args.len() >= 6 {
        let mut at = 3;
        if eq_ic(&args[3], "IDLE") {
            minidle = ll(&args[4])?;
            if args.len() < 8 {
                return Err(CmdError::Syntax);
            }
            at += 2;
        }
        let count = ll(&args[at + 2])?.max(0);
        let start = range_start(&args[at])?;
        let end = range_end(&args[at + 1])?;
        range = (start, end, count);
        consumer = args.get(at + 3);
    }
    let db = ctx.client.db;
    let s = stream_read(ks, db, &args[1])?;
    let Some(g) = s.and_then(|s| s.groups.get(&args[2][..])) else {
        return Err(no_key_or_group(&args[1], &args[2]));
    };
    let out = &mut ctx.out;
    if justinfo {
        out.array(4);
        out.int(g.pel.len() as i64);
        match (g.pel.first_key_value(), g.pel.last_key_value()) {
            (Some((first, _)), Some((last, _))) => {
                reply_id(out, *first);
                reply_id(out, *last);
                let with: Vec<_> = g
                    .consumers
                    .iter()
                    .filter(|(_, c)| !c.pel.is_empty())
                    .collect();
                out.array(with.len());
                for (name, c) in with {
                    out.array(2);
                    out.bulk(name);
                    out.bulk_int(c.pel.len() as i64);
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return Ok(());
    }
    let (start, end, mut count) = range;
    let ids: Vec<StreamId> = match consumer {
        Some(name) => match g.consumers.get(&name[..]) {
            Some(c) => c.pel.range(start..).copied().collect(),
            None => {
                out.array(0);
                return Ok(());
            }
        },
        None => g.pel.range(start..).map(|(id, _)| *id).collect(),
    };
    let now = ctx.now_ms;
    let mut rows = Vec::new();
    for id in ids {
        if count == 0 || id > end {
            break;
        }
        let p = &g.pel[&id];
        if minidle != 0 && now.saturating_sub(p.delivery_time) < minidle {
            continue;
        }
        count -= 1;
        rows.push((id, p));
    }
    out.array(rows.len());
    for (id, p) in rows {
        out.array(4);
        reply_id(out, id);
        out.bulk(&p.consumer);
        out.int((now.saturating_sub(p.delivery_time)).max(0));
        out.int(p.delivery_count as i64);
    }
    Ok(())
}

pub fn xclaim(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let now = ctx.now_ms;
    {
        let s = stream_read(ks, db, &args[1])?;
        if s.is_none_or(|s| !s.groups.contains_key(&args[2][..])) {
            return Err(no_key_or_group(&args[1], &args[2]));
        }
    }
    let minidle = ll_or(&args[4], "Invalid min-idle-time argument for XCLAIM")?.max(0);
    let mut j = 5;
    let mut ids = Vec::new();
    while j < args.len() {
        match parse_strict_id(&args[j], 0) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let o = &args[j];
        if eq_ic(o, "FORCE") {
            force = true;
        } else if eq_ic(o, "JUSTID") {
            justid = true;
        } else if eq_ic(o, "IDLE") && more > 0 {
            j += 1;
            deliverytime =
                now.saturating_sub(ll_or(&args[j], "Invalid IDLE option argument for XCLAIM")?);
        } else if eq_ic(o, "TIME") && more > 0 {
            j += 1;
            deliverytime = ll_or(&args[j], "Invalid TIME option argument for XCLAIM")?;
        } else if eq_ic(o, "RETRYCOUNT") && more > 0 {
            j += 1;
            retrycount = ll_or(&args[j], "Invalid RETRYCOUNT option argument for XCLAIM")?;
        } else if eq_ic(o, "LASTID") && more > 0 {
            j += 1;
            last_id = parse_strict_id(&args[j], 0)?;
        } else {
            return Err(CmdError::err(format!(
                "Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(o)
            )));
        }
        j += 1;
    }
    // A replayed record runs with the clock at 0: its TIME is taken as it is.
    if deliverytime != -1 {
        if deliverytime < 0 || (now > 0 && deliverytime > now) {
            deliverytime = now;
        }
    } else {
        deliverytime = now;
    }
    let s = stream_write(ks, db, &args[1])?.expect("checked");
    let mut g = s.groups.remove(&args[2][..]).expect("checked");
    let mut propagate_last_id = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        propagate_last_id = true;
    }
    let key = &args[1];
    let gname = &args[2];
    let name = &args[3];
    let mut logs = Vec::new();
    let mut replies: Vec<(StreamId, bool)> = Vec::new();
    let had_consumer = g.consumers.contains_key(&name[..]);
    for id in ids {
        let pending = g.pel.get(&id).cloned();
        if !s.contains(id) {
            if let Some(p) = pending {
                logs.push(xclaim_gone_record(key, gname, &p.consumer, &g, id));
                propagate_last_id = false;
                g.ack(id);
            }
            continue;
        }
        let created = match &pending {
            None if force => true,
            None => continue,
            Some(_) => false,
        };
        if let Some(p) = &pending
            && minidle != 0
            && now.saturating_sub(p.delivery_time) < minidle
        {
            continue;
        }
        let p = g.assign(id, name, now, super::now_ms());
        if created {
            p.delivery_count = 1;
        }
        p.delivery_time = deliverytime;
        if retrycount >= 0 {
            p.delivery_count = retrycount as u64;
        } else if !justid {
            p.delivery_count += 1;
        }
        replies.push((id, true));
        logs.push(xclaim_record(key, gname, &g, id));
        propagate_last_id = false;
    }
    if propagate_last_id {
        logs.push(setid_record(key, gname, &g));
    }
    let out = &mut ctx.out;
    out.array(replies.len());
    for (id, _) in &replies {
        if justid {
            reply_id(out, *id);
        } else {
            match s.get(*id) {
                Some(it) => reply_item(out, it),
                None => out.null(),
            }
        }
    }
    // The consumer a claim made (Redis's streamCreateConsumer notifies it).
    let new_consumer = !had_consumer && g.consumers.contains_key(&name[..]);
    s.groups.insert(gname.as_ref().into(), g);
    if new_consumer {
        ctx.notify_only(class::STREAM, "xgroup-createconsumer", key);
    }
    ctx.dirty(logs.len() as u64);
    ctx.log_as = Some(Vec::new());
    ctx.log_more.extend(logs);
    Ok(())
}

pub fn xautoclaim(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let now = ctx.now_ms;
    let minidle = ll_or(&args[4], "Invalid min-idle-time argument for XAUTOCLAIM")?.max(0);
    let start = range_start(&args[5])?;
    let mut count: i64 = 100;
    let mut justid = false;
    let max_count = i64::MAX / 16;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ic(&args[j], "COUNT") && more > 0 {
            count = parse_i64_strict(&args[j + 1])
                .filter(|c| (1..=max_count).contains(c))
                .ok_or_else(|| CmdError::err("COUNT must be > 0"))?;
            j += 1;
        } else if eq_ic(&args[j], "JUSTID") {
            justid = true;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let key = &args[1];
    let gname = &args[2];
    let name = &args[3];
    let Some(s) = stream_write(ks, db, key)? else {
        return Err(no_key_or_group(key, gname));
    };
    let Some(mut g) = s.groups.remove(&gname[..]) else {
        return Err(no_key_or_group(key, gname));
    };
    let mut attempts = count.saturating_mul(10);
    let ids: Vec<StreamId> = g
        .pel
        .range(start..)
        .map(|(id, _)| *id)
        .take((attempts as usize).saturating_add(1))
        .collect();
    let mut deleted = Vec::new();
    let mut claimed = Vec::new();
    let mut logs = Vec::new();
    let mut i = 0;
    let had_consumer = g.consumers.contains_key(&name[..]);
    loop {
        if attempts == 0 {
            break;
        }
        attempts -= 1;
        if count == 0 || i >= ids.len() {
            break;
        }
        let id = ids[i];
        i += 1;
        if !s.contains(id) {
            let owner = g.pel[&id].consumer.clone();
            logs.push(xclaim_gone_record(key, gname, &owner, &g, id));
            g.ack(id);
            deleted.push(id);
            count -= 1;
            continue;
        }
        if minidle != 0 && now.saturating_sub(g.pel[&id].delivery_time) < minidle {
            continue;
        }
        let p = g.assign(id, name, now, super::now_ms());
        p.delivery_time = now;
        if !justid {
            p.delivery_count += 1;
        }
        claimed.push(id);
        logs.push(xclaim_record(key, gname, &g, id));
        count -= 1;
    }
    let cursor = ids.get(i).copied().unwrap_or(StreamId::MIN);
    let out = &mut ctx.out;
    out.array(3);
    reply_id(out, cursor);
    out.array(claimed.len());
    for id in &claimed {
        if justid {
            reply_id(out, *id);
        } else {
            match s.get(*id) {
                Some(it) => reply_item(out, it),
                None => out.null(),
            }
        }
    }
    out.array(deleted.len());
    for id in &deleted {
        reply_id(out, *id);
    }
    // The consumer a claim made (Redis's streamCreateConsumer notifies it).
    let new_consumer = !had_consumer && g.consumers.contains_key(&name[..]);
    s.groups.insert(gname.as_ref().into(), g);
    if new_consumer {
        ctx.notify_only(class::STREAM, "xgroup-createconsumer", key);
    }
    ctx.dirty(logs.len() as u64);
    ctx.log_as = Some(Vec::new());
    ctx.log_more.extend(logs);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XINFO

fn xinfo_stream_of<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<&'k mut Stream, CmdError> {
    stream_read(ks, db, key)?.ok_or(CmdError::NoSuchKey)
}

pub fn xinfo_consumers(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let s = xinfo_stream_of(ks, ctx.client.db, &args[2])?;
    let Some(g) = s.groups.get(&args[3][..]) else {
        return Err(no_group_for_key(&args[3], &args[2]));
    };
    let now = super::now_ms();
    let out = &mut ctx.out;
    out.array(g.consumers.len());
    for (name, c) in &g.consumers {
        out.map(3);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"pending");
        out.int(c.pel.len() as i64);
        out.bulk(b"idle");
        out.int(now.saturating_sub(c.seen_time).max(0));
    }
    Ok(())
}

fn reply_lag(out: &mut Reply, s: &Stream, g: &Group) {
    match s.lag(g) {
        Some(l) => out.int(l),
        None => out.null(),
    }
}

fn reply_entries_read(out: &mut Reply, g: &Group) {
    if g.entries_read != ENTRIES_READ_INVALID {
        out.int(g.entries_read);
    } else {
        out.null();
    }
}

pub fn xinfo_groups(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let s = xinfo_stream_of(ks, ctx.client.db, &args[2])?;
    let out = &mut ctx.out;
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(6);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"consumers");
        out.int(g.consumers.len() as i64);
        out.bulk(b"pending");
        out.int(g.pel.len() as i64);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id);
        out.bulk(b"entries-read");
        reply_entries_read(out, g);
        out.bulk(b"lag");
        reply_lag(out, s, g);
    }
    Ok(())
}

pub fn xinfo_stream(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // The key first, then the options (Redis's order).
    let s = xinfo_stream_of(ks, ctx.client.db, &args[2])?;
    let rest = &args[3..];
    let mut full = false;
    let mut count: i64 = 10;
    if !rest.is_empty() {
        if (rest.len() != 1 && rest.len() != 3) || !eq_ic(&rest[0], "full") {
            return Err(subcommand_syntax_error(args));
        }
        full = true;
        if rest.len() == 3 {
            if !eq_ic(&rest[1], "count") {
                return Err(subcommand_syntax_error(args));
            }
            count = ll(&rest[2])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let out = &mut ctx.out;
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(s.rax_nodes() as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, s.max_deleted);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, s.first_id);
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for (label, rev) in [(&b"first-entry"[..], false), (b"last-entry", true)] {
            out.bulk(label);
            match s.range(StreamId::MIN, StreamId::MAX, rev, 1).first() {
                Some(it) => reply_item(out, it),
                None => out.null(),
            }
        }
        return Ok(());
    }
    let count = count as usize;
    let limit = if count == 0 { usize::MAX } else { count };
    out.bulk(b"entries");
    reply_items(out, &s.range(StreamId::MIN, StreamId::MAX, false, count));
    out.bulk(b"groups");
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id);
        out.bulk(b"entries-read");
        reply_entries_read(out, g);
        out.bulk(b"lag");
        reply_lag(out, s, g);
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        let pel: Vec<_> = g.pel.iter().take(limit).collect();
        out.array(pel.len());
        for (id, p) in pel {
            out.array(4);
            reply_id(out, *id);
            out.bulk(&p.consumer);
            out.int(p.delivery_time);
            out.int(p.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, c) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(c.seen_time);
            out.bulk(b"pel-count");
            out.int(c.pel.len() as i64);
            out.bulk(b"pending");
            let ids: Vec<_> = c.pel.iter().take(limit).collect();
            out.array(ids.len());
            for id in ids {
                let p = &g.pel[id];
                out.array(3);
                reply_id(out, *id);
                out.int(p.delivery_time);
                out.int(p.delivery_count as i64);
            }
        }
    }
    Ok(())
}

pub fn xinfo_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// The command table

const KEY2: (i32, i32, i32) = (2, 2, 1);

static XADD_SPECS: &[KeySpec] = &[KeySpec::range(&["RW", "update"], 1, 0, 1)
    .notes("UPDATE instead of INSERT because of the optional trimming feature")];
static XREAD_SPECS: &[KeySpec] =
    &[KeySpec::keyword(&["RO", "access"], "STREAMS", 1, -1, 1).limit(2)];
static XREADGROUP_SPECS: &[KeySpec] =
    &[KeySpec::keyword(&["RO", "access"], "STREAMS", 4, -1, 1).limit(2)];

static XGROUP_SUBS: &[Command] = &[
    cmd!(
        "create",
        -5,
        WM,
        KEY2,
        "stream",
        "5.0.0",
        xgroup_create,
        "Creates a consumer group."
    )
    .specs(&[KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    cmd!(
        "setid",
        -5,
        W,
        KEY2,
        "stream",
        "5.0.0",
        xgroup_setid,
        "Sets the last-delivered ID of a consumer group."
    )
    .specs(&[KeySpec::range(&["RW", "update"], 2, 0, 1)]),
    cmd!(
        "destroy",
        4,
        W,
        KEY2,
        "stream",
        "5.0.0",
        xgroup_destroy,
        "Destroys a consumer group."
    )
    .specs(&[KeySpec::range(&["RW", "delete"], 2, 0, 1)]),
    cmd!(
        "createconsumer",
        5,
        WM,
        KEY2,
        "stream",
        "6.2.0",
        xgroup_createconsumer,
        "Creates a consumer in a consumer group."
    )
    .specs(&[KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    cmd!(
        "delconsumer",
        5,
        W,
        KEY2,
        "stream",
        "5.0.0",
        xgroup_delconsumer,
        "Deletes a consumer from a consumer group."
    )
    .specs(&[KeySpec::range(&["RW", "delete"], 2, 0, 1)]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "stream",
        "5.0.0",
        xgroup_help,
        "Returns helpful text about the different subcommands."
    ),
];

static XINFO_SUBS: &[Command] = &[
    cmd!(
        "consumers",
        4,
        R,
        KEY2,
        "stream",
        "5.0.0",
        xinfo_consumers,
        "Returns a list of the consumers in a consumer group."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "groups",
        3,
        R,
        KEY2,
        "stream",
        "5.0.0",
        xinfo_groups,
        "Returns a list of the consumer groups of a stream."
    ),
    cmd!(
        "stream",
        -3,
        R,
        KEY2,
        "stream",
        "5.0.0",
        xinfo_stream,
        "Returns information about a stream."
    ),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "stream",
        "5.0.0",
        xinfo_help,
        "Returns helpful text about the different subcommands."
    ),
];

pub static COMMANDS: &[Command] = &[
    cmd!(
        "xadd",
        -5,
        WMF,
        KEY1,
        "stream",
        "5.0.0",
        xadd,
        "Appends a new message to a stream. Creates the key if it doesn't exist."
    )
    .specs(XADD_SPECS)
    .tips(&["nondeterministic_output"]),
    cmd!(
        "xrange",
        -4,
        R,
        KEY1,
        "stream",
        "5.0.0",
        xrange,
        "Returns the messages from a stream within a range of IDs."
    ),
    cmd!(
        "xrevrange",
        -4,
        R,
        KEY1,
        "stream",
        "5.0.0",
        xrevrange,
        "Returns the messages from a stream within a range of IDs in reverse order."
    ),
    cmd!(
        "xlen",
        2,
        RF,
        KEY1,
        "stream",
        "5.0.0",
        xlen,
        "Return the number of messages in a stream."
    )
    .specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "xdel",
        -3,
        WF,
        KEY1,
        "stream",
        "5.0.0",
        xdel,
        "Returns the number of messages after removing them from a stream."
    )
    .specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "xtrim",
        -4,
        W,
        KEY1,
        "stream",
        "5.0.0",
        xtrim,
        "Deletes messages from the beginning of a stream."
    )
    .specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)])
    .tips(&["nondeterministic_output"]),
    cmd!(
        "xsetid",
        -3,
        WMF,
        KEY1,
        "stream",
        "5.0.0",
        xsetid,
        "An internal command for replicating stream values."
    )
    .specs(&[KeySpec::range(&["RW", "update"], 1, 0, 1)]),
    Command {
        keys_fn: Some(xread_keys),
        flags: READONLY | BLOCKING | MOVABLEKEYS,
        ..cmd!(
            "xread",
            -4,
            R,
            (0, 0, 0),
            "stream",
            "5.0.0",
            xread,
            "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise."
        )
        .specs(XREAD_SPECS)
    },
    Command {
        keys_fn: Some(xread_keys),
        flags: WRITE | BLOCKING | MOVABLEKEYS,
        ..cmd!(
            "xreadgroup",
            -7,
            W,
            (0, 0, 0),
            "stream",
            "5.0.0",
            xreadgroup,
            "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise."
        )
        .specs(XREADGROUP_SPECS)
    },
    container!(
        "xgroup",
        "stream",
        "5.0.0",
        XGROUP_SUBS,
        "A container for consumer groups commands."
    ),
    cmd!(
        "xack",
        -4,
        WF,
        KEY1,
        "stream",
        "5.0.0",
        xack,
        "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream."
    )
    .specs(&[KeySpec::range(&["RW", "update"], 1, 0, 1)]),
    cmd!(
        "xpending",
        -3,
        R,
        KEY1,
        "stream",
        "5.0.0",
        xpending,
        "Returns the information and entries from a stream consumer group's pending entries list."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "xclaim",
        -6,
        WF,
        KEY1,
        "stream",
        "5.0.0",
        xclaim,
        "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member."
    )
    .specs(&[KeySpec::range(&["RW", "update"], 1, 0, 1)])
    .tips(&["nondeterministic_output"]),
    cmd!(
        "xautoclaim",
        -6,
        WF,
        KEY1,
        "stream",
        "6.2.0",
        xautoclaim,
        "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member."
    )
    .specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)])
    .tips(&["nondeterministic_output"]),
    container!(
        "xinfo",
        "stream",
        "5.0.0",
        XINFO_SUBS,
        "A container for stream introspection commands."
    ),
];
