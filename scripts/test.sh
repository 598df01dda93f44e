#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate and the end-to-end tests under tests/,
# against the local PostgreSQL, Redis and Kafka-protocol broker (installed and started if
# needed), and the operations console in Debian's Chromium (installed if needed; screenshots in
# tests/artifacts/console/). Each end-to-end test creates its own database (dropped afterwards)
# and its own topic prefix; the broker-outage test starts a broker of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh

ensure_services
ensure_browser
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export TEST_KAFKA_BROKERS="${TEST_KAFKA_BROKERS:-127.0.0.1:9092}"
export TANSU_BIN

# Databases left behind by an interrupted earlier run, and the migrated templates the tests copy
# (made again on first use, so a run never copies a template of other migrations).
for db in $(psql "$TEST_DATABASE_URL/postgres" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'carshare\_test\_%' OR datname LIKE 'carshare\_template\_%'"); do
  psql "$TEST_DATABASE_URL/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
done

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
  # nextest does not run doctests.
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
