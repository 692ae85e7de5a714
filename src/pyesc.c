/*
 * pyesc.c -- see pyesc.h.
 */
#include "pyesc.h"

#include <string.h>

static int s_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t pyesc_utf8(unsigned char *t, uint32_t cp)
{
    if (cp < 0x80) {
        t[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        t[0] = (unsigned char)(0xc0 | cp >> 6);
        t[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        t[0] = (unsigned char)(0xe0 | cp >> 12);
        t[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        t[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    t[0] = (unsigned char)(0xf0 | cp >> 18);
    t[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    t[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    t[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

long pyesc_string(const unsigned char *s, size_t n, unsigned char *t)
{
    size_t i = 0, w = 0;

    while (i < n) {
        unsigned char c = s[i++];

        if (c != '\\') {
            t[w++] = c;
            continue;
        }
        if (i == n)
            return -1; /* a trailing backslash */
        c = s[i++];
        switch (c) {
        case '\\':
        case '\'':
        case '"': t[w++] = c; break;
        case 'a': t[w++] = '\a'; break;
        case 'b': t[w++] = '\b'; break;
        case 'f': t[w++] = '\f'; break;
        case 'n': t[w++] = '\n'; break;
        case 'r': t[w++] = '\r'; break;
        case 't': t[w++] = '\t'; break;
        case 'v': t[w++] = '\v'; break;
        case 'x': {
            int hi = i + 2 <= n ? s_hex(s[i]) : -1;
            int lo = i + 2 <= n ? s_hex(s[i + 1]) : -1;

            if (hi < 0 || lo < 0)
                return -1;
            t[w++] = (unsigned char)(hi << 4 | lo);
            i += 2;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                unsigned v = c - '0', k;

                for (k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++)
                    v = v * 8 + (s[i++] - '0');
                t[w++] = (unsigned char)v;
            } else {
                t[w++] = '\\'; /* unknown escapes stay as written */
                t[w++] = c;
            }
        }
    }
    return (long)w;
}

long pyesc_raw_unicode(const unsigned char *s, size_t n, unsigned char *t)
{
    size_t i = 0, w = 0, j, r, k;

    while (i < n) {
        if (s[i] != '\\') {
            w += pyesc_utf8(t + w, s[i++]);
            continue;
        }
        for (j = i; j < n && s[j] == '\\'; j++)
            ;
        r = j - i;
        if (!(r & 1) || j == n || (s[j] != 'u' && s[j] != 'U')) {
            memset(t + w, '\\', r);
            w += r;
            i = j;
            continue;
        }
        memset(t + w, '\\', r - 1);
        w += r - 1;
        size_t nd = s[j] == 'u' ? 4 : 8;
        uint32_t cp = 0;

        if (n - (j + 1) < nd)
            return -1;
        for (k = 0; k < nd; k++) {
            int h = s_hex(s[j + 1 + k]);

            if (h < 0)
                return -1;
            cp = cp << 4 | (uint32_t)h;
        }
        if (cp > 0x10ffff)
            return -1;
        w += pyesc_utf8(t + w, cp);
        i = j + 1 + nd;
    }
    return (long)w;
}
