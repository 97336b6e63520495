//! Simulation of the cluster state machine: many nodes in one process, a simulated clock and a
//! lossy network, driven by the same rules the real driver uses (`pings_due`, `gossip_for`,
//! `process_header`/`process_gossip`, `check_timeouts`/`check_failures`). Reports gossip
//! convergence time and bus bytes per node per second (encoded protobuf sizes).
//!
//! Nodes own no slots here (the slot table's cost is not what is measured; a real header adds
//! one run-length slot range, about 8 bytes, per node). The network's losses come from a seeded RNG (printed); the state machine's own random picks
//! (gossip sample, ping target) use the thread RNG, so a replay repeats the network, not every pick.

use std::collections::VecDeque;

use prost::Message;
use rand::{Rng, SeedableRng, rngs::StdRng};
use reredis::cluster::bus::{pb, to_pb_gossip, to_pb_header};
use reredis::cluster::state::{Action, ClusterNode, ClusterState, Endpoint, flag};

struct Sim {
    nodes: Vec<ClusterState>,
    alive: Vec<bool>,
    now: i64,
    bytes: u64,
    /// Messages sent and gossip entries in them (to put Redis's size for them next to ours).
    messages: u64,
    gossip_entries: u64,
    loss: f64,
    rng: StdRng,
    meets: VecDeque<(usize, usize)>,
}

