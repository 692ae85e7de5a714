#!/bin/sh
# bootstrap.sh -- set up, build, run and test orchester on Debian 12.
#
#   ./bootstrap.sh run     install what is missing, build, start the appliance
#                          in the foreground with etc/orchester.conf
#   ./bootstrap.sh check   install what is missing, build, run the whole suite
#                          (unit and integration tests, normal and ASan+UBSan
#                          builds, a bounded fuzz run of each harness, a check
#                          of the code style, and one that the tree is as
#                          checked out);
#                          ends with "N passed, N failed"
#   ./bootstrap.sh build   install the build dependencies and build
#   ./bootstrap.sh deps    install the packages only
#
# Set CARBON=HOST:PORT with `run` to also forward everything to a carbon-cache.
set -eu
cd "$(dirname "$0")"
top=$(pwd)

BUILD_PKGS="build-essential autoconf automake libtool pkg-config libzmq3-dev
libev-dev libhiredis-dev libssl-dev libcmocka-dev libtre-dev"
TEST_PKGS="redis-server carbon-c-relay graphite-carbon python3 python3-whisper
python3-zmq collectd-core netcat-openbsd clang libclang-rt-14-dev iproute2
procps clang-format"

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
    install_pkgs $BUILD_PKGS netcat-openbsd
    build
    mkdir -p run/conf.d
    rm -f run/conf.d/carbon.conf
    if [ -n "${CARBON:-}" ]; then
        printf 'cluster carbon forward %s ;\nmatch * send to carbon ;\n' "$CARBON" \
            > run/conf.d/carbon.conf
        say "also forwarding to carbon-cache at $CARBON"
    fi
    say "starting: relay/orchester -f etc/orchester.conf (Ctrl-C stops it)"
    say "try: echo \"foo.bar 1 \$(date +%s)\" | nc -q0 127.0.0.1 2003; cat run/metrics.txt"
    exec relay/orchester -f etc/orchester.conf
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
    say "fuzz: ${FUZZ_SECONDS:-60} s per harness, ASan+UBSan"
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
