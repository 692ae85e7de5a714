#!/usr/bin/python3
"""
test_rules_compat.py -- rewrite and validate rules behave as carbon-c-relay's.

    /usr/bin/python3 tests/integration/test_rules_compat.py BUILD_DIR

The reference is Debian's carbon-c-relay 3.7.3 (/usr/bin/carbon-c-relay).
Each configuration below goes, with the same metric lines on stdin, through
`carbon-c-relay -t -f CONF` and `BUILD_DIR/relay/orchester -t -f CONF`.  Both
outputs are reduced to the same events per input metric, in order:

    rewrite PATTERN -> NEW_NAME
    match PATTERN -> NAME_SEEN, validate failure (expression, data, drop|log)
          or none, clusters (name, type, members in order), blackhole
    stop

and compared metric by metric.  carbon-c-relay's test mode prints no
metric names, so every metric line is preceded by a SENTINEL.N line that
the first rule (`match ^SENTINEL\\. send to blackhole ;`) takes; its block
separates one metric from the next.

Configurations:
  rewrite   \\1, \\_1, \\^1, \\.1, \\_.1, \\^.1, several references, chained
            rewrites, matches of part of a name (prefix, middle), optional
            groups that do not take part, non-regex patterns; the names
            then placed by forward, any_of, carbon_ch, fnv1a_ch and
            jump_fnv1a_ch clusters
  validate  else drop / else log, with and without stop, without
            destinations, after a rewrite (one check per kind)
  corners   replacement strings carbon-c-relay reads in its own way: a
            two-digit reference (to a group that does or does not exist),
            \\0, a backslash before another character, a case modifier right
            after a reference, a dot before a case modifier
  \\g{n}     not in 3.7.3 (carbon-c-relay added it later, so that digits may
            follow a reference): checked against its definition, group n

A rewrite by a regular expression without a group (such as x[0-9]+y; a
plain string such as ^pre\\. is fine) is left out on purpose: carbon-c-relay
3.7.3 then reads match offsets it never asked regexec for, and its result is
garbage or an error message.  Names carry no ';' tags (its
-t mode hashes tags unlike its daemon).
"""
import os
import random
import re
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, run, sanitizer_report)  # noqa: E402

CRELAY = "/usr/bin/carbon-c-relay"
RUN_TIMEOUT = 60.0
SEED = 3703  # any fixed value
TS = 1700000000

HEAD = "match ^SENTINEL\\. send to blackhole ;\n"


def clusters_text():
    """Clusters shared by the configurations (nothing is connected in -t)."""
    p = 21000
    text = """cluster c forward 127.0.0.1:%d ;
cluster v forward 127.0.0.1:%d 127.0.0.1:%d ;
cluster any any_of 127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d ;
cluster fo failover 127.0.0.1:%d 127.0.0.1:%d ;
cluster ch carbon_ch replication 2 127.0.0.1:%d=a 127.0.0.1:%d=b 127.0.0.1:%d ;
cluster fnv fnv1a_ch 127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d ;
cluster jump jump_fnv1a_ch replication 2 127.0.0.1:%d=1 127.0.0.1:%d=2 127.0.0.1:%d=3 ;
"""
    return text % tuple(range(p, p + text.count("%d")))


REWRITE_RULES = r"""match ^orig\. send to c ;
rewrite ^srv\.([^.]+)\.(cpu|mem)\.(.+)$ into hosts.\1.\2.\3 ;
rewrite ^hosts\.([^.]+)\.cpu\. into hosts.\1.processor. ;
rewrite ^Up\.([A-Za-z]+)\.([A-Za-z0-9]+) into up.\_1.\_2 ;
rewrite ^Low\.([a-z0-9]+)$ into LOW.\^1 ;
rewrite ^dots\.(.+)\.end$ into d.\.1.end2 ;
rewrite ^mix\.([A-Za-z.]+)\.x$ into m.\_.1.\^.1 ;
rewrite ([0-9]+)x([0-9]+) into \2X\1 ;
rewrite ^(a|b)(c)?\.opt into \1\2.OPT ;
rewrite ^pre\. into post. ;
rewrite mid into MID ;
rewrite ^m\.([a-z_]+)\.([A-Z_]+)$ into mm.\2.\1 ;
match ^hosts\. send to ch ;
match ^up\. send to any stop ;
match ^LOW\. send to fnv ;
match ^d\. send to jump stop ;
match ^mm\. send to c any ;
match X send to fnv ;
match ^post\. send to fo ;
match ^rare\. send to blackhole ;
match * send to c ;
"""

