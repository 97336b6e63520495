//! Pub/Sub commands: SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB, and the
//! sharded SSUBSCRIBE SUNSUBSCRIBE SPUBLISH (whose channels are keys for cluster routing).
//! The registry and delivery live in `crate::pubsub`; the connection task writes the messages.

use bytes::Bytes;

use super::error::{CmdError, CmdResult};
use super::flags::*;
use super::table::{ALL_KEYS, Command, KEY1, KeySpec, NO_KEYS, cmd, container};
use super::{CommandRef, Ctx, reply_help};
use crate::store::Keyspace;

/// Commands a RESP2 client in subscribe mode may run (Redis's `processCommand` list).
pub fn allowed_in_subscribe_mode(cmd: &CommandRef) -> bool {
    matches!(
        cmd.fullname.as_str(),
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

pub fn subscribe_mode_error(cmd: &CommandRef) -> CmdError {
    CmdError::err(format!(
        "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
        cmd.fullname
    ))
}

/// `*3 <kind> <channel> <count>` (a push in RESP3); no channel is a null.
fn reply_subscription(ctx: &mut Ctx, kind: &str, channel: Option<&[u8]>, count: usize) {
    ctx.out.push(3);
    ctx.out.bulk(kind.as_bytes());
    match channel {
        Some(c) => ctx.out.bulk(c),
        None => ctx.out.null(),
    }
    ctx.out.int(count as i64);
}

pub fn subscribe(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (id, kill) = (ctx.client.info.id, ctx.client.info.kill.clone());
    for ch in &args[1..] {
        ctx.node
            .pubsub
            .subscribe(&mut ctx.client.pubsub, id, &kill, ch);
        let n = ctx.client.pubsub.count();
        reply_subscription(ctx, "subscribe", Some(ch), n);
    }
    Ok(())
}

pub fn psubscribe(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (id, kill) = (ctx.client.info.id, ctx.client.info.kill.clone());
    for p in &args[1..] {
        ctx.node
            .pubsub
            .psubscribe(&mut ctx.client.pubsub, id, &kill, p);
        let n = ctx.client.pubsub.count();
        reply_subscription(ctx, "psubscribe", Some(p), n);
    }
    Ok(())
}

pub fn ssubscribe(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if ctx.client.in_exec {
        return Err(CmdError::err(
            "SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
        ));
    }
    let (id, kill) = (ctx.client.info.id, ctx.client.info.kill.clone());
    for ch in &args[1..] {
        ctx.node
            .pubsub
            .ssubscribe(&mut ctx.client.pubsub, id, &kill, ch);
        let n = ctx.client.pubsub.shard.len();
        reply_subscription(ctx, "ssubscribe", Some(ch), n);
    }
    Ok(())
}

pub fn unsubscribe(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let id = ctx.client.info.id;
    let targets: Vec<Bytes> = if args.len() == 1 {
        ctx.client.pubsub.channels.iter().cloned().collect()
    } else {
        args[1..].to_vec()
    };
    if targets.is_empty() {
        let n = ctx.client.pubsub.count();
        reply_subscription(ctx, "unsubscribe", None, n);
    }
    for ch in &targets {
        ctx.node.pubsub.unsubscribe(&mut ctx.client.pubsub, id, ch);
        let n = ctx.client.pubsub.count();
        reply_subscription(ctx, "unsubscribe", Some(ch), n);
    }
    Ok(())
}

pub fn punsubscribe(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let id = ctx.client.info.id;
    let targets: Vec<Bytes> = if args.len() == 1 {
        ctx.client.pubsub.patterns.clone()
    } else {
        args[1..].to_vec()
    };
    if targets.is_empty() {
        let n = ctx.client.pubsub.count();
        reply_subscription(ctx, "punsubscribe", None, n);
    }
    for p in &targets {
        ctx.node.pubsub.punsubscribe(&mut ctx.client.pubsub, id, p);
        let n = ctx.client.pubsub.count();
        reply_subscription(ctx, "punsubscribe", Some(p), n);
    }
    Ok(())
}

pub fn sunsubscribe(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let id = ctx.client.info.id;
    let targets: Vec<Bytes> = if args.len() == 1 {
        ctx.client.pubsub.shard.iter().cloned().collect()
    } else {
        args[1..].to_vec()
    };
    if targets.is_empty() {
        reply_subscription(ctx, "sunsubscribe", None, 0);
    }
    for ch in &targets {
        ctx.node.pubsub.sunsubscribe(&mut ctx.client.pubsub, id, ch);
        let n = ctx.client.pubsub.shard.len();
        reply_subscription(ctx, "sunsubscribe", Some(ch), n);
    }
    Ok(())
}

pub fn publish(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = ctx
        .node
        .pubsub
        .publish_everywhere(&args[1], &args[2], ctx.now_ms);
    propagate_to_replicas(ctx, args);
    ctx.out.int(n as i64);
    Ok(())
}

/// Outside cluster mode a message goes down the replication stream, so subscribers of a
/// replica hear it (as Redis's forceCommandPropagation); in a cluster the bus carries it.
fn propagate_to_replicas(ctx: &mut Ctx, args: &[Bytes]) {
    let aof = &ctx.node.store.aof;
    if ctx.node.cluster.is_some() || !aof.is_feeding() {
        return;
    }
    match ctx.client.aof_batch.as_mut() {
        // Inside MULTI/EXEC or a script: in order with its writes, in the same record (which
        // the log file gets too; a replay delivers it to nobody).
        Some(batch) => batch.push((ctx.client.db, args.to_vec())),
        None => {
            aof.append_stream_only(ctx.client.db, args);
            ctx.client.repl_woff = aof.repl_written();
        }
    }
}

pub fn spublish(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let n = ctx
        .node
        .pubsub
        .spublish_in_shard(&args[1], &args[2], ctx.now_ms);
    propagate_to_replicas(ctx, args);
    ctx.out.int(n as i64);
    Ok(())
}

/// `unknown subcommand or wrong number of arguments for '<sub>'. Try PUBSUB HELP.`
fn subcommand_syntax_error(args: &[Bytes]) -> CmdError {
    let sub = &args[1][..args[1].len().min(128)];
    CmdError::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn reply_channels(ctx: &mut Ctx, args: &[Bytes], shard: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(subcommand_syntax_error(args));
    }
    let pattern = args.get(2).map(|p| &p[..]);
    let list = if shard {
        ctx.node.pubsub.shard_channels(pattern)
    } else {
        ctx.node.pubsub.channels(pattern)
    };
    ctx.out.array(list.len());
    for c in list {
        ctx.out.bulk(&c);
    }
    Ok(())
}

pub fn pubsub_channels(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    reply_channels(ctx, args, false)
}

pub fn pubsub_shardchannels(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    reply_channels(ctx, args, true)
}

pub fn pubsub_numsub(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    ctx.out.array((args.len() - 2) * 2);
    for ch in &args[2..] {
        ctx.out.bulk(ch);
        ctx.out.int(ctx.node.pubsub.numsub(ch) as i64);
    }
    Ok(())
}

pub fn pubsub_shardnumsub(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    ctx.out.array((args.len() - 2) * 2);
    for ch in &args[2..] {
        ctx.out.bulk(ch);
        ctx.out.int(ctx.node.pubsub.shard_numsub(ch) as i64);
    }
    Ok(())
}

pub fn pubsub_numpat(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.out.int(ctx.node.pubsub.numpat() as i64);
    Ok(())
}

pub fn pubsub_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    )
}

