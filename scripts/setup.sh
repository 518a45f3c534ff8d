#!/usr/bin/env bash
# Create .venv with a CPU build of torch (installed first, so that nothing pulls a multi-GB
# CUDA build), then faceqan itself with every extra and the test tools. Safe to rerun.
# For a CUDA build instead, install it into .venv before running this (README, "Install").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
CPU_INDEX=https://download.pytorch.org/whl/cpu
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip

if .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: keeping the torch already in .venv ($(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
else
  # What would the default index install? On Linux x86-64 PyPI's torch pulls nvidia-* CUDA
  # wheels: then take the CPU build from PyTorch's CPU index instead. A machine whose own
  # index already serves a CPU build (or macOS, Windows, ARM) installs the default.
  report=$(mktemp)
  "${PIP[@]}" install --quiet --dry-run --ignore-installed --report "$report" "$TORCH"
  if grep -Eq '"name": "(nvidia-|triton)' "$report"; then
    echo "setup: the default $TORCH pulls CUDA; installing the CPU build from $CPU_INDEX"
    "${PIP[@]}" install --quiet --timeout 60 --retries 1 --index-url "$CPU_INDEX" "$TORCH"
  else
    "${PIP[@]}" install --quiet "$TORCH"
  fi
  rm -f "$report"
fi
"${PIP[@]}" install --quiet -e ".[test]"
