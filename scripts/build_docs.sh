#!/usr/bin/env bash
# The documentation site, built strictly: every warning (a broken link or anchor, a
# malformed docstring, a page left out of the table of contents, an import that fails
# in the API reference, a `contents` directive, which Furo draws as an ERROR box: see
# docs/conf.py) is an error.  Installs nothing: the tools come with the `docs`
# extra (pip install '.[docs]').  -E re-reads every page, so no warning hides in a cache.
# Usage: scripts/build_docs.sh [output dir [source dir]]
#        (defaults: docs/_build/html, docs; PYTHON=/path/to/python, default python3)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$repo/docs/_build/html"}
src=${2:-"$repo/docs"}
python=${PYTHON:-python3}

if ! "$python" -c "import sphinx, myst_parser, furo" 2>/dev/null; then
    echo "the docs tools are not installed for $python: pip install '.[docs]'" >&2
    exit 2
fi
exec "$python" -m sphinx -b html -E -W --keep-going -q "$src" "$out"
