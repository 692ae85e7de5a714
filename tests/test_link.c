/*
 * test_link.c -- unit tests of a member connection's sending side
 * (src/link.c, with src/codec.c and the member half of src/tls.c): batches
 * compressed with every codec and written out in pieces, decoded back to
 * the stream; the delivery mapping (acknowledged socket bytes to delivered
 * stream bytes) over many batches; TLS 1.3 and 1.2 against an in-process
 * OpenSSL server on memory BIOs, with a certificate made here; refused
 * certificates (wrong CA, wrong name, wrong address); the errors of
 * tls_client_new and tls_server_new; the backend's close_notify.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <zlib.h>

#include "codec.h"
#include "link.h"
#include "tls.h"

#define NAMELEN 4096

/* What the tests share: two self-signed certificates and their files. */
typedef struct {
    EVP_PKEY *keya, *keyb;      /* keya: the server's; keyb: another's */
    X509 *certa;                /* CN localhost, IP:127.0.0.1 DNS:localhost */
    X509 *certb;                /* another self-signed certificate */
    char certa_pem[NAMELEN];    /* certa only */
    char paira_pem[NAMELEN];    /* certa and keya */
    char keya_pem[NAMELEN];     /* keya only */
    char keyb_pem[NAMELEN];     /* keyb only */
    char certb_pem[NAMELEN];    /* certb only */
    char empty_pem[NAMELEN];    /* nothing */
    char missing[NAMELEN + 16]; /* a file that is not there */
} fixture_t;

static fixture_t s_fx;

/* xorshift64*: the tests' reproducible randomness. */
static uint64_t s_rand(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ULL;
}

/* n bytes of carbon lines, repetitive as a relay's traffic is. */
static char *s_lines(size_t n, uint64_t seed)
{
    char *p = malloc(n ? n : 1);
    size_t at = 0;
    assert_non_null(p);
    while (at < n) {
        char l[96];
        uint64_t r = s_rand(&seed);
        int k = snprintf(l, sizeof l, "servers.host%03u.cpu.load %u.%02u %u\n",
                         (unsigned)(r % 500), (unsigned)(r >> 20) % 100,
                         (unsigned)(r >> 30) % 100,
                         1700000000u + (unsigned)(at / 4000));
        size_t c = (size_t)k < n - at ? (size_t)k : n - at;
        memcpy(p + at, l, c);
        at += c;
    }
    return p;
}

/* ---- fixture ---------------------------------------------------------- */

/* A self-signed certificate of k named cn, with the subjectAltName san. */
static X509 *s_cert(EVP_PKEY *k, const char *cn, const char *san, long serial)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    assert_int_equal(X509_set_pubkey(x, k), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)cn, -1,
                                                -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext =
        X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    return x;
}

/* A new temporary file (its name into path) holding x and k (each when
 * not NULL), in PEM. */
static void s_pem(char *path, X509 *x, EVP_PKEY *k)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, NAMELEN, "%s/test_link.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    if (x)
        assert_int_equal(PEM_write_X509(f, x), 1);
    if (k)
        assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL),
                         1);
    assert_int_equal(fclose(f), 0);
}

static int s_setup(void **state)
{
    (void)state;
    memset(&s_fx, 0, sizeof s_fx);
    s_fx.keya = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    s_fx.keyb = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (s_fx.keya == NULL || s_fx.keyb == NULL)
        return -1;
    s_fx.certa =
        s_cert(s_fx.keya, "localhost", "IP:127.0.0.1,DNS:localhost", 1);
    s_fx.certb = s_cert(s_fx.keyb, "orchester test other CA",
                        "IP:127.0.0.1,DNS:localhost", 2);
    s_pem(s_fx.certa_pem, s_fx.certa, NULL);
    s_pem(s_fx.paira_pem, s_fx.certa, s_fx.keya);
    s_pem(s_fx.keya_pem, NULL, s_fx.keya);
    s_pem(s_fx.keyb_pem, NULL, s_fx.keyb);
    s_pem(s_fx.certb_pem, s_fx.certb, NULL);
    s_pem(s_fx.empty_pem, NULL, NULL);
    snprintf(s_fx.missing, sizeof s_fx.missing, "%s.missing", s_fx.empty_pem);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    char *files[] = {s_fx.certa_pem, s_fx.paira_pem, s_fx.keya_pem,
                     s_fx.keyb_pem,  s_fx.certb_pem, s_fx.empty_pem};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i][0] != '\0')
            unlink(files[i]);
    X509_free(s_fx.certa);
    X509_free(s_fx.certb);
    EVP_PKEY_free(s_fx.keya);
    EVP_PKEY_free(s_fx.keyb);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

/* A piece of at most len bytes: often all, often small. */
static size_t s_piece(uint64_t *st, size_t len)
{
    size_t k;
    switch (s_rand(st) % 4) {
    case 0: k = len; break;
    case 1: k = 1 + s_rand(st) % 7; break;
    default: k = 1 + s_rand(st) % (len ? len : 1); break;
    }
    return k < len ? k : len;
}

