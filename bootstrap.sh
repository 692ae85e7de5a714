#!/bin/sh
# bootstrap.sh -- set up, build, run and test orchester on Debian 12.
#
#   ./bootstrap.sh run     install what is missing, build, start the appliance
#                          (its private redis-server, then orchester in the
#                          foreground with etc/orchester.conf)
#   ./bootstrap.sh check   install what is missing, build, run the whole suite
#                          (unit and integration tests, normal and ASan+UBSan
#                          builds, a bounded fuzz run of each harness, a check
#                          of the code style, and one that the tree is as
#                          checked out);
#                          ends with "N passed, N failed"
#   ./bootstrap.sh build   install the build dependencies and build
#   ./bootstrap.sh deps    install the packages only
#
# `run` starts two programs: a private redis-server with etc/redis.conf,
# which holds the critical datapoints orchester cannot deliver (in the
# background, in a session of its own, so that a Ctrl-C reaches orchester
# and not Redis), waits up to 10 s for it to answer, and then starts
# relay/orchester in the foreground.  Ctrl-C (or SIGTERM, SIGHUP) stops
# orchester, which drains its queues (into Redis, for critical datapoints
# whose destination is down), and then redis-server; a second Ctrl-C does
# not hurry it.  Nothing is installed when every package is there, and the
# build is incremental.  Files, in the run directory (run/ at the top of
# the tree):
#   redis/              Redis's data (append-only files) and its socket,
#                       redis/redis.sock
#   redis.log, redis.pid    redis-server's output and process id
#   orchester.pid       orchester's process id
#   metrics.txt         the demo's file cluster
#   control             the control endpoint (orchester-ctl -f CONFIG ...)
#   conf.d/             included by the demo configuration
# Environment, for `run`:
#   CARBON=HOST:PORT    also forward everything to a carbon-cache
#   RUN_DIR=DIR         the run directory instead of run/ (a relative path is
#                       taken from the current directory)
#   LISTEN_PORT=N       listen on 127.0.0.1:N (TCP and UDP) instead of 2003
# With RUN_DIR or LISTEN_PORT, orchester runs DIR/orchester.conf, written
# from etc/orchester.conf with those paths and that port (the demo's paths
# are relative to the top of the tree, and its configuration has no
# variables); without them, etc/orchester.conf itself.
set -eu
caller=$(pwd)
cd "$(dirname "$0")"
top=$(pwd)

BUILD_PKGS="build-essential autoconf automake libtool pkg-config libzmq3-dev
libev-dev libhiredis-dev libssl-dev libcmocka-dev libtre-dev zlib1g-dev liblz4-dev
libsnappy-dev"
TEST_PKGS="redis-server carbon-c-relay graphite-carbon python3 python3-whisper
python3-zmq collectd-core netcat-openbsd clang libclang-rt-14-dev iproute2
procps clang-format python3-lz4 python3-snappy openssl"

say() { echo "bootstrap: $*" >&2; }

install_pkgs() {
    missing=""
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
            missing="$missing $p"
        fi
    done
    [ -z "$missing" ] && return 0
    say "installing:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # graphite-carbon and collectd start services on install; the tests
    # start their own instances on free ports
    for svc in carbon-cache collectd redis-server carbon-c-relay; do
        $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
        $SUDO service "$svc" stop >/dev/null 2>&1 || true
    done
}

build() {
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
        say "autoreconf"
        autoreconf -fi >/dev/null
    fi
    if [ ! -f Makefile ] || [ configure -nt Makefile ]; then
        say "configure"
        ./configure --enable-werror ${CONFIGURE_FLAGS:-} >/dev/null
    fi
    say "make"
    make -j"$(nproc)" >/dev/null
    make -j"$(nproc)" check TESTS= >/dev/null
}

