/*
 * config.h -- the configuration language: tokenizer, parser, and the tree it
 * builds.
 *
 * Pure core: it reads files (the config and its includes) but opens no
 * sockets and starts nothing.  relay/ parses a file with config_load(), checks
 * it, and hands the tree to the router (src/router.c), the ingest threads
 * (src/ingest.c) and the sender (src/sender.c), which only read it.
 *
 * The language is a superset of carbon-c-relay's: cluster, match, rewrite,
 * listen, statistics, include, blackhole, plus orchester's extensions
 * (buffer, critical, satellites, orchester, ha, control, "type pickle",
 * "aggregation rules": carbon-aggregator's rules file, src/carbonagg.h).
 * Every statement of carbon-c-relay 3.7.3 is read; what orchester cannot
 * do yet (the `file ip` cluster, transports) is refused with an error
 * naming it and its line.
 */
#ifndef ORCHESTER_CONFIG_H
#define ORCHESTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Where a statement came from, for error messages. */
typedef struct {
    const char *file; /* borrowed from config_t.files */
    int line;         /* 1-based */
} config_pos_t;

typedef enum { PROTO_TCP = 0, PROTO_UDP, PROTO_UNIX } config_proto_t;
typedef enum { WIRE_LINEMODE = 0, WIRE_PICKLE } config_wire_t;

/* The transport clause of a listener or a member: "transport plain|gzip|
 * lz4|snappy [ssl ...|mtls ...]" and its TLS options.  Strings owned. */
typedef enum { TLS_OFF = 0, TLS_ON, TLS_MUTUAL } config_tls_t;
typedef struct {
    int codec;        /* codec_kind_t (codec.h): 0 plain, gzip, lz4,
                         snappy */
    config_tls_t tls; /* ssl: TLS_ON; mtls: TLS_MUTUAL */
    char *pem;        /* listener: its certificate chain and key */
    char *cert, *key; /* member mtls: the client certificate and key */
    char *ca;         /* "ca PATH": the CA file or directory that
                         verifies the peer, else NULL (-C) */
    char *name;       /* member "name N": the name the backend's
                         certificate must carry, else NULL (its host) */
    int protomin;     /* "protomin V": TLS1_2_VERSION etc., 0: TLS 1.2 */
    int protomax;     /* "protomax V": 0: the newest */
    char *ciphers;    /* "ciphers S" (TLS 1.2 and below), else NULL */
    char *suites;     /* "ciphersuites S" (TLS 1.3), else NULL */
} config_transport_t;

/* One address of a listen statement. */
typedef struct {
    config_wire_t type;    /* linemode or pickle (from "type") */
    config_proto_t proto;  /* tcp, udp or unix */
    char *host;            /* interface, NULL for any; NULL for unix */
    int port;              /* port (default 2003 linemode, 2004 pickle) */
    char *path;            /* unix socket path, else NULL */
    config_transport_t tr; /* its transport clause */
    config_pos_t pos;
} config_listen_t;

typedef enum {
    CLUSTER_FORWARD = 0,
    CLUSTER_ANY_OF,
    CLUSTER_FAILOVER,
    CLUSTER_CARBON_CH,
    CLUSTER_FNV1A_CH,
    CLUSTER_JUMP_FNV1A_CH,
    CLUSTER_FILE,
    CLUSTER_FILE_IP
} config_cluster_type_t;

/* One member of a cluster: host[:port][=instance], or a file path. */
typedef struct {
    char *host; /* host as written (IPv6 without brackets); file path for file
                   clusters */
    int port;   /* default 2003 (2004 for type pickle); 0 for files */
    char *instance;        /* NULL when none */
    config_proto_t proto;  /* tcp (default) or udp */
    config_wire_t type;    /* linemode (default) or pickle */
    config_transport_t tr; /* its transport clause */
    config_pos_t pos;
} config_member_t;

typedef struct {
    char *name;
    config_cluster_type_t type;
    int replication; /* 1 unless given */
    bool dynamic;    /* "dynamic" given */
    bool useall;     /* "useall" given */
    bool resolved;   /* useall: members are the addresses the hosts
                        resolved to (src/useall.c) */
    bool graphite;   /* carbon_ch "graphite": Python carbon's ring */
    config_member_t *members;
    size_t nmembers;
    config_pos_t pos;
} config_cluster_t;

typedef enum {
    RULE_MATCH = 0,
    RULE_REWRITE,
    RULE_AGGREGATE
} config_rule_kind_t;

