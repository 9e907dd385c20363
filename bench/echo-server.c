/*
 * echo-server: a small, fast, single-threaded epoll WebSocket echo server
 * for benchmarking wstether (bench/run, bench/stdio-throughput).
 *
 *   cc -O2 -Wall -Wextra -o bench/echo-server bench/echo-server.c
 *   cc -O2 -Wall -Wextra -DWITH_TLS -o bench/echo-server bench/echo-server.c -lssl -lcrypto
 *   bench/echo-server PORT [--quiet] [--raw] [--stamps] [--cert FILE --key FILE [--client-ca FILE]]
 *                     [--ciphers LIST] [--log-tls] [--tls12] [--resume]
 *
 * --raw: no WebSocket at all: every byte read is written back as it is (a
 * plain TCP or, with --cert, TLS echo). bench/run uses it as the ceiling,
 * with socat as the client. (socat's own echo, `socat TCP-LISTEN:P PIPE`,
 * copies in blocking 8 KiB steps through a pipe and deadlocks on itself with
 * bigger -b buffers: it measured ~150 MB/s here, less than the clients under
 * test, so it is no ceiling.)
 *
 * --stamps: when a connection's first text/binary message arrives, print
 * "first-message FD SECONDS" on stderr (CLOCK_MONOTONIC), so that a benchmark
 * can time a client from its first message, without its start-up, connect
 * and handshake; and "accept FD SECONDS" when it is accepted, so that
 * bench/handshakes can time TCP accept -> first message.
 *
 * --tls12 speaks TLS 1.2 only (default: 1.2 and 1.3). --resume turns
 * OpenSSL's session cache and tickets on (off by default, so that every
 * handshake is a full one); --log-tls then says "resumed" or "full".
 *
 * --deflate (only in a -DWITH_DEFLATE build, linked with wstether's
 * src/ws/pmdeflate.c and zlib: bench/deflate builds it) accepts a client's
 * permessage-deflate offer as "permessage-deflate" (15-bit windows, context
 * takeover), inflates what comes with RSV1 and compresses every echo of 32
 * bytes or more. With --stamps it also prints "closed FD up U down D" when a
 * connection ends: the bytes it carried each way after the handshake.
 * --client-window N (9..15, with --deflate) answers with
 * "client_max_window_bits=N" to a client that offered it, as Autobahn 13.3,
 * 13.5 and 13.7 do with 9: the client must then compress with that window.
 *
 * With --cert/--key (only in a -DWITH_TLS build, OpenSSL) every connection is
 * TLS (wss); --client-ca FILE also demands a client certificate signed by
 * that CA (mTLS) and refuses the handshake without one. --log-tls prints the
 * negotiated protocol and cipher of each handshake on stderr. By default the
 * client's cipher preference wins (OpenSSL's default, and nginx's); with
 * --ciphers LIST (OpenSSL syntax, TLS 1.2 suites) the server's LIST wins,
 * e.g. --ciphers ECDHE-ECDSA-AES128-GCM-SHA256 to see what a client does
 * with AES-GCM instead of its own first choice. TLS is done in
 * the same loop, non-blocking, with read-ahead (one read() per many records)
 * and partial writes, so that it costs no extra process, copy or hop: a
 * TLS-terminating socat/stunnel in front would add a second process and a
 * second loopback hop on a 2-core machine, and could itself become the
 * bottleneck.
 *
 * Listens on 127.0.0.1:PORT (0 = pick a free port; the chosen port is printed
 * on stdout as the first line, then stdout is flushed). Plain libc only:
 * SHA-1 and base64 for the RFC 6455 handshake are inline.
 *
 * Behaviour:
 *  - RFC 6455 handshake (GET + Sec-WebSocket-Key), no extensions, no subprotocol.
 *  - Client frames must be masked; they are unmasked in place.
 *  - Each text/binary message is echoed back as one unmasked, unfragmented
 *    frame of the same opcode; fragmented messages (continuation frames) are
 *    reassembled first.
 *  - ping -> pong with the same payload; pong is ignored;
 *    close -> close echoed with the same payload, then the TCP connection is
 *    shut down after the output is flushed.
 *  - Protocol errors -> close 1002; messages over MAX_MSG -> close 1009.
 *  - Reads in big chunks (256 KiB), coalesces all echo frames produced by one
 *    read into one output buffer written with one write(); partial writes
 *    leave the rest in the buffer and arm EPOLLOUT. When the output buffer
 *    grows past OUT_HIGH the connection stops reading until it drains below
 *    OUT_LOW (back-pressure against clients that do not read).
 *  - SIGINT/SIGTERM: stop and print totals on stderr (unless --quiet).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef WITH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#endif
#ifdef WITH_DEFLATE
#include "pmdeflate.h" /* linked with src/ws/pmdeflate.c and bench/errf.c */
#endif

