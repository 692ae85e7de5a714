/*
 * curve.c -- see curve.h.
 *
 * Ownership: a zap_t owns its REP socket, its watcher and its copy of the
 * keys (binary, 32 bytes each).
 */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "zwatch.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define FILE_MAX     65536

/* ---- parsing ------------------------------------------------------------- */

/* Whether s (len bytes) is a Z85 key: CURVE_KEYLEN characters that decode. */
static int s_is_key(const char *s, size_t len)
{
    char buf[CURVE_KEYLEN + 1];
    uint8_t bin[32];
    if (len != CURVE_KEYLEN)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return zmq_z85_decode(bin, buf) != NULL;
}

/* The next line of text at *p: its words, at most 2; a line whose first
 * character that is not blank is '#' is a comment (Z85 keys may hold '#',
 * so it starts comments nowhere else). */
static int s_line(const char **p, const char *w[2], size_t wl[2])
{
    const char *s = *p;
    if (*s == '\0')
        return -1;
    const char *e = strchr(s, '\n');
    if (e == NULL)
        e = s + strlen(s);
    *p = *e ? e + 1 : e;
    const char *first = s;
    while (first < e && (*first == ' ' || *first == '\t'))
        first++;
    if (first < e && *first == '#')
        e = first;
    int n = 0;
    while (s < e) {
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        const char *b = s;
        while (s < e && *s != ' ' && *s != '\t' && *s != '\r')
            s++;
        if (s > b) {
            if (n == 2)
                return 3; /* too many words */
            w[n] = b;
            wl[n++] = (size_t)(s - b);
        }
    }
    return n;
}

int curve_parse_keypair(const char *text, curve_keypair_t *kp, char *err,
                        size_t errlen)
{
    const char *p = text, *w[2];
    size_t wl[2];
    int n, line = 0, got = 0;
    memset(kp, 0, sizeof *kp);
    while ((n = s_line(&p, w, wl)) >= 0) {
        line++;
        if (n == 0)
            continue;
        char *dst = NULL;
        if (n == 2 && wl[0] == 6 && memcmp(w[0], "public", 6) == 0)
            dst = kp->pub;
        else if (n == 2 && wl[0] == 6 && memcmp(w[0], "secret", 6) == 0)
            dst = kp->sec;
        if (dst == NULL || !s_is_key(w[1], wl[1])) {
            snprintf(err, errlen,
                     "line %d: expected 'public KEY' or 'secret KEY' (a "
                     "key is %d Z85 characters)",
                     line, CURVE_KEYLEN);
            return -1;
        }
        memcpy(dst, w[1], CURVE_KEYLEN);
        dst[CURVE_KEYLEN] = '\0';
        got |= dst == kp->pub ? 1 : 2;
    }
    if (!(got & 2)) {
        snprintf(err, errlen,
                 "no 'secret KEY' line (a key pair file, as "
                 "orchester-ctl keygen writes)");
        return -1;
    }
    char pub[CURVE_KEYLEN + 1];
    if (zmq_curve_public(pub, kp->sec) != 0) {
        snprintf(err, errlen, "the secret key is not a CURVE key");
        return -1;
    }
    if ((got & 1) && strcmp(pub, kp->pub) != 0) {
        snprintf(err, errlen, "the public key is not the secret key's");
        return -1;
    }
    memcpy(kp->pub, pub, sizeof pub);
    return 0;
}

int curve_parse_public(const char *text, char (*keys)[CURVE_KEYLEN + 1],
                       size_t max, size_t *n, char *err, size_t errlen)
{
    const char *p = text, *w[2];
    size_t wl[2];
    int k, line = 0;
    while ((k = s_line(&p, w, wl)) >= 0) {
        line++;
        if (k == 0)
            continue;
        const char *key = NULL;
        size_t kl = 0;
        if (k == 1) {
            key = w[0], kl = wl[0];
        } else if (k == 2 && wl[0] == 6 && memcmp(w[0], "public", 6) == 0) {
            key = w[1], kl = wl[1];
        } else if (k == 2 && wl[0] == 6 && memcmp(w[0], "secret", 6) == 0) {
            continue; /* a key pair file: its public line counts */
        }
        if (key == NULL || !s_is_key(key, kl)) {
            snprintf(err, errlen,
                     "line %d: not a public key (%d Z85 "
                     "characters, or 'public KEY')",
                     line, CURVE_KEYLEN);
            return -1;
        }
        if (*n >= max) {
            snprintf(err, errlen, "more than %zu keys", max);
            return -1;
        }
        memcpy(keys[*n], key, CURVE_KEYLEN);
        keys[*n][CURVE_KEYLEN] = '\0';
        (*n)++;
    }
    return 0;
}

