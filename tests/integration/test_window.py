#!/usr/bin/python3
"""
test_window.py -- a standalone satellite's window of unacknowledged batches
is bounded: with no orchester to acknowledge, it stops reading its clients
instead of growing, and lets them go on once the orchester is there.

A satellite with the smallest window (-W 65536) starts before its
orchester.  A client sends 40 MB of lines: the satellite must stop reading
(the client's send stalls long before it is done, and the satellite's
memory stays small).  Then the orchester starts; the client's send
completes and every line reaches the sink.
"""
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, rss_kb, wait_until, check_build,  # noqa: E402
                     SinkTracker)

LINES = 1000000          # about 40 MB
WINDOW = 65536



def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    satport = free_port()
    inport = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    sconf = t.write("satellite.conf", """listen type linemode 127.0.0.1:%d proto tcp ;
orchester tcp://127.0.0.1:%d timeout 1000 ms ;
""" % (inport, satport))
    with t.check("the satellite starts without its orchester", fatal=True):
        sat = t.satellite("satellite", sconf, "-W", str(WINDOW)).start()
        t.wait_ready(sat, tcp_ports=(inport,))

    ts = int(time.time()) - 7200
    lines = [b"win.m%d %d %d" % (i % 1000, i, ts + i // 1000) for i in range(LINES)]
    data = b"".join(ln + b"\n" for ln in lines)
    progress = {"sent": 0, "done": False, "error": None}

    def client():
        s = socket.create_connection(("127.0.0.1", inport), timeout=10.0)
        s.settimeout(120.0)
        try:
            mv = memoryview(data)
            for off in range(0, len(mv), 1 << 16):
                s.sendall(mv[off:off + (1 << 16)])
                progress["sent"] = off + len(mv[off:off + (1 << 16)])
            progress["done"] = True
        except OSError as e:
            progress["error"] = str(e)
        finally:
            s.close()

    th = threading.Thread(target=client, daemon=True)
    th.start()

    with t.check("with no acknowledgements the satellite stops reading: the "
                 "client stalls and the satellite stays small"):
        # the client's progress stops: the kernel buffers fill and the
        # satellite no longer reads
        last = [-1, time.monotonic()]

        def stalled():
            now = time.monotonic()
            if progress["sent"] != last[0]:
                last[0], last[1] = progress["sent"], now
                return False
            return now - last[1] >= 2.0

        wait_until(stalled, 60.0, "the client's sends to stall")
        require(not progress["done"], "the client sent all %d bytes" % len(data))
        require(progress["sent"] < len(data) // 2,
                "the client got %d of %d bytes through" % (progress["sent"], len(data)))
        kb = rss_kb(sat.pid)
        require(kb < 100 * 1024, "satellite resident %d kB" % kb)

    with t.check("once the orchester is up, the client finishes and every line "
                 "arrives", fatal=True):
        oconf = """satellites bind tcp://127.0.0.1:%d ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (satport, control, sink.port)
        t.start_orchester("orchester", oconf, control=control)
        tr = SinkTracker(sink, lines)
        wait_until(lambda: progress["done"] or progress["error"], 120.0,
                   "the client to finish")
        require(progress["error"] is None, progress["error"] or "")
        wait_until(tr.complete, 120.0, "%d lines at the sink" % LINES)
        got = set(sink.snapshot())
        missing = [ln for ln in lines if ln not in got]
        require(not missing, "%d lines missing, first %r" % (len(missing), missing[:1]))


if __name__ == "__main__":
    Test().run(body)
