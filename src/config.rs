//! The layered configuration: defaults < config file (`--config`, TOML or YAML, via the `config`
//! crate) < `REREDIS_*` environment < command-line flags.
//!
//! One table, [`SETTINGS`], names every setting once. Its dotted name (`cluster.node-timeout`)
//! gives the file key, the environment variable (`REREDIS_CLUSTER__NODE_TIMEOUT`), the flag
//! (`--cluster-node-timeout`) and, where Redis has the same setting, the `CONFIG GET` name. Values
//! are kept as canonical strings (what `CONFIG GET` prints) and read into typed fields by
//! [`Config::from_values`]; a bad value names the setting and the layer it came from.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    /// An integer accepted in `min..=max` and stored clamped to `lo..=hi` (Redis takes any
    /// `hz` and uses 1..500).
    Clamped {
        min: i64,
        max: i64,
        lo: i64,
        hi: i64,
    },
    /// Bytes, written with Redis's units (`100mb`, `1gb`, `512k`).
    Memory,
    Bool,
    Str,
    Enum(&'static [&'static str]),
    /// Redis's `save` rules: `<seconds> <changes>` pairs separated by spaces, or empty.
    SavePoints,
    /// A value with its own syntax, parsed and printed by the functions given.
    Custom(&'static Custom),
}

/// Parsing and printing for a [`Kind::Custom`] setting.
#[derive(Debug)]
pub struct Custom {
    /// Parses `raw` into the stored form; `current` is the value in force (settings such as
    /// `client-output-buffer-limit` change only the parts named), empty for the default.
    pub parse: fn(current: &str, raw: &str) -> Result<String, String>,
    /// What `CONFIG GET` prints for a stored value.
    pub show: fn(&str) -> String,
}

#[derive(Debug)]
pub struct Setting {
    /// Dotted name: the key in a file, the source of the env var and the flag.
    pub name: &'static str,
    /// Name for `CONFIG GET/SET` when Redis has the setting (or it belongs to Reredis alone).
    pub config_name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    /// Whether `CONFIG SET` may change it while running.
    pub mutable: bool,
    pub help: &'static str,
}

/// Settings fixed at start-up that Redis also refuses to change (or protects): CONFIG SET
/// refuses them whatever the value, as Redis. Our other fixed settings (ones Redis changes at
/// run time, such as `port`, `bind` and the cluster's, and our own, such as `http-port`) accept
/// the value in force: a tool that sets back what CONFIG GET gave gets OK.
const REDIS_IMMUTABLE: &[&str] = &[
    "aclfile",
    "databases",
    "io-threads",
    "tcp-backlog",
    "pidfile",
    "enable-debug-command",
    "enable-module-command",
    "dir",
    "dbfilename",
    "appendfilename",
    "cluster-enabled",
    "cluster-port",
    "cluster-config-file",
];

/// Redis 7.0's levels (7.2 added "nothing").
const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning"];
const LOG_FORMATS: &[&str] = &["text", "json"];
/// In Redis's order: its error for a bad value lists them so.
const POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];

macro_rules! setting {
    ($name:literal, $cfg:literal, $kind:expr, $default:literal, $mutable:literal, $help:literal) => {
        Setting {
            name: $name,
            config_name: $cfg,
            kind: $kind,
            default: $default,
            mutable: $mutable,
            help: $help,
        }
    };
}

const PORT: Kind = Kind::Int { min: 0, max: 65535 };

const NOTIFY_EVENTS: Custom = Custom {
    parse: crate::pubsub::notify::parse_setting,
    show: crate::pubsub::notify::show_setting,
};
/// Bytes, at least 1mb: `proto-max-bulk-len` and `client-query-buffer-limit` (Redis's bounds;
/// a smaller one would refuse every command, CONFIG SET included).
const MEMORY_AT_LEAST_1MB: Custom = Custom {
    parse: parse_memory_at_least_1mb,
    show: str::to_string,
};

fn parse_memory_at_least_1mb(_current: &str, raw: &str) -> Result<String, String> {
    match parse_memory(raw) {
        Some(v) if v >= 1 << 20 && v <= i64::MAX as u64 => Ok(v.to_string()),
        Some(_) => Err("argument must be between 1048576 and 9223372036854775807 inclusive".into()),
        None => Err("argument must be a memory value".into()),
    }
}

/// `maxmemory-clients`: bytes (with Redis's units), or a percentage of `maxmemory` (`10%`).
const MEMORY_OR_PERCENT: Custom = Custom {
    parse: parse_memory_or_percent,
    show: str::to_string,
};

fn parse_memory_or_percent(_current: &str, raw: &str) -> Result<String, String> {
    if let Some(p) = raw.trim().strip_suffix('%') {
        return match p.parse::<u64>() {
            Ok(n) if n <= 100 => Ok(format!("{n}%")),
            Ok(_) => Err("percentage argument must be less or equal to 100".into()),
            _ => Err("argument must be a memory or percent value".into()),
        };
    }
    parse_memory(raw)
        .map(|v| v.to_string())
        .ok_or_else(|| "argument must be a memory or percent value".into())
}

/// `latency-tracking-info-percentiles`: percentiles (0 to 100) separated by spaces.
const PERCENTILES: Custom = Custom {
    parse: parse_percentiles,
    show: str::to_string,
};

fn parse_percentiles(_current: &str, raw: &str) -> Result<String, String> {
    let mut shown = Vec::new();
    for word in raw.split_whitespace() {
        match word.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => shown.push(format!("{p}")),
            Ok(_) => {
                return Err(
                    "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                        .into(),
                );
            }
            Err(_) => return Err("Invalid latency-tracking-info-percentiles parameters".into()),
        }
    }
    Ok(shown.join(" "))
}

const OUTPUT_LIMITS: Custom = Custom {
    parse: parse_output_limits,
    show: str::to_string,
};

