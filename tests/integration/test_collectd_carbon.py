#!/usr/bin/python3
"""
test_collectd_carbon.py -- collectd through orchester into a real carbon-cache.

collectd (1 s interval; cpu, load and memory plugins) writes with
write_graphite to orchester's linemode listener; orchester forwards to a
private carbon-cache (`cluster carbon forward 127.0.0.1:LINEPORT ;`).
Whisper files for collectd's series must appear under the carbon storage
dir, and python3-whisper must read datapoints from them with recent
timestamps and real values.
"""
import math
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     counter, GiveUp)

HOSTNAME = "orchtest"
LOAD = "collectd.%s.load.load.shortterm" % HOSTNAME
MEMORY = "collectd.%s.memory.memory-used" % HOSTNAME
RECENT = 300  # seconds: "recent" datapoints are at most this old


def recent_points(path, now):
    """(timestamp, value) pairs of a whisper file from the last RECENT s."""
    import whisper
    (start, _end, step), values = whisper.fetch(path, now - RECENT, now + 60)
    return [(start + i * step, v) for i, v in enumerate(values) if v is not None]


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
    with t.check("python3-whisper is available", fatal=True):
        import whisper  # noqa: F401

    with t.check("carbon-cache starts", fatal=True):
        carbon = t.carbon_cache()

    port = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster carbon forward 127.0.0.1:%d ;
match * send to carbon ;
""" % (port, control, carbon.line_port)
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", conf, control=control, tcp_ports=(port,))

    with t.check("collectd starts", fatal=True):
        cd = t.collectd(port, hostname=HOSTNAME)
        wait_until(lambda: t.status(control)["counters"].get("metricsReceived", 0) > 0
                   or not cd.proc.alive(), 30.0, "orchester to receive collectd's lines")
        require(cd.proc.alive(), "collectd exited with %s" % cd.proc.returncode)

    def alive():
        for p, name in ((orch, "orchester"), (carbon.proc, "carbon-cache")):
            if not p.alive():
                raise GiveUp("%s exited with %s" % (name, p.returncode))

    with t.check("whisper files for collectd's cpu, load and memory series appear"):
        def files():
            alive()
            names = set(carbon.whisper_files())
            return (LOAD in names and MEMORY in names
                    and any(n.startswith("collectd.%s.cpu-" % HOSTNAME) for n in names))
        wait_until(files, 60.0, "%s, %s and a cpu series under %s"
                   % (LOAD, MEMORY, carbon.whisper), interval=0.5)

    with t.check("whisper holds recent datapoints with real values"):
        box = {}

        def points():
            alive()
            now = time.time()
            box["load"] = recent_points(carbon.whisper_path(LOAD), now)
            box["mem"] = recent_points(carbon.whisper_path(MEMORY), now)
            cpu = sorted(n for n in carbon.whisper_files()
                         if n.startswith("collectd.%s.cpu-" % HOSTNAME)
                         and n.endswith("cpu-idle"))
            box["cpu"] = recent_points(carbon.whisper_path(cpu[0]), now) if cpu else []
            box["cpuname"] = cpu[0] if cpu else None
            return box["load"] and box["mem"] and box["cpu"]
        wait_until(points, 60.0, "datapoints in the whisper files", interval=1.0)
        now = time.time()
        for key, name in (("load", LOAD), ("mem", MEMORY), ("cpu", box["cpuname"])):
            pts = box[key]
            newest = max(ts for ts, _ in pts)
            require(now - RECENT <= newest <= now + 20,
                    "%s: newest datapoint at %d, now %d" % (name, newest, now))
            for ts, v in pts:
                require(isinstance(v, float) and math.isfinite(v),
                        "%s: value %r at %d" % (name, v, ts))
        require(all(v >= 0 for _, v in box["load"]), "load values %r" % box["load"])
        require(all(v > 0 for _, v in box["mem"]), "memory-used values %r" % box["mem"])
        require(all(0 <= v <= 101 for _, v in box["cpu"]),
                "%s values %r" % (box["cpuname"], box["cpu"]))
        sys.stderr.write("# %s %r\n# %s %r\n# %s %r\n" % (
            LOAD, box["load"][-3:], MEMORY, box["mem"][-3:], box["cpuname"], box["cpu"][-3:]))

    with t.check("orchester status: destination up, lines sent, nothing dropped"):
        st = t.status(control)
        d = st["destinations"].get(("carbon", "127.0.0.1:%d" % carbon.line_port))
        require(d is not None, "no destination carbon in %r" % st["destinations"])
        require(d.get("state") == "up", "state=%s" % d.get("state"))
        require(d.get("sent", 0) > 0, "sent=%s" % d.get("sent"))
        require(counter(st, "metricsDropped") == 0, "metricsDropped %d" % counter(st, "metricsDropped"))
        # collectd writes "nan" for a rate it cannot compute yet (the first
        # read of a counter); carbon drops those, and so does orchester
        pe = {k: v for k, v in st["counters"].items() if k.startswith("parseErrors.") and v}
        require(counter(st, "parseErrors") == counter(st, "parseErrors.nan"),
                "collectd's lines were refused: parseErrors %d, by reason %r"
                % (counter(st, "parseErrors"), pe))


if __name__ == "__main__":
    Test().run(body)
