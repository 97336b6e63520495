//! `FAILOVER` (Redis 6.2+, outside cluster mode): a master hands its role to one of its Redis
//! protocol replicas with no write lost, as Redis's coordinated failover:
//! 1. writes pause (reads go on), so the replication stream stops growing;
//! 2. every 100 ms the master looks for a replica that acknowledged the whole stream (the one
//!    named by `TO host port`, or any);
//! 3. it then follows that replica (REPLICAOF) and sends it `PSYNC <replid> <offset> FAILOVER`
//!    from where its stream to it stands: the replica becomes a master and answers as one
//!    (`+CONTINUE`, or a full sync);
//! 4. writes resume (here they meet a replica: `-READONLY`).
//!
//! `TIMEOUT ms` bounds step 2: past it the failover is abandoned, or with `FORCE` goes on to
//! the named replica whether it caught up or not. A target that refuses or cannot be reached
//! in step 3 makes the node a master again. `FAILOVER ABORT` stops it at any step.
//!
//! The other side, a replica here receiving `PSYNC ... FAILOVER` from its master, is in
//! `commands::cluster::psync`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::commands::now_ms;
use crate::node::Node;

/// The failover in progress, if any (INFO's `master_failover_state`).
#[derive(Default)]
pub struct Failover {
    plan: Mutex<Option<Plan>>,
}

#[derive(Clone)]
struct Plan {
    /// `TO host port`; else set once a replica caught up.
    target: Option<(String, u16)>,
    force: bool,
    /// Unix ms past which step 2 gives up (or, with `FORCE`, goes on).
    deadline_ms: Option<i64>,
    /// Step 3 started: the node follows the target.
    in_progress: bool,
    stop: CancellationToken,
}

/// How long a failover's write pause may last at most (it ends with the failover; this only
/// bounds a pause nobody ended).
const PAUSE_MS: i64 = 365 * 24 * 3600 * 1000;

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
    let stop = CancellationToken::new();
    match &target {
        Some((h, p)) => tracing::info!("FAILOVER requested to {h}:{p}."),
        None => tracing::info!("FAILOVER requested to any replica."),
    }
    *node.failover.plan.lock() = Some(Plan {
        target,
        force,
        deadline_ms: timeout_ms.map(|t| now_ms() + t),
        in_progress: false,
        stop: stop.clone(),
    });
    node.pause.pause(now_ms() + PAUSE_MS, true);
    node.runtime.spawn(wait_for_sync(node.clone(), stop));
}

/// Ends a failover that did not finish: the node stays (or becomes again) a master, and
/// writes resume.
pub fn abort(node: &Node, why: &str) {
    let Some(plan) = node.failover.plan.lock().take() else {
        return;
    };
    plan.stop.cancel();
    match &plan.target {
        Some((h, p)) => tracing::info!("FAILOVER to {h}:{p} aborted: {why}"),
        None => tracing::info!("FAILOVER to any replica aborted: {why}"),
    }
    if plan.in_progress {
        node.upstream.stop(node);
    }
    node.pause.unpause();
}

/// Step 2: waits for a replica that acknowledged the whole stream, then starts step 3.
async fn wait_for_sync(node: Arc<Node>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let Some(plan) = node.failover.plan.lock().clone() else {
            return;
        };
        let ours = node.store.aof.repl_offset();
        let feeds = node.replicas.list();
        let matches = |f: &&crate::server::replicas::Feed| {
            plan.target
                .as_ref()
                .is_none_or(|(h, p)| f.ip.eq_ignore_ascii_case(h) && f.port == *p)
        };
        let synced = feeds
            .iter()
            .filter(matches)
            .find(|f| f.state == "online" && f.acked == ours);
        let chosen = match (synced, &plan.deadline_ms) {
            (Some(f), _) => {
                tracing::info!(
                    "Failover target {}:{} is synced, failing over.",
                    f.ip,
                    f.port
                );
                Some((f.ip.clone(), f.port, Some(f.acked_resp)))
            }
            (None, Some(deadline)) if now_ms() >= *deadline => {
                if !plan.force {
                    abort(&node, "Replica never caught up before timeout");
                    return;
                }
                let (host, port) = plan.target.clone().expect("FORCE comes with TO");
                tracing::info!("FAILOVER to {host}:{port} time out exceeded, failing over.");
                let at = feeds.iter().find(matches).map(|f| f.acked_resp);
                Some((host, port, at))
            }
            (None, _) => None,
        };
        if let Some((host, port, at)) = chosen {
            take_over(&node, host, port, at);
            return;
        }
    }
}

/// Step 3: follow the target, asking it to take over from where our stream to it stands.
fn take_over(node: &Arc<Node>, host: String, port: u16, at: Option<u64>) {
    {
        let mut plan = node.failover.plan.lock();
        let Some(p) = plan.as_mut() else {
            return;
        };
        p.in_progress = true;
        p.target = Some((host.clone(), port));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let position = at.map(|o| (node.replid(), o as i64));
    node.upstream
        .follow_for_failover(node, host, port, position, tx);
    let node = node.clone();
    node.runtime.clone().spawn(async move {
        match rx.await {
            Ok(Ok(())) => {
                // Done: the node is the new master's replica; writes resume (and are
                // refused as a replica's).
                node.failover.plan.lock().take();
                node.pause.unpause();
            }
            Ok(Err(e)) => abort(
                &node,
                &format!("Failover target rejected psync request: {e}"),
            ),
            Err(_) => abort(&node, "Failover target link replaced"),
        }
    });
}
