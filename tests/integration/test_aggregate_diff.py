#!/usr/bin/python3
r"""
test_aggregate_diff.py -- the aggregate statement, differential against
Debian's carbon-c-relay 3.7.3 (/usr/bin/carbon-c-relay).

    /usr/bin/python3 tests/integration/test_aggregate_diff.py BUILD_DIR

Each configuration in CONFIGS runs on one carbon-c-relay and on one
orchester, with the same rules (only the listen statement, the cluster
member ports and orchester's control statement differ), its clusters
pointed at sinks of its own.  The same input lines, with explicit
timestamps, go to both relays of a configuration at the same moment, so
both share the same "now".

Time line (every rule: every 2 seconds expire after 5 seconds, unless said
otherwise).  The test waits (bounded) until the wall clock is just past a
multiple of 2 s, A.  Timestamps are P = A-2 (the bucket before), C = A
(the current bucket), F = A+2 (the next one), OLD = A-30 and NEW = A+12.
A series made at A+0.x has the window [A-6, A+4): P, C and F are inside,
OLD is too old, NEW too new.  Bucket P is final at A+4 or A+5 (its splay),
F at A+8 or A+9.  No timestamp falls in [A-6, A-2): those buckets are final
at once and an emission in the middle of a batch would make the run racy.

  batch 1 (at A+0.x): every configuration's input
  batch 2 (at A+2.x, before P is final): late data for `late`, inside
          the window (counted in its bucket), and too old again
  batch 3 (once both relays emitted late's bucket P): a datapoint for that
          emitted bucket (too old now: dropped by both) and one for the
          still open bucket F (counted)

The configurations (CONFIGS):
  computes   every compute (sum count cnt max min average avg median
             percentile10/25/75/90/99 variance stddev) in one rule; odd and
             even counts, duplicates, negatives, a single value, values
             near 1e9; default timestamp (end)
  floats     sum count max min average variance stddev of non-integer,
             tiny, large and negative values; timestamp at middle
  timestamps four aggregates over the same metrics: start, middle, end, and
             the default
  templates  two expressions in one rule; \1, \2, three groups, no group,
             one group used twice
  sendto     send to two clusters: the outputs reach both and not the
             match rule after it; the inputs go on to it
  reroute    no send to: the outputs go through routing from the top (a
             rewrite before the aggregate renames one, a match after it
             takes them with stop)
  chain      no send to: the outputs match a match rule before the
             aggregate (no stop), a second aggregate placed before the first
             (which aggregates them again), and the match after it
  stop       aggregate ... send to ... stop, an aggregate with send to and
             without stop, one without either (its outputs routed from the
             top): the input reaches the later aggregate and match rules
             only without stop
  late       the three batches above; also the aggregator counters:
             carbon-c-relay's statistics (submitted every second) against
             orchester's status counters, and orchester's per-rule counters
             against hand counts
  overlap    several aggregates over the same metrics with different
             expressions; two computes of one rule writing to one name; two
             rules writing to one name (two series each, as carbon-c-relay)
  odd        every 3 seconds expire after 4 seconds (timestamps from T,
             the start of the 3 s bucket the clock was in at A): middle is
             start + 1 (integer seconds), and start
  close      the one documented difference, below

Grammar: a few statement variants (GRAMMAR) are read by both with -t -t;
both must accept each or both refuse it.  carbon-c-relay 3.7.3 refuses
`stop` without `send to` ("syntax error, expecting ';'"); orchester reads
the statement as carbon-c-relay 3.7.3 does (docs/configuration.rst), so
that check fails while orchester accepts it.  (This is also why no
configuration here has `stop` without `send to`.)

For every sink of every configuration the lines of both relays are
compared as multisets: the lines that are input lines passed on by a match
rule must be equal byte for byte; the aggregate outputs must have the same
names and timestamps, and values within the tolerance below (for a name and
timestamp that occur more than once, the sorted values are compared pair by
pair).  Each sink must also hold the hand-counted number of lines, and a
few values are checked against hand computations.  Lines starting with
"carbon.relays." (either relay's own statistics) are ignored.  With
AGGDIFF_DUMP=1 in the environment every sink's lines go to stderr.

Intended differences, tolerated exactly so:
  1. Value formatting: carbon-c-relay prints values with %f (six
     decimals), orchester the shortest decimal that reads back to the
     double.  Values are compared numerically:
         |orchester - carbon-c-relay| <= 5e-7 + 1e-12 * |carbon-c-relay|
     (half a unit of the sixth decimal, plus a relative 1e-12 for values
     so large that %f prints every digit).  count is an integer on both.
  2. median and percentile order: carbon-c-relay 3.7.3 sorts the values by
     the integer part of their differences, so values less than 1 apart are
     not ordered; orchester sorts by value.  All median/percentile inputs
     of the differential part are integers (never more than 2^31 apart).
     The `close` configuration (1.5 1.2 1.9 1.1 1.7) checks that orchester
     gives the true nearest-rank values (median 1.5, percentile25 1.2,
     percentile75 1.7, percentile90 1.9); carbon-c-relay's answers are
     written to stderr only.  Its sum, min and max are compared as usual.
  3. A percentile rank below 1 (N * n < 10): carbon-c-relay reads out of
     bounds; no rule here has one (percentile10 with n >= 1 is rank 1).
"""
import collections
import os
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, wait_until, tcp_accepts,  # noqa: E402
                     check_build, ctl_status, GiveUp, HOST, run)

