/*
 * queue.c -- see queue.h.  A growable ring of chunk descriptors.
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *data;          /* the bytes (owned by owner) */
    size_t len;                /* total bytes */
    size_t off;                /* bytes already written */
    uint32_t lines;            /* datapoints in the chunk */
    queue_release_fn *release; /* frees the bytes */
    void *owner;               /* argument to release */
} chunk_t;

struct queue {
    chunk_t *ring;  /* ncap descriptors */
    size_t ncap;    /* ring capacity (power of two) */
    size_t head;    /* index of the oldest chunk */
    size_t n;       /* chunks in the ring */
    uint64_t cap;   /* bound in datapoints */
    uint64_t lines; /* datapoints queued */
    size_t bytes;   /* unwritten bytes queued */
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

static void s_release(chunk_t *c)
{
    if (c->release)
        c->release(c->owner);
}

/* Remove the i-th chunk (i = 0 or 1) and return its datapoints. */
static uint64_t s_remove(queue_t *q, size_t i)
{
    chunk_t *c = s_at(q, i);
    uint64_t l = c->lines;
    q->lines -= c->lines;
    q->bytes -= c->len - c->off;
    s_release(c);
    if (i == 1)
        *c = *s_at(q, 0);
    q->head = (q->head + 1) & (q->ncap - 1);
    q->n--;
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
        dropped += s_remove(q, 0);
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
    uint64_t dropped = 0;
    while (q->n > 0 && q->lines + lines > q->cap) {
        /* never drop the chunk that is half written */
        if (s_at(q, 0)->off == 0)
            dropped += s_remove(q, 0);
        else if (q->n > 1)
            dropped += s_remove(q, 1);
        else
            break;
    }
    if (q->n == q->ncap && s_grow(q) != 0) {
        if (release)
            release(owner);
        return dropped + lines;
    }
    chunk_t *c = s_at(q, q->n);
    c->data = data;
    c->len = len;
    c->off = 0;
    c->lines = lines;
    c->release = release;
    c->owner = owner;
    q->n++;
    q->lines += lines;
    q->bytes += len;
    return dropped;
}

int queue_room(const queue_t *q, uint64_t lines)
{
    return q->lines + lines <= q->cap;
}

uint64_t queue_lines(const queue_t *q)
{
    return q->lines;
}
size_t queue_bytes(const queue_t *q)
{
    return q->bytes;
}
uint64_t queue_cap(const queue_t *q)
{
    return q->cap;
}

int queue_iov(const queue_t *q, struct iovec *iov, int max, size_t max_bytes)
{
    int k = 0;
    size_t total = 0;
    for (size_t i = 0; i < q->n && k < max && total < max_bytes; i++) {
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

uint64_t queue_consume(queue_t *q, size_t n)
{
    uint64_t done = 0;
    while (n > 0 && q->n > 0) {
        chunk_t *c = s_at(q, 0);
        size_t l = c->len - c->off;
        if (n < l) {
            c->off += n;
            q->bytes -= n;
            return done;
        }
        n -= l;
        q->bytes -= l;
        c->off = c->len;
        done += s_remove(q, 0);
    }
    return done;
}

void queue_rewind(queue_t *q, int whole)
{
    if (q->n == 0)
        return;
    chunk_t *c = s_at(q, 0);
    size_t off = whole ? 0 : c->off;
    while (off > 0 && c->data[off - 1] != '\n')
        off--;
    q->bytes += c->off - off;
    c->off = off;
}
