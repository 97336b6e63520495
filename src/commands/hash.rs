//! Hash commands: HSET HSETNX HGET HMGET HMSET HDEL HLEN HSTRLEN HEXISTS HKEYS HVALS HGETALL
//! HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN, with Redis 7.0's replies (`t_hash.c`).

use bytes::Bytes;

use super::args::{self, eq_ic, int, int_in_range};
use super::error::{CmdError, CmdResult};
use super::long_double::LongDouble;
use super::table::*;
use super::{Command, Ctx};
use crate::cmd;
use crate::glob::glob_match;
use crate::observe::events::class;
use crate::store::hash::Hash;
use crate::store::value::parse_i64_strict;
use crate::store::{Keyspace, Value};

/// The hash at `key` for reading: `None` when missing, WRONGTYPE when not a hash.
fn read_hash<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k Hash>, CmdError> {
    match ks.lookup_read(db, key)? {
        None => Ok(None),
        // A read takes a rehash step too (as Redis's dictFind): see `Dict::rehash_step`.
        Some(e) => match &mut e.value {
            Value::Hash(h) => {
                h.rehash_step();
                Ok(Some(h))
            }
            _ => Err(CmdError::WrongType),
        },
    }
}

fn write_hash<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut Hash>, CmdError> {
    match ks.lookup_write(db, key)? {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// Runs `f` on the hash at `key`, creating it when missing (stored only if `f` succeeds and
/// leaves it non-empty), as Redis's `hashTypeLookupWriteOrCreate`.
fn with_hash<R>(
    ks: &mut Keyspace,
    db: usize,
    key: &[u8],
    f: impl FnOnce(&mut Hash) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    match write_hash(ks, db, key)? {
        Some(h) => f(h),
        None => {
            let mut h = Hash::default();
            let r = f(&mut h)?;
            if !h.is_empty() {
                ks.set(db, key, Value::Hash(h), None, false)?;
            }
            Ok(r)
        }
    }
}

fn hset_pairs(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    cmd: &str,
) -> Result<i64, CmdError> {
    if args.len() % 2 == 1 {
        return Err(CmdError::Arity(cmd.into()));
    }
    let limits = ks.store().hash_limits.get();
    let db = ctx.client.db;
    let added = with_hash(ks, db, &args[1], |h| {
        let mut added = 0;
        for p in args[2..].chunks_exact(2) {
            h.prepare_write(&p[0], &p[1], limits);
        }
        for p in args[2..].chunks_exact(2) {
            added += h.set(&p[0], &p[1], limits) as i64;
        }
        Ok(added)
    })?;
    ctx.dirty((args.len() as u64 - 2) / 2);
    ctx.notify(class::HASH, "hset", &args[1]);
    Ok(added)
}

pub fn hset(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let added = hset_pairs(ctx, ks, args, "hset")?;
    ctx.out.int(added);
    Ok(())
}

pub fn hmset(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    hset_pairs(ctx, ks, args, "hmset")?;
    ctx.out.ok();
    Ok(())
}

pub fn hsetnx(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let limits = ks.store().hash_limits.get();
    let db = ctx.client.db;
    let set = with_hash(ks, db, &args[1], |h| {
        if h.contains(&args[2]) {
            return Ok(false);
        }
        h.set(&args[2], &args[3], limits);
        Ok(true)
    })?;
    if set {
        ctx.dirty(1);
        ctx.notify(class::HASH, "hset", &args[1]);
    }
    ctx.out.int(set as i64);
    Ok(())
}

pub fn hget(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    match read_hash(ks, ctx.client.db, &args[1])?.and_then(|h| h.get(&args[2])) {
        Some(v) => ctx.out.bulk(v),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn hmget(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let h = read_hash(ks, ctx.client.db, &args[1])?;
    ctx.out.array(args.len() - 2);
    for f in &args[2..] {
        match h.and_then(|h| h.get(f)) {
            Some(v) => ctx.out.bulk(v),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

pub fn hdel(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let (deleted, empty) = match write_hash(ks, db, key)? {
        None => (0, false),
        Some(h) => {
            let mut n = 0;
            for f in &args[2..] {
                n += h.remove(f) as i64;
                if h.is_empty() {
                    break;
                }
            }
            (n, h.is_empty())
        }
    };
    if deleted > 0 {
        ctx.dirty(deleted as u64);
        ctx.notify(class::HASH, "hdel", key);
        if empty {
            ks.remove(db, key)?;
            ctx.notify(class::GENERIC, "del", key);
        }
    }
    ctx.out.int(deleted);
    Ok(())
}

pub fn hlen(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = read_hash(ks, ctx.client.db, &args[1])?.map_or(0, |h| h.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn hstrlen(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = read_hash(ks, ctx.client.db, &args[1])?
        .and_then(|h| h.get(&args[2]))
        .map_or(0, |v| v.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn hexists(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let found = read_hash(ks, ctx.client.db, &args[1])?.is_some_and(|h| h.contains(&args[2]));
    ctx.out.int(found as i64);
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Part {
    Keys,
    Values,
    Both,
}

fn hgetall_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], part: Part) -> CmdResult {
    let h = read_hash(ks, ctx.client.db, &args[1])?;
    let n = h.map_or(0, |h| h.len());
    if part == Part::Both {
        ctx.out.map(n);
    } else {
        ctx.out.array(n);
    }
    if let Some(h) = h {
        for (f, v) in h.iter() {
            if part != Part::Values {
                ctx.out.bulk(f);
            }
            if part != Part::Keys {
                ctx.out.bulk(v);
            }
        }
    }
    Ok(())
}

pub fn hkeys(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    hgetall_generic(ctx, ks, args, Part::Keys)
}

pub fn hvals(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    hgetall_generic(ctx, ks, args, Part::Values)
}

pub fn hgetall(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    hgetall_generic(ctx, ks, args, Part::Both)
}

pub fn hincrby(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let incr = int(&args[3])?;
    let limits = ks.store().hash_limits.get();
    let db = ctx.client.db;
    let new = with_hash(ks, db, &args[1], |h| {
        let cur = match h.get(&args[2]) {
            Some(v) => {
                parse_i64_strict(v).ok_or_else(|| CmdError::err("hash value is not an integer"))?
            }
            None => 0,
        };
        let new = cur.checked_add(incr).ok_or(CmdError::Overflow)?;
        h.set(&args[2], itoa::Buffer::new().format(new).as_bytes(), limits);
        Ok(new)
    })?;
    ctx.dirty(1);
    ctx.notify(class::HASH, "hincrby", &args[1]);
    ctx.out.int(new);
    Ok(())
}

pub fn hincrbyfloat(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // In Redis's long double, so every digit of the result is Redis's.
    let incr = match LongDouble::parse(&args[3]).ok_or(CmdError::NotFloat)? {
        Ok(v) => v,
        Err(_) => return Err(CmdError::err("value is NaN or Infinity")),
    };
    let limits = ks.store().hash_limits.get();
    let db = ctx.client.db;
    let text = with_hash(ks, db, &args[1], |h| {
        let cur = match h.get(&args[2]) {
            Some(v) => {
                LongDouble::parse(v).ok_or_else(|| CmdError::err("hash value is not a float"))?
            }
            None => Ok(LongDouble::ZERO),
        };
        let new = cur
            .ok()
            .and_then(|c| c.checked_add(incr))
            .ok_or_else(|| CmdError::err("increment would produce NaN or Infinity"))?;
        let text = new.to_human();
        h.set(&args[2], text.as_bytes(), limits);
        Ok(text)
    })?;
    ctx.dirty(1);
    ctx.notify(class::HASH, "hincrbyfloat", &args[1]);
    // Logged as the value it made (Redis's HSET), as INCRBYFLOAT.
    ctx.log_as = Some(vec![
        Bytes::from_static(b"HSET"),
        args[1].clone(),
        args[2].clone(),
        Bytes::copy_from_slice(text.as_bytes()),
    ]);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

pub fn hrandfield(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    if args.len() == 2 {
        match read_hash(ks, db, &args[1])?.and_then(|h| h.random()) {
            Some((f, _)) => ctx.out.bulk(f),
            None => ctx.out.null(),
        }
        return Ok(());
    }
    let l = int_in_range(&args[2], -i64::MAX, i64::MAX)?;
    if args.len() > 4 || (args.len() == 4 && !eq_ic(&args[3], "WITHVALUES")) {
        return Err(CmdError::Syntax);
    }
    let withvalues = args.len() == 4;
    if withvalues && !(-i64::MAX / 2..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::err("value is out of range"));
    }
    let resp3 = ctx.out.resp3();
    let Some(h) = read_hash(ks, db, &args[1])? else {
        ctx.out.array(0);
        return Ok(());
    };
    let count = l.unsigned_abs() as usize;
    let out = &mut ctx.out;
    let pair = |out: &mut crate::resp::Reply, f: &[u8], v: &[u8]| {
        if withvalues && resp3 {
            out.array(2);
        }
        out.bulk(f);
        if withvalues {
            out.bulk(v);
        }
    };
    let header = |out: &mut crate::resp::Reply, n: usize| {
        out.array(if withvalues && !resp3 { n * 2 } else { n });
    };
    if count == 0 {
        out.array(0);
    } else if l < 0 || count == 1 {
        // With repetitions: each pick independent.
        header(out, count);
        for _ in 0..count {
            if let Some((f, v)) = h.random() {
                pair(out, f, v);
            }
        }
    } else if count >= h.len() {
        header(out, h.len());
        for (f, v) in h.iter() {
            pair(out, f, v);
        }
    } else {
        let picked = distinct_pairs(h, count);
        header(out, picked.len());
        for (f, v) in picked {
            pair(out, f, v);
        }
    }
    Ok(())
}

/// `count` distinct random pairs, `count < h.len()`: random picks when few are wanted (so a big
/// hash is not walked), else a partial shuffle of all pairs (Redis's cases 3 and 4).
fn distinct_pairs(h: &Hash, count: usize) -> Vec<(&[u8], &[u8])> {
    if count * 3 <= h.len() {
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        // Bounded: with at most a third of the hash wanted, a pick is new with probability at
        // least 2/3, so this many tries fail only with negligible probability.
        for _ in 0..count.saturating_mul(64) {
            if out.len() == count {
                return out;
            }
            if let Some((f, v)) = h.random()
                && seen.insert(f)
            {
                out.push((f, v));
            }
        }
        if out.len() == count {
            return out;
        }
    }
    let mut all: Vec<(&[u8], &[u8])> = h.iter().collect();
    for i in 0..count {
        let j = rand::random_range(i..all.len());
        all.swap(i, j);
    }
    all.truncate(count);
    all
}

pub fn hscan(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let cursor = args::scan_cursor(&args[2])?;
    let Some(h) = read_hash(ks, ctx.client.db, &args[1])? else {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
        return Ok(());
    };
    let o = args::scan_opts(args, 3)?;
    let mut found: Vec<(&[u8], &[u8])> = Vec::new();
    let next = h.scan(cursor, o.count, |f, v| {
        if o.pattern.is_none_or(|p| glob_match(p, f, false)) {
            found.push((f, v));
        }
    });
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(found.len() * 2);
    for (f, v) in found {
        ctx.out.bulk(f);
        ctx.out.bulk(v);
    }
    Ok(())
}

pub static COMMANDS: &[Command] = &[
    cmd!(
        "hset",
        -4,
        WMF,
        KEY1,
        "hash",
        "2.0.0",
        hset,
        "Creates or modifies the value of a field in a hash."
    ),
    cmd!(
        "hsetnx",
        4,
        WMF,
        KEY1,
        "hash",
        "2.0.0",
        hsetnx,
        "Sets the value of a field in a hash only when the field doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "hget",
        3,
        RF,
        KEY1,
        "hash",
        "2.0.0",
        hget,
        "Returns the value of a field in a hash."
    ),
    cmd!(
        "hmget",
        -3,
        RF,
        KEY1,
        "hash",
        "2.0.0",
        hmget,
        "Returns the values of all fields in a hash."
    ),
    cmd!(
        "hmset",
        -4,
        WMF,
        KEY1,
        "hash",
        "2.0.0",
        hmset,
        "Sets the values of multiple fields."
    ),
    cmd!(
        "hdel",
        -3,
        WF,
        KEY1,
        "hash",
        "2.0.0",
        hdel,
        "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."
    ).specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "hlen",
        2,
        RF,
        KEY1,
        "hash",
        "2.0.0",
        hlen,
        "Returns the number of fields in a hash."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "hstrlen",
        3,
        RF,
        KEY1,
        "hash",
        "3.2.0",
        hstrlen,
        "Returns the length of the value of a field."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "hexists",
        3,
        RF,
        KEY1,
        "hash",
        "2.0.0",
        hexists,
        "Determines whether a field exists in a hash."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "hkeys",
        2,
        R,
        KEY1,
        "hash",
        "2.0.0",
        hkeys,
        "Returns all fields in a hash."
    ).tips(&["nondeterministic_output_order"]),
    cmd!(
        "hvals",
        2,
        R,
        KEY1,
        "hash",
        "2.0.0",
        hvals,
        "Returns all values in a hash."
    ).tips(&["nondeterministic_output_order"]),
    cmd!(
        "hgetall",
        2,
        R,
        KEY1,
        "hash",
        "2.0.0",
        hgetall,
        "Returns all fields and values in a hash."
    ).tips(&["nondeterministic_output_order"]),
    cmd!(
        "hincrby",
        4,
        WMF,
        KEY1,
        "hash",
        "2.0.0",
        hincrby,
        "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "hincrbyfloat",
        4,
        WMF,
        KEY1,
        "hash",
        "2.6.0",
        hincrbyfloat,
        "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "hrandfield",
        -2,
        R,
        KEY1,
        "hash",
        "6.2.0",
        hrandfield,
        "Returns one or more random fields from a hash."
    ).tips(&["nondeterministic_output"]),
    cmd!(
        "hscan",
        -3,
        R,
        KEY1,
        "hash",
        "2.8.0",
        hscan,
        "Iterates over fields and values of a hash."
    ).tips(&["nondeterministic_output"]),
];
