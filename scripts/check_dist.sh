#!/usr/bin/env bash
# The packaging, proved locally (what .github/workflows/wheels.yml does on GitHub):
#   1. from a clean clone, build the sdist, then the wheel from that sdist (python -m build);
#   2. the sdist holds the .pyx and no build product (.c, .so, .o);
#   3. `auditwheel show`: the wheel is manylinux-compatible;
#   4. the wheel installs into a fresh venv and passes the test suite with the extension
#      required (the suite imports the installed wheel: the package is under src/);
#   5. SAFE_DATA_NO_EXTENSIONS=1 builds a pure-Python wheel (py3-none-any);
#   6. without a working C compiler (CC=false) `pip install` still succeeds, with the
#      pure-Python twin, and SAFE_DATA_REQUIRE_EXTENSIONS=1 turns that into a failure.
# Usage: scripts/check_dist.sh [python]   (default: python3)
set -euo pipefail
python=${1:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

git clone -q "$repo" "$work/src"
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install -q build auditwheel

echo "== 1. sdist, then the wheel from it =="
(cd "$work/src" && "$work/tools/bin/python" -m build --outdir "$work/dist" >/dev/null)
sdist=$(ls "$work"/dist/*.tar.gz)
wheel=$(ls "$work"/dist/*.whl)
echo "$(basename "$sdist")  $(basename "$wheel")"

echo "== 2. sdist contents =="
tar tzf "$sdist" > "$work/sdist.txt"
grep -q "/src/safe_data/journal/_writer_c.pyx$" "$work/sdist.txt" && grep -q "/src/safe_data/containers/_containers_c.pyx$" "$work/sdist.txt" && grep -q "/src/safe_data/journal/_writer_c.pxd$" "$work/sdist.txt" || { echo "a .pyx or .pxd is missing"; exit 1; }
if grep -E "\.(c|so|o)$" "$work/sdist.txt"; then echo "build products in the sdist"; exit 1; fi
echo "ok: .pyx present, no build product ($(wc -l < "$work/sdist.txt") files)"

echo "== 3. auditwheel show =="
"$work/tools/bin/auditwheel" show "$wheel" | tee "$work/auditwheel.txt"
grep -q "manylinux" "$work/auditwheel.txt" || { echo "not manylinux-compatible"; exit 1; }

echo "== 4. the installed wheel passes the suite, extension required =="
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel[test]"
(cd "$work/src" && SAFE_DATA_REQUIRE_EXTENSIONS=1 "$work/venv/bin/python" -m pytest -q -p no:cacheprovider)
"$work/venv/bin/python" -c 'import safe_data, safe_data._impl as impl; assert impl.EXTENSION; print("extension loaded from", safe_data.__file__)'

echo "== 5. the pure-Python wheel =="
(cd "$work/src" && SAFE_DATA_NO_EXTENSIONS=1 "$work/tools/bin/python" -m build --wheel --outdir "$work/pure" >/dev/null)
pure=$(ls "$work"/pure/*.whl)
case "$pure" in *-py3-none-any.whl) echo "ok: $(basename "$pure")";; *) echo "not pure: $pure"; exit 1;; esac

echo "== 6. no C compiler: the twin, or an error when the extension is required =="
"$python" -m venv "$work/nocc"
CC=false "$work/nocc/bin/pip" install -q "$work/src"
"$work/nocc/bin/python" -c 'import safe_data._impl as impl; assert not impl.EXTENSION; print("ok: installed with the pure-Python twin")'
"$python" -m venv "$work/nocc-required"
if CC=false SAFE_DATA_REQUIRE_EXTENSIONS=1 "$work/nocc-required/bin/pip" install -q "$work/src" >/dev/null 2>&1; then
    echo "SAFE_DATA_REQUIRE_EXTENSIONS=1 installed without the extension"; exit 1
fi
echo "ok: SAFE_DATA_REQUIRE_EXTENSIONS=1 refuses to install without it"
echo "all packaging checks passed"
