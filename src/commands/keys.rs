//! Generic key commands: DEL, EXISTS, TYPE, KEYS, SCAN, RANDOMKEY, RENAME, COPY, MOVE, TOUCH,
//! OBJECT, MEMORY, and the expiry family (EXPIRE ... PERSIST, TTL ...).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Ctx;
use super::args::{ArgIter, eq_ic, int};
use super::error::{CmdError, CmdResult};
use crate::glob::glob_match;
use crate::observe::events::class;
use crate::store::{Keyspace, SHARDS, Value};

pub fn del(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let lazy = ctx.node.store.lazyfree.user_del.load(Ordering::Relaxed);
    delete_keys(ctx, ks, args, lazy)
}

/// UNLINK: DEL that frees a large value in the background.
pub fn unlink(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    delete_keys(ctx, ks, args, true)
}

fn delete_keys(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], lazy: bool) -> CmdResult {
    let db = ctx.client.db;
    let mut n = 0;
    for key in &args[1..] {
        let gone = if lazy {
            ks.unlink(db, key)?
        } else {
            ks.remove(db, key)?.is_some()
        };
        if gone {
            ctx.notify(class::GENERIC, "del", key);
            n += 1;
        }
    }
    ctx.dirty(n as u64);
    if n == 0 {
        // Nothing deleted: nothing to log (Redis propagates only what changed data).
        ctx.log_as = Some(Vec::new());
    }
    ctx.out.int(n);
    Ok(())
}

pub fn exists(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    count_found(ctx, ks, args, false)
}

pub fn touch(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    count_found(ctx, ks, args, true)
}

