#!/usr/bin/python3
"""
test_placement.py -- orchester's placement (src/ring.c) against
carbon-c-relay and Python carbon, name by name.

    /usr/bin/python3 tests/integration/test_placement.py BUILD_DIR

BUILD_DIR/tests/ringplace prints where src/ring.c places each name read on
stdin.  The same names go through:
  - `carbon-c-relay -t` (3.7.3), with a config per cluster kind: carbon_ch
    with and without instances (and with two members on one host),
    fnv1a_ch, jump_fnv1a_ch, any_of; replication 1 and 2; 8 members;
  - Python carbon's carbon.hashing.ConsistentHashRing (8 destinations with
    instances) for the carbon_ch graphite placement, and its
    ConsistentHashingRouter with DIVERSE_REPLICAS for ringplace -d;
  - a running carbon-c-relay, for tagged names: the daemon places
    "name;tags" by the part before ';' (its -t mode hashes the whole name).
Every name must land on the same members, in the same order.

40,000 seeded random names (15,000 on a sanitizer build; some with
multi-byte UTF-8, whose bytes FNV-1a takes as signed chars), plus names
found to sit exactly on the positions where ring entries collide, where
carbon-c-relay and Python carbon differ.
"""

import hashlib
import os
import random
import re
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, free_port, require, run, send_tcp,  # noqa: E402
                     wait_until, sanitized)

CRELAY = "/usr/bin/carbon-c-relay"
CARBON_PY = "/usr/lib/python3/dist-packages"
NNAMES = 40000
NNAMES_SANITIZED = 15000  # a sanitizer build places them 3 to 5 times slower
SEED = 20131  # any fixed value
RUN_TIMEOUT = 60.0


# ---------------------------------------------------------------------------
# members and the carbon-c-relay-compatible ring keys, for finding collisions

def member(host, port, instance=None):
    return (host, port, instance)


def member_arg(m):
    host, port, inst = m
    return "%s:%d%s" % (host, port, "" if inst is None else "=" + inst)


def plain8():
    return [member("127.0.0.%d" % k, 2002 + k) for k in range(1, 9)]


def inst8():
    """Four hosts, two carbon-cache instances each; config order, host order
    and instance order all disagree."""
    return [member("127.0.0.3", 2101, "b"), member("127.0.0.3", 2102, "a"),
            member("127.0.0.1", 2103, "d"), member("127.0.0.1", 2104, "c"),
            member("127.0.0.4", 2105, "a"), member("127.0.0.4", 2106, "c"),
            member("127.0.0.2", 2107, "b"), member("127.0.0.2", 2108, "d")]


def mixed32():
    """32 members on 8 hosts in a shuffled order, one member per host
    without an instance: enough colliding entries (about 80) that the order
    within a run (host, then instance with none last; or host, then port for
    fnv1a_ch) decides many names."""
    rnd = random.Random(32)
    ms = []
    for h in range(1, 9):
        for i in range(4):
            ms.append(member("10.0.%d.%d" % (h % 3, h), 2003 + 7 * i,
                             None if i == 0 else "%s%d" % ("xa"[h % 2], 9 - i)))
    rnd.shuffle(ms)
    return ms


def shared8():
    """127.0.0.1 twice without an instance: carbon_ch cannot tell them
    apart, every entry of the second is in a run behind the first's."""
    return plain8()[:7] + [member("127.0.0.1", 2010)]


def fnvinst8():
    return [member("127.0.0.%d" % k, 2200 + k,
                   hashlib.md5(b"inst%d" % k).hexdigest()) for k in range(8, 0, -1)]


def jumpinst8():
    """Mixed instances: numbers (compared as numbers), words, none.  "1x"
    sorts between "10" and "9" by strcmp while 9 < 10 as numbers: no total
    order, so the sort algorithm decides."""
    insts = ["10", None, "9", "1x", None, "100", "a", "2"]
    return [member("127.0.0.%d" % k, 2300 + k, insts[k - 1])
            for k in range(1, 9)]


def md5pos(b):
    d = hashlib.md5(b).digest()
    return (d[0] << 8) | d[1]


def fnv1a32(b):
    h = 2166136261
    for c in b:
        h ^= c if c < 0x80 else c | 0xffffff00  # signed char
        h = (h * 16777619) & 0xffffffff
    return h


def fnvpos(b):
    h = fnv1a32(b)
    return (h >> 16) ^ (h & 0xffff)


def carbon_keys(members):
    for host, _, inst in members:
        for i in range(100):
            yield ("('%s', %s):%d" % (host, "None" if inst is None
                                      else "'%s'" % inst, i)).encode()


def fnv_keys(members):
    for host, port, inst in members:
        for i in range(100):
            yield ("%d-%s" % (i, inst) if inst is not None
                   else "%d-%s:%d" % (i, host, port)).encode()