CRELAY = "/usr/bin/carbon-c-relay"
HOSTNAME = "aggdiff"           # -H for carbon-c-relay: carbon.relays.aggdiff.*
SELF_PREFIX = b"carbon.relays."
INTERVAL = 2
EXPIRE = 5
ABS_TOL = 5e-7
REL_TOL = 1e-12
# Bounds; a passing run never waits for them.
DONE_TIMEOUT = 25.0            # from batch 3 until every output is in
STATS_TIMEOUT = 10.0

EVERY = "every %d seconds expire after %d seconds" % (INTERVAL, EXPIRE)

# ---------------------------------------------------------------------------
# the configurations: rules (the same text on both relays), the clusters
# (one sink each), the input lines per batch as (name, value, timestamp
# label), and the number of lines each sink must get.

CONFIGS = collections.OrderedDict()

CONFIGS["computes"] = dict(
    clusters=["out", "raw"],
    rules=r"""aggregate ^cmp\.([a-z]+)$
    %(every)s
    compute sum write to cmp_out.\1.sum
    compute count write to cmp_out.\1.count
    compute cnt write to cmp_out.\1.cnt
    compute max write to cmp_out.\1.max
    compute min write to cmp_out.\1.min
    compute average write to cmp_out.\1.average
    compute avg write to cmp_out.\1.avg
    compute median write to cmp_out.\1.median
    compute percentile10 write to cmp_out.\1.p10
    compute percentile25 write to cmp_out.\1.p25
    compute percentile75 write to cmp_out.\1.p75
    compute percentile90 write to cmp_out.\1.p90
    compute percentile99 write to cmp_out.\1.p99
    compute variance write to cmp_out.\1.variance
    compute stddev write to cmp_out.\1.stddev
    send to out
    ;
match * send to raw ;
""",
    batches=[[("cmp.odd", v, ts) for v, ts in
              ((12, "P"), (-3, "P+1"), (40, "P"), (7, "P+1"), (7, "P"),
               (100, "P+1"), (-25, "P"))] +
             [("cmp.even", v, "C" if i % 2 else "C+1")
              for i, v in enumerate((7, 3, 10, 1, 6, 2, 9, 5, 8, 4))] +
             [("cmp.one", 42, "F+1")] +
             [("cmp.neg", v, "C+1") for v in (-3, -1, 2, -7)] +
             [("cmp.big", v, "P+1") for v in
              (1000000000, 1000000005, 999999990, 1000000001)]],
    # 5 buckets (odd P, even C, one F, neg C, big P) x 15 computes
    expect={"out": 75, "raw": 26},
)

CONFIGS["floats"] = dict(
    clusters=["out", "raw"],
    rules=r"""aggregate ^flt\.([a-z]+)$
    %(every)s
    timestamp at middle of bucket
    compute sum write to flt_out.\1.sum
    compute count write to flt_out.\1.count
    compute max write to flt_out.\1.max
    compute min write to flt_out.\1.min
    compute average write to flt_out.\1.average
    compute variance write to flt_out.\1.variance
    compute stddev write to flt_out.\1.stddev
    send to out
    ;
match * send to raw ;
""",
    batches=[[("flt.a", v, ts) for v, ts in
              (("0.1", "P"), ("0.2", "P+1"), ("0.7", "P"), ("-2.5", "P+1"),
               ("3.25e-7", "P"), ("1234567.891", "P+1"))] +
             [("flt.b", v, "C+1") for v in ("1e9", "-1e9", "3", "0.001")] +
             [("flt.c", v, "F") for v in ("-0.000001", "0.0000004")]],
    expect={"out": 21, "raw": 12},
)

CONFIGS["timestamps"] = dict(
    clusters=["out", "raw"],
    rules="".join(r"""aggregate ^ts\.([a-z]+)$
    %%(every)s
    %s
    compute sum write to ts_out.%s.\1.sum
    compute count write to ts_out.%s.\1.count
    send to out
    ;
""" % (clause, pos, pos) for pos, clause in (
        ("start", "timestamp at start of bucket"),
        ("middle", "timestamp at middle of bucket"),
        ("end", "timestamp at end of bucket"),
        ("default", ""))) + "match * send to raw ;\n",
    batches=[[("ts.a", 5, "P+1"), ("ts.a", 6, "C"), ("ts.a", 7, "F+1"),
              ("ts.b", 1, "P"), ("ts.b", 2, "P+1")]],
    # 4 buckets x 2 computes x 4 rules
    expect={"out": 32, "raw": 5},
)

