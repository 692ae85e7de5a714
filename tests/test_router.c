/*
 * test_router.c -- unit tests of rule evaluation (src/router.c): matches,
 * stop and fall-through, the blackhole's implicit stop, rewrite with every
 * reference form, validate, route using, hash clusters, any_of failover,
 * and the prefix index against evaluating every rule, on random configs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "router.h"
#include "useall.h"

/* What one routing call produced: "id:name" per emit, space-separated. */
typedef struct {
    char out[8192];
    size_t len;
    int n;
} got_t;

/* A critical emit ends in '!'. */
static void s_emit(void *arg, uint32_t id, const char *name, size_t namelen,
                   int critical)
{
    got_t *g = arg;
    g->len += (size_t)snprintf(g->out + g->len, sizeof g->out - g->len,
                               "%s%u:%.*s%s", g->n ? " " : "", id, (int)namelen,
                               name, critical ? "!" : "");
    g->n++;
}

typedef struct {
    config_t *cfg;
    router_t *r;
    router_ctx_t *ctx;
} fix_t;

static fix_t *s_fix(const char *conf)
{
    fix_t *f = calloc(1, sizeof *f);
    char err[512];
    f->cfg = config_parse_string(conf, "t.conf", err, sizeof err);
    if (f->cfg == NULL)
        fail_msg("config: %s", err);
    f->r = useall_expand(f->cfg, err, sizeof err) == 0
               ? router_new(f->cfg, err, sizeof err)
               : NULL;
    if (f->r == NULL)
        fail_msg("router: %s", err);
    f->ctx = router_ctx_new();
    return f;
}

static void s_unfix(fix_t *f)
{
    router_ctx_destroy(&f->ctx);
    router_destroy(&f->r);
    config_destroy(&f->cfg);
    free(f);
}

/* Route "name 1 2" and return the emits as text; *how gets the bits. */
static const char *s_route(fix_t *f, const char *name, int *how,
                           const bool *alive, got_t *g)
{
    char line[1024];
    memset(g, 0, sizeof *g);
    snprintf(line, sizeof line, "%s 1 2\n", name);
    size_t nl = strcspn(line, " ;");
    int h = router_route(f->r, f->ctx, line, strlen(line), nl, alive, s_emit, g,
                         NULL, NULL);
    if (how)
        *how = h;
    return g->out;
}

static void test_dests_and_stop(void **state)
{
    (void)state;
    fix_t *f = s_fix("cluster a forward 127.0.0.1:2003 127.0.0.2:2004 ;\n"
                     "cluster b forward 10.0.0.1 ;\n"
                     "cluster f file /tmp/orchester-test-out ;\n"
                     "match ^sys\\. send to a stop ;\n"
                     "match ^app\\. ^web\\. send to b ;\n"
                     "match ^web\\. send to blackhole ;\n"
                     "match \\.drop$ send to blackhole stop ;\n"
                     "match * send to f ;\n");
    got_t g;
    int how;
    assert_int_equal(router_ndests(f->r), 4);
    assert_string_equal(router_dest(f->r, 0)->addr, "127.0.0.1:2003");
    assert_string_equal(router_dest(f->r, 0)->key, "127_0_0_1_2003");
    assert_string_equal(router_dest(f->r, 2)->addr, "10.0.0.1:2003");
    assert_null(router_dest(f->r, 4));
    assert_string_equal(s_route(f, "sys.cpu", &how, NULL, &g),
                        "0:sys.cpu 1:sys.cpu");
    assert_true(how & ROUTE_SENT);
    assert_string_equal(s_route(f, "app.x", &how, NULL, &g), "2:app.x 3:app.x");
    /* the blackhole stops evaluation without saying stop */
    assert_string_equal(s_route(f, "web.x", &how, NULL, &g), "2:web.x");
    assert_true(how & ROUTE_BLACKHOLE);
    assert_string_equal(s_route(f, "a.drop", &how, NULL, &g), "");
    assert_true(how & ROUTE_BLACKHOLE);
    assert_false(how & ROUTE_NOMATCH);
    /* the name is bounded by namelen: tags are not routed on */
    memset(&g, 0, sizeof g);
    router_route(f->r, f->ctx, "a.drop;x=1 1 2", 14, 6, NULL, s_emit, &g, NULL,
                 NULL);
    assert_string_equal(g.out, "");
    s_unfix(f);
}

