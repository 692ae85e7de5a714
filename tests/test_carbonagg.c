/*
 * test_carbonagg.c -- unit tests of carbon-aggregator's rules files read
 * into aggregate rules (src/carbonagg.c) and of the `aggregation rules`
 * statement that loads them (src/config.c): every method, every
 * placeholder form and the expression and template built for it, the
 * line syntax carbon-aggregator accepts (white space, comments, line ends,
 * the frequency's parentheses), what is refused with FILE:LINE, the
 * statement's clauses, where a relative file is found, its rules' place
 * in the rule list and the stop rule after them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tre/tre.h>

#include "carbonagg.h"
#include "config.h"
#include "ere.h"

#define ERRLEN 1024
#define TPATH  512

/* ---- helpers ------------------------------------------------------------ */

/* Parse text (default options unless o); assert it works. */
static config_rule_t *s_ok(const char *text, const carbonagg_opts_t *o,
                           size_t *n)
{
    config_rule_t *r = NULL;
    char err[ERRLEN];
    int rc = carbonagg_parse(text, strlen(text), "r.conf", o, &r, n, err,
                             sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    return r;
}

/* Parse text; assert it fails with exactly want. */
static void s_bad(const char *text, const carbonagg_opts_t *o, const char *want)
{
    config_rule_t *r = (config_rule_t *)1;
    size_t n = 7;
    char err[ERRLEN];
    assert_int_equal(carbonagg_parse(text, strlen(text), "r.conf", o, &r, &n,
                                     err, sizeof err),
                     -1);
    assert_null(r);
    assert_int_equal(n, 0);
    assert_string_equal(err, want);
}

/* One rule: its expression, its template, its compute. */
static void s_one(const char *line, const char *re, const char *tpl,
                  config_compute_kind_t kind, int interval)
{
    size_t n = 0;
    config_rule_t *r = s_ok(line, NULL, &n);
    assert_int_equal(n, 1);
    assert_int_equal(r->kind, RULE_AGGREGATE);
    assert_int_equal(r->nexprs, 1);
    assert_string_equal(r->exprs[0], re);
    assert_non_null(r->aggr);
    assert_int_equal(r->aggr->ncomputes, 1);
    assert_int_equal(r->aggr->computes[0].kind, kind);
    assert_string_equal(r->aggr->computes[0].write_to, tpl);
    assert_int_equal(r->aggr->interval, interval);
    assert_int_equal(r->aggr->expire, 6 * interval);
    assert_int_equal(r->aggr->ts_at, TS_AT_START);
    assert_int_equal(r->ndests, 0);
    assert_false(r->stop);
    carbonagg_free(r, n);
}

/* Does the expression match name, and with which groups? groups: "a|b"
 * for groups 1 and 2, NULL when it must not match. */
static void s_match(const char *re, const char *name, const char *groups)
{
    regex_t rx;
    regmatch_t m[8];
    char err[256], got[512] = "";
    assert_int_equal(ere_compile(&rx, re, 0, err, sizeof err), 0);
    int rc = tre_regexec(&rx, name, 8, m, 0);
    if (!groups) {
        assert_int_not_equal(rc, 0);
    } else {
        assert_int_equal(rc, 0);
        for (size_t i = 1; i < rx.re_nsub + 1 && i < 8; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%.*s",
                     i > 1 ? "|" : "", (int)(m[i].rm_eo - m[i].rm_so),
                     name + m[i].rm_so);
        assert_string_equal(got, groups);
    }
    tre_regfree(&rx);
}

/* ---- methods ------------------------------------------------------------ */

static void test_methods(void **state)
{
    (void)state;
    s_one("o (60) = sum i", "^i$", "o", COMPUTE_SUM, 60);
    s_one("o (60) = avg i", "^i$", "o", COMPUTE_AVERAGE, 60);
    s_one("o (60) = min i", "^i$", "o", COMPUTE_MIN, 60);
    s_one("o (60) = max i", "^i$", "o", COMPUTE_MAX, 60);
    s_one("o (60) = count i", "^i$", "o", COMPUTE_COUNT, 60);
}

static void test_percentiles(void **state)
{
    (void)state;
    static const struct {
        const char *m;
        int pct;
    } ps[] = {{"p50", 50}, {"p75", 75}, {"p80", 80},
              {"p90", 90}, {"p95", 95}, {"p99", 99}};
    carbonagg_opts_t nr = {5, true};
    char line[64], want[ERRLEN];

    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        size_t n = 0;
        snprintf(line, sizeof line, "o (10) = %s i", ps[k].m);
        config_rule_t *r = s_ok(line, &nr, &n);
        assert_int_equal(n, 1);
        assert_int_equal(r->aggr->computes[0].kind, COMPUTE_PERCENTILE);
        assert_int_equal(r->aggr->computes[0].percentile, ps[k].pct);
        carbonagg_free(r, n);
        /* without the clause: carbon-aggregator's own, interpolated */
        r = s_ok(line, NULL, &n);
        assert_int_equal(r->aggr->computes[0].kind, COMPUTE_QUANTILE);
        assert_int_equal(r->aggr->computes[0].percentile, 10 * ps[k].pct);
        char name[16];
        config_compute_name(&r->aggr->computes[0], name, sizeof name);
        assert_string_equal(name, ps[k].m);
        carbonagg_free(r, n);
    }
    size_t n9 = 0;
    config_rule_t *r9 = s_ok("o (10) = p999 i", NULL, &n9);
    assert_int_equal(r9->aggr->computes[0].kind, COMPUTE_QUANTILE);
    assert_int_equal(r9->aggr->computes[0].percentile, 999);
    carbonagg_free(r9, n9);
    (void)want;
    s_bad("o (10) = p999 i", &nr,
          "r.conf:1: 'p999': orchester has no nearest-rank percentile 99.9 "
          "(its percentiles are whole numbers 1..99)");
    s_bad("o (10) = p42 i", &nr,
          "r.conf:1: 'p42': unknown method (sum, avg, min, max, count, p50, "
          "p75, p80, p90, p95, p99, p999)");
    s_bad("o (10) = Sum i", NULL,
          "r.conf:1: 'Sum': unknown method (sum, avg, min, max, count, p50, "
          "p75, p80, p90, p95, p99, p999)");
    s_bad("o (10) = average i", NULL,
          "r.conf:1: 'average': unknown method (sum, avg, min, max, count, "
          "p50, p75, p80, p90, p95, p99, p999)");
}

