//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST. The representation and
//! the estimator live in `store::hll`; here are Redis's argument handling, replies, cache
//! updates and events.

use bytes::Bytes;

use super::Ctx;
use super::error::{CmdError, CmdResult};
use super::flags::ADMIN;
use super::table::KeySpec;
use super::table::{ALL_KEYS, Command, KEY_2, KEY1, NO_KEYS, R, WM, WMF, cmd};
use crate::observe::events::class;
use crate::store::hll;
use crate::store::{Entry, Keyspace, Sds, Value};

pub static COMMANDS: &[Command] = &[
    cmd!(
        "pfadd",
        -2,
        WMF,
        KEY1,
        "hyperloglog",
        "2.8.9",
        pfadd,
        "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist."
    )
    .specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "pfcount",
        -2,
        R | super::flags::MAY_REPLICATE,
        ALL_KEYS,
        "hyperloglog",
        "2.8.9",
        pfcount,
        "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s)."
    )
    .specs(&[KeySpec::range(&["RW", "access"], 1, -1, 1).notes(
        "RW because it may change the internal representation of the key, and propagate to replicas",
    )]),
    cmd!(
        "pfmerge",
        -2,
        WM,
        ALL_KEYS,
        "hyperloglog",
        "2.8.9",
        pfmerge,
        "Merges one or more HyperLogLog values into a single key."
    )
    .specs(&[
        KeySpec::range(&["RW", "access", "insert"], 1, 0, 1),
        KeySpec::range(&["RO", "access"], 2, -1, 1),
    ]),
    cmd!(
        "pfdebug",
        3,
        WM | ADMIN,
        KEY_2,
        "hyperloglog",
        "2.8.9",
        pfdebug,
        "Internal commands for debugging HyperLogLog values."
    )
    .specs(&[KeySpec::range(&["RW", "access"], 2, 0, 1)]),
    cmd!(
        "pfselftest",
        1,
        ADMIN,
        NO_KEYS,
        "hyperloglog",
        "2.8.9",
        pfselftest,
        "An internal command for testing HyperLogLog values."
    ),
];

fn sparse_max(ctx: &Ctx) -> usize {
    ctx.node.config.read().hll_sparse_max_bytes
}

/// The HLL bytes of a value, with Redis's `isHLLObjectOrReply` errors: another type is the
/// usual WRONGTYPE, a string that is not an HLL (an int-encoded one included) the HLL one.
fn hll_bytes(e: &Entry) -> Result<&[u8], CmdError> {
    match &e.value {
        Value::Str(s) if hll::is_hll(s) => Ok(s),
        v if v.is_string() => Err(CmdError::NotHll),
        _ => Err(CmdError::WrongType),
    }
}

/// Takes a valid HLL out of its entry to edit it; [`put_back`] stores it again.
fn take_hll(e: &mut Entry) -> Result<Vec<u8>, CmdError> {
    hll_bytes(e)?;
    match std::mem::replace(&mut e.value, Value::Int(0)) {
        Value::Str(s) => Ok(s.into_vec()),
        other => {
            e.value = other;
            Err(CmdError::NotHll)
        }
    }
}

/// Stores an edited HLL; Redis unshares the value first, so it reports "raw" from then on.
fn put_back(e: &mut Entry, v: Vec<u8>) {
    e.value = Value::Str(Sds::from_vec(v));
    e.set_raw();
}

fn create(ks: &mut Keyspace, db: usize, key: &[u8], v: Vec<u8>) -> CmdResult {
    ks.set(db, key, Value::Str(Sds::from_vec(v)), None, false)?;
    if let Some(e) = ks.lookup_write(db, key)? {
        e.set_raw();
    }
    Ok(())
}

/// Adds every element; the count of registers changed, or the corruption found part way
/// (what was added before it stays, as in Redis).
fn add_all(v: &mut Vec<u8>, elements: &[Bytes], sparse_max: usize) -> Result<u64, CmdError> {
    let mut updated = 0;
    for ele in elements {
        if hll::add(v, ele, sparse_max).map_err(|_| CmdError::CorruptHll)? {
            updated += 1;
        }
    }
    Ok(updated)
}

pub fn pfadd(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let max = sparse_max(ctx);
    let updated = match ks.lookup_write(db, key)? {
        Some(e) => {
            let mut v = take_hll(e)?;
            let r = add_all(&mut v, &args[2..], max);
            if let Ok(n) = r
                && n > 0
            {
                hll::invalidate_cache(&mut v);
            }
            put_back(e, v);
            r?
        }
        None => {
            let mut v = hll::new_sparse();
            let r = add_all(&mut v, &args[2..], max);
            hll::invalidate_cache(&mut v);
            create(ks, db, key, v)?;
            r? + 1
        }
    };
    if updated > 0 {
        ctx.dirty(updated);
        ctx.notify(class::STRING, "pfadd", key);
    } else {
        // Nothing changed: nothing to propagate (Redis's call() propagates a change only).
        ctx.log_as = Some(Vec::new());
    }
    ctx.out.int((updated > 0) as i64);
    Ok(())
}

