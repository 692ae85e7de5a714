#!/bin/sh
# check-tree.sh -- after the build and the suite, the source tree must be as
# it was checked out: a build that writes tracked files (or leaves untracked,
# unignored ones) dirties every checkout it runs in.  Prints
# "suite: 1 passed, 0 failed" or the offending paths and
# "suite: 0 passed, 1 failed".  Outside a git checkout (a release tarball)
# there is nothing to compare with, and it prints nothing.
set -u
cd "$(dirname "$0")/.." || exit 1
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || exit 0
dirty=$(git status --porcelain 2>/dev/null)
if [ -z "$dirty" ]; then
    echo "tree: clean after build and suite"
    echo "suite: 1 passed, 0 failed"
    exit 0
fi
echo "tree: the build or the suite left the source tree changed:"
echo "$dirty" | sed 's/^/    /'
echo "suite: 0 passed, 1 failed"
exit 1
