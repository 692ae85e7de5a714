/*
 * test_pickle.c -- unit tests for the carbon pickle decoder (src/pickle.c).
 *
 * Three sources of frames:
 *   - the shared golden frames (ORCHESTER_PICKLE_TESTDATA, default the copy
 *     in tests/data/shared-pickle): NAME.frame against NAME.expect;
 *   - frames Python's own pickle wrote at every protocol, Python 2 and 3
 *     (ORCHESTER_PICKLE_DATA, default tests/data/pickle, made by gen.py
 *     there): NAME.frames against NAME.points;
 *   - frames built here by hand, one group of cases per opcode group, per
 *     refused opcode, per limit, plus truncation at every byte offset and
 *     seeded mutations (which must never crash).
 * A default directory missing from the cwd is looked for next to this
 * source file instead, which serves builds outside the source tree.
 * Every frame is copied to a heap block of its exact length, so ASan sees
 * any read past the end, and decoded twice: by pickle_decode() and by a
 * long-lived pickle_t, which must agree.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, strtok_r, opendir */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

/* --- collecting datapoints --------------------------------------------- */

/* One datapoint as the callback saw it (copies, NUL-terminated). */
typedef struct {
    char *name;
    size_t namelen;
    char *value;
    size_t valuelen;
    char *ts;
    size_t tslen;
} pt_t;

/* The datapoints of one decode. */
typedef struct {
    pt_t *p;
    size_t n;
    size_t cap;
} pts_t;

static char *s_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    assert_non_null(d);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void s_collect(void *arg, const char *name, size_t namelen,
                      const char *value, size_t valuelen, const char *ts,
                      size_t tslen)
{
    pts_t *pts = arg;
    pt_t *p;

    if (pts->n == pts->cap) {
        pts->cap = pts->cap ? pts->cap * 2 : 16;
        pts->p = realloc(pts->p, pts->cap * sizeof *pts->p);
        assert_non_null(pts->p);
    }
    p = &pts->p[pts->n++];
    p->name = s_dup(name, namelen);
    p->namelen = namelen;
    p->value = s_dup(value, valuelen);
    p->valuelen = valuelen;
    p->ts = s_dup(ts, tslen);
    p->tslen = tslen;
}

static void s_pts_free(pts_t *pts)
{
    size_t i;

    for (i = 0; i < pts->n; i++) {
        free(pts->p[i].name);
        free(pts->p[i].value);
        free(pts->p[i].ts);
    }
    free(pts->p);
    memset(pts, 0, sizeof *pts);
}

/* A decoder kept across the whole run, as an ingest thread keeps one. */
static pickle_t *s_shared;
static pickle_limits_t s_shared_lim;

/* Decode buf/len with limits lim (NULL: defaults) both ways; check they
 * agree and that a refusal gave no datapoint.  Returns the status; the
 * datapoints are in *out (free with s_pts_free). */
static pickle_status_t s_decode(const void *buf, size_t len,
                                const pickle_limits_t *lim, pts_t *out)
{
    unsigned char *copy = malloc(len ? len : 1);
    pickle_status_t st = PICKLE_NSTATUS, st2 = PICKLE_NSTATUS;
    pts_t other = {0};
    size_t n = 99, n2 = 99, i;
    pickle_limits_t want;
    int rc, rc2;

    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    memset(out, 0, sizeof *out);
    rc = pickle_decode(copy, len, lim, s_collect, out, &st, &n);
    assert_int_equal(rc, st == PICKLE_OK ? 0 : -1);
    assert_int_equal(n, out->n);
    if (st != PICKLE_OK)
        assert_int_equal(out->n, 0);

    /* the long-lived decoder, rebuilt when the limits change */
    pickle_limits_default(&want);
    if (lim)
        want = *lim;
    if (!s_shared || memcmp(&want, &s_shared_lim, sizeof want) != 0) {
        pickle_destroy(&s_shared);
        s_shared = pickle_new(&want);
        assert_non_null(s_shared);
        s_shared_lim = want;
    }
    rc2 = pickle_run(s_shared, copy, len, s_collect, &other, &st2, &n2);
    assert_int_equal(rc2, rc);
    assert_int_equal(st2, st);
    assert_int_equal(n2, n);
    assert_int_equal(other.n, out->n);
    for (i = 0; i < out->n; i++) {
        assert_int_equal(other.p[i].namelen, out->p[i].namelen);
        assert_memory_equal(other.p[i].name, out->p[i].name, out->p[i].namelen);
        assert_string_equal(other.p[i].value, out->p[i].value);
        assert_string_equal(other.p[i].ts, out->p[i].ts);
    }
    s_pts_free(&other);
    free(copy);
    return st;
}

/* The datapoints as "name value ts\n" lines, in a malloc'd block. */
static char *s_lines(const pts_t *pts, size_t *len)
{
    size_t i, n = 0, w = 0;
    char *s;

    for (i = 0; i < pts->n; i++)
        n += pts->p[i].namelen + pts->p[i].valuelen + pts->p[i].tslen + 3;
    s = malloc(n + 1);
    assert_non_null(s);
    for (i = 0; i < pts->n; i++) {
        const pt_t *p = &pts->p[i];

        memcpy(s + w, p->name, p->namelen);
        w += p->namelen;
        s[w++] = ' ';
        memcpy(s + w, p->value, p->valuelen);
        w += p->valuelen;
        s[w++] = ' ';
        memcpy(s + w, p->ts, p->tslen);
        w += p->tslen;
        s[w++] = '\n';
    }
    s[w] = '\0';
    *len = w;
    return s;
}

/* Print bytes with C escapes, for failure messages. */
static void s_print_bytes(const char *what, const void *buf, size_t len)
{
    const unsigned char *b = buf;
    size_t i;

    print_error("%s \"", what);
    for (i = 0; i < len && i < 400; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\' && b[i] != '"')
            print_error("%c", b[i]);
        else
            print_error("\\x%02x", b[i]);
    }
    print_error(len > 400 ? "\"...\n" : "\"\n");
}

/* Expect buf/len accepted, handing out exactly the lines want/wantlen. */
static void s_ok(int line, const void *buf, size_t len,
                 const pickle_limits_t *lim, const char *want, size_t wantlen)
{
    pts_t pts;
    pickle_status_t st = s_decode(buf, len, lim, &pts);
    size_t gotlen = 0;
    char *got = NULL;

    if (st == PICKLE_OK)
        got = s_lines(&pts, &gotlen);
    if (st != PICKLE_OK || gotlen != wantlen ||
        memcmp(got, want, wantlen) != 0) {
        print_error("case at line %d: status %s\n", line,
                    pickle_status_str(st));
        s_print_bytes("frame", buf, len);
        if (got)
            s_print_bytes("got", got, gotlen);
        s_print_bytes("want", want, wantlen);
        free(got);
        s_pts_free(&pts);
        _fail(__FILE__, line);
    }
    free(got);
    s_pts_free(&pts);
}

/* Expect buf/len refused with status want. */
static void s_bad(int line, const void *buf, size_t len,
                  const pickle_limits_t *lim, pickle_status_t want)
{
    pts_t pts;
    pickle_status_t st = s_decode(buf, len, lim, &pts);

    s_pts_free(&pts);
    if (st != want) {
        print_error("case at line %d: got %s, want %s\n", line,
                    pickle_status_str(st), pickle_status_str(want));
        s_print_bytes("frame", buf, len);
        _fail(__FILE__, line);
    }
}

#define L(lit)             lit, sizeof(lit) - 1
#define OK(in, want)       s_ok(__LINE__, L(in), NULL, L(want))
#define OKL(in, lim, want) s_ok(__LINE__, L(in), lim, L(want))
#define BAD(in, st)        s_bad(__LINE__, L(in), NULL, st)
#define BADL(in, lim, st)  s_bad(__LINE__, L(in), lim, st)

/* A growable byte buffer for frames built in code. */
typedef struct {
    unsigned char *b;
    size_t n;
    size_t cap;
} buf_t;

