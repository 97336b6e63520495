//! A node: the shared state every connection and background task works with, and its
//! lifecycle (bind, serve, background cron, graceful shutdown).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::routing::{EndpointType, Routing};
use crate::cluster::state::Endpoint;
use crate::cluster::{Cluster, ClusterConfig};
use crate::config::Config;
use crate::observe::events::Events;
use crate::pubsub::PubSub;
use crate::pubsub::notify::Notifier;
use crate::server::clients::ClientRegistry;
use crate::server::stats::{CmdStat, LatencyMonitor, Monitors, SlowLog, Stats};
use crate::store::Store;

/// CLIENT PAUSE state: until when, and whether only writes wait.
#[derive(Default)]
pub struct Pause {
    /// The store's [`Store::expiry_held_until`]: nothing expires while clients are paused.
    until_ms: Arc<AtomicI64>,
    writes_only: AtomicBool,
    /// FAILOVER's pause of writes (Redis's PAUSE_DURING_FAILOVER): apart from CLIENT PAUSE, so
    /// CLIENT UNPAUSE does not lift it and its end does not lift a client's pause.
    failover: AtomicBool,
    /// Writes paused while the node saves its last snapshot and stops (see
    /// `persist::save_before_shutdown`).
    stopping: AtomicBool,
    pub unpaused: Notify,
    /// Clients waiting for the pause to end (INFO counts them in `blocked_clients`).
    waiting: Arc<AtomicUsize>,
}

/// One client waiting for a pause to end, while it lives.
pub struct PauseWait(Arc<AtomicUsize>);

impl Drop for PauseWait {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pause {
    /// A pause that holds `store`'s expiry while it lasts.
    pub fn for_store(store: &Store) -> Pause {
        Pause {
            until_ms: store.expiry_held_until.clone(),
            ..Pause::default()
        }
    }

