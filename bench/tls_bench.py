#!/usr/bin/python3
"""tls_bench.py -- encrypted and compressed links: orchester next to
carbon-c-relay on the same workload, in one run.

Two directions, each relay forwarding everything it takes to one sink:

  in    the relay listens with the transport (plain, ssl, gzip, lz4,
        snappy, gzip+ssl) and sends plain to the sink;
  out   the relay listens plain and sends to the sink through a member
        with the transport; the sink decrypts and decompresses.

The workload is LINES datapoints "bench.cC.mK V TS" over CONNS
connections.  Senders and sinks are this script (Python's ssl, zlib and lz4
bindings, which run in C); what is encoded for "in" is encoded before the
clock starts, the way carbon-c-relay frames it (gzip: one stream with a
flush every 32 KiB, lz4: a frame per 32 KiB, snappy: a raw block per
32 KiB).  Debian's carbon-c-relay is built with ssl only, so it runs plain
and ssl.

For each relay and transport it prints lines/s (first byte sent to last
line at the sink; both relays get a queue that holds the whole workload),
the relay's CPU seconds (user + system) per million
lines, its peak memory, and orchester / carbon-c-relay ratios.

  bench/tls_bench.py [--lines N] [--conns C] [--runs R]
"""
import argparse
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port, proc_cpu, proc_hwm_kb  # noqa: E402

import lz4.frame  # noqa: E402
import snappy  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUF = 32768
TRANSPORTS = ("plain", "ssl", "gzip", "lz4", "snappy", "gzip+ssl")