#define READ_CHUNK   (256u * 1024u)
#define MAX_MSG      (64u * 1024u * 1024u) /* largest message accepted */
#define MAX_REQUEST  (16u * 1024u)         /* largest handshake request */
#define OUT_HIGH     (32u * 1024u * 1024u) /* stop reading above this */
#define OUT_LOW      (4u * 1024u * 1024u)  /* resume reading below this */
#define CLOSE_LINGER 5                     /* seconds to wait for peer EOF */

/* ------------------------------------------------------------------ SHA-1 */

struct sha1 {
    uint32_t h[5];
    uint64_t len;
    unsigned char blk[64];
    size_t n;
};

static uint32_t rol(uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

static void sha1_block(struct sha1 *s, const unsigned char *p)
{
    uint32_t w[80], a, b, c, d, e, t;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3]; e = s->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)      { f = (b & c) | (~b & d);          k = 0x5A827999; }
        else if (i < 40) { f = b ^ c ^ d;                   k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
        else             { f = b ^ c ^ d;                   k = 0xCA62C1D6; }
        t = rol(a, 5) + f + e + k + w[i];
        e = d; d = c; c = rol(b, 30); b = a; a = t;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e;
}

static void sha1_init(struct sha1 *s)
{
    static const uint32_t iv[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE,
                                   0x10325476, 0xC3D2E1F0};
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    s->n = 0;
}

static void sha1_update(struct sha1 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->len += len;
    while (len > 0) {
        size_t k = 64 - s->n;
        if (k > len)
            k = len;
        memcpy(s->blk + s->n, p, k);
        s->n += k;
        p += k;
        len -= k;
        if (s->n == 64) {
            sha1_block(s, s->blk);
            s->n = 0;
        }
    }
}

