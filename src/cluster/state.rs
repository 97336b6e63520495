//! The cluster state machine, as the Redis Cluster specification describes it: the node table,
//! `currentEpoch`/`configEpoch`, slot ownership decided by config epoch, failure reports, PFAIL
//! and FAIL. Plain data and functions of (state, message, now): no sockets, no clock of its
//! own, so tests drive many nodes with a simulated clock and network.

use std::collections::{BTreeMap, HashMap};

use super::slots::SLOTS;

pub mod flag {
    pub const MYSELF: u32 = 1;
    pub const MASTER: u32 = 2;
    pub const REPLICA: u32 = 4;
    pub const PFAIL: u32 = 8;
    pub const FAIL: u32 = 16;
    pub const HANDSHAKE: u32 = 32;
    pub const NOADDR: u32 = 64;
    pub const MEET: u32 = 128;
    pub const NOFAILOVER: u32 = 512;
    /// Ours, not Redis's (never shown in CLUSTER NODES): the node is leaving and hands all its
    /// slots to the others (CLUSTER DRAIN). Gossiped in the header's flags.
    pub const DRAINING: u32 = 1 << 16;
}

/// Redis: a failure report older than node-timeout * 2 no longer counts.
pub const FAIL_REPORT_VALIDITY_MULT: i64 = 2;
/// Redis: a master with slots in FAIL is un-failed after node-timeout * 2 of being reachable.
pub const FAIL_UNDO_TIME_MULT: i64 = 2;
/// Redis: a forgotten node is not re-added by gossip for 60 seconds.
pub const FORGET_BAN_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
    pub bus_port: u16,
    pub hostname: String,
    pub http_port: u16,
}

impl Endpoint {
    /// The key nodes are ordered by for the deterministic slot split.
    pub fn sort_key(&self) -> (String, u16) {
        let host = if self.hostname.is_empty() {
            &self.ip
        } else {
            &self.hostname
        };
        (host.clone(), self.port)
    }
}

#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub id: String,
    pub endpoint: Endpoint,
    pub flags: u32,
    pub config_epoch: u64,
    /// The config epoch of the newest message that told us this node's slots: its claims hold
    /// at this epoch. `config_epoch` may be newer, learnt from its Claim reply when we handed it
    /// slots, before any message of its own says which slots it gave up meanwhile.
    pub slots_epoch: u64,
    pub replica_of: Option<String>,
    /// When the ping in flight was sent (0: none in flight).
    pub ping_sent_ms: i64,
    /// Last time we (re)sent a ping, to retry an unanswered one without flooding.
    pub ping_attempt_ms: i64,
    pub pong_received_ms: i64,
    pub fail_time_ms: i64,
    /// Reporter id -> when it last reported this node as failing.
    pub fail_reports: HashMap<String, i64>,
    pub provisional: bool,
    pub keys: u64,
    /// Whether we ever heard from it directly (a header, not only gossip about it).
    pub seen: bool,
    pub shard_id: String,
}

impl ClusterNode {
    pub fn new(id: String, endpoint: Endpoint, flags: u32) -> ClusterNode {
        ClusterNode {
            shard_id: id.clone(),
            id,
            endpoint,
            flags,
            config_epoch: 0,
            slots_epoch: 0,
            replica_of: None,
            ping_sent_ms: 0,
            ping_attempt_ms: 0,
            pong_received_ms: 0,
            fail_time_ms: 0,
            fail_reports: HashMap::new(),
            provisional: false,
            keys: 0,
            seen: false,
        }
    }

    pub fn is_master(&self) -> bool {
        self.flags & flag::MASTER != 0
    }

    pub fn failed(&self) -> bool {
        self.flags & flag::FAIL != 0
    }

    pub fn pfailed(&self) -> bool {
        self.flags & flag::PFAIL != 0
    }

    /// The `CLUSTER NODES` flags field.
    pub fn flags_text(&self) -> String {
        let mut parts = Vec::new();
        for (f, name) in [
            (flag::MYSELF, "myself"),
            (flag::MASTER, "master"),
            (flag::REPLICA, "slave"),
            (flag::PFAIL, "fail?"),
            (flag::FAIL, "fail"),
            (flag::HANDSHAKE, "handshake"),
            (flag::NOADDR, "noaddr"),
            (flag::NOFAILOVER, "nofailover"),
        ] {
            if self.flags & f != 0 {
                parts.push(name);
            }
        }
        if parts.is_empty() {
            "noflags".into()
        } else {
            parts.join(",")
        }
    }
}

/// What a node says about itself in a message (the decoded gossip header).
#[derive(Debug, Clone)]
pub struct Header {
    pub id: String,
    pub endpoint: Endpoint,
    pub flags: u32,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub slots: Vec<(u16, u16)>,
    pub replica_of: Option<String>,
    pub provisional: bool,
    pub keys: u64,
    pub manual_slots: bool,
}

