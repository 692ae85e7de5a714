#!/usr/bin/python3
"""
test_batch_trust.py -- the orchester trusts no satellite.

An orchester binds `satellites bind tcp://127.0.0.1:PORT` and forwards to a
sink.  A crafted client (a zmq DEALER speaking the batch protocol of
docs/protocol.rst) sends batches no satellite would make: lines with NUL and
control bytes in the name, without a timestamp, with a garbage value, over
the line limit, not cleansed, mixed with good lines; a payload cut short; a
payload larger than any satellite makes.  Only the good lines reach the
sink, and satellites.badBatches, satellites.badLines and metricsReceived
move by exactly what was sent.

Then the backend turns slow (the sink stops reading), a crafted batch of
more datapoints than the destination's queue holds comes in, and a real
`satellite` sends 10,000 lines through the same endpoint while the crafted
client hammers it from a second connection with the same bad batches,
payloads over the size limit, malformed frames and sequence numbers the
satellite also uses.  When the backend reads again, the satellite's 10,000
lines all arrive.  (Before the orchester bounded payloads, the sender made
room for such a batch by dropping every queued chunk: datapoints of real
satellites that were already acknowledged.)

Needs python3-zmq (Debian's package; bootstrap.sh installs it).
"""
import collections
import os
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until,  # noqa: E402
                     wait_status, send_tcp, check_build, counter, SinkTracker,
                     CheckFailed)

try:
    import zmq
except ImportError:  # reported by the first check
    zmq = None

MAXLINE = 16384                     # the orchester's -M (its default)
PAYLOAD_MAX = 65535 + MAXLINE + 19  # BATCH_PAYLOAD_MAX(16384), src/batch.h
QUEUE = 100000                      # the orchester's -q (its default)
ACK_TIMEOUT = 30.0
HDR = struct.Struct(">4sBBBBQQI")   # magic, version, type, codec, flags,
                                    # satellite id, sequence number, count


def header(seq, count, sat_id=0x5eed5eed5eed5eed, typ=1, codec=1):
    return HDR.pack(b"ORCB", 1, typ, codec, 0, sat_id, seq, count)


def payload(lines, cut=b""):
    """Lines joined with '\\n' after each, then cut (a last line without
    '\\n', when given)."""
    return b"".join(ln + b"\n" for ln in lines) + cut


