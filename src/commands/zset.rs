//! Sorted-set commands: ZADD and friends, ranks and scores, the ZRANGE family (rank, score and
//! lex ranges, REV, LIMIT, WITHSCORES, STORE), range removals, pops (ZPOPMIN, ZMPOP, blocking
//! BZPOPMIN/BZPOPMAX/BZMPOP), ZRANDMEMBER, ZUNION/ZINTER/ZDIFF (+STORE, WEIGHTS, AGGREGATE),
//! ZINTERCARD and ZSCAN. Arguments are checked in Redis 7.0's order so the first error a bad
//! command meets is Redis's, and scores print as Redis prints them (`%.17g`).

use bytes::Bytes;
use smallvec::SmallVec;

use super::Ctx;
use super::args::{eq_ic, int, parse_float};
use super::blocking::{self, DenyReply};
use super::error::{CmdError, CmdResult};
use super::list::{numkeys_positions, parse_mpop, positive};
use super::table::KeySpec;
use super::table::{Command, cmd};
use super::table::{KEY1, KEY12, R, RF, W, WF, WM, WMF};
use crate::commands::flags::*;
use crate::glob::glob_match;
use crate::observe::events::class;
use crate::resp::Reply;
use crate::resp::writer::fmt_double;
use crate::store::zset::{ZLimits, ZSet};
use crate::store::{Keyspace, Sds, Value};

fn limits(ctx: &Ctx) -> ZLimits {
    let c = ctx.node.config.read();
    ZLimits {
        entries: c.zset_max_listpack_entries,
        value: c.zset_max_listpack_value,
    }
}

fn pick(v: &mut Value) -> Option<&mut ZSet> {
    match v {
        Value::ZSet(x) => Some(x),
        _ => None,
    }
}

fn zset_mut<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut ZSet>, CmdError> {
    super::typed(ks.lookup_write(db, key)?, pick)
}

fn zset_read<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut ZSet>, CmdError> {
    super::typed(ks.lookup_read(db, key)?, pick)
}

/// Deletes `key` if its set emptied, with the "del" event.
fn delete_if_empty(ctx: &Ctx, ks: &mut Keyspace, key: &[u8]) -> Result<bool, CmdError> {
    let db = ctx.client.db;
    if zset_mut(ks, db, key)?.is_some_and(|z| z.is_empty()) {
        ks.remove(db, key)?;
        ctx.notify(class::GENERIC, "del", key);
        return Ok(true);
    }
    Ok(false)
}

/// A score as `strtod` reads it for range bounds: leading spaces allowed, the empty string is 0,
/// NaN refused.
fn strtod(b: &[u8]) -> Option<f64> {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    if start == b.len() {
        return if b.is_empty() { Some(0.0) } else { None };
    }
    parse_float(&b[start..])
}

/// The text Redis keeps for a score in a listpack (`d2string`): integers in full, else `%.17g`
/// (a listpack never holds -0: the "listpack" encoding stores it as 0).
fn d2string(d: f64) -> String {
    if d.is_finite() && d == d.trunc() && d.abs() <= (1u64 << 62) as f64 && d != 0.0 {
        return (d as i64).to_string();
    }
    fmt_double(d)
}

/// A range over the order, as Redis's `zrangespec` / `zlexrangespec`.
trait ZRange {
    fn gte_min(&self, score: f64, member: &[u8]) -> bool;
    fn lte_max(&self, score: f64, member: &[u8]) -> bool;
}

struct ScoreRange {
    min: f64,
    minex: bool,
    max: f64,
    maxex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
        let err = || CmdError::err("min or max is not a float");
        let one = |b: &[u8]| -> Result<(f64, bool), CmdError> {
            match b.first() {
                Some(b'(') => Ok((strtod(&b[1..]).ok_or_else(err)?, true)),
                _ => Ok((strtod(b).ok_or_else(err)?, false)),
            }
        };
        let (min, minex) = one(min)?;
        let (max, maxex) = one(max)?;
        Ok(ScoreRange {
            min,
            minex,
            max,
            maxex,
        })
    }
}

impl ZRange for ScoreRange {
    fn gte_min(&self, s: f64, _: &[u8]) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }
    fn lte_max(&self, s: f64, _: &[u8]) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }
}

