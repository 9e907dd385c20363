#ifndef WST_READFILE_H
#define WST_READFILE_H

#include <stddef.h>

/*
 * Read a whole regular file of at most max bytes into a NUL-terminated
 * buffer (free it). Never blocks: a FIFO, device, socket or directory is
 * refused before a byte is read. -1 with why set ("is a directory",
 * "No such file or directory", "is 1073741824 bytes, more than 1048576"),
 * without the path: the caller names the file and the key.
 */
int readfile_regular(const char *path, size_t max, char **out, size_t *len, char *why,
		     size_t whylen);

/* Whether path is a regular file this process may read; -1 with why as above. */
int readfile_check(const char *path, char *why, size_t whylen);

#endif