#[derive(Debug, Clone)]
pub struct GossipEntry {
    pub id: String,
    pub endpoint: Endpoint,
    pub flags: u32,
    pub ping_sent_ms: i64,
    pub pong_received_ms: i64,
}

/// Something the state machine wants the transport to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a MEET to an address learnt from gossip (handshake with a new node).
    Meet { ip: String, bus_port: u16 },
    /// Broadcast that `node` is failing.
    BroadcastFail { node: String },
    /// Tell `to` that `owner` holds these slots at `config_epoch` (its claim was stale).
    Update { to: String, owner: String },
}

#[derive(Debug, Clone)]
pub struct ClusterState {
    pub myself: String,
    pub nodes: BTreeMap<String, ClusterNode>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    /// Owner of each slot (node id), None when unassigned.
    pub slots: Vec<Option<String>>,
    pub migrating: BTreeMap<u16, String>,
    pub importing: BTreeMap<u16, String>,
    /// Slots this node handed to another and recorded as theirs before their claim answered:
    /// until then that node's messages may predate the claim and say nothing of the slot.
    pub handing_off: std::collections::BTreeSet<u16>,
    /// Slots whose owner (in our view) no longer claims them in its fresh messages: it gave
    /// them away and the new owner's claim has not reached us yet (Redis 7.2's
    /// `owner_not_claiming_slot`). They stay bound to the old owner, which redirects to the
    /// new one, so the cluster never passes through an uncovered slot (CLUSTERDOWN) during a
    /// handoff; any claim takes them, and they earn nobody an UPDATE.
    pub owner_not_claiming: std::collections::BTreeSet<u16>,
    /// Slots of ours whose handover (Claim) is in flight. Our messages stop claiming them from
    /// the moment the Claim is sent: the new owner takes them at an epoch above every one we
    /// had then, but we may take a higher epoch meanwhile (accepting a claim of our own), and a
    /// message of ours still claiming them would then win them back.
    pub claiming: std::collections::BTreeSet<u16>,
    /// Automatic distribution is off for this cluster (an operator assigned slots by hand, or
    /// `cluster.auto-assign = false`).
    pub manual: bool,
    /// Nodes removed by CLUSTER FORGET, with the time until which gossip may not re-add them.
    pub banned: HashMap<String, i64>,
    /// When the set of members last changed (debounces automatic distribution).
    pub membership_changed_ms: i64,
    pub node_timeout_ms: i64,
    pub require_full_coverage: bool,
    pub ok: bool,
    /// Set when something that nodes.conf records changed.
    pub dirty: bool,
}