    pub fn waiting(&self) -> PauseWait {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        PauseWait(self.waiting.clone())
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub fn pause(&self, until_ms: i64, writes_only: bool) {
        self.writes_only.store(writes_only, Ordering::Relaxed);
        // Redis: a new pause never shortens one already in force.
        self.until_ms.fetch_max(until_ms, Ordering::Relaxed);
    }

    pub fn unpause(&self) {
        self.until_ms.store(0, Ordering::Relaxed);
        self.unpaused.notify_waiters();
    }

    /// FAILOVER's write pause, on or off.
    pub fn set_failover(&self, on: bool) {
        self.failover.store(on, Ordering::Relaxed);
        if !on {
            self.unpaused.notify_waiters();
        }
    }

    /// The write pause of a node saving its last snapshot before it stops, on or off.
    pub fn set_stopping(&self, on: bool) {
        self.stopping.store(on, Ordering::Relaxed);
        if !on {
            self.unpaused.notify_waiters();
        }
    }

    /// Whether a pause may be in force (no clock read: a pause that ran out is cleared by the
    /// next [`Pause::deadline`]).
    pub fn may_be_set(&self) -> bool {
        self.until_ms.load(Ordering::Relaxed) != 0
            || self.failover.load(Ordering::Relaxed)
            || self.stopping.load(Ordering::Relaxed)
    }

    /// If a command must wait, the deadline it waits for (then asks again: a failover's pause
    /// has none, and answers a tenth of a second ahead).
    pub fn deadline(&self, is_write: bool, now_ms: i64) -> Option<i64> {
        if is_write
            && (self.failover.load(Ordering::Relaxed) || self.stopping.load(Ordering::Relaxed))
        {
            return Some(now_ms + 100);
        }
        let until = self.until_ms.load(Ordering::Relaxed);
        if until <= now_ms {
            if until != 0 {
                // Ran out: later commands skip the clock (a new pause may have come in).
                let _ =
                    self.until_ms
                        .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
            return None;
        }
        if self.writes_only.load(Ordering::Relaxed) && !is_write {
            return None;
        }
        Some(until)
    }
}

pub struct Node {
    pub config: RwLock<Config>,
    pub store: Store,
    pub clients: ClientRegistry,
    pub stats: Stats,
    pub cmd_stats: Box<[CmdStat]>,
    pub slowlog: SlowLog,
    pub latency: LatencyMonitor,
    pub monitors: Monitors,
    /// Replicas fed over client connections (Redis's SYNC/PSYNC).
    pub replicas: crate::server::replicas::Replicas,
    /// The master this node follows over Redis's protocol (REPLICAOF host port).
    pub upstream: crate::server::upstream::Upstream,
    /// FAILOVER in progress, if any (outside cluster mode).
    pub failover: crate::server::failover::Failover,
    pub pubsub: Arc<PubSub>,
    /// Keeps the keyspace-notification sink in step with `notify-keyspace-events`.
    pub notifier: Notifier,
    pub pause: Pause,
    pub run_id: String,
    pub started: Instant,
    pub start_unix_ms: i64,
    pub resp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Cancelled to stop the node (SIGTERM, SHUTDOWN).
    pub shutdown: CancellationToken,
    /// The runtime the node started on. Client connections run on threads of their own (see
    /// `crate::server`); what a command starts in the background runs here.
    pub runtime: tokio::runtime::Handle,
    /// Set once the node serves clients with its data loaded (`/readyz`).
    pub ready: AtomicBool,
    /// `/ws` live-feed figures (for `/metrics`).
    pub feed: crate::http::ws::FeedStats,
    /// Cluster state and bus, when `cluster.enabled`.
    pub cluster: Option<Arc<Cluster>>,
    pub bus_addr: Option<SocketAddr>,
    /// Snapshot and append-only log state.
    pub persist: crate::persist::Persist,
    /// MIGRATE's connections to its targets.
    pub migrate_sockets: crate::commands::migrate::SocketCache,
    /// Lua scripting (EVAL, SCRIPT).
    pub scripts: crate::commands::scripting::Scripts,
    maxmemory: AtomicU64,
    /// `maxmemory-clients` in bytes (0: no limit), read after every batch of commands.
    maxmemory_clients: AtomicU64,
    /// `min-replicas-to-write` and `min-replicas-max-lag`, read by every write.
    min_replicas: [AtomicI64; 2],
    /// `cluster-allow-reads-when-down`, read by keyed commands while the cluster is down.
    cluster_reads_when_down: AtomicBool,
    /// `proto-max-bulk-len`, read by every connection's parser before each command (a CONFIG
    /// SET applies to connections already open, as Redis's does).
    pub proto_max_bulk_len: AtomicUsize,
    /// `timeout` (seconds; 0: never), read by the cron that closes idle clients, and
    /// `client-query-buffer-limit`, read by connections as they go: a CONFIG SET applies to
    /// connections already open, as Redis's clientsCron does.
    pub client_timeout_secs: AtomicU64,
    pub query_buffer_limit: AtomicUsize,
    /// When memory was last read for `maxmemory` (ms), so it is read at most once a millisecond.
    memory_read_ms: AtomicI64,
    /// The `requirepass` last given to the default user.
    requirepass: Mutex<Option<String>>,
    pub acl: crate::acl::Acl,
}

/// Where memory stands against `maxmemory` (see [`Node::perform_evictions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    Fits,
    /// Over the limit, keys being evicted: writes go on, as Redis's EVICT_RUNNING.
    Evicting,
    /// Over the limit with nothing to evict: writes get -OOM.
    Full,
}

/// How long one call evicts before it lets the command run, by `maxmemory-eviction-tenacity`
/// (Redis's evictionTimeLimitUs): 0-10 step 50 µs up to 500 µs (the default, 10), then 15% more
/// per step (about two minutes at 99), and no limit at 100. What is left over the limit is
/// evicted by the next commands and the cron.
fn eviction_slice(tenacity: i64) -> Option<Duration> {
    match tenacity {
        ..=10 => Some(Duration::from_micros(50 * tenacity.max(0) as u64)),
        11..=99 => Some(Duration::from_secs_f64(
            500e-6 * 1.15f64.powi(tenacity as i32 - 10),
        )),
        _ => None,
    }
}

impl Node {
    /// Whether a new connection must authenticate: the default user has a password or is off
    /// (`requirepass`, or ACL SETUSER default).
    /// The ID of the replication stream this node's data follows (`master_replid`).
    pub fn replid(&self) -> String {
        match (&self.cluster, self.upstream.link()) {
            (Some(c), _) => c.repl.replid(),
            (None, Some(l)) if !l.replid.lock().is_empty() => l.replid.lock().clone(),
            (None, _) => self
                .upstream
                .own_replid()
                .unwrap_or_else(|| self.run_id.clone()),
        }
    }

