/*
 * queue.c -- see queue.h.  A growable ring of chunk descriptors.
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *data;          /* the bytes (owned by owner) */
    size_t len;                /* total bytes */
    size_t off;                /* bytes written */
    size_t ack;                /* bytes delivered (ack <= off) */
    uint32_t lines;            /* datapoints in the chunk */
    unsigned flags;            /* QUEUE_KEEP or 0 */
    queue_release_fn *release; /* frees the bytes */
    void *owner;               /* argument to release */
} chunk_t;

struct queue {
    chunk_t *ring;   /* ncap descriptors */
    size_t ncap;     /* ring capacity (power of two) */
    size_t head;     /* index of the oldest chunk */
    size_t n;        /* chunks in the ring */
    size_t w;        /* the first chunk not written to its end (0..n) */
    uint64_t cap;    /* bound in datapoints */
    uint64_t lines;  /* datapoints queued, in flight included */
    uint64_t flines; /* of them, in chunks written to their end (before w):
                        in flight; the bound does not count them */
    size_t bytes;    /* unwritten bytes queued */
    size_t inflight; /* bytes written and not yet delivered */
    uint64_t klines; /* datapoints in kept chunks */
};

queue_t *queue_new(uint64_t cap)
{
    queue_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->ncap = 64;
    q->ring = calloc(q->ncap, sizeof *q->ring);
    if (q->ring == NULL) {
        free(q);
        return NULL;
    }
    q->cap = cap ? cap : 1;
    return q;
}

static chunk_t *s_at(const queue_t *q, size_t i)
{
    return &q->ring[(q->head + i) & (q->ncap - 1)];
}

/* Remove the i-th chunk and return its datapoints; the older ones move up
 * one slot (i is small: at most the chunks in flight, plus one).  The
 * chunk is released (delivered says how) unless release is 0: then its
 * owner was handed back. */
static uint64_t s_remove(queue_t *q, size_t i, int delivered, int release)
{
    chunk_t *c = s_at(q, i);
    uint64_t l = c->lines;
    q->lines -= c->lines;
    q->bytes -= c->len - c->off;
    q->inflight -= c->off - c->ack;
    if (i < q->w)
        q->flines -= c->lines;
    if (c->flags & QUEUE_KEEP)
        q->klines -= c->lines;
    if (release && c->release)
        c->release(c->owner, delivered);
    for (size_t k = i; k > 0; k--)
        *s_at(q, k) = *s_at(q, k - 1);
    q->head = (q->head + 1) & (q->ncap - 1);
    q->n--;
    if (q->w > i)
        q->w--;
    return l;
}

void queue_destroy(queue_t **pq)
{
    if (pq == NULL || *pq == NULL)
        return;
    queue_clear(*pq);
    free((*pq)->ring);
    free(*pq);
    *pq = NULL;
}

uint64_t queue_clear(queue_t *q)
{
    uint64_t dropped = 0;
    while (q->n > 0)
        dropped += s_remove(q, 0, 0, 1);
    return dropped;
}

static int s_grow(queue_t *q)
{
    size_t ncap = q->ncap * 2;
    chunk_t *r = calloc(ncap, sizeof *r);
    if (r == NULL)
        return -1;
    for (size_t i = 0; i < q->n; i++)
        r[i] = *s_at(q, i);
    free(q->ring);
    q->ring = r;
    q->ncap = ncap;
    q->head = 0;
    return 0;
}

uint64_t queue_push(queue_t *q, const char *data, size_t len, uint32_t lines,
                    queue_release_fn *release, void *owner)
{
    return queue_push_flags(q, data, len, lines, 0, release, owner);
}

uint64_t queue_push_flags(queue_t *q, const char *data, size_t len,
                          uint32_t lines, unsigned flags,
                          queue_release_fn *release, void *owner)
{
    uint64_t dropped = 0;
    size_t i = q->w;
    while (q->lines - q->flines + lines > q->cap) {
        /* the oldest chunk nothing of which was written and that is not
         * kept: never one in flight (it may have to be sent again) or half
         * written (the stream stays aligned) */
        while (i < q->n &&
               (s_at(q, i)->off > 0 || (s_at(q, i)->flags & QUEUE_KEEP)))
            i++;
        if (i >= q->n)
            break;
        dropped += s_remove(q, i, 0, 1); /* the next one is the i-th now */
    }
    if (q->n == q->ncap && s_grow(q) != 0) {
        if (release)
            release(owner, 0);
        return dropped + lines;
    }
    chunk_t *c = s_at(q, q->n);
    c->data = data;
    c->len = len;
    c->off = 0;
    c->ack = 0;
    c->lines = lines;
    c->flags = flags;
    c->release = release;
    c->owner = owner;
    q->n++;
    q->lines += lines;
    q->bytes += len;
    if (flags & QUEUE_KEEP)
        q->klines += lines;
    return dropped;
}

