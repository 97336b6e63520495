//! Commands: the table that describes each one (arity, flags, key positions, docs) and drives
//! dispatch, `COMMAND`, and cluster routing; the execution path (arity, auth, MULTI queueing,
//! locking the keys' shards, stats, slow log, MONITOR); and one file per command family.

pub mod acl;
pub mod args;
pub mod bitmap;
pub mod blocking;
pub mod cluster;
pub mod connection;
pub mod debug;
pub mod error;
pub mod functions;
pub mod geo;
pub mod hash;
pub mod hyperloglog;
pub mod introspection;
pub mod keys;
pub mod list;
pub mod long_double;
pub mod lua_libs;
pub mod migrate;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod strings;
pub mod table;
pub mod tracking;
pub mod transactions;
pub mod zset;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

pub use error::{CmdError, CmdResult};
pub use table::{Command, CommandRef, Table, table};

use crate::cluster::routing::Redirect;
use crate::cluster::slots::key_hash_slot;
use crate::node::Node;
use crate::observe::events::KeyEvent;
use crate::resp::Reply;
use crate::server::clients::ClientState;
use crate::store::{Keyspace, Value};

pub type Handler = fn(&mut Ctx, &mut Keyspace, &[Bytes]) -> CmdResult;

/// Command flags, as `COMMAND INFO` names them.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const MOVABLEKEYS: u32 = 1 << 15;
    pub const ALLOW_BUSY: u32 = 1 << 16;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 17;
    /// Served for an importing slot as if the client had sent ASKING (RESTORE-ASKING).
    pub const ASKING: u32 = 1 << 18;
    /// Not run while a replica loads its master's data in the background (Redis's async
    /// loading). Nothing here loads that way, so it only describes the command, as Redis does.
    pub const NO_ASYNC_LOADING: u32 = 1 << 19;
    /// Ours, not Redis's: the command works on the whole keyspace and locks every shard.
    pub const ALL_SHARDS: u32 = 1 << 24;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (ASKING, "asking"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        // MAY_REPLICATE is hidden, as in Redis 7.0; the rest in its order.
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// The value of a looked-up entry as type `T` (`pick` says which): None when the key is missing,
/// WRONGTYPE when it holds another type. The families' `list_mut`/`zset_read`/... are this.
pub fn typed<T: ?Sized>(
    found: Option<&mut crate::store::Entry>,
    pick: fn(&mut crate::store::Value) -> Option<&mut T>,
) -> Result<Option<&mut T>, CmdError> {
    match found {
        None => Ok(None),
        Some(e) => pick(&mut e.value).map(Some).ok_or(CmdError::WrongType),
    }
}

/// What a command runs with: the node, its client, the reply buffer and the time it started.
pub struct Ctx<'a> {
    pub node: &'a Arc<Node>,
    pub client: &'a mut ClientState,
    pub out: Reply<'a>,
    /// Wall-clock milliseconds, read once per command as Redis's `commandTimeSnapshot`.
    pub now_ms: i64,
    /// What to write to the append-only log instead of the command itself, when replaying the
    /// command would not do the same (SPOP logs the SREM of what it popped).
    pub log_as: Option<Vec<Bytes>>,
    /// Records to log after `log_as` (or the command): XREADGROUP logs an XCLAIM per entry
    /// it delivered and the group's new position.
    pub log_more: Vec<Vec<Bytes>>,
}

impl Ctx<'_> {
    pub fn dirty(&self, n: u64) {
        self.node.store.add_dirty(n);
    }

    /// Publishes a key event in the client's db (Redis's `notifyKeyspaceEvent`).
    pub fn notify(&self, class: u32, event: &'static str, key: &[u8]) {
        self.notify_db(self.client.db, class, event, key);
    }

    /// A change to a key that no event names (Redis's `signalModifiedKey` alone): WATCHers of
    /// the key see it.
    pub fn signal_modified(&self, key: &[u8]) {
        let writer = Some(self.client.info.id);
        self.node
            .store
            .key_changed(self.client.db, key, false, writer);
    }

    /// An event that changes no key's value as Redis counts changes (consumer groups, a
    /// stream's last ID): published, and WATCH and client tracking are not told (Redis calls
    /// notifyKeyspaceEvent for these without signalModifiedKey).
    pub fn notify_only(&self, class: u32, event: &'static str, key: &[u8]) {
        self.publish(self.client.db, class, event, key);
    }

    fn publish(&self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        let ts_ms = self.now_ms;
        self.node
            .store
            .events
            .publish_with(|| KeyEvent::new(db, key, event, class, ts_ms));
    }

    pub fn notify_db(&self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        // Every change to a key is notified, so this is also where WATCHers learn of it
        // (Redis's `signalModifiedKey`); a key miss is a read, not a change, and a flush
        // touches its watched keys itself.
        let whole_db = key.is_empty() && matches!(event, "flushdb" | "flushall");
        if class != crate::observe::events::class::KEY_MISS && !whole_db {
            let writer = Some(self.client.info.id);
            self.node.store.key_changed(db, key, false, writer);
        }
        self.publish(db, class, event, key);
    }

    pub fn proto_max_bulk_len(&self) -> usize {
        self.node.config.read().proto_max_bulk_len
    }
}

/// Writes a string value (int-encoded ones as their decimal text) as a bulk reply.
pub fn reply_value(out: &mut Reply, v: &Value) {
    match v {
        Value::Str(s) => out.bulk(s),
        Value::Int(i) => out.bulk_int(*i),
        // Callers check for a string first; a collection here would be a bug, not a reply.
        _ => out.null(),
    }
}