pub static SETTINGS: &[Setting] = &[
    setting!(
        "bind",
        "bind",
        Kind::Str,
        "0.0.0.0",
        false,
        "Address the RESP and HTTP listeners bind to"
    ),
    setting!(
        "port",
        "port",
        PORT,
        "6379",
        false,
        "RESP port (0: pick a free port)"
    ),
    setting!(
        "http-port",
        "http-port",
        PORT,
        "8080",
        false,
        "HTTP port: UI, /ws, /api, /metrics, probes (0: pick a free port)"
    ),
    setting!(
        "databases",
        "databases",
        Kind::Int {
            min: 1,
            max: 1_000_000
        },
        "16",
        false,
        "Number of databases (SELECT 0..n-1)"
    ),
    setting!(
        "maxclients",
        "maxclients",
        Kind::Int {
            min: 1,
            max: u32::MAX as i64
        },
        "10000",
        true,
        "Most client connections at once"
    ),
    setting!(
        "io-threads",
        "io-threads",
        Kind::Int { min: 0, max: 256 },
        "0",
        false,
        "Threads serving client connections, each with its own event loop (0: none, the node's runtime serves them)"
    ),
    setting!(
        "timeout",
        "timeout",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "0",
        true,
        "Close a client idle this many seconds (0: never)"
    ),
    setting!(
        "tcp-backlog",
        "tcp-backlog",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "511",
        false,
        "Pending connections the client port queues before they are accepted (the kernel caps it at net.core.somaxconn)"
    ),
    setting!(
        "pidfile",
        "pidfile",
        Kind::Str,
        "",
        false,
        "File the process id is written to at start and removed from at a clean exit (empty: none)"
    ),
    setting!(
        "tcp-keepalive",
        "tcp-keepalive",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "300",
        true,
        "TCP keepalive interval in seconds (0: off)"
    ),
    setting!(
        "requirepass",
        "requirepass",
        Kind::Str,
        "",
        true,
        "Password for AUTH / HELLO AUTH (empty: none)"
    ),
    setting!(
        "aclfile",
        "aclfile",
        Kind::Str,
        "",
        false,
        "File of ACL users in Redis's format, loaded at start-up and by ACL LOAD, written by ACL SAVE (empty: none)"
    ),
    // Redis's `user` directive: not a CONFIG GET/SET name (see `config_names`).
    setting!(
        "user",
        "user",
        Kind::Str,
        "",
        false,
        "ACL users, one per line as Redis's `user` directive: `<name> <rule>...` (in a file, a list); not together with `aclfile`"
    ),
    setting!(
        "replicaof",
        "replicaof",
        Kind::Str,
        "",
        false,
        "\"host port\": follow this master from start, as REPLICAOF host port (cluster-enabled no only)"
    ),
    setting!(
        "masterauth",
        "masterauth",
        Kind::Str,
        "",
        true,
        "Password this node gives its master (REPLICAOF host port) with AUTH (empty: none)"
    ),
    setting!(
        "masteruser",
        "masteruser",
        Kind::Str,
        "",
        true,
        "ACL user this node authenticates as to its master (with masterauth; empty: default)"
    ),
    setting!(
        "proto-max-bulk-len",
        "proto-max-bulk-len",
        Kind::Custom(&MEMORY_AT_LEAST_1MB),
        "512mb",
        true,
        "Largest bulk string a client may send"
    ),
    setting!(
        "client-query-buffer-limit",
        "client-query-buffer-limit",
        Kind::Custom(&MEMORY_AT_LEAST_1MB),
        "1gb",
        true,
        "Largest unparsed input a client may accumulate"
    ),
    setting!(
        "min-replicas-to-write",
        "min-replicas-to-write",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "0",
        true,
        "A master refuses writes (-NOREPLICAS) with fewer good replicas than this (0: off)"
    ),
    setting!(
        "min-replicas-max-lag",
        "min-replicas-max-lag",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "10",
        true,
        "A replica is good while its last acknowledgement is at most this many seconds old"
    ),
    setting!(
        "repl-ping-replica-period",
        "repl-ping-replica-period",
        Kind::Int {
            min: 1,
            max: i32::MAX as i64
        },
        "10",
        true,
        "Seconds between the PINGs a master sends down a Redis replica's stream (SYNC/PSYNC)"
    ),
    setting!(
        "repl-timeout",
        "repl-timeout",
        Kind::Int {
            min: 1,
            max: i32::MAX as i64
        },
        "60",
        true,
        "Seconds of silence after which a replica drops its link to the master (REPLICAOF), and a master a Redis replica that stopped acknowledging"
    ),
    setting!(
        "replica-read-only",
        "replica-read-only",
        Kind::Bool,
        "yes",
        true,
        "A replica (REPLICAOF) refuses writes from its clients with -READONLY"
    ),
    setting!(
        "replica-serve-stale-data",
        "replica-serve-stale-data",
        Kind::Bool,
        "yes",
        true,
        "A replica whose link to the master is down still serves its data (no: -MASTERDOWN)"
    ),
    setting!(
        "repl-backlog-size",
        "repl-backlog-size",
        Kind::Memory,
        "1mb",
        true,
        "Bytes of the replication stream a master keeps for replicas that reconnect (partial resync)"
    ),
    setting!(
        "maxmemory",
        "maxmemory",
        Kind::Memory,
        "0",
        true,
        "Memory limit for data (0: none)"
    ),
    setting!(
        "maxmemory-policy",
        "maxmemory-policy",
        Kind::Enum(POLICIES),
        "noeviction",
        true,
        "What to do when maxmemory is reached"
    ),
    // Eviction tuning, as Redis: keys sampled per eviction, and how long one command may spend
    // evicting (node.rs, `eviction_slice`).
    setting!(
        "maxmemory-samples",
        "maxmemory-samples",
        Kind::Int { min: 1, max: 64 },
        "5",
        true,
        "Keys sampled per eviction"
    ),
    // The LFU policies' counter, as Redis: how slowly it grows, and how many idle minutes
    // take one off (store/value.rs, `Entry::access_lfu`).
    // Redis 7.0's: DEBUG is refused unless this says yes (or local, for loopback clients).
    setting!(
        "enable-debug-command",
        "enable-debug-command",
        Kind::Enum(&["no", "yes", "local"]),
        "no",
        false,
        "Allow the DEBUG command: no, yes, or local (clients on 127.0.0.1 or ::1 only)"
    ),
    // Modules are Redis's C plugins: none can be loaded here, but MODULE answers as Redis's
    // (LIST: none; LOAD refused by this setting first, as Redis 7.0's default).
    setting!(
        "enable-module-command",
        "enable-module-command",
        Kind::Enum(&["no", "yes", "local"]),
        "no",
        false,
        "Allow MODULE LOAD/LOADEX/UNLOAD: no, yes, or local (127.0.0.1 or ::1 only); no module can be \
         loaded, the commands then fail as Redis's do on a module that does not load"
    ),
    setting!(
        "busy-reply-threshold",
        "busy-reply-threshold",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "5000",
        true,
        "Milliseconds a script or function runs before other clients get -BUSY (and SCRIPT KILL / FUNCTION KILL apply)"
    ),
    setting!(
        "lfu-log-factor",
        "lfu-log-factor",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "10",
        true,
        "LFU counter growth: the higher, the more accesses a step takes"
    ),
    setting!(
        "lfu-decay-time",
        "lfu-decay-time",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "1",
        true,
        "Idle minutes that take one off an LFU counter (0: never)"
    ),
    setting!(
        "maxmemory-eviction-tenacity",
        "maxmemory-eviction-tenacity",
        Kind::Int { min: 0, max: 100 },
        "10",
        true,
        "Eviction effort per command: 10 = 500 us, 100 = no limit"
    ),
    setting!(
        "maxmemory-clients",
        "maxmemory-clients",
        Kind::Custom(&MEMORY_OR_PERCENT),
        "0",
        true,
        "Memory the clients' buffers may use together before the largest is disconnected (0: no limit)"
    ),
    setting!(
        "hz",
        "hz",
        Kind::Clamped {
            min: 0,
            max: i32::MAX as i64,
            lo: 1,
            hi: 500
        },
        "10",
        true,
        "Background task frequency (active expiry)"
    ),
    setting!(
        "loglevel",
        "loglevel",
        Kind::Enum(LOGLEVELS),
        "notice",
        true,
        "Log level"
    ),
    setting!(
        "log-format",
        "log-format",
        Kind::Enum(LOG_FORMATS),
        "text",
        false,
        "Log format: text, or json for containers"
    ),
    setting!("dir", "dir", Kind::Str, ".", false, "Data directory"),
    setting!(
        "slowlog-log-slower-than",
        "slowlog-log-slower-than",
        Kind::Int {
            min: -1,
            max: i64::MAX
        },
        "10000",
        true,
        "Log commands slower than this many microseconds (-1: off)"
    ),
    setting!(
        "slowlog-max-len",
        "slowlog-max-len",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "128",
        true,
        "Entries kept in the slow log"
    ),
    setting!(
        "latency-tracking",
        "latency-tracking",
        Kind::Bool,
        "yes",
        true,
        "INFO latencystats shows each command's latency percentiles"
    ),
    setting!(
        "latency-tracking-info-percentiles",
        "latency-tracking-info-percentiles",
        Kind::Custom(&PERCENTILES),
        "50 99 99.9",
        true,
        "The percentiles INFO latencystats shows"
    ),
    setting!(
        "latency-monitor-threshold",
        "latency-monitor-threshold",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "0",
        true,
        "Record latency events longer than this many milliseconds (0: off)"
    ),
    setting!(
        "lazyfree-lazy-user-del",
        "lazyfree-lazy-user-del",
        Kind::Bool,
        "no",
        true,
        "DEL frees large values in the background, as UNLINK"
    ),
    setting!(
        "lazyfree-lazy-expire",
        "lazyfree-lazy-expire",
        Kind::Bool,
        "no",
        true,
        "Keys whose TTL passed free large values in the background"
    ),
    setting!(
        "lazyfree-lazy-eviction",
        "lazyfree-lazy-eviction",
        Kind::Bool,
        "no",
        true,
        "Keys evicted under maxmemory free large values in the background"
    ),
    setting!(
        "lazyfree-lazy-server-del",
        "lazyfree-lazy-server-del",
        Kind::Bool,
        "no",
        true,
        "Values a command replaces (SET over a key, RENAME onto one, a store destination) are freed in the background when large"
    ),
    setting!(
        "replica-lazy-flush",
        "replica-lazy-flush",
        Kind::Bool,
        "no",
        true,
        "A replica empties its data set in the background before a full sync"
    ),
    setting!(
        "lazyfree-lazy-user-flush",
        "lazyfree-lazy-user-flush",
        Kind::Bool,
        "no",
        true,
        "FLUSHALL/FLUSHDB without a mode free memory in the background"
    ),
    setting!(
        "tracking-table-max-keys",
        "tracking-table-max-keys",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "1000000",
        true,
        "Keys client tracking remembers before it forgets some, telling their clients (0: no limit)"
    ),
    setting!(
        "hll-sparse-max-bytes",
        "hll-sparse-max-bytes",
        Kind::Memory,
        "3000",
        true,
        "Largest sparse HyperLogLog (header included) before it turns dense"
    ),
    // Persistence (src/persist/): Redis's names, defaults and forms.
    setting!(
        "save",
        "save",
        Kind::SavePoints,
        "3600 1 300 100 60 10000",
        true,
        "Snapshot rules: \"<seconds> <changes>\" pairs, snapshot after that many changes in that many seconds (\"\": never)"
    ),
    setting!(
        "dbfilename",
        "dbfilename",
        Kind::Str,
        "dump.rdb",
        false,
        "Snapshot file name in dir"
    ),
    setting!(
        "stop-writes-on-bgsave-error",
        "stop-writes-on-bgsave-error",
        Kind::Bool,
        "yes",
        true,
        "Refuse writes with -MISCONF while the last background snapshot failed"
    ),
    setting!(
        "appendonly",
        "appendonly",
        Kind::Bool,
        "no",
        true,
        "Append-only log of every write (yes: the log is loaded at start instead of the snapshot)"
    ),
    setting!(
        "appendfilename",
        "appendfilename",
        Kind::Str,
        "appendonly.aof",
        false,
        "Append-only log file name in dir"
    ),
    setting!(
        "appendfsync",
        "appendfsync",
        Kind::Enum(&["always", "everysec", "no"]),
        "everysec",
        true,
        "When the log is fsynced: always (before each reply), everysec, or no (left to the OS)"
    ),
    setting!(
        "auto-aof-rewrite-percentage",
        "auto-aof-rewrite-percentage",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "100",
        true,
        "Rewrite the log when it grew this many percent since the last rewrite (0: never)"
    ),
    setting!(
        "auto-aof-rewrite-min-size",
        "auto-aof-rewrite-min-size",
        Kind::Memory,
        "64mb",
        true,
        "No automatic log rewrite below this size"
    ),
    setting!(
        "aof-load-truncated",
        "aof-load-truncated",
        Kind::Bool,
        "yes",
        true,
        "At start, cut a truncated last log record off with a warning (no: refuse to start)"
    ),
    setting!(
        "acllog-max-len",
        "acllog-max-len",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "128",
        true,
        "Most entries the ACL log keeps (ACL LOG)"
    ),
    setting!(
        "acl-pubsub-default",
        "acl-pubsub-default",
        Kind::Enum(&["allchannels", "resetchannels"]),
        "resetchannels",
        true,
        "Channels a new ACL user (or one reset) may use: none (resetchannels) or all (allchannels)"
    ),
    setting!(
        "aof-use-rdb-preamble",
        "aof-use-rdb-preamble",
        Kind::Bool,
        "yes",
        true,
        "Accepted for Redis's configs and tools; changes nothing: a rewritten log always starts \
         with its keys in the snapshot's encoding (as Redis's RDB preamble), then commands"
    ),
    setting!(
        "notify-keyspace-events",
        "notify-keyspace-events",
        Kind::Custom(&NOTIFY_EVENTS),
        "",
        true,
        "Keyspace notification classes, as Redis's letters (K E g $ l s h z x e t m d n A)"
    ),
    setting!(
        "client-output-buffer-limit",
        "client-output-buffer-limit",
        Kind::Custom(&OUTPUT_LIMITS),
        "normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60",
        true,
        "Output buffer limits per client class: <class> <hard> <soft> <soft-seconds>; a pub/sub \
         subscriber past them is disconnected"
    ),
    setting!(
        "cluster.enabled",
        "cluster-enabled",
        Kind::Bool,
        "yes",
        false,
        "Run as a Redis Cluster node (no: standalone server)"
    ),
    setting!(
        "cluster.bus-port",
        "cluster-port",
        PORT,
        "0",
        false,
        "Cluster bus (gRPC) port (0: port + 10000)"
    ),
    setting!(
        "cluster.node-timeout",
        "cluster-node-timeout",
        Kind::Int {
            min: 100,
            max: i32::MAX as i64
        },
        "15000",
        false,
        "Milliseconds without a reply before a node is suspected failing"
    ),
    setting!(
        "cluster.seeds",
        "cluster-seeds",
        Kind::Str,
        "",
        false,
        "Comma-separated host:port of nodes to MEET at start (resolved with retry)"
    ),
    setting!(
        "cluster.auto-assign",
        "cluster-auto-assign",
        Kind::Bool,
        "yes",
        false,
        "Distribute slots automatically (no: assign by hand as in Redis)"
    ),
    setting!(
        "cluster.rebalance-delay",
        "cluster-rebalance-delay",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "2000",
        false,
        "Milliseconds membership must be stable before slots are re-split"
    ),
    setting!(
        "cluster.replica-no-failover",
        "cluster-replica-no-failover",
        Kind::Bool,
        "no",
        false,
        "A replica that never takes over by itself when its master fails (CLUSTER FAILOVER still works)"
    ),
    setting!(
        "cluster.replicas",
        "cluster-replicas",
        Kind::Int { min: 0, max: 16 },
        "0",
        true,
        "Replicas per shard under automatic distribution: nodes beyond the masters needed become replicas (set it alike on every node)"
    ),
    setting!(
        "cluster.announce-ip",
        "cluster-announce-ip",
        Kind::Str,
        "",
        false,
        "IP announced to peers and clients (empty: learnt from peers)"
    ),
    setting!(
        "cluster.announce-port",
        "cluster-announce-port",
        PORT,
        "0",
        false,
        "Client port announced (0: the port)"
    ),
    setting!(
        "cluster.announce-bus-port",
        "cluster-announce-bus-port",
        PORT,
        "0",
        false,
        "Bus port announced (0: the bus port)"
    ),
    setting!(
        "cluster.announce-hostname",
        "cluster-announce-hostname",
        Kind::Str,
        "",
        false,
        "Hostname announced to peers and clients"
    ),
    setting!(
        "cluster.preferred-endpoint-type",
        "cluster-preferred-endpoint-type",
        Kind::Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
        true,
        "What MOVED/ASK and CLUSTER SLOTS send clients to"
    ),
    setting!(
        "cluster.require-full-coverage",
        "cluster-require-full-coverage",
        Kind::Bool,
        "yes",
        false,
        "Refuse queries while any slot is unserved"
    ),
    setting!(
        "cluster.allow-reads-when-down",
        "cluster-allow-reads-when-down",
        Kind::Bool,
        "no",
        true,
        "Serve read commands for the slots this node owns while the cluster is down (writes get -CLUSTERDOWN)"
    ),
    setting!(
        "cluster.allow-pubsubshard-when-down",
        "cluster-allow-pubsubshard-when-down",
        Kind::Bool,
        "yes",
        true,
        "Serve shard channels of the slots this node owns while the cluster is down"
    ),
    setting!(
        "cluster.secret",
        "cluster-secret",
        Kind::Str,
        "",
        false,
        "Shared secret peers must present on the bus (empty: none)"
    ),
    setting!(
        "cluster.config-file",
        "cluster-config-file",
        Kind::Str,
        "",
        false,
        "Cluster state file in dir (empty: nodes-<port>.conf)"
    ),
    setting!(
        "list-max-listpack-size",
        "list-max-listpack-size",
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64
        },
        "-2",
        true,
        "List node size: negative -1..-5 caps node bytes at 4..64 KB, positive caps entries"
    ),
    setting!(
        "zset-max-listpack-entries",
        "zset-max-listpack-entries",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "128",
        true,
        "Sorted sets up to this many members use the compact listpack encoding"
    ),
    setting!(
        "zset-max-listpack-value",
        "zset-max-listpack-value",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "64",
        true,
        "Sorted sets whose members are all at most this long use the listpack encoding"
    ),
    setting!(
        "hash-max-listpack-entries",
        "hash-max-listpack-entries",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "512",
        true,
        "Hashes with more fields than this use the hashtable encoding"
    ),
    setting!(
        "hash-max-listpack-value",
        "hash-max-listpack-value",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "64",
        true,
        "Hashes with a field or value longer than this use the hashtable encoding"
    ),
    setting!(
        "stream-node-max-bytes",
        "stream-node-max-bytes",
        Kind::Memory,
        "4096",
        true,
        "Bytes a stream node (one listpack of entries) may grow to before the next one starts (0: no limit)"
    ),
    setting!(
        "stream-node-max-entries",
        "stream-node-max-entries",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "100",
        true,
        "Entries a stream node holds before the next one starts (0: no limit)"
    ),
    setting!(
        "set-max-intset-entries",
        "set-max-intset-entries",
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        "512",
        true,
        "Integer sets with more members than this use the hashtable encoding"
    ),
    setting!(
        "shutdown-timeout",
        "shutdown-timeout",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "10",
        true,
        "Seconds to let clients finish on SIGTERM"
    ),
    setting!(
        "http.allow-writes",
        "http-allow-writes",
        Kind::Bool,
        "no",
        true,
        "Let anyone write through the HTTP API (otherwise only with http.token)"
    ),
    setting!(
        "http.token",
        "http-token",
        Kind::Str,
        "",
        true,
        "Bearer token that allows writes through the HTTP API (empty: none)"
    ),
    setting!(
        "http.allowed-origins",
        "http-allowed-origins",
        Kind::Str,
        "",
        true,
        "Web page origins (scheme://host[:port], comma-separated; * for any) besides the node's own that may open /ws and send writes"
    ),
    setting!(
        "http.readyz-requires-cluster-ok",
        "http-readyz-requires-cluster-ok",
        Kind::Bool,
        "no",
        true,
        "/readyz answers 503 while cluster_state is fail (off by default: pods must be ready to form the cluster)"
    ),
    setting!(
        "http.max-ws-clients",
        "http-max-ws-clients",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        "1000",
        true,
        "Most /ws live-feed clients at once (more are refused with close code 1013)"
    ),
];

