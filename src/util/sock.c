#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

int unix_listen(const char *path, unsigned mode, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return errf(err, errlen, "%s: socket path too long (max %zu bytes)", path,
			    sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errf(err, errlen, "%s: socket: %s", path, strerror(errno));
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen,
				 "%s: exists and is not a socket: remove it or choose "
				 "another path",
				 path);
			goto fail;
		}
		/* a socket someone answers on is another instance; one nobody does is stale */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			snprintf(err, errlen, "%s: another wstether is listening there", path);
			goto fail;
		}
		if (probe >= 0)
			close(probe);
		if (unlink(path) < 0) {
			snprintf(err, errlen, "%s: cannot remove stale socket: %s", path,
				 strerror(errno));
			goto fail;
		}
		log_msg(LOG_INFO, "%s: replaced a stale socket", path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "%s: bind: %s", path, strerror(errno));
		goto fail;
	}
	if (chmod(path, mode) < 0) {
		snprintf(err, errlen, "%s: chmod %04o: %s", path, mode, strerror(errno));
		unlink(path);
		goto fail;
	}
	if (listen(fd, 64) < 0) {
		snprintf(err, errlen, "%s: listen: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fl;
}

size_t sockaddr_bytes(const struct sockaddr *sa, const unsigned char **out)
{
	if (sa->sa_family == AF_INET) {
		*out = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)
			   ->sin_addr;
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		*out = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		return 16;
	}
	return 0;
}

socklen_t sockaddr_make(struct sockaddr_storage *ss, int family, const void *addr, uint16_t port)
{
	struct sockaddr_in *s4 = (void *)ss;
	struct sockaddr_in6 *s6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)family;
	if (family == AF_INET) {
		memcpy(&s4->sin_addr, addr, 4);
		s4->sin_port = htons(port);
		return sizeof(*s4);
	}
	memcpy(&s6->sin6_addr, addr, 16);
	s6->sin6_port = htons(port);
	return sizeof(*s6);
}

socklen_t sockaddr_parse(const char *s, uint16_t port, struct sockaddr_storage *ss)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1)
		return sockaddr_make(ss, AF_INET, a, port);
	if (inet_pton(AF_INET6, s, a) == 1)
		return sockaddr_make(ss, AF_INET6, a, port);
	return 0;
}

bool sockaddr_prefix_equal(const struct sockaddr *a, const struct sockaddr *b, unsigned bits)
{
	const unsigned char *x, *y;
	size_t n = sockaddr_bytes(a, &x);

	if (!n || a->sa_family != b->sa_family || sockaddr_bytes(b, &y) != n || bits > n * 8)
		return false;
	for (unsigned i = 0; i < bits; i++) {
		unsigned char m = (unsigned char)(0x80 >> (i % 8));

		if ((x[i / 8] & m) != (y[i / 8] & m))
			return false;
	}
	return true;
}

/* systemd creates RuntimeDirectory=wstether/NAME below this when the unit starts. */
#define RUNTIME_ROOT "/run/wstether/"

int sock_check_path(const char *path, char *why, size_t whylen)
{
	struct sockaddr_un sa;
	const char *slash = strrchr(path, '/');
	char dir[sizeof(sa.sun_path)];
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return errf(why, whylen, "too long for a socket path (at most %zu bytes)",
			    sizeof(sa.sun_path) - 1);
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return errf(why, whylen,
			    "exists and is not a socket: remove it or choose another "
			    "path");
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + !(slash - path) : 1,
		 slash ? path : ".");
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT && !strncmp(path, RUNTIME_ROOT, strlen(RUNTIME_ROOT)) &&
		    !getenv("RUNTIME_DIRECTORY")) {
			errf(why, whylen,
			     "directory %s does not exist yet; systemd creates it when the unit "
			     "with that RuntimeDirectory= starts",
			     dir);
			return 1;
		}
		return errf(why, whylen, "directory %s: %s: create it, or choose another path", dir,
			    strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return errf(why, whylen, "%s is not a directory", dir);
	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0)
		return errf(why, whylen,
			    "cannot create a socket in %s: %s: use the unit's "
			    "RuntimeDirectory (/run/wstether/NAME under wstether@NAME)",
			    dir, strerror(errno));
	return 0;
}
