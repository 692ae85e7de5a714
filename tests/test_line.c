/*
 * test_line.c -- unit tests for the plaintext line parser (src/line.c).
 *
 * Every rule of line.h has its own group of cases: field splitting, '\r',
 * the value and timestamp grammars, name cleansing and tags, the output
 * capacity, line_canon() for pre-split datapoints, and line_check(), which
 * must accept exactly the lines the parser writes.  Inputs are string
 * literals measured with sizeof, so a case may hold NUL bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "line.h"

#define NOW   1700000123LL
#define GUARD 0x5a

/* Report a failed case with the line of the test that made it. */
static void s_fail(int line, const char *in, size_t len, const char *what)
{
    size_t i;

    print_error("case at line %d: %s; input \"", line, what);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c >= 0x20 && c < 0x7f && c != '\\')
            print_error("%c", c);
        else
            print_error("\\x%02x", c);
    }
    print_error("\"\n");
    _fail(__FILE__, line);
}

/* Check that the canonical line in out[0..res) matches want, with the
 * name lengths it implies. */
static void s_check_out(int line, const char *in, size_t len, const char *out,
                        const line_result_t *res, const char *want)
{
    size_t wl = strlen(want);
    size_t full = (size_t)(strchr(want, ' ') - want);
    const char *semi = memchr(want, ';', full);
    size_t path = semi ? (size_t)(semi - want) : full;

    if (res->len != wl || memcmp(out, want, wl) != 0) {
        char msg[512];

        snprintf(msg, sizeof msg, "got \"%.*s\", want \"%s\"", (int)res->len,
                 out, want);
        s_fail(line, in, len, msg);
    }
    if (res->fulllen != full || res->namelen != path)
        s_fail(line, in, len, "namelen/fulllen wrong");
}

/* Parse in[0..len) with room to spare: expect LINE_OK and want. */
static void s_ok(int line, const char *in, size_t len, long long now,
                 const char *want)
{
    char out[512];
    line_result_t res;
    line_status_t st = line_parse(in, len, now, out, sizeof out, &res);

    if (st != LINE_OK)
        s_fail(line, in, len, line_status_str(st));
    s_check_out(line, in, len, out, &res, want);
}

/* Parse in[0..len): expect status want. */
static void s_bad(int line, const char *in, size_t len, line_status_t want)
{
    char out[512];
    line_result_t res;
    line_status_t st = line_parse(in, len, NOW, out, sizeof out, &res);

    if (st != want) {
        char msg[128];

        snprintf(msg, sizeof msg, "got %s, want %s", line_status_str(st),
                 line_status_str(want));
        s_fail(line, in, len, msg);
    }
}

#define OK(in, want)         s_ok(__LINE__, in, sizeof(in) - 1, NOW, want)
#define OKNOW(in, now, want) s_ok(__LINE__, in, sizeof(in) - 1, now, want)
#define BAD(in, st)          s_bad(__LINE__, in, sizeof(in) - 1, st)

static void test_basic(void **state)
{
    (void)state;
    OK("a.b.c 1 1700000000", "a.b.c 1 1700000000\n");
    OK("servers.web01.cpu.user 42.5 1700000000",
       "servers.web01.cpu.user 42.5 1700000000\n");
    OK("x 0 0", "x 0 0\n");
}

static void test_whitespace(void **state)
{
    (void)state;
    OK("a  1  2", "a 1 2\n");
    OK("a\t1\t2", "a 1 2\n");
    OK("a \t \t1\t\t 2", "a 1 2\n");
    OK("   a 1 2", "a 1 2\n");
    OK("a 1 2   ", "a 1 2\n");
    OK("\t\ta 1 2\t\t", "a 1 2\n");
    OK(" \t a \t 1 \t 2 \t ", "a 1 2\n");
}

static void test_cr(void **state)
{
    (void)state;
    OK("a 1 2\r", "a 1 2\n");
    OK("\ra 1 2", "a 1 2\n");
    OK("a\r 1\r 2\r", "a 1 2\n");
    OK("a.\rb 1 2", "a.b 1 2\n");
    OK("a 1\r5 2", "a 15 2\n");
    OK("a 1 17\r00", "a 1 1700\n");
    OK("a 1 2 \r", "a 1 2\n"); /* a lone '\r' is not a field */
    OK("a \r 1 2", "a 1 2\n");
    OK("a \r\r\r 1 \r 2 \r\r", "a 1 2\n");
    OK("a 1 2\r\r\r\r", "a 1 2\n");
    OK("a;t=\rv 1 2", "a;t=v 1 2\n");
    OK("a 1 -\r1", "a 1 1700000123\n");
    OK("a i\rnf 1", "a inf 1\n");
    BAD("\r", LINE_EMPTY);
    BAD("a 1 \r", LINE_FIELDS);
}

