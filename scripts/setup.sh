#!/usr/bin/env bash
# Create .venv with the CPU build of torch (pinned, installed first so that nothing pulls a
# multi-GB CUDA build), then faceqan itself with its test extras. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
