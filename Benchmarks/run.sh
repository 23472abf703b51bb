#!/usr/bin/env bash
# Junction vs nginx, HAProxy, Caddy and nghttpx, side by side, in one run: each proxy in front of
# one shared nginx backend, plain HTTP/1.1 and TLS HTTP/1.1 (wrk), TLS HTTP/2 at 10x10 and 50x10
# (h2load), WebSocket echo plain and over TLS (ws_echo.c), large uploads (curl, to upload_sink.c),
# new TLS connections (tls_handshakes.c), interleaved; before those, idle WebSockets plain and over
# TLS (memory per tunnel, in processes that have served only the readiness probes).
# See Benchmarks/README.md.
#
#   Benchmarks/run.sh [--duration 10] [--rounds 3] [--connections 50] [--threads 1]
#                     [--warmup 2] [--websockets 2000] [--upload-mib 1024] [--junction PATH]
#                     [--proxies junction,nginx,haproxy,caddy,nghttpx]
#                     [--cases plain,tls,h2,h2-50,ws-echo,ws-echo-tls,upload,handshake,ws-idle,ws-idle-tls]
#                     [--junction-limits]
#
# --junction-limits turns every per-client limit of Junction on, too high to refuse anything: run
# it and a run without to see what counting costs.
# Core layout (2-core machine): the proxy under test on core 0, the load and the backends on core 1.
# h2 is h2load with 10 connections x 10 streams, h2-50 with 50 x 10; ws-echo-tls is ws-echo through
# the proxy's TLS listener. nghttpx only takes part in h2 and h2-50. Where `perf stat` can count
# cycles:u,cycles:k (not in most VMs), each measured run also records the proxy's cycles per unit.
# Needs: bash, awk, taskset, openssl, curl, wrk, h2load, nginx, haproxy, caddy, nghttpx, cc (and
# libssl-dev for handshake and ws-echo-tls), python3 with `websockets` (only those the chosen
# proxies and cases need); perf is optional.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ORIG_ARGS=("$@")

DURATION=10
ROUNDS=3
CONNECTIONS=50
H2_CONNECTIONS=10
H2_STREAMS=10
H2_WIDE_CONNECTIONS=50 # the h2-50 case: h2load -c50 -m10 (h2 stays 10 x 10, comparable with older runs)
ECHO_TUNNELS=100
ECHO_SIZE=128
THREADS=1
WARMUP=2
WEBSOCKETS=2000
UPLOAD_MIB=1024
UPLOAD_MAX=1000     # uploads per run at most (the run ends at --duration anyway)
HS_CONNECTIONS=16   # handshake case: TLS connections in flight
JUNCTION="$SCRIPT_DIR/../.build/release/junction"
PROXIES_ARG="junction,nginx,haproxy,caddy,nghttpx"
CASES_ARG="plain,tls,h2,h2-50,ws-echo,ws-echo-tls,upload,handshake,ws-idle,ws-idle-tls"
PROXIES_GIVEN=0
PROXY_CPU=0
LOAD_CPU=1

ALL_PROXIES=(junction nginx haproxy caddy nghttpx)
ALL_CASES=(plain tls h2 h2-50 ws-echo ws-echo-tls upload handshake ws-idle ws-idle-tls)
UPLOAD_FILE="" # the upload case's body, in /dev/shm (removed on exit)

usage() {
    awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"
    exit 2
}

die() {
    echo "run.sh: error: $*" >&2
    exit 1
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
    case "$1" in
        --duration | --rounds | --connections | --threads | --warmup | --websockets | --upload-mib | --junction | --proxies | --cases)
            [ $# -ge 2 ] || die "$1 needs a value" ;;
    esac
    case "$1" in
        --duration) DURATION=${2:-}; shift 2 ;;
        --rounds) ROUNDS=${2:-}; shift 2 ;;
        --connections) CONNECTIONS=${2:-}; shift 2 ;;
        --threads) THREADS=${2:-}; shift 2 ;;
        --warmup) WARMUP=${2:-}; shift 2 ;;
        --websockets) WEBSOCKETS=${2:-}; shift 2 ;;
        --upload-mib) UPLOAD_MIB=${2:-}; shift 2 ;;
        --junction) JUNCTION=${2:-}; shift 2 ;;
        --proxies) PROXIES_ARG=${2:-}; PROXIES_GIVEN=1; shift 2 ;;
        --cases) CASES_ARG=${2:-}; shift 2 ;;
        --junction-limits) JUNCTION_LIMITS=1; shift ;;
        -h | --help) usage ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage ;;
    esac
done

for v in DURATION ROUNDS CONNECTIONS THREADS WARMUP WEBSOCKETS UPLOAD_MIB; do
    opt=${v,,}
    is_uint "${!v}" || die "--${opt//_/-} must be a non-negative integer, got '${!v}'"
done
[ "$DURATION" -ge 1 ] || die "--duration must be >= 1"
[ "$ROUNDS" -ge 1 ] || die "--rounds must be >= 1"
[ "$CONNECTIONS" -ge 1 ] || die "--connections must be >= 1"
[ "$THREADS" -ge 1 ] || die "--threads must be >= 1 (the same worker count is given to every proxy)"
[ "$UPLOAD_MIB" -ge 1 ] || die "--upload-mib must be >= 1"
[ "$UPLOAD_MIB" -le 65536 ] || die "--upload-mib is at most 65536 (64 GiB)"

# --proxies / --cases: comma-separated subsets; the run order stays the canonical one.
declare -A WANT_PROXY=() WANT_CASE=()
parse_list() { # option value assoc-name allowed...
    local opt=$1 value=$2 item ok a
    local -n want=$3
    local -a items
    shift 3
    [ -n "$value" ] || die "$opt needs at least one of: $(IFS=,; echo "$*")"
    IFS=, read -r -a items <<<"$value"
    for item in "${items[@]}"; do
        ok=0
        for a in "$@"; do [ "$item" = "$a" ] && ok=1; done
        [ "$ok" = 1 ] || die "$opt: unknown value '$item' (choose from $(IFS=,; echo "$*"))"
        [ -z "${want[$item]:-}" ] || die "$opt: '$item' is listed twice"
        want[$item]=1
    done
}
parse_list --proxies "$PROXIES_ARG" WANT_PROXY "${ALL_PROXIES[@]}"
parse_list --cases "$CASES_ARG" WANT_CASE "${ALL_CASES[@]}"

# Which proxy takes part in which case: nghttpx only fronts HTTP/2 (h2 and h2-50).
applies() { [ "$1" != nghttpx ] || [ "$2" = h2 ] || [ "$2" = h2-50 ]; } # proxy case

# The measured throughput cases (in run order) and the idle-WebSocket cases, as chosen.
RUN_CASES=()
for kase in plain tls h2 h2-50 ws-echo ws-echo-tls upload handshake; do
    [ -n "${WANT_CASE[$kase]:-}" ] && RUN_CASES+=("$kase")
done
IDLE_CASES=() # ws-idle (plain listener) and ws-idle-tls (TLS listener), held open at the same time
for kase in ws-idle ws-idle-tls; do
    if [ -n "${WANT_CASE[$kase]:-}" ] && [ "$WEBSOCKETS" -gt 0 ]; then IDLE_CASES+=("$kase"); fi
done
IDLE_WS=0
if [ "${#IDLE_CASES[@]}" -gt 0 ]; then IDLE_WS=1; fi
has_case() { local k; for k in "${RUN_CASES[@]}"; do [ "$k" = "$1" ] && return 0; done; return 1; }

# The proxies that run: chosen, and with at least one chosen case that applies to them.
PROXIES=()
for proxy in "${ALL_PROXIES[@]}"; do
    [ -n "${WANT_PROXY[$proxy]:-}" ] || continue
    used=0
    for kase in "${RUN_CASES[@]}"; do applies "$proxy" "$kase" && used=1; done
    if [ "$IDLE_WS" = 1 ] && applies "$proxy" ws-idle; then used=1; fi
    if [ "$used" = 1 ]; then
        PROXIES+=("$proxy")
    elif [ "$PROXIES_GIVEN" = 1 ]; then
        echo "run.sh: note: $proxy has no case to run among --cases $CASES_ARG (nghttpx only runs h2 and h2-50); skipped" >&2
    fi
