#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "link.h"
#include "status.h"

#define P "wstether_"

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, unsigned long long v)
{
	head(f, name, type, help);
	fprintf(f, P "%s %llu\n", name, v);
}

static void link_metrics(FILE *f, const struct wst_status *st)
{
	unsigned long long other = 0;

	one(f, "link_up", "gauge", "Whether the WebSocket link is up (1) or not (0).", st->up);
	head(f, "link_up_seconds", "gauge", "Seconds since the link came up; 0 while it is down.");
	fprintf(f, P "link_up_seconds %.3f\n", (double)st->up_ms / 1000.0);
	one(f, "connect_attempts_total", "counter", "Connection attempts started.", st->attempts);
	one(f, "reconnects_total", "counter", "Links up again after one was lost.", st->reconnects);
	head(f, "link_failures_total", "counter",
	     "Attempts that failed and links that ended without our request, by cause.");
	for (int i = 0; i < WST_STATUS_CAUSES; i++)
		if (link_fail_name(i))
			fprintf(f, P "link_failures_total{cause=\"%s\"} %llu\n", link_fail_name(i),
				(unsigned long long)st->failures[i]);
		else
			other += st->failures[i]; /* a kind without a name still counts */
	if (other)
		fprintf(f, P "link_failures_total{cause=\"other\"} %llu\n", other);
	head(f, "ping_rtt_seconds", "gauge", "Round-trip time of the last timed ping.");
	if (st->ping_rtt_us >= 0)
		fprintf(f, P "ping_rtt_seconds %.6f\n", (double)st->ping_rtt_us / 1e6);
	head(f, "client_cert_expiry_timestamp_seconds", "gauge",
	     "When the client certificate expires, as a Unix time.");
	if (st->cert_expiry)
		fprintf(f, P "client_cert_expiry_timestamp_seconds %lld\n",
			(long long)st->cert_expiry);
	head(f, "tls_info", "gauge",
	     "1, labelled with the TLS version and cipher suite of the link.");
	if (st->up && st->tls_version && st->tls_cipher)
		fprintf(f, P "tls_info{version=\"%s\",cipher=\"%s\"} 1\n", st->tls_version,
			st->tls_cipher);
}

static void message_metrics(FILE *f, const struct wst_status *st)
{
	one(f, "messages_sent_total", "counter",
	    "Messages written to the server, resends included.", st->sent);
	one(f, "sent_bytes_total", "counter",
	    "Payload bytes written to the server, resends included.", st->sent_bytes);
	one(f, "messages_received_total", "counter", "Messages received from the server.",
	    st->received);
	one(f, "received_bytes_total", "counter", "Payload bytes received from the server.",
	    st->received_bytes);
	one(f, "messages_confirmed_total", "counter",
	    "Messages the server confirmed reading (a pong after them); they left the queue.",
	    st->confirmed);
	one(f, "confirmed_bytes_total", "counter", "Payload bytes of confirmed messages.",
	    st->confirmed_bytes);
	one(f, "messages_resent_total", "counter",
	    "Messages written again after a link ended before confirming them.", st->resent);
	one(f, "resent_bytes_total", "counter", "Payload bytes of resent messages.",
	    st->resent_bytes);
	head(f, "messages_dropped_total", "counter", "Messages not delivered, by reason.");
	fprintf(f, P "messages_dropped_total{reason=\"queue_overflow\"} %llu\n", st->dropped);
	fprintf(f, P "messages_dropped_total{reason=\"rejected\"} %llu\n", st->rejected);
	fprintf(f, P "messages_dropped_total{reason=\"unframable\"} %llu\n", st->unframable);
	one(f, "dropped_bytes_total", "counter",
	    "Payload bytes of queued messages dropped to make room (queue.overflow = drop-oldest).",
	    st->dropped_bytes);
}

static void queue_metrics(FILE *f, const struct wst_status *st)
{
	/* the spool dates messages across restarts; the queue, from when it got them */
	int64_t oldest = st->spool_on && st->spool.oldest_age_ms > st->oldest_queued_ms
			     ? st->spool.oldest_age_ms
			     : st->oldest_queued_ms;

	one(f, "queue_messages", "gauge", "Messages queued for the server, in flight included.",
	    st->queue_messages);
	one(f, "queue_bytes", "gauge", "Payload bytes queued for the server.", st->queue_bytes);
	one(f, "queue_max_messages", "gauge", "queue.max_messages.", st->queue_max_messages);
	one(f, "queue_max_bytes", "gauge", "queue.max_bytes.", st->queue_max_bytes);
	one(f, "spool_bytes", "gauge", "Bytes of the spool's segment files on disk.",
	    st->spool_on ? st->spool.bytes : 0);
	head(f, "queue_oldest_age_seconds", "gauge",
	     "How long the oldest queued message has waited; 0 when the queue is empty.");
	fprintf(f, P "queue_oldest_age_seconds %.3f\n", oldest > 0 ? (double)oldest / 1000.0 : 0.0);
	one(f, "bridge_clients", "gauge", "Clients connected to the bridge socket.",
	    st->bridge_clients);
}

char *metrics_text(const struct wst_status *st, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	link_metrics(f, st);
	message_metrics(f, st);
	queue_metrics(f, st);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
