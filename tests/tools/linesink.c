/*
 * linesink.c -- a carbon backend stand-in for benchmarks: accepts TCP
 * connections and counts the lines it receives.
 *
 *   linesink PORT EXPECTED_LINES TIMEOUT_S [IDLE_S]
 *
 * Prints "ready" once listening, then exits 0 printing "lines N seconds S"
 * when EXPECTED_LINES arrived (S from the first byte to the last line), or
 * exits 1 printing "lines N timeout" after TIMEOUT_S seconds, or after
 * IDLE_S seconds without data once data has started (a sender that lost
 * lines never reaches the count).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr,
                "usage: linesink PORT EXPECTED_LINES TIMEOUT_S [IDLE_S]\n");
        return 2;
    }
    long long expect = atoll(argv[2]);
    double deadline = s_now() + atof(argv[3]);
    double idle = argc == 5 ? atof(argv[4]) : 1e9;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(lfd, 64) != 0) {
        perror("linesink: bind");
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    struct pollfd pf[65];
    int n = 1;
    pf[0].fd = lfd;
    pf[0].events = POLLIN;
    static char buf[1 << 20];
    long long lines = 0;
    double first = 0, last = 0;
    while (lines < expect) {
        double left = deadline - s_now();
        if (first > 0 && s_now() - last > idle) {
            printf("lines %lld seconds %.3f idle\n", lines, last - first);
            return 1;
        }
        if (first > 0 && left > idle)
            left = idle;
        if (left <= 0) {
            printf("lines %lld timeout\n", lines);
            return 1;
        }
        if (poll(pf, (nfds_t)n, (int)(left * 1000) + 1) <= 0)
            continue;
        if ((pf[0].revents & POLLIN) && n < 65) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                pf[n].fd = fd;
                pf[n].events = POLLIN;
                n++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(pf[i].fd, buf, sizeof buf);
            if (r <= 0) {
                close(pf[i].fd);
                pf[i] = pf[--n];
                i--;
                continue;
            }
            if (first == 0)
                first = s_now();
            for (ssize_t k = 0; k < r; k++)
                lines += buf[k] == '\n';
            last = s_now();
        }
    }
    printf("lines %lld seconds %.3f\n", lines, last - first);
    return 0;
}
