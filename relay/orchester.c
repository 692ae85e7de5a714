/*
 * orchester.c -- the appliance: embedded satellites, router, sender.
 *
 * Wiring only.  It parses the options and the config, builds the router,
 * starts one thread each for ingest (when the config has listen
 * statements), the router (src/hub.c) and the sender (src/sender.c), and
 * then waits for signals.  SIGTERM/SIGINT stop the pipeline front to back:
 * ingest first (it flushes and waits for its acknowledgements), then the
 * router (it hands the sender what it took and says DRAIN), then the sender
 * (it writes its queues for at most the drain time).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <zmq.h>

#include "aggregator.h"
#include "config.h"
#include "daemon.h"
#include "hub.h"
#include "ingest.h"
#include "log.h"
#include "options.h"
#include "msg.h"
#include "router.h"
#include "routes.h"
#include "sender.h"
#include "testmode.h"
#include "tls.h"
#include "useall.h"

#define EP_BATCHES    "inproc://orchester-batches"
#define EP_SENDER     "inproc://orchester-sender"
#define EP_STATS      "inproc://orchester-stats"
#define EP_CTL_INGEST "inproc://orchester-ctl-ingest"
#define EP_CTL_HUB    "inproc://orchester-ctl-hub"
#define EP_CTL_SENDER "inproc://orchester-ctl-sender"
#define EP_AGGR       "inproc://orchester-aggr"
#define EP_AGGR_OUT   "inproc://orchester-aggr-out"
#define EP_CTL_AGGR   "inproc://orchester-ctl-aggr"
#define EP_TLS_RELOAD "inproc://orchester-tls-reload"

typedef struct {
    const char *config;
    int test;
    long long v[OPT_N]; /* the numbers (src/options.h) */
    const char *hostname;
    const char *pidfile;
    const char *routes; /* -r: the routes file (NULL: CONFIG.routes) */
    const char *ca;     /* -C: CA file or directory for TLS (NULL: none) */
} opts_t;

static void s_usage(FILE *f)
{
    fprintf(
        f,
        "usage: orchester -f CONFIG [options]\n"
        "       orchester -t [-t] -f CONFIG\n"
        "  -f FILE  configuration file\n"
        "  -t       test mode: route metric lines from stdin and print where\n"
        "           they go; -t -t only checks the configuration\n");
    opt_usage(f, OPT_P_ORCHESTER);
    fprintf(f, "  -C PATH  CA file or directory: verifies TLS members' "
               "certificates\n"
               "           (default: the system's CAs) and mtls clients\n"
               "  -H NAME  host name in self metrics (this host's)\n"
               "  -P FILE  write the pid to FILE\n"
               "  -r FILE  route changes made at run time (orchester-ctl "
               "route);\n"
               "           default: CONFIG.routes\n"
               "  -v       print the version\n");
}

static int s_parse(int argc, char **argv, opts_t *o)
{
    char spec[128], err[200];
    opt_getopt(OPT_P_ORCHESTER, "f:tC:H:P:r:vh", spec, sizeof spec);
    int c;
    while ((c = getopt(argc, argv, spec)) != -1) {
        switch (c) {
        case 'f': o->config = optarg; break;
        case 't': o->test++; break;
        case 'C': o->ca = optarg; break;
        case 'H': o->hostname = optarg; break;
        case 'P': o->pidfile = optarg; break;
        case 'r': o->routes = optarg; break;
        case 'v': printf("orchester %s\n", PACKAGE_VERSION); exit(0);
        case 'h': s_usage(stdout); exit(0);
        default:
            switch (
                opt_take(OPT_P_ORCHESTER, c, optarg, o->v, err, sizeof err)) {
            case 1: break;
            case -1: fprintf(stderr, "orchester: %s\n", err); return -1;
            default: s_usage(stderr); return -1;
            }
        }
    }
    if (o->config == NULL || optind != argc) {
        s_usage(stderr);
        return -1;
    }
    return 0;
}

/* Make (and free) the TLS context of every TLS listener and member of
 * cfg, with ca as -C.  0, or -1 with the listener or member and the reason
 * in err. */
