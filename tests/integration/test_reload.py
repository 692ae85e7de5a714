#!/usr/bin/python3
"""
test_reload.py -- a reload under a steady stream loses and misroutes
nothing; a bad configuration is refused and the running one stays.

orchester listens on TCP and has a control endpoint.  Config A:
    cluster s1 forward S1 ;  cluster s2 forward S2 ;  cluster keep forward K ;
    match ^keep\\. send to keep ;
    match ^seq\\. send to s1 stop ;
Config B is A with `send to s2` in the seq rule.  Nothing listens on K yet.

One client connection sends seq.N lines (N = 0, 1, 2, ...) at a steady pace
for several seconds, with a keep.M line after every 100 seq lines.  While it
runs, the file is rewritten to B and `orchester-ctl reload` is called (it must
answer "ok" and exit 0); later SIGHUP reloads the same file once more.

Then: every seq line arrived exactly once; S1 holds exactly seq 0..K-1 and S2
exactly K..end, each in order (nothing went to the wrong sink, before or
after the switch).  The keep destination, in both configs, kept its queue
through both reloads: its sink starts only after them, and every keep line,
sent before or after the reloads, arrives in order.

A configuration with a syntax error: `orchester-ctl reload` exits non-zero
and prints "error" with FILE:LINE; orchester keeps running with the old
rules (new seq lines still go to S2) and logs that the running configuration
stays.
"""
import os
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, send_tcp, wait_until,  # noqa: E402
                     check_build, wait_status, ctl, first_difference)

NSEQ = 200000          # seq lines in the stream
KEEP_EVERY = 100       # a keep line after every this many seq lines
CHUNK = 1000           # seq lines per send
PACE = 45000.0         # seq lines per second: the stream lasts about 4.5 s
NAFTER = 1000          # seq lines sent after the refused reload


def conf_text(port, control, s1, s2, keep, seq_to):
    return """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster s1 forward 127.0.0.1:%d ;
cluster s2 forward 127.0.0.1:%d ;
cluster keep forward 127.0.0.1:%d ;
match ^keep\\. send to keep ;
match ^seq\\. send to %s stop ;
""" % (port, control, s1, s2, keep, seq_to)


class Stream(threading.Thread):
    """The steady client: one TCP connection, seq lines at PACE per second,
    a keep line after every KEEP_EVERY seq lines."""

    def __init__(self, port, ts):
        super().__init__(name="stream", daemon=True)
        self.port = port
        self.ts = ts
        self.sent_seq = 0
        self.keep_lines = []
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10.0)
            s.settimeout(60.0)
            t0 = time.monotonic()
            n = 0
            while n < NSEQ:
                buf = []
                for i in range(n, min(n + CHUNK, NSEQ)):
                    buf.append(b"seq.%d %d %d\n" % (i, i, self.ts))
                    if (i + 1) % KEEP_EVERY == 0:
                        k = len(self.keep_lines)
                        line = b"keep.%d %d %d" % (k, k, self.ts)
                        self.keep_lines.append(line)
                        buf.append(line + b"\n")
                s.sendall(b"".join(buf))
                n = min(n + CHUNK, NSEQ)
                self.sent_seq = n
                ahead = n / PACE - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the client, not waiting for a condition
            s.close()
        except Exception as e:  # reported by the check that joins the thread
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            self.done.set()


def seqs(sink):
    """The seq numbers at a sink, in arrival order (value checked too)."""
    out = []
    for ln in sink.snapshot():
        if ln.startswith(b"seq."):
            f = ln.split(b" ")
            n = int(f[0][4:])
            if len(f) != 3 or int(f[1]) != n:
                raise AssertionError("mangled line %r" % ln[:80])
            out.append(n)
    return out


