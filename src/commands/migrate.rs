//! MIGRATE: moves keys to another server over RESP, as Redis's `migrateCommand` does. The keys
//! are serialized with DUMP's encoding and sent as `RESTORE` (`RESTORE-ASKING` in cluster mode,
//! so an importing target takes them); each key the target acknowledged is deleted here, unless
//! COPY. Connections to targets are kept for 10 seconds (Redis's `migrate_cached_sockets`).
//!
//! Like Redis, MIGRATE is atomic: the exchange with the target runs while the keys' shards are
//! locked, so no write lands on a key between its copy and its deletion (a client of those
//! shards waits, as every client of a Redis server waits). The socket is a blocking one, driven
//! off the runtime's worker pool (`block_in_place`), so the rest of the node keeps serving.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::args::{eq_ic, int};
use super::flags::*;
use super::table::KeySpec;
use super::{CmdError, CmdResult, Command, Ctx};
use crate::observe::events::class;
use crate::store::{Keyspace, rdb};

/// Redis's MIGRATE_SOCKET_CACHE_ITEMS and MIGRATE_SOCKET_CACHE_TTL.
const CACHE_ITEMS: usize = 64;
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Redis reads each reply line into a 1024-byte buffer: a longer error is cut there.
const MAX_LINE: usize = 1023;

/// A connection to a target, kept between MIGRATEs.
struct TargetConn {
    stream: BufReader<TcpStream>,
    /// The database selected on it; None when unknown (new, or after an error reply).
    last_dbid: Option<i64>,
    last_use: Instant,
}

/// The cached connections, by `host:port`. A MIGRATE takes its target's connection out while it
/// uses it, so two clients migrating to one target at once each have their own.
#[derive(Default)]
pub struct SocketCache {
    conns: Mutex<HashMap<String, TargetConn>>,
}

impl SocketCache {
    /// `migrate_cached_sockets` in `INFO stats`.
    pub fn len(&self) -> usize {
        self.conns.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the connections unused for 10 seconds (called from the node's cron).
    pub fn close_idle(&self) {
        self.conns
            .lock()
            .retain(|_, c| c.last_use.elapsed() <= CACHE_TTL);
    }

    fn take(&self, name: &str) -> Option<TargetConn> {
        self.conns.lock().remove(name)
    }

    fn put(&self, name: String, mut conn: TargetConn) {
        conn.last_use = Instant::now();
        let mut conns = self.conns.lock();
        if conns.len() >= CACHE_ITEMS
            && !conns.contains_key(&name)
            && let Some(victim) = conns.keys().next().cloned()
        {
            conns.remove(&victim);
        }
        conns.insert(name, conn);
    }
}

struct Options<'a> {
    copy: bool,
    replace: bool,
    /// AUTH password, or AUTH2 username password.
    auth: Option<(Option<&'a Bytes>, &'a Bytes)>,
    keys: &'a [Bytes],
}

/// The options after `timeout`, in Redis's order of checks, and the positions of the passwords
/// met before any error (Redis hides those from SLOWLOG and MONITOR as it parses).
fn parse(args: &[Bytes]) -> (Result<Options<'_>, CmdError>, SmallVec<[usize; 2]>) {
    let mut secrets = SmallVec::new();
    let mut o = Options {
        copy: false,
        replace: false,
        auth: None,
        keys: &args[3..4],
    };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = &args[j];
        if eq_ic(a, "COPY") {
            o.copy = true;
        } else if eq_ic(a, "REPLACE") {
            o.replace = true;
        } else if eq_ic(a, "AUTH") {
            if more < 1 {
                return (Err(CmdError::Syntax), secrets);
            }
            o.auth = Some((None, &args[j + 1]));
            secrets.push(j + 1);
            j += 1;
        } else if eq_ic(a, "AUTH2") {
            if more < 2 {
                return (Err(CmdError::Syntax), secrets);
            }
            o.auth = Some((Some(&args[j + 1]), &args[j + 2]));
            secrets.extend([j + 1, j + 2]);
            j += 2;
        } else if eq_ic(a, "KEYS") {
            if !args[3].is_empty() {
                let e = CmdError::err(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                );
                return (Err(e), secrets);
            }
            o.keys = &args[j + 1..];
            break;
        } else {
            return (Err(CmdError::Syntax), secrets);
        }
        j += 1;
    }
    (Ok(o), secrets)
}

