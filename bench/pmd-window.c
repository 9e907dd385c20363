/*
 * pmd_compress alone, per client window size (issue 17 item 10): how long
 * wstether's compressor takes for N messages of one size, and the ratio it
 * reaches. Build and run:
 *   cc -O2 -Isrc/ws -Isrc/util bench/pmd-window.c bench/errf.c src/ws/pmdeflate.c -lz -o pmd-window
 *   pmd-window BITS SIZE COUNT [nct] [text|star|random]
 * "nct" sets client_no_context_takeover (Autobahn 13.5/13.7). "star" is
 * one byte repeated (the most compressible); "text" JSON-like telemetry;
 * "random" nothing deflate can shrink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pmdeflate.h"

static void fill(unsigned char *p, size_t n, const char *kind, unsigned seed)
{
	static const char *words[] = {"\"temp\":", "21.5",	 ",\"id\":", "\"sensor-", "42\"",
				      "{\"ts\":",  "1700000000", "},",	     "\"ok\"",	  "true"};

	if (!strcmp(kind, "star")) {
		memset(p, '*', n);
		return;
	}
	for (size_t i = 0; i < n;) {
		seed = seed * 1103515245u + 12345u;
		if (!strcmp(kind, "random")) {
			p[i++] = (unsigned char)(seed >> 16);
			continue;
		}
		const char *w = words[(seed >> 16) % 10];
		size_t k = strlen(w);

		if (k > n - i)
			k = n - i;
		memcpy(p + i, w, k);
		i += k;
	}
}

int main(int argc, char **argv)
{
	struct pmd_params p = {.server_max_window_bits = 15};
	const unsigned char *out;
	unsigned long long wire = 0, plain = 0;
	struct timespec a, b;
	size_t size, count, olen;
	unsigned char *msg;
	const char *kind = "text";
	struct pmd_report r;
	struct pmd *d;

	if (argc < 4) {
		fprintf(stderr, "usage: %s BITS SIZE COUNT [nct] [text|star|random]\n", argv[0]);
		return 2;
	}
	p.client_max_window_bits = atoi(argv[1]);
	size = strtoul(argv[2], NULL, 10);
	count = strtoul(argv[3], NULL, 10);
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "nct"))
			p.client_no_context_takeover = true;
		else
			kind = argv[i];
	}
	msg = malloc(size ? 8 * size : 1);
	d = pmd_create(&p, 1 << 30);
	if (!msg || !d)
		return 1;
	/* eight different messages, made before the clock starts */
	for (size_t i = 0; i < 8; i++)
		fill(msg + i * size, size, kind, (unsigned)i);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (size_t i = 0; i < count; i++) {
		int rc = pmd_compress(d, msg + (i % 8) * size, size, &out, &olen);

		if (rc < 0)
			return 1;
		plain += size;
		wire += rc ? olen : size;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	pmd_report(d, &r);
	printf(
	    "bits=%s size=%zu count=%zu %s %s: %.3f s, %.1f MB/s, wire/plain %.3f, zlib %zu KiB\n",
	    argv[1], size, count, p.client_no_context_takeover ? "nct" : "takeover", kind, s,
	    (double)plain / s / 1e6, plain ? (double)wire / (double)plain : 0.0,
	    r.zlib_bytes / 1024);
	pmd_destroy(d);
	free(msg);
	return 0;
}
