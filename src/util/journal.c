#include "journal.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "log.h"

#if WST_HAVE_SYSTEMD
/* CODE_FILE/LINE would name this file for every entry: no information */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#endif

struct fields {
	struct iovec *iov;
	int n;
	char *p, *end; /* the free part of the text buffer */
	bool full;     /* a field did not fit: journal_fields fails */
};

/* One field, when `when` holds. */
static __attribute__((format(printf, 3, 4))) void add(struct fields *f, bool when, const char *fmt,
						      ...)
{
	va_list ap;
	int len;

	if (!when || f->full)
		return;
	va_start(ap, fmt);
	len = vsnprintf(f->p, (size_t)(f->end - f->p), fmt, ap);
	va_end(ap);
	if (len < 0 || len >= f->end - f->p) {
		f->full = true;
		return;
	}
	f->iov[f->n++] = (struct iovec){.iov_base = f->p, .iov_len = (size_t)len};
	f->p += len + 1;
}

/* One MESSAGE_ID per kind of entry; systemd/wstether.catalog explains each. */
static const struct {
	const char *event, *variant, *id;
} ids[] = {
    {"connecting", NULL, "fc7d3d8f9ac74aa88713444b6fb89fc5"},
    {"connect", NULL, "c0c1ed73236f4415b31a091c8f2289ec"},
    {"disconnect", "down", "5c82dc0be7e24f5296f15fdb74a57722"},
    {"disconnect", "failed", "6ac5c82e574440edb969f6a06d6efe29"},
    {"disconnect", NULL, "8e547e40dfce406c922df4a82526da60"},
    {"retry", NULL, "0b3248ec44bd4e5fbd5ab020f644c557"},
    {"reload", "ok", "08a80e79b1854140bcfa294a13bd18c6"},
    {"reload", "failed", "595618e684c14bf8ba8e6a80cd213694"},
    {"reload", NULL, "7e0a34bdbcab451abdfd1e5035b60c21"},
    {"stop", NULL, "5437d0338b9b45449d1ed0616b9e53e7"},
    {"pause", NULL, "ca8aca38b8a44fcbaefaf4b323394423"},
    {"resume", NULL, "c6f33d12de5f4c30a5f16ea367c9fbec"},
    {"rotate", NULL, "9e76af4d1c3c4568949210da196ea2bf"},
    {"daemon", NULL, "17e7d9035d594ce1a35b515dc4afc8d3"},
    {"link", NULL, "83eeff519e524d4fa3b76a72d4c93143"},
    {"network", NULL, "0814652456d645b48bbb48ee9ce437a0"},
    {"tls", NULL, "bb7055ce8be7417e99a230050444f9af"},
    {"queue", NULL, "cd5d57a9c72a4523ae42c5a0d73b6e7a"},
    {"spool", NULL, "b8d21c9dbfd242949f8b3705489900e3"},
    {"bridge", NULL, "b1a5f1b10fd34634a5200e7ee9d93e9f"},
    {"exec", NULL, "2cc0adb700ca45e394da77184f5244a0"},
    {"stdio", NULL, "52aedc759ecb401db7b7775bab6abdad"},
    {"control", NULL, "35bf077a7c34480fb99164c8700f2360"},
    {"lws", NULL, "16222d1278a544c5a1fdf1fdf1ca0dc6"},
};

const char *journal_message_id(const struct log_ctx *ctx)
{
	const char *variant = ctx->link ? ctx->link : ctx->result;

	for (size_t i = 0; ctx->event && i < sizeof(ids) / sizeof(ids[0]); i++)
		if (!strcmp(ids[i].event, ctx->event) &&
		    (!ids[i].variant || (variant && !strcmp(ids[i].variant, variant))))
			return ids[i].id;
	return NULL;
}

int journal_fields(int level, const struct log_ctx *ctx, const char *msg,
		   struct iovec iov[JOURNAL_MAX_FIELDS], char *buf, size_t buflen)
{
	struct fields f = {iov, 0, buf, buf + buflen, false};
	const char *id = ctx ? journal_message_id(ctx) : NULL;

	add(&f, true, "PRIORITY=%d", level);
	add(&f, true, "SYSLOG_IDENTIFIER=wstether");
	add(&f, true, "MESSAGE=%s", msg);
	if (!ctx)
		return f.full ? -1 : f.n;
	add(&f, id, "MESSAGE_ID=%s", id);
	add(&f, ctx->event, "WSTETHER_EVENT=%s", ctx->event);
	add(&f, ctx->url, "WSTETHER_URL=%s", ctx->url);
	/* the link's fields: what alerting selects on besides the event */
	add(&f, ctx->attempt, "WSTETHER_ATTEMPT=%u", ctx->attempt);
	add(&f, ctx->close_code, "WSTETHER_CLOSE_CODE=%d", ctx->close_code);
	add(&f, ctx->close_code, "WSTETHER_CLOSE_BY=%s", ctx->close_ours ? "wstether" : "server");
	add(&f, ctx->link, "WSTETHER_LINK=%s", ctx->link);
	add(&f, ctx->cause, "WSTETHER_CAUSE=%s", ctx->cause);
	add(&f, ctx->http_status, "WSTETHER_HTTP_STATUS=%d", ctx->http_status);
	add(&f, ctx->result, "WSTETHER_RESULT=%s", ctx->result);
	return f.full ? -1 : f.n;
}

int journal_send(int level, const struct log_ctx *ctx, const char *msg)
{
#if WST_HAVE_SYSTEMD
	struct iovec iov[JOURNAL_MAX_FIELDS];
	char buf[4096];
	int n = journal_fields(level, ctx, msg, iov, buf, sizeof(buf));

	return n < 0 || sd_journal_sendv(iov, n) < 0 ? -1 : 0;
#else
	(void)level;
	(void)ctx;
	(void)msg;
	return -1;
#endif
}
