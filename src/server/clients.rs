//! The client registry: one shared record per connection (what CLIENT LIST shows, and the
//! handle CLIENT KILL uses), and the connection-local state commands change (db, protocol,
//! MULTI queue, reply mode).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::commands::CommandRef;
use crate::node::Node;
use crate::pubsub::{ClientSubs, Pushes};
use crate::store::watch::Watcher;

/// What other connections may read or signal about a client.
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub name: Mutex<Option<Bytes>>,
    pub db: AtomicUsize,
    pub resp: AtomicU8,
    pub last_interaction_ms: AtomicI64,
    /// Index of the last command in the command table.
    pub last_cmd: AtomicUsize,
    pub multi_len: AtomicI64,
    pub monitor: AtomicBool,
    /// A replica fed over this connection (SYNC/PSYNC; CLIENT LIST flag `S`).
    pub replica: AtomicBool,
    pub no_evict: AtomicBool,
    /// Waiting in a blocking command (CLIENT LIST flag `b`).
    pub blocked: AtomicBool,
    pub query_buf: AtomicUsize,
    pub output_len: AtomicUsize,
    /// Bytes the connection's input and output buffers have allocated, as of its last batch
    /// (CLIENT LIST `tot-mem`; what `maxmemory-clients` counts).
    pub buffers: AtomicUsize,
    /// What the registry's total counts for this client (see [`ClientRegistry::account`]).
    counted: AtomicUsize,
    /// Channels, patterns and shard channels subscribed (CLIENT LIST `sub`, `psub`, `ssub`).
    pub subscriptions: Arc<[AtomicUsize; 3]>,
    /// Cancelled to disconnect the client (CLIENT KILL, shutdown).
    pub kill: CancellationToken,
    /// How other clients' actions reach this one (pub/sub, tracking invalidations).
    pub pushes: Arc<Pushes>,
    /// Client tracking: the client invalidations go to (0: this one), -1 when tracking is
    /// off (CLIENT LIST `redir`).
    pub tracking_redirect: AtomicI64,
    /// Client tracking in broadcast mode (CLIENT LIST flag `B`).
    pub tracking_bcast: AtomicBool,
    /// The ACL user it is authenticated as (CLIENT LIST `user`, ACL DELUSER).
    pub user: Mutex<Arc<str>>,
}

/// Redis's client classes, as `CLIENT LIST TYPE` and `CLIENT KILL TYPE` select them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Normal,
    PubSub,
    Replication,
}

impl ClientInfo {
    /// A client with any subscription is a pub/sub client (Redis's `getClientType`).
    pub fn client_type(&self) -> ClientType {
        if self.replica.load(Ordering::Relaxed) {
            ClientType::Replication
        } else if self
            .subscriptions
            .iter()
            .any(|n| n.load(Ordering::Relaxed) > 0)
        {
            ClientType::PubSub
        } else {
            ClientType::Normal
        }
    }

    /// The memory `maxmemory-clients` counts for this client: its buffers.
    pub fn memory(&self) -> usize {
        let used = self.query_buf.load(Ordering::Relaxed) + self.output_len.load(Ordering::Relaxed);
        self.buffers.load(Ordering::Relaxed).max(used)
    }

    pub fn note_command(&self, cmd_id: usize, now_ms: i64) {
        self.last_cmd.store(cmd_id, Ordering::Relaxed);
        self.last_interaction_ms.store(now_ms, Ordering::Relaxed);
    }

