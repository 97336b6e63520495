//! Blocking commands between real connections: wake-ups by pushes, MULTI/EXEC, RENAME and MOVE;
//! FIFO order among waiters; timeouts; a client that disconnects while blocked; CLIENT UNBLOCK;
//! INFO's blocked_clients. Every scenario runs against our node and against a real
//! `redis-server`, so the expected bytes are Redis's own.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::resp::Conn;
use common::{start_node, wait_for};

/// Waits until the server reports `n` blocked clients (so the order of blocking is known).
async fn blocked(addr: SocketAddr, n: usize) {
    let mut c = Conn::open(addr).await;
    let want = format!("blocked_clients:{n}\r\n");
    assert!(
        wait_for(Duration::from_secs(5), async || c
            .cmd(&["INFO", "clients"])
            .await
            .contains(&want))
        .await,
        "expected {n} blocked clients"
    );
}

/// Runs `scenario` against our node, then against redis-server.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod against {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let node = start_node(&[]).await;
                    eprintln!("against reredis");
                    super::$name(node.resp_addr()).await;
                    node.shutdown().await;
                    let redis = RedisServer::start().await;
                    eprintln!("against redis-server");
                    super::$name(redis.addr()).await;
                }
            )*
        }
    };
}

on_both!(
    push_from_another_client_wakes_blpop,
    waiters_are_served_first_come_first_served,
    sub_second_timeouts_reply_null,
    a_client_that_disconnects_while_blocked_leaves_nothing_behind,
    client_unblock_with_timeout_or_error,
    exec_rename_and_move_wake_waiters,
    wrong_type_at_the_key_keeps_the_client_blocked,
    pipelined_commands_wait_behind_a_blocked_one,
    swapdb_wakes_waiters_of_both_databases,
    xreadgroup_waiters_learn_that_their_stream_is_gone,
    client_pause_write_holds_what_may_write,
    client_pause_lets_no_writes_scripts_and_functions_run,
    nothing_expires_while_clients_are_paused,
    a_blocking_command_counts_as_one_call,
    woken_clients_are_served_before_the_pushers_reply,
    a_waiter_for_another_kind_of_value_lets_the_next_one_be_served,
    becoming_a_replica_releases_blocked_clients_with_an_error,
    client_unblock_releases_a_wait,
    a_woken_client_is_served_without_the_admission_checks_again,
    a_woken_stream_reader_is_served_even_when_the_new_entries_are_gone,
    a_client_waiting_on_several_keys_is_served_from_the_first_that_got_a_value,
);

/// A client blocked on several keys is served from the key that got a value first, not the
/// first it named (Redis serves clients key by key, in the order the keys became ready): a
/// transaction pushes to the keys in reverse order, for lists and sorted sets.
async fn a_client_waiting_on_several_keys_is_served_from_the_first_that_got_a_value(
    addr: SocketAddr,
) {
    let mut w = Conn::open(addr).await;
    let mut p = Conn::open(addr).await;
    // (The waiting command, whether it waits for sorted sets, what it gets.)
    let cases: [(&[&[u8]], bool, &str); 4] = [
        (
            &[b"BLPOP", b"a", b"b", b"c", b"0"],
            false,
            "*2\r\n$1\r\nc\r\n$1\r\nx\r\n",
        ),
        (
            &[b"BLMPOP", b"0", b"3", b"a", b"b", b"c", b"LEFT"],
            false,
            "*2\r\n$1\r\nc\r\n*1\r\n$1\r\nx\r\n",
        ),
        (
            &[b"BZPOPMIN", b"a", b"b", b"c", b"0"],
            true,
            "*3\r\n$1\r\nc\r\n$1\r\nx\r\n$1\r\n1\r\n",
        ),
        (
            &[b"BZMPOP", b"0", b"3", b"a", b"b", b"c", b"MIN"],
            true,
            "*2\r\n$1\r\nc\r\n*1\r\n*2\r\n$1\r\nx\r\n$1\r\n1\r\n",
        ),
    ];
    for (wait, zset, want) in cases {
        w.send(wait).await;
        blocked(addr, 1).await;
        assert_eq!(p.cmd(&["MULTI"]).await, "+OK\r\n");
        for key in ["c", "a"] {
            let add: &[&str] = if zset {
                &["ZADD", key, "1", "x"]
            } else {
                &["RPUSH", key, "x"]
            };
            assert_eq!(p.cmd(add).await, "+QUEUED\r\n");
        }
        p.cmd(&["EXEC"]).await;
        assert_eq!(
            String::from_utf8(w.reply().await).unwrap(),
            want,
            "{:?}",
            String::from_utf8_lossy(wait[0])
        );
        p.cmd(&["DEL", "a", "b", "c"]).await;
    }
}

