//! `nodes.conf`: the cluster state a node keeps across restarts, in Redis's format (one line per
//! node as `CLUSTER NODES` prints it, then a `vars` line), written atomically (temporary file,
//! fsync, rename). A corrupt file stops start-up with the line that is wrong: a node never starts
//! silently with a new identity.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::state::{ClusterNode, ClusterState, Endpoint, flag, slot_ranges};

#[derive(Debug, thiserror::Error)]
pub enum NodesConfError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} line {line} is corrupt ({reason}): {text:?}; fix or remove the file (removing it gives this node a new ID)"
    )]
    Corrupt {
        path: String,
        line: usize,
        reason: String,
        text: String,
    },
}

pub fn render(st: &ClusterState) -> String {
    let mut out = String::new();
    for n in st.nodes.values() {
        out.push_str(&node_line(st, n, true));
        out.push('\n');
    }
    // Ours too: the slots handed over (see `ClusterState::released`), as ranges, or "-".
    let released = slot_ranges(st.released.iter().copied())
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    out.push_str(&format!(
        "vars currentEpoch {} lastVoteEpoch {} slot-mode {} provisional {} draining {} released {}\n",
        st.current_epoch,
        st.last_vote_epoch,
        if st.manual { "manual" } else { "auto" },
        if st.me().provisional { "yes" } else { "no" },
        // Ours: a drain survives a restart (the flag is not in the CLUSTER NODES line).
        if st.me().flags & flag::DRAINING != 0 {
            "yes"
        } else {
            "no"
        },
        if released.is_empty() { "-" } else { &released },
    ));
    out
}

