#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "buildinfo.h"
#include "link.h"
#include "status.h"

#define P "wstether_"

/*
 * Every sample carries instance="NAME", so that the files of several
 * instances can sit in one node_exporter textfile directory.
 */
struct out {
	FILE *f;
	char inst[160]; /* instance="...", escaped */
};

static void head(struct out *o, const char *name, const char *type, const char *help)
{
	fprintf(o->f, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

/* One sample; labels: more `name="value"` pairs after instance, or NULL. */
static __attribute__((format(printf, 4, 5))) void sample(struct out *o, const char *name,
							 const char *labels, const char *fmt, ...)
{
	va_list ap;

	fprintf(o->f, P "%s{%s%s%s} ", name, o->inst, labels ? "," : "", labels ? labels : "");
	va_start(ap, fmt);
	vfprintf(o->f, fmt, ap);
	va_end(ap);
	fputc('\n', o->f);
}

static void one(struct out *o, const char *name, const char *type, const char *help,
		unsigned long long v)
{
	head(o, name, type, help);
	sample(o, name, NULL, "%llu", v);
}

/* Label values escape \, " and newline (text format 0.0.4). */
static void set_instance(struct out *o, const char *name)
{
	char *p = o->inst, *end = o->inst + sizeof(o->inst) - 3;

	p += sprintf(p, "instance=\"");
	for (const char *s = name ? name : ""; *s && p < end - 2; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n')
			*p++ = '\\';
		*p++ = *s == '\n' ? 'n' : *s;
	}
	*p++ = '"';
	*p = '\0';
}

static void build_metrics(struct out *o, const struct wst_status *st)
{
	char l[160];

	head(o, "build_info", "gauge",
	     "Always 1; the versions of wstether and of the libraries it runs with.");
	snprintf(l, sizeof(l), "version=\"%s\",lws=\"%s\",mbedtls=\"%s\"", WST_VERSION,
		 buildinfo_lws(), buildinfo_mbedtls());
	sample(o, "build_info", l, "1");
	one(o, "tls_insecure", "gauge", "Whether tls.insecure turns certificate checks off (1).",
	    st->insecure);
	head(o, "tls_handshakes_total", "counter",
	     "TLS handshakes of links that came up: full, or resuming a kept session.");
	sample(o, "tls_handshakes_total", "kind=\"full\"", "%llu", st->tls_full);
	sample(o, "tls_handshakes_total", "kind=\"resumed\"", "%llu", st->tls_resumed_total);
	head(o, "reloads_total", "counter", "Configuration reloads, by result.");
	sample(o, "reloads_total", "result=\"ok\"", "%llu", st->reloads_ok);
	sample(o, "reloads_total", "result=\"failed\"", "%llu", st->reloads_failed);
	head(o, "config_last_reload_success_timestamp_seconds", "gauge",
	     "When the configuration was last loaded successfully (start-up or reload), as a "
	     "Unix time.");
	sample(o, "config_last_reload_success_timestamp_seconds", NULL, "%lld",
	       (long long)st->last_reload_ok);
}

static void failures(struct out *o, const struct wst_status *st)
{
	unsigned long long other = 0;
	char l[64];

	head(o, "link_failures_total", "counter",
	     "Attempts that failed and links that ended without our request, by cause.");
	for (int i = 0; i < WST_STATUS_CAUSES; i++) {
		if (!link_fail_name(i)) {
			other += st->failures[i]; /* a kind without a name still counts */
			continue;
		}
		snprintf(l, sizeof(l), "cause=\"%s\"", link_fail_name(i));
		sample(o, "link_failures_total", l, "%llu", (unsigned long long)st->failures[i]);
	}
	if (other)
		sample(o, "link_failures_total", "cause=\"other\"", "%llu", other);
}

/* 1, labelled with what the link's TLS negotiated; no sample while no wss:// link is up. */
static void tls_info(struct out *o, const struct wst_status *st)
{
	char l[128];

	head(o, "tls_info", "gauge",
	     "1, labelled with the TLS version and cipher suite of the link.");
	if (!st->up || !st->tls_version || !st->tls_cipher)
		return;
	snprintf(l, sizeof(l), "version=\"%s\",cipher=\"%s\"", st->tls_version, st->tls_cipher);
	sample(o, "tls_info", l, "1");
}

static void link_metrics(struct out *o, const struct wst_status *st)
{
	one(o, "link_up", "gauge", "Whether the WebSocket link is up (1) or not (0).", st->up);
	head(o, "link_up_seconds", "gauge", "Seconds since the link came up; 0 while it is down.");
	sample(o, "link_up_seconds", NULL, "%.3f", (double)st->up_ms / 1000.0);
	head(o, "link_start_time_seconds", "gauge",
	     "When the current link came up, as a Unix time; no sample while it is down.");
	if (st->connected_since)
		sample(o, "link_start_time_seconds", NULL, "%lld", (long long)st->connected_since);
	one(o, "connect_attempts_total", "counter", "Connection attempts started.", st->attempts);
	one(o, "reconnects_total", "counter", "Links up again after one was lost.", st->reconnects);
	one(o, "rotations_total", "counter",
	    "Links replaced make-before-break (link.max_age_s, reconnect, a server restart).",
	    st->rotations);
	failures(o, st);
	head(o, "ping_rtt_seconds", "gauge", "Round-trip time of the last timed ping.");
	if (st->ping_rtt_us >= 0)
		sample(o, "ping_rtt_seconds", NULL, "%.6f", (double)st->ping_rtt_us / 1e6);
	head(o, "client_cert_expiry_timestamp_seconds", "gauge",
	     "When the client certificate expires, as a Unix time.");
	if (st->cert_expiry)
		sample(o, "client_cert_expiry_timestamp_seconds", NULL, "%lld",
		       (long long)st->cert_expiry);
	tls_info(o, st);
}

/* The reasons of status "drops" that count messages, with their bytes. */
static void drops(struct out *o, const struct wst_status *st)
{
	const struct {
		const char *reason;
		unsigned long long n, bytes;
	} r[] = {
	    {"queue_overflow", st->dropped, st->dropped_bytes},
	    {"rejected", st->rejected, st->rejected_bytes},
	    {"unframable", st->unframable, st->unframable_bytes},
	    {"undelivered", st->undelivered, st->undelivered_bytes},
	    {"invalid_utf8", st->invalid_utf8, st->invalid_utf8_bytes},
	    {"oversized", st->oversized, st->oversized_bytes},
	    {"larger_than_queue", st->too_big, st->too_big_bytes},
	};
	size_t n = sizeof(r) / sizeof(r[0]);
	char l[64];

	head(o, "messages_dropped_total", "counter", "Messages not delivered, by reason.");
	for (size_t i = 0; i < n; i++) {
		snprintf(l, sizeof(l), "reason=\"%s\"", r[i].reason);
		sample(o, "messages_dropped_total", l, "%llu", r[i].n);
	}
	head(o, "dropped_bytes_total", "counter",
	     "Payload bytes of messages not delivered, by reason.");
	for (size_t i = 0; i < n; i++) {
		snprintf(l, sizeof(l), "reason=\"%s\"", r[i].reason);
		sample(o, "dropped_bytes_total", l, "%llu", r[i].bytes);
	}
	head(o, "local_clients_dropped_total", "counter",
	     "Bridge clients dropped and exec handlers terminated, by reason.");
	sample(o, "local_clients_dropped_total", "reason=\"slow_reader\"", "%llu",
	       st->slow_readers);
	sample(o, "local_clients_dropped_total", "reason=\"bad_framing\"", "%llu", st->bad_framing);
	one(o, "bridge_clients_dropped_total", "counter",
	    "Bridge clients dropped (the bridge's share of local_clients_dropped_total).",
	    st->bridge_clients_dropped);
}

static void message_metrics(struct out *o, const struct wst_status *st)
{
	one(o, "messages_sent_total", "counter",
	    "Messages written to the server, resends included.", st->sent);
	one(o, "sent_bytes_total", "counter",
	    "Payload bytes written to the server, resends included.", st->sent_bytes);
	one(o, "messages_received_total", "counter", "Messages received from the server.",
	    st->received);
	one(o, "received_bytes_total", "counter", "Payload bytes received from the server.",
	    st->received_bytes);
	one(o, "messages_confirmed_total", "counter",
	    "Messages the server confirmed reading (a pong after them); they left the queue.",
	    st->confirmed);
	one(o, "confirmed_bytes_total", "counter", "Payload bytes of confirmed messages.",
	    st->confirmed_bytes);
	one(o, "messages_resent_total", "counter",
	    "Messages written again after a link ended before confirming them.", st->resent);
	one(o, "resent_bytes_total", "counter", "Payload bytes of resent messages.",
	    st->resent_bytes);
	drops(o, st);
}

static void spool_metrics(struct out *o, const struct wst_status *st)
{
	const struct spool_status *sp = &st->spool;
	bool on = st->spool_on;

	one(o, "spool_bytes", "gauge", "Bytes of the spool's segment files on disk.",
	    on ? sp->bytes : 0);
	one(o, "spool_skipped_records_total", "counter",
	    "Damaged spool records skipped since start-up (their messages are lost).",
	    on ? sp->skipped_records : 0);
	one(o, "spool_skipped_bytes_total", "counter",
	    "Bytes of the damaged records skipped, torn tails included.",
	    on ? sp->skipped_bytes : 0);
	one(o, "spool_segments_set_aside_total", "counter",
	    "Spool segments set aside as unreadable since start-up.", on ? sp->set_aside : 0);
	one(o, "spool_holding_senders", "gauge",
	    "Whether local senders are held back because the spool cannot be written (1).",
	    on && sp->holding);
}

static void queue_metrics(struct out *o, const struct wst_status *st)
{
	/* the spool dates messages across restarts; the queue, from when it got them */
	int64_t oldest = st->spool_on && st->spool.oldest_age_ms > st->oldest_queued_ms
			     ? st->spool.oldest_age_ms
			     : st->oldest_queued_ms;

	one(o, "queue_messages", "gauge", "Messages queued for the server, in flight included.",
	    st->queue_messages);
	one(o, "queue_bytes", "gauge", "Payload bytes queued for the server.", st->queue_bytes);
	one(o, "queue_max_messages", "gauge", "queue.max_messages.", st->queue_max_messages);
	one(o, "queue_max_bytes", "gauge", "queue.max_bytes.", st->queue_max_bytes);
	spool_metrics(o, st);
	head(o, "queue_oldest_age_seconds", "gauge",
	     "How long the oldest queued message has waited; 0 when the queue is empty.");
	sample(o, "queue_oldest_age_seconds", NULL, "%.3f",
	       oldest > 0 ? (double)oldest / 1000.0 : 0.0);
	one(o, "bridge_clients", "gauge", "Clients connected to the bridge socket.",
	    st->bridge_clients);
	one(o, "exec_restarts_total", "counter", "Times the exec handler was started again.",
	    st->exec_restarts);
}

char *metrics_text(const struct wst_status *st, size_t *len)
{
	char *buf = NULL;
	struct out o = {.f = open_memstream(&buf, len)};
	bool bad;

	if (!o.f)
		return NULL;
	set_instance(&o, st->instance);
	build_metrics(&o, st);
	link_metrics(&o, st);
	message_metrics(&o, st);
	queue_metrics(&o, st);
	bad = ferror(o.f);
	if (fclose(o.f) != 0 || bad) {
		free(buf);
		return NULL;
	}
	return buf;
}
