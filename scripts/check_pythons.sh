#!/usr/bin/env bash
# The suite on other CPython versions than the development one: for each interpreter given
# (default: whichever of python3.10 ... python3.14 are found, on PATH or under pyenv), a clean
# clone, a fresh venv, `pip install '.[test,docs,browser,parquet]'` (the extension built from source), then the
# suite on the extension (required) and on the pure-Python twin.
# Usage: scripts/check_pythons.sh [/path/to/python ...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
    for v in 3.10 3.11 3.12 3.13 3.14; do
        found=$(command -v "python$v" || ls -d "$HOME"/.pyenv/versions/"$v".*/bin/python3 2>/dev/null | tail -1 || true)
        [ -n "$found" ] && pythons+=("$found")
    done
fi
failed=0
for python in "${pythons[@]}"; do
    version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    work=$(mktemp -d)
    git clone -q "$repo" "$work/src"
    "$python" -m venv "$work/venv"
    "$work/venv/bin/pip" install -q "$work/src[test,docs,browser,parquet]"
    for mode in extension twin; do
        if [ $mode = extension ]; then env=SAFE_DATA_REQUIRE_EXTENSIONS=1; else env=SAFE_DATA_NO_EXTENSIONS=1; fi
        if (cd "$work/src" && env $env "$work/venv/bin/python" -m pytest -q -rfE -p no:cacheprovider > "$work/log" 2>&1); then
            echo "CPython $version, $mode: $(tail -1 "$work/log")"
        else
            echo "CPython $version, $mode: FAILED"; grep -E "^(FAILED|ERROR) |passed|failed" "$work/log"
            failed=1
        fi
    done
    rm -rf "$work"
done
exit $failed
