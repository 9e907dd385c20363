#ifndef WST_DAEMON_INT_H
#define WST_DAEMON_INT_H

/* The daemon's runtime state, shared by daemon.c, daemon_link.c and daemon_ctl.c only. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <ev.h>

#include "daemon.h"
#include "endpoint.h"
#include "netwatch.h"
#include "outbox.h"
#include "supervisor.h"
#include "tls_session.h"

struct control_ops;
struct daemon;

/* A link object and the supervisor's id of the attempt it carries (0: none). */
struct slot {
	struct daemon *d;
	struct link *link;
	uint64_t id;
};

enum source {
	SRC_ONE,	/* a single message (wstetherctl send) */
	SRC_STREAM,	/* a bridge client or the exec handler */
	SRC_STDIN,	/* a pipe: held back when full, never dropped */
};

/* What daemon_link.c and daemon_ctl.c report and ask up: daemon.c fills it, they never name it. */
struct daemon_events {
	/* a message from the server, for every local endpoint */
	void (*deliver)(struct daemon *d, const unsigned char *data, size_t len, bool binary);
	void (*confirmed)(struct daemon *d);	/* messages were confirmed and left the queue */
	void (*resume_local)(struct daemon *d); /* held-back local senders may go on */
	void (*maybe_finish)(struct daemon *d); /* ends the run once everything is delivered */
	void (*quit)(struct daemon *d);
	/* a message from a local program; false: the sender is held back for now */
	bool (*enqueue)(struct daemon *d, const unsigned char *data, size_t len, bool binary,
			enum source src);
};

struct daemon {
	struct daemon_events up;
	struct ev_loop *loop;
	const struct wst_config *cfg;
	struct daemon_opts opts;
	struct outbox out;	/* the queue and its spool */
	struct link *link;	/* the primary slot's: carries traffic, answers status */
	struct supervisor sup;
	struct stdio_bridge *sio;
	struct bridge *bridge;
	struct exec_handler *exec;
	struct endpoint local[3];	/* stdio, bridge, exec: the ones configured */
	size_t n_local;
	struct control *control;
	struct netwatch *net;	/* rtnetlink; NULL when it cannot be opened */
	unsigned long long net_probes, net_retries;

	ev_signal sig_term, sig_int, sig_hup;
	ev_timer flow_timer;
	bool rx_pause_local;
	ev_timer retry_timer, drain_timer, linger_timer;
	ev_tstamp linger_deadline;

	bool stopping;		/* SIGTERM: drain, close with 1001, exit */
	bool eof;		/* stdin ended: deliver, close with 1000, exit */
	bool closing;		/* the final close was requested */
	bool lingered;		/* after stdin EOF, the server had its quiet moment */

	const char **urls;	/* link.url then link.fallback_urls, for the supervisor */
	struct slot slots[2];	/* two links at once during a rotation */
	ev_timer age_timer;	/* link.max_age_s */
	uint64_t rng;		/* its jitter */
	char config_error[1024];
	char instance[128];	/* instance_name() of the config path */
	unsigned long long reloads_ok, reloads_failed;
	time_t last_reload_ok;
	struct tls_sessions sessions;	/* the one thing an attempt leaves to the next */
};

/* daemon_link.c */
const char *daemon_url(const struct daemon *d);
uint64_t daemon_now_ms(void);
/* Carry out what the supervisor decided. */
void daemon_apply(struct daemon *d, const struct sup_verdict *v);
int daemon_links_init(struct daemon *d);
void daemon_links_finish(struct daemon *d);
bool daemon_links_active(const struct daemon *d);
void daemon_net_change(void *ud, enum net_change what, const struct sockaddr_storage *addr,
		       unsigned prefix);

/* daemon_ctl.c */
void daemon_control_ops(struct daemon *d, struct control_ops *ops);
void daemon_sup_params(const struct wst_config *c, struct sup_params *p);
/* Make c the running config (the old one is freed). -1: out of memory, nothing changed. */
int daemon_use_config(struct daemon *d, const struct wst_config *c, bool reset_url);
/* Reload from the files; NULL, or why the running config was kept. */
const char *daemon_reload(struct daemon *d);

#endif
