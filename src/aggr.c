/*
 * aggr.c -- see aggr.h.  A series is one allocation: the series_t, its
 * ring of buckets, the value stores of those buckets (for the computes that
 * need the values) and its name.  Series are found through a chained hash
 * table, kept in creation order in a list, and ordered by expiry time in a
 * binary min-heap (expiry second, then creation number), which aggr_expire
 * pops from.
 */
#include "aggr.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HASH_MIN 1024 /* the hash table's first size (a power of 2) */
#define VALS_MIN 8    /* a value store's first capacity */

/* One bucket (the ring slot of a series). */
typedef struct {
    uint64_t cnt; /* values put in */
    double sum;   /* their sum, in the order they came */
    double min;   /* the smallest */
    double max;   /* the largest */
} bucket_t;

/* The values of one bucket, for the computes that need them. */
typedef struct {
    double *v;  /* cnt values, in the order they came (sorted at emission
                   for median and percentile) */
    size_t cap; /* room in v */
} vals_t;

/* One series: (rule, compute, name). */
typedef struct series {
    struct series *hnext; /* the next in its hash chain */
    struct series *prev;  /* the previous in creation order */
    struct series *next;  /* the next in creation order */
    uint64_t hash;        /* of (rule, compute, name) */
    uint64_t seq;         /* creation number: ties in the heap */
    int64_t start;        /* the start of the oldest bucket */
    int64_t expiry;       /* when the oldest bucket expires: aggr_expire
                             at now >= expiry handles it */
    size_t heap;          /* its index in the heap */
    uint32_t rule;        /* its rule */
    uint32_t compute;     /* its compute */
    uint32_t head;        /* the ring index of the oldest bucket */
    uint32_t nonempty;    /* buckets holding a value */
    uint32_t splay;       /* its expiry spread, in [0, interval) */
    uint32_t len;         /* the name's length */
    bucket_t *b;          /* the ring of buckets */
    vals_t *v;            /* their values, or NULL */
    char *name;           /* the name, NUL-terminated */
} series_t;

/* One rule. */
typedef struct {
    aggr_def_t def;    /* the definition (computes and key: ours) */
    uint32_t nbuckets; /* buckets per series */
    aggr_stats_t st;   /* its counters */
} rule_t;

struct aggr {
    aggr_opts_t o;     /* the bounds and options */
    rule_t *rules;     /* the rules */
    size_t nrules;     /* how many */
    series_t **ht;     /* the hash table's chains */
    size_t htsize;     /* its size (a power of 2, or 0) */
    series_t **heap;   /* the heap, by (expiry, seq) */
    size_t heapcap;    /* its room */
    series_t *first;   /* the oldest series */
    series_t *last;    /* the newest */
    size_t nseries;    /* series alive */
    size_t nbuckets;   /* bucket slots held */
    size_t nvalues;    /* value capacity held */
    uint64_t seq;      /* the next creation number */
    double *scratch;   /* the merge sort's scratch space */
    size_t scratchcap; /* its room */
};

/* ---- allocation --------------------------------------------------------- */

static void *s_std_alloc(void *arg, void *p, size_t n)
{
    (void)arg;
    if (n == 0) {
        free(p);
        return NULL;
    }
    return calloc(1, n);
}

static void *s_alloc(const aggr_t *a, size_t n)
{
    return a->o.alloc(a->o.alloc_arg, NULL, n);
}

static void s_free(const aggr_t *a, void *p)
{
    if (p != NULL)
        a->o.alloc(a->o.alloc_arg, p, 0);
}

/* ---- definitions -------------------------------------------------------- */

void aggr_opts_default(aggr_opts_t *o)
{
    *o = (aggr_opts_t){.max_series = 1000000,
                       .max_buckets = 8000000,
                       .max_values = 16000000,
                       .splay = 1,
                       .seed = 0,
                       .compat_sort = 0,
                       .alloc = NULL,
                       .alloc_arg = NULL};
}

/* Whether computes of type t need every value. */
static int s_needs_values(aggr_type_t t)
{
    return t == AGGR_MEDIAN || t == AGGR_PERCENTILE || t == AGGR_VARIANCE ||
           t == AGGR_STDDEV || t == AGGR_QUANTILE;
}

