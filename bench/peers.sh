#!/usr/bin/env bash
# Run rookery, Prosody and ejabberd side by side on loopback for benchmarks.
#
#   bench/peers.sh install
#       installs Debian's prosody and ejabberd if missing (and erlang-luerl, which ejabberd
#       needs to import Prosody's accounts), and stops/disables the system services they
#       come with (benchmarks run their own instances).
#   bench/peers.sh start prosody|ejabberd|rookery RUN_DIR PORT [CORE]
#       writes the server's configuration into RUN_DIR, starts it pinned to CORE (default 0;
#       a taskset list such as 0-1 also works, e.g. to register many accounts faster),
#       waits until PORT accepts connections and prints the PID of the server process itself
#       (lua for Prosody, beam.smp for ejabberd, rookery), also written to RUN_DIR/server.pid.
#       Accounts in RUN_DIR survive a stop and a new start in the same RUN_DIR.
#       ROOKERY_BIN overrides the rookery binary (default target/release/rookery), to
#       compare builds. PEERS_MUC=1 also gives Prosody and ejabberd a multi-user chat
#       service at conference.localhost for rooms of up to 1000 occupants (rookery runs
#       one there by default), for the load tool's muc scenario.
#   bench/peers.sh stop RUN_DIR
#       stops that server (and for ejabberd the epmd it started, if no other node uses it).
#   bench/peers.sh register RUN_DIR N PREFIX PASSWORD
#       creates PREFIX1..PREFIXN by in-band registration (bench/register.py).
#   bench/peers.sh check RUN_DIR USER PASSWORD
#       authenticates USER once (PLAIN if offered, else SCRAM-SHA-1) to prove it exists.
#   bench/peers.sh save RUN_DIR FILE
#       writes the stopped server's data (accounts included) to FILE, a tar archive, so
#       that a later run can skip registering (ejabberd takes tens of ms per account).
#   bench/peers.sh load KIND RUN_DIR FILE
#       puts the data saved in FILE into RUN_DIR for a server of KIND, before its start.
#   bench/peers.sh import RUN_DIR FILE
#       gives the running ejabberd from RUN_DIR the accounts of a Prosody data directory
#       saved in FILE (by save), with their SCRAM keys as they are: much faster than
#       registering, since ejabberd computes PBKDF2 in Erlang (~50 ms of CPU per account).
#
# Prosody and ejabberd configurations come from the templates in ../shared/peers (next to
# the repository; see its README for what they change from Debian's defaults and why).
# Every server listens on loopback only, plaintext, with SCRAM-SHA-1 and in-band
# registration allowed (and PLAIN, except rookery, which offers PLAIN only over TLS).
# Every server also offers STARTTLS (not required) on the same port, all three with the
# same certificate: a private CA and a leaf for localhost, ECDSA P-256 (PEERS_CERT_KEY=rsa
# for RSA-2048), generated with openssl in RUN_DIR/tls on the first start. (The templates
# disable TLS; start patches that in after rendering them.)
# Servers run detached (own session) and outlive this script.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS="$REPO/../shared/peers"
START_TIMEOUT=${PEERS_START_TIMEOUT:-60} # seconds for a server to accept connections
STOP_TIMEOUT=60   # seconds for a server to exit after SIGTERM before SIGKILL
PYTHON=$(command -v /usr/bin/python3 || command -v python3)

die() { echo "peers.sh: $*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# --- install ---------------------------------------------------------------------------

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

cmd_install() {
    local missing=() pkg
    for pkg in prosody ejabberd erlang-luerl; do installed "$pkg" || missing+=("$pkg"); done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" \
            || { apt-get update -q && apt-get install -y -q "${missing[@]}"; }
    else
        echo "prosody, ejabberd and erlang-luerl are installed"
    fi
    for pkg in prosody ejabberd; do echo "$pkg $(dpkg-query -W -f='${Version}' "$pkg")"; done
    # Stopping ejabberd's service runs an Erlang client, which leaves an epmd behind.
    local epmd_before=no
    epmd -names >/dev/null 2>&1 && epmd_before=yes
    # The packages start (or would start at boot) a system-wide instance on the standard
    # ports; stop and disable those so only our own instances run.
    for pkg in prosody ejabberd; do
        if [ -d /run/systemd/system ]; then
            systemctl disable --now "$pkg" >/dev/null 2>&1 || true
        else
            service "$pkg" stop >/dev/null 2>&1 || true
            update-rc.d "$pkg" disable >/dev/null 2>&1 || true
            systemctl disable "$pkg" >/dev/null 2>&1 || true  # offline: removes the boot links
        fi
    done
    # The system ejabberd node is "ejabberd@localhost" (ours is "ejabberd_bench@localhost").
    if epmd -names 2>/dev/null | grep -q '^name ejabberd at'; then
        echo "stopping the system ejabberd node"
        ejabberdctl stop >/dev/null 2>&1 || true
    fi
    if [ -f /run/prosody/prosody.pid ] && kill -0 "$(cat /run/prosody/prosody.pid)" 2>/dev/null; then
        echo "stopping the system prosody"
        kill "$(cat /run/prosody/prosody.pid)" || true
    fi
    if [ $epmd_before = no ] && epmd -names >/dev/null 2>&1 && ! epmd -names | grep -q '^name '; then
        epmd -kill >/dev/null 2>&1 || true
    fi
    echo "system services stopped and disabled"
}

# --- helpers ---------------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PIDs of the processes holding a socket listening on 127.0.0.1:PORT (or any address).
listener_pids() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true
}

