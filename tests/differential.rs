//! Differential test: the same command scripts go to Debian's `redis-server` (spawned here on a
//! free port) and to a node started in-process, and the raw reply bytes must be equal.
//!
//! # Case files
//! Every `*.txt` file in `tests/differential/` is one test (see the `case_file!` list at the
//! bottom; a guard test fails when a file has no entry). In a file:
//! - one command per line, in redis-cli syntax (`SET "a b" "\x00\r\n"`, split by
//!   [`reredis::resp::parser::split_args`]), sent as a RESP multibulk; one reply is read;
//! - scripts are separated by blank lines; each script runs on a fresh connection to each
//!   server, after `FLUSHALL`;
//! - `# text` is a comment; three comments are directives for the next command line:
//!   - `# normalize: name[, name]` applies named normalisations (see [`Normalize`]) to both
//!     replies before comparing them;
//!   - `# noreply` sends the command without reading a reply (`CLIENT REPLY OFF`);
//!   - `# known-difference: why` lets the two replies differ (they are still printed); the
//!     test fails if they agree, so the list of exceptions stays honest;
//! - `!raw [n] "bytes"` sends the bytes as they are and reads `n` replies (default 1);
//! - `!close "bytes"` sends the bytes and reads until the server closes the connection (a
//!   protocol error): the bytes received and the close itself are compared;
//! - `!reconnect` replaces the script's connection with a new one (no FLUSHALL), to see what a
//!   new client sees (after `CONFIG SET requirepass`, say).
//!
//! A script may switch to RESP3 with `HELLO 3`; its replies are compared the same way.

mod common;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reredis::resp::parser::split_args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one reply may take before the case counts as "no reply".
const REPLY_DEADLINE: Duration = Duration::from_secs(5);
/// How long `redis-server` may take to answer its first PING.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The reference server

/// A `redis-server` child process, killed (by its PID, through `Child`) when dropped.
struct RedisServer {
    child: Child,
    addr: SocketAddr,
}

impl RedisServer {
    /// Spawns `redis-server` without persistence on a free port and waits until it answers PING.
    async fn start() -> RedisServer {
        // A port freed by the OS can be taken by someone else before redis binds it: retry a
        // few times with a new port.
        for _attempt in 0..5 {
            let port = {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
                l.local_addr().expect("probe addr").port()
            };
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--enable-debug-command",
                    "yes",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/test.sh installs Debian's package)");
            let mut server = RedisServer {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            if server.wait_ready().await {
                return server;
            }
            // Dropping `server` kills the child.
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // exited: the port was taken
            }
            if let Ok(mut c) = Conn::connect(self.addr).await {
                c.send(b"PING\r\n").await;
                if let Outcome::Reply(r) = c.read_replies(1).await
                    && r == b"+PONG\r\n"
                {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Talking RESP

/// What a server did in answer to one line of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Complete replies, byte for byte.
    Reply(Vec<u8>),
    /// The bytes received, then the server closed the connection.
    Closed(Vec<u8>),
    /// Nothing complete arrived before the deadline (the bytes that did arrive).
    Timeout(Vec<u8>),
    /// Nothing was read (`# noreply`).
    NotRead,
}

impl Outcome {
    fn show(&self) -> String {
        match self {
            Outcome::Reply(b) => show_bytes(b),
            Outcome::Closed(b) => format!("{} <closed>", show_bytes(b)),
            Outcome::Timeout(b) => format!(
                "{} <no complete reply in {REPLY_DEADLINE:?}>",
                show_bytes(b)
            ),
            Outcome::NotRead => "<not read>".into(),
        }
    }
}

fn show_bytes(b: &[u8]) -> String {
    format!("\"{}\"", b.escape_ascii())
}

/// One client connection with its unread input.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        Ok(Conn {
            stream: TcpStream::connect(addr).await?,
            buf: Vec::new(),
            closed: false,
        })
    }

    async fn send(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).await.is_err() {
            self.closed = true;
        }
    }

    /// Reads more input; false on EOF, error or deadline.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> Result<(), Outcome> {
        if self.closed {
            return Err(Outcome::Closed(std::mem::take(&mut self.buf)));
        }
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(Outcome::Timeout(self.buf.clone())),
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                Err(Outcome::Closed(std::mem::take(&mut self.buf)))
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Reads exactly `n` complete replies.
    async fn read_replies(&mut self, n: usize) -> Outcome {
        let deadline = tokio::time::Instant::now() + REPLY_DEADLINE;
        let mut end = 0;
        let mut done = 0;
        // Each pass either completes a reply or reads more bytes; both are bounded (n replies,
        // and the deadline).
        while done < n {
            match parse_frame(&self.buf, end) {
                Ok(Some((_, next))) => {
                    end = next;
                    done += 1;
                }
                Ok(None) => {
                    if let Err(o) = self.fill(deadline).await {
                        return o;
                    }
                }
                Err(e) => panic!("unparsable reply {e}: {}", show_bytes(&self.buf)),
            }
        }
        Outcome::Reply(self.buf.drain(..end).collect())
    }

    /// Reads until the server closes the connection.
    async fn read_to_close(&mut self) -> Outcome {
        let deadline = tokio::time::Instant::now() + REPLY_DEADLINE;
        loop {
            if let Err(o) = self.fill(deadline).await {
                return o;
            }
        }
    }
}

/// A parsed reply, kept close to the wire so it can be written back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Frame {
    /// `+ - : , # ( _` followed by a line.
    Line(u8, Vec<u8>),
    /// `$ = !` with their data; `None` for `$-1`.
    Bulk(u8, Option<Vec<u8>>),
    /// `* % ~ > |` with their elements (maps flattened); `None` for `*-1`.
    Agg(u8, Option<Vec<Frame>>),
}

/// Parses one frame at `pos`: `Ok(None)` when incomplete.
fn parse_frame(buf: &[u8], pos: usize) -> Result<Option<(Frame, usize)>, String> {
    let Some(rel) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line_end = pos + rel;
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let line = &buf[pos + 1..line_end];
    let next = line_end + 2;
    let len = || -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad length {:?}", line.escape_ascii().to_string()))
    };
    match kind {
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
            Ok(Some((Frame::Line(kind, line.to_vec()), next)))
        }
        b'$' | b'=' | b'!' => {
            let n = len()?;
            if n < 0 {
                return Ok(Some((Frame::Bulk(kind, None), next)));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some((
                Frame::Bulk(kind, Some(buf[next..end].to_vec())),
                end + 2,
            )))
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let n = len()?;
            if n < 0 {
                return Ok(Some((Frame::Agg(kind, None), next)));
            }
            let count = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut items = Vec::with_capacity(count.min(1024) as usize);
            let mut at = next;
            for _ in 0..count {
                match parse_frame(buf, at)? {
                    Some((f, n)) => {
                        items.push(f);
                        at = n;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Frame::Agg(kind, Some(items)), at)))
        }
        other => Err(format!("unknown reply type {:?}", other as char)),
    }
}

