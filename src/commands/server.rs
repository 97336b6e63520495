//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, INFO, TIME, LASTSAVE, SHUTDOWN, MONITOR,
//! CONFIG, SLOWLOG and LATENCY.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{eq_ic, int_or};
use super::error::{CmdError, CmdResult};
use super::{Ctx, reply_help};
use crate::glob::glob_match;
use crate::observe::events::class;
use crate::server::stats::{rss_bytes, used_memory};
use crate::store::Keyspace;

pub fn dbsize(ctx: &mut Ctx, ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.out.int(ks.dbsize(ctx.client.db) as i64);
    Ok(())
}

/// FLUSHDB/FLUSHALL's optional ASYNC|SYNC: whether the tables are freed in the background
/// (without either, as `lazyfree-lazy-user-flush` says).
fn flush_lazily(ctx: &Ctx, args: &[Bytes]) -> Result<bool, CmdError> {
    match args.len() {
        1 => Ok(ctx.node.config.read().lazyfree_lazy_user_flush),
        2 if eq_ic(&args[1], "ASYNC") => Ok(true),
        2 if eq_ic(&args[1], "SYNC") => Ok(false),
        _ => Err(CmdError::Syntax),
    }
}

pub fn flushdb(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let lazy = flush_lazily(ctx, args)?;
    let n = ks.flush_db(ctx.client.db, lazy);
    ctx.dirty(n as u64 + 1);
    // Not a Redis keyspace notification (notification sinks skip it); the live feed shows it.
    ctx.notify(class::GENERIC, "flushdb", b"");
    ctx.out.ok();
    Ok(())
}

pub fn flushall(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let lazy = flush_lazily(ctx, args)?;
    let n = ks.flush_all(lazy);
    // With `save` rules, the empty data set is saved at once (as Redis).
    // (Every shard is held here, so a running script can only be this command's caller, also
    // when the script runs inside EXEC, where `in_script` says no.)
    let in_script = ctx.client.in_script() || ctx.node.scripts.is_running();
    crate::store::off_worker(|| crate::persist::save_after_flush(ctx.node, ks, in_script));
    ctx.dirty(n as u64 + 1);
    ctx.notify(class::GENERIC, "flushall", b"");
    ctx.out.ok();
    Ok(())
}

pub fn swapdb(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if ctx.node.cluster.is_some() {
        return Err(CmdError::err("SWAPDB is not allowed in cluster mode"));
    }
    // Indexes are ints (Redis's getIntFromObjectOrReply with these words).
    let a = int_or(&args[1], CmdError::err("invalid first DB index"))
        .and_then(|a| i32::try_from(a).map_err(|_| CmdError::err("invalid first DB index")))?
        as i64;
    let b = int_or(&args[2], CmdError::err("invalid second DB index"))
        .and_then(|b| i32::try_from(b).map_err(|_| CmdError::err("invalid second DB index")))?
        as i64;
    let n = ctx.node.store.databases() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Err(CmdError::DbIndexOutOfRange);
    }
    if a != b {
        ks.swap_db(a as usize, b as usize);
    }
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

pub fn time(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk(now.as_secs().to_string().as_bytes());
    ctx.out.bulk(now.subsec_micros().to_string().as_bytes());
    Ok(())
}

pub fn lastsave(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.out
        .int(ctx.node.persist.last_save_unix.load(Ordering::Relaxed));
    Ok(())
}

/// SAVE: writes the snapshot before replying (this connection waits; others keep being served).
pub fn save(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let r = crate::persist::save(ctx.node);
    if !matches!(r, Err(crate::persist::SaveError::InProgress)) {
        // Every attempt counts, as Redis's saveCommand.
        ctx.node.persist.rdb_saves.fetch_add(1, Ordering::Relaxed);
    }
    match r {
        Ok(()) => {
            ctx.out.ok();
            Ok(())
        }
        Err(crate::persist::SaveError::InProgress) => {
            Err(CmdError::err("Background save already in progress"))
        }
        Err(crate::persist::SaveError::Io(_)) => Err(CmdError::Msg("ERR".into())),
    }
}

pub fn bgsave(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let schedule = match args.len() {
        1 => false,
        2 if eq_ic(&args[1], "SCHEDULE") => true,
        _ => return Err(CmdError::Syntax),
    };
    let p = &ctx.node.persist;
    if p.bgsave_in_progress() {
        return Err(CmdError::err("Background save already in progress"));
    }
    if p.rewrite_in_progress() {
        if schedule {
            // Started by the persistence cron once the rewrite ends.
            p.bgsave_scheduled.store(true, Ordering::Relaxed);
            ctx.out.simple("Background saving scheduled");
            return Ok(());
        }
        return Err(CmdError::err(
            "Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
        ));
    }
    if !crate::persist::bgsave(ctx.node) {
        return Err(CmdError::err("Background save already in progress"));
    }
    ctx.out.simple("Background saving started");
    Ok(())
}

pub fn bgrewriteaof(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    use crate::persist::Rewrite;
    match crate::persist::bgrewriteaof(ctx.node) {
        Rewrite::Started => ctx
            .out
            .simple("Background append only file rewriting started"),
        Rewrite::Scheduled => ctx
            .out
            .simple("Background append only file rewriting scheduled"),
        Rewrite::AlreadyRunning => {
            return Err(CmdError::err(
                "Background append only file rewriting already in progress",
            ));
        }
    }
    Ok(())
}

