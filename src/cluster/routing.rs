//! Routing of client commands in a cluster (Redis's `getNodeByQuery`): a read-only snapshot of
//! who serves each slot, rebuilt whenever the cluster state changes, and the check that turns a
//! command's keys into "serve here" or a redirection, with Redis's exact error texts.

use std::collections::HashMap;

use super::slots::{SLOTS, key_hash_slot};
use super::state::ClusterState;

pub const NO_OWNER: u16 = u16::MAX;

/// Which address clients are sent to in MOVED/ASK and CLUSTER SLOTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointType {
    Ip,
    Hostname,
    Unknown,
}

pub struct Routing {
    pub enabled: bool,
    pub ok: bool,
    /// Index into `endpoints` for each slot, or NO_OWNER.
    owner: Box<[u16]>,
    /// "host:port" of each node, as MOVED shows it.
    endpoints: Vec<String>,
    me: u16,
    /// This node's master when it is a replica (NO_OWNER otherwise): READONLY clients read
    /// its slots here.
    my_master: u16,
    migrating: HashMap<u16, u16>,
    importing: HashMap<u16, u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    CrossSlot,
    Moved(u16, String),
    Ask(u16, String),
    TryAgain,
    Down,
    /// Down, with `cluster-allow-reads-when-down`: a write is refused.
    DownReadOnly,
    Unbound,
}

impl Redirect {
    pub fn message(&self) -> String {
        match self {
            Redirect::CrossSlot => "CROSSSLOT Keys in request don't hash to the same slot".into(),
            Redirect::Moved(s, ep) => format!("MOVED {s} {ep}"),
            Redirect::Ask(s, ep) => format!("ASK {s} {ep}"),
            Redirect::TryAgain => "TRYAGAIN Multiple keys request during rehashing of slot".into(),
            Redirect::Down => "CLUSTERDOWN The cluster is down".into(),
            Redirect::DownReadOnly => {
                "CLUSTERDOWN The cluster is down and only accepts read commands".into()
            }
            Redirect::Unbound => "CLUSTERDOWN Hash slot not served".into(),
        }
    }
}

impl Routing {
    /// Standalone: everything is served here.
    pub fn standalone() -> Routing {
        Routing {
            enabled: false,
            ok: true,
            owner: Box::new([]),
            endpoints: Vec::new(),
            me: 0,
            my_master: NO_OWNER,
            migrating: HashMap::new(),
            importing: HashMap::new(),
        }
    }

    pub fn from_state(st: &ClusterState, ep_type: EndpointType) -> Routing {
        let mut index: HashMap<&str, u16> = HashMap::new();
        let mut endpoints = Vec::new();
        for n in st.nodes.values() {
            index.insert(n.id.as_str(), endpoints.len() as u16);
            let host = match ep_type {
                EndpointType::Ip => n.endpoint.ip.clone(),
                EndpointType::Hostname if !n.endpoint.hostname.is_empty() => {
                    n.endpoint.hostname.clone()
                }
                EndpointType::Hostname => "?".into(),
                // Redis's `MOVED <slot> :<port>`: the client keeps the host it used.
                EndpointType::Unknown => String::new(),
            };
            endpoints.push(format!("{}:{}", host, n.endpoint.port));
        }
        // Owners come in long runs: look an id up once per run, not once per slot.
        let mut last: Option<(&str, u16)> = None;
        let owner: Box<[u16]> = st
            .slots
            .iter()
            .map(|o| match o.as_deref() {
                None => NO_OWNER,
                Some(id) => match last {
                    Some((l, i)) if l == id => i,
                    _ => {
                        let i = index.get(id).copied().unwrap_or(NO_OWNER);
                        last = Some((id, i));
                        i
                    }
                },
            })
            .collect();
        let me = index.get(st.myself.as_str()).copied().unwrap_or(NO_OWNER);
        let my_master = match st.me().replica_of.as_deref() {
            Some(m) if !st.me().is_master() => index.get(m).copied().unwrap_or(NO_OWNER),
            _ => NO_OWNER,
        };
        let map = |m: &std::collections::BTreeMap<u16, String>| {
            m.iter()
                .filter_map(|(s, id)| index.get(id.as_str()).map(|&i| (*s, i)))
                .collect()
        };
        Routing {
            enabled: true,
            ok: st.ok,
            owner,
            endpoints,
            me,
            my_master,
            migrating: map(&st.migrating),
            importing: map(&st.importing),
        }
    }

    pub fn serves(&self, slot: u16) -> bool {
        !self.enabled || self.owner.get(slot as usize) == Some(&self.me)
    }

    /// Whether a command on `slot` runs here: a slot this node serves, or, for a READONLY
    /// client's read (`replica_read`), a slot of this replica's master.
    pub fn serves_for(&self, slot: u16, replica_read: bool) -> bool {
        self.serves(slot)
            || (replica_read
                && self.enabled
                && self.my_master != NO_OWNER
                && self.owner.get(slot as usize) == Some(&self.my_master))
    }

    /// Whether this node's shard serves `slot`: this node, or its master when it is a replica.
    /// Shard channels live on the whole shard (Redis 7.0 delivers SPUBLISH to the master and
    /// its replicas, and lets a replica serve SSUBSCRIBE for its master's slots).
    pub fn shard_serves(&self, slot: u16) -> bool {
        self.serves_for(slot, true)
    }