/// `<CMD> HELP` replies: Redis's header line, the given lines, and its `HELP` footer.
pub fn reply_help(ctx: &mut Ctx, cmd: &str, lines: &[&str]) -> CmdResult {
    ctx.out.array(lines.len() + 3);
    ctx.out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        ctx.out.simple(l);
    }
    ctx.out.simple("HELP");
    ctx.out.simple("    Prints this help.");
    Ok(())
}

pub fn unknown_subcommand(args: &[Bytes]) -> CmdError {
    CmdError::err(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        truncate_lossy(&args[1], 128),
        String::from_utf8_lossy(&args[0]).to_uppercase()
    ))
}

/// Redis's `addReplySubcommandSyntaxError`: a known subcommand with arguments it cannot take.
pub fn subcommand_syntax_error(args: &[Bytes]) -> CmdError {
    CmdError::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        truncate_lossy(&args[1], 128),
        String::from_utf8_lossy(&args[0]).to_uppercase()
    ))
}

/// An argument as Redis prints it with `%.<max>s`: cut at `max` bytes or at the first NUL (a C
/// string ends there).
fn truncate_lossy(b: &[u8], max: usize) -> String {
    let b = &b[..b.len().min(max)];
    let b = &b[..memchr::memchr(0, b).unwrap_or(b.len())];
    String::from_utf8_lossy(b).into_owned()
}

/// Redis's reply for a command name not in the table.
fn unknown_command(args: &[Bytes]) -> CmdError {
    let mut rest = String::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        rest.push_str(&format!("'{}' ", truncate_lossy(a, room)));
    }
    CmdError::err(format!(
        "unknown command '{}', with args beginning with: {}",
        truncate_lossy(&args[0], 128),
        rest
    ))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Positions of the key arguments of `args` for `cmd`, from its key spec.
pub fn key_positions(cmd: &Command, args: &[Bytes]) -> SmallVec<[usize; 4]> {
    if let Some(f) = cmd.keys_fn {
        return f(args);
    }
    let (first, last, step) = cmd.keys;
    let mut out = SmallVec::new();
    if first <= 0 {
        return out;
    }
    let argc = args.len() as i32;
    let last = if last < 0 {
        argc + last
    } else {
        last.min(argc - 1)
    };
    let mut i = first;
    while i <= last && i < argc {
        out.push(i as usize);
        i += step.max(1);
    }
    out
}

/// Finds the command for `args` (resolving `CONFIG GET`-style subcommands) and checks arity.
pub fn resolve(args: &[Bytes]) -> Result<&'static CommandRef, CmdError> {
    let t = table();
    let top = t.lookup(&args[0]).ok_or_else(|| unknown_command(args))?;
    let cmd = if top.cmd.subcommands.is_empty() {
        top
    } else {
        if args.len() < 2 {
            // A container with its own handler (COMMAND alone lists every command).
            if top.cmd.handler.is_some() {
                return Ok(top);
            }
            return Err(CmdError::Arity(top.fullname.clone()));
        }
        match t.lookup_sub(top, &args[1]) {
            Some(sub) => sub,
            None => return Err(unknown_subcommand(args)),
        }
    };
    let arity = cmd.cmd.arity;
    let argc = args.len() as i32;
    if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return Err(CmdError::Arity(cmd.fullname.clone()));
    }
    Ok(cmd)
}

/// The command `args` name, if it exists (for a call refused before it resolved: arity).
fn command_named(args: &[Bytes]) -> Option<&'static CommandRef> {
    let t = table();
    let top = t.lookup(args.first()?)?;
    if top.cmd.subcommands.is_empty() || args.len() < 2 {
        return Some(top);
    }
    t.lookup_sub(top, &args[1])
}

/// Redis's rejectCommand for EXEC: a rejected EXEC discards the transaction and says why
/// (`EXECABORT Transaction discarded because of: <error without its ERR>`).
/// A refused EXEC discards its transaction and unwatches (Redis's execCommandAbort): the error
/// to reply.
pub fn reject_exec(node: &Node, client: &mut ClientState, e: CmdError) -> CmdError {
    client.multi = None;
    client
        .info
        .multi_len
        .store(-1, std::sync::atomic::Ordering::Relaxed);
    transactions::unwatch_all(node, client);
    CmdError::Msg(format!(
        "EXECABORT Transaction discarded because of: {}",
        e.to_string().trim_start_matches("ERR ")
    ))
}

/// What the connection should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Continue,
    /// Write the replies, then close (QUIT, protocol errors, CLIENT KILL of oneself).
    Close,
    /// Nothing ran: a script that started after the connection's check holds the command's
    /// shards. The connection waits for the script (or replies -BUSY) and calls again.
    ScriptBusy,
}

/// Runs one command from a client and writes its reply into `out`.
pub fn call(
    node: &Arc<Node>,
    client: &mut ClientState,
    out: &mut BytesMut,
    args: &[Bytes],
) -> After {
    // A transaction's end (EXEC or DISCARD, whatever came of it) uses up the ASKING that
    // preceded it (Redis's resetClient clears the flag once the client is out of MULTI).
    let ends_transaction = client.multi.is_some()
        && args
            .first()
            .is_some_and(|a| args::eq_ic(a, "exec") || args::eq_ic(a, "discard"));
    let after = call_command(node, client, out, args);
    if ends_transaction && after != After::ScriptBusy && client.multi.is_none() {
        client.asking = client.asking.saturating_sub(1);
    }
    after
}

