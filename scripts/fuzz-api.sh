#!/usr/bin/env bash
# Property-based fuzzing of every endpoint from the served OpenAPI document (schemathesis),
# authenticated in turn as a guest, a host and an admin, against a real `carshare serve` on a
# fresh database. Fails on any 5xx, any status code or body the document does not describe,
# any error outside the one error shape, and any response to an undeclared method other than
# 405. (Checks that the generator's notion of valid input matches the server's stricter rules —
# positive and negative data acceptance — are left out: they judge the schema's precision, not
# the server's behaviour.)
#
#   scripts/fuzz-api.sh            # 30 examples per operation and role
#   FUZZ_EXAMPLES=200 scripts/fuzz-api.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh
ensure_postgres
ensure_redis

log() { printf '\033[1;35m[fuzz]\033[0m %s\n' "$*" >&2; }

SCHEMATHESIS_VERSION=4.32.5
if ! schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
  python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked -p carshare-api --bin carshare
BIN=target/debug/carshare
SERVER="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432}"
DB="carshare_fuzz_$$"
PORT="${FUZZ_PORT:-39$(( RANDOM % 90 + 10 ))}"
WORK="$(mktemp -d)"
psql "$SERVER/postgres" -qc "CREATE DATABASE $DB" >/dev/null

export DATABASE_URL="$SERVER/$DB"
export REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export REDIS_KEY_PREFIX="fuzz:$$:"
export JWT_SECRET="fuzz-secret-fuzz-secret-fuzz-secret-0123"
export HOST=127.0.0.1 PORT LOG_FORMAT=json RUST_LOG=warn STORAGE_DIR="$WORK/uploads"
export RATE_LIMIT_IP_PER_MINUTE=100000000 RATE_LIMIT_USER_PER_HOUR=100000000 RATE_LIMIT_AUTH_PER_MINUTE=100000000
"$BIN" serve >"$WORK/server.log" 2>&1 &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  psql "$SERVER/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -fsS "$BASE/health" >/dev/null 2>&1 && break; sleep 0.2; done

token() { python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'; }
register() {
  curl -fsS -X POST "$BASE/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"$1@example.com\",\"password\":\"correct horse battery\",\"name\":\"퍼저\",\"phone\":\"010-1234-5678\",\"role\":\"$2\"}" | token
}
"$BIN" admin create --email fuzz-admin@example.com --name 관리자 --phone 010-0000-0000 \
  --password 'fuzz admin passphrase' >/dev/null
ADMIN=$(curl -fsS -X POST "$BASE/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"fuzz-admin@example.com","password":"fuzz admin passphrase"}' | token)
GUEST=$(register fuzz-guest guest)
HOST_TOKEN=$(register fuzz-host host)

status=0
for role in guest host admin; do
  case $role in
    guest) bearer=$GUEST ;;
    host) bearer=$HOST_TOKEN ;;
    admin) bearer=$ADMIN ;;
  esac
  log "fuzzing every operation as $role"
  # Erasing the account or logging out would end the session for the rest of the run.
  if ! schemathesis run "$BASE/v1/openapi.json" \
      -H "Authorization: Bearer $bearer" \
      --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
      --exclude-path /v1/users/me --exclude-method DELETE \
      --exclude-path /v1/auth/logout \
      --max-examples "${FUZZ_EXAMPLES:-30}" --workers 2 --request-timeout 30 \
      --seed "${FUZZ_SEED:-20261128}" --no-color; then
    status=1
  fi
done
# Errors our own code logged (actix-http's notes about unparsable requests it refused are not).
if grep '"level":"ERROR"' "$WORK/server.log" | grep -q '"target":"carshare'; then
  log "the server logged errors:"
  grep '"level":"ERROR"' "$WORK/server.log" | grep '"target":"carshare' | head -20 >&2
  status=1
fi
exit $status