def collisions(positions):
    """Positions held by more than one ring entry."""
    seen, dup = set(), set()
    for p in positions:
        (dup if p in seen else seen).add(p)
    return dup


def names_at(targets, posfn, rnd, limit):
    """Names whose position is each of targets (as many as found within
    limit tries)."""
    found = {}
    targets = set(targets)
    for i in range(limit):
        if not targets:
            break
        n = ("hit.%d.%x" % (i, rnd.getrandbits(32))).encode()
        p = posfn(n)
        if p in targets:
            found[p] = n
            targets.discard(p)
    return list(found.values())


# ---------------------------------------------------------------------------
# names

WORDS = ["servers", "web", "db", "cpu", "load", "memory", "disk", "eth0",
         "collectd", "carbon", "agents", "requests", "latency", "p99", "count",
         "user", "system", "idle", "bytes", "rx", "tx", "cache", "hits"]
CHARS = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
         "_-.:+#@%[]{}()!$^&*=,<>?/|~")
UNICODE = "éüßøåñçłžあ日本語Ωπ€"


def random_names(rnd, n):
    names = set()
    while len(names) < n:
        r = rnd.random()
        if r < 0.5:
            parts = [rnd.choice(WORDS) for _ in range(rnd.randint(1, 7))]
            parts.insert(rnd.randint(0, len(parts)), "host%d" % rnd.randint(0, 999))
            s = ".".join(parts)
        elif r < 0.9:
            s = "".join(rnd.choice(CHARS) for _ in range(rnd.randint(1, 60)))
        else:
            s = "".join(rnd.choice(CHARS + UNICODE * 3)
                        for _ in range(rnd.randint(1, 30)))
        names.add(s.encode("utf-8"))
    return sorted(names, key=lambda _: rnd.random())


# ---------------------------------------------------------------------------
# running the two sides

def ringplace(t, kind, rep, members, names, opts=()):
    """ringplace's lines "name host:port ...", one per name."""
    tool = os.path.join(t.build, "tests", "ringplace")
    argv = [tool] + list(opts) + [kind, str(rep)] + [member_arg(m) for m in members]
    rc, out, err, _ = run(argv, RUN_TIMEOUT, b"".join(n + b"\n" for n in names))
    require(rc == 0, "ringplace exit %s: %s" % (rc, err.strip()[-300:]))
    got = out.split("\n")[:-1]
    require(len(got) == len(names), "ringplace printed %d lines for %d names"
            % (len(got), len(names)))
    return got


def crelay_conf(t, kind, rep, members):
    conf = "cluster c %s%s\n%s\n    ;\nmatch * send to c stop ;\n" % (
        kind, "" if kind == "any_of" else " replication %d" % rep,
        "".join("    %s\n" % member_arg(m) for m in members))
    return t.tmp.write("%s-%d.conf" % (kind, rep), conf)


# one result of carbon-c-relay -t: the name, the cluster, its members
RESULT = re.compile(r"^match\n    \* -> (.*)\n    \S+\(c\)\n((?:        .*\n)*)",
                    re.M)


def crelay_test(t, conf, names):
    """carbon-c-relay -t's placements as lines "name host:port ...", in
    input order."""
    data = b"".join(n + b" 1 1\n" for n in names)
    rc, out, err, _ = run([CRELAY, "-t", "-f", conf], RUN_TIMEOUT, data)
    require(rc == 0, "carbon-c-relay -t exit %s: %s" % (rc, err.strip()[-300:]))
    got = [" ".join([n] + ms.split()) for n, ms in RESULT.findall(out)]
    require(len(got) == len(names), "carbon-c-relay printed %d results for %d "
            "names" % (len(got), len(names)))
    return got


CLEAN = re.compile(rb"^[A-Za-z0-9_:#-]+(\.[A-Za-z0-9_:#-]+)*$")


def clean_names(rnd, names, n):
    """n names that orchester's ingest cleansing leaves as they are (so the
    metric orchester routes is the one carbon-c-relay -t is given): the
    clean ones of names, then more like them."""
    out = [x for x in names if CLEAN.match(x)]
    have = set(out)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:#"
    while len(out) < n:
        parts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12)))
                 for _ in range(rnd.randint(1, 6))]
        x = ".".join(parts).encode()
        if x not in have:
            have.add(x)
            out.append(x)
    return out[:n]


