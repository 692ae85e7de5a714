#!/usr/bin/python3
# suite: alone
"""
test_broken_link.py -- a link that dies under a steady stream: orchester
notices within -K, and every line reaches the backend at least once.

The delivery rule: a datapoint written to a TCP destination counts as
delivered only once the peer's TCP stack has acknowledged its bytes; until
then it stays queued, and when a connection breaks, everything not yet
acknowledged is sent again on the next one.  A dead path is given up after
-K MS (TCP_USER_TIMEOUT and keepalives) instead of the kernel's ~15 minutes
of retransmits.

The test makes a network namespace NS and a veth pair between it and the
root namespace, addressed 169.254.213.1/30 (root) and 169.254.213.2/30
(NS): link-local, so nothing can leave the machine.  Two sinks run inside
NS (a small Python server each, recording the whole lines it receives to a
file): port 2003 for orchester, port 2004 for carbon-c-relay.  In the root
namespace, orchester (-K 3000) and carbon-c-relay each forward everything
from a listener on 127.0.0.1 to their sink, and each gets its own steady
stream of seq.N lines (5,000 a second).

Once both sinks receive their stream, the link is taken down from inside NS
(`ip -n NS link set VETH down`: nothing the relays send is answered) for 12
seconds (10 on a sanitizer build), and brought up again.  Then the streams stop.  Checks:

  - orchester logs a `dest:` line about the destination after the link went
    down, within 3000 ms + 10 s and before the link came back (it gave the
    dead connection up; today's code keeps it and retransmits);
  - orchester delivers again after the link is back;
  - every seq line sent to orchester reaches the sink at least once (a line
    resent after the break may arrive twice: duplicates are counted and
    printed, not failed).

A second orchester, with a Redis buffer (a private redis-server) and
`match * critical send to s`, gets a stream of its own to a third sink,
port 2005, through the same outage: every one of its critical datapoints
must arrive too (those the dead connection did not deliver are taken back
and spilled to Redis, and replayed once the link is back; its buffered and
replayed counters are printed).

carbon-c-relay (Debian's) goes through the same outage; how many of its
lines never arrived is printed ("# carbon-c-relay lost N of M"), and never
fails the test.

When orchester refuses -K (a build without the delivery rule), that check
fails with orchester's own words, and the rest runs orchester without -K, to
show what that build does with a dead link.

Needs root (network namespaces, veth) and `ip`; without them it says SKIP
and checks nothing.  The namespace and the veth pair are removed at the
end, also on failure.
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, Proc, SeqStream, WaitTimeout,  # noqa: E402
                     GiveUp, CheckFailed, require, free_port, wait_until,
                     tcp_accepts, check_build, ctl_status, sanitized)

ROOT_IP = "169.254.213.1"
NS_IP = "169.254.213.2"
PREFIX = 30
ORCH_SINK_PORT = 2003      # in NS, a namespace of its own: these are free
CRELAY_SINK_PORT = 2004
CRIT_SINK_PORT = 2005
USER_TIMEOUT_MS = 3000     # -K
DETECT_BOUND = USER_TIMEOUT_MS / 1000.0 + 10.0
OUTAGE_S = 12.0
OUTAGE_SANITIZED_S = 10.0  # a sanitizer build: still far past -K
RATE = 5000                # lines a second, per stream
# -q: the default (100,000) is what 20 s of the stream fill; lines dropped
# at a full queue would be a different loss from the one looked for here
QUEUE = 1000000
PRE_LINES = 2 * RATE       # what each sink has before the link goes down
RESUME_S = 30.0
DELIVER_S = 60.0
# past the longest reconnect delay (5 s, times up to 1.25) and a connect
# timeout (3 s): a sink that got nothing for this long gets nothing more
QUIET_S = 15.0
CRELAY = "/usr/bin/carbon-c-relay"
IP_TIMEOUT = 10.0

NS = "orchtest-bl-%d" % os.getpid()
VETH_ROOT = "obl%dr" % os.getpid()     # at most 15 characters
VETH_NS = "obl%dn" % os.getpid()

SINK_PY = r'''
import os, selectors, socket, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(64)
ls.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
partial = {}
def log(msg):
    sys.stderr.write("%.3f %s\n" % (time.monotonic(), msg))
    sys.stderr.flush()
log("listening on %s:%d" % (host, port))
while True:
    for key, _ in sel.select():
        if key.fileobj is ls:
            try:
                c, peer = ls.accept()
            except OSError:
                continue
            c.setblocking(False)
            partial[c] = b""
            sel.register(c, selectors.EVENT_READ)
            log("accepted %s:%d" % peer)
            continue
        c = key.fileobj
        try:
            data = c.recv(1 << 20)
        except BlockingIOError:
            continue
        except OSError as e:
            log("recv: %s" % e)
            data = b""
        if not data:
            sel.unregister(c)
            c.close()
            left = partial.pop(c, b"")   # a last line without \n is no line
            log("closed, %d bytes of an unfinished line dropped" % len(left))
            continue
        buf = partial[c] + data
        cut = buf.rfind(b"\n") + 1
        partial[c] = buf[cut:]
        mv = memoryview(buf)[:cut]
        while mv:                        # whole lines only, one write a read
            n = os.write(fd, mv)
            mv = mv[n:]
'''


# ---------------------------------------------------------------------------
# the namespace and the veth pair

def ip(*args, check=True):
    """Run ip ARGS; return its stdout.  With check, fail on a non-zero exit."""
    try:
        r = subprocess.run(["ip"] + list(args), capture_output=True, text=True,
                           timeout=IP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CheckFailed("ip %s: no exit within %.0f s" % (" ".join(args), IP_TIMEOUT))
    if check and r.returncode != 0:
        raise CheckFailed("ip %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                  r.stderr.strip()))
    return r.stdout


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers():
    """Remove namespaces and veths this test made in runs that are gone (their
    pid in the name no longer runs), and any of this run's names."""
    for ln in ip("netns", "list", check=False).splitlines():
        name = ln.split()[0] if ln.split() else ""
        m = re.match(r"^orchtest-bl-(\d+)$", name)
        if m and (name == NS or not pid_alive(int(m.group(1)))):
            ip("netns", "del", name, check=False)
    for ln in ip("-o", "link", "show", check=False).splitlines():
        m = re.match(r"^\d+:\s+(obl(\d+)[rn])[@:]", ln)
        if m and (m.group(1) in (VETH_ROOT, VETH_NS)
                  or not pid_alive(int(m.group(2)))):
            ip("link", "del", m.group(1), check=False)


