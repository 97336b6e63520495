//! List commands: pushes, pops (with COUNT, LMPOP), LMOVE/RPOPLPUSH, indexing, ranges, LREM,
//! LTRIM, LPOS, LINSERT, and the blocking BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP. Argument
//! checks happen in Redis 7.0's order, so the first error a bad command meets is Redis's.

use bytes::Bytes;
use smallvec::SmallVec;

use super::Ctx;
use super::args::{eq_ic, int};
use super::blocking::{self, DenyReply};
use super::error::{CmdError, CmdResult};
use super::table::KeySpec;
use super::table::{Command, cmd};
use super::table::{KEY1, KEY12, W, WF, WM, WMF};
use crate::commands::flags::*;
use crate::observe::events::class;
use crate::store::list::List;
use crate::store::{Keyspace, Value};

fn fill(ctx: &Ctx) -> i32 {
    ctx.node.config.read().list_max_listpack_size
}

fn pick(v: &mut Value) -> Option<&mut List> {
    match v {
        Value::List(x) => Some(x),
        _ => None,
    }
}

/// The list at `key` for a command that modifies it: None when missing, WRONGTYPE otherwise.
fn list_mut<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut List>, CmdError> {
    super::typed(ks.lookup_write(db, key)?, pick)
}

/// The list at `key` for a read (counts a keyspace hit or miss).
fn list_read<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut List>, CmdError> {
    super::typed(ks.lookup_read(db, key)?, pick)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    fn parse(arg: &[u8]) -> Result<End, CmdError> {
        if eq_ic(arg, "LEFT") {
            Ok(End::Left)
        } else if eq_ic(arg, "RIGHT") {
            Ok(End::Right)
        } else {
            Err(CmdError::Syntax)
        }
    }

    fn pop_event(self) -> &'static str {
        match self {
            End::Left => "lpop",
            End::Right => "rpop",
        }
    }

    fn push_event(self) -> &'static str {
        match self {
            End::Left => "lpush",
            End::Right => "rpush",
        }
    }
}

fn push(l: &mut List, end: End, v: &[u8], fill: i32) {
    match end {
        End::Left => l.push_front(v, fill),
        End::Right => l.push_back(v, fill),
    }
}

fn pop(l: &mut List, end: End) -> Option<Vec<u8>> {
    match end {
        End::Left => l.pop_front(),
        End::Right => l.pop_back(),
    }
}

/// Deletes `key` if its list emptied, with the "del" event.
fn delete_if_empty(ctx: &Ctx, ks: &mut Keyspace, key: &[u8]) -> CmdResult {
    let db = ctx.client.db;
    if list_mut(ks, db, key)?.is_some_and(|l| l.is_empty()) {
        ks.remove(db, key)?;
        ctx.notify(class::GENERIC, "del", key);
    }
    Ok(())
}

fn push_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], end: End, xx: bool) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let fill = fill(ctx);
    let len = match list_mut(ks, db, key)? {
        Some(l) => {
            for v in &args[2..] {
                push(l, end, v, fill);
            }
            l.len()
        }
        None if xx => {
            ctx.out.int(0);
            return Ok(());
        }
        None => {
            let mut l = List::new();
            for v in &args[2..] {
                push(&mut l, end, v, fill);
            }
            let n = l.len();
            ks.set(db, key, Value::List(Box::new(l)), None, false)?;
            n
        }
    };
    ctx.dirty((args.len() - 2) as u64);
    ctx.notify(class::LIST, end.push_event(), key);
    ctx.out.int(len as i64);
    Ok(())
}

pub fn lpush(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, ks, args, End::Left, false)
}

pub fn rpush(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, ks, args, End::Right, false)
}

pub fn lpushx(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, ks, args, End::Left, true)
}

pub fn rpushx(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, ks, args, End::Right, true)
}

/// A count that must not be negative (`getPositiveLongFromObjectOrReply`): `msg` is the error
/// for anything else, a non-integer included.
pub fn positive(arg: &[u8], msg: &str) -> Result<i64, CmdError> {
    int(arg)
        .ok()
        .filter(|&n| n >= 0)
        .ok_or_else(|| CmdError::err(msg))
}

