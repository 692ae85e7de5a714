#!/usr/bin/python3
# suite: alone
"""
test_regex_hostile.py -- hostile metric names cost the router time linear in
their length: they do not stall the metrics behind them.

    /usr/bin/python3 tests/integration/test_regex_hostile.py BUILD_DIR

A backtracking matcher (glibc's regexec) spends most of a second on one
name of 5000 'a's and a 'b' against (a+)+$, and the time grows with the
square of the name; the router thread is busy for all of it, and every
metric queued behind waits.  orchester matches with TRE, in one pass.

orchester runs rules a backtracking matcher is slow on -- (a+)+$, (a|aa)+$,
([a-z]+)+\\.$ in a match, ^(a|aa)+z$ in a rewrite -- in front of a
catch-all.
While one connection streams normal metrics block by block (the next block
goes when the last one arrived), another sends 50 hostile names of 40 to
5000 'a's then a 'b', and right behind them, on the same connection, a block
of normal metrics.  Checks:
  - a config with a back reference, (a*)*\\1x, is refused at load with
    "FILE:LINE: ... back reference";
  - the normal lines sent after the hostile ones arrive within LATENCY s of
    being sent, and so does each block of the stream;
  - every normal line arrives, once;
  - the hostile names are routed as the rules say (those that end in 'a' or
    'z' are caught by the hostile rules, the others fall through).
Latencies are measured from the send to the moment the sink holds the
lines, by bounded polling; nothing sleeps to time an event.
"""
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, run, wait_until,  # noqa: E402
                     check_build, sanitizer_report)

LATENCY = 2.0        # s: the bound on a normal line's trip through orchester
WAIT = 20.0          # s: the bound on any one wait
HOSTILE = 50         # hostile names that end in 'b'
CAUGHT = 10          # hostile names the hostile rules take (end in a or z)
BLOCKS = 20          # blocks of the normal stream while the hostile go by
PER_BLOCK = 20       # lines per block

RULES = r"""rewrite ^(a|aa)+z$ into caught.z ;
match (a+)+$ (a|aa)+$ ([a-z]+)+\.$ send to caught stop ;
match ^caught\. send to caught stop ;
match ^a send to other stop ;
match * send to good ;
"""


class Seen:
    """The lines a sink received, as a set, brought up to date on demand."""

    def __init__(self, sink):
        self.sink = sink
        self.pos = 0
        self.lines = set()
        self.dups = 0

    def update(self):
        with self.sink.lock:
            new = self.sink.lines[self.pos:]
        self.pos += len(new)
        for ln in new:
            if ln in self.lines:
                self.dups += 1
            self.lines.add(ln)
        return self

    def has_all(self, lines):
        self.update()
        return all(ln in self.lines for ln in lines)


def normal_block(tag, i, ts):
    return [b"normal.%s.b%d.m%d %d %d" % (tag.encode(), i, j, j, ts)
            for j in range(PER_BLOCK)]


def trip(sock, seen, lines, what):
    """Send lines on sock; return the seconds until the sink held them all
    (bounded by WAIT)."""
    t0 = time.monotonic()
    sock.sendall(b"".join(ln + b"\n" for ln in lines))
    wait_until(lambda: seen.has_all(lines), WAIT, what, interval=0.01)
    return time.monotonic() - t0


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port()
    good, other, caught = t.sink(), t.sink(), t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    clusters = """cluster good forward 127.0.0.1:%d ;
cluster other forward 127.0.0.1:%d ;
cluster caught forward 127.0.0.1:%d ;
""" % (good.port, other.port, caught.port)

    with t.check("a back reference, (a*)*\\1x, is refused at config load "
                 "with FILE:LINE: and the reason"):
        conf = t.write("backref.conf", clusters + "\n" + RULES.replace(
            "match ^a send", "match (a*)*\\1x send"))
        rc, out, err, _ = run([os.path.join(t.build, "relay", "orchester"),
                               "-t", "-t", "-f", conf], 30.0)
        line = 1 + clusters.count("\n") + 1 + 3
        require(rc not in (0, None), "exit %s, output %r" % (rc, (out + err)[-300:]))
        require("%s:%d:" % (conf, line) in err and "back reference" in err,
                "no '%s:%d: ... back reference' in %r" % (conf, line, err[-300:]))
        require(not sanitizer_report(err), sanitizer_report(err))

    conf_text = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