static void b_put(buf_t *f, const void *p, size_t n)
{
    if (f->n + n > f->cap) {
        while (f->n + n > f->cap)
            f->cap = f->cap ? f->cap * 2 : 256;
        f->b = realloc(f->b, f->cap);
        assert_non_null(f->b);
    }
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void b_byte(buf_t *f, int c)
{
    unsigned char b = (unsigned char)c;

    b_put(f, &b, 1);
}

static void b_rep(buf_t *f, int c, size_t n)
{
    while (n--)
        b_byte(f, c);
}

static void b_le32(buf_t *f, uint32_t v)
{
    unsigned char b[4] = {v & 0xff, v >> 8 & 0xff, v >> 16 & 0xff,
                          v >> 24 & 0xff};

    b_put(f, b, 4);
}

/* A protocol-2 frame of n datapoints "p.I" (BINUNICODE names, BININT
 * timestamps, BINFLOAT values, APPENDS batches of 1000) as Python writes
 * it, with its BINPUT/LONG_BINPUT memo entries (3 per datapoint) when memo
 * is set. */
static void b_proto2(buf_t *f, size_t n, int memo_on)
{
    size_t i, memo = 1;

    b_put(f, L("\x80\x02]q\x00"));
    for (i = 0; i < n; i++) {
        char name[32];
        int k, nl = snprintf(name, sizeof name, "p.%zu", i);
        double v = (double)i * 0.25;
        uint64_t u;

        if (i % 1000 == 0)
            b_byte(f, '(');
        b_byte(f, 'X');
        b_le32(f, (uint32_t)nl);
        b_put(f, name, (size_t)nl);
        for (k = 0; k < 3; k++) {
            if (k == 1) {
                b_byte(f, 'J');
                b_le32(f, (uint32_t)(1764000000 + i));
                b_byte(f, 'G');
                memcpy(&u, &v, 8);
                for (int j = 7; j >= 0; j--)
                    b_byte(f, (int)(u >> (8 * j) & 0xff));
                b_byte(f, 0x86);
            } else if (k == 2)
                b_byte(f, 0x86);
            if (!memo_on)
                continue;
            if (memo < 256) {
                b_byte(f, 'q');
                b_byte(f, (int)memo);
            } else {
                b_byte(f, 'r');
                b_le32(f, (uint32_t)memo);
            }
            memo++;
        }
        if (i % 1000 == 999 || i == n - 1)
            b_byte(f, 'e');
    }
    b_byte(f, '.');
}

/* --- hand-built frames: protocol 0 ------------------------------------- */

static void test_proto0_basic(void **state)
{
    (void)state;
    /* Python 2 pickle.dumps(list, 0) */
    OK("(lp0\n(S'a.b'\np1\n(I1764000000\nF0.5\ntp2\ntp3\na.",
       "a.b 0.5 1764000000\n");
    /* Python 3 protocol 0: V strings, memo PUT */
    OK("(lp0\n(Va.b\np1\n(I1764000000\nF0.5\ntp2\ntp3\na.",
       "a.b 0.5 1764000000\n");
    /* the hand-written Java/JavaScript subset: L longs, string values */
    OK("(l(S'app.count'\n(L1764000000L\nS'42'\ntta.",
       "app.count 42 1764000000\n");
    /* LIST with items under its MARK */
    OK("((S'a'\n(I1\nI2\nttl.", "a 2 1\n");
    OK("((S'a'\n(I1\nI2\ntt(S'b'\n(I3\nI4\nttl.", "a 2 1\nb 4 3\n");
    OK("(l.", "");
    OK("(t.", "");
}

static void test_proto0_string(void **state)
{
    (void)state;
    OK("(l(S'a\\'b\\\\c\\x41\\101\\n\\t\\q'\n(I1\nI2\ntta.",
       "a'b\\cAA\n\t\\q 2 1\n");
    OK("(l(S\"it's\"\n(I1\nI2\ntta.", "it's 2 1\n");
    OK("(l(S'\\a\\b\\f\\r\\v\\\"\\0\\7\\777x'\n(I1\nI2\ntta.",
       "\a\b\f\r\v\"\0\7\377x 2 1\n");
    OK("(l(S'\\x4a\\x4B'\n(I1\nI2\ntta.", "JK 2 1\n");
    OK("(l(S''\n(I1\nI2\ntta.", " 2 1\n");
    OK("(l(S'a'\n(S'1764000123'\nS'0.75'\ntta.", "a 0.75 1764000123\n");
    BAD("(l(S'abc\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'abc\"\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(Sabc\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'ab\\'\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'\\x4'\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'\\xg0'\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'abc'", PICKLE_TRUNCATED);
}

static void test_proto0_unicode(void **state)
{
    (void)state;
    OK("(l(Vm\xe9ter\n(I1\nI2\ntta.", "m\xc3\xa9ter 2 1\n");
    OK("(l(V\\u00e9\\u6307\n(I1\nI2\ntta.", "\xc3\xa9\xe6\x8c\x87 2 1\n");
    OK("(l(V\\U0001f600\n(I1\nI2\ntta.", "\xf0\x9f\x98\x80 2 1\n");
    OK("(l(Va\\u005cb\n(I1\nI2\ntta.", "a\\b 2 1\n");
    OK("(l(V\\\\u1234\n(I1\nI2\ntta.", "\\\\u1234 2 1\n");
    OK("(l(V\\\\\\u00e9\n(I1\nI2\ntta.", "\\\\\xc3\xa9 2 1\n");
    OK("(l(Vback\\slash\\\n(I1\nI2\ntta.", "back\\slash\\ 2 1\n");
    OK("(l(V\\ud800\n(I1\nI2\ntta.", "\xed\xa0\x80 2 1\n");
    OK("(l(V\x80\xff\n(I1\nI2\ntta.", "\xc2\x80\xc3\xbf 2 1\n");
    BAD("(l(V\\u12\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(V\\u12g4\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(V\\U00110000\n(I1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(V\\U0001f60\n(I1\nI2\ntta.", PICKLE_OPERAND);
}

static void test_proto0_numbers(void **state)
{
    (void)state;
    OK("(l(S'a'\n(I00\nI01\ntta.", "a 1 0\n");
    OK("(l(S'a'\n(I-5\nI+7\ntta.", "a 7 -5\n");
    OK("(l(S'a'\n(I 12 \nI0\ntta.", "a 0 12\n");
    OK("(l(S'a'\n(I9223372036854775807\nI-9223372036854775808\ntta.",
       "a -9223372036854775808 9223372036854775807\n");
    OK("(l(S'a'\n(I18446744073709551615\nI18446744073709551616\ntta.",
       "a 1.8446744073709552e+19 18446744073709551615\n");
    OK("(l(S'a'\n(I-9223372036854775809\nL12L\ntta.",
       "a 12 -9.223372036854776e+18\n");
    OK("(l(S'a'\n(L-99999999999999999999L\nL0001\ntta.", "a 1 -1e+20\n");
    OK("(l(S'a'\n(L100000000000000000000000000000000000000000000000000L\n"
       "L-0\ntta.",
       "a 0 1e+50\n");
    BAD("(l(S'a'\n(I\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(Iabc\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(I1.5\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(I--1\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(I0x10\nI2\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(LL\nI2\ntta.", PICKLE_OPERAND);

    OK("(l(S'a'\n(F1764000000.25\nF0.1\ntta.", "a 0.1 1764000000.25\n");
    OK("(l(S'a'\n(F1e-300\nF-2.5e-07\ntta.", "a -2.5e-07 1e-300\n");
    OK("(l(S'a'\n(Fnan\nFinf\ntta.", "a inf nan\n");
    OK("(l(S'a'\n(F-inf\nF-0.0\ntta.", "a -0 -inf\n");
    OK("(l(S'a'\n(F 2.0 \nF1E3\ntta.", "a 1000 2\n");
    BAD("(l(S'a'\n(F0x10\nF1\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(F1.5abc\nF1\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(F\nF1\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(Fnan(1)\nF1\ntta.", PICKLE_OPERAND);
    BAD("(l(S'a'\n(F1\0\nF1\ntta.", PICKLE_OPERAND);
}

static void test_proto0_stack(void **state)
{
    (void)state;
    /* PUT/GET: the name comes back from the memo */
    OK("(lp0\n(S'a'\np1\n(I1\nI2\ntta(g1\n(I3\nI4\ntta.", "a 2 1\na 4 3\n");
    /* POP drops the top */
    OK("(l(S'a'\n(I1\nI2\nI3\n0tta.", "a 2 1\n");
    /* POP with nothing above the MARK drops the MARK */
    OK("(l((0S'a'\n(I1\nI2\ntta.", "a 2 1\n");
    /* POP_MARK drops everything down to the MARK */
    OK("(l(I1\nI2\n1(S'a'\n(I1\nI2\ntta.", "a 2 1\n");
    /* DUP */
    OK("(l2(S'n'\n(I1\nF2.0\ntta0.", "n 2 1\n");
    OK("(l(S'n'\n(I1\nF2.0\nttp0\nag0\na.", "n 2 1\nn 2 1\n");
    BAD("(lp0\ng1\n.", PICKLE_MEMO);
    BAD("(lp-1\n.", PICKLE_OPERAND);
    BAD("(lpx\n.", PICKLE_OPERAND);
    BAD("(lp\n.", PICKLE_OPERAND);
    BAD("(lp0\ng\n.", PICKLE_OPERAND);
    BAD("(lp0", PICKLE_TRUNCATED);
    BAD("0.", PICKLE_STACK);
    BAD("1.", PICKLE_STACK);
    BAD("2.", PICKLE_STACK);
    BAD("p0\n.", PICKLE_STACK);
    BAD("(p0\n.", PICKLE_STACK);
    BAD("(l(S'a'\n(I1\n2\ntta.", PICKLE_OPCODE); /* '\\n' */
}

/* --- hand-built frames: binary protocols ------------------------------- */

/* A one-point protocol-2 frame: name "n", timestamp 0, and the value the
 * opcodes v/vlen push; expect the value text want (or a refusal). */
static void s_val(int line, const char *v, size_t vlen, const char *want,
                  pickle_status_t bad)
{
    buf_t f = {0};
    char exp[128];
    int n;

    b_put(&f, L("\x80\x02]\x8c\x01nK\x00"));
    b_put(&f, v, vlen);
    b_put(&f, L("\x86\x86"
                "a."));
    if (want) {
        n = snprintf(exp, sizeof exp, "n %s 0\n", want);
        s_ok(line, f.b, f.n, NULL, exp, (size_t)n);
    } else
        s_bad(line, f.b, f.n, NULL, bad);
    free(f.b);
}

#define VAL(lit, want)  s_val(__LINE__, L(lit), want, PICKLE_OK)
#define VALBAD(lit, st) s_val(__LINE__, L(lit), NULL, st)

static void test_binary_numbers(void **state)
{
    (void)state;
    VAL("K\x07", "7");
    VAL("K\xff", "255");
    VAL("M\x00\x01", "256");
    VAL("M\xff\xff", "65535");
    VAL("J\xff\xff\xff\xff", "-1");
    VAL("J\x00\x00\x00\x80", "-2147483648");
    VAL("J\xff\xff\xff\x7f", "2147483647");
    VAL("G\x3f\xe0\x00\x00\x00\x00\x00\x00", "0.5");
    VAL("G\x3f\xb9\x99\x99\x99\x99\x99\x9a", "0.1");
    VAL("G\x7f\xf8\x00\x00\x00\x00\x00\x00", "nan");
    VAL("G\x7f\xf0\x00\x00\x00\x00\x00\x00", "inf");
    VAL("G\xff\xf0\x00\x00\x00\x00\x00\x00", "-inf");
    VAL("G\x80\x00\x00\x00\x00\x00\x00\x00", "-0");
    VAL("\x8a\x00", "0");
    VAL("\x8a\x01\xff", "-1");
    VAL("\x8a\x02\xff\x00", "255");
    VAL("\x8a\x02\x7f\xff", "-129");
    VAL("\x8a\x06\x00\x00\x00\x00\x00\x01", "1099511627776");
    VAL("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f", "9223372036854775807");
    VAL("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80", "-9223372036854775808");
    VAL("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00", "9223372036854775808");
    VAL("\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00", "18446744073709551615");
    VAL("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01",
        "1.8446744073709552e+19");
    VAL("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff",
        "-1.8446744073709552e+19");
    VAL("\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\xff",
        "-9.223372036854776e+18");
    VAL("\x8a\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "-1");
    VAL("\x8a\x0a\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", "1");
    VAL("\x8a\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80",
        "-1.5474250491067253e+26");
    VAL("\x8b\x02\x00\x00\x00\x00\x01", "256");
    VAL("\x8b\x00\x00\x00\x00", "0");
    VAL("\x88", "1");
    VAL("\x89", "0");
    VAL("\x8c\x02"
        "42",
        "42");
    VAL("X\x05\x00\x00\x00"
        "0.125",
        "0.125");
    VAL("C\x03"
        "1.5",
        "1.5");
    VALBAD("N", PICKLE_SHAPE);
    VALBAD(")", PICKLE_SHAPE);
    VALBAD("]", PICKLE_SHAPE);
    VALBAD("\x8b\xff\xff\xff\xff", PICKLE_OPERAND);
    VALBAD("\x8a\x05\x00", PICKLE_TRUNCATED);
    VALBAD("\x8b\x05\x00\x00\x00\x00", PICKLE_TRUNCATED);
    VALBAD("G\x00\x00", PICKLE_TRUNCATED);
}

/* A one-point protocol-2 frame whose name the opcodes v/vlen push;
 * expect the name want/wantlen. */
static void s_name(int line, const char *v, size_t vlen, const char *want,
                   size_t wantlen, pickle_status_t bad)
{
    buf_t f = {0};
    char exp[512];

    b_put(&f, L("\x80\x02]"));
    b_put(&f, v, vlen);
    b_put(&f, L("K\x01K\x02\x86\x86"
                "a."));
    if (want) {
        assert_true(wantlen + 5 <= sizeof exp);
        memcpy(exp, want, wantlen);
        memcpy(exp + wantlen, " 2 1\n", 5);
        s_ok(line, f.b, f.n, NULL, exp, wantlen + 5);
    } else
        s_bad(line, f.b, f.n, NULL, bad);
    free(f.b);
}

#define NAME(lit, want)  s_name(__LINE__, L(lit), L(want), PICKLE_OK)
#define NAMEBAD(lit, st) s_name(__LINE__, L(lit), NULL, 0, st)

static void test_binary_strings(void **state)
{
    (void)state;
    NAME("T\x03\x00\x00\x00"
         "abc",
         "abc");
    NAME("U\x03"
         "abc",
         "abc");
    NAME("U\x00", "");
    NAME("X\x04\x00\x00\x00m\xc3\xa9t", "m\xc3\xa9t");
    NAME("B\x03\x00\x00\x00"
         "a\0c",
         "a\0c");
    NAME("C\x02"
         "ab",
         "ab");
    NAME("\x8c\x03"
         "abc",
         "abc");
    NAME("\x8d\x03\x00\x00\x00\x00\x00\x00\x00"
         "abc",
         "abc");
    NAME("\x8e\x03\x00\x00\x00\x00\x00\x00\x00"
         "abc",
         "abc");
    NAME("\x96\x03\x00\x00\x00\x00\x00\x00\x00"
         "abc",
         "abc");
    NAMEBAD("T\xff\xff\xff\xff", PICKLE_OPERAND);
    NAMEBAD("T\x04\x00\x00\x00"
            "abc",
            PICKLE_OPCODE); /* eats 'K' */
    NAMEBAD("X\x10\x00\x00\x00"
            "abc",
            PICKLE_TRUNCATED);
    NAMEBAD("\x8d\x00\x00\x00\x00\x00\x00\x00\x80", PICKLE_STRING);
    NAMEBAD("\x8c\xff"
            "abc",
            PICKLE_TRUNCATED);
    NAMEBAD("K\x05", PICKLE_SHAPE);
    NAMEBAD("G\x3f\xe0\x00\x00\x00\x00\x00\x00", PICKLE_SHAPE);
    NAMEBAD("N", PICKLE_SHAPE);
    NAMEBAD(")", PICKLE_SHAPE);
}

static void test_binary_memo(void **state)
{
    (void)state;
    /* BINPUT/BINGET */
    OK("\x80\x02]q\x00(\x8c\x01nq\x01K\x01K\x02\x86\x86h\x01K\x03K\x04"
       "\x86\x86"
       "e.",
       "n 2 1\nn 4 3\n");
    /* LONG_BINPUT/LONG_BINGET at a high index */
    OK("\x80\x02](\x8c\x01nr\x2c\x01\x00\x00K\x01K\x02\x86\x86j\x2c\x01\x00"
       "\x00K\x03K\x04\x86\x86"
       "e.",
       "n 2 1\nn 4 3\n");
    /* MEMOIZE numbers entries from 0 in the order they are made */
    OK("\x80\x04]\x94(\x8c\x01n\x94K\x01K\x02\x86\x94\x86\x94h\x01h\x02"
       "\x86"
       "e.",
       "n 2 1\nn 2 1\n");
    /* a memo entry may be overwritten */
    OK("\x80\x02](\x8c\x01"
       "aq\x01\x8c\x01"
       "bq\x01"
       "0K\x01K\x02\x86\x86"
       "h\x01K\x03K\x04\x86\x86"
       "e.",
       "a 2 1\nb 4 3\n");
    /* the memo holds the object, not a copy: P = [] is memoized, put in an
     * item, and only then filled; the item sees the appends */
    OK("\x80\x02]q\x00]q\x01"
       "0\x8c\x01nh\x01\x86"
       "ah\x01(K\x05K\x07"
       "e0.",
       "n 7 5\n");
    /* the same for the outer list, fetched back and appended to */
    OK("\x80\x02]q\x00"
       "0h\x00\x8c\x01nK\x01K\x02\x86\x86"
       "a.",
       "n 2 1\n");
    /* a self-containing list: a cycle is no danger, only a bad shape */
    BAD("\x80\x02]q\x00h\x00"
        "a.",
        PICKLE_SHAPE);
    BAD("\x80\x02]q\x00(h\x09"
        "e.",
        PICKLE_MEMO);
    BAD("\x80\x02]q\x00q\x02h\x01.", PICKLE_MEMO);
    BAD("\x80\x02]j\x00\x00\x00\x01.", PICKLE_MEMO);
    BAD("\x80\x02]q\x00h", PICKLE_TRUNCATED);
    BAD("\x80\x02]r\x00\x00", PICKLE_TRUNCATED);
    BAD("\x80\x02q\x00.", PICKLE_STACK);
    BAD("\x80\x04\x94.", PICKLE_STACK);
}

static void test_framing(void **state)
{
    (void)state;
    OK("\x80\x00].", "");
    OK("\x80\x01].", "");
    OK("\x80\x02].", "");
    OK("\x80\x03].", "");
    OK("\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00].", "");
    OK("\x80\x05\x95\x01\x00\x00\x00\x00\x00\x00\x00].", "");
    OK("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00].", "");
    OK("].", "");
    OK("]\x80\x02.", ""); /* PROTO anywhere */
    OK("].trailing bytes are ignored", "");
    BAD("\x80\x06].", PICKLE_PROTOCOL);
    BAD("\x80\xff].", PICKLE_PROTOCOL);
    BAD("\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00].", PICKLE_TRUNCATED);
    BAD("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x80].", PICKLE_TRUNCATED);
    BAD("\x80\x04\x95\x00\x00\x00", PICKLE_TRUNCATED);
    BAD("\x80", PICKLE_TRUNCATED);
    BAD("]", PICKLE_TRUNCATED);
    BAD("", PICKLE_TRUNCATED);
    s_bad(__LINE__, NULL, 0, NULL, PICKLE_TRUNCATED);
}

static void test_containers(void **state)
{
    (void)state;
    /* lists for tuples at every level, a tuple for the outer list */
    OK("\x80\x02]\x8c\x01nK\x01K\x02\x86\x86"
       "a.",
       "n 2 1\n");
    OK("\x80\x02(\x8c\x01nK\x01K\x02\x86\x86t.", "n 2 1\n");
    OK("\x80\x02\x8c\x01nK\x01K\x02\x86\x86\x85.", "n 2 1\n");
    OK("\x80\x02]]\x8c\x01n"
       "a]K\x01"
       "aK\x02"
       "aaa.",
       "n 2 1\n");
    OK("\x80\x02((\x8c\x01n(K\x01K\x02lll.", "n 2 1\n");
    OK("\x80\x02]((\x8c\x01n(K\x01K\x02tte.", "n 2 1\n");
    OK("\x80\x02((\x8c\x01n(K\x01K\x02ttt.", "n 2 1\n");
}

static void test_shape(void **state)
{
    (void)state;
    BAD("\x80\x02K\x01.", PICKLE_SHAPE); /* not a list */
    BAD("\x80\x02\x8c\x01n.", PICKLE_SHAPE);
    BAD("\x80\x02N.", PICKLE_SHAPE);
    BAD("\x80\x02]K\x01"
        "a.",
        PICKLE_SHAPE); /* item not a seq */
    BAD("\x80\x02])"
        "a.",
        PICKLE_SHAPE); /* empty item */
    BAD("\x80\x02]\x8c\x01n\x85"
        "a.",
        PICKLE_SHAPE); /* (path,) */
    BAD("\x80\x02]\x8c\x01nK\x01K\x02\x87"
        "a.",
        PICKLE_SHAPE);
    BAD("\x80\x02]\x8c\x01nK\x01\x85\x86"
        "a.",
        PICKLE_SHAPE);
    BAD("\x80\x02]\x8c\x01nK\x01K\x02K\x03\x87\x86"
        "a.",
        PICKLE_SHAPE);
    BAD("\x80\x02]\x8c\x01nK\x01\x86"
        "a.",
        PICKLE_SHAPE);
    BAD("\x80\x02]K\x01K\x01K\x02\x86\x86"
        "a.",
        PICKLE_SHAPE);
    BAD("\x80\x02]\x8c\x01nNK\x02\x86\x86"
        "a.",
        PICKLE_SHAPE);
    BAD("\x80\x02]\x8c\x01nK\x01]\x86\x86"
        "a.",
        PICKLE_SHAPE);
    /* a bad item after good ones refuses the whole frame */
    BAD("\x80\x02](\x8c\x01nK\x01K\x02\x86\x86\x8c\x01mK\x01N\x86\x86"
        "e.",
        PICKLE_SHAPE);
}

static void test_stack(void **state)
{
    (void)state;
    BAD(".", PICKLE_STACK);
    BAD("\x80\x02]].", PICKLE_STACK); /* two left */
    BAD("\x80\x02(].", PICKLE_STACK); /* MARK open */
    BAD("\x80\x02)K\x01"
        "a.",
        PICKLE_STACK); /* APPEND to tuple */
    BAD("\x80\x02\x8c\x01nK\x01"
        "a.",
        PICKLE_STACK);                /* to a string */
    BAD("\x80\x02]a.", PICKLE_STACK); /* nothing to add */
    BAD("\x80\x02"
        "a.",
        PICKLE_STACK);
    BAD("\x80\x02](a.", PICKLE_STACK); /* list under MARK */
    BAD("\x80\x02](K\x01"
        "a.",
        PICKLE_STACK);
    BAD("\x80\x02]K\x01"
        "e.",
        PICKLE_STACK); /* no MARK */
    BAD("\x80\x02(K\x01"
        "e.",
        PICKLE_STACK); /* nothing under */
    BAD("\x80\x02K\x01(K\x01"
        "e.",
        PICKLE_STACK); /* not a list */
    BAD("\x80\x02K\x01t.", PICKLE_STACK);
    BAD("\x80\x02K\x01l.", PICKLE_STACK);
    BAD("\x80\x02\x85.", PICKLE_STACK);
    BAD("\x80\x02K\x01(K\x01\x86.", PICKLE_STACK); /* across a MARK */
    BAD("\x80\x02K\x01(\x87.", PICKLE_STACK);
    BAD("\x80\x02K\x01(0.", PICKLE_SHAPE); /* POP takes MARK */
    BAD("\x80\x02K\x01(2.", PICKLE_STACK); /* DUP under MARK */
    OK("\x80\x02](K\x01"
       "1.",
       "");
}

/* The refused opcodes: each alone, and each after good datapoints. */
static void test_refused_opcodes(void **state)
{
    static const struct {
        unsigned char op;
        pickle_status_t st;
    } refused[] = {
        {'c', PICKLE_UNSAFE},       {0x93, PICKLE_UNSAFE},
        {'R', PICKLE_UNSAFE},       {'b', PICKLE_UNSAFE},
        {'i', PICKLE_UNSAFE},       {'o', PICKLE_UNSAFE},
        {0x81, PICKLE_UNSAFE},      {0x92, PICKLE_UNSAFE},
        {0x82, PICKLE_UNSAFE},      {0x83, PICKLE_UNSAFE},
        {0x84, PICKLE_UNSAFE},      {'P', PICKLE_UNSAFE},
        {'Q', PICKLE_UNSAFE},       {'}', PICKLE_UNSUPPORTED},
        {'d', PICKLE_UNSUPPORTED},  {'s', PICKLE_UNSUPPORTED},
        {'u', PICKLE_UNSUPPORTED},  {0x8f, PICKLE_UNSUPPORTED},
        {0x90, PICKLE_UNSUPPORTED}, {0x91, PICKLE_UNSUPPORTED},
        {0x97, PICKLE_UNSUPPORTED}, {0x98, PICKLE_UNSUPPORTED},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        buf_t f = {0};

        b_put(&f, L("\x80\x02"));
        b_byte(&f, refused[i].op);
        b_put(&f, L("os\nsystem\n."));
        s_bad(__LINE__, f.b, f.n, NULL, refused[i].st);
        f.n = 0;
        b_put(&f, L("\x80\x02](\x8c\x01nK\x01K\x02\x86\x86"));
        b_byte(&f, refused[i].op);
        b_put(&f, L("e."));
        s_bad(__LINE__, f.b, f.n, NULL, refused[i].st);
        free(f.b);
    }
    /* the classic payloads */
    BAD("cos\nsystem\n(S'echo pwned'\ntR.", PICKLE_UNSAFE);
    BAD("\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06"
        "system\x94\x93\x94\x8c\x04true\x94\x85\x94R\x94.",
        PICKLE_UNSAFE);
    BAD("\x80\x02}q\x00X\x01\x00\x00\x00"
        "aK\x01s.",
        PICKLE_UNSUPPORTED);
    BAD("(dp0\nS'a'\nI1\ns.", PICKLE_UNSUPPORTED);
}

/* Every byte that is no opcode refuses the frame as unknown. */
static void test_unknown_opcodes(void **state)
{
    static const char known[] = "().012FIJKLMNPQRSTUVXabcde}ghijl]oprqs)tuGBC";
    int op;

    (void)state;
    for (op = 0; op < 256; op++) {
        unsigned char f[2] = {(unsigned char)op, '.'};

        if ((op != 0 && strchr(known, op)) || (op >= 0x80 && op <= 0x98))
            continue;
        s_bad(__LINE__, f, 2, NULL, PICKLE_OPCODE);
    }
}

/* --- limits ------------------------------------------------------------ */

static void test_limit_depth(void **state)
{
    pickle_limits_t lim = {.max_depth = 3};
    buf_t f = {0};

    (void)state;
    /* a good frame is three deep */
    OKL("\x80\x02]\x8c\x01nK\x01K\x02\x86\x86"
        "a.",
        &lim, "n 2 1\n");
    lim.max_depth = 2;
    BADL("\x80\x02]\x8c\x01nK\x01K\x02\x86\x86"
         "a.",
         &lim, PICKLE_DEPTH);
    BADL("\x80\x02(((.", &lim, PICKLE_DEPTH);
    BADL("\x80\x02)\x85\x85.", &lim, PICKLE_DEPTH);
    BADL("\x80\x02]]]aa.", &lim, PICKLE_DEPTH);
    BADL("\x80\x02](]]ae.", &lim, PICKLE_DEPTH);

    /* defaults: 64 nested lists are fine (then a bad shape), 65 are not */
    b_put(&f, L("\x80\x02"));
    b_rep(&f, ']', 64);
    b_rep(&f, 'a', 63);
    b_byte(&f, '.');
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_SHAPE);
    f.n = 0;
    b_put(&f, L("\x80\x02"));
    b_rep(&f, ']', 65);
    b_rep(&f, 'a', 64);
    b_byte(&f, '.');
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_DEPTH);
    /* a list appended to itself grows deeper each time */
    f.n = 0;
    b_put(&f, L("\x80\x02]q\x00"));
    for (int i = 0; i < 70; i++)
        b_put(&f, L("h\x00"
                    "a"));
    b_byte(&f, '.');
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_DEPTH);
    /* 64 open MARKs are fine, 65 are not */
    f.n = 0;
    b_rep(&f, '(', 64);
    b_byte(&f, '.');
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_STACK);
    f.n = 0;
    b_rep(&f, '(', 65);
    b_byte(&f, '.');
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_DEPTH);
    /* the nesting bomb: 100000 empty lists, not nested, not a result */
    f.n = 0;
    b_put(&f, L("\x80\x02"));
    b_rep(&f, ']', 100000);
    b_byte(&f, '.');
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_STACK);
    f.n = 0;
    b_rep(&f, '(', 100000);
    b_byte(&f, '.');
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_DEPTH);
    free(f.b);
}

