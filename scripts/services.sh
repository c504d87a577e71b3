#!/usr/bin/env bash
# Makes sure a PostgreSQL and a Redis server are reachable and prints the environment to use them.
#   eval "$(scripts/services.sh)"
# Uses DATABASE_URL / REDIS_URL when set and reachable. Otherwise starts the machine's PostgreSQL
# cluster and Redis (installing them via scripts/deps.sh when absent). Progress goes to stderr, the
# `export` lines to stdout.
set -euo pipefail
log() { echo "services: $*" >&2; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# ---- PostgreSQL ----------------------------------------------------------------------------
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if [ -z "${DATABASE_URL:-}" ]; then
    if ! pg_up; then
        for v in $(ls /etc/postgresql 2>/dev/null); do
            log "starting PostgreSQL $v"
            $SUDO pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 2>&1 || true
        done
        for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
    fi
    pg_up || { log "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }
    # Debian's default TCP auth is password based: give the postgres role a known local password
    # (harmless where trust auth is configured) so tools connect the same way everywhere.
    if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
        log "setting a local password for the postgres role"
        (cd / && $SUDO -u postgres psql -q -c "ALTER USER postgres PASSWORD 'postgres'" >&2) 2>/dev/null \
            || (cd / && runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'" >&2)
    fi
    base="postgres://postgres:postgres@127.0.0.1:5432"
    db="${WRENN_DB_NAME:-wrenn}"
    if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
        log "creating database $db"
        PGPASSWORD=postgres psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE \"$db\"" >&2
    fi
    echo "export DATABASE_URL='$base/$db'"
    echo "export WRENN_TEST_DATABASE_URL='$base/postgres'"
else
    echo "export DATABASE_URL='$DATABASE_URL'"
    echo "export WRENN_TEST_DATABASE_URL='${WRENN_TEST_DATABASE_URL:-$DATABASE_URL}'"
fi

# ---- Redis ---------------------------------------------------------------------------------
if [ -z "${REDIS_URL:-}" ]; then
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        log "starting Redis on 127.0.0.1:6379"
        mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/wrenn.log >&2
        for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.25; done
    fi
    echo "export REDIS_URL='redis://127.0.0.1:6379'"
else
    echo "export REDIS_URL='$REDIS_URL'"
fi
