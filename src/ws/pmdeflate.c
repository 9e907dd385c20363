#include "pmdeflate.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "buf.h"
#include "log.h"

/*
 * zlib's own defaults at a 15-bit window, as Node's ws uses them: the
 * compressor holds 2^(w+2) + 2^(m+9) bytes (256 KiB at w=15, m=8) and the
 * inflater 2^w + ~7 KiB. Smaller windows get a smaller memory level: see
 * mem_level().
 */
#define PMD_MEM_LEVEL 8
#define PMD_MAX_BITS 15
/* Output buffers above this are freed between messages instead of kept. */
#define PMD_KEEP_BUF (1024 * 1024)

const struct pmd_offer pmd_default_offer = {.client_max_window_bits = true};

/* ---- negotiation (RFC 6455 9.1 grammar, RFC 7692 7 rules) ---- */

struct lex {
	const char *s;
	size_t i;
};

#define TOKEN_MAX 64

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void ows(struct lex *x)
{
	while (x->s[x->i] == ' ' || x->s[x->i] == '\t')
		x->i++;
}

/* Reads a token into out; returns its length, 0 if none, -1 if too long. */
static int token(struct lex *x, char *out)
{
	size_t n = 0;

	while (is_tchar((unsigned char)x->s[x->i])) {
		if (n + 1 >= TOKEN_MAX)
			return -1;
		out[n++] = x->s[x->i++];
	}
	out[n] = '\0';
	return (int)n;
}

/* A parameter value: a token or a quoted-string whose content is a token (RFC 6455 9.1). */
static int value(struct lex *x, char *out)
{
	size_t n = 0;

	if (x->s[x->i] != '"')
		return token(x, out) > 0 ? 0 : -1;
	x->i++;
	for (;;) {
		unsigned char c = (unsigned char)x->s[x->i];

		if (c == '\\') {
			c = (unsigned char)x->s[++x->i];
			if (!c)
				return -1;
		} else if (c == '"') {
			x->i++;
			break;
		}
		if (!is_tchar(c) || n + 1 >= TOKEN_MAX)
			return -1;
		out[n++] = (char)c;
		x->i++;
	}
	out[n] = '\0';
	return n ? 0 : -1;
}

/* RFC 7692 7.1.2: a decimal integer 8..15 without leading zeroes. */
static int window_bits(const char *v)
{
	if (v[0] == '8' || v[0] == '9')
		return v[1] ? -1 : v[0] - '0';
	if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && !v[2])
		return 10 + v[1] - '0';
	return -1;
}

/* The parameters a response may carry; params() notes each one seen. */
enum { SNCT, CNCT, SMWB, CMWB, NPARAMS };
static const char *const param_names[NPARAMS] = {
    "server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
    "client_max_window_bits"};

/* One parameter of the accepted element; name and val ("" when absent) are tokens. */
static int param(const struct pmd_offer *o, struct pmd_params *p, bool seen[NPARAMS],
		 const char *name, const char *val, bool has_val, char *why, size_t wl)
{
	int i = 0, bits;

	while (i < NPARAMS && strcmp(name, param_names[i]))
		i++;
	if (i == NPARAMS)
		return errf(why, wl, "unknown parameter %s", name);
	if (seen[i])
		return errf(why, wl, "%s appears twice", name);
	seen[i] = true;
	if (i == SNCT || i == CNCT) {
		if (has_val)
			return errf(why, wl, "%s must not have a value (got '%s')", name, val);
		*(i == SNCT ? &p->server_no_context_takeover : &p->client_no_context_takeover) =
		    true;
		return 0;
	}
	if (!has_val)
		return errf(why, wl, "%s needs a value 8..15 in a response", name);
	bits = window_bits(val);
	if (bits < 0)
		return errf(why, wl, "%s=%s is not a number 8..15", name, val);
	if (i == CMWB) {
		if (!o->client_max_window_bits)
			return errf(why, wl, "client_max_window_bits was not offered");
		p->client_max_window_bits = bits;
	} else {
		if (o->server_max_window_bits && bits > o->server_max_window_bits)
			return errf(why, wl, "server_max_window_bits=%d exceeds the %d offered",
				    bits, o->server_max_window_bits);
		p->server_max_window_bits = bits;
	}
	return 0;
}

