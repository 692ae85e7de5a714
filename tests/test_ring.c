/*
 * test_ring.c -- unit tests of src/ring.c (cmocka).
 *
 * The expected placements come from carbon-c-relay 3.7.3 (`-t`) and from
 * Python carbon's carbon.hashing.ConsistentHashRing, run on the same
 * members; the rest are properties every placement must have.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ring.h"

#define MAXN 16

/* A cluster for the tests: members[] point into the host and instance
 * buffers. */
typedef struct {
    ring_member_t m[MAXN];
    char host[MAXN][32];
    char inst[MAXN][24];
    size_t n;
} cluster_t;

/* 127.0.0.K:2002+K for K = 1..n, with instance iK when inst is set. */
static void s_cluster(cluster_t *c, size_t n, bool inst)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(c->host[i], sizeof c->host[i], "127.0.0.%zu", i + 1);
        snprintf(c->inst[i], sizeof c->inst[i], "i%zu", i + 1);
        c->m[i].host = c->host[i];
        c->m[i].port = (uint16_t)(2003 + i);
        c->m[i].instance = inst ? c->inst[i] : NULL;
    }
}

static ring_t *s_ring(ring_kind_t kind, const cluster_t *c, unsigned flags)
{
    ring_t *r = ring_new(kind, c->m, c->n, flags);
    assert_non_null(r);
    return r;
}

static size_t s_look(const ring_t *r, const char *name, size_t rep,
                     const bool *alive, size_t *out)
{
    return ring_lookup(r, name, strlen(name), rep, alive, out, MAXN);
}

/* Assert that name goes to exactly the members want[0..nwant), in order. */
static void s_expect(const ring_t *r, const char *name, size_t rep,
                     const size_t *want, size_t nwant)
{
    size_t out[MAXN];
    size_t k = s_look(r, name, rep, NULL, out);
    if (k != nwant)
        fail_msg("%s: %zu members, want %zu", name, k, nwant);
    for (size_t i = 0; i < k; i++)
        if (out[i] != want[i])
            fail_msg("%s: member %zu is %zu, want %zu", name, i, out[i],
                     want[i]);
}

#define EXPECT(r, name, rep, ...)                                              \
    do {                                                                       \
        const size_t want_[] = {__VA_ARGS__};                                  \
        s_expect(r, name, rep, want_, sizeof want_ / sizeof want_[0]);         \
    } while (0)

/* ---------------------------------------------------------------------- */
/* hash functions */

