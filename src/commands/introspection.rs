//! COMMAND and its subcommands, all read from the command table.

use bytes::Bytes;

use super::args::eq_ic;
use super::error::{CmdError, CmdResult};
use super::flags::{self, NAMES};
use super::table::{Command, CommandRef, KeySpec, acl_categories, table};
use super::{Ctx, key_positions, reply_help};
use crate::glob::glob_match;
use crate::resp::Reply;
use crate::store::Keyspace;

fn write_info(out: &mut Reply, c: &CommandRef) {
    let cmd = c.cmd;
    out.array(10);
    out.bulk(c.fullname.as_bytes());
    out.int(cmd.arity as i64);
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(f, _)| cmd.flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    out.set(names.len());
    for n in names {
        out.simple(n);
    }
    let (first, last, step) = cmd.keys;
    out.int(first as i64);
    out.int(last as i64);
    out.int(step as i64);
    let cats = acl_categories(cmd);
    out.set(cats.len());
    for c in cats {
        out.simple(c);
    }
    out.set(cmd.tips.len());
    for t in cmd.tips {
        out.bulk(t.as_bytes());
    }
    let derived;
    let specs: &[KeySpec] = if !cmd.key_specs.is_empty() || first <= 0 {
        cmd.key_specs
    } else {
        derived = [derived_spec(cmd)];
        &derived
    };
    out.set(specs.len());
    for spec in specs {
        out.map(if spec.notes.is_some() { 4 } else { 3 });
        if let Some(n) = spec.notes {
            out.bulk(b"notes");
            out.bulk(n.as_bytes());
        }
        out.bulk(b"flags");
        out.set(spec.flags.len());
        for f in spec.flags {
            out.simple(f);
        }
        out.bulk(b"begin_search");
        out.map(2);
        out.bulk(b"type");
        match spec.keyword {
            Some((keyword, startfrom)) => {
                out.bulk(b"keyword");
                out.bulk(b"spec");
                out.map(2);
                out.bulk(b"keyword");
                out.bulk(keyword.as_bytes());
                out.bulk(b"startfrom");
                out.int(startfrom.into());
            }
            None => {
                out.bulk(b"index");
                out.bulk(b"spec");
                out.map(1);
                out.bulk(b"index");
                out.int(spec.index.into());
            }
        }
        out.bulk(b"find_keys");
        out.map(2);
        out.bulk(b"type");
        if let Some((keynumidx, firstkey, keystep)) = spec.keynum {
            out.bulk(b"keynum");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"keynumidx");
            out.int(keynumidx.into());
            out.bulk(b"firstkey");
            out.int(firstkey.into());
            out.bulk(b"keystep");
            out.int(keystep.into());
            continue;
        }
        out.bulk(b"range");
        out.bulk(b"spec");
        out.map(3);
        out.bulk(b"lastkey");
        out.int(spec.lastkey.into());
        out.bulk(b"keystep");
        out.int(spec.keystep.into());
        out.bulk(b"limit");
        out.int(spec.limit.into());
    }
    let subs: Vec<&CommandRef> = table().subcommands_of(c).collect();
    out.set(subs.len());
    for s in subs {
        write_info(out, s);
    }
}

/// The key spec of a command whose table entry gives only (first, last, step).
fn derived_spec(cmd: &Command) -> KeySpec {
    let (first, last, step) = cmd.keys;
    let flags: &'static [&'static str] = if cmd.flags & flags::WRITE != 0 {
        &["RW", "update"]
    } else {
        &["RO", "access"]
    };
    KeySpec::range(
        flags,
        first,
        if last < 0 { last } else { last - first },
        step,
    )
}

/// Whether the key at argument `pos` is read and whether it is written, by its key spec's
/// flags (Redis's ACL: `access` reads; `insert`, `delete`, `update` write); None for a
/// `not_key` argument (a shard channel).
pub fn key_access(cmd: &Command, args: &[Bytes], pos: usize) -> Option<(bool, bool)> {
    let flags = key_flags(cmd, args, pos);
    if flags.contains(&"not_key") {
        return None;
    }
    let read = flags.contains(&"access");
    let write = flags
        .iter()
        .any(|f| matches!(*f, "insert" | "delete" | "update"));
    Some((read, write))
}

/// Whether BITFIELD's operations are all GETs (OVERFLOW aside); anything else, a syntax
/// error included, counts as a write (Redis's bitfieldGetKeys).
fn bitfield_reads_only(args: &[Bytes]) -> bool {
    let mut i = 2;
    while i < args.len() {
        let rest = args.len() - i - 1;
        if eq_ic(&args[i], "GET") && rest >= 2 {
            i += 3;
        } else if eq_ic(&args[i], "OVERFLOW") && rest >= 1 {
            i += 2;
        } else {
            return false;
        }
    }
    true
}

