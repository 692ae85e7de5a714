/*
 * test_aggr.c -- unit tests of the aggregator's core (src/aggr.c), with an
 * injected clock: every compute against values worked out by hand (and,
 * where noted, against what carbon-c-relay 3.7.3 printed for the same
 * input, see docs/aggregation.rst), the timestamp positions, the window's
 * edges, expiry and its splay, the emission order, the shutdown flush, the
 * bounds, the freeing of idle series, the reload take-over, and allocation
 * failures injected one at a time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggr.h"

#define T0 1796319170 /* a "now" (the time of the run in the docs) */

/* ---- helpers ------------------------------------------------------------ */

/* One emitted value. */
typedef struct {
    char name[64];  /* the series */
    double value;   /* the value */
    int64_t ts;     /* its timestamp */
    size_t rule;    /* its rule */
    size_t compute; /* its compute */
} rec_t;

/* What the emit callback collected. */
typedef struct {
    rec_t r[4096]; /* the values, in emission order */
    size_t n;      /* how many */
} sink_t;

static void s_emit(void *arg, const char *name, size_t len, double value,
                   int64_t ts, size_t rule, size_t compute)
{
    sink_t *k = arg;
    assert_true(k->n < sizeof k->r / sizeof k->r[0]);
    assert_int_equal(strlen(name), len);
    rec_t *r = &k->r[k->n++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->value = value;
    r->ts = ts;
    r->rule = rule;
    r->compute = compute;
}

/* The value emitted for name (it must be there exactly once). */
static const rec_t *s_get(const sink_t *k, const char *name)
{
    const rec_t *found = NULL;
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->r[i].name, name) == 0) {
            if (found != NULL)
                fail_msg("%s emitted twice", name);
            found = &k->r[i];
        }
    if (found == NULL)
        fail_msg("%s not emitted", name);
    return found;
}

static void s_check(const sink_t *k, const char *name, double want)
{
    const rec_t *r = s_get(k, name);
    if (fabs(r->value - want) > 1e-9 * (fabs(want) > 1 ? fabs(want) : 1))
        fail_msg("%s: %.17g, want %.17g", name, r->value, want);
}

static aggr_opts_t s_opts(void)
{
    aggr_opts_t o;
    aggr_opts_default(&o);
    o.splay = 0;
    return o;
}

static aggr_t *s_new1(uint32_t interval, uint32_t expire, aggr_ts_t ts,
                      const aggr_compute_t *c, size_t nc, const aggr_opts_t *o)
{
    aggr_def_t d = {.interval = interval,
                    .expire = expire,
                    .ts = ts,
                    .computes = c,
                    .ncomputes = nc};
    const char *err = NULL;
    aggr_t *a = aggr_new(&d, 1, o, &err);
    assert_non_null(a);
    assert_null(err);
    return a;
}

static aggr_status_t s_add(aggr_t *a, size_t c, const char *name, double v,
                           int64_t ts, int64_t now)
{
    return aggr_add(a, 0, c, name, strlen(name), v, ts, now);
}

/* The eleven computes, in the order of the names below. */
static const aggr_compute_t s_all[] = {
    {AGGR_SUM, 0},        {AGGR_COUNT, 0},       {AGGR_MAX, 0},
    {AGGR_MIN, 0},        {AGGR_AVERAGE, 0},     {AGGR_MEDIAN, 0},
    {AGGR_PERCENTILE, 5}, {AGGR_PERCENTILE, 75}, {AGGR_PERCENTILE, 90},
    {AGGR_VARIANCE, 0},   {AGGR_STDDEV, 0}};
static const char *const s_all_names[] = {"sum",     "count",    "max",   "min",
                                          "average", "median",   "p5",    "p75",
                                          "p90",     "variance", "stddev"};
#define NALL (sizeof s_all / sizeof s_all[0])

/* Put values v[0..n) as series out.<tag>.<compute> (one per compute) at
 * timestamp ts. */
