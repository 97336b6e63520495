//! Bitmaps and HyperLogLog: behaviour a user sees, and a differential comparison with a real
//! `redis-server` (Debian's 7.0.15): the same commands against both, raw reply bytes compared.

mod common;

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Raw, cmd, start_node, wait_for};
use proptest::prelude::*;

/// A `redis-server` child on a free loopback port, killed (by its PID) when dropped.
struct RealRedis {
    child: Child,
    addr: SocketAddr,
}

impl RealRedis {
    async fn start() -> RealRedis {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
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
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/test.sh installs it)");
            let mut real = RealRedis {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            let addr = real.addr;
            let up = wait_for(Duration::from_secs(10), async || {
                tokio::net::TcpStream::connect(addr).await.is_ok()
            })
            .await;
            if up && real.child.try_wait().ok().flatten().is_none() {
                return real;
            }
            // Lost the port to someone else: try another.
            let _ = real.child.kill();
        }
        panic!("redis-server did not start");
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits a line as redis-cli does: words, or double-quoted strings with `\xNN`, `\n`, `\"`.
fn split_args(line: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut arg = Vec::new();
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    match b[i] {
                        b'x' => {
                            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
                            arg.push(u8::from_str_radix(hex, 16).expect("hex"));
                            i += 2;
                        }
                        b'n' => arg.push(b'\n'),
                        b'r' => arg.push(b'\r'),
                        b't' => arg.push(b'\t'),
                        c => arg.push(c),
                    }
                } else {
                    arg.push(b[i]);
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                arg.push(b[i]);
                i += 1;
            }
        }
        out.push(arg);
    }
    out
}

fn escape(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Our node and a real Redis side by side, one raw connection to each.
struct Pair {
    real: Raw,
    ours: Raw,
}

impl Pair {
    async fn send(&mut self, wire: &[u8]) -> (Vec<u8>, Vec<u8>) {
        // Boxed: `Raw::send` holds a 64 KiB buffer, too much to nest in test futures on the
        // test thread's stack.
        let a = Box::pin(self.real.send(wire)).await;
        let b = Box::pin(self.ours.send(wire)).await;
        (a, b)
    }

    /// Runs one command on both and asserts the replies are the same bytes.
    async fn same(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let (a, b) = self.send(&cmd(args)).await;
        assert!(
            a == b,
            "replies differ for {:?}\nredis: {}\nours:  {}",
            args.iter().map(|a| escape(a)).collect::<Vec<_>>(),
            escape(&a),
            escape(&b)
        );
        a
    }

    /// Runs a script of commands (one per line, `#` comments) on both, comparing each reply.
    /// A MULTI ... EXEC block goes out as one write (the reply marker cannot be queued).
    async fn script(&mut self, script: &str) -> usize {
        let mut n = 0;
        let mut block: Option<Vec<u8>> = None;
        for line in script.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.eq_ignore_ascii_case("MULTI") || block.is_some() {
                let args = split_args(line);
                let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                block.get_or_insert_with(Vec::new).extend(cmd(&refs));
                if !line.eq_ignore_ascii_case("EXEC") {
                    continue;
                }
                let wire = block.take().unwrap_or_default();
                let (a, b) = self.send(&wire).await;
                assert!(
                    a == b,
                    "replies differ for a transaction ending at: {line}\nredis: {}\nours:  {}",
                    escape(&a),
                    escape(&b)
                );
                n += 1;
                continue;
            }
            // `?CMD ...`: only where our node has CMD yet (types other branches add).
            let (line, optional) = match line.strip_prefix('?') {
                Some(rest) => (rest, true),
                None => (line, false),
            };
            let args = split_args(line);
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            if optional {
                let info = Box::pin(self.ours.send(&cmd(&[b"COMMAND", b"INFO", refs[0]]))).await;
                if info.starts_with(b"*1\r\n*-1") || info.starts_with(b"*1\r\n_") {
                    continue;
                }
            }
            let (a, b) = self.send(&cmd(&refs)).await;
            assert!(
                a == b,
                "replies differ for: {line}\nredis: {}\nours:  {}",
                escape(&a),
                escape(&b)
            );
            n += 1;
        }
        n
    }
}

async fn pair() -> (RealRedis, reredis::NodeHandle, Pair) {
    let real = RealRedis::start().await;
    let node = start_node(&[]).await;
    let mut p = Pair {
        real: Raw::connect(real.addr).await,
        ours: Raw::connect(node.resp_addr()).await,
    };
    p.same(&[b"FLUSHALL"]).await;
    (real, node, p)
}

