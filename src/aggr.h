/*
 * aggr.h -- the aggregator's core: the buckets of the `aggregate`
 * statement, as carbon-c-relay 3.7.3 keeps them (docs/aggregation.rst).
 *
 * Pure core: no I/O, no clock reads, no threads.  The caller (the
 * aggregator's thread, later) matches a datapoint against a rule's
 * expressions, expands every `write to` template of the rule, and hands the
 * core the rule, the compute, the expanded name, the value, the datapoint's
 * own timestamp and the time now (wall-clock seconds).  Every now and then
 * (carbon-c-relay looks every 250 ms) it calls aggr_expire with the time
 * now, which emits every bucket that has expired through a callback, as
 * (name, value, timestamp); the caller formats and routes them.
 *
 * A series is one (rule, compute, expanded name).  It holds a window of
 * aggr_buckets_per_series() buckets of `interval` seconds, aligned on
 * multiples of the interval (epoch seconds), the oldest starting at
 * floor((now - expire) / interval) * interval when the series is created.
 * A datapoint goes into the bucket its own timestamp falls in; one older
 * than the oldest bucket is dropped as too old, one past the newest as too
 * new.  The oldest bucket expires at start + expire + splay + 1 (splay: a
 * fixed number of seconds in [0, interval) per series, spreading the
 * emission like carbon-c-relay's random one): it is emitted if it holds a
 * value, and the window moves on by one bucket.  A series none of whose
 * buckets holds a value is freed at once (right after its last value was
 * emitted), so the next datapoint for it starts a new window.
 *
 * Emission order (aggr_expire): by expiry time, oldest first; series that
 * expire in the same second in the order they were created (by aggr_add or
 * by aggr_take_over); so a series with several buckets due emits them
 * oldest first, interleaved with the other series by time.
 *
 * Bounds (aggr_opts_t): at most max_series series, max_buckets bucket
 * slots (a series holds its rule's bucket count from its creation to its
 * end) and max_values stored values (the capacity reserved for median,
 * percentile, variance and stddev, which need every value).  A datapoint
 * that does not fit is dropped and counted (dropped_limit), as is one whose
 * memory cannot be allocated (dropped_nomem); nothing grows past the
 * bounds, and no allocation failure is fatal.  In the steady state (series
 * that live on) aggr_add allocates nothing: buckets are reused as the
 * window moves, with the value storage they grew.
 *
 * Reload: aggr_take_over moves the series (with their buckets, values and
 * counters) of every rule whose definition compares equal
 * (aggr_def_equal) from the old aggr_t to a new one.
 *
 * Ownership: aggr_new copies the definitions (keys and compute lists
 * included); names passed in are copied; the name given to an emit
 * callback is borrowed, valid only during the call, and the callback must
 * not call any aggr_* function on the same aggr_t.
 *
 * Thread: one thread owns an aggr_t (the aggregator's); nothing is shared.
 */
#ifndef ORCHESTER_AGGR_H
#define ORCHESTER_AGGR_H

#include <stddef.h>
#include <stdint.h>

typedef struct aggr aggr_t;

/* What a compute computes (docs/aggregation.rst has the exact formulas). */
typedef enum {
    AGGR_SUM = 1,    /* the sum of the values */
    AGGR_COUNT,      /* how many values */
    AGGR_MAX,        /* the largest value */
    AGGR_MIN,        /* the smallest value */
    AGGR_AVERAGE,    /* sum / count */
    AGGR_MEDIAN,     /* percentile 50 */
    AGGR_PERCENTILE, /* nearest rank: sorted[(int)(p/100 * n + 0.9) - 1] */
    AGGR_VARIANCE,   /* population variance */
    AGGR_STDDEV,     /* its square root */
    AGGR_QUANTILE    /* carbon-aggregator's pNN: interpolated at rank
                        q * (n - 1), q = percentile / 1000 (per mille) */
} aggr_type_t;

/* The timestamp written for a bucket. */
typedef enum {
    AGGR_TS_START = 1, /* the bucket's start */
    AGGR_TS_MIDDLE,    /* start + interval / 2 (integer division) */
    AGGR_TS_END        /* start + interval (carbon-c-relay's default) */
} aggr_ts_t;

