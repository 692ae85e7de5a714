#!/usr/bin/python3
# suite: alone
"""
test_pickle_out.py -- pickle output: cluster members `HOST:PORT type pickle`.

orchester gets carbon plaintext on a linemode listener and sends everything
to two pickle members:

    cluster cc forward 127.0.0.1:PICKLEPORT type pickle ;   # a real carbon-cache
    cluster ps forward 127.0.0.1:PSPORT type pickle ;       # a frame recorder here

The frame recorder (PickleRecorder below) reads the frames the way carbon's
pickle receiver does and checks each: protocol 2, a list of
(path, (timestamp, value)) tuples, at most 500 datapoints.

1. 1200 datapoints (4 series x 300 timestamps, 10 s apart, the last hour):
   whisper files appear, and python3-whisper reads back exactly the values
   sent at their timestamps; the recorder got them in frames of <= 500.
2. carbon-cache is stopped (SIGSTOP) and the recorder stops reading; a
   burst goes in until orchester cannot write to either (its queue for
   both grows: the last write to each was cut short, mid-frame); then
   carbon-cache is killed (SIGKILL) and the recorder resets its connection
   while it holds half a frame.  Datapoints sent while carbon-cache is down
   (status: state=down) and after it restarted and orchester reconnected
   (state=up) all land in whisper with their values; nothing in whisper
   disagrees with what was sent; the restarted carbon-cache logs no
   unpickling error or lost connection; every frame the recorder got, on
   the old connection and the new one, decodes.
"""
import io
import os
import pickle
import re
import selectors
import signal
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     wait_status, tcp_accepts, send_tcp, GiveUp, CheckFailed,
                     START_TIMEOUT)

STEP = 10                 # the carbon-cache's retention step (10s:1d)
POINTS_PER_FRAME = 500
BURST_CHUNK = 20000       # datapoints per write of the burst
BURST_MAX = 600000        # give up filling the sockets after this many
QUEUE = 2000000           # -q: nothing is dropped while carbon-cache is away

# what a carbon-cache must not log after orchester reconnected
CARBON_BAD = re.compile(r"invalid pickle|Error decoding pickle|Unhandled Error|"
                        r"Traceback|lengthLimitExceeded|"
                        r"MetricPickleReceiver connection with \S+ lost")


# ---------------------------------------------------------------------------
# a pickle receiver that records and checks every frame

class _NoGlobals(pickle.Unpickler):
    """Loads plain data only: anything that imports or calls is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("global %s.%s refused" % (module, name))

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent id refused")


def check_frame(payload):
    """Decode one frame's pickle; return (points, problem or '')."""
    if payload[:2] != b"\x80\x02":
        return [], "does not start with PROTO 2: %r" % payload[:8]
    try:
        obj = _NoGlobals(io.BytesIO(payload)).load()
    except Exception as e:
        return [], "does not unpickle: %s: %s" % (type(e).__name__, e)
    if not isinstance(obj, list):
        return [], "is a %s, not a list" % type(obj).__name__
    if len(obj) > POINTS_PER_FRAME:
        return [], "holds %d datapoints (more than %d)" % (len(obj), POINTS_PER_FRAME)
    pts = []
    for item in obj:
        ok = (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
              and isinstance(item[1], tuple) and len(item[1]) == 2)
        if ok:
            ts, v = item[1]
            ok = (isinstance(ts, (int, float)) and not isinstance(ts, bool)
                  and isinstance(v, float))
            if ok and isinstance(ts, float) and ts.is_integer():
                ok = False  # whole timestamps go out as integers
        if not ok:
            return [], "holds %r, not (str, (int, float))" % (item,)
        pts.append((item[0], item[1][0], item[1][1]))
    return pts, ""


