/*
 * orchester-ctl.c -- the operator's command line over the control socket.
 *
 *   orchester-ctl -f CONFIG COMMAND    (the endpoint of the config's `control`)
 *   orchester-ctl -e ENDPOINT COMMAND
 *
 * Sends COMMAND (status, reload, buffer) on a zmq REQ socket and prints the
 * answer.  Gives up after the timeout (-T ms, default 3000) with exit
 * status 1.
 *
 *   orchester-ctl ... buffer CLUSTER:ADDR peek N
 *
 * asks for `buffer` (the Redis target and prefix), then reads the next N
 * datapoints of that destination's stream from Redis itself (read-only:
 * XRANGE), each printed after the id of its entry.
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "curve.h"
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
               "it is good\n"
               "  buffer   the Redis buffer: per destination, what it holds\n"
               "  buffer CLUSTER:ADDR peek N\n"
               "           the next N datapoints of that destination's "
               "backlog\n"
               "  ha       this member of the HA pair: state, peer, "
               "failovers\n"
               "  ha failback\n"
               "           the active backup hands back to the primary\n"
               "  route [list]\n"
               "           the rules in force, numbered, and the route "
               "changes\n"
               "  route add POS|first|last 'RULE'\n"
               "           a match or rewrite rule before rule POS\n"
               "  route remove POS\n"
               "           rule POS no longer applies\n"
               "  route drain CLUSTER HOST:PORT, route back CLUSTER "
               "HOST:PORT\n"
               "           the member takes no share, or takes it again\n"
               "  route redirect CLUSTER MEMBER..., route restore CLUSTER\n"
               "           the cluster sends to these members instead, or "
               "to its own\n"
               "  route clear\n"
               "           every route change undone\n"
               "orchester-ctl keygen PATH\n"
               "           write a CURVE key pair to PATH (mode 0600) and "
               "its public key\n"
               "           to PATH.pub\n");
}

static redisContext *s_redis(const char *target, int timeout_ms);

/* "sentinel:HOST:PORT,.../NAME": ask each sentinel for the master, in turn;
 * connect to the first answer.  NULL with a message on stderr. */
static redisContext *s_redis_sentinel(const char *target, int timeout_ms)
{
    const char *slash = strrchr(target, '/');
    char list[1024], hp[300];
    if (slash == NULL || (size_t)(slash - target - 9) >= sizeof list) {
        fprintf(stderr, "orchester-ctl: bad Redis target '%s'\n", target);
        return NULL;
    }
    snprintf(list, sizeof list, "%.*s", (int)(slash - target - 9), target + 9);
    for (char *save = NULL, *one = strtok_r(list, ",", &save); one;
         one = strtok_r(NULL, ",", &save)) {
        redisContext *sc = s_redis(one, timeout_ms);
        if (sc == NULL)
            continue;
        redisReply *r =
            redisCommand(sc, "SENTINEL get-master-addr-by-name %s", slash + 1);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            snprintf(hp, sizeof hp, "%s:%s", r->element[0]->str,
                     r->element[1]->str);
            freeReplyObject(r);
            redisFree(sc);
            return s_redis(hp, timeout_ms);
        }
        freeReplyObject(r);
        redisFree(sc);
    }
    fprintf(stderr, "orchester-ctl: no sentinel of '%s' named its master\n",
            target);
    return NULL;
}

/* Connect to the buffer's Redis, target as `buffer` says it (unix:PATH,
 * HOST:PORT or sentinel:...), within timeout_ms.  NULL with a message on
 * stderr. */
