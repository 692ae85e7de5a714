#!/usr/bin/python3
"""
test_tls_member.py -- mutual TLS listeners (`transport plain mtls PEMFILE`),
TLS members (`cluster C forward HOST:PORT transport plain ssl|mtls CERT
KEY [ca PATH] [name NAME] ;`), protomin, and the certificate reload on
SIGHUP.

A private CA A (made with the openssl command) signs the listeners'
certificate (for 127.0.0.1 and localhost), a client certificate, an
expired client certificate (`openssl ca` with dates in 2020), a rotated
server certificate and one for another name (other.example only); a
second CA B signs a client certificate that A does not know.  A "front"
orchester (-C naming A) holds mtls, ssl and protomin listeners and
forwards to a sink.  Then:

- an mtls listener takes every line of a Python client showing A's client
  certificate, and refuses (and counts in tlsCertRefused and tlsFailures,
  and logs the reason) a client with no certificate, one signed by B and
  an expired one: none of their lines reach the sink;
- a "back" orchester whose member has `transport plain mtls CERT KEY`
  delivers every line to the mtls listener over TLS 1.3;
- a member that verifies against B (`ca` on the member, over -C) never
  comes up, says why, counts its failures and sends no stream byte; a
  member checking 127.0.0.1 against a certificate for other.example fails
  on the name, and with `name other.example` delivers;
- an orchester member with `transport plain ssl` delivers every line to
  Debian's carbon-c-relay listening with `transport plain ssl`;
- `protomin tls1.3` refuses a TLS 1.2 client (Python, openssl s_client)
  and serves a TLS 1.3 one;
- SIGHUP makes a TLS listener read its PEM file again: new connections get
  the new certificate, an established one goes on working with the old; a
  broken file keeps the certificate loaded before.
"""
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     openssl,
                     SinkTracker, tcp_accepts, send_tcp, lines_with_prefix, ctl)

CRELAY = "/usr/bin/carbon-c-relay"




def cat(t, out, *names):
    with open(t.tmp.join(out), "w") as f:
        for n in names:
            with open(t.tmp.join(n)) as src:
                f.write(src.read())
    return t.tmp.join(out)


