#!/usr/bin/python3
# suite: alone
"""
test_cli.py -- the command lines of orchester and orchester-ctl.

  - `orchester -t -t -f good.conf` exits 0;
  - bad configs exit 1 and stderr names FILE:LINE (missing ';', unknown
    statement, unknown cluster in a match, an aggregate that expires before its interval ends);
  - `orchester -t -f conf` with lines on stdin prints, for each, the rule,
    the cluster and its members (blackhole shows blackhole, a line no rule
    matches says so, an invalid line says why);
  - `orchester-ctl -e EP status` and `-f CONFIG status` list the listeners
    and destinations;
  - `orchester-ctl -e tcp://127.0.0.1:UNUSED status` fails with exit 1
    within a bound.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, free_port_pair, run, ctl,  # noqa: E402
                     check_build, parse_status, send_tcp, wait_until, wait_status)

RUN_TIMEOUT = 30.0


def orch(t, *args, stdin=None):
    return run([os.path.join(t.build, "relay", "orchester")] + list(args),
               RUN_TIMEOUT, stdin_data=stdin)


def blocks(out):
    """Split test-mode output into blocks (lists of lines) at blank lines."""
    res, cur = [], []
    for line in out.splitlines():
        if line.strip() == "":
            if cur:
                res.append(cur)
            cur = []
        else:
            cur.append(line)
    if cur:
        res.append(cur)
    return res


def indent(line):
    return len(line) - len(line.lstrip(" "))


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    # --- -t -t on a good config ---------------------------------------------------
    inc = t.write("conf.d/extra.conf", """# an included file
cluster extra forward 127.0.0.1:2203 ;
""")
    good = t.write("good.conf", """# a config with every statement of this slice
listen type linemode
    127.0.0.1:2003 proto tcp
    127.0.0.1:2003 proto udp
    %(sock)s proto unix
    ;
control tcp://127.0.0.1:5570 ;
satellites bind tcp://127.0.0.1:5560 ;
statistics submit every 60 seconds ;
cluster graphite forward
    127.0.0.1:2103
    127.0.0.1:2104
    ;
cluster archive file %(file)s ;
include %(inc)s ;
match ^sys\\.(cpu|mem)\\. ^app\\. send to graphite stop ;
match ^junk\\. send to blackhole stop ;
match * send to graphite archive extra ;
""" % {"sock": t.tmp.join("s.sock"), "file": t.tmp.join("archive.txt"), "inc": inc})
    with t.check("orchester -t -t -f good.conf exits 0"):
        rc, out, err, _ = orch(t, "-t", "-t", "-f", good)
        require(rc == 0, "exit %s, stderr %r" % (rc, err.strip()[-500:]))

    # --- bad configs ----------------------------------------------------------------
    bad = [
        ("missing ';'", "cluster a forward 127.0.0.1:2003 ;\nmatch * send to a\n", (2, 3),
         None),
        ("unknown statement",
         "cluster a forward 127.0.0.1:2003 ;\n# comment\nfrobnicate the widgets ;\n"
         "match * send to a ;\n", (3,), "frobnicate"),
        ("unknown cluster in match",
         "cluster a forward 127.0.0.1:2003 ;\n\nmatch * send to nosuchcluster ;\n", (3,),
         "nosuchcluster"),
        ("aggregate expiring before its interval",
         "cluster a forward 127.0.0.1:2003 ;\nmatch * send to a ;\n"
         "aggregate\n        ^sys\\.dc[0-9]\\.(somehost-[0-9]+)\\.([^.]+)\\.mysql\\.replication_delay\n"
         "    every 10 seconds\n    expire after 5 seconds\n    compute sum write to\n"
         "        mysql.host.\\1.replication_delay\n    ;\n", (3, 4, 5, 6), "expire"),
    ]
    for i, (what, text, lines, word) in enumerate(bad):
        path = t.write("bad%d.conf" % i, text)
        with t.check("bad config (%s): exit 1, stderr names FILE:LINE" % what):
            rc, out, err, _ = orch(t, "-t", "-t", "-f", path)
            require(rc == 1, "exit %s (expected 1), stderr %r" % (rc, err.strip()[-300:]))
            m = re.search(re.escape(path) + r":(\d+)", err)
            require(m, "stderr does not name %s:LINE: %r" % (path, err.strip()[-300:]))
            require(int(m.group(1)) in lines, "names line %s, expected %s: %r"
                    % (m.group(1), " or ".join(map(str, lines)), err.strip()[-300:]))
            if word:
                require(word in err, "stderr does not name %r: %r" % (word, err.strip()[-300:]))
        with t.check("bad config (%s): orchester -f refuses to start" % what):
            rc, out, err, _ = orch(t, "-f", path)
            require(rc == 1, "exit %s (expected 1), stderr %r" % (rc, err.strip()[-300:]))

    with t.check("a bad line in an included file is named by that file"):
        incbad = t.write("conf.d/bad-inc.conf", "cluster x forward 127.0.0.1:2003 ;\n"
                         "match * send to nosuchcluster2 ;\n")
        main = t.write("main-inc.conf", "include %s ;\n" % incbad)
        rc, out, err, _ = orch(t, "-t", "-t", "-f", main)
        require(rc == 1, "exit %s" % rc)
        require(re.search(re.escape(incbad) + r":2\b", err), "stderr %r" % err.strip()[-300:])

    # --- test mode: routing per line ---------------------------------------------------
    pa, pb1, pb2 = 2301, 2302, 2303
    route = t.write("route.conf", """cluster alpha forward 127.0.0.1:%d ;
