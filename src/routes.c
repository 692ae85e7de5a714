/*
 * routes.c -- see routes.h.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "routes.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_lex.h"

#define HEADER_LINES 2
#define MAX_FILE     (4 << 20) /* a routes file larger than this is refused */

static const char *const s_kinds[] = {"add", "remove", "drain", "redirect"};

/* ---- a growing string ---------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap; /* len: what it needed; cap: what buf holds */
} out_t;

static void s_add(out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_add(out_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* A word of the config language, quoted when it has to be. */
static void s_word(out_t *o, const char *w)
{
    int plain = w[0] != '\0' && !config_lex_keyword(w);
    for (const char *p = w; plain && *p; p++)
        if (isspace((unsigned char)*p) || strchr(";#\"'", *p))
            plain = 0;
    if (plain) {
        s_add(o, " %s", w);
        return;
    }
    char q = strchr(w, '"') && !strchr(w, '\'') ? '\'' : '"';
    s_add(o, " %c", q);
    for (const char *p = w; *p; p++)
        s_add(o, *p == q ? "\\%c" : "%c", *p);
    s_add(o, "%c", q);
}

size_t routes_rule_text(const config_rule_t *r, char *buf, size_t len)
{
    out_t o = {buf, 0, len};
    if (len)
        buf[0] = '\0';
    if (r->kind == RULE_REWRITE) {
        s_add(&o, "rewrite");
        s_word(&o, r->nexprs ? r->exprs[0] : "");
        s_add(&o, " into");
        s_word(&o, r->replacement ? r->replacement : "");
        s_add(&o, " ;");
        return o.len;
    }
    if (r->kind == RULE_AGGREGATE) {
        static const char *const at[] = {"end", "start", "middle"};
        const config_aggr_t *a = r->aggr;
        s_add(&o, "aggregate");
        for (size_t i = 0; i < r->nexprs; i++)
            s_word(&o, r->exprs[i]);
        s_add(&o, " every %d seconds expire after %d seconds", a->interval,
              a->expire);
        s_add(&o, " timestamp at %s of bucket", at[a->ts_at]);
        for (size_t i = 0; i < a->ncomputes; i++) {
            char k[32];
            config_compute_name(&a->computes[i], k, sizeof k);
            s_add(&o, " compute %s write to", k);
            s_word(&o, a->computes[i].write_to);
        }
        if (r->ndests) {
            s_add(&o, " send to");
            for (size_t i = 0; i < r->ndests; i++)
                s_word(&o, r->dests[i]);
        }
        s_add(&o, "%s ;", r->stop ? " stop" : "");
        return o.len;
    }
    s_add(&o, "match");
    if (r->match_all)
        s_add(&o, " *");
    for (size_t i = 0; i < r->nexprs; i++)
        s_word(&o, r->exprs[i]);
    if (r->validate) {
        s_add(&o, " validate");
        s_word(&o, r->validate);
        s_add(&o, " else %s",
              r->validate_action == VALIDATE_DROP ? "drop" : "log");
    }
    if (r->route_using) {
        s_add(&o, " route using");
        s_word(&o, r->route_using);
    }
    if (r->critical)
        s_add(&o, " critical");
    if (r->ndests) {
        s_add(&o, " send to");
        for (size_t i = 0; i < r->ndests; i++)
            s_word(&o, r->dests[i]);
    }
    if (r->stop)
        s_add(&o, " stop");
    s_add(&o, " ;");
    return o.len;
}

/* A rule's text, malloc'd. */
static char *s_rule_text(const config_rule_t *r)
{
    size_t n = routes_rule_text(r, NULL, 0);
    char *s = malloc(n + 1);
    if (s)
        routes_rule_text(r, s, n + 1);
    return s;
}

/* A member as host:port ([host]:port for IPv6), within len. */
static void s_member_text(const config_member_t *m, char *buf, size_t len)
{
    if (m->port == 0)
        snprintf(buf, len, "%s", m->host);
    else if (strchr(m->host, ':'))
        snprintf(buf, len, "[%s]:%d", m->host, m->port);
    else
        snprintf(buf, len, "%s:%d", m->host, m->port);
}

/* ---- the list ------------------------------------------------------------ */

routes_t *routes_new(void)
{
    return calloc(1, sizeof(routes_t));
}

static void s_change_free(route_change_t *c)
{
    free(c->text);
    free(c->cluster);
}

void routes_destroy(routes_t **pr)
{
    if (pr == NULL || *pr == NULL)
        return;
    routes_t *r = *pr;
    for (size_t i = 0; i < r->n; i++)
        s_change_free(&r->v[i]);
    free(r->v);
    free(r);
    *pr = NULL;
}

/* Append a change (copies of the strings).  0 or -1. */
static int s_push(routes_t *r, route_kind_t kind, int pos, const char *cluster,
                  const char *text, int line)
{
    route_change_t *v = realloc(r->v, (r->n + 1) * sizeof *v);
    if (v == NULL)
        return -1;
    r->v = v;
    route_change_t *c = &v[r->n];
    *c = (route_change_t){kind, pos, text ? strdup(text) : NULL,
                          cluster ? strdup(cluster) : NULL, line};
    if ((text && !c->text) || (cluster && !c->cluster)) {
        s_change_free(c);
        return -1;
    }
    r->n++;
    return 0;
}

static void s_delete(routes_t *r, size_t i)
{
    s_change_free(&r->v[i]);
    memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof *r->v);
    r->n--;
}

/* The lines the file will have. */
static void s_renumber(routes_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        r->v[i].line = HEADER_LINES + 1 + (int)i;
}

routes_t *routes_dup(const routes_t *r)
{
    routes_t *c = routes_new();
    for (size_t i = 0; c && r && i < r->n; i++)
        if (s_push(c, r->v[i].kind, r->v[i].pos, r->v[i].cluster, r->v[i].text,
                   r->v[i].line) != 0)
            routes_destroy(&c);
    return c;
}

/* ---- the file ------------------------------------------------------------ */

static void s_change_line(out_t *o, const route_change_t *c)
{
    s_add(o, "%s", s_kinds[c->kind]);
    if (c->kind == ROUTE_ADD)
        s_add(o, " %d", c->pos);
    if (c->cluster)
        s_add(o, " %s", c->cluster);
    s_add(o, " %s", c->text);
}

char *routes_format(const routes_t *r)
{
    out_t o = {NULL, 0, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !(o.buf = malloc(o.cap = o.len + 1)))
            return NULL;
        o.len = 0;
        s_add(&o, "# orchester: routing changed at run time (orchester-ctl "
                  "route), applied\n"
                  "# over the config file at every start and reload: change "
                  "it with orchester-ctl\n");
        for (size_t i = 0; r && i < r->n; i++) {
            s_change_line(&o, &r->v[i]);
            s_add(&o, "\n");
        }
    }
    return o.buf;
}

