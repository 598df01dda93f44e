#!/usr/bin/env bash
# Runs the service locally: makes sure PostgreSQL, Redis and a Kafka-protocol broker are
# installed and running, creates the database, builds and starts `carshare serve` (which
# applies migrations first, then runs the API, the relay and the projection consumers).
# `KAFKA_BROKERS= scripts/run.sh` runs without Kafka (projections read Postgres directly).
# Settings come from .env when present (see .env.example), else from the defaults below.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh

if [ -f .env ]; then
  set -a; . ./.env; set +a
fi
ensure_postgres
ensure_redis
export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/carshare}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export JWT_SECRET="${JWT_SECRET:-local-development-secret-change-me-0123456789}"
export LOG_FORMAT="${LOG_FORMAT:-pretty}"
export PORT="${PORT:-3000}"
export KAFKA_BROKERS="${KAFKA_BROKERS-127.0.0.1:9092}"
if [ "$KAFKA_BROKERS" = "127.0.0.1:9092" ]; then
  ensure_kafka
fi

ensure_database "$(basename "${DATABASE_URL%%\?*}")"
cargo build --release --locked -p carshare-api
./target/release/carshare migrate
# Demo accounts and vehicles (idempotent), so there is something to sign in to and search.
./target/release/carshare demo seed
log "serving on http://127.0.0.1:${PORT} (OpenAPI at /v1/openapi.json)"
exec ./target/release/carshare serve
