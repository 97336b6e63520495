//! The deployment files, checked against real nodes:
//!
//! - every `reredis_*` metric that a Grafana panel or a Prometheus alert queries is in a live
//!   scrape of a real node (so the dashboard cannot silently show "no data");
//! - `docker-compose.yml` and the Kubernetes StatefulSet, started as processes with the same
//!   environment and command, form a cluster by themselves and serve `redis-cli -c`.
//!
//! How a container or pod becomes a process here (no Docker engine or cluster is needed):
//! - Environment: the Dockerfile's final `ENV` lines, then the service's `environment` (compose,
//!   `${VAR:-default}` taking its default) or the container's `envFrom` ConfigMap and `env`
//!   (Kubernetes: `fieldRef` to `metadata.name`, `metadata.namespace` = "default" and
//!   `status.podIP`, then `$(VAR)` expansion), then the compose `command` / pod `args` as flags.
//! - Addresses: each service or pod gets its own 127.0.0.x; its host names (the compose service
//!   name; `<pod>.reredis-headless[...]`) are rewritten to it wherever they appear as `host:port`
//!   in a seed list, and the node binds it (a container has its own interface). No /etc/hosts.
//!   A compose node learns its address from its peers, who see it as the source of its bus
//!   connections; processes on one loopback all connect from 127.0.0.1, so the test sets
//!   `cluster.announce-ip` to the address the container would have learnt.
//! - Ports: each container's client port is replaced by a free port P (with P + 10000 free for
//!   the bus), and its HTTP port by another free port: processes share one port space, containers
//!   do not. Compose publishes client ports 1:1, so the test also forwards 127.0.0.1:P to the
//!   node's 127.0.0.x:P, as Docker's port publishing does: the announced host 127.0.0.1 then
//!   reaches the node exactly as `redis-cli -c -p 6379` would on a Docker host.
//! - Volumes: `/data` is a temporary directory per service or pod, kept across a restart.
//! - Settings another issue is adding (persistence: `appendonly yes`, `appendfsync`) are passed
//!   only if this binary accepts them (`reredis --print-config` with that environment); the test
//!   says when it dropped one.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::process::{NodeProcess, cli, free_port, free_port_with_bus, http_get, reredis, wait};
use yaml_rust2::{Yaml, YamlLoader};

/// Settings of issues still in flight, dropped (with a note) when this binary refuses them.
const PENDING_SETTINGS: &[&str] = &["REREDIS_APPENDONLY", "REREDIS_APPENDFSYNC"];

fn repo_file(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml(path: &str) -> Yaml {
    YamlLoader::load_from_str(&repo_file(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{path} is empty"))
}

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a.iter().filter_map(scalar).collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// `KEY=value` pairs of the `ENV` instructions in the Dockerfile's last stage.
fn dockerfile_env() -> Vec<(String, String)> {
    let text = repo_file("Dockerfile").replace("\\\n", " ");
    let lines: Vec<&str> = text.lines().collect();
    let last_stage = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("FROM "))
        .expect("a FROM line");
    lines[last_stage..]
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("ENV "))
        .flat_map(|rest| rest.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Compose interpolation as the test runs it: `${VAR:-default}` and `${VAR-default}` take the
/// default, `${VAR}` is empty.
fn compose_interpolate(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(end) = rest[i..].find('}') else {
            break;
        };
        let inner = &rest[i + 2..i + end];
        if let Some((_, default)) = inner.split_once(":-").or_else(|| inner.split_once('-')) {
            out.push_str(default);
        }
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}

fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn env_set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value));
}

/// Drops the settings of [`PENDING_SETTINGS`] that this binary does not accept yet.
fn drop_pending_settings(env: &mut Vec<(String, String)>, args: &[String]) -> Vec<String> {
    let mut dropped = Vec::new();
    for _ in 0..=PENDING_SETTINGS.len() {
        let mut probe: Vec<String> = args.to_vec();
        probe.push("--print-config".into());
        let out = reredis(env, &probe).output().expect("reredis runs");
        if out.status.success() {
            return dropped;
        }
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let culprit = PENDING_SETTINGS
            .iter()
            .find(|v| err.contains(**v) && env_get(env, v).is_some())
            .unwrap_or_else(|| panic!("the node refuses this environment: {err}\n{env:?}"));
        eprintln!("note: this binary does not accept {culprit} yet ({err}); started without it");
        env.retain(|(k, _)| k != culprit);
        dropped.push(culprit.to_string());
    }
    panic!("still refused after dropping {dropped:?}");
}