uint64_t routes_hash(const routes_t *r)
{
    char *t = routes_format(r);
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = t; p && *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ULL;
    }
    free(t);
    return h;
}

/* The next word of *s (at most cap - 1 bytes) into w; 0 when there is none. */
static int s_next(const char **s, char *w, size_t cap)
{
    const char *p = *s;
    while (isspace((unsigned char)*p))
        p++;
    size_t n = 0;
    while (p[n] && !isspace((unsigned char)p[n]))
        n++;
    if (n == 0 || n >= cap)
        return 0;
    memcpy(w, p, n);
    w[n] = '\0';
    *s = p + n;
    while (isspace((unsigned char)**s))
        (*s)++;
    return 1;
}

/* A position: a number from 1. */
static int s_posnum(const char *w, int *pos)
{
    char *end;
    errno = 0;
    long v = strtol(w, &end, 10);
    if (*w == '\0' || *end || errno || v < 1 || v > 1000000)
        return -1;
    *pos = (int)v;
    return 0;
}

/* One line of the file (NUL-terminated, no newline) into r. */
static int s_parse_line(routes_t *r, const char *s, int line, char *err,
                        size_t errlen, const char *name)
{
    char w[256], cluster[256];
    int pos = 0, kind = -1;
    if (!s_next(&s, w, sizeof w))
        return 0;
    for (int k = 0; k < 4; k++)
        if (strcmp(w, s_kinds[k]) == 0)
            kind = k;
    if (kind < 0) {
        snprintf(err, errlen,
                 "%s:%d: '%s' is no route change (add, remove, "
                 "drain, redirect)",
                 name, line, w);
        return -1;
    }
    if (kind == ROUTE_ADD && (!s_next(&s, w, sizeof w) || s_posnum(w, &pos))) {
        snprintf(err, errlen, "%s:%d: add: expected a position (1, 2, ...)",
                 name, line);
        return -1;
    }
    int has_cluster = kind == ROUTE_DRAIN || kind == ROUTE_REDIRECT;
    if (has_cluster && !s_next(&s, cluster, sizeof cluster)) {
        snprintf(err, errlen, "%s:%d: %s: expected a cluster", name, line,
                 s_kinds[kind]);
        return -1;
    }
    size_t l = strlen(s);
    while (l && isspace((unsigned char)s[l - 1]))
        l--;
    if (l == 0) {
        snprintf(err, errlen, "%s:%d: %s: expected %s", name, line,
                 s_kinds[kind],
                 kind == ROUTE_DRAIN ? "a member"
                 : has_cluster       ? "members"
                                     : "a rule");
        return -1;
    }
    char *text = strndup(s, l);
    int rc = text ? s_push(r, (route_kind_t)kind, pos,
                           has_cluster ? cluster : NULL, text, line)
                  : -1;
    free(text);
    if (rc != 0)
        snprintf(err, errlen, "%s: out of memory", name);
    return rc;
}

