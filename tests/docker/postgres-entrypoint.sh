#!/bin/sh
# The PostgreSQL server of the Docker stage, in the container that stands in for the official
# postgres image: the same variables (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB) and data
# folder (/var/lib/postgresql/data, the compose file's volume), Debian's server. With the host's
# network it listens on PGHOST:PGPORT (127.0.0.1 and a port the test picked), which pg_isready,
# the compose file's health check, reads too.
set -eu

data=/var/lib/postgresql/data
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$data" /run/postgresql
chown postgres:postgres "$data" /run/postgresql
chmod 700 "$data"

if [ ! -s "$data/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
    user=${POSTGRES_USER:-postgres}
    database=${POSTGRES_DB:-$user}
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
    chown postgres "$password_file"
    as_postgres "$bin/initdb" -D "$data" -U "$user" --pwfile="$password_file" \
        --auth=scram-sha-256 -E UTF8 >/dev/null
    rm -f "$password_file"
    if [ "$database" != postgres ]; then
        echo "CREATE DATABASE \"$database\" OWNER \"$user\"" \
            | as_postgres "$bin/postgres" --single -D "$data" postgres >/dev/null
    fi
    echo "postgres-entrypoint: created the cluster, user $user, database $database"
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$bin/postgres" -D "$data" -c "listen_addresses=${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}"
