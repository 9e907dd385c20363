#ifndef WST_SOCK_H
#define WST_SOCK_H

#include <stddef.h>

/*
 * Listen on a Unix stream socket at path with mode, non-blocking. A stale
 * socket nobody answers on is replaced; a live one means another instance.
 * Returns the fd, or -1 with err naming the path and what to do.
 */
int unix_listen(const char *path, unsigned mode, char *err, size_t errlen);

/* Make fd non-blocking; returns its previous flags, or -1 with errno. */
int fd_nonblock(int fd);

#endif
