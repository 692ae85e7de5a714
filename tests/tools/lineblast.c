/*
 * lineblast.c -- load generator for tests and benchmarks: sends carbon
 * plaintext lines over several TCP connections at once, as fast as the
 * receiver takes them.
 *
 *   lineblast HOST PORT CONNECTIONS LINES_PER_CONNECTION [PREFIX]
 *
 * Connection c sends "PREFIX.c<c>.m<i % 1000> <i> <ts>\n" for i = 0..n-1,
 * so a receiver can check content and order per connection.  Exits 0 when
 * every line was written.  LINEBLAST_RATE=N paces each connection at N
 * lines per second (in steps of 1000 lines); LINEBLAST_HOLD=S keeps each
 * connection open after sending until the peer closes it, at most S s.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *host, *port, *prefix;
    int conn;
    long n;
    int hold;  /* seconds to wait for the peer to close after sending */
    long rate; /* lines per second, 0 = as fast as possible */
    double t0; /* start, monotonic seconds */
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
    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    j->t0 = (double)ts0.tv_sec + ts0.tv_nsec / 1e9;
    char *buf = malloc(cap + 512);
    long ts = (long)time(NULL) - 3600;
    for (long i = 0; i < j->n; i++) {
        len += (size_t)snprintf(buf + len, 512, "%s.c%d.m%ld %ld %ld\n",
                                j->prefix, j->conn, i % 1000, i, ts + i / 1000);
        int pace = j->rate > 0 && (i + 1) % 1000 == 0;
        if (len >= cap || i == j->n - 1 || pace) {
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
            if (pace) {
                /* sleep until line i+1 is due */
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                double due = j->t0 + (double)(i + 1) / (double)j->rate;
                double t = (double)now.tv_sec + now.tv_nsec / 1e9;
                if (due > t) {
                    struct timespec d = {
                        (time_t)(due - t),
                        (long)((due - t - (double)(time_t)(due - t)) * 1e9)};
                    nanosleep(&d, NULL);
                }
            }
        }
    }
    free(buf);
    if (j->hold > 0) {
        /* keep the connection open until the peer has read everything */
        shutdown(fd, SHUT_WR);
        char c;
        struct timeval tv = {j->hold, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (read(fd, &c, 1) > 0)
            ;
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: lineblast HOST PORT CONNECTIONS LINES [PREFIX]\n");
        return 2;
    }
    int nc = atoi(argv[3]);
    long n = atol(argv[4]);
    if (nc <= 0 || nc > 1024 || n < 0)
        return 2;
    job_t *jobs = calloc((size_t)nc, sizeof *jobs);
    pthread_t *th = calloc((size_t)nc, sizeof *th);
    for (int c = 0; c < nc; c++) {
        jobs[c] = (job_t){
            argv[1],
            argv[2],
            argc > 5 ? argv[5] : "blast",
            c,
            n,
            getenv("LINEBLAST_HOLD") ? atoi(getenv("LINEBLAST_HOLD")) : 0,
            getenv("LINEBLAST_RATE") ? atol(getenv("LINEBLAST_RATE")) : 0,
            0,
            0};
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
