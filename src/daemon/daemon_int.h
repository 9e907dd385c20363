#ifndef WST_DAEMON_INT_H
#define WST_DAEMON_INT_H

/* The daemon's wiring, shared by daemon.c and daemon_ctl.c only. */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <ev.h>

#include "daemon.h"
#include "endpoint.h"
#include "outbox.h"

struct control_ops;
struct links;

/* The wiring between the owners: each keeps its own state. */
struct daemon {
	struct ev_loop *loop;
	const struct wst_config *cfg;
	struct daemon_opts opts;
	struct outbox out;	  /* the queue and its spool */
	struct links *links;	  /* the supervisor and the link objects */
	struct endpoint local[3]; /* stdio, bridge, exec: the ones configured */
	size_t n_local;
	struct control *control;
	struct netwatch *net; /* rtnetlink; NULL when it cannot be opened */

	ev_signal sig_term, sig_int, sig_hup;
	ev_timer flow_timer;
	bool rx_pause_local;

	char config_error[1024];
	char instance[128]; /* instance_name() of the config path */
	unsigned long long reloads_ok, reloads_failed;
	time_t last_reload_ok;
};

/* daemon_ctl.c */
void daemon_control_ops(struct daemon *d, struct control_ops *ops);
/* Reload from the files; NULL, or why the running config was kept ("stopping": not tried). */
const char *daemon_reload(struct daemon *d);

#endif
