#!/usr/bin/python3
"""aggr_bench.py -- aggregation throughput: orchester next to carbon-c-relay
(and carbon-aggregator, when installed) on the same workload, in one run.

The workload: LINES datapoints "bench.cC.mK V TS" (K from 0 to 999, C the
connection) over CONNS TCP connections, every timestamp in one bucket, into
one aggregate with four computes per series (sum, count, max, average), so
4,000 series; the outputs go to a sink.  carbon-aggregator gets the same
four as rules of its own format (sum, count, max, avg) over the same
names, and fewer lines (CA_LINES: it is Python).

For each relay it prints:

  datapoints/s  from the first line sent until the relay has taken the last
                (its CPU goes idle: no more than 1% of a core over 200 ms)
  cpu-s/M       the relay's CPU seconds (user + system) per million
  peak MB       its peak resident memory (VmHWM)
  counted       the sum of the count outputs the sink received: every
                datapoint counted once when nothing was lost

and the ratios orchester / carbon-c-relay.  Run from the top of the source
tree after building:  bench/aggr_bench.py [--lines N] [--conns C] [--runs R]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port, proc_cpu, proc_hwm_kb  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERVAL, EXPIRE = 10, 20


class Sink(threading.Thread):
    """Accepts connections on port and keeps the count outputs' sum."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(64)
        self.counted = 0
        self.lines = 0
        self.lock = threading.Lock()

    def run(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        buf = b""
        while True:
            d = c.recv(1 << 16)
            if not d:
                return
            buf += d
            *full, buf = buf.split(b"\n")
            with self.lock:
                for ln in full:
                    f = ln.split()
                    if len(f) == 3 and b".cnt" in f[0]:
                        self.counted += int(float(f[1]))
                    self.lines += 1


def idle_after(pid, t_sent, timeout=600.0):
    """The time the relay's CPU went idle after t_sent (its last busy
    moment): idle = at most 1% of a core over 200 ms."""
    last_busy = t_sent
    cpu = proc_cpu(pid)
    end = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < end:
        time.sleep(0.2)  # sampling the CPU, not waiting for an event
        c = proc_cpu(pid)
        if c - cpu > 0.002:
            last_busy = time.monotonic()
            quiet = 0
        else:
            quiet += 1
            if quiet >= 5:
                return last_busy
        cpu = c
    return last_busy


def workload(lines, conns, ts):
    per = lines // conns
    return [b"".join(b"bench.c%d.m%d %d %d\n" % (c, i % 1000, i % 97, ts)
                     for i in range(per)) for c in range(conns)]


def send_all(port, blocks):
    def one(data):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(data)
        s.close()
    th = [threading.Thread(target=one, args=(b,)) for b in blocks]
    for t in th:
        t.start()
    for t in th:
        t.join()


def run_one(name, argv, conf_text, relay_port, sink, lines, conns, tmp,
            wait_out):
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    log = open(os.path.join(tmp, name + ".log"), "w")
    relay = subprocess.Popen(argv(conf), stdout=log, stderr=log, cwd=tmp)
    try:
        if not wait_port(relay_port, relay, 60):
            raise RuntimeError("%s did not listen on %d" % (name, relay_port))
        now = int(time.time())
        ts = now - now % INTERVAL + INTERVAL // 2  # mid-bucket, now or soon
        blocks = workload(lines, conns, ts)
        cpu0 = proc_cpu(relay.pid)
        t0 = time.monotonic()
        send_all(relay_port, blocks)
        t1 = idle_after(relay.pid, time.monotonic())
        cpu = proc_cpu(relay.pid) - cpu0
        hwm = proc_hwm_kb(relay.pid)
        end = time.monotonic() + wait_out
        while time.monotonic() < end and sink.counted < lines:
            time.sleep(0.2)  # bounded wait for the outputs
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(30)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
        log.close()
    return {"throughput": lines / (t1 - t0), "cpu_per_m": cpu / (lines / 1e6),
            "rss_mb": hwm / 1024.0, "counted": sink.counted}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=TOP)
    ap.add_argument("--lines", type=int, default=2000000)
    ap.add_argument("--ca-lines", type=int, default=100000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    orch = os.path.join(a.build, "relay", "orchester")
    ccr = shutil.which("carbon-c-relay")
    if ccr is None:
        sys.exit("bench: carbon-c-relay is not installed")
    cagg = shutil.which("carbon-aggregator")
    lines = a.lines - a.lines % a.conns
    ca_lines = a.ca_lines - a.ca_lines % a.conns
    tmp = tempfile.mkdtemp(prefix="orchester-aggr-bench-")

    def relay_conf(rp, sp):
        # the same text for both relays: self metrics hourly
        return ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                "aggregate ^bench\\.c[0-9]+\\.(m[0-9]+)$\n"
                "    every %d seconds expire after %d seconds\n"
                "    compute sum write to agg.\\1.sum\n"
                "    compute count write to agg.\\1.cnt\n"
                "    compute max write to agg.\\1.max\n"
                "    compute average write to agg.\\1.avg\n"
                "    send to sink stop ;\n"
                "statistics submit every 3600 seconds ;\n"
                % (rp, sp, INTERVAL, EXPIRE))

    def ca_conf(rp, sp):
        rules = os.path.join(tmp, "aggregation-rules.conf")
        with open(rules, "w") as f:
            for m, k in (("sum", "sum"), ("cnt", "count"), ("max", "max"),
                         ("avg", "avg")):
                f.write("agg.<m>.%s (%d) = %s bench.*.<m>\n" % (m, INTERVAL, k))
        for d in ("storage", "log", "run"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        with open(os.path.join(tmp, "storage-schemas.conf"), "w") as f:
            f.write("[default]\npattern = .*\nretentions = 10s:1d\n")
        return ("[aggregator]\n"
                "LINE_RECEIVER_INTERFACE = 127.0.0.1\n"
                "LINE_RECEIVER_PORT = %d\n"
                "ENABLE_UDP_LISTENER = False\n"
                "PICKLE_RECEIVER_INTERFACE = 127.0.0.1\n"
                "PICKLE_RECEIVER_PORT = %d\n"
                "DESTINATIONS = 127.0.0.1:%d\n"
                "DESTINATION_PROTOCOL = line\n"
                "FORWARD_ALL = False\n"
                "AGGREGATION_RULES = %s\n"
                "MAX_QUEUE_SIZE = 10000000\n"
                "LOG_LISTENER_CONNECTIONS = False\n"
                "[cache]\n"
                "STORAGE_DIR = %s\n"
                "LOCAL_DATA_DIR = %s\n"
                "LOG_DIR = %s\n"
                "PID_DIR = %s\n"
                % (rp, free_port(), sp, rules, os.path.join(tmp, "storage"),
                   os.path.join(tmp, "storage"), os.path.join(tmp, "log"),
                   os.path.join(tmp, "run")))

    relays = [("orchester", lambda c: [orch, "-f", c], relay_conf, lines),
              ("carbon-c-relay", lambda c: [ccr, "-f", c], relay_conf, lines)]
    if cagg:
        relays.append(("carbon-aggregator",
                       lambda c: [cagg, "--config", c, "--nodaemon",
                                  "--pidfile", os.path.join(tmp, "ca.pid"),
                                  "start"],
                       ca_conf, ca_lines))
    best = {}
    try:
        for run in range(a.runs):
            for name, argv, conf_fn, n in relays:
                rp, sp = free_port(), free_port()
                sink = Sink(sp)
                sink.start()
                r = run_one(name, argv, conf_fn(rp, sp), rp, sink, n,
                            a.conns, tmp, 3 * (INTERVAL + EXPIRE) + 10)
                sink.ls.close()
                print("run %d %-18s %10.0f datapoints/s  %6.3f cpu-s/M  "
                      "%7.1f MB peak  %d/%d counted"
                      % (run + 1, name, r["throughput"], r["cpu_per_m"],
                         r["rss_mb"], r["counted"], n), flush=True)
                if name not in best or \
                        r["throughput"] > best[name]["throughput"]:
                    best[name] = dict(r, lines=n)
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("bench: kept", tmp)
    print()
    print("machine: %d cores; %d TCP connections; one aggregate, 1000 names "
          "x 4 computes (sum, count, max, average), %d s buckets; best of %d "
          "runs" % (os.cpu_count(), a.conns, INTERVAL, a.runs))
    print("  %-18s %10s %14s %10s %10s %12s" % ("relay", "lines",
                                                "datapoints/s", "cpu-s/M",
                                                "peak MB", "counted"))
    for name, _, _, _ in relays:
        r = best[name]
        print("  %-18s %10d %14.0f %10.3f %10.1f %12d" %
              (name, r["lines"], r["throughput"], r["cpu_per_m"], r["rss_mb"],
               r["counted"]))
    o, c = best["orchester"], best["carbon-c-relay"]
    print("  ratio orchester/carbon-c-relay: throughput %.2fx, cpu per "
          "datapoint %.2fx, peak memory %.2fx" %
          (o["throughput"] / c["throughput"], o["cpu_per_m"] / c["cpu_per_m"],
           o["rss_mb"] / c["rss_mb"]))
    if "carbon-aggregator" in best:
        g = best["carbon-aggregator"]
        print("  ratio orchester/carbon-aggregator: throughput %.1fx, cpu "
              "per datapoint %.3fx" % (o["throughput"] / g["throughput"],
                                       o["cpu_per_m"] / g["cpu_per_m"]))


if __name__ == "__main__":
    main()