/// The arguments as SLOWLOG and MONITOR show them: AUTH and AUTH2 credentials replaced by
/// `(redacted)`. None when there is nothing to hide.
pub fn redacted(args: &[Bytes]) -> Option<Vec<Bytes>> {
    let (_, secrets) = parse(args);
    if secrets.is_empty() {
        return None;
    }
    let mut shown = args.to_vec();
    for i in secrets {
        shown[i] = Bytes::from_static(b"(redacted)");
    }
    Some(shown)
}

/// Key positions, as Redis's `migrateGetKeys`: the key argument, or everything after KEYS (none
/// when KEYS comes with a non-empty key argument, which MIGRATE refuses). AUTH's password and
/// AUTH2's user and password are skipped on the way: a password may be spelt `KEYS`.
pub fn migrate_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    let mut i = 6;
    let mut keys_at = None;
    while i < args.len() {
        if eq_ic(&args[i], "KEYS") {
            keys_at = Some(i);
            break;
        }
        if eq_ic(&args[i], "AUTH") {
            i += 1;
        } else if eq_ic(&args[i], "AUTH2") {
            i += 2;
        }
        i += 1;
    }
    match keys_at {
        Some(_) if !args[3].is_empty() => SmallVec::new(),
        Some(k) => (k + 1..args.len()).collect(),
        None if args.len() > 3 => smallvec::smallvec![3],
        None => SmallVec::new(),
    }
}

/// One key to send: its name, TTL in milliseconds (0: none) and DUMP payload.
struct Outgoing<'a> {
    key: &'a Bytes,
    ttl: i64,
    payload: Vec<u8>,
}

/// What the target answered. Lines are without their CRLF; `restores` is shorter than the keys
/// sent when the connection broke after the first reply.
struct Replies {
    auth: Option<Vec<u8>>,
    select: Option<Vec<u8>>,
    restores: Vec<Vec<u8>>,
    broken: bool,
}

enum IoFailure {
    Connect,
    Write,
    Read,
}

/// What one exchange with the target needs.
struct Exchange<'a> {
    name: String,
    timeout: Duration,
    dbid: i64,
    auth: Option<(Option<&'a Bytes>, &'a Bytes)>,
    restore: &'static [u8],
    replace: bool,
    keys: &'a [Outgoing<'a>],
}

