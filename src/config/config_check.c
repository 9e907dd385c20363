#include "config_check.h"

#include <stdio.h>
#include <string.h>

#include <sys/stat.h>

#include "readfile.h"
#include "sock.h"

/* A token may be written after we start (by a refresher): say so, do not refuse. */
static int check_token(const char *path, char *why, size_t whylen)
{
	size_t n;

	if (readfile_check(path, why, whylen) == 0)
		return 0;
	n = strlen(why);
	snprintf(why + n, whylen - n,
		 "; it is read at every attempt, and each fails until it can be");
	return 1;
}

/* Proxy credentials, like tls.key_file: others should not read them. */
static int check_creds(const char *path, char *why, size_t whylen)
{
	struct stat st;
	int rc = check_token(path, why, whylen);

	if (rc == 0 && stat(path, &st) == 0 && (st.st_mode & 077)) {
		snprintf(why, whylen, "readable by group or others (mode %04o): chmod 600 it",
			 (unsigned)(st.st_mode & 0777));
		rc = 1;
	}
	return rc;
}

int config_check_path(enum config_path use, const char *path, char *why, size_t whylen)
{
	struct stat st;

	if (use == CONFIG_PATH_SOCKET)
		return sock_check_path(path, why, whylen);
	if (use == CONFIG_PATH_TEXT)
		return readfile_check(path, why, whylen);
	/* a FIFO named by any file key would block the loop where it is read */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return readfile_check(path, why, whylen);
	if (use == CONFIG_PATH_TOKEN)
		return check_token(path, why, whylen);
	if (use == CONFIG_PATH_CREDS)
		return check_creds(path, why, whylen);
	return 0;
}