done
[ "${#PROXIES[@]}" -gt 0 ] || die "nothing to run: no chosen proxy applies to the chosen cases (--websockets 0 skips ws-idle)"
has_proxy() { local p; for p in "${PROXIES[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

if has_proxy junction; then
    if [ ! -x "$JUNCTION" ]; then
        die "Junction binary not found or not executable: $JUNCTION
Build it first at the repository root:   swift build -c release -Xswiftc -enforce-exclusivity=unchecked
or pass another binary with --junction PATH."
    fi
    JUNCTION=$(cd "$(dirname "$JUNCTION")" && pwd)/$(basename "$JUNCTION")
fi

need_tool() { # tool debian-package why
    command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed (Debian: apt-get install -y $2); $3"
}
need_tool nginx nginx "it is the backend"
for tool in openssl taskset curl python3 awk; do
    need_tool "$tool" "openssl util-linux curl python3 gawk" "the script needs it"
done
if has_case plain || has_case tls; then need_tool wrk wrk "the plain and tls cases need it (or pass --cases without them)"; fi
if has_case h2 || has_case h2-50; then
    need_tool h2load nghttp2-client "the h2 and h2-50 cases need it (or pass --cases without them)"
fi
if has_case ws-echo; then need_tool cc gcc "the ws-echo case builds Benchmarks/ws_echo.c (or pass --cases without ws-echo)"; fi
if has_case ws-echo-tls; then
    need_tool cc gcc "the ws-echo-tls case builds Benchmarks/ws_echo.c with OpenSSL (or pass --cases without ws-echo-tls)"
fi
if has_case upload; then need_tool cc gcc "the upload case builds Benchmarks/upload_sink.c (or pass --cases without upload)"; fi
if has_case handshake; then
    need_tool cc gcc "the handshake case builds Benchmarks/tls_handshakes.c (or pass --cases without handshake)"
fi
if has_proxy haproxy; then need_tool haproxy haproxy "or pass --proxies without haproxy"; fi
if has_proxy caddy; then need_tool caddy caddy "or pass --proxies without caddy"; fi
if has_proxy nghttpx; then need_tool nghttpx nghttp2-proxy "or pass --proxies without nghttpx"; fi
if [ "$IDLE_WS" = 1 ]; then
    python3 -c 'import websockets' 2>/dev/null \
        || die "the idle-WebSocket case needs Python's websockets (python3 -m pip install websockets), or pass --websockets 0"
    [ "$WEBSOCKETS" -le 4000 ] \
        || die "--websockets is at most 4000 (nginx has worker_connections 16384, two per tunnel, plain and TLS held at once)"
    IDLE_FDS=$((WEBSOCKETS * 2 * ${#IDLE_CASES[@]} + 100))
    [ "$(ulimit -n)" -ge "$IDLE_FDS" ] \
        || die "--websockets $WEBSOCKETS (${IDLE_CASES[*]}) needs an open-file limit of at least $IDLE_FDS (ulimit -n is $(ulimit -n))"
fi
NGINX_BIN=$(command -v nginx)
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || die "needs at least 2 CPU cores (proxy on core $PROXY_CPU, load + backends on core $LOAD_CPU); have $NCPU"
CLK_TCK=$(getconf CLK_TCK)

# perf stat cycles:u,cycles:k: only where the machine counts them (a VM usually exposes no PMU, and
# perf then prints <not supported>). Probed once; without it the cycle columns stay empty.
PERF_OK=0
PERF_STATE="perf is not installed"
if command -v perf >/dev/null 2>&1; then
    PERF_STATE="perf stat cannot count cycles:u,cycles:k here ($(
        timeout 20 perf stat -x, -e cycles:u,cycles:k -- true 2>&1 >/dev/null | awk -F, 'NR == 1 {print $1}' || true
    ); a VM without a PMU, or kernel.perf_event_paranoid)"
    if timeout 20 perf stat -x, -e cycles:u,cycles:k -- true 2>&1 >/dev/null \
        | awk -F, '$1 ~ /^[0-9]+$/ && ($3 ~ /^cycles:u/ || $3 ~ /^cycles:k/) {n++} END {exit !(n == 2)}'; then
        PERF_OK=1
        PERF_STATE="perf stat -e cycles:u,cycles:k -p <the proxy's pids> around each measured run"
    fi
fi
[ "$PERF_OK" = 1 ] || echo "run.sh: note: $PERF_STATE; no cycle counts, CPU time only" >&2

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$SCRIPT_DIR/results/$STAMP"
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/junction-bench.XXXXXX)
chmod 755 "$WORK"

# ---------------------------------------------------------------------------------------------
# Process bookkeeping and cleanup (runs on every exit, including failures and Ctrl-C).

PIDS=()              # every long-lived process this script started (proxies, backends, clients)
declare -A PID_START=() # pid -> start time (field 22 of /proc/<pid>/stat), so a reused pid is never hit

# Start time of a pid in clock ticks since boot, or "gone".
proc_start() {
    local line rest fields
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || { echo "gone"; return; }
    rest=${line##*) }
    read -r -a fields <<<"$rest"
    echo "${fields[19]}"
}

track() { # pid
    PIDS+=("$1")
    PID_START[$1]=$(proc_start "$1")
}

# True while pid is still the process recorded in PID_START and has not exited (zombie).
still_ours() {
    local line rest fields
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    rest=${line##*) }
    read -r -a fields <<<"$rest"
    [ "${fields[0]}" != Z ] && [ "${fields[19]}" = "${PID_START[$1]:-none}" ]
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid i d
    local -a tree=()
    # Every descendant first (nginx workers, the nghttpx worker), so none outlives its parent.
    for pid in "${PIDS[@]}"; do
        still_ours "$pid" || continue
        for d in $(descendant_pids "$pid"); do
            PID_START[$d]=$(proc_start "$d")
            tree+=("$d")
        done
    done
    for pid in "${PIDS[@]}"; do
        still_ours "$pid" && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            still_ours "$pid" || break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if still_ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
    done
    for d in "${tree[@]}"; do
        if still_ours "$d"; then kill -KILL "$d" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
    [ -z "$UPLOAD_FILE" ] || rm -f "$UPLOAD_FILE"
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

# Every descendant of a pid: children, grandchildren, ... (one scan of /proc).
descendant_pids() {
    local f line rest fields pid p c
    local -A kids=()
    local -a queue=("$1")
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        rest=${line##*) }
        read -r -a fields <<<"$rest"
        pid=${f#/proc/}
        kids[${fields[1]}]+="${pid%/stat} "
    done
    while [ "${#queue[@]}" -gt 0 ]; do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        for c in ${kids[$p]:-}; do
            echo "$c"
            queue+=("$c")
        done
    done
}

# utime and stime in clock ticks of one pid (all its threads), as "USER SYSTEM", or "gone".
pid_ticks() {
    local line rest fields
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || { echo "gone"; return; }
    rest=${line##*) }
    read -r -a fields <<<"$rest"
    # after "pid (comm) " index 0 is the state (field 3), so utime (field 14) and
    # stime (field 15) are at indexes 11 and 12
    echo "${fields[11]} ${fields[12]}"
}

# CPU ticks of a proxy: the process plus all its descendants (nginx: master + workers; nghttpx:
# main + worker process). Prints "<user ticks> <system ticks> <sorted pid list>" so that callers
# can check the set did not change.
proxy_ticks() {
    local root=$1 user=0 system=0 t pids p
    pids=$(
        echo "$root"
        descendant_pids "$root"
    )
    pids=$(echo "$pids" | sort -n | tr '\n' ',')
    for p in ${pids//,/ }; do
        t=$(pid_ticks "$p")
        [ "$t" = "gone" ] && die "process $p (of proxy pid $root) vanished during measurement"
        user=$((user + ${t% *}))
        system=$((system + ${t#* }))
    done
    echo "$user $system $pids"
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

# Wait (bounded) until URL answers 200 with the backend body through it; with a fourth argument
# "h2", the answer must also come over HTTP/2 (ALPN h2).
wait_http() {
    local url=$1 pid=$2 what=$3 proto=${4:-} i body out
    local -a flags=()
    [ "$proto" = h2 ] && flags=(--http2)
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$what exited during startup; see its log in $RESULTS"
        if out=$(curl -ks "${flags[@]}" --max-time 2 -o "$WORK/probe-body" -w '%{http_version}' "$url" 2>/dev/null) \
            && body=$(cat "$WORK/probe-body") && [ "$body" = "$BACKEND_BODY" ]; then
            [ "$proto" != h2 ] || [ "$out" = 2 ] \
                || die "$what answered on $url over HTTP/$out, not HTTP/2 (ALPN h2 not offered?)"
            return 0
        fi
        sleep 0.1
    done
    die "$what did not answer 200 with the backend body on $url within 10 s"
}

# ---------------------------------------------------------------------------------------------
# Ports, certificate, configurations.

read -r BACKEND_PORT J_PLAIN J_TLS N_PLAIN N_TLS H_PLAIN H_TLS C_PLAIN C_TLS X_TLS WS_BACKEND_PORT ECHO_PORT \
    UPLOAD_PORT <<<"$(free_ports 13)"

# Fixed 100-byte body: these 99 characters plus "\n".
BACKEND_BODY="Hello from the Junction benchmark backend: this fixed text/plain body is exactly one hundred bytes."

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 \
    || die "openssl could not make the ECDSA P-256 certificate"
# HAProxy's `crt` takes the certificate and its key in one file.
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/cert-key.pem"

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
# Shared backend for every proxy: a fixed ~100-byte 200 answer.
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
events { worker_connections 16384; }
http {
$(nginx_common_http "$WORK/nginx")
    keepalive_requests 100000;
    keepalive_timeout 75s;
    upstream wsbackend {
        server 127.0.0.1:$WS_BACKEND_PORT;
    }
    upstream wsecho {
        server 127.0.0.1:$ECHO_PORT;
    }
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 100000;
    }
    upstream upload {
        server 127.0.0.1:$UPLOAD_PORT;
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
        location /ws-echo {
            # The WebSocket echo case: the same, to the C echo backend.
            proxy_pass http://wsecho;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
        location /upload {
            # The upload case: as location /, to the upload sink, with no body size limit (nginx's
            # default is 1m). Request buffering stays at its default (on): nginx reads the whole
            # body into a temporary file in client_body_temp_path before it connects upstream.
            client_max_body_size 0;
            proxy_pass http://upload;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Request-ID \$request_id;
            add_header X-Request-ID \$request_id always;
        }
    }
}
EOF

cat >"$WORK/haproxy.cfg" <<EOF
# HAProxy as a second reference: same listeners, backend and forwarded headers as nginx.
global
    nbthread $THREADS
    maxconn 9000
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    maxconn 9000
    option forwardfor
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-keep-alive 75s
    timeout tunnel 1h
frontend proxy
    bind 127.0.0.1:$H_PLAIN
    bind 127.0.0.1:$H_TLS ssl crt $WORK/cert-key.pem alpn h2,http/1.1
    unique-id-format %[uuid()]
    acl websocket path_beg /websocket
    acl wsecho path_beg /ws-echo
    acl upload path_beg /upload
    use_backend wsbackend if websocket
    use_backend wsecho if wsecho
    use_backend upload if upload
    default_backend backend
backend backend
    # keep-alive to the backend, shared between client connections (nginx: upstream keepalive)
    http-reuse always
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Request-ID %[unique-id]
    # Junction also returns the request id to the client
    http-after-response set-header X-Request-ID %[unique-id]
    server backend 127.0.0.1:$BACKEND_PORT
backend upload
    # the upload case: as backend, to the upload sink; HAProxy streams request bodies (its default)
    # and has no body size limit
    http-reuse always
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Request-ID %[unique-id]
    http-after-response set-header X-Request-ID %[unique-id]
    server upload 127.0.0.1:$UPLOAD_PORT
backend wsbackend
    server wsbackend 127.0.0.1:$WS_BACKEND_PORT
backend wsecho
    server wsecho 127.0.0.1:$ECHO_PORT
EOF

# --junction-limits: every per-client limit on, set so high that none refuses anything (the cost
# of counting alone; every client of the load is 127.0.0.1, one entry, the worst case for sharing).
JUNCTION_LIMITS_YAML=""
[ "${JUNCTION_LIMITS:-0}" = 0 ] || JUNCTION_LIMITS_YAML="  per_client:
    max_connections: 1000000
    max_tunnels: 1000000
    requests_per_second: 1000000
    burst: 1000000"

cat >"$WORK/junction.yaml" <<EOF
# Junction under test: same listeners, backend and worker count as the other proxies.
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
  - name: wsecho
    match:
      path_prefix: /ws-echo
    pool: wsecho
  - name: upload
    match:
      path_prefix: /upload
    pool: upload
  - name: all
    pool: backend
pools:
  backend:
    backends:
      - address: 127.0.0.1:$BACKEND_PORT
  wsbackend:
    backends:
      - address: 127.0.0.1:$WS_BACKEND_PORT
  wsecho:
    backends:
      - address: 127.0.0.1:$ECHO_PORT
  upload:
    backends:
      - address: 127.0.0.1:$UPLOAD_PORT
limits:
  # the default (0: unlimited), spelled out for the upload case; bodies stream with backpressure
  max_body_bytes: 0
$JUNCTION_LIMITS_YAML
logging:
  access_log: off
  level: warning
EOF

# Caddy: the same two listeners (the same certificate and key as nginx, TLS 1.2 and 1.3, ALPN h2 and
# http/1.1; no HTTP/3), the same routes, and the forwarded headers nginx adds: Host (Caddy passes it
# on), X-Forwarded-For/-Proto/-Host (Caddy's defaults), X-Real-IP and X-Request-ID (a UUID, also
# returned on the response). No automatic HTTPS (no ACME, no redirects), no admin endpoint, no
# access log (Caddy has none unless asked; its own log at WARN). Keep-alive to the backends: the
# default transport, with up to 64 idle connections kept per backend as nginx's `keepalive 64`
# (Caddy's default of 32 made wrk -c50 open and close a backend connection for ~5% of requests).
# GOMAXPROCS=T sets its thread count; HOME and XDG_* point into the temporary directory, so that
# Caddy writes nothing outside it.
mkdir -p "$WORK/caddy/home" "$WORK/caddy/data" "$WORK/caddy/config" "$WORK/caddy/cache"
# (an array for env, not a function: a function started with & would run in a subshell, and $!
# would not be Caddy's pid)
CADDY_ENV=(HOME="$WORK/caddy/home" XDG_DATA_HOME="$WORK/caddy/data" XDG_CONFIG_HOME="$WORK/caddy/config"
    XDG_CACHE_HOME="$WORK/caddy/cache" GOMAXPROCS="$THREADS")
CADDY_UPSTREAM='			header_up X-Real-IP {remote_host}
			header_up X-Request-ID {http.request.uuid}
			transport http {
				keepalive_idle_conns_per_host 64
			}'
cat >"$WORK/caddy/Caddyfile" <<EOF
# Caddy as another reference: same listeners, backends and forwarded headers as nginx.
{
	admin off
	auto_https off
	ocsp_stapling off
	grace_period 1s
	log {
		output stderr
		level WARN
	}
	servers {
		protocols h1 h2
	}
}

(proxy) {
	handle /websocket* {
		reverse_proxy 127.0.0.1:$WS_BACKEND_PORT
	}
	handle /ws-echo* {
		reverse_proxy 127.0.0.1:$ECHO_PORT
	}
	handle /upload* {
		# Caddy streams request bodies (no buffer_requests) and has no body size limit
		reverse_proxy 127.0.0.1:$UPLOAD_PORT {
$CADDY_UPSTREAM
		}
		header X-Request-ID {http.request.uuid}
	}
	handle {
		reverse_proxy 127.0.0.1:$BACKEND_PORT {
$CADDY_UPSTREAM
		}
		# Junction also returns the request id to the client
		header X-Request-ID {http.request.uuid}
	}
}

http://:$C_PLAIN {
	bind 127.0.0.1
	import proxy
}

https://:$C_TLS {
	bind 127.0.0.1
	tls $WORK/cert.pem $WORK/key.pem {
		protocols tls1.2 tls1.3
	}
	import proxy
}
EOF

# nghttpx (HTTP/2 case only): TLS with ALPN h2 in front, HTTP/1.1 to the backend. An empty --conf
# so that /etc/nghttpx/nghttpx.conf (Debian's, with syslog) is not read. --workers=T worker threads;
# for T = 1, --single-thread instead: the worker process's main thread does it all (no acceptor thread).
: >"$WORK/nghttpx.conf"
NGHTTPX_THREADING="--workers=$THREADS"
[ "$THREADS" != 1 ] || NGHTTPX_THREADING="--single-thread"
NGHTTPX_ARGS=(
    --conf="$WORK/nghttpx.conf"
    --frontend="127.0.0.1,$X_TLS"
    --backend="127.0.0.1,$BACKEND_PORT"
    --no-ocsp
    --tls-min-proto-version=TLSv1.2
    --add-x-forwarded-for
    --no-via
    --log-level=WARN
    --errorlog-file=/dev/stderr
)
NGHTTPX_ARGS+=("$NGHTTPX_THREADING")
NGHTTPX_ARGS+=("$WORK/key.pem" "$WORK/cert.pem")

cp "$WORK/backend/nginx.conf" "$RESULTS/backend-nginx.conf"
has_proxy nginx && cp "$WORK/nginx/nginx.conf" "$RESULTS/proxy-nginx.conf"
has_proxy haproxy && cp "$WORK/haproxy.cfg" "$RESULTS/proxy-haproxy.cfg"
has_proxy junction && cp "$WORK/junction.yaml" "$RESULTS/junction.yaml"
has_proxy caddy && cp "$WORK/caddy/Caddyfile" "$RESULTS/proxy-caddy.Caddyfile"
has_proxy nghttpx && echo "nghttpx ${NGHTTPX_ARGS[*]}" >"$RESULTS/proxy-nghttpx.cmd"

"$NGINX_BIN" -t -q -p "$WORK/backend" -c "$WORK/backend/nginx.conf" 2>"$RESULTS/backend-nginx-t.log" \
    || { cat "$RESULTS/backend-nginx-t.log" >&2; die "backend nginx config is invalid"; }
if has_proxy nginx; then
    "$NGINX_BIN" -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$RESULTS/proxy-nginx-t.log" \
        || { cat "$RESULTS/proxy-nginx-t.log" >&2; die "proxy nginx config is invalid"; }
fi
if has_proxy haproxy; then
    haproxy -c -q -f "$WORK/haproxy.cfg" >"$RESULTS/proxy-haproxy-c.log" 2>&1 \
        || { cat "$RESULTS/proxy-haproxy-c.log" >&2; die "haproxy -c rejected the generated config"; }
fi
if has_proxy caddy; then
    env "${CADDY_ENV[@]}" caddy validate --config "$WORK/caddy/Caddyfile" --adapter caddyfile \
        >"$RESULTS/proxy-caddy-validate.log" 2>&1 \
        || { cat "$RESULTS/proxy-caddy-validate.log" >&2; die "caddy validate rejected the generated Caddyfile"; }
fi
if has_proxy junction; then
    "$JUNCTION" check --config "$WORK/junction.yaml" >"$RESULTS/junction-check.log" 2>&1 \
        || { cat "$RESULTS/junction-check.log" >&2; die "junction check rejected the generated config"; }
fi

# ---------------------------------------------------------------------------------------------
# Start the backends and the proxies; they run for the whole benchmark.

taskset -c "$LOAD_CPU" "$NGINX_BIN" -p "$WORK/backend" -c "$WORK/backend/nginx.conf" -g "daemon off;" \
    >"$RESULTS/backend-nginx.log" 2>&1 &
BACKEND_PID=$!
track "$BACKEND_PID"

# Wait (bounded) until a backend prints a line starting with "ready" on its output file.
wait_ready() { # pid file what
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q '^ready' "$2" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || die "$3 exited during startup; see $RESULTS"
        sleep 0.1
    done
    die "$3 did not start within 10 s"
}

if [ "$IDLE_WS" = 1 ]; then
    taskset -c "$LOAD_CPU" python3 "$SCRIPT_DIR/ws_idle.py" serve "$WS_BACKEND_PORT" \
        >"$WORK/ws-backend.out" 2>"$RESULTS/ws-backend.log" &
    WS_BACKEND_PID=$!
    track "$WS_BACKEND_PID"
fi

WS_ECHO="$WORK/ws_echo"
WS_ECHO_TLS="$WORK/ws_echo_tls" # the same source built with OpenSSL, for `load ... tls` (ws-echo-tls)
if has_case ws-echo || has_case ws-echo-tls; then
    # the echo backend (and the ws-echo client): the plain build, without OpenSSL
    cc -O2 -o "$WS_ECHO" "$SCRIPT_DIR/ws_echo.c" 2>"$RESULTS/ws_echo-cc.log" \
        || { cat "$RESULTS/ws_echo-cc.log" >&2; die "cc could not build Benchmarks/ws_echo.c"; }
    if has_case ws-echo-tls; then
        cc -O2 -DWS_ECHO_TLS -o "$WS_ECHO_TLS" "$SCRIPT_DIR/ws_echo.c" -lssl -lcrypto 2>"$RESULTS/ws_echo_tls-cc.log" \
            || { cat "$RESULTS/ws_echo_tls-cc.log" >&2
                 die "cc could not build Benchmarks/ws_echo.c with TLS for ws-echo-tls (OpenSSL headers: apt-get install -y libssl-dev)"; }
    fi
    taskset -c "$LOAD_CPU" "$WS_ECHO" serve "$ECHO_PORT" >"$WORK/ws-echo-backend.out" 2>"$RESULTS/ws-echo-backend.log" &
    ECHO_BACKEND_PID=$!
    track "$ECHO_BACKEND_PID"
fi

UPLOAD_SINK="$WORK/upload_sink"
UPLOAD_BYTES=$((UPLOAD_MIB * 1024 * 1024))
if has_case upload; then
    cc -O2 -o "$UPLOAD_SINK" "$SCRIPT_DIR/upload_sink.c" 2>"$RESULTS/upload_sink-cc.log" \
        || { cat "$RESULTS/upload_sink-cc.log" >&2; die "cc could not build Benchmarks/upload_sink.c"; }
    taskset -c "$LOAD_CPU" "$UPLOAD_SINK" "$UPLOAD_PORT" >"$WORK/upload-sink.out" 2>"$RESULTS/upload-sink.log" &
    UPLOAD_SINK_PID=$!
    track "$UPLOAD_SINK_PID"
    # The body, once, in memory (tmpfs), so that reading it costs the client no disk I/O.
    shm_free_kb=$(df -Pk /dev/shm | awk 'NR == 2 {print $4}')
    [ "${shm_free_kb:-0}" -ge $((UPLOAD_MIB * 1024 + 65536)) ] \
        || die "--upload-mib $UPLOAD_MIB needs ${UPLOAD_MIB} MiB free in /dev/shm (has $((${shm_free_kb:-0} / 1024)) MiB)"
    UPLOAD_FILE=$(mktemp /dev/shm/junction-bench-upload.XXXXXX) || die "could not create a file in /dev/shm"
    head -c "$UPLOAD_BYTES" /dev/zero >"$UPLOAD_FILE" || die "could not write the $UPLOAD_MIB MiB upload body to $UPLOAD_FILE"
    [ "$(stat -c %s "$UPLOAD_FILE")" = "$UPLOAD_BYTES" ] || die "the upload body $UPLOAD_FILE is not $UPLOAD_BYTES bytes"
    head -c 65536 /dev/zero >"$WORK/upload-probe"
fi

TLS_HANDSHAKES="$WORK/tls_handshakes"
if has_case handshake; then
    cc -O2 -o "$TLS_HANDSHAKES" "$SCRIPT_DIR/tls_handshakes.c" -lssl -lcrypto 2>"$RESULTS/tls_handshakes-cc.log" \
        || { cat "$RESULTS/tls_handshakes-cc.log" >&2
             die "cc could not build Benchmarks/tls_handshakes.c (OpenSSL headers: apt-get install -y libssl-dev)"; }
fi

declare -A PROXY_PID=()
if has_proxy nginx; then
    taskset -c "$PROXY_CPU" "$NGINX_BIN" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g "daemon off;" \
        >"$RESULTS/proxy-nginx.log" 2>&1 &
    PROXY_PID[nginx]=$!
    track "$!"
fi
if has_proxy haproxy; then
    # -db: foreground, one process (its threads are counted with it)
    taskset -c "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg" >"$RESULTS/proxy-haproxy.log" 2>&1 &
    PROXY_PID[haproxy]=$!
    track "$!"
fi
if has_proxy nghttpx; then
    taskset -c "$PROXY_CPU" nghttpx "${NGHTTPX_ARGS[@]}" >"$RESULTS/proxy-nghttpx.log" 2>&1 &
    PROXY_PID[nghttpx]=$!
    track "$!"
fi
if has_proxy caddy; then
    # one process (its threads are counted with it); env and taskset exec it, so $! is Caddy's pid
    env "${CADDY_ENV[@]}" taskset -c "$PROXY_CPU" caddy run --config "$WORK/caddy/Caddyfile" --adapter caddyfile \
        >"$RESULTS/proxy-caddy.log" 2>&1 &
    PROXY_PID[caddy]=$!
    track "$!"
fi
if has_proxy junction; then
    taskset -c "$PROXY_CPU" "$JUNCTION" run --config "$WORK/junction.yaml" >"$RESULTS/junction.log" 2>&1 &
    PROXY_PID[junction]=$!
    track "$!"
fi

pid_of() { echo "${PROXY_PID[$1]}"; }

# Dies with the proxy's exit status (or the signal that ended it) if it is gone.
proxy_alive() { # proxy
    local pid rc=0
    pid=$(pid_of "$1")
    still_ours "$pid" && return 0
    wait "$pid" 2>/dev/null || rc=$?
    local why=""
    if [ "$rc" = 0 ] && [ "$1" = junction ]; then
        why=": Junction exits 0 after a graceful shutdown, so something outside this script sent it SIGTERM or SIGINT"
    fi
    if [ "$rc" -gt 128 ]; then rc="signal $((rc - 128))"; else rc="status $rc"; fi
    die "$1 is no longer running (it exited with $rc$why; see $RESULTS/*.log)"
}

url_of() { # proxy case
    case "$1-$2" in
        nghttpx-h2 | nghttpx-h2-50) echo "https://127.0.0.1:$X_TLS/" ;;
        nghttpx-*) die "internal: no URL for $1 $2" ;;
        *-plain) echo "http://127.0.0.1:$(plain_port_of "$1")/" ;;
        *-tls | *-h2 | *-h2-50 | *-handshake) echo "https://127.0.0.1:$(tls_port_of "$1")/" ;;
        *-upload) echo "http://127.0.0.1:$(plain_port_of "$1")/upload" ;;
        *) die "internal: no URL for $1 $2" ;;
    esac
}
plain_port_of() { # proxy: the plain listener, where ws-echo and ws-idle connect
    case "$1" in
        junction) echo "$J_PLAIN" ;;
        nginx) echo "$N_PLAIN" ;;
        haproxy) echo "$H_PLAIN" ;;
        caddy) echo "$C_PLAIN" ;;
        *) die "internal: $1 has no plain listener" ;;
    esac
}
tls_port_of() { # proxy: the TLS listener, where the handshake and ws-echo-tls cases connect
    case "$1" in
        junction) echo "$J_TLS" ;;
        nginx) echo "$N_TLS" ;;
        haproxy) echo "$H_TLS" ;;
        caddy) echo "$C_TLS" ;;
        *) die "internal: $1 has no TLS HTTP/1.1 listener" ;;
    esac
}
idle_url_of() { # proxy case: where ws_idle.py holds its tunnels (ws-idle plain, ws-idle-tls over TLS)
    if [ "$2" = ws-idle-tls ]; then
        echo "wss://127.0.0.1:$(tls_port_of "$1")/websocket"
    else
        echo "ws://127.0.0.1:$(plain_port_of "$1")/websocket"
    fi
}