VALIDATE_RULES = r"""match ^vd\. validate ^[0-9]+\ [0-9]+$ else drop send to v ;
match ^vs\. validate ^[0-9]+\ [0-9]+$ else drop send to v stop ;
match ^vl\. validate ^[0-9]+\ [0-9]+$ else log send to any ;
match ^vls\. validate ^-?[0-9.]+\ [0-9]+$ else log send to any stop ;
match ^gd\. validate ^[0-9]+\ [0-9]+$ else drop ;
match ^gl\. validate ^[0-9]+\ [0-9]+$ else log ;
rewrite ^vr\.(.*)$ into rewritten.\1 ;
match ^rewritten\. validate ^[0-9.]+\ 1[0-9]+$ else drop send to ch stop ;
match * send to c ;
"""

VALIDATE_FAMILIES = [
    ("vd", "else drop, no stop (the next rules still run)"),
    ("vs", "else drop with stop"),
    ("vl", "else log with destinations"),
    ("vls", "else log with destinations and stop"),
    ("gd", "else drop without destinations"),
    ("gl", "else log without destinations"),
    ("vr", "after a rewrite, else drop with stop"),
    ("other", "metrics no validate rule matches"),
]

CORNER_FAMILIES = [
    ("e1", "'x\\12' (two digits after the backslash)"),
    ("e2", "'x.\\0.y'"),
    ("e3", "'x\\-\\1' (backslash before another character)"),
    ("e4", "'\\1\\_2' (case modifier right after a reference)"),
    ("e5", "'x\\._1' (dot before a case modifier)"),
    ("e6", "'\\11' with eleven groups (reference to group 11)"),
]

CORNER_RULES = r"""rewrite ^e1\.([a-z]+)\.([a-z]+)$ into x\12 ;
rewrite ^e2\.([a-z]+)$ into x.\0.y ;
rewrite ^e3\.([a-z]+)$ into x\-\1 ;
rewrite ^e4\.([a-z]+)\.([A-Z]+)$ into \1\_2 ;
rewrite ^e5\.([a-z.]+)$ into x\._1 ;
rewrite ^e6\.(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)$ into \11 ;
match * send to c ;
"""


# ---------------------------------------------------------------------------
# input names

def word(rnd, alphabet, lo, hi):
    return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(lo, hi)))


LOWER = "abcdefghijklmnopqrstuvwxyz"
UPPER = LOWER.upper()
DIGITS = "0123456789"
MIXED = LOWER + UPPER + DIGITS + "_-"


def segs(rnd, n_lo, n_hi, alphabet=MIXED):
    return ".".join(word(rnd, alphabet, 1, 8) for _ in range(rnd.randint(n_lo, n_hi)))


def rewrite_names(rnd, n):
    fams = [
        lambda: "srv.%s.%s.%s" % (word(rnd, LOWER + DIGITS + "-", 3, 8),
                                  rnd.choice(["cpu", "mem", "disk", "cpu", "mem"]),
                                  segs(rnd, 1, 3)),
        lambda: "orig.%s" % segs(rnd, 1, 3),
        lambda: "Up.%s.%s" % (word(rnd, LOWER + UPPER, 1, 8), segs(rnd, 1, 3)),
        lambda: "Low.%s" % rnd.choice([word(rnd, LOWER + DIGITS, 1, 9),
                                       word(rnd, MIXED, 1, 9)]),
        lambda: "dots.%s.end" % segs(rnd, 0, 4),
        lambda: "mix.%s.x" % segs(rnd, 1, 3, LOWER + UPPER),
        lambda: "%s.%dx%d.%s" % (word(rnd, LOWER, 1, 5), rnd.randint(0, 999),
                                 rnd.randint(0, 999), segs(rnd, 0, 2)),
        lambda: "%s.opt%s" % (rnd.choice(["a", "b", "ac", "bc", "cc", "abc"]),
                              rnd.choice(["", ".z", "x.y"])),
        lambda: "pre.%s" % segs(rnd, 1, 3),
        lambda: "%smid%s" % (word(rnd, LOWER, 0, 4), rnd.choice(["", ".q", "mid"])),
        lambda: "m.%s.%s" % (word(rnd, LOWER + "_", 1, 6), word(rnd, UPPER + "_", 1, 6)),
        lambda: "rare.%s" % segs(rnd, 1, 2),
        lambda: segs(rnd, 1, 5),
    ]
    out = []
    seen = set()
    while len(out) < n:
        nm = rnd.choice(fams)()
        nm = re.sub(r"\.+", ".", nm).strip(".")
        if nm and nm not in seen:
            seen.add(nm)
            out.append("%s %d %d" % (nm, rnd.randint(0, 1000), TS + rnd.randint(0, 99)))
    return out


