#!/usr/bin/python3
"""
test_carbon_aggregator_diff.py -- orchester's `aggregation rules FILE` against
Debian's carbon-aggregator (graphite-carbon 1.1.7) on the same rules file.

Two pairs run side by side, every socket on 127.0.0.1:

  aggregates  carbon-aggregator (FORWARD_ALL = False, line protocol to sink
              A) and orchester (`aggregation rules FILE ... send to a stop ;`,
              sink B) read tests/data/carbonagg/aggregation-rules.conf: every
              method, <name> and <<name>>, several outputs from one input, a
              prefix and suffix around a placeholder, '*' in a field, a rule
              that matches nothing.  The same lines, with explicit timestamps,
              go to both.  The (metric, timestamp) sets must be equal; the
              values too (within 1e-9 + 1e-12 * |v|: carbon writes %.10f),
              the percentiles included: orchester's pNN is carbon's,
              interpolated between the ranks around p * (n - 1) (with
              `percentiles by nearest rank` they would be orchester's own,
              tests/test_carbonagg.c).  carbon re-emits a bucket when data arrive for
              it; its last value per (metric, timestamp) counts.
  forward     carbon-aggregator with FORWARD_ALL = True, orchester with
              `aggregation rules FILE send to c ;` then `match * send to c ;`:
              the datapoints passed on unaggregated must be the same.

Timestamps are placed so that orchester's window (expire = (5 + 1) *
frequency, carbon's MAX_AGGREGATION_INTERVALS = 5) takes every datapoint and
emits within a few seconds; see docs/aggregation.rst, "carbon-aggregator's
rules".
"""
import math
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, check_build,  # noqa: E402
                     send_tcp, tcp_accepts, GiveUp, WaitTimeout)

CARBON = "/usr/bin/carbon-aggregator"
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(SRC, "tests", "data", "carbonagg", "aggregation-rules.conf")
MAX_INTERVALS = 5  # carbon's default MAX_AGGREGATION_INTERVALS


def tol(v):
    return 1e-9 + 1e-12 * abs(v)


# ---- what carbon-aggregator computes (carbon/aggregator/rules.py) ----------

def p_interp(values, factor):
    """carbon's percentile(): linear between the ranks around factor*(n-1)."""
    v = sorted(values)
    rank = factor * (len(v) - 1)
    lo, hi = int(math.floor(rank)), int(math.ceil(rank))
    if lo == hi:
        return v[lo]
    return v[lo] * (hi - rank) + v[hi] * (rank - lo)


def p_nearest(values, n):
    """orchester's percentile<N> (docs/aggregation.rst): rank
    (int)(N / 100.0 * count + 0.9), at least 1."""
    v = sorted(values)
    k = max(1, int(n / 100.0 * len(v) + 0.9))
    return v[k - 1]


# ---- the input ---------------------------------------------------------------

def make_input(t0):
    """Lines (metric, value, ts) for the rules file, placed relative to t0 so
    that orchester's window takes them (a bucket starting at s is taken while
    s >= now - 6f, and emitted by s + 6f + f + 1), and the expected outputs:
    {(metric, ts): (method, [values])}."""
    lines = []

    def starts(f):
        # the oldest bucket start sure to be in the window when the lines
        # arrive up to 2 s after t0, and the one after it
        s = t0 + 2 - (MAX_INTERVALS + 1) * f
        s += (-s) % f
        return s, s + f

    # requests (2 s): 1, 2, 3 and 5 hosts per bucket, for two apps
    r1, r2 = starts(2)
    req = {
        ("prod", "web", r1): [12.5, -3.0, 7.25],
        ("prod", "web", r2): [1.0, 2.0, 3.0, 4.0, 5.5],
        ("prod", "api", r1): [42.0],
        ("prod", "api", r2): [0.1, 0.2],
        ("stage", "web", r1): [1e6, 2.5e6, -7.125, 3.0],
    }
    for (env, app, s), vals in req.items():
        for i, v in enumerate(vals):
            lines.append(("%s.applications.%s.h%d.requests" % (env, app, i + 1),
                          v, s + (i % 2)))
    # latency (3 s): counts 1..6, so both formulas meet and part
    l1, l2 = starts(3)
    lat = {
        ("prod", "web", l1): [130.0, 110.0, 120.0],             # odd: p50 agrees
        ("prod", "web", l2): [5.0, 1.0, 4.0, 2.0, 3.0, 10.0],   # even
        ("prod", "api", l1): [7.5],                             # one value
        ("prod", "api", l2): [1.0, 3.0],
    }
    for (env, app, s), vals in lat.items():
        for i, v in enumerate(vals):
            lines.append(("%s.applications.%s.h%d.latency" % (env, app, i + 1),
                          v, s + (i % 3)))
    # servers.*.<<metric>> (3 s)
    srv = {
        ("cpu.user", l1): [10.0, 20.0, 30.5],
        ("cpu.system", l1): [1.5],
        ("disk.sda.io.reads", l2): [100.0, 250.0],
    }
    for (m, s), vals in srv.items():
        for i, v in enumerate(vals):
            lines.append(("servers.host%d.%s" % (i + 1, m), v, s + 2))
    # queues (2 s): q_<queue>_depth.*
    qs = {("mail", r1): [3.0, 4.0, 5.0], ("sms", r2): [0.5, 0.25]}
    for (q, s), vals in qs.items():
        for i, v in enumerate(vals):
            lines.append(("prod.queues.q_%s_depth.worker%d" % (q, i), v, s))
    # cache-*.hits (5 s)
    c1, c2 = starts(5)
    ch = {c1: [100.0, 300.0, 200.0], c2: [50.0]}
    for s, vals in ch.items():
        for i, v in enumerate(vals):
            lines.append(("prod.cache-%d.hits" % i, v, s + 4))
    # names no rule matches (nothing.<x>.total's input is never sent)
    lines.append(("prod.applications.web.requests", 9.0, r1))  # one field short
    lines.append(("servers.cpu", 9.0, l1))                     # nothing after *
    lines.append(("prod.queues.mail_depth.w1", 9.0, r1))       # no q_ prefix
    lines.append(("never.x.sent.not", 9.0, r1))

    return lines