const BITMAP_CASES: &str = r#"
# SETBIT / GETBIT
SETBIT b 7 1
GETBIT b 7
GETBIT b 6
GETBIT b 100
GET b
SETBIT b 7 0
GET b
SETBIT b 0 1
SETBIT b 15 1
GET b
STRLEN b
OBJECT ENCODING b
SETBIT b 100 1
STRLEN b
GET b
GETBIT nokey 0
GETBIT nokey 1000000
SETBIT b -1 1
SETBIT b abc 1
SETBIT b 1.5 1
SETBIT b 4294967296 1
SETBIT b 4294967295 2
SETBIT b 0 2
SETBIT b 0 -1
SETBIT b 0 a
SETBIT b 0 ""
SETBIT b " 1" 1
SETBIT b +1 1
SETBIT b 01 1
GETBIT b -1
GETBIT b x
GETBIT b 4294967296
GETBIT b 4294967295
SETBIT
SETBIT b 1
GETBIT b
GETBIT b 1 2
?LPUSH notstring x
SET s foobar
GETBIT s 1
GETBIT s 2
SETBIT s 6 1
GET s
OBJECT ENCODING s
SET n 12
OBJECT ENCODING n
GETBIT n 2
GETBIT n 3
GETBIT n 100
SETBIT n 0 1
GET n
OBJECT ENCODING n
SET e ""
SETBIT e 3 1
GET e
SET emb hello
OBJECT ENCODING emb
SETBIT emb 1 0
OBJECT ENCODING emb
GET emb

# BITCOUNT
SET mykey foobar
BITCOUNT mykey
BITCOUNT mykey 0 0
BITCOUNT mykey 1 1
BITCOUNT mykey 1 1 BYTE
BITCOUNT mykey 5 30 BIT
BITCOUNT mykey 0 -1
BITCOUNT mykey -2 -1
BITCOUNT mykey -1 -2
BITCOUNT mykey -100 100
BITCOUNT mykey 100 200
BITCOUNT mykey 2 1
BITCOUNT mykey 0 -1 BIT
BITCOUNT mykey 0 47 bit
BITCOUNT mykey 1 46 BIT
BITCOUNT mykey 7 7 BIT
BITCOUNT mykey 9 9 BIT
BITCOUNT mykey -5 -1 BIT
BITCOUNT mykey -1 -5 BIT
BITCOUNT mykey 3 3 BIT
BITCOUNT mykey 0
BITCOUNT mykey 0 1 2
BITCOUNT mykey 0 1 BITS
BITCOUNT mykey a 1
BITCOUNT mykey 0 b
BITCOUNT mykey 0 1 BIT extra
BITCOUNT nokey
BITCOUNT nokey 0 1
BITCOUNT nokey a b
BITCOUNT nokey 0
BITCOUNT
BITCOUNT n
BITCOUNT n 0 0
BITCOUNT e
SET empty ""
BITCOUNT empty
BITCOUNT empty 0 -1
BITCOUNT empty 0 -1 BIT
BITCOUNT mykey 9223372036854775807 -9223372036854775808
BITCOUNT mykey -9223372036854775808 9223372036854775807 BIT

# BITPOS
SET bp "\xff\xf0\x00"
BITPOS bp 0
BITPOS bp 1
BITPOS bp 0 1
BITPOS bp 0 2
BITPOS bp 0 1 1
BITPOS bp 1 2 2
BITPOS bp 1 2
BITPOS bp 0 -1
BITPOS bp 0 -1 -1
BITPOS bp 1 -2 -1
BITPOS bp 0 0 -1 BIT
BITPOS bp 0 2 10 BIT
BITPOS bp 0 12 12 BIT
BITPOS bp 1 12 23 BIT
BITPOS bp 0 3 5 BIT
BITPOS bp 1 7 13 BIT
BITPOS bp 1 13 7 BIT
BITPOS bp 0 100
BITPOS bp 0 100 200
BITPOS bp 0 -100
BITPOS bp 1 -100 -50
BITPOS bp 1 0 -1 BYTE
BITPOS bp 1 0 -1 bits
BITPOS bp 2
BITPOS bp -1
BITPOS bp x
BITPOS bp 1 x
BITPOS bp 1 0 x
BITPOS bp 1 0 1 BIT x
BITPOS nokey 0
BITPOS nokey 1
BITPOS nokey 0 x
BITPOS nokey 2
SET ones "\xff\xff\xff"
BITPOS ones 0
BITPOS ones 0 1
BITPOS ones 0 0 -1
BITPOS ones 0 0 23 BIT
BITPOS ones 0 3 20 BIT
BITPOS ones 1 3 20 BIT
SET zeros "\x00\x00\x00"
BITPOS zeros 1
BITPOS zeros 1 0 -1 BIT
BITPOS zeros 0 5 5 BIT
BITPOS empty 0
BITPOS empty 1
BITPOS empty 0 0 -1
BITPOS n 1
BITPOS n 0 0 3 BIT
BITPOS notstring 1
BITPOS
BITPOS bp