class PickleRecorder:
    """A TCP server that reads carbon pickle frames, checks and records them.

    frames: (connection index, datapoints) per frame; points: every
    (path, ts, value); problems: what was wrong.  pause() stops reading;
    reset_midframe() resumes and, on the first read that leaves half a frame
    in the buffer, resets that connection (RST) and drops the half frame."""

    def __init__(self, rcvbuf=8192):
        self.rcvbuf = rcvbuf
        self.lock = threading.Lock()
        self.frames = []
        self.points = []
        self.problems = []
        self.accepted = 0
        self.paused = False
        self.reset_pending = False
        self.reset_done = None       # (connection index, bytes of the half frame)
        self._stop = False
        self._ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._ls.bind(("127.0.0.1", 0))
        self.port = self._ls.getsockname()[1]
        self._ls.listen(16)
        self._ls.setblocking(False)
        self._wr, self._ww = socket.socketpair()
        self._wr.setblocking(False)
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="pickle-recorder")
        self._thread.start()

    def _loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self._ls, selectors.EVENT_READ, "listen")
        sel.register(self._wr, selectors.EVENT_READ, "wake")
        bufs = {}
        idle = {}
        try:
            while not self._stop:
                if self.paused and not idle:
                    for key in list(sel.get_map().values()):
                        if key.data not in ("listen", "wake"):
                            idle[key.fileobj] = key.data
                            sel.unregister(key.fileobj)
                elif not self.paused and idle:
                    for c, idx in idle.items():
                        sel.register(c, selectors.EVENT_READ, idx)
                    idle = {}
                for key, _ in sel.select(timeout=0.5):
                    if key.data == "wake":
                        try:
                            self._wr.recv(4096)
                        except OSError:
                            pass
                        continue
                    if key.data == "listen":
                        try:
                            c, _ = self._ls.accept()
                        except OSError:
                            continue
                        c.setblocking(False)
                        with self.lock:
                            idx = self.accepted
                            self.accepted += 1
                        bufs[c] = bytearray()
                        if self.paused:
                            idle[c] = idx
                        else:
                            sel.register(c, selectors.EVENT_READ, idx)
                        continue
                    c = key.fileobj
                    try:
                        data = c.recv(1 << 16)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        if bufs.get(c):
                            self._problem("connection %d closed with %d bytes of a "
                                          "frame" % (key.data, len(bufs[c])))
                        sel.unregister(c)
                        c.close()
                        bufs.pop(c, None)
                        continue
                    buf = bufs[c]
                    buf += data
                    self._frames(key.data, buf)
                    if self.reset_pending and buf:
                        # half a frame is here: reset the connection now
                        self.reset_pending = False
                        with self.lock:
                            self.reset_done = (key.data, len(buf))
                        sel.unregister(c)
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
                        c.close()
                        bufs.pop(c, None)
        finally:
            for key in list(sel.get_map().values()):
                try:
                    key.fileobj.close()
                except OSError:
                    pass
            for c in idle:
                c.close()
            sel.close()

    def _problem(self, text):
        with self.lock:
            self.problems.append(text)

    def _frames(self, idx, buf):
        off = 0
        while len(buf) - off >= 4:
            n = struct.unpack("!I", bytes(buf[off:off + 4]))[0]
            if n > (8 << 20):
                self._problem("connection %d: a frame of %d bytes (not a frame "
                              "boundary?)" % (idx, n))
                off = len(buf)
                break
            if len(buf) - off - 4 < n:
                break
            pts, why = check_frame(bytes(buf[off + 4:off + 4 + n]))
            off += 4 + n
            with self.lock:
                if why:
                    self.problems.append("connection %d: frame %s" % (idx, why))
                else:
                    self.frames.append((idx, len(pts)))
                    self.points.extend(pts)
        del buf[:off]

    def _wake(self):
        try:
            self._ww.send(b"x")
        except OSError:
            pass

    def pause(self):
        self.paused = True
        self._wake()

    def reset_midframe(self):
        self.reset_pending = True
        self.paused = False
        self._wake()

    def snapshot(self):
        with self.lock:
            return list(self.frames), list(self.points), list(self.problems)

    def stop(self):
        self._stop = True
        self._wake()
        self._thread.join(10)
        self._ls.close()
        self._ww.close()


# ---------------------------------------------------------------------------
# datapoints and whisper

class Family:
    """Datapoints PREFIX.mNN: point i is series i % nseries at
    base - (i // nseries) * STEP, with a value unique to it."""

    def __init__(self, prefix, nseries, base, seed):
        self.prefix = prefix
        self.nseries = nseries
        self.base = base
        self.seed = seed
        self.sent = 0

    def name(self, s):
        return "%s.m%02d" % (self.prefix, s)

    def point(self, i):
        s, slot = i % self.nseries, i // self.nseries
        return self.name(s), self.base - slot * STEP, self.seed + i + 0.25

    def lines(self, n):
        """The next n datapoints as plaintext lines."""
        out = []
        for i in range(self.sent, self.sent + n):
            name, ts, v = self.point(i)
            out.append(b"%s %r %d\n" % (name.encode(), v, ts))
        self.sent += n
        return b"".join(out)

    def expected(self, lo=0, hi=None):
        """{name: {ts: value}} of points lo .. hi-1."""
        out = {}
        for i in range(lo, self.sent if hi is None else hi):
            name, ts, v = self.point(i)
            out.setdefault(name, {})[ts] = v
        return out