enum LexItem {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

struct LexRange {
    min: LexItem,
    max: LexItem,
}

impl LexRange {
    fn parse(min: &Bytes, max: &Bytes) -> Result<LexRange, CmdError> {
        let one = |b: &Bytes| -> Result<LexItem, CmdError> {
            match b.first() {
                Some(b'+') if b.len() == 1 => Ok(LexItem::Max),
                Some(b'-') if b.len() == 1 => Ok(LexItem::Min),
                Some(b'(') => Ok(LexItem::Excl(b.slice(1..))),
                Some(b'[') => Ok(LexItem::Incl(b.slice(1..))),
                _ => Err(CmdError::err("min or max not valid string range item")),
            }
        };
        Ok(LexRange {
            min: one(min)?,
            max: one(max)?,
        })
    }
}

impl ZRange for LexRange {
    fn gte_min(&self, _: f64, m: &[u8]) -> bool {
        match &self.min {
            LexItem::Min => true,
            LexItem::Max => false,
            LexItem::Incl(x) => m >= &x[..],
            LexItem::Excl(x) => m > &x[..],
        }
    }
    fn lte_max(&self, _: f64, m: &[u8]) -> bool {
        match &self.max {
            LexItem::Min => false,
            LexItem::Max => true,
            LexItem::Incl(x) => m <= &x[..],
            LexItem::Excl(x) => m < &x[..],
        }
    }
}

/// Ascending ranks `[lo, hi)` of the elements in `r` (Redis's first/last-in-range walks).
fn rank_span(z: &ZSet, r: &dyn ZRange) -> (usize, usize) {
    let lo = z.count_while(|s, m| !r.gte_min(s, m));
    let hi = z.count_while(|s, m| r.lte_max(s, m));
    (lo, hi.max(lo))
}

/// Rank indexes as LRANGE normalises them: None when empty.
fn clamp_ranks(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
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

/// Writes `(member, score)` pairs as ZRANGE does: flat in RESP2, `[member, score]` pairs in
/// RESP3 when WITHSCORES.
fn reply_pairs<'a>(
    out: &mut Reply,
    items: impl ExactSizeIterator<Item = (&'a [u8], f64)>,
    withscores: bool,
) {
    let n = items.len();
    let resp3 = out.resp3();
    out.array(if withscores && !resp3 { n * 2 } else { n });
    for (m, s) in items {
        if withscores && resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    }
}

// ---- ZADD / ZINCRBY -------------------------------------------------------------------------

const NX: u8 = 1;
const XX: u8 = 2;
const GT: u8 = 4;
const LT: u8 = 8;
const INCR: u8 = 16;

fn zadd_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], mut flags: u8) -> CmdResult {
    let mut ch = false;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq_ic(a, "nx") {
            flags |= NX;
        } else if eq_ic(a, "xx") {
            flags |= XX;
        } else if eq_ic(a, "ch") {
            ch = true;
        } else if eq_ic(a, "incr") {
            flags |= INCR;
        } else if eq_ic(a, "gt") {
            flags |= GT;
        } else if eq_ic(a, "lt") {
            flags |= LT;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let (nx, xx, gt, lt, incr) = (
        flags & NX != 0,
        flags & XX != 0,
        flags & GT != 0,
        flags & LT != 0,
        flags & INCR != 0,
    );
    if nx && xx {
        return Err(CmdError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    let pairs = rest.len() / 2;
    if incr && pairs > 1 {
        return Err(CmdError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let mut scores: SmallVec<[f64; 8]> = SmallVec::with_capacity(pairs);
    for p in rest.chunks(2) {
        scores.push(parse_float(&p[0]).ok_or(CmdError::NotFloat)?);
    }
    let db = ctx.client.db;
    let key = &args[1];
    let lim = limits(ctx);
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0usize);
    let mut score = 0.0;
    let mut nan = false;
    let exists = zset_mut(ks, db, key)?.is_some();
    if !exists && !xx {
        let maxlen = rest.chunks(2).map(|p| p[1].len()).max().unwrap_or(0);
        let z = ZSet::new(lim, pairs, maxlen);
        ks.set(db, key, Value::ZSet(z), None, false)?;
    }
    if let Some(z) = zset_mut(ks, db, key)? {
        for (p, &s) in rest.chunks(2).zip(scores.iter()) {
            let member = &p[1][..];
            match z.score(member) {
                Some(cur) => {
                    if nx {
                        continue;
                    }
                    let mut new = s;
                    if incr {
                        new += cur;
                        if new.is_nan() {
                            nan = true;
                            break;
                        }
                    }
                    if (lt && new >= cur) || (gt && new <= cur) {
                        continue;
                    }
                    score = new;
                    processed += 1;
                    if new != cur {
                        z.rescore(member, new);
                        updated += 1;
                    }
                }
                None => {
                    if xx {
                        continue;
                    }
                    z.add_new(member, s, lim);
                    score = s;
                    added += 1;
                    processed += 1;
                }
            }
        }
    }
    if added + updated > 0 {
        ctx.dirty((added + updated) as u64);
        ctx.notify(class::ZSET, if incr { "zincr" } else { "zadd" }, key);
    }
    if nan {
        return Err(CmdError::err("resulting score is not a number (NaN)"));
    }
    if incr {
        if processed > 0 {
            ctx.out.double(score);
        } else {
            ctx.out.null();
        }
    } else {
        ctx.out.int(if ch { added + updated } else { added });
    }
    Ok(())
}

pub fn zadd(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, ks, args, 0)
}

pub fn zincrby(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, ks, args, INCR)
}

pub fn zrem(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let Some(z) = zset_mut(ks, db, key)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for m in &args[2..] {
        if z.remove(m).is_some() {
            n += 1;
        }
        if z.is_empty() {
            break;
        }
    }
    if n > 0 {
        ctx.dirty(n as u64);
        ctx.notify(class::ZSET, "zrem", key);
        delete_if_empty(ctx, ks, key)?;
    }
    ctx.out.int(n);
    Ok(())
}

pub fn zcard(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = zset_read(ks, ctx.client.db, &args[1])?.map_or(0, |z| z.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zscore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    match zset_read(ks, ctx.client.db, &args[1])?.and_then(|z| z.score(&args[2])) {
        Some(s) => ctx.out.double(s),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn zmscore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let z = zset_read(ks, ctx.client.db, &args[1])?;
    ctx.out.array(args.len() - 2);
    for m in &args[2..] {
        match z.as_ref().and_then(|z| z.score(m)) {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn rank_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], rev: bool) -> CmdResult {
    let Some(z) = zset_read(ks, ctx.client.db, &args[1])? else {
        ctx.out.null();
        return Ok(());
    };
    match z.rank(&args[2]) {
        Some(r) => ctx.out.int(if rev { z.len() - 1 - r } else { r } as i64),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn zrank(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    rank_generic(ctx, ks, args, false)
}

pub fn zrevrank(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    rank_generic(ctx, ks, args, true)
}

pub fn zcount(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let r = ScoreRange::parse(&args[2], &args[3])?;
    let n = match zset_read(ks, ctx.client.db, &args[1])? {
        Some(z) => {
            let (lo, hi) = rank_span(z, &r);
            hi - lo
        }
        None => 0,
    };
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zlexcount(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let r = LexRange::parse(&args[2], &args[3])?;
    let n = match zset_read(ks, ctx.client.db, &args[1])? {
        Some(z) => {
            let (lo, hi) = rank_span(z, &r);
            hi - lo
        }
        None => 0,
    };
    ctx.out.int(n as i64);
    Ok(())
}

// ---- ZRANGE family --------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

enum Parsed {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// The selected elements of a ZRANGE-style query, in reply order.
fn select<'z>(
    z: &'z ZSet,
    spec: &Parsed,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<(&'z [u8], f64)> {
    let len = z.len();
    let (lo, hi) = match spec {
        Parsed::Rank(start, end) => match clamp_ranks(*start, *end, len) {
            None => return Vec::new(),
            // Rank ranges count from the end when reversed.
            Some((s, e)) if rev => (len - 1 - e, len - s),
            Some((s, e)) => (s, e + 1),
        },
        Parsed::Score(r) => rank_span(z, r),
        Parsed::Lex(r) => rank_span(z, r),
    };
    // Redis: a negative offset skips everything; a negative limit means no limit.
    if offset < 0 {
        return Vec::new();
    }
    let avail = (hi - lo).saturating_sub(offset as usize);
    let n = if limit < 0 {
        avail
    } else {
        avail.min(limit as usize)
    };
    if n == 0 {
        return Vec::new();
    }
    let start = if rev {
        hi - 1 - offset as usize
    } else {
        lo + offset as usize
    };
    z.iter_from(start, rev).take(n).collect()
}

/// Redis's `zrangeGenericCommand`: `key_at` is the source key's position; `store` the
/// destination of ZRANGESTORE.
fn zrange_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    key_at: usize,
    store: Option<&Bytes>,
    mut rtype: RangeType,
    mut rev: Option<bool>,
) -> CmdResult {
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = key_at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if store.is_none() && eq_ic(a, "withscores") {
            withscores = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            offset = int(&args[j + 1])?;
            limit = int(&args[j + 2])?;
            j += 2;
        } else if rev.is_none() && eq_ic(a, "rev") {
            rev = Some(true);
        } else if rtype == RangeType::Auto && eq_ic(a, "bylex") {
            rtype = RangeType::Lex;
        } else if rtype == RangeType::Auto && eq_ic(a, "byscore") {
            rtype = RangeType::Score;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if rtype == RangeType::Auto {
        rtype = RangeType::Rank;
    }
    if limit != -1 && rtype == RangeType::Rank {
        return Err(CmdError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && rtype == RangeType::Lex {
        return Err(CmdError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut min, mut max) = (&args[key_at + 1], &args[key_at + 2]);
    if rev && rtype != RangeType::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    let spec = match rtype {
        RangeType::Score => Parsed::Score(ScoreRange::parse(min, max)?),
        RangeType::Lex => Parsed::Lex(LexRange::parse(min, max)?),
        _ => Parsed::Rank(int(min)?, int(max)?),
    };
    let db = ctx.client.db;
    let key = &args[key_at];
    let Some(dst) = store else {
        let Some(z) = zset_read(ks, db, key)? else {
            ctx.out.array(0);
            return Ok(());
        };
        let items = select(z, &spec, rev, offset, limit);
        reply_pairs(&mut ctx.out, items.into_iter(), withscores);
        return Ok(());
    };
    let items: Vec<(Sds, f64)> = match zset_read(ks, db, key)? {
        Some(z) => select(z, &spec, rev, offset, limit)
            .into_iter()
            .map(|(m, s)| (Sds::new(m), s))
            .collect(),
        None => Vec::new(),
    };
    store_result(ctx, ks, dst, items, "zrangestore")
}

/// Stores a computed set at `dst` (or deletes `dst` when it is empty) and replies its size.
pub(crate) fn store_result(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    dst: &[u8],
    items: Vec<(Sds, f64)>,
    event: &'static str,
) -> CmdResult {
    let db = ctx.client.db;
    if items.is_empty() {
        if ks.remove(db, dst)?.is_some() {
            ctx.notify(class::GENERIC, "del", dst);
            ctx.dirty(1);
        }
        ctx.out.int(0);
        return Ok(());
    }
    let n = items.len();
    let z = ZSet::from_items(&items, limits(ctx));
    ks.set(db, dst, Value::ZSet(z), None, false)?;
    ctx.dirty(1);
    ctx.notify(class::ZSET, event, dst);
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zrange(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, ks, args, 1, None, RangeType::Auto, None)
}

pub fn zrangestore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, ks, args, 2, Some(&args[1]), RangeType::Auto, None)
}

pub fn zrevrange(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, ks, args, 1, None, RangeType::Rank, Some(true))
}

pub fn zrangebyscore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, ks, args, 1, None, RangeType::Score, Some(false))
}

pub fn zrevrangebyscore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, ks, args, 1, None, RangeType::Score, Some(true))
}

pub fn zrangebylex(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, ks, args, 1, None, RangeType::Lex, Some(false))
}

pub fn zrevrangebylex(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, ks, args, 1, None, RangeType::Lex, Some(true))
}

fn zremrange_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    rtype: RangeType,
) -> CmdResult {
    let spec = match rtype {
        RangeType::Score => Parsed::Score(ScoreRange::parse(&args[2], &args[3])?),
        RangeType::Lex => Parsed::Lex(LexRange::parse(&args[2], &args[3])?),
        _ => Parsed::Rank(int(&args[2])?, int(&args[3])?),
    };
    let key = &args[1];
    let Some(z) = zset_mut(ks, ctx.client.db, key)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let doomed: Vec<Sds> = select(z, &spec, false, 0, -1)
        .into_iter()
        .map(|(m, _)| Sds::new(m))
        .collect();
    for m in &doomed {
        z.remove(m);
    }
    let n = doomed.len();
    if n > 0 {
        let event = match rtype {
            RangeType::Score => "zremrangebyscore",
            RangeType::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        ctx.notify(class::ZSET, event, key);
        delete_if_empty(ctx, ks, key)?;
        ctx.dirty(n as u64);
    }
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zremrangebyrank(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, ks, args, RangeType::Rank)
}

pub fn zremrangebyscore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, ks, args, RangeType::Score)
}

pub fn zremrangebylex(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, ks, args, RangeType::Lex)
}