static void test_hashes(void **state)
{
    (void)state;
    assert_int_equal(ring_hash_fnv1a32("", 0), 0x811c9dc5u);
    assert_int_equal(ring_hash_fnv1a32("a", 1), 0xe40c292cu);
    assert_int_equal(ring_hash_fnv1a32("foobar", 6), 0xbf9cf968u);
    /* bytes above 0x7f are signed chars: 0x7a0b824e if they were not */
    assert_int_equal(ring_hash_fnv1a32("\xff", 1), 0xf9f3a14eu);
    assert_int_equal(ring_hash_fnv1a32("\xc3\xa9t\xe9", 4), 0xecfaba72u);
    assert_true(ring_hash_fnv1a64("", 0) == 0xcbf29ce484222325ull);
    assert_true(ring_hash_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(ring_hash_fnv1a64("\xff", 1) == 0x509c41b379fe466eull);
    assert_int_equal(ring_hash_fnv1a_pos("a", 1), 0xe40c ^ 0x292c);
    assert_int_equal(ring_hash_carbon("", 0), 0xd41d);
    assert_int_equal(ring_hash_carbon("a", 1), 0x0cc1);
    /* the name is hashed by its length, not up to a NUL */
    assert_int_equal(ring_hash_carbon("a;tag=1", 1), 0x0cc1);
}

static void test_jump(void **state)
{
    (void)state;
    assert_int_equal(ring_jump(0, 1), 0);
    assert_int_equal(ring_jump(1, 10), 6);
    assert_int_equal(ring_jump(0xdeadbeefull, 100), 87);
    assert_int_equal(ring_jump(0x85944171f73967e8ull, 7), 5);
    assert_int_equal(ring_jump(UINT64_MAX, 1000), 313);
    /* growing by one bucket moves a key to the new bucket or nowhere */
    for (uint64_t k = 0; k < 2000; k++) {
        uint64_t key = k * 0x9e3779b97f4a7c15ull;
        for (uint32_t n = 1; n < 40; n++) {
            uint32_t a = ring_jump(key, n), b = ring_jump(key, n + 1);
            assert_true(a < n);
            assert_true(b == a || b == n);
        }
    }
}

/* ---------------------------------------------------------------------- */
/* carbon-c-relay placements: 127.0.0.K:2002+K, K = 1..7 */

static void test_carbon_ch_facts(void **state)
{
    cluster_t c;
    ring_t *r;
    (void)state;

    s_cluster(&c, 7, false);
    r = s_ring(RING_CARBON_CH, &c, 0);
    EXPECT(r, "iiZeik7oongohdohgane", 2, 6, 4);
    EXPECT(r, "Heak8dahph1is7eaghah", 2, 0, 6);
    EXPECT(r, "#", 2, 4, 3);
    EXPECT(r, "foo", 2, 3, 6);
    EXPECT(r, "", 2, 5, 0);
    EXPECT(r, "a.b", 2, 6, 1);
    EXPECT(r, "iiZeik7oongohdohgane", 1, 6);
    assert_int_equal(ring_kind(r), RING_CARBON_CH);
    assert_int_equal(ring_size(r), 7);
    assert_int_equal(ring_nentries(r), 7 * RING_REPLICAS);
    ring_destroy(&r);
    assert_null(r);
    ring_destroy(&r); /* twice is fine */
}

static void test_fnv1a_ch_facts(void **state)
{
    cluster_t c;
    ring_t *r;
    (void)state;

    s_cluster(&c, 7, false);
    r = s_ring(RING_FNV1A_CH, &c, 0);
    EXPECT(r, "iiZeik7oongohdohgane", 2, 4, 2);
    EXPECT(r, "#", 2, 0, 3);
    EXPECT(r, "Heak8dahph1is7eaghah", 2, 5, 3);
    EXPECT(r, "foo", 2, 6, 4);
    EXPECT(r, "", 2, 5, 2);
    EXPECT(r, "a.b", 2, 6, 0);
    ring_destroy(&r);
}

static void test_jump_fnv1a_ch_facts(void **state)
{
    cluster_t c;
    ring_t *r;
    (void)state;

    s_cluster(&c, 7, false);
    r = s_ring(RING_JUMP_FNV1A_CH, &c, 0);
    EXPECT(r, "Heak8dahph1is7eaghah", 2, 5, 1);
    EXPECT(r, "iiZeik7oongohdohgane", 2, 1, 6);
    EXPECT(r, "#", 2, 0, 6);
    EXPECT(r, "foo", 2, 1, 4);
    EXPECT(r, "", 2, 1, 3);
    EXPECT(r, "a.b", 2, 5, 2);
    EXPECT(r, "Heak8dahph1is7eaghah", 1, 5);
    ring_destroy(&r);
}

static void test_any_of_facts(void **state)
{
    cluster_t c;
    ring_t *r;
    (void)state;

    s_cluster(&c, 7, false);
    r = s_ring(RING_ANY_OF, &c, 0);
    EXPECT(r, "iiZeik7oongohdohgane", 1, 5);
    EXPECT(r, "Heak8dahph1is7eaghah", 1, 1);
    EXPECT(r, "#", 1, 2);
    EXPECT(r, "foo", 1, 2);
    EXPECT(r, "a.b", 1, 5);
    /* one member, whatever the replication */
    EXPECT(r, "a.b", 3, 5);
    assert_int_equal(ring_nentries(r), 0);
    ring_destroy(&r);
}

/* Instances, and two members on one host without them. */
static void test_instances(void **state)
{
    ring_member_t ch[] = {
        {"127.0.0.1", 2003, NULL},
        {"127.0.0.1", 2010, NULL},
        {"127.0.0.2", 2004, "a"},
        {"127.0.0.2", 2005, "b"},
    };
    ring_member_t jump[] = {
        {"127.0.0.1", 2103, NULL},
        {"127.0.0.1", 2110, "10"},
        {"127.0.0.2", 2104, "9"},
        {"127.0.0.2", 2105, "b"},
    };
    ring_t *r;
    uint32_t pos;
    size_t m;
    (void)state;

    r = ring_new(RING_CARBON_CH, ch, 4, 0);
    assert_non_null(r);
    EXPECT(r, "abc", 2, 2, 0);
    EXPECT(r, "foo.bar", 2, 3, 2);
    /* 127.0.0.1:2010 hashes exactly like 127.0.0.1:2003, so each of its
     * entries is in a run behind one of 2003's, and belongs to 2003 */
    for (size_t i = 0; ring_entry(r, i, &pos, &m) == 0; i++)
        assert_int_not_equal(m, 1);
    EXPECT(r, "abc", 4, 2, 0, 3);
    ring_destroy(&r);

    /* bucket order: instances first, numbers as numbers, then the rest */
    r = ring_new(RING_JUMP_FNV1A_CH, jump, 4, 0);
    assert_non_null(r);
    assert_int_equal(ring_nentries(r), 4);
    assert_int_equal(ring_entry(r, 0, &pos, &m), 0);
    assert_int_equal(m, 2); /* "9" */
    assert_int_equal(ring_entry(r, 1, &pos, &m), 0);
    assert_int_equal(m, 1); /* "10" */
    assert_int_equal(ring_entry(r, 2, &pos, &m), 0);
    assert_int_equal(m, 3); /* "b" */
    assert_int_equal(ring_entry(r, 3, &pos, &m), 0);
    assert_int_equal(m, 0); /* none */
    assert_int_equal(ring_entry(r, 4, &pos, &m), -1);
    EXPECT(r, "abc", 3, 0, 1, 3);
    EXPECT(r, "foo.bar", 3, 1, 0, 3);
    ring_destroy(&r);
}

/* fnv1a_ch: an instance replaces host:port in the replica keys. */
static void test_fnv1a_instance_key(void **state)
{
    ring_member_t a[] = {{"10.0.0.1", 2003, "x7f3"}, {"10.0.0.2", 2003, NULL}};
    ring_member_t b[] = {{"10.9.9.9", 2100, "x7f3"}, {"10.0.0.2", 2003, NULL}};
    ring_t *ra = ring_new(RING_FNV1A_CH, a, 2, 0);
    ring_t *rb = ring_new(RING_FNV1A_CH, b, 2, 0);
    size_t oa[2], ob[2];
    char name[32];
    (void)state;

    assert_non_null(ra);
    assert_non_null(rb);
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "moved.%d", i);
        assert_int_equal(s_look(ra, name, 2, NULL, oa), 2);
        assert_int_equal(s_look(rb, name, 2, NULL, ob), 2);
        assert_memory_equal(oa, ob, sizeof oa);
    }
    ring_destroy(&ra);
    ring_destroy(&rb);
}