static void test_rewrite(void **state)
{
    (void)state;
    fix_t *f = s_fix(
        "cluster c forward 127.0.0.1 ;\n"
        "rewrite ^g\\.(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)$ into \\g{9}\\9\\0 ;\n"
        "rewrite b(.) into X\\_1Y ;\n"
        "rewrite ^(q)\\.(.*)$ into \\^1.\\.2 ;\n"
        "rewrite ^up\\.(.*)$ into \\^.1 ;\n"
        "match ^Q\\. send to c stop ;\n"
        "match * send to c ;\n");
    got_t g;
    /* replaces the matched part only, first match */
    assert_string_equal(s_route(f, "abcd", NULL, NULL, &g), "0:aXcYd");
    /* rewrites chain: b. -> X.Y, then q -> Q and dots -> _ in group 2 */
    assert_string_equal(s_route(f, "q.a.b.c", NULL, NULL, &g), "0:Q.a_X_Yc");
    assert_string_equal(s_route(f, "up.a.b", NULL, NULL, &g), "0:A_B");
    /* \g{9} and \9 are group 9; \0 is empty, as carbon-c-relay reads it */
    assert_string_equal(s_route(f, "g.abcdefghij", NULL, NULL, &g), "0:ii");
    assert_string_equal(s_route(f, "zzz", NULL, NULL, &g), "0:zzz");
    s_unfix(f);
}

static void test_replacement_forms(void **state)
{
    (void)state;
    fix_t *f =
        s_fix("cluster c forward 127.0.0.1 ;\n"
              "rewrite ^e1\\.([a-z]+)\\.([a-z]+)$ into x\\12 ;\n"
              "rewrite ^e3\\.(.*)$ into x\\-\\1 ;\n"
              "rewrite ^e6\\.(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)$ into \\11 ;\n"
              "match * send to c ;\n");
    got_t g;
    /* all the digits make the group number; a missing group is empty */
    assert_string_equal(s_route(f, "e1.ab.cd", NULL, NULL, &g), "0:x");
    /* a backslash before another character is dropped */
    assert_string_equal(s_route(f, "e3.ab", NULL, NULL, &g), "0:x-ab");
    assert_string_equal(s_route(f, "e6.abcdefghijk", NULL, NULL, &g), "0:k");
    s_unfix(f);
}

static void test_validate(void **state)
{
    (void)state;
    fix_t *f =
        s_fix("cluster c forward 127.0.0.1 ;\n"
              "cluster d forward 127.0.0.2 ;\n"
              "match ^a validate ^[0-9]+\\ [0-9]+$ else drop send to c ;\n"
              "match * send to d ;\n");
    got_t g;
    int how;
    assert_string_equal(s_route(f, "a.x", &how, NULL, &g), "0:a.x 1:a.x");
    /* "1 2" passes; a value with a '.' fails and skips the rule */
    memset(&g, 0, sizeof g);
    router_route(f->r, f->ctx, "a.y 1.5 2\n", 10, 3, NULL, s_emit, &g, NULL,
                 NULL);
    assert_string_equal(g.out, "1:a.y");
    s_unfix(f);
    /* a failing rule that stops, or a global validation without
     * destinations, ends the evaluation: the metric is dropped */
    f = s_fix("cluster c forward 127.0.0.1 ;\n"
              "match ^s validate ^[0-9]+\\ [0-9]+$ else drop send to c stop ;\n"
              "match * validate ^[0-9.]+\\ [0-9]+$ else log ;\n"
              "match * send to c ;\n");
    memset(&g, 0, sizeof g);
    how = router_route(f->r, f->ctx, "s.y 1.5 2\n", 10, 3, NULL, s_emit, &g,
                       NULL, NULL);
    assert_string_equal(g.out, "");
    assert_true(how & ROUTE_INVALID);
    /* `else drop` is not for the log */
    assert_false(how & ROUTE_INVALID_LOG);
    assert_null(router_ctx_invalid(f->ctx));
    memset(&g, 0, sizeof g);
    how = router_route(f->r, f->ctx, "t.y x 2\n", 8, 3, NULL, s_emit, &g, NULL,
                       NULL);
    assert_string_equal(g.out, "");
    /* `else log`: the router logs nothing, it tells the caller what */
    assert_true(how & ROUTE_INVALID_LOG);
    const router_invalid_t *iv = router_ctx_invalid(f->ctx);
    assert_non_null(iv);
    assert_int_equal(iv->rule->pos.line, 3);
    assert_string_equal(iv->name, "t.y");
    assert_string_equal(iv->data, "x 2");
    memset(&g, 0, sizeof g);
    router_route(f->r, f->ctx, "t.y 1.5 2\n", 10, 3, NULL, s_emit, &g, NULL,
                 NULL);
    assert_string_equal(g.out, "0:t.y");
    s_unfix(f);
}