fn pop_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Arity(
            String::from_utf8_lossy(&args[0]).to_lowercase(),
        ));
    }
    let count = match args.get(2) {
        Some(a) => Some(positive(a, "value is out of range, must be positive")?),
        None => None,
    };
    let db = ctx.client.db;
    let key = &args[1];
    let Some(l) = list_mut(ks, db, key)? else {
        if count.is_some() {
            ctx.out.null_array();
        } else {
            ctx.out.null();
        }
        return Ok(());
    };
    match count {
        None => {
            let v = pop(l, end).unwrap_or_default();
            ctx.out.bulk(&v);
        }
        Some(0) => {
            ctx.out.array(0);
            return Ok(());
        }
        Some(n) => {
            let n = (n as usize).min(l.len());
            ctx.out.array(n);
            for _ in 0..n {
                let v = pop(l, end).unwrap_or_default();
                ctx.out.bulk(&v);
            }
        }
    }
    ctx.dirty(1);
    ctx.notify(class::LIST, end.pop_event(), key);
    delete_if_empty(ctx, ks, key)
}

pub fn lpop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    pop_generic(ctx, ks, args, End::Left)
}

pub fn rpop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    pop_generic(ctx, ks, args, End::Right)
}

pub fn llen(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = list_read(ks, ctx.client.db, &args[1])?.map_or(0, |l| l.len());
    ctx.out.int(n as i64);
    Ok(())
}

/// A Redis list index (negative from the end) as a position, if in range.
fn index_of(idx: i64, len: usize) -> Option<usize> {
    let i = if idx < 0 { idx + len as i64 } else { idx };
    (0..len as i64).contains(&i).then_some(i as usize)
}

