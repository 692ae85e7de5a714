#!/usr/bin/python3
"""
test_failover.py -- any_of and failover clusters move a dead member's share
to the live members, and move it back when the member returns.

One orchester, real sinks:
  cluster any any_of S1 S2 S3 ;   match ^any\\. send to any stop ;
  cluster fo failover F1 F2 ;     match ^fo\\.  send to fo stop ;

any_of: 3000 distinct names go out; each arrives exactly once and all three
members get some (placement P).  S2 stops; once orchester-ctl status shows
it down, the same names go out again: none is lost, each arrives once, the
names P put on S1 and S3 stay there, and S2's names are spread over S1 and
S3.  S2 starts again on its port; once the status shows it up, the names go
out a third time and land exactly where P put them.

failover: everything goes to F1; with F1 down (status), everything goes to
F2; with F1 back (status), everything goes to F1 again.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, send_tcp, wait_until,  # noqa: E402
                     check_build, wait_status)

NANY = 3000
NFO = 1000


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    anys = [t.sink() for _ in range(3)]
    fos = [t.sink() for _ in range(2)]
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster any any_of
    127.0.0.1:%d
    127.0.0.1:%d
    127.0.0.1:%d
    ;
cluster fo failover 127.0.0.1:%d 127.0.0.1:%d ;
match ^any\\. send to any stop ;
match ^fo\\. send to fo stop ;
""" % ((port, control) + tuple(s.port for s in anys) + tuple(s.port for s in fos))

    any_keys = [("any", "127.0.0.1:%d" % s.port) for s in anys]
    fo_keys = [("fo", "127.0.0.1:%d" % s.port) for s in fos]

    def states(st, keys):
        out = []
        for k in keys:
            d = st["destinations"].get(k)
            if d is None:
                raise AssertionError("no destination %s %s in the status" % k)
            out.append(d.get("state"))
        return out

    with t.check("orchester starts; every member shows state=up", fatal=True):
        t.start_orchester("orchester", conf, control=control, tcp_ports=(port,))
        wait_status(t.build, control, 30.0, "all five destinations up",
                    lambda st: states(st, any_keys + fo_keys) == ["up"] * 5)

    ts = int(time.time()) - 600

    def send_round(prefix, n, rnd):
        """Send prefix.nNNNN with value rnd (the round) for every name."""
        data = b"".join(b"%s.n%05d %d %d\n" % (prefix, i, rnd, ts + rnd)
                        for i in range(n))
        errs = send_tcp(port, [data])
        require(not errs, "; ".join(errs))

    def arrivals(sinks, prefix, n, rnd, timeout):
        """Wait until every name of round rnd arrived at one of sinks (any
        number of times); return {sink index: [names in arrival order]}."""
        tail = b" %d %d" % (rnd, ts + rnd)
        pre = prefix + b"."

        def collect():
            got = {}
            for k, s in enumerate(sinks):
                got[k] = [ln.split(b" ", 1)[0] for ln in s.snapshot()
                          if ln.startswith(pre) and ln.endswith(tail)]
            return got

        def complete():
            seen = set()
            for names in collect().values():
                seen.update(names)
            return len(seen) >= n

        wait_until(complete, timeout,
                   lambda: "all %d round-%d %s names at the sinks (have %d)" % (
                       n, rnd, prefix.decode(),
                       len(set().union(*collect().values()))))
        return collect()

    def once_each(got, n, prefix):
        """Every name exactly once over all sinks; returns name -> sink."""
        where = {}
        dups = []
        for k, names in got.items():
            for nm in names:
                if nm in where:
                    dups.append(nm)
                where[nm] = k
        expected = {b"%s.n%05d" % (prefix, i) for i in range(n)}
        missing = expected - set(where)
        extra = set(where) - expected
        require(not missing, "%d names missing, e.g. %r" % (len(missing), sorted(missing)[:3]))
        require(not extra, "unexpected names %r" % sorted(extra)[:3])
        require(not dups, "%d names arrived more than once, e.g. %r" % (len(dups), dups[:3]))
        return where

    # ---- any_of ------------------------------------------------------------
    placement = {}
    with t.check("any_of: %d names, each once, all three members get some" % NANY,
                 fatal=True):
        send_round(b"any", NANY, 1)
        got = arrivals(anys, b"any", NANY, 1, 30.0)
        placement.update(once_each(got, NANY, b"any"))
        counts = [len(got[k]) for k in range(3)]
        require(all(c > 0 for c in counts), "per member: %s" % counts)

    dead = 1
    with t.check("any_of: member 2 stopped, status shows it down and the others up",
                 fatal=True):
        anys[dead].stop()
        wait_status(t.build, control, 30.0, "member 2 state=down, 1 and 3 up",
                    lambda st: states(st, any_keys) == ["up", "down", "up"])

    with t.check("any_of: with member 2 down none is lost; live members keep "
                 "their names and share member 2's"):
        send_round(b"any", NANY, 2)
        got = arrivals([anys[0], anys[2]], b"any", NANY, 2, 30.0)
        where2 = once_each({0: got[0], 2: got[1]}, NANY, b"any")
        moved_wrong = [nm for nm, k in where2.items()
                       if placement[nm] != dead and placement[nm] != k]
        require(not moved_wrong, "%d names of a live member went elsewhere, e.g. %r"
                % (len(moved_wrong), moved_wrong[:3]))
        orphans = [nm for nm, k in placement.items() if k == dead]
        share = [sum(1 for nm in orphans if where2[nm] == k) for k in (0, 2)]
        require(all(c > 0 for c in share),
                "member 2's %d names went to members 1 and 3 as %s; expected both "
                "to take some" % (len(orphans), share))

    with t.check("any_of: member 2 back on its port, status shows it up", fatal=True):
        anys[dead].start()
        wait_status(t.build, control, 30.0, "member 2 state=up",
                    lambda st: states(st, any_keys) == ["up", "up", "up"])

    with t.check("any_of: with member 2 back every name goes where it went first"):
        send_round(b"any", NANY, 3)
        got = arrivals(anys, b"any", NANY, 3, 30.0)
        where3 = once_each(got, NANY, b"any")
        diff = [nm for nm in where3 if where3[nm] != placement[nm]]
        require(not diff, "%d names placed differently than in round 1, e.g. %r "
                "(round 1: member %d, now: member %d)" % (
                    len(diff), diff[:1], placement[diff[0]] + 1 if diff else 0,
                    where3[diff[0]] + 1 if diff else 0))

    # ---- failover ----------------------------------------------------------
    with t.check("failover: with both members up everything goes to the first"):
        send_round(b"fo", NFO, 1)
        got = arrivals(fos, b"fo", NFO, 1, 30.0)
        once_each(got, NFO, b"fo")
        require(len(got[1]) == 0, "%d names went to the second member" % len(got[1]))

    with t.check("failover: first member stopped, status shows it down", fatal=True):
        fos[0].stop()
        wait_status(t.build, control, 30.0, "first member state=down, second up",
                    lambda st: states(st, fo_keys) == ["down", "up"])

    with t.check("failover: with the first member down everything goes to the "
                 "second, none lost"):
        send_round(b"fo", NFO, 2)
        got = arrivals([fos[1]], b"fo", NFO, 2, 30.0)
        once_each(got, NFO, b"fo")

    with t.check("failover: first member back on its port, status shows it up",
                 fatal=True):
        fos[0].start()
        wait_status(t.build, control, 30.0, "first member state=up",
                    lambda st: states(st, fo_keys) == ["up", "up"])

    with t.check("failover: with the first member back everything goes to it again"):
        send_round(b"fo", NFO, 3)
        got = arrivals(fos, b"fo", NFO, 3, 30.0)
        once_each(got, NFO, b"fo")
        require(len(got[1]) == 0, "%d names still went to the second member" % len(got[1]))


if __name__ == "__main__":
    Test().run(body)
