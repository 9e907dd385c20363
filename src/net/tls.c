#include "tls.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/psa_util.h>
#include <psa/crypto.h>
#include <mbedtls/x509_crt.h>

#include "config.h"
#include "log.h"
#include "ratelimit.h"

/* A client certificate this close to expiry is worth a warning at every check. */
#define EXPIRY_WARN_S (14 * 24 * 3600)

static int any_tls(const struct wst_config *cfg)
{
	for (size_t i = 0; i < config_url_count(cfg); i++)
		if (!strncasecmp(config_url(cfg, i), "wss:", 4))
			return 1;
	return 0;
}

static const char *origin(const struct wst_config *cfg)
{
	return cfg->path ? cfg->path : "the command line";
}

/* The whole file, NUL-terminated (mbedTLS wants PEM so). */
static unsigned char *slurp(const char *file, size_t *len, const char *key,
			    const struct wst_config *cfg, char *err, size_t errlen)
{
	FILE *f = fopen(file, "rb");
	unsigned char *buf = NULL;
	long n;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		errf(err, errlen, "%s: cannot read: %s (%s in %s)", file, strerror(errno), key,
		     origin(cfg));
		goto out;
	}
	if (n > 16 * 1024 * 1024) {
		errf(err, errlen, "%s: too large for a certificate or key file (%s in %s)", file,
		     key, origin(cfg));
		goto out;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		errf(err, errlen, "%s: cannot read: %s (%s in %s)", file,
		     buf ? "short read" : "out of memory", key, origin(cfg));
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
	*len = (size_t)n;
out:
	if (f)
		fclose(f);
	return buf;
}

static void wipe_free(unsigned char *p, size_t len)
{
	if (!p)
		return;
	mbedtls_platform_zeroize(p, len);
	free(p);
}

static int chain_pem(const mbedtls_x509_crt *crt, unsigned char **out, size_t *outlen);

/*
 * A warning about a file is worth saying once an hour, not at every attempt
 * (and not twice at start: once for the check, once for the first attempt).
 */
static __attribute__((format(printf, 1, 2))) void warn_once(const char *fmt, ...)
{
	static char last[512];
	static struct ratelimit hourly = RATELIMIT(1, 3600 * 1000, 0);
	char msg[512];
	uint64_t now = (uint64_t)time(NULL) * 1000;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, last))
		ratelimit_reset(&hourly, now);
	snprintf(last, sizeof(last), "%s", msg);
	log_msg(ratelimit_allow(&hourly, now) ? LOG_WARNING : LOG_DEBUG, "%s", msg);
}

int tls_load_ca(const struct wst_config *cfg, struct tls_ca *out, char *err, size_t errlen)
{
	mbedtls_x509_crt chain;
	unsigned char *buf, *pem = NULL;
	size_t len, pemlen = 0;
	int rc, n = 0;
	char why[128] = "no certificate could be parsed";

	memset(out, 0, sizeof(*out));
	buf = slurp(cfg->ca_file, &len, "tls.ca_file", cfg, err, errlen);
	if (!buf)
		return -1;
	mbedtls_x509_crt_init(&chain);
	/* >0: that many certificates of a bundle did not parse; fine if others did */
	rc = mbedtls_x509_crt_parse(&chain, buf, len + 1);
	for (const mbedtls_x509_crt *c = &chain; c && c->raw.len; c = c->next)
		n++;
	free(buf);
	if (rc < 0 || n == 0) {
		mbedtls_x509_crt_free(&chain);
		if (rc < 0)
			mbedtls_strerror(rc, why, sizeof(why));
		return errf(err, errlen,
			    "%s: not a usable CA certificate file: %s (tls.ca_file in %s; expected "
			    "PEM or DER certificates)",
			    cfg->ca_file, why, origin(cfg));
	}
	if (rc > 0)
		warn_once("%s: %d certificate(s) could not be parsed by mbedTLS and are ignored; "
			  "%d are used",
			  cfg->ca_file, rc, n);
	if (chain_pem(&chain, &pem, &pemlen) < 0) {
		mbedtls_x509_crt_free(&chain);
		return errf(err, errlen, "%s: out of memory", cfg->ca_file);
	}
	mbedtls_x509_crt_free(&chain);
	out->pem = (char *)pem;
	out->len = pemlen;
	log_msg(LOG_DEBUG, "%s: %d CA certificate(s)", cfg->ca_file, n);
	return n;
}

void tls_ca_free(struct tls_ca *ca)
{
	free(ca->pem);
	ca->pem = NULL;
	ca->len = 0;
}

