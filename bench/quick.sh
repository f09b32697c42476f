#!/usr/bin/env bash
# Quick figures for the core server: SCRAM logins, RSS per idle connection, 1:1 message
# throughput and server CPU per message. Usage: bench/quick.sh [IDLE_CONNECTIONS] [MESSAGES]
# Runs a release build of rookery on loopback (pinned to core 0, the generator to core 1).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
MSGS=${2:-50000}
cargo build --release -q -p rookery -p rookery-tests --example quickload
dir=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
cat > "$dir/rookery.toml" <<TOML
hosts = ["localhost"]
data_dir = "$dir/data"
[listen]
c2s = "127.0.0.1:0"
c2s_tls = false
[limits]
outbound_queue = 100000
[auth]
allow_plaintext_on_loopback = true
[log]
level = "warn"
TOML
target/release/examples/quickload prepare "$dir/data" $((N + 2))
taskset -c 0 target/release/rookery --config "$dir/rookery.toml" serve > "$dir/out" &
server=$!
for _ in $(seq 50); do grep -q 'c2s (STARTTLS)' "$dir/out" 2>/dev/null && break; sleep 0.1; done
addr=$(awk '/c2s \(STARTTLS\)/ {print $3}' "$dir/out")
taskset -c 1 target/release/examples/quickload run "$addr" "$server" $((N + 2)) "$MSGS"
