/*
 * batch.c -- header encoding and the payload codecs of the batch protocol.
 * See batch.h for the layout.  The orchester trusts no satellite: the lines
 * codec delivers only lines that line_check() (src/line.c) finds canonical.
 */
#include "batch.h"

#include <string.h>

static const unsigned char s_magic[4] = {'O', 'R', 'C', 'B'};

static void s_put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t s_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void batch_hdr_encode(const batch_hdr_t *h, unsigned char *out)
{
    memcpy(out, s_magic, 4);
    out[4] = BATCH_VERSION;
    out[5] = h->type;
    out[6] = h->codec;
    out[7] = h->flags;
    s_put64(out + 8, h->sat_id);
    s_put64(out + 16, h->seq);
    out[24] = (unsigned char)(h->count >> 24);
    out[25] = (unsigned char)(h->count >> 16);
    out[26] = (unsigned char)(h->count >> 8);
    out[27] = (unsigned char)h->count;
}

int batch_hdr_decode(const void *buf, size_t len, batch_hdr_t *h)
{
    const unsigned char *p = buf;
    if (len != BATCH_HDR_LEN || memcmp(p, s_magic, 4) != 0 ||
        p[4] != BATCH_VERSION)
        return -1;
    if (p[5] != BATCH_DATA && p[5] != BATCH_ACK && p[5] != BATCH_NACK)
        return -1;
    h->type = p[5];
    h->codec = p[6];
    h->flags = p[7];
    h->sat_id = s_get64(p + 8);
    h->seq = s_get64(p + 16);
    h->count = ((uint32_t)p[24] << 24) | ((uint32_t)p[25] << 16) |
               ((uint32_t)p[26] << 8) | p[27];
    return 0;
}

size_t batch_name_len(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (line[i] == ' ' || line[i] == ';')
            return i;
    return len;
}

/* The lines codec: canonical "name value timestamp\n" lines back to back.
 * Every line is checked with line_check(); a line that is not canonical (a
 * last line without '\n' among them) is refused and the others go on. */
static long s_decode(const void *payload, size_t len, size_t maxline,
                     codec_point_fn fn, void *arg, long *refused, int src)
{
    const char *p = payload;
    const char *end = p + len;
    size_t maxlen = LINE_CANON_MAX(maxline);
    long n = 0;
    *refused = 0;
    /* with sources, the last line may come after its source line */
    if (len > BATCH_PAYLOAD_MAX(maxline) + (src ? CODEC_SOURCE_MAX + 2 : 0))
        return -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = (size_t)((nl != NULL ? nl + 1 : end) - p);
        size_t namelen;
        if (src && l > 0 && p[0] == '\0') {
            /* the address of the client of the next lines: printable, no
             * white space, 0 (none) to CODEC_SOURCE_MAX bytes, then '\n' */
            size_t al = l - 1 - (nl != NULL);
            int ok = nl != NULL && al <= CODEC_SOURCE_MAX;
            for (size_t i = 1; ok && i <= al; i++)
                ok = p[i] > ' ' && p[i] < 127;
            if (!ok)
                (*refused)++;
            else if (fn(arg, p + 1, al, CODEC_SOURCE) != 0)
                return n;
        } else if (line_check(p, l, maxlen, &namelen) != 0) {
            (*refused)++;
        } else {
            n++;
            if (fn(arg, p, l, namelen) != 0)
                return n;
        }
        p += l;
    }
    return n;
}

static long s_lines_decode(const void *payload, size_t len, size_t maxline,
                           codec_point_fn fn, void *arg, long *refused)
{
    return s_decode(payload, len, maxline, fn, arg, refused, 0);
}

static long s_lines_src_decode(const void *payload, size_t len, size_t maxline,
                               codec_point_fn fn, void *arg, long *refused)
{
    return s_decode(payload, len, maxline, fn, arg, refused, 1);
}

static const codec_t s_codecs[] = {
    {CODEC_LINES, "lines", s_lines_decode},
    {CODEC_LINES_SRC, "lines with sources", s_lines_src_decode},
};

const codec_t *codec_find(uint8_t id)
{
    for (size_t i = 0; i < sizeof s_codecs / sizeof s_codecs[0]; i++)
        if (s_codecs[i].id == id)
            return &s_codecs[i];
    return NULL;
}