static time_t x509_time(const mbedtls_x509_time *t)
{
	struct tm tm = {.tm_year = t->year - 1900,
			.tm_mon = t->mon - 1,
			.tm_mday = t->day,
			.tm_hour = t->hour,
			.tm_min = t->min,
			.tm_sec = t->sec};

	return timegm(&tm);
}

/* PEM of every certificate in the chain (DER input is accepted too). */
static int chain_pem(const mbedtls_x509_crt *crt, unsigned char **out, size_t *outlen)
{
	size_t cap = 0, len = 0;
	unsigned char *buf;

	for (const mbedtls_x509_crt *c = crt; c && c->raw.len; c = c->next)
		cap += c->raw.len * 4 / 3 + c->raw.len / 32 + 128;
	buf = malloc(cap + 1);
	if (!buf)
		return -1;
	for (const mbedtls_x509_crt *c = crt; c && c->raw.len; c = c->next) {
		size_t olen = 0;

		if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n",
					     "-----END CERTIFICATE-----\n", c->raw.p, c->raw.len,
					     buf + len, cap - len, &olen) != 0) {
			free(buf);
			return -1;
		}
		len += olen - 1; /* olen counts the NUL */
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

/*
 * mbedTLS calls an encrypted DER key (PKCS#8 EncryptedPrivateKeyInfo) merely
 * invalid: recognise SEQUENCE { SEQUENCE { OID pkcs5 PBE/PBES2 or pkcs12 PBE ...
 */
static bool der_is_encrypted_key(const unsigned char *p, size_t len)
{
	static const unsigned char pkcs5[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05};
	static const unsigned char pkcs12[] = {0x2a, 0x86, 0x48, 0x86, 0xf7,
					       0x0d, 0x01, 0x0c, 0x01};
	unsigned char *c = (unsigned char *)p;
	const unsigned char *end = p + len;
	size_t n;

	if (mbedtls_asn1_get_tag(&c, end, &n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) ||
	    mbedtls_asn1_get_tag(&c, end, &n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) ||
	    mbedtls_asn1_get_tag(&c, end, &n, MBEDTLS_ASN1_OID))
		return false;
	return (n >= sizeof(pkcs5) && !memcmp(c, pkcs5, sizeof(pkcs5))) ||
	       (n >= sizeof(pkcs12) && !memcmp(c, pkcs12, sizeof(pkcs12)));
}

/* The client certificate's validity: expired or not yet valid fail, soon expiring warns. */
static int check_dates(const struct wst_config *cfg, mbedtls_x509_crt *crt,
		       struct tls_client_cert *out, char *err, size_t errlen)
{
	time_t now = time(NULL), from = x509_time(&crt->valid_from);

	mbedtls_x509_dn_gets(out->subject, sizeof(out->subject), &crt->subject);
	out->not_after_t = x509_time(&crt->valid_to);
	strftime(out->not_after, sizeof(out->not_after), "%Y-%m-%d %H:%M:%S UTC",
		 gmtime(&out->not_after_t));
	if (out->not_after_t < now)
		return errf(err, errlen,
			    "%s: client certificate expired on %s (tls.cert_file in %s)",
			    cfg->cert_file, out->not_after, origin(cfg));
	if (from > now) {
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&from));
		errf(err, errlen,
		     "%s: client certificate is not valid until %s (tls.cert_file in %s)",
		     cfg->cert_file, when, origin(cfg));
		return -1;
	}
	if (out->not_after_t - now < EXPIRY_WARN_S)
		warn_once("%s: client certificate expires soon, on %s: renew it", cfg->cert_file,
			  out->not_after);
	return 0;
}

