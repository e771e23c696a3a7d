#!/usr/bin/env bash
# Installs everything pytest-sipflow needs into .venv (Python 3.11+), plus Debian's
# sip-tester (SIPp), which only the benchmarks use to compare against.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v sipp >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester >/dev/null
  else
    echo "note: sipp (Debian package sip-tester) not installed; only benchmarks/run.py needs it" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
echo "installed: run the tests with  .venv/bin/python -m pytest"