fn call_command(
    node: &Arc<Node>,
    client: &mut ClientState,
    out: &mut BytesMut,
    args: &[Bytes],
) -> After {
    let now = now_ms();
    let cmd = match resolve(args) {
        Ok(c) => c,
        Err(e) => {
            if let Some(m) = client.multi.as_mut() {
                m.failed = true;
            }
            // A known command with the wrong number of arguments is a rejected call of that
            // command, and CLIENT LIST names it (Redis sets `c->cmd` before its checks).
            if let CmdError::Arity(_) = e
                && let Some(c) = command_named(args)
            {
                client.info.note_command(c.id, now);
                node.cmd_stats[c.id].rejected();
            }
            let e = match e {
                CmdError::Arity(ref name) if name == "exec" => reject_exec(node, client, e),
                e => e,
            };
            node.stats.note_error(&e);
            let resp3 = client.resp3;
            Reply::new(out, resp3).error(&e.to_string());
            return After::Continue;
        }
    };
    // CLIENT LIST's `cmd` (and so the ACL log's client info) names it even when it is
    // refused below, as Redis sets `c->cmd` before its checks.
    client.info.note_command(cmd.id, now);
    if let Some(e) = debug::protected_refusal(node, &client.info.addr, &cmd.fullname) {
        return reject(node, client, out, e, Some(cmd));
    }
    let f = cmd.cmd.flags;
    if client.needs_auth(node) && f & flags::NO_AUTH == 0 {
        let resp3 = client.resp3;
        node.stats.note_error(&CmdError::NoAuth);
        node.cmd_stats[cmd.id].rejected();
        let e = if cmd.fullname == "exec" {
            reject_exec(node, client, CmdError::NoAuth)
        } else {
            CmdError::NoAuth
        };
        Reply::new(out, resp3).error(&e.to_string());
        return After::Continue;
    }
    // The user's permissions (ACL), as Redis checks them next. A refusal inside MULTI fails
    // the transaction; a refused EXEC discards it.
    let context = if client.multi.is_some() {
        crate::acl::Context::Multi
    } else {
        crate::acl::Context::TopLevel
    };
    // (A command not allowed inside MULTI is refused for that first, as Redis checks it
    // before the ACL.)
    let no_multi = client.multi.is_some() && f & flags::NO_MULTI != 0;
    // A blocked command re-run because its keys may serve it now was admitted when it first
    // ran: it is not refused again (ACL, memory, persistence), as Redis serves a blocked client
    // without those checks. Where its keys are served (routing) is checked again.
    let rerun = client.blocked.is_some();
    if !no_multi
        && !rerun
        && let Some(e) = acl_check(node, client, cmd, args, context)
    {
        let e = if cmd.fullname == "exec" {
            reject_exec(node, client, e)
        } else {
            e
        };
        return reject(node, client, out, e, Some(cmd));
    }
    // Over maxmemory, keys are evicted before anything else (no shard is locked yet); so are
    // client tracking's keys over `tracking-table-max-keys`.
    // While a script runs (only commands allowed while busy get here then), eviction waits:
    // the script holds the shards.
    let memory = if node.scripts.is_running() {
        crate::node::Memory::Fits
    } else {
        node.perform_evictions(now)
    };
    node.store.tracking.enforce_limit();
    // Cluster routing comes first, as in Redis's processCommand: commands with keys are
    // checked before they queue or run, and before the persistence and subscriber checks.
    let clustered = node.cluster.is_some();
    // (Commands that hold every shard, SORT_RO's included, are routed by their keys too.)
    let keyed = clustered && (cmd.cmd.keys != (0, 0, 0) || cmd.cmd.keys_fn.is_some());
    let mut routed = None;
    client.asked = false;
    if clustered && keyed {
        let pos = key_positions(cmd.cmd, args);
        if !pos.is_empty() {
            let keys: SmallVec<[&[u8]; 4]> = pos.iter().map(|&i| &args[i][..]).collect();
            // Shard channels are served while the cluster is down by default (as Redis 7.0).
            // The setting is read before the shard locks are taken.
            let allowed_when_down = f & flags::PUBSUB != 0
                && node
                    .config
                    .read()
                    .get_bool("cluster.allow-pubsubshard-when-down");
            // A command that works on every shard (a script, SORT) holds them all, as it does
            // outside a cluster: a script's DBSIZE, KEYS or FLUSHALL sees the whole keyspace,
            // not its declared keys' shard.
            let idx = (f & flags::ALL_SHARDS == 0).then_some(&keys[..]);
            let Some(mut ks) = lock_unless_script(node, idx, now) else {
                return After::ScriptBusy;
            };
            // The slot table is read once the keys' shards are held: the migrator marks a slot
            // migrating before it takes the shard, and publishes the slot's new owner before
            // it lets go, so this view cannot be older than the keys it guards. (A view read
            // before the lock may predate a whole move that ran while we waited.)
            let routing = node.routing();
            let asking = client.asking > 0 || f & flags::ASKING != 0;
            // (A script's declared flags count, as Redis's getCommandFlags.)
            let query = Query {
                keys: &keys,
                flags: f,
                is_write: writes(node, cmd, args),
                asking,
                readonly: client.readonly,
                shard_when_down: allowed_when_down,
                is_migrate: cmd.cmd.name == "migrate",
            };
            let verdict = route_keys(node, &routing, &mut ks, client.db, &query);
            // A script's calls route as the script did (Redis copies the caller's ASKING
            // and READONLY onto the script's client).
            client.asked = asking;
            // A command for a slot served elsewhere uses up one ASKING, whether it was let in
            // (an importing slot) or redirected; inside MULTI the end of the transaction does
            // (Redis keeps the flag for the whole transaction: see `call`).
            if client.asking > 0
                && client.multi.is_none()
                && !routing.serves(key_hash_slot(keys[0]))
            {
                client.asking -= 1;
            }
            if let Err(r) = verdict {
                drop(ks);
                return reject(node, client, out, CmdError::Msg(r.message()), Some(cmd));
            }
            routed = Some(ks);
        }
    }
    if clustered && cmd.fullname == "exec" && client.multi.is_some() {
        match route_exec(node, client, now) {
            None => return After::ScriptBusy,
            Some(Ok(ks)) => routed = ks,
            Some(Err(e)) => return reject(node, client, out, e, Some(cmd)),
        }
    }
    // As Redis's processCommand: memory first, then persistence, subscribers and loading. A
    // command refused inside MULTI fails the transaction; a refused EXEC discards it (Redis's
    // execCommandAbort).
    let refused = if rerun {
        None
    } else if memory == crate::node::Memory::Full && denied_for_memory(client, cmd, f) {
        Some(CmdError::Oom)
    } else {
        checks_after_routing(node, client, cmd, f)
    };
    if let Some(e) = refused {
        drop(routed);
        let e = if cmd.fullname == "exec" {
            reject_exec(node, client, e)
        } else {
            e
        };
        return reject(node, client, out, e, Some(cmd));
    }
    if client.multi.is_some() && !transactions::runs_inside_multi(cmd) {
        drop(routed);
        let resp3 = client.resp3;
        if f & flags::NO_MULTI != 0 {
            if let Some(m) = client.multi.as_mut() {
                m.failed = true;
            }
            Reply::new(out, resp3).error("ERR Command not allowed inside a transaction");
        } else {
            if let Some(m) = client.multi.as_mut() {
                m.queue.push((cmd, args.to_vec()));
                // CLIENT LIST's `multi`: the commands queued so far.
                client
                    .info
                    .multi_len
                    .store(m.queue.len() as i64, std::sync::atomic::Ordering::Relaxed);
            }
            Reply::new(out, resp3).simple("QUEUED");
        }
        return After::Continue;
    }
    if let Some(mut ks) = routed {
        // Run under the same shard locks the routing decision was made with, so a slot
        // handed to another node in between cannot take a write here.
        return run(node, client, out, cmd, args, &mut ks, now);
    }
    let ks = if f & flags::ALL_SHARDS != 0 {
        lock_unless_script(node, None, now)
    } else {
        let pos = key_positions(cmd.cmd, args);
        if pos.is_empty() {
            Some(node.store.lock_none(now))
        } else {
            let keys: SmallVec<[&[u8]; 4]> = pos.iter().map(|&i| &args[i][..]).collect();
            lock_unless_script(node, Some(&keys), now)
        }
    };
    let Some(mut ks) = ks else {
        return After::ScriptBusy;
    };
    run(node, client, out, cmd, args, &mut ks, now)
}

