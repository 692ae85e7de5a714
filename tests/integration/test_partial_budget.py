#!/usr/bin/python3
"""
test_partial_budget.py -- the memory held by unfinished frames and lines is
bounded across all connections, and slow live senders keep working.

orchester runs with a partial-data budget of 8 MiB (-B).  300 pickle
connections each announce a 1 MiB frame and stall one byte short of it:
without a total bound they would hold 300 MiB.  The stalled connections
with the least recent progress must be closed and counted
(connections.evicted), and the resident memory must stay small.

Then a slow live sender dribbles a frame in ten pieces while the flood goes
on: between two of its pieces two more stalled connections arrive, and the
sender waits until the server has closed two older ones (it sees their
connections end) before it sends its next piece.  Having made progress
more recently than the stalled ones, it is never the one closed, and its
datapoints reach the sink.
"""
import os
import pickle
import select
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     counter, ctl_status, rss_kb, SinkTracker, orchester_argv,
                     small_quarantine_env)

BUDGET = 8 << 20
FRAME = 1 << 20          # announced frame length (the default -F allows it)
STALLED = 300
PIECES = 10
PER_ROUND = 2            # stalled connections between two pieces
POINTS = 2000


def vm_hwm_kb(pid):
    """The peak resident memory of process pid, in kB (VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def ended(sock):
    """True when the server closed sock (it reads as EOF or reset)."""
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    conf = """listen type pickle 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (port, control, sink.port)
    env = small_quarantine_env()  # the resident size measures orchester
    with t.check("orchester -B %d starts" % BUDGET, fatal=True):
        path = t.write("orchester.conf", conf)
        orch = t.proc("orchester", orchester_argv(t.build, path, "-B",
                                                  str(BUDGET)), env=env)
        orch.ours = True
        orch.start()
        t.wait_ready(orch, control=control, tcp_ports=(port,))
    base_kb = rss_kb(orch.pid)

    socks = []     # every stalled connection: [socket, closed by the server]

    def close_all():
        for s in socks:
            s[0].close()
    t.on_cleanup(close_all)

    stall = struct.pack("!I", FRAME) + b"x" * (FRAME - 1)

    def open_stalled():
        s = socket.create_connection(("127.0.0.1", port), timeout=30.0)
        entry = [s, False]
        socks.append(entry)
        try:
            s.sendall(stall)
        except OSError:
            entry[1] = True      # closed by the server while we sent

    def closed_count():
        for e in socks:
            if not e[1] and ended(e[0]):
                e[1] = True
        return sum(1 for e in socks if e[1])

    with t.check("%d connections stalled in 1 MiB frames: resident memory "
                 "stays bounded" % STALLED, fatal=True):
        peak = 0
        for _ in range(STALLED):
            open_stalled()
            peak = max(peak, rss_kb(orch.pid))
        # at most BUDGET / FRAME of them can be held at once
        need = STALLED - BUDGET // FRAME - 1
        wait_until(lambda: closed_count() >= need, 60.0,
                   lambda: "%d stalled connections closed by orchester (have %d)"
                   % (need, closed_count()))
        peak = max(peak, rss_kb(orch.pid))
        hwm = vm_hwm_kb(orch.pid)
        sys.stderr.write("# VmRSS at start %d kB, highest seen %d kB, VmHWM %d kB;"
                         " %d of %d stalled connections closed\n"
                         % (base_kb, peak, hwm, closed_count(), STALLED))
        bound = base_kb + 5 * BUDGET // 1024
        require(peak < bound, "VmRSS reached %d kB (bound %d kB)" % (peak, bound))
        require(hwm < bound, "VmHWM %d kB (bound %d kB)" % (hwm, bound))

    with t.check("the closed connections are counted, the held bytes are "
                 "within the budget"):
        need = closed_count()
        box = {}

        def counted():
            st = box["st"] = ctl_status(t.build, control)
            return counter(st, "connections.evicted") >= need
        wait_until(counted, 30.0, lambda: "connections.evicted >= %d (counters %r)"
                   % (need, box.get("st", {}).get("counters")), interval=0.2)
        st = box["st"]
        require(counter(st, "connections.partialBytes") <= BUDGET,
                "connections.partialBytes %d" % counter(st, "connections.partialBytes"))
        require(counter(st, "connections.evicted") <= STALLED,
                "connections.evicted %d for %d stalled connections"
                % (counter(st, "connections.evicted"), STALLED))

    ts = int(time.time()) - 3600
    points = [("slowpickle.m%d" % i, (ts, i)) for i in range(POINTS)]
    payload = pickle.dumps(points, protocol=2)
    frame = struct.pack("!I", len(payload)) + payload
    step = (len(frame) + PIECES - 1) // PIECES
    pieces = [frame[i:i + step] for i in range(0, len(frame), step)]
    expected = [b"slowpickle.m%d %d %d" % (i, i, ts) for i in range(POINTS)]

    with t.check("a slow live sender, its frame in %d pieces with the flood "
                 "between them, is not closed and its datapoints arrive"
                 % len(pieces)):
        live = socket.create_connection(("127.0.0.1", port), timeout=30.0)
        t.on_cleanup(live.close)
        for i, piece in enumerate(pieces):
            live.sendall(piece)
            if i == len(pieces) - 1:
                break
            before = closed_count()
            for _ in range(PER_ROUND):
                open_stalled()
            # the server's progress, seen from here: it closed older
            # stalled connections to make room for the new ones
            wait_until(lambda: ended(live) or closed_count() >= before + PER_ROUND,
                       30.0, lambda: "%d more stalled connections closed (have %d)"
                       % (PER_ROUND, closed_count() - before))
            require(not ended(live), "the live sender was closed after piece %d"
                    % (i + 1))
        wait_until(SinkTracker(sink, expected).complete, 30.0,
                   "the live sender's %d datapoints at the sink" % POINTS)
        require(not ended(live), "the live sender was closed")
        sys.stderr.write("# %d stalled connections in all, %d closed\n"
                         % (len(socks), closed_count()))
        require(orch.alive(), "orchester exited")


if __name__ == "__main__":
    Test().run(body)
