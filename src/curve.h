/*
 * curve.h -- CURVE on orchester's zmq links: key files, socket options, and
 * the ZAP handler that admits only listed public keys.
 *
 * Key files are text.  A key pair file (written by `orchester-ctl keygen
 * PATH`, mode 0600) holds the lines "public Z85KEY" and "secret Z85KEY"; a
 * public key file (PATH.pub) holds "public Z85KEY".  A list of allowed keys
 * is any number of such files; in each, every line "public Z85KEY" or a
 * bare Z85KEY counts, and a line that starts with '#' is a comment (keys
 * may contain '#').  Z85KEY is 40 characters.
 *
 * The parsing (curve_parse_*) is a pure core.  The ZAP handler is an I/O
 * shell: a REP socket bound on inproc://zeromq.zap.01 in the process's zmq
 * context (libzmq asks it about every CURVE handshake of that context) and
 * answered on one thread's loop.  Without a ZAP handler libzmq would admit
 * any client key.
 */
#ifndef ORCHESTER_CURVE_H
#define ORCHESTER_CURVE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CURVE_KEYLEN 40 /* Z85 characters of a key */

typedef struct {
    char pub[CURVE_KEYLEN + 1];
    char sec[CURVE_KEYLEN + 1];
} curve_keypair_t;

/* curve_parse_keypair: the key pair in text (NUL-terminated).  Returns 0,
 * or -1 with why in err.  Pure. */
int curve_parse_keypair(const char *text, curve_keypair_t *kp, char *err,
                        size_t errlen);

/* curve_parse_public: append the public keys of text to keys[*n..max)
 * (each CURVE_KEYLEN + 1 bytes).  Returns 0, or -1 with why in err (a
 * line that is not a key, or more than max).  Pure. */
int curve_parse_public(const char *text, char (*keys)[CURVE_KEYLEN + 1],
                       size_t max, size_t *n, char *err, size_t errlen);

/* curve_read_keypair / curve_read_public: the same from a file ("PATH: "
 * before the reason in err). */
int curve_read_keypair(const char *path, curve_keypair_t *kp, char *err,
                       size_t errlen);
int curve_read_public(const char *path, char (*keys)[CURVE_KEYLEN + 1],
                      size_t max, size_t *n, char *err, size_t errlen);

/* curve_keygen: a new key pair into path (mode 0600; refused when it
 * exists) and its public key into path.pub.  Returns 0 or -1 with err. */
int curve_keygen(const char *path, char *err, size_t errlen);

/* curve_server / curve_client: set a socket (before bind or connect) to be
 * a CURVE server with kp, or a client with kp of the server whose public
 * key is server_pub.  Returns 0 or -1 (zmq's errno). */
int curve_server(void *sock, const curve_keypair_t *kp);
int curve_client(void *sock, const curve_keypair_t *kp, const char *server_pub);

/* What a `curve` statement loads: this program's key pair, the public keys
 * it admits (the allow files, and its own: the members of a pair share a
 * key pair), and the server's public key (a satellite's `server`, else its
 * own). */
#define CURVE_MAX_KEYS 1024
typedef struct {
    int on; /* a curve statement was given */
    curve_keypair_t kp;
    char keys[CURVE_MAX_KEYS][CURVE_KEYLEN + 1];
    size_t nkeys;
    char server[CURVE_KEYLEN + 1];
} curve_conf_t;

/* curve_load: read the files of the configuration's curve statement into
 * *cc (cc->on stays 0 without one).  Returns 0, or -1 with err ("FILE: ..."
 * for a bad file). */
int curve_load(const config_curve_t *c, curve_conf_t *cc, char *err,
               size_t errlen);

typedef struct zap zap_t;

/* zap_new: the ZAP handler of zctx, admitting the n keys (copied), its
 * REP watched on loop.  NULL with err. */
zap_t *zap_new(void *zctx, struct ev_loop *loop,
               const char (*keys)[CURVE_KEYLEN + 1], size_t n, char *err,
               size_t errlen);

/* zap_start / zap_stop: answer requests, or not. */
void zap_start(zap_t *z);
void zap_stop(zap_t *z);

/* zap_destroy: close, free *z, set it to NULL; safe on NULL. */
void zap_destroy(zap_t **z);

/* zap_counts: handshakes admitted and refused so far. */
void zap_counts(const zap_t *z, uint64_t *admitted, uint64_t *refused);

#endif
