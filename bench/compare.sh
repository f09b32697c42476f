#!/usr/bin/env bash
# Side-by-side benchmark of rookery, Prosody and ejabberd on this machine, in one run.
#
#   bench/compare.sh                     # defaults below; override with environment variables
#   SERVERS=rookery IDLE="1000 5000" USERS=5020 bench/compare.sh
#   SERVERS="rookery prosody" USERS=1200 IDLE=1000 LOGINS=500 MESSAGES=20000 bench/compare.sh
#
# Each server in turn is started by bench/peers.sh pinned to core 0 (the generator runs on
# core 1), gets the same accounts (registered in-band, or loaded from the copy saved by an
# earlier run, see ACCOUNTS_CACHE) and faces the same scenarios:
#   - a SCRAM-SHA-1 login storm, plaintext (after an unmeasured one to warm up);
#   - the same storm over STARTTLS, and STARTTLS handshakes alone (its TLS share);
#   - 1:1 chat at saturation, each message in a write of its own; again with senders
#     writing up to BATCH messages at once (those their window allows: with one write per
#     message the generator's own core saturates first, mostly in the kernel, so only this
#     run loads the server to its limit); then at a fixed rate: RATE if set, else half the
#     saturation rate that server just reached (the target: p99 <= 1 ms at 50 % of
#     saturation), and at SAME_RATE, the same for every server; fixed-rate sends are paced
#     to within µs (rookery-bench's pace.rs), and how late they went out is reported: a
#     p99 lag near the latency means the generator, not the server, fell behind;
#   - for each size K in IDLE: K idle connections (RSS per connection), then ACTIVE_PAIRS
#     pairs chatting at ACTIVE_RATE msg/s for ACTIVE_SECS among them (their latency);
#   - IDLE_TLS idle connections over STARTTLS (RSS per idle TLS connection);
#   - with MUC=1, for each size N in MUC_SIZES: N users in one multi-user chat room,
#     MUC_SENDERS of them sending at MUC_RATE msg/s for RATE_SECS, then at saturation
#     (MUC_DELIVERIES deliveries in all), each on a fresh server (Prosody and ejabberd get
#     a MUC service at conference.localhost from bench/peers.sh, PEERS_MUC=1).
# Every idle run starts on a freshly restarted server: one that has just closed thousands
# of connections reuses the memory they freed, and the next measurement would be too low.
# The generator samples the server's CPU time and RSS from /proc. JSON for every run and
# the machine's state go to target/bench-results/<time>/; one table with the ratios is
# printed at the end (and saved as table.txt there).
set -euo pipefail
cd "$(dirname "$0")/.."

SERVERS=${SERVERS:-"rookery prosody ejabberd"}
IDLE=${IDLE:-"1000 5000 19000"}   # idle sizes; each is capped by the open-file limits
ACTIVE_PAIRS=${ACTIVE_PAIRS:-10}  # pairs chatting among the idle connections (0: none)
ACTIVE_RATE=${ACTIVE_RATE:-200}   # their total msg/s
ACTIVE_SECS=${ACTIVE_SECS:-5}
max_idle=0
for k in $IDLE; do if ((k > max_idle)); then max_idle=$k; fi; done
# Accounts per server: the largest idle size and the active pairs' accounts after it (the
# chat pairs reuse the first accounts), rounded up to a hundred: 19100 by default.
USERS=${USERS:-$(((max_idle + 2 * ACTIVE_PAIRS + 99) / 100 * 100))}
LOGINS=${LOGINS:-2000}            # logins in the storm (plaintext and STARTTLS each)
HANDSHAKES=${HANDSHAKES:-$LOGINS} # STARTTLS handshakes alone
CONCURRENCY=${CONCURRENCY:-50}
PAIRS=${PAIRS:-50}                # chat pairs (2 × PAIRS accounts)
RATE=${RATE:-}                    # msg/s of the fixed-rate chat; empty: 50 % of saturation
SAME_RATE=${SAME_RATE:-2000}      # one more fixed-rate chat, the same for every server
RATE_SECS=${RATE_SECS:-10}        # seconds of each fixed-rate chat
MESSAGES=${MESSAGES:-100000}      # messages at saturation
BATCH=${BATCH:-8}                 # most messages a sender writes at once in the second saturation run
IDLE_TLS=${IDLE_TLS:-}            # idle connections over STARTTLS; empty: the smallest IDLE; 0: none
REGISTER_CORES=${REGISTER_CORES:-0-1} # cores a server may use while accounts are registered
MUC=${MUC:-0}                     # 1: also the multi-user chat fan-out runs
MUC_SIZES=${MUC_SIZES:-"50 500"}  # occupants per room, one room per run
MUC_SENDERS=${MUC_SENDERS:-5}     # occupants who send
MUC_RATE=${MUC_RATE:-20}          # their total msg/s at the fixed rate (× occupants deliveries/s)
MUC_DELIVERIES=${MUC_DELIVERIES:-500000} # deliveries at saturation (messages × occupants)
# Saved server data with the accounts, reused by later runs with the same USERS ("" to
# always register afresh).
ACCOUNTS_CACHE=${ACCOUNTS_CACHE-target/bench-accounts}
PASSWORD=bench-pass
PREFIX=bench
MARGIN=200 # open files a server or the generator needs besides the connections

