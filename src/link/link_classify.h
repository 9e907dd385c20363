#ifndef WST_LINK_CLASSIFY_H
#define WST_LINK_CLASSIFY_H

#include <stdbool.h>

#include "link.h"

/* What an attempt was, in the words its failure line names. */
struct attempt_desc {
	const char *url_text;
	const char *host; /* of the URL */
	unsigned port;
	bool ip;		 /* host is an address literal */
	const char *host_hdr;	 /* the name the certificate must match (host:port) */
	const char *server_name; /* tls.server_name, or "" */
	const char *ca_file;
	const char *cert_file;	 /* tls.cert_file when a client certificate was loaded, else NULL */
	const char *subprotocol; /* link.subprotocol, or "" */
	/* from the upgrade response, where there was one ("" when not) */
	const char *retry_after; /* its Retry-After header */
	const char *protocol;	 /* the subprotocol it chose, escaped */
	bool tls13_only;	 /* tls.min_version = "1.3": we offered TLS 1.3 alone */
};

/*
 * lws's CONNECTION_ERROR text `in` and the upgrade's HTTP status, as one line
 * an operator can act on, into end: its http_status and retry_after_s, and
 * its failure kind and msg unless an earlier cause set them (the first
 * cause explains it; later ones are consequences). Pure: unit-tested.
 */
void link_classify(const struct attempt_desc *a, const char *in, int http_status,
		   struct link_end *end);

/*
 * mbedTLS's names of a negotiated version and cipher suite as they are
 * shown: "TLSv1.3" as it is, and the suite by its IANA name
 * ("TLS1-3-AES-256-GCM-SHA384" -> "TLS_AES_256_GCM_SHA384").
 */
void link_tls_names(const char *version, const char *suite, char *v, size_t vlen, char *c,
		    size_t clen);

#endif
