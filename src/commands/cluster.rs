//! CLUSTER and its subcommands, ASKING, READONLY, READWRITE: Redis 7.0's replies over our
//! cluster state (src/cluster).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{eq_ic, int};
use super::error::{CmdError, CmdResult};
use super::flags::*;
use super::table::{Command, NO_KEYS};
use super::{Ctx, reply_help};
use crate::cluster::Cluster;
use crate::cluster::nodes_conf::node_line;
use crate::cluster::routing::EndpointType;
use crate::cluster::slots::{SLOTS, key_hash_slot};
use crate::cluster::state::{ClusterNode, ClusterState, flag, slot_ranges};
use crate::cmd;
use crate::server::replicas::SyncKind;
use crate::store::Keyspace;

fn cluster<'a>(ctx: &Ctx<'a>) -> Result<&'a Cluster, CmdError> {
    ctx.node
        .cluster
        .as_deref()
        .ok_or_else(|| CmdError::err("This instance has cluster support disabled"))
}

/// Redis 7.0 unsubscribes the shard channels of the slots a node's shard stops serving as the
/// command runs (the cluster bus catches what gossip changes).
fn drop_lost_shard_channels(ctx: &Ctx) {
    let routing = ctx.node.routing();
    ctx.node
        .pubsub
        .drop_unserved_slots(|s| routing.shard_serves(s), ctx.now_ms);
}

fn slot_arg(a: &[u8]) -> Result<u16, CmdError> {
    match int(a) {
        Ok(s) if (0..SLOTS as i64).contains(&s) => Ok(s as u16),
        _ => Err(CmdError::err("Invalid or out of range slot")),
    }
}

pub fn asking(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    // Bounded: a client that keeps sending ASKING alone cannot bank more than a few.
    ctx.client.asking = ctx.client.asking.saturating_add(1).min(16);
    ctx.out.ok();
    Ok(())
}

pub fn readonly(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    ctx.client.readonly = true;
    ctx.out.ok();
    Ok(())
}

pub fn readwrite(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    ctx.client.readonly = false;
    ctx.out.ok();
    Ok(())
}

/// The `CLUSTER INFO` text.
pub fn info_text(c: &Cluster) -> String {
    let st = c.state.lock();
    let assigned = st.assigned();
    let (mut pfail, mut fail) = (0, 0);
    for s in st.slots.iter().flatten() {
        match st.nodes.get(s) {
            Some(n) if n.failed() => fail += 1,
            Some(n) if n.pfailed() => pfail += 1,
            _ => {}
        }
    }
    let stats = &c.stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut t = String::new();
    let _ = write!(
        t,
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{}\r\ncluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
        if st.ok { "ok" } else { "fail" },
        assigned - pfail - fail,
        st.nodes.len(),
        st.size(),
        st.current_epoch,
        // A replica's is its master's (Redis's myepoch).
        st.me()
            .replica_of
            .as_ref()
            .filter(|_| !st.me().is_master())
            .and_then(|m| st.nodes.get(m))
            .map_or(st.me().config_epoch, |m| m.config_epoch),
    );
    // Redis lists a message type only once one was sent (received), in its type order.
    let counters = |t: &mut String, dir: &str, by_type: [(&str, u64); 6], total: u64| {
        for (name, n) in by_type {
            if n > 0 {
                let _ = write!(t, "cluster_stats_messages_{name}_{dir}:{n}\r\n");
            }
        }
        let _ = write!(t, "cluster_stats_messages_{dir}:{total}\r\n");
    };
    counters(
        &mut t,
        "sent",
        [
            ("ping", l(&stats.ping_sent)),
            ("pong", l(&stats.pong_sent)),
            ("meet", l(&stats.meet_sent)),
            ("fail", l(&stats.fail_sent)),
            ("publish", l(&stats.publish_sent)),
            ("update", l(&stats.update_sent)),
        ],
        stats.sent_total(),
    );
    counters(
        &mut t,
        "received",
        [
            ("ping", l(&stats.ping_received)),
            ("pong", l(&stats.pong_received)),
            ("meet", l(&stats.meet_received)),
            ("fail", l(&stats.fail_received)),
            ("publish", l(&stats.publish_received)),
            ("update", l(&stats.update_received)),
        ],
        stats.received_total(),
    );
    t.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
    let mode = if st.manual {
        "manual"
    } else if st.me().provisional {
        "auto-provisional"
    } else {
        "auto"
    };
    let _ = write!(t, "cluster_slot_mode:{mode}\r\n");
    let _ = write!(
        t,
        "cluster_draining:{}\r\ncluster_slots_migrating:{}\r\ncluster_slots_importing:{}\r\n",
        u8::from(st.me().flags & crate::cluster::state::flag::DRAINING != 0),
        st.migrating.len(),
        st.importing.len(),
    );
    drop(st);
    t.push_str(&migration_text(c));
    t
}

/// Slot-move progress (automatic distribution), for CLUSTER INFO and INFO cluster.
pub fn migration_text(c: &Cluster) -> String {
    let m = &c.migrator.stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "cluster_slots_move_queue:{}\r\ncluster_slots_moved:{}\r\ncluster_keys_moved:{}\r\ncluster_bytes_moved:{}\r\ncluster_keys_imported:{}\r\ncluster_bytes_imported:{}\r\ncluster_move_batches_failed:{}\r\ncluster_moves_abandoned:{}\r\n",
        c.migrator.pending(),
        l(&m.slots_moved),
        l(&m.keys_moved),
        l(&m.bytes_moved),
        l(&m.keys_imported),
        l(&m.bytes_imported),
        l(&m.batches_failed),
        l(&m.moves_abandoned),
    )
}