static void test_empty(void **state)
{
    (void)state;
    BAD("", LINE_EMPTY);
    BAD(" ", LINE_EMPTY);
    BAD("     ", LINE_EMPTY);
    BAD("\t", LINE_EMPTY);
    BAD(" \t \t ", LINE_EMPTY);
    BAD("\r\r", LINE_EMPTY);
    BAD(" \r\t\r ", LINE_EMPTY);
}

static void test_fields(void **state)
{
    (void)state;
    BAD("a", LINE_FIELDS);
    BAD("a.b.c", LINE_FIELDS);
    BAD("a 1", LINE_FIELDS);
    BAD("  a   1  ", LINE_FIELDS);
    BAD("a 1 2 3", LINE_FIELDS);
    BAD("a 1 2 3 4 5 6", LINE_FIELDS);
    BAD("a 1 2 x", LINE_FIELDS);
    BAD("a\v1 2", LINE_FIELDS); /* only space and tab separate */
    BAD("a\f1\f2", LINE_FIELDS);
    BAD("a\n1 2", LINE_FIELDS);
    BAD("... 1", LINE_FIELDS); /* field count is checked first */
    BAD("a nan", LINE_FIELDS);
}

static void test_value_ok(void **state)
{
    (void)state;
    OK("a 1 2", "a 1 2\n");
    OK("a -7.5 2", "a -7.5 2\n");
    OK("a +3 2", "a +3 2\n");
    OK("a 1e3 2", "a 1e3 2\n");
    OK("a 1E3 2", "a 1E3 2\n");
    OK("a 1e+3 2", "a 1e+3 2\n");
    OK("a 1e-3 2", "a 1e-3 2\n");
    OK("a -1.5e-10 2", "a -1.5e-10 2\n");
    OK("a 1.5E+300 2", "a 1.5E+300 2\n");
    OK("a .5 2", "a .5 2\n");
    OK("a -.5 2", "a -.5 2\n");
    OK("a 5. 2", "a 5. 2\n");
    OK("a 1.e5 2", "a 1.e5 2\n");
    OK("a .5e1 2", "a .5e1 2\n");
    OK("a 007 2", "a 007 2\n");
    OK("a 0 2", "a 0 2\n");
    OK("a -0 2", "a -0 2\n");
    OK("a 1e0001 2", "a 1e0001 2\n");
    OK("a 123456789012345678901234567890 2",
       "a 123456789012345678901234567890 2\n");
    OK("a inf 2", "a inf 2\n");
    OK("a INF 2", "a INF 2\n");
    OK("a -inf 2", "a -inf 2\n");
    OK("a +Inf 2", "a +Inf 2\n");
    OK("a infinity 2", "a infinity 2\n");
    OK("a -Infinity 2", "a -Infinity 2\n");
    OK("a INFINITY 2", "a INFINITY 2\n");
    OK("a iNfInItY 2", "a iNfInItY 2\n");
}

static void test_value_bad(void **state)
{
    (void)state;
    BAD("a 0x10 2", LINE_VALUE);
    BAD("a 0x1p3 2", LINE_VALUE);
    BAD("a 0X1.8P1 2", LINE_VALUE);
    BAD("a 1e 2", LINE_VALUE);
    BAD("a 1e+ 2", LINE_VALUE);
    BAD("a 1E- 2", LINE_VALUE);
    BAD("a . 2", LINE_VALUE);
    BAD("a -. 2", LINE_VALUE);
    BAD("a .e1 2", LINE_VALUE);
    BAD("a e5 2", LINE_VALUE);
    BAD("a - 2", LINE_VALUE);
    BAD("a + 2", LINE_VALUE);
    BAD("a --1 2", LINE_VALUE);
    BAD("a +-1 2", LINE_VALUE);
    BAD("a abc 2", LINE_VALUE);
    BAD("a 1,5 2", LINE_VALUE);
    BAD("a 1.2.3 2", LINE_VALUE);
    BAD("a 1e3.5 2", LINE_VALUE);
    BAD("a 1e3e3 2", LINE_VALUE);
    BAD("a 1.5f 2", LINE_VALUE);
    BAD("a 12a 2", LINE_VALUE);
    BAD("a 1_000 2", LINE_VALUE);
    BAD("a in 2", LINE_VALUE);
    BAD("a inff 2", LINE_VALUE);
    BAD("a infinit 2", LINE_VALUE);
    BAD("a infinityy 2", LINE_VALUE);
    BAD("a infinityinfinity 2", LINE_VALUE);
    BAD("a -+inf 2", LINE_VALUE);
    BAD("a na 2", LINE_VALUE);
    BAD("a nana 2", LINE_VALUE);
    BAD("a nanx 2", LINE_VALUE);
    BAD("a 1\0 2", LINE_VALUE);
    BAD("a \xe2\x88\x9e 2", LINE_VALUE);
    BAD("a \xff 2", LINE_VALUE);
    BAD("a 1\v 2", LINE_VALUE);
    BAD("a 1e3e 2", LINE_VALUE);
}

