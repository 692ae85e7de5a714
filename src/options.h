/*
 * options.h -- every tunable number of the programs, declared once.
 *
 * Pure core.  One table (src/options.c) holds each limit and timeout: its
 * default and range, the command-line flag that sets it (or none: fixed in
 * this version), the programs that take it, its line in the usage text, and
 * its row in the list of timeouts of docs/limitations.rst.  getopt strings,
 * usage texts, the option parsing of the programs (relay/) and the defaults of
 * the modules (ingest_opts_default, dest_opts_default, sender_opts_default, the
 * config's `orchester ... timeout`) all come from it, and tests/test_options.c
 * checks that the documentation's list is the one opt_timeouts_rst() makes.
 */
#ifndef ORCHESTER_OPTIONS_H
#define ORCHESTER_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

/* The programs, as a bit set. */
enum { OPT_P_ORCHESTER = 1, OPT_P_SATELLITE = 2, OPT_P_CTL = 4 };

typedef enum {
    OPT_QUEUE,           /* datapoints per destination queue */
    OPT_MAXLINE,         /* longest line, bytes */
    OPT_MAXFRAME,        /* largest pickle frame, bytes */
    OPT_WINDOW,          /* satellite window, bytes */
    OPT_CONNS,           /* connections per stream listener (0: derived) */
    OPT_BUDGET,          /* bytes of unfinished lines and frames, in all */
    OPT_DRAIN,           /* drain at stop, s */
    OPT_STALL,           /* hold-back of a full live queue, ms */
    OPT_USER_TIMEOUT,    /* TCP: unacknowledged data ends a connection, ms */
    OPT_STATS,           /* self metrics interval, s (0: the config's) */
    OPT_CTL_TIMEOUT,     /* orchester-ctl answer timeout, ms */
    OPT_ACK_TIMEOUT,     /* satellite: no acknowledgement before a resend */
    OPT_ACK_TIMEOUT_MAX, /* satellite: the longest that timeout backs off to */
    OPT_RESEND_CHECK,    /* satellite: resend check period, ms */
    OPT_STOP_WAIT,       /* satellite: wait for acks at stop, ms */
    OPT_CONNECT_TIMEOUT, /* destination connect timeout, ms */
    OPT_BACKOFF_MIN,     /* first reconnect delay, ms */
    OPT_BACKOFF_MAX,     /* longest reconnect delay, ms */
    OPT_STABLE,          /* a connection that held this long resets it */
    OPT_FAIL_LOG,        /* at most one failure line per, ms */
    OPT_RESOLVE_WAIT,    /* wait for a name's first answer, ms */
    OPT_ACK_POLL,        /* ask the kernel what was acknowledged, ms */
    OPT_ACCEPT_PAUSE,    /* listener pause when out of descriptors, ms */
    OPT_HELD_RETRY,      /* hub retry of a held-back batch, ms */
    OPT_CRIT_MEMORY,     /* critical datapoints waiting for Redis */
    OPT_CRIT_QUEUE,      /* critical datapoints a live destination holds */
    OPT_CRIT_INFLIGHT,   /* unacknowledged bytes before critical spills */
    OPT_REDIS_CONNECT,   /* Redis connect (and first answer), ms */
    OPT_REDIS_COMMAND,   /* Redis answer to a command, ms */
    OPT_BUFFER_REFRESH,  /* a stream's totals read back, ms */
    OPT_SNAPSHOT,        /* counter snapshots to the hub, ms */
    OPT_SIGNAL_POLL,     /* main thread's signal poll, ms */
    OPT_AGGR_SERIES,     /* aggregate series held at once */
    OPT_TLS_HANDSHAKE,   /* a TLS handshake must end within, ms */
    OPT_INFLATE_RATIO,   /* a compressed stream inflating more is closed */
    OPT_N
} opt_id_t;

/* One entry of the table. */
typedef struct {
    opt_id_t id;         /* its index */
    char flag;           /* getopt letter; 0: fixed, no option */
    unsigned progs;      /* OPT_P_* that take the flag */
    long long def;       /* default */
    long long min, max;  /* accepted range of the flag's value */
    const char *unit;    /* "datapoints", "bytes", "s" or "ms" */
    const char *help;    /* usage text: what it is */
    const char *timeout; /* its row in the list of timeouts, or NULL */
    const char *where;   /* the list's "where it is set" for a fixed one,
                            or more ways for one with a flag; or NULL */
    const char *shown;   /* the list's default when not "def unit" */
} opt_def_t;

/* opt_def: the entry of id.  Borrowed (static). */
const opt_def_t *opt_def(opt_id_t id);

/* opt_default: the default of id. */
long long opt_default(opt_id_t id);

/* opt_num: parse s as a decimal integer in [min, max] into *out.
 * Returns 0, or -1 (out untouched) for anything else.  The one number
 * parser of the programs' options. */
int opt_num(const char *s, long long min, long long max, long long *out);

/* opt_init: set vals[0..OPT_N) to the defaults. */
void opt_init(long long vals[OPT_N]);

/* opt_getopt: append to buf (cap bytes, NUL-terminated) the getopt letters
 * ("q:M:...") of prog's numeric options after own (the program's other
 * flags).  Returns buf. */
char *opt_getopt(unsigned prog, const char *own, char *buf, size_t cap);

/* opt_take: when c is a numeric option of prog, parse optarg into vals and
 * return 1 (or -1 with a message "-c: bad number 'x' (min..max)" in err);
 * return 0 when c is not one of them. */
int opt_take(unsigned prog, int c, const char *optarg, long long vals[OPT_N],
             char *err, size_t errlen);

/* opt_usage: print the usage lines of prog's numeric options. */
void opt_usage(FILE *f, unsigned prog);

/* opt_timeouts_rst: the list of every timeout as docs/limitations.rst has
 * it (an RST list-table), into buf.  Returns the length (as snprintf). */
size_t opt_timeouts_rst(char *buf, size_t cap);

#endif