class Crafted:
    """A client of the satellites endpoint that is no satellite."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.seq = 0
        self.acked = collections.Counter()  # sequence number: acks not yet
                                            # waited for

    def batch(self, body, count, seq=None, sat_id=0x5eed5eed5eed5eed):
        """Send a data batch; return its sequence number."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.sock.send_multipart([header(seq, count, sat_id), body])
        return seq

    def frames(self, frames):
        """Send any message (for malformed ones)."""
        self.sock.send_multipart(frames)

    def wait_acks(self, seqs, timeout=ACK_TIMEOUT):
        """Wait until each sequence number in seqs (a number twice: two
        acknowledgements) was acknowledged, and take those acknowledgements."""
        want = collections.Counter(seqs)
        deadline = time.monotonic() + timeout
        while any(self.acked[s] < n for s, n in want.items()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed("no acknowledgement of batches %s within %.0f s"
                                  % (sorted(s for s, n in want.items()
                                            if self.acked[s] < n), timeout))
            if self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                msg = self.sock.recv_multipart(zmq.NOBLOCK)
                if len(msg) == 1 and len(msg[0]) == HDR.size:
                    f = HDR.unpack(msg[0])
                    if f[0] == b"ORCB" and f[2] == 2:
                        self.acked[f[6]] += 1
        self.acked -= want

    def close(self):
        self.sock.close()
        self.ctx.term()


def bad_lines(ts, tag):
    """Lines no satellite writes, each refused on its own."""
    return [
        b"trust.bad.%s.nul\x00name 1 %d" % (tag, ts),
        b"trust.bad.%s.ctl\x01\x1b[31m 1 %d" % (tag, ts),
        b"trust.bad.%s.nots 1" % tag,
        b"trust.bad.%s.value 12abc %d" % (tag, ts),
        b"trust.bad.%s.nan nan %d" % (tag, ts),
        b"trust.bad.%s.long%s 1 %d" % (tag, b"x" * (MAXLINE + 64), ts),
        b"trust.bad.%s..dots 1 %d" % (tag, ts),
        b"trust.bad.%s.cr 1 %d\r" % (tag, ts),
        b"trust.bad.%s.now 1 -1" % tag,
        b"trust.bad.%s.four 1 %d 5" % (tag, ts),
        b"trust.bad.%s.tab\t1 %d" % (tag, ts),
        b"\xff\xfe trust.bad.%s.bin 1 %d" % (tag, ts),
        b"",
    ]


def body(t):
    with t.check("python3-zmq is installed (bootstrap.sh TEST_PKGS)", fatal=True):
        require(zmq is not None, "import zmq failed: apt-get install python3-zmq")
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    satport = free_port()
    inport = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", """satellites bind tcp://127.0.0.1:%d ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (satport, control, sink.port), control=control, tcp_ports=(satport,))

    crafted = Crafted("tcp://127.0.0.1:%d" % satport)
    t.on_cleanup(crafted.close)
    ts = int(time.time()) - 600

    with t.check("only the good lines of crafted batches reach the sink; "
                 "the counters move by exactly the bad ones"):
        before = t.status(control)["counters"]
        good = [b"trust.good.%d %d %d" % (i, i, ts + i) for i in range(14)]
        bad = bad_lines(ts, b"mixed")
        mixed = []
        for i, g in enumerate(good[:12]):
            mixed.append(g)
            if i < len(bad):
                mixed.append(bad[i])
        mixed += bad[12:]
        mixed.append(good[12])                  # a good line last
        seqs = [crafted.batch(payload(mixed), len(mixed))]
        # a payload cut short: its last line has no '\n'
        seqs.append(crafted.batch(payload([good[13]], b"trust.bad.cut 1 1"), 2))
        # nothing but bad lines
        allbad = bad_lines(ts, b"all")
        seqs.append(crafted.batch(payload(allbad), len(allbad)))
        # valid lines, but more bytes than any satellite puts in a batch
        big = [b"trust.big.%05d 1 %d" % (i, ts) for i in range(PAYLOAD_MAX // 20)]
        bigp = payload(big)
        require(len(bigp) > PAYLOAD_MAX, "the big payload is too small")
        seqs.append(crafted.batch(bigp, len(big)))
        crafted.wait_acks(seqs)
        fence = b"trust.fence 1 %d" % ts
        crafted.wait_acks([crafted.batch(payload([fence]), 1)])
        # one destination, one connection, written in order: once the fence
        # is there, everything routed before it is there too
        wait_until(lambda: fence in sink.snapshot(), 30.0, "the fence line at the sink")
        got = [ln for ln in sink.snapshot() if ln.startswith(b"trust.") or
               b"trust.bad" in ln or not ln]
        want = good + [fence]
        require(sorted(got) == sorted(want),
                "the sink got %d trust lines, want %d; unexpected: %r; missing: %r"
                % (len(got), len(want), [ln[:60] for ln in got if ln not in want][:8],
                   [ln for ln in want if ln not in got][:8]))
        after = t.status(control)["counters"]

        def delta(name):
            return counter({"counters": after}, name) - counter({"counters": before}, name)
        nbad = len(bad) + 1 + len(allbad)
        require(delta("satellites.batches") == 5,
                "satellites.batches moved by %d, want 5" % delta("satellites.batches"))
        require(delta("satellites.badBatches") == 4,
                "satellites.badBatches moved by %d, want 4" % delta("satellites.badBatches"))
        require(delta("satellites.badLines") == nbad,
                "satellites.badLines moved by %d, want %d" % (delta("satellites.badLines"), nbad))
        require(delta("metricsReceived") == len(want),
                "metricsReceived moved by %d, want %d" % (delta("metricsReceived"), len(want)))

    with t.check("a real satellite delivers all 10000 lines while the crafted "
                 "client hammers the endpoint"):
        sconf = t.write("satellite.conf", """listen type linemode 127.0.0.1:%d proto tcp ;
orchester tcp://127.0.0.1:%d ;
""" % (inport, satport))
        sat = t.satellite("satellite", sconf).start()
        t.wait_ready(sat, tcp_ports=(inport,))
        real = [b"real.m%d %d %d" % (i % 50, i, ts + i) for i in range(10000)]
        tr = SinkTracker(sink, real)
        # The backend is slow for a while: the sink stops reading.  A
        # crafted batch of more datapoints than the destination's queue
        # holds (and more bytes than the kernel's buffers) comes first.  It
        # is far over twice the largest batch a satellite makes, so zmq
        # drops that connection before it is read in full (the client's
        # socket connects again): it is never acknowledged, never routed.
        sink.pause()
        giant_line = b"giant.%s 1 %d" % (b"g" * 80, ts)
        ngiant = QUEUE + QUEUE // 10
        st0 = t.status(control)["counters"]
        giant_seq = crafted.batch(payload([giant_line]) * ngiant, ngiant)
        fence = b"trust.fence1 1 %d" % ts
        # the fence may go out on the connection zmq drops: sent again on
        # the next one until one is acknowledged
        for attempt in range(10):
            try:
                crafted.wait_acks([crafted.batch(payload([fence]), 1)], 3.0)
                break
            except CheckFailed:
                require(attempt < 9, "no fence after the giant batch was "
                        "acknowledged in 10 tries")
        st = t.status(control)
        require(crafted.acked.get(giant_seq, 0) == 0,
                "the giant batch was acknowledged")
        queued = sum(d.get("queued", 0) for d in st["destinations"].values())
        require(queued < ngiant, "the giant batch was queued (%d)" % queued)
        # the crafted client hammers on from a second connection while the
        # satellite sends its lines
        stop = threading.Event()
        errors = []

        def hammer():
            h = Crafted("tcp://127.0.0.1:%d" % satport)
            try:
                n = 0
                big = payload([b"trust.big.%05d 1 %d" % (i, ts)
                               for i in range(PAYLOAD_MAX // 20)])
                while not stop.is_set() or n < 3:
                    hb = bad_lines(ts, b"h%d" % n)
                    seqs = [h.batch(payload(hb), len(hb)),
                            # sequence numbers the satellite uses too
                            h.batch(payload(hb), len(hb), seq=n + 1, sat_id=n + 1),
                            h.batch(big, PAYLOAD_MAX // 20)]
                    # malformed messages: no payload, two payloads, a bad
                    # header, an acknowledgement, an unknown codec
                    h.frames([header(1000000 + n, 1)])
                    h.frames([header(2000000 + n, 1), b"a 1 2\n", b"b 1 2\n"])
                    h.frames([b"ORCB\x01junk"])
                    h.frames([header(n + 1, 64, typ=2)])
                    h.frames([HDR.pack(b"ORCB", 1, 1, 9, 0, 1, 3000000 + n, 1),
                              b"a 1 2\n"])
                    h.wait_acks(seqs + [1000000 + n, 2000000 + n, 3000000 + n])
                    n += 1
            except Exception as e:  # reported by the main thread
                errors.append("%s: %s" % (type(e).__name__, e))
            finally:
                h.close()
        th = threading.Thread(target=hammer, name="hammer", daemon=True)
        th.start()
        try:
            errs = send_tcp(inport, [payload(real)])
            require(not errs, "; ".join(errs))
            # every line of the satellite was routed (the crafted ones are
            # all refused, so only the satellite's count here)
            wait_status(t.build, control, 60.0, "10000 more in metricsReceived",
                        lambda st: counter(st, "metricsReceived") >=
                        counter({"counters": st0}, "metricsReceived") + len(real))
        finally:
            stop.set()
            th.join(ACK_TIMEOUT + 10.0)
            sink.resume()
        require(not th.is_alive(), "the hammer thread did not stop")
        require(not errors, "crafted client: " + "; ".join(errors))
        try:
            wait_until(tr.complete, 60.0, "the 10000 lines of the satellite at the sink")
        except CheckFailed as e:
            raise CheckFailed("%s: %d of them lost, e.g. %r" % (
                e, len(tr.missing), sorted(tr.missing)[:3]))
        require(orch.alive() and sat.alive(), "a daemon exited")

    with t.check("no line of the crafted batches reached the sink"):
        fence = b"trust.fence2 1 %d" % ts
        crafted.wait_acks([crafted.batch(payload([fence]), 1)])
        wait_until(lambda: fence in sink.snapshot(), 30.0, "the last fence at the sink")
        lines = sink.snapshot()
        bad = [ln for ln in lines if b"trust.bad" in ln or ln.startswith(b"giant.")
               or ln.startswith(b"trust.big") or not ln]
        require(not bad, "%d crafted lines at the sink, e.g. %r" % (
            len(bad), [ln[:60] for ln in bad[:3]]))


if __name__ == "__main__":
    Test().run(body)
