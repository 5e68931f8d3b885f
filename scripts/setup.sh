#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: redis-server (unless NBA_REDIS_URL points at one), a virtual
# environment in .venv with nba and its dev tools. Re-running is cheap: pip runs only when pyproject.toml
# changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "nba needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

apt_install() {  # Debian packages $@, when apt-get exists; else say what to install and fail
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup: no apt-get here: install $* yourself" >&2
    exit 1
  fi
}

if [ -z "${NBA_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (Debian package)" >&2
  apt_install redis-server
fi
# `scripts/setup.sh --test`: what the tests need besides: a headless browser (tests/test_browser_cors.py)
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium for the browser tests (Debian package)" >&2
  apt_install chromium
fi
# ... and buildah, to build and run the container image (tests/test_container.py), with debootstrap for
# ../shared/tools/container-base.sh, which builds the base image from Debian packages (no registry here)
if [ "${1:-}" = "--test" ] && ! command -v buildah >/dev/null 2>&1; then
  echo "setup: installing buildah and debootstrap for the container test (Debian packages)" >&2
  apt_install buildah debootstrap
fi
# ... and promtool, to check the Prometheus configuration and alert rules (tests/test_deploy.py)
if [ "${1:-}" = "--test" ] && ! command -v promtool >/dev/null 2>&1; then
  echo "setup: installing prometheus for its promtool (Debian package)" >&2
  apt_install prometheus
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.nba-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "setup: installing nba and its dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # byte-compiled at install (a few minutes once): with PYTHONDONTWRITEBYTECODE set, as on some machines,
  # every process would otherwise compile numpy, scipy and aiohttp from source at each start.
  # constraints.txt: the versions CI tested, so a fresh clone runs what passed
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,fast]'
  touch "$stamp"
fi
