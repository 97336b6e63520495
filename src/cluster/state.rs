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
    /// The shard (a master and its replicas): a replica takes its master's, and a replica that
    /// takes over keeps it, so the shard keeps its place in the automatic layout.
    pub shard_id: String,
    /// Replication offset it last announced (a master's stream, or what a replica applied).
    pub repl_offset: u64,
    /// When we last voted for a replica of this (failed) master: one vote per master per
    /// node-timeout * 2, as the spec says.
    pub voted_time_ms: i64,
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
            repl_offset: 0,
            voted_time_ms: 0,
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
    pub shard_id: String,
    pub repl_offset: u64,
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
    /// We lost our last slots to a node of our own shard (a replica that took over after a
    /// failover): we are its replica now.
    BecameReplica { master: String },
    /// Our master lost its last slots to a node of our shard (a sibling replica took over
    /// while we did not hear of it): we follow that node now.
    FollowedNewMaster { master: String },
}

/// A replica's failover election (the spec's "replica election"), or a manual failover
/// (CLUSTER FAILOVER) in progress.
#[derive(Debug, Clone, Default)]
pub struct Election {
    /// When this attempt may ask for votes (after its delay and rank); 0: none scheduled.
    pub start_ms: i64,
    /// Votes were asked for at `epoch`.
    pub sent: bool,
    pub epoch: u64,
    pub votes: usize,
    /// CLUSTER FAILOVER [FORCE]: voters need not see the master failed.
    pub manual: bool,
    /// Manual failover without FORCE: the master's offset to reach before asking for votes
    /// (None until the master answered).
    pub manual_offset: Option<u64>,
    /// The master was asked to pause (manual failover without FORCE).
    pub manual_asked: bool,
    pub manual_deadline_ms: i64,
}

/// What the failover step of the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum FailoverStep {
    /// Ask every master for its vote at `epoch`.
    RequestVotes { epoch: u64, manual: bool },
    /// Ask the master to pause writes and say its offset (manual failover).
    AskMaster { master: String },
    /// We won: we serve the old master's slots now.
    Promoted { old_master: String },
    /// A manual failover ran out of time.
    ManualTimedOut,
}

