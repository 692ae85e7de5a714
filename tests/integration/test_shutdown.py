#!/usr/bin/python3
"""
test_shutdown.py -- SIGTERM drains, within the drain time.

  1. The destination is down and has queued lines; orchester runs with
     -D 1.  SIGTERM: it exits with code 0 within the bound (the drain time
     plus slack), not waiting for a destination that will not come.
  2. The destination is live but slow: a sink that has stopped reading, so
     lines sit in orchester's queue (the status says so).  SIGTERM, and the
     sink reads again: orchester delivers everything queued, then exits 0.
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, send_tcp, wait_until,  # noqa: E402
                     check_build, wait_status, SinkTracker, first_difference)

DOWN_BOUND = 10.0   # -D 1 plus the time to start and stop threads (sanitizers included)
LIVE_LINES = 300000


def conf_for(port, control, sinkport):
    return """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (port, control, sinkport)


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    ts = int(time.time()) - 600

    # --- 1: destination down, short drain time -----------------------------------
    port = free_port()
    dead = t.reserve_port()  # nothing listens here
    control = "tcp://127.0.0.1:%d" % free_port()
    key = ("sink", "127.0.0.1:%d" % dead)
    with t.check("orchester -D 1 starts with its destination down", fatal=True):
        orch = t.start_orchester("orchester-down", conf_for(port, control, dead),
                                 opts=("-D", "1"), control=control, tcp_ports=(port,))
    with t.check("lines for the down destination are queued"):
        lines = [b"queued.m%d %d %d" % (i, i, ts) for i in range(1000)]
        errs = send_tcp(port, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        wait_status(t.build, control, 20.0, "destination down with queued=1000",
                    lambda st: st["destinations"].get(key, {}).get("state") == "down"
                    and st["destinations"].get(key, {}).get("queued") == 1000)
    with t.check("SIGTERM with -D 1 and a down destination: exit 0 within %.0f s" % DOWN_BOUND):
        t0 = time.monotonic()
        orch.signal(signal.SIGTERM)
        rc = orch.wait(DOWN_BOUND)
        elapsed = time.monotonic() - t0
        require(rc is not None, "still running %.0f s after SIGTERM" % DOWN_BOUND)
        require(rc == 0, "exit code %s after %.1f s" % (rc, elapsed))
        sys.stderr.write("# exited after %.2f s\n" % elapsed)

    # --- 2: live but slow destination ------------------------------------------------
    port = free_port()
    sink = t.sink(rcvbuf=4096)
    sink.pause()
    control = "tcp://127.0.0.1:%d" % free_port()
    key = ("sink", "127.0.0.1:%d" % sink.port)
    with t.check("orchester starts with a live sink that does not read", fatal=True):
        # a queue that holds every line and a long stall bound: nothing may
        # be dropped for being slow, so every line must be delivered
        orch2 = t.start_orchester("orchester-live", conf_for(port, control, sink.port),
                                  opts=("-q", str(2 * LIVE_LINES), "-L", "60000"),
                                  control=control, tcp_ports=(port,))
        wait_status(t.build, control, 20.0, "destination up",
                    lambda st: st["destinations"].get(key, {}).get("state") == "up")

    lines = [b"drain.m%d %d %d" % (i % 1000, i, ts + i) for i in range(LIVE_LINES)]
    with t.check("lines are queued for the stalled sink"):
        errs = send_tcp(port, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        st = wait_status(t.build, control, 30.0,
                         "metricsReceived=%d and queued > 0" % LIVE_LINES,
                         lambda st: st["counters"].get("metricsReceived") == LIVE_LINES
                         and st["destinations"].get(key, {}).get("queued", 0) > 0)
        q = st["destinations"][key]["queued"]
        sys.stderr.write("# queued=%d of %d before SIGTERM; sink had %d\n"
                         % (q, LIVE_LINES, sink.count()))
        require(sink.count() < LIVE_LINES, "the sink already has everything")

    with t.check("SIGTERM with a live sink: everything queued is delivered, exit 0"):
        orch2.signal(signal.SIGTERM)
        sink.resume()
        rc = orch2.wait(60.0)
        require(rc is not None, "still running 60 s after SIGTERM")
        require(rc == 0, "exit code %s" % rc)
        # what orchester wrote before it exited is in the sockets; read it
        tr = SinkTracker(sink, lines)
        try:
            wait_until(tr.complete, 15.0, "all lines at the sink")
        except Exception:
            pass
        tr.update()
        require(not tr.missing, "%d of %d lines missing after exit" % (len(tr.missing), LIVE_LINES))
        got = [ln for ln in sink.snapshot() if ln.startswith(b"drain.")]
        d = first_difference(got, lines)
        require(not d, "order or repeats: " + d)


if __name__ == "__main__":
    Test().run(body)