def model(lines):
    """What carbon-aggregator's source says it emits for lines, as
    {(metric, ts): (method, [values in arrival order])}: a datapoint goes to
    every rule it matches, bucket ts - ts % frequency, written at the
    bucket's start.  The rules are those of RULES, matched here by hand."""
    out = {}

    def add(metric, method, f, ts, v):
        s = ts - ts % f
        out.setdefault((metric, s), (method, []))[1].append(v)

    for m, v, ts in lines:
        p = m.split(".")
        if len(p) == 5 and p[1] == "applications" and p[4] == "requests":
            base = "%s.applications.%s.all." % (p[0], p[2])
            for suffix, method in (("requests", "sum"), ("requests_avg", "avg"),
                                   ("requests_min", "min"), ("requests_max", "max"),
                                   ("hosts", "count")):
                add(base + suffix, method, 2, ts, v)
        elif len(p) == 5 and p[1] == "applications" and p[4] == "latency":
            base = "%s.applications.%s.all." % (p[0], p[2])
            for pc in ("p50", "p90", "p99"):
                add(base + "latency_" + pc, pc, 3, ts, v)
        elif p[0] == "servers" and len(p) >= 3:
            add("servers.all." + ".".join(p[2:]), "sum", 3, ts, v)
        elif (len(p) == 4 and p[1] == "queues" and p[2].startswith("q_")
              and p[2].endswith("_depth") and len(p[2]) > len("q__depth")):
            add("%s.queues.%s.total_depth" % (p[0], p[2][2:-6]), "sum", 2, ts, v)
        elif len(p) == 3 and p[1].startswith("cache-") and p[2] == "hits":
            add(p[0] + ".cache.hits", "sum", 5, ts, v)
            add(p[0] + ".cache.hits_max", "max", 5, ts, v)
    return out


def carbon_value(method, vals):
    if method == "sum":
        return sum(vals)
    if method == "avg":
        return float(sum(vals)) / len(vals)
    if method == "min":
        return min(vals)
    if method == "max":
        return max(vals)
    if method == "count":
        return len(vals)
    return p_interp(vals, int(method[1:]) / 100.0)


# ---- the daemons -----------------------------------------------------------------

