#ifndef WST_SOCK_H
#define WST_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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

/* The address bytes of an AF_INET or AF_INET6 sockaddr, and how many; 0 for another family. */
size_t sockaddr_bytes(const struct sockaddr *sa, const unsigned char **out);
/* family (AF_INET or AF_INET6), its address bytes and port into ss; returns its length. */
socklen_t sockaddr_make(struct sockaddr_storage *ss, int family, const void *addr, uint16_t port);
/* An IPv4 or IPv6 literal (no brackets) and port into ss; its length, 0 if s is not one. */
socklen_t sockaddr_parse(const char *s, uint16_t port, struct sockaddr_storage *ss);
/* Whether a and b are of one family and their first bits bits (at most all) are the same. */
bool sockaddr_prefix_equal(const struct sockaddr *a, const struct sockaddr *b, unsigned bits);

#endif
