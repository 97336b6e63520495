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
use super::table::{Command, NO_KEYS, cmd, container};
use super::{After, Ctx};
use crate::cluster::slots::key_hash_slot;
use crate::http::exec::{Frame, decode};
use crate::resp::Reply;
use crate::resp::writer::fmt_g;
use crate::store::Keyspace;

/// The node's scripting state: its Lua state (made on first use) and what SCRIPT KILL reads
/// while a script holds that state.
#[derive(Default)]
pub struct Scripts {
    engine: Mutex<Option<Engine>>,
    /// A script is running.
    running: AtomicBool,
    /// The running script has called a write command (it can no longer be killed).
    wrote: AtomicBool,
    /// SCRIPT KILL asked the running script to stop.
    kill: Arc<AtomicBool>,
    /// When the running script started (Unix ms).
    started_ms: std::sync::atomic::AtomicI64,
    /// Signalled when a script ends, for the clients waiting for it.
    ended: tokio::sync::Notify,
    /// When the running script should hand its runtime worker over (Unix ms; 0: no script).
    handover_at: Arc<std::sync::atomic::AtomicI64>,
}

/// How long other clients wait for a running script before they get `-BUSY` (Redis's
/// `busy-reply-threshold`, formerly `lua-time-limit`, default 5 seconds).
pub const BUSY_REPLY_THRESHOLD_MS: i64 = 5000;

pub const BUSY_ERROR: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

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
            let since = self.started_ms.load(Ordering::Relaxed);
            let left = BUSY_REPLY_THRESHOLD_MS - (super::now_ms() - since);
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
struct ScriptFlags {
    /// It has a `#!lua` line (Redis 7's scripts; the others run in the compatible mode).
    shebang: bool,
    /// `no-writes`: writes are refused as in EVAL_RO.
    no_writes: bool,
    /// `allow-oom`: it may write over `maxmemory`.
    allow_oom: bool,
}

struct Engine {
    lua: Lua,
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

local function run(f)
  return xpcall(f, handler)
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
r.error_reply = function(e)
  if type(e) ~= 'string' then
    error('wrong number or type of arguments', 2)
  end
  if e:sub(1, 1) ~= '-' then e = '-' .. e end
  return error_table(e)
end
r.status_reply = function(s)
  if type(s) ~= 'string' then
    error('wrong number or type of arguments', 2)
  end
  return {ok = s}
end
r.setresp = function(v)
  if v ~= 2 and v ~= 3 then
    error('RESP version must be 2 or 3.', 2)
  end
  if v == 3 then
    error('RESP3 is not supported inside scripts by this server.', 2)
  end
end
r.set_repl = function() end
r.replicate_commands = function() return true end
r.breakpoint = function() return false end
r.debug = function() end
r.LOG_DEBUG, r.LOG_VERBOSE, r.LOG_NOTICE, r.LOG_WARNING = 0, 1, 2, 3
r.REPL_NONE, r.REPL_AOF, r.REPL_SLAVE, r.REPL_REPLICA, r.REPL_ALL = 0, 1, 2, 2, 3
r.REDIS_VERSION, r.REDIS_VERSION_NUM = '7.0.15', 0x07000f
r.sha1hex = G.__redis__sha1hex
r.log = G.__redis__log
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
-- The strings' methods come from the read-only view, and their metatable is read-only.
local string_mt = getmetatable('')

for _, name in ipairs({'print', 'dofile', 'loadfile', 'setfenv', 'getfenv', 'debug', 'module',
    'require', 'gcinfo', 'newproxy'}) do
  G[name] = nil
end

string_mt.__index = string
string_mt.__metatable = readonly(string_mt)

env = setmetatable({}, {
  __index = function(_, k)
    local v = rawget(G, k)
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
G._G = env
return env, run, r
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
            lua.create_function(|_, s: mlua::LuaString| Ok(sha1_hex(&s.as_bytes())))?,
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
        let (k, sd) = (kill.clone(), shutdown.clone());
        globals.set(
            "__redis__killed",
            lua.create_function(move |_, ()| Ok(k.load(Ordering::Relaxed) || sd.is_cancelled()))?,
        )?;
        let (env, run, redis): (Table, Function, Table) = lua
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
                let at = handover_at.load(Ordering::Relaxed);
                let now = now_ms_clock();
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
                let text = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                CmdError::err(format!("Error compiling script (new function): {text}"))
            })?;
        self.scripts.insert(sha.clone(), Script { f, flags });
        Ok(sha)
    }
}

