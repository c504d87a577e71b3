#!/usr/bin/env bash
# `make dev`: sets up and runs Wrenn on this machine — a local PostgreSQL and Redis when none is
# configured, the binaries, the base image, the control plane and one agent registered to it — then
# prints where to go next. Ctrl-C stops the control plane and the agent it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEV="$ROOT/.wrenn-dev"
mkdir -p "$DEV/logs" "$DEV/mail"
log() { printf '\033[1mdev:\033[0m %s\n' "$*"; }

export WRENN_DIR="${WRENN_DIR:-/var/lib/wrenn}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wrenn-target}"

log "installing system packages (if missing)"
bash scripts/deps.sh >/dev/null

log "starting PostgreSQL and Redis (if not configured)"
eval "$(bash scripts/services.sh)"

# Secrets are generated once per checkout and kept in .wrenn-dev/env (0600).
if [ ! -f "$DEV/env" ]; then
    umask 077
    cat > "$DEV/env" <<ENV
JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
WRENN_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
ENV
fi
set -a; . "$DEV/env"; set +a
export WRENN_CP_LISTEN_ADDR="${WRENN_CP_LISTEN_ADDR:-127.0.0.1:8000}"
PORT="${WRENN_CP_LISTEN_ADDR##*:}"
export WRENN_PUBLIC_URL="${WRENN_PUBLIC_URL:-http://localhost:$PORT}"
export WRENN_DOMAIN="${WRENN_DOMAIN:-localhost}"
export WRENN_MAIL_DIR="$DEV/mail"
export WRENN_DEFAULT_TEMPLATE="${WRENN_DEFAULT_TEMPLATE:-minimal-debian}"
export WRENN_DEV_MODE=1
# E2B's API and data plane (README "Use the E2B SDKs with Wrenn"), plain HTTP on loopback.
export WRENN_E2B_LISTEN="${WRENN_E2B_LISTEN:-127.0.0.1:3000}"
E2B_URL="http://${WRENN_E2B_LISTEN/0.0.0.0/127.0.0.1}"
export RUST_LOG="${RUST_LOG:-info}"
# Prometheus metrics: the control plane's /metrics needs this bearer token; the agent's are on
# a loopback port of their own.
export WRENN_METRICS_TOKEN="${WRENN_METRICS_TOKEN:-dev-metrics}"
export WRENN_AGENT_METRICS_LISTEN="${WRENN_AGENT_METRICS_LISTEN:-127.0.0.1:9465}"
URL="http://127.0.0.1:$PORT"

log "building wrenn-cp, wrenn-agent and the static envd"
make -s build >"$DEV/logs/build.log" 2>&1 || { tail -n 40 "$DEV/logs/build.log"; exit 1; }

log "making sure the base images exist (minimal-debian takes about a minute the first time)"
bash scripts/images-ensure.sh

log "migrating the database"
builds/wrenn-cp migrate

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

log "starting the control plane on $URL (log: .wrenn-dev/logs/cp.log)"
builds/wrenn-cp >"$DEV/logs/cp.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "$URL/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$URL/health" >/dev/null || { tail -n 40 "$DEV/logs/cp.log"; exit 1; }

# ---- the agent: registered automatically in dev mode --------------------------------------
AGENT_ADDR="${WRENN_AGENT_ADDR:-127.0.0.1:8443}"
if builds/wrenn-cp --help 2>/dev/null | grep -q dev-host-token; then
    if [ ! -f "$WRENN_DIR/host-token" ]; then
        # Logs share stdout with the token: keep only the token line.
        token=$(builds/wrenn-cp dev-host-token | grep -oE "^whr_[0-9a-f]+$" | tail -n1)
        reg=(--register "$token")
    else
        reg=()
    fi
    log "starting the agent on $AGENT_ADDR (log: .wrenn-dev/logs/agent.log)"
    builds/wrenn-agent "${reg[@]}" --address "$AGENT_ADDR" --cp-url "$URL" --wrenn-dir "$WRENN_DIR" \
        >"$DEV/logs/agent.log" 2>&1 &
    pids+=($!)