/// The shards of `keys` (all of them for None), or None when a script holds one: a script
/// may hold them for as long as it runs, and a thread waiting on a lock is a thread the
/// runtime cannot use for SCRIPT KILL.
fn lock_unless_script<'a>(
    node: &'a Arc<Node>,
    keys: Option<&[&[u8]]>,
    now: i64,
) -> Option<Keyspace<'a>> {
    let idx = keys.map(crate::store::Store::shards_of);
    node.store
        .lock_shards_unless(idx.as_deref(), now, || node.scripts.is_running())
}

/// Whether routing counts `key` as held here for a migrating slot: present, or pinned by a slot
/// move even when absent (the target's copy may be stale: see `Shard::pinned`).
fn held_here(ks: &mut Keyspace, db: usize, key: &[u8]) -> bool {
    ks.peek(db, key).ok().flatten().is_some() || (db == 0 && ks.is_pinned(key))
}

/// A command's keys and what routing needs to know of it and its client (see [`route_keys`]).
pub(crate) struct Query<'q> {
    pub keys: &'q [&'q [u8]],
    /// The command's flags ([`flags::PUBSUB`]: its keys are shard channels).
    pub flags: u32,
    /// A write by Redis's is_write_command (a script's declared flags count).
    pub is_write: bool,
    pub asking: bool,
    pub readonly: bool,
    /// `cluster-allow-pubsubshard-when-down`.
    pub shard_when_down: bool,
    /// MIGRATE: its keys move freely while their slot is open here.
    pub is_migrate: bool,
}

/// Whether a command with these keys runs on this node (Redis's getNodeByQuery), once their
/// shards are held (`ks`): for a client's command and for each call a script makes.
pub(crate) fn route_keys(
    node: &Node,
    routing: &crate::cluster::routing::Routing,
    ks: &mut Keyspace,
    db: usize,
    q: &Query,
) -> Result<(), Redirect> {
    // Shard channels are not keys: a migrating slot's channels stay with its owner until the
    // slot moves, so they never cause ASK or TRYAGAIN.
    let shard_channels = q.flags & flags::PUBSUB != 0;
    // `cluster-allow-reads-when-down`: reads of owned slots are served, writes refused.
    // Shard channels follow their own setting only.
    let reads_when_down = !routing.ok && !shard_channels && node.cluster_reads_when_down();
    let when_down = !routing.ok
        && if shard_channels {
            q.shard_when_down
        } else {
            reads_when_down && !q.is_write
        };
    // A replica serves what is not a write for its master's slots to a READONLY client, and
    // shard channel commands to any client: SPUBLISH reaches the whole shard over the bus.
    let replica_read = (q.readonly || shard_channels) && !q.is_write;
    match routing.check_with(
        q.keys,
        q.asking,
        |k| shard_channels || held_here(ks, db, k),
        when_down,
        replica_read,
    ) {
        // MIGRATE moves keys freely while their slot is open (Redis's getNodeByQuery): the
        // redirections for keys missing here or served elsewhere do not apply to it.
        Err(Redirect::Ask(..) | Redirect::TryAgain | Redirect::Moved(..))
            if q.is_migrate && routing.is_open(key_hash_slot(q.keys[0])) =>
        {
            Ok(())
        }
        Err(Redirect::Down) if reads_when_down && q.is_write => Err(Redirect::DownReadOnly),
        v => v,
    }
}