# One upload of FILE through URL with curl: one line "<status> <bytes sent> <seconds> <answer>"
# (the answer is upload_sink's "received N"). The body goes with its Content-Length and without
# "Expect: 100-continue" (curl sends it for bodies over 1 MiB: one more round trip, and proxies
# answer it differently).
upload_once() { # file url max-seconds stderr-file
    local line
    rm -f "$WORK/upload-answer" # curl leaves it untouched when the answer has no body
    line=$(taskset -c "$LOAD_CPU" curl -sS --http1.1 --max-time "$3" -H 'Expect:' -X POST -T "$1" \
        -o "$WORK/upload-answer" -w '%{http_code} %{size_upload} %{time_total}' "$2" 2>>"$4") || return 1
    echo "$line $(head -c 100 "$WORK/upload-answer" 2>/dev/null | tr -d '\n')"
}

wait_http "http://127.0.0.1:$BACKEND_PORT/" "$BACKEND_PID" "backend nginx"
for proxy in "${PROXIES[@]}"; do
    pid=$(pid_of "$proxy")
    if [ "$proxy" = nghttpx ]; then
        wait_http "$(url_of nghttpx h2)" "$pid" "nghttpx (TLS, h2)" h2
        continue
    fi
    wait_http "$(url_of "$proxy" plain)" "$pid" "$proxy (plain)"
    wait_http "$(url_of "$proxy" tls)" "$pid" "$proxy (TLS)"
    if has_case h2 || has_case h2-50; then wait_http "$(url_of "$proxy" h2)" "$pid" "$proxy (TLS, h2)" h2; fi
