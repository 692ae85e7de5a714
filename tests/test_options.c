/*
 * test_options.c -- unit tests of the table of limits and timeouts
 * (src/options.h): the number parser, the getopt letters, option parsing,
 * and that the list of timeouts in docs/limitations.rst is the one the
 * table makes (so a default changed in one place shows in the docs).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

static void test_num(void **state)
{
    (void)state;
    long long v = 7;
    assert_int_equal(opt_num("42", 1, 100, &v), 0);
    assert_true(v == 42);
    assert_int_equal(opt_num("0", 1, 100, &v), -1);
    assert_int_equal(opt_num("101", 1, 100, &v), -1);
    assert_int_equal(opt_num("", 1, 100, &v), -1);
    assert_int_equal(opt_num("12x", 1, 100, &v), -1);
    assert_int_equal(opt_num("99999999999999999999", 1, 100, &v), -1);
    assert_int_equal(opt_num(NULL, 1, 100, &v), -1);
    assert_true(v == 42); /* untouched by the failures */
    assert_int_equal(opt_num("-5", -10, 10, &v), 0);
    assert_true(v == -5);
}

static void test_table(void **state)
{
    (void)state;
    for (int i = 0; i < OPT_N; i++) {
        const opt_def_t *d = opt_def((opt_id_t)i);
        assert_non_null(d);
        assert_int_equal(d->id, i); /* the table is indexed by id */
        assert_non_null(d->unit);
        if (d->flag) {
            assert_non_null(d->help);
            assert_true(d->min <= d->def || d->def == 0); /* 0: derived */
            assert_true(d->def <= d->max);
            /* a letter names one option per program */
            for (int j = 0; j < i; j++)
                assert_false(opt_def((opt_id_t)j)->flag == d->flag &&
                             (opt_def((opt_id_t)j)->progs & d->progs));
        } else {
            assert_non_null(d->timeout); /* a fixed number is listed */
        }
    }
    assert_true(opt_default(OPT_QUEUE) == 100000);
    assert_null(opt_def(OPT_N));
}

static void test_parse(void **state)
{
    (void)state;
    char spec[64], err[200];
    opt_getopt(OPT_P_ORCHESTER, "f:t", spec, sizeof spec);
    assert_string_equal(spec, "f:tq:M:F:c:B:D:L:K:S:R:G:I:A:E:Z:");
    opt_getopt(OPT_P_SATELLITE, "f:", spec, sizeof spec);
    assert_string_equal(spec, "f:M:F:W:c:B:E:Z:");
    long long v[OPT_N];
    opt_init(v);
    assert_true(v[OPT_MAXLINE] == 16384);
    assert_int_equal(opt_take(OPT_P_ORCHESTER, 'q', "5000", v, err, sizeof err),
                     1);
    assert_true(v[OPT_QUEUE] == 5000);
    assert_true(v[OPT_INFLATE_RATIO] == 100 && v[OPT_TLS_HANDSHAKE] == 10000);
    assert_int_equal(opt_take(OPT_P_SATELLITE, 'Z', "1", v, err, sizeof err),
                     -1);
    assert_int_equal(opt_take(OPT_P_SATELLITE, 'Z', "500", v, err, sizeof err),
                     1);
    assert_true(v[OPT_INFLATE_RATIO] == 500);
    assert_int_equal(opt_take(OPT_P_ORCHESTER, 'q', "0", v, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "-q: bad number '0'"));
    assert_true(v[OPT_QUEUE] == 5000);
    /* -W is the satellite's, not the orchester's */
    assert_int_equal(
        opt_take(OPT_P_ORCHESTER, 'W', "70000", v, err, sizeof err), 0);
    assert_int_equal(
        opt_take(OPT_P_SATELLITE, 'W', "70000", v, err, sizeof err), 1);
    assert_int_equal(opt_take(OPT_P_SATELLITE, 'x', "1", v, err, sizeof err),
                     0);
}

/* The text between the two marker comments of docs/limitations.rst. */
static char *s_doc_block(void)
{
    const char *dir = getenv("srcdir");
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/limitations.rst", dir ? dir : ".");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return NULL;
    }
    static const char begin[] =
        ".. timeouts: begin (made by opt_timeouts_rst)\n\n";
    static const char end[] = "\n.. timeouts: end\n";
    char *text = calloc(1, 1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    text[n] = '\0';
    char *a = strstr(text, begin), *b = a ? strstr(a, end) : NULL;
    if (a == NULL || b == NULL) {
        free(text);
        return NULL;
    }
    a += strlen(begin);
    memmove(text, a, (size_t)(b - a));
    text[b - a] = '\0';
    return text;
}

static void test_doc(void **state)
{
    (void)state;
    char want[16384];
    size_t n = opt_timeouts_rst(want, sizeof want);
    assert_true(n < sizeof want);
    char *doc = s_doc_block();
    if (doc == NULL)
        fprintf(stderr,
                "docs/limitations.rst: no list of timeouts between "
                "the marker comments; it should read:\n%s",
                want);
    assert_non_null(doc);
    if (strcmp(doc, want) != 0)
        fprintf(stderr,
                "docs/limitations.rst: the list of timeouts should "
                "read:\n%s",
                want);
    assert_string_equal(doc, want);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_num),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_doc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
