#!/usr/bin/python3
"""ha_bench.py -- the HA pair's figures: failover time, duplicates per
failover, and what the pair costs on the hot path.

Failover: a primary and a backup (heartbeat HEARTBEAT ms, one Redis, one
sink), a standalone satellite (`orchester P B timeout SAT_TIMEOUT ms`)
streaming critical datapoints at RATE a second.  KILLS times: the active
member is killed (SIGKILL); the time until the other says `active` is the
failover time; once lines flow again the killed member is started again
(it becomes passive).  At the end every datapoint sent must be at the sink:
the duplicates divided by KILLS are the duplicates per failover.

Hot path: lineblast floods LINES ordinary lines into the embedded listener
of (a) a single orchester and (b) the active member of a pair (its backup
running); the active member's CPU seconds per million datapoints, (b)/(a).

Run from the top of the built tree:  bench/ha_bench.py [--kills N]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from benchlib import free_port, wait_port, proc_cpu  # noqa: E402
from harness import Proc, Redis, Sink, SeqStream, lines_with_prefix, run  # noqa: E402

TOP = os.path.dirname(HERE)


def ha_state(ctl, ep):
    rc, out, _, _ = run([ctl, "-e", ep, "ha"], 10)
    if rc != 0:
        return {}
    return dict(kv.split("=", 1) for kv in out.split()[2:] if "=" in kv)


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.01)
    raise SystemExit("ha_bench: timed out waiting for %s" % what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=TOP)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--heartbeat", type=int, default=250)
    ap.add_argument("--sat-timeout", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--lines", type=int, default=2000000)
    a = ap.parse_args()
    orch = os.path.join(a.build, "relay", "orchester")
    sat = os.path.join(a.build, "relay", "satellite")
    ctl = os.path.join(a.build, "relay", "orchester-ctl")
    tools = os.path.join(a.build, "tests")
    tmp = tempfile.mkdtemp(prefix="orchester-habench-")
    procs = []
    try:
        redis = Redis(tmp)
        procs.append(redis.proc)
        redis.start()
        sink = Sink().start()
        sp, sb, hp, hb, lp, lb = (free_port() for _ in range(6))
        ctls = {"p": "ipc://" + os.path.join(tmp, "ctl-p"),
                "b": "ipc://" + os.path.join(tmp, "ctl-b")}

        def conf(name, role, sat_, pub, ppub, psat, listen, with_ha=True):
            c = ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                 "satellites bind tcp://127.0.0.1:%d ;\n" % (listen, sat_))
            if with_ha:
                c += ("ha %s publish tcp://127.0.0.1:%d peer tcp://127.0.0.1:%d "
                      "tcp://127.0.0.1:%d heartbeat %d ms ;\n"
                      % (role, pub, ppub, psat, a.heartbeat))
            c += ("control %s ;\ncluster sink forward 127.0.0.1:%d ;\n"
                  "buffer redis %s prefix habench ;\n"
                  "match ^crit critical send to sink stop ;\n"
                  "match * send to sink ;\n"
                  "statistics submit every 3600 seconds ;\n"
                  % (ctls[name], sink.port, redis.target))
            path = os.path.join(tmp, "%s%s.conf" % (name, "" if with_ha else "-single"))
            with open(path, "w") as f:
                f.write(c)
            return path

        confs = {"p": conf("p", "primary", sp, hp, hb, sb, lp),
                 "b": conf("b", "backup", sb, hb, hp, sp, lb)}
        members = {}

        def start(name):
            p = Proc(name, [orch, "-f", confs[name]], tmp)
            procs.append(p)
            p.start()
            wait(lambda: ha_state(ctl, ctls[name]).get("state") is not None, 30,
                 "%s to answer" % name)
            members[name] = p

        start("p")
        start("b")
        wait(lambda: ha_state(ctl, ctls["p"]).get("state") == "active", 15,
             "the primary to be active")
        sport = free_port()
        sconf = os.path.join(tmp, "sat.conf")
        with open(sconf, "w") as f:
            f.write("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                    "orchester tcp://127.0.0.1:%d tcp://127.0.0.1:%d timeout %d ms ;\n"
                    % (sport, sp, sb, a.sat_timeout))
        s = Proc("satellite", [sat, "-f", sconf], tmp)
        procs.append(s)
        s.start()
        wait(lambda: wait_port(sport, timeout=0.2), 20, "the satellite")
        stream = SeqStream(sport, a.rate, chunk=25, name=b"crit")
        stream.start()

        def top():
            n = [int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(), b"crit.")]
            return max(n) if n else -1

        wait(lambda: top() >= a.rate, 30, "the stream to flow")
        times = []
        for k in range(a.kills):
            active = "p" if ha_state(ctl, ctls["p"]).get("state") == "active" else "b"
            other = "b" if active == "p" else "p"
            t0 = time.monotonic()
            members[active].crash()
            wait(lambda: ha_state(ctl, ctls[other]).get("state") == "active", 30,
                 "the other member to be active")
            times.append(time.monotonic() - t0)
            mark = stream.sent
            wait(lambda: top() >= mark + a.rate // 2, 30, "lines to flow again")
            start(active)
            wait(lambda: ha_state(ctl, ctls[active]).get("state") == "passive", 30,
                 "the restarted member to be passive")
            print("kill %d: %s killed, %s active after %.3f s" % (
                k + 1, active, other, times[-1]), flush=True)
        n = stream.sent
        stream.stop.set()
        stream.done.wait(30)
        n = stream.sent
        wait(lambda: len({int(l.split()[1]) for l in lines_with_prefix(
            sink.snapshot(), b"crit.")}) >= n, 120, "every datapoint")
        got = [int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(), b"crit.")]
        dups = len(got) - len(set(got))
        missing = n - len(set(got) & set(range(n)))
        print()
        print("failover over %d kills (heartbeat %d ms, satellites' timeout %d ms): "
              "median %.3f s, max %.3f s, min %.3f s" % (
                  a.kills, a.heartbeat, a.sat_timeout, statistics.median(times),
                  max(times), min(times)))
        print("critical datapoints: %d sent, %d missing, %d duplicates (%.1f per "
              "failover)" % (n, missing, dups, dups / max(a.kills, 1)))
        for p in list(members.values()) + [s]:
            p.stop()

        # -- the hot path: single vs the active member of a pair ----------
        def flood(listen, pid):
            cpu0 = proc_cpu(pid)
            t0 = time.time()
            sink.clear()
            subprocess.run([os.path.join(tools, "lineblast"), "127.0.0.1",
                            str(listen), "4", str(a.lines // 4), "bench"], check=True)
            wait(lambda: len(sink.snapshot()) >= a.lines, 300, "the flood")
            return (proc_cpu(pid) - cpu0) / (a.lines / 1e6), a.lines / (time.time() - t0)

        single = Proc("single", [orch, "-f", conf("p", "primary", sp, hp, hb, sb, lp,
                                                   with_ha=False)], tmp)
        procs.append(single)
        single.start()
        wait(lambda: wait_port(lp, timeout=0.2), 30, "the single orchester")
        c1, r1 = flood(lp, single.pid)
        single.stop()
        start("p")
        start("b")
        wait(lambda: ha_state(ctl, ctls["p"]).get("state") == "active", 15,
             "the primary to be active")
        c2, r2 = flood(lp, members["p"].pid)
        print("hot path, %d ordinary lines into the embedded listener: single "
              "%.3f cpu-s/M (%.0f/s), pair's active member %.3f cpu-s/M (%.0f/s): "
              "%.2fx" % (a.lines, c1, r1, c2, r2, c2 / c1))
    finally:
        for p in procs:
            try:
                p.stop()
            except Exception:
                pass
        try:
            sink.stop(hold=False)
        except Exception:
            pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
