#!/usr/bin/env bash
# The whole test suite: installs dagsmith with its test extras into .venv, then runs pytest.
# Services (PostgreSQL at 127.0.0.1:5432, GCS/BigQuery/S3 emulators, the server, Chromium)
# are started by the test fixtures; nothing is skipped for want of one.
# Test data (NYC TLC and course files): DAGSMITH_TEST_DATA, default ../shared/data beside the checkout.
#
# A full run (no arguments) then runs the unit tests a second time in .venv-pandas3 with
# pandas 3: the default install pins pandas 2 (as Mage does) but dagsmith's own code must
# keep working for users who opt into pandas 3. That pass takes the unit and compat tests
# whose code can meet pandas (--pandas-dependent; the modules it leaves out, and how they were
# found, are PANDAS_FREE in tests/conftest.py). DAGSMITH_SKIP_PANDAS3=1 skips that pass.
#
# Both passes run on 2 pytest-xdist workers (DAGSMITH_TEST_WORKERS, default 2; 0 = one process).
# With arguments, they go to pytest as they are (add -n 2 yourself to parallelise).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ".[dev]"
# The browser tests drive Debian's chromium through Playwright (which cannot download browsers here).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests (apt-get)…"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: the browser tests need it (sudo apt-get install -y chromium)" >&2
  fi
fi
export DAGSMITH_TEST_DATA="${DAGSMITH_TEST_DATA:-$(cd .. && pwd)/shared/data}"
# Compile dagsmith once: with PYTHONDONTWRITEBYTECODE=1 (set in some shells) no .pyc would ever be
# written, and each of the suite's few hundred `dagsmith`/`python -m dagsmith` children would
# compile its modules again. (compileall writes the cache whatever that variable says.)
.venv/bin/python -m compileall -q -j 2 src/dagsmith >/dev/null || true
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
# The BigQuery emulator's venv (idempotent): made here, not inside the first BigQuery test, where
# its pip install would count against that test's timeout and the other worker would wait on it.
bash scripts/setup-emulators.sh
WORKERS="${DAGSMITH_TEST_WORKERS:-2}"
PARALLEL=(-n "$WORKERS" --dist worksteal)
if [ "$WORKERS" = 0 ]; then PARALLEL=(-p no:xdist); fi
if [ -n "${DAGSMITH_SKIP_PANDAS3:-}" ]; then
  exec .venv/bin/python -m pytest -q "${PARALLEL[@]}"
fi
.venv/bin/python -m pytest -q "${PARALLEL[@]}"

echo "== unit tests again on pandas 3 (.venv-pandas3) =="
if [ ! -x .venv-pandas3/bin/python ]; then
  python3 -m venv .venv-pandas3
fi
.venv-pandas3/bin/pip install --quiet --upgrade pip
.venv-pandas3/bin/pip install --quiet -e ".[dev]"
# dagsmith pins pandas<3 for users; pip reports that pin as a conflict here, on purpose
.venv-pandas3/bin/pip install --quiet --upgrade "pandas>=3,<4" 2>&1 \
  | grep -v -e "dependency resolver does not currently take into account" -e "requires pandas<3" || true
.venv-pandas3/bin/python -c "import pandas, sys; sys.exit(0 if pandas.__version__.startswith('3.') else 'pandas 3 did not install')"
exec .venv-pandas3/bin/python -m pytest -q "${PARALLEL[@]}" -m "not integration and not e2e" --pandas-dependent tests/unit tests/compat
