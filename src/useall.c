/*
 * useall.c -- see useall.h.
 */
#include "useall.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void s_free_members(config_member_t *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        free(m[i].host);
        free(m[i].instance);
        config_transport_free(&m[i].tr);
    }
    free(m);
}

/* Append m with host a to out[0..*n) unless that address and port are
 * there already.  Returns 0, or -1 when memory runs out. */
static int s_add(config_member_t **out, size_t *n, size_t *cap,
                 const config_member_t *m, const char *a)
{
    for (size_t j = 0; j < *n; j++)
        if (strcmp((*out)[j].host, a) == 0 && (*out)[j].port == m->port)
            return 0;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        config_member_t *p = realloc(*out, nc * sizeof *p);
        if (p == NULL)
            return -1;
        *out = p;
        *cap = nc;
    }
    config_member_t *d = &(*out)[*n];
    *d = *m;
    d->instance = NULL;
    /* each address has a transport of its own; a TLS one still expects
     * the certificate of the name written, not of the address */
    if (config_transport_dup(&d->tr, &m->tr) != 0)
        return -1;
    if (d->tr.tls && d->tr.name == NULL &&
        (d->tr.name = strdup(m->host)) == NULL) {
        config_transport_free(&d->tr);
        return -1;
    }
    d->host = strdup(a);
    if (d->host == NULL) {
        config_transport_free(&d->tr);
        return -1;
    }
    (*n)++;
    return 0;
}

/* The members of one useall cluster, resolved into *out / *nout. */
static int s_expand(const config_cluster_t *c, config_member_t **out,
                    size_t *nout, char *err, size_t errlen)
{
    size_t cap = 0, n = 0;
    config_member_t *res_m = NULL;
    for (size_t i = 0; i < c->nmembers; i++) {
        const config_member_t *m = &c->members[i];
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = m->proto == PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
        int rc = getaddrinfo(m->host, NULL, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen,
                     "%s:%d: cluster '%s' useall: cannot resolve "
                     "'%s': %s",
                     m->pos.file, m->pos.line, c->name, m->host,
                     gai_strerror(rc));
            goto fail;
        }
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            char a[INET6_ADDRSTRLEN];
            const void *src =
                ai->ai_family == AF_INET6
                    ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)
                          ->sin6_addr
                    : (const void *)&((struct sockaddr_in *)ai->ai_addr)
                          ->sin_addr;
            if (inet_ntop(ai->ai_family, src, a, sizeof a) == NULL)
                continue;
            if (s_add(&res_m, &n, &cap, m, a) != 0) {
                freeaddrinfo(res);
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
        }
        freeaddrinfo(res);
    }
    *out = res_m;
    *nout = n;
    return 0;
fail:
    s_free_members(res_m, n);
    return -1;
}

int useall_expand(config_t *cfg, char *err, size_t errlen)
{
    size_t nc = cfg->nclusters;
    config_member_t **nm = calloc(nc ? nc : 1, sizeof *nm);
    size_t *nn = calloc(nc ? nc : 1, sizeof *nn);
    int rc = -1;
    if (nm == NULL || nn == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* resolve everything first: cfg changes only when all of it worked */
    for (size_t i = 0; i < nc; i++) {
        const config_cluster_t *c = &cfg->clusters[i];
        if (c->useall && !c->resolved &&
            s_expand(c, &nm[i], &nn[i], err, errlen) != 0)
            goto out;
    }
    for (size_t i = 0; i < nc; i++) {
        config_cluster_t *c = &cfg->clusters[i];
        if (!c->useall || c->resolved)
            continue;
        s_free_members(c->members, c->nmembers);
        c->members = nm[i];
        c->nmembers = nn[i];
        c->resolved = true;
        nm[i] = NULL;
        nn[i] = 0;
    }
    rc = 0;
out:
    for (size_t i = 0; nm && i < nc; i++)
        s_free_members(nm[i], nn[i]);
    free(nm);
    free(nn);
    return rc;
}