routes_t *routes_parse(const char *text, size_t len, const char *name,
                       char *err, size_t errlen)
{
    routes_t *r = routes_new();
    char *line = malloc(len + 1);
    if (r == NULL || line == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        free(line);
        routes_destroy(&r);
        return NULL;
    }
    size_t i = 0;
    for (int n = 1; i < len; n++) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        memcpy(line, text + i, j - i);
        line[j - i] = '\0';
        if (memchr(line, '\0', j - i) != NULL) {
            snprintf(err, errlen, "%s:%d: NUL byte", name, n);
            routes_destroy(&r);
            break;
        }
        const char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '#' && s_parse_line(r, p, n, err, errlen, name) != 0) {
            routes_destroy(&r);
            break;
        }
        i = j + 1;
    }
    free(line);
    return r;
}

routes_t *routes_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return routes_new();
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    routes_t *r = NULL;
    if (buf == NULL)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (bad)
        snprintf(err, errlen, "%s: cannot read", path);
    else if (n > MAX_FILE)
        snprintf(err, errlen, "%s: larger than %d bytes", path, MAX_FILE);
    else
        r = routes_parse(buf, n, path, err, errlen);
    free(buf);
    return r;
}

int routes_save(const routes_t *r, const char *path, char *err, size_t errlen)
{
    char *text = routes_format(r);
    size_t pl = strlen(path) + 8;
    char *tmp = malloc(pl);
    int fd = -1, rc = -1;
    if (text == NULL || tmp == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, pl, "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        goto out;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rename to %s: %s", tmp, path,
                 strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp)
        unlink(tmp);
    free(tmp);
    free(text);
    return rc;
}

char *routes_path(const char *config)
{
    size_t l = strlen(config) + sizeof ".routes";
    char *p = malloc(l);
    if (p)
        snprintf(p, l, "%s.routes", config);
    return p;
}

