//! Request parser: RESP multibulk (`*N\r\n$len\r\n...`) and inline commands (telnet), over a
//! `BytesMut` read buffer. Arguments come out as `Bytes` slices of the buffer (no copy). The parser
//! keeps its place inside a partly received multibulk, so a command that arrives in many reads is
//! not re-parsed from its start each time. Limits and error texts follow Redis 7.0's
//! `processMultibulkBuffer` / `processInlineBuffer`.

use bytes::{Bytes, BytesMut};

/// Longest inline command, and longest `*N`/`$N` header line (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Bulks at least this long are read into a buffer sized for them (Redis's PROTO_MBULK_BIG_ARG).
const BIG_ARG: usize = 32 * 1024;

/// A protocol error: the text after `-ERR `; the connection is closed after replying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

#[derive(Debug)]
pub struct Parser {
    max_bulk_len: usize,
    /// Args still expected by the multibulk being parsed (0: between commands).
    remaining: usize,
    /// Bytes of the buffer already consumed by the current multibulk's parsed parts.
    pos: usize,
    /// Argument ranges of the current multibulk, relative to the buffer start.
    ranges: Vec<(usize, usize)>,
    /// Length of the bulk whose header was read, if its data is not complete yet.
    bulk_len: Option<usize>,
    /// Whether the client still has to authenticate: Redis then refuses multibulks of more
    /// than 10 arguments and bulks longer than 16 KiB, so an unauthenticated client cannot
    /// make the server buffer much.
    unauthenticated: bool,
}

/// Most arguments, and longest bulk, an unauthenticated client may send (Redis 7.0).
const UNAUTH_MAX_ARGS: i64 = 10;
const UNAUTH_MAX_BULK: usize = 16384;

impl Parser {
    pub fn new(max_bulk_len: usize) -> Parser {
        Parser {
            max_bulk_len,
            remaining: 0,
            pos: 0,
            ranges: Vec::new(),
            bulk_len: None,
            unauthenticated: false,
        }
    }

    /// Applies (or lifts) the limits for clients that have not authenticated yet.
    pub fn set_unauthenticated(&mut self, on: bool) {
        self.unauthenticated = on;
    }

    pub fn set_max_bulk_len(&mut self, n: usize) {
        self.max_bulk_len = n;
    }

    /// Bytes the parser will need before it can finish the current bulk (a hint for reads).
    pub fn wanted(&self, buf: &BytesMut) -> usize {
        match self.bulk_len {
            Some(len) if len >= BIG_ARG => (self.pos + len + 2).saturating_sub(buf.len()),
            _ => 0,
        }
    }

    /// Parses the next command at the front of `buf` into `args`. Returns `Ok(false)` when more
    /// bytes are needed. An empty command (`*0`, a blank inline line) yields `Ok(true)` with no
    /// args; the caller skips it, as Redis does.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        args: &mut Vec<Bytes>,
    ) -> Result<bool, ProtocolError> {
        args.clear();
        if self.remaining == 0 {
            if buf.is_empty() {
                return Ok(false);
            }
            if buf[0] != b'*' {
                return parse_inline(buf, args);
            }
            let Some((line_end, next)) = find_line(buf, 0) else {
                if buf.len() > INLINE_MAX {
                    return Err(ProtocolError("too big mbulk count string".into()));
                }
                return Ok(false);
            };
            let n = parse_len(&buf[1..line_end])
                .filter(|&n| n <= i32::MAX as i64)
                .ok_or_else(|| ProtocolError("invalid multibulk length".into()))?;
            if n > UNAUTH_MAX_ARGS && self.unauthenticated {
                return Err(ProtocolError("unauthenticated multibulk length".into()));
            }
            if n <= 0 {
                let _ = buf.split_to(next);
                return Ok(true);
            }
            self.remaining = n as usize;
            self.pos = next;
            self.ranges.clear();
            self.ranges.reserve(self.remaining.min(1024));
        }
        while self.remaining > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    let Some((line_end, next)) = find_line(buf, self.pos) else {
                        if buf.len() - self.pos > INLINE_MAX {
                            return Err(ProtocolError("too big bulk count string".into()));
                        }
                        return Ok(false);
                    };
                    if buf[self.pos] != b'$' {
                        return Err(ProtocolError(format!(
                            "expected '$', got '{}'",
                            buf[self.pos] as char
                        )));
                    }
                    let len = parse_len(&buf[self.pos + 1..line_end])
                        .filter(|&n| n >= 0 && n as usize <= self.max_bulk_len)
                        .ok_or_else(|| ProtocolError("invalid bulk length".into()))?
                        as usize;
                    if len > UNAUTH_MAX_BULK && self.unauthenticated {
                        return Err(ProtocolError("unauthenticated bulk length".into()));
                    }
                    self.pos = next;
                    self.bulk_len = Some(len);
                    if len >= BIG_ARG {
                        buf.reserve(len + 2);
                    }
                    len
                }
            };
            if buf.len() - self.pos < len + 2 {
                return Ok(false);
            }
            // Redis does not check that the bulk is followed by CRLF; it skips two bytes.
            self.ranges.push((self.pos, self.pos + len));
            self.pos += len + 2;
            self.bulk_len = None;
            self.remaining -= 1;
        }
        let frame = buf.split_to(self.pos).freeze();
        args.extend(self.ranges.drain(..).map(|(s, e)| frame.slice(s..e)));
        self.pos = 0;
        Ok(true)
    }
}