def make_link():
    remove_leftovers()
    for ln in ip("-o", "-4", "addr", "show").splitlines():
        if " inet %s/" % ROOT_IP in ln:
            raise CheckFailed("%s is already on an interface here (another run of "
                              "this test?): %s" % (ROOT_IP, ln.strip()))
    ip("netns", "add", NS)
    ip("link", "add", VETH_ROOT, "type", "veth", "peer", "name", VETH_NS)
    ip("link", "set", VETH_NS, "netns", NS)
    ip("addr", "add", "%s/%d" % (ROOT_IP, PREFIX), "dev", VETH_ROOT)
    ip("-n", NS, "addr", "add", "%s/%d" % (NS_IP, PREFIX), "dev", VETH_NS)
    ip("link", "set", VETH_ROOT, "up")
    ip("-n", NS, "link", "set", VETH_NS, "up")
    ip("-n", NS, "link", "set", "lo", "up")


def ns_has_address():
    return (" inet %s/%d " % (NS_IP, PREFIX)) in ip("-n", NS, "-o", "-4", "addr",
                                                   "show", "dev", VETH_NS)


# ---------------------------------------------------------------------------
# what a sink recorded

class Arrivals:
    """Follows a sink's file: which seq numbers arrived, how often."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.rest = b""
        self.seen = set()
        self.total = 0
        self.top = -1
        self.last_growth = time.monotonic()

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return self
        if not data:
            return self
        self.off += len(data)
        self.last_growth = time.monotonic()
        buf = self.rest + data
        cut = buf.rfind(b"\n") + 1
        self.rest = buf[cut:]
        for ln in buf[:cut].split(b"\n"):
            if not ln.startswith(b"seq."):
                continue              # the relays' own metrics
            try:
                n = int(ln.split(b" ", 1)[0][4:])
            except ValueError:
                continue
            self.total += 1
            self.seen.add(n)
            if n > self.top:
                self.top = n
        return self

    def missing(self, n):
        return n - len([i for i in self.seen if i < n])

    def complete(self, n):
        self.update()
        return self.missing(n) == 0

    def missing_ranges(self, n, k=4):
        """The first k runs of missing numbers below n, as "A-B" texts."""
        out, start = [], None
        for i in range(n + 1):
            gone = i < n and i not in self.seen
            if gone and start is None:
                start = i
            elif not gone and start is not None:
                out.append("seq.%d-%d" % (start, i - 1) if i - 1 > start
                           else "seq.%d" % start)
                start = None
                if len(out) >= k:
                    break
        return out

    def dups(self):
        return self.total - len(self.seen)


class LogFollower:
    """New lines of a growing log file, from the offset where it was made."""

    def __init__(self, path):
        self.path = path
        self.off = os.path.getsize(path) if os.path.exists(path) else 0
        self.rest = b""

    def new_lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return []
        self.off += len(data)
        buf = self.rest + data
        cut = buf.rfind(b"\n") + 1
        self.rest = buf[cut:]
        return [ln.decode("utf-8", "replace") for ln in buf[:cut].splitlines()]


# ---------------------------------------------------------------------------

def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    def cleanup_link():
        for p in sinks:
            p.stop(timeout=5)
        # whatever of ours still runs in the namespace goes with it
        for pid in ip("netns", "pids", NS, check=False).split():
            try:
                os.kill(int(pid), 9)
            except (ValueError, OSError):
                pass
        ip("link", "del", VETH_ROOT, check=False)
        ip("netns", "del", NS, check=False)

    sinks = []
    t.on_cleanup(cleanup_link)
    with t.check("namespace %s with a veth pair %s/%s, %s and %s"
                 % (NS, VETH_ROOT, VETH_NS, ROOT_IP, NS_IP), fatal=True):
        make_link()

    script = t.write("sink.py", SINK_PY)
    orch_file = t.tmp.join("orchester-sink.lines")
    crelay_file = t.tmp.join("crelay-sink.lines")
    crit_file = t.tmp.join("critical-sink.lines")
    with t.check("the sinks in %s accept connections over the veth" % NS, fatal=True):
        for name, port, path in (("sink-orchester", ORCH_SINK_PORT, orch_file),
                                 ("sink-crelay", CRELAY_SINK_PORT, crelay_file),
                                 ("sink-critical", CRIT_SINK_PORT, crit_file)):
            p = t.proc(name, ["ip", "netns", "exec", NS, "/usr/bin/python3", script,
                              NS_IP, str(port), path])
            sinks.append(p.start())
        for port in (ORCH_SINK_PORT, CRELAY_SINK_PORT, CRIT_SINK_PORT):
            wait_until(lambda: tcp_accepts(port, host=NS_IP), 10.0,
                       "%s:%d to accept a connection from the root namespace"
                       % (NS_IP, port))

    # -- orchester --------------------------------------------------------
    lport = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    dest_tag = "dest: s %s:%d" % (NS_IP, ORCH_SINK_PORT)
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster s forward %s:%d ;
match * send to s ;
""" % (lport, control, NS_IP, ORCH_SINK_PORT)
    conf_path = t.write("orchester.conf", conf)
    orch = None
    refused = False
    with t.check("orchester starts with -K %d" % USER_TIMEOUT_MS):
        p = t.orchester("orchester", conf_path, "-K", str(USER_TIMEOUT_MS),
                        "-q", str(QUEUE))
        p.start()
        try:
            t.wait_ready(p, control, (lport,), timeout=30.0)
            orch = p
        except CheckFailed:
            p.stop()
            p.ours = False     # its exit is this check's failure, not the last one's
            said = [ln for ln in p.stderr().splitlines() if "-- 'K'" in ln]
            refused = bool(said)
            require(not refused, "orchester refuses -K (a build without the "
                    "delivery rule?): exit %s: %s" % (p.returncode,
                                                    said[0].strip() if said else ""))
            raise
    if orch is None and not refused:
        return     # it failed for another reason, said above: nothing to run
    if orch is None:
        with t.check("orchester starts without -K (this build refused it: what "
                     "follows shows what it does with a dead link)", fatal=True):
            orch = t.start_orchester("orchester-no-K", conf, opts=("-q", str(QUEUE)),
                                     control=control, tcp_ports=(lport,))

    # -- orchester with critical datapoints and a Redis buffer -------------
    redis = t.redis()
    kport = free_port()
    kcontrol = "tcp://127.0.0.1:%d" % free_port()
    kconf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster s forward %s:%d ;