// ---- pops -----------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// ZPOPMIN/ZPOPMAX: flat `member, score, ...` (nested pairs in RESP3 with a COUNT).
    Plain { nested: bool },
    /// BZPOPMIN/BZPOPMAX: `key, member, score`.
    Keyed,
    /// ZMPOP/BZMPOP: `key, [[member, score], ...]`.
    Multi,
}

/// Redis's `genericZpopCommand` once a non-empty set at `key` is found.
fn pop_from(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    key: &[u8],
    max: bool,
    count: usize,
    shape: Shape,
) -> CmdResult {
    let Some(z) = zset_mut(ks, ctx.client.db, key)? else {
        return Ok(());
    };
    let n = count.min(z.len());
    match shape {
        Shape::Plain { nested: false } => ctx.out.array(n * 2),
        Shape::Plain { nested: true } => ctx.out.array(n),
        Shape::Keyed => {
            ctx.out.array(n * 2 + 1);
            ctx.out.bulk(key);
        }
        Shape::Multi => {
            ctx.out.array(2);
            ctx.out.bulk(key);
            ctx.out.array(n);
        }
    }
    let nested = matches!(shape, Shape::Plain { nested: true } | Shape::Multi);
    for _ in 0..n {
        let at = if max { z.len() - 1 } else { 0 };
        let Some((m, s)) = z.at(at).map(|(m, s)| (Sds::new(m), s)) else {
            break;
        };
        z.remove(&m);
        if nested {
            ctx.out.array(2);
        }
        ctx.out.bulk(&m);
        ctx.out.double(s);
    }
    ctx.dirty(n as u64);
    ctx.notify(class::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
    // BZPOPMIN/BZPOPMAX, ZMPOP and BZMPOP are logged as ZPOPMIN/ZPOPMAX of this key (with the
    // count taken, for the last two), as Redis propagates them: a replica never blocks.
    if !matches!(shape, Shape::Plain { .. }) {
        let name: &'static [u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        let mut logged = vec![Bytes::from_static(name), Bytes::copy_from_slice(key)];
        if shape == Shape::Multi {
            logged.push(Bytes::from(n.to_string()));
        }
        ctx.log_as = Some(logged);
    }
    delete_if_empty(ctx, ks, key)?;
    Ok(())
}

fn zpop_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match args.get(2) {
        Some(a) => Some(positive(a, "value is out of range, must be positive")? as usize),
        None => None,
    };
    let key = &args[1];
    if zset_mut(ks, ctx.client.db, key)?.is_none() || count == Some(0) {
        ctx.out.array(0);
        return Ok(());
    }
    let nested = ctx.out.resp3() && count.is_some();
    pop_from(
        ctx,
        ks,
        key,
        max,
        count.unwrap_or(1),
        Shape::Plain { nested },
    )
}

