#!/usr/bin/env bash
# Regenerates `.sqlx/`, the offline data of core's checked queries (`sqlx::query!` and kin),
# which every build uses instead of a database (SQLX_OFFLINE=true in .cargo/config.toml).
# Run it (`make sqlx-prepare`) after changing a query or adding a migration, and commit `.sqlx/`.
#
# It makes a scratch database on the local PostgreSQL (scripts/services.sh), applies every
# migration of migrations/ with sqlx-cli (installed at the workspace's sqlx version when
# missing), describes each query against it and drops it again. Extensions' own tables are not
# needed: core's queries read only core's schema.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wrenn-target}"
log() { echo "sqlx-prepare: $*" >&2; }

version="$(awk '/^name = "sqlx"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
if ! command -v cargo-sqlx >/dev/null 2>&1 || ! cargo sqlx --version 2>/dev/null | grep -q " $version\$"; then
    log "installing sqlx-cli $version"
    # Its own target directory, so the install does not wait on (or evict) the workspace build.
    CARGO_TARGET_DIR=/var/tmp/sqlx-cli-target cargo install sqlx-cli --version "$version" \
        --no-default-features --features postgres,rustls --locked
fi

eval "$(bash scripts/services.sh)"
db="wrenn_sqlx_prepare_$$"
url="${WRENN_TEST_DATABASE_URL%/*}/$db"
drop() { sqlx database drop -y --database-url "$url" >/dev/null 2>&1 || true; }
trap drop EXIT
log "scratch database $db"
sqlx database create --database-url "$url"
sqlx migrate run --source migrations --database-url "$url" >&2
# SQLX_OFFLINE=false overrides the .cargo/config.toml default for this one check.
DATABASE_URL="$url" SQLX_OFFLINE=false cargo sqlx prepare --workspace
log "done: commit .sqlx/"
