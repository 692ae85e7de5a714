#!/usr/bin/python3
"""
test_badinput.py -- bad input is counted and skipped; nothing else suffers.

An orchester with a linemode TCP listener forwarding everything to a sink
gets a corpus of bad lines interleaved with good ones: an over-long line,
binary noise, missing and extra fields, non-numeric values, NaN, bad
timestamps, a name that is empty after cleansing, and a client that stalls
in the middle of a line while others keep sending.  Checks:
  - the daemon stays up and the listener accepts new connections;
  - every good line arrives, cleansed as line.h describes (runs of '.'
    collapse, leading and trailing '.' go, bytes outside [A-Za-z0-9-_:#]
    become '_', tags after ';' are kept);
  - the status parseErrors counters rose by the expected amount per reason
    (fields name value nan timestamp toolong), and the total is their sum.
A second orchester with -M 1024 discards a 2 KiB line and keeps a 1000-byte
one.
"""
import os
import random
import socket
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, require, free_port, send_tcp, wait_until,  # noqa: E402
                     counter, check_build, tcp_accepts, SinkTracker)

REASONS = ("fields", "name", "value", "nan", "timestamp", "toolong")


def noise(rng, n):
    """n random bytes with NUL and high bytes, but no line or field
    separator: one field, so one "fields" error."""
    out = bytearray()
    while len(out) < n:
        b = rng.randrange(256)
        if b in (0x0a, 0x0d, 0x20, 0x09):
            continue
        out.append(b)
    out[n // 2] = 0  # at least one NUL in the middle
    return bytes(out)


def corpus(ts):
    """Returns (data, good, errors): the bytes to send, the lines expected at
    the sink in order, and the expected count per parse error reason."""
    rng = random.Random(20240607)
    items = []  # (input line bytes without '\n', expected output or None, reason or None)

    def good(i):
        ln = b"good.n%d %d %d" % (i, i, ts)
        items.append((ln, ln, None))

    def bad(ln, reason):
        items.append((ln, None, reason))

    def cleansed(ln, out):
        items.append((ln, out, None))

    bads = [
        (b"long." + b"x" * 17000 + b" 1 %d" % ts, "toolong"),           # > 16 KiB
        (b"long.y." + b"y" * 40000 + b" 2 %d" % ts, "toolong"),         # far beyond
        (noise(rng, 300), "fields"),                                   # binary noise
        (noise(rng, 1000), "fields"),
        (b"\x00", "fields"),
        (b"missing.ts 1", "fields"),                                   # missing fields
        (b"missing.all", "fields"),
        (b"four.fields 1 %d extra" % ts, "fields"),                    # 4 fields
        (b"a b c d e f", "fields"),
        (b"bad.value abc %d" % ts, "value"),                           # non-numeric value
        (b"bad.value 1.2.3 %d" % ts, "value"),
        (b"bad.value 12abc %d" % ts, "value"),
        (b"bad.value - %d" % ts, "value"),
        (b"bad.nan nan %d" % ts, "nan"),                               # NaN, its own reason
        (b"bad.nan NaN %d" % ts, "nan"),
        (b"bad.nan -NAN %d" % ts, "nan"),
        (b"bad.ts 1 abc", "timestamp"),                                # non-numeric timestamp
        (b"bad.ts 1 12x4", "timestamp"),
        (b"bad.ts 1 1.2.3", "timestamp"),
        (b"... 1 %d" % ts, "name"),                                    # empty after cleansing
        (b".;tag=1 1 %d" % ts, "name"),
    ]
    i = 0
    for ln, reason in bads:
        good(i)
        i += 1
        bad(ln, reason)
    good(i)
    i += 1
    # lines that are accepted and cleansed
    cl = [
        (b"a..b. 1 %d" % ts, b"a.b 1 %d" % ts),
        (b"..lead..ing... 2 %d" % ts, b"lead.ing 2 %d" % ts),
        (b"we$ird(name)!x 3 %d" % ts, b"we_ird_name__x 3 %d" % ts),
        (b"keep-these_chars:#.ok 4 %d" % ts, b"keep-these_chars:#.ok 4 %d" % ts),
        (b"bin\x00ary\xff.n\x01 5 %d" % ts, b"bin_ary_.n_ 5 %d" % ts),
        (b"tag.ged;env=prod;dc=x 6 %d" % ts, b"tag.ged;env=prod;dc=x 6 %d" % ts),
        (b"tag..ged.;env=a..b 7 %d" % ts, b"tag.ged;env=a..b 7 %d" % ts),
        (b"tabs.and.spaces \t 8\t  %d  " % ts, b"tabs.and.spaces 8 %d" % ts),
        (b"crlf.line 9 %d\r" % ts, b"crlf.line 9 %d" % ts),
        (b"val.exp 1e3 %d" % ts, b"val.exp 1e3 %d" % ts),
        (b"val.neg -7.5 %d" % ts, b"val.neg -7.5 %d" % ts),
        (b"val.inf inf %d" % ts, b"val.inf inf %d" % ts),
    ]
    for ln, out in cl:
        cleansed(ln, out)
        good(i)
        i += 1
    # empty and blank lines are skipped, not errors
    items.append((b"", None, None))
    items.append((b"   \t ", None, None))
    good(i)
    data = b"".join(ln + b"\n" for ln, _, _ in items)
    goods = [out for _, out, _ in items if out is not None]
    errors = {r: 0 for r in REASONS}
    for _, _, r in items:
        if r:
            errors[r] += 1
    return data, goods, errors


def parse_errors(st):
    d = {r: counter(st, "parseErrors." + r) for r in REASONS}
    d["total"] = counter(st, "parseErrors")
    return d


def body(t):
    with t.check("programs are built", fatal=True):
        check_build(t.build)

    ts = int(time.time()) - 60
    port = free_port()
    sink = t.sink()
    control = "tcp://127.0.0.1:%d" % free_port()
    conf = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (port, control, sink.port)
    with t.check("orchester starts", fatal=True):
        orch = t.start_orchester("orchester", conf, control=control, tcp_ports=(port,))

    base = parse_errors(t.status(control))

    # --- a client stalls in the middle of a line -------------------------------
    half = socket.create_connection(("127.0.0.1", port), timeout=10)
    half.sendall(b"half.line 1")
    others = [b"other.c%d.n%d %d %d" % (c, i, i, ts) for c in range(2) for i in range(2000)]
    with t.check("other clients' lines arrive while one client stalls mid-line"):
        blocks = [b"".join(ln + b"\n" for ln in others if ln.startswith(b"other.c%d." % c))
                  for c in range(2)]
        errs = send_tcp(port, blocks)
        require(not errs, "; ".join(errs))
        tr = SinkTracker(sink, others)
        wait_until(tr.complete, 60.0, lambda: "the other clients' %d lines (%d missing)"
                   % (len(others), len(tr.missing)))
        require(b"half.line" not in b"".join(sink.snapshot()),
                "the unfinished line was delivered before its newline came")
    with t.check("the stalled half line arrives once completed"):
        half.sendall(b" %d\n" % ts)
        half.close()
        want = b"half.line 1 %d" % ts
        wait_until(lambda: want in sink.snapshot(), 30.0, repr(want))

    # --- the corpus ---------------------------------------------------------------
    data, goods, errors = corpus(ts)
    start = sink.count()
    with t.check("bad input corpus sent (%d bytes)" % len(data), fatal=True):
        # over two connections: one in a single write, one byte-split in
        # small writes so lines straddle reads
        errs = send_tcp(port, [data], chunk=1 << 16)
        errs += send_tcp(port, [data], chunk=997)
        require(not errs, "; ".join(errs))

    with t.check("every good line arrives, cleansed, in order"):
        def arrived():
            return sink.count() - start >= 2 * len(goods)
        wait_until(arrived, 60.0, lambda: "%d good lines (have %d)"
                   % (2 * len(goods), sink.count() - start))
        got = sink.snapshot()[start:]
        require(len(got) == 2 * len(goods) and got == goods + goods,
                "differs: got %d lines, expected %d; unexpected %r; missing %r" % (
                    len(got), 2 * len(goods),
                    [g[:80] for g in got if g not in goods][:5],
                    [g[:80] for g in goods if g not in got][:5]))

    with t.check("parseErrors rose by the expected amount per reason (nan its own)"):
        want = {r: base[r] + 2 * errors[r] for r in REASONS}
        want["total"] = base["total"] + 2 * sum(errors.values())
        box = {}

        def counted():
            box["now"] = parse_errors(t.status(control))
            return box["now"] == want
        try:
            wait_until(counted, 15.0, "parseErrors counters %r" % want, interval=0.25)
        except Exception:
            pass
        now = box.get("now") or parse_errors(t.status(control))
        diff = {k: (now[k] - base[k], want[k] - base[k]) for k in want if now[k] != want[k]}
        require(not diff, "rose by (got, expected): %r" % diff)

    with t.check("the listener's own counters agree: its errors are the parse errors"):
        st = t.status(control)
        ls = [l for l in st["listeners"] if l["proto"] == "tcp"]
        require(len(ls) == 1, "listeners %r" % st["listeners"])
        kv = dict(x.split("=", 1) for x in ls[0]["extra"])
        require(int(kv.get("errors", -1)) == parse_errors(st)["total"],
                "listener errors=%s, parseErrors %s" % (kv.get("errors"),
                                                        parse_errors(st)["total"]))
        require(int(kv.get("received", 0)) >= 2 * len(goods),
                "listener received=%s" % kv.get("received"))

    with t.check("orchester stays up"):
        require(orch.alive(), "orchester exited with %s" % orch.returncode)

    with t.check("the listener still accepts new connections and their lines"):
        require(tcp_accepts(port), "connect to %d refused" % port)
        ln = b"after.bad.input 42 %d" % ts
        errs = send_tcp(port, [ln + b"\n"])
        require(not errs, "; ".join(errs))
        wait_until(lambda: ln in sink.snapshot(), 30.0, repr(ln))

    with t.check("64 KiB of raw random bytes (newlines, NUL, anything): orchester "
                 "survives, counts errors, later lines arrive"):
        before = parse_errors(t.status(control))
        rng = random.Random(7)
        raw = bytes(rng.randrange(256) for _ in range(65536))
        raw += b"".join(bytes([rng.randrange(256)]) * rng.randrange(1, 300) + b"\n"
                        for _ in range(200))  # runs of one byte, many lines
        errs = send_tcp(port, [raw + b"\n"], chunk=4093)
        require(not errs, "; ".join(errs))
        ln = b"after.noise 43 %d" % ts
        errs = send_tcp(port, [ln + b"\n"])
        require(not errs, "; ".join(errs))
        wait_until(lambda: ln in sink.snapshot(), 30.0, repr(ln))
        wait_until(lambda: parse_errors(t.status(control))["total"] > before["total"],
                   10.0, "parseErrors to rise", interval=0.25)
        require(orch.alive(), "orchester exited with %s" % orch.returncode)

    # --- -M 1024 -------------------------------------------------------------------
    port2 = free_port()
    sink2 = t.sink()
    control2 = "tcp://127.0.0.1:%d" % free_port()
    conf2 = """listen type linemode 127.0.0.1:%d proto tcp ;
control %s ;
cluster sink forward 127.0.0.1:%d ;
match * send to sink ;
""" % (port2, control2, sink2.port)
    with t.check("orchester -M 1024 starts", fatal=True):
        orch2 = t.start_orchester("orchester-M1024", conf2, opts=("-M", "1024"),
                                  control=control2, tcp_ports=(port2,))
    with t.check("-M 1024: a 2 KiB line is discarded and counted, a 1000-byte line kept"):
        base2 = parse_errors(t.status(control2))
        long2k = b"m2k." + b"z" * 2048 + b" 1 %d" % ts
        fits = b"m1k." + b"k" * (1000 - len(b"m1k.") - len(b" 2 %d" % ts)) + b" 2 %d" % ts
        require(len(fits) == 1000, "test bug: %d" % len(fits))
        lines = [b"before.m 1 %d" % ts, long2k, b"middle.m 2 %d" % ts, fits,
                 b"after.m 3 %d" % ts]
        errs = send_tcp(port2, [b"".join(ln + b"\n" for ln in lines)])
        require(not errs, "; ".join(errs))
        want = [lines[0], lines[2], lines[3], lines[4]]
        wait_until(lambda: sink2.count() >= len(want), 30.0, "%d lines" % len(want))

        def counted2():
            now = parse_errors(t.status(control2))
            return now["toolong"] - base2["toolong"] == 1 and now["total"] - base2["total"] == 1
        try:
            wait_until(counted2, 10.0, "parseErrors.toolong to rise by 1", interval=0.25)
        except Exception:
            pass
        got = sink2.snapshot()
        require(got == want, "sink got %r" % [g[:60] for g in got])
        now = parse_errors(t.status(control2))
        require(now["toolong"] - base2["toolong"] == 1 and now["total"] - base2["total"] == 1,
                "parseErrors.toolong rose by %d, parseErrors by %d (expected 1 and 1)"
                % (now["toolong"] - base2["toolong"], now["total"] - base2["total"]))
        require(orch2.alive(), "orchester -M 1024 exited with %s" % orch2.returncode)


if __name__ == "__main__":
    Test().run(body)