static void s_put_all(aggr_t *a, const char *tag, const double *v, size_t n,
                      int64_t ts, int64_t now)
{
    char names[NALL][64];
    const char *p[NALL];
    for (size_t c = 0; c < NALL; c++) {
        snprintf(names[c], sizeof names[c], "out.%s.%s", tag, s_all_names[c]);
        p[c] = names[c];
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(aggr_put(a, 0, p, NULL, v[i], ts, now), NALL);
}

/* ---- definitions -------------------------------------------------------- */

static void test_def_check(void **state)
{
    (void)state;
    aggr_compute_t c = {AGGR_SUM, 0};
    aggr_def_t d = {10, 20, AGGR_TS_END, &c, 1, NULL};
    const char *err = "x";
    assert_int_equal(aggr_def_check(&d, &err), 0);
    assert_null(err);
    d.expire = 10; /* carbon-c-relay refuses expire == interval */
    assert_int_equal(aggr_def_check(&d, &err), -1);
    assert_string_equal(err, "expire must be greater than interval");
    d.expire = 5;
    assert_int_equal(aggr_def_check(&d, &err), -1);
    d.expire = 20;
    d.interval = 0;
    assert_int_equal(aggr_def_check(&d, &err), -1);
    assert_string_equal(err, "interval must be > 0");
    d.interval = 10;
    d.ts = 0;
    assert_int_equal(aggr_def_check(&d, NULL), -1);
    d.ts = AGGR_TS_MIDDLE;
    d.ncomputes = 0;
    assert_int_equal(aggr_def_check(&d, NULL), -1);
    d.ncomputes = 1;
    c.type = AGGR_PERCENTILE;
    c.percentile = 0;
    assert_int_equal(aggr_def_check(&d, &err), -1);
    assert_string_equal(err, "percentile<x>: value x must be between 1 and 99");
    c.percentile = 100;
    assert_int_equal(aggr_def_check(&d, NULL), -1);
    c.percentile = 1;
    assert_int_equal(aggr_def_check(&d, NULL), 0);
    c.percentile = 99;
    assert_int_equal(aggr_def_check(&d, NULL), 0);
    c.type = 42;
    assert_int_equal(aggr_def_check(&d, NULL), -1);
    /* aggr_new refuses what aggr_def_check refuses */
    assert_null(aggr_new(&d, 1, NULL, &err));
    assert_string_equal(err, "unknown compute type");
}

static void test_buckets_per_series(void **state)
{
    (void)state;
    aggr_compute_t c = {AGGR_SUM, 0};
    struct {
        uint32_t iv, ex, n;
    } t[] = {{10, 20, 4}, {10, 25, 5}, {5, 6, 4},    {60, 75, 4},
             {10, 35, 6}, {1, 2, 4},   {60, 120, 4}, {1, 3600, 3602}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        aggr_def_t d = {t[i].iv, t[i].ex, AGGR_TS_END, &c, 1, NULL};
        assert_int_equal(aggr_buckets_per_series(&d), t[i].n);
    }
}

/* ---- computes ----------------------------------------------------------- */

/* The same input as the carbon-c-relay run in docs/aggregation.rst, every
 * value worked out by hand (and equal to what carbon-c-relay printed, but
 * for p5 of a single value, where it reads out of bounds). */
static void test_computes(void **state)
{
    (void)state;
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(10, 20, AGGR_TS_END, s_all, NALL, &o);
    int64_t b = T0 / 10 * 10;
    const double one[] = {5};
    const double odd[] = {3, 1, 2};
    const double even[] = {4, 1, 3, 2};
    const double neg[] = {-3, -1.5, 2, -7};
    const double ten[] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    s_put_all(a, "one", one, 1, b, T0);
    s_put_all(a, "odd", odd, 3, b, T0);
    s_put_all(a, "even", even, 4, b, T0);
    s_put_all(a, "neg", neg, 4, b, T0);
    s_put_all(a, "ten", ten, 10, b + 9, T0);
    sink_t *k = calloc(1, sizeof *k);
    assert_int_equal(aggr_expire(a, b + 20, s_emit, k), 0);
    assert_int_equal(aggr_expire(a, b + 21, s_emit, k), 5 * NALL);
    for (size_t i = 0; i < k->n; i++)
        assert_int_equal(k->r[i].ts, b + 10);

    s_check(k, "out.one.sum", 5);
    s_check(k, "out.one.count", 1);
    s_check(k, "out.one.max", 5);
    s_check(k, "out.one.min", 5);
    s_check(k, "out.one.average", 5);
    s_check(k, "out.one.median", 5);
    s_check(k, "out.one.p5", 5); /* rank (int)(0.05 + 0.9) = 0: clamped */
    s_check(k, "out.one.p75", 5);
    s_check(k, "out.one.p90", 5);
    s_check(k, "out.one.variance", 0);
    s_check(k, "out.one.stddev", 0);

    /* odd: sorted 1 2 3 */
    s_check(k, "out.odd.sum", 6);
    s_check(k, "out.odd.count", 3);
    s_check(k, "out.odd.max", 3);
    s_check(k, "out.odd.min", 1);
    s_check(k, "out.odd.average", 2);
    s_check(k, "out.odd.median", 2);           /* rank (int)(1.5 + 0.9) = 2 */
    s_check(k, "out.odd.p5", 1);               /* rank (int)(0.15 + 0.9) = 1 */
    s_check(k, "out.odd.p75", 3);              /* rank (int)(2.25 + 0.9) = 3 */
    s_check(k, "out.odd.p90", 3);              /* rank (int)(2.7 + 0.9) = 3 */
    s_check(k, "out.odd.variance", 2.0 / 3.0); /* (1 + 0 + 1) / 3 */
    s_check(k, "out.odd.stddev", sqrt(2.0 / 3.0));

    /* even: sorted 1 2 3 4; the median is the lower middle one */
    s_check(k, "out.even.sum", 10);
    s_check(k, "out.even.count", 4);
    s_check(k, "out.even.average", 2.5);
    s_check(k, "out.even.median", 2); /* rank (int)(2 + 0.9) = 2 */
    s_check(k, "out.even.p5", 1);
    s_check(k, "out.even.p75", 3); /* rank (int)(3 + 0.9) = 3 */
    s_check(k, "out.even.p90", 4); /* rank (int)(3.6 + 0.9) = 4 */
    /* population variance: (2.25 + 0.25 + 0.25 + 2.25) / 4 */
    s_check(k, "out.even.variance", 1.25);
    s_check(k, "out.even.stddev", sqrt(1.25));

    /* negative: sorted -7 -3 -1.5 2, mean -2.375 */
    s_check(k, "out.neg.sum", -9.5);
    s_check(k, "out.neg.max", 2);
    s_check(k, "out.neg.min", -7);
    s_check(k, "out.neg.average", -2.375);
    s_check(k, "out.neg.median", -3);
    s_check(k, "out.neg.p5", -7);
    s_check(k, "out.neg.p75", -1.5);
    s_check(k, "out.neg.p90", 2);
    /* (0.625^2 + 0.875^2 + 4.375^2 + 4.625^2) / 4 = 41.6875 / 4 */
    s_check(k, "out.neg.variance", 10.421875);
    s_check(k, "out.neg.stddev", sqrt(10.421875));

    /* ten: 1..10, mean 5.5 */
    s_check(k, "out.ten.sum", 55);
    s_check(k, "out.ten.count", 10);
    s_check(k, "out.ten.median", 5);      /* rank (int)(5 + 0.9) = 5 */
    s_check(k, "out.ten.p5", 1);          /* rank (int)(0.5 + 0.9) = 1 */
    s_check(k, "out.ten.p75", 8);         /* rank (int)(7.5 + 0.9) = 8 */
    s_check(k, "out.ten.p90", 9);         /* rank (int)(9 + 0.9) = 9 */
    s_check(k, "out.ten.variance", 8.25); /* 82.5 / 10 */
    s_check(k, "out.ten.stddev", sqrt(8.25));

    aggr_stats_t st;
    aggr_stats_total(a, &st);
    assert_int_equal(st.received, 1 + 3 + 4 + 4 + 10);
    assert_int_equal(st.sent, 5 * NALL);
    assert_int_equal(st.series, 0); /* all emitted: all freed */
    assert_int_equal(st.buckets, 0);
    assert_int_equal(st.values, 0);
    free(k);
    aggr_destroy(&a);
    assert_null(a);
    aggr_destroy(&a);
}

/* Percentiles at the edges of the rank formula, with 100 and 3 values. */
static void test_percentile_ranks(void **state)
{
    (void)state;
    const aggr_compute_t c[] = {{AGGR_PERCENTILE, 1},  {AGGR_PERCENTILE, 50},
                                {AGGR_PERCENTILE, 99}, {AGGR_MEDIAN, 0},
                                {AGGR_PERCENTILE, 25}, {AGGR_PERCENTILE, 34}};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(60, 75, AGGR_TS_END, c, 6, &o);
    int64_t b = T0 / 60 * 60;
    /* 100 values 1..100, put in a shuffled order */
    for (int i = 0; i < 100; i++) {
        double v = (double)((i * 37) % 100 + 1);
        for (size_t j = 0; j < 6; j++) {
            char n[32];
            snprintf(n, sizeof n, "h.%zu", j);
            assert_int_equal(s_add(a, j, n, v, b, T0), AGGR_OK);
        }
    }
    const double three[] = {30, 10, 20};
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < 6; j++) {
            char n[32];
            snprintf(n, sizeof n, "t.%zu", j);
            assert_int_equal(s_add(a, j, n, three[i], b, T0), AGGR_OK);
        }
    sink_t *k = calloc(1, sizeof *k);
    assert_int_equal(aggr_expire(a, b + 76, s_emit, k), 12);
    s_check(k, "h.0", 1);  /* (int)(1 + 0.9) = 1 */
    s_check(k, "h.1", 50); /* (int)(50 + 0.9) = 50 */
    s_check(k, "h.2", 99); /* (int)(99 + 0.9) = 99 */
    s_check(k, "h.3", 50); /* median = percentile50 */
    s_check(k, "h.4", 25);
    s_check(k, "h.5", 34);
    s_check(k, "t.0", 10); /* (int)(0.03 + 0.9) = 0: clamped to 1 */
    s_check(k, "t.1", 20); /* (int)(1.5 + 0.9) = 2 */
    s_check(k, "t.2", 30); /* (int)(2.97 + 0.9) = 3 */
    s_check(k, "t.3", 20);
    s_check(k, "t.4", 10); /* (int)(0.75 + 0.9) = 1 */
    s_check(k, "t.5", 10); /* (int)(1.02 + 0.9) = 1 */
    free(k);
    aggr_destroy(&a);
}

