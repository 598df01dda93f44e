# syntax=docker/dockerfile:1
#
# The `carshare` binary (crate `carshare-api`). One image serves every role; the subcommand
# picks the role: `serve` (default), `migrate`, `project`, `rebuild <projection>`,
# `projections` (and `relay` once the Kafka feature lands).
#
#   docker build -t carshare .
#   docker run --rm -e DATABASE_URL=... -e REDIS_URL=... -e JWT_SECRET=... -p 3000:3000 carshare
#
# Only the paths the build needs are copied (no `COPY . .`), so a local `.env`, `target/` or
# `.git` never ends up in an image layer.

ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder

# cmake + a C/C++ toolchain + pkg-config: what librdkafka needs to build from source (rdkafka
# crate, `cmake-build` or its default build) once the Kafka feature lands. Nothing else is
# linked dynamically: sqlx has no TLS feature and reqwest uses rustls.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake build-essential pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# --- Dependency layer --------------------------------------------------------------------------
# The manifests of every workspace member (cargo loads the whole workspace even for `-p`) and the
# lock file, with stub sources, so that third-party crates compile in a layer that changes only
# when a Cargo.toml or Cargo.lock does. The stubs' own artifacts are then deleted so the real
# crates are rebuilt below whatever the file timestamps say (COPY keeps the build context's
# mtimes, which may be older than the stubs').
COPY Cargo.toml Cargo.lock ./
COPY domain/Cargo.toml      domain/
COPY event-store/Cargo.toml event-store/
COPY commands/Cargo.toml    commands/
COPY projections/Cargo.toml projections/
COPY api/Cargo.toml         api/
COPY tests/Cargo.toml       tests/
COPY bench/Cargo.toml       bench/

RUN set -eux; \
    for crate in domain event-store commands projections api tests; do \
        mkdir -p "$crate/src"; \
        echo '// dependency-caching stub' > "$crate/src/lib.rs"; \
    done; \
    mkdir -p bench/src; \
    echo 'fn main() {}' > api/src/main.rs; \
    echo 'fn main() {}' > bench/src/main.rs; \
    cargo build --release -p carshare-api --locked; \
    rm -rf target/release/.fingerprint/carshare-* \
           target/release/deps/*carshare* \
           target/release/carshare* \
           target/release/libcarshare*

# --- Application layer -------------------------------------------------------------------------
# `migrations/` is embedded at compile time (`sqlx::migrate!("../migrations")` in event-store).
# `tests` and `bench` keep their stubs: the binary does not depend on them, and leaving their
# sources out means editing a test does not invalidate this layer.
COPY migrations/  migrations/
COPY domain/      domain/
COPY event-store/ event-store/
COPY commands/    commands/
COPY projections/ projections/
COPY api/         api/

RUN cargo build --release -p carshare-api --locked \
 && install -m 0755 target/release/carshare /usr/local/bin/carshare

# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to external services (Kakao; Kafka/Postgres with TLS later).
# tini: PID 1 that forwards signals and reaps zombies.
# curl: the health checks (small, and handy when debugging inside the container).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 carshare \
 && useradd --system --uid 10001 --gid carshare --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin carshare

COPY --from=builder /usr/local/bin/carshare /usr/local/bin/carshare

ENV LOG_FORMAT=json \
    PORT=3000 \
    HOST=0.0.0.0

# Numeric ids so that orchestrators can verify runAsNonRoot without resolving the name.
USER 10001:10001
EXPOSE 3000

# Liveness of `serve`, the default command. Subcommands that do not listen on HTTP (`migrate`,
# `project`, `relay`) should disable it (docker-compose.yml does).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT}/health" || exit 1

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/carshare"]
CMD ["serve"]
