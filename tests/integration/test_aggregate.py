#!/usr/bin/python3
# suite: alone
"""
test_aggregate.py -- the aggregator stage on a running orchester: its
bounds, a reload under traffic, and its stop.

1. Memory.  1,000,000 distinct series (250,000 on a sanitizer build) go to
   one aggregate while orchester runs with -A 200,000 (50,000): the series
   held stay within the bound (`orchester-ctl status`), every datapoint is
   either received into a series or dropped and counted
   (aggregators.metricsDropped), the orchester keeps routing, and its peak
   RSS is printed.
2. Reload under traffic.  Datapoints stream into aggregate A (sum and
   count per second) while the config is reloaded four times, each reload
   changing aggregate B (its interval) but not A: every datapoint sent to A
   is counted in A's outputs (the counts add up to what was sent, and the
   sums likewise), and B, whose definition changed, started clean.
3. Stop.  Buckets that are complete (their end before now) but not yet
   expired are emitted at SIGTERM, before orchester ends.
4. A stalled aggregator does not stall routing.  With the aggregator
   asleep for 6 s after its first batch (ORCHESTER_TEST_AGGR_STALL_MS, a
   test seam), 800 small batches for an aggregate fill its pipe; the
   ordinary lines sent after them still arrive before it wakes; what did
   not fit in its pipe is counted in aggregators.metricsDropped, and once
   it wakes every datapoint is accounted for (taken, or dropped).
"""
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, lines_with_prefix, ctl, send_tcp,
                     sanitized, rss_kb)


def aggr_lines(status_text):
    """The `aggregator N FILE:LINE k=v ...` records of a status."""
    out = []
    for line in status_text:
        f = line.split()
        if f and f[0] == "aggregator":
            out.append(dict(kv.split("=", 1) for kv in f[3:]))
    return out