%s%s""" % (port, control, clusters, RULES)
    with t.check("orchester starts with the hostile rules", fatal=True):
        t.start_orchester("orchester", conf_text, control=control,
                          tcp_ports=(port,))

    ts = int(time.time()) - 60
    seen = Seen(good)
    sent_normal = []
    flow = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    hostile = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    t.on_cleanup(flow.close)
    t.on_cleanup(hostile.close)

    base = []
    with t.check("normal metrics flow (5 blocks, each within %.1f s)" % LATENCY,
                 fatal=True):
        for i in range(5):
            blk = normal_block("pre", i, ts)
            sent_normal += blk
            base.append(trip(flow, seen, blk, "block %d of the warm-up" % i))
        require(max(base) < LATENCY, "a block took %.2f s" % max(base))

    # 50 names of 40 to 5000 'a's then 'b'; 10 the hostile rules take
    lengths = [40 + (5000 - 40) * k // (HOSTILE - 1) for k in range(HOSTILE)]
    bad = [b"a" * n + b"b %d %d" % (k, ts) for k, n in enumerate(lengths)]
    good_ends = [b"a" * (100 * (k + 1)) + (b"a" if k % 2 else b"z")
                 + b" %d %d" % (k, ts) for k in range(CAUGHT)]
    after = normal_block("after", 0, ts)
    sent_normal += after

    box = {}
    with t.check("hostile names go out on their connection, %d normal lines "
                 "right behind them" % len(after), fatal=True):
        payload = b"".join(ln + b"\n" for ln in bad + good_ends + after)
        box["t0"] = time.monotonic()
        hostile.sendall(payload)

    lat = []
    with t.check("while the hostile names are routed, the normal stream keeps "
                 "flowing: %d blocks, each within %.1f s" % (BLOCKS, LATENCY)):
        for i in range(BLOCKS):
            blk = normal_block("flow", i, ts)
            sent_normal += blk
            lat.append(trip(flow, seen, blk, "block %d of the stream" % i))
        require(max(lat) < LATENCY, "slowest block %.2f s (blocks: %s)"
                % (max(lat), " ".join("%.2f" % x for x in lat)))

    with t.check("the normal lines sent right after the hostile names arrive "
                 "within %.1f s" % LATENCY):
        wait_until(lambda: seen.has_all(after), WAIT,
                   "the normal lines behind the hostile names", interval=0.01)
        took = time.monotonic() - box["t0"]
        sys.stderr.write("# warm-up block latency max %.3f s; stream block "
                         "max %.3f s; lines behind the hostile names %.3f s\n"
                         % (max(base), max(lat) if lat else -1, took))
        require(took < LATENCY, "they took %.2f s" % took)

    with t.check("every normal line arrives, once"):
        wait_until(lambda: seen.has_all(sent_normal), WAIT,
                   "%d normal lines" % len(sent_normal), interval=0.05)
        seen.update()
        require(seen.dups == 0, "%d duplicates" % seen.dups)
        require(len(seen.lines) == len(sent_normal),
                "%d distinct lines at the good sink, %d sent"
                % (len(seen.lines), len(sent_normal)))

    with t.check("the hostile names are routed as the rules say"):
        want_other = set(bad)
        wait_until(lambda: other.count() >= len(bad) and
                   caught.count() >= len(good_ends), WAIT,
                   lambda: "%d hostile names at 'other' (have %d), %d at "
                   "'caught' (have %d)" % (len(bad), other.count(),
                                           len(good_ends), caught.count()))
        got = other.snapshot()
        require(set(got) == want_other and len(got) == len(bad),
                "'other' got %d lines, %d of them expected"
                % (len(got), len(set(got) & want_other)))
        want_caught = set()
        for ln in good_ends:
            name, rest = ln.split(b" ", 1)
            want_caught.add(ln if name.endswith(b"a") else b"caught.z " + rest)
        got = caught.snapshot()
        require(set(got) == want_caught and len(got) == len(good_ends),
                "'caught' got %r..., expected %r..." % (
                    sorted(x[-30:] for x in got)[:3],
                    sorted(x[-30:] for x in want_caught)[:3]))


if __name__ == "__main__":
    Test().run(body)
