#!/usr/bin/python3
"""bench.py -- orchester's plaintext throughput, next to carbon-c-relay's.

Both relays get the same workloads on this machine, one after the other:
lineblast sends carbon plaintext lines over CONNS TCP connections to the
relay's listener; the relay forwards everything to one linesink.

  flood   LINES lines as fast as the relay reads them (maximum throughput;
          a relay that drops under the flood shows it in `delivered`)
  paced   RATE lines/s per connection for PACED_LINES lines (the CPU and
          memory a steady load costs, at a rate both relays sustain)
  rules   as paced, but the config has RULES match rules with anchored
          expressions that these names do not match before the one that
          does (the cost of rule evaluation: orchester's prefix index,
          carbon-c-relay's rule optimiser)

For each relay and workload it prints:

  throughput   datapoints/s, from the first line sent to the last received
  cpu/M        the relay's CPU seconds (user+system) per million datapoints
  peak rss     the relay's peak resident memory (VmHWM)
  delivered    datapoints the sink received

and the ratio orchester / carbon-c-relay.  Run it from the top of the
source tree after building:  bench/bench.py [--lines N] [--conns C] [--runs R]
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










def run_one(name, argv_fn, conf_fn, tools, lines, conns, tmp, rate=0):
    sink_port, relay_port = free_port(), free_port()
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write(conf_fn(relay_port, sink_port))
    sink = subprocess.Popen([os.path.join(tools, "linesink"), str(sink_port),
                             str(lines), "300", "5"],
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout.readline().strip() == "ready"
    log = open(os.path.join(tmp, name + ".log"), "w")
    relay = subprocess.Popen(argv_fn(conf), stdout=log, stderr=log)
    try:
        if not wait_port(relay_port):
            raise RuntimeError("%s did not listen on %d" % (name, relay_port))
        cpu0 = proc_cpu(relay.pid)
        t0 = time.time()
        env = dict(os.environ)
        if rate:
            env["LINEBLAST_RATE"] = str(rate)
        subprocess.run([os.path.join(tools, "lineblast"), "127.0.0.1",
                        str(relay_port), str(conns), str(lines // conns),
                        "bench"], check=True, env=env)
        out = sink.communicate(timeout=320)[0].split()
        t1 = time.time()
        got = int(out[1])
        cpu = proc_cpu(relay.pid) - cpu0
        hwm = proc_hwm_kb(relay.pid)
    finally:
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        if sink.poll() is None:
            sink.kill()
            sink.wait()
        log.close()
    # the sink stops 5 s after the last line when lines were lost
    wall = t1 - t0 - (5.0 if got < lines else 0.0)
    return {"throughput": got / wall, "cpu_per_m": cpu / (got / 1e6),
            "rss_mb": hwm / 1024.0, "delivered": got, "wall": wall}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=TOP)
    ap.add_argument("--lines", type=int, default=4000000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--queue", type=int, default=100000)
    ap.add_argument("--rate", type=int, default=10000,
                    help="paced workload: lines/s per connection")
    ap.add_argument("--paced-lines", type=int, default=400000)
    ap.add_argument("--rules", type=int, default=200,
                    help="rules workload: match rules before the one that "
                         "matches")
    a = ap.parse_args()
    tools = os.path.join(a.build, "tests")
    orch = os.path.join(a.build, "relay", "orchester")
    ccr = shutil.which("carbon-c-relay")
    if ccr is None:
        sys.exit("bench: carbon-c-relay is not installed "
                 "(apt-get install carbon-c-relay)")
    lines = a.lines - a.lines % a.conns

    def conf(rp, sp):
        # the same text for both: self metrics hourly, so none in the run
        return ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "match * send to sink ;\n"
                "statistics submit every 3600 seconds ;\n" % (rp, sp))

    def rules_conf(rp, sp):
        rules = "".join("match ^svc%d\\.[a-z]+\\. send to sink stop ;\n" % k
                        for k in range(a.rules))
        return ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "%s"
                "match ^bench\\. send to sink stop ;\n"
                "statistics submit every 3600 seconds ;\n" % (rp, sp, rules))

    relays = [
        ("orchester", lambda c: [orch, "-f", c, "-q", str(a.queue)]),
        ("carbon-c-relay", lambda c: [ccr, "-f", c, "-q", str(a.queue)]),
    ]
    tmp = tempfile.mkdtemp(prefix="orchester-bench-")
    paced = a.paced_lines - a.paced_lines % a.conns
    workloads = [("flood", lines, 0, conf), ("paced", paced, a.rate, conf),
                 ("rules", paced, a.rate, rules_conf)]
    best = {}
    try:
        for run in range(a.runs):
            for wl, n, rate, conf_fn in workloads:
                for name, argv_fn in relays:
                    r = run_one(name, argv_fn, conf_fn, tools, n, a.conns,
                                tmp, rate)
                    print("run %d %-5s %-15s %10.0f datapoints/s  %6.3f "
                          "cpu-s/M  %7.1f MB peak  %d/%d delivered" %
                          (run + 1, wl, name, r["throughput"], r["cpu_per_m"],
                           r["rss_mb"], r["delivered"], n), flush=True)
                    k = (wl, name)
                    if k not in best or r["throughput"] > best[k]["throughput"]:
                        best[k] = r
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("bench: kept", tmp)
    print()
    print("machine: %d cores; %d TCP connections, one forward destination, "
          "queue %d, best of %d runs" % (os.cpu_count(), a.conns, a.queue,
                                          a.runs))
    for wl, n, rate, _ in workloads:
        what = ("%d lines as fast as possible" % n if not rate else
                "%d lines at %d lines/s per connection" % (n, rate))
        if wl == "rules":
            what += ", %d rules to pass first" % a.rules
        print("%s: %s" % (wl, what))
        print("  %-15s %14s %10s %10s %12s" % ("relay", "datapoints/s",
                                               "cpu-s/M", "peak MB",
                                               "delivered"))
        for name in ("orchester", "carbon-c-relay"):
            r = best[(wl, name)]
            print("  %-15s %14.0f %10.3f %10.1f %12d" %
                  (name, r["throughput"], r["cpu_per_m"], r["rss_mb"],
                   r["delivered"]))
        o, c = best[(wl, "orchester")], best[(wl, "carbon-c-relay")]
        print("  ratio orchester/carbon-c-relay: throughput %.2fx, cpu per "
              "datapoint %.2fx, peak memory %.2fx" %
              (o["throughput"] / c["throughput"],
               o["cpu_per_m"] / c["cpu_per_m"], o["rss_mb"] / c["rss_mb"]))


if __name__ == "__main__":
    main()
