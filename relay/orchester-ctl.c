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

static void s_usage(FILE *f)
{
    fprintf(f, "usage: orchester-ctl (-f CONFIG | -e ENDPOINT) [-T MS] "
               "COMMAND\n"
               "commands:\n"
               "  status   listeners, destinations with queue depths, "
               "counters\n"
               "  reload   read the configuration again and switch to it when "
               "it is good\n");
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *ep = NULL;
    int timeout = 3000, c;
    while ((c = getopt(argc, argv, "f:e:T:vh")) != -1) {
        switch (c) {
        case 'f': conf = optarg; break;
        case 'e': ep = optarg; break;
        case 'T': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v <= 0 || v > 3600000) {
                fprintf(stderr, "orchester-ctl: -T: bad number '%s'\n", optarg);
                return 2;
            }
            timeout = (int)v;
            break;
        }
        case 'v': printf("orchester-ctl %s\n", PACKAGE_VERSION); return 0;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if ((conf == NULL) == (ep == NULL) || optind != argc - 1 || timeout <= 0) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    config_t *cfg = NULL;
    char err[1024];
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
    rc = strncmp(zmq_msg_data(&m), "error", zmq_msg_size(&m) < 5 ? zmq_msg_size(&m) : 5) == 0 ? 1 : 0;
    zmq_msg_close(&m);
out:
    zmq_close(req);
    zmq_ctx_term(zctx);
    config_destroy(&cfg);
    return rc;
}
