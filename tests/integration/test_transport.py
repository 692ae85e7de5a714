#!/usr/bin/python3
"""
test_transport.py -- compressed transports (gzip, lz4, snappy), alone and
under TLS, on listeners and members, framed as carbon-c-relay frames them.

Debian 12's carbon-c-relay is built with ssl only, so the compressed
streams it would send are built here with zlib, liblz4 and libsnappy
(Python's bindings) the way carbon-c-relay builds them: gzip is one
stream per connection with a partial flush after each 32 KiB buffer and no
trailer; lz4 is one frame per buffer; snappy is one raw block per buffer,
with no framing.  When the installed carbon-c-relay says it supports a
codec, it is run as the sender too.

- a "front" orchester listens with every transport (each codec, each
  codec under TLS) and forwards plain to a sink: every line each sender
  sends arrives, and status counts them per listener;
- a "back" orchester sends to the front through members with each
  transport: every line arrives, and its status shows the transport, the
  TLS version and the socket and stream byte counts;
- the back's members also send to receivers written here that decode the
  streams the way carbon-c-relay's listener does (zlib inflate of one gzip
  stream, lz4 frames back to back, raw snappy blocks): every line arrives;
- hostile streams: corrupt gzip, lz4 and snappy are each counted and
  closed; a gzip bomb (about 1 MB that inflates to 1 GiB) is closed once it
  inflates past the ratio limit, counted, and orchester's memory stays
  bounded, while another client's lines keep arriving;
- a compressed stream cut by the client mid-block costs only that block.
"""
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     make_pki,
                     SinkTracker, rss_kb, send_tcp)

import lz4.frame  # noqa: E402  (Debian: python3-lz4)
import snappy  # noqa: E402  (Debian: python3-snappy)

CRELAY = "/usr/bin/carbon-c-relay"
BUF = 32768  # carbon-c-relay's output buffer: one flush per this much
CODECS = ("gzip", "lz4", "snappy")






def chunks(data, n=BUF):
    return [data[i:i + n] for i in range(0, len(data), n)]


def encode_like_crelay(codec, data):
    """data framed as carbon-c-relay's sender frames it."""
    if codec == "gzip":
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        out = [z.compress(c) + z.flush(zlib.Z_PARTIAL_FLUSH)
               for c in chunks(data)]
        return b"".join(out)  # no Z_FINISH: no trailer, as it never ends one
    if codec == "lz4":
        return b"".join(lz4.frame.compress(c) for c in chunks(data))
    if codec == "snappy":
        return b"".join(snappy.compress(c) for c in chunks(data))
    raise ValueError(codec)


def send_stream(port, payload, ca=None, cut=65536):
    """Send payload over one connection (TLS verified with ca when given),
    in writes of cut bytes."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30.0)
    s = raw
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
    try:
        for i in range(0, len(payload), cut):
            s.sendall(payload[i:i + cut])
    finally:
        s.close()


def snappy_blocks(buf):
    """Split raw snappy blocks back to back: (blocks, rest).  The block's
    varint gives its uncompressed length; its elements are walked to find
    where it ends."""
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
            kind = tag & 3
            if kind == 0:
                n = tag >> 2
                if n >= 60:
                    k = n - 59
                    if p + k > len(buf):
                        return out, buf[pos:]
                    n = int.from_bytes(buf[p:p + k], "little")
                    p += k
                n += 1
                p += n
                got += n
            elif kind == 1:
                got += ((tag >> 2) & 7) + 4
                p += 1
            elif kind == 2:
                got += (tag >> 2) + 1
                p += 2
            else:
                got += (tag >> 2) + 1
                p += 4
        if p > len(buf):
            return out, buf[pos:]
        out.append(bytes(buf[pos:p]))
        pos = p


class DecodingSink:
    """A receiver that decodes a member's stream as carbon-c-relay's
    listener decodes it, and keeps the lines."""

    def __init__(self, codec, ca_pem=None):
        self.codec = codec
        self.lines = []
        self.lock = threading.Lock()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.ctx = None
        if ca_pem:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(ca_pem)
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        try:
            if self.ctx:
                c = self.ctx.wrap_socket(c, server_side=True)
            z = zlib.decompressobj(31) if self.codec == "gzip" else None
            dz = lz4.frame.LZ4FrameDecompressor() if self.codec == "lz4" else None
            raw, text = b"", b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                if z is not None:
                    text += z.decompress(b)
                elif dz is not None:
                    raw += b
                    while raw:
                        text += dz.decompress(raw)
                        raw = (dz.unused_data or b"") if dz.eof else b""
                        if dz.eof:
                            dz = lz4.frame.LZ4FrameDecompressor()
                else:
                    raw += b
                    blocks, raw = snappy_blocks(raw)
                    for blk in blocks:
                        text += snappy.uncompress(blk)
                *done, text = text.split(b"\n")
                with self.lock:
                    self.lines.extend(done)
        except Exception as e:  # noqa: BLE001 -- reported by the check
            self.errors.append(repr(e))
        finally:
            c.close()

    def has(self, want):
        with self.lock:
            return set(want) <= set(self.lines)

    def close(self):
        self.ls.close()


def listener_extra(st, port):
    for ls in st["listeners"]:
        if ls["addr"].endswith(":%d" % port):
            return dict(kv.partition("=")[::2] for kv in ls["extra"])
    raise AssertionError("no listener on port %d in status" % port)


def crelay_codecs():
    """The transports the installed carbon-c-relay was built with."""
    try:
        out = subprocess.run([CRELAY, "-v"], capture_output=True, text=True,
                             timeout=10).stdout
    except OSError:
        return set()
    for line in out.splitlines():
        if "enabled support for" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
    with t.check("a CA and a certificate are made with openssl", fatal=True):
        ca, pem = make_pki(t)

    sink = t.sink()
    ts = int(time.time()) - 600
    ports = {}
    lines = []
    for codec in CODECS:
        for tls in (False, True):
            ports[(codec, tls)] = free_port()
    for codec in CODECS:
        for tls in (False, True):
            lines.append("listen type linemode transport %s%s 127.0.0.1:%d "
                         "proto tcp ;" % (codec, " ssl " + pem if tls else "",
                                          ports[(codec, tls)]))
    control = "tcp://127.0.0.1:%d" % free_port()
    plain = free_port()
    with t.check("orchester starts with a listener for each codec, alone "
                 "and under TLS", fatal=True):
        t.start_orchester("front", """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