/* Take up to max of l's socket bytes, written in pieces, into out.
 * Returns how many were taken. */
static size_t s_take(link_t *l, codec_buf_t *out, size_t max, uint64_t *st)
{
    size_t moved = 0;
    for (;;) {
        size_t len;
        const char *p = link_wire(l, &len);
        if (len == 0 || moved == max)
            return moved;
        assert_non_null(p);
        size_t k = s_piece(st, len < max - moved ? len : max - moved);
        assert_int_equal(codec_buf_append(out, p, k), 0);
        link_wrote(l, k);
        moved += k;
    }
}

/* One batch of p[0..len), cut into iovecs at random (some empty). */
static void s_batch(link_t *l, const char *p, size_t len, uint64_t *st)
{
    struct iovec iov[8];
    char why[256] = "";
    int n = 0;
    size_t at = 0;
    while (n < 7 && at < len) {
        size_t k = s_rand(st) % 5 == 0 ? 0 : s_piece(st, len - at);
        iov[n].iov_base = (char *)p + at;
        iov[n].iov_len = k;
        at += k;
        n++;
    }
    iov[n].iov_base = (char *)p + at;
    iov[n].iov_len = len - at;
    n++;
    if (link_batch(l, iov, n, why, sizeof why) != 0)
        fail_msg("link_batch: %s", why);
}

/* Decode the wire bytes p[0..len) of codec k (CODEC_PLAIN: as they are)
 * into out. */
static void s_decode(codec_kind_t k, const char *p, size_t len,
                     codec_buf_t *out)
{
    static char buf[65536];
    char why[256] = "";
    if (k == CODEC_PLAIN) {
        assert_int_equal(codec_buf_append(out, p, len), 0);
        return;
    }
    codec_dec_t *d = codec_dec_new(k, 0);
    size_t at = 0;
    assert_non_null(d);
    for (;;) {
        ssize_t r;
        while ((r = codec_dec_read(d, buf, sizeof buf, why, sizeof why)) > 0)
            assert_int_equal(codec_buf_append(out, buf, (size_t)r), 0);
        if (r < 0)
            fail_msg("%s: %s", codec_name(k), why);
        if (at == len)
            break;
        size_t room;
        void *to = codec_dec_room(d, &room);
        assert_true(room > 0);
        if (room > len - at)
            room = len - at;
        memcpy(to, p + at, room);
        codec_dec_put(d, room);
        at += room;
    }
    uint64_t in, made;
    codec_dec_totals(d, &in, &made);
    assert_int_equal(in, len);
    codec_dec_free(&d);
}

/* Inflate the gzip stream p[0..len) (no trailer) into out, with zlib. */
static void s_gunzip(const char *p, size_t len, codec_buf_t *out)
{
    static unsigned char buf[65536];
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (unsigned char *)p;
    z.avail_in = (uInt)len;
    for (;;) {
        z.next_out = buf;
        z.avail_out = sizeof buf;
        int rc = inflate(&z, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            fail_msg("inflate: %d %s", rc, z.msg ? z.msg : "");
        size_t got = sizeof buf - z.avail_out;
        assert_int_equal(codec_buf_append(out, buf, got), 0);
        if (got == 0 && z.avail_in == 0)
            break;
    }
    inflateEnd(&z);
}

/* ---- TLS helpers ------------------------------------------------------ */

/* A server session on memory BIOs with certa, offering at most maxver
 * (0: the newest). */
static SSL *s_server(int maxver)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, s_fx.certa), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, s_fx.keya), 1);
    if (maxver)
        assert_int_equal(SSL_CTX_set_max_proto_version(ctx, maxver), 1);
    SSL *srv = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the session holds its own reference */
    assert_non_null(srv);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    assert_non_null(rb);
    assert_non_null(wb);
    SSL_set_bio(srv, rb, wb);
    SSL_set_accept_state(srv);
    return srv;
}

/* A client context trusting ca (and showing cert/key when not NULL). */
static tls_client_t *s_client(const char *ca, int protomax)
{
    char err[512] = "";
    tls_client_t *c = tls_client_new(
        &(tls_conf_t){.ca = ca, .protomax = protomax}, err, sizeof err);
    if (c == NULL)
        fail_msg("tls_client_new: %s", err);
    return c;
}

/* Move up to max of l's socket bytes, in pieces, to the server; counted
 * in *moved. */
static void s_to_server_max(link_t *l, SSL *srv, size_t max, uint64_t *moved,
                            uint64_t *st)
{
    while (max > 0) {
        size_t len, done = 0;
        const char *p = link_wire(l, &len);
        if (len == 0)
            return;
        size_t k = s_piece(st, len < max ? len : max);
        assert_int_equal(BIO_write_ex(SSL_get_rbio(srv), p, k, &done), 1);
        assert_int_equal(done, k);
        link_wrote(l, k);
        *moved += k;
        max -= k;
    }
}

