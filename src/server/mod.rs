//! The RESP listener and the per-connection task: read what is there, run every complete
//! command in the buffer, write all replies with one write.
//!
//! By default connections are tasks of the node's multi-threaded runtime, whose workers steal
//! work from each other. With `io-threads N` they run on N threads of their own instead, each
//! an event loop of its own (a single-threaded tokio runtime) that keeps the connections it is
//! handed, round robin, from accept to close, as Redis's I/O threads and Dragonfly's shards do.
//! Measured on 2 cores with redis-benchmark beside the node (docs/benchmarks.md, "Connection
//! threads"), two such threads serve pipelines faster (GET -P 16: 670,000-765,000 requests/s
//! against 560,000-590,000) but make the -P 1 tail longer (p99 up to 4.4 ms, against at most
//! 1.2): a thread the OS preempts holds all of its clients, where a worker of the shared
//! runtime would have its tasks stolen. So they are for machines with cores to spare.
//! Commands run with the node's runtime entered, so what one starts in the background (a bus
//! message, a BGSAVE) runs there, not on the connection's thread.

pub mod clients;
pub mod failover;
pub mod replicas;
pub mod stats;
pub mod upstream;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::commands::{self, After, flags};
use crate::node::Node;
use crate::pubsub::{Delivery, Inbox};
use crate::resp::{Parser, Reply};
use crate::store::blocking::{collect_woken, unblock, wait_settled};
use clients::{ClientState, ReplyMode};

thread_local! {
    static CONNECTION_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this is a connection thread (its event loop may not block in place).
pub fn on_connection_thread() -> bool {
    CONNECTION_THREAD.with(|c| c.get())
}

/// The connection threads' event loops, handed connections in turn.
struct ConnThreads {
    loops: Vec<tokio::runtime::Handle>,
    next: usize,
}

impl ConnThreads {
    /// Starts `n` threads. Each runs until the node stops and its tasks are done (connections
    /// finish the replies in flight; `NodeHandle::shutdown` waits for them).
    fn start(n: usize, node: &Node, tasks: &TaskTracker) -> std::io::Result<ConnThreads> {
        let mut loops = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            loops.push(rt.handle().clone());
            let stop = node.shutdown.clone();
            let tasks = tasks.clone();
            std::thread::Builder::new()
                .name(format!("reredis-io-{i}"))
                .spawn(move || {
                    CONNECTION_THREAD.with(|c| c.set(true));
                    rt.block_on(async move {
                        stop.cancelled().await;
                        tasks.wait().await;
                    });
                })?;
        }
        Ok(ConnThreads { loops, next: 0 })
    }

    fn spawn(&mut self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.next = (self.next + 1) % self.loops.len();
        self.loops[self.next].spawn(fut);
    }
}

/// `tcp-keepalive`, as Redis sets it: the first probe after `secs` idle (at most what Linux
/// takes, 32767), then one every third of that; the peer is dropped after 3 unanswered.
fn set_keepalive(sock: &TcpStream, secs: u64) -> std::io::Result<()> {
    let secs = secs.min(32_767);
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(secs))
        .with_interval(Duration::from_secs((secs / 3).max(1)))
        .with_retries(3);
    socket2::SockRef::from(sock).set_tcp_keepalive(&ka)
}