/// The flags `COMMAND GETKEYSANDFLAGS` gives the key at argument `pos`.
fn key_flags(cmd: &Command, args: &[Bytes], pos: usize) -> &'static [&'static str] {
    // SET's flags depend on its arguments, as Redis's setGetKeys decides them.
    if cmd.name == "set" {
        return if args[3..].iter().any(|a| eq_ic(a, "GET")) {
            &["RW", "access", "update"]
        } else {
            &["OW", "update"]
        };
    }
    // SORT reads its key and overwrites STORE's, as Redis's sortGetKeys flags them.
    if cmd.name == "sort" {
        return if pos == 1 {
            &["RO", "access"]
        } else {
            &["OW", "update"]
        };
    }
    // BITFIELD reads only when every operation is a GET, as Redis's bitfieldGetKeys decides.
    if cmd.name == "bitfield" {
        return if bitfield_reads_only(args) {
            &["RO", "access"]
        } else {
            &["RW", "access", "update"]
        };
    }
    // Every MIGRATE key, the KEYS ones included, has the flags of its first spec, as Redis's
    // migrateGetKeys gives them.
    if cmd.name == "migrate" {
        return cmd.key_specs[0].flags;
    }
    cmd.key_specs
        .iter()
        .find(|s| s.covers(pos, args))
        .map_or_else(|| derived_spec(cmd).flags, |s| s.flags)
}

fn write_docs(out: &mut Reply, c: &CommandRef) {
    let cmd = c.cmd;
    let subs: Vec<&CommandRef> = table().subcommands_of(c).collect();
    out.map(if subs.is_empty() { 3 } else { 4 });
    out.bulk(b"summary");
    out.bulk(cmd.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(cmd.since.as_bytes());
    out.bulk(b"group");
    out.bulk(cmd.group.as_bytes());
    if !subs.is_empty() {
        out.bulk(b"subcommands");
        out.map(subs.len());
        for s in subs {
            out.bulk(s.fullname.as_bytes());
            write_docs(out, s);
        }
    }
}

pub fn command(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let all: Vec<&CommandRef> = table().top_level().collect();
    ctx.out.array(all.len());
    for c in all {
        write_info(&mut ctx.out, c);
    }
    Ok(())
}

pub fn command_count(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.out.int(table().top_level().count() as i64);
    Ok(())
}

/// Finds `name` as a top-level command or a `parent|sub` full name.
fn find(name: &[u8]) -> Option<&'static CommandRef> {
    let lower = String::from_utf8_lossy(name).to_lowercase();
    table().all.iter().find(|c| c.fullname == lower)
}

pub fn command_info(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() == 2 {
        return command(ctx, _ks, args);
    }
    ctx.out.array(args.len() - 2);
    for name in &args[2..] {
        match find(name) {
            Some(c) => write_info(&mut ctx.out, c),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

pub fn command_docs(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let list: Vec<&CommandRef> = if args.len() == 2 {
        table().top_level().collect()
    } else {
        args[2..].iter().filter_map(|n| find(n)).collect()
    };
    ctx.out.map(list.len());
    for c in list {
        ctx.out.bulk(c.fullname.as_bytes());
        write_docs(&mut ctx.out, c);
    }
    Ok(())
}

pub fn command_list(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let all = &table().all;
    let names: Vec<&str> = match args.len() {
        2 => all.iter().map(|c| c.fullname.as_str()).collect(),
        5 if eq_ic(&args[2], "FILTERBY") => {
            let (kind, val) = (&args[3], &args[4]);
            if eq_ic(kind, "MODULE") {
                Vec::new()
            } else if eq_ic(kind, "ACLCAT") {
                let want = format!("@{}", String::from_utf8_lossy(val).to_lowercase());
                all.iter()
                    .filter(|c| acl_categories(c.cmd).contains(&want.as_str()))
                    .map(|c| c.fullname.as_str())
                    .collect()
            } else if eq_ic(kind, "PATTERN") {
                all.iter()
                    .filter(|c| glob_match(val, c.fullname.as_bytes(), true))
                    .map(|c| c.fullname.as_str())
                    .collect()
            } else {
                return Err(CmdError::Syntax);
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
    Ok(())
}

fn getkeys(args: &[Bytes]) -> Result<(&'static CommandRef, Vec<usize>), CmdError> {
    let inner = &args[2..];
    let cmd = super::resolve(inner).map_err(|e| match e {
        CmdError::Arity(_) => CmdError::err("Invalid number of arguments specified for command"),
        _ => CmdError::err("Invalid command specified"),
    })?;
    let pos = key_positions(cmd.cmd, inner);
    let declares_keys = cmd.cmd.keys.0 > 0 || cmd.cmd.keys_fn.is_some();
    if pos.is_empty() {
        if !declares_keys {
            return Err(CmdError::err("The command has no key arguments"));
        }
        // Keys found from the arguments (SINTERCARD's numkeys...), and these have none.
        if cmd.cmd.flags & flags::NO_MANDATORY_KEYS == 0 {
            return Err(CmdError::err("Invalid arguments specified for command"));
        }
    }
    Ok((cmd, pos.to_vec()))
}

pub fn command_getkeys(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (_, pos) = getkeys(args)?;
    ctx.out.array(pos.len());
    for i in pos {
        ctx.out.bulk(&args[2 + i]);
    }
    Ok(())
}

pub fn command_getkeysandflags(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (cmd, pos) = getkeys(args)?;
    let inner = &args[2..];
    ctx.out.array(pos.len());
    for i in pos {
        ctx.out.array(2);
        ctx.out.bulk(&inner[i]);
        let kf = key_flags(cmd.cmd, inner, i);
        ctx.out.set(kf.len());
        for f in kf {
            ctx.out.simple(f);
        }
    }
    Ok(())
}

pub fn command_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    )
}