/* Move all of l's socket bytes to the server. */
static void s_to_server(link_t *l, SSL *srv, uint64_t *moved, uint64_t *st)
{
    s_to_server_max(l, srv, SIZE_MAX, moved, st);
}

/* Move what the server made to l, in pieces: the first result of link_in
 * that is not 0, or 0. */
static int s_to_link(SSL *srv, link_t *l, char *why, size_t whylen,
                     uint64_t *st)
{
    char buf[4096];
    size_t got;
    int rc = 0;
    while (BIO_read_ex(SSL_get_wbio(srv), buf, 1 + s_rand(st) % sizeof buf,
                       &got) == 1 &&
           got > 0) {
        int r = link_in(l, buf, got, why, whylen);
        if (rc == 0)
            rc = r;
    }
    ERR_clear_error();
    return rc;
}

/* Run the handshake of l against srv to its end: its last step. */
static tls_step_t s_handshake(link_t *l, SSL *srv, char *why, size_t whylen,
                              uint64_t *moved, uint64_t *st)
{
    for (int i = 0; i < 16; i++) {
        tls_step_t step = link_handshake(l, why, whylen);
        s_to_server(l, srv, moved, st);
        ERR_clear_error();
        (void)SSL_do_handshake(srv);
        ERR_clear_error();
        assert_int_equal(s_to_link(srv, l, why, whylen, st), 0);
        if (step != TLS_WANT_READ)
            return step;
        assert_int_equal(link_tls_version(l), 0);
    }
    fail_msg("the handshake did not end");
    return TLS_FAILED;
}

/* Read all the plaintext the server has into out. */
static void s_server_read(SSL *srv, codec_buf_t *out)
{
    char buf[16384];
    size_t got;
    while (SSL_read_ex(srv, buf, sizeof buf, &got) == 1)
        assert_int_equal(codec_buf_append(out, buf, got), 0);
    assert_int_equal(SSL_get_error(srv, 0), SSL_ERROR_WANT_READ);
    ERR_clear_error();
}

/* ---- tests: without TLS ----------------------------------------------- */

/* Every codec: many batches of several iovecs, the socket bytes written
 * in pieces (some left over for after the next batch); they decode to the
 * stream, and the totals agree. */
static void test_codecs(void **state)
{
    static const codec_kind_t kinds[] = {CODEC_PLAIN, CODEC_GZIP, CODEC_LZ4,
                                         CODEC_SNAPPY};
    static const size_t sizes[] = {1,     17,   1000, 70000, 5,  200000,
                                   33000, 4096, 2,    65537, 300};
    (void)state;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        codec_kind_t k = kinds[i];
        link_t *l = link_new(k, NULL, "x");
        codec_buf_t wire = {0}, got = {0};
        uint64_t st = 7 + i, stream = 0, made = 0, s = 1, w = 1;
        char why[256] = "";
        assert_non_null(l);
        assert_int_equal(link_handshake(l, why, sizeof why), TLS_DONE);
        assert_int_equal(link_in(l, "ignored", 7, why, sizeof why), 0);
        assert_int_equal(link_tls_version(l), 0);
        link_totals(l, &s, &w);
        assert_int_equal(s, 0);
        assert_int_equal(w, 0);
        for (int b = 0; b < 40; b++) {
            size_t len = sizes[(size_t)b % (sizeof sizes / sizeof sizes[0])];
            char *p = s_lines(len, st + (uint64_t)b);
            s_batch(l, p, len, &st);
            stream += len;
            assert_int_equal(codec_buf_append(&got, p, len), 0);
            free(p);
            /* a batch of nothing makes nothing */
            struct iovec none[2] = {{(void *)"", 0}, {NULL, 0}};
            uint64_t s0, w0;
            link_totals(l, &s0, &w0);
            assert_int_equal(link_batch(l, none, 2, why, sizeof why), 0);
            assert_int_equal(link_batch(l, none, 0, why, sizeof why), 0);
            link_totals(l, &s, &w);
            assert_int_equal(s, s0);
            assert_int_equal(w, w0);
            /* write some of it: all of it, or part */
            size_t pending;
            (void)link_wire(l, &pending);
            assert_int_equal(made + pending, w);
            made += s_take(l, &wire, b % 3 ? pending : pending / 2, &st);
        }
        made += s_take(l, &wire, SIZE_MAX, &st);
        size_t pending = 1;
        (void)link_wire(l, &pending);
        assert_int_equal(pending, 0);
        link_totals(l, &s, &w);
        assert_int_equal(s, stream);
        assert_int_equal(w, made);
        assert_int_equal(wire.len, made);
        if (k == CODEC_PLAIN)
            assert_int_equal(w, s);
        else
            assert_true(w < s); /* carbon lines do compress */
        codec_buf_t dec = {0};
        s_decode(k, wire.data, wire.len, &dec);
        assert_int_equal(dec.len, got.len);
        assert_memory_equal(dec.data, got.data, got.len);
        /* everything written and acknowledged: all delivered */
        assert_int_equal(link_acked(l, w), s);
        codec_buf_free(&dec);
        codec_buf_free(&wire);
        codec_buf_free(&got);
        link_free(&l);
        assert_null(l);
        link_free(&l);
    }
}

