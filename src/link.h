/*
 * link.h -- the sending side of one connection to a member whose transport
 * is compressed, encrypted, or both: stream bytes in, socket bytes out.
 *
 * Pure core: no socket.  The destination (dest.c) hands it batches of the
 * stream it takes from its queue; the link compresses each batch (codec.h)
 * and encrypts the result (tls.h), and holds the socket bytes until the
 * destination has written them.  For every batch it remembers where the
 * batch ends in the socket bytes, so that the delivery rule (what the
 * backend's TCP stack acknowledged is delivered) can be told in stream
 * bytes: a batch is delivered once every socket byte that carries it is
 * acknowledged (each batch ends with a flush of the compressor, so those
 * bytes decode it whole).
 *
 * Ownership: a link owns its encoder, its TLS session and its buffers; the
 * TLS context it was made from is borrowed (its sessions hold a reference
 * of their own).  One link per connection: a new connection starts a new
 * link (a new compressed stream, a new TLS session).
 */
#ifndef ORCHESTER_LINK_H
#define ORCHESTER_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "codec.h"
#include "tls.h"

typedef struct link link_t;

/* link_new: a link that compresses with codec (CODEC_PLAIN: not at all)
 * and, when tls is not NULL, encrypts in a session that expects the
 * backend's certificate to carry name.  NULL when out of memory. */
link_t *link_new(codec_kind_t codec, tls_client_t *tls, const char *name);

/* link_free: free *l, set it to NULL. */
void link_free(link_t **l);

/* link_handshake: a step of the TLS handshake (TLS_DONE at once without
 * TLS); what it makes to send is then in link_wire. */
tls_step_t link_handshake(link_t *l, char *why, size_t whylen);

/* link_in: n bytes read from the socket.  0 go on; 1 the backend ended
 * the stream; -1 an error (the reason in why).  During the handshake call
 * link_handshake next. */
int link_in(link_t *l, const void *p, size_t n, char *why, size_t whylen);

/* link_batch: compress and encrypt the stream bytes of iov[0..n) as one
 * batch.  0, or -1 with the reason in why (the connection is then of no
 * more use). */
int link_batch(link_t *l, const struct iovec *iov, int n, char *why,
               size_t whylen);

/* link_wire: the socket bytes not written yet (*len of them; borrowed
 * until the next call on l). */
const char *link_wire(const link_t *l, size_t *len);

/* link_wrote: n of them were written. */
void link_wrote(link_t *l, size_t n);

/* link_acked: given that the first wire_acked socket bytes of this
 * connection were acknowledged, how many stream bytes are delivered (the
 * ends of whole batches; never less than the last answer). */
uint64_t link_acked(link_t *l, uint64_t wire_acked);

/* link_totals: stream bytes batched and socket bytes made. */
void link_totals(const link_t *l, uint64_t *stream, uint64_t *wire);

/* link_tls_version: 12, 13, or 0 (no TLS, or not done yet). */
int link_tls_version(const link_t *l);

/* link_tls_cert_asked: the backend asked for a client certificate the link
 * had none to show for (tls_conn_cert_asked). */
int link_tls_cert_asked(const link_t *l);

#endif