class CarbonAggregator:
    """A private carbon-aggregator in the foreground: its own carbon.conf
    ([aggregator] section only: the one it reads), line receiver on
    127.0.0.1, pickle receiver on 127.0.0.1, no UDP, no AMQP, no manhole,
    no self metrics, line protocol to one destination."""

    def __init__(self, t, name, dest_port, forward_all):
        self.dir = t.tmp.join(name)
        self.name = name
        self.line_port = free_port()
        self.pickle_port = free_port()
        self.dest_port = dest_port
        self.forward_all = forward_all
        self.t = t
        self.proc = None

    def start(self):
        for sub in ("", "storage", "storage/whisper", "log", "pid", "lists"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        conf = os.path.join(self.dir, "carbon.conf")
        with open(conf, "w") as f:
            f.write("""[aggregator]
STORAGE_DIR = %(dir)s/storage/
LOCAL_DATA_DIR = %(dir)s/storage/whisper/
WHITELISTS_DIR = %(dir)s/lists/
CONF_DIR = %(dir)s/
LOG_DIR = %(dir)s/log/
PID_DIR = %(dir)s/pid/
ENABLE_LOGROTATION = False
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %(line)d
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %(pickle)d
ENABLE_UDP_LISTENER = False
ENABLE_AMQP = False
ENABLE_MANHOLE = False
DESTINATIONS = 127.0.0.1:%(dest)d
DESTINATION_PROTOCOL = line
FORWARD_ALL = %(fwd)s
MAX_AGGREGATION_INTERVALS = %(maxi)d
AGGREGATION_RULES = %(rules)s
LOG_AGGREGATOR_MISSES = False
CARBON_METRIC_INTERVAL = 0
USE_FLOW_CONTROL = False
""" % {"dir": self.dir, "line": self.line_port, "pickle": self.pickle_port,
                "dest": self.dest_port, "fwd": "True" if self.forward_all else "False",
                "maxi": MAX_INTERVALS, "rules": RULES})
        # carbon's settings loader insists on one, even where nothing is
        # written
        with open(os.path.join(self.dir, "storage-schemas.conf"), "w") as f:
            f.write("[default]\npattern = .*\nretentions = 1s:1d\n")
        env = dict(os.environ)
        env["GRAPHITE_ROOT"] = self.dir
        env["GRAPHITE_CONF_DIR"] = self.dir
        self.proc = self.t.proc("carbon-aggregator-" + self.name, [
            CARBON, "--config=" + conf, "--nodaemon", "--debug",
            "--rules=" + RULES, "--logdir=" + os.path.join(self.dir, "log"),
            "--pidfile=" + os.path.join(self.dir, "pid", "carbon-aggregator.pid"),
            "start"], env=env)
        self.proc.start()
        return self

    def wait_ready(self, sink, timeout=30.0):
        """Until it accepts lines and has connected to its destination."""
        def ready():
            if not self.proc.alive():
                raise GiveUp("carbon-aggregator exited with %s: %s"
                             % (self.proc.returncode, self.proc.stderr_tail(800)))
            return tcp_accepts(self.line_port) and sink.accepted > 0
        wait_until(ready, timeout, "carbon-aggregator to accept connections on %d"
                   " and connect to its destination" % self.line_port, interval=0.1)


def parse(lines):
    """[(metric, value, ts)] of sink lines (carbon's self metrics left out)."""
    out = []
    for raw in lines:
        f = raw.decode().split()
        if len(f) != 3 or f[0].startswith("carbon."):
            continue
        out.append((f[0], float(f[1]), int(f[2])))
    return out


def last_values(recs):
    d = {}
    for m, v, ts in recs:
        d[(m, ts)] = v
    return d


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)
        require(os.access(CARBON, os.X_OK),
                "%s is missing (apt-get install graphite-carbon)" % CARBON)
        require(os.path.exists(RULES), "no %s" % RULES)

    ca_sink, co_sink = t.sink(), t.sink()   # aggregates: carbon, orchester
    fa_sink, fo_sink = t.sink(), t.sink()   # forward: carbon, orchester
    with t.check("carbon-aggregator starts (twice: FORWARD_ALL False and True)",
                 fatal=True):
        cagg = CarbonAggregator(t, "agg", ca_sink.port, False).start()
        cfwd = CarbonAggregator(t, "fwd", fa_sink.port, True).start()

    with t.check("orchester starts with the same rules file (twice)", fatal=True):
        p1, p2 = free_port(), free_port()
        o1 = t.start_orchester("orchester-agg", """listen type linemode transport plain 127.0.0.1:%d proto tcp ;
cluster a forward 127.0.0.1:%d ;
aggregation rules %s send to a stop ;
""" % (p1, co_sink.port, RULES), tcp_ports=(p1,))
        o2 = t.start_orchester("orchester-fwd", """listen type linemode transport plain 127.0.0.1:%d proto tcp ;
cluster c forward 127.0.0.1:%d ;
aggregation rules %s send to c ;
match * send to c ;
""" % (p2, fo_sink.port, RULES), tcp_ports=(p2,))
        cagg.wait_ready(ca_sink)
        cfwd.wait_ready(fa_sink)

    t0 = int(time.time())
    lines = make_input(t0)
    exp = model(lines)
    text = "".join("%s %r %d\n" % (m, v, ts) for m, v, ts in lines).encode()
    started = time.time()
    with t.check("the same %d lines go to all four" % len(lines), fatal=True):
        require(time.time() - t0 < 2, "the daemons were slow to start")
        for port in (cagg.line_port, cfwd.line_port, p1, p2):
            send_tcp(port, [text], timeout=10.0)

    def alive():
        for p in (cagg.proc, cfwd.proc, o1, o2):
            if not p.alive():
                raise GiveUp("%s exited with %s" % (p.name, p.returncode))

    box = {}

    def agree():
        alive()
        c = last_values(parse(ca_sink.snapshot()))
        o = parse(co_sink.snapshot())
        box["c"], box["o"], box["orecs"] = c, last_values(o), o
        if not (set(exp) <= set(c) and set(exp) <= set(box["o"])):
            return False
        # carbon may still re-emit a bucket it had emitted in part
        for k, (method, vals) in exp.items():
            if abs(c[k] - carbon_value(method, vals)) > tol(c[k]):
                return False
        return True

    with t.check("both emit every aggregate the rules make (bounded wait)"):
        try:
            wait_until(agree, 30.0, "every aggregate from both", interval=0.1)
        except WaitTimeout:
            missing_c = sorted(set(exp) - set(box.get("c", {})))
            missing_o = sorted(set(exp) - set(box.get("o", {})))
            if not missing_c and not missing_o:
                raise WaitTimeout("carbon-aggregator's values did not settle "
                                  "on its formulas (the checks below say where)")
            raise WaitTimeout("missing from carbon-aggregator %r, from orchester %r"
                              % (missing_c[:8], missing_o[:8]))
        sys.stderr.write("# %d aggregates from each, %.1f s after sending\n"
                         % (len(exp), time.time() - started))

    c, o = box["c"], box["o"]

    with t.check("the same (metric, timestamp) set; the rule matching nothing emits nothing"):
        require(set(c) == set(o), "carbon only %r; orchester only %r"
                % (sorted(set(c) - set(o))[:8], sorted(set(o) - set(c))[:8]))
        require(set(c) == set(exp), "beyond the model: %r" % sorted(set(c) - set(exp))[:8])
        require(not any(m.startswith("nothing.") for m, _ in c), "nothing.* came out")

    with t.check("orchester emits each bucket once"):
        keys = [(m, ts) for m, _, ts in box["orecs"]]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        require(not dup, "emitted more than once: %r" % dup[:8])

    with t.check("carbon-aggregator's values are its source's formulas"):
        bad = [(k, c[k], carbon_value(*exp[k])) for k in sorted(exp)
               if abs(c[k] - carbon_value(*exp[k])) > tol(c[k])]
        require(not bad, "%r" % bad[:8])

    with t.check("every method, pNN included: orchester's values are "
                 "carbon's"):
        bad, n, npct = [], 0, 0
        for k in sorted(exp):
            n += 1
            npct += exp[k][0].startswith("p")
            if abs(o[k] - c[k]) > tol(c[k]):
                bad.append((k, c[k], o[k]))
        require(not bad, "(key, carbon, orchester) %r" % bad[:8])
        # the input must tell the two percentile formulas apart, or the
        # check above would not see a nearest-rank pNN
        differ = sum(1 for k in exp if exp[k][0].startswith("p") and
                     abs(carbon_value(*exp[k]) -
                         p_nearest(exp[k][1], int(exp[k][0][1:]))) >
                     tol(carbon_value(*exp[k])))
        require(differ > 0, "no bucket where the percentile formulas differ")
        sys.stderr.write("# %d aggregates equal, %d of them percentiles (%d "
                         "where nearest rank would differ)\n"
                         % (n, npct, differ))

    with t.check("FORWARD_ALL = True against `match *` after the statement: "
                 "the same datapoints passed on"):
        sent = {(m, v, ts) for m, v, ts in lines}
        aggr = set(exp)

        def fwd(sink):
            return {(m, v, ts) for m, v, ts in parse(sink.snapshot())
                    if (m, ts) not in aggr}

        def both():
            alive()
            return fwd(fa_sink) >= sent and fwd(fo_sink) >= sent
        try:
            wait_until(both, 15.0, "the forwarded datapoints", interval=0.1)
        except WaitTimeout:
            raise WaitTimeout("carbon lacks %r, orchester lacks %r"
                              % (sorted(sent - fwd(fa_sink))[:5],
                                 sorted(sent - fwd(fo_sink))[:5]))
        require(fwd(fa_sink) == fwd(fo_sink) == sent, "carbon %d, orchester %d, sent %d"
                % (len(fwd(fa_sink)), len(fwd(fo_sink)), len(sent)))

    with t.check("the forwarding pair's aggregates agree too"):
        def agg(sink):
            return {k: v for k, v in last_values(parse(sink.snapshot())).items()
                    if k in aggr}
        wait_until(lambda: set(agg(fa_sink)) == aggr and set(agg(fo_sink)) == aggr,
                   15.0, "the forwarding pair's aggregates", interval=0.1)
        ca, oa = agg(fa_sink), agg(fo_sink)
        bad = [(k, ca[k], oa[k]) for k in sorted(aggr) if not exp[k][0].startswith("p")
               and abs(ca[k] - oa[k]) > tol(ca[k])]
        require(not bad, "%r" % bad[:8])


if __name__ == "__main__":
    Test().run(body)
