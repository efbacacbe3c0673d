# The files-server image: built in a Rust stage, run from a small Debian stage as a non-root
# user. `docker build -t files-server .` at the repository's root.
#
#   docker run files-server                 serves (pending migrations are applied first)
#   docker run files-server migrate         applies pending migrations and exits (a one-off job)
#   docker run files-server dev-token ...   prints a development token (embedded key source only)
#
# Configuration: FILES_* variables, or a TOML file named by FILES_CONFIG (docs/configuration.md).

# --- build ---------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
# aws-lc-sys (rustls' crypto) may fall back to cmake to build its C code.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY files-core files-core
COPY files-adapters files-adapters
COPY files-server files-server
COPY files-testkit files-testkit
# The registry and the target directory are cached between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p files-server --bin files-server \
    && install -D -m 0755 target/release/files-server /out/files-server

# --- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# CA certificates: the JWKS URL, S3 and amqps:// over TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 files \
    && useradd --system --uid 10001 --gid files --home-dir /var/lib/files-server --shell /usr/sbin/nologin files \
    && install -d -m 0700 -o files -g files /var/lib/files-server /var/lib/files-server/dev
COPY --from=build /out/files-server /usr/local/bin/files-server
USER 10001:10001
WORKDIR /var/lib/files-server
# In a container the API listens on every interface; /metrics on its own port. The development
# key (embedded key source only) is kept in a directory of the files user (mode 0700).
ENV FILES_LISTEN=0.0.0.0:8080 \
    FILES_METRICS_LISTEN=0.0.0.0:9090 \
    FILES_DEV_DIR=/var/lib/files-server/dev
EXPOSE 8080 9090
# SIGTERM stops it gracefully (docs/operations.md, "Stopping").
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/files-server"]
CMD ["serve"]