if [ -z "$IDLE_TLS" ]; then
    IDLE_TLS=$max_idle
    for k in $IDLE; do if ((k < IDLE_TLS)); then IDLE_TLS=$k; fi; done
fi
if [ "$MUC" = 1 ]; then
    export PEERS_MUC=1
    for n in $MUC_SIZES; do
        if ((n > USERS)); then echo "MUC_SIZES: a room of $n needs $n accounts; USERS=$USERS" >&2; exit 2; fi
    done
else
    MUC_SIZES=""
fi
# One socket per connection: the generator (and the servers, started by peers.sh) get
# the most this machine allows.
ulimit -n "$(ulimit -Hn)"

cargo build --release -q -p rookery -p rookery-bench
bench/peers.sh install >/dev/null
out="target/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -srm); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    echo "open files: $(ulimit -n) (hard $(ulimit -Hn))"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes before:"
    ps -eo pcpu,comm --sort=-pcpu | head -6
    echo "rookery $(git rev-parse --short HEAD); prosody $(dpkg-query -W -f='${Version}' prosody); ejabberd $(dpkg-query -W -f='${Version}' ejabberd)"
    echo "settings: USERS=$USERS LOGINS=$LOGINS HANDSHAKES=$HANDSHAKES CONCURRENCY=$CONCURRENCY PAIRS=$PAIRS RATE=${RATE:-50%} SAME_RATE=$SAME_RATE RATE_SECS=$RATE_SECS MESSAGES=$MESSAGES BATCH=$BATCH IDLE=\"$IDLE\" ACTIVE_PAIRS=$ACTIVE_PAIRS ACTIVE_RATE=$ACTIVE_RATE ACTIVE_SECS=$ACTIVE_SECS IDLE_TLS=$IDLE_TLS MUC=$MUC MUC_SIZES=\"$MUC_SIZES\" MUC_SENDERS=$MUC_SENDERS MUC_RATE=$MUC_RATE MUC_DELIVERIES=$MUC_DELIVERIES"
} > "$out/machine.txt"

# start KIND RUN_DIR PORT CORES: start the server; sets pid.
start() {
    pid=$(bench/peers.sh start "$1" "$2" "$3" "$4" | tail -n1)
}

# accounts KIND RUN_DIR PORT: USERS accounts on a server started on core 0 (sets pid):
# loaded from the cache when there is a usable copy, else registered in-band (the server
# on REGISTER_CORES meanwhile) and saved to the cache. ejabberd, which takes ~50 ms of CPU
# to register one account, imports Prosody's saved accounts instead when there are some
# (the same SCRAM-SHA-1 keys, 4096 iterations): SERVERS lists prosody before ejabberd.
accounts() {
    local kind=$1 dir=$2 port=$3 cache="" t0=$SECONDS
    [ -n "$ACCOUNTS_CACHE" ] && cache="$ACCOUNTS_CACHE/$kind-$PREFIX-$USERS.tar"
    if [ -n "$cache" ] && [ -f "$cache" ]; then
        bench/peers.sh load "$kind" "$dir" "$cache"
        if start "$kind" "$dir" "$port" 0 \
            && bench/peers.sh check "$dir" "$PREFIX$USERS" "$PASSWORD" >/dev/null; then
            echo "accounts loaded from $cache"
            return
        fi
        echo "the saved accounts in $cache do not work here; registering afresh" >&2
        bench/peers.sh stop "$dir" >/dev/null 2>&1 || true
        rm -f "$cache"
        find "$dir" -mindepth 1 -delete
    fi
    start "$kind" "$dir" "$port" "$REGISTER_CORES"
    local prosody_cache="$ACCOUNTS_CACHE/prosody-$PREFIX-$USERS.tar"
    if [ "$kind" = ejabberd ] && [ -n "$cache" ] && [ -f "$prosody_cache" ] \
        && bench/peers.sh import "$dir" "$prosody_cache" \
        && bench/peers.sh check "$dir" "$PREFIX$USERS" "$PASSWORD" >/dev/null; then
        echo "accounts imported from Prosody's in $prosody_cache"
    fi
    # (Accounts that exist already only answer "conflict": cheap.)
    bench/peers.sh register "$dir" "$USERS" "$PREFIX" "$PASSWORD"
    echo "registering took $((SECONDS - t0)) s" | tee -a "$out/$kind-register.txt"
    if [ -n "$cache" ] || [ "$REGISTER_CORES" != 0 ]; then
        bench/peers.sh stop "$dir" >/dev/null
        if [ -n "$cache" ]; then bench/peers.sh save "$dir" "$cache"; fi
        start "$kind" "$dir" "$port" 0
    fi
}