static void test_nan(void **state)
{
    (void)state;
    BAD("a nan 2", LINE_NAN);
    BAD("a NaN 2", LINE_NAN);
    BAD("a NAN 2", LINE_NAN);
    BAD("a -nan 2", LINE_NAN);
    BAD("a +NaN 2", LINE_NAN);
    BAD("a n\ra\rn 2", LINE_NAN);
    BAD("a nan -1", LINE_NAN);
}

static void test_timestamp_ok(void **state)
{
    (void)state;
    OK("a 1 1700000000", "a 1 1700000000\n");
    OK("a 1 1700000000.5", "a 1 1700000000.5\n");
    OK("a 1 +1700000000", "a 1 +1700000000\n");
    OK("a 1 1700000000.", "a 1 1700000000.\n");
    OK("a 1 .5", "a 1 .5\n");
    OK("a 1 -5", "a 1 -5\n");
    OK("a 1 -1.5", "a 1 -1.5\n");
    OK("a 1 0", "a 1 0\n");
    OK("a 1 -0", "a 1 -0\n");
    OK("a 1 00001", "a 1 00001\n");
    OK("a 1 99999999999999999999", "a 1 99999999999999999999\n");
}

static void test_timestamp_now(void **state)
{
    (void)state;
    OK("a 1 -1", "a 1 1700000123\n");
    OKNOW("a 1 -1", 0, "a 1 0\n");
    OKNOW("a 1 -1", 7, "a 1 7\n");
    OKNOW("a 1 -1", -42, "a 1 -42\n");
    OKNOW("a 1 -1", LLONG_MAX, "a 1 9223372036854775807\n");
    OKNOW("a 1 -1", LLONG_MIN, "a 1 -9223372036854775808\n");
    /* only "-1" itself means now; the others are copied as written */
    OK("a 1 -1.0", "a 1 -1.0\n");
    OK("a 1 -1.", "a 1 -1.\n");
    OK("a 1 -01", "a 1 -01\n");
    OK("a 1 +1", "a 1 +1\n");
    OK("a 1 1", "a 1 1\n");
    OK("a 1 -11", "a 1 -11\n");
}

static void test_timestamp_bad(void **state)
{
    (void)state;
    BAD("a 1 abc", LINE_TIMESTAMP);
    BAD("a 1 1e9", LINE_TIMESTAMP);
    BAD("a 1 inf", LINE_TIMESTAMP);
    BAD("a 1 nan", LINE_TIMESTAMP);
    BAD("a 1 0x10", LINE_TIMESTAMP);
    BAD("a 1 1.2.3", LINE_TIMESTAMP);
    BAD("a 1 -", LINE_TIMESTAMP);
    BAD("a 1 +", LINE_TIMESTAMP);
    BAD("a 1 .", LINE_TIMESTAMP);
    BAD("a 1 -.", LINE_TIMESTAMP);
    BAD("a 1 --1", LINE_TIMESTAMP);
    BAD("a 1 1700000000a", LINE_TIMESTAMP);
    BAD("a 1 1,5", LINE_TIMESTAMP);
    BAD("a 1 1_700", LINE_TIMESTAMP);
    BAD("a 1 1\0", LINE_TIMESTAMP);
    BAD("a 1 \xff", LINE_TIMESTAMP);
}

