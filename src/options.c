/*
 * options.c -- see options.h.  The table below is the one place where a
 * default, a range or a timeout of the programs is written.
 */
#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define O_ALL (OPT_P_ORCHESTER | OPT_P_SATELLITE)

static const opt_def_t s_table[OPT_N] = {
    [OPT_QUEUE] = {OPT_QUEUE, 'q', OPT_P_ORCHESTER, 100000, 1, 1LL << 40,
                   "datapoints", "queue size per destination", NULL, NULL},
    [OPT_MAXLINE] = {OPT_MAXLINE, 'M', O_ALL, 16384, 64, 1 << 26, "bytes",
                     "longest accepted line", NULL, NULL},
    [OPT_MAXFRAME] = {OPT_MAXFRAME, 'F', O_ALL, 1 << 20, 64, 1 << 30, "bytes",
                      "largest accepted pickle frame; a client that sends "
                      "a larger one is disconnected",
                      NULL, NULL},
    [OPT_WINDOW] = {OPT_WINDOW, 'W', OPT_P_SATELLITE, 8 << 20, 65536, 1LL << 34,
                    "bytes", "unacknowledged batches a satellite keeps", NULL,
                    NULL},
    [OPT_CONNS] = {OPT_CONNS, 'c', O_ALL, 0, 1, 1 << 30, "connections",
                   "open connections per TCP or unix listener (0: derived "
                   "from the descriptor limit)",
                   NULL, NULL, NULL},
    [OPT_BUDGET] = {OPT_BUDGET, 'B', O_ALL, 64 << 20, 65536, 1LL << 40, "bytes",
                    "what all client connections may hold in unfinished "
                    "lines and pickle frames; past it the one stalled "
                    "longest is closed",
                    NULL, NULL, NULL},
    [OPT_DRAIN] = {OPT_DRAIN, 'D', OPT_P_ORCHESTER, 10, 0, 86400, "s",
                   "drain time on SIGTERM, and for a destination a reload "
                   "removed",
                   "orchester: drain at stop, and drain of a destination a "
                   "reload removed",
                   NULL},
    [OPT_STALL] = {OPT_STALL, 'L', OPT_P_ORCHESTER, 250, 0, 600000, "ms",
                   "how long a full queue of a live destination may hold "
                   "back intake",
                   "orchester: how long a full queue of a live destination "
                   "holds back intake",
                   NULL},
    [OPT_USER_TIMEOUT] = {OPT_USER_TIMEOUT, 'K', OPT_P_ORCHESTER, 10000, 1000,
                          3600000, "ms",
                          "how long data written to a backend may stay "
                          "unacknowledged (or an idle connection "
                          "unanswered) before the connection counts as "
                          "dead and what it did not deliver is sent again",
                          "destination: written data unacknowledged (or an "
                          "idle connection unanswered) this long ends the "
                          "connection (``TCP_USER_TIMEOUT``, keepalives)",
                          NULL, NULL},
    [OPT_STATS] = {OPT_STATS, 'S', OPT_P_ORCHESTER, 0, 1, 86400, "s",
                   "self metrics interval (0: the configuration's, which "
                   "defaults to 60)",
                   "self metrics interval",
                   "``statistics submit every N seconds``", "60 s"},
    [OPT_CTL_TIMEOUT] = {OPT_CTL_TIMEOUT, 'T', OPT_P_CTL, 3000, 1, 3600000,
                         "ms", "how long to wait for the answer",
                         "orchester-ctl: answer timeout (a reload answers "
                         "when it is done)",
                         NULL},
    [OPT_ACK_TIMEOUT] = {OPT_ACK_TIMEOUT, 0, 0, 3000, 1, 3600000, "ms", NULL,
                         "satellite (standalone): how long without any "
                         "acknowledgement before a resend",
                         "``orchester ... timeout N ms ;`` in the "
                         "satellite's configuration"},
    [OPT_ACK_TIMEOUT_MAX] = {OPT_ACK_TIMEOUT_MAX, 0, 0, 60000, 1, 1, "ms", NULL,
                             "satellite (standalone): the longest that "
                             "timeout doubles to while nothing is "
                             "acknowledged (a new connection resends at "
                             "once)",
                             "fixed (``src/ingest.c``)", NULL},
    [OPT_RESEND_CHECK] = {OPT_RESEND_CHECK, 0, 0, 100, 1, 1, "ms", NULL,
                          "satellites: resend check, every",
                          "fixed (``src/ingest.c``)"},
    [OPT_STOP_WAIT] = {OPT_STOP_WAIT, 0, 0, 3000, 1, 1, "ms", NULL,
                       "satellites: wait for acknowledgements at stop",
                       "fixed (``src/ingest.c``)"},
    [OPT_CONNECT_TIMEOUT] = {OPT_CONNECT_TIMEOUT, 0, 0, 3000, 1, 1, "ms", NULL,
                             "destination: connect timeout",
                             "fixed (``src/dest.c``)"},
    [OPT_BACKOFF_MIN] = {OPT_BACKOFF_MIN, 0, 0, 100, 1, 1, "ms", NULL,
                         "destination: first reconnect delay (it doubles "
                         "at each failure; each delay is taken times 0.75 "
                         "to 1.25)",
                         "fixed (``src/dest.c``)"},
    [OPT_BACKOFF_MAX] = {OPT_BACKOFF_MAX, 0, 0, 5000, 1, 1, "ms", NULL,
                         "destination: longest reconnect delay",
                         "fixed (``src/dest.c``)"},
    [OPT_STABLE] = {OPT_STABLE, 0, 0, 5000, 1, 1, "ms", NULL,
                    "destination: how long a connection must hold before "
                    "the reconnect delay starts again from the first (and "
                    "the log limit below starts over)",
                    "fixed (``src/dest.c``)", NULL},
    [OPT_FAIL_LOG] = {OPT_FAIL_LOG, 0, 0, 60000, 1, 1, "ms", NULL,
                      "destination: at most one line about failures per "
                      "this, after the first",
                      "fixed (``src/dest.c``)", NULL},
    [OPT_RESOLVE_WAIT] = {OPT_RESOLVE_WAIT, 0, 0, 5000, 1, 1, "ms", NULL,
                          "destination: wait for the first answer of a "
                          "name's lookup (the lookup itself goes on in the "
                          "background)",
                          "fixed (``src/dest.c``)", NULL},
    [OPT_ACK_POLL] = {OPT_ACK_POLL, 0, 0, 200, 1, 1, "ms", NULL,
                      "destination: how often the kernel is asked what the "
                      "backend acknowledged, while bytes are in flight",
                      "fixed (``src/dest.c``)", NULL},
    [OPT_ACCEPT_PAUSE] = {OPT_ACCEPT_PAUSE, 0, 0, 1000, 1, 1, "ms", NULL,
                          "listener: pause after ``accept`` runs out of "
                          "file descriptors and cannot shed the connection "
                          "either",
                          "fixed (``src/ingest.c``)"},
    [OPT_HELD_RETRY] = {OPT_HELD_RETRY, 0, 0, 1, 1, 1, "ms", NULL,
                        "router: retry of a held-back batch, every",
                        "fixed (``src/hub.c``)"},
    [OPT_CRIT_MEMORY] = {OPT_CRIT_MEMORY, 'R', OPT_P_ORCHESTER, 1000000, 1,
                         1LL << 40, "datapoints",
                         "critical datapoints held in memory while Redis "
                         "cannot take them; past it the oldest are dropped, "
                         "counted",
                         NULL, NULL, NULL},
    [OPT_CRIT_QUEUE] = {OPT_CRIT_QUEUE, 'G', OPT_P_ORCHESTER, 50000, 1,
                        1LL << 40, "datapoints",
                        "critical datapoints a live destination may hold "
                        "before new ones go to the Redis buffer",
                        NULL, NULL, NULL},
    [OPT_CRIT_INFLIGHT] = {OPT_CRIT_INFLIGHT, 'I', OPT_P_ORCHESTER, 4 << 20,
                           1024, 1LL << 40, "bytes",
                           "unacknowledged bytes at a destination past which "
                           "its critical datapoints go to the Redis buffer",
                           NULL, NULL, NULL},
    [OPT_REDIS_CONNECT] = {OPT_REDIS_CONNECT, 0, 0, 1000, 1, 1, "ms", NULL,
                           "buffer: connect to Redis and have its first "
                           "answer (then it is tried again, with the "
                           "destinations' reconnect delays)",
                           "fixed (``src/spill.c``)", NULL},
    [OPT_REDIS_COMMAND] = {OPT_REDIS_COMMAND, 0, 0, 2000, 1, 1, "ms", NULL,
                           "buffer: the oldest Redis command unanswered "
                           "this long ends the connection (the watchdog: "
                           "what it carried waits in memory)",
                           "fixed (``src/spill.c``)", NULL},
    [OPT_BUFFER_REFRESH] = {OPT_BUFFER_REFRESH, 0, 0, 1000, 1, 1, "ms", NULL,
                            "buffer: a stream's totals are read back from "
                            "Redis (``XINFO STREAM``), and a refused spill "
                            "is tried again, every",
                            "fixed (``src/spill.c``)", NULL},
    [OPT_SNAPSHOT] = {OPT_SNAPSHOT, 0, 0, 1000, 1, 1, "ms", NULL,
                      "counter snapshots to the router thread, every (a "
                      "destination going up or down is told at once)",
                      "fixed (``src/ingest.c``, ``src/sender.c``)"},
    [OPT_SIGNAL_POLL] = {OPT_SIGNAL_POLL, 0, 0, 1000, 1, 1, "ms", NULL,
                         "main thread: signal poll", "fixed (``relay/``)"},
    [OPT_AGGR_SERIES] = {OPT_AGGR_SERIES, 'A', OPT_P_ORCHESTER, 1000000, 1,
                         1LL << 32, "series",
                         "aggregate series held at once, all rules (bucket "
                         "slots: 8 times it, stored values: 16 times); what "
                         "does not fit is dropped, counted",
                         NULL, NULL, NULL},
    [OPT_TLS_HANDSHAKE] = {OPT_TLS_HANDSHAKE, 'E', O_ALL, 10000, 100, 3600000,
                           "ms",
                           "how long a TLS handshake may take (a client of "
                           "a TLS listener, or to a TLS member) before the "
                           "connection is closed",
                           "TLS: a handshake (a listener's client, or to a "
                           "member) must end within this",
                           NULL, NULL},
    [OPT_INFLATE_RATIO] = {OPT_INFLATE_RATIO, 'Z', O_ALL, 100, 2, 1000000,
                           "times",
                           "a compressed stream (gzip, lz4, snappy) that "
                           "inflates more than this many times its size, "
                           "past its first 16 MiB, is closed and counted "
                           "(a decompression bomb)",
                           NULL, NULL, NULL},
};

