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

# shellcheck source=tests/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/../apt_install.sh"
apt_install install_browser.sh "the browser tests will be skipped" chromium chromium-driver fonts-dejavu-core
