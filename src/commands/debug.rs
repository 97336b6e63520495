//! DEBUG: Redis's command for looking inside the server and bending it in tests, with the
//! subcommands that mean something here (DEBUG HELP lists them). Off unless
//! `enable-debug-command` is `yes` (or `local`, for clients on loopback), as in Redis 7.0:
//! a DEBUG RELOAD or DEBUG SLEEP from anywhere would be a way to stop the server.
//!
//! It holds every shard, so while it runs no other command does (DEBUG SLEEP stalls the node
//! as it stalls Redis). DEBUG DIGEST and DIGEST-VALUE compute Redis's digest exactly
//! (`debug.c`: SHA1 over keys, types, values and "has a TTL"), so the same data gives the same
//! digest on both servers.

use bytes::Bytes;

use super::args::{eq_ic, int};
use super::{CmdError, CmdResult, Ctx};
use crate::store::stream::StreamId;
use crate::store::{Entry, Keyspace, Sds, Value};

const HELP: &[&str] = &[
    "CHANGE-REPL-ID",
    "    Change the replication IDs of the instance.",
    "    Dangerous: should be used only for testing the replication subsystem.",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LOADAOF",
    "    Flush the AOF buffers on disk and reload the AOF in memory.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "OBJECT <key>",
    "    Show low level info about the `key` and associated value.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cluster slots are not respected so keys not belonging to the",
    "    current node can be created in cluster mode.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "RELOAD [option ...]",
    "    Save the snapshot on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: conflicting keys will be loaded from the snapshot.",
    "    * NOFLUSH: the existing database will not be removed before load, but",
    "      conflicting keys will generate an exception and kill the server.",
    "    * NOSAVE: the database will be loaded from an existing snapshot file.",
    "    Examples:",
    "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
    "      the database.",
    "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
    "      existing snapshot file.",
    "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing",
    "      snapshot file to the database.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
];

/// DEBUG (refused by `enable-debug-command` before it gets here: [`protected_refusal`]).
pub fn debug(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    let n = args.len();
    if eq_ic(sub, "HELP") && n == 2 {
        return super::reply_help(ctx, "DEBUG", HELP);
    }
    if eq_ic(sub, "OBJECT") && n == 3 {
        object(ctx, ks, &args[2])
    } else if eq_ic(sub, "DIGEST") && n == 2 {
        let d = dataset_digest(ks, ctx.node.store.databases());
        ctx.out.simple(&hex(&d));
        Ok(())
    } else if eq_ic(sub, "DIGEST-VALUE") {
        let db = ctx.client.db;
        ctx.out.array(n - 2);
        for key in &args[2..] {
            let mut d = [0u8; 20];
            // As Redis (a dictionary lookup): a key past its TTL not yet deleted is seen.
            if let Some(e) = ks.get(db, key)? {
                object_digest(&mut d, e);
            }
            ctx.out.simple(&hex(&d));
        }
        Ok(())
    } else if eq_ic(sub, "RELOAD") {
        reload(ctx, ks, &args[2..])
    } else if eq_ic(sub, "LOADAOF") && n == 2 {
        if !ks.holds_all() {
            return Err(CmdError::err("DEBUG LOADAOF needs every shard locked"));
        }
        crate::persist::debug_loadaof(ctx.node, ks).map_err(CmdError::err)?;
        ctx.out.ok();
        Ok(())
    } else if eq_ic(sub, "POPULATE") && (3..=5).contains(&n) {
        populate(ctx, ks, args)
    } else if eq_ic(sub, "PROTOCOL") && n == 3 {
        protocol(ctx, &args[2])
    } else if eq_ic(sub, "SLEEP") && n == 3 {
        let secs = leading_f64(&args[2]);
        if secs > 0.0 && secs.is_finite() {
            std::thread::sleep(std::time::Duration::from_secs_f64(secs.min(1e9)));
        }
        ctx.out.ok();
        Ok(())
    } else if eq_ic(sub, "SET-ACTIVE-EXPIRE") && n == 3 {
        let on = leading_i64(&args[2]) != 0;
        ctx.node
            .store
            .active_expire
            .store(on, std::sync::atomic::Ordering::Relaxed);
        ctx.out.ok();
        Ok(())
    } else if eq_ic(sub, "SET-DISABLE-DENY-SCRIPTS") && n == 3 {
        // (Not in Redis's DEBUG HELP either.)
        let on = leading_i64(&args[2]) != 0;
        ctx.node
            .scripts
            .disable_deny
            .store(on, std::sync::atomic::Ordering::Relaxed);
        ctx.out.ok();
        Ok(())
    } else if eq_ic(sub, "LOG") && n == 3 {
        tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(&args[2]));
        ctx.out.ok();
        Ok(())
    } else if eq_ic(sub, "ERROR") && n == 3 {
        ctx.out.error(&String::from_utf8_lossy(&args[2]));
        Ok(())
    } else if eq_ic(sub, "CHANGE-REPL-ID") && n == 2 {
        tracing::warn!("Changing replication IDs after receiving DEBUG change-repl-id");
        if let Some(c) = &ctx.node.cluster {
            c.repl.change_id();
        }
        ctx.out.ok();
        Ok(())
    } else {
        Err(super::subcommand_syntax_error(args))
    }
}