static redisContext *s_redis(const char *target, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c;
    if (strncmp(target, "sentinel:", 9) == 0)
        return s_redis_sentinel(target, timeout_ms);
    if (strncmp(target, "unix:", 5) == 0) {
        c = redisConnectUnixWithTimeout(target + 5, tv);
    } else {
        char host[256];
        const char *colon = strrchr(target, ':');
        size_t hl = colon ? (size_t)(colon - target) : 0;
        if (colon == NULL || hl == 0 || hl >= sizeof host) {
            fprintf(stderr, "orchester-ctl: bad Redis target '%s'\n", target);
            return NULL;
        }
        memcpy(host, target, hl);
        host[hl] = '\0';
        if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = '\0';
        }
        c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
    }
    if (c == NULL || c->err) {
        fprintf(stderr, "orchester-ctl: redis %s: %s\n", target,
                c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* Print the first n datapoints of the stream key: "ID LINE" each.
 * Returns 0, or 1 after an error. */
static int s_peek(redisContext *c, const char *key, long n)
{
    char start[64] = "-";
    while (n > 0) {
        redisReply *r = redisCommand(c, "XRANGE %s %s + COUNT 16", key, start);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "orchester-ctl: XRANGE %s: %s\n", key,
                    r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
            freeReplyObject(r);
            return 1;
        }
        if (r->elements == 0) {
            freeReplyObject(r);
            return 0; /* the backlog ends here */
        }
        for (size_t i = 0; i < r->elements && n > 0; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            snprintf(start, sizeof start, "(%s", e->element[0]->str);
            const redisReply *f = e->element[1];
            for (size_t k = 0; k + 1 < f->elements; k += 2) {
                if (strcmp(f->element[k]->str, "d") != 0)
                    continue;
                const char *p = f->element[k + 1]->str;
                const char *end = p + f->element[k + 1]->len;
                while (p < end && n > 0) {
                    const char *nl = memchr(p, '\n', (size_t)(end - p));
                    size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
                    printf("%s %.*s\n", e->element[0]->str, (int)l, p);
                    n--;
                    p += l + 1;
                }
            }
        }
        freeReplyObject(r);
    }
    return 0;
}

/* `buffer DEST peek N`: answer is orchester's `buffer` answer. */
static int s_buffer_peek(const char *answer, const char *dest, long n,
                         int timeout_ms)
{
    char target[4200], prefix[256];
    if (sscanf(answer, "redis %4199s prefix=%255s", target, prefix) != 2) {
        fprintf(stderr, "orchester-ctl: %s", answer);
        return 1;
    }
    char key[1024], field[1100];
    snprintf(key, sizeof key, "%s:buf:%s", prefix, dest);
    snprintf(field, sizeof field, " key=%s ", key);
    if (strstr(answer, field) == NULL) {
        fprintf(stderr,
                "orchester-ctl: no destination %s (CLUSTER:ADDR, as "
                "`buffer` shows them)\n",
                dest);
        return 1;
    }
    redisContext *c = s_redis(target, timeout_ms);
    if (c == NULL)
        return 1;
    int rc = s_peek(c, key, n);
    redisFree(c);
    return rc;
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
    if (optind + 2 == argc && strcmp(argv[optind], "keygen") == 0) {
        /* a CURVE key pair: PATH (secret, 0600) and PATH.pub */
        if (curve_keygen(argv[optind + 1], err, sizeof err) != 0) {
            fprintf(stderr, "orchester-ctl: %s\n", err);
            return 1;
        }
        printf("wrote %s (the key pair: keep it secret) and %s.pub\n",
               argv[optind + 1], argv[optind + 1]);
        return 0;
    }
    long long peek = 0;
    const char *ha_cmd = NULL;
    char route_cmd[8192];
    const char *peek_dest = NULL;
    if (optind + 4 == argc && strcmp(argv[optind], "buffer") == 0 &&
        strcmp(argv[optind + 2], "peek") == 0) {
        peek_dest = argv[optind + 1];
        if (opt_num(argv[optind + 3], 1, 1000000000, &peek) != 0) {
            fprintf(stderr, "orchester-ctl: peek: bad count '%s'\n",
                    argv[optind + 3]);
            return 2;
        }
    } else if (optind == argc - 2 && strcmp(argv[optind], "ha") == 0 &&
               strcmp(argv[optind + 1], "failback") == 0) {
        ha_cmd = "ha failback";
    } else if (optind < argc && strcmp(argv[optind], "route") == 0) {
        /* the words after it, joined by spaces: the rule may come quoted
         * as one argument or unquoted as several */
        size_t len = 0;
        route_cmd[0] = '\0';
        for (int i = optind; i < argc; i++) {
            int n = snprintf(route_cmd + len, sizeof route_cmd - len, "%s%s",
                             i > optind ? " " : "", argv[i]);
            if (n < 0 || (size_t)n >= sizeof route_cmd - len) {
                fprintf(stderr, "orchester-ctl: route: too long\n");
                return 2;
            }
            len += (size_t)n;
        }
        ha_cmd = route_cmd;
    } else if (optind != argc - 1) {
        s_usage(stderr);
        return 2;
    }
    if ((conf == NULL) == (ep == NULL)) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = ha_cmd ? ha_cmd : argv[optind];
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
    rc = strncmp(zmq_msg_data(&m), "error",
                 zmq_msg_size(&m) < 5 ? zmq_msg_size(&m) : 5) == 0
             ? 1
             : 0;
    if (peek_dest && rc == 0) {
        char *answer = strndup(zmq_msg_data(&m), zmq_msg_size(&m));
        rc = answer ? s_buffer_peek(answer, peek_dest, (long)peek, timeout) : 1;
        free(answer);
    } else {
        fwrite(zmq_msg_data(&m), 1, zmq_msg_size(&m), stdout);
    }
    zmq_msg_close(&m);
out:
    zmq_close(req);
    zmq_ctx_term(zctx);
    config_destroy(&cfg);
    return rc;
}
