# Sourced by scripts/test: installs (once, cached) and starts a garage S3 server for the tests,
# and exports FILES_TEST_S3_* for them. garage checks SigV4 and x-amz-checksum-sha256 and stores
# nothing when a body does not match; see docs/testing.md.
# shellcheck shell=bash

GARAGE_VERSION=2.5.0
GARAGE_ROOT="${FILES_CACHE_DIR:-$HOME/.cache/files-service}/garage-$GARAGE_VERSION"
GARAGE_BIN="$GARAGE_ROOT/bin/garage"

garage_install() {
  if [[ -x $GARAGE_BIN ]]; then
    return 0
  fi
  echo "== installing garage $GARAGE_VERSION into $GARAGE_ROOT (once; about 13 minutes)"
  cargo install garage --version "$GARAGE_VERSION" --locked --root "$GARAGE_ROOT"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The ports are found free and then handed to garage, which binds them a moment later: another
# process may take one in between. garage then fails to start, and is started again on new
# ports (three attempts).
garage_start() {
  garage_install
  local attempt
  for attempt in 1 2 3; do
    if garage_start_once; then
      return 0
    fi
    echo "garage did not start (attempt $attempt of 3)" >&2
    garage_stop
  done
  return 1
}

garage_start_once() {
  GARAGE_DIR=$(mktemp -d -t files-garage-XXXXXX)
  local rpc_port s3_port
  rpc_port=$(free_port)
  s3_port=$(free_port)
  cat > "$GARAGE_DIR/garage.toml" <<TOML
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(openssl rand -hex 32 2>/dev/null || python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
TOML
  export FILES_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
  export FILES_TEST_S3_REGION="us-east-1"
  export FILES_TEST_S3_BUCKET="files-test"
  export FILES_TEST_S3_ACCESS_KEY="GK$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  export FILES_TEST_S3_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  GARAGE_DEFAULT_ACCESS_KEY=$FILES_TEST_S3_ACCESS_KEY \
  GARAGE_DEFAULT_SECRET_KEY=$FILES_TEST_S3_SECRET_KEY \
  GARAGE_DEFAULT_BUCKET=$FILES_TEST_S3_BUCKET \
  RUST_LOG=warn \
    "$GARAGE_BIN" -c "$GARAGE_DIR/garage.toml" server --single-node --default-bucket \
    > "$GARAGE_DIR/garage.log" 2>&1 &
  GARAGE_PID=$!
  # The key and the bucket exist before the S3 port opens.
  local deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; do
    if ! kill -0 "$GARAGE_PID" 2>/dev/null || ((SECONDS > deadline)); then
      echo "garage did not start; its log:" >&2
      cat "$GARAGE_DIR/garage.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "== garage $GARAGE_VERSION serving S3 at $FILES_TEST_S3_ENDPOINT (pid $GARAGE_PID)"
}

garage_stop() {
  if [[ -n ${GARAGE_PID:-} ]]; then
    kill "$GARAGE_PID" 2>/dev/null || true
    wait "$GARAGE_PID" 2>/dev/null || true
  fi
  if [[ -n ${GARAGE_DIR:-} ]]; then
    rm -rf "$GARAGE_DIR"
  fi
}