/* One `compute ... write to` clause (the template is the caller's). */
typedef struct {
    aggr_type_t type; /* what it computes */
    int percentile;   /* AGGR_PERCENTILE: 1..99; AGGR_QUANTILE: per mille,
                         1..999; ignored otherwise */
} aggr_compute_t;

/* One `aggregate` rule. */
typedef struct {
    uint32_t interval;              /* `every N seconds`, >= 1 */
    uint32_t expire;                /* `expire after N seconds`, > interval */
    aggr_ts_t ts;                   /* `timestamp at ... of bucket` */
    const aggr_compute_t *computes; /* the compute clauses, in order */
    size_t ncomputes;               /* how many (>= 1) */
    const char *key;                /* the rule's identity across reloads
                                       (e.g. its text: expressions and
                                       templates); NULL: never taken over */
} aggr_def_t;

/* The allocator: fn(arg, NULL, n) allocates n zeroed bytes, fn(arg, p, 0)
 * frees p (and returns NULL).  Returns NULL when it cannot. */
typedef void *(aggr_alloc_fn)(void *arg, void *p, size_t n);

/* The bounds and options of an aggr_t. */
typedef struct {
    size_t max_series;    /* series, all rules together */
    size_t max_buckets;   /* bucket slots held, all series together */
    size_t max_values;    /* stored values (capacity), all buckets */
    int splay;            /* 1: spread each series' expiry over
                             [0, interval) seconds; 0: none */
    uint64_t seed;        /* mixed into the splay */
    int compat_sort;      /* 1: order values for median and percentile
                             as carbon-c-relay 3.7.3 does (by the integer
                             part of their difference); 0: by value */
    aggr_alloc_fn *alloc; /* NULL: calloc and free */
    void *alloc_arg;      /* passed to alloc */
} aggr_opts_t;

/* Counters of a rule (or of all rules).  received, sent and dropped_* only
 * grow; series, buckets and values are what is held now.
 * aggregators.metricsReceived is received, metricsSent is sent,
 * metricsDropped the sum of the four dropped_*. */
typedef struct {
    uint64_t received;      /* datapoints given to the rule (aggr_put) */
    uint64_t sent;          /* values emitted */
    uint64_t dropped_old;   /* (datapoint, compute) older than the window */
    uint64_t dropped_new;   /* (datapoint, compute) past the window */
    uint64_t dropped_limit; /* (datapoint, compute) past a bound */
    uint64_t dropped_nomem; /* (datapoint, compute) out of memory */
    uint64_t series;        /* series alive */
    uint64_t buckets;       /* bucket slots held */
    uint64_t values;        /* value capacity held */
} aggr_stats_t;

/* What became of one (datapoint, compute). */
typedef enum {
    AGGR_OK = 0,   /* in its bucket */
    AGGR_TOO_OLD,  /* dropped: before the oldest open bucket */
    AGGR_TOO_NEW,  /* dropped: past the newest bucket */
    AGGR_LIMIT,    /* dropped: a bound of aggr_opts_t */
    AGGR_NOMEM,    /* dropped: out of memory */
    AGGR_BAD_INDEX /* no such rule or compute (a programmer error; not
                      counted) */
} aggr_status_t;

/* Receives one emitted value: the series' name (len bytes, NUL-terminated,
 * borrowed for the call), the value, the bucket's timestamp (start, middle
 * or end by the rule), and the rule and compute it came from. */
typedef void(aggr_emit_fn)(void *arg, const char *name, size_t len,
                           double value, int64_t ts, size_t rule,
                           size_t compute);

/* aggr_opts_default: 1,000,000 series, 8,000,000 bucket slots, 16,000,000
 * values, splay on (seed 0), values ordered by value, calloc and free. */
void aggr_opts_default(aggr_opts_t *o);

/* aggr_def_check: 0 if d is usable (interval >= 1, expire > interval, both
 * at most INT32_MAX, a known timestamp position, at least one compute, each
 * of a known type, a percentile in 1..99), else -1 with *err (static text,
 * if err is not NULL) saying why.  carbon-c-relay's own messages where it
 * has them. */
