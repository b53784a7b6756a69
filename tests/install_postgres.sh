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

note() { echo "install_postgres.sh: $*; the PostgreSQL tests will be skipped" >&2; }

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
echo "install_postgres.sh: installing postgresql with apt-get" >&2
if ! "${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1; then
    note "apt-get update failed"
    exit 0
fi
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; then
    note "apt-get install postgresql failed"
    exit 0
fi
exit 0
