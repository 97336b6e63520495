//! `FAILOVER` (Redis 6.2+, outside cluster mode): a master hands its role to one of its Redis
//! protocol replicas with no write lost, as Redis's coordinated failover:
//! 1. writes pause (reads go on), so the replication stream stops growing;
//! 2. every 100 ms the master looks for a replica that acknowledged the whole stream (the one
//!    named by `TO host port`, or any);
//! 3. it then follows that replica (REPLICAOF) and sends it `PSYNC <stream id> <offset>
//!    FAILOVER` from where its stream to it stands (the ID that replica's stream goes by, see
//!    [`crate::server::replicas`]): the replica becomes a master and answers as one
//!    (`+CONTINUE`, or a full sync);
//! 4. writes resume (here they meet a replica: `-READONLY`).
//!
//! `TIMEOUT ms` bounds step 2: past it the failover is abandoned, or with `FORCE` goes on to
//! the named replica whether it caught up or not (asking it for a full sync). A target that
//! refuses the PSYNC in step 3 makes the node a master again; one that cannot be reached is
//! tried again every second, the failover still in progress and writes still paused, until it
//! answers or `FAILOVER ABORT` (as Redis). `FAILOVER ABORT` stops it at any step. Its write pause is its own (CLIENT UNPAUSE does
//! not lift it), and no key expires while it lasts (a deletion would move the stream on).
//!
//! The other side, a replica here receiving `PSYNC ... FAILOVER` from its master, is in
//! `commands::cluster::psync`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::commands::now_ms;
use crate::node::Node;

/// The failover in progress, if any (INFO's `master_failover_state`).
#[derive(Default)]
pub struct Failover {
    plan: Mutex<Option<Plan>>,
    /// Numbers the plans, so a wait loop left from an aborted one never acts for the next.
    generation: AtomicU64,
}

#[derive(Clone)]
struct Plan {
    generation: u64,
    /// `TO host port`; else set once a replica caught up.
    target: Option<(String, u16)>,
    force: bool,
    /// Unix ms past which step 2 gives up (or, with `FORCE`, goes on).
    deadline_ms: Option<i64>,
    /// Step 3 started: the node follows the target.
    in_progress: bool,
}

/// A `PSYNC` offset no backlog holds: the target answers with a full sync (FORCE: it may not
/// have all we sent, nor we all it has).
const FULL_SYNC_OFFSET: i64 = i64::MAX / 2;

impl Failover {
    /// INFO replication's `master_failover_state`.
    pub fn state(&self) -> &'static str {
        match &*self.plan.lock() {
            None => "no-failover",
            Some(p) if p.in_progress => "failover-in-progress",
            Some(_) => "waiting-for-sync",
        }
    }

    pub fn active(&self) -> bool {
        self.plan.lock().is_some()
    }
}

/// Starts a failover (the checks Redis makes before its OK are the caller's).
pub fn start(
    node: &Arc<Node>,
    target: Option<(String, u16)>,
    force: bool,
    timeout_ms: Option<i64>,
) {
    match &target {
        Some((h, p)) => tracing::info!("FAILOVER requested to {h}:{p}."),
        None => tracing::info!("FAILOVER requested to any replica."),
    }
    let generation = node.failover.generation.fetch_add(1, Ordering::Relaxed) + 1;
    *node.failover.plan.lock() = Some(Plan {
        generation,
        target,
        force,
        deadline_ms: timeout_ms.map(|t| now_ms() + t),
        in_progress: false,
    });
    node.store.keep_expired.store(true, Ordering::Relaxed);
    node.pause.set_failover(true);
    node.runtime.spawn(wait_for_sync(node.clone(), generation));
}

/// Ends a failover that did not finish: the node stays (or becomes again) a master, and
/// writes resume.
pub fn abort(node: &Node, why: &str) {
    let mut plan = node.failover.plan.lock();
    let Some(p) = plan.take() else {
        return;
    };
    match &p.target {
        Some((h, port)) => tracing::info!("FAILOVER to {h}:{port} aborted: {why}"),
        None => tracing::info!("FAILOVER to any replica aborted: {why}"),
    }
    if p.in_progress {
        node.upstream.stop(node);
    }
    if !node.upstream.is_replica() {
        node.store.keep_expired.store(false, Ordering::Relaxed);
    }
    node.pause.set_failover(false);
}

/// The target answered `PSYNC ... FAILOVER` as a master: done. The node follows it, and the
/// writes it held resume (and meet a replica: `-READONLY`).
pub fn succeeded(node: &Node) {
    if node.failover.plan.lock().take().is_some() {
        tracing::info!("FAILOVER completed: this node follows the new master");
        node.pause.set_failover(false);
    }
}

/// Step 2: waits for a replica that acknowledged the whole stream, then starts step 3.
async fn wait_for_sync(node: Arc<Node>, generation: u64) {
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let plan = match node.failover.plan.lock().clone() {
            Some(p) if p.generation == generation && !p.in_progress => p,
            _ => return,
        };
        let ours = node.store.aof.repl_offset();
        let feeds = node.replicas.list();
        let matches = |f: &&crate::server::replicas::Feed| {
            plan.target
                .as_ref()
                .is_none_or(|(h, p)| f.ip.eq_ignore_ascii_case(h) && f.port == *p)
        };
        // As Redis: the deadline first, then whether a replica caught up.
        if let Some(deadline) = plan.deadline_ms
            && now_ms() >= deadline
        {
            if !plan.force {
                abort(&node, "Replica never caught up before timeout");
                return;
            }
            let (host, port) = plan.target.clone().expect("FORCE comes with TO");
            tracing::info!("FAILOVER to {host}:{port} time out exceeded, failing over.");
            take_over(&node, generation, host, port, None);
            return;
        }
        if let Some(f) = feeds
            .iter()
            .filter(matches)
            .find(|f| f.state == "online" && f.acked == ours)
        {
            tracing::info!(
                "Failover target {}:{} is synced, failing over.",
                f.ip,
                f.port
            );
            let (host, port) = (f.ip.clone(), f.port);
            let synced = (ours, f.stream_id.clone(), f.acked_resp);
            if take_over(&node, generation, host, port, Some(synced)) {
                return;
            }
        }
    }
}

/// Step 3: follow the target, asking it to take over from where our stream to it stands
/// (`synced`: our offset it acknowledged, and the same point as its stream's ID and count;
/// None: FORCE).
/// False when the stream moved on since the check (the wait goes on).
fn take_over(
    node: &Arc<Node>,
    generation: u64,
    host: String,
    port: u16,
    synced: Option<(u64, String, u64)>,
) -> bool {
    // Held while the link starts: an ABORT waits for it, then stops that link.
    let mut plan = node.failover.plan.lock();
    let Some(p) = plan
        .as_mut()
        .filter(|p| p.generation == generation && !p.in_progress)
    else {
        return true;
    };
    let position = match synced {
        Some((ours, ..)) if node.store.aof.repl_offset() != ours => return false,
        Some((_, stream_id, theirs)) => (stream_id, theirs as i64),
        // The target knows our stream by the ID of the stream we feed it (a Redis replica
        // checks PSYNC FAILOVER's ID against its own).
        None => {
            let fed = node.replicas.list().into_iter().find(|f| {
                f.ip.eq_ignore_ascii_case(&host) && f.port == port && !f.stream_id.is_empty()
            });
            (
                fed.map_or_else(|| node.replid(), |f| f.stream_id),
                FULL_SYNC_OFFSET,
            )
        }
    };
    p.in_progress = true;
    p.target = Some((host.clone(), port));
    node.upstream
        .follow_for_failover(node, host, port, position);
    true
}
