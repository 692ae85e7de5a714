#!/usr/bin/python3
"""ab.py -- two builds of orchester on one workload, runs interleaved.

  bench/ab.py BUILD_A BUILD_B flood|paced [RUNS]

Runs bench.py's flood (4,000,000 lines as fast as possible) or paced
(400,000 lines at 10,000 lines/s per connection) workload on orchester from
BUILD_A, then BUILD_B, RUNS times (default 5), alternating so that the
machine's drift falls on both alike, and prints each build's median
throughput and CPU seconds per million datapoints with every run.  For
before/after comparisons of a change to the hot path; bench.py is the
benchmark against carbon-c-relay.
"""
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def conf(rp, sp):
    return ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
            "cluster sink forward 127.0.0.1:%d ;\n"
            "match * send to sink ;\n"
            "statistics submit every 3600 seconds ;\n" % (rp, sp))


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[3] not in ("flood", "paced"):
        sys.exit(__doc__)
    builds = [os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])]
    flood = sys.argv[3] == "flood"
    runs = int(sys.argv[4]) if len(sys.argv) == 5 else 5
    n, rate = (4000000, 0) if flood else (400000, 10000)
    tmp = tempfile.mkdtemp(prefix="orchester-ab-")
    res = {b: [] for b in builds}
    for _ in range(runs):
        for b in builds:
            r = bench.run_one(
                "orchester",
                lambda c, b=b: [os.path.join(b, "relay", "orchester"), "-f", c,
                                "-q", "100000"],
                conf, os.path.join(b, "tests"), n, 4, tmp, rate)
            res[b].append((r["throughput"], r["cpu_per_m"], r["delivered"]))
            print("%-40s %10.0f datapoints/s %6.3f cpu-s/M %d/%d delivered"
                  % (b, r["throughput"], r["cpu_per_m"], r["delivered"], n),
                  flush=True)
    for b in builds:
        t = sorted(x[0] for x in res[b])
        c = sorted(x[1] for x in res[b])
        print("%s: median %.0f datapoints/s, %.3f cpu-s/M over %d runs"
              % (b, t[len(t) // 2], c[len(c) // 2], runs))


if __name__ == "__main__":
    main()