/* The values' order for median and percentile: by value, or as
 * carbon-c-relay 3.7.3 orders them (compat_sort), whose output for these
 * inputs was observed (docs/aggregation.rst). */
/* AGGR_QUANTILE: carbon-aggregator's pNN, interpolated at q * (n - 1). */
static void test_quantile(void **state)
{
    (void)state;
    const aggr_compute_t c[] = {{AGGR_QUANTILE, 500},
                                {AGGR_QUANTILE, 900},
                                {AGGR_QUANTILE, 999},
                                {AGGR_QUANTILE, 750}};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(60, 75, AGGR_TS_END, c, 4, &o);
    int64_t b = T0 / 60 * 60;
    const double four[] = {4, 1, 3, 2}, ten[] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
    for (size_t j = 0; j < 4; j++) {
        char n[32];
        for (int i = 0; i < 4; i++) {
            snprintf(n, sizeof n, "f.%zu", j);
            assert_int_equal(s_add(a, j, n, four[i], b, T0), AGGR_OK);
        }
        for (int i = 0; i < 10; i++) {
            snprintf(n, sizeof n, "t.%zu", j);
            assert_int_equal(s_add(a, j, n, ten[i], b, T0), AGGR_OK);
        }
        snprintf(n, sizeof n, "o.%zu", j);
        assert_int_equal(s_add(a, j, n, -7.5, b, T0), AGGR_OK);
    }
    sink_t *k = calloc(1, sizeof *k);
    assert_int_equal(aggr_expire(a, b + 76, s_emit, k), 12);
    s_check(k, "f.0", 2.5);   /* rank 1.5: between 2 and 3 */
    s_check(k, "f.1", 3.7);   /* rank 2.7: 3 * 0.3 + 4 * 0.7 */
    s_check(k, "f.3", 3.25);  /* rank 2.25 */
    s_check(k, "t.0", 5.5);   /* rank 4.5 */
    s_check(k, "t.2", 9.991); /* rank 8.991 */
    s_check(k, "o.1", -7.5);  /* one value: itself */
    free(k);
    aggr_destroy(&a);
    /* its range is per mille */
    aggr_compute_t bad = {AGGR_QUANTILE, 1000};
    aggr_def_t d = {10, 20, AGGR_TS_END, &bad, 1, "k"};
    const char *err = NULL;
    assert_int_equal(aggr_def_check(&d, &err), -1);
    assert_string_equal(err, "a quantile is 1 to 999 per mille");
    bad.percentile = 999;
    assert_int_equal(aggr_def_check(&d, NULL), 0);
}

static void test_sort_compat(void **state)
{
    (void)state;
    const aggr_compute_t c[] = {{AGGR_MEDIAN, 0},
                                {AGGR_PERCENTILE, 5},
                                {AGGR_PERCENTILE, 75},
                                {AGGR_PERCENTILE, 90}};
    const double frac[] = {1.5, 1.2, 1.9, 1.1, 1.7};
    const double big[] = {3000000000.0, 0, 1};
    /* by value; then compat */
    const double want[2][2][4] = {
        {{1.5, 1.1, 1.7, 1.9}, {1, 0, 3000000000.0, 3000000000.0}},
        {{1.9, 1.5, 1.1, 1.7}, {0, 3000000000.0, 1, 1}}};
    for (int compat = 0; compat < 2; compat++) {
        aggr_opts_t o = s_opts();
        o.compat_sort = compat;
        aggr_t *a = s_new1(10, 20, AGGR_TS_END, c, 4, &o);
        int64_t b = T0 / 10 * 10;
        for (size_t j = 0; j < 4; j++) {
            for (size_t i = 0; i < 5; i++)
                assert_int_equal(s_add(a, j, "frac", frac[i], b, T0), AGGR_OK);
            for (size_t i = 0; i < 3; i++)
                assert_int_equal(s_add(a, j, "big", big[i], b, T0), AGGR_OK);
        }
        sink_t *k = calloc(1, sizeof *k);
        assert_int_equal(aggr_expire(a, b + 21, s_emit, k), 8);
        for (size_t i = 0; i < k->n; i++) {
            int isbig = strcmp(k->r[i].name, "big") == 0;
            double w = want[compat][isbig][k->r[i].compute];
            if (k->r[i].value != w)
                fail_msg("compat %d %s compute %zu: %.17g, want %.17g", compat,
                         k->r[i].name, k->r[i].compute, k->r[i].value, w);
        }
        free(k);
        aggr_destroy(&a);
    }
}

/* An input where the merge sort's split shows (carbon-c-relay 3.7.3
 * printed median 2, p25 2.5, p75 1.5, p90 3 for it; splitting the other
 * way round would give 2.5, 1.5, 2, 3). */
