#!/usr/bin/python3
# suite: alone
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
4. A lone primary (heartbeat 2000 ms) that starts while a satellite sends:
   until its peer expires it is not active and refuses the batches
   (BATCH_NACK); the satellite sends them again every 250 ms, and they all
   arrive long before its 10 s timeout would have resent them.
"""
import os
import sys
import time

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


    # -- a lone primary starting while a satellite sends ---------------------
    with t.check("a lone primary refuses batches until it is active, the "
                 "satellite sends them again, and they arrive before its "
                 "timeout would have"):
        lp, lh, lsat = free_port(), free_port(), free_port()
        lc = "ipc://" + t.tmp.join("ctl-lone")
        t.start_orchester("lone", "satellites bind tcp://127.0.0.1:%d ;\n"
                          "ha primary publish tcp://127.0.0.1:%d peer "
                          "tcp://127.0.0.1:%d tcp://127.0.0.1:%d heartbeat "
                          "2000 ms ;\ncontrol %s ;\n"
                          "cluster sink forward 127.0.0.1:%d ;\n"
                          "buffer redis %s prefix lone ;\n"
                          "match * critical send to sink ;\n"
                          % (lp, lh, free_port(), free_port(), lc, sink.port,
                             redis.target), control=lc)
        port = free_port()
        sctl = "ipc://" + t.tmp.join("ctl-s3")
        c = t.write("s3.conf", "listen type linemode 127.0.0.1:%d proto tcp ;\n"
                    "orchester tcp://127.0.0.1:%d timeout 10000 ms ;\n"
                    "control %s ;\n" % (port, lp, sctl))
        s3 = t.satellite("s3", c).start()
        t.wait_ready(s3, tcp_ports=(port,))
        t0 = time.monotonic()
        stream = SeqStream(port, 10 ** 9, chunk=100, limit=4000, name=b"s3")
        stream.start()
        wait_until(lambda: set(nums(sink, b"s3.")) >= set(range(4000)), 9,
                   "all 4000 lines within 9 s (the satellite's timeout is 10 s)")
        took = time.monotonic() - t0
        out = ctl(t.build, ["-e", sctl, "status"])[1]
        refused = int(out.split("counter refused ")[1].split()[0]) if \
            "counter refused " in out else 0
        sys.stderr.write("# lone primary: all lines %.1f s after the start; "
                         "%d batches refused first\n" % (took, refused))
        require(refused > 0, "no batch was refused: %s" % out)


Test().run(body)
