# syntax=docker/dockerfile:1
#
# kafka-pipeline container image: a Rust builder stage and a small Debian runtime.
#
#   docker build -t kafka-pipeline:local --build-arg REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run --rm kafka-pipeline:local --help
#   docker run --rm -e KAFKA_PIPELINE_BROKERS=broker:9092 -p 9898:9898 kafka-pipeline:local
#
# The builder and the runtime use the same Debian release (bookworm), so the binary's dynamic
# libraries (glibc, libssl3, libz) match. librdkafka is compiled from source by rdkafka-sys
# (mklove `configure` + make: needs a C toolchain, perl, python3, pkg-config, libssl-dev; the
# rust:*-bookworm image has them all, no cmake needed). OpenSSL and zlib are linked dynamically,
# zstd statically (rdkafka features libz, ssl, zstd in Cargo.toml).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src

# Dependency layer: build every dependency (librdkafka included, the slow part) against stub
# sources, so a change in src/ rebuilds only the crate itself. Every benches/<name>.rs that
# Cargo.toml declares as a [[bench]] must exist, so each gets a stub.
# build.rs* : the build script (git revision for kafka_pipeline_build_info) where the crate has
# one; the wildcard keeps the COPY valid without it.
COPY Cargo.toml Cargo.lock build.rs* ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && echo '' > src/lib.rs \
 && for bench in $(sed -n '/^\[\[bench\]\]/,/^name/s/^name = "\(.*\)"/\1/p' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$bench.rs"; done \
 && cargo build --release --locked \
 && rm -rf src benches target/release/kafka-pipeline* target/release/deps/kafka_pipeline-* \
      target/release/deps/libkafka_pipeline-* target/release/.fingerprint/kafka-pipeline-*

COPY src ./src
COPY benches ./benches
# The sink's SQL migrations, compiled into the binary (include_str!).
COPY migrations ./migrations
# .git is not in the build context, so the build script cannot ask git: pass the revision with
# --build-arg REVISION=$(git rev-parse --short=12 HEAD). Declared after the dependency layer so
# a new revision does not rebuild the dependencies.
ARG REVISION=unknown
ENV KAFKA_PIPELINE_REVISION=${REVISION}
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/kafka-pipeline /out/kafka-pipeline

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kafka-pipeline" \
      org.opencontainers.image.description="Stream processor for login events: Kafka in, validated records, dead letters and insights out" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.revision="${REVISION}"

# libssl3: TLS and SASL/SCRAM; ca-certificates: verifying brokers' certificates with the
# system trust store (librdkafka's ssl.ca.location=probe or the default).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pipeline \
 && useradd --system --uid 10001 --gid pipeline --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin pipeline

COPY --from=builder /out/kafka-pipeline /usr/local/bin/kafka-pipeline

# Numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

# In a container the metrics/health endpoint must listen on all interfaces to be scraped; the
# binary's own default is 127.0.0.1:9898. JSON logs suit log collectors; override with
# KAFKA_PIPELINE_LOG_FORMAT=text.
ENV KAFKA_PIPELINE_METRICS_ADDR=0.0.0.0:9898 \
    KAFKA_PIPELINE_LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 9898

# The runtime image has no curl or wget; bash's /dev/tcp speaks enough HTTP for /health
# (200 while alive, 503 once shutdown started). Only meaningful for `run`: other subcommands
# (loadgen, insights, topics) serve no endpoint, so their containers report "unhealthy" —
# Docker only reports it, it does not restart them. Kubernetes ignores HEALTHCHECK and uses the
# probes in deploy/k8s/statefulset.yaml instead.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9898 && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

# SIGTERM (docker stop, Kubernetes) starts the graceful shutdown; give it at least
# --shutdown-timeout (30s) plus a margin: `docker stop -t 40`, compose stop_grace_period: 40s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["kafka-pipeline"]
CMD ["run"]
