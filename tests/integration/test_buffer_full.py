#!/usr/bin/python3
"""
test_buffer_full.py -- the buffer's `max` and what a full buffer does, and
the buffer statement at reload and in test mode.

A real redis-server; the sink down while critical datapoints (crit.N) flow.

1. `max 10000 datapoints when full drop`: 30,000 critical datapoints
   arrive.  Redis holds at most 10,000 (counted from the entries, never
   trimmed); the rest are dropped and counted in bufferDropped, which with
   buffered adds up to what was sent.  Once the sink is back, exactly the
   buffered ones arrive.
2. `when full block`: 1,500,000 critical datapoints (more than the
   embedded satellite's window and the sockets' buffers hold).  Redis holds
   at most 10,000, nothing is dropped, and intake is held back: the
   satellite's window of unacknowledged batches fills (satellites.window)
   and the client cannot finish.  Once the sink is back the backlog drains,
   the client finishes, and every datapoint arrives.
3. A reload that changes the buffer's prefix is refused with a message that
   says to restart, and the running configuration stays; one that changes
   `replay` is taken.
4. `orchester -t` marks a critical destination "(critical)".
"""
import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, lines_with_prefix, ctl, run)

N = 30000
MAX = 10000


def conf(port, control, redis, sink, extra, prefix="m"):
    return ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
            "cluster store forward 127.0.0.1:%d ;\n"
            "buffer redis %s prefix %s max %d datapoints %s ;\n"
            "match ^crit\\. critical send to store stop ;\n"
            "match * send to store ;\n"
            "control %s ;\n" % (port, sink, redis, prefix, MAX, extra, control))


def crit(sink):
    return [int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(), b"crit.")]


def body(t):
    check_build(t.build)
    redis = t.redis()

    # -- 1. drop ------------------------------------------------------------
    sink = t.sink()
    sink.stop()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl1")
    text = conf(port, control, redis.target, sink.port,
                "replay 100000 per second when full drop")
    o = t.start_orchester("drop", text, control=control, tcp_ports=(port,))
    st = lambda: t.status(control)  # noqa: E731
    with t.check("when full drop: Redis holds at most max, the rest is "
                 "dropped and counted"):
        s = SeqStream(port, 10 ** 9, chunk=250, limit=N, name=b"crit")
        s.start()
        wait_until(lambda: s.done.is_set(), 60, "the stream to be sent")
        wait_until(lambda: counter(st(), "buffered") +
                   counter(st(), "bufferDropped") == N, 30,
                   lambda: "buffered %d + dropped %d to be %d" % (
                       counter(st(), "buffered"), counter(st(), "bufferDropped"),
                       N))
        buffered = counter(st(), "buffered")
        key = "m:buf:store:127.0.0.1:%d" % sink.port
        require(0 < buffered <= MAX, "buffered %d (max %d)" % (buffered, MAX))
        require(redis.stream_datapoints(key) == buffered,
                "Redis holds %d" % redis.stream_datapoints(key))
        require("the buffer is full" in o.stderr(), "no line about it in the log")

    with t.check("when full drop: once the sink is back, the buffered ones "
                 "arrive"):
        sink.start()
        wait_until(lambda: len(crit(sink)) >= buffered and
                   counter(st(), "backlog") == 0, 30, "the backlog to arrive")
        require(len(crit(sink)) == buffered, "%d arrived, %d were buffered"
                % (len(crit(sink)), buffered))

    # -- 3. reload --------------------------------------------------------
    with t.check("a reload that changes the buffer's prefix is refused, one "
                 "that changes replay is taken"):
        with open(o.conf, "w") as f:
            f.write(conf(port, control, redis.target, sink.port,
                         "when full drop", prefix="other"))
        rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
        require(rc != 0 and "restart" in out, "reload said: %s %s" % (out, err))
        rc, out, err, _ = ctl(t.build, ["-e", control, "buffer"])
        require("prefix=m " in out, "buffer says: %s" % out.splitlines()[:1])
        with open(o.conf, "w") as f:
            f.write(conf(port, control, redis.target, sink.port,
                         "replay 1234 per second when full drop"))
        rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
        require(rc == 0, "reload said: %s %s" % (out, err))
        rc, out, err, _ = ctl(t.build, ["-e", control, "buffer"])
        require("replay=1234" in out, "buffer says: %s" % out.splitlines()[:1])

    with t.check("orchester -t marks critical destinations"):
        rc, out, err, _ = run([os.path.join(t.build, "relay", "orchester"), "-t",
                               "-f", o.conf], 30, stdin_data=b"crit.x 1 2\nbulk.x 1 2\n")
        require(rc == 0, "exit %s: %s" % (rc, err))
        parts = out.split("\n\n")
        require("(critical)" in parts[0] and "(critical)" not in parts[1],
                "test mode says: %r" % out)
    o.stop()

    # -- 2. block ------------------------------------------------------------
    sink = t.sink()
    sink.stop()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl2")
    text = conf(port, control, redis.target, sink.port,
                "replay 100000 per second when full block", prefix="b")
    o = t.start_orchester("block", text, control=control, tcp_ports=(port,))
    # more than the embedded satellite's window (8 MiB) and the sockets'
    # buffers hold
    nb = 1500000
    s = SeqStream(port, 10 ** 9, chunk=1000, limit=nb, name=b"crit")
    with t.check("when full block: Redis holds at most max, nothing is "
                 "dropped, and the client is held back"):
        s.start()
        # intake is held: the satellite's window of unacknowledged batches
        # is full (and so the client cannot finish)
        wait_until(lambda: counter(st(), "satellites.window") >= 8 << 20, 60,
                   lambda: "the window to fill (%d bytes)" % counter(
                       st(), "satellites.window"))
        require(not s.done.is_set(), "the client sent all %d" % nb)
        require(counter(st(), "buffered") <= MAX, "buffered %d (max %d)"
                % (counter(st(), "buffered"), MAX))
        require(counter(st(), "bufferDropped") == 0, "dropped %d"
                % counter(st(), "bufferDropped"))

    with t.check("when full block: once the sink is back, the client "
                 "finishes and every datapoint arrives"):
        sink.start()
        wait_until(lambda: s.done.is_set(), 120, "the client to finish")
        require(s.error is None, "client: %s" % s.error)
        wait_until(lambda: len(set(crit(sink))) >= nb, 120,
                   "every datapoint to arrive")
        require(set(crit(sink)) == set(range(nb)), "not the ones sent")
        require(counter(st(), "bufferDropped") == 0, "dropped %d"
                % counter(st(), "bufferDropped"))


Test().run(body)
