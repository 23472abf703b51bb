#!/usr/bin/env bash
# Junction vs nginx, side by side: wrk through each proxy in front of one shared nginx backend,
# plain HTTP/1.1 and over TLS, interleaved, in one run. See Benchmarks/README.md.
#
#   Benchmarks/run.sh [--duration 10] [--rounds 3] [--connections 50] [--threads 1]
#                     [--warmup 2] [--websockets 2000] [--junction PATH]
#
# Core layout (2-core machine): the proxy under test on core 0, wrk and the backend on core 1.
# Needs: bash, awk, taskset, openssl, curl, wrk, h2load, nginx, python3 with `websockets`.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ORIG_ARGS=("$@")

DURATION=10
ROUNDS=3
CONNECTIONS=50
H2_CONNECTIONS=10
H2_STREAMS=10
THREADS=1
WARMUP=2
WEBSOCKETS=2000
JUNCTION="$SCRIPT_DIR/../.build/release/junction"
PROXY_CPU=0
LOAD_CPU=1

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

die() {
    echo "run.sh: error: $*" >&2
    exit 1
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
    case "$1" in
        --duration | --rounds | --connections | --threads | --warmup | --websockets | --junction)
            [ $# -ge 2 ] || die "$1 needs a value" ;;
    esac
    case "$1" in
        --duration) DURATION=${2:-}; shift 2 ;;
        --rounds) ROUNDS=${2:-}; shift 2 ;;
        --connections) CONNECTIONS=${2:-}; shift 2 ;;
        --threads) THREADS=${2:-}; shift 2 ;;
        --warmup) WARMUP=${2:-}; shift 2 ;;
        --websockets) WEBSOCKETS=${2:-}; shift 2 ;;
        --junction) JUNCTION=${2:-}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage ;;
    esac
done

for v in DURATION ROUNDS CONNECTIONS THREADS WARMUP WEBSOCKETS; do
    is_uint "${!v}" || die "--${v,,} must be a non-negative integer, got '${!v}'"
done
[ "$DURATION" -ge 1 ] || die "--duration must be >= 1"
[ "$ROUNDS" -ge 1 ] || die "--rounds must be >= 1"
[ "$CONNECTIONS" -ge 1 ] || die "--connections must be >= 1"
[ "$THREADS" -ge 1 ] || die "--threads must be >= 1 (the same worker count is given to both proxies)"

if [ ! -x "$JUNCTION" ]; then
    die "Junction binary not found or not executable: $JUNCTION
Build it first at the repository root:   swift build -c release -Xswiftc -enforce-exclusivity=unchecked
or pass another binary with --junction PATH."
fi
JUNCTION=$(cd "$(dirname "$JUNCTION")" && pwd)/$(basename "$JUNCTION")

for tool in wrk nginx openssl taskset curl python3 awk; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (Debian: apt-get install -y wrk nginx openssl util-linux curl python3)"
done
if [ "$WEBSOCKETS" -gt 0 ]; then
    python3 -c 'import websockets' 2>/dev/null \
        || die "the idle-WebSocket case needs Python's websockets (python3 -m pip install websockets), or pass --websockets 0"
    [ "$WEBSOCKETS" -le 4000 ] || die "--websockets is at most 4000 (nginx has worker_connections 8192, two per tunnel)"
    [ "$(ulimit -n)" -ge $((WEBSOCKETS * 2 + 100)) ] \
        || die "--websockets $WEBSOCKETS needs an open-file limit of at least $((WEBSOCKETS * 2 + 100)) (ulimit -n is $(ulimit -n))"
fi
NGINX_BIN=$(command -v nginx)
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || die "needs at least 2 CPU cores (proxy on core $PROXY_CPU, wrk + backend on core $LOAD_CPU); have $NCPU"
CLK_TCK=$(getconf CLK_TCK)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$SCRIPT_DIR/results/$STAMP"
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/junction-bench.XXXXXX)
chmod 755 "$WORK"

# ---------------------------------------------------------------------------------------------
# Process bookkeeping and cleanup (runs on every exit, including failures and Ctrl-C).

