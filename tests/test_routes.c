/*
 * test_routes.c -- unit tests of the route changes made at run time
 * (src/routes.c): each command and its refusals, the changes applied over
 * a configuration (rules added and removed, members drained and
 * redirected, changes that no longer fit skipped and said), the file's
 * format and its round trip through a save and a load, rule texts that
 * need quoting, and the hash the members of a pair compare.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "routes.h"

#define NAME "test.routes"

static const char *s_conf =
    "cluster store forward 127.0.0.1:2100 ;\n"
    "cluster ring carbon_ch replication 2 10.0.0.1:2003 10.0.0.2:2003 "
    "10.0.0.3:2003 ;\n"
    "cluster one any_of 10.0.1.1:2003 ;\n"
    "match ^a\\. send to store stop ;\n"
    "rewrite ^old\\.(.*) into new.\\1 ;\n"
    "match * send to ring ;\n";

static config_t *s_base(void)
{
    char err[512];
    config_t *c = config_parse_string(s_conf, "test.conf", err, sizeof err);
    if (c == NULL)
        fail_msg("%s", err);
    return c;
}

/* Run `route words` on *r against base: the new list replaces *r on
 * success.  Returns the command's rc; msg gets its answer. */
static int s_cmd(routes_t **r, const config_t *base, const char *words,
                 char *msg, size_t len)
{
    routes_t *out = NULL;
    int rc = routes_command(*r, base, NAME, words, &out, msg, len);
    if (rc == 0) {
        assert_non_null(out);
        routes_destroy(r);
        *r = out;
    } else {
        assert_null(out);
    }
    return rc;
}

/* base with r applied; the skips counted in *skips. */
static void s_skip_fn(void *arg, const route_change_t *c, const char *why)
{
    (void)c;
    assert_non_null(why);
    (*(int *)arg)++;
}