/// One container or pod as a process: its address, ports and environment.
struct Service {
    name: String,
    ip: Ipv4Addr,
    /// The client port the deployment file declares, and the one used here.
    declared_port: u16,
    port: u16,
    http_port: u16,
    env: Vec<(String, String)>,
    args: Vec<String>,
    dir: PathBuf,
    proc: Option<NodeProcess>,
}

impl Service {
    fn start(&mut self) {
        let log = self.dir.with_extension("log");
        self.proc = Some(NodeProcess::spawn(&self.env, &self.args, &log));
        let (ip, port) = (self.ip.to_string(), self.port);
        assert!(
            wait(Duration::from_secs(15), || cli(&ip, port, &["PING"])
                == "PONG"),
            "{} did not start: {}",
            self.name,
            self.log()
        );
    }

    fn log(&self) -> String {
        self.proc
            .as_ref()
            .map(NodeProcess::log_text)
            .unwrap_or_default()
    }

    fn cli(&self, args: &[&str]) -> String {
        cli(&self.ip.to_string(), self.port, args)
    }

    fn info(&self, field: &str) -> String {
        self.cli(&["CLUSTER", "INFO"])
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn id(&self) -> String {
        self.cli(&["CLUSTER", "MYID"])
    }
}

/// A line of CLUSTER NODES: id, ip, client port, announced host name, slots served.
#[derive(Debug)]
struct NodeLine {
    id: String,
    ip: String,
    port: u16,
    hostname: String,
    slots: usize,
    ranges: Vec<(u16, u16)>,
}

fn cluster_nodes(s: &Service) -> Vec<NodeLine> {
    s.cli(&["CLUSTER", "NODES"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, hostname) = f.get(1)?.split_once(',').unwrap_or((f[1], ""));
            let (hostport, _bus) = addr.split_once('@')?;
            let (ip, port) = hostport.rsplit_once(':')?;
            let ranges: Vec<(u16, u16)> = f
                .iter()
                .skip(8)
                .filter_map(|r| match r.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => r.parse().ok().map(|s| (s, s)),
                })
                .collect();
            Some(NodeLine {
                id: f[0].to_string(),
                ip: ip.to_string(),
                port: port.parse().ok()?,
                hostname: hostname.to_string(),
                slots: ranges.iter().map(|(a, b)| (b - a + 1) as usize).sum(),
                ranges,
            })
        })
        .collect()
}

/// Whether every running node reports `cluster_state:ok` and knows `n` nodes, and the served
/// slots add up to 16384 in every view.
fn cluster_formed(services: &[&Service], n: usize) -> bool {
    services.iter().all(|s| {
        s.info("cluster_state") == "ok"
            && s.info("cluster_known_nodes") == n.to_string()
            && cluster_nodes(s).iter().map(|l| l.slots).sum::<usize>() == 16384
    })
}

/// Whether every node serves `layout[i]` at node `i` in every node's view, and says `ok`: the
/// cluster has settled, not just passed through the layout on its way elsewhere.
fn settled(nodes: &[&Service], layout: &[(u16, u16)]) -> bool {
    nodes.iter().all(|viewer| {
        let lines = cluster_nodes(viewer);
        viewer.info("cluster_state") == "ok"
            && nodes.iter().zip(layout).all(|(n, range)| {
                lines
                    .iter()
                    .any(|l| l.port == n.port && l.ranges == vec![*range])
            })
    })
}