done

if [ "$IDLE_WS" = 1 ]; then
    wait_ready "$WS_BACKEND_PID" "$WORK/ws-backend.out" "the WebSocket backend (ws_idle.py serve)"
    for proxy in "${PROXIES[@]}"; do
        for kase in "${IDLE_CASES[@]}"; do
            applies "$proxy" "$kase" || continue
            # one WebSocket opened, echoed and closed (stdin at EOF: the holder closes at once)
            url=$(idle_url_of "$proxy" "$kase")
            timeout 30 taskset -c "$LOAD_CPU" python3 "$SCRIPT_DIR/ws_idle.py" hold "$url" 1 \
                </dev/null >/dev/null 2>"$RESULTS/$kase-probe-$proxy.log" \
                || die "$proxy does not relay a WebSocket on $url; see $RESULTS/$kase-probe-$proxy.log"
        done
    done
fi
if has_case ws-echo || has_case ws-echo-tls; then
    wait_ready "$ECHO_BACKEND_PID" "$WORK/ws-echo-backend.out" "the WebSocket echo backend (ws_echo serve)"
fi
if has_case ws-echo; then
    for proxy in "${PROXIES[@]}"; do
        applies "$proxy" ws-echo || continue
        ok=0
        for ((i = 0; i < 50; i++)); do
            if timeout 5 taskset -c "$LOAD_CPU" "$WS_ECHO" load "$(plain_port_of "$proxy")" /ws-echo 1 0.2 "$ECHO_SIZE" \
                >"$WORK/ws-echo-probe.out" 2>"$RESULTS/ws-echo-probe-$proxy.log" \
                && awk '$1 == "round_trips" && $2 > 0 {found = 1} END {exit !found}' "$WORK/ws-echo-probe.out"; then
                ok=1
                break
            fi
            sleep 0.1
        done
        [ "$ok" = 1 ] || die "$proxy does not relay the WebSocket echo on" \
            "ws://127.0.0.1:$(plain_port_of "$proxy")/ws-echo; see $RESULTS/ws-echo-probe-$proxy.log"
    done
