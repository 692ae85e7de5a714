/*
 * router.h -- rule evaluation: which destinations a metric goes to, and
 * under which name.
 *
 * Pure core.  Built from a config_t (borrowed: the config must outlive the
 * router), it numbers every destination (cluster member) from 0 in config
 * order; the sender builds its writers from the same numbering.  For each
 * metric it calls the caller's emit function once per destination, with the
 * metric's name as the rules left it (rewrite), and sends nothing itself.
 *
 * Rules run top to bottom as written, exactly as carbon-c-relay runs them:
 * a match falls through unless it says `stop` or sends to the blackhole
 * (an implicit stop); a rewrite changes the name for every later rule; a
 * failed `validate` skips its rule (and, when it says `else log`, tells
 * the caller what it dropped: the router itself logs nothing);
 * `route using` places the metric on a hash ring by another key.  A prefix
 * index over the dotted hierarchy skips the rules whose expressions start
 * with a literal the name does not start with; it gives the same answers as
 * evaluating every rule (tests/test_router.c checks that on random configs).
 *
 * Threads: a router never changes after router_new; any number of threads
 * may route with it at once, each with its own router_ctx_t.
 */
#ifndef ORCHESTER_ROUTER_H
#define ORCHESTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* One destination: a member of a cluster. */
typedef struct {
    const config_cluster_t *cluster; /* borrowed from the config */
    const config_member_t *member;   /* borrowed from the config */
    char addr[300];                  /* "host:port", or the file path */
    char key[320];                   /* addr made metric-safe: 127_0_0_1_2003 */
} router_dest_t;

typedef struct router router_t;

/* Most destinations (cluster members, all clusters) one config may have. */
#define ROUTER_MAX_DESTS 4096

/* Scratch space of one routing thread (rewritten names, keys). */
typedef struct router_ctx router_ctx_t;

/* What router_route found, besides destinations. */
enum {
    ROUTE_SENT = 1,         /* at least one destination */
    ROUTE_BLACKHOLE = 2,    /* a rule sent it to the blackhole */
    ROUTE_NOMATCH = 4,      /* no rule matched */
    ROUTE_INVALID = 8,      /* a validate clause dropped it */
    ROUTE_INVALID_LOG = 16, /* ... one that says `else log`: the caller logs
                               it (router_ctx_invalid says what) */
    ROUTE_AGGREGATED = 32   /* an aggregate rule took it */
};

/* The last datapoint a `validate ... else log` clause dropped, for the
 * caller to log (the router logs nothing itself). */
typedef struct {
    const config_rule_t *rule; /* the rule (borrowed from the config) */
    char name[201];            /* the name it saw, cut at 200 bytes */
    size_t namelen;
    char data[101]; /* the data it checked, cut at 100 bytes */
    size_t datalen;
} router_invalid_t;

/* Trace events for test mode (orchester -t). */
typedef enum {
    TRACE_RULE,      /* match rule matched; text: the name it saw */
    TRACE_VALIDATE,  /* validate failed; text: the data it checked */
    TRACE_REWRITE,   /* rewrite rule applied; text: the new name */
    TRACE_CLUSTER,   /* sending to cluster; text: the placement key */
    TRACE_DEST,      /* to this destination */
    TRACE_BLACKHOLE, /* to the blackhole */
    TRACE_STOP,      /* evaluation ends here */
    TRACE_AGGREGATE, /* aggregate rule matched; text: the name it saw */
    TRACE_COMPUTE    /* ... its next compute (in order); text: the name
                        it writes to */
} router_trace_t;

typedef void(router_trace_fn)(void *arg, router_trace_t ev,
                              const config_rule_t *rule,
                              const config_cluster_t *cluster,
                              const router_dest_t *dest, const char *text,
                              size_t textlen);

/* Called once per destination: send the metric there named name/namelen
 * (valid during the call only); critical when the rule that sent it says
 * `critical`, or the buffer statement `all critical`. */
typedef void(router_emit_fn)(void *arg, uint32_t dest, const char *name,
                             size_t namelen, int critical);

/* An aggregate rule took the datapoint: its compute number compute of
 * aggregate number aggr (router_aggr) gets it under name/namelen (valid
 * during the call only). */
typedef void(router_aggr_fn)(void *arg, uint32_t aggr, uint32_t compute,
                             const char *name, size_t namelen);

/* router_new: compile the rules of cfg.  Returns NULL with "FILE:LINE:
 * message" in err for what this version cannot route. */
router_t *router_new(const config_t *cfg, char *err, size_t errlen);

/* router_destroy: free *r and set it to NULL; safe on NULL. */
void router_destroy(router_t **r);

/* router_ctx_new / router_ctx_destroy: a thread's scratch space. */
router_ctx_t *router_ctx_new(void);
void router_ctx_destroy(router_ctx_t **ctx);

/* router_ctx_invalid: after router_route returned ROUTE_INVALID_LOG, what
 * was dropped (borrowed; valid until the next router_route with ctx).
 * NULL when nothing was ever dropped so. */
const router_invalid_t *router_ctx_invalid(const router_ctx_t *ctx);

/* router_ctx_set_aggr: what aggregate rules feed when routing with ctx
 * (NULL: nothing; the rules still match, stop, and say so). */
void router_ctx_set_aggr(router_ctx_t *ctx, router_aggr_fn *fn, void *arg);

/* router_naggrs / router_aggr: the aggregate rules, numbered from 0 in
 * config order (borrowed).  Their outputs go to the rule's dests (through
 * router_to_clusters), or, when it names none, through router_route from
 * the top, as carbon-c-relay routes them. */
size_t router_naggrs(const router_t *r);
const config_rule_t *router_aggr(const router_t *r, size_t id);

/* router_ndests / router_dest: the destination table (borrowed). */
size_t router_ndests(const router_t *r);
const router_dest_t *router_dest(const router_t *r, size_t id);

/* router_config: the configuration r was built from (borrowed). */
const config_t *router_config(const router_t *r);

/* router_critical: whether what rule sends (NULL: the statistics' `send
 * to`) is critical. router_has_critical: whether anything can be. */
bool router_critical(const router_t *r, const config_rule_t *rule);
bool router_has_critical(const router_t *r);

/* router_set_index: use the prefix index (default) or evaluate every rule
 * (for tests that compare the two).  Call before routing starts. */
void router_set_index(router_t *r, bool on);

/*
 * router_route: route one canonical line (line/len, "name[;tags] value
 * timestamp", the '\n' optional); namelen is the length of its routing name
 * (up to the first ';' or ' ').  alive is NULL, or one flag per destination
 * (any_of and failover clusters move a dead member's share to the live
 * ones).  Calls emit per destination, trace (may be NULL) per decision.
 * Returns ROUTE_* bits.
 */
int router_route(const router_t *r, router_ctx_t *ctx, const char *line,
                 size_t len, size_t namelen, const bool *alive,
                 router_emit_fn *emit, void *arg, router_trace_fn *trace,
                 void *targ);

/* router_to_clusters: emit name to every destination of the named clusters
 * as their placement puts it (the statistics statement's `send to`).
 * Returns the number of destinations. */
size_t router_to_clusters(const router_t *r, router_ctx_t *ctx,
                          char *const *names, size_t n, const char *name,
                          size_t namelen, const bool *alive,
                          router_emit_fn *emit, void *arg);

#endif