static void sha1_final(struct sha1 *s, unsigned char out[20])
{
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    sha1_update(s, &pad, 1);
    while (s->n != 56)
        sha1_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha1_update(s, lenb, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* ---------------------------------------------------------------- buffers */

struct buf {
    unsigned char *p;
    size_t off, len, cap; /* live data is p[off..len) */
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Make room for at least n more bytes after len. */
static size_t buf_used(const struct buf *b) { return b->len - b->off; }

static void buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    /* compact when it is cheap (little to move, or at least as much free in
     * front as there is to move: amortised O(1) a byte); else grow */
    if (b->off > 0 && (buf_used(b) <= b->off || buf_used(b) <= 65536)) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n)
            return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        die("realloc");
    b->p = p;
    b->cap = cap;
}

static void buf_append(struct buf *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

/* Free huge buffers once empty so idle connections do not pin memory; below
 * that keep them: freeing and growing again costs a page fault per 4 KiB. */
static void buf_shrink(struct buf *b)
{
    if (buf_used(b) == 0 && b->cap > 64u * 1024 * 1024) {
        free(b->p);
        b->p = NULL;
        b->cap = b->off = b->len = 0;
    }
}

/* ----------------------------------------------------------- connections */

enum state { ST_TLS, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DRAIN };

struct conn {
    int fd;
    enum state st;
#ifdef WITH_TLS
    SSL *ssl;           /* NULL on a plain connection */
    int ssl_want_write; /* the last SSL_read needs the socket writable */
    int ssl_more;       /* reading stopped early: OpenSSL may hold whole records */
#endif
    uint32_t events; /* currently registered epoll events */
    struct buf in, out, msg;
    int msg_op;      /* opcode of the fragmented message being assembled */
    size_t need;     /* bytes of input needed for the next frame */
    time_t deadline; /* ST_DRAIN: give up waiting for peer EOF after this */
    int stamped;     /* --stamps: the first message was reported */
    unsigned long long wire_in, wire_out, hs_out; /* wire_out - hs_out: after the 101 */
    int msg_rsv1; /* the message being assembled came with RSV1 */
#ifdef WITH_DEFLATE
    struct pmd *pmd; /* permessage-deflate accepted */
#endif
};

static int ep;
static int deflate_on;
static int client_window = 15; /* --client-window */
static int quiet;
static int stamps;
static int raw;
static volatile sig_atomic_t stop;
static unsigned long long n_conns, n_msgs, n_bytes_in, n_bytes_out;
static struct conn **conns; /* by fd, for the close-linger sweep */
static size_t n_conn_slots;
static int n_draining;
#ifdef WITH_TLS
static SSL_CTX *tls_ctx;
static int log_tls;
#endif

static void set_events(struct conn *c, uint32_t ev)
{
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
        die("epoll_ctl MOD");
    c->events = ev;
}

static void conn_free(struct conn *c)
{
    if (c->st == ST_DRAIN)
        n_draining--;
    if (stamps && c->stamped)
        fprintf(stderr, "closed %d up %llu down %llu\n", c->fd, c->wire_in,
                c->wire_out - c->hs_out);
#ifdef WITH_DEFLATE
    pmd_destroy(c->pmd);
#endif
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
#ifdef WITH_TLS
    if (c->ssl)
        SSL_free(c->ssl);
#endif
    close(c->fd);
    if ((size_t)c->fd < n_conn_slots)
        conns[c->fd] = NULL;
    free(c->in.p);
    free(c->out.p);
    free(c->msg.p);
    free(c);
}

/* ------------------------------------------------------- plain/TLS I/O */

/* >0 bytes, 0 EOF, -1 would block, -2 error */
static ssize_t io_read(struct conn *c, void *p, size_t n)
{
#ifdef WITH_TLS
    if (c->ssl) {
        int r = SSL_read(c->ssl, p, n > (1u << 30) ? (1 << 30) : (int)n);
        if (r > 0)
            return r;
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            return -1;
        case SSL_ERROR_WANT_WRITE:
            c->ssl_want_write = 1;
            return -1;
        case SSL_ERROR_ZERO_RETURN:
            return 0;
        default:
            ERR_clear_error();
            return -2;
        }
    }
#endif
    for (;;) {
        ssize_t r = read(c->fd, p, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
    }
}

/* >0 bytes, -1 would block, -2 error */
static ssize_t io_write(struct conn *c, const void *p, size_t n)
{
#ifdef WITH_TLS
    if (c->ssl) {
        int r = SSL_write(c->ssl, p, n > (1u << 30) ? (1 << 30) : (int)n);
        if (r > 0)
            return r;
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return -1;
        default:
            ERR_clear_error();
            return -2;
        }
    }
#endif
    for (;;) {
        ssize_t r = write(c->fd, p, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
    }
}

static void emit_frame(struct conn *c, int op, const unsigned char *p, size_t n)
{
    unsigned char h[10];
    size_t hl;
    h[0] = (unsigned char)(0x80 | op);
    if (n < 126) {
        h[1] = (unsigned char)n;
        hl = 2;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    buf_reserve(&c->out, hl + n);
    memcpy(c->out.p + c->out.len, h, hl);
    if (n)
        memcpy(c->out.p + c->out.len + hl, p, n);
    c->out.len += hl + n;
}

static void fail(struct conn *c, unsigned code)
{
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    emit_frame(c, 0x8, p, 2);
    c->st = ST_CLOSING;
}

static void unmask(unsigned char *p, size_t n, const unsigned char k[4])
{
    uint32_t k32;
    uint64_t k64, v;
    size_t i = 0;
    memcpy(&k32, k, 4);
    k64 = (uint64_t)k32 << 32 | k32;
    for (; i + 8 <= n; i += 8) {
        memcpy(&v, p + i, 8);
        v ^= k64;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] ^= k[i & 3];
}

/* One whole message back, compressed when permessage-deflate is on. */
static void echo_message(struct conn *c, int op, int rsv1, const unsigned char *p, size_t n)
{
#ifdef WITH_DEFLATE
    if (c->pmd) {
        const unsigned char *z;
        size_t zn;
        if (rsv1) {
            if (pmd_inflate(c->pmd, p, n, 1) != PMD_OK) {
                fail(c, 1007);
                return;
            }
            p = pmd_message(c->pmd, &n);
        }
        int rc = pmd_compress(c->pmd, p, n, &z, &zn);
        if (rc < 0) {
            fail(c, 1011);
            return;
        }
        n_msgs++;
        n_bytes_out += n;
        if (rc > 0)
            emit_frame(c, op | 0x40, z, zn);
        else
            emit_frame(c, op, p, n);
        return;
    }
#endif
    (void)rsv1;
    emit_frame(c, op, p, n);
    n_msgs++;
    n_bytes_out += n;
}

/* Handshake. Returns bytes consumed, 0 if incomplete, -1 on error. */
static long do_handshake(struct conn *c)
{
    unsigned char *s = c->in.p + c->in.off;
    size_t n = buf_used(&c->in);
    unsigned char *end = memmem(s, n, "\r\n\r\n", 4);
    if (!end)
        return n > MAX_REQUEST ? -1 : 0;
    size_t reqlen = (size_t)(end - s) + 4;
    if (reqlen < 4 || memcmp(s, "GET ", 4) != 0)
        return -1;
    /* walk header lines looking for Sec-WebSocket-Key */
    const char *key = NULL;
    size_t keylen = 0;
    int offered = 0, offered_window = 0; /* permessage-deflate; client_max_window_bits */
    unsigned char *line = (unsigned char *)memmem(s, reqlen, "\r\n", 2) + 2;
    while (line < end) {
        unsigned char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        static const char hdr[] = "sec-websocket-key:";
        size_t ll = (size_t)(eol - line);
        if (ll > sizeof hdr - 1 && strncasecmp((char *)line, hdr, sizeof hdr - 1) == 0) {
            unsigned char *v = line + sizeof hdr - 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            key = (const char *)v;
            keylen = (size_t)(ve - v);
        }
        static const char ext[] = "sec-websocket-extensions:";
        if (ll > sizeof ext - 1 && strncasecmp((char *)line, ext, sizeof ext - 1) == 0 &&
            memmem(line, ll, "permessage-deflate", 18)) {
            offered = 1;
            offered_window = memmem(line, ll, "client_max_window_bits", 22) != NULL;
        }
        line = eol + 2;
    }
    if (!key || keylen == 0 || keylen > 64) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
        buf_append(&c->out, bad, sizeof bad - 1);
        c->st = ST_CLOSING;
        return (long)reqlen;
    }
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    struct sha1 sh;
    unsigned char dg[20];
    char acc[32], resp[256];
    sha1_init(&sh);
    sha1_update(&sh, key, keylen);
    sha1_update(&sh, guid, sizeof guid - 1);
    sha1_final(&sh, dg);
    base64(dg, 20, acc);
    const char *ext_hdr = "";
#ifdef WITH_DEFLATE
    if (deflate_on && offered) {
        static char win_hdr[96];
        /* pmd_params name the windows from our side: "client" is our compressor's.
         * Ours stays at 15; the 15-bit inflater reads the client's smaller window. */
        struct pmd_params pp = {15, 15, 0, 0};
        int narrow = client_window != 15 && offered_window;
        if (narrow)
            snprintf(win_hdr, sizeof win_hdr,
                     "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=%d\r\n",
                     client_window);
        c->pmd = pmd_create(&pp, MAX_MSG);
        if (!c->pmd)
            die("pmd_create");
        ext_hdr = narrow ? win_hdr : "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    }
#else
    (void)offered;
    (void)offered_window;
#endif
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n%s"
                      "Sec-WebSocket-Accept: %s\r\n\r\n", ext_hdr, acc);
    buf_append(&c->out, resp, (size_t)rl);
    c->hs_out = (size_t)rl;
    c->wire_in -= reqlen;
    c->st = ST_OPEN;
    return (long)reqlen;
}

/* Parse as many complete frames as the input holds; queue the echoes. */
static void process(struct conn *c)
{
    c->need = 0;
    if (raw) { /* on_readable read straight into the output buffer */
        if (buf_used(&c->out) && stamps && !c->stamped) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            fprintf(stderr, "first-message %d %ld.%09ld\n", c->fd, (long)ts.tv_sec, ts.tv_nsec);
            c->stamped = 1;
        }
        return;
    }
    while (buf_used(&c->in) > 0 && (c->st == ST_HANDSHAKE || c->st == ST_OPEN)) {
        if (c->st == ST_HANDSHAKE) {
            long r = do_handshake(c);
            if (r < 0) {
                c->st = ST_CLOSING; /* just drop it */
                c->in.off = c->in.len = 0;
                return;
            }
            if (r == 0)
                return;
            buf_consume(&c->in, (size_t)r);
            continue;
        }
        unsigned char *p = c->in.p + c->in.off;
        size_t avail = buf_used(&c->in);
        if (avail < 2)
            return;
        int fin = p[0] & 0x80, rsv = p[0] & 0x70, op = p[0] & 0x0f;
        int masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (avail < 4)
                return;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10)
                return;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            hl = 10;
        }
        int rsv_ok = 0; /* RSV1 on a message's first frame, with permessage-deflate */
#ifdef WITH_DEFLATE
        rsv_ok = c->pmd && rsv == 0x40 && (op == 0x1 || op == 0x2);
#endif
        if ((rsv && !rsv_ok) || !masked) {
            fail(c, 1002);
            return;
        }
        if (len > MAX_MSG) {
            fail(c, 1009);
            return;
        }
        hl += 4;
        if (avail < hl + len) {
            c->need = hl + (size_t)len;
            return;
        }
        unsigned char *pl = p + hl;
        size_t n = (size_t)len;
        unmask(pl, n, p + hl - 4);
        n_bytes_in += n;
        if (stamps && !c->stamped && op <= 0x2) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            fprintf(stderr, "first-message %d %ld.%09ld\n", c->fd, (long)ts.tv_sec, ts.tv_nsec);
            c->stamped = 1;
        }
        switch (op) {
        case 0x0: /* continuation */
            if (!c->msg_op) {
                fail(c, 1002);
                return;
            }
            if (buf_used(&c->msg) + n > MAX_MSG) {
                fail(c, 1009);
                return;
            }
            buf_append(&c->msg, pl, n);
            if (fin) {
                echo_message(c, c->msg_op, c->msg_rsv1, c->msg.p + c->msg.off,
                             buf_used(&c->msg));
                c->msg.off = c->msg.len = 0;
                buf_shrink(&c->msg);
                c->msg_op = 0;
            }
            break;
        case 0x1: /* text */
        case 0x2: /* binary */
            if (c->msg_op) {
                fail(c, 1002);
                return;
            }
            if (fin) {
                echo_message(c, op, rsv, pl, n);
            } else {
                c->msg_op = op;
                c->msg_rsv1 = rsv;
                buf_append(&c->msg, pl, n);
            }
            break;
        case 0x8: /* close: echo it and finish */
            if (!fin || n > 125 || n == 1) {
                fail(c, 1002);
                return;
            }
            emit_frame(c, 0x8, pl, n);
            c->st = ST_CLOSING;
            c->in.off = c->in.len = 0;
            return;
        case 0x9: /* ping */
            if (!fin || n > 125) {
                fail(c, 1002);
                return;
            }
            emit_frame(c, 0xA, pl, n);
            break;
        case 0xA: /* pong */
            if (!fin || n > 125) {
                fail(c, 1002);
                return;
            }
            break;
        default:
            fail(c, 1002);
            return;
        }
        buf_consume(&c->in, hl + n);
    }
}

