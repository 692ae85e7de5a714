#!/usr/bin/python3
"""
test_satellite.py -- a standalone satellite keeps every line through an
orchester restart.

A `satellite` (linemode TCP listener, `orchester tcp://127.0.0.1:SATPORT ;`)
feeds an `orchester` (`satellites bind tcp://127.0.0.1:SATPORT ;`, forward to
a sink).  Clients send 300,000 lines at a steady pace; in mid-stream the
orchester gets SIGTERM, exits, and starts again with the same config.
Every line the clients sent reaches the sink: delivery is at-least-once,
so duplicates are allowed and the check is on the set of lines.
"""
import os
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     SinkTracker, counter, STOP_TIMEOUT)

NCONN = 3
PER_CONN = 100000
RATE = 40000.0      # lines per second per connection: the stream lasts ~2.5 s
CHUNK = 1000        # lines per write


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    satport = free_port()
    inport = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    oconf = """satellites bind tcp://127.0.0.1:%d ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (satport, control, sink.port)
    sconf = """listen type linemode 127.0.0.1:%d proto tcp ;
orchester tcp://127.0.0.1:%d ;
""" % (inport, satport)

    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", oconf, opts=("-D", "5"), control=control)
    with t.check("satellite starts", fatal=True):
        sconf_path = t.write("satellite.conf", sconf)
        sat = t.satellite("satellite", sconf_path).start()
        t.wait_ready(sat, tcp_ports=(inport,))

    ts = int(time.time()) - 7200
    conns = []
    for c in range(NCONN):
        conns.append([b"sat.c%d.m%d %d %d" % (c, i % 500, i, ts + i) for i in range(PER_CONN)])
    expected = [ln for lines in conns for ln in lines]
    tr = SinkTracker(sink, expected)

    errors = []
    progress = [0] * NCONN

    def client(c):
        try:
            s = socket.create_connection(("127.0.0.1", inport), timeout=10)
            s.settimeout(120.0)
            t0 = time.monotonic()
            lines = conns[c]
            for off in range(0, len(lines), CHUNK):
                s.sendall(b"".join(ln + b"\n" for ln in lines[off:off + CHUNK]))
                progress[c] = off + CHUNK
                ahead = (off + CHUNK) / RATE - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the client, not waiting for a condition
            s.close()
        except OSError as e:
            errors.append("client %d after %d lines: %s" % (c, progress[c], e))

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(NCONN)]
    for th in threads:
        th.start()

    with t.check("lines flow through satellite and orchester to the sink", fatal=True):
        wait_until(lambda: tr.update().total >= 1000, 60.0,
                   lambda: "1000 lines at the sink (have %d)" % tr.total)
        # SIGTERM once the clients are a third of the way through
        wait_until(lambda: sum(progress) >= NCONN * PER_CONN // 3 or errors, 60.0,
                   lambda: "clients to send %d lines (sent %d)"
                   % (NCONN * PER_CONN // 3, sum(progress)))
        require(not errors, "; ".join(errors))

    with t.check("orchester exits with 0 on SIGTERM in mid-stream", fatal=True):
        sent_at_term = sum(progress)
        sink_at_term = tr.update().total
        orch.signal(signal.SIGTERM)
        rc = orch.wait(STOP_TIMEOUT)
        require(rc is not None, "still running %.0f s after SIGTERM" % STOP_TIMEOUT)
        require(rc == 0, "exit code %s" % rc)
        require(sent_at_term < NCONN * PER_CONN,
                "clients were done before SIGTERM (test too slow to be mid-stream)")
        sys.stderr.write("# SIGTERM when the clients had sent %d lines and the sink had %d;"
                         " at exit the clients had sent %d\n"
                         % (sent_at_term, sink_at_term, sum(progress)))

    with t.check("orchester starts again with the same config", fatal=True):
        orch.start()
        t.wait_ready(orch, control=control)
        sys.stderr.write("# restarted when the clients had sent %d lines\n" % sum(progress))

    with t.check("clients finish sending %d lines" % (NCONN * PER_CONN)):
        for th in threads:
            th.join(180.0)
        require(not any(th.is_alive() for th in threads), "clients still blocked after 180 s")
        require(not errors, "; ".join(errors))

    with t.check("every line the clients sent arrives at the sink (at-least-once)"):
        try:
            wait_until(tr.complete, 120.0, "all %d lines" % len(expected), interval=0.2)
        except Exception:
            pass
        tr.update()
        require(not tr.missing, "%d of %d lines missing, e.g. %r" % (
            len(tr.missing), len(expected), sorted(tr.missing)[:3]))
        extra = set(sink.snapshot()) - set(expected)
        require(not extra, "%d lines that were never sent, e.g. %r" % (len(extra), sorted(extra)[:3]))
        sys.stderr.write("# %d lines at the sink for %d sent (%d repeats)\n"
                         % (tr.total, len(expected), tr.total - len(expected)))

    with t.check("satellite stays up; restarted orchester took batches"):
        require(sat.alive(), "satellite exited with %s" % sat.returncode)
        st = t.status(control)
        require(counter(st, "satellites.batches") > 0,
                "counter satellites.batches %d" % counter(st, "satellites.batches"))


if __name__ == "__main__":
    Test().run(body)
