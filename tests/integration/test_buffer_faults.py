#!/usr/bin/python3
"""
test_buffer_faults.py -- the Redis buffer when Redis itself fails: stopped,
frozen, full.  The relay survives each, counts what it could not keep, and
nothing else stalls.

Each case runs its own redis-server (unix socket, append-only), orchester
and sinks.  crit.N lines are critical (`match ^crit\\. critical ...`).

1. Redis stopped during an outage.  The sink is down; 20,000 critical
   datapoints go to Redis; Redis is stopped; 60,000 more arrive while it is
   down.  orchester keeps at most -R 20000 of them in memory and drops the
   oldest of the rest, counted (bufferDropped), and keeps running.  Redis is
   started again (its append-only file holds the first 20,000): what waited
   in memory is spilled, and once the sink is back every datapoint that was
   not counted as dropped arrives, and nothing counted as dropped does.
2. Redis frozen (SIGSTOP).  One destination is down (its critical
   datapoints spill), another is up and gets an ordinary stream.  While
   Redis is frozen (for as long as the ordinary destination takes to
   receive 50,000 more lines at 5,000 a second: about 10 s; 20,000 on a
   sanitizer build), the command
   watchdog ends the connection (redisTimeouts, a "no answer" line), the
   ordinary stream keeps arriving, and status keeps answering.  Thawed,
   Redis takes what waited, and every critical datapoint arrives once the
   sink is back.
3. Redis full (maxmemory 3 MB, noeviction).  The sink is down; 150,000
   critical datapoints (about 4 MB) arrive.  Redis refuses with OOM: counted
   as redisErrors, logged; orchester keeps running and answers status, and
   buffered + held in memory + dropped adds up to what was sent.  Once the
   sink is back, every datapoint not counted as dropped arrives.
"""
import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, lines_with_prefix, sanitized)


def conf(port, control, redis, crit_port, bulk_port=None):
    c = ("listen type linemode transport plain 127.0.0.1:%d proto tcp ;\n"
         "cluster store forward 127.0.0.1:%d ;\n" % (port, crit_port))
    if bulk_port:
        c += "cluster bulk forward 127.0.0.1:%d ;\n" % bulk_port
    c += ("buffer redis %s prefix f ;\n"
          "match ^crit\\. critical send to store stop ;\n"
          "match * send to %s ;\n"
          "control %s ;\n" % (redis, "bulk" if bulk_port else "store", control))
    return c


def crit(sink):
    return [int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(), b"crit.")]


def send(port, n, start=0, rate=10 ** 9):
    """Send crit.START .. crit.START+n-1 and wait until they are sent."""
    s = SeqStream(port, rate, chunk=500, limit=n, name=b"crit", first=start)
    s.start()
    wait_until(lambda: s.done.is_set(), 60, "the stream to be sent")
    require(s.error is None, "client: %s" % s.error)