/* What an aggregate's compute clause computes. */
typedef enum {
    COMPUTE_SUM = 0,
    COMPUTE_COUNT,
    COMPUTE_MAX,
    COMPUTE_MIN,
    COMPUTE_AVERAGE,
    COMPUTE_MEDIAN,
    COMPUTE_PERCENTILE,
    COMPUTE_VARIANCE,
    COMPUTE_STDDEV,
    COMPUTE_QUANTILE /* carbon-aggregator's pNN (aggregation rules only):
                        interpolated, percentile per mille */
} config_compute_kind_t;

/* compute KIND write to TEMPLATE */
typedef struct {
    config_compute_kind_t kind;
    int percentile; /* COMPUTE_PERCENTILE: 1..99; COMPUTE_QUANTILE: per
                       mille, 1..999 */
    char *write_to; /* the output name: back references as in rewrite */
} config_compute_t;

/* Where an aggregate's output timestamp sits in its bucket. */
typedef enum {
    TS_AT_END = 0, /* the default */
    TS_AT_START,
    TS_AT_MIDDLE
} config_ts_at_t;

/* aggregate EXPR... every N seconds expire after N seconds
 *     [timestamp at start|middle|end of bucket] compute ... [compute ...]
 *     [send to CLUSTER...] [stop] ;  (the rule's exprs, dests, stop) */
typedef struct {
    int interval; /* seconds, > 0 */
    int expire;   /* seconds, > interval */
    config_ts_at_t ts_at;
    config_compute_t *computes;
    size_t ncomputes;
} config_aggr_t;
typedef enum {
    VALIDATE_NONE = 0,
    VALIDATE_LOG,
    VALIDATE_DROP
} config_validate_t;

/* A match, rewrite or aggregate rule, in file order. */
typedef struct {
    config_rule_kind_t kind;
    bool match_all; /* match: the expression was "*" */
    char **exprs; /* match: the expressions (nexprs, 0 when match_all); rewrite:
                     exprs[0] */
    size_t nexprs;
    char *validate; /* match: validate expression, or NULL */
    config_validate_t validate_action;
    char *route_using; /* match: "route using" template, or NULL */
    bool critical;     /* match: "critical" given (orchester extension) */
    char **dests;      /* match: cluster names, in order; "blackhole" for the
                          blackhole */
    size_t ndests;
    bool stop;           /* match: "stop" given */
    char *replacement;   /* rewrite: the "into" text */
    config_aggr_t *aggr; /* aggregate: its clauses (dests: where the
                            outputs go; none: routed from the top) */
    config_pos_t pos;
} config_rule_t;

/* statistics statement (defaults when absent: 60 s, cumulative, no prefix
 * override, routed like any metric). */
typedef struct {
    int interval; /* seconds, default 60 */
    bool reset;   /* reset counters after interval */
    char *prefix; /* NULL: carbon.relays.<hostname> */
    char **dests; /* send to clusters, or NULL/0 to route normally */
    size_t ndests;
    bool stop;
    bool given; /* the statement was present */
    config_pos_t pos;
    config_pos_t dests_pos; /* where dests were given: its "send to"
                               clause, or "send statistics to ..." */
} config_stats_t;

/* What a full buffer does with a spill that does not fit. */
typedef enum {
    BUFFER_FULL_DROP = 0, /* drop it, counted (the default) */
    BUFFER_FULL_BLOCK     /* hold intake back until there is room */
} config_buffer_full_t;

/* buffer redis TARGET [prefix P] [max N datapoints] [replay N per second]
 *     [when full drop|block] [all critical] ; */
typedef struct {
    char *target;              /* unix:/path or host:port; NULL when absent */
    char *prefix;              /* default "orchester" */
    long long max;             /* datapoints, default 50000000 */
    long long replay;          /* datapoints per second, default 200000 */
    config_buffer_full_t full; /* default BUFFER_FULL_DROP */
    bool all_critical;         /* every datapoint is critical */
    int wait_ms;               /* wait N ms: a spill counts as persisted
                                  only once WAIT 1 N says a replica holds
                                  it (0: on the master's answer) */
    config_pos_t pos;
} config_buffer_t;

typedef enum { HA_NONE = 0, HA_PRIMARY, HA_BACKUP } config_ha_role_t;

/* ha primary|backup publish EP peer PUB_EP SAT_EP [heartbeat N ms]
 *     [failback after N ms] ; */
typedef struct {
    config_ha_role_t role;
    char *publish;
    char *peer_publish;
    char *peer_satellites;
    int heartbeat_ms; /* default 1000 */
    int failback_ms;  /* 0 (default): failback by hand only */
    config_pos_t pos;
} config_ha_t;

/* curve key FILE [allow FILE...] [server FILE] ; -- CURVE on the zmq links
 * (satellites <-> orchester, and between the members of a pair).  key: this
 * program's key pair (orchester-ctl keygen); allow: files of public keys
 * that may connect (an orchester); server: the orchester's public key (a
 * satellite; the members of a pair share one key pair). */
