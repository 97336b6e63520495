#!/usr/bin/env bash
# Client tracking's cost on writes, side by side with redis-server (docs/benchmarks.md,
# "Client tracking's cost on writes"): redis-benchmark SET -P 16 while one RESP3 connection
# has no tracking, tracking with nothing cached ("idle"), tracking after reading the keys the
# benchmark writes ("read"), or BCAST on every key ("bcast"). Needs a release build
# (cargo build --release), redis-server, redis-benchmark and python3. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
RR=${REREDIS_BIN:-target/release/reredis}
D=$(mktemp -d)
cat > "$D/holder.py" <<'EOF'
import socket, sys, time
port, mode, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.create_connection(('127.0.0.1', port))
def enc(*a):
    out = b'*%d\r\n' % len(a)
    for x in a:
        x = x.encode()
        out += b'$%d\r\n%s\r\n' % (len(x), x)
    return out
s.sendall(enc('HELLO', '3')); time.sleep(0.1); s.recv(65536)
s.sendall(enc('CLIENT', 'TRACKING', 'ON', *(['BCAST'] if mode == 'bcast' else [])))
time.sleep(0.1); s.recv(100)
if mode == 'read':
    for i in range(10000):
        s.sendall(enc('GET', 'key:%012d' % i))
s.settimeout(0.5)
end = time.time() + secs
while time.time() < end:
    try:
        if not s.recv(1 << 20):
            break
    except socket.timeout:
        pass
EOF
"$RR" --port 7410 --http-port 0 --save '' --dir "$D" > "$D/rr.log" 2>&1 &
RRPID=$!
redis-server --port 7411 --save '' --dir "$D" > "$D/redis.log" 2>&1 &
RSPID=$!
trap 'kill $RRPID $RSPID 2>/dev/null; rm -rf "$D"' EXIT
sleep 1
echo "| tracking client | round | reredis rps | redis-server rps |"
echo "|---|---|---:|---:|"
for round in 1 2; do
  for mode in none idle read bcast; do
    row="| $mode | $round |"
    for port in 7410 7411; do
      redis-cli -p $port flushall > /dev/null
      HP=""
      if [ "$mode" != none ]; then
        python3 "$D/holder.py" $port $mode 30 &
        HP=$!
        sleep 1.5
      fi
      rps=$(redis-benchmark -p $port -t set -P 16 -c 50 -n 1000000 -r 10000 -q 2>/dev/null |
        grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
      if [ -n "$HP" ]; then kill $HP 2>/dev/null; wait $HP 2>/dev/null || true; fi
      row="$row $rps |"
    done
    echo "$row"
  done
done