int aggr_def_check(const aggr_def_t *d, const char **err)
{
    const char *why = NULL;
    if (d->interval < 1)
        why = "interval must be > 0";
    else if (d->expire < 1)
        why = "expire must be > 0";
    else if (d->expire <= d->interval)
        why = "expire must be greater than interval";
    else if (d->interval > INT32_MAX || d->expire > INT32_MAX)
        why = "interval and expire must be at most 2147483647 seconds";
    else if (d->ts != AGGR_TS_START && d->ts != AGGR_TS_MIDDLE &&
             d->ts != AGGR_TS_END)
        why = "unknown timestamp position";
    else if (d->ncomputes < 1 || d->computes == NULL)
        why = "an aggregate needs at least one compute";
    else if (d->ncomputes > UINT32_MAX)
        why = "too many computes";
    for (size_t i = 0; why == NULL && i < d->ncomputes; i++) {
        const aggr_compute_t *c = &d->computes[i];
        if (c->type < AGGR_SUM || c->type > AGGR_QUANTILE)
            why = "unknown compute type";
        else if (c->type == AGGR_PERCENTILE &&
                 (c->percentile < 1 || c->percentile > 99))
            why = "percentile<x>: value x must be between 1 and 99";
        else if (c->type == AGGR_QUANTILE &&
                 (c->percentile < 1 || c->percentile > 999))
            why = "a quantile is 1 to 999 per mille";
    }
    if (err != NULL)
        *err = why;
    return why == NULL ? 0 : -1;
}

uint32_t aggr_buckets_per_series(const aggr_def_t *d)
{
    uint64_t n = ((uint64_t)d->expire + d->interval - 1) / d->interval + 2;
    return (uint32_t)n;
}

int aggr_def_equal(const aggr_def_t *a, const aggr_def_t *b)
{
    if (a->key == NULL || b->key == NULL || strcmp(a->key, b->key) != 0)
        return 0;
    if (a->interval != b->interval || a->expire != b->expire ||
        a->ts != b->ts || a->ncomputes != b->ncomputes)
        return 0;
    for (size_t i = 0; i < a->ncomputes; i++) {
        const aggr_compute_t *x = &a->computes[i], *y = &b->computes[i];
        if (x->type != y->type)
            return 0;
        if ((x->type == AGGR_PERCENTILE || x->type == AGGR_QUANTILE) &&
            x->percentile != y->percentile)
            return 0;
    }
    return 1;
}

/* ---- life --------------------------------------------------------------- */

static void s_series_free(aggr_t *a, series_t *s);

aggr_t *aggr_new(const aggr_def_t *defs, size_t ndefs, const aggr_opts_t *o,
                 const char **err)
{
    const char *why = NULL;
    for (size_t i = 0; i < ndefs; i++)
        if (aggr_def_check(&defs[i], &why) != 0)
            break;
    if (why == NULL && ndefs > UINT32_MAX)
        why = "too many aggregate rules";
    if (why != NULL) {
        if (err != NULL)
            *err = why;
        return NULL;
    }
    aggr_opts_t opts;
    if (o != NULL)
        opts = *o;
    else
        aggr_opts_default(&opts);
    if (opts.alloc == NULL)
        opts.alloc = s_std_alloc;

    aggr_t *a = opts.alloc(opts.alloc_arg, NULL, sizeof *a);
    if (a == NULL)
        goto err;
    a->o = opts;
    if (ndefs > 0) {
        a->rules = s_alloc(a, ndefs * sizeof *a->rules);
        if (a->rules == NULL)
            goto err;
    }
    for (size_t i = 0; i < ndefs; i++) {
        rule_t *r = &a->rules[a->nrules];
        r->def = defs[i];
        r->def.key = NULL;
        r->def.computes = NULL;
        r->nbuckets = aggr_buckets_per_series(&defs[i]);
        a->nrules++;
        aggr_compute_t *c = s_alloc(a, defs[i].ncomputes * sizeof *c);
        if (c == NULL)
            goto err;
        memcpy(c, defs[i].computes, defs[i].ncomputes * sizeof *c);
        r->def.computes = c;
        if (defs[i].key != NULL) {
            size_t n = strlen(defs[i].key) + 1;
            char *k = s_alloc(a, n);
            if (k == NULL)
                goto err;
            memcpy(k, defs[i].key, n);
            r->def.key = k;
        }
    }
    return a;
err:
    aggr_destroy(&a);
    if (err != NULL)
        *err = "out of memory";
    return NULL;
}

