/*
 * ring.c -- see ring.h.  Placement of metric names on cluster members.
 *
 * carbon_ch and fnv1a_ch keep a sorted array of (position, member) entries,
 * RING_REPLICAS per member; a lookup is a binary search for the first entry
 * at or after the name's position, then a walk (wrapping around) that
 * collects distinct members.  jump_fnv1a_ch keeps the members in bucket
 * order.  any_of and failover need nothing but the member count.
 *
 * MD5 comes from libcrypto's low-level MD5_Init/Update/Final on a stack
 * context: unlike EVP_Digest, which allocates a context on every call, it
 * neither allocates nor locks, which the routing hot path needs.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "ring.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/md5.h>

/* One replica (or, for jump_fnv1a_ch, one bucket) on the ring. */
typedef struct {
    uint32_t pos;    /* ring position; the bucket number for jump */
    uint32_t member; /* index into the members given to ring_new */
} ring_entry_t;

struct ring {
    ring_kind_t kind;      /* what placement this is */
    unsigned flags;        /* RING_* flags from ring_new */
    size_t n;              /* members */
    size_t nentries;       /* entries in `entries` */
    ring_entry_t *entries; /* sorted ring, or bucket order; NULL if none */
    uint32_t *host_id;     /* RING_DIVERSE_HOSTS: member -> lowest index of
                              a member with the same host; else NULL */
};

/* A replica while the ring is built: its entry and its member. */
typedef struct {
    ring_entry_t e;         /* position and member index */
    const ring_member_t *m; /* the member, for tie-breaking */
} ring_build_t;

/* carbon-c-relay-compatible replica keys are formatted into a buffer of this
 * size, so longer keys are cut to 255 bytes before they are hashed. */
#define S_KEYBUF 256

/* ---------------------------------------------------------------------- */
/* hash functions */

uint16_t ring_hash_carbon(const char *key, size_t len)
{
    MD5_CTX c;
    unsigned char d[MD5_DIGEST_LENGTH];

    MD5_Init(&c);
    if (len > 0)
        MD5_Update(&c, key, len);
    MD5_Final(d, &c);
    return (uint16_t)((d[0] << 8) | d[1]);
}

uint32_t ring_hash_fnv1a32(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        /* a signed char, sign-extended, as carbon-c-relay on x86 does */
        h ^= (uint32_t)(int32_t)(signed char)key[i];
        h *= 16777619u;
    }
    return h;
}

uint64_t ring_hash_fnv1a64(const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint64_t)(int64_t)(signed char)key[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint16_t ring_hash_fnv1a_pos(const char *key, size_t len)
{
    uint32_t h = ring_hash_fnv1a32(key, len);
    return (uint16_t)((h >> 16) ^ (h & 0xffffu));
}

uint32_t ring_jump(uint64_t key, uint32_t nbuckets)
{
    int64_t b = -1, j = 0;

    assert(nbuckets > 0);
    while (j < (int64_t)nbuckets) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = (int64_t)((double)(b + 1) *
                      ((double)(1ll << 31) / (double)((key >> 33) + 1)));
    }
    return (uint32_t)b;
}

/* The xorshift-multiply step that re-mixes a 64-bit hash between jumps. */
static uint64_t s_remix64(uint64_t h)
{
    h ^= h >> 12;
    h ^= h << 25;
    h ^= h >> 27;
    return h * 2685821657736338717ull;
}

/* A 32-bit re-mix (murmur3's finalizer), for any_of around dead members. */
static uint32_t s_remix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* ---------------------------------------------------------------------- */
/* building */

/* strcmp, with NULL (no instance) after every string. */
static int s_cmp_instance(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return (a == NULL) - (b == NULL);
    return strcmp(a, b);
}

/* carbon_ch order: position, host, instance (none last), config order. */
static int s_cmp_carbon(const void *pa, const void *pb)
{
    const ring_build_t *a = pa, *b = pb;
    int d;

    if (a->e.pos != b->e.pos)
        return a->e.pos < b->e.pos ? -1 : 1;
    if ((d = strcmp(a->m->host, b->m->host)) != 0)
        return d;
    if ((d = s_cmp_instance(a->m->instance, b->m->instance)) != 0)
        return d;
    return (a->e.member > b->e.member) - (a->e.member < b->e.member);
}

