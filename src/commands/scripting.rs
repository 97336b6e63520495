//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (LOAD, EXISTS, FLUSH, KILL), as
//! Redis 7.0 runs them: Lua 5.1 (the `mlua` crate, vendored), `KEYS` and `ARGV`, `redis.call`
//! and `redis.pcall`, `redis.error_reply`/`status_reply`/`sha1hex`/`log`, Redis's conversions
//! between replies and Lua values, read-only globals, and errors worded as Redis words them
//! (`... script: <sha>, on @user_script:<line>.`).
//!
//! A script runs alone, as in Redis: EVAL locks every shard (in a cluster, the shards of its
//! declared keys, which must then be all it touches), so the commands it calls see no other
//! client's writes and no other client sees its writes half done. The commands it calls run
//! through [`super::run`] under that lock, so they notify, invalidate, count in statistics and
//! reach the append-only log and replicas like any command; the log records what the script
//! did (its writes, as one transaction record), not the script, as Redis 7.0 replicates
//! effects. One Lua state serves the node; it is made on first use and dropped by SCRIPT FLUSH.
//!
//! The `cjson`, `cmsgpack` and `bit` libraries are there (`lua_libs`). Not carried over:
//! `struct`, RESP3 inside
//! scripts (`redis.setresp(3)`), SCRIPT DEBUG, and the busy-script replies (`-BUSY`): while a
//! script runs, other clients wait for its locks; SCRIPT KILL stops a script that has not
//! written yet, as in Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use parking_lot::Mutex;
use smallvec::SmallVec;
use tokio_util::sync::CancellationToken;

use super::args::{eq_ic, int};
use super::error::{CmdError, CmdResult};
use super::flags::*;
use super::list::numkeys_positions;
use super::table::{Command, KeySpec, NO_KEYS, cmd, container};
use super::{After, Ctx};
use crate::cluster::routing::Redirect;
use crate::cluster::slots::key_hash_slot;
use crate::resp::Reply;
use crate::resp::writer::fmt_g;
use crate::store::Keyspace;

/// The node's scripting state: its Lua state (made on first use) and what SCRIPT KILL reads
/// while a script holds that state.
#[derive(Default)]
pub struct Scripts {
    pub(crate) engine: Mutex<Option<Engine>>,
    /// The running function (FCALL): its name, command and start (Unix ms); None for EVAL.
    function: Mutex<Option<(String, Vec<Bytes>, i64)>>,
    /// Libraries and functions when the running function started (FUNCTION STATS).
    function_counts: Mutex<(usize, usize)>,
    /// A script is running.
    running: AtomicBool,
    /// The running script has called a write command (it can no longer be killed).
    wrote: AtomicBool,
    /// `DEBUG SET-DISABLE-DENY-SCRIPTS 1`: scripts may call commands flagged `noscript` (a
    /// hook of Redis's tests).
    pub disable_deny: AtomicBool,
    /// SCRIPT KILL asked the running script to stop.
    kill: Arc<AtomicBool>,
    /// When the running script started (Unix ms).
    started_ms: std::sync::atomic::AtomicI64,
    /// Signalled when a script ends, for the clients waiting for it.
    ended: tokio::sync::Notify,
    /// When the running script should hand its runtime worker over (Unix ms; 0: no script).
    handover_at: Arc<std::sync::atomic::AtomicI64>,
    /// The running script called `redis.setresp(3)`: its commands reply in RESP3.
    resp3: Arc<AtomicBool>,
    /// While a library's code loads (FUNCTION LOAD): when it is stopped (Unix ms; 0: none).
    pub(crate) load_deadline: Arc<std::sync::atomic::AtomicI64>,
    /// INFO's figures as last read (while a script holds the engine, INFO shows these).
    info_figures: Mutex<ScriptFigures>,
    /// How long other clients wait for a running script before they get `-BUSY`
    /// (`busy-reply-threshold`, formerly `lua-time-limit`; set from the configuration).
    pub busy_threshold_ms: std::sync::atomic::AtomicI64,
}

/// What INFO memory reports of scripting.
#[derive(Clone, Copy, Default, Debug)]
pub struct ScriptFigures {
    /// EVAL scripts cached (SCRIPT LOAD, EVAL).
    pub cached_scripts: usize,
    pub libraries: usize,
    pub functions: usize,
    /// Bytes the Lua state holds (scripts and functions share one state here).
    pub lua_memory: usize,
}

pub const BUSY_ERROR: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// The same while a function runs.
pub const BUSY_FUNCTION_ERROR: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

impl Scripts {
    /// Waits, without holding a thread, until no script runs (true), or until the running one
    /// has run past the busy threshold (false: the command gets `-BUSY`, as in Redis). A
    /// command that waited on the script's locks instead would hold one of the runtime's
    /// threads, and enough of them would leave none for SCRIPT KILL.
    pub async fn wait_until_idle(&self) -> bool {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before the check, so an end in between is not missed.
            ended.as_mut().enable();
            if !self.running.load(Ordering::Acquire) {
                return true;
            }
            let threshold = self.busy_threshold_ms.load(Ordering::Relaxed);
            if threshold <= 0 {
                // `busy-reply-threshold 0`: never busy (Redis installs no hook), others wait.
                ended.await;
                continue;
            }
            let since = self.started_ms.load(Ordering::Relaxed);
            let left = threshold - (super::now_ms() - since);
            if left <= 0 {
                return false;
            }
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(left as u64)) => {}
            }
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Waits until the running script (if any) ends, however long it runs.
    pub async fn wait_end(&self) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !self.running.load(Ordering::Acquire) {
                return;
            }
            ended.await;
        }
    }

    /// The `-BUSY` error for what runs: a script or a function.
    pub fn busy_error(&self) -> &'static str {
        if self.function.lock().is_some() {
            BUSY_FUNCTION_ERROR
        } else {
            BUSY_ERROR
        }
    }

    /// INFO memory's scripting figures: read from the engine when no script holds it, else
    /// the last ones read.
    pub fn figures(&self) -> ScriptFigures {
        let mut last = self.info_figures.lock();
        if let Some(guard) = self.engine.try_lock() {
            *last = match guard.as_ref() {
                Some(e) => {
                    let (libraries, functions) = super::functions::counts(e);
                    ScriptFigures {
                        cached_scripts: e.scripts.len(),
                        libraries,
                        functions,
                        lua_memory: e.lua.used_memory(),
                    }
                }
                None => ScriptFigures::default(),
            };
        }
        *last
    }

    /// A function starts (FCALL): what FUNCTION STATS and FUNCTION KILL look at.
    pub(crate) fn note_function(&self, name: &str, args: &[Bytes], counts: (usize, usize)) {
        *self.function.lock() = Some((name.to_string(), args.to_vec(), super::now_ms()));
        *self.function_counts.lock() = counts;
    }

    pub(crate) fn note_function_end(&self) {
        *self.function.lock() = None;
    }

    /// The running function: name, command, start.
    pub(crate) fn running_function(&self) -> Option<(String, Vec<Bytes>, i64)> {
        self.function.lock().clone()
    }

    pub(crate) fn function_counts(&self) -> (usize, usize) {
        *self.function_counts.lock()
    }
}

/// SCRIPT KILL (`function` false) or FUNCTION KILL: stops the running script or function if
/// it has not written; each refuses to stop the other kind, as Redis.
pub(crate) fn kill_running(node: &crate::node::Node, function: bool) -> Result<(), CmdError> {
    let s = &node.scripts;
    if !s.running.load(Ordering::Relaxed) {
        return Err(CmdError::Msg(
            "NOTBUSY No scripts in execution right now.".into(),
        ));
    }
    if s.wrote.load(Ordering::Relaxed) {
        return Err(CmdError::Msg("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into()));
    }
    let is_function = s.function.lock().is_some();
    if is_function && !function {
        return Err(CmdError::Msg(BUSY_FUNCTION_ERROR.into()));
    }
    if !is_function && function {
        return Err(CmdError::Msg(BUSY_ERROR.into()));
    }
    s.kill.store(true, Ordering::Relaxed);
    Ok(())
}

/// Whether a command may run while a script does (SCRIPT KILL, SHUTDOWN, AUTH, HELLO, ...:
/// Redis's `allow-busy`). One that does not resolve is let through to get its error.
pub fn allowed_while_busy(args: &[Bytes]) -> bool {
    super::resolve(args).map_or(true, |c| c.cmd.flags & ALLOW_BUSY != 0)
}

/// Marks the end of a script run when dropped.
struct RunningGuard<'a>(&'a Scripts);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        self.0.kill.store(false, Ordering::Relaxed);
        self.0.ended.notify_waiters();
    }
}

/// After how long a running script hands its runtime worker over (and how often it tries
/// again, if a try came back with the worker still there).
const HANDOVER_AFTER_MS: i64 = 10;
const HANDOVER_RETRY_MS: i64 = 50;

fn now_ms_clock() -> i64 {
    super::now_ms()
}