/* ---- placeholders and globs --------------------------------------------- */

static void test_placeholders(void **state)
{
    (void)state;
    s_one("<env>.apps.<app>.all (60) = sum <env>.apps.<app>.*.requests",
          "^([^.]+)\\.apps\\.([^.]+)\\.[^.]+\\.requests$",
          "\\g{1}.apps.\\g{2}.all", COMPUTE_SUM, 60);
    /* the template may use them in any order, twice, or not at all */
    s_one("<b>.<a>.<b> (5) = max <a>.<b>", "^([^.]+)\\.([^.]+)$",
          "\\g{2}.\\g{1}.\\g{2}", COMPUTE_MAX, 5);
    s_one("total (5) = sum <a>.<b>", "^([^.]+)\\.([^.]+)$", "total",
          COMPUTE_SUM, 5);
    /* <<name>>: across dots */
    s_one("servers.all.<m> (10) = sum servers.*.<<m>>",
          "^servers\\.[^.]+\\.(.+)$", "servers.all.\\g{1}", COMPUTE_SUM, 10);
    /* a prefix and a suffix in the field */
    s_one("<q>.depth (10) = sum q_<q>_depth.*", "^q_([^.]+)_depth\\.[^.]+$",
          "\\g{1}.depth", COMPUTE_SUM, 10);
    s_one("x.<r> (10) = sum a.pre<<r>>post", "^a\\.pre(.+)post$", "x.\\g{1}",
          COMPUTE_SUM, 10);
    /* '*' alone is one field or more characters; inside a field any */
    s_one("o (10) = sum *.cache-*.hits*", "^[^.]+\\.cache-[^.]*\\.hits[^.]*$",
          "o", COMPUTE_SUM, 10);
    /* '<' and '>' that build no placeholder are literal, as in carbon */
    s_one("o (10) = sum a.b>c<d.<x>y<z>", "^a\\.b>c<d\\.([^.]+)y<z>$", "o",
          COMPUTE_SUM, 10);
    /* a digit after a reference stays a digit */
    s_one("<x>1 (10) = sum <x>", "^([^.]+)$", "\\g{1}1", COMPUTE_SUM, 10);
    /* a backslash in the template is a backslash */
    s_one("a\\b.<x> (10) = sum <x>", "^([^.]+)$", "a\\\\b.\\g{1}", COMPUTE_SUM,
          10);
    /* empty fields */
    s_one("o (10) = sum a..b", "^a\\.\\.b$", "o", COMPUTE_SUM, 10);
}

