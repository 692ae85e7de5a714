#!/usr/bin/python3
"""
test_liveness.py -- placement sees a destination go down the moment the
sender does, and a reload never applies the old configuration's liveness
to the new destination table.

A failover cluster f of two members, A then B (A takes everything while it
is up).  One client sends seq.N lines at RATE per second for the whole test.

  1. A dies (its sink closes): the sender sees the EOF at once, and from
     then on the lines go to B.  Only the lines routed in the moment before
     the hub heard of it may still sit in A's queue: at most LATE_MAX
     (RATE * LATE_MAX_S).  With liveness carried by the 1 Hz statistics
     snapshot, half a second's worth (RATE / 2) sat there on average.
  2. A reload to a configuration with the same two destinations in the
     other order (B, A), while A is still dead: the old generation's
     snapshot (index 0 down) must not be applied to the new table (where
     index 0 is B), so B keeps taking the lines; again at most LATE_MAX go
     to A's queue after the reload.
  3. A comes back: its queue drains to it, and every line sent arrived
     exactly once at A or B, none dropped.
"""
import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     wait_status, ctl, ctl_status, SeqStream)

RATE = 2000.0          # seq lines per second
LATE_MAX_S = 0.1
LATE_MAX = int(RATE * LATE_MAX_S)
SETTLE = 3000          # lines sent after each event before A's queue is read


def conf_text(port, control, first, second):
    return """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster f failover 127.0.0.1:%d 127.0.0.1:%d ;
match * send to f stop ;
""" % (port, control, first, second)


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
    port = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    a, b = t.sink(), t.sink()
    key_a = ("f", "127.0.0.1:%d" % a.port)

    with t.check("orchester starts; A takes the stream", fatal=True):
        orch = t.start_orchester("orchester", conf_text(port, control, a.port, b.port),
                                 control=control, tcp_ports=(port,))
        wait_status(t.build, control, 20.0, "both members up",
                    lambda st: all(d.get("state") == "up"
                                   for d in st["destinations"].values()))
        stream = SeqStream(port, RATE)
        t.on_cleanup(lambda: (stream.stop.set(), stream.join(5)))
        stream.start()
        a.wait_count(500, 20.0, "the stream at A")
        require(b.count() == 0, "B got %d lines while A was up" % b.count())

    def queued_at_a_after(what):
        mark = stream.sent
        wait_until(lambda: stream.sent >= mark + SETTLE, 30.0,
                   "%d more lines sent" % SETTLE)
        st = ctl_status(t.build, control)
        q = st["destinations"].get(key_a, {}).get("queued")
        sys.stderr.write("# %s: %s lines queued at A\n" % (what, q))
        require(q is not None, "no destination A in status")
        require(q <= LATE_MAX, "%s: %d lines went to A after it was down "
                "(at most %d: %.0f ms of the stream)"
                % (what, q, LATE_MAX, LATE_MAX_S * 1000))
        return q

    with t.check("A dies: within %.0f ms the lines go to B" % (LATE_MAX_S * 1000)):
        a.stop()
        b.wait_count(100, 10.0, "the stream at B")
        q1 = queued_at_a_after("after A died")

    with t.check("a reload to the members in the other order keeps routing "
                 "to B (no stale liveness applied to the new table)"):
        conf = orch.conf
        with open(conf + ".new", "w") as f:
            f.write(conf_text(port, control, b.port, a.port))
        os.rename(conf + ".new", conf)
        rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
        require(rc == 0 and out.startswith("ok"), "reload: %s %s" % (out, err))
        q2 = queued_at_a_after("after the reload")
        require(q2 - q1 <= LATE_MAX, "%d more lines went to A after the reload"
                % (q2 - q1))

    with t.check("A comes back: every line arrived exactly once, none dropped"):
        a.start()
        n = stream.finish()
        wait_until(lambda: a.count() + b.count() >= n, 30.0,
                   lambda: "%d lines at A and B (have %d + %d)"
                   % (n, a.count(), b.count()))
        got = sorted(int(ln.split(b" ")[1]) for ln in a.snapshot() + b.snapshot())
        require(got == list(range(n)), "lines at A and B are not seq 0..%d "
                "exactly once (%d lines, %d distinct)" % (n - 1, len(got), len(set(got))))
        st = ctl_status(t.build, control)
        for k, d in st["destinations"].items():
            require(d.get("dropped") == 0, "%s dropped %s" % (k, d.get("dropped")))


if __name__ == "__main__":
    Test().run(body)