pub fn shutdown(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut abort = false;
    let mut save_choice = 0;
    let mut now = false;
    let mut force = false;
    for a in &args[1..] {
        if eq_ic(a, "ABORT") {
            abort = true;
        } else if eq_ic(a, "NOW") {
            now = true;
        } else if eq_ic(a, "SAVE") {
            save_choice = 1;
        } else if eq_ic(a, "NOSAVE") {
            save_choice = 2;
        } else if eq_ic(a, "FORCE") {
            force = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    // As Redis: ABORT takes no other option.
    if abort && args.len() > 2 {
        return Err(CmdError::Syntax);
    }
    if abort {
        return Err(CmdError::err("No shutdown in progress."));
    }
    // As Redis: while a script runs, only SHUTDOWN NOSAVE (saving would keep a script's
    // half-done writes).
    if save_choice != 2 && ctx.node.scripts.is_running() {
        return Err(CmdError::Msg(ctx.node.scripts.busy_error().into()));
    }
    tracing::warn!("User requested shutdown...");
    // The final snapshot first: one that cannot be written keeps the node running, unless
    // FORCE (as Redis's prepareForShutdown).
    let saved =
        crate::store::off_worker(|| crate::persist::save_before_shutdown(ctx.node, save_choice));
    if saved.is_err() && !force {
        tracing::warn!(
            "Errors trying to shut down the server. Check the logs for more information."
        );
        return Err(CmdError::err("Errors trying to SHUTDOWN. Check logs."));
    }
    ctx.node
        .persist
        .shutdown_save
        .store(save_choice, Ordering::Relaxed);
    ctx.node.persist.shutdown_now.store(now, Ordering::Relaxed);
    ctx.node.shutdown.cancel();
    ctx.client.close_after_reply = true;
    Ok(())
}

pub fn monitor(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    ctx.client.monitor = true;
    ctx.client.info.monitor.store(true, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

pub fn config_get(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let cfg = ctx.node.config.read();
    // (name as replied, setting name, value). As Redis's configGetCommand: a name without glob
    // characters is looked up directly and replied as the client spelled it (`CONFIG GET
    // MAXMEMORY` answers `MAXMEMORY`); a pattern replies the settings' own names.
    // Aliases are names of their own here, as in Redis (`CONFIG GET lua-time-limit
    // busy-reply-threshold` answers both).
    let mut pairs: Vec<(Vec<u8>, &str, String)> = Vec::new();
    for p in &args[2..] {
        let exact = !p.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        for (name, s) in crate::config::config_names() {
            let (matched, shown) = if exact {
                (p.eq_ignore_ascii_case(name.as_bytes()), p.to_vec())
            } else {
                (
                    glob_match(p, name.as_bytes(), true),
                    name.as_bytes().to_vec(),
                )
            };
            if matched && !pairs.iter().any(|(_, n, _)| *n == name) {
                pairs.push((shown, name, s.show(cfg.values.get(s.name))));
            }
        }
    }
    drop(cfg);
    ctx.out.map(pairs.len());
    for (k, _, v) in pairs {
        ctx.out.bulk(&k);
        ctx.out.bulk(v.as_bytes());
    }
    Ok(())
}

pub fn config_set(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::Arity("config|set".into()));
    }
    let owned: Vec<(String, String)> = args[2..]
        .chunks(2)
        .map(|p| {
            (
                String::from_utf8_lossy(&p[0]).into_owned(),
                String::from_utf8_lossy(&p[1]).into_owned(),
            )
        })
        .collect();
    for (i, (name, _)) in owned.iter().enumerate() {
        if owned[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(CmdError::err(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"
            )));
        }
    }
    let pairs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    ctx.node
        .config
        .write()
        .config_set(&pairs)
        .map_err(CmdError::err)?;
    ctx.node.apply_config();
    crate::persist::apply_config(ctx.node);
    ctx.out.ok();
    Ok(())
}

pub fn config_resetstat(ctx: &mut Ctx, ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let node = ctx.node;
    node.stats.reset();
    ks.reset_stats();
    node.store.lazyfree.reset_stats();
    for s in node.cmd_stats.iter() {
        s.reset();
    }
    node.slowlog.reset();
    // The sync counts of INFO stats, as Redis's resetServerStats.
    let r = &node.replicas;
    let mut counters = vec![&r.sync_full, &r.sync_partial_ok, &r.sync_partial_err];
    if let Some(c) = &node.cluster {
        counters.extend([
            &c.repl.sync_full,
            &c.repl.sync_partial_ok,
            &c.repl.sync_partial_err,
        ]);
    }
    for c in counters {
        c.store(0, Ordering::Relaxed);
    }
    ctx.out.ok();
    Ok(())
}

pub fn config_rewrite(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let path = ctx.node.config.read().config_file.clone();
    let Some(path) = path else {
        return Err(CmdError::err("The server is running without a config file"));
    };
    // The users as they stand, unless an ACL file keeps them (Redis's rewriteConfigUserOption).
    let users: Option<Vec<String>> = ctx.node.config.read().get("aclfile").is_empty().then(|| {
        ctx.node
            .acl
            .users()
            .iter()
            .map(|u| format!("{} {}", u.name, u.describe()))
            .collect()
    });
    let text = ctx.node.config.read().render_file(users.as_deref());
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| CmdError::err(format!("Rewriting config file: {e}")))?;
    ctx.out.ok();
    Ok(())
}

pub fn config_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    )
}

pub fn slowlog_get(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // At most a count (Redis's slowlogCommand takes 2 or 3 arguments).
    if args.len() > 3 {
        return Err(super::subcommand_syntax_error(args));
    }
    let count = match args.get(2) {
        None => 10,
        Some(a) => {
            let n = int_or(
                a,
                CmdError::err("count should be greater than or equal to -1"),
            )?;
            if n < -1 {
                return Err(CmdError::err("count should be greater than or equal to -1"));
            }
            if n == -1 { usize::MAX } else { n as usize }
        }
    };
    let out = &mut ctx.out;
    ctx.node.slowlog.with_entries(|entries| {
        let n = entries.len().min(count);
        out.array(n);
        for e in entries.iter().take(n) {
            out.array(6);
            out.int(e.id as i64);
            out.int(e.time_s);
            out.int(e.micros as i64);
            out.bulks(e.args.iter());
            out.bulk(e.client_addr.as_bytes());
            out.bulk(e.client_name.as_bytes());
        }
    });
    Ok(())
}

pub fn slowlog_len(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.out.int(ctx.node.slowlog.len() as i64);
    Ok(())
}

pub fn slowlog_reset(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.node.slowlog.reset();
    ctx.out.ok();
    Ok(())
}

pub fn slowlog_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    )
}

pub fn latency_latest(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let latest = ctx.node.latency.latest();
    ctx.out.array(latest.len());
    for (name, t, ms, max) in latest {
        ctx.out.array(4);
        ctx.out.bulk(name.as_bytes());
        ctx.out.int(t);
        ctx.out.int(ms as i64);
        ctx.out.int(max as i64);
    }
    Ok(())
}

