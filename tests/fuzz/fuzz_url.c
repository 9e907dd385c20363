/*
 * libFuzzer target for the URL parser (link.url and fallback_urls come from
 * the config file). A parse must fail cleanly or give a bounded host and
 * path, a port, and a Host header that fits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[512], host[URL_MAX_HOST + 16];
	struct wst_url u;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (url_parse(s, &u, err, sizeof(err)) == 0) {
		if (strnlen(u.host, sizeof(u.host)) >= sizeof(u.host) || !u.host[0] ||
		    strnlen(u.path, sizeof(u.path)) >= sizeof(u.path) || u.path[0] != '/' ||
		    !u.port)
			abort();
		url_host_header(&u, NULL, host, sizeof(host));
		url_host_header(&u, "name.example", host, sizeof(host));
	} else if (strnlen(err, sizeof(err)) >= sizeof(err) || !err[0]) {
		abort();
	}
	free(s);
	return 0;
}
