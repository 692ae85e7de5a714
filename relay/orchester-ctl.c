/*
 * orchester-ctl.c -- the operator's command line over the control socket.
 *
 *   orchester-ctl -f CONFIG COMMAND    (the endpoint of the config's `control`)
 *   orchester-ctl -e ENDPOINT COMMAND
 *
 * Sends COMMAND (status) on a zmq REQ socket and prints the answer.  Gives
 * up after the timeout (-T ms, default 3000) with exit status 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "options.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: orchester-ctl (-f CONFIG | -e ENDPOINT) [-T MS] "
               "COMMAND\n"
               "  -f FILE  the configuration whose control endpoint to use\n"
               "  -e EP    the control endpoint\n");
    opt_usage(f, OPT_P_CTL);
    fprintf(f, "commands:\n"
               "  status   listeners, destinations with queue depths, "
               "counters\n"
               "  reload   read the configuration again and switch to it when "
               "it is good\n");
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *ep = NULL;
    long long v[OPT_N];
    char spec[64], err[1024];
    opt_init(v);
    opt_getopt(OPT_P_CTL, "f:e:vh", spec, sizeof spec);
    int c;
    while ((c = getopt(argc, argv, spec)) != -1) {
        switch (c) {
        case 'f': conf = optarg; break;
        case 'e': ep = optarg; break;
        case 'v': printf("orchester-ctl %s\n", PACKAGE_VERSION); return 0;
        case 'h': s_usage(stdout); return 0;
        default:
            switch (opt_take(OPT_P_CTL, c, optarg, v, err, sizeof err)) {
            case 1: break;
            case -1: fprintf(stderr, "orchester-ctl: %s\n", err); return 2;
            default: s_usage(stderr); return 2;
            }
        }
    }
    int timeout = (int)v[OPT_CTL_TIMEOUT];
    if ((conf == NULL) == (ep == NULL) || optind != argc - 1) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    config_t *cfg = NULL;
    if (conf) {
        cfg = config_load(conf, err, sizeof err);
        if (cfg == NULL) {
            fprintf(stderr, "orchester-ctl: %s\n", err);
            return 1;
        }
        if (cfg->control == NULL) {
            fprintf(stderr, "orchester-ctl: %s: no 'control' statement\n",
                    conf);
            config_destroy(&cfg);
            return 1;
        }
        ep = cfg->control;
    }
    int rc = 1;
    void *zctx = zmq_ctx_new();
    void *req = zmq_socket(zctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(req, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if (zmq_connect(req, ep) != 0) {
        fprintf(stderr, "orchester-ctl: %s: %s\n", ep,
                zmq_strerror(zmq_errno()));
        goto out;
    }
    if (zmq_send(req, cmd, strlen(cmd), 0) < 0) {
        fprintf(stderr, "orchester-ctl: %s: send: %s\n", ep,
                zmq_strerror(zmq_errno()));
        goto out;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, req, 0) < 0) {
        fprintf(stderr, "orchester-ctl: %s: no answer within %d ms\n", ep,
                timeout);
        zmq_msg_close(&m);
        goto out;
    }
    fwrite(zmq_msg_data(&m), 1, zmq_msg_size(&m), stdout);
    rc = strncmp(zmq_msg_data(&m), "error",
                 zmq_msg_size(&m) < 5 ? zmq_msg_size(&m) : 5) == 0
             ? 1
             : 0;
    zmq_msg_close(&m);
out:
    zmq_close(req);
    zmq_ctx_term(zctx);
    config_destroy(&cfg);
    return rc;
}