/* What the expressions match (carbon's regexes, rules.py build_regex, on
 * the same names: worked out by hand). */
static void test_matching(void **state)
{
    (void)state;
    const char *re = "^([^.]+)\\.apps\\.([^.]+)\\.[^.]+\\.requests$";
    s_match(re, "prod.apps.web.h1.requests", "prod|web");
    s_match(re, "prod.apps.web.requests", NULL);
    s_match(re, "prod.apps.web.h1.h2.requests", NULL);
    s_match(re, "xprod.apps.web.h1.requests.y", NULL);
    /* <<m>>: all the rest */
    s_match("^servers\\.[^.]+\\.(.+)$", "servers.h1.cpu.user", "cpu.user");
    s_match("^servers\\.[^.]+\\.(.+)$", "servers.h1", NULL);
    /* one <<name>> between single fields: the fields around fix it */
    s_match("^a\\.([^.]+)\\.(.+)\\.([^.]+)\\.z$", "a.b.c.d.e.z", "b|c.d|e");
    /* a suffix the capture could also hold: the field's end decides */
    s_match("^([^.]+)_total$", "a_total_total", "a_total");
    s_match("^q_([^.]+)_depth\\.[^.]+$", "q_mail_depth.w1", "mail");
    s_match("^q_([^.]+)_depth\\.[^.]+$", "q__depth.w1", NULL);
    /* '*' in a field may be empty, a field '*' may not */
    s_match("^a\\.b[^.]*\\.[^.]+$", "a.b.c", "");
    s_match("^a\\.b[^.]*\\.[^.]+$", "a.b.", NULL);
}

/* ---- the line syntax ---------------------------------------------------- */

static void test_syntax(void **state)
{
    (void)state;
    size_t n = 0;
    const char *text = "# comment\n"
                       "\n"
                       "   # indented comment\n"
                       "\ta.<x>   (10)\t=  sum   b.<x>  \r\n"
                       "c ((20)) = max d\r"
                       "e 30 = min f\n"
                       "g (+40 = count h\n"
                       "k (5) = sum l=m";
    config_rule_t *r = s_ok(text, NULL, &n);
    assert_int_equal(n, 5);
    assert_int_equal(r[0].pos.line, 4);
    assert_string_equal(r[0].pos.file, "r.conf");
    assert_string_equal(r[0].exprs[0], "^b\\.([^.]+)$");
    assert_int_equal(r[0].aggr->interval, 10);
    assert_int_equal(r[1].pos.line, 5); /* \r alone ends a line */
    assert_int_equal(r[1].aggr->interval, 20);
    assert_int_equal(r[2].pos.line, 6);
    assert_int_equal(r[2].aggr->interval, 30);
    assert_int_equal(r[3].pos.line, 7);
    assert_int_equal(r[3].aggr->interval, 40);
    assert_int_equal(r[4].pos.line, 8);
    carbonagg_free(r, n);
    /* "# not a comment": three words after '=' */
    s_bad("i (1_0) = avg j # not a comment\n", NULL,
          "r.conf:1: expected a method and an input pattern after '=', "
          "found 6 words");
    /* '=' in the pattern is part of it (the line splits at the first) */
    r = s_ok("k (5) = sum l=m\n", NULL, &n);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].exprs[0], "^l=m$");
    carbonagg_free(r, n);
    r = s_ok("i (1_0) = avg j\n", NULL, &n);
    assert_int_equal(r[0].aggr->interval, 10);
    carbonagg_free(r, n);
    /* empty files */
    r = s_ok("", NULL, &n);
    assert_int_equal(n, 0);
    assert_null(r);
    r = s_ok("# only\n\n", NULL, &n);
    assert_int_equal(n, 0);
    /* max intervals sets the expiry */
    carbonagg_opts_t o = {2, false};
    r = s_ok("a (7) = sum b", &o, &n);
    assert_int_equal(r[0].aggr->expire, 21);
    carbonagg_free(r, n);
}