CONFIGS["templates"] = dict(
    clusters=["out", "raw"],
    rules=r"""aggregate
        ^tpl\.([a-z]+)\.([a-z]+)\.([0-9]+)$
        ^tplx\.([a-z]+)-([a-z]+)-([0-9]+)$
    %(every)s
    compute sum write to tpl_out.\1.\2.sum
    compute max write to tpl_out.\2.by.\1.max
    compute count write to tpl_out.all.count
    compute min write to tpl_out.\1.\3.\1.min
    compute sum write to tpl_out.\3_\2-\1.sum
    send to out
    ;
match * send to raw ;
""",
    batches=[[("tpl.web.cpu.1", 10, "P"), ("tpl.web.cpu.2", 20, "P+1"),
              ("tpl.db.cpu.1", 30, "P"), ("tpl.web.mem.1", 40, "C"),
              ("tplx.db-mem-2", 50, "C+1"), ("tplx.web-cpu-3", 60, "P+1")]],
    # sum 4, max 4, count 2, min 6, sum by three groups 6
    expect={"out": 22, "raw": 6},
)

CONFIGS["sendto"] = dict(
    clusters=["out1", "out2", "raw"],
    rules=r"""aggregate ^snd\.([a-z]+)$
    %(every)s
    compute sum write to snd_out.\1.sum
    compute max write to snd_out.\1.max
    send to out1 out2
    ;
match * send to raw ;
""",
    batches=[[("snd.a", 1, "P"), ("snd.a", 2, "P+1"), ("snd.a", 3, "C"),
              ("snd.b", 4, "C+1")]],
    expect={"out1": 6, "out2": 6, "raw": 4},
)

CONFIGS["reroute"] = dict(
    clusters=["routed", "raw"],
    rules=r"""rewrite ^rr_out\.([a-z]+)\.count$ into rr_out.\1.cnt_rw ;
aggregate ^rr\.([a-z]+)$
    %(every)s
    compute sum write to rr_out.\1.sum
    compute count write to rr_out.\1.count
    ;
match ^rr_out\. send to routed stop ;
match * send to raw ;
""",
    batches=[[("rr.a", 1, "P"), ("rr.a", 2, "P+1"), ("rr.a", 3, "C+1"),
              ("rr.b", 4, "F")]],
    expect={"routed": 6, "raw": 4},
)

CONFIGS["chain"] = dict(
    clusters=["seen", "out", "raw"],
    rules=r"""match ^ch_l1\. send to seen ;
aggregate ^ch_l1\.([a-z]+)\.sum$
    every 2 seconds expire after 6 seconds
    compute sum write to ch_l2.total
    compute count write to ch_l2.n
    compute max write to ch_l2.\1.max
    send to out
    ;
aggregate ^ch\.([a-z]+)\.[a-z]+$
    %(every)s
    compute sum write to ch_l1.\1.sum
    compute max write to ch_l1.\1.max
    ;
match * send to raw ;
""",
    batches=[[("ch.a.x", 1, "P"), ("ch.a.y", 2, "P+1"), ("ch.b.x", 5, "P+1"),
              ("ch.a.x", 10, "C"), ("ch.b.y", 20, "C+1")]],
    # level 1: (a, b) x (P, C) x (sum, max) = 8, to seen and raw;
    # level 2: total 2, n 2, max 4
    expect={"seen": 8, "out": 8, "raw": 5 + 8},
)

CONFIGS["stop"] = dict(
    clusters=["out", "raw", "other"],
    rules=r"""aggregate ^st\.yes\.([a-z]+)$
    %(every)s
    compute sum write to st_out.yes.\1
    send to out
    stop
    ;
aggregate ^st\.no\.([a-z]+)$
    %(every)s
    compute sum write to st_out.no.\1
    send to out
    ;
aggregate ^st\.rr\.([a-z]+)$
    %(every)s
    compute sum write to st_out.rr.\1
    ;
aggregate ^st\.
    %(every)s
    compute count write to st_out.all.count
    send to out
    ;
match ^st\. send to raw ;
match * send to other ;
""",
    batches=[[("st.yes.a", 1, "P"), ("st.yes.a", 2, "C"), ("st.no.a", 3, "P+1"),
              ("st.no.b", 4, "C+1"), ("st.rr.a", 5, "P")]],
    # out: yes 2, no 2, all 2 (st.no and st.rr, in P and C; st.yes
    # stopped); raw: st.no.a st.no.b st.rr.a; other: the same three (no
    # stop in the match) and st_out.rr.a (routed from the top)
    expect={"out": 6, "raw": 3, "other": 4},
)

