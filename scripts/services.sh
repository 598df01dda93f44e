#!/usr/bin/env bash
# Makes sure the local services the platform needs are installed and running:
# PostgreSQL (with contrib extensions and PostGIS) on 127.0.0.1:5432, Redis on 127.0.0.1:6379,
# and a Kafka-protocol broker (tansu) on 127.0.0.1:9092. Installs them when absent (Debian's
# packages, needs root; tansu from crates.io), starts them when stopped.
# Source it (`. scripts/services.sh`) and call `ensure_services`, or run it directly.
set -euo pipefail

log() { printf '\033[1;34m[services]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  log "installing $* from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

ensure_postgres() {
  local url="postgres://postgres:postgres@127.0.0.1:5432/postgres"
  # A server already answering (this machine's, or a CI service container) is used as it is.
  if ! pg_ready; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
      apt_install postgresql postgresql-contrib
    fi
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n1)"
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
  fi
  pg_ready || { log "PostgreSQL did not come up on 127.0.0.1:5432"; return 1; }
  # A fresh Debian install asks for a password over TCP: give the postgres role the one the
  # default URLs use. (Where the server trusts local TCP connections, this changes nothing.)
  if ! psql "$url" -Atqc 'SELECT 1' >/dev/null 2>&1; then
    log "setting the local postgres role's password"
    as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  fi
  # PostGIS backs the vehicle search's spatial index: installed next to a local server when
  # the server does not offer it.
  if ! psql "$url" -Atqc "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'" 2>/dev/null | grep -q 1; then
    local major
    major="$(psql "$url" -Atqc 'SHOW server_version_num' 2>/dev/null | cut -c1-2 || true)"
    major="${major:-$(ls /etc/postgresql | sort -V | tail -n1)}"
    apt_install "postgresql-$major-postgis-3"
  fi
}

redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
  fi
  if ! redis_ready; then
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 40); do redis_ready && break; sleep 0.25; done
  fi
  redis_ready || { log "Redis did not come up on 127.0.0.1:6379"; return 1; }
}

# Creates database $1 on the local server if it does not exist.
ensure_database() {
  local db="$1"
  local admin="postgres://postgres:postgres@127.0.0.1:5432/postgres"
  if [ "$(psql "$admin" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
    log "creating database $db"
    psql "$admin" -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
}

TANSU_VERSION=0.6.0
TANSU_BIN="${TANSU_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}"
TANSU_LOG="${TANSU_LOG:-${TMPDIR:-/tmp}/carshare-tansu.log}"

kafka_ready() { (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; }

# tansu, an Apache-2.0 Kafka-protocol broker, stands in for Apache Kafka on machines without
# Kafka packages or Docker. It keeps messages in memory: a restart empties its topics (the
# event store in Postgres stays the truth; see docs/operations.md).
ensure_kafka() {
  if ! "$TANSU_BIN" --version 2>/dev/null | grep -q " $TANSU_VERSION\$"; then
    log "installing tansu $TANSU_VERSION from crates.io (about 15 minutes the first time)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore
  fi
  if ! kafka_ready; then
    log "starting tansu on 127.0.0.1:9092 (log: $TANSU_LOG)"
    nohup "$TANSU_BIN" broker \
      --listener-url tcp://127.0.0.1:9092 \
      --advertised-listener-url tcp://127.0.0.1:9092 \
      --storage-engine memory://tansu/ >"$TANSU_LOG" 2>&1 </dev/null &
    disown || true
    for _ in $(seq 1 60); do kafka_ready && break; sleep 0.5; done
  fi
  kafka_ready || { log "the broker did not come up on 127.0.0.1:9092"; return 1; }
}

# The console's browser tests: Debian's Chromium, a Korean font for its screenshots, and
# playwright-core (pinned in tests/browser/package-lock.json) with the machine's Node.js.
ensure_browser() {
  local missing=()
  # CHROMIUM may name another Chromium-based browser (e.g. a CI runner's Google Chrome).
  [ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
  fc-list 2>/dev/null | grep -qi nanum || missing+=(fonts-nanum)
  command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    log "installing the browser tests' npm packages"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ensure_services() {
  ensure_postgres
  ensure_redis
  ensure_kafka
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_services
fi