pub fn lindex(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let Some(l) = list_read(ks, ctx.client.db, &args[1])? else {
        ctx.out.null();
        return Ok(());
    };
    let idx = int(&args[2])?;
    match index_of(idx, l.len()).and_then(|i| l.get(i)) {
        Some(v) => ctx.out.bulk(v),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn lset(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let fill = fill(ctx);
    let Some(l) = list_mut(ks, ctx.client.db, &args[1])? else {
        return Err(CmdError::NoSuchKey);
    };
    let idx = int(&args[2])?;
    let i = index_of(idx, l.len()).ok_or_else(|| CmdError::err("index out of range"))?;
    l.set(i, &args[3], fill);
    ctx.dirty(1);
    ctx.notify(class::LIST, "lset", &args[1]);
    ctx.out.ok();
    Ok(())
}

pub fn linsert(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let after = if eq_ic(&args[2], "AFTER") {
        true
    } else if eq_ic(&args[2], "BEFORE") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let fill = fill(ctx);
    let Some(l) = list_mut(ks, ctx.client.db, &args[1])? else {
        ctx.out.int(0);
        return Ok(());
    };
    let Some(pos) = l.iter().position(|e| e == &args[3][..]) else {
        ctx.out.int(-1);
        return Ok(());
    };
    l.insert(if after { pos + 1 } else { pos }, &args[4], fill);
    let n = l.len();
    ctx.dirty(1);
    ctx.notify(class::LIST, "linsert", &args[1]);
    ctx.out.int(n as i64);
    Ok(())
}

/// Redis's `start`/`end` normalisation for LRANGE and LTRIM: None when the range is empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { start + len } else { start };
    let mut e = if end < 0 { end + len } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

pub fn lrange(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let start = int(&args[2])?;
    let end = int(&args[3])?;
    let Some(l) = list_read(ks, ctx.client.db, &args[1])? else {
        ctx.out.array(0);
        return Ok(());
    };
    match clamp_range(start, end, l.len()) {
        None => ctx.out.array(0),
        Some((s, e)) => {
            ctx.out.array(e - s + 1);
            for v in l.iter_from(s).take(e - s + 1) {
                ctx.out.bulk(v);
            }
        }
    }
    Ok(())
}

pub fn ltrim(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let start = int(&args[2])?;
    let end = int(&args[3])?;
    let key = &args[1];
    let Some(l) = list_mut(ks, ctx.client.db, key)? else {
        ctx.out.ok();
        return Ok(());
    };
    let len = l.len();
    let (front, back) = match clamp_range(start, end, len) {
        None => (len, 0),
        Some((s, e)) => (s, len - e - 1),
    };
    l.drop_front(front);
    l.drop_back(back);
    ctx.dirty((front + back) as u64);
    ctx.notify(class::LIST, "ltrim", key);
    delete_if_empty(ctx, ks, key)?;
    ctx.out.ok();
    Ok(())
}

pub fn lrem(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let count = int(&args[2])?;
    let key = &args[1];
    let fill = fill(ctx);
    let Some(l) = list_mut(ks, ctx.client.db, key)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let elem = &args[3][..];
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs().min(usize::MAX as u64) as usize
    };
    // Positions to remove, in the direction COUNT asks for.
    let mut hits: Vec<usize> = if count >= 0 {
        l.iter()
            .enumerate()
            .filter(|(_, e)| *e == elem)
            .map(|(i, _)| i)
            .take(limit)
            .collect()
    } else {
        let len = l.len();
        l.iter()
            .rev()
            .enumerate()
            .filter(|(_, e)| *e == elem)
            .map(|(i, _)| len - 1 - i)
            .take(limit)
            .collect()
    };
    let removed = hits.len();
    if removed > 0 {
        hits.sort_unstable();
        if removed > 8 {
            // Many hits: rebuild once instead of shifting each node per removal.
            let mut next = List::new();
            let mut h = hits.iter().peekable();
            for (i, e) in l.iter().enumerate() {
                if h.peek() == Some(&&i) {
                    h.next();
                } else {
                    next.push_back(e, fill);
                }
            }
            *l = next;
        } else {
            for &i in hits.iter().rev() {
                l.remove(i);
            }
        }
        ctx.dirty(removed as u64);
        ctx.notify(class::LIST, "lrem", key);
        delete_if_empty(ctx, ks, key)?;
    }
    ctx.out.int(removed as i64);
    Ok(())
}

pub fn lpos(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let opt = &args[j];
        if eq_ic(opt, "RANK") && more {
            j += 1;
            rank = int(&args[j])?;
            if rank == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if eq_ic(opt, "COUNT") && more {
            j += 1;
            count = Some(positive(&args[j], "COUNT can't be negative")?);
        } else if eq_ic(opt, "MAXLEN") && more {
            j += 1;
            maxlen = positive(&args[j], "MAXLEN can't be negative")?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let Some(l) = list_read(ks, ctx.client.db, &args[1])? else {
        if count.is_some() {
            ctx.out.array(0);
        } else {
            ctx.out.null();
        }
        return Ok(());
    };
    let elem = &args[2][..];
    let len = l.len();
    let from_tail = rank < 0;
    // Redis negates LONG_MIN into itself; any match then satisfies `matches >= rank`.
    let rank = if from_tail { rank.wrapping_neg() } else { rank };
    let scan = if maxlen == 0 {
        len
    } else {
        (maxlen as u64).min(len as u64) as usize
    };
    let want = match count {
        Some(0) => usize::MAX,
        Some(c) => c as usize,
        None => 1,
    };
    let mut found: SmallVec<[i64; 8]> = SmallVec::new();
    let mut matches: i64 = 0;
    let mut check = |i: usize, e: &[u8]| {
        if e == elem {
            matches += 1;
            if matches >= rank {
                found.push(i as i64);
                return found.len() >= want;
            }
        }
        false
    };
    if from_tail {
        for (k, e) in l.iter().rev().take(scan).enumerate() {
            if check(len - 1 - k, e) {
                break;
            }
        }
    } else {
        for (i, e) in l.iter().take(scan).enumerate() {
            if check(i, e) {
                break;
            }
        }
    }
    if count.is_some() {
        ctx.out.array(found.len());
        for i in found {
            ctx.out.int(i);
        }
    } else {
        match found.first() {
            Some(&i) => ctx.out.int(i),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

/// LMOVE's work once both keys are checked: pop from `src`, push onto `dst`, reply the element.
/// None when `src` is missing or empty.
fn move_one(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<()>, CmdError> {
    let db = ctx.client.db;
    let fill = fill(ctx);
    let Some(s) = list_mut(ks, db, src)? else {
        return Ok(None);
    };
    if s.is_empty() {
        return Ok(None);
    }
    // The destination's type is checked before anything is popped.
    list_mut(ks, db, dst)?;
    let Some(v) = list_mut(ks, db, src)?.and_then(|s| pop(s, from)) else {
        return Ok(None);
    };
    match list_mut(ks, db, dst)? {
        Some(d) => push(d, to, &v, fill),
        None => {
            let mut d = List::new();
            push(&mut d, to, &v, fill);
            ks.set(db, dst, Value::List(Box::new(d)), None, false)?;
        }
    }
    ctx.notify(class::LIST, to.push_event(), dst);
    ctx.notify(class::LIST, from.pop_event(), src);
    delete_if_empty(ctx, ks, src)?;
    ctx.dirty(1);
    ctx.out.bulk(&v);
    Ok(Some(()))
}

fn lmove_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    from: End,
    to: End,
) -> CmdResult {
    if move_one(ctx, ks, &args[1], &args[2], from, to)?.is_none() {
        // Nothing moved: nothing to log.
        ctx.log_as = Some(Vec::new());
        ctx.out.null();
    }
    Ok(())
}

pub fn lmove(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let from = End::parse(&args[3])?;
    let to = End::parse(&args[4])?;
    lmove_generic(ctx, ks, args, from, to)
}

pub fn rpoplpush(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    lmove_generic(ctx, ks, args, End::Right, End::Left)
}

fn blmove_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    from: End,
    to: End,
    timeout_arg: &[u8],
) -> CmdResult {
    let timeout = blocking::timeout_arg(timeout_arg, ctx.now_ms)?;
    let db = ctx.client.db;
    let is_list = ks
        .lookup_write(db, &args[1])?
        .map(|e| matches!(e.value, Value::List(_)));
    match is_list {
        Some(false) => blocking::skip_wrong_type(ctx)?,
        Some(true) if move_one(ctx, ks, &args[1], &args[2], from, to)?.is_some() => {
            // Logged as the non-blocking form (Redis propagates LMOVE / RPOPLPUSH): a replica
            // must never block on it.
            let mut logged = args[..args.len() - 1].to_vec();
            logged[0] = Bytes::from_static(if args.len() == 6 {
                b"LMOVE"
            } else {
                b"RPOPLPUSH"
            });
            ctx.log_as = Some(logged);
            return Ok(());
        }
        _ => {}
    }
    blocking::block(ctx, &args[1..2], timeout, DenyReply::NullBulk)
}

pub fn blmove(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let from = End::parse(&args[3])?;
    let to = End::parse(&args[4])?;
    blmove_generic(ctx, ks, args, from, to, &args[5])
}

pub fn brpoplpush(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    blmove_generic(ctx, ks, args, End::Right, End::Left, &args[3])
}

/// Pops up to `count` from the first non-empty list among `keys` and replies
/// `[key, [elements]]` (LMPOP) or `[key, element]` (BLPOP). Returns false when all are empty.
fn pop_first(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    keys: &[Bytes],
    end: End,
    count: Option<usize>,
) -> Result<bool, CmdError> {
    let db = ctx.client.db;
    for key in blocking::woken_order(ctx, keys)
        .into_iter()
        .map(|i| &keys[i])
    {
        let l = match ks.lookup_write(db, key)? {
            None => continue,
            Some(e) => match &mut e.value {
                Value::List(l) => l,
                _ => {
                    blocking::skip_wrong_type(ctx)?;
                    continue;
                }
            },
        };
        if l.is_empty() {
            continue;
        }
        ctx.out.array(2);
        ctx.out.bulk(key);
        let mut popped = None;
        match count {
            None => {
                let v = pop(l, end).unwrap_or_default();
                ctx.out.bulk(&v);
            }
            Some(c) => {
                let n = c.min(l.len());
                ctx.out.array(n);
                for _ in 0..n {
                    let v = pop(l, end).unwrap_or_default();
                    ctx.out.bulk(&v);
                }
                popped = Some(n);
            }
        }
        // Logged as LPOP/RPOP of what was taken from this key (Redis propagates LMPOP, BLMPOP,
        // BLPOP and BRPOP so): a replica never blocks, nor looks at the other keys.
        let name: &'static [u8] = match end {
            End::Left => b"LPOP",
            End::Right => b"RPOP",
        };
        let mut logged = vec![Bytes::from_static(name), key.clone()];
        logged.extend(popped.map(|n| Bytes::from(n.to_string())));
        ctx.log_as = Some(logged);
        ctx.dirty(1);
        ctx.notify(class::LIST, end.pop_event(), key);
        delete_if_empty(ctx, ks, key)?;
        return Ok(true);
    }
    Ok(false)
}

fn bpop_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], end: End) -> CmdResult {
    let timeout = blocking::timeout_arg(&args[args.len() - 1], ctx.now_ms)?;
    let keys = &args[1..args.len() - 1];
    if pop_first(ctx, ks, keys, end, None)? {
        return Ok(());
    }
    blocking::block(ctx, keys, timeout, DenyReply::NullArray)
}

pub fn blpop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, ks, args, End::Left)
}