/// Routes EXEC by the keys of every queued command (Redis's getNodeByQuery over the
/// transaction): they must all hash to one slot served here, as for one multi-key command. Each
/// command was routed when it was queued, but its slot may have moved since, or the commands
/// may name keys of different slots. A redirection discards the transaction (Redis's
/// `discardTransaction`) and is EXEC's reply. On success, the keyspace locked for the check
/// (every shard, as EXEC takes anyway) is what EXEC runs under. None: a running script holds
/// the shards (the connection waits for it without a thread, as for any command).
fn route_exec<'a>(
    node: &'a Arc<Node>,
    client: &mut ClientState,
    now: i64,
) -> Option<Result<Option<Keyspace<'a>>, CmdError>> {
    let Some(m) = client.multi.as_ref() else {
        return Some(Ok(None));
    };
    let keys: Vec<Bytes> = m
        .queue
        .iter()
        .filter(|(c, _)| c.cmd.keys != (0, 0, 0) || c.cmd.keys_fn.is_some())
        .flat_map(|(c, args)| {
            key_positions(c.cmd, args)
                .into_iter()
                .map(|i| args[i].clone())
                .collect::<Vec<_>>()
        })
        .collect();
    if keys.is_empty() {
        return Some(Ok(None));
    }
    let queue_writes = m.queue.iter().any(|(c, a)| writes(node, c, a));
    let replica_read = client.readonly && !queue_writes;
    let refs: SmallVec<[&[u8]; 4]> = keys.iter().map(|k| &k[..]).collect();
    let mut ks = lock_unless_script(node, None, now)?;
    let routing = node.routing();
    let db = client.db;
    // A transaction of reads is served while the cluster is down when reads are.
    let reads_when_down = !routing.ok && node.cluster_reads_when_down();
    let serve_when_down = reads_when_down && !queue_writes;
    let verdict = routing.check_with(
        &refs,
        client.asking > 0,
        |k| held_here(&mut ks, db, k),
        serve_when_down,
        replica_read,
    );
    let verdict = match verdict {
        Err(Redirect::Down) if reads_when_down => Err(Redirect::DownReadOnly),
        v => v,
    };
    Some(match verdict {
        Ok(()) => Ok(Some(ks)),
        Err(r) => {
            drop(ks);
            client.multi = None;
            client
                .info
                .multi_len
                .store(-1, std::sync::atomic::Ordering::Relaxed);
            transactions::unwatch_all(node, client);
            Err(CmdError::Msg(r.message()))
        }
    })
}

/// Whether a call writes, as Redis's cluster routing tells (is_write_command): the WRITE
/// flag, or for a script the flags it declares (a `#!lua` script that does not say
/// `no-writes`, a function without `no-writes`); a script without a `#!lua` line is not.
fn writes(node: &Node, cmd: &CommandRef, args: &[Bytes]) -> bool {
    if cmd.cmd.flags & flags::WRITE != 0 {
        return true;
    }
    let Some(arg) = args.get(1) else {
        return false;
    };
    match cmd.fullname.as_str() {
        "eval" | "eval_ro" => scripting::shebang_writer(arg),
        "evalsha" | "evalsha_ro" => scripting::declared_writer(node, false, arg),
        "fcall" | "fcall_ro" => scripting::declared_writer(node, true, arg),
        _ => false,
    }
}

/// Refuses a command before it runs (Redis's rejectCommand): a transaction it was to join
/// fails at EXEC, and the error is counted.
/// `args` with `from..to` shown as `(redacted)`.
fn redact_from(args: &[Bytes], from: usize, to: usize) -> Vec<Bytes> {
    let mut shown = args.to_vec();
    for a in shown.iter_mut().take(to).skip(from) {
        *a = Bytes::from_static(b"(redacted)");
    }
    shown
}

/// Whether the client's ACL user may run `cmd` with `args`: None, or Redis's NOPERM error (the
/// denial is logged in the ACL log).
pub fn acl_check(
    node: &Node,
    client: &mut ClientState,
    cmd: &CommandRef,
    args: &[Bytes],
    context: crate::acl::Context,
) -> Option<CmdError> {
    let denied = acl_denied(node, client, cmd, args, context)?;
    let message = match denied {
        crate::acl::Denied::Command => format!(
            "NOPERM this user has no permissions to run the '{}' command",
            cmd.fullname
        ),
        crate::acl::Denied::Key(_) => {
            "NOPERM this user has no permissions to access one of the keys used as arguments"
                .to_string()
        }
        crate::acl::Denied::Channel(_) => {
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .to_string()
        }
    };
    Some(CmdError::Msg(message))
}

