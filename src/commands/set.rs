//! Set commands: SADD SREM SCARD SISMEMBER SMISMEMBER SMEMBERS SPOP SRANDMEMBER SMOVE SINTER
//! SINTERCARD SINTERSTORE SUNION SUNIONSTORE SDIFF SDIFFSTORE SSCAN, with Redis 7.0's replies
//! (`t_set.c`): results are built as Redis builds them (a fresh set that starts as an intset), so
//! their order and encoding match.

use std::collections::HashSet;

use bytes::Bytes;
use smallvec::SmallVec;

use super::args::{self, eq_ic, int_in_range};
use super::error::{CmdError, CmdResult};
use super::flags::MOVABLEKEYS;
use super::table::*;
use super::{Command, Ctx};
use crate::cmd;
use crate::glob::glob_match;
use crate::observe::events::class;
use crate::store::set::{MemberRef, Set};
use crate::store::value::parse_i64_strict;
use crate::store::{Keyspace, Sds, Value};

fn read_set<'k>(ks: &'k mut Keyspace, db: usize, key: &[u8]) -> Result<Option<&'k Set>, CmdError> {
    match ks.lookup_read(db, key)? {
        None => Ok(None),
        // A read takes a rehash step too (as Redis's dictFind): see `Dict::rehash_step`.
        Some(e) => match &mut e.value {
            Value::Set(s) => {
                s.rehash_step();
                Ok(Some(s))
            }
            _ => Err(CmdError::WrongType),
        },
    }
}

