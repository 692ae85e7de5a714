#!/usr/bin/python3
"""
test_protocol.py -- the satellites endpoint survives what is not a
satellite.

An orchester binds `satellites bind tcp://...`.  Clients that are not
satellites connect to it: one sends random bytes, one sends a plausible
greeting and then garbage, one connects and stalls, one sends carbon
plaintext by mistake.  The orchester stays up, and a real satellite
connected alongside them delivers every line it is given.
"""
import os
import random
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, send_tcp, wait_until,  # noqa: E402
                     check_build, SinkTracker)


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    satport = free_port()
    inport = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", """satellites bind tcp://127.0.0.1:%d ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (satport, control, sink.port), control=control, tcp_ports=(satport,))

    rnd = random.Random(7)
    stray = []
    with t.check("clients that are not satellites are survived"):
        for payload in (bytes(rnd.getrandbits(8) for _ in range(65536)),
                        b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00NULL" + b"\x00" * 48
                        + bytes(rnd.getrandbits(8) for _ in range(4096)),
                        b"not.a.satellite 1 1700000000\n" * 1000):
            s = socket.create_connection(("127.0.0.1", satport), timeout=10.0)
            try:
                s.sendall(payload)
            except OSError:
                pass  # the orchester may drop the connection mid-send
            s.close()
        stall = socket.create_connection(("127.0.0.1", satport), timeout=10.0)
        stall.sendall(b"\xff\x00")
        stray.append(stall)
        require(orch.alive(), "orchester exited")
        t.status(control)  # still answers

    with t.check("a real satellite alongside them delivers every line"):
        sconf = t.write("satellite.conf", """listen type linemode 127.0.0.1:%d proto tcp ;
orchester tcp://127.0.0.1:%d ;
""" % (inport, satport))
        sat = t.satellite("satellite", sconf).start()
        t.wait_ready(sat, tcp_ports=(inport,))
        ts = int(time.time()) - 600
        lines = [b"proto.m%d %d %d" % (i % 100, i, ts + i) for i in range(20000)]
        errs = send_tcp(inport, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        tr = SinkTracker(sink, lines)
        wait_until(tr.complete, 60.0, "20000 lines at the sink")
        got = [ln for ln in sink.snapshot() if ln.startswith(b"proto.")]
        require(b"not.a.satellite" not in b"".join(sink.snapshot()),
                "plaintext sent to the satellites endpoint was routed")
        require(set(got) == set(lines), "lines differ")

    with t.check("status counts the one satellite that sent batches "
                 "(satellites.connected)"):
        st = t.status(control)
        require(st["counters"].get("satellites.connected") == 1,
                "satellites.connected = %r" % st["counters"].get("satellites.connected"))
    for s in stray:
        s.close()


if __name__ == "__main__":
    Test().run(body)
