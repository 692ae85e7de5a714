/*
 * tls.h -- TLS on orchester's listeners and cluster members, with OpenSSL 3.
 *
 * Configuration (tls_conf_t) comes from a transport clause (config.h): a
 * listener's context is made from one PEM file that holds the certificate
 * (and its chain) and the private key, as `transport plain ssl PEMFILE`
 * names it; with `mtls` it also asks for a client certificate and refuses
 * a client without one that the CA verifies.  A member's context verifies
 * the backend's certificate against the CA (-C, or `ca PATH`; without
 * either, the system's CAs) and the name it must carry, and with `mtls
 * CERT KEY` shows its own.  Both offer TLS 1.2 and 1.3 unless protomin or
 * protomax say otherwise; no renegotiation, no compression.
 *
 * A listener session (tls_session_t) wraps one accepted, non-blocking
 * socket.  The handshake and the reads are steps that never block: each
 * returns what it waits for, and the caller's event loop calls again when
 * the socket is ready.  Reads are record by record (no read-ahead), so once
 * a read returns "again" no decrypted byte waits inside the session and the
 * socket's readiness tells the whole story; tls_pending() says otherwise
 * after a read that filled the caller's buffer.
 *
 * A member session (tls_conn_t) never touches the socket: the caller feeds
 * it what it read (tls_conn_in) and writes out what it made (tls_conn_out),
 * so the caller knows exactly which socket bytes carry which stream bytes
 * (the delivery rule of dest.c counts acknowledged socket bytes).
 *
 * Ownership: a context is owned by whoever made it; OpenSSL counts its
 * references, so it may be freed (a reload made a new one) while sessions
 * made from it live on.  A session is owned by its connection and does not
 * own the socket.  Each object is used by one thread at a time.
 */
#ifndef ORCHESTER_TLS_H
#define ORCHESTER_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "codec.h"

typedef struct tls_server tls_server_t;
typedef struct tls_session tls_session_t;
typedef struct tls_client tls_client_t;
typedef struct tls_conn tls_conn_t;

/* What a context is made from.  Strings borrowed for the call. */
typedef struct {
    const char *pem;        /* listener: certificate chain and key */
    const char *cert;       /* member mtls: the client certificate */
    const char *key;        /* and its key */
    const char *ca;         /* CA file or directory: a listener's mtls
                               clients, a member's backend (NULL: the
                               system's CAs) */
    int mutual;             /* listener: require a client certificate */
    int protomin, protomax; /* TLS1_2_VERSION etc.; 0: TLS 1.2, newest */
    const char *ciphers;    /* TLS 1.2 and below, OpenSSL's syntax */
    const char *suites;     /* TLS 1.3 */
} tls_conf_t;

typedef enum {
    TLS_DONE = 0,    /* the handshake is complete */
    TLS_WANT_READ,   /* call again when the socket is readable (a member
                        session: when more bytes were fed in) */
    TLS_WANT_WRITE,  /* call again when the socket is writable */
    TLS_FAILED,      /* give up: the reason is in why */
    TLS_CERT_REFUSED /* give up: the peer's certificate was missing or did
                        not verify (the reason in why) */
} tls_step_t;

/* tls_server_new: a listener's context.  Returns NULL with the reason in
 * err. */
tls_server_t *tls_server_new(const tls_conf_t *c, char *err, size_t errlen);
/* tls_server_free: free *s (sessions made from it live on), set NULL. */
void tls_server_free(tls_server_t **s);

/* tls_session_new: a server session on the connected socket fd.  Returns
 * NULL when out of memory. */
tls_session_t *tls_session_new(tls_server_t *s, int fd);

/* tls_session_free: free *t (the socket stays open), set it to NULL. */
void tls_session_free(tls_session_t **t);

/* tls_handshake: one step of the server handshake. */
tls_step_t tls_handshake(tls_session_t *t, char *why, size_t whylen);

/* tls_read: up to n decrypted bytes into buf.  Returns the bytes read
 * (> 0); 0 when the peer ended the stream (close_notify or EOF); -1 with
 * errno EAGAIN when nothing is ready (wait for readability); -1 with
 * errno EPROTO (the reason in why) on an error of the stream. */
ssize_t tls_read(tls_session_t *t, void *buf, size_t n, char *why,
                 size_t whylen);

/* tls_pending: decrypted bytes held in t, ready for tls_read. */
size_t tls_pending(const tls_session_t *t);

/* tls_version: the protocol version agreed: 12 for TLS 1.2, 13 for 1.3,
 * 0 before the handshake ends. */
int tls_version(const tls_session_t *t);

/* ---- members ----------------------------------------------------------- */

/* tls_client_new: a member's context.  Returns NULL with the reason in
 * err. */
tls_client_t *tls_client_new(const tls_conf_t *c, char *err, size_t errlen);

/* tls_client_free: free *c (sessions made from it live on), set NULL. */
void tls_client_free(tls_client_t **c);

/* tls_conn_new: a session of c to a backend whose certificate must carry
 * name (a DNS name or an IP address; it is also sent as SNI when it is a
 * name).  NULL when out of memory. */
tls_conn_t *tls_conn_new(tls_client_t *c, const char *name);

/* tls_conn_free: free *t, set it to NULL. */
void tls_conn_free(tls_conn_t **t);

/* tls_conn_handshake: one step of the client handshake; what it made to
 * send is then in tls_conn_out.  TLS_WANT_READ: feed it more. */
tls_step_t tls_conn_handshake(tls_conn_t *t, char *why, size_t whylen);

/* tls_conn_in: n bytes read from the socket.  0, or -1 out of memory. */
int tls_conn_in(tls_conn_t *t, const void *p, size_t n);

/* tls_conn_poll: after the handshake, read what came in (the backend
 * sends no stream bytes; they are dropped): 0 go on, 1 the backend closed
 * the stream, -1 an error (the reason in why). */
int tls_conn_poll(tls_conn_t *t, char *why, size_t whylen);

/* tls_conn_write: encrypt n stream bytes (never partly).  0, or -1 with
 * the reason in why. */
int tls_conn_write(tls_conn_t *t, const void *p, size_t n, char *why,
                   size_t whylen);

/* tls_conn_out: append the socket bytes made so far to out.  0, or -1 out
 * of memory. */
int tls_conn_out(tls_conn_t *t, codec_buf_t *out);

/* tls_conn_cert_asked: whether the backend asked for a client certificate
 * that this session had none to show for. */
int tls_conn_cert_asked(const tls_conn_t *t);

/* tls_conn_version: 12, 13, or 0 before the handshake ends. */
int tls_conn_version(const tls_conn_t *t);

#endif
