/*
 * testmode.c -- see testmode.h.
 */
#include "testmode.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "line.h"

static const char *s_type(const config_cluster_t *c)
{
    switch (c->type) {
    case CLUSTER_FORWARD: return "forward";
    case CLUSTER_ANY_OF: return "any_of";
    case CLUSTER_FAILOVER: return "failover";
    case CLUSTER_CARBON_CH:
        return c->graphite ? "carbon_ch graphite" : "carbon_ch";
    case CLUSTER_FNV1A_CH: return "fnv1a_ch";
    case CLUSTER_JUMP_FNV1A_CH: return "jump_fnv1a_ch";
    case CLUSTER_FILE: return "file";
    case CLUSTER_FILE_IP: return "file ip";
    }
    return "?";
}

typedef struct {
    FILE *out;
    const router_t *r;
    size_t compute; /* the next TRACE_COMPUTE's compute */
} trace_t;

static void s_trace_fn(void *arg, router_trace_t ev, const config_rule_t *rule,
                       const config_cluster_t *cluster,
                       const router_dest_t *dest, const char *text,
                       size_t textlen)
{
    trace_t *tr = arg;
    FILE *out = tr->out;
    char kind[32];
    switch (ev) {
    case TRACE_AGGREGATE:
        fprintf(out, "    aggregate");
        for (size_t i = 0; i < rule->nexprs; i++)
            fprintf(out, " %s", rule->exprs[i]);
        fprintf(out, " (%s:%d) -> %.*s\n", rule->pos.file, rule->pos.line,
                (int)textlen, text);
        tr->compute = 0;
        break;
    case TRACE_COMPUTE:
        config_compute_name(&rule->aggr->computes[tr->compute++], kind,
                            sizeof kind);
        fprintf(out, "        %s -> %.*s\n", kind, (int)textlen, text);
        if (tr->compute == rule->aggr->ncomputes) {
            fprintf(out, "        every %d s, expires after %d s; outputs ",
                    rule->aggr->interval, rule->aggr->expire);
            if (rule->ndests == 0)
                fprintf(out, "routed from the top");
            else
                fprintf(out, "to");
            for (size_t i = 0; i < rule->ndests; i++)
                fprintf(out, " %s", rule->dests[i]);
            fprintf(out, "\n");
        }
        break;
    case TRACE_RULE:
        fprintf(out, "    match");
        if (rule->match_all)
            fprintf(out, " *");
        for (size_t i = 0; i < rule->nexprs; i++)
            fprintf(out, " %s", rule->exprs[i]);
        fprintf(out, " (%s:%d) -> %.*s\n", rule->pos.file, rule->pos.line,
                (int)textlen, text);
        break;
    case TRACE_VALIDATE:
        fprintf(out, "        validate %s -> %.*s: fail: %s\n", rule->validate,
                (int)textlen, text ? text : "",
                rule->validate_action == VALIDATE_LOG ? "log" : "drop");
        break;
    case TRACE_REWRITE:
        fprintf(out, "    rewrite %s into %s (%s:%d) -> %.*s\n", rule->exprs[0],
                rule->replacement, rule->pos.file, rule->pos.line, (int)textlen,
                text);
        break;
    case TRACE_CLUSTER:
        fprintf(out, "        %s (%s)", cluster->name, s_type(cluster));
        if (rule && rule->route_using)
            fprintf(out, " using %.*s", (int)textlen, text);
        fprintf(out, "\n");
        break;
    case TRACE_DEST:
        fprintf(out, "            %s%s\n", dest->addr,
                router_critical(tr->r, rule) ? " (critical)" : "");
        break;
    case TRACE_BLACKHOLE: fprintf(out, "        blackhole\n"); break;
    case TRACE_STOP: fprintf(out, "    stop\n"); break;
    }
}

/* One field only (white space around it taken off): *len is its end. */
static int s_bare(const char *buf, size_t *len)
{
    size_t b = 0, e = *len;
    while (b < e && (buf[b] == ' ' || buf[b] == '\t'))
        b++;
    while (e > b &&
           (buf[e - 1] == ' ' || buf[e - 1] == '\t' || buf[e - 1] == '\r'))
        e--;
    for (size_t i = b; i < e; i++)
        if (buf[i] == ' ' || buf[i] == '\t')
            return 0;
    *len = e;
    return e > b;
}

int testmode_run(const router_t *r, FILE *in, FILE *out, size_t maxline)
{
    char *buf = NULL;
    size_t cap = 0;
    size_t outcap = maxline + 64;
    char *canon = malloc(outcap);
    router_ctx_t *ctx = router_ctx_new();
    ssize_t n;
    if (canon == NULL || ctx == NULL) {
        free(canon);
        router_ctx_destroy(&ctx);
        return -1;
    }
    while ((n = getline(&buf, &cap, in)) >= 0) {
        size_t len = (size_t)n;
        if (len && buf[len - 1] == '\n')
            len--;
        if ((size_t)n > maxline) {
            fprintf(out, "%.*s\n    invalid: toolong\n\n", 60, buf);
            continue;
        }
        line_result_t res;
        line_status_t st =
            line_parse(buf, len, (long long)time(NULL), canon, outcap, &res);
        if (st == LINE_EMPTY)
            continue;
        /* a bare metric name, as carbon-c-relay's test mode takes it:
         * routed as NAME 0 NOW, printed as the name */
        int bare = 0;
        if (st == LINE_FIELDS && s_bare(buf, &len) && len + 32 < cap) {
            snprintf(buf + len, cap - len, " 0 %lld", (long long)time(NULL));
            st = line_parse(buf, strlen(buf), (long long)time(NULL), canon,
                            outcap, &res);
            bare = st == LINE_OK;
        }
        if (st != LINE_OK) {
            fprintf(out, "%.*s\n    invalid: %s\n\n", (int)len, buf,
                    line_status_str(st));
            continue;
        }
        fprintf(out, "%.*s\n", (int)(bare ? strcspn(canon, " ") : res.fulllen),
                canon);
        trace_t tr = {out, r, 0};
        int how = router_route(r, ctx, canon, res.len, res.namelen, NULL, NULL,
                               NULL, s_trace_fn, &tr);
        if (how & ROUTE_NOMATCH)
            fprintf(out, "    no rule matched\n");
        fprintf(out, "\n");
    }
    free(buf);
    free(canon);
    router_ctx_destroy(&ctx);
    return 0;
}
