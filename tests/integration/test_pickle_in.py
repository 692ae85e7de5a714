#!/usr/bin/python3
"""
test_pickle_in.py -- carbon pickle input: `listen type pickle ... proto tcp`.

An orchester with an embedded pickle listener (default -F, 1 MiB) and
`satellites bind`, and a standalone satellite with a pickle listener
(-F SATF) that sends to it over zmq tcp, both forwarding to one Sink.
Through each of the two listeners:

  - every NAME.frame of the shared pickle corpus
    ($ORCHESTER_PICKLE_TESTDATA, else the copy shipped in the tree,
    tests/data/shared-pickle) is sent on its own connection, followed on the same
    connection by a small marker frame; once the marker is at the sink,
    the lines between the previous marker and this one are what the frame
    gave: exactly NAME.expect (values and timestamps compared as numbers,
    names as orchester cleanses them), nothing for a REJECT frame;
    on the embedded listener pickle.frames, pickle.refused,
    parseErrors.nan and parseErrors move by exactly what the corpus
    implies;
  - a client holding half of a bad frame, then sending refused frames in a
    loop, does not hold up other clients' good frames, and its own
    connection still serves a good frame afterwards;
  - a frame of exactly the -F limit is accepted; a frame one byte larger
    closes that client's connection (counted in pickle.tooBig) while other
    clients, connected before and after, are served (also on a second
    orchester started with -F 4096);
  - frames written by this python3 with pickle.dumps at protocols 0 to 5
    (tuples, lists instead of tuples, an outer tuple, int, float, bool and
    str values, str and float timestamps, names that need cleansing,
    frames of 2000 datapoints) all arrive.

Last, Graphite's own carbon-relay (Debian graphite-carbon,
RELAY_METHOD = consistent-hashing, DESTINATIONS = 127.0.0.1:PICKLEPORT:a)
gets N plaintext lines on its line port and relays them as pickle to the
embedded listener: all N arrive.
"""
import collections
import math
import os
import pickle
import re
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     counter, wait_status, tcp_accepts, GiveUp, CheckFailed,
                     START_TIMEOUT)

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MAX_FRAME = 1 << 20     # orchester's -F default
SMALL_MAX_FRAME = 4096          # -F of a second orchester
ARRIVE_TIMEOUT = 20.0           # a few frames through the relay to the sink
MARKER = b"marker."
SELF_PREFIX = b"carbon.relays."
RELAY_LINES = 5000              # lines sent through Graphite's carbon-relay


# ---------------------------------------------------------------------------
# frames, names and lines

def frame(payload):
    """A pickle on the wire: 4-byte big-endian length, then the pickle."""
    return struct.pack("!I", len(payload)) + payload


def dumps_frame(points, protocol=2):
    return frame(pickle.dumps(points, protocol=protocol))


def _name_byte_ok(b):
    return (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122
            or b in b"-_:#.")


def cleanse(name):
    """A metric name (bytes) as orchester's line rules cleanse it: '\\r'
    dropped; outside the tags, bytes other than [A-Za-z0-9] and -_:# become
    '_', runs of '.' collapse, leading and trailing '.' go; in the tags
    (from the first ';'), bytes outside printable ASCII become '_'."""
    name = name.replace(b"\r", b"")
    head, sep, tags = name.partition(b";")
    head = bytes(b if _name_byte_ok(b) else 0x5f for b in head)
    head = re.sub(rb"\.+", b".", head).strip(b".")
    tags = bytes(b if 0x20 < b < 0x7f else 0x5f for b in tags)
    return head + sep + tags


def as_key(name, value, ts):
    """A datapoint as compared: (name bytes, value, timestamp) as floats."""
    return (name, float(value), float(ts))


def parse_line(line):
    """A canonical line (bytes) at the sink -> key; raises ValueError."""
    f = line.rsplit(b" ", 2)
    if len(f) != 3:
        raise ValueError("not three fields: %r" % line[:200])
    return as_key(f[0], f[1], f[2])


