//! Functions, as Redis 7.0: FUNCTION LOAD/LIST/DELETE/FLUSH/STATS/KILL/DUMP/RESTORE/HELP and
//! FCALL/FCALL_RO.
//!
//! A library is Lua code whose first line is `#!lua name=<library>`; loading it runs the code
//! once with a `redis` that offers `register_function` (and `log`), and what it registers is
//! callable by FCALL, which gives the function its keys and args as two tables. Libraries live
//! in the node's Lua state next to the script cache (SCRIPT FLUSH leaves them), travel in
//! snapshots, log rewrites and full syncs as their FUNCTION DUMP payload (a `FUNCTIONS`
//! record), and FUNCTION LOAD/DELETE/FLUSH/RESTORE are logged and replicated as commands.

use std::collections::BTreeMap;

use bytes::Bytes;
use mlua::chunk::ChunkMode;
use mlua::{Function, Table, Value};

use super::Ctx;
use super::args::{eq_ic, int};
use super::error::{CmdError, CmdResult};
use super::scripting::{
    EVAL_FLAGS, Engine, ScriptFlags, Target, compile_error, engine_of, eval_cmd, eval_keys,
    run_target,
};
use super::table::*;
use crate::commands::flags::*;
use crate::glob::glob_match;
use crate::node::Node;
use crate::store::Keyspace;
use crate::store::rdb::{self, RDB_VERSION};

/// How long a library's code may run while it loads (Redis's `LOAD_TIMEOUT_MS`).
const LOAD_TIMEOUT_MS: i64 = 500;

/// RDB's opcode for one library in a FUNCTION DUMP payload (`RDB_OPCODE_FUNCTION2`).
const RDB_OPCODE_FUNCTION2: u8 = rdb::OPCODE_FUNCTION2;

