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
	if (ctx->event && add(iov, &n, &p, end, "WSTETHER_EVENT=%s", ctx->event) < 0)
		return -1;
	if (ctx->url && add(iov, &n, &p, end, "WSTETHER_URL=%s", ctx->url) < 0)
		return -1;
	if (ctx->attempt && add(iov, &n, &p, end, "WSTETHER_ATTEMPT=%u", ctx->attempt) < 0)
		return -1;
	if (ctx->close_code && add(iov, &n, &p, end, "WSTETHER_CLOSE_CODE=%d", ctx->close_code) < 0)
		return -1;
	return n;
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