def validate_lines(rnd, n):
    values = ["42", "0", "7", "4.2", "-3", "1e3", "-0.5", "12345678"]
    stamps = [str(TS), "1", "15", "123", str(TS + 86400)]
    prefixes = ["vd", "vs", "vl", "vls", "gd", "gl", "vr", "other"]
    out = []
    for i in range(n):
        nm = "%s.%s.i%d" % (rnd.choice(prefixes), segs(rnd, 1, 2), i)
        out.append("%s %s %s" % (nm, rnd.choice(values), rnd.choice(stamps)))
    return out


def corner_lines():
    return ["e1.ab.cd 1 %d" % TS, "e1.x.y 2 %d" % TS, "e2.ab 1 %d" % TS,
            "e3.ab 1 %d" % TS, "e4.ab.CD 1 %d" % TS, "e4.q.XYZ 1 %d" % TS,
            "e5.a.b 1 %d" % TS, "e5.c 1 %d" % TS, "e6.abcdefghijk 1 %d" % TS]


# ---------------------------------------------------------------------------
# the two test-mode outputs, as events per metric

CCR_PAT = [
    (re.compile(r"^    \* -> (.*)$"), lambda m: ("*", m.group(1))),
    (re.compile(r"^    (.*) \(regex\) -> (.*)$"), lambda m: (m.group(1), m.group(2))),
]
CCR_LIT = re.compile(r"^    (.*) \[(?:strstr|strncmp|tailcmp|strcmp): .*\]$")
CCR_ARROW = re.compile(r"^    -> (.*)$")
CCR_INTO = re.compile(r"^    into\((.*)\) -> (.*)$")
CCR_CLUSTER = re.compile(r"^    ([a-z_0-9]+)\((.*)\)$")
CCR_VEXPR = re.compile(r"^        (.*) -> (.*)$")
CCR_VFAIL = re.compile(r"^        fail -> (drop|log)$")


class ParseError(Exception):
    pass


