#!/usr/bin/env bash
# Install Debian's Chromium and its matching chromedriver for the browser tests.
#
# Idempotent and quick when both are already there. Never fails the build: without a browser
# the end-to-end tests skip and say why, so an apt failure (no network, not root, not Debian)
# only prints a note.
set -u

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi

note() { echo "install_browser.sh: $*; the browser tests will be skipped" >&2; }

if ! command -v apt-get >/dev/null 2>&1; then
    note "apt-get not found (not a Debian-based machine)"
    exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo_cmd=(sudo -n)
    else
        note "not root and no password-less sudo"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install_browser.sh: installing chromium and chromium-driver with apt-get" >&2
if ! "${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1; then
    note "apt-get update failed"
    exit 0
fi
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core >/dev/null 2>&1; then
    note "apt-get install chromium chromium-driver failed"
    exit 0
fi
exit 0