PIDS=()          # every long-lived process this script started (nginx masters, junction)

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid i
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            # nginx workers are children of the master: take them down too.
            for c in $(child_pids "$pid"); do kill -KILL "$c" 2>/dev/null || true; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Direct children of a pid (scans /proc with shell builtins only; no process names involved).
child_pids() {
    local parent=$1 f line rest fields
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        rest=${line##*) }            # comm may contain spaces and ')': cut after the last ") "
        read -r -a fields <<<"$rest"
        if [ "${fields[1]}" = "$parent" ]; then
            f=${f#/proc/}
            echo "${f%/stat}"
        fi
    done
}

# utime+stime in clock ticks of one pid (all its threads), or "gone".
pid_ticks() {
    local line rest fields
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || { echo "gone"; return; }
    rest=${line##*) }
    read -r -a fields <<<"$rest"
    # after "pid (comm) " index 0 is the state (field 3), so utime (field 14) and
    # stime (field 15) are at indexes 11 and 12
    echo $((fields[11] + fields[12]))
}

# CPU ticks of a proxy: the process plus its direct children (nginx: master + workers).
# Prints "<ticks> <sorted pid list>" so that callers can check the set did not change.
proxy_ticks() {
    local root=$1 total=0 t pids p
    pids=$(
        echo "$root"
        child_pids "$root"
    )
    pids=$(echo "$pids" | sort -n | tr '\n' ',')
    for p in ${pids//,/ }; do
        t=$(pid_ticks "$p")
        [ "$t" = "gone" ] && die "process $p (of proxy pid $root) vanished during measurement"
        total=$((total + t))
    done
    echo "$total $pids"
}

# Free TCP ports on 127.0.0.1 (bound together so they are distinct, then released).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# Wait (bounded) until URL answers 200 with the backend body through it.
wait_http() {
    local url=$1 pid=$2 what=$3 i body
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$what exited during startup; see its log in $RESULTS"
        if body=$(curl -ks --max-time 2 -o - -w '' "$url" 2>/dev/null) && [ "$body" = "$BACKEND_BODY" ]; then
            return 0
        fi
        sleep 0.1
    done
    die "$what did not answer 200 with the backend body on $url within 10 s"
}

# ---------------------------------------------------------------------------------------------
# Ports, certificate, configurations.

read -r BACKEND_PORT J_PLAIN J_TLS N_PLAIN N_TLS WS_BACKEND_PORT <<<"$(free_ports 6)"

# Fixed 100-byte body: these 99 characters plus "\n".
BACKEND_BODY="Hello from the Junction benchmark backend: this fixed text/plain body is exactly one hundred bytes."

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 \
    || die "openssl could not make the ECDSA P-256 certificate"

# When run as root, nginx workers would switch to nobody/www-data; keep them as the caller so
# that they can use the temp prefix.
NGINX_USER_LINE=""
if [ "$(id -u)" = 0 ]; then NGINX_USER_LINE="user root;"; fi

nginx_common_http() {
    # temp paths inside the instance prefix so that nothing touches /var/lib/nginx
    cat <<EOF
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    access_log off;
    server_tokens off;
EOF
}

mkdir -p "$WORK/backend/logs" "$WORK/nginx/logs"

cat >"$WORK/backend/nginx.conf" <<EOF
# Shared backend for both proxies: a fixed ~100-byte 200 answer.
$NGINX_USER_LINE
worker_processes 1;
pid $WORK/backend/nginx.pid;
error_log $WORK/backend/logs/error.log warn;
events { worker_connections 4096; }
http {
$(nginx_common_http "$WORK/backend")
    keepalive_requests 100000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        location / {
            default_type text/plain;
            return 200 "$BACKEND_BODY\n";
        }
    }
}
EOF

cat >"$WORK/nginx/nginx.conf" <<EOF
# nginx as the reference reverse proxy: same listeners, backend and forwarded headers as Junction.
$NGINX_USER_LINE
worker_processes $THREADS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
$(nginx_common_http "$WORK/nginx")
    keepalive_requests 100000;
    keepalive_timeout 75s;
    upstream wsbackend {
        server 127.0.0.1:$WS_BACKEND_PORT;
    }
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:$N_PLAIN;
        listen 127.0.0.1:$N_TLS ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Request-ID \$request_id;
            # Junction also returns the request id to the client
            add_header X-Request-ID \$request_id always;
        }
        location /websocket {
            # The idle-WebSocket case: nginx's documented upgrade proxying, an idle timeout like Junction's.
            proxy_pass http://wsbackend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
    }
}
EOF

cat >"$WORK/junction.yaml" <<EOF
# Junction under test: same listeners, backend and worker count as the nginx proxy.
threads: $THREADS
listeners:
  - name: plain
    address: 127.0.0.1:$J_PLAIN
    http2: false
  - name: tls
    address: 127.0.0.1:$J_TLS
    http2: true
    tls:
      certificates:
        - cert: $WORK/cert.pem
          key: $WORK/key.pem
      min_version: "1.2"
routes:
  - name: websocket
    match:
      path_prefix: /websocket
    pool: wsbackend
  - name: all
    pool: backend
pools:
  backend:
    backends:
      - address: 127.0.0.1:$BACKEND_PORT
  wsbackend:
    backends:
      - address: 127.0.0.1:$WS_BACKEND_PORT
logging:
  access_log: off
  level: warning
EOF

cp "$WORK/backend/nginx.conf" "$RESULTS/backend-nginx.conf"
cp "$WORK/nginx/nginx.conf" "$RESULTS/proxy-nginx.conf"
cp "$WORK/junction.yaml" "$RESULTS/junction.yaml"

"$NGINX_BIN" -t -q -p "$WORK/backend" -c "$WORK/backend/nginx.conf" 2>"$RESULTS/backend-nginx-t.log" \
    || { cat "$RESULTS/backend-nginx-t.log" >&2; die "backend nginx config is invalid"; }
"$NGINX_BIN" -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$RESULTS/proxy-nginx-t.log" \
    || { cat "$RESULTS/proxy-nginx-t.log" >&2; die "proxy nginx config is invalid"; }
"$JUNCTION" check --config "$WORK/junction.yaml" >"$RESULTS/junction-check.log" 2>&1 \
    || { cat "$RESULTS/junction-check.log" >&2; die "junction check rejected the generated config"; }

# ---------------------------------------------------------------------------------------------
# Start the backend and both proxies; they run for the whole benchmark.

taskset -c "$LOAD_CPU" "$NGINX_BIN" -p "$WORK/backend" -c "$WORK/backend/nginx.conf" -g "daemon off;" \
    >"$RESULTS/backend-nginx.log" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")

if [ "$WEBSOCKETS" -gt 0 ]; then
    taskset -c "$LOAD_CPU" python3 "$SCRIPT_DIR/ws_idle.py" serve "$WS_BACKEND_PORT" \
        >"$WORK/ws-backend.out" 2>"$RESULTS/ws-backend.log" &
    WS_BACKEND_PID=$!
    PIDS+=("$WS_BACKEND_PID")
fi

taskset -c "$PROXY_CPU" "$NGINX_BIN" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g "daemon off;" \
    >"$RESULTS/proxy-nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

taskset -c "$PROXY_CPU" "$JUNCTION" run --config "$WORK/junction.yaml" >"$RESULTS/junction.log" 2>&1 &
JUNCTION_PID=$!
PIDS+=("$JUNCTION_PID")

wait_http "http://127.0.0.1:$BACKEND_PORT/" "$BACKEND_PID" "backend nginx"
wait_http "http://127.0.0.1:$N_PLAIN/" "$NGINX_PID" "nginx (plain)"
wait_http "https://127.0.0.1:$N_TLS/" "$NGINX_PID" "nginx (TLS)"
wait_http "http://127.0.0.1:$J_PLAIN/" "$JUNCTION_PID" "junction (plain)"
wait_http "https://127.0.0.1:$J_TLS/" "$JUNCTION_PID" "junction (TLS)"

if [ "$WEBSOCKETS" -gt 0 ]; then
    for ((i = 0; i < 100; i++)); do
        grep -q '^ready' "$WORK/ws-backend.out" 2>/dev/null && break
        kill -0 "$WS_BACKEND_PID" 2>/dev/null || die "the WebSocket backend exited; see $RESULTS/ws-backend.log"
        sleep 0.1
    done
    grep -q '^ready' "$WORK/ws-backend.out" || die "the WebSocket backend did not start within 10 s"
fi

NGINX_WORKERS=$(child_pids "$NGINX_PID" | wc -l)
[ "$NGINX_WORKERS" -eq "$THREADS" ] || die "proxy nginx has $NGINX_WORKERS worker processes, expected $THREADS"

url_of() { # proxy case
    case "$1-$2" in
        junction-plain) echo "http://127.0.0.1:$J_PLAIN/" ;;
        junction-tls | junction-h2) echo "https://127.0.0.1:$J_TLS/" ;;
        nginx-plain) echo "http://127.0.0.1:$N_PLAIN/" ;;
        nginx-tls | nginx-h2) echo "https://127.0.0.1:$N_TLS/" ;;
    esac
}
pid_of() { if [ "$1" = junction ]; then echo "$JUNCTION_PID"; else echo "$NGINX_PID"; fi; }

