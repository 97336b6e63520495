//! The command table: every command described once. Dispatch, arity checks, `COMMAND`, key
//! extraction for locking and cluster routing all read these entries.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use smallvec::SmallVec;

use super::flags::*;
use super::{
    Handler, acl, connection as conn, introspection as intro, keys, server as srv, strings as st,
    transactions as tx,
};

pub type KeysFn = fn(&[Bytes]) -> SmallVec<[usize; 4]>;

pub struct Command {
    pub name: &'static str,
    /// Redis's arity: N exactly, or -N for at least N (the name counts).
    pub arity: i32,
    pub flags: u32,
    /// First key, last key (negative: from the end), step; (0, 0, 0) when there are none.
    pub keys: (i32, i32, i32),
    /// For commands whose keys move (`movablekeys`): finds them in the arguments.
    pub keys_fn: Option<KeysFn>,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub handler: Option<Handler>,
    pub subcommands: &'static [Command],
    /// Redis's key specs, for `COMMAND INFO` and `COMMAND GETKEYSANDFLAGS`. Empty: one spec is
    /// derived from `keys` (read-only commands `RO access`, others `RW update`).
    pub key_specs: &'static [KeySpec],
    /// Redis's command tips (`request_policy:multi_shard`, `nondeterministic_output`, ...).
    pub tips: &'static [&'static str],
    /// ACL categories Redis's command table names explicitly. Empty: derived from the group.
    /// The categories implied by flags (`@write`, `@fast`, ...) are always added.
    pub acl: &'static [&'static str],
}

/// One of Redis's key specs, of the shapes our commands need: the first key at a fixed index
/// (`begin_search: index`) or after a keyword (`begin_search: keyword`), the rest by range
/// (`find_keys: range`).
pub struct KeySpec {
    /// `RO`/`RW`/`OW`/`RM` and the lower-case access flags, as `COMMAND INFO` prints them.
    pub flags: &'static [&'static str],
    pub notes: Option<&'static str>,
    /// `begin_search: keyword`: the keyword and where its search starts (negative: from the
    /// end, searching backwards). `index` is unused then.
    pub keyword: Option<(&'static str, i32)>,
    pub index: i32,
    /// Last key relative to `index`; negative counts from the end of the arguments.
    pub lastkey: i32,
    pub keystep: i32,
    pub limit: i32,
    /// `find_keys: keynum` (EVAL, FCALL): (keynumidx, firstkey, keystep) relative to `index`,
    /// in place of the range.
    pub keynum: Option<(i32, i32, i32)>,
}

impl KeySpec {
    pub const fn range(
        flags: &'static [&'static str],
        index: i32,
        lastkey: i32,
        keystep: i32,
    ) -> KeySpec {
        KeySpec {
            flags,
            notes: None,
            keyword: None,
            index,
            lastkey,
            keystep,
            limit: 0,
            keynum: None,
        }
    }

    /// A spec whose keys follow `keyword` (MIGRATE's `KEYS`).
    pub const fn keyword(
        flags: &'static [&'static str],
        keyword: &'static str,
        startfrom: i32,
        lastkey: i32,
        keystep: i32,
    ) -> KeySpec {
        KeySpec {
            flags,
            notes: None,
            keyword: Some((keyword, startfrom)),
            index: 0,
            lastkey,
            keystep,
            limit: 0,
            keynum: None,
        }
    }

    /// Keys counted by the argument `keynumidx` after `index` (EVAL's `numkeys key...`).
    pub const fn keynum(
        flags: &'static [&'static str],
        index: i32,
        keynumidx: i32,
        firstkey: i32,
        keystep: i32,
    ) -> KeySpec {
        let mut s = KeySpec::range(flags, index, 0, 1);
        s.keynum = Some((keynumidx, firstkey, keystep));
        s
    }

    pub const fn limit(mut self, limit: i32) -> KeySpec {
        self.limit = limit;
        self
    }

    pub const fn notes(mut self, notes: &'static str) -> KeySpec {
        self.notes = Some(notes);
        self
    }

    /// Whether argument `pos` of `args` is one of this spec's keys. A keyword spec's one key
    /// follows the first match of its keyword (searching forwards from `startfrom`, or
    /// backwards from that far from the end when it is negative).
    pub fn covers(&self, pos: usize, args: &[Bytes]) -> bool {
        let argc = args.len();
        if let Some((numidx, firstkey, step)) = self.keynum {
            let at = (self.index + numidx) as usize;
            let Some(n) = args
                .get(at)
                .and_then(|a| crate::store::value::parse_i64_strict(a))
            else {
                return false;
            };
            let first = i64::from(self.index + firstkey);
            let last = (n - 1)
                .saturating_mul(i64::from(step.max(1)))
                .saturating_add(first);
            let pos = pos as i64;
            return n > 0
                && pos >= first
                && pos <= last.min(argc as i64 - 1)
                && (pos - first) % i64::from(step.max(1)) == 0;
        }
        if let Some((word, from)) = self.keyword {
            let is_word = |i: &usize| args[*i].eq_ignore_ascii_case(word.as_bytes());
            let found = if from >= 0 {
                (from as usize..argc).find(is_word)
            } else {
                (1..argc.saturating_sub(from.unsigned_abs() as usize - 1))
                    .rev()
                    .find(is_word)
            };
            let Some(w) = found else {
                return false;
            };
            let first = w as i64 + 1;
            let argc = argc as i64;
            let mut last = if self.lastkey < 0 {
                argc + i64::from(self.lastkey)
            } else {
                first + i64::from(self.lastkey)
            };
            // `limit`: only the first 1/limit of the keys to the end (XREAD's STREAMS k.. id..).
            if self.lastkey < 0 && self.limit > 1 {
                last = first + (last - first + 1) / i64::from(self.limit) - 1;
            }
            let pos = pos as i64;
            return pos >= first
                && pos <= last
                && (pos - first) % i64::from(self.keystep.max(1)) == 0;
        }
        let (pos, argc, first) = (pos as i64, argc as i64, i64::from(self.index));
        let last = if self.lastkey < 0 {
            argc + i64::from(self.lastkey)
        } else {
            first + i64::from(self.lastkey)
        };
        pos >= first && pos <= last && (pos - first) % i64::from(self.keystep.max(1)) == 0
    }
}

