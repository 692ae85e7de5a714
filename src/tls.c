/*
 * tls.c -- see tls.h.
 */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct tls_server {
    SSL_CTX *ctx; /* owned */
};

struct tls_session {
    SSL *ssl; /* owned; the socket is not */
};

/* The reason OpenSSL gives for the last failure (its error queue, which
 * this clears), or fallback when it has none. */
static void s_reason(char *why, size_t whylen, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        if (r)
            snprintf(why, whylen, "%s", r);
        else
            ERR_error_string_n(e, why, whylen);
    } else {
        snprintf(why, whylen, "%s", fallback);
    }
    ERR_clear_error();
}

/* The CA of c into ctx: a directory (hashed, as c_rehash makes it) or a
 * file; without one, the system's (clients only: want_default). */
static int s_load_ca(SSL_CTX *ctx, const char *ca, int want_default, char *err,
                     size_t errlen)
{
    char why[200];
    struct stat sb;
    if (ca == NULL) {
        if (want_default && SSL_CTX_set_default_verify_paths(ctx) != 1) {
            s_reason(why, sizeof why, "no system CAs");
            snprintf(err, errlen, "the system's CAs: %s", why);
            return -1;
        }
        return 0;
    }
    if (stat(ca, &sb) != 0) {
        snprintf(err, errlen, "CA %s: %s", ca, strerror(errno));
        return -1;
    }
    int dir = S_ISDIR(sb.st_mode);
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, dir ? NULL : ca, dir ? ca : NULL) !=
        1) {
        s_reason(why, sizeof why, "no certificate read");
        snprintf(err, errlen, "CA %s: %s", ca, why);
        return -1;
    }
    return 0;
}

/* What c says of versions and ciphers, into ctx. */
static int s_common(SSL_CTX *ctx, const tls_conf_t *c, char *err, size_t errlen)
{
    char why[200];
    SSL_CTX_set_min_proto_version(ctx,
                                  c->protomin ? c->protomin : TLS1_2_VERSION);
    if (c->protomax)
        SSL_CTX_set_max_proto_version(ctx, c->protomax);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    ERR_clear_error();
    if (c->ciphers && SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1) {
        s_reason(why, sizeof why, "no cipher matches");
        snprintf(err, errlen, "ciphers '%s': %s", c->ciphers, why);
        return -1;
    }
    if (c->suites && SSL_CTX_set_ciphersuites(ctx, c->suites) != 1) {
        s_reason(why, sizeof why, "no cipher suite matches");
        snprintf(err, errlen, "ciphersuites '%s': %s", c->suites, why);
        return -1;
    }
    return 0;
}

/* The certificate (chain) in cert and the key in key, into ctx. */
static int s_load_pair(SSL_CTX *ctx, const char *cert, const char *key,
                       char *err, size_t errlen)
{
    char why[200];
    const char *files[2] = {cert, key};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (f == NULL) {
            snprintf(err, errlen, "%s: %s", files[i], strerror(errno));
            return -1;
        }
        fclose(f);
    }
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        s_reason(why, sizeof why, "no certificate");
        snprintf(err, errlen, "%s: no certificate read: %s", cert, why);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        s_reason(why, sizeof why, "no private key");
        snprintf(err, errlen, "%s: the private key: %s", key, why);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        s_reason(why, sizeof why, "the key does not match");
        snprintf(err, errlen,
                 "%s: the private key does not match the certificate: %s", key,
                 why);
        return -1;
    }
    return 0;
}