static void test_limit_items(void **state)
{
    pickle_limits_t lim = {.max_items = 3};
    buf_t f = {0};
    size_t i;

    (void)state;
    OKL("\x80\x02](\x8c\x01"
        "aK\x01K\x02\x86\x86\x8c\x01"
        "bK\x01K\x02\x86"
        "\x86\x8c\x01"
        "cK\x01K\x02\x86\x86"
        "e.",
        &lim, "a 2 1\nb 2 1\nc 2 1\n");
    BADL("\x80\x02](\x8c\x01"
         "aK\x01K\x02\x86\x86\x8c\x01"
         "bK\x01K\x02\x86"
         "\x86\x8c\x01"
         "cK\x01K\x02\x86\x86\x8c\x01"
         "dK\x01K\x02\x86\x86"
         "e.",
         &lim, PICKLE_ITEMS);
    BADL("\x80\x02](\x8c\x01"
         "aK\x01K\x02\x86\x86\x8c\x01"
         "bK\x01K\x02\x86"
         "\x86\x8c\x01"
         "cK\x01K\x02\x86\x86"
         "e\x8c\x01"
         "dK\x01K\x02\x86"
         "\x86"
         "a.",
         &lim, PICKLE_ITEMS);
    BADL("\x80\x02(K\x01K\x01K\x01K\x01t.", &lim, PICKLE_ITEMS);
    BADL("\x80\x02(K\x01K\x01K\x01K\x01l.", &lim, PICKLE_ITEMS);
    /* the stack: max_items + max_depth + 8 = 75 entries */
    f.n = 0;
    b_put(&f, L("\x80\x02"));
    for (i = 0; i < 75; i++)
        b_put(&f, L("K\x01"));
    b_put(&f, L("1."));
    s_bad(__LINE__, f.b, f.n, &lim, PICKLE_STACK);
    f.n = 0;
    b_put(&f, L("\x80\x02"));
    for (i = 0; i < 76; i++)
        b_put(&f, L("K\x01"));
    b_put(&f, L("1."));
    s_bad(__LINE__, f.b, f.n, &lim, PICKLE_ITEMS);

    /* defaults: 100000 datapoints pass, 100001 do not */
    f.n = 0;
    b_proto2(&f, 100000, 0);
    {
        pts_t pts;

        assert_int_equal(s_decode(f.b, f.n, NULL, &pts), PICKLE_OK);
        assert_int_equal(pts.n, 100000);
        assert_string_equal(pts.p[99999].name, "p.99999");
        assert_string_equal(pts.p[99999].value, "24999.75");
        assert_string_equal(pts.p[99999].ts, "1764099999");
        s_pts_free(&pts);
    }
    f.n = 0;
    b_proto2(&f, 100001, 0);
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_ITEMS);
    /* as Python writes it, 3 memo entries per datapoint */
    f.n = 0;
    b_proto2(&f, 33333, 1);
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_OK);
    f.n = 0;
    b_proto2(&f, 33334, 1);
    s_bad(__LINE__, f.b, f.n, NULL, PICKLE_MEMO_LIMIT);
    free(f.b);
}