/// Redis 7.0's protected commands (DEBUG, and MODULE LOAD/LOADEX/UNLOAD) run when their
/// setting says `yes`, or `local` for a client on 127.0.0.1 or ::1 (Redis's islocalClient);
/// else Redis's refusal. Checked right after the arity, before authentication, ACL and
/// MULTI, as Redis's processCommand does.
pub fn protected_refusal(
    node: &crate::node::Node,
    addr: &std::net::SocketAddr,
    fullname: &str,
) -> Option<CmdError> {
    let (command, setting) = match fullname {
        "debug" => ("DEBUG", "enable-debug-command"),
        "module|load" | "module|loadex" | "module|unload" => ("MODULE", "enable-module-command"),
        _ => return None,
    };
    let ok = match node.config.read().get(setting) {
        "yes" => true,
        "local" => match addr.ip() {
            std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
            std::net::IpAddr::V6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
        },
        _ => false,
    };
    (!ok).then(|| {
        CmdError::err(format!(
            "{command} command not allowed. If the {setting} option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."
        ))
    })
}

fn object(ctx: &mut Ctx, ks: &mut Keyspace, key: &[u8]) -> CmdResult {
    let lru_now = ctx.node.store.lru_clock();
    let fill = ctx.node.config.read().list_max_listpack_size;
    // As Redis (a dictionary lookup): a key past its TTL not yet deleted is seen, and stays.
    let Some(e) = ks.get(ctx.client.db, key)? else {
        return Err(CmdError::err("no such key"));
    };
    let refcount = match e.value {
        Value::Int(i)
            if (0..super::keys::OBJ_SHARED_INTEGERS).contains(&i)
                && super::keys::shares_integers(ctx) =>
        {
            i32::MAX
        }
        _ => 1,
    };
    // RDB's length of the value: its DUMP payload without the type byte and the footer.
    let serialized = crate::store::rdb::dump(&e.value).len().saturating_sub(11);
    let mut extra = String::new();
    if let Value::List(l) = &e.value {
        let nodes = l.node_count().max(1);
        extra = format!(
            " ql_nodes:{} ql_avg_node:{:.2} ql_listpack_max:{fill} ql_compressed:0 ql_uncompressed_size:{}",
            l.node_count(),
            l.len() as f64 / nodes as f64,
            l.packed_bytes()
        );
    }
    let line = format!(
        "Value at:{:p} refcount:{refcount} encoding:{} serializedlength:{serialized} lru:{} lru_seconds_idle:{}{extra}",
        &e.value as *const Value,
        e.encoding(),
        e.lru(),
        lru_now.saturating_sub(e.lru()),
    );
    ctx.out.simple(&line);
    Ok(())
}