static config_t *s_apply(const routes_t *r, const config_t *base, int *skips)
{
    char err[512];
    config_t *c = config_dup(base);
    assert_non_null(c);
    int n = 0;
    if (routes_apply(r, c, NAME, s_skip_fn, &n, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (skips)
        *skips = n;
    return c;
}

static void s_rule_is(const config_t *c, size_t i, const char *text)
{
    char buf[1024];
    assert_true(i < c->nrules);
    routes_rule_text(&c->rules[i], buf, sizeof buf);
    assert_string_equal(buf, text);
}

static void test_rule_text(void **state)
{
    (void)state;
    config_t *b = s_base();
    s_rule_is(b, 0, "match ^a\\. send to store stop ;");
    s_rule_is(b, 1, "rewrite ^old\\.(.*) into new.\\1 ;");
    s_rule_is(b, 2, "match * send to ring ;");
    config_destroy(&b);
    /* every clause, and words that need quotes, read back the same */
    const char *text =
        "cluster c forward 1.2.3.4:5 ;\n"
        "buffer redis unix:/x prefix p ;\n"
        "match ^x\\. \"a b\" 'say \"hi\"' validate ^[0-9]+\\ [0-9]+$ else "
        "drop route using \\1 critical send to c blackhole stop ;\n";
    char err[512], buf[1024], again[1200];
    config_t *c = config_parse_string(text, "q", err, sizeof err);
    if (c == NULL)
        fail_msg("%s", err);
    routes_rule_text(&c->rules[0], buf, sizeof buf);
    snprintf(again, sizeof again,
             "cluster c forward 1.2.3.4:5 ;\n"
             "buffer redis unix:/x prefix p ;\n%s\n",
             buf);
    config_t *d = config_parse_string(again, "q2", err, sizeof err);
    if (d == NULL)
        fail_msg("%s: %s", buf, err);
    const config_rule_t *x = &c->rules[0], *y = &d->rules[0];
    assert_int_equal(x->nexprs, y->nexprs);
    for (size_t i = 0; i < x->nexprs; i++)
        assert_string_equal(x->exprs[i], y->exprs[i]);
    assert_string_equal(y->exprs[1], "a b");
    assert_string_equal(y->exprs[2], "say \"hi\"");
    assert_string_equal(x->validate, y->validate);
    assert_int_equal(y->validate_action, VALIDATE_DROP);
    assert_string_equal(y->route_using, "\\1");
    assert_true(y->critical && y->stop);
    assert_int_equal(y->ndests, 2);
    /* the length it needs, as snprintf */
    size_t need = routes_rule_text(x, NULL, 0);
    assert_int_equal(need, strlen(buf));
    char small[8];
    assert_int_equal(routes_rule_text(x, small, sizeof small), need);
    assert_int_equal(strlen(small), sizeof small - 1);
    config_destroy(&c);
    config_destroy(&d);
}

static void test_add_remove(void **state)
{
    (void)state;
    config_t *b = s_base();
    routes_t *r = routes_new();
    char msg[1024];
    assert_int_equal(
        s_cmd(&r, b, "add 1 match ^b\\. send to store stop", msg, sizeof msg),
        0);
    assert_memory_equal(msg, "ok", 2);
    assert_int_equal(
        s_cmd(&r, b, "add last match ^z send to one ;", msg, sizeof msg), 0);
    assert_int_equal(
        s_cmd(&r, b, "add 99 match ^y send to one ;", msg, sizeof msg), 0);
    config_t *c = s_apply(r, b, NULL);
    assert_int_equal(c->nrules, 6);
    s_rule_is(c, 0, "match ^b\\. send to store stop ;");
    s_rule_is(c, 1, "match ^a\\. send to store stop ;");
    s_rule_is(c, 4, "match ^z send to one ;");
    s_rule_is(c, 5, "match ^y send to one ;");
    /* added rules say where they came from: the routes file and line */
    assert_string_equal(c->rules[0].pos.file, NAME);
    assert_int_equal(c->rules[0].pos.line, 3);
    assert_string_equal(c->rules[1].pos.file, "test.conf");
    /* removing an added rule drops its change; a file rule gets one */
    assert_int_equal(s_cmd(&r, b, "remove 1", msg, sizeof msg), 0);
    assert_int_equal(r->n, 2);
    assert_int_equal(s_cmd(&r, b, "remove 2", msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "rewrite ^old"));
    assert_int_equal(r->n, 3);
    assert_int_equal(r->v[2].kind, ROUTE_REMOVE);
    config_destroy(&c);
    c = s_apply(r, b, NULL);
    assert_int_equal(c->nrules, 4);
    s_rule_is(c, 0, "match ^a\\. send to store stop ;");
    s_rule_is(c, 1, "match * send to ring ;");
    config_destroy(&c);
    /* refusals leave the list as it was */
    const char *bad[] = {
        "add 0 match x send to store ;",
        "add -1 match x send to store ;",
        "add first",
        "add",
        "add 1 match x send to nowhere ;",
        "add 1 match x( send to store ;",
        "add 1 cluster x forward 1.2.3.4:5 ;",
        "add 1 match x send to store ; match y send to store ;",
        "add 1 include /etc/passwd ;",
        "remove 0",
        "remove 5",
        "remove x",
        "remove",
        "frobnicate",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_cmd(&r, b, bad[i], msg, sizeof msg), -1);
        assert_memory_equal(msg, "error", 5);
        assert_int_equal(r->n, 3);
    }
    assert_non_null(strstr(msg, "expected"));
    assert_int_equal(s_cmd(&r, b, "clear", msg, sizeof msg), 0);
    assert_int_equal(r->n, 0);
    routes_destroy(&r);
    config_destroy(&b);
}

static void test_members(void **state)
{
    (void)state;
    config_t *b = s_base();
    routes_t *r = routes_new();
    char msg[1024];
    assert_int_equal(s_cmd(&r, b, "drain ring 10.0.0.2:2003", msg, sizeof msg),
                     0);
    config_t *c = s_apply(r, b, NULL);
    const config_cluster_t *ring = config_find_cluster(c, "ring");
    assert_int_equal(ring->nmembers, 2);
    assert_string_equal(ring->members[1].host, "10.0.0.3");
    assert_int_equal(ring->replication, 2);
    config_destroy(&c);
    /* a second drain: replication follows the members left */
    assert_int_equal(s_cmd(&r, b, "drain ring 10.0.0.1:2003", msg, sizeof msg),
                     0);
    c = s_apply(r, b, NULL);
    ring = config_find_cluster(c, "ring");
    assert_int_equal(ring->nmembers, 1);
    assert_int_equal(ring->replication, 1);
    config_destroy(&c);
    /* not the last member; not one it does not have */
    assert_int_equal(s_cmd(&r, b, "drain ring 10.0.0.3:2003", msg, sizeof msg),
                     -1);
    assert_non_null(strstr(msg, "last member"));
    assert_int_equal(s_cmd(&r, b, "drain one 10.0.1.1:2003", msg, sizeof msg),
                     -1);
    assert_int_equal(s_cmd(&r, b, "drain ring 10.9.9.9:2003", msg, sizeof msg),
                     -1);
    assert_int_equal(s_cmd(&r, b, "drain nope 10.0.0.1:2003", msg, sizeof msg),
                     -1);
    assert_int_equal(s_cmd(&r, b, "drain ring", msg, sizeof msg), -1);
    /* back */
    assert_int_equal(s_cmd(&r, b, "back ring 10.0.0.1:2003", msg, sizeof msg),
                     0);
    assert_int_equal(r->n, 1);
    assert_int_equal(s_cmd(&r, b, "back ring 10.0.0.1:2003", msg, sizeof msg),
                     -1);
    /* redirect replaces drains of the cluster, and is checked as members */
    assert_int_equal(s_cmd(&r, b, "redirect ring 10.1.0.1:2003 10.1.0.2:2004",
                           msg, sizeof msg),
                     0);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->v[0].kind, ROUTE_REDIRECT);
    c = s_apply(r, b, NULL);
    ring = config_find_cluster(c, "ring");
    assert_int_equal(ring->nmembers, 2);
    assert_string_equal(ring->members[0].host, "10.1.0.1");
    assert_int_equal(ring->members[1].port, 2004);
    assert_int_equal(ring->type, CLUSTER_CARBON_CH);
    config_destroy(&c);
    assert_int_equal(
        s_cmd(&r, b, "redirect ring 10.1.0.1:2003", msg, sizeof msg),
        -1); /* replication 2 needs two */
    assert_non_null(strstr(msg, "replication"));
    assert_int_equal(s_cmd(&r, b, "redirect ring", msg, sizeof msg), -1);
    assert_int_equal(
        s_cmd(&r, b, "redirect ring 10.1.0.1:99999 x:1", msg, sizeof msg), -1);
    /* restore */
    assert_int_equal(s_cmd(&r, b, "restore ring", msg, sizeof msg), 0);
    assert_int_equal(r->n, 0);
    assert_int_equal(s_cmd(&r, b, "restore ring", msg, sizeof msg), -1);
    routes_destroy(&r);
    config_destroy(&b);
}