void aggr_destroy(aggr_t **ap)
{
    aggr_t *a = *ap;
    if (a == NULL)
        return;
    while (a->first != NULL)
        s_series_free(a, a->first);
    for (size_t i = 0; i < a->nrules; i++) {
        s_free(a, (void *)a->rules[i].def.computes);
        s_free(a, (void *)a->rules[i].def.key);
    }
    s_free(a, a->rules);
    s_free(a, a->ht);
    s_free(a, a->heap);
    s_free(a, a->scratch);
    a->o.alloc(a->o.alloc_arg, a, 0);
    *ap = NULL;
}

size_t aggr_rules(const aggr_t *a)
{
    return a->nrules;
}

/* ---- the hash table ----------------------------------------------------- */

/* FNV-1a (64 bits) of the name, then the rule and compute mixed in. */
static uint64_t s_hash(uint32_t rule, uint32_t compute, const char *name,
                       size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 1099511628211ULL;
    }
    h ^= ((uint64_t)rule << 32 | compute) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    return h;
}

static series_t *s_find(const aggr_t *a, uint64_t h, uint32_t rule,
                        uint32_t compute, const char *name, size_t len)
{
    if (a->htsize == 0)
        return NULL;
    for (series_t *s = a->ht[h & (a->htsize - 1)]; s != NULL; s = s->hnext)
        if (s->hash == h && s->rule == rule && s->compute == compute &&
            s->len == len && memcmp(s->name, name, len) == 0)
            return s;
    return NULL;
}

/* Grow the table to twice its size (or its first size) when it holds as
 * many series as chains.  A failure keeps the old table: chains get
 * longer, nothing is lost.  Returns -1 only when there is no table. */
static int s_ht_reserve(aggr_t *a)
{
    if (a->htsize != 0 && a->nseries < a->htsize)
        return 0;
    size_t n = a->htsize == 0 ? HASH_MIN : a->htsize * 2;
    if (n > SIZE_MAX / sizeof *a->ht)
        return a->htsize == 0 ? -1 : 0;
    series_t **t = s_alloc(a, n * sizeof *t);
    if (t == NULL)
        return a->htsize == 0 ? -1 : 0;
    for (size_t i = 0; i < a->htsize; i++) {
        series_t *s = a->ht[i];
        while (s != NULL) {
            series_t *nx = s->hnext;
            s->hnext = t[s->hash & (n - 1)];
            t[s->hash & (n - 1)] = s;
            s = nx;
        }
    }
    s_free(a, a->ht);
    a->ht = t;
    a->htsize = n;
    return 0;
}

static void s_ht_insert(aggr_t *a, series_t *s)
{
    series_t **head = &a->ht[s->hash & (a->htsize - 1)];
    s->hnext = *head;
    *head = s;
}

static void s_ht_remove(aggr_t *a, series_t *s)
{
    series_t **p = &a->ht[s->hash & (a->htsize - 1)];
    while (*p != s)
        p = &(*p)->hnext;
    *p = s->hnext;
    s->hnext = NULL;
}

/* ---- the heap ----------------------------------------------------------- */

/* Whether x expires before y. */
static int s_before(const series_t *x, const series_t *y)
{
    return x->expiry < y->expiry || (x->expiry == y->expiry && x->seq < y->seq);
}

static void s_heap_set(aggr_t *a, size_t i, series_t *s)
{
    a->heap[i] = s;
    s->heap = i;
}

static void s_sift_up(aggr_t *a, size_t i)
{
    series_t *s = a->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!s_before(s, a->heap[p]))
            break;
        s_heap_set(a, i, a->heap[p]);
        i = p;
    }
    s_heap_set(a, i, s);
}