def orchester_test(t, conf, names):
    """orchester -t's placements, through the whole config and router path,
    as lines "name host:port ...", in input order.  Its output is one block
    per metric: the name, then the rule, the cluster, and each member
    indented by 12 spaces, then a blank line."""
    data = b"".join(n + b" 1 1\n" for n in names)
    orch = os.path.join(t.build, "relay", "orchester")
    rc, out, err, _ = run([orch, "-t", "-f", conf], RUN_TIMEOUT * 3, data)
    require(rc == 0, "orchester -t exit %s: %s" % (rc, err.strip()[-300:]))
    got = []
    for block in out.split("\n\n"):
        lines = block.split("\n")
        if not lines or not lines[0]:
            continue
        members = [ln.strip() for ln in lines[1:] if ln.startswith(" " * 12)]
        got.append(" ".join([lines[0]] + members))
    require(len(got) == len(names), "orchester -t printed %d results for %d "
            "names" % (len(got), len(names)))
    return got


def compare(got, exp, what):
    """Fail naming the differences between two lists of placement lines."""
    bad = [(g, e) for g, e in zip(got, exp) if g != e]
    if bad:
        g, e = bad[0]
        require(False, "%d of %d names differ from %s; first: orchester %r, "
                "%s %r" % (len(bad), len(exp), what, g, what, e))


# ---------------------------------------------------------------------------

CASES = [
    # label, kind, members, replications
    ("carbon_ch", "carbon_ch", plain8, (1, 2)),
    ("carbon_ch with instances", "carbon_ch", inst8, (1, 2)),
    ("carbon_ch with a shared host", "carbon_ch", shared8, (2,)),
    ("carbon_ch, 32 mixed members", "carbon_ch", mixed32, (2,)),
    ("fnv1a_ch", "fnv1a_ch", plain8, (1, 2)),
    ("fnv1a_ch with instances", "fnv1a_ch", fnvinst8, (2,)),
    ("fnv1a_ch, 32 mixed members", "fnv1a_ch", mixed32, (2,)),
    ("jump_fnv1a_ch", "jump_fnv1a_ch", plain8, (1, 2)),
    ("jump_fnv1a_ch with instances", "jump_fnv1a_ch", jumpinst8, (2, 3)),
    ("any_of", "any_of", plain8, (1,)),
]


def body(t):
    tool = os.path.join(t.build, "tests", "ringplace")
    with t.check("ringplace and carbon-c-relay are there", fatal=True):
        require(os.access(tool, os.X_OK), "%s is not an executable" % tool)
        require(os.access(CRELAY, os.X_OK), "%s is not installed" % CRELAY)

    rnd = random.Random(SEED)
    nnames = NNAMES_SANITIZED if sanitized(t.build) else NNAMES
    names = random_names(rnd, nnames)

    # names on the positions where entries collide, for each ring
    targets_md5, targets_fnv = set(), set()
    for _, kind, members, _ in CASES:
        if kind == "carbon_ch":
            targets_md5 |= collisions(md5pos(k) for k in carbon_keys(members()))
        elif kind == "fnv1a_ch":
            targets_fnv |= collisions(fnvpos(k) for k in fnv_keys(members()))
    py_nodes = [(h, i) for h, _, i in inst8()]
    py_raw = [md5pos(("%s:%d" % (n, i)).encode())
              for n in py_nodes for i in range(100)]
    for p in collisions(py_raw):
        targets_md5 |= {p, p + 1, p + 2}
    hits = names_at(targets_md5, md5pos, rnd, 1500000)
    hits += names_at(targets_fnv, fnvpos, rnd, 300000)
    with t.check("names on colliding positions found"):
        require(len(hits) >= len(targets_md5 | targets_fnv) // 2,
                "found %d names for %d positions"
                % (len(hits), len(targets_md5 | targets_fnv)))
    have = set(names)
    names += [h for h in hits if h not in have]
    clean = clean_names(rnd, names, nnames)

    for label, kind, members, reps in CASES:
        for rep in reps:
            with t.check("carbon-c-relay %s replication %d: %d names"
                         % (label, rep, len(names))):
                conf = crelay_conf(t, kind, rep, members())
                exp = crelay_test(t, conf, names)
                got = ringplace(t, kind, rep, members(), names)
                compare(got, exp, "carbon-c-relay")
            with t.check("orchester -t on the same config, %s replication %d: "
                         "%d names as carbon-c-relay places them"
                         % (label, rep, len(clean))):
                compare(orchester_test(t, conf, clean),
                        crelay_test(t, conf, clean), "carbon-c-relay")

    python_carbon(t, names, clean)
    tagged(t, rnd)