/// Redis's other names for settings (`CONFIG GET`/`SET` take both, and `CONFIG GET *` lists
/// both, as Redis 7 does): the names before Redis 5 renamed slave to replica, before 7 renamed
/// ziplist to listpack, and `lua-time-limit`.
pub static ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("slave-read-only", "replica-read-only"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
    ("lua-time-limit", "busy-reply-threshold"),
    ("slaveof", "replicaof"),
];

pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The setting of a `CONFIG GET`/`SET` name (any case), or of one of its [`ALIASES`].
pub fn setting_by_config_name(name: &str) -> Option<&'static Setting> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, canonical)| canonical);
    SETTINGS
        .iter()
        .filter(|s| !NOT_CONFIG_NAMES.contains(&s.config_name))
        .find(|s| s.config_name.eq_ignore_ascii_case(name))
}

/// Settings that are not CONFIG GET/SET names: `user`, as in Redis (a directive of the file).
const NOT_CONFIG_NAMES: &[&str] = &["user"];

/// Every `CONFIG GET` name (settings' and [`ALIASES`]) with its setting.
pub fn config_names() -> impl Iterator<Item = (&'static str, &'static Setting)> {
    (SETTINGS.iter())
        .filter(|s| !NOT_CONFIG_NAMES.contains(&s.config_name))
        .map(|s| (s.config_name, s))
        .chain(
            ALIASES.iter().filter_map(|&(alias, canonical)| {
                Some((alias, setting_by_config_name(canonical)?))
            }),
        )
}

