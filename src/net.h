/*
 * net.h -- socket helpers: listening, binding, connecting; all non-blocking.
 *
 * Mechanism only: these know nothing of metrics.  The ingest shell uses the
 * listen/bind helpers, the destination writers net_connect_addr.  Errors
 * are returned as -1 with a message in err ("what: why").
 */
#ifndef ORCHESTER_NET_H
#define ORCHESTER_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* net_listen_tcp: a non-blocking TCP listening socket on host (NULL or ""
 * for any) and port, SO_REUSEADDR set.  Returns the fd or -1. */
int net_listen_tcp(const char *host, int port, int backlog, char *err,
                   size_t errlen);

/* net_bind_udp: a non-blocking UDP socket bound to host:port. */
int net_bind_udp(const char *host, int port, int rcvbuf, char *err,
                 size_t errlen);

/* net_listen_unix: a non-blocking stream socket listening on path (a stale
 * socket file is removed first). */
int net_listen_unix(const char *path, int backlog, char *err, size_t errlen);

/* net_connect_addr: a non-blocking socket of socktype (SOCK_STREAM gets
 * TCP_NODELAY) with a connect to sa started.  Never blocks.  Returns the
 * fd (connect in progress, or done) or -1 with strerror's text in err.
 * Any thread. */
int net_connect_addr(const struct sockaddr *sa, socklen_t salen, int socktype,
                     char *err, size_t errlen);

/* net_connect_tcp: start a non-blocking connect to host:port.  Names are
 * resolved with getaddrinfo, which may block for as long as the system's
 * resolver waits: not for a thread that serves other sockets (the
 * destination writers resolve with src/resolver.c and connect with
 * net_connect_addr).  Returns the fd (connect in progress or done) or -1. */
int net_connect_tcp(const char *host, int port, char *err, size_t errlen);

/* net_connect_udp: a non-blocking UDP socket connected to host:port (names
 * resolved as by net_connect_tcp, blocking). */
int net_connect_udp(const char *host, int port, char *err, size_t errlen);

/* net_nonblock: set O_NONBLOCK and FD_CLOEXEC; returns 0 or -1. */
int net_nonblock(int fd);

/* net_addr_str: "host:port" text for messages and status (host bracketed
 * when it contains ':').  Writes at most len bytes. */
void net_addr_str(char *buf, size_t len, const char *host, int port);

#endif
