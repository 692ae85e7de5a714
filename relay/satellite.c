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

#define EP_CTL "inproc://satellite-ctl"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: satellite -f CONFIG [-M MAXLINE] [-F MAXFRAME] "
               "[-W WINDOW_BYTES] "
               "[-c CONNS] [-B BYTES] [-P PIDFILE] [-v]\n"
               "  -f FILE  configuration: listen statements and\n"
               "           orchester tcp://HOST:PORT [...] [timeout N ms] ;\n"
               "  -M N     longest accepted line, bytes (16384)\n"
               "  -F N     largest accepted pickle frame, bytes (1048576)\n"
               "  -W N     bytes of unacknowledged batches kept (8388608)\n"
               "  -c N     open connections per TCP or unix listener\n"
               "           (derived from the descriptor limit)\n"
               "  -B N     bytes all client connections may hold in unfinished\n"
               "           lines and pickle frames (67108864)\n"
               "  -P FILE  write the pid to FILE\n");
}

static void *s_main(void *p) { ingest_run(p); return NULL; }

int main(int argc, char **argv)
{
    const char *conf = NULL, *pidfile = NULL;
    long maxline = 16384, window = 8 << 20, maxframe = 1 << 20, conns = 0;
    long budget = 64L << 20;
    int c;
    while ((c = getopt(argc, argv, "f:M:F:W:c:B:P:vh")) != -1) {
        char *end = NULL;
        switch (c) {
        case 'f': conf = optarg; break;
        case 'P': pidfile = optarg; break;
        case 'M':
            maxline = strtol(optarg, &end, 10);
            if (*end || maxline < 64 || maxline > (1L << 26)) {
                fprintf(stderr, "satellite: -M: bad number '%s'\n", optarg);
                return 2;
            }
            break;
        case 'F':
            maxframe = strtol(optarg, &end, 10);
            if (*end || maxframe < 64 || maxframe > (1L << 30)) {
                fprintf(stderr, "satellite: -F: bad number '%s'\n", optarg);
                return 2;
            }
            break;
        case 'W':
            window = strtol(optarg, &end, 10);
            if (*end || window < 65536 || window > (1L << 34)) {
                fprintf(stderr, "satellite: -W: bad number '%s' (>= 65536)\n",
                        optarg);
                return 2;
            }
            break;
        case 'c':
            conns = strtol(optarg, &end, 10);
            if (*end || conns < 1 || conns > (1L << 30)) {
                fprintf(stderr, "satellite: -c: bad number '%s'\n", optarg);
                return 2;
            }
            break;
        case 'B':
            budget = strtol(optarg, &end, 10);
            if (*end || budget < 65536 || budget > (1L << 40)) {
                fprintf(stderr, "satellite: -B: bad number '%s' (>= 65536)\n",
                        optarg);
                return 2;
            }
            break;
        case 'v': printf("satellite %s\n", PACKAGE_VERSION); return 0;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (conf == NULL || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    char err[1024];
    config_t *cfg = config_load(conf, err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, "satellite: %s\n", err);
        return 1;
    }
    if (cfg->norchesters == 0 || cfg->nlistens == 0) {
        fprintf(stderr, "satellite: %s: needs listen statements and an "
                        "'orchester ENDPOINT ;' statement\n", conf);
        config_destroy(&cfg);
        return 1;
    }
    if (cfg->nclusters || cfg->nrules || cfg->nsatellites_bind || cfg->control)
        log_warn("satellite: %s: cluster, match, rewrite, satellites and "
                 "control statements are the orchester's; a satellite only "
                 "listens and sends to its orchester", conf);
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
    if (zmq_bind(ctl, EP_CTL) != 0) {
        log_err("satellite: zmq: %s", zmq_strerror(zmq_errno()));
        goto out;
    }
    ingest_opts_t io;
    ingest_opts_default(&io);
    io.maxline = (size_t)maxline;
    io.max_frame = (size_t)maxframe;
    io.window_bytes = (size_t)window;
    io.max_conns = (size_t)conns;
    io.partial_budget = (size_t)budget;
    io.timeout_ms = cfg->orchester_timeout_ms > 0 ? cfg->orchester_timeout_ms
                                                  : 3000;
    io.orchester = cfg->orchesters[0];
    io.ctl_endpoint = EP_CTL;
    if (getrandom(&io.sat_id, sizeof io.sat_id, 0) != sizeof io.sat_id)
        io.sat_id = (uint64_t)getpid();
    ig = ingest_new(zctx, cfg->listens, cfg->nlistens, &io, err, sizeof err);
    if (ig == NULL) {
        log_err("satellite: %s", err);
        goto out;
    }
    if (cfg->norchesters > 1)
        log_warn("satellite: failover to %s is not supported yet; sending "
                 "to %s only", cfg->orchesters[1], cfg->orchesters[0]);
    if (pidfile && daemon_pidfile(pidfile) != 0)
        log_warn("satellite: pid file %s: %s", pidfile, strerror(errno));
    pthread_t th;
    if (pthread_create(&th, NULL, s_main, ig) != 0) {
        log_err("satellite: cannot start the ingest thread");
        goto out;
    }
    log_info("satellite: started: %zu listeners, sending to %s",
             cfg->nlistens, cfg->orchesters[0]);
    for (;;) {
        int sig = daemon_wait_signal(1000);
        if (sig == SIGTERM || sig == SIGINT)
            break;
    }
    zmq_send(ctl, "STOP", 4, 0);
    pthread_join(th, NULL);
    rc = 0;
out:
    ingest_destroy(&ig);
    zmq_close(ctl);
    zmq_ctx_term(zctx);
    config_destroy(&cfg);
    if (pidfile)
        unlink(pidfile);
    log_info("satellite: stopped");
    return rc;
}
