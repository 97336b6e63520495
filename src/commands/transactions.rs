//! MULTI, EXEC, DISCARD. EXEC runs the queue with every shard locked, so no other client sees
//! the transaction half done. Commands that failed to queue (unknown, wrong arity) abort EXEC;
//! commands that fail while running do not roll back the others (Redis's semantics).

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use super::error::{CmdError, CmdResult};
use super::{After, CommandRef, Ctx};
use crate::store::Keyspace;

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

pub fn discard(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.take().is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    ctx.client.info.multi_len.store(-1, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

pub fn exec(ctx: &mut Ctx, ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let Some(m) = ctx.client.multi.take() else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    ctx.client.info.multi_len.store(-1, Ordering::Relaxed);
    if m.failed {
        return Err(CmdError::Msg(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    ctx.out.array(m.queue.len());
    let resp3 = ctx.client.resp3;
    let mut buf = BytesMut::new();
    // Blocking commands inside a transaction reply at once, as if timed out.
    ctx.client.deny_blocking = true;
    // The transaction's writes go to the log as one record: replayed whole or not at all.
    ctx.client.aof_batch = Some(Vec::new());
    for (cmd, args) in &m.queue {
        buf.clear();
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
    ctx.client.deny_blocking = false;
    if let Some(batch) = ctx.client.aof_batch.take()
        && !batch.is_empty()
    {
        let seq = ctx.node.store.aof.append_with(|out| {
            crate::persist::aof::command_record(out, &batch);
        });
        ctx.client.aof_seq = ctx.client.aof_seq.max(seq);
    }
    Ok(())
}
