/*
 * ingest.h -- a satellite: listeners, line parsing, batching, and the link
 * to the orchester with its window of unacknowledged batches.
 *
 * I/O shell around the pure line parser (src/line.c) and the batch protocol
 * (src/batch.c).  One ingest_t is one thread with its own libev loop.  It
 * accepts carbon plaintext over TCP, UDP and unix sockets and carbon pickle
 * frames over TCP (src/pickle.c decodes them), validates and cleanses each
 * datapoint (src/line.c), packs the canonical lines into batches, and sends
 * them over a zmq DEALER to the orchester (inproc inside `orchester`, tcp from
 * a standalone `satellite`).  It keeps every batch until the orchester
 * acknowledges it and stops reading its clients while the window is full
 * (the acknowledgements are the credit that paces it).  An embedded
 * satellite never resends: nothing is lost in-process.  A standalone one
 * resends the unacknowledged batches when its connection to the orchester
 * was lost and is back (a zmq socket monitor on the DEALER tells), or when
 * nothing was acknowledged for a timeout that doubles at each resend up to
 * a cap: a slow orchester is not a dead one.
 *
 * Life: ingest_new() (any thread; binds the listeners, so errors show before
 * threads start), ingest_run() on the ingest thread until MSG_STOP arrives
 * on the control pipe, ingest_destroy() after the thread is joined.
 */
#ifndef ORCHESTER_INGEST_H
#define ORCHESTER_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "curve.h"

typedef struct {
    size_t maxline;              /* longest accepted line, bytes (16384) */
    size_t max_frame;            /* largest pickle frame, bytes (1 MiB) */
    size_t window_bytes;         /* unacknowledged payload bound (8 MiB) */
    int timeout_ms;              /* resend after this long without ack (3000);
                                    doubles after each such resend */
    int timeout_max_ms;          /* cap of that doubling (60000) */
    size_t partial_budget;       /* bytes all connections together may hold
                                    in unfinished lines and pickle frames;
                                    past it the connection with the least
                                    recent progress is closed (64 MiB) */
    int embedded;                /* 1: the orchester is in this process
                                    (inproc): never resend (0) */
    int tls_handshake_ms;        /* a TLS client's handshake must end within
                                    this, or it is disconnected (10000) */
    const char *tls_ca;          /* -C: the CA file or directory that
                                    verifies mtls clients (copied), or NULL */
    uint64_t max_ratio;          /* a compressed stream that inflates more
                                    than this many times is closed (-Z) */
    size_t batch_bytes;          /* payload size that closes a batch (64 KiB) */
    int stop_wait_ms;            /* on STOP, wait this long for acks (3000) */
    size_t max_conns;            /* open connections per TCP or unix
                                    listener; more are accepted and closed
                                    at once.  0 (the default): derived from
                                    the soft RLIMIT_NOFILE when ingest_new
                                    runs, see ingest_conn_limit() */
    uint64_t sat_id;             /* this satellite's id in batch headers */
    const char *orchester;       /* zmq endpoint to connect the DEALER to */
    const char *orchester_alt;   /* the other member of a pair, or NULL:
                                    when no acknowledgement came for
                                    timeout_ms, the satellite sends to the
                                    other and resends its window there */
    const char *ctl_endpoint;    /* PAIR endpoint the owner bound (commands) */
    const char *reload_endpoint; /* a PULL bound here takes MSG_RELOAD from
                                    the hub: the TLS listeners read their
                                    files again (NULL: none; MSG_RELOAD on
                                    the ctl pipe does the same) */
    const char *stats_endpoint;  /* PUSH stats here every second, or NULL */
    const char *control_endpoint;    /* a standalone satellite's REP for
                                        orchester-ctl (status), or NULL */
    int metrics_s;                   /* a standalone satellite's self metrics:
                                        every this many seconds it sends its
                                        counters as datapoints with its own
                                        batches (0: none) */
    const char *metrics_prefix;      /* their names' prefix, e.g.
                                        carbon.satellites.HOST */
    const curve_keypair_t *curve_kp; /* CURVE client with this key pair, to
                                        the server key curve_server (both
                                        copied), or NULL */
    const char *curve_server;
} ingest_opts_t;

typedef struct ingest ingest_t;

/* ingest_conn_limit: the default connection limit per stream listener for
 * a process allowed nofile descriptors, with nstream TCP and unix
 * listeners: a quarter of the descriptors (at least 128, at most half) is
 * kept for zmq sockets, destinations, files and the control socket, and the
 * rest is shared out among the listeners.  Never less than 1.  Pure; any
 * thread. */
size_t ingest_conn_limit(long nofile, size_t nstream);

/* ingest_opts_default: fill o with the defaults above (endpoints NULL). */
void ingest_opts_default(ingest_opts_t *o);

/* ingest_new: bind every listen address of listens[0..n), create the zmq
 * sockets in zctx.  o's strings are copied.  Returns NULL with a message
 * in err on failure. */
ingest_t *ingest_new(void *zctx, const config_listen_t *listens, size_t n,
                     const ingest_opts_t *o, char *err, size_t errlen);

/* ingest_run: the thread body: run the loop until stopped.  Returns 0. */
int ingest_run(ingest_t *ig);

/* ingest_destroy: close everything, free *ig, set it to NULL. */
void ingest_destroy(ingest_t **ig);

#endif
