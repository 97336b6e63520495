//! String commands: SET and its variants, GET and its variants, counters, ranges, LCS.

use bytes::Bytes;

use super::args::{ArgIter, eq_ic, int};
use super::error::{CmdError, CmdResult};
use super::long_double::LongDouble;
use super::{Ctx, reply_value};
use crate::observe::events::class;
use crate::store::{Entry, Keyspace, Sds, Value};

/// Bytes of a string value (an int-encoded one is formatted).
pub fn string_bytes(v: &Value) -> Result<std::borrow::Cow<'_, [u8]>, CmdError> {
    match v {
        Value::Str(s) => Ok(std::borrow::Cow::Borrowed(s.as_bytes())),
        Value::Int(i) => Ok(std::borrow::Cow::Owned(
            itoa::Buffer::new().format(*i).as_bytes().to_vec(),
        )),
        #[allow(unreachable_patterns)]
        _ => Err(CmdError::WrongType),
    }
}

/// The string at `key`: `Ok(None)` when missing, WRONGTYPE when not a string.
fn read_string<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut Entry>, CmdError> {
    match ks.lookup_read(db, key)? {
        Some(e) if !e.value.is_string() => Err(CmdError::WrongType),
        other => Ok(other),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// The expiry options shared by SET and GETEX, parsed as Redis's
/// `parseExtendedStringArgumentsOrReply`.
struct StringOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<(ExpireKind, &'a Bytes)>,
}

fn parse_string_opts<'a>(
    args: &'a [Bytes],
    start: usize,
    for_set: bool,
) -> Result<StringOpts<'a>, CmdError> {
    let mut o = StringOpts {
        nx: false,
        xx: false,
        get: false,
        keep_ttl: false,
        persist: false,
        expire: None,
    };
    let mut it = ArgIter::new(args, start);
    while let Some(a) = it.next_arg() {
        let other_expire = |k: ExpireKind, o: &StringOpts| o.expire.is_some_and(|(e, _)| e != k);
        let kind = if eq_ic(a, "EX") {
            Some(ExpireKind::Ex)
        } else if eq_ic(a, "PX") {
            Some(ExpireKind::Px)
        } else if eq_ic(a, "EXAT") {
            Some(ExpireKind::ExAt)
        } else if eq_ic(a, "PXAT") {
            Some(ExpireKind::PxAt)
        } else {
            None
        };
        if for_set && eq_ic(a, "NX") && !o.xx {
            o.nx = true;
        } else if for_set && eq_ic(a, "XX") && !o.nx {
            o.xx = true;
        } else if for_set && eq_ic(a, "GET") {
            o.get = true;
        } else if for_set && eq_ic(a, "KEEPTTL") && o.expire.is_none() {
            o.keep_ttl = true;
        } else if !for_set && eq_ic(a, "PERSIST") && o.expire.is_none() {
            o.persist = true;
        } else if let Some(k) = kind
            .filter(|&k| !o.keep_ttl && !o.persist && !other_expire(k, &o) && it.remaining() > 0)
        {
            o.expire = Some((k, it.value()?));
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(o)
}

/// Absolute expiry in ms for an EX/PX/EXAT/PXAT value, with Redis's checks.
fn expire_ms(
    kind: ExpireKind,
    arg: &[u8],
    now_ms: i64,
    cmd: &'static str,
) -> Result<i64, CmdError> {
    let v = int(arg)?;
    let seconds = matches!(kind, ExpireKind::Ex | ExpireKind::ExAt);
    if v <= 0 || (seconds && v > i64::MAX / 1000) {
        return Err(CmdError::InvalidExpire(cmd));
    }
    let ms = if seconds { v * 1000 } else { v };
    let at = if matches!(kind, ExpireKind::Ex | ExpireKind::Px) {
        ms.checked_add(now_ms)
    } else {
        Some(ms)
    };
    match at {
        Some(at) if at > 0 => Ok(at),
        _ => Err(CmdError::InvalidExpire(cmd)),
    }
}

pub fn set(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let o = parse_string_opts(args, 3, true)?;
    let at = match o.expire {
        Some((k, v)) => Some(expire_ms(k, v, ctx.now_ms, "set")?),
        None => None,
    };
    let db = ctx.client.db;
    let key = &args[1];
    let found = if o.get {
        match read_string(ks, db, key)? {
            Some(e) => {
                reply_value(&mut ctx.out, &e.value);
                true
            }
            None => {
                ctx.out.null();
                false
            }
        }
    } else if o.nx || o.xx {
        ks.exists(db, key)?
    } else {
        // A plain SET does not ask: the store's own lookup finds the key or makes room for it.
        false
    };
    if (o.nx && found) || (o.xx && !found) {
        if !o.get {
            ctx.out.null();
        }
        return Ok(());
    }
    ks.set(db, key, Value::from_bytes(&args[2]), at, o.keep_ttl)?;
    ctx.dirty(1);
    ctx.notify(class::STRING, "set", key);
    if at.is_some() {
        ctx.notify(class::GENERIC, "expire", key);
    }
    if !o.get {
        ctx.out.ok();
    }
    Ok(())
}

pub fn setnx(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    if ks.exists(db, &args[1])? {
        ctx.out.int(0);
    } else {
        ks.set(db, &args[1], Value::from_bytes(&args[2]), None, false)?;
        ctx.dirty(1);
        ctx.notify(class::STRING, "set", &args[1]);
        ctx.out.int(1);
    }
    Ok(())
}

fn set_with_ttl(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    kind: ExpireKind,
    cmd: &'static str,
) -> CmdResult {
    let at = expire_ms(kind, &args[2], ctx.now_ms, cmd)?;
    ks.set(
        ctx.client.db,
        &args[1],
        Value::from_bytes(&args[3]),
        Some(at),
        false,
    )?;
    ctx.dirty(1);
    ctx.notify(class::STRING, "set", &args[1]);
    ctx.notify(class::GENERIC, "expire", &args[1]);
    ctx.out.ok();
    Ok(())
}

pub fn setex(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    set_with_ttl(ctx, ks, args, ExpireKind::Ex, "setex")
}

pub fn psetex(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    set_with_ttl(ctx, ks, args, ExpireKind::Px, "psetex")
}

pub fn get(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    match read_string(ks, ctx.client.db, &args[1])? {
        Some(e) => reply_value(&mut ctx.out, &e.value),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn getdel(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    if read_string(ks, db, &args[1])?.is_none() {
        ctx.log_as = Some(Vec::new());
        ctx.out.null();
        return Ok(());
    }
    if let Some(e) = ks.remove(db, &args[1])? {
        reply_value(&mut ctx.out, &e.value);
        ctx.dirty(1);
        ctx.notify(class::GENERIC, "del", &args[1]);
        ctx.log_as = Some(vec![Bytes::from_static(b"DEL"), args[1].clone()]);
    }
    Ok(())
}

pub fn getset(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    match read_string(ks, db, &args[1])? {
        Some(e) => reply_value(&mut ctx.out, &e.value),
        None => ctx.out.null(),
    }
    ks.set(db, &args[1], Value::from_bytes(&args[2]), None, false)?;
    ctx.dirty(1);
    ctx.notify(class::STRING, "set", &args[1]);
    Ok(())
}

pub fn getex(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let o = parse_string_opts(args, 2, false)?;
    let db = ctx.client.db;
    let key = &args[1];
    // As Redis: the options' syntax is checked first, then the key is looked up, and only an
    // existing key gets its expire time validated (`GETEX nokey EX -1` is a nil, not an error).
    let Some(e) = read_string(ks, db, key)? else {
        ctx.out.null();
        return Ok(());
    };
    let at = match o.expire {
        Some((k, v)) => Some(expire_ms(k, v, ctx.now_ms, "getex")?),
        None => None,
    };
    reply_value(&mut ctx.out, &e.value);
    if let Some(at) = at {
        if at <= ctx.now_ms {
            ks.remove(db, key)?;
            ctx.notify(class::GENERIC, "del", key);
            ctx.log_as = Some(super::keys::expired_at_once(ctx, key));
        } else {
            ks.set_expire(db, key, Some(at))?;
            ctx.notify(class::GENERIC, "expire", key);
        }
        ctx.dirty(1);
    } else if o.persist && ks.expire_at(db, key)?.is_some() {
        ks.set_expire(db, key, None)?;
        ctx.dirty(1);
        ctx.notify(class::GENERIC, "persist", key);
    }
    Ok(())
}

pub fn mget(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    ctx.out.array(args.len() - 1);
    for key in &args[1..] {
        match ks.lookup_read(db, key)? {
            Some(e) if e.value.is_string() => reply_value(&mut ctx.out, &e.value),
            _ => ctx.out.null(),
        }
    }
    Ok(())
}

fn check_pairs(args: &[Bytes]) -> Result<(), CmdError> {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Arity(
            String::from_utf8_lossy(&args[0]).to_lowercase(),
        ));
    }
    Ok(())
}

pub fn mset(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    check_pairs(args)?;
    let db = ctx.client.db;
    for pair in args[1..].chunks(2) {
        ks.set(db, &pair[0], Value::from_bytes(&pair[1]), None, false)?;
        ctx.notify(class::STRING, "set", &pair[0]);
    }
    ctx.dirty((args.len() / 2) as u64);
    ctx.out.ok();
    Ok(())
}

pub fn msetnx(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    check_pairs(args)?;
    let db = ctx.client.db;
    for pair in args[1..].chunks(2) {
        if ks.exists(db, &pair[0])? {
            ctx.out.int(0);
            return Ok(());
        }
    }
    for pair in args[1..].chunks(2) {
        ks.set(db, &pair[0], Value::from_bytes(&pair[1]), None, false)?;
        ctx.notify(class::STRING, "set", &pair[0]);
    }
    ctx.dirty((args.len() / 2) as u64);
    ctx.out.int(1);
    Ok(())
}

pub fn append(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let max = ctx.proto_max_bulk_len();
    let len = match ks.lookup_write(db, &args[1])? {
        None => {
            ks.set(db, &args[1], Value::from_bytes(&args[2]), None, false)?;
            args[2].len()
        }
        Some(e) => {
            let mut cur = string_bytes(&e.value)?.into_owned();
            if cur.len() + args[2].len() > max {
                return Err(CmdError::err(
                    "string exceeds maximum allowed size (proto-max-bulk-len)",
                ));
            }
            cur.extend_from_slice(&args[2]);
            let len = cur.len();
            e.value = Value::Str(Sds::from_vec(cur));
            e.set_raw();
            len
        }
    };
    ctx.dirty(1);
    ctx.notify(class::STRING, "append", &args[1]);
    ctx.out.int(len as i64);
    Ok(())
}

pub fn strlen(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = match read_string(ks, ctx.client.db, &args[1])? {
        Some(e) => string_bytes(&e.value)?.len(),
        None => 0,
    };
    ctx.out.int(n as i64);
    Ok(())
}

pub fn getrange(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (mut start, mut end) = (int(&args[2])?, int(&args[3])?);
    let Some(e) = read_string(ks, ctx.client.db, &args[1])? else {
        ctx.out.bulk(b"");
        return Ok(());
    };
    let s = string_bytes(&e.value)?;
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        ctx.out.bulk(b"");
        return Ok(());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        ctx.out.bulk(b"");
    } else {
        ctx.out.bulk(&s[start as usize..=end as usize]);
    }
    Ok(())
}

pub fn setrange(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let offset = int(&args[2])?;
    if offset < 0 {
        return Err(CmdError::err("offset is out of range"));
    }
    let value = &args[3];
    let db = ctx.client.db;
    let max = ctx.proto_max_bulk_len() as i64;
    let too_big = || CmdError::err("string exceeds maximum allowed size (proto-max-bulk-len)");
    // An offset near i64::MAX must not wrap past the check (Redis's checkStringLength).
    let fits = |len: usize| offset.checked_add(len as i64).is_some_and(|end| end <= max);
    match ks.lookup_write(db, &args[1])? {
        None => {
            if value.is_empty() {
                ctx.out.int(0);
                return Ok(());
            }
            if !fits(value.len()) {
                return Err(too_big());
            }
            let mut buf = vec![0u8; offset as usize];
            buf.extend_from_slice(value);
            let len = buf.len();
            ks.set(db, &args[1], Value::Str(Sds::from_vec(buf)), None, false)?;
            if let Some(e) = ks.lookup_write(db, &args[1])? {
                e.set_raw();
            }
            ctx.dirty(1);
            ctx.notify(class::STRING, "setrange", &args[1]);
            ctx.out.int(len as i64);
        }
        Some(e) => {
            let mut cur = string_bytes(&e.value)?.into_owned();
            if value.is_empty() {
                ctx.out.int(cur.len() as i64);
                return Ok(());
            }
            if !fits(value.len()) {
                return Err(too_big());
            }
            let end = offset as usize + value.len();
            if cur.len() < end {
                cur.resize(end, 0);
            }
            cur[offset as usize..end].copy_from_slice(value);
            let len = cur.len();
            e.value = Value::Str(Sds::from_vec(cur));
            e.set_raw();
            ctx.dirty(1);
            ctx.notify(class::STRING, "setrange", &args[1]);
            ctx.out.int(len as i64);
        }
    }
    Ok(())
}

fn incr_by(ctx: &mut Ctx, ks: &mut Keyspace, key: &[u8], by: i64) -> CmdResult {
    let db = ctx.client.db;
    let new = match ks.lookup_write(db, key)? {
        Some(e) => {
            let cur = match &e.value {
                Value::Int(i) => *i,
                Value::Str(s) => {
                    crate::store::value::parse_i64_strict(s).ok_or(CmdError::NotInteger)?
                }
                #[allow(unreachable_patterns)]
                _ => return Err(CmdError::WrongType),
            };
            let new = cur.checked_add(by).ok_or(CmdError::Overflow)?;
            e.value = Value::Int(new);
            e.clear_raw();
            new
        }
        None => {
            ks.set(db, key, Value::Int(by), None, false)?;
            by
        }
    };
    ctx.dirty(1);
    ctx.notify(class::STRING, "incrby", key);
    ctx.out.int(new);
    Ok(())
}

pub fn incr(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    incr_by(ctx, ks, &args[1], 1)
}

pub fn decr(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    incr_by(ctx, ks, &args[1], -1)
}

pub fn incrby(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let by = int(&args[2])?;
    incr_by(ctx, ks, &args[1], by)
}

pub fn decrby(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let by = int(&args[2])?;
    if by == i64::MIN {
        return Err(CmdError::err("decrement would overflow"));
    }
    incr_by(ctx, ks, &args[1], -by)
}

pub fn incrbyfloat(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    // In Redis's long double, so every digit of the result is Redis's.
    let parse = |b: &[u8]| LongDouble::parse(b).ok_or(CmdError::NotFloat);
    let cur = match ks.lookup_write(db, &args[1])? {
        Some(e) => parse(&string_bytes(&e.value)?)?,
        None => Ok(LongDouble::ZERO),
    };
    let by = parse(&args[2])?;
    let new = match (cur, by) {
        (Ok(a), Ok(b)) => a.checked_add(b),
        _ => None,
    }
    .ok_or_else(|| CmdError::err("increment would produce NaN or Infinity"))?;
    let text = new.to_human();
    let value = Value::Str(Sds::new(text.as_bytes()));
    match ks.lookup_write(db, &args[1])? {
        Some(e) => {
            e.value = value;
            e.clear_raw();
        }
        None => ks.set(db, &args[1], value, None, false)?,
    }
    ctx.dirty(1);
    ctx.notify(class::STRING, "incrbyfloat", &args[1]);
    // Logged as the value it made (Redis's SET ... KEEPTTL), so a replica's float arithmetic
    // never matters.
    ctx.log_as = Some(vec![
        Bytes::from_static(b"SET"),
        args[1].clone(),
        Bytes::copy_from_slice(text.as_bytes()),
        Bytes::from_static(b"KEEPTTL"),
    ]);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

pub fn lcs(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (mut get_len, mut get_idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut it = ArgIter::new(args, 3);
    while let Some(a) = it.next_arg() {
        if eq_ic(a, "LEN") {
            get_len = true;
        } else if eq_ic(a, "IDX") {
            get_idx = true;
        } else if eq_ic(a, "WITHMATCHLEN") {
            with_len = true;
        } else if eq_ic(a, "MINMATCHLEN") && it.remaining() > 0 {
            min_len = int(it.value()?)?.max(0);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let db = ctx.client.db;
    let mut fetch = |key: &[u8]| -> Result<Vec<u8>, CmdError> {
        match ks.lookup_read(db, key)? {
            None => Ok(Vec::new()),
            Some(e) if e.value.is_string() => Ok(string_bytes(&e.value)?.into_owned()),
            Some(_) => Err(CmdError::err(
                "The specified keys must contain string values",
            )),
        }
    };
    let a = fetch(&args[1])?;
    let b = fetch(&args[2])?;
    if get_len && get_idx {
        return Err(CmdError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (alen, blen) = (a.len(), b.len());
    let dp_size = (alen as u64 + 1) * (blen as u64 + 1) * 4;
    if dp_size > ctx.proto_max_bulk_len() as u64 {
        return Err(CmdError::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let w = blen + 1;
    let mut dp = vec![0u32; (alen + 1) * w];
    for i in 1..=alen {
        for j in 1..=blen {
            dp[i * w + j] = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * w + j - 1] + 1
            } else {
                dp[(i - 1) * w + j].max(dp[i * w + j - 1])
            };
        }
    }
    let total = dp[alen * w + blen] as usize;
    if get_len {
        ctx.out.int(total as i64);
        return Ok(());
    }
    // Walk back from the end, collecting the LCS and (for IDX) the matching ranges, exactly in
    // the order Redis emits them.
    let mut result = vec![0u8; total];
    let mut idx = total;
    let mut ranges: Vec<[usize; 4]> = Vec::new();
    let (mut i, mut j) = (alen, blen);
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0usize, 0usize, 0usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            idx -= 1;
            if a_start == alen {
                a_start = i - 1;
                a_end = i - 1;
                b_start = j - 1;
                b_end = j - 1;
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            i -= 1;
            j -= 1;
        } else {
            if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            let match_len = a_end - a_start + 1;
            if min_len == 0 || match_len as i64 >= min_len {
                ranges.push([a_start, a_end, b_start, b_end]);
            }
            a_start = alen;
        }
    }
    if !get_idx {
        ctx.out.bulk(&result);
        return Ok(());
    }
    ctx.out.map(2);
    ctx.out.bulk(b"matches");
    ctx.out.array(ranges.len());
    for r in &ranges {
        ctx.out.array(if with_len { 3 } else { 2 });
        ctx.out.array(2);
        ctx.out.int(r[0] as i64);
        ctx.out.int(r[1] as i64);
        ctx.out.array(2);
        ctx.out.int(r[2] as i64);
        ctx.out.int(r[3] as i64);
        if with_len {
            ctx.out.int((r[1] - r[0] + 1) as i64);
        }
    }
    ctx.out.bulk(b"len");
    ctx.out.int(total as i64);
    Ok(())
}