# The JSON report's value at a path, e.g. json FILE delivered_per_s.
json() {
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))["report"]
for p in sys.argv[2:]:
    v = v[p]
print(v)' "$@"
}

port=15300
for kind in $SERVERS; do
    port=$((port + 1))
    run_dir=$(mktemp -d "/tmp/bench-$kind.XXXXXX")
    chmod 755 "$run_dir"
    echo "== $kind (port $port, $run_dir)"
    trap 'bench/peers.sh stop "$run_dir" >/dev/null 2>&1 || true' EXIT
    accounts "$kind" "$run_dir" "$port"
    gen() {
        taskset -c 1 target/release/rookery-bench --server "127.0.0.1:$port" --users "$USERS" \
            --password "$PASSWORD" --prefix "$PREFIX" --server-pid "$pid" --label "$kind" \
            --mechanism SCRAM-SHA-1 "$@"
    }
    # An unmeasured storm first: a server's first login of an account (or its first logins
    # after a start) can cost more than the next, and the plaintext and TLS storms below
    # should both see accounts that have logged in before.
    gen --json "$out/$kind-warmup.json" login --logins "$LOGINS" --concurrency "$CONCURRENCY" >/dev/null
    gen --json "$out/$kind-login.json" login --logins "$LOGINS" --concurrency "$CONCURRENCY"
    gen --tls starttls --json "$out/$kind-login-tls.json" login --logins "$LOGINS" --concurrency "$CONCURRENCY"
    gen --tls starttls --json "$out/$kind-handshake.json" handshake --handshakes "$HANDSHAKES" --concurrency "$CONCURRENCY"
    gen --json "$out/$kind-chat-max.json" chat --pairs "$PAIRS" --rate 0 --messages "$MESSAGES"
    gen --json "$out/$kind-chat-batch.json" chat --pairs "$PAIRS" --rate 0 --messages "$MESSAGES" --batch "$BATCH"
    rate=$RATE
    if [ -z "$rate" ]; then
        rate=$(python3 -c 'import sys; print(max(1, int(float(sys.argv[1]) / 2)))' \
            "$(json "$out/$kind-chat-max.json" delivered_per_s)")
        echo "50 % of $kind's saturation rate: $rate msg/s"
    fi
    gen --json "$out/$kind-chat-half.json" chat --pairs "$PAIRS" --rate "$rate" --messages $((rate * RATE_SECS))
    gen --json "$out/$kind-chat-rate.json" chat --pairs "$PAIRS" --rate "$SAME_RATE" --messages $((SAME_RATE * RATE_SECS))

    # Idle runs, each on a fresh server, capped by what the server's and the generator's
    # open-file limits and the accounts allow.
    idle_run() { # K NAME [generator options]
        local k=$1 name=$2 nofile cap
        shift 2
        bench/peers.sh stop "$run_dir" >/dev/null
        start "$kind" "$run_dir" "$port" 0
        nofile=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")
        cap=$(( nofile < $(ulimit -n) ? nofile : $(ulimit -n) ))
        cap=$((cap - MARGIN - 2 * ACTIVE_PAIRS))
        if ((USERS - 2 * ACTIVE_PAIRS < cap)); then cap=$((USERS - 2 * ACTIVE_PAIRS)); fi
        if ((k > cap)); then
            echo "$kind: $k idle connections do not fit (open files $nofile, $USERS accounts); running $cap" >&2
            k=$cap
        fi
        local active=()
        if ((ACTIVE_PAIRS > 0)); then
            active=(--active-pairs "$ACTIVE_PAIRS" --rate "$ACTIVE_RATE" --active-secs "$ACTIVE_SECS")
        fi
        gen "$@" --json "$out/$kind-$name.json" idle --connections "$k" "${active[@]}"
    }
    for k in $IDLE; do
        idle_run "$k" "idle-$k"
    done
    if ((IDLE_TLS > 0)); then
        idle_run "$IDLE_TLS" idle-tls --tls starttls
    fi
    # MUC fan-out, each run on a fresh server: a room of hundreds emptying at once keeps a
    # server busy (every departure is announced to everyone left) after the run has ended.
    for n in $MUC_SIZES; do
        for r in "$MUC_RATE" 0; do
            bench/peers.sh stop "$run_dir" >/dev/null
            start "$kind" "$run_dir" "$port" 0
            if ((r > 0)); then name="muc-$n-rate" msgs=$((r * RATE_SECS)); else name="muc-$n-max" msgs=$((MUC_DELIVERIES / n)); fi
            gen --json "$out/$kind-$name.json" muc --occupants "$n" --senders "$MUC_SENDERS" \
                --rate "$r" --messages "$msgs" --room "bench$n"
        done
    done
    bench/peers.sh stop "$run_dir" >/dev/null
    trap - EXIT
    rm -rf "$run_dir"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"

