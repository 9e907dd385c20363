#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libwebsockets.h>

#include "build-config.h"
#include "journal.h"

static int cur_level = LOG_INFO;
static int use_journal;

static const char *const names[] = {
    [LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

int log_level_parse(const char *name)
{
	for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

static const char *log_level_name(int level)
{
	if (level < LOG_ERR)
		return "error";
	if (level > LOG_DEBUG)
		return "debug";
	return names[level];
}

/* journald's stream is used only when our stderr is the very stream it names. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	return js && sscanf(js, "%lu:%lu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	       st.st_dev == dev && st.st_ino == ino;
}

int log_enabled(int level)
{
	return level <= cur_level;
}

static void emit(int level, const struct log_ctx *ctx, const char *msg)
{
	if (use_journal && journal_send(level, ctx, msg) == 0)
		return;
	fprintf(stderr, "wstether: %s: %s\n", log_level_name(level), msg);
}

/*
 * lws reports failures we classify and log ourselves, so its lines are
 * detail: debug level only. Its libev glue logs NOTICE on every watcher
 * change, so even then we take ERR and WARN only.
 */
static void lws_emit(int lws_level, const char *line)
{
	char buf[512];
	size_t n;

	(void)lws_level;
	if (!log_enabled(LOG_DEBUG))
		return;
	snprintf(buf, sizeof(buf), "lws: %s", line);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	emit(LOG_DEBUG, &(struct log_ctx){.event = "lws"}, buf);
}

static void route_lws(void)
{
	int mask = log_enabled(LOG_DEBUG) ? (LLL_ERR | LLL_WARN) : 0;

	lws_set_log_level(mask, lws_emit);
}

void log_init(int level)
{
	cur_level = level;
	use_journal = WST_HAVE_SYSTEMD && stderr_is_journal();
	route_lws();
}

void log_set_level(int level)
{
	cur_level = level;
	route_lws();
}

static __attribute__((format(printf, 4, 0))) void vlog(int level, const struct log_ctx *ctx,
						       int err, const char *fmt, va_list ap)
{
	char buf[2048];
	int n;

	if (!log_enabled(level))
		return;
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	if (err && (size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(err));
	emit(level, ctx, buf);
}

/*
 * Events are a contract (alerts select on them); source files are not, so
 * a file that moves keeps its event here.
 */
const char *log_source_event(const char *src)
{
	static const struct {
		const char *prefix, *event;
	} map[] = {
	    {"bridge", "bridge"},    {"peer", "bridge"},     {"exec", "exec"},
	    {"stdio", "stdio"},	     {"outbox", "queue"},    {"queue", "queue"},
	    {"spool", "spool"},	     {"control", "control"}, {"tls", "tls"},
	    {"netwatch", "network"}, {"link", "link"},	     {"dial", "link"},
	    {"resolve", "link"},     {"tunnel", "link"},     {"proxy", "link"},
	    {"wsrx", "link"},	     {"pmdeflate", "link"},  {"hello", "link"},
	};
	const char *base = strrchr(src, '/');

	base = base ? base + 1 : src;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strncmp(base, map[i].prefix, strlen(map[i].prefix)))
			return map[i].event;
	return "daemon";
}

void log_src(const char *src, bool with_errno, int level, const char *fmt, ...)
{
	struct log_ctx ctx = {.event = log_source_event(src)};
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(level, &ctx, with_errno ? err : 0, fmt, ap);
	va_end(ap);
	errno = err;
}

void log_event(int level, const struct log_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, ctx, 0, fmt, ap);
	va_end(ap);
}

int errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}
