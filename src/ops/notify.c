#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <ev.h>

#include "build-config.h"
#include "log.h"

#if WST_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static ev_timer watchdog;
static struct ev_loop *wd_loop;

/* Pinged from the loop itself, so a stalled loop stops the pings. */
static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	sd_notify(0, "WATCHDOG=1");
}

void notify_init(struct ev_loop *loop)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec) {
		double half = (double)usec / 2e6;

		wd_loop = loop;
		ev_timer_init(&watchdog, watchdog_cb, half, half);
		ev_timer_start(loop, &watchdog);
		sd_notify(0, "WATCHDOG=1");
		log_msg(LOG_DEBUG, "watchdog: pinging every %.3f s", half);
	}
}

void notify_ready(void)
{
	sd_notify(0, "READY=1");
}

void notify_reloading(void)
{
	struct timespec ts;
	char buf[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	sd_notify(0, buf);
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void notify_status(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "STATUS=");

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	sd_notify(0, buf);
}

void notify_finish(void)
{
	if (wd_loop)
		ev_timer_stop(wd_loop, &watchdog);
}
#else
void notify_init(struct ev_loop *loop) { (void)loop; }
void notify_ready(void) {}
void notify_reloading(void) {}
void notify_stopping(void) {}
void notify_status(const char *fmt, ...) { (void)fmt; }
void notify_finish(void) {}
#endif
