//! ACL: users, passwords, and the commands, keys and channels each may use, compared byte for
//! byte with a real `redis-server` (transcripts of several connections), and what is not
//! byte-comparable (the log's ages and client descriptions, a killed connection) checked on
//! its own.

mod common;

use common::session::{Conn, assert_same_as_redis, c, ca, q};

#[tokio::test]
async fn users_and_their_rules_match_redis() {
    assert_same_as_redis(
        1,
        &[
            c(0, "ACL LIST"),
            c(0, "ACL USERS"),
            c(0, "ACL WHOAMI"),
            c(0, "ACL SETUSER alice"),
            c(0, "ACL LIST"),
            c(0, "ACL GETUSER alice"),
            ca(
                0,
                &[
                    "ACL", "SETUSER", "alice", "on", ">p1", ">p2", "<p2", "~foo*", "%R~bar*",
                    "%W~baz*", "&ch*", "+@hash", "-hdel", "+config|get", "-@dangerous",
                ],
            ),
            // (One single-command rule per user: Redis lists several in its command
            // dictionary's hash order, which a transcript cannot pin down.)
            c(0, "ACL SETUSER dave on nopass -@all +client|id"),
            c(0, "ACL GETUSER dave"),
            c(0, "ACL SETUSER erin on nopass ~* -@all +select|0"),
            c(0, "ACL LIST"),
            c(0, "ACL GETUSER alice"),
            c(0, "ACL LIST"),
            c(0, "ACL SETUSER bob on nopass allkeys allchannels +@all -debug"),
            c(0, "ACL GETUSER bob"),
            c(0, "ACL SETUSER carol on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 resetchannels &news ~* -@all +@read"),
            c(0, "ACL GETUSER carol"),
            c(0, "ACL SETUSER carol reset"),
            c(0, "ACL GETUSER carol"),
            c(0, "ACL USERS"),
            // Errors: nothing changes when one rule is wrong.
            c(0, "ACL SETUSER alice +nosuch"),
            c(0, "ACL SETUSER alice -@nosuch"),
            c(0, "ACL SETUSER alice +config|get|x"),
            c(0, "ACL SETUSER alice +debug|"),
            c(0, "ACL SETUSER alice bogus"),
            c(0, "ACL SETUSER alice <notapassword"),
            c(0, "ACL SETUSER alice #abc"),
            c(0, "ACL SETUSER alice %X~foo"),
            c(0, "ACL SETUSER bob ~foo"),
            c(0, "ACL SETUSER bob &foo"),
            ca(0, &["ACL", "SETUSER", "a b"]),
            ca(0, &["ACL", "SETUSER", "a\u{b}b"]),
            c(0, "ACL SETUSER alice on +set bogus"),
            c(0, "ACL GETUSER alice"),
            c(0, "ACL GETUSER nobody"),
            // Dry runs: commands, keys (read and write), channels, subcommands, first args.
            c(0, "ACL DRYRUN alice GET foo1"),
            c(0, "ACL DRYRUN alice GET bar1"),
            c(0, "ACL DRYRUN alice HSET bar1 f v"),
            c(0, "ACL DRYRUN alice HSET baz1 f v"),
            c(0, "ACL DRYRUN alice HGET baz1 f"),
            c(0, "ACL DRYRUN alice HDEL foo f"),
            c(0, "ACL DRYRUN alice SET foo v"),
            c(0, "ACL DRYRUN alice CONFIG GET maxmemory"),
            c(0, "ACL DRYRUN dave CLIENT ID"),
            c(0, "ACL DRYRUN dave CLIENT KILL ID 1"),
            c(0, "ACL DRYRUN erin SELECT 0"),
            c(0, "ACL DRYRUN erin SELECT 1"),
            c(0, "ACL DRYRUN alice AUTH x"),
            c(0, "ACL DRYRUN bob DEBUG SLEEP 0"),
            c(0, "ACL DRYRUN bob GET anything"),
            c(0, "ACL DRYRUN carol GET anything"),
            c(0, "ACL DRYRUN nobody GET a"),
            c(0, "ACL DRYRUN alice NOSUCH"),
            c(0, "ACL DRYRUN alice GET"),
            c(0, "ACL DELUSER default"),
            c(0, "ACL DELUSER alice nobody"),
            c(0, "ACL USERS"),
            c(0, "ACL CAT"),
            c(0, "ACL CAT bogus"),
            c(0, "ACL LOAD"),
            c(0, "ACL SAVE"),
            c(0, "ACL HELP"),
            c(0, "ACL GENPASS 0"),
            c(0, "ACL GENPASS 5000"),
            c(0, "ACL GENPASS abc"),
            c(0, "ACL NOSUCH"),
        ],
    )
    .await;
}

