#!/usr/bin/env bash
# Line coverage of the workspace with cargo-tarpaulin, printed per crate (domain, commands,
# event-store, projections, api) and overall. Not part of .ci/run (it rebuilds everything with
# instrumentation and runs the whole suite: about 20 minutes from cold on 2 cores, 9 with the
# instrumented dependencies already built); run it by hand.
#
#   scripts/coverage.sh            every test of the workspace, end-to-end tests included, against
#                                  the local PostgreSQL, Redis and broker (started as for
#                                  scripts/test.sh); the browser test needs Chromium (installed
#                                  if missing, as scripts/test.sh does)
#   scripts/coverage.sh --unit     only the tests of domain and commands (a few minutes; only
#                                  PostgreSQL is needed, for commands/tests)
#   scripts/coverage.sh -- ARGS    ARGS go to the test binaries, e.g. `-- --skip console`
#
# The end-to-end tests (tests/) run the API, projections and command services in-process, so
# their lines count for those crates. The figures cover the five production crates only: the
# benchmarks (bench/), the test harness and test files (tests/, */tests/*, the domain's
# `tests.rs` modules) and test functions are left out.
#
# Settings (environment):
#   COVERAGE_TARGET_DIR  cargo target dir of the instrumented build (default target/coverage,
#                        apart from the normal build so neither invalidates the other)
#   COVERAGE_OUT         where the reports go (default $COVERAGE_TARGET_DIR/report):
#                        tarpaulin-report.html, tarpaulin-report.json, lcov.info, summary.txt
#   COVERAGE_ENGINE      llvm (default; needs no llvm-tools component) or ptrace
#   CARGO_BUILD_JOBS     as usual; 1 keeps a 2-core machine usable meanwhile
set -euo pipefail
cd "$(dirname "$0")/.."

TARPAULIN_VERSION=0.37.5
TARGET_DIR="${COVERAGE_TARGET_DIR:-target/coverage}"
OUT="${COVERAGE_OUT:-$TARGET_DIR/report}"
ENGINE="${COVERAGE_ENGINE:-llvm}"
CRATES=(domain commands event-store projections api)

unit=false
if [ "${1:-}" = "--unit" ]; then
  unit=true
  shift
fi
if [ "${1:-}" = "--" ]; then shift; fi

if ! cargo tarpaulin --version 2>/dev/null | grep -q "$TARPAULIN_VERSION"; then
  echo "installing cargo-tarpaulin $TARPAULIN_VERSION from crates.io" >&2
  cargo install cargo-tarpaulin --version "$TARPAULIN_VERSION" --locked
fi

args=(
  --engine "$ENGINE"
  --target-dir "$TARGET_DIR"
  --skip-clean
  --locked
  --no-fail-fast
  # End-to-end tests wait on projections and brokers: quiet for a while is not a hang.
  --timeout 900
  --exclude-files 'bench/*' 'tests/*' '*/tests/*' '*/tests.rs' '*_tests.rs'
  --out Json Html Lcov
  --output-dir "$OUT"
)
if [ -n "${CARGO_BUILD_JOBS:-}" ]; then args+=(--jobs "$CARGO_BUILD_JOBS"); fi

. scripts/services.sh
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432}"
if $unit; then
  ensure_postgres
  args+=(-p carshare-domain -p carshare-commands)
else
  ensure_services
  ensure_browser
  export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
  export TEST_KAFKA_BROKERS="${TEST_KAFKA_BROKERS:-127.0.0.1:9092}"
  export TANSU_BIN
  # Unlike scripts/test.sh, leftover carshare_test_* databases are not dropped here: a test run
  # going on beside this one may be using them.
  args+=(--workspace --exclude carshare-bench)
fi

mkdir -p "$OUT"
started=$SECONDS
status=0
cargo tarpaulin "${args[@]}" -- "$@" || status=$?
elapsed=$((SECONDS - started))

report="$OUT/tarpaulin-report.json"
if [ ! -f "$report" ]; then
  echo "no coverage report was written (tarpaulin exited with $status)" >&2
  exit "${status:-1}"
fi

# Per crate: the lines of files under <crate>/ (tarpaulin's JSON names each file by the
# components of its absolute path). A unit run builds only domain and commands, so only those
# two are reported for it.
if $unit; then CRATES=(domain commands); fi
jq -r --arg root "$PWD/" --arg crates "${CRATES[*]}" '
  [ .files[]
    | select(.coverable > 0)
    | { path: (("/" + (.path[1:] | join("/"))) | ltrimstr($root)), covered, coverable } ]
  as $files
  | ($crates | split(" ")) as $names
  | [ $files[] | select(.path as $p | $names | any(. as $n | $p | startswith($n + "/"))) ] as $ours
  | [ $names[] as $n
      | [ $ours[] | select(.path | startswith($n + "/")) ]
      | ["crate", $n, (map(.covered) | add // 0), (map(.coverable) | add // 0)] ]
  as $per
  | ( $per[],
      ["crate", "overall", ($ours | map(.covered) | add // 0), ($ours | map(.coverable) | add // 0)],
      ( $ours | sort_by(.covered - .coverable) | .[0:15][] | ["file", .path, .covered, .coverable] ) )
  | @tsv
' "$report" | awk -F'\t' -v mode="$($unit && echo "tests of domain and commands" || echo "whole workspace")" '
  function pct(c, t) { return t == 0 ? 0 : 100 * c / t }
  BEGIN { printf "Line coverage (cargo-tarpaulin, %s)\n", mode }
  $1 == "crate" { printf "  %-12s %6.2f%%  %5d / %-5d lines\n", $2, pct($3, $4), $3, $4 }
  $1 == "file" && !shown++ { printf "\nLeast covered files (most uncovered lines first):\n" }
  $1 == "file" { printf "  %4d uncovered  %6.2f%%  %s\n", $4 - $3, pct($3, $4), $2 }
' | tee "$OUT/summary.txt"
echo "" | tee -a "$OUT/summary.txt"
echo "Took ${elapsed}s. Reports: $OUT/tarpaulin-report.html, $OUT/tarpaulin-report.json, $OUT/lcov.info" | tee -a "$OUT/summary.txt"
if [ "$status" -ne 0 ]; then
  echo "tarpaulin exited with $status: some tests failed or timed out (see above); the figures count the tests that ran" >&2
fi
exit "$status"