CONFIGS["late"] = dict(
    clusters=["out", "raw", "stats"],
    rules=r"""statistics submit every 1 seconds send to stats ;
aggregate ^late\.([a-z]+)$
    %(every)s
    compute sum write to late_out.\1.sum
    compute count write to late_out.\1.count
    compute max write to late_out.\1.max
    send to out
    ;
match * send to raw ;
""",
    batches=[
        [("late.a", 1, "P"), ("late.a", 2, "P+1"), ("late.a", 3, "C"),
         ("late.a", 4, "F"), ("late.a", 100, "OLD"), ("late.a", 200, "NEW")],
        [("late.a", 10, "P+1"), ("late.a", 20, "C+1"), ("late.a", 300, "OLD"),
         ("late.b", 7, "P")],
        [("late.a", 1000, "P"), ("late.a", 40, "F+1")],
    ],
    # late.a P (1 2 10), C (3 20), F (4 40); late.b P (7); x 3 computes
    expect={"out": 12, "raw": 12},
    stats=True,
)

CONFIGS["overlap"] = dict(
    clusters=["out", "raw"],
    rules=r"""aggregate ^ov\.([a-z]+)\.([a-z]+)$
    %(every)s
    compute sum write to ov_out.\1.sum
    compute max write to ov_out.\1.max
    send to out
    ;
aggregate ^ov\.a\.
    %(every)s
    timestamp at start of bucket
    compute sum write to ov_out.a_only.sum
    compute count write to ov_out.a_only.count
    send to out
    ;
aggregate ^ov\.
    %(every)s
    compute sum write to ov_out.same
    compute max write to ov_out.same
    send to out
    ;
aggregate ^ov\.([a-z]+)\.x$
    %(every)s
    compute min write to ov_out.\1.sum
    send to out
    ;
match * send to raw ;
""",
    batches=[[("ov.a.x", 1, "P"), ("ov.a.y", 2, "P+1"), ("ov.b.x", 4, "P+1"),
              ("ov.a.x", 8, "C"), ("ov.b.y", 16, "C+1")]],
    # rule 1: 8, rule 2: 4, rule 3: 4, rule 4: 3
    expect={"out": 19, "raw": 5},
)

CONFIGS["odd"] = dict(
    clusters=["out", "raw"],
    rules=r"""aggregate ^odd\.([a-z]+)$
    every 3 seconds expire after 4 seconds
    timestamp at middle of bucket
    compute sum write to odd_out.\1.sum
    compute median write to odd_out.\1.median
    compute count write to odd_out.\1.count
    send to out
    ;
aggregate ^odd\.a$
    every 3 seconds expire after 4 seconds
    timestamp at start of bucket
    compute max write to odd_out.a.start_max
    send to out
    ;
match * send to raw ;
""",
    batches=[[("odd.a", 4, "T"), ("odd.a", 9, "T+1"), ("odd.a", 1, "T+2"),
              ("odd.a", 6, "T+3"), ("odd.b", 2, "T+3"), ("odd.b", 8, "T+3")]],
    # rule 1: a T, a T+3, b T+3 x 3 computes; rule 2: a T, a T+3
    expect={"out": 11, "raw": 6},
)

CONFIGS["close"] = dict(
    clusters=["out"],
    rules=r"""aggregate ^close\.([a-z]+)$
    %(every)s
    compute median write to close_out.\1.median
    compute percentile25 write to close_out.\1.p25
    compute percentile75 write to close_out.\1.p75
    compute percentile90 write to close_out.\1.p90
    compute sum write to close_out.\1.sum
    compute min write to close_out.\1.min
    compute max write to close_out.\1.max
    send to out
    ;
""",
    batches=[[("close.a", v, "P") for v in ("1.5", "1.2", "1.9", "1.1", "1.7")]],
    expect={"out": 7},
    # names carbon-c-relay orders differently (difference 2): not compared
    not_compared=(".median", ".p25", ".p75", ".p90"),
)


# Statement variants: both relays must accept each, or both refuse it
# (-t -t: check the configuration only).
EVERY_OK = "every 2 seconds expire after 5 seconds"
GRAMMAR = [
    ("send to, then stop", EVERY_OK, "compute sum write to g.sum send to c stop"),
    ("stop without send to", EVERY_OK, "compute sum write to g.sum stop"),
    ("avg and cnt", EVERY_OK,
     "compute avg write to g.a compute cnt write to g.c send to c"),
    ("percentile1 and percentile99", EVERY_OK,
     "compute percentile1 write to g.a compute percentile99 write to g.b"),
    ("percentile0", EVERY_OK, "compute percentile0 write to g.a"),
    ("percentile100", EVERY_OK, "compute percentile100 write to g.a"),
    ("timestamp after compute", EVERY_OK,
     "compute sum write to g.a timestamp at start of bucket"),
    ("no compute", EVERY_OK, "send to c"),
    ("expire equal to the interval", "every 5 seconds expire after 5 seconds",
     "compute sum write to g.a"),
    ("timestamp at middle", EVERY_OK + " timestamp at middle of bucket",
     "compute sum write to g.a"),
]


def grammar_conf(head, clauses):
    return ("cluster c forward 127.0.0.1:9 ;\n"
            "aggregate ^g\\. %s %s ;\n"
            "match * send to c ;\n" % (head, clauses))


