#!/usr/bin/python3
"""
test_fdlimit.py -- a flood of idle connections cannot take the process's
last file descriptors: the control socket and the destinations keep
working, and what the listener refuses is counted.

orchester runs with a hard descriptor limit of 256 (set with setrlimit in a
wrapper that then execs it) and an ipc:// control endpoint.  One client
connects before the flood.  Then 400 idle connections, more than the
process may hold, are opened to the plaintext listener and kept open.
orchester-ctl status must answer (an ipc:// accept that finds no
descriptor aborts inside libzmq), the listener must count what it refused
(refused= on its status line), and the process must be alive.  The client
that connected before the flood sends a line, which reaches the sink; after
the flood is closed, a new client's lines reach the sink too.
"""
import os
import resource
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     orchester_argv, counter, ctl_status, SinkTracker)

LIMIT = 256        # soft and hard RLIMIT_NOFILE of the orchester
FLOOD = 400        # idle connections, more than LIMIT

# Runs in the child: set the limit, then become the program.
LIMITED_EXEC = ("import os, resource, sys; n = int(sys.argv[1]); "
                "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
                "os.execv(sys.argv[2], sys.argv[2:])")


def nofile_of(pid):
    """(soft, hard) 'Max open files' of a process, from /proc."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                f = line.split()
                return int(f[3]), int(f[4])
    return None


def listener_kv(st):
    """The key=value fields of the first listener line of a status."""
    ls = st["listeners"]
    require(ls, "status shows no listener")
    return {k: int(v) for k, v in (x.split("=", 1) for x in ls[0]["extra"])}


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
    # this test itself holds more than FLOOD sockets
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    inport = free_port()
    sink = t.sink()
    control = "ipc://" + t.tmp.join("control")
    conf = t.write("orchester.conf", """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (inport, control, sink.port))
    argv = [sys.executable, "-c", LIMITED_EXEC, str(LIMIT)] + \
        orchester_argv(t.build, conf, "-S", "1", "-H", "fdhost")
    orch = t.proc("orchester", argv)
    orch.ours = True

    with t.check("orchester starts with a hard limit of %d descriptors" % LIMIT,
                 fatal=True):
        orch.start()
        t.wait_ready(orch, control=control, tcp_ports=(inport,))
        lim = nofile_of(orch.pid)
        require(lim == (LIMIT, LIMIT), "its limits are %r" % (lim,))
    with t.check("the descriptor limits are logged at start"):
        require("descriptors: soft limit %d, hard limit %d" % (LIMIT, LIMIT)
                in orch.stderr(), "not in the log")

    ts = int(time.time()) - 3600
    early = socket.create_connection(("127.0.0.1", inport), timeout=10.0)
    t.on_cleanup(early.close)
    # the early connection is accepted before the flood begins
    wait_until(lambda: counter(ctl_status(t.build, control), "connections") >= 1,
               30.0, "the early connection to be open", interval=0.2)

    flood = []

    def close_flood():
        for s in flood:
            s.close()
        del flood[:]
    t.on_cleanup(close_flood)

    with t.check("%d idle connections: status still answers on ipc://, the "
                 "refused ones are counted" % FLOOD, fatal=True):
        for _ in range(FLOOD):
            flood.append(socket.create_connection(("127.0.0.1", inport),
                                                  timeout=10.0))
        # everything over the descriptor limit must have been refused
        need = FLOOD + 1 - LIMIT
        box = {}

        def refused():
            st = ctl_status(t.build, control)
            box["st"] = st
            return listener_kv(st).get("refused", 0) >= need

        wait_until(refused, 60.0, lambda: "refused>=%d on the listener line "
                   "(status: %r)" % (need, box.get("st", {}).get("listeners")),
                   interval=0.2)
        st = box["st"]
        kv = listener_kv(st)
        require(counter(st, "connections") + kv["refused"] >= FLOOD + 1,
                "open %d + refused %d < %d connections" % (
                    counter(st, "connections"), kv["refused"], FLOOD + 1))
        require(counter(st, "connections") < LIMIT,
                "%d connections open with %d descriptors"
                % (counter(st, "connections"), LIMIT))
        require(orch.alive(), "orchester exited with %s" % orch.returncode)
        sys.stderr.write("# %d open, %d refused\n"
                         % (counter(st, "connections"), kv["refused"]))

    with t.check("during the flood, a line from the connection opened before "
                 "it reaches the sink"):
        line = b"fdlimit.early 1 %d" % ts
        early.sendall(line + b"\n")
        tr = SinkTracker(sink, [line])
        wait_until(tr.complete, 30.0, "the early line at the sink")

    with t.check("after the flood, a new client's lines reach the sink"):
        close_flood()
        wait_until(lambda: counter(ctl_status(t.build, control),
                                   "connections") <= 1,
                   30.0, "the flood's connections to close", interval=0.2)
        lines = [b"fdlimit.late.m%d %d %d" % (i, i, ts) for i in range(100)]
        tr = SinkTracker(sink, lines)
        s = socket.create_connection(("127.0.0.1", inport), timeout=10.0)
        s.sendall(b"".join(ln + b"\n" for ln in lines))
        s.close()
        wait_until(tr.complete, 30.0, "100 lines at the sink")
        require(orch.alive(), "orchester exited with %s" % orch.returncode)

    with t.check("the self metrics carry listeners.<key>.refused"):
        name = b"carbon.relays.fdhost.listeners.tcp_127_0_0_1_%d.refused " % inport

        def reported():
            for ln in sink.snapshot():
                if ln.startswith(name):
                    if int(ln.split()[1]) >= FLOOD + 1 - LIMIT:
                        return True
            return False
        wait_until(reported, 30.0, "%s>= %d at the sink"
                   % (name.decode().strip(), FLOOD + 1 - LIMIT))

if __name__ == "__main__":
    Test().run(body)
