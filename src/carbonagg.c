/*
 * carbonagg.c -- see carbonagg.h.
 *
 * A line is read as carbon-aggregator 1.1.7 reads it
 * (carbon/aggregator/rules.py, RuleManager.read_rules and
 * parse_definition): stripped of white space; empty and '#' lines
 * skipped; split once at the first '='; the left side must be exactly two
 * words (template, frequency), the right side exactly two (method,
 * pattern); the frequency is the word with every leading '(' and trailing
 * ')' taken off, read as a Python int.  One bad line makes the whole file
 * fail, as there (read_rules lets the exception out).
 *
 * The pattern is cut at '.' into fields, each read as build_regex reads
 * it: a field holding both "<<" and ">>" is pre(.+)post with the name
 * between the first "<<" and the first ">>"; else one with a '<' and a
 * later '>' is pre([^.]+)post; else "*" is [^.]+; else the field with each
 * '*' as [^.]*.  carbon's captures are lazy (+?), POSIX's are not; with at
 * most one "<<name>>" each capture is fixed by the fields around it (every
 * other part matches exactly one field), so lazy or not they take the same
 * text.  Two "<<name>>" would not be: refused.  So are regular expression
 * operators, which carbon passes to Python's re as they are.
 */
#include "carbonagg.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ere.h"

#define MAX_GROUPS 31 /* \g{1} .. \g{31}: the router's references */

/* State of one carbonagg_parse call. */
typedef struct {
    const char *file;
    int line;
    char *err;
    size_t errlen;
    const carbonagg_opts_t *opts;
} ctx_t;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
s_fail(ctx_t *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->err && c->errlen) {
        if (c->line > 0)
            snprintf(c->err, c->errlen, "%s:%d: %s", c->file, c->line, msg);
        else
            snprintf(c->err, c->errlen, "%s: %s", c->file, msg);
    }
    return -1;
}

static int s_oom(ctx_t *c)
{
    c->line = 0;
    return s_fail(c, "out of memory");
}

/* Python's str.split() and str.strip() white space, ASCII part. */
static int s_space(unsigned char ch)
{
    return ch == ' ' || (ch >= '\t' && ch <= '\r') ||
           (ch >= 0x1c && ch <= 0x1f);
}

/* s_words: split s in place at white space; the first max words go to w;
 * returns how many there are. */
static int s_words(char *s, char **w, int max)
{
    int n = 0;

    for (;;) {
        while (*s && s_space((unsigned char)*s))
            s++;
        if (!*s)
            return n;
        if (n < max)
            w[n] = s;
        n++;
        while (*s && !s_space((unsigned char)*s))
            s++;
        if (!*s)
            return n;
        *s++ = '\0';
    }
}

/* s_frequency: the frequency word as int(word.lstrip('(').rstrip(')'))
 * reads it (sign, digits, single '_' between digits), >= 1, with room for
 * the expiry. */
static int s_frequency(ctx_t *c, const char *w, int *out)
{
    const char *s = w, *e = w + strlen(w);
    long long v = 0;
    int neg = 0, digits = 0;

    while (*s == '(')
        s++;
    while (e > s && e[-1] == ')')
        e--;
    if (s < e && (*s == '+' || *s == '-'))
        neg = *s++ == '-';
    for (; s < e; s++) {
        if (*s == '_' && digits && s + 1 < e && s[1] >= '0' && s[1] <= '9')
            continue;
        if (*s < '0' || *s > '9')
            return s_fail(c,
                          "'%s': the frequency must be a whole number of "
                          "seconds, as '(60)'",
                          w);
        digits++;
        if (v < 1000000000000LL)
            v = v * 10 + (*s - '0');
    }
    if (!digits)
        return s_fail(c,
                      "'%s': the frequency must be a whole number of "
                      "seconds, as '(60)'",
                      w);
    if (neg || v < 1)
        return s_fail(c, "'%s': the frequency must be at least 1 second", w);
    if (v > INT_MAX / (c->opts->max_intervals + 1))
        return s_fail(c, "'%s': the frequency is too large", w);
    *out = (int)v;
    return 0;
}

