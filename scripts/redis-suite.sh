#!/usr/bin/env bash
# Runs Redis 7.0's own test suite (tests/unit/*.tcl of Debian's redis source package) against
# a Reredis node, one unit at a time, in the suite's external-server mode. A compatibility
# probe for developers, not part of scripts/test.sh: many units use features we lack (DEBUG
# subcommands such as quicklist-packed-threshold, list-compress-depth) and report those as
# failures.
#
#   scripts/redis-suite.sh                      the units listed below
#   scripts/redis-suite.sh unit/type/hash ...   these units
#
# Needs: tclsh, apt-get (fetches the source package with its own lists under target/, changing
# nothing in /etc), and a release build (`cargo build --release`). Output: one log per unit in
# target/redis-suite/, and a summary line per unit (tests passed, failed; whether the node died).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/redis-suite
bin=${REREDIS_BIN:-$root/target/release/reredis}
mkdir -p "$work"

src=$(ls -d "$work"/redis-7.0.*/ 2>/dev/null | head -1 || true)
if [ -z "$src" ]; then
  apt=$work/apt
  mkdir -p "$apt/lists/partial"
  cat > "$apt/deb-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt" -o "Dir::State::Lists=$apt/lists")
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" source --download-only redis >/dev/null)
  tar -C "$work" -xzf "$work"/redis_7.0.*.orig.tar.gz
  src=$(ls -d "$work"/redis-7.0.*/ | head -1)
fi
command -v tclsh >/dev/null || { echo "tclsh is needed (Debian package tcl)" >&2; exit 1; }
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }

# Tests tagged needs:repl read the node's replication stream (SYNC) to check what a command
# propagates; REDIS_SUITE_REPL=1 runs them too.
tags=(--tags -needs:repl)
[ "${REDIS_SUITE_REPL:-0}" = 1 ] && tags=()
# Tests of Redis's internals we do not have: this one kills the fork of a BGSAVE to restart a
# dict's incremental rehashing (DEBUG HTSTATS-KEY), and its abort left set-max-intset-entries at
# 0 for the rest of unit/type/set.
tags+=(--skiptest "SRANDMEMBER with a dict containing long chain")
units=("$@")
if [ ${#units[@]} -eq 0 ]; then
  units=(unit/type/string unit/type/incr unit/type/list unit/type/set unit/type/zset
    unit/type/hash unit/type/stream unit/type/stream-cgroups unit/keyspace unit/expire unit/scan
    unit/sort unit/bitops unit/bitfield unit/hyperloglog unit/geo unit/multi unit/pubsub
    unit/pubsubshard unit/scripting unit/functions unit/dump unit/info unit/introspection
    unit/introspection-2 unit/protocol unit/tracking unit/latency-monitor unit/slowlog
    unit/quit unit/pause unit/other unit/acl unit/acl-v2)
fi

# The ACL units are tagged external:skip as a whole (a few of their tests start servers of their
# own, which cannot be done against an external node): they run from a copy without that tag,
# and those few tests end the unit with an exception.
for unit in unit/acl unit/acl-v2; do
  sed 's/external:skip//' "$src/tests/$unit.tcl" > "$src/tests/${unit%/*}/x-${unit#*/}.tcl"
done

for unit in "${units[@]}"; do
  case $unit in unit/acl | unit/acl-v2) unit=unit/x-${unit#*/} ;; esac
  name=${unit//\//_}
  data=$work/data-$name
  rm -rf "$data" && mkdir -p "$data"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" --bind 127.0.0.1 --port "$port" --http-port 0 --dir "$data" --save '' \
    --cluster-enabled no --enable-debug-command yes > "$work/$name.node.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  (cd "$src" && timeout 900 tclsh tests/test_helper.tcl --host 127.0.0.1 --port "$port" \
    "${tags[@]}" --durable --timeout 120 --single "$unit") > "$work/$name.log" 2>&1 || true
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$work/$name.log")
  ok=$(grep -c '^\[ok\]' <<<"$plain" || true)
  bad=$(grep -cE '^\[(err|exception)\]' <<<"$plain" || true)
  alive=yes
  kill -0 "$pid" 2>/dev/null || alive="NO (see $work/$name.node.log)"
  echo "$unit: $ok passed, $bad failed, node alive: $alive"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
