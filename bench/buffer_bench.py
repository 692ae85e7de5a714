#!/usr/bin/python3
"""buffer_bench.py -- what the Redis buffer costs and how fast it moves.

One private redis-server (unix socket, append-only, fsync every second, as
etc/redis.conf runs it), one linesink, lineblast as the client, LINES
lines over CONNS TCP connections.  Workloads:

  ordinary   `match * send to sink`: the hot path without critical data
  critical   `buffer redis ... ; match * critical send to sink`, the sink
             up: every datapoint critical, acknowledged only once the
             sink's TCP stack acknowledged it (they go out live)
  spill      the same config, the sink down: every datapoint goes to Redis
             (spill rate: from the first line sent until Redis holds all)
  replay     then the sink comes up: the backlog is replayed (replay rate,
             `replay 100000000 per second`: as fast as it goes)

carbon-c-relay runs `ordinary` on the same workload in the same run (it has
no critical data and no buffer), and the same outage with its memory queue
(-q 100000, as orchester's): what it delivers once the sink is back is
printed ("outage/c-relay replay").

For each it prints datapoints/s, orchester's CPU seconds per million
datapoints (and Redis's, where Redis works), and orchester's peak RSS.
Run from the top of the built tree:  bench/buffer_bench.py [--lines N]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port, proc_cpu, proc_hwm_kb  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_redis(tmp):
    d = os.path.join(tmp, "redis")
    os.makedirs(d, exist_ok=True)
    sock = os.path.join(d, "redis.sock")
    p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock,
                          "--dir", d, "--save", "", "--appendonly", "yes",
                          "--appendfsync", "everysec", "--maxmemory-policy",
                          "noeviction"], stdout=subprocess.DEVNULL)
    for _ in range(200):
        if subprocess.run(["redis-cli", "-s", sock, "ping"],
                          capture_output=True, text=True).stdout.strip() == "PONG":
            return p, sock
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def counter(ctl, ep, name):
    out = subprocess.run([ctl, "-e", ep, "status"], capture_output=True,
                         text=True).stdout
    for ln in out.splitlines():
        f = ln.split()
        if len(f) == 3 and f[0] == "counter" and f[1] == name:
            return int(f[2])
    return 0


def run(a, name, relay_argv, conf_text, tmp, tools, lines, sink_up=True,
        redis=None, control=None, ctl=None):
    """One workload; returns a dict of figures."""
    sink_port, relay_port = free_port(), free_port()
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write(conf_text(relay_port, sink_port))
    log = open(os.path.join(tmp, name + ".log"), "w")

    def sink():
        p = subprocess.Popen([os.path.join(tools, "linesink"), str(sink_port),
                              str(lines), "600", "5"],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        return p

    s = sink() if sink_up else None
    relay = subprocess.Popen(relay_argv(conf), stdout=log, stderr=log)
    r = {}
    try:
        if not wait_port(relay_port):
            raise RuntimeError("%s did not listen" % name)
        cpu0 = proc_cpu(relay.pid)
        rcpu0 = proc_cpu(redis.pid) if redis else 0
        t0 = time.time()
        subprocess.run([os.path.join(tools, "lineblast"), "127.0.0.1",
                        str(relay_port), str(a.conns), str(lines // a.conns),
                        "bench"], check=True)
        if sink_up:
            out = s.communicate(timeout=620)[0].split()
            got = int(out[1])
            wall = time.time() - t0 - (5.0 if got < lines else 0.0)
            r["main"] = (got / wall, (proc_cpu(relay.pid) - cpu0) / (got / 1e6),
                         (proc_cpu(redis.pid) - rcpu0) / (got / 1e6) if redis else 0,
                         got)
        else:
            if control:  # orchester: until Redis holds everything
                end = time.time() + 600
                while counter(ctl, control, "buffered") < lines and time.time() < end:
                    time.sleep(0.05)
                got = counter(ctl, control, "buffered")
            else:
                time.sleep(2.0)  # carbon-c-relay: nothing to wait for
                got = 0
            wall = time.time() - t0
            r["spill"] = (got / wall, (proc_cpu(relay.pid) - cpu0) / max(got / 1e6, 1e-9),
                          (proc_cpu(redis.pid) - rcpu0) / max(got / 1e6, 1e-9)
                          if redis else 0, got)
            # the sink comes back: the replay
            cpu1 = proc_cpu(relay.pid)
            rcpu1 = proc_cpu(redis.pid) if redis else 0
            t1 = time.time()
            s = sink()
            out = s.communicate(timeout=620)[0].split()
            got2 = int(out[1])
            wall2 = time.time() - t1 - (5.0 if got2 < lines else 0.0)
            r["replay"] = (got2 / wall2, (proc_cpu(relay.pid) - cpu1) / max(got2 / 1e6, 1e-9),
                           (proc_cpu(redis.pid) - rcpu1) / max(got2 / 1e6, 1e-9)
                           if redis else 0, got2)
        r["rss_mb"] = proc_hwm_kb(relay.pid) / 1024.0
    finally:
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        if s and s.poll() is None:
            s.kill()
        log.close()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=TOP)
    ap.add_argument("--lines", type=int, default=2000000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    tools = os.path.join(a.build, "tests")
    orch = os.path.join(a.build, "relay", "orchester")
    ctl = os.path.join(a.build, "relay", "orchester-ctl")
    ccr = shutil.which("carbon-c-relay")
    if ccr is None or shutil.which("redis-server") is None:
        sys.exit("bench: needs carbon-c-relay and redis-server (apt-get install)")
    lines = a.lines - a.lines % a.conns
    tmp = tempfile.mkdtemp(prefix="orchester-bbench-")
    redis, sock = start_redis(tmp)
    control = "ipc://" + os.path.join(tmp, "ctl")
    queue = "100000"  # both relays' default queue per destination

    def plain(rp, sp):
        return ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "match * send to sink ;\n"
                "statistics submit every 3600 seconds ;\n" % (rp, sp))

    def critical(rp, sp):
        return ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "buffer redis unix:%s prefix bench max 100000000 datapoints "
                "replay 100000000 per second ;\n"
                "match * critical send to sink ;\n"
                "control %s ;\n"
                "statistics submit every 3600 seconds ;\n"
                % (rp, sp, sock, control))

    o_argv = lambda c: [orch, "-f", c, "-q", queue]  # noqa: E731
    c_argv = lambda c: [ccr, "-f", c, "-q", queue]  # noqa: E731
    best = {}

    def keep(k, v, i):
        if k not in best or v[0] > best[k][0]:
            best[k] = v

    try:
        for run_i in range(a.runs):
            for wl, argv, conf, up, rd in (
                    ("ordinary", o_argv, plain, True, None),
                    ("ordinary/c-relay", c_argv, plain, True, None),
                    ("critical", o_argv, critical, True, redis),
                    ("outage", o_argv, critical, False, redis),
                    ("outage/c-relay", c_argv, plain, False, None)):
                subprocess.run(["redis-cli", "-s", sock, "FLUSHALL"],
                               capture_output=True)
                r = run(a, wl.replace("/", "-"), argv, conf, tmp, tools, lines,
                        sink_up=up, redis=rd,
                        control=control if argv is o_argv and not up else None,
                        ctl=ctl)
                for part in ("main", "spill", "replay"):
                    if part in r and not (rd is None and part == "spill"):
                        k = wl if part == "main" else "%s %s" % (wl, part)
                        v = r[part] + (r["rss_mb"],)
                        keep(k, v, run_i)
                        print("run %d %-24s %10.0f datapoints/s %7.3f cpu-s/M "
                              "(redis %6.3f) %7.1f MB peak %d" % (
                                  run_i + 1, k, v[0], v[1], v[2], v[4], v[3]),
                              flush=True)
    finally:
        redis.send_signal(signal.SIGTERM)
        redis.wait()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("machine: %d cores; %d lines over %d TCP connections, one "
          "destination, best of %d runs" % (os.cpu_count(), lines, a.conns,
                                             a.runs))
    print("  %-26s %14s %10s %10s %10s %10s" % ("workload", "datapoints/s",
                                                 "cpu-s/M", "redis/M",
                                                 "peak MB", "delivered"))
    for k, v in best.items():
        print("  %-26s %14.0f %10.3f %10.3f %10.1f %10d" % (k, v[0], v[1], v[2],
                                                           v[4], v[3]))
    o, c, k = best["ordinary"], best["ordinary/c-relay"], best["critical"]
    print("  ratio ordinary orchester/carbon-c-relay: throughput %.2fx, cpu "
          "%.2fx" % (o[0] / c[0], o[1] / c[1]))
    print("  critical vs ordinary (orchester): throughput %.2fx, cpu %.2fx"
          % (k[0] / o[0], k[1] / o[1]))


if __name__ == "__main__":
    main()