    pub fn requires_pass(&self) -> bool {
        self.acl.auth_required()
    }

    pub fn over_maxmemory(&self) -> bool {
        let max = self.maxmemory.load(Ordering::Relaxed);
        max > 0 && self.stats.used_memory.load(Ordering::Relaxed) as u64 > max
    }

    /// Before a command, and at the cron's pace (Redis's performEvictions): with `maxmemory`
    /// set, reads memory (at most once a millisecond) and, over the limit, evicts keys by
    /// `maxmemory-policy` until it is under again, for up to the tenacity's time slice at a
    /// time ([`eviction_slice`]; the next commands and the cron go on). Only `Full` refuses writes: over the limit with nothing
    /// evictable, or `noeviction`. A replica evicts nothing: its master's deletions reach it
    /// (Redis's `replica-ignore-maxmemory`). Call with no shard locked.
    pub fn perform_evictions(&self, now_ms: i64) -> Memory {
        self.evict(now_ms, false)
    }

    /// [`Node::perform_evictions`] reading memory now, even if it was read this millisecond:
    /// for a client that must hear of the keys evicted for its command before the reply (a
    /// write just before it in the same millisecond may have grown memory).
    pub fn perform_evictions_now(&self, now_ms: i64) -> Memory {
        self.evict(now_ms, true)
    }

    fn evict(&self, now_ms: i64, fresh: bool) -> Memory {
        if self.maxmemory.load(Ordering::Relaxed) == 0 {
            return Memory::Fits;
        }
        if fresh {
            self.memory_read_ms.store(now_ms, Ordering::Relaxed);
            self.stats.refresh_memory();
        }
        // A load first: the common case (read already this millisecond) writes nothing.
        if self.memory_read_ms.load(Ordering::Relaxed) != now_ms
            && self.memory_read_ms.swap(now_ms, Ordering::Relaxed) != now_ms
        {
            self.stats.refresh_memory();
        }
        if !self.over_maxmemory() {
            return Memory::Fits;
        }
        let (policy, samples, slice) = {
            let c = self.config.read();
            (
                crate::store::evict::Policy::parse(&c.maxmemory_policy),
                c.get_int("maxmemory-samples").max(1) as usize,
                eviction_slice(c.get_int("maxmemory-eviction-tenacity")),
            )
        };
        // A replica evicts nothing: its master's stream deletes keys (as Redis's replicas).
        if self.upstream.is_replica()
            || self
                .cluster
                .as_ref()
                .is_some_and(|c| !c.state.lock().me().is_master())
        {
            return Memory::Fits;
        }
        let started = Instant::now();
        while self.store.evict_one(policy, samples, now_ms) {
            self.stats.refresh_memory();
            if !self.over_maxmemory() {
                return Memory::Fits;
            }
            if slice.is_some_and(|limit| started.elapsed() > limit) {
                return Memory::Evicting;
            }
        }
        Memory::Full
    }

    /// `min-replicas-to-write` with `min-replicas-max-lag`, when both are set on a master:
    /// (replicas wanted, good replicas now). Standalone, a node has no replicas.
    /// `cluster-allow-reads-when-down`.
    pub fn cluster_reads_when_down(&self) -> bool {
        self.cluster_reads_when_down.load(Ordering::Relaxed)
    }

    pub fn min_replicas(&self) -> Option<(usize, usize)> {
        let want = self.min_replicas[0].load(Ordering::Relaxed);
        let max_lag = self.min_replicas[1].load(Ordering::Relaxed);
        // A replica of a master (REPLICAOF) has no such check (Redis's
        // checkGoodReplicasStatus): its writes get -READONLY, or run with
        // `replica-read-only no`.
        if want <= 0 || max_lag <= 0 || self.upstream.is_replica() {
            return None;
        }
        let now = crate::commands::now_ms();
        let good = match &self.cluster {
            None => 0,
            Some(c) if !c.state.lock().me().is_master() => return None,
            Some(c) => c.repl.good_replicas(max_lag, now),
        } + self.replicas.good(max_lag, now);
        Some((want as usize, good))
    }

