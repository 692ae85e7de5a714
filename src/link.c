/*
 * link.c -- see link.h.
 */
#include "link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where a batch ends: in socket bytes and in stream bytes. */
typedef struct {
    uint64_t wire, stream;
} mark_t;

struct link {
    codec_enc_t *enc;      /* owned, or NULL: plain */
    tls_conn_t *tls;       /* owned, or NULL: no TLS */
    codec_buf_t wire;      /* socket bytes made, data[off..len) not written */
    codec_buf_t comp;      /* scratch: a batch compressed, before TLS */
    uint64_t wire_total;   /* socket bytes made on this connection */
    uint64_t stream_total; /* stream bytes batched */
    uint64_t acked;        /* stream bytes known delivered */
    mark_t *marks;         /* batches not known delivered, oldest first:
                              marks[head..nmarks) */
    size_t head, nmarks, capmarks;
};

link_t *link_new(codec_kind_t codec, tls_client_t *tls, const char *name)
{
    link_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    if ((codec != CODEC_PLAIN && (l->enc = codec_enc_new(codec)) == NULL) ||
        (tls != NULL && (l->tls = tls_conn_new(tls, name)) == NULL)) {
        link_free(&l);
        return NULL;
    }
    return l;
}

void link_free(link_t **pl)
{
    link_t *l = *pl;
    if (l == NULL)
        return;
    codec_enc_free(&l->enc);
    tls_conn_free(&l->tls);
    codec_buf_free(&l->wire);
    codec_buf_free(&l->comp);
    free(l->marks);
    free(l);
    *pl = NULL;
}

/* Move what TLS made to the socket bytes. */
static int s_drain(link_t *l)
{
    size_t before = l->wire.len;
    if (l->tls && tls_conn_out(l->tls, &l->wire) != 0)
        return -1;
    l->wire_total += l->wire.len - before;
    return 0;
}

tls_step_t link_handshake(link_t *l, char *why, size_t whylen)
{
    if (l->tls == NULL)
        return TLS_DONE;
    tls_step_t st = tls_conn_handshake(l->tls, why, whylen);
    if (s_drain(l) != 0) {
        snprintf(why, whylen, "out of memory");
        return TLS_FAILED;
    }
    return st;
}

int link_in(link_t *l, const void *p, size_t n, char *why, size_t whylen)
{
    if (l->tls == NULL)
        return 0; /* a plain backend sends nothing we read */
    if (tls_conn_in(l->tls, p, n) != 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    if (tls_conn_version(l->tls) == 0)
        return 0; /* the handshake reads it */
    int rc = tls_conn_poll(l->tls, why, whylen);
    if (s_drain(l) != 0) { /* e.g. the answer to a key update */
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return rc;
}

static int s_mark(link_t *l)
{
    if (l->head > 0 && l->head == l->nmarks)
        l->head = l->nmarks = 0;
    if (l->nmarks == l->capmarks) {
        if (l->head > 0) { /* move the live ones down */
            memmove(l->marks, l->marks + l->head,
                    (l->nmarks - l->head) * sizeof *l->marks);
            l->nmarks -= l->head;
            l->head = 0;
        }
        if (l->nmarks == l->capmarks) {
            size_t cap = l->capmarks ? l->capmarks * 2 : 64;
            mark_t *m = realloc(l->marks, cap * sizeof *m);
            if (m == NULL)
                return -1;
            l->marks = m;
            l->capmarks = cap;
        }
    }
    l->marks[l->nmarks++] = (mark_t){l->wire_total, l->stream_total};
    return 0;
}

int link_batch(link_t *l, const struct iovec *iov, int n, char *why,
               size_t whylen)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    struct iovec one;
    const struct iovec *src = iov;
    int nsrc = n;
    if (l->enc) {
        codec_buf_t *out = l->tls ? &l->comp : &l->wire;
        size_t before = out->len;
        if (codec_enc_batch(l->enc, iov, n, out, why, whylen) != 0)
            return -1;
        if (!l->tls)
            l->wire_total += out->len - before;
        one.iov_base = l->comp.data;
        one.iov_len = l->comp.len;
        src = &one;
        nsrc = 1;
    }
    if (l->tls && !l->enc && n > 1) {
        /* one write of the whole batch: records as full as TLS makes them,
         * not one (or more) per piece */
        for (int i = 0; i < n; i++)
            if (codec_buf_append(&l->comp, iov[i].iov_base, iov[i].iov_len) !=
                0) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
        one.iov_base = l->comp.data;
        one.iov_len = l->comp.len;
        src = &one;
        nsrc = 1;
    }
    if (l->tls) {
        for (int i = 0; i < nsrc; i++)
            if (tls_conn_write(l->tls, src[i].iov_base, src[i].iov_len, why,
                               whylen) != 0)
                return -1;
        l->comp.len = l->comp.off = 0;
        if (s_drain(l) != 0) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
    } else if (!l->enc) {
        for (int i = 0; i < n; i++)
            if (codec_buf_append(&l->wire, iov[i].iov_base, iov[i].iov_len) !=
                0) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
        l->wire_total += total;
    }
    l->stream_total += total;
    if (s_mark(l) != 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

const char *link_wire(const link_t *l, size_t *len)
{
    *len = l->wire.len - l->wire.off;
    return l->wire.data ? l->wire.data + l->wire.off : NULL;
}

void link_wrote(link_t *l, size_t n)
{
    codec_buf_take(&l->wire, n);
}

uint64_t link_acked(link_t *l, uint64_t wire_acked)
{
    while (l->head < l->nmarks && l->marks[l->head].wire <= wire_acked)
        l->acked = l->marks[l->head++].stream;
    return l->acked;
}

void link_totals(const link_t *l, uint64_t *stream, uint64_t *wire)
{
    *stream = l->stream_total;
    *wire = l->wire_total;
}

int link_tls_version(const link_t *l)
{
    return l->tls ? tls_conn_version(l->tls) : 0;
}

int link_tls_cert_asked(const link_t *l)
{
    return l->tls ? tls_conn_cert_asked(l->tls) : 0;
}