impl Setting {
    pub fn flag(&self) -> String {
        self.name.replace('.', "-")
    }

    pub fn env_var(&self) -> String {
        format!(
            "REREDIS_{}",
            self.name
                .replace('.', "__")
                .replace('-', "_")
                .to_uppercase()
        )
    }

    /// Parses `raw` into the canonical text `CONFIG GET` prints, or says why it cannot.
    pub fn canonical(&self, raw: &str) -> Result<String, String> {
        self.canonical_over("", raw)
    }

    /// What `CONFIG GET` prints for a stored value.
    pub fn show(&self, stored: &str) -> String {
        match self.kind {
            Kind::Custom(c) => (c.show)(stored),
            _ => stored.to_string(),
        }
    }

    /// Like [`Setting::canonical`], for a value set over `current`.
    pub fn canonical_over(&self, current: &str, raw: &str) -> Result<String, String> {
        match self.kind {
            Kind::Custom(c) => (c.parse)(current, raw),
            _ => self.kind.canonical(raw),
        }
    }
}

impl Kind {
    fn canonical_int(&self, raw: &str) -> Result<i64, String> {
        let (min, max) = match *self {
            Kind::Int { min, max } | Kind::Clamped { min, max, .. } => (min, max),
            _ => (i64::MIN, i64::MAX),
        };
        let v: i64 = raw
            .trim()
            .parse()
            .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
        if v < min || v > max {
            return Err(format!(
                "argument must be between {min} and {max} inclusive"
            ));
        }
        Ok(v)
    }