/// Hands the current runtime worker's duties to another thread for the rest of a long script:
/// `block_in_place` gives the worker's core away and, given a moment for another thread to
/// take it, does not get it back when it returns. On a connection thread there is nothing to
/// hand over.
fn hand_worker_over() {
    if crate::server::on_connection_thread() {
        return;
    }
    if let Ok(tokio::runtime::RuntimeFlavor::MultiThread) =
        tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor())
    {
        tokio::task::block_in_place(|| std::thread::sleep(std::time::Duration::from_millis(1)));
    }
}

struct Script {
    f: Function,
    /// The flags of a `#!lua` first line (none for a script without one).
    flags: ScriptFlags,
}

#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub(crate) struct ScriptFlags {
    /// It has a `#!lua` line (Redis 7's scripts; the others run in the compatible mode).
    pub shebang: bool,
    /// `no-writes`: writes are refused as in EVAL_RO.
    pub no_writes: bool,
    /// `allow-oom`: it may write over `maxmemory`.
    pub allow_oom: bool,
    /// `allow-stale`: it may run on a replica whose link is down with
    /// `replica-serve-stale-data no` (the commands it calls must be `stale` ones).
    pub allow_stale: bool,
    /// `no-cluster`: it does not run on a cluster node.
    pub no_cluster: bool,
    /// `allow-cross-slot-keys`: in a cluster, it may touch keys of several (local) slots.
    pub allow_cross_slot: bool,
}

impl ScriptFlags {
    /// Whether its keys may be in several slots of this node: a compatible-mode script (no
    /// shebang) or one flagged `allow-cross-slot-keys`, as Redis's SCRIPT_ALLOW_CROSS_SLOT.
    pub fn cross_slot(&self) -> bool {
        !self.shebang || self.allow_cross_slot
    }

    /// `no-cluster` on a cluster node: Redis's refusal.
    pub fn refused_on(&self, node: &crate::node::Node) -> Option<CmdError> {
        (self.shebang && self.no_cluster && node.cluster.is_some())
            .then(|| CmdError::err("Can not run script on cluster, 'no-cluster' flag is set."))
    }
}

pub(crate) struct Engine {
    pub(crate) lua: Lua,
    /// Compiled scripts by lower-case SHA1 of their body.
    scripts: HashMap<String, Script>,
    /// The real globals (KEYS, ARGV and the call hook are set here).
    globals: Table,
    /// What scripts see as their globals: reads of a missing name and every write are errors.
    env: Table,
    /// `xpcall` with Redis's error handler: returns (ok, result or error table).
    run: Function,
    /// The `redis` library behind its read-only view (`call` and `pcall` are set per run).
    redis: Table,
    /// What function libraries see as their globals (see the prelude).
    pub(crate) fenv: Table,
    /// Runs since the collector last took its steps (see [`GC_PERIOD`]).
    runs_since_gc: std::cell::Cell<u32>,
    /// Runs a library's compiled code: (ok, error table or the functions it registered).
    pub(crate) load_library: Function,
    /// Function libraries by name (FUNCTION LOAD).
    pub(crate) libraries: std::collections::BTreeMap<String, super::functions::Library>,
    /// Set while a library's code loads (see `Scripts::load_deadline`).
    pub(crate) load_deadline: Arc<std::sync::atomic::AtomicI64>,
}

/// Lua code run once in a new state (chunk `=redis`, which the error handler skips when it
/// looks for the script's line). It returns the scripts' environment and the runner.
const PRELUDE: &str = r#"
local dbg, G = debug, _G
local type, tostring, error, rawget, setmetatable, xpcall =
      type, tostring, error, rawget, setmetatable, xpcall

-- Redis's __redis__err__handler: an error becomes a table {err, source, line}, the line being
-- the script's (frames of C functions and of this chunk are skipped).
local function handler(err)
  if type(err) == 'userdata' then
    -- Raised from Rust: redis.call leaves its error table here, the libraries their message.
    local pending = rawget(G, '__redis__pending')
    if pending then
      err = pending
      G.__redis__pending = nil
    else
      err = (tostring(err):gsub('^runtime error: ', ''))
    end
  end
  local level = 2
  local i = dbg.getinfo(level, 'Sl')
  while i and (i.what == 'C' or i.source == '=redis') do
    level = level + 1
    i = dbg.getinfo(level, 'Sl')
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end

-- Runs a script (no arguments) or a function (its keys and args tables).
local unpack, select = unpack, select
local function run(f, ...)
  local n, args = select('#', ...), {...}
  if n == 0 then return xpcall(f, handler) end
  return xpcall(function() return f(unpack(args, 1, n)) end, handler)
end

-- Errors as Redis's luaPushErrorBuff makes them: "-CODE msg" keeps its code, anything else
-- gets ERR.
local function error_table(e)
  if type(e) ~= 'string' then
    error('wrong number or type of arguments', 2)
  end
  local code, msg = 'ERR', e
  if e:sub(1, 1) == '-' then
    local sp = e:find(' ', 1, true)
    if sp then
      code, msg = e:sub(2, sp - 1), e:sub(sp + 1)
    else
      msg = e:sub(2)
    end
  end
  msg = msg:gsub('[\r\n]+$', '')
  return {err = code .. ' ' .. msg}
end

