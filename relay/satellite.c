/*
 * satellite.c -- a standalone satellite: listeners on one host, batches to
 * the orchester over zmq tcp.
 *
 * Wiring only: options, config (listen and orchester statements), one
 * ingest thread (src/ingest.c), and signals.  SIGTERM/SIGINT close the
 * listeners, send the last batch and wait a bounded time for the
 * acknowledgements before exiting.
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

#include "config.h"
#include "daemon.h"
#include "ingest.h"
#include "log.h"
#include "options.h"
#include "msg.h"

#define EP_CTL "inproc://satellite-ctl"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: satellite -f CONFIG [options]\n"
               "  -f FILE  configuration: listen statements and\n"
               "           orchester tcp://HOST:PORT [...] [timeout N ms] ;\n");
    opt_usage(f, OPT_P_SATELLITE);
    fprintf(f, "  -C PATH  CA file or directory that verifies mtls clients\n"
               "  -P FILE  write the pid to FILE\n"
               "  -v       print the version\n");
}

static void *s_main(void *p)
{
    ingest_run(p);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *pidfile = NULL, *ca = NULL;
    long long v[OPT_N];
    char spec[128], err[1024];
    opt_init(v);
    opt_getopt(OPT_P_SATELLITE, "f:C:P:vh", spec, sizeof spec);
    int c;
    while ((c = getopt(argc, argv, spec)) != -1) {
        switch (c) {
        case 'f': conf = optarg; break;
        case 'C': ca = optarg; break;
        case 'P': pidfile = optarg; break;
        case 'v': printf("satellite %s\n", PACKAGE_VERSION); return 0;
        case 'h': s_usage(stdout); return 0;
        default:
            switch (opt_take(OPT_P_SATELLITE, c, optarg, v, err, sizeof err)) {
            case 1: break;
            case -1: fprintf(stderr, "satellite: %s\n", err); return 2;
            default: s_usage(stderr); return 2;
            }
        }
    }
    if (conf == NULL || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    config_t *cfg = config_load(conf, err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, "satellite: %s\n", err);
        return 1;
    }
    if (cfg->norchesters == 0 || cfg->nlistens == 0) {
        fprintf(stderr,
                "satellite: %s: needs listen statements and an "
                "'orchester ENDPOINT ;' statement\n",
                conf);
        config_destroy(&cfg);
        return 1;
    }
    if (cfg->nclusters || cfg->nrules || cfg->nsatellites_bind ||
        cfg->buffer.target || cfg->ha.role != HA_NONE)
        log_warn("satellite: %s: cluster, match, rewrite, satellites, buffer "
                 "and ha statements are the orchester's; a satellite "
                 "listens and sends to its orchester",
                 conf);
    char msg[256];
    daemon_raise_nofile(msg, sizeof msg);
    log_info("satellite: %s", msg);
    daemon_block_signals();
    int rc = 1;
    void *zctx = zmq_ctx_new();
    void *ctl = zmq_socket(zctx, ZMQ_PAIR);
    int linger = 0;
    zmq_setsockopt(ctl, ZMQ_LINGER, &linger, sizeof linger);
    ingest_t *ig = NULL;
    curve_conf_t *cc = NULL; /* owned */
    if (zmq_bind(ctl, EP_CTL) != 0) {
        log_err("satellite: zmq: %s", zmq_strerror(zmq_errno()));
        goto out;
    }
    ingest_opts_t io;
    ingest_opts_default(&io);
    io.maxline = (size_t)v[OPT_MAXLINE];
    io.max_frame = (size_t)v[OPT_MAXFRAME];
    io.window_bytes = (size_t)v[OPT_WINDOW];
    io.max_conns = (size_t)v[OPT_CONNS];
    io.tls_handshake_ms = (int)v[OPT_TLS_HANDSHAKE];
    io.max_ratio = (uint64_t)v[OPT_INFLATE_RATIO];
    io.tls_ca = ca;
    io.partial_budget = (size_t)v[OPT_BUDGET];
    if (cfg->orchester_timeout_ms > 0)
        io.timeout_ms = cfg->orchester_timeout_ms;
    io.orchester = cfg->orchesters[0];
    io.orchester_alt = cfg->norchesters > 1 ? cfg->orchesters[1] : NULL;
    io.ctl_endpoint = EP_CTL;
    /* CURVE: this satellite's key pair, and the orchester's public key */
    cc = calloc(1, sizeof *cc);
    if (cc == NULL || curve_load(&cfg->curve, cc, err, sizeof err) != 0) {
        log_err("satellite: %s", cc ? err : "out of memory");
        goto out;
    }
    if (cc->on && cfg->curve.server == NULL) {
        log_err("satellite: %s: curve needs 'server FILE' (the orchester's "
                "public key)",
                conf);
        goto out;
    }
    if (cc->on) {
        io.curve_kp = &cc->kp;
        io.curve_server = cc->server;
    }
    /* orchester-ctl -f THIS_CONFIG status; and self metrics, as the
     * statistics statement says (every 60 s by default), named
     * PREFIX.received and so on */
    io.control_endpoint = cfg->control;
    char host[256] = "", prefix[512];
    gethostname(host, sizeof host - 1);
    for (char *p = host; *p; p++)
        if (*p == '.')
            *p = '_';
    if (cfg->stats.prefix)
        snprintf(prefix, sizeof prefix, "%s", cfg->stats.prefix);
    else
        snprintf(prefix, sizeof prefix, "carbon.satellites.%s",
                 host[0] ? host : "unknown");
    io.metrics_prefix = prefix;
    io.metrics_s = cfg->stats.interval > 0 ? cfg->stats.interval : 60;
    if (getrandom(&io.sat_id, sizeof io.sat_id, 0) != sizeof io.sat_id)
        io.sat_id = (uint64_t)getpid();
    ig = ingest_new(zctx, cfg->listens, cfg->nlistens, &io, err, sizeof err);
    if (ig == NULL) {
        log_err("satellite: %s", err);
        goto out;
    }
    if (pidfile && daemon_pidfile(pidfile) != 0)
        log_warn("satellite: pid file %s: %s", pidfile, strerror(errno));
    pthread_t th;
    if (pthread_create(&th, NULL, s_main, ig) != 0) {
        log_err("satellite: cannot start the ingest thread");
        goto out;
    }
    if (cfg->norchesters > 1)
        log_info("satellite: started: %zu listeners, sending to %s (or %s, "
                 "when %s does not acknowledge)",
                 cfg->nlistens, cfg->orchesters[0], cfg->orchesters[1],
                 cfg->orchesters[0]);
    else
        log_info("satellite: started: %zu listeners, sending to %s",
                 cfg->nlistens, cfg->orchesters[0]);
    for (;;) {
        int sig = daemon_wait_signal((int)opt_default(OPT_SIGNAL_POLL));
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP) { /* the configuration is read at start only */
            log_info("satellite: SIGHUP: TLS listeners read their files "
                     "again");
            msg_send_ctl(ctl, MSG_RELOAD, 0, 0);
        }
    }
    msg_send_ctl(ctl, MSG_STOP, 0, 0);
    pthread_join(th, NULL);
    rc = 0;
out:
    ingest_destroy(&ig);
    zmq_close(ctl);
    zmq_ctx_term(zctx);
    free(cc);
    config_destroy(&cfg);
    if (pidfile)
        unlink(pidfile);
    log_info("satellite: stopped");
    return rc;
}
