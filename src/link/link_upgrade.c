/* The HTTP upgrade: what we add to the request, and what we accept of the answer. */
#include "link_int.h"
#include "link_classify.h"

/* The server's answer to our permessage-deflate offer: RFC 7692 7 or fail the handshake. */
static int negotiate_deflate(struct link *l, struct lws *wsi)
{
	char hdr[512] = "", why[160], esc[256];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS), rc;
	struct pmd_params p;

	if (n >= (int)sizeof(hdr)) {
		link_end_set(
		    &l->end, LINK_FAIL_PROTOCOL,
		    "%s: server answered with a Sec-WebSocket-Extensions of %d bytes, more than "
		    "any valid answer to our offer: failing the connection",
		    l->url_text, n);
		return 1;
	}
	if (n > 0 && lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_EXTENSIONS) < 0)
		hdr[0] = '\0';
	rc = pmd_negotiate(&pmd_default_offer, hdr, &p, why, sizeof(why));
	if (rc < 0) {
		escape_text(esc, sizeof(esc), hdr, strlen(hdr));
		link_end_set(
		    &l->end, LINK_FAIL_PROTOCOL,
		    "%s: server answered 'Sec-WebSocket-Extensions: %s': %s (RFC 7692 §7): "
		    "failing the connection",
		    l->url_text, esc, why);
		return 1;
	}
	if (rc == 0) {
		log_msg(LOG_INFO,
			"%s: the server declined permessage-deflate: messages go "
			"uncompressed",
			l->url_text);
		return 0;
	}
	l->pmd = pmd_create(&p, l->max_message);
	if (!l->pmd) {
		link_end_set(&l->end, LINK_FAIL_LOCAL,
			     "out of memory setting up permessage-deflate");
		return 1;
	}
	snprintf(l->deflate_params, sizeof(l->deflate_params),
		 "permessage-deflate; client_max_window_bits=%d; server_max_window_bits=%d%s%s",
		 p.client_max_window_bits, p.server_max_window_bits,
		 p.client_no_context_takeover ? "; client_no_context_takeover" : "",
		 p.server_no_context_takeover ? "; server_no_context_takeover" : "");
	log_msg(LOG_INFO, "%s: negotiated %s", l->url_text, l->deflate_params);
	return 0;
}

/* Without link.compression nothing is offered: a 101 may accept no extension. */
int link_upgrade_extensions(struct link *l, struct lws *wsi)
{
	char hdr[256], name[64], esc[160];

	if (*l->at.deflate_offer)
		return negotiate_deflate(l, wsi);
	if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_EXTENSIONS) <= 0 ||
	    !wsrx_unoffered_extension(hdr, NULL, name, sizeof(name)))
		return 0;
	escape_text(esc, sizeof(esc), name, strlen(name));
	link_end_set(
	    &l->end, LINK_FAIL_PROTOCOL,
	    "%s: server accepted the extension '%s', which we did not offer (RFC 6455 §9.1): "
	    "failing the connection",
	    l->url_text, esc);
	return 1;
}

/* Extra headers of link.headers, and the permessage-deflate offer. */
int link_upgrade_headers(struct link *l, struct lws *wsi, void *in, size_t len)
{
	unsigned char **p = in, *end = *p + len;

	l->at.upgrade_sent = true;
	for (size_t i = 0; i < l->n_hdrs; i++)
		if (lws_add_http_header_by_name(wsi, (unsigned char *)l->hdr_names[i],
						(unsigned char *)l->hdr_values[i],
						(int)strlen(l->hdr_values[i]), p, end)) {
			link_end_set(
			    &l->end, LINK_FAIL_LOCAL,
			    "link.headers: header '%.*s' does not fit the handshake buffer",
			    (int)strlen(l->hdr_names[i]) - 1, l->hdr_names[i]);
			return -1;
		}
	if (*l->at.deflate_offer &&
	    lws_add_http_header_by_name(wsi, (unsigned char *)"Sec-WebSocket-Extensions:",
					(unsigned char *)l->at.deflate_offer,
					(int)strlen(l->at.deflate_offer), p, end)) {
		link_end_set(&l->end, LINK_FAIL_LOCAL,
			     "the permessage-deflate offer does not fit the handshake buffer");
		return -1;
	}
	return 0;
}

/* lws's connection error, with what the attempt was, as the end of the attempt. */
void link_upgrade_failed(struct link *l, struct lws *wsi, const char *in)
{
	char ra[32] = "", raw[64] = "", proto[64] = "";
	struct attempt_desc a = {
	    l->url_text,
	    l->url.host,
	    l->url.port,
	    l->url.ipv6 || strspn(l->url.host, "0123456789.") == strlen(l->url.host),
	    l->host_hdr,
	    l->server_name,
	    l->ca_file,
	    l->cert.blob ? l->cert_file : NULL,
	    l->subprotocol ? l->subprotocol : "",
	    ra,
	    proto,
	    l->tls13_only,
	};

	if (wsi && lws_hdr_copy(wsi, ra, sizeof(ra), WSI_TOKEN_HTTP_RETRY_AFTER) <= 0)
		ra[0] = '\0';
	if (wsi && lws_hdr_copy(wsi, raw, sizeof(raw), WSI_TOKEN_PROTOCOL) > 0)
		escape_text(proto, sizeof(proto), raw, strlen(raw));
	link_classify(&a, in, wsi ? (int)lws_http_client_http_response(wsi) : 0, &l->end);
}