impl Exchange<'_> {
    fn request(&self, select: bool) -> Vec<u8> {
        use crate::resp::encode_command;
        let mut out = Vec::new();
        if let Some((user, pass)) = self.auth {
            let user = user.map(|u| &u[..]);
            encode_command(
                &mut out,
                std::iter::once(&b"AUTH"[..]).chain(user).chain([&pass[..]]),
            );
        }
        if select {
            encode_command(&mut out, [&b"SELECT"[..], self.dbid.to_string().as_bytes()]);
        }
        for k in self.keys {
            let ttl = k.ttl.to_string();
            let replace: Option<&[u8]> = self.replace.then_some(b"REPLACE");
            encode_command(
                &mut out,
                [self.restore, k.key, ttl.as_bytes(), &k.payload[..]]
                    .into_iter()
                    .chain(replace),
            );
        }
        out
    }

    /// The cached connection, or a new one, with this MIGRATE's timeout for each read and write.
    /// As in Redis, whose connect does not wait for the handshake's outcome, a refused
    /// connection fails as the first write to it does.
    fn connect(&self, cache: &SocketCache) -> Result<TargetConn, (IoFailure, bool)> {
        let conn = match cache.take(&self.name) {
            Some(c) => c,
            None => self.open()?,
        };
        let s = conn.stream.get_ref();
        s.set_read_timeout(Some(self.timeout))
            .and_then(|()| s.set_write_timeout(Some(self.timeout)))
            .map_err(|_| (IoFailure::Write, false))?;
        Ok(conn)
    }

    fn open(&self) -> Result<TargetConn, (IoFailure, bool)> {
        let addrs = self
            .name
            .to_socket_addrs()
            .map_err(|_| (IoFailure::Connect, true))?;
        let mut failure = (IoFailure::Connect, true);
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(stream) => {
                    // Small requests and replies: no Nagle delay (Redis's anetEnableTcpNoDelay).
                    let _ = stream.set_nodelay(true);
                    return Ok(TargetConn {
                        stream: BufReader::new(stream),
                        last_dbid: None,
                        last_use: Instant::now(),
                    });
                }
                Err(e) if !timed_out(&e) => failure = (IoFailure::Write, false),
                Err(_) => {}
            }
        }
        Err(failure)
    }

    /// Sends the request and reads the replies. A cached connection the target closed fails on
    /// the first write or read: that is retried once on a new connection, unless it timed out.
    fn run(&self, cache: &SocketCache) -> Result<Replies, IoFailure> {
        let mut may_retry = true;
        loop {
            let attempt = self.connect(cache).and_then(|mut conn| {
                let select = conn.last_dbid != Some(self.dbid);
                let r = self.exchange(&mut conn, select)?;
                if !r.broken {
                    let target_error = r.error().is_some();
                    conn.last_dbid = (!target_error).then_some(self.dbid);
                    cache.put(self.name.clone(), conn);
                }
                Ok(r)
            });
            match attempt {
                Ok(r) => return Ok(r),
                Err((IoFailure::Connect, _)) => return Err(IoFailure::Connect),
                Err((failure, timed_out)) if timed_out || !may_retry => return Err(failure),
                Err(_) => may_retry = false,
            }
        }
    }

    /// One attempt. Err: nothing was acknowledged (with whether it timed out).
    fn exchange(&self, conn: &mut TargetConn, select: bool) -> Result<Replies, (IoFailure, bool)> {
        let req = self.request(select);
        conn.stream
            .get_mut()
            .write_all(&req)
            .map_err(|e| (IoFailure::Write, timed_out(&e)))?;
        let read_err = |e: io::Error| (IoFailure::Read, timed_out(&e));
        let auth = match self.auth {
            Some(_) => Some(read_line(&mut conn.stream).map_err(read_err)?),
            None => None,
        };
        let select = match select {
            true => Some(read_line(&mut conn.stream).map_err(read_err)?),
            false => None,
        };
        let mut restores = Vec::with_capacity(self.keys.len());
        for _ in self.keys {
            match read_line(&mut conn.stream) {
                Ok(l) => restores.push(l),
                Err(e) if restores.is_empty() => return Err(read_err(e)),
                Err(_) => {
                    return Ok(Replies {
                        auth,
                        select,
                        restores,
                        broken: true,
                    });
                }
            }
        }
        Ok(Replies {
            auth,
            select,
            restores,
            broken: false,
        })
    }
}

impl Replies {
    /// The error that fails every RESTORE (AUTH's, then SELECT's), or the first RESTORE error.
    fn error(&self) -> Option<&[u8]> {
        self.shared_error().or_else(|| {
            self.restores
                .iter()
                .find(|l| l.starts_with(b"-"))
                .map(|l| &l[1..])
        })
    }

