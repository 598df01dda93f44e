#!/usr/bin/env bash
# Runs the service locally: makes sure PostgreSQL and Redis are installed and running, creates
# the database, builds and starts `carshare serve` (which applies migrations first).
# Settings come from .env when present (see .env.example), else from the defaults below.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh

ensure_services
if [ -f .env ]; then
  set -a; . ./.env; set +a
fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/carshare}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export JWT_SECRET="${JWT_SECRET:-local-development-secret-change-me-0123456789}"
export LOG_FORMAT="${LOG_FORMAT:-pretty}"
export PORT="${PORT:-3000}"

ensure_database "$(basename "${DATABASE_URL%%\?*}")"
cargo build --release --locked -p carshare-api
./target/release/carshare migrate
# Demo accounts and vehicles (idempotent), so there is something to sign in to and search.
./target/release/carshare demo seed
log "serving on http://127.0.0.1:${PORT} (OpenAPI at /v1/openapi.json)"
exec ./target/release/carshare serve
