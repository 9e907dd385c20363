#ifndef WST_NOTIFY_H
#define WST_NOTIFY_H

#include <stdint.h>

struct ev_loop;

/* sd_notify for Type=notify units; every call is a no-op outside systemd. */
void notify_init(struct ev_loop *loop);
void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_finish(void);

#endif