/// A manual failover gives up after this long (Redis's CLUSTER_MF_TIMEOUT).
pub const MANUAL_FAILOVER_TIMEOUT_MS: i64 = 5000;

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
    /// Automatic distribution: when a batch of each importing slot last came (or, after a
    /// restart, when the import was first seen). An import its source gave up on without a
    /// word is dropped after a minute or more (see the driver's tick), so an empty master is not kept
    /// from becoming a replica by it for ever.
    pub import_seen_ms: HashMap<u16, i64>,
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
    /// Slots this node handed over, keys and all, and has not served since (kept in
    /// nodes.conf). Keys of them found here after a restart come from data files older than
    /// the handover (a snapshot taken before it, or a log cut short): the new owner got every
    /// key then and has gone on since, so they are dropped, not pushed back as strays (that
    /// would bring back keys it deleted).
    pub released: std::collections::BTreeSet<u16>,
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
    /// This replica's failover election, if any.
    pub election: Election,
    /// Replicas per shard that automatic distribution sets up (`cluster.replicas`).
    pub replicas_per_shard: usize,
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
            import_seen_ms: HashMap::new(),
            handing_off: Default::default(),
            released: Default::default(),
            owner_not_claiming: Default::default(),
            claiming: Default::default(),
            manual: false,
            banned: HashMap::new(),
            membership_changed_ms: 0,
            node_timeout_ms,
            require_full_coverage: true,
            ok: false,
            dirty: true,
            election: Election::default(),
            replicas_per_shard: 0,
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
        if owner == Some(self.myself.as_str()) && self.released.remove(&slot) {
            self.dirty = true;
        }
        let s = &mut self.slots[slot as usize];
        if s.as_deref() != owner {
            *s = owner.map(str::to_string);
            self.dirty = true;
        }
    }

    /// We handed `slot` to `to`, with every key of it: see [`ClusterState::released`].
    pub fn hand_over(&mut self, slot: u16, to: &str) {
        self.assign(slot, Some(to));
        if to != self.myself {
            self.released.insert(slot);
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
        let became_replica = role == flag::REPLICA && node.is_master();
        if node.flags & (flag::MASTER | flag::REPLICA) != role {
            node.flags = (node.flags & !(flag::MASTER | flag::REPLICA)) | role;
            self.dirty = true;
        }
        if (node.flags ^ h.flags) & flag::NOFAILOVER != 0 {
            node.flags = (node.flags & !flag::NOFAILOVER) | (h.flags & flag::NOFAILOVER);
            self.dirty = true;
        }
        if (node.flags ^ h.flags) & flag::DRAINING != 0 {
            node.flags = (node.flags & !flag::DRAINING) | (h.flags & flag::DRAINING);
            self.membership_changed_ms = now_ms;
        }
        // A replica of ours that took over (failover): our slots go to it, and we follow it.
        let took_over_from_us =
            node.replica_of.as_deref() == Some(self.myself.as_str()) && role == flag::MASTER;
        node.replica_of = h.replica_of.clone();
        node.provisional = h.provisional;
        node.keys = h.keys;
        node.repl_offset = h.repl_offset;
        if !h.shard_id.is_empty() && node.shard_id != h.shard_id {
            node.shard_id = h.shard_id.clone();
            self.dirty = true;
        }
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
            let my_shard = self.me().shard_id.clone();
            let node = self.nodes.get_mut(&h.id).expect("checked above");
            node.slots_epoch = node.slots_epoch.max(h.config_epoch);
            let same_shard = took_over_from_us || node.shard_id == my_shard;
            let mine_before = if same_shard {
                self.slot_count(&self.shard_master())
            } else {
                0
            };
            actions.extend(self.update_slots_from(&h.id, h.config_epoch, &h.slots, fresh));
            actions.extend(self.follow_if_taken_over(&h.id, mine_before, now_ms));
            self.handle_epoch_collision(h);
        } else {
            if became_replica {
                // A node that became a replica serves no slots: any claim takes them (its new
                // master's arrives at a higher epoch), and until then it redirects. Checked on
                // the role change only: a slot scan per gossip message is too much for every
                // message.
                let held = self.slots_of(&h.id);
                self.owner_not_claiming.extend(held);
            }
            // A replica announces its master's config epoch. An older one than ours: it missed
            // its master's newest epoch (taken after an epoch collision, say, by a master that
            // died before its next ping to it), and voters would refuse its failover for good
            // as a stale view. Tell it, as an UPDATE tells a node whose claim is stale.
            if let Some(master) = h.replica_of.as_deref()
                && self
                    .nodes
                    .get(master)
                    .is_some_and(|m| m.is_master() && m.config_epoch > h.config_epoch)
            {
                actions.push(Action::Update {
                    to: h.id.clone(),
                    owner: master.to_string(),
                });
            }
        }
        actions
    }

    /// The master of our shard: ourselves, or the master we replicate.
    fn shard_master(&self) -> String {
        let me = self.me();
        match &me.replica_of {
            Some(m) if !me.is_master() => m.clone(),
            _ => self.myself.clone(),
        }
    }

    /// spec (clusterUpdateSlotsConfigWith): when the master of our shard (we, or the master we
    /// replicate) lost its last slots (`mine_before` of them before the claim) to a node of our
    /// own shard (a replica promoted while we were down or cut off), we become that node's
    /// replica. Not for slots lost any other way: a node meeting another cluster keeps its
    /// role (its keys are pushed to their owners instead).
    fn follow_if_taken_over(
        &mut self,
        winner: &str,
        mine_before: usize,
        now_ms: i64,
    ) -> Vec<Action> {
        let me = self.me();
        let master = self.shard_master();
        if mine_before == 0
            || me.flags & flag::DRAINING != 0
            || master == winner
            || self.slot_count(&master) > 0
        {
            return Vec::new();
        }
        let was_master = master == self.myself;
        self.set_my_master(winner, now_ms);
        let master = winner.to_string();
        vec![if was_master {
            Action::BecameReplica { master }
        } else {
            Action::FollowedNewMaster { master }
        }]
    }

    /// CLUSTER REPLICATE, or following the replica that took over: this node becomes a replica
    /// of `master`. It serves no slots and joins its master's shard.
    pub fn set_my_master(&mut self, master: &str, now_ms: i64) {
        let shard = self.nodes.get(master).map(|n| n.shard_id.clone());
        let me_id = self.myself.clone();
        for s in 0..SLOTS as u16 {
            if self.slots[s as usize].as_deref() == Some(me_id.as_str()) {
                self.assign(s, None);
            }
        }
        self.migrating.clear();
        self.importing.clear();
        // A replica's data is its master's: what it handed over as a master no longer says
        // anything of its files.
        self.released.clear();
        let me = self.me_mut();
        me.flags = (me.flags & !flag::MASTER) | flag::REPLICA;
        me.replica_of = Some(master.to_string());
        me.provisional = false;
        if let Some(shard) = shard {
            me.shard_id = shard;
        }
        self.election = Election::default();
        self.membership_changed_ms = now_ms;
        self.dirty = true;
    }

    /// The replicas we know of `master`.
    pub fn replicas_of<'a>(&'a self, master: &'a str) -> impl Iterator<Item = &'a ClusterNode> {
        self.nodes
            .values()
            .filter(move |n| n.replica_of.as_deref() == Some(master) && !n.is_master())
    }

    /// A replica takes over its master's slots: at `epoch` when it won an election, or at a
    /// new epoch of its own without asking (CLUSTER FAILOVER TAKEOVER). Returns the old master.
    pub fn promote(&mut self, epoch: Option<u64>, now_ms: i64) -> Option<String> {
        let old = self.me().replica_of.clone()?;
        let me_id = self.myself.clone();
        for s in 0..SLOTS as u16 {
            if self.slots[s as usize].as_deref() == Some(old.as_str()) {
                self.assign(s, Some(&me_id));
            }
        }
        let me = self.me_mut();
        me.flags = (me.flags & !flag::REPLICA) | flag::MASTER;
        me.replica_of = None;
        match epoch {
            Some(e) => {
                me.config_epoch = me.config_epoch.max(e);
                self.current_epoch = self.current_epoch.max(e);
            }
            None => {
                self.bump_config_epoch();
            }
        }
        // The old master is ours now, in our view, until it says otherwise.
        if let Some(n) = self.nodes.get_mut(&old) {
            n.replica_of = Some(me_id);
        }
        self.election = Election::default();
        self.membership_changed_ms = now_ms;
        self.dirty = true;
        Some(old)
    }

    /// spec (clusterSendFailoverAuthIfNeeded): whether we, a master serving slots, give our
    /// vote to replica `h` asking for it at `epoch`. Call after `process_header(h)`.
    pub fn grant_vote(
        &mut self,
        h: &Header,
        epoch: u64,
        manual: bool,
        now_ms: i64,
    ) -> Result<(), &'static str> {
        if !self.me().is_master() || self.slot_count(&self.myself) == 0 {
            return Err("not a master serving slots");
        }
        if epoch < self.current_epoch {
            return Err("its epoch is older than ours");
        }
        if self.last_vote_epoch >= epoch {
            return Err("already voted at this epoch");
        }
        let Some(master_id) = h.replica_of.clone() else {
            return Err("it is a master");
        };
        let Some(master) = self.nodes.get(&master_id) else {
            return Err("its master is unknown here");
        };
        if !master.failed() && !manual {
            return Err("its master is not failing");
        }
        if master.voted_time_ms != 0 && now_ms - master.voted_time_ms < self.node_timeout_ms * 2 {
            return Err("voted for a replica of the same master recently");
        }
        // A replica announces its master's config epoch: an older one than ours means its view
        // of the master's slots is stale.
        if master.config_epoch > h.config_epoch {
            return Err("its view of its master's slots is stale");
        }
        self.last_vote_epoch = epoch;
        self.current_epoch = self.current_epoch.max(epoch);
        if let Some(m) = self.nodes.get_mut(&master_id) {
            m.voted_time_ms = now_ms;
        }
        self.dirty = true;
        Ok(())
    }

    /// One step of a replica's failover (clusterHandleSlaveFailover): schedules an election
    /// when the master failed (delay 500-1000 ms plus one second per replica with a newer
    /// offset), asks for votes at a new epoch, and takes over once a majority of masters voted.
    /// `synced`: this replica holds a copy of its master's data (it never takes over without).
    pub fn failover_step(
        &mut self,
        now_ms: i64,
        my_offset: u64,
        synced: bool,
    ) -> Option<FailoverStep> {
        let me = self.me();
        let Some(master_id) = me.replica_of.clone().filter(|_| !me.is_master()) else {
            self.election = Election::default();
            return None;
        };
        let nofailover = me.flags & flag::NOFAILOVER != 0;
        let master_failed = self.nodes.get(&master_id).is_some_and(|m| m.failed());
        let master_slots = self.slot_count(&master_id);
        let e = &mut self.election;
        if e.manual {
            if now_ms > e.manual_deadline_ms {
                self.election = Election::default();
                return Some(FailoverStep::ManualTimedOut);
            }
            match e.manual_offset {
                None if !e.manual_asked => {
                    e.manual_asked = true;
                    return Some(FailoverStep::AskMaster { master: master_id });
                }
                None => return None,
                Some(o) if my_offset < o => return None,
                Some(_) => {}
            }
        } else if !master_failed || master_slots == 0 || nofailover || !synced {
            self.election = Election::default();
            return None;
        }
        let auth_timeout = (self.node_timeout_ms * 2).max(2000);
        if e.start_ms == 0 || now_ms - e.start_ms > auth_timeout * 2 {
            let delay = if e.manual {
                0
            } else {
                let rank = self
                    .replicas_of(&master_id)
                    .filter(|r| r.id != self.myself && r.repl_offset > my_offset)
                    .count() as i64;
                500 + rand::random_range(0..500) + rank * 1000
            };
            let e = &mut self.election;
            e.start_ms = now_ms + delay;
            e.sent = false;
            e.votes = 0;
            return None;
        }
        if now_ms < e.start_ms || now_ms - e.start_ms > auth_timeout {
            return None;
        }
        if !e.sent {
            self.current_epoch += 1;
            let epoch = self.current_epoch;
            let e = &mut self.election;
            e.epoch = epoch;
            e.sent = true;
            self.dirty = true;
            return Some(FailoverStep::RequestVotes {
                epoch,
                manual: self.election.manual,
            });
        }
        let (votes, epoch) = (e.votes, e.epoch);
        // A majority of the masters that serve slots.
        if votes > self.size() / 2 {
            let old_master = self.promote(Some(epoch), now_ms)?;
            return Some(FailoverStep::Promoted { old_master });
        }
        None
    }

    /// A master granted our vote request made at `epoch`.
    pub fn note_vote(&mut self, epoch: u64) {
        if self.election.sent && self.election.epoch == epoch {
            self.election.votes += 1;
        }
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
                        // Our provisional claim holds against no real claim.
                        Some(n) if o == self.myself && n.provisional => 0,
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
    pub fn process_update(
        &mut self,
        owner: &str,
        epoch: u64,
        ranges: &[(u16, u16)],
        now_ms: i64,
    ) -> Vec<Action> {
        let my_shard = self.me().shard_id.clone();
        let me_id = self.myself.clone();
        let Some(n) = self.nodes.get_mut(owner) else {
            return Vec::new();
        };
        if n.config_epoch >= epoch {
            return Vec::new();
        }
        n.config_epoch = epoch;
        n.slots_epoch = epoch;
        let same_shard = n.shard_id == my_shard || n.replica_of.as_deref() == Some(&me_id);
        let mine_before = if same_shard {
            self.slot_count(&self.shard_master())
        } else {
            0
        };
        let mut actions = self.update_slots_from(owner, epoch, ranges, true);
        actions.extend(self.follow_if_taken_over(owner, mine_before, now_ms));
        actions
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
        // A replica announces its master's config epoch, as Redis does.
        let config_epoch = match me.replica_of.as_deref().and_then(|m| self.nodes.get(m)) {
            Some(m) if !me.is_master() => m.config_epoch,
            _ => me.config_epoch,
        };
        Header {
            id: me.id.clone(),
            endpoint: me.endpoint.clone(),
            flags: me.flags & !flag::MYSELF,
            current_epoch: self.current_epoch,
            config_epoch,
            slots: slot_ranges(
                self.slots_of(&me.id)
                    .into_iter()
                    .filter(|s| !self.claiming.contains(s)),
            ),
            replica_of: me.replica_of.clone(),
            provisional: me.provisional,
            keys,
            manual_slots: self.manual,
            shard_id: me.shard_id.clone(),
            repl_offset: me.repl_offset,
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

    /// Members for the deterministic split, one per shard: masters we heard from, failed ones
    /// included (a node that is only down keeps its share; it is not a reason to rebalance),
    /// except a failed master that serves nothing (its replica took over, or it never got
    /// slots). Shards are ordered by their founder's endpoint (the node whose id is the
    /// shard's), so a failover does not reorder the layout.
    pub fn members(&self) -> Vec<&ClusterNode> {
        let mut by_shard: BTreeMap<&str, (&ClusterNode, usize)> = BTreeMap::new();
        for n in self.nodes.values() {
            if !n.is_master() || !(n.seen || n.id == self.myself) || n.flags & flag::HANDSHAKE != 0
            {
                continue;
            }
            let owned = self.slot_count(&n.id);
            if n.failed() && owned == 0 {
                continue;
            }
            let e = by_shard.entry(n.shard_id.as_str()).or_insert((n, owned));
            // Two masters of one shard (an old master back before it learnt it lost): the one
            // serving slots stands for the shard.
            if owned > e.1 || (owned == e.1 && n.id < e.0.id) {
                *e = (n, owned);
            }
        }
        let mut m: Vec<(&str, &ClusterNode)> = by_shard
            .into_iter()
            .map(|(shard, (n, _))| (shard, n))
            .collect();
        m.sort_by_key(|(shard, n)| {
            self.nodes
                .get(*shard)
                .map_or_else(|| n.endpoint.sort_key(), |f| f.endpoint.sort_key())
        });
        m.into_iter().map(|(_, n)| n).collect()
    }

    /// Automatic distribution with replicas: the live nodes, the shards the cluster needs
    /// (ceil(N / (R + 1))), the masters that stand for a shard (they serve slots, hold keys or
    /// still claim provisionally), and the empty masters free to start one, both in order.
    /// `my_keys`: our own key count (others' come from their headers).
    fn auto_shards(&self, my_keys: u64) -> AutoShards<'_> {
        let mut nodes: Vec<&ClusterNode> =
            self.nodes.values().filter(|n| self.auto_live(n)).collect();
        nodes.sort_by_key(|n| n.endpoint.sort_key());
        let keys_of = |n: &ClusterNode| if n.id == self.myself { my_keys } else { n.keys };
        let shards: Vec<&ClusterNode> = self
            .members()
            .into_iter()
            .filter(|n| self.slot_count(&n.id) > 0 || keys_of(n) > 0 || n.provisional)
            .collect();
        let free: Vec<&ClusterNode> = nodes
            .iter()
            .copied()
            .filter(|n| {
                n.is_master()
                    && !n.provisional
                    && self.slot_count(&n.id) == 0
                    && keys_of(n) == 0
                    && !shards.iter().any(|s| s.id == n.id)
            })
            .collect();
        AutoShards {
            wanted: nodes.len().div_ceil(self.replicas_per_shard + 1),
            shards,
            free,
        }
    }

    /// A node automatic distribution counts: known (or ourselves), not failed, not leaving.
    fn auto_live(&self, n: &ClusterNode) -> bool {
        (n.seen || n.id == self.myself)
            && n.flags & (flag::HANDSHAKE | flag::FAIL | flag::DRAINING) == 0
    }

    /// Automatic distribution with replicas (`cluster.replicas` = R > 0): the empty masters
    /// (no slots, no keys) that should replicate instead, with the master each one takes.
    /// Deterministic from the node table, so every node computes the same answer: the cluster
    /// needs ceil(N / (R + 1)) shards; masters that serve slots or hold keys stay; empty ones
    /// fill the missing shards in endpoint order; the rest become replicas, each of the shard
    /// with the fewest replicas (ties: the first shard in layout order). `my_keys`: our own
    /// key count (others' come from their headers).
    pub fn auto_replica_roles(&self, my_keys: u64) -> HashMap<String, String> {
        let mut out = HashMap::new();
        if self.replicas_per_shard == 0 || self.manual {
            return out;
        }
        let AutoShards {
            wanted,
            mut shards,
            mut free,
        } = self.auto_shards(my_keys);
        let missing = wanted.saturating_sub(shards.len()).min(free.len());
        shards.extend(free.drain(..missing));
        if shards.is_empty() {
            return out;
        }
        let mut counts: Vec<usize> = shards
            .iter()
            .map(|m| {
                self.replicas_of(&m.id)
                    .filter(|n| self.auto_live(n))
                    .count()
            })
            .collect();
        for n in free {
            let (i, _) = counts
                .iter()
                .enumerate()
                .min_by_key(|(i, c)| (**c, *i))
                .expect("shards is not empty");
            counts[i] += 1;
            out.insert(n.id.clone(), shards[i].id.clone());
        }
        out
    }

    /// Automatic distribution with replicas: what this replica should do so the cluster
    /// reaches (and keeps) ceil(N / (R + 1)) shards of one master and R replicas each, whatever
    /// the order in which the nodes learnt of each other. Replicas chosen while a node's table
    /// was incomplete (it met one peer, the rebalance delay passed, it became that peer's
    /// replica) can leave the cluster with too few shards, crowd one shard and leave another
    /// without a replica, or replicate a node that became a replica itself. In that order:
    /// - a replica of a replica moves to the shard with the fewest replicas;
    /// - with fewer shards than needed and no empty master to start one, the excess replicas
    ///   (beyond R in a shard, last in endpoint order) leave to start one each, first in
    ///   endpoint order: [`ReplicaMove::NewShard`];
    /// - a replica of a master with more than R live replicas, while a shard serving slots
    ///   has fewer than R, moves there (Redis's replica migration, with R as the barrier): of
    ///   the crowded master's replicas only the last in endpoint order, to the first short
    ///   shard in endpoint order, so two replicas of one master do not both move.
    pub fn auto_replica_move(&self) -> Option<ReplicaMove> {
        let r = self.replicas_per_shard;
        if r == 0 || self.manual {
            return None;
        }
        let live = |n: &ClusterNode| {
            (n.seen || n.id == self.myself)
                && n.flags & (flag::HANDSHAKE | flag::FAIL | flag::PFAIL | flag::DRAINING) == 0
        };
        let my_master = self.me().replica_of.clone()?;
        // A replica of a failing master stays: it may be the one to take over.
        let master = self.nodes.get(&my_master).filter(|n| live(n))?;
        // A master's replicas that pass `ok`, in endpoint order.
        let replicas_where = |m: &str, ok: &dyn Fn(&ClusterNode) -> bool| -> Vec<&ClusterNode> {
            let mut v: Vec<&ClusterNode> = self
                .nodes
                .values()
                .filter(|n| n.replica_of.as_deref() == Some(m) && !n.is_master() && ok(n))
                .collect();
            v.sort_by_key(|n| n.endpoint.sort_key());
            v
        };
        let live_replicas = |m: &str| replicas_where(m, &live);
        let serving = |m: &&ClusterNode| {
            m.id != my_master && live(m) && m.is_master() && self.slot_count(&m.id) > 0
        };
        if !master.is_master() {
            let mut targets: Vec<&ClusterNode> =
                self.members().into_iter().filter(serving).collect();
            targets.sort_by_key(|m| (live_replicas(&m.id).len(), m.endpoint.sort_key()));
            return targets.first().map(|m| ReplicaMove::Follow(m.id.clone()));
        }
        let auto = self.auto_shards(0);
        let missing = auto
            .wanted
            .saturating_sub(auto.shards.len() + auto.free.len());
        if missing > 0 {
            // Counted as the cluster agrees (FAIL, not PFAIL): a replica briefly suspected by
            // one node must not make a second one leave its shard there.
            let mut excess: Vec<&ClusterNode> = auto
                .shards
                .iter()
                .flat_map(|m| {
                    replicas_where(&m.id, &|n| self.auto_live(n))
                        .into_iter()
                        .skip(r)
                })
                .collect();
            excess.sort_by_key(|n| n.endpoint.sort_key());
            if excess.iter().take(missing).any(|n| n.id == self.myself) {
                return Some(ReplicaMove::NewShard);
            }
        }
        let siblings = live_replicas(&my_master);
        if siblings.len() <= r || siblings.last().map(|n| n.id.as_str()) != Some(&self.myself) {
            return None;
        }
        let mut short: Vec<&ClusterNode> = self
            .members()
            .into_iter()
            .filter(|m| serving(m) && live_replicas(&m.id).len() < r)
            .collect();
        short.sort_by_key(|n| n.endpoint.sort_key());
        short.first().map(|m| ReplicaMove::Follow(m.id.clone()))
    }

    /// This node becomes the master of a shard of its own (its ID as the shard's), with no
    /// master to follow: a replica that leaves its shard to start one (see
    /// [`ClusterState::auto_replica_move`]; its data was dropped before, what it held being its
    /// old master's), and CLUSTER RESET.
    pub fn leave_shard(&mut self, now_ms: i64) {
        let me_id = self.myself.clone();
        let me = self.me_mut();
        me.flags = (me.flags & !flag::REPLICA) | flag::MASTER;
        me.replica_of = None;
        me.shard_id = me_id;
        self.election = Election::default();
        self.membership_changed_ms = now_ms;
        self.dirty = true;
    }

    /// The even, deterministic layout for the current members (redis-cli's split: 3 nodes ->
    /// 0-5460, 5461-10922, 10923-16383).
    /// Draining nodes get no share (unless every member is draining).
    /// `my_keys`: our own key count (see [`ClusterState::auto_replica_roles`]).
    pub fn target_layout(&self, my_keys: u64) -> Vec<(String, u16, u16)> {
        let mut members = self.members();
        if self.replicas_per_shard > 0 {
            // Nodes about to become replicas get no slots (see `auto_replica_roles`).
            let turning = self.auto_replica_roles(my_keys);
            members.retain(|n| !turning.contains_key(&n.id));
        }
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

/// See [`ClusterState::auto_shards`].
struct AutoShards<'a> {
    wanted: usize,
    shards: Vec<&'a ClusterNode>,
    free: Vec<&'a ClusterNode>,
}

/// What a replica does under automatic distribution (see [`ClusterState::auto_replica_move`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaMove {
    /// Replicate this master instead.
    Follow(String),
    /// Drop its data and become the empty master of a new shard.
    NewShard,
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
        st.header(0)
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
            shard_id: id('c'),
            repl_offset: 0,
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

    /// a, b and c serve a third of the slots each; d replicates c.
    fn three_masters_and_a_replica() -> Vec<ClusterState> {
        let mut all: Vec<ClusterState> = [('a', 7001), ('b', 7002), ('c', 7003), ('d', 7004)]
            .iter()
            .map(|&(c, p)| node(c, p))
            .collect();
        for i in 0..4 {
            for j in 0..4 {
                if i != j {
                    let other = all[j].clone();
                    introduce(&mut all[i], &other);
                }
            }
        }
        for st in all.iter_mut() {
            for (owner, lo, hi) in split_evenly(&[id('a'), id('b'), id('c')]) {
                for s in lo..=hi {
                    st.assign(s, Some(&owner));
                }
            }
            for (i, c) in ['a', 'b', 'c'].iter().enumerate() {
                st.nodes.get_mut(&id(*c)).unwrap().config_epoch = i as u64 + 1;
            }
            st.current_epoch = 3;
        }
        all[3].set_my_master(&id('c'), 0);
        let hd = header(&all[3]);
        for st in all.iter_mut().take(3) {
            st.process_header(&hd, true, 0);
        }
        all
    }

    #[test]
    fn a_replica_wins_the_election_when_its_master_fails_and_the_old_master_follows_it() {
        let mut all = three_masters_and_a_replica();
        assert_eq!(
            all[0].nodes[&id('d')].replica_of.as_deref(),
            Some(id('c').as_str())
        );
        assert_eq!(
            all[3].me().shard_id,
            id('c'),
            "a replica joins its master's shard"
        );
        let layout_before = all[0].target_layout(0);
        // Nothing happens while the master is fine.
        assert_eq!(all[3].failover_step(100, 50, true), None);
        assert_eq!(all[3].election.start_ms, 0);
        for st in all.iter_mut() {
            st.process_fail(&id('c'), 1000);
        }
        // A replica that never synced never takes over, nor does one set not to.
        assert_eq!(all[3].failover_step(1000, 0, false), None);
        all[3].me_mut().flags |= flag::NOFAILOVER;
        assert_eq!(all[3].failover_step(1000, 50, true), None);
        assert_eq!(all[3].election.start_ms, 0);
        all[3].me_mut().flags &= !flag::NOFAILOVER;
        // Scheduled 500-1000 ms later (rank 0), then votes are asked at a new epoch.
        assert_eq!(all[3].failover_step(1000, 50, true), None);
        let start = all[3].election.start_ms;
        assert!((1500..2000).contains(&start), "{start}");
        assert_eq!(all[3].failover_step(start - 1, 50, true), None);
        let step = all[3].failover_step(start, 50, true);
        assert_eq!(
            step,
            Some(FailoverStep::RequestVotes {
                epoch: 4,
                manual: false
            })
        );
        let hd = header(&all[3]);
        assert_eq!(hd.current_epoch, 4);
        for st in all.iter_mut().take(2) {
            st.process_header(&hd, false, start);
            assert_eq!(st.grant_vote(&hd, 4, false, start), Ok(()));
            assert_eq!(
                st.grant_vote(&hd, 4, false, start),
                Err("already voted at this epoch")
            );
        }
        // One vote of three masters is not a majority; two are.
        all[3].note_vote(4);
        assert_eq!(all[3].failover_step(start + 10, 50, true), None);
        all[3].note_vote(4);
        assert_eq!(
            all[3].failover_step(start + 20, 50, true),
            Some(FailoverStep::Promoted {
                old_master: id('c')
            })
        );
        let d = &all[3];
        assert!(d.me().is_master() && d.me().replica_of.is_none());
        assert_eq!(d.me().config_epoch, 4);
        assert_eq!(d.slot_count(&id('d')), 5461);
        // The others take c's slots from d's header (a higher epoch than c's).
        let hd = header(&all[3]);
        for st in all.iter_mut().take(2) {
            st.process_header(&hd, true, start + 30);
            assert_eq!(st.slot_count(&id('d')), 5461);
            assert_eq!(st.slot_count(&id('c')), 0);
            st.update_state();
            assert!(st.ok, "every slot is served again");
        }
        // The layout does not move: d stands for c's shard at c's place.
        let layout_after = all[0].target_layout(0);
        assert_eq!(
            layout_after[2],
            (id('d'), layout_before[2].1, layout_before[2].2)
        );
        assert_eq!(layout_after[..2], layout_before[..2]);
        // c comes back, still believing it serves its slots: d's header makes it d's replica.
        let actions = all[2].process_header(&hd, true, start + 40);
        assert_eq!(actions, vec![Action::BecameReplica { master: id('d') }]);
        let c = all[2].me();
        assert!(!c.is_master());
        assert_eq!(c.replica_of.as_deref(), Some(id('d').as_str()));
        assert_eq!(all[2].slot_count(&id('c')), 0);
        // Another replica of c that missed the takeover (stopped, cut off) follows d when d's
        // claim reaches it.
        let mut e = all[1].clone();
        e.myself = id('e');
        let mut me = e.nodes[&id('d')].clone();
        me.id = id('e');
        e.nodes.insert(id('e'), me);
        e.set_my_master(&id('c'), start);
        for s in 10923..16384 {
            e.assign(s, Some(&id('c')));
        }
        e.nodes.get_mut(&id('d')).unwrap().config_epoch = 0;
        let actions = e.process_header(&hd, true, start + 40);
        assert_eq!(actions, vec![Action::FollowedNewMaster { master: id('d') }]);
        assert_eq!(e.me().replica_of.as_deref(), Some(id('d').as_str()));
    }

    #[test]
    fn votes_follow_the_spec_rules() {
        let mut all = three_masters_and_a_replica();
        let hd = header(&all[3]);
        // Not while the master is fine, unless it is a manual failover.
        assert_eq!(
            all[0].grant_vote(&hd, 4, false, 10),
            Err("its master is not failing")
        );
        assert_eq!(all[0].grant_vote(&hd, 4, true, 10), Ok(()));
        // A replica is no voter; an old epoch gets nothing.
        assert_eq!(
            all[3].grant_vote(&hd, 5, true, 10),
            Err("not a master serving slots")
        );
        all[1].current_epoch = 9;
        assert_eq!(
            all[1].grant_vote(&hd, 5, true, 10),
            Err("its epoch is older than ours")
        );
        // One vote per master per node-timeout * 2, whatever the epoch.
        assert_eq!(
            all[0].grant_vote(&hd, 6, true, 1500),
            Err("voted for a replica of the same master recently")
        );
        assert_eq!(all[0].grant_vote(&hd, 6, true, 2011), Ok(()));
    }

    #[test]
    fn a_replica_that_missed_its_masters_new_epoch_is_told_before_it_asks_for_votes() {
        let mut all = three_masters_and_a_replica();
        // c takes a new config epoch (as after an epoch collision) and a and b hear of it;
        // its replica d does not before c dies.
        all[2].bump_config_epoch();
        let hc = header(&all[2]);
        for st in all.iter_mut().take(2) {
            st.process_header(&hc, true, 0);
            assert_eq!(st.nodes[&id('c')].config_epoch, 4);
            st.process_fail(&id('c'), 1000);
        }
        all[3].process_fail(&id('c'), 1000);
        let stale = header(&all[3]);
        assert_eq!(stale.config_epoch, 3);
        assert_eq!(
            all[0].grant_vote(&stale, 5, false, 1000),
            Err("its view of its master's slots is stale")
        );
        // Its next ping earns it an UPDATE about c, which it applies.
        let actions = all[1].process_header(&stale, false, 1000);
        assert!(
            actions.contains(&Action::Update {
                to: id('d'),
                owner: id('c')
            }),
            "{actions:?}"
        );
        let ranges = slot_ranges(all[1].slots_of(&id('c')));
        all[3].process_update(&id('c'), 4, &ranges, 1000);
        let fresh = header(&all[3]);
        assert_eq!(fresh.config_epoch, 4);
        assert_eq!(all[3].slot_count(&id('c')), 5461, "nothing else changed");
        assert_eq!(all[1].grant_vote(&fresh, 5, false, 1000), Ok(()));
        // A replica whose view is current is not told again.
        assert!(all[0].process_header(&fresh, false, 1000).is_empty());
    }

    #[test]
    fn a_manual_failover_waits_for_the_masters_offset() {
        let mut all = three_masters_and_a_replica();
        let d = &mut all[3];
        d.election = Election {
            manual: true,
            manual_deadline_ms: 5000,
            ..Election::default()
        };
        assert_eq!(
            d.failover_step(10, 40, true),
            Some(FailoverStep::AskMaster { master: id('c') })
        );
        assert_eq!(d.failover_step(20, 40, true), None, "asked once");
        d.election.manual_offset = Some(100);
        assert_eq!(d.failover_step(30, 99, true), None, "not caught up");
        assert_eq!(d.failover_step(40, 100, true), None, "scheduled at once");
        assert_eq!(
            d.failover_step(40, 100, true),
            Some(FailoverStep::RequestVotes {
                epoch: 4,
                manual: true
            })
        );
        assert_eq!(
            d.failover_step(6000, 100, true),
            Some(FailoverStep::ManualTimedOut)
        );
        assert!(!d.election.manual);
    }

    #[test]
    fn automatic_distribution_turns_the_nodes_beyond_the_shards_it_needs_into_replicas() {
        // Six nodes, one replica per shard: a kept the first claim; b and c fill the missing
        // shards in endpoint order; d, e and f replicate a, b and c.
        let mut a = node('a', 7001);
        a.replicas_per_shard = 1;
        for (c, p) in [
            ('b', 7002),
            ('c', 7003),
            ('d', 7004),
            ('e', 7005),
            ('f', 7006),
        ] {
            let mut n = ClusterNode::new(id(c), ep(p), flag::MASTER);
            n.seen = true;
            a.add_node(n, 0);
        }
        let me = id('a');
        for s in 0..16384 {
            a.assign(s, Some(&me));
        }
        a.me_mut().config_epoch = 1;
        let roles = a.auto_replica_roles(100);
        let want: HashMap<String, String> = [('d', 'a'), ('e', 'b'), ('f', 'c')]
            .iter()
            .map(|&(r, m)| (id(r), id(m)))
            .collect();
        assert_eq!(roles, want);
        let layout = a.target_layout(100);
        assert_eq!(
            layout.iter().map(|(n, _, _)| n.clone()).collect::<Vec<_>>(),
            vec![id('a'), id('b'), id('c')]
        );
        // Once d replicates a, e and f still go to b and c.
        a.nodes.get_mut(&id('d')).unwrap().flags = flag::REPLICA;
        a.nodes.get_mut(&id('d')).unwrap().replica_of = Some(id('a'));
        want.iter()
            .filter(|(r, _)| **r != id('d'))
            .for_each(|(r, m)| {
                assert_eq!(a.auto_replica_roles(100).get(r), Some(m));
            });
        // Without the setting every node is a master.
        a.replicas_per_shard = 0;
        assert!(a.auto_replica_roles(100).is_empty());
        assert_eq!(a.target_layout(100).len(), 5);
    }

    #[test]
    fn a_crowded_shard_gives_a_replica_to_one_without() {
        // a, b and c serve slots; d, e and f replicate, but e and f both picked b and c has
        // none. Only f (the last of b's replicas by endpoint) moves, and it goes to c.
        let table = |me: char| {
            let mut s = node(me, 7000 + (me as u16 - 'a' as u16) + 1);
            s.replicas_per_shard = 1;
            for (c, p) in [
                ('a', 7001),
                ('b', 7002),
                ('c', 7003),
                ('d', 7004),
                ('e', 7005),
                ('f', 7006),
            ] {
                if c == me {
                    continue;
                }
                let mut n = ClusterNode::new(id(c), ep(p), flag::MASTER);
                n.seen = true;
                s.add_node(n, 0);
            }
            for (m, range) in [('a', 0..5461u16), ('b', 5461..10923), ('c', 10923..16384)] {
                for slot in range {
                    s.assign(slot, Some(&id(m)));
                }
            }
            for (r, m) in [('d', 'a'), ('e', 'b'), ('f', 'b')] {
                let n = s.nodes.get_mut(&id(r)).unwrap();
                n.flags = (n.flags & flag::MYSELF) | flag::REPLICA;
                n.replica_of = Some(id(m));
            }
            s
        };
        assert_eq!(
            table('f').auto_replica_move(),
            Some(ReplicaMove::Follow(id('c')))
        );
        assert_eq!(table('e').auto_replica_move(), None);
        assert_eq!(table('d').auto_replica_move(), None);
        // Once f replicates c, nobody moves.
        let mut f = table('f');
        f.set_my_master(&id('c'), 0);
        assert_eq!(f.auto_replica_move(), None);
        // Manual mode never moves a replica.
        let mut manual = table('f');
        manual.manual = true;
        assert_eq!(manual.auto_replica_move(), None);
    }

    /// Six nodes, one replica per shard, as a table: `masters` split the slots, `replicas`
    /// maps each replica to the node it replicates; `me` is the node whose table it is.
    fn replica_table(me: char, masters: &[char], replicas: &[(char, char)]) -> ClusterState {
        let port = |c: char| 7000 + (c as u16 - 'a' as u16) + 1;
        let mut s = node(me, port(me));
        s.replicas_per_shard = 1;
        for c in ['a', 'b', 'c', 'd', 'e', 'f'] {
            if c != me {
                let mut n = ClusterNode::new(id(c), ep(port(c)), flag::MASTER);
                n.seen = true;
                s.add_node(n, 0);
            }
        }
        let ids: Vec<String> = masters.iter().map(|&c| id(c)).collect();
        for (m, a, b) in split_evenly(&ids) {
            for slot in a..=b {
                s.assign(slot, Some(&m));
            }
        }
        for &(r, m) in replicas {
            let n = s.nodes.get_mut(&id(r)).unwrap();
            n.flags = (n.flags & flag::MYSELF) | flag::REPLICA;
            n.replica_of = Some(id(m));
        }
        s
    }

    #[test]
    fn a_shard_missing_for_good_is_started_by_an_excess_replica() {
        // Every replica chose while it knew only a and b: two shards of six nodes where three
        // are needed, and no empty master to start the third. Of the replicas beyond one per
        // shard (d of a, f of b) the first by endpoint leaves; nobody else moves.
        let replicas = [('c', 'a'), ('d', 'a'), ('e', 'b'), ('f', 'b')];
        let table = |me| replica_table(me, &['a', 'b'], &replicas);
        assert_eq!(table('d').auto_replica_move(), Some(ReplicaMove::NewShard));
        for me in ['c', 'e', 'f'] {
            assert_eq!(table(me).auto_replica_move(), None, "{me}");
        }
        // Once d is an empty master, nobody else leaves, d is the third shard in everyone's
        // layout and f (b's second replica) moves to d once d serves slots.
        let mut d = table('d');
        d.leave_shard(0);
        assert!(d.me().is_master() && d.me().shard_id == id('d'));
        assert_eq!(d.auto_replica_roles(0), HashMap::new());
        assert_eq!(
            d.target_layout(0)
                .iter()
                .map(|(n, _, _)| n.clone())
                .collect::<Vec<_>>(),
            vec![id('a'), id('b'), id('d')]
        );
        let after = [('c', 'a'), ('e', 'b'), ('f', 'b')];
        let table = |me| replica_table(me, &['a', 'b', 'd'], &after);
        assert_eq!(
            table('f').auto_replica_move(),
            Some(ReplicaMove::Follow(id('d')))
        );
        for me in ['c', 'e'] {
            assert_eq!(table(me).auto_replica_move(), None, "{me}");
        }
    }

    #[test]
    fn a_replica_only_suspected_does_not_make_a_second_one_leave() {
        // f briefly suspects d (PFAIL, a missed ping): a then has one replica in f's eyes, but
        // d is still the one that leaves; f, b's excess replica, must not leave as well.
        let replicas = [('c', 'a'), ('d', 'a'), ('e', 'b'), ('f', 'b')];
        let mut f = replica_table('f', &['a', 'b'], &replicas);
        f.nodes.get_mut(&id('d')).unwrap().flags |= flag::PFAIL;
        assert_eq!(f.auto_replica_move(), None);
        // Once the cluster agrees d failed, f starts the shard instead.
        f.nodes.get_mut(&id('d')).unwrap().flags |= flag::FAIL;
        assert_eq!(f.auto_replica_move(), Some(ReplicaMove::NewShard));
    }

    #[test]
    fn a_replica_of_a_replica_moves_to_the_shard_with_fewest_replicas() {
        // d replicated c, which then became a replica of a: d moves to b (no replica yet)
        // rather than stay chained.
        let replicas = [('c', 'a'), ('d', 'c'), ('e', 'a'), ('f', 'b')];
        let d = replica_table('d', &['a', 'b'], &replicas);
        assert_eq!(d.auto_replica_move(), Some(ReplicaMove::Follow(id('b'))));
    }
}