# BITOP
SET k1 foobar
SET k2 abcdef
SET k3 "\x01"
BITOP AND dest k1 k2
GET dest
OBJECT ENCODING dest
BITOP OR dest k1 k2 k3
GET dest
BITOP XOR dest k1 k2 k3
GET dest
BITOP NOT dest k1
GET dest
BITOP NOT dest k3
GET dest
BITOP and dest k3 nokey
GET dest
BITOP or dest nokey k3
GET dest
BITOP xor dest k3 k3
GET dest
BITOP AND dest nokey nokey2
EXISTS dest
BITOP AND dest nokey
BITOP NOT dest k1 k2
BITOP NOT dest
BITOP NAND dest k1
BITOP AND dest notstring
BITOP AND dest k1 notstring
BITOP AND notstring k1
TYPE notstring
BITOP OR dest n k3
GET dest
BITOP AND dest empty
BITOP AND k1 k1 k2
GET k1
BITOP XOR k3 k3
GET k3
EXISTS dest
SET withttl x EX 100
BITOP OR withttl k1
TTL withttl
BITOP
BITOP AND
BITOP AND dest

# BITFIELD
BITFIELD bf SET i8 0 100
BITFIELD bf GET i8 0
BITFIELD bf INCRBY i8 0 100
BITFIELD bf OVERFLOW SAT INCRBY i8 0 100
BITFIELD bf OVERFLOW FAIL INCRBY i8 0 100
BITFIELD bf OVERFLOW WRAP INCRBY i8 0 -300
BITFIELD bf OVERFLOW SAT INCRBY i8 0 -300
BITFIELD bf GET u4 0 GET u4 4 GET i4 4
BITFIELD bf SET u8 #1 255 GET u8 #1
BITFIELD bf INCRBY u2 100 1 OVERFLOW SAT INCRBY i2 102 1
BITFIELD bf SET u8 8 300
BITFIELD bf OVERFLOW SAT SET u8 8 300
BITFIELD bf OVERFLOW FAIL SET u8 8 300
BITFIELD bf OVERFLOW FAIL SET u8 8 255
BITFIELD bf SET i8 8 -129
BITFIELD bf OVERFLOW SAT SET i8 8 -129
BITFIELD bf OVERFLOW SAT SET i8 8 128
BITFIELD bf SET u8 8 -1
BITFIELD bf OVERFLOW SAT SET u8 8 -1
BITFIELD bf GET u63 0 GET i64 0 GET i1 0 GET u1 0
BITFIELD bf SET i64 0 -1 GET u63 0 GET i64 0
BITFIELD bf OVERFLOW WRAP INCRBY i64 0 -9223372036854775808
BITFIELD bf SET i64 0 9223372036854775807 INCRBY i64 0 1
BITFIELD bf OVERFLOW SAT SET i64 0 9223372036854775807 INCRBY i64 0 1
BITFIELD bf OVERFLOW SAT SET i64 0 -9223372036854775808 INCRBY i64 0 -1
BITFIELD bf OVERFLOW FAIL INCRBY i64 0 -1
BITFIELD bf OVERFLOW SAT SET u63 0 0 INCRBY u63 0 -1
BITFIELD bf OVERFLOW WRAP SET u63 0 0 INCRBY u63 0 -1
BITFIELD bf OVERFLOW SAT INCRBY u63 0 9223372036854775807
BITFIELD bf INCRBY u63 0 9223372036854775807
BITFIELD bf SET u3 5 7 SET u3 13 5 GET u16 0 GET i16 0
BITFIELD bf GET u8 1000
GET bf
STRLEN bf
OBJECT ENCODING bf
BITFIELD bf
BITFIELD nokey
BITFIELD nokey GET u8 0
EXISTS nokey
BITFIELD nokey OVERFLOW SAT
BITFIELD bf GET
BITFIELD bf GET u8
BITFIELD bf SET u8 0
BITFIELD bf INCRBY u8 0
BITFIELD bf OVERFLOW
BITFIELD bf OVERFLOW BAD GET u8 0
BITFIELD bf GET u64 0
BITFIELD bf GET i65 0
BITFIELD bf GET i0 0
BITFIELD bf GET x8 0
BITFIELD bf GET "" 0
BITFIELD bf GET u 0
BITFIELD bf GET u8 -1
BITFIELD bf GET u8 #-1
BITFIELD bf GET u8 ##1
BITFIELD bf GET u8 x
BITFIELD bf SET u8 0 x
BITFIELD bf INCRBY u8 0 1.5
BITFIELD bf FOO u8 0
BITFIELD bf GET u8 4294967296
BITFIELD bf GET u8 #536870912
BITFIELD bf GET u8 #536870911
BITFIELD bf GET u8 #1152921504606846976
BITFIELD bf GET i64 #144115188075855872
BITFIELD bf get u8 0 set u8 0 1 incrby u8 0 1 overflow fail incrby u8 0 255
BITFIELD notstring GET u8 0
BITFIELD notstring SET u8 0 1
BITFIELD notstring SET u8 x 1
BITFIELD n GET u8 0
BITFIELD n SET u8 0 255
GET n
OBJECT ENCODING n
BITFIELD_RO bf GET u8 0 GET i4 4
BITFIELD_RO bf OVERFLOW SAT GET u8 0
BITFIELD_RO bf SET u8 0 1
BITFIELD_RO bf INCRBY u8 0 1
BITFIELD_RO bf SET u8 x 1
BITFIELD_RO nokey GET u8 0
BITFIELD_RO notstring GET u8 0
BITFIELD_RO bf
BITFIELD_RO
BITFIELD fresh OVERFLOW FAIL SET i8 0 1000
GET fresh
BITFIELD fresh2 SET u1 33 1
GET fresh2
BITFIELD fresh3 GET u8 0 SET i16 #2 -5 GET i16 #2 GET u8 5
GET fresh3
"#;