impl Command {
    pub const fn specs(mut self, specs: &'static [KeySpec]) -> Command {
        self.key_specs = specs;
        self
    }

    pub const fn tips(mut self, tips: &'static [&'static str]) -> Command {
        self.tips = tips;
        self
    }

    pub const fn acl(mut self, acl: &'static [&'static str]) -> Command {
        self.acl = acl;
        self
    }
}

/// A command with its place in the table: full name (`config|get`) and index for statistics.
pub struct CommandRef {
    pub cmd: &'static Command,
    pub fullname: String,
    pub id: usize,
    pub parent: Option<usize>,
}

pub struct Table {
    pub all: Vec<CommandRef>,
    by_name: HashMap<Vec<u8>, usize>,
    subs: HashMap<(usize, Vec<u8>), usize>,
}

const MAX_NAME: usize = 32;

/// Lower-cases `name` into a stack buffer: no allocation on the lookup path.
fn lower(name: &[u8], buf: &mut [u8; MAX_NAME]) -> Option<usize> {
    if name.len() > MAX_NAME {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    Some(name.len())
}

impl Table {
    fn build() -> Table {
        let mut t = Table {
            all: Vec::new(),
            by_name: HashMap::new(),
            subs: HashMap::new(),
        };
        for cmd in FAMILIES.iter().flat_map(|f| f.iter()) {
            let id = t.all.len();
            t.all.push(CommandRef {
                cmd,
                fullname: cmd.name.to_string(),
                id,
                parent: None,
            });
            t.by_name.insert(cmd.name.as_bytes().to_vec(), id);
            for sub in cmd.subcommands {
                let sid = t.all.len();
                t.all.push(CommandRef {
                    cmd: sub,
                    fullname: format!("{}|{}", cmd.name, sub.name),
                    id: sid,
                    parent: Some(id),
                });
                t.subs.insert((id, sub.name.as_bytes().to_vec()), sid);
            }
        }
        t
    }

    pub fn lookup(&self, name: &[u8]) -> Option<&CommandRef> {
        let mut buf = [0u8; MAX_NAME];
        let n = lower(name, &mut buf)?;
        self.by_name.get(&buf[..n]).map(|&i| &self.all[i])
    }

    pub fn lookup_sub(&self, parent: &CommandRef, name: &[u8]) -> Option<&CommandRef> {
        let mut buf = [0u8; MAX_NAME];
        let n = lower(name, &mut buf)?;
        self.subs
            .get(&(parent.id, buf[..n].to_vec()))
            .map(|&i| &self.all[i])
    }

    /// Top-level commands, in table order.
    pub fn top_level(&self) -> impl Iterator<Item = &CommandRef> {
        self.all.iter().filter(|c| c.parent.is_none())
    }

    pub fn subcommands_of(&self, parent: &CommandRef) -> impl Iterator<Item = &CommandRef> {
        let id = parent.id;
        self.all.iter().filter(move |c| c.parent == Some(id))
    }
}

pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Table::build)
}

/// Redis's ACL categories in the order it lists them (`ACLCommandCategories`).
const ACL_ORDER: &[&str] = &[
    "@keyspace",
    "@read",
    "@write",
    "@set",
    "@sortedset",
    "@list",
    "@hash",
    "@string",
    "@bitmap",
    "@hyperloglog",
    "@geo",
    "@stream",
    "@pubsub",
    "@admin",
    "@fast",
    "@slow",
    "@blocking",
    "@dangerous",
    "@connection",
    "@transaction",
    "@scripting",
];