static void test_hash_clusters(void **state)
{
    (void)state;
    fix_t *f = s_fix(
        "cluster ch carbon_ch replication 2 127.0.0.1:2003 127.0.0.2:2004 "
        "127.0.0.3:2005 127.0.0.4:2006 127.0.0.5:2007 127.0.0.6:2008 "
        "127.0.0.7:2009 ;\n"
        "match * send to ch ;\n");
    got_t g;
    /* placement facts (docs/architecture.rst, "Hash placement") */
    s_route(f, "iiZeik7oongohdohgane", NULL, NULL, &g);
    assert_string_equal(g.out, "6:iiZeik7oongohdohgane 4:iiZeik7oongohdohgane");
    s_unfix(f);
    f = s_fix("cluster c carbon_ch 127.0.0.1:2003 127.0.0.2:2003 ;\n"
              "match ^(a)\\.(.*)$ route using \\2 send to c ;\n"
              "match * send to c ;\n");
    got_t g2;
    /* route using places a.x where x goes */
    s_route(f, "x", NULL, NULL, &g);
    s_route(f, "a.x", NULL, NULL, &g2);
    assert_int_equal(g.out[0], g2.out[0]);
    s_unfix(f);
}

static void test_any_of_failover(void **state)
{
    (void)state;
    fix_t *f = s_fix("cluster a any_of 127.0.0.1 127.0.0.2 127.0.0.3 ;\n"
                     "cluster b failover 127.0.0.4 127.0.0.5 ;\n"
                     "match ^a send to a stop ;\n"
                     "match * send to b ;\n");
    got_t g;
    bool alive[5] = {true, true, true, true, true};
    int counts[3] = {0};
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof name, "a.m%d", i);
        s_route(f, name, NULL, alive, &g);
        assert_int_equal(g.n, 1);
        counts[g.out[0] - '0']++;
    }
    assert_true(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
    /* a dead member's share moves; the others keep theirs */
    bool dead1[5] = {true, false, true, true, true};
    for (int i = 0; i < 300; i++) {
        char name[32];
        got_t g2;
        snprintf(name, sizeof name, "a.m%d", i);
        s_route(f, name, NULL, alive, &g);
        s_route(f, name, NULL, dead1, &g2);
        assert_int_not_equal(g2.out[0], '1');
        if (g.out[0] != '1')
            assert_int_equal(g.out[0], g2.out[0]);
    }
    assert_string_equal(s_route(f, "b.x", NULL, alive, &g), "3:b.x");
    bool dead3[5] = {true, true, true, false, true};
    assert_string_equal(s_route(f, "b.x", NULL, dead3, &g), "4:b.x");
    /* nobody alive: it queues where it belongs */
    bool none[5] = {false, false, false, false, false};
    assert_string_equal(s_route(f, "b.x", NULL, none, &g), "3:b.x");
    s_unfix(f);
}

static void test_useall(void **state)
{
    (void)state;
    /* numeric hosts resolve to themselves; duplicates fold */
    fix_t *f = s_fix("cluster u any_of useall 127.0.0.1:2003 127.0.0.1:2003 "
                     "127.0.0.2:2003 ;\n"
                     "match * send to u ;\n");
    assert_int_equal(router_ndests(f->r), 2);
    assert_string_equal(router_dest(f->r, 1)->addr, "127.0.0.2:2003");
    s_unfix(f);
    char err[512];
    config_t *cfg = config_parse_string(
        "cluster u forward useall no-such-host.invalid:2003 ;\n", "w.conf", err,
        sizeof err);
    assert_non_null(cfg);
    assert_int_equal(useall_expand(cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "w.conf:1:"));
    assert_non_null(strstr(err, "resolve"));
    /* the router resolves nothing itself: unexpanded useall is refused */
    assert_null(router_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "useall_expand"));
    config_destroy(&cfg);
}

static void test_dynamic_hash(void **state)
{
    (void)state;
    fix_t *f =
        s_fix("cluster d carbon_ch dynamic 127.0.0.1 127.0.0.2 127.0.0.3 ;\n"
              "cluster s carbon_ch 127.0.0.4 127.0.0.5 ;\n"
              "match ^d send to d stop ;\n"
              "match * send to s ;\n");
    bool alive[5] = {true, true, true, true, true};
    bool dead[5] = {false, true, true, false, true};
    int moved = 0;
    for (int i = 0; i < 200; i++) {
        char name[32];
        got_t a, b;
        snprintf(name, sizeof name, "d.m%d", i);
        s_route(f, name, NULL, alive, &a);
        s_route(f, name, NULL, dead, &b);
        assert_int_not_equal(b.out[0], '0'); /* never to the dead member */
        if (a.out[0] == '0')
            moved++;
        else
            assert_int_equal(a.out[0], b.out[0]); /* the rest stay */
        /* a hash cluster without `dynamic` keeps its placement */
        snprintf(name, sizeof name, "s.m%d", i);
        s_route(f, name, NULL, alive, &a);
        s_route(f, name, NULL, dead, &b);
        assert_string_equal(a.out, b.out);
    }
    assert_true(moved > 0);
    s_unfix(f);
}