fn write_frame(f: &Frame, out: &mut Vec<u8>) {
    match f {
        Frame::Line(k, l) => {
            out.push(*k);
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Bulk(k, None) => out.extend_from_slice(&[*k, b'-', b'1', b'\r', b'\n']),
        Frame::Bulk(k, Some(d)) => {
            out.push(*k);
            out.extend_from_slice(format!("{}\r\n", d.len()).as_bytes());
            out.extend_from_slice(d);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Agg(k, None) => out.extend_from_slice(&[*k, b'-', b'1', b'\r', b'\n']),
        Frame::Agg(k, Some(items)) => {
            let n = if matches!(k, b'%' | b'|') {
                items.len() / 2
            } else {
                items.len()
            };
            out.push(*k);
            out.extend_from_slice(format!("{n}\r\n").as_bytes());
            for i in items {
                write_frame(i, out);
            }
        }
    }
}

/// Encodes a command as a RESP multibulk.
fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Normalisations: the only places where the two replies may differ. Each says why.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Normalize {
    /// `sort`: sorts every array or set whose elements are all scalars. KEYS, SCAN and
    /// friends return keys in hash-table order, which Redis does not define.
    Sort,
    /// `sort-deep`: sorts every array and set at every level, and the pairs of every map. For
    /// whole tables that Redis lists in dict order (a container's subcommands in COMMAND INFO),
    /// and EXEC's replies.
    SortDeep,
    /// `sort-pairs`: like `sort`, for replies that are maps (flat arrays of name, value pairs
    /// in RESP2): the pairs are sorted by name. CONFIG GET lists settings in dict order.
    SortPairs,
    /// `any-int`: every integer reply becomes `:<int>`. For client ids, LASTSAVE, idle times and
    /// MEMORY USAGE: counters, clocks and allocator figures that differ between two processes.
    AnyInt,
    /// `any-digits`: every bulk string made only of digits becomes `<digits>`. For TIME and
    /// CONFIG GET of values that name this process (its port).
    AnyDigits,
    /// `seconds`: every integer reply is rounded to whole seconds (`(n + 500) / 1000`). PTTL and
    /// friends count milliseconds, and a few pass between the two servers' turns.
    Seconds,
    /// `client-fields`: in `k=v` lines (CLIENT INFO/LIST), the values of the fields that name
    /// the connection or measure it (id, addr, laddr, fd, age, idle, buffer sizes, memory,
    /// ...) become `*`. Names, db, flags and the last command are still compared.
    ClientFields,
    /// `info-fields`: INFO text is reduced to its section headers and field names, in order;
    /// the values are this process's figures (pids, memory, uptime, counters).
    InfoFields,
    /// `stream-ids`: every bulk string that is a stream entry ID (`<ms>-<seq>`) whose
    /// millisecond part is at least 10^12 (a Unix time in ms) becomes `<id>`. XADD's `*` takes
    /// each server's own clock.
    StreamIds,
    /// `stream-times`: stream clock readings become `:<time>`: every integer of at least 10^12
    /// (a Unix time in ms: XINFO STREAM FULL's seen-time and delivery-time), the integer after a
    /// field named `idle`, `seen-time`, `active-time` or `inactive` (XINFO CONSUMERS), and the
    /// third element of every `[id, consumer, int, int]` array (XPENDING's idle time, XINFO
    /// STREAM FULL's delivery time). Each server delivers and reads entries at its own moment.
    StreamTimes,
}

impl Normalize {
    fn parse(name: &str) -> Normalize {
        match name.trim() {
            "sort" => Normalize::Sort,
            "sort-deep" => Normalize::SortDeep,
            "sort-pairs" => Normalize::SortPairs,
            "any-int" => Normalize::AnyInt,
            "any-digits" => Normalize::AnyDigits,
            "seconds" => Normalize::Seconds,
            "client-fields" => Normalize::ClientFields,
            "info-fields" => Normalize::InfoFields,
            "stream-ids" => Normalize::StreamIds,
            "stream-times" => Normalize::StreamTimes,
            other => panic!("unknown normalisation {other:?}"),
        }
    }

    fn apply(self, f: &mut Frame) {
        match f {
            Frame::Agg(f_kind, Some(items)) => {
                let f_kind = *f_kind;
                for i in items.iter_mut() {
                    self.apply(i);
                }
                if self == Normalize::StreamTimes {
                    stream_times(items);
                }
                let scalars = items.iter().all(|i| !matches!(i, Frame::Agg(..)));
                // Maps are name, value pairs: `sort-deep` sorts them as pairs (a hash's
                // HGETALL inside EXEC comes in hash-table order too).
                let map = matches!(f_kind, b'%' | b'|');
                if (self == Normalize::Sort && scalars) || (self == Normalize::SortDeep && !map) {
                    items.sort();
                }
                if ((self == Normalize::SortPairs && scalars)
                    || (self == Normalize::SortDeep && map))
                    && items.len() % 2 == 0
                {
                    let mut pairs: Vec<Vec<Frame>> =
                        items.chunks(2).map(<[Frame]>::to_vec).collect();
                    pairs.sort();
                    *items = pairs.concat();
                }
            }
            Frame::Line(b':', n) => match self {
                Normalize::AnyInt => *n = b"<int>".to_vec(),
                Normalize::Seconds => {
                    if let Some(v) = std::str::from_utf8(n)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        && v > 0
                    {
                        *n = ((v + 500) / 1000).to_string().into_bytes();
                    }
                }
                Normalize::StreamTimes if is_unix_ms(n) => *n = b"<time>".to_vec(),
                _ => {}
            },
            Frame::Bulk(kind, Some(d)) => {
                // A RESP3 verbatim string starts with its format (`txt:`); keep it aside.
                let prefix_len = if *kind == b'=' && d.len() >= 4 { 4 } else { 0 };
                let (prefix, text) = d.split_at(prefix_len);
                let text = match self {
                    Normalize::AnyDigits
                        if !text.is_empty() && text.iter().all(u8::is_ascii_digit) =>
                    {
                        b"<digits>".to_vec()
                    }
                    Normalize::StreamIds if is_clock_stream_id(text) => b"<id>".to_vec(),
                    Normalize::ClientFields => client_fields(text),
                    Normalize::InfoFields => info_fields(text),
                    _ => return,
                };
                *d = [prefix, &text].concat();
            }
            _ => {}
        }
    }
}

/// The smallest millisecond count taken for a Unix time (September 2001) by `stream-ids` and
/// `stream-times`: explicit IDs and counters in the case files stay below it.
const UNIX_MS_FLOOR: u64 = 1_000_000_000_000;

/// Digits that count at least [`UNIX_MS_FLOOR`] milliseconds.
fn is_unix_ms(digits: &[u8]) -> bool {
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|v| v >= UNIX_MS_FLOOR)
}

/// `<ms>-<seq>` with `ms` at least [`UNIX_MS_FLOOR`]: an ID that XADD's `*` made.
fn is_clock_stream_id(text: &[u8]) -> bool {
    let Some(dash) = text.iter().position(|&b| b == b'-') else {
        return false;
    };
    let (ms, seq) = (&text[..dash], &text[dash + 1..]);
    is_unix_ms(ms) && !seq.is_empty() && seq.iter().all(u8::is_ascii_digit)
}

/// The positional and named clock readings of `stream-times` in one array or map (the large
/// integers are handled one by one).
fn stream_times(items: &mut [Frame]) {
    const NAMES: &[&[u8]] = &[b"idle", b"seen-time", b"active-time", b"inactive"];
    let time = || Frame::Line(b':', b"<time>".to_vec());
    for i in 1..items.len() {
        let named = match &items[i - 1] {
            Frame::Line(b'+', name) | Frame::Bulk(b'$', Some(name)) => {
                NAMES.contains(&name.as_slice())
            }
            _ => false,
        };
        if named && matches!(items[i], Frame::Line(b':', _)) {
            items[i] = time();
        }
    }
    if let [
        Frame::Bulk(b'$', Some(_)),
        Frame::Bulk(b'$', Some(_)),
        idle @ Frame::Line(b':', _),
        Frame::Line(b':', _),
    ] = items
    {
        *idle = time();
    }
}

fn client_fields(text: &[u8]) -> Vec<u8> {
    const VOLATILE: &[&str] = &[
        "id",
        "addr",
        "laddr",
        "fd",
        "age",
        "idle",
        "qbuf-free",
        "argv-mem",
        "multi-mem",
        "obl",
        "oll",
        "omem",
        "tot-mem",
        "events",
        "rbs",
        "rbp",
    ];
    let text = String::from_utf8_lossy(text);
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let fields: Vec<String> = body
            .split(' ')
            .map(|f| match f.split_once('=') {
                Some((k, _)) if VOLATILE.contains(&k) => format!("{k}=*"),
                _ => f.to_string(),
            })
            .collect();
        out.push_str(&fields.join(" "));
        out.push_str(nl);
    }
    out.into_bytes()
}

