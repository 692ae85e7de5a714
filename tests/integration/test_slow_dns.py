#!/usr/bin/python3
# suite: alone
"""
test_slow_dns.py -- a member whose name does not resolve stalls no other
destination, is logged as a resolve failure, and does not delay the stop.

The test makes its own DNS: it creates a network namespace (only its
loopback is up), whose /etc/netns/NS/resolv.conf says `nameserver
127.0.0.1` with long timeouts, and runs itself again inside it (`ip netns
exec`), where a small DNS server on 127.0.0.1:53 answers by name:

  never.orchester-test   never answered (getaddrinfo hangs for minutes)
  late.orchester-test    answered after LATE_S seconds: 127.0.0.1
  bad.orchester-test     answered at once: no such name (NXDOMAIN)

orchester runs in the namespace with a healthy member on 127.0.0.1 and one
member for each name (never over TCP and over UDP).  The healthy member
receives every line, at once, while the never name is being looked up; the
late member receives every line once its answer came; the log names the
resolve failures (the resolver's own words for bad, "no answer" for never);
and SIGTERM exits 0 within the documented 3 + -D seconds (plus slack) while
the lookups of the never name still hang.  Nothing leaves the namespace.
The namespace and /etc/netns/NS are removed at the end, also on failure.

Needs root (network namespaces) and `ip`; without them it says SKIP and
checks nothing.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HOST, Test, require, free_port, send_tcp,  # noqa: E402
                     wait_until, check_build, wait_status, SinkTracker)

NEVER = "never.orchester-test"
LATE = "late.orchester-test"
BAD = "bad.orchester-test"
LATE_S = 7.0          # past orchester's 5 s resolve timeout
DRAIN_S = 2           # -D
STOP_BOUND = 3 + DRAIN_S + 5.0   # documented 3 + -D, plus slack for sanitizers
BATCH = 10000
INNER_FLAG = "--in-namespace"


# ---------------------------------------------------------------------------
# the DNS server (inside the namespace)

def _qname(msg):
    """The question's name (lower case) and the offset after the question."""
    i = 12
    labels = []
    while i < len(msg):
        n = msg[i]
        i += 1
        if n == 0:
            break
        labels.append(msg[i:i + n].decode("ascii", "replace"))
        i += n
    return ".".join(labels).lower(), i + 4