const NIL_ARRAY: &str = "*-1\r\n";

/// Consumer alice of group g waits for new entries of stream s.
const ALICE_WAITS_ON_S: &[&[u8]] = &[
    b"XREADGROUP",
    b"GROUP",
    b"g",
    b"alice",
    b"BLOCK",
    b"0",
    b"STREAMS",
    b"s",
    b">",
];

/// Redis serves the clients a push woke before it replies to the push, transitively: the
/// pusher's next command sees them served (Redis's "Linked LMOVEs"), even pipelined behind the
/// push. Repeated, since an order that holds by luck would hold only sometimes.
async fn woken_clients_are_served_before_the_pushers_reply(addr: SocketAddr) {
    let mut r = Conn::open(addr).await;
    for round in 0..20 {
        let mut rd1 = Conn::open(addr).await;
        let mut rd2 = Conn::open(addr).await;
        rd1.send(&[b"BLMOVE", b"l1", b"l2", b"RIGHT", b"LEFT", b"0"])
            .await;
        blocked(addr, 1).await;
        rd2.send(&[b"BLMOVE", b"l2", b"l3", b"LEFT", b"RIGHT", b"0"])
            .await;
        blocked(addr, 2).await;
        // One write: the reads reach the server with the push.
        r.send_many(&[
            &[b"RPUSH", b"l1", b"foo"],
            &[b"LRANGE", b"l1", b"0", b"-1"],
            &[b"LRANGE", b"l2", b"0", b"-1"],
            &[b"LRANGE", b"l3", b"0", b"-1"],
        ])
        .await;
        r.reply().await;
        let mut lists = Vec::new();
        for _ in 0..3 {
            lists.push(String::from_utf8(r.reply().await).unwrap());
        }
        assert_eq!(
            lists,
            ["*0\r\n", "*0\r\n", "*1\r\n$3\r\nfoo\r\n"],
            "round {round}"
        );
        rd1.reply().await;
        rd2.reply().await;
        // A single waiter: the LLEN right after the LPUSH finds the element taken.
        rd1.send(&[b"BLPOP", b"q", b"0"]).await;
        blocked(addr, 1).await;
        r.send_many(&[&[b"LPUSH", b"q", b"x"], &[b"LLEN", b"q"]])
            .await;
        assert_eq!(r.reply().await, b":1\r\n");
        assert_eq!(r.reply().await, b":0\r\n", "round {round}");
        rd1.reply().await;
        r.cmd(&["DEL", "l3"]).await;
    }
}