static void test_sort_compat_split(void **state)
{
    (void)state;
    const aggr_compute_t c[] = {{AGGR_MEDIAN, 0},
                                {AGGR_PERCENTILE, 25},
                                {AGGR_PERCENTILE, 75},
                                {AGGR_PERCENTILE, 90}};
    const double in[] = {1, 2.5, 2, 1.5, 3};
    const double want[2][4] = {{2, 1.5, 2.5, 3}, {2, 2.5, 1.5, 3}};
    for (int compat = 0; compat < 2; compat++) {
        aggr_opts_t o = s_opts();
        o.compat_sort = compat;
        aggr_t *a = s_new1(2, 3, AGGR_TS_END, c, 4, &o);
        for (size_t j = 0; j < 4; j++)
            for (size_t i = 0; i < 5; i++)
                assert_int_equal(s_add(a, j, "q", in[i], T0, T0), AGGR_OK);
        sink_t k = {0};
        assert_int_equal(aggr_expire(a, T0 + 4, s_emit, &k), 4);
        for (size_t i = 0; i < 4; i++)
            if (k.r[i].value != want[compat][k.r[i].compute])
                fail_msg("compat %d compute %zu: %g, want %g", compat,
                         k.r[i].compute, k.r[i].value,
                         want[compat][k.r[i].compute]);
        aggr_destroy(&a);
    }
}

/* ---- timestamps, windows, expiry ---------------------------------------- */

static void test_timestamps(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    const aggr_ts_t pos[] = {AGGR_TS_START, AGGR_TS_MIDDLE, AGGR_TS_END};
    const int64_t off5[] = {0, 2, 5}; /* interval 5: middle is +2 */
    const int64_t off60[] = {0, 30, 60};
    for (int i = 0; i < 3; i++) {
        aggr_opts_t o = s_opts();
        aggr_t *a5 = s_new1(5, 6, pos[i], &c, 1, &o);
        aggr_t *a60 = s_new1(60, 75, pos[i], &c, 1, &o);
        int64_t b5 = T0 / 5 * 5, b60 = T0 / 60 * 60;
        assert_int_equal(s_add(a5, 0, "m", 7, T0, T0), AGGR_OK);
        assert_int_equal(s_add(a60, 0, "m", 7, T0, T0), AGGR_OK);
        sink_t k = {0};
        assert_int_equal(aggr_expire(a5, b5 + 6 + 1, s_emit, &k), 1);
        assert_int_equal(aggr_expire(a60, b60 + 75 + 1, s_emit, &k), 1);
        assert_int_equal(k.r[0].ts, b5 + off5[i]);
        assert_int_equal(k.r[1].ts, b60 + off60[i]);
        aggr_destroy(&a5);
        aggr_destroy(&a60);
    }
}

/* The window of a new series, and its edges (as the carbon-c-relay run in
 * docs/aggregation.rst: every 10 s, expire after 25 s, five buckets). */
static void test_window(void **state)
{
    (void)state;
    const aggr_compute_t c[] = {{AGGR_SUM, 0}, {AGGR_COUNT, 0}};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(10, 25, AGGR_TS_START, c, 2, &o);
    const int64_t now = T0, s0 = (T0 - 25) / 10 * 10; /* 1796319140 */
    assert_int_equal(s0, 1796319140);
    /* a datapoint outside the window of a new series makes no series */
    assert_int_equal(s_add(a, 0, "x", 1, s0 - 1, now), AGGR_TOO_OLD);
    assert_int_equal(s_add(a, 0, "x", 1, s0 + 50, now), AGGR_TOO_NEW);
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, 0);
    const char *n[] = {"x", "x"};
    assert_int_equal(aggr_put(a, 0, n, NULL, 1, now, now), 2);
    assert_int_equal(aggr_put(a, 0, n, NULL, 100, s0 - 1, now), 0);
    assert_int_equal(aggr_put(a, 0, n, NULL, 1000, s0, now), 2);
    assert_int_equal(aggr_put(a, 0, n, NULL, 10000, s0 + 49, now), 2);
    assert_int_equal(aggr_put(a, 0, n, NULL, 100000, s0 + 50, now), 0);
    /* two values at the two sides of a bucket boundary */
    assert_int_equal(aggr_put(a, 0, n, NULL, 0.25, s0 + 19, now), 2);
    assert_int_equal(aggr_put(a, 0, n, NULL, 0.5, s0 + 20, now), 2);
    aggr_stats(a, 0, &st);
    assert_int_equal(st.received, 7);
    assert_int_equal(st.dropped_old, 1 + 2); /* per compute, as */
    assert_int_equal(st.dropped_new, 1 + 2); /* carbon-c-relay counts */
    assert_int_equal(st.series, 2);
    assert_int_equal(st.buckets, 2 * 5);
    sink_t k = {0};
    assert_int_equal(aggr_expire(a, INT64_MAX / 2, s_emit, &k), 10);
    /* the sum, bucket by bucket (creation order: sum before count within a
     * bucket) */
    const int64_t ts[] = {s0, s0 + 10, s0 + 20, s0 + 30, s0 + 40};
    const double sum[] = {1000, 0.25, 0.5, 1, 10000};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(k.r[2 * i].ts, ts[i]);
        assert_int_equal(k.r[2 * i].compute, 0);
        assert_true(k.r[2 * i].value == sum[i]);
        assert_int_equal(k.r[2 * i + 1].ts, ts[i]);
        assert_int_equal(k.r[2 * i + 1].compute, 1);
        assert_true(k.r[2 * i + 1].value == 1);
    }
    aggr_destroy(&a);
}

/* Expiry: the oldest bucket at start + expire + 1 (no splay), late data
 * taken until then, refused after. */