class Dns:
    """A UDP DNS server on 127.0.0.1:53 that answers as the table above
    says.  queries maps a name to the monotonic times its queries came;
    answered maps a name to the times its answers went out."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 53))
        self.lock = threading.Lock()
        self.queries = {}
        self.answered = {}
        self.timers = []
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _reply(self, msg, rcode, addr_a=None):
        qid, flags = struct.unpack("!HH", msg[:4])
        _, end = _qname(msg)
        qtype = struct.unpack("!H", msg[end - 4:end - 2])[0]
        answers = b""
        n = 0
        if addr_a and qtype == 1:  # A
            answers = (struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4)
                       + socket.inet_aton(addr_a))
            n = 1
        rflags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode  # QR, opcode, RD, RA
        return struct.pack("!HHHHHH", qid, rflags, 1, n, 0, 0) + msg[12:end] + answers

    def _send(self, name, data, peer):
        if self.stopped:
            return
        try:
            self.sock.sendto(data, peer)
        except OSError:
            return
        with self.lock:
            self.answered.setdefault(name, []).append(time.monotonic())

    def _loop(self):
        while True:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if len(msg) < 17:
                continue
            name, _ = _qname(msg)
            with self.lock:
                self.queries.setdefault(name, []).append(time.monotonic())
            if name == NEVER:
                continue
            if name == LATE:
                # the server's own delay, as a slow DNS server has
                tm = threading.Timer(LATE_S, self._send,
                                     (name, self._reply(msg, 0, "127.0.0.1"), peer))
                tm.daemon = True
                tm.start()
                self.timers.append(tm)
            elif name == BAD:
                self._send(name, self._reply(msg, 3), peer)
            else:
                self._send(name, self._reply(msg, 5), peer)  # REFUSED

    def count(self, table, name):
        with self.lock:
            return len(table.get(name, []))

    def first(self, table, name):
        with self.lock:
            v = table.get(name, [])
            return v[0] if v else None

    def stop(self):
        self.stopped = True
        for tm in self.timers:
            tm.cancel()
        self.sock.close()


# ---------------------------------------------------------------------------
# the test proper (inside the namespace)

def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    with t.check("in the namespace, names go to the test's DNS server", fatal=True):
        with open("/etc/resolv.conf") as f:
            rc = f.read()
        servers = [ln.split()[1] for ln in rc.splitlines()
                   if ln.startswith("nameserver") and len(ln.split()) > 1]
        require(servers == ["127.0.0.1"], "/etc/resolv.conf here is %r" % rc)
        dns = Dns()
        t.on_cleanup(dns.stop)
        try:
            socket.getaddrinfo(BAD, 2003, socket.AF_INET, socket.SOCK_STREAM)
            require(False, "%s resolved" % BAD)
        except socket.gaierror as e:
            bad_why = e.strerror
        require(dns.count(dns.queries, BAD) >= 1, "the DNS server saw no query")
        sys.stderr.write("# %s: %s\n" % (BAD, bad_why))

    port = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    healthy = t.sink()
    late = t.sink()
    keys = {
        "healthy": ("healthy", "127.0.0.1:%d" % healthy.port),
        "never": ("never", "%s:2003" % NEVER),
        "neverudp": ("neverudp", "%s:2003" % NEVER),
        "late": ("late", "%s:%d" % (LATE, late.port)),
        "bad": ("bad", "%s:2003" % BAD),
    }
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster healthy forward 127.0.0.1:%d ;
cluster never forward %s:2003 ;
cluster neverudp forward %s:2003 proto udp ;
cluster late forward %s:%d ;
cluster bad forward %s:2003 ;
match * send to healthy never neverudp late bad ;
""" % (port, control, healthy.port, NEVER, NEVER, LATE, late.port, BAD)
    with t.check("orchester starts while the lookup of %s hangs" % NEVER, fatal=True):
        orch = t.start_orchester("orchester", conf, opts=("-D", str(DRAIN_S)),
                                 control=control, tcp_ports=(port,))
        wait_until(lambda: dns.count(dns.queries, NEVER) >= 1, 20.0,
                   "a query for %s" % NEVER)

    ts = int(time.time()) - 600
    sent = []

    def send(tag):
        lines = [b"%s.m%d %d %d" % (tag, i % 100, i, ts + i) for i in range(BATCH)]
        errs = send_tcp(port, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        sent.extend(lines)
        return lines

    with t.check("the healthy member receives every line while %s is looked up "
                 "and before %s is answered" % (NEVER, LATE)):
        for k in range(3):
            lines = send(b"b%d" % k)
            tr = SinkTracker(healthy, lines)
            wait_until(tr.complete, 20.0, lambda: "batch %d at the healthy sink "
                       "(%d missing)" % (k, len(tr.missing)))
        done = time.monotonic()
        require(dns.count(dns.answered, NEVER) == 0, "%s was answered" % NEVER)
        first_late = dns.first(dns.answered, LATE)
        require(first_late is None or first_late > done,
                "%s was answered before the healthy member had its lines" % LATE)

    with t.check("status: healthy up; the never and bad members down, "
                 "their lines queued"):
        st = wait_status(t.build, control, 10.0, "status with every destination",
                         lambda st: all(k in st["destinations"] for k in keys.values()))
        d = st["destinations"]
        require(d[keys["healthy"]].get("state") == "up", "healthy: %r" % d[keys["healthy"]])
        for k in ("never", "bad", "neverudp"):
            require(d[keys[k]].get("state") == "down", "%s: %r" % (k, d[keys[k]]))

    with t.check("the log names the resolve failures, with the resolver's words"):
        def lines_for(k):
            tag = "dest: %s %s: " % keys[k]
            return [ln for ln in orch.stderr().splitlines() if tag in ln]
        wait_until(lambda: any("resolve: %s" % bad_why in ln for ln in lines_for("bad")),
                   20.0, lambda: "'resolve: %s' for bad: %r" % (bad_why, lines_for("bad")))
        wait_until(lambda: any("resolve: no answer within" in ln
                               for ln in lines_for("never")),
                   20.0, lambda: "a resolve failure for never: %r" % lines_for("never"))
        wait_until(lambda: any("resolve: no answer within" in ln
                               for ln in lines_for("neverudp")),
                   20.0, lambda: "a resolve failure for neverudp: %r" % lines_for("neverudp"))
        stale = [ln for ln in orch.stderr().splitlines()
                 if "Operation now in progress" in ln]
        require(not stale, "a stale errno in the log: %r" % stale[:3])
        for k in ("never", "bad"):
            sys.stderr.write("# %s: %r\n" % (k, lines_for(k)[:3]))

    with t.check("%s, answered after %.0f s, receives every line" % (LATE, LATE_S)):
        tr = SinkTracker(late, sent)
        wait_until(tr.complete, 60.0, lambda: "%d lines at the late sink (%d missing)"
                   % (len(sent), len(tr.missing)))
        require(dns.count(dns.answered, LATE) >= 1, "never answered")

    with t.check("the healthy member got every line once, in order"):
        # the test's lines only: orchester's own metrics may come too
        got = [ln for ln in healthy.snapshot() if ln.startswith((b"b0.", b"b1.", b"b2."))]
        require(got == sent, "%d lines, %d sent" % (len(got), len(sent)))

    with t.check("SIGTERM while %s hangs: exit 0 within %.0f s (3 + -D %d, plus slack)"
                 % (NEVER, STOP_BOUND, DRAIN_S)):
        require(dns.count(dns.answered, NEVER) == 0, "%s was answered" % NEVER)
        t0 = time.monotonic()
        orch.signal(signal.SIGTERM)
        rc = orch.wait(STOP_BOUND)
        elapsed = time.monotonic() - t0
        require(rc is not None, "still running %.0f s after SIGTERM" % STOP_BOUND)
        require(rc == 0, "exit code %s after %.1f s" % (rc, elapsed))
        sys.stderr.write("# exited %.2f s after SIGTERM\n" % elapsed)


# ---------------------------------------------------------------------------
# the outside: make the namespace, run inside it, clean up

def outside(argv):
    if os.geteuid() != 0:
        print("SKIP: test_slow_dns needs root (network namespaces); nothing checked")
        return 0
    ip = shutil.which("ip")
    if ip is None:
        print("SKIP: test_slow_dns needs ip (iproute2); nothing checked")
        return 0
    ns = "orch-dns-%d" % os.getpid()
    etc_netns = "/etc/netns"
    made_etc_netns = not os.path.isdir(etc_netns)
    nsdir = os.path.join(etc_netns, ns)
    child = None

    def terminated(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        os.makedirs(nsdir)
        with open(os.path.join(nsdir, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:30 attempts:5\n")
        r = subprocess.run([ip, "netns", "add", ns], capture_output=True, text=True)
        if r.returncode != 0:
            print("SKIP: test_slow_dns: ip netns add failed: %s; nothing checked"
                  % r.stderr.strip())
            return 0
        subprocess.run([ip, "-n", ns, "link", "set", "lo", "up"], check=True)
        child = subprocess.Popen([ip, "netns", "exec", ns, sys.executable,
                                  os.path.abspath(__file__), argv[1], INNER_FLAG])
        try:
            return child.wait(timeout=600)
        except subprocess.TimeoutExpired:
            print("FAIL: test_slow_dns: the test in the namespace ran over 600 s")
            return 1
    except KeyboardInterrupt as e:
        print("FAIL: interrupted: %s" % e)
        return 1
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        # whatever of ours still runs in the namespace goes with it
        r = subprocess.run([ip, "netns", "pids", ns], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ValueError, OSError):
                pass
        subprocess.run([ip, "netns", "del", ns], capture_output=True)
        shutil.rmtree(nsdir, ignore_errors=True)
        if made_etc_netns:
            try:
                os.rmdir(etc_netns)
            except OSError:
                pass


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[2] == INNER_FLAG:
        Test(sys.argv[:2]).run(body)
    elif len(sys.argv) < 2:
        sys.stderr.write("usage: %s BUILD_DIR\n" % sys.argv[0])
        sys.exit(2)
    else:
        sys.exit(outside(sys.argv))
