#!/usr/bin/env bash
# Idempotent setup of a fresh Linux machine: Python venv in .venv with every dependency, and (with
# --test) the system tools the test suite drives for real: Debian's ffmpeg and chromium.
# CPU machines install the CPU build of torch through constraints-cpu.txt (an unconstrained install
# would pull CUDA torch and several GB of nvidia wheels); machines with an NVIDIA driver get PyPI's
# CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

need=()
if [ "$want_test" = 1 ]; then
  command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "bootstrap: apt-get install ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=$(cat pyproject.toml constraints-cpu.txt | sha256sum | cut -c1-16)
if [ "$(cat .venv/.omnivideo-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into .venv (first run: about a minute)" >&2
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    .venv/bin/pip install -q -e ".[dev]"
  else
    PIP_CONSTRAINT="$PWD/constraints-cpu.txt" .venv/bin/pip install -q "torch==2.13.0"
    PIP_CONSTRAINT="$PWD/constraints-cpu.txt" .venv/bin/pip install -q -e ".[dev]"
  fi
  echo "$stamp" > .venv/.omnivideo-stamp
fi