pub fn zpopmin(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, ks, args, false)
}

pub fn zpopmax(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, ks, args, true)
}

/// The first key among `keys` holding a sorted set (WRONGTYPE on the first other type, unless a
/// blocked client re-runs).
fn first_zset(ctx: &Ctx, ks: &mut Keyspace, keys: &[Bytes]) -> Result<Option<Bytes>, CmdError> {
    for key in blocking::woken_order(ctx, keys)
        .into_iter()
        .map(|i| &keys[i])
    {
        match ks.lookup_write(ctx.client.db, key)? {
            None => continue,
            Some(e) => match &e.value {
                Value::ZSet(z) if !z.is_empty() => return Ok(Some(key.clone())),
                Value::ZSet(_) => continue,
                _ => blocking::skip_wrong_type(ctx)?,
            },
        }
    }
    Ok(None)
}

fn where_max(arg: &[u8]) -> Result<bool, CmdError> {
    if eq_ic(arg, "MIN") {
        Ok(false)
    } else if eq_ic(arg, "MAX") {
        Ok(true)
    } else {
        Err(CmdError::Syntax)
    }
}

pub fn zmpop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (keys, whr, count) = parse_mpop(args, 1)?;
    let max = where_max(whr)?;
    match first_zset(ctx, ks, keys)? {
        Some(k) => pop_from(ctx, ks, &k, max, count.unwrap_or(1) as usize, Shape::Multi),
        None => {
            ctx.log_as = Some(Vec::new());
            ctx.out.null_array();
            Ok(())
        }
    }
}