pub fn slot_ranges(slots: impl IntoIterator<Item = u16>) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for s in slots {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

impl ClusterState {
    pub fn new(myself: ClusterNode, node_timeout_ms: i64) -> ClusterState {
        let id = myself.id.clone();
        let mut nodes = BTreeMap::new();
        nodes.insert(id.clone(), myself);
        ClusterState {
            myself: id,
            nodes,
            current_epoch: 0,
            last_vote_epoch: 0,
            slots: vec![None; SLOTS],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            handing_off: Default::default(),
            owner_not_claiming: Default::default(),
            claiming: Default::default(),
            manual: false,
            banned: HashMap::new(),
            membership_changed_ms: 0,
            node_timeout_ms,
            require_full_coverage: true,
            ok: false,
            dirty: true,
        }
    }

    pub fn me(&self) -> &ClusterNode {
        &self.nodes[&self.myself]
    }

    pub fn me_mut(&mut self) -> &mut ClusterNode {
        self.nodes
            .get_mut(&self.myself)
            .expect("myself is always in the node table")
    }

    pub fn slots_of(&self, id: &str) -> Vec<u16> {
        (0..SLOTS as u16)
            .filter(|&s| self.slots[s as usize].as_deref() == Some(id))
            .collect()
    }

    pub fn slot_count(&self, id: &str) -> usize {
        self.slots
            .iter()
            .filter(|o| o.as_deref() == Some(id))
            .count()
    }

    pub fn assigned(&self) -> usize {
        self.slots.iter().filter(|o| o.is_some()).count()
    }

    /// Masters that own at least one slot (the spec's "cluster size", used for the FAIL quorum).
    pub fn size(&self) -> usize {
        self.slot_owners()
            .into_iter()
            .filter(|id| self.nodes.get(*id).is_some_and(|n| n.is_master()))
            .count()
    }

    /// The nodes that own at least one slot, found in one pass over the slot table: this runs
    /// on every gossip message, and a pass per node made it O(nodes × 16384).
    fn slot_owners(&self) -> Vec<&str> {
        let mut owners: Vec<&str> = Vec::new();
        for id in self.slots.iter().flatten() {
            // Owners come in runs of slots: compare with the last one first.
            if owners.last() != Some(&id.as_str()) && !owners.contains(&id.as_str()) {
                owners.push(id);
            }
        }
        owners
    }

    pub fn assign(&mut self, slot: u16, owner: Option<&str>) {
        if !self.owner_not_claiming.is_empty() {
            self.owner_not_claiming.remove(&slot);
        }
        let s = &mut self.slots[slot as usize];
        if s.as_deref() != owner {
            *s = owner.map(str::to_string);
            self.dirty = true;
        }
    }

    /// spec: "currentEpoch is the greatest configEpoch seen"; bump and take a new config epoch.
    pub fn bump_config_epoch(&mut self) -> u64 {
        self.current_epoch += 1;
        let e = self.current_epoch;
        self.me_mut().config_epoch = e;
        self.dirty = true;
        e
    }

    /// `to` accepted slots we handed it and took them at `epoch` (its Claim reply): record
    /// its new config epoch now, before its gossip says so.
    pub fn note_claim_accepted(&mut self, to: &str, epoch: u64) {
        if let Some(n) = self.nodes.get_mut(to) {
            n.config_epoch = n.config_epoch.max(epoch);
        }
        self.current_epoch = self
            .nodes
            .values()
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0)
            .max(self.current_epoch);
    }

    /// Adds a node we learnt of (MEET, gossip). Returns false when it is banned or known.
    pub fn add_node(&mut self, node: ClusterNode, now_ms: i64) -> bool {
        if self.nodes.contains_key(&node.id)
            || self.banned.get(&node.id).is_some_and(|&t| t > now_ms)
        {
            return false;
        }
        self.nodes.insert(node.id.clone(), node);
        self.membership_changed_ms = now_ms;
        self.dirty = true;
        true
    }

    /// CLUSTER FORGET: removes a node, releases its slots and bans it from gossip for a minute.
    pub fn forget(&mut self, id: &str, now_ms: i64) -> bool {
        if id == self.myself || self.nodes.remove(id).is_none() {
            return false;
        }
        for s in self.slots.iter_mut() {
            if s.as_deref() == Some(id) {
                *s = None;
            }
        }
        for n in self.nodes.values_mut() {
            n.fail_reports.remove(id);
        }
        self.banned.insert(id.to_string(), now_ms + FORGET_BAN_MS);
        self.membership_changed_ms = now_ms;
        self.dirty = true;
        true
    }

    /// Applies what a node says about itself (every PING/PONG/MEET header). Returns actions.
    pub fn process_header(&mut self, h: &Header, is_pong: bool, now_ms: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        if h.id == self.myself {
            return actions;
        }
        if h.current_epoch > self.current_epoch {
            self.current_epoch = h.current_epoch;
            self.dirty = true;
        }
        if h.manual_slots && !self.manual {
            self.manual = true;
            self.dirty = true;
        }
        let Some(node) = self.nodes.get_mut(&h.id) else {
            return actions;
        };
        if node.endpoint != h.endpoint && !h.endpoint.ip.is_empty() {
            // spec: a node's address may change (a rescheduled pod); its ID stays.
            node.endpoint = h.endpoint.clone();
            self.dirty = true;
        }
        node.seen = true;
        node.flags &= !(flag::HANDSHAKE | flag::MEET | flag::NOADDR);
        let role = if h.flags & flag::REPLICA != 0 {
            flag::REPLICA
        } else {
            flag::MASTER
        };
        if node.flags & (flag::MASTER | flag::REPLICA) != role {
            node.flags = (node.flags & !(flag::MASTER | flag::REPLICA)) | role;
            self.dirty = true;
        }
        if (node.flags ^ h.flags) & flag::DRAINING != 0 {
            node.flags = (node.flags & !flag::DRAINING) | (h.flags & flag::DRAINING);
            self.membership_changed_ms = now_ms;
        }
        node.replica_of = h.replica_of.clone();
        node.provisional = h.provisional;
        node.keys = h.keys;
        if is_pong {
            node.ping_sent_ms = 0;
            node.pong_received_ms = now_ms;
            if node.pfailed() {
                node.flags &= !flag::PFAIL;
                self.dirty = true;
            }
        }
        // Any message proves the node is reachable again; FAIL is cleared per the spec's rules.
        if node.failed() {
            let owns = self
                .slots
                .iter()
                .any(|o| o.as_deref() == Some(h.id.as_str()));
            let node = self.nodes.get_mut(&h.id).expect("checked above");
            if !node.is_master()
                || !owns
                || now_ms - node.fail_time_ms > self.node_timeout_ms * FAIL_UNDO_TIME_MULT
            {
                node.flags &= !flag::FAIL;
                self.dirty = true;
            }
        }
        let node = self.nodes.get_mut(&h.id).expect("checked above");
        // Config epochs only grow; a lower one is an old message overtaken by a newer one.
        let known_epoch = node.config_epoch;
        if h.config_epoch > node.config_epoch {
            node.config_epoch = h.config_epoch;
            self.dirty = true;
        }
        if role == flag::MASTER {
            let fresh = h.config_epoch >= known_epoch;
            let node = self.nodes.get_mut(&h.id).expect("checked above");
            node.slots_epoch = node.slots_epoch.max(h.config_epoch);
            actions.extend(self.update_slots_from(&h.id, h.config_epoch, &h.slots, fresh));
            self.handle_epoch_collision(h);
        }
        actions
    }

    /// spec (clusterUpdateSlotsConfigWith): a claim wins a slot that is unassigned or owned at a
    /// lower config epoch. A claim that loses to a higher epoch earns the claimant an UPDATE.
    /// A provisional claim (epoch 0, automatic distribution) never takes a slot from anyone.
    /// `fresh`: the message carries the newest config epoch we know of the sender (an older
    /// one may predate a handoff, and its silence about a slot means nothing).
    fn update_slots_from(
        &mut self,
        id: &str,
        epoch: u64,
        ranges: &[(u16, u16)],
        fresh: bool,
    ) -> Vec<Action> {
        let provisional = self.nodes.get(id).is_some_and(|n| n.provisional);
        let mut claimed = vec![false; SLOTS];
        for &(a, b) in ranges {
            for s in a..=b.min(SLOTS as u16 - 1) {
                claimed[s as usize] = true;
            }
        }
        let mut stale_owner: Option<String> = None;
        for (s, &is_claimed) in claimed.iter().enumerate() {
            let his = self.slots[s].as_deref() == Some(id);
            if is_claimed == his {
                // The common case: nothing changed (or the owner claims it again).
                if his && !self.owner_not_claiming.is_empty() {
                    self.owner_not_claiming.remove(&(s as u16));
                }
                continue;
            }
            if !is_claimed {
                // The owner stopped claiming it (gave it away): the new owner's claim will win
                // when it arrives; until then the slot stays bound to the old owner, which
                // redirects there. A message older than what we know of the sender (say, sent
                // before a slot arrived there) proves nothing.
                if fresh
                    && !self.importing.contains_key(&(s as u16))
                    && !self.handing_off.contains(&(s as u16))
                {
                    self.owner_not_claiming.insert(s as u16);
                }
                continue;
            }
            let unclaimed = self.owner_not_claiming.contains(&(s as u16));
            match self.slots[s].clone() {
                None => {
                    if !provisional && !self.importing.contains_key(&(s as u16)) {
                        self.assign(s as u16, Some(id));
                    }
                }
                Some(o) => {
                    // The epoch at which the owner's claim of the slot is known to hold.
                    let owner_epoch = match self.nodes.get(&o) {
                        Some(n) if o == self.myself => n.config_epoch,
                        Some(n) => n.slots_epoch,
                        None => 0,
                    };
                    if !provisional && (epoch > owner_epoch || unclaimed) {
                        if o == self.myself {
                            self.migrating.remove(&(s as u16));
                        }
                        self.assign(s as u16, Some(id));
                    } else if epoch < owner_epoch && !unclaimed {
                        stale_owner = Some(o);
                    }
                }
            }
        }
        match stale_owner {
            Some(owner) => vec![Action::Update {
                to: id.to_string(),
                owner,
            }],
            None => Vec::new(),
        }
    }

    /// spec (clusterHandleConfigEpochCollision): two masters with the same config epoch; the
    /// one with the smaller node ID takes a new epoch. Provisional claims are not real claims.
    fn handle_epoch_collision(&mut self, h: &Header) {
        let me = self.me();
        if h.config_epoch != me.config_epoch || !me.is_master() || me.provisional || h.provisional {
            return;
        }
        if h.id.as_str() <= self.myself.as_str() {
            return;
        }
        self.bump_config_epoch();
    }

    /// UPDATE message: `owner` holds `ranges` at `epoch`.
    pub fn process_update(&mut self, owner: &str, epoch: u64, ranges: &[(u16, u16)]) {
        let Some(n) = self.nodes.get_mut(owner) else {
            return;
        };
        if n.config_epoch >= epoch {
            return;
        }
        n.config_epoch = epoch;
        n.slots_epoch = epoch;
        self.update_slots_from(owner, epoch, ranges, true);
    }

    /// Gossip entries: failure reports and new nodes. `sender` must be a known node.
    pub fn process_gossip(
        &mut self,
        sender: &str,
        entries: &[GossipEntry],
        now_ms: i64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let sender_is_master = self.nodes.get(sender).is_some_and(|n| n.is_master());
        for g in entries {
            if g.id == self.myself {
                continue;
            }
            match self.nodes.get_mut(&g.id) {
                Some(n) => {
                    if sender_is_master {
                        if g.flags & (flag::PFAIL | flag::FAIL) != 0 {
                            n.fail_reports.insert(sender.to_string(), now_ms);
                        } else {
                            n.fail_reports.remove(sender);
                        }
                    }
                    // spec: trust a fresher pong seen by others when we have nothing pending.
                    if n.ping_sent_ms == 0
                        && n.fail_reports.is_empty()
                        && g.pong_received_ms > n.pong_received_ms
                        && g.pong_received_ms <= now_ms
                    {
                        n.pong_received_ms = g.pong_received_ms;
                    }
                }
                None => {
                    let banned = self.banned.get(&g.id).is_some_and(|&t| t > now_ms);
                    if !banned && g.flags & flag::NOADDR == 0 && !g.endpoint.ip.is_empty() {
                        actions.push(Action::Meet {
                            ip: g.endpoint.ip.clone(),
                            bus_port: g.endpoint.bus_port,
                        });
                    }
                }
            }
        }
        actions.extend(self.check_failures(now_ms));
        actions
    }

    /// FAIL broadcast received.
    pub fn process_fail(&mut self, id: &str, now_ms: i64) {
        if id == self.myself {
            return;
        }
        if let Some(n) = self.nodes.get_mut(id)
            && !n.failed()
        {
            n.flags = (n.flags | flag::FAIL) & !flag::PFAIL;
            n.fail_time_ms = now_ms;
            self.dirty = true;
        }
    }

    /// Marks nodes PFAIL whose ping went unanswered for node-timeout.
    pub fn check_timeouts(&mut self, now_ms: i64) {
        let timeout = self.node_timeout_ms;
        let me = self.myself.clone();
        let mut changed = false;
        for n in self.nodes.values_mut() {
            if n.id == me || n.flags & (flag::HANDSHAKE | flag::NOADDR) != 0 {
                continue;
            }
            if n.ping_sent_ms != 0
                && now_ms - n.ping_sent_ms > timeout
                && !n.pfailed()
                && !n.failed()
            {
                n.flags |= flag::PFAIL;
                changed = true;
            }
        }
        self.dirty |= changed;
    }

    /// spec: PFAIL becomes FAIL when a majority of masters (counting us) report it, within the
    /// report validity window.
    pub fn check_failures(&mut self, now_ms: i64) -> Vec<Action> {
        let validity = self.node_timeout_ms * FAIL_REPORT_VALIDITY_MULT;
        let quorum = self.size() / 2 + 1;
        let me_master = self.me().is_master();
        let mut failing = Vec::new();
        for n in self.nodes.values_mut() {
            n.fail_reports.retain(|_, t| now_ms - *t <= validity);
            if n.pfailed() && !n.failed() {
                let votes = n.fail_reports.len() + usize::from(me_master);
                if votes >= quorum {
                    failing.push(n.id.clone());
                }
            }
        }
        failing
            .into_iter()
            .map(|id| {
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.flags = (n.flags | flag::FAIL) & !flag::PFAIL;
                    n.fail_time_ms = now_ms;
                }
                self.dirty = true;
                Action::BroadcastFail { node: id }
            })
            .collect()
    }

    /// Recomputes `cluster_state`: ok when every slot is served by a reachable master (or full
    /// coverage is not required) and we can see a majority of the masters that own slots.
    pub fn update_state(&mut self) -> bool {
        let mut ok = true;
        if self.require_full_coverage {
            for s in &self.slots {
                match s {
                    None => {
                        ok = false;
                        break;
                    }
                    Some(id) => {
                        if self.nodes.get(id).is_none_or(|n| n.failed()) {
                            ok = false;
                            break;
                        }
                    }
                }
            }
        }
        if ok {
            let owners: Vec<&ClusterNode> = self
                .slot_owners()
                .into_iter()
                .filter_map(|id| self.nodes.get(id))
                .filter(|n| n.is_master())
                .collect();
            let reachable = owners
                .iter()
                .filter(|n| !n.failed() && !n.pfailed())
                .count();
            if !owners.is_empty() && reachable < owners.len() / 2 + 1 {
                ok = false;
            }
        }
        let changed = ok != self.ok;
        self.ok = ok;
        changed
    }

    /// What we say about ourselves in every message.
    pub fn header(&self, keys: u64) -> Header {
        let me = self.me();
        Header {
            id: me.id.clone(),
            endpoint: me.endpoint.clone(),
            flags: me.flags & !flag::MYSELF,
            current_epoch: self.current_epoch,
            config_epoch: me.config_epoch,
            slots: slot_ranges(
                self.slots_of(&me.id)
                    .into_iter()
                    .filter(|s| !self.claiming.contains(s)),
            ),
            replica_of: me.replica_of.clone(),
            provisional: me.provisional,
            keys,
            manual_slots: self.manual,
        }
    }

    /// The gossip section of a message to `to`: a tenth of the other nodes (at least 3) chosen
    /// at random, plus every node we suspect, so failure reports spread fast (clusterSendPing).
    pub fn gossip_for(&self, to: &str) -> Vec<GossipEntry> {
        use rand::seq::IndexedRandom;
        let others: Vec<&ClusterNode> = self
            .nodes
            .values()
            .filter(|n| n.id != self.myself && n.id != to && n.flags & flag::HANDSHAKE == 0)
            .collect();
        let wanted = (others.len() / 10).max(3).min(others.len());
        let mut picked: Vec<&ClusterNode> = others
            .choose_multiple(&mut rand::rng(), wanted)
            .copied()
            .collect();
        for n in &others {
            if (n.pfailed() || n.failed()) && !picked.iter().any(|p| p.id == n.id) {
                picked.push(n);
            }
        }
        picked
            .into_iter()
            .map(|n| GossipEntry {
                id: n.id.clone(),
                endpoint: n.endpoint.clone(),
                flags: n.flags,
                ping_sent_ms: n.ping_sent_ms,
                pong_received_ms: n.pong_received_ms,
            })
            .collect()
    }

    /// Nodes to ping now, by clusterCron's rules: any node whose pong is older than half the
    /// node timeout; an unanswered ping is retried (keeping its send time, which PFAIL is
    /// measured from); and once a second the node with the oldest pong among five random ones.
    pub fn pings_due(&mut self, now_ms: i64, once_a_second: bool) -> Vec<String> {
        use rand::seq::IndexedRandom;
        let half = self.node_timeout_ms / 2;
        let me = self.myself.clone();
        let mut due = Vec::new();
        let mut idle: Vec<String> = Vec::new();
        for n in self.nodes.values_mut() {
            if n.id == me {
                continue;
            }
            if n.ping_sent_ms == 0 && now_ms - n.pong_received_ms > half {
                n.ping_sent_ms = now_ms;
                n.ping_attempt_ms = now_ms;
                due.push(n.id.clone());
            } else if n.ping_sent_ms == 0 {
                idle.push(n.id.clone());
            } else if now_ms - n.ping_attempt_ms > half.clamp(100, 1000) {
                n.ping_attempt_ms = now_ms;
                due.push(n.id.clone());
            }
        }
        if once_a_second && !idle.is_empty() {
            let sample: Vec<&String> = idle.choose_multiple(&mut rand::rng(), 5).collect();
            if let Some(id) = sample
                .into_iter()
                .min_by_key(|id| self.nodes[*id].pong_received_ms)
                .cloned()
            {
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.ping_sent_ms = now_ms;
                    n.ping_attempt_ms = now_ms;
                }
                due.push(id);
            }
        }
        due
    }

    /// Members for the deterministic split: masters we heard from, failed ones included (a
    /// node that is only down keeps its share; it is not a reason to rebalance).
    pub fn members(&self) -> Vec<&ClusterNode> {
        let mut m: Vec<&ClusterNode> = self
            .nodes
            .values()
            .filter(|n| {
                n.is_master() && (n.seen || n.id == self.myself) && n.flags & flag::HANDSHAKE == 0
            })
            .collect();
        m.sort_by_key(|n| n.endpoint.sort_key());
        m
    }

    /// The even, deterministic layout for the current members (redis-cli's split: 3 nodes ->
    /// 0-5460, 5461-10922, 10923-16383).
    /// Draining nodes get no share (unless every member is draining).
    pub fn target_layout(&self) -> Vec<(String, u16, u16)> {
        let members = self.members();
        let staying: Vec<String> = members
            .iter()
            .filter(|n| n.flags & flag::DRAINING == 0)
            .map(|n| n.id.clone())
            .collect();
        if staying.is_empty() {
            return split_evenly(&members.iter().map(|n| n.id.clone()).collect::<Vec<_>>());
        }
        split_evenly(&staying)
    }
}