def parse_ccr(text):
    """carbon-c-relay -t output -> [events of metric 0, events of metric 1,
    ...], split at the sentinel blocks."""
    lines = text.split("\n")
    start = None
    for i in range(len(lines) - 1):
        if lines[i] == "match" and lines[i + 1].startswith("    ^SENTINEL\\. "):
            start = i
            break
    if start is None:
        raise ParseError("no sentinel block in carbon-c-relay's output")
    metrics = []
    cur = None
    i = start
    while i < len(lines):
        head = lines[i]
        if head == "":
            i += 1
            continue
        if head not in ("match", "rewrite"):
            raise ParseError("line %d: unexpected %r" % (i + 1, head))
        j = i + 1
        body = []
        while j < len(lines) and lines[j].startswith(" "):
            body.append(lines[j])
            j += 1
        i = j
        # the expression and the name it saw
        pat = name = None
        k = 0
        for rx, f in CCR_PAT:
            m = rx.match(body[0]) if body else None
            if m:
                pat, name = f(m)
                k = 1
                break
        if pat is None:
            m = CCR_LIT.match(body[0]) if body else None
            m2 = CCR_ARROW.match(body[1]) if len(body) > 1 else None
            if not (m and m2):
                raise ParseError("block %r: no expression" % body[:2])
            pat, name = m.group(1), m2.group(1)
            k = 2
        if pat.startswith("^SENTINEL\\."):
            cur = []
            metrics.append(cur)
            continue
        if cur is None:
            raise ParseError("a block before the first sentinel")
        if head == "rewrite":
            m = CCR_INTO.match(body[k]) if len(body) > k else None
            if not m:
                raise ParseError("rewrite block without 'into': %r" % body)
            cur.append(("rewrite", pat, m.group(2)))
            continue
        vfail = None
        clusters = []
        blackhole = False
        stop = False
        while k < len(body):
            ln = body[k]
            if ln == "    validate":
                m = CCR_VEXPR.match(body[k + 1]) if k + 1 < len(body) else None
                res = body[k + 2] if k + 2 < len(body) else ""
                if not m:
                    raise ParseError("validate block %r" % body[k:k + 3])
                mf = CCR_VFAIL.match(res)
                if mf:
                    vfail = (m.group(1), m.group(2), mf.group(1))
                elif res != "        match":
                    raise ParseError("validate result %r" % res)
                k += 3
            elif ln == "    blackholed":
                blackhole = True
                k += 1
            elif ln == "    stop":
                stop = True
                k += 1
            else:
                m = CCR_CLUSTER.match(ln)
                if not m:
                    raise ParseError("unexpected %r in a match block" % ln)
                members = []
                k += 1
                while k < len(body) and body[k].startswith("        ") \
                        and not body[k].startswith("         "):
                    members.append(body[k].strip())
                    k += 1
                clusters.append((m.group(2), m.group(1), tuple(members)))
        cur.append(("match", pat, name, vfail, tuple(clusters), blackhole))
        if stop:
            cur.append(("stop",))
    return metrics


ORC_REWRITE = re.compile(r"^    rewrite (.+?) into (.*) \(([^()]*):(\d+)\) -> (.*)$")
ORC_MATCH = re.compile(r"^    match (.*) \(([^()]*):(\d+)\) -> (.*)$")
ORC_VALIDATE = re.compile(r"^        validate (.*) -> (.*): fail: (drop|log)$")
ORC_CLUSTER = re.compile(r"^        (\S+) \(([a-z_0-9 ]+)\)$")


def parse_orchester(text):
    """orchester -t output -> [(metric name, events), ...] in input order,
    the sentinel metrics left out."""
    out = []
    for block in text.split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln != ""]
        if not lines:
            continue
        name = lines[0]
        if name.startswith(" "):
            raise ParseError("block without a metric name: %r" % lines[:2])
        ev = []
        cur = None  # the open match event, as a list

        def close():
            if cur is not None:
                ev.append(("match", cur[0], cur[1], cur[2], tuple(cur[3]), cur[4]))

        k = 1
        while k < len(lines):
            ln = lines[k]
            m = ORC_REWRITE.match(ln)
            if m:
                close()
                cur = None
                ev.append(("rewrite", m.group(1), m.group(5)))
                k += 1
                continue
            m = ORC_MATCH.match(ln)
            if m:
                close()
                cur = [m.group(1), m.group(4), None, [], False]
                k += 1
                continue
            if ln == "    stop":
                close()
                cur = None
                ev.append(("stop",))
                k += 1
                continue
            if ln == "    no rule matched":
                close()
                cur = None
                k += 1
                continue
            if cur is None:
                raise ParseError("metric %s: unexpected %r" % (name, ln))
            m = ORC_VALIDATE.match(ln)
            if m:
                cur[2] = (m.group(1), m.group(2), m.group(3))
                k += 1
                continue
            if ln == "        blackhole":
                cur[4] = True
                k += 1
                continue
            m = ORC_CLUSTER.match(ln)
            if not m:
                raise ParseError("metric %s: unexpected %r" % (name, ln))
            members = []
            k += 1
            while k < len(lines) and lines[k].startswith("            "):
                members.append(lines[k].strip())
                k += 1
            cur[3].append((m.group(1), m.group(2), tuple(members)))
        close()
        if name.startswith("SENTINEL."):
            continue
        out.append((name, ev))
    return out