-- redis.call and redis.pcall are set for each run (they reach the running command's state).
local r = {}
-- A wrong argument is returned as an error, not raised (Redis's luaRedisErrorReplyCommand).
r.error_reply = function(e)
  if type(e) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  if e:sub(1, 1) ~= '-' then e = '-' .. e end
  return error_table(e)
end
r.status_reply = function(s)
  if type(s) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  return {ok = s}
end
local set_resp3 = G.__redis__setresp
G.__redis__setresp = nil
r.setresp = function(v)
  if v ~= 2 and v ~= 3 then
    error({err = 'ERR RESP version must be 2 or 3.'})
  end
  set_resp3(v == 3)
end
r.set_repl = function() end
r.replicate_commands = function() return true end
r.breakpoint = function() return false end
r.debug = function() end
r.LOG_DEBUG, r.LOG_VERBOSE, r.LOG_NOTICE, r.LOG_WARNING = 0, 1, 2, 3
r.REPL_NONE, r.REPL_AOF, r.REPL_SLAVE, r.REPL_REPLICA, r.REPL_ALL = 0, 1, 2, 2, 3
r.REDIS_VERSION, r.REDIS_VERSION_NUM = '7.0.15', 0x07000f
r.sha1hex = G.__redis__sha1hex
-- redis.log's checks as Redis's luaLogCommand (a numeric string is a level too), raised as
-- error tables.
local log = G.__redis__log
r.log = function(...)
  if select('#', ...) < 2 then
    error({err = 'ERR redis.log() requires two arguments or more.'})
  end
  local level = tonumber((...))
  if not level then
    error({err = 'ERR First argument must be a number (log level).'})
  end
  if level < 0 or level > 3 then
    error({err = 'ERR Invalid debug level.'})
  end
  log(level, select(2, ...))
end
G.__redis__sha1hex, G.__redis__log = nil, nil

-- Read-only views: a script cannot change a library for the scripts after it.
local protected = setmetatable({}, {__mode = 'k'})
local function readonly(t)
  local view = setmetatable({}, {
    __index = t,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
  protected[view] = true
  return view
end
redis = readonly(r)
string, math, table = readonly(string), readonly(math), readonly(table)
cjson, bit = readonly(G.__redis__cjson), readonly(G.__redis__bit)
cmsgpack = readonly(G.__redis__cmsgpack)
G.__redis__cjson, G.__redis__bit, G.__redis__cmsgpack = nil, nil, nil

-- A script's pcall returns an error table's message, as Redis's luaRedisPcall does. Neither
-- it nor xpcall nor a coroutine can swallow SCRIPT KILL: the kill is raised again.
local pcall, xpcall_, killed = pcall, xpcall, G.__redis__killed
G.__redis__killed = nil
local function unwrap(ok, ...)
  if ok then return true, ... end
  if killed() then error((...), 0) end
  local e = ...
  if type(e) == 'userdata' and rawget(G, '__redis__pending') then
    e = G.__redis__pending
    G.__redis__pending = nil
  end
  if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then
    e = e.err
  end
  return false, e
end
G.pcall = function(...)
  return unwrap(pcall(...))
end
G.xpcall = function(f, h)
  local function rethrow(ok, ...)
    if not ok and killed() then error('Script killed by user with SCRIPT KILL...', 0) end
    return ok, ...
  end
  return rethrow(xpcall_(f, h))
end
if coroutine then
  local resume = coroutine.resume
  coroutine.resume = function(...)
    local function rethrow(ok, ...)
      if not ok and killed() then error('Script killed by user with SCRIPT KILL...', 0) end
      return ok, ...
    end
    return rethrow(resume(...))
  end
  coroutine = readonly(coroutine)
end

-- Loading bytecode is refused, as Redis's patched loadstring does; what loadstring makes
-- sees the scripts' read-only globals, not the real ones.
local loadstring, setfenv, rawset = loadstring, setfenv, rawset
local env
G.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    return nil, 'attempt to load a binary chunk'
  end
  local f, e = loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
G.rawset = function(t, k, v)
  if t == env or protected[t] then error('Attempt to modify a readonly table', 0) end
  return rawset(t, k, v)
end
local setmetatable_ = setmetatable
G.setmetatable = function(t, mt)
  if t == env or protected[t] then error('Attempt to modify a readonly table', 0) end
  return setmetatable_(t, mt)
end
-- The strings' methods come from the read-only view, and their metatable is read-only.
local string_mt = getmetatable('')

-- (gcinfo and newproxy stay, as on Redis 7.0's allow list; setfenv and getfenv, also there,
-- go: this sandbox's environment is not theirs to change.)
for _, name in ipairs({'print', 'dofile', 'loadfile', 'setfenv', 'getfenv', 'debug', 'module',
    'require'}) do
  G[name] = nil
end

string_mt.__index = string
string_mt.__metatable = readonly(string_mt)

-- A read-only table whose missing names are errors, as Redis's globals are; `lookup` finds
-- what it holds.
local function strict(lookup)
  local mt = {
    __index = function(_, k)
      local v = lookup(k)
      if v == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
      end
      return v
    end,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
  }
  -- As Redis's globals: getmetatable(_G) gives their (read-only) metatable.
  mt.__metatable = readonly(mt)
  return setmetatable({}, mt)
end
env = strict(function(k) return rawget(G, k) end)
G._G = env

-- Functions (FUNCTION LOAD): a library's code runs with `redis` being the load-time API
-- (register_function, log and the constants); the functions it registers see the full one
-- when they run. Neither sees KEYS or ARGV: a function gets its keys and args as arguments.
local loading, registered = false, nil
local function raise(msg) error({err = 'ERR ' .. msg}) end
local function name_ok(name)
  return type(name) == 'string' and #name > 0 and not name:find('[^%w_]')
end
local known_flags = {['no-writes'] = true, ['allow-oom'] = true, ['allow-stale'] = true,
  ['no-cluster'] = true, ['allow-cross-slot-keys'] = true}
local lower = string.lower
local function add_function(name, callback, flags, description)
  if not name_ok(name) then
    raise('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
  end
  for _, f in ipairs(registered) do
    if lower(f.name) == lower(name) then raise('Function already exists in the library') end
  end
  registered[#registered + 1] = {name = name, callback = callback, flags = flags or {},
    description = description}
end
local load_api = {
  register_function = function(...)
    if not registered then
      raise('redis.register_function can only be called on FUNCTION LOAD command')
    end
    local n = select('#', ...)
    if n < 1 or n > 2 then raise('wrong number of arguments to redis.register_function') end
    if n == 2 then
      local name, callback = ...
      if type(name) ~= 'string' and type(name) ~= 'number' then
        raise('first argument to redis.register_function must be a string')
      end
      if type(callback) ~= 'function' then
        raise('second argument to redis.register_function must be a function')
      end
      return add_function(tostring(name), callback)
    end
    local t = ...
    if type(t) ~= 'table' then
      raise('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    local name, callback, flags, description
    for k, v in pairs(t) do
      if type(k) ~= 'string' and type(k) ~= 'number' then
        raise('named argument key given to redis.register_function is not a string')
      end
      local key = tostring(k):lower()
      if key == 'function_name' then
        if type(v) ~= 'string' and type(v) ~= 'number' then
          raise('function_name argument given to redis.register_function must be a string')
        end
        name = tostring(v)
      elseif key == 'description' then
        if type(v) ~= 'string' and type(v) ~= 'number' then
          raise('description argument given to redis.register_function must be a string')
        end
        description = tostring(v)
      elseif key == 'callback' then
        if type(v) ~= 'function' then
          raise('callback argument given to redis.register_function must be a function')
        end
        callback = v
      elseif key == 'flags' then
        if type(v) ~= 'table' then
          raise('flags argument to redis.register_function must be a table representing function flags')
        end
        flags = {}
        for _, flag in pairs(v) do
          if type(flag) ~= 'string' or not known_flags[lower(flag)] then
            raise('unknown flag given')
          end
          flags[#flags + 1] = lower(flag)
        end
      else
        raise('unknown argument given to redis.register_function')
      end
    end
    if not name then raise('redis.register_function must get a function name argument') end
    if not callback then raise('redis.register_function must get a callback argument') end
    return add_function(name, callback, flags, description)
  end,
  log = r.log,
  LOG_DEBUG = r.LOG_DEBUG, LOG_VERBOSE = r.LOG_VERBOSE, LOG_NOTICE = r.LOG_NOTICE,
  LOG_WARNING = r.LOG_WARNING, REDIS_VERSION = r.REDIS_VERSION,
  REDIS_VERSION_NUM = r.REDIS_VERSION_NUM,
}
local load_redis = strict(function(k) return load_api[k] end)
local fenv = strict(function(k)
  -- While a library loads, `redis` (the load-time API) is all there is.
  if loading then
    if k == 'redis' then return load_redis end
    return nil
  end
  if k == 'KEYS' or k == 'ARGV' then return nil end
  return rawget(G, k)
end)
-- Runs a library's code: (ok, error or the functions it registered).
local function load_library(f)
  registered, loading = {}, true
  local ok, err = xpcall(f, handler)
  local found = registered
  registered, loading = nil, false
  if not ok then return false, err end
  return true, found
end
return env, run, r, fenv, load_library
"#;

/// Instructions between two looks at SCRIPT KILL.
const KILL_CHECK_EVERY: u32 = 100_000;

impl Engine {
    /// `kill`: SCRIPT KILL's flag; `shutdown`: the node stopping stops a script too (written
    /// or not, as SHUTDOWN NOSAVE does in Redis), so a runaway script never holds a node up.
    fn new(
        kill: Arc<AtomicBool>,
        shutdown: CancellationToken,
        handover_at: Arc<std::sync::atomic::AtomicI64>,
        resp3: Arc<AtomicBool>,
        load_deadline: Arc<std::sync::atomic::AtomicI64>,
    ) -> mlua::Result<Engine> {
        // SAFETY: the debug library is loaded only for the error handler, which keeps it in an
        // upvalue; the prelude removes it from the globals before any script runs.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::new(),
            )
        };
        let globals = lua.globals();
        globals.set(
            "__redis__sha1hex",
            // Redis's luaRedisSha1hexCommand: exactly one argument, its string form.
            lua.create_function({
                let g = globals.clone();
                move |lua, args: MultiValue| {
                    if args.len() != 1 {
                        return Err(super::lua_libs::raise_plain(
                            &g,
                            "wrong number of arguments",
                        ));
                    }
                    let s = lua.coerce_string(args[0].clone())?;
                    Ok(sha1_hex(
                        &s.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
                    ))
                }
            })?,
        )?;
        globals.set(
            "__redis__log",
            lua.create_function(|lua, args: MultiValue| {
                let mut args = args.into_iter();
                let level = match args.next() {
                    Some(Value::Integer(l)) => l,
                    Some(Value::Number(l)) => l as i64,
                    _ => {
                        return Err(mlua::Error::runtime(
                            "First argument must be a number (log level).",
                        ));
                    }
                };
                let mut text = String::new();
                for (i, a) in args.enumerate() {
                    if i > 0 {
                        text.push(' ');
                    }
                    if let Some(s) = lua.coerce_string(a)? {
                        text.push_str(&s.to_string_lossy());
                    }
                }
                match level {
                    0 => tracing::debug!(target: "reredis::script", "{text}"),
                    1 | 2 => tracing::info!(target: "reredis::script", "{text}"),
                    3 => tracing::warn!(target: "reredis::script", "{text}"),
                    _ => return Err(mlua::Error::runtime("Invalid debug level.")),
                }
                Ok(())
            })?,
        )?;
        super::lua_libs::register(&lua, &globals)?;
        let load_deadline_field = load_deadline.clone();
        let r3 = resp3.clone();
        globals.set(
            "__redis__setresp",
            lua.create_function(move |_, on: bool| {
                r3.store(on, Ordering::Relaxed);
                Ok(())
            })?,
        )?;
        let (k, sd) = (kill.clone(), shutdown.clone());
        globals.set(
            "__redis__killed",
            lua.create_function(move |_, ()| Ok(k.load(Ordering::Relaxed) || sd.is_cancelled()))?,
        )?;
        let (env, run, redis, fenv, load_library): (Table, Function, Table, Table, Function) = lua
            .load(PRELUDE)
            .set_name("=redis")
            .set_mode(ChunkMode::Text)
            .eval()?;
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(KILL_CHECK_EVERY),
            move |_, _| {
                if kill.load(Ordering::Relaxed) {
                    return Err(mlua::Error::runtime(
                        "Script killed by user with SCRIPT KILL...",
                    ));
                }
                if shutdown.is_cancelled() {
                    return Err(mlua::Error::runtime(
                        "Script killed: the server is shutting down",
                    ));
                }
                let now = now_ms_clock();
                let limit = load_deadline.load(Ordering::Relaxed);
                if limit > 0 && now >= limit {
                    return Err(mlua::Error::runtime("FUNCTION LOAD timeout"));
                }
                let at = handover_at.load(Ordering::Relaxed);
                if at > 0 && now >= at {
                    handover_at.store(now + HANDOVER_RETRY_MS, Ordering::Relaxed);
                    hand_worker_over();
                }
                Ok(VmState::Continue)
            },
        )?;
        Ok(Engine {
            lua,
            scripts: HashMap::new(),
            globals,
            env,
            run,
            redis,
            fenv,
            load_library,
            libraries: Default::default(),
            load_deadline: load_deadline_field,
            runs_since_gc: Default::default(),
        })
    }

    /// Compiles `body` (once) and returns its SHA1.
    fn load(&mut self, body: &[u8]) -> Result<String, CmdError> {
        let sha = sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, source) = shebang(body)?;
        let f = self
            .lua
            .load(&source[..])
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                CmdError::err(format!(
                    "Error compiling script (new function): {}",
                    compile_error(&e)
                ))
            })?;
        self.scripts.insert(sha.clone(), Script { f, flags });
        Ok(sha)
    }
}

/// What a failed compile says (a syntax error's own message, as Redis shows it).
pub(crate) fn compile_error(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Lower-case hex SHA1, as Redis names scripts.
fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// What a script body's `#!lua` line says of writes: `Some(no_writes)`, or None without a
/// valid one (such a script goes by the command's flags, as Redis's).
fn shebang_no_writes(body: &[u8]) -> Option<bool> {
    if !body.starts_with(b"#!") {
        return None;
    }
    shebang(body).ok().map(|(f, _)| f.no_writes)
}

/// Whether a script's `#!lua` line declares `no-writes` (CLIENT PAUSE WRITE lets it run).
pub fn says_no_writes(body: &[u8]) -> bool {
    shebang_no_writes(body) == Some(true)
}

/// Whether a script body declares it writes: a valid `#!lua` line without `no-writes`.
pub fn shebang_writer(body: &[u8]) -> bool {
    shebang_no_writes(body) == Some(false)
}

/// What the cached script `sha` (EVALSHA) or the function `name` (FCALL) declares of writes,
/// as Redis's `evalGetCommandFlags`/`fcallGetCommandFlags` read it, without waiting.
enum Declared {
    /// Another command holds the engine.
    Busy,
    /// Unknown, or a script without a `#!lua` line: the command's own flags stand.
    Nothing,
    /// Declared flags: whether they say `no-writes`.
    NoWrites(bool),
}

fn declared(node: &crate::node::Node, function: bool, name: &[u8]) -> Declared {
    let Some(guard) = node.scripts.engine.try_lock() else {
        return Declared::Busy;
    };
    let Some(engine) = guard.as_ref() else {
        return Declared::Nothing;
    };
    let name = String::from_utf8_lossy(name);
    let no_writes = if function {
        super::functions::find_function(engine, &name).map(|(_, f)| f.flags.no_writes)
    } else {
        engine
            .scripts
            .get(&name.to_ascii_lowercase())
            .filter(|s| s.flags.shebang)
            .map(|s| s.flags.no_writes)
    };
    no_writes.map_or(Declared::Nothing, Declared::NoWrites)
}

/// Whether the script or function declares `no-writes` (CLIENT PAUSE WRITE lets it run).
/// While another command holds the engine: no (the caller would wait for it anyway).
pub fn declared_no_writes(node: &crate::node::Node, function: bool, name: &[u8]) -> bool {
    matches!(declared(node, function, name), Declared::NoWrites(true))
}

/// Whether the script or function declares it writes (cluster routing). Unknown: no (the
/// call then finds out for itself). While another command holds the engine (SCRIPT LOAD,
/// FUNCTION LIST, INFO): yes, the safe answer (a replica sends the client to the master).
pub fn declared_writer(node: &crate::node::Node, function: bool, name: &[u8]) -> bool {
    matches!(
        declared(node, function, name),
        Declared::Busy | Declared::NoWrites(false)
    )
}

/// A `#!lua flags=...` first line (Redis 7.0): whether it says `no-writes`, and the source to
/// compile (the line commented out, so line numbers stay the script's).
fn shebang(body: &[u8]) -> Result<(ScriptFlags, Vec<u8>), CmdError> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::default(), body.to_vec()));
    }
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Err(CmdError::err("Invalid script shebang"));
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts
        .next()
        .ok_or_else(|| CmdError::err("Invalid engine in script shebang"))?;
    if engine != "#!lua" {
        return Err(CmdError::err(format!(
            "Unexpected engine in script shebang: {engine}"
        )));
    }
    let mut found = ScriptFlags {
        shebang: true,
        ..Default::default()
    };
    for part in parts {
        let Some(flags) = part.strip_prefix("flags=") else {
            return Err(CmdError::err(format!("Unknown lua shebang option: {part}")));
        };
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "no-writes" => found.no_writes = true,
                "allow-oom" => found.allow_oom = true,
                "allow-stale" => found.allow_stale = true,
                "no-cluster" => found.no_cluster = true,
                "allow-cross-slot-keys" => found.allow_cross_slot = true,
                other => {
                    return Err(CmdError::err(format!(
                        "Unexpected flag in script shebang: {other}"
                    )));
                }
            }
        }
    }
    let mut source = b"--".to_vec();
    source.extend_from_slice(body);
    Ok((found, source))
}