static void test_limit_memo(void **state)
{
    pickle_limits_t lim = {.max_memo = 10};

    (void)state;
    OKL("\x80\x02]q\x09.", &lim, "");
    BADL("\x80\x02]q\x0a.", &lim, PICKLE_MEMO_LIMIT);
    BADL("\x80\x02]r\x0a\x00\x00\x00.", &lim, PICKLE_MEMO_LIMIT);
    BADL("]p10\n.", &lim, PICKLE_MEMO_LIMIT);
    BADL("\x80\x04]\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94.", &lim,
         PICKLE_MEMO_LIMIT);
    BADL("\x80\x02]h\x0a.", &lim, PICKLE_MEMO);
    OK("]p99999\n.", "");
    BAD("]p100000\n.", PICKLE_MEMO_LIMIT);
    BAD("\x80\x02]r\xff\xff\xff\xff.", PICKLE_MEMO_LIMIT);
    BAD("]p999999999999999999\n.", PICKLE_MEMO_LIMIT);
    BAD("]p9999999999999999999\n.", PICKLE_OPERAND);
    BAD("\x80\x02]j\xff\xff\xff\xff.", PICKLE_MEMO);
}

static void test_limit_string(void **state)
{
    pickle_limits_t lim = {.max_string = 4};

    (void)state;
    OKL("\x80\x02]\x8c\x04nnnnK\x01K\x02\x86\x86"
        "a.",
        &lim, "nnnn 2 1\n");
    BADL("\x80\x02]\x8c\x05nnnnnK\x01K\x02\x86\x86"
         "a.",
         &lim, PICKLE_STRING);
    BADL("\x80\x02]U\x05nnnnn.", &lim, PICKLE_STRING);
    BADL("\x80\x02]C\x05nnnnn.", &lim, PICKLE_STRING);
    BADL("\x80\x02]T\x05\x00\x00\x00nnnnn.", &lim, PICKLE_STRING);
    BADL("\x80\x02]X\x05\x00\x00\x00nnnnn.", &lim, PICKLE_STRING);
    BADL("\x80\x02]B\x05\x00\x00\x00nnnnn.", &lim, PICKLE_STRING);
    BADL("\x80\x02]\x8d\x05\x00\x00\x00\x00\x00\x00\x00nnnnn.", &lim,
         PICKLE_STRING);
    BADL("\x80\x02]\x8e\x05\x00\x00\x00\x00\x00\x00\x00nnnnn.", &lim,
         PICKLE_STRING);
    BADL("\x80\x02]\x96\x05\x00\x00\x00\x00\x00\x00\x00nnnnn.", &lim,
         PICKLE_STRING);
    BADL("(S'nnnnn'\n.", &lim, PICKLE_STRING);
    BADL("(Vnnnnn\n.", &lim, PICKLE_STRING);
    BADL("\x80\x02\x8a\x05\x00\x00\x00\x00\x00.", &lim, PICKLE_STRING);
    BADL("\x80\x02\x8b\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00.", &lim,
         PICKLE_STRING);
    /* the limit is on the unescaped length */
    OKL("(l(S'\\x41\\x42\\x43\\x44'\n(I1\nI2\ntta.", &lim, "ABCD 2 1\n");
    OKL("(l(V\\u00e9\\u00e9\n(I1\nI2\ntta.", &lim, "\xc3\xa9\xc3\xa9 2 1\n");
    BADL("(l(V\\u00e9\\u00e9x\n(I1\nI2\ntta.", &lim, PICKLE_STRING);
    /* the limit of a huge declared length is checked before the bytes */
    BAD("\x80\x02]X\xff\xff\xff\x7f.", PICKLE_STRING);
}

