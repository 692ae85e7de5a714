/*
 * test_router.c -- unit tests of rule evaluation (src/router.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "router.h"

typedef struct {
    config_t *cfg;
    router_t *r;
} fix_t;

static const char *s_conf =
    "cluster a forward 127.0.0.1:2003 127.0.0.2:2004 ;\n"
    "cluster b forward 10.0.0.1 ;\n"
    "cluster f file /tmp/orchester-test-out ;\n"
    "match ^sys\\. send to a stop ;\n"
    "match ^app\\. ^web\\. send to b ;\n"
    "match ^web\\. send to blackhole stop ;\n"
    "match \\.drop$ send to blackhole stop ;\n"
    "match * send to f ;\n";

static int s_setup(void **state)
{
    static fix_t f;
    char err[512];
    f.cfg = config_parse_string(s_conf, "t.conf", err, sizeof err);
    if (f.cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    f.r = router_new(f.cfg, err, sizeof err);
    if (f.r == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    *state = &f;
    return 0;
}

static int s_teardown(void **state)
{
    fix_t *f = *state;
    router_destroy(&f->r);
    config_destroy(&f->cfg);
    return 0;
}

static size_t s_route(fix_t *f, const char *name, uint32_t *ids, int *how)
{
    return router_route(f->r, name, strlen(name), ids, 16, how, NULL, NULL);
}

static void test_dests(void **state)
{
    fix_t *f = *state;
    assert_int_equal(router_ndests(f->r), 4);
    assert_string_equal(router_dest(f->r, 0)->addr, "127.0.0.1:2003");
    assert_string_equal(router_dest(f->r, 0)->key, "127_0_0_1_2003");
    assert_string_equal(router_dest(f->r, 2)->addr, "10.0.0.1:2003");
    assert_string_equal(router_dest(f->r, 3)->addr, "/tmp/orchester-test-out");
    assert_null(router_dest(f->r, 4));
}

static void test_stop_and_fallthrough(void **state)
{
    fix_t *f = *state;
    uint32_t ids[16];
    int how;
    /* stop: only the forward cluster, both members */
    assert_int_equal(s_route(f, "sys.cpu", ids, &how), 2);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    assert_true(how & ROUTE_SENT);
    /* falls through to the catch-all */
    assert_int_equal(s_route(f, "app.x", ids, &how), 2);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    /* second expression of a rule matches; then blackhole stops */
    assert_int_equal(s_route(f, "web.x", ids, &how), 1);
    assert_int_equal(ids[0], 2);
    assert_true(how & ROUTE_BLACKHOLE);
    /* blackhole only */
    assert_int_equal(s_route(f, "a.drop", ids, &how), 0);
    assert_true(how & ROUTE_BLACKHOLE);
    assert_false(how & ROUTE_NOMATCH);
    /* the name is bounded by namelen, not by a NUL */
    assert_int_equal(router_route(f->r, "sys.cpu 1 2", 7, ids, 16, &how, NULL,
                                  NULL), 2);
    assert_int_equal(router_route(f->r, "a.dropx", 6, ids, 16, &how, NULL,
                                  NULL), 0);
}

static void test_nomatch_and_cap(void **state)
{
    (void)state;
    char err[512];
    config_t *cfg = config_parse_string(
        "cluster a forward 127.0.0.1 127.0.0.2 127.0.0.3 ;\n"
        "match ^x send to a ;\n", "u.conf", err, sizeof err);
    assert_non_null(cfg);
    router_t *r = router_new(cfg, err, sizeof err);
    assert_non_null(r);
    uint32_t ids[2];
    int how;
    assert_int_equal(router_route(r, "y", 1, ids, 2, &how, NULL, NULL), 0);
    assert_true(how & ROUTE_NOMATCH);
    /* outcap bounds what is written */
    assert_int_equal(router_route(r, "x", 1, ids, 2, &how, NULL, NULL), 2);
    router_destroy(&r);
    config_destroy(&cfg);
}

static void test_unsupported_named(void **state)
{
    (void)state;
    char err[512];
    config_t *cfg = config_parse_string(
        "cluster a forward 127.0.0.1 ;\n"
        "rewrite ^a into b ;\n"
        "match * send to a ;\n", "v.conf", err, sizeof err);
    assert_non_null(cfg);
    router_t *r = router_new(cfg, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "v.conf:2:"));
    assert_non_null(strstr(err, "rewrite"));
    config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dests),
        cmocka_unit_test(test_stop_and_fallthrough),
        cmocka_unit_test(test_nomatch_and_cap),
        cmocka_unit_test(test_unsupported_named),
    };
    return cmocka_run_group_tests_name("router", tests, s_setup, s_teardown);
}
