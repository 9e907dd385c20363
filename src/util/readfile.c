#include "readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static const char *kind_of(mode_t m)
{
	return S_ISDIR(m)		  ? "is a directory"
	       : S_ISFIFO(m)		  ? "is a FIFO, not a regular file"
	       : S_ISSOCK(m)		  ? "is a socket, not a regular file"
	       : S_ISCHR(m) || S_ISBLK(m) ? "is a device, not a regular file"
					  : "is not a regular file";
}

int readfile_regular(const char *path, size_t max, char **out, size_t *len, char *why,
		     size_t whylen)
{
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	size_t n = 0;
	struct stat st;
	char *buf = NULL;

	*out = NULL;
	if (fd < 0)
		return errf(why, whylen, "%s", strerror(errno));
	if (fstat(fd, &st) < 0) {
		errf(why, whylen, "%s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(why, whylen, "%s", kind_of(st.st_mode));
		goto fail;
	}
	if ((unsigned long long)st.st_size > max) {
		errf(why, whylen, "is %lld bytes, larger than %zu bytes", (long long)st.st_size,
		     max);
		goto fail;
	}
	/* the size may change while we read (or be 0, in /proc): the bound holds anyway */
	if (!(buf = malloc(max + 2))) {
		errf(why, whylen, "out of memory");
		goto fail;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errf(why, whylen, "read error: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			errf(why, whylen, "grew past %zu bytes while it was read", max);
			goto fail;
		}
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}

int readfile_check(const char *path, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	int rc = 0;

	if (fd < 0)
		return errf(why, whylen, "%s", strerror(errno));
	if (fstat(fd, &st) < 0)
		rc = errf(why, whylen, "%s", strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = errf(why, whylen, "%s", kind_of(st.st_mode));
	close(fd);
	return rc;
}