#[tokio::test(flavor = "multi_thread")]
async fn bitmaps_match_redis() {
    let (_real, node, mut p) = pair().await;
    let n = p.script(BITMAP_CASES).await;
    assert!(n >= 250, "{n} cases");
    // Offsets bounded by proto-max-bulk-len, set the same on both.
    p.same(&[b"CONFIG", b"SET", b"proto-max-bulk-len", b"1048576"])
        .await;
    p.script(
        "SETBIT lim 8388607 1\nSTRLEN lim\nSETBIT lim 8388608 1\nGETBIT lim 8388608\n\
         BITFIELD lim SET u8 8388600 1\nBITFIELD lim SET u8 8388601 1\nSTRLEN lim\n\
         BITFIELD lim GET u8 #1048575\nBITFIELD lim GET u8 #1048576",
    )
    .await;
    node.shutdown().await;
}

const RESP3_AND_MULTI_CASES: &str = r#"
BITFIELD r OVERFLOW FAIL SET u2 0 9 GET u2 0 INCRBY i8 8 -200
BITFIELD_RO r GET u2 0
PFADD rh a b c
PFDEBUG ENCODING rh
PFDEBUG DECODE rh
PFCOUNT rh nokey
BITPOS nokey 0
BITPOS r 1 100 200
MULTI
SETBIT mk 3 1
BITOP OR mdest mk nokey
BITFIELD mk OVERFLOW SAT INCRBY u4 0 100 GET u8 0
PFADD mh x y z
PFMERGE mh2 mh rh
PFCOUNT mh mh2
GET mdest
EXEC
MULTI
SETBIT mk x 1
BITFIELD mk GET u64 0
EXEC
MULTI
SETBIT mk 1 1
PFADD mk a
GETBIT mk 1
EXEC
"#;

#[tokio::test(flavor = "multi_thread")]
async fn resp3_and_transactions_match_redis() {
    let (_real, node, mut p) = pair().await;
    p.script(RESP3_AND_MULTI_CASES).await;
    // HELLO's reply names the server, so only what follows it is compared.
    let (a, b) = p.send(&cmd(&[b"HELLO", b"3"])).await;
    assert!(
        a.starts_with(b"%") && b.starts_with(b"%"),
        "both speak RESP3 now"
    );
    p.script(&RESP3_AND_MULTI_CASES.replace("BITFIELD r ", "BITFIELD r3 "))
        .await;
    node.shutdown().await;
}

/// One string on both servers, then BITCOUNT / BITPOS / BITFIELD GET over random ranges.
async fn compare_ranges(p: &mut Pair, value: &[u8], ranges: &[(i64, i64, u8)]) {
    p.same(&[b"SET", b"r", value]).await;
    for &(a, b, mode) in ranges {
        let (a, b) = (a.to_string(), b.to_string());
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let unit: &[u8] = if mode & 1 == 0 { b"BYTE" } else { b"BIT" };
        let bit: &[u8] = if mode & 2 == 0 { b"0" } else { b"1" };
        p.same(&[b"BITCOUNT", b"r", a, b]).await;
        p.same(&[b"BITCOUNT", b"r", a, b, unit]).await;
        p.same(&[b"BITPOS", b"r", bit, a]).await;
        p.same(&[b"BITPOS", b"r", bit, a, b]).await;
        p.same(&[b"BITPOS", b"r", bit, a, b, unit]).await;
        let ty = format!(
            "{}{}",
            if mode & 4 == 0 { "u" } else { "i" },
            (mode >> 3) % 63 + 1
        );
        p.same(&[b"BITFIELD_RO", b"r", b"GET", ty.as_bytes(), a])
            .await;
    }
}

/// Random strings (runs of 0x00 and 0xff make BITPOS interesting) and random ranges, both
/// ends in and out of the string, agree with Redis.
#[test]
fn random_bit_ranges_match_redis() {
    let strategy = (
        prop::collection::vec(prop_oneof![Just(0u8), Just(0xffu8), any::<u8>()], 0..40),
        prop::collection::vec((-400i64..400, -400i64..400, any::<u8>()), 1..12),
    );
    prop_check(48, strategy, |rt, p, (value, ranges)| {
        rt.block_on(compare_ranges(p, &value, &ranges));
    });
}