static void test_expiry(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(10, 35, AGGR_TS_END, &c, 1, &o);
    int64_t b = T0 / 10 * 10;
    assert_int_equal(aggr_next_expiry(a), INT64_MAX);
    assert_int_equal(s_add(a, 0, "e", 1, b + 3, b + 3), AGGR_OK);
    assert_int_equal(s_add(a, 0, "e", 2, b + 13, b + 13), AGGR_OK);
    /* the window's oldest bucket starts at floor((b + 3 - 35) / 10) * 10 */
    int64_t s0 = (b + 3 - 35) / 10 * 10;
    assert_int_equal(aggr_next_expiry(a), s0 + 35 + 1);
    sink_t k = {0};
    /* the empty older buckets move away without a value */
    assert_int_equal(aggr_expire(a, b + 35, s_emit, &k), 0);
    assert_int_equal(aggr_next_expiry(a), b + 35 + 1);
    /* 35 s late, still taken */
    assert_int_equal(s_add(a, 0, "e", 4, b + 9, b + 35), AGGR_OK);
    assert_int_equal(aggr_expire(a, b + 36, s_emit, &k), 1);
    assert_int_equal(k.n, 1);
    assert_true(k.r[0].value == 5);
    assert_int_equal(k.r[0].ts, b + 10);
    /* that bucket is gone: its data is too old now */
    assert_int_equal(s_add(a, 0, "e", 8, b + 9, b + 36), AGGR_TOO_OLD);
    assert_int_equal(aggr_expire(a, b + 46, s_emit, &k), 1);
    assert_true(k.r[1].value == 2);
    assert_int_equal(k.r[1].ts, b + 20);
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, 0);
    assert_int_equal(st.dropped_old, 1);
    assert_int_equal(aggr_next_expiry(a), INT64_MAX);
    aggr_destroy(&a);
}

/* The splay: each series expires a fixed 0..interval-1 seconds late. */
static void test_splay(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    int64_t seen[2][50];
    for (int seed = 0; seed < 2; seed++) {
        aggr_opts_t o = s_opts();
        o.splay = 1;
        o.seed = (uint64_t)seed * 12345;
        aggr_t *a = s_new1(10, 20, AGGR_TS_END, &c, 1, &o);
        int64_t b = T0 / 10 * 10;
        for (int i = 0; i < 50; i++) {
            char n[16];
            snprintf(n, sizeof n, "s%d", i);
            assert_int_equal(s_add(a, 0, n, 1, b, b), AGGR_OK);
            assert_int_equal(s_add(a, 0, n, 2, b + 10, b), AGGR_OK);
            seen[seed][i] = -1;
        }
        int64_t first[50], second[50];
        for (int i = 0; i < 50; i++)
            first[i] = second[i] = -1;
        int spread = 0;
        for (int64_t now = b; now < b + 60; now++) {
            sink_t k = {0};
            aggr_expire(a, now, s_emit, &k);
            for (size_t j = 0; j < k.n; j++) {
                int i = atoi(k.r[j].name + 1);
                if (k.r[j].value == 1)
                    first[i] = now;
                else
                    second[i] = now;
            }
        }
        for (int i = 0; i < 50; i++) {
            assert_in_range(first[i], b + 21, b + 30);
            assert_int_equal(second[i], first[i] + 10);
            seen[seed][i] = first[i];
            if (first[i] != first[0])
                spread = 1;
        }
        assert_true(spread);
        aggr_destroy(&a);
    }
    int differ = 0;
    for (int i = 0; i < 50; i++)
        differ |= seen[0][i] != seen[1][i];
    assert_true(differ);
}

/* The emission order: by expiry, then by creation. */
static void test_order(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(10, 20, AGGR_TS_END, &c, 1, &o);
    int64_t b = T0 / 10 * 10;
    assert_int_equal(s_add(a, 0, "c", 1, b, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "c", 2, b + 10, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "a", 3, b, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "b", 4, b, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "b", 5, b + 10, b), AGGR_OK);
    sink_t k = {0};
    assert_int_equal(aggr_expire(a, b + 100, s_emit, &k), 5);
    const char *names[] = {"c", "a", "b", "c", "b"};
    const double vals[] = {1, 3, 4, 2, 5};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(k.r[i].name, names[i]);
        assert_true(k.r[i].value == vals[i]);
    }
    aggr_destroy(&a);
}

/* A long gap between two aggr_expire calls: everything due comes out, in
 * order, and the series end. */
static void test_long_gap(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_COUNT, 0};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(1, 3600, AGGR_TS_START, &c, 1, &o);
    for (int64_t t = T0 - 3000; t < T0; t += 7)
        assert_int_equal(s_add(a, 0, "g", 1, t, T0), AGGR_OK);
    sink_t *k = calloc(1, sizeof *k);
    size_t n = aggr_expire(a, T0 + 1000000, s_emit, k);
    assert_int_equal(n, (3000 + 6) / 7);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(k->r[i].ts, T0 - 3000 + 7 * (int64_t)i);
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, 0);
    free(k);
    aggr_destroy(&a);
}

/* ---- shutdown ----------------------------------------------------------- */

/* The carbon-c-relay run of docs/aggregation.rst: at T = B + 5, buckets
 * B - 20 and B - 10 are complete and come out; bucket B does not. */
static void test_flush(void **state)
{
    (void)state;
    const aggr_compute_t c[] = {{AGGR_SUM, 0}, {AGGR_COUNT, 0}};
    aggr_opts_t o = s_opts();
    o.splay = 1;
    aggr_t *a = s_new1(10, 25, AGGR_TS_START, c, 2, &o);
    const int64_t t = 1796319285, b = 1796319280;
    const char *n[] = {"w.s.sum", "w.s.count"};
    assert_int_equal(aggr_put(a, 0, n, NULL, 1, b - 10, t), 2);
    assert_int_equal(aggr_put(a, 0, n, NULL, 2, b, t), 2);
    assert_int_equal(aggr_put(a, 0, n, NULL, 4, b - 20, t), 2);
    sink_t k = {0};
    assert_int_equal(aggr_flush(a, t + 1, s_emit, &k), 4);
    assert_string_equal(k.r[0].name, "w.s.sum");
    assert_true(k.r[0].value == 4);
    assert_int_equal(k.r[0].ts, b - 20);
    assert_string_equal(k.r[1].name, "w.s.sum");
    assert_true(k.r[1].value == 1);
    assert_int_equal(k.r[1].ts, b - 10);
    assert_string_equal(k.r[2].name, "w.s.count");
    assert_int_equal(k.r[2].ts, b - 20);
    assert_string_equal(k.r[3].name, "w.s.count");
    assert_int_equal(k.r[3].ts, b - 10);
    /* the incomplete bucket stays, and still expires normally */
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, 2);
    assert_int_equal(aggr_expire(a, b + 25 + 10, s_emit, &k), 2);
    assert_true(k.r[4].value == 2 || k.r[4].value == 1);
    assert_int_equal(k.r[4].ts, b);
    /* a bucket ending at now is not complete (its end must be before) */
    assert_int_equal(aggr_put(a, 0, n, NULL, 8, b + 10, b + 20), 2);
    assert_int_equal(aggr_flush(a, b + 20, s_emit, &k), 0);
    assert_int_equal(aggr_flush(a, b + 21, s_emit, &k), 2);
    aggr_destroy(&a);
}

