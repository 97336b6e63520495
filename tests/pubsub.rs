//! Pub/Sub and keyspace notifications through real clients: the `redis` crate (RESP2 subscribe
//! mode and RESP3 push), raw TCP, and transcripts compared byte for byte with a real
//! `redis-server`.

mod common;

use std::time::Duration;

use common::session::{
    Conn, RedisServer, Step, assert_same_as_redis, assert_same_as_redis_cluster, c, ca, q,
    wait_until,
};
use redis::{AsyncCommands, PushKind, Value};

async fn numsub(conn: &mut redis::aio::MultiplexedConnection, ch: &str) -> i64 {
    let v: Vec<Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(ch)
        .query_async(conn)
        .await
        .unwrap();
    match &v[1] {
        Value::Int(n) => *n,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn resp2_subscriber_gets_messages_in_publish_order() {
    let node = common::start_node(&[]).await;
    let client = common::client(node.resp_addr());
    let subscriber = tokio::task::spawn_blocking(move || {
        let mut con = client.get_connection().unwrap();
        let mut ps = con.as_pubsub();
        ps.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        ps.subscribe("news").unwrap();
        ps.psubscribe("user:*").unwrap();
        let mut got = Vec::new();
        for _ in 0..1001 {
            let m = ps.get_message().unwrap();
            let pattern: Option<String> = m.get_pattern().unwrap();
            let payload: String = m.get_payload().unwrap();
            got.push((m.get_channel_name().to_string(), pattern, payload));
        }
        got
    });
    let mut p = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert!(
        common::wait_for(Duration::from_secs(10), async || {
            let pats: i64 = redis::cmd("PUBSUB")
                .arg("NUMPAT")
                .query_async(&mut p)
                .await
                .unwrap();
            numsub(&mut p, "news").await == 1 && pats == 1
        })
        .await
    );
    for i in 0..1000 {
        let n: i64 = p.publish("news", i.to_string()).await.unwrap();
        assert_eq!(n, 1);
    }
    let n: i64 = p.publish("user:42", "hello").await.unwrap();
    assert_eq!(n, 1);
    let got = subscriber.await.unwrap();
    for (i, (ch, pat, payload)) in got[..1000].iter().enumerate() {
        assert_eq!((ch.as_str(), pat, payload), ("news", &None, &i.to_string()));
    }
    assert_eq!(
        got[1000],
        ("user:42".into(), Some("user:*".into()), "hello".into())
    );
    node.shutdown().await;
}

#[tokio::test]
async fn resp3_push_and_commands_on_one_connection() {
    let node = common::start_node(&[]).await;
    let client =
        redis::Client::open(format!("redis://{}/?protocol=resp3", node.resp_addr())).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut sub = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    sub.subscribe("ch").await.unwrap();
    sub.psubscribe("c*").await.unwrap();
    // RESP3 has no subscribe mode: ordinary commands work on the subscribed connection.
    let _: () = sub.set("k", "v").await.unwrap();
    let v: String = sub.get("k").await.unwrap();
    assert_eq!(v, "v");
    let mut p = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let n: i64 = p.publish("ch", "m1").await.unwrap();
    assert_eq!(n, 2);
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let push = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("push before deadline")
            .expect("push");
        match push.kind {
            PushKind::Message => {
                assert_eq!(
                    push.data,
                    vec![
                        Value::BulkString(b"ch".to_vec()),
                        Value::BulkString(b"m1".to_vec())
                    ]
                )
            }
            PushKind::PMessage => assert_eq!(
                push.data,
                vec![
                    Value::BulkString(b"c*".to_vec()),
                    Value::BulkString(b"ch".to_vec()),
                    Value::BulkString(b"m1".to_vec())
                ]
            ),
            _ => {}
        }
        kinds.push(push.kind);
    }
    assert_eq!(
        kinds,
        vec![
            PushKind::Subscribe,
            PushKind::PSubscribe,
            PushKind::Message,
            PushKind::PMessage
        ]
    );
    node.shutdown().await;
}

#[tokio::test]
async fn resp3_push_frames_on_the_wire() {
    let node = common::start_node(&[]).await;
    let mut a = Conn::connect(node.resp_addr()).await;
    a.call(&[b"HELLO", b"3"]).await;
    assert_eq!(
        a.call(&[b"SUBSCRIBE", b"x"]).await,
        b">3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n"
    );
    // Publishing to itself: the message precedes PUBLISH's reply, as in Redis.
    a.send(&[b"PUBLISH", b"x", b"hi"]).await;
    assert_eq!(
        a.frame().await.unwrap(),
        b">3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$2\r\nhi\r\n"
    );
    assert_eq!(a.frame().await.unwrap(), b":1\r\n");
    node.shutdown().await;
}

#[tokio::test]
async fn one_publisher_order_holds_across_channels_and_patterns() {
    let node = common::start_node(&[]).await;
    let mut s = Conn::connect(node.resp_addr()).await;
    s.call(&[b"SUBSCRIBE", b"a", b"b"]).await;
    s.frame().await.unwrap();
    s.call(&[b"PSUBSCRIBE", b"*"]).await;
    let mut p = Conn::connect(node.resp_addr()).await;
    let mut wire = Vec::new();
    for i in 0..500 {
        let ch: &[u8] = if i % 2 == 0 { b"a" } else { b"b" };
        wire.extend(common::resp::encode(&[
            b"PUBLISH".as_slice(),
            ch,
            i.to_string().as_bytes(),
        ]));
    }
    use tokio::io::AsyncWriteExt;
    let mut raw = tokio::net::TcpStream::connect(node.resp_addr())
        .await
        .unwrap();
    raw.write_all(&wire).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 1000 {
        let f = s.frame().await.unwrap();
        let text = String::from_utf8(f).unwrap();
        let payload = text.trim_end().rsplit("\r\n").next().unwrap().to_string();
        let kind = if text.contains("pmessage") { 'p' } else { 'm' };
        seen.push((kind, payload.parse::<usize>().unwrap()));
    }
    for i in 0..500 {
        assert_eq!(seen[2 * i], ('m', i));
        assert_eq!(seen[2 * i + 1], ('p', i));
    }
    assert_eq!(p.call_str(&["PUBSUB", "NUMPAT"]).await, ":1\r\n");
    node.shutdown().await;
}

#[tokio::test]
async fn slow_subscriber_is_disconnected_by_the_output_limit() {
    let node = common::start_node(&[("client-output-buffer-limit", "pubsub 256kb 128kb 60")]).await;
    let mut slow = Conn::connect(node.resp_addr()).await;
    slow.call(&[b"SUBSCRIBE", b"firehose"]).await;
    let mut p = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let big = vec![b'x'; 64 * 1024];
    // 32 MB: far more than the socket buffers and the limit hold. The publisher is never
    // blocked by the subscriber that does not read.
    for _ in 0..512 {
        let _: i64 = p.publish("firehose", &big).await.unwrap();
    }
    assert!(
        common::wait_for(Duration::from_secs(10), async || numsub(&mut p, "firehose")
            .await
            == 0)
        .await,
        "the slow subscriber was not dropped"
    );
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut p)
        .await
        .unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    let got = slow
        .read_to_close(Duration::from_secs(10))
        .await
        .expect("the server closed the slow subscriber");
    assert!(
        got < 20 << 20,
        "read {got} bytes: the subscriber was buffered without bound"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn client_list_shows_subscriptions() {
    let node = common::start_node(&[]).await;
    let mut s = Conn::connect(node.resp_addr()).await;
    s.call(&[b"SUBSCRIBE", b"a"]).await;
    s.call(&[b"PSUBSCRIBE", b"x*"]).await;
    s.call(&[b"SSUBSCRIBE", b"s"]).await;
    let mut o = Conn::connect(node.resp_addr()).await;
    let list = o.call_str(&["CLIENT", "LIST"]).await;
    assert!(list.contains("flags=P db=0 sub=1 psub=1 ssub=1 "), "{list}");
    let pubsub = o.call_str(&["CLIENT", "LIST", "TYPE", "pubsub"]).await;
    assert_eq!(pubsub.matches("id=").count(), 1, "{pubsub}");
    assert!(pubsub.contains("flags=P"), "{pubsub}");
    let normal = o.call_str(&["CLIENT", "LIST", "TYPE", "normal"]).await;
    assert_eq!(normal.matches("id=").count(), 1, "{normal}");
    assert!(normal.contains("cmd=client|list"), "{normal}");
    let info = o.call_str(&["INFO", "stats"]).await;
    assert!(info.contains("pubsub_channels:1\r\n"), "{info}");
    assert!(info.contains("pubsub_patterns:1\r\n"), "{info}");
    assert_eq!(
        o.call_str(&["CLIENT", "KILL", "TYPE", "pubsub"]).await,
        ":1\r\n"
    );
    assert_eq!(s.read_to_close(Duration::from_secs(10)).await, Some(0));
    assert!(
        common::wait_for(Duration::from_secs(10), async || {
            o.call_str(&["PUBSUB", "NUMPAT"]).await == ":0\r\n"
        })
        .await
    );
    node.shutdown().await;
}

fn resp2_subscribe_mode_script() -> Vec<Step> {
    vec![
        c(0, "SUBSCRIBE a b"),
        c(0, "PSUBSCRIBE p* a*"),
        c(0, "GET x"),
        c(0, "ECHO x"),
        c(0, "CONFIG GET maxmemory"),
        c(0, "PING"),
        c(0, "PING hi"),
        c(0, "PING a b"),
        c(1, "PUBLISH a hello"),
        c(1, "PUBLISH pq x"),
        c(1, "PUBLISH zz x"),
        c(1, "PUBSUB NUMSUB a b c"),
        c(1, "PUBSUB NUMSUB"),
        c(1, "PUBSUB NUMPAT"),
        c(1, "PUBSUB CHANNELS a"),
        c(1, "PUBSUB CHANNELS b*"),
        c(0, "UNSUBSCRIBE a"),
        c(0, "UNSUBSCRIBE a"),
        c(1, "PUBLISH a again"),
        c(0, "PUNSUBSCRIBE"),
        c(0, "UNSUBSCRIBE"),
        c(0, "PING"),
        c(0, "UNSUBSCRIBE"),
        c(0, "PUNSUBSCRIBE"),
        c(0, "SUNSUBSCRIBE"),
        c(0, "SSUBSCRIBE s1"),
        c(0, "SSUBSCRIBE s2 s1"),
        c(0, "ECHO x"),
        c(1, "SPUBLISH s1 m"),
        c(1, "PUBLISH s1 m"),
        c(1, "PUBSUB SHARDNUMSUB s1 s3"),
        c(1, "PUBSUB SHARDCHANNELS s1"),
        c(1, "PUBSUB CHANNELS"),
        c(0, "SUNSUBSCRIBE s1"),
        c(0, "SUNSUBSCRIBE"),
        c(0, "PSUBSCRIBE x"),
        c(0, "UNSUBSCRIBE"),
        c(0, "GET x"),
        c(0, "PUNSUBSCRIBE x"),
        c(0, "GET x"),
        c(1, "SUBSCRIBE"),
        c(1, "PSUBSCRIBE"),
        c(1, "PUBLISH a"),
        c(1, "SPUBLISH a"),
        c(1, "PUBSUB"),
        c(1, "PUBSUB FOO"),
        c(1, "PUBSUB NUMPAT x"),
        c(1, "PUBSUB CHANNELS a b"),
        c(1, "PUBSUB SHARDCHANNELS a b"),
        c(1, "PUBSUB HELP"),
        c(1, "PUBSUB HELP x"),
        c(1, "MULTI"),
        c(1, "SUBSCRIBE q"),
        c(1, "SSUBSCRIBE q"),
        c(1, "PSUBSCRIBE z"),
        c(1, "EXEC"),
        c(1, "GET x"),
        c(1, "MULTI"),
        c(1, "RESET"),
        c(1, "GET x"),
        c(0, "SUBSCRIBE z"),
        c(0, "MULTI"),
        c(0, "RESET"),
        ca(1, &["PUBLISH", "z", ""]),
        c(0, "PING"),
    ]
}

#[tokio::test]
async fn resp2_subscribe_mode_matches_redis() {
    assert_same_as_redis(2, &resp2_subscribe_mode_script()).await;
}

#[tokio::test]
async fn resp3_pubsub_matches_redis() {
    assert_same_as_redis(
        2,
        &[
            q(0, "HELLO 3"),
            c(0, "SUBSCRIBE a"),
            c(0, "PSUBSCRIBE a*"),
            c(0, "GET x"),
            c(0, "PING"),
            c(0, "PUBLISH a hello"),
            c(1, "PUBLISH a m2"),
            c(0, "SET k v"),
            c(0, "PUBSUB NUMSUB a"),
            c(0, "UNSUBSCRIBE"),
            c(0, "PUNSUBSCRIBE"),
            c(0, "UNSUBSCRIBE"),
            c(0, "SSUBSCRIBE {t}x {t}y"),
            c(1, "SPUBLISH {t}y hi"),
            c(0, "SUNSUBSCRIBE {t}y"),
            c(0, "MULTI"),
            c(0, "SUBSCRIBE m"),
            c(0, "EXEC"),
            c(1, "PUBLISH m late"),
            c(0, "RESET"),
        ],
    )
    .await;
}

/// CLIENT REPLY OFF drops replies, not what is pushed to a subscriber: its subscribe
/// confirmations and messages still arrive, in RESP2 and RESP3. The same bytes from
/// redis-server and from us.
#[tokio::test]
async fn client_reply_off_keeps_what_subscribers_are_pushed() {
    async fn transcript(addr: std::net::SocketAddr, hello: &str) -> String {
        use common::resp::Conn;
        let mut sub = Conn::open(addr).await;
        let mut publisher = Conn::open(addr).await;
        if hello == "3" {
            sub.cmd(&["HELLO", "3"]).await;
        }
        let mut got = String::new();
        let drain = async |sub: &mut Conn| {
            let mut s = String::new();
            while sub.has_reply_within(Duration::from_millis(100)).await {
                s += &String::from_utf8(sub.reply().await).unwrap();
            }
            s
        };
        for (who, cmd) in [
            (0, "CLIENT REPLY OFF"),
            (0, "SUBSCRIBE channel"),
            (0, "PSUBSCRIBE ch*"),
            (1, "PUBLISH channel hello"),
            (0, "UNSUBSCRIBE channel"),
            (0, "PUNSUBSCRIBE ch*"),
            (0, "CLIENT REPLY ON"),
            (0, "PING"),
        ] {
            let args: Vec<&[u8]> = cmd.split(' ').map(str::as_bytes).collect();
            if who == 0 {
                sub.send(&args).await;
            } else {
                publisher.send(&args).await;
                publisher.reply().await;
            }
            got += &format!("{cmd}: {}\n", drain(&mut sub).await);
        }
        got
    }
    let node = common::start_node(&[]).await;
    let redis = common::redis_server::RedisServer::start().await;
    for hello in ["2", "3"] {
        let ours = transcript(node.resp_addr(), hello).await;
        let theirs = transcript(redis.addr(), hello).await;
        assert_eq!(ours, theirs, "RESP{hello}");
        assert!(theirs.contains("message"), "{theirs}");
    }
    node.shutdown().await;
}

/// Commands and the keyspace notifications each produces, with every class on.
fn notification_script() -> Vec<Step> {
    let mut s = vec![
        c(1, "PSUBSCRIBE __key*__:*"),
        c(0, "CONFIG SET notify-keyspace-events KEA"),
    ];
    for line in [
        "SET k v",
        "SET k v2 EX 100",
        "GET k",
        "APPEND k x",
        "STRLEN k",
        "SETRANGE k 1 zz",
        "SETRANGE k 1 ",
        "INCR n",
        "INCRBY n 5",
        "DECR n",
        "DECRBY n 2",
        "INCRBYFLOAT f 1.5",
        "MSET a 1 b 2",
        "MSETNX a 1 z 2",
        "MSETNX y 1 z 2",
        "SETNX a 3",
        "SETNX w 3",
        "GETSET a 9",
        "GETDEL a",
        "GETDEL a",
        "GETEX b EX 100",
        "GETEX b PERSIST",
        "GETEX b",
        "SET b 5 KEEPTTL",
        "SET b 6 GET",
        "SET b 7 NX",
        "SET b 8 XX",
        "SETEX se 100 v",
        "PSETEX pse 100000 v",
        "EXPIRE b 100",
        "EXPIRE b 100 NX",
        "PEXPIRE b 100000",
        "EXPIREAT b 4000000000",
        "PERSIST b",
        "PERSIST b",
        "RENAME b c",
        "RENAMENX c d",
        "RENAMENX c z",
        "COPY c d",
        "COPY c e",
        "MOVE e 1",
        "TOUCH c d",
        "DEL c k nothing",
        "UNLINK d",
        "EXPIRE n -1",
        "SET past v EXAT 1",
        "FLUSHDB",
        "SWAPDB 0 1",
        "FLUSHALL",
    ] {
        s.push(c(0, line));
    }
    // Unsynced, so the "expired" event is recorded at the next step whether active or lazy
    // expiry deleted the key.
    s.push(q(0, "SET t2 v PX 20"));
    s.push(Step::WaitGone(0, b"t2".to_vec()));
    s.push(c(0, "PING"));
    s.push(c(0, "CONFIG SET notify-keyspace-events E$"));
    s.push(c(0, "SET k v"));
    s.push(c(0, "DEL k"));
    s.push(c(0, "CONFIG SET notify-keyspace-events Kg"));
    s.push(c(0, "SET k v"));
    s.push(c(0, "DEL k"));
    s.push(c(0, "CONFIG SET notify-keyspace-events g$"));
    s.push(c(0, "SET k v"));
    // `n`: a key added to a db, before the command's own event.
    // `m`: read misses.
    s.push(c(0, "CONFIG SET notify-keyspace-events KEm"));
    for line in [
        "GET nothing",
        "GET k",
        "MGET nothing k other",
        "EXISTS nothing",
        "STRLEN nothing",
        "GETRANGE nothing 0 1",
        "TTL nothing",
        "TYPE nothing",
        "GETEX nothing",
        "GETDEL nothing",
        "APPEND nothing x",
        "DEL nothing",
        "DEL nothing",
        // The sources of a *STORE are read as reads (Redis's lookupKeyRead).
        "ZINTERSTORE zdst 2 nozz1 nozz2",
        "ZUNIONSTORE zdst 1 nozz3",
    ] {
        s.push(c(0, line));
    }
    s.push(c(0, "CONFIG SET notify-keyspace-events KEAn"));
    for line in [
        "SET k v",
        "SET fresh v",
        "RENAME fresh moved",
        "COPY moved copy",
        "MOVE copy 2",
        "INCR counter",
        "APPEND log x",
        "SETRANGE range 2 x",
        "MSET m1 1 k 2",
        "GETSET gs 1",
        "INCRBYFLOAT fl 1",
    ] {
        s.push(c(0, line));
    }
    // Streams: consumers made by XREADGROUP and by claims are notified (Redis's
    // streamCreateConsumer), deleting one that does not exist is not.
    for line in [
        "XGROUP CREATE st grp $ MKSTREAM",
        "XGROUP CREATECONSUMER st grp Bob",
        "XADD st 1 field1 A",
        "XREADGROUP GROUP grp Alice STREAMS st >",
        "XCLAIM st grp Mike 0 1-0 FORCE",
        "XGROUP DELCONSUMER st grp Lee",
        "XAUTOCLAIM st grp Bob 0 1-0",
        "XAUTOCLAIM st grp Zed 0 1-0",
        "XAUTOCLAIM st grp Yan 0 9-0",
        "XGROUP DELCONSUMER st grp Bob",
        "XGROUP DESTROY st grp",
    ] {
        s.push(c(0, line));
    }
    s
}

#[tokio::test]
async fn keyspace_notifications_match_redis() {
    assert_same_as_redis(2, &notification_script()).await;
}

#[tokio::test]
async fn notification_settings_match_redis() {
    let mut s = Vec::new();
    for v in [
        "KEA",
        "Agm$Kn",
        "g$lshzxetdn",
        "Ex$g",
        "nE",
        "Am",
        "d",
        "",
        "q",
        "KEA!",
    ] {
        s.push(ca(0, &["CONFIG", "SET", "notify-keyspace-events", v]));
        s.push(c(0, "CONFIG GET notify-keyspace-events"));
    }
    for v in [
        "pubsub 1mb 2mb 3",
        "replica 1mb 2mb 3 pubsub 1k 2kb 5",
        "normal 1 2 3",
        "slave 0 0 0",
        "pubsub 1mb 2mb",
        "master 1mb 2mb 3",
        "pubsub 1x 2mb 3",
        "pubsub 1mb 2mb -3",
        "PUBSUB 32mb 8mb 60",
        "",
    ] {
        s.push(ca(0, &["CONFIG", "SET", "client-output-buffer-limit", v]));
        s.push(c(0, "CONFIG GET client-output-buffer-limit"));
    }
    assert_same_as_redis(1, &s).await;
}

#[tokio::test]
async fn redis_server_is_available_for_differential_tests() {
    // The differential tests above need it; fail loudly rather than skip.
    let r = RedisServer::start().await;
    let mut c = Conn::connect(r.addr()).await;
    assert_eq!(c.call_str(&["PING"]).await, "+PONG\r\n");
}

/// The bitmap and HyperLogLog commands notify (and miss) as Redis does.
#[tokio::test]
async fn bitmap_and_hyperloglog_notifications_match_redis() {
    let mut s = vec![
        c(1, "PSUBSCRIBE __key*__:*"),
        c(0, "CONFIG SET notify-keyspace-events KEA"),
    ];
    for line in [
        "SETBIT b 7 1",
        "SETBIT b 7 1",
        "GETBIT b 7",
        "BITCOUNT b",
        "BITPOS b 1",
        "SET s abc",
        "BITOP AND dest b s",
        "BITOP OR dest nothing other",
        "BITOP NOT dest2 b",
        "BITFIELD bf SET u8 0 255 GET u8 0",
        "BITFIELD bf INCRBY u8 0 1",
        "BITFIELD bf OVERFLOW FAIL INCRBY u8 0 300",
        "BITFIELD bf GET u8 0",
        "BITFIELD_RO bf GET u8 0",
        "PFADD h a b c",
        "PFADD h a",
        "PFADD h",
        "PFADD fresh",
        "PFCOUNT h",
        "PFCOUNT h fresh",
        "PFMERGE m h fresh",
        "PFMERGE m",
        "SETBIT s 0 1",
        "PFADD s x",
        "DEL b dest dest2 bf h fresh m s",
    ] {
        s.push(c(0, line));
    }
    s.push(c(0, "CONFIG SET notify-keyspace-events KEm"));
    for line in [
        "GETBIT nothing 0",
        "BITCOUNT nothing",
        "BITPOS nothing 1",
        "BITFIELD_RO nothing GET u8 0",
        "BITFIELD nothing GET u8 0",
        "PFCOUNT nothing",
        "PFCOUNT nothing other",
    ] {
        s.push(c(0, line));
    }
    assert_same_as_redis(2, &s).await;
}

/// Sharded pub/sub in cluster mode, against `redis-server --cluster-enabled yes` on one node:
/// CROSSSLOT, the `sunsubscribe` pushes when the node gives up a slot, unserved slots, and
/// `cluster-allow-pubsubshard-when-down`.
#[tokio::test]
async fn sharded_pubsub_in_cluster_mode_matches_redis() {
    let slot = reredis::cluster::slots::key_hash_slot(b"u").to_string();
    let script = vec![
        c(1, "CLUSTER ADDSLOTSRANGE 0 16383"),
        wait_until(1, "CLUSTER INFO", "cluster_state:ok"),
        c(0, "SSUBSCRIBE foo bar"),
        c(0, "SSUBSCRIBE {u}b {u}a"),
        c(0, "SSUBSCRIBE {u}c"),
        c(0, "GET x"),
        c(1, "SPUBLISH {u}a hi"),
        c(1, "SPUBLISH foo nobody"),
        c(1, "SPUBLISH foo bar"),
        c(1, "PUBSUB SHARDNUMSUB {u}a {u}b foo"),
        c(1, "PUBSUB SHARDCHANNELS {u}a"),
        c(1, "PUBLISH {u}a plain"),
        c(0, "SUNSUBSCRIBE {u}c"),
        // The node gives up the slot: its shard channels are unsubscribed, and with a slot
        // unserved the cluster is down.
        ca(1, &["CLUSTER", "DELSLOTS", &slot]),
        c(0, "PING"),
        c(1, "SPUBLISH {u}a gone"),
        c(1, "SSUBSCRIBE {u}a"),
        c(1, "GET foo"),
        c(1, "SPUBLISH foo x"),
        c(0, "SSUBSCRIBE foo"),
        c(1, "SPUBLISH foo down"),
        c(1, "CONFIG GET cluster-allow-pubsubshard-when-down"),
        c(1, "CONFIG SET cluster-allow-pubsubshard-when-down no"),
        c(1, "SPUBLISH foo x"),
        c(1, "SSUBSCRIBE foo"),
        c(1, "CONFIG SET cluster-allow-pubsubshard-when-down yes"),
        ca(1, &["CLUSTER", "ADDSLOTS", &slot]),
        wait_until(1, "CLUSTER INFO", "cluster_state:ok"),
        c(1, "SPUBLISH {u}a back"),
        c(1, "SPUBLISH foo up"),
        c(0, "SUNSUBSCRIBE"),
    ];
    assert_same_as_redis_cluster(2, &script).await;
}
