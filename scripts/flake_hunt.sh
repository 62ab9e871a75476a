#!/usr/bin/env bash
# The suite under CPU load, several times, on both implementations: timing assumptions
# in tests (a child "surely" ready after a sleep, a race only a slow machine loses) show
# up here before they show up in CI. Prints each run's summary and its failures; exits 1
# if any run failed.
# Usage: scripts/flake_hunt.sh [rounds (default 3)] [busy processes (default: one per core)]
# Runs with the python on PATH (or $PYTHON), in this checkout, as the installed package is.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
hogs=${2:-$(nproc)}
python=${PYTHON:-python}

pids=()
for _ in $(seq "$hogs"); do (while :; do :; done) & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

failed=0
for round in $(seq "$rounds"); do
    for mode in extension twin; do
        if [ $mode = extension ]; then env=SAFE_DATA_REQUIRE_EXTENSIONS=1; else env=SAFE_DATA_NO_EXTENSIONS=1; fi
        log=$(mktemp)
        if env $env "$python" -m pytest -q -rfE -p no:cacheprovider > "$log" 2>&1; then
            echo "round $round, $mode: $(tail -1 "$log")"
        else
            echo "round $round, $mode: FAILED"; grep -E "^(FAILED|ERROR) |passed|failed" "$log" || tail -20 "$log"
            failed=1
        fi
        rm -f "$log"
    done
done
exit $failed