/// ACL categories as Redis assigns them: the command's own (`acl`, or by group when it names
/// none), plus those its flags imply (`setImplicitACLCategories`), in Redis's order.
pub fn acl_categories(cmd: &Command) -> Vec<&'static str> {
    let mut cats: Vec<&'static str> = cmd.acl.to_vec();
    if cmd.acl.is_empty() && cmd.handler.is_some() {
        let by_group = match cmd.group {
            "string" => Some("@string"),
            "generic" => Some("@keyspace"),
            "connection" => Some("@connection"),
            "transactions" => Some("@transaction"),
            "pubsub" => Some("@pubsub"),
            "list" => Some("@list"),
            "hash" => Some("@hash"),
            "set" => Some("@set"),
            "sorted-set" => Some("@sortedset"),
            "bitmap" => Some("@bitmap"),
            "hyperloglog" => Some("@hyperloglog"),
            "geo" => Some("@geo"),
            "stream" => Some("@stream"),
            "scripting" => Some("@scripting"),
            _ => None,
        };
        cats.extend(by_group);
    }
    let implied = [
        (WRITE, "@write"),
        (ADMIN, "@admin"),
        (ADMIN, "@dangerous"),
        (PUBSUB, "@pubsub"),
        (FAST, "@fast"),
        (BLOCKING, "@blocking"),
    ];
    for (flag, cat) in implied {
        if cmd.flags & flag != 0 {
            cats.push(cat);
        }
    }
    // Scripting commands are not counted as reads (Redis's setImplicitACLCategories).
    if cmd.flags & READONLY != 0 && !cats.contains(&"@scripting") {
        cats.push("@read");
    }
    if cmd.flags & FAST == 0 {
        cats.push("@slow");
    }
    cats.sort_by_key(|c| ACL_ORDER.iter().position(|o| o == c).unwrap_or(usize::MAX));
    cats.dedup();
    cats
}

#[macro_export]
macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $group:literal, $since:literal, $handler:expr, $summary:literal) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            keys_fn: None,
            group: $group,
            since: $since,
            summary: $summary,
            handler: Some($handler),
            subcommands: &[],
            key_specs: &[],
            tips: &[],
            acl: &[],
        }
    };
}
pub use cmd;

macro_rules! container {
    ($name:literal, $group:literal, $since:literal, $subs:expr, $summary:literal) => {
        Command {
            name: $name,
            arity: -2,
            flags: 0,
            keys: NO_KEYS,
            keys_fn: None,
            group: $group,
            since: $since,
            summary: $summary,
            handler: None,
            subcommands: $subs,
            key_specs: &[],
            tips: &[],
            acl: &[],
        }
    };
}
pub(crate) use container;

pub const NO_KEYS: (i32, i32, i32) = (0, 0, 0);
pub const KEY1: (i32, i32, i32) = (1, 1, 1);
pub const KEY12: (i32, i32, i32) = (1, 2, 1);
pub const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);
pub const PAIRS: (i32, i32, i32) = (1, -1, 2);

pub const W: u32 = WRITE;
pub const R: u32 = READONLY;
pub const WM: u32 = WRITE | DENYOOM;
pub const WMF: u32 = WRITE | DENYOOM | FAST;
pub const WF: u32 = WRITE | FAST;
pub const RF: u32 = READONLY | FAST;
pub const CONN: u32 = NOSCRIPT | LOADING | STALE | FAST;

/// ACL's subcommands, with Redis 7.0's flags.
static ACL_SUBS: &[Command] = &[
    cmd!(
        "setuser",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::setuser,
        "Modify or create the rules for a specific ACL user"
    ),
    cmd!(
        "log",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::log,
        "List latest events denied because of ACLs in place"
    ),
    cmd!(
        "getuser",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::getuser,
        "Get the rules for a specific ACL user"
    ),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::help,
        "Show helpful text about the different subcommands"
    ),
    cmd!(
        "whoami",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::whoami,
        "Return the name of the user associated to the current connection"
    ),
    cmd!(
        "load",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::load,
        "Reload the ACLs from the configured ACL file"
    ),
    cmd!(
        "users",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::users,
        "List the username of all the configured ACL rules"
    ),
    cmd!(
        "save",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::save,
        "Save the current ACL rules in the configured ACL file"
    ),
    cmd!(
        "deluser",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::deluser,
        "Remove the specified ACL users and the associated rules"
    ),
    cmd!(
        "list",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::list,
        "List the current ACL rules in ACL config file format"
    ),
    cmd!(
        "genpass",
        -2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::genpass,
        "Generate a pseudorandom secure password to use for ACL users"
    ),
    cmd!(
        "cat",
        -2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "6.0.0",
        acl::cat,
        "List the ACL categories or the commands inside a category"
    ),
    cmd!(
        "dryrun",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "7.0.0",
        acl::dryrun,
        "Returns whether the user can execute the given command without executing the command."
    ),
];

static CONFIG_SUBS: &[Command] = &[
    cmd!(
        "get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.0.0",
        srv::config_get,
        "Returns the effective values of configuration parameters."
    ),
    cmd!(
        "set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.0.0",
        srv::config_set,
        "Sets configuration parameters in-flight."
    )
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    cmd!(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.0.0",
        srv::config_resetstat,
        "Resets the server's statistics."
    ),
    cmd!(
        "rewrite",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.0",
        srv::config_rewrite,
        "Persists the effective configuration to file."
    ),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "5.0.0",
        srv::config_help,
        "Returns helpful text about the different subcommands."
    ),
];