static void test_limits_default(void **state)
{
    pickle_limits_t lim, zero = {0};
    pickle_t *p = pickle_new(&zero);

    (void)state;
    pickle_limits_default(&lim);
    assert_int_equal(lim.max_depth, PICKLE_DEFAULT_MAX_DEPTH);
    assert_int_equal(lim.max_items, PICKLE_DEFAULT_MAX_ITEMS);
    assert_int_equal(lim.max_memo, PICKLE_DEFAULT_MAX_MEMO);
    assert_int_equal(lim.max_string, PICKLE_DEFAULT_MAX_STRING);
    assert_int_equal(lim.max_depth, 64);
    assert_int_equal(lim.max_items, 100000);
    assert_int_equal(lim.max_memo, 100000);
    assert_int_equal(lim.max_string, 65536);
    assert_non_null(p);
    pickle_destroy(&p);
    assert_null(p);
    pickle_destroy(&p);
    pickle_destroy(NULL);
    /* zero fields take the defaults */
    OKL("]p99999\n.", &zero, "");
    BADL("]p100000\n.", &zero, PICKLE_MEMO_LIMIT);
}

/* --- golden frames ----------------------------------------------------- */

/* Read a whole file into a malloc'd block.  Returns NULL when missing. */
static unsigned char *s_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *b = NULL;
    size_t cap = 0, n = 0, r;

    if (!fp)
        return NULL;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            b = realloc(b, cap + 1);
            assert_non_null(b);
        }
        r = fread(b + n, 1, cap - n, fp);
        n += r;
    } while (r > 0);
    fclose(fp);
    b[n] = 0;
    *len = n;
    return b;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir ending in suffix, sorted, in a NULL-terminated array. */
