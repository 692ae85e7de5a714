/*
 * selfmetrics.c -- see selfmetrics.h.
 */
#include "selfmetrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;          /* counter name or destination key (owned) */
    uint64_t a, b;       /* last value(s): counter value, or sent and dropped */
    uint64_t h, i;       /* a TLS destination's handshakes and failures */
    uint64_t c, e, f, g; /* a destination's buffered, replayed,
                            bufferDropped, redisErrors */
} prev_t;

struct selfmetrics {
    prev_t *prev; /* counters then destinations, as last rendered */
    size_t nprev;
};

selfmetrics_t *selfmetrics_new(void)
{
    return calloc(1, sizeof(selfmetrics_t));
}

static void s_clear(selfmetrics_t *sm)
{
    for (size_t i = 0; i < sm->nprev; i++)
        free(sm->prev[i].name);
    free(sm->prev);
    sm->prev = NULL;
    sm->nprev = 0;
}

void selfmetrics_destroy(selfmetrics_t **psm)
{
    if (psm == NULL || *psm == NULL)
        return;
    s_clear(*psm);
    free(*psm);
    *psm = NULL;
}

static const prev_t *s_find(const selfmetrics_t *sm, const char *name)
{
    for (size_t i = 0; i < sm->nprev; i++)
        if (strcmp(sm->prev[i].name, name) == 0)
            return &sm->prev[i];
    return NULL;
}

static uint64_t s_delta(uint64_t now, uint64_t before)
{
    return now >= before ? now - before : now;
}

char *selfmetrics_render(selfmetrics_t *sm, const char *prefix, long long now,
                         int reset, const selfmetrics_counter_t *c, size_t n,
                         const char *const *keys, const stats_dest_t *d,
                         size_t nd, size_t *len)
{
    size_t cap = (n + 11 * nd) * (strlen(prefix) + 400) + 1;
    size_t k = 0;
    char *buf = malloc(cap);
    prev_t *next = calloc(n + nd + 1, sizeof *next);
    if (buf == NULL || next == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = c[i].value;
        const prev_t *p = s_find(sm, c[i].name);
        if (reset && !c[i].gauge)
            v = s_delta(v, p ? p->a : 0);
        k += (size_t)snprintf(buf + k, cap - k, "%s.%s %llu %lld\n", prefix,
                              c[i].name, (unsigned long long)v, now);
        next[i].name = strdup(c[i].name);
        next[i].a = c[i].value;
    }
    for (size_t i = 0; i < nd; i++) {
        char key[400];
        snprintf(key, sizeof key, "destinations.%s", keys[i]);
        const prev_t *p = s_find(sm, key);
        uint64_t sent = d[i].sent, dropped = d[i].dropped;
        if (reset) {
            sent = s_delta(sent, p ? p->a : 0);
            dropped = s_delta(dropped, p ? p->b : 0);
        }
        k += (size_t)snprintf(buf + k, cap - k,
                              "%s.%s.sent %llu %lld\n"
                              "%s.%s.queued %llu %lld\n"
                              "%s.%s.dropped %llu %lld\n",
                              prefix, key, (unsigned long long)sent, now,
                              prefix, key, (unsigned long long)d[i].queued, now,
                              prefix, key, (unsigned long long)dropped, now);
        next[n + i].name = strdup(key);
        next[n + i].a = d[i].sent;
        next[n + i].b = d[i].dropped;
        if (d[i].tls_on) {
            uint64_t ok = d[i].tls_ok, bad = d[i].tls_failed;
            if (reset) {
                ok = s_delta(ok, p ? p->h : 0);
                bad = s_delta(bad, p ? p->i : 0);
            }
            k += (size_t)snprintf(buf + k, cap - k,
                                  "%s.%s.tlsHandshakes %llu %lld\n"
                                  "%s.%s.tlsFailures %llu %lld\n"
                                  "%s.%s.tlsVersion %u %lld\n",
                                  prefix, key, (unsigned long long)ok, now,
                                  prefix, key, (unsigned long long)bad, now,
                                  prefix, key, d[i].tls, now);
            next[n + i].h = d[i].tls_ok;
            next[n + i].i = d[i].tls_failed;
        }
        if (!d[i].buf.on)
            continue;
        /* its Redis buffer */
        const stats_dbuf_t *b = &d[i].buf;
        uint64_t bu = b->buffered, re = b->replayed, bd = b->dropped;
        uint64_t er = b->errors;
        if (reset) {
            bu = s_delta(bu, p ? p->c : 0);
            re = s_delta(re, p ? p->e : 0);
            bd = s_delta(bd, p ? p->f : 0);
            er = s_delta(er, p ? p->g : 0);
        }
        long long age = b->oldest_ms && now * 1000 > b->oldest_ms
                            ? (now * 1000 - b->oldest_ms) / 1000
                            : 0;
        k += (size_t)snprintf(
            buf + k, cap - k,
            "%s.%s.buffered %llu %lld\n%s.%s.replayed %llu %lld\n"
            "%s.%s.bufferDropped %llu %lld\n%s.%s.backlog %llu %lld\n"
            "%s.%s.backlogAge %lld %lld\n%s.%s.redisErrors %llu %lld\n",
            prefix, key, (unsigned long long)bu, now, prefix, key,
            (unsigned long long)re, now, prefix, key, (unsigned long long)bd,
            now, prefix, key, (unsigned long long)b->backlog, now, prefix, key,
            age, now, prefix, key, (unsigned long long)er, now);
        next[n + i].c = b->buffered;
        next[n + i].e = b->replayed;
        next[n + i].f = b->dropped;
        next[n + i].g = b->errors;
    }
    for (size_t i = 0; i < n + nd; i++)
        if (next[i].name == NULL)
            goto nomem;
    s_clear(sm);
    sm->prev = next;
    sm->nprev = n + nd;
    *len = k;
    return buf;
nomem:
    if (next)
        for (size_t i = 0; i < n + nd; i++)
            free(next[i].name);
    free(next);
    free(buf);
    return NULL;
}
