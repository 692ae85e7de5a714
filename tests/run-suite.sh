#!/bin/bash
# run-suite.sh BUILD_DIR -- run every test against one build of orchester.
#
# Unit tests: the cmocka programs BUILD_DIR/tests/test_*; each test case
# counts.  Integration tests: tests/integration/test_*.py run with Debian's
# python3 against BUILD_DIR's daemons; each "PASS:"/"FAIL:" line counts, and
# a script that fails without saying why counts as one failure.  Ends with
# "suite: N passed, N failed"; exits 1 on any failure.
#
# The integration tests run SUITE_JOBS at a time (default: 2); each uses
# free ports and a directory of its own.  A test whose file has the line
# "# suite: alone" (network namespaces, fixed addresses, or timings that a
# busy machine would distort) runs after the others, by itself.  Results are
# printed in file order either way.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: run-suite.sh BUILD_DIR}
build=$(cd "$build" && pwd)
jobs=${SUITE_JOBS:-2}
passed=0
failed=0
work=$(mktemp -d /tmp/orchester-suite.XXXXXX)
log=$work/unit.log

for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    (cd "$src" && timeout 300 "$t") >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
    p=${p:-0}
    f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "unit $name: $p passed, $f failed"
    [ "$f" -eq 0 ] || sed 's/^/    /' "$log"
    passed=$((passed + p))
    failed=$((failed + f))
done

# One integration test, its output and status into $work/NAME.{log,rc,secs}.
run_one() {
    local t=$1 name start rc
    name=$(basename "$t" .py)
    start=$(date +%s)
    (cd "$src" && timeout 900 /usr/bin/python3 "$t" "$build") \
        >"$work/$name.log" 2>&1
    rc=$?
    echo $(($(date +%s) - start)) >"$work/$name.secs"
    echo "$rc" >"$work/$name.rc"
}

tests=()
alone=()
for t in "$src"/tests/integration/test_*.py; do
    [ -f "$t" ] || continue
    if grep -q '^# suite: alone$' "$t"; then alone+=("$t"); else tests+=("$t"); fi
done
running=0
for t in "${tests[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait
for t in "${alone[@]}"; do
    run_one "$t"
done

for t in "$src"/tests/integration/test_*.py; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .py)
    l=$work/$name.log
    rc=$(cat "$work/$name.rc" 2>/dev/null || echo 1)
    p=$(grep -c '^PASS: ' "$l")
    f=$(grep -c '^FAIL: ' "$l")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "integration $name: $p passed, $f failed ($(cat "$work/$name.secs" 2>/dev/null || echo ?) s)"
    if [ "$f" -ne 0 ]; then sed 's/^/    /' "$l" | tail -n 80; else grep '^PASS: ' "$l" | sed 's/^/    /'; fi
    passed=$((passed + p))
    failed=$((failed + f))
done
rm -rf "$work"
echo "suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