fn write_set<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut Set>, CmdError> {
    match ks.lookup_write(db, key)? {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// Replies one member as a bulk string.
fn reply_member(ctx: &mut Ctx, m: MemberRef) {
    match m {
        MemberRef::Int(i) => ctx.out.bulk_int(i),
        MemberRef::Str(s) => ctx.out.bulk(s),
    }
}

/// Replies a whole set (RESP3 set type), in its iteration order.
fn reply_set(ctx: &mut Ctx, s: &Set) {
    ctx.out.set(s.len());
    for m in s.iter() {
        reply_member(ctx, m);
    }
}

pub fn sadd(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let max = ks.store().set_limits.get();
    let db = ctx.client.db;
    let key = &args[1];
    let added = match write_set(ks, db, key)? {
        Some(s) => args[2..].iter().filter(|m| s.add(m, max)).count(),
        None => {
            let mut s = Set::for_first(&args[2]);
            let n = args[2..].iter().filter(|m| s.add(m, max)).count();
            ks.set(db, key, Value::Set(s), None, false)?;
            n
        }
    };
    if added > 0 {
        ctx.dirty(added as u64);
        ctx.notify(class::SET, "sadd", key);
    }
    ctx.out.int(added as i64);
    Ok(())
}

pub fn srem(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let (removed, empty) = match write_set(ks, db, key)? {
        None => (0, false),
        Some(s) => {
            let mut n = 0;
            for m in &args[2..] {
                n += s.remove(m) as i64;
                if s.is_empty() {
                    break;
                }
            }
            (n, s.is_empty())
        }
    };
    if removed > 0 {
        ctx.dirty(removed as u64);
        ctx.notify(class::SET, "srem", key);
        if empty {
            ks.remove(db, key)?;
            ctx.notify(class::GENERIC, "del", key);
        }
    }
    ctx.out.int(removed);
    Ok(())
}

pub fn scard(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = read_set(ks, ctx.client.db, &args[1])?.map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn sismember(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let found = read_set(ks, ctx.client.db, &args[1])?.is_some_and(|s| s.contains(&args[2]));
    ctx.out.int(found as i64);
    Ok(())
}

pub fn smismember(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let s = read_set(ks, ctx.client.db, &args[1])?;
    ctx.out.array(args.len() - 2);
    for m in &args[2..] {
        ctx.out.int(s.is_some_and(|s| s.contains(m)) as i64);
    }
    Ok(())
}

pub fn smembers(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    match read_set(ks, ctx.client.db, &args[1])? {
        Some(s) => reply_set(ctx, s),
        None => ctx.out.set(0),
    }
    Ok(())
}

/// Type-checks every key (a missing key is an empty set), then hands out shared references to
/// the sets, as Redis's set operations read them.
fn load_sets<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    keys: &[Bytes],
) -> Result<Vec<Option<&'k Set>>, CmdError> {
    for k in keys {
        read_set(ks, db, k)?;
    }
    let ks: &'k Keyspace = ks;
    keys.iter()
        .map(|k| match ks.get(db, k)? {
            None => Ok(None),
            Some(e) => match &e.value {
                Value::Set(s) => Ok(Some(s)),
                _ => Err(CmdError::WrongType),
            },
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Union,
    Diff,
}

/// SUNION/SDIFF's result, computed as Redis's `sunionDiffGenericCommand` (including its choice
/// between the two diff algorithms, which decides the result's encoding).
fn union_diff(sets: &[Option<&Set>], keys: &[Bytes], op: Op, max: usize) -> Set {
    let mut dst = Set::default();
    match op {
        Op::Union => {
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    dst.add_ref(m, max);
                }
            }
        }
        Op::Diff => {
            let Some(first) = sets[0] else {
                return dst;
            };
            if keys[1..].iter().any(|k| k == &keys[0]) {
                return dst;
            }
            let (mut one, mut two) = (0usize, 0usize);
            for s in sets.iter().flatten() {
                one += first.len();
                two += s.len();
            }
            if one / 2 <= two {
                for m in first.iter() {
                    if !sets[1..].iter().flatten().any(|s| s.contains_ref(m)) {
                        dst.add_ref(m, max);
                    }
                }
            } else {
                for m in first.iter() {
                    dst.add_ref(m, max);
                }
                for s in sets[1..].iter().flatten() {
                    if dst.is_empty() {
                        break;
                    }
                    let mut b = itoa::Buffer::new();
                    for m in s.iter() {
                        dst.remove(m.bytes(&mut b));
                    }
                }
            }
        }
    }
    dst
}

/// Stores a computed set at `dst` (or deletes `dst` when it is empty) and replies its size.
fn store_result(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    dst: &[u8],
    result: Set,
    event: &'static str,
) -> CmdResult {
    let db = ctx.client.db;
    let n = result.len();
    if n > 0 {
        ks.set(db, dst, Value::Set(result), None, false)?;
        ctx.dirty(1);
        ctx.notify(class::SET, event, dst);
    } else if ks.remove(db, dst)?.is_some() {
        ctx.dirty(1);
        ctx.notify(class::GENERIC, "del", dst);
    }
    ctx.out.int(n as i64);
    Ok(())
}

fn sunion_diff(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    keys: &[Bytes],
    dst: Option<&[u8]>,
    op: Op,
) -> CmdResult {
    let max = ks.store().set_limits.get();
    let db = ctx.client.db;
    let sets = load_sets(ks, db, keys)?;
    let result = union_diff(&sets, keys, op, max);
    match dst {
        None => {
            reply_set(ctx, &result);
            Ok(())
        }
        Some(d) => {
            let event = if op == Op::Union {
                "sunionstore"
            } else {
                "sdiffstore"
            };
            store_result(ctx, ks, d, result, event)
        }
    }
}

pub fn sunion(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    sunion_diff(ctx, ks, &args[1..], None, Op::Union)
}

pub fn sunionstore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    sunion_diff(ctx, ks, &args[2..], Some(&args[1]), Op::Union)
}

pub fn sdiff(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    sunion_diff(ctx, ks, &args[1..], None, Op::Diff)
}

pub fn sdiffstore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    sunion_diff(ctx, ks, &args[2..], Some(&args[1]), Op::Diff)
}

/// What SINTER-family commands do with the intersection.
enum Inter<'a> {
    Reply,
    Card(usize),
    Store(&'a [u8]),
}

/// Redis's `sinterGenericCommand`: walk the smallest set, keep members every other set has.
fn sinter_generic(ctx: &mut Ctx, ks: &mut Keyspace, keys: &[Bytes], mode: Inter) -> CmdResult {
    let max = ks.store().set_limits.get();
    let db = ctx.client.db;
    let loaded = load_sets(ks, db, keys)?;
    let present: Option<Vec<&Set>> = loaded.iter().copied().collect();
    let Some(mut sets) = present else {
        return match mode {
            Inter::Reply => {
                ctx.out.set(0);
                Ok(())
            }
            Inter::Card(_) => {
                ctx.out.int(0);
                Ok(())
            }
            Inter::Store(d) => store_result(ctx, ks, d, Set::default(), "sinterstore"),
        };
    };
    sets.sort_by_key(|s| s.len());
    let (first, rest) = (sets[0], &sets[1..]);
    let is_member = |m: MemberRef| {
        rest.iter()
            .all(|s| std::ptr::eq(*s, first) || s.contains_ref(m))
    };
    match mode {
        Inter::Reply => {
            let found: Vec<MemberRef> = first.iter().filter(|m| is_member(*m)).collect();
            ctx.out.set(found.len());
            for m in found {
                reply_member(ctx, m);
            }
            Ok(())
        }
        Inter::Card(limit) => {
            let mut n = 0usize;
            for m in first.iter() {
                if is_member(m) {
                    n += 1;
                    if limit > 0 && n >= limit {
                        break;
                    }
                }
            }
            ctx.out.int(n as i64);
            Ok(())
        }
        Inter::Store(d) => {
            let mut result = Set::default();
            for m in first.iter().filter(|m| is_member(*m)) {
                result.add_ref(m, max);
            }
            store_result(ctx, ks, d, result, "sinterstore")
        }
    }
}

