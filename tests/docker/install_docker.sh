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

# shellcheck source=tests/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/../apt_install.sh"
apt_install install_docker.sh "the Docker tests will be skipped" docker.io debootstrap docker-compose