static void test_bad_lines(void **state)
{
    (void)state;
    s_bad("\n\na (10) sum b\n", NULL,
          "r.conf:3: expected 'OUTPUT (FREQUENCY) = METHOD INPUT_PATTERN': "
          "no '='");
    s_bad("a(10) = sum b", NULL,
          "r.conf:1: expected an output template and a (frequency) before "
          "'=', found 1 word");
    s_bad("a ( 10 ) = sum b", NULL,
          "r.conf:1: expected an output template and a (frequency) before "
          "'=', found 4 words");
    s_bad("a (10) = sum", NULL,
          "r.conf:1: expected a method and an input pattern after '=', "
          "found 1 word");
    s_bad("a (10) = sum b c", NULL,
          "r.conf:1: expected a method and an input pattern after '=', "
          "found 3 words");
    s_bad("a (1m) = sum b", NULL,
          "r.conf:1: '(1m)': the frequency must be a whole number of "
          "seconds, as '(60)'");
    s_bad("a () = sum b", NULL,
          "r.conf:1: '()': the frequency must be a whole number of "
          "seconds, as '(60)'");
    s_bad("a (1__0) = sum b", NULL,
          "r.conf:1: '(1__0)': the frequency must be a whole number of "
          "seconds, as '(60)'");
    s_bad("a (0) = sum b", NULL,
          "r.conf:1: '(0)': the frequency must be at least 1 second");
    s_bad("a (-5) = sum b", NULL,
          "r.conf:1: '(-5)': the frequency must be at least 1 second");
    s_bad("a (99999999999) = sum b", NULL,
          "r.conf:1: '(99999999999)': the frequency is too large");
    /* one bad line fails the file, as in carbon-aggregator */
    s_bad("a (10) = sum b\nc (10) = sum d\ne (10) = nope f\n", NULL,
          "r.conf:3: 'nope': unknown method (sum, avg, min, max, count, "
          "p50, p75, p80, p90, p95, p99, p999)");
    {
        static const char nul[] = "a (10) = sum b\0c\n";
        config_rule_t *r = NULL;
        size_t n = 0;
        char err[ERRLEN];
        assert_int_equal(carbonagg_parse(nul, sizeof nul - 1, "r.conf", NULL,
                                         &r, &n, err, sizeof err),
                         -1);
        assert_string_equal(err, "r.conf:1: a NUL byte in the line");
    }
}

static void test_bad_patterns(void **state)
{
    (void)state;
    s_bad("o (10) = sum a.<<x>>.<<y>>", NULL,
          "r.conf:1: 'a.<<x>>.<<y>>': more than one <<name>> placeholder: "
          "carbon-aggregator splits the name between them by lazy "
          "matching, which a POSIX expression cannot reproduce");
    s_bad("o (10) = sum a.b*<x>", NULL,
          "r.conf:1: 'a.b*<x>': a '*' in the field 'b*<x>', which holds a "
          "placeholder, is a regular expression operator in "
          "carbon-aggregator, not a glob");
    s_bad("o (10) = sum a.<x>*", NULL,
          "r.conf:1: 'a.<x>*': a '*' in the field '<x>*', which holds a "
          "placeholder, is a regular expression operator in "
          "carbon-aggregator, not a glob");
    static const char ops[] = "\\^$+?()[]{}|";
    for (const char *c = ops; *c; c++) {
        char line[64], want[ERRLEN];
        snprintf(line, sizeof line, "o (10) = sum a.b%cc.<x>", *c);
        snprintf(want, sizeof want,
                 "r.conf:1: 'a.b%cc.<x>': '%c' is a regular expression "
                 "operator in carbon-aggregator's patterns (only '*' globs "
                 "and <name> placeholders are read here)",
                 *c, *c);
        s_bad(line, NULL, want);
    }
    s_bad("o (10) = sum a.<>", NULL,
          "r.conf:1: 'a.<>': a placeholder without a name");
    s_bad("o (10) = sum a.>><<x", NULL,
          "r.conf:1: 'a.>><<x': a placeholder without a name");
    s_bad("o (10) = sum a.<x-y>", NULL,
          "r.conf:1: 'a.<x-y>': 'x-y' is not a placeholder name (letters, "
          "digits and '_', not starting with a digit)");
    s_bad("o (10) = sum a.<1x>", NULL,
          "r.conf:1: 'a.<1x>': '1x' is not a placeholder name (letters, "
          "digits and '_', not starting with a digit)");
    s_bad("o (10) = sum a.<<<x>>", NULL,
          "r.conf:1: 'a.<<<x>>': '<x' is not a placeholder name (letters, "
          "digits and '_', not starting with a digit)");
    s_bad("o (10) = sum <x>.<x>", NULL,
          "r.conf:1: '<x>.<x>': the placeholder <x> is given twice");
    char many[512] = "o (10) = sum ";
    for (int i = 0; i < 32; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s<g%d>",
                 i ? "." : "", i);
    char want[ERRLEN];
    snprintf(want, sizeof want, "r.conf:1: '%s': more than 31 placeholders",
             many + strlen("o (10) = sum "));
    s_bad(many, NULL, want);
}

