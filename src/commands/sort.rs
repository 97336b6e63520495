//! SORT and SORT_RO (BY, GET, LIMIT, ASC/DESC, ALPHA, STORE), as Redis 7.0's `sort.c`.
//!
//! BY and GET patterns name keys that only the element values reveal, so both commands lock every
//! shard (`ALL_SHARDS`): like Redis, a SORT runs alone. The types SORT reads are listed in one
//! place, [`sortable`]; the type STORE writes (a list) in another, [`stored_list`].

use std::cmp::Ordering;

use bytes::Bytes;
use smallvec::SmallVec;

use super::args::{eq_ic, int};
use super::error::{CmdError, CmdResult};
use super::flags::{ALL_SHARDS, MOVABLEKEYS};
use super::table::*;
use super::{Command, Ctx};
use crate::observe::events::class;
use crate::store::{Keyspace, Sds, Value};

/// The elements of a value SORT can read, and whether they have an order of their own (lists
/// and sorted sets do, so `BY nosort` keeps it and DESC reverses it; sets do not).
struct Sortable {
    items: Vec<Sds>,
    ordered: bool,
}

/// The hook for every sortable type: sets here; lists (in order) and sorted sets (by score) add
/// their arms as their types arrive. WRONGTYPE for the rest.
fn sortable(v: &Value) -> Result<Sortable, CmdError> {
    match v {
        Value::Set(s) => Ok(Sortable {
            items: s.iter().map(|m| m.to_sds()).collect(),
            ordered: false,
        }),
        Value::List(l) => Ok(Sortable {
            items: l.iter().map(Sds::new).collect(),
            ordered: true,
        }),
        Value::ZSet(z) => Ok(Sortable {
            items: z.iter().map(|(m, _)| Sds::new(m)).collect(),
            ordered: true,
        }),
        Value::Str(_) | Value::Int(_) | Value::Hash(_) | Value::Stream(_) => {
            Err(CmdError::WrongType)
        }
    }
}

/// The value `SORT ... STORE` writes: a list of `items`, nodes sized by `fill`
/// (`list-max-listpack-size`).
fn stored_list(items: Vec<Sds>, fill: i32) -> Result<Value, CmdError> {
    let mut l = crate::store::list::List::new();
    for it in &items {
        l.push_back(it, fill);
    }
    Ok(Value::List(Box::new(l)))
}

/// Key positions of SORT: the sorted key and the last STORE destination (Redis's `sortGetKeys`).
pub fn sort_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    let mut keys = SmallVec::new();
    keys.push(1);
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq_ic(a, "LIMIT") {
            i += 2;
        } else if eq_ic(a, "GET") || eq_ic(a, "BY") {
            i += 1;
        } else if eq_ic(a, "STORE") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    keys.extend(store);
    keys
}