static int s_check_tls(const config_t *cfg, const char *ca, char *err,
                       size_t errlen)
{
    char why[600];
    for (size_t i = 0; i < cfg->nlistens; i++) {
        const config_listen_t *l = &cfg->listens[i];
        if (!l->tr.tls)
            continue;
        tls_conf_t tc = {.pem = l->tr.pem,
                         .ca = l->tr.ca ? l->tr.ca : ca,
                         .mutual = l->tr.tls == TLS_MUTUAL,
                         .protomin = l->tr.protomin,
                         .protomax = l->tr.protomax,
                         .ciphers = l->tr.ciphers,
                         .suites = l->tr.suites};
        tls_server_t *t = tls_server_new(&tc, why, sizeof why);
        if (t == NULL) {
            snprintf(err, errlen, "%s:%d: listen: %s", l->pos.file, l->pos.line,
                     why);
            return -1;
        }
        tls_server_free(&t);
    }
    for (size_t i = 0; i < cfg->nclusters; i++) {
        const config_cluster_t *c = &cfg->clusters[i];
        for (size_t j = 0; j < c->nmembers; j++) {
            const config_member_t *m = &c->members[j];
            if (!m->tr.tls)
                continue;
            tls_conf_t tc = {.cert = m->tr.cert,
                             .key = m->tr.key,
                             .ca = m->tr.ca ? m->tr.ca : ca,
                             .protomin = m->tr.protomin,
                             .protomax = m->tr.protomax,
                             .ciphers = m->tr.ciphers,
                             .suites = m->tr.suites};
            tls_client_t *k = tls_client_new(&tc, why, sizeof why);
            if (k == NULL) {
                snprintf(err, errlen, "%s:%d: cluster %s: member %s: %s",
                         m->pos.file, m->pos.line, c->name, m->host, why);
                return -1;
            }
            tls_client_free(&k);
        }
    }
    return 0;
}

typedef struct {
    ingest_t *ig;
    hub_t *hub;
    sender_t *snd;
    aggregator_t *agg;
} threads_t;

static void *s_ingest_main(void *p)
{
    ingest_run(p);
    return NULL;
}
static void *s_hub_main(void *p)
{
    hub_run(p);
    return NULL;
}
static void *s_sender_main(void *p)
{
    sender_run(p);
    return NULL;
}
static void *s_aggr_main(void *p)
{
    aggregator_run(p);
    return NULL;
}

/* A route change that no longer fits the file. */
static void s_skip_fn(void *arg, const route_change_t *c, const char *why)
{
    (void)arg;
    log_warn("orchester: route change at line %d skipped: %s", c->line, why);
}

static void *s_pair(void *zctx, const char *ep)
{
    void *s = zmq_socket(zctx, ZMQ_PAIR);
    int linger = 0;
    if (s == NULL)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s, ep) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

