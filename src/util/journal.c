#include "journal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "log.h"

#if WST_HAVE_SYSTEMD
/* CODE_FILE/LINE would name this file for every entry: no information */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#endif

static __attribute__((format(printf, 5, 6))) int add(struct iovec *iov, int *n, char **p, char *end,
						     const char *fmt, ...)
{
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(*p, (size_t)(end - *p), fmt, ap);
	va_end(ap);
	if (len < 0 || len >= end - *p)
		return -1;
	iov[*n].iov_base = *p;
	iov[*n].iov_len = (size_t)len;
	(*n)++;
	*p += len + 1;
	return 0;
}

/* One MESSAGE_ID per kind of entry; systemd/wstether.catalog explains each. */
static const struct {
	const char *event, *variant, *id;
} ids[] = {
	{ "connecting", NULL, "fc7d3d8f9ac74aa88713444b6fb89fc5" },
	{ "connect", NULL, "c0c1ed73236f4415b31a091c8f2289ec" },
	{ "disconnect", "down", "5c82dc0be7e24f5296f15fdb74a57722" },
	{ "disconnect", "failed", "6ac5c82e574440edb969f6a06d6efe29" },
	{ "disconnect", NULL, "8e547e40dfce406c922df4a82526da60" },
	{ "retry", NULL, "0b3248ec44bd4e5fbd5ab020f644c557" },
	{ "reload", "ok", "08a80e79b1854140bcfa294a13bd18c6" },
	{ "reload", "failed", "595618e684c14bf8ba8e6a80cd213694" },
	{ "reload", NULL, "7e0a34bdbcab451abdfd1e5035b60c21" },
	{ "stop", NULL, "5437d0338b9b45449d1ed0616b9e53e7" },
	{ "pause", NULL, "ca8aca38b8a44fcbaefaf4b323394423" },
	{ "resume", NULL, "c6f33d12de5f4c30a5f16ea367c9fbec" },
	{ "rotate", NULL, "9e76af4d1c3c4568949210da196ea2bf" },
	{ "daemon", NULL, "17e7d9035d594ce1a35b515dc4afc8d3" },
	{ "link", NULL, "83eeff519e524d4fa3b76a72d4c93143" },
	{ "network", NULL, "0814652456d645b48bbb48ee9ce437a0" },
	{ "tls", NULL, "bb7055ce8be7417e99a230050444f9af" },
	{ "queue", NULL, "cd5d57a9c72a4523ae42c5a0d73b6e7a" },
	{ "spool", NULL, "b8d21c9dbfd242949f8b3705489900e3" },
	{ "bridge", NULL, "b1a5f1b10fd34634a5200e7ee9d93e9f" },
	{ "exec", NULL, "2cc0adb700ca45e394da77184f5244a0" },
	{ "stdio", NULL, "52aedc759ecb401db7b7775bab6abdad" },
	{ "control", NULL, "35bf077a7c34480fb99164c8700f2360" },
	{ "lws", NULL, "16222d1278a544c5a1fdf1fdf1ca0dc6" },
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

/* The link's fields: what alerting selects on besides the event. */
static int link_fields(const struct log_ctx *ctx, struct iovec *iov, int *n, char **p, char *end)
{
	if (ctx->attempt && add(iov, n, p, end, "WSTETHER_ATTEMPT=%u", ctx->attempt) < 0)
		return -1;
	if (ctx->close_code && add(iov, n, p, end, "WSTETHER_CLOSE_CODE=%d", ctx->close_code) < 0)
		return -1;
	if (ctx->close_code && add(iov, n, p, end, "WSTETHER_CLOSE_BY=%s",
				   ctx->close_ours ? "wstether" : "server") < 0)
		return -1;
	if (ctx->link && add(iov, n, p, end, "WSTETHER_LINK=%s", ctx->link) < 0)
		return -1;
	if (ctx->cause && add(iov, n, p, end, "WSTETHER_CAUSE=%s", ctx->cause) < 0)
		return -1;
	if (ctx->http_status &&
	    add(iov, n, p, end, "WSTETHER_HTTP_STATUS=%d", ctx->http_status) < 0)
		return -1;
	if (ctx->result && add(iov, n, p, end, "WSTETHER_RESULT=%s", ctx->result) < 0)
		return -1;
	return 0;
}

int journal_fields(int level, const struct log_ctx *ctx, const char *msg,
		   struct iovec iov[JOURNAL_MAX_FIELDS], char *buf, size_t buflen)
{
	char *p = buf, *end = buf + buflen;
	int n = 0;

	if (add(iov, &n, &p, end, "PRIORITY=%d", level) < 0 ||
	    add(iov, &n, &p, end, "SYSLOG_IDENTIFIER=wstether") < 0 ||
	    add(iov, &n, &p, end, "MESSAGE=%s", msg) < 0)
		return -1;
	if (!ctx)
		return n;
	if (journal_message_id(ctx) &&
	    add(iov, &n, &p, end, "MESSAGE_ID=%s", journal_message_id(ctx)) < 0)
		return -1;
	if (ctx->event && add(iov, &n, &p, end, "WSTETHER_EVENT=%s", ctx->event) < 0)
		return -1;
	if (ctx->url && add(iov, &n, &p, end, "WSTETHER_URL=%s", ctx->url) < 0)
		return -1;
	return link_fields(ctx, iov, &n, &p, end) < 0 ? -1 : n;
}

int journal_send(int level, const struct log_ctx *ctx, const char *msg)
{
#if WST_HAVE_SYSTEMD
	struct iovec iov[JOURNAL_MAX_FIELDS];
	char buf[4096];
	int n = journal_fields(level, ctx, msg, iov, buf, sizeof(buf));

	if (n < 0)
		return -1;
	return sd_journal_sendv(iov, n) < 0 ? -1 : 0;
#else
	(void)level;
	(void)ctx;
	(void)msg;
	return -1;
#endif
}