/// C's `strtod` over the whole string, as SORT reads scores: leading white space allowed,
/// nothing after the number, no NaN, no overflow. The empty string reads as 0, as in Redis.
fn sort_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() {
        return Some(0.0);
    }
    let s = std::str::from_utf8(b).ok()?;
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let unsigned = t.trim_start_matches(['+', '-']);
    if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        // strtod reads hexadecimal too; integers are what anyone stores.
        let v = u64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if t.starts_with('-') { -v } else { v });
    }
    let v: f64 = t.parse().ok()?;
    let lower = t.to_ascii_lowercase();
    let named_inf = lower.trim_start_matches(['+', '-']).starts_with("inf");
    if v.is_nan() || (v.is_infinite() && !named_inf) {
        return None;
    }
    Some(v)
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*` is replaced
/// by the element, and a `->field` suffix after it reads a hash field instead of a string.
fn lookup_by_pattern(
    ks: &mut Keyspace,
    db: usize,
    pattern: &[u8],
    elem: &[u8],
) -> Result<Option<Sds>, CmdError> {
    if pattern == b"#" {
        return Ok(Some(Sds::new(elem)));
    }
    let Some(star) = pattern.iter().position(|&c| c == b'*') else {
        return Ok(None);
    };
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(i) => (&after[..i], Some(&after[i + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(postfix);
    let Some(e) = ks.lookup_read(db, &key)? else {
        return Ok(None);
    };
    Ok(match (&e.value, field) {
        (Value::Hash(h), Some(f)) => h.get(f).map(Sds::new),
        (Value::Str(s), None) => Some(s.clone()),
        (Value::Int(i), None) => Some(Sds::new(itoa::Buffer::new().format(*i).as_bytes())),
        _ => None,
    })
}

struct Opts<'a> {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    store: Option<&'a Bytes>,
    by: Option<&'a Bytes>,
    dontsort: bool,
    gets: Vec<&'a Bytes>,
}

/// `cluster`: BY with a pattern and GET are refused, as Redis Cluster's (they name keys of
/// other slots). `full_read`: the client's ACL user may read every key, which BY and GET
/// need (they read keys no ACL check saw).
fn parse(
    args: &[Bytes],
    readonly: bool,
    cluster: bool,
    full_read: bool,
) -> Result<Opts<'_>, CmdError> {
    let mut o = Opts {
        desc: false,
        alpha: false,
        limit: None,
        store: None,
        by: None,
        dontsort: false,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < args.len() {
        let a = &args[j];
        let left = args.len() - j - 1;
        if eq_ic(a, "ASC") {
            o.desc = false;
        } else if eq_ic(a, "DESC") {
            o.desc = true;
        } else if eq_ic(a, "ALPHA") {
            o.alpha = true;
        } else if eq_ic(a, "LIMIT") && left >= 2 {
            o.limit = Some((int(&args[j + 1])?, int(&args[j + 2])?));
            j += 2;
        } else if !readonly && eq_ic(a, "STORE") && left >= 1 {
            o.store = Some(&args[j + 1]);
            j += 1;
        } else if eq_ic(a, "BY") && left >= 1 {
            o.by = Some(&args[j + 1]);
            o.dontsort = !args[j + 1].contains(&b'*');
            if !o.dontsort && cluster {
                return Err(CmdError::err("BY option of SORT denied in Cluster mode."));
            }
            if !o.dontsort && !full_read {
                return Err(CmdError::err(
                    "BY option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            j += 1;
        } else if eq_ic(a, "GET") && left >= 1 {
            if cluster {
                return Err(CmdError::err("GET option of SORT denied in Cluster mode."));
            }
            if !full_read {
                return Err(CmdError::err(
                    "GET option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            o.gets.push(&args[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// One element to sort and what it sorts by.
struct Item {
    elem: Sds,
    score: f64,
    by: Option<Sds>,
}

fn sort_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], readonly: bool) -> CmdResult {
    let full_read = ctx.client.acl_exempt
        || ctx
            .client
            .current_user(&ctx.node.acl)
            .is_some_and(|u| super::resolve(args).is_ok_and(|c| u.reads_every_key(c, args)));
    let mut o = parse(args, readonly, ctx.node.cluster.is_some(), full_read)?;
    let db = ctx.client.db;
    let Sortable { mut items, ordered } = match ks.lookup_read(db, &args[1])? {
        Some(e) => {
            // Redis converts a sorted set it sorts to the skiplist encoding, for good (sort.c:
            // "Destructively convert encoded sorted sets for SORT"), once the options parsed.
            if let Value::ZSet(z) = &mut e.value {
                z.convert_to_skiplist();
            }
            sortable(&e.value)?
        }
        None => Sortable {
            items: Vec::new(),
            ordered: true,
        },
    };
    // Redis: a set sorted "by nothing" into a key, or inside a script, is sorted
    // alphabetically, so what is stored or replicated does not depend on the set's order.
    if o.dontsort && !ordered && (o.store.is_some() || ctx.client.in_script()) {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = items.len() as i64;
    let (limit_start, limit_count) = o.limit.unwrap_or((0, -1));
    let mut start = limit_start.max(0);
    let mut end = if limit_count < 0 {
        len - 1
    } else {
        start.saturating_add(limit_count) - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    if o.dontsort && ordered && o.desc {
        items.reverse();
    }
    let mut sorted: Vec<Item> = items
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            by: None,
        })
        .collect();
    if !o.dontsort {
        let mut bad_score = false;
        for it in sorted.iter_mut() {
            let by = match o.by {
                Some(p) => match lookup_by_pattern(ks, db, p, &it.elem)? {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            if o.alpha {
                it.by = by;
            } else {
                let text = by.as_ref().unwrap_or(&it.elem);
                match sort_score(text) {
                    Some(s) => it.score = s,
                    None => bad_score = true,
                }
            }
        }
        if bad_score {
            return Err(CmdError::err(
                "One or more scores can't be converted into double",
            ));
        }
        let (alpha, by_pattern, desc) = (o.alpha, o.by.is_some(), o.desc);
        sorted.sort_by(|a, b| {
            let c = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.elem.cmp(&b.elem))
            } else if by_pattern {
                match (&a.by, &b.by) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                }
            } else {
                a.elem.cmp(&b.elem)
            };
            if desc { c.reverse() } else { c }
        });
    }
    let picked: &[Item] = if end >= start && start >= 0 {
        &sorted[start as usize..=end as usize]
    } else {
        &[]
    };
    let per = o.gets.len().max(1);
    let outputlen = picked.len() * per;
    match o.store {
        None => {
            ctx.out.array(outputlen);
            for it in picked {
                if o.gets.is_empty() {
                    ctx.out.bulk(&it.elem);
                }
                for g in &o.gets {
                    match lookup_by_pattern(ks, db, g, &it.elem)? {
                        Some(v) => ctx.out.bulk(&v),
                        None => ctx.out.null(),
                    }
                }
            }
        }
        Some(dst) => {
            let mut out = Vec::with_capacity(outputlen);
            for it in picked {
                if o.gets.is_empty() {
                    out.push(it.elem.clone());
                }
                for g in &o.gets {
                    out.push(lookup_by_pattern(ks, db, g, &it.elem)?.unwrap_or_default());
                }
            }
            if outputlen > 0 {
                let fill = ctx.node.config.read().list_max_listpack_size;
                let list = stored_list(out, fill)?;
                ks.set(db, dst, list, None, false)?;
                ctx.dirty(outputlen as u64);
                ctx.notify(class::LIST, "sortstore", dst);
            } else if ks.remove(db, dst)?.is_some() {
                ctx.dirty(1);
                ctx.notify(class::GENERIC, "del", dst);
            }
            ctx.out.int(outputlen as i64);
        }
    }
    Ok(())
}

pub fn sort(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    sort_generic(ctx, ks, args, false)
}

pub fn sort_ro(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    sort_generic(ctx, ks, args, true)
}

pub static COMMANDS: &[Command] = &[
    Command {
        name: "sort",
        arity: -2,
        flags: WM | MOVABLEKEYS | ALL_SHARDS,
        keys: KEY1,
        keys_fn: Some(sort_keys),
        group: "generic",
        since: "1.0.0",
        summary: "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        handler: Some(sort),
        subcommands: &[],
        key_specs: &[],
        tips: &[],
        acl: &["@set", "@sortedset", "@list", "@dangerous"],
    },
    Command {
        name: "sort_ro",
        arity: -2,
        flags: R | MOVABLEKEYS | ALL_SHARDS,
        keys: KEY1,
        keys_fn: None,
        group: "generic",
        since: "7.0.0",
        summary: "Returns the sorted elements of a list, a set, or a sorted set.",
        handler: Some(sort_ro),
        subcommands: &[],
        key_specs: &[],
        tips: &[],
        acl: &["@set", "@sortedset", "@list", "@dangerous"],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn keys_are_the_source_and_the_last_store() {
        assert_eq!(&sort_keys(&args("SORT s"))[..], &[1]);
        assert_eq!(&sort_keys(&args("SORT s STORE d"))[..], &[1, 3]);
        assert_eq!(
            &sort_keys(&args("SORT s LIMIT 0 1 GET store BY store STORE d STORE e"))[..],
            &[1, 12]
        );
        assert_eq!(&sort_keys(&args("SORT s STORE"))[..], &[1]);
    }

    #[test]
    fn scores_read_as_strtod() {
        assert_eq!(sort_score(b"1.5"), Some(1.5));
        assert_eq!(sort_score(b" 2"), Some(2.0));
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b"0x10"), Some(16.0));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"1 "), None);
        assert_eq!(sort_score(b"abc"), None);
    }
}
