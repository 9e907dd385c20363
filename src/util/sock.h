#ifndef WST_SOCK_H
#define WST_SOCK_H

#include <stddef.h>

/*
 * Listen on a Unix stream socket at path with mode, non-blocking. A stale
 * socket nobody answers on is replaced; a live one means another instance.
 * Returns the fd, or -1 with err naming the path and what to do.
 */
int unix_listen(const char *path, unsigned mode, char *err, size_t errlen);

/*
 * Whether unix_listen could bind path: it fits sun_path, its directory
 * exists and can be written, and it is not something other than a socket.
 * A socket already there passes (a running daemon checking its own file).
 * 1 when it cannot be known yet (the directory is one systemd creates at
 * start), with why saying so; -1 with why on an error; 0 when fine.
 */
int sock_check_path(const char *path, char *why, size_t whylen);

/* Make fd non-blocking; returns its previous flags, or -1 with errno. */
int fd_nonblock(int fd);

#endif