# p99 from wrk's latency distribution, in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "ms") n += 0; else if (u == "s") n *= 1000;
        else if (u == "m") n *= 60000; else { print "bad"; exit }
        printf "%.3f", n }'
}

CSV="$RESULTS/runs.csv"
echo "round,proxy,case,requests,wall_s,req_per_s,p99_ms,cpu_s,req_per_cpu_s,cpu_util" >"$CSV"

# One wrk run through one proxy; appends a CSV line unless it is a warm-up.
run_case() { # round proxy case duration
    local round=$1 proxy=$2 kase=$3 dur=$4 url pid out before after t0 t1
    local b_ticks a_ticks b_set a_set reqs rps p99raw p99 cpu_s wall rpc util
    url=$(url_of "$proxy" "$kase")
    pid=$(pid_of "$proxy")
    out="$RESULTS/$round-$proxy-$kase.txt"
    kill -0 "$pid" 2>/dev/null || die "$proxy is no longer running (see $RESULTS/*.log)"

    before=$(proxy_ticks "$pid")
    t0=$(date +%s.%N)
    if [ "$kase" = h2 ]; then
        # HTTP/2 over TLS: h2load, H2_CONNECTIONS connections with H2_STREAMS streams each.
        taskset -c "$LOAD_CPU" h2load -t1 -c"$H2_CONNECTIONS" -m"$H2_STREAMS" -D"$dur" \
            --log-file="$out.log" "$url" >"$out" 2>&1 \
            || { cat "$out" >&2; die "h2load failed for $proxy $kase (round $round)"; }
    else
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${dur}s" --latency "$url" >"$out" 2>&1 \
            || { cat "$out" >&2; die "wrk failed for $proxy $kase (round $round)"; }
    fi
    t1=$(date +%s.%N)
    after=$(proxy_ticks "$pid")

    read -r b_ticks b_set <<<"$before"
    read -r a_ticks a_set <<<"$after"
    [ "$b_set" = "$a_set" ] || die "$proxy process set changed during the run ($b_set -> $a_set): a worker died?"

    if [ "$kase" = h2 ]; then
        if ! grep -q "^Application protocol: h2" "$out"; then
            cat "$out" >&2
            die "$proxy did not negotiate h2 (raw output: $out)"
        fi
        # Every request must succeed with a 2xx.
        if ! awk '/^requests:/ {ok = ($2 == $8 && $10 == 0 && $12 == 0 && $14 == 0)} END {exit !ok}' "$out" \
            || ! awk '/^status codes:/ {ok = ($5 == 0 && $7 == 0 && $9 == 0)} END {exit !ok}' "$out"; then
            cat "$out" >&2
            die "$proxy $kase (round $round): h2load saw failed or non-2xx requests (raw output: $out)"
        fi
        reqs=$(awk '/^requests:/ {print $8; exit}' "$out")
        rps=$(awk '/^finished in/ {print $4; exit}' "$out")
        rps=${rps%,}
        # p99 from h2load's per-request log (third column: microseconds).
        p99raw=$(awk '{print $3}' "$out.log" | sort -n | awk '{v[NR] = $1} END {if (NR) printf "%.3fms", v[int(NR * 0.99)] / 1000}')
        rm -f "$out.log"
    else
        if grep -q "Non-2xx or 3xx responses" "$out"; then
            cat "$out" >&2
            die "$proxy $kase (round $round): wrk saw non-2xx/3xx responses (raw output: $out)"
        fi
        if grep -q "Socket errors" "$out"; then
            cat "$out" >&2
            die "$proxy $kase (round $round): wrk saw socket errors (raw output: $out)"
        fi
        reqs=$(awk '$2 == "requests" && $3 == "in" {print $1; exit}' "$out")
        rps=$(awk '$1 == "Requests/sec:" {print $2; exit}' "$out")
        p99raw=$(awk 'f && $1 == "99%" {print $2; exit} /Latency Distribution/ {f = 1}' "$out")
    fi
    if [ -z "$reqs" ] || [ -z "$rps" ] || [ -z "$p99raw" ]; then
        cat "$out" >&2
        die "could not parse the load generator's output for $proxy $kase (round $round): $out"
    fi
    [ "$reqs" -gt 0 ] || die "$proxy $kase (round $round): zero requests completed"
    p99=$(to_ms "$p99raw")
    [ "$p99" != bad ] || die "unknown latency unit in '$p99raw' ($out)"

    cpu_s=$(awk -v t=$((a_ticks - b_ticks)) -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
    rpc=$(awk -v r="$reqs" -v c="$cpu_s" 'BEGIN {if (c > 0) printf "%.0f", r / c; else print "inf"}')
    util=$(awk -v c="$cpu_s" -v w="$wall" 'BEGIN {printf "%.0f%%", 100 * c / w}')

    if [ "$round" = warmup ]; then
        printf '  warm-up  %-8s %-5s %10s req/s\n' "$proxy" "$kase" "$rps"
        return
    fi
    echo "$round,$proxy,$kase,$reqs,$wall,$rps,$p99,$cpu_s,$rpc,$util" >>"$CSV"
    printf '  round %-2s %-8s %-5s %10s req/s  p99 %8s ms  proxy CPU %6s s (%4s)  %8s req/CPU-s\n' \
        "$round" "$proxy" "$kase" "$rps" "$p99" "$cpu_s" "$util" "$rpc"
}

# ---------------------------------------------------------------------------------------------
# Header, then the interleaved runs.

JUNCTION_VERSION=$("$JUNCTION" version 2>&1 | head -1)
NGINX_VERSION=$("$NGINX_BIN" -v 2>&1 | head -1)
WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 {print $1, $2}')  # wrk -v exits 1
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
KERNEL=$(uname -r)
CMDLINE="Benchmarks/run.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"

{
    echo "# Junction vs nginx"
    echo
    echo "- command: \`$CMDLINE\`"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: nproc=$NCPU, $CPU_MODEL, Linux $KERNEL"
    echo "- versions: junction: $JUNCTION_VERSION; $NGINX_VERSION; $WRK_VERSION"
    echo "- setup: proxies pinned to core $PROXY_CPU with $THREADS worker(s) each" \
        "(junction threads: $THREADS, nginx worker_processes $THREADS); backend nginx (1 worker)" \
        "and wrk (-t1 -c$CONNECTIONS -d${DURATION}s) pinned to core $LOAD_CPU;" \
        "~100-byte 200 body; HTTP/1.1 keep-alive; TLS: ECDSA P-256;" \
        "h2: h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS over TLS (ALPN h2), HTTP/1.1 to the backend"
    echo "- rounds: $ROUNDS, order per round: junction-plain, nginx-plain, junction-tls, nginx-tls, junction-h2, nginx-h2;" \
        "median over rounds"
    echo "- load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews results)"
    echo "- raw output: Benchmarks/results/$STAMP/"
} >"$RESULTS/header.md"
cat "$RESULTS/header.md"
echo

CASES=(plain tls h2)
PROXIES=(junction nginx)

if [ "$WARMUP" -gt 0 ]; then
    echo "Warm-up (${WARMUP}s per case, not counted):"
    for kase in "${CASES[@]}"; do
        for proxy in "${PROXIES[@]}"; do
            run_case warmup "$proxy" "$kase" "$WARMUP"
        done
    done
fi

echo "Runs:"
for ((r = 1; r <= ROUNDS; r++)); do
    for kase in "${CASES[@]}"; do
        for proxy in "${PROXIES[@]}"; do
            run_case "$r" "$proxy" "$kase" "$DURATION"
        done
    done
done
echo

# ---------------------------------------------------------------------------------------------
# Idle WebSockets: the proxy's resident memory with N tunnels open and idle, per tunnel.

# Resident memory of a proxy in KiB: the process plus its direct children (nginx: master + workers).
proxy_rss_kb() {
    local total=0 p v
    for p in $1 $(child_pids "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

WS_CSV="$RESULTS/websockets.csv"
echo "proxy,tunnels,rss_before_kb,rss_open_kb,bytes_per_tunnel" >"$WS_CSV"

measure_idle_websockets() { # proxy
    local proxy=$1 pid url before open line i hold_pid per
    pid=$(pid_of "$proxy")
    case "$proxy" in
        junction) url="ws://127.0.0.1:$J_PLAIN/websocket" ;;
        nginx) url="ws://127.0.0.1:$N_PLAIN/websocket" ;;
    esac
    before=$(proxy_rss_kb "$pid")
    rm -f "$WORK/hold-in" "$WORK/hold-out"
    mkfifo "$WORK/hold-in"
    taskset -c "$LOAD_CPU" python3 "$SCRIPT_DIR/ws_idle.py" hold "$url" "$WEBSOCKETS" \
        <"$WORK/hold-in" >"$WORK/hold-out" 2>"$RESULTS/ws-hold-$proxy.log" &
    hold_pid=$!
    exec 7>"$WORK/hold-in"
    line=""
    for ((i = 0; i < 1200; i++)); do
        line=$(grep '^ready' "$WORK/hold-out" 2>/dev/null || true)
        [ -n "$line" ] && break
        kill -0 "$hold_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ "$line" = "ready $WEBSOCKETS" ] || {
        exec 7>&-
        die "$proxy: $WEBSOCKETS WebSockets did not all open within 120 s ($line); see $RESULTS/ws-hold-$proxy.log"
    }
    sleep 2 # let allocations settle
    open=$(proxy_rss_kb "$pid")
    echo close >&7
    exec 7>&-
    for ((i = 0; i < 300; i++)); do
        kill -0 "$hold_pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$hold_pid" || die "$proxy: the WebSocket client failed; see $RESULTS/ws-hold-$proxy.log"
    per=$(awk -v a="$open" -v b="$before" -v n="$WEBSOCKETS" 'BEGIN {printf "%.0f", (a - b) * 1024 / n}')
    echo "$proxy,$WEBSOCKETS,$before,$open,$per" >>"$WS_CSV"
    printf '  %-8s %6d idle WebSockets: RSS %8d KiB -> %8d KiB, %6d bytes per tunnel\n' \
        "$proxy" "$WEBSOCKETS" "$before" "$open" "$per"
}

