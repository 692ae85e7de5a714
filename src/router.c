/*
 * router.c -- see router.h.
 *
 * Ownership: the router owns its compiled expressions, rings, templates and
 * index; it borrows the config.  A router_ctx_t owns the buffers one thread
 * routes with.
 */
#include "router.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ere.h"
#include "net.h"
#include "ring.h"
#include "stats.h"

#define NAME_MAX_LEN 65536 /* longest name a rewrite may produce */
#define NGROUPS      32    /* groups a reference may name: \1 .. \31 */

/* One piece of a replacement template: literal text or a group. */
typedef struct {
    const char *lit; /* literal (borrowed from the config), or NULL */
    size_t litlen;
    int group;        /* group number when lit is NULL */
    int lower, upper; /* \_N, \^N */
    int dots;         /* \.N: '.' becomes '_' */
} piece_t;

typedef struct {
    piece_t *p;
    size_t n;
    int maxgroup; /* highest group used, -1 for none */
} tmpl_t;

typedef struct {
    const config_cluster_t *cluster; /* borrowed */
    const config_member_t *members;  /* its members (borrowed from the
                                        config; useall_expand resolved
                                        `useall` ones to addresses) */
    uint32_t first;                  /* id of its first destination */
    uint32_t n;                      /* member count */
    ring_t *ring;                    /* NULL for forward and file */
    size_t replication;
} rcluster_t;

typedef struct {
    const config_rule_t *rule; /* borrowed */
    regex_t *re;               /* compiled expressions (nre) */
    size_t nre;
    int captures;     /* compiled with groups (rewrite, route using) */
    regex_t validate; /* when rule->validate */
    int has_validate;
    size_t *targets; /* cluster indexes, SIZE_MAX for the blackhole */
    size_t ntargets;
    int stop;         /* stop, explicit or by the blackhole */
    tmpl_t into;      /* rewrite: replacement */
    tmpl_t using;     /* match: route using */
    tmpl_t *writes;   /* aggregate: each compute's `write to` */
    uint32_t aggr_id; /* aggregate: its number, from 0 in config order */
    int always;       /* the index cannot skip it */
} rrule_t;

typedef struct {
    char *prefix; /* literal start of an expression (owned) */
    size_t len;
    size_t rule; /* rule index */
} ientry_t;

struct router {
    router_dest_t *dests; /* ndests */
    size_t ndests;
    rcluster_t *clusters; /* nclusters, config order */
    size_t nclusters;
    rrule_t *rules; /* nrules, config order */
    size_t nrules;
    ientry_t *index; /* sorted by prefix */
    size_t nindex;
    size_t *lens; /* distinct prefix lengths, ascending */
    size_t nlens;
    bool use_index;
    bool all_critical;           /* the buffer statement says `all critical` */
    bool has_buffer;             /* there is a buffer statement */
    const config_t *cfg;         /* borrowed */
    const config_rule_t **aggrs; /* the aggregate rules, by number */
    size_t naggrs;
};

struct router_ctx {
    char *name[2]; /* the name, NUL-terminated; rewrites use them in turn */
    char *key;     /* placement key */
    char *data;    /* the data after the name, for validate */
    size_t cap;    /* bytes of each of the four buffers */
    router_invalid_t invalid; /* the last `validate ... else log` failure */
    uint64_t *cand;           /* candidate rules (bits) */
    size_t ncand;             /* words in cand */
    size_t out[RING_MAX_MEMBERS];
    router_aggr_fn *aggr; /* what aggregate rules feed, or NULL */
    void *aggr_arg;
    char *outname; /* an aggregate's output name (NAME_MAX_LEN + 1) */
};

/* ---- templates ------------------------------------------------------------
 */

/* Compile a replacement the way carbon-c-relay reads one: a backslash,
 * optional flags ('_' lowercase or '^' uppercase, then '.' for dots to
 * underscores), then the group number, all its digits (\12 is group 12;
 * \0 and groups the expression does not have are empty).  \g{N} names
 * group N.  A backslash with flags but no number is dropped with its flags;
 * a backslash before any other character is dropped and the character kept,
 * and so are flags right after a reference ("\1\_2" is group 1, then "_2").
 */