uint64_t queue_kept_lines(const queue_t *q)
{
    return q->klines;
}

uint64_t queue_take_kept(queue_t *q, queue_take_fn *fn, void *arg)
{
    uint64_t taken = 0;
    if (q->inflight > 0 || q->w > 0)
        return 0; /* only while nothing is in flight */
    for (size_t i = 0; i < q->n;) {
        chunk_t *c = s_at(q, i);
        if (!(c->flags & QUEUE_KEEP)) {
            i++;
            continue;
        }
        /* the lines left: a chunk's delivered part ends at a line's
         * start (queue_rewind) */
        uint32_t left = c->lines;
        if (c->off > 0) {
            left = 0;
            for (size_t k = c->off; k < c->len; k++)
                left += c->data[k] == '\n';
        }
        void *owner = c->owner;
        size_t off = c->off;
        taken += left;
        s_remove(q, i, 0, 0);
        fn(arg, owner, off, left); /* the next one is the i-th now */
    }
    return taken;
}

int queue_room(const queue_t *q, uint64_t lines)
{
    return q->lines - q->flines + lines <= q->cap;
}

uint64_t queue_inflight_lines(const queue_t *q)
{
    return q->flines;
}

uint64_t queue_lines(const queue_t *q)
{
    return q->lines;
}

size_t queue_bytes(const queue_t *q)
{
    return q->bytes;
}

size_t queue_inflight(const queue_t *q)
{
    return q->inflight;
}

uint64_t queue_cap(const queue_t *q)
{
    return q->cap;
}

int queue_iov(const queue_t *q, struct iovec *iov, int max, size_t max_bytes)
{
    int k = 0;
    size_t total = 0;
    for (size_t i = q->w; i < q->n && k < max && total < max_bytes; i++) {
        const chunk_t *c = s_at(q, i);
        size_t l = c->len - c->off;
        if (l == 0)
            continue;
        iov[k].iov_base = (void *)(c->data + c->off);
        iov[k].iov_len = l;
        total += l;
        k++;
    }
    return k;
}

void queue_wrote(queue_t *q, size_t n)
{
    while (n > 0 && q->w < q->n) {
        chunk_t *c = s_at(q, q->w);
        size_t l = c->len - c->off;
        size_t k = n < l ? n : l;
        c->off += k;
        q->bytes -= k;
        q->inflight += k;
        n -= k;
        if (c->off == c->len) {
            q->flines += c->lines;
            q->w++;
        }
    }
}

uint64_t queue_delivered(queue_t *q, size_t n)
{
    uint64_t done = 0;
    while (n > 0 && q->n > 0) {
        chunk_t *c = s_at(q, 0);
        size_t l = c->off - c->ack;
        size_t k = n < l ? n : l;
        if (k == 0)
            break; /* nothing of it was written: n was more than in flight */
        c->ack += k;
        q->inflight -= k;
        n -= k;
        if (c->ack == c->len)
            done += s_remove(q, 0, 1, 1);
    }
    return done;
}

uint64_t queue_consume(queue_t *q, size_t n)
{
    queue_wrote(q, n);
    return queue_delivered(q, n);
}

void queue_rewind(queue_t *q, int whole)
{
    if (q->n == 0)
        return;
    /* everything written and not delivered is to be written again */
    for (size_t i = 0; i < q->n && i <= q->w; i++) {
        chunk_t *c = s_at(q, i);
        q->bytes += c->off - c->ack;
        q->inflight -= c->off - c->ack;
        c->off = c->ack;
    }
    q->w = 0;
    q->flines = 0;
    /* the peer got the oldest one's delivered part, which may end inside a
     * line (or a frame): from that line's (the chunk's) start again */
    chunk_t *c = s_at(q, 0);
    size_t off = whole ? 0 : c->ack;
    while (off > 0 && c->data[off - 1] != '\n')
        off--;
    q->bytes += c->ack - off;
    c->off = c->ack = off;
}