else
    log "this control plane has no host registration yet: running without an agent"
fi

# ---- a ready-to-use account and API key, made through the public API -----------------------
CRED="$DEV/credentials"
if [ ! -f "$CRED" ]; then
    email="dev@wrenn.local"; pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    curl -fsS -X POST "$URL/v1/auth/signup" -H 'content-type: application/json' \
        -d "{\"email\":\"$email\",\"password\":\"$pass\",\"name\":\"Dev\"}" >/dev/null
    sleep 0.3
    token=$(grep -rhoE 'token=[A-Za-z0-9_-]+' "$DEV/mail" | tail -n1 | cut -d= -f2)
    jar="$DEV/cookies"; rm -f "$jar"
    curl -fsS -c "$jar" -X POST "$URL/v1/auth/activate" -H 'content-type: application/json' \
        -d "{\"token\":\"$token\"}" >/dev/null
    csrf=$(awk '$6=="wrenn_csrf"{print $7}' "$jar")
    key=$(curl -fsS -b "$jar" -X POST "$URL/v1/api-keys" -H 'content-type: application/json' \
        -H "X-CSRF-Token: $csrf" -d '{"name":"dev"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
    umask 077; printf 'EMAIL=%s\nPASSWORD=%s\nAPI_KEY=%s\n' "$email" "$pass" "$key" > "$CRED"
fi
. "$CRED"

# ---- "running" means a capsule can be created: wait for the agent, prove it with one --------
log "waiting until a capsule can be created (the agent registers and reports in)"
ok=""
for _ in $(seq 1 120); do
    out=$(curl -sS -X POST "$URL/v1/capsules" -H "X-API-Key: $API_KEY" \
        -H 'content-type: application/json' -d '{}' -w '\n%{http_code}' 2>/dev/null || true)
    code=$(printf '%s' "$out" | tail -n1)
    if [ "$code" = "201" ]; then
        id=$(printf '%s' "$out" | head -n1 | sed -E 's/.*"id":"([^"]+)".*/\1/')
        curl -fsS -X DELETE "$URL/v1/capsules/$id" -H "X-API-Key: $API_KEY" >/dev/null || true
        ok=1
        break
    fi
    sleep 1
done
if [ -z "$ok" ]; then
    echo "dev: no capsule could be created within 2 minutes; last answer: $out" >&2
    tail -n 30 "$DEV/logs/agent.log" >&2 || true
    exit 1
fi
curl -fsS "$E2B_URL/health" >/dev/null || { echo "dev: the E2B listener ($E2B_URL) does not answer" >&2; tail -n 20 "$DEV/logs/cp.log" >&2; exit 1; }

cat <<INFO

  Wrenn is running.
    Dashboard       $WRENN_PUBLIC_URL/
    Control plane   $URL          (API docs: $URL/docs, OpenAPI: $URL/openapi.json)
    Log in          $EMAIL / $PASSWORD   (or sign up; mail lands in .wrenn-dev/mail/)
    API key         $API_KEY

  Create a capsule and run a command in it:
    curl -s -X POST $URL/v1/capsules -H "X-API-Key: $API_KEY" -H 'content-type: application/json' -d '{}'
    curl -s -X POST $URL/v1/capsules/<id>/exec -H "X-API-Key: $API_KEY" -H 'content-type: application/json' \\
         -d '{"cmd":"uname","args":["-a"]}'

  Or drive it with the E2B SDKs (pip install e2b / npm install e2b), unchanged:
    export E2B_API_KEY=e2b_${API_KEY#wrn_} E2B_API_URL=$E2B_URL E2B_SANDBOX_URL=$E2B_URL

  Prometheus metrics:
    curl -s $URL/metrics -H "Authorization: Bearer $WRENN_METRICS_TOKEN"
    curl -s http://$WRENN_AGENT_METRICS_LISTEN/metrics

  Logs: .wrenn-dev/logs/   Stop: Ctrl-C
INFO
wait -n "${pids[@]}"
