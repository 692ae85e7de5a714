#!/usr/bin/python3
"""
test_file_ip.py -- `cluster NAME file ip PATH ;` writes each line after the
address of the client that sent it, as carbon-c-relay 3.7.3 writes it.

1. The same configuration runs in orchester and in Debian's carbon-c-relay,
   each writing to its own file; clients from 127.0.0.2 and 127.0.0.3 (TCP,
   interleaved) and 127.0.0.4 (UDP) send the same lines to both: the two
   files hold the same lines ("ADDRESS NAME VALUE TIMESTAMP").
2. Through a standalone satellite, the address written is that of the
   satellite's client, not the satellite's.
3. The orchester's own metrics carry 127.0.0.1, as carbon-c-relay's do.
4. `send statistics to CLUSTER ;` (the older spelling) sends the self
   metrics of both relays to that cluster, and nowhere else.
"""
import os
import socket
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until,  # noqa: E402
                     check_build)

TS = 1700000000


def send_from(addr, port, data, udp=False):
    s = socket.socket(socket.AF_INET,
                      socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    s.bind((addr, 0))
    if udp:
        s.sendto(data, ("127.0.0.1", port))
    else:
        s.connect(("127.0.0.1", port))
        s.sendall(data)
    s.close()


def lines_of(path):
    try:
        with open(path, "rb") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def body(t):
    check_build(t.build)
    ccr = "/usr/bin/carbon-c-relay"
    require(os.path.exists(ccr), "carbon-c-relay is not installed")

    def conf(port, path):
        return ("listen type linemode 127.0.0.1:%d proto tcp\n"
                "    127.0.0.1:%d proto udp ;\n"
                "cluster out file ip %s ;\n"
                "match ^relay\\. send to blackhole stop ;\n"
                "match * send to out ;\n"
                "statistics submit every 3600 seconds ;\n" % (port, port, path))

    po, pc = free_port(), free_port()
    fo, fc = t.tmp.join("orchester.out"), t.tmp.join("ccr.out")
    o = t.start_orchester("o", conf(po, fo), tcp_ports=(po,))
    ccf = t.write("ccr.conf", conf(pc, fc))
    c = t.proc("carbon-c-relay", [ccr, "-f", ccf, "-H", "relay"]).start()
    t.wait_ready(c, tcp_ports=(pc,))

    a1 = b"".join(b"fi.a.%d %d %d\n" % (i, i, TS) for i in range(25))
    a2 = b"".join(b"fi.a.%d %d %d\n" % (i, i, TS) for i in range(25, 50))
    b = b"".join(b"fi.b.%d %d %d\n" % (i, i, TS) for i in range(50))
    u = b"".join(b"fi.u.%d %d %d\n" % (i, i, TS) for i in range(5))
    n = 105

    with t.check("orchester and carbon-c-relay write the same `file ip` "
                 "lines: each client's address before its lines"):
        for port in (po, pc):
            send_from("127.0.0.2", port, a1)
            send_from("127.0.0.3", port, b)
            send_from("127.0.0.2", port, a2)
            send_from("127.0.0.4", port, u, udp=True)
        wait_until(lambda: len(lines_of(fo)) >= n and len(lines_of(fc)) >= n,
                   30, lambda: "both files: orchester %d, carbon-c-relay %d "
                   "lines" % (len(lines_of(fo)), len(lines_of(fc))))
        got_o, got_c = sorted(lines_of(fo)), sorted(lines_of(fc))
        require(got_o == got_c, "orchester %r...; carbon-c-relay %r..."
                % (sorted(set(got_o) - set(got_c))[:3],
                   sorted(set(got_c) - set(got_o))[:3]))
        require(b"127.0.0.3 fi.b.7 7 %d" % TS in got_o and
                b"127.0.0.4 fi.u.1 1 %d" % TS in got_o and
                b"127.0.0.2 fi.a.49 49 %d" % TS in got_o, "%r" % got_o[:3])

    with t.check("through a standalone satellite: the address of the "
                 "satellite's client"):
        sp, lp = free_port(), free_port()
        fs = t.tmp.join("via-satellite.out")
        t.start_orchester("o2", conf(free_port(), fs).replace(
            "statistics", "satellites bind tcp://127.0.0.1:%d ;\n"
            "statistics" % sp))
        sconf = t.write("sat.conf",
                        "listen type linemode 127.0.0.1:%d proto tcp ;\n"
                        "orchester tcp://127.0.0.1:%d ;\n" % (lp, sp))
        s = t.satellite("sat", sconf).start()
        t.wait_ready(s, tcp_ports=(lp,))
        send_from("127.0.0.5", lp, b"fi.s.1 1 %d\n" % TS)
        send_from("127.0.0.6", lp, b"fi.s.2 2 %d\n" % TS)
        wait_until(lambda: len(lines_of(fs)) >= 2, 30, "the satellite's lines")
        require(sorted(lines_of(fs)) == [b"127.0.0.5 fi.s.1 1 %d" % TS,
                                         b"127.0.0.6 fi.s.2 2 %d" % TS],
                "%r" % lines_of(fs))

    with t.check("the orchester's own metrics carry 127.0.0.1"):
        fm = t.tmp.join("self.out")
        o3 = t.start_orchester("o3", conf(free_port(), fm).replace(
            "match ^relay", "match ^zzz").replace("3600", "1"),
            opts=("-H", "selfhost"))
        wait_until(lambda: any(l.startswith(b"127.0.0.1 carbon.relays."
                                            b"selfhost.metricsReceived ")
                               for l in lines_of(fm)), 15,
                   lambda: "a self metric: %r" % lines_of(fm)[:3])
        o3.stop()

    with t.check("send statistics to: both relays send their self metrics "
                 "to that cluster only"):
        files = {}
        for name in ("orchester", "carbon-c-relay"):
            port = free_port()
            st, other = t.tmp.join(name + ".stats"), t.tmp.join(name + ".other")
            files[name] = (st, other)
            text = ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
                    "cluster stats file %s ;\n"
                    "cluster other file %s ;\n"
                    "send statistics to stats ;\n"
                    "statistics submit every 1 seconds ;\n"
                    "match * send to other ;\n" % (port, st, other))
            if name == "orchester":
                t.start_orchester("o4", text, opts=("-H", "statshost"),
                                  tcp_ports=(port,))
            else:
                cf = t.write("ccr-stats.conf", text)
                p = t.proc("ccr-stats", [ccr, "-f", cf, "-H",
                                         "statshost"]).start()
                t.wait_ready(p, tcp_ports=(port,))
        for name, (st, other) in files.items():
            wait_until(lambda: any(l.startswith(b"carbon.relays.statshost."
                                                b"metricsReceived ")
                                   for l in lines_of(st)), 15,
                       lambda: "%s's metricsReceived: %r" % (
                           name, lines_of(st)[:3]))
            require(not any(b"carbon.relays" in l for l in lines_of(other)),
                    "%s sent self metrics elsewhere: %r" % (
                        name, lines_of(other)[:3]))


Test().run(body)
