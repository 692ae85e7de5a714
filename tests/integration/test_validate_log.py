#!/usr/bin/python3
"""
test_validate_log.py -- `validate ... else log`: what a validate clause
drops is logged by the router thread's shell, at most once a second, with
the count of those left out; the router itself logs nothing.

orchester routes `match ^v\\. validate ^[0-9]+\\ [0-9]+$ else log send to
sink stop ;` then `match * send to sink ;`.  One connection sends BURST
lines whose value has a '.', and one good line.  Then, one at a time, a
probe line that fails too, until the log names a probe.

Checks: the good line arrives and no failing one does; every log line
names the rule's FILE:LINE and what it dropped; the log lines, each
counting itself plus the "N more since the last report", account for
exactly the failing lines sent; there are far fewer log lines than
failures.
"""
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build)  # noqa: E402

BURST = 200


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
    port = free_port()
    sink = t.sink()
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
cluster sink forward 127.0.0.1:%d ;
match ^v\\. validate ^[0-9]+\\ [0-9]+$ else log send to sink stop ;
match * send to sink ;
""" % (port, sink.port)
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", conf, tcp_ports=(port,))
    ts = int(time.time()) - 600
    pat = re.compile(r"router: (\S+):(\d+): validate failed, dropped: (\S+) "
                     r"(.*) \((\d+) more since the last report\)")

    def logged():
        return [m for m in (pat.search(ln) for ln in orch.stderr().splitlines()) if m]

    sent_bad = 0
    with t.check("the failing lines are dropped, the good one arrives"):
        with socket.create_connection(("127.0.0.1", port), timeout=10.0) as s:
            s.sendall(b"".join(b"v.bad.%d 1.5 %d\n" % (i, ts) for i in range(BURST))
                      + b"v.good 1 %d\n" % ts)
        sent_bad += BURST
        sink.wait_count(1, 20.0, "the good line at the sink")
        wait_until(lambda: logged(), 20.0, "a validate line in the log")
        got = sink.snapshot()
        require(got == [b"v.good 1 %d" % ts], "the sink got %r" % got[:5])

    with t.check("once a second at most, the log accounts for every failure"):
        probes = 0

        def probe_logged():
            nonlocal probes, sent_bad
            if any(m.group(3).startswith("v.probe.") for m in logged()):
                return True
            with socket.create_connection(("127.0.0.1", port), timeout=10.0) as s:
                s.sendall(b"v.probe.%d 2.5 %d\n" % (probes, ts))
            probes += 1
            sent_bad += 1
            return False
        wait_until(probe_logged, 20.0, "a probe line in the log", interval=0.2)
        lines = logged()
        for m in lines:
            require(m.group(1).endswith("orchester.conf") and m.group(2) == "3",
                    "the log names %s:%s, not the rule" % (m.group(1), m.group(2)))
            require(m.group(4).startswith(("1.5 ", "2.5 ")),
                    "the log shows the data %r" % m.group(4))
        accounted = sum(1 + int(m.group(5)) for m in lines)
        require(accounted == sent_bad, "the log accounts for %d failures of %d "
                "sent (%d log lines)" % (accounted, sent_bad, len(lines)))
        require(len(lines) < sent_bad / 4, "%d log lines for %d failures"
                % (len(lines), sent_bad))
        require(len(sink.snapshot()) == 1, "a failing line reached the sink")


if __name__ == "__main__":
    Test().run(body)
