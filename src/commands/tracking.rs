//! CLIENT TRACKING, TRACKINGINFO, GETREDIR and CACHING: client-side caching's commands (the
//! table of who caches what is `store::tracking`). Replies and errors are Redis 7.0's.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{eq_ic, int};
use super::error::{CmdError, CmdResult};
use super::{Command, Ctx, flags};
use crate::node::Node;
use crate::server::clients::ClientState;
use crate::store::Keyspace;
use crate::store::tracking::Options;

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN] [OPTOUT] [NOLOOP]
pub fn client_tracking(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut redirect = 0u64;
    let mut asked = Options::default();
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        let more = i + 1 < args.len();
        if eq_ic(a, "redirect") && more {
            i += 1;
            if redirect != 0 {
                return Err(CmdError::err(
                    "A client can only redirect to a single other client",
                ));
            }
            let id = int(&args[i])?;
            // The client must exist now, though it may go later (Redis checks the same).
            if id <= 0 || ctx.node.clients.get(id as u64).is_none() {
                return Err(CmdError::err(
                    "The client ID you want redirect to does not exist",
                ));
            }
            redirect = id as u64;
        } else if eq_ic(a, "bcast") {
            asked.bcast = true;
        } else if eq_ic(a, "optin") {
            asked.optin = true;
        } else if eq_ic(a, "optout") {
            asked.optout = true;
        } else if eq_ic(a, "noloop") {
            asked.noloop = true;
        } else if eq_ic(a, "prefix") && more {
            i += 1;
            prefixes.push(args[i].clone());
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if eq_ic(&args[2], "off") {
        disable(ctx.node, ctx.client);
        ctx.out.ok();
        return Ok(());
    }
    if !eq_ic(&args[2], "on") {
        return Err(CmdError::Syntax);
    }
    let current = ctx.client.tracking.as_ref();
    if !asked.bcast && !prefixes.is_empty() {
        return Err(CmdError::err(
            "PREFIX option requires BCAST mode to be enabled",
        ));
    }
    if current.is_some_and(|c| c.bcast != asked.bcast) {
        return Err(CmdError::err(
            "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if asked.bcast && (asked.optin || asked.optout) {
        return Err(CmdError::err(
            "OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    if asked.optin && asked.optout {
        return Err(CmdError::err(
            "You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    if current.is_some_and(|c| (asked.optin && c.optout) || (asked.optout && c.optin)) {
        return Err(CmdError::err(
            "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    let mut had = current.map(|c| c.prefixes.clone()).unwrap_or_default();
    if asked.bcast {
        check_prefixes(&had, &prefixes)?;
        if prefixes.is_empty() {
            // BCAST alone: every key.
            prefixes.push(Bytes::new());
        }
    }
    let added: Vec<Bytes> = prefixes
        .into_iter()
        .filter(|p| had.insert(p.clone()))
        .collect();
    asked.redirect = redirect;
    asked.prefixes = had;
    let node = ctx.node;
    let client = &mut *ctx.client;
    let id = client.info.id;
    // The connection's queue carries its invalidations (RESP3) and redirect notices.
    client
        .pubsub
        .handle(id, &client.info.kill, &node.pubsub.limits);
    let target = (redirect != 0)
        .then(|| node.clients.get(redirect))
        .flatten()
        .map(|c| {
            // A target that never subscribed gets a queue now (a RESP3 one takes pushes).
            c.pushes.open_for_others(&node.pubsub.limits);
            (redirect, c.pushes.clone())
        });
    node.store
        .tracking
        .enable(id, client.info.pushes.clone(), target, &asked, &added);
    client
        .info
        .tracking_redirect
        .store(redirect as i64, Ordering::Relaxed);
    client
        .info
        .tracking_bcast
        .store(asked.bcast, Ordering::Relaxed);
    // A pending CLIENT CACHING survives tracking turned on again (Redis's enableTracking
    // leaves CLIENT_TRACKING_CACHING; only turning it off clears it).
    if let Some(old) = &client.tracking {
        asked.caching = old.caching;
    }
    client.tracking = Some(asked);
    ctx.out.ok();
    Ok(())
}

/// Redis's `checkPrefixCollisionsOrReply`: no prefix may be a prefix of another, among those
/// given and against those the client has.
fn check_prefixes(had: &std::collections::BTreeSet<Bytes>, given: &[Bytes]) -> CmdResult {
    let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
    for (i, p) in given.iter().enumerate() {
        if let Some(old) = had.iter().find(|old| overlap(old, p)) {
            return Err(CmdError::err(format!(
                "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(old)
            )));
        }
        if let Some(other) = given[i + 1..].iter().find(|q| overlap(p, q)) {
            return Err(CmdError::err(format!(
                "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(other)
            )));
        }
    }
    Ok(())
}

/// Turns the client's tracking off (CLIENT TRACKING OFF, RESET, disconnection).
pub fn disable(node: &Node, client: &mut ClientState) {
    let Some(t) = client.tracking.take() else {
        return;
    };
    node.store.tracking.disable(client.info.id, &t.prefixes);
    client.info.tracking_redirect.store(-1, Ordering::Relaxed);
    client.info.tracking_bcast.store(false, Ordering::Relaxed);
    client
        .info
        .pushes
        .redirect_broken
        .store(false, Ordering::Relaxed);
}

/// CLIENT CACHING YES|NO: whether the next command's keys are tracked, in OPTIN/OPTOUT mode.
pub fn client_caching(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let Some(t) = ctx.client.tracking.as_mut() else {
        return Err(CmdError::err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    if eq_ic(&args[2], "yes") {
        if !t.optin {
            return Err(CmdError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if eq_ic(&args[2], "no") {
        if !t.optout {
            return Err(CmdError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CmdError::Syntax);
    }
    t.caching = true;
    ctx.out.ok();
    Ok(())
}

/// CLIENT GETREDIR: the client invalidations go to; 0 for none, -1 when not tracking.
pub fn client_getredir(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let redirect = ctx
        .client
        .tracking
        .as_ref()
        .map_or(-1, |t| t.redirect as i64);
    ctx.out.int(redirect);
    Ok(())
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes.
pub fn client_trackinginfo(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let t = ctx.client.tracking.as_ref();
    let mut names: Vec<&str> = vec![if t.is_some() { "on" } else { "off" }];
    if let Some(t) = t {
        let broken = ctx
            .client
            .info
            .pushes
            .redirect_broken
            .load(Ordering::Relaxed);
        for (on, name) in [
            (t.bcast, "bcast"),
            (t.optin, "optin"),
            (t.optin && t.caching, "caching-yes"),
            (t.optout, "optout"),
            (t.optout && t.caching, "caching-no"),
            (t.noloop, "noloop"),
            (broken, "broken_redirect"),
        ] {
            if on {
                names.push(name);
            }
        }
    }
    let out = &mut ctx.out;
    out.map(3);
    out.bulk(b"flags");
    out.set(names.len());
    for n in names {
        out.bulk(n.as_bytes());
    }
    out.bulk(b"redirect");
    out.int(t.map_or(-1, |t| t.redirect as i64));
    out.bulk(b"prefixes");
    let prefixes = t.map(|t| &t.prefixes);
    out.array(prefixes.map_or(0, |p| p.len()));
    for p in prefixes.into_iter().flatten() {
        out.bulk(p);
    }
    Ok(())
}

/// After a command ran: a read-only command's keys are remembered for a tracking client (its
/// keys' shards are still locked). Shard channels are not keys (SSUBSCRIBE & co).
pub fn remember_reads(node: &Node, client: &ClientState, cmd: &Command, args: &[Bytes]) {
    let Some(t) = &client.tracking else { return };
    let f = cmd.flags;
    if f & flags::READONLY == 0 || f & flags::PUBSUB != 0 || !t.remembers_reads() {
        return;
    }
    // A script's commands are not what its caller caches: once one of them reads, the script's
    // declared keys are (see `remember_keys`); the read-only script commands themselves track
    // nothing, as in Redis 7.0.
    if client.in_script() || matches!(cmd.name, "eval_ro" | "evalsha_ro" | "fcall_ro") {
        return;
    }
    let keys = super::key_positions(cmd, args);
    node.store
        .tracking
        .remember(client.info.id, keys.iter().map(|&i| &args[i][..]));
}

/// A script that called a read command: its caller, when tracking, caches the keys the script
/// declared.
pub fn remember_keys(node: &Node, client: &ClientState, keys: &[Bytes]) {
    let Some(t) = &client.tracking else { return };
    if keys.is_empty() || !t.remembers_reads() {
        return;
    }
    node.store
        .tracking
        .remember(client.info.id, keys.iter().map(|k| &k[..]));
}

/// After each command from a connection: `CLIENT CACHING` holds for one command, or for a
/// whole transaction, and CLIENT commands leave it (Redis's `resetClient`).
pub fn command_done(client: &mut ClientState, args: &[Bytes]) {
    if let Some(t) = client.tracking.as_mut()
        && t.caching
        && client.multi.is_none()
        && !eq_ic(&args[0], "client")
    {
        t.caching = false;
    }
}