/* ---- bounds ------------------------------------------------------------- */

static void test_limit_series(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    aggr_opts_t o = s_opts();
    o.max_series = 2;
    aggr_t *a = s_new1(10, 20, AGGR_TS_END, &c, 1, &o);
    int64_t b = T0 / 10 * 10;
    assert_int_equal(s_add(a, 0, "a", 1, b, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "b", 1, b, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "c", 1, b, b), AGGR_LIMIT);
    assert_int_equal(s_add(a, 0, "a", 1, b, b), AGGR_OK); /* existing */
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.dropped_limit, 1);
    assert_int_equal(st.series, 2);
    sink_t k = {0};
    assert_int_equal(aggr_expire(a, b + 21, s_emit, &k), 2);
    assert_int_equal(s_add(a, 0, "c", 1, b + 30, b + 30), AGGR_OK);
    aggr_destroy(&a);
}

static void test_limit_buckets(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    aggr_opts_t o = s_opts();
    o.max_buckets = 10; /* 4 buckets a series: two fit */
    aggr_t *a = s_new1(10, 20, AGGR_TS_END, &c, 1, &o);
    int64_t b = T0 / 10 * 10;
    assert_int_equal(s_add(a, 0, "a", 1, b, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "b", 1, b, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "c", 1, b, b), AGGR_LIMIT);
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.buckets, 8);
    assert_int_equal(st.dropped_limit, 1);
    aggr_destroy(&a);
    /* a rule whose series need more than the bound never makes one */
    o.max_buckets = 3;
    a = s_new1(10, 20, AGGR_TS_END, &c, 1, &o);
    assert_int_equal(s_add(a, 0, "a", 1, b, b), AGGR_LIMIT);
    aggr_destroy(&a);
}

static void test_limit_values(void **state)
{
    (void)state;
    const aggr_compute_t c[] = {{AGGR_MEDIAN, 0}, {AGGR_SUM, 0}};
    aggr_opts_t o = s_opts();
    o.max_values = 10;
    aggr_t *a = s_new1(10, 20, AGGR_TS_END, c, 2, &o);
    int64_t b = T0 / 10 * 10;
    for (int i = 0; i < 10; i++)
        assert_int_equal(s_add(a, 0, "m", i, b, b), AGGR_OK);
    assert_int_equal(s_add(a, 0, "m", 99, b, b), AGGR_LIMIT);
    assert_int_equal(s_add(a, 0, "m", 99, b + 10, b), AGGR_LIMIT);
    /* sum keeps no values: not bounded by max_values */
    for (int i = 0; i < 20; i++)
        assert_int_equal(s_add(a, 1, "s", i, b, b), AGGR_OK);
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.values, 10);
    assert_int_equal(st.dropped_limit, 2);
    sink_t k = {0};
    assert_int_equal(aggr_expire(a, b + 21, s_emit, &k), 2);
    s_check(&k, "m", 4); /* rank (int)(5 + 0.9) of 0..9: the dropped 99
                            is not in */
    s_check(&k, "s", 190);
    /* the series was freed: its values with it */
    aggr_stats(a, 0, &st);
    assert_int_equal(st.values, 0);
    assert_int_equal(st.series, 0);
    aggr_destroy(&a);
}

/* ---- the life of a series ----------------------------------------------- */

/* A series lives while a bucket holds a value and is freed right after its
 * last value is emitted; the next datapoint starts a new window (as the
 * carbon-c-relay run of docs/aggregation.rst showed: a point the old
 * window would have refused as too old is taken). */
static void test_idle_freed(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_COUNT, 0};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(10, 25, AGGR_TS_END, &c, 1, &o);
    int64_t now = 1796319170;
    assert_int_equal(s_add(a, 0, "x", 1, now, now), AGGR_OK);
    assert_int_equal(s_add(a, 0, "x", 1, now + 10, now), AGGR_OK);
    aggr_stats_t st;
    sink_t k = {0};
    /* bucket now expires at now + 25 + 1: emitted, one bucket left */
    assert_int_equal(aggr_expire(a, now + 26, s_emit, &k), 1);
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, 1);
    assert_int_equal(aggr_expire(a, now + 36, s_emit, &k), 1);
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, 0);
    assert_int_equal(st.buckets, 0);
    /* at T = 1796319273 a new window starts at 1796319240; a window kept
     * moving since would start at 1796319250 */
    int64_t t = 1796319273;
    assert_int_equal(s_add(a, 0, "x", 5, 1796319241, t), AGGR_OK);
    assert_int_equal(aggr_expire(a, t + 1, s_emit, &k), 1);
    assert_int_equal(k.r[2].ts, 1796319250);
    aggr_destroy(&a);
}

/* Counts what is emitted. */
typedef struct {
    size_t n;   /* values */
    double sum; /* their sum */
} tally_t;

static void s_tally(void *arg, const char *name, size_t len, double value,
                    int64_t ts, size_t rule, size_t compute)
{
    tally_t *t = arg;
    (void)name, (void)len, (void)ts, (void)rule, (void)compute;
    t->n++;
    t->sum += value;
}

/* Many series: the hash table grows, each is found again, each emits
 * once. */
static void test_many_series(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(10, 20, AGGR_TS_END, &c, 1, &o);
    int64_t b = T0 / 10 * 10;
    enum { N = 20000 };
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            char n[32];
            snprintf(n, sizeof n, "many.%d", i);
            assert_int_equal(s_add(a, 0, n, i, b, b), AGGR_OK);
        }
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, N);
    tally_t t = {0, 0};
    assert_int_equal(aggr_expire(a, b + 20, s_tally, &t), 0);
    assert_int_equal(aggr_expire(a, b + 21, s_tally, &t), N);
    assert_int_equal(t.n, N);
    assert_true(t.sum == 3.0 * N * (N - 1) / 2); /* each got i three times */
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, 0);
    aggr_destroy(&a);
}

/* ---- reload ------------------------------------------------------------- */