static void test_bad_templates(void **state)
{
    (void)state;
    s_bad("a.<y> (10) = sum b.<x>", NULL,
          "r.conf:1: 'a.<y>': <y> is not a placeholder of 'b.<x>'");
    s_bad("a.<<x>> (10) = sum b.<<x>>", NULL,
          "r.conf:1: 'a.<<x>>': <<x> is not a placeholder of 'b.<<x>>'");
    s_bad("a.<x (10) = sum b.<x>", NULL,
          "r.conf:1: 'a.<x': '<' without a '>' after it");
    s_bad("a.x> (10) = sum b.<x>", NULL,
          "r.conf:1: 'a.x>': '>' without a '<' before it");
    s_bad("a.%s.<x> (10) = sum b.<x>", NULL,
          "r.conf:1: 'a.%s.<x>': '%' is a Python format directive in "
          "carbon-aggregator's output templates");
}

/* ---- the statement ------------------------------------------------------ */

static char s_dir[64];

static void s_write(const char *name, const char *text)
{
    char path[TPATH];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/test_carbonagg.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[TPATH + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_statement(void **state)
{
    (void)state;
    char main[TPATH], rules[TPATH], err[ERRLEN];
    s_write("rules.conf", "# the rules\n"
                          "a.<x> (10) = sum b.<x>\n"
                          "c (20) = p90 d.*\n");
    s_write("main.conf", "cluster s forward 127.0.0.1:2003 ;\n"
                         "match ^z send to s ;\n"
                         "aggregation rules rules.conf\n"
                         "    max intervals 2 percentiles by nearest rank\n"
                         "    send to s stop ;\n"
                         "match * send to s ;\n");
    snprintf(main, sizeof main, "%s/main.conf", s_dir);
    snprintf(rules, sizeof rules, "%s/rules.conf", s_dir);
    /* relative to the including file (the cwd has no rules.conf) */
    config_t *cfg = config_load(main, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_int_equal(cfg->nrules, 5);
    assert_int_equal(cfg->rules[0].kind, RULE_MATCH);
    config_rule_t *r = &cfg->rules[1];
    assert_int_equal(r->kind, RULE_AGGREGATE);
    assert_string_equal(r->pos.file, rules);
    assert_int_equal(r->pos.line, 2);
    assert_string_equal(r->exprs[0], "^b\\.([^.]+)$");
    assert_int_equal(r->aggr->interval, 10);
    assert_int_equal(r->aggr->expire, 30);
    assert_int_equal(r->ndests, 1);
    assert_string_equal(r->dests[0], "s");
    assert_false(r->stop);
    r = &cfg->rules[2];
    assert_int_equal(r->pos.line, 3);
    assert_int_equal(r->aggr->computes[0].kind, COMPUTE_PERCENTILE);
    assert_int_equal(r->aggr->expire, 60);
    /* stop: a metric either matched goes no further */
    r = &cfg->rules[3];
    assert_int_equal(r->kind, RULE_MATCH);
    assert_string_equal(r->pos.file, main);
    assert_int_equal(r->pos.line, 3);
    assert_int_equal(r->nexprs, 2);
    assert_string_equal(r->exprs[0], "^b\\.([^.]+)$");
    assert_string_equal(r->exprs[1], "^d\\.[^.]+$");
    assert_int_equal(r->ndests, 1);
    assert_string_equal(r->dests[0], "blackhole");
    assert_true(r->stop);
    assert_int_equal(cfg->rules[4].kind, RULE_MATCH);
    assert_true(cfg->rules[4].match_all);
    /* a copy keeps them */
    config_t *dup = config_dup(cfg);
    assert_non_null(dup);
    assert_int_equal(dup->nrules, 5);
    assert_string_equal(dup->rules[1].pos.file, rules);
    config_destroy(&dup);
    config_destroy(&cfg);

    /* without stop: no rule after them; the defaults */
    s_write("main2.conf", "cluster s forward 127.0.0.1:2003 ;\n"
                          "aggregation rules rules2.conf send to s ;\n");
    s_write("rules2.conf", "a.<x> (10) = sum b.<x>\n");
    snprintf(main, sizeof main, "%s/main2.conf", s_dir);
    cfg = config_load(main, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_int_equal(cfg->nrules, 1);
    assert_int_equal(cfg->rules[0].aggr->expire, 60);
    assert_false(cfg->rules[0].stop);
    config_destroy(&cfg);
}

static void test_statement_errors(void **state)
{
    (void)state;
    char main[TPATH], err[ERRLEN], want[ERRLEN];
    s_write("r.conf", "a.<x> (10) = sum b.<x>\n\nc (20) = p42 d.*\n");
    s_write("m.conf", "cluster s forward 127.0.0.1:2003 ;\n"
                      "aggregation rules r.conf send to s ;\n");
    snprintf(main, sizeof main, "%s/m.conf", s_dir);
    assert_null(config_load(main, err, sizeof err));
    snprintf(want, sizeof want,
             "%s/r.conf:3: 'p42': unknown method (sum, avg, min, max, count, "
             "p50, p75, p80, p90, p95, p99, p999)",
             s_dir);
    assert_string_equal(err, want);

    static const struct {
        const char *text, *want;
    } bad[] = {
        {"cluster s forward h ;\naggregation rules r.conf ;",
         "t.conf:2: aggregation: expected 'send' before ';'"},
        {"cluster s forward h ;\naggregation r.conf send to s ;",
         "t.conf:2: aggregation: expected 'rules', found 'r.conf'"},
        {"cluster s forward h ;\naggregation rules r.conf max intervals 0 "
         "send to s ;",
         "t.conf:2: aggregation: max intervals 0 is out of range "
         "(1..1000000)"},
        {"cluster s forward h ;\naggregation rules r.conf percentiles "
         "nearest send to s ;",
         "t.conf:2: aggregation: expected 'by', found 'nearest'"},
        {"cluster s forward h ;\naggregation rules /nonexistent/r.conf send "
         "to s ;",
         "t.conf:2: aggregation: cannot read '/nonexistent/r.conf': No such "
         "file or directory"},
        {"aggregation rules tests/data/carbonagg/aggregation-rules.conf "
         "percentiles by nearest rank send to nosuch ;",
         NULL},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        config_t *cfg =
            config_parse_string(bad[k].text, "t.conf", err, sizeof err);
        assert_null(cfg);
        if (bad[k].want)
            assert_string_equal(err, bad[k].want);
        else if (!strstr(err, "unknown cluster 'nosuch'"))
            fail_msg("%s", err);
    }
    /* no file may be read where includes may not */
    assert_null(config_parse_string_flags(
        "cluster s forward h ;\naggregation rules /etc/passwd send to s ;",
        "t.conf", CONFIG_NO_INCLUDE, err, sizeof err));
    assert_string_equal(err, "t.conf:2: aggregation: reading files is "
                             "disabled here");
}

/* The working directory is searched first, as for include. */
static void test_statement_cwd(void **state)
{
    (void)state;
    char err[ERRLEN], old[TPATH];
    assert_non_null(getcwd(old, sizeof old));
    s_write("cwd.conf", "x (3) = count y\n");
    assert_int_equal(chdir(s_dir), 0);
    config_t *cfg = config_parse_string(
        "cluster s forward h ;\naggregation rules cwd.conf send to s ;",
        "t.conf", err, sizeof err);
    assert_int_equal(chdir(old), 0);
    if (!cfg)
        fail_msg("%s", err);
    assert_int_equal(cfg->nrules, 1);
    assert_string_equal(cfg->rules[0].pos.file, "cwd.conf");
    assert_int_equal(cfg->rules[0].aggr->computes[0].kind, COMPUTE_COUNT);
    config_destroy(&cfg);
}

/* The rules file shipped for the integration test reads. */
static void test_data_file(void **state)
{
    (void)state;
    char err[ERRLEN];
    config_t *cfg = config_parse_string(
        "cluster s forward h ;\naggregation rules "
        "tests/data/carbonagg/aggregation-rules.conf percentiles by nearest "
        "rank send to s stop ;",
        "t.conf", err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_int_equal(cfg->nrules, 14);
    assert_int_equal(cfg->rules[13].kind, RULE_MATCH);
    assert_int_equal(cfg->rules[13].nexprs, 13);
    config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_placeholders),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_bad_templates),
        cmocka_unit_test(test_statement),
        cmocka_unit_test(test_statement_errors),
        cmocka_unit_test(test_statement_cwd),
        cmocka_unit_test(test_data_file),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