fn info_fields(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::new();
    for line in text.lines() {
        let name = line.split(':').next().unwrap_or("");
        let _ = writeln!(out, "{name}");
    }
    out.into_bytes()
}

fn normalize(outcome: &Outcome, how: &[Normalize]) -> Outcome {
    let Outcome::Reply(bytes) = outcome else {
        return outcome.clone();
    };
    if how.is_empty() {
        return outcome.clone();
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while let Ok(Some((mut f, next))) = parse_frame(bytes, pos) {
        for n in how {
            n.apply(&mut f);
        }
        write_frame(&f, &mut out);
        pos = next;
    }
    Outcome::Reply(out)
}

// ---------------------------------------------------------------------------------------------
// Case files

#[derive(Debug, Clone)]
enum Action {
    /// A command in redis-cli syntax, sent as a multibulk.
    Command(Vec<Vec<u8>>),
    /// Raw bytes and the number of replies they produce.
    Raw(Vec<u8>, usize),
    /// Raw bytes after which the server must close the connection.
    Close(Vec<u8>),
    /// A new connection replaces the script's (no FLUSHALL): for what a fresh client sees.
    Reconnect,
}

#[derive(Debug, Clone)]
struct Case {
    line: usize,
    text: String,
    action: Action,
    normalize: Vec<Normalize>,
    no_reply: bool,
    known_difference: Option<String>,
}

type Script = Vec<Case>;

fn parse_file(path: &Path) -> Vec<Script> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut scripts = Vec::new();
    let mut cur: Script = Vec::new();
    let mut normalize = Vec::new();
    let mut no_reply = false;
    let mut known_difference = None;
    for (i, raw_line) in text.split(|&b| b == b'\n').enumerate() {
        let lineno = i + 1;
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        let shown = String::from_utf8_lossy(line).trim().to_string();
        let at = || format!("{}:{lineno}", path.display());
        if shown.is_empty() {
            if !cur.is_empty() {
                scripts.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some(comment) = shown.strip_prefix('#') {
            let comment = comment.trim();
            if let Some(names) = comment.strip_prefix("normalize:") {
                normalize.extend(names.split(',').map(Normalize::parse));
            } else if comment == "noreply" {
                no_reply = true;
            } else if let Some(why) = comment.strip_prefix("known-difference:") {
                known_difference = Some(why.trim().to_string());
            }
            continue;
        }
        let words = split_args(line).unwrap_or_else(|| panic!("{}: unbalanced quotes", at()));
        let action = match words[0].as_slice() {
            b"!raw" => match words.as_slice() {
                [_, bytes] => Action::Raw(bytes.clone(), 1),
                [_, n, bytes] => {
                    let n = std::str::from_utf8(n)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("{}: !raw [n] \"bytes\"", at()));
                    Action::Raw(bytes.clone(), n)
                }
                _ => panic!("{}: !raw [n] \"bytes\"", at()),
            },
            b"!close" => match words.as_slice() {
                [_, bytes] => Action::Close(bytes.clone()),
                _ => panic!("{}: !close \"bytes\"", at()),
            },
            b"!reconnect" => Action::Reconnect,
            w if w.starts_with(b"!") => panic!("{}: unknown directive", at()),
            _ => Action::Command(words),
        };
        cur.push(Case {
            line: lineno,
            text: shown,
            action,
            normalize: std::mem::take(&mut normalize),
            no_reply: std::mem::take(&mut no_reply),
            known_difference: known_difference.take(),
        });
    }
    if !cur.is_empty() {
        scripts.push(cur);
    }
    scripts
}

// ---------------------------------------------------------------------------------------------
// Running

/// The result of running one case file.
#[derive(Default)]
struct Report {
    cases: usize,
    failures: Vec<String>,
    known: Vec<String>,
}

async fn run_case(c: &mut Conn, case: &Case, addr: SocketAddr) -> Outcome {
    if let Action::Reconnect = case.action {
        return match Conn::connect(addr).await {
            Ok(fresh) => {
                *c = fresh;
                Outcome::Reply(Vec::new())
            }
            Err(e) => Outcome::Closed(format!("connect: {e}").into_bytes()),
        };
    }
    if c.closed {
        return Outcome::Closed(Vec::new());
    }
    match &case.action {
        Action::Reconnect => Outcome::NotRead,
        Action::Command(args) => {
            c.send(&multibulk(args)).await;
            if case.no_reply {
                Outcome::NotRead
            } else {
                c.read_replies(1).await
            }
        }
        Action::Raw(bytes, n) => {
            c.send(bytes).await;
            c.read_replies(*n).await
        }
        Action::Close(bytes) => {
            c.send(bytes).await;
            c.read_to_close().await
        }
    }
}

/// Opens a fresh connection and empties every database.
async fn fresh(addr: SocketAddr, who: &str) -> Result<Conn, String> {
    let mut c = Conn::connect(addr)
        .await
        .map_err(|e| format!("connect to {who}: {e}"))?;
    c.send(&multibulk(&[b"FLUSHALL".to_vec()])).await;
    let got = c.read_replies(1).await;
    if got != Outcome::Reply(b"+OK\r\n".to_vec()) {
        return Err(format!(
            "FLUSHALL on {who} before a script got {} (did the previous script leave a \
             password or a pause?)",
            got.show()
        ));
    }
    Ok(c)
}

/// Runs the scripts against both servers, in lockstep, one command at a time.
async fn run_scripts(
    name: &str,
    scripts: &[Script],
    redis: SocketAddr,
    ours: SocketAddr,
) -> Report {
    let mut report = Report::default();
    for script in scripts {
        let (mut a, mut b) = match (
            fresh(redis, "redis-server").await,
            fresh(ours, "reredis").await,
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                let line = script.first().map_or(0, |c| c.line);
                report
                    .failures
                    .push(format!("{name}:{line} script not run: {e}"));
                break;
            }
        };
        for case in script {
            report.cases += 1;
            let started = std::time::Instant::now();
            let want = normalize(&run_case(&mut a, case, redis).await, &case.normalize);
            let got = normalize(&run_case(&mut b, case, ours).await, &case.normalize);
            if started.elapsed() > Duration::from_secs(1) {
                eprintln!(
                    "slow case {name}:{} took {:?}",
                    case.line,
                    started.elapsed()
                );
            }
            let desc = format!(
                "{name}:{} `{}`\n    redis-server: {}\n    reredis:      {}",
                case.line,
                case.text,
                want.show(),
                got.show()
            );
            let stuck = |o: &Outcome| matches!(o, Outcome::Timeout(_));
            if stuck(&want) || stuck(&got) {
                // No reply (or no close) in time is a failure even when both agree: a case
                // must produce something to compare. The replies are now out of step, and
                // the rest of this script would only echo that.
                report.failures.push(desc);
                break;
            }
            match (&case.known_difference, want == got) {
                (None, true) => {}
                (None, false) => report.failures.push(desc),
                (Some(why), false) => report.known.push(format!("{desc}\n    because: {why}")),
                (Some(_), true) => report.failures.push(format!(
                    "{desc}\n    marked known-difference but the replies agree: remove the mark"
                )),
            }
        }
    }
    report
}

