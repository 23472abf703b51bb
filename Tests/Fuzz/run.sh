#!/usr/bin/env bash
# Builds Junction's libFuzzer targets (every parser of untrusted bytes) with -sanitize=fuzzer,address
# and runs each for a while, starting from the seed corpus in Tests/Fuzz/Corpus.
#
#   Tests/Fuzz/run.sh [--seconds 60] [--jobs 1] [TARGET...]     # default: every target
#
# Findings (crash-*, leak-*, timeout-*) go to Tests/Fuzz/.work/findings/ and make the script exit 1;
# the corpus a run grows stays in Tests/Fuzz/.work/corpus/ (not committed). Prints one line per
# target: seconds, executions, corpus size, findings. Needs: swift (with libFuzzer, as the
# swift.org toolchains for Linux have it).
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_EACH=60
JOBS=1
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=($(ls Corpus))
fi

echo "building ${TARGETS[*]} (-sanitize=fuzzer,address)"
for target in "${TARGETS[@]}"; do
    swift build --product "$target" -Xswiftc -sanitize=fuzzer,address 2>&1 | grep -E "error|Build of" || true
    [ -x ".build/debug/$target" ] || { echo "run.sh: $target did not build" >&2; exit 1; }
done

mkdir -p .work/findings
export SWIFT_BACKTRACE=enable=no
status=0
run_one() {
    local target=$1
    local work=".work/corpus/$target"
    mkdir -p "$work"
    local log=".work/$target.log"
    # -rss_limit_mb: a parser that balloons on some input is a finding too.
    ".build/debug/$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix=".work/findings/$target-" -print_final_stats=1 "$work" "Corpus/$target" >"$log" 2>&1 || true
    local runs corpus found
    runs=$(grep -E "^stat::number_of_executed_units" "$log" | awk '{print $2}')
    corpus=$(ls "$work" | wc -l)
    found=$(ls .work/findings 2>/dev/null | grep -c "^$target-" || true)
    printf '%-22s %6ss %12s execs %6s corpus %3s findings\n' "$target" "$SECONDS_EACH" "${runs:-?}" "$corpus" "$found"
}
export -f run_one
export SECONDS_EACH
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'
if ls .work/findings/* >/dev/null 2>&1; then
    echo "findings (reproduce with .build/debug/TARGET FILE):"
    ls -1 .work/findings/
    status=1
fi
exit $status