fn describe(services: &[&Service]) -> String {
    services
        .iter()
        .map(|s| {
            format!(
                "--- {} ({}:{})\n{}\n{}\n{}",
                s.name,
                s.ip,
                s.port,
                s.cli(&["CLUSTER", "INFO"]),
                s.cli(&["CLUSTER", "NODES"]),
                s.log()
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
        .collect()
}

/// Maps a deployment's `host`, `port` to the process serving it: the test's DNS.
type Resolver<'a> = dyn Fn(&str, u16) -> Option<(Ipv4Addr, u16)> + 'a;

/// Rewrites each `host:port` of a seed list whose host names a service to that service's
/// address and port.
fn rewrite_seeds(seeds: &str, resolve: &Resolver) -> String {
    seeds
        .split(',')
        .map(|seed| {
            let seed = seed.trim();
            let (hostport, bus) = match seed.split_once('@') {
                Some((hp, b)) => (hp, Some(b)),
                None => (seed, None),
            };
            let (host, port) = hostport.rsplit_once(':').expect("seed is host:port");
            let port: u16 = port.parse().expect("seed port");
            let (ip, port) =
                resolve(host, port).unwrap_or_else(|| panic!("seed {seed} names no service"));
            assert!(bus.is_none(), "seeds with an explicit bus port: map it too");
            format!("{ip}:{port}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Docker's port publishing: connections to `from` are relayed to `to`.
struct Forwarder {
    stop: Arc<AtomicBool>,
    from: SocketAddr,
}

impl Forwarder {
    fn start(from: SocketAddr, to: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind(from).expect("published port is free");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
                    continue;
                };
                for (mut a, mut b) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut a, &mut b);
                        let _ = b.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Forwarder { stop, from }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.from, Duration::from_millis(200));
    }
}

fn loopback(last: u8) -> Ipv4Addr {
    let ip = Ipv4Addr::new(127, 0, 0, last);
    assert!(
        TcpListener::bind((ip, 0)).is_ok(),
        "cannot bind {ip}: the test needs the whole 127.0.0.0/8 on loopback"
    );
    ip
}

/// Writes `count` keys through `redis-cli -c` on `entry`, returning them.
fn write_keys(host: &str, port: u16, count: usize) -> Vec<String> {
    let keys: Vec<String> = (0..count).map(|i| format!("deploy:key:{i}")).collect();
    for k in &keys {
        let reply = cli(host, port, &["-c", "SET", k, &format!("value of {k}")]);
        assert_eq!(reply, "OK", "SET {k} through {host}:{port}");
    }
    keys
}

fn read_keys(host: &str, port: u16, keys: &[String]) -> Vec<String> {
    keys.iter()
        .filter(|k| cli(host, port, &["-c", "GET", k]) != format!("value of {k}"))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------

/// `reredis_*` names in a PromQL expression.
fn metric_names(expr: &str, out: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("reredis_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
        {
            end += 1;
        }
        if boundary {
            out.insert(expr[start..end].to_string());
        }
        i = end;
    }
}

fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| dashboard_exprs(x, out)),
        _ => {}
    }
}

#[test]
fn every_metric_the_dashboard_and_alerts_query_is_scraped() {
    let mut queried = BTreeSet::new();
    let mut exprs = Vec::new();
    for entry in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards"))
            .unwrap()
    {
        let path = entry.unwrap().path();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard JSON");
        dashboard_exprs(&json, &mut exprs);
    }
    let rules = yaml("deploy/prometheus/alerts.yml");
    for group in rules["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            exprs.push(scalar(&rule["expr"]).expect("expr"));
        }
    }
    for e in &exprs {
        metric_names(e, &mut queried);
    }
    assert!(
        queried.len() >= 20,
        "too few metrics found in the queries: {queried:?}"
    );

    // A clustered node that has run a few commands (a hit, a miss, an error) exports every family.
    let dir = tempfile::tempdir().unwrap();
    let (_node, port, http) = loopback_node(dir.path(), &[]);
    cli("127.0.0.1", port, &["SET", "k", "v"]);
    cli("127.0.0.1", port, &["GET", "k"]);
    cli("127.0.0.1", port, &["GET", "missing"]);
    cli("127.0.0.1", port, &["INCR", "k"]);
    let (code, body) =
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, http)), "/metrics").expect("scrape");
    assert_eq!(code, 200);
    let scraped: BTreeSet<String> = body
        .lines()
        .filter(|l| l.starts_with("reredis_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = queried.difference(&scraped).collect();
    assert!(
        missing.is_empty(),
        "queried by the dashboard or alerts but not exported: {missing:?}\nexported: {scraped:?}"
    );
}

/// The Dockerfile's `HEALTHCHECK` command (exec form), binary path first.
fn dockerfile_healthcheck() -> Vec<String> {
    let text = repo_file("Dockerfile").replace("\\\n", " ");
    let line = text
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    let json = &line[line.find("CMD [").expect("exec form CMD") + 4..];
    serde_json::from_str(json).expect("CMD is a JSON array")
}

#[test]
fn dockerfile_healthcheck_passes_while_the_node_serves_and_fails_after() {
    let cmd = dockerfile_healthcheck();
    assert!(cmd[0].ends_with("/reredis"), "{cmd:?}");
    let dir = tempfile::tempdir().unwrap();
    let (port, http) = (
        free_port_with_bus(&[Ipv4Addr::LOCALHOST]),
        free_port(Ipv4Addr::LOCALHOST),
    );
    // The image's environment with this node's ports; the probe reads them as the node does.
    let mut env = dockerfile_env();
    env_set(
        &mut env,
        "REREDIS_DIR",
        dir.path().to_str().unwrap().to_string(),
    );
    env_set(&mut env, "REREDIS_BIND", "127.0.0.1".into());
    env_set(&mut env, "REREDIS_PORT", port.to_string());
    env_set(&mut env, "REREDIS_HTTP_PORT", http.to_string());
    let mut node = NodeProcess::spawn(&env, &[], &dir.path().join("node.log"));
    assert!(
        wait(Duration::from_secs(15), || cli(
            "127.0.0.1",
            port,
            &["PING"]
        ) == "PONG"),
        "{}",
        node.log_text()
    );
    let probe = || reredis(&env, &cmd[1..]).output().unwrap();
    let up = probe();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    node.kill();
    let down = probe();
    assert!(!down.status.success());
    assert!(
        String::from_utf8_lossy(&down.stderr).contains(&format!("127.0.0.1:{http}/healthz")),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

// ---------------------------------------------------------------------------------------------

/// The reredis services of docker-compose.yml (those built from this repository).
fn compose_services(root: &Path) -> Vec<Service> {
    let doc = yaml("docker-compose.yml");
    let image_env = dockerfile_env();
    let services = doc["services"].as_hash().expect("services");
    let mut out = Vec::new();
    for (i, (name, svc)) in services
        .iter()
        .filter(|(_, s)| !s["build"].is_badvalue())
        .enumerate()
    {
        let name = scalar(name).unwrap();
        let ip = loopback(11 + i as u8);
        let mut env = image_env.clone();
        match &svc["environment"] {
            Yaml::Hash(h) => {
                for (k, v) in h {
                    env_set(
                        &mut env,
                        &scalar(k).unwrap(),
                        compose_interpolate(&scalar(v).unwrap_or_default()),
                    );
                }
            }
            Yaml::Array(a) => {
                for kv in a.iter().filter_map(scalar) {
                    let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                    env_set(&mut env, k, compose_interpolate(v));
                }
            }
            _ => {}
        }
        let declared_port: u16 = env_get(&env, "REREDIS_PORT")
            .unwrap_or("6379")
            .parse()
            .unwrap();
        // The design: client ports are published 1:1, so the announced port is the host's.
        let published: Vec<String> = strings(&svc["ports"]);
        assert!(
            published.contains(&format!("{declared_port}:{declared_port}")),
            "{name}: client port {declared_port} must be published 1:1 (ports: {published:?})"
        );
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        out.push(Service {
            name,
            ip,
            declared_port,
            port: free_port_with_bus(&[ip, Ipv4Addr::LOCALHOST]),
            http_port: free_port(ip),
            env,
            args: strings(&svc["command"]),
            dir,
            proc: None,
        });
    }
    out
}

/// Maps the deployment's view (names, declared ports, /data) onto this machine's processes.
fn localize(services: &mut [Service], resolve: &Resolver) -> Vec<String> {
    let mut dropped = Vec::new();
    for s in services.iter_mut() {
        let seeds = env_get(&s.env, "REREDIS_CLUSTER__SEEDS").map(|v| rewrite_seeds(v, resolve));
        if let Some(seeds) = seeds {
            env_set(&mut s.env, "REREDIS_CLUSTER__SEEDS", seeds);
        }
        env_set(&mut s.env, "REREDIS_BIND", s.ip.to_string());
        env_set(&mut s.env, "REREDIS_PORT", s.port.to_string());
        env_set(&mut s.env, "REREDIS_HTTP_PORT", s.http_port.to_string());
        assert_eq!(
            env_get(&s.env, "REREDIS_DIR"),
            Some("/data"),
            "{}: data in the /data volume",
            s.name
        );
        env_set(
            &mut s.env,
            "REREDIS_DIR",
            s.dir.to_str().unwrap().to_string(),
        );
        dropped.extend(drop_pending_settings(&mut s.env, &s.args));
    }
    dropped
}

#[test]
fn compose_services_as_processes_form_a_cluster_reachable_from_the_host() {
    let root = tempfile::tempdir().unwrap();
    let mut services = compose_services(root.path());
    assert_eq!(services.len(), 3, "three reredis services");
    let table: Vec<(String, u16, Ipv4Addr, u16)> = services
        .iter()
        .map(|s| (s.name.clone(), s.declared_port, s.ip, s.port))
        .collect();
    localize(&mut services, &|host, port| {
        table
            .iter()
            .find(|(n, p, _, _)| n == host && *p == port)
            .map(|(_, _, ip, p)| (*ip, *p))
    });
    // A container has one interface: the address its peers see its bus connections come from
    // is the address it is reached at, and the node learns that one. Processes that share
    // loopback connect from 127.0.0.1 whatever address they bind, so here each announces the
    // address its container would have learnt.
    for s in services.iter_mut() {
        assert_eq!(env_get(&s.env, "REREDIS_CLUSTER__ANNOUNCE_IP"), None);
        env_set(&mut s.env, "REREDIS_CLUSTER__ANNOUNCE_IP", s.ip.to_string());
    }
    // Announced to clients: the host (compose's default) and the published ports.
    for s in &services {
        assert_eq!(
            env_get(&s.env, "REREDIS_CLUSTER__ANNOUNCE_HOSTNAME"),
            Some("127.0.0.1")
        );
        assert_eq!(
            env_get(&s.env, "REREDIS_CLUSTER__PREFERRED_ENDPOINT_TYPE"),
            Some("hostname")
        );
    }
    let _published: Vec<Forwarder> = services
        .iter()
        .map(|s| {
            Forwarder::start(
                SocketAddr::from((Ipv4Addr::LOCALHOST, s.port)),
                SocketAddr::from((s.ip, s.port)),
            )
        })
        .collect();
    // `docker compose up` starts them together; so do we.
    let started = std::time::Instant::now();
    for s in services.iter_mut() {
        s.start();
    }
    let all: Vec<&Service> = services.iter().collect();
    assert!(
        wait(Duration::from_secs(30), || cluster_formed(&all, 3)),
        "the compose cluster did not form:\n{}",
        describe(&all)
    );
    eprintln!(
        "compose: 3 nodes formed a cluster {:?} after start",
        started.elapsed()
    );

    // Balanced: the even split, in announced-endpoint order (127.0.0.1 and the port).
    let mut by_port: Vec<&Service> = services.iter().collect();
    by_port.sort_by_key(|s| s.port);
    let want = [(0u16, 5460u16), (5461, 10922), (10923, 16383)];
    assert!(
        wait(Duration::from_secs(20), || settled(&by_port, &want)),
        "not the even split:\n{}",
        describe(&all)
    );
    eprintln!(
        "compose: even split settled {:?} after start",
        started.elapsed()
    );
    for s in &services {
        for l in cluster_nodes(s) {
            // The trap this design avoids: the bus address is the container's, never 127.0.0.1.
            let owner = services
                .iter()
                .find(|x| x.port == l.port)
                .expect("a node we started");
            assert_eq!(
                l.ip,
                owner.ip.to_string(),
                "bus address of {} as {} sees it\n{}",
                owner.name,
                s.name,
                describe(&all)
            );
            assert_eq!(l.hostname, "127.0.0.1");
        }
        // Metrics agree with CLUSTER NODES.
        let (_, body) =
            http_get(SocketAddr::from((s.ip, s.http_port)), "/metrics").expect("scrape");
        assert!(
            body.contains("reredis_cluster_node_slots 546"),
            "{}: {body}",
            s.name
        );
    }

    // MOVED names the host's published port, which the host reaches.
    let foo_owner = by_port[2];
    assert_eq!(
        cli("127.0.0.1", by_port[0].port, &["GET", "foo"]),
        format!("MOVED 12182 127.0.0.1:{}", foo_owner.port)
    );
    // redis-cli -c from the host, through every published port, reaches keys on every node.
    let keys = write_keys("127.0.0.1", by_port[0].port, 20);
    for s in &services {
        let size: usize = s.cli(&["DBSIZE"]).parse().unwrap();
        assert!(size > 0, "{} holds none of the keys", s.name);
        assert_eq!(
            read_keys("127.0.0.1", s.port, &keys),
            Vec::<String>::new(),
            "through {}",
            s.name
        );
    }

    // The compose healthcheck command, with the service's environment, passes.
    let doc = yaml("docker-compose.yml");
    for s in &services {
        let test = strings(&doc["services"][s.name.as_str()]["healthcheck"]["test"]);
        assert_eq!(test.first().map(String::as_str), Some("CMD"), "{test:?}");
        assert!(test[1].ends_with("/reredis"), "{test:?}");
        let status = reredis(&s.env, &test[2..]).status().unwrap();
        assert!(status.success(), "{} healthcheck {test:?}", s.name);
    }
}

// ---------------------------------------------------------------------------------------------

const NAMESPACE: &str = "default";

/// The StatefulSet's pods as processes: pod `ordinal` at `ip`.
struct StatefulSet {
    container: Yaml,
    configmap: Vec<(String, String)>,
    headless: String,
    root: PathBuf,
}

impl StatefulSet {
    fn load(root: &Path) -> StatefulSet {
        let sts = yaml("deploy/k8s/statefulset.yaml");
        let spec = &sts["spec"];
        assert_eq!(
            scalar(&spec["podManagementPolicy"]).as_deref(),
            Some("Parallel")
        );
        let pod = &spec["template"]["spec"];
        // Otherwise a Service named "reredis" injects REREDIS_PORT=tcp://... into the pods.
        assert_eq!(pod["enableServiceLinks"].as_bool(), Some(false));
        let containers = pod["containers"].as_vec().expect("containers");
        assert_eq!(containers.len(), 1);
        let container = containers[0].clone();
        let cm = yaml("deploy/k8s/configmap.yaml");
        let cm_name = scalar(&cm["metadata"]["name"]).unwrap();
        let refs: Vec<String> = container["envFrom"]
            .as_vec()
            .map(|v| {
                v.iter()
                    .filter_map(|e| scalar(&e["configMapRef"]["name"]))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(refs, vec![cm_name], "the container reads the ConfigMap");
        let configmap = cm["data"]
            .as_hash()
            .expect("data")
            .iter()
            .map(|(k, v)| (scalar(k).unwrap(), scalar(v).unwrap()))
            .collect();
        let probe_paths: Vec<String> = ["livenessProbe", "readinessProbe"]
            .iter()
            .filter_map(|p| scalar(&container[*p]["httpGet"]["path"]))
            .collect();
        assert_eq!(probe_paths, ["/healthz", "/readyz"]);
        StatefulSet {
            container,
            configmap,
            headless: scalar(&spec["serviceName"]).unwrap(),
            root: root.to_path_buf(),
        }
    }

    fn container_port(&self, name: &str) -> u16 {
        self.container["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| scalar(&p["name"]).as_deref() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("container port {name}")) as u16
    }

    /// Pod `ordinal`'s environment as the kubelet would build it, with the pod at `ip`.
    fn pod(&self, ordinal: usize, ip: Ipv4Addr, port: u16) -> Service {
        let name = format!("reredis-{ordinal}");
        let mut env = dockerfile_env();
        for (k, v) in &self.configmap {
            env_set(&mut env, k, v.clone());
        }
        for e in self.container["env"].as_vec().expect("env") {
            let key = scalar(&e["name"]).unwrap();
            let value = match scalar(&e["value"]) {
                Some(v) => expand_dependent(&v, &env),
                None => match scalar(&e["valueFrom"]["fieldRef"]["fieldPath"]).as_deref() {
                    Some("metadata.name") => name.clone(),
                    Some("metadata.namespace") => NAMESPACE.to_string(),
                    Some("status.podIP") => ip.to_string(),
                    other => panic!("{key}: unsupported valueFrom {other:?}"),
                },
            };
            env_set(&mut env, &key, value);
        }
        let dir = self.root.join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        Service {
            name,
            ip,
            declared_port: self.container_port("resp"),
            port,
            http_port: free_port(ip),
            env,
            args: strings(&self.container["args"]),
            dir,
            proc: None,
        }
    }

    /// The pod a DNS name on the headless Service names (`reredis-1.reredis-headless`, with or
    /// without `.<namespace>.svc[.cluster.local]`).
    fn ordinal_of(&self, host: &str) -> Option<usize> {
        let (pod, domain) = host.split_once('.')?;
        let ok = [
            self.headless.clone(),
            format!("{}.{NAMESPACE}", self.headless),
            format!("{}.{NAMESPACE}.svc", self.headless),
            format!("{}.{NAMESPACE}.svc.cluster.local", self.headless),
        ]
        .contains(&domain.to_string());
        if !ok {
            return None;
        }
        pod.strip_prefix("reredis-")?.parse().ok()
    }
}

/// Kubernetes' `$(VAR)` expansion of earlier variables.
fn expand_dependent(v: &str, env: &[(String, String)]) -> String {
    let mut out = v.to_string();
    for (k, val) in env {
        out = out.replace(&format!("$({k})"), val);
    }
    out
}

#[test]
fn statefulset_pods_as_processes_cluster_scale_out_and_rejoin_at_a_new_address() {
    let root = tempfile::tempdir().unwrap();
    let sts = StatefulSet::load(root.path());
    let ips: Vec<Ipv4Addr> = (0..4).map(|i| loopback(21 + i)).collect();
    let mut pods: Vec<Service> = (0..4)
        .map(|i| sts.pod(i, ips[i], free_port_with_bus(&[ips[i]])))
        .collect();
    let table: Vec<(Ipv4Addr, u16)> = pods.iter().map(|p| (p.ip, p.port)).collect();
    let declared = pods[0].declared_port;
    let resolve = |host: &str, port: u16| -> Option<(Ipv4Addr, u16)> {
        let i = sts.ordinal_of(host)?;
        (port == declared).then(|| table[i])
    };
    let dropped = localize(&mut pods, &resolve);
    for p in &pods {
        assert_eq!(
            env_get(&p.env, "REREDIS_CLUSTER__ANNOUNCE_HOSTNAME"),
            Some(format!("{}.{}.{NAMESPACE}.svc", p.name, sts.headless).as_str())
        );
    }

    // replicas: 3, podManagementPolicy: Parallel.
    let started = std::time::Instant::now();
    for p in pods.iter_mut().take(3) {
        p.start();
    }
    let three: Vec<&Service> = pods.iter().take(3).collect();
    assert!(
        wait(Duration::from_secs(30), || cluster_formed(&three, 3)),
        "the StatefulSet did not form a cluster:\n{}",
        describe(&three)
    );
    // The even split follows the stable names: reredis-0 first.
    let want = [(0u16, 5460u16), (5461, 10922), (10923, 16383)];
    assert!(
        wait(Duration::from_secs(20), || settled(&three, &want)),
        "not the even split by pod name:\n{}",
        describe(&three)
    );
    eprintln!(
        "statefulset: 3 pods settled in the even split {:?} after start",
        started.elapsed()
    );
    // Clients are sent to pod IPs (preferred-endpoint-type ip) and follow them with -c.
    let (entry_ip, entry_port) = (pods[0].ip.to_string(), pods[0].port);
    let keys = write_keys(&entry_ip, entry_port, 20);
    assert_eq!(
        read_keys(&pods[1].ip.to_string(), pods[1].port, &keys),
        Vec::<String>::new()
    );

    // kubectl scale --replicas=4: the new pod meets the seeds and joins.
    let started = std::time::Instant::now();
    pods[3].start();
    let four: Vec<&Service> = pods.iter().collect();
    assert!(
        wait(Duration::from_secs(30), || cluster_formed(&four, 4)),
        "the 4th pod did not join:\n{}",
        describe(&four)
    );
    // Four even ranges put 12288-16383 on reredis-3. What moves today are the slots there that
    // hold no keys; slots with keys follow when keys move with their slots (issue 5), so the
    // bound below holds before and after that lands.
    let keyed_in_range: BTreeSet<u16> = keys
        .iter()
        .map(|k| {
            pods[0]
                .cli(&["CLUSTER", "KEYSLOT", k])
                .parse::<u16>()
                .unwrap()
        })
        .filter(|s| *s >= 12288)
        .collect();
    let new_id = pods[3].id();
    let slots_of_new = || {
        cluster_nodes(&pods[0])
            .into_iter()
            .find(|l| l.id == new_id)
            .map(|l| l.slots)
            .unwrap_or(0)
    };
    assert!(
        wait(Duration::from_secs(20), || slots_of_new()
            >= 4096 - keyed_in_range.len()),
        "reredis-3 serves {} slots, want at least {} (4096 less {} slots with keys):\n{}",
        slots_of_new(),
        4096 - keyed_in_range.len(),
        keyed_in_range.len(),
        describe(&four)
    );
    assert!(slots_of_new() <= 4096);
    eprintln!(
        "statefulset: reredis-3 joined and serves {} slots {:?} after start",
        slots_of_new(),
        started.elapsed()
    );
    assert!(wait(Duration::from_secs(15), || cluster_formed(&four, 4)));
    assert_eq!(
        read_keys(&entry_ip, entry_port, &keys),
        Vec::<String>::new(),
        "no key lost in the join"
    );

    // Pod 1 rescheduled: killed, back with a new IP and the same volume (nodes.conf).
    let id_before = pods[1].id();
    let keys_on_1: Vec<String> = keys
        .iter()
        .filter(|k| pods[1].cli(&["EXISTS", k]) == "1")
        .cloned()
        .collect();
    pods[1].proc.take().unwrap().kill();
    let started = std::time::Instant::now();
    let new_ip = loopback(31);
    {
        let p = &mut pods[1];
        p.ip = new_ip;
        env_set(&mut p.env, "REREDIS_BIND", new_ip.to_string());
        env_set(
            &mut p.env,
            "REREDIS_CLUSTER__ANNOUNCE_IP",
            new_ip.to_string(),
        );
        // Its own name now resolves to the new address (the others met it long ago).
        let seeds = env_get(&p.env, "REREDIS_CLUSTER__SEEDS").unwrap().replace(
            &format!("{}:{}", ips[1], p.port),
            &format!("{new_ip}:{}", p.port),
        );
        env_set(&mut p.env, "REREDIS_CLUSTER__SEEDS", seeds);
        assert!(
            TcpListener::bind((new_ip, p.port)).is_ok()
                && TcpListener::bind((new_ip, p.port + 10000)).is_ok()
        );
        p.start();
    }
    assert_eq!(
        pods[1].id(),
        id_before,
        "the rescheduled pod keeps its node ID"
    );
    let four: Vec<&Service> = pods.iter().collect();
    assert!(
        wait(Duration::from_secs(30), || cluster_formed(&four, 4)
            && four.iter().all(|s| {
                cluster_nodes(s)
                    .iter()
                    .any(|l| l.id == id_before && l.ip == new_ip.to_string())
            })),
        "the rescheduled pod did not rejoin at {new_ip}:\n{}",
        describe(&four)
    );
    eprintln!(
        "statefulset: reredis-1 rejoined at {new_ip} {:?} after its kill",
        started.elapsed()
    );
    // Its data survives the move only with persistence (another issue); every other key must.
    let persisted = !dropped.iter().any(|d| d == "REREDIS_APPENDONLY");
    let lost = read_keys(&entry_ip, entry_port, &keys);
    if persisted {
        assert_eq!(
            lost,
            Vec::<String>::new(),
            "keys lost across the pod's move"
        );
    } else {
        eprintln!(
            "note: appendonly is not accepted by this binary yet: {} keys of reredis-1 are not expected to survive its restart",
            keys_on_1.len()
        );
        let unexpected: Vec<&String> = lost.iter().filter(|k| !keys_on_1.contains(k)).collect();
        assert!(
            unexpected.is_empty(),
            "keys of other pods lost: {unexpected:?}"
        );
    }
}

/// `pidfile` and `tcp-backlog`, for service managers and busy hosts: the pid file (relative to
/// `dir`, as Redis) holds the process id while the node runs and is gone after a clean exit;
/// the client port's listen queue is the size asked for (read back from the kernel with `ss`).
#[test]
fn pidfile_is_written_and_removed_and_the_listen_backlog_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "--save",
        "",
        "--pidfile",
        "reredis.pid",
        "--tcp-backlog",
        "37",
    ];
    let (mut node, port, _) = loopback_node(dir.path(), &extra);
    let pidfile = dir.path().join("reredis.pid");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        format!("{}\n", node.pid())
    );
    let listening = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let line = String::from_utf8_lossy(&listening.stdout).into_owned();
    // State, Recv-Q, then Send-Q: for a listening socket, its backlog.
    let backlog = line.split_whitespace().nth(2);
    assert_eq!(backlog, Some("37"), "{line}");
    assert_eq!(
        cli("127.0.0.1", port, &["CONFIG", "GET", "tcp-backlog"]),
        "tcp-backlog\n37"
    );
    cli("127.0.0.1", port, &["SHUTDOWN", "NOSAVE"]);
    assert!(node.wait_exit().success(), "{}", node.log_text());
    assert!(!pidfile.exists(), "the pid file outlived the node");
}

/// A node process on 127.0.0.1 with free client and HTTP ports, its data and log in `dir` and
/// `extra` flags, once it answers PING: (node, client port, HTTP port).
fn loopback_node(dir: &Path, extra: &[&str]) -> (NodeProcess, u16, u16) {
    let ip = Ipv4Addr::LOCALHOST;
    let (port, http) = (free_port_with_bus(&[ip]), free_port(ip));
    let (port_s, http_s) = (port.to_string(), http.to_string());
    let dir_s = dir.to_str().unwrap();
    let args: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port_s,
        "--http-port",
        &http_s,
        "--dir",
        dir_s,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    let node = NodeProcess::spawn(&[], &args, &dir.join("node.log"));
    assert!(
        wait(Duration::from_secs(15), || cli(
            "127.0.0.1",
            port,
            &["PING"]
        ) == "PONG"),
        "{}",
        node.log_text()
    );
    (node, port, http)
}