pub fn latency_history(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let h = ctx.node.latency.history(&String::from_utf8_lossy(&args[2]));
    ctx.out.array(h.len());
    for (t, ms) in h {
        ctx.out.array(2);
        ctx.out.int(t);
        ctx.out.int(ms as i64);
    }
    Ok(())
}

/// LATENCY GRAPH: Redis's ASCII sparkline of an event's samples (`latency.c`,
/// `sparkline.c`): a header, 80 dashes, four rows of `_o#|` and each sample's age as a
/// vertical label.
pub fn latency_graph(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let event = String::from_utf8_lossy(&args[2]).into_owned();
    let Some((samples, all_time)) = ctx.node.latency.series(&event) else {
        return Err(CmdError::err(format!(
            "No samples available for event '{event}'"
        )));
    };
    let now_s = ctx.now_ms / 1000;
    let labelled: Vec<(u64, String)> = samples
        .iter()
        .map(|&(t, ms)| {
            let e = now_s - t;
            let label = match e {
                ..60 => format!("{e}s"),
                60..3600 => format!("{}m", e / 60),
                3600..86400 => format!("{}h", e / 3600),
                _ => format!("{}d", e / 86400),
            };
            (ms, label)
        })
        .collect();
    let text = latency_graph_text(&event, &labelled, all_time);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

const GRAPH_COLUMNS: usize = 80;
const GRAPH_ROWS: usize = 4;

fn latency_graph_text(event: &str, samples: &[(u64, String)], all_time: u64) -> String {
    let min = samples.iter().map(|s| s.0).min().unwrap_or(0);
    let max = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let mut out = format!(
        "{event} - high {max} ms, low {min} ms (all time high {all_time} ms)\n{}\n",
        "-".repeat(GRAPH_COLUMNS)
    );
    for (i, chunk) in samples.chunks(GRAPH_COLUMNS).enumerate() {
        if i != 0 {
            out.push('\n');
        }
        sparkline_rows(&mut out, chunk, min, max);
    }
    out
}

/// Redis's sparklineRenderRange with SPARKLINE_FILL: GRAPH_ROWS rows of three steps each
/// (`_`, `o`, `#`, and `|` below the top), a blank line, then the labels top to bottom.
fn sparkline_rows(out: &mut String, samples: &[(u64, String)], min: u64, max: u64) {
    const FILL: &[u8] = b"_o#";
    let relmax = match (max - min) as f64 {
        0.0 => 1.0,
        r => r,
    };
    let steps = (FILL.len() * GRAPH_ROWS) as i64;
    let rows = GRAPH_ROWS as i64;
    let mut row = 0i64;
    loop {
        let mut more = false;
        let mut chars = vec![b' '; samples.len()];
        for (j, (value, label)) in samples.iter().enumerate() {
            let relval = (value - min) as f64;
            // As C's `(int) (relval*steps)/relmax`, truncated twice.
            let step = (((relval * steps as f64) as i64) as f64 / relmax) as i64;
            let step = step.clamp(0, steps - 1);
            if row < rows {
                more = true;
                let idx = step - (rows - row - 1) * FILL.len() as i64;
                if (0..FILL.len() as i64).contains(&idx) {
                    chars[j] = FILL[idx as usize];
                } else if idx >= FILL.len() as i64 {
                    chars[j] = b'|';
                }
            } else {
                // One blank line between the graph and the labels.
                if row - rows < 1 {
                    more = true;
                    break;
                }
                let at = (row - rows - 1) as usize;
                if let Some(&c) = label.as_bytes().get(at) {
                    more = true;
                    chars[j] = c;
                }
            }
        }
        if !more {
            return;
        }
        row += 1;
        out.push_str(&String::from_utf8_lossy(&chars));
        out.push('\n');
    }
}

pub fn latency_reset(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let names: Vec<String> = args[2..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    ctx.out.int(ctx.node.latency.reset(&names) as i64);
    Ok(())
}

pub fn latency_doctor(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    let latest = ctx.node.latency.latest();
    let mut text = String::new();
    if latest.is_empty() {
        let threshold = ctx.node.config.read().latency_monitor_threshold_ms;
        if threshold == 0 {
            text.push_str("I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n");
        } else {
            text.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sleep tonight.\n");
        }
    } else {
        text.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        for (i, (name, _, ms, max)) in latest.iter().enumerate() {
            let _ = writeln!(
                text,
                "{}. {}: latest latency {} milliseconds, worst {} milliseconds.",
                i + 1,
                name,
                ms,
                max
            );
        }
    }
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

pub fn latency_histogram(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let t = super::table();
    let wanted: Vec<&super::CommandRef> = if args.len() > 2 {
        // A container stands for itself and its subcommands, as in Redis; names that are no
        // command are skipped, and one named twice is listed twice.
        let mut wanted: Vec<&super::CommandRef> = Vec::new();
        for a in &args[2..] {
            let name = String::from_utf8_lossy(a).to_lowercase();
            let sub = format!("{name}|");
            wanted.extend(
                t.all
                    .iter()
                    .filter(|c| c.fullname == name || c.fullname.starts_with(&sub)),
            );
        }
        wanted
    } else {
        t.all.iter().collect()
    };
    let rows: Vec<_> = wanted
        .into_iter()
        .filter(|c| ctx.node.cmd_stats[c.id].calls.load(Ordering::Relaxed) > 0)
        .collect();
    ctx.out.map(rows.len());
    for c in rows {
        let st = &ctx.node.cmd_stats[c.id];
        ctx.out.bulk(c.fullname.as_bytes());
        ctx.out.map(2);
        ctx.out.bulk(b"calls");
        ctx.out.int(st.calls.load(Ordering::Relaxed) as i64);
        ctx.out.bulk(b"histogram_usec");
        let buckets: Vec<(u64, u64)> = {
            let mut acc = 0;
            st.histogram_counts()
                .into_iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    acc += n;
                    (n > 0).then_some((1u64 << i, acc))
                })
                .collect()
        };
        ctx.out.map(buckets.len());
        for (le, n) in buckets {
            ctx.out.int(le as i64);
            ctx.out.int(n as i64);
        }
    }
    Ok(())
}

pub fn latency_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "LATENCY",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    )
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

