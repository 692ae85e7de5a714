#!/usr/bin/python3
"""
test_route.py -- routing changed at run time with orchester-ctl route, on
one orchester: each change is in force at once, kept in the routes file,
and survives a reload and a restart.

Three sinks: store (s1), other (s2) and fan, a forward cluster of s2 and
s3.  The config sends ^fan\\. to fan and everything else to store.

1. `route add 1 'match ^moved\\. send to other stop'`: moved.* lines go to
   s2 and no longer to s1; `route list` numbers the rules and says where
   each came from; `status` counts the change; `orchester -t` routes by it
   and names the routes file.
2. A reload keeps it, also after the config file gained a rule; a restart
   keeps it.
3. `route drain fan S3`: fan.* lines reach s2 only; `route back`: s2 and
   s3 again.  `route redirect fan S1`: s1 only; `route restore fan`: s2
   and s3.
4. `route remove N` of a rule of the file: its lines are no longer routed.
5. Refusals (unknown cluster, bad position, last member, bad rule): exit
   1, "error", and nothing changes.  A routes file that cannot be written
   (-r in a directory that does not exist): the change is refused, and not
   in force.
6. `route clear`: the file's rules alone again, and the file says so.
"""
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, lines_with_prefix, ctl, send_tcp)

MOVED = "match ^moved\\. send to other stop"
N = 100  # lines of each kind a check sends


def nums(sink, prefix):
    return set(int(l.split()[1])
               for l in lines_with_prefix(sink.snapshot(), prefix))