fn reload(ctx: &mut Ctx, ks: &mut Keyspace, opts: &[Bytes]) -> CmdResult {
    let (mut save, mut flush, mut merge) = (true, true, false);
    for o in opts {
        if eq_ic(o, "MERGE") {
            merge = true;
        } else if eq_ic(o, "NOFLUSH") {
            flush = false;
        } else if eq_ic(o, "NOSAVE") {
            save = false;
        } else {
            return Err(CmdError::err(
                "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            ));
        }
    }
    if !ks.holds_all() {
        return Err(CmdError::err("DEBUG RELOAD needs every shard locked"));
    }
    crate::persist::debug_reload(ctx.node, ks, save, flush, merge).map_err(CmdError::err)?;
    ctx.out.ok();
    Ok(())
}

fn populate(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // Redis's one message for a count or size that is not a number >= 0.
    let positive = |a: &[u8]| match int(a) {
        Ok(v) if v >= 0 => Ok(v),
        _ => Err(CmdError::err("value is out of range, must be positive")),
    };
    let count = positive(&args[2])?;
    let size = args.get(4).map(|a| positive(a)).transpose()?;
    if size.is_some_and(|s| s as usize > ctx.proto_max_bulk_len()) {
        return Err(CmdError::err(
            "string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let prefix: &[u8] = args.get(3).map_or(b"key", |p| &p[..]);
    let db = ctx.client.db;
    for j in 0..count {
        let mut key = prefix.to_vec();
        key.push(b':');
        key.extend_from_slice(j.to_string().as_bytes());
        if ks.exists(db, &key)? {
            continue;
        }
        let mut value = format!("value:{j}").into_bytes();
        if let Some(size) = size {
            value.resize(size as usize, 0);
        }
        ks.set(db, &key, Value::Str(Sds::from_vec(value)), None, false)?;
        ctx.signal_modified(&key);
    }
    ctx.out.ok();
    Ok(())
}

fn protocol(ctx: &mut Ctx, name: &[u8]) -> CmdResult {
    use bytes::BufMut;
    let out = &mut ctx.out;
    let resp3 = out.resp3();
    if eq_ic(name, "string") {
        out.bulk(b"Hello World");
    } else if eq_ic(name, "integer") {
        out.int(12345);
    } else if eq_ic(name, "double") {
        // Redis's sample value, not pi.
        #[allow(clippy::approx_constant)]
        out.double(3.141);
    } else if eq_ic(name, "bignum") {
        let n: &[u8] = b"1234567999999999999999999999999999999";
        if resp3 {
            out.buf().put_u8(b'(');
            out.buf().put_slice(n);
            out.buf().put_slice(b"\r\n");
        } else {
            out.bulk(n);
        }
    } else if eq_ic(name, "null") {
        out.null();
    } else if eq_ic(name, "array") || eq_ic(name, "set") {
        if eq_ic(name, "set") {
            out.set(3);
        } else {
            out.array(3);
        }
        for j in 0..3 {
            out.int(j);
        }
    } else if eq_ic(name, "map") {
        out.map(3);
        for j in 0..3 {
            out.int(j);
            out.boolean(j == 1);
        }
    } else if eq_ic(name, "attrib") {
        if resp3 {
            out.buf().put_slice(b"|1\r\n");
            out.bulk(b"key-popularity");
            out.array(2);
            out.bulk(b"key:123");
            out.int(90);
        }
        // An attribute is not a reply: a real one follows it.
        out.bulk(b"Some real reply following the attribute");
    } else if eq_ic(name, "push") {
        if !resp3 {
            return Err(CmdError::err("RESP2 is not supported by this command"));
        }
        out.push(2);
        out.bulk(b"server-cpu-usage");
        out.int(42);
        // A push is not the command's reply: a real one follows it.
        out.bulk(b"Some real reply following the push reply");
    } else if eq_ic(name, "true") {
        out.boolean(true);
    } else if eq_ic(name, "false") {
        out.boolean(false);
    } else if eq_ic(name, "verbatim") {
        out.verbatim(b"This is a verbatim\nstring");
    } else {
        return Err(CmdError::err(
            "Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ));
    }
    Ok(())
}

/// The number C's `strtod` reads at the start of `b` (0 when none), as Redis parses it.
fn leading_f64(b: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(b);
    let s = s.trim_start();
    let end = s
        .char_indices()
        .take_while(|&(i, c)| {
            c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0) || c == 'e'
        })
        .count();
    (1..=end)
        .rev()
        .find_map(|n| s[..n].parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The number C's `atoi` reads at the start of `b` (0 when none).
fn leading_i64(b: &[u8]) -> i64 {
    leading_f64(b) as i64
}

fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha1(data: &[u8]) -> [u8; 20] {
    sha1_smol::Sha1::from(data).digest().bytes()
}

/// `xorDigest`: the SHA1 of `data`, xored into `digest` (order does not matter).
fn xor_digest(digest: &mut [u8; 20], data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

/// `mixDigest`: `digest = SHA1(digest xor SHA1(data))` (order matters).
fn mix_digest(digest: &mut [u8; 20], data: &[u8]) {
    xor_digest(digest, data);
    *digest = sha1(digest);
}

/// Redis's type number (`OBJ_STRING` .. `OBJ_STREAM`).
fn type_number(v: &Value) -> u32 {
    match v {
        Value::Str(_) | Value::Int(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    }
}

/// `xorObjectDigest`: the type, the value and whether the key has a TTL, mixed into `digest`.
fn object_digest(digest: &mut [u8; 20], e: &Entry) {
    mix_digest(digest, &type_number(&e.value).to_be_bytes());
    let mut num = itoa::Buffer::new();
    match &e.value {
        Value::Str(s) => mix_digest(digest, s),
        Value::Int(i) => mix_digest(digest, num.format(*i).as_bytes()),
        Value::List(l) => {
            for item in l.iter() {
                mix_digest(digest, item);
            }
        }
        Value::Set(s) => {
            for m in s.iter() {
                xor_digest(digest, m.bytes(&mut num));
            }
        }
        Value::ZSet(z) => {
            for (member, score) in z.iter() {
                let mut ele = [0u8; 20];
                mix_digest(&mut ele, member);
                mix_digest(&mut ele, crate::resp::writer::fmt_g(score, 17).as_bytes());
                xor_digest(digest, &ele);
            }
        }
        Value::Hash(h) => {
            for (field, value) in h.iter() {
                let mut ele = [0u8; 20];
                mix_digest(&mut ele, field);
                mix_digest(&mut ele, value);
                xor_digest(digest, &ele);
            }
        }
        Value::Stream(s) => {
            for item in s.range(StreamId::MIN, StreamId::MAX, false, usize::MAX) {
                mix_digest(digest, format!("{}.{}", item.id.ms, item.id.seq).as_bytes());
                for part in item.pairs() {
                    mix_digest(digest, part);
                }
            }
        }
    }
    if e.has_expire() {
        xor_digest(digest, b"!!expire!!");
    }
}

/// `computeDatasetDigest`: per non-empty db, its number mixed in, then every key's digest
/// (its name, then [`object_digest`]) xored in; all zeros for an empty dataset.
fn dataset_digest(ks: &mut Keyspace, databases: usize) -> [u8; 20] {
    let mut per_db: Vec<Vec<[u8; 20]>> = (0..databases).map(|_| Vec::new()).collect();
    for (_, shard) in ks.shards_mut() {
        for (db, d) in shard.dbs.iter().enumerate() {
            for e in d.keys.iter() {
                let mut digest = [0u8; 20];
                mix_digest(&mut digest, &e.key);
                object_digest(&mut digest, e);
                per_db[db].push(digest);
            }
        }
    }
    let mut out = [0u8; 20];
    for (db, digests) in per_db.into_iter().enumerate() {
        if digests.is_empty() {
            continue;
        }
        mix_digest(&mut out, &(db as u32).to_be_bytes());
        for d in digests {
            xor_digest(&mut out, &d);
        }
    }
    out
}
