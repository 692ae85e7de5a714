#!/usr/bin/python3
# suite: alone
"""
test_slowrouter.py -- the embedded satellite never resends: a slow router
paces it by credit, and every line arrives exactly once.

orchester runs with 10,000 unanchored rules that do not match
(`match foo<i>[0-9]*bar$ send to sink ;`, which no prefix index can skip)
before the one that does, so the router takes far longer than the
satellite's 3 s acknowledgement timeout to route what one client sends.
The test first times the router on 500 lines, then sends enough distinct
lines for about 8 s of routing (at least 2,500), so it outlasts the timeout
on a fast machine and on a sanitizer build alike.  Every line must reach the
sink once, and satellites.resent must stay 0.  The test reports the lines
per second it measured.
"""
import collections
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     counter, ctl_status, SinkTracker, GiveUp)

RULES = 10000
CALIBRATE = 500     # lines that time the router before the real run
TARGET_S = 8.0      # seconds of routing the real run aims at
MIN_LINES = 2500
MAX_LINES = 400000


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    rules = "".join("match foo%d[0-9]*bar$ send to sink ;\n" % i
                    for i in range(RULES))
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
%smatch ^slow\\. send to sink stop ;
""" % (port, control, sink.port, rules)
    with t.check("orchester starts with %d unanchored rules" % RULES, fatal=True):
        orch = t.start_orchester("orchester", conf, control=control,
                                 tcp_ports=(port,), timeout=120.0)

    ts = int(time.time()) - 3600
    with t.check("%d lines time the router" % CALIBRATE, fatal=True):
        cal = [b"slow.cal%d %d %d" % (i, i, ts) for i in range(CALIBRATE)]
        ctr = SinkTracker(sink, cal)
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        s.sendall(b"".join(ln + b"\n" for ln in cal))
        s.close()
        wait_until(ctr.complete, 300.0, lambda: "%d calibration lines at the "
                   "sink" % CALIBRATE, interval=0.05)
        rate = CALIBRATE / max(time.monotonic() - t0, 1e-3)
        nlines = int(min(MAX_LINES, max(MIN_LINES, rate * TARGET_S)))
        sys.stderr.write("# the router takes %.0f lines/s: sending %d lines\n"
                         % (rate, nlines))
    lines = [b"slow.m%d %d %d" % (i, i, ts) for i in range(nlines)]
    tr = SinkTracker(sink, lines)
    with t.check("%d distinct lines through the embedded listener all arrive"
                 % nlines, fatal=True):
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        s.settimeout(300.0)
        s.sendall(b"".join(ln + b"\n" for ln in lines))
        s.close()
        wait_until(tr.complete, 600.0, lambda: "%d lines at the sink (have %d of "
                   "them)" % (nlines, nlines - len(tr.missing)), interval=0.2)
        took = time.monotonic() - t0
        sys.stderr.write("# %d lines through %d rules in %.1f s: %.0f lines/s\n"
                         % (nlines, RULES, took, nlines / took))
        require(took > 3.0, "the router took only %.1f s: the test did not "
                "outlast the 3 s acknowledgement timeout" % took)

    def no_dups():
        got = collections.Counter(ln for ln in sink.snapshot()
                                  if not ln.startswith(b"slow.cal"))
        dups = {ln: n for ln, n in got.items() if n > 1}
        require(not dups, "%d lines arrived more than once (%d lines at the "
                "sink for %d sent), e.g. %r" % (len(dups), sum(got.values()),
                                                nlines, sorted(dups.items())[:2]))
        require(sum(got.values()) == nlines, "%d lines at the sink for %d sent"
                % (sum(got.values()), nlines))

    with t.check("when the last line arrived, each had arrived exactly once"):
        no_dups()

    with t.check("once the queues are empty: still once each, nothing resent"):
        # wait until everything the router took has been written out, so a
        # resent batch would be at the sink by now
        box = {}

        def settled():
            # a resent batch shows at the sink first: fail at once then
            got = collections.Counter(sink.snapshot())
            if len(got) < sum(got.values()):
                raise GiveUp("%d lines at the sink for %d distinct ones sent"
                             % (sum(got.values()), nlines + CALIBRATE))
            st = box["st"] = ctl_status(t.build, control)
            return (counter(st, "metricsQueued") == 0 and
                    counter(st, "metricsSent") == sink.count())
        wait_until(settled, 120.0, lambda: "the queues to empty (counters %r)"
                   % box.get("st", {}).get("counters"), interval=0.2)
        st = box["st"]
        no_dups()
        require(counter(st, "satellites.resent") == 0,
                "satellites.resent %d" % counter(st, "satellites.resent"))
        require(counter(st, "metricsReceived") == nlines + CALIBRATE,
                "metricsReceived %d for %d sent"
                % (counter(st, "metricsReceived"), nlines + CALIBRATE))
        require(orch.alive(), "orchester exited")


if __name__ == "__main__":
    Test().run(body)
