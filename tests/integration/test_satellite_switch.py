#!/usr/bin/python3
"""
test_satellite_switch.py -- a standalone satellite with two orchesters
(`orchester tcp://A tcp://B timeout 1000 ms ;`) sends to the other one when
the first stops acknowledging, and resends its window there: every line
arrives at least once.

Two orchesters, A and B, forward to one sink; the lines are critical (each
has a Redis buffer), so a batch is acknowledged only once its lines were
delivered: a member killed loses none that it acknowledged.  A steady
client sends seq.N lines to the satellite.  Once the sink receives them, A is killed
(SIGKILL).  Checks:

  - the satellite says it sends to B, and the lines keep arriving (through
    B) within a bound;
  - the satellite's control socket (`control`) says where it sends and
    counts the switch, and its self metrics (`statistics ... prefix with
    sat.me`) reach the sink;
  - every line the client sent arrives (duplicates are counted and printed);
  - B is killed too and A started again: the satellite goes back to A.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, lines_with_prefix, ctl)


def seqs(sink):
    return [int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(), b"seq.")]


def body(t):
    check_build(t.build)
    redis = t.redis()
    sink = t.sink()
    pa, pb, inport = free_port(), free_port(), free_port()

    def oconf(p, name):
        return ("satellites bind tcp://127.0.0.1:%d ;\n"
                "control ipc://%s ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "buffer redis %s prefix %s ;\n"
                "match * critical send to sink ;\n"
                % (p, t.tmp.join("ctl-" + name), sink.port, redis.target, name))
    a = t.start_orchester("a", oconf(pa, "a"),
                          control="ipc://" + t.tmp.join("ctl-a"))
    b = t.start_orchester("b", oconf(pb, "b"),
                          control="ipc://" + t.tmp.join("ctl-b"))
    sctl = "ipc://" + t.tmp.join("ctl-sat")
    sconf = t.write("satellite.conf",
                    "listen type linemode 127.0.0.1:%d proto tcp ;\n"
                    "orchester tcp://127.0.0.1:%d tcp://127.0.0.1:%d "
                    "timeout 1000 ms ;\n"
                    "control %s ;\n"
                    "statistics submit every 1 seconds prefix with sat.me ;\n"
                    % (inport, pa, pb, sctl))
    sat = t.satellite("satellite", sconf).start()
    t.wait_ready(sat, tcp_ports=(inport,))
    stream = SeqStream(inport, 5000, chunk=50)
    stream.start()
    t.on_cleanup(stream.stop.set)

    def sat_status():
        rc, out, err, _ = ctl(t.build, ["-e", sctl, "status"])
        require(rc == 0, "satellite status: exit %s: %s" % (rc, err))
        return out

    with t.check("lines flow through A", fatal=True):
        wait_until(lambda: len(seqs(sink)) >= 5000, 30, "5000 lines at the sink")

    with t.check("the satellite's status says it sends to A"):
        out = sat_status()
        require("satellite orchester=tcp://127.0.0.1:%d " % pa in out, out)
        require("counter switches 0" in out, out)

    with t.check("A killed: the satellite sends to B, and lines keep "
                 "arriving"):
        a.crash()
        at = stream.sent
        wait_until(lambda: "sending to tcp://127.0.0.1:%d" % pb in sat.stderr(),
                   15, "the satellite to switch to B")
        wait_until(lambda: max(seqs(sink)) >= at + 5000, 30,
                   "lines sent after the kill to arrive")
        out = sat_status()
        require("satellite orchester=tcp://127.0.0.1:%d " % pb in out, out)
        require("counter switches 1" in out, out)

    with t.check("the satellite's self metrics reach the sink through the "
                 "orchester"):
        wait_until(lambda: any(l.startswith(b"sat.me.switches 1 ")
                               for l in sink.snapshot()), 15,
                   "sat.me.switches 1 at the sink")

    with t.check("B killed and A back: the satellite goes back to A"):
        a = t.start_orchester("a-again", oconf(pa, "a"),
                              control="ipc://" + t.tmp.join("ctl-a"))
        b.crash()
        at = stream.sent
        wait_until(lambda: "sending to tcp://127.0.0.1:%d" % pa in sat.stderr(),
                   15, "the satellite to switch back to A")
        wait_until(lambda: max(seqs(sink)) >= at + 5000, 30,
                   "lines sent after the second kill to arrive")

    with t.check("every line the client sent arrives at least once"):
        n = stream.finish()
        wait_until(lambda: set(seqs(sink)) >= set(range(n)), 60,
                   "all %d lines" % n)
        got = seqs(sink)
        switches = len(re.findall("sending to", sat.stderr()))
        sys.stderr.write("# %d lines sent, all arrived, %d duplicates; %d "
                         "switches\n" % (n, len(got) - len(set(got)), switches))


Test().run(body)