pub fn sinter(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    sinter_generic(ctx, ks, &args[1..], Inter::Reply)
}

pub fn sinterstore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    sinter_generic(ctx, ks, &args[2..], Inter::Store(&args[1]))
}

/// SINTERCARD's numkeys, with its own error text.
fn sintercard_numkeys(args: &[Bytes]) -> Result<usize, CmdError> {
    let n = parse_i64_strict(&args[1])
        .filter(|&n| n >= 1)
        .ok_or_else(|| CmdError::err("numkeys should be greater than 0"))?;
    if n > args.len() as i64 - 2 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    Ok(n as usize)
}

/// Key positions of SINTERCARD (`movablekeys`): `numkeys` keys after the count.
pub fn sintercard_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    match sintercard_numkeys(args) {
        Ok(n) => (2..2 + n).collect(),
        Err(_) => SmallVec::new(),
    }
}

pub fn sintercard(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = sintercard_numkeys(args)?;
    let mut limit = 0usize;
    let mut it = args::ArgIter::new(args, 2 + n);
    while let Some(a) = it.next_arg() {
        if eq_ic(a, "LIMIT") && it.remaining() > 0 {
            let l = parse_i64_strict(it.value()?)
                .filter(|&l| l >= 0)
                .ok_or_else(|| CmdError::err("LIMIT can't be negative"))?;
            limit = l as usize;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    sinter_generic(ctx, ks, &args[2..2 + n], Inter::Card(limit))
}

pub fn smove(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let max = ks.store().set_limits.get();
    let db = ctx.client.db;
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    if write_set(ks, db, src)?.is_none() {
        ctx.out.int(0);
        return Ok(());
    }
    let dst_exists = write_set(ks, db, dst)?.is_some();
    if src == dst {
        let found = read_set(ks, db, src)?.is_some_and(|s| s.contains(member));
        ctx.out.int(found as i64);
        return Ok(());
    }
    let (removed, empty) = match write_set(ks, db, src)? {
        Some(s) => (s.remove(member), s.is_empty()),
        None => (false, false),
    };
    if !removed {
        ctx.out.int(0);
        return Ok(());
    }
    ctx.notify(class::SET, "srem", src);
    if empty {
        ks.remove(db, src)?;
        ctx.notify(class::GENERIC, "del", src);
    }
    ctx.dirty(1);
    let added = if dst_exists {
        write_set(ks, db, dst)?.is_some_and(|s| s.add(member, max))
    } else {
        let mut s = Set::for_first(member);
        s.add(member, max);
        ks.set(db, dst, Value::Set(s), None, false)?;
        true
    };
    if added {
        ctx.dirty(1);
        ctx.notify(class::SET, "sadd", dst);
    }
    ctx.out.int(1);
    Ok(())
}

/// SPOP's count: "value is out of range, must be positive" for anything but a count >= 0.
fn positive_count(arg: &[u8]) -> Result<usize, CmdError> {
    parse_i64_strict(arg)
        .filter(|&n| n >= 0)
        .map(|n| n as usize)
        .ok_or_else(|| CmdError::err("value is out of range, must be positive"))
}

pub fn spop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let db = ctx.client.db;
    let key = &args[1];
    if args.len() == 2 {
        let (popped, empty) = match write_set(ks, db, key)? {
            Some(s) => (s.pop(), s.is_empty()),
            None => (None, false),
        };
        let Some(m) = popped else {
            // Nothing changed: nothing to log (as Redis propagates nothing).
            ctx.log_as = Some(Vec::new());
            ctx.out.null();
            return Ok(());
        };
        ctx.dirty(1);
        // Which member left is chance: the log records it (as Redis propagates SREM).
        ctx.log_as = Some(vec![
            Bytes::from_static(b"SREM"),
            key.clone(),
            Bytes::copy_from_slice(&m),
        ]);
        ctx.notify(class::SET, "spop", key);
        if empty {
            ks.remove(db, key)?;
            ctx.notify(class::GENERIC, "del", key);
        }
        ctx.out.bulk(&m);
        return Ok(());
    }
    let count = positive_count(&args[2])?;
    let Some(s) = write_set(ks, db, key)? else {
        ctx.log_as = Some(Vec::new());
        ctx.out.set(0);
        return Ok(());
    };
    if count == 0 {
        ctx.log_as = Some(Vec::new());
        ctx.out.set(0);
        return Ok(());
    }
    if count >= s.len() {
        let whole = std::mem::take(s);
        ctx.notify(class::SET, "spop", key);
        ctx.dirty(count as u64);
        let mut result = Set::default();
        let max = ks.store().set_limits.get();
        for m in whole.iter() {
            result.add_ref(m, max);
        }
        reply_set(ctx, &result);
        ks.remove(db, key)?;
        ctx.log_as = Some(vec![Bytes::from_static(b"DEL"), key.clone()]);
        ctx.notify(class::GENERIC, "del", key);
        return Ok(());
    }
    let popped: Vec<Sds> = (0..count).filter_map(|_| s.pop()).collect();
    let mut srem = vec![Bytes::from_static(b"SREM"), key.clone()];
    srem.extend(popped.iter().map(|m| Bytes::copy_from_slice(m)));
    ctx.log_as = Some(srem);
    ctx.notify(class::SET, "spop", key);
    ctx.dirty(count as u64);
    ctx.out.set(popped.len());
    for m in &popped {
        ctx.out.bulk(m);
    }
    Ok(())
}

pub fn srandmember(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let db = ctx.client.db;
    if args.len() == 2 {
        match read_set(ks, db, &args[1])?.and_then(|s| s.random()) {
            Some(m) => reply_member(ctx, m),
            None => ctx.out.null(),
        }
        return Ok(());
    }
    let l = int_in_range(&args[2], -i64::MAX, i64::MAX)?;
    let max = ks.store().set_limits.get();
    let Some(s) = read_set(ks, db, &args[1])? else {
        ctx.out.array(0);
        return Ok(());
    };
    let count = l.unsigned_abs() as usize;
    if count == 0 {
        ctx.out.array(0);
    } else if l < 0 || count == 1 {
        ctx.out.array(count);
        for _ in 0..count {
            if let Some(m) = s.random() {
                reply_member(ctx, m);
            }
        }
    } else if count >= s.len() {
        // The whole set, in the order Redis's union of one set gives, as an array (not a set)
        // in RESP3.
        let mut result = Set::default();
        for m in s.iter() {
            result.add_ref(m, max);
        }
        ctx.out.array(result.len());
        for m in result.iter() {
            reply_member(ctx, m);
        }
    } else {
        let picked = distinct_sample(s, count);
        ctx.out.array(picked.len());
        for m in picked {
            reply_member(ctx, m);
        }
    }
    Ok(())
}

/// `count` distinct random members, `count < s.len()`: random picks when few are wanted, else a
/// partial shuffle of all members (Redis's cases 3 and 4).
fn distinct_sample(s: &Set, count: usize) -> Vec<MemberRef<'_>> {
    if count * 3 <= s.len() {
        let mut seen = HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        // Bounded: with at most a third of the set wanted, a pick is new with probability
        // at least 2/3, so this many tries fail only with negligible probability.
        for _ in 0..count.saturating_mul(64) {
            if out.len() == count {
                break;
            }
            if let Some(m) = s.random()
                && seen.insert(m)
            {
                out.push(m);
            }
        }
        if out.len() == count {
            return out;
        }
    }
    let mut all: Vec<MemberRef> = s.iter().collect();
    for i in 0..count {
        let j = rand::random_range(i..all.len());
        all.swap(i, j);
    }
    all.truncate(count);
    all
}