/// Why the client's ACL user may not run `cmd` with `args`, if it may not; the denial is
/// logged in the ACL log.
pub fn acl_denied(
    node: &Node,
    client: &mut ClientState,
    cmd: &CommandRef,
    args: &[Bytes],
    context: crate::acl::Context,
) -> Option<crate::acl::Denied> {
    if client.acl_exempt {
        return None;
    }
    // A user deleted meanwhile may do nothing (its connection is being closed).
    let Some(user) = client.current_user(&node.acl) else {
        return Some(crate::acl::Denied::Command);
    };
    if user.unrestricted() {
        return None;
    }
    let denied = user.check(cmd, args).err()?;
    let name = user.name.clone();
    let (reason, object) = match denied {
        crate::acl::Denied::Command => (crate::acl::Reason::Command, cmd.fullname.clone()),
        crate::acl::Denied::Key(i) => (
            crate::acl::Reason::Key,
            String::from_utf8_lossy(&args[i]).into_owned(),
        ),
        crate::acl::Denied::Channel(i) => (
            crate::acl::Reason::Channel,
            String::from_utf8_lossy(&args[i]).into_owned(),
        ),
    };
    acl_log(node, client, reason, context, object, name);
    Some(denied)
}

/// An entry in the ACL log for `client`.
pub fn acl_log(
    node: &Node,
    client: &ClientState,
    reason: crate::acl::Reason,
    context: crate::acl::Context,
    object: String,
    username: String,
) {
    let max = node.config.read().get_int("acllog-max-len").max(0) as usize;
    let info = client.info.describe(now_ms());
    node.acl.log(reason, context, object, username, info, max);
}

/// `cmd`: the command refused, counted in its `rejected_calls`.
fn reject(
    node: &Node,
    client: &mut ClientState,
    out: &mut BytesMut,
    e: CmdError,
    cmd: Option<&CommandRef>,
) -> After {
    if let Some(c) = cmd {
        node.cmd_stats[c.id].rejected();
    }
    if let Some(m) = client.multi.as_mut() {
        m.failed = true;
    }
    node.stats.note_error(&e);
    Reply::new(out, client.resp3).error(&e.to_string());
    After::Continue
}

/// The checks Redis's processCommand makes after the cluster redirection, in its order:
/// `-MISCONF` while writes cannot be persisted, `-NOREPLICAS` (`min-replicas-to-write`), the
/// RESP2 subscriber's restriction to the
/// subscription commands, `-LOADING` while the data files load.
fn checks_after_routing(
    node: &Node,
    client: &ClientState,
    cmd: &CommandRef,
    f: u32,
) -> Option<CmdError> {
    // A write, or an EXEC with a write queued (Redis's is_write_command).
    let writes = f & flags::WRITE != 0
        || (cmd.fullname == "exec"
            && client
                .multi
                .as_ref()
                .is_some_and(|m| m.queue.iter().any(|(c, _)| c.cmd.flags & flags::WRITE != 0)));
    // As Redis: writes, and PING, are refused while persistence is failing.
    if (writes || cmd.fullname == "ping")
        && let Some(e) = crate::persist::write_denied(node)
    {
        return Some(CmdError::Msg(e));
    }
    // A master with too few good replicas refuses writes, and an EXEC with any queued.
    if writes && node.min_replicas().is_some_and(|(want, good)| good < want) {
        return Some(CmdError::Msg(
            "NOREPLICAS Not enough good replicas to write.".into(),
        ));
    }
    // A replica of a master (REPLICAOF) takes writes from its master's stream only (unless
    // `replica-read-only no`).
    if writes && node.upstream.is_replica() && node.config.read().get_bool("replica-read-only") {
        return Some(CmdError::Msg(
            "READONLY You can't write against a read only replica.".into(),
        ));
    }
    if client.pubsub.active() && !client.resp3 && !pubsub::allowed_in_subscribe_mode(cmd) {
        return Some(pubsub::subscribe_mode_error(cmd));
    }
    // A replica whose link is down serves only `stale` commands with
    // `replica-serve-stale-data no` (an EXEC, only if every queued command is one).
    if node.upstream.is_replica() && !node.upstream.link_up() {
        let stale = |f: u32| f & flags::STALE != 0;
        let deny = if cmd.fullname == "exec" {
            client
                .multi
                .as_ref()
                .is_some_and(|m| m.queue.iter().any(|(c, _)| !stale(c.cmd.flags)))
        } else {
            !stale(f)
        };
        if deny && !node.config.read().get_bool("replica-serve-stale-data") {
            return Some(CmdError::Msg(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                    .into(),
            ));
        }
    }
    if f & flags::LOADING == 0 && node.persist.is_loading() {
        return Some(CmdError::Msg(
            "LOADING Redis is loading the dataset in memory".into(),
        ));
    }
    None
}

/// Whether a full `maxmemory` refuses this command: one that may grow the data set (Redis's
/// `denyoom`), an EXEC whose queue holds one, or any command but EXEC, DISCARD, QUIT and RESET
/// inside MULTI (a queue may grow without bound).
fn denied_for_memory(client: &ClientState, cmd: &CommandRef, f: u32) -> bool {
    match (&client.multi, cmd.fullname.as_str()) {
        (Some(m), "exec") => m
            .queue
            .iter()
            .any(|(c, _)| c.cmd.flags & flags::DENYOOM != 0),
        (Some(_), "discard" | "quit" | "reset") => false,
        (Some(_), _) => true,
        (None, _) => f & flags::DENYOOM != 0,
    }
}

