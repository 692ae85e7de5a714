/*
 * ring.h -- placement: which members of a cluster a metric name goes to.
 *
 * Pure core, no I/O.  The router (src/router.c) builds one ring per cluster
 * from the cluster's members when it compiles the config, and asks it, for
 * every datapoint, which members the routing name belongs on.  The ring
 * fills a caller-owned array with member indexes (positions in the member
 * array given to ring_new) and knows nothing of sockets or queues.
 *
 * Kinds:
 *   RING_CARBON_CH           carbon_ch, carbon-c-relay-compatible placement
 *                            (colliding replica positions are kept; every
 *                            entry of a run of equal positions belongs to
 *                            the run's first member)
 *   RING_CARBON_CH_GRAPHITE  carbon_ch, Python carbon-compatible placement
 *                            (a colliding replica is bumped +1 until its
 *                            position is free, members taken in config order)
 *   RING_FNV1A_CH            fnv1a_ch, carbon-c-relay-compatible
 *   RING_JUMP_FNV1A_CH       jump_fnv1a_ch, carbon-c-relay-compatible
 *   RING_ANY_OF              any_of: FNV-1a-32(name) mod N
 *   RING_FAILOVER            failover: the first live member in config order
 * docs/architecture.rst, "Hash placement", states the exact functions.
 *
 * A ring never changes after ring_new: any number of threads may call
 * ring_lookup on it at once.  ring_lookup does not allocate.
 */
#ifndef ORCHESTER_RING_H
#define ORCHESTER_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    RING_CARBON_CH = 0,      /* carbon_ch as carbon-c-relay places it */
    RING_CARBON_CH_GRAPHITE, /* carbon_ch as Python carbon places it */
    RING_FNV1A_CH,           /* fnv1a_ch */
    RING_JUMP_FNV1A_CH,      /* jump_fnv1a_ch */
    RING_ANY_OF,             /* any_of */
    RING_FAILOVER            /* failover */
} ring_kind_t;

/* Flags for ring_new. */
enum {
    /* Replicas go to members on distinct hosts (host strings compared as
     * written), as Python carbon's DIVERSE_REPLICAS (its default) does.
     * Only the consistent-hash kinds honour it. */
    RING_DIVERSE_HOSTS = 1u << 0
};

/* Replica entries per member on the carbon_ch and fnv1a_ch rings. */
#define RING_REPLICAS 100

/* Largest cluster a ring accepts. */
#define RING_MAX_MEMBERS 1024

/* One member, as written in the config: host[:port][=instance]. */
typedef struct {
    const char *host;     /* host exactly as written (IPv6 without brackets) */
    uint16_t port;        /* port; only fnv1a_ch hashes and sorts on it */
    const char *instance; /* the instance after '=', or NULL for none */
} ring_member_t;

typedef struct ring ring_t;

/* ring_new: build the placement of a cluster of n members (1 <= n <=
 * RING_MAX_MEMBERS) of the given kind; flags is 0 or RING_DIVERSE_HOSTS.
 * The members' strings are read here only and not kept.  Member indexes in
 * lookups are positions in members[].  Returns the ring, or NULL with errno
 * EINVAL (bad kind, flags, n, or a NULL host) or ENOMEM.  Called by the
 * thread that compiles the config. */
ring_t *ring_new(ring_kind_t kind, const ring_member_t *members, size_t n,
                 unsigned flags);

/* ring_destroy: free *ring and set it to NULL; safe on NULL and twice. */
void ring_destroy(ring_t **ring);

/* ring_lookup: place the routing name name/namelen (the caller has cut it at
 * the first space or ';').  Writes the indexes of up to `replication`
 * distinct members to out (at most outcap), in placement order, and returns
 * how many it wrote.
 *
 * alive is NULL when every member is alive (the fast path), or an array of
 * n flags.  A dead member is skipped and the placement continues as if it
 * were not chosen, so live members keep the names they have and a dead
 * member's names spread over the live ones:
 *   - carbon_ch, fnv1a_ch: the walk around the ring passes over it;
 *   - jump_fnv1a_ch: its bucket is removed and the jump goes on, as for a
 *     further replica;
 *   - any_of: FNV-1a-32(name) mod N as usual; when that member is dead, a
 *     re-mixed hash picks among the live members;
 *   - failover: the first live member in config order.
 * any_of and failover return at most one member whatever `replication` is.
 * Returns 0 when no member is alive or replication or outcap is 0.
 * Reentrant, does not allocate; any thread. */
size_t ring_lookup(const ring_t *ring, const char *name, size_t namelen,
                   size_t replication, const bool *alive, size_t *out,
                   size_t outcap);

/* ring_kind / ring_size: the ring's kind and its number of members. */
ring_kind_t ring_kind(const ring_t *ring);
size_t ring_size(const ring_t *ring);

/* ring_nentries / ring_entry: the ring in order, for debug output and
 * tests.  carbon_ch and fnv1a_ch: RING_REPLICAS entries per member sorted
 * by position (duplicate positions included); jump_fnv1a_ch: one entry per
 * bucket, pos being the bucket number; any_of and failover: none.
 * ring_entry returns 0 and fills *pos and *member, or -1 when i is out of
 * range. */
size_t ring_nentries(const ring_t *ring);
int ring_entry(const ring_t *ring, size_t i, uint32_t *pos, size_t *member);

/* ring_kind_name: "carbon_ch", "carbon_ch_graphite", "fnv1a_ch",
 * "jump_fnv1a_ch", "any_of", "failover"; NULL for an unknown kind. */
const char *ring_kind_name(ring_kind_t kind);

/* ring_kind_parse: the kind named by ring_kind_name's words (also
 * "graphite" for RING_CARBON_CH_GRAPHITE).  Returns 0, or -1 when the word
 * names no kind. */
int ring_kind_parse(const char *word, ring_kind_t *kind);

/* The hash functions, exposed for debug output and tests.  None allocates.
 *   ring_hash_carbon: first two bytes of MD5(key), big-endian (0..65535);
 *   ring_hash_fnv1a32 / ring_hash_fnv1a64: FNV-1a, each byte taken as a
 *     signed char (sign-extended before the xor);
 *   ring_hash_fnv1a_pos: FNV-1a-32 folded to 16 bits, (h >> 16) ^ (h & 0xffff);
 *   ring_jump: the Lamping-Veach jump bucket of key among nbuckets (>= 1). */
uint16_t ring_hash_carbon(const char *key, size_t len);
uint32_t ring_hash_fnv1a32(const char *key, size_t len);
uint64_t ring_hash_fnv1a64(const char *key, size_t len);
uint16_t ring_hash_fnv1a_pos(const char *key, size_t len);
uint32_t ring_jump(uint64_t key, uint32_t nbuckets);

#endif