/* Changes that no longer fit the file are skipped and said; an added rule
 * whose cluster is gone is an error. */
static void test_stale(void **state)
{
    (void)state;
    const char *text = "remove match ^gone send to store ;\n"
                       "drain ring 10.9.9.9:2003\n"
                       "drain nope 10.0.0.1:2003\n"
                       "redirect nope 1.2.3.4:5\n"
                       "add 1 match ^b send to store ;\n";
    char err[512];
    routes_t *r = routes_parse(text, strlen(text), NAME, err, sizeof err);
    if (r == NULL)
        fail_msg("%s", err);
    assert_int_equal(r->n, 5);
    assert_int_equal(r->v[4].line, 5);
    config_t *b = s_base();
    int skips = 0;
    config_t *c = s_apply(r, b, &skips);
    assert_int_equal(skips, 4);
    assert_int_equal(c->nrules, 4);
    config_destroy(&c);
    routes_destroy(&r);
    const char *gone = "add 1 match ^b send to gone ;\n";
    r = routes_parse(gone, strlen(gone), NAME, err, sizeof err);
    c = config_dup(b);
    assert_int_equal(routes_apply(r, c, NAME, NULL, NULL, err, sizeof err), -1);
    assert_string_equal(err, NAME ":1: add: unknown cluster 'gone'");
    config_destroy(&c);
    routes_destroy(&r);
    config_destroy(&b);
}

