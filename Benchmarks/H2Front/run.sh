#!/usr/bin/env bash
# The HTTP/2 front spike of issue 12: three ways to terminate HTTP/2 over TLS, each answering every
# request itself with a 100-byte body (no upstream: the front's own cost per request), and nginx
# doing the same, measured with h2load in requests per CPU-second of the server.
#
#   Benchmarks/H2Front/run.sh [--rounds 3] [--seconds 8] [--modes "a b c nginx"]
#
#   a      libnghttp2 (Debian's libnghttp2-dev) driven by one connection-level ChannelHandler
#   b      swift-nio-http2's NIOHTTP2Handler without the stream multiplexer, one frame handler
#   c      NIOHTTP2Handler + the multiplexer + a handler per stream (Junction's front today)
#   nginx  nginx 1.22, `return 200`, one worker
#
# The server runs on core 0, h2load on core 1. Needs: swift, libnghttp2-dev, nginx, h2load,
# openssl (certs/make-dev-certs.sh). Not part of CI: a measurement, run by hand.
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=3 SECONDS_EACH=8 MODES="a b c nginx"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --modes) MODES=$2; shift 2 ;;
        *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[ -f ../../certs/dev.pem ] || ../../certs/make-dev-certs.sh >/dev/null
swift build -c release -Xswiftc -enforce-exclusivity=unchecked 2>&1 | grep -E "error|Compiling|Build" || true
[ -x .build/release/h2front ] || { echo "run.sh: h2front did not build (is libnghttp2-dev installed?)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/h2front.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/logs"
cat >"$WORK/nginx.conf" <<CONF
$([ "$(id -u)" = 0 ] && echo "user root;")
worker_processes 1;
daemon off;
master_process off;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000000;
    client_body_temp_path $WORK/logs;
    proxy_temp_path $WORK/logs;
    fastcgi_temp_path $WORK/logs;
    uwsgi_temp_path $WORK/logs;
    scgi_temp_path $WORK/logs;
    server {
        listen 127.0.0.1:$PORT ssl http2;
        ssl_certificate $(pwd)/../../certs/dev.pem;
        ssl_certificate_key $(pwd)/../../certs/dev-key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            default_type text/plain;
            return 200 "$(printf 'x%.0s' $(seq 99))\n";
        }
    }
}
CONF
TCK=$(getconf CLK_TCK)
echo "mode,round,requests,cpu_seconds,req_per_cpu_second" >"$WORK/runs.csv"
for ((round = 1; round <= ROUNDS; round++)); do
    for mode in $MODES; do
        if [ "$mode" = nginx ]; then
            taskset -c 0 nginx -p "$WORK" -c "$WORK/nginx.conf" >/dev/null 2>&1 &
        else
            taskset -c 0 .build/release/h2front "$mode" "$PORT" >"$WORK/h2front.log" 2>&1 &
        fi
        SERVER=$!
        for _ in $(seq 50); do curl -sk --http2 -o /dev/null "https://127.0.0.1:$PORT/" && break; sleep 0.1; done
        before=$(awk '{ print $14 + $15 }' "/proc/$SERVER/stat")
        taskset -c 1 h2load -c50 -m10 -D "$SECONDS_EACH" "https://127.0.0.1:$PORT/" >"$WORK/h2load.txt" 2>&1
        after=$(awk '{ print $14 + $15 }' "/proc/$SERVER/stat")
        kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
        done_=$(grep -oP '\d+(?= succeeded)' "$WORK/h2load.txt")
        cpu=$(awk -v t=$((after - before)) -v k="$TCK" 'BEGIN { printf "%.2f", t / k }')
        rate=$(awk -v n="$done_" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')
        echo "$mode,$round,$done_,$cpu,$rate" | tee -a "$WORK/runs.csv"
    done
done
echo "| front | requests per server CPU-second (median of $ROUNDS) |"
echo "|---|---:|"
for mode in $MODES; do
    m=$(grep "^$mode," "$WORK/runs.csv" | cut -d, -f5 | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    echo "| $mode | $m |"
done