static int s_tmpl_compile(tmpl_t *t, const char *s, char *err, size_t errlen,
                          const config_pos_t *pos)
{
    size_t cap = strlen(s) + 1;
    t->p = calloc(cap, sizeof *t->p);
    t->n = 0;
    t->maxgroup = -1;
    if (t->p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *lit = s, *after_ref = NULL;
    while (*s) {
        if (*s != '\\' || s[1] == '\0') {
            s++;
            continue;
        }
        if (s > lit)
            t->p[t->n++] = (piece_t){.lit = lit, .litlen = (size_t)(s - lit)};
        const char *q = s + 1;
        piece_t g = {0};
        int flags = 0;
        if (s == after_ref && (*q == '_' || *q == '^' || *q == '.')) {
            lit = s + 1; /* no flags right after a reference */
            s += 2;
            continue;
        }
        if (*q == '_' || *q == '^') {
            g.lower = *q == '_';
            g.upper = *q == '^';
            q++;
            flags = 1;
        }
        if (*q == '.') {
            g.dots = 1;
            q++;
            flags = 1;
        }
        long v = -1;
        if (*q == 'g' && q[1] == '{' && isdigit((unsigned char)q[2])) {
            char *end;
            v = strtol(q + 2, &end, 10);
            if (*end != '}') {
                snprintf(err, errlen, "%s:%d: bad group reference in '%s'",
                         pos->file, pos->line, lit);
                return -1;
            }
            q = end + 1;
        } else if (isdigit((unsigned char)*q)) {
            char *end;
            v = strtol(q, &end, 10);
            q = end;
        }
        if (v >= 0) {
            g.group = v >= NGROUPS ? NGROUPS : (int)v; /* NGROUPS: empty */
            t->p[t->n++] = g;
            if (g.group > t->maxgroup && g.group < NGROUPS)
                t->maxgroup = g.group;
            s = lit = after_ref = q;
        } else if (flags) {
            s = lit = q; /* flags without a number: dropped */
        } else {
            lit = s + 1; /* "\x" is "x" */
            s += 2;
        }
    }
    if (s > lit)
        t->p[t->n++] = (piece_t){.lit = lit, .litlen = (size_t)(s - lit)};
    return 0;
}

/* Expand t with the groups of subject; returns the length, or -1 when it
 * does not fit in cap. */
static long s_tmpl_expand(const tmpl_t *t, const char *subject,
                          const regmatch_t *m, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        const piece_t *p = &t->p[i];
        const char *src;
        size_t l;
        if (p->lit) {
            src = p->lit;
            l = p->litlen;
        } else {
            /* \0, and groups the match does not have, are empty */
            if (p->group == 0 || p->group >= NGROUPS || m[p->group].rm_so < 0)
                continue;
            src = subject + m[p->group].rm_so;
            l = (size_t)(m[p->group].rm_eo - m[p->group].rm_so);
        }
        if (k + l > cap)
            return -1;
        for (size_t j = 0; j < l; j++) {
            char c = src[j];
            if (!p->lit) {
                if (p->lower)
                    c = (char)tolower((unsigned char)c);
                else if (p->upper)
                    c = (char)toupper((unsigned char)c);
                if (p->dots && c == '.')
                    c = '_';
            }
            out[k++] = c;
        }
    }
    return (long)k;
}

/* ---- the index ----------------------------------------------------------- */

/* The literal every match of an anchored ERE starts with; 0 when there is
 * none (the rule is then always a candidate). */
static size_t s_literal_prefix(const char *re, char *out, size_t cap)
{
    if (re[0] != '^' || strchr(re, '|'))
        return 0;
    size_t k = 0;
    const char *p = re + 1;
    while (*p && k + 1 < cap) {
        char c = *p;
        size_t adv = 1;
        if (strchr(".[]()*+?{}^$", c))
            break;
        if (c == '\\') {
            if (p[1] == '\0' || !strchr(".[]()*+?{}|^$\\/-", p[1]))
                break;
            c = p[1];
            adv = 2;
        }
        if (p[adv] == '*' || p[adv] == '?' || p[adv] == '{')
            break; /* this character may be absent */
        out[k++] = c;
        if (p[adv] == '+')
            break;
        p += adv;
    }
    return k;
}