tls_server_t *tls_server_new(const tls_conf_t *c, char *err, size_t errlen)
{
    tls_server_t *s = calloc(1, sizeof *s);
    if (s == NULL || (s->ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    if (s_common(s->ctx, c, err, errlen) != 0)
        goto fail;
    SSL_CTX_set_options(s->ctx,
                        SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(s->ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
    /* no TLS 1.3 session tickets: a sender that writes and closes without
     * reading would leave them unread, and its kernel would then answer
     * with a reset that discards what the relay has not read yet */
    SSL_CTX_set_num_tickets(s->ctx, 0);
    if (s_load_pair(s->ctx, c->pem, c->pem, err, errlen) != 0)
        goto fail;
    if (c->mutual) {
        if (c->ca == NULL) {
            snprintf(err, errlen,
                     "mtls needs a CA to verify the clients: give -C or "
                     "'ca PATH'");
            goto fail;
        }
        if (s_load_ca(s->ctx, c->ca, 0, err, errlen) != 0)
            goto fail;
        struct stat sb;
        if (stat(c->ca, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            /* name the accepted CAs in the certificate request */
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->ca);
            if (names)
                SSL_CTX_set_client_CA_list(s->ctx, names);
        }
        SSL_CTX_set_verify(
            s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    } else {
        SSL_CTX_set_verify(s->ctx, SSL_VERIFY_NONE, NULL);
    }
    ERR_clear_error();
    return s;
fail:
    tls_server_free(&s);
    return NULL;
}

void tls_server_free(tls_server_t **ps)
{
    tls_server_t *s = *ps;
    if (s == NULL)
        return;
    SSL_CTX_free(s->ctx);
    free(s);
    *ps = NULL;
}

tls_session_t *tls_session_new(tls_server_t *s, int fd)
{
    tls_session_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if ((t->ssl = SSL_new(s->ctx)) == NULL || SSL_set_fd(t->ssl, fd) != 1) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(t->ssl);
    return t;
}

void tls_session_free(tls_session_t **pt)
{
    tls_session_t *t = *pt;
    if (t == NULL)
        return;
    /* no close_notify: the connection is closed, not shut down politely,
     * and a write here could block or raise SIGPIPE */
    SSL_set_quiet_shutdown(t->ssl, 1);
    SSL_free(t->ssl);
    free(t);
    *pt = NULL;
}

tls_step_t tls_handshake(tls_session_t *t, char *why, size_t whylen)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1)
        return TLS_DONE;
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_WRITE;
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK) {
        snprintf(why, whylen, "certificate: %s",
                 X509_verify_cert_error_string(vr));
        ERR_clear_error();
        return TLS_CERT_REFUSED;
    }
    unsigned long le = ERR_peek_last_error();
    if (le != 0 &&
        ERR_GET_REASON(le) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        s_reason(why, whylen, "no certificate");
        return TLS_CERT_REFUSED;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0)
        snprintf(why, whylen, "%s",
                 errno ? strerror(errno) : "closed during the handshake");
    else if (e == SSL_ERROR_ZERO_RETURN)
        snprintf(why, whylen, "closed during the handshake");
    else
        s_reason(why, whylen, "handshake failed");
    ERR_clear_error();
    return TLS_FAILED;
}

ssize_t tls_read(tls_session_t *t, void *buf, size_t n, char *why,
                 size_t whylen)
{
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, buf, n, &got) == 1)
        return (ssize_t)got;
    int e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* a key update's answer waits for room */
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_last_error() == 0) {
            int se = errno;
            ERR_clear_error();
            if (se == 0)
                return 0;
            snprintf(why, whylen, "%s", strerror(se));
            errno = EPROTO;
            return -1;
        }
        /* fall through */
    default:
        s_reason(why, whylen, "stream error");
        errno = EPROTO;
        return -1;
    }
}

size_t tls_pending(const tls_session_t *t)
{
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 0;
}

/* The version ssl agreed: 12, 13, or 0 (none yet, or another). */
static int s_version(const SSL *ssl)
{
    if (!SSL_is_init_finished(ssl))
        return 0;
    switch (SSL_version(ssl)) {
    case TLS1_2_VERSION: return 12;
    case TLS1_3_VERSION: return 13;
    default: return 0;
    }
}

int tls_version(const tls_session_t *t)
{
    return s_version(t->ssl);
}

/* ---- members ------------------------------------------------------------ */

struct tls_client {
    SSL_CTX *ctx; /* owned */
};

struct tls_conn {
    SSL *ssl; /* owned; owns rbio and wbio */
    BIO *rbio, *wbio;
    int asked; /* the backend asked for a certificate this one lacks */
};

