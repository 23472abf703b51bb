#!/usr/bin/env bash
# Allocation budgets of Junction's hot paths (package-benchmark's malloc counting; see
# Package.swift and Benchmarks/README.md).
#
#   Benchmarks/Allocations/run.sh           # prints mallocs per 1,000 operations of each hot path
#   Benchmarks/Allocations/run.sh check     # CI: fails when a hot path allocates more than its
#                                           # budget in budgets.tsv
#   Benchmarks/Allocations/run.sh update    # after an intended change: writes budgets.tsv anew
#
# The benchmarks reach Junction's internals with @testable import, so they run on a debug build:
# the counts guard against regressions; they are not the release binary's exact figures. The
# executable runs directly (package-benchmark's plugin crashes under Swift 6.3 without its
# runtime interposer, which this machine's package copy does not have).
set -euo pipefail
cd "$(dirname "$0")"
MODE=${1:-run}
case "$MODE" in run | check | update) ;; *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;; esac

# A failed build must fail the check, never fall back on an older binary.
if ! build_log=$(swift build --product HotPaths 2>&1); then
    echo "$build_log" | grep -E "error" | head -20 >&2
    echo "run.sh: HotPaths did not build" >&2
    exit 1
fi
echo "$build_log" | grep -E "warning: unre|Build" || true
binary=.build/debug/HotPaths
[ -x "$binary" ] || { echo "run.sh: HotPaths did not build" >&2; exit 1; }
output=$("$binary" --quiet true 2>&1) || { echo "$output" | tail -20 >&2; echo "run.sh: HotPaths failed" >&2; exit 1; }
# "Debug results for NAME:" then "#[Mean = N, ...]": mallocs per 1,000 operations.
counts=$(echo "$output" | awk '
    /^Debug results for / { name = substr($0, 19); sub(/:$/, "", name) }
    /^#\[Mean/ && name != "" { gsub(/[#\[=,]/, " "); printf "%d\t%s\n", $2 + 0.5, name; name = "" }')
[ -n "$counts" ] || { echo "$output" | tail -20 >&2; echo "run.sh: no results in HotPaths' output" >&2; exit 1; }

case "$MODE" in
    run) echo "$counts" | awk -F'\t' '{ printf "%10d mallocs per 1000  %s\n", $1, $2 }' ;;
    update)
        # The budget: the count now plus 2% and 10 (room for a buffer that grows once more); one
        # more malloc per operation is +1000 and fails.
        echo "$counts" | awk -F'\t' '{ printf "%d\t%s\n", int($1 * 1.02 + 10), $2 }' >budgets.tsv
        cat budgets.tsv
        ;;
    check)
        status=0
        while IFS=$'\t' read -r count name; do
            budget=$(awk -F'\t' -v n="$name" '$2 == n { print $1 }' budgets.tsv)
            if [ -z "$budget" ]; then
                echo "NO BUDGET  $count  $name (run.sh update, then commit budgets.tsv)"
                status=1
            elif [ "$count" -gt "$budget" ]; then
                echo "OVER       $count > $budget  $name"
                status=1
            else
                echo "ok         $count <= $budget  $name"
            fi
        done <<<"$counts"
        exit $status
        ;;
esac