/* The private key: readable, unencrypted, and the certificate's pair. */
static int parse_key(const struct wst_config *cfg, mbedtls_x509_crt *crt, mbedtls_pk_context *pk,
		     const unsigned char *kbuf, size_t klen, char *err, size_t errlen)
{
	struct stat st;
	char why[128];
	int r;

	if (stat(cfg->key_file, &st) == 0 && (st.st_mode & 077))
		warn_once(
		    "%s: private key is readable by group or others (mode %04o): chmod 600 it",
		    cfg->key_file, (unsigned)(st.st_mode & 0777));
	r = mbedtls_pk_parse_key(pk, kbuf, klen + 1, NULL, 0, mbedtls_psa_get_random,
				 MBEDTLS_PSA_RANDOM_STATE);
	if (r == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || r == MBEDTLS_ERR_PK_PASSWORD_MISMATCH ||
	    strstr((const char *)kbuf, "ENCRYPTED") || (r && der_is_encrypted_key(kbuf, klen)))
		return errf(
		    err, errlen,
		    "%s: encrypted private keys are unsupported: store it unencrypted with mode "
		    "0600, or use systemd's LoadCredentialEncrypted= (tls.key_file in %s)",
		    cfg->key_file, origin(cfg));
	if (r != 0) {
		mbedtls_strerror(r, why, sizeof(why));
		errf(err, errlen, "%s: not a usable private key: %s (tls.key_file in %s)",
		     cfg->key_file, why, origin(cfg));
		return -1;
	}
	r = mbedtls_pk_check_pair(&crt->pk, pk, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	if (r != 0)
		return errf(
		    err, errlen,
		    "%s: private key does not match the certificate %s (tls.key_file in %s)",
		    cfg->key_file, cfg->cert_file, origin(cfg));
	return 0;
}

int tls_global_init(char *err, size_t errlen)
{
	psa_status_t st = psa_crypto_init(); /* a no-op once it has succeeded */

	if (st != PSA_SUCCESS)
		return errf(err, errlen, "mbedTLS: cannot initialise PSA crypto (error %d)",
			    (int)st);
	return 0;
}

int tls_load_client(const struct wst_config *cfg, struct tls_client_cert *out, char *err,
		    size_t errlen)
{
	unsigned char *cbuf = NULL, *kbuf = NULL, *cpem = NULL, kder[16384];
	size_t clen = 0, klen = 0, cpemlen = 0;
	mbedtls_x509_crt crt;
	mbedtls_pk_context pk;
	char why[128];
	int rc = -1, r;

	memset(out, 0, sizeof(*out));
	if (!*cfg->cert_file)
		return 0;
	/* the key checks draw random numbers (RSA blinding) from PSA */
	if (tls_global_init(err, errlen) < 0)
		return -1;
	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&pk);

	if (!(cbuf = slurp(cfg->cert_file, &clen, "tls.cert_file", cfg, err, errlen)))
		goto out;
	r = mbedtls_x509_crt_parse(&crt, cbuf, clen + 1);
	if (r != 0 || !crt.raw.len) {
		mbedtls_strerror(r, why, sizeof(why));
		errf(err, errlen, "%s: not a usable certificate: %s (tls.cert_file in %s)",
		     cfg->cert_file, r ? why : "no certificate found", origin(cfg));
		goto out;
	}
	if (check_dates(cfg, &crt, out, err, errlen) < 0)
		goto out;

	if (!(kbuf = slurp(cfg->key_file, &klen, "tls.key_file", cfg, err, errlen)))
		goto out;
	if (parse_key(cfg, &crt, &pk, kbuf, klen, err, errlen) < 0)
		goto out;

	/*
	 * lws 4.3 takes the chain as PEM and the key apart. Its mbedTLS glue
	 * parses a key from memory without the NUL that PEM needs (mbedTLS
	 * >= 3.5), so the key goes as DER, followed by the NUL lws expects and
	 * strips from the length.
	 */
	if (chain_pem(&crt, &cpem, &cpemlen) < 0 ||
	    (r = mbedtls_pk_write_key_der(&pk, kder, sizeof(kder))) <= 0) {
		errf(err, errlen, "%s: cannot re-encode certificate and key (out of memory?)",
		     cfg->cert_file);
		goto out;
	}
	out->len = cpemlen + 1;
	out->blob = (char *)cpem;
	cpem = NULL;
	out->key_len = (size_t)r + 1;
	out->key = malloc(out->key_len);
	if (!out->key) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(out->key, kder + sizeof(kder) - r, (size_t)r);
	out->key[r] = '\0';
	rc = 1;
out:
	mbedtls_platform_zeroize(kder, sizeof(kder));
	wipe_free(kbuf, klen);
	free(cbuf);
	free(cpem);
	mbedtls_pk_free(&pk);
	mbedtls_x509_crt_free(&crt);
	if (rc < 0)
		tls_client_free(out);
	return rc;
}

void tls_client_free(struct tls_client_cert *c)
{
	free(c->blob);
	wipe_free(c->key, c->key_len);
	c->blob = NULL;
	c->len = 0;
	c->key = NULL;
	c->key_len = 0;
}

int tls_check(const struct wst_config *cfg, char *err, size_t errlen)
{
	struct tls_client_cert cc;
	struct tls_ca ca;

	if (!any_tls(cfg))
		return 0;
	if (tls_load_ca(cfg, &ca, err, errlen) < 0)
		return -1;
	tls_ca_free(&ca);
	if (tls_load_client(cfg, &cc, err, errlen) < 0)
		return -1;
	tls_client_free(&cc);
	return 0;
}