/* Write out as much as possible. Returns -1 if the connection was freed. */
static int flush(struct conn *c)
{
    while (buf_used(&c->out) > 0) {
        ssize_t w = io_write(c, c->out.p + c->out.off, buf_used(&c->out));
        if (w == -1)
            break;
        if (w < 0) {
            conn_free(c); /* EPIPE, ECONNRESET, ... */
            return -1;
        }
        buf_consume(&c->out, (size_t)w);
        c->wire_out += (size_t)w;
    }
    size_t pending = buf_used(&c->out);
    if (pending == 0) {
        buf_shrink(&c->out);
        if (c->st == ST_CLOSING) {
            /* all sent: half-close and wait for the peer's EOF so that our
             * close frame is not lost to a RST from unread input */
            shutdown(c->fd, SHUT_WR);
            c->st = ST_DRAIN;
            c->deadline = time(NULL) + CLOSE_LINGER;
            n_draining++;
            set_events(c, EPOLLIN);
            return 0;
        }
    }
    uint32_t ev = 0;
    if (pending)
        ev |= EPOLLOUT;
#ifdef WITH_TLS
    if (c->ssl_want_write)
        ev |= EPOLLOUT;
#endif
    /* back-pressure: stop reading while the peer is not reading */
    int reading = (c->events & EPOLLIN) != 0;
    if (reading ? pending < OUT_HIGH : pending < OUT_LOW)
        ev |= EPOLLIN;
    if (c->st == ST_CLOSING)
        ev &= ~(uint32_t)EPOLLIN;
    set_events(c, ev);
    return 0;
}