def whisper_points(path):
    """{ts: value} of every datapoint stored in a whisper file."""
    import whisper
    now = int(time.time())
    (start, _end, step), values = whisper.fetch(path, now - 86000, now + 60)
    return {start + i * step: v for i, v in enumerate(values) if v is not None}


def missing_in_whisper(carbon, expected):
    """The (name, ts, value) of expected that whisper does not hold (yet),
    and those it holds with another value."""
    missing, wrong = [], []
    for name, pts in sorted(expected.items()):
        path = carbon.whisper_path(name)
        have = whisper_points(path) if os.path.exists(path) else {}
        for ts, v in sorted(pts.items()):
            if ts not in have:
                missing.append((name, ts, v))
            elif have[ts] != v:
                wrong.append((name, ts, v, have[ts]))
    return missing, wrong


def series_with_prefix(carbon, prefix):
    return sorted(n for n in carbon.whisper_files() if n.startswith(prefix + "."))


# ---------------------------------------------------------------------------

def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
    with t.check("python3-whisper is available", fatal=True):
        import whisper  # noqa: F401

    with t.check("carbon-cache starts", fatal=True):
        carbon = t.carbon_cache()
    rec = PickleRecorder()
    t.on_cleanup(rec.stop)

    port = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    cc_key = ("cc", "127.0.0.1:%d" % carbon.pickle_port)
    ps_key = ("ps", "127.0.0.1:%d" % rec.port)
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster cc forward 127.0.0.1:%d type pickle ;
cluster ps forward 127.0.0.1:%d type pickle ;
match * send to cc ps stop ;
""" % (port, control, carbon.pickle_port, rec.port)
    with t.check("orchester starts with two pickle members", fatal=True):
        orch = t.start_orchester("orchester", conf, opts=("-S", "3600", "-q", str(QUEUE)),
                                 control=control, tcp_ports=(port,))
        wait_status(t.build, control, START_TIMEOUT, "both pickle members up",
                    lambda st: all(st["destinations"].get(k, {}).get("state") == "up"
                                   for k in (cc_key, ps_key)))

    def alive():
        if not orch.alive():
            raise GiveUp("orchester exited with %s" % orch.returncode)
        if carbon.proc.expect_alive and not carbon.proc.alive():
            raise GiveUp("carbon-cache exited with %s" % carbon.proc.returncode)

    def send(data):
        errs = send_tcp(port, [data])
        require(not errs, "; ".join(errs))

    now = int(time.time())
    base = now - now % STEP - STEP

    # -- 1. 1200 datapoints --------------------------------------------------
    fa = Family("pout.a", 4, base, 1000)
    with t.check("1200 datapoints sent as plaintext (4 series x 300 timestamps)", fatal=True):
        send(fa.lines(1200))

    with t.check("whisper holds exactly the values sent at their timestamps, per series"):
        exp = fa.expected()
        box = {}

        def landed():
            alive()
            box["m"], box["w"] = missing_in_whisper(carbon, exp)
            return not box["m"] and not box["w"]

        try:
            wait_until(landed, 60.0, "the 1200 datapoints in whisper", interval=0.5)
        except CheckFailed as e:
            raise CheckFailed("%s: %d missing %r, %d wrong %r" % (
                e, len(box.get("m", [])), box.get("m", [])[:3],
                len(box.get("w", [])), box.get("w", [])[:3]))
        names = series_with_prefix(carbon, "pout.a")
        require(names == sorted(exp), "series %r, expected %r" % (names, sorted(exp)))
        for n in names:
            have = whisper_points(carbon.whisper_path(n))
            require(have == exp[n], "%s holds %d datapoints, %d sent (extra at %r)" % (
                n, len(have), len(exp[n]), sorted(set(have) - set(exp[n]))[:3]))

    with t.check("the frames are protocol 2, (str, (int, float)) tuples, <= 500 "
                 "datapoints each, 1200 datapoints in >= 3 frames"):
        def got_all():
            alive()
            return len(rec.snapshot()[1]) >= 1200
        wait_until(got_all, 30.0, "1200 datapoints at the frame recorder")
        frames, points, problems = rec.snapshot()
        require(not problems, "; ".join(problems[:3]))
        require(len(frames) >= 3 and sum(n for _, n in frames) == 1200,
                "%d frames of %r datapoints" % (len(frames), [n for _, n in frames][:20]))
        want = sorted((name, ts, v) for name, s in fa.expected().items()
                      for ts, v in s.items())
        require(sorted(points) == want, "the recorded datapoints differ from those sent")
        sys.stderr.write("# 1200 datapoints came in %d frames: %r\n"
                         % (len(frames), [n for _, n in frames]))

    # -- 2. carbon-cache killed mid-frame, and restarted ------------------------
    def dest(st, key):
        d = st["destinations"].get(key)
        if d is None:
            raise CheckFailed("no destination %s %s in status" % key)
        return d

    fb = Family("pout.burst", 100, base, 1000000)
    with t.check("with carbon-cache stopped (SIGSTOP) and the recorder not reading, "
                 "orchester's queue for both grows (writes cut short)", fatal=True):
        os.kill(carbon.proc.pid, signal.SIGSTOP)
        rec.pause()
        full = False

        def grown(st):
            return (dest(st, cc_key)["queued"] > 2 * BURST_CHUNK
                    and dest(st, ps_key)["queued"] > 2 * BURST_CHUNK)
        while not full and fb.sent < BURST_MAX:
            send(fb.lines(BURST_CHUNK))
            # the sender's counters reach status once a second: give the
            # next snapshot its chance before sending more
            try:
                st = wait_status(t.build, control, 1.5, "the queues to grow",
                                 grown)
            except CheckFailed:
                st = wait_status(t.build, control, 10.0, "status")
            full = grown(st)
        sys.stderr.write("# burst: %d datapoints; queued cc %d, ps %d\n" % (
            fb.sent, dest(st, cc_key)["queued"], dest(st, ps_key)["queued"]))
        require(full, "after %d datapoints, queued: cc %d, ps %d" % (
            fb.sent, dest(st, cc_key)["queued"], dest(st, ps_key)["queued"]))

    with t.check("carbon-cache killed (SIGKILL), the recorder resets its connection "
                 "mid-frame: status shows carbon-cache's member down", fatal=True):
        carbon.proc.signal(signal.SIGKILL)
        require(carbon.proc.wait(10.0) is not None, "carbon-cache did not die")
        rec.reset_midframe()
        wait_until(lambda: rec.reset_done is not None, 20.0,
                   "the recorder to hold half a frame and reset")
        wait_status(t.build, control, 20.0, "orchester's member cc to be down",
                    lambda st: dest(st, cc_key)["state"] == "down")
        sys.stderr.write("# recorder reset connection %d holding %d bytes of a frame\n"
                         % rec.reset_done)

    fd = Family("pout.down", 10, base, 2000000)
    with t.check("1000 datapoints sent while carbon-cache is down", fatal=True):
        send(fd.lines(1000))

    with t.check("carbon-cache restarts; orchester reconnects by itself", fatal=True):
        out_before = len(carbon.proc.err_paths)
        carbon.proc.start()

        def cc_ready():
            if not carbon.proc.alive():
                raise GiveUp("carbon-cache exited with %s: %s" % (
                    carbon.proc.returncode, carbon.proc.stderr_tail(800)))
            return tcp_accepts(carbon.pickle_port)

        wait_until(cc_ready, START_TIMEOUT, "carbon-cache to accept on its pickle port")
        require(len(carbon.proc.err_paths) == out_before + 1, "new log files")
        wait_status(t.build, control, 30.0, "orchester's member cc to be up again",
                    lambda st: dest(st, cc_key)["state"] == "up"
                    and dest(st, ps_key)["state"] == "up")

    fu = Family("pout.up", 10, base, 3000000)
    with t.check("1000 datapoints sent after the reconnection", fatal=True):
        send(fu.lines(1000))

    with t.check("every datapoint sent while carbon-cache was down and after it came "
                 "back is in whisper with its value"):
        exp = fd.expected()
        exp.update(fu.expected())
        box = {}

        def landed():
            alive()
            box["m"], box["w"] = missing_in_whisper(carbon, exp)
            return not box["m"] and not box["w"]

        try:
            wait_until(landed, 60.0, "the 2000 datapoints in whisper", interval=0.5)
        except CheckFailed as e:
            raise CheckFailed("%s: %d missing %r, %d wrong %r" % (
                e, len(box.get("m", [])), box.get("m", [])[:3],
                len(box.get("w", [])), box.get("w", [])[:3]))

    with t.check("nothing in whisper disagrees with what was sent (burst included)"):
        wrong = []
        counted = 0
        for fam in (fa, fb, fd, fu):
            exp = fam.expected()
            for n in series_with_prefix(carbon, fam.prefix):
                have = whisper_points(carbon.whisper_path(n))
                counted += len(have)
                for ts, v in have.items():
                    if exp.get(n, {}).get(ts) != v:
                        wrong.append((n, ts, v, exp.get(n, {}).get(ts)))
        sys.stderr.write("# whisper holds %d datapoints of the %d sent\n"
                         % (counted, fa.sent + fb.sent + fd.sent + fu.sent))
        require(not wrong, "%d datapoints that were not sent, e.g. (name, ts, "
                "stored, sent) %r" % (len(wrong), wrong[:3]))

    with t.check("the restarted carbon-cache logs no unpickling error and no lost "
                 "connection"):
        alive()
        text = carbon.proc.stdout() + carbon.proc.stderr()
        for root, _, files in os.walk(carbon.logdir):
            for fn in files:
                with open(os.path.join(root, fn), "rb") as f:
                    text += f.read().decode("utf-8", "replace")
        bad = [ln for ln in text.splitlines() if CARBON_BAD.search(ln)]
        require(not bad, "%d lines like %r" % (len(bad), bad[:3]))

    with t.check("orchester's connection to each member, once back, is not lost again"):
        alive()
        log = orch.stderr().splitlines()
        for key in (cc_key, ps_key):
            tag = "dest: %s %s: " % key
            mine = [ln for ln in log if tag in ln]
            last = max((i for i, ln in enumerate(mine) if ln.endswith(tag + "connected")),
                       default=None)
            require(last is not None, "orchester never logged %r" % (tag + "connected"))
            require(last == len(mine) - 1, "after reconnecting: %r" % mine[last + 1:][:3])
        require(rec.accepted == 2, "the recorder saw %d connections, expected 2"
                % rec.accepted)

    with t.check("status: both members up, nothing dropped, nothing left queued"):
        st = wait_status(t.build, control, 30.0, "both members to have written everything",
                         lambda s: all(dest(s, k)["queued"] == 0 for k in (cc_key, ps_key)))
        for key in (cc_key, ps_key):
            d = dest(st, key)
            require(d["state"] == "up" and d["dropped"] == 0,
                    "%s %s: %r" % (key[0], key[1], d))
            sys.stderr.write("# %s %s: %r\n" % (key[0], key[1], d))

    with t.check("the recorder: every frame on every connection decoded, none over "
                 "500 datapoints, and it got the datapoints sent after its reset"):
        exp = fd.expected()
        exp.update(fu.expected())
        want = {(n, ts, v) for n, s in exp.items() for ts, v in s.items()}

        def got():
            alive()
            pts = rec.snapshot()[1]
            return want <= set(pts)

        try:
            wait_until(got, 60.0, "the 2000 datapoints at the recorder")
        except CheckFailed as e:
            raise CheckFailed("%s: %d missing" % (e, len(want - set(rec.snapshot()[1]))))
        frames, points, problems = rec.snapshot()
        require(rec.accepted >= 2, "the recorder saw %d connections" % rec.accepted)
        require(not problems, "%d problems: %s" % (len(problems), "; ".join(problems[:3])))
        sent = {}
        for fam in (fa, fb, fd, fu):
            for n, s in fam.expected().items():
                for ts, v in s.items():
                    sent[(n, ts)] = v
        strange = [p for p in points if sent.get((p[0], p[1])) != p[2]]
        require(not strange, "%d datapoints that were not sent: %r" % (len(strange), strange[:3]))
        after = [n for c, n in frames if c > rec.reset_done[0]]
        sys.stderr.write("# recorder: %d frames on %d connections, %d after the reset\n"
                         % (len(frames), rec.accepted, len(after)))


if __name__ == "__main__":
    Test().run(body)