def body(t):
    check_build(t.build)
    san = sanitized(t.build)
    nseries = 250000 if san else 1000000
    bound = 50000 if san else 200000
    sink = t.sink()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl")

    def conf(b_interval):
        return ("listen type linemode transport plain 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "aggregate ^u\\.(.*) every 10 seconds expire after 40 seconds\n"
                "    compute sum write to us.\\1 send to sink stop ;\n"
                "aggregate ^a\\.(.*) every 1 seconds expire after 3 seconds\n"
                "    compute sum write to asum.\\1 compute count write to\n"
                "    acnt.\\1 send to sink stop ;\n"
                "aggregate ^b\\.(.*) every %d seconds expire after 30 seconds\n"
                "    compute count write to bcnt.\\1 send to sink stop ;\n"
                "match * send to sink ;\n"
                "control %s ;\n" % (port, sink.port, b_interval, control))

    # the bounded one first; the reload and the stop on one without -A
    o = t.start_orchester("bounded", conf(5), opts=("-A", str(bound)),
                          control=control, tcp_ports=(port,))

    def status_lines():
        rc, out, err, _ = ctl(t.build, ["-e", control, "status"])
        require(rc == 0, "status: %s" % err)
        return out.splitlines()

    with t.check("%d distinct series: the aggregator holds at most -A %d, "
                 "the rest is dropped and counted; routing goes on"
                 % (nseries, bound)):
        now = int(time.time())
        per = nseries // 4
        blocks = [b"".join(b"u.s%d 1 %d\n" % (c * per + i, now)
                           for i in range(per)) for c in range(4)]
        errs = send_tcp(port, blocks)
        require(not errs, "; ".join(errs))
        send_tcp(port, [b"plain.after 1 %d\n" % now])

        def settled():
            # every datapoint held in a series or counted dropped (by the
            # bound, or by the hub when the aggregator's pipe was full);
            # received + dropped would count the bound's drops twice
            st = t.status(control)
            return (counter(st, "aggregators.series") +
                    counter(st, "aggregators.metricsDropped") >= nseries)
        wait_until(settled, 60, lambda: "the aggregator to take them: %r" % (
            {k: v for k, v in t.status(control)["counters"].items()
             if k.startswith("aggregators")}))
        wait_until(lambda: lines_with_prefix(sink.snapshot(), b"plain.after"),
                   30, "a line routed after them")
        st = t.status(control)
        series = counter(st, "aggregators.series")
        dropped = counter(st, "aggregators.metricsDropped")
        received = counter(st, "aggregators.metricsReceived")
        rss = rss_kb(o.pid)
        sys.stderr.write("# %d series sent: %d held (bound %d), %d dropped, "
                         "%d received; RSS %d kB\n"
                         % (nseries, series, bound, dropped, received, rss))
        require(0 < series <= bound, "series %d, bound %d" % (series, bound))
        # what the aggregator's pipe could not take (a slow sanitizer build)
        # is dropped by the hub and counted, never received: each datapoint
        # is held in a series or counted dropped, and nothing is received
        # twice
        require(series <= received <= nseries, "received %d" % received)
        require(dropped == nseries - series, "dropped %d, %d not held"
                % (dropped, nseries - series))
        a = aggr_lines(status_lines())
        require(len(a) == 3 and int(a[0]["series"]) == series, "status: %r" % a)

    o.stop()
    sink.clear()
    o = t.start_orchester("o", conf(5), control=control, tcp_ports=(port,))

    with t.check("a reload under traffic loses no datapoint of an unchanged "
                 "aggregate; the changed one starts clean"):
        stop = threading.Event()
        sent = {}  # second -> lines sent with that timestamp
        lock = threading.Lock()

        def stream():
            while not stop.is_set():
                ts = int(time.time())
                data = b"".join(b"a.k %d %d\n" % (v, ts) for v in (1, 2, 3, 4))
                data += b"b.k 1 %d\n" % ts
                if send_tcp(port, [data]):
                    return
                with lock:
                    sent[ts] = sent.get(ts, 0) + 4
                time.sleep(0.01)  # pacing the client, not timing a check
        th = threading.Thread(target=stream)
        th.start()
        t.on_cleanup(stop.set)
        reloads = 0
        try:
            for i in range(4):
                seen = len(lines_with_prefix(sink.snapshot(), b"acnt.k"))
                # one reload per emitted bucket: the traffic spans them
                wait_until(lambda: len(lines_with_prefix(sink.snapshot(),
                                                         b"acnt.k")) > seen,
                           15, "a bucket of A to be emitted")
                with open(o.conf, "w") as f:
                    f.write(conf(7 if i % 2 == 0 else 5))
                rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
                require(rc == 0, "reload: %s %s" % (out, err))
                reloads += 1
        finally:
            stop.set()
            th.join()
        total = sum(sent.values())

        def counted():
            return sum(int(float(l.split()[1])) for l in
                       lines_with_prefix(sink.snapshot(), b"acnt.k"))
        wait_until(lambda: counted() >= total, 20,
                   lambda: "A's counts to reach %d (%d)" % (total, counted()))
        cnts = {int(l.split()[2]): int(float(l.split()[1]))
                for l in lines_with_prefix(sink.snapshot(), b"acnt.k")}
        sums = {int(l.split()[2]): float(l.split()[1])
                for l in lines_with_prefix(sink.snapshot(), b"asum.k")}
        # timestamp at the end of the bucket: second S is reported at S + 1
        want = {s + 1: n for s, n in sent.items()}
        require(cnts == want, "counts %r, sent %r" % (
            sorted(cnts.items())[:8], sorted(want.items())[:8]))
        require(all(sums.get(s) == n / 4 * 10 for s, n in want.items()),
                "sums %r" % sorted(sums.items())[:8])
        def a_received():
            return int(aggr_lines(status_lines())[1]["received"])
        # the counters reach the status once a second
        wait_until(lambda: a_received() == total, 10,
                   lambda: "A received %d of %d" % (a_received(), total))
        a = aggr_lines(status_lines())
        require(int(a[2]["received"]) < total // 4,
                "B kept its counters (%s of %d): it did not start clean"
                % (a[2]["received"], total // 4))
        sys.stderr.write("# %d datapoints into A over %d seconds, %d reloads: "
                         "all counted; B after them: %r\n"
                         % (total, len(sent), reloads, a[2]))

    with t.check("at stop, complete buckets that have not expired yet are "
                 "emitted"):
        # a 10 s bucket that ended 2 s or more ago, and expires 40 s after
        # its start at the earliest (18 s from now or later): only the stop
        # emits it now
        ts = int(time.time()) - 12
        ts -= ts % 10
        before = counter(t.status(control), "metricsReceived")
        errs = send_tcp(port, [b"u.stop 5 %d\nu.stop 7 %d\n" % (ts, ts + 9)])
        require(not errs, "; ".join(errs))
        wait_until(lambda: counter(t.status(control), "metricsReceived")
                   >= before + 2, 10, "orchester to take the two lines")
        o.stop()
        got = lines_with_prefix(sink.snapshot(), b"us.stop")
        require(got == [b"us.stop 12 %d" % (ts + 10)], "us.stop: %r (bucket "
                "%d)" % (got, ts))


def stalled(t):
    """Check 4, on an orchester of its own."""
    sink = t.sink()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl-stall")
    t.start_orchester("stalled",
                      "listen type linemode transport plain 127.0.0.1:%d "
                      "proto tcp ;\n"
                      "cluster sink forward 127.0.0.1:%d ;\n"
                      "aggregate ^a\\.(.*) every 10 seconds expire after 20 "
                      "seconds compute sum write to s.\\1 send to sink stop ;\n"
                      "match * send to sink ;\n"
                      "control %s ;\n" % (port, sink.port, control),
                      control=control, tcp_ports=(port,),
                      env=dict(os.environ,
                               ORCHESTER_TEST_AGGR_STALL_MS="6000"))
    with t.check("a stalled aggregator does not stall routing: ordinary "
                 "lines go on, what its pipe cannot take is counted"):
        ts = int(time.time())
        s = socket.create_connection(("127.0.0.1", port))
        t0 = time.monotonic()
        for i in range(800):
            s.sendall(b"a.k%d 1 %d\n" % (i, ts))
            time.sleep(0.002)  # pacing: one batch per write, not a wait
        s.sendall(b"".join(b"plain.%d %d %d\n" % (i, i, ts)
                           for i in range(100)))
        s.close()
        wait_until(lambda: len(lines_with_prefix(sink.snapshot(), b"plain."))
                   >= 100, 5.0 - (time.monotonic() - t0),
                   "the ordinary lines, while the aggregator sleeps")
        took = time.monotonic() - t0
        dropped = counter(t.status(control), "aggregators.metricsDropped")
        # once it wakes: each datapoint taken, or dropped and counted
        def accounted():
            st = t.status(control)
            return (counter(st, "aggregators.metricsReceived") +
                    counter(st, "aggregators.metricsDropped"))
        wait_until(lambda: accounted() == 800, 20,
                   lambda: "800 accounted for (%d)" % accounted())
        if not sanitized(t.build):  # a slower satellite merges batches
            require(dropped > 0, "the pipe never filled: nothing dropped")
        sys.stderr.write("# stalled aggregator: 100 ordinary lines through "
                         "in %.1f s; %d aggregate datapoints dropped\n"
                         % (took, dropped))


def main(t):
    body(t)
    stalled(t)


Test().run(main)