#ifdef WITH_TLS
/* Drive the TLS handshake. Returns -1 if the connection was freed. */
static int tls_step(struct conn *c)
{
    int r = SSL_accept(c->ssl);
    if (r == 1) {
        c->st = raw ? ST_OPEN : ST_HANDSHAKE;
        if (log_tls) {
            X509 *peer = SSL_get1_peer_certificate(c->ssl);
            char subj[256] = "none";
            if (peer) {
                X509_NAME_oneline(X509_get_subject_name(peer), subj, sizeof subj);
                X509_free(peer);
            }
            fprintf(stderr, "echo-server: tls %s %s, client certificate %s, %s\n",
                    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl), subj,
                    SSL_session_reused(c->ssl) ? "resumed" : "full");
        }
        return 0;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        set_events(c, EPOLLIN);
        return 0;
    case SSL_ERROR_WANT_WRITE:
        set_events(c, EPOLLIN | EPOLLOUT);
        return 0;
    default:
        if (!quiet) {
            char e[256];
            ERR_error_string_n(ERR_peek_last_error(), e, sizeof e);
            fprintf(stderr, "echo-server: TLS handshake failed: %s\n", e);
        }
        ERR_clear_error();
        conn_free(c);
        return -1;
    }
}
#endif

/* Returns -1 if the connection was freed. */
static int on_readable(struct conn *c)
{
    if (c->st == ST_DRAIN) {
        unsigned char junk[65536];
        ssize_t r = read(c->fd, junk, sizeof junk);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_free(c);
            return -1;
        }
        return 0;
    }
