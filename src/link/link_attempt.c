/* Setting up one attempt: the files it reads, the dial, the lws context. */
#include "link_int.h"

/* A header value file, re-read at every attempt so tokens can rotate. */
static char *read_value_file(const char *file, const char *name, char *err, size_t errlen)
{
	char buf[8192], *v = NULL;
	const char *bad;
	size_t n;
	FILE *f = fopen(file, "r");

	if (!f) {
		snprintf(err, errlen,
			 "link.headers: cannot read value_file '%s' of header '%s': %s", file, name,
			 strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	bad = ferror(f) ? ": read error" : !feof(f) ? ": larger than 8 KiB" : NULL;
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (!bad && strpbrk(buf, "\r\n"))
		bad = " has more than one line";
	if (bad)
		snprintf(err, errlen, "link.headers: value_file '%s' of header '%s'%s", file, name,
			 bad);
	else if (!(v = strdup(buf)))
		snprintf(err, errlen, "out of memory");
	explicit_bzero(buf, sizeof(buf));
	return v;
}

/*
 * link.user_agent, in the slot load_scratch keeps for it, unless link.headers
 * names a User-Agent: that one is sent instead, and an empty one sends none.
 */
static int add_user_agent(struct link *l, const struct wst_config *cfg)
{
	size_t i = 0, n = l->n_hdrs;

	while (i < n && strcasecmp(l->hdr_names[i], "User-Agent:"))
		i++;
	if (i == n && *cfg->user_agent) {
		l->hdr_names[n] = strdup("User-Agent:");
		l->hdr_values[n] = strdup(cfg->user_agent);
		l->n_hdrs++; /* link_free_scratch frees what an out of memory left */
		return l->hdr_names[n] && l->hdr_values[n] ? 0 : -1;
	}
	if (i == n || *l->hdr_values[i])
		return 0;
	free(l->hdr_names[i]);
	free(l->hdr_values[i]);
	l->n_hdrs--;
	l->hdr_names[i] = l->hdr_names[l->n_hdrs];
	l->hdr_values[i] = l->hdr_values[l->n_hdrs];
	l->hdr_names[l->n_hdrs] = l->hdr_values[l->n_hdrs] = NULL;
	return 0;
}

/* Everything this attempt needs that may change on disk between attempts. */
static int load_scratch(struct link *l, const struct wst_config *cfg, char *err, size_t errlen)
{
	l->insecure = cfg->insecure;
	l->tls13_only = cfg->tls_min_version == TLS_MIN_1_3;
	snprintf(l->server_name, sizeof(l->server_name), "%s", cfg->server_name);
	snprintf(l->cert_file, sizeof(l->cert_file), "%s", cfg->cert_file);
	if (*cfg->subprotocol && !(l->subprotocol = strdup(cfg->subprotocol)))
		goto oom;
	if (*cfg->origin && !(l->origin = strdup(cfg->origin)))
		goto oom;
	l->hdr_names = calloc(cfg->n_headers + 1, sizeof(char *));
	l->hdr_values = calloc(cfg->n_headers + 1, sizeof(char *));
	if (!l->hdr_names || !l->hdr_values)
		goto oom;
	for (size_t i = 0; i < cfg->n_headers; i++) {
		const struct wst_header *h = &cfg->headers[i];

		if (asprintf(&l->hdr_names[i], "%s:", h->name) < 0)
			goto oom;
		l->n_hdrs = i + 1;
		l->hdr_values[i] = h->value ? strdup(h->value)
					    : read_value_file(h->value_file, h->name, err, errlen);
		if (!l->hdr_values[i])
			return h->value ? (snprintf(err, errlen, "out of memory"), -1) : -1;
	}
	if (add_user_agent(l, cfg) < 0)
		goto oom;
	if (l->url.tls && tls_load_client(cfg, &l->cert, err, errlen) < 0)
		return -1;
	snprintf(l->cert_not_after, sizeof(l->cert_not_after), "%s",
		 l->cert.blob ? l->cert.not_after : "");
	l->cert_not_after_t = l->cert.blob ? l->cert.not_after_t : 0;
	return hello_load(cfg, &l->hello, err, errlen);
oom:
	return errf(err, errlen, "out of memory");
}

/* The dialled socket goes to lws, which does TLS and the WebSocket upgrade. */
/* A fresh context's settings, from zero: nothing of an earlier attempt carries over. */
static void context_info(struct link *l, struct lws_context_creation_info *info, void **foreign)
{
	memset(info, 0, sizeof(*info));
	info->port = CONTEXT_PORT_NO_LISTEN;
	info->protocols = link_protocols;
	/* UTF-8 of text from the server is checked in deliver(), faster than lws does */
	info->options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
			/* link.origin is sent as written, not prefixed with http:// */
			LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
	info->foreign_loops = foreign;
	info->user = l;
	/* below the ulimit, lws uses a small table instead of one slot per possible fd */
	info->fd_limit_per_thread = 16;
	info->pt_serv_buf_size = RX_CHUNK;
	info->timeout_secs = l->connect_timeout_s;
	info->connect_timeout_secs = l->connect_timeout_s;
	/* link_session.c finds the session cache by this name; its entries live as ours do */
	info->vhost_name = "wstether";
	info->tls_session_timeout = TLS_SESSION_MAX_LIFETIME_S;
	if (!l->resume)
		info->options |= LWS_SERVER_OPTION_DISABLE_TLS_SESSION_CACHE;
	if (l->url.tls) {
		/* always a CA: without one lws loads no client certificate either */
		info->client_ssl_ca_mem = l->ca.pem;
		info->client_ssl_ca_mem_len = (unsigned int)l->ca.len;
		/* TLS 1.3 is offered (and preferred) always; 1.2 unless tls.min_version = "1.3" */
		if (l->tls13_only)
			info->ssl_client_options_set = LWS_WST_SSL_OP_NO_TLSv1_2;
		if (l->cert.blob) {
			info->client_ssl_cert_mem = l->cert.blob;
			info->client_ssl_cert_mem_len = (unsigned int)l->cert.len;
			info->client_ssl_key_mem = l->cert.key;
			info->client_ssl_key_mem_len = (unsigned int)l->cert.key_len;
		}
	}
}

static void start_lws(struct link *l)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	void *foreign[1] = {l->loop};

	context_info(l, &info, foreign);
	l->ctx = lws_create_context(&info);
	if (!l->ctx) {
		link_end_set(&l->end, LINK_FAIL_LOCAL,
			     "cannot create the connection context%s%s (check tls.ca_file)",
			     l->url.tls ? " with CA file " : "", l->url.tls ? l->ca_file : "");
		link_finish(l);
		return;
	}

	link_session_offer(l);
	memset(&ci, 0, sizeof(ci));
	ci.context = l->ctx;
	ci.address = l->url.host;
	ci.adopt_fd = l->fd; /* patch 0006: no DNS, no proxy, no connect of its own */
	ci.port = l->url.port;
	ci.path = l->url.path;
	/* an IP literal here makes lws send no SNI and check the iPAddress SANs */
	ci.host = l->host_hdr;
	ci.origin = l->origin;
	ci.protocol = l->subprotocol;
	ci.local_protocol_name = link_protocols[0].name;
	/* LCCSCF_WST_RAW_WS_RX (our lws patch): we parse what the server sends, see wsrx.h */
	ci.ssl_connection = (l->url.tls ? LCCSCF_USE_SSL : 0) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT |
			    LCCSCF_WST_RAW_WS_RX;
	if (l->url.tls && l->insecure) {
		/* only here: no name to check (lws patch 0008 tells mbedTLS so, CVE-2025-27809) */
		ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_ALLOW_EXPIRED |
				     LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_INSECURE;
		log_msg(LOG_WARNING,
			"tls.insecure is set: the server certificate of %s is NOT "
			"verified; anyone on the path can read and change this link",
			l->url_text);
	}
	if (l->cert.blob)
		log_msg(LOG_INFO, "client certificate %s, subject %s, valid until %s", l->cert_file,
			l->cert.subject, l->cert.not_after);

	if (!lws_client_connect_via_info(&ci)) {
		/* CONNECTION_ERROR may already have said why and scheduled the reap */
		link_end_set(&l->end, LINK_FAIL_CONNECT, "cannot connect to %s:%u", l->url.host,
			     l->url.port);
		link_finish(l);
	}
}

static void dialled(void *ud, int fd, enum dial_fail why, const char *err)
{
	struct link *l = ud;
	socklen_t sl = sizeof(l->at.local);

	dial_free(l->dial);
	l->dial = NULL;
	explicit_bzero(l->proxy.user, sizeof(l->proxy.user));
	explicit_bzero(l->proxy.pass, sizeof(l->proxy.pass));
	if (fd < 0) {
		link_end_set(&l->end, why == DIAL_FAIL_PROXY ? LINK_FAIL_PROXY : LINK_FAIL_CONNECT,
			     "%s", err);
		link_finish(l);
		return;
	}
	l->fd = fd;
	if (getsockname(fd, (struct sockaddr *)&l->at.local, &sl) < 0)
		memset(&l->at.local, 0, sizeof(l->at.local));
	sl = sizeof(l->at.peer);
	if (getpeername(fd, (struct sockaddr *)&l->at.peer, &sl) < 0)
		memset(&l->at.peer, 0, sizeof(l->at.peer));
	if (l->proxy.kind != PROXY_NONE) {
		snprintf(l->at.via, sizeof(l->at.via), "%s (from %s)", l->proxy.text,
			 l->proxy.source);
		log_msg(LOG_INFO, "proxy %s connected us to %s:%u", l->at.via, l->url.host,
			l->url.port);
	}
	start_lws(l);
}

/* The proxy for this attempt: environment and auth file are read afresh. */
static int choose_proxy(struct link *l, const struct wst_config *cfg, char *err, size_t errlen)
{
	if (proxy_select(cfg->proxy, l->url.tls, l->url.host, (const char *(*)(const char *))getenv,
			 &l->proxy, err, errlen) < 0)
		return -1;
	if (l->proxy.kind != PROXY_NONE && *cfg->proxy_auth_file)
		return tunnel_read_auth_file(cfg->proxy_auth_file, &l->proxy, err, errlen);
	return 0;
}

const struct link_end *link_start(struct link *l, const struct wst_config *cfg,
				  const char *url_text)
{
	struct dial_req req;
	char err[1024];

	memset(&l->end, 0, sizeof(l->end));
	if (l->ctx || l->dial || l->ending) {
		link_end_set(&l->end, LINK_FAIL_LOCAL,
			     "internal: attempt started while one is active");
		return &l->end;
	}
	memset(&l->at, 0, sizeof(l->at));
	/* lws writes into what it parses: give it a scratch copy, never the config */
	if (url_parse(url_text, &l->url, err, sizeof(err)) < 0) {
		link_end_set(&l->end, LINK_FAIL_LOCAL, "invalid URL '%s': %s", url_text, err);
		return &l->end;
	}
	/* files on disk may have changed since the last attempt: read them again */
	if (l->url.tls && tls_load_ca(cfg, &l->ca, err, sizeof(err)) < 0) {
		link_end_set(&l->end, LINK_FAIL_TLS, "%s", err);
		return &l->end;
	}
	snprintf(l->url_text, sizeof(l->url_text), "%s", url_text);
	url_host_header(&l->url, cfg->server_name, l->host_hdr, sizeof(l->host_hdr));
	if (load_scratch(l, cfg, err, sizeof(err)) < 0 ||
	    choose_proxy(l, cfg, err, sizeof(err)) < 0) {
		link_end_set(&l->end, LINK_FAIL_LOCAL, "%s", err);
		link_free_scratch(l);
		link_release_dial(l);
		return &l->end;
	}
	snprintf(l->ca_file, sizeof(l->ca_file), "%s", cfg->ca_file);
	l->connect_timeout_s = cfg->connect_timeout_s;
	l->resume = cfg->session_resumption;
	l->ping_interval_s = cfg->ping_interval_s;
	l->pong_timeout_s = cfg->pong_timeout_s;
	l->max_message = cfg->max_message_bytes;
	if (cfg->compression == COMPRESSION_DEFLATE &&
	    !pmd_offer_header(&pmd_default_offer, l->at.deflate_offer, sizeof(l->at.deflate_offer)))
		l->at.deflate_offer[0] = '\0';

	memset(&req, 0, sizeof(req));
	req.host = l->url.host;
	req.port = l->url.port;
	req.proxy = &l->proxy;
	req.family = cfg->address_family;
	req.bind_address = cfg->bind_address;
	req.iface = cfg->interface;
	l->dial = dial_start(l->loop, &req, dialled, l, err, sizeof(err));
	if (!l->dial) {
		link_end_set(&l->end, LINK_FAIL_CONNECT, "%s", err);
		link_free_scratch(l);
		link_release_dial(l);
		return &l->end;
	}
	/* connect_timeout_s covers it all: lookup, connect, proxy, TLS and the upgrade */
	ev_timer_set(&l->connect_timer, cfg->connect_timeout_s, 0);
	ev_timer_start(l->loop, &l->connect_timer);
	return NULL;
}
