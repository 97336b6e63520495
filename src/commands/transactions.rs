//! MULTI, EXEC, DISCARD, WATCH, UNWATCH. EXEC runs the queue with every shard locked, so no
//! other client sees the transaction half done. Commands that failed to queue (unknown, wrong
//! arity) abort EXEC; commands that fail while running do not roll back the others (Redis's
//! semantics). A WATCHed key that changed (any client's write, expiry, FLUSHALL/FLUSHDB,
//! SWAPDB) or expired since makes EXEC reply a null array; the watch table is in
//! `store::watch`.

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use super::error::{CmdError, CmdResult};
use super::{After, CommandRef, Ctx};
use crate::node::Node;
use crate::server::clients::ClientState;
use crate::store::Keyspace;
use crate::store::watch::Watcher;

/// Commands that act on the transaction itself instead of being queued.
pub fn runs_inside_multi(cmd: &CommandRef) -> bool {
    matches!(
        cmd.fullname.as_str(),
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

pub fn multi(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Default::default());
    ctx.client.info.multi_len.store(0, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// Forgets every watched key and the "a watched key changed" flag (Redis's
/// `unwatchAllKeys` plus clearing `CLIENT_DIRTY_CAS`).
pub fn unwatch_all(node: &Node, client: &mut ClientState) {
    let Some(w) = &client.watcher else { return };
    for (db, key) in client.watched.drain(..) {
        node.store.watches.unwatch(db, &key, w);
    }
    w.set_dirty(false);
}

pub fn discard(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.take().is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    ctx.client.info.multi_len.store(-1, Ordering::Relaxed);
    unwatch_all(ctx.node, ctx.client);
    ctx.out.ok();
    Ok(())
}

pub fn watch(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    let w = ctx.client.watcher.get_or_insert_with(Watcher::new).clone();
    // Redis: no point in watching more once a watched key changed.
    if !w.is_dirty() {
        let db = ctx.client.db;
        for key in &args[1..] {
            if ctx.client.watched.iter().any(|(d, k)| *d == db && k == key) {
                continue;
            }
            let expired = ks.expire_at(db, key)?.is_some_and(|at| at <= ctx.now_ms);
            let key = Bytes::copy_from_slice(key);
            ctx.node.store.watches.watch(db, &key, &w, expired);
            ctx.client.watched.push((db, key));
        }
    }
    ctx.out.ok();
    Ok(())
}

pub fn unwatch(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    unwatch_all(ctx.node, ctx.client);
    ctx.out.ok();
    Ok(())
}

/// Whether a watched key changed, or expired since it was watched (Redis's
/// `isWatchedKeyExpired`), checked with every shard locked.
fn watched_changed(ctx: &mut Ctx, ks: &mut Keyspace) -> Result<bool, CmdError> {
    let Some(w) = ctx.client.watcher.clone() else {
        return Ok(false);
    };
    if w.is_dirty() {
        return Ok(true);
    }
    for (db, key) in &ctx.client.watched {
        if ctx.node.store.watches.watched_alive(*db, key, &w)
            && ks.expire_at(*db, key)?.is_some_and(|at| at <= ctx.now_ms)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn exec(ctx: &mut Ctx, ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let Some(m) = ctx.client.multi.take() else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    // While EXEC runs, CLIENT LIST still shows the transaction (flag x, multi=<queued>), as
    // Redis's; it ends with EXEC, however EXEC ends.
    struct EndsWithExec(std::sync::Arc<crate::server::clients::ClientInfo>);
    impl Drop for EndsWithExec {
        fn drop(&mut self) {
            self.0.multi_len.store(-1, Ordering::Relaxed);
        }
    }
    let _ends = EndsWithExec(ctx.client.info.clone());
    let changed = watched_changed(ctx, ks)?;
    unwatch_all(ctx.node, ctx.client);
    if m.failed {
        return Err(CmdError::Msg(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    if changed {
        ctx.out.null_array();
        return Ok(());
    }
    ctx.out.array(m.queue.len());
    let resp3 = ctx.client.resp3;
    let mut buf = BytesMut::new();
    ctx.client.in_exec = true;
    // Blocking commands inside a transaction reply at once, as if timed out.
    ctx.client.deny_blocking = true;
    // The transaction's writes go to the log as one record: replayed whole or not at all.
    ctx.client.aof_batch = Some(Vec::new());
    for (cmd, args) in &m.queue {
        buf.clear();
        // Permissions are checked again: the user's rules may have changed since it queued.
        if let Some(denied) =
            super::acl_denied(ctx.node, ctx.client, cmd, args, crate::acl::Context::Multi)
        {
            let reason = match denied {
                crate::acl::Denied::Command => "no permission to execute the command or subcommand",
                crate::acl::Denied::Key(_) => "no permission to touch the specified keys",
                crate::acl::Denied::Channel(_) => {
                    "no permission to access one of the channels used as arguments"
                }
            };
            let e = CmdError::Msg(format!(
                "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}"
            ));
            ctx.node.stats.note_error(&e);
            ctx.out.error(&e.to_string());
            continue;
        }
        let after = super::run(ctx.node, ctx.client, &mut buf, cmd, args, ks, ctx.now_ms);
        ctx.out.buf().extend_from_slice(&buf);
        if after == After::Close {
            ctx.client.close_after_reply = true;
        }
        // A command inside may switch protocol (HELLO); later replies follow it.
        if ctx.client.resp3 != resp3 {
            ctx.out.set_resp3(ctx.client.resp3);
        }
    }
    ctx.client.in_exec = false;
    ctx.client.deny_blocking = false;
    if let Some(batch) = ctx.client.aof_batch.take()
        && !batch.is_empty()
    {
        let seq = ctx.node.store.aof.append_with(|out| {
            crate::persist::aof::command_record(out, &batch);
        });
        ctx.client.aof_seq = ctx.client.aof_seq.max(seq);
        ctx.client.repl_woff = ctx.node.store.aof.repl_written();
    }
    Ok(())
}