static void test_take_over(void **state)
{
    (void)state;
    const aggr_compute_t c1[] = {{AGGR_SUM, 0}, {AGGR_MEDIAN, 0}};
    const aggr_compute_t c2[] = {{AGGR_COUNT, 0}};
    aggr_def_t olddefs[] = {{10, 20, AGGR_TS_END, c1, 2, "rule one"},
                            {10, 20, AGGR_TS_END, c2, 1, "rule two"},
                            {10, 20, AGGR_TS_END, c2, 1, NULL}};
    aggr_opts_t o = s_opts();
    aggr_t *old = aggr_new(olddefs, 3, &o, NULL);
    assert_non_null(old);
    int64_t b = T0 / 10 * 10;
    const char *n1[] = {"one.sum", "one.median"};
    const char *n1b[] = {"one.b.sum", "one.b.median"};
    const char *n2[] = {"two.count"};
    assert_int_equal(aggr_put(old, 0, n1, NULL, 3, b, b), 2);
    assert_int_equal(aggr_put(old, 0, n1, NULL, 1, b, b), 2);
    assert_int_equal(aggr_put(old, 0, n1, NULL, 2, b + 10, b), 2);
    assert_int_equal(aggr_put(old, 0, n1b, NULL, 7, b, b), 2);
    assert_int_equal(aggr_put(old, 0, n1, NULL, 1, b - 100, b), 0);
    assert_int_equal(aggr_put(old, 1, n2, NULL, 1, b, b), 1);
    assert_int_equal(aggr_put(old, 2, n2, NULL, 1, b, b), 1);

    /* the new configuration: rule one unchanged (now second), rule two
     * changed (expire), the keyless rule as it was, and a new rule */
    aggr_def_t newdefs[] = {{10, 30, AGGR_TS_END, c2, 1, "rule two"},
                            {10, 20, AGGR_TS_END, c1, 2, "rule one"},
                            {10, 20, AGGR_TS_END, c2, 1, NULL},
                            {10, 20, AGGR_TS_END, c2, 1, "rule three"}};
    assert_false(aggr_def_equal(&newdefs[0], &olddefs[1]));
    assert_true(aggr_def_equal(&newdefs[1], &olddefs[0]));
    assert_false(aggr_def_equal(&newdefs[2], &olddefs[2]));
    aggr_t *a = aggr_new(newdefs, 4, &o, NULL);
    assert_non_null(a);
    assert_int_equal(aggr_take_over(a, old), 4);
    aggr_stats_t st;
    aggr_stats(a, 1, &st);
    assert_int_equal(st.series, 4);
    assert_int_equal(st.received, 5);
    assert_int_equal(st.dropped_old, 2);
    /* three median stores of 8: one.median's two buckets, one.b's one */
    assert_int_equal(st.values, 3 * 8);
    aggr_stats(old, 0, &st);
    assert_int_equal(st.series, 0);
    assert_int_equal(st.received, 0);
    assert_int_equal(st.values, 0);
    aggr_stats(old, 1, &st);
    assert_int_equal(st.series, 1);
    aggr_stats(old, 2, &st);
    assert_int_equal(st.series, 1);

    /* the moved series go on: more data, then their values */
    assert_int_equal(aggr_put(a, 1, n1, NULL, 5, b, b + 1), 2);
    sink_t k = {0};
    assert_int_equal(aggr_expire(a, b + 21, s_emit, &k), 4);
    s_check(&k, "one.sum", 9);    /* 3 + 1 + 5 */
    s_check(&k, "one.median", 3); /* 1 3 5 */
    s_check(&k, "one.b.sum", 7);
    assert_int_equal(k.r[0].rule, 1);
    /* the bucket b + 10 too */
    assert_int_equal(aggr_expire(a, b + 31, s_emit, &k), 2);
    assert_true(k.r[4].value == 2 && k.r[5].value == 2);

    /* the old one's remaining series: flushed by the caller */
    sink_t k2 = {0};
    assert_int_equal(aggr_flush(old, b + 11, s_emit, &k2), 2);
    aggr_destroy(&old);
    aggr_destroy(&a);
}

/* Take-over within the new one's bounds: what does not fit stays. */
static void test_take_over_bounded(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    aggr_def_t d = {10, 20, AGGR_TS_END, &c, 1, "r"};
    aggr_opts_t o = s_opts();
    aggr_t *old = aggr_new(&d, 1, &o, NULL);
    int64_t b = T0 / 10 * 10;
    assert_int_equal(s_add(old, 0, "a", 1, b, b), AGGR_OK);
    assert_int_equal(s_add(old, 0, "b", 2, b, b), AGGR_OK);
    assert_int_equal(s_add(old, 0, "c", 3, b, b), AGGR_OK);
    o.max_series = 2;
    aggr_t *a = aggr_new(&d, 1, &o, NULL);
    assert_int_equal(aggr_take_over(a, old), 2);
    aggr_stats_t st;
    aggr_stats(old, 0, &st);
    assert_int_equal(st.series, 1);
    sink_t k = {0};
    assert_int_equal(aggr_expire(a, b + 21, s_emit, &k), 2);
    assert_string_equal(k.r[0].name, "a"); /* old's creation order */
    assert_string_equal(k.r[1].name, "b");
    assert_int_equal(aggr_expire(old, b + 21, s_emit, &k), 1);
    assert_string_equal(k.r[2].name, "c");
    aggr_destroy(&old);
    aggr_destroy(&a);
}

/* ---- allocation failures ------------------------------------------------ */

/* An allocator that fails call number fail_at (1-based; 0: never). */
typedef struct {
    long calls;   /* allocations so far */
    long fail_at; /* the one to fail */
    long live;    /* allocated and not freed */
} falloc_t;

static void *s_falloc(void *arg, void *p, size_t n)
{
    falloc_t *f = arg;
    if (n == 0) {
        if (p != NULL)
            f->live--;
        free(p);
        return NULL;
    }
    if (++f->calls == f->fail_at)
        return NULL;
    void *q = calloc(1, n);
    if (q != NULL)
        f->live++;
    return q;
}

/* A scenario touching every allocation: aggr_new, series, hash and heap
 * growth, value stores, the sort's scratch, take-over.  Returns the
 * number of allocations it made. */