static void s_sift_down(aggr_t *a, size_t i)
{
    size_t n = a->nseries;
    series_t *s = a->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && s_before(a->heap[c + 1], a->heap[c]))
            c++;
        if (!s_before(a->heap[c], s))
            break;
        s_heap_set(a, i, a->heap[c]);
        i = c;
    }
    s_heap_set(a, i, s);
}

/* Make room in the heap for one more series (doubling). */
static int s_heap_reserve(aggr_t *a)
{
    if (a->nseries < a->heapcap)
        return 0;
    size_t n = a->heapcap == 0 ? 64 : a->heapcap * 2;
    if (n > SIZE_MAX / sizeof *a->heap)
        return -1;
    series_t **h = s_alloc(a, n * sizeof *h);
    if (h == NULL)
        return -1;
    if (a->nseries > 0)
        memcpy(h, a->heap, a->nseries * sizeof *h);
    s_free(a, a->heap);
    a->heap = h;
    a->heapcap = n;
    return 0;
}

/* Remove the series at heap index i (one series fewer). */
static void s_heap_remove(aggr_t *a, size_t i)
{
    size_t lastpos = --a->nseries;
    if (i != lastpos) {
        s_heap_set(a, i, a->heap[lastpos]);
        if (i > 0 && s_before(a->heap[i], a->heap[(i - 1) / 2]))
            s_sift_up(a, i);
        else
            s_sift_down(a, i);
    }
}

/* ---- series ------------------------------------------------------------- */

/* floor(x / d) for d > 0. */
static int64_t s_floordiv(int64_t x, int64_t d)
{
    int64_t q = x / d;
    return (x % d != 0 && x < 0) ? q - 1 : q;
}

/* The splay of a series with hash h: [0, interval). */
static uint32_t s_splay(const aggr_t *a, uint64_t h, uint32_t interval)
{
    if (!a->o.splay)
        return 0;
    uint64_t x = h ^ a->o.seed;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 29;
    return (uint32_t)(x % interval);
}

/* Link a new (or moved) series s into a: hash, creation order, heap.  The
 * caller has reserved the heap and hash room and set hash and expiry. */
static void s_link(aggr_t *a, series_t *s)
{
    rule_t *r = &a->rules[s->rule];
    s->seq = a->seq++;
    s_ht_insert(a, s);
    s->prev = a->last;
    s->next = NULL;
    if (a->last != NULL)
        a->last->next = s;
    else
        a->first = s;
    a->last = s;
    a->heap[a->nseries] = s;
    s->heap = a->nseries;
    a->nseries++;
    s_sift_up(a, s->heap);
    a->nbuckets += r->nbuckets;
    r->st.series++;
    r->st.buckets += r->nbuckets;
}

/* The value capacity series s holds. */
static size_t s_series_values(const aggr_t *a, const series_t *s)
{
    size_t n = 0;
    if (s->v != NULL)
        for (uint32_t i = 0; i < a->rules[s->rule].nbuckets; i++)
            n += s->v[i].cap;
    return n;
}

/* Unlink s from a (hash, creation order, heap, counters), leaving it
 * allocated. */
static void s_unlink(aggr_t *a, series_t *s)
{
    rule_t *r = &a->rules[s->rule];
    size_t vals = s_series_values(a, s);
    s_ht_remove(a, s);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        a->first = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        a->last = s->prev;
    s->prev = s->next = NULL;
    s_heap_remove(a, s->heap);
    a->nbuckets -= r->nbuckets;
    a->nvalues -= vals;
    r->st.series--;
    r->st.buckets -= r->nbuckets;
    r->st.values -= vals;
}

static void s_series_free(aggr_t *a, series_t *s)
{
    uint32_t n = a->rules[s->rule].nbuckets;
    s_unlink(a, s);
    if (s->v != NULL)
        for (uint32_t i = 0; i < n; i++)
            s_free(a, s->v[i].v);
    s_free(a, s);
}

/* A new series of rule r, compute c, with its oldest bucket at start; not
 * linked.  NULL when out of memory. */