static CLIENT_SUBS: &[Command] = &[
    cmd!(
        "id",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "5.0.0",
        conn::client_id,
        "Returns the unique client ID of the connection."
    ),
    cmd!(
        "info",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "6.2.0",
        conn::client_info,
        "Returns information about the connection."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "list",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "2.4.0",
        conn::client_list,
        "Lists open connections."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "setname",
        3,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "2.6.9",
        conn::client_setname,
        "Sets the connection name."
    ),
    cmd!(
        "getname",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "2.6.9",
        conn::client_getname,
        "Returns the name of the connection."
    ),
    cmd!(
        "kill",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "2.4.0",
        conn::client_kill,
        "Terminates open connections."
    ),
    cmd!(
        "pause",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "3.0.0",
        conn::client_pause,
        "Suspends commands processing."
    ),
    cmd!(
        "unpause",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "6.2.0",
        conn::client_unpause,
        "Resumes processing commands from paused clients."
    ),
    cmd!(
        "no-evict",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "7.0.0",
        conn::client_no_evict,
        "Sets the client eviction mode of the connection."
    ),
    cmd!(
        "reply",
        3,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "3.2.0",
        conn::client_reply,
        "Instructs the server whether to reply to commands."
    ),
    cmd!(
        "tracking",
        -3,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "6.0.0",
        super::tracking::client_tracking,
        "Controls server-assisted client-side caching for the connection."
    ),
    cmd!(
        "trackinginfo",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "6.2.0",
        super::tracking::client_trackinginfo,
        "Returns information about server-assisted client-side caching for the connection."
    ),
    cmd!(
        "getredir",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "6.0.0",
        super::tracking::client_getredir,
        "Returns the client ID to which the connection's tracking notifications are redirected."
    ),
    cmd!(
        "caching",
        3,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "6.0.0",
        super::tracking::client_caching,
        "Instructs the server whether to track the keys in the next request."
    ),
    cmd!(
        "unblock",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "connection",
        "5.0.0",
        super::blocking::client_unblock,
        "Unblocks a client blocked by a blocking command from a different connection."
    ),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "connection",
        "5.0.0",
        conn::client_help,
        "Returns helpful text about the different subcommands."
    ),
];

static COMMAND_SUBS: &[Command] = &[
    cmd!(
        "count",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        intro::command_count,
        "Returns a count of commands."
    )
    .acl(&["@connection"]),
    cmd!(
        "info",
        -2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        intro::command_info,
        "Returns information about one, multiple or all commands."
    )
    .acl(&["@connection"])
    .tips(&["nondeterministic_output_order"]),
    cmd!(
        "docs",
        -2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "7.0.0",
        intro::command_docs,
        "Returns documentary information about one, multiple or all commands."
    )
    .acl(&["@connection"])
    .tips(&["nondeterministic_output_order"]),
    cmd!(
        "list",
        -2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "7.0.0",
        intro::command_list,
        "Returns a list of command names."
    )
    .acl(&["@connection"])
    .tips(&["nondeterministic_output_order"]),
    cmd!(
        "getkeys",
        -4,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        intro::command_getkeys,
        "Extracts the key names from an arbitrary command."
    )
    .acl(&["@connection"]),
    cmd!(
        "getkeysandflags",
        -4,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "7.0.0",
        intro::command_getkeysandflags,
        "Extracts the key names and access flags for an arbitrary command."
    )
    .acl(&["@connection"]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "5.0.0",
        intro::command_help,
        "Returns helpful text about the different subcommands."
    )
    .acl(&["@connection"]),
];

static SLOWLOG_SUBS: &[Command] = &[
    cmd!(
        "get",
        -2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.2.12",
        srv::slowlog_get,
        "Returns the slow log's entries."
    )
    .tips(&["request_policy:all_nodes", "nondeterministic_output"]),
    cmd!(
        "len",
        2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.2.12",
        srv::slowlog_len,
        "Returns the number of entries in the slow log."
    )
    .tips(&[
        "request_policy:all_nodes",
        "response_policy:agg_sum",
        "nondeterministic_output",
    ]),
    cmd!(
        "reset",
        2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.2.12",
        srv::slowlog_reset,
        "Clears all entries from the slow log."
    )
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "6.2.0",
        srv::slowlog_help,
        "Show helpful text about the different subcommands"
    ),
];

static MODULE_SUBS: &[Command] = &[
    cmd!(
        "list",
        2,
        ADMIN | NOSCRIPT,
        NO_KEYS,
        "server",
        "4.0.0",
        srv::module_list,
        "Returns all loaded modules."
    )
    .acl(&["@admin", "@dangerous"])
    .tips(&["nondeterministic_output_order"]),
    cmd!(
        "load",
        -3,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "4.0.0",
        srv::module_load,
        "Loads a module."
    )
    .acl(&["@admin", "@dangerous"]),
    cmd!(
        "loadex",
        -3,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "7.0.0",
        srv::module_load,
        "Loads a module using extended parameters."
    )
    .acl(&["@admin", "@dangerous"]),
    cmd!(
        "unload",
        3,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "4.0.0",
        srv::module_unload,
        "Unloads a module."
    )
    .acl(&["@admin", "@dangerous"]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "5.0.0",
        srv::module_help,
        "Returns helpful text about the different subcommands."
    ),
];