static void test_name_dots(void **state)
{
    (void)state;
    OK("a..b 1 2", "a.b 1 2\n");
    OK("a...b....c 1 2", "a.b.c 1 2\n");
    OK(".a 1 2", "a 1 2\n");
    OK("...a.b 1 2", "a.b 1 2\n");
    OK("a. 1 2", "a 1 2\n");
    OK("a.b..... 1 2", "a.b 1 2\n");
    OK("..a..b.. 1 2", "a.b 1 2\n");
    OK(".\r.a\r.\r.b\r.\r 1 2", "a.b 1 2\n");
}

static void test_name_chars(void **state)
{
    (void)state;
    OK("a-b_c:d#e.F0 1 2", "a-b_c:d#e.F0 1 2\n");
    OK("a/b 1 2", "a_b 1 2\n");
    OK("a@b!c 1 2", "a_b_c 1 2\n");
    OK("a*b? 1 2", "a_b_ 1 2\n");
    OK("(a)[b]{c} 1 2", "_a__b__c_ 1 2\n");
    OK("a=b,c 1 2", "a_b_c 1 2\n");
    OK("caf\xc3\xa9 1 2", "caf__ 1 2\n");
    OK("a\0b 1 2", "a_b 1 2\n");
    OK("\x01\x7f\x80\xff 1 2", "____ 1 2\n");
    OK("a\vb 1 2", "a_b 1 2\n");
    OK("a.\x01.b 1 2", "a._.b 1 2\n");
    OK("/ 1 2", "_ 1 2\n");
    OK("a./. 1 2", "a._ 1 2\n");
}

static void test_name_empty(void **state)
{
    (void)state;
    BAD(". 1 2", LINE_NAME);
    BAD("... 1 2", LINE_NAME);
    BAD(";t=v 1 2", LINE_NAME);
    BAD(".;t=v 1 2", LINE_NAME);
    BAD("..;..; 1 2", LINE_NAME);
    BAD(".\r. 1 2", LINE_NAME);
    /* the name is the first bad field: it wins over value and timestamp */
    BAD("... x y", LINE_NAME);
}

static void test_tags(void **state)
{
    (void)state;
    OK("a.b;tag=v 1 2", "a.b;tag=v 1 2\n");
    OK("a.b;tag=v;x=y 1 2", "a.b;tag=v;x=y 1 2\n");
    OK("a.b.;t=1 1 2", "a.b;t=1 1 2\n");
    OK("a..b..;t=1 1 2", "a.b;t=1 1 2\n");
    OK(".a;t=1 1 2", "a;t=1 1 2\n");
    OK("a;t=..x. 1 2", "a;t=..x. 1 2\n");
    OK("a;t=/x@y!(z) 1 2", "a;t=/x@y!(z) 1 2\n");
    OK("a;t=\x01\x7f\x80\xff 1 2", "a;t=____ 1 2\n");
    OK("a;t=caf\xc3\xa9 1 2", "a;t=caf__ 1 2\n");
    OK("a;t=\0 1 2", "a;t=_ 1 2\n");
    OK("a; 1 2", "a; 1 2\n");
    OK("a;; 1 2", "a;; 1 2\n");
    OK("a/b;c/d 1 2", "a_b;c/d 1 2\n");
}

static void test_result(void **state)
{
    char out[64];
    line_result_t res;
    const char *in = "..x..y.;tag=v 3 -1";

    (void)state;
    assert_int_equal(line_parse(in, strlen(in), 5, out, sizeof out, &res),
                     LINE_OK);
    assert_int_equal(res.len, strlen("x.y;tag=v 3 5\n"));
    assert_memory_equal(out, "x.y;tag=v 3 5\n", res.len);
    assert_int_equal(res.namelen, 3);
    assert_int_equal(res.fulllen, 9);

    in = "x.y 3 4";
    assert_int_equal(line_parse(in, strlen(in), 5, out, sizeof out, &res),
                     LINE_OK);
    assert_int_equal(res.len, 8);
    assert_int_equal(res.namelen, 3);
    assert_int_equal(res.fulllen, 3);
}

/* Parse in with every cap from 0 to the exact fit into a guarded buffer:
 * TOOLONG below the fit, OK at it, and no byte written past the cap. */
static void s_caps(int line, const char *in, long long now, const char *want)
{
    size_t wl = strlen(want), cap, i;
    char buf[256];

    assert_true(wl < sizeof buf);
    for (cap = 0; cap <= wl; cap++) {
        line_result_t res;
        line_status_t st;

        memset(buf, GUARD, sizeof buf);
        st = line_parse(in, strlen(in), now, buf, cap, &res);
        if (st != (cap == wl ? LINE_OK : LINE_TOOLONG))
            s_fail(line, in, strlen(in), line_status_str(st));
        for (i = cap; i < sizeof buf; i++)
            if ((unsigned char)buf[i] != GUARD)
                s_fail(line, in, strlen(in), "wrote past outcap");
        if (st == LINE_OK)
            s_check_out(line, in, strlen(in), buf, &res, want);
    }
}