/// Lower-case hex SHA1, as Redis names scripts.
fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
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
                "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
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

/// A command's RESP2 reply as a Lua value (Redis's conversion): integers are numbers, bulk
/// strings strings, a null false, arrays tables, a status `{ok=...}`; errors are handled by
/// the caller.
fn frame_to_lua(lua: &Lua, f: Frame) -> mlua::Result<Value> {
    Ok(match f {
        Frame::Int(n) => Value::Number(n as f64),
        Frame::Bulk(Some(b)) => Value::String(lua.create_string(&b[..])?),
        Frame::Bulk(None) | Frame::Array(None) => Value::Boolean(false),
        Frame::Simple(s) => {
            let t = lua.create_table()?;
            t.set("ok", s)?;
            Value::Table(t)
        }
        Frame::Error(e) => Value::Table(error_table(lua, &e)?),
        Frame::Array(Some(items)) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, frame_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

/// Nesting a reply may have before the conversion gives up (a table may contain itself).
const MAX_REPLY_DEPTH: usize = 200;

/// A script's result as the caller's reply (Redis's `luaReplyToRedisReply`).
fn write_value(out: &mut Reply, v: &Value, depth: usize) -> mlua::Result<()> {
    if depth > MAX_REPLY_DEPTH {
        out.error("ERR reached lua stack limit");
        return Ok(());
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(true) => out.int(1),
        Value::Integer(n) => out.int(*n),
        Value::Number(n) => out.int(*n as i64),
        Value::Table(t) => {
            if let Value::String(e) = t.raw_get::<Value>("err")? {
                out.error(&e.to_string_lossy());
            } else if let Value::String(s) = t.raw_get::<Value>("ok")? {
                // A status is one line: CR and LF become spaces, as in Redis.
                out.simple(&s.to_string_lossy().replace(['\r', '\n'], " "));
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
                    write_value(out, item, depth + 1)?;
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
    /// key it touches); every key it touches must be in it.
    slot: Option<u16>,
}

impl CallCtx<'_, '_> {
    /// One `redis.call`/`redis.pcall`: (failed, value), the value being an error table when
    /// it failed.
    fn call(&mut self, lua: &Lua, args: MultiValue) -> mlua::Result<(bool, Value)> {
        let fail = |text: &str| -> mlua::Result<(bool, Value)> {
            Ok((true, Value::Table(error_table(lua, text)?)))
        };
        if args.is_empty() {
            return fail("ERR Please specify at least one argument for this redis lib call");
        }
        let mut argv: Vec<Bytes> = Vec::with_capacity(args.len());
        for a in args {
            match a {
                Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
                // Numbers as "%.17g" (Lua's own conversion would keep 14 digits).
                Value::Integer(n) => argv.push(Bytes::from(n.to_string())),
                Value::Number(n) => argv.push(Bytes::from(fmt_g(n, 17))),
                _ => {
                    return fail("ERR Lua redis lib command arguments must be strings or integers");
                }
            }
        }
        let cmd = match super::resolve(&argv) {
            Ok(c) => c,
            Err(CmdError::Arity(_)) => {
                return fail("ERR Wrong number of args calling Redis command from script");
            }
            Err(_) => return fail("ERR Unknown Redis command called from script"),
        };
        let f = cmd.cmd.flags;
        if f & NOSCRIPT != 0 {
            return fail("ERR This Redis command is not allowed from script");
        }
        if f & WRITE != 0 {
            if self.readonly {
                return fail("ERR Write commands are not allowed from read-only scripts.");
            }
            if let Some(e) = crate::persist::write_denied(self.node) {
                return fail(&e);
            }
        }
        if f & DENYOOM != 0 && self.oom && !self.scripts.wrote.load(Ordering::Relaxed) {
            return fail(&CmdError::Oom.to_string());
        }
        if self.node.cluster.is_some() {
            let pos = super::key_positions(cmd.cmd, &argv);
            if !pos.is_empty() {
                let routing = self.node.routing();
                for &i in &pos {
                    let slot = key_hash_slot(&argv[i]);
                    if !routing.serves(slot) {
                        return fail(
                            "ERR Script attempted to access a non local key in a cluster node script",
                        );
                    }
                    match self.slot {
                        None => self.slot = Some(slot),
                        Some(s) if s != slot => {
                            return fail(
                                "ERR Script attempted to access keys that do not hash to the same slot",
                            );
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        if f & WRITE != 0 {
            self.scripts.wrote.store(true, Ordering::Relaxed);
        }
        self.buf.clear();
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
        let Some((frame, _)) = decode(&self.buf) else {
            return fail("ERR the command's reply could not be read");
        };
        match frame {
            Frame::Error(e) => fail(&e),
            other => Ok((false, frame_to_lua(lua, other)?)),
        }
    }
}

/// The node's Lua state, made now if there is none.
fn engine_of<'g>(
    node: &crate::node::Node,
    slot: &'g mut Option<Engine>,
) -> Result<&'g mut Engine, CmdError> {
    if slot.is_none() {
        let e = Engine::new(
            node.scripts.kill.clone(),
            node.shutdown.clone(),
            node.scripts.handover_at.clone(),
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
    let lua = &engine.lua;
    let lua_err = |e: mlua::Error| CmdError::err(format!("Error running script {sha}: {e}"));
    let split = 3 + numkeys as usize;
    let keys = lua
        .create_table_with_capacity(split - 3, 0)
        .and_then(|t| {
            for (i, k) in args[3..split].iter().enumerate() {
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
    engine.globals.raw_set("KEYS", keys).map_err(lua_err)?;
    engine.globals.raw_set("ARGV", argv).map_err(lua_err)?;
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
    scripts.started_ms.store(now, Ordering::Relaxed);
    scripts.running.store(true, Ordering::Release);
    // Cleared however the run ends, a panic in a command included.
    let _running = RunningGuard(scripts);
    let call = CallCtx {
        node,
        client,
        ks,
        now,
        readonly: readonly || script.flags.no_writes,
        oom,
        scripts,
        buf: BytesMut::new(),
        slot: (numkeys > 0).then(|| key_hash_slot(&args[3])),
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
            engine.redis.raw_set("call", raising)?;
            engine.redis.raw_set("pcall", returning)?;
            let r: (bool, Value) = engine.run.call(script.f.clone())?;
            engine.redis.raw_set("call", Value::Nil)?;
            engine.redis.raw_set("pcall", Value::Nil)?;
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
    match outcome {
        Ok((true, v)) => write_value(out, &v, 0).map_err(lua_err)?,
        Ok((false, err)) => out.error(&failure_message(&err, &sha)),
        Err(e) => return Err(lua_err(e)),
    }
    Ok(())
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
    // A new state is made by the next script.
    ctx.node.scripts.engine.lock().take();
    ctx.out.ok();
    Ok(())
}

pub fn script_kill(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let s = &ctx.node.scripts;
    if !s.running.load(Ordering::Relaxed) {
        return Err(CmdError::Msg(
            "NOTBUSY No scripts in execution right now.".into(),
        ));
    }
    if s.wrote.load(Ordering::Relaxed) {
        return Err(CmdError::Msg("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into()));
    }
    s.kill.store(true, Ordering::Relaxed);
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
fn eval_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    numkeys_positions(args, 2)
}

const EVAL_FLAGS: u32 = NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS;

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

macro_rules! eval_cmd {
    ($name:literal, $flags:expr, $handler:expr, $summary:literal) => {
        Command {
            keys_fn: Some(eval_keys),
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

pub static COMMANDS: &[Command] = &[
    eval_cmd!(
        "eval",
        EVAL_FLAGS | ALL_SHARDS,
        eval,
        "Executes a server-side Lua script."
    ),
    eval_cmd!(
        "evalsha",
        EVAL_FLAGS | ALL_SHARDS,
        evalsha,
        "Executes a server-side Lua script by SHA1 digest."
    ),
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