const SUB: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;
const PUB: u32 = PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE;
const INTROSPECT: u32 = PUBSUB | LOADING | STALE;

/// Shard channels are not keys, but have key specs so that a cluster routes them (as Redis 7.0).
static SHARD_CHANNELS: &[KeySpec] = &[KeySpec::range(&["not_key"], 1, -1, 1)];
static SHARD_CHANNEL: &[KeySpec] = &[KeySpec::range(&["not_key"], 1, 0, 1)];

static PUBSUB_SUBS: &[Command] = &[
    cmd!(
        "channels",
        -2,
        INTROSPECT,
        NO_KEYS,
        "pubsub",
        "2.8.0",
        pubsub_channels,
        "Returns the active channels."
    ),
    cmd!(
        "numpat",
        2,
        INTROSPECT,
        NO_KEYS,
        "pubsub",
        "2.8.0",
        pubsub_numpat,
        "Returns a count of unique pattern subscriptions."
    ),
    cmd!(
        "numsub",
        -2,
        INTROSPECT,
        NO_KEYS,
        "pubsub",
        "2.8.0",
        pubsub_numsub,
        "Returns a count of subscribers to channels."
    ),
    cmd!(
        "shardchannels",
        -2,
        INTROSPECT,
        NO_KEYS,
        "pubsub",
        "7.0.0",
        pubsub_shardchannels,
        "Returns the active shard channels."
    ),
    cmd!(
        "shardnumsub",
        -2,
        INTROSPECT,
        NO_KEYS,
        "pubsub",
        "7.0.0",
        pubsub_shardnumsub,
        "Returns the count of subscribers of shard channels."
    ),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "pubsub",
        "6.2.0",
        pubsub_help,
        "Returns helpful text about the different subcommands."
    )
    .acl(&["@slow"]),
];

pub static COMMANDS: &[Command] = &[
    cmd!(
        "subscribe",
        -2,
        SUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        subscribe,
        "Listens for messages published to channels."
    ),
    cmd!(
        "psubscribe",
        -2,
        SUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        psubscribe,
        "Listens for messages published to channels that match one or more patterns."
    ),
    cmd!(
        "unsubscribe",
        -1,
        SUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        unsubscribe,
        "Stops listening to messages posted to channels."
    ),
    cmd!(
        "punsubscribe",
        -1,
        SUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        punsubscribe,
        "Stops listening to messages published to channels that match one or more patterns."
    ),
    cmd!(
        "publish",
        3,
        PUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        publish,
        "Posts a message to a channel."
    ),
    container!(
        "pubsub",
        "pubsub",
        "2.8.0",
        PUBSUB_SUBS,
        "A container for Pub/Sub commands"
    ),
    // Shard channels are keys for routing: a cluster sends them to the slot's owner.
    cmd!(
        "ssubscribe",
        -2,
        SUB,
        ALL_KEYS,
        "pubsub",
        "7.0.0",
        ssubscribe,
        "Listens for messages published to shard channels."
    )
    .specs(SHARD_CHANNELS),
    cmd!(
        "sunsubscribe",
        -1,
        SUB,
        ALL_KEYS,
        "pubsub",
        "7.0.0",
        sunsubscribe,
        "Stops listening to messages posted to shard channels."
    )
    .specs(SHARD_CHANNELS),
    cmd!(
        "spublish",
        3,
        PUB,
        KEY1,
        "pubsub",
        "7.0.0",
        spublish,
        "Post a message to a shard channel"
    )
    .specs(SHARD_CHANNEL),
];