pub fn brpop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, ks, args, End::Right)
}

/// `numkeys key... <where> [COUNT n]` from `args[at]` on, as LMPOP/BLMPOP/ZMPOP/BZMPOP parse
/// it. Returns (keys, where argument, count).
pub fn parse_mpop(args: &[Bytes], at: usize) -> Result<(&[Bytes], &Bytes, Option<i64>), CmdError> {
    let numkeys = int(&args[at])
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| CmdError::err("numkeys should be greater than 0"))?;
    let where_idx = (at as u64 + 1).saturating_add(numkeys as u64);
    if where_idx >= args.len() as u64 {
        return Err(CmdError::Syntax);
    }
    let where_idx = where_idx as usize;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && eq_ic(&args[j], "COUNT") && j + 1 < args.len() {
            let c = int(&args[j + 1])
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| CmdError::err("count should be greater than 0"))?;
            count = Some(c);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((&args[at + 1..where_idx], &args[where_idx], count))
}

pub fn lmpop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (keys, whr, count) = parse_mpop(args, 1)?;
    let end = End::parse(whr)?;
    let count = count.unwrap_or(1) as usize;
    if !pop_first(ctx, ks, keys, end, Some(count))? {
        ctx.log_as = Some(Vec::new());
        ctx.out.null_array();
    }
    Ok(())
}