/* ---------------------------------------------------------------------- */
/* Python carbon placements: 127.0.0.K:2002+K=iK, K = 1..8 */

static void test_graphite_facts(void **state)
{
    cluster_t c;
    ring_t *r, *crr;
    uint32_t pos, prev = 0;
    size_t m;
    (void)state;

    s_cluster(&c, 8, true);
    r = s_ring(RING_CARBON_CH_GRAPHITE, &c, 0);
    EXPECT(r, "iiZeik7oongohdohgane", 3, 6, 3, 1);
    EXPECT(r, "Heak8dahph1is7eaghah", 3, 3, 7, 6);
    EXPECT(r, "#", 3, 6, 3, 1);
    EXPECT(r, "foo.bar.baz", 3, 2, 3, 1);
    /* bump4884 sits at 62853, where 127.0.0.3's replica was bumped to from
     * 62852 (taken by 127.0.0.2): only the Python ring has it there */
    assert_int_equal(ring_hash_carbon("bump4884", 8), 62853);
    EXPECT(r, "bump4884", 3, 2, 7, 5);
    crr = s_ring(RING_CARBON_CH, &c, 0);
    EXPECT(crr, "bump4884", 3, 7, 5, 6);
    EXPECT(crr, "iiZeik7oongohdohgane", 3, 6, 3, 1);
    ring_destroy(&crr);

    /* positions are unique and sorted */
    for (size_t i = 0; ring_entry(r, i, &pos, &m) == 0; i++) {
        if (i > 0)
            assert_true(pos > prev);
        prev = pos;
    }
    ring_destroy(&r);
}

