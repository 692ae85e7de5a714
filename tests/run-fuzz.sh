#!/bin/sh
# run-fuzz.sh -- a bounded libFuzzer run of every harness in tests/fuzz/,
# under ASan+UBSan (clang with libclang-rt-14-dev).
#
#   tests/run-fuzz.sh [SECONDS]     (default 10 per harness, or $FUZZ_SECONDS)
#
# Each harness is built from tests/fuzz/fuzz_NAME.c and the modules it needs,
# then fuzzed from a copy of its checked-in seed corpus (tests/fuzz/corpus/
# NAME/).  A crash, leak, sanitizer report or timeout fails the harness; the
# input that did it is kept in the work directory, which is printed.  Ends
# with "suite: N passed, N failed".
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-${FUZZ_SECONDS:-10}}
work=$(mktemp -d /tmp/orchester-fuzz.XXXXXX)
passed=0
failed=0
CC=${FUZZ_CC:-clang}

# the modules each harness links, and the libraries they need
mods() {
    case "$1" in
    line) echo "src/line.c" ;;
    config) echo "src/config.c src/config_lex.c src/ere.c src/options.c src/carbonagg.c" ;;
    pickle) echo "src/pickle.c src/numfmt.c src/pyesc.c" ;;
    batch) echo "src/batch.c src/line.c" ;;
    codec) echo "src/codec.c" ;;
    *) echo "" ;;
    esac
}
libs() {
    case "$1" in
    config) echo "-ltre" ;;
    codec) echo "-lz -llz4 -lsnappy" ;;
    *) echo "" ;;
    esac
}

for h in "$src"/tests/fuzz/fuzz_*.c; do
    [ -f "$h" ] || continue
    name=$(basename "$h" .c)
    short=${name#fuzz_}
    bin="$work/$name"
    # shellcheck disable=SC2046
    if ! (cd "$src" && $CC -g -O1 -std=gnu11 -D_GNU_SOURCE \
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -Isrc $(mods "$short") "$h" $(libs "$short") -lm -o "$bin") >"$work/$name.build" 2>&1; then
        echo "FAIL: $name: does not build"
        sed 's/^/    /' "$work/$name.build" | tail -n 20
        failed=$((failed + 1))
        continue
    fi
    corpus="$work/corpus-$short"
    mkdir -p "$corpus"
    [ -d "$src/tests/fuzz/corpus/$short" ] && cp -r "$src/tests/fuzz/corpus/$short/." "$corpus/"
    (cd "$work" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
        timeout $((secs + 120)) "$bin" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "$corpus") >"$work/$name.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log" | tail -n1)
    if [ "$rc" -eq 0 ]; then
        echo "PASS: $name: ${runs:-?} inputs in ${secs} s, nothing found"
        passed=$((passed + 1))
    else
        echo "FAIL: $name: exit $rc (inputs and log kept in $work)"
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$work/$name.log" | head -n 10 | sed 's/^/    /'
        failed=$((failed + 1))
    fi
done
[ "$failed" -eq 0 ] && rm -rf "$work"
echo "suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