/// A Redis error reply as a Lua error table (Redis's `luaPushErrorBuff`: the reply's code is
/// kept, a message without one gets ERR).
fn error_table(lua: &Lua, reply: &str) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let text = reply.trim_end_matches(['\r', '\n']);
    let text = if text.split(' ').next().is_some_and(|c| !c.is_empty()) && text.contains(' ') {
        text.to_string()
    } else {
        format!("ERR {text}")
    };
    t.set("err", text)?;
    Ok(t)
}

/// A command's reply, RESP2 or RESP3, as the Lua value Redis gives a script
/// (`redisProtocolToLuaType`): integers as numbers, a null bulk or array as false, a status
/// as `{ok=...}`, an error as `{err=...}`; with RESP3, null as nil, booleans, and
/// `{double=}`, `{big_number=}`, `{verbatim_string={format=, string=}}`, `{map=}`, `{set=}`.
/// None: the bytes are not a whole reply.
fn resp_to_lua(
    lua: &Lua,
    buf: &[u8],
    pos: &mut usize,
    depth: usize,
) -> mlua::Result<Option<Value>> {
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    let Some(nl) = memchr::memchr(b'\r', &buf[*pos..]).map(|i| *pos + i) else {
        return Ok(None);
    };
    let line = &buf[*pos + 1..nl];
    *pos = nl + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let num = || {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
    };
    let table1 = |key: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(key, v)?;
        Ok(Value::Table(t))
    };
    if depth > MAX_REPLY_DEPTH {
        return Ok(None);
    }
    Ok(Some(match kind {
        b'+' => table1("ok", Value::String(lua.create_string(line)?))?,
        b'-' => {
            // A command's error, counted where it happened (Redis's
            // redisProtocolToLuaType_Error marks it so).
            let t = error_table(lua, &text())?;
            t.set("ignore_error_stats_update", true)?;
            Value::Table(t)
        }
        b':' => match num() {
            Some(n) => Value::Number(n as f64),
            None => return Ok(None),
        },
        b'$' | b'=' => {
            let Some(n) = num() else { return Ok(None) };
            if n < 0 {
                return Ok(Some(Value::Boolean(false)));
            }
            let n = n as usize;
            let Some(body) = buf.get(*pos..*pos + n) else {
                return Ok(None);
            };
            *pos += n + 2;
            if kind == b'=' {
                let (format, string) = if body.len() >= 4 {
                    (&body[..3], &body[4..])
                } else {
                    (&b""[..], body)
                };
                let v = lua.create_table()?;
                v.raw_set("format", lua.create_string(format)?)?;
                v.raw_set("string", lua.create_string(string)?)?;
                table1("verbatim_string", Value::Table(v))?
            } else {
                Value::String(lua.create_string(body)?)
            }
        }
        // RESP3 attributes are read and dropped: the reply after them is the value (as
        // Redis's redisProtocolToLuaType_Attribute; scripts do not see attributes).
        b'|' => {
            let Some(n) = num() else { return Ok(None) };
            for _ in 0..n.max(0) * 2 {
                if resp_to_lua(lua, buf, pos, depth + 1)?.is_none() {
                    return Ok(None);
                }
            }
            return resp_to_lua(lua, buf, pos, depth);
        }
        b'*' | b'~' | b'%' | b'>' => {
            let Some(n) = num() else { return Ok(None) };
            if n < 0 {
                return Ok(Some(Value::Boolean(false)));
            }
            let t = lua.create_table()?;
            for i in 0..n {
                let Some(a) = resp_to_lua(lua, buf, pos, depth + 1)? else {
                    return Ok(None);
                };
                match kind {
                    b'%' => {
                        let Some(b) = resp_to_lua(lua, buf, pos, depth + 1)? else {
                            return Ok(None);
                        };
                        t.raw_set(a, b)?;
                    }
                    b'~' => t.raw_set(a, true)?,
                    _ => t.raw_set(i + 1, a)?,
                }
            }
            match kind {
                b'%' => table1("map", Value::Table(t))?,
                b'~' => table1("set", Value::Table(t))?,
                _ => Value::Table(t),
            }
        }
        b'_' => Value::Nil,
        b'#' => Value::Boolean(line == b"t"),
        b',' => {
            let d = match line {
                b"inf" => f64::INFINITY,
                b"-inf" => f64::NEG_INFINITY,
                _ => match std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    Some(d) => d,
                    None => return Ok(None),
                },
            };
            table1("double", Value::Number(d))?
        }
        b'(' => table1("big_number", Value::String(lua.create_string(line)?))?,
        _ => return Ok(None),
    }))
}