pub fn bzmpop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let timeout = blocking::timeout_arg(&args[1], ctx.now_ms)?;
    let (keys, whr, count) = parse_mpop(args, 2)?;
    let max = where_max(whr)?;
    match first_zset(ctx, ks, keys)? {
        Some(k) => pop_from(ctx, ks, &k, max, count.unwrap_or(1) as usize, Shape::Multi),
        None => blocking::block(ctx, keys, timeout, DenyReply::NullArray),
    }
}

fn bzpop_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], max: bool) -> CmdResult {
    let timeout = blocking::timeout_arg(&args[args.len() - 1], ctx.now_ms)?;
    let keys = &args[1..args.len() - 1];
    match first_zset(ctx, ks, keys)? {
        Some(k) => pop_from(ctx, ks, &k, max, 1, Shape::Keyed),
        None => blocking::block(ctx, keys, timeout, DenyReply::NullArray),
    }
}

pub fn bzpopmin(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    bzpop_generic(ctx, ks, args, false)
}

pub fn bzpopmax(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    bzpop_generic(ctx, ks, args, true)
}

// ---- ZRANDMEMBER, ZSCAN ---------------------------------------------------------------------

pub fn zrandmember(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    if args.len() == 2 {
        let Some(z) = zset_read(ks, db, &args[1])? else {
            ctx.out.null();
            return Ok(());
        };
        let r = rand::random_range(0..z.len());
        match z.at(r) {
            Some((m, _)) => ctx.out.bulk(m),
            None => ctx.out.null(),
        }
        return Ok(());
    }
    let l = int(&args[2])?;
    if l == i64::MIN {
        return Err(CmdError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let withscores = match args.get(3) {
        None => false,
        Some(a) if args.len() == 4 && eq_ic(a, "withscores") => {
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return Err(CmdError::err("value is out of range"));
            }
            true
        }
        Some(_) => return Err(CmdError::Syntax),
    };
    let Some(z) = zset_read(ks, db, &args[1])? else {
        ctx.out.array(0);
        return Ok(());
    };
    let size = z.len();
    let resp3 = ctx.out.resp3();
    let emit = |out: &mut Reply, m: &[u8], s: f64| {
        if withscores && resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    };
    let header =
        |out: &mut Reply, n: usize| out.array(if withscores && !resp3 { n * 2 } else { n });
    if l == 0 {
        ctx.out.array(0);
    } else if l < 0 {
        let n = l.unsigned_abs() as usize;
        header(&mut ctx.out, n);
        for _ in 0..n {
            if let Some((m, s)) = z.at(rand::random_range(0..size)) {
                emit(&mut ctx.out, m, s);
            }
        }
    } else if l as usize >= size {
        // Redis replies the whole set through its ZRANGE code, highest score first.
        header(&mut ctx.out, size);
        for (m, s) in z.iter_from(size - 1, true) {
            emit(&mut ctx.out, m, s);
        }
    } else {
        let n = l as usize;
        let picked = rand::seq::index::sample(&mut rand::rng(), size, n);
        header(&mut ctx.out, n);
        for r in picked.iter() {
            if let Some((m, s)) = z.at(r) {
                emit(&mut ctx.out, m, s);
            }
        }
    }
    Ok(())
}

/// ZSCAN. A "listpack" set is returned whole with cursor 0, as Redis does; a "skiplist" one is
/// walked in rank order with the cursor as the next rank.
pub fn zscan(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let cursor = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CmdError::err("invalid cursor"))?;
    let Some(z) = zset_read(ks, ctx.client.db, &args[1])? else {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
        return Ok(());
    };
    let mut count = 10usize;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - i >= 2;
        if eq_ic(&args[i], "count") && more {
            let c = int(&args[i + 1])?;
            if c < 1 {
                return Err(CmdError::Syntax);
            }
            count = c as usize;
        } else if eq_ic(&args[i], "match") && more {
            pattern = Some(&args[i + 1]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let packed = z.encoding() == "listpack";
    let (start, take) = if packed {
        (0, usize::MAX)
    } else {
        (cursor as usize, count)
    };
    let mut found: Vec<(&[u8], f64)> = Vec::new();
    let mut visited = 0;
    for (m, s) in z.iter_from(start, false).take(take) {
        visited += 1;
        if pattern.is_some_and(|p| &p[..] != b"*" && !glob_match(p, m, false)) {
            continue;
        }
        found.push((m, s));
    }
    let next = if packed || start + visited >= z.len() {
        0
    } else {
        start + visited
    };
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len() * 2);
    for (m, s) in found {
        ctx.out.bulk(m);
        ctx.out.bulk(d2string(s).as_bytes());
    }
    Ok(())
}

// ---- ZUNION / ZINTER / ZDIFF ----------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(a: Aggregate, target: &mut f64, v: f64) {
    match a {
        Aggregate::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => *target = target.min(v),
        Aggregate::Max => *target = target.max(v),
    }
}

