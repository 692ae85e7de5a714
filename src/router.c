/*
 * router.c -- see router.h.
 */
#include "router.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "stats.h"

typedef struct {
    const config_cluster_t *cluster;  /* borrowed */
    uint32_t first;                   /* id of its first destination */
    uint32_t n;                       /* member count */
} rcluster_t;

typedef struct {
    const config_rule_t *rule;  /* borrowed */
    regex_t *re;                /* compiled expressions (nexprs) */
    size_t nre;
    size_t *targets;            /* indexes into clusters, or SIZE_MAX for blackhole */
    size_t ntargets;
} rrule_t;

struct router {
    router_dest_t *dests;  /* ndests */
    size_t ndests;
    rcluster_t *clusters;  /* nclusters, config order */
    size_t nclusters;
    rrule_t *rules;        /* nrules, config order */
    size_t nrules;
};

static int s_unsupported(char *err, size_t errlen, const config_pos_t *pos,
                         const char *what)
{
    snprintf(err, errlen, "%s:%d: %s is not supported by orchester yet",
             pos->file, pos->line, what);
    return -1;
}

static int s_check_cluster(const config_cluster_t *c, char *err,
                           size_t errlen)
{
    switch (c->type) {
    case CLUSTER_FORWARD:
    case CLUSTER_FILE:
    case CLUSTER_FILE_IP:
        break;
    case CLUSTER_ANY_OF:
        return s_unsupported(err, errlen, &c->pos, "cluster type 'any_of'");
    case CLUSTER_FAILOVER:
        return s_unsupported(err, errlen, &c->pos, "cluster type 'failover'");
    case CLUSTER_CARBON_CH:
        return s_unsupported(err, errlen, &c->pos, "cluster type 'carbon_ch'");
    case CLUSTER_FNV1A_CH:
        return s_unsupported(err, errlen, &c->pos, "cluster type 'fnv1a_ch'");
    case CLUSTER_JUMP_FNV1A_CH:
        return s_unsupported(err, errlen, &c->pos,
                             "cluster type 'jump_fnv1a_ch'");
    }
    for (size_t i = 0; i < c->nmembers; i++) {
        const config_member_t *m = &c->members[i];
        if (m->proto == PROTO_UDP)
            return s_unsupported(err, errlen, &m->pos, "'proto udp' output");
    }
    return 0;
}

static size_t s_cluster_index(const router_t *r, const char *name)
{
    for (size_t i = 0; i < r->nclusters; i++)
        if (strcmp(r->clusters[i].cluster->name, name) == 0)
            return i;
    return SIZE_MAX;
}