/// redis-cli's allocation of 16384 slots over `ids` in order.
pub fn split_evenly(ids: &[String]) -> Vec<(String, u16, u16)> {
    let n = ids.len();
    if n == 0 {
        return Vec::new();
    }
    let per = SLOTS as f64 / n as f64;
    let mut out = Vec::with_capacity(n);
    let mut first: i64 = 0;
    let mut cursor = 0f64;
    for (i, id) in ids.iter().enumerate() {
        let mut last = (cursor + per - 1.0).round() as i64;
        if last > SLOTS as i64 || i == n - 1 {
            last = SLOTS as i64 - 1;
        }
        if last < first {
            last = first;
        }
        out.push((id.clone(), first as u16, last as u16));
        first = last + 1;
        cursor += per;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            ip: "127.0.0.1".into(),
            port,
            bus_port: port + 10000,
            hostname: String::new(),
            http_port: 0,
        }
    }

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 40).collect()
    }

    fn header(st: &ClusterState) -> Header {
        let me = st.me();
        Header {
            id: me.id.clone(),
            endpoint: me.endpoint.clone(),
            flags: me.flags & !flag::MYSELF,
            current_epoch: st.current_epoch,
            config_epoch: me.config_epoch,
            slots: slot_ranges(st.slots_of(&me.id)),
            replica_of: None,
            provisional: me.provisional,
            keys: 0,
            manual_slots: st.manual,
        }
    }

    fn node(c: char, port: u16) -> ClusterState {
        ClusterState::new(
            ClusterNode::new(id(c), ep(port), flag::MYSELF | flag::MASTER),
            1000,
        )
    }

    fn introduce(a: &mut ClusterState, b: &ClusterState) {
        let mut n = ClusterNode::new(b.myself.clone(), b.me().endpoint.clone(), flag::MASTER);
        n.seen = true;
        a.add_node(n, 0);
    }

    #[test]
    fn split_matches_redis_cli() {
        let ids: Vec<String> = ['a', 'b', 'c'].iter().map(|&c| id(c)).collect();
        let l = split_evenly(&ids);
        assert_eq!(
            l.iter().map(|(_, a, b)| (*a, *b)).collect::<Vec<_>>(),
            vec![(0, 5460), (5461, 10922), (10923, 16383)]
        );
        let four: Vec<String> = ['a', 'b', 'c', 'd'].iter().map(|&c| id(c)).collect();
        let l = split_evenly(&four);
        assert_eq!(
            l.iter().map(|(_, a, b)| (*a, *b)).collect::<Vec<_>>(),
            vec![(0, 4095), (4096, 8191), (8192, 12287), (12288, 16383)]
        );
    }

    #[test]
    fn higher_config_epoch_wins_a_slot_and_stale_claims_get_update() {
        let mut a = node('a', 7001);
        let mut b = node('b', 7002);
        introduce(&mut a, &b);
        introduce(&mut b, &a);
        b.me_mut().config_epoch = 5;
        for s in 0..100 {
            b.assign(s, Some(&id('b')));
        }
        // a learns b's claim.
        a.process_header(&header(&b), true, 10);
        assert_eq!(a.slots[50].as_deref(), Some(id('b').as_str()));
        // c claims the same slots with a lower epoch: a answers with an UPDATE about b.
        let mut c = node('c', 7003);
        introduce(&mut a, &c);
        c.me_mut().config_epoch = 3;
        for s in 0..100 {
            c.assign(s, Some(&id('c')));
        }
        let actions = a.process_header(&header(&c), true, 20);
        assert_eq!(a.slots[50].as_deref(), Some(id('b').as_str()));
        assert!(actions.contains(&Action::Update {
            to: id('c'),
            owner: id('b')
        }));
    }

    #[test]
    fn pfail_then_fail_by_majority_then_cleared() {
        // Three masters each owning slots; c stops answering.
        let mut a = node('a', 7001);
        for (c, p) in [('b', 7002), ('c', 7003)] {
            let mut n = ClusterNode::new(id(c), ep(p), flag::MASTER);
            n.seen = true;
            a.add_node(n, 0);
        }
        let ids: Vec<String> = ['a', 'b', 'c'].iter().map(|&c| id(c)).collect();
        for (owner, lo, hi) in split_evenly(&ids) {
            for s in lo..=hi {
                a.assign(s, Some(&owner));
            }
        }
        a.nodes.get_mut(&id('c')).unwrap().ping_sent_ms = 100;
        a.check_timeouts(1000);
        assert!(!a.nodes[&id('c')].pfailed(), "not yet past node-timeout");
        a.check_timeouts(1101);
        assert!(a.nodes[&id('c')].pfailed());
        // b reports c as failing: with us that is 2 of 3 masters.
        let report = GossipEntry {
            id: id('c'),
            endpoint: ep(7003),
            flags: flag::MASTER | flag::PFAIL,
            ping_sent_ms: 0,
            pong_received_ms: 0,
        };
        let actions = a.process_gossip(&id('b'), &[report], 1200);
        assert_eq!(actions, vec![Action::BroadcastFail { node: id('c') }]);
        assert!(a.nodes[&id('c')].failed());
        a.update_state();
        assert!(!a.ok, "a slot is served by a failed node");
        // c comes back: its FAIL is cleared after node-timeout * 2 (it owns slots).
        let mut hc = Header {
            id: id('c'),
            endpoint: ep(7003),
            flags: flag::MASTER,
            current_epoch: 0,
            config_epoch: 0,
            slots: vec![(10923, 16383)],
            replica_of: None,
            provisional: false,
            keys: 0,
            manual_slots: false,
        };
        a.process_header(&hc, true, 1300);
        assert!(a.nodes[&id('c')].failed());
        hc.current_epoch = 0;
        a.process_header(&hc, true, 1200 + 2001);
        assert!(!a.nodes[&id('c')].failed());
        a.update_state();
        assert!(a.ok);
    }

    #[test]
    fn forget_bans_gossip_readd() {
        let mut a = node('a', 7001);
        let mut n = ClusterNode::new(id('b'), ep(7002), flag::MASTER);
        n.seen = true;
        a.add_node(n, 0);
        assert!(a.forget(&id('b'), 10));
        assert!(!a.forget(&id('a'), 10), "cannot forget myself");
        let g = GossipEntry {
            id: id('b'),
            endpoint: ep(7002),
            flags: flag::MASTER,
            ping_sent_ms: 0,
            pong_received_ms: 0,
        };
        assert!(
            a.process_gossip(&id('a'), std::slice::from_ref(&g), 20)
                .is_empty()
        );
        let later = a.process_gossip(&id('a'), &[g], 10 + FORGET_BAN_MS + 1);
        assert_eq!(
            later,
            vec![Action::Meet {
                ip: "127.0.0.1".into(),
                bus_port: 17002
            }]
        );
    }

    #[test]
    fn a_slot_given_away_stays_covered_until_the_new_owner_claims_it() {
        let mut a = node('a', 7001);
        let mut b = node('b', 7002);
        let mut c = node('c', 7003);
        introduce(&mut a, &b);
        introduce(&mut a, &c);
        a.assign(0, Some(&id('a')));
        b.me_mut().config_epoch = 2;
        for s in 1..100 {
            b.assign(s, Some(&id('b')));
        }
        c.me_mut().config_epoch = 3;
        a.process_header(&header(&b), true, 10);
        assert_eq!(a.assigned(), 100);
        // b hands slots 50..100 to c; b's message arrives before c's claim does.
        for s in 50..100 {
            b.assign(s, Some(&id('c')));
        }
        a.process_header(&header(&b), true, 20);
        assert_eq!(
            a.assigned(),
            100,
            "a handoff in flight never uncovers a slot"
        );
        assert_eq!(a.slots[60].as_deref(), Some(id('b').as_str()));
        // c claims them with an epoch no higher than b's: the old owner gave them up, so the
        // claim wins and earns no UPDATE.
        c.me_mut().config_epoch = 1;
        for s in 50..100 {
            c.assign(s, Some(&id('c')));
        }
        let actions = a.process_header(&header(&c), true, 30);
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(a.slots[60].as_deref(), Some(id('c').as_str()));
        assert_eq!(a.slots[10].as_deref(), Some(id('b').as_str()));
        assert!(a.owner_not_claiming.is_empty());
    }

    #[test]
    fn an_epoch_learnt_from_a_claim_reply_does_not_hold_the_owners_old_slots() {
        let mut a = node('a', 7001);
        let mut b = node('b', 7002);
        let c = node('c', 7003);
        introduce(&mut a, &b);
        introduce(&mut a, &c);
        b.me_mut().config_epoch = 2;
        b.assign(10, Some(&id('b')));
        a.process_header(&header(&b), true, 10);
        assert_eq!(a.slots[10].as_deref(), Some(id('b').as_str()));
        // a hands b other slots; b's Claim reply says b is at epoch 9 now. b has meanwhile given
        // slot 10 to c, which claims it at epoch 5: that claim is newer than b's of slot 10.
        a.note_claim_accepted(&id('b'), 9);
        let mut hc = header(&c);
        hc.config_epoch = 5;
        hc.slots = vec![(10, 10)];
        let actions = a.process_header(&hc, true, 20);
        assert!(
            actions.is_empty(),
            "no UPDATE from a stale view of b: {actions:?}"
        );
        assert_eq!(a.slots[10].as_deref(), Some(id('c').as_str()));
    }

    #[test]
    fn provisional_claims_never_take_slots() {
        let mut a = node('a', 7001);
        let mut b = node('b', 7002);
        introduce(&mut a, &b);
        b.me_mut().provisional = true;
        for s in 0..16384u16 {
            b.assign(s, Some(&id('b')));
        }
        a.process_header(&header(&b), true, 1);
        assert_eq!(a.assigned(), 0);
    }
}
