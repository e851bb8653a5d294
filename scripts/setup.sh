#!/usr/bin/env bash
# Set up UCS on a fresh machine with Python 3.11 and the package registries:
# a virtualenv in .venv with UCS installed (editable) and its test tools.
#   --browser  also install Debian's chromium for the agent-bar browser tests
#              (playwright drives /usr/bin/chromium; never a browser download)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
    else
        echo "setup: chromium is missing; install it with: sudo apt-get install chromium" >&2
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