/* The parameters of the accepted element, up to the ',' or the end. */
static int params(struct lex *x, const struct pmd_offer *o, struct pmd_params *p, char *why,
		  size_t wl)
{
	bool seen[NPARAMS] = {false};
	char name[TOKEN_MAX], val[TOKEN_MAX];

	for (;;) {
		bool has_val = false;

		ows(x);
		if (x->s[x->i] != ';')
			break;
		x->i++;
		ows(x);
		if (token(x, name) <= 0)
			return errf(why, wl, "a parameter name is not a token");
		ows(x);
		val[0] = '\0';
		if (x->s[x->i] == '=') {
			x->i++;
			ows(x);
			if (value(x, val) < 0)
				return errf(why, wl, "the value of %s is not a token", name);
			has_val = true;
		}
		if (param(o, p, seen, name, val, has_val, why, wl) < 0)
			return -1;
	}
	/* RFC 7692 7.1.2.1 and 7.1.1.1: a server that accepts these must say so */
	if (o->server_max_window_bits && !seen[SMWB])
		return errf(why, wl, "server_max_window_bits=%d was offered but not answered",
			    o->server_max_window_bits);
	if (o->server_no_context_takeover && !seen[SNCT])
		return errf(why, wl, "server_no_context_takeover was offered but not answered");
	if (o->client_no_context_takeover)
		p->client_no_context_takeover = true;
	return 0;
}

int pmd_negotiate(const struct pmd_offer *o, const char *header, struct pmd_params *p, char *why,
		  size_t wl)
{
	struct lex x = {header ? header : "", 0};
	char name[TOKEN_MAX];
	int accepted = 0;

	*p = (struct pmd_params){.client_max_window_bits = PMD_MAX_BITS,
				 .server_max_window_bits = PMD_MAX_BITS};
	for (;;) {
		ows(&x);
		if (x.s[x.i] == ',') { /* RFC 7230 7: empty list elements are allowed */
			x.i++;
			continue;
		}
		if (!x.s[x.i])
			break;
		if (token(&x, name) <= 0)
			return errf(why, wl, "Sec-WebSocket-Extensions is not a list of tokens");
		if (!o || strcmp(name, PMD_EXTENSION))
			return errf(why, wl, "the server answered with extension %s, not offered",
				    name);
		if (accepted++)
			return errf(why, wl, "the server accepted %s twice", PMD_EXTENSION);
		if (params(&x, o, p, why, wl) < 0)
			return -1;
		ows(&x);
		if (x.s[x.i] && x.s[x.i] != ',')
			return errf(why, wl, "Sec-WebSocket-Extensions is malformed after %s",
				    PMD_EXTENSION);
	}
	return accepted;
}