/// A sparse HLL covering exactly 16384 registers with the runs given, however unusual
/// (unmerged VALs, split zero runs): valid for Redis, but not what it would write itself.
fn sparse_hll(runs: &[(u8, u16, u8)], cache: [u8; 8]) -> Vec<u8> {
    let mut v = b"HYLL\x01\x00\x00\x00".to_vec();
    v.extend_from_slice(&cache);
    let mut left: u16 = 16384;
    for &(kind, len, value) in runs {
        if left == 0 {
            break;
        }
        match kind % 3 {
            0 => {
                let n = len.clamp(1, 64).min(left);
                v.push((n - 1) as u8);
                left -= n;
            }
            1 => {
                let n = len.clamp(1, 16384).min(left);
                v.push(0x40 | ((n - 1) >> 8) as u8);
                v.push(((n - 1) & 0xff) as u8);
                left -= n;
            }
            _ => {
                let n = len.clamp(1, 4).min(left);
                v.push(0x80 | ((value % 32) << 2) | (n - 1) as u8);
                left -= n;
            }
        }
    }
    while left > 0 {
        let n = left.min(16384);
        v.push(0x40 | ((n - 1) >> 8) as u8);
        v.push(((n - 1) & 0xff) as u8);
        left -= n;
    }
    v
}

/// Hand-made sparse HLLs (any valid opcode sequence, any cached cardinality): PFCOUNT,
/// PFADD, PFMERGE, PFDEBUG and the resulting bytes agree with Redis.
#[test]
fn unusual_sparse_hlls_match_redis() {
    let strategy = (
        prop::collection::vec((any::<u8>(), 1u16..600, any::<u8>()), 0..400),
        any::<[u8; 8]>(),
        prop::collection::vec(any::<u16>(), 0..40),
    );
    prop_check(48, strategy, |rt, p, (runs, cache, adds)| {
        let value = sparse_hll(&runs, cache);
        let adds: Vec<Vec<u8>> = adds.iter().map(|a| a.to_string().into_bytes()).collect();
        rt.block_on(async {
            p.same(&[b"SET", b"u", &value]).await;
            p.same(&[b"SET", b"u2", &value]).await;
            p.same(&[b"PFCOUNT", b"u"]).await;
            p.same(&[b"GET", b"u"]).await;
            p.same(&[b"PFDEBUG", b"DECODE", b"u2"]).await;
            p.same(&[b"PFCOUNT", b"u2", b"nokey"]).await;
            let mut args: Vec<&[u8]> = vec![b"PFADD", b"u2"];
            args.extend(adds.iter().map(|a| &a[..]));
            p.same(&args).await;
            p.same(&[b"GET", b"u2"]).await;
            p.same(&[b"PFMERGE", b"u3", b"u", b"u2"]).await;
            p.same(&[b"GET", b"u3"]).await;
            p.same(&[b"PFMERGE", b"u", b"u2"]).await;
            p.same(&[b"GET", b"u"]).await;
            p.same(&[b"PFDEBUG", b"GETREG", b"u2"]).await;
            p.same(&[b"GET", b"u2"]).await;
        });
    });
}

const HLL_CASES: &str = r#"
PFADD h a b c
PFCOUNT h
GET h
OBJECT ENCODING h
PFADD h a
PFADD h
PFADD h2
GET h2
PFCOUNT h2
PFCOUNT nokey
PFCOUNT nokey nokey2
PFADD h d e f g h i j k l m n o p
PFCOUNT h
GET h
PFDEBUG ENCODING h
PFDEBUG DECODE h
PFDEBUG decode h
PFDEBUG FOO h
PFDEBUG GETREG nokey
PFDEBUG ENCODING nokey
PFDEBUG
PFDEBUG GETREG
PFDEBUG GETREG h x
SET s foobar
PFADD s a
PFCOUNT s
PFCOUNT h s
PFMERGE s h
PFMERGE h s
PFDEBUG ENCODING s
SET i 12345
PFADD i a
PFCOUNT i
?LPUSH l x
PFADD l a
PFCOUNT l
PFCOUNT h l
PFMERGE l h
PFMERGE h l
PFDEBUG ENCODING l
PFADD
PFCOUNT
PFMERGE
PFSELFTEST x
# A sparse HLL with a cached cardinality that is still valid: PFCOUNT trusts it.
SET cached "HYLL\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x7f\xff"
PFCOUNT cached
OBJECT ENCODING cached
PFADD cached x
PFCOUNT cached
GET cached
# Sparse code covering too few registers.
SET short "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xfe"
PFCOUNT short
PFCOUNT short h
PFMERGE dst short
EXISTS dst
PFDEBUG GETREG short
PFDEBUG TODENSE short
PFDEBUG DECODE short
PFADD short a b c d e f g h i j
# Too many registers.
SET long "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff\x80"
PFCOUNT long
PFADD long a b c
# Not HLLs at all.
SET badmagic "HYLX\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff"
PFCOUNT badmagic
SET badenc "HYLL\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff"
PFCOUNT badenc
SET densewrong "HYLL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff"
PFCOUNT densewrong
SET tiny "HYLL"
PFCOUNT tiny
PFADD tiny a
SET emptyhll ""
PFADD emptyhll a
# Merges
PFADD m1 1 2 3 4 5
PFADD m2 4 5 6 7 8
PFMERGE m3 m1 m2
GET m3
PFCOUNT m3
PFCOUNT m1 m2
PFMERGE m3
GET m3
PFMERGE m4
GET m4
PFMERGE m1 nokey m2
GET m1
PFCOUNT m1
PFMERGE m5 nokey nokey2
GET m5
PFDEBUG TODENSE m2
PFDEBUG TODENSE m2
PFDEBUG ENCODING m2
PFMERGE m6 m1 m2
PFDEBUG ENCODING m6
GET m6
PFCOUNT m6
PFCOUNT m1 m2 m6 nokey
CONFIG SET hll-sparse-max-bytes -1
CONFIG SET hll-sparse-max-bytes abc
CONFIG SET hll-sparse-max-bytes 1kb
CONFIG GET hll-sparse-max-bytes
CONFIG SET hll-sparse-max-bytes 0
PFADD zero-limit a
PFDEBUG ENCODING zero-limit
PFADD zero-limit2
PFDEBUG ENCODING zero-limit2
GET zero-limit2
CONFIG SET hll-sparse-max-bytes 3000
SET withttl x EX 100
DEL withttl
PFADD withttl a
EXPIRE withttl 100
PFADD withttl b c
PFMERGE withttl m1
TTL withttl
OBJECT ENCODING m6
PFDEBUG GETREG m1
PFDEBUG ENCODING m1
PFDEBUG DECODE m1
GET m1
"#;