IDLE="$IDLE" IDLE_TLS="$IDLE_TLS" RATE="$RATE" BATCH="$BATCH" SAME_RATE="$SAME_RATE" MUC_SIZES="$MUC_SIZES" MUC_RATE="$MUC_RATE" \
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
sizes = [int(k) for k in os.environ["IDLE"].split()]
same, rate = os.environ["SAME_RATE"], os.environ.get("RATE")
batch = os.environ["BATCH"]
half = f"{rate} msg/s" if rate else "50 % of saturation"
rows = [
    ("server CPU per SCRAM login, ms", "login", ("server_cpu_per_login_ms",), "{:.3f}"),
    ("logins/s", "login", ("logins_per_s",), "{:.0f}"),
    ("login failures", "login", ("failures",), "{}"),
    ("server CPU per TLS login, ms", "login-tls", ("server_cpu_per_login_ms",), "{:.3f}"),
    ("of which TLS handshake, ms", "handshake", ("server_cpu_per_handshake_ms",), "{:.3f}"),
    ("TLS logins/s", "login-tls", ("logins_per_s",), "{:.0f}"),
    ("TLS handshakes/s", "handshake", ("handshakes_per_s",), "{:.0f}"),
    ("TLS login + handshake failures", ("login-tls", "handshake"), ("failures",), "{}"),
    ("delivered/s at saturation", "chat-max", ("delivered_per_s",), "{:.0f}"),
    ("server CPU per message at saturation, µs", "chat-max", ("server_cpu_per_message_us",), "{:.1f}"),
    ("p99 latency at saturation, ms", "chat-max", ("latency", "p99_us"), "ms"),
    ("lost at saturation", "chat-max", ("lost",), "{}"),
    (f"delivered/s at saturation, up to {batch} per write", "chat-batch", ("delivered_per_s",), "{:.0f}"),
    (f"server CPU per message at saturation, up to {batch} per write, µs", "chat-batch", ("server_cpu_per_message_us",), "{:.1f}"),
    (f"p99 latency at saturation, up to {batch} per write, ms", "chat-batch", ("latency", "p99_us"), "ms"),
    (f"lost at saturation, up to {batch} per write", "chat-batch", ("lost",), "{}"),
    (f"rate at {half}, msg/s", "chat-half", ("rate",), "{}"),
    (f"p50 latency at {half}, ms", "chat-half", ("latency", "p50_us"), "ms"),
    (f"p99 latency at {half}, ms", "chat-half", ("latency", "p99_us"), "ms"),
    (f"p99 lag of sends behind schedule at {half}, ms", "chat-half", ("send_lag", "p99_us"), "ms"),
    (f"server CPU per message at {half}, µs", "chat-half", ("server_cpu_per_message_us",), "{:.1f}"),
    (f"lost at {half}", "chat-half", ("lost",), "{}"),
    (f"server CPU per message at {same} msg/s, µs", "chat-rate", ("server_cpu_per_message_us",), "{:.1f}"),
    (f"p50 latency at {same} msg/s, ms", "chat-rate", ("latency", "p50_us"), "ms"),
    (f"p99 latency at {same} msg/s, ms", "chat-rate", ("latency", "p99_us"), "ms"),
    (f"p99 lag of sends behind schedule at {same} msg/s, ms", "chat-rate", ("send_lag", "p99_us"), "ms"),
    (f"lost at {same} msg/s", "chat-rate", ("lost",), "{}"),
]
for k in sizes:
    rows += [
        (f"RSS per idle connection at {k}, KiB", f"idle-{k}", ("rss_per_connection_kib",), "{:.1f}"),
        (f"active p99 latency at {k} idle, ms", f"idle-{k}", ("active", "latency", "p99_us"), "ms"),
    ]