# T: the start of the 3 s bucket the clock was in when A was taken
CLOCK = {}


def ts_of(label, A):
    base = {"P": A - 2, "C": A, "F": A + 2, "OLD": A - 30, "NEW": A + 12,
            "T": CLOCK.get("T", 0)}
    name, _, plus = label.partition("+")
    return base[name] + (int(plus) if plus else 0)


def batch_bytes(batch, A):
    return b"".join(("%s %s %d\n" % (n, v, ts_of(lbl, A))).encode()
                    for n, v, lbl in batch)


# ---------------------------------------------------------------------------
# the relays

class Pair:
    """One configuration on both relays: sinks, processes, ports."""

    def __init__(self, t, name, cfg):
        self.name = name
        self.cfg = cfg
        self.rules = cfg["rules"] % {"every": EVERY}
        self.sinks = {"crelay": {}, "orch": {}}
        for side in self.sinks:
            for c in cfg["clusters"]:
                self.sinks[side][c] = t.sink()
        self.control = "ipc://" + t.tmp.join("ctl-" + name)
        self.cconf = t.tmp.join("crelay-%s.conf" % name)
        self.oconf = t.tmp.join("orch-%s.conf" % name)
        self.crelay = t.proc("crelay-" + name, [CRELAY, "-f", self.cconf,
                                                "-H", HOSTNAME])
        self.orch = t.orchester("orch-" + name, self.oconf)
        self.orch.conf = self.oconf
        self.cport = self.oport = None
        self.tries = {"crelay": 0, "orch": 0}
        self.ready = {"crelay": False, "orch": False}

    def start(self, side):
        """Start one side on a port picked now.  The port was free a moment
        ago, but any outgoing connection may take it as its local port
        before the relay binds it: ready() then starts it again on another."""
        self.tries[side] += 1
        proc = self.crelay if side == "crelay" else self.orch
        if side == "crelay":
            self.cport = free_port()
            path = self.cconf
        else:
            self.oport = free_port()
            path = self.oconf
        with open(path, "w") as f:
            f.write(self.conf(side))
        proc.start()
        proc.expect_alive = False  # ready() watches it until it is up

    def poll_ready(self, t, side):
        """True once the side accepts connections (and orchester answers
        status); a start that lost its port is retried."""
        if self.ready[side]:
            return True
        proc = self.crelay if side == "crelay" else self.orch
        if not proc.alive():
            text = proc.stdout() + proc.stderr()
            if "Address already in use" in text and self.tries[side] < 4:
                sys.stderr.write("# %s lost its port, started again\n" % proc.name)
                self.start(side)
                return False
            raise GiveUp("%s exited with %s: %s" % (
                proc.name, proc.returncode, text[-600:].strip()))
        if not tcp_accepts(self.cport if side == "crelay" else self.oport):
            return False
        if side == "orch":
            ctl_status(t.build, self.control)
        self.ready[side] = True
        proc.expect_alive = True
        return True

    def conf(self, side):
        head = []
        if side == "crelay":
            head.append("listen type linemode 127.0.0.1:%d proto tcp ;" % self.cport)
        else:
            head.append("listen type linemode transport plain 127.0.0.1:%d proto tcp ;"
                        % self.oport)
            head.append("control %s ;" % self.control)
        for c, s in self.sinks[side].items():
            head.append("cluster %s forward 127.0.0.1:%d ;" % (c, s.port))
        return "\n".join(head) + "\n" + self.rules

    def lines(self, side, cluster):
        return [ln for ln in self.sinks[side][cluster].snapshot()
                if not ln.startswith(SELF_PREFIX)]

    def complete(self, side):
        return all(len(self.lines(side, c)) >= n
                   for c, n in self.cfg["expect"].items())

    def input_lines(self, A):
        return set(ln for b in self.cfg["batches"]
                   for ln in batch_bytes(b, A).split(b"\n") if ln)


def send_all(targets):
    """Send each (port, data) at once: every connection opened first, then
    every block written, then every connection closed, so both relays of a
    configuration get their lines within a few milliseconds."""
    socks = []
    try:
        for port, data in targets:
            socks.append((socket.create_connection((HOST, port), timeout=10.0), data))
        for s, data in socks:
            s.sendall(data)
    finally:
        for s, _ in socks:
            s.close()


def parse(line):
    f = line.split(b" ")
    require(len(f) == 3, "not a metric line: %r" % line)
    return f[0].decode(), f[1].decode(), int(f[2])


def close_enough(o, c):
    return abs(o - c) <= ABS_TOL + REL_TOL * abs(c)