static int s_ientry_cmp(const void *a, const void *b)
{
    const ientry_t *x = a, *y = b;
    size_t l = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->prefix, y->prefix, l);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int s_index_build(router_t *r)
{
    size_t cap = 0;
    for (size_t i = 0; i < r->nrules; i++)
        cap += r->rules[i].rule->nexprs;
    r->index = calloc(cap ? cap : 1, sizeof *r->index);
    r->lens = calloc(cap ? cap : 1, sizeof *r->lens);
    if (!r->index || !r->lens)
        return -1;
    for (size_t i = 0; i < r->nrules; i++) {
        rrule_t *rr = &r->rules[i];
        const config_rule_t *cr = rr->rule;
        rr->always = cr->match_all || cr->nexprs == 0;
        char buf[4096];
        size_t start = r->nindex;
        for (size_t e = 0; e < cr->nexprs && !rr->always; e++) {
            size_t l = s_literal_prefix(cr->exprs[e], buf, sizeof buf);
            if (l == 0) {
                rr->always = 1;
                break;
            }
            ientry_t *ie = &r->index[r->nindex];
            ie->prefix = malloc(l);
            if (ie->prefix == NULL)
                return -1;
            memcpy(ie->prefix, buf, l);
            ie->len = l;
            ie->rule = i;
            r->nindex++;
        }
        if (rr->always) { /* its prefixes are of no use */
            while (r->nindex > start)
                free(r->index[--r->nindex].prefix);
        }
    }
    qsort(r->index, r->nindex, sizeof *r->index, s_ientry_cmp);
    for (size_t i = 0; i < r->nindex; i++) {
        size_t l = r->index[i].len, j = 0;
        while (j < r->nlens && r->lens[j] != l)
            j++;
        if (j == r->nlens)
            r->lens[r->nlens++] = l;
    }
    for (size_t i = 1; i < r->nlens; i++) /* insertion sort: few lengths */
        for (size_t j = i; j > 0 && r->lens[j - 1] > r->lens[j]; j--) {
            size_t t = r->lens[j];
            r->lens[j] = r->lens[j - 1];
            r->lens[j - 1] = t;
        }
    return 0;
}

