#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the database tests.
#
# Idempotent and quick when it is already there. Never fails the build: without PostgreSQL the
# tests against it skip and say why, so an apt failure (no network, not root, not Debian) only
# prints a note. The tests start their own server in a temporary folder; the package's own
# cluster is not used.
set -u

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    exit 0
fi

# shellcheck source=tests/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"
apt_install install_postgres.sh "the PostgreSQL tests will be skipped" postgresql
