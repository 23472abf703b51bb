#!/usr/bin/env bash
# Junction under mixed load for N minutes (default 60) with SIGHUPs and a backend killed and
# restarted every few minutes; prints RSS, fds, upstream connections, tunnels and failed requests.
# See Benchmarks/soak.py for what runs. Needs nginx, h2load, openssl, ss and Python `websockets`.
#
#   Benchmarks/soak.sh [--minutes 60] [--websockets 2000] [--kill-every 4] [--junction PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .build/release/junction ] && [[ " $* " != *" --junction "* ]]; then
    swift build -c release -Xswiftc -enforce-exclusivity=unchecked --product junction
fi
ulimit -n 20000 2>/dev/null || true
exec python3 Benchmarks/soak.py "$@"
