/*
 * msg.c -- see msg.h.
 */
#include "msg.h"

#include <string.h>
#include <zmq.h>

int msg_send(void *sock, uint8_t type, uint64_t gen, uint32_t count,
             const void *data, size_t len, int flags)
{
    msg_hdr_t h;
    memset(&h, 0, sizeof h);
    h.type = type;
    h.count = count;
    h.gen = gen;
    if (zmq_send(sock, &h, sizeof h, flags | (len ? ZMQ_SNDMORE : 0)) < 0)
        return -1;
    if (len && zmq_send(sock, data, len, flags) < 0)
        return -1;
    return 0;
}

int msg_send_ctl(void *sock, uint8_t type, uint64_t gen, int flags)
{
    return msg_send(sock, type, gen, 0, NULL, 0, flags);
}

int msg_hdr_parse(const void *frame, size_t len, msg_hdr_t *h, size_t *extra)
{
    if (len < sizeof *h)
        return -1;
    memcpy(h, frame, sizeof *h);
    if (h->type == 0 || h->type >= MSG_NTYPES)
        return -1;
    *extra = len - sizeof *h;
    return 0;
}

void msg_discard_rest(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
}

int msg_recv_ctl(void *sock, msg_hdr_t *h)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    size_t extra = 0;
    int more = zmq_msg_more(&m);
    int rc = msg_hdr_parse(zmq_msg_data(&m), zmq_msg_size(&m), h, &extra);
    zmq_msg_close(&m);
    if (more) {
        msg_discard_rest(sock);
        return -1;
    }
    return rc == 0 && extra == 0 ? h->type : -1;
}