fi
if has_case ws-echo-tls; then
    for proxy in "${PROXIES[@]}"; do
        applies "$proxy" ws-echo-tls || continue
        # one TLS connection (ALPN http/1.1), upgraded, echoing; the client names what TLS negotiated
        ok=0
        for ((i = 0; i < 20; i++)); do
            if timeout 15 taskset -c "$LOAD_CPU" "$WS_ECHO_TLS" load "$(tls_port_of "$proxy")" /ws-echo 1 0.2 "$ECHO_SIZE" tls \
                >"$WORK/ws-echo-tls-probe.out" 2>"$RESULTS/ws-echo-tls-probe-$proxy.log" \
                && awk '$1 == "round_trips" && $2 > 0 && $5 == "protocol" && $6 ~ /^TLS/ {found = 1} END {exit !found}' \
                    "$WORK/ws-echo-tls-probe.out"; then
                ok=1
                break
            fi
            sleep 0.1
        done
        [ "$ok" = 1 ] || die "$proxy does not relay the WebSocket echo over TLS on" \
            "wss://127.0.0.1:$(tls_port_of "$proxy")/ws-echo; see $RESULTS/ws-echo-tls-probe-$proxy.log"
    done
fi

if has_case upload; then
    wait_ready "$UPLOAD_SINK_PID" "$WORK/upload-sink.out" "the upload backend (upload_sink)"
    for proxy in "${PROXIES[@]}"; do
        applies "$proxy" upload || continue
        url=$(url_of "$proxy" upload)
        line=$(upload_once "$WORK/upload-probe" "$url" 10 "$RESULTS/upload-probe-$proxy.log") \
            || die "curl could not upload 64 KiB through $proxy on $url; see $RESULTS/upload-probe-$proxy.log"
        [[ "$line" == "200 65536 "*" received 65536" ]] \
            || die "$proxy does not relay a 64 KiB upload whole on $url (status, bytes sent, seconds, answer: $line)"
    done
fi
if has_case handshake; then
    for proxy in "${PROXIES[@]}"; do
        applies "$proxy" handshake || continue
        # one new connection, full handshake, one request with Connection: close, the server's close
        timeout 20 taskset -c "$LOAD_CPU" "$TLS_HANDSHAKES" "$(tls_port_of "$proxy")" / 1 0.1 \
            >"$WORK/handshake-probe.out" 2>"$RESULTS/handshake-probe-$proxy.log" \
            || die "$proxy does not serve a request on a new TLS connection with Connection: close on" \
                "$(url_of "$proxy" handshake); see $RESULTS/handshake-probe-$proxy.log"
    done
fi

if has_proxy nginx; then
    NGINX_WORKERS=$(child_pids "$(pid_of nginx)" | wc -l)
    [ "$NGINX_WORKERS" -eq "$THREADS" ] || die "proxy nginx has $NGINX_WORKERS worker processes, expected $THREADS"
fi
if has_proxy nghttpx; then
    [ -n "$(descendant_pids "$(pid_of nghttpx)")" ] || die "nghttpx has no worker process"
fi
if has_proxy caddy; then
    # one process: the pid measured and stopped is Caddy itself (not a shell in between)
    [ "$(cat "/proc/$(pid_of caddy)/comm" 2>/dev/null)" = caddy ] \
        || die "the caddy pid $(pid_of caddy) is not Caddy's process"
fi

# p99 from wrk's latency distribution, in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "ms") n += 0; else if (u == "s") n *= 1000;
        else if (u == "m") n *= 60000; else { print "bad"; exit }
        printf "%.3f", n }'
}

CSV="$RESULTS/runs.csv"
# cycles_*: perf stat's cycles:u and cycles:k of the proxy's processes during the run, and per unit;
# empty where perf cannot count them (see PERF_OK).
echo "round,proxy,case,requests,wall_s,req_per_s,p99_ms,cpu_s,req_per_cpu_s,cpu_util,user_cpu_s,sys_cpu_s,user_us_per_unit,sys_us_per_unit,cycles_u,cycles_k,cycles_u_per_unit,cycles_k_per_unit" >"$CSV"

# perf stat on the proxy's processes for one measured run (PERF_OK only): started before the load,
# stopped with SIGINT after it (perf then writes its counts and exits).
PERF_PID=""
perf_start() { # comma-separated pids output-file
    PERF_PID=""
    [ "$PERF_OK" = 1 ] || return 0
    taskset -c "$LOAD_CPU" perf stat -x, -e cycles:u,cycles:k -p "$1" -o "$2" >/dev/null 2>&1 &
    PERF_PID=$!
    track "$PERF_PID"
}
perf_stop() { # output-file: prints "<cycles:u> <cycles:k>", or nothing
    local i
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        still_ours "$PERF_PID" || break
        sleep 0.1
    done
    if still_ours "$PERF_PID"; then kill -KILL "$PERF_PID" 2>/dev/null || true; fi
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    awk -F, '$1 ~ /^[0-9]+$/ && $3 ~ /^cycles:u/ {u = $1} $1 ~ /^[0-9]+$/ && $3 ~ /^cycles:k/ {k = $1}
        END {if (u != "" && k != "") print u, k}' "$1" 2>/dev/null || true
}

