#include "buildinfo.h"

#include <string.h>

#include <ares.h>
#include <ev.h>
#include <json-c/json_c_version.h>
#include <libconfig.h>
#include <libwebsockets.h>
#include <mbedtls/build_info.h>
#include <mbedtls/version.h>
#include <zlib.h>

#include "build-config.h"

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

/* The protocol versions this mbedTLS build can speak (its configuration decides). */
static const char *tls_versions(void)
{
#if defined(MBEDTLS_SSL_PROTO_TLS1_2) && defined(MBEDTLS_SSL_PROTO_TLS1_3)
	return "TLS 1.2, TLS 1.3";
#elif defined(MBEDTLS_SSL_PROTO_TLS1_3)
	return "TLS 1.3";
#else
	return "TLS 1.2";
#endif
}

/*
 * Like nginx -V: what the binary was built with, as each library says at run
 * time where it can; libconfig and libsystemd have no run-time call, so their
 * build-time versions are given. The two static libraries are marked so.
 */
void buildinfo_print(FILE *out)
{
	fprintf(out, "wstether %s\n", WST_VERSION);
	fprintf(out, "libwebsockets %s (static)\n", buildinfo_lws());
	fprintf(out, "mbedTLS %s (static; %s)\n", buildinfo_mbedtls(), tls_versions());
	fprintf(out, "libev %d.%d\n", ev_version_major(), ev_version_minor());
	fprintf(out, "c-ares %s\n", ares_version(NULL));
	fprintf(out, "json-c %s\n", json_c_version());
	fprintf(out, "zlib %s\n", zlibVersion());
	fprintf(out, "libconfig %d.%d.%d (built with)\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
		LIBCONFIG_VER_REVISION);
#if WST_HAVE_SYSTEMD
	fprintf(out, "libsystemd %s (built with)\n", WST_LIBSYSTEMD_VERSION);
#else
	fprintf(out, "libsystemd: not built in\n");
#endif
}