/// Redis's `zunionInterDiffGenericCommand`. `numkeys_at` is the position of `numkeys`; `dst`
/// the STORE destination; `card_only` for ZINTERCARD.
fn zsetop(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    numkeys_at: usize,
    dst: Option<&Bytes>,
    op: SetOp,
    card_only: bool,
) -> CmdResult {
    let setnum = int(&args[numkeys_at])?;
    if setnum < 1 {
        return Err(CmdError::err(format!(
            "at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(&args[0]).to_lowercase()
        )));
    }
    if setnum as u64 > (args.len() - numkeys_at - 1) as u64 {
        return Err(CmdError::Syntax);
    }
    let setnum = setnum as usize;
    let db = ctx.client.db;
    let keys = &args[numkeys_at + 1..numkeys_at + 1 + setnum];
    // Snapshot the inputs: (members with scores, weight).
    let mut srcs: Vec<Option<Vec<(Sds, f64)>>> = Vec::with_capacity(setnum);
    for k in keys {
        // Read as reads, with a destination too (Redis's lookupKeyRead: keymiss events and
        // hit/miss counts).
        let found = ks.lookup_read(db, k)?;
        match found {
            None => srcs.push(None),
            Some(e) => match &e.value {
                Value::ZSet(z) => {
                    srcs.push(Some(z.iter().map(|(m, s)| (Sds::new(m), s)).collect()))
                }
                // Redis takes plain sets too, every member with score 1.
                Value::Set(set) => srcs.push(Some(set.iter().map(|m| (m.to_sds(), 1.0)).collect())),
                _ => return Err(CmdError::WrongType),
            },
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0i64;
    let mut j = numkeys_at + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && eq_ic(a, "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                *w = parse_float(&args[j + 1 + i])
                    .ok_or_else(|| CmdError::err("weight value is not a float"))?;
            }
            j += 1 + setnum;
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && eq_ic(a, "aggregate") {
            let v = &args[j + 1];
            agg = if eq_ic(v, "sum") {
                Aggregate::Sum
            } else if eq_ic(v, "min") {
                Aggregate::Min
            } else if eq_ic(v, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if dst.is_none() && !card_only && eq_ic(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && eq_ic(a, "limit") {
            limit = positive(&args[j + 1], "LIMIT can't be negative")?;
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut inputs: Vec<(Vec<(Sds, f64)>, f64)> = srcs
        .into_iter()
        .zip(weights)
        .map(|(s, w)| (s.unwrap_or_default(), w))
        .collect();
    let weighted = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() { 0.0 } else { v }
    };
    let mut result: Vec<(Sds, f64)> = match op {
        SetOp::Union | SetOp::Inter => {
            // Smallest inputs first, as Redis orders them (it changes nothing but float sums).
            inputs.sort_by_key(|(s, _)| s.len());
            let mut acc: std::collections::HashMap<Sds, f64> = std::collections::HashMap::new();
            let mut order: Vec<Sds> = Vec::new();
            if op == SetOp::Union {
                for (set, w) in &inputs {
                    for (m, s) in set {
                        let v = weighted(*s, *w);
                        match acc.get_mut(m) {
                            Some(t) => aggregate(agg, t, v),
                            None => {
                                acc.insert(m.clone(), v);
                                order.push(m.clone());
                            }
                        }
                    }
                }
            } else if let Some(((first, w0), rest)) = inputs.split_first() {
                let lookups: Vec<std::collections::HashMap<&[u8], f64>> = rest
                    .iter()
                    .map(|(s, _)| s.iter().map(|(m, sc)| (&m[..], *sc)).collect())
                    .collect();
                'member: for (m, s) in first {
                    let mut score = weighted(*s, *w0);
                    for (lk, (_, w)) in lookups.iter().zip(rest) {
                        match lk.get(&m[..]) {
                            Some(v) => aggregate(agg, &mut score, weighted(*v, *w)),
                            None => continue 'member,
                        }
                    }
                    if card_only {
                        order.push(m.clone());
                        if limit > 0 && order.len() as i64 >= limit {
                            break;
                        }
                        continue;
                    }
                    acc.insert(m.clone(), score);
                    order.push(m.clone());
                }
            }
            order
                .into_iter()
                .map(|m| {
                    let s = acc.get(&m).copied().unwrap_or(0.0);
                    (m, s)
                })
                .collect()
        }
        SetOp::Diff => {
            let mut it = inputs.into_iter();
            let first = it.next().map(|(s, _)| s).unwrap_or_default();
            let others: Vec<std::collections::HashSet<Sds>> = it
                .map(|(s, _)| s.into_iter().map(|(m, _)| m).collect())
                .collect();
            first
                .into_iter()
                .filter(|(m, _)| !others.iter().any(|o| o.contains(m)))
                .collect()
        }
    };
    if card_only {
        ctx.out.int(result.len() as i64);
        return Ok(());
    }
    result.sort_by(|a, b| crate::store::zset::cmp_entry(a.1, &a.0, b.1, &b.0));
    match dst {
        Some(d) => {
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            store_result(ctx, ks, d, result, event)
        }
        None => {
            reply_pairs(
                &mut ctx.out,
                result.iter().map(|(m, s)| (&m[..], *s)),
                withscores,
            );
            Ok(())
        }
    }
}

pub fn zunion(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, ks, args, 1, None, SetOp::Union, false)
}

pub fn zinter(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, ks, args, 1, None, SetOp::Inter, false)
}

pub fn zdiff(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, ks, args, 1, None, SetOp::Diff, false)
}

pub fn zintercard(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, ks, args, 1, None, SetOp::Inter, true)
}