# One load run through one proxy; appends a CSV line unless it is a warm-up. For ws-echo and
# ws-echo-tls the "requests" are echo round trips and there is no p99 (the column stays empty); for
# upload they are MB (10^6 bytes) of request body relayed, /s is MB per second and there is no p99;
# for handshake they are TLS connections (one full handshake and one request each). With PERF_OK,
# perf stat counts the proxy's cycles during each measured run.
run_case() { # round proxy case duration
    local round=$1 proxy=$2 kase=$3 dur=$4 url="" pid out before after t0 t1
    local b_ticks a_ticks b_user b_sys a_user a_sys b_set a_set reqs rps p99raw p99 cpu_s wall rpc util
    local user_s sys_s user_us sys_us
    local uploads end_ns line
    local cycles="" cyc_u="" cyc_k="" cyc_u_unit="" cyc_k_unit=""
    case "$kase" in ws-echo | ws-echo-tls) ;; *) url=$(url_of "$proxy" "$kase") ;; esac
    pid=$(pid_of "$proxy")
    out="$RESULTS/$round-$proxy-$kase.txt"
    proxy_alive "$proxy"

    before=$(proxy_ticks "$pid")
    if [ "$round" != warmup ]; then
        b_set=${before##* }
        perf_start "${b_set%,}" "$out.perf"
    fi
    t0=$(date +%s.%N)
    case "$kase" in
        h2 | h2-50)
            # HTTP/2 over TLS: h2load, H2_CONNECTIONS (h2-50: H2_WIDE_CONNECTIONS) connections with
            # H2_STREAMS streams each.
            local conns=$H2_CONNECTIONS
            [ "$kase" = h2 ] || conns=$H2_WIDE_CONNECTIONS
            taskset -c "$LOAD_CPU" h2load -t1 -c"$conns" -m"$H2_STREAMS" -D"$dur" \
                --log-file="$out.log" "$url" >"$out" 2>&1 \
                || { cat "$out" >&2; die "h2load failed for $proxy $kase (round $round)"; } ;;
        ws-echo)
            # ECHO_TUNNELS WebSockets, one ECHO_SIZE-byte message in flight on each (closed loop).
            taskset -c "$LOAD_CPU" "$WS_ECHO" load "$(plain_port_of "$proxy")" /ws-echo "$ECHO_TUNNELS" "$dur" "$ECHO_SIZE" \
                >"$out" 2>&1 \
                || { cat "$out" >&2; die "the WebSocket echo client failed for $proxy (round $round)"; } ;;
        ws-echo-tls)
            # The same through the TLS listener: the handshakes one by one before the measured
            # window (inside the CPU window, like ws-echo's upgrades), then the echo loop.
            timeout $((dur + 120)) taskset -c "$LOAD_CPU" "$WS_ECHO_TLS" load "$(tls_port_of "$proxy")" /ws-echo \
                "$ECHO_TUNNELS" "$dur" "$ECHO_SIZE" tls >"$out" 2>&1 \
                || { cat "$out" >&2; die "the TLS WebSocket echo client failed for $proxy (round $round)"; } ;;
        upload)
            # UPLOAD_MIB MiB uploads one after another (a new curl and connection each) until dur
            # seconds have passed, at least one and at most UPLOAD_MAX; each must get upload_sink's
            # 200 with the whole body counted.
            : >"$out"
            end_ns=$(($(date +%s%N) + dur * 1000000000))
            for ((uploads = 0; uploads < UPLOAD_MAX; )); do
                line=$(upload_once "$UPLOAD_FILE" "$url" $((60 + UPLOAD_MIB / 10)) "$out.err") \
                    || { cat "$out.err" >&2; die "curl failed to upload through $proxy (round $round): $url"; }
                echo "$line" >>"$out"
                [[ "$line" == "200 $UPLOAD_BYTES "*" received $UPLOAD_BYTES" ]] \
                    || die "$proxy upload (round $round): not relayed whole (status, bytes sent, seconds, answer: $line)"
                uploads=$((uploads + 1))
                [ "$(date +%s%N)" -lt "$end_ns" ] || break
            done
            rm -f "$out.err" ;;
        handshake)
            # HS_CONNECTIONS new TLS connections in flight, each one full handshake and one request.
            taskset -c "$LOAD_CPU" "$TLS_HANDSHAKES" "$(tls_port_of "$proxy")" / "$HS_CONNECTIONS" "$dur" >"$out" 2>&1 \
                || { cat "$out" >&2; die "the TLS handshake client failed for $proxy (round $round)"; } ;;
        *)
            taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${dur}s" --latency "$url" >"$out" 2>&1 \
                || { cat "$out" >&2; die "wrk failed for $proxy $kase (round $round)"; } ;;
    esac
    t1=$(date +%s.%N)
    after=$(proxy_ticks "$pid")
    if [ "$round" != warmup ]; then
        cycles=$(perf_stop "$out.perf")
        rm -f "$out.perf"
    fi

    read -r b_user b_sys b_set <<<"$before"
    read -r a_user a_sys a_set <<<"$after"
    b_ticks=$((b_user + b_sys))
    a_ticks=$((a_user + a_sys))
    [ "$b_set" = "$a_set" ] || die "$proxy process set changed during the run ($b_set -> $a_set): a worker died?"

    case "$kase" in
        h2 | h2-50)
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
            ;;
        ws-echo | ws-echo-tls)
            if [ "$kase" = ws-echo-tls ] \
                && ! awk '$1 == "round_trips" && $5 == "protocol" && $6 ~ /^TLS/ {ok = 1} END {exit !ok}' "$out"; then
                cat "$out" >&2
                die "$proxy $kase (round $round): the client did not report a TLS connection ($out)"
            fi
            reqs=$(awk '$1 == "round_trips" {print $2; exit}' "$out")
            rps=$(awk '$1 == "round_trips" && $4 > 0 {printf "%.2f", $2 / $4; exit}' "$out")
            p99raw=none
            ;;
        upload)
            # MB relayed; MB/s over the uploads' own times (curl's time_total; the gaps between
            # two curl processes do not count)
            reqs=$(awk '{b += $2} END {if (NR) printf "%.1f", b / 1e6}' "$out")
            rps=$(awk '{b += $2; t += $3} END {if (t > 0) printf "%.1f", b / 1e6 / t}' "$out")
            p99raw=none
            ;;
        handshake)
            if ! awk '$1 == "handshakes" && $7 == "resumed" && $8 == 0 {ok = 1} END {exit !ok}' "$out"; then
                cat "$out" >&2
                die "$proxy $kase (round $round): the server resumed TLS sessions, or unreadable output ($out)"
            fi
            reqs=$(awk '$1 == "handshakes" {print $2; exit}' "$out")
            rps=$(awk '$1 == "handshakes" && $4 > 0 {printf "%.2f", $2 / $4; exit}' "$out")
            p99raw=$(awk '$1 == "handshakes" {print $6 "ms"; exit}' "$out")
            ;;
        *)
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
            ;;
    esac
    if [ -z "$reqs" ] || [ -z "$rps" ] || [ -z "$p99raw" ]; then
        cat "$out" >&2
        die "could not parse the load generator's output for $proxy $kase (round $round): $out"
    fi
    awk -v r="$reqs" 'BEGIN {exit !(r > 0)}' || die "$proxy $kase (round $round): zero requests completed"
    if [ "$p99raw" = none ]; then
        p99=""
    else
        p99=$(to_ms "$p99raw")
        [ "$p99" != bad ] || die "unknown latency unit in '$p99raw' ($out)"
    fi

    cpu_s=$(awk -v t=$((a_ticks - b_ticks)) -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
    rpc=$(awk -v r="$reqs" -v c="$cpu_s" 'BEGIN {if (c > 0) printf "%.0f", r / c; else print "inf"}')
    util=$(awk -v c="$cpu_s" -v w="$wall" 'BEGIN {printf "%.0f%%", 100 * c / w}')
    # User and system time apart: per unit (request, round trip, MB, handshake), in microseconds.
    user_s=$(awk -v t=$((a_user - b_user)) -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')
    sys_s=$(awk -v t=$((a_sys - b_sys)) -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')
    user_us=$(awk -v c="$user_s" -v r="$reqs" 'BEGIN {if (r > 0) printf "%.2f", c * 1e6 / r; else print ""}')
    sys_us=$(awk -v c="$sys_s" -v r="$reqs" 'BEGIN {if (r > 0) printf "%.2f", c * 1e6 / r; else print ""}')
    if [ -n "$cycles" ]; then
        read -r cyc_u cyc_k <<<"$cycles"
        cyc_u_unit=$(awk -v c="$cyc_u" -v r="$reqs" 'BEGIN {if (r > 0) printf "%.0f", c / r}')
        cyc_k_unit=$(awk -v c="$cyc_k" -v r="$reqs" 'BEGIN {if (r > 0) printf "%.0f", c / r}')
    fi

    if [ "$round" = warmup ]; then
        printf '  warm-up  %-8s %-11s %10s /s\n' "$proxy" "$kase" "$rps"
        return
    fi
    echo "$round,$proxy,$kase,$reqs,$wall,$rps,$p99,$cpu_s,$rpc,$util,$user_s,$sys_s,$user_us,$sys_us,$cyc_u,$cyc_k,$cyc_u_unit,$cyc_k_unit" >>"$CSV"
    printf '  round %-2s %-8s %-11s %10s /s  p99 %8s ms  proxy CPU %6s s (%4s)  %8s per CPU-s  user/sys %s/%s us%s\n' \
        "$round" "$proxy" "$kase" "$rps" "${p99:-–}" "$cpu_s" "$util" "$rpc" "$user_us" "$sys_us" \
        "${cycles:+  cycles u/k $cyc_u_unit/$cyc_k_unit}"
}

# ---------------------------------------------------------------------------------------------
# Header, then the interleaved runs.

VERSIONS=()
has_proxy junction && VERSIONS+=("junction: $("$JUNCTION" version 2>&1 | awk 'NR == 1')")
VERSIONS+=("$("$NGINX_BIN" -v 2>&1 | awk 'NR == 1')")
has_proxy haproxy && VERSIONS+=("$(haproxy -v 2>&1 | awk 'NR == 1 {print $1, $2, $3}')")
has_proxy caddy && VERSIONS+=("caddy $(env "${CADDY_ENV[@]}" caddy version 2>&1 | awk 'NR == 1')")
has_proxy nghttpx && VERSIONS+=("$(nghttpx --version 2>&1 | awk 'NR == 1')")
if has_case plain || has_case tls; then
    VERSIONS+=("$( (wrk -v 2>&1 || true) | awk 'NR == 1 {print $1, $2}')") # wrk -v exits 1
fi
if has_case h2 || has_case h2-50; then VERSIONS+=("$(h2load --version 2>&1 | awk 'NR == 1')"); fi
has_case upload && VERSIONS+=("$(curl --version 2>&1 | awk 'NR == 1 {print $1, $2}')")
if has_case handshake || has_case ws-echo-tls; then
    VERSIONS+=("tls_handshakes/ws_echo_tls on $(openssl version 2>&1 | awk 'NR == 1 {print $1, $2}')")
fi
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
TW_REUSE=$(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo unknown)
PORT_RANGE=$(tr -s ' \t' '-' </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo unknown)
if has_case handshake && [ "$TW_REUSE" = 0 ]; then
    echo "run.sh: note: net.ipv4.tcp_tw_reuse is 0: the handshake case may run out of local ports" \
        "(connections in TIME_WAIT); sysctl -w net.ipv4.tcp_tw_reuse=2 allows their reuse on loopback" >&2
fi
KERNEL=$(uname -r)
CMDLINE="Benchmarks/run.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"

name_of() {
    case "$1" in
        junction) echo Junction ;; haproxy) echo HAProxy ;; caddy) echo Caddy ;; *) echo "$1" ;;
    esac
}

