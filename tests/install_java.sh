#!/usr/bin/env bash
# Install Debian's Java runtime and PostgreSQL JDBC driver for the Spark engine's tests.
#
# pyspark (the `spark` extra) starts a JVM: it needs `java` (Debian's default-jre-headless,
# Java 17 or later for Spark 4) and, to read the ratings from PostgreSQL, the JDBC driver
# (libpostgresql-jdbc-java, /usr/share/java/postgresql.jar). Idempotent and quick when both are
# there. Never fails the build: without Java the Spark tests skip and say why, so an apt failure
# (no network, not root, not Debian) only prints a note.
set -u

have_java() { command -v java >/dev/null 2>&1 || [ -x "${JAVA_HOME:-/nonexistent}/bin/java" ]; }
have_jdbc() { [ -f /usr/share/java/postgresql.jar ]; }

if have_java && have_jdbc; then
    exit 0
fi

note() { echo "install_java.sh: $*; the Spark tests that need it will be skipped" >&2; }

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

packages=()
have_java || packages+=(default-jre-headless)
have_jdbc || packages+=(libpostgresql-jdbc-java)

export DEBIAN_FRONTEND=noninteractive
echo "install_java.sh: installing ${packages[*]} with apt-get" >&2
if ! "${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1; then
    note "apt-get update failed"
    exit 0
fi
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
    note "apt-get install ${packages[*]} failed"
    exit 0
fi
exit 0