static char **s_list(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    size_t n = 0, sl = strlen(suffix);

    if (!d) {
        print_error("cannot open %s: %s\n", dir, strerror(errno));
        fail();
    }
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);

        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0) {
            v = realloc(v, (n + 2) * sizeof *v);
            assert_non_null(v);
            v[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, s_cmp_str);
    else
        v = calloc(1, sizeof *v);
    v[n] = NULL;
    return v;
}

static void s_list_free(char **v)
{
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

/* The directory the environment variable name gives; else dflt (relative
 * to the cwd; NULL: none) when it exists; else rel next to this source
 * file, so that a build in another directory finds the tree's files
 * ("../tests/..."). */
static const char *s_dir(const char *name, const char *dflt, const char *rel,
                         char *buf, size_t cap)
{
    const char *v = getenv(name), *slash = strrchr(__FILE__, '/');
    DIR *d;

    if (v && *v)
        return v;
    if (dflt != NULL && (d = opendir(dflt)) != NULL) {
        closedir(d);
        return dflt;
    }
    snprintf(buf, cap, "%.*s%s", slash ? (int)(slash - __FILE__ + 1) : 0,
             __FILE__, rel);
    return buf;
}

/* Every prefix of a good frame must be refused as truncated. */
static void s_truncations(const char *what, const unsigned char *buf,
                          size_t len)
{
    size_t cut;

    for (cut = 0; cut < len; cut++) {
        pts_t pts;
        pickle_status_t st = s_decode(buf, cut, NULL, &pts);

        s_pts_free(&pts);
        if (st != PICKLE_TRUNCATED) {
            print_error("%s cut at %zu of %zu: %s\n", what, cut, len,
                        pickle_status_str(st));
            fail();
        }
    }
}

static double s_num(const char *s)
{
    char *end;
    double d = strtod(s, &end);

    if (end == s || *end != '\0') {
        print_error("not a number: \"%s\"\n", s);
        fail();
    }
    return d;
}

/* The shared frames: NAME.frame against NAME.expect. */
static void test_shared_frames(void **state)
{
    char buf[4096];
    const char *dir = s_dir("ORCHESTER_PICKLE_TESTDATA", NULL,
                            "data/shared-pickle", buf, sizeof buf);
    char **names = s_list(dir, ".frame");
    size_t i, nframes = 0;

    (void)state;
    for (i = 0; names[i]; i++) {
        char path[4096], *exp, *line, *save = NULL;
        unsigned char *frame;
        size_t flen, elen, k = 0, stem = strlen(names[i]) - 6;
        pickle_status_t st;
        pts_t pts;

        assert_true(snprintf(path, sizeof path, "%s/%s", dir, names[i]) <
                    (int)sizeof path);
        frame = s_slurp(path, &flen);
        assert_non_null(frame);
        assert_true(snprintf(path, sizeof path, "%s/%.*s.expect", dir,
                             (int)stem, names[i]) < (int)sizeof path);
        exp = (char *)s_slurp(path, &elen);
        assert_non_null(exp);
        assert_true(flen >= 4);
        assert_int_equal((size_t)frame[0] << 24 | (size_t)frame[1] << 16 |
                             (size_t)frame[2] << 8 | frame[3],
                         flen - 4);
        st = s_decode(frame + 4, flen - 4, NULL, &pts);
        if (strncmp(exp, "REJECT", 6) == 0) {
            if (st == PICKLE_OK) {
                print_error("%s: accepted, want REJECT\n", names[i]);
                fail();
            }
        } else {
            if (st != PICKLE_OK) {
                print_error("%s: %s\n", names[i], pickle_status_str(st));
                fail();
            }
            s_truncations(names[i], frame + 4, flen - 4);
            for (line = strtok_r(exp, "\n", &save); line;
                 line = strtok_r(NULL, "\n", &save)) {
                char *sp1 = strchr(line, ' '), *sp2;
                double want, got;

                /* the caller drops NaN values, as carbon does */
                while (k < pts.n && isnan(s_num(pts.p[k].value)))
                    k++;
                assert_non_null(sp1);
                sp2 = strchr(sp1 + 1, ' ');
                assert_non_null(sp2);
                *sp1 = *sp2 = '\0';
                if (k >= pts.n) {
                    print_error("%s: missing \"%s\"\n", names[i], line);
                    fail();
                }
                assert_string_equal(pts.p[k].name, line);
                want = s_num(sp1 + 1);
                got = s_num(pts.p[k].value);
                assert_true(fabs(got - want) <= 1e-12 * fabs(want));
                assert_true(trunc(s_num(pts.p[k].ts)) == s_num(sp2 + 1));
                k++;
            }
            while (k < pts.n && isnan(s_num(pts.p[k].value)))
                k++;
            assert_int_equal(k, pts.n);
        }
        s_pts_free(&pts);
        free(frame);
        free(exp);
        nframes++;
    }
    s_list_free(names);
    if (nframes == 0) {
        print_error("no frames in %s\n", dir);
        fail();
    }
    print_message("%s: %zu frames\n", dir, nframes);
}

/* Decode the hex text h/n into out (n/2 bytes). */
static size_t s_unhex(const char *h, size_t n, char *out)
{
    size_t i;

    assert_true(n % 2 == 0);
    for (i = 0; i < n / 2; i++) {
        unsigned v;

        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (char)v;
    }
    return n / 2;
}

/* Significant digits of a decimal text ("0.00120" -> 2, "1e+22" -> 1). */
static int s_sig(const char *s)
{
    const char *first = NULL, *last = NULL;

    for (; *s && *s != 'e' && *s != 'E'; s++) {
        if (*s >= '1' && *s <= '9') {
            if (!first)
                first = s;
            last = s;
        }
    }
    if (!first)
        return 0;
    int n = 0;

    for (s = first; s <= last; s++)
        n += *s >= '0' && *s <= '9';
    return n;
}

/* Check a decoded field against its NAME.points form (i:, f:, s:). */
static void s_field(const char *what, const char *want, const char *got,
                    size_t gotlen)
{
    if (strncmp(want, "s:", 2) == 0) {
        char buf[1024];
        size_t n = s_unhex(want + 2, strlen(want + 2), buf);

        assert_int_equal(gotlen, n);
        assert_memory_equal(got, buf, n);
    } else if (strncmp(want, "i:", 2) == 0) {
        const char *d = want + 2;
        int fits;

        errno = 0;
        if (*d == '-')
            (void)strtoll(d, NULL, 10);
        else
            (void)strtoull(d, NULL, 10);
        fits = errno != ERANGE;
        if (fits) {
            if (strcmp(got, d) != 0) {
                print_error("%s: got %s, want %s\n", what, got, d);
                fail();
            }
        } else {
            double w = s_num(d), g = s_num(got);

            assert_true(fabs(g - w) <= 1e-12 * fabs(w));
        }
    } else if (strncmp(want, "f:", 2) == 0) {
        double w = s_num(want + 2), g = s_num(got);

        if (isnan(w)) {
            assert_true(isnan(g));
            return;
        }
        if (memcmp(&w, &g, sizeof w) != 0 || s_sig(got) != s_sig(want + 2)) {
            print_error("%s: got %s, want %s\n", what, got, want + 2);
            fail();
        }
    } else
        fail_msg("bad points field %s", want);
}

/* Frames Python wrote: NAME.frames against NAME.points. */
static void test_python_frames(void **state)
{
    char buf[4096];
    const char *dir = s_dir("ORCHESTER_PICKLE_DATA", "tests/data/pickle",
                            "data/pickle", buf, sizeof buf);
    char **names = s_list(dir, ".frames");
    size_t i, nfiles = 0, nframes = 0, npoints = 0;

    (void)state;
    for (i = 0; names[i]; i++) {
        char path[4096], *exp, *line, *save = NULL;
        unsigned char *all;
        size_t alen, elen, off = 0, stem = strlen(names[i]) - 7;

        assert_true(snprintf(path, sizeof path, "%s/%s", dir, names[i]) <
                    (int)sizeof path);
        all = s_slurp(path, &alen);
        assert_non_null(all);
        assert_true(snprintf(path, sizeof path, "%s/%.*s.points", dir,
                             (int)stem, names[i]) < (int)sizeof path);
        exp = (char *)s_slurp(path, &elen);
        assert_non_null(exp);
        line = strtok_r(exp, "\n", &save);
        for (size_t idx = 0; off < alen; idx++) {
            size_t flen, k = 0;
            pickle_status_t st;
            pts_t pts;
            char what[256];

            assert_true(alen - off >= 4);
            flen = (size_t)all[off] << 24 | (size_t)all[off + 1] << 16 |
                   (size_t)all[off + 2] << 8 | all[off + 3];
            off += 4;
            assert_true(flen <= alen - off);
            snprintf(what, sizeof what, "%s frame %zu", names[i], idx);
            st = s_decode(all + off, flen, NULL, &pts);
            assert_non_null(line);
            if (strncmp(line, "REJECT ", 7) == 0) {
                if (strcmp(line + 7, pickle_status_str(st)) != 0) {
                    print_error("%s: got %s, want %s\n", what,
                                pickle_status_str(st), line + 7);
                    fail();
                }
                line = strtok_r(NULL, "\n", &save);
            } else {
                if (st != PICKLE_OK) {
                    print_error("%s: %s\n", what, pickle_status_str(st));
                    fail();
                }
                if (flen <= 1024)
                    s_truncations(what, all + off, flen);
                for (; line && strcmp(line, "--") != 0;
                     line = strtok_r(NULL, "\n", &save)) {
                    char *f[3], name[1024], *fsave = NULL;
                    size_t nl;

                    f[0] = strtok_r(line, " ", &fsave);
                    f[1] = strtok_r(NULL, " ", &fsave);
                    f[2] = strtok_r(NULL, " ", &fsave);
                    assert_non_null(f[2]);
                    if (k >= pts.n) {
                        print_error("%s: too few points\n", what);
                        fail();
                    }
                    nl = s_unhex(f[0], strlen(f[0]), name);
                    assert_int_equal(pts.p[k].namelen, nl);
                    assert_memory_equal(pts.p[k].name, name, nl);
                    s_field(what, f[1], pts.p[k].value, pts.p[k].valuelen);
                    s_field(what, f[2], pts.p[k].ts, pts.p[k].tslen);
                    k++;
                }
                assert_int_equal(k, pts.n);
                npoints += k;
            }
            assert_non_null(line);
            assert_string_equal(line, "--");
            line = strtok_r(NULL, "\n", &save);
            s_pts_free(&pts);
            off += flen;
            nframes++;
        }
        assert_null(line);
        free(all);
        free(exp);
        nfiles++;
    }
    s_list_free(names);
    if (nfiles == 0 || npoints == 0) {
        print_error("no frames in %s\n", dir);
        fail();
    }
    print_message("%s: %zu files, %zu frames, %zu datapoints\n", dir, nfiles,
                  nframes, npoints);
}

/* --- robustness -------------------------------------------------------- */

/* Prefixes of hand-built frames of every protocol are refused. */
static void test_truncation(void **state)
{
    static const struct {
        const char *b;
        size_t n;
    } frames[] = {
        {L("(lp0\n(S'a\\'b'\np1\n(I1764000000\nF0.5\ntp2\ntp3\na(g1\n"
           "(L12L\nV\\u00e9\ntta.")},
        {L("\x80\x02]q\x00(X\x01\x00\x00\x00nq\x01J\x01\x02\x03\x04G"
           "\x3f\xe0\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03h\x01\x8a\x09"
           "\x00\x00\x00\x00\x00\x00\x00\x00\x01\x8b\x01\x00\x00\x00\x05"
           "\x86r\x04\x00\x00\x00\x86j\x04\x00\x00\x00\x30"
           "e.")},
        {L("\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x01n\x94"
           "K\x01M\x02\x01\x86\x94\x86\x94\x8d\x01\x00\x00\x00\x00\x00\x00"
           "\x00m\x88\x89\x86\x86"
           "e.")},
        {L("\x80\x03](U\x01"
           "aT\x01\x00\x00\x00"
           "bC\x01"
           "cB\x01\x00\x00"
           "\x00"
           "d\x8e\x01\x00\x00\x00\x00\x00\x00\x00"
           "e\x96\x01\x00\x00"
           "\x00\x00\x00\x00\x00"
           "f\x87\x86\x8c\x01g2\x87\x86"
           "e.")},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        pts_t pts;

        assert_int_equal(s_decode(frames[i].b, frames[i].n, NULL, &pts),
                         i == 3 ? PICKLE_SHAPE : PICKLE_OK);
        s_pts_free(&pts);
        s_truncations("hand frame", (const unsigned char *)frames[i].b,
                      frames[i].n);
    }
}

/* A small xorshift generator, so runs repeat. */
static uint64_t s_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Mutated good frames: decoded without crashing, and consistently. */
static void test_mutation(void **state)
{
    static const struct {
        const char *b;
        size_t n;
    } seeds[] = {
        {L("(lp0\n(S'a\\'b'\np1\n(I1764000000\nF0.5\ntp2\ntp3\na(g1\n"
           "(L12L\nV\\u00e9\ntta.")},
        {L("\x80\x02]q\x00(X\x01\x00\x00\x00nq\x01J\x01\x02\x03\x04G"
           "\x3f\xe0\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03h\x01K"
           "\x05K\x06\x86\x86"
           "e.")},
        {L("\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c"
           "\x01n\x94K\x01M\x02\x01\x86\x94\x86\x94\x8d\x01\x00\x00"
           "\x00\x00\x00\x00\x00m\x88\x89\x86\x86"
           "e.")},
    };
    static const unsigned char ops[] = "().012FIJKLMNSTUVXaeghjl]pqrt)G"
                                       "\x80\x85\x86\x87\x88\x8a\x8b\x8c"
                                       "\x94\x95";
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t s, i, accepted = 0;

    (void)state;
    for (s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        size_t n0 = seeds[s].n;

        for (i = 0; i < 3000; i++) {
            unsigned char b[128];
            size_t n = n0, k, edits = 1 + s_rand(&rng) % 4;
            pts_t pts;

            assert_true(n0 <= sizeof b);
            memcpy(b, seeds[s].b, n0);
            for (k = 0; k < edits; k++) {
                size_t at = s_rand(&rng) % n;

                switch (s_rand(&rng) % 4) {
                case 0: b[at] ^= (unsigned char)(1u << s_rand(&rng) % 8); break;
                case 1: b[at] = (unsigned char)s_rand(&rng); break;
                case 2: b[at] = ops[s_rand(&rng) % (sizeof ops - 1)]; break;
                default:
                    if (n < sizeof b) {
                        memmove(b + at + 1, b + at, n - at);
                        b[at] = ops[s_rand(&rng) % (sizeof ops - 1)];
                        n++;
                    }
                }
            }
            if (s_decode(b, n, NULL, &pts) == PICKLE_OK)
                accepted++;
            s_pts_free(&pts);
        }
    }
    assert_true(accepted > 0);
}

/* Floats come out as the shortest text that reads back to them. */
static void test_float_format(void **state)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {2.0 / 3, "0.6666666666666666"},
        {0.1 + 0.2, "0.30000000000000004"},
        {0.3, "0.3"},
        {-12.25, "-12.25"},
        {100.0, "100"},
        {123456789.123, "123456789.123"},
        {1764000000.123456, "1764000000.123456"},
        {1e-5, "0.00001"},
        {1.5e-5, "0.000015"},
        {9.999999999999999e-6, "9.999999999999999e-06"},
        {0.9999999999999999, "0.9999999999999999"},
        {999999999999999.0, "999999999999999"},
        {999999999999999.9, "999999999999999.9"},
        {1e15, "1000000000000000"},
        {9007199254740992.0, "9007199254740992"},
        {1e16, "1e+16"},
        {1e22, "1e+22"},
        {1e-300, "1e-300"},
        {5e-324, "5e-324"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    uint64_t rng = 12345;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char g[9] = {'G'};
        uint64_t u;

        memcpy(&u, &cases[i].v, 8);
        for (int j = 0; j < 8; j++)
            g[1 + j] = (unsigned char)(u >> (56 - 8 * j));
        {
            buf_t f = {0};
            char exp[128];
            int n;

            b_put(&f, L("\x80\x02]\x8c\x01nK\x00"));
            b_put(&f, g, 9);
            b_put(&f, L("\x86\x86"
                        "a."));
            n = snprintf(exp, sizeof exp, "n %s 0\n", cases[i].want);
            s_ok(__LINE__, f.b, f.n, NULL, exp, (size_t)n);
            free(f.b);
        }
    }
    /* random doubles: exact round trip, and as few digits as any %.Ng */
    for (i = 0; i < 20000; i++) {
        uint64_t u = s_rand(&rng);
        double v, back;
        unsigned char b[32] = "\x80\x02]\x8c\x01nK\x00G";
        size_t k;
        pts_t pts;
        int prec;
        char ref[40];

        switch (i % 4) {
        case 0: /* any bit pattern */ memcpy(&v, &u, 8); break;
        case 1: /* ratios, as rates and averages come out */
            v = (double)(int64_t)(u % 2000000000) / (double)(1 + u % 1000);
            break;
        case 2: /* full precision across 1e-6 .. 1e16 */
            v = (double)(u >> 11) / 9007199254740992.0 *
                pow(10, (double)(int)(u % 23) - 6);
            break;
        default: /* powers of two and their neighbours */
            v = ldexp(1, (int)(u % 120) - 60);
            v = u & 64 ? nextafter(v, 0) : u & 128 ? nextafter(v, 1e300) : v;
        }
        if (isnan(v))
            continue;
        memcpy(&u, &v, 8);
        for (k = 0; k < 8; k++)
            b[9 + k] = (unsigned char)(u >> (56 - 8 * k));
        memcpy(b + 17,
               "\x86\x86"
               "a.",
               4);
        assert_int_equal(s_decode(b, 21, NULL, &pts), PICKLE_OK);
        back = s_num(pts.p[0].value);
        assert_memory_equal(&back, &v, 8);
        for (prec = 1; prec <= 17; prec++) {
            snprintf(ref, sizeof ref, "%.*g", prec, v);
            if (strtod(ref, NULL) == v)
                break;
        }
        if (s_sig(pts.p[0].value) != s_sig(ref)) {
            print_error("%.17g: got %s, want %s\n", v, pts.p[0].value, ref);
            fail();
        }
        s_pts_free(&pts);
    }
}