size_t pmd_offer_header(const struct pmd_offer *o, char *buf, size_t cap)
{
	char smwb[40] = "";
	int n;

	if (o->server_max_window_bits)
		snprintf(smwb, sizeof(smwb), "; server_max_window_bits=%d",
			 o->server_max_window_bits);
	n = snprintf(buf, cap, "%s%s%s%s%s", PMD_EXTENSION,
		     o->client_max_window_bits ? "; client_max_window_bits" : "",
		     o->server_no_context_takeover ? "; server_no_context_takeover" : "",
		     o->client_no_context_takeover ? "; client_no_context_takeover" : "", smwb);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* ---- compressor and inflater ---- */

struct pmd {
	struct pmd_params p;
	size_t max_message;
	z_stream def, inf;
	bool def_ready, inf_ready;
	size_t zlib_bytes;

	unsigned char *out; /* compressed payload */
	size_t out_cap;

	unsigned char *msg; /* inflated message, at most max_message bytes */
	size_t msg_len, msg_cap;
	bool in_msg, ended;
	char err[96];

	unsigned long long tx_plain, tx_wire, rx_wire, rx_plain;
};

/* zlib's allocations, counted so that status can report them */
union zhdr {
	size_t n;
	max_align_t align;
};

static voidpf zalloc(voidpf opaque, uInt items, uInt size)
{
	struct pmd *d = opaque;
	union zhdr *h;
	size_t n;

	if (size && items > (SIZE_MAX - sizeof(*h)) / size)
		return Z_NULL;
	n = (size_t)items * size;
	h = malloc(sizeof(*h) + n);
	if (!h)
		return Z_NULL;
	h->n = n;
	d->zlib_bytes += n;
	return h + 1;
}

static void zfree(voidpf opaque, voidpf ptr)
{
	struct pmd *d = opaque;
	union zhdr *h;

	if (!ptr)
		return;
	h = (union zhdr *)ptr - 1;
	d->zlib_bytes -= h->n;
	free(h);
}

struct pmd *pmd_create(const struct pmd_params *p, size_t max_message)
{
	struct pmd *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->p = *p;
	d->max_message = max_message;
	d->def.zalloc = d->inf.zalloc = zalloc;
	d->def.zfree = d->inf.zfree = zfree;
	d->def.opaque = d->inf.opaque = d;
	return d;
}

void pmd_destroy(struct pmd *d)
{
	if (!d)
		return;
	if (d->def_ready)
		deflateEnd(&d->def);
	if (d->inf_ready)
		inflateEnd(&d->inf);
	free(d->out);
	free(d->msg);
	free(d);
}

size_t pmd_compress_bound(size_t len)
{
	/* deflateBound's stored-block worst case, plus the flush's empty block */
	return len + (len >> 12) + (len >> 14) + (len >> 25) + 64;
}

/*
 * zlib slides its hash table (2^(m+7) entries) every time the window moves
 * on, each 2^w - 262 bytes of input, and clears it on every deflateReset.
 * At m=8 and a 9-bit window that is 32768 entries per 250 bytes: most of the
 * compressor's time went there, and a server that asked for a 9-bit window
 * (Autobahn 13.3/13.5/13.7) saw us take twice as long as Python's websockets,
 * which compresses at m=5 (issue 17). Eight entries per window byte keep the
 * slide cheap; the ratio moved by under 2% (bench/pmd-window.c).
 */
static int mem_level(int bits)
{
	return bits - 4 < PMD_MEM_LEVEL ? bits - 4 : PMD_MEM_LEVEL;
}

static int deflate_init(struct pmd *d)
{
	int bits = d->p.client_max_window_bits, strategy = Z_DEFAULT_STRATEGY;

	/*
	 * zlib cannot make a raw stream with a 256-byte window. Huffman-only
	 * output has no back-references at all, so it honours any window.
	 */
	if (bits < 9) {
		bits = 9;
		strategy = Z_HUFFMAN_ONLY;
	}
	if (deflateInit2(&d->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, mem_level(bits),
			 strategy) != Z_OK)
		return -1;
	d->def_ready = true;
	return 0;
}

int pmd_compress(struct pmd *d, const void *in, size_t len, const unsigned char **out,
		 size_t *out_len)
{
	size_t need = pmd_compress_bound(len), n;
	int rc;

	if (len < PMD_MIN_COMPRESS || len > UINT32_MAX / 2)
		return 0;
	if (d->out_cap > PMD_KEEP_BUF && need <= PMD_KEEP_BUF) {
		free(d->out);
		d->out = NULL;
		d->out_cap = 0;
	}
	/* nothing touched the stream yet: the message can still go out plain */
	if ((!d->def_ready && deflate_init(d) < 0) || mem_reserve(&d->out, &d->out_cap, need) < 0)
		return 0;
	d->def.next_in = (unsigned char *)(uintptr_t)in;
	d->def.avail_in = (uInt)len;
	d->def.next_out = d->out;
	d->def.avail_out = (uInt)d->out_cap;
	for (;;) {
		rc = deflate(&d->def, Z_SYNC_FLUSH);
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return -1;
		if (d->def.avail_in == 0 && d->def.avail_out > 0)
			break;
		n = d->out_cap - d->def.avail_out;
		if (mem_reserve(&d->out, &d->out_cap, d->out_cap * 2) < 0)
			return -1;
		d->def.next_out = d->out + n;
		d->def.avail_out = (uInt)(d->out_cap - n);
	}
	n = d->out_cap - d->def.avail_out;
	/* RFC 7692 7.2.1: the flush ends in 00 00 ff ff, which is not sent */
	if (n < 4 || memcmp(d->out + n - 4, "\x00\x00\xff\xff", 4))
		return -1;
	n -= 4;
	if (d->p.client_no_context_takeover) {
		deflateReset(&d->def);
		if (n >= len)
			return 0; /* no history to keep in step: plain is smaller */
	}
	d->tx_plain += len;
	d->tx_wire += n;
	*out = d->out;
	*out_len = n;
	return 1;
}

static enum pmd_status corrupt(struct pmd *d, const char *what)
{
	snprintf(d->err, sizeof(d->err), "%s", what ? what : "invalid deflate data");
	return PMD_CORRUPT;
}

/* Room for more output: grow up to max_message, never beyond. */
static int make_room(struct pmd *d)
{
	size_t ncap = d->msg_cap ? d->msg_cap * 2 : 4096;

	return mem_reserve(&d->msg, &d->msg_cap, ncap < d->max_message ? ncap : d->max_message);
}

/*
 * At the cap: one byte of scratch says whether the stream holds more output.
 * If it does, the message is too big, and nothing was allocated for it.
 */
static enum pmd_status probe(struct pmd *d, int *rc)
{
	unsigned char scratch;

	d->inf.next_out = &scratch;
	d->inf.avail_out = 1;
	*rc = inflate(&d->inf, Z_SYNC_FLUSH);
	if (d->inf.avail_out == 0)
		return PMD_TOO_BIG;
	return PMD_OK;
}

static enum pmd_status feed(struct pmd *d, const unsigned char *in, size_t len, bool trailer)
{
	enum pmd_status st;
	int rc;

	if (d->ended) /* RFC 7692 7.2.3.4 allows BFINAL; nothing may follow it but our trailer */
		return len && !trailer ? corrupt(d, "data after the final deflate block") : PMD_OK;
	d->inf.next_in = (unsigned char *)(uintptr_t)in;
	d->inf.avail_in = (uInt)len;
	for (;;) {
		if (d->msg_len == d->msg_cap && d->msg_cap < d->max_message && make_room(d) < 0)
			return PMD_NOMEM;
		if (d->msg_len == d->msg_cap) {
			if ((st = probe(d, &rc)) != PMD_OK)
				return st;
		} else {
			d->inf.next_out = d->msg + d->msg_len;
			d->inf.avail_out = (uInt)(d->msg_cap - d->msg_len);
			rc = inflate(&d->inf, Z_SYNC_FLUSH);
			d->msg_len = d->msg_cap - d->inf.avail_out;
		}
		if (rc == Z_STREAM_END) {
			d->ended = true;
			return d->inf.avail_in && !trailer
				   ? corrupt(d, "data after the final deflate block")
				   : PMD_OK;
		}
		if (rc == Z_MEM_ERROR)
			return PMD_NOMEM;
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return corrupt(d, d->inf.msg);
		if (d->inf.avail_in == 0 && d->inf.avail_out > 0)
			return PMD_OK;
		if (rc == Z_BUF_ERROR && d->inf.avail_out > 0)
			return corrupt(d, "deflate stream stalled");
	}
}

/* Between messages: forget the history unless the server keeps it. */
static enum pmd_status end_message(struct pmd *d)
{
	unsigned char *win;
	uInt n = 0;
	int rc;

	if (d->p.server_no_context_takeover)
		return inflateReset(&d->inf) == Z_OK ? PMD_OK : PMD_NOMEM;
	if (!d->ended)
		return PMD_OK;
	/* a BFINAL block ended the stream: carry its window into a fresh one */
	win = malloc((size_t)1 << PMD_MAX_BITS);
	if (!win)
		return PMD_NOMEM;
	rc = inflateGetDictionary(&d->inf, win, &n);
	if (rc == Z_OK)
		rc = inflateReset(&d->inf);
	if (rc == Z_OK && n)
		rc = inflateSetDictionary(&d->inf, win, n);
	free(win);
	return rc == Z_OK ? PMD_OK : PMD_NOMEM;
}

enum pmd_status pmd_inflate(struct pmd *d, const void *in, size_t len, bool fin)
{
	static const unsigned char trailer[4] = {0x00, 0x00, 0xff, 0xff};
	enum pmd_status st;

	if (!d->in_msg) {
		d->in_msg = true;
		d->ended = false;
		d->msg_len = 0;
		d->err[0] = '\0';
		if (d->msg_cap > PMD_KEEP_BUF) {
			free(d->msg);
			d->msg = NULL;
			d->msg_cap = 0;
		}
	}
	if (!d->inf_ready) {
		/* zlib before 1.2.9 compressed with 9 bits when asked for 8; a larger window reads
		 * both */
		int bits = d->p.server_max_window_bits < 9 ? 9 : d->p.server_max_window_bits;

		if (inflateInit2(&d->inf, -bits) != Z_OK)
			return PMD_NOMEM;
		d->inf_ready = true;
	}
	if (len > UINT32_MAX)
		return PMD_TOO_BIG;
	d->rx_wire += len;
	st = feed(d, in, len, false);
	if (st == PMD_OK && fin)
		st = feed(d, trailer, sizeof(trailer), true);
	if (st == PMD_OK && fin)
		st = end_message(d);
	if (fin || st != PMD_OK)
		d->in_msg = false;
	if (st == PMD_OK && fin)
		d->rx_plain += d->msg_len;
	return st;
}

const unsigned char *pmd_message(const struct pmd *d, size_t *len)
{
	*len = d->msg_len;
	return d->msg ? d->msg : (const unsigned char *)"";
}

const char *pmd_error(const struct pmd *d)
{
	return d->err;
}

void pmd_report(const struct pmd *d, struct pmd_report *r)
{
	r->zlib_bytes = d->zlib_bytes;
	r->buffer_bytes = d->out_cap + d->msg_cap;
	r->tx_plain = d->tx_plain;
	r->tx_wire = d->tx_wire;
	r->rx_wire = d->rx_wire;
	r->rx_plain = d->rx_plain;
}