/* ---- applying ------------------------------------------------------------ */

/* The message of a parse of text given under the name "rule", without
 * its "rule:1: " prefix. */
static const char *s_inner(const char *msg)
{
    const char *p = strncmp(msg, "rule:", 5) == 0 ? strstr(msg, ": ") : NULL;
    return p ? p + 2 : msg;
}

/* Parse one rule; NULL with err. */
static config_t *s_parse_rule(const char *text, char *err, size_t errlen)
{
    char e[512];
    config_t *mini = config_parse_string_flags(
        text, "rule", CONFIG_NO_INCLUDE | CONFIG_RULES_ONLY | CONFIG_NO_CHECK,
        e, sizeof e);
    if (mini == NULL)
        snprintf(err, errlen, "%s", s_inner(e));
    else if (mini->nrules != 1) {
        snprintf(err, errlen, "expected one rule, not %zu", mini->nrules);
        config_destroy(&mini);
    }
    return mini;
}

static void s_rule_free(config_rule_t *r)
{
    config_aggr_free(r->aggr);
    for (size_t i = 0; i < r->nexprs; i++)
        free(r->exprs[i]);
    free(r->exprs);
    for (size_t i = 0; i < r->ndests; i++)
        free(r->dests[i]);
    free(r->dests);
    free(r->validate);
    free(r->route_using);
    free(r->replacement);
}

static int s_apply_add(const route_change_t *c, config_t *cfg, const char *file,
                       char *err, size_t errlen)
{
    config_t *mini = s_parse_rule(c->text, err, errlen);
    if (mini == NULL)
        return -1;
    config_rule_t *rule = &mini->rules[0];
    for (size_t i = 0; i < rule->ndests; i++)
        if (strcmp(rule->dests[i], "blackhole") != 0 &&
            !config_find_cluster(cfg, rule->dests[i])) {
            snprintf(err, errlen, "unknown cluster '%s'", rule->dests[i]);
            config_destroy(&mini);
            return -1;
        }
    config_rule_t *v = realloc(cfg->rules, (cfg->nrules + 1) * sizeof *v);
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        config_destroy(&mini);
        return -1;
    }
    cfg->rules = v;
    size_t at =
        (size_t)c->pos - 1 < cfg->nrules ? (size_t)c->pos - 1 : cfg->nrules;
    memmove(&v[at + 1], &v[at], (cfg->nrules - at) * sizeof *v);
    v[at] = *rule;
    v[at].pos = (config_pos_t){file, c->line};
    cfg->nrules++;
    memset(rule, 0, sizeof *rule); /* moved */
    config_destroy(&mini);
    return 0;
}

/* The cluster's member that reads text, or -1. */
static long s_find_member(const config_cluster_t *cl, const char *text)
{
    char m[300];
    for (size_t i = 0; i < cl->nmembers; i++) {
        s_member_text(&cl->members[i], m, sizeof m);
        if (strcmp(m, text) == 0)
            return (long)i;
    }
    return -1;
}

static config_cluster_t *s_cluster(config_t *cfg, const char *name)
{
    return (config_cluster_t *)config_find_cluster(cfg, name);
}

static const char *s_type_word(const config_cluster_t *c)
{
    switch (c->type) {
    case CLUSTER_FORWARD: return "forward";
    case CLUSTER_ANY_OF: return "any_of";
    case CLUSTER_FAILOVER: return "failover";
    case CLUSTER_CARBON_CH: return "carbon_ch";
    case CLUSTER_FNV1A_CH: return "fnv1a_ch";
    case CLUSTER_JUMP_FNV1A_CH: return "jump_fnv1a_ch";
    case CLUSTER_FILE: return "file";
    case CLUSTER_FILE_IP: return "file ip";
    }
    return "forward";
}

/* Parse members for cl: a cluster statement of cl's type and options with
 * these members.  NULL with err. */