fn info(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let text = info_text(cluster(ctx)?);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

fn nodes(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let st = c.state.lock();
    let mut text = String::new();
    for n in st.nodes.values() {
        text.push_str(&node_line(&st, n, false));
        text.push('\n');
    }
    drop(st);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// Redis's getPreferredEndpoint: the IP, the hostname (`?` when it has none), or nothing
/// (`unknown-endpoint`: clients reuse the address they used).
fn preferred_endpoint(ep: EndpointType, n: &ClusterNode) -> String {
    match ep {
        EndpointType::Ip => n.endpoint.ip.clone(),
        EndpointType::Hostname if !n.endpoint.hostname.is_empty() => n.endpoint.hostname.clone(),
        EndpointType::Hostname => "?".into(),
        EndpointType::Unknown => String::new(),
    }
}

/// A node entry of CLUSTER SLOTS: endpoint (null for `unknown-endpoint`), port, id, and the
/// other networking metadata.
fn write_slot_node(ctx: &mut Ctx, ep: EndpointType, n: &ClusterNode) {
    ctx.out.array(4);
    if ep == EndpointType::Unknown {
        ctx.out.null();
    } else {
        ctx.out.bulk(preferred_endpoint(ep, n).as_bytes());
    }
    ctx.out.int(n.endpoint.port as i64);
    ctx.out.bulk(n.id.as_bytes());
    let mut meta: Vec<(&str, String)> = Vec::new();
    if ep != EndpointType::Ip {
        meta.push(("ip", n.endpoint.ip.clone()));
    }
    if ep != EndpointType::Hostname && !n.endpoint.hostname.is_empty() {
        meta.push(("hostname", n.endpoint.hostname.clone()));
    }
    ctx.out.map(meta.len());
    for (k, v) in meta {
        ctx.out.bulk(k.as_bytes());
        ctx.out.bulk(v.as_bytes());
    }
}

/// Contiguous runs of slots with the same owner.
fn owner_ranges(st: &ClusterState) -> Vec<(u16, u16, String)> {
    let mut out: Vec<(u16, u16, String)> = Vec::new();
    for (s, o) in st.slots.iter().enumerate() {
        let Some(o) = o else { continue };
        match out.last_mut() {
            Some((_, end, id)) if *end as usize + 1 == s && id == o => *end = s as u16,
            _ => out.push((s as u16, s as u16, o.clone())),
        }
    }
    out
}

fn slots(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    // Read once: a CONFIG SET meanwhile does not mix two kinds of rows.
    let ep = c.endpoint_type();
    let st = c.state.lock().clone();
    let ranges = owner_ranges(&st);
    ctx.out.array(ranges.len());
    for (a, b, id) in ranges {
        let replicas: Vec<&ClusterNode> = st
            .nodes
            .values()
            .filter(|n| n.replica_of.as_deref() == Some(id.as_str()) && !n.failed())
            .collect();
        ctx.out.array(3 + replicas.len());
        ctx.out.int(a as i64);
        ctx.out.int(b as i64);
        if let Some(n) = st.nodes.get(&id) {
            write_slot_node(ctx, ep, n);
        }
        for r in replicas {
            write_slot_node(ctx, ep, r);
        }
    }
    Ok(())
}

fn shards(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let ep = c.endpoint_type();
    let st = c.state.lock().clone();
    let masters: Vec<&ClusterNode> = st.nodes.values().filter(|n| n.is_master()).collect();
    ctx.out.array(masters.len());
    for m in masters {
        let members: Vec<&ClusterNode> = std::iter::once(m)
            .chain(
                st.nodes
                    .values()
                    .filter(|n| n.replica_of.as_deref() == Some(m.id.as_str())),
            )
            .collect();
        ctx.out.map(2);
        ctx.out.bulk(b"slots");
        let ranges = slot_ranges(st.slots_of(&m.id));
        ctx.out.array(ranges.len() * 2);
        for (a, b) in ranges {
            ctx.out.int(a as i64);
            ctx.out.int(b as i64);
        }
        ctx.out.bulk(b"nodes");
        ctx.out.array(members.len());
        for n in members {
            let has_host = !n.endpoint.hostname.is_empty();
            ctx.out.map(if has_host { 8 } else { 7 });
            ctx.out.bulk(b"id");
            ctx.out.bulk(n.id.as_bytes());
            ctx.out.bulk(b"port");
            ctx.out.int(n.endpoint.port as i64);
            ctx.out.bulk(b"ip");
            ctx.out.bulk(n.endpoint.ip.as_bytes());
            ctx.out.bulk(b"endpoint");
            ctx.out.bulk(preferred_endpoint(ep, n).as_bytes());
            if has_host {
                ctx.out.bulk(b"hostname");
                ctx.out.bulk(n.endpoint.hostname.as_bytes());
            }
            ctx.out.bulk(b"role");
            ctx.out.bulk(if n.is_master() {
                b"master" as &[u8]
            } else {
                b"replica"
            });
            ctx.out.bulk(b"replication-offset");
            ctx.out.int(n.repl_offset as i64);
            // (A suspicion, PFAIL, is not a failure here; a replica with nothing yet loads.)
            ctx.out.bulk(b"health");
            ctx.out.bulk(if n.failed() {
                b"fail" as &[u8]
            } else if !n.is_master() && n.repl_offset == 0 {
                b"loading"
            } else {
                b"online"
            });
        }
    }
    Ok(())
}

fn myid(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let id = cluster(ctx)?.myself();
    ctx.out.bulk(id.as_bytes());
    Ok(())
}

fn myshardid(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let id = c.state.lock().me().shard_id.clone();
    ctx.out.bulk(id.as_bytes());
    Ok(())
}

fn keyslot(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    ctx.out.int(key_hash_slot(&args[2]) as i64);
    Ok(())
}

fn countkeysinslot(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    // Redis parses the integer first (its own error), then checks the range.
    let s = int(&args[2])?;
    if !(0..SLOTS as i64).contains(&s) {
        return Err(CmdError::err("Invalid slot"));
    }
    ctx.out.int(ks.count_keys_in_slot(s as u16) as i64);
    Ok(())
}

fn getkeysinslot(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    let s = int(&args[2])?;
    let n = int(&args[3])?;
    if !(0..SLOTS as i64).contains(&s) || n < 0 {
        return Err(CmdError::err("Invalid slot or number of keys"));
    }
    let slot = s as u16;
    // Inside EXEC the shard is held already (its lock is not reentrant).
    let keys = if ks.holds_all() {
        ks.keys_in_slot(slot, n as usize)
    } else {
        let mut own = ctx
            .node
            .store
            .lock_shard(crate::store::shard_of_slot(slot), ctx.now_ms);
        own.keys_in_slot(slot, n as usize)
    };
    ctx.out.bulks(keys.iter());
    Ok(())
}

fn meet(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    if args.len() > 5 {
        return Err(super::subcommand_syntax_error(args));
    }
    let ip_s = String::from_utf8_lossy(&args[2]).into_owned();
    let port_s = String::from_utf8_lossy(&args[3]).into_owned();
    // As Redis: the ports must be integers, then the address as a whole must be valid (an IP
    // address, ports 1-65535).
    let port = int(&args[3])
        .map_err(|_| CmdError::err(format!("Invalid TCP base port specified: {port_s}")))?;
    let bus_port = match args.get(4) {
        Some(b) => int(b).map_err(|_| {
            CmdError::err(format!(
                "Invalid TCP bus port specified: {}",
                String::from_utf8_lossy(b)
            ))
        })?,
        None => port.saturating_add(10000),
    };
    let invalid = || CmdError::err(format!("Invalid node address specified: {ip_s}:{port_s}"));
    let ip: std::net::IpAddr = ip_s.parse().map_err(|_| invalid())?;
    let valid = |p: i64| (1..=65535).contains(&p);
    if !valid(port) || !valid(bus_port) {
        return Err(invalid());
    }
    c.meet(ip.to_string(), bus_port as u16);
    ctx.out.ok();
    Ok(())
}

fn forget(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let id = String::from_utf8_lossy(&args[2]).into_owned();
    let now = ctx.now_ms;
    c.change(|st| {
        if id == st.myself {
            return Err(CmdError::err("I tried hard but I can't forget myself..."));
        }
        if !st.nodes.contains_key(&id) {
            return Err(CmdError::err(format!("Unknown node {id}")));
        }
        if st.me().replica_of.as_deref() == Some(id.as_str()) {
            return Err(CmdError::err("Can't forget my master!"));
        }
        // Automatic distribution: a live node that still serves slots would take its keys with
        // it; it leaves by draining first (a failed node may be forgotten, as in Redis).
        let owned = st.slot_count(&id);
        let live = st.nodes.get(&id).is_some_and(|n| !n.failed() && !n.pfailed());
        if !st.manual && owned > 0 && live {
            return Err(CmdError::err(format!(
                "Node {id} still serves {owned} slots: run CLUSTER DRAIN on it first (its slots and keys move to the other nodes), then forget it"
            )));
        }
        st.forget(&id, now);
        Ok(())
    })?;
    ctx.out.ok();
    Ok(())
}

/// CLUSTER DRAIN [CANCEL] (ours): this node leaves the automatic layout; its slots and keys move
/// to the other nodes, after which it can be forgotten and stopped. CANCEL takes it back.
fn drain(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let cancel = match args.get(2) {
        None => false,
        Some(a) if eq_ic(a, "CANCEL") && args.len() == 3 => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    let now = ctx.now_ms;
    c.change(|st| {
        if st.manual {
            return Err(CmdError::err(
                "CLUSTER DRAIN needs automatic slot distribution; in manual mode move slots with redis-cli --cluster reshard",
            ));
        }
        let me = st.me_mut();
        let was = me.flags & flag::DRAINING != 0;
        if cancel {
            me.flags &= !flag::DRAINING;
        } else {
            me.flags |= flag::DRAINING;
        }
        if was == cancel {
            st.membership_changed_ms = now;
            st.dirty = true;
            tracing::info!(
                "{}",
                if cancel {
                    "drain cancelled: this node takes its share of slots again"
                } else {
                    "draining: this node's slots and keys move to the other nodes"
                }
            );
        }
        Ok(())
    })?;
    ctx.out.ok();
    Ok(())
}

/// A manual slot command switches the cluster to manual assignment; a provisional claim on all
/// slots (a fresh node) is dropped first, so `redis-cli --cluster create` finds the node as
/// Redis would: owning nothing.
fn go_manual(st: &mut ClusterState) {
    if !st.manual {
        tracing::info!("manual slot command: automatic slot distribution is off for this cluster");
    }
    st.manual = true;
    if st.me().provisional {
        let me = st.myself.clone();
        for s in st.slots.iter_mut() {
            if s.as_deref() == Some(me.as_str()) {
                *s = None;
            }
        }
        st.me_mut().provisional = false;
    }
    st.dirty = true;
}

/// The slots of ADDSLOTS/DELSLOTS (`args` after the subcommand; `subcommand` names it in
/// errors).
fn parse_slot_list(args: &[Bytes], ranges: bool, subcommand: &[u8]) -> Result<Vec<u16>, CmdError> {
    let mut out = Vec::new();
    if ranges {
        if !args.len().is_multiple_of(2) {
            return Err(CmdError::Arity(format!(
                "cluster|{}",
                String::from_utf8_lossy(subcommand).to_ascii_lowercase()
            )));
        }
        for p in args.chunks(2) {
            let (a, b) = (slot_arg(&p[0])?, slot_arg(&p[1])?);
            if a > b {
                return Err(CmdError::err(format!(
                    "start slot number {a} is greater than end slot number {b}"
                )));
            }
            out.extend(a..=b);
        }
    } else {
        for a in args {
            out.push(slot_arg(a)?);
        }
    }
    let mut seen = vec![false; SLOTS];
    for &s in &out {
        if seen[s as usize] {
            return Err(CmdError::err(format!("Slot {s} specified multiple times")));
        }
        seen[s as usize] = true;
    }
    Ok(out)
}

fn add_slots(ctx: &mut Ctx, args: &[Bytes], ranges: bool) -> CmdResult {
    let c = cluster(ctx)?;
    let list = parse_slot_list(&args[2..], ranges, &args[1])?;
    c.change(|st| {
        go_manual(st);
        for &s in &list {
            if st.slots[s as usize].is_some() {
                return Err(CmdError::err(format!("Slot {s} is already busy")));
            }
        }
        let me = st.myself.clone();
        for &s in &list {
            st.importing.remove(&s);
            st.assign(s, Some(&me));
        }
        Ok(())
    })?;
    ctx.out.ok();
    Ok(())
}

fn del_slots(ctx: &mut Ctx, args: &[Bytes], ranges: bool) -> CmdResult {
    let c = cluster(ctx)?;
    let list = parse_slot_list(&args[2..], ranges, &args[1])?;
    c.change(|st| {
        go_manual(st);
        for &s in &list {
            if st.slots[s as usize].is_none() {
                return Err(CmdError::err(format!("Slot {s} is already unassigned")));
            }
        }
        for &s in &list {
            st.assign(s, None);
            st.importing.remove(&s);
            st.migrating.remove(&s);
        }
        Ok(())
    })?;
    drop_lost_shard_channels(ctx);
    ctx.out.ok();
    Ok(())
}

fn addslots(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    add_slots(ctx, args, false)
}

fn addslotsrange(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    add_slots(ctx, args, true)
}

fn delslots(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    del_slots(ctx, args, false)
}

fn delslotsrange(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    del_slots(ctx, args, true)
}

fn flushslots(ctx: &mut Ctx, ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    if ks.db_sizes()[0].0 > 0 {
        return Err(CmdError::err(
            "DB must be empty to perform CLUSTER FLUSHSLOTS.",
        ));
    }
    c.change(|st| {
        go_manual(st);
        let me = st.myself.clone();
        for s in 0..SLOTS as u16 {
            if st.slots[s as usize].as_deref() == Some(me.as_str()) {
                st.assign(s, None);
            }
        }
    });
    drop_lost_shard_channels(ctx);
    ctx.out.ok();
    Ok(())
}

fn setslot(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    #[derive(PartialEq)]
    enum Action {
        Migrating,
        Importing,
        Stable,
        Node,
    }
    let c = cluster(ctx)?;
    if !c.state.lock().me().is_master() {
        return Err(CmdError::err("Please use SETSLOT only with masters."));
    }
    let slot = slot_arg(&args[2])?;
    // Redis takes each action only with its own number of arguments.
    let action = match (&args[3], args.len()) {
        (a, 5) if eq_ic(a, "MIGRATING") => Action::Migrating,
        (a, 5) if eq_ic(a, "IMPORTING") => Action::Importing,
        (a, 4) if eq_ic(a, "STABLE") => Action::Stable,
        (a, 5) if eq_ic(a, "NODE") => Action::Node,
        _ => {
            return Err(CmdError::err(
                "Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
            ));
        }
    };
    let id = args
        .get(4)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .unwrap_or_default();
    // The slot's shard stays locked from the count to the change: a write landing between
    // them would leave a key in a slot handed away.
    let held = ks.with_slot_count_held(slot, |keys_here| c.change(|st| -> CmdResult {
        let me = st.myself.clone();
        let mine = st.slots[slot as usize].as_deref() == Some(me.as_str());
        // Redis's checks, in Redis's order: the slot's owner first, then the node.
        if action == Action::Migrating && !mine {
            return Err(CmdError::err(format!(
                "I'm not the owner of hash slot {slot}"
            )));
        }
        if action == Action::Importing && mine {
            return Err(CmdError::err(format!(
                "I'm already the owner of hash slot {slot}"
            )));
        }
        if action != Action::Stable {
            match st.nodes.get(&id) {
                None if action == Action::Node => {
                    return Err(CmdError::err(format!("Unknown node {id}")));
                }
                None => return Err(CmdError::err(format!("I don't know about node {id}"))),
                Some(n) if !n.is_master() => {
                    return Err(CmdError::err("Target node is not a master"));
                }
                Some(_) => {}
            }
        }
        match action {
            Action::Stable => {
                st.migrating.remove(&slot);
                st.importing.remove(&slot);
            }
            Action::Migrating => {
                go_manual(st);
                st.migrating.insert(slot, id);
            }
            Action::Importing => {
                go_manual(st);
                st.importing.insert(slot, id);
            }
            Action::Node => {
                if mine && id != me && keys_here > 0 {
                    return Err(CmdError::err(format!(
                        "Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                    )));
                }
                go_manual(st);
                if st.migrating.contains_key(&slot) && keys_here == 0 {
                    st.migrating.remove(&slot);
                }
                // The import ends only when the slot comes here (Redis keeps it otherwise).
                let was_importing = id == me && st.importing.remove(&slot).is_some();
                st.assign(slot, Some(&id));
                if id == me && was_importing {
                    // spec: the importing node claims the slot with a new epoch, without consensus.
                    st.bump_config_epoch();
                }
            }
        }
        st.dirty = true;
        Ok(())
    }));
    held.unwrap_or_else(|| Err(CmdError::err("slot busy, try again")))?;
    drop_lost_shard_channels(ctx);
    ctx.out.ok();
    Ok(())
}

fn set_config_epoch(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let e = int(&args[2])?;
    if e < 0 {
        return Err(CmdError::err(format!(
            "Invalid config epoch specified: {e}"
        )));
    }
    c.change(|st| {
        if st.nodes.len() > 1 {
            return Err(CmdError::err("The user can assign a config epoch only when the node does not know any other node."));
        }
        if st.me().config_epoch != 0 {
            return Err(CmdError::err("Node config epoch is already non-zero"));
        }
        // `redis-cli --cluster create` sets epochs by hand: Redis's way from here on.
        go_manual(st);
        st.me_mut().config_epoch = e as u64;
        if st.current_epoch < e as u64 {
            st.current_epoch = e as u64;
        }
        st.dirty = true;
        Ok(())
    })?;
    ctx.out.ok();
    Ok(())
}

fn bumpepoch(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let (bumped, e) = c.change(|st| {
        // spec: bump only when our epoch is not already the greatest or is shared.
        let mine = st.me().config_epoch;
        let me = st.myself.clone();
        let max_other = st
            .nodes
            .values()
            .filter(|n| n.id != me)
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0);
        if mine == 0 || mine != st.current_epoch || mine <= max_other {
            (true, st.bump_config_epoch())
        } else {
            (false, mine)
        }
    });
    ctx.out
        .simple(&format!("{} {e}", if bumped { "BUMPED" } else { "STILL" }));
    Ok(())
}

fn count_failure_reports(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let id = String::from_utf8_lossy(&args[2]).into_owned();
    let st = c.state.lock();
    let n = st
        .nodes
        .get(&id)
        .map(|n| n.fail_reports.len())
        .ok_or_else(|| CmdError::err(format!("Unknown node {id}")))?;
    drop(st);
    ctx.out.int(n as i64);
    Ok(())
}

fn saveconfig(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    c.save_now()
        .map_err(|e| CmdError::err(format!("error saving the cluster node config: {e}")))?;
    ctx.out.ok();
    Ok(())
}

fn reset(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    // Redis takes RESET [HARD|SOFT] and nothing more: extra arguments must not reset anything.
    if args.len() > 3 {
        return Err(super::subcommand_syntax_error(args));
    }
    let hard = match args.get(2) {
        None => false,
        Some(a) if eq_ic(a, "SOFT") => false,
        Some(a) if eq_ic(a, "HARD") => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    let replica = !c.state.lock().me().is_master();
    if !replica && ks.db_sizes()[0].0 > 0 {
        return Err(CmdError::err(
            "CLUSTER RESET can't be called with master nodes containing keys",
        ));
    }
    let now = ctx.now_ms;
    // As Redis: a replica becomes an empty master. It stops following first, then drops its
    // master's data (logged, so a restart does not bring it back; a change for the `save`
    // rules, so a snapshot of it is replaced) and its stream, under the replication gate: the
    // applier is not inside a frame, and one arriving now sees that it no longer follows. The
    // gate comes before the shard locks; inside MULTI, which holds them already, it is taken
    // only if free.
    let _gate = if !replica {
        None
    } else if ks.holds_all() {
        // Without the gate a frame being applied would outlive the drop: refused, the client
        // tries again (the applier holds the gate only while it applies a frame).
        Some(c.repl.try_gate().ok_or_else(|| {
            CmdError::Msg(
                "TRYAGAIN the replica is applying its master's stream, try CLUSTER RESET again"
                    .into(),
            )
        })?)
    } else {
        Some(c.repl.gate())
    };
    if replica {
        c.change(|st| st.leave_shard(now));
        let dropped = if ks.holds_all() {
            let dropped = ks.flush_all(false);
            for (_, shard) in ks.shards_mut() {
                shard.pinned.clear();
            }
            ctx.node
                .store
                .aof
                .append_command(0, &[Bytes::from_static(b"FLUSHALL")]);
            dropped
        } else {
            crate::cluster::replication::drop_keys(ctx.node, false, true)
        };
        ctx.dirty(dropped as u64 + 1);
        c.repl.became_empty_master(ctx.node);
    }
    let auto = c.cfg.auto_assign;
    c.change(|st| {
        let me = st.myself.clone();
        st.leave_shard(now);
        let others: Vec<String> = st.nodes.keys().filter(|id| **id != me).cloned().collect();
        for id in others {
            st.forget(&id, now);
            st.banned.remove(&id);
        }
        st.migrating.clear();
        st.importing.clear();
        st.released.clear();
        for s in st.slots.iter_mut() {
            *s = None;
        }
        if hard {
            st.current_epoch = 0;
            st.last_vote_epoch = 0;
            st.me_mut().config_epoch = 0;
            let new_id: String = (0..40)
                .map(|_| format!("{:x}", rand::random_range(0..16u8)))
                .collect();
            if let Some(mut n) = st.nodes.remove(&me) {
                n.id = new_id.clone();
                n.shard_id = new_id.clone();
                st.nodes.insert(new_id.clone(), n);
                st.myself = new_id;
            }
        }
        st.manual = !auto;
        if auto {
            let me = st.myself.clone();
            st.me_mut().provisional = true;
            for s in st.slots.iter_mut() {
                *s = Some(me.clone());
            }
        }
        st.dirty = true;
    });
    drop_lost_shard_channels(ctx);
    ctx.out.ok();
    Ok(())
}

fn links(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let st = c.state.lock().clone();
    let peers: Vec<&ClusterNode> = st.nodes.values().filter(|n| n.id != st.myself).collect();
    ctx.out.array(peers.len());
    for n in peers {
        ctx.out.map(6);
        ctx.out.bulk(b"direction");
        ctx.out.bulk(b"to");
        ctx.out.bulk(b"node");
        ctx.out.bulk(n.id.as_bytes());
        ctx.out.bulk(b"create-time");
        ctx.out.int(n.pong_received_ms);
        ctx.out.bulk(b"events");
        ctx.out.bulk(b"rw");
        ctx.out.bulk(b"send-buffer-allocated");
        ctx.out.int(0);
        ctx.out.bulk(b"send-buffer-used");
        ctx.out.int(0);
    }
    Ok(())
}

/// CLUSTER REPLICATE <node-id>: this node, empty, becomes a replica of that master.
fn replicate(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let id = String::from_utf8_lossy(&args[2]).into_owned();
    let keys = ctx.node.store.db0_keys_nonblocking();
    let now = ctx.now_ms;
    c.change(|st| {
        let Some(n) = st.nodes.get(&id) else {
            return Err(CmdError::err(format!("Unknown node {id}")));
        };
        if id == st.myself {
            return Err(CmdError::err("Can't replicate myself"));
        }
        if !n.is_master() {
            return Err(CmdError::err(
                "I can only replicate a master, not a replica.",
            ));
        }
        let me = st.me();
        // A provisional claim (a fresh node in automatic mode) is not an assignment.
        let owns = !me.provisional && st.slot_count(&st.myself) > 0;
        if me.is_master() && (owns || keys > 0) {
            return Err(CmdError::err(
                "To set a master the node must be empty and without assigned slots.",
            ));
        }
        if me.replica_of.as_deref() != Some(id.as_str()) {
            st.set_my_master(&id, now);
            tracing::info!(master = %id, "configured as a replica");
        }
        Ok(())
    })?;
    c.save_now()
        .map_err(|e| CmdError::err(format!("Error saving the cluster config: {e}")))?;
    ctx.out.ok();
    Ok(())
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER]: a replica takes its master's place. Without options the
/// master stops writes until the replica caught up, then the replica is elected; FORCE skips
/// the master (it may be down); TAKEOVER skips the election too.
fn failover(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    use crate::cluster::state::{Election, MANUAL_FAILOVER_TIMEOUT_MS};
    let c = cluster(ctx)?;
    let (force, takeover) = match args.get(2) {
        None => (false, false),
        Some(a) if args.len() == 3 && eq_ic(a, "FORCE") => (true, false),
        Some(a) if args.len() == 3 && eq_ic(a, "TAKEOVER") => (false, true),
        Some(_) => return Err(CmdError::Syntax),
    };
    let now = ctx.now_ms;
    let node = ctx.node;
    if c.repl.is_leaving() {
        // Its data is about to go (automatic distribution): it must not take over with it.
        return Err(CmdError::err(
            "This replica is leaving its shard to start one (cluster.replicas): retry later",
        ));
    }
    c.change(|st| {
        let me = st.me();
        if me.is_master() {
            return Err(CmdError::err(
                "You should send CLUSTER FAILOVER to a replica",
            ));
        }
        let Some(master) = me.replica_of.as_deref().and_then(|m| st.nodes.get(m)) else {
            return Err(CmdError::err(
                "I'm a replica but my master is unknown to me",
            ));
        };
        if !force && !takeover && (master.failed() || master.pfailed()) {
            return Err(CmdError::err(
                "Master is down or failed, please use CLUSTER FAILOVER FORCE",
            ));
        }
        if takeover {
            tracing::info!("Taking over the master (user request).");
            st.promote(None, now);
            c.repl.became_master(node);
        } else {
            tracing::info!(
                "Manual failover user request accepted{}.",
                if force { " (FORCE)" } else { "" }
            );
            st.election = Election {
                manual: true,
                manual_deadline_ms: now + MANUAL_FAILOVER_TIMEOUT_MS,
                manual_offset: force.then_some(0),
                ..Election::default()
            };
        }
        Ok(())
    })?;
    if takeover && let Some(c) = ctx.node.cluster.clone() {
        c.after_promotion(ctx.node);
    }
    ctx.out.ok();
    Ok(())
}

/// ROLE: this node's replication role, as Redis shows it.
pub fn role(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let resp_replicas = ctx.node.replicas.list();
    let resp_replicas: Vec<_> = resp_replicas
        .iter()
        .filter(|f| f.state == "online")
        .collect();
    let reply_resp_replicas = |ctx: &mut Ctx| {
        for f in &resp_replicas {
            ctx.out.array(3);
            ctx.out.bulk(f.ip.as_bytes());
            ctx.out.bulk(f.port.to_string().as_bytes());
            ctx.out.bulk(f.acked_resp.to_string().as_bytes());
        }
    };
    if let Some(link) = ctx.node.upstream.link() {
        ctx.out.array(5);
        ctx.out.bulk(b"slave");
        ctx.out.bulk(link.host.as_bytes());
        ctx.out.int(link.port as i64);
        let state = *link.state.lock();
        ctx.out.bulk(state.as_bytes());
        ctx.out.int(link.offset.load(Ordering::Relaxed));
        return Ok(());
    }
    let Some(c) = ctx.node.cluster.clone() else {
        ctx.out.array(3);
        ctx.out.bulk(b"master");
        ctx.out.int(ctx.node.store.aof.repl_offset() as i64);
        ctx.out.array(resp_replicas.len());
        reply_resp_replicas(ctx);
        return Ok(());
    };
    let st = c.state.lock().clone();
    let me = st.me();
    match me.replica_of.as_deref().filter(|_| !me.is_master()) {
        None => {
            let feeds = c.repl.feeds.lock().clone();
            ctx.out.array(3);
            ctx.out.bulk(b"master");
            ctx.out.int(ctx.node.store.aof.repl_offset() as i64);
            let replicas: Vec<_> = st
                .replicas_of(&me.id)
                .filter(|r| feeds.get(&r.id).is_some_and(|f| !f.syncing))
                .collect();
            ctx.out.array(replicas.len() + resp_replicas.len());
            for r in replicas {
                ctx.out.array(3);
                ctx.out.bulk(r.endpoint.ip.as_bytes());
                ctx.out.bulk(r.endpoint.port.to_string().as_bytes());
                ctx.out.bulk(r.repl_offset.to_string().as_bytes());
            }
            reply_resp_replicas(ctx);
        }
        Some(master) => {
            let ep = st
                .nodes
                .get(master)
                .map(|m| m.endpoint.clone())
                .unwrap_or(me.endpoint.clone());
            let repl = &c.repl;
            let state = if repl.link_up.load(Ordering::Relaxed) {
                "connected"
            } else if repl.sync_in_progress.load(Ordering::Relaxed) {
                "sync"
            } else {
                "connect"
            };
            ctx.out.array(5);
            ctx.out.bulk(b"slave");
            ctx.out.bulk(ep.ip.as_bytes());
            ctx.out.int(ep.port as i64);
            ctx.out.bulk(state.as_bytes());
            ctx.out.int(repl.offset.load(Ordering::Relaxed) as i64);
        }
    }
    Ok(())
}

/// WAIT numreplicas timeout: the reply waits until that many replicas acknowledged this
/// connection's last write (Redis's `woff`; a connection that wrote nothing waits for nothing),
/// or the timeout (ms; 0 = forever). The connection does the waiting (`server::wait_replicas`);
/// inside MULTI/EXEC it answers at once, as Redis does.
pub fn wait(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    use crate::server::clients::WaitReplicas;
    // A replica first, before the arguments (as Redis's waitCommand): of a cluster master, or
    // of a master named by REPLICAOF.
    let replica = ctx
        .node
        .cluster
        .as_ref()
        .is_some_and(|c| !c.state.lock().me().is_master())
        || ctx.node.upstream.is_replica();
    if replica {
        return Err(CmdError::err(
            "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        ));
    }
    let replicas = int(&args[1])?;
    let timeout =
        int(&args[2]).map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    let (offset, acked) = match ctx.node.cluster.clone() {
        Some(c) => {
            // A write from before the stream restarted (a role change) is bounded by its end.
            let offset = ctx.client.repl_woff.min(ctx.node.store.aof.repl_offset());
            (offset, c.repl.acked_at_least(offset))
        }
        None => (ctx.client.repl_woff, 0),
    };
    let acked = acked + ctx.node.replicas.acked_at_least(offset);
    if ctx.client.in_exec || replicas <= acked as i64 {
        ctx.out.int(acked as i64);
        return Ok(());
    }
    ctx.client.wait_replicas = Some(WaitReplicas {
        offset,
        replicas: replicas as usize,
        deadline: (timeout > 0).then(|| {
            tokio::time::Instant::now() + std::time::Duration::from_millis(timeout as u64)
        }),
    });
    Ok(())
}

/// REPLICAOF / SLAVEOF: replicas are set up with CLUSTER REPLICATE; as Redis in cluster mode.
pub fn replicaof(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if ctx.node.cluster.is_some() {
        return Err(CmdError::err("REPLICAOF not allowed in cluster mode."));
    }
    if ctx.node.failover.active() {
        return Err(CmdError::err("REPLICAOF not allowed while failing over."));
    }
    if eq_ic(&args[1], "NO") && eq_ic(&args[2], "ONE") {
        ctx.node.upstream.stop(ctx.node);
        ctx.out.ok();
        return Ok(());
    }
    let port = int(&args[2])
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| CmdError::err("Invalid master port"))?;
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    if ctx.node.upstream.follow(ctx.node, host, port) {
        ctx.out.ok();
    } else {
        ctx.out.simple("OK Already connected to specified master");
    }
    Ok(())
}

/// FAILOVER [TO host port [FORCE]] [TIMEOUT ms] | FAILOVER ABORT: hands the master role to
/// a replica (see `server::failover`), with Redis's checks and errors.
pub fn failover_command(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let node = ctx.node;
    if node.cluster.is_some() {
        return Err(CmdError::err(
            "FAILOVER not allowed in cluster mode. Use CLUSTER FAILOVER command instead.",
        ));
    }
    if args.len() == 2 && eq_ic(&args[1], "ABORT") {
        if !node.failover.active() {
            return Err(CmdError::err("No failover in progress."));
        }
        crate::server::failover::abort(node, "Failover manually aborted");
        ctx.out.ok();
        return Ok(());
    }
    let (mut timeout, mut force, mut target) = (0i64, false, None);
    let mut j = 1;
    while j < args.len() {
        if eq_ic(&args[j], "TIMEOUT") && j + 1 < args.len() && timeout == 0 {
            timeout = int(&args[j + 1])?;
            if timeout <= 0 {
                return Err(CmdError::err("FAILOVER timeout must be greater than 0"));
            }
            j += 2;
        } else if eq_ic(&args[j], "TO") && j + 2 < args.len() && target.is_none() {
            let port = int(&args[j + 2])?;
            target = Some((String::from_utf8_lossy(&args[j + 1]).into_owned(), port));
            j += 3;
        } else if eq_ic(&args[j], "FORCE") && !force {
            force = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if node.failover.active() {
        return Err(CmdError::err("FAILOVER already in progress."));
    }
    if node.upstream.is_replica() {
        return Err(CmdError::err(
            "FAILOVER is not valid when server is a replica.",
        ));
    }
    let feeds = node.replicas.list();
    if feeds.is_empty() {
        return Err(CmdError::err("FAILOVER requires connected replicas."));
    }
    if force && (timeout == 0 || target.is_none()) {
        return Err(CmdError::err(
            "FAILOVER with force option requires both a timeout and target HOST and IP.",
        ));
    }
    let target = match target {
        None => None,
        Some((host, port)) => {
            let Some(f) = u16::try_from(port).ok().and_then(|port| {
                feeds
                    .iter()
                    .find(|f| f.ip.eq_ignore_ascii_case(&host) && f.port == port)
            }) else {
                return Err(CmdError::err(
                    "FAILOVER target HOST and PORT is not a replica.",
                ));
            };
            if f.state != "online" {
                return Err(CmdError::err("FAILOVER target replica is not online."));
            }
            Some((host, f.port))
        }
    };
    crate::server::failover::start(node, target, force, (timeout > 0).then_some(timeout));
    ctx.out.ok();
    Ok(())
}

/// SYNC: this connection becomes a Redis replica's (`server::replicas`): the RDB file, then
/// the stream of writes.
pub fn sync(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    start_sync(ctx, SyncKind::Sync)
}

/// PSYNC replid offset: `+CONTINUE` and what the replica missed when this node fed it until
/// that offset a moment ago (see `server::replicas`), else as SYNC after
/// `+FULLRESYNC <replid> <offset>`.
pub fn psync(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // `PSYNC <replid> <offset> FAILOVER` from our master (its FAILOVER's last step): with
    // the replication ID we follow, this node becomes a master, then serves the PSYNC.
    if args.len() > 3 && eq_ic(&args[3], "FAILOVER") {
        tracing::warn!(
            "Failover request received for replid {}.",
            String::from_utf8_lossy(&args[1])
        );
        let Some(link) = ctx.node.upstream.link() else {
            return Err(CmdError::err("PSYNC FAILOVER can't be sent to a master."));
        };
        if !link.replid.lock().as_bytes().eq_ignore_ascii_case(&args[1]) {
            return Err(CmdError::err("PSYNC FAILOVER replid must match my replid."));
        }
        ctx.node.upstream.stop(ctx.node);
        tracing::info!(
            "MASTER MODE enabled (failover request from '{}')",
            ctx.client.info.describe(ctx.now_ms)
        );
    }
    let offset = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|o| o.parse::<u64>().ok());
    ctx.client.replication.psync = match (&args[1][..], offset) {
        (b"?", _) | (_, None) => None,
        (id, Some(o)) => Some((String::from_utf8_lossy(id).into_owned(), o)),
    };
    start_sync(ctx, SyncKind::Psync)
}

fn start_sync(ctx: &mut Ctx, kind: SyncKind) -> CmdResult {
    if ctx.client.info.replica.load(Ordering::Relaxed) {
        return Ok(());
    }
    if ctx.node.failover.active() {
        return Err(CmdError::Msg(
            "NOMASTERLINK Can't SYNC while failing over".into(),
        ));
    }
    // A replica here mirrors its master's stream and appends nothing of its own to feed a
    // replica of its own with; it still serves the file alone (redis-cli --rdb).
    if let Some(c) = &ctx.node.cluster
        && !c.state.lock().me().is_master()
        && !ctx.client.replication.rdb_only
    {
        return Err(CmdError::Msg(
            "NOMASTERLINK this node is a cluster replica: replicate from its master (a replica feeds no replicas here; REPLCONF rdb-only 1 gets the file alone)".into(),
        ));
    }
    ctx.client.replication.sync = Some(kind);
    Ok(())
}

/// REPLCONF option value ...: what a replica says about itself before SYNC/PSYNC.
/// `ACK` and `GETACK` are read by the replica's feed once it streams; here they change nothing.
pub fn replconf(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    for pair in args[1..].chunks(2) {
        let (opt, value) = (&pair[0], &pair[1]);
        let text = String::from_utf8_lossy(value);
        if eq_ic(opt, "listening-port") {
            ctx.client.replication.listening_port = text
                .parse()
                .map_err(|_| CmdError::err("value is not an integer or out of range"))?;
        } else if eq_ic(opt, "ip-address") {
            ctx.client.replication.ip_address = Some(text.into_owned());
        } else if eq_ic(opt, "rdb-only") {
            ctx.client.replication.rdb_only = match &value[..] {
                b"1" => true,
                b"0" => false,
                _ => {
                    return Err(CmdError::err(
                        "value is out of range, value must between 0 and 1",
                    ));
                }
            };
        } else if eq_ic(opt, "ack") || eq_ic(opt, "getack") {
            // Only meaningful on a replica's stream (where the feed reads them); Redis ignores
            // them from other clients, without a reply.
            return Ok(());
        } else if !(eq_ic(opt, "capa") || eq_ic(opt, "rdb-filter-only")) {
            return Err(CmdError::err(format!(
                "Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    ctx.out.ok();
    Ok(())
}

fn replicas(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let id = String::from_utf8_lossy(&args[2]).into_owned();
    let st = c.state.lock().clone();
    let Some(n) = st.nodes.get(&id) else {
        return Err(CmdError::err(format!("Unknown node {id}")));
    };
    if !n.is_master() {
        return Err(CmdError::err("The specified node is not a master"));
    }
    let lines: Vec<String> = st
        .nodes
        .values()
        .filter(|r| r.replica_of.as_deref() == Some(id.as_str()))
        .map(|r| node_line(&st, r, false))
        .collect();
    ctx.out.bulks(lines.iter());
    Ok(())
}

fn help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "CLUSTER",
        &[
            "ADDSLOTS <slot> [<slot> ...]",
            "    Assign slots to current node.",
            "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Assign slots which are between <start-slot> and <end-slot> to current node.",
            "BUMPEPOCH",
            "    Advance the cluster config epoch.",
            "COUNT-FAILURE-REPORTS <node-id>",
            "    Return number of failure reports for <node-id>.",
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "DELSLOTS <slot> [<slot> ...]",
            "    Delete slots information from current node.",
            "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
            "FAILOVER [FORCE|TAKEOVER]",
            "    Promote current replica node to being a master.",
            "FLUSHSLOTS",
            "    Delete current node own slots information.",
            "FORGET <node-id>",
            "    Remove a node from the cluster.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "MEET <ip> <port> [<bus-port>]",
            "    Connect nodes into a working cluster.",
            "MYID",
            "    Return the node id.",
            "MYSHARDID",
            "    Return the node's shard id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port@bus-port[,hostname]> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "REPLICATE <node-id>",
            "    Configure current node as replica to <node-id>.",
            "REPLICAS <node-id>",
            "    Return <node-id> replicas.",
            "RESET [HARD|SOFT]",
            "    Reset current node (default: soft).",
            "SET-CONFIG-EPOCH <epoch>",
            "    Set config epoch of current node.",
            "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
            "    Set slot state.",
            "SAVECONFIG",
            "    Force saving cluster configuration on disk.",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "LINKS",
            "    Return information about all network links between this node and its peers.",
            "    Output format is an array where each array element is a map containing attributes of a link",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
        ],
    )
}

const ADM: u32 = ADMIN | STALE | NOSCRIPT;
const INFO_F: u32 = LOADING | STALE;

static CLUSTER_SUBS: &[Command] = &[
    cmd!(
        "info",
        2,
        INFO_F,
        NO_KEYS,
        "cluster",
        "3.0.0",
        info,
        "Returns information about the state of a node."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "nodes",
        2,
        INFO_F,
        NO_KEYS,
        "cluster",
        "3.0.0",
        nodes,
        "Returns the cluster configuration for a node."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "slots",
        2,
        INFO_F,
        NO_KEYS,
        "cluster",
        "3.0.0",
        slots,
        "Returns the mapping of cluster slots to nodes."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "shards",
        2,
        INFO_F,
        NO_KEYS,
        "cluster",
        "7.0.0",
        shards,
        "Returns the mapping of cluster slots to shards."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "myid",
        2,
        INFO_F,
        NO_KEYS,
        "cluster",
        "3.0.0",
        myid,
        "Returns the ID of a node."
    ),
    cmd!(
        "myshardid",
        2,
        INFO_F,
        NO_KEYS,
        "cluster",
        "7.2.0",
        myshardid,
        "Returns the shard ID of a node."
    ),
    cmd!(
        "keyslot",
        3,
        STALE,
        NO_KEYS,
        "cluster",
        "3.0.0",
        keyslot,
        "Returns the hash slot for a key."
    ),
    cmd!(
        "countkeysinslot",
        3,
        STALE,
        NO_KEYS,
        "cluster",
        "3.0.0",
        countkeysinslot,
        "Returns the number of keys in a hash slot."
    ),
    cmd!(
        "getkeysinslot",
        4,
        STALE,
        NO_KEYS,
        "cluster",
        "3.0.0",
        getkeysinslot,
        "Returns the key names in a hash slot."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "meet",
        -4,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        meet,
        "Forces a node to handshake with another node."
    ),
    cmd!(
        "forget",
        3,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        forget,
        "Removes a node from the nodes table."
    ),
    cmd!(
        "drain",
        -2,
        ADM,
        NO_KEYS,
        "cluster",
        "0.1.0",
        drain,
        "Moves this node's slots and keys to the other nodes so it can leave (Reredis)."
    ),
    cmd!(
        "reset",
        -2,
        ADMIN | STALE | NOSCRIPT,
        NO_KEYS,
        "cluster",
        "3.0.0",
        reset,
        "Resets a node."
    ),
    cmd!(
        "addslots",
        -3,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        addslots,
        "Assigns new hash slots to a node."
    ),
    cmd!(
        "addslotsrange",
        -4,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "7.0.0",
        addslotsrange,
        "Assigns new hash slot ranges to a node."
    ),
    cmd!(
        "delslots",
        -3,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        delslots,
        "Sets hash slots as unbound for a node."
    ),
    cmd!(
        "delslotsrange",
        -4,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "7.0.0",
        delslotsrange,
        "Sets hash slot ranges as unbound for a node."
    ),
    cmd!(
        "flushslots",
        2,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        flushslots,
        "Deletes all slots information from a node."
    ),
    cmd!(
        "setslot",
        -4,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        setslot,
        "Binds a hash slot to a node."
    ),
    cmd!(
        "set-config-epoch",
        3,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        set_config_epoch,
        "Sets the configuration epoch for a new node."
    ),
    cmd!(
        "bumpepoch",
        2,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        bumpepoch,
        "Advances the cluster config epoch."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "count-failure-reports",
        3,
        ADMIN | STALE,
        NO_KEYS,
        "cluster",
        "3.0.0",
        count_failure_reports,
        "Returns the number of active failure reports active for a node."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "saveconfig",
        2,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        saveconfig,
        "Forces a node to save the cluster configuration to disk."
    ),
    cmd!(
        "links",
        2,
        STALE,
        NO_KEYS,
        "cluster",
        "7.0.0",
        links,
        "Returns a list of all TCP links to and from peer nodes."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "replicate",
        3,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        replicate,
        "Configure a node as replica of a master node."
    ),
    cmd!(
        "failover",
        -2,
        ADM | NO_ASYNC_LOADING,
        NO_KEYS,
        "cluster",
        "3.0.0",
        failover,
        "Forces a replica to perform a manual failover of its master."
    ),
    cmd!(
        "replicas",
        3,
        ADM,
        NO_KEYS,
        "cluster",
        "5.0.0",
        replicas,
        "Lists the replica nodes of a master node."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "slaves",
        3,
        ADM,
        NO_KEYS,
        "cluster",
        "3.0.0",
        replicas,
        "Lists the replica nodes of a master node."
    )
    .tips(&["nondeterministic_output"]),
    cmd!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "cluster",
        "5.0.0",
        help,
        "Returns helpful text about the different subcommands."
    ),
];

pub static COMMANDS: &[Command] = &[
    Command {
        name: "cluster",
        arity: -2,
        flags: 0,
        keys: NO_KEYS,
        keys_fn: None,
        group: "cluster",
        since: "3.0.0",
        summary: "A container for Redis Cluster commands.",
        handler: None,
        subcommands: CLUSTER_SUBS,
        key_specs: &[],
        tips: &[],
        acl: &[],
    },
    cmd!(
        "role",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        NO_KEYS,
        "server",
        "2.8.12",
        role,
        "Returns the replication role."
    ).acl(&["@admin", "@dangerous"]),
    cmd!(
        "wait",
        3,
        NOSCRIPT,
        NO_KEYS,
        "generic",
        "3.0.0",
        wait,
        "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."
    )
    .tips(&["request_policy:all_shards", "response_policy:agg_min"])
    .acl(&["@connection"]),
    cmd!(
        "sync",
        1,
        ADMIN | NOSCRIPT | NO_MULTI | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "1.0.0",
        sync,
        "Internal command used for replication"
    ),
    cmd!(
        "psync",
        -3,
        ADMIN | NOSCRIPT | NO_MULTI | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "2.8.0",
        psync,
        "Internal command used for replication"
    ),
    cmd!(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        NO_KEYS,
        "server",
        "3.0.0",
        replconf,
        "An internal command for configuring the replication stream"
    ),
    cmd!(
        "failover",
        -1,
        ADMIN | NOSCRIPT | STALE,
        NO_KEYS,
        "server",
        "6.2.0",
        failover_command,
        "Starts a coordinated failover from a server to one of its replicas."
    )
    .acl(&["@admin", "@dangerous"]),
    cmd!(
        "replicaof",
        3,
        ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "5.0.0",
        replicaof,
        "Configures a server as replica of another, or promotes it to a master."
    ),
    cmd!(
        "slaveof",
        3,
        ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        NO_KEYS,
        "server",
        "1.0.0",
        replicaof,
        "Sets a Redis server as a replica of another, or promotes it to being a master."
    ),
    cmd!(
        "asking",
        1,
        FAST,
        NO_KEYS,
        "cluster",
        "3.0.0",
        asking,
        "Signals that a cluster client is following an -ASK redirect."
    ).acl(&["@connection"]),
    cmd!(
        "readonly",
        1,
        LOADING | STALE | FAST,
        NO_KEYS,
        "cluster",
        "3.0.0",
        readonly,
        "Enables read-only queries for a connection to a Redis Cluster replica node."
    ).acl(&["@connection"]),
    cmd!(
        "readwrite",
        1,
        LOADING | STALE | FAST,
        NO_KEYS,
        "cluster",
        "3.0.0",
        readwrite,
        "Enables read-write queries for a connection to a Reids Cluster replica node."
    ).acl(&["@connection"]),
];
