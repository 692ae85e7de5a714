#!/usr/bin/python3
"""
test_ha_split.py -- the pair when only the link between its members fails:
no takeover while the satellites still reach the primary; and a split brain
(both active) that heals into exactly one active member, losing nothing.

A primary P and a backup B (heartbeat 250 ms) hear each other through two
TCP proxies of the test's own, which it cuts and heals; they share one
Redis and forward critical datapoints to one sink.

1. The peer link is cut only.  Satellite S1 (`orchester tcp://P tcp://B`)
   keeps streaming through P.  B sees its peer expire, but no satellite
   votes at B: B stays passive (no takeover) while P takes more lines.
2. With the link still cut, satellite S2 lists B first (`orchester
   tcp://B tcp://P`): its vote makes B active while P is active too (split
   brain).  The link heals: the backup goes passive, the primary stays
   active (exactly one active), and S2 turns to P.
3. Every critical datapoint of S1 and S2 arrives, at least once
   (duplicates are counted and printed).
"""
import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, lines_with_prefix, ctl)


def ha_state(t, control):
    rc, out, err, _ = ctl(t.build, ["-e", control, "ha"])
    if rc != 0:
        return {}
    return dict(kv.split("=", 1) for kv in out.split()[2:] if "=" in kv)


def nums(sink, prefix):
    return [int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(), prefix)]


def body(t):
    check_build(t.build)
    redis = t.redis()
    sink = t.sink()
    sp, sb, hp, hb = (free_port() for _ in range(4))
    to_p, to_b = t.proxy(hp), t.proxy(hb)  # heartbeats of P, of B
    cp = "ipc://" + t.tmp.join("ctl-p")
    cb = "ipc://" + t.tmp.join("ctl-b")

    def conf(role, sat, pub, peer_pub, peer_sat, control):
        return ("satellites bind tcp://127.0.0.1:%d ;\n"
                "ha %s publish tcp://127.0.0.1:%d\n"
                "    peer tcp://127.0.0.1:%d tcp://127.0.0.1:%d\n"
                "    heartbeat 250 ms ;\n"
                "control %s ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "buffer redis %s prefix split ;\n"
                "match * critical send to sink ;\n"
                % (sat, role, pub, peer_pub, peer_sat, control, sink.port,
                   redis.target))

    t.start_orchester("primary", conf("primary", sp, hp, to_b.port, sb, cp),
                      control=cp)
    t.start_orchester("backup", conf("backup", sb, hb, to_p.port, sp, cb),
                      control=cb)
    st = lambda c: ha_state(t, c).get("state")  # noqa: E731
    with t.check("the pair settles: primary active, backup passive", fatal=True):
        wait_until(lambda: st(cp) == "active" and st(cb) == "passive", 15,
                   lambda: "P %s, B %s" % (ha_state(t, cp), ha_state(t, cb)))

    def satellite(name, first, second):
        port = free_port()
        c = t.write(name + ".conf",
                    "listen type linemode 127.0.0.1:%d proto tcp ;\n"
                    "orchester tcp://127.0.0.1:%d tcp://127.0.0.1:%d "
                    "timeout 1000 ms ;\n" % (port, first, second))
        s = t.satellite(name, c).start()
        t.wait_ready(s, tcp_ports=(port,))
        stream = SeqStream(port, 2000, chunk=20, name=name.encode())
        stream.start()
        t.on_cleanup(stream.stop.set)
        return stream

    s1 = satellite("s1", sp, sb)
    with t.check("the peer link cut only: no takeover while the satellites "
                 "reach the primary"):
        wait_until(lambda: len(nums(sink, b"s1.")) >= 2000, 30, "S1 through P")
        to_p.cut()
        to_b.cut()
        wait_until(lambda: ha_state(t, cb).get("peerAlive") == "0" and
                   ha_state(t, cp).get("peerAlive") == "0", 10,
                   "both to see the peer expire")
        mark = s1.sent
        wait_until(lambda: max(nums(sink, b"s1.")) >= mark + 4000, 30,
                   "4,000 more lines through P")
        require(st(cb) == "passive" and st(cp) == "active",
                "P %s, B %s" % (ha_state(t, cp), ha_state(t, cb)))
        require(ha_state(t, cb).get("failovers") == "0", "B took over")

    with t.check("split brain: a vote makes the backup active too; healed, "
                 "exactly one is active, the primary"):
        s2 = satellite("s2", sb, sp)
        wait_until(lambda: st(cb) == "active", 15, "B to be active")
        require(st(cp) == "active", "P is %s" % st(cp))
        wait_until(lambda: len(nums(sink, b"s2.")) >= 2000, 30, "S2 through B")
        to_p.heal()
        to_b.heal()
        wait_until(lambda: st(cb) == "passive" and st(cp) == "active", 15,
                   lambda: "P %s, B %s" % (ha_state(t, cp), ha_state(t, cb)))
        mark = s2.sent
        wait_until(lambda: max(nums(sink, b"s2.")) >= mark + 2000, 30,
                   "S2's lines through P")

    with t.check("every critical datapoint arrives, at least once"):
        n1, n2 = s1.finish(), s2.finish()
        for nm, n in ((b"s1.", n1), (b"s2.", n2)):
            wait_until(lambda: set(nums(sink, nm)) >= set(range(n)), 60,
                       "all %d %s lines" % (n, nm.decode()))
        dups = sum(len(nums(sink, nm)) - len(set(nums(sink, nm)))
                   for nm in (b"s1.", b"s2."))
        sys.stderr.write("# %d critical datapoints sent, all arrived, %d "
                         "duplicates\n" % (n1 + n2, dups))


Test().run(body)