def show(events):
    """Events, short, for a message."""
    parts = []
    for e in events:
        if e[0] == "rewrite":
            parts.append("rewrite %s -> %s" % (e[1], e[2]))
        elif e[0] == "stop":
            parts.append("stop")
        else:
            s = "match %s -> %s" % (e[1], e[2])
            if e[3]:
                s += " [validate fail %s]" % e[3][2]
            for cl, ty, mem in e[4]:
                s += " %s(%s)%s" % (ty, cl, list(mem))
            if e[5]:
                s += " blackhole"
            parts.append(s)
    return "; ".join(parts) or "(nothing)"


# ---------------------------------------------------------------------------

def run_both(t, name, rules, lines):
    """Write the config, run both programs on lines; return (conf path,
    carbon-c-relay's events per metric, orchester's (name, events))."""
    conf = t.write(name + ".conf", clusters_text() + HEAD + rules)
    feed = "".join("SENTINEL.%d 1 %d\n%s\n" % (i, TS, ln) for i, ln in enumerate(lines))
    feed = feed.encode()
    rc, out, err, _ = run([CRELAY, "-t", "-f", conf], RUN_TIMEOUT, feed)
    require(rc == 0, "carbon-c-relay -t exited %s: %s" % (rc, err.strip()[-300:]))
    ccr = parse_ccr(out)
    orc_argv = [os.path.join(t.build, "relay", "orchester"), "-t", "-f", conf]
    rc, out, err, _ = run(orc_argv, RUN_TIMEOUT, feed)
    require(rc == 0, "orchester -t exited %s: %s" % (rc, err.strip()[-300:]))
    rep = sanitizer_report(err)
    require(not rep, "orchester -t: %s" % rep)
    orc = parse_orchester(out)
    require(len(ccr) == len(lines), "carbon-c-relay printed %d metrics for %d lines"
            % (len(ccr), len(lines)))
    require(len(orc) == len(lines), "orchester printed %d metrics for %d lines"
            % (len(orc), len(lines)))
    for (nm, _), ln in zip(orc, lines):
        require(nm == ln.split(" ")[0], "orchester printed metric %r for line %r" % (nm, ln))
    return conf, ccr, orc


def compare(t, lines, ccr, orc):
    """Raise CheckFailed listing the metrics whose events differ."""
    diffs = []
    for ln, c, (_, o) in zip(lines, ccr, orc):
        if c != o:
            diffs.append((ln, c, o))
    if diffs:
        for ln, c, o in diffs[:10]:
            sys.stderr.write("# input %r\n#   carbon-c-relay: %s\n#   orchester:      %s\n"
                             % (ln, show(c), show(o)))
        ln, c, o = diffs[0]
        require(False, "%d of %d metrics differ; first: input %r: carbon-c-relay: %s | "
                "orchester: %s" % (len(diffs), len(lines), ln, show(c), show(o)))


def coverage(ccr, rules, kinds=("rewrite", "match")):
    """Every rule of rules (by its expression) shows up in carbon-c-relay's
    events at least once: the inputs exercise the whole config."""
    want = []
    for ln in rules.splitlines():
        m = re.match(r"^(rewrite|match) (\S+) ", ln)
        if m and m.group(1) in kinds:
            want.append((m.group(1), m.group(2)))
    seen = {(e[0], e[1]) for evs in ccr for e in evs if e[0] != "stop"}
    missing = [w for w in want if w not in seen]
    require(not missing, "the inputs never reach %s" % missing)