def compare_sink(pair, cluster, A):
    """Describe every difference between the two relays' lines at one
    sink ('' when none)."""
    inputs = pair.input_lines(A)
    skip = pair.cfg.get("not_compared", ())
    raw = {}
    agg = {}
    for side in ("crelay", "orch"):
        r = collections.Counter()
        a = collections.defaultdict(list)
        for ln in pair.lines(side, cluster):
            if ln in inputs:
                r[ln] += 1
                continue
            name, value, ts = parse(ln)
            if any(name.endswith(s) for s in skip):
                continue
            a[(name, ts)].append(value)
        raw[side] = r
        agg[side] = a
    probs = []
    if raw["crelay"] != raw["orch"]:
        only_c = raw["crelay"] - raw["orch"]
        only_o = raw["orch"] - raw["crelay"]
        probs.append("input lines passed on: only carbon-c-relay %s; only orchester %s"
                     % (sorted(only_c.elements())[:10], sorted(only_o.elements())[:10]))
    for key in sorted(set(agg["crelay"]) | set(agg["orch"])):
        cv = agg["crelay"].get(key, [])
        ov = agg["orch"].get(key, [])
        ok = len(cv) == len(ov)
        if ok:
            cs = sorted(float(x) for x in cv)
            os_ = sorted(float(x) for x in ov)
            ok = all(close_enough(o, c) for o, c in zip(os_, cs))
        if not ok:
            probs.append("%s at %s (A%+d): carbon-c-relay %s, orchester %s"
                         % (key[0], key[1], key[1] - A, cv or "nothing",
                            ov or "nothing"))
    return "; ".join(probs)


def values(pair, side, cluster, name, ts):
    return sorted(float(parse(ln)[1]) for ln in pair.lines(side, cluster)
                  if parse(ln)[0] == name and parse(ln)[2] == ts)


def aggregator_rules(st):
    """The 'aggregator K FILE:LINE k=v ...' lines of a status, by K."""
    out = {}
    for line in st["other"]:
        f = line.split()
        if len(f) >= 3 and f[0] == "aggregator":
            d = {}
            for kv in f[3:]:
                k, _, v = kv.partition("=")
                try:
                    d[k] = int(v)
                except ValueError:
                    d[k] = v
            out[int(f[1])] = d
    return out


def crelay_stats(pair):
    """carbon-c-relay's last reported aggregators.* statistics."""
    last = {}
    pre = ("carbon.relays.%s.aggregators." % HOSTNAME).encode()
    for ln in pair.sinks["crelay"]["stats"].snapshot():
        if ln.startswith(pre):
            name, value, _ = parse(ln)
            last[name[len(pre):]] = int(float(value))
    return last


# ---------------------------------------------------------------------------

T0 = time.time()


def stop_crelays(pairs, keep=()):
    """SIGTERM (by PID) to the carbon-c-relays not in keep: each takes a few
    seconds to exit, so they are told as soon as they are no longer
    needed, all at once; the cleanup waits for them."""
    for p in pairs:
        if p.name not in keep and p.crelay.alive():
            p.crelay.signal(signal.SIGTERM)