static series_t *s_series_new(aggr_t *a, uint32_t rule, uint32_t compute,
                              const char *name, size_t len, uint64_t h,
                              int64_t start)
{
    const rule_t *r = &a->rules[rule];
    int vals = s_needs_values(r->def.computes[compute].type);
    size_t n = r->nbuckets;
    if (n > (SIZE_MAX - sizeof(series_t) - len - 1) /
                (sizeof(bucket_t) + sizeof(vals_t)))
        return NULL;
    size_t size = sizeof(series_t) + n * sizeof(bucket_t) +
                  (vals ? n * sizeof(vals_t) : 0) + len + 1;
    series_t *s = s_alloc(a, size);
    if (s == NULL)
        return NULL;
    char *p = (char *)(s + 1);
    s->b = (bucket_t *)p;
    p += n * sizeof(bucket_t);
    if (vals) {
        s->v = (vals_t *)p;
        p += n * sizeof(vals_t);
    }
    s->name = p;
    memcpy(s->name, name, len);
    s->name[len] = '\0';
    s->len = (uint32_t)len;
    s->hash = h;
    s->rule = rule;
    s->compute = compute;
    s->start = start;
    s->splay = s_splay(a, h, r->def.interval);
    s->expiry = start + r->def.expire + s->splay + 1;
    return s;
}

/* Make room for one more value in store v; 0, or the status of the drop. */
static aggr_status_t s_vals_reserve(aggr_t *a, rule_t *r, vals_t *v,
                                    uint64_t cnt)
{
    if (cnt < v->cap)
        return AGGR_OK;
    size_t room =
        a->o.max_values > a->nvalues ? a->o.max_values - a->nvalues : 0;
    size_t grow = v->cap == 0 ? VALS_MIN : v->cap;
    if (grow > room)
        grow = room;
    if (grow == 0)
        return AGGR_LIMIT;
    if (v->cap + grow > SIZE_MAX / sizeof(double))
        return AGGR_LIMIT;
    size_t ncap = v->cap + grow;
    double *nv = s_alloc(a, ncap * sizeof(double));
    if (nv == NULL)
        return AGGR_NOMEM;
    if (v->cap > 0)
        memcpy(nv, v->v, v->cap * sizeof(double));
    s_free(a, v->v);
    v->v = nv;
    v->cap = ncap;
    a->nvalues += grow;
    r->st.values += grow;
    return AGGR_OK;
}

/* Count a drop of status st in rule r; returns st. */
static aggr_status_t s_drop(rule_t *r, aggr_status_t st)
{
    switch (st) {
    case AGGR_TOO_OLD: r->st.dropped_old++; break;
    case AGGR_TOO_NEW: r->st.dropped_new++; break;
    case AGGR_LIMIT: r->st.dropped_limit++; break;
    case AGGR_NOMEM: r->st.dropped_nomem++; break;
    default: break;
    }
    return st;
}