    fn canonical(&self, raw: &str) -> Result<String, String> {
        match *self {
            Kind::Int { .. } => self.canonical_int(raw).map(|v| v.to_string()),
            Kind::Clamped { min, max, lo, hi } => Kind::Int { min, max }
                .canonical_int(raw)
                .map(|v| v.clamp(lo, hi).to_string()),
            Kind::Custom(c) => (c.parse)("", raw),
            Kind::Memory => parse_memory(raw)
                .map(|v| v.to_string())
                .ok_or_else(|| "argument must be a memory value".to_string()),
            Kind::Bool => parse_bool(raw)
                .map(|b| if b { "yes" } else { "no" }.to_string())
                .ok_or_else(|| "argument must be 'yes' or 'no'".to_string()),
            Kind::Str => Ok(raw.to_string()),
            Kind::SavePoints => parse_save_points(raw).map(|points| {
                points
                    .iter()
                    .map(|(secs, changes)| format!("{secs} {changes}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
            Kind::Enum(options) => options
                .iter()
                .find(|o| o.eq_ignore_ascii_case(raw.trim()))
                .map(|o| o.to_string())
                .ok_or_else(|| {
                    format!(
                        "argument(s) must be one of the following: {}",
                        options.join(", ")
                    )
                }),
        }
    }
}

/// `save` rules as (seconds, changes) pairs; "" is none. Redis takes `save ""` and pairs of
/// integers (seconds at least 1, changes at least 0).
pub fn parse_save_points(raw: &str) -> Result<Vec<(u64, u64)>, String> {
    let words: Vec<&str> = raw.split_whitespace().filter(|w| *w != "\"\"").collect();
    if !words.len().is_multiple_of(2) {
        return Err("Invalid save parameters".into());
    }
    words
        .chunks(2)
        .map(|pair| {
            let secs = pair[0].parse::<u64>().ok().filter(|s| *s >= 1);
            let changes = pair[1].parse::<u64>().ok();
            match (secs, changes) {
                (Some(s), Some(c)) => Ok((s, c)),
                _ => Err("Invalid save parameters".into()),
            }
        })
        .collect()
}

/// Redis's `memtoll`: a number with an optional unit (k=1000, kb=1024, m, mb, g, gb).
pub fn parse_memory(raw: &str) -> Option<u64> {
    let s = raw.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// The client classes of `client-output-buffer-limit`, in the order Redis prints them.
const OUTPUT_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

/// Redis's `client-output-buffer-limit`: `<class> <hard> <soft> <soft-seconds>` groups over the
/// limits in force (`replica` is `slave`), printed for all three classes in bytes.
fn parse_output_limits(current: &str, raw: &str) -> Result<String, String> {
    let mut limits = [[0u64; 3]; 3];
    let cur: Vec<&str> = current.split_whitespace().collect();
    for group in cur.chunks(4) {
        if let [class, h, s, secs] = group
            && let Some(i) = OUTPUT_CLASSES.iter().position(|c| c == class)
        {
            limits[i] = [
                h.parse().unwrap_or(0),
                s.parse().unwrap_or(0),
                secs.parse().unwrap_or(0),
            ];
        }
    }
    let args: Vec<&str> = raw.split_whitespace().collect();
    if !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for group in args.chunks(4) {
        let class = match group[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into());
            }
        };
        let hard = parse_memory(group[1]);
        let soft = parse_memory(group[2]);
        let secs = group[3].parse::<i64>().ok().filter(|s| *s >= 0);
        let (Some(h), Some(s), Some(secs)) = (hard, soft, secs) else {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            );
        };
        limits[class] = [h, s, secs as u64];
    }
    Ok(OUTPUT_CLASSES
        .iter()
        .zip(limits)
        .map(|(c, [h, s, secs])| format!("{c} {h} {s} {secs}"))
        .collect::<Vec<_>>()
        .join(" "))
}

pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Where a value came from, for error messages and `--print-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(String),
    Env(String),
    Flag(String),
    ConfigSet,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(p) => write!(f, "config file {p}"),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(fl) => write!(f, "flag --{fl}"),
            Origin::ConfigSet => write!(f, "CONFIG SET"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value '{value}' for setting '{name}' (from {origin}): {reason}")]
    Invalid {
        name: String,
        value: String,
        origin: Origin,
        reason: String,
    },
    #[error("unknown setting '{name}' (from {origin})")]
    Unknown { name: String, origin: Origin },
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
}

/// Every setting's canonical value and origin.
#[derive(Debug, Clone)]
pub struct Values {
    map: BTreeMap<&'static str, (String, Origin)>,
}

impl Default for Values {
    fn default() -> Self {
        let map = SETTINGS
            .iter()
            .map(|s| {
                let v = s
                    .canonical(s.default)
                    .unwrap_or_else(|_| s.default.to_string());
                (s.name, (v, Origin::Default))
            })
            .collect();
        Values { map }
    }
}

impl Values {
    pub fn set(&mut self, name: &str, raw: &str, origin: Origin) -> Result<(), ConfigError> {
        let s = setting(name).ok_or_else(|| ConfigError::Unknown {
            name: name.to_string(),
            origin: origin.clone(),
        })?;
        let v = s
            .canonical_over(self.get(s.name), raw)
            .map_err(|reason| ConfigError::Invalid {
                name: name.to_string(),
                value: raw.to_string(),
                origin: origin.clone(),
                reason,
            })?;
        self.map.insert(s.name, (v, origin));
        Ok(())
    }

    pub fn get(&self, name: &str) -> &str {
        self.map.get(name).map(|(v, _)| v.as_str()).unwrap_or("")
    }

    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.map.get(name).map(|(_, o)| o)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str, &Origin)> {
        self.map.iter().map(|(k, (v, o))| (*k, v.as_str(), o))
    }

    fn int(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    fn bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    /// Layers a config file (TOML or YAML, by extension) over these values.
    pub fn load_file(&mut self, path: &str) -> Result<(), ConfigError> {
        let file_err = |e: config::ConfigError| ConfigError::File {
            path: path.to_string(),
            reason: e.to_string(),
        };
        let cfg = config::Config::builder()
            .add_source(config::File::with_name(path).required(true))
            .build()
            .map_err(file_err)?;
        let table = cfg
            .try_deserialize::<config::Map<String, config::Value>>()
            .map_err(file_err)?;
        let mut flat = Vec::new();
        flatten("", table, &mut flat);
        for (k, v) in flat {
            self.set(&k, &v, Origin::File(path.to_string()))?;
        }
        Ok(())
    }

    /// Layers `REREDIS_*` variables over these values (read through the `config` crate, which
    /// lower-cases names and splits sections on `__`). Unknown variables are errors: a typo in
    /// a deployment should not be silently ignored.
    pub fn load_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let source: config::Map<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("REREDIS_"))
            .collect();
        let cfg = config::Config::builder()
            .add_source(
                config::Environment::with_prefix("REREDIS")
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(source)),
            )
            .build()
            .map_err(|e| ConfigError::File {
                path: "environment".into(),
                reason: e.to_string(),
            })?;
        let table = cfg
            .try_deserialize::<config::Map<String, config::Value>>()
            .map_err(|e| ConfigError::File {
                path: "environment".into(),
                reason: e.to_string(),
            })?;
        let mut flat = Vec::new();
        flatten("", table, &mut flat);
        for (k, v) in flat {
            let var = format!(
                "REREDIS_{}",
                k.replace('.', "__").replace('-', "_").to_uppercase()
            );
            self.set(&k, &v, Origin::Env(var))?;
        }
        Ok(())
    }
}

fn flatten(
    prefix: &str,
    table: config::Map<String, config::Value>,
    out: &mut Vec<(String, String)>,
) {
    for (k, v) in table {
        let key = k.replace('_', "-");
        let full = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match v.kind {
            config::ValueKind::Table(t) => flatten(&full, t, out),
            config::ValueKind::Array(items) => {
                let joined: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
                // A list of users is one per line (their rules may hold commas).
                let sep = if full == "user" { "\n" } else { "," };
                out.push((full, joined.join(sep)));
            }
            _ => out.push((full, v.to_string())),
        }
    }
}

/// Typed view of [`Values`], read by the node.
/// A limit in bytes, or as a percentage of `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryLimit {
    Bytes(u64),
    Percent(u64),
}

impl MemoryLimit {
    /// From a canonical value: bytes, or `N%`.
    fn of(canonical: &str) -> MemoryLimit {
        match canonical.strip_suffix('%') {
            Some(p) => MemoryLimit::Percent(p.parse().unwrap_or(0)),
            None => MemoryLimit::Bytes(canonical.parse().unwrap_or(0)),
        }
    }

    /// The limit in bytes (0: none; a percentage of no `maxmemory` is none).
    pub fn bytes(self, maxmemory: u64) -> u64 {
        match self {
            MemoryLimit::Bytes(b) => b,
            MemoryLimit::Percent(p) => maxmemory / 100 * p + maxmemory % 100 * p / 100,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub values: Values,
    /// The file given with `--config`, for CONFIG REWRITE.
    pub config_file: Option<String>,
    pub bind: String,
    pub port: u16,
    pub http_port: u16,
    pub databases: usize,
    pub maxclients: usize,
    /// `io-threads`: connection threads, 0 for none (see `crate::server`).
    pub io_threads: usize,
    pub timeout_secs: u64,
    pub tcp_keepalive_secs: u64,
    pub requirepass: Option<String>,
    pub proto_max_bulk_len: usize,
    pub client_query_buffer_limit: usize,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    /// `maxmemory-clients`: bytes, or a percentage of `maxmemory` (0: no limit).
    pub maxmemory_clients: MemoryLimit,
    pub hz: u32,
    pub log_format: String,
    pub loglevel: String,
    pub dir: String,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: usize,
    pub latency_monitor_threshold_ms: u64,
    pub lazyfree_lazy_user_flush: bool,
    pub shutdown_timeout_secs: u64,
    /// `notify-keyspace-events` as Redis's flag bits.
    pub notify_keyspace_events: u32,
    /// `client-output-buffer-limit pubsub`: hard bytes, soft bytes, soft seconds.
    pub pubsub_output_limit: [u64; 3],
    pub replica_output_limit: [u64; 3],
    pub http_allow_writes: bool,
    pub http_token: Option<String>,
    pub http_max_ws_clients: usize,
    pub cluster_enabled: bool,
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub list_max_listpack_size: i32,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    pub hll_sparse_max_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_values(Values::default())
    }
}

impl Config {
    pub fn from_values(values: Values) -> Config {
        let pass = values.get("requirepass").to_string();
        let token = values.get("http.token").to_string();
        Config {
            bind: values.get("bind").to_string(),
            port: values.int("port") as u16,
            http_port: values.int("http-port") as u16,
            databases: values.int("databases") as usize,
            maxclients: values.int("maxclients") as usize,
            io_threads: values.int("io-threads") as usize,
            timeout_secs: values.int("timeout") as u64,
            tcp_keepalive_secs: values.int("tcp-keepalive") as u64,
            requirepass: (!pass.is_empty()).then_some(pass),
            proto_max_bulk_len: values.int("proto-max-bulk-len") as usize,
            client_query_buffer_limit: values.int("client-query-buffer-limit") as usize,
            maxmemory: values.int("maxmemory") as u64,
            maxmemory_policy: values.get("maxmemory-policy").to_string(),
            maxmemory_clients: MemoryLimit::of(values.get("maxmemory-clients")),
            hz: values.int("hz") as u32,
            log_format: values.get("log-format").to_string(),
            loglevel: values.get("loglevel").to_string(),
            dir: values.get("dir").to_string(),
            slowlog_log_slower_than: values.int("slowlog-log-slower-than"),
            slowlog_max_len: values.int("slowlog-max-len") as usize,
            latency_monitor_threshold_ms: values.int("latency-monitor-threshold") as u64,
            lazyfree_lazy_user_flush: values.bool("lazyfree-lazy-user-flush"),
            shutdown_timeout_secs: values.int("shutdown-timeout") as u64,
            notify_keyspace_events: crate::pubsub::notify::parse_flags(
                values.get("notify-keyspace-events"),
            )
            .unwrap_or(0),
            pubsub_output_limit: output_limit(values.get("client-output-buffer-limit"), "pubsub"),
            replica_output_limit: output_limit(values.get("client-output-buffer-limit"), "slave"),
            http_allow_writes: values.bool("http.allow-writes"),
            http_token: (!token.is_empty()).then_some(token),
            http_max_ws_clients: values.int("http.max-ws-clients") as usize,
            cluster_enabled: values.bool("cluster.enabled"),
            hash_max_listpack_entries: values.int("hash-max-listpack-entries") as usize,
            hash_max_listpack_value: values.int("hash-max-listpack-value") as usize,
            set_max_intset_entries: values.int("set-max-intset-entries") as usize,
            list_max_listpack_size: values.int("list-max-listpack-size") as i32,
            zset_max_listpack_entries: values.int("zset-max-listpack-entries") as usize,
            zset_max_listpack_value: values.int("zset-max-listpack-value") as usize,
            hll_sparse_max_bytes: values.int("hll-sparse-max-bytes") as usize,
            config_file: None,
            values,
        }
    }

    pub fn get(&self, name: &str) -> &str {
        self.values.get(name)
    }

    pub fn get_int(&self, name: &str) -> i64 {
        self.values.int(name)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.values.bool(name)
    }

    /// A config for tests and embedding: a standalone node (no cluster) with both ports picked
    /// by the OS, bound to loopback.
    pub fn ephemeral() -> Config {
        let mut v = Values::default();
        for (k, val) in [
            ("port", "0"),
            ("http-port", "0"),
            ("bind", "127.0.0.1"),
            ("cluster.enabled", "no"),
            // Tests and embedders write no files unless they ask to.
            ("save", ""),
        ] {
            let _ = v.set(k, val, Origin::Default);
        }
        Config::from_values(v)
    }

    /// Applies `CONFIG SET name value` pairs atomically: all are checked before any is applied.
    pub fn config_set(&mut self, pairs: &[(&str, &str)]) -> Result<(), String> {
        let mut next = self.values.clone();
        for (name, raw) in pairs {
            let s = setting_by_config_name(name).ok_or_else(|| {
                format!("Unknown option or number of arguments for CONFIG SET - '{name}'")
            })?;
            if !s.mutable && !REDIS_IMMUTABLE.contains(&s.config_name) {
                // Fixed here, but setting the value in force is no change (Redis's own CONFIG
                // sanity test sets every setting so).
                let current = next.get(s.name).to_string();
                let v = s.canonical_over(&current, raw).map_err(|reason| {
                    format!("CONFIG SET failed (possibly related to argument '{name}') - {reason}")
                })?;
                if v == current {
                    continue;
                }
            }
            if !s.mutable {
                // Redis calls `dir` protected (enable-protected-configs can free it); ours
                // cannot change at run time at all, but the answer a client gets is the same.
                let what = if s.name == "dir" {
                    "protected"
                } else {
                    "immutable"
                };
                return Err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - can't set {what} config"
                ));
            }
            let current = next.get(s.name).to_string();
            let v = s.canonical_over(&current, raw).map_err(|reason| {
                format!("CONFIG SET failed (possibly related to argument '{name}') - {reason}")
            })?;
            next.map.insert(s.name, (v, Origin::ConfigSet));
        }
        let file = self.config_file.take();
        *self = Config::from_values(next);
        self.config_file = file;
        Ok(())
    }

    /// The settings that differ from their defaults, as a TOML config file (CONFIG REWRITE).
    /// `users`: the ACL users as they stand (`<name> <rules>` each, as ACL LIST without its
    /// `user` word), written as the `user` setting in place of the lines given at start-up, as
    /// Redis's rewriteConfigUserOption; None (users kept in an `aclfile`): no `user` setting.
    ///
    /// The file keeps its format: YAML for a `.yaml`/`.yml` path, else TOML. (The two are
    /// written alike: one `name <sep> value` per line, strings quoted with the escapes both
    /// read, lists in brackets; only the separator differs.)
    pub fn render_file(&self, users: Option<&[String]>) -> String {
        let yaml = self.config_file.as_deref().is_some_and(|p| {
            let p = p.to_ascii_lowercase();
            p.ends_with(".yaml") || p.ends_with(".yml")
        });
        let sep = if yaml { ": " } else { " = " };
        let mut out = String::from("# Written by CONFIG REWRITE\n");
        let defaults = Values::default();
        for (name, value, origin) in self.values.iter() {
            // (A value the node chose itself, such as a cluster node's data file names by
            // port, is left to be chosen again.)
            if name != "user" && *origin != Origin::Default && defaults.get(name) != value {
                out.push_str(&format!(
                    "{}{sep}{}\n",
                    toml_str(name),
                    toml_value(name, value)
                ));
            }
        }
        if let Some(users) = users.filter(|u| !u.is_empty()) {
            let lines: Vec<String> = users.iter().map(|u| toml_str(u)).collect();
            out.push_str(&format!("user{sep}[{}]\n", lines.join(", ")));
        }
        out
    }

    /// The effective configuration as TOML-like text with each value's origin.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, value, origin) in self.values.iter() {
            out.push_str(&format!(
                "{name} = {}  # {origin}\n",
                toml_value(name, value)
            ));
        }
        out
    }
}