pub fn pfcount(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    if args.len() > 2 {
        // The cardinality of the union; nothing is cached.
        let mut max = vec![0u8; hll::REGISTERS];
        for key in &args[1..] {
            if let Some(e) = ks.lookup_read(db, key)? {
                hll::merge_into(&mut max, hll_bytes(e)?).map_err(|_| CmdError::CorruptHll)?;
            }
        }
        ctx.out.int(hll::count_registers(&max) as i64);
        return Ok(());
    }
    let Some(e) = ks.lookup_read(db, &args[1])? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut v = take_hll(e)?;
    let card = match hll::cached_card(&v) {
        Some(c) => c,
        None => match hll::count(&v) {
            Ok(c) => {
                // The cache lives in the value, so even this read-only command changes it
                // (and, as in Redis, a WATCH on the key sees the change).
                hll::set_cached_card(&mut v, c);
                ctx.signal_modified(&args[1]);
                ctx.dirty(1);
                // Propagated as Redis does (a changed data set is), so a replica's and a
                // replayed log's bytes are the master's.
                ctx.log_as = Some(args.to_vec());
                c
            }
            Err(_) => {
                put_back(e, v);
                return Err(CmdError::CorruptHll);
            }
        },
    };
    put_back(e, v);
    ctx.out.int(card as i64);
    Ok(())
}

pub fn pfmerge(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let smax = sparse_max(ctx);
    let mut max = vec![0u8; hll::REGISTERS];
    let mut use_dense = false;
    // The destination is a source too.
    for key in &args[1..] {
        if let Some(e) = ks.lookup_read(db, key)? {
            let b = hll_bytes(e)?;
            use_dense |= hll::encoding(b) == hll::DENSE;
            hll::merge_into(&mut max, b).map_err(|_| CmdError::CorruptHll)?;
        }
    }
    let dest = &args[1];
    match ks.lookup_write(db, dest)? {
        Some(e) => {
            let mut v = take_hll(e)?;
            if use_dense && hll::sparse_to_dense(&mut v).is_err() {
                put_back(e, v);
                return Err(CmdError::CorruptHll);
            }
            hll::store_registers(&mut v, &max, smax);
            put_back(e, v);
        }
        None => {
            let mut v = hll::new_sparse();
            if use_dense {
                hll::sparse_to_dense(&mut v).map_err(|_| CmdError::CorruptHll)?;
            }
            hll::store_registers(&mut v, &max, smax);
            create(ks, db, dest, v)?;
        }
    }
    ctx.dirty(1);
    // Redis publishes "pfadd" for PFMERGE too: in effect a mass add.
    ctx.notify(class::STRING, "pfadd", dest);
    ctx.out.ok();
    Ok(())
}

pub fn pfdebug(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let Some(e) = ks.lookup_write(db, &args[2])? else {
        return Err(CmdError::err("The specified key does not exist"));
    };
    let mut v = take_hll(e)?;
    let sub = &args[1];
    let result = if sub.eq_ignore_ascii_case(b"getreg") {
        let mut r = Ok(());
        if hll::encoding(&v) == hll::SPARSE {
            r = hll::sparse_to_dense(&mut v).map_err(|_| CmdError::CorruptHll);
            ctx.dirty(1);
        }
        if r.is_ok() {
            ctx.out.array(hll::REGISTERS);
            for reg in hll::dense_registers(&v) {
                ctx.out.int(reg as i64);
            }
        }
        r
    } else if sub.eq_ignore_ascii_case(b"decode") {
        if hll::encoding(&v) != hll::SPARSE {
            Err(CmdError::err("HLL encoding is not sparse"))
        } else {
            ctx.out.bulk(hll::decode(&v).as_bytes());
            Ok(())
        }
    } else if sub.eq_ignore_ascii_case(b"encoding") {
        ctx.out.simple(if hll::encoding(&v) == hll::DENSE {
            "dense"
        } else {
            "sparse"
        });
        Ok(())
    } else if sub.eq_ignore_ascii_case(b"todense") {
        if hll::encoding(&v) == hll::SPARSE {
            let r = hll::sparse_to_dense(&mut v).map_err(|_| CmdError::CorruptHll);
            if r.is_ok() {
                ctx.dirty(1);
                ctx.out.int(1);
            }
            r
        } else {
            ctx.out.int(0);
            Ok(())
        }
    } else {
        Err(CmdError::err(format!(
            "Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub)
        )))
    };
    put_back(e, v);
    result
}

pub fn pfselftest(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    hll::self_test(sparse_max(ctx), 1000, 10_000_000).map_err(CmdError::err)?;
    ctx.out.ok();
    Ok(())
}