pub fn zunionstore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, ks, args, 2, Some(&args[1]), SetOp::Union, false)
}

pub fn zinterstore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, ks, args, 2, Some(&args[1]), SetOp::Inter, false)
}

pub fn zdiffstore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, ks, args, 2, Some(&args[1]), SetOp::Diff, false)
}

fn keys_at1(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    numkeys_positions(args, 1)
}

fn keys_at2(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    numkeys_positions(args, 2)
}

/// ZUNIONSTORE and friends: the destination, then the `numkeys` sources.
fn store_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    let sources = numkeys_positions(args, 2);
    if sources.is_empty() {
        // No valid sources, no keys at all (Redis's genericGetKeys), the destination included.
        return sources;
    }
    let mut v: SmallVec<[usize; 4]> = SmallVec::new();
    v.push(1);
    v.extend(sources);
    v
}

const MOVABLE_R: u32 = READONLY | MOVABLEKEYS;

pub static COMMANDS: &[Command] = &[
    cmd!(
        "zadd",
        -4,
        WMF,
        KEY1,
        "sorted-set",
        "1.2.0",
        zadd,
        "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."
    ),
    cmd!(
        "zincrby",
        4,
        WMF,
        KEY1,
        "sorted-set",
        "1.2.0",
        zincrby,
        "Increments the score of a member in a sorted set."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "zrem",
        -3,
        WF,
        KEY1,
        "sorted-set",
        "1.2.0",
        zrem,
        "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed."
    ).specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "zcard",
        2,
        RF,
        KEY1,
        "sorted-set",
        "1.2.0",
        zcard,
        "Returns the number of members in a sorted set."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "zcount",
        4,
        RF,
        KEY1,
        "sorted-set",
        "2.0.0",
        zcount,
        "Returns the count of members in a sorted set that have scores within a range."
    ),
    cmd!(
        "zlexcount",
        4,
        RF,
        KEY1,
        "sorted-set",
        "2.8.9",
        zlexcount,
        "Returns the number of members in a sorted set within a lexicographical range."
    ),
    cmd!(
        "zscore",
        3,
        RF,
        KEY1,
        "sorted-set",
        "1.2.0",
        zscore,
        "Returns the score of a member in a sorted set."
    ),
    cmd!(
        "zmscore",
        -3,
        RF,
        KEY1,
        "sorted-set",
        "6.2.0",
        zmscore,
        "Returns the score of one or more members in a sorted set."
    ),
    cmd!(
        "zrank",
        3,
        RF,
        KEY1,
        "sorted-set",
        "2.0.0",
        zrank,
        "Returns the index of a member in a sorted set ordered by ascending scores."
    ),
    cmd!(
        "zrevrank",
        3,
        RF,
        KEY1,
        "sorted-set",
        "2.0.0",
        zrevrank,
        "Returns the index of a member in a sorted set ordered by descending scores."
    ),
    cmd!(
        "zrange",
        -4,
        R,
        KEY1,
        "sorted-set",
        "1.2.0",
        zrange,
        "Returns members in a sorted set within a range of indexes."
    ),
    cmd!(
        "zrangestore",
        -5,
        WM,
        KEY12,
        "sorted-set",
        "6.2.0",
        zrangestore,
        "Stores a range of members from sorted set in a key."
    ).specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::range(&["RO", "access"], 2, 0, 1)]),
    cmd!(
        "zrevrange",
        -4,
        R,
        KEY1,
        "sorted-set",
        "1.2.0",
        zrevrange,
        "Returns members in a sorted set within a range of indexes in reverse order."
    ),
    cmd!(
        "zrangebyscore",
        -4,
        R,
        KEY1,
        "sorted-set",
        "1.0.5",
        zrangebyscore,
        "Returns members in a sorted set within a range of scores."
    ),
    cmd!(
        "zrevrangebyscore",
        -4,
        R,
        KEY1,
        "sorted-set",
        "2.2.0",
        zrevrangebyscore,
        "Returns members in a sorted set within a range of scores in reverse order."
    ),
    cmd!(
        "zrangebylex",
        -4,
        R,
        KEY1,
        "sorted-set",
        "2.8.9",
        zrangebylex,
        "Returns members in a sorted set within a lexicographical range."
    ),
    cmd!(
        "zrevrangebylex",
        -4,
        R,
        KEY1,
        "sorted-set",
        "2.8.9",
        zrevrangebylex,
        "Returns members in a sorted set within a lexicographical range in reverse order."
    ),
    cmd!(
        "zremrangebyrank",
        4,
        W,
        KEY1,
        "sorted-set",
        "2.0.0",
        zremrangebyrank,
        "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."
    ).specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "zremrangebyscore",
        4,
        W,
        KEY1,
        "sorted-set",
        "1.2.0",
        zremrangebyscore,
        "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."
    ).specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "zremrangebylex",
        4,
        W,
        KEY1,
        "sorted-set",
        "2.8.9",
        zremrangebylex,
        "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."
    ).specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "zpopmin",
        -2,
        WF,
        KEY1,
        "sorted-set",
        "5.0.0",
        zpopmin,
        "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1)]),
    cmd!(
        "zpopmax",
        -2,
        WF,
        KEY1,
        "sorted-set",
        "5.0.0",
        zpopmax,
        "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1)]),
    Command {
        keys_fn: Some(keys_at1),
        flags: WRITE | MOVABLEKEYS,
        key_specs: &[KeySpec::keynum(&["RW", "access", "delete"], 1, 0, 1, 1)],
        ..cmd!(
            "zmpop",
            -4,
            W,
            (0, 0, 0),
            "sorted-set",
            "7.0.0",
            zmpop,
            "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped."
        )
    },
    cmd!(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        "sorted-set",
        "5.0.0",
        bzpopmin,
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, -2, 1)]),
    cmd!(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        "sorted-set",
        "5.0.0",
        bzpopmax,
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, -2, 1)]),
    Command {
        keys_fn: Some(keys_at2),
        flags: WRITE | BLOCKING | MOVABLEKEYS,
        key_specs: &[KeySpec::keynum(&["RW", "access", "delete"], 2, 0, 1, 1)],
        ..cmd!(
            "bzmpop",
            -5,
            W,
            (0, 0, 0),
            "sorted-set",
            "7.0.0",
            bzmpop,
            "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."
        )
    },
    cmd!(
        "zrandmember",
        -2,
        R,
        KEY1,
        "sorted-set",
        "6.2.0",
        zrandmember,
        "Returns one or more random members from a sorted set."
    ).tips(&["nondeterministic_output"]),
    cmd!(
        "zscan",
        -3,
        R,
        KEY1,
        "sorted-set",
        "2.8.0",
        zscan,
        "Iterates over members and scores of a sorted set."
    ).tips(&["nondeterministic_output"]),
    Command {
        keys_fn: Some(keys_at1),
        key_specs: &[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)],
        ..cmd!(
            "zunion",
            -3,
            MOVABLE_R,
            (0, 0, 0),
            "sorted-set",
            "6.2.0",
            zunion,
            "Returns the union of multiple sorted sets."
        )
    },
    Command {
        keys_fn: Some(keys_at1),
        key_specs: &[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)],
        ..cmd!(
            "zinter",
            -3,
            MOVABLE_R,
            (0, 0, 0),
            "sorted-set",
            "6.2.0",
            zinter,
            "Returns the intersect of multiple sorted sets."
        )
    },
    Command {
        keys_fn: Some(keys_at1),
        key_specs: &[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)],
        ..cmd!(
            "zdiff",
            -3,
            MOVABLE_R,
            (0, 0, 0),
            "sorted-set",
            "6.2.0",
            zdiff,
            "Returns the difference between multiple sorted sets."
        )
    },
    Command {
        keys_fn: Some(keys_at1),
        key_specs: &[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)],
        ..cmd!(
            "zintercard",
            -3,
            MOVABLE_R,
            (0, 0, 0),
            "sorted-set",
            "7.0.0",
            zintercard,
            "Returns the number of members of the intersect of multiple sorted sets."
        )
    },
    Command {
        keys_fn: Some(store_keys),
        key_specs: &[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)],
        ..cmd!(
            "zunionstore",
            -4,
            WM | MOVABLEKEYS,
            KEY1,
            "sorted-set",
            "2.0.0",
            zunionstore,
            "Stores the union of multiple sorted sets in a key."
        )
    },
    Command {
        keys_fn: Some(store_keys),
        key_specs: &[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)],
        ..cmd!(
            "zinterstore",
            -4,
            WM | MOVABLEKEYS,
            KEY1,
            "sorted-set",
            "2.0.0",
            zinterstore,
            "Stores the intersect of multiple sorted sets in a key."
        )
    },
    Command {
        keys_fn: Some(store_keys),
        key_specs: &[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)],
        ..cmd!(
            "zdiffstore",
            -4,
            WM | MOVABLEKEYS,
            KEY1,
            "sorted-set",
            "6.2.0",
            zdiffstore,
            "Stores the difference of multiple input sorted sets in a key."
        )
    },
];