static config_t *s_parse_members(const config_cluster_t *cl,
                                 const char *members, char *err, size_t errlen)
{
    out_t o = {NULL, 0, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !(o.buf = malloc(o.cap = o.len + 1))) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        o.len = 0;
        s_add(&o, "cluster %s %s", cl->name, s_type_word(cl));
        if (cl->replication > 1)
            s_add(&o, " replication %d", cl->replication);
        if (cl->dynamic)
            s_add(&o, " dynamic");
        if (cl->useall)
            s_add(&o, " useall");
        if (cl->graphite)
            s_add(&o, " graphite");
        s_add(&o, " %s ;", members);
    }
    char e[512];
    config_t *mini = config_parse_string_flags(
        o.buf, "rule", CONFIG_NO_INCLUDE | CONFIG_NO_CHECK, e, sizeof e);
    free(o.buf);
    if (mini == NULL)
        snprintf(err, errlen, "%s", s_inner(e));
    else if (mini->nclusters != 1 || mini->nrules || mini->nlistens) {
        snprintf(err, errlen, "expected members only");
        config_destroy(&mini);
    }
    return mini;
}

static void s_members_free(config_cluster_t *cl)
{
    for (size_t i = 0; i < cl->nmembers; i++) {
        free(cl->members[i].host);
        free(cl->members[i].instance);
    }
    free(cl->members);
    cl->members = NULL;
    cl->nmembers = 0;
}

/* One change.  1: applied; 0: skipped (why in err); -1: error. */
static int s_apply_one(const route_change_t *c, config_t *cfg, const char *file,
                       char *err, size_t errlen)
{
    if (c->kind == ROUTE_ADD)
        return s_apply_add(c, cfg, file, err, errlen) == 0 ? 1 : -1;
    if (c->kind == ROUTE_REMOVE) {
        for (size_t i = 0; i < cfg->nrules; i++) {
            char *t = s_rule_text(&cfg->rules[i]);
            int same = t && strcmp(t, c->text) == 0;
            free(t);
            if (same) {
                s_rule_free(&cfg->rules[i]);
                memmove(&cfg->rules[i], &cfg->rules[i + 1],
                        (cfg->nrules - i - 1) * sizeof *cfg->rules);
                cfg->nrules--;
                return 1;
            }
        }
        snprintf(err, errlen, "no rule reads so");
        return 0;
    }
    config_cluster_t *cl = s_cluster(cfg, c->cluster);
    if (cl == NULL) {
        snprintf(err, errlen, "no cluster %s", c->cluster);
        return 0;
    }
    if (c->kind == ROUTE_DRAIN) {
        long i = s_find_member(cl, c->text);
        if (i < 0) {
            snprintf(err, errlen, "%s has no member %s", c->cluster, c->text);
            return 0;
        }
        if (cl->nmembers == 1) {
            snprintf(err, errlen, "%s is the last member of %s", c->text,
                     c->cluster);
            return 0;
        }
        free(cl->members[i].host);
        free(cl->members[i].instance);
        memmove(&cl->members[i], &cl->members[i + 1],
                (cl->nmembers - (size_t)i - 1) * sizeof *cl->members);
        cl->nmembers--;
        if ((size_t)cl->replication > cl->nmembers)
            cl->replication = (int)cl->nmembers;
        return 1;
    }
    config_t *mini = s_parse_members(cl, c->text, err, errlen);
    if (mini == NULL)
        return -1;
    s_members_free(cl);
    cl->members = mini->clusters[0].members;
    cl->nmembers = mini->clusters[0].nmembers;
    for (size_t i = 0; i < cl->nmembers; i++)
        cl->members[i].pos = (config_pos_t){file, c->line};
    mini->clusters[0].members = NULL;
    mini->clusters[0].nmembers = 0;
    config_destroy(&mini);
    return 1;
}