/* ---- the index gives the answers of a full evaluation -------------------- */

static const char *s_words[] = {"sys", "app", "web", "db", "a", "ab", "x1"};

static void s_rand_name(unsigned *seed, char *out, size_t cap)
{
    size_t k = 0;
    int parts = 1 + rand_r(seed) % 4;
    for (int i = 0; i < parts && k + 8 < cap; i++) {
        const char *w = s_words[rand_r(seed) % 7];
        k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? "." : "", w);
    }
}

static void s_rand_regex(unsigned *seed, char *out, size_t cap)
{
    char name[64];
    s_rand_name(seed, name, sizeof name);
    char esc[160];
    size_t k = 0;
    for (const char *p = name; *p; p++) {
        if (*p == '.')
            esc[k++] = '\\';
        esc[k++] = *p;
    }
    esc[k] = '\0';
    switch (rand_r(seed) % 6) {
    case 0: snprintf(out, cap, "^%s", esc); break;
    case 1: snprintf(out, cap, "^%s\\.", esc); break;
    case 2: snprintf(out, cap, "%s", esc); break;       /* unanchored */
    case 3: snprintf(out, cap, "^%s?b", esc); break;    /* optional char */
    case 4: snprintf(out, cap, "^(%s|db)", esc); break; /* alternation */
    default: snprintf(out, cap, "^%s+", esc); break;
    }
}

static void test_index_equivalence(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (int round = 0; round < 60; round++) {
        char conf[16384];
        size_t k = 0;
        k += (size_t)snprintf(conf + k, sizeof conf - k,
                              "cluster c0 forward 127.0.0.1 ;\n"
                              "cluster c1 forward 127.0.0.2 ;\n"
                              "cluster c2 any_of 127.0.0.3 127.0.0.4 ;\n");
        int nrules = 3 + rand_r(&seed) % 25;
        for (int i = 0; i < nrules; i++) {
            char re[200], re2[200];
            s_rand_regex(&seed, re, sizeof re);
            int kind = rand_r(&seed) % 10;
            if (kind == 0) {
                s_rand_regex(&seed, re2, sizeof re2);
                k += (size_t)snprintf(conf + k, sizeof conf - k,
                                      "rewrite '%s' into 'sys.\\0' ;\n", re);
            } else if (kind == 1) {
                k += (size_t)snprintf(conf + k, sizeof conf - k,
                                      "match * send to c%d ;\n",
                                      rand_r(&seed) % 3);
            } else {
                s_rand_regex(&seed, re2, sizeof re2);
                k += (size_t)snprintf(conf + k, sizeof conf - k,
                                      "match '%s' '%s' send to c%d%s ;\n", re,
                                      re2, rand_r(&seed) % 3,
                                      rand_r(&seed) % 3 == 0 ? " stop" : "");
            }
        }
        fix_t *f = s_fix(conf);
        for (int j = 0; j < 300; j++) {
            char name[128];
            s_rand_name(&seed, name, sizeof name);
            got_t a, b;
            int ha, hb;
            router_set_index(f->r, true);
            s_route(f, name, &ha, NULL, &a);
            router_set_index(f->r, false);
            s_route(f, name, &hb, NULL, &b);
            if (strcmp(a.out, b.out) != 0 || ha != hb)
                fail_msg(
                    "config:\n%s\nname %s: index '%s' (%d), full '%s' (%d)",
                    conf, name, a.out, ha, b.out, hb);
        }
        s_unfix(f);
    }
}

/* Expressions read as carbon-c-relay (glibc) reads them where TRE's own
 * syntax differs (src/ere.h), and names a backtracking matcher is slow on
 * get their answer. */
