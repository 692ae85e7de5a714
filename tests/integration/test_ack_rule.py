#!/usr/bin/python3
"""
test_ack_rule.py -- the acknowledgement rule: a satellite batch is
acknowledged only once each critical datapoint in it is delivered (the
backend's TCP stack acknowledged it) or persisted (Redis took it), so a
crash of orchester loses none of them: the standalone satellite still holds
those batches and sends them again.

A standalone satellite feeds orchester (`satellites bind`), which sends
crit.N (critical) and bulk.N (ordinary) lines to one sink.  The sink
accepts but does not read, with a small receive buffer: what orchester
writes stays unacknowledged.  orchester runs with -G 2000 (critical
datapoints a live destination holds before new ones spill) and -I 65536
(unacknowledged bytes), so most of the critical datapoints go to Redis and
the rest wait live, unacknowledged.  Then orchester is killed (SIGKILL) and
started again, and the sink starts reading.  Checks:

  - before the kill, critical datapoints were both spilled and held live;
  - the satellite sends its unacknowledged batches again once orchester is
    back (its log says how many: more than 0);
  - every critical datapoint arrives (at least once).

How many ordinary datapoints the crash lost is printed, not checked: they
were acknowledged once queued, as the design says.

Then a stop whose drain time (-D 2) runs out while critical datapoints
wait live at a destination that does not read: orchester closes that
connection and sends them to Redis before it exits (0), and once started
again it replays them: every one arrives.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, lines_with_prefix)

N = 20000


def body(t):
    check_build(t.build)
    redis = t.redis()
    sink = t.sink(rcvbuf=4096)
    sink.pause()
    satport, inport = free_port(), free_port()
    control = "ipc://" + t.tmp.join("ctl")
    oconf = ("satellites bind tcp://127.0.0.1:%d ;\n"
             "control %s ;\n"
             "cluster sink forward 127.0.0.1:%d ;\n"
             "buffer redis %s prefix a ;\n"
             "match ^crit\\. critical send to sink stop ;\n"
             "match * send to sink ;\n" % (satport, control, sink.port,
                                           redis.target))
    opts = ("-G", "2000", "-I", "65536", "-K", "60000")
    o = t.start_orchester("orchester", oconf, opts=opts, control=control)
    sconf = t.write("satellite.conf", "listen type linemode 127.0.0.1:%d proto tcp ;\n"
                    "orchester tcp://127.0.0.1:%d ;\n" % (inport, satport))
    sat = t.satellite("satellite", sconf).start()
    t.wait_ready(sat, tcp_ports=(inport,))
    st = lambda: t.status(control)  # noqa: E731
    st2 = lambda: t.status("ipc://" + t.tmp.join("ctl-stop"))  # noqa: E731
    dkey = ("sink", "127.0.0.1:%d" % sink.port)

    with t.check("critical datapoints are spilled and held live, "
                 "unacknowledged, when the backend does not read", fatal=True):
        crit = SeqStream(inport, 20000, chunk=100, limit=N, name=b"crit")
        bulk = SeqStream(inport, 20000, chunk=100, limit=N, name=b"bulk")
        crit.start()
        bulk.start()
        wait_until(lambda: crit.done.is_set() and bulk.done.is_set(), 60,
                   "the streams to be sent")
        require(crit.error is None and bulk.error is None,
                "client: %s %s" % (crit.error, bulk.error))

        def settled():
            s = st()
            d = s["destinations"][dkey]
            return (counter(s, "buffered") > 0 and d["inflight"] + d["queued"] > 0
                    and counter(s, "satellites.batches") > 0)

        wait_until(settled, 30, "spills and data held at the destination")
        s = st()
        sys.stderr.write("# before the kill: buffered %d; at the destination %r\n"
                         % (counter(s, "buffered"), s["destinations"][dkey]))

    with t.check("after a crash the satellite sends its unacknowledged "
                 "batches again"):
        o.crash()
        o = t.start_orchester("restarted", oconf, opts=opts, control=control)
        sink.resume()

        def resent():
            m = re.findall(r"resending (\d+) unacknowledged", sat.stderr())
            return m and int(m[-1]) > 0

        wait_until(resent, 30, "the satellite to resend")
        sys.stderr.write("# %s\n" % [ln for ln in sat.stderr().splitlines()
                                      if "resending" in ln][-1:])

    with t.check("every critical datapoint arrives"):
        def all_crit():
            got = {int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(),
                                                                 b"crit.")}
            return got >= set(range(N))

        wait_until(all_crit, 60, "all %d critical datapoints" % N)
        bulk_got = {int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(),
                                                                  b"bulk.")}
        sys.stderr.write("# ordinary datapoints lost in the crash: %d of %d\n"
                         % (N - len(bulk_got), N))

    o.stop()
    sat.stop()

    # -- a stop that runs out of drain time -----------------------------
    sink = t.sink(rcvbuf=4096)
    sink.pause()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl-stop")
    conf = ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
            "control %s ;\n"
            "cluster sink forward 127.0.0.1:%d ;\n"
            "buffer redis %s prefix d ;\n"
            "match * critical send to sink ;\n" % (port, control, sink.port,
                                                   redis.target))
    # everything stays live: the destination may hold it all
    opts = ("-D", "2", "-G", "1000000", "-I", str(1 << 30))
    key = "d:buf:sink:127.0.0.1:%d" % sink.port
    with t.check("at a stop whose drain time runs out, critical datapoints "
                 "the destination did not take go to Redis"):
        o = t.start_orchester("stopping", conf, opts=opts, control=control,
                              tcp_ports=(port,))
        s = SeqStream(port, 10 ** 9, chunk=500, limit=N, name=b"crit")
        s.start()
        wait_until(lambda: s.done.is_set(), 60, "the stream to be sent")
        d = ("sink", "127.0.0.1:%d" % sink.port)
        wait_until(lambda: st2()["destinations"][d]["inflight"] +
                   st2()["destinations"][d]["queued"] > 0, 30, "data held live")
        require(counter(st2(), "buffered") == 0, "spilled before the stop")
        rc, killed = o.stop()
        require(rc == 0 and not killed, "exit %s" % rc)
        in_redis = redis.stream_datapoints(key)
        require(in_redis > 0, "nothing went to Redis")
        require("drain time over" in o.stderr(), "no line about it in the log")
        o = t.start_orchester("after-stop", conf, control=control,
                              tcp_ports=(port,))
        sink.resume()
        wait_until(lambda: {int(l.split()[1]) for l in lines_with_prefix(
            sink.snapshot(), b"crit.")} >= set(range(N)), 60,
            "every critical datapoint to arrive")
        sys.stderr.write("# the stop sent %d datapoints to Redis\n" % in_redis)


Test().run(body)
