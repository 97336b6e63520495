//! Connection commands: PING, ECHO, QUIT, RESET, SELECT, AUTH, HELLO and CLIENT.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{ArgIter, eq_ic, int, int_or};
use super::error::{CmdError, CmdResult};
use super::{Ctx, reply_help, subcommand_syntax_error};
use crate::server::clients::{ClientType, ReplyMode};
use crate::store::Keyspace;

pub fn ping(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::Arity("ping".into()));
    }
    // Redis: in RESP2 subscribe mode PING answers as a message would, `*2 pong <arg>`.
    if ctx.client.pubsub.active() && !ctx.client.resp3 {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(args.get(1).map_or(&b""[..], |a| &a[..]));
        return Ok(());
    }
    match args.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(&args[1]),
        _ => return Err(CmdError::Arity("ping".into())),
    }
    Ok(())
}

pub fn echo(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    ctx.out.bulk(&args[1]);
    Ok(())
}

pub fn quit(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.out.ok();
    ctx.client.close_after_reply = true;
    Ok(())
}

pub fn reset(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    super::transactions::unwatch_all(ctx.node, ctx.client);
    super::tracking::disable(ctx.node, ctx.client);
    let id = ctx.client.info.id;
    ctx.node.pubsub.remove_client(&mut ctx.client.pubsub, id);
    let c = &mut *ctx.client;
    c.multi = None;
    c.info.multi_len.store(-1, Ordering::Relaxed);
    c.select(0);
    c.set_resp3(false);
    c.reply_mode = ReplyMode::On;
    // As Redis's clearClientConnectionState: READWRITE, and no ASKING left.
    c.asking = 0;
    c.readonly = false;
    if c.monitor {
        c.monitor = false;
        c.info.monitor.store(false, Ordering::Relaxed);
        ctx.node.monitors.remove(c.info.id);
    }
    *c.info.name.lock() = None;
    c.authenticated = !ctx.node.requires_pass();
    let generation = ctx.node.acl.generation();
    c.set_user(ctx.node.acl.default_user(), generation);
    ctx.out.set_resp3(false);
    ctx.out.simple("RESET");
    Ok(())
}

pub fn select(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let db = int(&args[1])?;
    if ctx.node.cluster.is_some() && db != 0 {
        return Err(CmdError::err("SELECT is not allowed in cluster mode"));
    }
    if db < 0 || db as usize >= ctx.node.store.databases() || db > i32::MAX as i64 {
        return Err(CmdError::DbIndexOutOfRange);
    }
    ctx.client.select(db as usize);
    ctx.out.ok();
    Ok(())
}

/// AUTH and HELLO AUTH: the ACL user these credentials name (`default` without a name). A
/// failure is logged in the ACL log, as in Redis.
fn check_password(ctx: &mut Ctx, command: &[u8], user: Option<&[u8]>, pass: &[u8]) -> CmdResult {
    let name = user.unwrap_or(b"default");
    let acl = &ctx.node.acl;
    // The generation first: a change in between makes the client read its user again.
    let generation = acl.generation();
    match acl.authenticate(name, pass) {
        Some(u) => {
            ctx.client.set_user(u, generation);
            ctx.client.authenticated = true;
            Ok(())
        }
        None => {
            // (AUTH runs inside a transaction only when EXEC runs it.)
            let context = if ctx.client.in_exec {
                crate::acl::Context::Multi
            } else {
                crate::acl::Context::TopLevel
            };
            super::acl_log(
                ctx.node,
                ctx.client,
                crate::acl::Reason::Auth,
                context,
                String::from_utf8_lossy(command).into_owned(),
                String::from_utf8_lossy(name).into_owned(),
            );
            Err(CmdError::WrongPass)
        }
    }
}

