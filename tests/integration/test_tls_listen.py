#!/usr/bin/python3
"""
test_tls_listen.py -- TLS listeners: `listen type linemode|pickle transport
plain ssl PEMFILE ADDR proto tcp ;`.

A private CA (made with the openssl command) signs the listener's
certificate.  orchester runs a plain listener and TLS linemode and pickle
listeners, with a short handshake timeout (-E).  Then:

- Python's ssl clients (TLS 1.3 and TLS 1.2, verifying the certificate
  against the CA) deliver every line, and pickle frames too; status counts
  the handshakes by protocol version;
- Debian's carbon-c-relay, sending with `transport plain ssl` and the CA
  given with -C, delivers every line it is given;
- a client that offers TLS 1.1 at most is refused, and the log says the
  protocol is not supported (OpenSSL at the server: the minimum is 1.2);
  `openssl s_client` sees TLS 1.2 or later;
- garbage instead of a ClientHello is counted as a failure, and closed;
- 1000 connections that never finish the handshake do not hold back a TLS
  client and a plaintext client meanwhile, and each is closed by the
  handshake timeout and counted;
- a listener whose PEM file is missing stops the start with an error that
  names the file.
"""
import os
import pickle
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     make_pki,
                     SinkTracker, Proc, tcp_accepts, send_tcp, counter, ctl)

CRELAY = "/usr/bin/carbon-c-relay"
FLOOD = 1000






def tls_send(port, ca, data, maxver=None):
    """Send data over one verified TLS connection; return the version."""
    ctx = ssl.create_default_context(cafile=ca)
    if maxver is not None:
        ctx.maximum_version = maxver
    raw = socket.create_connection(("127.0.0.1", port), timeout=20.0)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(data)
        return s.version()


def listener_extra(st, port):
    """The key=value fields of the status line of the listener on port."""
    for ls in st["listeners"]:
        if ls["addr"].endswith(":%d" % port):
            return dict(kv.partition("=")[::2] for kv in ls["extra"])
    raise AssertionError("no listener on port %d in status" % port)