async fn push_from_another_client_wakes_blpop(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut b = Conn::open(addr).await;
    a.send(&[b"BLPOP", b"k1", b"k2", b"0"]).await;
    blocked(addr, 1).await;
    let list = b.cmd(&["CLIENT", "LIST"]).await;
    assert!(list.contains("flags=b "), "{list}");
    assert!(!a.has_reply_within(Duration::from_millis(50)).await);
    assert_eq!(b.cmd(&["RPUSH", "k2", "v"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*2\r\n$2\r\nk2\r\n$1\r\nv\r\n"
    );
    blocked(addr, 0).await;
    assert_eq!(b.cmd(&["EXISTS", "k2"]).await, ":0\r\n");
    let info = b.cmd(&["INFO", "clients"]).await;
    assert!(info.contains("blocked_clients:0"), "{info}");
}

async fn waiters_are_served_first_come_first_served(addr: SocketAddr) {
    let mut w: Vec<Conn> = Vec::new();
    for i in 0..3 {
        let mut c = Conn::open(addr).await;
        c.send(&[b"BRPOP", b"q", b"0"]).await;
        blocked(addr, i + 1).await;
        w.push(c);
    }
    let mut p = Conn::open(addr).await;
    let info = p.cmd(&["INFO", "clients"]).await;
    assert!(info.contains("blocked_clients:3"), "{info}");
    // One element: only the first waiter gets it.
    assert_eq!(p.cmd(&["LPUSH", "q", "one"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(w[0].reply().await).unwrap(),
        "*2\r\n$1\r\nq\r\n$3\r\none\r\n"
    );
    blocked(addr, 2).await;
    assert!(!w[1].has_reply_within(Duration::from_millis(50)).await);
    // Two at once: the next two, in order.
    assert_eq!(p.cmd(&["LPUSH", "q", "two", "three"]).await, ":2\r\n");
    assert_eq!(
        String::from_utf8(w[1].reply().await).unwrap(),
        "*2\r\n$1\r\nq\r\n$3\r\ntwo\r\n"
    );
    assert_eq!(
        String::from_utf8(w[2].reply().await).unwrap(),
        "*2\r\n$1\r\nq\r\n$5\r\nthree\r\n"
    );
    blocked(addr, 0).await;
}

async fn sub_second_timeouts_reply_null(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let started = Instant::now();
    assert_eq!(a.cmd(&["BLPOP", "k", "0.2"]).await, NIL_ARRAY);
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(a.cmd(&["BZPOPMIN", "z", "0.05"]).await, NIL_ARRAY);
    assert_eq!(
        a.cmd(&["BLMOVE", "s", "d", "LEFT", "RIGHT", "0.05"]).await,
        NIL_ARRAY
    );
    assert_eq!(
        a.cmd(&["BLMPOP", "0.05", "1", "k", "LEFT"]).await,
        NIL_ARRAY
    );
    a.send(&[b"HELLO", b"3"]).await;
    a.reply().await;
    assert_eq!(a.cmd(&["BRPOP", "k", "0.05"]).await, "_\r\n");
    // Under a millisecond is a millisecond (rounded up), not "for ever".
    assert_eq!(a.cmd(&["BLPOP", "k", "0.0001"]).await, "_\r\n");
    blocked(addr, 0).await;
}

/// A blocked command, admitted when it blocked, is served when woken even if it would now be
/// refused (over `maxmemory` with `noeviction`, BLMOVE being a `denyoom` command), as Redis
/// serves blocked clients without the admission checks.
async fn a_woken_client_is_served_without_the_admission_checks_again(addr: SocketAddr) {
    let mut b = Conn::open(addr).await;
    let mut admin = Conn::open(addr).await;
    b.send(&[b"BLMOVE", b"src", b"dst", b"LEFT", b"LEFT", b"0"])
        .await;
    blocked(addr, 1).await;
    assert_eq!(admin.cmd(&["RPUSH", "tmp", "x"]).await, ":1\r\n");
    for (k, v) in [("maxmemory-policy", "noeviction"), ("maxmemory", "1")] {
        assert_eq!(admin.cmd(&["CONFIG", "SET", k, v]).await, "+OK\r\n");
    }
    assert!(
        admin
            .cmd(&["LPUSH", "other", "y"])
            .await
            .starts_with("-OOM")
    );
    // RENAME is not `denyoom`: it runs, and the list it puts at `src` wakes the BLMOVE.
    assert_eq!(admin.cmd(&["RENAME", "tmp", "src"]).await, "+OK\r\n");
    assert_eq!(String::from_utf8(b.reply().await).unwrap(), "$1\r\nx\r\n");
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        admin.cmd(&["LRANGE", "dst", "0", "-1"]).await,
        "*1\r\n$1\r\nx\r\n"
    );
    blocked(addr, 0).await;
}

/// WAIT blocks its client as a blocking command does: counted in blocked_clients, and
/// released by CLIENT UNBLOCK (the count so far on TIMEOUT, `-UNBLOCKED` on ERROR).
async fn client_unblock_releases_a_wait(addr: SocketAddr) {
    let mut w = Conn::open(addr).await;
    let mut admin = Conn::open(addr).await;
    let id = w.cmd(&["CLIENT", "ID"]).await;
    let id = id.trim_start_matches(':').trim_end().to_string();
    assert_eq!(w.cmd(&["SET", "x", "1"]).await, "+OK\r\n");
    w.send(&[b"WAIT", b"1", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]).await, ":1\r\n");
    assert_eq!(String::from_utf8(w.reply().await).unwrap(), ":0\r\n");
    blocked(addr, 0).await;
    w.send(&[b"WAIT", b"1", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(
        admin.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]).await,
        ":1\r\n"
    );
    assert_eq!(
        String::from_utf8(w.reply().await).unwrap(),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    blocked(addr, 0).await;
    assert_eq!(w.cmd(&["PING"]).await, "+PONG\r\n");
}

/// A node that becomes a replica releases its blocked clients with Redis's `-UNBLOCKED ...
/// (master -> replica?)` and closes their connections (Redis's disconnectAllBlockedClients);
/// the master it follows need not answer.
async fn becoming_a_replica_releases_blocked_clients_with_an_error(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut admin = Conn::open(addr).await;
    a.send(&[b"BLPOP", b"k", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(admin.cmd(&["REPLICAOF", "127.0.0.1", "1"]).await, "+OK\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n"
    );
    assert!(
        a.closed_within(Duration::from_secs(5)).await,
        "the client is disconnected"
    );
    blocked(addr, 0).await;
    // WAIT is refused on a replica, before its arguments are read.
    for args in [["WAIT", "1", "0"], ["WAIT", "x", "y"]] {
        assert!(
            admin
                .cmd(&args)
                .await
                .starts_with("-ERR WAIT cannot be used with replica instances."),
            "{args:?}"
        );
    }
    assert_eq!(admin.cmd(&["REPLICAOF", "NO", "ONE"]).await, "+OK\r\n");
}

/// A waiter first in line for a key that a value of another kind cannot serve (BZPOPMIN, then
/// BLPOP, then a list pushed) does not hold up the one behind it, as Redis serves every waiter
/// of the value's kind.
async fn a_waiter_for_another_kind_of_value_lets_the_next_one_be_served(addr: SocketAddr) {
    let mut z = Conn::open(addr).await;
    let mut l = Conn::open(addr).await;
    let mut p = Conn::open(addr).await;
    z.send(&[b"BZPOPMIN", b"k", b"0"]).await;
    blocked(addr, 1).await;
    l.send(&[b"BLPOP", b"k", b"0"]).await;
    blocked(addr, 2).await;
    assert_eq!(p.cmd(&["LPUSH", "k", "x"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(l.reply().await).unwrap(),
        "*2\r\n$1\r\nk\r\n$1\r\nx\r\n"
    );
    assert_eq!(p.cmd(&["LLEN", "k"]).await, ":0\r\n");
    blocked(addr, 1).await;
    assert_eq!(p.cmd(&["ZADD", "k", "1", "m"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(z.reply().await).unwrap(),
        "*3\r\n$1\r\nk\r\n$1\r\nm\r\n$1\r\n1\r\n"
    );
    blocked(addr, 0).await;
}

async fn a_client_that_disconnects_while_blocked_leaves_nothing_behind(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    a.send(&[b"BLPOP", b"k", b"0"]).await;
    blocked(addr, 1).await;
    drop(a);
    blocked(addr, 0).await;
    let mut b = Conn::open(addr).await;
    assert_eq!(b.cmd(&["RPUSH", "k", "v"]).await, ":1\r\n");
    assert_eq!(b.cmd(&["LLEN", "k"]).await, ":1\r\n");
}

async fn client_unblock_with_timeout_or_error(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut b = Conn::open(addr).await;
    let id = a.cmd(&["CLIENT", "ID"]).await;
    let id = id.trim_start_matches(':').trim_end().to_string();
    assert_eq!(b.cmd(&["CLIENT", "UNBLOCK", &id]).await, ":0\r\n");
    a.send(&[b"BLPOP", b"k", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["CLIENT", "UNBLOCK", &id]).await, ":1\r\n");
    assert_eq!(String::from_utf8(a.reply().await).unwrap(), NIL_ARRAY);
    a.send(&[b"BZPOPMAX", b"z", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    blocked(addr, 0).await;
    // Counted as the command's failure and in the error stats.
    let errors = b.cmd(&["INFO", "errorstats"]).await;
    assert!(
        errors.contains("errorstat_UNBLOCKED:count=1\r\n"),
        "{errors}"
    );
    let stats = b.cmd(&["INFO", "commandstats"]).await;
    assert!(
        stats.contains("cmdstat_bzpopmax:calls=1,") && stats.contains("failed_calls=1\r\n"),
        "{stats}"
    );
    assert_eq!(
        b.cmd(&["CLIENT", "UNBLOCK", &id, "NOW"]).await,
        "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    );
    // The connection is usable afterwards.
    assert_eq!(a.cmd(&["PING"]).await, "+PONG\r\n");
}

async fn exec_rename_and_move_wake_waiters(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut b = Conn::open(addr).await;
    // MULTI/EXEC: the waiter is served after the transaction, with its result.
    a.send(&[b"BLPOP", b"k", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["RPUSH", "k", "x", "y"]).await, "+QUEUED\r\n");
    assert_eq!(b.cmd(&["LPOP", "k"]).await, "+QUEUED\r\n");
    assert_eq!(b.cmd(&["EXEC"]).await, "*2\r\n:2\r\n$1\r\nx\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*2\r\n$1\r\nk\r\n$1\r\ny\r\n"
    );
    // RENAME onto the key a client waits for.
    a.send(&[b"BZPOPMIN", b"dst", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["ZADD", "src", "1.5", "m"]).await, ":1\r\n");
    assert_eq!(b.cmd(&["RENAME", "src", "dst"]).await, "+OK\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*3\r\n$3\r\ndst\r\n$1\r\nm\r\n$3\r\n1.5\r\n"
    );
    // MOVE into the waiter's database.
    assert_eq!(a.cmd(&["SELECT", "1"]).await, "+OK\r\n");
    a.send(&[b"BLMOVE", b"k", b"out", b"LEFT", b"RIGHT", b"0"])
        .await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["RPUSH", "k", "moved"]).await, ":1\r\n");
    assert_eq!(b.cmd(&["MOVE", "k", "1"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "$5\r\nmoved\r\n"
    );
    assert_eq!(
        a.cmd(&["LRANGE", "out", "0", "-1"]).await,
        "*1\r\n$5\r\nmoved\r\n"
    );
}

/// SWAPDB brings a list (or a stream) under a key clients of the other database wait for;
/// one whose key arrives with a TTL already passed keeps waiting.
async fn swapdb_wakes_waiters_of_both_databases(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut b = Conn::open(addr).await;
    let mut c = Conn::open(addr).await;
    assert_eq!(b.cmd(&["SELECT", "1"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["RPUSH", "k", "hello"]).await, ":1\r\n");
    assert_eq!(
        b.cmd(&["XADD", "s", "1-1", "f", "v"]).await,
        "$3\r\n1-1\r\n"
    );
    assert_eq!(a.cmd(&["SELECT", "9"]).await, "+OK\r\n");
    a.send(&[b"BRPOP", b"k", b"0"]).await;
    assert_eq!(c.cmd(&["SELECT", "9"]).await, "+OK\r\n");
    c.send(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"0-0"])
        .await;
    blocked(addr, 2).await;
    assert_eq!(b.cmd(&["SWAPDB", "1", "9"]).await, "+OK\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*2\r\n$1\r\nk\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        String::from_utf8(c.reply().await).unwrap(),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    // A key whose TTL passed while nobody read it serves nobody.
    assert_eq!(b.cmd(&["SELECT", "2"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["RPUSH", "e", "old"]).await, ":1\r\n");
    assert_eq!(b.cmd(&["PEXPIRE", "e", "1"]).await, ":1\r\n");
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.send(&[b"BRPOP", b"e", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["SWAPDB", "2", "9"]).await, "+OK\r\n");
    assert!(!a.has_reply_within(Duration::from_millis(200)).await);
    assert_eq!(b.cmd(&["SELECT", "9"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["RPUSH", "e", "new"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*2\r\n$1\r\ne\r\n$3\r\nnew\r\n"
    );
    assert_eq!(b.cmd(&["FLUSHALL"]).await, "+OK\r\n");
}

/// A stream deleted, overwritten, flushed, swapped away or expired under a blocked XREADGROUP
/// ends the wait with `-UNBLOCKED`; a blocked XREAD keeps waiting and is served by the next
/// stream there.
async fn xreadgroup_waiters_learn_that_their_stream_is_gone(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut b = Conn::open(addr).await;
    const GONE: &str = "-UNBLOCKED the stream key no longer exists\r\n";
    let ways: [&[&[&str]]; 6] = [
        &[&["DEL", "s"]],
        &[&["SET", "s", "v"]],
        &[&["MULTI"], &["DEL", "s"], &["SADD", "s", "e1"], &["EXEC"]],
        &[&["FLUSHALL"]],
        &[&["SWAPDB", "0", "5"]],
        &[&["PEXPIRE", "s", "1"]],
    ];
    for way in ways {
        assert_eq!(b.cmd(&["FLUSHALL"]).await, "+OK\r\n");
        assert_eq!(
            b.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
                .await,
            "+OK\r\n"
        );
        a.send(ALICE_WAITS_ON_S).await;
        blocked(addr, 1).await;
        for cmd in way {
            b.cmd(cmd).await;
        }
        assert_eq!(String::from_utf8(a.reply().await).unwrap(), GONE, "{way:?}");
    }
    // XREAD waits on.
    assert_eq!(
        b.cmd(&["XADD", "s", "1-1", "f", "v"]).await,
        "$3\r\n1-1\r\n"
    );
    a.send(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"])
        .await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["DEL", "s"]).await, ":1\r\n");
    assert!(!a.has_reply_within(Duration::from_millis(100)).await);
    assert_eq!(
        b.cmd(&["XADD", "s", "2-1", "f", "w"]).await,
        "$3\r\n2-1\r\n"
    );
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n"
    );
    assert_eq!(b.cmd(&["FLUSHALL"]).await, "+OK\r\n");
}

/// CLIENT PAUSE WRITE holds writes, commands that may replicate (PFCOUNT, PUBLISH, scripts
/// without `no-writes`) and an EXEC of queued writes, each counted in `blocked_clients`; reads,
/// an EXEC of reads and a `no-writes` script run. UNPAUSE lets the held ones through.
async fn client_pause_write_holds_what_may_write(addr: SocketAddr) {
    let mut admin = Conn::open(addr).await;
    assert_eq!(admin.cmd(&["PFADD", "h", "a"]).await, ":1\r\n");
    // Queued before the pause (queueing a write waits too, as in Redis).
    let mut exec = Conn::open(addr).await;
    assert_eq!(exec.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(exec.cmd(&["INCR", "n"]).await, "+QUEUED\r\n");
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]).await,
        "+OK\r\n"
    );
    let held: [&[&str]; 5] = [
        &["SET", "k", "v"],
        &["PFCOUNT", "h"],
        &["PUBLISH", "ch", "m"],
        &["EVAL", "return 1", "0"],
        &["EXEC"],
    ];
    let mut waiting = Vec::new();
    let mut exec = Some(exec);
    for (i, cmd) in held.iter().enumerate() {
        let mut c = if cmd[0] == "EXEC" {
            exec.take().unwrap()
        } else {
            Conn::open(addr).await
        };
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        c.send(&args).await;
        blocked(addr, i + 1).await;
        waiting.push(c);
    }
    let mut free = Conn::open(addr).await;
    assert_eq!(free.cmd(&["GET", "k"]).await, "$-1\r\n");
    assert_eq!(
        free.cmd(&["EVAL", "#!lua flags=no-writes\nreturn 2", "0"])
            .await,
        ":2\r\n"
    );
    assert_eq!(free.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(free.cmd(&["GET", "k"]).await, "+QUEUED\r\n");
    assert_eq!(free.cmd(&["EXEC"]).await, "*1\r\n$-1\r\n");
    blocked(addr, held.len()).await;
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]).await, "+OK\r\n");
    let mut replies = Vec::new();
    for c in &mut waiting {
        replies.push(String::from_utf8(c.reply().await).unwrap());
    }
    assert_eq!(
        replies,
        ["+OK\r\n", ":1\r\n", ":0\r\n", ":1\r\n", "*1\r\n:1\r\n"]
    );
    blocked(addr, 0).await;
    assert_eq!(admin.cmd(&["FLUSHALL"]).await, "+OK\r\n");
}

/// EVALSHA of a script and FCALL of a function that declare `no-writes` run during CLIENT PAUSE
/// WRITE (Redis reads the cached script's and the function's flags); the same without the
/// flag wait.
async fn client_pause_lets_no_writes_scripts_and_functions_run(addr: SocketAddr) {
    let mut admin = Conn::open(addr).await;
    let ro = "#!lua flags=no-writes\nreturn 'ro'";
    let rw = "#!lua\nreturn 'rw'";
    let ro_sha = admin.cmd(&["SCRIPT", "LOAD", ro]).await;
    let rw_sha = admin.cmd(&["SCRIPT", "LOAD", rw]).await;
    let (ro_sha, rw_sha) = (&ro_sha[5..45], &rw_sha[5..45]);
    let lib = "#!lua name=pauselib\n\
        redis.register_function{function_name='ro', callback=function() return 'ro' end, flags={'no-writes'}}\n\
        redis.register_function('rw', function() return 'rw' end)";
    assert_eq!(
        admin.cmd(&["FUNCTION", "LOAD", "REPLACE", lib]).await,
        "$8\r\npauselib\r\n"
    );
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]).await,
        "+OK\r\n"
    );
    let mut free = Conn::open(addr).await;
    assert_eq!(free.cmd(&["EVALSHA", ro_sha, "0"]).await, "$2\r\nro\r\n");
    assert_eq!(free.cmd(&["FCALL", "RO", "0"]).await, "$2\r\nro\r\n");
    let mut waiting = Vec::new();
    for (i, cmd) in [["EVALSHA", rw_sha, "0"], ["FCALL", "rw", "0"]]
        .iter()
        .enumerate()
    {
        let mut c = Conn::open(addr).await;
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        c.send(&args).await;
        blocked(addr, i + 1).await;
        waiting.push(c);
    }
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]).await, "+OK\r\n");
    for c in &mut waiting {
        assert_eq!(String::from_utf8(c.reply().await).unwrap(), "$2\r\nrw\r\n");
    }
    assert_eq!(admin.cmd(&["FUNCTION", "FLUSH"]).await, "+OK\r\n");
    assert_eq!(admin.cmd(&["SCRIPT", "FLUSH"]).await, "+OK\r\n");
}

/// As Redis 7.0: while clients are paused nothing expires, neither in the background nor when
/// read; readers see expired keys gone all the same. After UNPAUSE a read expires them.
async fn nothing_expires_while_clients_are_paused(addr: SocketAddr) {
    let mut c = Conn::open(addr).await;
    let expired = async |c: &mut Conn| -> u64 {
        let info = c.cmd(&["INFO", "stats"]).await;
        let line = info
            .lines()
            .find_map(|l| l.strip_prefix("expired_keys:"))
            .unwrap()
            .to_string();
        line.trim().parse().unwrap()
    };
    let before = expired(&mut c).await;
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(
        c.cmd(&["SET", "foo", "bar", "PX", "10"]).await,
        "+QUEUED\r\n"
    );
    assert_eq!(
        c.cmd(&["SET", "bar", "foo", "PX", "10"]).await,
        "+QUEUED\r\n"
    );
    assert_eq!(
        c.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]).await,
        "+QUEUED\r\n"
    );
    assert_eq!(c.cmd(&["EXEC"]).await, "*3\r\n+OK\r\n+OK\r\n+OK\r\n");
    // Long enough for several rounds of background expiry (10 a second by default).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.cmd(&["GET", "foo"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["EXISTS", "foo", "bar"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["TTL", "bar"]).await, ":-2\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]).await, ":2\r\n");
    assert_eq!(expired(&mut c).await, before);
    assert_eq!(c.cmd(&["CLIENT", "UNPAUSE"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "foo"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["GET", "bar"]).await, "$-1\r\n");
    assert_eq!(expired(&mut c).await, before + 2);
    assert_eq!(c.cmd(&["DBSIZE"]).await, ":0\r\n");
}

/// A command that blocks, then is served (or fails), is one call in INFO commandstats, as in
/// Redis; its error is counted when it ends.
async fn a_blocking_command_counts_as_one_call(addr: SocketAddr) {
    let mut admin = Conn::open(addr).await;
    assert_eq!(admin.cmd(&["CONFIG", "RESETSTAT"]).await, "+OK\r\n");
    let calls = async |c: &mut Conn, cmd: &str| -> String {
        let info = c.cmd(&["INFO", "commandstats"]).await;
        let prefix = format!("cmdstat_{cmd}:");
        let line = info
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {cmd} in {info}"))
            .to_string();
        // calls=N,usec=..,usec_per_call=..,rejected_calls=N,failed_calls=N
        line.split(',')
            .filter(|f| f.contains("calls=") && !f.starts_with("usec"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut a = Conn::open(addr).await;
    a.send(&[b"BLPOP", b"list", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(admin.cmd(&["RPUSH", "list", "v"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*2\r\n$4\r\nlist\r\n$1\r\nv\r\n"
    );
    assert_eq!(
        calls(&mut admin, "blpop").await,
        "calls=1,rejected_calls=0,failed_calls=0"
    );
    assert_eq!(
        admin
            .cmd(&["XGROUP", "CREATE", "stream", "group", "$", "MKSTREAM"])
            .await,
        "+OK\r\n"
    );
    a.send(&[
        b"XREADGROUP",
        b"GROUP",
        b"group",
        b"alice",
        b"BLOCK",
        b"0",
        b"STREAMS",
        b"stream",
        b">",
    ])
    .await;
    blocked(addr, 1).await;
    assert_eq!(
        admin.cmd(&["XGROUP", "DESTROY", "stream", "group"]).await,
        ":1\r\n"
    );
    let err = String::from_utf8(a.reply().await).unwrap();
    assert!(err.starts_with("-NOGROUP"), "{err}");
    assert_eq!(
        calls(&mut admin, "xreadgroup").await,
        "calls=1,rejected_calls=0,failed_calls=1"
    );
    let errors = admin.cmd(&["INFO", "errorstats"]).await;
    assert!(errors.contains("errorstat_NOGROUP:count=1\r\n"), "{errors}");
    assert_eq!(admin.cmd(&["DEL", "stream"]).await, ":1\r\n");
}

async fn wrong_type_at_the_key_keeps_the_client_blocked(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut b = Conn::open(addr).await;
    a.send(&[b"BLPOP", b"k", b"0"]).await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["ZADD", "k", "1", "m"]).await, ":1\r\n");
    assert!(!a.has_reply_within(Duration::from_millis(100)).await);
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["DEL", "k"]).await, ":1\r\n");
    assert_eq!(b.cmd(&["LPUSH", "k", "v"]).await, ":1\r\n");
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
    );
}

async fn pipelined_commands_wait_behind_a_blocked_one(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut b = Conn::open(addr).await;
    a.send(&[b"BZMPOP", b"0", b"2", b"z1", b"z2", b"MAX", b"COUNT", b"2"])
        .await;
    a.send(&[b"PING"]).await;
    blocked(addr, 1).await;
    assert!(!a.has_reply_within(Duration::from_millis(50)).await);
    assert_eq!(
        b.cmd(&["ZADD", "z2", "1", "a", "2", "b", "3", "c"]).await,
        ":3\r\n"
    );
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*2\r\n$2\r\nz2\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    assert_eq!(String::from_utf8(a.reply().await).unwrap(), "+PONG\r\n");
    assert_eq!(b.cmd(&["ZCARD", "z2"]).await, ":1\r\n");
}

/// A blocked XREAD/XREADGROUP is served once the stream's last ID passed where it waited, even
/// if the new entries were trimmed or deleted already (an empty list for the stream), and a
/// woken reader gets the one stream that woke it first.
async fn a_woken_stream_reader_is_served_even_when_the_new_entries_are_gone(addr: SocketAddr) {
    let mut a = Conn::open(addr).await;
    let mut b = Conn::open(addr).await;
    assert_eq!(
        b.cmd(&["XADD", "s", "1-1", "f", "v"]).await,
        "$3\r\n1-1\r\n"
    );
    a.send(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"])
        .await;
    blocked(addr, 1).await;
    assert_eq!(
        b.cmd(&["XADD", "s", "MAXLEN", "0", "2-1", "f", "w"]).await,
        "$3\r\n2-1\r\n"
    );
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n",
        "trimmed at once"
    );

    // A group's reader, the entry deleted in the same transaction.
    assert_eq!(b.cmd(&["XGROUP", "CREATE", "s", "g", "$"]).await, "+OK\r\n");
    a.send(ALICE_WAITS_ON_S).await;
    blocked(addr, 1).await;
    assert_eq!(b.cmd(&["MULTI"]).await, "+OK\r\n");
    b.cmd(&["XADD", "s", "3-1", "f", "x"]).await;
    b.cmd(&["XDEL", "s", "3-1"]).await;
    b.cmd(&["EXEC"]).await;
    assert_eq!(
        String::from_utf8(a.reply().await).unwrap(),
        "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n",
        "deleted in the transaction"
    );

    // Two streams written in one transaction: the reader gets the one written first,
    // whatever the order it named them in.
    for (first, second, value) in [("s", "t", "y"), ("t", "s", "z")] {
        a.send(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"t", b"$", b"$"])
            .await;
        blocked(addr, 1).await;
        assert_eq!(b.cmd(&["MULTI"]).await, "+OK\r\n");
        b.cmd(&["XADD", first, "*", "f", value]).await;
        b.cmd(&["XADD", second, "*", "f", "other"]).await;
        b.cmd(&["EXEC"]).await;
        let reply = String::from_utf8(a.reply().await).unwrap();
        assert!(
            reply.starts_with(&format!("*1\r\n*2\r\n$1\r\n{first}\r\n*1\r\n"))
                && reply.ends_with(&format!("$1\r\nf\r\n$1\r\n{value}\r\n")),
            "one stream, {first}: {reply:?}"
        );
    }
    assert_eq!(b.cmd(&["FLUSHALL"]).await, "+OK\r\n");
}