/// `0-5,9` (or `-`, none) as slots.
fn parse_slot_list(text: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| *p != "-") {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
        if a > b || b as usize >= super::slots::SLOTS {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// One `CLUSTER NODES` line. `with_aux` is for nodes.conf: it adds the HTTP port and keeps a
/// provisional claim.
pub fn node_line(st: &ClusterState, n: &ClusterNode, with_aux: bool) -> String {
    let e = &n.endpoint;
    let mut addr = format!("{}:{}@{}", e.ip, e.port, e.bus_port);
    if !e.hostname.is_empty() {
        addr.push(',');
        addr.push_str(&e.hostname);
    }
    if with_aux {
        if e.hostname.is_empty() {
            addr.push(',');
        }
        addr.push_str(&format!(",http={}", e.http_port));
        if n.shard_id != n.id {
            addr.push_str(&format!(",shard-id={}", n.shard_id));
        }
    }
    let me = n.id == st.myself;
    let link = if me || (n.flags & (flag::PFAIL | flag::FAIL) == 0 && n.seen) {
        "connected"
    } else {
        "disconnected"
    };
    // A replica shows its master's config epoch, as Redis does.
    let epoch = match n.replica_of.as_deref().and_then(|m| st.nodes.get(m)) {
        Some(m) if !n.is_master() => m.config_epoch,
        _ => n.config_epoch,
    };
    let mut line = format!(
        "{} {} {} {} {} {} {} {}",
        n.id,
        addr,
        n.flags_text(),
        n.replica_of.as_deref().unwrap_or("-"),
        if me { 0 } else { n.ping_sent_ms },
        if me { 0 } else { n.pong_received_ms },
        epoch,
        link
    );
    // A provisional claim (a lone node in automatic mode) is left out of CLUSTER NODES: Redis
    // tooling reads it to decide what a node owns, and `redis-cli --cluster create` would
    // otherwise re-add every slot to every node. CLUSTER SLOTS/INFO still show it, so clients
    // route to the lone node; nodes.conf keeps it.
    let hide = !with_aux && n.provisional;
    for (a, b) in slot_ranges(if hide { Vec::new() } else { st.slots_of(&n.id) }) {
        if a == b {
            line.push_str(&format!(" {a}"));
        } else {
            line.push_str(&format!(" {a}-{b}"));
        }
    }
    if me {
        for (slot, to) in &st.migrating {
            line.push_str(&format!(" [{slot}->-{to}]"));
        }
        for (slot, from) in &st.importing {
            line.push_str(&format!(" [{slot}-<-{from}]"));
        }
    }
    line
}

pub fn save(path: &Path, st: &ClusterState) -> std::io::Result<()> {
    write(path, &render(st))
}

/// Writes a rendered nodes.conf atomically (temp file, fsync, rename, fsync of the directory).
/// Callers serialise their writes: two at once would share the temp file.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("conf.tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn valid_id(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Loads the state; `Ok(None)` when the file does not exist (a new node).
pub fn load(path: &Path, node_timeout_ms: i64) -> Result<Option<ClusterState>, NodesConfError> {
    let p = path.display().to_string();
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NodesConfError::Io { path: p, source: e }),
    };
    let corrupt = |line: usize, reason: &str, text: &str| NodesConfError::Corrupt {
        path: p.clone(),
        line,
        reason: reason.to_string(),
        text: text.to_string(),
    };
    let mut nodes: Vec<(ClusterNode, Vec<(u16, u16)>)> = Vec::new();
    let mut vars: Option<(u64, u64, bool, bool, bool)> = None;
    let mut released = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let ln = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[0] == "vars" {
            let mut cur = None;
            let mut vote = 0;
            let mut manual = false;
            let mut provisional = false;
            let mut draining = false;
            for kv in f[1..].chunks(2) {
                let [k, v] = kv else {
                    return Err(corrupt(ln, "odd number of vars", raw));
                };
                match *k {
                    "currentEpoch" => cur = v.parse().ok(),
                    "lastVoteEpoch" => {
                        vote = v
                            .parse()
                            .map_err(|_| corrupt(ln, "bad lastVoteEpoch", raw))?
                    }
                    "slot-mode" => manual = *v == "manual",
                    "provisional" => provisional = *v == "yes",
                    "draining" => draining = *v == "yes",
                    "released" => {
                        released = parse_slot_list(v)
                            .ok_or_else(|| corrupt(ln, "bad released slots", raw))?
                    }
                    _ => {}
                }
            }
            let cur = cur.ok_or_else(|| corrupt(ln, "missing currentEpoch", raw))?;
            vars = Some((cur, vote, manual, provisional, draining));
            continue;
        }
        if f.len() < 8 {
            return Err(corrupt(ln, "too few fields", raw));
        }
        if !valid_id(f[0]) {
            return Err(corrupt(ln, "bad node id", raw));
        }
        let mut parts = f[1].split(',');
        let hostport = parts.next().unwrap_or("");
        let mut hostname = String::new();
        let mut http_port = 0u16;
        let mut shard_id = None;
        for aux in parts {
            if let Some(v) = aux.strip_prefix("shard-id=") {
                if !valid_id(v) {
                    return Err(corrupt(ln, "bad shard id", raw));
                }
                shard_id = Some(v.to_string());
            } else if let Some(v) = aux.strip_prefix("http=") {
                http_port = v.parse().map_err(|_| corrupt(ln, "bad http port", raw))?;
            } else if !aux.is_empty() {
                hostname = aux.to_string();
            }
        }
        let (ipport, bus) = hostport
            .split_once('@')
            .ok_or_else(|| corrupt(ln, "address without @busport", raw))?;
        let (ip, port) = ipport
            .rsplit_once(':')
            .ok_or_else(|| corrupt(ln, "address without port", raw))?;
        let endpoint = Endpoint {
            ip: ip.to_string(),
            port: port.parse().map_err(|_| corrupt(ln, "bad port", raw))?,
            bus_port: bus.parse().map_err(|_| corrupt(ln, "bad bus port", raw))?,
            hostname,
            http_port,
        };
        let mut flags = 0;
        for fl in f[2].split(',') {
            flags |= match fl {
                "myself" => flag::MYSELF,
                "master" => flag::MASTER,
                "slave" => flag::REPLICA,
                "fail?" => flag::PFAIL,
                "fail" => flag::FAIL,
                "handshake" => flag::HANDSHAKE,
                "noaddr" => flag::NOADDR,
                "nofailover" => flag::NOFAILOVER,
                "noflags" => 0,
                _ => return Err(corrupt(ln, "unknown flag", raw)),
            };
        }
        let mut n = ClusterNode::new(f[0].to_string(), endpoint, flags);
        if let Some(shard) = shard_id {
            n.shard_id = shard;
        }
        if f[3] != "-" {
            if !valid_id(f[3]) {
                return Err(corrupt(ln, "bad master id", raw));
            }
            n.replica_of = Some(f[3].to_string());
        }
        n.config_epoch = f[6]
            .parse()
            .map_err(|_| corrupt(ln, "bad config epoch", raw))?;
        n.slots_epoch = n.config_epoch;
        // A restart forgets pings in flight; failures are rediscovered by the detector.
        n.flags &= !(flag::PFAIL | flag::HANDSHAKE);
        n.seen = flags & flag::HANDSHAKE == 0;
        let mut ranges = Vec::new();
        for s in &f[8..] {
            if s.starts_with('[') {
                continue;
            }
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            let a: u16 = a.parse().map_err(|_| corrupt(ln, "bad slot", raw))?;
            let b: u16 = b.parse().map_err(|_| corrupt(ln, "bad slot", raw))?;
            if a > b || b as usize >= super::slots::SLOTS {
                return Err(corrupt(ln, "slot out of range", raw));
            }
            ranges.push((a, b));
        }
        nodes.push((n, ranges));
    }
    let Some((current_epoch, last_vote, manual, provisional, draining)) = vars else {
        return Err(corrupt(
            text.lines().count(),
            "no vars line (file cut short?)",
            "",
        ));
    };
    let mut me_iter = nodes.iter().filter(|(n, _)| n.flags & flag::MYSELF != 0);
    let Some((me, _)) = me_iter.next() else {
        return Err(corrupt(1, "no line for myself", ""));
    };
    if me_iter.next().is_some() {
        return Err(corrupt(1, "more than one line for myself", ""));
    }
    let mut me = me.clone();
    me.provisional = provisional;
    if draining {
        me.flags |= flag::DRAINING;
    }
    let mut st = ClusterState::new(me, node_timeout_ms);
    st.current_epoch = current_epoch;
    st.last_vote_epoch = last_vote;
    st.manual = manual;
    st.released.extend(released);
    for (n, ranges) in nodes {
        let id = n.id.clone();
        if id != st.myself {
            st.nodes.insert(id.clone(), n);
        }
        for (a, b) in ranges {
            for s in a..=b {
                st.slots[s as usize] = Some(id.clone());
            }
        }
    }
    st.dirty = false;
    Ok(Some(st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.conf");
        let ep = Endpoint {
            ip: "10.0.0.1".into(),
            port: 6379,
            bus_port: 16379,
            hostname: "pod-0".into(),
            http_port: 8080,
        };
        let me = ClusterNode::new("a".repeat(40), ep.clone(), flag::MYSELF | flag::MASTER);
        let mut st = ClusterState::new(me, 15000);
        let mut other = ClusterNode::new(
            "b".repeat(40),
            Endpoint {
                hostname: String::new(),
                ..ep
            },
            flag::MASTER,
        );
        other.config_epoch = 3;
        st.add_node(other, 0);
        for s in 0..10 {
            st.assign(s, Some(&"a".repeat(40)));
        }
        st.assign(100, Some(&"b".repeat(40)));
        st.current_epoch = 3;
        save(&path, &st).unwrap();
        let back = load(&path, 15000).unwrap().unwrap();
        assert_eq!(back.myself, "a".repeat(40));
        assert_eq!(back.current_epoch, 3);
        assert_eq!(back.slots_of(&"a".repeat(40)).len(), 10);
        assert_eq!(back.nodes[&"b".repeat(40)].config_epoch, 3);
        assert_eq!(back.me().endpoint.hostname, "pod-0");
        assert_eq!(back.me().endpoint.http_port, 8080);
        assert_eq!(back.me().flags & flag::DRAINING, 0);
        assert!(back.released.is_empty());
        // Slots handed over are remembered, and forgotten once served here again.
        for s in [7, 8, 9, 4000] {
            st.hand_over(s, &"b".repeat(40));
        }
        save(&path, &st).unwrap();
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .contains(" released 7-9,4000\n")
        );
        let mut back = load(&path, 15000).unwrap().unwrap();
        assert_eq!(
            back.released.iter().copied().collect::<Vec<_>>(),
            [7, 8, 9, 4000]
        );
        back.assign(8, Some(&"a".repeat(40)));
        assert_eq!(
            back.released.iter().copied().collect::<Vec<_>>(),
            [7, 9, 4000]
        );
        // A drain survives a restart.
        st.me_mut().flags |= flag::DRAINING;
        save(&path, &st).unwrap();
        let back = load(&path, 15000).unwrap().unwrap();
        assert_ne!(back.me().flags & flag::DRAINING, 0);
        // Cut short: no vars line.
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        let err = load(&path, 15000).unwrap_err().to_string();
        assert!(err.contains("nodes.conf"), "{err}");
        fs::write(&path, text.replace(" released 7-9,4000", " released 9-7")).unwrap();
        let err = load(&path, 15000).unwrap_err().to_string();
        assert!(err.contains("bad released slots"), "{err}");
        fs::write(&path, "garbage\nvars currentEpoch 0 lastVoteEpoch 0\n").unwrap();
        assert!(load(&path, 15000).is_err());
    }
}