static int s_compile_rule(router_t *r, rrule_t *rr, const config_rule_t *rule,
                          char *err, size_t errlen)
{
    rr->rule = rule;
    if (rule->kind == RULE_REWRITE)
        return s_unsupported(err, errlen, &rule->pos, "'rewrite'");
    if (rule->validate != NULL)
        return s_unsupported(err, errlen, &rule->pos, "'validate'");
    if (rule->route_using != NULL)
        return s_unsupported(err, errlen, &rule->pos, "'route using'");
    if (rule->critical)
        return s_unsupported(err, errlen, &rule->pos,
                             "'critical' (the Redis buffer)");
    if (!rule->match_all) {
        rr->re = calloc(rule->nexprs, sizeof *rr->re);
        if (rr->re == NULL)
            goto nomem;
        for (size_t i = 0; i < rule->nexprs; i++) {
            int rc = regcomp(&rr->re[i], rule->exprs[i],
                             REG_EXTENDED | REG_NOSUB);
            if (rc != 0) {
                char msg[200];
                regerror(rc, &rr->re[i], msg, sizeof msg);
                snprintf(err, errlen, "%s:%d: bad expression '%s': %s",
                         rule->pos.file, rule->pos.line, rule->exprs[i], msg);
                return -1;
            }
            rr->nre++;
        }
    }
    rr->targets = calloc(rule->ndests ? rule->ndests : 1, sizeof *rr->targets);
    if (rr->targets == NULL)
        goto nomem;
    for (size_t i = 0; i < rule->ndests; i++) {
        if (strcmp(rule->dests[i], "blackhole") == 0) {
            rr->targets[rr->ntargets++] = SIZE_MAX;
            continue;
        }
        size_t ci = s_cluster_index(r, rule->dests[i]);
        if (ci == SIZE_MAX) {
            snprintf(err, errlen, "%s:%d: unknown cluster '%s'",
                     rule->pos.file, rule->pos.line, rule->dests[i]);
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
    size_t nd = 0;
    for (size_t i = 0; i < cfg->nclusters; i++) {
        if (s_check_cluster(&cfg->clusters[i], err, errlen) != 0)
            goto err;
        nd += cfg->clusters[i].nmembers;
    }
    r->dests = calloc(nd ? nd : 1, sizeof *r->dests);
    r->clusters = calloc(cfg->nclusters ? cfg->nclusters : 1,
                         sizeof *r->clusters);
    r->rules = calloc(cfg->nrules ? cfg->nrules : 1, sizeof *r->rules);
    if (r->dests == NULL || r->clusters == NULL || r->rules == NULL)
        goto nomem;
    for (size_t i = 0; i < cfg->nclusters; i++) {
        const config_cluster_t *c = &cfg->clusters[i];
        rcluster_t *rc = &r->clusters[r->nclusters++];
        rc->cluster = c;
        rc->first = (uint32_t)r->ndests;
        rc->n = (uint32_t)c->nmembers;
        for (size_t m = 0; m < c->nmembers; m++) {
            router_dest_t *d = &r->dests[r->ndests++];
            d->cluster = c;
            d->member = &c->members[m];
            if (c->type == CLUSTER_FILE || c->type == CLUSTER_FILE_IP)
                snprintf(d->addr, sizeof d->addr, "%s", d->member->host);
            else
                net_addr_str(d->addr, sizeof d->addr, d->member->host,
                             d->member->port);
            stats_metric_part(d->key, sizeof d->key, d->addr);
        }
    }
    for (size_t i = 0; i < cfg->nrules; i++) {
        if (s_compile_rule(r, &r->rules[i], &cfg->rules[i], err, errlen) != 0) {
            r->nrules = i + 1;
            goto err;
        }
        r->nrules = i + 1;
    }
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
        for (size_t j = 0; j < r->rules[i].nre; j++)
            regfree(&r->rules[i].re[j]);
        free(r->rules[i].re);
        free(r->rules[i].targets);
    }
    free(r->rules);
    free(r->clusters);
    free(r->dests);
    free(r);
    *pr = NULL;
}

size_t router_ndests(const router_t *r) { return r->ndests; }

const router_dest_t *router_dest(const router_t *r, size_t id)
{
    return id < r->ndests ? &r->dests[id] : NULL;
}

static int s_matches(const rrule_t *rr, const char *name, size_t namelen)
{
    if (rr->rule->match_all)
        return 1;
    for (size_t i = 0; i < rr->nre; i++) {
        regmatch_t m[1];
        m[0].rm_so = 0;
        m[0].rm_eo = (regoff_t)namelen;
        if (regexec(&rr->re[i], name, 1, m, REG_STARTEND) == 0)
            return 1;
    }
    return 0;
}

/* Append every member of cluster ci (forward and file send to all). */
static size_t s_emit(const router_t *r, size_t ci, uint32_t *out,
                     size_t outcap, size_t k, const config_rule_t *rule,
                     router_trace_fn *trace, void *arg)
{
    const rcluster_t *rc = &r->clusters[ci];
    if (trace)
        trace(arg, TRACE_CLUSTER, rule, rc->cluster, NULL);
    for (uint32_t m = 0; m < rc->n; m++) {
        if (trace)
            trace(arg, TRACE_DEST, rule, rc->cluster, &r->dests[rc->first + m]);
        if (k < outcap)
            out[k++] = rc->first + m;
    }
    return k;
}

size_t router_route(const router_t *r, const char *name, size_t namelen,
                    uint32_t *out, size_t outcap, int *how,
                    router_trace_fn *trace, void *arg)
{
    size_t k = 0;
    int h = 0;
    int matched = 0;
    for (size_t i = 0; i < r->nrules; i++) {
        const rrule_t *rr = &r->rules[i];
        if (!s_matches(rr, name, namelen))
            continue;
        matched = 1;
        if (trace)
            trace(arg, TRACE_RULE, rr->rule, NULL, NULL);
        for (size_t t = 0; t < rr->ntargets; t++) {
            if (rr->targets[t] == SIZE_MAX) {
                h |= ROUTE_BLACKHOLE;
                if (trace)
                    trace(arg, TRACE_BLACKHOLE, rr->rule, NULL, NULL);
                continue;
            }
            k = s_emit(r, rr->targets[t], out, outcap, k, rr->rule, trace, arg);
        }
        if (rr->rule->stop) {
            if (trace)
                trace(arg, TRACE_STOP, rr->rule, NULL, NULL);
            break;
        }
    }
    if (!matched)
        h |= ROUTE_NOMATCH;
    if (k > 0)
        h |= ROUTE_SENT;
    if (how)
        *how = h;
    return k;
}

size_t router_to_clusters(const router_t *r, char *const *names, size_t n,
                          uint32_t *out, size_t outcap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ci = s_cluster_index(r, names[i]);
        if (ci != SIZE_MAX)
            k = s_emit(r, ci, out, outcap, k, NULL, NULL, NULL);
    }
    return k;
}
