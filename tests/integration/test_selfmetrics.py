#!/usr/bin/python3
"""
test_selfmetrics.py -- orchester routes its own counters like any metric.

orchester -S 1 -H testhost with `match * send to sink ;` gets 100 lines.
The sink must then receive carbon.relays.testhost.metricsReceived with a
value >= 100, the other relay counters, and
carbon.relays.testhost.destinations.127_0_0_1_PORT.{sent,queued,dropped};
with -S 1 they come every second, with current timestamps.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, send_tcp, wait_until,  # noqa: E402
                     check_build, SinkTracker)

PREFIX = b"carbon.relays.testhost."


def parse(line):
    """(name, value, timestamp) of a line, or None."""
    f = line.split(b" ")
    if len(f) != 3:
        return None
    try:
        return f[0].decode(), float(f[1]), float(f[2])
    except ValueError:
        return None


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (port, control, sink.port)
    with t.check("orchester -S 1 -H testhost starts", fatal=True):
        t.start_orchester("orchester", conf, opts=("-S", "1", "-H", "testhost"),
                          control=control, tcp_ports=(port,))

    ts = int(time.time())
    lines = [b"app.m%d %d %d" % (i, i, ts) for i in range(100)]
    with t.check("100 lines arrive"):
        errs = send_tcp(port, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        wait_until(SinkTracker(sink, lines).complete, 30.0, "100 lines at the sink")

    dest = "destinations.127_0_0_1_%d." % sink.port

    def selfm():
        out = {}
        for ln in sink.snapshot():
            if ln.startswith(PREFIX):
                p = parse(ln)
                if p:
                    out.setdefault(p[0][len(PREFIX):], []).append((p[1], p[2]))
        return out

    with t.check("per-listener self metrics: listeners.tcp_127_0_0_1_PORT.received "
                 ">= 100 and .parseErrors"):
        key = "listeners.tcp_127_0_0_1_%d." % port
        wait_until(lambda: any(v >= 100 for v, _ in selfm().get(key + "received", [])),
                   30.0, key + "received >= 100")
        require(key + "parseErrors" in selfm(), "no %sparseErrors" % key)

    with t.check("carbon.relays.testhost.metricsReceived >= 100 arrives"):
        wait_until(lambda: any(v >= 100 for v, _ in selfm().get("metricsReceived", [])),
                   30.0, "carbon.relays.testhost.metricsReceived >= 100")

    with t.check("metricsSent, metricsDropped, metricsQueued and parseErrors arrive"):
        names = ("metricsSent", "metricsDropped", "metricsQueued", "parseErrors")
        wait_until(lambda: all(n in selfm() for n in names), 15.0,
                   "carbon.relays.testhost.{%s}" % ",".join(names))
        # the counters of a report may be up to an interval older than the
        # sink's view: wait for one that counts the 100 lines as sent
        wait_until(lambda: any(v >= 100 for v, _ in selfm()["metricsSent"]), 15.0,
                   lambda: "carbon.relays.testhost.metricsSent >= 100 (last values %r)"
                   % selfm()["metricsSent"][-5:])
        m = selfm()
        require(all(v == 0 for v, _ in m["metricsDropped"]),
                "metricsDropped values %r" % m["metricsDropped"][-5:])
        require(all(v == 0 for v, _ in m["parseErrors"]),
                "parseErrors values %r" % m["parseErrors"][-5:])

    with t.check("destinations.127_0_0_1_%d.{sent,queued,dropped} arrive" % sink.port):
        wait_until(lambda: all(dest + k in selfm() for k in ("sent", "queued", "dropped")),
                   15.0, "carbon.relays.testhost.%s{sent,queued,dropped}" % dest)
        wait_until(lambda: any(v >= 100 for v, _ in selfm()[dest + "sent"]), 15.0,
                   "carbon.relays.testhost.%ssent >= 100" % dest)
        m = selfm()
        require(all(v == 0 for v, _ in m[dest + "dropped"]),
                "%sdropped values %r" % (dest, m[dest + "dropped"][-5:]))

    with t.check("-S 1: reports come every second with current timestamps"):
        have = len(selfm().get("metricsReceived", []))
        wait_until(lambda: len(selfm().get("metricsReceived", [])) >= have + 3, 10.0,
                   "3 more metricsReceived reports within 10 s")
        now = time.time()
        rep = selfm()["metricsReceived"]
        stamps = [s for _, s in rep]
        require(all(abs(now - s) < 120 for s in stamps[-3:]),
                "timestamps %r, now %d" % (stamps[-3:], now))
        require(stamps == sorted(stamps), "timestamps not increasing: %r" % stamps)
        vals = [v for v, _ in rep]
        require(vals == sorted(vals), "cumulative metricsReceived decreased: %r" % vals)

    with t.check("no self metric outside carbon.relays.testhost."):
        strays = [ln for ln in sink.snapshot()
                  if not ln.startswith(PREFIX) and not ln.startswith(b"app.")]
        require(not strays, "%r" % strays[:5])


if __name__ == "__main__":
    Test().run(body)