fn node_id(i: usize) -> String {
    format!("{:040x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15)
}

impl Sim {
    fn new(n: usize, timeout_ms: i64, loss: f64, seed: u64) -> Sim {
        let ids: Vec<String> = (0..n).map(node_id).collect();
        let nodes = (0..n)
            .map(|i| {
                let ep = Endpoint {
                    ip: format!("10.0.{}.{}", i / 250, i % 250 + 1),
                    port: 6379,
                    bus_port: i as u16,
                    hostname: String::new(),
                    http_port: 8080,
                };
                let mut st = ClusterState::new(
                    ClusterNode::new(ids[i].clone(), ep, flag::MYSELF | flag::MASTER),
                    timeout_ms,
                );
                st.me_mut().config_epoch = i as u64 + 1;
                st.current_epoch = n as u64;
                st
            })
            .collect();
        Sim {
            nodes,
            alive: vec![true; n],
            now: 1,
            bytes: 0,
            messages: 0,
            gossip_entries: 0,
            loss,
            rng: StdRng::seed_from_u64(seed),
            meets: VecDeque::new(),
        }
    }

    fn message_len(
        &self,
        from: usize,
        to: usize,
    ) -> (
        reredis::cluster::state::Header,
        Vec<reredis::cluster::state::GossipEntry>,
        usize,
    ) {
        let st = &self.nodes[from];
        let h = st.header(0);
        let g = st.gossip_for(&node_id(to));
        let msg = pb::Ping {
            r#type: 0,
            sender: Some(to_pb_header(&h, 8080)),
            gossip: g.iter().map(to_pb_gossip).collect(),
            receiver_ip: String::new(),
        };
        (h, g, msg.encoded_len())
    }

    /// One PING (or MEET) from `from` to `to` and its PONG, unless the network drops it.
    fn exchange(&mut self, from: usize, to: usize, meet: bool) {
        if !self.alive[to] || self.rng.random::<f64>() < self.loss {
            return;
        }
        let now = self.now;
        let (h, g, len) = self.message_len(from, to);
        self.count(len, g.len());
        let mut actions = Vec::new();
        {
            let st = &mut self.nodes[to];
            if meet && !st.nodes.contains_key(&h.id) {
                let mut n = ClusterNode::new(h.id.clone(), h.endpoint.clone(), flag::MASTER);
                n.seen = true;
                st.add_node(n, now);
            }
            if st.nodes.contains_key(&h.id) {
                actions.extend(st.process_header(&h, false, now));
                actions.extend(st.process_gossip(&h.id, &g, now));
            }
        }
        if self.rng.random::<f64>() < self.loss {
            self.run(to, actions);
            return;
        }
        let (ph, pg, plen) = self.message_len(to, from);
        self.count(plen, pg.len());
        {
            let st = &mut self.nodes[from];
            if !st.nodes.contains_key(&ph.id) {
                let mut n = ClusterNode::new(ph.id.clone(), ph.endpoint.clone(), flag::MASTER);
                n.seen = true;
                st.add_node(n, now);
            }
            let a = st.process_header(&ph, true, now);
            let b = st.process_gossip(&ph.id, &pg, now);
            self.run(from, a.into_iter().chain(b).collect());
        }
        self.run(to, actions);
    }

    fn count(&mut self, bytes: usize, gossip_entries: usize) {
        self.bytes += bytes as u64;
        self.messages += 1;
        self.gossip_entries += gossip_entries as u64;
    }

    fn run(&mut self, at: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Meet { bus_port, .. } => self.meets.push_back((at, bus_port as usize)),
                Action::BroadcastFail { node } => {
                    let now = self.now;
                    for i in 0..self.nodes.len() {
                        if self.alive[i] {
                            self.nodes[i].process_fail(&node, now);
                        }
                    }
                }
                Action::Update { .. }
                | Action::BecameReplica { .. }
                | Action::FollowedNewMaster { .. } => {}
            }
        }
    }

    fn tick(&mut self, tick: u64) {
        self.now += 100;
        let now = self.now;
        for i in 0..self.nodes.len() {
            if !self.alive[i] {
                continue;
            }
            self.nodes[i].check_timeouts(now);
            let actions = self.nodes[i].check_failures(now);
            self.run(i, actions);
            let due = self.nodes[i].pings_due(now, tick.is_multiple_of(10));
            for id in due {
                if let Some(to) = self.nodes[i]
                    .nodes
                    .get(&id)
                    .map(|n| n.endpoint.bus_port as usize)
                {
                    self.exchange(i, to, false);
                }
            }
        }
        // A MEET learnt this tick is sent on the next (a round trip per tick, not a cascade
        // through the whole cluster at once). As the driver does, a MEET stays pending until it
        // is answered: a lost one is sent again (else a node whose first MEET was lost stays
        // alone for good).
        let mut unanswered = Vec::new();
        let mut due = std::mem::take(&mut self.meets);
        while let Some((from, to)) = due.pop_front() {
            if from != to && self.alive[from] {
                self.exchange(from, to, true);
                if !self.nodes[from].nodes.contains_key(&node_id(to))
                    && !unanswered.contains(&(from, to))
                {
                    unanswered.push((from, to));
                }
            }
        }
        self.meets.extend(unanswered);
    }

    fn converged(&self) -> bool {
        let n = self.nodes.len();
        self.nodes
            .iter()
            .zip(&self.alive)
            .all(|(st, &up)| !up || st.nodes.len() == n)
    }
}

/// Redis's sizes for the same messages: a cluster bus header of 2256 bytes, 2048 of them the
/// slot bitmap, plus 104 bytes per gossip entry (cluster.h, `clusterMsg` and
/// `clusterMsgDataGossip`; Redis 7's ping extensions not counted).
const REDIS_HEADER_BYTES: u64 = 2256;
const REDIS_GOSSIP_ENTRY_BYTES: u64 = 104;

struct Figures {
    converge_s: f64,
    bytes_per_node_s: f64,
    /// What Redis's bus would carry for the same messages, per node per second.
    redis_bytes_per_node_s: f64,
}

