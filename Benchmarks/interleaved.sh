#!/usr/bin/env bash
# Junction against itself: two or more variants (a binary, with or without every per-client limit
# on) measured in interleaved rounds, each round in a random order, so the drift of a noisy VM
# falls on every variant alike. Per variant and load: requests per CPU-second of the proxy (user +
# system time from /proc), the median over the rounds, and the median of each variant's per-round
# ratio to the first variant.
#
#   Benchmarks/interleaved.sh [--rounds 10] [--seconds 5] [--loads h1,h2,ws] NAME=BINARY[:limits] ...
#   Benchmarks/interleaved.sh old=/tmp/junction-old new=.build/release/junction \
#       limits=.build/release/junction:limits
#
# Loads: h1, wrk -c50 plain HTTP/1.1, and h2, h2load -c10 -m10 h2c, against nginx returning a
# small JSON body; ws, Benchmarks/ws_echo.c's WebSocket echo (100 tunnels, one 128-byte message in
# flight on each; round trips). The proxy (threads: 1) on core 0, load and backends on core 1.
# Needs wrk, h2load, nginx, cc, taskset, curl, awk, python3.
set -euo pipefail
ROUNDS=10
SECONDS_PER_RUN=5
LOADS="h1,h2"
VARIANTS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
        --loads) LOADS=$2; shift 2 ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
        *=*) VARIANTS+=("$1"); shift ;;
        *) echo "interleaved.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ ${#VARIANTS[@]} -ge 2 ] || { echo "interleaved.sh: give at least two NAME=BINARY[:limits]" >&2; exit 2; }
for load in ${LOADS//,/ }; do
    case "$load" in h1 | h2 | ws) ;; *) echo "interleaved.sh: --loads takes h1, h2 and ws, not $load" >&2; exit 2 ;; esac
done
has_load() { [[ ",$LOADS," == *",$1,"* ]]; }
WORK=$(mktemp -d /tmp/junction-interleaved.XXXXXX)
BACKEND_PORT=39190 PLAIN_PORT=39180 H2C_PORT=39181 ECHO_PORT=39191
ECHO_PID=""
cleanup() {
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    [ -z "$ECHO_PID" ] || kill "$ECHO_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cat >"$WORK/nginx.conf" <<NGINX
daemon off; pid $WORK/nginx.pid; error_log $WORK/nginx.err; worker_processes 1;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000;
  server { listen 127.0.0.1:$BACKEND_PORT; location / { return 200 '{"ok":true}'; } } }
NGINX
taskset -c 1 nginx -c "$WORK/nginx.conf" -p "$WORK" &
if has_load ws; then
    cc -O2 -o "$WORK/ws_echo" "$(dirname "$0")/ws_echo.c"
    taskset -c 1 "$WORK/ws_echo" serve "$ECHO_PORT" >"$WORK/ws-echo-backend.out" &
    ECHO_PID=$!
fi
config() { # limits: 0 | 1
    local limit_route="" limit_client=""
    if [ "$1" = 1 ]; then
        limit_route=$'    limit:\n      requests_per_second: 1000000\n      burst: 1000000'
        limit_client=$'limits:\n  per_client:\n    max_connections: 1000000\n    max_tunnels: 1000000\n    requests_per_second: 1000000\n    burst: 1000000'
    fi
    cat <<YAML
threads: 1
listeners:
  - name: plain
    address: 127.0.0.1:$PLAIN_PORT
  - name: h2c
    address: 127.0.0.1:$H2C_PORT
    http2: true
routes:
  - name: wsecho
    match:
      path_prefix: /ws-echo
    pool: wsecho
  - name: all
    pool: backend
$limit_route
pools:
  backend:
    backends:
      - address: 127.0.0.1:$BACKEND_PORT
  wsecho:
    backends:
      - address: 127.0.0.1:$ECHO_PORT
logging:
  access_log: off
  level: warning
$limit_client
YAML
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
measure() { # name binary limits
    config "$3" >"$WORK/$1.yaml"
    taskset -c 0 "$2" run --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
    local pid=$! before after n
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PLAIN_PORT/" && break; sleep 0.1; done
    taskset -c 1 wrk -t1 -c50 -d2s "http://127.0.0.1:$PLAIN_PORT/" >/dev/null
    if has_load h1; then
        before=$(ticks $pid)
        taskset -c 1 wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$PLAIN_PORT/" >"$WORK/wrk.txt"
        after=$(ticks $pid)
        n=$(awk '/requests in/ { print $1 }' "$WORK/wrk.txt")
        echo "$ROUND $1 h1 $n $((after - before))"
    fi
    if has_load h2; then
        before=$(ticks $pid)
        taskset -c 1 h2load -c10 -m10 -D "$SECONDS_PER_RUN" "http://127.0.0.1:$H2C_PORT/" >"$WORK/h2load.txt" 2>&1
        after=$(ticks $pid)
        n=$(awk '/requests:/ { print $8 }' "$WORK/h2load.txt")
        echo "$ROUND $1 h2 $n $((after - before))"
    fi
    if has_load ws; then
        # The tunnels' upgrades fall inside the window, as in run.sh: 100 of them, next to ~10^5
        # round trips.
        before=$(ticks $pid)
        taskset -c 1 "$WORK/ws_echo" load "$PLAIN_PORT" /ws-echo 100 "$SECONDS_PER_RUN" 128 >"$WORK/ws.txt"
        after=$(ticks $pid)
        n=$(awk '/round_trips/ { print $2 }' "$WORK/ws.txt")
        echo "$ROUND $1 ws $n $((after - before))"
    fi
    kill $pid
    wait $pid 2>/dev/null || true
}
: >"$WORK/runs.txt"
for ROUND in $(seq 1 "$ROUNDS"); do
    for variant in $(printf '%s\n' "${VARIANTS[@]}" | shuf); do
        name=${variant%%=*} rest=${variant#*=}
        binary=${rest%:limits} limits=0
        [ "$rest" = "$binary" ] || limits=1
        measure "$name" "$binary" "$limits" | tee -a "$WORK/runs.txt" >&2
    done
done
HZ=$(getconf CLK_TCK)
python3 - "$WORK/runs.txt" "$HZ" "${VARIANTS[@]%%=*}" <<'PY'
import collections, statistics, sys
runs, hz, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
first = names[0]
rate = collections.defaultdict(dict)
for line in open(runs):
    round_, name, load, requests, ticks = line.split()
    rate[(name, load)][round_] = int(requests) * hz / max(1, int(ticks))
labels = {"h1": "plain HTTP/1.1", "h2": "h2c", "ws": "WebSocket echo (round trips)"}
print("| variant | load | per CPU-s (median) | range | ratio to %s (median of rounds) |" % first)
print("|---|---|---:|---|---:|")
for load in ("h1", "h2", "ws"):
    for name in names:
        values = rate[(name, load)]
        if not values:
            continue
        ratios = [values[r] / rate[(first, load)][r] for r in values if r in rate[(first, load)]]
        print("| %s | %s | %d | %d–%d | %.2f |" % (name, labels[load], statistics.median(values.values()), min(values.values()), max(values.values()), statistics.median(ratios)))
PY