%s
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (control, plain, "\n".join(lines), sink.port), control=control,
            tcp_ports=(plain,))

    for codec in CODECS:
        for tls in (False, True):
            name = "%s%s" % (codec, "+ssl" if tls else "")
            with t.check("%s framed as carbon-c-relay frames it: every line "
                         "arrives, in writes cut across blocks" % name):
                want = [b"in.%s.m%d %d %d" % (name.replace("+", "_").encode(),
                                              i % 100, i, ts)
                        for i in range(30000)]
                payload = encode_like_crelay(
                    codec, b"".join(w + b"\n" for w in want))
                send_stream(ports[(codec, tls)], payload,
                            ca if tls else None, cut=7001)
                wait_until(SinkTracker(sink, want).complete, 60.0,
                           "30000 %s lines at the sink" % name)
                port = ports[(codec, tls)]
                wait_until(lambda: int(listener_extra(
                    t.status(control), port).get("received", 0)) >= 30000,
                    20.0, "status to count them")
                ex = listener_extra(t.status(control), port)
                require(ex.get("transport") == codec and
                        ex.get("decodeErrors") == "0", "status %r" % ex)

    have = crelay_codecs()
    for codec in CODECS:
        if codec not in have:
            print("# carbon-c-relay here is built with %s only: %s from it "
                  "is not run" % (" ".join(sorted(have)) or "nothing", codec))
            continue
        with t.check("carbon-c-relay sends over 'transport %s': every line "
                     "arrives" % codec):
            cport = free_port()
            conf = t.write("crelay-%s.conf" % codec, """listen type linemode
    127.0.0.1:%d proto tcp ;
cluster o forward 127.0.0.1:%d transport %s ;
match * send to o ;
""" % (cport, ports[(codec, False)], codec))
            cr = t.proc("carbon-c-relay-" + codec,
                        [CRELAY, "-f", conf, "-H", "c" + codec])
            cr.start()
            wait_until(lambda: cr.alive() and _accepts(cport), 20.0,
                       "carbon-c-relay to listen")
            want = [b"crelay.%s.m%d %d %d" % (codec.encode(), i % 50, i, ts)
                    for i in range(10000)]
            errs = send_tcp(cport, [b"".join(w + b"\n" for w in want)])
            require(not errs, "; ".join(errs))
            wait_until(SinkTracker(sink, want).complete, 60.0,
                       "carbon-c-relay's lines at the sink")
            cr.stop()

    # the back: members with each transport, to the front and to decoders
    decoders = {c: DecodingSink(c) for c in CODECS}
    decoders_tls = {c: DecodingSink(c, pem) for c in CODECS}
    for d in list(decoders.values()) + list(decoders_tls.values()):
        t.on_cleanup(d.close)
    bcontrol = "tcp://127.0.0.1:%d" % free_port()
    bport = free_port()
    clusters, matches = [], []
    for codec in CODECS:
        for tls in (False, True):
            n = "%s%s" % (codec, "_ssl" if tls else "")
            dec = (decoders_tls if tls else decoders)[codec]
            clusters.append("cluster f_%s forward 127.0.0.1:%d transport %s%s ;"
                            % (n, ports[(codec, tls)], codec,
                               " ssl" if tls else ""))
            clusters.append("cluster d_%s forward 127.0.0.1:%d transport %s%s ;"
                            % (n, dec.port, codec, " ssl" if tls else ""))
            matches.append("match ^out\\.%s\\. send to f_%s d_%s stop ;"
                           % (n, n, n))
    with t.check("a second orchester starts with a member for each "
                 "transport", fatal=True):
        t.start_orchester("back", """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
%s
%s
""" % (bcontrol, bport, "\n".join(clusters), "\n".join(matches)),
            opts=("-C", ca), control=bcontrol, tcp_ports=(bport,))

    for codec in CODECS:
        for tls in (False, True):
            n = "%s%s" % (codec, "_ssl" if tls else "")
            dec = (decoders_tls if tls else decoders)[codec]
            with t.check("orchester sends over 'transport %s%s': every line "
                         "reaches orchester and a decoder that reads it as "
                         "carbon-c-relay does" % (codec, " ssl" if tls else "")):
                want = [b"out.%s.m%d %d %d" % (n.encode(), i % 100, i, ts)
                        for i in range(40000)]
                errs = send_tcp(bport, [b"".join(w + b"\n" for w in want)])
                require(not errs, "; ".join(errs))
                wait_until(SinkTracker(sink, want).complete, 60.0,
                           "the lines through the front")
                wait_until(lambda: dec.has(want), 60.0,
                           "the lines at the decoder (%s)" % dec.errors)
                require(not dec.errors, "decoder: %s" % dec.errors)
                key = ("f_" + n, "127.0.0.1:%d" % ports[(codec, tls)])
                wait_until(lambda: t.status(bcontrol)["destinations"][key]
                           .get("sent", 0) >= 40000, 20.0,
                           "the back to count them delivered")
                d = t.status(bcontrol)["destinations"][key]
                require(d.get("transport") == codec + ("+ssl" if tls else "")
                        and d.get("streamBytes", 0) > d.get("wireBytes", 0) > 0,
                        "status %r" % d)
                if tls:
                    require(d.get("tls") in ("1.3", "1.2") and
                            d.get("handshakes", 0) >= 1, "status %r" % d)

    gport = ports[("gzip", False)]
    with t.check("corrupt gzip, lz4 and snappy streams are each counted and "
                 "closed; the listeners go on"):
        bad = {
            # a gzip header, then a deflate block of the reserved type 3
            "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" +
            b"\x07" + b"\xff" * 4000,
            "lz4": b"\x04\x22\x4d\x18" + b"\x77" * 4000,
            "snappy": b"\x10\x00\xff\xff\xff\xff\xff" + b"\xee" * 4000,
        }
        for codec, data in bad.items():
            port = ports[(codec, False)]
            before = int(listener_extra(t.status(control), port)
                         .get("decodeErrors", 0))
            s = socket.create_connection(("127.0.0.1", port), timeout=20.0)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            closed = s.recv(1) == b""  # orchester closes it
            s.close()
            require(closed, "%s: not closed" % codec)
            wait_until(lambda: int(listener_extra(t.status(control), port)
                                   .get("decodeErrors", 0)) > before, 20.0,
                       "%s's decode error to be counted" % codec)
            want = [b"after.%s.m%d %d %d" % (codec.encode(), i, i, ts)
                    for i in range(100)]
            send_stream(port, encode_like_crelay(
                codec, b"".join(w + b"\n" for w in want)))
            wait_until(SinkTracker(sink, want).complete, 30.0,
                       "a good %s stream after the corrupt one" % codec)

    with t.check("a gzip bomb (about 1 MB inflating to 1 GiB) is closed "
                 "past the ratio limit and counted, in bounded memory, "
                 "while another client's lines arrive"):
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        zero = b"\0" * (1 << 20)
        bomb = b"".join(z.compress(zero) for _ in range(1024)) + z.flush()
        require(len(bomb) < 1_200_000, "bomb is %d bytes" % len(bomb))
        orch = [p for p in t.procs if p.name == "front"][0]
        before = int(listener_extra(t.status(control), gport)
                     .get("decodeErrors", 0))
        peak = [rss_kb(orch.pid)]
        done = threading.Event()

        def watch():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kb(orch.pid))
                done.wait(0.02)
        w = threading.Thread(target=watch, daemon=True)
        w.start()
        s = socket.create_connection(("127.0.0.1", gport), timeout=30.0)
        sent = 0
        try:
            for i in range(0, len(bomb), 65536):
                s.sendall(bomb[i:i + 65536])
                sent += min(65536, len(bomb) - i)
        except OSError:
            pass  # closed by orchester mid-way: that is the point
        want = [b"beside.bomb.m%d %d %d" % (i, i, ts) for i in range(2000)]
        send_stream(ports[("lz4", False)], encode_like_crelay(
            "lz4", b"".join(w_ + b"\n" for w_ in want)))
        wait_until(lambda: int(listener_extra(t.status(control), gport)
                               .get("decodeErrors", 0)) > before, 30.0,
                   "the bomb to be counted")
        try:
            s.settimeout(20.0)
            while s.recv(65536):
                pass
        except OSError:
            pass
        s.close()
        wait_until(SinkTracker(sink, want).complete, 30.0,
                   "the other client's lines")
        done.set()
        w.join()
        log = orch.stderr()
        require("decompression bomb" in log, "log: %s" % log[-600:])
        require(peak[0] < 200 * 1024, "peak RSS %d kB" % peak[0])
        print("# gzip bomb: %d bytes sent of %d; orchester peak RSS %d kB"
              % (sent, len(bomb), peak[0]))


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    Test().run(body)
