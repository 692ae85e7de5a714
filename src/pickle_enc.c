/*
 * pickle_enc.c -- see pickle_enc.h.
 *
 * Frame layout (opcodes of pickle protocol 2):
 *   PROTO 2, EMPTY_LIST, MARK,
 *     per datapoint: BINUNICODE path, BININT or BINFLOAT timestamp,
 *                    BINFLOAT value, TUPLE2, TUPLE2
 *   APPENDS, STOP
 */
#include "pickle_enc.h"
#include "pickle_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *buf; /* owned */
    size_t len;
    size_t cap;
} obuf_t;

static int s_reserve(obuf_t *o, size_t n)
{
    if (o->len + n <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap * 2 : 4096;
    while (cap < o->len + n)
        cap *= 2;
    char *p = realloc(o->buf, cap);
    if (p == NULL)
        return -1;
    o->buf = p;
    o->cap = cap;
    return 0;
}

static void s_byte(obuf_t *o, unsigned char b)
{
    o->buf[o->len++] = (char)b;
}

static void s_le32(obuf_t *o, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        s_byte(o, (unsigned char)(v >> (8 * i)));
}

static void s_double(obuf_t *o, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    s_byte(o, OP_BINFLOAT);
    for (int i = 7; i >= 0; i--)
        s_byte(o, (unsigned char)(u >> (8 * i)));
}

/* Parse a number from text (not NUL-terminated) with strtod. */
static int s_number(const char *s, size_t n, double *out)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    *out = strtod(tmp, &end);
    return *end == '\0' ? 0 : -1;
}

static void s_frame_start(obuf_t *o, size_t *start)
{
    *start = o->len;
    o->len += 4; /* the length, filled in at the end */
    s_byte(o, OP_PROTO);
    s_byte(o, 2);
    s_byte(o, OP_EMPTY_LIST);
    s_byte(o, OP_MARK);
}

static void s_frame_end(obuf_t *o, size_t start)
{
    s_byte(o, OP_APPENDS);
    s_byte(o, OP_STOP);
    uint32_t flen = (uint32_t)(o->len - start - 4);
    unsigned char *p = (unsigned char *)o->buf + start;
    p[0] = (unsigned char)(flen >> 24);
    p[1] = (unsigned char)(flen >> 16);
    p[2] = (unsigned char)(flen >> 8);
    p[3] = (unsigned char)flen;
}

char *pickle_enc_lines(const char *lines, size_t len, size_t *outlen,
                       uint32_t *points, uint32_t *skipped)
{
    obuf_t o = {0};
    const char *p = lines, *end = lines + len;
    uint32_t n = 0, skip = 0, inframe = 0;
    size_t start = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            nl = end;
        const char *s1 = memchr(p, ' ', (size_t)(nl - p));
        const char *s2 = s1 ? memchr(s1 + 1, ' ', (size_t)(nl - s1 - 1)) : NULL;
        double value, ts;
        if (s1 == NULL || s2 == NULL || s1 == p ||
            s_number(s1 + 1, (size_t)(s2 - s1 - 1), &value) != 0 ||
            s_number(s2 + 1, (size_t)(nl - s2 - 1), &ts) != 0) {
            skip++;
            p = nl + 1;
            continue;
        }
        size_t plen = (size_t)(s1 - p);
        if (s_reserve(&o, plen + 64) != 0)
            goto nomem;
        if (inframe == 0)
            s_frame_start(&o, &start);
        s_byte(&o, OP_BINUNICODE);
        s_le32(&o, (uint32_t)plen);
        memcpy(o.buf + o.len, p, plen);
        o.len += plen;
        if (ts == floor(ts) && ts >= -2147483648.0 && ts <= 2147483647.0) {
            s_byte(&o, OP_BININT);
            s_le32(&o, (uint32_t)(int32_t)ts);
        } else {
            s_double(&o, ts);
        }
        s_double(&o, value);
        s_byte(&o, OP_TUPLE2); /* (timestamp, value) */
        s_byte(&o, OP_TUPLE2); /* (name, (timestamp, value)) */
        n++;
        if (++inframe == PICKLE_ENC_POINTS) {
            s_frame_end(&o, start);
            inframe = 0;
        }
        p = nl + 1;
    }
    if (inframe > 0)
        s_frame_end(&o, start);
    if (o.buf == NULL && s_reserve(&o, 1) != 0)
        goto nomem;
    *outlen = o.len;
    *points = n;
    *skipped = skip;
    return o.buf;
nomem:
    free(o.buf);
    return NULL;
}