def parse_lines(lines):
    out = []
    for ln in lines:
        try:
            out.append(parse_line(ln))
        except ValueError:
            out.append((b"<unparsable> " + ln[:200], math.inf, math.inf))
    return out


def expect_key(name, value, ts):
    """What orchester must deliver for a datapoint sent as name (str or
    bytes), value and timestamp (numbers or numeric str)."""
    if isinstance(name, str):
        name = name.encode("utf-8")
    return as_key(cleanse(name), value, ts)


def describe_diff(got, exp, limit=4):
    """'' when the multisets are equal, else what is missing and extra."""
    g, e = collections.Counter(got), collections.Counter(exp)
    if g == e:
        return ""
    missing = list((e - g).elements())
    extra = list((g - e).elements())
    return "%d missing %r, %d unexpected %r (got %d, expected %d)" % (
        len(missing), missing[:limit], len(extra), extra[:limit],
        len(got), len(exp))


class _NoGlobals(pickle.Unpickler):
    """Loads plain data only: anything that imports or calls is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("global %s.%s refused" % (module, name))

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent id refused")


def plain_points(payload):
    """The (path, (ts, value)) items of a plain-data pickle, or None."""
    import io
    try:
        obj = _NoGlobals(io.BytesIO(payload), encoding="latin1").load()
        return [(p, (tv[0], tv[1])) for p, tv in obj]
    except Exception:
        return None


def is_nan(v):
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False


class Case:
    """One frame to send and what it must give: expect is a list of keys, or
    None when the frame must be refused whole."""

    def __init__(self, name, data, expect, points=None):
        self.name = name
        self.data = data
        self.expect = expect
        self.points = points     # datapoints in the frame (None: unknown)
        self.nans = 0            # NaN values among them

    @property
    def reject(self):
        return self.expect is None


def testdata_dir():
    d = os.environ.get("ORCHESTER_PICKLE_TESTDATA")
    if d:
        return d
    return os.path.join(TOP, "tests", "data", "shared-pickle")


def load_corpus(d):
    """The corpus: one Case per NAME.frame with its NAME.expect."""
    cases = []
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".frame"):
            continue
        name = fn[:-len(".frame")]
        with open(os.path.join(d, fn), "rb") as f:
            data = f.read()
        with open(os.path.join(d, name + ".expect"), "rb") as f:
            text = f.read()
        if text.strip() == b"REJECT":
            cases.append(Case(name, data, None))
            continue
        exp = []
        for ln in text.splitlines():
            if not ln.strip():
                continue
            path, value, ts = ln.split()
            exp.append(as_key(cleanse(path), value, ts))
        c = Case(name, data, exp)
        pts = plain_points(data[4:]) if len(data) >= 4 else None
        if pts is not None:
            c.points = len(pts)
            c.nans = sum(1 for _, (_, v) in pts if is_nan(v))
        cases.append(c)
    return cases


def sized_frame(size, prefix, ts):
    """A protocol-2 frame whose pickle is exactly size bytes (the length
    prefix not counted), and its expected keys: datapoints with names
    prefix.mN, the last name padded to hit the size."""
    def pts(n, pad):
        out = [("%s.m%06d" % (prefix, i), (ts, i * 0.25)) for i in range(n)]
        if pad:
            out[-1] = (out[-1][0] + "x" * pad, out[-1][1])
        return out

    per = len(pickle.dumps(pts(1000, 0), protocol=2)) / 1000.0
    n = max(1, int((size - 4000) / per))
    for _ in range(20):
        base = len(pickle.dumps(pts(n, 0), protocol=2))
        pad = size - base
        if pad < 0:
            n -= int(-pad / per) + 2
            continue
        if pad > 8000:
            n += int((pad - 4000) / per)
            continue
        p = pts(n, pad)
        payload = pickle.dumps(p, protocol=2)
        if len(payload) == size:
            return frame(payload), [expect_key(a, v, t) for a, (t, v) in p]
        n -= 1
    raise RuntimeError("cannot build a frame of %d bytes" % size)


# ---------------------------------------------------------------------------
# following the sink

class Follow:
    """Reads a sink's lines incrementally: every line (self metrics left
    out) in arrival order, and the markers seen with their index."""

    def __init__(self, sink):
        self.sink = sink
        self.pos = 0
        self.lines = []
        self.markers = {}

    def update(self):
        with self.sink.lock:
            new = self.sink.lines[self.pos:]
            self.pos += len(new)
        for ln in new:
            if ln.startswith(SELF_PREFIX):
                continue
            if ln.startswith(MARKER):
                self.markers[ln.split(b" ", 1)[0]] = len(self.lines)
            self.lines.append(ln)
        return self

    def keys_with_prefix(self, prefix):
        self.update()
        return parse_lines([ln for ln in self.lines if ln.startswith(prefix)])

    def wait_keys(self, prefix, expected, timeout, what):
        """Wait until every key of expected arrived among the lines that
        start with prefix; return those lines' keys."""
        need = collections.Counter(expected)

        def done():
            got = collections.Counter(self.keys_with_prefix(prefix))
            return not (need - got)

        try:
            wait_until(done, timeout, what)
        except CheckFailed as e:
            raise CheckFailed("%s; %s" % (e, describe_diff(
                self.keys_with_prefix(prefix), expected)))
        return self.keys_with_prefix(prefix)


