#!/usr/bin/env bash
# Creates the BigQuery emulator's own Python 3.13 venv under .emulators/bq (idempotent).
#
# local-bigquery needs Python >= 3.13 and DuckDB 1.5.5 with five extensions that DuckDB
# cannot download on these machines; they come from PyPI wheels and are copied into a
# HOME that belongs to the emulator only (.emulators/bq/duckdb-home). Recipe: EMULATORS.md.
# Usage: scripts/setup-emulators.sh   (from anywhere; paths are relative to the repo)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.emulators/bq"
DUCKDB_VERSION=1.5.5
LOCAL_BIGQUERY_VERSION=0.3.2
MARKER="$VENV/.ready-$LOCAL_BIGQUERY_VERSION-$DUCKDB_VERSION"

if [[ -f "$MARKER" && -x "$VENV/bin/local-bigquery" ]]; then
    echo "BigQuery emulator venv already set up: $VENV"
    exit 0
fi

find_python313() {
    # a pyenv shim may exist without the version being active: check the candidate runs
    if python3.13 -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then
        command -v python3.13; return 0
    fi
    local root
    if command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; else root="${PYENV_ROOT:-$HOME/.pyenv}"; fi
    local candidate
    for candidate in $(ls -d "$root"/versions/3.13.*/bin/python3 2>/dev/null | sort -V -r); do
        if "$candidate" -c 'import sys' >/dev/null 2>&1; then echo "$candidate"; return 0; fi
    done
    return 1
}

PY313="$(find_python313)" || {
    echo "ERROR: Python 3.13 not found (tried python3.13 on PATH and \$(pyenv root)/versions/3.13.*)." >&2
    echo "       The BigQuery emulator (local-bigquery) needs Python >= 3.13: install it, e.g. 'pyenv install 3.13'." >&2
    exit 1
}
echo "Using $PY313"

rm -rf "$VENV"
"$PY313" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "local-bigquery==$LOCAL_BIGQUERY_VERSION" "duckdb==$DUCKDB_VERSION" pytz \
    "duckdb-extension-ducklake==$DUCKDB_VERSION" "duckdb-extension-spatial==$DUCKDB_VERSION" \
    "duckdb-extension-icu==$DUCKDB_VERSION" "duckdb-extension-json==$DUCKDB_VERSION" \
    "duckdb-extension-httpfs==$DUCKDB_VERSION"

PLATFORM="$("$VENV/bin/python" -c 'import duckdb; print(duckdb.sql("pragma platform").fetchone()[0])')"
EXT_DIR="$VENV/duckdb-home/.duckdb/extensions/v$DUCKDB_VERSION/$PLATFORM"
mkdir -p "$EXT_DIR"
shopt -s nullglob
copied=0
for ext in "$VENV"/lib/python3.13/site-packages/duckdb_extension_*/extensions/v"$DUCKDB_VERSION"/*.duckdb_extension; do
    cp "$ext" "$EXT_DIR/"
    copied=$((copied + 1))
done
if [[ "$copied" -lt 5 ]]; then
    echo "ERROR: expected 5 DuckDB extensions from the duckdb-extension-* wheels, found $copied" >&2
    exit 1
fi
touch "$MARKER"
echo "BigQuery emulator ready: HOME=$VENV/duckdb-home $VENV/bin/local-bigquery serve --host 127.0.0.1 --port 9050"