#ifdef WITH_TLS
    if (c->st == ST_TLS) {
        if (tls_step(c) < 0)
            return -1;
        if (c->st == ST_TLS)
            return 0;
    }
    c->ssl_want_write = 0;
    c->ssl_more = 0;
#endif
    struct buf *dst = raw ? &c->out : &c->in; /* --raw: echo without a copy */
    for (;;) {
        size_t want = READ_CHUNK;
        if (c->need > buf_used(&c->in) && c->need - buf_used(&c->in) > want)
            want = c->need - buf_used(&c->in);
        buf_reserve(dst, want);
        ssize_t r = io_read(c, dst->p + dst->len, dst->cap - dst->len);
        if (r == -1)
            break;
        if (r <= 0 && raw && c->st == ST_OPEN) {
            /* --raw: the peer is done sending; echo the rest, then close */
            c->st = ST_CLOSING;
            break;
        }
        if (r <= 0) { /* error, or peer went away without a close handshake */
            conn_free(c);
            return -1;
        }
        dst->len += (size_t)r;
        c->wire_in += (size_t)r;
        if (raw)
            n_bytes_in += (size_t)r, n_bytes_out += (size_t)r;
#ifdef WITH_TLS
        /* TLS: read until OpenSSL wants more from the socket, else epoll may
         * never wake us for records it already holds; but after each
         * READ_CHUNK go and write (main() calls again while ssl_more is set
         * and reading is on) */
        if (!c->ssl)
            break;
        if (buf_used(&c->in) >= READ_CHUNK || buf_used(&c->out) >= READ_CHUNK) {
            c->ssl_more = 1;
            break;
        }
#else
        break;
#endif
    }
    process(c);
    if (buf_used(&c->in) == 0)
        buf_shrink(&c->in);
    return flush(c);
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && !quiet)
                perror("accept4");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (stamps) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            fprintf(stderr, "accept %d %ld.%09ld\n", fd, (long)ts.tv_sec, ts.tv_nsec);
        }
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            die("calloc");
        c->fd = fd;
        c->st = raw ? ST_OPEN : ST_HANDSHAKE;
        c->events = EPOLLIN;