buffer redis %s ;
match * critical send to s ;
""" % (kport, kcontrol, NS_IP, CRIT_SINK_PORT, redis.target)
    korch = None
    with t.check("orchester with a Redis buffer and critical datapoints starts"):
        korch = t.start_orchester("orchester-critical", kconf,
                                  opts=("-K", str(USER_TIMEOUT_MS), "-q", str(QUEUE)),
                                  control=kcontrol, tcp_ports=(kport,))

    # -- carbon-c-relay, for comparison: never a check --------------------
    crelay = None
    cport = free_port()
    if os.access(CRELAY, os.X_OK):
        cconf = t.write("carbon-c-relay.conf", """listen type linemode
    127.0.0.1:%d proto tcp
    ;
cluster s forward %s:%d ;
match * send to s ;
""" % (cport, NS_IP, CRELAY_SINK_PORT))
        # its own Proc, not the test's: its death must not end orchester's waits
        crelay = Proc("carbon-c-relay", [CRELAY, "-f", cconf, "-H", "brokenlink",
                                         "-q", str(QUEUE)], t.tmp.path)
        t.on_cleanup(crelay.stop)
        crelay.start()
        try:
            wait_until(lambda: crelay.alive() and tcp_accepts(cport), 20.0,
                       "carbon-c-relay to accept connections")
        except WaitTimeout as e:
            sys.stderr.write("# carbon-c-relay did not start (%s): %s\n"
                             % (e, crelay.stderr_tail(400).strip()))
            crelay.stop(timeout=5)
            crelay = None
    else:
        sys.stderr.write("# %s is not installed: no comparison\n" % CRELAY)

    # -- the streams --------------------------------------------------------
    oarr = Arrivals(orch_file)
    carr = Arrivals(crelay_file)
    karr = Arrivals(crit_file)
    ostream = SeqStream(lport, RATE)
    streams = [ostream]
    kstream = None
    if korch is not None:
        kstream = SeqStream(kport, RATE)
        streams.append(kstream)
    cstream = None
    if crelay is not None:
        cstream = SeqStream(cport, RATE)
        streams.append(cstream)
    t.on_cleanup(lambda: [s.stop.set() for s in streams])
    for s in streams:
        s.start()

    with t.check("the sink receives orchester's stream before the outage", fatal=True):
        wait_until(lambda: oarr.update().total >= PRE_LINES, 20.0,
                   lambda: "%d lines at the sink (have %d)" % (PRE_LINES, oarr.total))
    if cstream is not None:
        try:
            wait_until(lambda: carr.update().total >= PRE_LINES or not crelay.alive(),
                       20.0, "carbon-c-relay's lines at its sink")
        except WaitTimeout as e:
            sys.stderr.write("# carbon-c-relay before the outage: %s\n" % e)

    # -- the outage ---------------------------------------------------------
    olog = LogFollower(orch.err_path)
    clog = LogFollower(crelay.err_path) if crelay is not None else None
    gave_up = None          # (seconds after the link went down, the line)
    crelay_said = []
    outage = OUTAGE_SANITIZED_S if sanitized(t.build) else OUTAGE_S
    with t.check("the link goes down (from inside %s) and up again %.0f s "
                 "later, keeping its address" % (NS, outage), fatal=True):
        t_down = time.monotonic()
        ip("-n", NS, "link", "set", VETH_NS, "down")
        # The outage itself is the scenario, timed by the clock (not a wait
        # for a condition): it lasts `outage` whatever happens.  Meanwhile
        # the relays' logs are read, to time when orchester gives up.
        while True:
            now = time.monotonic()
            for ln in olog.new_lines():
                if gave_up is None and dest_tag + ":" in ln:
                    gave_up = (now - t_down, ln.strip())
            if clog is not None:
                crelay_said.extend("%.1f s: %s" % (now - t_down, ln.strip())
                                   for ln in clog.new_lines())
            left = t_down + outage - now
            if left <= 0:
                break
            time.sleep(min(0.05, left))
        ip("-n", NS, "link", "set", VETH_NS, "up")
        t_up = time.monotonic()
        sent_at_up = ostream.sent
        csent_at_up = cstream.sent if cstream is not None else 0
        if not ns_has_address():   # it does keep it; this is in case it stops
            sys.stderr.write("# %s lost its address when down: added again\n" % VETH_NS)
            ip("-n", NS, "addr", "add", "%s/%d" % (NS_IP, PREFIX), "dev", VETH_NS)
        require(ns_has_address(), "%s has no address %s after coming up"
                % (VETH_NS, NS_IP))
        sys.stderr.write("# link down for %.1f s; %d lines sent to orchester by then\n"
                         % (t_up - t_down, sent_at_up))

    with t.check("orchester gives up the dead connection within %d ms + 10 s, "
                 "before the link is back" % USER_TIMEOUT_MS):
        require(gave_up is not None,
                "no '%s:' line in orchester's log during the %.0f s outage (the "
                "dead connection was kept: the kernel retransmits for ~15 minutes)"
                % (dest_tag, outage))
        sys.stderr.write("# orchester gave up %.2f s after the link went down: %s\n"
                         % gave_up)
        require(gave_up[0] <= DETECT_BOUND, "it took %.1f s: %s" % gave_up)

    with t.check("orchester delivers again once the link is back"):
        wait_until(lambda: oarr.update().top >= sent_at_up, RESUME_S,
                   lambda: "seq.%d (sent after the link came back) at the sink; "
                   "the highest there is seq.%d" % (sent_at_up, oarr.top))
        sys.stderr.write("# orchester delivered again %.1f s after the link came up\n"
                         % (time.monotonic() - t_up))

    n_orch = ostream.sent
    with t.check("the stream to orchester ends cleanly"):
        n_orch = ostream.finish()
    n_crit = None
    if kstream is not None:
        with t.check("the stream to the critical orchester ends cleanly"):
            n_crit = kstream.finish()
    n_crelay = None
    if cstream is not None:
        try:
            n_crelay = cstream.finish()
        except CheckFailed as e:
            n_crelay = cstream.sent
            sys.stderr.write("# the stream to carbon-c-relay: %s\n" % e)

    with t.check("every one of orchester's lines reaches the sink at least once"):
        def all_there():
            if oarr.complete(n_orch):
                return True
            if time.monotonic() - oarr.last_growth > QUIET_S:
                raise GiveUp("nothing came to the sink for %.0f s" % QUIET_S)
            return False
        try:
            wait_until(all_there, DELIVER_S,
                       lambda: "seq.0 to seq.%d at the sink" % (n_orch - 1))
        except (WaitTimeout, GiveUp) as e:
            miss = oarr.missing(n_orch)
            require(False, "%s: %d of %d never arrived (missing: %s), %d duplicates"
                    % (e, miss, n_orch, ", ".join(oarr.missing_ranges(n_orch)),
                       oarr.dups()))
        sys.stderr.write("# orchester: %d lines sent, all arrived, %d duplicates\n"
                         % (n_orch, oarr.dups()))
    if n_crit is not None:
        with t.check("every critical datapoint reaches the sink at least once"):
            def crit_there():
                if karr.complete(n_crit):
                    return True
                if time.monotonic() - karr.last_growth > QUIET_S + 10:
                    raise GiveUp("nothing came to the sink for %.0f s" % (QUIET_S + 10))
                return False
            try:
                wait_until(crit_there, DELIVER_S,
                           lambda: "seq.0 to seq.%d at the sink" % (n_crit - 1))
            except (WaitTimeout, GiveUp) as e:
                require(False, "%s: %d of %d never arrived (missing: %s)"
                        % (e, karr.missing(n_crit), n_crit,
                           ", ".join(karr.missing_ranges(n_crit))))
            # the counters reach the status once a second
            wait_until(lambda: ctl_status(t.build, kcontrol)["counters"].get(
                "backlog", -1) == 0, 30, "the backlog to be 0")
            kst = ctl_status(t.build, kcontrol)["counters"]
            require(kst.get("replayed", 0) == kst.get("buffered", 0),
                    "buffered %d, replayed %d" % (kst.get("buffered", 0),
                                                  kst.get("replayed", 0)))
            sys.stderr.write("# orchester (critical): %d lines sent, all arrived, %d "
                             "duplicates; buffered %d, replayed %d in Redis\n"
                             % (n_crit, karr.dups(), kst.get("buffered", 0),
                                kst.get("replayed", 0)))
    # what orchester's status says of the destination (a diagnostic; its
    # counters reach the status once a second)
    box = {}

    def drained():
        box["d"] = ctl_status(t.build, control)["destinations"].get(
            ("s", "%s:%d" % (NS_IP, ORCH_SINK_PORT)))
        return box["d"] is not None and box["d"].get("queued") == 0
    try:
        wait_until(drained, 5.0, "queued=0 in orchester's status")
    except WaitTimeout as e:
        sys.stderr.write("# %s\n" % e)
    sys.stderr.write("# orchester's status of the destination: %r\n" % box.get("d"))

    # -- carbon-c-relay's result: reported only -----------------------------
    if cstream is not None:
        def settled():
            carr.update()
            # its last line arrived (it sends in order), or nothing came for 5 s
            return (carr.complete(n_crelay) or n_crelay - 1 in carr.seen
                    or time.monotonic() - carr.last_growth > 5.0)
        try:
            wait_until(settled, 30.0, "carbon-c-relay's sink to settle")
        except WaitTimeout as e:
            sys.stderr.write("# carbon-c-relay: %s\n" % e)
        carr.update()
        lost = carr.missing(n_crelay)
        sys.stderr.write("# carbon-c-relay lost %d of %d (%d duplicates; missing: %s)\n"
                         % (lost, n_crelay, carr.dups(),
                            ", ".join(carr.missing_ranges(n_crelay)) or "none"))
        for ln in crelay_said[:8]:
            sys.stderr.write("# carbon-c-relay during the outage, %s\n" % ln)
        for ln in crelay.stderr_tail(1500).splitlines()[-6:]:
            sys.stderr.write("# carbon-c-relay's log: %s\n" % ln)
        sys.stderr.write("# carbon-c-relay: %d lines sent by the time the link came up\n"
                         % csent_at_up)
    for p in sinks:
        for ln in p.stderr().splitlines():
            if "accepted" in ln or "closed" in ln:
                sys.stderr.write("# %s: %s\n" % (p.name, ln))


def main():
    if os.geteuid() != 0:
        print("SKIP: test_broken_link needs root (network namespaces, veth); "
              "nothing checked")
        return 0
    if shutil.which("ip") is None:
        print("SKIP: test_broken_link needs ip (iproute2); nothing checked")
        return 0
    Test().run(body)


if __name__ == "__main__":
    sys.exit(main())
