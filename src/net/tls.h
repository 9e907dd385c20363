#ifndef WST_TLS_H
#define WST_TLS_H

#include <stddef.h>
#include <time.h>

struct wst_config;

/*
 * Checks of the TLS files with mbedTLS before lws sees them, so that a bad
 * file gets one sentence naming it instead of an opaque handshake error.
 * Run at --check, at start, at reload and before every attempt.
 * Errors are "FILE: reason (KEY in CONFIG)"; warnings go to the log.
 */
int tls_check(const struct wst_config *cfg, char *err, size_t errlen);

/*
 * The CA file as PEM of the certificates mbedTLS can parse: lws fails the
 * whole file when one certificate of a bundle does not parse (and prints to
 * stdout), so it gets only these. Returns the number of certificates, or -1.
 */
struct tls_ca {
	char *pem;
	size_t len;		/* without a NUL */
};
int tls_load_ca(const struct wst_config *cfg, struct tls_ca *out, char *err, size_t errlen);
void tls_ca_free(struct tls_ca *ca);

/*
 * mbedTLS 3.6 needs PSA crypto initialised before a TLS 1.3 handshake and
 * before the key checks. Once at start-up; later calls are no-ops. 0 or -1
 * with err set.
 */
int tls_global_init(char *err, size_t errlen);

/* The client certificate and key as lws takes them with mbedTLS. */
struct tls_client_cert {
	char *blob;		/* PEM certificate(s), NUL-terminated */
	size_t len;		/* including the NUL */
	unsigned char *key;	/* DER private key, then a NUL (lws strips one byte) */
	size_t key_len;		/* including the NUL */
	char subject[256];
	char not_after[32];	/* "2027-01-31 12:00:00 UTC" */
	time_t not_after_t;
};

/*
 * Read and check tls.cert_file and tls.key_file. Returns 1 with out filled,
 * 0 when no client certificate is configured, -1 with err set.
 */
int tls_load_client(const struct wst_config *cfg, struct tls_client_cert *out, char *err,
		    size_t errlen);
/* Wipes the key material. */
void tls_client_free(struct tls_client_cert *c);

#endif