aggr_status_t aggr_add(aggr_t *a, size_t rule, size_t compute, const char *name,
                       size_t len, double value, int64_t ts, int64_t now)
{
    if (rule >= a->nrules || compute >= a->rules[rule].def.ncomputes)
        return AGGR_BAD_INDEX;
    rule_t *r = &a->rules[rule];
    const int64_t iv = r->def.interval;
    const int64_t span = iv * (int64_t)r->nbuckets;
    if (len > UINT32_MAX)
        return s_drop(r, AGGR_LIMIT);
    uint64_t h = s_hash((uint32_t)rule, (uint32_t)compute, name, len);
    series_t *s = s_find(a, h, (uint32_t)rule, (uint32_t)compute, name, len);
    int fresh = 0;
    if (s == NULL) {
        /* a new window, its oldest bucket expire seconds back */
        int64_t start = s_floordiv(now - (int64_t)r->def.expire, iv) * iv;
        if (ts < start)
            return s_drop(r, AGGR_TOO_OLD);
        if ((uint64_t)ts - (uint64_t)start >= (uint64_t)span)
            return s_drop(r, AGGR_TOO_NEW);
        if (a->nseries >= a->o.max_series ||
            r->nbuckets > a->o.max_buckets - a->nbuckets)
            return s_drop(r, AGGR_LIMIT);
        if (s_ht_reserve(a) != 0 || s_heap_reserve(a) != 0)
            return s_drop(r, AGGR_NOMEM);
        s = s_series_new(a, (uint32_t)rule, (uint32_t)compute, name, len, h,
                         start);
        if (s == NULL)
            return s_drop(r, AGGR_NOMEM);
        s_link(a, s);
        fresh = 1;
    } else {
        if (ts < s->start)
            return s_drop(r, AGGR_TOO_OLD);
        /* ts >= start: the difference is exact unsigned, whatever ts */
        if ((uint64_t)ts - (uint64_t)s->start >= (uint64_t)span)
            return s_drop(r, AGGR_TOO_NEW);
    }
    uint32_t slot = (uint32_t)((ts - s->start) / iv);
    uint32_t i = (s->head + slot) % r->nbuckets;
    bucket_t *b = &s->b[i];
    if (s->v != NULL) {
        aggr_status_t st = s_vals_reserve(a, r, &s->v[i], b->cnt);
        if (st != AGGR_OK) {
            if (fresh)
                s_series_free(a, s);
            return s_drop(r, st);
        }
        s->v[i].v[b->cnt] = value;
    }
    /* as carbon-c-relay: the first value sets, later ones accumulate */
    if (b->cnt == 0) {
        b->sum = value;
        b->max = value;
        b->min = value;
        s->nonempty++;
    } else {
        b->sum += value;
        if (b->max < value)
            b->max = value;
        if (b->min > value)
            b->min = value;
    }
    b->cnt++;
    return AGGR_OK;
}

size_t aggr_put(aggr_t *a, size_t rule, const char *const *names,
                const size_t *lens, double value, int64_t ts, int64_t now)
{
    if (rule >= a->nrules)
        return 0;
    rule_t *r = &a->rules[rule];
    size_t put = 0;
    r->st.received++;
    for (size_t c = 0; c < r->def.ncomputes; c++) {
        if (names[c] == NULL)
            continue;
        size_t len = lens != NULL ? lens[c] : strlen(names[c]);
        if (aggr_add(a, rule, c, names[c], len, value, ts, now) == AGGR_OK)
            put++;
    }
    return put;
}

/* ---- computing ---------------------------------------------------------- */

/* How carbon-c-relay 3.7.3 compares two values when it sorts them: the
 * difference converted to int, as x86-64 converts (truncated toward zero;
 * out of range or NaN: INT_MIN). */
static int s_cmp_compat(double l, double r)
{
    double d = l - r;
    if (!(d > -2147483649.0 && d < 2147483648.0))
        return INT_MIN;
    return (int)d;
}

static int s_cmp_value(double l, double r)
{
    return (l > r) - (l < r);
}

/* Merge sort of v[0..n) with scratch t (n doubles): split at n / 2, sort
 * both halves, merge taking from the left while cmp(left, right) <= 0 (the
 * order glibc's qsort sorts in, which is what carbon-c-relay's output
 * depends on when its comparison is not an order). */
static void s_msort(double *v, size_t n, double *t, int (*cmp)(double, double))
{
    if (n <= 1)
        return;
    size_t n1 = n / 2, n2 = n - n1;
    double *b1 = v, *b2 = v + n1;
    s_msort(b1, n1, t, cmp);
    s_msort(b2, n2, t, cmp);
    size_t k = 0;
    while (n1 > 0 && n2 > 0) {
        if (cmp(*b1, *b2) <= 0) {
            t[k++] = *b1++;
            n1--;
        } else {
            t[k++] = *b2++;
            n2--;
        }
    }
    while (n1 > 0) {
        t[k++] = *b1++;
        n1--;
    }
    memcpy(v, t, k * sizeof *v);
}