fn case_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential")
}

/// Runs one case file against a fresh `redis-server` and a fresh node.
async fn run_file(name: &str) {
    let path = case_dir().join(format!("{name}.txt"));
    let scripts = parse_file(&path);
    let redis = RedisServer::start().await;
    let node = common::start_node(&[("enable-debug-command", "yes")]).await;
    let report = run_scripts(
        &format!("{name}.txt"),
        &scripts,
        redis.addr,
        node.resp_addr(),
    )
    .await;
    node.shutdown().await;
    drop(redis);
    eprintln!(
        "{name}.txt: {} cases in {} scripts, {} known differences",
        report.cases,
        scripts.len(),
        report.known.len()
    );
    for k in &report.known {
        eprintln!("known difference: {k}");
    }
    assert!(
        report.failures.is_empty(),
        "{} of {} cases differ:\n{}",
        report.failures.len(),
        report.cases,
        report.failures.join("\n")
    );
}

macro_rules! case_file {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run_file(stringify!($name)).await;
            }
        )*
        const CASE_FILES: &[&str] = &[$(stringify!($name)),*];
    };
}

// One test per file in tests/differential/. Add a line here with each new file.
case_file!(
    strings, keys, server, protocol, hash, list, set, sort, zset, bitmap, hll, geo, scripting,
    stream, function, debug
);

#[test]
fn every_case_file_has_a_test() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(case_dir()).expect("tests/differential exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "txt") {
            let stem = path.file_stem().map(|s| s.to_string_lossy().to_string());
            if let Some(stem) = stem
                && !CASE_FILES.contains(&stem.as_str())
            {
                missing.push(stem);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "add these to case_file!(...) in tests/differential.rs: {missing:?}"
    );
}

#[test]
fn case_files_parse() {
    for name in CASE_FILES {
        let scripts = parse_file(&case_dir().join(format!("{name}.txt")));
        assert!(!scripts.is_empty(), "{name}.txt has no scripts");
    }
}

// ---------------------------------------------------------------------------------------------
// Random scripts: string and key commands drawn at random, on a few keys, so that commands
// meet each other's results (int-encoded values appended to, TTLs carried by RENAME, ...). The
// keyspace notifications of the run are compared too.

const RANDOM_SCRIPTS: usize = 30;
const RANDOM_SCRIPT_LEN: usize = 40;

/// The seed of a random run: `DIFF_SEED=<n> cargo nextest run --test differential random`
/// replays one (and `DIFF_DUMP=<file>` writes its scripts, see [`dump_scripts`]).
fn random_seed() -> u64 {
    std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>)
}

/// A random command as a case of a script.
fn random_case(line: usize, words: Vec<Vec<u8>>, normalize: Vec<Normalize>) -> Case {
    Case {
        line,
        text: words
            .iter()
            .map(|w| format!("\"{}\"", w.escape_ascii()))
            .collect::<Vec<_>>()
            .join(" "),
        action: Action::Command(words),
        normalize,
        no_reply: false,
        known_difference: None,
    }
}