pub fn sscan(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let cursor = args::scan_cursor(&args[2])?;
    let Some(s) = read_set(ks, ctx.client.db, &args[1])? else {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
        return Ok(());
    };
    let o = args::scan_opts(args, 3)?;
    let mut found: Vec<MemberRef> = Vec::new();
    let next = s.scan(cursor, o.count, |m| {
        let mut b = itoa::Buffer::new();
        if o.pattern
            .is_none_or(|p| glob_match(p, m.bytes(&mut b), false))
        {
            found.push(m);
        }
    });
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(found.len());
    for m in found {
        reply_member(ctx, m);
    }
    Ok(())
}

pub static COMMANDS: &[Command] = &[
    cmd!(
        "sadd",
        -3,
        WMF,
        KEY1,
        "set",
        "1.0.0",
        sadd,
        "Adds one or more members to a set. Creates the key if it doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "srem",
        -3,
        WF,
        KEY1,
        "set",
        "1.0.0",
        srem,
        "Removes one or more members from a set. Deletes the set if the last member was removed."
    ).specs(&[KeySpec::range(&["RW", "delete"], 1, 0, 1)]),
    cmd!(
        "scard",
        2,
        RF,
        KEY1,
        "set",
        "1.0.0",
        scard,
        "Returns the number of members in a set."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "sismember",
        3,
        RF,
        KEY1,
        "set",
        "1.0.0",
        sismember,
        "Determines whether a member belongs to a set."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "smismember",
        -3,
        RF,
        KEY1,
        "set",
        "6.2.0",
        smismember,
        "Determines whether multiple members belong to a set."
    ),
    cmd!(
        "smembers",
        2,
        R,
        KEY1,
        "set",
        "1.0.0",
        smembers,
        "Returns all members of a set."
    ).tips(&["nondeterministic_output_order"]),
    cmd!(
        "spop",
        -2,
        WF,
        KEY1,
        "set",
        "1.0.0",
        spop,
        "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."
    ).tips(&["nondeterministic_output"]).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1)]),
    cmd!(
        "srandmember",
        -2,
        R,
        KEY1,
        "set",
        "1.0.0",
        srandmember,
        "Get one or multiple random members from a set"
    ).tips(&["nondeterministic_output"]),
    cmd!(
        "smove",
        4,
        WF,
        KEY12,
        "set",
        "1.0.0",
        smove,
        "Moves a member from one set to another."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    cmd!(
        "sinter",
        -2,
        R,
        ALL_KEYS,
        "set",
        "1.0.0",
        sinter,
        "Returns the intersect of multiple sets."
    ).tips(&["nondeterministic_output_order"]),
    Command {
        name: "sintercard",
        arity: -3,
        flags: R | MOVABLEKEYS,
        keys: NO_KEYS,
        keys_fn: Some(sintercard_keys),
        group: "set",
        since: "7.0.0",
        summary: "Returns the number of members of the intersect of multiple sets.",
        handler: Some(sintercard),
        subcommands: &[],
        key_specs: &[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)],
        tips: &[],
        acl: &[],
    },
    cmd!(
        "sinterstore",
        -3,
        WM,
        ALL_KEYS,
        "set",
        "1.0.0",
        sinterstore,
        "Stores the intersect of multiple sets in a key."
    ).specs(&[KeySpec::range(&["RW", "update"], 1, 0, 1), KeySpec::range(&["RO", "access"], 2, -1, 1)]),
    cmd!(
        "sunion",
        -2,
        R,
        ALL_KEYS,
        "set",
        "1.0.0",
        sunion,
        "Returns the union of multiple sets."
    ).tips(&["nondeterministic_output_order"]),
    cmd!(
        "sunionstore",
        -3,
        WM,
        ALL_KEYS,
        "set",
        "1.0.0",
        sunionstore,
        "Stores the union of multiple sets in a key."
    ).specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::range(&["RO", "access"], 2, -1, 1)]),
    cmd!(
        "sdiff",
        -2,
        R,
        ALL_KEYS,
        "set",
        "1.0.0",
        sdiff,
        "Returns the difference of multiple sets."
    ).tips(&["nondeterministic_output_order"]),
    cmd!(
        "sdiffstore",
        -3,
        WM,
        ALL_KEYS,
        "set",
        "1.0.0",
        sdiffstore,
        "Stores the difference of multiple sets in a key."
    ).specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::range(&["RO", "access"], 2, -1, 1)]),
    cmd!(
        "sscan",
        -3,
        R,
        KEY1,
        "set",
        "2.8.0",
        sscan,
        "Iterates over members of a set."
    ).tips(&["nondeterministic_output"]),
];