cluster beta forward
    127.0.0.1:%d
    127.0.0.1:%d
    ;
match ^alpha\\. send to alpha stop ;
match ^drop\\. send to blackhole stop ;
match * send to beta ;
""" % (pa, pb1, pb2))
    stdin = (b"alpha.x 1 1700000000\n"
             b"drop.y 2 1700000000\n"
             b"other.z 3 1700000000\n"
             b"bad.nan nan 1700000000\n")
    rc, out, err, _ = orch(t, "-t", "-f", route, stdin=stdin)
    bl = blocks(out)

    def block_for(name):
        for b in bl:
            if name in b[0]:
                return b
        raise AssertionError("no block for %s in output %r" % (name, out[-800:]))

    def under(b, rule_re, member):
        """The member line comes after the match line of rule_re, indented
        deeper, with nothing at the match line's level in between."""
        mi = [i for i, l in enumerate(b) if l.strip().startswith("match") and re.search(rule_re, l)]
        require(mi, "no 'match' line for %s in %r" % (rule_re, b))
        i0 = mi[0]
        for l in b[i0 + 1:]:
            if indent(l) <= indent(b[i0]):
                break
            if l.strip() == member:
                return True
        raise AssertionError("%s is not under %r in %r" % (member, b[i0], b))

    with t.check("orchester -t exits 0 and prints a block per line"):
        require(rc == 0, "exit %s, stderr %r" % (rc, err.strip()[-300:]))
        require(len(bl) == 4, "%d blocks in %r" % (len(bl), out[-800:]))

    with t.check("orchester -t: the matching rule, its cluster and member"):
        b = block_for("alpha.x")
        under(b, r"\^alpha", "127.0.0.1:%d" % pa)
        require(any(re.match(r"alpha \(forward\)$", l.strip()) for l in b),
                "no 'alpha (forward)' line in %r" % b)
        require(any(re.search(re.escape(route) + r":6\)", l) for l in b),
                "the rule's (FILE:LINE) is not %s:6 in %r" % (route, b))
        require(any(l.strip() == "stop" for l in b), "no 'stop' in %r" % b)
        require(not any(str(p) in " ".join(b) for p in (pb1, pb2)), "beta in %r" % b)

    with t.check("orchester -t: every member of a forward cluster"):
        b = block_for("other.z")
        under(b, r"match \*", "127.0.0.1:%d" % pb1)
        under(b, r"match \*", "127.0.0.1:%d" % pb2)
        require(any(l.strip() == "beta (forward)" for l in b), "no 'beta (forward)' in %r" % b)
        require(not any(l.strip() == "stop" for l in b), "'stop' for a rule without stop: %r" % b)

    with t.check("orchester -t: blackhole shows blackhole"):
        b = block_for("drop.y")
        require(any(l.strip() == "blackhole" for l in b), "no 'blackhole' in %r" % b)
        require(not any(str(p) in " ".join(b) for p in (pa, pb1, pb2)), "a member in %r" % b)

    with t.check("orchester -t: an invalid line says why"):
        b = block_for("bad.nan")
        require(any(l.strip().startswith("invalid:") and "nan" in l for l in b),
                "no 'invalid: nan' in %r" % b)

    with t.check("orchester -t: a line no rule matches says so"):
        only = t.write("only.conf", "cluster alpha forward 127.0.0.1:%d ;\n"
                       "match ^alpha\\. send to alpha ;\n" % pa)
        rc, out, err, _ = orch(t, "-t", "-f", only, stdin=b"zzz.q 1 1700000000\n")
        require(rc == 0, "exit %s, stderr %r" % (rc, err.strip()[-300:]))
        require(re.search(r"^\s+no rule matched\s*$", out, re.M), "output %r" % out[-500:])

    with t.check("orchester -t: a bare metric name (no value, no timestamp) "
                 "is routed, as carbon-c-relay's -t routes it"):
        rc, out, err, _ = orch(t, "-t", "-f", only,
                               stdin=b"alpha.bare\nzzz.bare\nalpha two\n")
        require(rc == 0, "exit %s, stderr %r" % (rc, err.strip()[-300:]))
        bb = blocks(out)
        require(len(bb) == 3, "blocks: %r" % bb)
        require(bb[0][0] == "alpha.bare" and
                any("alpha" in l and "forward" in l for l in bb[0][1:]),
                "alpha.bare: %r" % bb[0])
        require(bb[1][0] == "zzz.bare" and
                any("no rule matched" in l for l in bb[1]),
                "zzz.bare: %r" % bb[1])
        require(any("invalid: fields" in l for l in bb[2]),
                "two words: %r" % bb[2])

    with t.check("orchester -t: a line an aggregate takes shows each compute's "
                 "output name and where the outputs go"):
        agg = t.write("agg.conf", "cluster alpha forward 127.0.0.1:%d ;\n"
                      "aggregate ^a\\.([^.]+)\\.x every 10 seconds expire after "
                      "30 seconds compute sum write to s.\\1 compute "
                      "percentile95 write to p.\\1 send to alpha stop ;\n"
                      "match * send to alpha ;\n" % pa)
        rc, out, err, _ = orch(t, "-t", "-f", agg,
                               stdin=b"a.h1.x 1 1700000000\nb.y 2 1700000000\n")
        require(rc == 0, "exit %s, stderr %r" % (rc, err.strip()[-300:]))
        bb = blocks(out)
        require(len(bb) == 2, "blocks: %r" % bb)
        want = ["aggregate ^a\\.([^.]+)\\.x (%s:2) -> a.h1.x" % agg,
                "sum -> s.h1", "percentile95 -> p.h1",
                "every 10 s, expires after 30 s; outputs to alpha", "stop"]
        got = [l.strip() for l in bb[0][1:]]
        require(got == want, "a.h1.x: %r" % got)
        require(any("match *" in l for l in bb[1]), "b.y: %r" % bb[1])

    # --- orchester-ctl status ------------------------------------------------------------
    port = free_port_pair()
    s1, s2 = t.sink(), t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    archive = t.tmp.join("archive.out")
    conf = """listen type linemode 127.0.0.1:%d proto tcp 127.0.0.1:%d proto udp ;
control %s ;
cluster both forward 127.0.0.1:%d 127.0.0.1:%d ;
cluster archive file %s ;
match * send to both archive ;
""" % (port, port, control, s1.port, s2.port, archive)
    with t.check("orchester starts", fatal=True):
        p = t.start_orchester("orchester", conf, control=control, tcp_ports=(port,))

    def check_status(st):
        ls = {(l["type"], l["proto"], l["addr"]) for l in st["listeners"]}
        for want in (("linemode", "tcp", "127.0.0.1:%d" % port),
                     ("linemode", "udp", "127.0.0.1:%d" % port)):
            require(want in ls, "listener %s missing from %r" % (" ".join(want), sorted(ls)))
        for sp in (s1.port, s2.port):
            d = st["destinations"].get(("both", "127.0.0.1:%d" % sp))
            require(d is not None, "destination both 127.0.0.1:%d missing from %r"
                    % (sp, st["destinations"]))
            for k in ("state", "queued", "sent", "dropped"):
                require(k in d, "destination both 127.0.0.1:%d has no %s: %r" % (sp, k, d))
        for c in ("metricsReceived", "metricsSent", "metricsDropped", "metricsQueued",
                  "parseErrors"):
            require(c in st["counters"], "counter %s missing" % c)
        require(not st["other"], "records not in the contract's form: %r" % st["other"][:5])

    with t.check("orchester-ctl -e EP status lists listeners and destinations"):
        rc, out, err, _ = ctl(t.build, ["-e", control, "status"])
        require(rc == 0, "exit %s, stderr %r" % (rc, err.strip()[-300:]))
        check_status(parse_status(out))

    with t.check("orchester-ctl -f CONFIG status finds the control endpoint"):
        rc, out, err, _ = ctl(t.build, ["-f", p.conf, "status"])
        require(rc == 0, "exit %s, stderr %r" % (rc, err.strip()[-300:]))
        check_status(parse_status(out))

    with t.check("a forward cluster sends every line to each member, a file cluster "
                 "appends them; status counts them"):
        lines = [b"fwd.m%d %d 1700000000" % (i, i) for i in range(10)]
        errs = send_tcp(port, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))

        def file_lines():
            with open(archive, "rb") as f:
                return f.read().splitlines()
        wait_until(lambda: s1.count() >= 10 and s2.count() >= 10
                   and len(file_lines()) >= 10, 30.0,
                   "10 lines at each sink and in %s" % archive)
        require(s1.snapshot() == lines, "sink 1 got %r" % s1.snapshot()[:12])
        require(s2.snapshot() == lines, "sink 2 got %r" % s2.snapshot()[:12])
        require(file_lines() == lines, "the file holds %r" % file_lines()[:12])
        st = wait_status(t.build, control, 10.0, "sent=10 for each destination",
                         lambda st: all(st["destinations"].get(k, {}).get("sent") == 10
                                        for k in (("both", "127.0.0.1:%d" % s1.port),
                                                  ("both", "127.0.0.1:%d" % s2.port),
                                                  ("archive", archive))))
        d = st["destinations"][("archive", archive)]
        require(d.get("state") == "up", "file destination %r" % d)

    with t.check("orchester-ctl on an endpoint nobody serves exits 1 within 8 s"):
        unused = "tcp://127.0.0.1:%d" % t.reserve_port()
        rc, out, err, elapsed = ctl(t.build, ["-e", unused, "status"], timeout=20.0)
        require(rc is not None, "still running after 20 s")
        require(rc == 1, "exit %s (expected 1)" % rc)
        require(elapsed < 8.0, "took %.1f s" % elapsed)
        require(err.strip(), "no message on stderr")

    with t.check("a control endpoint beyond this host is refused unless said "
                 "exposed; an ipc control socket is for its user only"):
        wide = t.write("wide.conf", "cluster c forward 127.0.0.1:1 ;\n"
                       "match * send to c ;\ncontrol tcp://0.0.0.0:%d ;\n"
                       % free_port())
        rc, out, err, _ = orch(t, "-t", "-t", "-f", wide)
        require(rc != 0 and "reached from other hosts" in out + err,
                "exit %s: %s" % (rc, (out + err).strip()[-300:]))
        sock = t.tmp.join("ctl.sock")
        p = t.start_orchester("ipcctl", "cluster c forward 127.0.0.1:1 ;\n"
                              "match * send to c ;\ncontrol ipc://%s ;\n" % sock,
                              control="ipc://" + sock)
        mode = os.stat(sock).st_mode & 0o777
        require(mode == 0o600, "the socket's mode is %o" % mode)
        p.stop()

    with t.check("orchester -v prints a version and exits 0"):
        rc, out, err, _ = orch(t, "-v")
        require(rc == 0, "exit %s" % rc)
        require(re.search(r"\d+\.\d+", out + err), "no version in %r" % (out + err))


if __name__ == "__main__":
    Test().run(body)