/// EXISTS and TOUCH: how many of the keys exist; TOUCH also counts an access to each.
fn count_found(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], touch: bool) -> CmdResult {
    let db = ctx.client.db;
    let mut n = 0;
    for key in &args[1..] {
        if ks.lookup_read_with(db, key, touch)?.is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

pub fn type_(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let t = match ks.lookup_read_notouch(ctx.client.db, &args[1])? {
        Some(e) => e.value.type_name(),
        None => "none",
    };
    ctx.out.simple(t);
    Ok(())
}

pub fn keys(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let now = ks.now_ms;
    let pattern = &args[1][..];
    let all = pattern == b"*";
    let mut found = Vec::new();
    for (_, shard) in ks.shards_mut() {
        let d = &shard.dbs[db];
        for e in d.keys.iter() {
            if e.has_expire() && d.expires.get(&e.key).is_some_and(|x| x.at_ms <= now) {
                continue;
            }
            if all || glob_match(pattern, &e.key, false) {
                found.push(e.key.clone());
            }
        }
    }
    ctx.out.bulks(found.iter());
    Ok(())
}

/// SCAN cursors: the shard in the top byte, that shard's bucket cursor below it.
const SHARD_SHIFT: u32 = 56;

/// A SCAN cursor as Redis's `parseScanCursorOrReply` reads it with `strtoul`: an optional sign
/// (a negative cursor wraps around, so `-1` is the largest cursor), decimal digits, nothing
/// after them, no overflow; an empty string is cursor 0.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() {
        return Some(0);
    }
    let (neg, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

pub fn scan(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[1]).ok_or_else(|| CmdError::err("invalid cursor"))?;
    let mut pattern: Option<&[u8]> = None;
    let mut count = 10usize;
    let mut type_filter: Option<Bytes> = None;
    let mut it = ArgIter::new(args, 2);
    while let Some(a) = it.next_arg() {
        if eq_ic(a, "MATCH") && it.remaining() > 0 {
            pattern = Some(it.value()?);
        } else if eq_ic(a, "COUNT") && it.remaining() > 0 {
            let c = int(it.value()?)?;
            if c < 1 {
                return Err(CmdError::Syntax);
            }
            count = c as usize;
        } else if eq_ic(a, "TYPE") && it.remaining() > 0 {
            type_filter = Some(it.value()?.clone());
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let db = ctx.client.db;
    let now = ks.now_ms;
    let mut shard = (cursor >> SHARD_SHIFT) as usize;
    let mut bucket = cursor & ((1 << SHARD_SHIFT) - 1);
    let mut found = Vec::new();
    let mut budget = count.saturating_mul(10);
    let mut expired_met = Vec::new();
    let next = loop {
        if shard >= SHARDS {
            break 0;
        }
        let visited = ks.visit_shard(shard, |s| {
            let d = &s.dbs[db];
            if d.keys.is_empty() {
                return (0, false);
            }
            let n = d.keys.scan(bucket, |e| {
                let expired =
                    e.has_expire() && d.expires.get(&e.key).is_some_and(|x| x.at_ms <= now);
                if expired {
                    expired_met.push(e.key.clone());
                    return;
                }
                if pattern.is_some_and(|p| p != b"*" && !glob_match(p, &e.key, false)) {
                    return;
                }
                if let Some(t) = &type_filter
                    && !t.eq_ignore_ascii_case(e.value.type_name().as_bytes())
                {
                    return;
                }
                found.push(e.key.clone());
            });
            (n, true)
        });
        if !expired_met.is_empty() {
            ks.expire_met(shard, db, &expired_met);
            expired_met.clear();
        }
        let (n, nonempty) = visited;
        if nonempty {
            budget = budget.saturating_sub(1);
        }
        if n == 0 {
            shard += 1;
            bucket = 0;
        } else {
            bucket = n;
        }
        if shard >= SHARDS {
            break 0;
        }
        if found.len() >= count || budget == 0 {
            break ((shard as u64) << SHARD_SHIFT) | bucket;
        }
    };
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.bulks(found.iter());
    Ok(())
}

pub fn randomkey(ctx: &mut Ctx, ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    match ks.random_key(ctx.client.db) {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
    Ok(())
}

fn rename_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], nx: bool) -> CmdResult {
    let db = ctx.client.db;
    let (src, dst) = (&args[1], &args[2]);
    if !ks.exists_touch(db, src)? {
        return Err(CmdError::NoSuchKey);
    }
    if src == dst {
        if nx {
            ctx.out.int(0);
        } else {
            ctx.out.ok();
        }
        return Ok(());
    }
    if nx && ks.exists(db, dst)? {
        ctx.out.int(0);
        return Ok(());
    }
    let at = ks.expire_at(db, src)?;
    if let Some(mut e) = ks.remove(db, src)? {
        e.key = crate::store::Sds::new(dst);
        ks.put_entry(db, e, at)?;
    }
    ctx.dirty(1);
    ctx.notify(class::GENERIC, "rename_from", src);
    ctx.notify(class::GENERIC, "rename_to", dst);
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

pub fn rename(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, ks, args, false)
}

pub fn renamenx(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, ks, args, true)
}

fn db_index(ctx: &Ctx, arg: &[u8]) -> Result<usize, CmdError> {
    let i = int(arg)?;
    // An int first (Redis's getIntFromObjectOrReply, its words), then a db.
    if i32::try_from(i).is_err() {
        return Err(CmdError::err(
            "value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    if i < 0 || i as usize >= ctx.node.store.databases() {
        return Err(CmdError::DbIndexOutOfRange);
    }
    Ok(i as usize)
}

pub fn copy(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let src_db = ctx.client.db;
    let mut dst_db = src_db;
    let mut replace = false;
    let mut it = ArgIter::new(args, 3);
    while let Some(a) = it.next_arg() {
        if eq_ic(a, "REPLACE") {
            replace = true;
        } else if eq_ic(a, "DB") && it.remaining() > 0 {
            dst_db = db_index(ctx, it.value()?)?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    // As Redis: a cluster has one database (and SWAPDB and MOVE are refused too).
    if ctx.node.cluster.is_some() && (src_db != 0 || dst_db != 0) {
        return Err(CmdError::err(
            "Copying to another database is not allowed in cluster mode",
        ));
    }
    let (src, dst) = (&args[1], &args[2]);
    if src_db == dst_db && src == dst {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let Some(e) = ks.lookup_read(src_db, src)? else {
        ctx.out.int(0);
        return Ok(());
    };
    // A new object, as Redis makes: its access time is now, its LFU count the initial one;
    // a raw string stays raw (dupStringObject).
    let raw = e.is_raw();
    let mut copy = crate::store::Entry::new(
        crate::store::Sds::new(dst),
        e.value.clone(),
        ks.store().lru_clock(),
    );
    if raw {
        copy.set_raw();
    }
    let at = ks.expire_at(src_db, src)?;
    if ks.exists(dst_db, dst)? && !replace {
        ctx.out.int(0);
        return Ok(());
    }
    ks.put_entry(dst_db, copy, at)?;
    ctx.dirty(1);
    ctx.notify_db(dst_db, class::GENERIC, "copy_to", dst);
    ctx.out.int(1);
    Ok(())
}

pub fn move_(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if ctx.node.cluster.is_some() {
        return Err(CmdError::err("MOVE is not allowed in cluster mode"));
    }
    let src_db = ctx.client.db;
    let dst_db = db_index(ctx, &args[2])?;
    if src_db == dst_db {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let key = &args[1];
    if !ks.exists_touch(src_db, key)? || ks.exists(dst_db, key)? {
        ctx.out.int(0);
        return Ok(());
    }
    let at = ks.expire_at(src_db, key)?;
    if let Some(e) = ks.remove(src_db, key)? {
        ks.put_entry(dst_db, e, at)?;
    }
    ctx.dirty(1);
    ctx.notify_db(src_db, class::GENERIC, "move_from", key);
    ctx.notify_db(dst_db, class::GENERIC, "move_to", key);
    ctx.out.int(1);
    Ok(())
}

/// Integers Redis keeps as shared objects (refcount reported as INT_MAX).
pub(crate) const OBJ_SHARED_INTEGERS: i64 = 10000;

/// Whether small integers are shared objects (refcount INT_MAX): not under a maxmemory with
/// an LRU or LFU policy, where each value needs its own access data (Redis's
/// MAXMEMORY_FLAG_NO_SHARED_INTEGERS).
pub(crate) fn shares_integers(ctx: &Ctx) -> bool {
    use crate::store::evict::Policy;
    let c = ctx.node.config.read();
    c.maxmemory == 0
        || !matches!(
            Policy::parse(&c.maxmemory_policy),
            Policy::AllKeysLru | Policy::AllKeysLfu | Policy::VolatileLru | Policy::VolatileLfu
        )
}

pub fn object(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if eq_ic(sub, "HELP") {
        return super::reply_help(
            ctx,
            "OBJECT",
            &[
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
            ],
        );
    }
    let lfu = ctx.node.store.lfu.is_on();
    let lru_now = ctx.node.store.lru_clock();
    let db = ctx.client.db;
    let key = &args[2];
    // OBJECT does not count as an access: read without touching.
    let found = ks.peek(db, key)?;
    let Some(e) = found else {
        ctx.out.null();
        return Ok(());
    };
    if eq_ic(sub, "ENCODING") {
        ctx.out.bulk(e.encoding().as_bytes());
    } else if eq_ic(sub, "REFCOUNT") {
        let shared = matches!(e.value, Value::Int(i) if (0..OBJ_SHARED_INTEGERS).contains(&i))
            && shares_integers(ctx);
        ctx.out.int(if shared { i32::MAX as i64 } else { 1 });
    } else if eq_ic(sub, "IDLETIME") {
        if lfu {
            return Err(CmdError::err(
                "An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        ctx.out.int(lru_now.saturating_sub(e.lru()) as i64);
    } else if eq_ic(sub, "FREQ") {
        if !lfu {
            return Err(CmdError::err(
                "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        ctx.out
            .int(e.freq_at(lru_now, ctx.node.store.lfu.decay_minutes()) as i64);
    } else {
        return Err(super::unknown_subcommand(args));
    }
    Ok(())
}

pub fn memory(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if eq_ic(sub, "HELP") {
        return super::reply_help(
            ctx,
            "MEMORY",
            &[
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        );
    }
    if eq_ic(sub, "USAGE") {
        if args.len() < 3 {
            return Err(CmdError::Arity("memory|usage".into()));
        }
        let mut it = ArgIter::new(args, 3);
        while let Some(a) = it.next_arg() {
            if eq_ic(a, "SAMPLES") && it.remaining() > 0 {
                if int(it.value()?)? < 0 {
                    return Err(CmdError::NotInteger);
                }
            } else {
                return Err(CmdError::Syntax);
            }
        }
        match ks.peek(ctx.client.db, &args[2])? {
            Some(e) => ctx.out.int(e.memory_usage() as i64),
            None => ctx.out.null(),
        }
        return Ok(());
    }
    if eq_ic(sub, "DOCTOR") {
        ctx.out.verbatim(b"Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.");
        return Ok(());
    }
    if eq_ic(sub, "PURGE") {
        ctx.out.ok();
        return Ok(());
    }
    if eq_ic(sub, "STATS") {
        let used = crate::server::stats::used_memory();
        let keys: usize = ks.db_sizes().iter().map(|(k, _)| k).sum();
        ctx.out.map(4);
        ctx.out.bulk(b"peak.allocated");
        ctx.out.int(ctx.node.stats.peak_memory(used) as i64);
        ctx.out.bulk(b"total.allocated");
        ctx.out.int(used as i64);
        ctx.out.bulk(b"keys.count");
        ctx.out.int(keys as i64);
        ctx.out.bulk(b"keys.bytes-per-key");
        ctx.out.int(used.checked_div(keys).unwrap_or(0) as i64);
        return Ok(());
    }
    if eq_ic(sub, "MALLOC-STATS") {
        ctx.out
            .verbatim(b"Stats not supported for the current allocator");
        return Ok(());
    }
    Err(super::unknown_subcommand(args))
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
}

/// What a command that gives a key a time already past (EXPIRE, GETEX) logs: the deletion,
/// as UNLINK under `lazyfree-lazy-expire` (Redis's expireGenericCommand and getexCommand).
pub fn expired_at_once(ctx: &Ctx, key: &Bytes) -> Vec<Bytes> {
    let lazy = ctx
        .node
        .store
        .lazyfree
        .lazy_expire
        .load(std::sync::atomic::Ordering::Relaxed);
    let name: &'static [u8] = if lazy { b"UNLINK" } else { b"DEL" };
    vec![Bytes::from_static(name), key.clone()]
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT, as Redis's `expireGenericCommand`.
fn expire_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    unit: Unit,
    absolute: bool,
) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if eq_ic(a, "NX") {
            nx = true;
        } else if eq_ic(a, "XX") {
            xx = true;
        } else if eq_ic(a, "GT") {
            gt = true;
        } else if eq_ic(a, "LT") {
            lt = true;
        } else {
            return Err(CmdError::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let name: &'static str = match (unit, absolute) {
        (Unit::Seconds, false) => "expire",
        (Unit::Millis, false) => "pexpire",
        (Unit::Seconds, true) => "expireat",
        (Unit::Millis, true) => "pexpireat",
    };
    let mut when = int(&args[2])?;
    if matches!(unit, Unit::Seconds) {
        when = when
            .checked_mul(1000)
            .ok_or(CmdError::InvalidExpire(name))?;
    }
    if !absolute {
        when = when
            .checked_add(ctx.now_ms)
            .ok_or(CmdError::InvalidExpire(name))?;
    }
    let db = ctx.client.db;
    let key = &args[1];
    if !ks.exists_touch(db, key)? {
        // Nothing changed: nothing to log.
        ctx.log_as = Some(Vec::new());
        ctx.out.int(0);
        return Ok(());
    }
    let current = ks.expire_at(db, key)?;
    let allowed = if nx {
        current.is_none()
    } else if xx && current.is_none() {
        false
    } else if gt {
        // A key without TTL counts as an infinite TTL.
        current.is_some_and(|c| when > c)
    } else if lt {
        current.is_none_or(|c| when < c)
    } else {
        true
    };
    if !allowed {
        ctx.log_as = Some(Vec::new());
        ctx.out.int(0);
        return Ok(());
    }
    if when <= ctx.now_ms {
        ks.remove(db, key)?;
        ctx.notify(class::GENERIC, "del", key);
        // Logged as the DEL it was, whatever the condition (as Redis): the log replays with
        // the clock stopped, where a past time would set a TTL, not delete.
        ctx.log_as = Some(expired_at_once(ctx, key));
    } else {
        ks.set_expire(db, key, Some(when))?;
        ctx.notify(class::GENERIC, "expire", key);
    }
    ctx.dirty(1);
    ctx.out.int(1);
    Ok(())
}

pub fn expire(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, ks, args, Unit::Seconds, false)
}

pub fn pexpire(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, ks, args, Unit::Millis, false)
}

pub fn expireat(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, ks, args, Unit::Seconds, true)
}

pub fn pexpireat(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, ks, args, Unit::Millis, true)
}

/// TTL-family reply: -2 no key, -1 no TTL, else `f(expire_at_ms)`.
fn ttl_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    f: impl Fn(i64, i64) -> i64,
) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    if ks.lookup_read_notouch(db, key)?.is_none() {
        ctx.out.int(-2);
        return Ok(());
    }
    match ks.expire_at(db, key)? {
        None => ctx.out.int(-1),
        Some(at) => ctx.out.int(f(at, ctx.now_ms)),
    }
    Ok(())
}

pub fn ttl(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, ks, args, |at, now| ((at - now).max(0) + 500) / 1000)
}

pub fn pttl(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, ks, args, |at, now| (at - now).max(0))
}

pub fn expiretime(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // Rounded as TTL is (Redis's ttlGenericCommand).
    ttl_generic(ctx, ks, args, |at, _| (at + 500) / 1000)
}

pub fn pexpiretime(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, ks, args, |at, _| at)
}

pub fn persist(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    if ks.lookup_write(db, key)?.is_none() || ks.expire_at(db, key)?.is_none() {
        ctx.out.int(0);
        return Ok(());
    }
    ks.set_expire(db, key, None)?;
    ctx.dirty(1);
    ctx.notify(class::GENERIC, "persist", key);
    ctx.out.int(1);
    Ok(())
}

/// The encoding limits values loaded from RDB payloads are built with (the node's settings).
pub fn rdb_limits(node: &crate::node::Node) -> crate::store::rdb::Limits {
    let c = node.config.read();
    crate::store::rdb::Limits {
        hash: node.store.hash_limits.get(),
        set_max_intset_entries: node.store.set_limits.get(),
        list_fill: c.list_max_listpack_size,
        zset: crate::store::zset::ZLimits {
            entries: c.zset_max_listpack_entries,
            value: c.zset_max_listpack_value,
        },
    }
}

pub fn dump(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    match ks.lookup_read(ctx.client.db, &args[1])? {
        None => ctx.out.null(),
        Some(e) => {
            let payload = crate::store::rdb::dump(&e.value);
            ctx.out.bulk(&payload);
        }
    }
    Ok(())
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f], checked in Redis's order:
/// options, existing key, TTL, payload checksum, payload body.
pub fn restore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    use crate::store::rdb::RdbError;
    let db = ctx.client.db;
    let (mut replace, mut absttl) = (false, false);
    let mut idle: Option<i64> = None;
    let mut freq: Option<i64> = None;
    let mut it = ArgIter::new(args, 4);
    while let Some(a) = it.next_arg() {
        if eq_ic(a, "REPLACE") {
            replace = true;
        } else if eq_ic(a, "ABSTTL") {
            absttl = true;
        } else if eq_ic(a, "IDLETIME") && it.remaining() > 0 && freq.is_none() {
            let v = int(it.value()?)?;
            if v < 0 {
                return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(v);
        } else if eq_ic(a, "FREQ") && it.remaining() > 0 && idle.is_none() {
            let v = int(it.value()?)?;
            if !(0..=255).contains(&v) {
                return Err(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            freq = Some(v);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let key = &args[1];
    if !replace && ks.exists(db, key)? {
        return Err(CmdError::Msg(
            "BUSYKEY Target key name already exists.".into(),
        ));
    }
    let ttl = int(&args[2])?;
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    let value = match crate::store::rdb::restore(&args[3], &rdb_limits(ctx.node)) {
        Ok(v) => v,
        Err(RdbError::Checksum) => {
            return Err(CmdError::err("DUMP payload version or checksum are wrong"));
        }
        Err(RdbError::Format(_)) => return Err(CmdError::err("Bad data format")),
    };
    let at = match ttl {
        0 => None,
        t if absttl => Some(t),
        t => Some(ctx.now_ms.saturating_add(t)),
    };
    if let Some(at) = at
        && at <= ctx.now_ms
    {
        // Already expired: nothing is created, and a replaced key is deleted (logged as that
        // DEL, or not at all).
        if ks.remove(db, key)?.is_some() {
            ctx.dirty(1);
            ctx.notify(class::GENERIC, "del", key);
            ctx.log_as = Some(vec![Bytes::from_static(b"DEL"), key.clone()]);
        } else {
            ctx.log_as = Some(Vec::new());
        }
        ctx.out.ok();
        return Ok(());
    }
    let lru = ks.store().lru_clock();
    let mut e = crate::store::Entry::new(crate::store::Sds::new(key), value, lru);
    // Each applies under its own kind of policy only (Redis's objectSetLRUOrLFU).
    let lfu = ctx.node.store.lfu.is_on();
    if let Some(s) = idle.filter(|_| !lfu) {
        e.touch(lru.saturating_sub(s.min(u32::MAX as i64) as u32));
    }
    if let Some(f) = freq.filter(|_| lfu) {
        e.set_freq(f as u8);
    }
    ks.put_entry(db, e, at)?;
    ctx.dirty(1);
    ctx.notify(class::GENERIC, "restore", key);
    ctx.out.ok();
    Ok(())
}