if [ "$WEBSOCKETS" -gt 0 ]; then
    echo "Idle WebSockets ($WEBSOCKETS through each proxy, one message each, then held):"
    for proxy in "${PROXIES[@]}"; do
        measure_idle_websockets "$proxy"
    done
    echo
fi

# ---------------------------------------------------------------------------------------------
# Summary: medians per case and proxy.

median() { # proxy case column
    awk -F, -v p="$1" -v c="$2" -v col="$3" \
        'NR > 1 && $2 == p && $3 == c {print $col}' "$CSV" | sort -g |
        awk '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit}
             if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

{
    echo "| case | Junction req/s | nginx req/s | ratio | Junction p99 | nginx p99 | Junction req per CPU-s | nginx req per CPU-s | ratio per CPU-s |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for kase in "${CASES[@]}"; do
        j_rps=$(median junction "$kase" 6); n_rps=$(median nginx "$kase" 6)
        j_p99=$(median junction "$kase" 7); n_p99=$(median nginx "$kase" 7)
        j_rpc=$(median junction "$kase" 9); n_rpc=$(median nginx "$kase" 9)
        case "$kase" in tls) label="TLS (HTTP/1.1)" ;; h2) label="TLS HTTP/2 (h2load)" ;; *) label="plain HTTP/1.1" ;; esac
        awk -v l="$label" -v jr="$j_rps" -v nr="$n_rps" -v jp="$j_p99" -v np="$n_p99" \
            -v jc="$j_rpc" -v nc="$n_rpc" 'BEGIN {
            printf "| %s | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %.0f | %.0f | %.2f |\n",
                l, jr, nr, (nr > 0 ? jr / nr : 0), jp, np, jc, nc, (nc > 0 ? jc / nc : 0) }'
    done
    if [ "$WEBSOCKETS" -gt 0 ]; then
        awk -F, 'NR > 1 {v[$1] = $5; n = $2} END {
            printf "| %d idle WebSockets | | | | | | %s bytes each | %s bytes each | %.2f |\n",
                n, v["junction"], v["nginx"], (v["junction"] > 0 ? v["nginx"] / v["junction"] : 0) }' "$WS_CSV"
    fi
    echo
    echo "Medians over $ROUNDS round(s) of ${DURATION}s; ratio = Junction / nginx (higher is better for" \
        "Junction; for p99 lower is better). req per CPU-s = requests completed / (utime+stime of" \
        "the proxy's processes during the run)."
    echo
    if [ "$WEBSOCKETS" -gt 0 ]; then
        echo "Idle WebSockets: the proxy's resident memory (all its processes) with $WEBSOCKETS tunnels open" \
            "minus before, per tunnel, after the throughput runs; its ratio is nginx / Junction (higher is" \
            "better for Junction)."
        echo
    fi
    echo "Per-run detail (proxy CPU util = proxy CPU-s / wall-s; 100% = the proxy's core was saturated):"
    echo
    echo "| round | proxy | case | requests | req/s | p99 ms | proxy CPU-s | proxy CPU util | req per CPU-s |"
    echo "|---:|---|---|---:|---:|---:|---:|---:|---:|"
    awk -F, 'NR > 1 {printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $6, $7, $8, $10, $9}' "$CSV"
} >"$RESULTS/table.md"

{ echo; echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"; } >>"$RESULTS/table.md"
cat "$RESULTS/header.md" "$RESULTS/table.md" >"$RESULTS/summary.md"
cat "$RESULTS/table.md"

# Anything the proxies complained about during the run.
for log in junction.log proxy-nginx.log backend-nginx.log; do
    if grep -qiE "error|warn|crit|alert|emerg" "$RESULTS/$log" 2>/dev/null; then
        echo
        echo "note: $log has warnings/errors:"
        grep -iE "error|warn|crit|alert|emerg" "$RESULTS/$log" | head -5
    fi
done
for log in "$WORK/nginx/logs/error.log" "$WORK/backend/logs/error.log"; do
    if [ -s "$log" ]; then
        cp "$log" "$RESULTS/$(basename "$(dirname "$(dirname "$log")")")-error.log"
        echo
        echo "note: $log is not empty (copied to $RESULTS):"
        head -5 "$log"
    fi
done
echo
echo "Saved: Benchmarks/results/$STAMP/summary.md (and raw wrk outputs, configs, runs.csv)"
