# rtchat container image: the one rtchat binary on Debian slim.
#
#   docker build -t rtchat --build-arg RTCHAT_COMMIT=$(git rev-parse --short HEAD) .
#   docker run -e DATABASE_URL=postgres://... -e JWT_SECRET=... -p 8000:8000 rtchat
#
# The binary embeds schema.sql, openapi.yaml and static/ at compile time (include_str!),
# so the runtime stage needs nothing but the binary. DATABASE_URL must be set in a
# container: the embedded-PostgreSQL fallback needs PostgreSQL binaries this image lacks.

############################################################################## builder
FROM rust:1-bookworm AS builder
WORKDIR /build

# Dependencies first, against a dummy crate, so this layer stays cached until
# Cargo.toml, Cargo.lock or build.rs change.
COPY Cargo.toml Cargo.lock build.rs ./
# The workspace names the load generator's crate: its manifest and a dummy main make the
# workspace load; its sources never enter the image.
COPY bench/Cargo.toml ./bench/
RUN mkdir -p src bench/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked -p rtchat --bin rtchat \
    && rm -rf src

# The application itself. The dummy's artifacts are removed by name so cargo rebuilds
# the crate even when the copied sources carry mtimes older than the dummy build.
COPY src ./src
COPY schema.sql openapi.yaml ./
COPY static ./static
# The commit that `rtchat_build_info` names (the context has no .git, so build.rs cannot ask
# git): `docker build --build-arg RTCHAT_COMMIT=$(git rev-parse --short HEAD) .`. Declared
# after the dependency layer, so a new commit does not rebuild the dependencies.
ARG RTCHAT_COMMIT=unknown
RUN rm -rf target/release/.fingerprint/rtchat-* \
           target/release/deps/rtchat-* \
           target/release/deps/librtchat-* \
    && cargo build --release --locked -p rtchat --bin rtchat \
    && objcopy --only-keep-debug target/release/rtchat /build/rtchat.debug \
    && objcopy --strip-debug --add-gnu-debuglink=/build/rtchat.debug target/release/rtchat /build/rtchat

############################################################################## runtime
FROM debian:bookworm-slim

# ca-certificates (for anything that ever speaks TLS); nothing else: the HEALTHCHECK is
# rtchat's own probe. Unpinned on purpose: each build picks up bookworm's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 rtchat \
    && useradd --system --no-log-init --uid 10001 --gid rtchat \
               --home-dir /var/lib/rtchat --create-home --shell /usr/sbin/nologin rtchat

COPY --from=builder /build/rtchat /usr/local/bin/rtchat

WORKDIR /var/lib/rtchat
# Numeric, so orchestrators that enforce "run as non-root" can verify it.
USER 10001:10001

ENV RTCHAT_ADDR=0.0.0.0:8000
EXPOSE 8000

# Liveness only (/readyz also checks the database): `rtchat --healthcheck` asks /healthz on
# RTCHAT_ADDR (loopback when it listens on all addresses) and exits 0 or 1, so the image
# needs no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["rtchat", "--healthcheck"]

# rtchat drains on SIGTERM: sockets close with 1001, in-flight requests finish.
STOPSIGNAL SIGTERM
CMD ["rtchat"]
