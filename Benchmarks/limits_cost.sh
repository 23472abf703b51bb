#!/usr/bin/env bash
# What the per-client limits cost per request and per counted connection, in nanoseconds: the
# real table code of Sources/JunctionCore/Limits compiled with -O together with
# Benchmarks/LimitsCost/main.swift (no NIO needed), timed on this machine.
#
#   Benchmarks/limits_cost.sh [OPERATIONS]     # default 5,000,000 per measurement
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
limits=Sources/JunctionCore/Limits
swiftc -O -module-name LimitsCost -o "$out/limits_cost" \
    "$limits/ClientKey.swift" "$limits/ClientTable.swift" "$limits/ClientCounts.swift" \
    "$limits/ClientRates.swift" "$limits/RateBucket.swift" Benchmarks/LimitsCost/main.swift
"$out/limits_cost" "${1:-5000000}"