def tls_counts(t, control, port):
    ex = listener_extra(t.status(control), port)
    return {k: int(ex.get(k, 0)) for k in
            ("handshakes", "tlsFailures", "tlsTimeouts", "tls1.2", "tls1.3",
             "received")}


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192 <= hard or (hard == resource.RLIM_INFINITY and soft < 8192):
        resource.setrlimit(resource.RLIMIT_NOFILE, (8192, hard))

    with t.check("a CA and a certificate are made with openssl", fatal=True):
        ca, pem = make_pki(t)

    plain, lport, pport = free_port(), free_port(), free_port()
    sink = t.sink()
    stats = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    with t.check("orchester starts with TLS linemode and pickle listeners",
                 fatal=True):
        orch = t.start_orchester("orchester", """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
listen type linemode transport plain ssl %s 127.0.0.1:%d proto tcp ;
listen type pickle transport plain ssl %s 127.0.0.1:%d proto tcp ;
cluster sink forward 127.0.0.1:%d ;
cluster stats forward 127.0.0.1:%d ;
match * send to sink ;
statistics submit every 1 seconds prefix with tlstest send to stats ;
""" % (control, plain, pem, lport, pem, pport, sink.port, stats.port),
            opts=("-E", "1500"),
            control=control, tcp_ports=(plain,))
        st = t.status(control)
        ex = listener_extra(st, lport)
        require(ex.get("tls") == pem, "status of the TLS listener: %r" % ex)

    ts = int(time.time()) - 600
    with t.check("TLS 1.3 and TLS 1.2 clients deliver every line; status "
                 "counts the handshakes by version"):
        lines13 = [b"tls13.m%d %d %d" % (i % 50, i, ts) for i in range(20000)]
        lines12 = [b"tls12.m%d %d %d" % (i % 50, i, ts) for i in range(2000)]
        v13 = tls_send(lport, ca, b"".join(ln + b"\n" for ln in lines13))
        v12 = tls_send(lport, ca, b"".join(ln + b"\n" for ln in lines12),
                       ssl.TLSVersion.TLSv1_2)
        require(v13 == "TLSv1.3" and v12 == "TLSv1.2", "versions %s %s" % (v13, v12))
        tr = SinkTracker(sink, lines13 + lines12)
        wait_until(tr.complete, 60.0, "22000 TLS lines at the sink")
        # the listeners' counts reach status with the next snapshot
        wait_until(lambda: tls_counts(t, control, lport)["handshakes"] >= 2,
                   20.0, "status to count 2 handshakes")
        c = tls_counts(t, control, lport)
        require(c["handshakes"] == 2 and c["tls1.3"] == 1 and c["tls1.2"] == 1
                and c["tlsFailures"] == 0, "counts %r" % c)

    with t.check("the self metrics count the TLS listener's handshakes, by "
                 "protocol version"):
        def metric(name):
            pat = re.compile(rb"^tlstest\.listeners\.[^ ]*_%d\.%s (\d+) "
                             % (lport, name.encode()))
            vals = [int(m.group(1)) for m in map(pat.match, stats.snapshot())
                    if m]
            return vals[-1] if vals else None

        def seen():
            return (metric("tlsHandshakes") == 2 and
                    metric("tls13Handshakes") == 1 and
                    metric("tls12Handshakes") == 1)
        wait_until(seen, 20.0, lambda: "tlsHandshakes 2, tls13Handshakes 1, "
                   "tls12Handshakes 1 (got %s %s %s)"
                   % (metric("tlsHandshakes"), metric("tls13Handshakes"),
                      metric("tls12Handshakes")))
        require(metric("tlsFailures") == 0 and metric("tlsTimeouts") == 0 and
                metric("tlsCertRefused") == 0,
                "failures %s timeouts %s refused %s"
                % (metric("tlsFailures"), metric("tlsTimeouts"),
                   metric("tlsCertRefused")))

    with t.check("pickle over TLS: every datapoint arrives"):
        pts = [("tlspickle.m%d" % i, (ts, i)) for i in range(3000)]
        data = b""
        for k in range(0, len(pts), 500):
            frame = pickle.dumps(pts[k:k + 500], protocol=2)
            data += struct.pack("!L", len(frame)) + frame
        tls_send(pport, ca, data)
        want = [b"tlspickle.m%d %d %d" % (i, i, ts) for i in range(3000)]
        tr = SinkTracker(sink, want)
        wait_until(tr.complete, 60.0, "3000 pickle datapoints at the sink")

    with t.check("carbon-c-relay sends over 'transport plain ssl' (its -C "
                 "naming the CA): every line arrives"):
        require(os.access(CRELAY, os.X_OK), "carbon-c-relay is not installed")
        cport = free_port()
        cconf = t.write("carbon-c-relay.conf", """listen type linemode
    127.0.0.1:%d proto tcp ;
cluster o forward 127.0.0.1:%d transport plain ssl ;
match * send to o ;
""" % (cport, lport))
        crelay = t.proc("carbon-c-relay", [CRELAY, "-f", cconf, "-H", "tls",
                                           "-C", ca])
        crelay.start()
        wait_until(lambda: crelay.alive() and tcp_accepts(cport), 20.0,
                   "carbon-c-relay to accept connections")
        lines = [b"crelay.tls.m%d %d %d" % (i % 100, i, ts) for i in range(10000)]
        errs = send_tcp(cport, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        tr = SinkTracker(sink, lines)
        wait_until(tr.complete, 60.0, "carbon-c-relay's 10000 lines at the sink")
        crelay.stop()

    with t.check("a client offering TLS 1.1 at most is refused by the "
                 "listener (unsupported protocol), and counted"):
        before = tls_counts(t, control, lport)["tlsFailures"]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        raw = socket.create_connection(("127.0.0.1", lport), timeout=20.0)
        refused = False
        try:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"old.tls 1 %d\n" % ts)
        except (ssl.SSLError, OSError):
            refused = True
        require(refused, "the TLS 1.1 handshake succeeded")
        wait_until(lambda: tls_counts(t, control, lport)["tlsFailures"] > before,
                   10.0, "the failure to be counted")
        wait_until(lambda: "unsupported protocol" in orch.stderr(), 10.0,
                   "the log to say 'unsupported protocol'")

    with t.check("openssl s_client: TLS 1.2 is accepted, TLS 1.1 refused"):
        def s_client(*args):
            p = subprocess.run(["openssl", "s_client", "-connect",
                                "127.0.0.1:%d" % lport, "-CAfile", ca] + list(args),
                               input="", capture_output=True, text=True,
                               timeout=30)
            return p.returncode, p.stdout + p.stderr
        rc, out = s_client("-tls1_2")
        require(rc == 0 and "Protocol  : TLSv1.2" in out and
                "Verify return code: 0 (ok)" in out, out[-600:])
        rc, out = s_client("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        # the server's answer to a TLS 1.1 ClientHello: alert 70
        require("alert protocol version" in out and "Cipher is (NONE)" in out,
                out[-600:])

    with t.check("garbage instead of a ClientHello is counted and closed"):
        before = tls_counts(t, control, lport)["tlsFailures"]
        s = socket.create_connection(("127.0.0.1", lport), timeout=20.0)
        s.sendall(bytes(random.Random(3).getrandbits(8) for _ in range(4096)))
        s.settimeout(20.0)
        try:
            while s.recv(4096):
                pass  # the alert, then the close
        except OSError:
            pass
        s.close()
        wait_until(lambda: tls_counts(t, control, lport)["tlsFailures"] > before,
                   10.0, "the failure to be counted")

    flood = []
    with t.check("%d connections that never finish the handshake: a TLS and "
                 "a plaintext client are served meanwhile" % FLOOD):
        before = tls_counts(t, control, lport)
        for _ in range(FLOOD):
            s = socket.create_connection(("127.0.0.1", lport), timeout=20.0)
            s.sendall(b"\x16\x03\x01\x00")  # the start of a record, no more
            flood.append(s)
        require(orch.alive(), "orchester exited")
        lines = [b"during.flood.m%d %d %d" % (i, i, ts) for i in range(500)]
        tls_send(lport, ca, b"".join(ln + b"\n" for ln in lines[:250]))
        errs = send_tcp(plain, [b"".join(ln + b"\n" for ln in lines[250:])])
        require(not errs, "; ".join(errs))
        tr = SinkTracker(sink, lines)
        wait_until(tr.complete, 20.0, "the lines sent during the flood")
        require(tls_counts(t, control, lport)["tlsTimeouts"] < before["tlsTimeouts"] + FLOOD,
                "the flood timed out before the clients were served")

    with t.check("each of them is closed by the handshake timeout, and counted"):
        want = before["tlsTimeouts"] + FLOOD
        wait_until(lambda: tls_counts(t, control, lport)["tlsTimeouts"] >= want,
                   30.0, "%d handshake timeouts" % FLOOD)
        closed = 0
        for s in flood:
            s.settimeout(10.0)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except OSError:
                closed += 1
            s.close()
        require(closed == FLOOD, "%d of %d closed by orchester" % (closed, FLOOD))
        st = t.status(control)
        require(counter(st, "connections") == 0,
                "connections = %d" % counter(st, "connections"))

    with t.check("a standalone satellite with a TLS listener: lines arrive "
                 "through the orchester, its status counts the handshakes, "
                 "and SIGHUP reads the certificate again"):
        sbind, sport = free_port(), free_port()
        octl = "tcp://127.0.0.1:%d" % free_port()
        t.start_orchester("sat-orchester", """control %s ;
satellites bind tcp://127.0.0.1:%d ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (octl, sbind, sink.port), control=octl)
        sctl = "ipc://" + t.tmp.join("ctl-sat")
        sconf = t.write("satellite.conf",
                        "listen type linemode transport plain ssl %s "
                        "127.0.0.1:%d proto tcp ;\n"
                        "orchester tcp://127.0.0.1:%d ;\n"
                        "control %s ;\n" % (pem, sport, sbind, sctl))
        sat = t.satellite("satellite", sconf).start()
        t.wait_ready(sat, tcp_ports=(sport,))
        lines = [b"sat.tls.m%d %d %d" % (i % 20, i, ts) for i in range(3000)]
        tls_send(sport, ca, b"".join(ln + b"\n" for ln in lines))
        wait_until(SinkTracker(sink, lines).complete, 30.0,
                   "the satellite's lines at the sink")

        def sat_status():
            rc, out, err, _ = ctl(t.build, ["-e", sctl, "status"])
            require(rc == 0, "satellite status: exit %s: %s" % (rc, err))
            return out
        out = sat_status()
        require("handshakes=1 " in out and "tls1.3=1" in out, out)
        sat.signal(signal.SIGHUP)
        wait_until(lambda: "certificate and key read again" in sat.stderr(),
                   15.0, "the satellite to read its certificate again")
        more = [b"sat.tls.after.m%d %d %d" % (i, i, ts) for i in range(100)]
        tls_send(sport, ca, b"".join(ln + b"\n" for ln in more))
        wait_until(SinkTracker(sink, more).complete, 30.0,
                   "lines after the reload")

    with t.check("a listener whose PEM file is missing stops the start, "
                 "and the error names the file"):
        missing = t.tmp.join("no-such.pem")
        conf = t.write("bad.conf", """listen type linemode transport plain ssl %s
    127.0.0.1:%d proto tcp ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (missing, free_port(), sink.port))
        p = t.orchester("bad", conf)
        p.ours = False  # its exit 1 is what is checked here
        p.start()
        rc = p.wait(20.0)
        require(rc not in (None, 0), "exit %r" % rc)
        require(missing in p.stderr() and "No such file" in p.stderr(),
                p.stderr_tail(400))
    shutil.rmtree(t.tmp.join("demoCA"), ignore_errors=True)


if __name__ == "__main__":
    Test().run(body)
