#!/usr/bin/env bash
# Runs the unit and integration tests under a sanitizer: the test bundle and the `junction` binary
# the integration tests start are built the same way, in a build folder of their own.
#
#   Tests/sanitizers.sh [address|thread ...]     # default: address thread
#
# Every `junction` the tests start writes its reports (AddressSanitizer and LeakSanitizer at exit,
# or ThreadSanitizer) to .build-<sanitizer>/reports/junction.<pid>; a report there fails the run.
# The test runner itself stops at its first error but is not leak-checked: Foundation's Process
# and Pipe, which the harness uses to start processes, leak on Linux by design.
# Prints how long each build and test run took; exits 1 if any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
SANITIZERS=("$@")
[ ${#SANITIZERS[@]} -gt 0 ] || SANITIZERS=(address thread)
status=0
for sanitizer in "${SANITIZERS[@]}"; do
    case "$sanitizer" in
        address | thread) ;;
        *) echo "sanitizers.sh: unknown sanitizer $sanitizer (address or thread)" >&2; exit 2 ;;
    esac
    scratch=".build-$sanitizer"
    reports="$PWD/$scratch/reports"
    started=$(date +%s)
    swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" 2>&1 | grep -E "error|Build" || true
    built=$(date +%s)
    rm -rf "$reports" && mkdir -p "$reports"
    export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
    export JUNCTION_SANITIZER_OPTIONS="detect_leaks=1:halt_on_error=1:second_deadlock_stack=1:log_path=$reports/junction"
    if swift test --sanitize="$sanitizer" --scratch-path "$scratch" --skip-build >"$scratch/test.log" 2>&1; then
        result=passed
    else
        result=FAILED
        status=1
    fi
    finished=$(date +%s)
    summary=$(grep -E "Test run with" "$scratch/test.log" | tail -1)
    report_count=$(find "$reports" -type f | wc -l)
    [ "$report_count" -eq 0 ] || { result="FAILED ($report_count junction reports in $reports)"; status=1; }
    echo "$sanitizer: $result, build $((built - started)) s, tests $((finished - built)) s: ${summary:-no summary (see $scratch/test.log)}"
    grep -hE "ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|SUMMARY" "$scratch/test.log" "$reports"/* 2>/dev/null | sort | uniq -c | head -20 || true
done
exit $status