/* Python carbon's DIVERSE_REPLICAS: replicas on distinct hosts. */
static void test_diverse_hosts(void **state)
{
    ring_member_t m[] = {
        {"10.0.0.1", 2003, "a1"}, {"10.0.0.1", 2004, "b1"},
        {"10.0.0.2", 2003, "a2"}, {"10.0.0.2", 2004, "b2"},
        {"10.0.0.3", 2003, "a3"},
    };
    ring_kind_t kinds[] = {RING_CARBON_CH, RING_CARBON_CH_GRAPHITE,
                           RING_FNV1A_CH, RING_JUMP_FNV1A_CH};
    size_t out[MAXN];
    char name[32];
    (void)state;

    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        ring_t *r = ring_new(kinds[k], m, 5, RING_DIVERSE_HOSTS);
        ring_t *plain = ring_new(kinds[k], m, 5, 0);
        assert_non_null(r);
        assert_non_null(plain);
        for (int i = 0; i < 3000; i++) {
            size_t all[MAXN], n, j = 0;
            snprintf(name, sizeof name, "d.%d", i);
            assert_int_equal(s_look(r, name, 3, NULL, out), 3);
            assert_true(strcmp(m[out[0]].host, m[out[1]].host) != 0);
            assert_true(strcmp(m[out[0]].host, m[out[2]].host) != 0);
            assert_true(strcmp(m[out[1]].host, m[out[2]].host) != 0);
            /* = the plain order with members on used hosts skipped */
            n = s_look(plain, name, 5, NULL, all);
            for (size_t a = 0; a < n && j < 3; a++) {
                bool used = false;
                for (size_t b = 0; b < j; b++)
                    used |= strcmp(m[out[b]].host, m[all[a]].host) == 0;
                if (!used)
                    assert_int_equal(out[j++], all[a]);
            }
            /* only three hosts: no fourth replica */
            assert_int_equal(s_look(r, name, 5, NULL, out), 3);
        }
        ring_destroy(&r);
        ring_destroy(&plain);
    }
}

/* ---------------------------------------------------------------------- */
/* properties */

static const ring_kind_t s_ch_kinds[] = {
    RING_CARBON_CH, RING_CARBON_CH_GRAPHITE, RING_FNV1A_CH, RING_JUMP_FNV1A_CH};
#define NCHKINDS (sizeof s_ch_kinds / sizeof s_ch_kinds[0])

/* Replication 1..n: distinct members; each answer extends the last one. */
static void test_replication(void **state)
{
    cluster_t c;
    char name[32];
    (void)state;

    s_cluster(&c, 5, false);
    for (size_t k = 0; k < NCHKINDS; k++) {
        ring_t *r = s_ring(s_ch_kinds[k], &c, 0);
        for (int i = 0; i < 2000; i++) {
            size_t prev[MAXN], out[MAXN], n;
            snprintf(name, sizeof name, "svc%d.cpu.user", i);
            for (size_t rep = 1; rep <= 6; rep++) {
                n = s_look(r, name, rep, NULL, out);
                assert_int_equal(n, rep < c.n ? rep : c.n);
                for (size_t a = 0; a < n; a++) {
                    assert_true(out[a] < c.n);
                    for (size_t b = a + 1; b < n; b++)
                        assert_int_not_equal(out[a], out[b]);
                }
                if (rep > 1)
                    assert_memory_equal(prev, out, (rep - 1) * sizeof *out);
                memcpy(prev, out, n * sizeof *out);
            }
            /* outcap bounds the answer */
            assert_int_equal(
                ring_lookup(r, name, strlen(name), 3, NULL, out, 2), 2);
            assert_int_equal(out[0], prev[0]);
            assert_int_equal(
                ring_lookup(r, name, strlen(name), 0, NULL, out, MAXN), 0);
            assert_int_equal(
                ring_lookup(r, name, strlen(name), 2, NULL, out, 0), 0);
        }
        ring_destroy(&r);
    }
}