#ifdef WITH_TLS
        if (tls_ctx) {
            c->ssl = SSL_new(tls_ctx);
            if (!c->ssl || !SSL_set_fd(c->ssl, fd))
                die("SSL_new");
            c->st = ST_TLS;
        }
#endif
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
            die("epoll_ctl ADD");
        if ((size_t)fd >= n_conn_slots) {
            size_t ns = n_conn_slots ? n_conn_slots : 64;
            while (ns <= (size_t)fd)
                ns *= 2;
            struct conn **nc = realloc(conns, ns * sizeof *nc);
            if (!nc)
                die("realloc");
            memset(nc + n_conn_slots, 0, (ns - n_conn_slots) * sizeof *nc);
            conns = nc;
            n_conn_slots = ns;
        }
        conns[fd] = c;
        n_conns++;
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *portarg = NULL;
    const char *cert = NULL, *key = NULL, *client_ca = NULL;
    int want_log_tls = 0, tls12 = 0, resume = 0;
    const char *ciphers = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
            quiet = 1;
        else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
            cert = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (strcmp(argv[i], "--client-ca") == 0 && i + 1 < argc)
            client_ca = argv[++i];
        else if (strcmp(argv[i], "--raw") == 0)
            raw = 1;
        else if (strcmp(argv[i], "--stamps") == 0)
            stamps = 1;
        else if (strcmp(argv[i], "--deflate") == 0)
            deflate_on = 1;
        else if (strcmp(argv[i], "--client-window") == 0 && i + 1 < argc)
            client_window = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ciphers") == 0 && i + 1 < argc)
            ciphers = argv[++i];
        else if (strcmp(argv[i], "--tls12") == 0)
            tls12 = 1;
        else if (strcmp(argv[i], "--resume") == 0)
            resume = 1;
        else if (strcmp(argv[i], "--log-tls") == 0)
            want_log_tls = 1;
        else if (!portarg)
            portarg = argv[i];
        else
            portarg = NULL, i = argc;
    }
    if (!portarg) {
        fprintf(stderr, "usage: %s PORT [--quiet] [--raw] [--stamps] [--cert FILE --key FILE "
                "[--client-ca FILE]] [--ciphers LIST] [--log-tls] [--tls12] [--resume]   (PORT 0 = pick one, print it)\n", argv[0]);
        return 64;
    }
    if ((cert || key || client_ca) && !(cert && key)) {
        fprintf(stderr, "echo-server: --cert and --key go together (--client-ca needs both)\n");
        return 64;
    }
#ifndef WITH_DEFLATE
    if (deflate_on) {
        fprintf(stderr, "echo-server: built without permessage-deflate (see bench/deflate)\n");
        return 64;
    }
