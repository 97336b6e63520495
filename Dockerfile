# syntax=docker/dockerfile:1
# Reredis node image: the web UI built with Node, the server built with cargo (dependencies in a
# layer of their own, so a source change rebuilds only the crate), and a distroless runtime that
# holds the binary and nothing else: no shell, no package manager, a non-root user.
#
#   docker build -t reredis .
#   docker run -p 6379:6379 -p 8080:8080 -v reredis-data:/data reredis
#
# Configuration is by environment (REREDIS_<SETTING>, README "Configuration") or by flags after
# the image name. The health probe is `reredis healthcheck` (the image has no curl).

ARG RUST_VERSION=1.95
ARG NODE_VERSION=22

# --- the web UI ------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS ui
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

# --- the server ------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS build
# jemalloc's build runs make; protoc comes vendored with the crate, so nothing else is needed.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# A release binary without debug info, stripped: the image stays small.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    SKIP_REREDIS_UI_BUILD=1

# Dependencies first, against stub sources: this layer is reused until Cargo.toml, Cargo.lock,
# build.rs or proto/ change.
COPY Cargo.toml Cargo.lock build.rs ./
COPY build/ build/
COPY proto/ proto/
COPY src/http/ui-missing/ src/http/ui-missing/
RUN echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm src/main.rs src/lib.rs

COPY src/ src/
COPY --from=ui /src/frontend/dist/ frontend/dist/
# The stub layer is newer than the copied sources: touch them so cargo rebuilds the crate.
# Another value of SKIP_REREDIS_UI_BUILD (still "skip npm") makes build.rs run again and pick
# frontend/dist, which did not exist when the stub layer ran it.
RUN touch src/main.rs src/lib.rs build.rs \
    && SKIP_REREDIS_UI_BUILD=yes cargo build --release --locked \
    && mkdir -p /out/data \
    && cp target/release/reredis /out/reredis

# --- the runtime -----------------------------------------------------------------------------
# distroless/cc: glibc and libgcc (what the binary links), CA certificates, user 65532 "nonroot".
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/reredis /usr/local/bin/reredis
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV REREDIS_DIR=/data \
    REREDIS_LOG_FORMAT=json
VOLUME ["/data"]
# RESP, HTTP (UI, API, /metrics, probes), cluster bus (port + 10000).
EXPOSE 6379 8080 16379
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/reredis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/reredis"]
