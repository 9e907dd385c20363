#ifndef WST_SUPERVISOR_H
#define WST_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "backoff.h"
#include "link.h"
#include "log.h"
#include "ratelimit.h"

/*
 * The link's life and every policy decision about it, as pure logic: which
 * state, which URL, when to try again, how loudly to say what happened. It
 * takes events (attempt started, link up, link down with a cause record,
 * operator request, time passed) with the clock passed in (monotonic ms) and
 * returns verdicts; the daemon carries them out. Unit tests drive it with a
 * fake clock.
 *
 * Attempts carry ids so that two can exist at once (make-before-break
 * rotation): the primary, which carries traffic, and a standby that replaces
 * it once up.
 */
/* Failure kinds counted apart; a larger kind counts in the last slot. */
#define SUP_FAIL_KINDS 16

enum sup_state { SUP_IDLE, SUP_CONNECTING, SUP_CONNECTED, SUP_WAITING, SUP_PAUSED, SUP_STOPPING };

enum sup_do {
	SUP_DO_NOTHING,
	SUP_DO_CONNECT, /* start attempt `id` to `url` now */
	SUP_DO_WAIT,	/* connect when sup_timer() says so, after delay_ms */
	SUP_DO_CLOSE,	/* close link `id` with close_code and close_reason */
	SUP_DO_PROMOTE, /* link `id` carries traffic now; link `old` (0: none) finishes */
};

/*
 * What local programs are told (link events): the link came up, an
 * established link went down, or an attempt failed before it came up.
 */
enum sup_change { SUP_CHANGE_NONE, SUP_CHANGE_UP, SUP_CHANGE_DOWN, SUP_CHANGE_FAILED };

struct sup_line {
	int level; /* LOG_* */
	/* event, attempt, url; of the primary's change: link, cause, close code, HTTP status */
	struct log_ctx ctx;
	char text[700];
};

struct sup_event {
	enum sup_change change;
	const char *url;
	unsigned attempt; /* attempts since the last stable link */
	int fail;	  /* down, failed: the link's failure kind */
	bool by_request;  /* down: we closed it (reconnect, pause, stop) */
	int close_code;	  /* the server's close code, else 0 */
	const char *close_reason;
	int http_status;  /* failed: of a refused upgrade, else 0 */
	const char *msg;  /* the link's one-line explanation */
	int64_t retry_ms; /* the next attempt in this many ms; -1: none planned */
	const char *tls_version, *tls_cipher; /* up over TLS: what it negotiated, else NULL */
};

/* A verdict says what happened and what comes next: at most two lines. */
#define SUP_MAX_LINES 2

struct sup_verdict {
	enum sup_do act;
	uint64_t id;  /* the attempt to start, close or promote */
	uint64_t old; /* SUP_DO_PROMOTE: the link it replaces */
	const char *url;
	unsigned delay_ms;
	int close_code;
	const char *close_reason;
	const char *refused;		      /* an operator request refused: the reason */
	struct sup_line lines[SUP_MAX_LINES]; /* to log, in order */
	size_t n_lines;
	unsigned lines_lost; /* lines past SUP_MAX_LINES, the last in spill: a bug */
	struct sup_line spill;
	char status[256];	/* sd_notify STATUS=, "" = unchanged */
	struct sup_event event; /* pointers valid until the link starts again */
};

struct sup_params {
	unsigned initial_ms, max_ms;
	double multiplier, jitter;
	unsigned reset_after_s; /* a link up this long is stable: backoff, tries, log reset */
	unsigned drain_ms;	/* at the end of the run, the longest wait for the server */
};

enum sup_request {
	SUP_REQ_RECONNECT,	/* `wstetherctl reconnect`: close, connect at once, backoff reset */
	SUP_REQ_RECONFIGURE,	/* a reload changed link settings: use them at once */
	SUP_REQ_ROTATE,		/* open a standby link; it replaces the primary once up */
	SUP_REQ_SERVER_RESTART, /* the server closes with 1001/1012: rotate, once per streak */
	SUP_REQ_PAUSE,
	SUP_REQ_RESUME,
	SUP_REQ_STOP,
};

struct supervisor {
	enum sup_state state;
	struct sup_params p;
	struct backoff bo;
	const char *const *urls; /* link.url then link.fallback_urls */
	size_t n_urls, url_idx;

	uint64_t next_id;
	uint64_t primary;	/* the attempt or link that carries traffic; 0 = none */
	uint64_t standby;	/* a rotation's new attempt; 0 = none */
	uint64_t retiring;	/* an old link closing after a rotation; 0 = none */
	bool reconnect_pending; /* connect at once when the primary ends */
	bool pause_pending;
	bool standby_for_restart; /* the standby replaces a link the server is closing */

