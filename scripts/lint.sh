#!/usr/bin/env bash
# The lint and type checks CI runs (.ci/run, .github/workflows/test.yml): ruff's rules and
# formatting on the Python sources, mypy on the package (configured in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
"$python" -m ruff check src tests benchmarks
"$python" -m ruff format --check src tests benchmarks
"$python" -m mypy