/* One decoder across frames: nothing leaks from one frame into the next. */
static void test_reuse(void **state)
{
    pickle_t *p = pickle_new(NULL);
    pickle_status_t st;
    pts_t pts = {0};
    buf_t big = {0};
    size_t n, i;

    (void)state;
    assert_non_null(p);
    /* memo entries of one frame are gone in the next */
    assert_int_equal(pickle_run(p, (const unsigned char *)"\x80\x02]q\x05.", 6,
                                NULL, NULL, &st, &n),
                     0);
    assert_int_equal(pickle_run(p, (const unsigned char *)"\x80\x02]h\x05.", 6,
                                NULL, NULL, &st, &n),
                     -1);
    assert_int_equal(st, PICKLE_MEMO);
    assert_int_equal(n, 0);
    /* MARKs left open by a refused frame are gone too */
    assert_int_equal(
        pickle_run(p, (const unsigned char *)"((((", 4, NULL, NULL, &st, NULL),
        -1);
    assert_int_equal(
        pickle_run(p, (const unsigned char *)"].", 2, NULL, NULL, &st, &n), 0);
    /* a large frame, then small ones; no callback needed */
    b_proto2(&big, 60000, 0);
    for (i = 0; i < 3; i++) {
        assert_int_equal(pickle_run(p, big.b, big.n, NULL, NULL, &st, &n), 0);
        assert_int_equal(n, 60000);
        assert_int_equal(pickle_run(p, big.b, big.n - 1, NULL, NULL, &st, &n),
                         -1);
        assert_int_equal(st, PICKLE_TRUNCATED);
        assert_int_equal(
            pickle_run(
                p,
                (const unsigned char *)"\x80\x02]\x8c\x01nK\x01K\x02\x86\x86"
                                       "a.",
                14, s_collect, &pts, NULL, &n),
            0);
        assert_int_equal(n, 1);
    }
    assert_int_equal(pts.n, 3);
    assert_string_equal(pts.p[2].name, "n");
    assert_string_equal(pts.p[2].value, "2");
    assert_string_equal(pts.p[2].ts, "1");
    s_pts_free(&pts);
    /* why may be NULL */
    assert_int_equal(
        pickle_run(p, (const unsigned char *)"c", 1, NULL, NULL, NULL, NULL),
        -1);
    assert_int_equal(pickle_decode(big.b, big.n, NULL, NULL, NULL, NULL, &n),
                     0);
    assert_int_equal(n, 60000);
    pickle_destroy(&p);
    free(big.b);
}