const opt_def_t *opt_def(opt_id_t id)
{
    return id < OPT_N ? &s_table[id] : NULL;
}

long long opt_default(opt_id_t id)
{
    return id < OPT_N ? s_table[id].def : 0;
}

int opt_num(const char *s, long long min, long long max, long long *out)
{
    char *end;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

void opt_init(long long vals[OPT_N])
{
    for (int i = 0; i < OPT_N; i++)
        vals[i] = s_table[i].def;
}

char *opt_getopt(unsigned prog, const char *own, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return buf;
    for (const char *p = own; *p && n + 1 < cap; p++)
        buf[n++] = *p;
    for (int i = 0; i < OPT_N && n + 2 < cap; i++) {
        if (s_table[i].flag == 0 || !(s_table[i].progs & prog))
            continue;
        buf[n++] = s_table[i].flag;
        buf[n++] = ':';
    }
    buf[n] = '\0';
    return buf;
}

int opt_take(unsigned prog, int c, const char *optarg, long long vals[OPT_N],
             char *err, size_t errlen)
{
    for (int i = 0; i < OPT_N; i++) {
        const opt_def_t *d = &s_table[i];
        if (d->flag == 0 || d->flag != c || !(d->progs & prog))
            continue;
        if (opt_num(optarg, d->min, d->max, &vals[i]) != 0) {
            snprintf(err, errlen, "-%c: bad number '%s' (%lld to %lld %s)", c,
                     optarg ? optarg : "", d->min, d->max, d->unit);
            return -1;
        }
        return 1;
    }
    return 0;
}

/* Print text after a column of width `indent` already written, wrapped at
 * 78 columns with continuation lines indented as far. */
static void s_wrap(FILE *f, const char *text, int indent)
{
    int col = indent;
    const char *p = text;
    while (*p) {
        const char *sp = strchr(p, ' ');
        int w = sp ? (int)(sp - p) : (int)strlen(p);
        if (col > indent && col + 1 + w > 78) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", w, p);
        col += w;
        p += w;
        while (*p == ' ')
            p++;
    }
    fputc('\n', f);
}

void opt_usage(FILE *f, unsigned prog)
{
    for (int i = 0; i < OPT_N; i++) {
        const opt_def_t *d = &s_table[i];
        if (d->flag == 0 || !(d->progs & prog))
            continue;
        char text[400];
        snprintf(text, sizeof text, "%s, %s (%lld)", d->help, d->unit, d->def);
        fprintf(f, "  -%c N     ", d->flag);
        s_wrap(f, text, 11);
    }
}

/* The default as the list shows it. */
static void s_default_text(const opt_def_t *d, char *out, size_t cap)
{
    if (d->shown)
        snprintf(out, cap, "%s", d->shown);
    else
        snprintf(out, cap, "%lld %s", d->def, d->unit);
}

/* Where it is set, as the list shows it. */
static void s_where_text(const opt_def_t *d, char *out, size_t cap)
{
    const char *prog = d->progs & OPT_P_CTL ? "orchester-ctl" : "orchester";
    if (d->flag && d->where)
        snprintf(out, cap, "``%s -%c N``; %s", prog, d->flag, d->where);
    else if (d->flag)
        snprintf(out, cap, "``%s -%c N``", prog, d->flag);
    else
        snprintf(out, cap, "%s", d->where ? d->where : "fixed");
}

size_t opt_timeouts_rst(char *buf, size_t cap)
{
    size_t n = 0;
#define ADD(...)                                                               \
    do {                                                                       \
        int k = snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0,     \
                         __VA_ARGS__);                                         \
        if (k > 0)                                                             \
            n += (size_t)k;                                                    \
    } while (0)
    ADD(".. list-table::\n   :header-rows: 1\n   :widths: 45 20 35\n\n"
        "   * - what\n     - default\n     - where it is set\n");
    for (int i = 0; i < OPT_N; i++) {
        const opt_def_t *d = &s_table[i];
        if (d->timeout == NULL)
            continue;
        char def[64], where[300];
        s_default_text(d, def, sizeof def);
        s_where_text(d, where, sizeof where);
        ADD("   * - %s\n     - %s\n     - %s\n", d->timeout, def, where);
    }
#undef ADD
    return n;
}
