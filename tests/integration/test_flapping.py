#!/usr/bin/python3
"""
test_flapping.py -- a backend that accepts and at once resets every
connection is retried with a growing delay, and the log stays quiet.

The backend (here) accepts each connection and resets it (SO_LINGER 0,
close).  A connection that never holds must not reset orchester's backoff:
the attempts the backend sees come with delays that double (100 ms up to
5000 ms, each 0.75 to 1.25 times), so its first ATTEMPTS connections span
several seconds, not a fraction of one.  By then orchester has logged only
a couple of lines about this destination (the first failure, one
"connected"), not two per attempt.  Then the backend behaves (accepts and
reads): orchester connects by itself, every line sent arrives, and once the
connection has held, the log says that it is connected and how many
failures it did not log.
"""
import os
import selectors
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HOST, Test, require, free_port, send_tcp,  # noqa: E402
                     wait_until, check_build, wait_status, SinkTracker, Sink)

ATTEMPTS = 7
# delays before attempts 2..ATTEMPTS: 100, 200, ... ms, capped at 5000 ms
BACKOFF = [min(100 * 2 ** i, 5000) for i in range(ATTEMPTS - 1)]
MIN_SPAN = 0.75 * sum(BACKOFF) / 1000.0 - 0.5  # the least jitter, less slack
MAX_LOG_LINES = 3
LINES = 2000


class ResetBackend:
    """A listener on 127.0.0.1 that accepts every connection and resets it
    at once.  accepts holds the monotonic time of each accept."""

    def __init__(self):
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((HOST, 0))
        self.port = self.ls.getsockname()[1]
        self.ls.listen(128)
        self.lock = threading.Lock()
        self.accepts = []
        self._r, self._w = socket.socketpair()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self.ls, selectors.EVENT_READ)
        sel.register(self._r, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in sel.select(timeout=1.0):
                    if key.fileobj is self._r:
                        return
                    try:
                        c, _ = self.ls.accept()
                    except OSError:
                        continue
                    with self.lock:
                        self.accepts.append(time.monotonic())
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                    c.close()
        finally:
            sel.close()

    def count(self):
        with self.lock:
            return len(self.accepts)

    def times(self):
        with self.lock:
            return list(self.accepts)

    def stop(self):
        """Stop accepting and free the port."""
        if self._thread is None:
            return
        self._w.send(b"x")
        self._thread.join(10)
        self._thread = None
        self.ls.close()
        self._r.close()
        self._w.close()


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    backend = ResetBackend()
    t.on_cleanup(backend.stop)
    port = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    addr = "127.0.0.1:%d" % backend.port
    key = ("flappy", addr)
    tag = "dest: flappy %s: " % addr
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster flappy forward %s ;
match * send to flappy ;
""" % (port, control, addr)
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", conf, control=control,
                                 tcp_ports=(port,))

    def my_log():
        return [ln for ln in orch.stderr().splitlines() if tag in ln]

    with t.check("the reset backend sees its first %d connection attempts spread "
                 "over at least %.1f s (the backoff grows)" % (ATTEMPTS, MIN_SPAN),
                 fatal=True):
        wait_until(lambda: backend.count() >= ATTEMPTS, 60.0,
                   lambda: "%d connection attempts (have %d)" % (ATTEMPTS, backend.count()))
        ts = backend.times()
        span = ts[ATTEMPTS - 1] - ts[0]
        gaps = ", ".join("%.2f" % (b - a) for a, b in zip(ts, ts[1:ATTEMPTS]))
        sys.stderr.write("# first %d attempts over %.2f s; gaps: %s\n"
                         % (ATTEMPTS, span, gaps))
        require(span >= MIN_SPAN, "%d attempts within %.2f s (gaps %s): the backoff "
                "was reset by connections that did not hold" % (ATTEMPTS, span, gaps))

    with t.check("orchester logged at most %d lines about it over those attempts"
                 % MAX_LOG_LINES):
        lines = my_log()
        sys.stderr.write("# %d log lines: %r\n" % (len(lines), lines[:6]))
        require(len(lines) <= MAX_LOG_LINES, "%d lines, e.g. %r"
                % (len(lines), lines[:6]))
        require(any("retrying in" in ln for ln in lines),
                "the first failure was not logged: %r" % lines)

    with t.check("status shows the destination down while the backend resets"):
        st = wait_status(t.build, control, 10.0, "status")
        require(st["destinations"].get(key, {}).get("state") == "down",
                "destination: %r" % st["destinations"].get(key))

    ts0 = int(time.time()) - 600
    lines = [b"flap.m%d %d %d" % (i % 50, i, ts0 + i) for i in range(LINES)]
    with t.check("the backend behaves again: every line arrives", fatal=True):
        n_before = len(my_log())
        backend.stop()
        sink = t.sink(port=int(addr.rsplit(":", 1)[1]))
        errs = send_tcp(port, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        tr = SinkTracker(sink, lines)
        wait_until(tr.complete, 30.0, lambda: "%d lines at the backend (%d missing)"
                   % (LINES, len(tr.missing)))
        st = wait_status(t.build, control, 10.0, "destination up, queue empty",
                         lambda st: st["destinations"].get(key, {}).get("state") == "up"
                         and st["destinations"][key].get("queued") == 0)
        require(st["destinations"][key].get("dropped") == 0,
                "dropped: %r" % st["destinations"][key])

    with t.check("once the connection held, the log says connected and counts the "
                 "failures it did not log"):
        def said():
            return [ln for ln in my_log()[n_before:] if ln.endswith("connected")
                    or "connected, and held" in ln]
        got = wait_until(said, 20.0, lambda: "a 'connected' line after %r"
                         % my_log()[-3:])
        new = my_log()[n_before:]
        sys.stderr.write("# %r\n" % new)
        require(any("failures not logged" in ln for ln in new),
                "no line counts the failures not logged: %r" % new)
        require(len(got) == 1, "%r" % got)

    with t.check("the log about the destination stayed short"):
        lines_now = my_log()
        # the first failure, "connected", and the line once it held; one
        # more failure line per minute at most
        require(len(lines_now) <= MAX_LOG_LINES + 2, "%d lines: %r"
                % (len(lines_now), lines_now[:8]))


if __name__ == "__main__":
    Test().run(body)