static void test_toolong(void **state)
{
    char out[16];
    line_result_t res;

    (void)state;
    s_caps(__LINE__, "a.b.c 1 1700000000", NOW, "a.b.c 1 1700000000\n");
    s_caps(__LINE__, "..a..b.. 1.5e3 2", NOW, "a.b 1.5e3 2\n");
    s_caps(__LINE__, "a.b;t=v -inf -1", NOW, "a.b;t=v -inf 1700000123\n");
    s_caps(__LINE__, "a\r 1\r 2\r", NOW, "a 1 2\n");
    s_caps(__LINE__, "a 1 -1", LLONG_MIN, "a 1 -9223372036854775808\n");

    /* exact fit and one short */
    assert_int_equal(line_parse("abc 1 2", 7, NOW, out, 8, &res), LINE_OK);
    assert_int_equal(res.len, 8);
    assert_int_equal(line_parse("abc 1 2", 7, NOW, out, 7, &res), LINE_TOOLONG);
    assert_int_equal(line_parse("abc 1 2", 7, NOW, NULL, 0, &res),
                     LINE_TOOLONG);
}

static void test_precedence(void **state)
{
    char out[4];
    line_result_t res;

    (void)state;
    /* a malformed line is counted as malformed even when it is too long */
    assert_int_equal(line_parse("abcdef x 2", 10, NOW, out, sizeof out, &res),
                     LINE_VALUE);
    assert_int_equal(line_parse("abcdef nan 2", 12, NOW, out, sizeof out, &res),
                     LINE_NAN);
    assert_int_equal(line_parse("abcdef 1 x", 10, NOW, out, sizeof out, &res),
                     LINE_TIMESTAMP);
    assert_int_equal(line_parse("..... 1 2", 9, NOW, out, sizeof out, &res),
                     LINE_NAME);
    assert_int_equal(line_parse("..... 1 2", 9, NOW, NULL, 0, &res), LINE_NAME);
    assert_int_equal(line_parse("abcdef 1", 8, NOW, out, sizeof out, &res),
                     LINE_FIELDS);
    /* field order: value before timestamp */
    assert_int_equal(line_parse("a x y", 5, NOW, out, sizeof out, &res),
                     LINE_VALUE);
}

/* Every input is copied to a heap block of its exact length, so ASan
 * catches any read past len. */
static void test_no_overread(void **state)
{
    static const char *const in[] = {
        "a 1 2", "a 1 -1", "a.b;t=v 1e3 1.5", "a 1",       "a 1 2 3", "...",
        "a inf", "a 1e",   "a 1 2.",          "a infinit", "a nan 2", "a 1 -",
        "a;",    "a.",     "a 1 2\r",         "\r",        "a 1 1e",
    };
    size_t k;

    (void)state;
    for (k = 0; k < sizeof in / sizeof in[0]; k++) {
        size_t n = strlen(in[k]), cut;

        for (cut = 0; cut <= n; cut++) {
            char *p = malloc(cut ? cut : 1);
            char out[64];
            line_result_t res;

            assert_non_null(p);
            memcpy(p, in[k], cut);
            (void)line_parse(p, cut, NOW, out, sizeof out, &res);
            free(p);
        }
    }
}

/* The reference rule for a name byte before the ';'. */
static char s_ref_path(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == ':' || c == '#')
        return (char)c;
    return '_';
}

/* Every byte, in the path and in the tags, through line_canon (which may
 * see space, tab and newline in a name). */