ORDER=()
for kase in "${RUN_CASES[@]}"; do
    for proxy in "${PROXIES[@]}"; do
        applies "$proxy" "$kase" && ORDER+=("$proxy-$kase")
    done
done

{
    TITLE=""
    for p in "${PROXIES[@]}"; do TITLE+="${TITLE:+, }$(name_of "$p")"; done
    echo "# $TITLE side by side"
    echo
    echo "- command: \`$CMDLINE\`"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: nproc=$NCPU, $CPU_MODEL, Linux $KERNEL"
    echo "- versions: $(IFS=';'; echo "${VERSIONS[*]}" | sed 's/;/; /g')"
    echo "- setup: proxies pinned to core $PROXY_CPU with $THREADS worker(s) each" \
        "(junction threads: $THREADS, nginx worker_processes $THREADS, haproxy nbthread $THREADS," \
        "caddy GOMAXPROCS=$THREADS, nghttpx $NGHTTPX_THREADING); backend nginx (1 worker), WebSocket backends" \
        "and load generators pinned to core $LOAD_CPU; ~100-byte 200 body; HTTP/1.1 keep-alive to the backend; TLS: ECDSA P-256;" \
        "wrk -t1 -c$CONNECTIONS -d${DURATION}s; h2: h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS over TLS (ALPN h2)," \
        "HTTP/1.1 to the backend; h2-50: the same with -c$H2_WIDE_CONNECTIONS -m$H2_STREAMS;" \
        "ws-echo: ws_echo.c, $ECHO_TUNNELS tunnels, one $ECHO_SIZE-byte message in flight on each;" \
        "ws-echo-tls: the same through the TLS listener (ALPN http/1.1, handshakes before the measured window);" \
        "upload: curl -T of a $UPLOAD_MIB MiB file in /dev/shm, plain HTTP/1.1, one upload after another for ${DURATION}s," \
        "to upload_sink.c (reads the whole body, then 200); handshake: tls_handshakes.c, $HS_CONNECTIONS connections" \
        "in flight, each a new connection with a full TLS handshake (no resumption) and one request with Connection: close"
    if has_case handshake; then
        echo "- handshake: net.ipv4.tcp_tw_reuse=$TW_REUSE, net.ipv4.ip_local_port_range=$PORT_RANGE" \
            "(loopback connections in TIME_WAIT; see Benchmarks/README.md)"
    fi
    echo "- rounds: $ROUNDS, order per round: ${ORDER[*]}; median over rounds"
    echo "- cycles: $PERF_STATE"
    echo "- load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews results)"
    echo "- raw output: Benchmarks/results/$STAMP/"
} >"$RESULTS/header.md"
cat "$RESULTS/header.md"
echo

# ---------------------------------------------------------------------------------------------
# Idle WebSockets: the proxy's resident memory with N tunnels open and idle, per tunnel.

# Resident memory of a proxy in KiB: the process plus its descendants (nginx: master + workers).
proxy_rss_kb() {
    local total=0 p v
    for p in $1 $(descendant_pids "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

WS_CSV="$RESULTS/websockets.csv"
echo "case,proxy,tunnels,rss_before_kb,rss_open_kb,bytes_per_tunnel" >"$WS_CSV"

# Holds $WEBSOCKETS idle tunnels of one case open through a proxy and records what they cost. The
# holder stays running (its stdin on descriptor 7 or 8) so that the next case's tunnels are
# measured in memory the process has not freed and reused: every measured byte is new.
HOLD_PIDS=()
hold_idle_websockets() { # proxy case fd
    local proxy=$1 kase=$2 fd=$3 pid url before open line i hold_pid per
    pid=$(pid_of "$proxy")
    url=$(idle_url_of "$proxy" "$kase")
    before=$(proxy_rss_kb "$pid")
    rm -f "$WORK/hold-in-$kase" "$WORK/hold-out-$kase"
    mkfifo "$WORK/hold-in-$kase"
    taskset -c "$LOAD_CPU" python3 "$SCRIPT_DIR/ws_idle.py" hold "$url" "$WEBSOCKETS" \
        <"$WORK/hold-in-$kase" >"$WORK/hold-out-$kase" 2>"$RESULTS/$kase-hold-$proxy.log" &
    hold_pid=$!
    track "$hold_pid"
    HOLD_PIDS+=("$hold_pid")
    eval "exec $fd>\"\$WORK/hold-in-\$kase\""
    line=""
    for ((i = 0; i < 1200; i++)); do
        line=$(grep '^ready' "$WORK/hold-out-$kase" 2>/dev/null || true)
        [ -n "$line" ] && break
        kill -0 "$hold_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ "$line" = "ready $WEBSOCKETS" ] \
        || die "$proxy: $WEBSOCKETS WebSockets ($kase) did not all open within 120 s ($line); see $RESULTS/$kase-hold-$proxy.log"
    sleep 2 # let allocations settle
    open=$(proxy_rss_kb "$pid")
    per=$(awk -v a="$open" -v b="$before" -v n="$WEBSOCKETS" 'BEGIN {printf "%.0f", (a - b) * 1024 / n}')
    echo "$kase,$proxy,$WEBSOCKETS,$before,$open,$per" >>"$WS_CSV"
    printf '  %-8s %-11s %6d idle WebSockets: RSS %8d KiB -> %8d KiB, %6d bytes per tunnel\n' \
        "$proxy" "$kase" "$WEBSOCKETS" "$before" "$open" "$per"
}

# Closes every holder of one proxy (a line on each stdin) and waits for them to finish.
release_idle_websockets() { # proxy
    local i hold_pid
    for fd in 7 8; do { echo close >&"$fd"; } 2>/dev/null || true; eval "exec $fd>&-"; done
    for hold_pid in "${HOLD_PIDS[@]}"; do
        for ((i = 0; i < 300; i++)); do
            kill -0 "$hold_pid" 2>/dev/null || break
            sleep 0.1
        done
        wait "$hold_pid" || die "$1: a WebSocket holder failed; see $RESULTS/ws-idle*-hold-$1.log"
    done
    HOLD_PIDS=()
}

if [ "$IDLE_WS" = 1 ]; then
    echo "Idle WebSockets ($WEBSOCKETS per case through each proxy, one message each, then held;" \
        "before any load, the plain ones still open while the TLS ones are measured):"
    for proxy in "${PROXIES[@]}"; do
        fd=7
        for kase in "${IDLE_CASES[@]}"; do
            applies "$proxy" "$kase" || continue
            hold_idle_websockets "$proxy" "$kase" "$fd"
            fd=8
        done
        release_idle_websockets "$proxy"
    done
    echo
fi

if [ "$WARMUP" -gt 0 ] && [ "${#RUN_CASES[@]}" -gt 0 ]; then
    echo "Warm-up (${WARMUP}s per case, not counted):"
    for kase in "${RUN_CASES[@]}"; do
        for proxy in "${PROXIES[@]}"; do
            applies "$proxy" "$kase" || continue
            run_case warmup "$proxy" "$kase" "$WARMUP"
        done
    done
fi

if [ "${#RUN_CASES[@]}" -gt 0 ]; then
    echo "Runs:"
    for ((r = 1; r <= ROUNDS; r++)); do
        for kase in "${RUN_CASES[@]}"; do
            for proxy in "${PROXIES[@]}"; do
                applies "$proxy" "$kase" || continue
                run_case "$r" "$proxy" "$kase" "$DURATION"
            done
        done
    done
    echo
fi

# ---------------------------------------------------------------------------------------------
# Summary: medians per case and proxy.

median() { # proxy case column: the median over the rounds, or "nan" when there is none
    awk -F, -v p="$1" -v c="$2" -v col="$3" \
        'NR > 1 && $2 == p && $3 == c && $col != "" {print $col}' "$CSV" | sort -g |
        awk '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit}
             if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# Formatted cell: "–" for nan/empty, else the number with the given printf format.
fmt() { # value format
    if [ -z "$1" ] || [ "$1" = nan ]; then echo "–"; else awk -v v="$1" -v f="$2" 'BEGIN {printf f, v}'; fi
}
ratio() { # numerator denominator
    if [ -z "$1" ] || [ -z "$2" ] || [ "$1" = nan ] || [ "$2" = nan ]; then echo "–"; return; fi
    awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "–"}'
}

label_of() {
    case "$1" in
        plain) echo "plain HTTP/1.1 (wrk)" ;;
        tls) echo "TLS HTTP/1.1 (wrk)" ;;
        h2) echo "TLS HTTP/2 (h2load, ${H2_CONNECTIONS}x$H2_STREAMS)" ;;
        h2-50) echo "TLS HTTP/2 (h2load, ${H2_WIDE_CONNECTIONS}x$H2_STREAMS)" ;;
        ws-echo) echo "WebSocket echo ($ECHO_TUNNELS tunnels, $ECHO_SIZE B)" ;;
        ws-echo-tls) echo "WebSocket echo over TLS ($ECHO_TUNNELS tunnels, $ECHO_SIZE B)" ;;
        upload) echo "upload, $UPLOAD_MIB MiB body (curl)" ;;
        handshake) echo "new TLS connection per request (ECDSA P-256)" ;;
        ws-idle) echo "$WEBSOCKETS idle WebSockets" ;;
        ws-idle-tls) echo "$WEBSOCKETS idle WebSockets over TLS" ;;
    esac
}

