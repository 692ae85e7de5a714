#!/bin/sh
# check-format.sh -- the C sources follow the committed .clang-format: one
# code style, checked rather than hoped for.  Prints
# "suite: 1 passed, 0 failed", or the files clang-format would change (and
# how to fix them) and "suite: 0 passed, 1 failed".  Without clang-format
# (Debian package clang-format) it fails too: the check must not pass by
# not running.
set -u
cd "$(dirname "$0")/.." || exit 1
CF=${CLANG_FORMAT:-clang-format}
if ! command -v "$CF" >/dev/null 2>&1; then
    echo "format: $CF not found (apt-get install clang-format)"
    echo "suite: 0 passed, 1 failed"
    exit 1
fi
files=$(ls src/*.c src/*.h relay/*.c tests/*.c tests/tools/*.c \
    tests/fuzz/*.c 2>/dev/null)
bad=""
for f in $files; do
    "$CF" --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -z "$bad" ]; then
    echo "format: $(echo "$files" | wc -w) files follow .clang-format"
    echo "suite: 1 passed, 0 failed"
    exit 0
fi
echo "format: these files differ from .clang-format (fix: $CF -i FILE):"
for f in $bad; do echo "    $f"; done
echo "suite: 0 passed, 1 failed"
exit 1