/* fnv1a_ch order: position, host, port, config order. */
static int s_cmp_fnv1a(const void *pa, const void *pb)
{
    const ring_build_t *a = pa, *b = pb;
    int d;

    if (a->e.pos != b->e.pos)
        return a->e.pos < b->e.pos ? -1 : 1;
    if ((d = strcmp(a->m->host, b->m->host)) != 0)
        return d;
    if (a->m->port != b->m->port)
        return a->m->port < b->m->port ? -1 : 1;
    return (a->e.member > b->e.member) - (a->e.member < b->e.member);
}

/* Python carbon order: position only (positions are unique there). */
static int s_cmp_pos(const void *pa, const void *pb)
{
    const ring_build_t *a = pa, *b = pb;
    return (a->e.pos > b->e.pos) - (a->e.pos < b->e.pos);
}

/* Write Python's repr() of the string s to dst (room for 4 * strlen(s) + 3
 * bytes) and return its length.  The ASCII rules: single quotes unless s
 * holds a single quote and no double quote; backslash and the chosen quote
 * escaped; \t \n \r; other control bytes as \xNN.  Bytes above 0x7f are
 * copied (printable UTF-8 is what a host or instance holds). */
static size_t s_pyrepr(char *dst, const char *s)
{
    char q = (strchr(s, '\'') != NULL && strchr(s, '"') == NULL) ? '"' : '\'';
    size_t o = 0;

    dst[o++] = q;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == q || *p == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)*p;
        } else if (*p == '\t' || *p == '\n' || *p == '\r') {
            dst[o++] = '\\';
            dst[o++] = *p == '\t' ? 't' : *p == '\n' ? 'n' : 'r';
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)sprintf(dst + o, "\\x%02x", *p);
        } else {
            dst[o++] = (char)*p;
        }
    }
    dst[o++] = q;
    dst[o] = '\0';
    return o;
}

/* The carbon_ch replica key ('<host>', <inst>):<i> of member m into buf
 * (S_KEYBUF bytes, cut as carbon-c-relay cuts it); returns its length. */
static size_t s_key_carbon(char *buf, const ring_member_t *m, int i)
{
    const char *in = m->instance;
    int len = snprintf(buf, S_KEYBUF, "('%s', %s%s%s):%d", m->host,
                       in ? "'" : "", in ? in : "None", in ? "'" : "", i);
    return len < 0 ? 0 : (size_t)len >= S_KEYBUF ? S_KEYBUF - 1 : (size_t)len;
}

/* The fnv1a_ch replica key <i>-<host>:<port>, or <i>-<instance>. */
static size_t s_key_fnv1a(char *buf, const ring_member_t *m, int i)
{
    int len;
    if (m->instance != NULL)
        len = snprintf(buf, S_KEYBUF, "%d-%s", i, m->instance);
    else
        len =
            snprintf(buf, S_KEYBUF, "%d-%s:%u", i, m->host, (unsigned)m->port);
    return len < 0 ? 0 : (size_t)len >= S_KEYBUF ? S_KEYBUF - 1 : (size_t)len;
}

/* carbon_ch (carbon-c-relay) and fnv1a_ch: hash, sort, then give every
 * entry of a run of equal positions to the run's first member. */
static int s_build_ch(ring_t *r, const ring_member_t *members)
{
    ring_build_t *b = malloc(r->nentries * sizeof *b);
    char buf[S_KEYBUF];

    if (b == NULL)
        return -1;
    for (size_t m = 0, k = 0; m < r->n; m++) {
        for (int i = 0; i < RING_REPLICAS; i++, k++) {
            size_t len;
            if (r->kind == RING_CARBON_CH) {
                len = s_key_carbon(buf, &members[m], i);
                b[k].e.pos = ring_hash_carbon(buf, len);
            } else {
                len = s_key_fnv1a(buf, &members[m], i);
                b[k].e.pos = ring_hash_fnv1a_pos(buf, len);
            }
            b[k].e.member = (uint32_t)m;
            b[k].m = &members[m];
        }
    }
    qsort(b, r->nentries, sizeof *b,
          r->kind == RING_CARBON_CH ? s_cmp_carbon : s_cmp_fnv1a);
    for (size_t k = 0; k < r->nentries; k++) {
        r->entries[k] = b[k].e;
        if (k > 0 && r->entries[k].pos == r->entries[k - 1].pos)
            r->entries[k].member = r->entries[k - 1].member;
    }
    free(b);
    return 0;
}

/* carbon_ch (Python carbon): members in config order, replicas in order;
 * a position already taken is bumped by one until it is free. */