    /// Re-reads the settings the hot path keeps in atomics (after start and CONFIG SET).
    pub fn apply_config(&self) {
        let c = self.config.read();
        self.maxmemory.store(c.maxmemory, Ordering::Relaxed);
        self.maxmemory_clients
            .store(c.maxmemory_clients.bytes(c.maxmemory), Ordering::Relaxed);
        self.min_replicas[0].store(c.get_int("min-replicas-to-write"), Ordering::Relaxed);
        self.min_replicas[1].store(c.get_int("min-replicas-max-lag"), Ordering::Relaxed);
        self.proto_max_bulk_len
            .store(c.proto_max_bulk_len, Ordering::Relaxed);
        self.query_buffer_limit
            .store(c.client_query_buffer_limit, Ordering::Relaxed);
        self.client_timeout_secs
            .store(c.timeout_secs, Ordering::Relaxed);
        self.store
            .aof
            .set_backlog_limit(c.get_int("repl-backlog-size").max(0) as usize);
        // `requirepass` is the default user's password; other settings leave what ACL SETUSER
        // made of it alone.
        {
            let mut applied = self.requirepass.lock();
            if *applied != c.requirepass {
                self.acl.set_default_password(c.requirepass.as_deref());
                applied.clone_from(&c.requirepass);
            }
        }
        self.acl.pubsub_default_all.store(
            c.get("acl-pubsub-default") == "allchannels",
            Ordering::Relaxed,
        );
        self.slowlog
            .threshold_us
            .store(c.slowlog_log_slower_than, Ordering::Relaxed);
        self.slowlog
            .max_len
            .store(c.slowlog_max_len, Ordering::Relaxed);
        self.latency
            .threshold_ms
            .store(c.latency_monitor_threshold_ms, Ordering::Relaxed);
        for (limit, v) in self
            .store
            .aof
            .replica_limits
            .iter()
            .zip(c.replica_output_limit)
        {
            limit.store(v, Ordering::Relaxed);
        }
        let [hard, soft, secs] = c.pubsub_output_limit;
        let limits = &self.pubsub.limits;
        limits.hard.store(hard, Ordering::Relaxed);
        limits.soft.store(soft, Ordering::Relaxed);
        limits.soft_seconds.store(secs, Ordering::Relaxed);
        self.notifier
            .apply(c.notify_keyspace_events, &self.store, &self.pubsub);
        let lazyfree = &self.store.lazyfree;
        for (flag, name) in [
            (&lazyfree.user_del, "lazyfree-lazy-user-del"),
            (&lazyfree.lazy_expire, "lazyfree-lazy-expire"),
            (&lazyfree.lazy_eviction, "lazyfree-lazy-eviction"),
            (&lazyfree.lazy_server_del, "lazyfree-lazy-server-del"),
        ] {
            flag.store(c.get_bool(name), Ordering::Relaxed);
        }
        self.store.tracking.max_keys.store(
            c.get_int("tracking-table-max-keys").max(0) as usize,
            Ordering::Relaxed,
        );
        let lfu = &self.store.lfu;
        lfu.on
            .store(c.maxmemory_policy.contains("lfu"), Ordering::Relaxed);
        lfu.log_factor
            .store(c.get_int("lfu-log-factor") as u32, Ordering::Relaxed);
        lfu.decay_minutes
            .store(c.get_int("lfu-decay-time") as u32, Ordering::Relaxed);
        let (h, st) = (&self.store.hash_limits, &self.store.set_limits);
        h.max_listpack_entries
            .store(c.hash_max_listpack_entries, Ordering::Relaxed);
        h.max_listpack_value
            .store(c.hash_max_listpack_value, Ordering::Relaxed);
        st.max_intset_entries
            .store(c.set_max_intset_entries, Ordering::Relaxed);
        self.cluster_reads_when_down.store(
            c.get_bool("cluster.allow-reads-when-down"),
            Ordering::Relaxed,
        );
        self.scripts
            .busy_threshold_ms
            .store(c.get_int("busy-reply-threshold"), Ordering::Relaxed);
        if let Some(cluster) = &self.cluster {
            let r = c.get_int("cluster.replicas").max(0) as usize;
            let mut st = cluster.state.lock();
            if st.replicas_per_shard != r {
                // As a membership change: the distribution acts once the delay has passed.
                st.replicas_per_shard = r;
                st.membership_changed_ms = crate::commands::now_ms();
            }
        }
        let sl = &self.store.stream_limits;
        sl.max_bytes.store(
            c.get_int("stream-node-max-bytes").max(0) as usize,
            Ordering::Relaxed,
        );
        sl.max_entries.store(
            c.get_int("stream-node-max-entries").max(0) as usize,
            Ordering::Relaxed,
        );
        // (The routing is rebuilt under the cluster's lock: not with the settings held.)
        drop(c);
        if let Some(cluster) = &self.cluster {
            cluster.refresh_endpoint_type(|| endpoint_type(&self.config.read()));
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Who serves which slot (standalone: everything here).
    pub fn routing(&self) -> Arc<Routing> {
        static STANDALONE: std::sync::OnceLock<Arc<Routing>> = std::sync::OnceLock::new();
        match &self.cluster {
            Some(c) => c.routing(),
            None => STANDALONE
                .get_or_init(|| Arc::new(Routing::standalone()))
                .clone(),
        }
    }
}

/// A running node: its addresses, and the way to stop it and wait for it.
pub struct NodeHandle {
    pub node: Arc<Node>,
    tasks: TaskTracker,
}

impl NodeHandle {
    pub fn resp_addr(&self) -> SocketAddr {
        self.node.resp_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.node.http_addr
    }

    /// SIGTERM's first step (as SHUTDOWN's): the final snapshot, when one is due, taken before
    /// the node stops; an error means it could not be saved and the node must keep running
    /// (see `persist::save_before_shutdown`).
    pub async fn save_before_shutdown(&self) -> Result<(), String> {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || crate::persist::save_before_shutdown(&node, 0))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    }

    /// Resolves when the node was asked to stop (signal handler or SHUTDOWN).
    pub async fn stopped(&self) {
        self.node.shutdown.cancelled().await
    }

    /// Stops accepting, lets connections finish the replies in flight, and waits for every task
    /// (bounded by `shutdown-timeout`).
    pub async fn shutdown(self) {
        self.node.shutdown.cancel();
        self.tasks.close();
        let limit = Duration::from_secs(self.node.config.read().shutdown_timeout_secs.max(1));
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: tasks still running after {limit:?}; exiting anyway");
        }
        // Flush the log, and the final snapshot when `save` rules ask for one.
        let node = self.node.clone();
        let _ = tokio::task::spawn_blocking(move || crate::persist::on_shutdown(&node)).await;
    }