static LATENCY_SUBS: &[Command] = &[
    cmd!(
        "latest",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        srv::latency_latest,
        "Returns the latest latency samples for all events."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_nodes",
        "response_policy:special",
    ]),
    cmd!(
        "history",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        srv::latency_history,
        "Returns timestamp-latency samples for an event."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_nodes",
        "response_policy:special",
    ]),
    cmd!(
        "reset",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        srv::latency_reset,
        "Resets the latency data for one or more events."
    )
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    cmd!(
        "graph",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        srv::latency_graph,
        "Return a latency graph for the event."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_nodes",
        "response_policy:special",
    ]),
    cmd!(
        "doctor",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        srv::latency_doctor,
        "Returns a human-readable latency analysis report."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_nodes",
        "response_policy:special",
    ]),
    cmd!(
        "histogram",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "7.0.0",
        srv::latency_histogram,
        "Returns the cumulative distribution of latencies of a subset or all commands."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_nodes",
        "response_policy:special",
    ]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        srv::latency_help,
        "Returns helpful text about the different subcommands."
    ),
];

static OBJECT_SUBS: &[Command] = &[
    cmd!(
        "encoding",
        3,
        READONLY,
        KEY_2,
        "generic",
        "2.2.3",
        keys::object,
        "Returns the internal encoding of a Redis object."
    )
    .tips(&["nondeterministic_output"])
    .specs(&[KeySpec::range(&["RO"], 2, 0, 1)]),
    cmd!(
        "freq",
        3,
        READONLY,
        KEY_2,
        "generic",
        "4.0.0",
        keys::object,
        "Returns the logarithmic access frequency counter of a Redis object."
    )
    .tips(&["nondeterministic_output"])
    .specs(&[KeySpec::range(&["RO"], 2, 0, 1)]),
    cmd!(
        "idletime",
        3,
        READONLY,
        KEY_2,
        "generic",
        "2.2.3",
        keys::object,
        "Returns the time since the last access to a Redis object."
    )
    .tips(&["nondeterministic_output"])
    .specs(&[KeySpec::range(&["RO"], 2, 0, 1)]),
    cmd!(
        "refcount",
        3,
        READONLY,
        KEY_2,
        "generic",
        "2.2.3",
        keys::object,
        "Returns the reference count of a value of a key."
    )
    .tips(&["nondeterministic_output"])
    .specs(&[KeySpec::range(&["RO"], 2, 0, 1)]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "generic",
        "6.2.0",
        keys::object,
        "Returns helpful text about the different subcommands."
    ),
];

static MEMORY_SUBS: &[Command] = &[
    cmd!(
        "usage",
        -3,
        READONLY,
        KEY_2,
        "server",
        "4.0.0",
        keys::memory,
        "Estimates the memory usage of a key."
    )
    .specs(&[KeySpec::range(&["RO"], 2, 0, 1)]),
    cmd!(
        "stats",
        2,
        0,
        NO_KEYS,
        "server",
        "4.0.0",
        keys::memory,
        "Returns details about memory usage."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ]),
    cmd!(
        "doctor",
        2,
        0,
        NO_KEYS,
        "server",
        "4.0.0",
        keys::memory,
        "Outputs a memory problems report."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ]),
    cmd!(
        "purge",
        2,
        0,
        NO_KEYS,
        "server",
        "4.0.0",
        keys::memory,
        "Asks the allocator to release memory."
    )
    .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    cmd!(
        "malloc-stats",
        2,
        0,
        NO_KEYS,
        "server",
        "4.0.0",
        keys::memory,
        "Returns the allocator statistics."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "4.0.0",
        keys::memory,
        "Returns helpful text about the different subcommands."
    ),
];

pub const KEY_2: (i32, i32, i32) = (2, 2, 1);

/// Every command family's table. A family file (`hash.rs`, `list.rs`, ...) declares its own
/// `pub static COMMANDS: &[Command]` and is listed here.
static FAMILIES: &[&[Command]] = &[
    COMMANDS,
    super::cluster::COMMANDS,
    super::hash::COMMANDS,
    super::set::COMMANDS,
    super::sort::COMMANDS,
    super::list::COMMANDS,
    super::zset::COMMANDS,
    super::geo::COMMANDS,
    super::stream::COMMANDS,
    super::functions::COMMANDS,
    super::scripting::COMMANDS,
    super::pubsub::COMMANDS,
    super::bitmap::COMMANDS,
    super::hyperloglog::COMMANDS,
    super::migrate::COMMANDS,
];

