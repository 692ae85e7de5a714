#!/usr/bin/python3
"""
test_curve.py -- CURVE between satellites and orchesters, and between the
members of a pair: only listed keys get in.

Keys come from `orchester-ctl keygen`.  An orchester with
`curve key server.key allow a.pub ;` and a satellites endpoint; three
standalone satellites send lines to it:

  - A (`curve key a.key server server.pub ;`, listed): its lines arrive;
  - B (its own key, not listed): refused, nothing of it arrives, and the
    orchester counts the refusal (curve.refused) and logs it;
  - C (no curve at all): nothing of it arrives.

Then a pair whose members share the key pair (`curve key pair.key ;` on
both): the heartbeats and the batches cross the CURVE links, so the backup
goes passive on the primary's heartbeat, and a satellite with a listed key
delivers through the pair.
"""
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, lines_with_prefix, ctl)


def body(t):
    check_build(t.build)
    with t.check("orchester-ctl keygen writes key pairs", fatal=True):
        for name in ("server", "a", "b", "pair", "c2"):
            rc, out, err, _ = ctl(t.build, ["keygen", t.tmp.join(name + ".key")])
            require(rc == 0, "keygen: %s %s" % (out, err))
        require(os.stat(t.tmp.join("a.key")).st_mode & 0o777 == 0o600,
                "a.key is not 0600")

    sink = t.sink()
    sat_ep = free_port()
    control = "ipc://" + t.tmp.join("ctl")
    o = t.start_orchester("orchester",
                      "satellites bind tcp://127.0.0.1:%d ;\n"
                      "curve key %s allow %s ;\n"
                      "control %s ;\n"
                      "cluster sink forward 127.0.0.1:%d ;\n"
                      "match * send to sink ;\n"
                      % (sat_ep, t.tmp.join("server.key"), t.tmp.join("a.key.pub"),
                         control, sink.port), control=control)

    sats = {}

    def satellite(name, curve, orchesters):
        port = free_port()
        c = t.write(name + ".conf",
                    "listen type linemode 127.0.0.1:%d proto tcp ;\n"
                    "orchester %s timeout 1000 ms ;\n%s"
                    % (port, " ".join("tcp://127.0.0.1:%d" % p for p in orchesters),
                       curve))
        s = t.satellite(name, c).start()
        sats[name] = s
        t.wait_ready(s, tcp_ports=(port,))
        st = SeqStream(port, 10 ** 9, chunk=100, limit=2000, name=name.encode())
        st.start()
        return st

    def got(prefix):
        return len(lines_with_prefix(sink.snapshot(), prefix))

    with t.check("a secret key file that others can read is warned about"):
        loose = t.tmp.join("loose.key")
        shutil.copy(t.tmp.join("server.key"), loose)
        os.chmod(loose, 0o644)
        cf = t.write("loose.conf", "satellites bind tcp://127.0.0.1:%d ;\n"
                     "curve key %s ;\ncluster s forward 127.0.0.1:1 ;\n"
                     "match * send to s ;\n" % (free_port(), loose))
        r = subprocess.run([os.path.join(t.build, "relay", "orchester"), "-t",
                            "-t", "-f", cf], capture_output=True, timeout=30)
        require(r.returncode == 0 and b"readable by others (mode 0644)" in
                r.stderr, "rc %d, stderr %r" % (r.returncode, r.stderr[-300:]))

    with t.check("a satellite with a listed key delivers"):
        satellite("sa", "curve key %s server %s ;\n" % (
            t.tmp.join("a.key"), t.tmp.join("server.key.pub")), [sat_ep])
        wait_until(lambda: got(b"sa.") >= 2000, 30, "sa's lines")

    with t.check("a satellite with an unlisted key is refused, counted and "
                 "logged; one without curve gets nothing through"):
        satellite("sb", "curve key %s server %s ;\n" % (
            t.tmp.join("b.key"), t.tmp.join("server.key.pub")), [sat_ep])
        satellite("sc", "", [sat_ep])
        wait_until(lambda: counter(t.status(control), "curve.refused") >= 1, 20,
                   "the refusal to be counted")
        require("curve: refused a client" in o.stderr(),
                "no line about it in the log")
        # C's handshake cannot even start (it speaks no CURVE): wait until
        # a line sent after both would have arrived from a satellite that
        # got in, then check neither did
        satellite("sd", "curve key %s server %s ;\n" % (
            t.tmp.join("a.key"), t.tmp.join("server.key.pub")), [sat_ep])
        wait_until(lambda: got(b"sd.") >= 2000, 30, "a listed satellite's lines")
        require(got(b"sb.") == 0 and got(b"sc.") == 0,
                "sb %d, sc %d lines arrived" % (got(b"sb."), got(b"sc.")))
        require(counter(t.status(control), "curve.admitted") >= 1,
                "the listed satellite was not counted admitted")

    with t.check("the refused satellite says why in its log; so does one "
                 "that has the wrong server key"):
        wait_until(lambda: "the CURVE handshake failed" in
                   sats["sb"].stderr(), 20, "sb's log line")
        satellite("se", "curve key %s server %s ;\n" % (
            t.tmp.join("a.key"), t.tmp.join("b.key.pub")), [sat_ep])
        wait_until(lambda: "the CURVE handshake failed" in
                   sats["se"].stderr(), 20,
                   lambda: "se's log line: %r" % sats["se"].stderr()[-500:])
        require(got(b"se.") == 0, "se's lines arrived")

    # -- a pair over CURVE --------------------------------------------------
    sp, sb, hp, hb = (free_port() for _ in range(4))
    cp = "ipc://" + t.tmp.join("ctl-p")
    cb = "ipc://" + t.tmp.join("ctl-b")

    def member(name, role, sat, pub, ppub, psat, control_):
        return t.start_orchester(
            name,
            "satellites bind tcp://127.0.0.1:%d ;\n"
            "ha %s publish tcp://127.0.0.1:%d peer tcp://127.0.0.1:%d "
            "tcp://127.0.0.1:%d heartbeat 250 ms ;\n"
            "curve key %s allow %s ;\n"
            "control %s ;\n"
            "cluster sink forward 127.0.0.1:%d ;\n"
            "match * send to sink ;\n"
            % (sat, role, pub, ppub, psat, t.tmp.join("pair.key"),
               t.tmp.join("c2.key.pub"), control_, sink.port),
            control=control_)

    member("primary", "primary", sp, hp, hb, sb, cp)
    member("backup", "backup", sb, hb, hp, sp, cb)
    with t.check("a pair sharing a key pair hears itself over CURVE, and a "
                 "listed satellite delivers through it"):
        def states():
            out = [ctl(t.build, ["-e", c, "ha"])[1] for c in (cp, cb)]
            return out
        wait_until(lambda: "state=active" in states()[0] and
                   "state=passive" in states()[1], 15,
                   lambda: "states: %s" % states())
        satellite("s2", "curve key %s server %s ;\n" % (
            t.tmp.join("c2.key"), t.tmp.join("pair.key.pub")), [sp, sb])
        wait_until(lambda: got(b"s2.") >= 2000, 30, "s2's lines")


Test().run(body)