static int s_build_graphite(ring_t *r, const ring_member_t *members)
{
    size_t maxpos = 65536 + r->nentries; /* bumps cannot pass this */
    unsigned char *used = calloc(maxpos / 8 + 1, 1);
    ring_build_t *b = malloc(r->nentries * sizeof *b);
    char *buf = NULL;
    int rc = -1;

    if (used == NULL || b == NULL)
        goto out;
    for (size_t m = 0, k = 0; m < r->n; m++) {
        const ring_member_t *mb = &members[m];
        const char *in = mb->instance;
        size_t cap = 4 * (strlen(mb->host) + (in ? strlen(in) : 0)) + 64;
        char *nbuf = realloc(buf, cap);
        size_t head;

        if (nbuf == NULL)
            goto out;
        buf = nbuf;
        /* "('<host>', <inst>)" once; ":<i>" per replica */
        head = 0;
        buf[head++] = '(';
        head += s_pyrepr(buf + head, mb->host);
        buf[head++] = ',';
        buf[head++] = ' ';
        if (in != NULL) {
            head += s_pyrepr(buf + head, in);
        } else {
            memcpy(buf + head, "None", 4);
            head += 4;
        }
        buf[head++] = ')';
        for (int i = 0; i < RING_REPLICAS; i++, k++) {
            int len = snprintf(buf + head, cap - head, ":%d", i);
            uint32_t pos = ring_hash_carbon(buf, head + (size_t)len);
            while (used[pos / 8] & (1u << (pos % 8)))
                pos++;
            used[pos / 8] |= (unsigned char)(1u << (pos % 8));
            b[k].e.pos = pos;
            b[k].e.member = (uint32_t)m;
            b[k].m = mb;
        }
    }
    qsort(b, r->nentries, sizeof *b, s_cmp_pos);
    for (size_t k = 0; k < r->nentries; k++)
        r->entries[k] = b[k].e;
    rc = 0;
out:
    free(buf);
    free(b);
    free(used);
    return rc;
}

/* jump_fnv1a_ch bucket order: members with an instance first (compared as
 * numbers when both parse whole as integers, else strcmp), then those
 * without one in config order.  Only the sign of the result matters. */
static int s_cmp_jump(const ring_member_t *members, uint32_t a, uint32_t b)
{
    const char *ia = members[a].instance, *ib = members[b].instance;
    char *end;

    if (ia == NULL && ib == NULL)
        return (a > b) - (a < b);
    if (ia == NULL || ib == NULL)
        return ia == NULL ? 1 : -1;
    long la = strtol(ia, &end, 10);
    if (*end == '\0') {
        long lb = strtol(ib, &end, 10);
        if (*end == '\0') {
            /* the difference cut to an int, as carbon-c-relay has it */
            uint32_t d = (uint32_t)((unsigned long)la - (unsigned long)lb);
            return d == 0 ? 0 : (d & 0x80000000u) ? -1 : 1;
        }
    }
    return strcmp(ia, ib);
}

/* Top-down merge sort (halves n / 2 and n - n / 2, ties to the left), the
 * same as the sort carbon-c-relay gets from glibc's qsort: the jump order
 * above is not a total order when numeric and other instances mix, so the
 * algorithm decides the result there. */
static void s_msort(const ring_member_t *members, uint32_t *v, uint32_t *tmp,
                    size_t n)
{
    size_t n1 = n / 2, n2 = n - n1;
    uint32_t *b1 = v, *b2 = v + n1, *t = tmp;

    if (n <= 1)
        return;
    s_msort(members, b1, tmp, n1);
    s_msort(members, b2, tmp, n2);
    while (n1 > 0 && n2 > 0) {
        if (s_cmp_jump(members, *b1, *b2) <= 0) {
            *t++ = *b1++;
            n1--;
        } else {
            *t++ = *b2++;
            n2--;
        }
    }
    if (n1 > 0)
        memcpy(t, b1, n1 * sizeof *t);
    memcpy(v, tmp, (n - n2) * sizeof *v);
}

static int s_build_jump(ring_t *r, const ring_member_t *members)
{
    uint32_t *v = malloc(2 * r->n * sizeof *v);

    if (v == NULL)
        return -1;
    for (size_t m = 0; m < r->n; m++)
        v[m] = (uint32_t)m;
    s_msort(members, v, v + r->n, r->n);
    for (size_t k = 0; k < r->n; k++) {
        r->entries[k].pos = (uint32_t)k;
        r->entries[k].member = v[k];
    }
    free(v);
    return 0;
}

