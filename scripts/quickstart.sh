#!/usr/bin/env bash
# Install dagsmith into .venv, create a demo project and run its example pipeline (offline).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e .
demo="${1:-demo_project}"
[ -d "$demo" ] || .venv/bin/dagsmith init "$demo"
.venv/bin/dagsmith run "$demo" example_pipeline