def marginal(s, k1, k2):
    """RSS per connection between two idle sizes: what one more connection costs, without
    the server's fixed overhead that the smaller size carries."""
    a, b = get(s, f"idle-{k1}"), get(s, f"idle-{k2}")
    try:
        grow = lambda r: r["rss_after_kib"] - r["rss_before_kib"]
        return (grow(b) - grow(a)) / (b["connections"] - a["connections"])
    except (TypeError, KeyError, ZeroDivisionError):
        return None
ordered = sorted(set(sizes))
for k1, k2 in zip(ordered, ordered[1:]):
    rows.append((f"RSS per idle connection from {k1} to {k2}, KiB",
                 lambda s, k1=k1, k2=k2: marginal(s, k1, k2), (), "{:.1f}"))
rows += [
    ("active lost, all idle sizes", tuple(f"idle-{k}" for k in sizes), ("active", "lost"), "{}"),
]
if sizes:
    rows.append((f"projected RSS for 1M connections (from {max(sizes)}), GiB", f"idle-{max(sizes)}",
                 ("projected_gib_per_million",), "{:.1f}"))
if int(os.environ["IDLE_TLS"]) > 0:
    rows.append((f"RSS per idle TLS connection at {os.environ['IDLE_TLS']}, KiB", "idle-tls",
                 ("rss_per_connection_kib",), "{:.1f}"))
muc_rate = os.environ["MUC_RATE"]
for n in (int(k) for k in os.environ["MUC_SIZES"].split()):
    rows += [
        (f"MUC {n}: server CPU per entry, ms", f"muc-{n}-max", ("server_cpu_per_join_ms",), "{:.2f}"),
        (f"MUC {n}: deliveries/s at saturation", f"muc-{n}-max", ("deliveries_per_s",), "{:.0f}"),
        (f"MUC {n}: server CPU per delivery at saturation, µs", f"muc-{n}-max", ("server_cpu_per_delivery_us",), "{:.1f}"),
        (f"MUC {n}: p99 latency at saturation, ms", f"muc-{n}-max", ("latency", "p99_us"), "ms"),
        (f"MUC {n}: server CPU per delivery at {muc_rate} msg/s, µs", f"muc-{n}-rate", ("server_cpu_per_delivery_us",), "{:.1f}"),
        (f"MUC {n}: p50 latency at {muc_rate} msg/s, ms", f"muc-{n}-rate", ("latency", "p50_us"), "ms"),
        (f"MUC {n}: p99 latency at {muc_rate} msg/s, ms", f"muc-{n}-rate", ("latency", "p99_us"), "ms"),
        (f"MUC {n}: lost deliveries, both runs", (f"muc-{n}-rate", f"muc-{n}-max"), ("lost",), "{}"),
    ]
others = [s for s in servers if s != "rookery"]
head = ["metric"] + servers + [f"rookery/{o}" for o in others if "rookery" in servers]
table = [head]
for name, run, path, fmt in rows:
    def value(s):
        if callable(run):
            return run(s)
        if isinstance(run, tuple):  # a sum over several runs
            vs = [get(s, r, *path) for r in run]
            return sum(vs) if all(isinstance(v, (int, float)) for v in vs) else None
        return get(s, run, *path)
    vals = {s: value(s) for s in servers}
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
# Idle runs that were capped below their size.
for s in servers:
    for k in sizes:
        got = get(s, f"idle-{k}", "connections")
        if got is not None and got != k:
            print(f"note: {s} held {got} idle connections, not {k} (open-file limit or accounts)")
    tls = get(s, "handshake", "tls")
    if tls:
        print(f"TLS with {s}: {tls}")
PY
echo "results: $out"