/// MemTotal from /proc/meminfo, in bytes (0 where there is none).
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// (user, system) CPU seconds of this process, from /proc.
fn cpu_times() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (tick(11), tick(12))
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

pub fn info(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let mut sections: Vec<String> = Vec::new();
    if args.len() == 1 {
        sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    for a in &args[1..] {
        let s = String::from_utf8_lossy(a).to_lowercase();
        match s.as_str() {
            "default" => sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string())),
            "all" | "everything" => {
                sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
                sections.push("commandstats".into());
                sections.push("latencystats".into());
            }
            _ => sections.push(s),
        }
    }
    let text = render_info(ctx, ks, &sections);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// A replica's link to its master, as `INFO replication` shows it.
struct MasterLink<'a> {
    host: &'a str,
    port: u16,
    up: bool,
    last_io_ms: i64,
    syncing: bool,
    offset: u64,
    /// When the link went down after being up (0: never, or up now).
    down_since_ms: i64,
    /// A full sync's file (over Redis's protocol): (length or -1, bytes read, last read ms).
    transfer: Option<(i64, u64, i64)>,
}

/// The lines of a replica's role, from `role:slave` to `replica_announced`.
fn replica_lines(o: &mut InfoText, m: MasterLink, now_ms: i64) {
    o.kv("role", &"slave");
    o.kv("master_host", &m.host);
    o.kv("master_port", &m.port);
    o.kv("master_link_status", &if m.up { "up" } else { "down" });
    o.kv(
        "master_last_io_seconds_ago",
        &if m.last_io_ms > 0 {
            (now_ms - m.last_io_ms).max(0) / 1000
        } else {
            -1
        },
    );
    o.kv("master_sync_in_progress", &u8::from(m.syncing));
    o.kv("slave_read_repl_offset", &m.offset);
    o.kv("slave_repl_offset", &m.offset);
    if let Some((size, read, last_io_ms)) = m.transfer.filter(|_| m.syncing) {
        o.kv("master_sync_total_bytes", &size);
        o.kv("master_sync_read_bytes", &read);
        o.kv("master_sync_left_bytes", &(size - read as i64));
        // (As Redis's: a length not known yet, -1, gives -0.00.)
        let perc = if size != 0 {
            read as f64 / size as f64 * 100.0
        } else {
            0.0
        };
        o.kv("master_sync_perc", &format!("{perc:.2}"));
        o.kv(
            "master_sync_last_io_seconds_ago",
            &((now_ms - last_io_ms).max(0) / 1000),
        );
    }
    if !m.up {
        o.kv(
            "master_link_down_since_seconds",
            &if m.down_since_ms > 0 {
                (now_ms - m.down_since_ms).max(0) / 1000
            } else {
                -1
            },
        );
    }
    o.kv("slave_priority", &100);
    o.kv("slave_read_only", &1);
    o.kv("replica_announced", &1);
}

/// `slave<i>` lines of the replicas fed over client connections (SYNC/PSYNC), numbered from
/// `first`. Their offset is the replica's own count (see `server::replicas`).
fn resp_replica_lines(
    o: &mut InfoText,
    feeds: &[crate::server::replicas::Feed],
    first: usize,
    now_ms: i64,
) {
    for (i, f) in feeds.iter().enumerate() {
        o.kv(
            &format!("slave{}", first + i),
            &format!(
                "ip={},port={},state={},offset={},lag={}",
                f.ip,
                f.port,
                f.state,
                f.acked_resp,
                (now_ms - f.acked_ms).max(0) / 1000
            ),
        );
    }
}

/// INFO text: `# Section` headers, `field:value` lines, a blank line between sections.
/// The role part of `INFO replication`, as Redis 7.0 prints it; returns the offset to show.
fn replication_section(o: &mut InfoText, node: &crate::node::Node, now_ms: i64) -> u64 {
    let resp_replicas = node.replicas.list();
    if let Some(link) = node.upstream.link() {
        // A replica of a master over Redis's protocol (REPLICAOF host port).
        let offset = link.offset.load(Ordering::Relaxed).max(0) as u64;
        replica_lines(
            o,
            MasterLink {
                host: &link.host,
                port: link.port,
                up: link.up.load(Ordering::Relaxed),
                last_io_ms: link.last_io_ms.load(Ordering::Relaxed),
                syncing: *link.state.lock() == "sync",
                offset,
                down_since_ms: link.down_since_ms.load(Ordering::Relaxed),
                transfer: Some((
                    link.transfer_size.load(Ordering::Relaxed),
                    link.transfer_read.load(Ordering::Relaxed),
                    link.transfer_last_io_ms.load(Ordering::Relaxed),
                )),
            },
            now_ms,
        );
        o.kv("connected_slaves", &resp_replicas.len());
        resp_replica_lines(o, &resp_replicas, 0, now_ms);
        o.kv("master_failover_state", &node.failover.state());
        return offset;
    }
    let Some(c) = node.cluster.as_ref() else {
        o.kv("role", &"master");
        o.kv("connected_slaves", &resp_replicas.len());
        if let Some((_, good)) = node.min_replicas() {
            o.kv("min_slaves_good_slaves", &good);
        }
        resp_replica_lines(o, &resp_replicas, 0, now_ms);
        o.kv("master_failover_state", &node.failover.state());
        return node.store.aof.repl_offset();
    };
    let st = c.state.lock().clone();
    let me = st.me();
    let repl = &c.repl;
    let offset;
    match me.replica_of.as_deref().filter(|_| !me.is_master()) {
        Some(master) => {
            offset = repl.offset.load(Ordering::Relaxed);
            let ep = st.nodes.get(master).map(|m| m.endpoint.clone());
            replica_lines(
                o,
                MasterLink {
                    host: ep.as_ref().map_or("?", |e| e.ip.as_str()),
                    port: ep.as_ref().map_or(0, |e| e.port),
                    up: repl.link_up.load(Ordering::Relaxed),
                    last_io_ms: repl.last_io_ms.load(Ordering::Relaxed),
                    syncing: repl.sync_in_progress.load(Ordering::Relaxed),
                    offset,
                    down_since_ms: repl.down_since_ms.load(Ordering::Relaxed),
                    transfer: None,
                },
                now_ms,
            );
            o.kv("connected_slaves", &0);
        }
        None => {
            offset = node.store.aof.repl_offset();
            o.kv("role", &"master");
            let feeds = repl.feeds.lock().clone();
            let mut replicas: Vec<_> = st.replicas_of(&me.id).collect();
            replicas.retain(|r| feeds.contains_key(&r.id));
            o.kv("connected_slaves", &(replicas.len() + resp_replicas.len()));
            if let Some((_, good)) = node.min_replicas() {
                o.kv("min_slaves_good_slaves", &good);
            }
            for (i, r) in replicas.iter().enumerate() {
                let state = if feeds[&r.id].syncing {
                    "send_bulk"
                } else {
                    "online"
                };
                let lag = if r.pong_received_ms > 0 {
                    (now_ms - r.pong_received_ms).max(0) / 1000
                } else {
                    0
                };
                o.kv(
                    &format!("slave{i}"),
                    &format!(
                        "ip={},port={},state={state},offset={},lag={lag}",
                        r.endpoint.ip,
                        r.endpoint.port,
                        feeds[&r.id].acked.max(r.repl_offset)
                    ),
                );
            }
            resp_replica_lines(o, &resp_replicas, replicas.len(), now_ms);
        }
    }
    let failover = if st.election.manual {
        "waiting-for-sync"
    } else {
        "no-failover"
    };
    o.kv("master_failover_state", &failover);
    offset
}