static void test_glibc_reading(void **state)
{
    (void)state;
    fix_t *f = s_fix("cluster c forward 127.0.0.1 ;\n"
                     "rewrite ^d\\.\\d\\t$ into D ;\n"
                     "rewrite ^l\\.(a+?)(a*)$ into L.\\1.\\2 ;\n"
                     "rewrite ^q\\.(a?\?)(a*)$ into Q.\\1.\\2 ;\n"
                     "rewrite ^x\\.(x{,2})y into X.\\1 ;\n"
                     "rewrite \\`s\\.(.*)\\' into S.\\1 ;\n"
                     "rewrite ^z\\.a**$ into Z ;\n"
                     "match ^[A-Z] (a+)+$ (a|aa)+$ send to c stop ;\n"
                     "match * send to blackhole ;\n");
    got_t g;
    int how;
    /* "\d" is the letter d and "\t" the letter t, not a digit or a tab */
    assert_string_equal(s_route(f, "d.dt", NULL, NULL, &g), "0:D");
    assert_string_equal(s_route(f, "d.1t", NULL, NULL, &g), "");
    /* "+?" and "?" then "?" repeat the repetition before them, and are not lazy
     */
    assert_string_equal(s_route(f, "l.aaa", NULL, NULL, &g), "0:L.aaa.");
    assert_string_equal(s_route(f, "q.aa", NULL, NULL, &g), "0:Q.a.a");
    /* "{,2}" is "{0,2}" */
    assert_string_equal(s_route(f, "x.xxy", NULL, NULL, &g), "0:X.xx");
    assert_string_equal(s_route(f, "x.xxxy", NULL, NULL, &g), "");
    /* \` and \' are the ends of the name */
    assert_string_equal(s_route(f, "s.a.b", NULL, NULL, &g), "0:S.a.b");
    /* "a**" is (a*)* */
    assert_string_equal(s_route(f, "z.aaa", NULL, NULL, &g), "0:Z");

    /* "aaa...ab" against (a+)+$ and (a|aa)+$: the rule matches (the name
     * ends in a), or not, in one pass over the name */
    char name[1000];
    memset(name, 'a', sizeof name - 2);
    name[sizeof name - 2] = 'b';
    name[sizeof name - 1] = '\0';
    assert_string_equal(s_route(f, name, &how, NULL, &g), "");
    assert_true(how & ROUTE_BLACKHOLE);
    name[sizeof name - 2] = 'a';
    s_route(f, name, &how, NULL, &g);
    assert_int_equal(g.n, 1);
    assert_true(how & ROUTE_SENT);
    s_unfix(f);
}

/* critical needs a buffer; without one the rule is refused by name */
static void test_critical_needs_buffer(void **state)
{
    (void)state;
    char err[512];
    config_t *cfg = config_parse_string("cluster a forward 127.0.0.1 ;\n"
                                        "match * critical send to a ;\n",
                                        "v.conf", err, sizeof err);
    assert_non_null(cfg);
    router_t *r = router_new(cfg, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "v.conf:2:"));
    assert_non_null(strstr(err, "'critical' needs a 'buffer"));
    config_destroy(&cfg);
}

/* A critical rule marks what it sends, and only that; `all critical`
 * marks everything, the statistics' clusters too. */
static void test_critical(void **state)
{
    (void)state;
    got_t g;
    fix_t *f = s_fix("cluster a forward 127.0.0.1:1 ;\n"
                     "cluster b forward 127.0.0.2:1 ;\n"
                     "buffer redis unix:/tmp/r.sock ;\n"
                     "match ^bill\\. critical send to a ;\n"
                     "match * send to b ;\n");
    assert_string_equal(s_route(f, "bill.x", NULL, NULL, &g),
                        "0:bill.x! 1:bill.x");
    assert_string_equal(s_route(f, "web.x", NULL, NULL, &g), "1:web.x");
    s_unfix(f);
    f = s_fix("cluster a forward 127.0.0.1:1 ;\n"
              "buffer redis unix:/tmp/r.sock all critical ;\n"
              "match * send to a ;\n");
    assert_string_equal(s_route(f, "web.x", NULL, NULL, &g), "0:web.x!");
    char *names[] = {"a"};
    memset(&g, 0, sizeof g);
    assert_int_equal(
        router_to_clusters(f->r, f->ctx, names, 1, "s.x", 3, NULL, s_emit, &g),
        1);
    assert_string_equal(g.out, "0:s.x!");
    s_unfix(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dests_and_stop),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_replacement_forms),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_hash_clusters),
        cmocka_unit_test(test_any_of_failover),
        cmocka_unit_test(test_dynamic_hash),
        cmocka_unit_test(test_useall),
        cmocka_unit_test(test_index_equivalence),
        cmocka_unit_test(test_glibc_reading),
        cmocka_unit_test(test_critical_needs_buffer),
        cmocka_unit_test(test_critical),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