/* The delivery mapping at the edges of three batches. */
static void test_acked_edges(void **state)
{
    static const codec_kind_t kinds[] = {CODEC_PLAIN, CODEC_GZIP, CODEC_LZ4,
                                         CODEC_SNAPPY};
    (void)state;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        link_t *l = link_new(kinds[i], NULL, "x");
        uint64_t ws[3], ss[3], st = 3;
        assert_non_null(l);
        assert_int_equal(link_acked(l, 0), 0);
        assert_int_equal(link_acked(l, 1000), 0); /* nothing batched */
        for (int b = 0; b < 3; b++) {
            size_t len = 100 + 900 * (size_t)b;
            char *p = s_lines(len, (uint64_t)b);
            s_batch(l, p, len, &st);
            free(p);
            link_totals(l, &ss[b], &ws[b]);
        }
        assert_true(ws[0] > 0 && ws[0] < ws[1] && ws[1] < ws[2]);
        assert_true(ss[0] == 100 && ss[1] == 1100 && ss[2] == 3000);
        assert_int_equal(link_acked(l, 0), 0);
        assert_int_equal(link_acked(l, ws[0] - 1), 0);
        assert_int_equal(link_acked(l, ws[0]), ss[0]);
        assert_int_equal(link_acked(l, ws[0] + 1), ss[0]);
        assert_int_equal(link_acked(l, ws[1] - 1), ss[0]);
        assert_int_equal(link_acked(l, ws[1] + 1), ss[1]);
        assert_int_equal(link_acked(l, ws[2] - 1), ss[1]);
        assert_int_equal(link_acked(l, ws[1]), ss[1]); /* backwards */
        assert_int_equal(link_acked(l, ws[2]), ss[2]);
        assert_int_equal(link_acked(l, ws[0]), ss[2]); /* backwards */
        assert_int_equal(link_acked(l, 0), ss[2]);
        assert_int_equal(link_acked(l, UINT64_MAX), ss[2]);
        /* more batches after all were delivered */
        char *p = s_lines(50, 9);
        s_batch(l, p, 50, &st);
        free(p);
        uint64_t s4, w4;
        link_totals(l, &s4, &w4);
        assert_int_equal(s4, ss[2] + 50);
        assert_int_equal(link_acked(l, w4 - 1), ss[2]);
        assert_int_equal(link_acked(l, w4), s4);
        link_free(&l);
    }
}

/* What link_acked must say for wire_acked: the stream end of the last
 * batch whose wire end is at most wire_acked (marks ws/ss[0..n), those
 * before *from already counted), never less than *last (updated). */
static uint64_t s_expect(const uint64_t *ws, const uint64_t *ss, size_t n,
                         size_t *from, uint64_t *last, uint64_t wire_acked)
{
    while (*from < n && ws[*from] <= wire_acked)
        *last = ss[(*from)++];
    return *last;
}

/* Acknowledge a byte short of and at the end of every batch from *from
 * to the batch to, checking each answer; *ack is the last given. */
static void s_step(link_t *l, const uint64_t *ws, const uint64_t *ss, size_t to,
                   size_t *from, uint64_t *last, uint64_t *ack)
{
    while (*from <= to) {
        uint64_t a = ws[*from] - 1;
        if (a >= *ack) {
            uint64_t want = s_expect(ws, ss, to + 1, from, last, a);
            assert_int_equal(link_acked(l, a), want);
            *ack = a;
        }
        a = ws[*from];
        uint64_t want = s_expect(ws, ss, to + 1, from, last, a);
        assert_int_equal(link_acked(l, a), want);
        *ack = a;
    }
}

/* 10,000 small batches with acknowledgements in between: the marks grow,
 * are compacted, emptied and reused. */