#[tokio::test(flavor = "multi_thread")]
async fn hyperloglog_cases_match_redis() {
    let (_real, node, mut p) = pair().await;
    let n = p.script(HLL_CASES).await;
    assert!(n >= 100, "{n} cases");
    node.shutdown().await;
}

/// Adds `elements` to `key` on both servers in batches, comparing PFADD, PFCOUNT and (every
/// `get_every` batches) the HLL bytes themselves.
async fn grow_and_compare(p: &mut Pair, key: &[u8], elements: &[Vec<u8>], batch: usize) {
    for (i, chunk) in elements.chunks(batch).enumerate() {
        let mut args: Vec<&[u8]> = vec![b"PFADD", key];
        args.extend(chunk.iter().map(|e| &e[..]));
        p.same(&args).await;
        p.same(&[b"PFCOUNT", key]).await;
        if i % 8 == 0 || chunk.len() < batch {
            p.same(&[b"GET", key]).await;
        }
    }
    p.same(&[b"GET", key]).await;
    p.same(&[b"PFDEBUG", b"ENCODING", key]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pfcount_matches_redis_up_to_100000_elements() {
    let (_real, node, mut p) = pair().await;
    let plain: Vec<Vec<u8>> = (0..100_000u64)
        .map(|i| i.to_string().into_bytes())
        .collect();
    let users: Vec<Vec<u8>> = (0..100_000u64)
        .map(|i| format!("user:{i}:session").into_bytes())
        .collect();
    let binary: Vec<Vec<u8>> = (0..50_000u64).map(|i| i.to_le_bytes().to_vec()).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<Vec<u8>> = (0..30_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            x.to_le_bytes().iter().cycle().take(len).copied().collect()
        })
        .collect();
    // One element at a time through the sparse range: every intermediate encoding compared.
    for e in plain.iter().take(400) {
        p.same(&[b"PFADD", b"one", e]).await;
        p.same(&[b"GET", b"one"]).await;
    }
    p.same(&[b"PFCOUNT", b"one"]).await;
    grow_and_compare(&mut p, b"plain", &plain, 1000).await;
    grow_and_compare(&mut p, b"users", &users, 2500).await;
    grow_and_compare(&mut p, b"binary", &binary, 700).await;
    grow_and_compare(&mut p, b"random", &random, 333).await;
    p.same(&[b"PFCOUNT", b"plain", b"users", b"binary", b"random"])
        .await;
    p.same(&[b"PFMERGE", b"all", b"plain", b"users", b"one"])
        .await;
    p.same(&[b"GET", b"all"]).await;
    p.same(&[b"PFCOUNT", b"all"]).await;
    // A lower sparse limit promotes earlier; merging sparse HLLs keeps the target sparse.
    p.same(&[b"CONFIG", b"SET", b"hll-sparse-max-bytes", b"300"])
        .await;
    p.same(&[b"CONFIG", b"GET", b"hll-sparse-max-bytes"]).await;
    grow_and_compare(&mut p, b"small", &users[..2000], 50).await;
    p.same(&[b"CONFIG", b"SET", b"hll-sparse-max-bytes", b"3000"])
        .await;
    for (a, b) in [(0usize, 100usize), (50, 300), (1000, 1200)] {
        let mut args: Vec<&[u8]> = vec![b"PFADD", b"sa"];
        args.extend(plain[a..b].iter().map(|e| &e[..]));
        p.same(&args).await;
    }
    let mut args: Vec<&[u8]> = vec![b"PFADD", b"sb"];
    args.extend(users[..150].iter().map(|e| &e[..]));
    p.same(&args).await;
    p.same(&[b"PFMERGE", b"sm", b"sa", b"sb"]).await;
    p.same(&[b"GET", b"sm"]).await;
    p.same(&[b"PFMERGE", b"sa", b"sb"]).await;
    p.same(&[b"GET", b"sa"]).await;
    p.same(&[b"PFMERGE", b"sb", b"plain"]).await;
    p.same(&[b"GET", b"sb"]).await;
    node.shutdown().await;
}

/// Both servers for one property test, owned by it: dropping it (the test passed or failed)
/// stops our node and kills `redis-server`.
struct PropPair {
    rt: tokio::runtime::Runtime,
    node: Option<reredis::NodeHandle>,
    pair: Pair,
    _real: RealRedis,
}

impl PropPair {
    fn start() -> RefCell<PropPair> {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (real, node, pair) = rt.block_on(pair());
        RefCell::new(PropPair {
            rt,
            node: Some(node),
            pair,
            _real: real,
        })
    }
}

impl Drop for PropPair {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            self.rt.block_on(node.shutdown());
        }
    }
}