/// Runs a resolved command against an already locked keyspace view (used by `call` and EXEC).
pub fn run(
    node: &Arc<Node>,
    client: &mut ClientState,
    out: &mut BytesMut,
    cmd: &'static CommandRef,
    args: &[Bytes],
    ks: &mut Keyspace,
    now: i64,
) -> After {
    let Some(handler) = cmd.cmd.handler else {
        return After::Continue;
    };
    let mark = out.len();
    let started = Instant::now();
    let resp3 = client.resp3;
    // CLIENT LIST's `cmd` stays EXEC (or the script's command) while a transaction's or a
    // script's commands run, as Redis's `lastcmd`.
    if !client.in_exec && !client.in_script() {
        client.info.note_command(cmd.id, now);
    }
    let db = client.db;
    // A re-run of a blocked command (woken by a push) is logged when it is served; a first run
    // that blocks changed nothing.
    let rerun_of_blocked = client.blocked.is_some();
    let mut ctx = Ctx {
        node,
        client,
        out: Reply::new(out, resp3),
        now_ms: now,
        log_as: None,
        log_more: Vec::new(),
    };
    // A script is shown to MONITOR before the commands it runs (Redis's evalCommand and
    // fcallCommand feed the monitors themselves, first).
    if node.monitors.active()
        && matches!(
            cmd.cmd.name,
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        )
    {
        node.monitors.feed(ctx.client, args, now);
    }
    // BCAST invalidations of the command's writes leave together once it is done.
    let broadcast = node.store.tracking.batch();
    let result = handler(&mut ctx, ks, args);
    drop(broadcast);
    tracking::remember_reads(node, ctx.client, cmd.cmd, args);
    // A command that changed keys and then failed (MIGRATE with keys acknowledged before a
    // later key's error) says what to log in `log_as`.
    // A command that may replicate (not a write) is logged when it asks to be (PFCOUNT's
    // cache).
    let asks_to_be_logged = cmd.cmd.flags & flags::MAY_REPLICATE != 0
        && ctx.log_as.as_ref().is_some_and(|l| !l.is_empty());
    if (result.is_ok() || ctx.log_as.is_some())
        && (cmd.cmd.flags & flags::WRITE != 0 || asks_to_be_logged)
        && node.store.aof.is_recording()
        && !ctx.client.still_blocked
        && (rerun_of_blocked || ctx.client.blocked.is_none())
    {
        // Logged while the keys' shards are still locked: the log's order is the order writes
        // on a key happened in.
        let logged = ctx
            .log_as
            .take()
            .or_else(|| crate::persist::rewrite_for_log(&cmd.fullname, args, now));
        let logged = logged.as_deref().unwrap_or(args);
        let more = std::mem::take(&mut ctx.log_more);
        // An empty `log_as`: the command changed nothing worth replaying.
        for record in std::iter::once(logged).chain(more.iter().map(Vec::as_slice)) {
            match ctx.client.aof_batch.as_mut() {
                _ if record.is_empty() => {}
                Some(batch) => batch.push((db, record.to_vec())),
                None => {
                    let seq = node.store.aof.append_command(db, record);
                    ctx.client.aof_seq = ctx.client.aof_seq.max(seq);
                    ctx.client.repl_woff = node.store.aof.repl_written();
                }
            }
        }
    }
    let after = if ctx.client.close_after_reply {
        After::Close
    } else {
        After::Continue
    };
    let elapsed = started.elapsed();
    let stat = &node.cmd_stats[cmd.id];
    if let Err(e) = result {
        ctx.out.truncate(mark);
        ctx.out.error(&e.to_string());
        node.stats.note_error(&e);
        stat.failed();
    }
    let done = !ctx.client.still_blocked;
    stat.record_run(elapsed, !rerun_of_blocked, done);
    // A command at or over `latency-monitor-threshold` is a latency event, as in Redis (not
    // the first run of one that blocks: its wait is not its cost).
    let threshold = node
        .latency
        .threshold_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    let ms = elapsed.as_millis() as u64;
    if threshold > 0 && ms >= threshold && !ctx.client.still_blocked {
        let event = if cmd.cmd.flags & flags::FAST != 0 {
            "fast-command"
        } else {
            "command"
        };
        node.latency.add(event, now / 1000, ms);
    }
    if !rerun_of_blocked {
        node.stats
            .commands_processed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let f = cmd.cmd.flags;
    // Passwords are shown as `(redacted)`, as Redis does: MIGRATE's, AUTH's, HELLO AUTH's and
    // every ACL SETUSER rule.
    let redacted = match cmd.fullname.as_str() {
        "migrate" => migrate::redacted(args),
        "auth" => Some(redact_from(args, 1, args.len())),
        "acl|setuser" => Some(redact_from(args, 2, args.len())),
        "hello" => args
            .iter()
            .position(|a| a.eq_ignore_ascii_case(b"AUTH"))
            .filter(|&i| i >= 2)
            .map(|i| redact_from(args, i + 1, (i + 3).min(args.len()))),
        _ => None,
    };
    let shown = redacted.as_deref().unwrap_or(args);
    // A blocking command goes to the slow log when it is served (Redis: when unblocked).
    if f & flags::SKIP_SLOWLOG == 0 && done {
        node.slowlog
            .maybe_record(node, ctx.client, shown, elapsed, now);
    }
    // Administrative commands are not shown, as in Redis (CONFIG SET could reveal a password).
    // Shown once, when it first runs, not again when a blocked command is served.
    if f & (flags::SKIP_MONITOR | flags::ADMIN) == 0 && !rerun_of_blocked && node.monitors.active()
    {
        node.monitors.feed(ctx.client, shown, now);
    }
    after
}

/// Replays logged commands at start-up: straight to the handlers, with no routing, auth,
/// statistics or logging, and with the clock at 0 so no key expires half-way (expirations are
/// in the log as DELs, and relative TTLs were logged as absolute times).
pub struct Replayer<'a> {
    node: &'a Arc<Node>,
    client: ClientState,
    out: BytesMut,
    /// Writes go to this node's own log (a replica applying its master's stream).
    log: bool,
}