/* Mark in ctx->cand the rules from `from` on that may match name. */
static void s_candidates(const router_t *r, router_ctx_t *ctx, size_t from,
                         const char *name, size_t namelen)
{
    size_t words = (r->nrules + 63) / 64;
    memset(ctx->cand, 0, words * sizeof *ctx->cand);
    for (size_t i = from; i < r->nrules; i++)
        if (r->rules[i].always)
            ctx->cand[i / 64] |= 1ULL << (i % 64);
    for (size_t li = 0; li < r->nlens && r->lens[li] <= namelen; li++) {
        size_t l = r->lens[li];
        ientry_t key = {.prefix = (char *)name, .len = l};
        /* the first entry equal to name[0..l) */
        size_t lo = 0, hi = r->nindex;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (s_ientry_cmp(&r->index[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; lo < r->nindex && s_ientry_cmp(&r->index[lo], &key) == 0; lo++)
            if (r->index[lo].rule >= from)
                ctx->cand[r->index[lo].rule / 64] |=
                    1ULL << (r->index[lo].rule % 64);
    }
}

/* ---- compiling ----------------------------------------------------------- */

static int s_ring_kind(const config_cluster_t *c, ring_kind_t *k)
{
    switch (c->type) {
    case CLUSTER_ANY_OF: *k = RING_ANY_OF; return 1;
    case CLUSTER_FAILOVER: *k = RING_FAILOVER; return 1;
    case CLUSTER_CARBON_CH:
        *k = c->graphite ? RING_CARBON_CH_GRAPHITE : RING_CARBON_CH;
        return 1;
    case CLUSTER_FNV1A_CH: *k = RING_FNV1A_CH; return 1;
    case CLUSTER_JUMP_FNV1A_CH: *k = RING_JUMP_FNV1A_CH; return 1;
    default: return 0;
    }
}

static int s_cluster(rcluster_t *rc, const config_cluster_t *c, char *err,
                     size_t errlen)
{
    ring_kind_t kind;
    rc->replication = c->replication > 0 ? (size_t)c->replication : 1;
    if (!s_ring_kind(c, &kind))
        return 0;
    if (rc->n > RING_MAX_MEMBERS) {
        snprintf(err, errlen, "%s:%d: cluster '%s': more than %d members",
                 c->pos.file, c->pos.line, c->name, RING_MAX_MEMBERS);
        return -1;
    }
    ring_member_t *m = calloc(rc->n ? rc->n : 1, sizeof *m);
    if (m == NULL)
        goto nomem;
    for (size_t i = 0; i < rc->n; i++) {
        m[i].host = rc->members[i].host;
        m[i].port = (uint16_t)rc->members[i].port;
        m[i].instance = rc->members[i].instance;
    }
    rc->ring = ring_new(kind, m, rc->n, c->graphite ? RING_DIVERSE_HOSTS : 0);
    free(m);
    if (rc->ring == NULL)
        goto nomem;
    return 0;
nomem:
    snprintf(err, errlen, "%s:%d: cluster '%s': cannot build its placement",
             c->pos.file, c->pos.line, c->name);
    return -1;
}

static size_t s_cluster_index(const router_t *r, const char *name)
{
    for (size_t i = 0; i < r->nclusters; i++)
        if (strcmp(r->clusters[i].cluster->name, name) == 0)
            return i;
    return SIZE_MAX;
}

/* s_regcomp: compile expr with ere_compile (matching is then linear in
 * the name); 0, or -1 with "FILE:LINE: bad expression ..." in err. */
static int s_regcomp(regex_t *re, const char *expr, int flags,
                     const config_pos_t *pos, char *err, size_t errlen)
{
    char msg[256];

    if (ere_compile(re, expr, flags, msg, sizeof msg) == 0)
        return 0;
    snprintf(err, errlen, "%s:%d: bad expression '%s': %s", pos->file,
             pos->line, expr, msg);
    return -1;
}

static int s_rule(router_t *r, rrule_t *rr, const config_rule_t *rule,
                  char *err, size_t errlen)
{
    rr->rule = rule;
    if (rule->critical && !r->has_buffer) {
        snprintf(err, errlen,
                 "%s:%d: 'critical' needs a 'buffer redis ...' statement "
                 "(where critical datapoints are kept)",
                 rule->pos.file, rule->pos.line);
        return -1;
    }
    rr->captures = rule->kind == RULE_REWRITE || rule->route_using != NULL ||
                   rule->kind == RULE_AGGREGATE;
    if (!rule->match_all && rule->nexprs > 0) {
        rr->re = calloc(rule->nexprs, sizeof *rr->re);
        if (rr->re == NULL)
            goto nomem;
        for (size_t i = 0; i < rule->nexprs; i++) {
            if (s_regcomp(&rr->re[i], rule->exprs[i],
                          rr->captures ? 0 : REG_NOSUB, &rule->pos, err,
                          errlen) != 0)
                return -1;
            rr->nre++;
        }
    }
    if (rule->kind == RULE_REWRITE)
        return s_tmpl_compile(&rr->into, rule->replacement, err, errlen,
                              &rule->pos);
    if (rule->kind == RULE_AGGREGATE) {
        const config_aggr_t *a = rule->aggr;
        rr->writes =
            calloc(a->ncomputes ? a->ncomputes : 1, sizeof *rr->writes);
        if (rr->writes == NULL)
            goto nomem;
        for (size_t i = 0; i < a->ncomputes; i++)
            if (s_tmpl_compile(&rr->writes[i], a->computes[i].write_to, err,
                               errlen, &rule->pos) != 0)
                return -1;
        rr->aggr_id = (uint32_t)r->naggrs;
        r->aggrs[r->naggrs++] = rule;
    }
    if (rule->validate) {
        if (s_regcomp(&rr->validate, rule->validate, REG_NOSUB, &rule->pos, err,
                      errlen) != 0)
            return -1;
        rr->has_validate = 1;
    }
    if (rule->route_using && s_tmpl_compile(&rr->using, rule->route_using, err,
                                            errlen, &rule->pos) != 0)
        return -1;
    rr->targets = calloc(rule->ndests ? rule->ndests : 1, sizeof *rr->targets);
    if (rr->targets == NULL)
        goto nomem;
    rr->stop = rule->stop;
    for (size_t i = 0; i < rule->ndests; i++) {
        if (strcmp(rule->dests[i], "blackhole") == 0) {
            rr->targets[rr->ntargets++] = SIZE_MAX;
            rr->stop =
                1; /* the blackhole stops, as it does in carbon-c-relay */
            continue;
        }
        size_t ci = s_cluster_index(r, rule->dests[i]);
        if (ci == SIZE_MAX) {
            snprintf(err, errlen, "%s:%d: unknown cluster '%s'", rule->pos.file,
                     rule->pos.line, rule->dests[i]);
            return -1;
        }
        rr->targets[rr->ntargets++] = ci;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

router_t *router_new(const config_t *cfg, char *err, size_t errlen)
{
    router_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        goto nomem;
    /* statements of later versions: refused, never ignored */
    r->cfg = cfg;
    r->has_buffer = cfg->buffer.target != NULL;
    r->all_critical = r->has_buffer && cfg->buffer.all_critical;
    r->use_index = true;
    r->clusters =
        calloc(cfg->nclusters ? cfg->nclusters : 1, sizeof *r->clusters);
    r->rules = calloc(cfg->nrules ? cfg->nrules : 1, sizeof *r->rules);
    r->aggrs = calloc(cfg->nrules ? cfg->nrules : 1, sizeof *r->aggrs);
    if (r->clusters == NULL || r->rules == NULL || r->aggrs == NULL)
        goto nomem;
    size_t nd = 0;
    for (size_t i = 0; i < cfg->nclusters; i++) {
        const config_cluster_t *c = &cfg->clusters[i];
        rcluster_t *rc = &r->clusters[r->nclusters++];
        rc->cluster = c;
        rc->members = c->members;
        rc->n = (uint32_t)c->nmembers;
        if (c->useall && !c->resolved) { /* a caller's mistake */
            snprintf(err, errlen,
                     "%s:%d: cluster '%s' useall: not resolved "
                     "(useall_expand before router_new)",
                     c->pos.file, c->pos.line, c->name);
            goto err;
        }
        if (s_cluster(rc, c, err, errlen) != 0)
            goto err;
        rc->first = (uint32_t)nd;
        nd += rc->n;
    }
    if (nd > ROUTER_MAX_DESTS) {
        snprintf(err, errlen, "%s: %zu destinations; at most %d are supported",
                 cfg->nfiles ? cfg->files[0] : "config", nd, ROUTER_MAX_DESTS);
        goto err;
    }
    r->dests = calloc(nd ? nd : 1, sizeof *r->dests);
    if (r->dests == NULL)
        goto nomem;
    for (size_t i = 0; i < r->nclusters; i++) {
        const rcluster_t *rc = &r->clusters[i];
        const config_cluster_t *c = rc->cluster;
        for (size_t m = 0; m < rc->n; m++) {
            router_dest_t *d = &r->dests[r->ndests++];
            d->cluster = c;
            d->member = &rc->members[m];
            if (c->type == CLUSTER_FILE || c->type == CLUSTER_FILE_IP)
                snprintf(d->addr, sizeof d->addr, "%s", d->member->host);
            else
                net_addr_str(d->addr, sizeof d->addr, d->member->host,
                             d->member->port);
            stats_metric_part(d->key, sizeof d->key, d->addr);
        }
    }
    for (size_t i = 0; i < cfg->nrules; i++) {
        r->nrules = i + 1;
        if (s_rule(r, &r->rules[i], &cfg->rules[i], err, errlen) != 0)
            goto err;
    }
    if (s_index_build(r) != 0)
        goto nomem;
    return r;
nomem:
    snprintf(err, errlen, "out of memory");
err:
    router_destroy(&r);
    return NULL;
}

void router_destroy(router_t **pr)
{
    if (pr == NULL || *pr == NULL)
        return;
    router_t *r = *pr;
    for (size_t i = 0; i < r->nrules; i++) {
        rrule_t *rr = &r->rules[i];
        for (size_t j = 0; j < rr->nre; j++)
            tre_regfree(&rr->re[j]);
        if (rr->has_validate)
            tre_regfree(&rr->validate);
        free(rr->re);
        free(rr->targets);
        free(rr->into.p);
        free(rr->using.p);
        for (size_t j = 0; rr->writes && j < rr->rule->aggr->ncomputes; j++)
            free(rr->writes[j].p);
        free(rr->writes);
    }
    free(r->aggrs);
    for (size_t i = 0; i < r->nclusters; i++) {
        rcluster_t *rc = &r->clusters[i];
        ring_destroy(&rc->ring);
    }
    for (size_t i = 0; i < r->nindex; i++)
        free(r->index[i].prefix);
    free(r->index);
    free(r->lens);
    free(r->rules);
    free(r->clusters);
    free(r->dests);
    free(r);
    *pr = NULL;
}

/* Grow the context's buffers to at least n bytes each. */
static int s_ctx_reserve(router_ctx_t *c, size_t n)
{
    if (n <= c->cap)
        return 0;
    size_t cap = c->cap ? c->cap : 1024;
    while (cap < n)
        cap *= 2;
    char *b[4] = {c->name[0], c->name[1], c->key, c->data};
    for (int i = 0; i < 4; i++) {
        char *p = realloc(b[i], cap);
        if (p == NULL)
            return -1;
        b[i] = p;
        switch (i) {
        case 0: c->name[0] = p; break;
        case 1: c->name[1] = p; break;
        case 2: c->key = p; break;
        default: c->data = p; break;
        }
    }
    c->cap = cap;
    return 0;
}

router_ctx_t *router_ctx_new(void)
{
    router_ctx_t *c = calloc(1, sizeof *c);
    if (c == NULL || s_ctx_reserve(c, 4096) != 0 ||
        !(c->outname = malloc(NAME_MAX_LEN + 1))) {
        router_ctx_destroy(&c);
        return NULL;
    }
    return c;
}

void router_ctx_destroy(router_ctx_t **pc)
{
    if (pc == NULL || *pc == NULL)
        return;
    free((*pc)->name[0]);
    free((*pc)->name[1]);
    free((*pc)->key);
    free((*pc)->data);
    free((*pc)->cand);
    free((*pc)->outname);
    free(*pc);
    *pc = NULL;
}

size_t router_ndests(const router_t *r)
{
    return r->ndests;
}

const router_dest_t *router_dest(const router_t *r, size_t id)
{
    return id < r->ndests ? &r->dests[id] : NULL;
}

void router_set_index(router_t *r, bool on)
{
    r->use_index = on;
}

/* ---- routing ------------------------------------------------------------- */

/* Does rule rr match name?  m gets the groups of the matching expression
 * when the rule was compiled with them. */
static int s_matches(const rrule_t *rr, const char *name, size_t namelen,
                     regmatch_t *m)
{
    if (rr->rule->match_all || rr->nre == 0) {
        if (m) {
            for (int i = 0; i < NGROUPS; i++)
                m[i].rm_so = m[i].rm_eo = -1;
            m[0].rm_so = 0;
            m[0].rm_eo = (regoff_t)namelen;
        }
        return 1;
    }
    /* name is NUL-terminated (router_route keeps it so) */
    for (size_t i = 0; i < rr->nre; i++) {
        regmatch_t local[1];
        if (rr->captures) {
            if (tre_regexec(&rr->re[i], name, NGROUPS, m, 0) == 0)
                return 1;
        } else if (tre_regexec(&rr->re[i], name, 1, local, 0) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Send name to the members of cluster ci that key places it on. */
static size_t s_emit(const router_t *r, router_ctx_t *ctx, size_t ci,
                     const char *name, size_t namelen, const char *key,
                     size_t keylen, const bool *alive, router_emit_fn *emit,
                     void *arg, const config_rule_t *rule,
                     router_trace_fn *trace, void *targ)
{
    const rcluster_t *rc = &r->clusters[ci];
    int critical = router_critical(r, rule);
    if (trace)
        trace(targ, TRACE_CLUSTER, rule, rc->cluster, NULL, key, keylen);
    size_t n;
    const size_t *idx = NULL;
    if (rc->ring == NULL) {
        n = rc->n; /* forward and file: every member */
    } else {
        ring_kind_t k = ring_kind(rc->ring);
        const bool *live = NULL;
        /* any_of, failover, and hash clusters that say `dynamic`, move a
         * dead member's share to the live members */
        if (alive &&
            (k == RING_ANY_OF || k == RING_FAILOVER || rc->cluster->dynamic))
            live = alive + rc->first;
        n = ring_lookup(rc->ring, key, keylen, rc->replication, live, ctx->out,
                        RING_MAX_MEMBERS);
        if (n == 0 && live) /* nobody alive: queue where it belongs */
            n = ring_lookup(rc->ring, key, keylen, rc->replication, NULL,
                            ctx->out, RING_MAX_MEMBERS);
        idx = ctx->out;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t id = rc->first + (uint32_t)(idx ? idx[i] : i);
        if (trace)
            trace(targ, TRACE_DEST, rule, rc->cluster, &r->dests[id], NULL, 0);
        if (emit)
            emit(arg, id, name, namelen, critical);
    }
    return n;
}

static size_t s_keylen(const char *k, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if (k[i] == ' ' || k[i] == ';')
            return i;
    return l;
}

int router_route(const router_t *r, router_ctx_t *ctx, const char *line,
                 size_t len, size_t namelen, const bool *alive,
                 router_emit_fn *emit, void *arg, router_trace_fn *trace,
                 void *targ)
{
    int h = 0, matched = 0, turn = 1;
    size_t sent = 0;
    /* tre_regexec wants NUL-terminated text: the name and the data are copied
     */
    if (s_ctx_reserve(ctx, len + 1) != 0)
        return ROUTE_NOMATCH;
    char *name = ctx->name[0];
    size_t nlen = namelen;
    memcpy(name, line, nlen);
    name[nlen] = '\0';
    int indexed = r->use_index && r->nindex > 0;
    if (indexed) {
        size_t words = (r->nrules + 63) / 64;
        if (ctx->ncand < words) {
            uint64_t *c = realloc(ctx->cand, words * sizeof *c);
            if (c == NULL)
                indexed = 0;
            else {
                ctx->cand = c;
                ctx->ncand = words;
            }
        }
        if (indexed)
            s_candidates(r, ctx, 0, name, nlen);
    }
    /* the data after the name ("value timestamp"), for validate */
    const char *sp = memchr(line, ' ', len);
    char *data = NULL;
    size_t datalen = 0;
    if (sp) {
        datalen = (size_t)(line + len - (sp + 1));
        if (datalen && sp[datalen] == '\n')
            datalen--;
        data = ctx->data;
        memcpy(data, sp + 1, datalen);
        data[datalen] = '\0';
    }
    regmatch_t m[NGROUPS];
    for (size_t i = 0; i < r->nrules; i++) {
        if (indexed && !(ctx->cand[i / 64] & (1ULL << (i % 64))))
            continue;
        const rrule_t *rr = &r->rules[i];
        if (!s_matches(rr, name, nlen, m))
            continue;
        if (rr->rule->kind == RULE_REWRITE) {
            size_t pre = (size_t)m[0].rm_so, post = (size_t)m[0].rm_eo;
            size_t tail = nlen - post;
            if (s_ctx_reserve(ctx, pre + tail + NAME_MAX_LEN + 1) != 0)
                continue;
            /* the buffers may have moved */
            name = ctx->name[turn ^ 1];
            data = sp ? ctx->data : NULL;
            char *out = ctx->name[turn];
            long k = s_tmpl_expand(&rr->into, name, m, out + pre, NAME_MAX_LEN);
            if (k < 0)
                continue; /* would not fit: the name stays */
            memcpy(out, name, pre);
            memcpy(out + pre + k, name + post, tail);
            nlen = pre + (size_t)k + tail;
            out[nlen] = '\0';
            name = out;
            turn ^= 1;
            if (trace)
                trace(targ, TRACE_REWRITE, rr->rule, NULL, NULL, name, nlen);
            if (indexed)
                s_candidates(r, ctx, i + 1, name, nlen);
            continue;
        }
        if (rr->rule->kind == RULE_AGGREGATE) {
            /* each compute takes the datapoint under the name its
             * template makes; the outputs go where the rule says later */
            matched = 1;
            h |= ROUTE_AGGREGATED;
            if (trace)
                trace(targ, TRACE_AGGREGATE, rr->rule, NULL, NULL, name, nlen);
            const config_aggr_t *a = rr->rule->aggr;
            for (size_t c = 0; c < a->ncomputes; c++) {
                long k = s_tmpl_expand(&rr->writes[c], name, m, ctx->outname,
                                       NAME_MAX_LEN);
                if (k <= 0)
                    continue; /* empty or too long: nothing to write to */
                ctx->outname[k] = '\0';
                if (trace)
                    trace(targ, TRACE_COMPUTE, rr->rule, NULL, NULL,
                          ctx->outname, (size_t)k);
                if (ctx->aggr)
                    ctx->aggr(ctx->aggr_arg, rr->aggr_id, (uint32_t)c,
                              ctx->outname, (size_t)k);
            }
            if (rr->stop) {
                if (trace)
                    trace(targ, TRACE_STOP, rr->rule, NULL, NULL, NULL, 0);
                break;
            }
            continue;
        }
        if (trace)
            trace(targ, TRACE_RULE, rr->rule, NULL, NULL, name, nlen);
        if (rr->has_validate) {
            regmatch_t vm[1];
            if (data == NULL ||
                tre_regexec(&rr->validate, data, 1, vm, 0) != 0) {
                /* as carbon-c-relay: the rule sends nothing; a rule that
                 * stops (or has no destinations: a global validation)
                 * ends the evaluation, so the metric is dropped */
                h |= ROUTE_INVALID;
                if (trace)
                    trace(targ, TRACE_VALIDATE, rr->rule, NULL, NULL, data,
                          datalen);
                if (rr->rule->validate_action == VALIDATE_LOG) {
                    /* the shell logs it (router_ctx_invalid): kept here
                     * by value, as later rewrites reuse the buffers */
                    router_invalid_t *iv = &ctx->invalid;
                    iv->rule = rr->rule;
                    iv->namelen =
                        nlen < sizeof iv->name - 1 ? nlen : sizeof iv->name - 1;
                    memcpy(iv->name, name, iv->namelen);
                    iv->name[iv->namelen] = '\0';
                    iv->datalen = datalen < sizeof iv->data - 1
                                      ? datalen
                                      : sizeof iv->data - 1;
                    memcpy(iv->data, data ? data : "", data ? iv->datalen : 0);
                    if (data == NULL)
                        iv->datalen = 0;
                    iv->data[iv->datalen] = '\0';
                    h |= ROUTE_INVALID_LOG;
                }
                if (rr->stop || rr->ntargets == 0) {
                    if (trace)
                        trace(targ, TRACE_STOP, rr->rule, NULL, NULL, NULL, 0);
                    break;
                }
                continue;
            }
        }
        matched = 1;
        const char *key = name;
        size_t keylen = nlen;
        if (rr->rule->route_using) {
            long k = s_tmpl_expand(&rr->using, name, m, ctx->key, ctx->cap - 1);
            if (k >= 0) {
                key = ctx->key;
                keylen = s_keylen(key, (size_t)k);
            }
        }
        for (size_t t = 0; t < rr->ntargets; t++) {
            if (rr->targets[t] == SIZE_MAX) {
                h |= ROUTE_BLACKHOLE;
                if (trace)
                    trace(targ, TRACE_BLACKHOLE, rr->rule, NULL, NULL, NULL, 0);
                continue;
            }
            sent += s_emit(r, ctx, rr->targets[t], name, nlen, key, keylen,
                           alive, emit, arg, rr->rule, trace, targ);
        }
        if (rr->stop) {
            if (trace)
                trace(targ, TRACE_STOP, rr->rule, NULL, NULL, NULL, 0);
            break;
        }
    }
    if (!matched && !(h & ROUTE_INVALID))
        h |= ROUTE_NOMATCH;
    if (sent > 0)
        h |= ROUTE_SENT;
    return h;
}

size_t router_to_clusters(const router_t *r, router_ctx_t *ctx,
                          char *const *names, size_t n, const char *name,
                          size_t namelen, const bool *alive,
                          router_emit_fn *emit, void *arg)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ci = s_cluster_index(r, names[i]);
        if (ci != SIZE_MAX)
            k += s_emit(r, ctx, ci, name, namelen, name, namelen, alive, emit,
                        arg, NULL, NULL, NULL);
    }
    return k;
}

const config_t *router_config(const router_t *r)
{
    return r->cfg;
}

bool router_critical(const router_t *r, const config_rule_t *rule)
{
    return r->all_critical || (rule && rule->critical);
}

bool router_has_critical(const router_t *r)
{
    if (r->all_critical)
        return true;
    for (size_t i = 0; i < r->nrules; i++)
        if (r->rules[i].rule->critical)
            return true;
    return false;
}

void router_ctx_set_aggr(router_ctx_t *ctx, router_aggr_fn *fn, void *arg)
{
    ctx->aggr = fn;
    ctx->aggr_arg = arg;
}

size_t router_naggrs(const router_t *r)
{
    return r->naggrs;
}

const config_rule_t *router_aggr(const router_t *r, size_t id)
{
    return id < r->naggrs ? r->aggrs[id] : NULL;
}

const router_invalid_t *router_ctx_invalid(const router_ctx_t *ctx)
{
    return ctx->invalid.rule ? &ctx->invalid : NULL;
}
