#!/usr/bin/env bash
# WebSocket echo through Junction, nginx and HAProxy, side by side: round trips of small messages
# per CPU-second of the proxy (Rocket.Chat's DDP load: many tunnels, small JSON messages).
#
#   Benchmarks/ws_echo.sh [--tunnels 100] [--size 128] [--seconds 10] [--rounds 3] [--junction PATH]
#                         [--profile junction|nginx|haproxy|relay] [--relay]
#
# Each proxy runs one worker thread pinned to core 0; the echo backend and the closed-loop client
# (Benchmarks/ws_echo.c, one message in flight per tunnel) share core 1. --profile also runs
# `strace -c -f` and `perf record -g` on that proxy for one more run (output in the results folder).
# --relay adds a fourth contestant, Benchmarks/RelayCeiling: a bare TCP relay in Swift on
# edge-triggered epoll with no tunnel behaviour, the ceiling of relaying outside NIO.
# Needs: cc, nginx, haproxy, taskset, curl; strace and perf for --profile; swiftc for --relay.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TUNNELS=100 SIZE=128 SECONDS_EACH=10 ROUNDS=3 PROFILE="" RELAY=0
JUNCTION="$SCRIPT_DIR/../.build/release/junction"
while [ $# -gt 0 ]; do
    case "$1" in
        --tunnels) TUNNELS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --junction) JUNCTION=$2; shift 2 ;;
        --profile) PROFILE=$2; shift 2 ;;
        --relay) RELAY=1; shift ;;
        *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[ "$PROFILE" != relay ] || [ "$RELAY" = 1 ] || { echo "ws_echo.sh: --profile relay needs --relay" >&2; exit 2; }
[ -x "$JUNCTION" ] || { echo "ws_echo.sh: build Junction first (swift build -c release -Xswiftc -enforce-exclusivity=unchecked) or pass --junction" >&2; exit 1; }
for tool in cc nginx haproxy taskset; do
    command -v $tool >/dev/null || { echo "ws_echo.sh: $tool is not installed" >&2; exit 1; }
done
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$SCRIPT_DIR/results/ws-echo-$STAMP"
WORK=$(mktemp -d /tmp/junction-ws-echo.XXXXXX)
mkdir -p "$RESULTS"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

cc -O2 -o "$WORK/ws_echo" "$SCRIPT_DIR/ws_echo.c"
read -r BACKEND J_PORT N_PORT H_PORT R_PORT <<<"$(python3 -c '
import socket
s=[socket.socket() for _ in range(5)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"

taskset -c 1 "$WORK/ws_echo" serve "$BACKEND" >"$WORK/backend.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/junction.yaml" <<YAML
threads: 1
listeners:
  - name: ws
    address: 127.0.0.1:$J_PORT
routes:
  - name: ws
    pool: ws
pools:
  ws:
    backends:
      - address: 127.0.0.1:$BACKEND
logging:
  level: warning
  access_log: off
YAML
taskset -c 0 "$JUNCTION" run --config "$WORK/junction.yaml" >"$RESULTS/junction.log" 2>&1 &
PIDS+=($!)
J_PID=$!

mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx/nginx.conf" <<CONF
$([ "$(id -u)" = 0 ] && echo "user root;")
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$N_PORT;
        location / {
            proxy_pass http://127.0.0.1:$BACKEND;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }
    }
}
CONF
taskset -c 0 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$RESULTS/nginx.log" 2>&1 &
PIDS+=($!)
N_PID=$!

cat >"$WORK/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 9000
defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
frontend ws
    bind 127.0.0.1:$H_PORT
    default_backend echo
backend echo
    server echo 127.0.0.1:$BACKEND
CONF
taskset -c 0 haproxy -db -f "$WORK/haproxy.cfg" >"$RESULTS/haproxy.log" 2>&1 &
PIDS+=($!)
H_PID=$!

PROXIES=(junction nginx haproxy)
if [ "$RELAY" = 1 ]; then
    command -v swiftc >/dev/null || { echo "ws_echo.sh: --relay needs swiftc" >&2; exit 1; }
    swiftc -O -import-objc-header "$SCRIPT_DIR/RelayCeiling/epoll.h" "$SCRIPT_DIR/RelayCeiling/main.swift" \
        -o "$WORK/relay" >"$RESULTS/relay-build.log" 2>&1 \
        || { cat "$RESULTS/relay-build.log" >&2; echo "ws_echo.sh: the relay did not build" >&2; exit 1; }
    taskset -c 0 "$WORK/relay" "$R_PORT" "$BACKEND" >"$RESULTS/relay.log" 2>&1 &
    PIDS+=($!)
    R_PID=$!
    PROXIES+=(relay)
fi