# The ASan+UBSan build: the distributed tree, built in build-asan/.
build_asan() {
    say "ASan+UBSan build in build-asan/"
    rm -rf build-asan
    make distdir distdir=build-asan >/dev/null
    (cd build-asan && ./configure --enable-werror --enable-asan --enable-ubsan \
        CFLAGS="-g -O1" >/dev/null && make -j"$(nproc)" >/dev/null &&
        make -j"$(nproc)" check TESTS= >/dev/null)
}

# ---- run: the appliance in the foreground ------------------------------------

# Whether process $1 is running (a child that exited but was not waited for
# yet is a zombie, which kill -0 still finds).
running() {
    state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Stop redis-server (SIGTERM: it writes what the append-only file lacks and
# exits); SIGKILL after 10 s.  Safe to call twice.
stop_redis() {
    [ -n "${redis_pid:-}" ] || return 0
    pid=$redis_pid
    redis_pid=""
    kill -TERM "$pid" 2>/dev/null || true
    i=0
    while running "$pid" && [ "$i" -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if running "$pid"; then
        say "redis-server (pid $pid) still running 10 s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    rm -f "$rundir/redis.pid"
    say "redis-server stopped"
}

# The signal handler once redis-server runs: before orchester is started,
# stop (the EXIT trap stops redis-server); after, one SIGTERM to orchester,
# which then drains for at most -D seconds while the script waits for it.
on_signal() {
    trap '' INT TERM HUP
    [ -n "${orchester_pid:-}" ] || exit 130
    stopping=yes
    say "stopping orchester (it drains its queues first), then redis-server"
    kill -TERM "$orchester_pid" 2>/dev/null || true
}

# RUN_DIR and LISTEN_PORT, checked before anything is installed or built.
run_settings() {
    rundir=${RUN_DIR:-$top/run}
    case $rundir in
    /*) ;;
    *) rundir=$caller/$rundir ;;
    esac
    port=${LISTEN_PORT:-2003}
    case $port in
    '' | *[!0-9]*)
        say "LISTEN_PORT=$port is not a port number"
        exit 2
        ;;
    esac
    case $rundir in
    *[!A-Za-z0-9._/+,@=:~-]*)
        # it goes into the configuration (where a blank or ';' ends a
        # token and '#' starts a comment) and into sed expressions
        say "RUN_DIR=$rundir: only letters, digits and ._/+,@=:~- please"
        exit 2
        ;;
    esac
    # unix socket paths have room for 107 bytes
    if [ "${#rundir}" -gt 80 ]; then
        say "RUN_DIR=$rundir: too long for the unix sockets in it (80 bytes at most)"
        exit 2
    fi
}

run_appliance() {
    mkdir -p "$rundir/conf.d" "$rundir/redis"
    rundir=$(cd "$rundir" && pwd)
    # one appliance per run directory
    sock=$rundir/redis/redis.sock
    if redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG; then
        say "$sock answers already: another ./bootstrap.sh run is running," \
            "or the redis-server of an earlier one was left behind" \
            "(its pid: $rundir/redis.pid)"
        exit 1
    fi
    rm -f "$rundir/conf.d/carbon.conf"
    if [ -n "${CARBON:-}" ]; then
        printf 'cluster carbon forward %s ;\nmatch * send to carbon ;\n' "$CARBON" \
            > "$rundir/conf.d/carbon.conf"
        say "also forwarding to carbon-cache at $CARBON"
    fi

    conf=etc/orchester.conf
    if [ "$rundir" != "$top/run" ] || [ "$port" != 2003 ]; then
        conf=$rundir/orchester.conf
        {
            echo "# Written by bootstrap.sh run from etc/orchester.conf (RUN_DIR=$rundir,"
            echo "# LISTEN_PORT=$port): change etc/orchester.conf, not this copy."
            # ../run/ (the include, relative to etc/), and run/ after a
            # blank, ':' (unix:) or '//' (ipc://)
            sed -e "s|\.\./run/|$rundir/|g" \
                -e "s#\(^\|[ :]\|//\)run/#\1$rundir/#g" \
                -e "s|127\.0\.0\.1:2003\b|127.0.0.1:$port|g" etc/orchester.conf
        } > "$conf"
    fi

    # The private Redis: started in the run directory, etc/redis.conf puts
    # its data in redis/ and its socket at redis/redis.sock.
    say "starting redis-server with etc/redis.conf (log: $rundir/redis.log)"
    # setsid: its own session and process group, so a Ctrl-C in the
    # terminal reaches orchester (and this script), not Redis, which stops
    # only once orchester has drained into it.  In a script (no job
    # control) this child is no group leader, so setsid does not fork and
    # $! is redis-server's pid.
    (cd "$rundir" && exec setsid redis-server "$top/etc/redis.conf") \
        > "$rundir/redis.log" 2>&1 &
    redis_pid=$!
    orchester_pid=""
    stopping=""
    trap stop_redis EXIT
    trap on_signal INT TERM HUP
    echo "$redis_pid" > "$rundir/redis.pid"
    i=0
    until redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG; do
        if ! running "$redis_pid"; then
            say "redis-server exited; the end of $rundir/redis.log:"
            tail -n 20 "$rundir/redis.log" >&2
            exit 1
        fi
        i=$((i + 1))
        if [ "$i" -gt 100 ]; then
            say "redis-server does not answer on $sock after 10 s; see $rundir/redis.log"
            exit 1
        fi
        sleep 0.1
    done
    say "redis-server (pid $redis_pid) answers on $sock"

    show=$rundir
    [ "$rundir" != "$top/run" ] || show=run
    say "starting: relay/orchester -f $conf (Ctrl-C stops it and redis-server)"
    say "try: echo \"foo.bar 1 \$(date +%s)\" | nc -q0 127.0.0.1 $port; cat $show/metrics.txt"
    say "the Redis buffer (demo.critical.* is critical): relay/orchester-ctl -f $conf buffer"
    relay/orchester -f "$conf" &
    orchester_pid=$!
    echo "$orchester_pid" > "$rundir/orchester.pid"
    rc=0
    wait "$orchester_pid" || rc=$?
    if [ -n "$stopping" ]; then
        # the signal interrupted the wait: wait for orchester's own end
        rc2=0
        wait "$orchester_pid" 2>/dev/null || rc2=$?
        [ "$rc2" -eq 127 ] || rc=$rc2
    fi
    trap '' INT TERM HUP
    rm -f "$rundir/orchester.pid"
    say "orchester exited with status $rc"
    stop_redis
    exit "$rc"
}

cmd=${1:-}
case "$cmd" in
deps)
    install_pkgs $BUILD_PKGS $TEST_PKGS
    ;;
build)
    install_pkgs $BUILD_PKGS
    build
    ;;
run)
    run_settings
    install_pkgs $BUILD_PKGS netcat-openbsd redis-server
    build
    run_appliance
    ;;
check)
    install_pkgs $BUILD_PKGS $TEST_PKGS
    build
    build_asan
    out=$(mktemp)
    rc=0
    say "suite: normal build"
    tests/run-suite.sh "$top" 2>&1 | tee "$out" || rc=1
    say "suite: ASan+UBSan build"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        tests/run-suite.sh "$top/build-asan" 2>&1 | tee -a "$out" || rc=1
    say "fuzz: ${FUZZ_SECONDS:-10} s per harness, ASan+UBSan"
    tests/run-fuzz.sh 2>&1 | tee -a "$out" || rc=1
    tests/check-format.sh 2>&1 | tee -a "$out" || rc=1
    tests/check-tree.sh 2>&1 | tee -a "$out" || rc=1
    passed=$(sed -n 's/^suite: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    failed=$(sed -n 's/^suite: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$out" | awk '{s+=$1} END {print s+0}')
    rm -f "$out"
    [ "$failed" -eq 0 ] || rc=1
    [ "$passed" -gt 0 ] || rc=1
    echo "$passed passed, $failed failed"
    exit $rc
    ;;
*)
    echo "usage: $0 run|check|build|deps" >&2
    exit 2
    ;;
esac
