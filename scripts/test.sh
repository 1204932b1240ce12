#!/usr/bin/env bash
# The whole test suite: installs dagsmith with its test extras into .venv, then runs pytest.
# Services (PostgreSQL at 127.0.0.1:5432, GCS/BigQuery/S3 emulators, the server, Chromium)
# are started by the test fixtures; nothing is skipped for want of one.
# Test data (NYC TLC and course files): DAGSMITH_TEST_DATA, default ../shared/data beside the checkout.
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
exec .venv/bin/python -m pytest -q "$@"
