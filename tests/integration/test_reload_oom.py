#!/usr/bin/python3
"""
test_reload_oom.py -- a reload that runs out of memory, in the hub or in the
sender, leaves orchester running and correct.

orchester runs with tests/failalloc.so preloaded (a test library that makes
calloc calls of one chosen size fail on demand, see tests/tools/failalloc.c)
and MALLOC_PERTURB_ set, so memory used after it was freed holds garbage.
Config A has one destination (cluster main); config B adds a cluster `big`
of BIG members, so B's per-destination tables of stats_dest_t (184 bytes
each) take a calloc of (BIG + 1) * 184 bytes, a size nothing else asks for:
the hub makes one for the new generation before it hands the new router to
the sender, and the sender one when it switches.

  1. The hub's calloc fails: `orchester-ctl reload` answers an error saying
     out of memory; the running configuration stays (status shows A's one
     destination; a stream keeps arriving at main); the sender never saw
     the new router (the old code handed it over first, then freed it).
  2. The sender's calloc fails (the hub's passes): the reload is answered
     ok; the sender logs that it ran out of memory and retries, and at its
     next tick switches (logged); then B is in force: a big.* line reaches
     the big sink, and the stream still arrives at main.  While it waited
     the sender took nothing more from the hub (what the hub had routed for
     B must not be dropped): every seq line of the stream, sent through both
     reloads, arrives exactly once.

Runs against a build without sanitizers only (ASan's allocator must come
before any preloaded one); on a sanitizer build it says SKIP.
"""
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     ctl, SeqStream, sanitized)

BIG = 299
SIZE = (BIG + 1) * 184     # (destinations of B) * sizeof(stats_dest_t), src/stats.h
RATE = 2000.0


def conf_text(port, control, main, big):
    out = ["listen type linemode 127.0.0.1:%d proto tcp ;" % port,
           "control %s ;" % control,
           "cluster main forward 127.0.0.1:%d ;" % main]
    if big:
        out.append("cluster big forward %s ;"
                   % " ".join("127.0.0.1:%d" % big for _ in range(BIG)))
        out.append("match ^big\\. send to big stop ;")
    out.append("match * send to main stop ;")
    return "\n".join(out) + "\n"


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
    if sanitized(t.build):
        sys.stderr.write("SKIP: a sanitizer build cannot preload another allocator\n")
        return
    shim = os.path.join(t.build, "tests", "failalloc.so")
    with t.check("the failing-allocation library is built", fatal=True):
        require(os.path.exists(shim), "no %s" % shim)

    port = free_port()
    control = "tcp://127.0.0.1:%d" % free_port()
    main, big = t.sink(), t.sink()
    trigger = t.tmp.join("failalloc")
    conf = t.write("orchester.conf", conf_text(port, control, main.port, None))
    env = dict(os.environ, LD_PRELOAD=shim, FAILALLOC_SIZE=str(SIZE),
               FAILALLOC_FILE=trigger, MALLOC_PERTURB_="165")
    orch = t.proc("orchester", [os.path.join(t.build, "relay", "orchester"),
                                "-f", conf], env=env)
    orch.ours = True  # checked at the end: exits 0 on SIGTERM

    with t.check("orchester starts with config A under the library", fatal=True):
        orch.start()
        t.wait_ready(orch, control, (port,))
        stream = SeqStream(port, RATE)
        t.on_cleanup(lambda: (stream.stop.set(), stream.join(5)))
        stream.start()
        main.wait_count(200, 20.0, "the stream at main")

    def arm(skip, count):
        with open(trigger + ".new", "w") as f:
            f.write("%d %d\n" % (skip, count))
        os.rename(trigger + ".new", trigger)

    def to_b():
        with open(conf + ".new", "w") as f:
            f.write(conf_text(port, control, main.port, big.port))
        os.rename(conf + ".new", conf)

    def flowing(what):
        mark = main.count()
        main.wait_count(mark + 200, 20.0, "the stream at main %s" % what)
        require(orch.alive(), "orchester exited")

    with t.check("the hub runs out of memory: the reload is refused, saying "
                 "so, and configuration A stays"):
        arm(0, 1)
        to_b()
        rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
        require(orch.alive(), "orchester died: %s" % orch.stderr_tail(800))
        require(rc != 0 and "memory" in out,
                "reload answered rc=%s %r" % (rc, out.strip()))
        rc, out, err, _ = ctl(t.build, ["-e", control, "status"])
        n = sum(ln.startswith("destination ") for ln in out.splitlines())
        require(rc == 0 and n == 1, "%d destinations in force" % n)
        flowing("after the refused reload")

    with t.check("the sender runs out of memory: the reload is ok, the sender "
                 "retries at its next tick, and B is in force"):
        arm(1, 1)
        rc, out, err, _ = ctl(t.build, ["-e", control, "reload"])
        require(orch.alive(), "orchester died: %s" % orch.stderr_tail(800))
        require(rc == 0 and out.startswith("ok"), "reload answered rc=%s %r"
                % (rc, out.strip()))
        wait_until(lambda: "done after running out of memory" in orch.stderr(),
                   20.0, "the sender to say it switched after retrying")
        require("reload: out of memory: retrying" in orch.stderr(),
                "the sender did not say it ran out of memory")
        rc, out, err, _ = ctl(t.build, ["-e", control, "status"])
        n = sum(ln.startswith("destination ") for ln in out.splitlines())
        require(rc == 0 and n == BIG + 1, "%d destinations in force" % n)
        with socket.create_connection(("127.0.0.1", port), timeout=10.0) as s:
            s.sendall(b"big.one 1 %d\n" % (int(time.time()) - 600))
        big.wait_count(1, 20.0, "the big.one line at the big sink")
        flowing("after the switch")
        n = stream.finish()
        wait_until(lambda: main.count() >= n, 30.0,
                   lambda: "%d seq lines at main (have %d)" % (n, main.count()))
        got = sorted(int(ln.split(b" ")[1]) for ln in main.snapshot())
        require(got == list(range(n)), "seq lines at main: %d lines, %d "
                "distinct, of %d sent" % (len(got), len(set(got)), n))


if __name__ == "__main__":
    Test().run(body)