/* RING_DIVERSE_HOSTS: number members by host. */
static int s_build_hosts(ring_t *r, const ring_member_t *members)
{
    r->host_id = malloc(r->n * sizeof *r->host_id);
    if (r->host_id == NULL)
        return -1;
    for (size_t m = 0; m < r->n; m++) {
        size_t f = 0;
        while (strcmp(members[f].host, members[m].host) != 0)
            f++;
        r->host_id[m] = (uint32_t)f;
    }
    return 0;
}

ring_t *ring_new(ring_kind_t kind, const ring_member_t *members, size_t n,
                 unsigned flags)
{
    ring_t *r = NULL;
    int rc = 0;

    if ((int)kind < (int)RING_CARBON_CH || kind > RING_FAILOVER ||
        (flags & ~(unsigned)RING_DIVERSE_HOSTS) != 0 || members == NULL ||
        n == 0 || n > RING_MAX_MEMBERS)
        goto einval;
    for (size_t m = 0; m < n; m++)
        if (members[m].host == NULL)
            goto einval;

    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->kind = kind;
    r->flags = flags;
    r->n = n;
    switch (kind) {
    case RING_CARBON_CH:
    case RING_CARBON_CH_GRAPHITE:
    case RING_FNV1A_CH: r->nentries = n * RING_REPLICAS; break;
    case RING_JUMP_FNV1A_CH: r->nentries = n; break;
    default: r->nentries = 0; break;
    }
    if (r->nentries > 0) {
        r->entries = malloc(r->nentries * sizeof *r->entries);
        if (r->entries == NULL)
            goto err;
    }
    switch (kind) {
    case RING_CARBON_CH:
    case RING_FNV1A_CH: rc = s_build_ch(r, members); break;
    case RING_CARBON_CH_GRAPHITE: rc = s_build_graphite(r, members); break;
    case RING_JUMP_FNV1A_CH: rc = s_build_jump(r, members); break;
    default: break;
    }
    if (rc != 0)
        goto err;
    if ((flags & RING_DIVERSE_HOSTS) && s_build_hosts(r, members) != 0)
        goto err;
    return r;

err:
    ring_destroy(&r);
    errno = ENOMEM;
    return NULL;
einval:
    errno = EINVAL;
    return NULL;
}

void ring_destroy(ring_t **ring)
{
    if (ring == NULL || *ring == NULL)
        return;
    free((*ring)->entries);
    free((*ring)->host_id);
    free(*ring);
    *ring = NULL;
}

/* ---------------------------------------------------------------------- */
/* lookup */

/* Whether member m may not be added after out[0..k): it is there already,
 * or (RING_DIVERSE_HOSTS) a member on its host is. */
static bool s_taken(const ring_t *r, const size_t *out, size_t k, uint32_t m)
{
    for (size_t i = 0; i < k; i++) {
        if (out[i] == m)
            return true;
        if (r->host_id != NULL && r->host_id[out[i]] == r->host_id[m])
            return true;
    }
    return false;
}

/* Index of the first entry with pos >= pos, wrapping to 0 past the end. */
static size_t s_lower_bound(const ring_t *r, uint32_t pos)
{
    size_t lo = 0, hi = r->nentries;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->entries[mid].pos < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == r->nentries ? 0 : lo;
}

static size_t s_lookup_ch(const ring_t *r, const char *name, size_t namelen,
                          size_t want, const bool *alive, size_t *out)
{
    uint32_t pos = r->kind == RING_FNV1A_CH ? ring_hash_fnv1a_pos(name, namelen)
                                            : ring_hash_carbon(name, namelen);
    size_t i = s_lower_bound(r, pos);
    /* one turn at most (Python carbon's stops one entry short, which
     * changes nothing: every member has RING_REPLICAS > 1 entries) */
    size_t steps = r->nentries;
    uint32_t last = UINT32_MAX; /* member of the entry just looked at */
    size_t k = 0;

    for (; steps > 0 && k < want; steps--) {
        uint32_t m = r->entries[i].member;
        if (m != last) {
            /* consecutive entries of one member need one look */
            last = m;
            if ((alive == NULL || alive[m]) && !s_taken(r, out, k, m))
                out[k++] = m;
        }
        if (++i == r->nentries)
            i = 0;
    }
    return k;
}

