#!/usr/bin/env bash
# The packaging, proved locally (what .github/workflows/wheels.yml does on GitHub):
#   1. from a clean clone, build the sdist, then the wheel from that sdist (python -m build);
#   2. the sdist holds the build sources (.pyx, .h) and no build product (.c, .so, .o);
#      the wheel holds the stub and py.typed, and none of the build sources;
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

echo "== 2. sdist and wheel contents =="
tar tzf "$sdist" > "$work/sdist.txt"
for source in journal/_writer_c.pyx journal/_writer_c.pxd journal/_format.pxd \
              containers/_containers_c.pyx _crc32c.h _sys.h _core.pyi py.typed; do
    grep -q "/src/safe_data/$source$" "$work/sdist.txt" || { echo "$source is missing from the sdist"; exit 1; }
done
if grep -E "\.(c|so|o)$" "$work/sdist.txt"; then echo "build products in the sdist"; exit 1; fi
echo "ok: the sdist has the sources (.pyx, .h), no build product ($(wc -l < "$work/sdist.txt") files)"
"$work/tools/bin/python" -m zipfile -l "$wheel" | awk 'NR > 1 {print $1}' > "$work/wheel.txt"
for typing in safe_data/_core.pyi safe_data/py.typed; do
    grep -qx "$typing" "$work/wheel.txt" || { echo "$typing is missing from the wheel"; exit 1; }
done
if grep -E "\.(pyx|pxd|h|c)$" "$work/wheel.txt"; then echo "build sources in the wheel"; exit 1; fi
echo "ok: the wheel has the stub and py.typed, no build source ($(wc -l < "$work/wheel.txt") files)"

echo "== 3. auditwheel show =="
"$work/tools/bin/auditwheel" show "$wheel" | tee "$work/auditwheel.txt"
grep -q "manylinux" "$work/auditwheel.txt" || { echo "not manylinux-compatible"; exit 1; }

echo "== 4. the installed wheel passes the suite, extension required =="
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel[test,docs,browser,parquet]"
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