/// The flags a function may declare, in the order Redis lists them.
const FLAG_NAMES: &[&str] = &[
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

#[derive(Clone)]
pub struct Func {
    f: Function,
    pub(crate) flags: ScriptFlags,
    /// The declared flags, in [`FLAG_NAMES`] order.
    flag_names: Vec<&'static str>,
    description: Option<Vec<u8>>,
}

#[derive(Clone)]
pub struct Library {
    code: Bytes,
    functions: BTreeMap<String, Func>,
}

/// `#!<engine> name=<library>`: the library's name and where its code starts (the newline
/// ending the first line, so line numbers stay those of the text given).
fn metadata(code: &[u8]) -> Result<(String, usize), CmdError> {
    if !code.starts_with(b"#!") {
        return Err(CmdError::err("Missing library metadata"));
    }
    let Some(end) = memchr::memchr(b'\n', code) else {
        return Err(CmdError::err("Invalid library metadata"));
    };
    // Split as Redis's sdssplitargs (quotes allowed, unbalanced ones refused).
    let parts = crate::resp::parser::split_args(&code[..end])
        .filter(|p| !p.is_empty())
        .ok_or_else(|| CmdError::err("Invalid library metadata"))?;
    let parts: Vec<String> = parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let engine = String::from_utf8_lossy(&parts[0].as_bytes()[2..]).into_owned();
    let mut name = None;
    for part in &parts[1..] {
        if part
            .as_bytes()
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"name="))
        {
            if name.is_some() {
                return Err(CmdError::err(
                    "Invalid metadata value, name argument was given multiple times",
                ));
            }
            name = Some(String::from_utf8_lossy(&part.as_bytes()[5..]).into_owned());
            continue;
        }
        return Err(CmdError::err(format!(
            "Invalid metadata value given: {part}"
        )));
    }
    let name = name.ok_or_else(|| CmdError::err("Library name was not given"))?;
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(CmdError::err(format!("Engine '{engine}' not found")));
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(CmdError::err(
            "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    Ok((name, end))
}

/// The message of an error table from the Lua side.
fn table_err(v: &Value) -> String {
    match v {
        Value::Table(t) => t
            .raw_get::<Option<mlua::LuaString>>("err")
            .ok()
            .flatten()
            .map(|s| s.to_string_lossy())
            .unwrap_or_else(|| "ERR unknown error".into()),
        other => format!("ERR {other:?}"),
    }
}

/// Compiles and runs a library's code: its name and functions.
fn compile(engine: &Engine, code: &[u8], replace: bool) -> Result<(String, Library), CmdError> {
    let (name, start) = metadata(code)?;
    if !replace && engine.libraries.contains_key(&name) {
        return Err(CmdError::err(format!("Library '{name}' already exists")));
    }
    let chunk = engine
        .lua
        .load(&code[start..])
        .set_name("@user_function")
        .set_mode(ChunkMode::Text)
        .set_environment(engine.fenv.clone())
        .into_function()
        .map_err(|e| CmdError::err(format!("Error compiling function: {}", compile_error(&e))))?;
    let lua_err = |e: mlua::Error| CmdError::err(format!("Error registering functions: {e}"));
    // A library's code gets 500 ms, as in Redis (the hook stops it).
    let deadline = &engine.load_deadline;
    deadline.store(
        super::now_ms() + LOAD_TIMEOUT_MS,
        std::sync::atomic::Ordering::Relaxed,
    );
    let loaded: mlua::Result<(bool, Value)> = engine.load_library.call(chunk);
    deadline.store(0, std::sync::atomic::Ordering::Relaxed);
    let (ok, found) = loaded.map_err(lua_err)?;
    if !ok {
        let msg = table_err(&found);
        let msg = msg.strip_prefix("ERR ").unwrap_or(&msg).to_string();
        return Err(CmdError::err(format!(
            "Error registering functions: ERR {msg}"
        )));
    }
    let Value::Table(list) = found else {
        return Err(CmdError::err("No functions registered"));
    };
    let mut functions = BTreeMap::new();
    for entry in list.sequence_values::<Table>() {
        let entry = entry.map_err(lua_err)?;
        let fname: String = entry.get("name").map_err(lua_err)?;
        let f: Function = entry.get("callback").map_err(lua_err)?;
        let declared: Vec<String> = entry
            .get::<Table>("flags")
            .and_then(|t| t.sequence_values::<String>().collect())
            .map_err(lua_err)?;
        let description: Option<mlua::LuaString> = entry.get("description").map_err(lua_err)?;
        let flag_names: Vec<&'static str> = FLAG_NAMES
            .iter()
            .copied()
            .filter(|n| declared.iter().any(|d| d == n))
            .collect();
        let flags = ScriptFlags {
            shebang: true,
            no_writes: flag_names.contains(&"no-writes"),
            allow_oom: flag_names.contains(&"allow-oom"),
            allow_stale: flag_names.contains(&"allow-stale"),
            no_cluster: flag_names.contains(&"no-cluster"),
            allow_cross_slot: flag_names.contains(&"allow-cross-slot-keys"),
        };
        functions.insert(
            fname,
            Func {
                f,
                flags,
                flag_names,
                description: description.map(|d| d.as_bytes().to_vec()),
            },
        );
    }
    if functions.is_empty() {
        return Err(CmdError::err("No functions registered"));
    }
    for (other_name, other) in &engine.libraries {
        if *other_name == name {
            continue;
        }
        if let Some(f) = functions
            .keys()
            .find(|f| other.functions.keys().any(|o| o.eq_ignore_ascii_case(f)))
        {
            return Err(CmdError::err(format!("Function {f} already exists")));
        }
    }
    Ok((
        name,
        Library {
            code: Bytes::copy_from_slice(code),
            functions,
        },
    ))
}

/// Loads one library into the engine (FUNCTION LOAD, RESTORE, a snapshot).
fn load(engine: &mut Engine, code: &[u8], replace: bool) -> Result<String, CmdError> {
    let (name, lib) = compile(engine, code, replace)?;
    engine.libraries.insert(name.clone(), lib);
    Ok(name)
}

/// FUNCTION LOAD [REPLACE] <code>
pub fn function_load(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut i = 2;
    while i < args.len() - 1 {
        if eq_ic(&args[i], "REPLACE") {
            replace = true;
            i += 1;
        } else {
            return Err(CmdError::err(format!(
                "Unknown option given: {}",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if i != args.len() - 1 {
        return Err(CmdError::err("Function code was not given"));
    }
    let mut guard = ctx.node.scripts.engine.lock();
    let engine = engine_of(ctx.node, &mut guard)?;
    let name = load(engine, &args[i], replace)?;
    ctx.dirty(1);
    ctx.out.bulk(name.as_bytes());
    Ok(())
}

/// FUNCTION DELETE <library>
pub fn function_delete(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut guard = ctx.node.scripts.engine.lock();
    let engine = engine_of(ctx.node, &mut guard)?;
    let name = String::from_utf8_lossy(&args[2]);
    if engine.libraries.remove(name.as_ref()).is_none() {
        return Err(CmdError::err("Library not found"));
    }
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

/// FUNCTION FLUSH [ASYNC|SYNC]
pub fn function_flush(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(super::subcommand_syntax_error(args));
    }
    match args.get(2) {
        None => {}
        Some(a) if eq_ic(a, "sync") || eq_ic(a, "async") => {}
        Some(_) => {
            return Err(CmdError::err(
                "FUNCTION FLUSH only supports SYNC|ASYNC option",
            ));
        }
    }
    if let Some(engine) = ctx.node.scripts.engine.lock().as_mut() {
        engine.libraries.clear();
    }
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

/// FUNCTION LIST [LIBRARYNAME <pattern>] [WITHCODE]
pub fn function_list(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        if eq_ic(&args[i], "WITHCODE") && !with_code {
            with_code = true;
            i += 1;
        } else if eq_ic(&args[i], "LIBRARYNAME") && pattern.is_none() {
            pattern = Some(
                args.get(i + 1)
                    .ok_or_else(|| CmdError::err("library name argument was not given"))?,
            );
            i += 2;
        } else {
            return Err(CmdError::err(format!(
                "Unknown argument {}",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    let guard = ctx.node.scripts.engine.lock();
    let libs: Vec<(&String, &Library)> = guard
        .as_ref()
        .map(|e| {
            e.libraries
                .iter()
                .filter(|(n, _)| pattern.is_none_or(|p| glob_match(p, n.as_bytes(), true)))
                .collect()
        })
        .unwrap_or_default();
    let out = &mut ctx.out;
    out.array(libs.len());
    for (name, lib) in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for (fname, f) in &lib.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(fname.as_bytes());
            out.bulk(b"description");
            match &f.description {
                Some(d) => out.bulk(d),
                None => out.null(),
            }
            out.bulk(b"flags");
            out.set(f.flag_names.len());
            for n in &f.flag_names {
                out.simple(n);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

/// FUNCTION STATS
pub fn function_stats(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let scripts = &ctx.node.scripts;
    // While a function runs its caller holds the engine: the counts come from what the last
    // look saw (Redis answers from its own thread between two hook calls).
    let running = scripts.running_function();
    // A script (not a function) running: Redis's functionStatsCommand answers its -BUSY.
    if running.is_none() && scripts.is_running() {
        return Err(CmdError::Msg(scripts.busy_error().into()));
    }
    let (libs, funcs) = match scripts.engine.try_lock() {
        Some(g) => g.as_ref().map_or((0, 0), counts),
        None => scripts.function_counts(),
    };
    let out = &mut ctx.out;
    out.map(2);
    out.bulk(b"running_script");
    match running {
        Some((name, cmd, started)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(cmd.len());
            for a in &cmd {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(super::now_ms() - started);
        }
        None => out.null(),
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libs as i64);
    out.bulk(b"functions_count");
    out.int(funcs as i64);
    Ok(())
}

/// FUNCTION KILL: stops a running function that has not written.
pub fn function_kill(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    super::scripting::kill_running(ctx.node, true)?;
    ctx.out.ok();
    Ok(())
}

/// The FUNCTION DUMP payload of every library: RDB function records, version, CRC-64.
pub(crate) fn dump_payload(engine: &Engine) -> Vec<u8> {
    let mut out = Vec::new();
    for lib in engine.libraries.values() {
        out.push(RDB_OPCODE_FUNCTION2);
        rdb::write_string(&mut out, &lib.code);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = rdb::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The libraries' code in a FUNCTION DUMP payload.
fn payload_libraries(payload: &[u8]) -> Result<Vec<Vec<u8>>, CmdError> {
    let body = rdb::verify_dump(payload)
        .map_err(|_| CmdError::err("DUMP payload version or checksum are wrong"))?;
    let mut r = rdb::Reader::new(body);
    let mut codes = Vec::new();
    while !r.is_empty() {
        let op = r
            .u8()
            .map_err(|_| CmdError::err("given type is not a function"))?;
        if op != RDB_OPCODE_FUNCTION2 {
            return Err(CmdError::err("given type is not a function"));
        }
        codes.push(
            r.string()
                .map_err(|_| CmdError::err("Failed loading library payload"))?,
        );
    }
    Ok(codes)
}

/// FUNCTION DUMP
pub fn function_dump(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let mut guard = ctx.node.scripts.engine.lock();
    let engine = engine_of(ctx.node, &mut guard)?;
    let payload = dump_payload(engine);
    ctx.out.bulk(&payload);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    Append,
    Replace,
    Flush,
}

/// Loads a FUNCTION DUMP payload: every library or none.
pub fn restore_payload(node: &Node, payload: &[u8], policy: RestorePolicy) -> Result<(), CmdError> {
    let codes = payload_libraries(payload)?;
    let mut guard = node.scripts.engine.lock();
    let engine = engine_of(node, &mut guard)?;
    let saved = std::mem::take(&mut engine.libraries);
    // Compiled against the libraries kept, so clashes show.
    let mut staged = if policy == RestorePolicy::Flush {
        BTreeMap::new()
    } else {
        saved.clone()
    };
    let mut result = Ok(());
    let existing: Vec<String> = staged.keys().cloned().collect();
    for code in codes {
        // A name the node already has: Redis words this one without quotes.
        if policy == RestorePolicy::Append
            && let Ok((name, _)) = metadata(&code)
            && existing.contains(&name)
        {
            result = Err(CmdError::err(format!("Library {name} already exists")));
            break;
        }
        engine.libraries = std::mem::take(&mut staged);
        let compiled = compile(engine, &code, policy == RestorePolicy::Replace);
        staged = std::mem::take(&mut engine.libraries);
        match compiled {
            Ok((name, lib)) => {
                staged.insert(name, lib);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    engine.libraries = if result.is_ok() { staged } else { saved };
    result
}

/// FUNCTION RESTORE <payload> [FLUSH|APPEND|REPLACE]
pub fn function_restore(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(super::subcommand_syntax_error(args));
    }
    let policy = match args.get(3) {
        None => RestorePolicy::Append,
        Some(a) if eq_ic(a, "APPEND") => RestorePolicy::Append,
        Some(a) if eq_ic(a, "REPLACE") => RestorePolicy::Replace,
        Some(a) if eq_ic(a, "FLUSH") => RestorePolicy::Flush,
        Some(_) => {
            return Err(CmdError::err(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ));
        }
    };
    restore_payload(ctx.node, &args[2], policy)?;
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

pub fn function_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    super::reply_help(
        ctx,
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// FCALL

/// A function by name, whatever its case (Redis's function names ignore it).
pub(crate) fn find_function<'e>(engine: &'e Engine, name: &str) -> Option<(&'e String, &'e Func)> {
    engine.libraries.values().find_map(|l| {
        l.functions
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
    })
}

fn fcall_generic(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes], readonly: bool) -> CmdResult {
    let node = ctx.node;
    let mut guard = node.scripts.engine.lock();
    let engine = engine_of(node, &mut guard)?;
    let asked = String::from_utf8_lossy(&args[1]).into_owned();
    let Some((name, func)) = find_function(engine, &asked) else {
        return Err(CmdError::err("Function not found"));
    };
    let name = name.clone();
    let numkeys = int(&args[2]).map_err(|_| CmdError::err("Bad number of keys provided"))?;
    if numkeys > args.len() as i64 - 3 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    let (f, flags) = (func.f.clone(), func.flags);
    if let Some(e) = flags.refused_on(node) {
        return Err(e);
    }
    super::scripting::may_write_check(node, flags)?;
    if !flags.no_writes && readonly {
        return Err(CmdError::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    let oom = !flags.allow_oom && node.over_maxmemory();
    if oom && !flags.no_writes {
        return Err(CmdError::Oom);
    }
    node.scripts.note_function(&name, args, counts(engine));
    let target = Target {
        f,
        flags,
        name: &name,
        function: true,
        readonly,
        oom,
    };
    let r = run_target(ctx, ks, engine, args, 2, numkeys as usize, target);
    node.scripts.note_function_end();
    r
}

pub fn fcall(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, ks, args, false)
}

pub fn fcall_ro(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, ks, args, true)
}

/// How many libraries and functions the engine holds (for FUNCTION STATS while one runs).
pub(crate) fn counts(engine: &Engine) -> (usize, usize) {
    (
        engine.libraries.len(),
        engine.libraries.values().map(|l| l.functions.len()).sum(),
    )
}

/// The FUNCTION DUMP payload of the node's libraries, None when it has none: what snapshots,
/// log rewrites and full syncs carry.
pub fn dump_all(node: &Node) -> Option<Vec<u8>> {
    let guard = node.scripts.engine.lock();
    let engine = guard.as_ref()?;
    (!engine.libraries.is_empty()).then(|| dump_payload(engine))
}

/// Removes every library (a replica's full sync starts from none).
pub fn flush_libraries(node: &Node) {
    if let Some(engine) = node.scripts.engine.lock().as_mut() {
        engine.libraries.clear();
    }
}

/// Loads the libraries of a snapshot or a full sync (replacing libraries of the same name).
pub fn load_saved(node: &Node, payload: &[u8]) -> Result<(), String> {
    restore_payload(node, payload, RestorePolicy::Replace)
        .map_err(|e| format!("cannot load the saved functions: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The command table

const ALL_SUCCEEDED: &[&str] = &["request_policy:all_shards", "response_policy:all_succeeded"];

// Writes to the libraries take every shard (ALL_SHARDS): they are ordered with each other and
// with a snapshot's cut, and logged in the order they applied.
static FUNCTION_SUBS: &[Command] = &[
    cmd!(
        "load",
        -3,
        WRITE | DENYOOM | NOSCRIPT | ALL_SHARDS,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_load,
        "Creates a library."
    )
    .tips(ALL_SUCCEEDED),
    cmd!(
        "delete",
        3,
        WRITE | NOSCRIPT | ALL_SHARDS,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_delete,
        "Deletes a library and its functions."
    )
    .tips(ALL_SUCCEEDED),
    cmd!(
        "flush",
        -2,
        WRITE | NOSCRIPT | ALL_SHARDS,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_flush,
        "Deletes all libraries and functions."
    )
    .tips(ALL_SUCCEEDED),
    cmd!(
        "list",
        -2,
        NOSCRIPT,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_list,
        "Returns information about all libraries."
    )
    .tips(&["nondeterministic_output_order"]),
    cmd!(
        "stats",
        2,
        NOSCRIPT | ALLOW_BUSY,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_stats,
        "Returns information about a function during execution."
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ]),
    cmd!(
        "kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_kill,
        "Terminates a function during execution."
    )
    .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
    cmd!(
        "dump",
        2,
        NOSCRIPT,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_dump,
        "Dumps all libraries into a serialized binary payload."
    ),
    cmd!(
        "restore",
        -3,
        WRITE | DENYOOM | NOSCRIPT | ALL_SHARDS,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_restore,
        "Restores all libraries from a payload."
    )
    .tips(ALL_SUCCEEDED),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "scripting",
        "7.0.0",
        function_help,
        "Returns helpful text about the different subcommands."
    ),
];

pub static COMMANDS: &[Command] = &[
    Command {
        since: "7.0.0",
        ..eval_cmd!(
            "fcall",
            EVAL_FLAGS | MAY_REPLICATE | ALL_SHARDS,
            fcall,
            "Invokes a function."
        )
    },
    Command {
        since: "7.0.0",
        ..eval_cmd!(
            "fcall_ro",
            READONLY | EVAL_FLAGS | ALL_SHARDS,
            fcall_ro,
            "Invokes a read-only function."
        )
    },
    container!(
        "function",
        "scripting",
        "7.0.0",
        FUNCTION_SUBS,
        "A container for function commands."
    ),
];