/// Finds the `\r\n`-terminated line starting at `from`: returns (index of '\r', index after '\n').
/// As Redis, the line ends at the first '\r', which must be followed by one more byte.
fn find_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let cr = from + memchr::memchr(b'\r', &buf[from..])?;
    if cr + 1 >= buf.len() {
        return None;
    }
    Some((cr, cr + 2))
}

/// A length as Redis's `string2ll` reads it (strict decimal, optional '-').
fn parse_len(b: &[u8]) -> Option<i64> {
    crate::store::value::parse_i64_strict(b)
}

fn parse_inline(buf: &mut BytesMut, args: &mut Vec<Bytes>) -> Result<bool, ProtocolError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(false);
    };
    let line = buf.split_to(nl + 1).freeze();
    let mut end = nl;
    if end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    let parts = split_args(&line[..end])
        .ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))?;
    args.extend(parts.into_iter().map(Bytes::from));
    Ok(true)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits a line into arguments the way Redis's `sdssplitargs` does: whitespace separates,
/// "double quotes" take C-like escapes (`\n`, `\xHH`, ...), 'single quotes' take only `\'`.
/// Returns `None` for unbalanced quotes or a closing quote not followed by a space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                if i >= line.len() {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < line.len()
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    cur.push(hex_val(line[i + 2])? * 16 + hex_val(line[i + 3])?);
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return None;
                    }
                    in_dq = false;
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= line.len() {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return None;
                    }
                    in_sq = false;
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= line.len() {
                    break;
                }
                match line[i] {
                    c if is_space(c) => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        debug_assert!(!in_dq && !in_sq);
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(p: &mut Parser, buf: &mut BytesMut) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut cmds = Vec::new();
        let mut args = Vec::new();
        while p.parse(buf, &mut args)? {
            if !args.is_empty() {
                cmds.push(args.clone());
            }
        }
        Ok(cmds)
    }

    fn encode(cmd: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
        for a in cmd {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn multibulk_and_inline() {
        let mut p = Parser::new(512 << 20);
        let mut buf =
            BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\nPING\r\nset a \"b c\\x41\"\r\n"[..]);
        let cmds = parse_all(&mut p, &mut buf).unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], vec![Bytes::from("GET"), Bytes::from("foo")]);
        assert_eq!(cmds[1], vec![Bytes::from("PING")]);
        assert_eq!(
            cmds[2],
            vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("b cA")]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn errors_match_redis() {
        let cases: &[(&[u8], &str)] = &[
            (b"*abc\r\n", "invalid multibulk length"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$x\r\n", "invalid bulk length"),
            (b"*1\r\n+foo\r\n", "expected '$', got '+'"),
            (b"*3000000000\r\n", "invalid multibulk length"),
            (b"set \"a\r\n", "unbalanced quotes in request"),
            (b"set \"a\"b\r\n", "unbalanced quotes in request"),
        ];
        for (input, msg) in cases {
            let mut p = Parser::new(512 << 20);
            let mut buf = BytesMut::from(*input);
            assert_eq!(
                parse_all(&mut p, &mut buf).unwrap_err().0,
                *msg,
                "{input:?}"
            );
        }
        let mut p = Parser::new(10);
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(
            parse_all(&mut p, &mut buf).unwrap_err().0,
            "invalid bulk length"
        );
        let mut p = Parser::new(512 << 20);
        p.set_unauthenticated(true);
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            parse_all(&mut p, &mut buf).unwrap_err().0,
            "unauthenticated multibulk length"
        );
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(
            parse_all(&mut p, &mut buf).unwrap_err().0,
            "unauthenticated bulk length"
        );
    }

    #[test]
    fn empty_commands_are_skipped() {
        let mut p = Parser::new(512 << 20);
        let mut buf = BytesMut::from(&b"*0\r\n*-1\r\n\r\n   \r\nPING\r\n"[..]);
        let cmds = parse_all(&mut p, &mut buf).unwrap();
        assert_eq!(cmds, vec![vec![Bytes::from("PING")]]);
    }

    proptest! {
        #[test]
        fn any_split_parses_the_same(
            cmds in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..5), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let wire: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
            let cut = cut.index(wire.len() + 1);
            let mut p = Parser::new(512 << 20);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = parse_all(&mut p, &mut buf).unwrap();
            buf.extend_from_slice(&wire[cut..]);
            got.extend(parse_all(&mut p, &mut buf).unwrap());
            let want: Vec<Vec<Bytes>> = cmds.iter().map(|c| c.iter().map(|a| Bytes::from(a.clone())).collect()).collect();
            prop_assert_eq!(got, want);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn byte_at_a_time(cmds in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..4), 1..4)) {
            let wire: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
            let mut p = Parser::new(512 << 20);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for b in wire {
                buf.extend_from_slice(&[b]);
                got.extend(parse_all(&mut p, &mut buf).unwrap());
            }
            prop_assert_eq!(got.len(), cmds.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut p = Parser::new(1 << 20);
            let mut buf = BytesMut::from(&data[..]);
            let _ = parse_all(&mut p, &mut buf);
        }
    }
}
