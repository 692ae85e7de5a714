/*
 * config_dup.c -- a deep copy of a configuration tree (config.h).
 *
 * Pure core.  The hub keeps the tree its config file gave, as read, and
 * builds each routing generation from a copy of it with the runtime route
 * changes applied over it (src/routes.c): a route change then does not read
 * the file again, and a change of the file is taken only by a reload.
 *
 * Positions (config_pos_t.file) borrow from the tree's files array, so the
 * copy's positions are pointed at the copy's own files.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdlib.h>
#include <string.h>

#include "config.h"

typedef struct {
    const config_t *from;
    config_t *to;
    int failed; /* out of memory somewhere */
} dup_t;

static char *s_str(dup_t *d, const char *s)
{
    if (s == NULL)
        return NULL;
    char *c = strdup(s);
    if (c == NULL)
        d->failed = 1;
    return c;
}

static char **s_strv(dup_t *d, char *const *v, size_t n)
{
    if (v == NULL || n == 0)
        return NULL;
    char **c = calloc(n, sizeof *c);
    if (c == NULL) {
        d->failed = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        c[i] = s_str(d, v[i]);
    return c;
}

/* The same file in the copy. */
static config_pos_t s_pos(const dup_t *d, config_pos_t p)
{
    for (size_t i = 0; p.file && i < d->from->nfiles; i++)
        if (d->from->files[i] == p.file && d->to->files)
            return (config_pos_t){d->to->files[i], p.line};
    return (config_pos_t){NULL, p.line};
}

/* t: the scalars of f copied, each string replaced by a copy of its own. */
static void s_transport(dup_t *d, config_transport_t *t,
                        const config_transport_t *f)
{
    *t = *f;
    t->pem = s_str(d, f->pem);
    t->cert = s_str(d, f->cert);
    t->key = s_str(d, f->key);
    t->ca = s_str(d, f->ca);
    t->name = s_str(d, f->name);
    t->ciphers = s_str(d, f->ciphers);
    t->suites = s_str(d, f->suites);
}

static void *s_array(dup_t *d, const void *a, size_t n, size_t size)
{
    if (a == NULL || n == 0)
        return NULL;
    void *c = calloc(n, size);
    if (c == NULL)
        d->failed = 1;
    else
        memcpy(c, a, n * size); /* the scalars; pointers are replaced */
    return c;
}

static void s_clusters(dup_t *d)
{
    const config_t *f = d->from;
    config_t *t = d->to;
    t->clusters = s_array(d, f->clusters, f->nclusters, sizeof *f->clusters);
    if (t->clusters == NULL) {
        t->nclusters = 0;
        return;
    }
    for (size_t i = 0; i < f->nclusters; i++) {
        const config_cluster_t *a = &f->clusters[i];
        config_cluster_t *b = &t->clusters[i];
        b->name = s_str(d, a->name);
        b->pos = s_pos(d, a->pos);
        b->members = s_array(d, a->members, a->nmembers, sizeof *a->members);
        if (b->members == NULL)
            b->nmembers = 0;
        for (size_t j = 0; j < b->nmembers; j++) {
            b->members[j].host = s_str(d, a->members[j].host);
            b->members[j].instance = s_str(d, a->members[j].instance);
            s_transport(d, &b->members[j].tr, &a->members[j].tr);
            b->members[j].pos = s_pos(d, a->members[j].pos);
        }
    }
}

static void s_rules(dup_t *d)
{
    const config_t *f = d->from;
    config_t *t = d->to;
    t->rules = s_array(d, f->rules, f->nrules, sizeof *f->rules);
    if (t->rules == NULL) {
        t->nrules = 0;
        return;
    }
    for (size_t i = 0; i < f->nrules; i++) {
        const config_rule_t *a = &f->rules[i];
        config_rule_t *b = &t->rules[i];
        b->exprs = s_strv(d, a->exprs, a->nexprs);
        b->nexprs = b->exprs ? a->nexprs : 0;
        b->dests = s_strv(d, a->dests, a->ndests);
        b->ndests = b->dests ? a->ndests : 0;
        b->validate = s_str(d, a->validate);
        b->route_using = s_str(d, a->route_using);
        b->replacement = s_str(d, a->replacement);
        b->aggr = NULL;
        if (a->aggr && (b->aggr = malloc(sizeof *b->aggr)) == NULL)
            d->failed = 1;
        if (b->aggr) {
            *b->aggr = *a->aggr;
            b->aggr->computes =
                s_array(d, a->aggr->computes, a->aggr->ncomputes,
                        sizeof *a->aggr->computes);
            if (b->aggr->computes == NULL)
                b->aggr->ncomputes = 0;
            for (size_t j = 0; j < b->aggr->ncomputes; j++)
                b->aggr->computes[j].write_to =
                    s_str(d, a->aggr->computes[j].write_to);
        }
        b->pos = s_pos(d, a->pos);
    }
}

config_t *config_dup(const config_t *cfg)
{
    if (cfg == NULL)
        return NULL;
    config_t *t = malloc(sizeof *t);
    if (t == NULL)
        return NULL;
    *t = *cfg; /* the scalars; every pointer is replaced below */
    dup_t d = {cfg, t, 0};
    t->files = s_strv(&d, cfg->files, cfg->nfiles);
    t->nfiles = t->files ? cfg->nfiles : 0;
    t->listens = s_array(&d, cfg->listens, cfg->nlistens, sizeof *t->listens);
    t->nlistens = t->listens ? cfg->nlistens : 0;
    for (size_t i = 0; i < t->nlistens; i++) {
        t->listens[i].host = s_str(&d, cfg->listens[i].host);
        t->listens[i].path = s_str(&d, cfg->listens[i].path);
        s_transport(&d, &t->listens[i].tr, &cfg->listens[i].tr);
        t->listens[i].pos = s_pos(&d, cfg->listens[i].pos);
    }
    s_clusters(&d);
    s_rules(&d);
    t->satellites_bind =
        s_strv(&d, cfg->satellites_bind, cfg->nsatellites_bind);
    t->nsatellites_bind = t->satellites_bind ? cfg->nsatellites_bind : 0;
    t->orchesters = s_strv(&d, cfg->orchesters, cfg->norchesters);
    t->norchesters = t->orchesters ? cfg->norchesters : 0;
    t->control = s_str(&d, cfg->control);
    t->stats.prefix = s_str(&d, cfg->stats.prefix);
    t->stats.dests = s_strv(&d, cfg->stats.dests, cfg->stats.ndests);
    t->stats.ndests = t->stats.dests ? cfg->stats.ndests : 0;
    t->stats.pos = s_pos(&d, cfg->stats.pos);
    t->stats.dests_pos = s_pos(&d, cfg->stats.dests_pos);
    t->buffer.target = s_str(&d, cfg->buffer.target);
    t->buffer.prefix = s_str(&d, cfg->buffer.prefix);
    t->buffer.pos = s_pos(&d, cfg->buffer.pos);
    t->curve.key = s_str(&d, cfg->curve.key);
    t->curve.allow = s_strv(&d, cfg->curve.allow, cfg->curve.nallow);
    t->curve.nallow = t->curve.allow ? cfg->curve.nallow : 0;
    t->curve.server = s_str(&d, cfg->curve.server);
    t->curve.pos = s_pos(&d, cfg->curve.pos);
    t->ha.publish = s_str(&d, cfg->ha.publish);
    t->ha.peer_publish = s_str(&d, cfg->ha.peer_publish);
    t->ha.peer_satellites = s_str(&d, cfg->ha.peer_satellites);
    t->ha.pos = s_pos(&d, cfg->ha.pos);
    if (d.failed) {
        config_destroy(&t);
        return NULL;
    }
    return t;
}
