#!/usr/bin/python3
"""
test_buffer.py -- critical datapoints survive a backend outage and crashes
of the relay: the Redis buffer and its ordered replay.

A real redis-server (unix socket, append-only, noeviction) in the test's
directory; one orchester; one sink.  `match ^crit\\. critical send to store`
marks the crit.N lines critical; everything else (bulk.N) goes to the same
destination as ordinary data.

1. Outage.  The sink is down while 1,000,000 critical datapoints flow for
   30 seconds (about 33,000 a second; on a sanitizer build, which checks
   memory, not scale, 250,000 at 100,000 a second), and 100,000 ordinary
   ones with them over the same time.  Checks: all 1,000,000 are in Redis (the buffered counter, and the
   sum of the entries' datapoints); the ordinary ones stay within the
   queue bound (-q 20000) and what did not fit is counted as dropped; once
   the sink is back every critical datapoint arrives, in the order it was
   sent, and the buffer's keys are gone.  `orchester-ctl buffer` shows the
   backlog during the outage, and `buffer DEST peek 3` its first three
   datapoints.  The spill and replay rates and
   the peak RSS are printed (figures, not checks).
2. Crash during an outage.  200,000 more critical datapoints go to Redis,
   and orchester is killed (SIGKILL) with them there.  Started again, with
   the sink still down, it delivers none and loses none: Redis holds them
   all.
3. Crash during the replay.  The sink comes back, the replay runs at 20,000
   datapoints a second, and orchester is killed again once the sink has a
   third of them.  Started again, it replays the rest: every datapoint
   arrives at least once; the duplicates are counted by the sink and
   printed, and orchester's replayedAgain (entries read before the crash
   and replayed again) covers them.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, rss_kb, lines_with_prefix,
                     ctl, sanitized, CheckFailed)

N_OUTAGE = 1000000
N_OUTAGE_SANITIZED = 250000  # a sanitizer build: the same at a quarter
OUTAGE_S = 30.0  # the seconds the critical stream takes (the sink is down)
CRIT_RATE_SANITIZED = 100000
N_CRASH = 200000
BULK = 100000
QUEUE = 20000


def conf(sink, redis, control, port, replay):
    return ("listen type linemode transport plain 127.0.0.1:%d proto tcp ;\n"
            "cluster store forward 127.0.0.1:%d ;\n"
            "buffer redis %s prefix t max 50000000 datapoints\n"
            "    replay %d per second ;\n"
            "match ^crit\\. critical send to store stop ;\n"
            "match * send to store ;\n"
            "control %s ;\n" % (port, sink, redis, replay, control))


def crit_numbers(sink):
    """The N of every crit.N line the sink has, in arrival order."""
    return [int(l.split()[1]) for l in lines_with_prefix(sink.snapshot(), b"crit.")]


def body(t):
    global N_OUTAGE, BULK
    check_build(t.build)
    crit_rate = int(N_OUTAGE / OUTAGE_S) + 1
    if sanitized(t.build):
        N_OUTAGE = N_OUTAGE_SANITIZED
        BULK = BULK * N_OUTAGE_SANITIZED // 1000000
        crit_rate = CRIT_RATE_SANITIZED
    bulk_rate = max(1000, BULK * crit_rate // N_OUTAGE)
    redis = t.redis()
    sink = t.sink()
    sink.stop()  # the backend is down: its port stays reserved
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl")
    key = "t:buf:store:127.0.0.1:%d" % sink.port

    def start(name, replay):
        return t.start_orchester(name, conf(sink.port, redis.target, control,
                                            port, replay),
                                 opts=("-q", str(QUEUE), "-D", "5"),
                                 control=control, tcp_ports=(port,))

    o = start("outage", 200000)

    # -- 1. the outage ---------------------------------------------------
    with t.check("%d critical datapoints go to Redis while the sink is down"
                 % N_OUTAGE, fatal=True):
        crit = SeqStream(port, crit_rate, chunk=500, limit=N_OUTAGE,
                         name=b"crit")
        bulk = SeqStream(port, bulk_rate, chunk=50, limit=BULK, name=b"bulk")
        t0 = time.monotonic()
        crit.start()
        bulk.start()
        peak = [0]
        worst_queued = [0]

        def sent():
            peak[0] = max(peak[0], rss_kb(o.pid))
            st = t.status(control)
            d = st["destinations"][("store", "127.0.0.1:%d" % sink.port)]
            worst_queued[0] = max(worst_queued[0], d["queued"])
            return crit.done.is_set() and bulk.done.is_set()

        wait_until(sent, 180, "the streams to be sent", interval=0.5)
        require(crit.error is None and bulk.error is None,
                "client: %s %s" % (crit.error, bulk.error))
        spill_s = time.monotonic() - t0

        def buffered():
            peak[0] = max(peak[0], rss_kb(o.pid))
            return counter(t.status(control), "buffered") >= N_OUTAGE

        wait_until(buffered, 60, "every critical datapoint to be buffered")
        in_redis = redis.stream_datapoints(key)
        require(in_redis == N_OUTAGE,
                "Redis holds %d datapoints, not %d" % (in_redis, N_OUTAGE))
        print("# spill: %d critical datapoints in %.1f s (%.0f/s, paced by "
              "the client); peak RSS %d kB" % (N_OUTAGE, spill_s,
                                                N_OUTAGE / spill_s, peak[0]))

    with t.check("orchester-ctl buffer shows the backlog, and peek its next "
                 "datapoints"):
        rc, out, err, _ = ctl(t.build, ["-e", control, "buffer"])
        require(rc == 0, "buffer: exit %s: %s" % (rc, err))
        line = next((l for l in out.splitlines() if " key=%s " % key in l), "")
        f = dict(kv.split("=", 1) for kv in line.split()[3:] if "=" in kv)
        require(f.get("backlog") == str(N_OUTAGE) and f.get("buffer") ==
                "spilling", "buffer says: %s" % line)
        require(int(f.get("oldest", 0)) > 0 and int(f.get("bytes", 0)) > 0,
                "buffer says: %s" % line)
        rc, out, err, _ = ctl(t.build, ["-e", control, "buffer",
                                        "store:127.0.0.1:%d" % sink.port,
                                        "peek", "3"])
        require(rc == 0, "peek: exit %s: %s" % (rc, err))
        got = [l.split()[1] for l in out.splitlines()]
        require(got == ["crit.0", "crit.1", "crit.2"], "peek says: %r" % out)

    with t.check("ordinary datapoints stay within the queue bound, and what "
                 "did not fit is counted as dropped"):
        dk = ("store", "127.0.0.1:%d" % sink.port)

        def settled():
            d = t.status(control)["destinations"][dk]
            return d["queued"] + d["inflight"] + d["dropped"] == BULK

        try:  # the counters reach the status once a second
            wait_until(settled, 10, "the counters to settle")
        except CheckFailed:
            pass  # said below, with the figures
        st = t.status(control)
        d = st["destinations"][dk]
        require(worst_queued[0] <= QUEUE,
                "queued went up to %d (bound %d)" % (worst_queued[0], QUEUE))
        require(d["queued"] + d["inflight"] + d["dropped"] == BULK,
                "queued %d + in flight %d + dropped %d != %d sent" % (
                    d["queued"], d["inflight"], d["dropped"], BULK))
        require(d["dropped"] >= BULK - QUEUE, "dropped %d" % d["dropped"])
        require(counter(st, "bufferDropped") == 0,
                "bufferDropped %d" % counter(st, "bufferDropped"))

    with t.check("once the sink is back, every critical datapoint arrives, "
                 "in order"):
        t0 = time.monotonic()
        sink.start()
        wait_until(lambda: len(set(crit_numbers(sink))) >= N_OUTAGE, 120,
                   "the backlog to arrive", interval=0.2)
        replay_s = time.monotonic() - t0
        got = crit_numbers(sink)
        require(set(got) == set(range(N_OUTAGE)), "missing: %d"
                % (N_OUTAGE - len(set(got) & set(range(N_OUTAGE)))))
        first = []
        seen = set()
        for n in got:
            if n not in seen:
                seen.add(n)
                first.append(n)
        bad = next((i for i in range(1, len(first)) if first[i] < first[i - 1]),
                   None)
        require(bad is None, "out of order at %s: %s" % (
            bad, first[bad - 2:bad + 2] if bad else ""))
        print("# replay: %d datapoints in %.1f s (%.0f/s, replay 200000 per "
              "second); %d duplicates" % (N_OUTAGE, replay_s,
                                          N_OUTAGE / replay_s,
                                          len(got) - len(seen)))

    with t.check("the buffer's keys are gone once the backlog was delivered"):
        wait_until(lambda: redis.keys("t:*") == [], 30, "the keys to go")
        # the counters reach the status once a second
        wait_until(lambda: counter(t.status(control), "replayed") == N_OUTAGE and
                   counter(t.status(control), "backlog") == 0, 10,
                   lambda: "replayed %d of %d, backlog %d" % (
                       counter(t.status(control), "replayed"), N_OUTAGE,
                       counter(t.status(control), "backlog")))

    # -- 2. crash during an outage -----------------------------------------
    sink.stop()
    sink.clear()
    with t.check("a crash with data in Redis loses none of it"):
        wait_until(lambda: t.status(control)["destinations"][
            ("store", "127.0.0.1:%d" % sink.port)]["state"] == "down", 30,
            "the destination to be down")
        # buffered counts since the start (phase 1's million is in it): wait
        # for this stream's own datapoints to be in Redis
        base = counter(t.status(control), "buffered")
        crit = SeqStream(port, 10 ** 9, chunk=500, limit=N_CRASH, name=b"crit")
        crit.start()
        wait_until(lambda: crit.done.is_set(), 60, "the stream to be sent")
        wait_until(lambda: counter(t.status(control), "buffered") >=
                   base + N_CRASH, 60,
                   lambda: "the datapoints to be in Redis (%d of %d)" % (
                       counter(t.status(control), "buffered") - base, N_CRASH))
        o.crash()
        require(redis.stream_datapoints(key) == N_CRASH,
                "Redis holds %d after the crash" % redis.stream_datapoints(key))
        o = start("restarted", 20000)
        st = t.status(control)
        wait_until(lambda: counter(t.status(control), "backlog") == N_CRASH, 30,
                   "the restarted orchester to see the backlog")
        require(redis.stream_datapoints(key) == N_CRASH, "Redis lost some")

    # -- 3. crash during the replay --------------------------------------------
    with t.check("a crash during the replay: every datapoint arrives at least "
                 "once, duplicates counted"):
        sink.start()
        wait_until(lambda: len(crit_numbers(sink)) >= N_CRASH // 3, 60,
                   "a third of the replay")
        o.crash()
        before = len(crit_numbers(sink))
        sink.stop()  # the next run replays behind what is left
        left = redis.stream_datapoints(key)
        o = start("replay-again", 200000)
        sink.start()
        wait_until(lambda: set(crit_numbers(sink)) >= set(range(N_CRASH)), 60,
                   "every datapoint to arrive")
        wait_until(lambda: redis.keys("t:*") == [], 30, "the keys to go")
        got = crit_numbers(sink)
        dups = len(got) - len(set(got))
        # the counters reach the status once a second: wait for the one
        # that says the whole of what was left has been replayed
        wait_until(lambda: counter(t.status(control), "replayed") >= left, 10,
                   lambda: "replayed %d of the %d left" % (
                       counter(t.status(control), "replayed"), left))
        again = counter(t.status(control), "replayedAgain")
        print("# crash during replay: %d had arrived before the kill; %d "
              "duplicates after it; replayedAgain says %d" % (before, dups,
                                                              again))
        require(dups <= again, "%d duplicates, but replayedAgain is %d"
                % (dups, again))


Test().run(body)
