#!/usr/bin/env bash
# The contract run: schemathesis against a real wrenn-cp, over the control plane's own
# /openapi.json, with an owner's API key. Every failure it reports is a difference between
# what the server does and what its OpenAPI document says (a 5xx, an undocumented status or
# content type, a body that does not match its schema).
#   bash scripts/contract.sh          (make contract; make test runs it after the cargo tests)
# Installs schemathesis into a venv under /var/tmp when missing, starts PostgreSQL through
# scripts/services.sh (a fresh database of its own), a throw-away redis-server and a debug
# wrenn-cp on free loopback ports, signs an owner up through the mail sink, makes an API key,
# runs schemathesis, and stops what it started by PID. Bounded: a few minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { echo "contract: $*" >&2; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

VENV="${WRENN_CONTRACT_VENV:-/var/tmp/wrenn-contract-venv}"
SCHEMATHESIS_VERSION="4.32.5"
# Test cases per operation and phase, and the time budget of the fuzzing phase.
EXAMPLES="${WRENN_CONTRACT_EXAMPLES:-8}"
SEED="${WRENN_CONTRACT_SEED:-14}"

# ---- schemathesis ------------------------------------------------------------------------------
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        log "installing python3-venv"
        $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-venv
    fi
    log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# ---- services and the control plane ------------------------------------------------------------
if [ -z "${WRENN_TEST_DATABASE_URL:-}" ]; then
    eval "$(bash scripts/services.sh)"
fi
command -v redis-server >/dev/null 2>&1 || bash scripts/deps.sh >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wrenn-target}"
CP_BIN="${WRENN_CP_BIN:-}"
if [ -z "$CP_BIN" ]; then
    log "building wrenn-cp"
    cargo build -q -p wrenn-core --bin wrenn-cp
    CP_BIN="$CARGO_TARGET_DIR/debug/wrenn-cp"
fi

random_hex() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

TMP=$(mktemp -d /tmp/wrenn-contract.XXXXXX)
ADMIN_URL="${WRENN_TEST_DATABASE_URL%/*}/postgres"
DB_NAME="wrenn_contract_$(date +%s)_$$"
REDIS_PID=""
CP_PID=""
cleanup() {
    local pid
    for pid in "$CP_PID" "$REDIS_PID"; do
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    psql "$ADMIN_URL" -qtAc "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -qtAc "CREATE DATABASE \"$DB_NAME\"" >/dev/null

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
    >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!

CP_PORT=$(free_port)
BASE="http://127.0.0.1:$CP_PORT"
MAIL_DIR="$TMP/mail"
(
    cd "$TMP"
    exec env -i PATH="$PATH" HOME="${HOME:-$TMP}" RUST_LOG="info,sqlx=warn" \
        DATABASE_URL="${ADMIN_URL%/*}/$DB_NAME" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
        WRENN_CP_LISTEN_ADDR="127.0.0.1:$CP_PORT" WRENN_PUBLIC_URL="$BASE" WRENN_DOMAIN=localhost \
        JWT_SECRET="$(random_hex)" WRENN_ENCRYPTION_KEY="$(random_hex)" \
        WRENN_MAIL_DIR="$MAIL_DIR" WRENN_INSECURE_TEST_PASSWORD_HASHING=true \
        WRENN_BUILD_WORKERS=0 \
        "$CP_BIN"
) >"$TMP/wrenn-cp.log" 2>&1 &
CP_PID=$!
for _ in $(seq 1 300); do
    curl -fsS "$BASE/health" >/dev/null 2>&1 && break
    kill -0 "$CP_PID" 2>/dev/null || { tail -40 "$TMP/wrenn-cp.log" >&2; log "wrenn-cp exited"; exit 1; }
    sleep 0.2
done
curl -fsS "$BASE/health" >/dev/null || { tail -40 "$TMP/wrenn-cp.log" >&2; log "wrenn-cp did not start"; exit 1; }

# ---- an owner and an API key -------------------------------------------------------------------
# Signup mails an activation link to the sink directory; activating signs in (the first user is
# also the platform admin) and the session makes the key.
KEY=$(BASE="$BASE" MAIL_DIR="$MAIL_DIR" python3 - <<'PY'
import http.cookiejar, json, os, re, time, urllib.request

base, mail_dir = os.environ["BASE"], os.environ["MAIL_DIR"]
jar = http.cookiejar.CookieJar()
http_ = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

def call(method, path, body=None):
    headers = {"Content-Type": "application/json"}
    csrf = next((c.value for c in jar if c.name == "wrenn_csrf"), None)
    if csrf:
        headers["X-CSRF-Token"] = csrf
    req = urllib.request.Request(base + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    with http_.open(req) as r:
        return json.loads(r.read() or b"null")

email = "owner@contract.test"
call("POST", "/v1/auth/signup", {"email": email, "password": "contract-owner-pw", "name": "Owner"})
token = None
for _ in range(100):
    for name in sorted(os.listdir(mail_dir)) if os.path.isdir(mail_dir) else []:
        m = re.search(r"token=([0-9a-f]{64})", open(os.path.join(mail_dir, name)).read())
        if m:
            token = m.group(1)
    if token:
        break
    time.sleep(0.1)
assert token, "no activation mail"
call("POST", "/v1/auth/activate", {"token": token})
print(call("POST", "/v1/api-keys", {"name": "contract"})["key"])
PY
)

# ---- schemathesis ------------------------------------------------------------------------------
# Left out, and why:
# - WebSocket routes (exec/stream, process stream, pty): schemathesis speaks plain HTTP only.
# - DELETE /v1/api-keys/{id}: could revoke the run's own key.
# - /v1/auth/logout*, DELETE /v1/me, POST /v1/me/password: would end or change the owner's
#   account (they take a session, which this run does not send, but stay out on principle).
# Everything else runs. No agent runs here: routes that need a live capsule (exec, files,
# processes, metrics, the access token) answer 404 for the ids generated and 409 for the
# capsules the run's own creates leave in `error`; POST /v1/capsules answers the documented
# 503 no_hosts_available (allowed for that route in scripts/contract.toml).
log "running schemathesis against $BASE ($EXAMPLES examples per operation, seed $SEED)"
status=0
# Run from the temporary directory: schemathesis keeps its replay data under ./.schemathesis.
(cd "$TMP" && "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/contract.toml" run "$BASE/openapi.json" \
    --header "X-API-Key: $KEY" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --request-timeout 20 \
    --no-shrink \
    --suppress-health-check all \
    --exclude-path-regex '/(exec/stream|pty)$|/processes/\{[a-z_]+\}/stream$|^/v1/auth/logout' \
    --exclude-name 'DELETE /v1/api-keys/{id}' \
    --exclude-name 'DELETE /v1/me' \
    --exclude-name 'POST /v1/me/password' \
    --warnings off) \
    || status=$?
if [ "$status" -ne 0 ]; then
    log "wrenn-cp log (last 60 lines):"
    tail -60 "$TMP/wrenn-cp.log" >&2
fi
exit "$status"
