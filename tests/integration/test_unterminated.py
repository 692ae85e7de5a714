#!/usr/bin/python3
"""
test_unterminated.py -- a last line without '\\n' is not a datapoint.

A client that dies while writing `good.half.line 1 1700000000` leaves
`good.half.line 1 17` behind when its connection closes.  Like carbon's line
receiver, orchester drops such an unterminated last line and counts it
(parseErrors.unterminated, and the listener's errors).  The same holds at
shutdown for a connection still open with part of a line.  A UDP datagram
ends its last line, so there a line without '\\n' still counts.
"""
import os
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port_pair, free_port, wait_until,  # noqa: E402
                     check_build, counter, ctl_status, SinkTracker,
                     STOP_TIMEOUT)


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port_pair()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
listen type linemode 127.0.0.1:%d proto udp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (port, port, control, sink.port)
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", conf, control=control,
                                 tcp_ports=(port,))

    ts = int(time.time()) - 600
    full = b"good.full.line 1 %d" % ts
    with t.check("a connection closed in mid-line: its whole lines arrive, the "
                 "cut one does not and is counted"):
        s = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        s.sendall(full + b"\n" + b"good.half.line 1 17")
        s.close()
        wait_until(SinkTracker(sink, [full]).complete, 30.0,
                   "the whole line at the sink")
        box = {}

        def counted():
            box["st"] = st = ctl_status(t.build, control)
            return counter(st, "parseErrors.unterminated") >= 1

        wait_until(counted, 30.0, lambda: "parseErrors.unterminated >= 1 "
                   "(counters %r)" % box.get("st", {}).get("counters"),
                   interval=0.2)
        st = box["st"]
        require(counter(st, "parseErrors.unterminated") == 1,
                "parseErrors.unterminated %d" % counter(st, "parseErrors.unterminated"))
        require(counter(st, "parseErrors") == 1,
                "parseErrors %d" % counter(st, "parseErrors"))
        kv = dict(x.split("=", 1) for x in st["listeners"][0]["extra"])
        require(kv.get("errors") == "1", "the tcp listener's errors=%s" % kv.get("errors"))

    with t.check("a connection that ends in white space after its last '\\n' "
                 "loses nothing and counts no error"):
        line = b"good.blank.tail 2 %d" % ts
        s = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        s.sendall(line + b"\n  \r")
        s.close()
        wait_until(SinkTracker(sink, [line]).complete, 30.0, "the line at the sink")
        # the sink's line arrives before the next stats snapshot: wait for
        # the counters to catch up with what was received, then compare
        wait_until(lambda: counter(ctl_status(t.build, control),
                                   "metricsReceived") >= 2, 30.0,
                   "metricsReceived >= 2", interval=0.2)
        st = ctl_status(t.build, control)
        require(counter(st, "parseErrors") == 1,
                "parseErrors %d" % counter(st, "parseErrors"))

    with t.check("a UDP datagram without a final '\\n' still ends its last line"):
        udp = b"good.udp.line 3 %d" % ts
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(udp, ("127.0.0.1", port))
        u.close()
        wait_until(SinkTracker(sink, [udp]).complete, 30.0, "the datagram's line")

    shut_full = b"good.shutdown.full 4 %d" % ts
    with t.check("at shutdown, the part of a line an open connection holds is "
                 "not forwarded"):
        s = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        t.on_cleanup(s.close)
        # one write: once its whole line is at the sink, the part was read
        s.sendall(shut_full + b"\n" + b"good.shutdown.half 1 17")
        wait_until(SinkTracker(sink, [shut_full]).complete, 30.0,
                   "the whole line at the sink")
        orch.signal(signal.SIGTERM)
        rc = orch.wait(STOP_TIMEOUT)
        require(rc == 0, "exit code %s" % rc)

    with t.check("no cut line ever reached the sink"):
        bad = [ln for ln in sink.snapshot() if b".half" in ln]
        require(not bad, "forwarded: %r" % bad)


if __name__ == "__main__":
    Test().run(body)