def body(t):
    check_build(t.build)
    s1, s2, s3 = t.sink(), t.sink(), t.sink()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl")
    conf_a = ("listen type linemode 127.0.0.1:%d proto tcp ;\n"
              "cluster store forward 127.0.0.1:%d ;\n"
              "cluster other forward 127.0.0.1:%d ;\n"
              "cluster fan forward 127.0.0.1:%d 127.0.0.1:%d ;\n"
              "match ^fan\\. send to fan stop ;\n"
              "match * send to store ;\n"
              "control %s ;\n" % (port, s1.port, s2.port, s2.port, s3.port,
                                  control))
    o = t.start_orchester("o", conf_a, control=control, tcp_ports=(port,))
    routes = o.conf + ".routes"
    tag = [0]

    def route(*words):
        rc, out, err, _ = ctl(t.build, ["-e", control, "route"] + list(words))
        return rc, out + err

    def ok(*words):
        rc, out = route(*words)
        require(rc == 0 and out.startswith("ok"), "route %s: %s"
                % (" ".join(words), out))
        return out

    def send(*prefixes, n=N):
        """n lines PREFIX.tK.I for each prefix, in this order, on one
        connection (so they are routed in this order); their names."""
        tag[0] += 1
        names = [b"%s.t%d." % (p_, tag[0]) for p_ in prefixes]
        data = b"".join(b"%s%d %d %d\n" % (nm, i, i, 1700000000 + i)
                        for nm in names for i in range(n))
        errs = send_tcp(port, [data])
        require(not errs, "; ".join(errs))
        return names

    def at(name, *sinks_):
        for k in sinks_:
            wait_until(lambda: nums(k, name) >= set(range(N)), 30,
                       lambda: "%s at sink %d (%d there)"
                       % (name.decode(), k.port, len(nums(k, name))))

    def notat(name, *sinks_):
        """Called once a line sent after name's lines has reached each of
        sinks_ by the path name's lines would have taken there: they would
        be there by now."""
        for k in sinks_:
            require(not nums(k, name), "%s reached sink %d"
                    % (name.decode(), k.port))

    def restart(name, *opts):
        o.stop()
        p_ = t.orchester(name, o.conf, *opts)
        p_.conf = o.conf
        p_.start()
        t.wait_ready(p_, control, (port,))
        return p_

    # Negative checks wait for a follower: a later line of the same
    # connection that reaches the sink through the destination (cluster
    # and member) a wrongly routed line would have used, in order behind it.
    with t.check("route add: in force at once, listed, counted, and shown "
                 "by -t", fatal=True):
        ok("add", "1", MOVED)
        m, f = send(b"moved", b"plain")
        at(m, s2)
        at(f, s1)  # through store, where moved lines went before
        notat(m, s1)
        rc, out = route("list")
        require(rc == 0, out)
        require("1  %s ;  (route add, %s:3)" % (MOVED, routes) in out, out)
        require("2  match ^fan\\. send to fan stop ;  (%s:5)" % o.conf in out,
                out)
        st = t.status(control)
        require(st.get("routes", {}).get("changes") == 1, "status: %r"
                % st.get("routes"))
        require(counter(st, "routes.changes") == 1, "routes.changes")
        tm = subprocess.run([os.path.join(t.build, "relay", "orchester"),
                             "-t", "-f", o.conf], input=b"moved.x 1 1\n",
                            capture_output=True, timeout=30)
        text = tm.stdout.decode()
        require(tm.returncode == 0 and "(%s:3)" % routes in text and
                "other" in text and "store" not in text,
                "-t: %r %r" % (text, tm.stderr[-300:]))

    with t.check("a reload keeps the change, also once the file gained a "
                 "rule; so does a restart"):
        with open(o.conf, "w") as f_:
            f_.write(conf_a.replace("match * send to store ;\n",
                                    "match ^new\\. send to other stop ;\n"
                                    "match * send to store ;\n"))
        rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
        require(rc == 0, "reload: %s %s" % (out, err))
        m, nw, f = send(b"moved", b"new", b"plain")
        at(m, s2)
        at(nw, s2)
        at(f, s1)
        notat(m, s1)
        notat(nw, s1)
        o = restart("o-again")
        m, f = send(b"moved", b"plain")
        at(m, s2)
        at(f, s1)
        notat(m, s1)
        require(MOVED in route("list")[1], "lost at the restart")

    with t.check("drain and back, redirect and restore: the cluster's "
                 "members follow"):
        s3_addr = "127.0.0.1:%d" % s3.port
        ok("drain", "fan", s3_addr)
        d, = send(b"fan")
        at(d, s2)
        ok("back", "fan", s3_addr)
        b_, = send(b"fan")
        at(b_, s2, s3)
        notat(d, s3)  # b_ came through (fan, s3) behind where d would be
        ok("redirect", "fan", "127.0.0.1:%d" % s1.port)
        r, = send(b"fan")
        at(r, s1)
        rc, out = route("list")
        require("cluster fan now: 127.0.0.1:%d" % s1.port in out, out)
        ok("restore", "fan")
        f, = send(b"fan")
        at(f, s2, s3)
        notat(r, s2, s3)

    with t.check("route remove of a rule of the file: its lines are no "
                 "longer routed there"):
        rc, out = route("list")
        require("3  match ^new\\. send to other stop ;" in out, out)
        ok("remove", "3")
        nw, m = send(b"new", b"moved")
        at(nw, s1)
        at(m, s2)  # through other, where new lines went before
        notat(nw, s2)
        require("remove match ^new\\. send to other stop ;" in
                open(routes).read(), open(routes).read())

    with t.check("refusals: exit 1, 'error', and nothing changes"):
        before = open(routes).read()
        for words in (["add", "1", "match x send to nowhere"],
                      ["add", "0", "match x send to store"],
                      ["add", "1", "match x( send to store"],
                      ["add", "1", "listen type linemode 127.0.0.1:1 ;"],
                      ["drain", "store", "127.0.0.1:%d" % s1.port],
                      ["drain", "fan", "127.0.0.1:1"],
                      ["back", "fan", "127.0.0.1:1"],
                      ["remove", "99"],
                      ["frobnicate"]):
            rc, out = route(*words)
            require(rc == 1 and out.startswith("error"), "%s: rc %d %r"
                    % (words, rc, out))
        require(open(routes).read() == before, "the file changed")
        m, f = send(b"moved", b"plain")
        at(m, s2)
        at(f, s1)
        notat(m, s1)

    with t.check("a routes file that cannot be written: the change is "
                 "refused and not in force"):
        o = restart("o-nodir", "-r", t.tmp.join("no-such-dir", "routes"))
        rc, out = route("add", "1", MOVED)
        require(rc == 1 and "cannot write" in out, "rc %d: %r" % (rc, out))
        m, nw = send(b"moved", b"new")  # the file's rules alone here
        at(m, s1)
        at(nw, s2)
        notat(m, s2)
        o = restart("o-3")  # the default file again

    with t.check("route clear: the file's rules alone again"):
        m, f = send(b"moved", b"plain")
        at(m, s2)
        out = ok("clear")
        require("cleared 2 route changes" in out, out)
        m, nw, f = send(b"moved", b"new", b"plain")
        at(m, s1)
        at(nw, s2)
        at(f, s1)
        notat(m, s2)
        notat(nw, s1)
        require(t.status(control).get("routes") is None, "status still "
                "shows route changes")
        text = open(routes).read()
        require(all(l.startswith("#") for l in text.splitlines()),
                "the file: %r" % text)


Test().run(body)