/// One class's [hard, soft, seconds] from a stored `client-output-buffer-limit`.
fn output_limit(stored: &str, class: &str) -> [u64; 3] {
    let parts: Vec<&str> = stored.split_whitespace().collect();
    parts
        .chunks(4)
        .find(|g| g[0] == class && g.len() == 4)
        .map(|g| {
            [
                g[1].parse().unwrap_or(0),
                g[2].parse().unwrap_or(0),
                g[3].parse().unwrap_or(0),
            ]
        })
        .unwrap_or([0; 3])
}

fn toml_value(name: &str, value: &str) -> String {
    match setting(name).map(|s| s.kind) {
        Some(Kind::Int { .. }) | Some(Kind::Clamped { .. }) | Some(Kind::Memory) => {
            value.to_string()
        }
        _ => toml_str(value),
    }
}

/// `s` as a TOML basic string (Rust's `{:?}` is not one: it writes `\u{1}` for control
/// characters, which TOML reads as an error).
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("512mb"), Some(512 * 1024 * 1024));
        assert_eq!(parse_memory("1GB"), Some(1 << 30));
        assert_eq!(parse_memory("100k"), Some(100_000));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("12x"), None);
        assert_eq!(parse_memory("-1"), None);
    }

    /// `maxmemory-clients` takes bytes with Redis's units or a percentage of `maxmemory`, and
    /// `CONFIG GET` shows what was given.
    #[test]
    fn maxmemory_clients_in_bytes_or_percent_of_maxmemory() {
        let with = |raw: &str, maxmemory: &str| {
            let mut v = Values::default();
            v.set("maxmemory-clients", raw, Origin::Default)
                .map_err(|e| e.to_string())?;
            v.set("maxmemory", maxmemory, Origin::Default)
                .map_err(|e| e.to_string())?;
            let shown = v.get("maxmemory-clients").to_string();
            let c = Config::from_values(v);
            Ok::<_, String>((shown, c.maxmemory_clients.bytes(c.maxmemory)))
        };
        assert_eq!(with("2mb", "0"), Ok(("2097152".into(), 2 << 20)));
        assert_eq!(with("10%", "1gb"), Ok(("10%".into(), (1 << 30) / 10)));
        assert_eq!(
            with("10%", "0"),
            Ok(("10%".into(), 0)),
            "no maxmemory, no limit"
        );
        assert!(with("101%", "0").is_err());
        assert!(with("ten", "0").is_err());
    }

    #[test]
    fn defaults_are_valid_and_canonical() {
        for s in SETTINGS {
            assert_eq!(
                s.canonical(s.default).as_deref().ok(),
                Some(Values::default().get(s.name)),
                "{}",
                s.name
            );
        }
        assert_eq!(Config::default().proto_max_bulk_len, 512 << 20);
    }

    #[test]
    fn names_derive_from_one_place() {
        let s = setting("http-port").unwrap();
        assert_eq!(s.flag(), "http-port");
        assert_eq!(s.env_var(), "REREDIS_HTTP_PORT");
        let s = setting("http.allow-writes").unwrap();
        assert_eq!(s.flag(), "http-allow-writes");
        assert_eq!(s.env_var(), "REREDIS_HTTP__ALLOW_WRITES");
    }

    #[test]
    fn env_layer_and_errors_name_origin() {
        let mut v = Values::default();
        v.load_env(vec![
            ("REREDIS_PORT".to_string(), "7000".to_string()),
            ("REREDIS_MAXMEMORY".to_string(), "100mb".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ])
        .unwrap();
        assert_eq!(v.get("port"), "7000");
        assert_eq!(v.get("maxmemory"), (100 * 1024 * 1024).to_string());
        let mut v = Values::default();
        v.load_env(vec![
            ("REREDIS_HTTP__ALLOW_WRITES".to_string(), "yes".to_string()),
            ("REREDIS_HTTP__TOKEN".to_string(), "s3cret".to_string()),
        ])
        .unwrap();
        let c = Config::from_values(v);
        assert!(c.http_allow_writes);
        assert_eq!(c.http_token.as_deref(), Some("s3cret"));
        let err = Values::default()
            .load_env(vec![("REREDIS_PORT".to_string(), "seventy".to_string())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'port'") && err.contains("REREDIS_PORT"),
            "{err}"
        );
    }

    #[test]
    fn file_layer_toml_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("r.toml");
        std::fs::write(&toml, "port = 7001\nmaxmemory = \"1gb\"\n").unwrap();
        let mut v = Values::default();
        v.load_file(toml.to_str().unwrap()).unwrap();
        assert_eq!(v.get("port"), "7001");
        assert_eq!(v.get("maxmemory"), (1u64 << 30).to_string());
        let yaml = dir.path().join("r.yaml");
        std::fs::write(&yaml, "port: 7002\nbogus-setting: 1\n").unwrap();
        let err = Values::default()
            .load_file(yaml.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus-setting"), "{err}");
    }

    #[test]
    fn users_in_a_file_are_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("r.toml");
        std::fs::write(&toml, "user = [\"alice on ~a,b* +get\", \"bob off\"]\n").unwrap();
        let mut v = Values::default();
        v.load_file(toml.to_str().unwrap()).unwrap();
        assert_eq!(v.get("user"), "alice on ~a,b* +get\nbob off");
        // Not a CONFIG GET/SET name, as in Redis.
        assert!(setting_by_config_name("user").is_none());
        assert!(config_names().all(|(n, _)| n != "user"));
    }

    /// CONFIG REWRITE's file reads back as the same settings, in TOML and in YAML (by the
    /// file's extension), strings with quotes, backslashes and control characters included,
    /// the users as the `user` list.
    #[test]
    fn rewritten_file_reads_back_in_its_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.config_set(&[
            ("hz", "20"),
            ("masterauth", "a\"b\\c\u{1}d"),
            ("notify-keyspace-events", "KEA"),
        ])
        .unwrap();
        let users = [
            "default on nopass ~* &* +@all".to_string(),
            "alice on #ab ~a* +get".to_string(),
        ];
        for name in ["r.toml", "r.yaml"] {
            let path = dir.path().join(name);
            c.config_file = Some(path.to_str().unwrap().to_string());
            std::fs::write(&path, c.render_file(Some(&users))).unwrap();
            let mut v = Values::default();
            v.load_file(path.to_str().unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(v.get("hz"), "20", "{name}");
            assert_eq!(v.get("masterauth"), "a\"b\\c\u{1}d", "{name}");
            assert_eq!(
                v.get("notify-keyspace-events"),
                c.values.get("notify-keyspace-events")
            );
            assert_eq!(v.get("user"), users.join("\n"), "{name}");
        }
        // Users kept in an ACL file are not written.
        assert!(!c.render_file(None).contains("user"));
    }

    #[test]
    fn output_buffer_limits_as_redis() {
        let mut c = Config::default();
        assert_eq!(
            c.values.get("client-output-buffer-limit"),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        assert_eq!(c.pubsub_output_limit, [32 << 20, 8 << 20, 60]);
        c.config_set(&[(
            "client-output-buffer-limit",
            "replica 1mb 2mb 3 pubsub 1k 2kb 5",
        )])
        .unwrap();
        assert_eq!(
            c.values.get("client-output-buffer-limit"),
            "normal 0 0 0 slave 1048576 2097152 3 pubsub 1000 2048 5"
        );
        assert_eq!(c.pubsub_output_limit, [1000, 2048, 5]);
        for (bad, why) in [
            ("pubsub 1mb 2mb", "Wrong number"),
            ("master 1mb 2mb 3", "Invalid client class"),
            ("pubsub 1x 2mb 3", "Error in hard"),
            ("pubsub 1mb 2mb -3", "Error in hard"),
        ] {
            let err = c
                .config_set(&[("client-output-buffer-limit", bad)])
                .unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn config_set_is_atomic() {
        let mut c = Config::default();
        let err = c
            .config_set(&[("maxmemory", "10mb"), ("hz", "nope")])
            .unwrap_err();
        assert!(err.contains("'hz'"), "{err}");
        assert_eq!(c.maxmemory, 0);
        c.config_set(&[("maxmemory", "10mb")]).unwrap();
        assert_eq!(c.maxmemory, 10 << 20);
    }
}