def python_carbon(t, names, clean):
    sys.path.insert(0, CARBON_PY)
    try:
        from carbon.hashing import ConsistentHashRing
        from carbon.routers import ConsistentHashingRouter
    except ImportError as e:
        with t.check("Python carbon imports"):
            require(False, str(e))
        return
    strs = [n.decode("utf-8") for n in names]
    members = inst8()
    arg = {(h, i): "%s:%d" % (h, p) for h, p, i in members}

    with t.check("Python carbon ConsistentHashRing, 8 destinations with "
                 "instances, replication 3: %d names" % len(names)):
        ring = ConsistentHashRing([(h, i) for h, _, i in members])
        exp = []
        for s in strs:
            nodes = [s]
            for node in ring.get_nodes(s):
                nodes.append(arg[node])
                if len(nodes) == 4:
                    break
            exp.append(" ".join(nodes))
        got = ringplace(t, "carbon_ch_graphite", 3, members, names)
        compare(got, exp, "Python carbon")

    with t.check("Python carbon ConsistentHashingRouter DIVERSE_REPLICAS, "
                 "replication 2: %d names" % len(names)):
        settings = types.SimpleNamespace(REPLICATION_FACTOR=2,
                                         DIVERSE_REPLICAS=True,
                                         ROUTER_HASH_TYPE=None)
        router = ConsistentHashingRouter(settings)
        for h, p, i in members:
            router.addDestination((h, p, i))
        exp = [" ".join([s] + ["%s:%d" % (h, p)
                               for h, p, _ in router.getDestinations(s)])
               for s in strs]
        got = ringplace(t, "carbon_ch_graphite", 2, members, names, ["-d"])
        compare(got, exp, "Python carbon")

    with t.check("orchester -t with 'carbon_ch graphite replication 2' places "
                 "%d names as Python carbon's router does" % len(clean)):
        conf = t.tmp.write("graphite.conf",
                           "cluster c carbon_ch graphite replication 2\n%s    ;\n"
                           "match * send to c stop ;\n"
                           % "".join("    %s\n" % member_arg(m) for m in members))
        exp = [" ".join([s.decode()] + ["%s:%d" % (h, p)
                                        for h, p, _ in router.getDestinations(s.decode())])
               for s in clean]
        compare(orchester_test(t, conf, clean), exp, "Python carbon")


def tagged(t, rnd):
    """A running carbon-c-relay places a tagged name by its part before the
    first ';'; so does ringplace."""
    kinds = [("carbon_ch", 2), ("fnv1a_ch", 2), ("jump_fnv1a_ch", 2),
             ("any_of", 1)]
    ntag = 400
    with t.check("carbon-c-relay daemon, tagged names: %d names, 4 clusters"
                 % ntag):
        sinks = {}
        clusters = []
        conf = []
        for ci, (kind, rep) in enumerate(kinds):
            members = []
            for i in range(3):
                s = t.sink()
                m = member("127.0.0.1", s.port, "m%d" % i)
                if kind in ("fnv1a_ch", "any_of"):
                    m = member("127.0.0.1", s.port)
                sinks["127.0.0.1:%d" % s.port] = s
                members.append(m)
            clusters.append((kind, rep, members))
            conf.append("cluster c%d %s%s\n%s    ;\n" % (
                ci, kind, "" if kind == "any_of" else " replication %d" % rep,
                "".join("    %s\n" % member_arg(m) for m in members)))
        lport = free_port()
        conf.append("listen type linemode\n    127.0.0.1:%d proto tcp\n    ;\n"
                    % lport)
        conf.append("match * send to c0 c1 c2 c3 stop ;\n")
        path = t.tmp.write("tagged.conf", "".join(conf))
        p = t.proc("carbon-c-relay", [CRELAY, "-f", path, "-H", "placement"])
        p.start()

        names = []
        for i in range(ntag):
            base = "tagged.%s.%d" % (rnd.choice(["cpu", "mem", "disk"]), i)
            tags = ";".join("%s=%s" % (k, rnd.randint(0, 99))
                            for k in rnd.sample(["dc", "host", "env", "rack"],
                                                rnd.randint(1, 3)))
            names.append(("%s;%s" % (base, tags)).encode())
        now = int(time.time())
        data = b"".join(b"%s 1 %d\n" % (n, now) for n in names)
        want = sum(rep for _, rep in kinds) * ntag

        def count():
            return sum(len(s.snapshot()) for s in sinks.values())

        def sent():
            require(p.alive(), "carbon-c-relay exited")
            return not send_tcp(lport, [data])

        wait_until(sent, 20.0, "carbon-c-relay to take the names")
        wait_until(lambda: count() >= want, 30.0,
                   "%d lines at the sinks" % want)
        where = {}
        for addr, s in sinks.items():
            for line in s.snapshot():
                where.setdefault(line.split(b" ")[0], set()).add(addr)
        bad = []
        for kind, rep, members in clusters:
            got = ringplace(t, kind, rep, members, names)
            addrs = {"%s:%d" % (h, p) for h, p, _ in members}
            for line in got:
                n, *ms = line.split(" ")
                exp = where.get(n.encode(), set()) & addrs
                if set(ms) != exp:
                    bad.append("%s %s: orchester %s, carbon-c-relay %s"
                               % (kind, n, sorted(ms), sorted(exp)))
        require(not bad, "%d differ; first: %s" % (len(bad), bad[0] if bad else ""))


if __name__ == "__main__":
    Test().run(body)