/// Nesting a reply may have before the conversion gives up (a table may contain itself).
const MAX_REPLY_DEPTH: usize = 200;

/// A script's result as the caller's reply (Redis's `luaReplyToRedisReply`).
/// `resp3`: the script chose RESP3 (`redis.setresp(3)`), which changes how booleans convert.
/// `errors`: the error replies written inside it, for the error statistics (a call's error,
/// counted already, as [`CmdError::Counted`]).
fn write_value(
    out: &mut Reply,
    v: &Value,
    depth: usize,
    resp3: bool,
    errors: &mut Vec<CmdError>,
) -> mlua::Result<()> {
    if depth > MAX_REPLY_DEPTH {
        out.error("ERR reached lua stack limit");
        errors.push(CmdError::err("reached lua stack limit"));
        return Ok(());
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) if resp3 => out.boolean(*b),
        Value::Boolean(true) => out.int(1),
        Value::Integer(n) => out.int(*n),
        Value::Number(n) => out.int(c_long_long(*n)),
        Value::Table(t) => {
            if let Value::String(e) = t.raw_get::<Value>("err")? {
                let text = e.to_string_lossy().to_string();
                out.error(&text);
                errors.push(
                    if t.raw_get::<bool>("ignore_error_stats_update")
                        .unwrap_or(false)
                    {
                        CmdError::Counted(text)
                    } else {
                        CmdError::Msg(text)
                    },
                );
            } else if let Value::String(s) = t.raw_get::<Value>("ok")? {
                // A status is one line: CR and LF become spaces, as in Redis.
                out.simple(&s.to_string_lossy().replace(['\r', '\n'], " "));
            } else if let Some(d) = match t.raw_get::<Value>("double")? {
                Value::Integer(n) => Some(n as f64),
                Value::Number(n) => Some(n),
                _ => None,
            } {
                // RESP3's types, as Redis 7 converts them (RESP2 clients get strings, arrays).
                out.double(d);
            } else if let Value::String(s) = t.raw_get::<Value>("big_number")? {
                let text = s.to_string_lossy().replace(['\r', '\n'], " ");
                if out.resp3() {
                    let buf = out.buf();
                    buf.extend_from_slice(b"(");
                    buf.extend_from_slice(text.as_bytes());
                    buf.extend_from_slice(b"\r\n");
                } else {
                    out.bulk(text.as_bytes());
                }
            } else if let Some((format, text)) = match t.raw_get::<Value>("verbatim_string")? {
                Value::Table(v) => {
                    match (v.raw_get::<Value>("format")?, v.raw_get::<Value>("string")?) {
                        (Value::String(f), Value::String(s)) => Some((f, s)),
                        _ => None,
                    }
                }
                _ => None,
            } {
                let text = text.as_bytes();
                if out.resp3() {
                    let mut ext = format.as_bytes().to_vec();
                    ext.resize(3, b' ');
                    let buf = out.buf();
                    buf.extend_from_slice(format!("={}\r\n", text.len() + 4).as_bytes());
                    buf.extend_from_slice(&ext[..3]);
                    buf.extend_from_slice(b":");
                    buf.extend_from_slice(&text);
                    buf.extend_from_slice(b"\r\n");
                } else {
                    out.bulk(&text);
                }
            } else if let Value::Table(m) = t.raw_get::<Value>("map")? {
                let pairs: Vec<(Value, Value)> =
                    m.pairs::<Value, Value>().collect::<Result<_, _>>()?;
                out.map(pairs.len());
                for (k, v) in &pairs {
                    write_value(out, k, depth + 1, resp3, errors)?;
                    write_value(out, v, depth + 1, resp3, errors)?;
                }
            } else if let Value::Table(set) = t.raw_get::<Value>("set")? {
                let members: Vec<Value> = set
                    .pairs::<Value, Value>()
                    .map(|p| p.map(|(k, _)| k))
                    .collect::<Result<_, _>>()?;
                out.set(members.len());
                for m in &members {
                    write_value(out, m, depth + 1, resp3, errors)?;
                }
            } else {
                let mut items = Vec::new();
                for i in 1.. {
                    let item: Value = t.raw_get(i)?;
                    if item.is_nil() {
                        break;
                    }
                    items.push(item);
                }
                out.array(items.len());
                for item in &items {
                    write_value(out, item, depth + 1, resp3, errors)?;
                }
            }
        }
        _ => out.null(),
    }
    Ok(())
}

/// The error reply of a script that failed: its message, and where (`script: <sha>, on
/// @user_script:<line>.`) when the error table says.
fn failure_message(err: &Value, sha: &str) -> String {
    let Value::Table(t) = err else {
        return format!("ERR Error running script {sha}, execution failure");
    };
    let msg = t
        .raw_get::<Option<mlua::LuaString>>("err")
        .ok()
        .flatten()
        .map(|s| s.to_string_lossy())
        .unwrap_or_else(|| "ERR unknown error".into());
    let source = t
        .raw_get::<Option<mlua::LuaString>>("source")
        .ok()
        .flatten();
    let line = t.raw_get::<Option<i64>>("line").ok().flatten();
    match (source, line) {
        (Some(source), Some(line)) => format!(
            "{msg} script: {sha}, on {}:{line}.",
            source.to_string_lossy()
        ),
        _ => msg,
    }
}

/// What `redis.call` needs while a script runs.
struct CallCtx<'a, 'b> {
    node: &'a Arc<crate::node::Node>,
    client: &'a mut crate::server::clients::ClientState,
    ks: &'a mut Keyspace<'b>,
    now: i64,
    readonly: bool,
    scripts: &'a Scripts,
    buf: BytesMut,
    /// Memory was over `maxmemory` when the script started (and it may not ignore that): its
    /// first write that may grow memory is refused, as Redis's scriptVerifyOOM does.
    oom: bool,
    /// In a cluster: the slot the script's keys are in (its declared keys', else the first
    /// key it touches); every key it touches must be in it, unless `cross_slot`.
    slot: Option<u16>,
    /// Its keys may be in several local slots (see [`ScriptFlags::cross_slot`]).
    cross_slot: bool,
    /// The script called a read command: a caller with CLIENT TRACKING caches its declared
    /// keys (Redis 7.0), not the keys the commands read.
    read_called: bool,
    /// The keys the script declared (KEYS, or the function's keys).
    declared: &'a [Bytes],
    /// The caller's ASKING and READONLY, which every call is routed with (Redis copies them
    /// onto the script's client before each call: the script's own ASKING or READONLY do
    /// not count).
    caller_asking: bool,
    caller_readonly: bool,
}

/// C's `(long long)` of a double as x86 computes it (Redis converts a Lua number reply so):
/// truncated, and LLONG_MIN when out of range or NaN (Rust's `as` saturates instead).
fn c_long_long(d: f64) -> i64 {
    // 2^63: the first double past i64's range (NaN is in no range).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&d) {
        d as i64
    } else {
        i64::MIN
    }
}