static size_t s_lookup_jump(const ring_t *r, const char *name, size_t namelen,
                            size_t want, const bool *alive, size_t *out)
{
    uint16_t bucket[RING_MAX_MEMBERS];
    uint64_t h = ring_hash_fnv1a64(name, namelen);
    uint32_t left = (uint32_t)r->n;
    uint32_t j = ring_jump(h, left);
    uint32_t m = r->entries[j].member;
    size_t k = 0;

    if (want == 1 && (alive == NULL || alive[m])) {
        out[0] = m;
        return 1;
    }
    for (uint32_t b = 0; b < left; b++)
        bucket[b] = (uint16_t)r->entries[b].member;
    for (;;) {
        if ((alive == NULL || alive[m]) && !s_taken(r, out, k, m))
            out[k++] = m;
        /* remove the chosen bucket: the last one moves into its slot */
        bucket[j] = bucket[--left];
        if (k == want || left == 0)
            break;
        h = s_remix64(h);
        j = ring_jump(h, left);
        m = bucket[j];
    }
    return k;
}

static size_t s_lookup_any_of(const ring_t *r, const char *name, size_t namelen,
                              const bool *alive, size_t *out)
{
    uint32_t h = ring_hash_fnv1a32(name, namelen);
    size_t m = h % r->n, live = 0, pick;

    if (alive == NULL || alive[m]) {
        out[0] = m;
        return 1;
    }
    for (size_t i = 0; i < r->n; i++)
        live += alive[i];
    if (live == 0)
        return 0;
    pick = s_remix32(h) % live;
    for (m = 0;; m++)
        if (alive[m] && pick-- == 0)
            break;
    out[0] = m;
    return 1;
}

size_t ring_lookup(const ring_t *ring, const char *name, size_t namelen,
                   size_t replication, const bool *alive, size_t *out,
                   size_t outcap)
{
    size_t want = replication < outcap ? replication : outcap;

    assert(ring != NULL);
    assert(out != NULL || outcap == 0);
    if (want > ring->n)
        want = ring->n;
    if (want == 0)
        return 0;
    if (name == NULL)
        name = "";
    switch (ring->kind) {
    case RING_CARBON_CH:
    case RING_CARBON_CH_GRAPHITE:
    case RING_FNV1A_CH:
        return s_lookup_ch(ring, name, namelen, want, alive, out);
    case RING_JUMP_FNV1A_CH:
        return s_lookup_jump(ring, name, namelen, want, alive, out);
    case RING_ANY_OF: return s_lookup_any_of(ring, name, namelen, alive, out);
    case RING_FAILOVER:
        for (size_t m = 0; m < ring->n; m++) {
            if (alive == NULL || alive[m]) {
                out[0] = m;
                return 1;
            }
        }
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* introspection */

ring_kind_t ring_kind(const ring_t *ring)
{
    return ring->kind;
}

size_t ring_size(const ring_t *ring)
{
    return ring->n;
}

size_t ring_nentries(const ring_t *ring)
{
    return ring->nentries;
}

int ring_entry(const ring_t *ring, size_t i, uint32_t *pos, size_t *member)
{
    if (i >= ring->nentries)
        return -1;
    if (pos != NULL)
        *pos = ring->entries[i].pos;
    if (member != NULL)
        *member = ring->entries[i].member;
    return 0;
}

static const char *const s_kind_names[] = {
    [RING_CARBON_CH] = "carbon_ch",
    [RING_CARBON_CH_GRAPHITE] = "carbon_ch_graphite",
    [RING_FNV1A_CH] = "fnv1a_ch",
    [RING_JUMP_FNV1A_CH] = "jump_fnv1a_ch",
    [RING_ANY_OF] = "any_of",
    [RING_FAILOVER] = "failover",
};

const char *ring_kind_name(ring_kind_t kind)
{
    if ((int)kind < (int)RING_CARBON_CH || kind > RING_FAILOVER)
        return NULL;
    return s_kind_names[kind];
}

int ring_kind_parse(const char *word, ring_kind_t *kind)
{
    if (word == NULL)
        return -1;
    if (strcmp(word, "graphite") == 0) {
        *kind = RING_CARBON_CH_GRAPHITE;
        return 0;
    }
    for (int k = RING_CARBON_CH; k <= RING_FAILOVER; k++) {
        if (strcmp(word, s_kind_names[k]) == 0) {
            *kind = (ring_kind_t)k;
            return 0;
        }
    }
    return -1;
}
