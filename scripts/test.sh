#!/usr/bin/env bash
# The whole test suite: installs dagsmith with its test extras into .venv, then runs pytest.
# Services (PostgreSQL at 127.0.0.1:5432, GCS/BigQuery/S3 emulators, the server, Chromium)
# are started by the test fixtures; nothing is skipped for want of one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ".[dev]"
exec .venv/bin/python -m pytest -q "$@"