static void test_file(void **state)
{
    (void)state;
    config_t *b = s_base();
    routes_t *r = routes_new();
    char msg[1024], err[512];
    assert_int_equal(
        s_cmd(&r, b, "add 2 match ^b send to store ;", msg, sizeof msg), 0);
    assert_int_equal(s_cmd(&r, b, "drain ring 10.0.0.1:2003", msg, sizeof msg),
                     0);
    assert_int_equal(s_cmd(&r, b, "remove 3", msg, sizeof msg), 0);
    char path[] = "/tmp/test_routes_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(routes_save(r, path, err, sizeof err), 0);
    routes_t *back = routes_load(path, err, sizeof err);
    assert_non_null(back);
    assert_int_equal(back->n, r->n);
    for (size_t i = 0; i < r->n; i++) {
        assert_int_equal(back->v[i].kind, r->v[i].kind);
        assert_int_equal(back->v[i].pos, r->v[i].pos);
        assert_int_equal(back->v[i].line, r->v[i].line);
        assert_string_equal(back->v[i].text, r->v[i].text);
    }
    assert_true(routes_hash(back) == routes_hash(r));
    routes_t *other = routes_dup(r);
    assert_int_equal(s_cmd(&other, b, "clear", msg, sizeof msg), 0);
    assert_true(routes_hash(other) != routes_hash(r));
    /* the file reads as the commands' words */
    char *text = routes_format(r);
    assert_non_null(strstr(text, "\nadd 2 match ^b send to store ;\n"));
    assert_non_null(strstr(text, "\ndrain ring 10.0.0.1:2003\n"));
    assert_non_null(strstr(text, "\nremove rewrite ^old"));
    free(text);
    /* no file: no changes; a bad one: its line */
    unlink(path);
    routes_t *none = routes_load(path, err, sizeof err);
    assert_non_null(none);
    assert_int_equal(none->n, 0);
    const char *bad[] = {"bogus 1\n", "add x match a send to b ;\n", "add 1\n",
                         "drain ring\n", "redirect\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char t[128];
        snprintf(t, sizeof t, "# comment\n\n%s", bad[i]);
        assert_null(routes_parse(t, strlen(t), NAME, err, sizeof err));
        assert_memory_equal(err, NAME ":3:", strlen(NAME ":3:"));
    }
    assert_null(routes_parse("add 1 a\0b\n", 10, NAME, err, sizeof err));
    routes_destroy(&none);
    routes_destroy(&other);
    routes_destroy(&back);
    routes_destroy(&r);
    config_destroy(&b);
}

static void test_list(void **state)
{
    (void)state;
    config_t *b = s_base();
    routes_t *r = routes_new();
    char msg[1024];
    assert_int_equal(
        s_cmd(&r, b, "add 1 match ^b send to store ;", msg, sizeof msg), 0);
    assert_int_equal(s_cmd(&r, b, "drain ring 10.0.0.1:2003", msg, sizeof msg),
                     0);
    config_t *c = s_apply(r, b, NULL);
    char buf[4096] = "";
    size_t n = routes_list(r, c, NAME, buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    assert_non_null(strstr(buf, "rules in force: 4\n"));
    assert_non_null(
        strstr(buf, "1  match ^b send to store ;  (route add, " NAME ":3)"));
    assert_non_null(strstr(buf, "2  match ^a\\. send to store stop ;  "
                                "(test.conf:4)"));
    assert_non_null(strstr(buf, "route changes: 2 in " NAME));
    assert_non_null(strstr(buf, "cluster ring now: 10.0.0.2:2003 "
                                "10.0.0.3:2003\n"));
    config_destroy(&c);
    routes_destroy(&r);
    config_destroy(&b);
}

/* A copy is as deep as the original: freeing the original leaves it whole. */
static void test_dup(void **state)
{
    (void)state;
    config_t *b = s_base();
    config_t *c = config_dup(b);
    config_destroy(&b);
    assert_int_equal(c->nclusters, 3);
    assert_string_equal(c->clusters[1].members[2].host, "10.0.0.3");
    assert_string_equal(c->rules[0].pos.file, "test.conf");
    assert_ptr_equal(c->rules[0].pos.file, c->files[0]);
    s_rule_is(c, 1, "rewrite ^old\\.(.*) into new.\\1 ;");
    config_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_text), cmocka_unit_test(test_add_remove),
        cmocka_unit_test(test_members),   cmocka_unit_test(test_stale),
        cmocka_unit_test(test_file),      cmocka_unit_test(test_list),
        cmocka_unit_test(test_dup),
    };
    return cmocka_run_group_tests_name("routes", tests, NULL, NULL);
}
