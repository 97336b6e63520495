#!/usr/bin/env bash
# Benchmark: Reredis vs Debian's redis-server, side by side on this machine.
#
#   scripts/bench.sh [--quick] [--feed-only | --types-only | --move-only]
#
# Builds release, starts redis-server and target/release/reredis on free ports, loads 1,000,000
# keys (16-byte keys, 16-byte values) into each and compares RSS, runs redis-benchmark (-c 50;
# SET GET INCR MSET at -P 1 and -P 16) against each, SET with the append-only log (everysec,
# always), BGSAVE time and size and start-up load time for the same keys, then a 3-node cluster
# of each with `redis-benchmark --cluster -t set,get`, then a slot move: N keys on one node, a
# second node joins and half the slots move with their keys (ours: automatic distribution;
# Redis: `redis-cli --cluster rebalance --cluster-use-empty-masters`), timed, with a SET load
# running during the move (examples/cluster_load: the redis crate's cluster client, which follows
# -MOVED and -ASK), then the /ws live feed's cost to SET throughput and its latency (ours alone:
# Redis has no feed; `--feed-only` runs just that part), and the data types' commands and the
# memory of small hashes, sets and sorted sets (`--types-only` runs just that; `--move-only`
# runs just the slot move). BENCH_BIN=path runs that reredis binary instead of the one built
# here (to compare two builds). Prints one markdown table of ratios
# (ours / redis-server), with the simulated gossip figures (tests/cluster_sim.rs) last.
# Every server is stopped by PID on exit and temp dirs are removed. Every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
FEED_ONLY=0
TYPES_ONLY=0
MOVE_ONLY=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --feed-only) FEED_ONLY=1 ;;
    --types-only) TYPES_ONLY=1 ;;
    --move-only) MOVE_ONLY=1 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

if [ "$QUICK" = 1 ]; then
  N_P1=20000 N_P16=100000 N_KEYS=100000 N_CLUSTER=20000 N_MOVE=100000 N_FEED_LATENCY=100000
  N_TYPES=100000
else
  N_P1=200000 N_P16=1000000 N_KEYS=1000000 N_CLUSTER=200000 N_MOVE=1000000 N_FEED_LATENCY=500000
  N_TYPES=1000000
fi
CLIENTS=50
BENCH_TIMEOUT=600 # seconds, per redis-benchmark run

for t in redis-server redis-cli redis-benchmark; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install redis-server redis-tools)" >&2; exit 1; }
done

export SKIP_REREDIS_UI_BUILD=1
echo "==> cargo build --release" >&2
cargo build --release --locked >&2
# The /ws feed's subscribers and latency probe (examples/feed_bench.rs).
cargo build --release --locked --example feed_bench >&2
BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/reredis}"
FEED_BIN="${CARGO_TARGET_DIR:-target}/release/examples/feed_bench"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
[ -x "$FEED_BIN" ] || { echo "no binary at $FEED_BIN" >&2; exit 1; }
# Built apart from the server: the example's dev-dependencies must not change the server's features.
echo "==> cargo build --release --example cluster_load" >&2
cargo build --release --locked --example cluster_load >&2
LOADGEN="${CARGO_TARGET_DIR:-target}/release/examples/cluster_load"
[ -x "$LOADGEN" ] || { echo "no load generator at $LOADGEN" >&2; exit 1; }

TMP=$(mktemp -d -t reredis-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

USED_PORTS=" "
port_free() { ! ss -ltnH "( sport = :$1 )" 2>/dev/null | grep -q .; }
# Sets PORT to a free port P whose P+10000 is free too (redis-server's cluster bus), never handed
# out twice (not run in a subshell, so USED_PORTS sticks).
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((10000 + RANDOM % 12000)) # p and p+10000 below the ephemeral range (32768+)
    case "$USED_PORTS" in *" $p "* | *" $((p + 10000)) "*) continue ;; esac
    if port_free "$p" && port_free $((p + 10000)); then
      USED_PORTS="$USED_PORTS$p $((p + 10000)) "
      PORT=$p
      return
    fi
  done
  echo "no free port" >&2
  exit 1
}