int routes_apply(const routes_t *r, config_t *cfg, const char *name,
                 routes_skip_fn *skip, void *arg, char *err, size_t errlen)
{
    if (r == NULL || r->n == 0)
        return 0;
    const char *file = config_add_file(cfg, name);
    if (file == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        char why[512];
        why[0] = '\0';
        int rc = s_apply_one(&r->v[i], cfg, file, why, sizeof why);
        if (rc < 0) {
            snprintf(err, errlen, "%s:%d: %s: %s", name, r->v[i].line,
                     s_kinds[r->v[i].kind], why);
            return -1;
        }
        if (rc == 0 && skip)
            skip(arg, &r->v[i], why);
    }
    return 0;
}

/* ---- commands ------------------------------------------------------------ */

/* base with r applied, or NULL with "error ..." in msg. */
static config_t *s_effective(const routes_t *r, const config_t *base,
                             const char *name, char *msg, size_t msglen)
{
    char err[600];
    config_t *cfg = config_dup(base);
    if (cfg == NULL) {
        snprintf(msg, msglen, "error out of memory\n");
        return NULL;
    }
    if (routes_apply(r, cfg, name, NULL, NULL, err, sizeof err) != 0) {
        snprintf(msg, msglen, "error %s\n", err);
        config_destroy(&cfg);
    }
    return cfg;
}

static int s_fail(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(msg, msglen, "error ");
    if (n > 0 && (size_t)n < msglen)
        vsnprintf(msg + n, msglen - (size_t)n, fmt, ap);
    va_end(ap);
    size_t l = strlen(msg);
    if (l + 1 < msglen) {
        msg[l] = '\n';
        msg[l + 1] = '\0';
    }
    return -1;
}

/* Drop the drains and redirects of cluster from r; how many. */
static int s_forget_cluster(routes_t *r, const char *cluster,
                            const char *member)
{
    int n = 0;
    for (size_t i = r->n; i-- > 0;) {
        const route_change_t *c = &r->v[i];
        if ((c->kind == ROUTE_DRAIN ||
             (c->kind == ROUTE_REDIRECT && !member)) &&
            strcmp(c->cluster, cluster) == 0 &&
            (!member || strcmp(c->text, member) == 0)) {
            s_delete(r, i);
            n++;
        }
    }
    return n;
}