/// A Redis command's arguments from Lua values (Redis's luaArgsToRedisArgv).
fn lua_argv(args: MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call");
    }
    let mut argv: Vec<Bytes> = Vec::with_capacity(args.len());
    for a in args {
        match a {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            // Numbers as "%.17g" (Lua's own conversion would keep 14 digits). Lua 5.1's numbers
            // are all doubles: the ones mlua hands over as integers are formatted alike (1e18
            // is "1e+18", not "1000000000000000000", as in Redis).
            Value::Integer(n) => argv.push(Bytes::from(fmt_g(n as f64, 17))),
            Value::Number(n) => argv.push(Bytes::from(fmt_g(n, 17))),
            _ => return Err("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(argv)
}

impl CallCtx<'_, '_> {
    /// `redis.acl_check_cmd(cmd, ...)`: whether the caller's ACL user may run the command with
    /// these arguments (nothing is logged). Err: an error table to raise.
    fn acl_check_cmd(&mut self, lua: &Lua, args: MultiValue) -> Result<bool, Value> {
        let fail = |text: &str| match error_table(lua, text) {
            Ok(t) => Value::Table(t),
            Err(_) => Value::Nil,
        };
        let argv = lua_argv(args).map_err(fail)?;
        let t = super::table();
        let Some(top) = t.lookup(&argv[0]) else {
            return Err(fail("ERR Invalid command passed to redis.acl_check_cmd()"));
        };
        let cmd = match argv.get(1) {
            Some(sub) if !top.cmd.subcommands.is_empty() => match t.lookup_sub(top, sub) {
                Some(c) => c,
                None => return Err(fail("ERR Invalid command passed to redis.acl_check_cmd()")),
            },
            _ => top,
        };
        if self.client.acl_exempt {
            return Ok(true);
        }
        Ok(self
            .client
            .current_user(&self.node.acl)
            .is_some_and(|u| u.check(cmd, &argv).is_ok()))
    }

    /// Whether `cmd` may run from the script now (Redis's scriptCall checks): Err with the
    /// error's text when not.
    fn admit(&mut self, cmd: &'static super::CommandRef, argv: &[Bytes]) -> Result<(), String> {
        let f = cmd.cmd.flags;
        if f & NOSCRIPT != 0 && !self.scripts.disable_deny.load(Ordering::Relaxed) {
            return Err("ERR This Redis command is not allowed from script".into());
        }
        // A replica whose link is down with `replica-serve-stale-data no` (Redis's
        // scriptVerifyAllowStale): only commands flagged `stale`.
        let upstream = &self.node.upstream;
        if upstream.is_replica()
            && f & super::flags::STALE == 0
            && !upstream.link_up()
            && !self.node.config.read().get_bool("replica-serve-stale-data")
        {
            return Err("ERR Can not execute the command on a stale replica".into());
        }
        // The caller's ACL user runs the script's commands (Redis's scriptVerifyACL).
        if let Some(denied) =
            super::acl_denied(self.node, self.client, cmd, argv, crate::acl::Context::Lua)
        {
            return Err(match denied {
                crate::acl::Denied::Command => {
                    "ERR The user executing the script can't run this command or subcommand"
                }
                crate::acl::Denied::Key(_) => {
                    "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments"
                }
                crate::acl::Denied::Channel(_) => {
                    "ERR The user executing the script can't publish to the channel mentioned in the command"
                }
            }
            .into());
        }
        // As Redis's scriptVerifyWriteCommandAllow: a read-only script may not write nor
        // publish (MAY_REPLICATE); the state checks stop once the script has written (failing
        // it half-way would be worse).
        if self.readonly && f & (WRITE | super::flags::MAY_REPLICATE) != 0 {
            return Err("ERR Write commands are not allowed from read-only scripts.".into());
        }
        // A replica of a master (REPLICAOF) takes writes from its master only, scripts' too.
        if f & WRITE != 0
            && self.node.upstream.is_replica()
            && self.node.config.read().get_bool("replica-read-only")
        {
            return Err("READONLY You can't write against a read only replica.".into());
        }
        if f & WRITE != 0 && !self.scripts.wrote.load(Ordering::Relaxed) {
            if let Some(e) = crate::persist::write_denied(self.node) {
                return Err(e);
            }
            if self
                .node
                .min_replicas()
                .is_some_and(|(want, good)| good < want)
            {
                return Err("NOREPLICAS Not enough good replicas to write.".into());
            }
        }
        if f & DENYOOM != 0 && self.oom && !self.scripts.wrote.load(Ordering::Relaxed) {
            return Err(CmdError::Oom.to_string());
        }
        // Each call is routed as the caller's own command would be (Redis's
        // scriptVerifyClusterState runs getNodeByQuery with the caller's ASKING and READONLY):
        // a key of a migrating slot that moved already, or of an importing slot without
        // ASKING, is not local. Commands from a master or the log are obeyed.
        if self.node.cluster.is_some() && !self.client.obeyed {
            let pos = super::key_positions(cmd.cmd, argv);
            if !pos.is_empty() {
                let keys: Vec<&[u8]> = pos.iter().map(|&i| &argv[i][..]).collect();
                let query = super::Query {
                    keys: &keys,
                    flags: f,
                    is_write: f & WRITE != 0,
                    asking: self.caller_asking,
                    readonly: self.caller_readonly,
                    // (Read only for shard channels, as the dispatcher does.)
                    shard_when_down: f & super::flags::PUBSUB != 0
                        && self
                            .node
                            .config
                            .read()
                            .get_bool("cluster.allow-pubsubshard-when-down"),
                    is_migrate: cmd.cmd.name == "migrate",
                };
                let routing = self.node.routing();
                let db = self.client.db;
                match super::route_keys(self.node, &routing, self.ks, db, &query) {
                    Ok(()) => {}
                    Err(Redirect::DownReadOnly) => {
                        return Err("ERR Script attempted to execute a write command while the cluster is down and readonly".into());
                    }
                    Err(Redirect::Down) => {
                        return Err(
                            "ERR Script attempted to execute a command while the cluster is down"
                                .into(),
                        );
                    }
                    Err(_) => {
                        return Err(
                            "ERR Script attempted to access a non local key in a cluster node"
                                .into(),
                        );
                    }
                }
                let slot = key_hash_slot(keys[0]);
                match self.slot {
                    _ if self.cross_slot => {}
                    None => self.slot = Some(slot),
                    Some(s) if s != slot => {
                        return Err(
                            "ERR Script attempted to access keys that do not hash to the same slot"
                                .into(),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// One `redis.call`/`redis.pcall`: (failed, value), the value being an error table when
    /// it failed.
    fn call(&mut self, lua: &Lua, args: MultiValue) -> mlua::Result<(bool, Value)> {
        // The error of a command that was refused or failed, already counted in the error
        // statistics: its table says so (`ignore_error_stats_update`, as Redis's), and the
        // script's reply, if it ends on it, is not counted again.
        let fail = |text: &str| -> mlua::Result<(bool, Value)> {
            let t = error_table(lua, text)?;
            t.set("ignore_error_stats_update", true)?;
            Ok((true, Value::Table(t)))
        };
        let argv = match lua_argv(args) {
            Ok(a) => a,
            Err(e) => return Ok((true, Value::Table(error_table(lua, e)?))),
        };
        // Refused before it ran (Redis's scriptCall error path): counted as the error reply it
        // is, and as a rejected call of the command when there is one.
        let refuse = |text: &str, cmd: Option<&super::CommandRef>| {
            self.node.stats.note_error(&CmdError::Msg(text.to_string()));
            if let Some(c) = cmd {
                self.node.cmd_stats[c.id].rejected();
            }
            fail(text)
        };
        let cmd = match super::resolve(&argv) {
            Ok(c) => c,
            Err(CmdError::Arity(_)) => {
                return refuse(
                    "ERR Wrong number of args calling Redis command from script",
                    super::table().lookup(&argv[0]),
                );
            }
            Err(_) => return refuse("ERR Unknown Redis command called from script", None),
        };
        if let Err(text) = self.admit(cmd, &argv) {
            return refuse(&text, Some(cmd));
        }
        let f = cmd.cmd.flags;
        if f & WRITE != 0 {
            self.scripts.wrote.store(true, Ordering::Relaxed);
        }
        if f & READONLY != 0 && !self.read_called {
            self.read_called = true;
            // Remembered at the first read, as Redis's call() does for a script's caller: a
            // write to a declared key later in the script invalidates them (after the reply).
            super::tracking::remember_keys(self.node, self.client, self.declared);
        }
        self.buf.clear();
        self.client.resp3 = self.scripts.resp3.load(Ordering::Relaxed);
        let after = super::run(
            self.node,
            self.client,
            &mut self.buf,
            cmd,
            &argv,
            self.ks,
            self.now,
        );
        if after == After::Close {
            self.client.close_after_reply = true;
        }
        self.client.resp3 = false;
        if self.buf.first() == Some(&b'-') {
            let end = memchr::memchr(b'\r', &self.buf).unwrap_or(self.buf.len());
            return fail(&String::from_utf8_lossy(&self.buf[1..end]));
        }
        let mut pos = 0;
        match resp_to_lua(lua, &self.buf, &mut pos, 0)? {
            Some(v) => Ok((false, v)),
            None => fail("ERR the command's reply could not be read"),
        }
    }
}

/// Scripts (and functions) between two rounds of the collector's steps: Redis's
/// `LUA_GC_CYCLE_PERIOD`.
const GC_PERIOD: u32 = 50;

/// Every [`GC_PERIOD`] runs, some steps of Lua's incremental collector (as Redis's
/// `lua_gc(LUA_GCSTEP, 50)`), so each run's garbage (the run's call functions, its KEYS and
/// ARGV) is collected as it comes instead of piling up until a full cycle pauses one script.
fn collect_some_garbage(engine: &Engine) {
    let runs = engine.runs_since_gc.get() + 1;
    if runs < GC_PERIOD {
        engine.runs_since_gc.set(runs);
        return;
    }
    engine.runs_since_gc.set(0);
    for _ in 0..GC_PERIOD {
        // true: a cycle ended.
        if engine.lua.gc_step().unwrap_or(true) {
            break;
        }
    }
}

/// The node's Lua state, made now if there is none.
pub(crate) fn engine_of<'g>(
    node: &crate::node::Node,
    slot: &'g mut Option<Engine>,
) -> Result<&'g mut Engine, CmdError> {
    if slot.is_none() {
        let e = Engine::new(
            node.scripts.kill.clone(),
            node.shutdown.clone(),
            node.scripts.handover_at.clone(),
            node.scripts.resp3.clone(),
            node.scripts.load_deadline.clone(),
        )
        .map_err(|e| CmdError::err(format!("Lua could not start: {e}")))?;
        *slot = Some(e);
    }
    Ok(slot.as_mut().expect("just made"))
}

fn eval_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    by_sha: bool,
    readonly: bool,
) -> CmdResult {
    let numkeys = int(&args[2])?;
    if numkeys > args.len() as i64 - 3 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    let node = ctx.node;
    let scripts = &node.scripts;
    let mut guard = scripts.engine.lock();
    let engine = engine_of(node, &mut guard)?;
    let sha = if by_sha {
        let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        if !engine.scripts.contains_key(&sha) {
            return Err(CmdError::Msg(
                "NOSCRIPT No matching script. Please use EVAL.".into(),
            ));
        }
        sha
    } else {
        engine.load(&args[1])?
    };
    let script = &engine.scripts[&sha];
    if let Some(e) = script.flags.refused_on(node) {
        return Err(e);
    }
    may_write_check(node, script.flags)?;
    if readonly && script.flags.shebang && !script.flags.no_writes {
        return Err(CmdError::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    // Over maxmemory (after the eviction every command starts with): a Redis 7 script that may
    // write does not start; a compatible-mode one fails at its first write that may grow memory.
    let oom = !script.flags.allow_oom && node.over_maxmemory();
    if oom && script.flags.shebang && !script.flags.no_writes {
        return Err(CmdError::Oom);
    }
    let target = Target {
        f: script.f.clone(),
        flags: script.flags,
        name: &sha,
        function: false,
        readonly,
        oom,
    };
    run_target(ctx, ks, engine, args, 2, numkeys as usize, target)
}

/// A Redis 7 script or a function that may write does not start where a write would be
/// refused: with too few good replicas (`min-replicas-to-write`), as Redis's
/// scriptPrepareForRun. (A compatible-mode script fails at its first write instead.)
pub(crate) fn may_write_check(
    node: &crate::node::Node,
    flags: ScriptFlags,
) -> Result<(), CmdError> {
    // Redis's processCommand sees a script with the flags it declares (a write unless
    // `no-writes`, `stale` only with `allow-stale`), in its order: -MISCONF while writes
    // cannot be persisted, -NOREPLICAS, then a replica's refusals; its scriptPrepareForRun
    // refuses a script without a `#!lua` line on a stale replica.
    let declared_write = flags.shebang && !flags.no_writes;
    if declared_write && let Some(e) = crate::persist::write_denied(node) {
        return Err(CmdError::Msg(e));
    }
    if declared_write && node.min_replicas().is_some_and(|(want, good)| good < want) {
        return Err(CmdError::Msg(
            "NOREPLICAS Not enough good replicas to write.".into(),
        ));
    }
    let upstream = &node.upstream;
    if upstream.is_replica() {
        let c = node.config.read();
        if flags.shebang && !flags.no_writes && c.get_bool("replica-read-only") {
            return Err(CmdError::Msg(
                "READONLY You can't write against a read only replica.".into(),
            ));
        }
        let may_run_stale = flags.shebang && flags.allow_stale;
        let stale = !upstream.link_up() && !c.get_bool("replica-serve-stale-data");
        if stale && !may_run_stale {
            return Err(CmdError::Msg(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                    .into(),
            ));
        }
    }
    Ok(())
}

/// What runs: a script (KEYS and ARGV as globals) or a function (its keys and args as
/// arguments).
pub(crate) struct Target<'a> {
    pub f: Function,
    pub flags: ScriptFlags,
    /// The script's SHA1 or the function's name, for error messages.
    pub name: &'a str,
    pub function: bool,
    /// EVAL_RO, EVALSHA_RO, FCALL_RO.
    pub readonly: bool,
    /// Over `maxmemory` at the start, and the target may not ignore it.
    pub oom: bool,
}

/// Runs a script or function with the keys and args after `args[numkeys_at]` (`numkeys` of
/// them keys): its commands go through `redis.call` under the caller's locks, its writes are
/// logged as one record, and its result (or error) is the reply.
pub(crate) fn run_target(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    engine: &Engine,
    args: &[Bytes],
    numkeys_at: usize,
    numkeys: usize,
    target: Target,
) -> CmdResult {
    let node = ctx.node;
    let scripts = &node.scripts;
    let Target {
        f,
        flags,
        name,
        function,
        readonly,
        oom,
    } = target;
    let lua = &engine.lua;
    let lua_err = |e: mlua::Error| CmdError::err(format!("Error running script {name}: {e}"));
    let first_key = numkeys_at + 1;
    let split = first_key + numkeys;
    let keys = lua
        .create_table_with_capacity(numkeys, 0)
        .and_then(|t| {
            for (i, k) in args[first_key..split].iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(&k[..])?)?;
            }
            Ok(t)
        })
        .map_err(lua_err)?;
    let argv = lua
        .create_table_with_capacity(args.len() - split, 0)
        .and_then(|t| {
            for (i, a) in args[split..].iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(&a[..])?)?;
            }
            Ok(t)
        })
        .map_err(lua_err)?;
    let params = if function {
        Some((keys, argv))
    } else {
        engine.globals.raw_set("KEYS", keys).map_err(lua_err)?;
        engine.globals.raw_set("ARGV", argv).map_err(lua_err)?;
        None
    };
    engine
        .globals
        .raw_set("__redis__pending", Value::Nil)
        .map_err(lua_err)?;

    let Ctx {
        client,
        out,
        now_ms,
        ..
    } = ctx;
    let now = *now_ms;
    // Commands called from a script speak RESP2 (Redis's default `redis.setresp(2)`), never
    // block, and log their writes as one record (or join the EXEC around the script).
    // SELECT, READONLY and ASKING inside the script are the script's own (Redis runs it on a
    // client of its own): the caller's are put back after.
    let saved = (
        client.resp3,
        client.deny_blocking,
        client.db,
        client.readonly,
        client.asking,
    );
    client.resp3 = false;
    client.deny_blocking = true;
    let own_batch = client.aof_batch.is_none();
    if own_batch {
        client.aof_batch = Some(Vec::new());
    }
    scripts.wrote.store(false, Ordering::Relaxed);
    scripts.kill.store(false, Ordering::Relaxed);
    scripts.resp3.store(false, Ordering::Relaxed);
    scripts.started_ms.store(now, Ordering::Relaxed);
    scripts.running.store(true, Ordering::Release);
    // Cleared however the run ends, a panic in a command included.
    let _running = RunningGuard(scripts);
    let (caller_asking, caller_readonly) = (client.asked || client.asking > 0, client.readonly);
    let call = CallCtx {
        node,
        client,
        ks,
        now,
        readonly: readonly || flags.no_writes,
        oom,
        scripts,
        buf: BytesMut::new(),
        slot: (numkeys > 0).then(|| key_hash_slot(&args[first_key])),
        cross_slot: flags.cross_slot(),
        read_called: false,
        declared: &args[first_key..first_key + numkeys],
        caller_asking,
        caller_readonly,
    };
    let call = std::cell::RefCell::new(call);
    let run_script = || {
        lua.scope(|scope| {
            // redis.call raises its errors (the handler finds the table in `__redis__pending`);
            // redis.pcall returns them. Both are C functions to Lua, so a `return redis.call()`
            // keeps the script's frame for the error's line, as in Redis.
            let raising = scope.create_function(|lua, a: MultiValue| {
                let (failed, v) = call.borrow_mut().call(lua, a)?;
                if failed {
                    engine.globals.raw_set("__redis__pending", v)?;
                    return Err(mlua::Error::runtime("redis.call failed"));
                }
                Ok(v)
            })?;
            let returning = scope
                .create_function(|lua, a: MultiValue| Ok(call.borrow_mut().call(lua, a)?.1))?;
            let acl_check = scope.create_function(|lua, a: MultiValue| {
                match call.borrow_mut().acl_check_cmd(lua, a) {
                    Ok(allowed) => Ok(allowed),
                    Err(e) => {
                        engine.globals.raw_set("__redis__pending", e)?;
                        Err(mlua::Error::runtime("redis.acl_check_cmd failed"))
                    }
                }
            })?;
            engine.redis.raw_set("call", raising)?;
            engine.redis.raw_set("pcall", returning)?;
            engine.redis.raw_set("acl_check_cmd", acl_check)?;
            let r: (bool, Value) = match &params {
                Some((keys, argv)) => engine.run.call((f.clone(), keys, argv))?,
                None => engine.run.call(f.clone())?,
            };
            engine.redis.raw_set("call", Value::Nil)?;
            engine.redis.raw_set("pcall", Value::Nil)?;
            engine.redis.raw_set("acl_check_cmd", Value::Nil)?;
            engine.globals.raw_set("__redis__pending", Value::Nil)?;
            Ok(r)
        })
    };
    // A script may run for long: on the node's multi-threaded runtime, this thread's other
    // tasks move to another (SCRIPT KILL must find a thread to run on). A connection thread
    // (`io-threads`) runs one task at a time anyway.
    // The script runs on this runtime worker: handing the worker over costs thread switches
    // that would cost a short script more than its run. One that runs long hands it over from
    // the hook (see `Engine::new`), from `HANDOVER_AFTER_MS` on.
    scripts
        .handover_at
        .store(now_ms_clock() + HANDOVER_AFTER_MS, Ordering::Relaxed);
    let outcome = run_script();
    scripts.handover_at.store(0, Ordering::Relaxed);
    collect_some_garbage(engine);
    let call = call.into_inner();
    drop(_running);
    let client = call.client;
    let (resp3, deny_blocking, db, readonly_flag, asking) = saved;
    client.resp3 = resp3;
    client.deny_blocking = deny_blocking;
    client.select(db);
    client.readonly = readonly_flag;
    client.asking = asking;
    if own_batch
        && let Some(batch) = client.aof_batch.take()
        && !batch.is_empty()
    {
        let seq = node.store.aof.append_with(|out| {
            crate::persist::aof::command_record(out, &batch);
        });
        client.aof_seq = client.aof_seq.max(seq);
        client.repl_woff = node.store.aof.repl_written();
    }
    // A script that ends on an error fails the command: its error is counted in the error
    // statistics unless it is a command's, counted already (Redis's
    // ERR_REPLY_FLAG_NO_STATS_UPDATE).
    let script_error = |err: &Value, message: String| {
        let counted = matches!(err, Value::Table(t)
            if t.raw_get::<bool>("ignore_error_stats_update").unwrap_or(false));
        if counted {
            CmdError::Counted(message)
        } else {
            CmdError::Msg(message)
        }
    };
    match outcome {
        Ok((true, v)) => {
            if let Value::Table(t) = &v
                && let Ok(Value::String(e)) = t.raw_get::<Value>("err")
            {
                let message = e.to_string_lossy().to_string();
                return Err(script_error(&v, message));
            }
            let mut errors = Vec::new();
            write_value(
                out,
                &v,
                0,
                scripts.resp3.load(Ordering::Relaxed),
                &mut errors,
            )
            .map_err(lua_err)?;
            note_nested_errors(node, &args[0], &errors);
        }
        Ok((false, err)) => return Err(script_error(&err, failure_message(&err, name))),
        Err(e) => return Err(lua_err(e)),
    }
    Ok(())
}

/// Error replies inside a script's reply (an array holding `redis.error_reply(...)`) count as
/// Redis counts them: each in the error statistics unless a call's (counted already), and the
/// command as failed (once for the counted ones, and once for each call's, as Redis's
/// afterErrorReply does).
fn note_nested_errors(node: &crate::node::Node, name: &[u8], errors: &[CmdError]) {
    if errors.is_empty() {
        return;
    }
    let Some(cmd) = super::table().lookup(name) else {
        return;
    };
    let stat = &node.cmd_stats[cmd.id];
    let mut fresh = false;
    for e in errors {
        match e {
            CmdError::Counted(_) => stat.failed(),
            _ => {
                node.stats.note_error(e);
                fresh = true;
            }
        }
    }
    if fresh {
        stat.failed();
    }
}

pub fn eval(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, ks, args, false, false)
}

pub fn evalsha(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, ks, args, true, false)
}