static void test_status_str(void **state)
{
    int i, j;

    (void)state;
    assert_string_equal(pickle_status_str(PICKLE_OK), "ok");
    assert_string_equal(pickle_status_str(PICKLE_TRUNCATED), "truncated");
    assert_string_equal(pickle_status_str(PICKLE_UNSAFE), "unsafe");
    for (i = 0; i < PICKLE_NSTATUS; i++) {
        assert_non_null(pickle_status_str((pickle_status_t)i));
        for (j = 0; j < i; j++)
            assert_string_not_equal(pickle_status_str((pickle_status_t)i),
                                    pickle_status_str((pickle_status_t)j));
    }
    assert_non_null(pickle_status_str(PICKLE_NSTATUS));
    assert_non_null(pickle_status_str((pickle_status_t)-1));
}

static int s_teardown(void **state)
{
    (void)state;
    pickle_destroy(&s_shared);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto0_basic),
        cmocka_unit_test(test_proto0_string),
        cmocka_unit_test(test_proto0_unicode),
        cmocka_unit_test(test_proto0_numbers),
        cmocka_unit_test(test_proto0_stack),
        cmocka_unit_test(test_binary_numbers),
        cmocka_unit_test(test_binary_strings),
        cmocka_unit_test(test_binary_memo),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_containers),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_stack),
        cmocka_unit_test(test_refused_opcodes),
        cmocka_unit_test(test_unknown_opcodes),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_items),
        cmocka_unit_test(test_limit_memo),
        cmocka_unit_test(test_limit_string),
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_shared_frames),
        cmocka_unit_test(test_python_frames),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_mutation),
        cmocka_unit_test(test_float_format),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_status_str),
    };

    return cmocka_run_group_tests_name("pickle", tests, NULL, s_teardown);
}