/* A name past the last position wraps around to the first entry. */
static void test_wrap_around(void **state)
{
    cluster_t c;
    ring_kind_t kinds[] = {RING_CARBON_CH, RING_CARBON_CH_GRAPHITE,
                           RING_FNV1A_CH};
    char name[32];
    (void)state;

    s_cluster(&c, 3, false);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        ring_t *r = s_ring(kinds[k], &c, 0);
        uint32_t last, first;
        size_t m0, mlast, out[MAXN];
        int found = 0;

        assert_int_equal(ring_entry(r, 0, &first, &m0), 0);
        assert_int_equal(ring_entry(r, ring_nentries(r) - 1, &last, &mlast), 0);
        for (int i = 0; found < 5 && i < 1000000; i++) {
            uint32_t p;
            snprintf(name, sizeof name, "wrap.%d", i);
            p = kinds[k] == RING_FNV1A_CH
                    ? ring_hash_fnv1a_pos(name, strlen(name))
                    : ring_hash_carbon(name, strlen(name));
            if (p > last) {
                assert_true(s_look(r, name, 2, NULL, out) == 2);
                assert_int_equal(out[0], m0);
                found++;
            } else if (p <= first) {
                assert_true(s_look(r, name, 1, NULL, out) == 1);
                assert_int_equal(out[0], m0);
            } else if (p == last) {
                assert_true(s_look(r, name, 1, NULL, out) == 1);
                assert_int_equal(out[0], mlast);
            }
        }
        assert_int_equal(found, 5);
        ring_destroy(&r);
    }
}

/* carbon-c-relay keeps colliding positions and gives the whole run to its
 * first entry (ordered by host, then instance); Python carbon bumps. */
static void test_collisions(void **state)
{
    cluster_t c;
    ring_t *r, *g;
    uint32_t pos, prev = UINT32_MAX;
    size_t m, pm = 0, runs = 0, bumped = 0;
    (void)state;

    s_cluster(&c, 16, false);
    r = s_ring(RING_CARBON_CH, &c, 0);
    for (size_t i = 0; ring_entry(r, i, &pos, &m) == 0; i++) {
        if (pos == prev) {
            assert_int_equal(m, pm);
            runs++;
        }
        prev = pos;
        pm = m;
    }
    /* 1600 entries in 65536 positions: collisions are certain */
    assert_true(runs > 0);

    g = s_ring(RING_CARBON_CH_GRAPHITE, &c, 0);
    assert_int_equal(ring_nentries(g), 1600);
    prev = UINT32_MAX;
    for (size_t i = 0; ring_entry(g, i, &pos, &m) == 0; i++) {
        assert_true(prev == UINT32_MAX || pos > prev);
        prev = pos;
    }
    /* the rings differ exactly where something was bumped */
    for (size_t i = 0; i < 1600; i++) {
        uint32_t pr, pg;
        ring_entry(r, i, &pr, NULL);
        ring_entry(g, i, &pg, NULL);
        bumped += pr != pg;
    }
    assert_true(bumped > 0);
    ring_destroy(&r);
    ring_destroy(&g);
}

/* Dead members are skipped: the answer is the all-alive order without
 * them, so live members keep their names. */
static void test_alive_ch(void **state)
{
    cluster_t c;
    bool alive[MAXN];
    char name[32];
    (void)state;

    s_cluster(&c, 6, false);
    for (size_t k = 0; k < NCHKINDS; k++) {
        ring_t *r = s_ring(s_ch_kinds[k], &c, 0);
        for (size_t dead = 0; dead < c.n; dead++) {
            for (size_t i = 0; i < c.n; i++)
                alive[i] = i != dead && i != (dead + 2) % c.n;
            for (int i = 0; i < 1500; i++) {
                size_t all[MAXN], out[MAXN], n, want[MAXN], nw = 0;
                snprintf(name, sizeof name, "alive.%d", i);
                n = s_look(r, name, c.n, NULL, all);
                for (size_t a = 0; a < n; a++)
                    if (alive[all[a]])
                        want[nw++] = all[a];
                for (size_t rep = 1; rep <= 3; rep++) {
                    size_t got = s_look(r, name, rep, alive, out);
                    assert_int_equal(got, rep < nw ? rep : nw);
                    assert_memory_equal(out, want, got * sizeof *out);
                }
            }
        }
        /* nobody alive: nowhere */
        memset(alive, 0, sizeof alive);
        {
            size_t out[MAXN];
            assert_int_equal(s_look(r, "x", 2, alive, out), 0);
        }
        ring_destroy(&r);
    }
}

