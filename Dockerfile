# queue-server in a container: built with the Rust image, run on Debian slim as a non-root user,
# with the data directory in a volume.
#
#   docker build -t weir .
#   docker run -d --name weir -p 6379:6379 -v weir-data:/data weir
#
# The server listens on every address inside the container, so it needs a password to serve
# clients from outside it (protected mode): pass one with `-e WEIR_PASSWORD=...`, or mount a
# configuration file and start with `--config`.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin queue-server --bin queue-dump

FROM debian:bookworm-slim
# redis-cli answers the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-tools tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /data --shell /usr/sbin/nologin weir \
    && mkdir -p /data \
    && chown weir:weir /data
COPY --from=build /src/target/release/queue-server /src/target/release/queue-dump /usr/local/bin/
COPY packaging/docker-entrypoint.sh /usr/local/bin/
USER weir
VOLUME ["/data"]
EXPOSE 6379
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD REDISCLI_AUTH="$WEIR_PASSWORD" redis-cli -p 6379 ping | grep -q PONG
# tini forwards SIGTERM, so `docker stop` closes the store cleanly.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["--dir", "/data", "--bind", "0.0.0.0", "--port", "6379", "--fsync", "always"]
