/*
 * net.c -- see net.h.
 */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int net_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

void net_addr_str(char *buf, size_t len, const char *host, int port)
{
    if (host == NULL || *host == '\0')
        host = "0.0.0.0";
    if (strchr(host, ':'))
        snprintf(buf, len, "[%s]:%d", host, port);
    else
        snprintf(buf, len, "%s:%d", host, port);
}

static struct addrinfo *s_resolve(const char *host, int port, int socktype,
                                  int passive, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (host != NULL && *host == '\0')
        host = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "resolve %s: %s", host ? host : "*",
                 gai_strerror(rc));
        return NULL;
    }
    return res;
}

static int s_bound(const char *host, int port, int socktype, int backlog,
                   int rcvbuf, char *err, size_t errlen)
{
    struct addrinfo *res = s_resolve(host, port, socktype, 1, err, errlen);
    if (res == NULL)
        return -1;
    int fd = -1;
    char addr[300];
    net_addr_str(addr, sizeof addr, host, port);
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (rcvbuf > 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            (socktype != SOCK_STREAM || listen(fd, backlog) == 0) &&
            net_nonblock(fd) == 0)
            break;
        snprintf(err, errlen, "bind %s: %s", addr, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int net_listen_tcp(const char *host, int port, int backlog, char *err,
                   size_t errlen)
{
    return s_bound(host, port, SOCK_STREAM, backlog, 0, err, errlen);
}

int net_bind_udp(const char *host, int port, int rcvbuf, char *err,
                 size_t errlen)
{
    return s_bound(host, port, SOCK_DGRAM, 0, rcvbuf, err, errlen);
}

int net_listen_unix(const char *path, int backlog, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "unix socket %s: path too long", path);
        return -1;
    }
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    struct stat st;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
        listen(fd, backlog) != 0 || net_nonblock(fd) != 0) {
        snprintf(err, errlen, "unix socket %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int net_connect_addr(const struct sockaddr *sa, socklen_t salen, int socktype,
                     char *err, size_t errlen)
{
    int fd = socket(sa->sa_family, socktype, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (net_nonblock(fd) != 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (socktype == SOCK_STREAM) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int s_connect(const char *host, int port, int socktype, char *err,
                     size_t errlen)
{
    struct addrinfo *res = s_resolve(host, port, socktype, 0, err, errlen);
    if (res == NULL)
        return -1;
    int fd = -1;
    char addr[300], why[256];
    net_addr_str(addr, sizeof addr, host, port);
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = net_connect_addr(ai->ai_addr, ai->ai_addrlen, socktype, why,
                              sizeof why);
        if (fd < 0)
            snprintf(err, errlen, "connect %s: %s", addr, why);
    }
    freeaddrinfo(res);
    return fd;
}

int net_connect_tcp(const char *host, int port, char *err, size_t errlen)
{
    return s_connect(host, port, SOCK_STREAM, err, errlen);
}

int net_connect_udp(const char *host, int port, char *err, size_t errlen)
{
    return s_connect(host, port, SOCK_DGRAM, err, errlen);
}