int main(int argc, char **argv)
{
    opts_t o = {0};
    opt_init(o.v);
    char err[1024];
    if (s_parse(argc, argv, &o) != 0)
        return 2;
    /* the file's tree (kept by the hub for route changes), and a copy
     * with the route changes applied over it: the one in force */
    config_t *base = config_load(o.config, err, sizeof err), *cfg = NULL;
    char *rpath = o.routes ? strdup(o.routes) : routes_path(o.config);
    routes_t *routes =
        base && rpath ? routes_load(rpath, err, sizeof err) : NULL;
    if (routes && !(cfg = config_dup(base)))
        snprintf(err, sizeof err, "out of memory");
    router_t *r = cfg &&
                          routes_apply(routes, cfg, rpath, s_skip_fn, NULL, err,
                                       sizeof err) == 0 &&
                          useall_expand(cfg, err, sizeof err) == 0
                      ? router_new(cfg, err, sizeof err)
                      : NULL;
    if (r == NULL) {
        fprintf(stderr, "orchester: %s\n", rpath ? err : "out of memory");
        config_destroy(&cfg);
        config_destroy(&base);
        routes_destroy(&routes);
        free(rpath);
        return 1;
    }
    /* CURVE's key files, and every TLS certificate, key and CA, are read
     * now, so that a broken file stops the start (and -t -t) with its
     * name */
    curve_conf_t *cc = calloc(1, sizeof *cc);
    if (cc == NULL || curve_load(&cfg->curve, cc, err, sizeof err) != 0 ||
        s_check_tls(cfg, o.ca, err, sizeof err) != 0) {
        fprintf(stderr, "orchester: %s\n", cc ? err : "out of memory");
        free(cc);
        router_destroy(&r);
        config_destroy(&cfg);
        config_destroy(&base);
        routes_destroy(&routes);
        free(rpath);
        return 1;
    }
    if (o.test) {
        int rc = 0;
        free(cc);
        if (o.test == 1)
            rc = testmode_run(r, stdin, stdout, (size_t)o.v[OPT_MAXLINE]);
        else
            printf("%s: configuration ok\n", o.config);
        if (routes->n > 0)
            fprintf(o.test == 1 ? stderr : stdout,
                    "%s: %zu route change%s applied (orchester-ctl route "
                    "list)\n",
                    rpath, routes->n, routes->n == 1 ? "" : "s");
        router_destroy(&r);
        config_destroy(&cfg);
        config_destroy(&base);
        routes_destroy(&routes);
        free(rpath);
        return rc == 0 ? 0 : 1;
    }

    int rc = 1;
    char msg[256];
    daemon_raise_nofile(msg, sizeof msg);
    log_info("orchester: %s", msg);
    daemon_block_signals();
    char host[256];
    if (o.hostname)
        snprintf(host, sizeof host, "%s", o.hostname);
    else
        daemon_hostname(host, sizeof host);
    void *zctx = zmq_ctx_new();
    void *ctl_ingest = s_pair(zctx, EP_CTL_INGEST);
    void *ctl_hub = s_pair(zctx, EP_CTL_HUB);
    void *ctl_sender = s_pair(zctx, EP_CTL_SENDER);
    void *ctl_aggr = s_pair(zctx, EP_CTL_AGGR);
    threads_t t = {0};
    pthread_t th_ig, th_hub, th_snd, th_agg;
    int started_ig = 0, started_hub = 0, started_snd = 0, started_agg = 0;
    if (!ctl_ingest || !ctl_hub || !ctl_sender || !ctl_aggr) {
        log_err("orchester: zmq: %s", zmq_strerror(zmq_errno()));
        goto out;
    }

    sender_opts_t so;
    sender_opts_default(&so);
    so.dest.queue_cap = (uint64_t)o.v[OPT_QUEUE];
    so.dest.user_timeout_ms = (int)o.v[OPT_USER_TIMEOUT];
    so.dest.tls_ca = o.ca; /* argv: lives as long as the process */
    so.dest.tls_handshake_ms = (int)o.v[OPT_TLS_HANDSHAKE];
    so.spill.mem_cap = (uint64_t)o.v[OPT_CRIT_MEMORY];
    so.spill.crit_queue = (uint64_t)o.v[OPT_CRIT_QUEUE];
    so.spill.crit_inflight = (size_t)o.v[OPT_CRIT_INFLIGHT];
    so.stall_ms = (int)o.v[OPT_STALL];
    so.drain_ms = (int)o.v[OPT_DRAIN] * 1000;
    so.in_endpoint = EP_SENDER;
    so.ctl_endpoint = EP_CTL_SENDER;
    so.stats_endpoint = EP_STATS;
    t.snd = sender_new(zctx, r, &so, err, sizeof err);
    if (t.snd == NULL) {
        log_err("orchester: %s", err);
        goto out;
    }
    hub_opts_t ho = {.batches_endpoint = EP_BATCHES,
                     .sender_endpoint = EP_SENDER,
                     .stats_endpoint = EP_STATS,
                     .ctl_endpoint = EP_CTL_HUB,
                     .ingest_reload_endpoint =
                         cfg->nlistens > 0 ? EP_TLS_RELOAD : NULL,
                     .hostname = host,
                     .config_path = o.config,
                     .stats_interval = (int)o.v[OPT_STATS],
                     .maxline = (size_t)o.v[OPT_MAXLINE],
                     .curve = cc,
                     .base = base,
                     .routes = routes,
                     .routes_path = rpath,
                     .agg_endpoint = EP_AGGR,
                     .agg_out_endpoint = EP_AGGR_OUT};
    base = NULL; /* the hub's now, whatever hub_new says */
    routes = NULL;
    t.hub = hub_new(zctx, cfg, r, &ho, err, sizeof err);
    if (t.hub == NULL) {
        log_err("orchester: %s", err);
        goto out;
    }
    /* the aggregate rules' stage: its own thread, fed by the hub */
    aggregator_opts_t ao;
    aggregator_opts_default(&ao);
    ao.in_endpoint = EP_AGGR;
    ao.out_endpoint = EP_AGGR_OUT;
    ao.stats_endpoint = EP_STATS;
    ao.ctl_endpoint = EP_CTL_AGGR;
    ao.max_series = (size_t)o.v[OPT_AGGR_SERIES];
    ao.max_buckets = 8 * ao.max_series;
    ao.max_values = 16 * ao.max_series;
    t.agg = aggregator_new(zctx, r, &ao, err, sizeof err);
    if (t.agg == NULL) {
        log_err("orchester: %s", err);
        goto out;
    }
    if (cfg->nlistens > 0) {
        ingest_opts_t io;
        ingest_opts_default(&io);
        io.maxline = (size_t)o.v[OPT_MAXLINE];
        io.max_frame = (size_t)o.v[OPT_MAXFRAME];
        io.max_conns = (size_t)o.v[OPT_CONNS];
        io.tls_handshake_ms = (int)o.v[OPT_TLS_HANDSHAKE];
        io.max_ratio = (uint64_t)o.v[OPT_INFLATE_RATIO];
        io.tls_ca = o.ca;
        io.embedded = 1;
        io.partial_budget = (size_t)o.v[OPT_BUDGET];
        io.orchester = EP_BATCHES;
        if (cfg->ha.role != HA_NONE && cfg->ha.peer_satellites) {
            /* in a pair the embedded satellite sends to whichever member
             * is active: this one over inproc, or the peer's satellites
             * endpoint, turning to the other when acknowledgements stop */
            io.embedded = 0;
            io.orchester_alt = cfg->ha.peer_satellites;
            if (cc->on) { /* the peer's endpoint: the pair's shared key */
                io.curve_kp = &cc->kp;
                io.curve_server = cc->kp.pub;
            }
            if (cfg->orchester_timeout_ms > 0)
                io.timeout_ms = cfg->orchester_timeout_ms;
        }
        io.ctl_endpoint = EP_CTL_INGEST;
        io.reload_endpoint = EP_TLS_RELOAD;
        io.stats_endpoint = EP_STATS;
        if (getrandom(&io.sat_id, sizeof io.sat_id, 0) != sizeof io.sat_id)
            io.sat_id = (uint64_t)getpid();
        t.ig =
            ingest_new(zctx, cfg->listens, cfg->nlistens, &io, err, sizeof err);
        if (t.ig == NULL) {
            log_err("orchester: %s", err);
            goto out;
        }
    }
    if (o.pidfile && daemon_pidfile(o.pidfile) != 0)
        log_warn("orchester: pid file %s: %s", o.pidfile, strerror(errno));

    started_snd = pthread_create(&th_snd, NULL, s_sender_main, t.snd) == 0;
    started_agg = pthread_create(&th_agg, NULL, s_aggr_main, t.agg) == 0;
    started_hub = pthread_create(&th_hub, NULL, s_hub_main, t.hub) == 0;
    if (t.ig)
        started_ig = pthread_create(&th_ig, NULL, s_ingest_main, t.ig) == 0;
    if (!started_snd || !started_hub || !started_agg || (t.ig && !started_ig)) {
        log_err("orchester: cannot start threads");
        goto stop;
    }
    log_info("orchester: started: %zu listeners, %zu destinations, %zu rules",
             cfg->nlistens, router_ndests(r), cfg->nrules);
    for (;;) {
        int sig = daemon_wait_signal((int)opt_default(OPT_SIGNAL_POLL));
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP) {
            log_info("orchester: SIGHUP: reloading %s", o.config);
            msg_send_ctl(ctl_hub, MSG_RELOAD, 0, 0);
        }
    }
    log_info("orchester: stopping: draining for at most %lld s",
             o.v[OPT_DRAIN]);
    rc = 0;
