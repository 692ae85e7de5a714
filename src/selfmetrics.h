/*
 * selfmetrics.h -- the appliance's own counters as carbon metric lines.
 *
 * Pure core.  Every statistics interval the router thread (src/hub.c)
 * renders its counters and its destinations' counters here and routes the
 * lines like any metric.  Names follow carbon's and carbon-c-relay's, so
 * existing dashboards work: PREFIX.metricsReceived, PREFIX.metricsSent, ...
 * and PREFIX.destinations.<host_port>.{sent,queued,dropped}, with PREFIX
 * "carbon.relays.<hostname>" unless the statistics statement says
 * `prefix with`.  With `reset counters after interval`, a counter reports
 * what it counted since the last interval (gauges such as queue depths stay
 * as they are).
 */
#ifndef ORCHESTER_SELFMETRICS_H
#define ORCHESTER_SELFMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

/* One named counter. */
typedef struct {
    const char *name; /* metric suffix, e.g. "metricsReceived" */
    uint64_t value;   /* cumulative count, or the gauge's value */
    int gauge;        /* 1: a level (never reset), 0: a count */
} selfmetrics_counter_t;

typedef struct selfmetrics selfmetrics_t;

/* selfmetrics_new / selfmetrics_destroy: the state reset mode keeps (the
 * values reported last time).  Owned by the router thread. */
selfmetrics_t *selfmetrics_new(void);
void selfmetrics_destroy(selfmetrics_t **sm);

/*
 * selfmetrics_render: lines "PREFIX.NAME VALUE NOW\n" for the n counters
 * and, per destination i, PREFIX.destinations.KEYS[i].{sent,queued,dropped}
 * from d[i].  reset: report counts since the previous call (a destination
 * not seen last time starts from 0).  Returns a buffer the caller frees,
 * with its length in *len, or NULL when out of memory.
 */
char *selfmetrics_render(selfmetrics_t *sm, const char *prefix, long long now,
                         int reset, const selfmetrics_counter_t *c, size_t n,
                         const char *const *keys, const stats_dest_t *d,
                         size_t nd, size_t *len);

#endif