pub fn blmpop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let timeout = blocking::timeout_arg(&args[1], ctx.now_ms)?;
    let (keys, whr, count) = parse_mpop(args, 2)?;
    let end = End::parse(whr)?;
    let count = count.unwrap_or(1) as usize;
    if pop_first(ctx, ks, keys, end, Some(count))? {
        return Ok(());
    }
    blocking::block(ctx, keys, timeout, DenyReply::NullArray)
}

/// Key positions of `numkeys key...` commands: `numkeys` at `args[at]`, keys after it. A bad
/// `numkeys` yields no keys; the handler then replies the error before touching any key.
pub fn numkeys_positions(args: &[Bytes], at: usize) -> SmallVec<[usize; 4]> {
    let Some(n) = args.get(at).and_then(|a| int(a).ok()).filter(|&n| n > 0) else {
        return SmallVec::new();
    };
    // More keys announced than there are arguments: none (Redis's genericGetKeys; the command
    // itself answers with its error).
    if n as u64 > (args.len() - at - 1) as u64 {
        return SmallVec::new();
    }
    (at + 1..=at + n as usize).collect()
}

fn lmpop_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    numkeys_positions(args, 1)
}

fn blmpop_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    numkeys_positions(args, 2)
}

const BLOCK_W: u32 = WRITE | NOSCRIPT | BLOCKING;