def body(t):
    with t.check("programs are built; carbon-c-relay is installed", fatal=True):
        check_build(t.build)
        require(os.access(CRELAY, os.X_OK), "%s is not installed" % CRELAY)

    pairs = [Pair(t, name, cfg) for name, cfg in CONFIGS.items()]

    with t.check("%d configurations start on both relays" % len(pairs), fatal=True):
        for p in pairs:
            p.start("crelay")
            p.start("orch")
        wait_until(lambda: all([p.poll_ready(t, side) for p in pairs
                                for side in ("crelay", "orch")]), 30.0,
                   lambda: "the relays to be ready: not yet %s" % [
                       "%s/%s" % (p.name, side) for p in pairs
                       for side in ("crelay", "orch") if not p.ready[side]],
                   interval=0.1)

    state = {}

    def batch(i):
        A = state["A"]
        targets = []
        for p in pairs:
            if i < len(p.cfg["batches"]):
                data = batch_bytes(p.cfg["batches"][i], A)
                targets += [(p.cport, data), (p.oport, data)]
        send_all(targets)

    with t.check("batch 1 sent at the start of a bucket, batch 2 two seconds "
                 "later, before the earliest bucket is final", fatal=True):
        wait_until(lambda: time.time() % INTERVAL < 0.4, INTERVAL + 1.0,
                   "the start of a %d s bucket" % INTERVAL, interval=0.01)
        now = time.time()
        state["A"] = A = int(now) // INTERVAL * INTERVAL
        CLOCK["T"] = T = int(now) // 3 * 3
        batch(0)
        sent = time.time()
        require(sent < A + 0.9, "batch 1 took until A+%.2f s" % (sent - A))
        # the late data: the clock passing A+2 is the event waited for
        wait_until(lambda: time.time() >= A + 2, 4.0, "A+2", interval=0.01)
        batch(1)
        sent = time.time()
        require(sent < A + 3.5, "batch 2 took until A+%.2f s (bucket P may be "
                "final from A+4)" % (sent - A))

    late = [p for p in pairs if p.name == "late"][0]

    with t.check("late: both relays emit bucket P, then batch 3 goes out "
                 "before bucket F can be final", fatal=True):
        names = ["late_out.a.%s" % c for c in ("sum", "count", "max")]

        def emitted():
            for side in ("crelay", "orch"):
                got = set(parse(ln)[0] for ln in late.lines(side, "out")
                          if parse(ln)[2] == A)
                if not all(n in got for n in names):
                    return False
            return True
        wait_until(emitted, 15.0, "late_out.a.* of bucket P from both relays")
        batch(2)
        sent = time.time()
        require(sent < A + 7.5, "batch 3 took until A+%.2f s (bucket F may be "
                "final from A+8)" % (sent - A))

    # the statement's grammar, while the buckets run out
    for what, head, clauses in GRAMMAR:
        with t.check("grammar, %s: both relays accept it or both refuse it" % what):
            conf = t.write("grammar-%d.conf" % GRAMMAR.index((what, head, clauses)),
                           grammar_conf(head, clauses))
            crc, _, cerr, _ = run([CRELAY, "-t", "-t", "-f", conf], 30.0)
            orc, _, oerr, _ = run([os.path.join(t.build, "relay", "orchester"),
                                   "-t", "-t", "-f", conf], 30.0)
            require((crc == 0) == (orc == 0),
                    "carbon-c-relay exit %s (%s), orchester exit %s (%s); config: %s"
                    % (crc, cerr.strip().splitlines()[:1], orc,
                       oerr.strip().splitlines()[:1], grammar_conf(head, clauses)))

    with t.check("every sink gets its hand-counted number of lines from both "
                 "relays, and orchester holds no series any more"):
        def done():
            for p in pairs:
                if not (p.complete("crelay") and p.complete("orch")):
                    return False
            for p in pairs:
                st = ctl_status(t.build, p.control)
                if st["counters"].get("aggregators.series", 0) != 0:
                    return False
            return True

        def state_text():
            out = []
            for p in pairs:
                for side in ("crelay", "orch"):
                    have = {c: len(p.lines(side, c)) for c in p.cfg["expect"]}
                    if have != p.cfg["expect"]:
                        out.append("%s/%s %s (expected %s)"
                                   % (p.name, side, have, p.cfg["expect"]))
            return "all sinks complete: " + ("; ".join(out) or "series left")
        try:
            wait_until(done, DONE_TIMEOUT, state_text, interval=0.2)
        finally:
            if os.environ.get("AGGDIFF_DUMP"):  # a diagnostic aid
                for p in pairs:
                    for side in ("crelay", "orch"):
                        for c in p.cfg["clusters"]:
                            sys.stderr.write("# %s %s %s: %s\n" % (
                                p.name, side, c, sorted(p.lines(side, c))))
        sys.stderr.write("# all outputs in at A+%.1f s\n" % (time.time() - A))
        extra = []
        for p in pairs:
            for side in ("crelay", "orch"):
                for c, n in p.cfg["expect"].items():
                    have = len(p.lines(side, c))
                    if have != n:
                        extra.append("%s/%s/%s: %d lines, expected %d"
                                     % (p.name, side, c, have, n))
        require(not extra, "; ".join(extra))
    stop_crelays(pairs, keep=("late",))  # their lines are all in

    for p in pairs:
        for c in p.cfg["clusters"]:
            if c == "stats":
                continue
            with t.check("%s, sink %s: the same lines from both relays "
                         "(outputs: names, timestamps, values within "
                         "5e-7 + 1e-12 relative)" % (p.name, c)):
                d = compare_sink(p, c, A)
                require(not d, d)

    by = {p.name: p for p in pairs}

    # -- hand-computed values (both relays) ------------------------------
    def hand(pair, cluster, name, ts, want):
        for side in ("crelay", "orch"):
            got = values(pair, side, cluster, name, ts)
            require(len(got) == len(want) and
                    all(close_enough(g, w) for g, w in zip(got, sorted(want))),
                    "%s: %s at A%+d: %s, expected %s"
                    % (side, name, ts - A, got, sorted(want)))

    with t.check("computes: hand-computed values (7 values with a duplicate, "
                 "10 values, one value)"):
        p = by["computes"]
        odd = {"sum": 138, "count": 7, "cnt": 7, "max": 100, "min": -25,
               "average": 138 / 7.0, "avg": 138 / 7.0, "median": 7,
               "p10": -25, "p25": -3, "p75": 40, "p90": 100, "p99": 100}
        for k, v in odd.items():
            hand(p, "out", "cmp_out.odd." + k, A, [v])
        even = {"sum": 55, "count": 10, "median": 5, "p10": 1, "p25": 3,
                "p75": 8, "p90": 9, "p99": 10, "variance": 8.25,
                "stddev": 8.25 ** 0.5}
        for k, v in even.items():
            hand(p, "out", "cmp_out.even." + k, A + 2, [v])
        for k, v in {"p10": 42, "median": 42, "variance": 0}.items():
            hand(p, "out", "cmp_out.one." + k, A + 4, [v])

    with t.check("timestamps: start, middle, end and the default (end)"):
        p = by["timestamps"]
        for pos, off in (("start", 0), ("middle", 1), ("end", 2), ("default", 2)):
            hand(p, "out", "ts_out.%s.b.sum" % pos, A - 2 + off, [3])
            hand(p, "out", "ts_out.%s.a.count" % pos, A + 2 + off, [1])

    with t.check("odd: every 3 seconds, middle is start + 1, start is start"):
        p = by["odd"]
        hand(p, "out", "odd_out.a.sum", T + 1, [14])
        hand(p, "out", "odd_out.a.median", T + 1, [4])
        hand(p, "out", "odd_out.b.median", T + 4, [2])
        hand(p, "out", "odd_out.a.start_max", T, [9])
        hand(p, "out", "odd_out.a.start_max", T + 3, [6])

    with t.check("templates, sendto, reroute, stop, overlap: hand-computed "
                 "names and values"):
        p = by["templates"]
        hand(p, "out", "tpl_out.web.cpu.sum", A, [90])
        hand(p, "out", "tpl_out.cpu.by.web.max", A, [60])
        hand(p, "out", "tpl_out.all.count", A, [4])
        hand(p, "out", "tpl_out.web.3.web.min", A, [60])
        hand(p, "out", "tpl_out.2_mem-db.sum", A + 2, [50])
        p = by["sendto"]
        for c in ("out1", "out2"):
            hand(p, c, "snd_out.a.sum", A, [3])
        p = by["reroute"]
        hand(p, "routed", "rr_out.a.cnt_rw", A, [2])
        hand(p, "routed", "rr_out.b.sum", A + 4, [4])
        p = by["stop"]
        hand(p, "out", "st_out.all.count", A, [2])
        hand(p, "out", "st_out.all.count", A + 2, [1])
        hand(p, "other", "st_out.rr.a", A, [5])
        p = by["overlap"]
        hand(p, "out", "ov_out.a.sum", A, [3, 1])
        hand(p, "out", "ov_out.same", A, [7, 4])
        hand(p, "out", "ov_out.a_only.count", A - 2, [2])

    with t.check("chain: level-1 outputs aggregated again by a rule placed "
                 "before theirs"):
        p = by["chain"]
        hand(p, "out", "ch_l2.total", A + 2, [8])
        hand(p, "out", "ch_l2.total", A + 4, [30])
        hand(p, "out", "ch_l2.n", A + 4, [2])
        hand(p, "out", "ch_l2.b.max", A + 4, [20])
        hand(p, "seen", "ch_l1.a.sum", A, [3])

    with t.check("late: data late but inside the window is counted in its "
                 "bucket; too old, too new and for an emitted bucket dropped"):
        hand(late, "out", "late_out.a.sum", A, [13])
        hand(late, "out", "late_out.a.count", A + 2, [2])
        hand(late, "out", "late_out.a.max", A + 4, [40])
        hand(late, "out", "late_out.b.sum", A, [7])

    with t.check("late: orchester's rule counters: received 12, sent 12, "
                 "dropped 12 (4 datapoints x 3 computes)"):
        rules = aggregator_rules(ctl_status(t.build, late.control))
        require(len(rules) == 1, "aggregator lines: %s" % rules)
        r = list(rules.values())[0]
        require((r.get("received"), r.get("sent"), r.get("dropped")) == (12, 12, 12),
                "aggregator line: %s" % r)

    with t.check("late: carbon-c-relay's aggregators.metricsReceived, "
                 "metricsSent and metricsDropped equal orchester's counters"):
        st = ctl_status(t.build, late.control)
        want = {k: st["counters"].get("aggregators." + k)
                for k in ("metricsReceived", "metricsSent", "metricsDropped")}
        wait_until(lambda: all(crelay_stats(late).get(k) == v
                               for k, v in want.items()),
                   STATS_TIMEOUT,
                   lambda: "carbon-c-relay's statistics %s to equal orchester's %s"
                   % (crelay_stats(late), want))

    with t.check("close (values less than 1 apart): orchester gives the true "
                 "median 1.5, percentile25 1.2, percentile75 1.7, "
                 "percentile90 1.9 (carbon-c-relay 3.7.3 does not sort them)"):
        p = by["close"]
        got = {}
        for side in ("orch", "crelay"):
            for k in ("median", "p25", "p75", "p90"):
                got[(side, k)] = values(p, side, "out", "close_out.a." + k, A)
        sys.stderr.write("# close: carbon-c-relay median %s p25 %s p75 %s p90 %s\n"
                         % tuple(got[("crelay", k)] for k in
                                 ("median", "p25", "p75", "p90")))
        for k, v in (("median", 1.5), ("p25", 1.2), ("p75", 1.7), ("p90", 1.9)):
            require(got[("orch", k)] == [v], "orchester %s: %s, expected %s"
                    % (k, got[("orch", k)], v))

    sys.stderr.write("# checks done at A+%.1f s (A was %.1f s after the "
                     "start)\n" % (time.time() - A, A - T0))
    stop_crelays(pairs)  # late's


if __name__ == "__main__":
    Test().run(body)