/* The edit itself, on nr (a copy of cur); eff is base with cur applied. */
static int s_edit(routes_t *nr, const config_t *eff, const char *name,
                  const char *op, const char *rest, char *msg, size_t msglen)
{
    char w[256], e[512];
    if (strcmp(op, "add") == 0) {
        int pos;
        if (!s_next(&rest, w, sizeof w))
            return s_fail(msg, msglen,
                          "route add: expected a position "
                          "(1, 2, ..., first or last) and a rule");
        if (strcmp(w, "first") == 0)
            pos = 1;
        else if (strcmp(w, "last") == 0)
            pos = (int)eff->nrules + 1;
        else if (s_posnum(w, &pos) != 0)
            return s_fail(msg, msglen,
                          "route add: '%s' is no position "
                          "(1, 2, ..., first or last)",
                          w);
        if (*rest == '\0')
            return s_fail(msg, msglen,
                          "route add: expected a rule after "
                          "the position");
        /* the final ';' may be left out */
        char rule[8192];
        size_t rl = strlen(rest);
        while (rl && isspace((unsigned char)rest[rl - 1]))
            rl--;
        if (rl + 3 > sizeof rule)
            return s_fail(msg, msglen, "route add: the rule is too long");
        snprintf(rule, sizeof rule, "%.*s%s", (int)rl, rest,
                 rest[rl - 1] == ';' ? "" : " ;");
        config_t *mini = s_parse_rule(rule, e, sizeof e);
        if (mini == NULL)
            return s_fail(msg, msglen, "route add: %s", e);
        char *text = s_rule_text(&mini->rules[0]);
        config_destroy(&mini);
        int rc = text ? s_push(nr, ROUTE_ADD, pos, NULL, text, 0) : -1;
        free(text);
        if (rc != 0)
            return s_fail(msg, msglen, "out of memory");
        snprintf(msg, msglen, "ok rule added at %d\n",
                 pos <= (int)eff->nrules ? pos : (int)eff->nrules + 1);
        return 0;
    }
    if (strcmp(op, "remove") == 0) {
        int pos;
        if (!s_next(&rest, w, sizeof w) || s_posnum(w, &pos) != 0 ||
            *rest != '\0' || (size_t)pos > eff->nrules)
            return s_fail(msg, msglen,
                          "route remove: expected the number of "
                          "a rule, 1 to %zu (route list)",
                          eff->nrules);
        const config_rule_t *rule = &eff->rules[pos - 1];
        char *text = s_rule_text(rule);
        if (text == NULL)
            return s_fail(msg, msglen, "out of memory");
        int rc = 0;
        if (rule->pos.file && strcmp(rule->pos.file, name) == 0) {
            for (size_t i = 0; i < nr->n; i++)
                if (nr->v[i].kind == ROUTE_ADD &&
                    nr->v[i].line == rule->pos.line) {
                    s_delete(nr, i);
                    break;
                }
        } else {
            rc = s_push(nr, ROUTE_REMOVE, 0, NULL, text, 0);
        }
        if (rc == 0)
            snprintf(msg, msglen, "ok removed rule %d: %s\n", pos, text);
        free(text);
        return rc == 0 ? 0 : s_fail(msg, msglen, "out of memory");
    }
    if (strcmp(op, "clear") == 0) {
        size_t n = nr->n;
        while (nr->n)
            s_delete(nr, nr->n - 1);
        snprintf(msg, msglen, "ok cleared %zu route change%s\n", n,
                 n == 1 ? "" : "s");
        return 0;
    }
    char cluster[256];
    if (strcmp(op, "restore") != 0 && strcmp(op, "drain") != 0 &&
        strcmp(op, "back") != 0 && strcmp(op, "redirect") != 0)
        return s_fail(msg, msglen,
                      "route: unknown '%s' (list, add, remove, "
                      "drain, back, redirect, restore, clear)",
                      op);
    if (!s_next(&rest, cluster, sizeof cluster))
        return s_fail(msg, msglen, "route %s: expected a cluster", op);
    const config_cluster_t *cl = config_find_cluster(eff, cluster);
    if (strcmp(op, "restore") == 0) {
        if (*rest)
            return s_fail(msg, msglen, "route restore: only a cluster");
        int n = s_forget_cluster(nr, cluster, NULL);
        if (n == 0)
            return s_fail(msg, msglen,
                          "route restore: %s has no drained "
                          "or redirected members",
                          cluster);
        snprintf(msg, msglen, "ok %s has its members from the file again\n",
                 cluster);
        return 0;
    }
    if (cl == NULL)
        return s_fail(msg, msglen, "route %s: no cluster %s", op, cluster);
    if (strcmp(op, "drain") == 0 || strcmp(op, "back") == 0) {
        if (!s_next(&rest, w, sizeof w) || *rest)
            return s_fail(msg, msglen,
                          "route %s: expected one member "
                          "(host:port)",
                          op);
        if (op[0] == 'b') {
            if (s_forget_cluster(nr, cluster, w) == 0)
                return s_fail(msg, msglen,
                              "route back: %s is not drained "
                              "from %s",
                              w, cluster);
            snprintf(msg, msglen, "ok %s is back in %s\n", w, cluster);
            return 0;
        }
        if (s_find_member(cl, w) < 0)
            return s_fail(msg, msglen,
                          "route drain: %s has no member %s "
                          "(members are written host:port)",
                          cluster, w);
        if (cl->nmembers == 1)
            return s_fail(msg, msglen,
                          "route drain: %s is the last member "
                          "of %s",
                          w, cluster);
        if (s_push(nr, ROUTE_DRAIN, 0, cluster, w, 0) != 0)
            return s_fail(msg, msglen, "out of memory");
        snprintf(msg, msglen, "ok %s drained from %s\n", w, cluster);
        return 0;
    }
    if (strcmp(op, "redirect") == 0) {
        if (*rest == '\0')
            return s_fail(msg, msglen, "route redirect: expected members");
        config_t *mini = s_parse_members(cl, rest, e, sizeof e);
        if (mini == NULL)
            return s_fail(msg, msglen, "route redirect: %s", e);
        config_destroy(&mini);
        s_forget_cluster(nr, cluster, NULL);
        if (s_push(nr, ROUTE_REDIRECT, 0, cluster, rest, 0) != 0)
            return s_fail(msg, msglen, "out of memory");
        snprintf(msg, msglen, "ok %s redirected to %s\n", cluster, rest);
        return 0;
    }
    return s_fail(msg, msglen,
                  "route: unknown '%s' (list, add, remove, "
                  "drain, back, redirect, restore, clear)",
                  op);
}