def body(t):
    check_build(t.build)

    # -- 1. Redis stopped -------------------------------------------------
    redis = t.redis("redis1")
    sink = t.sink()
    sink.stop()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl1")
    o = t.start_orchester("stopped", conf(port, control, redis.target, sink.port),
                          opts=("-R", "20000"), control=control,
                          tcp_ports=(port,))
    st = lambda: t.status(control)  # noqa: E731
    with t.check("Redis stopped: the relay holds -R datapoints, drops the "
                 "rest counted, and keeps running", fatal=True):
        send(port, 20000)
        wait_until(lambda: counter(st(), "buffered") == 20000, 30,
                   "the first 20,000 to be in Redis")
        redis.stop()
        wait_until(lambda: counter(st(), "redisUp") == 0, 30,
                   "orchester to see Redis down")
        send(port, 60000, start=20000)
        wait_until(lambda: counter(st(), "bufferMemory") +
                   counter(st(), "bufferDropped") == 60000, 30,
                   lambda: "memory %d + dropped %d to be 60000" % (
                       counter(st(), "bufferMemory"),
                       counter(st(), "bufferDropped")))
        s = st()
        held = counter(s, "bufferMemory")
        # whole chunks are dropped: the bound is kept, not filled exactly
        require(0 < held <= 20000, "held %d (bound 20000)" % held)
        require(o.alive(), "orchester died")

    with t.check("Redis started again: what waited is spilled, and every "
                 "datapoint not counted as dropped arrives"):
        redis.start()
        wait_until(lambda: counter(st(), "buffered") == 20000 + held and
                   counter(st(), "bufferMemory") == 0, 30,
                   lambda: "buffered %d (%d), memory %d (0)" % (
                       counter(st(), "buffered"), 20000 + held,
                       counter(st(), "bufferMemory")))
        dropped = counter(st(), "bufferDropped")
        sink.start()
        wait_until(lambda: len(crit(sink)) >= 20000 + held, 60,
                   "the backlog to arrive")
        wait_until(lambda: redis.keys("f:*") == [], 30, "the keys to go")
        got = crit(sink)
        require(len(got) == 20000 + held and len(set(got)) + dropped == 80000,
                "%d arrived, %d dropped, of 80000" % (len(got), dropped))
        require(set(range(20000)) <= set(got),
                "some of those in Redis before it stopped did not arrive")
    o.stop()
    redis.stop()

    # -- 2. Redis frozen ---------------------------------------------------
    redis = t.redis("redis2")
    sink = t.sink()
    sink.stop()
    bulk_sink = t.sink()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl2")
    o = t.start_orchester("frozen", conf(port, control, redis.target, sink.port,
                                         bulk_sink.port),
                          control=control, tcp_ports=(port,))
    cstream = SeqStream(port, 2000, chunk=20, name=b"crit")
    bstream = SeqStream(port, 5000, chunk=50, name=b"bulk")
    with t.check("Redis frozen: the watchdog ends the connection, ordinary "
                 "traffic and status keep going"):
        cstream.start()
        bstream.start()
        wait_until(lambda: counter(st(), "buffered") > 0, 30, "a spill")
        redis.freeze()
        try:
            at = len(bulk_sink.snapshot())
            wait_until(lambda: counter(st(), "redisTimeouts") >= 1, 15,
                       "the watchdog to fire")
            require("no answer" in o.stderr(), "no watchdog line in the log")
            more = 20000 if sanitized(t.build) else 50000
            wait_until(lambda: len(bulk_sink.snapshot()) >= at + more, 30,
                       "%d ordinary lines while Redis is frozen" % more)
            require(counter(st(), "redisUp") == 0, "Redis is said to be up")
        finally:
            redis.thaw()

    with t.check("Redis thawed: what waited is spilled, and every critical "
                 "datapoint arrives"):
        wait_until(lambda: counter(st(), "redisUp") == 1, 30, "Redis up again")
        n = cstream.finish()
        bstream.finish()
        wait_until(lambda: counter(st(), "bufferMemory") == 0 and
                   counter(st(), "buffered") == n, 30,
                   lambda: "buffered %d of %d, memory %d" % (
                       counter(st(), "buffered"), n,
                       counter(st(), "bufferMemory")))
        sink.start()
        wait_until(lambda: set(crit(sink)) >= set(range(n)), 60,
                   "every critical datapoint to arrive")
        require(counter(st(), "bufferDropped") == 0, "dropped %d"
                % counter(st(), "bufferDropped"))
    o.stop()
    redis.stop()

    # -- 3. Redis full -----------------------------------------------------
    redis = t.redis("redis3", maxmemory="3mb")
    sink = t.sink()
    sink.stop()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl3")
    o = t.start_orchester("full", conf(port, control, redis.target, sink.port),
                          opts=("-R", "50000"), control=control,
                          tcp_ports=(port,))
    n = 150000
    with t.check("Redis full: refusals counted, the relay keeps running, and "
                 "the counts add up"):
        send(port, n)

        def settled():
            s = st()
            return (counter(s, "buffered") + counter(s, "bufferMemory") +
                    counter(s, "bufferDropped")) == n

        wait_until(settled, 60, lambda: "buffered + memory + dropped to be "
                   "%d: %s" % (n, [counter(st(), k) for k in (
                       "buffered", "bufferMemory", "bufferDropped")]))
        s = st()
        require(counter(s, "redisErrors") >= 1, "no Redis error counted")
        require(counter(s, "buffered") < n, "Redis took everything")
        require("OOM" in o.stderr(), "no OOM line in the log")
        require(o.alive(), "orchester died")
        print("# full: buffered %d, in memory %d, dropped %d, Redis errors %d"
              % tuple(counter(s, k) for k in ("buffered", "bufferMemory",
                                              "bufferDropped", "redisErrors")))

    with t.check("Redis full: once the sink is back, every datapoint not "
                 "counted as dropped arrives"):
        dropped = counter(st(), "bufferDropped")
        sink.start()
        wait_until(lambda: len(crit(sink)) + dropped >= n, 60,
                   lambda: "%d arrived + %d dropped of %d" % (
                       len(crit(sink)), dropped, n))
        got = crit(sink)
        require(len(set(got)) + dropped == n, "%d arrived, %d dropped, of %d"
                % (len(set(got)), dropped, n))
        require(counter(st(), "bufferDropped") == dropped,
                "more were dropped after the sink came back")


Test().run(body)
