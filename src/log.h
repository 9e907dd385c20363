#ifndef WST_LOG_H
#define WST_LOG_H

#include <stddef.h>
#include <syslog.h>

/* Levels are syslog priorities, so journald gets them unchanged. */
int log_level_parse(const char *name);
const char *log_level_name(int level);

void log_init(int level);
void log_set_level(int level);
int log_enabled(int level);

/* Optional structured context for the next messages (journald fields). */
struct log_ctx {
	const char *url;
	const char *event;
	unsigned attempt;
	int close_code;
};

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As log_msg, with ": strerror(errno)" appended. */
void log_errno(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_event(int level, const struct log_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* An error for the caller to report, written into err; returns -1 for `return errf(...)`. */
int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Route libwebsockets' own log through ours. */
void log_route_lws(void);

#endif