static void test_all_bytes(void **state)
{
    int b;

    (void)state;
    for (b = 0; b < 256; b++) {
        char name[8], out[64], want[64];
        line_result_t res;
        line_status_t st;
        unsigned char c = (unsigned char)b;

        memcpy(name, "x?y", 3);
        name[1] = (char)c;
        st = line_canon(name, 3, "1", 1, "2", 1, NOW, out, sizeof out, &res);
        assert_int_equal(st, LINE_OK);
        if (c == '\r')
            strcpy(want, "xy 1 2\n");
        else if (c == '.')
            strcpy(want, "x.y 1 2\n");
        else if (c == ';')
            strcpy(want, "x;y 1 2\n");
        else
            snprintf(want, sizeof want, "x%cy 1 2\n", s_ref_path(c));
        s_check_out(__LINE__, name, 3, out, &res, want);

        memcpy(name, "x;?", 3);
        name[2] = (char)c;
        st = line_canon(name, 3, "1", 1, "2", 1, NOW, out, sizeof out, &res);
        assert_int_equal(st, LINE_OK);
        if (c == '\r')
            strcpy(want, "x; 1 2\n");
        else
            snprintf(want, sizeof want, "x;%c 1 2\n",
                     c > ' ' && c < 0x7f ? (char)c : '_');
        s_check_out(__LINE__, name, 3, out, &res, want);
    }
}

static void test_canon(void **state)
{
    char out[64];
    line_result_t res;

    (void)state;
#define CANON(n, v, t, now_)                                                   \
    line_canon(n, strlen(n), v, strlen(v), t, strlen(t), now_, out,            \
               sizeof out, &res)
    assert_int_equal(CANON("a.b.c", "1.5", "1700000000", NOW), LINE_OK);
    assert_memory_equal(out, "a.b.c 1.5 1700000000\n", res.len);
    assert_int_equal(CANON("a b\tc", "1", "2", NOW), LINE_OK);
    assert_memory_equal(out, "a_b_c 1 2\n", res.len);
    assert_int_equal(CANON("..a..b..;t=x y", "1e3", "-1", 9), LINE_OK);
    assert_int_equal(res.len, strlen("a.b;t=x_y 1e3 9\n"));
    assert_memory_equal(out, "a.b;t=x_y 1e3 9\n", res.len);
    assert_int_equal(res.namelen, 3);
    assert_int_equal(res.fulllen, 9);
    assert_int_equal(CANON("a\nb", "-Infinity", "1.5", NOW), LINE_OK);
    assert_memory_equal(out, "a_b -Infinity 1.5\n", res.len);
    assert_int_equal(CANON("a", "1\r", "2\r", NOW), LINE_OK);
    assert_memory_equal(out, "a 1 2\n", res.len);

    assert_int_equal(CANON("...", "1", "2", NOW), LINE_NAME);
    assert_int_equal(CANON("", "1", "2", NOW), LINE_NAME);
    assert_int_equal(CANON("a", "", "2", NOW), LINE_VALUE);
    assert_int_equal(CANON("a", " 1", "2", NOW), LINE_VALUE);
    assert_int_equal(CANON("a", "1 2", "2", NOW), LINE_VALUE);
    assert_int_equal(CANON("a", "0x1", "2", NOW), LINE_VALUE);
    assert_int_equal(CANON("a", "NaN", "2", NOW), LINE_NAN);
    assert_int_equal(CANON("a", "1", "", NOW), LINE_TIMESTAMP);
    assert_int_equal(CANON("a", "1", "2 ", NOW), LINE_TIMESTAMP);
    assert_int_equal(CANON("a", "1", "1e9", NOW), LINE_TIMESTAMP);
#undef CANON

    assert_int_equal(
        line_canon(NULL, 0, "1", 1, "2", 1, NOW, out, sizeof out, &res),
        LINE_NAME);
    assert_int_equal(
        line_canon("a", 1, NULL, 0, "2", 1, NOW, out, sizeof out, &res),
        LINE_VALUE);
    assert_int_equal(
        line_canon("a", 1, "1", 1, NULL, 0, NOW, out, sizeof out, &res),
        LINE_TIMESTAMP);
    assert_int_equal(line_canon("abc", 3, "1", 1, "2", 1, NOW, out, 7, &res),
                     LINE_TOOLONG);
    assert_int_equal(line_canon("abc", 3, "1", 1, "2", 1, NOW, out, 8, &res),
                     LINE_OK);
}

/* line_check of in[0..len) with maxlen: expect want (0 or -1), and on 0
 * the routing name's length path. */
static void s_check(int line, const char *in, size_t len, size_t maxlen,
                    int want, size_t path)
{
    size_t namelen = 12345;
    int rc = line_check(in, len, maxlen, &namelen);

    if (rc != want)
        s_fail(line, in, len,
               want == 0 ? "refused, want accepted" : "accepted, want refused");
    if (rc == 0 && namelen != path)
        s_fail(line, in, len, "namelen wrong");
    if (rc != 0 && namelen != 12345)
        s_fail(line, in, len, "namelen set on a refused line");
}

