#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sock.h"

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *li = w->data;

	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_errno(LOG_WARNING, "%s: accept", li->path);
			return;
		}
		li->accepted(li->ud, fd);
	}
}

int listener_open(struct listener *li, struct ev_loop *loop, const char *path, unsigned mode,
		  void (*accepted)(void *ud, int fd), void *ud, char *err, size_t errlen)
{
	li->fd = unix_listen(path, mode, err, errlen);
	if (li->fd < 0)
		return -1;
	li->loop = loop;
	li->accepted = accepted;
	li->ud = ud;
	snprintf(li->path, sizeof(li->path), "%s", path);
	ev_io_init(&li->w, accept_cb, li->fd, EV_READ);
	li->w.data = li;
	ev_io_start(loop, &li->w);
	return 0;
}

void listener_close(struct listener *li)
{
	ev_io_stop(li->loop, &li->w);
	close(li->fd);
	if (unlink(li->path) < 0 && errno != ENOENT)
		log_errno(LOG_WARNING, "%s: unlink", li->path);
}
