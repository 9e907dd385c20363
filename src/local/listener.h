#ifndef WST_LISTENER_H
#define WST_LISTENER_H

#include <stddef.h>

#include <ev.h>

/*
 * A Unix stream socket that accepts clients on the loop: the bridge's and
 * the control socket's. Each accepted fd (non-blocking, close-on-exec) goes
 * to accepted(), which owns it from then on.
 */
struct listener {
	struct ev_loop *loop;
	ev_io w;
	int fd;
	char path[108];
	void (*accepted)(void *ud, int fd);
	void *ud;
};

/* Listen at path with mode (unix_listen). -1: err names the path and what to do. */
int listener_open(struct listener *li, struct ev_loop *loop, const char *path, unsigned mode,
		  void (*accepted)(void *ud, int fd), void *ud, char *err, size_t errlen);
/* Stop accepting and remove the socket file. */
void listener_close(struct listener *li);

#endif