typedef struct {
    char *key;    /* NULL: no CURVE */
    char **allow; /* files */
    size_t nallow;
    char *server; /* file, or NULL */
    config_pos_t pos;
} config_curve_t;

/* The whole configuration.  Owns every string and array in it. */
typedef struct {
    char **files; /* every file read, main file first */
    size_t nfiles;
    config_listen_t *listens; /* in order of appearance */
    size_t nlistens;
    config_cluster_t *clusters;
    size_t nclusters;
    config_rule_t *rules;
    size_t nrules;
    char **satellites_bind; /* "satellites bind EP [EP...] ;" endpoints */
    size_t nsatellites_bind;
    char **
        orchesters; /* satellite config: "orchester EP [EP] [timeout N ms] ;" */
    size_t norchesters;
    int orchester_timeout_ms; /* default 3000 */
    char *control;            /* "control EP [exposed] ;" or NULL: ipc://,
                                 or tcp:// on a loopback address unless
                                 `exposed` says it is meant to be
                                 reached from other hosts */
    config_stats_t stats;
    config_buffer_t buffer;
    config_curve_t curve;
    config_ha_t ha;
} config_t;

/*
 * config_load: parse FILE (and what it includes) into a new config_t.
 * Returns the tree, or NULL with a message "FILE:LINE: what is wrong" in
 * err (errlen bytes, always NUL-terminated).  The caller owns the result and
 * frees it with config_destroy().  Checks done here: syntax, unknown or
 * unsupported statements (named in the message), clusters referenced by
 * match/statistics exist, duplicate cluster names, ports in 1..65535,
 * replication >= 1 and <= the member count, regular expressions compile
 * (POSIX extended).  When FILE itself cannot be read the message has no
 * line: "FILE: cannot read: reason".  Relative includes are resolved
 * against the directory of the including file.  Any thread may call it.
 */
config_t *config_load(const char *file, char *err, size_t errlen);

/* config_parse_string: as config_load, for text held in memory; name is used
 * in messages and to resolve relative includes (against the cwd). */
config_t *config_parse_string(const char *text, const char *name, char *err,
                              size_t errlen);

/* Flags for config_parse_string_flags(). */
enum {
    CONFIG_NO_INCLUDE = 1 << 0, /* refuse "include": read no file at all */
    CONFIG_RULES_ONLY = 1 << 1, /* refuse every statement but match and
                                   rewrite (a rule of orchester-ctl route) */
    CONFIG_NO_CHECK = 1 << 2    /* skip the whole-tree checks (clusters a
                                   rule names exist): the caller checks
                                   them against another tree */
};

/* config_parse_string_flags: as config_parse_string, with flags (an OR of
 * CONFIG_* values; 0 behaves as config_parse_string).  With
 * CONFIG_NO_INCLUDE an include statement is an error, so untrusted text
 * (the fuzzer, a config sent over the control socket) opens no file. */
config_t *config_parse_string_flags(const char *text, const char *name,
                                    int flags, char *err, size_t errlen);

/* config_dup: a deep copy of cfg (positions point into the copy's files),
 * or NULL when out of memory.  The caller owns it.  Defined in
 * src/config_dup.c. */
config_t *config_dup(const config_t *cfg);

/* config_add_file: a copy of path appended to cfg->files, for positions of
 * statements that came from elsewhere (src/routes.c); NULL when out of
 * memory.  Borrowed from cfg. */
const char *config_add_file(config_t *cfg, const char *path);

/* config_aggr_free: free an aggregate's clauses (a, and what it holds);
 * safe on NULL. */
void config_aggr_free(config_aggr_t *a);

/* config_compute_name: "sum", ..., "percentile95" into buf; a quantile as
 * carbon-aggregator names it ("p90", "p999"). */
void config_compute_name(const config_compute_t *c, char *buf, size_t len);

/* config_destroy: free *cfg and set it to NULL.  Safe on NULL and twice. */
void config_destroy(config_t **cfg);

/* config_find_cluster: the cluster called name, or NULL.  Borrowed. */
const config_cluster_t *config_find_cluster(const config_t *cfg,
                                            const char *name);

/* config_transport_free: free what tr owns (tr itself is not). */
void config_transport_free(config_transport_t *tr);

/* config_transport_dup: *dst = a deep copy of src.  0, or -1 out of
 * memory (dst then holds nothing). */
int config_transport_dup(config_transport_t *dst,
                         const config_transport_t *src);

/* config_transport_eq: whether a and b say the same. */
bool config_transport_eq(const config_transport_t *a,
                         const config_transport_t *b);

#endif
