/* `wstetherctl status` for people: the status answer as a few labelled lines. */
#include "ctl_status.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static uint64_t num(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v ? json_object_get_uint64(v) : 0;
}

/* One labelled line, or its start. */
static __attribute__((format(printf, 3, 4))) void field(FILE *f, const char *label, const char *fmt,
							...)
{
	va_list ap;

	fprintf(f, "%13s: ", label);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
}

void ctl_status_duration(char *buf, size_t len, uint64_t s)
{
	if (s >= 86400)
		snprintf(buf, len, "%llud %lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(buf, len, "%lluh %llumin", (unsigned long long)(s / 3600),
			 (unsigned long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(buf, len, "%llumin %llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%llus", (unsigned long long)s);
}

void ctl_status_bytes(char *buf, size_t len, uint64_t b)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int i = -1;

	if (b < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)b);
		return;
	}
	while (v >= 1024 && i < 3) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[i]);
}

/* "2026-11-24T03:00:00Z" as a Unix time; 0 when it is not one. */
static time_t parse_utc(const char *s)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;

	return end && !*end ? timegm(&tm) : 0;
}

static void state_line(FILE *f, json_object *o, time_t now)
{
	const char *state = str(o, "state"), *since = str(o, "connected_since");
	json_object *retry = get(o, "next_retry_ms");
	time_t t = parse_utc(since);
	char d[32];

	field(f, "State", "%s", state ? state : "unknown");
	if (t && now >= t) {
		ctl_status_duration(d, sizeof(d), (uint64_t)(now - t));
		fprintf(f, " since %.10s %.8s UTC; up %s", since, since + 11, d);
	} else if (retry) {
		fprintf(f, "; next attempt in %.1f s", (double)json_object_get_int64(retry) / 1000);
	} else if (state && !strcmp(state, "paused")) {
		fputs(" (wstetherctl resume)", f);
	}
	fputc('\n', f);
	field(f, "URL", "%s\n", str(o, "url") ? str(o, "url") : "-");
	field(f, "Attempts", "%llu; %llu reconnects, %llu rotations\n",
	      (unsigned long long)num(o, "attempts"), (unsigned long long)num(o, "reconnects"),
	      (unsigned long long)num(o, "rotations"));
}

static void error_lines(FILE *f, json_object *o)
{
	json_object *close = get(o, "last_close");

	if (str(o, "last_error"))
		field(f, "Last error", "%s\n", str(o, "last_error"));
	if (close)
		field(f, "Last close", "%llu%s%s\n", (unsigned long long)num(close, "code"),
		      str(close, "reason") && *str(close, "reason") ? " " : "",
		      str(close, "reason") ? str(close, "reason") : "");
	if (str(o, "config_error"))
		field(f, "Config error", "%s (the running configuration is kept)\n",
		      str(o, "config_error"));
}

/* Only the reasons that count something: a healthy link shows none. */
static void drop_line(FILE *f, json_object *drops)
{
	bool any = false;

	json_object_object_foreach(drops, key, val)
	{
		uint64_t n = json_object_get_uint64(val);

		if (!n || !strcmp(key, "bridge_clients_dropped"))
			continue;
		if (!any)
			field(f, "Drops", "%llu %s", (unsigned long long)n, key);
		else
			fprintf(f, ", %llu %s", (unsigned long long)n, key);
		any = true;
	}
	if (any)
		fputc('\n', f);
}

static void queue_lines(FILE *f, json_object *o)
{
	json_object *q = get(o, "queue"), *sp = get(o, "spool");
	char b[32], m[32], d[32];

	field(f, "Messages", "%llu sent, %llu received, %llu resent\n",
	      (unsigned long long)num(o, "sent"), (unsigned long long)num(o, "received"),
	      (unsigned long long)num(o, "resent"));
	ctl_status_bytes(b, sizeof(b), num(q, "bytes"));
	ctl_status_bytes(m, sizeof(m), num(q, "max_bytes"));
	field(f, "Queue", "%llu of %llu messages, %s of %s (%s)\n",
	      (unsigned long long)num(q, "messages"), (unsigned long long)num(q, "max_messages"), b,
	      m, str(q, "overflow") ? str(q, "overflow") : "");
	drop_line(f, get(o, "drops"));
	if (!sp) {
		field(f, "Spool", "off (memory only)\n");
		return;
	}
	ctl_status_bytes(b, sizeof(b), num(sp, "bytes"));
	field(f, "Spool", "%s in %llu segment(s)", b, (unsigned long long)num(sp, "segments"));
	if (get(sp, "oldest_age_ms")) {
		ctl_status_duration(d, sizeof(d), num(sp, "oldest_age_ms") / 1000);
		fprintf(f, ", oldest %s", d);
	}
	if (str(sp, "holding_senders"))
		fprintf(f, "; HOLDING SENDERS: %s", str(sp, "holding_senders"));
	if (num(sp, "skipped_records") || num(sp, "segments_set_aside"))
		fprintf(f, "; %llu damaged record(s) skipped, %llu segment(s) set aside",
			(unsigned long long)num(sp, "skipped_records"),
			(unsigned long long)num(sp, "segments_set_aside"));
	fputc('\n', f);
}

static void link_lines(FILE *f, json_object *o)
{
	json_object *tls = get(o, "tls"), *net = get(o, "network"),
		    *insecure = get(tls, "insecure");
	const char *url = str(o, "url"), *cert = str(tls, "cert_not_after");
	json_object *comp = get(o, "compression");

	if (!url || strncmp(url, "wss://", 6))
		field(f, "TLS", "none (ws://)");
	else if (insecure && json_object_get_boolean(insecure))
		field(f, "TLS", "INSECURE: the server's certificate is not checked (tls.insecure)");
	else
		field(f, "TLS", "server certificate verified");
	if (cert)
		fprintf(f, "; client certificate valid until %s", cert);
	if (str(tls, "version")) /* what the link negotiated, while it is up */
		fprintf(f, "; %s, %s", str(tls, "version"),
			str(tls, "cipher") ? str(tls, "cipher") : "?");
	fputc('\n', f);
	field(f, "Proxy", "%s\n", str(net, "proxy") ? str(net, "proxy") : "none (direct)");
	if (comp)
		field(f, "Compression", "%s\n",
		      str(comp, "negotiated") ? str(comp, "negotiated")
					      : "deflate (not in use on this link)");
	field(f, "Local", "%llu bridge client(s)", (unsigned long long)num(o, "bridge_clients"));
	if (num(o, "exec_pid"))
		fprintf(f, "; exec handler pid %llu, %llu restart(s)",
			(unsigned long long)num(o, "exec_pid"),
			(unsigned long long)num(o, "exec_restarts"));
	fputc('\n', f);
}

int ctl_status_render(const char *json, const char *socket, time_t now, FILE *f)
{
	json_object *o = json_tokener_parse(json), *ok = get(o, "ok");

	if (!ok || !json_object_get_boolean(ok) || !str(o, "state")) {
		json_object_put(o);
		return -1;
	}
	fprintf(f, "wstether at %s\n", socket);
	state_line(f, o, now);
	error_lines(f, o);
	queue_lines(f, o);
	link_lines(f, o);
	json_object_put(o);
	return ferror(f) ? -1 : 0;
}