def pki(tmp):
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=tmp, check=True,
                       capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=bench CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "s.key", "-out", "s.csr")
    with open(os.path.join(tmp, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "s.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "s.crt")
    pem = os.path.join(tmp, "server.pem")
    with open(pem, "w") as out:
        for n in ("s.crt", "s.key"):
            with open(os.path.join(tmp, n)) as f:
                out.write(f.read())
    return os.path.join(tmp, "ca.pem"), pem


def split(tr):
    codec, _, tls = tr.partition("+")
    if codec == "ssl":
        return "plain", True
    return codec, tls == "ssl"


def encode(codec, data):
    parts = [data[i:i + BUF] for i in range(0, len(data), BUF)]
    if codec == "gzip":
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        return b"".join(z.compress(p) + z.flush(zlib.Z_PARTIAL_FLUSH)
                        for p in parts)
    if codec == "lz4":
        return b"".join(lz4.frame.compress(p) for p in parts)
    if codec == "snappy":
        return b"".join(snappy.compress(p) for p in parts)
    return data


def snappy_split(buf):
    """Raw snappy blocks back to back: (blocks, rest)."""
    out, pos = [], 0
    while True:
        p, shift, ulen = pos, 0, 0
        while True:
            if p >= len(buf):
                return out, buf[pos:]
            b = buf[p]
            p += 1
            ulen |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                break
        got = 0
        while got < ulen:
            if p >= len(buf):
                return out, buf[pos:]
            tag = buf[p]
            p += 1
            k = tag & 3
            if k == 0:
                n = tag >> 2
                if n >= 60:
                    w = n - 59
                    n = int.from_bytes(buf[p:p + w], "little")
                    p += w
                p += n + 1
                got += n + 1
            elif k == 1:
                got += ((tag >> 2) & 7) + 4
                p += 1
            else:
                got += (tag >> 2) + 1
                p += 2 if k == 2 else 4
        if p > len(buf):
            return out, buf[pos:]
        out.append(bytes(buf[pos:p]))
        pos = p


class Sink(threading.Thread):
    """Counts the lines it receives, decoding codec (and TLS with pem)."""

    def __init__(self, codec="plain", pem=None):
        super().__init__(daemon=True)
        self.codec = codec
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.ctx = None
        if pem:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(pem)
        self.lines = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.want = None

    def run(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def count(self, n):
        with self.lock:
            self.lines += n
            if self.want is not None and self.lines >= self.want:
                self.done.set()

    def conn(self, c):
        try:
            if self.ctx:
                c = self.ctx.wrap_socket(c, server_side=True)
            z = zlib.decompressobj(31) if self.codec == "gzip" else None
            dz = lz4.frame.LZ4FrameDecompressor() if self.codec == "lz4" \
                else None
            raw = b""
            while True:
                d = c.recv(1 << 18)
                if not d:
                    return
                if z is not None:
                    d = z.decompress(d)
                elif dz is not None:
                    raw += d
                    d = b""
                    while raw:
                        d += dz.decompress(raw)
                        if not dz.eof:
                            raw = b""
                            break
                        raw = dz.unused_data or b""
                        dz = lz4.frame.LZ4FrameDecompressor()
                elif self.codec == "snappy":
                    raw += d
                    blocks, raw = snappy_split(raw)
                    d = b"".join(snappy.uncompress(b) for b in blocks)
                self.count(d.count(b"\n"))
        except OSError:
            return
        finally:
            c.close()


def workload(lines, conns, ts):
    per = lines // conns
    return [b"".join(b"bench.c%d.m%d %d %d\n" % (c, i % 1000, i % 97, ts)
                     for i in range(per)) for c in range(conns)]


def send_all(port, blocks, ca=None):
    def one(data):
        s = socket.create_connection(("127.0.0.1", port))
        if ca:
            ctx = ssl.create_default_context(cafile=ca)
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(data)
        if ca:
            # end the TLS stream properly (close_notify), reading what the
            # relay sent (session tickets): a close with unread bytes makes
            # the kernel reset the connection, and the relay lose the tail
            try:
                s.settimeout(120)
                s = s.unwrap()
            except (OSError, ValueError):
                pass
        s.close()
    th = [threading.Thread(target=one, args=(b,)) for b in blocks]
    for t in th:
        t.start()
    for t in th:
        t.join()


def transport_clause(tr, pem=None):
    codec, tls = split(tr)
    if not tls:
        return "transport %s" % codec
    return "transport %s ssl%s" % (codec, " " + pem if pem else "")


def run_one(name, argv, direction, tr, lines, conns, tmp, ca, pem):
    codec, tls = split(tr)
    rp = free_port()
    if direction == "in":
        sink = Sink()
        conf = ("listen type linemode %s 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%d ;\n"
                % (transport_clause(tr, pem), rp, 0))
    else:
        sink = Sink(codec, pem if tls else None)
        conf = ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                "cluster sink forward 127.0.0.1:%%d %s ;\n"
                % (rp, transport_clause(tr)))
    sink.start()
    if direction == "in":
        conf = conf.replace("127.0.0.1:0 ;", "127.0.0.1:%d ;" % sink.port)
    else:
        conf = conf % sink.port
    conf += "match * send to sink ;\nstatistics submit every 3600 seconds ;\n"
    cpath = os.path.join(tmp, "%s-%s-%s.conf" % (name, direction, tr))
    with open(cpath, "w") as f:
        f.write(conf)
    log = open(cpath[:-5] + ".log", "w")
    relay = subprocess.Popen(argv(cpath), stdout=log, stderr=log, cwd=tmp)
    try:
        if not wait_port(rp, relay, 60):
            raise RuntimeError("%s did not listen on %d" % (name, rp))
        now = int(time.time())
        blocks = workload(lines, conns, now - 60)
        if direction == "in":
            blocks = [encode(codec, b) for b in blocks]
        sink.want = lines
        cpu0 = proc_cpu(relay.pid)
        t0 = time.monotonic()
        send_all(rp, blocks, ca if direction == "in" and tls else None)
        # until every line is in, or none came for 15 s (some were lost)
        last, seen = time.monotonic(), -1
        while not sink.done.wait(0.5):
            if sink.lines != seen:
                last, seen = time.monotonic(), sink.lines
            elif time.monotonic() - last > 15.0:
                break
        ok = sink.done.is_set()
        t1 = time.monotonic()
        cpu = proc_cpu(relay.pid) - cpu0
        hwm = proc_hwm_kb(relay.pid)
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(30)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
        log.close()
        sink.ls.close()
    return {"ok": ok, "got": sink.lines, "throughput": lines / (t1 - t0),
            "cpu_per_m": cpu / (lines / 1e6), "rss_mb": hwm / 1024.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=TOP)
    ap.add_argument("--lines", type=int, default=2000000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--transports", default=",".join(TRANSPORTS))
    a = ap.parse_args()
    orch = os.path.join(a.build, "relay", "orchester")
    ccr = shutil.which("carbon-c-relay")
    if ccr is None:
        sys.exit("bench: carbon-c-relay is not installed")
    out = subprocess.run([ccr, "-v"], capture_output=True, text=True).stdout
    ccr_has = {"plain"}
    for line in out.splitlines():
        if "enabled support for" in line:
            ccr_has |= set(line.split(":", 1)[1].split())
    lines = a.lines - a.lines % a.conns
    tmp = tempfile.mkdtemp(prefix="orchester-tls-bench-")
    ca, pem = pki(tmp)
    trs = a.transports.split(",")
    best = {}
    try:
        for run in range(a.runs):
            for direction in ("in", "out"):
                for tr in trs:
                    codec, tls = split(tr)
                    # queues that hold the whole workload: nothing is
                    # dropped, so the figures are of lines delivered
                    q = str(lines)
                    relays = [("orchester",
                               lambda c: [orch, "-f", c, "-C", ca, "-q", q])]
                    if codec in ccr_has and (not tls or "ssl" in ccr_has):
                        relays.append(("carbon-c-relay",
                                       lambda c: [ccr, "-f", c, "-C", ca,
                                                  "-q", q]))
                    for name, argv in relays:
                        r = run_one(name, argv, direction, tr, lines, a.conns,
                                    tmp, ca, pem)
                        print("run %d %-3s %-9s %-15s %10.0f lines/s %6.3f "
                              "cpu-s/M %7.1f MB%s"
                              % (run + 1, direction, tr, name, r["throughput"],
                                 r["cpu_per_m"], r["rss_mb"],
                                 "" if r["ok"] else "  INCOMPLETE %d/%d"
                                 % (r["got"], lines)), flush=True)
                        k = (direction, tr, name)
                        if r["ok"] and (k not in best or r["throughput"] >
                                        best[k]["throughput"]):
                            best[k] = r
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("machine: %d cores; %d lines over %d TCP connections; best of %d"
          % (os.cpu_count(), lines, a.conns, a.runs))
    print("  %-4s %-9s %14s %9s %14s %9s %8s %8s" % (
        "dir", "transport", "orch lines/s", "cpu-s/M", "ccr lines/s",
        "cpu-s/M", "speed", "cpu"))
    for direction in ("in", "out"):
        for tr in trs:
            o = best.get((direction, tr, "orchester"))
            c = best.get((direction, tr, "carbon-c-relay"))
            if o is None:
                continue
            row = "  %-4s %-9s %14.0f %9.3f" % (direction, tr, o["throughput"],
                                               o["cpu_per_m"])
            if c:
                row += " %14.0f %9.3f %7.2fx %7.2fx" % (
                    c["throughput"], c["cpu_per_m"],
                    o["throughput"] / c["throughput"],
                    o["cpu_per_m"] / c["cpu_per_m"])
            else:
                row += " %14s %9s" % ("n/a", "n/a")
            print(row)


if __name__ == "__main__":
    main()