/// What a user may run, for real: AUTH as the user, then commands, keys and channels allowed
/// and refused (NOPERM), inside MULTI too (the transaction fails), and AUTH's failures.
#[tokio::test]
async fn permissions_are_enforced_as_in_redis() {
    assert_same_as_redis(
        2,
        &[
            c(0, "ACL SETUSER app on >secret ~app:* &app:* -@all +@read +@write +@pubsub -flushall +multi +exec +auth +ping"),
            c(0, "ACL SETUSER off-user off >pw +@all ~*"),
            c(1, "AUTH app wrong"),
            c(1, "AUTH nobody secret"),
            c(1, "AUTH off-user pw"),
            c(1, "AUTH app secret"),
            c(1, "ACL WHOAMI"),
            c(1, "SET app:1 v"),
            c(1, "GET app:1"),
            c(1, "SET other v"),
            c(1, "MSET app:2 x other y"),
            c(1, "FLUSHALL"),
            c(1, "CONFIG GET maxmemory"),
            c(1, "PUBLISH app:news hello"),
            c(1, "PUBLISH news hello"),
            c(1, "MULTI"),
            // Not allowed inside MULTI comes before the user's permissions.
            c(1, "SAVE"),
            c(1, "SET app:3 v"),
            c(1, "GET other"),
            c(1, "EXEC"),
            c(1, "GET app:3"),
            // A change to the user applies to its connections at once.
            c(0, "ACL SETUSER app -get"),
            c(1, "GET app:1"),
            // SORT's BY and GET read keys no check saw: only for a user that may read any.
            c(0, "ACL SETUSER app +sort"),
            c(1, "RPUSH app:list 3 1 2"),
            c(1, "SORT app:list"),
            c(1, "SORT app:list BY app:w_*"),
            c(1, "SORT app:list GET app:o_*"),
            c(1, "SORT app:list BY nosort"),
            // EXEC checks again what was queued: the rules may have changed meanwhile.
            c(1, "MULTI"),
            c(1, "GET app:1"),
            c(1, "SET app:9 v"),
            c(0, "ACL SETUSER app -set"),
            c(1, "EXEC"),
            c(0, "ACL SETUSER app +set"),
            c(0, "ACL SETUSER app +get resetkeys %R~app:*"),
            c(1, "GET app:1"),
            c(1, "SET app:1 w"),
            // A script runs its commands as its caller's user.
            c(0, "ACL SETUSER app +eval +del"),
            ca(1, &["EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "app:s"]),
            ca(1, &["EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "other"]),
            ca(1, &["EVAL", "return redis.call('FLUSHALL')", "0"]),
            ca(1, &["EVAL", "return redis.pcall('GET', 'secret')", "0"]),
            ca(1, &["EVAL", "return redis.acl_check_cmd('SET', 'app:x', 'v')", "0"]),
            ca(1, &["EVAL", "return redis.acl_check_cmd('SET', 'other', 'v')", "0"]),
            ca(1, &["EVAL", "return redis.acl_check_cmd('FLUSHALL')", "0"]),
            ca(1, &["EVAL", "return redis.acl_check_cmd('CONFIG', 'GET', 'x')", "0"]),
            ca(1, &["EVAL", "return redis.acl_check_cmd('NOSUCH')", "0"]),
            c(1, "AUTH default x"),
            c(0, "AUTH x"),
            c(0, "ACL SETUSER default >dpass"),
            c(0, "AUTH dpass"),
            c(0, "AUTH default dpass"),
            c(0, "ACL SETUSER default nopass"),
            c(0, "ACL LOG 0"),
            c(0, "ACL LOG RESET"),
            c(0, "ACL LOG"),
        ],
    )
    .await;
}

/// Selectors (Redis 7.0): `(...)` rules, each allowing commands on its own keys and
/// channels; a command runs when one selector allows it whole, and a refusal names what the
/// closest selector lacked.
#[tokio::test]
async fn selectors_match_redis() {
    assert_same_as_redis(
        2,
        &[
            ca(
                0,
                &[
                    "ACL",
                    "SETUSER",
                    "sel",
                    "on",
                    ">pw",
                    "+ping",
                    "(+get ~r*)",
                    "(+set",
                    "%W~w*)",
                    "(+@read",
                    "+sort",
                    "~*",
                    "&news)",
                ],
            ),
            c(0, "ACL GETUSER sel"),
            c(0, "ACL LIST"),
            c(0, "ACL DRYRUN sel GET r1"),
            c(0, "ACL DRYRUN sel GET w1"),
            c(0, "ACL DRYRUN sel SET w1 v"),
            c(0, "ACL DRYRUN sel SET r1 v"),
            c(0, "ACL DRYRUN sel COPY w1 r1"),
            c(0, "ACL DRYRUN sel DEL w1"),
            c(0, "ACL DRYRUN sel PUBLISH news x"),
            c(0, "ACL DRYRUN sel SUBSCRIBE news"),
            c(1, "AUTH sel pw"),
            c(1, "SET w1 v"),
            c(1, "GET w1"),
            c(1, "SET r1 v"),
            c(1, "RPUSH w2 1"),
            c(1, "SORT w1 BY nosort"),
            c(0, "RPUSH list 2 1"),
            c(1, "SORT list BY w*"),
            c(1, "PUBLISH news hi"),
            c(1, "PUBLISH other hi"),
            // Errors: an unclosed selector, a rule a selector cannot hold, an empty one.
            c(0, "ACL SETUSER sel (+get ~x"),
            c(0, "ACL SETUSER sel (+get on)"),
            c(0, "ACL SETUSER sel (+nosuch)"),
            c(0, "ACL SETUSER sel ()"),
            c(0, "ACL GETUSER sel"),
            c(0, "ACL SETUSER sel clearselectors"),
            c(0, "ACL GETUSER sel"),
            // (Back to default first: the transcript syncs each connection with a PING.)
            c(1, "AUTH default x"),
            c(0, "ACL SETUSER sel (~a* +get) reset"),
            c(0, "ACL LIST"),
            // acl-pubsub-default: new users, and `reset`, get every channel.
            c(0, "CONFIG SET acl-pubsub-default allchannels"),
            c(0, "CONFIG GET acl-pubsub-default"),
            c(0, "ACL SETUSER fresh on nopass +@all"),
            c(0, "ACL DRYRUN fresh PUBLISH anything x"),
            c(0, "ACL SETUSER sel reset"),
            c(0, "ACL LIST"),
            c(0, "ACL SETUSER fresh3 on nopass (+subscribe ~k)"),
            c(0, "ACL SETUSER fresh3 (&foo)"),
            c(0, "ACL GETUSER fresh3"),
            c(0, "CONFIG SET acl-pubsub-default resetchannels"),
            c(0, "ACL SETUSER fresh2"),
            c(0, "ACL SETUSER fresh reset"),
            c(0, "ACL LIST"),
            c(0, "CONFIG SET acl-pubsub-default bogus"),
            // A word that opens a selector inside another starts it again, as Redis.
            ca(0, &["ACL", "SETUSER", "m", "(+get", "(~k", "+set)"]),
            c(0, "ACL GETUSER m"),
            // A protected command is refused for that before the user's permissions.
            c(0, "ACL SETUSER weak on nopass +@read +ping"),
            c(1, "AUTH weak x"),
            c(1, "MODULE LOAD /x.so"),
            c(1, "DEBUG SLEEP 0"),
            c(1, "AUTH default x"),
        ],
    )
    .await;
}

/// Read and write key rules on commands whose keys' access depends on their arguments (SORT's
/// STORE, BITFIELD's GETs, MIGRATE's KEYS after an AUTH password), and shard channels, which
/// channel rules judge, not key rules.
#[tokio::test]
async fn argument_dependent_key_access_matches_redis() {
    assert_same_as_redis(
        1,
        &[
            c(
                0,
                "ACL SETUSER odd on nopass %R~read* %W~write* ~rw* &chan +@all",
            ),
            c(0, "ACL DRYRUN odd SORT read STORE write"),
            c(0, "ACL DRYRUN odd SORT write STORE read"),
            c(
                0,
                "ACL DRYRUN odd BITFIELD read GET u4 0 OVERFLOW SAT GET u4 4",
            ),
            c(0, "ACL DRYRUN odd BITFIELD read GET u4 0 SET u4 0 1"),
            c(0, "ACL DRYRUN odd BITFIELD write INCRBY u4 0 1"),
            c(0, "ACL DRYRUN odd BITFIELD_RO read GET u4 0"),
            ca(
                0,
                &[
                    "ACL", "DRYRUN", "odd", "MIGRATE", "h", "1", "", "0", "5000", "AUTH", "KEYS",
                    "KEYS", "rw",
                ],
            ),
            ca(
                0,
                &[
                    "ACL", "DRYRUN", "odd", "MIGRATE", "h", "1", "", "0", "5000", "AUTH2", "KEYS",
                    "KEYS", "KEYS", "rw",
                ],
            ),
            c(0, "ACL DRYRUN odd SPUBLISH chan x"),
            c(0, "ACL DRYRUN odd SPUBLISH other x"),
            c(0, "ACL DRYRUN odd SSUBSCRIBE chan"),
            c(0, "ACL DRYRUN odd SSUBSCRIBE chan other"),
            c(0, "ACL DRYRUN odd SUNSUBSCRIBE other"),
            c(0, "COMMAND GETKEYSANDFLAGS SORT read STORE write"),
            c(0, "COMMAND GETKEYSANDFLAGS BITFIELD k GET u4 0"),
            c(
                0,
                "COMMAND GETKEYSANDFLAGS BITFIELD k GET u4 0 INCRBY u4 0 1",
            ),
        ],
    )
    .await;
}

/// The ACL log: what was denied, to whom, in which context, counted when it repeats.
#[tokio::test]
async fn denials_are_logged() {
    let node = common::start_node(&[]).await;
    let addr = node.resp_addr();
    let mut admin = Conn::connect(addr).await;
    let mut app = Conn::connect(addr).await;
    admin
        .call_str(&[
            "ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+multi",
        ])
        .await;
    assert_eq!(
        app.call_str(&["AUTH", "app", "bad"]).await.chars().next(),
        Some('-')
    );
    app.call_str(&["AUTH", "app", "pw"]).await;
    for _ in 0..3 {
        app.call_str(&["SET", "app:1", "v"]).await;
    }
    app.call_str(&["GET", "secret"]).await;
    app.call_str(&["MULTI"]).await;
    app.call_str(&["SET", "app:1", "v"]).await;
    let log = admin.call_str(&["ACL", "LOG"]).await;
    // Passwords never reach the slow log.
    admin
        .call_str(&["CONFIG", "SET", "slowlog-log-slower-than", "0"])
        .await;
    let mut other_conn = Conn::connect(addr).await;
    other_conn.call_str(&["AUTH", "app", "pw"]).await;
    admin
        .call_str(&["ACL", "SETUSER", "temp", ">topsecret"])
        .await;
    let slow = admin.call_str(&["SLOWLOG", "GET"]).await;
    assert!(slow.contains("(redacted)"), "{slow}");
    assert!(
        !slow.contains("topsecret") && !slow.contains("$2\r\npw\r\n"),
        "{slow}"
    );
    admin
        .call_str(&["CONFIG", "SET", "slowlog-log-slower-than", "10000"])
        .await;
    // Newest first: (reason, context, object, username, count).
    let entries: Vec<(String, String, String, String, String)> = log
        .split("$5\r\ncount\r\n:")
        .skip(1)
        .map(|e| {
            let field = |name: &str| -> String {
                let at = e.find(&format!("\r\n{name}\r\n")).unwrap() + name.len() + 4;
                let rest = &e[at..];
                let body = rest.split("\r\n").nth(1).unwrap();
                body.to_string()
            };
            (
                field("reason"),
                field("context"),
                field("object"),
                field("username"),
                e.split("\r\n").next().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("command", "multi", "set", "app", "1"),
        ("key", "toplevel", "secret", "app", "1"),
        ("command", "toplevel", "set", "app", "3"),
        ("auth", "toplevel", "AUTH", "app", "1"),
    ];
    let got: Vec<(&str, &str, &str, &str, &str)> = entries
        .iter()
        .map(|(a, b, c, d, e)| (a.as_str(), b.as_str(), c.as_str(), d.as_str(), e.as_str()))
        .collect();
    assert_eq!(got, want, "{log}");
    assert!(log.contains("client-info"), "{log}");
    assert!(log.contains("user=app"), "{log}");
    // CLIENT LIST names the user.
    let list = admin.call_str(&["CLIENT", "LIST"]).await;
    assert!(list.contains("user=app "), "{list}");
    // CLIENT KILL USER closes the connections of one user.
    admin
        .call_str(&["ACL", "SETUSER", "other", "on", "nopass", "+@all", "~*"])
        .await;
    let mut other = Conn::connect(addr).await;
    other.call_str(&["AUTH", "other", "x"]).await;
    assert_eq!(
        admin.call_str(&["CLIENT", "KILL", "USER", "nobody"]).await,
        "-ERR No such user 'nobody'\r\n"
    );
    assert_eq!(
        admin.call_str(&["CLIENT", "KILL", "USER", "other"]).await,
        ":1\r\n"
    );
    assert!(
        other
            .read_to_close(std::time::Duration::from_secs(5))
            .await
            .is_some()
    );
    // Deleting the user closes its connections.
    assert_eq!(admin.call_str(&["ACL", "DELUSER", "app"]).await, ":1\r\n");
    assert!(
        app.read_to_close(std::time::Duration::from_secs(5))
            .await
            .is_some(),
        "the deleted user's connection stayed open"
    );
    node.shutdown().await;
}

/// Rules Redis takes as written: `%R` without a pattern, a first argument's case.
#[tokio::test]
async fn rules_taken_as_written_match_redis() {
    assert_same_as_redis(
        1,
        &[
            c(0, "ACL SETUSER u %R"),
            c(0, "ACL GETUSER u"),
            c(0, "ACL SETUSER u2 -@all +select|Abc +select|aBC"),
            c(0, "ACL GETUSER u2"),
            c(0, "ACL LIST"),
        ],
    )
    .await;
}

/// What one server answers to HELLO on a connection that has not authenticated, once no
/// password is required any more (a password was when it started over with RESET), and
/// whether a name HELLO set before its refusal stays.
async fn hello_story(addr: std::net::SocketAddr) -> Vec<String> {
    let mut admin = Conn::connect(addr).await;
    let mut c = Conn::connect(addr).await;
    let mut seen = Vec::new();
    admin
        .call_str(&["CONFIG", "SET", "requirepass", "sekret"])
        .await;
    seen.push(c.call_str(&["RESET"]).await);
    seen.push(c.call_str(&["GET", "k"]).await);
    seen.push(admin.call_str(&["CONFIG", "SET", "requirepass", ""]).await);
    seen.push(c.call_str(&["GET", "k"]).await);
    seen.push(c.call_str(&["HELLO", "2", "SETNAME", "early"]).await);
    seen.push(c.call_str(&["AUTH", "default", "anything"]).await);
    seen.push(c.call_str(&["CLIENT", "GETNAME"]).await);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_needs_an_authenticated_connection_as_in_redis() {
    let redis = common::redis_server::RedisServer::start().await;
    let node = common::start_node(&[]).await;
    let want = hello_story(redis.addr()).await;
    assert!(want[4].starts_with("-NOAUTH"), "{want:?}");
    assert_eq!(hello_story(node.resp_addr()).await, want);
    node.shutdown().await;
}

/// What one server answers: each category's commands as a sorted set (Redis lists them in
/// its dictionary's order), and the context of an AUTH failure that EXEC ran.
async fn categories_and_auth_context(addr: std::net::SocketAddr) -> (Vec<String>, String) {
    let mut conn = Conn::connect(addr).await;
    let cats = conn.call_str(&["ACL", "CAT"]).await;
    let mut seen = Vec::new();
    for cat in cats
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with(['*', '$']))
    {
        let reply = conn.call_str(&["ACL", "CAT", cat]).await;
        let mut names: Vec<&str> = reply
            .split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with(['*', '$']))
            .collect();
        names.sort_unstable();
        seen.push(format!("{cat}: {}", names.join(" ")));
    }
    conn.call_str(&["ACL", "SETUSER", "bob", "on", ">pw"]).await;
    conn.call_str(&["MULTI"]).await;
    conn.call_str(&["AUTH", "bob", "wrong"]).await;
    conn.call_str(&["EXEC"]).await;
    let log = conn.call_str(&["ACL", "LOG", "1"]).await;
    let context = log
        .split("\r\ncontext\r\n")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").nth(1))
        .unwrap_or("<none>")
        .to_string();
    (seen, context)
}

/// ACL CAT lists containers in `@slow` (Redis's implicit category), and an AUTH run by EXEC
/// is logged in the "multi" context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_and_the_log_context_of_auth_in_exec_match_redis() {
    let redis = common::redis_server::RedisServer::start().await;
    let node = common::start_node(&[]).await;
    let want = categories_and_auth_context(redis.addr()).await;
    let got = categories_and_auth_context(node.resp_addr()).await;
    assert_eq!(want.1, "multi");
    assert_eq!(got.1, want.1, "the context of AUTH inside EXEC");
    // Our own commands (CLUSTER DRAIN) are left out: Redis has no entry for them.
    let redis_has: std::collections::HashSet<&str> = want
        .0
        .iter()
        .flat_map(|line| line.split(' ').skip(1))
        .collect();
    assert_eq!(got.0.len(), want.0.len());
    for (g, w) in got.0.iter().zip(&want.0) {
        let ours: Vec<&str> = g
            .split(' ')
            .enumerate()
            .filter(|&(i, name)| i == 0 || redis_has.contains(name))
            .map(|(_, name)| name)
            .collect();
        // SCRIPT DEBUG (Lua's debugger) is not implemented: README says so.
        let theirs: Vec<&str> = w.split(' ').filter(|&n| n != "script|debug").collect();
        assert_eq!(ours.join(" "), theirs.join(" "));
    }
    node.shutdown().await;
}

/// `requirepass` is the default user's password, as in Redis.
#[tokio::test]
async fn requirepass_is_the_default_users_password() {
    assert_same_as_redis(
        2,
        &[
            q(0, "CONFIG SET requirepass sekret"),
            c(1, "GET k"),
            c(1, "AUTH wrong"),
            c(1, "AUTH sekret"),
            c(1, "GET k"),
            c(0, "ACL GETUSER default"),
            q(0, "CONFIG SET requirepass"),
        ],
    )
    .await;
}

/// What a server does with an `aclfile` (whose path is `path`, already holding alice and
/// default): the users it started with, ACL LOAD of a wrong file (nothing changes) and of a
/// good one (a connection of a user it replaced is closed), ACL SAVE's file, and ACL SAVE that
/// cannot write.
async fn acl_file_story(addr: std::net::SocketAddr, path: &std::path::Path) -> Vec<String> {
    let mut seen = Vec::new();
    let mut admin = Conn::connect(addr).await;
    let mut alice = Conn::connect(addr).await;
    seen.push(admin.call_str(&["ACL", "LIST"]).await);
    seen.push(alice.call_str(&["AUTH", "alice", "pw"]).await);
    seen.push(alice.call_str(&["ACL", "WHOAMI"]).await);
    std::fs::write(
        path,
        "user bob on >x +get\nfoo bar\nuser  carol\nuser bob on\n\
         user dave +nosuch +@nocat &x\nuser erin on <nopw bogus\n\n  \n",
    )
    .expect("write acl file");
    seen.push(admin.call_str(&["ACL", "LOAD"]).await);
    seen.push(admin.call_str(&["ACL", "USERS"]).await);
    seen.push(alice.call_str(&["ACL", "WHOAMI"]).await);
    // No `default` line: the default user is Redis's own again.
    std::fs::write(path, "user bob on >x ~k* +get\r\n\n\tuser carol off\n").expect("write");
    seen.push(admin.call_str(&["ACL", "LOAD"]).await);
    seen.push(admin.call_str(&["ACL", "LIST"]).await);
    seen.push(format!(
        "alice's connection after the load: {:?}",
        alice.frame().await
    ));
    seen.push(admin.call_str(&["ACL", "WHOAMI"]).await);
    seen.push(
        admin
            .call_str(&[
                "ACL", "SETUSER", "zed", "on", ">zz", "%R~r*", "+@read", "-get", "&ch*", "(+set",
                "~w*)",
            ])
            .await,
    );
    seen.push(admin.call_str(&["ACL", "SAVE"]).await);
    seen.push(std::fs::read_to_string(path).expect("saved file"));
    // The saved file loads back to the same users.
    seen.push(admin.call_str(&["ACL", "LOAD"]).await);
    seen.push(admin.call_str(&["ACL", "LIST"]).await);
    let mut bob = Conn::connect(addr).await;
    seen.push(bob.call_str(&["AUTH", "bob", "x"]).await);
    seen.push(bob.call_str(&["GET", "k1"]).await);
    seen.push(bob.call_str(&["SET", "k1", "v"]).await);
    let mut zed = Conn::connect(addr).await;
    seen.push(zed.call_str(&["AUTH", "zed", "zz"]).await);
    seen.push(zed.call_str(&["SET", "w1", "v"]).await);
    seen.push(zed.call_str(&["SET", "r1", "v"]).await);
    // A directory that is gone: the save fails and says so.
    let parent = path.parent().expect("parent");
    let moved = parent.with_extension("moved");
    std::fs::rename(parent, &moved).expect("move the directory away");
    seen.push(admin.call_str(&["ACL", "SAVE"]).await);
    std::fs::rename(&moved, parent).expect("move it back");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_file_loads_and_saves_as_redis() {
    let start = "user alice on >pw ~* +@all\nuser default on nopass ~* &* +@all\n";
    // The same path for both servers, one after the other: the errors name the file.
    let dir = tempfile::tempdir().expect("tempdir");
    let acl_dir = dir.path().join("acl");
    std::fs::create_dir(&acl_dir).expect("mkdir");
    let path = acl_dir.join("users.acl");
    let path_str = path.to_str().expect("utf-8 path").to_string();

    std::fs::write(&path, start).expect("write");
    let redis =
        common::redis_server::RedisServer::start_with(&["--aclfile", &path_str], None).await;
    let theirs = acl_file_story(redis.addr(), &path).await;
    drop(redis);

    std::fs::write(&path, start).expect("write");
    let node = common::start_node(&[("aclfile", &path_str)]).await;
    let ours = acl_file_story(node.resp_addr(), &path).await;
    node.shutdown().await;

    common::session::assert_same_lines(&ours, &theirs);
    // The story saw what it is about (so equal transcripts are not two empty ones).
    assert!(
        ours[3].contains("users.acl:2 should start with user keyword"),
        "{ours:?}"
    );
    assert!(
        ours[8].contains("None"),
        "alice's connection was closed: {ours:?}"
    );
    assert!(ours[12].contains("user zed on #"), "{ours:?}");
}

/// Why a node with `aclfile` at `path` refuses to start (it must).
async fn start_up_error(path: &std::path::Path) -> String {
    let mut c = reredis::config::Config::ephemeral();
    let mut v = c.values.clone();
    v.set(
        "aclfile",
        path.to_str().expect("utf-8"),
        reredis::config::Origin::Default,
    )
    .expect("setting");
    c = reredis::config::Config::from_values(v);
    let err = reredis::start(c).await.err().expect("start-up refused");
    format!("{err:#}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_acl_file_stops_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = start_up_error(&dir.path().join("missing.acl")).await;
    assert!(err.contains("Error loading ACLs, opening file"), "{err}");
    let wrong = dir.path().join("wrong.acl");
    std::fs::write(&wrong, "user alice on +nosuch\n").expect("write");
    let err = start_up_error(&wrong).await;
    assert!(
        err.contains("wrong.acl:1: Error in applying operation '+nosuch'"),
        "{err}"
    );
}

/// Whether `c` still answers (a PING, in subscribe mode too) or was closed.
async fn alive(c: &mut Conn) -> &'static str {
    c.send(&[b"PING"]).await;
    match c.frame().await {
        Some(_) => "alive",
        None => "closed",
    }
}

/// Three subscribers of one user (a channel, a pattern, a shard channel) while its channel
/// rules narrow step by step: only those with a subscription no longer allowed are closed.
async fn subscribers_story(addr: std::net::SocketAddr) -> Vec<String> {
    let mut seen = Vec::new();
    let mut admin = Conn::connect(addr).await;
    seen.push(
        admin
            .call_str(&[
                "ACL", "SETUSER", "ps", "on", "nopass", "+@all", "&foo", "&b*", "&s1",
            ])
            .await,
    );
    let mut subs = Vec::new();
    for (cmd, ch) in [
        ("SUBSCRIBE", "foo"),
        ("PSUBSCRIBE", "b*"),
        ("SSUBSCRIBE", "s1"),
    ] {
        let mut c = Conn::connect(addr).await;
        seen.push(c.call_str(&["AUTH", "ps", "x"]).await);
        seen.push(c.call_str(&[cmd, ch]).await);
        subs.push(c);
    }
    let mut last = ["alive"; 3];
    // Each step drops one rule (a pattern subscription is judged by its literal rule).
    for rules in [
        &["resetchannels", "&foo", "&b*", "&s1", "&extra"][..],
        &["resetchannels", "&foo", "&b*"],
        &["resetchannels", "&foo", "&bar*"],
        &["(&foo)", "resetchannels"],
        &["clearselectors"],
    ] {
        let mut args = vec!["ACL", "SETUSER", "ps"];
        args.extend_from_slice(rules);
        seen.push(admin.call_str(&args).await);
        let mut states = Vec::new();
        for (c, was) in subs.iter_mut().zip(&mut last) {
            // (A closed connection is not written to again.)
            if *was == "alive" {
                *was = alive(c).await;
            }
            states.push(*was);
        }
        seen.push(format!("after {rules:?}: {states:?}"));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_subscribers_that_lost_a_channel_are_closed_as_in_redis() {
    let redis = common::redis_server::RedisServer::start_with(&[], None).await;
    let theirs = subscribers_story(redis.addr()).await;
    drop(redis);
    let node = common::start_node(&[]).await;
    let ours = subscribers_story(node.resp_addr()).await;
    node.shutdown().await;
    common::session::assert_same_lines(&ours, &theirs);
    // The story saw what it is about: survivors, then each closed in turn.
    assert!(
        ours.iter()
            .any(|l| l.contains(r#"["alive", "alive", "closed"]"#)),
        "{ours:?}"
    );
    assert!(
        ours.iter()
            .any(|l| l.contains(r#"["closed", "closed", "closed"]"#)),
        "{ours:?}"
    );
}

/// Users declared in the configuration (Redis's `user` directive; ours: the `user` setting,
/// one per line) against a redis-server started with the same `--user` lines.
async fn configured_users_story(addr: std::net::SocketAddr) -> Vec<String> {
    let mut admin = Conn::connect(addr).await;
    let mut alice = Conn::connect(addr).await;
    vec![
        admin.call_str(&["ACL", "LIST"]).await,
        admin.call_str(&["CONFIG", "GET", "user"]).await,
        alice.call_str(&["AUTH", "alice", "pw"]).await,
        alice.call_str(&["SET", "a1", "x"]).await,
        alice.call_str(&["SET", "b1", "x"]).await,
        alice.call_str(&["GET", "b1"]).await,
        alice.call_str(&["ACL", "WHOAMI"]).await,
        admin.call_str(&["AUTH", "bob", "x"]).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_declared_in_the_configuration_match_redis() {
    let redis = common::redis_server::RedisServer::start_with(
        &[
            "--user", "alice", "on", ">pw", "~a*", "+set", "(+get", "~b*)", "--user", "bob", "off",
        ],
        None,
    )
    .await;
    let theirs = configured_users_story(redis.addr()).await;
    drop(redis);
    let node = common::start_node(&[("user", "alice on >pw ~a* +set (+get ~b*)\nbob off")]).await;
    let ours = configured_users_story(node.resp_addr()).await;
    node.shutdown().await;
    common::session::assert_same_lines(&ours, &theirs);
    assert!(ours[0].contains("user alice on #"), "{ours:?}");

    // Never together with an ACL file; a wrong rule stops start-up.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.acl");
    std::fs::write(&path, "user carol on nopass\n").expect("write");
    let start = |settings: &[(&str, &str)]| {
        let mut v = reredis::config::Config::ephemeral().values.clone();
        for (k, val) in settings {
            v.set(k, val, reredis::config::Origin::Default)
                .expect("setting");
        }
        reredis::config::Config::from_values(v)
    };
    let both = start(&[
        ("aclfile", path.to_str().expect("utf-8")),
        ("user", "alice on"),
    ]);
    let err = format!("{:#}", reredis::start(both).await.err().expect("refused"));
    assert!(
        err.contains("define either an ACL file or declare users"),
        "{err}"
    );
    let bad = start(&[("user", "alice on +nosuch")]);
    let err = format!("{:#}", reredis::start(bad).await.err().expect("refused"));
    assert!(
        err.contains("Error in user declaration '+nosuch': Unknown command"),
        "{err}"
    );
}
