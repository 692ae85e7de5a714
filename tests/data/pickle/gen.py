#!/usr/bin/env python3
"""Round-trip frames for orchester's pickle decoder (tests/test_pickle.c).

Writes, per interpreter, pickler and protocol, NAME.frames (frames one after
the other, as a client sends them on one connection: each a 4-byte
big-endian length, then the pickle) and NAME.points (what the decoder must
hand out for each frame, in order).  Runs under python3 (protocols 0..5,
prefix py3) and python2 (protocols 0..2, pickle and cPickle, prefix py2);
the checked-in files come from Python 3.11 and 2.7:

    python3 tests/data/pickle/gen.py tests/data/pickle
    python2 tests/data/pickle/gen.py tests/data/pickle

NAME.points holds, per frame, one line per datapoint in frame order:
    HEXNAME VALUE TIMESTAMP
where HEXNAME is the path's bytes (UTF-8 for text) in hex, and VALUE and
TIMESTAMP are i:DECIMAL (an integer; booleans are 0/1), f:REPR (a float), or
s:HEX (a string's bytes in hex); or, for a frame the decoder must refuse, the
single line "REJECT STATUS" (STATUS as pickle_status_str() names it).  A
line "--" ends each frame's part.
"""
import os
import pickle
import pickletools
import struct
import sys

PY2 = sys.version_info[0] == 2
if PY2:
    import cPickle
    text_type = unicode  # noqa: F821
    int_types = (int, long)  # noqa: F821
else:
    text_type = str
    int_types = (int,)

TS = 1764000000


def hexs(b):
    if isinstance(b, text_type):
        b = b.encode("utf-8")
    return "".join("%02x" % c for c in bytearray(b))


def field(v):
    if isinstance(v, bool):
        return "i:%d" % int(v)
    if isinstance(v, int_types):
        return "i:%d" % v
    if isinstance(v, float):
        return "f:" + repr(v)
    return "s:" + hexs(v)


def points_text(points):
    out = []
    for name, (ts, val) in points:
        out.append("%s %s %s\n" % (hexs(name), field(val), field(ts)))
    return "".join(out)


def u(s):
    """A text string from an ASCII literal with \\u escapes."""
    return s.encode("ascii").decode("unicode_escape") if not PY2 else \
        s.decode("unicode_escape")


def mixed():
    vals = [0.0, -0.0, 0.5, 0.1, 1 / 3.0, -2.5e-7, 1e-300, 5e-324,
            1.7976931348623157e308, 123456789.123, 1e22, 1e16,
            float(2 ** 53), 1764000000.123456, 12.25, -7.0, 1e-5, 0.3,
            float("inf"), float("-inf"), float("nan"),
            0, 1, -1, 255, 256, 65535, 65536, 2 ** 31 - 1, -2 ** 31,
            2 ** 31, 2 ** 40, 2 ** 63 - 1, -2 ** 63, 2 ** 63, 2 ** 64 - 1,
            2 ** 64, -2 ** 64 - 1, 10 ** 30, -10 ** 30, True, False]
    pts = []
    for i, v in enumerate(vals):
        ts = TS + i
        if i % 5 == 3:
            ts = TS + i + 0.25
        elif i % 7 == 4:
            ts = 2 ** 33 + i
        pts.append(("mixed.v%d" % i, (ts, v)))
    return pts


def names():
    raw = ["plain.name", "quote'single", 'quote"double', "both'\"quotes",
           "back\\slash", "new\nline", "tab\there", "cr\rx", "nul\x00byte",
           "ctl\x01\x1a\x7f", "x" * 300]
    uni = [u("m\\u00e9ter.\\u00e9t\\u00e9"), u("\\u6307\\u6807.cpu"),
           u("astral.\\U0001f600.x"), u("back\\\\u1234slash"),
           u("latin\\u00ff\\u0080")]
    pts = [(n, (TS + i, float(i))) for i, n in enumerate(raw + uni)]
    pts.append((raw[0], (TS + 99, 2.0)))          # repeated: memo GET
    pts.append(("str.values", ("1764000123", "0.75")))
    return pts


def shapes():
    return [["list.item", [TS, 1.5]], ("tuple.list", [TS, 2.5]),
            ["list.tuple", (TS, 3.5)], ("tuple.tuple", (TS, 4.5))]


def big():
    return [("b.%d" % i, (TS + i, i * 0.25)) for i in range(1100)]


class Obj(object):
    pass


def rejects():
    return {
        "dict": ({"a": 1}, "unsupported"),
        "none-value": ([("a.b", (TS, None))], "shape"),
        "set-value": ([("a.b", (TS, set([1])))], "unsupported"),
        "object": ([("a.b", (TS, Obj()))], "unsafe"),
        "three-items": ([("a.b", TS, 1.0)], "shape"),
        "int-name": ([(7, (TS, 1.0))], "shape"),
        "top-int": (42, "shape"),
    }


def frame(payload):
    return struct.pack("!L", len(payload)) + payload


def main():
    out = sys.argv[1]
    if PY2:
        prefix = "py2"
        dumpers = [("pickle", pickle.dumps), ("cpickle", cPickle.dumps)]
        protos = range(0, 3)
    else:
        prefix = "py3"
        dumpers = [("pickle", pickle.dumps)]
        protos = range(0, pickle.HIGHEST_PROTOCOL + 1)
    sets = [("mixed", mixed()), ("names", names()), ("shapes", shapes())]
    for dname, dumps in dumpers:
        for proto in protos:
            frames, text = [], []
            for sname, pts in sets:
                data = dumps(pts, proto)
                for d in (data, pickletools.optimize(data)):
                    frames.append(frame(d))
                    text.append(points_text(pts) + "--\n")
            if proto in (0, 2, 4):
                pts = big()
                frames.append(frame(dumps(pts, proto)))
                text.append(points_text(pts) + "--\n")
            for rname, (obj, status) in sorted(rejects().items()):
                if rname == "set-value" and proto < 4:
                    status = "unsafe"      # set() is pickled with REDUCE
                frames.append(frame(dumps(obj, proto)))
                text.append("REJECT %s\n--\n" % status)
            name = os.path.join(out, "%s-%s-p%d" % (prefix, dname, proto))
            with open(name + ".frames", "wb") as f:
                f.write(b"".join(frames))
            with open(name + ".points", "w") as f:
                f.write("".join(text))


if __name__ == "__main__":
    main()
