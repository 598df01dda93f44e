#!/usr/bin/env bash
# One run of every benchmark program on this machine, gathered into one report (markdown):
# booking commands/s over HTTP beside a pgbench baseline, search latency at 100k vehicles beside
# the query alone, command→read-table lag with and without Kafka, relay events/s, rebuild
# events/s, audit replay events/s and the API's peak memory. Each section names the command
# that reproduces it. Installs and starts PostgreSQL (with PostGIS), Redis and the broker if
# needed. Takes 20–30 minutes on 2 cores; run it on an otherwise idle machine.
#
#   scripts/perf-report.sh [report.md]      (default: target/perf-report.md)
#
# Environment: VEHICLES (100000), BOOKINGS (1000000), SECONDS_PER_PHASE (20), RATE (1000), PAYMENTS (335000),
# FAULTS=1 to append the fault runner's table (it restarts PostgreSQL and Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh

ensure_services
out="${1:-target/perf-report.md}"
vehicles="${VEHICLES:-100000}"
seconds="${SECONDS_PER_PHASE:-20}"
rate="${RATE:-1000}"
payments="${PAYMENTS:-335000}"
bookings="${BOOKINGS:-1000000}"

log "building the release binaries"
cargo build --release --locked -p carshare-api -p carshare-bench -p carshare-tests --bin carshare \
  --bin spine-bench --bin pipeline-bench --bin booking-bench --bin audit-bench --bin fault-runner

mkdir -p "$(dirname "$out")"
section() {
  local title="$1"; shift
  log "$title: $*"
  {
    printf '\n## %s\n\n' "$title"
    printf 'Command: `%s`\n\n' "$*"
    local started=$SECONDS
    if "$@"; then
      printf '\n(%d s)\n' $((SECONDS - started))
    else
      printf '\n**This benchmark failed (exit %d); see the log above.**\n' $?
    fi
  } >>"$out"
}

{
  printf '# Performance report\n\n'
  printf -- '- Date: %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
  printf -- '- Commit: %s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  printf -- '- Machine: %s cores (%s), %s GiB RAM; PostgreSQL %s; Redis %s; broker: %s\n' \
    "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" \
    "$(awk '/MemTotal/ {printf "%.0f", $2/1024/1024}' /proc/meminfo)" \
    "$(psql -h 127.0.0.1 -U postgres -Atc 'SHOW server_version' postgres 2>/dev/null || echo '?')" \
    "$(redis-server --version | awk '{print $3}' | cut -d= -f2)" \
    "tansu $("$TANSU_BIN" --version 2>/dev/null | awk '{print $2}' || echo '?')"
  printf -- '- Load generators run on the same machine as the system they measure.\n'
} >"$out"

section "Bookings over HTTP beside pgbench" \
  target/release/booking-bench --seconds "$seconds"
section "Spine: search at ${vehicles} vehicles and ${bookings} bookings, rebuild, API memory" \
  target/release/spine-bench --vehicles "$vehicles" --bookings "$bookings"
section "Pipeline: relay throughput, lag with and without Kafka" \
  target/release/pipeline-bench --seconds "$seconds" --rate "$rate"
section "Settlement audit replay" \
  target/release/audit-bench --payments "$payments"
if [ "${FAULTS:-0}" = 1 ]; then
  section "Faults under load" target/release/fault-runner
fi
log "report written to $out"