pub fn auth(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => {
            if ctx.node.acl.default_user().nopass {
                return Err(CmdError::err(
                    "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            check_password(ctx, &args[0], None, &args[1])?;
        }
        3 => check_password(ctx, &args[0], Some(&args[1]), &args[2])?,
        _ => return Err(CmdError::Syntax),
    }
    ctx.out.ok();
    Ok(())
}

pub fn hello(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut proto = None;
    if args.len() >= 2 {
        let v = int_or(
            &args[1],
            CmdError::err("Protocol version is not an integer or out of range"),
        )?;
        if v != 2 && v != 3 {
            return Err(CmdError::Msg("NOPROTO unsupported protocol version".into()));
        }
        proto = Some(v);
    }
    let mut it = ArgIter::new(args, 2);
    while let Some(a) = it.next_arg() {
        if eq_ic(a, "AUTH") && it.remaining() >= 2 {
            let user = it.value()?.clone();
            let pass = it.value()?.clone();
            check_password(ctx, &args[0], Some(&user), &pass)?;
        } else if eq_ic(a, "SETNAME") && it.remaining() >= 1 {
            // Named at once, as Redis's: a later option's failure leaves the name set.
            let name = it.value()?.clone();
            validate_name(&name)?;
            *ctx.client.info.name.lock() = (!name.is_empty()).then_some(name);
        } else {
            return Err(CmdError::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(a)
            )));
        }
    }
    // Redis asks whether this connection authenticated (or started with no password to
    // give), not whether a password is required now.
    if !ctx.client.authenticated {
        return Err(CmdError::Msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        ));
    }
    if let Some(p) = proto {
        ctx.client.set_resp3(p == 3);
        ctx.out.set_resp3(p == 3);
    }
    let out = &mut ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if ctx.client.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(ctx.client.info.id as i64);
    out.bulk(b"mode");
    out.bulk(if ctx.node.cluster.is_some() {
        b"cluster" as &[u8]
    } else {
        b"standalone"
    });
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

fn validate_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// The class a `TYPE` argument (already validated) names: normal, pubsub, or replication
/// classes, which no client of ours belongs to.
fn client_type_of(t: &[u8]) -> ClientType {
    if eq_ic(t, "normal") {
        ClientType::Normal
    } else if eq_ic(t, "pubsub") {
        ClientType::PubSub
    } else {
        ClientType::Replication
    }
}

pub fn client_id(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.out.int(ctx.client.info.id as i64);
    Ok(())
}

pub fn client_info(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let mut line = ctx.client.info.describe(ctx.now_ms);
    line.push('\n');
    ctx.out.verbatim(line.as_bytes());
    Ok(())
}

