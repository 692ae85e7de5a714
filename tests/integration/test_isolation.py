#!/usr/bin/python3
"""
test_isolation.py -- a dead or slow destination stalls neither ingestion nor
the other destinations, and its queue stays bounded.

orchester sends everything to three clusters: a sink that reads normally,
a sink that accepts and then stops reading (alive but stuck, its TCP window
full), and a port where nobody listens (dead).  The clients' 300,000 lines
must all reach the good sink, in order per connection; the clients must
finish sending; the stuck and the dead destination hold at most their queue
bound and count what they dropped; the memory of the process stays small.
When the stuck sink reads again, the stuck destination delivers what it
still holds.  The log names each dropping destination with the count it
dropped, and once orchester has stopped those counts add up to exactly
what status said was dropped; a destination that dropped nothing (the good
one) is never said to drop.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, rss_kb, send_tcp, wait_until,  # noqa: E402
                     check_build, wait_status)

QUEUE = 20000
CONNS = 2
PER_CONN = 150000



def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port()
    good = t.sink()
    stuck = t.sink(rcvbuf=4096)
    stuck.pause()
    dead_port = t.reserve_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster good forward 127.0.0.1:%d ;
cluster stuck forward 127.0.0.1:%d ;
cluster dead forward 127.0.0.1:%d ;
match * send to good stuck dead ;
""" % (port, control, good.port, stuck.port, dead_port)
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", conf, opts=("-q", str(QUEUE)),
                                 control=control, tcp_ports=(port,))

    def dest(st, name, p):
        return st["destinations"].get((name, "127.0.0.1:%d" % p), {})

    with t.check("the stuck sink is connected and the dead one is down", fatal=True):
        wait_status(t.build, control, 30.0, "stuck up, dead down",
                    lambda st: dest(st, "stuck", stuck.port).get("state") == "up"
                    and dest(st, "dead", dead_port).get("state") == "down")

    ts = int(time.time()) - 3600
    blocks = []
    for c in range(CONNS):
        blocks.append(b"".join(b"iso.c%d.m%d %d %d\n" % (c, i % 500, i, ts + i // 100)
                               for i in range(PER_CONN)))
    total = CONNS * PER_CONN

    with t.check("the clients finish sending %d lines" % total, fatal=True):
        errs = send_tcp(port, blocks, timeout=120.0)
        require(not errs, "; ".join(errs))

    with t.check("every line reaches the good destination, in order per connection"):
        wait_until(lambda: len(good.lines) >= total, 120.0,
                   "%d lines at the good sink" % total)
        got = good.snapshot()
        require(len(got) == total, "%d lines, expected %d" % (len(got), total))
        for c in range(CONNS):
            prefix = b"iso.c%d." % c
            mine = [ln for ln in got if ln.startswith(prefix)]
            exp = blocks[c].rstrip(b"\n").split(b"\n")
            require(mine == exp, "connection %d: lines differ or out of order" % c)

    with t.check("the stuck and the dead destination stay within the queue bound "
                 "and count what they dropped"):
        st = wait_status(t.build, control, 30.0, "drops counted",
                         lambda st: dest(st, "dead", dead_port).get("dropped", 0)
                         >= total - QUEUE)
        d = dest(st, "dead", dead_port)
        require(d.get("queued", 0) <= QUEUE, "dead queued %s > %d" % (d.get("queued"), QUEUE))
        require(d.get("queued", 0) + d.get("dropped", 0) == total,
                "dead: queued %s + dropped %s != %d" % (d.get("queued"), d.get("dropped"), total))
        s = dest(st, "stuck", stuck.port)
        require(s.get("queued", 0) <= QUEUE, "stuck queued %s > %d" % (s.get("queued"), QUEUE))
        require(s.get("dropped", 0) > 0, "stuck dropped nothing: %r" % s)
        require(s.get("sent", 0) + s.get("queued", 0) + s.get("inflight", 0)
                + s.get("dropped", 0) == total,
                "stuck: sent+queued+inflight+dropped != %d: %r" % (total, s))

    with t.check("memory stays bounded (resident < 200 MB)"):
        kb = rss_kb(orch.pid)
        require(kb < 200 * 1024, "resident %d kB" % kb)

    with t.check("the stuck destination delivers what it holds once its sink reads"):
        st = t.status(control)
        s = dest(st, "stuck", stuck.port)
        expect = s.get("sent", 0) + s.get("queued", 0) + s.get("inflight", 0)
        stuck.resume()
        wait_until(lambda: len(stuck.lines) >= expect and expect > 0, 60.0,
                   "%d lines at the stuck sink" % expect)
        wait_status(t.build, control, 30.0, "stuck queue empty, nothing in flight",
                    lambda st: dest(st, "stuck", stuck.port).get("queued", 1) == 0
                    and dest(st, "stuck", stuck.port).get("inflight", 1) == 0)
        # what it got is a subsequence of what was sent, per connection
        got = stuck.snapshot()
        for c in range(CONNS):
            prefix = b"iso.c%d." % c
            mine = [int(ln.split()[1]) for ln in got if ln.startswith(prefix)]
            require(mine == sorted(mine), "connection %d out of order" % c)

    with t.check("the log gives each destination's drops with their count, "
                 "adding up to status's dropped; nothing for the good one"):
        st = t.status(control)
        want = {name: dest(st, name, p).get("dropped", 0)
                for name, p in (("good", good.port), ("stuck", stuck.port),
                                ("dead", dead_port))}
        orch.stop()
        logged = {"good": 0, "stuck": 0, "dead": 0}
        pat = re.compile(r"dest: (\w+) \S+: queue full .*: dropped the oldest (\d+) datapoints")
        for ln in orch.stderr().splitlines():
            m = pat.search(ln)
            if m:
                logged[m.group(1)] += int(m.group(2))
            elif "dropping" in ln or "dropped" in ln:
                require("not delivered" in ln, "a drop logged without its count: %r" % ln)
        require(want["good"] == 0, "the good destination dropped %d" % want["good"])
        require(logged == want, "logged drops %r, status %r" % (logged, want))


if __name__ == "__main__":
    Test().run(body)