static void test_acked_many(void **state)
{
    enum { N = 10000 };
    static const codec_kind_t kinds[] = {CODEC_PLAIN, CODEC_GZIP};
    (void)state;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        codec_kind_t k = kinds[i];
        uint64_t *ws = calloc(N, sizeof *ws), *ss = calloc(N, sizeof *ss);
        size_t len = (size_t)N * 80, at = 0, nb = 0, from = 0;
        char *stream = s_lines(len, 42);
        codec_buf_t wire = {0};
        uint64_t st = 11, ack = 0, wsent = 0, last = 0;
        link_t *l = link_new(k, NULL, "x");
        assert_non_null(ws);
        assert_non_null(ss);
        assert_non_null(l);
        /* the plan: add this many batches, then acknowledge up to the
         * end of batch `to` (counted from the first; -1: none; -2: all)
         * plus `in` wire bytes into the next one, at once or, with step,
         * a byte short of and at every batch end on the way */
        static const struct {
            int add, to, in, step;
        } plan[] = {
            {100, -1, 0, 0},  /* grow past 64 */
            {0, 29, 1, 0},    /* the head moves */
            {60, 158, 0, 1},  /* full at 128 with a head: compaction */
            {0, -2, 0, 0},    /* all delivered: emptied */
            {5, 162, 1, 1},   /* reused */
            {200, 300, 3, 0}, /* grow again, the head moves */
            {300, -2, 0, 1},
        };
        for (size_t p = 0; p < sizeof plan / sizeof plan[0]; p++) {
            for (int b = 0; b < plan[p].add; b++) {
                size_t n = 4 + s_rand(&st) % 60;
                s_batch(l, stream + at, n, &st);
                at += n;
                link_totals(l, &ss[nb], &ws[nb]);
                assert_int_equal(ss[nb], at);
                nb++;
            }
            if (plan[p].to == -1)
                continue;
            size_t to = plan[p].to == -2 ? nb - 1 : (size_t)plan[p].to;
            assert_true(to < nb);
            if (plan[p].step)
                s_step(l, ws, ss, to, &from, &last, &ack);
            ack = ws[to] + (uint64_t)plan[p].in;
            assert_true(to + 1 >= nb || ack < ws[to + 1]);
            uint64_t want = s_expect(ws, ss, nb, &from, &last, ack);
            assert_int_equal(link_acked(l, ack), want);
            assert_int_equal(want, ss[to]);
            assert_int_equal(link_acked(l, ack / 2), want);
        }
        /* then at random: batches, writes, acknowledgements (at once, a
         * batch end at a time, none, some going back) */
        while (nb < N) {
            int add = (int)(s_rand(&st) % 150);
            for (int b = 0; b < add && nb < N; b++) {
                size_t n = 4 + s_rand(&st) % 60;
                s_batch(l, stream + at, n, &st);
                at += n;
                link_totals(l, &ss[nb], &ws[nb]);
                nb++;
            }
            wsent += s_take(l, &wire, SIZE_MAX, &st);
            uint64_t to = wsent;
            switch (s_rand(&st) % 5) {
            case 0: to = ack; break;     /* no progress */
            case 1: to = ack / 2; break; /* going back */
            case 2:
                to = ack + s_rand(&st) % (wsent - ack + 1); /* a part */
                break;
            case 3:
                if (from < nb) {
                    size_t j = from + s_rand(&st) % (nb - from);
                    s_step(l, ws, ss, j, &from, &last, &ack);
                    to = ack;
                }
                break;
            default: break;
            }
            uint64_t want = s_expect(ws, ss, nb, &from, &last, to);
            assert_int_equal(link_acked(l, to), want);
            if (to > ack)
                ack = to;
        }
        wsent += s_take(l, &wire, SIZE_MAX, &st);
        uint64_t s, w;
        link_totals(l, &s, &w);
        assert_int_equal(s, at);
        assert_int_equal(w, ws[N - 1]);
        assert_int_equal(link_acked(l, w - 1), ss[N - 2]);
        assert_int_equal(link_acked(l, w), at);
        /* all was written (the first take was whole, so from the first
         * byte) and decodes to the stream */
        assert_int_equal(wire.len, w);
        codec_buf_t dec = {0};
        s_decode(k, wire.data, wire.len, &dec);
        assert_int_equal(dec.len, at);
        assert_memory_equal(dec.data, stream, at);
        codec_buf_free(&dec);
        codec_buf_free(&wire);
        free(stream);
        free(ws);
        free(ss);
        link_free(&l);
    }
}

/* ---- tests: TLS ------------------------------------------------------- */

/* Batches of codec k through TLS to a server of at most maxver: the
 * server reads and decodes the stream; the version is want. */
