//! ACL: users and their permissions (see `crate::acl`), with Redis 7.0's subcommands and
//! replies. Users persist in the `aclfile` (loaded at start-up, ACL LOAD, ACL SAVE), in Redis's
//! format; without one ACL LOAD and ACL SAVE answer as Redis does when none is configured.

use bytes::Bytes;

use super::args::{eq_ic, int};
use super::{CmdError, CmdResult, Ctx};
use crate::acl::{CATEGORIES, category_index, commands_in_category};
use crate::store::Keyspace;

const HELP: &[&str] = &[
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
];

pub fn help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    super::reply_help(ctx, "ACL", HELP)
}

pub fn setuser(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let name = &args[2];
    if crate::acl::has_spaces(name) {
        return Err(CmdError::err(
            "Usernames can't contain spaces or null characters",
        ));
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let rules: Vec<&[u8]> = args[3..].iter().map(|a| &a[..]).collect();
    let old = ctx.node.acl.get(&name);
    ctx.node
        .acl
        .set_user(&name, &rules)
        .map_err(CmdError::err)?;
    // When the user's channels were narrowed, its subscribers with a subscription no longer
    // allowed are disconnected, as Redis's ACLKillPubsubClientsIfNeeded.
    if let (Some(old), Some(new)) = (old, ctx.node.acl.get(&name))
        && new.channels_narrowed_from(&old)
    {
        let me = ctx.client.info.id;
        for c in ctx.node.clients.snapshot() {
            let subscribed = c
                .subscriptions
                .iter()
                .any(|n| n.load(std::sync::atomic::Ordering::Relaxed) > 0);
            if !subscribed || **c.user.lock() != *name {
                continue;
            }
            let [channels, patterns, shard] = ctx.node.pubsub.subscriptions_of(c.id);
            let revoked = patterns.iter().any(|p| !new.may_use_channel(p, true))
                || channels
                    .iter()
                    .chain(&shard)
                    .any(|ch| !new.may_use_channel(ch, false));
            if revoked {
                super::connection::kill_client(ctx, &c, me);
            }
        }
    }
    ctx.out.ok();
    Ok(())
}

pub fn deluser(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args[2..].iter().any(|a| &a[..] == b"default") {
        return Err(CmdError::err("The 'default' user cannot be removed"));
    }
    let mut deleted = 0;
    for a in &args[2..] {
        let name = String::from_utf8_lossy(a);
        if ctx.node.acl.delete(&name) {
            deleted += 1;
            // Its connections are closed, as Redis's ACLFreeUserAndKillClients (this one
            // after its reply).
            let me = ctx.client.info.id;
            for c in ctx.node.clients.snapshot() {
                if **c.user.lock() == *name {
                    super::connection::kill_client(ctx, &c, me);
                }
            }
        }
    }
    ctx.out.int(deleted);
    Ok(())
}

pub fn getuser(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let Some(u) = ctx.node.acl.get(&String::from_utf8_lossy(&args[2])) else {
        ctx.out.null();
        return Ok(());
    };
    let out = &mut ctx.out;
    out.map(6);
    out.bulk(b"flags");
    let flags = u.flags();
    out.set(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"passwords");
    out.array(u.passwords.len());
    for p in &u.passwords {
        out.bulk(p.as_bytes());
    }
    // The root selector at the top level, as before selectors existed; then the others.
    selector_fields(out, u.root());
    out.bulk(b"selectors");
    out.array(u.selectors().len());
    for s in u.selectors() {
        out.map(3);
        selector_fields(out, s);
    }
    Ok(())
}

/// A selector's `commands`, `keys` and `channels` fields (Redis's
/// aclAddReplySelectorDescription).
fn selector_fields(out: &mut crate::resp::Reply, s: &crate::acl::Selector) {
    out.bulk(b"commands");
    out.bulk(s.commands_rule().as_bytes());
    out.bulk(b"keys");
    out.bulk(s.keys_rule().as_bytes());
    out.bulk(b"channels");
    out.bulk(s.channels_rule().as_bytes());
}

pub fn list(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let users = ctx.node.acl.users();
    ctx.out.array(users.len());
    for u in users {
        ctx.out
            .bulk(format!("user {} {}", u.name, u.describe()).as_bytes());
    }
    Ok(())
}

pub fn users(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let users = ctx.node.acl.users();
    ctx.out.array(users.len());
    for u in users {
        ctx.out.bulk(u.name.as_bytes());
    }
    Ok(())
}

pub fn whoami(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let name = ctx.client.info.user.lock().clone();
    ctx.out.bulk(name.as_bytes());
    Ok(())
}

const NO_ACLFILE: &str = "This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// The `aclfile` setting, or Redis's error when there is none.
fn aclfile(ctx: &Ctx) -> Result<String, CmdError> {
    let path = ctx.node.config.read().get("aclfile").to_string();
    if path.is_empty() {
        return Err(CmdError::err(NO_ACLFILE));
    }
    Ok(path)
}

/// ACL LOAD: the users of `aclfile` replace every user, or none does (the error lists what is
/// wrong, line by line). As Redis 7.0, whose ACL LOAD frees every user but `default`, the
/// connections authenticated as any other user are closed (this one after its reply).
pub fn load(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let path = aclfile(ctx)?;
    ctx.node.acl.load_file(&path).map_err(CmdError::err)?;
    tracing::info!(file = %path, "ACL users loaded");
    let me = ctx.client.info.id;
    for c in ctx.node.clients.snapshot() {
        if **c.user.lock() != *"default" {
            super::connection::kill_client(ctx, &c, me);
        }
    }
    ctx.out.ok();
    Ok(())
}

/// ACL SAVE: every user, as ACL LIST shows them, to `aclfile` (through a temp file renamed over
/// it, so a crash leaves the old file or the new one).
pub fn save(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let path = aclfile(ctx)?;
    let text = ctx.node.acl.to_file_text();
    let written = crate::persist::write_atomically(std::path::Path::new(&path), |f| {
        std::io::Write::write_all(f, text.as_bytes())
    });
    if let Err(e) = written {
        tracing::warn!(file = %path, "Writing ACL file for ACL SAVE: {}", crate::persist::strerror(&e));
        return Err(CmdError::err(
            "There was an error trying to save the ACLs. Please check the server logs for more information",
        ));
    }
    ctx.out.ok();
    Ok(())
}

pub fn cat(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(super::subcommand_syntax_error(args));
    }
    let Some(name) = args.get(2) else {
        ctx.out.array(CATEGORIES.len());
        for c in CATEGORIES {
            ctx.out.bulk(c.as_bytes());
        }
        return Ok(());
    };
    let Some(cat) = category_index(&String::from_utf8_lossy(name)) else {
        return Err(CmdError::err(format!(
            "Unknown category '{}'",
            String::from_utf8_lossy(&name[..name.len().min(128)])
        )));
    };
    let names: Vec<&str> = commands_in_category(cat)
        .map(|c| c.fullname.as_str())
        .collect();
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
    Ok(())
}