/// Runs `test` on `cases` generated inputs against one [`PropPair`], shrinking on failure.
fn prop_check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(&tokio::runtime::Runtime, &mut Pair, S::Value),
) {
    let env = PropPair::start();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |value| {
        let mut guard = env.borrow_mut();
        let PropPair { rt, pair, .. } = &mut *guard;
        test(rt, pair, value);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Random sets of random elements: PFADD, PFCOUNT, the bytes and a PFMERGE agree with Redis.
#[test]
fn random_hlls_match_redis() {
    let element = || prop::collection::vec(any::<u8>(), 0..24);
    let strategy = (
        prop::collection::vec(element(), 0..1500),
        prop::collection::vec(element(), 0..300),
    );
    prop_check(24, strategy, |rt, p, (a, b)| {
        rt.block_on(async {
            p.same(&[b"DEL", b"pa", b"pb", b"pm"]).await;
            for chunk in a.chunks(200) {
                let mut args: Vec<&[u8]> = vec![b"PFADD", b"pa"];
                args.extend(chunk.iter().map(|e| &e[..]));
                p.same(&args).await;
            }
            let mut args: Vec<&[u8]> = vec![b"PFADD", b"pb"];
            args.extend(b.iter().map(|e| &e[..]));
            p.same(&args).await;
            p.same(&[b"PFCOUNT", b"pa"]).await;
            p.same(&[b"PFCOUNT", b"pa", b"pb"]).await;
            p.same(&[b"GET", b"pa"]).await;
            p.same(&[b"PFMERGE", b"pm", b"pb", b"pa"]).await;
            p.same(&[b"GET", b"pm"]).await;
        });
    });
}

/// Our node alone: events, encodings and limits a user relies on.
#[tokio::test(flavor = "multi_thread")]
async fn bit_and_hll_commands_publish_redis_event_names() {
    let node = start_node(&[]).await;
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink_seen = seen.clone();
    node.node.store.events.add_sink(Arc::new(move |ev| {
        sink_seen.lock().unwrap().push((
            ev.event.to_string(),
            String::from_utf8_lossy(&ev.key).into_owned(),
        ))
    }));
    let mut c = Raw::connect(node.resp_addr()).await;
    let mut wire = Vec::new();
    for args in [
        &[&b"SETBIT"[..], b"b", b"3", b"1"][..],
        &[b"SETBIT", b"b", b"3", b"1"],
        &[b"SETBIT", b"b", b"20", b"0"],
        &[b"BITFIELD", b"f", b"SET", b"u8", b"0", b"7"],
        &[b"BITFIELD", b"f", b"GET", b"u8", b"0"],
        &[
            b"BITFIELD",
            b"f",
            b"SET",
            b"u8",
            b"0",
            b"7",
            b"INCRBY",
            b"u8",
            b"0",
            b"0",
        ],
        &[
            b"BITFIELD",
            b"f2",
            b"OVERFLOW",
            b"FAIL",
            b"SET",
            b"u2",
            b"0",
            b"9",
        ],
        &[b"EXISTS", b"f2"],
        &[b"BITOP", b"NOT", b"d", b"b"],
        &[b"BITOP", b"AND", b"d", b"missing"],
        &[b"PFADD", b"h", b"a"],
        &[b"PFADD", b"h", b"a"],
        &[b"PFMERGE", b"h2", b"h"],
        &[b"PFCOUNT", b"h"],
    ] {
        wire.extend(cmd(args));
    }
    let replies = c.send(&wire).await;
    assert_eq!(
        String::from_utf8_lossy(&replies),
        ":0\r\n:1\r\n:0\r\n*1\r\n:0\r\n*1\r\n:7\r\n*2\r\n:7\r\n:7\r\n*1\r\n$-1\r\n:1\r\n\
         :3\r\n:0\r\n:1\r\n:0\r\n+OK\r\n:1\r\n"
    );
    let events = seen.lock().unwrap().clone();
    // As Redis 7.0.15: writes that change nothing publish nothing (the second SETBIT, the
    // no-op BITFIELD, the failed one that still created f2); growing the string counts.
    let expect = [
        ("setbit", "b"),
        ("setbit", "b"),
        ("setbit", "f"),
        ("set", "d"),
        ("del", "d"),
        ("pfadd", "h"),
        ("pfadd", "h2"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(e, k)| (e.to_string(), k.to_string()))
        .collect();
    assert_eq!(events, expect);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hll_sparse_limit_is_a_config_setting() {
    let node = start_node(&[("hll-sparse-max-bytes", "100")]).await;
    let mut c = Raw::connect(node.resp_addr()).await;
    let got = c
        .send(&cmd(&[b"CONFIG", b"GET", b"hll-sparse-max-bytes"]))
        .await;
    assert_eq!(got, b"*2\r\n$20\r\nhll-sparse-max-bytes\r\n$3\r\n100\r\n");
    let mut args: Vec<Vec<u8>> = vec![b"PFADD".to_vec(), b"h".to_vec()];
    args.extend((0..60).map(|i: i32| i.to_string().into_bytes()));
    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    assert_eq!(c.send(&cmd(&refs)).await, b":1\r\n");
    assert_eq!(
        c.send(&cmd(&[b"PFDEBUG", b"ENCODING", b"h"])).await,
        b"+dense\r\n"
    );
    assert_eq!(c.send(&cmd(&[b"STRLEN", b"h"])).await, b":12304\r\n");
    node.shutdown().await;
}

/// Writes replayed from the log obey no `proto-max-bulk-len` bound on bit offsets (Redis's
/// mustObeyClient): a SETBIT made under a higher bound comes back after a restart under a
/// lower one. And PFCOUNT's cache, which changes the value's bytes, is logged as Redis
/// propagates it: the replayed value is byte for byte the one before the restart.
#[tokio::test(flavor = "multi_thread")]
async fn bit_offsets_and_hll_caches_replay_as_written() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_str().expect("utf-8").to_string();
    let before_h = {
        let settings = [
            ("dir", dir.as_str()),
            ("appendonly", "yes"),
            ("proto-max-bulk-len", "2mb"),
        ];
        let h = start_node(&settings).await;
        let mut raw = Raw::connect(h.resp_addr()).await;
        assert_eq!(
            raw.send(&cmd(&[b"SETBIT", b"big", b"9000000", b"1"])).await,
            b":0\r\n"
        );
        raw.send(&cmd(&[b"PFADD", b"h", b"a", b"b", b"c"])).await;
        assert_eq!(raw.send(&cmd(&[b"PFCOUNT", b"h"])).await, b":3\r\n");
        let value = raw.send(&cmd(&[b"GET", b"h"])).await;
        h.shutdown().await;
        value
    };
    let settings = [
        ("dir", dir.as_str()),
        ("appendonly", "yes"),
        ("proto-max-bulk-len", "1mb"),
    ];
    let h = common::start_loaded(&settings).await;
    let mut raw = Raw::connect(h.resp_addr()).await;
    assert_eq!(
        raw.send(&cmd(&[b"STRLEN", b"big"])).await,
        b":1125001\r\n",
        "the SETBIT was replayed"
    );
    assert_eq!(
        raw.send(&cmd(&[b"GET", b"h"])).await,
        before_h,
        "the HLL with its cached count"
    );
    h.shutdown().await;
}

/// What one server counts as changes (INFO's `rdb_changes_since_last_save`, which also decides
/// `save` rules) for writes that change nothing, and for a geo search stored: one per member.
async fn changes_story(addr: SocketAddr) -> Vec<String> {
    let mut c = common::session::Conn::connect(addr).await;
    let mut changes = async || -> i64 {
        let info = c.call_str(&["INFO", "persistence"]).await;
        info.lines()
            .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("rdb_changes_since_last_save")
    };
    let mut seen = Vec::new();
    for args in [
        &["SETBIT", "b", "3", "1"][..],
        &["SETBIT", "b", "3", "1"],
        &["PFADD", "h", "x", "y"],
        &["PFADD", "h", "x"],
        &["BITFIELD", "b", "GET", "u4", "0"],
        &[
            "GEOADD", "g", "13.36", "38.11", "Palermo", "15.08", "37.50", "Catania",
        ],
        &[
            "GEOSEARCHSTORE",
            "d",
            "g",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
        ],
        &["GEORADIUS", "g", "15", "37", "200", "km", "STORE", "d2"],
    ] {
        let before = changes().await;
        let mut conn = common::session::Conn::connect(addr).await;
        let reply = conn.call_str(args).await;
        seen.push(format!(
            "{args:?} -> {} change(s): {reply:?}",
            changes().await - before
        ));
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_are_counted_as_redis_counts_them() {
    let redis = common::redis_server::RedisServer::start().await;
    let node = start_node(&[]).await;
    let want = changes_story(redis.addr()).await;
    assert!(want[1].contains("0 change(s)"), "{want:?}");
    assert_eq!(changes_story(node.resp_addr()).await, want);
    node.shutdown().await;
}
