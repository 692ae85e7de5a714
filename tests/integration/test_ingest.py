#!/usr/bin/python3
"""
test_ingest.py -- orchester's listeners deliver every line, intact and in order.

One orchester with a linemode listener on TCP, UDP and a unix socket, a
forward cluster to a sink, and `match * send to sink ;`.
  - 1,000,000 lines over 4 concurrent TCP connections, each connection with
    its own metric prefix, a sequence number as value and increasing
    timestamps: every line arrives, unchanged, in order per connection.
  - 1,000 lines over the unix socket: all arrive, in order.
  - 10,000 lines in UDP datagrams of several lines each, below 1400 bytes,
    sent at a modest rate: at least 99% arrive unchanged (the kernel may drop
    datagrams; nothing else may).
  - The status counters agree with what the sink received.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, free_port_pair, send_tcp,  # noqa: E402
                     send_udp, send_unix, pack_datagrams, wait_until,
                     lines_with_prefix, first_difference, counter, check_build)

NCONN = 4
TCP_LINES = 1000000
UNIX_LINES = 1000
UDP_LINES = 10000
UDP_RATE = 400.0          # datagrams per second
UDP_MIN_SHARE = 0.99


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    port = free_port_pair()
    sink = t.sink()
    ctlport = free_port()
    control = "tcp://127.0.0.1:%d" % ctlport
    sock = t.tmp.join("orchester.sock")
    conf = """# ingest test
listen type linemode
    127.0.0.1:%(port)d proto tcp
    127.0.0.1:%(port)d proto udp
    %(sock)s proto unix
    ;