# Whether PID is ANCESTOR or one of its descendants.
descends() {
    local pid=$1 ancestor=$2
    while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
        [ "$pid" = "$ancestor" ] && return 0
        pid=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    done
    return 1
}

# True while PID exists and is not a zombie (a detached server is reaped by init, which
# may be slow to do it).
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# The command name a server process of KIND has.
expected_comm() {
    case $1 in
        prosody) echo 'lua*' ;;
        ejabberd) echo 'beam.smp' ;;
        rookery) echo 'rookery' ;;
    esac
}

# Whether PID is alive and is a KIND server (guards against a reused PID).
is_server() {
    local pid=$1 kind=$2 comm
    alive "$pid" || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    # shellcheck disable=SC2053  # pattern match on purpose
    [[ $comm == $(expected_comm "$kind") ]]
}

# The last lines of each log file given, for error messages.
show_logs() {
    local f
    for f in "$@"; do
        [ -s "$f" ] || continue
        echo "--- last lines of $f" >&2
        tail -n 25 "$f" >&2
    done
}

# Write a template from ../shared/peers with its placeholders replaced.
render() {
    local src=$1 dst=$2
    [ -r "$src" ] || die "template $src not found (../shared must sit beside the repository)"
    local run_dir_sed=${RUN_DIR//\\/\\\\}
    run_dir_sed=${run_dir_sed//|/\\|}
    run_dir_sed=${run_dir_sed//&/\\&}
    sed -e "s|@RUN_DIR@|$run_dir_sed|g" -e "s|@PROSODY_PORT@|$PORT|g" \
        -e "s|@EJABBERD_PORT@|$PORT|g" "$src" > "$dst"
}

# The benchmark certificate in RUN_DIR/tls, made on first use: ca.pem (a private CA),
# cert.pem (the leaf for localhost and *.localhost, then the CA: the chain the servers
# send), key.pem (the leaf's key, PKCS#8). ECDSA P-256 like rookery's own generated
# certificate, or RSA-2048 with PEERS_CERT_KEY=rsa.
ensure_cert() {
    local dir="$RUN_DIR/tls" kind=${PEERS_CERT_KEY:-ec} newkey
    case $kind in
        ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
        rsa) newkey=(-newkey rsa:2048) ;;
        *) die "PEERS_CERT_KEY must be ec or rsa, not '$kind'" ;;
    esac
    if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] && [ "$(cat "$dir/key.kind" 2>/dev/null)" = "$kind" ]; then
        return
    fi
    command -v openssl >/dev/null || die "openssl is needed to make the benchmark certificate"
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 "${newkey[@]}" -nodes -keyout ca.key -out ca.pem -days 365 \
            -subj "/CN=rookery benchmark CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req "${newkey[@]}" -nodes -keyout key.pem -out leaf.csr -subj "/CN=localhost"
        printf '%s\n' "subjectAltName=DNS:localhost,DNS:*.localhost" "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >leaf.ext
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
            -extfile leaf.ext -out leaf.pem
        cat leaf.pem ca.pem >cert.pem
        rm -f leaf.csr leaf.ext ca.srl
        echo "$kind" >key.kind
    ) >/dev/null 2>&1 || die "openssl could not make the benchmark certificate in $dir"
    chmod 755 "$dir"
    chmod 644 "$dir"/*.pem
}

# Apply sed expression EXPR to FILE, failing if it changed nothing (a template that no
# longer has the line to patch).
patch_conf() {
    local file=$1 expr=$2 before
    before=$(cksum <"$file")
    sed -i -e "$expr" "$file"
    [ "$(cksum <"$file")" != "$before" ] || die "could not patch $file with '$expr' (template changed?)"
}

# Fail early, with a clear message, if USER cannot write DIR (e.g. a parent directory is
# private to root).
check_access() {
    local user=$1 dir=$2
    setpriv --reuid="$user" --regid="$user" --init-groups test -w "$dir" -a -x "$dir" \
        || die "user $user cannot write $dir; put RUN_DIR where $user can reach it (every parent directory must be searchable by others), e.g. under /tmp"
}

# --- start -----------------------------------------------------------------------------

# Each start_* launches the server in the background and sets LAUNCHED (the PID of the
# launched command) and LOGS (log files to show on failure).

start_prosody() {
    id prosody >/dev/null 2>&1 || die "prosody is not installed; run bench/peers.sh install"
    local dir="$RUN_DIR/prosody"
    mkdir -p "$dir/data"
    render "$PEERS/prosody/prosody.cfg.lua.in" "$dir/prosody.cfg.lua"
    # STARTTLS (not required): load mod_tls and point it at the benchmark certificate
    # (Prosody finds localhost.crt/.key in its certificates directory).
    ensure_cert
    mkdir -p "$dir/certs"
    cp "$RUN_DIR/tls/cert.pem" "$dir/certs/localhost.crt"
    cp "$RUN_DIR/tls/key.pem" "$dir/certs/localhost.key"
    patch_conf "$dir/prosody.cfg.lua" 's|^modules_disabled = { "s2s"; "tls" }|modules_disabled = { "s2s" }|'
    patch_conf "$dir/prosody.cfg.lua" 's|^\t"saslauth";$|\t"saslauth";\n\t"tls";|'
    patch_conf "$dir/prosody.cfg.lua" "s|^certificates = .*|certificates = \"$dir/certs\"|"
    patch_conf "$dir/prosody.cfg.lua" "/^VirtualHost \"localhost\"/i ssl = { certificate = \"$dir/certs/localhost.crt\"; key = \"$dir/certs/localhost.key\" }\n"
    if [ "${PEERS_MUC:-0}" = 1 ]; then
        # Prosody 0.12's rooms have no occupant limit by default.
        printf '\nComponent "conference.localhost" "muc"\n' >>"$dir/prosody.cfg.lua"
    fi
    rm -f "$dir/prosody.pid"
    chown -R prosody:prosody "$dir"
    check_access prosody "$dir"
    LOGS=("$dir/prosody.log" "$dir/console.log")
    # taskset, setsid and setpriv all exec, and /usr/bin/prosody is a Lua script, so the
    # launched PID is the Lua interpreter running Prosody.
    (
        cd "$dir"
        exec taskset -c "$CORE" setsid \
            env HOME=/var/lib/prosody setpriv --reuid=prosody --regid=prosody --init-groups \
            prosody --config "$dir/prosody.cfg.lua" -F
    ) </dev/null >"$dir/console.log" 2>&1 &
    LAUNCHED=$!
}

start_ejabberd() {
    id ejabberd >/dev/null 2>&1 || die "ejabberd is not installed; run bench/peers.sh install"
    local dir="$RUN_DIR/ejabberd"
    mkdir -p "$dir/etc" "$dir/db" "$dir/log"
    render "$PEERS/ejabberd/ejabberd.yml.in" "$dir/etc/ejabberd.yml"
    render "$PEERS/ejabberd/ejabberdctl.cfg.in" "$dir/etc/ejabberdctl.cfg"
    cp "$PEERS/ejabberd/inetrc" "$dir/etc/inetrc"
    # STARTTLS (not required) with the benchmark certificate (key and chain in one file).
    ensure_cert
    cat "$RUN_DIR/tls/key.pem" "$RUN_DIR/tls/cert.pem" >"$dir/etc/bench.pem"
    patch_conf "$dir/etc/ejabberd.yml" "s|\"/etc/ejabberd/ejabberd.pem\"|\"$dir/etc/bench.pem\"|"
    patch_conf "$dir/etc/ejabberd.yml" 's|^    starttls: false|    starttls: true|'
    if [ "${PEERS_MUC:-0}" = 1 ]; then
        # ejabberd's default limit is 200 occupants per room (and the service's cap too).
        patch_conf "$dir/etc/ejabberd.yml" 's|^modules:$|modules:\n  mod_muc:\n    max_users: 1000\n    default_room_options:\n      max_users: 1000|'
    fi
    rm -f "$dir/ejabberd.pid"
    chown -R ejabberd:ejabberd "$dir"
    check_access ejabberd "$dir"
    # Remember whether epmd (Erlang's port mapper, started by the first node) ran before,
    # so that stop only ends an epmd this instance brought up.
    if epmd -names >/dev/null 2>&1; then echo no >"$RUN_DIR/epmd.ours"; else echo yes >"$RUN_DIR/epmd.ours"; fi
    LOGS=("$dir/log/ejabberd.log" "$dir/log/error.log" "$dir/console.log")
    # Started as the ejabberd user directly: "ejabberdctl foreground" run as root switches
    # user with su, whose PAM session drops the open-file limit to 1024. --config-dir is
    # what makes ejabberdctl read our ejabberdctl.cfg (its --config is overridden by
    # /etc/default/ejabberd). ejabberdctl is a shell script that runs erl as a child, so
    # the launched PID is that shell; the server process is its beam.smp child.
    (
        cd "$dir"
        exec taskset -c "$CORE" setsid \
            env HOME=/var/lib/ejabberd setpriv --reuid=ejabberd --regid=ejabberd --init-groups \
            ejabberdctl --config-dir "$dir/etc" --spool "$dir/db" --logs "$dir/log" foreground
    ) </dev/null >"$dir/console.log" 2>&1 &
    LAUNCHED=$!
}

start_rookery() {
    local bin="${ROOKERY_BIN:-$REPO/target/release/rookery}"
    if [ ! -x "$bin" ]; then
        echo "building $bin" >&2
        (cd "$REPO" && cargo build --release -q -p rookery) >&2
    fi
    mkdir -p "$RUN_DIR/data"
    ensure_cert
    local conf="$RUN_DIR/rookery.toml"
    # Plaintext c2s on loopback with SCRAM and in-band registration, like the peers'
    # configurations (allow_plain has no effect without TLS: rookery never offers PLAIN on
    # an unencrypted stream); STARTTLS with the same certificate as the peers; a large
    # per-session queue so a fast sender is not cut off.
    cat >"$conf" <<TOML
# rookery benchmark configuration (loopback only), written by bench/peers.sh
hosts = ["localhost"]
data_dir = "$RUN_DIR/data"

[listen]
c2s = "127.0.0.1:$PORT"
c2s_tls = false
s2s = false

[tls]
cert = "$RUN_DIR/tls/cert.pem"
key = "$RUN_DIR/tls/key.pem"

[limits]
outbound_queue = 100000

[auth]
allow_plaintext_on_loopback = true
allow_plain = true
registration = true
scram_iterations = 4096

[log]
level = "warn"
TOML
    "$bin" check-config --config "$conf" >/dev/null || die "rookery rejected $conf"
    LOGS=("$RUN_DIR/rookery.log")
    (
        cd "$RUN_DIR"
        exec taskset -c "$CORE" setsid "$bin" --config "$conf" serve
    ) </dev/null >"$RUN_DIR/rookery.log" 2>&1 &
    LAUNCHED=$!
}

cmd_start() {
    (($# >= 3 && $# <= 4)) || usage
    KIND=$1 RUN_DIR=$2 PORT=$3 CORE=${4:-0}
    case $KIND in prosody | ejabberd | rookery) ;; *) die "unknown server '$KIND' (prosody, ejabberd or rookery)" ;; esac
    [[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "bad port '$PORT'"
    [[ $CORE =~ ^[0-9]+([,-][0-9]+)*$ ]] || die "bad core list '$CORE' (e.g. 0, or 0-1 for both cores)"
    mkdir -p "$RUN_DIR"
    RUN_DIR=$(cd "$RUN_DIR" && pwd)
    chmod 755 "$RUN_DIR"  # the server users must reach their subdirectory
    if [ -f "$RUN_DIR/server.pid" ] && [ -f "$RUN_DIR/server.kind" ] \
        && is_server "$(cat "$RUN_DIR/server.pid")" "$(cat "$RUN_DIR/server.kind")"; then
        die "a server from $RUN_DIR is already running (PID $(cat "$RUN_DIR/server.pid")); stop it first"
    fi
    port_open "$PORT" && die "127.0.0.1:$PORT already accepts connections (another server?)"
    rm -f "$RUN_DIR/server.pid"

    # Every server gets the highest open-file limit this machine allows (it is inherited
    # through taskset/setpriv); with less, it stops accepting connections early.
    ulimit -n "$(ulimit -Hn)" || die "cannot raise the open-file limit to $(ulimit -Hn)"

    "start_$KIND"
    echo "$KIND" >"$RUN_DIR/server.kind"
    echo "$PORT" >"$RUN_DIR/server.port"
    echo "$LAUNCHED" >"$RUN_DIR/launcher.pid"

    # Wait until the port is listened on by the server we launched: the process holding
    # the listening socket is the server process itself (for ejabberd the beam.smp child
    # of ejabberdctl), which is the PID to report.
    local deadline=$((SECONDS + START_TIMEOUT)) pid="" holders
    while :; do
        holders=$(listener_pids "$PORT")
        for pid in $holders; do
            is_server "$pid" "$KIND" && descends "$pid" "$LAUNCHED" && break 2
        done
        pid=""
        if ! alive "$LAUNCHED"; then
            show_logs "${LOGS[@]}"
            die "$KIND exited before listening on 127.0.0.1:$PORT (logs above)"
        fi
        if ((SECONDS >= deadline)); then
            show_logs "${LOGS[@]}"
            kill -TERM -- "-$LAUNCHED" 2>/dev/null || true  # its whole process group
            [ -n "$holders" ] && echo "peers.sh: 127.0.0.1:$PORT is held by PID $holders, not by $KIND" >&2
            die "$KIND did not listen on 127.0.0.1:$PORT within ${START_TIMEOUT}s (logs above; stopped it)"
        fi
        sleep 0.2
    done
    until port_open "$PORT"; do
        ((SECONDS < deadline)) || die "$KIND listens on 127.0.0.1:$PORT but does not accept connections"
        sleep 0.2
    done
    local nofile
    nofile=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")
    [ "$nofile" = "$(ulimit -Hn)" ] \
        || echo "peers.sh: warning: $KIND runs with an open-file limit of $nofile (maximum $(ulimit -Hn))" >&2
    echo "$pid" >"$RUN_DIR/server.pid"
    echo "$KIND listening on 127.0.0.1:$PORT, PID $pid ($(cat "/proc/$pid/comm")), core $CORE, open files $nofile" >&2
    echo "$pid"
}

# --- stop ------------------------------------------------------------------------------

wait_gone() {
    local pid=$1 timeout=$2 deadline=$((SECONDS + $2))
    while alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

cmd_stop() {
    (($# == 1)) || usage
    [ -f "$1/server.kind" ] || die "no server was started in $1"
    RUN_DIR=$(cd "$1" && pwd)
    local kind pid launcher
    kind=$(cat "$RUN_DIR/server.kind")
    pid=$(cat "$RUN_DIR/server.pid" 2>/dev/null || true)
    launcher=$(cat "$RUN_DIR/launcher.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && is_server "$pid" "$kind"; then
        # All three shut down cleanly on SIGTERM (for ejabberd, the Erlang VM runs
        # init:stop(); its ejabberdctl parent then exits too).
        kill -TERM "$pid"
        if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
            echo "peers.sh: $kind (PID $pid) still running after ${STOP_TIMEOUT}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 10 || die "$kind (PID $pid) does not exit"
        fi
        echo "$kind (PID $pid) stopped" >&2
    else
        echo "$kind from $RUN_DIR is not running" >&2
    fi
    # The launcher (ejabberdctl's shell for ejabberd; the server itself otherwise) ends
    # with the server; make sure it is gone before returning.
    if [ -n "$launcher" ] && [ "$launcher" != "$pid" ] && alive "$launcher" \
        && grep -qaF "$RUN_DIR" "/proc/$launcher/cmdline" 2>/dev/null; then
        wait_gone "$launcher" 10 || kill -TERM "$launcher" 2>/dev/null || true
    fi
    if [ "$kind" = ejabberd ] && [ "$(cat "$RUN_DIR/epmd.ours" 2>/dev/null)" = yes ]; then
        # epmd outlives the node that started it; end it unless another node registered.
        local deadline=$((SECONDS + 10))
        while epmd -names 2>/dev/null | grep -q '^name '; do
            ((SECONDS < deadline)) || break
            sleep 0.2
        done
        if epmd -names >/dev/null 2>&1 && ! epmd -names 2>/dev/null | grep -q '^name '; then
            epmd -kill >/dev/null 2>&1 || true
            deadline=$((SECONDS + 10))
            while epmd -names >/dev/null 2>&1 && ((SECONDS < deadline)); do sleep 0.2; done
            echo "epmd stopped" >&2
        elif epmd -names >/dev/null 2>&1; then
            echo "epmd left running: other Erlang nodes use it" >&2
        fi
        rm -f "$RUN_DIR/epmd.ours"
    fi
    rm -f "$RUN_DIR/server.pid" "$RUN_DIR/launcher.pid"
}

# --- register / check ------------------------------------------------------------------

server_port() {
    [ -f "$1/server.port" ] || die "no server was started in $1"
    local port
    port=$(cat "$1/server.port")
    port_open "$port" || die "nothing accepts connections on 127.0.0.1:$port (is the server in $1 running?)"
    echo "$port"
}

cmd_register() {
    (($# == 4)) || usage
    local port
    port=$(server_port "$1")
    "$PYTHON" "$REPO/bench/register.py" --port "$port" "$2" "$3" "$4"
}

cmd_check() {
    (($# == 3)) || usage
    local port
    port=$(server_port "$1")
    "$PYTHON" "$REPO/bench/register.py" --port "$port" --check "$2" "$3"
}

# --- save / load -----------------------------------------------------------------------

# Where a server of KIND keeps its data, relative to RUN_DIR.
data_of() {
    case $1 in
        prosody) echo prosody/data ;;
        ejabberd) echo ejabberd/db ;;
        rookery) echo data ;;
        *) die "unknown server '$1'" ;;
    esac
}

cmd_save() {
    (($# == 2)) || usage
    [ -f "$1/server.kind" ] || die "no server was started in $1"
    local kind pid data
    kind=$(cat "$1/server.kind")
    pid=$(cat "$1/server.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && is_server "$pid" "$kind"; then
        die "$kind from $1 is running; stop it before saving its data"
    fi
    data=$(data_of "$kind")
    [ -d "$1/$data" ] || die "$1/$data does not exist"
    mkdir -p "$(dirname "$2")"
    tar -C "$1" -cf "$2.tmp" "$data" && mv "$2.tmp" "$2"
    echo "saved $kind data from $1 to $2" >&2
}

cmd_load() {
    (($# == 3)) || usage
    local kind=$1 dir=$2 file=$3 data
    data=$(data_of "$kind")
    [ -f "$file" ] || die "$file does not exist"
    mkdir -p "$dir"
    rm -rf "${dir:?}/$data"
    tar -C "$dir" -xf "$file"
    [ -d "$dir/$data" ] || die "$file holds no $data"
    echo "loaded $kind data from $file into $dir" >&2
}

cmd_import() {
    (($# == 2)) || usage
    [ -f "$1/server.kind" ] || die "no server was started in $1"
    RUN_DIR=$(cd "$1" && pwd)
    local file=$2 pid dir="$RUN_DIR/ejabberd" import="$RUN_DIR/import"
    [ "$(cat "$RUN_DIR/server.kind")" = ejabberd ] || die "import is for ejabberd only"
    pid=$(cat "$RUN_DIR/server.pid" 2>/dev/null || true)
    [ -n "$pid" ] && is_server "$pid" ejabberd || die "ejabberd from $RUN_DIR is not running"
    [ -f "$file" ] || die "$file does not exist"
    installed erlang-luerl || die "ejabberd needs erlang-luerl to import Prosody's data (bench/peers.sh install)"
    rm -rf "$import"
    mkdir -p "$import"
    tar -C "$import" -xf "$file"
    [ -d "$import/prosody/data" ] || die "$file holds no Prosody data"
    chown -R ejabberd:ejabberd "$import"
    (
        cd "$dir"
        env HOME=/var/lib/ejabberd setpriv --reuid=ejabberd --regid=ejabberd --init-groups \
            ejabberdctl --config-dir "$dir/etc" --spool "$dir/db" --logs "$dir/log" \
            import_prosody "$import/prosody/data"
    ) || { show_logs "$dir/log/error.log"; die "ejabberd could not import $file"; }
    rm -rf "$import"
    echo "ejabberd imported the accounts in $file" >&2
}

case ${1:-} in
    install) shift; cmd_install "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    register) shift; cmd_register "$@" ;;
    check) shift; cmd_check "$@" ;;
    save) shift; cmd_save "$@" ;;
    load) shift; cmd_load "$@" ;;
    import) shift; cmd_import "$@" ;;
    *) usage ;;
esac