pub fn eval_ro(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, ks, args, false, true)
}

pub fn evalsha_ro(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, ks, args, true, true)
}

pub fn script_load(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut guard = ctx.node.scripts.engine.lock();
    let engine = engine_of(ctx.node, &mut guard)?;
    let sha = engine.load(&args[2])?;
    ctx.out.bulk(sha.as_bytes());
    Ok(())
}

pub fn script_exists(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let guard = ctx.node.scripts.engine.lock();
    ctx.out.array(args.len() - 2);
    for sha in &args[2..] {
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        let known = guard.as_ref().is_some_and(|e| e.scripts.contains_key(&sha));
        ctx.out.int(known as i64);
    }
    Ok(())
}

pub fn script_flush(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    match args.get(2) {
        None => {}
        Some(a) if args.len() == 3 && (eq_ic(a, "sync") || eq_ic(a, "async")) => {}
        Some(_) => {
            return Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option"));
        }
    }
    // The script cache goes; function libraries stay (FUNCTION FLUSH removes them).
    if let Some(engine) = ctx.node.scripts.engine.lock().as_mut() {
        engine.scripts.clear();
        let _ = engine.lua.gc_collect();
    }
    ctx.out.ok();
    Ok(())
}

pub fn script_kill(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    kill_running(ctx.node, false)?;
    ctx.out.ok();
    Ok(())
}

