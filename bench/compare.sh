#!/usr/bin/env bash
# Side-by-side benchmark of rookery, Prosody and ejabberd on this machine, in one run.
#
#   bench/compare.sh                     # defaults below; override with environment variables
#   USERS=5000 IDLE=5000 bench/compare.sh
#   SERVERS="rookery prosody" bench/compare.sh
#
# Each server in turn is started by bench/peers.sh pinned to core 0 (the generator runs on
# core 1), gets the same accounts by in-band registration, and faces the same scenarios:
# a SCRAM-SHA-1 login storm, 1:1 chat at a fixed rate and at saturation, and idle
# connections. The generator samples the server's CPU time and RSS from /proc. JSON for
# every run and the machine's state go to target/bench-results/<time>/; one table with the
# ratios is printed at the end (and saved as table.txt there).
set -euo pipefail
cd "$(dirname "$0")/.."

SERVERS=${SERVERS:-"rookery prosody ejabberd"}
USERS=${USERS:-2000}        # accounts per server
LOGINS=${LOGINS:-2000}      # logins in the storm
CONCURRENCY=${CONCURRENCY:-50}
PAIRS=${PAIRS:-50}          # chat pairs (2 × PAIRS accounts)
RATE=${RATE:-2000}          # msg/s for the fixed-rate chat
RATE_SECS=${RATE_SECS:-10}  # seconds of fixed-rate chat
MESSAGES=${MESSAGES:-100000} # messages at saturation
IDLE=${IDLE:-2000}          # idle connections (at most USERS; ~19000 at most per process here)
PASSWORD=bench-pass

cargo build --release -q -p rookery -p rookery-bench
bench/peers.sh install >/dev/null
out="target/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -srm); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes before:"
    ps -eo pcpu,comm --sort=-pcpu | head -6
    echo "rookery $(git rev-parse --short HEAD); prosody $(dpkg-query -W -f='${Version}' prosody); ejabberd $(dpkg-query -W -f='${Version}' ejabberd)"
} > "$out/machine.txt"

port=15300
for kind in $SERVERS; do
    port=$((port + 1))
    run_dir=$(mktemp -d "/tmp/bench-$kind.XXXXXX")
    chmod 755 "$run_dir"
    echo "== $kind (port $port, $run_dir)"
    pid=$(bench/peers.sh start "$kind" "$run_dir" "$port" 0 | tail -n1)
    trap 'bench/peers.sh stop "$run_dir" >/dev/null 2>&1 || true' EXIT
    bench/peers.sh register "$run_dir" "$USERS" bench "$PASSWORD"
    gen=(taskset -c 1 target/release/rookery-bench --server "127.0.0.1:$port" --users "$USERS"
         --password "$PASSWORD" --server-pid "$pid" --label "$kind" --mechanism SCRAM-SHA-1)
    "${gen[@]}" --json "$out/$kind-login.json" login --logins "$LOGINS" --concurrency "$CONCURRENCY"
    "${gen[@]}" --json "$out/$kind-chat-rate.json" chat --pairs "$PAIRS" --rate "$RATE" --messages $((RATE * RATE_SECS))
    "${gen[@]}" --json "$out/$kind-chat-max.json" chat --pairs "$PAIRS" --rate 0 --messages "$MESSAGES"
    "${gen[@]}" --json "$out/$kind-idle.json" idle --connections "$IDLE"
    bench/peers.sh stop "$run_dir" >/dev/null
    trap - EXIT
    rm -rf "$run_dir"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"

python3 - "$out" $SERVERS <<'PY' | tee "$out/table.txt"
import json, os, sys
out, servers = sys.argv[1], sys.argv[2:]
def get(kind, run, *path):
    try:
        v = json.load(open(os.path.join(out, f"{kind}-{run}.json")))["report"]
        for p in path:
            v = v[p]
        return v
    except (OSError, KeyError, TypeError):
        return None
rows = [
    ("server CPU per SCRAM login, ms", "login", ("server_cpu_per_login_ms",), "{:.3f}"),
    ("logins/s", "login", ("logins_per_s",), "{:.0f}"),
    ("login failures", "login", ("failures",), "{}"),
    (f"server CPU per message at {os.environ.get('RATE', '2000')} msg/s, µs", "chat-rate", ("server_cpu_per_message_us",), "{:.1f}"),
    ("p50 latency at fixed rate, ms", "chat-rate", ("latency", "p50_us"), "ms"),
    ("p99 latency at fixed rate, ms", "chat-rate", ("latency", "p99_us"), "ms"),
    ("lost at fixed rate", "chat-rate", ("lost",), "{}"),
    ("delivered/s at saturation", "chat-max", ("delivered_per_s",), "{:.0f}"),
    ("server CPU per message at saturation, µs", "chat-max", ("server_cpu_per_message_us",), "{:.1f}"),
    ("p99 latency at saturation, ms", "chat-max", ("latency", "p99_us"), "ms"),
    ("lost at saturation", "chat-max", ("lost",), "{}"),
    ("RSS per idle connection, KiB", "idle", ("rss_per_connection_kib",), "{:.1f}"),
    ("projected RSS for 1M connections, GiB", "idle", ("projected_gib_per_million",), "{:.1f}"),
]
others = [s for s in servers if s != "rookery"]
head = ["metric"] + servers + [f"rookery/{o}" for o in others if "rookery" in servers]
table = [head]
for name, run, path, fmt in rows:
    vals = {s: get(s, run, *path) for s in servers}
    def show(v):
        if v is None: return "—"
        return f"{v/1000:.2f}" if fmt == "ms" else fmt.format(v)
    row = [name] + [show(vals[s]) for s in servers]
    if "rookery" in servers:
        for o in others:
            a, b = vals["rookery"], vals[o]
            row.append(f"{a/b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "—")
    table.append(row)
w = [max(len(r[i]) for r in table) for i in range(len(head))]
for r in table:
    print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
PY
echo "results: $out"
