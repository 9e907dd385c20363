#ifndef WST_LOG_H
#define WST_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/* Levels are syslog priorities, so journald gets them unchanged. */
int log_level_parse(const char *name);

void log_init(int level);
void log_set_level(int level);
int log_enabled(int level);

/*
 * Structured context of one line (journald fields). A line without one
 * takes its event from the source file that logs it (log_source_event).
 */
struct log_ctx {
	const char *url;
	const char *event; /* WSTETHER_EVENT; with link or result, it picks the MESSAGE_ID */
	unsigned attempt;
	int close_code;
	bool close_ours;   /* close_code is the one wstether sent */
	const char *link;  /* up, down or failed: the link's change, as `watch` names it */
	const char *cause; /* link_fail_name() of a link that ended */
	int http_status;
	const char *result; /* reload: ok or failed */
};

/* The event of a line logged without context from source file src (__FILE__). */
const char *log_source_event(const char *src);

#define log_msg(...) log_src(__FILE__, false, __VA_ARGS__)
/* As log_msg, with ": strerror(errno)" appended. */
#define log_errno(...) log_src(__FILE__, true, __VA_ARGS__)
/* Both keep errno. */
void log_src(const char *src, bool with_errno, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_event(int level, const struct log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error for the caller to report, written into err; returns -1 for `return errf(...)`. */
int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