#[derive(Default)]
struct InfoText {
    text: String,
}

impl InfoText {
    fn head(&mut self, name: &str) {
        if !self.text.is_empty() {
            self.text.push_str("\r\n");
        }
        let _ = write!(self.text, "# {name}\r\n");
    }

    fn kv(&mut self, k: &str, v: &dyn std::fmt::Display) {
        let _ = write!(self.text, "{k}:{v}\r\n");
    }

    fn line(&mut self, l: String) {
        self.text.push_str(&l);
    }
}

/// `INFO persistence`, with Redis 7.0's fields in its order. "cow" and fork figures are 0: the
/// snapshot is taken without a fork.
fn persistence_info(o: &mut InfoText, node: &crate::node::Node, now_ms: i64) {
    let p = &node.persist;
    let aof = &node.store.aof;
    let ld = |a: &std::sync::atomic::AtomicI64| a.load(Ordering::Relaxed);
    let lu = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let status = |ok: bool| if ok { "ok" } else { "err" };
    let loading = p.is_loading();
    o.head("Persistence");
    o.kv("loading", &(loading as u8));
    o.kv("async_loading", &0);
    o.kv("current_cow_peak", &0);
    o.kv("current_cow_size", &0);
    o.kv("current_cow_size_age", &0);
    o.kv("current_fork_perc", &"0.00");
    o.kv("current_save_keys_processed", &0);
    o.kv("current_save_keys_total", &0);
    if loading {
        let total = lu(&p.loading_total_bytes);
        let done = lu(&p.loading_loaded_bytes);
        let start = ld(&p.loading_start_unix);
        let perc = if total > 0 {
            done as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let elapsed = (now_ms / 1000 - start).max(0) as f64;
        let eta = if done > 0 {
            (elapsed * (total.saturating_sub(done)) as f64 / done as f64) as i64
        } else {
            1
        };
        o.kv("loading_start_time", &start);
        o.kv("loading_total_bytes", &total);
        o.kv("loading_rdb_used_mem", &0);
        o.kv("loading_loaded_bytes", &done);
        o.kv("loading_loaded_perc", &format!("{perc:.2}"));
        o.kv("loading_eta_seconds", &eta);
    }
    let job_secs = |running: bool| {
        if running {
            (now_ms - ld(&p.job_started_ms)) / 1000
        } else {
            -1
        }
    };
    let dirty = node.store.dirty().saturating_sub(lu(&p.dirty_at_save));
    o.kv("rdb_changes_since_last_save", &dirty);
    o.kv("rdb_bgsave_in_progress", &(p.bgsave_in_progress() as u8));
    o.kv("rdb_last_save_time", &ld(&p.last_save_unix));
    o.kv(
        "rdb_last_bgsave_status",
        &status(p.last_bgsave_ok.load(Ordering::Relaxed)),
    );
    o.kv("rdb_last_bgsave_time_sec", &ld(&p.last_bgsave_secs));
    o.kv(
        "rdb_current_bgsave_time_sec",
        &job_secs(p.bgsave_in_progress()),
    );
    o.kv("rdb_saves", &lu(&p.rdb_saves));
    o.kv("rdb_last_cow_size", &0);
    o.kv("rdb_last_load_keys_expired", &lu(&p.load_keys_expired));
    o.kv("rdb_last_load_keys_loaded", &lu(&p.load_keys_loaded));
    let aof_on = aof.is_on();
    o.kv("aof_enabled", &(aof_on as u8));
    o.kv("aof_rewrite_in_progress", &(p.rewrite_in_progress() as u8));
    o.kv(
        "aof_rewrite_scheduled",
        &(p.rewrite_scheduled.load(Ordering::Relaxed) as u8),
    );
    o.kv("aof_last_rewrite_time_sec", &ld(&p.last_rewrite_secs));
    o.kv(
        "aof_current_rewrite_time_sec",
        &job_secs(p.rewrite_in_progress()),
    );
    o.kv(
        "aof_last_bgrewrite_status",
        &status(p.last_rewrite_ok.load(Ordering::Relaxed)),
    );
    o.kv("aof_rewrites", &lu(&p.rewrites));
    o.kv(
        "aof_rewrites_consecutive_failures",
        &lu(&p.rewrite_failures),
    );
    o.kv(
        "aof_last_write_status",
        &status(aof.write_ok.load(Ordering::Relaxed)),
    );
    o.kv("aof_last_cow_size", &0);
    o.kv("module_fork_in_progress", &0);
    o.kv("module_fork_last_cow_size", &0);
    if aof_on {
        o.kv("aof_current_size", &lu(&aof.size));
        o.kv("aof_base_size", &lu(&aof.base_size));
        o.kv("aof_pending_rewrite", &0);
        o.kv("aof_buffer_length", &0);
        o.kv("aof_pending_bio_fsync", &0);
        o.kv("aof_delayed_fsync", &0);
    }
}

pub fn render_info(ctx: &Ctx, ks: &mut Keyspace, sections: &[String]) -> String {
    let node = ctx.node;
    let cfg = node.config.read();
    let order = [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
        "modules",
        "commandstats",
        "errorstats",
        "latencystats",
        "cluster",
        "keyspace",
    ];
    let mut o = InfoText::default();
    for name in order.iter().filter(|n| sections.iter().any(|s| s == *n)) {
        match *name {
            "server" => {
                let up = node.uptime().as_secs();
                let now_us = ctx.now_ms * 1000;
                o.head("Server");
                o.kv("redis_version", &crate::REDIS_VERSION);
                o.kv("redis_git_sha1", &"00000000");
                o.kv("redis_git_dirty", &0);
                o.kv("redis_build_id", &"0");
                o.kv(
                    "redis_mode",
                    &if node.cluster.is_some() {
                        "cluster"
                    } else {
                        "standalone"
                    },
                );
                o.kv(
                    "os",
                    &format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
                );
                o.kv("arch_bits", &64);
                o.kv("monotonic_clock", &"POSIX clock_gettime");
                o.kv("multiplexing_api", &"epoll");
                o.kv("atomicvar_api", &"c11-builtin");
                o.kv("gcc_version", &"0.0.0");
                o.kv("process_id", &std::process::id());
                o.kv("process_supervised", &"no");
                o.kv("run_id", &node.run_id);
                o.kv("tcp_port", &node.resp_addr.port());
                o.kv("server_time_usec", &now_us);
                o.kv("uptime_in_seconds", &up);
                o.kv("uptime_in_days", &(up / 86400));
                o.kv("hz", &cfg.hz);
                o.kv("configured_hz", &cfg.hz);
                o.kv("lru_clock", &(node.store.lru_clock() & 0xFF_FFFF));
                o.kv(
                    "executable",
                    &std::env::current_exe()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                );
                o.kv("config_file", &cfg.config_file.clone().unwrap_or_default());
                o.kv("io_threads_active", &u8::from(cfg.io_threads > 0));
            }
            "clients" => {
                o.head("Clients");
                // Replicas are not counted as clients, as in Redis.
                o.kv(
                    "connected_clients",
                    &node.clients.len().saturating_sub(node.replicas.count()),
                );
                o.kv("cluster_connections", &0);
                o.kv("maxclients", &cfg.maxclients);
                // The largest buffers now (Redis keeps the peak of the last few seconds).
                let all = node.clients.snapshot();
                let most = |f: fn(&crate::server::clients::ClientInfo) -> usize| {
                    all.iter().map(|c| f(c)).max().unwrap_or(0)
                };
                o.kv(
                    "client_recent_max_input_buffer",
                    &most(|c| c.query_buf.load(Ordering::Relaxed)),
                );
                o.kv(
                    "client_recent_max_output_buffer",
                    &most(|c| c.output_len.load(Ordering::Relaxed)),
                );
                o.kv(
                    "blocked_clients",
                    &(node.store.blocked.len() + node.pause.waiting_count()),
                );
                o.kv("tracking_clients", &node.store.tracking.clients());
                o.kv("clients_in_timeout_table", &0);
            }
            "memory" => {
                let used = used_memory() as u64;
                let rss = rss_bytes() as u64;
                let peak = node.stats.peak_memory(used as usize) as u64;
                o.head("Memory");
                o.kv("used_memory", &used);
                o.kv("used_memory_human", &human(used));
                o.kv("used_memory_rss", &rss);
                o.kv("used_memory_rss_human", &human(rss));
                o.kv("used_memory_peak", &peak);
                o.kv("used_memory_peak_human", &human(peak));
                o.kv(
                    "used_memory_peak_perc",
                    &format!(
                        "{:.2}%",
                        if peak > 0 {
                            used as f64 * 100.0 / peak as f64
                        } else {
                            100.0
                        }
                    ),
                );
                // Redis's fields, in its order; figures for what we do not have (replication
                // buffers, defragmentation) are 0.
                o.kv("used_memory_overhead", &0);
                o.kv("used_memory_startup", &0);
                o.kv("used_memory_dataset", &used);
                o.kv("used_memory_dataset_perc", &"100.00%");
                o.kv("allocator_allocated", &used);
                o.kv("allocator_active", &used);
                o.kv("allocator_resident", &rss);
                let total = total_system_memory();
                o.kv("total_system_memory", &total);
                o.kv("total_system_memory_human", &human(total));
                // One Lua state runs both scripts and functions here: its memory shows as the
                // scripts' (Redis keeps two).
                let lua = node.scripts.figures();
                for f in ["used_memory_lua", "used_memory_vm_eval"] {
                    o.kv(f, &lua.lua_memory);
                }
                o.kv("used_memory_lua_human", &human(lua.lua_memory as u64));
                o.kv("used_memory_scripts_eval", &0);
                o.kv("number_of_cached_scripts", &lua.cached_scripts);
                o.kv("number_of_functions", &lua.functions);
                o.kv("number_of_libraries", &lua.libraries);
                o.kv("used_memory_vm_functions", &0);
                o.kv("used_memory_vm_total", &lua.lua_memory);
                o.kv("used_memory_vm_total_human", &human(lua.lua_memory as u64));
                o.kv("used_memory_functions", &0);
                o.kv("used_memory_scripts", &0);
                o.kv("used_memory_scripts_human", &"0B");
                o.kv("maxmemory", &cfg.maxmemory);
                o.kv("maxmemory_human", &human(cfg.maxmemory));
                o.kv("maxmemory_policy", &cfg.maxmemory_policy);
                let ratio = |a: u64, b: u64| {
                    if b > 0 {
                        format!("{:.2}", a as f64 / b as f64)
                    } else {
                        "0.00".to_string()
                    }
                };
                o.kv("allocator_frag_ratio", &"1.00");
                o.kv("allocator_frag_bytes", &0);
                o.kv("allocator_rss_ratio", &ratio(rss, used));
                o.kv("allocator_rss_bytes", &rss.saturating_sub(used));
                o.kv("rss_overhead_ratio", &"1.00");
                o.kv("rss_overhead_bytes", &0);
                o.kv("mem_fragmentation_ratio", &ratio(rss, used));
                o.kv("mem_fragmentation_bytes", &rss.saturating_sub(used));
                for f in [
                    "mem_not_counted_for_evict",
                    "mem_replication_backlog",
                    "mem_total_replication_buffers",
                    "mem_clients_slaves",
                ] {
                    o.kv(f, &0);
                }
                o.kv("mem_clients_normal", &node.clients.memory());
                o.kv("mem_cluster_links", &0);
                o.kv("mem_aof_buffer", &0);
                o.kv("mem_allocator", &"jemalloc");
                o.kv("active_defrag_running", &0);
                o.kv("lazyfree_pending_objects", &node.store.lazyfree.pending());
                o.kv("lazyfreed_objects", &node.store.lazyfree.freed());
            }
            "persistence" => persistence_info(&mut o, node, ctx.now_ms),
            "stats" => {
                let st = ks.stats();
                let s = &node.stats;
                o.head("Stats");
                o.kv(
                    "total_connections_received",
                    &s.connections_received.load(Ordering::Relaxed),
                );
                o.kv(
                    "total_commands_processed",
                    &s.commands_processed.load(Ordering::Relaxed),
                );
                o.kv("instantaneous_ops_per_sec", &s.ops_per_sec());
                o.kv(
                    "total_net_input_bytes",
                    &s.net_input_bytes.load(Ordering::Relaxed),
                );
                o.kv(
                    "total_net_output_bytes",
                    &s.net_output_bytes.load(Ordering::Relaxed),
                );
                for f in ["total_net_repl_input_bytes", "total_net_repl_output_bytes"] {
                    o.kv(f, &0);
                }
                for f in [
                    "instantaneous_input_kbps",
                    "instantaneous_output_kbps",
                    "instantaneous_input_repl_kbps",
                    "instantaneous_output_repl_kbps",
                ] {
                    o.kv(f, &"0.00");
                }
                o.kv(
                    "rejected_connections",
                    &s.rejected_connections.load(Ordering::Relaxed),
                );
                // Bus replicas' syncs and Redis replicas' (SYNC/PSYNC) together.
                let syncs = |f: fn(
                    &crate::cluster::replication::Replication,
                ) -> &std::sync::atomic::AtomicU64,
                             g: fn(
                    &crate::server::replicas::Replicas,
                ) -> &std::sync::atomic::AtomicU64| {
                    node.cluster
                        .as_ref()
                        .map_or(0, |c| f(&c.repl).load(Ordering::Relaxed))
                        + g(&node.replicas).load(Ordering::Relaxed)
                };
                o.kv("sync_full", &syncs(|r| &r.sync_full, |r| &r.sync_full));
                o.kv(
                    "sync_partial_ok",
                    &syncs(|r| &r.sync_partial_ok, |r| &r.sync_partial_ok),
                );
                o.kv(
                    "sync_partial_err",
                    &syncs(|r| &r.sync_partial_err, |r| &r.sync_partial_err),
                );
                o.kv("expired_keys", &st.expired_keys);
                o.kv("expired_stale_perc", &"0.00");
                for f in [
                    "expired_time_cap_reached_count",
                    "expire_cycle_cpu_milliseconds",
                ] {
                    o.kv(f, &0);
                }
                o.kv("evicted_keys", &st.evicted_keys);
                o.kv(
                    "evicted_clients",
                    &s.evicted_clients.load(Ordering::Relaxed),
                );
                for f in [
                    "total_eviction_exceeded_time",
                    "current_eviction_exceeded_time",
                ] {
                    o.kv(f, &0);
                }
                o.kv("keyspace_hits", &st.keyspace_hits);
                o.kv("keyspace_misses", &st.keyspace_misses);
                let (channels, patterns) = node.pubsub.sizes();
                o.kv("pubsub_channels", &channels);
                o.kv("pubsub_patterns", &patterns);
                o.kv("pubsubshard_channels", &node.pubsub.shard_count());
                // Redis's remaining counters, for features this node does not have yet.
                for f in ["latest_fork_usec", "total_forks"] {
                    o.kv(f, &0);
                }
                o.kv("migrate_cached_sockets", &node.migrate_sockets.len());
                for f in [
                    "slave_expires_tracked_keys",
                    "active_defrag_hits",
                    "active_defrag_misses",
                    "active_defrag_key_hits",
                    "active_defrag_key_misses",
                    "total_active_defrag_time",
                    "current_active_defrag_time",
                ] {
                    o.kv(f, &0);
                }
                let tracking = &node.store.tracking;
                o.kv("tracking_total_keys", &tracking.total_keys());
                o.kv("tracking_total_items", &tracking.total_items());
                o.kv("tracking_total_prefixes", &tracking.total_prefixes());
                o.kv("unexpected_error_replies", &0);
                o.kv(
                    "total_error_replies",
                    &s.error_replies.load(Ordering::Relaxed),
                );
                for f in [
                    "dump_payload_sanitizations",
                    "total_reads_processed",
                    "total_writes_processed",
                    "io_threaded_reads_processed",
                    "io_threaded_writes_processed",
                    "reply_buffer_shrinks",
                    "reply_buffer_expands",
                ] {
                    o.kv(f, &0);
                }
            }
            "replication" => {
                o.head("Replication");
                let offset = replication_section(&mut o, node, super::now_ms());
                let replid = node.replid();
                let replid2 = match &node.cluster {
                    Some(c) => c.repl.replid2.lock().clone(),
                    None => node.upstream.shown_replid2(),
                };
                o.kv("master_replid", &replid);
                match replid2 {
                    Some((id, at)) => {
                        o.kv("master_replid2", &id);
                        o.kv("master_repl_offset", &offset);
                        o.kv("second_repl_offset", &(at + 1));
                    }
                    None => {
                        o.kv(
                            "master_replid2",
                            &"0000000000000000000000000000000000000000",
                        );
                        o.kv("master_repl_offset", &offset);
                        o.kv("second_repl_offset", &-1);
                    }
                }
                let b = node.store.aof.backlog_info();
                o.kv("repl_backlog_active", &u8::from(b.active));
                o.kv("repl_backlog_size", &b.size);
                o.kv("repl_backlog_first_byte_offset", &b.first_byte_offset);
                o.kv("repl_backlog_histlen", &b.histlen);
            }
            "cpu" => {
                let (user, sys) = cpu_times();
                o.head("CPU");
                o.kv("used_cpu_sys", &format!("{sys:.6}"));
                o.kv("used_cpu_user", &format!("{user:.6}"));
                o.kv("used_cpu_sys_children", &"0.000000");
                o.kv("used_cpu_user_children", &"0.000000");
                // Every thread serves clients here; the process figures are the closest match.
                o.kv("used_cpu_sys_main_thread", &format!("{sys:.6}"));
                o.kv("used_cpu_user_main_thread", &format!("{user:.6}"));
            }
            "modules" => o.head("Modules"),
            "errorstats" => {
                o.head("Errorstats");
                for (code, n) in node.stats.error_counts() {
                    o.line(format!("errorstat_{code}:count={n}\r\n"));
                }
            }
            "cluster" => {
                o.head("Cluster");
                o.kv("cluster_enabled", &u8::from(node.cluster.is_some()));
                if let Some(c) = &node.cluster {
                    o.line(super::cluster::migration_text(c));
                }
            }
            "keyspace" => {
                o.head("Keyspace");
                for (i, (keys, expires)) in ks.db_sizes().into_iter().enumerate() {
                    if keys > 0 {
                        o.line(format!("db{i}:keys={keys},expires={expires},avg_ttl=0\r\n"));
                    }
                }
            }
            "commandstats" => {
                o.head("Commandstats");
                for c in super::table().all.iter() {
                    let st = &node.cmd_stats[c.id];
                    let calls = st.calls.load(Ordering::Relaxed);
                    let failed = st.failed_calls.load(Ordering::Relaxed);
                    let rejected = st.rejected_calls.load(Ordering::Relaxed);
                    if calls == 0 && rejected == 0 {
                        continue;
                    }
                    let usec = st.usec.load(Ordering::Relaxed);
                    let per = if calls > 0 {
                        usec as f64 / calls as f64
                    } else {
                        0.0
                    };
                    o.line(format!(
                        "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
                        c.fullname
                    ));
                }
            }
            "latencystats" => {
                o.head("Latencystats");
                let on = cfg.get_bool("latency-tracking");
                let percentiles: Vec<(&str, f64)> = cfg
                    .get("latency-tracking-info-percentiles")
                    .split_whitespace()
                    .filter_map(|w| Some((w, w.parse().ok()?)))
                    .collect();
                let shown = if on { &super::table().all[..] } else { &[] };
                for c in shown {
                    let st = &node.cmd_stats[c.id];
                    if st.calls.load(Ordering::Relaxed) == 0 {
                        continue;
                    }
                    let counts = st.histogram_counts();
                    let values: Vec<String> = percentiles
                        .iter()
                        .map(|(name, p)| {
                            let us = crate::server::stats::percentile_us(&counts, *p);
                            format!("p{name}={us:.3}")
                        })
                        .collect();
                    o.line(format!(
                        "latency_percentiles_usec_{}:{}\r\n",
                        c.fullname,
                        values.join(",")
                    ));
                }
            }
            _ => {}
        }
    }
    o.text
}

/// MODULE LIST: no module is ever loaded (Redis's modules are C plugins).
pub fn module_list(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    ctx.out.array(0);
    Ok(())
}

/// MODULE LOAD and LOADEX: refused by `enable-module-command` as Redis 7.0, else failing as
/// Redis's do on a library that does not load, with the reason in the log.
pub fn module_load(_ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // (Refused by `enable-module-command` before it gets here: `debug::protected_refusal`.)
    tracing::warn!(
        path = %String::from_utf8_lossy(&args[2]),
        "Module loading is not supported: Reredis cannot load Redis modules (C plugins)"
    );
    Err(CmdError::err(
        "Error loading the extension. Please check the server logs.",
    ))
}

pub fn module_unload(_ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    Err(CmdError::err(
        "Error unloading module: no such module with that name",
    ))
}

pub fn module_help(ctx: &mut Ctx, _ks: &mut Keyspace, _args: &[Bytes]) -> CmdResult {
    reply_help(
        ctx,
        "MODULE",
        &[
            "LIST",
            "    Return a list of loaded modules.",
            "LOAD <path> [<arg> ...]",
            "    Load a module library from <path>, passing to it any optional arguments.",
            "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
            "    Load a module library from <path>, while passing it module configurations and optional arguments.",
            "UNLOAD <name>",
            "    Unload a module.",
        ],
    )
}

/// LOLWUT: Redis 7.0's (no art of its own): the version, as a verbatim string. `VERSION n`
/// must be an integer; the art of Redis 5 and 6 is not drawn.
pub fn lolwut(ctx: &mut Ctx, _ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    if args.len() >= 3 && eq_ic(&args[1], "VERSION") {
        int_or(&args[2], CmdError::NotInteger)?;
    }
    ctx.out
        .verbatim(format!("Redis ver. {}\n", crate::REDIS_VERSION).as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::latency_graph_text;

    /// Worked out from Redis's sparklineRenderRange by hand: 1, 2 and 3 ms over four rows of
    /// three steps (0, 6 and 11 of 12), then the ages top to bottom.
    #[test]
    fn latency_graph_draws_redis_sparkline() {
        let samples = [(1, "2s".to_string()), (2, "1s".into()), (3, "0s".into())];
        let text = latency_graph_text("command", &samples, 7);
        let want = format!(
            "command - high 3 ms, low 1 ms (all time high 7 ms)\n{}\n  #\n _|\n ||\n_||\n   \n210\nsss\n",
            "-".repeat(80)
        );
        assert_eq!(text, want);
        // One sample: the bottom step.
        let text = latency_graph_text("x", &[(150, "0s".to_string())], 150);
        assert!(text.ends_with("-\n \n \n \n_\n \n0\ns\n"), "{text:?}");
    }
}