def body(t):
    with t.check("programs are built; carbon-c-relay is installed", fatal=True):
        require(os.access(os.path.join(t.build, "relay", "orchester"), os.X_OK),
                "no %s/relay/orchester" % t.build)
        require(os.access(CRELAY, os.X_OK), "no %s" % CRELAY)
        rc, out, err, _ = run([CRELAY, "-v"], 10.0)
        require("3.7" in out + err, "carbon-c-relay -v: %r" % (out + err).strip()[:100])

    rnd = random.Random(SEED)

    lines = rewrite_names(rnd, 700)
    with t.check("rewrite (\\1 \\_1 \\^1 \\.1 \\_.1 \\^.1, chained, partial): %d "
                 "metrics get the names and clusters carbon-c-relay gives them"
                 % len(lines)):
        _, ccr, orc = run_both(t, "rewrite", REWRITE_RULES, lines)
        coverage(ccr, REWRITE_RULES)
        nrew = sum(1 for evs in ccr for e in evs if e[0] == "rewrite")
        require(nrew >= len(lines) // 2, "only %d rewrites happened" % nrew)
        compare(t, lines, ccr, orc)

    lines = validate_lines(rnd, 400)
    res = {}
    with t.check("validate: both programs run the config on %d metrics; every "
                 "rule is reached, both failure actions happen" % len(lines)):
        _, ccr, orc = run_both(t, "validate", VALIDATE_RULES, lines)
        coverage(ccr, VALIDATE_RULES)
        fails = {e[3][2] for evs in ccr for e in evs if e[0] == "match" and e[3]}
        require(fails == {"drop", "log"}, "validate failures seen: %s" % sorted(fails))
        res["v"] = (ccr, orc)
    for prefix, what in VALIDATE_FAMILIES:
        with t.check("validate, %s: routed as carbon-c-relay routes it" % what):
            require("v" in res, "the programs did not run")
            ccr, orc = res["v"]
            sel = [k for k, ln in enumerate(lines) if ln.split(".", 1)[0] == prefix]
            require(sel, "no input metric starts with %s." % prefix)
            compare(t, [lines[k] for k in sel], [ccr[k] for k in sel],
                    [orc[k] for k in sel])

    lines = corner_lines()
    res = {}
    with t.check("replacement corners: both programs run the config"):
        _, ccr, orc = run_both(t, "corners", CORNER_RULES, lines)
        res["c"] = (ccr, orc)
    for prefix, what in CORNER_FAMILIES:
        with t.check("replacement corner %s: read as carbon-c-relay reads it" % what):
            require("c" in res, "the programs did not run")
            ccr, orc = res["c"]
            sel = [k for k, ln in enumerate(lines) if ln.split(".", 1)[0] == prefix]
            compare(t, [lines[k] for k in sel], [ccr[k] for k in sel],
                    [orc[k] for k in sel])

    with t.check("\\g{n} is group n, and digits may follow it (carbon-c-relay's "
                 "later syntax; 3.7.3 lacks it)"):
        rules = ("rewrite ^g\\.([a-z]+)\\.([0-9]+)$ into \\g{1}7.\\g{2}x\\g{1} ;\n"
                 "rewrite ^h\\.([a-z]+)\\.([a-z]+)\\.([a-z]+)$ into "
                 "\\g{3}\\g{2}\\g{1}0 ;\n"
                 "match * send to c ;\n")
        gl = []
        exp = []
        for i in range(50):
            a, b = word(rnd, LOWER, 1, 6), str(rnd.randint(0, 9999))
            gl.append("g.%s.%s 1 %d" % (a, b, TS))
            exp.append("%s7.%sx%s" % (a, b, a))
            x, y, z = (word(rnd, LOWER, 1, 5) for _ in range(3))
            gl.append("h.%s.%s.%s 1 %d" % (x, y, z, TS))
            exp.append("%s%s%s0" % (z, y, x))
        conf = t.write("gref.conf", clusters_text() + HEAD + rules)
        feed = "".join(ln + "\n" for ln in gl).encode()
        rc, out, err, _ = run([os.path.join(t.build, "relay", "orchester"), "-t",
                               "-f", conf], RUN_TIMEOUT, feed)
        require(rc == 0, "orchester -t exited %s: %s" % (rc, err.strip()[-300:]))
        rep = sanitizer_report(err)
        require(not rep, "orchester -t: %s" % rep)
        orc = parse_orchester(out)
        require(len(orc) == len(gl), "%d metrics printed for %d lines" % (len(orc), len(gl)))
        bad = []
        for ln, want, (_, evs) in zip(gl, exp, orc):
            got = [e[2] for e in evs if e[0] == "match"]
            if got != [want]:
                bad.append("%r: %s, expected %s" % (ln, show(evs), want))
        require(not bad, "%d wrong, e.g. %s" % (len(bad), bad[0] if bad else ""))


if __name__ == "__main__":
    Test().run(body)
