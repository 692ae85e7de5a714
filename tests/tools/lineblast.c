/*
 * lineblast.c -- load generator for tests and benchmarks: sends carbon
 * plaintext lines over several TCP connections at once, as fast as the
 * receiver takes them.
 *
 *   lineblast HOST PORT CONNECTIONS LINES_PER_CONNECTION [PREFIX]
 *
 * Connection c sends "PREFIX.c<c>.m<i % 1000> <i> <ts>\n" for i = 0..n-1,
 * so a receiver can check content and order per connection.  Exits 0 when
 * every line was written.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *host, *port, *prefix;
    int conn;
    long n;
    int rc;
} job_t;

static int s_connect(const char *host, const char *port)
{
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void *s_run(void *p)
{
    job_t *j = p;
    int fd = s_connect(j->host, j->port);
    if (fd < 0) {
        perror("lineblast: connect");
        j->rc = 1;
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 512);
    long ts = (long)time(NULL) - 3600;
    for (long i = 0; i < j->n; i++) {
        len += (size_t)snprintf(buf + len, 512, "%s.c%d.m%ld %ld %ld\n",
                                j->prefix, j->conn, i % 1000, i, ts + i / 1000);
        if (len >= cap || i == j->n - 1) {
            size_t off = 0;
            while (off < len) {
                ssize_t w = write(fd, buf + off, len - off);
                if (w <= 0) {
                    perror("lineblast: write");
                    j->rc = 1;
                    free(buf);
                    close(fd);
                    return NULL;
                }
                off += (size_t)w;
            }
            len = 0;
        }
    }
    free(buf);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: lineblast HOST PORT CONNECTIONS LINES [PREFIX]\n");
        return 2;
    }
    int nc = atoi(argv[3]);
    long n = atol(argv[4]);
    if (nc <= 0 || nc > 1024 || n < 0)
        return 2;
    job_t *jobs = calloc((size_t)nc, sizeof *jobs);
    pthread_t *th = calloc((size_t)nc, sizeof *th);
    for (int c = 0; c < nc; c++) {
        jobs[c] = (job_t){argv[1], argv[2], argc > 5 ? argv[5] : "blast", c, n, 0};
        pthread_create(&th[c], NULL, s_run, &jobs[c]);
    }
    int rc = 0;
    for (int c = 0; c < nc; c++) {
        pthread_join(th[c], NULL);
        rc |= jobs[c].rc;
    }
    free(jobs);
    free(th);
    return rc;
}
