#!/usr/bin/env bash
# Install what the Docker stage needs from Debian: the engine (docker.io, Docker 20.10),
# debootstrap (the base image is made here, no registry is reachable) and Compose 1.29
# (docker-compose; Compose v2 is not packaged for bookworm).
#
# Idempotent and quick when all three are there. Never fails the build: without an engine the
# Docker tests skip and say why, so an apt failure (no network, not root, not Debian) only
# prints a note. Installing starts no daemon: the tests start their own dockerd.
set -u

if [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] && [ -x /usr/sbin/debootstrap ] \
        && [ -x /usr/bin/docker-compose ]; then
    exit 0
fi

note() { echo "install_docker.sh: $*; the Docker tests will be skipped" >&2; }

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
echo "install_docker.sh: installing docker.io, debootstrap and docker-compose with apt-get" >&2
if ! "${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1; then
    note "apt-get update failed"
    exit 0
fi
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        docker.io debootstrap docker-compose >/dev/null 2>&1; then
    note "apt-get install docker.io debootstrap docker-compose failed"
    exit 0
fi
exit 0