# The ratio columns: Junction against each other proxy in the run.
OTHERS=()
if has_proxy junction; then
    for p in "${PROXIES[@]}"; do [ "$p" = junction ] || OTHERS+=("$p"); done
fi

ws_bytes() { # proxy case: bytes per idle tunnel, or nan
    awk -F, -v p="$1" -v c="$2" 'NR > 1 && $1 == c && $2 == p {v = $6} END {print (v == "" ? "nan" : v)}' "$WS_CSV"
}

{
    # Main table: the proxy's efficiency, per CPU-second of the proxy, and memory per idle tunnel.
    row="| case | unit |"
    sep="|---|---|"
    for p in "${PROXIES[@]}"; do row+=" $(name_of "$p") |"; sep+="---:|"; done
    for o in "${OTHERS[@]}"; do row+=" Junction / $(name_of "$o") |"; sep+="---:|"; done
    echo "$row"
    echo "$sep"
    declare -A val=()
    for kase in "${RUN_CASES[@]}"; do
        case "$kase" in
            ws-echo | ws-echo-tls) unit="round trips per CPU-s" ;;
            upload) unit="MB per CPU-s" ;;
            handshake) unit="handshakes per CPU-s" ;;
            *) unit="req per CPU-s" ;;
        esac
        row="| $(label_of "$kase") | $unit |"
        val=()
        for p in "${PROXIES[@]}"; do
            if applies "$p" "$kase"; then val[$p]=$(median "$p" "$kase" 9); else val[$p]=nan; fi
            row+=" $(fmt "${val[$p]}" %.0f) |"
        done
        for o in "${OTHERS[@]}"; do row+=" $(ratio "${val[junction]}" "${val[$o]}") |"; done
        echo "$row"
    done
    for kase in "${IDLE_CASES[@]}"; do
        row="| $(label_of "$kase") | bytes per tunnel (lower is better) |"
        for p in "${PROXIES[@]}"; do
            if applies "$p" "$kase"; then row+=" $(fmt "$(ws_bytes "$p" "$kase")" %.0f) |"; else row+=" – |"; fi
        done
        for o in "${OTHERS[@]}"; do
            if applies "$o" "$kase"; then
                row+=" $(ratio "$(ws_bytes "$o" "$kase")" "$(ws_bytes junction "$kase")") |"
            else
                row+=" – |"
            fi
        done
        echo "$row"
    done
    echo
    if [ "${#RUN_CASES[@]}" -gt 0 ]; then
        echo "Medians over $ROUNDS round(s) of ${DURATION}s. Per CPU-s = requests (echo round trips; MB of request" \
            "body, 1 MB = 10^6 bytes; TLS connections, each a full handshake and one request) completed /" \
            "(utime+stime of the proxy's processes, all threads and child processes, during the run)."
    fi
    if [ "${#OTHERS[@]}" -gt 0 ]; then
        echo "Junction / X: above 1 is better for Junction; for the idle-WebSocket rows it is X's bytes / Junction's" \
            "bytes, so above 1 is better for Junction there too."
    fi
    echo "– : not applicable (nghttpx only runs h2 and h2-50) or not measured."
    echo
    if [ "${#RUN_CASES[@]}" -gt 0 ]; then
        # Where each proxy's CPU goes: user space and the kernel apart, per unit.
        row="| case |"
        sep="|---|"
        for p in "${PROXIES[@]}"; do row+=" $(name_of "$p") user / system µs |"; sep+="---:|"; done
        echo "$row"
        echo "$sep"
        for kase in "${RUN_CASES[@]}"; do
            row="| $(label_of "$kase") |"
            for p in "${PROXIES[@]}"; do
                if applies "$p" "$kase"; then
                    row+=" $(fmt "$(median "$p" "$kase" 13)" %.2f) / $(fmt "$(median "$p" "$kase" 14)" %.2f) |"
                else
                    row+=" – |"
                fi
            done
            echo "$row"
        done
        echo
        echo "µs of the proxy's CPU per unit of the case (request, echo round trip, MB, handshake), user time" \
            "and system time apart (utime and stime of its processes), medians over the rounds."
        echo
    fi
    if [ "${#RUN_CASES[@]}" -gt 0 ]; then
        # As the client sees it: throughput and latency in this setup.
        row="| case |"
        sep="|---|"
        for p in "${PROXIES[@]}"; do row+=" $(name_of "$p") /s |"; sep+="---:|"; done
        for p in "${PROXIES[@]}"; do row+=" $(name_of "$p") p99 |"; sep+="---:|"; done
        echo "$row"
        echo "$sep"
        for kase in "${RUN_CASES[@]}"; do
            row="| $(label_of "$kase") |"
            for p in "${PROXIES[@]}"; do
                if applies "$p" "$kase"; then row+=" $(fmt "$(median "$p" "$kase" 6)" %.0f) |"; else row+=" – |"; fi
            done
            for p in "${PROXIES[@]}"; do
                if applies "$p" "$kase"; then row+=" $(fmt "$(median "$p" "$kase" 7)" '%.2f ms') |"; else row+=" – |"; fi
            done
            echo "$row"
        done
        echo
        echo "/s: requests per second as the load generator saw them (ws-echo: round trips per second;" \
            "upload: MB per second of upload time; handshake: connections per second);" \
            "p99: 99th percentile latency (wrk --latency; h2load's per-request log; handshake: connect to close;" \
            "none for ws-echo, ws-echo-tls and upload)."
        echo
        echo "Per-run detail (proxy CPU util = proxy CPU-s / wall-s; 100% = the proxy's core was saturated):"
        echo
        if [ "$PERF_OK" = 1 ]; then
            echo "| round | proxy | case | requests | /s | p99 ms | proxy CPU-s | user / system CPU-s | proxy CPU util | per CPU-s | cycles:u / cycles:k per unit |"
            echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        else
            echo "| round | proxy | case | requests | /s | p99 ms | proxy CPU-s | user / system CPU-s | proxy CPU util | per CPU-s |"
            echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"
        fi
        awk -F, -v perf="$PERF_OK" 'NR > 1 {printf "| %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |",
            $1, $2, $3, $4, $6, ($7 == "" ? "–" : $7), $8, $11, $12, $10, $9
            if (perf == 1) printf " %s / %s |", ($17 == "" ? "–" : $17), ($18 == "" ? "–" : $18)
            printf "\n"}' "$CSV"
        if [ "$PERF_OK" != 1 ]; then
            echo
            echo "No cycle counts: $PERF_STATE."
        fi
    fi
    if [ "$IDLE_WS" = 1 ]; then
        echo
        echo "Idle WebSockets: the proxy's resident memory (all its processes) with $WEBSOCKETS tunnels open" \
            "minus before, per tunnel, measured before the throughput runs (the processes had served only the" \
            "readiness probes); the TLS tunnels were opened while the plain ones were still held, so neither" \
            "reuses memory the other freed."
    fi
} >"$RESULTS/table.md"

{ echo; echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"; } >>"$RESULTS/table.md"
cat "$RESULTS/header.md" "$RESULTS/table.md" >"$RESULTS/summary.md"
cat "$RESULTS/table.md"

# Anything the proxies complained about during the run (but nghttpx's note that --single-thread
# means one worker, which it prints on every start).
# Caddy's warnings on every start that follow from its config (admin off, auto_https off) are left out too.
for log in junction.log proxy-nginx.log proxy-haproxy.log proxy-caddy.log proxy-nghttpx.log backend-nginx.log \
    ws-echo-backend.log upload-sink.log; do
    [ -f "$RESULTS/$log" ] || continue
    lines=$(grep -iE "error|warn|crit|alert|emerg" "$RESULTS/$log" | grep -vF 'single-thread: Set workers to 1' \
        | grep -vF -e '"msg":"admin endpoint disabled"' -e '"msg":"automatic HTTPS is completely disabled for server"' \
        | awk 'NR <= 5' || true)
    if [ -n "$lines" ]; then
        echo
        echo "note: $log has warnings/errors:"
        echo "$lines"
    fi
done
# nginx's [warn] for each request body it buffers to a temporary file (every upload through the
# nginx proxy: its default) is counted, not listed.
BUFFERED_BODY='a client request body is buffered to a temporary file'
for log in "$WORK/nginx/logs/error.log" "$WORK/backend/logs/error.log"; do
    if [ -s "$log" ]; then
        copy="$RESULTS/$(basename "$(dirname "$(dirname "$log")")")-error.log"
        cp "$log" "$copy"
        lines=$(grep -vF "$BUFFERED_BODY" "$log" | awk 'NR <= 5' || true)
        buffered=$(grep -cF "$BUFFERED_BODY" "$log" || true)
        if [ -n "$lines" ]; then
            echo
            echo "note: $log has more than the request-body buffering warnings (copied to $copy):"
            echo "$lines"
        fi
        if [ "${buffered:-0}" -gt 0 ]; then
            echo
            echo "note: nginx buffered $buffered request bodies to a temporary file, as it does by default" \
                "(the upload case; its [warn] lines are in $copy)"
        fi
    fi
done
echo
echo "Saved: Benchmarks/results/$STAMP/summary.md (and raw load-generator outputs, configs, runs.csv)"