static void test_alive_any_of(void **state)
{
    cluster_t c;
    bool alive[MAXN];
    size_t moved[MAXN] = {0};
    char name[32];
    ring_t *r;
    (void)state;

    s_cluster(&c, 5, false);
    r = s_ring(RING_ANY_OF, &c, 0);
    for (size_t i = 0; i < c.n; i++)
        alive[i] = i != 2;
    for (int i = 0; i < 20000; i++) {
        size_t a[1], b[1];
        snprintf(name, sizeof name, "any.%d", i);
        assert_int_equal(s_look(r, name, 1, NULL, a), 1);
        assert_int_equal(s_look(r, name, 1, alive, b), 1);
        assert_int_not_equal(b[0], 2);
        if (a[0] != 2)
            assert_int_equal(a[0], b[0]); /* live members keep theirs */
        else
            moved[b[0]]++;
        /* the same answer every time */
        assert_int_equal(s_look(r, name, 1, alive, a), 1);
        assert_int_equal(a[0], b[0]);
    }
    /* the dead member's share spreads over every live member */
    for (size_t i = 0; i < c.n; i++)
        if (i != 2)
            assert_true(moved[i] > 500);
    memset(alive, 0, sizeof alive);
    {
        size_t out[1];
        assert_int_equal(s_look(r, "x", 1, alive, out), 0);
    }
    ring_destroy(&r);
}

static void test_failover(void **state)
{
    cluster_t c;
    bool alive[MAXN] = {false};
    size_t out[MAXN];
    ring_t *r;
    (void)state;

    s_cluster(&c, 3, false);
    r = s_ring(RING_FAILOVER, &c, 0);
    EXPECT(r, "anything", 1, 0);
    EXPECT(r, "anything", 3, 0);
    assert_int_equal(s_look(r, "x", 1, alive, out), 0);
    alive[2] = true;
    assert_int_equal(s_look(r, "x", 1, alive, out), 1);
    assert_int_equal(out[0], 2);
    alive[1] = true;
    assert_int_equal(s_look(r, "x", 1, alive, out), 1);
    assert_int_equal(out[0], 1);
    ring_destroy(&r);
}

/* One member: every kind answers it. */
static void test_single(void **state)
{
    cluster_t c;
    ring_kind_t kinds[] = {RING_CARBON_CH, RING_CARBON_CH_GRAPHITE,
                           RING_FNV1A_CH,  RING_JUMP_FNV1A_CH,
                           RING_ANY_OF,    RING_FAILOVER};
    (void)state;

    s_cluster(&c, 1, true);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        ring_t *r = s_ring(kinds[k], &c, 0);
        EXPECT(r, "a", 1, 0);
        EXPECT(r, "b.c.d", 3, 0);
        ring_destroy(&r);
    }
}

