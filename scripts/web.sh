#!/usr/bin/env bash
# The dashboard (web/): install its tools, build it, test it in a real browser.
#   bash scripts/web.sh install   Chromium (apt, if missing) and the npm packages (npm ci)
#   bash scripts/web.sh build     install + type-check + Vite build into web/dist
#   bash scripts/web.sh test      build + cargo build wrenn-cp and wrenn-agent + the browser tests
# wrenn-cp serves web/dist (or WRENN_WEB_DIR). The tests start their own wrenn-cp, a fresh
# database on the PostgreSQL that scripts/services.sh provides, and a throw-away redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { echo "web: $*" >&2; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

install() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "installing Node.js and npm"
        $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nodejs npm
    fi
    # Vite 7 needs Node.js 20.19+ (Debian 12's own nodejs package is 18).
    if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; then
        log "Node.js $(node --version) is too old: the dashboard build needs 20.19 or newer"
        exit 1
    fi
    if [ -z "${CHROMIUM_PATH:-}" ] && [ ! -x /usr/bin/chromium ]; then
        log "installing Chromium (browser tests)"
        $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
    fi
    # Reinstall only when package-lock.json changed since the last install.
    if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
        log "installing npm packages"
        (cd web && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

build() {
    install
    log "building the dashboard into web/dist"
    (cd web && npm run --silent build)
}

test() {
    build
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wrenn-target}"
    log "building wrenn-cp and wrenn-agent"
    cargo build -q -p wrenn-core --bin wrenn-cp -p wrenn-agent --bin wrenn-agent
    export WRENN_CP_BIN="$CARGO_TARGET_DIR/debug/wrenn-cp"
    # The capsule page's tests run a real agent and gVisor capsule (they say why when they cannot).
    export WRENN_AGENT_BIN="$CARGO_TARGET_DIR/debug/wrenn-agent"
    if [ -z "${WRENN_TEST_DATABASE_URL:-}" ]; then
        eval "$(bash scripts/services.sh)"
    fi
    command -v redis-server >/dev/null 2>&1 || bash scripts/deps.sh >/dev/null
    log "running the browser tests"
    (cd web && node --test --test-concurrency=1 tests/)
}

case "${1:-}" in
    install) install ;;
    build) build ;;
    test) test ;;
    *) echo "usage: $0 install|build|test" >&2; exit 2 ;;
esac