	uint64_t connected_since; /* monotonic ms, valid while connected */
	uint64_t down_since;	  /* when the last link ended; 0 = never up */
	uint64_t retry_at;	  /* monotonic ms of the next attempt while waiting */
	unsigned tries;		  /* attempts since the last stable link */
	uint64_t attempts, reconnects, rotations;
	/* ends not by our request, by the link's failure kind */
	uint64_t failures[SUP_FAIL_KINDS];
	bool quick_retry_used; /* a restart close got its fast retry this streak */

	/* log-rate policy */
	enum link_fail last_fail;
	int last_sig;
	unsigned streak;	 /* the same failure in a row */
	bool flapping;		 /* the last link dropped before it was stable */
	struct ratelimit repeat; /* repeats of one failure */

	int last_close_code;
	char last_close_reason[124];
	char last_error[512];

	/* the end of the run (sup_finish.c) */
	struct sup_fin {
		bool stop;	       /* SIGTERM: drain, close with 1001, exit */
		bool eof;	       /* stdin ended: deliver, close with 1000, exit */
		bool closing;	       /* the final close was asked for */
		bool lingered;	       /* after EOF, the server had its quiet moment */
		uint64_t drain_until;  /* stop: wait for confirmations until then; 0: none */
		uint64_t linger_until; /* EOF: replies extend the quiet moment until then */
		uint64_t quiet_until;  /* EOF: the quiet moment ends then */
	} fin;
};

void sup_init(struct supervisor *s, const struct sup_params *p, const char *const *urls,
	      size_t n_urls, uint64_t seed);
/* A reload: new policy and URLs (the caller keeps urls alive); reset_url starts at link.url. */
void sup_reconfigure(struct supervisor *s, const struct sup_params *p, const char *const *urls,
		     size_t n_urls, bool reset_url);

/* The first attempt at start-up. */
void sup_start(struct supervisor *s, struct sup_verdict *v);
/* The wait of a SUP_DO_WAIT verdict is over. */
void sup_timer(struct supervisor *s, uint64_t now, struct sup_verdict *v);
void sup_up(struct supervisor *s, uint64_t id, uint64_t now, struct sup_verdict *v);
/* Link id ended as e says (equal fail kinds are "the same failure"), with queued unconfirmed. */
void sup_down(struct supervisor *s, uint64_t id, uint64_t now, const struct link_end *e,
	      size_t queued, struct sup_verdict *v);
void sup_request(struct supervisor *s, enum sup_request r, uint64_t now, struct sup_verdict *v);

/*
 * The end of the run, in sup_finish.c. SIGTERM stops: local input ends, the
 * queue drains for at most drain_ms, the link closes with 1001. stdin's EOF
 * ends the run once the queue is empty: the server gets a quiet moment to
 * answer our last messages (a pong can overtake its reply, and lws drops
 * what arrives after our close), then the link closes with 1000. Both are
 * settled by sup_settle, called whenever the world below changed.
 */
struct sup_world {
	size_t queued; /* messages not yet confirmed */
	bool up;       /* the primary link is up */
	bool active;   /* the primary link or attempt exists */
	bool others;   /* another link exists (a rotation's) */
};

enum sup_fin_do {
	SUP_FIN_NONE,
	SUP_FIN_CLOSE, /* close the primary with close_code, close_reason */
	SUP_FIN_ABORT, /* abandon the primary's attempt */
	SUP_FIN_QUIT,  /* nothing is left: end the loop */
};

struct sup_finish {
	enum sup_fin_do act;
	bool abort_others; /* a rotation's other link owes nothing: abandon it */
	int close_code;
	const char *close_reason;
	uint64_t wake_at;   /* settle again then (monotonic ms); 0: when the world changes */
	size_t undelivered; /* the drain timed out with this many messages left: warn */
};

/* SIGTERM and the like. false: the run was stopping already (a second signal). */
bool sup_stop(struct supervisor *s, uint64_t now, const struct sup_world *w);
void sup_eof(struct supervisor *s);
/* A message from the server: while the quiet moment lasts, it starts over. */
void sup_heard(struct supervisor *s, uint64_t now);
void sup_settle(struct supervisor *s, uint64_t now, const struct sup_world *w,
		struct sup_finish *f);
/* Stop or EOF: no rotations, no new link beyond what delivery needs. */
bool sup_ending(const struct supervisor *s);

const char *sup_state_name(enum sup_state st);
const char *sup_url(const struct supervisor *s);
/* ms until the next attempt while waiting, else -1. */
int64_t sup_next_retry_ms(const struct supervisor *s, uint64_t now);
struct wst_status;
/* The supervisor's part of the status at monotonic now, wall-clock time wall. */
void sup_status(const struct supervisor *s, uint64_t now, time_t wall, struct wst_status *st);

#endif