#define GOOD(in, path) s_check(__LINE__, in, sizeof(in) - 1, 512, 0, path)
#define REFUSED(in)    s_check(__LINE__, in, sizeof(in) - 1, 512, -1, 0)

static void test_check_good(void **state)
{
    (void)state;
    GOOD("a 1 2\n", 1);
    GOOD("a.b.c 1.5 1700000000\n", 5);
    GOOD("servers.web-01.cpu_user:x#y 42 1700000000\n", 27);
    GOOD("a.b;t=x_y 1e3 9\n", 3);
    GOOD("a; 1 2\n", 1);         /* a bare ';' stays, as the parser keeps it */
    GOOD("a;;k=v;=.. 1 2\n", 1); /* tags are any printable text */
    GOOD("a;\x21~ 1 2\n", 1);
    GOOD("x -Infinity 1.5\n", 1);
    GOOD("x inf +5\n", 1);
    GOOD("x INF 0\n", 1);
    GOOD("x +.5 -3\n", 1);
    GOOD("x 1. 007\n", 1);
    GOOD("x 1E-5 -01\n", 1);
    GOOD("x 1 -1.0\n", 1); /* only the exact "-1" means now */
    GOOD("x 1 -12\n", 1);
    GOOD("x 1 .5\n", 1);
}

static void test_check_refused(void **state)
{
    (void)state;
    /* NUL and control bytes, bytes the cleanser would have replaced */
    REFUSED("a\0b 1 2\n");
    REFUSED("a\x01 1 2\n");
    REFUSED("a\x1b[0m 1 2\n");
    REFUSED("a\x7f 1 2\n");
    REFUSED("a\x80 1 2\n");
    REFUSED("a\xff 1 2\n");
    REFUSED("a/b 1 2\n");
    REFUSED("a=b 1 2\n");
    REFUSED("a;\x7f 1 2\n");
    REFUSED("a;\x80 1 2\n");
    REFUSED("a;\0 1 2\n");
    REFUSED("a 1\0 2\n");
    REFUSED("a 1 2\0\n");
    /* dots the cleanser would have collapsed or stripped */
    REFUSED(".a 1 2\n");
    REFUSED("a. 1 2\n");
    REFUSED("a..b 1 2\n");
    REFUSED("a.;t 1 2\n");
    REFUSED(";t 1 2\n");
    REFUSED(". 1 2\n");
    /* fields */
    REFUSED("a 1\n");
    REFUSED("a 1 \n");
    REFUSED("a\n");
    REFUSED("\n");
    REFUSED("");
    REFUSED("a 1 2 3\n");
    REFUSED(" a 1 2\n");
    REFUSED("a  1 2\n");
    REFUSED("a 1  2\n");
    REFUSED("a 1 2 \n");
    REFUSED("a\t1 2\n");
    REFUSED("a 1\t2\n");
    REFUSED("a 1 2\r\n");
    REFUSED("a\r 1 2\n");
    REFUSED("a 1\r 2\n");
    REFUSED("a 1 2");          /* no '\n' */
    REFUSED("a 1 2\nb 1 2\n"); /* two lines */
    REFUSED("a 1 2\n\n");
    /* values */
    REFUSED("a x 2\n");
    REFUSED("a nan 2\n");
    REFUSED("a -NaN 2\n");
    REFUSED("a 0x1 2\n");
    REFUSED("a 1e 2\n");
    REFUSED("a . 2\n");
    REFUSED("a infinit 2\n");
    REFUSED("a 1,5 2\n");
    /* timestamps */
    REFUSED("a 1 -1\n"); /* the parser writes now instead */
    REFUSED("a 1 1e9\n");
    REFUSED("a 1 x\n");
    REFUSED("a 1 1.2.3\n");
    REFUSED("a 1 +\n");
    REFUSED("a 1 inf\n");
}

static void test_check_maxlen(void **state)
{
    size_t namelen = 0;

    (void)state;
    assert_int_equal(line_check("abc 1 2\n", 8, 8, &namelen), 0);
    assert_int_equal(namelen, 3);
    assert_int_equal(line_check("abc 1 2\n", 8, 7, &namelen), -1);
    assert_int_equal(line_check(NULL, 0, 100, &namelen), -1);
    /* the bound is what the parser writes for a line of maxline bytes */
    assert_int_equal(LINE_CANON_MAX(100), 119);
}

/* Whether in[0..len) is a fixed point of line_parse: its own canonical
 * line, at most maxlen bytes. */