pub fn client_list(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut client_type = None;
    let mut it = ArgIter::new(args, 2);
    while let Some(a) = it.next_arg() {
        if eq_ic(a, "TYPE") && it.remaining() > 0 {
            let t = it.value()?;
            if !["normal", "master", "replica", "slave", "pubsub"]
                .iter()
                .any(|n| eq_ic(t, n))
            {
                return Err(CmdError::err(format!(
                    "Unknown client type '{}'",
                    String::from_utf8_lossy(t)
                )));
            }
            client_type = Some(client_type_of(t));
        } else if eq_ic(a, "ID") && it.remaining() > 0 {
            let mut v = Vec::new();
            while let Some(x) = it.next_arg() {
                let id = int_or(x, CmdError::err("Invalid client ID"))?;
                if id <= 0 {
                    return Err(CmdError::err("Invalid client ID"));
                }
                v.push(id as u64);
            }
            ids = Some(v);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut text = String::new();
    for c in ctx.node.clients.snapshot() {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id))
            || client_type.is_some_and(|t| t != c.client_type())
        {
            continue;
        }
        text.push_str(&c.describe(ctx.now_ms));
        text.push('\n');
    }
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

pub fn client_setname(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    validate_name(&args[2])?;
    *ctx.client.info.name.lock() = (!args[2].is_empty()).then(|| args[2].clone());
    ctx.out.ok();
    Ok(())
}

pub fn client_getname(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    match ctx.client.info.name.lock().clone() {
        Some(n) => ctx.out.bulk(&n),
        None => ctx.out.null(),
    }
    Ok(())
}

/// Closes client `c`; the caller itself (`me`) gets its reply first, as in Redis
/// (CLOSE_AFTER_REPLY), and is closed after it.
pub(crate) fn kill_client(ctx: &mut Ctx, c: &crate::server::clients::ClientInfo, me: u64) {
    if c.id == me {
        ctx.client.close_after_reply = true;
    } else {
        c.kill.cancel();
    }
}

pub fn client_kill(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let clients = ctx.node.clients.snapshot();
    let me = ctx.client.info.id;
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port -> OK or error.
        let addr = String::from_utf8_lossy(&args[2]);
        let Some(c) = clients.iter().find(|c| c.addr.to_string() == addr) else {
            return Err(CmdError::err("No such client"));
        };
        kill_client(ctx, c, me);
        ctx.out.ok();
        return Ok(());
    }
    let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
    let mut user = None;
    let mut client_type = None;
    let mut master_link = false;
    let mut it = ArgIter::new(args, 2);
    while let Some(a) = it.next_arg() {
        let v = it.next_arg().ok_or(CmdError::Syntax)?;
        if eq_ic(a, "ID") {
            let n = int_or(v, CmdError::err("client-id should be greater than 0"))?;
            if n <= 0 {
                return Err(CmdError::err("client-id should be greater than 0"));
            }
            id = Some(n as u64);
        } else if eq_ic(a, "ADDR") {
            addr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq_ic(a, "LADDR") {
            laddr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq_ic(a, "TYPE") {
            if !["normal", "master", "replica", "slave", "pubsub"]
                .iter()
                .any(|n| eq_ic(v, n))
            {
                return Err(CmdError::err(format!(
                    "Unknown client type '{}'",
                    String::from_utf8_lossy(v)
                )));
            }
            client_type = Some(client_type_of(v));
            master_link = eq_ic(v, "master");
        } else if eq_ic(a, "USER") {
            let name = String::from_utf8_lossy(v).into_owned();
            if ctx.node.acl.get(&name).is_none() {
                return Err(CmdError::err(format!("No such user '{name}'")));
            }
            user = Some(name);
        } else if eq_ic(a, "SKIPME") {
            if eq_ic(v, "yes") {
                skipme = true;
            } else if eq_ic(v, "no") {
                skipme = false;
            } else {
                return Err(CmdError::Syntax);
            }
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut killed = 0;
    for c in clients {
        if id.is_some_and(|i| i != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr.to_string())
            || laddr.as_ref().is_some_and(|a| *a != c.laddr.to_string())
            || client_type.is_some_and(|t| t != c.client_type())
            || user.as_deref().is_some_and(|u| *u != **c.user.lock())
            || (skipme && c.id == me)
        {
            continue;
        }
        kill_client(ctx, &c, me);
        killed += 1;
    }
    // TYPE master on a replica: its link to its master, which is not a client connection
    // here but the bus stream. It reconnects and continues where it was (partial resync).
    if master_link
        && id.is_none()
        && addr.is_none()
        && laddr.is_none()
        && let Some(c) = &ctx.node.cluster
        && c.repl.link_up.load(std::sync::atomic::Ordering::Relaxed)
    {
        c.repl
            .link_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        c.repl.link_cut.notify_waiters();
        killed += 1;
    }
    ctx.out.int(killed);
    Ok(())
}

pub fn client_pause(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(subcommand_syntax_error(args));
    }
    // As Redis: the mode is checked before the timeout.
    let writes_only = match args.get(3) {
        None => false,
        Some(m) if eq_ic(m, "WRITE") => true,
        Some(m) if eq_ic(m, "ALL") => false,
        Some(_) => return Err(CmdError::err("CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let ms = int_or(
        &args[2],
        CmdError::err("timeout is not an integer or out of range"),
    )?;
    if ms < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    ctx.node
        .pause
        .pause(ctx.now_ms.saturating_add(ms), writes_only);
    ctx.out.ok();
    Ok(())
}

pub fn client_unpause(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.node.pause.unpause();
    ctx.out.ok();
    Ok(())
}

pub fn client_no_evict(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let on = if eq_ic(&args[2], "ON") {
        true
    } else if eq_ic(&args[2], "OFF") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    ctx.client.info.no_evict.store(on, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

pub fn client_reply(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if eq_ic(&args[2], "ON") {
        ctx.client.reply_mode = ReplyMode::On;
        ctx.out.ok();
    } else if eq_ic(&args[2], "OFF") {
        ctx.client.reply_mode = ReplyMode::Off;
    } else if eq_ic(&args[2], "SKIP") {
        ctx.client.reply_mode = ReplyMode::SkipNext;
    } else {
        return Err(CmdError::Syntax);
    }
    Ok(())
}

pub fn client_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "CLIENT",
        &[
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
        ],
    )
}
