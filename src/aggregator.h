/*
 * aggregator.h -- the aggregator thread: the `aggregate` rules' own stage.
 *
 * I/O shell around the pure core of src/aggr.c.  The hub (src/hub.c)
 * matches datapoints against the aggregate rules as it routes them (the
 * router expands each compute's `write to` template) and sends the
 * aggregator batches of records on an inproc pipe (MSG_AGGR_DATA), never
 * waiting for it: when the pipe is full the batch is dropped and counted,
 * so a slow aggregator does not stall routing.  The aggregator puts each
 * record in its buckets, and every AGGREGATOR_TICK_MS emits the buckets
 * that expired as lines "NAME VALUE TIMESTAMP" back to the hub
 * (MSG_AGGR_OUT, one message per rule), which routes them: to the rule's
 * `send to` clusters, or from the top when it names none, as
 * carbon-c-relay routes them.
 *
 * Messages on its input pipe, in order (src/msg.h):
 *   MSG_AGGR_DEFS   the rules of generation gen (aggregator_defs_t, owned
 *                   by the aggregator from then on): a reload.  The series
 *                   of rules whose definition did not change (the same
 *                   rule text) go on; the others start clean.
 *   MSG_AGGR_DATA   records (aggregator_rec_* below)
 *   MSG_HA_STATE    count 1: active; 0: not (the member of a pair that is
 *                   not active drops its open buckets, counted, so that
 *                   aggregates are never split between two relays)
 *   MSG_STOP        emit every complete bucket (its end before now), then
 *                   MSG_AGGR_DONE on the output pipe, and end; main says
 *                   MSG_STOP too, on the control pipe, once the hub is
 *                   done (whichever comes first ends it)
 * Every snapshot interval it sends its counters (MSG_STATS_AGGR: count
 * stats_aggr_t, one per rule).
 *
 * For tests, ORCHESTER_TEST_AGGR_STALL_MS=N in the environment makes it
 * sleep N ms after its first MSG_AGGR_DATA: a stalled aggregator, whose
 * pipe the router must not wait on.
 *
 * Ownership: the aggregator owns its sockets, loop and core; the
 * definitions a MSG_AGGR_DEFS carries pass to it.  Life: aggregator_new()
 * on the main thread, aggregator_run() on its own thread until MSG_STOP,
 * aggregator_destroy() after the thread is joined.
 */
#ifndef ORCHESTER_AGGREGATOR_H
#define ORCHESTER_AGGREGATOR_H

#include <stddef.h>
#include <stdint.h>

#include "router.h"

#define AGGREGATOR_TICK_MS 250 /* how often expired buckets are emitted */
#define AGGREGATOR_PIPE                                                        \
    256 /* messages each end of its input pipe holds                           \
           (one per routed batch) */

/* A record of MSG_AGGR_DATA: one datapoint one aggregate rule took, then
 * nnames entries of (aggregator_name_t, the name's bytes).  Unaligned:
 * read and written with memcpy. */
typedef struct {
    uint32_t rule;   /* aggregate number in the generation (router_aggr) */
    uint16_t nnames; /* names that follow */
    uint16_t pad;
    double value;
    int64_t ts; /* the datapoint's timestamp, epoch seconds */
} aggregator_rec_t;

typedef struct {
    uint16_t compute; /* the compute's index in the rule */
    uint16_t len;     /* bytes of the name that follow */
} aggregator_name_t;

/* The rules of one generation, for MSG_AGGR_DEFS. */
typedef struct aggregator_defs aggregator_defs_t;

/* aggregator_defs_new: the aggregate rules of r (copied: the router may be
 * freed before the aggregator reads them), or NULL when out of memory. */
aggregator_defs_t *aggregator_defs_new(const router_t *r);

/* aggregator_defs_free: free *d, set it NULL; safe on NULL. */
void aggregator_defs_free(aggregator_defs_t **d);

/* aggregator_send_defs: send d (taken, whatever happens) as generation
 * gen's rules on sock (blocking).  0, or -1 with zmq's errno. */
int aggregator_send_defs(void *sock, uint64_t gen, aggregator_defs_t *d);

typedef struct {
    const char *in_endpoint;    /* PULL bound here: the hub's records */
    const char *out_endpoint;   /* PUSH connects here: outputs to the hub */
    const char *stats_endpoint; /* PUSH connects here: snapshots */
    const char *ctl_endpoint;   /* PAIR connects here: MSG_STOP from main,
                                   after the hub has stopped (its own STOP
                                   may not have fitted in a full pipe) */
    size_t max_series;          /* bounds of the core (src/aggr.h) */
    size_t max_buckets;
    size_t max_values;
} aggregator_opts_t;

typedef struct aggregator aggregator_t;

/* aggregator_opts_default: the core's default bounds, no endpoints. */
void aggregator_opts_default(aggregator_opts_t *o);

/* aggregator_new: sockets in zctx, the rules of r (generation 0).  NULL
 * with a message in err. */
aggregator_t *aggregator_new(void *zctx, const router_t *r,
                             const aggregator_opts_t *o, char *err,
                             size_t errlen);

/* aggregator_run: the thread body. */
int aggregator_run(aggregator_t *a);

/* aggregator_destroy: free *a, set it NULL; safe on NULL. */
void aggregator_destroy(aggregator_t **a);

#endif
