/*
 * resolver.h -- a destination's host name, looked up off the loop's thread.
 *
 * Mechanism only: it knows nothing of metrics.  A destination writer
 * (src/dest.c) owns one resolver_t for its member's host and port, on the
 * sender thread's libev loop.  A numeric address (IPv4 or IPv6) is taken at
 * once, without a lookup.  A name is looked up by resolver_start on a
 * detached thread of the lookup's own, which calls getaddrinfo and wakes the
 * loop with an ev_async; the answer callback then runs on the loop.  At most
 * one lookup is in flight per resolver.
 *
 * The last good answer is kept: the caller goes on connecting to it while a
 * new lookup is pending or has failed.
 *
 * resolver_destroy never waits for a lookup: one still in flight is
 * abandoned, and its thread frees it when getaddrinfo returns, without
 * touching the loop.  A lookup that hangs therefore delays neither the loop
 * nor the exit of the process.
 */
#ifndef ORCHESTER_RESOLVER_H
#define ORCHESTER_RESOLVER_H

#include <ev.h>
#include <stddef.h>
#include <netdb.h>
#include <sys/socket.h>

/* The most addresses kept from one answer. */
#define RESOLVER_MAX_ADDRS 8

/* One address of an answer, ready for socket(2) and connect(2). */
typedef struct {
    int family;                 /* AF_INET or AF_INET6 */
    int socktype;               /* SOCK_STREAM or SOCK_DGRAM */
    int protocol;               /* for socket(2) */
    socklen_t len;              /* bytes of sa in use */
    struct sockaddr_storage sa; /* the address and port */
} resolver_addr_t;

typedef struct resolver resolver_t;

/* Called on the loop when a lookup ended: rc is 0 (the answer replaced the
 * last good one; see resolver_naddrs) or a getaddrinfo error code (EAI_*,
 * for gai_strerror; the last good answer stays).  Must not destroy r. */
typedef void(resolver_done_fn)(void *arg, resolver_t *r, int rc);

/* resolver_new: a resolver for host:port (host is copied) and socktype
 * (SOCK_STREAM or SOCK_DGRAM), whose lookups end in fn(arg, ...) on loop.
 * A numeric host is converted here, never looked up.  Returns NULL on
 * allocation failure.  Sender thread (the loop's). */
resolver_t *resolver_new(struct ev_loop *loop, const char *host, int port,
                         int socktype, resolver_done_fn *fn, void *arg);

/* resolver_destroy: free *r and set it NULL; safe on NULL.  A lookup in
 * flight is abandoned, not waited for: its callback never runs.  The loop's
 * thread. */
void resolver_destroy(resolver_t **r);

/* resolver_numeric: 1 when the host is a numeric address (the answer is
 * there from the start and never changes), else 0. */
int resolver_numeric(const resolver_t *r);

/* resolver_pending: 1 while a lookup is in flight, else 0. */
int resolver_pending(const resolver_t *r);

/* resolver_start: start a lookup of the host.  Returns 1 when none is
 * needed (a numeric host) or one is already in flight, 0 when one started
 * (its callback follows on the loop), -1 when its thread could not be
 * started (why in err).  The loop's thread. */
int resolver_start(resolver_t *r, char *err, size_t errlen);

/* resolver_naddrs: how many addresses the last good answer has (0 before
 * the first one). */
size_t resolver_naddrs(const resolver_t *r);

/* resolver_addr: address i (< resolver_naddrs) of the last good answer,
 * borrowed until the next answer or resolver_destroy. */
const resolver_addr_t *resolver_addr(const resolver_t *r, size_t i);

/* A stand-in for getaddrinfo(3), for tests: same arguments and return,
 * plus ctx.  *res must be freeable with freeaddrinfo.  Runs on the lookup's
 * thread. */
typedef int(resolver_lookup_fn)(void *ctx, const char *host, const char *port,
                                const struct addrinfo *hints,
                                struct addrinfo **res);

/* resolver_set_lookup: make the next lookups of r call fn(ctx, ...) instead
 * of getaddrinfo (fn NULL: getaddrinfo again).  ctx is borrowed and must
 * outlive every lookup started with it, abandoned ones included.  Tests
 * only; the loop's thread. */
void resolver_set_lookup(resolver_t *r, resolver_lookup_fn *fn, void *ctx);

/* resolver_addr_str: the address part of a (no port), as text for
 * messages, in buf of len bytes.  Returns buf. */
char *resolver_addr_str(const resolver_addr_t *a, char *buf, size_t len);

#endif