static long s_scenario(falloc_t *f)
{
    const aggr_compute_t c[] = {{AGGR_MEDIAN, 0}, {AGGR_SUM, 0}};
    aggr_def_t d = {10, 20, AGGR_TS_END, c, 2, "k"};
    aggr_opts_t o = s_opts();
    o.alloc = s_falloc;
    o.alloc_arg = f;
    aggr_t *a = aggr_new(&d, 1, &o, NULL);
    if (a == NULL)
        return f->calls;
    int64_t b = T0 / 10 * 10;
    size_t ok = 0, nomem = 0;
    for (int i = 0; i < 100; i++) {
        char n[16];
        snprintf(n, sizeof n, "n%d", i % 70);
        aggr_status_t st = s_add(a, (size_t)(i % 2), n, i, b + i % 20, b);
        if (st == AGGR_OK)
            ok++;
        else if (st == AGGR_NOMEM)
            nomem++;
        else
            fail_msg("unexpected status %d", st);
    }
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.dropped_nomem, nomem);
    assert_int_equal(ok + nomem, 100);
    aggr_t *a2 = aggr_new(&d, 1, &o, NULL);
    if (a2 != NULL) {
        aggr_take_over(a2, a);
        sink_t *k = calloc(1, sizeof *k);
        aggr_expire(a2, b + 100, s_emit, k);
        aggr_expire(a, b + 100, s_emit, k);
        aggr_stats_t s1, s2;
        aggr_stats(a, 0, &s1);
        aggr_stats(a2, 0, &s2);
        /* everything came out, from one or the other */
        assert_int_equal(s1.series + s2.series, 0);
        assert_int_equal(s1.sent + s2.sent, k->n);
        free(k);
        aggr_destroy(&a2);
    }
    aggr_destroy(&a);
    return f->calls;
}

static void test_oom(void **state)
{
    (void)state;
    falloc_t f = {0, 0, 0};
    long total = s_scenario(&f);
    assert_true(total > 10);
    assert_int_equal(f.live, 0);
    for (long i = 1; i <= total; i++) {
        falloc_t g = {0, i, 0};
        s_scenario(&g);
        assert_int_equal(g.live, 0); /* nothing leaked */
    }
}

/* The first allocations of a series that fail: counted, nothing held. */
static void test_oom_counted(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_PERCENTILE, 75};
    falloc_t f = {0, 0, 0};
    aggr_opts_t o = s_opts();
    o.alloc = s_falloc;
    o.alloc_arg = &f;
    aggr_t *a = s_new1(10, 20, AGGR_TS_END, &c, 1, &o);
    int64_t b = T0 / 10 * 10;
    /* the first series allocates the hash table, the heap, the series and
     * its value store, in that order; what was made stays for the next
     * try: fail the table, then the heap, then the series, then the store */
    const long next[] = {1, 2, 1, 2};
    for (int i = 0; i < 4; i++) {
        f.fail_at = f.calls + next[i];
        assert_int_equal(s_add(a, 0, "p", 1, b, b), AGGR_NOMEM);
        aggr_stats_t st;
        aggr_stats(a, 0, &st);
        assert_int_equal(st.dropped_nomem, (uint64_t)i + 1);
        assert_int_equal(st.series, 0);
        assert_int_equal(st.values, 0);
        assert_int_equal(f.calls, f.fail_at); /* the failure was hit */
    }
    f.fail_at = 0;
    assert_int_equal(s_add(a, 0, "p", 1, b, b), AGGR_OK);
    /* the sort's scratch fails: the fallback sorts the same */
    for (int i = 2; i <= 9; i++)
        assert_int_equal(s_add(a, 0, "p", 11 - i, b, b), AGGR_OK);
    f.fail_at = f.calls + 1;
    sink_t k = {0};
    assert_int_equal(aggr_expire(a, b + 21, s_emit, &k), 1);
    s_check(&k, "p", 7); /* 1..9: rank (int)(6.75 + 0.9) = 7 */
    aggr_destroy(&a);
    assert_int_equal(f.live, 0);
    /* aggr_new itself */
    for (long i = 1; i <= 4; i++) {
        falloc_t g = {0, i, 0};
        o.alloc_arg = &g;
        aggr_def_t d = {10, 20, AGGR_TS_END, &c, 1, "key"};
        const char *err = NULL;
        assert_null(aggr_new(&d, 1, &o, &err));
        assert_string_equal(err, "out of memory");
        assert_int_equal(g.live, 0);
    }
}

/* ---- odds and ends ------------------------------------------------------ */

static void test_bad_index(void **state)
{
    (void)state;
    const aggr_compute_t c = {AGGR_SUM, 0};
    aggr_opts_t o = s_opts();
    aggr_t *a = s_new1(10, 20, AGGR_TS_END, &c, 1, &o);
    assert_int_equal(aggr_rules(a), 1);
    assert_int_equal(s_add(a, 1, "x", 1, T0, T0), AGGR_BAD_INDEX);
    assert_int_equal(aggr_add(a, 1, 0, "x", 1, 1, T0, T0), AGGR_BAD_INDEX);
    const char *n[] = {NULL};
    assert_int_equal(aggr_put(a, 0, n, NULL, 1, T0, T0), 0);
    aggr_stats_t st;
    aggr_stats(a, 0, &st);
    assert_int_equal(st.received, 1);
    assert_int_equal(st.series, 0);
    aggr_stats(a, 7, &st);
    assert_int_equal(st.received, 0);
    /* names are bytes with a length: "x.y" and "x" are two series */
    assert_int_equal(aggr_add(a, 0, 0, "x.y", 3, 1, T0, T0), AGGR_OK);
    assert_int_equal(aggr_add(a, 0, 0, "x.y", 1, 2, T0, T0), AGGR_OK);
    aggr_stats(a, 0, &st);
    assert_int_equal(st.series, 2);
    /* absurd timestamps: dropped, for a new series and an existing one */
    assert_int_equal(s_add(a, 0, "z", 1, INT64_MAX, T0), AGGR_TOO_NEW);
    assert_int_equal(s_add(a, 0, "z", 1, INT64_MIN, T0), AGGR_TOO_OLD);
    assert_int_equal(s_add(a, 0, "x", 1, INT64_MAX, T0), AGGR_TOO_NEW);
    assert_int_equal(s_add(a, 0, "x", 1, INT64_MIN, T0), AGGR_TOO_OLD);
    /* a NULL callback: values counted sent, not delivered */
    assert_int_equal(aggr_expire(a, T0 + 100, NULL, NULL), 2);
    aggr_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_def_check),
        cmocka_unit_test(test_buckets_per_series),
        cmocka_unit_test(test_computes),
        cmocka_unit_test(test_percentile_ranks),
        cmocka_unit_test(test_quantile),
        cmocka_unit_test(test_sort_compat),
        cmocka_unit_test(test_sort_compat_split),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_splay),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_long_gap),
        cmocka_unit_test(test_flush),
        cmocka_unit_test(test_limit_series),
        cmocka_unit_test(test_limit_buckets),
        cmocka_unit_test(test_limit_values),
        cmocka_unit_test(test_idle_freed),
        cmocka_unit_test(test_many_series),
        cmocka_unit_test(test_take_over),
        cmocka_unit_test(test_take_over_bounded),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_oom_counted),
        cmocka_unit_test(test_bad_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