static void test_new_errors(void **state)
{
    cluster_t c;
    ring_member_t bad[] = {{"10.0.0.1", 2003, NULL}, {NULL, 2003, NULL}};
    static ring_member_t big[RING_MAX_MEMBERS + 1];
    (void)state;

    s_cluster(&c, 3, false);
    errno = 0;
    assert_null(ring_new(RING_CARBON_CH, c.m, 0, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(ring_new(RING_CARBON_CH, NULL, 3, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(ring_new((ring_kind_t)99, c.m, 3, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(ring_new(RING_CARBON_CH, c.m, 3, 0x80));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(ring_new(RING_FNV1A_CH, bad, 2, 0));
    assert_int_equal(errno, EINVAL);
    for (size_t i = 0; i <= RING_MAX_MEMBERS; i++)
        big[i].host = "h";
    errno = 0;
    assert_null(ring_new(RING_JUMP_FNV1A_CH, big, RING_MAX_MEMBERS + 1, 0));
    assert_int_equal(errno, EINVAL);
    ring_destroy(NULL);
}

/* The largest cluster: jump_fnv1a_ch with replication over every member. */
static void test_max_members(void **state)
{
    static ring_member_t m[RING_MAX_MEMBERS];
    static char host[RING_MAX_MEMBERS][24];
    static size_t out[RING_MAX_MEMBERS];
    static bool seen[RING_MAX_MEMBERS], alive[RING_MAX_MEMBERS];
    ring_t *r;
    (void)state;

    for (size_t i = 0; i < RING_MAX_MEMBERS; i++) {
        snprintf(host[i], sizeof host[i], "10.%zu.%zu.1", i / 256, i % 256);
        m[i].host = host[i];
        m[i].port = 2003;
        m[i].instance = NULL;
        alive[i] = i % 3 == 0;
    }
    r = ring_new(RING_JUMP_FNV1A_CH, m, RING_MAX_MEMBERS, 0);
    assert_non_null(r);
    assert_int_equal(
        ring_lookup(r, "all", 3, RING_MAX_MEMBERS, NULL, out, RING_MAX_MEMBERS),
        RING_MAX_MEMBERS);
    for (size_t i = 0; i < RING_MAX_MEMBERS; i++) {
        assert_false(seen[out[i]]);
        seen[out[i]] = true;
    }
    assert_int_equal(ring_lookup(r, "all", 3, RING_MAX_MEMBERS, alive, out,
                                 RING_MAX_MEMBERS),
                     (RING_MAX_MEMBERS + 2) / 3);
    ring_destroy(&r);

    r = ring_new(RING_CARBON_CH, m, RING_MAX_MEMBERS, 0);
    assert_non_null(r);
    assert_int_equal(ring_lookup(r, "x", 1, 3, NULL, out, RING_MAX_MEMBERS), 3);
    ring_destroy(&r);
}

/* Python's repr() quoting in the Python carbon replica keys. */
static void test_graphite_quoting(void **state)
{
    /* Python: md5(str(("h'1", None)) + ":0") is the key "(\"h'1\", None):0" */
    ring_member_t m[] = {{"h'1", 2003, NULL}, {"h2", 2003, "it's"}};
    ring_t *r = ring_new(RING_CARBON_CH_GRAPHITE, m, 2, 0);
    const char *k0 = "(\"h'1\", None):0";
    const char *k1 = "('h2', \"it's\"):0";
    uint32_t p0 = ring_hash_carbon(k0, strlen(k0));
    uint32_t p1 = ring_hash_carbon(k1, strlen(k1));
    uint32_t pos;
    size_t mm;
    bool f0 = false, f1 = false;
    (void)state;

    assert_non_null(r);
    for (size_t i = 0; ring_entry(r, i, &pos, &mm) == 0; i++) {
        f0 |= mm == 0 && pos == p0;
        f1 |= mm == 1 && pos == p1;
    }
    assert_true(f0);
    assert_true(f1);
    ring_destroy(&r);
}

static void test_kind_names(void **state)
{
    ring_kind_t k;
    (void)state;

    for (int i = RING_CARBON_CH; i <= RING_FAILOVER; i++) {
        const char *n = ring_kind_name((ring_kind_t)i);
        assert_non_null(n);
        assert_int_equal(ring_kind_parse(n, &k), 0);
        assert_int_equal(k, i);
    }
    assert_int_equal(ring_kind_parse("graphite", &k), 0);
    assert_int_equal(k, RING_CARBON_CH_GRAPHITE);
    assert_int_equal(ring_kind_parse("forward", &k), -1);
    assert_int_equal(ring_kind_parse(NULL, &k), -1);
    assert_null(ring_kind_name((ring_kind_t)42));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_jump),
        cmocka_unit_test(test_carbon_ch_facts),
        cmocka_unit_test(test_fnv1a_ch_facts),
        cmocka_unit_test(test_jump_fnv1a_ch_facts),
        cmocka_unit_test(test_any_of_facts),
        cmocka_unit_test(test_instances),
        cmocka_unit_test(test_fnv1a_instance_key),
        cmocka_unit_test(test_graphite_facts),
        cmocka_unit_test(test_diverse_hosts),
        cmocka_unit_test(test_replication),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_alive_ch),
        cmocka_unit_test(test_alive_any_of),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_max_members),
        cmocka_unit_test(test_graphite_quoting),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
