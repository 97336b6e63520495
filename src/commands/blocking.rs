//! Blocking commands' side of the wait (BLPOP, BLMOVE, BZPOPMIN, ...): the timeout argument,
//! the outcome a handler returns when there is nothing to serve, and CLIENT UNBLOCK.
//!
//! A blocking handler that finds its keys empty calls [`block`] instead of replying. The first
//! time, that queues the client in the store's [`Blocked`](crate::store::blocking::Blocked)
//! registry while the shard locks are still held (so no push can slip in between), and the
//! connection task then awaits a wake-up, the deadline, CLIENT UNBLOCK or a disconnect, re-running
//! the command on each wake-up (`server::wait_blocked`). A re-run that still finds nothing keeps
//! its place in the queue. Inside MULTI the command replies at once as if it had timed out.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::time::Instant;

use super::Ctx;
use super::args::{eq_ic, int, parse_float};
use super::error::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::store::Keyspace;
use crate::store::blocking::{Waiter, unblock};

/// A client waiting for keys.
pub struct BlockState {
    pub waiter: Arc<Waiter>,
    /// None: wait for ever.
    pub deadline: Option<Instant>,
    /// XREAD: the ID each stream is read after, as the first run resolved it (`$` is the last
    /// ID when the client blocked); None for XREADGROUP's `>`.
    pub stream_ids: Vec<Option<crate::store::stream::StreamId>>,
}

/// A timeout argument in seconds (sub-second allowed), as Redis's `getTimeoutFromObjectOrReply`;
/// `None` is 0, wait for ever.
pub fn timeout_arg(arg: &[u8], now_ms: i64) -> Result<Option<std::time::Duration>, CmdError> {
    let secs =
        parse_float(arg).ok_or_else(|| CmdError::err("timeout is not a float or out of range"))?;
    let ms = secs * 1000.0;
    // C's (long long) cast of an out-of-range double yields LLONG_MIN on x86: "negative".
    if !(ms > -9.223_372_036_854_776e18 && ms < 9.223_372_036_854_776e18) || ms < 0.0 {
        return Err(CmdError::err("timeout is negative"));
    }
    // Rounded up, as Redis's ceill: a timeout under a millisecond is one, not "for ever".
    let ms = ms.ceil() as i64;
    if ms == 0 {
        return Ok(None);
    }
    if ms > i64::MAX - now_ms {
        return Err(CmdError::err("timeout is out of range"));
    }
    Ok(Some(std::time::Duration::from_millis(ms as u64)))
}

/// The order a blocking command looks at its keys in: as given, or, when it runs again after
/// a wake-up, the keys that woke it first, in the order they did (Redis serves a woken client
/// from the key that became ready first: `LPUSH b` then `LPUSH a` in one transaction serve a
/// `BLPOP a b` from `b`).
pub fn woken_order(ctx: &Ctx, keys: &[Bytes]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    if let Some(b) = ctx.client.blocked.as_ref() {
        let signalled = b.waiter.take_signalled();
        order.sort_by_key(|&i| {
            signalled
                .iter()
                .position(|k| *k == keys[i])
                .unwrap_or(usize::MAX)
        });
    }
    order
}

/// What a blocking command replies when it times out: a null array, in RESP2 and RESP3 alike
/// (Redis 7.0 sends `*-1` even for BLMOVE and BRPOPLPUSH).
pub fn reply_timeout(out: &mut Reply) {
    out.null_array();
}

/// What a blocking command replies inside MULTI, where it may not block: BLMOVE and
/// BRPOPLPUSH a null bulk string, the others a null array (Redis 7.0).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DenyReply {
    NullArray,
    NullBulk,
}

/// Nothing to serve: wait on `keys` until `timeout` (or reply as timed out inside MULTI).
pub fn block(
    ctx: &mut Ctx,
    keys: &[Bytes],
    timeout: Option<std::time::Duration>,
    deny: DenyReply,
) -> CmdResult {
    if ctx.client.deny_blocking {
        match deny {
            DenyReply::NullArray => ctx.out.null_array(),
            DenyReply::NullBulk => ctx.out.null(),
        }
        // As if timed out at once: nothing changed, nothing to log.
        ctx.log_as = Some(Vec::new());
        return Ok(());
    }
    if ctx.client.blocked.is_some() {
        ctx.client.still_blocked = true;
        return Ok(());
    }
    let waiter = ctx
        .node
        .store
        .blocked
        .block(ctx.client.info.id, ctx.client.db, keys);
    ctx.client.info.blocked.store(true, Ordering::Relaxed);
    ctx.client.blocked = Some(BlockState {
        waiter,
        deadline: timeout.map(|t| Instant::now() + t),
        stream_ids: Vec::new(),
    });
    Ok(())
}

/// Whether the key a blocked command looks at is of the wrong type and should be skipped:
/// Redis serves a blocked client only from a value of the type it waits for, so on a re-run a
/// wrong-typed key is as good as absent; on the first run it is WRONGTYPE.
pub fn skip_wrong_type(ctx: &Ctx) -> Result<(), CmdError> {
    if ctx.client.blocked.is_some() {
        Ok(())
    } else {
        Err(CmdError::WrongType)
    }
}

/// CLIENT UNBLOCK <id> [TIMEOUT|ERROR]
pub fn client_unblock(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let id = int(&args[2])?;
    let how = match args.get(3) {
        None => unblock::TIMEOUT,
        Some(a) if eq_ic(a, "TIMEOUT") => unblock::TIMEOUT,
        Some(a) if eq_ic(a, "ERROR") => unblock::ERROR,
        Some(_) => {
            return Err(CmdError::err(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ));
        }
    };
    if args.len() > 4 {
        return Err(CmdError::Syntax);
    }
    match u64::try_from(id)
        .ok()
        .and_then(|id| ctx.node.store.blocked.waiter(id))
    {
        Some(w) => {
            w.unblocked.store(how, Ordering::Relaxed);
            w.notify.notify_one();
            ctx.out.int(1);
        }
        None => ctx.out.int(0),
    }
    Ok(())
}
