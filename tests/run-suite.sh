#!/bin/sh
# run-suite.sh BUILD_DIR -- run every test against one build of orchester.
#
# Unit tests: the cmocka programs BUILD_DIR/tests/test_*; each test case
# counts.  Integration tests: tests/integration/test_*.py run with Debian's
# python3 against BUILD_DIR's daemons; each "PASS:"/"FAIL:" line counts, and
# a script that fails without saying why counts as one failure.  Ends with
# "suite: N passed, N failed"; exits 1 on any failure.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: run-suite.sh BUILD_DIR}
build=$(cd "$build" && pwd)
passed=0
failed=0
log=$(mktemp)

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

for t in "$src"/tests/integration/test_*.py; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .py)
    start=$(date +%s)
    (cd "$src" && timeout 900 /usr/bin/python3 "$t" "$build") >"$log" 2>&1
    rc=$?
    p=$(grep -c '^PASS: ' "$log")
    f=$(grep -c '^FAIL: ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "integration $name: $p passed, $f failed ($(( $(date +%s) - start )) s)"
    if [ "$f" -ne 0 ]; then sed 's/^/    /' "$log" | tail -n 80; else grep '^PASS: ' "$log" | sed 's/^/    /'; fi
    passed=$((passed + p))
    failed=$((failed + f))
done
rm -f "$log"
echo "suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
