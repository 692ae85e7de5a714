/*
 * hub.h -- the router thread: batches in, acknowledgements out, routed
 * chunks to the sender, the control socket, and the self metrics.
 *
 * I/O shell around the pure router (src/router.c).  It binds a zmq ROUTER
 * (ZMQ_ROUTER_MANDATORY) on the inproc endpoint the embedded satellites use
 * and on every `satellites bind` endpoint, decodes each batch with its codec,
 * routes every datapoint, hands the chunks to the sender thread (PUSH), and
 * acknowledges the batch's sequence number once the sender's pipe took it.
 * When the sender's pipe is full it stops reading batches: that is the
 * backpressure satellites feel as a full window.
 *
 * It also keeps the latest counter snapshots of the other threads (stats
 * pipe), answers orchester-ctl on the `control` endpoint (REP), and every
 * statistics interval routes the appliance's own counters as metrics.
 *
 * Reload (MSG_RELOAD on the control pipe, from SIGHUP, or `reload` from
 * orchester-ctl): the hub reads the config file again, builds and checks a
 * new router and its tables, and only when all of that is good sends
 * everything routed by the old rules to the sender, then a MSG_SWITCH
 * lending it the new router (generation + 1), and routes by the new rules
 * from then on.  A bad config is refused with its message and the old one
 * keeps running.  An old generation is freed when the sender says
 * MSG_RETIRED (src/msg.h): reloading in a loop does not grow the process.
 *
 * Route changes (`orchester-ctl route ...`, src/routes.h): the hub keeps
 * the tree the file gave and the changes; a change is checked by building
 * a new router from a copy of that tree with the changes applied, written
 * to the routes file, and then switched to as a reload is.  A reload reads
 * the file and applies the same changes.  In a pair only the active member
 * takes changes; it hands them to src/ha.c, which publishes them, and a
 * member that is not active takes those of its active peer the same way.
 *
 * Liveness: the sender tells the hub the moment a destination goes up or
 * down (MSG_DEST_STATE), so any_of, failover and dynamic placement move a
 * dead member's share at once; every message naming destinations carries
 * its generation, and stale ones are dropped.
 *
 * Life: hub_new() on the main thread, hub_run() on the router thread until
 * MSG_STOP arrives on the control pipe; it then sends MSG_DRAIN to the
 * sender and returns.  hub_destroy() after the sender thread is joined.
 */
#ifndef ORCHESTER_HUB_H
#define ORCHESTER_HUB_H

#include <stddef.h>

#include "config.h"
#include "curve.h"
#include "router.h"
#include "routes.h"

typedef struct {
    const char *batches_endpoint; /* inproc endpoint for embedded satellites */
    const char *sender_endpoint;  /* the sender's PULL */
    const char *stats_endpoint;   /* PULL bound here for snapshots */
    const char *ctl_endpoint;     /* PAIR connects here (commands) */
    const char *hostname;         /* for carbon.relays.<hostname> */
    const char *config_path;      /* the file a reload reads */
    int stats_interval;           /* seconds; 0: from the config */
    size_t maxline;               /* -M: satellites' line limit; lines of a
                                     batch are checked against it */
    const curve_conf_t *curve;    /* CURVE on the satellites endpoints and
                                     the pair's link (on), or NULL;
                                     borrowed during hub_new */
    config_t *base;               /* the tree the config file gave, before the
                                     route changes: hub_new takes it (freed
                                     on failure too); NULL: none are made */
    routes_t *routes;             /* the route changes in force (src/routes.h):
                                     hub_new takes them, likewise */
    const char *routes_path;      /* their file (copied) */
    const char *agg_endpoint;     /* the aggregator's input (PUSH connects
                                     here); NULL: no aggregator */
    const char *agg_out_endpoint; /* its outputs (PULL bound here) */
    const char *ingest_reload_endpoint; /* after each reload (SIGHUP or
                                           orchester-ctl reload) a
                                           MSG_RELOAD goes here (PUSH
                                           connects): the ingest thread's
                                           TLS listeners read their files
                                           again; NULL: none */
} hub_opts_t;

typedef struct hub hub_t;

/* hub_new: bind the sockets.  cfg and r are borrowed and outlive the hub.
 * NULL with err on failure (e.g. a satellites endpoint that cannot bind). */
hub_t *hub_new(void *zctx, const config_t *cfg, const router_t *r,
               const hub_opts_t *o, char *err, size_t errlen);

/* hub_run: the thread body. */
int hub_run(hub_t *h);

/* hub_destroy: free *h and set it NULL. */
void hub_destroy(hub_t **h);

#endif