    /// Whether `slot` is open here: migrating from this node or importing into it. MIGRATE is
    /// served locally then, whatever its keys (Redis's getNodeByQuery).
    pub fn is_open(&self, slot: u16) -> bool {
        self.enabled
            && ((self.serves(slot) && self.migrating.contains_key(&slot))
                || self.importing.contains_key(&slot))
    }

    /// Decides where a command with these keys runs. `exists` tells whether a key is present
    /// here (for migrating slots); `asking` is the client's ASKING flag; `readonly_ok` says the
    /// command may be served while the cluster is down (never, unless configured).
    pub fn check(
        &self,
        keys: &[&[u8]],
        asking: bool,
        exists: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), Redirect> {
        self.check_with(keys, asking, exists, false, false)
    }

    /// [`Routing::check`], optionally serving owned slots while the cluster is down (shard
    /// channels with `cluster-allow-pubsubshard-when-down`, as Redis 7.0). `replica_read`: a
    /// READONLY client's read, which a replica serves for its master's slots.
    pub fn check_with(
        &self,
        keys: &[&[u8]],
        asking: bool,
        mut exists: impl FnMut(&[u8]) -> bool,
        serve_when_down: bool,
        replica_read: bool,
    ) -> Result<(), Redirect> {
        if !self.enabled || keys.is_empty() {
            return Ok(());
        }
        let slot = key_hash_slot(keys[0]);
        if keys[1..].iter().any(|k| key_hash_slot(k) != slot) {
            return Err(Redirect::CrossSlot);
        }
        debug_assert!((slot as usize) < SLOTS);
        let owner = self.owner[slot as usize];
        if owner == NO_OWNER {
            return Err(Redirect::Unbound);
        }
        if !self.ok && !serve_when_down {
            return Err(Redirect::Down);
        }
        if owner == self.me {
            if let Some(&to) = self.migrating.get(&slot) {
                let missing = keys.iter().filter(|k| !exists(k)).count();
                if missing == keys.len() {
                    return Err(Redirect::Ask(slot, self.endpoints[to as usize].clone()));
                }
                if missing > 0 {
                    return Err(Redirect::TryAgain);
                }
            }
            return Ok(());
        }
        if replica_read && owner == self.my_master {
            return Ok(());
        }
        if asking && self.importing.contains_key(&slot) {
            // Several different keys, some missing (one key named twice is one key).
            let several = keys[1..].iter().any(|k| *k != keys[0]);
            if several && keys.iter().any(|k| !exists(k)) {
                return Err(Redirect::TryAgain);
            }
            return Ok(());
        }
        Err(Redirect::Moved(
            slot,
            self.endpoints[owner as usize].clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::{ClusterNode, Endpoint, flag};

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            ip: "127.0.0.1".into(),
            port,
            bus_port: port + 10000,
            hostname: String::new(),
            http_port: 0,
        }
    }

    #[test]
    fn moved_crossslot_and_ask() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let mut st = ClusterState::new(
            ClusterNode::new(a.clone(), ep(6379), flag::MYSELF | flag::MASTER),
            1000,
        );
        st.add_node(ClusterNode::new(b.clone(), ep(6381), flag::MASTER), 0);
        for s in 0..16384u16 {
            st.assign(s, Some(if s < 8192 { &a } else { &b }));
        }
        st.ok = true;
        let r = Routing::from_state(&st, EndpointType::Ip);
        assert_eq!(
            r.check(&[b"mykey"], false, |_| true),
            Err(Redirect::Moved(14687, "127.0.0.1:6381".into()))
        );
        assert_eq!(
            Redirect::Moved(14687, "127.0.0.1:6381".into()).message(),
            "MOVED 14687 127.0.0.1:6381"
        );
        assert_eq!(r.check(&[b"hello"], false, |_| true), Ok(()));
        assert_eq!(
            r.check(&[b"foo", b"bar"], false, |_| true),
            Err(Redirect::CrossSlot)
        );
        assert_eq!(
            r.check(&[b"{u}a", b"{u}b"], false, |_| true).is_ok(),
            key_hash_slot(b"u") < 8192
        );
        st.migrating.insert(866, b.clone());
        let r = Routing::from_state(&st, EndpointType::Ip);
        assert_eq!(
            r.check(&[b"hello"], false, |_| false),
            Err(Redirect::Ask(866, "127.0.0.1:6381".into()))
        );
        assert_eq!(r.check(&[b"hello"], false, |_| true), Ok(()));
        assert!(r.is_open(866) && !r.is_open(14687));
        st.importing.insert(14687, b.clone());
        assert!(Routing::from_state(&st, EndpointType::Ip).is_open(14687));
        // `unknown-endpoint`: the port only (Redis's `MOVED <slot> :<port>`); `hostname`
        // with none announced: `?`.
        assert_eq!(
            Routing::from_state(&st, EndpointType::Unknown).check(&[b"foo"], false, |_| true),
            Err(Redirect::Moved(12182, ":6381".into()))
        );
        assert_eq!(
            Routing::from_state(&st, EndpointType::Hostname).check(&[b"foo"], false, |_| true),
            Err(Redirect::Moved(12182, "?:6381".into()))
        );
    }
}