/* Stable insertion sort: the fallback when there is no scratch space. */
static void s_isort(double *v, size_t n, int (*cmp)(double, double))
{
    for (size_t i = 1; i < n; i++) {
        double x = v[i];
        size_t j = i;
        while (j > 0 && cmp(v[j - 1], x) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static void s_sort_cmp(aggr_t *a, double *v, size_t n,
                       int (*cmp)(double, double));

static void s_sort(aggr_t *a, double *v, size_t n)
{
    s_sort_cmp(a, v, n, a->o.compat_sort ? s_cmp_compat : s_cmp_value);
}

static void s_sort_cmp(aggr_t *a, double *v, size_t n,
                       int (*cmp)(double, double))
{
    if (n > a->scratchcap) {
        double *t = s_alloc(a, n * sizeof *t);
        if (t != NULL) {
            s_free(a, a->scratch);
            a->scratch = t;
            a->scratchcap = n;
        }
    }
    if (n <= a->scratchcap)
        s_msort(v, n, a->scratch, cmp);
    else
        s_isort(v, n, cmp);
}

/* The value compute c emits for bucket b (with values v, if it keeps
 * them). */
static double s_value(aggr_t *a, const aggr_compute_t *c, const bucket_t *b,
                      vals_t *v)
{
    switch (c->type) {
    case AGGR_SUM: return b->sum;
    case AGGR_COUNT: return (double)b->cnt;
    case AGGR_MAX: return b->max;
    case AGGR_MIN: return b->min;
    case AGGR_AVERAGE: return b->sum / (double)b->cnt;
    case AGGR_MEDIAN:
    case AGGR_PERCENTILE: {
        int p = c->type == AGGR_MEDIAN ? 50 : c->percentile;
        /* nearest rank, as carbon-c-relay computes the rank; a rank below
         * 1 (p * n < 10) is the smallest value */
        double k = (double)p / 100.0 * (double)b->cnt + 0.9;
        size_t rank = k < 1.0 ? 1 : (size_t)k;
        if (rank > b->cnt)
            rank = (size_t)b->cnt;
        s_sort(a, v->v, (size_t)b->cnt);
        return v->v[rank - 1];
    }
    case AGGR_QUANTILE: {
        /* carbon-aggregator's: sorted by value, the rank q * (n - 1)
         * (from 0), interpolated between its two neighbours */
        double rank = (double)c->percentile / 1000.0 * (double)(b->cnt - 1);
        size_t lo = (size_t)floor(rank), hi = (size_t)ceil(rank);
        s_sort_cmp(a, v->v, (size_t)b->cnt, s_cmp_value);
        if (lo == hi)
            return v->v[lo];
        return v->v[lo] * ((double)hi - rank) + v->v[hi] * (rank - (double)lo);
    }
    case AGGR_VARIANCE:
    case AGGR_STDDEV: {
        double avg = b->sum / (double)b->cnt;
        double ksum = 0;
        for (uint64_t i = 0; i < b->cnt; i++)
            ksum += pow(v->v[i] - avg, 2);
        ksum /= (double)b->cnt;
        return c->type == AGGR_VARIANCE ? ksum : sqrt(ksum);
    }
    }
    return 0;
}

/* The timestamp of the bucket starting at start in rule r. */
static int64_t s_ts(const rule_t *r, int64_t start)
{
    switch (r->def.ts) {
    case AGGR_TS_START: return start;
    case AGGR_TS_MIDDLE: return start + r->def.interval / 2;
    case AGGR_TS_END: break;
    }
    return start + r->def.interval;
}

/* Emit the oldest bucket of s (if it holds a value) and move the window
 * on by one bucket.  Returns 1 if a value was emitted. */
static int s_rotate(aggr_t *a, series_t *s, aggr_emit_fn *fn, void *arg)
{
    rule_t *r = &a->rules[s->rule];
    bucket_t *b = &s->b[s->head];
    int sent = 0;
    if (b->cnt > 0) {
        const aggr_compute_t *c = &r->def.computes[s->compute];
        double v = s_value(a, c, b, s->v != NULL ? &s->v[s->head] : NULL);
        if (fn != NULL)
            fn(arg, s->name, s->len, v, s_ts(r, s->start), s->rule, s->compute);
        r->st.sent++;
        s->nonempty--;
        sent = 1;
    }
    /* the slot becomes the newest bucket, its value store kept */
    *b = (bucket_t){0};
    s->head = (s->head + 1) % r->nbuckets;
    s->start += r->def.interval;
    s->expiry += r->def.interval;
    return sent;
}

size_t aggr_expire(aggr_t *a, int64_t now, aggr_emit_fn *fn, void *arg)
{
    size_t sent = 0;
    while (a->nseries > 0 && a->heap[0]->expiry <= now) {
        series_t *s = a->heap[0];
        sent += (size_t)s_rotate(a, s, fn, arg);
        if (s->nonempty == 0)
            s_series_free(a, s);
        else
            s_sift_down(a, 0);
    }
    return sent;
}

int64_t aggr_next_expiry(const aggr_t *a)
{
    return a->nseries > 0 ? a->heap[0]->expiry : INT64_MAX;
}

size_t aggr_flush(aggr_t *a, int64_t now, aggr_emit_fn *fn, void *arg)
{
    size_t sent = 0;
    series_t *s = a->first;
    while (s != NULL) {
        series_t *next = s->next;
        const rule_t *r = &a->rules[s->rule];
        while (s->nonempty > 0 && s->start + (int64_t)r->def.interval < now)
            sent += (size_t)s_rotate(a, s, fn, arg);
        if (s->nonempty == 0)
            s_series_free(a, s);
        s = next;
    }
    /* the expiry times moved: order the heap anew */
    for (size_t i = a->nseries / 2; i-- > 0;)
        s_sift_down(a, i);
    return sent;
}

/* ---- reload ------------------------------------------------------------- */

size_t aggr_take_over(aggr_t *a, aggr_t *old)
{
    size_t moved = 0;
    if (a == old || a->o.alloc != old->o.alloc ||
        a->o.alloc_arg != old->o.alloc_arg)
        return 0;
    unsigned char *taken = s_alloc(a, old->nrules + 1);
    if (taken == NULL)
        return 0;
    for (size_t i = 0; i < a->nrules; i++) {
        rule_t *r = &a->rules[i];
        size_t j = 0;
        while (j < old->nrules &&
               (taken[j] || !aggr_def_equal(&r->def, &old->rules[j].def)))
            j++;
        if (j == old->nrules)
            continue;
        taken[j] = 1;
        rule_t *o = &old->rules[j];
        series_t *s = old->first;
        while (s != NULL) {
            series_t *next = s->next;
            if (s->rule != j) {
                s = next;
                continue;
            }
            size_t vals = s_series_values(old, s);
            if (a->nseries >= a->o.max_series ||
                r->nbuckets > a->o.max_buckets - a->nbuckets ||
                vals > a->o.max_values - a->nvalues || s_ht_reserve(a) != 0 ||
                s_heap_reserve(a) != 0) {
                s = next;
                continue;
            }
            s_unlink(old, s);
            s->rule = (uint32_t)i;
            s->hash = s_hash(s->rule, s->compute, s->name, s->len);
            s_link(a, s);
            a->nvalues += vals;
            r->st.values += vals;
            moved++;
            s = next;
        }
        r->st.received += o->st.received;
        r->st.sent += o->st.sent;
        r->st.dropped_old += o->st.dropped_old;
        r->st.dropped_new += o->st.dropped_new;
        r->st.dropped_limit += o->st.dropped_limit;
        r->st.dropped_nomem += o->st.dropped_nomem;
        o->st.received = o->st.sent = 0;
        o->st.dropped_old = o->st.dropped_new = 0;
        o->st.dropped_limit = o->st.dropped_nomem = 0;
    }
    s_free(a, taken);
    return moved;
}

/* ---- counters ----------------------------------------------------------- */

void aggr_stats(const aggr_t *a, size_t rule, aggr_stats_t *st)
{
    if (rule >= a->nrules)
        *st = (aggr_stats_t){0};
    else
        *st = a->rules[rule].st;
}

void aggr_stats_total(const aggr_t *a, aggr_stats_t *st)
{
    *st = (aggr_stats_t){0};
    for (size_t i = 0; i < a->nrules; i++) {
        const aggr_stats_t *x = &a->rules[i].st;
        st->received += x->received;
        st->sent += x->sent;
        st->dropped_old += x->dropped_old;
        st->dropped_new += x->dropped_new;
        st->dropped_limit += x->dropped_limit;
        st->dropped_nomem += x->dropped_nomem;
        st->series += x->series;
        st->buckets += x->buckets;
        st->values += x->values;
    }
}