    fn shared_error(&self) -> Option<&[u8]> {
        [&self.auth, &self.select]
            .into_iter()
            .flatten()
            .find(|l| l.starts_with(b"-"))
            .map(|l| &l[1..])
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One reply line without its CRLF; an empty line, a closed connection or a line longer than
/// any reply to AUTH, SELECT or RESTORE is an error, as in Redis's `syncReadLine` callers.
fn read_line(r: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    const LIMIT: u64 = 64 * 1024;
    let mut line = Vec::new();
    let n = r.by_ref().take(LIMIT).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if line.last() != Some(&b'\n') {
        return Err(io::ErrorKind::InvalidData.into());
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    if line.is_empty() {
        return Err(io::ErrorKind::InvalidData.into());
    }
    line.truncate(MAX_LINE);
    Ok(line)
}

/// Runs blocking I/O without stalling the runtime: on a multi-threaded runtime the worker hands
/// its other tasks to a new thread first. A connection thread has no other worker to hand them
/// to: its other clients wait, as all of Redis's do during a MIGRATE.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    if crate::server::on_connection_thread() {
        return f();
    }
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
/// [AUTH2 username password] [KEYS key [key ...]]
pub fn migrate(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let o = parse(args).0?;
    let timeout = int(&args[5])?;
    let dbid = int(&args[4])?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    let db = ctx.client.db;
    let mut keys = Vec::with_capacity(o.keys.len());
    for key in o.keys {
        let Some(e) = ks.lookup_read(db, key)? else {
            continue;
        };
        let payload = rdb::dump(&e.value);
        let ttl = match ks.expire_at(db, key)? {
            Some(at) => (at - ctx.now_ms).max(1),
            None => 0,
        };
        keys.push(Outgoing { key, ttl, payload });
    }
    if keys.is_empty() {
        ctx.out.simple("NOKEY");
        return Ok(());
    }
    let exchange = Exchange {
        name: format!(
            "{}:{}",
            String::from_utf8_lossy(&args[1]),
            String::from_utf8_lossy(&args[2])
        ),
        timeout,
        dbid,
        auth: o.auth,
        restore: if ctx.node.cluster.is_some() {
            b"RESTORE-ASKING"
        } else {
            b"RESTORE"
        },
        replace: o.replace,
        keys: &keys,
    };
    let replies = blocking(|| exchange.run(&ctx.node.migrate_sockets));
    // Nothing goes to the append-only log unless keys were deleted (then as DEL).
    ctx.log_as = Some(Vec::new());
    let replies = match replies {
        Ok(r) => r,
        Err(f) => {
            return Err(CmdError::Msg(
                match f {
                    IoFailure::Connect => "IOERR error or timeout connecting to the client",
                    IoFailure::Write => "IOERR error or timeout writing to target instance",
                    IoFailure::Read => "IOERR error or timeout reading to target instance",
                }
                .into(),
            ));
        }
    };
    if !o.copy && replies.shared_error().is_none() {
        let mut del = vec![Bytes::from_static(b"DEL")];
        for (k, line) in keys.iter().zip(&replies.restores) {
            if line.starts_with(b"-") {
                continue;
            }
            ks.remove(db, k.key)?;
            ctx.signal_modified(k.key);
            ctx.notify(class::GENERIC, "del", k.key);
            ctx.dirty(1);
            del.push(k.key.clone());
        }
        if del.len() > 1 {
            ctx.log_as = Some(del);
        }
    }
    if let Some(e) = replies.error() {
        return Err(CmdError::err(format!(
            "Target instance replied with error: {}",
            String::from_utf8_lossy(e)
        )));
    }
    if replies.broken {
        return Err(CmdError::Msg(
            "IOERR error or timeout reading to target instance".into(),
        ));
    }
    ctx.out.ok();
    Ok(())
}

pub static COMMANDS: &[Command] = &[Command {
    name: "migrate",
    arity: -6,
    flags: WRITE | MOVABLEKEYS,
    keys: (3, 3, 1),
    keys_fn: Some(migrate_keys),
    group: "generic",
    since: "2.6.0",
    summary: "Atomically transfer a key from a Redis instance to another one.",
    handler: Some(migrate),
    subcommands: &[],
    key_specs: &[
        KeySpec::range(&["RW", "access", "delete"], 3, 0, 1),
        KeySpec::keyword(&["RW", "access", "delete", "incomplete"], "KEYS", -2, -1, 1),
    ],
    tips: &["nondeterministic_output"],
    acl: &["@keyspace", "@dangerous"],
}];

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<Bytes> {
        s.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn key_positions_follow_redis_migrate_get_keys() {
        let k = |s: &[&str]| migrate_keys(&args(s)).to_vec();
        assert_eq!(k(&["migrate", "h", "1", "k", "0", "5"]), vec![3]);
        assert_eq!(k(&["migrate", "h", "1", "", "0", "5"]), vec![3]);
        assert_eq!(
            k(&["migrate", "h", "1", "", "0", "5", "COPY", "keys", "a", "b"]),
            vec![8, 9]
        );
        assert!(k(&["migrate", "h", "1", "k", "0", "5", "KEYS", "a"]).is_empty());
        assert_eq!(
            k(&[
                "migrate", "h", "1", "", "0", "5", "AUTH", "KEYS", "KEYS", "a"
            ]),
            vec![9]
        );
        assert_eq!(
            k(&[
                "migrate", "h", "1", "", "0", "5", "AUTH2", "KEYS", "KEYS", "KEYS", "a"
            ]),
            vec![10]
        );
    }
}