    /// One `CLIENT LIST` / `CLIENT INFO` line, fields as in Redis 7.0.
    pub fn describe(&self, now_ms: i64) -> String {
        let name = self.name.lock().clone().unwrap_or_default();
        let cmd = crate::commands::table()
            .all
            .get(self.last_cmd.load(Ordering::Relaxed))
            .map(|c| c.fullname.as_str())
            .unwrap_or("NULL");
        let mut flags = String::new();
        if self.monitor.load(Ordering::Relaxed) {
            flags.push('O');
        }
        if self.replica.load(Ordering::Relaxed) {
            flags.push('S');
        }
        let [sub, psub, ssub] = [0, 1, 2].map(|i| self.subscriptions[i].load(Ordering::Relaxed));
        if sub + psub + ssub > 0 {
            flags.push('P');
        }
        let multi = self.multi_len.load(Ordering::Relaxed);
        if multi >= 0 {
            flags.push('x');
        }
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        let redirect = self.tracking_redirect.load(Ordering::Relaxed);
        if redirect >= 0 {
            flags.push('t');
            if self.pushes.redirect_broken.load(Ordering::Relaxed) {
                flags.push('R');
            }
            if self.tracking_bcast.load(Ordering::Relaxed) {
                flags.push('B');
            }
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let idle = (now_ms - self.last_interaction_ms.load(Ordering::Relaxed)).max(0) / 1000;
        let qbuf = self.query_buf.load(Ordering::Relaxed);
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir={} resp={}",
            self.id,
            self.addr,
            self.laddr,
            String::from_utf8_lossy(&name),
            self.created.elapsed().as_secs(),
            idle,
            flags,
            self.db.load(Ordering::Relaxed),
            sub,
            psub,
            ssub,
            multi,
            qbuf,
            self.output_len.load(Ordering::Relaxed),
            self.memory(),
            cmd,
            self.user.lock(),
            redirect,
            self.resp.load(Ordering::Relaxed),
        )
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    next_id: AtomicU64,
    count: AtomicUsize,
    /// The clients' memory together, as last counted (INFO `mem_clients_normal`).
    memory: AtomicUsize,
}

impl ClientRegistry {
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a new connection, or returns None when `maxclients` is reached.
    pub fn register(
        &self,
        addr: SocketAddr,
        laddr: SocketAddr,
        max: usize,
        now_ms: i64,
    ) -> Option<Arc<ClientInfo>> {
        let mut map = self.clients.lock();
        if map.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let subscriptions: Arc<[AtomicUsize; 3]> = Arc::default();
        let kill = CancellationToken::new();
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(None),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            last_interaction_ms: AtomicI64::new(now_ms),
            last_cmd: AtomicUsize::new(usize::MAX),
            multi_len: AtomicI64::new(-1),
            monitor: AtomicBool::new(false),
            replica: AtomicBool::new(false),
            no_evict: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            query_buf: AtomicUsize::new(0),
            output_len: AtomicUsize::new(0),
            buffers: AtomicUsize::new(0),
            counted: AtomicUsize::new(0),
            pushes: Arc::new(Pushes::new(id, kill.clone(), subscriptions.clone())),
            subscriptions,
            kill,
            tracking_redirect: AtomicI64::new(-1),
            tracking_bcast: AtomicBool::new(false),
            user: Mutex::new(Arc::from("default")),
        });
        map.insert(id, info.clone());
        self.count.store(map.len(), Ordering::Relaxed);
        Some(info)
    }

    pub fn unregister(&self, id: u64) {
        let mut map = self.clients.lock();
        if let Some(c) = map.remove(&id) {
            c.pushes.close();
            self.memory
                .fetch_sub(c.counted.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        self.count.store(map.len(), Ordering::Relaxed);
    }

    /// Counts `c`'s memory as it is now in the clients' total.
    pub fn account(&self, c: &ClientInfo) {
        let now = c.memory();
        let before = c.counted.swap(now, Ordering::Relaxed);
        if now >= before {
            self.memory.fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.memory.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    /// The memory of every client's buffers together.
    pub fn memory(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Vec<Arc<ClientInfo>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }

    /// `maxmemory-clients`: while the clients' memory together is over `limit`, disconnects
    /// the client that uses the most, skipping those with `CLIENT NO-EVICT on` (Redis evicts
    /// from its largest memory bucket first). Returns the clients disconnected.
    pub fn evict_over(&self, limit: usize) -> Vec<Arc<ClientInfo>> {
        // Clients already told to go count as gone: their memory is on its way out, and
        // counting it would make every other client go in its place.
        let mut all: Vec<(usize, Arc<ClientInfo>)> = self
            .snapshot()
            .into_iter()
            .filter(|c| !c.kill.is_cancelled())
            .map(|c| (c.memory(), c))
            .collect();
        let mut total: usize = all.iter().map(|(m, _)| m).sum();
        let mut evicted = Vec::new();
        if total <= limit {
            return evicted;
        }
        all.sort_by_key(|(mem, _)| std::cmp::Reverse(*mem));
        for (mem, c) in all {
            if total <= limit {
                break;
            }
            if c.no_evict.load(Ordering::Relaxed) {
                continue;
            }
            c.kill.cancel();
            total -= mem;
            evicted.push(c);
        }
        evicted
    }
}

/// A MULTI in progress: queued commands, and whether queueing hit an error (EXECABORT).
#[derive(Default)]
pub struct Multi {
    pub queue: Vec<(&'static CommandRef, Vec<Bytes>)>,
    pub failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    SkipNext,
    Skip,
}

/// State owned by the connection task; commands read and change it through `Ctx::client`.
pub struct ClientState {
    pub info: Arc<ClientInfo>,
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    pub close_after_reply: bool,
    pub reply_mode: ReplyMode,
    pub multi: Option<Multi>,
    /// Running the queue of EXEC (Redis's `CLIENT_DENY_BLOCKING` inside a transaction).
    pub in_exec: bool,
    pub monitor: bool,
    /// ASKINGs sent and not yet used: each lets one command for a slot this node does not
    /// own (an importing slot) run here. Redis keeps one flag that the next command clears,
    /// whatever it is; counting them instead keeps a client that shares one connection between
    /// tasks working (the redis crate's async cluster client sends ASKING and its command as
    /// two requests, so another task's command can come in between). A command for a slot
    /// this node owns, or with no key, leaves them.
    pub asking: u8,
    /// The command running now was routed under ASKING (the script it runs routes its calls
    /// so too: Redis copies the caller's ASKING onto the script's client).
    pub asked: bool,
    /// READONLY: reads may be served by a replica.
    pub readonly: bool,
    /// Set while a blocking command waits for its keys (see `commands::blocking`).
    pub blocked: Option<crate::commands::blocking::BlockState>,
    /// Set by a re-run of a blocked command that still found nothing to serve.
    pub still_blocked: bool,
    /// Blocking commands reply as if timed out at once (inside MULTI/EXEC, as Redis).
    pub deny_blocking: bool,
    /// Its commands come from a master's stream or the append-only log (Redis's
    /// `mustObeyClient`): limits that guard against users' commands do not refuse them.
    pub obeyed: bool,
    pub pubsub: ClientSubs,
    /// WATCHed keys (db, key) and the flag writers set when one changes.
    pub watched: Vec<(usize, Bytes)>,
    pub watcher: Option<Arc<Watcher>>,
    /// Append-only log position of this client's last write: its replies leave only once the
    /// log acknowledged it (see `persist::aof`).
    pub aof_seq: u64,
    /// The replication offset after this client's last write (Redis's `woff`): what WAIT
    /// waits for replicas to acknowledge.
    pub repl_woff: u64,
    /// While EXEC runs: the commands to log as one record, so a transaction replays whole.
    pub aof_batch: Option<Vec<(usize, Vec<bytes::Bytes>)>>,
    /// WAIT: the connection waits for replicas before it replies (see `server::wait_replicas`).
    pub wait_replicas: Option<WaitReplicas>,
    /// CLIENT TRACKING: how this client tracks keys, when it does.
    pub tracking: Option<crate::store::tracking::Options>,
    /// The ACL user, as of ACL generation `acl_gen` (re-read when users changed).
    pub user: Option<Arc<crate::acl::User>>,
    pub acl_gen: u64,
    /// Not subject to ACL users: the HTTP API, which has its own gate (`http.allow-writes`,
    /// `http.token`).
    pub acl_exempt: bool,
    /// REPLCONF settings and a SYNC/PSYNC to serve (see `server::replicas`).
    pub replication: super::replicas::Handshake,
    /// Blocked clients the last command woke: served before its reply (see
    /// `store::blocking`).
    pub woken: Vec<crate::store::blocking::Woken>,
}

impl ClientState {
    /// Running commands for a script (blocking is denied, and not by EXEC).
    pub fn in_script(&self) -> bool {
        self.deny_blocking && !self.in_exec
    }
}

/// A WAIT in progress: `replicas` must acknowledge `offset` by `deadline` (None: forever).
#[derive(Debug, Clone, Copy)]
pub struct WaitReplicas {
    pub offset: u64,
    pub replicas: usize,
    pub deadline: Option<tokio::time::Instant>,
}

impl ClientState {
    /// What this client's replies wait for in the append-only log: its last record's
    /// position, and its id (`persist::aof::Aof::wait_acked_by`).
    pub fn ack(&self) -> (u64, u64) {
        (self.aof_seq, self.info.id)
    }

    /// `authenticated`: whether the client starts authenticated, as Redis's
    /// `clientSetDefaultAuth` decides: yes when no password is required at connection time.
    /// A client that connected before `requirepass` was set stays authenticated.
    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> ClientState {
        let pubsub = ClientSubs::new(info.subscriptions.clone(), info.pushes.clone());
        ClientState {
            pubsub,
            watched: Vec::new(),
            watcher: None,
            in_exec: false,
            info,
            db: 0,
            resp3: false,
            authenticated,
            close_after_reply: false,
            reply_mode: ReplyMode::On,
            multi: None,
            monitor: false,
            asking: 0,
            asked: false,
            readonly: false,
            blocked: None,
            still_blocked: false,
            deny_blocking: false,
            obeyed: false,
            aof_seq: 0,
            repl_woff: 0,
            aof_batch: None,
            wait_replicas: None,
            tracking: None,
            user: None,
            acl_gen: 0,
            acl_exempt: false,
            replication: Default::default(),
            woken: Vec::new(),
        }
    }

    /// Authenticated as `user` from now on.
    pub fn set_user(&mut self, user: Arc<crate::acl::User>, generation: u64) {
        *self.info.user.lock() = Arc::from(user.name.as_str());
        self.user = Some(user);
        self.acl_gen = generation;
    }

    /// The ACL user as of now: re-read when users changed since (None: it was deleted, the
    /// connection is being closed).
    pub fn current_user(&mut self, acl: &crate::acl::Acl) -> Option<&Arc<crate::acl::User>> {
        let generation = acl.generation();
        if self.acl_gen != generation || self.user.is_none() {
            let name = self.info.user.lock().clone();
            self.user = acl.get(&name);
            self.acl_gen = generation;
        }
        self.user.as_ref()
    }

    pub fn needs_auth(&self, node: &Node) -> bool {
        !self.authenticated && node.requires_pass()
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.info.db.store(db, Ordering::Relaxed);
    }

    pub fn set_resp3(&mut self, on: bool) {
        self.resp3 = on;
        self.info
            .resp
            .store(if on { 3 } else { 2 }, Ordering::Relaxed);
        self.info.pushes.resp3.store(on, Ordering::Relaxed);
    }
}
