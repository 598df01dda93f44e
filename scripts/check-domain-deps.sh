#!/usr/bin/env bash
# The domain crate stays pure: none of the infrastructure crates may appear in its dependency
# tree (normal and build dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(sqlx|sqlx-core|actix-web|actix-http|rdkafka|rdkafka-sys|redis|reqwest|postgres-es)$'
found="$(cargo tree -p carshare-domain -e normal,build --prefix none --format '{p}' --locked \
  | awk '{print $1}' | sort -u | grep -E "$forbidden" || true)"
if [ -n "$found" ]; then
  echo "carshare-domain depends on infrastructure crates:" >&2
  echo "$found" >&2
  for crate in $found; do cargo tree -p carshare-domain -i "$crate" -e normal,build >&2 || true; done
  exit 1
fi
echo "carshare-domain is free of sqlx, actix-web, rdkafka, redis, reqwest and postgres-es"