#endif
#ifdef WITH_TLS
    log_tls = want_log_tls;
    if (cert) {
        tls_ctx = SSL_CTX_new(TLS_server_method());
        if (!tls_ctx)
            die("SSL_CTX_new");
        SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
        if (SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(tls_ctx) != 1) {
            fprintf(stderr, "echo-server: cannot load %s / %s\n", cert, key);
            ERR_print_errors_fp(stderr);
            return 1;
        }
        if (client_ca) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
            if (!names || SSL_CTX_load_verify_locations(tls_ctx, client_ca, NULL) != 1) {
                fprintf(stderr, "echo-server: cannot load client CA %s\n", client_ca);
                ERR_print_errors_fp(stderr);
                return 1;
            }
            SSL_CTX_set_client_CA_list(tls_ctx, names);
            SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_options(tls_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
        /* one read() for many records instead of two per record */
        SSL_CTX_set_read_ahead(tls_ctx, 1);
        SSL_CTX_set_default_read_buffer_len(tls_ctx, 256 * 1024);
        if (ciphers) {
            if (SSL_CTX_set_cipher_list(tls_ctx, ciphers) != 1) {
                fprintf(stderr, "echo-server: bad --ciphers '%s'\n", ciphers);
                return 64;
            }
            SSL_CTX_set_options(tls_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
        }
        if (tls12)
            SSL_CTX_set_max_proto_version(tls_ctx, TLS1_2_VERSION);
        if (resume) {
            static const unsigned char sid_ctx[] = "echo-server";
            /* a session that was made with a client certificate needs a context to resume */
            SSL_CTX_set_session_id_context(tls_ctx, sid_ctx, sizeof sid_ctx - 1);
        } else {
            SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
            SSL_CTX_set_num_tickets(tls_ctx, 0);
            SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET);
        }
    }
#else
    (void)want_log_tls;
    (void)ciphers;
    (void)tls12;
    (void)resume;
    if (cert) {
        fprintf(stderr, "echo-server: built without TLS (rebuild with -DWITH_TLS ... -lssl -lcrypto)\n");
        return 64;
    }
#endif
    char *e;
    long port = strtol(portarg, &e, 10);
    if (*e || port < 0 || port > 65535) {
        fprintf(stderr, "echo-server: bad port '%s'\n", portarg);
        return 64;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0)
        die("bind");
    if (listen(lfd, 128) < 0)
        die("listen");
    socklen_t sl = sizeof sin;
    if (getsockname(lfd, (struct sockaddr *)&sin, &sl) < 0)
        die("getsockname");
    printf("%u\n", ntohs(sin.sin_port));
    fflush(stdout);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le) < 0)
        die("epoll_ctl listen");

    struct epoll_event evs[64];
    while (!stop) {
        int n = epoll_wait(ep, evs, 64, n_draining ? 1000 : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            if (!c) {
                on_accept(lfd);
                continue;
            }
#ifdef WITH_TLS
            if (c->st == ST_TLS) {
                if ((ev & (EPOLLHUP | EPOLLERR)) && !(ev & EPOLLIN)) {
                    conn_free(c);
                    continue;
                }
                on_readable(c); /* drives the handshake, then reads */
                continue;
            }
            if ((ev & EPOLLOUT) && c->ssl_want_write && c->st != ST_DRAIN) {
                if (on_readable(c) < 0)
                    continue;
            }
#endif
            if (ev & EPOLLOUT) {
                if (flush(c) < 0)
                    continue;
            }
            if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if ((ev & (EPOLLHUP | EPOLLERR)) && !(ev & EPOLLIN)) {
                    conn_free(c);
                    continue;
                }
                if (on_readable(c) < 0)
                    continue;
            }
#ifdef WITH_TLS
            /* records OpenSSL already holds raise no epoll event */
            while (c->ssl && c->ssl_more && (c->events & EPOLLIN) && c->st == ST_OPEN)
                if (on_readable(c) < 0)
                    break;
#endif
        }
        if (n_draining) { /* drop lingering closes whose peer never hung up */
            time_t now = time(NULL);
            for (size_t fd = 0; fd < n_conn_slots; fd++)
                if (conns[fd] && conns[fd]->st == ST_DRAIN && now > conns[fd]->deadline)
                    conn_free(conns[fd]);
        }
    }
    if (!quiet) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fprintf(stderr,
                "echo-server: %llu connections, %llu messages echoed, "
                "%llu bytes in, %llu bytes out, cpu %.3fs user %.3fs sys\n",
                n_conns, n_msgs, n_bytes_in, n_bytes_out,
                ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
                ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    }
    return 0;
}