impl<'a> Replayer<'a> {
    pub fn new(node: &'a Arc<Node>) -> Option<Replayer<'a>> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        // No limit: the registry cannot refuse it.
        let info = node.clients.register(addr, addr, usize::MAX, now_ms())?;
        let mut client = ClientState::new(info, true);
        client.deny_blocking = true;
        client.obeyed = true;
        Some(Replayer {
            node,
            client,
            out: BytesMut::new(),
            log: false,
        })
    }

    /// Logs every write it applies in this node's own log (and feeds it on).
    pub fn logging(mut self) -> Self {
        self.log = true;
        self
    }

    /// Applies one logged command. Err: it cannot be run (unknown command, wrong arity, a
    /// database that does not exist): the log is not ours or is damaged.
    pub fn replay(&mut self, db: usize, args: &[Bytes]) -> Result<(), String> {
        let cmd = self.check(db, args)?;
        let mut ks = self.lock_for(&[(cmd, args)]);
        let _ = self.apply(cmd, &mut ks, db, args);
        Ok(())
    }

    /// The shards `cmds` run under, held from the first to the last: every shard for a
    /// command that works on all, or for a keyless write beside commands with keys (it could
    /// not take a shard the view does not hold); none when no command names a key (a command
    /// alone takes what it touches); else the shards of their keys.
    fn lock_for(&self, cmds: &[(&CommandRef, &[Bytes])]) -> Keyspace<'a> {
        let mut keys: Vec<&[u8]> = Vec::new();
        let (mut all, mut keyless_write) = (false, false);
        for (cmd, args) in cmds {
            let pos = key_positions(cmd.cmd, args);
            all |= cmd.cmd.flags & flags::ALL_SHARDS != 0;
            keyless_write |= pos.is_empty() && cmd.cmd.flags & flags::WRITE != 0;
            keys.extend(pos.iter().map(|&i| &args[i][..]));
        }
        let store = &self.node.store;
        if all || (keyless_write && !keys.is_empty()) {
            store.lock_all(0)
        } else if keys.is_empty() {
            store.lock_none(0)
        } else {
            store.lock_keys(&keys, 0)
        }
    }

    /// Applies a master's transaction (MULTI ... EXEC, or one record of several commands) as
    /// one step: the shards of all its keys (every shard, for a command that works on all or
    /// names none) are held from its first command to its last, so no client sees it half
    /// applied (Redis runs a master's EXEC as one command). Logged, when this replayer logs,
    /// as one record, as EXEC logs. Err, with nothing applied: a command that cannot be run
    /// here (Redis discards such a transaction whole).
    pub fn replay_all(&mut self, cmds: &[(usize, Vec<Bytes>)]) -> Result<(), String> {
        let mut checked = Vec::with_capacity(cmds.len());
        for (db, args) in cmds {
            checked.push((self.check(*db, args)?, &args[..]));
        }
        let mut ks = self.lock_for(&checked);
        let log = std::mem::replace(&mut self.log, false);
        let mut batch = Vec::new();
        for ((cmd, _), (db, args)) in checked.into_iter().zip(cmds) {
            if self.apply(cmd, &mut ks, *db, args) && log {
                batch.push((*db, args.clone()));
            }
        }
        self.log = log;
        if log && !batch.is_empty() {
            self.node.store.aof.append_with(|out| {
                crate::persist::aof::command_record(out, &batch);
            });
        }
        Ok(())
    }

    /// [`Replayer::replay`] under a keyspace the caller holds whole (DEBUG LOADAOF).
    pub fn replay_held(
        &mut self,
        ks: &mut Keyspace,
        db: usize,
        args: &[Bytes],
    ) -> Result<(), String> {
        let cmd = self.check(db, args)?;
        let now = std::mem::replace(&mut ks.now_ms, 0);
        let _ = self.apply(cmd, ks, db, args);
        ks.now_ms = now;
        Ok(())
    }

    fn check(&self, db: usize, args: &[Bytes]) -> Result<&'static CommandRef, String> {
        let cmd = resolve(args).map_err(|e| format!("cannot replay a logged command: {e}"))?;
        if db >= self.node.store.databases() {
            return Err(format!(
                "logged command for database {db}, which does not exist"
            ));
        }
        Ok(cmd)
    }

    /// Runs one command; returns whether it is a write that went well (one to log).
    fn apply(&mut self, cmd: &CommandRef, ks: &mut Keyspace, db: usize, args: &[Bytes]) -> bool {
        let Some(handler) = cmd.cmd.handler else {
            return false;
        };
        self.client.db = db;
        self.out.clear();
        let mut ctx = Ctx {
            node: self.node,
            client: &mut self.client,
            out: Reply::new(&mut self.out, false),
            now_ms: 0,
            log_as: None,
            log_more: Vec::new(),
        };
        // A command that fails now failed when it ran too (it was logged only if it succeeded,
        // so this is rare): Redis ignores replay errors the same way.
        let result = handler(&mut ctx, ks, args);
        let asks_to_be_logged = cmd.cmd.flags & flags::MAY_REPLICATE != 0
            && ctx.log_as.as_ref().is_some_and(|l| !l.is_empty());
        let to_log = result.is_ok()
            && (cmd.cmd.flags & flags::WRITE != 0 || asks_to_be_logged)
            && self.node.store.aof.is_recording();
        if self.log && to_log {
            self.node.store.aof.append_command(db, args);
        }
        self.client.multi = None;
        to_log
    }
}

impl Drop for Replayer<'_> {
    fn drop(&mut self) {
        self.node.clients.unregister(self.client.info.id);
    }
}