/* ---- files --------------------------------------------------------------- */

/* The text of path, NUL-terminated (malloc'd), or NULL with err. */
static char *s_slurp(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, FILE_MAX + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n > FILE_MAX) {
        snprintf(err, errlen, "%s: %s", path,
                 buf ? "too large for a key file" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int curve_read_keypair(const char *path, curve_keypair_t *kp, char *err,
                       size_t errlen)
{
    char why[256];
    char *text = s_slurp(path, err, errlen);
    if (text == NULL)
        return -1;
    /* the secret key: readable by others is a warning (keygen writes it
     * 0600), not a refusal, so that a copy does not stop the service */
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0)
        log_warn("curve: %s holds a secret key and is readable by others "
                 "(mode %04o): chmod 600 it",
                 path, (unsigned)(sb.st_mode & 07777));
    int rc = curve_parse_keypair(text, kp, why, sizeof why);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, why);
    free(text);
    return rc;
}

int curve_read_public(const char *path, char (*keys)[CURVE_KEYLEN + 1],
                      size_t max, size_t *n, char *err, size_t errlen)
{
    char why[256];
    char *text = s_slurp(path, err, errlen);
    if (text == NULL)
        return -1;
    int rc = curve_parse_public(text, keys, max, n, why, sizeof why);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, why);
    free(text);
    return rc;
}

/* Write text to a new file path with mode. */
static int s_write_new(const char *path, const char *text, int mode, char *err,
                       size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    if (close(fd) != 0 || w != (ssize_t)len) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}

int curve_keygen(const char *path, char *err, size_t errlen)
{
    char pub[CURVE_KEYLEN + 1], sec[CURVE_KEYLEN + 1];
    char text[256], pubpath[4096];
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, errlen, "keygen: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);
    /* neither may exist: nothing is written when one does */
    if (access(pubpath, F_OK) == 0) {
        snprintf(err, errlen, "%s: File exists", pubpath);
        return -1;
    }
    snprintf(text, sizeof text,
             "# orchester CURVE key pair: keep secret\npublic %s\nsecret %s\n",
             pub, sec);
    if (s_write_new(path, text, 0600, err, errlen) != 0)
        return -1;
    snprintf(text, sizeof text, "# orchester CURVE public key\npublic %s\n",
             pub);
    return s_write_new(pubpath, text, 0644, err, errlen);
}

int curve_server(void *sock, const curve_keypair_t *kp)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp->sec, CURVE_KEYLEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "orchester", 9) != 0)
        return -1;
    return 0;
}

int curve_client(void *sock, const curve_keypair_t *kp, const char *server_pub)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, CURVE_KEYLEN) !=
            0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, kp->pub, CURVE_KEYLEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp->sec, CURVE_KEYLEN) != 0)
        return -1;
    return 0;
}

int curve_load(const config_curve_t *c, curve_conf_t *cc, char *err,
               size_t errlen)
{
    memset(cc, 0, sizeof *cc);
    if (c->key == NULL)
        return 0;
    cc->on = 1;
    if (curve_read_keypair(c->key, &cc->kp, err, errlen) != 0)
        return -1;
    memcpy(cc->keys[cc->nkeys++], cc->kp.pub, sizeof cc->kp.pub);
    for (size_t i = 0; i < c->nallow; i++)
        if (curve_read_public(c->allow[i], cc->keys, CURVE_MAX_KEYS, &cc->nkeys,
                              err, errlen) != 0)
            return -1;
    memcpy(cc->server, cc->kp.pub, sizeof cc->kp.pub);
    if (c->server) {
        char srv[1][CURVE_KEYLEN + 1];
        size_t n = 0;
        if (curve_read_public(c->server, srv, 1, &n, err, errlen) != 0)
            return -1;
        if (n == 0) {
            snprintf(err, errlen, "%s: no public key", c->server);
            return -1;
        }
        memcpy(cc->server, srv[0], sizeof srv[0]);
    }
    return 0;
}