pub async fn accept_loop(node: Arc<Node>, listener: TcpListener, tasks: TaskTracker) {
    // `io-threads` 0: connections share the node's runtime.
    let wanted = node.config.read().io_threads;
    let mut threads = (wanted > 0)
        .then(|| ConnThreads::start(wanted, &node, &tasks))
        .and_then(|started| {
            started
                .inspect_err(|e| {
                    tracing::warn!(
                        "cannot start {wanted} connection threads ({e}): connections run on the node's runtime"
                    )
                })
                .ok()
        });
    loop {
        let (sock, addr) = tokio::select! {
            _ = node.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        node.stats
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        let _ = sock.set_nodelay(true);
        let laddr = sock.local_addr().unwrap_or(node.resp_addr);
        let (max, keepalive) = {
            let c = node.config.read();
            (c.maxclients, c.tcp_keepalive_secs)
        };
        if keepalive > 0
            && let Err(e) = set_keepalive(&sock, keepalive)
        {
            tracing::debug!("cannot set TCP keepalive on a client connection: {e}");
        }
        let Some(info) = node.clients.register(addr, laddr, max, commands::now_ms()) else {
            node.stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tasks.spawn(async move {
                let mut sock = sock;
                let _ = sock
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        };
        let node = node.clone();
        let Some(threads) = threads.as_mut() else {
            tasks.spawn(run_client(node, sock, info));
            continue;
        };
        // The socket moves to its thread's event loop: it is registered there again.
        let sock = match sock.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot hand a connection to its thread: {e}");
                node.clients.unregister(info.id);
                continue;
            }
        };
        threads.spawn(tasks.track_future(async move {
            match TcpStream::from_std(sock) {
                Ok(sock) => run_client(node, sock, info).await,
                Err(e) => {
                    tracing::warn!("cannot register a connection: {e}");
                    node.clients.unregister(info.id);
                }
            }
        }));
    }
}

/// Serves one client until it goes, then forgets it.
async fn run_client(node: Arc<Node>, sock: TcpStream, info: Arc<clients::ClientInfo>) {
    let id = info.id;
    let authenticated = !node.requires_pass();
    serve(node.clone(), sock, ClientState::new(info, authenticated)).await;
    node.monitors.remove(id);
    node.clients.unregister(id);
}

/// Sleeps until `deadline`, or for ever when there is none.
pub(crate) async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn recv_monitor(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_pubsub(inbox: &mut Option<Inbox>) -> Option<Delivery> {
    match inbox {
        Some(ib) => ib.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The longest a command's reply waits for the blocked clients it woke to be served.
const SERVE_WOKEN: Duration = Duration::from_millis(100);

/// Output buffer capacity a connection keeps after a write; a larger one is let go.
const OUT_KEEP: usize = 1 << 20;

/// Pub/Sub messages written per batch before the connection goes back to reading commands.
const PUBSUB_BATCH: usize = 64 * 1024;

/// Whether messages that arrived while a command ran may go before its reply: they may, except
/// after a command that subscribes, or an EXEC that may have (the confirmation of a subscription
/// must come before its first message, as in Redis).
fn messages_before_reply(args: &[Bytes]) -> bool {
    let name = &args[0];
    !["subscribe", "psubscribe", "ssubscribe", "exec"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

/// Runs one command with the node's runtime entered: a task it spawns, a timer or a bus client
/// it makes, belong to the node, not to the connection thread.
fn call(node: &Arc<Node>, client: &mut ClientState, out: &mut BytesMut, args: &[Bytes]) -> After {
    let (after, woken) = collect_woken(|| {
        if on_connection_thread() {
            let _node_runtime = node.runtime.enter();
            commands::call(node, client, out, args)
        } else {
            // Already on the node's runtime; entering it again would cost a shared count's
            // update.
            commands::call(node, client, out, args)
        }
    });
    client.woken.extend(woken);
    commands::tracking::command_done(client, args);
    after
}

async fn serve(node: Arc<Node>, sock: TcpStream, mut client: ClientState) {
    let (mut rd, mut wr) = sock.into_split();
    let mut parser = Parser::new(node.proto_max_bulk_len.load(Ordering::Relaxed));
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut args: Vec<Bytes> = Vec::new();
    let mut monitor_rx: Option<mpsc::Receiver<Bytes>> = None;
    let mut inbox: Option<Inbox> = None;
    // Cost of the pub/sub messages in `out`, released from the output limit once written.
    let mut pubsub_cost = 0;
    let kill = client.info.kill.clone();
    let pushes = client.info.pushes.clone();
    let shutdown = node.shutdown.clone();
    'conn: loop {
        let want = parser.wanted(&inbuf);
        if want > 0 {
            inbuf.reserve(want);
        } else if inbuf.capacity() - inbuf.len() < 4096 {
            inbuf.reserve(16 * 1024);
        }
        tokio::select! {
            biased;
            _ = kill.cancelled() => break,
            _ = shutdown.cancelled() => break,
            line = recv_monitor(&mut monitor_rx) => {
                match line {
                    Some(line) => {
                        if wr.write_all(&line).await.is_err() {
                            break;
                        }
                    }
                    // The feed ended (RESET dropped this client's monitor): stop listening,
                    // or the branch would be ready again at once, for ever.
                    None => monitor_rx = None,
                }
                continue;
            }
            d = recv_pubsub(&mut inbox) => {
                if let (Some(d), Some(ib)) = (d, inbox.as_mut()) {
                    let mut cost = d.cost();
                    ib.write(&mut out, client.resp3, &mut client.pubsub, d);
                    cost += ib.drain(&mut out, client.resp3, &mut client.pubsub, PUBSUB_BATCH);
                    if !flush(&node, &kill, &mut wr, &mut out, client.ack()).await {
                        break;
                    }
                    ib.sub.written(cost);
                }
                continue;
            }
            // Another connection made this client's queue (it is a tracking REDIRECT target).
            _ = pushes.handed_over.notified(), if inbox.is_none() => {
                inbox = pushes.take_handed();
                continue;
            }
            // (Idle clients are closed by the node's cron: `timeout`.)
            r = rd.read_buf(&mut inbuf) => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        node.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        // Input is interaction, a command part-sent included (idle `timeout`).
                        client.info.last_interaction_ms.store(commands::now_ms(), Ordering::Relaxed);
                    }
                }
            }
        }
        let mut close = false;
        loop {
            // A client killed meanwhile (CLIENT KILL, ACL DELUSER of its user) runs nothing
            // more of what it sent, as Redis's CLOSE_ASAP clients.
            if kill.is_cancelled() {
                close = true;
                break;
            }
            parser.set_unauthenticated(client.needs_auth(&node));
            parser.set_max_bulk_len(node.proto_max_bulk_len.load(Ordering::Relaxed));
            let pending = inbuf.len();
            match parser.parse(&mut inbuf, &mut args) {
                Ok(true) => {
                    if args.is_empty() {
                        continue;
                    }
                    // CLIENT LIST's qbuf while the command runs: it and what follows it, as in
                    // Redis, whose query buffer still holds the command being run.
                    client.info.query_buf.store(pending, Ordering::Relaxed);
                    // (Asked again after each wait: another pause may have begun meanwhile, and
                    // a wait ends at its deadline even if the wake-up was missed.)
                    let mut stopped = false;
                    while let Some(deadline) = pause_deadline(&node, &client, &args) {
                        if node.shutdown.is_cancelled() || kill.is_cancelled() {
                            stopped = true;
                            break;
                        }
                        flush(&node, &kill, &mut wr, &mut out, client.ack()).await;
                        // Paused is blocked (Redis's BLOCKED_POSTPONE): flag `b`, and never
                        // closed as idle.
                        client.info.blocked.store(true, Ordering::Relaxed);
                        wait_unpaused(&node, deadline).await;
                        client.info.blocked.store(false, Ordering::Relaxed);
                    }
                    // A paused command never runs once the node stops or the client is
                    // killed: the client is disconnected, as Redis's paused clients are.
                    if stopped {
                        close = true;
                        break;
                    }
                    // While a script runs, others wait for it here (not on its locks), and
                    // get -BUSY once it has run too long. A command that met a script's
                    // locks (the script started after this check) comes back here.
                    let ran = loop {
                        if node.scripts.is_running()
                            && !commands::scripting::allowed_while_busy(&args)
                            && !node.scripts.wait_until_idle().await
                        {
                            break None;
                        }
                        if let Some(ib) = inbox.as_mut() {
                            // A RESP3 client tracking its own keys hears of the keys evicted
                            // to make room for its command before the command's reply, as
                            // Redis evicts before it runs a command: evicted here, so the
                            // drain below carries their invalidations.
                            if client.tracking.is_some()
                                && client.info.tracking_redirect.load(Ordering::Relaxed) == 0
                                && !node.scripts.is_running()
                            {
                                node.perform_evictions_now(commands::now_ms());
                            }
                            pubsub_cost +=
                                ib.drain(&mut out, client.resp3, &mut client.pubsub, PUBSUB_BATCH);
                        }
                        let mark = out.len();
                        match call(&node, &mut client, &mut out, &args) {
                            // Commands allowed while busy (WATCH) would not wait at the
                            // check above: they wait for the script's end here.
                            After::ScriptBusy => {
                                if commands::scripting::allowed_while_busy(&args) {
                                    node.scripts.wait_end().await;
                                }
                                continue;
                            }
                            after => break Some((mark, after)),
                        }
                    };
                    // Blocked clients this command woke are served before its reply, as in Redis.
                    if !client.woken.is_empty() {
                        wait_settled(std::mem::take(&mut client.woken), SERVE_WOKEN).await;
                    }
                    let Some((mut mark, mut after)) = ran else {
                        // As a refused command: a transaction it was to join fails at EXEC,
                        // and a refused EXEC discards it (-EXECABORT ... BUSY, as Redis).
                        let busy = commands::CmdError::Msg(node.scripts.busy_error().into());
                        let e = if client.multi.is_some() && args[0].eq_ignore_ascii_case(b"exec") {
                            commands::reject_exec(&node, &mut client, busy)
                        } else {
                            if let Some(m) = client.multi.as_mut() {
                                m.failed = true;
                            }
                            busy
                        };
                        node.stats.note_error(&e);
                        Reply::new(&mut out, client.resp3).error(&e.to_string());
                        continue;
                    };
                    if client.blocked.is_some() {
                        // Replies so far leave now; the rest of the pipeline waits behind us.
                        if !flush(&node, &kill, &mut wr, &mut out, client.ack()).await {
                            node.store.blocked.unblock(client.info.id);
                            if let Some(b) = &client.blocked {
                                b.waiter.settled_all();
                            }
                            break 'conn;
                        }
                        if let Some(ib) = &inbox
                            && pubsub_cost > 0
                        {
                            ib.sub.written(pubsub_cost);
                            pubsub_cost = 0;
                        }
                        mark = 0;
                        let waited = wait_blocked(
                            &node,
                            &mut client,
                            Conn {
                                rd: &mut rd,
                                wr: &mut wr,
                                inbuf: &mut inbuf,
                                inbox: &mut inbox,
                            },
                            &mut out,
                            &args,
                        )
                        .await;
                        if waited == After::Close {
                            after = After::Close;
                        }
                    }
                    if let Some(w) = client.wait_replicas.take() {
                        // Replies so far leave now; the count follows once replicas acked.
                        if !flush(&node, &kill, &mut wr, &mut out, client.ack()).await {
                            break 'conn;
                        }
                        mark = 0;
                        // A blocked client while it waits, as Redis's BLOCKED_WAIT: counted in
                        // blocked_clients, flagged `b`, released by CLIENT UNBLOCK.
                        let id = client.info.id;
                        let waiter = node.store.blocked.block(id, client.db, &[]);
                        client.info.blocked.store(true, Ordering::Relaxed);
                        let waited = wait_replicas(&node, &kill, w, &waiter).await;
                        node.store.blocked.unblock(id);
                        client.info.blocked.store(false, Ordering::Relaxed);
                        match waited {
                            Ok(acked) => Reply::new(&mut out, client.resp3).int(acked as i64),
                            Err(how) => {
                                let (msg, close) = unblocked_reason(how);
                                unblocked_error(&node, &client, &mut out, &args, msg);
                                if close {
                                    after = After::Close;
                                }
                            }
                        }
                    }
                    apply_reply_mode(&mut client, &mut out, mark, &args);
                    if inbox.is_none() {
                        inbox = client.pubsub.inbox.take();
                    }
                    if let Some(ib) = inbox.as_mut()
                        && messages_before_reply(&args)
                    {
                        // Messages the command itself caused (a RESP3 client publishing to
                        // itself) precede its reply, as in Redis.
                        pubsub_cost += ib.splice_before(
                            &mut out,
                            mark,
                            client.resp3,
                            &mut client.pubsub,
                            PUBSUB_BATCH,
                        );
                    }
                    if client.replication.sync.is_some() {
                        // SYNC/PSYNC: the connection is a replica's from here on.
                        if !flush(&node, &kill, &mut wr, &mut out, client.ack()).await {
                            break 'conn;
                        }
                        let hs = std::mem::take(&mut client.replication);
                        replicas::serve(&node, &mut client, &mut rd, &mut wr, &mut inbuf, hs).await;
                        break 'conn;
                    }
                    if client.monitor && monitor_rx.is_none() {
                        let (tx, rx) = mpsc::channel(stats::MONITOR_QUEUE);
                        node.monitors.add(client.info.id, tx);
                        monitor_rx = Some(rx);
                    } else if !client.monitor {
                        // RESET ended MONITOR.
                        monitor_rx = None;
                    }
                    if after == After::Close {
                        close = true;
                        break;
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    tracing::debug!(client = client.info.id, "protocol error: {}", e.0);
                    Reply::new(&mut out, client.resp3)
                        .error(&format!("ERR Protocol error: {}", e.0));
                    close = true;
                    break;
                }
            }
        }
        let info = &client.info;
        info.query_buf.store(inbuf.len(), Ordering::Relaxed);
        info.output_len.store(out.len(), Ordering::Relaxed);
        info.buffers
            .store(inbuf.capacity() + out.capacity(), Ordering::Relaxed);
        node.clients.account(info);
        // `maxmemory-clients`, with this client's buffers just counted (it may be the one to go).
        crate::node::evict_clients(&node);
        if inbuf.len() > node.query_buffer_limit.load(Ordering::Relaxed) {
            tracing::warn!(
                client = client.info.id,
                "closing client that reached max query buffer length"
            );
            close = true;
        }
        if !out.is_empty() {
            if !flush(&node, &kill, &mut wr, &mut out, client.ack()).await {
                break 'conn;
            }
            // Output is interaction too: a client slowly reading a large reply is not idle.
            client
                .info
                .last_interaction_ms
                .store(commands::now_ms(), Ordering::Relaxed);
        }
        client.info.output_len.store(0, Ordering::Relaxed);
        if out.capacity() > OUT_KEEP {
            // A large reply is written: its buffer goes (Redis frees big reply buffers too).
            out = BytesMut::with_capacity(16 * 1024);
            client
                .info
                .buffers
                .store(inbuf.capacity() + out.capacity(), Ordering::Relaxed);
        }
        node.clients.account(&client.info);
        if let Some(ib) = &inbox
            && pubsub_cost > 0
        {
            ib.sub.written(pubsub_cost);
            pubsub_cost = 0;
        }
        if close {
            break;
        }
    }
    let id = client.info.id;
    node.pubsub.remove_client(&mut client.pubsub, id);
    commands::transactions::unwatch_all(&node, &mut client);
    commands::tracking::disable(&node, &mut client);
    let _ = wr.shutdown().await;
}

/// Waits while the client is blocked (BLPOP & co): re-runs the command on each wake-up until it
/// is served, replies as timed out at the deadline or on CLIENT UNBLOCK, and watches the socket
/// so a client that disconnects leaves nothing behind (input that arrives meanwhile is kept for
/// after). Returns `Close` when the connection must end.
///
/// A subscriber (RESP3) keeps getting its pub/sub messages while it waits, as in Redis.
async fn wait_blocked(
    node: &Arc<Node>,
    client: &mut ClientState,
    conn: Conn<'_>,
    out: &mut BytesMut,
    args: &[Bytes],
) -> After {
    let Conn {
        rd,
        wr,
        inbuf,
        inbox,
    } = conn;
    use crate::commands::blocking::reply_timeout;
    let id = client.info.id;
    let qbuf_limit = node.query_buffer_limit.load(Ordering::Relaxed);
    let kill = client.info.kill.clone();
    let pushes = client.info.pushes.clone();
    // In a cluster, a client blocked on keys of a slot this node stops serving is sent where
    // the slot went (Redis's clusterRedirectBlockedClientIfNeeded).
    let mut redirect_check = tokio::time::interval(Duration::from_millis(100));
    redirect_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let me = client.blocked.as_ref().map(|b| b.waiter.clone());
    let result = loop {
        let Some(b) = client.blocked.as_ref() else {
            break After::Continue;
        };
        let waiter = b.waiter.clone();
        let deadline = b.deadline;
        let expired = sleep_until_some(deadline);
        tokio::select! {
            biased;
            _ = kill.cancelled() => break After::Close,
            _ = node.shutdown.cancelled() => break After::Close,
            _ = waiter.notify.notified() => {
                match waiter.unblocked.load(Ordering::Relaxed) {
                    unblock::TIMEOUT => {
                        reply_timeout(&mut Reply::new(out, client.resp3));
                        break After::Continue;
                    }
                    how @ (unblock::ERROR | unblock::DEMOTED) => {
                        let (msg, close) = unblocked_reason(how);
                        unblocked_error(node, client, out, args, msg);
                        break if close { After::Close } else { After::Continue };
                    }
                    _ => {}
                }
                client.still_blocked = false;
                let seen = waiter.wakes();
                // Woken by a script's push: served once the script is done (its locks), and
                // again if another script took the keys' locks meanwhile.
                let after = loop {
                    node.scripts.wait_end().await;
                    match call(node, client, out, args) {
                        After::ScriptBusy => continue,
                        after => break after,
                    }
                };
                if !client.still_blocked {
                    break after;
                }
                // Re-ran and still waiting: the waiter behind us may be served by what is
                // there (another kind of value). Then whoever woke us may reply.
                let ((), woken) = collect_woken(|| node.store.blocked.pass_on(id));
                client.woken.extend(woken);
                wait_settled(std::mem::take(&mut client.woken), SERVE_WOKEN).await;
                waiter.settled_up_to(seen);
            }
            d = recv_pubsub(inbox) => {
                if let (Some(d), Some(ib)) = (d, inbox.as_mut()) {
                    // `out` is empty here: what came before was flushed before waiting.
                    let mut cost = d.cost();
                    ib.write(out, client.resp3, &mut client.pubsub, d);
                    cost += ib.drain(out, client.resp3, &mut client.pubsub, PUBSUB_BATCH);
                    if !flush(node, &kill, wr, out, client.ack()).await {
                        break After::Close;
                    }
                    ib.sub.written(cost);
                }
            }
            _ = pushes.handed_over.notified(), if inbox.is_none() => {
                *inbox = pushes.take_handed();
            }
            _ = expired => {
                reply_timeout(&mut Reply::new(out, client.resp3));
                break After::Continue;
            }
            _ = redirect_check.tick(), if node.cluster.is_some() => {
                if let Some(r) = blocked_redirect(node, client, args) {
                    Reply::new(out, client.resp3).error(&r.message());
                    break After::Continue;
                }
            }
            r = rd.read_buf(inbuf) => {
                match r {
                    Ok(0) | Err(_) => break After::Close,
                    Ok(n) => {
                        node.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if inbuf.len() > qbuf_limit {
                            break After::Close;
                        }
                    }
                }
            }
        }
    };
    client.blocked = None;
    client.still_blocked = false;
    client.info.blocked.store(false, Ordering::Relaxed);
    // The next waiters of our keys, woken in our place, are served before whoever woke us
    // replies (and so before our own reply).
    let ((), woken) = collect_woken(|| node.store.blocked.unblock(id));
    client.woken.extend(woken);
    wait_settled(std::mem::take(&mut client.woken), SERVE_WOKEN).await;
    if let Some(me) = me {
        me.settled_all();
    }
    result
}

/// A blocked client's error when released by `how` (one of `unblock`), and whether its
/// connection closes after it.
fn unblocked_reason(how: u8) -> (&'static str, bool) {
    if how == unblock::DEMOTED {
        (
            "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
            true,
        )
    } else {
        ("UNBLOCKED client unblocked via CLIENT UNBLOCK", false)
    }
}

/// A blocked command ended by an error (CLIENT UNBLOCK ... ERROR, the node becoming a
/// replica): the reply, counted as the command's failure and in the error stats, as Redis's
/// addReplyError with updateStatsOnUnblock.
fn unblocked_error(
    node: &Node,
    client: &ClientState,
    out: &mut BytesMut,
    args: &[Bytes],
    msg: &str,
) {
    let e = commands::CmdError::Msg(msg.to_string());
    node.stats.note_error(&e);
    if let Ok(cmd) = commands::resolve(args) {
        node.cmd_stats[cmd.id].failed();
    }
    Reply::new(out, client.resp3).error(msg);
}

/// Where a blocked command's keys are served now, when not here: `-MOVED` to the slot's owner,
/// or `-CLUSTERDOWN` (a slot migrating away or being imported keeps its blocked clients, as
/// Redis's).
fn blocked_redirect(
    node: &Node,
    client: &ClientState,
    args: &[Bytes],
) -> Option<crate::cluster::routing::Redirect> {
    let cmd = commands::resolve(args).ok()?;
    let pos = commands::key_positions(cmd.cmd, args);
    let keys: Vec<&[u8]> = pos.iter().map(|&i| &args[i][..]).collect();
    let readonly = client.readonly && cmd.cmd.flags & flags::READONLY != 0;
    node.routing()
        .check_with(&keys, true, |_| true, false, readonly)
        .err()
}

/// WAIT: until `w.replicas` replicas acknowledged `w.offset`, or the deadline; returns how
/// many did.
/// Err: released with an error by CLIENT UNBLOCK ... ERROR or a role change (one of
/// `unblock`); CLIENT UNBLOCK ... TIMEOUT answers the count so far, as a timeout does.
async fn wait_replicas(
    node: &Node,
    kill: &CancellationToken,
    w: crate::server::clients::WaitReplicas,
    waiter: &crate::store::blocking::Waiter,
) -> Result<usize, u8> {
    let expired = sleep_until_some(w.deadline);
    tokio::pin!(expired);
    // Bus replicas and Redis replicas (SYNC/PSYNC) both count.
    let count = || {
        node.cluster
            .as_ref()
            .map_or(0, |c| c.repl.acked_at_least(w.offset))
            + node.replicas.acked_at_least(w.offset)
    };
    // Redis replicas acknowledge once a second by themselves; asked, at once.
    node.replicas.request_acks();
    loop {
        // Made before the count, so an acknowledgement after it wakes us.
        let bus_acked = node.cluster.as_ref().map(|c| c.repl.acked.notified());
        let bus_acked = async {
            match bus_acked {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        let resp_acked = node.replicas.acked.notified();
        let n = count();
        if n >= w.replicas {
            return Ok(n);
        }
        tokio::select! {
            _ = bus_acked => {}
            _ = resp_acked => {}
            _ = &mut expired => return Ok(count()),
            _ = kill.cancelled() => return Ok(n),
            _ = node.shutdown.cancelled() => return Ok(n),
            _ = waiter.notify.notified() => match waiter.unblocked.load(Ordering::Relaxed) {
                unblock::TIMEOUT => return Ok(count()),
                unblock::NONE => {}
                how => return Err(how),
            },
        }
    }
}

/// The connection's halves and buffers a blocked client's wait uses.
struct Conn<'a> {
    rd: &'a mut tokio::net::tcp::OwnedReadHalf,
    wr: &'a mut tokio::net::tcp::OwnedWriteHalf,
    inbuf: &'a mut BytesMut,
    inbox: &'a mut Option<Inbox>,
}

/// Writes and clears `out`; false when the peer is gone or the client was killed meanwhile (a
/// peer that stops reading must not keep a killed client alive in a blocked write). Replies to
/// writes wait for the append-only log to acknowledge them: `ack` is the client's last log
/// position and its id.
async fn flush(
    node: &Node,
    kill: &CancellationToken,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    out: &mut BytesMut,
    (aof_seq, client_id): (u64, u64),
) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = tokio::select! {
        r = async {
            node.store.aof.wait_acked_by(aof_seq, client_id).await;
            wr.write_all(out).await
        } => r.is_ok(),
        _ = kill.cancelled() => false,
    };
    node.stats
        .net_output_bytes
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    out.clear();
    ok
}

fn pause_deadline(node: &Node, client: &ClientState, args: &[Bytes]) -> Option<i64> {
    // Cheap checks first: no pause in force is the common case.
    if !node.pause.may_be_set() {
        return None;
    }
    let now = commands::now_ms();
    node.pause.deadline(true, now)?;
    let writes =
        |c: &commands::CommandRef| c.cmd.flags & (flags::WRITE | flags::MAY_REPLICATE) != 0;
    // As Redis's `is_may_replicate_command`: a write or a command that may replicate, an EXEC
    // whose queue holds one, and a script unless its `#!lua` line says no-writes.
    let is_write = match commands::resolve(args) {
        Ok(c) if c.cmd.name == "exec" => client
            .multi
            .as_ref()
            .is_some_and(|m| m.queue.iter().any(|(q, _)| writes(q))),
        Ok(c) if c.cmd.name == "eval" => {
            writes(c)
                && !args
                    .get(1)
                    .is_some_and(|body| commands::scripting::says_no_writes(body))
        }
        Ok(c) if matches!(c.cmd.name, "evalsha" | "fcall") => {
            writes(c)
                && !args.get(1).is_some_and(|name| {
                    commands::scripting::declared_no_writes(node, c.cmd.name == "fcall", name)
                })
        }
        Ok(c) => writes(c),
        Err(_) => false,
    };
    node.pause.deadline(is_write, now)
}

/// Waits for the pause to end, a tenth of a second at most (the caller asks again).
async fn wait_unpaused(node: &Node, deadline: i64) {
    let wait = (deadline - commands::now_ms()).clamp(0, 100) as u64;
    // A paused client counts as blocked in INFO, as in Redis.
    let _waiting = node.pause.waiting();
    tokio::select! {
        _ = node.pause.unpaused.notified() => {}
        _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        _ = node.shutdown.cancelled() => {}
    }
}

/// CLIENT REPLY OFF|SKIP: drop the replies the client asked not to get. What
/// (P|S)(UN)SUBSCRIBE answer is not a reply but a confirmation pushed to the subscriber (a
/// push in RESP3, an array in RESP2): it still goes out, as in Redis; their errors do not.
fn apply_reply_mode(client: &mut ClientState, out: &mut BytesMut, mark: usize, args: &[Bytes]) {
    let confirms = [
        "subscribe",
        "psubscribe",
        "ssubscribe",
        "unsubscribe",
        "punsubscribe",
        "sunsubscribe",
    ]
    .iter()
    .any(|c| args[0].eq_ignore_ascii_case(c.as_bytes()));
    let drop = |out: &mut BytesMut| {
        if !(confirms && out.len() > mark && out[mark] != b'-') {
            out.truncate(mark);
        }
    };
    match client.reply_mode {
        ReplyMode::On => {}
        ReplyMode::Off => drop(out),
        ReplyMode::SkipNext => {
            drop(out);
            client.reply_mode = ReplyMode::Skip;
        }
        ReplyMode::Skip => {
            drop(out);
            client.reply_mode = ReplyMode::On;
        }
    }
}