control %(control)s ;
cluster sink forward 127.0.0.1:%(sink)d ;
match * send to sink ;
""" % {"port": port, "sock": sock, "control": control, "sink": sink.port}

    with t.check("orchester starts with tcp, udp and unix listeners", fatal=True):
        # -L: a full queue holds intake back (backpressure) rather than drop,
        # so a slow test sink cannot cost lines
        orch = t.start_orchester("orchester", conf, opts=("-L", "60000"),
                                 control=control, tcp_ports=(port,),
                                 unix_paths=(sock,))

    with t.check("status lists the tcp, udp and unix listeners"):
        ls = {(l["type"], l["proto"], l["addr"]) for l in t.status(control)["listeners"]}
        for want in (("linemode", "tcp", "127.0.0.1:%d" % port),
                     ("linemode", "udp", "127.0.0.1:%d" % port),
                     ("linemode", "unix", sock)):
            require(want in ls, "no listener %s in %r" % (" ".join(want), sorted(ls)))

    # --- TCP: 4 connections, each its own prefix ------------------------------
    base = int(time.time()) - TCP_LINES
    per = TCP_LINES // NCONN
    expected = []
    blocks = []
    for c in range(NCONN):
        lines = [b"conn%d.m%d %d %d" % (c, i % 1000, i, base + i) for i in range(per)]
        expected.append(lines)
        blocks.append(b"\n".join(lines) + b"\n")

    t0 = time.monotonic()
    with t.check("%d lines sent over %d concurrent tcp connections" % (TCP_LINES, NCONN),
                 fatal=True):
        errs = send_tcp(port, blocks, timeout=120.0)
        require(not errs, "; ".join(errs))
    del blocks

    # --- unix socket -----------------------------------------------------------
    unix_lines = [b"unix.m%d %d %d" % (i % 100, i, base + i) for i in range(UNIX_LINES)]
    unix_err = None
    try:
        send_unix(sock, b"\n".join(unix_lines) + b"\n")
    except OSError as e:
        unix_err = e

    # --- wait for the TCP and unix lines ---------------------------------------
    want = TCP_LINES + (0 if unix_err else UNIX_LINES)
    with t.check("all %d tcp lines arrive at the sink" % TCP_LINES):
        sink.wait_count(want, 180.0)
        elapsed = time.monotonic() - t0
        sys.stderr.write("# %d lines delivered in %.1f s\n" % (want, elapsed))
        require(orch.alive(), "orchester exited with %s" % orch.returncode)

    got = sink.snapshot()
    with t.check("tcp lines arrive unchanged and in order per connection"):
        problems = []
        for c in range(NCONN):
            mine = lines_with_prefix(got, b"conn%d." % c)
            d = first_difference(mine, expected[c])
            if d:
                problems.append("connection %d: %s" % (c, d))
        require(not problems, "; ".join(problems))
    del expected

    with t.check("unix socket listener delivers %d lines in order" % UNIX_LINES):
        require(unix_err is None, "sending over %s: %s" % (sock, unix_err))
        d = first_difference(lines_with_prefix(got, b"unix."), unix_lines)
        require(not d, d)

    other = [ln for ln in got if not (ln.startswith(b"conn") or ln.startswith(b"unix."))]
    with t.check("no unexpected lines at the sink"):
        require(not other, "%d unexpected lines, first %r" % (len(other), other[:3]))
    del got

    # --- UDP ---------------------------------------------------------------------
    udp_lines = [b"udp.m%d %d %d" % (i % 100, i, base + i) for i in range(UDP_LINES)]
    # datagrams of 1 to 40 lines, all below 1400 bytes
    dgrams = []
    i = 0
    k = 1
    while i < UDP_LINES:
        chunk = pack_datagrams([ln + b"\n" for ln in udp_lines[i:i + k]], 1400)
        dgrams.extend(chunk)
        i += k
        k = k % 40 + 1
    before = sink.count()
    send_udp(port, dgrams, rate=UDP_RATE)
    need = int(UDP_LINES * UDP_MIN_SHARE + 0.999)
    name = ("udp: >= 99%% of %d lines in %d datagrams arrive unchanged "
            "(udp may drop in the kernel)" % (UDP_LINES, len(dgrams)))
    with t.check(name):
        wait_until(lambda: sink.count() - before >= need, 60.0,
                   "%d udp lines at the sink" % need)
        # the rest of what orchester received is delivered: the status
        # counters settle at what the sink has
        def settled():
            st = t.status(control)
            return counter(st, "metricsReceived") == sink.count() and \
                counter(st, "metricsSent") == sink.count()
        try:
            wait_until(settled, 15.0, "metricsReceived and metricsSent == lines at the sink")
        except Exception:
            pass  # judged by the status check below
        arrived = sink.snapshot()[before:]
        udp_set = set(udp_lines)
        bad = [ln for ln in arrived if ln not in udp_set]
        require(not bad, "%d lines that were not sent, first %r" % (len(bad), bad[:3]))
        uniq = set(arrived)
        require(len(uniq) == len(arrived), "%d duplicate udp lines"
                % (len(arrived) - len(uniq)))
        require(len(uniq) >= need, "only %d of %d udp lines arrived" % (len(uniq), UDP_LINES))
        sys.stderr.write("# udp: %d of %d lines arrived\n" % (len(uniq), UDP_LINES))

    with t.check("status counters match what the sink received"):
        total = sink.count()
        st = t.status(control)
        rec = counter(st, "metricsReceived")
        sent = counter(st, "metricsSent")
        dropped = counter(st, "metricsDropped")
        dest = st["destinations"].get(("sink", "127.0.0.1:%d" % sink.port))
        require(dest is not None, "no destination sink 127.0.0.1:%d in status: %r"
                % (sink.port, st["destinations"]))
        require(rec == total, "metricsReceived %d, sink has %d lines" % (rec, total))
        require(sent == total, "metricsSent %d, sink has %d lines" % (sent, total))
        require(dropped == 0, "metricsDropped %d" % dropped)
        require(dest.get("sent") == total and dest.get("queued") == 0
                and dest.get("state") == "up",
                "destination record %r, sink has %d lines" % (dest, total))
        require(counter(st, "parseErrors") == 0, "parseErrors %d" % counter(st, "parseErrors"))


if __name__ == "__main__":
    Test().run(body)