static void s_tls_roundtrip(codec_kind_t k, int maxver, int protomax, int want)
{
    tls_client_t *c = s_client(s_fx.certa_pem, protomax);
    link_t *l = link_new(k, c, "localhost");
    SSL *srv = s_server(maxver);
    codec_buf_t plain = {0}, dec = {0};
    uint64_t st = 5 + (uint64_t)want, moved = 0, s = 0, w = 0;
    char why[256] = "";
    size_t len = 500000, at = 0;
    char *stream = s_lines(len, 77);
    assert_non_null(l);
    tls_client_free(&c); /* the link's session lives on */
    assert_null(c);
    assert_int_equal(link_tls_version(l), 0);
    tls_step_t step = s_handshake(l, srv, why, sizeof why, &moved, &st);
    if (step != TLS_DONE)
        fail_msg("handshake: %d %s", (int)step, why);
    assert_int_equal(link_tls_version(l), want);
    assert_true(SSL_is_init_finished(srv));
    assert_int_equal(SSL_version(srv),
                     want == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* a second call after the end: still done */
    assert_int_equal(link_handshake(l, why, sizeof why), TLS_DONE);
    link_totals(l, &s, &w);
    assert_int_equal(s, 0);
    assert_int_equal(w, moved); /* the handshake's bytes count */
    assert_int_equal(link_acked(l, w), 0);
    for (int b = 0; b < 12; b++) {
        size_t n = b == 11 ? len - at : 1 + s_rand(&st) % 40000;
        uint64_t s0 = s, w0 = w;
        if (b == 5 && want == 13) {
            /* the server asks for a key update: the answer goes out
             * with the next batch */
            assert_int_equal(SSL_key_update(srv, SSL_KEY_UPDATE_REQUESTED), 1);
            assert_int_equal(SSL_do_handshake(srv), 1);
            assert_int_equal(SSL_get_key_update_type(srv),
                             SSL_KEY_UPDATE_NONE); /* sent */
            assert_int_equal(s_to_link(srv, l, why, sizeof why, &st), 0);
            link_totals(l, &s, &w);
            assert_int_equal(s, s0);
            assert_int_equal(w, w0);
        }
        s_batch(l, stream + at, n, &st);
        at += n;
        link_totals(l, &s, &w);
        assert_int_equal(s, at);
        assert_true(w > w0);
        assert_int_equal(link_acked(l, w - 1), s0);
        assert_int_equal(link_acked(l, w), s);
        /* all that is pending, or part (the rest after the next batch) */
        size_t pending;
        (void)link_wire(l, &pending);
        assert_int_equal(moved + pending, w);
        int all = b % 3 != 1 || b == 11;
        s_to_server_max(l, srv, all ? SIZE_MAX : pending / 2, &moved, &st);
        if (all)
            assert_int_equal(w, moved);
        s_server_read(srv, &plain);
        /* the server says nothing; what it would is read and dropped */
        assert_int_equal(s_to_link(srv, l, why, sizeof why, &st), 0);
        /* what came through decodes: all sent, or a beginning of it */
        if (k == CODEC_GZIP) {
            codec_buf_take(&dec, dec.len);
            s_gunzip(plain.data, plain.len, &dec);
            assert_true(dec.len <= at);
            if (all)
                assert_int_equal(dec.len, at);
            if (dec.len > 0)
                assert_memory_equal(dec.data, stream, dec.len);
        }
    }
    codec_buf_take(&dec, dec.len);
    if (k == CODEC_GZIP)
        s_gunzip(plain.data, plain.len, &dec);
    else
        s_decode(k, plain.data, plain.len, &dec);
    assert_int_equal(dec.len, len);
    assert_memory_equal(dec.data, stream, len);
    if (k == CODEC_PLAIN)
        assert_int_equal(plain.len, len);
    else
        assert_true(plain.len < len);
    /* the backend ends the stream (after a key update, with its new
     * keys) */
    assert_int_equal(SSL_shutdown(srv), 0);
    assert_int_equal(s_to_link(srv, l, why, sizeof why, &st), 1);
    codec_buf_free(&plain);
    codec_buf_free(&dec);
    free(stream);
    SSL_free(srv);
    link_free(&l);
}

static void test_tls13(void **state)
{
    (void)state;
    s_tls_roundtrip(CODEC_GZIP, 0, 0, 13);
    s_tls_roundtrip(CODEC_LZ4, 0, 0, 13);
    s_tls_roundtrip(CODEC_SNAPPY, 0, 0, 13);
    s_tls_roundtrip(CODEC_PLAIN, 0, 0, 13);
}

static void test_tls12(void **state)
{
    (void)state;
    s_tls_roundtrip(CODEC_GZIP, TLS1_2_VERSION, 0, 12);
    s_tls_roundtrip(CODEC_PLAIN, TLS1_2_VERSION, 0, 12);
    /* the client's protomax says so */
    s_tls_roundtrip(CODEC_GZIP, 0, TLS1_2_VERSION, 12);
}

/* The handshake of a client trusting ca, expecting name, against certa:
 * its last step; the reason into why. */
static tls_step_t s_try(const char *ca, const char *name, int maxver, char *why,
                        size_t whylen)
{
    tls_client_t *c = s_client(ca, 0);
    link_t *l = link_new(CODEC_GZIP, c, name);
    SSL *srv = s_server(maxver);
    uint64_t moved = 0, st = 1;
    assert_non_null(l);
    why[0] = '\0';
    tls_step_t step = s_handshake(l, srv, why, whylen, &moved, &st);
    if (step == TLS_DONE) {
        assert_int_equal(link_tls_version(l), maxver ? 12 : 13);
    } else {
        assert_int_equal(link_tls_version(l), 0);
        /* the server was told (an alert), and did not finish */
        assert_false(SSL_is_init_finished(srv));
    }
    SSL_free(srv);
    link_free(&l);
    tls_client_free(&c);
    return step;
}

/* A refusal whose reason holds want. */
static void s_refused(const char *ca, const char *name, int maxver,
                      const char *want)
{
    char why[512];
    tls_step_t step = s_try(ca, name, maxver, why, sizeof why);
    if (step != TLS_CERT_REFUSED)
        fail_msg("%s: step %d (%s), not refused", name, (int)step, why);
    if (strstr(why, want) == NULL)
        fail_msg("%s: reason '%s' does not name '%s'", name, why, want);
}

static void test_verify(void **state)
{
    char why[512];
    (void)state;
    for (int v = 0; v < 2; v++) {
        int maxver = v ? TLS1_2_VERSION : 0;
        /* the names the certificate carries */
        assert_int_equal(
            s_try(s_fx.certa_pem, "localhost", maxver, why, sizeof why),
            TLS_DONE);
        assert_int_equal(
            s_try(s_fx.certa_pem, "127.0.0.1", maxver, why, sizeof why),
            TLS_DONE);
        /* another CA */
        s_refused(s_fx.certb_pem, "localhost", maxver,
                  X509_verify_cert_error_string(
                      X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT));
        /* another name, another address */
        s_refused(s_fx.certa_pem, "other.example", maxver, "mismatch");
        s_refused(s_fx.certa_pem, "127.0.0.2", maxver, "mismatch");
        s_refused(s_fx.certa_pem, "127.0.0.2", maxver, "IP address");
        s_refused(s_fx.certa_pem, "host.localhost", maxver, "mismatch");
    }
    /* no version in common: a failure, not a refusal */
    char err[512] = "";
    tls_client_t *c = tls_client_new(
        &(tls_conf_t){.ca = s_fx.certa_pem, .protomin = TLS1_3_VERSION}, err,
        sizeof err);
    if (c == NULL)
        fail_msg("tls_client_new: %s", err);
    link_t *l = link_new(CODEC_GZIP, c, "localhost");
    SSL *srv = s_server(TLS1_2_VERSION);
    uint64_t moved = 0, st = 1;
    assert_non_null(l);
    why[0] = '\0';
    assert_int_equal(s_handshake(l, srv, why, sizeof why, &moved, &st),
                     TLS_FAILED);
    assert_true(why[0] != '\0');
    assert_int_equal(link_tls_version(l), 0);
    SSL_free(srv);
    link_free(&l);
    tls_client_free(&c);
}

/* The backend ends the stream: close_notify gives 1; bytes that are not
 * TLS give -1 and a reason. */
static void test_close_notify(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        tls_client_t *c = s_client(s_fx.certa_pem, 0);
        link_t *l = link_new(CODEC_GZIP, c, "localhost");
        SSL *srv = s_server(v ? TLS1_2_VERSION : 0);
        uint64_t moved = 0, st = 2;
        char why[256] = "";
        codec_buf_t plain = {0};
        assert_non_null(l);
        assert_int_equal(s_handshake(l, srv, why, sizeof why, &moved, &st),
                         TLS_DONE);
        char *p = s_lines(5000, 1);
        s_batch(l, p, 5000, &st);
        s_to_server(l, srv, &moved, &st);
        s_server_read(srv, &plain);
        assert_true(plain.len > 0);
        assert_int_equal(SSL_shutdown(srv), 0); /* close_notify sent */
        assert_int_equal(s_to_link(srv, l, why, sizeof why, &st), 1);
        codec_buf_free(&plain);
        free(p);
        SSL_free(srv);
        link_free(&l);

        /* garbage after the handshake */
        l = link_new(CODEC_PLAIN, c, "localhost");
        srv = s_server(v ? TLS1_2_VERSION : 0);
        assert_non_null(l);
        assert_int_equal(s_handshake(l, srv, why, sizeof why, &moved, &st),
                         TLS_DONE);
        static const char junk[] = "\x17\x03\x03\x00\x20"
                                   "0123456789abcdef0123456789abcdef";
        why[0] = '\0';
        assert_int_equal(link_in(l, junk, sizeof junk - 1, why, sizeof why),
                         -1);
        assert_true(why[0] != '\0');
        SSL_free(srv);
        link_free(&l);
        tls_client_free(&c);
    }
}