/* s_method: the compute of method m. */
static int s_method(ctx_t *c, const char *m, config_compute_t *out)
{
    static const struct {
        const char *name;
        config_compute_kind_t kind;
        int pct; /* pNN: NN; p999: -1 */
    } methods[] = {
        {"sum", COMPUTE_SUM, 0},         {"avg", COMPUTE_AVERAGE, 0},
        {"min", COMPUTE_MIN, 0},         {"max", COMPUTE_MAX, 0},
        {"count", COMPUTE_COUNT, 0},     {"p50", COMPUTE_PERCENTILE, 50},
        {"p75", COMPUTE_PERCENTILE, 75}, {"p80", COMPUTE_PERCENTILE, 80},
        {"p90", COMPUTE_PERCENTILE, 90}, {"p95", COMPUTE_PERCENTILE, 95},
        {"p99", COMPUTE_PERCENTILE, 99}, {"p999", COMPUTE_PERCENTILE, -1},
    };

    for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
        if (strcmp(m, methods[k].name) != 0)
            continue;
        if (methods[k].pct != 0 && !c->opts->nearest_rank) {
            /* carbon-aggregator's own: interpolated between ranks */
            out->kind = COMPUTE_QUANTILE;
            out->percentile = methods[k].pct < 0 ? 999 : 10 * methods[k].pct;
            return 0;
        }
        if (methods[k].pct < 0)
            return s_fail(c,
                          "'%s': orchester has no nearest-rank percentile "
                          "99.9 (its percentiles are whole numbers 1..99)",
                          m);
        out->kind = methods[k].kind;
        out->percentile = methods[k].pct;
        return 0;
    }
    return s_fail(c,
                  "'%s': unknown method (sum, avg, min, max, count, p50, "
                  "p75, p80, p90, p95, p99, p999)",
                  m);
}

/* The pattern being translated. */
typedef struct {
    const char *pattern; /* as written */
    char *o;             /* next byte of the expression */
    char names[MAX_GROUPS][128];
    int ngroups;
    int nwide; /* "<<name>>" placeholders */
} pat_t;

/* s_literal: n bytes of s as literal text of the expression; '*' is a
 * glob ([^.]*) when glob, else refused (field is the field, for messages). */
static int s_literal(ctx_t *c, pat_t *p, const char *s, size_t n, bool glob,
                     const char *field)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '*' && glob) {
            memcpy(p->o, "[^.]*", 5);
            p->o += 5;
            continue;
        }
        if (ch == '*')
            return s_fail(c,
                          "'%s': a '*' in the field '%s', which holds a "
                          "placeholder, is a regular expression operator in "
                          "carbon-aggregator, not a glob",
                          p->pattern, field);
        if (strchr("\\^$+?()[]{}|", ch))
            return s_fail(c,
                          "'%s': '%c' is a regular expression operator in "
                          "carbon-aggregator's patterns (only '*' globs and "
                          "<name> placeholders are read here)",
                          p->pattern, ch);
        *p->o++ = ch;
    }
    return 0;
}

