#!/usr/bin/python3
"""
test_buffer_sentinel.py -- the Redis buffer through Redis Sentinel: when
the Redis master dies, Sentinel promotes its replica and orchester finds the
new master by itself; nothing that had reached the replica is lost.

A Redis master and a replica (TCP, loopback), three sentinels watching them
(`sentinel monitor m ... 2`, down after 1000 ms), and orchester with
`buffer redis sentinel S1,S2,S3 master m`: it asks the sentinels for the
master, checks its ROLE, and asks again at every reconnect.  The sink is
down throughout the Redis failover.

  - 20,000 critical datapoints go to the master, and reach the replica;
  - the master is killed (SIGKILL); the sentinels promote the replica;
  - 10,000 more critical datapoints arrive: orchester has found the new
    master (its log names it) and spills there;
  - with `wait 1000 ms`, a spill counts as persisted only once a replica
    holds it: while the replica is frozen (SIGSTOP), 1,000 more reach the
    master but stay held in memory, and are confirmed once it is thawed;
  - the sink comes back: all 31,000 arrive.
"""
import os
import signal
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, Proc, SeqStream, require, free_port, wait_until,  # noqa: E402
                     check_build, counter, lines_with_prefix, run)


def cli(port, *args):
    rc, out, err, _ = run(["redis-cli", "-p", str(port)] + [str(a) for a in args],
                          10)
    return out.strip() if rc == 0 else None


def body(t):
    check_build(t.build)
    pm, pr = free_port(), free_port()
    sentinels = [free_port() for _ in range(3)]

    def redis(name, port, *extra):
        d = t.tmp.join(name)
        os.makedirs(d, exist_ok=True)
        p = t.proc(name, ["redis-server", "--port", str(port), "--bind",
                          "127.0.0.1", "--dir", d, "--save", "",
                          "--appendonly", "yes"] + list(extra))
        return p.start()

    master = redis("master", pm)
    replica = redis("replica", pr, "--replicaof", "127.0.0.1", str(pm))
    for i, sp in enumerate(sentinels):
        conf = t.write("sentinel%d.conf" % i,
                       "port %d\nbind 127.0.0.1\ndir %s\n"
                       "sentinel monitor m 127.0.0.1 %d 2\n"
                       "sentinel down-after-milliseconds m 1000\n"
                       "sentinel failover-timeout m 5000\n"
                       # told of the replica: no wait for the master's INFO
                       "sentinel known-replica m 127.0.0.1 %d\n"
                       % (sp, t.tmp.path, pm, pr))
        t.proc("sentinel%d" % i, ["redis-server", conf, "--sentinel"]).start()
    with t.check("Redis master, replica and three sentinels are up", fatal=True):
        wait_until(lambda: cli(pr, "INFO", "replication") and
                   "master_link_status:up" in cli(pr, "INFO", "replication"),
                   30, "the replica to follow the master")
        wait_until(lambda: all(cli(s, "SENTINEL", "get-master-addr-by-name", "m")
                               for s in sentinels), 30, "the sentinels")
        # a sentinel learns of the replica from the master's INFO (every
        # 10 s) and of the other sentinels from their hellos: a failover
        # needs both
        wait_until(lambda: all(str(pr) in (cli(s, "SENTINEL", "replicas", "m")
                                           or "") and
                               (cli(s, "SENTINEL", "sentinels", "m") or "")
                               .count("127.0.0.1") >= 2 for s in sentinels),
                   60, "the sentinels to know the replica and each other")

    sink = t.sink()
    sink.stop()
    port = free_port()
    control = "ipc://" + t.tmp.join("ctl")
    o = t.start_orchester(
        "orchester",
        "listen type linemode 127.0.0.1:%d proto tcp ;\n"
        "cluster sink forward 127.0.0.1:%d ;\n"
        "buffer redis sentinel %s master m prefix sn wait 1000 ms ;\n"
        "match * critical send to sink ;\n"
        "control %s ;\n" % (port, sink.port,
                            ",".join("127.0.0.1:%d" % s for s in sentinels),
                            control),
        control=control, tcp_ports=(port,))
    st = lambda: t.status(control)  # noqa: E731
    key = "sn:buf:sink:127.0.0.1:%d" % sink.port

    def in_replica():
        out = cli(pr, "EVAL", "local s = 0 for _, e in ipairs(redis.call("
                  "'XRANGE', KEYS[1], '-', '+')) do s = s + tonumber(e[2][2]) "
                  "end return s", 1, key)
        return int(out) if out and out.isdigit() else 0

    with t.check("spills reach the master through Sentinel, and its replica"):
        s = SeqStream(port, 10 ** 9, chunk=500, limit=20000, name=b"crit")
        s.start()
        wait_until(lambda: counter(st(), "buffered") >= 20000, 30,
                   "20,000 buffered")
        wait_until(lambda: in_replica() == 20000, 30, "the replica to hold them")

    with t.check("wait 1000 ms: while the replica is frozen, spills are in "
                 "the master but held in memory, unconfirmed; thawed, they "
                 "are confirmed"):
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            s1 = SeqStream(port, 10 ** 9, chunk=500, limit=1000, name=b"crit",
                           first=30000)
            s1.start()
            wait_until(lambda: counter(st(), "buffered") >= 21000, 30,
                       "the master to take them")
            require(counter(st(), "bufferMemory") >= 1000,
                    "held in memory: %d" % counter(st(), "bufferMemory"))
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        wait_until(lambda: counter(st(), "bufferMemory") == 0, 30,
                   "the replica's confirmation")
        wait_until(lambda: in_replica() == 21000, 30, "the replica to hold them")

    with t.check("the master killed: Sentinel promotes the replica, orchester "
                 "finds it and spills there"):
        master.crash()
        wait_until(lambda: all(
            (cli(sp, "SENTINEL", "get-master-addr-by-name", "m") or "")
            .split() == ["127.0.0.1", str(pr)] for sp in sentinels), 60,
            "the sentinels to name the replica")
        s2 = SeqStream(port, 10 ** 9, chunk=500, limit=10000, name=b"crit",
                       first=20000)
        s2.start()
        wait_until(lambda: counter(st(), "buffered") >= 31000, 60,
                   lambda: "31,000 buffered (%d)" % counter(st(), "buffered"))
        require("says the master is 127.0.0.1:%d" % pr in o.stderr(),
                "no line about the new master in the log")

    with t.check("orchester-ctl buffer ... peek finds the master through "
                 "Sentinel"):
        rc, out, err, _ = run([os.path.join(t.build, "relay", "orchester-ctl"),
                               "-e", control, "buffer",
                               "sink:127.0.0.1:%d" % sink.port, "peek", "2"], 20)
        require(rc == 0 and len(out.splitlines()) == 2 and "crit.0 " in out,
                "peek: exit %s: %s %s" % (rc, out, err))

    with t.check("once the sink is back, all 31,000 arrive"):
        sink.start()
        wait_until(lambda: {int(l.split()[1]) for l in lines_with_prefix(
            sink.snapshot(), b"crit.")} >= set(range(31000)), 60,
            "every critical datapoint")


Test().run(body)