pub fn script_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    super::reply_help(
        ctx,
        "SCRIPT",
        &[
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    )
}

/// EVAL's keys: `numkeys` of them after the script.
pub(crate) fn eval_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    // More keys than arguments: none (the command replies its error), as Redis's key spec.
    match args.get(2).and_then(|a| int(a).ok()) {
        Some(n) if n > args.len() as i64 - 3 => SmallVec::new(),
        _ => numkeys_positions(args, 2),
    }
}

pub(crate) const EVAL_FLAGS: u32 =
    NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS;

static SCRIPT_SUBS: &[Command] = &[
    cmd!(
        "load",
        3,
        NOSCRIPT | STALE,
        (0, 0, 0),
        "scripting",
        "2.6.0",
        script_load,
        "Loads a server-side Lua script to the script cache."
    )
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    cmd!(
        "exists",
        -3,
        NOSCRIPT,
        (0, 0, 0),
        "scripting",
        "2.6.0",
        script_exists,
        "Determines whether server-side Lua scripts exist in the script cache."
    )
    .tips(&[
        "request_policy:all_shards",
        "response_policy:agg_logical_and",
    ]),
    cmd!(
        "flush",
        -2,
        NOSCRIPT,
        (0, 0, 0),
        "scripting",
        "2.6.0",
        script_flush,
        "Removes all server-side Lua scripts from the script cache."
    )
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    cmd!(
        "kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "scripting",
        "2.6.0",
        script_kill,
        "Terminates a server-side Lua script during execution."
    )
    .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        (0, 0, 0),
        "scripting",
        "5.0.0",
        script_help,
        "Returns helpful text about the different subcommands."
    ),
];

/// The key spec of EVAL and FCALL (`numkeys` at argument 2, the keys after it).
pub(crate) static NUMKEYS_RW: &[KeySpec] =
    &[KeySpec::keynum(&["RW", "access", "update"], 2, 0, 1, 1)
        .notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE")];
/// The same for the `_RO` forms.
pub(crate) static NUMKEYS_RO: &[KeySpec] = &[KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)
    .notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS")];

/// EVALSHA's and EVALSHA_RO's: the same keys, with no notes (as Redis's table).
static NUMKEYS_SHA_RW: &[KeySpec] = &[KeySpec::keynum(&["RW", "access", "update"], 2, 0, 1, 1)];
static NUMKEYS_SHA_RO: &[KeySpec] = &[KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)];

macro_rules! eval_cmd {
    ($name:literal, $flags:expr, $handler:expr, $summary:literal) => {
        Command {
            keys_fn: Some(eval_keys),
            key_specs: if $flags & READONLY != 0 {
                $crate::commands::scripting::NUMKEYS_RO
            } else {
                $crate::commands::scripting::NUMKEYS_RW
            },
            ..cmd!(
                $name,
                -3,
                $flags,
                (0, 0, 0),
                "scripting",
                "2.6.0",
                $handler,
                $summary
            )
        }
    };
}
pub(crate) use eval_cmd;

pub static COMMANDS: &[Command] = &[
    eval_cmd!(
        "eval",
        EVAL_FLAGS | MAY_REPLICATE | ALL_SHARDS,
        eval,
        "Executes a server-side Lua script."
    ),
    Command {
        key_specs: NUMKEYS_SHA_RW,
        ..eval_cmd!(
            "evalsha",
            EVAL_FLAGS | MAY_REPLICATE | ALL_SHARDS,
            evalsha,
            "Executes a server-side Lua script by SHA1 digest."
        )
    },
    Command {
        since: "7.0.0",
        ..eval_cmd!(
            "eval_ro",
            READONLY | EVAL_FLAGS | ALL_SHARDS,
            eval_ro,
            "Executes a read-only server-side Lua script."
        )
    },
    Command {
        since: "7.0.0",
        key_specs: NUMKEYS_SHA_RO,
        ..eval_cmd!(
            "evalsha_ro",
            READONLY | EVAL_FLAGS | ALL_SHARDS,
            evalsha_ro,
            "Executes a read-only server-side Lua script by SHA1 digest."
        )
    },
    container!(
        "script",
        "scripting",
        "2.6.0",
        SCRIPT_SUBS,
        "A container for Lua scripts management commands."
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_flags_and_errors_match_redis() {
        assert_eq!(
            shebang(b"return 1").unwrap(),
            (ScriptFlags::default(), b"return 1".to_vec())
        );
        let (flags, src) = shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(flags.shebang && flags.no_writes && flags.allow_oom);
        assert!(src.starts_with(b"--#!lua"));
        assert_eq!(
            shebang(b"#!python\nreturn 1").unwrap_err().to_string(),
            "ERR Unexpected engine in script shebang: #!python"
        );
        assert_eq!(
            shebang(b"#!lua flags=bogus\nreturn 1")
                .unwrap_err()
                .to_string(),
            "ERR Unexpected flag in script shebang: bogus"
        );
        assert_eq!(
            shebang(b"#!lua").unwrap_err().to_string(),
            "ERR Invalid script shebang"
        );
    }

    #[test]
    fn sha1_names_scripts_as_redis() {
        // SCRIPT LOAD "return 1" on redis-server.
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
