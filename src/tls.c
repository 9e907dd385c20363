#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/error.h>
#include <mbedtls/pem.h>
#include <mbedtls/x509_crt.h>

#include "config.h"

int tls_needed(const struct wst_config *cfg)
{
	return !strncasecmp(cfg->url, "wss:", 4);
}

static const char *origin(const struct wst_config *cfg)
{
	return cfg->path ? cfg->path : "the built-in defaults";
}

static int check_readable(const char *file, const char *key, const struct wst_config *cfg,
			  char *err, size_t errlen)
{
	FILE *f = fopen(file, "rb");

	if (!f) {
		snprintf(err, errlen, "%s: cannot read: %s (%s in %s)", file, strerror(errno), key,
			 origin(cfg));
		return -1;
	}
	fclose(f);
	return 0;
}

static int check_ca(const struct wst_config *cfg, char *err, size_t errlen)
{
	mbedtls_x509_crt chain;
	int rc, n = 0;
	char why[128];

	if (check_readable(cfg->ca_file, "tls.ca_file", cfg, err, errlen) < 0)
		return -1;
	mbedtls_x509_crt_init(&chain);
	/* >0: that many certificates in a bundle did not parse; fine if others did */
	rc = mbedtls_x509_crt_parse_file(&chain, cfg->ca_file);
	for (const mbedtls_x509_crt *c = &chain; c && c->raw.len; c = c->next)
		n++;
	mbedtls_x509_crt_free(&chain);
	if (rc < 0 || n == 0) {
		if (rc < 0)
			mbedtls_strerror(rc, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "no certificate could be parsed");
		snprintf(err, errlen,
			 "%s: not a usable CA certificate file: %s (tls.ca_file in %s; "
			 "expected PEM or DER certificates)",
			 cfg->ca_file, why, origin(cfg));
		return -1;
	}
	return 0;
}

int tls_check(const struct wst_config *cfg, char *err, size_t errlen)
{
	if (!tls_needed(cfg))
		return 0;
	return check_ca(cfg, err, errlen);
}