/* ---- the ZAP handler ----------------------------------------------------- */

struct zap {
    void *rep;   /* owned */
    zwatch_t *w; /* owned */
    uint8_t (*keys)[32];
    size_t nkeys;
    uint64_t admitted, refused;
    int64_t logged; /* refusals logged so far (the first 10, then every
                       1000th) */
};

/* One request: version, request id, domain, address, identity, mechanism,
 * credentials...; the answer: version, request id, status code, status
 * text, user id, metadata. */
static void s_zap_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    zap_t *z = arg;
    zmq_msg_t f[8];
    int n = 0, more = 1;
    while (more && n < 8) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[n]);
            break;
        }
        more = zmq_msg_more(&f[n]);
        n++;
    }
    while (more) { /* more frames than a request has: dropped */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, sock, ZMQ_DONTWAIT) < 0)
            more = 0;
        else
            more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    if (n < 6)
        goto out;
    int ok = 0;
    const char *mech = zmq_msg_data(&f[5]);
    if (n == 7 && zmq_msg_size(&f[5]) == 5 && memcmp(mech, "CURVE", 5) == 0 &&
        zmq_msg_size(&f[6]) == 32)
        for (size_t i = 0; i < z->nkeys && !ok; i++)
            ok = memcmp(zmq_msg_data(&f[6]), z->keys[i], 32) == 0;
    if (ok) {
        z->admitted++;
    } else {
        z->refused++;
        if (z->logged < 10 || z->refused % 1000 == 0) {
            char key[CURVE_KEYLEN + 1] = "?";
            if (n == 7 && zmq_msg_size(&f[6]) == 32)
                zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
            log_warn("curve: refused a client from %.*s: key %s is not "
                     "allowed (%llu refused so far)",
                     (int)zmq_msg_size(&f[3]),
                     (const char *)zmq_msg_data(&f[3]), key,
                     (unsigned long long)z->refused);
            z->logged++;
        }
    }
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    zmq_send(sock, ok ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(sock, ok ? "OK" : "key not allowed", ok ? 2 : 15, ZMQ_SNDMORE);
    zmq_send(sock, "", 0, ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
out:
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

zap_t *zap_new(void *zctx, struct ev_loop *loop,
               const char (*keys)[CURVE_KEYLEN + 1], size_t n, char *err,
               size_t errlen)
{
    zap_t *z = calloc(1, sizeof *z);
    if (z == NULL || !(z->keys = calloc(n ? n : 1, sizeof *z->keys))) {
        free(z);
        snprintf(err, errlen, "curve: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        zmq_z85_decode(z->keys[i], keys[i]);
    z->nkeys = n;
    int linger = 0;
    z->rep = zmq_socket(zctx, ZMQ_REP);
    if (z->rep == NULL ||
        zmq_setsockopt(z->rep, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(z->rep, ZAP_ENDPOINT) != 0 ||
        !(z->w = zwatch_new(loop, z->rep, 64, s_zap_fn, z))) {
        snprintf(err, errlen, "curve: ZAP handler: %s",
                 zmq_strerror(zmq_errno()));
        zap_destroy(&z);
        return NULL;
    }
    return z;
}

void zap_start(zap_t *z)
{
    zwatch_start(z->w);
}

void zap_stop(zap_t *z)
{
    if (z->w)
        zwatch_stop(z->w);
}

void zap_destroy(zap_t **pz)
{
    if (pz == NULL || *pz == NULL)
        return;
    zap_t *z = *pz;
    zwatch_destroy(&z->w);
    if (z->rep)
        zmq_close(z->rep);
    free(z->keys);
    free(z);
    *pz = NULL;
}

void zap_counts(const zap_t *z, uint64_t *admitted, uint64_t *refused)
{
    *admitted = z->admitted;
    *refused = z->refused;
}