/// Runs random `scripts` on a fresh redis-server and a fresh node and fails on the first
/// difference in their replies or in the keyspace notifications they publish.
async fn run_random(name: &str, seed: u64, scripts: &[Script]) {
    dump_scripts(scripts);
    let redis = RedisServer::start().await;
    let node = common::start_node(&[]).await;
    // Every keyspace notification of both runs is recorded, to compare too (subscribed, and
    // the subscription confirmed, before the first script).
    let subs = (
        subscribe_events(redis.addr).await,
        subscribe_events(node.resp_addr()).await,
    );
    let events = (
        tokio::spawn(record_events(subs.0)),
        tokio::spawn(record_events(subs.1)),
    );
    let report = run_scripts(
        &format!("{name} (DIFF_SEED={seed})"),
        scripts,
        redis.addr,
        node.resp_addr(),
    )
    .await;
    for addr in [redis.addr, node.resp_addr()] {
        let mut c = fresh(addr, "end").await.unwrap();
        c.send(&multibulk(&[
            b"SET".to_vec(),
            END_KEY.to_vec(),
            b"1".to_vec(),
        ]))
        .await;
        assert_eq!(c.read_replies(1).await, Outcome::Reply(b"+OK\r\n".to_vec()));
    }
    let (want, got) = (events.0.await.unwrap(), events.1.await.unwrap());
    node.shutdown().await;
    drop(redis);
    assert!(
        report.failures.is_empty(),
        "DIFF_SEED={seed}: {} of {} random cases differ (the number is the command's place in its script):\n{}",
        report.failures.len(),
        report.cases,
        report.failures.join("\n")
    );
    let (want, got) = (frames(&want), frames(&got));
    if let Some(i) = (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i)) {
        let show = |v: &[Vec<u8>]| {
            v[i.saturating_sub(4)..(i + 4).min(v.len())]
                .iter()
                .map(|f| format!("    {}", f.escape_ascii()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "DIFF_SEED={seed}: keyspace notification {i} of {} (redis-server) / {} (reredis) differs (DIFF_DUMP=<file> writes the scripts)\nredis-server, from {}:\n{}\nreredis:\n{}",
            want.len(),
            got.len(),
            i.saturating_sub(4),
            show(&want),
            show(&got)
        );
    }
    assert!(
        want.len() > 100,
        "too few notifications to compare: {}",
        want.len()
    );
}

/// With `DIFF_DUMP=<file>`, writes the random scripts there (one command per line, a blank line
/// between scripts) to see what led to a difference: `DIFF_SEED` replays the same ones.
fn dump_scripts(scripts: &[Script]) {
    let Ok(path) = std::env::var("DIFF_DUMP") else {
        return;
    };
    let text: Vec<String> = scripts
        .iter()
        .map(|s| {
            s.iter()
                .map(|c| c.text.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    std::fs::write(&path, text.join("\n\n")).unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// One random command, as redis-cli words.
fn random_command(rng: &mut impl rand::Rng) -> Vec<Vec<u8>> {
    const KEYS: &[&str] = &["a", "b", "c"];
    const VALUES: &[&str] = &[
        "",
        "0",
        "1",
        "-1",
        "10",
        "007",
        "abc",
        "x y",
        "9223372036854775807",
        "-9223372036854775808",
        "1.5",
        "\0\r\n",
    ];
    const INTS: &[&str] = &[
        "0",
        "1",
        "-1",
        "5",
        "-100",
        "9223372036854775807",
        "abc",
        "1.5",
    ];
    const OFFSETS: &[&str] = &["0", "1", "3", "-1", "-5", "10"];
    let mut pick = |xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
    let (k, k2, v) = (pick(KEYS), pick(KEYS), pick(VALUES));
    let (n, o1, o2) = (pick(INTS), pick(OFFSETS), pick(OFFSETS));
    let nx_or_xx = pick(&["NX", "XX"]);
    let words: Vec<String> = match rng.random_range(0..36) {
        0 => vec!["SET".into(), k, v],
        1 => vec!["SET".into(), k, v, "NX".into()],
        2 => vec!["SET".into(), k, v, "XX".into()],
        3 => vec!["SET".into(), k, v, "GET".into()],
        4 => vec!["SET".into(), k, v, "KEEPTTL".into()],
        5 => vec!["SET".into(), k, v, "EX".into(), "100".into()],
        6 => vec!["GET".into(), k],
        7 => vec!["GETDEL".into(), k],
        8 => vec!["GETSET".into(), k, v],
        9 => vec!["GETEX".into(), k, "PERSIST".into()],
        10 => vec!["MGET".into(), k, k2],
        11 => vec!["MSET".into(), k, v.clone(), k2, v],
        12 => vec!["MSETNX".into(), k, v.clone(), k2, v],
        13 => vec!["SETNX".into(), k, v],
        14 => vec!["APPEND".into(), k, v],
        15 => vec!["STRLEN".into(), k],
        16 => vec!["GETRANGE".into(), k, o1, o2],
        17 => vec!["SETRANGE".into(), k, o1, v],
        18 => vec!["INCR".into(), k],
        19 => vec!["DECR".into(), k],
        20 => vec!["INCRBY".into(), k, n],
        21 => vec!["DECRBY".into(), k, n],
        22 => vec!["DEL".into(), k, k2],
        23 => vec!["EXISTS".into(), k, k2],
        24 => vec!["TYPE".into(), k],
        25 => vec!["RENAME".into(), k, k2],
        26 => vec!["RENAMENX".into(), k, k2],
        27 => vec!["COPY".into(), k, k2],
        28 => vec!["TTL".into(), k],
        29 => vec!["EXPIRE".into(), k, "100".into()],
        30 => vec!["PERSIST".into(), k],
        31 => vec!["OBJECT".into(), "ENCODING".into(), k],
        32 => vec!["LCS".into(), k, k2],
        33 => vec!["DBSIZE".into()],
        34 => vec!["SETEX".into(), k, n, v],
        // Not GT/LT: comparing two relative TTLs set in the same millisecond or not is a race.
        _ => vec!["EXPIRE".into(), k, n, nx_or_xx],
    };
    words.into_iter().map(String::into_bytes).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_string_scripts() {
    use rand::SeedableRng;
    let seed = random_seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let scripts: Vec<Script> = (0..RANDOM_SCRIPTS)
        .map(|_| {
            (0..RANDOM_SCRIPT_LEN)
                .map(|i| random_case(i + 1, random_command(&mut rng), Vec::new()))
                .collect()
        })
        .collect();
    run_random("random", seed, &scripts).await;
}

// ---------------------------------------------------------------------------------------------
// Random scripts over the collection types: hash, list, set and sorted set commands drawn at
// random on three keys and a handful of members, so that commands meet each other's results
// (and each other's types: WRONGTYPE) and bounds, scores and counts cover the odd cases. Only
// commands whose reply Redis defines are drawn (no random picks); replies Redis gives in
// hash-table order are sorted on both sides; MULTI, EXEC and DISCARD come up too. Lex ranges go to their own key, whose members all
// have score 0: on members of different scores Redis leaves their result unspecified (it
// depends on the skiplist's levels).

const RANDOM_COLLECTION_SCRIPTS: usize = 40;
const RANDOM_COLLECTION_SCRIPT_LEN: usize = 60;

/// One random collection command, as redis-cli words, and how to compare its replies.
fn random_collection_command(rng: &mut impl rand::Rng) -> (Vec<Vec<u8>>, Vec<Normalize>) {
    const KEYS: &[&str] = &["a", "b", "c"];
    const MEMBERS: &[&str] = &["m1", "m2", "m3", "1", "2", "-5", "x y", ""];
    const INTS: &[&str] = &["0", "1", "-1", "2", "5", "-3", "abc", "1.5"];
    const FLOATS: &[&str] = &["0", "1.5", "-2", "1e3", "inf", "abc", "nan"];
    const SCORES: &[&str] = &["0", "1", "-1", "2.5", "inf", "-inf", "+inf", "nan", "abc"];
    const RANGES: &[&str] = &["-inf", "+inf", "0", "1", "(1", "2.5", "(2.5", "abc", "-1"];
    const LEX: &[&str] = &["-", "+", "[m1", "(m2", "[", "(", "[x y", "m1"];
    const OFFSETS: &[&str] = &["0", "1", "2", "-1", "-2", "10", "-10"];
    let mut pick = |xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
    let (k, k2, k3) = (pick(KEYS), pick(KEYS), pick(KEYS));
    let (m, m2) = (pick(MEMBERS), pick(MEMBERS));
    let (n, f, s) = (pick(INTS), pick(FLOATS), pick(SCORES));
    let (o1, o2) = (pick(OFFSETS), pick(OFFSETS));
    let (r1, r2) = (pick(RANGES), pick(RANGES));
    let (l1, l2) = (pick(LEX), pick(LEX));
    let side = pick(&["LEFT", "RIGHT"]);
    let side2 = pick(&["LEFT", "RIGHT"]);
    let minmax = pick(&["MIN", "MAX"]);
    let zflag = pick(&["NX", "XX", "GT", "LT", "CH", "GT CH", "NX XX"]);
    let aggregate = pick(&["SUM", "MIN", "MAX"]);
    let place = pick(&["BEFORE", "AFTER", "UP"]);
    let score2 = pick(SCORES);
    const LONS: &[&str] = &["0", "13.36", "-179.99", "180", "200", "abc"];
    const LATS: &[&str] = &["0", "38.11", "-85", "85.06", "nan"];
    const RADII: &[&str] = &["0", "100", "2500", "20000", "-1", "x"];
    let (lon, lat, radius) = (pick(LONS), pick(LATS), pick(RADII));
    let unit = pick(&["km", "M", "mi", "ft", "yd"]);
    let with = pick(&["WITHDIST", "WITHCOORD", "WITHHASH", "ASC", "DESC"]);
    const IDS: &[&str] = &["1", "2-1", "3-0", "5-*", "0-1", "9", "1-0", "abc"];
    const ID_RANGES: &[&str] = &["-", "+", "2", "(2", "3-0", "(5", "0", "x"];
    let (id, id2) = (pick(IDS), pick(IDS));
    let (ir1, ir2) = (pick(ID_RANGES), pick(ID_RANGES));
    let (group, consumer) = (pick(&["g1", "g2"]), pick(&["c1", "c2"]));
    let approx = pick(&["~", "=", "MAXLEN", "MINID"]);
    let generic = rng.random_range(0..6);
    let (sort, pairs) = (vec![Normalize::Sort], vec![Normalize::SortPairs]);
    let w = |words: &[&str]| words.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let (words, how): (Vec<String>, Vec<Normalize>) = match rng.random_range(0..111) {
        // Hashes.
        0 => (w(&["HSET", &k, &m, &n]), vec![]),
        1 => (w(&["HSET", &k, &m, &n, &m2, &f]), vec![]),
        2 => (w(&["HSETNX", &k, &m, &n]), vec![]),
        3 => (w(&["HGET", &k, &m]), vec![]),
        4 => (w(&["HMGET", &k, &m, &m2]), vec![]),
        5 => (w(&["HDEL", &k, &m, &m2]), vec![]),
        6 => (w(&["HLEN", &k]), vec![]),
        7 => (w(&["HSTRLEN", &k, &m]), vec![]),
        8 => (w(&["HEXISTS", &k, &m]), vec![]),
        9 => (w(&["HKEYS", &k]), sort),
        10 => (w(&["HVALS", &k]), sort),
        11 => (w(&["HGETALL", &k]), pairs),
        12 => (w(&["HINCRBY", &k, &m, &n]), vec![]),
        13 => (w(&["HINCRBYFLOAT", &k, &m, &f]), vec![]),
        // Lists.
        14 => (w(&["LPUSH", &k, &m, &m2]), vec![]),
        15 => (w(&["RPUSH", &k, &m]), vec![]),
        16 => (w(&["LPUSHX", &k, &m]), vec![]),
        17 => (w(&["RPUSHX", &k, &m, &m2]), vec![]),
        18 => (w(&["LPOP", &k]), vec![]),
        19 => (w(&["RPOP", &k, &n]), vec![]),
        20 => (w(&["LLEN", &k]), vec![]),
        21 => (w(&["LINDEX", &k, &o1]), vec![]),
        22 => (w(&["LINSERT", &k, &place, &m, &m2]), vec![]),
        23 => (w(&["LRANGE", &k, &o1, &o2]), vec![]),
        24 => (w(&["LREM", &k, &n, &m]), vec![]),
        25 => (w(&["LSET", &k, &o1, &m]), vec![]),
        26 => (w(&["LTRIM", &k, &o1, &o2]), vec![]),
        27 => (w(&["LPOS", &k, &m, "RANK", &o1, "COUNT", &n]), vec![]),
        28 => (w(&["LMOVE", &k, &k2, &side, &side2]), vec![]),
        29 => (w(&["RPOPLPUSH", &k, &k2]), vec![]),
        30 => (w(&["LMPOP", "2", &k, &k2, &side, "COUNT", &n]), vec![]),
        // Sets.
        31 => (w(&["SADD", &k, &m, &m2]), vec![]),
        32 => (w(&["SREM", &k, &m, &m2]), vec![]),
        33 => (w(&["SCARD", &k]), vec![]),
        34 => (w(&["SISMEMBER", &k, &m]), vec![]),
        35 => (w(&["SMISMEMBER", &k, &m, &m2]), vec![]),
        36 => (w(&["SMEMBERS", &k]), sort),
        37 => (w(&["SMOVE", &k, &k2, &m]), vec![]),
        38 => (w(&["SINTER", &k, &k2]), sort),
        39 => (w(&["SINTERCARD", "2", &k, &k2, "LIMIT", &n]), vec![]),
        40 => (w(&["SINTERSTORE", &k3, &k, &k2]), vec![]),
        41 => (w(&["SUNION", &k, &k2]), sort),
        42 => (w(&["SUNIONSTORE", &k3, &k, &k2]), vec![]),
        43 => (w(&["SDIFF", &k, &k2]), sort),
        44 => (w(&["SDIFFSTORE", &k3, &k, &k2]), vec![]),
        // Sorted sets.
        45 => (w(&["ZADD", &k, &s, &m]), vec![]),
        46 => {
            let mut words = vec!["ZADD".to_string(), k];
            words.extend(zflag.split(' ').map(String::from));
            words.extend([s, m, score2, m2]);
            (words, vec![])
        }
        47 => (w(&["ZADD", &k, "INCR", &s, &m]), vec![]),
        48 => (w(&["ZINCRBY", &k, &s, &m]), vec![]),
        49 => (w(&["ZREM", &k, &m, &m2]), vec![]),
        50 => (w(&["ZCARD", &k]), vec![]),
        51 => (w(&["ZCOUNT", &k, &r1, &r2]), vec![]),
        52 => (w(&["ZLEXCOUNT", "lex", &l1, &l2]), vec![]),
        53 => (w(&["ZSCORE", &k, &m]), vec![]),
        54 => (w(&["ZMSCORE", &k, &m, &m2]), vec![]),
        55 => (w(&["ZRANK", &k, &m]), vec![]),
        56 => (w(&["ZREVRANK", &k, &m]), vec![]),
        57 => (w(&["ZRANGE", &k, &o1, &o2, "WITHSCORES"]), vec![]),
        58 => (
            w(&["ZRANGE", &k, &r1, &r2, "BYSCORE", "LIMIT", &o1, &n]),
            vec![],
        ),
        59 => (w(&["ZRANGE", "lex", &l1, &l2, "BYLEX", "REV"]), vec![]),
        60 => (w(&["ZREVRANGE", &k, &o1, &o2]), vec![]),
        61 => (w(&["ZREVRANGEBYSCORE", &k, &r1, &r2, "WITHSCORES"]), vec![]),
        62 => (w(&["ZREMRANGEBYRANK", &k, &o1, &o2]), vec![]),
        63 => (w(&["ZREMRANGEBYSCORE", &k, &r1, &r2]), vec![]),
        64 => (w(&["ZREMRANGEBYLEX", "lex", &l1, &l2]), vec![]),
        65 => (w(&[&format!("ZPOP{minmax}"), &k, &n]), vec![]),
        66 => (w(&["ZMPOP", "2", &k, &k2, &minmax, "COUNT", &n]), vec![]),
        67 => (
            w(&[
                "ZUNIONSTORE",
                &k3,
                "2",
                &k,
                &k2,
                "WEIGHTS",
                &f,
                "2",
                "AGGREGATE",
                &aggregate,
            ]),
            vec![],
        ),
        68 => (
            w(&[
                "ZINTER",
                "2",
                &k,
                &k2,
                "AGGREGATE",
                &aggregate,
                "WITHSCORES",
            ]),
            vec![],
        ),
        69 => (w(&["ZDIFF", "2", &k, &k2, "WITHSCORES"]), vec![]),
        70 => (w(&["ZRANGESTORE", &k3, &k, &o1, &o2]), vec![]),
        71 | 72 => (w(&["ZADD", "lex", "0", &m, "0", &m2]), vec![]),
        73 => (
            w(&["ZRANGEBYLEX", "lex", &l1, &l2, "LIMIT", &o1, &n]),
            vec![],
        ),
        // Transactions: the commands after MULTI are queued (or fail it) and EXEC replies with
        // all their replies, sorted at every level here since some come in hash-table order.
        74 | 75 => (w(&["MULTI"]), vec![]),
        76..=80 => (w(&["EXEC"]), vec![Normalize::SortDeep]),
        81 => (w(&["DISCARD"]), vec![]),
        // Blocking pops: served at once when there is something, else nil after 10 ms (and at
        // once inside MULTI).
        82 => (w(&["BLPOP", &k, &k2, "0.01"]), vec![]),
        83 => (w(&["BLMOVE", &k, &k2, &side, &side2, "0.01"]), vec![]),
        84 => (w(&["BZPOPMIN", &k, &k2, "0.01"]), vec![]),
        85 => (
            w(&["BZMPOP", "0.01", "2", &k, &k2, &minmax, "COUNT", &n]),
            vec![],
        ),
        86 => (w(&["BRPOPLPUSH", &k, &k2, "0.01"]), vec![]),
        // Geo indexes are sorted sets: GEOADD scores them, searches read any sorted set.
        87 => (
            w(&["GEOADD", &k, &lon, &lat, &m, "13.37", "38.12", &m2]),
            vec![],
        ),
        88 => (
            w(&[
                "GEOSEARCH",
                &k,
                "FROMMEMBER",
                &m,
                "BYRADIUS",
                &radius,
                &unit,
                &with,
            ]),
            vec![],
        ),
        89 => (
            w(&["GEORADIUS", &k, &lon, &lat, &radius, &unit, "STORE", &k3]),
            vec![],
        ),
        90 => match generic % 3 {
            0 => (w(&["GEOPOS", &k, &m, &m2]), vec![]),
            1 => (w(&["GEODIST", &k, &m, &m2, &unit]), vec![]),
            _ => (w(&["GEOHASH", &k, &m, &m2]), vec![]),
        },
        // Streams, with IDs that collide and groups that may not exist.
        93 | 94 => (w(&["XADD", &k, &id, &m, &n]), vec![]),
        95 => (
            w(&["XADD", &k, "MAXLEN", "~", &o1, &id, &m, &n, &m2, &f]),
            vec![],
        ),
        96 => (w(&["XRANGE", &k, &ir1, &ir2, "COUNT", &n]), vec![]),
        97 => (w(&["XREVRANGE", &k, &ir2, &ir1]), vec![]),
        98 => (w(&["XDEL", &k, &id, &id2]), vec![]),
        99 => match approx.as_str() {
            "MAXLEN" | "MINID" => (w(&["XTRIM", &k, &approx, &id]), vec![]),
            _ => (w(&["XTRIM", &k, "MAXLEN", &approx, &o1]), vec![]),
        },
        100 => (w(&["XLEN", &k]), vec![]),
        101 => (
            w(&["XGROUP", "CREATE", &k, &group, &id, "MKSTREAM"]),
            vec![],
        ),
        102 | 103 => (
            w(&[
                "XREADGROUP",
                "GROUP",
                &group,
                &consumer,
                "COUNT",
                &n,
                "STREAMS",
                &k,
                if generic % 2 == 0 { ">" } else { "0" },
            ]),
            vec![],
        ),
        104 => (w(&["XACK", &k, &group, &id, &id2]), vec![]),
        105 => (w(&["XPENDING", &k, &group]), vec![]),
        106 => (
            w(&["XCLAIM", &k, &group, &consumer, "0", &id, &id2, "JUSTID"]),
            vec![],
        ),
        107 => (
            w(&["XAUTOCLAIM", &k, &group, &consumer, "0", &ir1, "COUNT", &n]),
            vec![],
        ),
        108 => (
            w(&["XREAD", "COUNT", &n, "STREAMS", &k, &k2, &id, "$"]),
            vec![],
        ),
        109 => match generic % 3 {
            0 => (w(&["XINFO", "GROUPS", &k]), vec![]),
            1 => (w(&["XINFO", "STREAM", &k]), vec![]),
            _ => (w(&["XSETID", &k, &id]), vec![]),
        },
        110 => (w(&["XREAD", "BLOCK", "10", "STREAMS", &k, "$"]), vec![]),
        // Generic, on any type.
        _ => match generic {
            0 => (w(&["TYPE", &k]), vec![]),
            1 => (w(&["DEL", &k]), vec![]),
            2 => (w(&["OBJECT", "ENCODING", &k]), vec![]),
            3 => (w(&["RENAME", &k, &k2]), vec![]),
            4 => (w(&["COPY", &k, &k2]), vec![]),
            _ => (w(&["SORT", &k, "ALPHA", "LIMIT", &o1, "3"]), vec![]),
        },
    };
    (words.into_iter().map(String::into_bytes).collect(), how)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_collection_scripts() {
    use rand::SeedableRng;
    let seed = random_seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Every other script speaks RESP3 (maps, sets, doubles, nulls of their own), and half of
    // them run with the compact encodings' limits at 3 members (or bytes), so that collections
    // convert to their big encodings (hashtable, skiplist, quicklist) and back on the way.
    let words = |line: &str| line.split(' ').map(|w| w.as_bytes().to_vec()).collect();
    let limits = |small: bool| {
        // Redis's defaults otherwise (a list node of up to 8 kB is -2).
        let (n, v, i, l) = if small {
            ("3", "3", "3", "3")
        } else {
            ("128", "64", "512", "-2")
        };
        let line = format!(
            "CONFIG SET hash-max-listpack-entries {n} hash-max-listpack-value {v} \
             zset-max-listpack-entries {n} zset-max-listpack-value {v} \
             set-max-intset-entries {i} list-max-listpack-size {l}"
        );
        (words(&line), Vec::new())
    };
    let scripts: Vec<Script> = (0..RANDOM_COLLECTION_SCRIPTS)
        .map(|n| {
            let resp3 = (n % 2 == 1).then(|| (words("HELLO 3"), vec![Normalize::AnyInt]));
            resp3
                .into_iter()
                .chain([limits(n % 4 >= 2)])
                .chain(
                    (0..RANDOM_COLLECTION_SCRIPT_LEN).map(|_| random_collection_command(&mut rng)),
                )
                .enumerate()
                .map(|(i, (words, normalize))| random_case(i + 1, words, normalize))
                .collect()
        })
        .collect();
    run_random("random collections", seed, &scripts).await;
}

/// The key whose "set" ends a recording of notifications.
const END_KEY: &[u8] = b"__end__";

/// Turns every keyspace notification on at `addr` and subscribes a connection to them; returns
/// once the subscription is confirmed.
async fn subscribe_events(addr: SocketAddr) -> Conn {
    let words = |w: &[&[u8]]| multibulk(&w.iter().map(|x| x.to_vec()).collect::<Vec<_>>());
    let mut cfg = fresh(addr, "config").await.unwrap();
    cfg.send(&words(&[
        b"CONFIG",
        b"SET",
        b"notify-keyspace-events",
        b"KEA",
    ]))
    .await;
    assert_eq!(
        cfg.read_replies(1).await,
        Outcome::Reply(b"+OK\r\n".to_vec())
    );
    let mut sub = Conn::connect(addr).await.unwrap();
    sub.send(&words(&[b"PSUBSCRIBE", b"__key*__:*"])).await;
    assert!(
        matches!(sub.read_replies(1).await, Outcome::Reply(r) if r.starts_with(b"*3\r\n$10\r\npsubscribe")),
        "PSUBSCRIBE confirmed"
    );
    sub
}

/// The notifications (raw `pmessage` frames) `sub` receives until the keyevent one of
/// `SET __end__`.
async fn record_events(mut sub: Conn) -> Vec<u8> {
    let end = [b"__keyevent@0__:set\r\n$7\r\n".as_slice(), END_KEY, b"\r\n"].concat();
    let mut buf = std::mem::take(&mut sub.buf);
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !buf.windows(end.len()).any(|w| w == end.as_slice()) {
        let n = tokio::time::timeout_at(deadline, sub.stream.read(&mut chunk))
            .await
            .expect("notifications end in time")
            .unwrap();
        assert!(n > 0, "notification connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

/// The frames of a reply stream, each as its bytes.
fn frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Ok(Some((_, next))) = parse_frame(stream, pos) {
        out.push(stream[pos..next].to_vec());
        pos = next;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Random scripts over the keyspace: values of every type written to two databases, and the
// commands that move, copy, rename, expire and delete keys between and within them (SELECT,
// MOVE, SWAPDB, COPY ... DB, RENAME, EXPIRE, FLUSHDB, ...), with their notifications.

const RANDOM_KEYSPACE_SCRIPTS: usize = 30;
const RANDOM_KEYSPACE_SCRIPT_LEN: usize = 50;

/// One random keyspace command, as redis-cli words, and how to compare its replies.
fn random_keyspace_command(rng: &mut impl rand::Rng) -> (Vec<Vec<u8>>, Vec<Normalize>) {
    const KEYS: &[&str] = &["a", "b", "c"];
    const DBS: &[&str] = &["0", "1", "2", "16", "-1", "x"];
    const TTLS: &[&str] = &["100", "5000", "0", "-1", "abc"];
    let mut pick = |xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
    let (k, k2, k3) = (pick(KEYS), pick(KEYS), pick(KEYS));
    let (db, db2) = (pick(&DBS[..3]), pick(DBS));
    let ttl = pick(TTLS);
    let cond = pick(&["NX", "XX", "GT", "LT"]);
    let (v, v2) = (pick(&["1", "x", "-5", "2.5"]), pick(&["1", "y", "7"]));
    let w = |words: &[&str]| words.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let seconds = vec![Normalize::Seconds];
    let (words, how): (Vec<String>, Vec<Normalize>) = match rng.random_range(0..30) {
        // Values of every type.
        0 | 1 => (w(&["SET", &k, &v]), vec![]),
        2 => (w(&["HSET", &k, &v, &v2]), vec![]),
        3 => (w(&["RPUSH", &k, &v, &v2]), vec![]),
        4 => (w(&["SADD", &k, &v, &v2]), vec![]),
        5 => (w(&["ZADD", &k, "1", &v]), vec![]),
        6 => (w(&["INCR", &k]), vec![]),
        // Databases.
        7 | 8 => (w(&["SELECT", &db]), vec![]),
        9 => (w(&["MOVE", &k, &db2]), vec![]),
        10 => (w(&["SWAPDB", &db, &db2]), vec![]),
        11 => (w(&["COPY", &k, &k2, "DB", &db2]), vec![]),
        12 => (w(&["COPY", &k, &k2, "DB", &db, "REPLACE"]), vec![]),
        13 => (w(&["FLUSHDB"]), vec![]),
        14 => (w(&["DBSIZE"]), vec![]),
        // Names.
        15 => (w(&["RENAME", &k, &k2]), vec![]),
        16 => (w(&["RENAMENX", &k, &k2]), vec![]),
        17 => (w(&["DEL", &k, &k2]), vec![]),
        18 => (w(&["UNLINK", &k, &k3]), vec![]),
        19 => (w(&["EXISTS", &k, &k2, &k]), vec![]),
        20 => (w(&["TOUCH", &k, &k2]), vec![]),
        21 => (w(&["TYPE", &k]), vec![]),
        // Times to live (whole seconds: milliseconds pass between the two servers' turns).
        22 => (w(&["EXPIRE", &k, &ttl]), vec![]),
        23 => (w(&["EXPIRE", &k, &ttl, &cond]), vec![]),
        24 => (w(&["PEXPIRE", &k, &format!("{ttl}000")]), vec![]),
        25 => (w(&["TTL", &k]), vec![]),
        26 => (w(&["PTTL", &k]), seconds),
        27 => (w(&["PERSIST", &k]), vec![]),
        28 => (w(&["SET", &k, &v, "KEEPTTL"]), vec![]),
        _ => (w(&["GETEX", &k, "EX", &ttl]), vec![]),
    };
    (words.into_iter().map(String::into_bytes).collect(), how)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_keyspace_scripts() {
    use rand::SeedableRng;
    let seed = random_seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let scripts: Vec<Script> = (0..RANDOM_KEYSPACE_SCRIPTS)
        .map(|_| {
            (0..RANDOM_KEYSPACE_SCRIPT_LEN)
                .map(|i| {
                    let (words, normalize) = random_keyspace_command(&mut rng);
                    random_case(i + 1, words, normalize)
                })
                .collect()
        })
        .collect();
    run_random("random keyspace", seed, &scripts).await;
}

/// COMMAND INFO of every command both servers have: flags, ACL categories, tips and key specs
/// as redis-server gives them (cluster clients read them to route and to tell reads from
/// writes). The exceptions are behaviour of ours that the flags describe truly, each named.
#[tokio::test]
async fn command_info_matches_redis_for_every_command() {
    // CLUSTER's admin subcommands are refused in scripts here (they take the cluster state
    // under the shard locks a script holds), and its views answer while data loads.
    const KNOWN: &[(&str, &str)] = &[
        ("cluster|addslots", "flags"),
        ("cluster|addslotsrange", "flags"),
        ("cluster|bumpepoch", "flags"),
        ("cluster|delslots", "flags"),
        ("cluster|delslotsrange", "flags"),
        ("cluster|failover", "flags"),
        ("cluster|flushslots", "flags"),
        ("cluster|forget", "flags"),
        ("cluster|meet", "flags"),
        ("cluster|replicas", "flags"),
        ("cluster|replicate", "flags"),
        ("cluster|saveconfig", "flags"),
        ("cluster|set-config-epoch", "flags"),
        ("cluster|setslot", "flags"),
        ("cluster|slaves", "flags"),
        ("cluster|info", "flags"),
        ("cluster|myid", "flags"),
        ("cluster|nodes", "flags"),
        ("cluster|shards", "flags"),
        ("cluster|slots", "flags"),
        // SORT's BY/GET/STORE keys are of Redis's "unknown" key spec type, which we lack.
        ("sort", "key specs"),
        ("sort_ro", "key specs"),
    ];
    let redis = RedisServer::start().await;
    let node = common::start_node(&[]).await;
    let mut theirs = common::connect_waiting(redis.addr).await;
    let mut ours = common::connect_waiting(node.resp_addr()).await;
    let list = |v: redis::Value| -> Vec<String> {
        let mut names: Vec<String> = redis::from_redis_value(v).unwrap();
        names.sort();
        names
    };
    let q = redis::cmd("COMMAND").arg("LIST").clone();
    let their_names = list(q.query_async(&mut theirs).await.unwrap());
    let our_names = list(q.query_async(&mut ours).await.unwrap());
    let mut differ = Vec::new();
    let mut compared = 0;
    for name in their_names.iter().filter(|n| our_names.contains(n)) {
        let info = redis::cmd("COMMAND").arg("INFO").arg(name).clone();
        let a: redis::Value = info.query_async(&mut theirs).await.unwrap();
        let b: redis::Value = info.query_async(&mut ours).await.unwrap();
        let fields = |v: redis::Value| -> Vec<redis::Value> {
            let mut outer: Vec<redis::Value> = redis::from_redis_value(v).unwrap();
            redis::from_redis_value(outer.swap_remove(0)).unwrap()
        };
        let (a, b) = (fields(a), fields(b));
        for (i, what) in [
            (2, "flags"),
            (6, "acl categories"),
            (7, "tips"),
            (8, "key specs"),
        ] {
            if a[i] != b[i] && !KNOWN.contains(&(name.as_str(), what)) {
                differ.push(format!("{name} {what}: redis {:?}, ours {:?}", a[i], b[i]));
            }
        }
        compared += 1;
    }
    assert!(compared > 300, "compared only {compared} commands");
    assert!(
        differ.is_empty(),
        "{} differences:\n{}",
        differ.len(),
        differ.join("\n")
    );
    node.shutdown().await;
}
