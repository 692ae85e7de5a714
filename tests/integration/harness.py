"""
harness.py -- shared pieces of orchester's integration tests.

Every tests/integration/test_X.py runs as
    /usr/bin/python3 tests/integration/test_X.py BUILD_DIR
from the top of the source tree.  BUILD_DIR holds relay/orchester,
relay/satellite and relay/orchester-ctl (an in-tree build or a separate
sanitizer build directory).  A test prints exactly one line per check on
stdout, "PASS: name" or "FAIL: name: why", writes diagnostics (the tail of
the daemons' stderr) to stderr with a "# " prefix, and exits non-zero when
any check failed.

What is here:
  free_port / free_port_pair   ports on 127.0.0.1 chosen by the kernel
  TempDir                      a mkdtemp() directory removed at the end
  Proc                         a started program, logged to files, stopped by PID
  wait_until                   the one way to wait: poll a predicate, bounded
  Sink                         a TCP server that records the lines it receives
  ctl / ctl_status             orchester-ctl, and its status records parsed
  send_tcp / send_udp          clients that send prebuilt blocks of lines
  CarbonCache / Collectd       the real Debian carbon-cache and collectd
  Test                         checks, cleanup and the exit code

Standard library only (plus python3-whisper in the test that reads whisper
files).
"""

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HOST = "127.0.0.1"

# Bounds shared by the tests.  Sanitizer builds run a few times slower, so
# the bounds are generous; a passing run never waits for them.
START_TIMEOUT = 30.0     # a daemon accepts connections / answers status
STOP_TIMEOUT = 20.0      # SIGTERM to exit, before SIGKILL
CTL_TIMEOUT = 10.0       # one orchester-ctl run (it gives up after 3 s itself)


class CheckFailed(Exception):
    """A check's condition did not hold; the message says why."""


class Interrupted(BaseException):
    """The test program got SIGTERM (a runner's timeout)."""


class Abort(Exception):
    """Raised after a fatal check failed: the rest of the test is skipped."""


def require(cond, why):
    """Fail the current check with why unless cond holds."""
    if not cond:
        raise CheckFailed(why)


# ---------------------------------------------------------------------------
# ports and directories

def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that was free a moment ago (the kernel picked it)."""
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_port_pair():
    """A port free for both TCP and UDP on 127.0.0.1 (a listen statement that
    names the same address with proto tcp and proto udp needs one)."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((HOST, 0))
            port = t.getsockname()[1]
            try:
                u.bind((HOST, port))
            except OSError:
                continue
            return port
        finally:
            t.close()
            u.close()
    raise RuntimeError("no port free for both tcp and udp")