int aggr_def_check(const aggr_def_t *d, const char **err);

/* aggr_buckets_per_series: the buckets a series of d holds:
 * ceil(expire / interval) + 2. */
uint32_t aggr_buckets_per_series(const aggr_def_t *d);

/* aggr_def_equal: whether a series of a may go on as one of b: both keys
 * set and equal, and the same interval, expire, timestamp position and
 * compute list (types, and percentiles for AGGR_PERCENTILE). */
int aggr_def_equal(const aggr_def_t *a, const aggr_def_t *b);

/* aggr_new: an aggr_t for ndefs rules (each checked by aggr_def_check),
 * with the options o (NULL: aggr_opts_default).  Returns it, or NULL with
 * *err (static text, if err is not NULL) when a definition is unusable or
 * memory is short. */
aggr_t *aggr_new(const aggr_def_t *defs, size_t ndefs, const aggr_opts_t *o,
                 const char **err);

/* aggr_destroy: free *a and every series in it (nothing is emitted: call
 * aggr_flush first to emit what is complete), set *a to NULL.  Safe on
 * NULL and twice. */
void aggr_destroy(aggr_t **a);

/* aggr_rules: the number of rules of a. */
size_t aggr_rules(const aggr_t *a);

/* aggr_take_over: for each rule of a whose definition compares equal
 * (aggr_def_equal) to a rule of old (each old rule matched once, the first
 * equal one), move that rule's series, with their buckets, values and
 * expiry times, from old into a, and add its counters (received, sent,
 * dropped_*) to a's rule, zeroing them in old.  Series that do not fit a's
 * bounds, or whose move cannot be allocated, stay in old (flush and
 * destroy it).  Moved series come after a's own in the creation order, in
 * old's order.  Both must use the same allocator (else nothing moves).
 * Returns the number of series moved. */
size_t aggr_take_over(aggr_t *a, aggr_t *old);

/* aggr_add: put one value, for compute `compute` of rule `rule`, into the
 * bucket of the series name (len bytes) that ts falls in; now is the time
 * (it places a new series' window).  Does not count `received` (aggr_put
 * does).  Counts and returns what became of it. */
aggr_status_t aggr_add(aggr_t *a, size_t rule, size_t compute, const char *name,
                       size_t len, double value, int64_t ts, int64_t now);

/* aggr_put: one datapoint matched rule `rule`: count it received, then
 * aggr_add it for every compute i of the rule whose names[i] is not NULL
 * (lens[i] bytes; lens NULL: NUL-terminated names).  A NULL entry skips
 * the compute (its template could not be expanded).  Returns the number of
 * computes it was put in. */
size_t aggr_put(aggr_t *a, size_t rule, const char *const *names,
                const size_t *lens, double value, int64_t ts, int64_t now);

/* aggr_expire: emit, through fn(arg, ...), every bucket expired at now
 * (start + expire + splay < now), in the order above; move each series'
 * window on, and free the series left empty.  Returns the values emitted.
 * fn may be NULL (the values are counted sent and lost). */
size_t aggr_expire(aggr_t *a, int64_t now, aggr_emit_fn *fn, void *arg);

/* aggr_next_expiry: the earliest now at which aggr_expire will have work,
 * or INT64_MAX when a holds no series. */
int64_t aggr_next_expiry(const aggr_t *a);

/* aggr_flush: at shutdown, emit every bucket that is complete at now (its
 * end, start + interval, before now), expired or not, series in creation
 * order and each one's buckets oldest first, as carbon-c-relay does when it
 * stops; the incomplete buckets stay (aggr_destroy drops them uncounted).
 * Returns the values emitted. */
size_t aggr_flush(aggr_t *a, int64_t now, aggr_emit_fn *fn, void *arg);

/* aggr_stats: the counters of rule `rule` (zeroes if there is none). */
void aggr_stats(const aggr_t *a, size_t rule, aggr_stats_t *st);

/* aggr_stats_total: the counters of all rules summed. */
void aggr_stats_total(const aggr_t *a, aggr_stats_t *st);

#endif