wait_ping() { # port
  for _ in $(seq 300); do
    [ "$(redis-cli -p "$1" PING 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.1
  done
  echo "server on port $1 did not answer PING in 30 s; its log:" >&2
  cat "$2" >&2 || true
  exit 1
}

start_redis() { # port dir [extra args...]; sets LAST_PID
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize no --logfile "$dir/redis.log" "$@" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  wait_ping "$port" "$dir/redis.log"
}

start_ours() { # port dir [extra args...]; sets LAST_PID
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  # Persistence off unless asked, as for redis-server above (the binary's default save rules
  # would take snapshots in the middle of the runs).
  local defaults=()
  [[ " $* " == *" --save "* ]] || defaults+=(--save "")
  [[ " $* " == *" --appendonly "* ]] || defaults+=(--appendonly no)
  [[ " $* " == *" --http-port "* ]] || defaults+=(--http-port 0)
  "$BIN" --port "$port" --dir "$dir" "${defaults[@]}" "$@" >"$dir/reredis.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  wait_ping "$port" "$dir/reredis.log"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ratio a b [digits]: a/b, or "n/a"
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.*f\n", d, a / b }'; }
# meets ratio goal op: "yes"/"no"
meets() { awk -v r="$1" -v g="$2" -v op="$3" 'BEGIN { if (r == "n/a") print "n/a"; else if ((op == ">=" && r + 0 >= g) || (op == "<=" && r + 0 <= g)) print "yes"; else print "**no**" }'; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $(meets "$4" "${5#* }" "${5%% *}") |"); }

ERRLOG="$TMP/bench-errors.log"
: >"$ERRLOG"
# run_test label port pipe n name [redis-benchmark args...]: "rps p99" of the CSV row whose test
# name starts with `name` (redis-benchmark prints the rows it needed first, such as LRANGE's
# LPUSH).
run_test() {
  local label=$1 port=$2 pipe=$3 n=$4 name=$5
  shift 5
  local out="$TMP/bench.csv" err="$TMP/bench.err"
  if ! timeout "$BENCH_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -P "$pipe" -n "$n" \
    -r 1000000 --csv "$@" >"$out" 2>"$err"; then
    echo "redis-benchmark $label $name -P $pipe failed or timed out" >>"$ERRLOG"
  fi
  if grep -qi 'error' "$err" "$out"; then
    { echo "== $label $name -P $pipe:"; grep -i 'error' "$err" "$out" | sort | uniq -c | head -5; } >>"$ERRLOG"
  fi
  awk -F, -v name="$name" 'NR > 1 { gsub(/"/, ""); if (index($1, name) == 1) { print $2, $7; exit } }' "$out"
}

# run_bench label port test pipeline n [extra...]: "rps p99" of one of redis-benchmark's own tests.
run_bench() {
  local label=$1 port=$2 test=$3 pipe=$4 n=$5
  shift 5
  run_test "$label" "$port" "$pipe" "$n" "$(tr a-z A-Z <<<"$test")" -t "$test" "$@"
}

# ---------------------------------------------------------------- live feed (/ws)
# Redis has no such feed, so these rows compare Reredis with itself. SET throughput, as the SET rows
# above (-P 1 and -P 16), on one node with 0, 1 and 100 /ws subscribers to `key:*` (every key
# redis-benchmark writes), each reading every event it is sent (examples/feed_bench.rs): the feed's
# cost to the write path. FEED_ROUNDS rounds of the three, interleaved so that a change in machine
# load hits all three, the median of each kept; the keyspace is flushed before every run. Then feed
# latency: SETs at FEED_RATE per second over 4 connections, from each SET's reply to its event on one
# subscriber. Runs after the slot move; `--feed-only` runs only this part.
FEED_ROUNDS=${FEED_ROUNDS:-3}
FEED_RATE=${FEED_RATE:-50000}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# cost_pct base x: how much lower x is than base, in percent (negative: higher), or "n/a"
cost_pct() { awk -v b="$1" -v x="$2" 'BEGIN { if (b == "" || x == "" || b + 0 == 0) print "n/a"; else printf "%.1f\n", (1 - x / b) * 100 }'; }
# below value limit: "yes" when value < limit
below() { awk -v v="$1" -v g="$2" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else if (v + 0 < g) print "yes"; else print "**no**" }'; }
# cpu_s pid: CPU seconds (user + system) the process has used so far
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat"; }
# row_self metric ours compared goal met: a figure of ours alone, in the table's columns
row_self() { ROWS+=("| $1 | $2 | n/a (no feed) | $3 | $4 | $5 |"); }

# start_subscribers http-port clients: feed_bench subscribers on key:*, every subscription
# confirmed; sets SUB_PID. Not in a subshell: stop_subscribers waits for SUB_PID.
start_subscribers() {
  rm -f "$TMP/feed-ready" "$TMP/feed-stop"
  "$FEED_BIN" subscribe --http "127.0.0.1:$1" --clients "$2" --pattern 'key:*' --ready "$TMP/feed-ready" \
    --stop "$TMP/feed-stop" --max-secs "$BENCH_TIMEOUT" >"$TMP/feed-subs.out" 2>"$TMP/feed-subs.err" &
  SUB_PID=$!
  PIDS+=("$SUB_PID")
  for _ in $(seq 600); do
    [ -e "$TMP/feed-ready" ] && return 0
    kill -0 "$SUB_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "feed_bench subscribe ($2 clients) not ready in 30 s: $(tail -2 "$TMP/feed-subs.err")" >>"$ERRLOG"
  kill "$SUB_PID" 2>/dev/null || true
  return 1
}
# forget_pid pid: a process already waited for, no longer to stop on exit (its PID may be reused)
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
# stop_subscribers: sets SUB_GOT to "events lagged missed closed cpu_s secs" of the subscribers
stop_subscribers() {
  touch "$TMP/feed-stop"
  wait "$SUB_PID" || echo "feed_bench subscribe failed: $(tail -2 "$TMP/feed-subs.err")" >>"$ERRLOG"
  forget_pid "$SUB_PID"
  SUB_GOT=$(sed -nE 's/^feed_subscribers .* events=([0-9]+) lagged=([0-9]+) missed=([0-9]+) closed=([0-9]+) cpu_s=([0-9.]+) secs=([0-9.]+).*/\1 \2 \3 \4 \5 \6/p' "$TMP/feed-subs.out")
}

feed_rows() {
  local fp fh fpid pipe n round subs rps p99 cpu0 node_cpu ev lag mis closed cpu secs base base_cpu r c g got
  free_port; fp=$PORT
  free_port; fh=$PORT
  start_ours "$fp" "$TMP/feed" --cluster-enabled no --http-port "$fh"
  fpid=$LAST_PID
  echo "==> feed: reredis pid $fpid port $fp, http $fh; $FEED_ROUNDS rounds" >&2
  for pipe in 1 16; do
    if [ "$pipe" = 1 ]; then n=$N_P1; else n=$N_P16; fi
    local -A runs=([0]="" [1]="" [100]="") cpus=([0]="" [1]="" [100]="") events=([1]=0 [100]=0) missed=([1]=0 [100]=0) sent=([1]=0 [100]=0)
    for round in $(seq "$FEED_ROUNDS"); do
      for subs in 0 1 100; do
        redis-cli -p "$fp" FLUSHALL >/dev/null
        SUB_GOT=""
        if [ "$subs" -gt 0 ] && ! start_subscribers "$fh" "$subs"; then
          continue
        fi
        rps="" p99=""
        cpu0=$(cpu_s "$fpid")
        read -r rps p99 < <(run_bench "reredis, $subs /ws subscribers" "$fp" set "$pipe" "$n") || true
        node_cpu=$(awk -v a="$cpu0" -v b="$(cpu_s "$fpid")" 'BEGIN { printf "%.2f", b - a }')
        if [ "$subs" -gt 0 ]; then
          stop_subscribers
          read -r ev lag mis closed cpu secs <<<"$SUB_GOT" || true
          events[$subs]=$((${events[$subs]} + ${ev:-0}))
          sent[$subs]=$((${sent[$subs]} + n * subs))
          missed[$subs]=$((${missed[$subs]} + ${mis:-0}))
          [ "${closed:-0}" = 0 ] || echo "feed: $closed of $subs subscribers were disconnected during SET -P $pipe" >>"$ERRLOG"
          SUB_GOT="subscribers got $ev events, $lag lagged messages for $mis missed, used $cpu CPU-s in $secs s"
        fi
        if [ -n "$rps" ]; then
          runs[$subs]+="$rps "
          cpus[$subs]+="$(awk -v c="$node_cpu" -v n="$n" 'BEGIN { printf "%.1f", c * 1e6 / n }') "
        fi
        echo "==> feed SET -P $pipe, $subs subscribers, round $round: $rps rps p99 $p99 ms, node used $node_cpu CPU-s${SUB_GOT:+; $SUB_GOT}" >&2
      done
    done
    base=$(tr ' ' '\n' <<<"${runs[0]}" | grep . | median)
    base_cpu=$(tr ' ' '\n' <<<"${cpus[0]}" | grep . | median)
    row_self "feed: SET rps -P $pipe, no /ws subscriber (the baseline of the next two rows; node CPU $base_cpu µs per SET)" "$base" "n/a" "n/a" "n/a"
    for subs in 1 100; do
      r=$(tr ' ' '\n' <<<"${runs[$subs]}" | grep . | median)
      c=$(cost_pct "$base" "$r")
      if [ "$subs" = 1 ]; then g=2; else g=10; fi
      # Share of the events (one per SET per subscriber) that reached the subscribers before they
      # stopped at the end of each run; of the rest, those the node dropped were reported `lagged`.
      got=$(awk -v e="${events[$subs]}" -v s="${sent[$subs]}" 'BEGIN { if (s == 0) print "n/a"; else printf "%.1f%%", e * 100 / s }')
      # The node's own CPU per SET: what the feed costs it, apart from the CPU the subscribers
      # and redis-benchmark take from it on a small machine.
      row_self "feed: SET rps -P $pipe, $subs /ws subscriber$([ "$subs" = 1 ] || echo s) on every key, ours vs ours with none (node CPU $(tr ' ' '\n' <<<"${cpus[$subs]}" | grep . | median) µs per SET; subscribers received $got of the events, ${missed[$subs]} reported missed in \`lagged\`)" \
        "$r" "cost $c%" "cost < $g%" "$(below "$c" "$g")"
    done
  done

  # Latency: one subscriber on feedlat:*, SETs paced at FEED_RATE/s.
  redis-cli -p "$fp" FLUSHALL >/dev/null
  local lat
  lat=$(timeout 300 "$FEED_BIN" latency --resp "127.0.0.1:$fp" --http "127.0.0.1:$fh" --rate "$FEED_RATE" \
    --count "$N_FEED_LATENCY" --conns 4 --max-secs 120 2>>"$ERRLOG" | grep '^feed_latency ' || true)
  echo "==> ${lat:-feed latency: no result}" >&2
  kill "$fpid" 2>/dev/null || true
  if [ -z "$lat" ]; then
    echo "feed latency: feed_bench latency printed nothing" >>"$ERRLOG"
    return
  fi
  lat_field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$lat"; }
  local achieved p50 p99 met
  achieved=$(lat_field achieved_rate) p50=$(lat_field p50_ms) p99=$(lat_field p99_ms)
  [ "$(lat_field errors)" = 0 ] || echo "feed latency: $(lat_field errors) SETs answered with an error" >>"$ERRLOG"
  # The goal holds at FEED_RATE writes/s: a run that could not write that fast does not meet it.
  met=$(below "$p99" 5)
  if awk -v a="$achieved" -v t="$FEED_RATE" 'BEGIN { exit !(a < 0.95 * t) }'; then
    met="n/a (rate not reached)"
  fi
  row_self "feed latency p50 ms, SET reply to /ws event, $achieved writes/s (target $FEED_RATE)" "$p50" "n/a" "n/a" "n/a"
  row_self "feed latency p99 ms, SET reply to /ws event, $achieved writes/s (target $FEED_RATE)" "$p99" "n/a" "< 5 ms at $FEED_RATE/s" "$met"
  row_self "feed: events missed (\`lagged\`) by the latency subscriber, of $(lat_field replies) SETs" "$(lat_field missed)" "n/a" "n/a" "n/a"
}

# ---------------------------------------------------------------- data types
# redis-benchmark's own tests for the types (LPUSH before LPOP and SPOP after SADD, so they pop
# from what was pushed; LRANGE_100 fills its list first), PUBLISH to a channel nobody
# subscribes to, XADD with generated IDs and XRANGE of 10 of those entries, at -P 1 and -P 16, back to back per test on both servers. Memory first: N_TYPES
# keys of each small collection (4 fields or members of 8 bytes), loaded through redis-cli
# --pipe, RSS growth per key.

types_rows() {
  local rp op rpid opid pipe n t name side pid port before after keys kind
  # Memory: 4 fields / members of 8 bytes per key, keys of 12 bytes, each kind on a fresh pair
  # of servers (an allocator keeps memory freed before for reuse, which would hide the growth).
  for kind in hash set zset; do
    free_port; rp=$PORT
    free_port; op=$PORT
    start_redis "$rp" "$TMP/mem-$kind-redis"
    rpid=$LAST_PID
    start_ours "$op" "$TMP/mem-$kind-ours" --cluster-enabled no
    opid=$LAST_PID
    local load="$TMP/types-$kind.resp"
    awk -v n="$N_TYPES" -v kind="$kind" 'BEGIN {
      for (i = 0; i < n; i++) {
        k = sprintf("%s:%08d", substr(kind, 1, 3), i)
        if (kind == "hash") { printf "*10\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n", length(k), k
          for (j = 0; j < 4; j++) printf "$8\r\nfield%03d\r\n$8\r\nv%07d\r\n", j, i }
        else if (kind == "set") { printf "*6\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n", length(k), k
          for (j = 0; j < 4; j++) printf "$8\r\nmember%02d\r\n", j }
        else { printf "*10\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n", length(k), k
          for (j = 0; j < 4; j++) printf "$%d\r\n%d\r\n$8\r\nmember%02d\r\n", length(j + i % 100), j + i % 100, j }
      } }' >"$load"
    local -A per_key=()
    for side in redis ours; do
      if [ $side = redis ]; then pid=$rpid port=$rp; else pid=$opid port=$op; fi
      before=$(rss_kb "$pid")
      timeout 300 redis-cli -p "$port" --pipe <"$load" >"$TMP/types-pipe-$side.log" 2>&1 ||
        echo "redis-cli --pipe of $kind into $side failed: $(tail -2 "$TMP/types-pipe-$side.log")" >>"$ERRLOG"
      grep -q 'errors: 0,' "$TMP/types-pipe-$side.log" || echo "$side $kind load: $(tail -1 "$TMP/types-pipe-$side.log")" >>"$ERRLOG"
      sleep 1
      after=$(rss_kb "$pid")
      keys=$(redis-cli -p "$port" DBSIZE)
      [ "$keys" = "$N_TYPES" ] || echo "$side holds $keys $kind keys after loading $N_TYPES" >>"$ERRLOG"
      per_key[$side]=$(awk -v a="$after" -v b="$before" -v n="$keys" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')
      echo "==> $kind on $side: VmRSS $before kB -> $after kB, $keys keys, ${per_key[$side]} B/key ($(redis-cli -p "$port" OBJECT ENCODING "$(substr_key "$kind")"))" >&2
    done
    kill "$rpid" "$opid" 2>/dev/null || true
    rm -f "$load"
    row "RSS bytes per small $kind (4 × 8 B, $N_TYPES keys)" "${per_key[ours]}" "${per_key[redis]}" \
      "$(ratio "${per_key[ours]}" "${per_key[redis]}")" "<= 1.0"
  done
  free_port; rp=$PORT
  free_port; op=$PORT
  start_redis "$rp" "$TMP/types-redis"
  rpid=$LAST_PID
  start_ours "$op" "$TMP/types-ours" --cluster-enabled no
  opid=$LAST_PID
  echo "==> types: redis-server pid $rpid port $rp; reredis pid $opid port $op" >&2
  for pipe in 1 16; do
    if [ "$pipe" = 1 ]; then n=$N_P1; else n=$N_P16; fi
    for t in lpush lpop lrange_100 sadd spop hset zadd publish xadd xrange_10; do
      name=$(tr a-z A-Z <<<"$t")
      local args=(-t "$t")
      [ "$t" = publish ] && args=(PUBLISH bench:channel 0123456789abcdef)
      # Streams (no redis-benchmark test of their own): XADD with generated IDs, then reads
      # of the first 10 entries of what it added.
      [ "$t" = xadd ] && args=(XADD bench:stream '*' field 0123456789abcdef)
      [ "$t" = xrange_10 ] && args=(XRANGE bench:stream - + COUNT 10)
      # What redis-benchmark's CSV names the test by (a custom command: its first word).
      local match=$name
      [ "$t" = xrange_10 ] && match=XRANGE
      # LRANGE_100 answers 100 elements per request: a tenth of the requests.
      local nt=$n
      [ "$t" = lrange_100 ] && nt=$((n / 10))
      read -r r_rps r_p99 < <(run_test redis-server "$rp" "$pipe" "$nt" "$match" "${args[@]}") || true
      read -r o_rps o_p99 < <(run_test reredis "$op" "$pipe" "$nt" "$match" "${args[@]}") || true
      echo "==> $name -P $pipe: redis $r_rps rps p99 $r_p99 ms; reredis $o_rps rps p99 $o_p99 ms" >&2
      if [ "$pipe" = 1 ]; then g=">= 1.2"; else g=">= 1.5"; fi
      row "$name rps -P $pipe$([ "$t" = publish ] && echo ', no subscriber')" "$o_rps" "$r_rps" "$(ratio "$o_rps" "$r_rps")" "$g"
      row "$name p99 ms -P $pipe" "$o_p99" "$r_p99" "$(ratio "$o_p99" "$r_p99")" "<= 1.0"
    done
  done
  kill "$rpid" "$opid" 2>/dev/null || true
}
substr_key() { printf '%s:%08d' "${1:0:3}" 0; }

print_table() {
  echo
  if [ "$FEED_ONLY" = 1 ]; then
    echo "n: -P 1 $N_P1, -P 16 $N_P16, feed latency $N_FEED_LATENCY; -c $CLIENTS; feed rounds $FEED_ROUNDS$([ "$QUICK" = 1 ] && echo ' (--quick)') (--feed-only)"
  elif [ "$MOVE_ONLY" = 1 ]; then
    echo "slot move $N_MOVE keys$([ "$QUICK" = 1 ] && echo ' (--quick)') (--move-only)"
  elif [ "$TYPES_ONLY" = 1 ]; then
    echo "n: -P 1 $N_P1, -P 16 $N_P16 (LRANGE_100 a tenth), small collections $N_TYPES; -c $CLIENTS$([ "$QUICK" = 1 ] && echo ' (--quick)') (--types-only)"
  else
    echo "n: -P 1 $N_P1, -P 16 $N_P16, keys $N_KEYS, small collections $N_TYPES, cluster $N_CLUSTER, slot move $N_MOVE, feed latency $N_FEED_LATENCY; -c $CLIENTS; feed rounds $FEED_ROUNDS$([ "$QUICK" = 1 ] && echo ' (--quick)')"
  fi
  echo
  echo "| metric | reredis | redis-server | ratio (ours / redis) | goal | met |"
  echo "|---|---:|---:|---:|---|---|"
  printf '%s\n' "${ROWS[@]}"
  if [ -s "$ERRLOG" ]; then
    echo
    echo "Errors seen during the run:"
    echo '```'
    cat "$ERRLOG"
    echo '```'
  fi
}

# ---------------------------------------------------------------- slot move with keys
# move_rows: the rows of the slot move (also run alone by --move-only).
move_rows() {
  # N_MOVE keys (key:0.. , 16-byte values) written to node 1 by redis-cli --pipe.
  awk -v n="$N_MOVE" 'BEGIN { v = "vvvvvvvvvvvvvvvv"; for (i = 0; i < n; i++) { k = "key:" i;
    printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n", length(k), k, v } }' >"$TMP/move-load.resp"

  # The SET load during the move. Not redis-benchmark --cluster: it refuses to start while a master
  # owns no slots ("Invalid cluster: 1 node(s)"), and once running it does not follow -MOVED/-ASK:
  # it counts the redirection as a completed request and refetches CLUSTER SLOTS, and its keys
  # carry hash tags of the slots it started on rather than the keys that move.
  # move_load_start label port: starts examples/cluster_load (20 writers SETting random keys of the
  # moved key space) on the cluster behind port and waits until it runs; sets LOAD_PID. It stops by
  # itself after 1800 s (the move's own limit) or 20,000,000 requests.
  move_load_start() {
    local ready="$TMP/move-ready-$1"
    "$LOADGEN" --node "127.0.0.1:$2" --keys "$N_MOVE" --tasks 20 --ready-file "$ready" \
      --stop-file "$TMP/move-stop-$1" --max-seconds 1800 >"$TMP/move-$1.out" 2>"$TMP/move-$1.err" &
    LOAD_PID=$!
    PIDS+=("$LOAD_PID")
    for _ in $(seq 300); do
      [ -e "$ready" ] && return 0
      kill -0 "$LOAD_PID" 2>/dev/null || break
      sleep 0.1
    done
    echo "cluster_load on $1 did not start in 30 s: $(tail -2 "$TMP/move-$1.err")" >>"$ERRLOG"
    return 1
  }
  # move_load_stop label: stops the load (it finishes the requests in flight) and sets LOAD_RESULT
  # to its "rps p99_ms errors"; errors are the requests that failed after the client's own
  # redirections and retries.
  move_load_stop() {
    touch "$TMP/move-stop-$1"
    wait "$LOAD_PID" || echo "cluster_load on $1 failed: $(tail -2 "$TMP/move-$1.err")" >>"$ERRLOG"
    LOAD_RESULT=$(cat "$TMP/move-$1.out")
    if [ "$(awk '{ print $3 }' <<<"$LOAD_RESULT")" != 0 ]; then
      { echo "== $1 load during the move:"; grep '^cluster_load:' "$TMP/move-$1.err" | head -6 || true; } >>"$ERRLOG"
    fi
    grep '^cluster_load:' "$TMP/move-$1.err" | head -1 | sed "s/^/==> $1 /" >&2 || true
  }
  now_ms() { date +%s%3N; }
  slots_of() { # port id -> slots the node owns, per CLUSTER NODES on port
    redis-cli -p "$1" CLUSTER NODES | awk -v id="$2" '$1 == id { n = 0; for (i = 9; i <= NF; i++) {
      split($i, r, "-"); if ($i ~ /^\[/) continue; n += (r[2] == "" ? 1 : r[2] - r[1] + 1) } print n }'
  }

  # redis-server: all slots on node 1, keys loaded, node 2 joins empty, rebalance.
  free_port; m1=$PORT
  free_port; m2=$PORT
  start_redis "$m1" "$TMP/rm1" --cluster-enabled yes --cluster-config-file "$TMP/rm1/nodes.conf" --cluster-node-timeout 5000
  rm1_pid=$LAST_PID
  start_redis "$m2" "$TMP/rm2" --cluster-enabled yes --cluster-config-file "$TMP/rm2/nodes.conf" --cluster-node-timeout 5000
  rm2_pid=$LAST_PID
  redis-cli -p "$m1" CLUSTER ADDSLOTSRANGE 0 16383 >/dev/null
  redis-cli -p "$m1" CLUSTER MEET 127.0.0.1 "$m2" >/dev/null
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$m2" CLUSTER INFO | tr -d '\r' | awk -F: '$1 == "cluster_known_nodes" { print $2 }')" = 2 ] &&
      redis-cli -p "$m1" CLUSTER INFO | grep -q '^cluster_state:ok' && break
    sleep 0.2
  done
  redis-cli -p "$m1" --pipe <"$TMP/move-load.resp" >/dev/null
  r_move_ms="" r_move_load=""
  move_load_start redis-server "$m1" || true
  t0=$(now_ms)
  if timeout 1800 redis-cli --cluster rebalance "127.0.0.1:$m1" --cluster-use-empty-masters >"$TMP/rebalance.log" 2>&1; then
    r_move_ms=$(($(now_ms) - t0))
  else
    echo "redis-cli --cluster rebalance failed: $(tail -3 "$TMP/rebalance.log")" >>"$ERRLOG"
  fi
  move_load_stop redis-server
  r_move_load=$LOAD_RESULT
  # The load only overwrites the loaded keys: both nodes together must still hold exactly N.
  keys_total() { # port port -> the sum of their DBSIZEs ("n/a" if one does not answer)
    local a b
    a=$(redis-cli -p "$1" DBSIZE 2>/dev/null || true) b=$(redis-cli -p "$2" DBSIZE 2>/dev/null || true)
    if [[ "$a" =~ ^[0-9]+$ && "$b" =~ ^[0-9]+$ ]]; then echo $((a + b)); else echo "n/a"; fi
  }
  r_total=$(keys_total "$m1" "$m2")
  [ "$r_total" = "$N_MOVE" ] || echo "redis-server: the two nodes hold $r_total keys after the move, not $N_MOVE" >>"$ERRLOG"
  kill "$rm1_pid" "$rm2_pid" 2>/dev/null || true

  # reredis: node 1 holds the keys alone; node 2 meets it; automatic distribution moves half.
  free_port; o1=$PORT
  free_port; b1=$PORT
  free_port; o2=$PORT
  free_port; b2=$PORT
  start_ours "$o1" "$TMP/om1" --cluster-enabled yes --cluster-bus-port "$b1" --cluster-node-timeout 5000 --cluster-rebalance-delay 500
  om1_pid=$LAST_PID
  start_ours "$o2" "$TMP/om2" --cluster-enabled yes --cluster-bus-port "$b2" --cluster-node-timeout 5000 --cluster-rebalance-delay 500
  om2_pid=$LAST_PID
  redis-cli -p "$o1" --pipe <"$TMP/move-load.resp" >/dev/null
  o_move_ms="" o_move_load=""
  move_load_start reredis "$o1" || true
  t0=$(now_ms)
  redis-cli -p "$o1" CLUSTER MEET 127.0.0.1 "$o2" "$b2" >/dev/null
  id2=$(redis-cli -p "$o2" CLUSTER MYID)
  for _ in $(seq 18000); do
    info=$(redis-cli -p "$o1" CLUSTER INFO | tr -d '\r')
    if [ "$(slots_of "$o1" "$id2")" = 8192 ] && grep -q '^cluster_slots_move_queue:0' <<<"$info" &&
      grep -q '^cluster_slots_migrating:0' <<<"$info"; then
      o_move_ms=$(($(now_ms) - t0))
      break
    fi
    sleep 0.1
  done
  [ -n "$o_move_ms" ] || echo "reredis: slots did not finish moving in 30 min" >>"$ERRLOG"
  move_load_stop reredis
  o_move_load=$LOAD_RESULT
  o_keys2=$(redis-cli -p "$o2" DBSIZE)
  o_total=$(keys_total "$o1" "$o2")
  [ "$o_total" = "$N_MOVE" ] || echo "reredis: the two nodes hold $o_total keys after the move, not $N_MOVE" >>"$ERRLOG"
  kill "$om1_pid" "$om2_pid" 2>/dev/null || true
  read -r r_mrps r_mp99 r_merr <<<"$r_move_load"
  read -r o_mrps o_mp99 o_merr <<<"$o_move_load"
  echo "==> slot move of $N_MOVE keys: redis ${r_move_ms} ms (load ${r_mrps} rps p99 ${r_mp99}, errors ${r_merr}); reredis ${o_move_ms} ms (load ${o_mrps} rps p99 ${o_mp99}, errors ${o_merr}), node 2 holds ${o_keys2} keys; keys in all: redis ${r_total}, reredis ${o_total} (of $N_MOVE)" >&2
  row "move half of $N_MOVE keys to a new node (ms)" "$o_move_ms" "$r_move_ms" "$(ratio "$o_move_ms" "$r_move_ms")" "<= 1.0"
  row "SET rps during the move" "$o_mrps" "$r_mrps" "$(ratio "$o_mrps" "$r_mrps")" ">= 1.0"
  row "SET p99 ms during the move" "$o_mp99" "$r_mp99" "$(ratio "$o_mp99" "$r_mp99")" "<= 1.0"
  row "client errors during the move" "$o_merr" "$r_merr" "n/a" "0"
  ROWS+=("| keys on the two nodes after the move | $o_total | $r_total | n/a | = $N_MOVE | $([ "$o_total" = "$N_MOVE" ] && echo yes || echo '**no**') |")
}

if [ "$FEED_ONLY" = 1 ]; then
  feed_rows
  print_table
  exit 0
fi
if [ "$TYPES_ONLY" = 1 ]; then
  types_rows
  print_table
  exit 0
fi
if [ "$MOVE_ONLY" = 1 ]; then
  move_rows
  print_table
  exit 0
fi

# ---------------------------------------------------------------- single node
free_port; RP=$PORT
free_port; OP=$PORT
start_redis "$RP" "$TMP/redis"
REDIS_PID=$LAST_PID
start_ours "$OP" "$TMP/ours" --cluster-enabled no
OURS_PID=$LAST_PID
echo "==> redis-server pid $REDIS_PID port $RP; reredis pid $OURS_PID port $OP" >&2

# Memory: N_KEYS keys "key:%012d" (16 bytes) with 16-byte values, through redis-cli --pipe.
LOAD="$TMP/load.resp"
awk -v n="$N_KEYS" 'BEGIN { for (i = 0; i < n; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$16\r\nval:%012d\r\n", i, i }' >"$LOAD"
declare -A RSS_PER_KEY
for side in redis ours; do
  if [ $side = redis ]; then pid=$REDIS_PID port=$RP; else pid=$OURS_PID port=$OP; fi
  before=$(rss_kb "$pid")
  timeout 300 redis-cli -p "$port" --pipe <"$LOAD" >"$TMP/pipe-$side.log" 2>&1 ||
    echo "redis-cli --pipe into $side failed: $(tail -2 "$TMP/pipe-$side.log")" >>"$ERRLOG"
  grep -q 'errors: 0,' "$TMP/pipe-$side.log" || echo "$side load: $(tail -1 "$TMP/pipe-$side.log")" >>"$ERRLOG"
  sleep 1
  after=$(rss_kb "$pid")
  keys=$(redis-cli -p "$port" DBSIZE)
  [ "$keys" = "$N_KEYS" ] || echo "$side holds $keys keys after loading $N_KEYS" >>"$ERRLOG"
  RSS_PER_KEY[$side]=$(awk -v a="$after" -v b="$before" -v n="$keys" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')
  echo "==> $side: VmRSS $before kB -> $after kB, $keys keys, ${RSS_PER_KEY[$side]} B/key" >&2
  redis-cli -p "$port" FLUSHALL >/dev/null
done
rm -f "$LOAD"

for pipe in 1 16; do
  if [ "$pipe" = 1 ]; then n=$N_P1; else n=$N_P16; fi
  for test in set get incr mset; do
    # Back to back per test, so a change in machine load hits both sides about equally.
    read -r r_rps r_p99 < <(run_bench redis-server "$RP" "$test" "$pipe" "$n") || true
    read -r o_rps o_p99 < <(run_bench reredis "$OP" "$test" "$pipe" "$n") || true
    T=$(echo "$test" | tr a-z A-Z)
    echo "==> $T -P $pipe: redis $r_rps rps p99 $r_p99 ms; reredis $o_rps rps p99 $o_p99 ms" >&2
    if [ "$pipe" = 1 ]; then g=">= 1.2"; else g=">= 1.5"; fi
    row "$T rps -P $pipe" "$o_rps" "$r_rps" "$(ratio "$o_rps" "$r_rps")" "$g"
    row "$T p99 ms -P $pipe" "$o_p99" "$r_p99" "$(ratio "$o_p99" "$r_p99")" "<= 1.0"
  done
done
row "RSS bytes per key (16 B key, 16 B value)" "${RSS_PER_KEY[ours]}" "${RSS_PER_KEY[redis]}" \
  "$(ratio "${RSS_PER_KEY[ours]}" "${RSS_PER_KEY[redis]}")" "<= 0.8"

kill "$REDIS_PID" "$OURS_PID" 2>/dev/null || true

types_rows

# ---------------------------------------------------------------- persistence
# SET with the append-only log on (everysec, always), then snapshot time and size for N_KEYS keys
# (BGSAVE, until INFO says it finished), then the start-up load time of that snapshot (start to
# the first PONG: both answer -LOADING until loaded).
now_ms() { date +%s%3N; }
wait_bgsave() { # port: waits until no BGSAVE runs and the last one succeeded (bounded)
  for _ in $(seq 6000); do
    local info
    info=$(redis-cli -p "$1" INFO persistence 2>/dev/null | tr -d '\r')
    if grep -q '^rdb_bgsave_in_progress:0' <<<"$info" && grep -q '^rdb_last_bgsave_status:ok' <<<"$info"; then
      return 0
    fi
    sleep 0.05
  done
  echo "BGSAVE on port $1 did not finish in 300 s" >>"$ERRLOG"
  return 1
}
for fsync in everysec always; do
  free_port; RP=$PORT
  free_port; OP=$PORT
  start_redis "$RP" "$TMP/redis-aof-$fsync" --appendonly yes --appendfsync "$fsync"
  rpid=$LAST_PID
  start_ours "$OP" "$TMP/ours-aof-$fsync" --cluster-enabled no --appendonly yes --appendfsync "$fsync"
  opid=$LAST_PID
  read -r r_rps r_p99 < <(run_bench redis-server "$RP" set 1 "$N_P1") || true
  read -r o_rps o_p99 < <(run_bench reredis "$OP" set 1 "$N_P1") || true
  echo "==> SET appendfsync $fsync: redis $r_rps rps p99 $r_p99 ms; reredis $o_rps rps p99 $o_p99 ms" >&2
  row "SET rps, appendonly $fsync" "$o_rps" "$r_rps" "$(ratio "$o_rps" "$r_rps")" ">= 1.0"
  row "SET p99 ms, appendonly $fsync" "$o_p99" "$r_p99" "$(ratio "$o_p99" "$r_p99")" "<= 1.0"
  kill "$rpid" "$opid" 2>/dev/null || true
done

LOAD="$TMP/load.resp"
awk -v n="$N_KEYS" 'BEGIN { for (i = 0; i < n; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$16\r\nval:%012d\r\n", i, i }' >"$LOAD"
declare -A SAVE_MS SAVE_BYTES LOAD_MS
for side in redis ours; do
  free_port; port=$PORT
  dir="$TMP/snap-$side"
  if [ $side = redis ]; then start_redis "$port" "$dir"; else start_ours "$port" "$dir" --cluster-enabled no; fi
  pid=$LAST_PID
  timeout 300 redis-cli -p "$port" --pipe <"$LOAD" >"$TMP/snap-pipe-$side.log" 2>&1 ||
    echo "loading $side for the snapshot failed" >>"$ERRLOG"
  t0=$(now_ms)
  redis-cli -p "$port" BGSAVE >/dev/null
  sleep 0.05
  wait_bgsave "$port" || true
  SAVE_MS[$side]=$(($(now_ms) - t0))
  SAVE_BYTES[$side]=$(stat -c %s "$dir/dump.rdb" 2>/dev/null || echo "")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # Start again on the same directory: the time until the data is loaded and PING answers.
  t0=$(now_ms)
  if [ $side = redis ]; then start_redis "$port" "$dir"; else start_ours "$port" "$dir" --cluster-enabled no; fi
  LOAD_MS[$side]=$(($(now_ms) - t0))
  keys=$(redis-cli -p "$port" DBSIZE)
  [ "$keys" = "$N_KEYS" ] || echo "$side holds $keys keys after loading its snapshot of $N_KEYS" >>"$ERRLOG"
  kill "$LAST_PID" 2>/dev/null || true
  echo "==> $side snapshot: ${SAVE_MS[$side]} ms, ${SAVE_BYTES[$side]} bytes; load ${LOAD_MS[$side]} ms" >&2
done
rm -f "$LOAD"
row "BGSAVE ms ($N_KEYS keys)" "${SAVE_MS[ours]}" "${SAVE_MS[redis]}" "$(ratio "${SAVE_MS[ours]}" "${SAVE_MS[redis]}")" "<= 1.0"
row "snapshot bytes ($N_KEYS keys)" "${SAVE_BYTES[ours]}" "${SAVE_BYTES[redis]}" "$(ratio "${SAVE_BYTES[ours]}" "${SAVE_BYTES[redis]}")" "<= 1.0"
row "start-up load ms ($N_KEYS keys)" "${LOAD_MS[ours]}" "${LOAD_MS[redis]}" "$(ratio "${LOAD_MS[ours]}" "${LOAD_MS[redis]}")" "<= 1.0"

# ---------------------------------------------------------------- 3-node clusters
cluster_ok() { # port expected-masters-with-slots
  local info nodes
  info=$(redis-cli -p "$1" CLUSTER INFO 2>/dev/null | tr -d '\r')
  grep -q '^cluster_state:ok' <<<"$info" || return 1
  # CLUSTER SLOTS: one top-level entry per range; count the master entries by their port lines.
  nodes=$(redis-cli -p "$1" CLUSTER NODES 2>/dev/null | awk 'NF >= 9' | wc -l)
  [ "$nodes" -ge "$2" ]
}
wait_cluster() { # ports...
  for _ in $(seq 600); do
    local all=1
    for p in "$@"; do cluster_ok "$p" 3 || { all=0; break; }; done
    [ "$all" = 1 ] && return 0
    sleep 0.1
  done
  return 1
}
# Top-level CLUSTER SLOTS entries: lines like "2) 1) (integer) 5461".
slot_ranges() { redis-cli -p "$1" --no-raw CLUSTER SLOTS 2>/dev/null | grep -cE '^[0-9]+\) 1\) \(integer\)' || true; }

cluster_bench() { # label port -> "set_rps get_rps"
  local out="$TMP/cluster-$1.csv" err="$TMP/cluster-$1.err"
  timeout "$BENCH_TIMEOUT" redis-benchmark --cluster -h 127.0.0.1 -p "$2" -c "$CLIENTS" -t set,get \
    -n "$N_CLUSTER" -r 1000000 --csv >"$out" 2>"$err" ||
    echo "redis-benchmark --cluster $1 failed or timed out: $(tail -2 "$err")" >>"$ERRLOG"
  if grep -qi 'error' "$err" "$out"; then
    { echo "== cluster $1:"; grep -i 'error' "$err" "$out" | sort | uniq -c | head -5; } >>"$ERRLOG"
  fi
  awk -F, 'NR > 1 { gsub(/"/, ""); r[$1] = $2 } END { print r["SET"], r["GET"] }' "$out"
}

# redis-server cluster
RC=()
RC_PIDS=()
for i in 1 2 3; do
  free_port; p=$PORT
  RC+=("$p")
  start_redis "$p" "$TMP/rc$i" --cluster-enabled yes --cluster-config-file "$TMP/rc$i/nodes.conf" \
    --cluster-node-timeout 5000
  RC_PIDS+=("$LAST_PID")
done
redis_cluster_up=0
if timeout 120 redis-cli --cluster create "127.0.0.1:${RC[0]}" "127.0.0.1:${RC[1]}" "127.0.0.1:${RC[2]}" \
  --cluster-yes >"$TMP/rc-create.log" 2>&1 && wait_cluster "${RC[@]}"; then
  redis_cluster_up=1
else
  echo "redis-server cluster did not come up: $(tail -3 "$TMP/rc-create.log")" >>"$ERRLOG"
fi
r_set="" r_get=""
[ "$redis_cluster_up" = 1 ] && { read -r r_set r_get < <(cluster_bench redis-server "${RC[0]}") || true; }
kill "${RC_PIDS[@]}" 2>/dev/null || true

# reredis cluster: auto-assign splits the slots once all three have met
OC=()
OB=()
OC_PIDS=()
for i in 1 2 3; do
  free_port; p=$PORT
  free_port; b=$PORT
  OC+=("$p")
  OB+=("$b")
  start_ours "$p" "$TMP/oc$i" --cluster-enabled yes --cluster-bus-port "$b" \
    --cluster-node-timeout 5000 --cluster-rebalance-delay 500
  OC_PIDS+=("$LAST_PID")
done
redis-cli -p "${OC[0]}" CLUSTER MEET 127.0.0.1 "${OC[1]}" "${OB[1]}" >/dev/null
redis-cli -p "${OC[0]}" CLUSTER MEET 127.0.0.1 "${OC[2]}" "${OB[2]}" >/dev/null
o_set="" o_get=""
if wait_cluster "${OC[@]}"; then
  ranges=$(slot_ranges "${OC[0]}")
  [ "$ranges" = 3 ] || echo "reredis cluster: CLUSTER SLOTS shows $ranges ranges, expected 3" >>"$ERRLOG"
  read -r o_set o_get < <(cluster_bench reredis "${OC[0]}") || true
else
  echo "reredis cluster did not reach cluster_state:ok with 3 slot owners in 60 s" >>"$ERRLOG"
  redis-cli -p "${OC[0]}" CLUSTER NODES >>"$ERRLOG" 2>&1 || true
fi
kill "${OC_PIDS[@]}" 2>/dev/null || true
echo "==> cluster SET: redis $r_set reredis $o_set; GET: redis $r_get reredis $o_get" >&2
row "cluster (3 nodes) SET rps" "$o_set" "$r_set" "$(ratio "$o_set" "$r_set")" ">= 1.0"
row "cluster (3 nodes) GET rps" "$o_get" "$r_get" "$(ratio "$o_get" "$r_get")" ">= 1.0"

move_rows

# ---------------------------------------------------------------- live feed
feed_rows

# ---------------------------------------------------------------- gossip figures
# The gossip state machine simulated in one process (tests/cluster_sim.rs, gossip_figures; no
# network, no sleeping): seconds to converge after every node met node 1, and bus bytes per node
# per second once converged, next to what Redis's bus would carry for the same messages (a
# 2256-byte header, 2048 bytes of it the slot bitmap, plus 104 bytes per gossip entry).
echo "==> gossip figures (simulated, release test build)" >&2
# GOSSIP_MAX_NODES=1000 adds the 1000-node case (over 10 minutes on 2 cores).
GOSSIP=$(GOSSIP_MAX_NODES="${GOSSIP_MAX_NODES:-100}" timeout 900 cargo test --release --locked --test cluster_sim -- --ignored --nocapture gossip_figures 2>>"$ERRLOG" | grep '^gossip n=' || true)
[ -n "$GOSSIP" ] || echo "gossip figures: the simulation printed nothing" >>"$ERRLOG"
while read -r line; do
  [ -n "$line" ] || continue
  field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$line"; }
  # (Not `$([ loss != 0 ] && echo ...)`: its status 1 for no loss ended the script under set -e.)
  label="$(field n) nodes"
  [ "$(field loss)" = 0 ] || label+=", $(awk -v l="$(field loss)" 'BEGIN { print l * 100 }')% loss"
  row "gossip: seconds to converge, $label (simulated)" "$(field converge_s)" "n/a" "n/a" "n/a"
  row "gossip: bus bytes/node/s, $label (Redis: computed)" "$(field bytes_per_node_per_s)" \
    "$(field redis_bytes_per_node_per_s)" \
    "$(ratio "$(field bytes_per_node_per_s)" "$(field redis_bytes_per_node_per_s)")" "<= 1.0"
done <<<"$GOSSIP"

# ---------------------------------------------------------------- the table
print_table
