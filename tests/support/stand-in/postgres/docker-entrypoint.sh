#!/usr/bin/env bash
# Entrypoint of the postgres stand-in image, honouring the official image's documented
# contract (written for this image, not copied from it):
# - `postgres ARGS` (or just `-c ...` flags) runs the server; any other command is exec'd
#   as it is (`pg_dump ...`, `psql ...`).
# - Started as root, it makes PGDATA (and the socket directory) the postgres user's and
#   runs the server as that user.
# - An empty PGDATA (no PG_VERSION) is initialised: the superuser POSTGRES_USER (default
#   postgres) with POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#   POSTGRES_INITDB_ARGS passed to initdb, local connections trusted, every other host
#   authenticated by POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), the database
#   POSTGRES_DB (default: the user's name) created, then /docker-entrypoint-initdb.d/*.sh
#   and *.sql run against it on a server that listens on the socket only.
set -Eeuo pipefail

if [ $# -eq 0 ]; then
    set -- postgres
elif [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi
if [ "${1:-}" != postgres ]; then
    exec "$@"
fi
shift

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

superuser=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$superuser}

initialise() {
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
        echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        echo "       (or set POSTGRES_HOST_AUTH_METHOD=trust to allow every connection)" >&2
        exit 1
    fi
    local pwfile
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # POSTGRES_INITDB_ARGS is a list of words, as in the official image.
    # shellcheck disable=SC2086
    initdb --username="$superuser" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
        >>"$PGDATA/pg_hba.conf"

    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$database" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --username "$superuser" --dbname postgres \
            --set name="$database" <<<'CREATE DATABASE :"name";'
    fi
    local script
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) echo "running $script"; bash "$script" ;;
            *.sql) echo "running $script"
                   psql -v ON_ERROR_STOP=1 --username "$superuser" --dbname "$database" -f "$script" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initialise
fi
exec postgres "$@"
