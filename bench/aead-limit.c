/*
 * bench/aead-limit: mbedTLS's own AEAD speed on this machine, the ceiling of a
 * wss echo through wstether: the client encrypts every byte it sends and
 * decrypts every byte that comes back, one 16 KiB TLS record at a time, with
 * the same call TLS uses (mbedtls_cipher_auth_encrypt_ext / _decrypt_ext).
 *
 *   cc -O2 -I PREFIX/include bench/aead-limit.c PREFIX/lib/libmbedcrypto.a -o aead-limit
 *   aead-limit [SECONDS]
 *
 * Prints, per cipher, encrypt and decrypt MB/s and the echo limit
 * 1 / (1/enc + 1/dec): payload MB/s one way when all a client does is the
 * cipher. bench/aead-limit.sh builds it against the new and the old mbedTLS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/cipher.h>
#include <mbedtls/version.h>

#define RECORD 16384
#define TAG 16

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* MB/s of encrypting (dec = 0) or decrypting RECORD-byte records for about secs. */
static double rate(mbedtls_cipher_context_t *enc, mbedtls_cipher_context_t *dec, int decrypt,
		   double secs)
{
	static unsigned char in[RECORD], sealed[RECORD + TAG], out[RECORD + TAG];
	unsigned char iv[12] = {0}, ad[13] = {0x17, 3, 3};
	size_t olen, sealed_len;
	double t0, t;
	long n = 0;

	memset(in, 'x', sizeof(in));
	if (mbedtls_cipher_auth_encrypt_ext(enc, iv, sizeof(iv), ad, sizeof(ad), in, RECORD, sealed,
					    sizeof(sealed), &sealed_len, TAG))
		abort();
	t0 = now();
	do {
		for (int i = 0; i < 64; i++, n++) {
			int r = decrypt
				    ? mbedtls_cipher_auth_decrypt_ext(
					  dec, iv, sizeof(iv), ad, sizeof(ad), sealed, sealed_len,
					  out, sizeof(out), &olen, TAG)
				    : mbedtls_cipher_auth_encrypt_ext(enc, iv, sizeof(iv), ad,
								      sizeof(ad), in, RECORD, out,
								      sizeof(out), &olen, TAG);
			if (r)
				abort();
		}
		t = now() - t0;
	} while (t < secs);
	return (double)n * RECORD / t / 1e6;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		mbedtls_cipher_type_t type;
		unsigned bits;
	} c[] = {
	    {"AES-128-GCM", MBEDTLS_CIPHER_AES_128_GCM, 128},
	    {"AES-256-GCM", MBEDTLS_CIPHER_AES_256_GCM, 256},
	    {"CHACHA20-POLY1305", MBEDTLS_CIPHER_CHACHA20_POLY1305, 256},
	};
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	unsigned char key[32] = {1};
	char v[32];

	mbedtls_version_get_string(v);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		mbedtls_cipher_context_t e, d;
		double er, dr;

		mbedtls_cipher_init(&e);
		mbedtls_cipher_init(&d);
		if (mbedtls_cipher_setup(&e, mbedtls_cipher_info_from_type(c[i].type)) ||
		    mbedtls_cipher_setup(&d, mbedtls_cipher_info_from_type(c[i].type)) ||
		    mbedtls_cipher_setkey(&e, key, (int)c[i].bits, MBEDTLS_ENCRYPT) ||
		    mbedtls_cipher_setkey(&d, key, (int)c[i].bits, MBEDTLS_DECRYPT))
			return 1;
		er = rate(&e, &d, 0, secs);
		dr = rate(&e, &d, 1, secs);
		printf("mbedTLS %s %-18s encrypt %7.1f MB/s  decrypt %7.1f MB/s  echo limit %6.1f "
		       "MB/s\n",
		       v, c[i].name, er, dr, 1.0 / (1.0 / er + 1.0 / dr));
		mbedtls_cipher_free(&e);
		mbedtls_cipher_free(&d);
	}
	return 0;
}