def log_count(proc, text):
    return proc.stderr().count(text)


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    s1 = t.sink()
    s2 = t.sink()
    keep = t.sink()
    keep.stop()  # the port stays reserved: connects are refused until start()
    conf_a = conf_text(port, control, s1.port, s2.port, keep.port, "s1")
    conf_b = conf_text(port, control, s1.port, s2.port, keep.port, "s2")
    keep_key = ("keep", "127.0.0.1:%d" % keep.port)

    with t.check("orchester starts with config A", fatal=True):
        orch = t.start_orchester("orchester", conf_a, control=control,
                                 tcp_ports=(port,))
        conf = orch.conf

    ts = int(time.time()) - 600
    stream = Stream(port, ts)
    t.on_cleanup(lambda: stream.join(5))

    with t.check("mid-stream, config B on disk and orchester-ctl reload: "
                 "'ok', exit 0", fatal=True):
        stream.start()
        wait_until(lambda: stream.sent_seq >= NSEQ // 4 and len(s1.snapshot()) > 0,
                   30.0, lambda: "a quarter of the stream sent and lines at s1 "
                   "(sent %d, s1 has %d)" % (stream.sent_seq, s1.count()))
        require(not stream.done.is_set(), "the stream ended before the reload")
        with open(conf + ".new", "w") as f:
            f.write(conf_b)
        os.rename(conf + ".new", conf)
        rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
        require(rc == 0, "orchester-ctl reload exited %s: %s %s" % (rc, out.strip(), err.strip()))
        require(out.startswith("ok"), "answer %r" % out.strip())
        require(not stream.done.is_set(),
                "the stream ended before the reload was done; nothing was sent after it")

    with t.check("mid-stream, SIGHUP reloads the same file again"):
        wait_until(lambda: stream.sent_seq >= (NSEQ * 3) // 5, 30.0,
                   lambda: "three fifths of the stream sent (sent %d)" % stream.sent_seq)
        before = log_count(orch, "hub: reloaded")
        os.kill(orch.pid, signal.SIGHUP)
        wait_until(lambda: log_count(orch, "hub: reloaded") > before, 20.0,
                   "the log to say the SIGHUP reload was done")
        require(not stream.done.is_set(),
                "the stream ended before the SIGHUP reload was done")

    with t.check("the client sent the whole stream", fatal=True):
        require(stream.done.wait(60.0), "the stream did not finish in 60 s")
        require(stream.error is None, "client: %s" % stream.error)

    with t.check("every seq line arrived exactly once: s1 has 0..K-1 and s2 "
                 "K..end, each in order"):
        wait_until(lambda: s1.count() + s2.count() >= NSEQ, 60.0,
                   lambda: "%d seq lines at s1 and s2 (have %d + %d)"
                   % (NSEQ, s1.count(), s2.count()))
        a, b = seqs(s1), seqs(s2)
        k = len(a)
        require(0 < k < NSEQ, "K=%d: the switch was not mid-stream" % k)
        require(a == list(range(k)),
                "s1 is not exactly seq 0..%d in order: %s" % (k - 1, first_difference(a, list(range(k)))))
        require(b == list(range(k, NSEQ)),
                "s2 is not exactly seq %d..%d in order: %s"
                % (k, NSEQ - 1, first_difference(b, list(range(k, NSEQ)))))
        sys.stderr.write("# switch at seq %d of %d\n" % (k, NSEQ))

    with t.check("the keep destination kept its queue through both reloads; "
                 "every keep line arrives once, in order, when its sink starts"):
        nkeep = len(stream.keep_lines)
        require(nkeep == NSEQ // KEEP_EVERY, "sent %d keep lines" % nkeep)
        st = wait_status(t.build, control, 20.0, "keep destination down with %d queued" % nkeep,
                         lambda st: st["destinations"].get(keep_key, {}).get("queued") == nkeep)
        d = st["destinations"][keep_key]
        require(d.get("state") == "down" and d.get("dropped") == 0,
                "keep destination: %r" % d)
        keep.start()
        wait_until(lambda: keep.count() >= nkeep, 30.0,
                   lambda: "%d keep lines at the keep sink (have %d)" % (nkeep, keep.count()))
        got = keep.snapshot()
        require(got == stream.keep_lines,
                "keep lines: %s" % first_difference(got, stream.keep_lines))

    bad_line = 8
    with t.check("a config with a syntax error: orchester-ctl reload exits "
                 "non-zero and prints 'error' with FILE:LINE"):
        lines = conf_b.splitlines()
        require(len(lines) == bad_line - 1, "config B has %d lines" % len(lines))
        bad = conf_b + "match ^late\\. send s1 stop ;\n"
        with open(conf + ".new", "w") as f:
            f.write(bad)
        os.rename(conf + ".new", conf)
        rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
        text = out + err
        require(rc not in (0, None), "orchester-ctl reload exited %s: %r" % (rc, text.strip()))
        require("error" in text, "no 'error' in %r" % text.strip())
        require("%s:%d" % (conf, bad_line) in text,
                "no %s:%d in %r" % (conf, bad_line, text.strip()))

    with t.check("after the refused reload orchester runs the old rules: new "
                 "seq lines go to s2, none to s1; the log says the running "
                 "configuration stays"):
        require(orch.alive(), "orchester exited with %s" % orch.returncode)
        require("the running configuration stays" in orch.stderr(),
                "the log does not say the running configuration stays")
        n1 = s1.count()
        n2 = s2.count()
        data = b"".join(b"seq.%d %d %d\n" % (i, i, ts)
                        for i in range(NSEQ, NSEQ + NAFTER))
        errs = send_tcp(port, [data])
        require(not errs, "; ".join(errs))
        wait_until(lambda: s2.count() >= n2 + NAFTER, 30.0,
                   lambda: "%d more seq lines at s2 (have %d)" % (NAFTER, s2.count() - n2))
        b = seqs(s2)
        require(b[-NAFTER:] == list(range(NSEQ, NSEQ + NAFTER)),
                "s2 tail: %s" % first_difference(b[-NAFTER:], list(range(NSEQ, NSEQ + NAFTER))))
        require(s1.count() == n1, "s1 got %d lines after the refused reload"
                % (s1.count() - n1))
        nkeep = len(stream.keep_lines)
        wait_status(t.build, control, 20.0,
                    "keep destination up with queued=0 sent=%d dropped=0" % nkeep,
                    lambda st: st["destinations"].get(keep_key) == {
                        "state": "up", "queued": 0, "inflight": 0, "sent": nkeep,
                        "dropped": 0})


if __name__ == "__main__":
    Test().run(body)