static int s_fixed_point(const char *in, size_t len, size_t maxlen)
{
    char out[600];
    line_result_t res;

    if (len == 0 || len > maxlen || in[len - 1] != '\n' ||
        memchr(in, '\n', len - 1) != NULL)
        return 0;
    return line_parse(in, len - 1, NOW, out, sizeof out, &res) == LINE_OK &&
           res.len == len && memcmp(out, in, len) == 0;
}

/* line_check accepts exactly the fixed points of line_parse: every byte
 * value in every field of a few lines. */
static void test_check_exact(void **state)
{
    static const char *const tmpl[] = {
        "ab.cd;t=v 12.5e3 1700000000\n",
        "a 1 2\n",
        "a.b 1 -1\n",
    };
    char buf[64];

    (void)state;
    for (size_t t = 0; t < sizeof tmpl / sizeof tmpl[0]; t++) {
        size_t len = strlen(tmpl[t]);

        for (size_t pos = 0; pos < len; pos++) {
            for (int b = 0; b < 256; b++) {
                size_t namelen = 0;
                int want;

                memcpy(buf, tmpl[t], len);
                buf[pos] = (char)b;
                want = s_fixed_point(buf, len, 512) ? 0 : -1;
                if (line_check(buf, len, 512, &namelen) != want)
                    s_fail(__LINE__, buf, len,
                           want == 0
                               ? "a fixed point of line_parse refused"
                               : "accepted, but line_parse would rewrite it");
                if (want == 0) {
                    char out[64];
                    line_result_t res;

                    line_parse(buf, len - 1, NOW, out, sizeof out, &res);
                    assert_int_equal(namelen, res.namelen);
                }
            }
        }
    }
}

/* Every line the parser writes passes line_check, with its namelen. */
static void test_check_parser_output(void **state)
{
    static const char *const in[] = {
        "a  1  2",
        "\t\ta 1 2\t\t",
        "a.\rb 1 2",
        "..a..b.. 1 2",
        "a\001b\377 1 2",
        "a;t=x\x01y 1 2",
        "a 1 -1",
        "a 1e3 1.5",
        "web01.cpu;dc=x;rack=7 -inf 1700000000",
        "a%b^c 1 2",
    };
    char out[512];

    (void)state;
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        line_result_t res;
        size_t namelen = 0;

        assert_int_equal(
            line_parse(in[i], strlen(in[i]), NOW, out, sizeof out, &res),
            LINE_OK);
        assert_int_equal(line_check(out, res.len, res.len, &namelen), 0);
        assert_int_equal(namelen, res.namelen);
        assert_int_equal(line_check(out, res.len, res.len - 1, &namelen), -1);
    }
}

static void test_status_str(void **state)
{
    (void)state;
    assert_string_equal(line_status_str(LINE_OK), "ok");
    assert_string_equal(line_status_str(LINE_EMPTY), "empty");
    assert_string_equal(line_status_str(LINE_FIELDS), "fields");
    assert_string_equal(line_status_str(LINE_NAME), "name");
    assert_string_equal(line_status_str(LINE_VALUE), "value");
    assert_string_equal(line_status_str(LINE_NAN), "nan");
    assert_string_equal(line_status_str(LINE_TIMESTAMP), "timestamp");
    assert_string_equal(line_status_str(LINE_TOOLONG), "toolong");
    assert_string_equal(line_status_str(LINE_UNTERMINATED), "unterminated");
    assert_non_null(line_status_str(LINE_NSTATUS));
    assert_non_null(line_status_str((line_status_t)-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_cr),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_value_ok),
        cmocka_unit_test(test_value_bad),
        cmocka_unit_test(test_nan),
        cmocka_unit_test(test_timestamp_ok),
        cmocka_unit_test(test_timestamp_now),
        cmocka_unit_test(test_timestamp_bad),
        cmocka_unit_test(test_name_dots),
        cmocka_unit_test(test_name_chars),
        cmocka_unit_test(test_name_empty),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_result),
        cmocka_unit_test(test_toolong),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_no_overread),
        cmocka_unit_test(test_all_bytes),
        cmocka_unit_test(test_canon),
        cmocka_unit_test(test_status_str),
        cmocka_unit_test(test_check_good),
        cmocka_unit_test(test_check_refused),
        cmocka_unit_test(test_check_maxlen),
        cmocka_unit_test(test_check_exact),
        cmocka_unit_test(test_check_parser_output),
    };

    return cmocka_run_group_tests_name("line", tests, NULL, NULL);
}