# CPU ticks of a process and its direct children (nginx: master + worker).
ticks() {
    local total=0 pid
    for pid in $1 $(pgrep -P "$1" || true); do
        local stat rest
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo $total
}
port_of() { case $1 in junction) echo "$J_PORT" ;; nginx) echo "$N_PORT" ;; haproxy) echo "$H_PORT" ;; relay) echo "$R_PORT" ;; esac; }
pid_of() { case $1 in junction) echo "$J_PID" ;; nginx) echo "$N_PID" ;; haproxy) echo "$H_PID" ;; relay) echo "$R_PID" ;; esac; }

for proxy in "${PROXIES[@]}"; do
    for ((i = 0; i < 100; i++)); do
        timeout 2 taskset -c 1 "$WORK/ws_echo" load "$(port_of $proxy)" /websocket 1 0.2 "$SIZE" >/dev/null 2>&1 && break
        sleep 0.1
    done
    [ "$i" -lt 100 ] || { echo "ws_echo.sh: $proxy does not relay WebSockets; see $RESULTS/$proxy.log" >&2; exit 1; }
done

CLK_TCK=$(getconf CLK_TCK)
echo "round,proxy,round_trips,seconds,proxy_cpu_seconds,round_trips_per_cpu_second" >"$RESULTS/runs.csv"
for ((round = 1; round <= ROUNDS; round++)); do
    for proxy in "${PROXIES[@]}"; do
        pid=$(pid_of $proxy)
        before=$(ticks "$pid")
        out=$(taskset -c 1 "$WORK/ws_echo" load "$(port_of $proxy)" /websocket "$TUNNELS" "$SECONDS_EACH" "$SIZE")
        after=$(ticks "$pid")
        read -r _ trips _ secs <<<"$out"
        cpu=$(awk -v t=$((after - before)) -v k="$CLK_TCK" 'BEGIN { printf "%.2f", t / k }')
        rate=$(awk -v n="$trips" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')
        echo "$round,$proxy,$trips,$secs,$cpu,$rate" >>"$RESULTS/runs.csv"
        echo "round $round $proxy: $trips round trips in $secs s, proxy CPU $cpu s: $rate per CPU-second"
    done
done

median() { grep ",$1," "$RESULTS/runs.csv" | cut -d, -f"$2" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
{
    j=$(median junction 6) n=$(median nginx 6) h=$(median haproxy 6)
    ratio() { awk -v a="$1" -v b="$n" 'BEGIN { printf "%.2f", a / b }'; }
    head="| per proxy CPU-second ($TUNNELS tunnels, $SIZE-byte messages, median of $ROUNDS × ${SECONDS_EACH} s) | Junction | nginx | HAProxy |"
    rule="|---|---:|---:|---:|" row="| WebSocket echo round trips | $j | $n | $h |"
    if [ "$RELAY" = 1 ]; then
        r=$(median relay 6)
        head+=" bare relay |" rule+="---:|" row+=" $r |"
    fi
    head+=" Junction / nginx |" rule+="---:|" row+=" $(ratio "$j") |"
    if [ "$RELAY" = 1 ]; then head+=" relay / nginx |" rule+="---:|" row+=" $(ratio "$r") |"; fi
    printf '%s\n%s\n%s\n' "$head" "$rule" "$row"
} | tee "$RESULTS/table.md"

if [ -n "$PROFILE" ]; then
    pid=$(pid_of "$PROFILE")
    targets=$(echo "$pid" $(pgrep -P "$pid" || true) | tr ' ' ',')
    timeout $((SECONDS_EACH + 5)) strace -c -f -p "$targets" -o "$RESULTS/strace-$PROFILE.txt" &
    strace_pid=$!
    sleep 0.5
    out=$(taskset -c 1 "$WORK/ws_echo" load "$(port_of "$PROFILE")" /websocket "$TUNNELS" "$SECONDS_EACH" "$SIZE")
    kill -INT $strace_pid 2>/dev/null || true
    wait $strace_pid 2>/dev/null || true
    echo "under strace: $out" >>"$RESULTS/strace-$PROFILE.txt"
    perf record -g -o "$RESULTS/perf-$PROFILE.data" -p "$targets" -- sleep "$SECONDS_EACH" >/dev/null 2>&1 &
    perf_pid=$!
    taskset -c 1 "$WORK/ws_echo" load "$(port_of "$PROFILE")" /websocket "$TUNNELS" "$SECONDS_EACH" "$SIZE" >/dev/null
    wait $perf_pid || true
    perf report -i "$RESULTS/perf-$PROFILE.data" --no-children --percent-limit 1 --stdio 2>/dev/null | head -150 >"$RESULTS/perf-$PROFILE.txt" || true
    rm -f "$RESULTS/perf-$PROFILE.data"
    echo "profile of $PROFILE: $RESULTS/strace-$PROFILE.txt, $RESULTS/perf-$PROFILE.txt"
fi
echo "results: $RESULTS"