/* s_name: record placeholder name (n bytes at s) as the next group. */
static int s_name(ctx_t *c, pat_t *p, const char *s, size_t n)
{
    int ok = n > 0 && !(s[0] >= '0' && s[0] <= '9');

    for (size_t i = 0; i < n && ok; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
             (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
    if (n == 0)
        return s_fail(c, "'%s': a placeholder without a name", p->pattern);
    if (!ok || n >= sizeof p->names[0])
        return s_fail(c,
                      "'%s': '%.*s' is not a placeholder name (letters, "
                      "digits and '_', not starting with a digit)",
                      p->pattern, (int)n, s);
    for (int g = 0; g < p->ngroups; g++)
        if (strlen(p->names[g]) == n && memcmp(p->names[g], s, n) == 0)
            return s_fail(c, "'%s': the placeholder <%.*s> is given twice",
                          p->pattern, (int)n, s);
    if (p->ngroups >= MAX_GROUPS)
        return s_fail(c, "'%s': more than %d placeholders", p->pattern,
                      MAX_GROUPS);
    memcpy(p->names[p->ngroups], s, n);
    p->names[p->ngroups][n] = '\0';
    p->ngroups++;
    return 0;
}

/* s_field: one field (f, n bytes, NUL-terminated copy) into the
 * expression, as build_regex reads it. */
static int s_field(ctx_t *c, pat_t *p, const char *f)
{
    const char *i2 = strstr(f, "<<"), *j2 = strstr(f, ">>");
    const char *i1 = strchr(f, '<'), *j1 = strchr(f, '>');
    const char *pre_end, *name, *name_end, *post;
    const char *group;

    if (i2 && j2) {
        /* the name is f[i+2:j] (Python's slice: empty when j < i + 2) */
        pre_end = i2;
        name = i2 + 2;
        name_end = j2 > name ? j2 : name;
        post = j2 + 2;
        group = "(.+)";
        if (++p->nwide > 1)
            return s_fail(c,
                          "'%s': more than one <<name>> placeholder: "
                          "carbon-aggregator splits the name between them "
                          "by lazy matching, which a POSIX expression "
                          "cannot reproduce",
                          p->pattern);
    } else if (i1 && j1 && j1 > i1) {
        pre_end = i1;
        name = i1 + 1;
        name_end = j1;
        post = j1 + 1;
        group = "([^.]+)";
    } else if (strcmp(f, "*") == 0) {
        memcpy(p->o, "[^.]+", 5);
        p->o += 5;
        return 0;
    } else {
        return s_literal(c, p, f, strlen(f), true, f);
    }
    if (s_literal(c, p, f, (size_t)(pre_end - f), false, f) != 0 ||
        s_name(c, p, name, (size_t)(name_end - name)) != 0)
        return -1;
    size_t gl = strlen(group);
    memcpy(p->o, group, gl);
    p->o += gl;
    return s_literal(c, p, post, strlen(post), false, f);
}

/* s_regex: the expression of pattern into *out (malloc'd). */
static int s_regex(ctx_t *c, pat_t *p, char **out)
{
    size_t len = strlen(p->pattern);
    char *re = malloc(5 * len + 8), *field = malloc(len + 1);
    const char *s = p->pattern;

    if (!re || !field) {
        free(re);
        free(field);
        return s_oom(c);
    }
    p->o = re;
    *p->o++ = '^';
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        memcpy(field, s, n);
        field[n] = '\0';
        if (s_field(c, p, field) != 0)
            goto fail;
        if (!dot)
            break;
        *p->o++ = '\\';
        *p->o++ = '.';
        s = dot + 1;
    }
    *p->o++ = '$';
    *p->o = '\0';
    free(field);

    regex_t rx;
    char msg[256];
    if (ere_compile(&rx, re, 0, msg, sizeof msg) != 0) {
        s_fail(c, "'%s': its expression '%s' does not compile: %s", p->pattern,
               re, msg);
        free(re);
        return -1;
    }
    tre_regfree(&rx);
    *out = re;
    return 0;

fail:
    free(field);
    free(re);
    return -1;
}

/* s_template: the output template tpl as a write-to template, each
 * <name> a reference to its group, into *out (malloc'd). */
static int s_template(ctx_t *c, const pat_t *p, const char *tpl, char **out)
{
    char *t = malloc(6 * strlen(tpl) + 1), *o = t;

    if (!t)
        return s_oom(c);
    for (const char *s = tpl; *s; s++) {
        if (*s == '%') {
            s_fail(c,
                   "'%s': '%%' is a Python format directive in "
                   "carbon-aggregator's output templates",
                   tpl);
            goto fail;
        }
        if (*s == '>') {
            s_fail(c, "'%s': '>' without a '<' before it", tpl);
            goto fail;
        }
        if (*s != '<') {
            if (*s == '\\')
                *o++ = '\\';
            *o++ = *s;
            continue;
        }
        const char *e = strchr(s + 1, '>');
        if (!e) {
            s_fail(c, "'%s': '<' without a '>' after it", tpl);
            goto fail;
        }
        size_t n = (size_t)(e - s - 1);
        int g = 0;
        while (g < p->ngroups && !(strlen(p->names[g]) == n &&
                                   memcmp(p->names[g], s + 1, n) == 0))
            g++;
        if (g == p->ngroups) {
            s_fail(c, "'%s': <%.*s> is not a placeholder of '%s'", tpl, (int)n,
                   s + 1, p->pattern);
            goto fail;
        }
        o += sprintf(o, "\\g{%d}", g + 1);
        s = e;
    }
    *o = '\0';
    *out = t;
    return 0;

fail:
    free(t);
    return -1;
}

/* s_rule: the rule of one stripped, non-empty, non-comment line (modified
 * in place) into r (zeroed). */
static int s_rule(ctx_t *c, char *line, config_rule_t *r)
{
    char *eq = strchr(line, '=');
    char *lw[2], *rw[2];
    int nl, nr, freq = 0;
    config_compute_t comp = {0};

    if (!eq)
        return s_fail(c, "expected 'OUTPUT (FREQUENCY) = METHOD "
                         "INPUT_PATTERN': no '='");
    *eq = '\0';
    if ((nl = s_words(line, lw, 2)) != 2)
        return s_fail(c,
                      "expected an output template and a (frequency) "
                      "before '=', found %d word%s",
                      nl, nl == 1 ? "" : "s");
    if ((nr = s_words(eq + 1, rw, 2)) != 2)
        return s_fail(c,
                      "expected a method and an input pattern after '=', "
                      "found %d word%s",
                      nr, nr == 1 ? "" : "s");
    if (s_frequency(c, lw[1], &freq) != 0 || s_method(c, rw[0], &comp) != 0)
        return -1;

    pat_t *p = calloc(1, sizeof *p);
    if (!p)
        return s_oom(c);
    p->pattern = rw[1];
    char *re = NULL, *tpl = NULL;
    int rc = -1;
    if (s_regex(c, p, &re) != 0 || s_template(c, p, lw[0], &tpl) != 0)
        goto done;
    r->kind = RULE_AGGREGATE;
    r->pos.file = c->file;
    r->pos.line = c->line;
    if (!(r->exprs = malloc(sizeof *r->exprs)) ||
        !(r->aggr = calloc(1, sizeof *r->aggr)) ||
        !(r->aggr->computes = calloc(1, sizeof *r->aggr->computes))) {
        s_oom(c);
        goto done;
    }
    r->exprs[0] = re;
    r->nexprs = 1;
    re = NULL;
    r->aggr->interval = freq;
    r->aggr->expire = (c->opts->max_intervals + 1) * freq;
    r->aggr->ts_at = TS_AT_START;
    comp.write_to = tpl;
    tpl = NULL;
    r->aggr->computes[0] = comp;
    r->aggr->ncomputes = 1;
    rc = 0;

done:
    free(re);
    free(tpl);
    free(p);
    return rc;
}

static void s_rule_free(config_rule_t *r)
{
    for (size_t i = 0; i < r->nexprs; i++)
        free(r->exprs[i]);
    free(r->exprs);
    for (size_t i = 0; i < r->ndests; i++)
        free(r->dests[i]);
    free(r->dests);
    free(r->validate);
    free(r->route_using);
    free(r->replacement);
    config_aggr_free(r->aggr);
}

void carbonagg_free(config_rule_t *rules, size_t n)
{
    if (!rules)
        return;
    for (size_t i = 0; i < n; i++)
        s_rule_free(&rules[i]);
    free(rules);
}

int carbonagg_parse(const char *text, size_t len, const char *file,
                    const carbonagg_opts_t *opts, config_rule_t **rules,
                    size_t *n, char *err, size_t errlen)
{
    carbonagg_opts_t defaults = {CARBONAGG_MAX_INTERVALS, false};
    ctx_t c = {file ? file : "(rules)", 0, err, errlen,
               opts ? opts : &defaults};
    config_rule_t *v = NULL;
    size_t nv = 0, at = 0;
    char *line = NULL;

    if (err && errlen)
        err[0] = '\0';
    *rules = NULL;
    *n = 0;
    if (c.opts->max_intervals < 1 || c.opts->max_intervals > 1000000) {
        s_fail(&c, "max intervals must be between 1 and 1000000");
        return -1;
    }
    if (!text)
        len = 0;
    while (at < len) {
        /* a line ends at \n, \r\n or \r (Python's universal newlines) */
        size_t end = at;
        while (end < len && text[end] != '\n' && text[end] != '\r')
            end++;
        size_t next = end;
        if (next < len)
            next +=
                text[next] == '\r' && next + 1 < len && text[next + 1] == '\n'
                    ? 2
                    : 1;
        c.line++;
        if (memchr(text + at, '\0', end - at)) {
            s_fail(&c, "a NUL byte in the line");
            goto fail;
        }
        free(line);
        if (!(line = malloc(end - at + 1))) {
            s_oom(&c);
            goto fail;
        }
        memcpy(line, text + at, end - at);
        line[end - at] = '\0';
        at = next;

        char *s = line, *e = line + strlen(line);
        while (*s && s_space((unsigned char)*s))
            s++;
        while (e > s && s_space((unsigned char)e[-1]))
            e--;
        *e = '\0';
        if (!*s || *s == '#')
            continue;
        config_rule_t *grown = NULL;
        if (nv < ((size_t)-1) / sizeof *v - 1)
            grown = realloc(v, (nv + 1) * sizeof *v);
        if (!grown) {
            s_oom(&c);
            goto fail;
        }
        v = grown;
        memset(&v[nv], 0, sizeof v[nv]);
        nv++;
        if (s_rule(&c, s, &v[nv - 1]) != 0)
            goto fail;
    }
    free(line);
    *rules = v;
    *n = nv;
    return 0;

fail:
    free(line);
    carbonagg_free(v, nv);
    return -1;
}
