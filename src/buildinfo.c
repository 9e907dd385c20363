#include "buildinfo.h"

#include <string.h>

#include <libwebsockets.h>
#include <mbedtls/version.h>

const char *buildinfo_version(void)
{
	return WST_VERSION;
}

/* lws appends its build's git description ("4.1.6-abc123"): keep the release */
const char *buildinfo_lws(void)
{
	static char v[32];

	if (!*v) {
		const char *s = lws_get_library_version();
		size_t n = strcspn(s, "- ");

		memcpy(v, s, n < sizeof(v) ? n : sizeof(v) - 1);
	}
	return v;
}

const char *buildinfo_mbedtls(void)
{
	static char v[18]; /* mbedtls_version_get_string writes at most 9 bytes */

	if (!*v)
		mbedtls_version_get_string(v);
	return v;
}