pub static COMMANDS: &[Command] = &[
    cmd!(
        "lpush",
        -3,
        WMF,
        KEY1,
        "list",
        "1.0.0",
        lpush,
        "Prepends one or more elements to a list. Creates the key if it doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "rpush",
        -3,
        WMF,
        KEY1,
        "list",
        "1.0.0",
        rpush,
        "Appends one or more elements to a list. Creates the key if it doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "lpushx",
        -3,
        WMF,
        KEY1,
        "list",
        "2.2.0",
        lpushx,
        "Prepends one or more elements to a list only when the list exists."
    ).specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "rpushx",
        -3,
        WMF,
        KEY1,
        "list",
        "2.2.0",
        rpushx,
        "Appends an element to a list only when the list exists."
    ).specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "lpop",
        -2,
        WF,
        KEY1,
        "list",
        "1.0.0",
        lpop,
        "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1)]),
    cmd!(
        "rpop",
        -2,
        WF,
        KEY1,
        "list",
        "1.0.0",
        rpop,
        "Returns and removes the last elements of a list. Deletes the list if the last element was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1)]),
    cmd!(
        "llen",
        2,
        READONLY | FAST,
        KEY1,
        "list",
        "1.0.0",
        llen,
        "Returns the length of a list."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "lindex",
        3,
        READONLY,
        KEY1,
        "list",
        "1.0.0",
        lindex,
        "Returns an element from a list by its index."
    ),
    cmd!(
        "lset",
        4,
        WM,
        KEY1,
        "list",
        "1.0.0",
        lset,
        "Sets the value of an element in a list by its index."
    ),
    cmd!(
        "linsert",
        5,
        WM,
        KEY1,
        "list",
        "2.2.0",
        linsert,
        "Inserts an element before or after another element in a list."
    ).specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "lrange",
        4,
        READONLY,
        KEY1,
        "list",
        "1.0.0",
        lrange,
        "Returns a range of elements from a list."
    ),
    cmd!(
        "ltrim",
        4,
        W,
        KEY1,
        "list",
        "1.0.0",
        ltrim,
        "Removes elements from both ends a list. Deletes the list if all elements were trimmed."
    ).specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "lrem",
        4,
        W,
        KEY1,
        "list",
        "1.0.0",
        lrem,
        "Removes elements from a list. Deletes the list if the last element was removed."
    ).specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "lpos",
        -3,
        READONLY,
        KEY1,
        "list",
        "6.0.6",
        lpos,
        "Returns the index of matching elements in a list."
    ),
    cmd!(
        "lmove",
        5,
        WM,
        KEY12,
        "list",
        "6.2.0",
        lmove,
        "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    cmd!(
        "rpoplpush",
        3,
        WM,
        KEY12,
        "list",
        "1.2.0",
        rpoplpush,
        "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    Command {
        keys_fn: Some(lmpop_keys),
        flags: WRITE | MOVABLEKEYS,
        key_specs: &[KeySpec::keynum(&["RW", "access", "delete"], 1, 0, 1, 1)],
        ..cmd!(
            "lmpop",
            -4,
            W,
            (0, 0, 0),
            "list",
            "7.0.0",
            lmpop,
            "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."
        )
    },
    cmd!(
        "blpop",
        -3,
        BLOCK_W,
        (1, -2, 1),
        "list",
        "2.0.0",
        blpop,
        "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, -2, 1)]),
    cmd!(
        "brpop",
        -3,
        BLOCK_W,
        (1, -2, 1),
        "list",
        "2.0.0",
        brpop,
        "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, -2, 1)]),
    cmd!(
        "blmove",
        6,
        BLOCK_W | DENYOOM,
        KEY12,
        "list",
        "6.2.0",
        blmove,
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    cmd!(
        "brpoplpush",
        4,
        BLOCK_W | DENYOOM,
        KEY12,
        "list",
        "2.2.0",
        brpoplpush,
        "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    Command {
        keys_fn: Some(blmpop_keys),
        flags: WRITE | BLOCKING | MOVABLEKEYS,
        key_specs: &[KeySpec::keynum(&["RW", "access", "delete"], 2, 0, 1, 1)],
        ..cmd!(
            "blmpop",
            -5,
            W,
            (0, 0, 0),
            "list",
            "7.0.0",
            blmpop,
            "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped."
        )
    },
];