stop:
    if (started_ig) {
        msg_send_ctl(ctl_ingest, MSG_STOP, 0, 0);
        pthread_join(th_ig, NULL);
    }
    if (started_hub) {
        /* the hub stops the aggregator, and routes its last outputs */
        msg_send_ctl(ctl_hub, MSG_STOP, 0, 0);
        pthread_join(th_hub, NULL);
    } else if (started_snd) {
        msg_send_ctl(ctl_sender, MSG_STOP, 0, 0);
    }
    if (started_agg) {
        /* ended already when the hub's STOP reached it; if not (its pipe
         * was full, or the hub never ran), this one ends it */
        msg_send_ctl(ctl_aggr, MSG_STOP, 0, ZMQ_DONTWAIT);
        pthread_join(th_agg, NULL);
    }
    if (started_snd)
        pthread_join(th_snd, NULL);
out:
    ingest_destroy(&t.ig);
    hub_destroy(&t.hub);
    aggregator_destroy(&t.agg);
    sender_destroy(&t.snd);
    if (ctl_ingest)
        zmq_close(ctl_ingest);
    if (ctl_hub)
        zmq_close(ctl_hub);
    if (ctl_sender)
        zmq_close(ctl_sender);
    if (ctl_aggr)
        zmq_close(ctl_aggr);
    zmq_ctx_term(zctx);
    free(cc);
    router_destroy(&r);
    config_destroy(&cfg);
    config_destroy(&base);
    routes_destroy(&routes);
    free(rpath);
    if (o.pidfile)
        unlink(o.pidfile);
    log_info("orchester: stopped");
    return rc;
}