class ReservedPort:
    """A port on 127.0.0.1 held by a bound socket that does not listen: a
    connect to it is refused, and the kernel will not hand it out as the
    local port of an outgoing connection (so a client that keeps
    reconnecting to it can never connect to itself)."""

    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.port = self.sock.getsockname()[1]

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class TempDir:
    """A private temporary directory; remove() deletes it (safe twice)."""

    def __init__(self, prefix="orchester-it-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def write(self, name, text):
        """Write text to a file in the directory; return its path."""
        p = self.join(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def remove(self):
        if self.path and os.path.isdir(self.path):
            shutil.rmtree(self.path, ignore_errors=True)
        self.path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


# ---------------------------------------------------------------------------
# waiting

class WaitTimeout(CheckFailed):
    """wait_until's bound passed before its predicate held."""


class GiveUp(CheckFailed):
    """Raised by a wait_until predicate when waiting longer is pointless (the
    daemon died, say): wait_until passes it on at once."""


# Called by wait_until before each poll; raises GiveUp when a daemon the
# test relies on has died (set by Test, so a dead daemon fails a wait at
# once instead of at its bound).
_liveness_hook = None


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value; return that value.
    Raise WaitTimeout naming what after timeout seconds.  An exception from
    pred counts as "not yet" (the last one is named in the message), except
    GiveUp, which ends the wait at once.  what may be a function returning
    the text, to describe the state at the end of the wait."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        if _liveness_hook is not None:
            _liveness_hook()
        try:
            v = pred()
            if v:
                return v
            last_exc = None
        except GiveUp:
            raise
        except Exception as e:  # not ready yet, e.g. connection refused
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (
                timeout, what() if callable(what) else what)
            if last_exc is not None:
                msg += " (last error: %s: %s)" % (type(last_exc).__name__, last_exc)
            raise WaitTimeout(msg)
        time.sleep(interval)


def tcp_accepts(port, host=HOST):
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def unix_accepts(path):
    """True when something accepts a connection on the unix socket path."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------
# processes

def tail(path, nbytes=4000):
    """The last nbytes of a file as text ('' when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class Proc:
    """A program started by a test, its stdout and stderr in files under dir.
    stop() sends SIGTERM, waits up to a bound, then SIGKILLs, by PID."""

    def __init__(self, name, argv, dir, stdin=None, env=None, cwd=None):
        self.name = name
        self.argv = list(argv)
        self.dir = dir
        self.env = env
        self.cwd = cwd
        self.stdin = stdin
        self.p = None
        self.runs = 0
        self.out_path = None
        self.err_path = None
        self.err_paths = []      # stderr of every run
        self.ours = False        # an orchester program: checked at the end
        self.expect_alive = False  # started and not yet told to stop

    def start(self):
        """Start the program (again, after it exited: new log files)."""
        self.runs += 1
        sfx = "" if self.runs == 1 else ".%d" % self.runs
        self.out_path = os.path.join(self.dir, "%s%s.stdout" % (self.name, sfx))
        self.err_path = os.path.join(self.dir, "%s%s.stderr" % (self.name, sfx))
        self.err_paths.append(self.err_path)
        out = open(self.out_path, "wb")
        err = open(self.err_path, "wb")
        try:
            self.p = subprocess.Popen(
                self.argv, stdout=out, stderr=err,
                stdin=self.stdin if self.stdin is not None else subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, close_fds=True)
        finally:
            out.close()
            err.close()
        self.expect_alive = True
        return self

    @property
    def pid(self):
        return self.p.pid if self.p else None

    def alive(self):
        return self.p is not None and self.p.poll() is None

    @property
    def returncode(self):
        return self.p.poll() if self.p else None

    def signal(self, sig):
        self.expect_alive = False
        if self.alive():
            os.kill(self.p.pid, sig)

    def wait(self, timeout):
        """Wait up to timeout s for exit; return the exit code or None."""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to timeout, then SIGKILL.  Returns the exit code
        (negative for a signal) and whether SIGKILL was needed."""
        self.expect_alive = False
        if self.p is None:
            return None, False
        if self.p.poll() is not None:
            return self.p.returncode, False
        try:
            os.kill(self.p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        rc = self.wait(timeout)
        if rc is not None:
            return rc, False
        try:
            os.kill(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.p.wait(), True

    def crash(self, timeout=STOP_TIMEOUT):
        """Kill it with SIGKILL (a crash the test makes on purpose: the
        final check does not count its exit status) and reap it."""
        self.crashed = True
        self.signal(signal.SIGKILL)
        self.wait(timeout)

    def stdout(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def stderr_tail(self, nbytes=4000):
        return tail(self.err_path, nbytes) if self.err_path else ""


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


def sanitizer_report(text):
    """The first line of a sanitizer report in text, or ''."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            return line.strip()
    return ""


def run(argv, timeout, stdin_data=None, env=None):
    """Run a short program to completion within timeout seconds.
    Returns (returncode, stdout, stderr, elapsed); returncode is None when it
    had to be killed at the bound."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(stdin_data, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    return (rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
            time.monotonic() - t0)


# ---------------------------------------------------------------------------
# the sink: a carbon backend stand-in that records what it receives

class Sink:
    """A TCP server on 127.0.0.1 that records every line it receives.

    It accepts any number of connections.  lines holds every line (bytes,
    without '\\n') in arrival order; conns holds one list per connection.
    stop() closes the listener and every connection, so whoever was
    connected sees the connection drop and new connections are refused (the
    port stays reserved for the sink, see ReservedPort); start() listens
    again on the same port.  pause() and resume() stop and restart reading,
    for a destination that is alive but slow."""

    def __init__(self, port=None, rcvbuf=None):
        self.port = port          # None: the first start() binds port 0
        self.rcvbuf = rcvbuf
        self.paused = False
        self.lock = threading.Lock()
        self.lines = []
        self.conns = []
        self.accepted = 0
        self._thread = None
        self._stop = False
        self._wake_r = None
        self._wake_w = None
        self._hold = None
        self.running = False

    def start(self):
        if self._hold is not None:
            self._hold.close()
            self._hold = None
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            # accepted connections inherit it: a small window makes a
            # paused sink push back on the sender quickly
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        ls.bind((HOST, self.port or 0))
        self.port = ls.getsockname()[1]
        ls.listen(128)
        ls.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, args=(ls,),
                                        name="sink-%d" % self.port, daemon=True)
        self._thread.start()
        self.running = True
        return self

    def _loop(self, ls):
        sel = selectors.DefaultSelector()
        sel.register(ls, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        partial = {}
        idle = {}        # connections not read while paused: socket -> index
        try:
            while not self._stop:
                if self.paused and not idle:
                    for key in list(sel.get_map().values()):
                        if key.fileobj is not ls and key.data != "wake":
                            idle[key.fileobj] = key.data
                            sel.unregister(key.fileobj)
                elif not self.paused and idle:
                    for c, idx in idle.items():
                        sel.register(c, selectors.EVENT_READ, idx)
                    idle = {}
                for key, _ in sel.select(timeout=0.5):
                    if key.data == "wake":
                        try:
                            self._wake_r.recv(4096)
                        except OSError:
                            pass
                        continue
                    if key.fileobj is ls:
                        try:
                            c, _ = ls.accept()
                        except OSError:
                            continue
                        c.setblocking(False)
                        with self.lock:
                            self.conns.append([])
                            idx = len(self.conns) - 1
                            self.accepted += 1
                        partial[c] = b""
                        if self.paused:
                            idle[c] = idx
                        else:
                            sel.register(c, selectors.EVENT_READ, idx)
                        continue
                    c = key.fileobj
                    try:
                        data = c.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(c)
                        c.close()
                        # a last line without '\n' is not a line; drop it
                        partial.pop(c, None)
                        continue
                    buf = partial[c] + data
                    parts = buf.split(b"\n")
                    partial[c] = parts.pop()
                    if parts:
                        with self.lock:
                            self.lines.extend(parts)
                            self.conns[key.data].extend(parts)
        finally:
            for key in list(sel.get_map().values()):
                try:
                    key.fileobj.close()
                except OSError:
                    pass
            for c in idle:
                c.close()
            sel.close()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def pause(self):
        """Stop reading from connections (new ones are accepted but not
        read): the sender sees a live destination that takes nothing."""
        self.paused = True
        self._wake()

    def resume(self):
        """Read again."""
        self.paused = False
        self._wake()

    def stop(self, hold=True):
        """Close the listener and all connections; wait for the thread.
        With hold, the port stays reserved (connects are refused) until
        start() or release()."""
        if not self.running:
            return
        self._stop = True
        self._wake()
        self._thread.join(10)
        self._wake_w.close()
        self.running = False
        if hold:
            self._hold = ReservedPort(self.port)

    def release(self):
        """Free a port held since stop()."""
        if self._hold is not None:
            self._hold.close()
            self._hold = None

    def count(self):
        with self.lock:
            return len(self.lines)

    def snapshot(self):
        """A copy of the lines received so far."""
        with self.lock:
            return list(self.lines)

    def conn_snapshot(self):
        with self.lock:
            return [list(c) for c in self.conns]

    def clear(self):
        with self.lock:
            self.lines = []
            self.conns = [[] for _ in self.conns]

    def wait_count(self, n, timeout, what=None):
        """Wait until at least n lines arrived."""
        try:
            return wait_until(lambda: self.count() >= n, timeout,
                              what or "%d lines at the sink on port %d"
                              % (n, self.port))
        except WaitTimeout as e:
            raise WaitTimeout("%s (have %d)" % (e, self.count()))


class SinkTracker:
    """Follows a sink's lines incrementally (cheap to poll in wait_until):
    which of the expected lines have arrived, and how many lines came that
    were not expected."""

    def __init__(self, sink, expected):
        self.sink = sink
        self.missing = set(expected)
        self.pos = 0
        self.unexpected = 0
        self.total = 0

    def update(self):
        with self.sink.lock:
            new = self.sink.lines[self.pos:]
            self.pos += len(new)
        for ln in new:
            self.total += 1
            self.missing.discard(ln)
        return self

    def complete(self):
        return not self.update().missing


def lines_with_prefix(lines, prefix):
    """The lines (bytes) that start with prefix (bytes), in order."""
    return [ln for ln in lines if ln.startswith(prefix)]


def first_difference(got, exp):
    """Describe where two lists of lines first differ ('' when equal)."""
    if got == exp:
        return ""
    for i, (g, e) in enumerate(zip(got, exp)):
        if g != e:
            return "at index %d: got %r, expected %r (got %d lines, expected %d)" % (
                i, g[:120], e[:120], len(got), len(exp))
    return "got %d lines, expected %d (the common part is equal)" % (len(got), len(exp))


# ---------------------------------------------------------------------------
# orchester-ctl

def ctl(build, args, timeout=CTL_TIMEOUT):
    """Run orchester-ctl ARGS; return (rc, stdout, stderr, elapsed)."""
    return run([os.path.join(build, "relay", "orchester-ctl")] + list(args),
               timeout)


def parse_status(text):
    """Parse orchester-ctl status output into
    {"listeners": [{"type","proto","addr"}],
     "destinations": {(cluster, addr): {"state": str, "queued": int, ...}},
     "counters": {name: int}, "routes": {"file", "changes"} (when any),
     "other": [lines]}"""
    st = {"listeners": [], "destinations": {}, "counters": {}, "other": []}
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "listener" and len(f) >= 4:
            st["listeners"].append({"type": f[1], "proto": f[2], "addr": f[3],
                                    "extra": f[4:]})
        elif f[0] == "destination" and len(f) >= 3:
            d = {}
            for kv in f[3:]:
                k, _, v = kv.partition("=")
                try:
                    d[k] = int(v)
                except ValueError:
                    d[k] = v
            st["destinations"][(f[1], f[2])] = d
        elif f[0] == "routes" and len(f) == 3 and f[2].startswith("changes="):
            st["routes"] = {"file": f[1], "changes": int(f[2][8:])}
        elif f[0] == "counter" and len(f) == 3:
            try:
                st["counters"][f[1]] = int(f[2])
            except ValueError:
                st["other"].append(line)
        else:
            st["other"].append(line)
    return st


def ctl_status(build, endpoint, timeout=CTL_TIMEOUT):
    """orchester-ctl -e ENDPOINT status, parsed.  Raises CheckFailed when it
    exits non-zero or does not finish in time."""
    rc, out, err, _ = ctl(build, ["-e", endpoint, "status"], timeout)
    if rc != 0:
        raise CheckFailed("orchester-ctl -e %s status: exit %s: %s"
                          % (endpoint, rc, err.strip()[-300:]))
    return parse_status(out)


def rss_kb(pid):
    """The resident memory of process pid, in kB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def counter(st, name):
    """A counter of a parsed status (0 when it is absent)."""
    return st["counters"].get(name, 0)


# ---------------------------------------------------------------------------
# TLS test certificates (the openssl command, in a test's temp dir)

def openssl(t, *args):
    """Run `openssl ARGS` in t's temp dir; a failure fails the check."""
    p = subprocess.run(["openssl"] + list(args), cwd=t.tmp.path,
                       capture_output=True, text=True, timeout=60)
    require(p.returncode == 0, "openssl %s: %s" % (args[0], p.stderr[-400:]))


def make_pki(t, cn="orchester test CA"):
    """ca.pem, and server.pem (certificate and key, signed by the CA, for
    127.0.0.1 and localhost), in t's temp dir: their paths."""
    openssl(t, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=" + cn, "-keyout", "ca.key", "-out", "ca.pem")
    openssl(t, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")
    t.write("ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(t, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", "server.crt")
    with open(t.tmp.join("server.pem"), "w") as out:
        for f in ("server.crt", "server.key"):
            with open(t.tmp.join(f)) as src:
                out.write(src.read())
    return t.tmp.join("ca.pem"), t.tmp.join("server.pem")


# ---------------------------------------------------------------------------
# clients

def send_tcp(port, blocks, timeout=120.0, host=HOST, chunk=1 << 16):
    """Open one TCP connection per element of blocks (all opened before any
    sends), then send each connection's bytes concurrently with sendall, in
    chunks, and close.  A connection whose sends block for longer than
    timeout fails.  Returns a list of errors (empty when all went well)."""
    socks = [socket.create_connection((host, port), timeout=10.0)
             for _ in blocks]
    errors = []

    def one(s, data):
        try:
            s.settimeout(timeout)
            mv = memoryview(data)
            for off in range(0, len(mv), chunk):
                s.sendall(mv[off:off + chunk])
        except OSError as e:
            errors.append("connection %s: %s" % (s.getsockname(), e))
        finally:
            s.close()

    threads = [threading.Thread(target=one, args=(s, b)) for s, b in zip(socks, blocks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class SeqStream(threading.Thread):
    """A steady client: one TCP connection to port, sending
    "seq.N N TS" lines (N = 0, 1, ...) at rate lines per second in chunks
    of chunk lines, until stop is set.  sent counts the lines written;
    error holds what went wrong (None when nothing did); done is set when
    it has ended."""

    def __init__(self, port, rate, ts=None, chunk=20, host=HOST, limit=None,
                 name=b"seq", first=0):
        super().__init__(name="seq-stream", daemon=True)
        self.port, self.rate, self.chunk, self.host = port, rate, chunk, host
        self.ts = ts if ts is not None else int(time.time()) - 600
        self.limit = limit  # stop by itself after this many lines
        self.prefix = name + b"."
        self.first = first  # the first N
        self.sent = 0
        self.error = None
        self.stop = threading.Event()
        self.done = threading.Event()

    def run(self):
        try:
            s = socket.create_connection((self.host, self.port), timeout=10.0)
            s.settimeout(60.0)
            t0 = time.monotonic()
            n = 0
            while not self.stop.is_set():
                k = self.chunk
                if self.limit is not None:
                    k = min(k, self.limit - n)
                    if k <= 0:
                        break
                p, f = self.prefix, self.first
                s.sendall(b"".join(b"%s%d %d %d\n" % (p, i, i, self.ts)
                                   for i in range(f + n, f + n + k)))
                n += k
                self.sent = n
                ahead = n / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the client, not waiting for a condition
            s.close()
        except Exception as e:  # reported by whoever joins the thread
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            self.done.set()

    def finish(self, timeout=30.0):
        """Stop sending; raise CheckFailed unless it ended cleanly."""
        self.stop.set()
        if not self.done.wait(timeout):
            raise CheckFailed("the seq stream did not end in %.0f s" % timeout)
        if self.error is not None:
            raise CheckFailed("seq stream client: %s" % self.error)
        return self.sent


class TcpProxy:
    """A TCP proxy on 127.0.0.1: connections to .port are relayed to
    127.0.0.1:target.  cut() closes every relayed connection and refuses new
    ones (the port stays reserved); heal() relays again.  For links between
    the programs under test that a test cuts and heals."""

    def __init__(self, target):
        self.target = target
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((HOST, 0))
        self.port = self.ls.getsockname()[1]
        self.ls.listen(16)
        self.lock = threading.Lock()
        self.pairs = []
        self.open = True
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                if not self.open:
                    c.close()
                    continue
            try:
                u = socket.create_connection((HOST, self.target), timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pairs.append((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            self.open = False
            pairs, self.pairs = self.pairs, []
        for c, u in pairs:
            for x in (c, u):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                x.close()

    def heal(self):
        with self.lock:
            self.open = True

    def stop(self):
        self.stopped = True
        self.cut()
        self.ls.close()


class Redis:
    """A private redis-server on a unix socket in dir (no TCP port), as the
    appliance runs it: append-only file with fsync every second,
    noeviction; maxmemory when given.  cli() runs redis-cli against it."""

    def __init__(self, dir, name="redis", maxmemory=None):
        self.dir = os.path.join(dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "redis.sock")
        self.target = "unix:" + self.sock
        argv = ["redis-server", "--port", "0", "--unixsocket", self.sock,
                "--unixsocketperm", "700", "--dir", self.dir, "--save", "",
                "--appendonly", "yes", "--appendfsync", "everysec",
                "--maxmemory-policy", "noeviction", "--daemonize", "no"]
        if maxmemory:
            argv += ["--maxmemory", str(maxmemory)]
        self.proc = Proc(name, argv, dir)

    def start(self, timeout=START_TIMEOUT):
        self.proc.start()
        wait_until(lambda: self.ping(), timeout, "redis-server to answer")
        return self

    def stop(self):
        """SIGTERM (Redis writes its append-only file and exits)."""
        self.proc.stop()

    def freeze(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def ping(self):
        if not self.proc.alive():
            raise GiveUp("redis-server exited: %s" % self.proc.stdout()[-600:])
        try:
            return self.cli("PING", timeout=5.0) == "PONG"
        except CheckFailed:
            return False

    def cli(self, *args, timeout=30.0):
        """redis-cli ARGS: its output, stripped."""
        rc, out, err, _ = run(["redis-cli", "-s", self.sock] + [str(a) for a in args],
                              timeout)
        if rc != 0:
            raise CheckFailed("redis-cli %s: exit %s: %s" % (args[0], rc, err.strip()))
        return out.strip()

    def keys(self, pattern="*"):
        out = self.cli("--scan", "--pattern", pattern)
        return sorted(l for l in out.splitlines() if l)

    def stream_datapoints(self, key):
        """The datapoints a stream's entries hold (the sum of their n)."""
        script = ("local s = 0 for _, e in ipairs(redis.call('XRANGE', KEYS[1], "
                  "'-', '+')) do for i = 1, #e[2], 2 do if e[2][i] == 'n' then "
                  "s = s + tonumber(e[2][i + 1]) end end end return s")
        return int(self.cli("EVAL", script, 1, key))

    def stream_lines(self, key):
        """Every line the stream's entries hold, in order (bytes)."""
        script = ("local r = {} for _, e in ipairs(redis.call('XRANGE', KEYS[1], "
                  "'-', '+')) do for i = 1, #e[2], 2 do if e[2][i] == 'd' then "
                  "r[#r + 1] = e[2][i + 1] end end end return table.concat(r)")
        rc, out, err, _ = run(["redis-cli", "-s", self.sock, "--raw", "EVAL",
                               script, "1", key], 60.0)
        if rc != 0:
            raise CheckFailed("redis-cli EVAL: %s" % err.strip())
        return [l.encode() for l in out.split("\n") if l]


def send_unix(path, data, timeout=60.0):
    """Send data over a stream unix socket and close."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(data)
    finally:
        s.close()


def send_udp(port, datagrams, rate=2000.0, host=HOST):
    """Send each datagram (bytes) to host:port, at most rate datagrams per
    second (UDP has no backpressure: the kernel drops what a receiver does
    not read in time)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t0 = time.monotonic()
        for i, d in enumerate(datagrams):
            s.sendto(d, (host, port))
            ahead = (i + 1) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)  # pacing the sender, not waiting for a condition
    finally:
        s.close()


def pack_datagrams(lines, maxsize=1400):
    """Pack lines (bytes with their '\\n') into datagrams below maxsize bytes."""
    out, cur = [], b""
    for ln in lines:
        if cur and len(cur) + len(ln) >= maxsize:
            out.append(cur)
            cur = b""
        cur += ln
    if cur:
        out.append(cur)
    return out


# ---------------------------------------------------------------------------
# orchester and satellite

def orchester_argv(build, conf, *opts):
    return [os.path.join(build, "relay", "orchester"), "-f", conf] + list(opts)


def satellite_argv(build, conf, *opts):
    return [os.path.join(build, "relay", "satellite"), "-f", conf] + list(opts)


def small_quarantine_env():
    """The environment for a process whose resident memory a test measures:
    under ASan, freed memory waits in a quarantine (256 MB by default)
    before it is reused, so the resident size would measure the sanitizer;
    this keeps the quarantine small (no effect on a normal build)."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS"),
                                               "quarantine_size_mb=4") if x)
    return env


def sanitized(build):
    """Whether BUILD's orchester is a sanitizer build (ASan or UBSan)."""
    out = subprocess.run(["ldd", os.path.join(build, "relay", "orchester")],
                         capture_output=True, text=True).stdout
    return "libasan" in out or "libubsan" in out


def check_build(build):
    """The programs a test needs exist in BUILD_DIR; raises CheckFailed."""
    missing = [p for p in ("orchester", "satellite", "orchester-ctl")
               if not os.access(os.path.join(build, "relay", p), os.X_OK)]
    require(not missing, "not built in %s: %s" % (build, ", ".join(missing)))


def wait_status(build, endpoint, timeout, what, pred=None):
    """Wait until orchester-ctl status answers (and pred(status) holds);
    return the parsed status."""
    box = {}

    def ok():
        st = ctl_status(build, endpoint)
        box["st"] = st
        return pred is None or pred(st)

    wait_until(ok, timeout, what, interval=0.2)
    return box["st"]


# ---------------------------------------------------------------------------
# carbon-cache (Debian graphite-carbon)

class CarbonCache:
    """A private carbon-cache: its own carbon.conf, storage-schemas.conf with a
    10s:1d retention, and storage, log and pid directories under dir."""

    def __init__(self, dir):
        self.dir = os.path.join(dir, "carbon")
        self.storage = os.path.join(self.dir, "storage")
        self.whisper = os.path.join(self.storage, "whisper")
        self.logdir = os.path.join(self.dir, "log")
        self.piddir = os.path.join(self.dir, "pid")
        self.conf = os.path.join(self.dir, "carbon.conf")
        self.line_port = free_port()
        self.pickle_port = free_port()
        self.query_port = free_port()
        self.proc = None

    def start(self, timeout=START_TIMEOUT):
        for d in (self.dir, self.whisper, self.logdir, self.piddir):
            os.makedirs(d, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("""[cache]
STORAGE_DIR = %(storage)s/
LOCAL_DATA_DIR = %(whisper)s/
WHISPER_DIR = %(whisper)s/
CONF_DIR = %(dir)s/
LOG_DIR = %(logdir)s/
PID_DIR = %(piddir)s/
DATABASE = whisper
ENABLE_LOGROTATION = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 10000
MAX_CREATES_PER_MINUTE = 10000
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %(line)d
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %(pickle)d
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = %(query)d
USE_FLOW_CONTROL = True
LOG_UPDATES = False
LOG_CREATES = True
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = True
WHISPER_FALLOCATE_CREATE = False
""" % {"storage": self.storage, "whisper": self.whisper, "dir": self.dir,
       "logdir": self.logdir, "piddir": self.piddir, "line": self.line_port,
       "pickle": self.pickle_port, "query": self.query_port})
        with open(os.path.join(self.dir, "storage-schemas.conf"), "w") as f:
            f.write("[carbon]\npattern = ^carbon\\.\nretentions = 10s:1d\n\n"
                    "[default]\npattern = .*\nretentions = 10s:1d\n")
        env = dict(os.environ)
        env["GRAPHITE_ROOT"] = self.dir
        env["GRAPHITE_CONF_DIR"] = self.dir
        self.proc = Proc("carbon-cache", [
            "/usr/bin/carbon-cache", "--config=" + self.conf, "--nodaemon",
            "--logdir=" + self.logdir,
            "--pidfile=" + os.path.join(self.piddir, "carbon-cache-a.pid"),
            "start"], self.dir, env=env).start()
        wait_until(lambda: self._ready(), timeout,
                   "carbon-cache to accept connections on port %d" % self.line_port)
        return self

    def _ready(self):
        if not self.proc.alive():
            raise GiveUp("carbon-cache exited with %s: %s"
                              % (self.proc.returncode, self.proc.stderr_tail(800)))
        return tcp_accepts(self.line_port)

    def whisper_files(self):
        """Paths of the whisper files written so far, relative to the data dir,
        as metric names (dots)."""
        out = []
        for root, _, files in os.walk(self.whisper):
            for fn in files:
                if fn.endswith(".wsp"):
                    rel = os.path.relpath(os.path.join(root, fn), self.whisper)
                    out.append(rel[:-4].replace(os.sep, "."))
        return out

    def whisper_path(self, metric):
        return os.path.join(self.whisper, *metric.split(".")) + ".wsp"

    def log_tail(self, nbytes=2000):
        text = []
        for root, _, files in os.walk(self.logdir):
            for fn in files:
                text.append("== %s ==\n%s" % (fn, tail(os.path.join(root, fn), nbytes)))
        return "\n".join(text)


# ---------------------------------------------------------------------------
# collectd (Debian collectd-core)

class Collectd:
    """collectd with a 1 s interval, the cpu, load and memory plugins, and
    write_graphite pointed at host:port over TCP."""

    def __init__(self, dir, port, host=HOST, hostname="orchtest",
                 prefix="collectd."):
        self.dir = os.path.join(dir, "collectd")
        self.port = port
        self.host = host
        self.hostname = hostname
        self.prefix = prefix
        self.conf = os.path.join(self.dir, "collectd.conf")
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("""Hostname "%(hostname)s"
FQDNLookup false
BaseDir "%(dir)s"
PIDFile "%(dir)s/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 1
ReadThreads 2
WriteThreads 1

LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File STDERR
  Timestamp true
</Plugin>

LoadPlugin cpu
LoadPlugin load
LoadPlugin memory
LoadPlugin write_graphite

<Plugin write_graphite>
  <Node "orchester">
    Host "%(host)s"
    Port "%(port)d"
    Protocol "tcp"
    LogSendErrors true
    Prefix "%(prefix)s"
    StoreRates true
    AlwaysAppendDS false
    EscapeCharacter "_"
  </Node>
</Plugin>
""" % {"hostname": self.hostname, "dir": self.dir, "host": self.host,
       "port": self.port, "prefix": self.prefix})
        self.proc = Proc("collectd", ["/usr/sbin/collectd", "-f", "-C", self.conf],
                         self.dir).start()
        return self


# ---------------------------------------------------------------------------
# the test frame: checks, cleanup, exit code

class Test:
    """One test program.  Use as

        t = Test()                      # reads BUILD_DIR from argv
        def body(t):
            with t.check("name"):       # prints PASS or FAIL for the block
                require(cond, "why")
        t.run(body)                     # then stops what was started, exits

    Processes made with t.proc() and sinks made with t.sink() are stopped at
    the end, also after a failure, an exception or SIGTERM.  The orchester
    programs still running after body are stopped by one last check: exit 0
    on SIGTERM and no sanitizer report."""

    def __init__(self, argv=None):
        argv = sys.argv if argv is None else argv
        if len(argv) < 2:
            sys.stderr.write("usage: %s BUILD_DIR\n" % argv[0])
            sys.exit(2)
        self.build = os.path.abspath(argv[1])
        self.tmp = TempDir()
        self.failed = 0
        self.passed = 0
        self.procs = []
        self.sinks = []
        self.reserved = []
        self.cleanups = []
        self._aborted = False
        # a runner's timeout sends SIGTERM: stop what we started on the way out
        signal.signal(signal.SIGTERM, self._terminated)
        global _liveness_hook
        _liveness_hook = self._check_alive

    def _check_alive(self):
        """GiveUp when a started daemon exited without being told to."""
        for p in self.procs:
            if p.expect_alive and p.p is not None and p.p.poll() is not None:
                raise GiveUp("%s (pid %d) died unexpectedly with %s"
                             % (p.name, p.pid, p.p.returncode))

    def _terminated(self, signum, frame):
        raise Interrupted("test killed by signal %d" % signum)

    # -- resources ---------------------------------------------------------
    def proc(self, name, argv, **kw):
        """A Proc logged under the test's temp dir (not started)."""
        p = Proc(name, argv, self.tmp.path, **kw)
        self.procs.append(p)
        return p

    def orchester(self, name, conf, *opts, env=None):
        """An orchester Proc for config file conf (not started)."""
        p = self.proc(name, orchester_argv(self.build, conf, *opts), env=env)
        p.ours = True
        return p

    def satellite(self, name, conf, *opts):
        p = self.proc(name, satellite_argv(self.build, conf, *opts))
        p.ours = True
        return p

    def sink(self, port=None, rcvbuf=None):
        """A started Sink, stopped at the end."""
        s = Sink(port, rcvbuf=rcvbuf).start()
        self.sinks.append(s)
        return s

    def reserve_port(self):
        """A ReservedPort (nothing listens there), released at the end."""
        r = ReservedPort()
        self.reserved.append(r)
        return r.port

    def carbon_cache(self):
        c = CarbonCache(self.tmp.path)
        try:
            c.start()
        finally:
            if c.proc is not None:
                self.procs.append(c.proc)
        return c

    def proxy(self, target):
        """A TcpProxy to 127.0.0.1:target, stopped at the end."""
        p = TcpProxy(target)
        self.on_cleanup(p.stop)
        return p

    def redis(self, name="redis", maxmemory=None):
        """A started private redis-server (see Redis), stopped at the end."""
        r = Redis(self.tmp.path, name, maxmemory)
        self.procs.append(r.proc)
        return r.start()

    def collectd(self, port, **kw):
        c = Collectd(self.tmp.path, port, **kw)
        c.start()
        self.procs.append(c.proc)
        return c

    def write(self, name, text):
        """Write a file in the test's temp dir; return its path."""
        return self.tmp.write(name, text)

    def start_orchester(self, name, conf_text, opts=(), control=None,
                        tcp_ports=(), unix_paths=(), timeout=START_TIMEOUT,
                        env=None):
        """Write conf_text to NAME.conf, start orchester on it with opts, and
        wait until the control endpoint answers status and every listed TCP
        port and unix path accepts connections.  Returns the Proc (its .conf
        is the config path)."""
        conf = self.write(name + ".conf", conf_text)
        p = self.orchester(name, conf, *opts, env=env)
        p.conf = conf
        p.control = control
        p.start()
        self.wait_ready(p, control, tcp_ports, unix_paths, timeout)
        return p

    def wait_ready(self, p, control=None, tcp_ports=(), unix_paths=(),
                   timeout=START_TIMEOUT):
        """Wait until p answers status on control (if given) and accepts
        connections on the ports and unix paths; fail early if it exits."""
        def ready():
            if not p.alive():
                raise GiveUp("%s exited with %s: %s" % (
                    p.name, p.returncode, p.stderr_tail(600).strip()))
            for port in tcp_ports:
                if not tcp_accepts(port):
                    return False
            for path in unix_paths:
                if not unix_accepts(path):
                    return False
            if control:
                ctl_status(self.build, control, timeout=CTL_TIMEOUT)
            return True

        wait_until(ready, timeout, "%s to be ready" % p.name, interval=0.1)

    def status(self, control):
        """orchester-ctl status on control, parsed."""
        return ctl_status(self.build, control)

    def on_cleanup(self, fn):
        self.cleanups.append(fn)

    # -- checks -------------------------------------------------------------
    @contextlib.contextmanager
    def check(self, name, fatal=False):
        """Run the block as one check.  A CheckFailed (or any exception) in it
        prints FAIL with the reason and the daemons' stderr; fatal=True then
        skips the rest of the test."""
        if self._aborted:
            raise Abort()
        try:
            yield
        except Abort:
            raise
        except CheckFailed as e:
            self.fail(name, str(e))
            if fatal:
                self._aborted = True
                raise Abort()
        except Exception as e:
            self.fail(name, "%s: %s" % (type(e).__name__, e))
            sys.stderr.write("".join("# " + l + "\n" for l in
                                     traceback.format_exc().splitlines()))
            if fatal:
                self._aborted = True
                raise Abort()
        else:
            self.ok(name)

    def ok(self, name):
        self.passed += 1
        sys.stdout.write("PASS: %s\n" % name)
        sys.stdout.flush()

    def fail(self, name, why):
        self.failed += 1
        why = " ".join(str(why).split("\n"))
        if len(why) > 2000:
            why = why[:2000] + "..."
        sys.stdout.write("FAIL: %s: %s\n" % (name, why))
        sys.stdout.flush()
        self.diagnose()

    def diagnose(self):
        """Write the tail of each daemon's stderr to our stderr."""
        for p in self.procs:
            if p.err_path is None:
                continue
            state = "running" if p.alive() else "exit %s" % p.returncode
            sys.stderr.write("# --- %s (pid %s, %s) stderr tail ---\n"
                             % (p.name, p.pid, state))
            for l in p.stderr_tail(3000).splitlines()[-30:]:
                sys.stderr.write("# " + l + "\n")
        sys.stderr.flush()

    def run(self, body):
        """Run body(self), then clean up and exit with the verdict."""
        try:
            body(self)
            self.final_check()
        except Abort:
            pass
        except Interrupted as e:
            self.fail("interrupted", str(e))
        except Exception as e:
            self.fail("unexpected error", "%s: %s" % (type(e).__name__, e))
            sys.stderr.write("".join("# " + l + "\n" for l in
                                     traceback.format_exc().splitlines()))
        finally:
            self.cleanup()
        if self.failed == 0 and self.passed == 0:
            self.fail("test ran no check", "nothing was checked")
        sys.exit(1 if self.failed else 0)

    def final_check(self):
        """Stop the orchester programs still running with SIGTERM: each must
        exit 0 within the bound, and no run of any of them may have written
        a sanitizer report (ASan, LeakSanitizer, UBSan)."""
        procs = [p for p in self.procs if p.ours and p.p is not None]
        if not procs:
            return
        with self.check("orchester programs exit 0 on SIGTERM, no sanitizer report"):
            problems = []
            for p in reversed(procs):
                running = p.alive()
                rc, killed = p.stop()
                if getattr(p, "crashed", False) and not running:
                    pass  # killed on purpose (crash)
                elif killed:
                    problems.append("%s (pid %d) needed SIGKILL %.0f s after SIGTERM"
                                    % (p.name, p.pid, STOP_TIMEOUT))
                elif rc != 0:
                    problems.append("%s (pid %d) %s with %s" % (
                        p.name, p.pid, "exited on SIGTERM" if running else "had exited",
                        rc))
                for path in p.err_paths:
                    rep = sanitizer_report(tail(path, 1 << 20))
                    if rep:
                        problems.append("%s: %s (%s)" % (p.name, rep, path))
            require(not problems, "; ".join(problems))

    def cleanup(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception:
                pass
        for p in reversed(self.procs):
            try:
                p.stop(timeout=10)
            except Exception:
                pass
        for s in self.sinks:
            try:
                s.stop(hold=False)
                s.release()
            except Exception:
                pass
        for r in self.reserved:
            r.close()
        self.tmp.remove()