/* ---- tests: contexts -------------------------------------------------- */

/* tls_client_new must fail with a reason holding want1 and want2. */
static void s_client_fails(const tls_conf_t *conf, const char *want1,
                           const char *want2)
{
    char err[512] = "";
    tls_client_t *c = tls_client_new(conf, err, sizeof err);
    if (c != NULL)
        fail_msg("tls_client_new did not fail (wanted '%s')", want1);
    if (strstr(err, want1) == NULL || (want2 && strstr(err, want2) == NULL))
        fail_msg("reason '%s' does not name '%s' and '%s'", err, want1,
                 want2 ? want2 : "");
    assert_int_equal(ERR_peek_error(), 0);
}

/* tls_server_new, the same. */
static void s_server_fails(const tls_conf_t *conf, const char *want1,
                           const char *want2)
{
    char err[512] = "";
    tls_server_t *s = tls_server_new(conf, err, sizeof err);
    if (s != NULL)
        fail_msg("tls_server_new did not fail (wanted '%s')", want1);
    if (strstr(err, want1) == NULL || (want2 && strstr(err, want2) == NULL))
        fail_msg("reason '%s' does not name '%s' and '%s'", err, want1,
                 want2 ? want2 : "");
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_client_errors(void **state)
{
    char err[512] = "";
    (void)state;
    s_client_fails(&(tls_conf_t){.ca = s_fx.missing}, s_fx.missing,
                   "No such file");
    s_client_fails(&(tls_conf_t){.ca = s_fx.empty_pem}, s_fx.empty_pem, "CA");
    s_client_fails(&(tls_conf_t){.ca = s_fx.certa_pem,
                                 .cert = s_fx.missing,
                                 .key = s_fx.keya_pem},
                   s_fx.missing, "No such file");
    s_client_fails(&(tls_conf_t){.ca = s_fx.certa_pem,
                                 .cert = s_fx.certa_pem,
                                 .key = s_fx.missing},
                   s_fx.missing, "No such file");
    /* a certificate without its key, a key that is not its */
    s_client_fails(&(tls_conf_t){.ca = s_fx.certa_pem, .cert = s_fx.certa_pem},
                   s_fx.certa_pem, "the private key");
    s_client_fails(&(tls_conf_t){.ca = s_fx.certa_pem,
                                 .cert = s_fx.certa_pem,
                                 .key = s_fx.keyb_pem},
                   s_fx.keyb_pem, "mismatch"); /* OpenSSL's "key values
                                                  mismatch" */
    s_client_fails(&(tls_conf_t){.ca = s_fx.certa_pem, .cert = s_fx.keya_pem},
                   s_fx.keya_pem, "no certificate");
    s_client_fails(
        &(tls_conf_t){.ca = s_fx.certa_pem, .ciphers = "NOT-A-CIPHER"},
        "ciphers 'NOT-A-CIPHER'", NULL);
    s_client_fails(
        &(tls_conf_t){.ca = s_fx.certa_pem, .suites = "TLS_NOT_A_SUITE"},
        "ciphersuites 'TLS_NOT_A_SUITE'", NULL);
    /* and what works: mtls as one file and as two */
    tls_client_t *c = tls_client_new(
        &(tls_conf_t){.ca = s_fx.certa_pem, .cert = s_fx.paira_pem}, err,
        sizeof err);
    if (c == NULL)
        fail_msg("tls_client_new: %s", err);
    tls_client_free(&c);
    c = tls_client_new(&(tls_conf_t){.ca = s_fx.certa_pem,
                                     .cert = s_fx.certa_pem,
                                     .key = s_fx.keya_pem},
                       err, sizeof err);
    if (c == NULL)
        fail_msg("tls_client_new: %s", err);
    tls_client_free(&c);
    assert_null(c);
    tls_client_free(&c);
}

static void test_server_errors(void **state)
{
    char err[512] = "";
    (void)state;
    s_server_fails(&(tls_conf_t){.pem = s_fx.missing}, s_fx.missing,
                   "No such file");
    s_server_fails(&(tls_conf_t){.pem = s_fx.certa_pem}, s_fx.certa_pem,
                   "the private key");
    s_server_fails(&(tls_conf_t){.pem = s_fx.keya_pem}, s_fx.keya_pem,
                   "no certificate");
    s_server_fails(&(tls_conf_t){.pem = s_fx.empty_pem}, s_fx.empty_pem,
                   "no certificate");
    s_server_fails(&(tls_conf_t){.pem = s_fx.paira_pem, .mutual = 1},
                   "mtls needs a CA", NULL);
    s_server_fails(
        &(tls_conf_t){.pem = s_fx.paira_pem, .mutual = 1, .ca = s_fx.missing},
        s_fx.missing, "No such file");
    s_server_fails(
        &(tls_conf_t){.pem = s_fx.paira_pem, .ciphers = "NOT-A-CIPHER"},
        "ciphers 'NOT-A-CIPHER'", NULL);
    s_server_fails(
        &(tls_conf_t){.pem = s_fx.paira_pem, .suites = "TLS_NOT_A_SUITE"},
        "ciphersuites 'TLS_NOT_A_SUITE'", NULL);
    /* and what works */
    tls_server_t *s =
        tls_server_new(&(tls_conf_t){.pem = s_fx.paira_pem}, err, sizeof err);
    if (s == NULL)
        fail_msg("tls_server_new: %s", err);
    tls_server_free(&s);
    s = tls_server_new(
        &(tls_conf_t){.pem = s_fx.paira_pem, .mutual = 1, .ca = s_fx.certa_pem},
        err, sizeof err);
    if (s == NULL)
        fail_msg("tls_server_new: %s", err);
    tls_server_free(&s);
    assert_null(s);
    tls_server_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codecs),
        cmocka_unit_test(test_acked_edges),
        cmocka_unit_test(test_acked_many),
        cmocka_unit_test(test_tls13),
        cmocka_unit_test(test_tls12),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_client_errors),
        cmocka_unit_test(test_server_errors),
    };
    return cmocka_run_group_tests_name("link", tests, s_setup, s_teardown);
}