pub fn genpass(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(super::subcommand_syntax_error(args));
    }
    let bits = match args.get(2) {
        Some(a) => int(a)?,
        None => 256,
    };
    if bits <= 0 || bits > 4096 {
        return Err(CmdError::err(
            "ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
        ));
    }
    let chars = (bits as usize).div_ceil(4);
    let hex: String = (0..chars)
        .map(|_| char::from_digit(rand::random_range(0..16u32), 16).expect("a hex digit"))
        .collect();
    ctx.out.bulk(hex.as_bytes());
    Ok(())
}

pub fn log(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(super::subcommand_syntax_error(args));
    }
    let mut count = 10;
    if let Some(a) = args.get(2) {
        if eq_ic(a, "RESET") {
            ctx.node.acl.with_log(|l| l.clear());
            ctx.out.ok();
            return Ok(());
        }
        count = int(a)?.max(0) as usize;
    }
    let now = super::now_ms();
    let out = &mut ctx.out;
    ctx.node.acl.with_log(|l| {
        let n = count.min(l.len());
        out.array(n);
        for e in l.iter().take(n) {
            out.map(7);
            out.bulk(b"count");
            out.int(e.count as i64);
            out.bulk(b"reason");
            out.bulk(e.reason.name().as_bytes());
            out.bulk(b"context");
            out.bulk(e.context.name().as_bytes());
            out.bulk(b"object");
            out.bulk(e.object.as_bytes());
            out.bulk(b"username");
            out.bulk(e.username.as_bytes());
            out.bulk(b"age-seconds");
            out.double((now - e.ctime_ms) as f64 / 1000.0);
            out.bulk(b"client-info");
            out.bulk(e.client_info.as_bytes());
        }
    });
    Ok(())
}

pub fn dryrun(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let Some(u) = ctx.node.acl.get(&String::from_utf8_lossy(&args[2])) else {
        return Err(CmdError::err(format!(
            "User '{}' not found",
            String::from_utf8_lossy(&args[2])
        )));
    };
    let cmd_args = &args[3..];
    let cmd = match super::resolve(cmd_args) {
        Ok(c) => c,
        Err(CmdError::Arity(name)) => {
            return Err(CmdError::err(format!(
                "wrong number of arguments for '{name}' command"
            )));
        }
        Err(_) => {
            return Err(CmdError::err(format!(
                "Command '{}' not found",
                String::from_utf8_lossy(&cmd_args[0])
            )));
        }
    };
    match u.check(cmd, cmd_args) {
        Ok(()) => ctx.out.ok(),
        Err(d) => {
            let text = match d {
                crate::acl::Denied::Command => format!(
                    "This user has no permissions to run the '{}' command",
                    cmd.fullname
                ),
                crate::acl::Denied::Key(i) => format!(
                    "This user has no permissions to access the '{}' key",
                    String::from_utf8_lossy(&cmd_args[i])
                ),
                crate::acl::Denied::Channel(i) => format!(
                    "This user has no permissions to access the '{}' channel",
                    String::from_utf8_lossy(&cmd_args[i])
                ),
            };
            ctx.out.bulk(text.as_bytes());
        }
    }
    Ok(())
}
