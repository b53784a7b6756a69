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

# shellcheck source=tests/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"
packages=()
have_java || packages+=(default-jre-headless)
have_jdbc || packages+=(libpostgresql-jdbc-java)

apt_install install_java.sh "the Spark tests that need it will be skipped" "${packages[@]}"