/// Nodes join through node 0 (as with CLUSTER MEET to one node); returns the seconds to
/// convergence and the bus traffic over the following `steady_ticks` of 100 ms.
fn converge_for(n: usize, loss: f64, seed: u64, steady_ticks: usize) -> Figures {
    let mut sim = Sim::new(n, 15_000, loss, seed);
    for i in 1..n {
        sim.meets.push_back((0, i));
    }
    let mut tick = 0u64;
    while !sim.converged() {
        sim.tick(tick);
        tick += 1;
        assert!(
            tick < 10 * 600,
            "{n} nodes did not converge in 600 simulated seconds (seed {seed})"
        );
    }
    let converge_s = sim.now as f64 / 1000.0;
    (sim.bytes, sim.messages, sim.gossip_entries) = (0, 0, 0);
    let start = sim.now;
    for _ in 0..steady_ticks {
        sim.tick(tick);
        tick += 1;
    }
    let per_node_s = |bytes: u64| bytes as f64 / n as f64 / ((sim.now - start) as f64 / 1000.0);
    Figures {
        converge_s,
        bytes_per_node_s: per_node_s(sim.bytes),
        redis_bytes_per_node_s: per_node_s(
            sim.messages * REDIS_HEADER_BYTES + sim.gossip_entries * REDIS_GOSSIP_ENTRY_BYTES,
        ),
    }
}

fn seed() -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// Every message costs a few passes over the 16384-slot table (claims, header, FAIL quorum), so
/// the default run stays at 20 nodes; 100 and 1000 nodes are `gossip_figures` (release only,
/// scripts/bench.sh).
#[test]
fn gossip_converges_on_a_lossy_network() {
    let seed = seed();
    println!("seed {seed}");
    let f = converge_for(20, 0.05, seed, 50);
    println!(
        "20 nodes, 5% loss: converged in {:.1} s; steady bus traffic {:.0} bytes/node/s",
        f.converge_s, f.bytes_per_node_s
    );
    assert!(f.converge_s < 60.0, "seed {seed}");
}

#[test]
fn a_dead_node_is_failed_by_everyone() {
    let seed = seed();
    println!("seed {seed}");
    let n = 20;
    let mut sim = Sim::new(n, 2_000, 0.02, seed);
    // Steady-state traffic is measured by the ignored figures test; here only detection matters.
    for i in 1..n {
        sim.meets.push_back((0, i));
    }
    let mut tick = 0;
    while !sim.converged() {
        sim.tick(tick);
        tick += 1;
        assert!(tick < 6000, "seed {seed}");
    }
    let victim = 7;
    sim.alive[victim] = false;
    let killed = sim.now;
    let id = node_id(victim);
    loop {
        sim.tick(tick);
        tick += 1;
        let all = (0..n)
            .filter(|&i| sim.alive[i])
            .all(|i| sim.nodes[i].nodes[&id].failed());
        if all {
            break;
        }
        assert!(
            sim.now - killed < 30_000,
            "not failed everywhere after 30 s (seed {seed})"
        );
    }
    let took = sim.now - killed;
    println!("{n} nodes, node-timeout 2000 ms: FAIL everywhere after {took} ms");
    assert!(took <= 2 * 2_000 + 2_000, "took {took} ms (seed {seed})");
}

/// The figures for scripts/bench.sh ("gossip figures"): `cargo test --release --test
/// cluster_sim -- --ignored --nocapture gossip_figures`. Traffic is measured over the 8 s after
/// convergence (every pair pings at least once per half node timeout, 7.5 s); 100 nodes also on
/// a lossy network. Minutes in a debug build.
#[test]
#[ignore]
fn gossip_figures() {
    // GOSSIP_MAX_NODES bounds the sizes run (the 1000-node case takes over 10 minutes on 2
    // cores; scripts/bench.sh runs up to 100 unless told otherwise).
    let max: usize = std::env::var("GOSSIP_MAX_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for (n, loss) in [(10, 0.0), (100, 0.0), (100, 0.05), (1000, 0.0)] {
        if n > max {
            continue;
        }
        let seed = seed();
        let f = converge_for(n, loss, seed, 80);
        println!(
            "gossip n={n} loss={loss} converge_s={:.1} bytes_per_node_per_s={:.0} redis_bytes_per_node_per_s={:.0} seed={seed}",
            f.converge_s, f.bytes_per_node_s, f.redis_bytes_per_node_s
        );
        assert!(f.converge_s < 120.0, "seed {seed}");
    }
}
