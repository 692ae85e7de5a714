#!/usr/bin/python3
"""
test_reconnect.py -- a destination that goes away and comes back.

orchester forwards to a sink.  Lines sent while the sink is up arrive.  The
sink stops (listener and connections closed); orchester-ctl status shows the
destination down; lines sent now are queued (the status says so).  The sink
starts again on the same port; orchester reconnects by itself and every
queued line arrives, in order.  Done twice, so reconnecting is not a one-off.
The queued/sent/dropped counters of the destination agree with the sink.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, send_tcp, wait_until,  # noqa: E402
                     counter, check_build, wait_status, SinkTracker)

BATCH = 5000


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    dest_key = ("sink", "127.0.0.1:%d" % sink.port)
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (port, control, sink.port)
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", conf, control=control, tcp_ports=(port,))

    ts = int(time.time()) - 3600
    sent_total = [0]

    def send(tag, n):
        lines = [b"%s.m%d %d %d" % (tag, i % 100, i, ts + i) for i in range(n)]
        errs = send_tcp(port, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        sent_total[0] += n
        return lines

    def dest(st):
        d = st["destinations"].get(dest_key)
        if d is None:
            raise AssertionError("no destination %s %s in status: %r"
                                 % (dest_key[0], dest_key[1], st["destinations"]))
        return d

    with t.check("lines arrive while the sink is up; status shows it up", fatal=True):
        up_lines = send(b"up0", 1000)
        tr = SinkTracker(sink, up_lines)
        wait_until(tr.complete, 30.0, "1000 lines at the sink")
        require(lines_in(sink, b"up0.") == up_lines, "not in order")
        wait_status(t.build, control, 10.0, "destination up with sent >= 1000",
                    lambda st: dest(st).get("state") == "up" and dest(st).get("sent", 0) >= 1000)

    for cycle in (1, 2):
        tag = b"down%d" % cycle
        with t.check("cycle %d: sink stopped, status shows the destination down" % cycle,
                     fatal=True):
            sink.stop()
            wait_status(t.build, control, 30.0, "destination state=down",
                        lambda st: dest(st).get("state") == "down")

        with t.check("cycle %d: %d lines sent while down are queued" % (cycle, BATCH)):
            down_lines = send(tag, BATCH)
            st = wait_status(t.build, control, 30.0, "queued >= %d" % BATCH,
                             lambda st: dest(st).get("queued", 0) >= BATCH)
            d = dest(st)
            require(d.get("queued") == BATCH, "queued=%s, expected %d" % (d.get("queued"), BATCH))
            require(d.get("state") == "down", "state=%s while the sink is stopped" % d.get("state"))
            require(counter(st, "metricsQueued") >= BATCH,
                    "counter metricsQueued %d < %d" % (counter(st, "metricsQueued"), BATCH))
            require(orch.alive(), "orchester exited with %s" % orch.returncode)

        with t.check("cycle %d: sink back on the same port, every queued line arrives in order"
                     % cycle):
            sink.start()
            tr = SinkTracker(sink, down_lines)
            wait_until(tr.complete, 60.0, lambda: "%d queued lines at the restarted sink "
                       "(%d missing)" % (BATCH, len(tr.missing)))
            got = dedup(lines_in(sink, tag + b"."))
            require(got == down_lines, "not in order (first arrivals)")

        with t.check("cycle %d: status shows up, queue empty, sent counts every line" % cycle):
            st = wait_status(t.build, control, 10.0, "state=up queued=0 sent>=%d" % sent_total[0],
                             lambda st: dest(st).get("state") == "up"
                             and dest(st).get("queued") == 0
                             and dest(st).get("sent", 0) >= sent_total[0])
            d = dest(st)
            require(d.get("dropped") == 0, "dropped=%s" % d.get("dropped"))
            require(d.get("sent") <= sink.count(),
                    "sent=%s but the sink has only %d lines" % (d.get("sent"), sink.count()))
            require(counter(st, "metricsReceived") == sent_total[0],
                    "metricsReceived %d, sent %d" % (counter(st, "metricsReceived"), sent_total[0]))
            require(counter(st, "metricsDropped") == 0,
                    "metricsDropped %d" % counter(st, "metricsDropped"))

    with t.check("lines sent after the outages arrive"):
        after = send(b"after", 1000)
        tr = SinkTracker(sink, after)
        wait_until(tr.complete, 30.0, "1000 lines")


def lines_in(sink, prefix):
    return [ln for ln in sink.snapshot() if ln.startswith(prefix)]


def dedup(lines):
    """First arrivals only (delivery may repeat a line after a reconnect)."""
    seen = set()
    out = []
    for ln in lines:
        if ln not in seen:
            seen.add(ln)
            out.append(ln)
    return out


if __name__ == "__main__":
    Test().run(body)
