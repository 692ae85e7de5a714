/*
 * ringplace.c -- print where src/ring.c places metric names.
 *
 *   ringplace [-d] [-x INDEX]... KIND REPLICATION MEMBER...
 *
 * KIND is a ring_kind_parse() word (carbon_ch, carbon_ch_graphite or
 * graphite, fnv1a_ch, jump_fnv1a_ch, any_of, failover); MEMBER is
 * host[:port][=instance] as in a cluster statement (port 2003 by default,
 * IPv6 hosts in brackets).  -d sets RING_DIVERSE_HOSTS; -x marks the member
 * at 0-based INDEX dead.
 *
 * Reads lines on stdin.  The name is a line up to its first space; it is
 * placed by its part before the first ';' (the routing name), and printed
 * whole, followed by the members it goes to as host:port:
 *     name member1 member2
 * A test tool: the integration tests compare its output with carbon-c-relay
 * and Python carbon.
 */
#include "ring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_usage(void)
{
    fprintf(stderr, "usage: ringplace [-d] [-x INDEX]... KIND REPLICATION "
                    "host[:port][=instance]...\n");
    exit(2);
}

/* Parse host[:port][=instance] in place into m; returns 0 or -1. */
static int s_parse_member(char *s, ring_member_t *m)
{
    char *eq = strchr(s, '=');
    char *colon = NULL;

    m->instance = NULL;
    m->port = 2003;
    if (eq != NULL) {
        *eq = '\0';
        m->instance = eq + 1;
    }
    if (s[0] == '[') {
        char *close = strchr(s, ']');
        if (close == NULL)
            return -1;
        *close = '\0';
        m->host = s + 1;
        if (close[1] == ':')
            colon = close + 1;
        else if (close[1] != '\0')
            return -1;
    } else {
        m->host = s;
        colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            colon = NULL; /* a bare IPv6 address */
    }
    if (colon != NULL) {
        char *end;
        long p;
        *colon = '\0';
        errno = 0;
        p = strtol(colon + 1, &end, 10);
        if (errno != 0 || *end != '\0' || end == colon + 1 || p < 1 ||
            p > 65535)
            return -1;
        m->port = (uint16_t)p;
    }
    return 0;
}

int main(int argc, char **argv)
{
    unsigned flags = 0;
    bool alive[RING_MAX_MEMBERS];
    bool any_dead = false;
    ring_member_t members[RING_MAX_MEMBERS];
    size_t out[RING_MAX_MEMBERS];
    ring_kind_t kind;
    size_t n, replication;
    ring_t *ring;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int a = 1;

    for (size_t i = 0; i < RING_MAX_MEMBERS; i++)
        alive[i] = true;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (strcmp(argv[a], "-d") == 0) {
            flags |= RING_DIVERSE_HOSTS;
        } else if (strcmp(argv[a], "-x") == 0 && a + 1 < argc) {
            long x = strtol(argv[++a], NULL, 10);
            if (x < 0 || x >= RING_MAX_MEMBERS)
                s_usage();
            alive[x] = false;
            any_dead = true;
        } else {
            s_usage();
        }
    }
    if (argc - a < 3 || ring_kind_parse(argv[a], &kind) != 0)
        s_usage();
    replication = strtoul(argv[a + 1], NULL, 10);
    n = (size_t)(argc - a - 2);
    if (n > RING_MAX_MEMBERS)
        s_usage();
    for (size_t i = 0; i < n; i++) {
        if (s_parse_member(argv[a + 2 + i], &members[i]) != 0) {
            fprintf(stderr, "ringplace: bad member '%s'\n", argv[a + 2 + i]);
            return 2;
        }
    }
    ring = ring_new(kind, members, n, flags);
    if (ring == NULL) {
        fprintf(stderr, "ringplace: ring_new: %s\n", strerror(errno));
        return 1;
    }

    while ((len = getline(&line, &cap, stdin)) >= 0) {
        size_t name = strcspn(line, " \n");
        size_t route = strcspn(line, " \n;");
        size_t k = ring_lookup(ring, line, route, replication,
                               any_dead ? alive : NULL, out, RING_MAX_MEMBERS);
        fwrite(line, 1, name, stdout);
        for (size_t i = 0; i < k; i++)
            printf(" %s:%u", members[out[i]].host,
                   (unsigned)members[out[i]].port);
        putchar('\n');
    }
    free(line);
    ring_destroy(&ring);
    if (fflush(stdout) != 0 || ferror(stdin)) {
        fprintf(stderr, "ringplace: i/o error\n");
        return 1;
    }
    return 0;
}