    /// Why the node stopped on its own, if it failed (a data file it could not load).
    pub fn failure(&self) -> Option<String> {
        self.node.persist.fatal.lock().clone()
    }
}

pub fn random_run_id() -> String {
    (0..40)
        .map(|_| format!("{:x}", rand::random_range(0..16u8)))
        .collect()
}

/// A listener on `host:port` (the first address it resolves to) with room for `backlog`
/// connections not yet accepted (`tcp-backlog`; tokio's own bind always asks for 1024).
async fn listen(host: &str, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to no address")))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Binds the listeners and starts serving. Ports 0 are picked by the OS.
pub async fn start(mut config: Config) -> anyhow::Result<NodeHandle> {
    let replicaof = replicaof_setting(&config)?;
    let backlog = config.get_int("tcp-backlog").clamp(1, u32::MAX as i64) as u32;
    let resp = listen(&config.bind, config.port, backlog)
        .await
        .with_context(|| format!("cannot listen on {}:{} (RESP)", config.bind, config.port))?;
    let http = TcpListener::bind((config.bind.as_str(), config.http_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (HTTP)",
                config.bind, config.http_port
            )
        })?;
    let resp_addr = resp.local_addr()?;
    let http_addr = http.local_addr()?;
    crate::persist::name_files_by_port(&mut config, resp_addr.port());
    let mut bus = None;
    let mut cluster = None;
    if config.cluster_enabled {
        let (listener, c) = open_cluster(&config, resp_addr, http_addr).await?;
        bus = Some(listener);
        cluster = Some(Arc::new(c));
    }
    let ncmds = crate::commands::table().all.len();
    let events = Arc::new(Events::default());
    let store = Store::new(config.databases, events);
    let node = Arc::new(Node {
        pause: Pause::for_store(&store),
        store,
        clients: ClientRegistry::default(),
        stats: Stats::default(),
        cmd_stats: (0..ncmds).map(|_| CmdStat::default()).collect(),
        slowlog: SlowLog::default(),
        latency: LatencyMonitor::default(),
        monitors: Monitors::default(),
        replicas: Default::default(),
        upstream: Default::default(),
        failover: Default::default(),
        pubsub: Arc::new(PubSub::default()),
        notifier: Notifier::default(),
        run_id: random_run_id(),
        started: Instant::now(),
        start_unix_ms: crate::commands::now_ms(),
        resp_addr,
        http_addr,
        bus_addr: bus.as_ref().and_then(|l: &TcpListener| l.local_addr().ok()),
        cluster,
        persist: crate::persist::Persist::new(crate::commands::now_ms()),
        migrate_sockets: Default::default(),
        scripts: Default::default(),
        shutdown: CancellationToken::new(),
        runtime: tokio::runtime::Handle::current(),
        ready: AtomicBool::new(false),
        feed: Default::default(),
        maxmemory: AtomicU64::new(0),
        maxmemory_clients: AtomicU64::new(0),
        min_replicas: Default::default(),
        cluster_reads_when_down: AtomicBool::new(false),
        proto_max_bulk_len: AtomicUsize::new(config.proto_max_bulk_len),
        client_timeout_secs: AtomicU64::new(config.timeout_secs),
        query_buffer_limit: AtomicUsize::new(config.client_query_buffer_limit),
        memory_read_ms: AtomicI64::new(0),
        requirepass: Mutex::new(None),
        acl: crate::acl::Acl::default(),
        config: RwLock::new(config),
    });
    node.apply_config();
    // `aclfile`: its users replace the default one (and `requirepass`), as in Redis, which
    // refuses to start when the file is missing or wrong.
    let aclfile = node.config.read().get("aclfile").to_string();
    if !aclfile.is_empty() {
        node.acl
            .load_file(&aclfile)
            .map_err(|e| anyhow::anyhow!("Aborting start-up because of ACL errors: {e}"))?;
        tracing::info!(file = %aclfile, users = node.acl.users().len(), "ACL users loaded");
    }
    // `user` lines of the configuration (Redis's `user` directive), never with an ACL file.
    let users = node.config.read().get("user").to_string();
    if !users.trim().is_empty() {
        if !aclfile.is_empty() {
            anyhow::bail!(
                "Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both."
            );
        }
        node.acl
            .add_configured(&users)
            .map_err(|e| anyhow::anyhow!("Aborting start-up because of ACL errors: {e}"))?;
        tracing::info!(
            users = node.acl.users().len(),
            "ACL users of the configuration loaded"
        );
    }
    node.stats.refresh_memory();
    // Decided before the listeners start, so no client is served before it knows.
    let to_load = crate::persist::has_data_to_load(&node);
    node.persist.loading.store(to_load, Ordering::Release);
    let tasks = TaskTracker::new();
    tasks.spawn(crate::server::accept_loop(
        node.clone(),
        resp,
        tasks.clone(),
    ));
    tasks.spawn(crate::http::serve(node.clone(), http, tasks.clone()));
    tasks.spawn(cron(node.clone()));
    if let Some(listener) = bus {
        tasks.spawn(crate::cluster::bus::serve(node.clone(), listener));
        tasks.spawn(crate::cluster::run(node.clone()));
        tasks.spawn(crate::cluster::bus::run_pubsub(node.clone()));
    }
    // `replicaof`: the master's copy replaces the data once ours is loaded.
    let follow = move |n: &Arc<Node>| {
        if let Some((host, port)) = replicaof {
            n.upstream.follow(n, host, port);
        }
    };
    if to_load {
        // Clients are answered meanwhile (`-LOADING`, INFO's `loading:1`); `/readyz` says
        // not ready until the data is in. A file that cannot be loaded stops the node.
        let n = node.clone();
        tasks.spawn(async move {
            let loader = n.clone();
            let result =
                tokio::task::spawn_blocking(move || crate::persist::load_and_open(&loader))
                    .await
                    .map_err(|e| anyhow::anyhow!("the loader panicked: {e}"))
                    .and_then(|r| r);
            match result {
                Ok(()) => {
                    n.ready.store(true, Ordering::Release);
                    tracing::info!("Ready to accept connections");
                    follow(&n);
                }
                Err(e) => {
                    tracing::error!("{e:#}");
                    *n.persist.fatal.lock() = Some(format!("{e:#}"));
                    n.shutdown.cancel();
                }
            }
        });
    } else {
        crate::persist::load_and_open(&node)?;
        node.ready.store(true, Ordering::Release);
        tracing::info!(resp = %node.resp_addr, http = %node.http_addr, "Ready to accept connections");
        follow(&node);
    }
    Ok(NodeHandle { node, tasks })
}

/// The `replicaof` setting ("host port"), checked before anything starts.
/// `cluster-preferred-endpoint-type`.
fn endpoint_type(config: &Config) -> EndpointType {
    match config.get("cluster.preferred-endpoint-type") {
        "hostname" => EndpointType::Hostname,
        "unknown-endpoint" => EndpointType::Unknown,
        _ => EndpointType::Ip,
    }
}

fn replicaof_setting(config: &Config) -> anyhow::Result<Option<(String, u16)>> {
    let raw = config.get("replicaof").trim().to_string();
    if raw.is_empty() {
        return Ok(None);
    }
    if config.cluster_enabled {
        anyhow::bail!(
            "replicaof needs cluster-enabled no (cluster replicas are made with CLUSTER REPLICATE or cluster-replicas)"
        );
    }
    let mut words = raw.split_whitespace();
    match (
        words.next(),
        words.next().map(str::parse::<u16>),
        words.next(),
    ) {
        (Some(host), Some(Ok(port)), None) => Ok(Some((host.to_string(), port))),
        _ => anyhow::bail!("replicaof must be \"host port\", not {raw:?}"),
    }
}

/// Binds the bus and loads (or creates) the cluster state.
async fn open_cluster(
    config: &Config,
    resp: SocketAddr,
    http: SocketAddr,
) -> anyhow::Result<(TcpListener, Cluster)> {
    let bus_port = match config.get_int("cluster.bus-port") as u16 {
        0 if config.port == 0 => 0,
        0 => config
            .port
            .checked_add(10000)
            .context("port + 10000 is not a valid bus port; set cluster.bus-port")?,
        p => p,
    };
    let listener = TcpListener::bind((config.bind.as_str(), bus_port))
        .await
        .with_context(|| format!("cannot listen on {}:{bus_port} (cluster bus)", config.bind))?;
    let bus = listener.local_addr()?;
    let announce_ip = config.get("cluster.announce-ip").to_string();
    let ip_announced = !announce_ip.is_empty();
    let ip = if ip_announced {
        announce_ip
    } else if !resp.ip().is_unspecified() {
        resp.ip().to_string()
    } else {
        String::new()
    };
    let or = |v: i64, d: u16| if v == 0 { d } else { v as u16 };
    let me = Endpoint {
        ip,
        port: or(config.get_int("cluster.announce-port"), resp.port()),
        bus_port: or(config.get_int("cluster.announce-bus-port"), bus.port()),
        hostname: config.get("cluster.announce-hostname").to_string(),
        http_port: http.port(),
    };
    let file = match config.get("cluster.config-file") {
        "" => format!("nodes-{}.conf", resp.port()),
        f => f.to_string(),
    };
    let dir = std::path::Path::new(&config.dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create dir {}", config.dir))?;
    let cfg = ClusterConfig {
        node_timeout_ms: config.get_int("cluster.node-timeout"),
        seeds: config
            .get("cluster.seeds")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        auto_assign: config.get_bool("cluster.auto-assign"),
        announce_ip: config.get("cluster.announce-ip").to_string(),
        announce_port: config.get_int("cluster.announce-port") as u16,
        announce_bus_port: config.get_int("cluster.announce-bus-port") as u16,
        announce_hostname: config.get("cluster.announce-hostname").to_string(),
        endpoint_type: endpoint_type(config),
        require_full_coverage: config.get_bool("cluster.require-full-coverage"),
        secret: Some(config.get("cluster.secret").to_string()).filter(|s| !s.is_empty()),
        rebalance_delay_ms: config.get_int("cluster.rebalance-delay"),
        replicas: config.get_int("cluster.replicas").max(0) as usize,
        replica_no_failover: config.get_bool("cluster.replica-no-failover"),
        config_file: dir.join(file),
    };
    let cluster = Cluster::open(cfg, me, ip_announced, crate::commands::now_ms())?;
    Ok((listener, cluster))
}

/// `maxmemory-clients`: disconnects the clients using the most memory while they use more
/// than the limit together. Checked after every batch of commands a connection runs (its
/// buffers were just counted) and each cron tick.
/// `timeout`: closes the clients idle longer (no command since), as Redis's
/// clientsCronHandleTimeout: not replicas, MONITORs, subscribers or blocked clients (a
/// blocking command or WAIT).
fn close_idle_clients(node: &Node, now_ms: i64) {
    let secs = node.client_timeout_secs.load(Ordering::Relaxed);
    // (Not while a script runs: the clients waiting for it are not idle, as Redis's cron
    // does not run meanwhile.)
    if secs == 0 || node.scripts.is_running() {
        return;
    }
    for c in node.clients.snapshot() {
        let exempt = c.replica.load(Ordering::Relaxed)
            || c.monitor.load(Ordering::Relaxed)
            || c.blocked.load(Ordering::Relaxed)
            || c.client_type() == crate::server::clients::ClientType::PubSub;
        let idle_ms = now_ms - c.last_interaction_ms.load(Ordering::Relaxed);
        if !exempt && idle_ms > secs as i64 * 1000 && !c.kill.is_cancelled() {
            tracing::debug!(client = c.id, "closing idle client");
            c.kill.cancel();
        }
    }
}

pub fn evict_clients(node: &Node) {
    let limit = node.maxmemory_clients.load(Ordering::Relaxed);
    if limit == 0 || node.clients.memory() as u64 <= limit {
        return;
    }
    for c in node.clients.evict_over(limit as usize) {
        node.stats.evicted_clients.fetch_add(1, Ordering::Relaxed);
        tracing::info!(client = c.id, addr = %c.addr, memory = c.memory(), limit, "client evicted: maxmemory-clients reached");
    }
}

pub use crate::store::off_worker;

/// Background work at `hz`: active expiry, memory figures.
async fn cron(node: Arc<Node>) {
    let mut last_idle_check_s = 0;
    loop {
        let hz = node.config.read().hz.max(1);
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(1000 / hz as u64)) => {}
        }
        if node.persist.is_loading() {
            // Nothing expires while the data loads: the log replays expirations itself.
            continue;
        }
        crate::persist::cron(&node);
        node.migrate_sockets.close_idle();
        // Idle clients, checked once a second (their idle time is in seconds).
        let now_s = crate::commands::now_ms() / 1000;
        if now_s != last_idle_check_s {
            last_idle_check_s = now_s;
            close_idle_clients(&node, crate::commands::now_ms());
        }
        // A running script holds the shards: expiry and eviction wait for the next tick (as
        // Redis's cron waits for a script), and a script that starts meanwhile blocks a
        // thread outside the runtime's workers, not one of them.
        if node.scripts.is_running() {
            continue;
        }
        let started = Instant::now();
        let now = crate::commands::now_ms();
        // Up to 16 rounds per shard and db per tick keeps one tick short while still letting
        // active expiry outpace a steady stream of expiring keys.
        if node.store.active_expire.load(Ordering::Relaxed) {
            off_worker(|| node.store.active_expire_cycle(now, 16));
        }
        let ms = started.elapsed().as_millis() as u64;
        let threshold = node.config.read().latency_monitor_threshold_ms;
        if threshold > 0 && ms >= threshold {
            node.latency.add("expire-cycle", now / 1000, ms);
        }
        node.stats.refresh_memory();
        // Eviction goes on between commands too (Redis's eviction timer).
        off_worker(|| node.perform_evictions(now));
        // And client tracking's table is kept under `tracking-table-max-keys` at the cron's
        // pace too (Redis's trackingLimitUsedSlots in serverCron): a lowered limit tells the
        // clients of the keys forgotten without waiting for a command.
        node.store.tracking.enforce_limit();
        evict_clients(&node);
        node.stats.sample_ops();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_slices_follow_redis_tenacity() {
        assert_eq!(eviction_slice(0), Some(Duration::ZERO));
        assert_eq!(eviction_slice(10), Some(Duration::from_micros(500)));
        let eleven = eviction_slice(11).unwrap();
        assert!((eleven.as_secs_f64() - 575e-6).abs() < 1e-9, "{eleven:?}");
        // About two minutes at 99, as Redis's comment says.
        let most = eviction_slice(99).unwrap().as_secs_f64();
        assert!((100.0..130.0).contains(&most), "{most}");
        assert_eq!(eviction_slice(100), None);
    }
}
