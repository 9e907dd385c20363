#ifndef WST_JOURNAL_H
#define WST_JOURNAL_H

#include <stddef.h>
#include <sys/uio.h>

struct log_ctx;

#define JOURNAL_MAX_FIELDS 16

/*
 * Build journald fields (PRIORITY, MESSAGE, SYSLOG_IDENTIFIER, WSTETHER_*)
 * into iov, with their text in buf. Returns the number of fields, or -1
 * when buf is too small.
 */
int journal_fields(int level, const struct log_ctx *ctx, const char *msg,
		   struct iovec iov[JOURNAL_MAX_FIELDS], char *buf, size_t buflen);

/* The MESSAGE_ID of an entry with this context, or NULL. */
const char *journal_message_id(const struct log_ctx *ctx);

/* 0 when sent; -1 when journald is unavailable (caller falls back to stderr). */
int journal_send(int level, const struct log_ctx *ctx, const char *msg);

#endif
