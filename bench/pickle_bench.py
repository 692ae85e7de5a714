#!/usr/bin/python3
"""pickle_bench.py -- orchester's pickle ingest throughput.

orchester listens with `listen type pickle` and forwards every datapoint as
a plaintext line to one linesink (BUILD/tests/linesink).  CONNS copies of
pickle_gen (BUILD/tests/pickle_gen, protocol-2 frames of POINTS datapoints,
memoized as Python's pickler writes them) send DATAPOINTS datapoints in
all, at the same time, as fast as orchester reads them.  When pickle_gen is
not built, it is compiled from tests/tools/pickle_gen.c with gcc -O2 into
the run's temp dir.

For each run it prints:

  throughput   datapoints/s, from the moment the senders start to the last
               line at the sink (end to end: decode, route, send)
  cpu/M        orchester's CPU seconds (user+system, /proc/PID/stat) per
               million datapoints
  peak rss     orchester's peak resident memory (VmHWM)
  delivered    lines the sink counted

then the best run.  Run it from the top of the source tree after building:

  bench/pickle_bench.py [--build DIR] [--datapoints N] [--conns C]
                        [--points P] [--runs R] [--queue Q]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port, proc_cpu, proc_hwm_kb  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))










def find_pickle_gen(build, tmp):
    """BUILD/tests/pickle_gen, or one compiled here from its source."""
    p = os.path.join(build, "tests", "pickle_gen")
    if os.access(p, os.X_OK):
        return p
    src = os.path.join(TOP, "tests", "tools", "pickle_gen.c")
    out = os.path.join(tmp, "pickle_gen")
    print("bench: %s is not built; compiling %s" % (p, src), flush=True)
    subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-o", out, src], check=True)
    return out


def stop(p, timeout=15.0):
    if p.poll() is not None:
        return p.returncode
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def run_one(a, orch, linesink, pgen, tmp, run):
    n_frames = a.datapoints // (a.points * a.conns)      # per connection
    total = n_frames * a.points * a.conns
    sink_port, relay_port = free_port(), free_port()
    conf = os.path.join(tmp, "orchester.conf")
    with open(conf, "w") as f:
        f.write("listen type pickle 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "match * send to sink ;\n"
                "statistics submit every 3600 seconds ;\n" % (relay_port, sink_port))
    sink = subprocess.Popen([linesink, str(sink_port), str(total), "300", "10"],
                            stdout=subprocess.PIPE, text=True)
    log = open(os.path.join(tmp, "orchester.%d.log" % run), "w")
    relay = None
    gens = []
    try:
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("linesink did not start")
        relay = subprocess.Popen([orch, "-f", conf, "-q", str(a.queue)],
                                 stdout=log, stderr=log)
        if not wait_port(relay_port, relay):
            raise RuntimeError("orchester did not listen on %d (see %s)"
                               % (relay_port, log.name))
        cpu0 = proc_cpu(relay.pid)
        t0 = time.monotonic()
        for _ in range(a.conns):
            gens.append(subprocess.Popen(
                [pgen, "127.0.0.1", str(relay_port), str(n_frames), str(a.points)],
                stderr=subprocess.PIPE, text=True))
        gen_err = []
        for g in gens:
            _, err = g.communicate(timeout=600)
            gen_err.append(err.strip())
            if g.returncode != 0:
                raise RuntimeError("pickle_gen exited with %d: %s" % (g.returncode, err))
        t_sent = time.monotonic()
        out = sink.communicate(timeout=320)[0].split()
        t1 = time.monotonic()
        cpu = proc_cpu(relay.pid) - cpu0
        hwm = proc_hwm_kb(relay.pid)
    finally:
        for g in gens:
            if g.poll() is None:
                g.kill()
                g.wait()
        if relay is not None:
            stop(relay)
        if sink.poll() is None:
            sink.kill()
            sink.wait()
        log.close()
    got = int(out[1])
    wall = t1 - t0
    if got < total and len(out) > 3 and out[3] == "idle":
        wall -= 10.0        # linesink waited IDLE seconds after the last line
    return {"throughput": got / wall, "cpu_per_m": cpu / (max(got, 1) / 1e6),
            "rss_mb": hwm / 1024.0, "delivered": got, "total": total,
            "wall": wall, "send_s": t_sent - t0, "gen": gen_err}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=TOP, help="build directory (default: the tree)")
    ap.add_argument("--datapoints", type=int, default=4000000)
    ap.add_argument("--conns", type=int, default=2, help="pickle_gen connections")
    ap.add_argument("--points", type=int, default=500, help="datapoints per frame")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--queue", type=int, default=100000, help="orchester -q")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    orch = os.path.join(build, "relay", "orchester")
    linesink = os.path.join(build, "tests", "linesink")
    for p in (orch, linesink):
        if not os.access(p, os.X_OK):
            sys.exit("bench: %s is not built" % p)
    tmp = tempfile.mkdtemp(prefix="orchester-pickle-bench-")
    results = []
    try:
        pgen = find_pickle_gen(build, tmp)
        for run in range(a.runs):
            r = run_one(a, orch, linesink, pgen, tmp, run)
            results.append(r)
            print("run %d: %10.0f datapoints/s  %6.3f cpu-s/M  %7.1f MB peak  "
                  "%d/%d delivered  (%.2f s; senders done after %.2f s)"
                  % (run + 1, r["throughput"], r["cpu_per_m"], r["rss_mb"],
                     r["delivered"], r["total"], r["wall"], r["send_s"]), flush=True)
            for e in r["gen"]:
                print("        " + e)
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("bench: kept", tmp)
    best = max(results, key=lambda r: r["throughput"])
    med = sorted(results, key=lambda r: r["throughput"])[len(results) // 2]
    print()
    print("machine: %d cores; orchester pickle listener -> one forward destination "
          "(linesink), queue %d" % (os.cpu_count(), a.queue))
    print("workload: %d datapoints in protocol-2 frames of %d over %d connections, "
          "%d runs" % (best["total"], a.points, a.conns, a.runs))
    print("  %-8s %14s %10s %10s %12s" % ("", "datapoints/s", "cpu-s/M", "peak MB",
                                          "delivered"))
    for what, r in (("best", best), ("median", med)):
        print("  %-8s %14.0f %10.3f %10.1f %12d" % (what, r["throughput"], r["cpu_per_m"],
                                                    r["rss_mb"], r["delivered"]))
    if any(r["delivered"] < r["total"] for r in results):
        print("bench: some runs lost datapoints", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