def send_conn(port, data, timeout=30.0):
    """One connection: send data, close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    try:
        s.settimeout(timeout)
        s.sendall(data)
    finally:
        s.close()


def replay(t, follow, port, cases, label, marker_timeout=ARRIVE_TIMEOUT):
    """Send each case on its own connection, then a marker frame on the
    same connection, and wait for the marker.  Returns {case name: keys of
    the lines that came between the previous marker and this case's}."""
    follow.update()
    start = len(follow.lines)
    ts = int(time.time())
    names = []
    for i, c in enumerate(cases):
        m = "marker.%s.%03d" % (label, i)
        names.append(m.encode())
        send_conn(port, c.data + dumps_frame([(m, (ts, i))]))
        try:
            wait_until(lambda: m.encode() in follow.update().markers,
                       marker_timeout, "the marker after %s (%s) at the sink"
                       % (c.name, label))
        except CheckFailed as e:
            raise CheckFailed("%s: nothing after this frame arrived on its "
                              "connection: %s" % (c.name, e))
    out = {}
    prev = start
    for c, m in zip(cases, names):
        at = follow.markers[m]
        out[c.name] = parse_lines(follow.lines[prev:at])
        prev = at + 1
    return out


def check_segments(t, label, cases, segs):
    """One check per case: its segment is exactly its expectation."""
    for c in cases:
        with t.check("%s: %s.frame gives %s" % (
                label, c.name, "nothing (refused)" if c.reject else
                "exactly its %d .expect datapoints" % len(c.expect))):
            got = segs.get(c.name)
            require(got is not None, "not sent")
            why = describe_diff(got, [] if c.reject else c.expect)
            require(not why, why)


def counter_deltas(st, base, names):
    return {n: counter(st, n) - counter(base, n) for n in names}


def wait_counters(t, control, base, want, what):
    """Wait until each counter moved by at least want[name] since base, then
    require that it moved by exactly that much."""
    names = list(want)
    box = {}

    def ok(st):
        box["d"] = counter_deltas(st, base, names)
        return all(box["d"][n] >= want[n] for n in names)

    try:
        wait_status(t.build, control, ARRIVE_TIMEOUT, what, ok)
    except CheckFailed as e:
        raise CheckFailed("%s: counters moved by %r, expected %r" % (e, box.get("d"), want))
    # counters are at most 1 s old: read once more after they settled
    st = t.status(control)
    d = counter_deltas(st, base, names)
    require(d == want, "counters moved by %r, expected %r" % (d, want))


def good_frames(prefix, conn, nframes, npoints, ts, protocol=2):
    """nframes frames of npoints datapoints, names PREFIX.CONN.fF.mK;
    returns (list of frame bytes, expected keys)."""
    frames, exp = [], []
    for f in range(nframes):
        p = [("%s.%s.f%d.m%d" % (prefix, conn, f, k), (ts, f * 1000 + k + 0.5))
             for k in range(npoints)]
        frames.append(dumps_frame(p, protocol))
        exp.extend(expect_key(n, v, s) for n, (s, v) in p)
    return frames, exp


def conn_closed_by_peer(s):
    """True when the peer closed s (EOF or reset); False while it is open."""
    s.setblocking(False)
    try:
        data = s.recv(4096)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return data == b""


# ---------------------------------------------------------------------------
# the parts

def other_clients(t, follow, port, label, rejects, control=None):
    """A client with a bad frame half sent, then refused frames in a loop,
    while other clients send good frames: theirs all arrive, and the bad
    client's connection still serves a good frame."""
    prefix = ("other.%s." % label).encode()
    ts = int(time.time())
    first = rejects[0]
    rounds = 200
    base = t.status(control) if control else None
    exp = []
    bad = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    bad.settimeout(30.0)
    good1 = good2 = None
    try:
        with t.check("%s: a client holding half a bad frame does not hold up another client"
                     % label):
            bad.sendall(first[:len(first) // 2])
            good1 = socket.create_connection(("127.0.0.1", port), timeout=10.0)
            good1.settimeout(30.0)
            fr, e = good_frames("other." + label, "g1a", 10, 20, ts)
            exp += e
            good1.sendall(b"".join(fr))
            follow.wait_keys(prefix, exp, ARRIVE_TIMEOUT,
                             "the good client's frames at the sink")

        with t.check("%s: good frames of two clients arrive while a third sends "
                     "refused frames in a loop" % label):
            errs = []

            def hammer():
                try:
                    bad.sendall(first[len(first) // 2:])
                    for _ in range(rounds):
                        for f in rejects:
                            bad.sendall(f)
                except OSError as e:
                    errs.append("bad client: %s" % e)

            th = threading.Thread(target=hammer)
            th.start()
            good2 = socket.create_connection(("127.0.0.1", port), timeout=10.0)
            good2.settimeout(30.0)
            fa, ea = good_frames("other." + label, "g1b", 30, 10, ts)
            fb, eb = good_frames("other." + label, "g2", 30, 10, ts)
            for x, y in zip(fa, fb):
                good1.sendall(x)
                good2.sendall(y)
            exp += ea + eb
            th.join(60.0)
            require(not th.is_alive(), "the bad client's sends did not finish in 60 s")
            require(not errs, "; ".join(errs))
            follow.wait_keys(prefix, exp, ARRIVE_TIMEOUT,
                             "the good clients' frames at the sink")

        with t.check("%s: the connection that sent refused frames still serves a good one"
                     % label):
            fr, e = good_frames("other." + label, "bad", 1, 5, ts)
            exp += e
            bad.sendall(fr[0])
            got = follow.wait_keys(prefix, exp, ARRIVE_TIMEOUT,
                                   "the good frame sent after the refused ones")
            why = describe_diff(got, exp)
            require(not why, "other clients' datapoints: " + why)
        # and it closes with a frame cut short: one more refused frame
        try:
            bad.sendall(first[:len(first) // 2])
        except OSError as e:
            sys.stderr.write("# %s: the bad client's last send: %s\n" % (label, e))
    finally:
        for s in (bad, good1, good2):
            if s is not None:
                s.close()

    if control:
        with t.check("%s: pickle.refused counts every refused frame and the cut-short "
                     "one, pickle.frames every good one" % label):
            wait_counters(t, control, base, {
                "pickle.refused": 1 + rounds * len(rejects) + 1,
                "pickle.frames": 10 + 30 + 30 + 1,
                "pickle.tooBig": 0,
            }, "the pickle counters of the other-clients part")
            got = follow.keys_with_prefix(prefix)
            why = describe_diff(got, exp)
            require(not why, "after the counters settled: " + why)


def oversize(t, follow, port, label, max_frame, control=None):
    """A frame of exactly max_frame is accepted; one byte more closes that
    connection, and other clients are served."""
    ts = int(time.time())
    prefix = ("big.%s." % label).encode()
    base = t.status(control) if control else None
    exact, exact_exp = sized_frame(max_frame, "big.%s.exact" % label, ts)
    over, _ = sized_frame(max_frame + 1, "big.%s.over" % label, ts)
    require(len(exact) == max_frame + 4 and len(over) == max_frame + 5, "frame sizes")

    with t.check("%s: a frame of exactly the limit (%d bytes) is accepted whole"
                 % (label, max_frame)):
        send_conn(port, exact)
        got = follow.wait_keys(prefix, exact_exp, 60.0,
                               "the %d datapoints of the %d-byte frame"
                               % (len(exact_exp), max_frame))
        why = describe_diff(got, exact_exp)
        require(not why, why)

    exp = list(exact_exp)
    before = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    before.settimeout(30.0)
    victim = None
    try:
        fr, e = good_frames("big." + label, "before", 2, 10, ts)
        exp += e[:10]
        with t.check("%s: a client connected before the oversized frame is served" % label):
            before.sendall(fr[0])
            follow.wait_keys(prefix, exp, ARRIVE_TIMEOUT,
                             "the first frame of the client connected before")

        with t.check("%s: a frame of %d bytes (limit + 1) closes that client's connection"
                     % (label, max_frame + 1)):
            victim = socket.create_connection(("127.0.0.1", port), timeout=10.0)
            victim.settimeout(30.0)
            try:
                victim.sendall(over)
            except OSError:
                pass  # the relay may close while the frame is still going out
            wait_until(lambda: conn_closed_by_peer(victim), ARRIVE_TIMEOUT,
                       "the relay to close the connection of the oversized frame")

        with t.check("%s: other clients are served after the oversized frame" % label):
            before.sendall(fr[1])
            fa, ea = good_frames("big." + label, "after", 3, 10, ts)
            exp += e[10:] + ea
            send_conn(port, b"".join(fa))
            got = follow.wait_keys(prefix, exp, ARRIVE_TIMEOUT,
                                   "the frames of the clients connected before and after")
            why = describe_diff(got, exp)
            require(not why, why)
    finally:
        before.close()
        if victim is not None:
            victim.close()

    if control:
        with t.check("%s: pickle.tooBig counts the oversized frame" % label):
            wait_counters(t, control, base, {
                "pickle.tooBig": 1, "pickle.frames": 1 + 2 + 3, "pickle.refused": 0,
            }, "the pickle counters of the oversize part")


def python_cases(ts):
    """Frames as this python3's pickle.dumps writes them, protocols 0-5."""
    cases = []
    for proto in range(6):
        p = "py.p%d" % proto
        tuples = [("%s.tuple.m%d" % (p, k), (ts + k, k * 1.5)) for k in range(5)]
        lists = [["%s.list.m%d" % (p, k), [ts + k, float(k) / 8]] for k in range(5)]
        ints = [("%s.int.%s" % (p, n), (ts, v)) for n, v in (
            ("zero", 0), ("small", 7), ("neg", -3), ("mid", 300), ("large", 70000),
            ("i31", 2 ** 31), ("i40", 2 ** 40), ("i63", 2 ** 63 + 5), ("i70", 2 ** 70))]
        floats = [("%s.float.%s" % (p, n), (ts, v)) for n, v in (
            ("tenth", 0.1), ("neg", -2.5), ("tiny", 1e-5), ("huge", 1e20),
            ("frac", 123456.789), ("negzero", -0.0), ("whole", 42.0))]
        strs = [("%s.str.%s" % (p, n), (s, v)) for n, s, v in (
            ("int", ts, "42"), ("frac", ts, "0.125"), ("neg", ts, "-7.5"),
            ("exp", ts, "1e3"), ("strts", str(ts), "5"), ("both", str(ts + 1), "6.5"))]
        misc = [("%s.misc.floatts" % p, (float(ts), 1.0)),
                ("%s.misc.fracts" % p, (ts + 0.5, 2.0)),
                ("%s.misc.bool" % p, (ts, True)),
                ("%s.misc.weird name..x." % p, (ts, 3.0)),
                ("%s.misc.unicode.\u00fcn\u00efc\u00f6de" % p, (ts, 4.0))]
        outer_tuple = tuple(("%s.outer.m%d" % (p, k), (ts, k)) for k in range(3))
        big = [("%s.big.m%04d" % (p, k), (ts + k % 60, k * 0.25)) for k in range(2000)]
        for style, pts in (("tuples", tuples), ("lists-not-tuples", lists),
                           ("int-values", ints), ("float-values", floats),
                           ("str-values", strs), ("mixed", misc),
                           ("outer-tuple", outer_tuple), ("2000-points", big)):
            exp = [expect_key(n, v, s) for n, (s, v) in pts]
            cases.append(Case("protocol %d %s" % (proto, style),
                              dumps_frame(pts, proto), exp, len(pts)))
    return cases


class CarbonRelay:
    """Graphite's carbon-relay (Debian graphite-carbon) with its own
    carbon.conf under dir: line and pickle receivers on free ports,
    consistent hashing to one pickle destination."""

    def __init__(self, t, dest_port):
        self.t = t
        self.dir = t.tmp.join("carbon-relay")
        self.line_port = free_port()
        self.pickle_port = free_port()
        self.dest_port = dest_port
        self.logdir = os.path.join(self.dir, "log")
        self.proc = None

    def start(self):
        storage = os.path.join(self.dir, "storage")
        piddir = os.path.join(self.dir, "pid")
        for d in (self.dir, storage, self.logdir, piddir):
            os.makedirs(d, exist_ok=True)
        conf = os.path.join(self.dir, "carbon.conf")
        with open(conf, "w") as f:
            f.write("""[cache]
STORAGE_DIR = %(storage)s/
LOCAL_DATA_DIR = %(storage)s/whisper/
CONF_DIR = %(dir)s/
LOG_DIR = %(logdir)s/
PID_DIR = %(piddir)s/

[relay]
STORAGE_DIR = %(storage)s/
CONF_DIR = %(dir)s/
LOG_DIR = %(logdir)s/
PID_DIR = %(piddir)s/
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %(line)d
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %(pickle)d
ENABLE_UDP_LISTENER = False
RELAY_METHOD = consistent-hashing
REPLICATION_FACTOR = 1
DESTINATIONS = 127.0.0.1:%(dest)d:a
DESTINATION_PROTOCOL = pickle
MAX_DATAPOINTS_PER_MESSAGE = 500
MAX_QUEUE_SIZE = 100000
USE_FLOW_CONTROL = True
CARBON_METRIC_INTERVAL = 0
LOG_LISTENER_CONN_SUCCESS = False
""" % {"storage": storage, "dir": self.dir, "logdir": self.logdir, "piddir": piddir,
       "line": self.line_port, "pickle": self.pickle_port, "dest": self.dest_port})
        # carbon reads it even when it only relays
        with open(os.path.join(self.dir, "storage-schemas.conf"), "w") as f:
            f.write("[default]\npattern = .*\nretentions = 10s:1d\n")
        env = dict(os.environ)
        env["GRAPHITE_ROOT"] = self.dir
        env["GRAPHITE_CONF_DIR"] = self.dir
        self.proc = self.t.proc("carbon-relay", [
            "/usr/bin/carbon-relay", "--config=" + conf, "--nodaemon",
            "--logdir=" + self.logdir,
            "--pidfile=" + os.path.join(piddir, "carbon-relay-a.pid"),
            "start"], env=env)
        self.proc.start()

        def ready():
            if not self.proc.alive():
                raise GiveUp("carbon-relay exited with %s: %s" % (
                    self.proc.returncode, self.log_tail(800)))
            return tcp_accepts(self.line_port)

        wait_until(ready, START_TIMEOUT, "carbon-relay to accept on port %d" % self.line_port,
                   interval=0.1)
        return self

    def log_tail(self, nbytes=2000):
        """carbon-relay logs to stdout in the foreground."""
        return (self.proc.stdout()[-nbytes:] + self.proc.stderr_tail(nbytes)).strip()


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    tdir = testdata_dir()
    with t.check("the pickle corpus is readable (%s)" % tdir, fatal=True):
        require(os.path.isdir(tdir), "no directory %s" % tdir)
        corpus = load_corpus(tdir)
        require(corpus, "no .frame files in %s" % tdir)
        rejects = [c.data for c in corpus if c.reject]
        if not rejects:  # a corpus without refused frames: one of our own
            rejects = [frame(b"cos\nsystem\n(S'true'\ntR.")]
        sys.stderr.write("# corpus %s: %d frames, %d refused\n"
                         % (tdir, len(corpus), sum(c.reject for c in corpus)))
    biggest = max(len(c.data) for c in corpus)
    sat_max = 262144
    while sat_max < 2 * biggest:
        sat_max *= 2

    sink = t.sink()
    follow = Follow(sink)
    pport = free_port()
    satport = free_port()
    zport = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    conf = """listen type pickle 127.0.0.1:%d proto tcp ;
satellites bind tcp://127.0.0.1:%d ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink stop ;
""" % (pport, zport, control, sink.port)
    with t.check("orchester starts with a pickle listener", fatal=True):
        t.start_orchester("orchester", conf, opts=("-S", "3600"), control=control,
                          tcp_ports=(pport,))
        st = t.status(control)
        lst = [(l["type"], l["proto"], l["addr"]) for l in st["listeners"]]
        require(("pickle", "tcp", "127.0.0.1:%d" % pport) in lst,
                "status lists the listeners %r" % lst)
    with t.check("satellite starts with a pickle listener (-F %d)" % sat_max, fatal=True):
        sconf = t.write("satellite.conf", """listen type pickle 127.0.0.1:%d proto tcp ;
orchester tcp://127.0.0.1:%d ;
""" % (satport, zport))
        sat = t.satellite("satellite", sconf, "-F", str(sat_max)).start()
        t.wait_ready(sat, tcp_ports=(satport,))

    # -- the corpus --------------------------------------------------------
    base = t.status(control)
    segs = None
    with t.check("embedded: every corpus frame is answered on its connection"):
        segs = replay(t, follow, pport, corpus, "emb")
    if segs is not None:
        check_segments(t, "embedded", corpus, segs)
    with t.check("embedded: pickle.frames, pickle.refused, parseErrors.nan and "
                 "parseErrors count the corpus exactly"):
        accepted = [c for c in corpus if not c.reject]
        want = {
            "pickle.frames": len(accepted) + len(corpus),   # + one marker each
            "pickle.refused": len(corpus) - len(accepted),
            "pickle.tooBig": 0,
        }
        unknown = [c.name for c in accepted if c.points is None]
        if not unknown:
            # the datapoints the .expect leaves out were refused one by one
            want["parseErrors.nan"] = sum(c.nans for c in accepted)
            want["parseErrors"] = sum(c.points - len(c.expect) for c in accepted)
        else:
            sys.stderr.write("# not plain data to python3's unpickler, parseErrors "
                             "not checked: %r\n" % unknown)
        wait_counters(t, control, base, want, "the counters to reflect the corpus")

    segs = None
    with t.check("satellite: every corpus frame is answered on its connection"):
        segs = replay(t, follow, satport, corpus, "sat")
    if segs is not None:
        check_segments(t, "satellite", corpus, segs)

    # -- other clients, oversized frames -------------------------------------
    other_clients(t, follow, pport, "emb", rejects, control)
    other_clients(t, follow, satport, "sat", rejects)
    oversize(t, follow, pport, "emb", DEFAULT_MAX_FRAME, control)
    oversize(t, follow, satport, "sat", sat_max)
    # a second orchester with a small -F
    fport = free_port()
    fstarted = False
    fcontrol = "tcp://127.0.0.1:%d" % free_port()
    with t.check("orchester -F %d starts with a pickle listener" % SMALL_MAX_FRAME):
        t.start_orchester("orchester-F", """listen type pickle 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink stop ;
""" % (fport, fcontrol, sink.port), opts=("-S", "3600", "-F", str(SMALL_MAX_FRAME)),
            control=fcontrol, tcp_ports=(fport,))
        fstarted = True
    if fstarted:
        oversize(t, follow, fport, "F%d" % SMALL_MAX_FRAME, SMALL_MAX_FRAME, fcontrol)

    # -- python3's own pickles, protocols 0 to 5 ------------------------------
    pcases = python_cases(int(time.time()) - 600)
    for label, port in (("embedded", pport), ("satellite", satport)):
        segs = None
        with t.check("%s: python3 pickle.dumps frames, protocols 0-5, are each answered"
                     % label):
            segs = replay(t, follow, port, pcases, "py" + label[:3])
        if segs is not None:
            with t.check("%s: every datapoint of %d python3 frames (protocols 0-5: tuples, "
                         "lists, outer tuple; int, float, bool, str values) arrives"
                         % (label, len(pcases))):
                bad = []
                for c in pcases:
                    why = describe_diff(segs[c.name], c.expect)
                    if why:
                        bad.append("%s: %s" % (c.name, why))
                require(not bad, "; ".join(bad[:6]))

    # -- Graphite's carbon-relay sending pickle --------------------------------
    with t.check("Graphite's carbon-relay starts, pickle destination = the listener",
                 fatal=True):
        relay = CarbonRelay(t, pport).start()
    with t.check("all %d lines sent to carbon-relay's line port arrive through "
                 "its pickle output" % RELAY_LINES):
        base = t.status(control)
        ts = int(time.time()) - 3600
        lines, exp = [], []
        for i in range(RELAY_LINES):
            name = "relay.m%02d.x" % (i % 50)
            value = "%d.25" % i
            lines.append(("%s %s %d\n" % (name, value, ts + i)).encode())
            exp.append(expect_key(name, value, ts + i))
        send_conn(relay.line_port, b"".join(lines))
        got = follow.wait_keys(b"relay.", exp, 60.0, "carbon-relay's datapoints at the sink")
        why = describe_diff(got, exp)
        require(not why, why)
        # at least ceil(N / 500) frames; counters are at most 1 s old
        st = wait_status(t.build, control, ARRIVE_TIMEOUT,
                         "pickle.frames to count carbon-relay's frames",
                         lambda s: counter(s, "pickle.frames") - counter(base, "pickle.frames")
                         >= (RELAY_LINES + 499) // 500)
        frames = counter(st, "pickle.frames") - counter(base, "pickle.frames")
        refused = counter(st, "pickle.refused") - counter(base, "pickle.refused")
        sys.stderr.write("# carbon-relay: %d datapoints in %d pickle frames\n"
                         % (RELAY_LINES, frames))
        require(refused == 0, "pickle.refused moved by %d" % refused)
        require(relay.proc.alive(), "carbon-relay exited with %s" % relay.proc.returncode)


if __name__ == "__main__":
    Test().run(body)
