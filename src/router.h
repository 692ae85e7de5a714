/*
 * router.h -- rule evaluation: which destinations a metric goes to.
 *
 * Pure core.  Built from a config_t (borrowed: the config must outlive the
 * router), it numbers every destination (cluster member) from 0 in config
 * order; the sender builds its writers from the same numbering.  The router
 * fills a caller-owned array with destination ids and sends nothing itself.
 * Rules run top to bottom as written, falling through unless `stop`.
 * router_route is reentrant: the router thread and test mode call it.
 */
#ifndef ORCHESTER_ROUTER_H
#define ORCHESTER_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* One destination: a member of a cluster. */
typedef struct {
    const config_cluster_t *cluster;  /* borrowed from the config */
    const config_member_t *member;    /* borrowed from the config */
    char addr[300];                   /* "host:port", or the file path */
    char key[320];                    /* addr made metric-safe: 127_0_0_1_2003 */
} router_dest_t;

typedef struct router router_t;

/* What router_route found, besides destinations. */
enum {
    ROUTE_SENT = 1,       /* at least one destination */
    ROUTE_BLACKHOLE = 2,  /* a rule sent it to the blackhole */
    ROUTE_NOMATCH = 4     /* no rule matched */
};

/* Trace events for test mode (orchester -t). */
typedef enum {
    TRACE_RULE,       /* rule matched */
    TRACE_CLUSTER,    /* sending to cluster */
    TRACE_DEST,       /* to this destination */
    TRACE_BLACKHOLE,  /* to the blackhole */
    TRACE_STOP        /* rule has stop: evaluation ends */
} router_trace_t;

typedef void(router_trace_fn)(void *arg, router_trace_t ev,
                              const config_rule_t *rule,
                              const config_cluster_t *cluster,
                              const router_dest_t *dest);

/* router_new: compile the rules of cfg.  Returns NULL with "FILE:LINE:
 * message" in err for what this version cannot route yet. */
router_t *router_new(const config_t *cfg, char *err, size_t errlen);

/* router_destroy: free *r and set it to NULL; safe on NULL. */
void router_destroy(router_t **r);

/* router_ndests / router_dest: the destination table (borrowed). */
size_t router_ndests(const router_t *r);
const router_dest_t *router_dest(const router_t *r, size_t id);

/* router_route: route the metric whose routing name is name/namelen.
 * Writes at most outcap destination ids to out, returns how many (a
 * destination may appear twice when two rules send to it).  *how gets
 * ROUTE_* bits.  trace may be NULL. */
size_t router_route(const router_t *r, const char *name, size_t namelen,
                    uint32_t *out, size_t outcap, int *how,
                    router_trace_fn *trace, void *arg);

/* router_to_clusters: ids of every destination of the named clusters (the
 * statistics statement's `send to`).  Returns the count. */
size_t router_to_clusters(const router_t *r, char *const *names, size_t n,
                          uint32_t *out, size_t outcap);

#endif