def make_pki(t):
    """Everything under the temp dir; returns a dict of paths."""
    # CA A and CA B
    for ca in ("ca", "caB"):
        openssl(t, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=orchester test %s" % ca, "-keyout", ca + ".key",
                "-out", ca + ".pem")
    t.write("server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    t.write("other.ext", "subjectAltName=DNS:other.example\n")
    t.write("client.ext", "extendedKeyUsage=clientAuth\n")

    def leaf(name, cn, ca, ext):
        openssl(t, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                "-keyout", name + ".key", "-out", name + ".csr")
        openssl(t, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
                "-CAkey", ca + ".key", "-CAcreateserial", "-days", "2",
                "-extfile", ext, "-out", name + ".crt")

    leaf("server", "localhost", "ca", "server.ext")
    leaf("other", "other.example", "ca", "other.ext")
    leaf("rotated", "rotated", "ca", "server.ext")
    leaf("client", "orchester client", "ca", "client.ext")
    leaf("client2", "orchester client 2", "ca", "client.ext")
    leaf("clientB", "client of B", "caB", "client.ext")
    # an expired client certificate: openssl ca sets the dates
    os.makedirs(t.tmp.join("newcerts"), exist_ok=True)
    t.write("index.txt", "")
    t.write("serial", "1000\n")
    t.write("ca.cnf", """[ca]
default_ca = testca
[testca]
dir = .
database = index.txt
new_certs_dir = newcerts
certificate = ca.pem
private_key = ca.key
serial = serial
default_md = sha256
policy = anything
email_in_dn = no
unique_subject = no
copy_extensions = none
x509_extensions = client_ext
[anything]
commonName = supplied
[client_ext]
extendedKeyUsage = clientAuth
""")
    openssl(t, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=expired client",
            "-keyout", "expired.key", "-out", "expired.csr")
    openssl(t, "ca", "-batch", "-config", "ca.cnf", "-notext", "-in", "expired.csr",
            "-out", "expired.crt", "-startdate", "20200101000000Z",
            "-enddate", "20200102000000Z")
    p = {"ca": t.tmp.join("ca.pem"), "caB": t.tmp.join("caB.pem"),
         "server": cat(t, "server.pem", "server.crt", "server.key"),
         "other": cat(t, "other.pem", "other.crt", "other.key"),
         "rotated": cat(t, "rotated.pem", "rotated.crt", "rotated.key")}
    for n in ("client", "client2", "clientB", "expired"):
        p[n] = (t.tmp.join(n + ".crt"), t.tmp.join(n + ".key"))
    # the certificates are what they should be
    out = subprocess.run(["openssl", "x509", "-in", p["expired"][0], "-noout",
                          "-enddate", "-checkend", "0"], capture_output=True,
                         text=True, timeout=30)
    require(out.returncode != 0 and "2020" in out.stdout,
            "expired.crt is not expired: %s" % out.stdout)
    for name, ca in (("server.crt", "ca.pem"), ("client.crt", "ca.pem"),
                     ("expired.crt", "ca.pem"), ("other.crt", "ca.pem"),
                     ("clientB.crt", "caB.pem")):
        v = subprocess.run(["openssl", "verify", "-no_check_time", "-CAfile", ca,
                            name], cwd=t.tmp.path, capture_output=True,
                           text=True, timeout=30)
        require(v.returncode == 0, "%s does not verify with %s: %s"
                % (name, ca, v.stdout + v.stderr))
    v = subprocess.run(["openssl", "verify", "-CAfile", "ca.pem", "clientB.crt"],
                       cwd=t.tmp.path, capture_output=True, text=True, timeout=30)
    require(v.returncode != 0, "clientB.crt verifies with CA A")
    return p


def client_ctx(ca, cert=None, maxver=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    if maxver is not None:
        ctx.maximum_version = maxver
    return ctx


def tls_send(port, ca, data, cert=None, maxver=None):
    """Send data over one verified TLS connection and close; return the
    version."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=20.0)
    with client_ctx(ca, cert, maxver).wrap_socket(
            raw, server_hostname="localhost") as s:
        s.sendall(data)
        return s.version()


def tls_refused(port, ca, data, cert=None, maxver=None):
    """Try to send data over TLS; return (refused, how).  With TLS 1.3 the
    server's verdict on a client certificate comes after the client's
    handshake ended: the refusal shows as an alert or a close on the next
    read (or write)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=20.0)
    try:
        s = client_ctx(ca, cert, maxver).wrap_socket(
            raw, server_hostname="localhost")
    except (ssl.SSLError, OSError) as e:
        raw.close()
        return True, "handshake: %s" % e
    try:
        s.sendall(data)
        d = s.recv(4096)  # the server never sends data on a good connection
        if d == b"":
            return True, "closed by the server"
        return False, "the server sent %r" % d[:60]
    except socket.timeout:
        return False, "the connection stayed open for 20 s"
    except (ssl.SSLError, OSError) as e:
        return True, "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()


def listener_extra(st, port):
    """The key=value fields of the status line of the listener on port."""
    for ls in st["listeners"]:
        if ls["addr"].endswith(":%d" % port):
            return dict(kv.partition("=")[::2] for kv in ls["extra"])
    raise AssertionError("no listener on port %d in status" % port)


def tls_counts(t, control, port):
    ex = listener_extra(t.status(control), port)
    return {k: int(ex.get(k, 0)) for k in
            ("handshakes", "tlsFailures", "tlsCertRefused", "tlsTimeouts",
             "tls1.2", "tls1.3", "received")}


def dest(t, control, port):
    """The status record of the destination 127.0.0.1:port."""
    for (cl, addr), d in t.status(control)["destinations"].items():
        if addr == "127.0.0.1:%d" % port:
            return d
    raise AssertionError("no destination 127.0.0.1:%d in status" % port)


def log_has(p, *phrases):
    """Whether a line of p's log holds every phrase (case-insensitively)."""
    for line in p.stderr().lower().splitlines():
        if all(ph.lower() in line for ph in phrases):
            return line
    return None


def block(lines):
    return b"".join(ln + b"\n" for ln in lines)


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    with t.check("openssl makes CAs A and B, server certificates (127.0.0.1, "
                 "other.example, a rotated one), client certificates of A "
                 "and B, and an expired one of A", fatal=True):
        pki = make_pki(t)
    ca = pki["ca"]

    sink = t.sink()
    ts = int(time.time()) - 600
    mt_port, mt_b, mt_exp = free_port(), free_port(), free_port()
    ssl_port, other_port, p13_port = free_port(), free_port(), free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    with t.check("the front orchester starts with mtls, ssl and protomin "
                 "listeners", fatal=True):
        front = t.start_orchester("front", """control %s ;
listen type linemode transport plain mtls %s 127.0.0.1:%d proto tcp ;
listen type linemode transport plain mtls %s 127.0.0.1:%d proto tcp ;
listen type linemode transport plain mtls %s 127.0.0.1:%d proto tcp ;
listen type linemode transport plain ssl %s 127.0.0.1:%d proto tcp ;
listen type linemode transport plain ssl %s 127.0.0.1:%d proto tcp ;
listen type linemode transport plain ssl %s protomin tls1.3 127.0.0.1:%d proto tcp ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (control, pki["server"], mt_port, pki["server"], mt_b, pki["server"], mt_exp,
            pki["server"], ssl_port, pki["other"], other_port, pki["server"],
            p13_port, sink.port),
            opts=("-C", ca, "-E", "3000"), control=control)
        st = t.status(control)
        ex = listener_extra(st, mt_port)
        require(ex.get("mtls") == "yes" and ex.get("tls") == pki["server"],
                "status of the mtls listener: %r" % ex)
        ex = listener_extra(st, ssl_port)
        require(ex.get("mtls") == "no", "status of the ssl listener: %r" % ex)

    # -- 2: mtls listener ---------------------------------------------------
    with t.check("mtls listener: a client showing A's certificate delivers "
                 "every line over TLS 1.3"):
        good = [b"mtls.good.m%d %d %d" % (i % 50, i, ts) for i in range(5000)]
        v = tls_send(mt_port, ca, block(good), cert=pki["client"])
        require(v == "TLSv1.3", "version %s" % v)
        tr = SinkTracker(sink, good)
        wait_until(tr.complete, 30.0, lambda: "the 5000 mtls lines at the sink "
                   "(%d missing)" % len(tr.missing))
        wait_until(lambda: tls_counts(t, control, mt_port)["handshakes"] >= 1,
                   10.0, "status to count the handshake")
        c = tls_counts(t, control, mt_port)
        require(c["handshakes"] == 1 and c["tlsFailures"] == 0
                and c["tlsCertRefused"] == 0, "counts %r" % c)

    refusals = (
        ("no certificate", mt_port, None, b"mtls.nocert", ("peer did not return a certificate",)),
        ("a certificate signed by CA B", mt_b, pki["clientB"], b"mtls.caB",
         ("unable to get local issuer certificate",)),
        ("an expired certificate of CA A", mt_exp, pki["expired"], b"mtls.expired",
         ("certificate has expired",)),
    )
    for what, port, cert, prefix, reasons in refusals:
        with t.check("mtls listener: a client with %s is refused, counted in "
                     "tlsCertRefused and tlsFailures, and the log says why"
                     % what):
            before = tls_counts(t, control, port)
            lines = [prefix + b".m%d %d %d" % (i, i, ts) for i in range(100)]
            refused, how = tls_refused(port, ca, block(lines), cert=cert)
            require(refused, "not refused: %s" % how)
            wait_until(lambda: tls_counts(t, control, port)["tlsCertRefused"]
                       > before["tlsCertRefused"], 10.0,
                       "tlsCertRefused to count the refusal (client: %s)" % how)
            c = tls_counts(t, control, port)
            require(c["tlsCertRefused"] == before["tlsCertRefused"] + 1 and
                    c["tlsFailures"] == before["tlsFailures"] + 1 and
                    c["handshakes"] == before["handshakes"],
                    "before %r, after %r" % (before, c))
            wait_until(lambda: log_has(front, "127.0.0.1:%d " % port,
                                       "TLS handshake", *reasons), 10.0,
                       "a log line for port %d saying %r" % (port, reasons))

    with t.check("none of the refused clients' lines reached the sink"):
        # a line sent after them through a good client arrives, so what the
        # refused ones sent had its chance to arrive before it
        mark = [b"mtls.after %d %d" % (i, ts) for i in range(10)]
        tls_send(mt_port, ca, block(mark), cert=pki["client"])
        wait_until(SinkTracker(sink, mark).complete, 20.0, "the marker lines")
        snap = sink.snapshot()
        for _, _, _, prefix, _ in refusals:
            got = lines_with_prefix(snap, prefix)
            require(not got, "%d lines of %s arrived: %r" % (len(got), prefix, got[:3]))

    # -- 3: orchester -> orchester with mtls ---------------------------------
    with t.check("a back orchester with member 'transport plain mtls CERT KEY' "
                 "delivers every line to the mtls listener (TLS 1.3)"):
        bport = free_port()
        bctl = "tcp://127.0.0.1:%d" % free_port()
        before = tls_counts(t, control, mt_port)
        t.start_orchester("back", """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
cluster front forward 127.0.0.1:%d transport plain mtls %s %s ;
match * send to front ;
""" % (bctl, bport, mt_port, pki["client"][0], pki["client"][1]),
            opts=("-C", ca, "-D", "2"), control=bctl, tcp_ports=(bport,))
        lines = [b"back.mtls.m%d %d %d" % (i % 100, i, ts) for i in range(20000)]
        errs = send_tcp(bport, [block(lines)])
        require(not errs, "; ".join(errs))
        tr = SinkTracker(sink, lines)
        wait_until(tr.complete, 40.0, lambda: "the back's 20000 lines at the "
                   "sink (%d missing)" % len(tr.missing))
        wait_until(lambda: dest(t, bctl, mt_port).get("sent", 0) >= 20000, 10.0,
                   "the back's status to count 20000 sent")
        d = dest(t, bctl, mt_port)
        require(d.get("state") == "up" and d.get("transport") == "plain+mtls" and
                d.get("tls") == "1.3" and d.get("handshakes", 0) >= 1 and
                d.get("tlsFailures") == 0 and d.get("streamBytes", 0) >=
                len(block(lines)) and d.get("wireBytes", 0) > d.get("streamBytes"),
                "back's destination: %r" % d)
        wait_until(lambda: tls_counts(t, control, mt_port)["tls1.3"] > before["tls1.3"],
                   10.0, "the front to count the back's TLS 1.3 handshake")
        c = tls_counts(t, control, mt_port)
        require(c["tlsCertRefused"] == before["tlsCertRefused"], "counts %r" % c)

    # -- 4: member verification failures --------------------------------------
    def failing_member(name, target, extra, prefix, reasons):
        bport = free_port()
        bctl = "tcp://127.0.0.1:%d" % free_port()
        p = t.start_orchester(name, """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
cluster front forward 127.0.0.1:%d transport plain ssl %s ;
match * send to front ;
""" % (bctl, bport, target, extra), opts=("-C", ca, "-D", "1"),
            control=bctl, tcp_ports=(bport,))
        lines = [prefix + b".m%d %d %d" % (i, i, ts) for i in range(500)]
        errs = send_tcp(bport, [block(lines)])
        require(not errs, "; ".join(errs))
        seen = []

        def failed_thrice():
            d = dest(t, bctl, target)
            seen.append(d.get("state"))
            return d.get("tlsFailures", 0) >= 3
        wait_until(failed_thrice, 20.0, lambda: "3 TLS failures (states seen %r)"
                   % sorted(set(seen)))
        d = dest(t, bctl, target)
        require("up" not in seen and d.get("state") == "down",
                "the member came up: states %r, %r" % (sorted(set(seen)), d))
        require(d.get("streamBytes") == 0 and d.get("sent") == 0 and
                d.get("handshakes") == 0 and d.get("tls") == "none",
                "destination: %r" % d)
        line = wait_until(lambda: log_has(p, "127.0.0.1:%d" % target, "tls:",
                                          *reasons), 10.0,
                          "a log line saying %r" % (reasons,))
        got = lines_with_prefix(sink.snapshot(), prefix)
        require(not got, "%d lines arrived at the sink" % len(got))
        return p, line

    with t.check("a member verifying against CA B ('ca' on the member, over "
                 "-C) never comes up, says why, and sends no stream byte"):
        before = tls_counts(t, control, ssl_port)
        failing_member("back-caB", ssl_port, "ca %s" % pki["caB"], b"caB.member",
                       ("certificate", "unable to get local issuer certificate"))
        c = tls_counts(t, control, ssl_port)
        require(c["handshakes"] == before["handshakes"], "the front's listener "
                "counted a handshake: %r" % c)

    with t.check("a member checking 127.0.0.1 against a certificate for "
                 "other.example only fails on the name"):
        failing_member("back-name", other_port, "", b"name.default",
                       ("certificate", "mismatch"))

    with t.check("a member without a client certificate, sending to an "
                 "mtls listener over TLS 1.3 (refused after its handshake "
                 "ends): nothing counts as delivered, and each refusal is a "
                 "TLS failure"):
        bport = free_port()
        bctl = "tcp://127.0.0.1:%d" % free_port()
        t.start_orchester("back-nocert", """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
cluster front forward 127.0.0.1:%d transport plain ssl ;
match * send to front ;
""" % (bctl, bport, mt_port), opts=("-C", ca, "-D", "1"), control=bctl,
            tcp_ports=(bport,))
        lines = [b"nocert.member.m%d %d %d" % (i, i, ts) for i in range(500)]
        errs = send_tcp(bport, [block(lines)])
        require(not errs, "; ".join(errs))
        wait_until(lambda: dest(t, bctl, mt_port).get("tlsFailures", 0) >= 2,
                   30.0, "2 refusals counted as TLS failures")
        d = dest(t, bctl, mt_port)
        require(d.get("sent") == 0, "counted delivered: %r" % d)
        got = lines_with_prefix(sink.snapshot(), b"nocert.member")
        require(not got, "%d lines arrived at the sink" % len(got))

    with t.check("the same member with 'name other.example' delivers every line"):
        bport = free_port()
        bctl = "tcp://127.0.0.1:%d" % free_port()
        t.start_orchester("back-other", """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
cluster front forward 127.0.0.1:%d transport plain ssl name other.example ;
match * send to front ;
""" % (bctl, bport, other_port), opts=("-C", ca, "-D", "2"), control=bctl,
            tcp_ports=(bport,))
        lines = [b"name.other.m%d %d %d" % (i % 100, i, ts) for i in range(5000)]
        errs = send_tcp(bport, [block(lines)])
        require(not errs, "; ".join(errs))
        tr = SinkTracker(sink, lines)
        wait_until(tr.complete, 30.0, lambda: "5000 lines at the sink (%d "
                   "missing)" % len(tr.missing))
        wait_until(lambda: dest(t, bctl, other_port).get("handshakes", 0) >= 1,
                   10.0, "the status to count the handshake")
        d = dest(t, bctl, other_port)
        require(d.get("state") == "up" and d.get("tlsFailures") == 0 and
                d.get("transport") == "plain+ssl", "destination: %r" % d)

    # -- 5: orchester -> carbon-c-relay over ssl ------------------------------
    with t.check("an orchester member with 'transport plain ssl' delivers "
                 "every line to carbon-c-relay listening with ssl"):
        require(os.access(CRELAY, os.X_OK), "carbon-c-relay is not installed")
        cport = free_port()
        cconf = t.write("carbon-c-relay.conf", """listen type linemode
    transport plain ssl %s 127.0.0.1:%d proto tcp ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (pki["server"], cport, sink.port))
        crelay = t.proc("carbon-c-relay", [CRELAY, "-f", cconf, "-H", "tls"])
        crelay.start()
        wait_until(lambda: crelay.alive() and tcp_accepts(cport), 20.0,
                   "carbon-c-relay to accept connections")
        bport = free_port()
        bctl = "tcp://127.0.0.1:%d" % free_port()
        t.start_orchester("back-crelay", """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
cluster crelay forward 127.0.0.1:%d transport plain ssl ;
match * send to crelay ;
""" % (bctl, bport, cport), opts=("-C", ca, "-D", "2"), control=bctl,
            tcp_ports=(bport,))
        lines = [b"to.crelay.m%d %d %d" % (i % 100, i, ts) for i in range(10000)]
        errs = send_tcp(bport, [block(lines)])
        require(not errs, "; ".join(errs))
        tr = SinkTracker(sink, lines)
        wait_until(tr.complete, 40.0, lambda: "10000 lines through carbon-c-relay "
                   "at the sink (%d missing)" % len(tr.missing))
        wait_until(lambda: dest(t, bctl, cport).get("handshakes", 0) >= 1, 10.0,
                   "the status to count the handshake")
        d = dest(t, bctl, cport)
        require(d.get("tls") in ("1.2", "1.3") and d.get("state") == "up" and
                d.get("transport") == "plain+ssl", "destination: %r" % d)

    # -- 6: protomin -------------------------------------------------------------
    with t.check("protomin tls1.3: a Python client limited to TLS 1.2 is "
                 "refused, a TLS 1.3 one delivers"):
        before = tls_counts(t, control, p13_port)
        refused, how = tls_refused(p13_port, ca, b"p13.old 1 %d\n" % ts,
                                   maxver=ssl.TLSVersion.TLSv1_2)
        require(refused, "the TLS 1.2 client was not refused: %s" % how)
        lines = [b"p13.new.m%d %d %d" % (i, i, ts) for i in range(200)]
        v = tls_send(p13_port, ca, block(lines))
        require(v == "TLSv1.3", "version %s" % v)
        wait_until(SinkTracker(sink, lines).complete, 20.0, "the TLS 1.3 lines")
        wait_until(lambda: tls_counts(t, control, p13_port)["tls1.3"] > before["tls1.3"],
                   10.0, "the TLS 1.3 handshake to be counted")
        c = tls_counts(t, control, p13_port)
        require(c["tlsFailures"] == before["tlsFailures"] + 1 and c["tls1.2"] == 0,
                "before %r, after %r" % (before, c))
        require(not lines_with_prefix(sink.snapshot(), b"p13.old"),
                "the TLS 1.2 client's line arrived")

    with t.check("protomin tls1.3: openssl s_client -tls1_2 fails, -tls1_3 "
                 "connects"):
        def s_client(*args):
            p = subprocess.run(["openssl", "s_client", "-connect",
                                "127.0.0.1:%d" % p13_port, "-CAfile", ca]
                               + list(args), input="", capture_output=True,
                               text=True, timeout=30)
            return p.returncode, p.stdout + p.stderr
        rc, out = s_client("-tls1_2")
        require(rc != 0 or "alert protocol version" in out, out[-600:])
        require("Cipher is (NONE)" in out or "alert protocol version" in out,
                out[-600:])
        rc, out = s_client("-tls1_3")
        require(rc == 0 and "TLSv1.3" in out and "Verify return code: 0 (ok)" in out,
                out[-600:])

    # -- 7: reload ---------------------------------------------------------------
    rport = free_port()
    rctl = "tcp://127.0.0.1:%d" % free_port()
    rpem = t.tmp.join("reload.pem")

    def peer_cn(s):
        return dict(x[0] for x in s.getpeercert()["subject"]).get("commonName")

    def connect():
        raw = socket.create_connection(("127.0.0.1", rport), timeout=20.0)
        return client_ctx(ca).wrap_socket(raw, server_hostname="localhost")

    def deliver(s, prefix, n=200):
        lines = [prefix + b".m%d %d %d" % (i, i, ts) for i in range(n)]
        s.sendall(block(lines))
        tr = SinkTracker(sink, lines)
        wait_until(tr.complete, 20.0, lambda: "%s lines at the sink (%d missing)"
                   % (prefix.decode(), len(tr.missing)))

    def new_conn_cn(prefix):
        s = connect()
        try:
            cn = peer_cn(s)
            deliver(s, prefix)
            return cn
        finally:
            s.close()

    old = None
    with t.check("reload: a TLS listener and an established connection with "
                 "the first certificate", fatal=True):
        with open(rpem, "w") as f, open(pki["server"]) as src:
            f.write(src.read())
        rot = t.start_orchester("reload", """control %s ;
listen type linemode transport plain ssl %s 127.0.0.1:%d proto tcp ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (rctl, rpem, rport, sink.port), control=rctl)
        old = connect()
        t.on_cleanup(old.close)
        require(peer_cn(old) == "localhost", "peer CN %r" % peer_cn(old))
        deliver(old, b"reload.old1")

    with t.check("reload: after SIGHUP with a new certificate in the file, a "
                 "new connection gets it (CN=rotated)"):
        with open(rpem, "w") as f, open(pki["rotated"]) as src:
            f.write(src.read())
        os.kill(rot.pid, signal.SIGHUP)
        wait_until(lambda: log_has(rot, "certificate and key read again", rpem),
                   15.0, "the log to say the certificate was read again")
        cn = new_conn_cn(b"reload.new1")
        require(cn == "rotated", "new connection's peer CN %r" % cn)

    with t.check("reload: the connection established before goes on with its "
                 "certificate, and its lines arrive"):
        require(peer_cn(old) == "localhost", "peer CN %r" % peer_cn(old))
        deliver(old, b"reload.old2")

    with t.check("reload: a broken PEM file keeps the certificate loaded "
                 "before"):
        with open(rpem, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n"
                    "-----END CERTIFICATE-----\n")
        os.kill(rot.pid, signal.SIGHUP)
        wait_until(lambda: log_has(rot, "keeping the certificate loaded before"),
                   15.0, "the log to say it keeps the certificate")
        cn = new_conn_cn(b"reload.new2")
        require(cn == "rotated", "new connection's peer CN %r" % cn)
        deliver(old, b"reload.old3")
        st = t.status(rctl)
        require(listener_extra(st, rport).get("tls") == rpem, "status %r"
                % listener_extra(st, rport))

    with t.check("reload: 'orchester-ctl reload' reads the certificate again "
                 "too (CN=localhost again)"):
        with open(rpem, "w") as f, open(pki["server"]) as src:
            f.write(src.read())
        before = rot.stderr().count("certificate and key read again")
        rc, out, err, _ = ctl(t.build, ["-e", rctl, "reload"])
        require(rc == 0 and out.startswith("ok"), "reload: %r %r" % (out, err))
        wait_until(lambda: rot.stderr().count("certificate and key read "
                                              "again") > before, 15.0,
                   "the log to say the certificate was read again")
        cn = new_conn_cn(b"reload.new3")
        require(cn == "localhost", "new connection's peer CN %r" % cn)
        deliver(old, b"reload.old4")
    old.close()

    # -- a member's client certificate, read again at reload ---------------
    class MtlsServer:
        """Accepts TLS clients with a certificate A signed; keeps each
        connection's peer CN and its lines."""

        def __init__(self):
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(pki["server"])
            self.ctx.load_verify_locations(ca)
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ls = socket.socket()
            self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.ls.bind(("127.0.0.1", 0))
            self.ls.listen(8)
            self.port = self.ls.getsockname()[1]
            self.conns = []  # [cn, lines, socket]
            self.lock = threading.Lock()
            threading.Thread(target=self._accept, daemon=True).start()

        def _accept(self):
            while True:
                try:
                    c, _ = self.ls.accept()
                    c = self.ctx.wrap_socket(c, server_side=True)
                except OSError:
                    if self.ls.fileno() < 0:
                        return
                    continue
                cn = dict(x[0] for x in c.getpeercert()["subject"])["commonName"]
                rec = [cn, [], c]
                with self.lock:
                    self.conns.append(rec)
                threading.Thread(target=self._read, args=(rec,),
                                 daemon=True).start()

        def _read(self, rec):
            buf = b""
            try:
                while True:
                    d = rec[2].recv(65536)
                    if not d:
                        return
                    buf += d
                    *full, buf = buf.split(b"\n")
                    with self.lock:
                        rec[1].extend(full)
            except OSError:
                return

        def cns(self):
            with self.lock:
                return [r[0] for r in self.conns]

        def has(self, cn, lines):
            with self.lock:
                got = set(ln for r in self.conns if r[0] == cn for ln in r[1])
            return set(lines) <= got

        def close(self):
            self.ls.close()
            with self.lock:
                for r in self.conns:
                    r[2].close()

    srv = MtlsServer()
    t.on_cleanup(srv.close)
    ccrt, ckey = t.tmp.join("member.crt"), t.tmp.join("member.key")
    mport = free_port()
    mctl = "tcp://127.0.0.1:%d" % free_port()

    def copy_pair(name):
        for src, dst in zip(pki[name], (ccrt, ckey)):
            with open(src) as f, open(dst, "w") as g:
                g.write(f.read())

    with t.check("reload: a member's client certificate is read again, the "
                 "connection up keeps its session, the next one shows the "
                 "new certificate"):
        copy_pair("client")
        back = t.start_orchester("back-rotate", """control %s ;
listen type linemode 127.0.0.1:%d proto tcp ;
cluster m forward 127.0.0.1:%d transport plain mtls %s %s ;
match * send to m ;
""" % (mctl, mport, srv.port, ccrt, ckey), opts=("-C", ca), control=mctl,
            tcp_ports=(mport,))
        one = [b"rot.one.m%d %d %d" % (i, i, ts) for i in range(200)]
        require(not send_tcp(mport, [block(one)]), "send")
        wait_until(lambda: srv.has("orchester client", one), 20.0,
                   lambda: "the lines over the first certificate (%r)"
                   % srv.cns())
        copy_pair("client2")
        before = back.stderr().count("hub: reloaded")
        os.kill(back.pid, signal.SIGHUP)
        wait_until(lambda: back.stderr().count("hub: reloaded") > before, 15.0,
                   "the reload to be logged")
        two = [b"rot.two.m%d %d %d" % (i, i, ts) for i in range(200)]
        require(not send_tcp(mport, [block(two)]), "send")
        wait_until(lambda: srv.has("orchester client", two), 20.0,
                   "the connection up to carry on, with its session")
        require(srv.cns() == ["orchester client"], "connections %r" % srv.cns())
        with srv.lock:  # the backend ends it: the member connects again
            srv.conns[0][2].close()
        three = [b"rot.three.m%d %d %d" % (i, i, ts) for i in range(200)]
        require(not send_tcp(mport, [block(three)]), "send")
        wait_until(lambda: srv.has("orchester client 2", three), 30.0,
                   lambda: "the lines over the new certificate (%r)"
                   % srv.cns())


if __name__ == "__main__":
    Test().run(body)