int routes_command(const routes_t *cur, const config_t *base, const char *name,
                   const char *words, routes_t **out, char *msg, size_t msglen)
{
    char op[32];
    *out = NULL;
    if (!s_next(&words, op, sizeof op))
        return s_fail(msg, msglen,
                      "route: expected list, add, remove, "
                      "drain, back, redirect, restore or clear");
    config_t *eff = s_effective(cur, base, name, msg, msglen);
    if (eff == NULL)
        return -1;
    routes_t *nr = routes_dup(cur);
    int rc = nr ? s_edit(nr, eff, name, op, words, msg, msglen)
                : s_fail(msg, msglen, "out of memory");
    config_destroy(&eff);
    if (rc == 0) {
        s_renumber(nr);
        char keep[512];
        snprintf(keep, sizeof keep, "%s", msg);
        config_t *check = s_effective(nr, base, name, msg, msglen);
        if (check == NULL)
            rc = -1;
        else
            snprintf(msg, msglen, "%s", keep);
        config_destroy(&check);
    }
    if (rc != 0)
        routes_destroy(&nr);
    *out = nr;
    return rc;
}

size_t routes_list(const routes_t *r, const config_t *cfg, const char *name,
                   char *buf, size_t len)
{
    out_t o = {buf, strlen(buf), len};
    char text[2048];
    s_add(&o, "rules in force: %zu\n", cfg->nrules);
    for (size_t i = 0; i < cfg->nrules; i++) {
        const config_rule_t *rule = &cfg->rules[i];
        routes_rule_text(rule, text, sizeof text);
        int added = rule->pos.file && strcmp(rule->pos.file, name) == 0;
        s_add(&o, "%4zu  %s  (%s%s:%d)\n", i + 1, text,
              added ? "route add, " : "", rule->pos.file ? rule->pos.file : "?",
              rule->pos.line);
    }
    s_add(&o, "route changes: %zu in %s\n", r ? r->n : 0, name);
    for (size_t i = 0; r && i < r->n; i++) {
        s_add(&o, "%4d  ", r->v[i].line);
        s_change_line(&o, &r->v[i]);
        s_add(&o, "\n");
    }
    for (size_t i = 0; i < cfg->nclusters; i++) {
        const config_cluster_t *cl = &cfg->clusters[i];
        int changed = 0;
        for (size_t j = 0; r && j < r->n; j++)
            if (r->v[j].cluster && strcmp(r->v[j].cluster, cl->name) == 0)
                changed = 1;
        if (!changed)
            continue;
        s_add(&o, "cluster %s now:", cl->name);
        for (size_t j = 0; j < cl->nmembers; j++) {
            s_member_text(&cl->members[j], text, sizeof text);
            s_add(&o, " %s", text);
        }
        s_add(&o, "\n");
    }
    return o.len;
}