pub static COMMANDS: &[Command] = &[
    // strings
    cmd!(
        "get",
        2,
        RF,
        KEY1,
        "string",
        "1.0.0",
        st::get,
        "Returns the string value of a key."
    ),
    cmd!(
        "set",
        -3,
        WM,
        KEY1,
        "string",
        "1.0.0",
        st::set,
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "update", "variable_flags"], 1, 0, 1).notes("RW and ACCESS due to the optional `GET` argument")]),
    cmd!(
        "setnx",
        3,
        WMF,
        KEY1,
        "string",
        "1.0.0",
        st::setnx,
        "Set the string value of a key only when the key doesn't exist."
    ).specs(&[KeySpec::range(&["OW", "insert"], 1, 0, 1)]),
    cmd!(
        "setex",
        4,
        WM,
        KEY1,
        "string",
        "2.0.0",
        st::setex,
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."
    ).specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1)]),
    cmd!(
        "psetex",
        4,
        WM,
        KEY1,
        "string",
        "2.6.0",
        st::psetex,
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."
    ).specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1)]),
    cmd!(
        "getex",
        -2,
        WF,
        KEY1,
        "string",
        "6.2.0",
        st::getex,
        "Returns the string value of a key after setting its expiration time."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1).notes("RW and UPDATE because it changes the TTL")]),
    cmd!(
        "getdel",
        2,
        WF,
        KEY1,
        "string",
        "6.2.0",
        st::getdel,
        "Returns the string value of a key after deleting the key."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1)]),
    cmd!(
        "getset",
        3,
        WMF,
        KEY1,
        "string",
        "1.0.0",
        st::getset,
        "Returns the previous string value of a key after setting it to a new value."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "mget",
        -2,
        RF,
        ALL_KEYS,
        "string",
        "1.0.0",
        st::mget,
        "Atomically returns the string values of one or more keys."
    ).tips(&["request_policy:multi_shard"]),
    cmd!(
        "mset",
        -3,
        WM,
        PAIRS,
        "string",
        "1.0.1",
        st::mset,
        "Atomically creates or modifies the string values of one or more keys."
    ).tips(&["request_policy:multi_shard", "response_policy:all_succeeded"]).specs(&[KeySpec::range(&["OW", "update"], 1, -1, 2)]),
    cmd!(
        "msetnx",
        -3,
        WM,
        PAIRS,
        "string",
        "1.0.1",
        st::msetnx,
        "Atomically modifies the string values of one or more keys only when all keys don't exist."
    ).tips(&["request_policy:multi_shard", "response_policy:agg_min"]).specs(&[KeySpec::range(&["OW", "insert"], 1, -1, 2)]),
    cmd!(
        "append",
        3,
        WMF,
        KEY1,
        "string",
        "2.0.0",
        st::append,
        "Appends a string to the value of a key. Creates the key if it doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "insert"], 1, 0, 1)]),
    cmd!(
        "strlen",
        2,
        RF,
        KEY1,
        "string",
        "2.2.0",
        st::strlen,
        "Returns the length of a string value."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "getrange",
        4,
        R,
        KEY1,
        "string",
        "2.4.0",
        st::getrange,
        "Returns a substring of the string stored at a key."
    ),
    cmd!(
        "substr",
        4,
        R,
        KEY1,
        "string",
        "1.0.0",
        st::getrange,
        "Returns a substring from a string value."
    ),
    cmd!(
        "setrange",
        4,
        WM,
        KEY1,
        "string",
        "2.2.0",
        st::setrange,
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."
    ),
    cmd!(
        "incr",
        2,
        WMF,
        KEY1,
        "string",
        "1.0.0",
        st::incr,
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "decr",
        2,
        WMF,
        KEY1,
        "string",
        "1.0.0",
        st::decr,
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "incrby",
        3,
        WMF,
        KEY1,
        "string",
        "1.0.0",
        st::incrby,
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "decrby",
        3,
        WMF,
        KEY1,
        "string",
        "1.0.0",
        st::decrby,
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "incrbyfloat",
        3,
        WMF,
        KEY1,
        "string",
        "2.6.0",
        st::incrbyfloat,
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "lcs",
        -3,
        R,
        KEY12,
        "string",
        "7.0.0",
        st::lcs,
        "Finds the longest common substring."
    ),
    // keyspace
    cmd!(
        "del",
        -2,
        W,
        ALL_KEYS,
        "generic",
        "1.0.0",
        keys::del,
        "Deletes one or more keys."
    ).tips(&["request_policy:multi_shard", "response_policy:agg_sum"]).specs(&[KeySpec::range(&["RM", "delete"], 1, -1, 1)]),
    cmd!(
        "unlink",
        -2,
        WF,
        ALL_KEYS,
        "generic",
        "4.0.0",
        keys::unlink,
        "Asynchronously deletes one or more keys."
    ).tips(&["request_policy:multi_shard", "response_policy:agg_sum"]).specs(&[KeySpec::range(&["RM", "delete"], 1, -1, 1)]),
    cmd!(
        "exists",
        -2,
        RF,
        ALL_KEYS,
        "generic",
        "1.0.0",
        keys::exists,
        "Determines whether one or more keys exist."
    ).tips(&["request_policy:multi_shard", "response_policy:agg_sum"]).specs(&[KeySpec::range(&["RO"], 1, -1, 1)]),
    cmd!(
        "touch",
        -2,
        RF,
        ALL_KEYS,
        "generic",
        "3.2.1",
        keys::touch,
        "Returns the number of existing keys out of those specified after updating the time they were last accessed."
    ).tips(&["request_policy:multi_shard", "response_policy:agg_sum"]).specs(&[KeySpec::range(&["RO"], 1, -1, 1)]),
    cmd!(
        "type",
        2,
        RF,
        KEY1,
        "generic",
        "1.0.0",
        keys::type_,
        "Determines the type of value stored at a key."
    ).specs(&[KeySpec::range(&["RO"], 1, 0, 1)]),
    cmd!(
        "keys",
        2,
        R | ALL_SHARDS,
        NO_KEYS,
        "generic",
        "1.0.0",
        keys::keys,
        "Returns all key names that match a pattern."
    ).acl(&["@keyspace", "@dangerous"]).tips(&["request_policy:all_shards", "nondeterministic_output_order"]),
    cmd!(
        "scan",
        -2,
        R,
        NO_KEYS,
        "generic",
        "2.8.0",
        keys::scan,
        "Iterates over the key names in the database."
    ).tips(&["nondeterministic_output", "request_policy:special"]),
    cmd!(
        "randomkey",
        1,
        R | ALL_SHARDS,
        NO_KEYS,
        "generic",
        "1.0.0",
        keys::randomkey,
        "Returns a random key name from the database."
    ).tips(&["request_policy:all_shards", "nondeterministic_output"]),
    cmd!(
        "rename",
        3,
        W,
        KEY12,
        "generic",
        "1.0.0",
        keys::rename,
        "Renames a key and overwrites the destination."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["OW", "update"], 2, 0, 1)]),
    cmd!(
        "renamenx",
        3,
        WF,
        KEY12,
        "generic",
        "1.0.0",
        keys::renamenx,
        "Renames a key only when the target key name doesn't exist."
    ).specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["OW", "insert"], 2, 0, 1)]),
    cmd!(
        "dump",
        2,
        R,
        KEY1,
        "generic",
        "2.6.0",
        keys::dump,
        "Returns a serialized representation of the value stored at a key."
    ).specs(&[KeySpec::range(&["RO", "access"], 1, 0, 1)]).tips(&["nondeterministic_output"]),
    cmd!(
        "restore",
        -4,
        WM,
        KEY1,
        "generic",
        "2.6.0",
        keys::restore,
        "Creates a key from the serialized representation of a value."
    ).specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1)]).acl(&["@keyspace", "@dangerous"]),
    cmd!(
        "restore-asking",
        -4,
        WM | ASKING,
        KEY1,
        "server",
        "3.0.0",
        keys::restore,
        "An internal command for migrating keys in a cluster."
    ).specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1)]).acl(&["@keyspace", "@dangerous"]),
    cmd!(
        "copy",
        -3,
        WM,
        KEY12,
        "generic",
        "6.2.0",
        keys::copy,
        "Copies the value of a key to a new key."
    ).specs(&[KeySpec::range(&["RO", "access"], 1, 0, 1), KeySpec::range(&["OW", "update"], 2, 0, 1)]),
    cmd!(
        "move",
        3,
        WF,
        KEY1,
        "generic",
        "1.0.0",
        keys::move_,
        "Moves a key to another database."
    ).specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    container!(
        "object",
        "generic",
        "2.2.3",
        OBJECT_SUBS,
        "A container for object introspection commands."
    ),
    container!(
        "memory",
        "server",
        "4.0.0",
        MEMORY_SUBS,
        "A container for memory diagnostics commands."
    ),
    cmd!(
        "expire",
        -3,
        WF,
        KEY1,
        "generic",
        "1.0.0",
        keys::expire,
        "Sets the expiration time of a key in seconds."
    ),
    cmd!(
        "pexpire",
        -3,
        WF,
        KEY1,
        "generic",
        "2.6.0",
        keys::pexpire,
        "Sets the expiration time of a key in milliseconds."
    ),
    cmd!(
        "expireat",
        -3,
        WF,
        KEY1,
        "generic",
        "1.2.0",
        keys::expireat,
        "Sets the expiration time of a key to a Unix timestamp."
    ),
    cmd!(
        "pexpireat",
        -3,
        WF,
        KEY1,
        "generic",
        "2.6.0",
        keys::pexpireat,
        "Sets the expiration time of a key to a Unix milliseconds timestamp."
    ),
    cmd!(
        "ttl",
        2,
        RF,
        KEY1,
        "generic",
        "1.0.0",
        keys::ttl,
        "Returns the expiration time in seconds of a key."
    ).tips(&["nondeterministic_output"]),
    cmd!(
        "pttl",
        2,
        RF,
        KEY1,
        "generic",
        "2.6.0",
        keys::pttl,
        "Returns the expiration time in milliseconds of a key."
    ).tips(&["nondeterministic_output"]),
    cmd!(
        "expiretime",
        2,
        RF,
        KEY1,
        "generic",
        "7.0.0",
        keys::expiretime,
        "Returns the expiration time of a key as a Unix timestamp."
    ),
    cmd!(
        "pexpiretime",
        2,
        RF,
        KEY1,
        "generic",
        "7.0.0",
        keys::pexpiretime,
        "Returns the expiration time of a key as a Unix milliseconds timestamp."
    ),
    cmd!(
        "persist",
        2,
        WF,
        KEY1,
        "generic",
        "2.2.0",
        keys::persist,
        "Removes the expiration time of a key."
    ),
    // connection
    cmd!(
        "ping",
        -1,
        FAST,
        NO_KEYS,
        "connection",
        "1.0.0",
        conn::ping,
        "Returns the server's liveliness response."
    ).tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    cmd!(
        "echo",
        2,
        LOADING | STALE | FAST,
        NO_KEYS,
        "connection",
        "1.0.0",
        conn::echo,
        "Returns the given string."
    ),
    cmd!(
        "quit",
        -1,
        ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        NO_KEYS,
        "connection",
        "1.0.0",
        conn::quit,
        "Closes the connection."
    ),
    cmd!(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        NO_KEYS,
        "connection",
        "6.2.0",
        conn::reset,
        "Resets the connection."
    ),
    cmd!(
        "select",
        2,
        LOADING | STALE | FAST,
        NO_KEYS,
        "connection",
        "1.0.0",
        conn::select,
        "Changes the selected database."
    ),
    cmd!(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        NO_KEYS,
        "connection",
        "1.0.0",
        conn::auth,
        "Authenticates the connection."
    ),
    cmd!(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        NO_KEYS,
        "connection",
        "6.0.0",
        conn::hello,
        "Handshakes with the Redis server."
    ),
    container!(
        "client",
        "connection",
        "2.4.0",
        CLIENT_SUBS,
        "A container for client connection commands."
    ),
    // transactions
    cmd!(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        NO_KEYS,
        "transactions",
        "1.2.0",
        tx::multi,
        "Starts a transaction."
    ),
    cmd!(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG | ALL_SHARDS,
        NO_KEYS,
        "transactions",
        "1.2.0",
        tx::exec,
        "Executes all commands in a transaction."
    ),
    cmd!(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        NO_KEYS,
        "transactions",
        "2.0.0",
        tx::discard,
        "Discards a transaction."
    ),
    cmd!(
        "watch",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        ALL_KEYS,
        "transactions",
        "2.2.0",
        tx::watch,
        "Monitors changes to keys to determine the execution of a transaction."
    ).specs(&[KeySpec::range(&["RO"], 1, -1, 1)]),
    cmd!(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        NO_KEYS,
        "transactions",
        "2.2.0",
        tx::unwatch,
        "Forgets about watched keys of a transaction."
    ),
    // server
    cmd!(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE | ALL_SHARDS,
        NO_KEYS,
        "server",
        "1.0.0",
        super::debug::debug,
        "A container for debugging commands."
    ),
    cmd!(
        "dbsize",
        1,
        RF | ALL_SHARDS,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::dbsize,
        "Returns the number of keys in the database."
    ).acl(&["@keyspace"]).tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
    cmd!(
        "flushdb",
        -1,
        W | ALL_SHARDS,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::flushdb,
        "Remove all keys from the current database."
    ).acl(&["@keyspace", "@dangerous"]).tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    cmd!(
        "flushall",
        -1,
        W | ALL_SHARDS,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::flushall,
        "Removes all keys from all databases."
    ).acl(&["@keyspace", "@dangerous"]).tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    cmd!(
        "swapdb",
        3,
        WF | ALL_SHARDS,
        NO_KEYS,
        "server",
        "4.0.0",
        srv::swapdb,
        "Swaps two Redis databases."
    ).acl(&["@keyspace", "@dangerous"]),
    cmd!(
        "info",
        -1,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::info,
        "Returns information and statistics about the server."
    ).acl(&["@dangerous"]).tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),
    cmd!(
        "time",
        1,
        LOADING | STALE | FAST,
        NO_KEYS,
        "server",
        "2.6.0",
        srv::time,
        "Returns the server time."
    ).tips(&["nondeterministic_output"]),
    cmd!(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::lastsave,
        "Returns the Unix timestamp of the last successful save to disk."
    ).acl(&["@admin", "@dangerous"]).tips(&["nondeterministic_output"]),
    cmd!(
        "save",
        1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::save,
        "Synchronously saves the database(s) to disk."
    ).acl(&["@admin", "@dangerous"]),
    cmd!(
        "bgsave",
        -1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::bgsave,
        "Asynchronously saves the database(s) to disk."
    ).acl(&["@admin", "@dangerous"]),
    cmd!(
        "bgrewriteaof",
        1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::bgrewriteaof,
        "Asynchronously rewrites the append-only file to disk."
    ).acl(&["@admin", "@dangerous"]),
    cmd!(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::shutdown,
        "Synchronously saves the database(s) to disk and shuts down the Redis server."
    ),
    cmd!(
        "monitor",
        1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        "server",
        "1.0.0",
        srv::monitor,
        "Listens for all requests received by the server in real-time."
    ),
    container!(
        "config",
        "server",
        "2.0.0",
        CONFIG_SUBS,
        "A container for server configuration commands."
    ),
    container!(
        "acl",
        "server",
        "6.0.0",
        ACL_SUBS,
        "A container for Access List Control commands "
    ),
    container!(
        "slowlog",
        "server",
        "2.2.12",
        SLOWLOG_SUBS,
        "A container for slow log commands."
    ),
    container!(
        "latency",
        "server",
        "2.8.13",
        LATENCY_SUBS,
        "A container for latency diagnostics commands."
    ),
    container!(
        "module",
        "server",
        "4.0.0",
        MODULE_SUBS,
        "A container for module commands."
    ),
    cmd!(
        "lolwut",
        -1,
        RF,
        NO_KEYS,
        "server",
        "5.0.0",
        srv::lolwut,
        "Display some computer art and the Redis version"
    ),
    Command {
        name: "command",
        arity: -1,
        flags: LOADING | STALE,
        keys: NO_KEYS,
        keys_fn: None,
        group: "server",
        since: "2.8.13",
        summary: "Returns detailed information about all commands.",
        handler: Some(intro::command),
        subcommands: COMMAND_SUBS,
        key_specs: &[],
        tips: &["nondeterministic_output_order"],
        acl: &["@connection"],
    },
];