/* The backend asked for a client certificate and the member has none: go
 * on without one (the backend decides), and remember it was asked. */
static int s_cert_cb(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    (void)x509;
    (void)pkey;
    tls_conn_t *t = SSL_get_app_data(ssl);
    if (t)
        t->asked = 1;
    return 0;
}

tls_client_t *tls_client_new(const tls_conf_t *c, char *err, size_t errlen)
{
    tls_client_t *k = calloc(1, sizeof *k);
    if (k == NULL || (k->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(k);
        return NULL;
    }
    if (s_common(k->ctx, c, err, errlen) != 0 ||
        s_load_ca(k->ctx, c->ca, 1, err, errlen) != 0 ||
        (c->cert && s_load_pair(k->ctx, c->cert, c->key ? c->key : c->cert, err,
                                errlen) != 0)) {
        tls_client_free(&k);
        return NULL;
    }
    SSL_CTX_set_verify(k->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(k->ctx, SSL_SESS_CACHE_OFF);
    if (c->cert == NULL)
        SSL_CTX_set_client_cert_cb(k->ctx, s_cert_cb);
    ERR_clear_error();
    return k;
}

void tls_client_free(tls_client_t **pk)
{
    tls_client_t *k = *pk;
    if (k == NULL)
        return;
    SSL_CTX_free(k->ctx);
    free(k);
    *pk = NULL;
}

tls_conn_t *tls_conn_new(tls_client_t *k, const char *name)
{
    tls_conn_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(k->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    /* an empty read BIO says "retry", not "end of file" */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_app_data(t->ssl, t);
    SSL_set_connect_state(t->ssl);
    X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1) {
        /* not an address: a DNS name, also sent as SNI */
        X509_VERIFY_PARAM_set_hostflags(vp,
                                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(t->ssl, name);
        SSL_set_tlsext_host_name(t->ssl, name);
    }
    ERR_clear_error();
    return t;
}

void tls_conn_free(tls_conn_t **pt)
{
    tls_conn_t *t = *pt;
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* and its BIOs */
    free(t);
    *pt = NULL;
}

tls_step_t tls_conn_handshake(tls_conn_t *t, char *why, size_t whylen)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1)
        return TLS_DONE;
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_READ;
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK) {
        snprintf(why, whylen, "the backend's certificate: %s",
                 X509_verify_cert_error_string(vr));
        ERR_clear_error();
        return TLS_CERT_REFUSED;
    }
    s_reason(why, whylen, "handshake failed");
    return TLS_FAILED;
}

int tls_conn_in(tls_conn_t *t, const void *p, size_t n)
{
    size_t done = 0;
    if (n == 0)
        return 0;
    if (BIO_write_ex(t->rbio, p, n, &done) != 1 || done != n) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

int tls_conn_poll(tls_conn_t *t, char *why, size_t whylen)
{
    char buf[4096];
    for (;;) {
        size_t got = 0;
        ERR_clear_error();
        if (SSL_read_ex(t->ssl, buf, sizeof buf, &got) == 1)
            continue; /* a backend sends nothing we read */
        int e = SSL_get_error(t->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN)
            return 1;
        s_reason(why, whylen, "stream error");
        return -1;
    }
}

int tls_conn_write(tls_conn_t *t, const void *p, size_t n, char *why,
                   size_t whylen)
{
    size_t done = 0;
    ERR_clear_error();
    if (n == 0)
        return 0;
    if (SSL_write_ex(t->ssl, p, n, &done) != 1 || done != n) {
        s_reason(why, whylen, "write failed");
        return -1;
    }
    return 0;
}

int tls_conn_out(tls_conn_t *t, codec_buf_t *out)
{
    char *p;
    long n = BIO_get_mem_data(t->wbio, &p);
    if (n <= 0)
        return 0;
    if (codec_buf_append(out, p, (size_t)n) != 0)
        return -1;
    (void)BIO_reset(t->wbio);
    return 0;
}

int tls_conn_cert_asked(const tls_conn_t *t)
{
    return t->asked;
}

int tls_conn_version(const tls_conn_t *t)
{
    return s_version(t->ssl);
}
