#!/usr/bin/python3
# suite: alone
"""
test_ha_pair.py -- two orchesters as one relay: the binary-star pair.

A primary P and a backup B (`ha primary|backup publish ... peer ...
heartbeat 250 ms`), both buffering into one Redis and forwarding to one
sink; two standalone satellites (`orchester tcp://P tcp://B timeout 1000
ms`) stream critical datapoints (crita.N, critb.N) through the pair.

1. At start P is active and B passive (`orchester-ctl ha`), and the data
   flows through P.
2. P is killed (SIGKILL) mid-stream: B is active within 3 s (the time is
   printed), and the data keeps flowing through B.
3. P is started again: it becomes passive, and traffic is undisturbed.
4. A client of P's embedded satellite (P passive): its lines reach the sink
   through the active member B.
5. `orchester-ctl ha failback` on B: B passive, P active again; the data
   flows on.
6. Every critical datapoint the clients sent arrives, at least once; the
   duplicates are counted and printed.  The failover counters say what
   happened.

Runtime rerouting (`orchester-ctl route`), across the same life:
- a rule added on the active P (`match ^moved\. send to moved stop`)
  reaches the passive B over the pair's link (its `route list` shows it,
  and its routes file holds it); B refuses changes while it is passive;
- after P is killed, B routes by it (moved.* lines into B's listener go to
  the second sink);
- once both are stopped and started again, each routes by it (lines into
  each member's listener; `route list` on both).

Aggregation in a pair: agg.* datapoints (current timestamps) stream
through satellite A across the kill, the restart and the failback into
`aggregate ^agg\. every 1 seconds ... compute count write to aggc`: only
the active member aggregates, so no bucket is emitted twice (each (aggc,
timestamp) once at the sink), and the counts never exceed what was sent.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, lines_with_prefix, ctl, send_tcp)

HEARTBEAT = 250


def ha_state(t, control):
    rc, out, err, _ = ctl(t.build, ["-e", control, "ha"])
    if rc != 0:
        return None
    f = dict(kv.split("=", 1) for kv in out.split()[2:] if "=" in kv)
    return f


def nums(sink, prefix):
    return [int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(), prefix)]


RULE = "match ^moved\\. send to moved stop"


def routes_of(t, control):
    rc, out, err, _ = ctl(t.build, ["-e", control, "route", "list"])
    return out if rc == 0 else ""


def moved_through(t, moved, port, tag, n=200):
    """n lines moved.TAG.I into port all reach the moved sink."""
    name = b"moved." + tag
    s = SeqStream(port, 10 ** 9, chunk=50, limit=n, name=name)
    s.start()
    wait_until(lambda: set(nums(moved, name + b".")) >= set(range(n)), 30,
               lambda: "the %s lines at the moved sink (%d there)"
               % (tag.decode(), len(set(nums(moved, name + b".")))))


def body(t):
    check_build(t.build)
    redis = t.redis()
    sink = t.sink()
    moved = t.sink()
    sp, sb, hp, hb, lp, lb = (free_port() for _ in range(6))
    cp = "ipc://" + t.tmp.join("ctl-p")
    cb = "ipc://" + t.tmp.join("ctl-b")

    def conf(role, sat, pub, peer_pub, peer_sat, listen, control):
        return ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                "satellites bind tcp://127.0.0.1:%d ;\n"
                "ha %s publish tcp://127.0.0.1:%d\n"
                "    peer tcp://127.0.0.1:%d tcp://127.0.0.1:%d\n"
                "    heartbeat %d ms ;\n"
                "control %s ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "cluster moved forward 127.0.0.1:%d ;\n"
                "buffer redis %s prefix ha ;\n"
                "aggregate ^agg\\. every 1 seconds expire after 2 seconds\n"
                "    compute count write to aggc send to sink stop ;\n"
                "match ^crit critical send to sink stop ;\n"
                "match * send to sink ;\n"
                % (listen, sat, role, pub, peer_pub, peer_sat, HEARTBEAT,
                   control, sink.port, moved.port, redis.target))

    pconf = conf("primary", sp, hp, hb, sb, lp, cp)
    bconf = conf("backup", sb, hb, hp, sp, lb, cb)
    rp, rb = t.tmp.join("routes-p"), t.tmp.join("routes-b")
    p = t.start_orchester("primary", pconf, opts=("-r", rp), control=cp,
                          tcp_ports=(lp,))
    b = t.start_orchester("backup", bconf, opts=("-r", rb), control=cb,
                          tcp_ports=(lb,))

    with t.check("at start the primary is active and the backup passive",
                 fatal=True):
        wait_until(lambda: (ha_state(t, cp) or {}).get("state") == "active" and
                   (ha_state(t, cb) or {}).get("state") == "passive", 15,
                   lambda: "P %s, B %s" % (ha_state(t, cp), ha_state(t, cb)))

    with t.check("a route added on the active member reaches the passive one, "
                 "which refuses changes of its own"):
        rc, out, err, _ = ctl(t.build, ["-e", cp, "route", "add", "1", RULE])
        require(rc == 0 and out.startswith("ok"), "route add: %s %s"
                % (out, err))
        moved_through(t, moved, lp, b"p1")
        wait_until(lambda: RULE in routes_of(t, cb), 10,
                   lambda: "B's rules: %s" % routes_of(t, cb))
        require(RULE in open(rb).read(), "B's routes file: %r"
                % open(rb).read())
        rc, out, err, _ = ctl(t.build, ["-e", cb, "route", "clear"])
        require(rc == 1 and "not active" in out, "B took a change: %s" % out)
        require(RULE in routes_of(t, cb), "B lost the rule")

    sats, streams, sat_ports = [], [], []
    for name in (b"crita", b"critb"):
        port = free_port()
        sconf = t.write(name.decode() + ".conf",
                        "listen type linemode 127.0.0.1:%d proto tcp ;\n"
                        "orchester tcp://127.0.0.1:%d tcp://127.0.0.1:%d "
                        "timeout 1000 ms ;\n" % (port, sp, sb))
        s = t.satellite(name.decode(), sconf).start()
        t.wait_ready(s, tcp_ports=(port,))
        sats.append(s)
        sat_ports.append(port)
        streams.append(SeqStream(port, 2000, chunk=20, name=name))
    for s in streams:
        s.start()
        t.on_cleanup(s.stop.set)
    agg_stop = threading.Event()
    agg_sent = {}  # second -> agg lines sent with that timestamp

    def agg_stream():
        while not agg_stop.is_set():
            ts = int(time.time())
            if send_tcp(sat_ports[0], [b"agg.x 1 %d\n" % ts] * 1):
                return
            agg_sent[ts] = agg_sent.get(ts, 0) + 1
            time.sleep(0.02)  # pacing the client, not timing a check
    agg_th = threading.Thread(target=agg_stream, daemon=True)
    agg_th.start()
    t.on_cleanup(agg_stop.set)

    def flowing(what, n=2000):
        """Both streams' lines sent from now on arrive."""
        marks = [s.sent for s in streams]
        wait_until(lambda: all(max(nums(sink, nm + b".") or [-1]) >= m + n
                               for nm, m in zip((b"crita", b"critb"), marks)),
                   30, what)

    with t.check("the data flows through the primary", fatal=True):
        flowing("lines through P")
        require(counter(t.status(cp), "satellites.batches") > 0,
                "P took no batches")

    with t.check("the primary killed: the backup is active within 3 s, and "
                 "the data flows through it"):
        t0 = time.monotonic()
        p.crash()
        wait_until(lambda: (ha_state(t, cb) or {}).get("state") == "active",
                   10, "B to be active")
        took = time.monotonic() - t0
        sys.stderr.write("# the backup was active %.2f s after the kill\n" % took)
        require(took <= 3.0, "it took %.2f s" % took)
        flowing("lines through B")

    with t.check("after the failover the backup routes by the rule added on "
                 "the primary"):
        moved_through(t, moved, lb, b"b1")

    with t.check("the primary restarted becomes passive; traffic is "
                 "undisturbed"):
        p = t.start_orchester("primary-again", pconf, opts=("-r", rp),
                              control=cp, tcp_ports=(lp,))
        wait_until(lambda: (ha_state(t, cp) or {}).get("state") == "passive",
                   10, lambda: "P to be passive: %s" % ha_state(t, cp))
        flowing("lines after P's restart")
        require((ha_state(t, cb) or {}).get("state") == "active", "B not active")

    with t.check("a client of the passive member's embedded satellite: its "
                 "lines reach the sink through the active member"):
        lines = SeqStream(lp, 10 ** 9, chunk=100, limit=1000, name=b"viap")
        lines.start()
        wait_until(lambda: set(nums(sink, b"viap.")) >= set(range(1000)), 30,
                   "the lines sent to P's listener")

    with t.check("failback by hand: the backup hands back, the primary is "
                 "active, the data flows on"):
        rc, out, err, _ = ctl(t.build, ["-e", cb, "ha", "failback"])
        require(rc == 0, "failback: %s %s" % (out, err))
        wait_until(lambda: (ha_state(t, cp) or {}).get("state") == "active" and
                   (ha_state(t, cb) or {}).get("state") == "passive", 10,
                   lambda: "P %s, B %s" % (ha_state(t, cp), ha_state(t, cb)))
        flowing("lines after the failback")

    with t.check("aggregation in a pair: no bucket emitted twice, no count "
                 "above what was sent"):
        agg_stop.set()
        agg_th.join()
        last = max(agg_sent)
        wait_until(lambda: any(int(l.split()[2]) >= last + 1 for l in
                               lines_with_prefix(sink.snapshot(), b"aggc ")),
                   15, "the last bucket of aggc")
        out = [(int(l.split()[2]), int(float(l.split()[1])))
               for l in lines_with_prefix(sink.snapshot(), b"aggc ")]
        stamps = [ts for ts, _ in out]
        dup = sorted(set(ts for ts in stamps if stamps.count(ts) > 1))
        require(not dup, "buckets emitted twice: %r" % dup[:10])
        over = [(ts, n, agg_sent.get(ts - 1, 0)) for ts, n in out
                if n > agg_sent.get(ts - 1, 0)]
        require(not over, "counts above what was sent: %r" % over[:10])
        sys.stderr.write("# aggregation: %d agg datapoints sent over %d s; "
                         "%d buckets emitted, counting %d (the rest went "
                         "with the killed member or the handed-back "
                         "buckets)\n"
                         % (sum(agg_sent.values()), len(agg_sent), len(out),
                            sum(n for _, n in out)))

    with t.check("every critical datapoint the clients sent arrives, at least "
                 "once"):
        sent = [s.finish() for s in streams]
        for nm, n in zip((b"crita", b"critb"), sent):
            wait_until(lambda: set(nums(sink, nm + b".")) >= set(range(n)), 60,
                       "all %d %s lines" % (n, nm.decode()))
        dups = sum(len(nums(sink, nm + b".")) - len(set(nums(sink, nm + b".")))
                   for nm in (b"crita", b"critb"))
        sb_ = ha_state(t, cb)
        sys.stderr.write("# %d critical datapoints sent, all arrived, %d "
                         "duplicates; the backup's failovers: %s\n"
                         % (sum(sent), dups, sb_.get("failovers")))
        require(int(sb_.get("failovers", 0)) >= 1, "B counted no failover")


    with t.check("both members stopped and started again: each routes by the "
                 "rule"):
        for s_ in sats:
            s_.stop()
        p.stop()
        b.stop()
        p = t.start_orchester("primary-3", pconf, opts=("-r", rp), control=cp,
                              tcp_ports=(lp,))
        b = t.start_orchester("backup-3", bconf, opts=("-r", rb), control=cb,
                              tcp_ports=(lb,))
        wait_until(lambda: (ha_state(t, cp) or {}).get("state") == "active" and
                   (ha_state(t, cb) or {}).get("state") == "passive", 15,
                   lambda: "P %s, B %s" % (ha_state(t, cp), ha_state(t, cb)))
        for c in (cp, cb):
            require(RULE in routes_of(t, c), "%s: %s" % (c, routes_of(t, c)))
        moved_through(t, moved, lp, b"p2")
        moved_through(t, moved, lb, b"b2")
        # P, active, routed both; with P stopped, B's embedded satellite
        # turns to B, whose vote makes it active: B routes them
        p.stop()
        moved_through(t, moved, lb, b"b3")
        require((ha_state(t, cb) or {}).get("state") == "active",
                "B: %s" % ha_state(t, cb))
        require(not lines_with_prefix(sink.snapshot(), b"moved."),
                "moved lines at the first sink")


Test().run(body)
