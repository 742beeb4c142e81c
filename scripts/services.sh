# Start-up helpers for the test services; sourced by scripts/test.
#
# Every service runs as a child of the test run, on a free loopback port, with its
# data in a temporary directory, and is stopped when the run ends. A service that
# cannot be installed or started stops the run with a message: tests never skip.

TETHER_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tether-services.XXXXXX")"
TETHER_SERVICE_PIDS=()

die() {
    echo "scripts/test: $*" >&2
    exit 1
}

# free_port: a loopback port nothing listens on, below the kernel's ephemeral range
# (32768 and up) so no outgoing connection takes it meanwhile. Bash only: a fresh
# machine may have no python.
free_port() {
    local port _
    for _ in {1..200}; do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free loopback port in 20000-31999"
}

# wait_for NAME SECONDS COMMAND...: retry COMMAND until it succeeds or time runs out.
wait_for() {
    local name=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "--- $name log ---" >&2
            tail -n 40 "$TETHER_SERVICES_DIR/$name.log" >&2 || true
            die "$name did not start within ${seconds}s"
        fi
        sleep 0.2
    done
}

# Debian package for each program the tests need.
declare -A TETHER_PACKAGE_OF=(
    [curl]=curl
    [redis-server]=redis-server
    [redis-cli]=redis-tools
    [mariadbd]=mariadb-server
    [mariadb]=mariadb-client
    [nginx]=nginx
    [haproxy]=haproxy
    [chromium]=chromium
    [chromedriver]=chromium-driver
    [wrk]=wrk
    [taskset]=util-linux
    [redis-benchmark]=redis-tools
    [postgres]=postgresql
)

ensure_programs() {
    local missing=()
    local program
    for program in "$@"; do
        if [[ $program == postgres ]]; then
            [[ -n $(postgres_bin) ]] || missing+=(postgresql)
            continue
        fi
        command -v "$program" >/dev/null 2>&1 || [[ -x "/usr/sbin/$program" ]] ||
            missing+=("${TETHER_PACKAGE_OF[$program]}")
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) -ne 0 ]]; then
        die "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
    fi
    echo "scripts/test: installing ${missing[*]}" >&2
    # Keep the packages' own services from starting: the tests start their own.
    local policy=/usr/sbin/policy-rc.d had_policy=0
    [[ -e $policy ]] && had_policy=1
    if ((had_policy == 0)); then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
    fi
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$TETHER_SERVICES_DIR/apt.log" 2>&1 || {
        tail -n 30 "$TETHER_SERVICES_DIR/apt.log" >&2
        die "apt-get install ${missing[*]} failed"
    }
    ((had_policy == 0)) && rm -f "$policy"
    # Debian starts these on install where it can; tests use their own instances.
    pkill -x redis-server 2>/dev/null || true
    pkill -x mariadbd 2>/dev/null || true
    pkill -x nginx 2>/dev/null || true
    pkill -x haproxy 2>/dev/null || true
    pkill -x postgres 2>/dev/null || true
    return 0
}

# postgres_bin: the directory of the newest Debian PostgreSQL's programs (kept off
# PATH), or of the postgres on PATH; empty when there is none.
postgres_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -n $dir && -x $dir/postgres ]]; then
        echo "$dir"
    elif command -v postgres >/dev/null 2>&1; then
        dirname "$(command -v postgres)"
    fi
}

program_path() {
    command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"
}

# The shared Redis, MariaDB and PostgreSQL: started by tether-services
# (crates/tether-testkit), the same code the fault tests and the lab use; bash only
# finds the programs. It writes the URLs to an env file once all answer, and stops
# them on SIGTERM.
start_services() {
    export TETHER_REDIS_SERVER TETHER_REDIS_CLI TETHER_MARIADBD TETHER_MARIADB_INSTALL_DB TETHER_MARIADB
    export TETHER_POSTGRES_BIN
    TETHER_POSTGRES_BIN=$(postgres_bin)
    TETHER_REDIS_SERVER=$(program_path redis-server)
    TETHER_REDIS_CLI=$(program_path redis-cli)
    TETHER_MARIADBD=$(program_path mariadbd)
    TETHER_MARIADB_INSTALL_DB=$(program_path mariadb-install-db)
    TETHER_MARIADB=$(program_path mariadb)
    cargo build --locked --quiet -p tether-testkit --bin tether-services ||
        die "could not build tether-services"
    local env="$TETHER_SERVICES_DIR/services.env"
    target/debug/tether-services "$env" >"$TETHER_SERVICES_DIR/services.log" 2>&1 &
    local pid=$!
    TETHER_SERVICE_PIDS+=("$pid")
    local deadline=$((SECONDS + 90))
    until [[ -f $env ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$TETHER_SERVICES_DIR/services.log" >&2
            die "the test services did not start"
        fi
        ((SECONDS < deadline)) || die "the test services did not start within 90s"
        sleep 0.2
    done
    # shellcheck source=/dev/null
    source "$env"
}

# nginx: the end-to-end tests start their own instances with their own configs; here we
# prove the binary runs on loopback and hand its path on.
check_nginx() {
    local port dir
    port=$(free_port)
    dir="$TETHER_SERVICES_DIR/nginx"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<CONF
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $dir;
    proxy_temp_path $dir;
    fastcgi_temp_path $dir;
    uwsgi_temp_path $dir;
    scgi_temp_path $dir;
    server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } }
}
CONF
    "$(program_path nginx)" -c "$dir/nginx.conf" -p "$dir" >"$TETHER_SERVICES_DIR/nginx.log" 2>&1 &
    local pid=$!
    wait_for nginx 20 curl -fsS "http://127.0.0.1:$port/"
    kill "$pid" && wait "$pid" 2>/dev/null || true
    export TETHER_NGINX
    TETHER_NGINX=$(program_path nginx)
}

# haproxy: as nginx, prove it runs on loopback (a configuration check and one answer)
# and hand its path on.
check_haproxy() {
    local port dir
    port=$(free_port)
    dir="$TETHER_SERVICES_DIR/haproxy"
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<CONF
defaults
    mode http
    timeout connect 3s
    timeout client 10s
    timeout server 10s
frontend check
    bind 127.0.0.1:$port
    http-request return status 200 content-type text/plain string "ok"
CONF
    "$(program_path haproxy)" -c -q -f "$dir/haproxy.cfg" >"$TETHER_SERVICES_DIR/haproxy.log" 2>&1 ||
        die "haproxy refuses a minimal configuration: $(cat "$TETHER_SERVICES_DIR/haproxy.log")"
    "$(program_path haproxy)" -db -f "$dir/haproxy.cfg" >>"$TETHER_SERVICES_DIR/haproxy.log" 2>&1 &
    local pid=$!
    wait_for haproxy 20 curl -fsS "http://127.0.0.1:$port/"
    kill "$pid" && wait "$pid" 2>/dev/null || true
    export TETHER_HAPROXY
    TETHER_HAPROXY=$(program_path haproxy)
}

check_chromium() {
    chromium --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1 ||
        die "chromium is installed but does not run"
    export TETHER_CHROMIUM TETHER_CHROMEDRIVER
    TETHER_CHROMIUM=$(program_path chromium)
    TETHER_CHROMEDRIVER=$(program_path chromedriver)
}

stop_services() {
    local pid
    for pid in "${TETHER_SERVICE_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${TETHER_SERVICE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TETHER_SERVICES_DIR"
}
