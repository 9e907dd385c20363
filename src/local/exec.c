#include "exec.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "backoff.h"
#include "config.h"
#include "log.h"
#include "peer.h"
#include "ratelimit.h"

/* The daemon stops reading from the server long before this (see exec_pending). */
#define OUT_LIMIT (16 * 1024 * 1024)
#define STDERR_LINE 1024
/* A handler that ran this long earns a fresh restart backoff. */
#define STABLE_S 10.0
/* SIGTERM, then SIGKILL this much later: for every process of a handler's generation */
#define TERM_WAIT_S 2.0
/* The children of a killed process come to us (the subreaper): kill again, so often, so long. */
#define KILL_ROUND_S 0.05
#define KILL_ROUNDS 20
#define KILL_MSG "exec handler %d: its processes ignored SIGTERM for %.0f s: killing them"

struct exec_handler {
	struct ev_loop *loop;
	char **argv;
	enum framing framing;
	size_t max_message;
	struct endpoint_events ops;

	pid_t pid;    /* 0 once reaped: its pid may be someone else's then */
	pid_t pgid;   /* its process group; 0 once that is empty */
	int name_pid; /* for log lines, also after it was reaped */
	struct peer *peer;
	ev_child cw;
	ev_io errw;
	ev_timer restart, grace;
	int kill_rounds;
	struct backoff bo;
	ev_tstamp started;
	char errbuf[STDERR_LINE];
	size_t errlen;
	bool input_stopped;
	unsigned long long restarts;
	struct endpoint_drops drops;
	struct ratelimit drop_log;
	bool events;		/* exec.events: event frames on its stdin */
	struct last_event last; /* replayed to a handler that (re)starts */
};

static void spawn(struct exec_handler *e);

/* Our children: the handler, and orphans of its descendants (we are their subreaper). */
static int signal_children(int sig)
{
	char path[64], buf[4096], *p, *end;
	ssize_t len;
	int fd, n = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[len > 0 ? len : 0] = '\0';
	for (p = buf;; p = end) {
		long pid = strtol(p, &end, 10);

		if (end == p)
			break;
		if (pid > 0 && kill((pid_t)pid, sig) == 0)
			n++;
	}
	return n;
}

/*
 * Signal what is left of the handler's generation: its process group, and
 * whoever left the group (setsid) and was orphaned to us. With sig 0, the
 * count tells whether any of it is left.
 */
static int signal_generation(struct exec_handler *e, int sig)
{
	int n = signal_children(sig);

	if (e->pgid > 0) {
		if (kill(-e->pgid, sig) == 0)
			n++;
		else if (errno == ESRCH)
			e->pgid = 0; /* empty: its id may be reused, never signal it again */
	}
	return n;
}

/* SIGTERM the generation now and SIGKILL what is left after TERM_WAIT_S; false: none left. */
static bool terminate(struct exec_handler *e)
{
	if (!signal_generation(e, SIGTERM))
		return false;
	if (!ev_is_active(&e->grace)) {
		e->kill_rounds = 0;
		ev_timer_set(&e->grace, TERM_WAIT_S, 0);
		ev_timer_start(e->loop, &e->grace);
	}
	return true;
}

static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct exec_handler *e = w->data;
	int n = signal_generation(e, SIGKILL);

	if (n && !e->kill_rounds)
		log_msg(LOG_WARNING, KILL_MSG, e->name_pid, TERM_WAIT_S);
	if (n && ++e->kill_rounds < KILL_ROUNDS) {
		ev_timer_set(w, KILL_ROUND_S, 0);
		ev_timer_start(loop, w);
	}
}

static void peer_closed(void *ud, struct peer *p, const char *why)
{
	struct exec_handler *e = ud;

	/* its exit is reported by the child watcher; a protocol error is worth a line */
	if (strcmp(why, "closed"))
		log_msg(LOG_WARNING, "exec handler %d: %s: closing its pipes", e->name_pid, why);
	peer_destroy(e->peer);
	e->peer = NULL;
	if (e->pid > 0 && strcmp(why, "closed"))
		terminate(e);
}

/* It closed its stdout: it may still want the server's messages, so its stdin stays. */
static void peer_eof(void *ud, struct peer *p)
{
	struct exec_handler *e = ud;
	siginfo_t si = {0};

	/* at its exit the child watcher speaks */
	if (waitid(P_PID, e->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && !si.si_pid)
		log_msg(LOG_INFO,
			"exec handler %d closed its stdout: it still receives the "
			"server's messages until it exits",
			e->name_pid);
}

static void flush_err_line(struct exec_handler *e)
{
	if (!e->errlen)
		return;
	e->errbuf[e->errlen] = '\0';
	log_msg(LOG_INFO, "exec handler %d: %s", e->name_pid, e->errbuf);
	e->errlen = 0;
}

static void stop_stderr(struct exec_handler *e)
{
	if (e->errw.fd < 0)
		return;
	ev_io_stop(e->loop, &e->errw);
	flush_err_line(e);
	close(e->errw.fd);
	ev_io_set(&e->errw, -1, EV_READ);
}

static void err_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct exec_handler *e = w->data;
	char buf[4096];
	ssize_t n = read(w->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		stop_stderr(e);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		/* an endless line comes out in pieces */
		if (buf[i] == '\n' || e->errlen == STDERR_LINE - 1)
			flush_err_line(e);
		if (buf[i] != '\n')
			e->errbuf[e->errlen++] = buf[i];
	}
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct exec_handler *e = w->data;
	int st = w->rstatus, pid = (int)e->pid;
	double ran = ev_now(loop) - e->started;
	unsigned delay;

	ev_child_stop(loop, w);
	e->pid = 0; /* reaped: its pid may belong to someone else now, never signal it */
	/* libev may report the exit before the last output was read: read it first */
	if (e->peer)
		peer_drain_input(e->peer);
	err_cb(loop, &e->errw, 0);
	stop_stderr(e);
	peer_destroy(e->peer);
	e->peer = NULL;
	if (terminate(e))
		log_msg(LOG_NOTICE,
			"exec handler %d left processes behind: terminating them "
			"before the restart",
			pid);
	if (ran >= STABLE_S)
		backoff_reset(&e->bo);
	delay = backoff_next(&e->bo);
	if (WIFSIGNALED(st))
		log_msg(LOG_WARNING,
			"exec handler %d was killed by signal %d; restarting in %.1f s", pid,
			WTERMSIG(st), delay / 1000.0);
	else
		log_msg(LOG_WARNING, "exec handler %d exited with status %d; restarting in %.1f s",
			pid, WEXITSTATUS(st), delay / 1000.0);
	ev_timer_set(&e->restart, delay / 1000.0, 0);
	ev_timer_start(loop, &e->restart);
}

static void restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct exec_handler *e = w->data;

	/* a new generation starts once the last one is gone */
	if (ev_is_active(&e->grace) && signal_generation(e, 0)) {
		ev_timer_set(w, KILL_ROUND_S, 0);
		ev_timer_start(loop, w);
		return;
	}
	ev_timer_stop(loop, &e->grace);
	signal_generation(e, SIGKILL); /* what came to us since, or outlived the rounds */
	e->pgid = 0;
	e->restarts++;
	spawn(e);
}

/* Our environment minus what systemd meant for us alone (sd_notify, watchdog, sockets). */
static char **child_env(void)
{
	static const char *const ours[] = {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
					   "LISTEN_FDS=",    "LISTEN_PID=",    "LISTEN_FDNAMES="};
	static char *env[512];
	size_t n = 0;

	for (char **p = environ; *p && n < sizeof(env) / sizeof(env[0]) - 1; p++) {
		bool skip = false;

		for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
			if (!strncmp(*p, ours[i], strlen(ours[i])))
				skip = true;
		if (!skip)
			env[n++] = *p;
	}
	env[n] = NULL;
	return env;
}

/* The handler runs: its pipes become a peer and a stderr reader, and it is watched. */
static void attach(struct exec_handler *e, int out0, int in1, int err0)
{
	struct peer_ops pops = {
	    .ev = e->ops, .ud = e, .closed = peer_closed, .eof = peer_eof, .drops = &e->drops};
	char name[64];

	e->started = ev_now(e->loop);
	e->pgid = e->pid; /* POSIX_SPAWN_SETSID: a new session and process group */
	e->name_pid = (int)e->pid;
	snprintf(name, sizeof(name), "exec handler %d", (int)e->pid);
	e->peer =
	    peer_create(e->loop, out0, in1, e->framing, e->max_message, OUT_LIMIT, name, &pops);
	if (!e->peer) {
		close(out0);
		close(in1);
	} else {
		if (e->input_stopped)
			peer_stop_input(e->peer);
		if (e->events)
			last_event_replay(&e->last, e->peer);
	}
	if (fd_nonblock(err0) < 0) {
		/* a blocking read would stall the loop: do without the handler's stderr */
		log_errno(LOG_WARNING, "exec handler %d: its stderr cannot be read", (int)e->pid);
		close(err0);
	} else {
		ev_io_set(&e->errw, err0, EV_READ);
		ev_io_start(e->loop, &e->errw);
	}
	ev_child_set(&e->cw, e->pid, 0);
	ev_child_start(e->loop, &e->cw);
}

static void spawn(struct exec_handler *e)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dflt;
	int rc;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		log_errno(LOG_ERR, "exec handler: pipe");
		goto retry;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
	posix_spawnattr_init(&at);
	/* we ignore SIGPIPE; the handler should get the usual defaults */
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGHUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dflt);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					  POSIX_SPAWN_SETSID);
	rc = posix_spawnp(&e->pid, e->argv[0], &fa, &at, e->argv, child_env());
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	in[0] = out[1] = err[1] = -1;
	if (rc != 0) {
		errno = rc;
		log_errno(LOG_ERR, "exec handler '%s' cannot be started (exec.command)",
			  e->argv[0]);
		e->pid = 0;
		goto retry;
	}
	attach(e, out[0], in[1], err[0]);
	log_msg(LOG_INFO, "exec handler %d started: %s", (int)e->pid, e->argv[0]);
	return;
retry:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	ev_timer_set(&e->restart, backoff_next(&e->bo) / 1000.0, 0);
	ev_timer_start(e->loop, &e->restart);
}

struct exec_handler *exec_create(struct ev_loop *loop, const struct wst_config *cfg,
				 const struct endpoint_events *ops)
{
	struct exec_handler *e = calloc(1, sizeof(*e));
	size_t n = 0;

	if (!e)
		return NULL;
	while (cfg->exec_command[n])
		n++;
	e->argv = calloc(n + 1, sizeof(char *));
	/* all or nothing: a handler must never run with some of its arguments */
	for (size_t i = 0; e->argv && i < n; i++)
		if (!(e->argv[i] = strdup(cfg->exec_command[i])))
			n = 0;
	if (!e->argv || !n) {
		for (size_t i = 0; e->argv && e->argv[i]; i++)
			free(e->argv[i]);
		free(e->argv);
		free(e);
		return NULL;
	}
	e->loop = loop;
	e->ops = *ops;
	e->framing = cfg->exec_framing;
	e->events = cfg->exec_events;
	e->max_message = cfg->max_message_bytes;
	backoff_init(&e->bo, 500, 30000, 2.0, 0.2, (uint64_t)getpid());
	/* orphans of the handler's descendants come to us, to be reaped and stopped */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_errno(LOG_WARNING,
			  "exec handler: cannot become a subreaper: what its processes "
			  "start outside their process group may outlive it");
	ev_child_init(&e->cw, child_cb, 0, 0);
	ev_io_init(&e->errw, err_cb, -1, EV_READ);
	ev_timer_init(&e->restart, restart_cb, 0, 0);
	ev_timer_init(&e->grace, grace_cb, 0, 0);
	e->cw.data = e->errw.data = e->restart.data = e->grace.data = e;
	spawn(e);
	return e;
}

/* At exit, blocking: TERM_WAIT_S for the generation to go, then SIGKILL it round after round. */
static void reap_generation(struct exec_handler *e)
{
	const int step_ms = 20, term_steps = (int)(TERM_WAIT_S * 1000) / step_ms;
	struct timespec ts = {0, step_ms * 1000 * 1000};
	int st;

	for (int i = 0; i < term_steps + (int)(KILL_ROUNDS * KILL_ROUND_S * 1000) / step_ms; i++) {
		while (waitpid(-1, &st, WNOHANG) > 0)
			; /* we exit: every child of ours is the handler's */
		if (!signal_generation(e, 0))
			return;
		if (i == term_steps)
			log_msg(LOG_WARNING, KILL_MSG, e->name_pid, TERM_WAIT_S);
		if (i >= term_steps)
			signal_generation(e, SIGKILL);
		nanosleep(&ts, NULL);
	}
}

static void exec_destroy(void *self)
{
	struct exec_handler *e = self;

	ev_timer_stop(e->loop, &e->restart);
	ev_timer_stop(e->loop, &e->grace);
	ev_child_stop(e->loop, &e->cw);
	if (e->peer)
		peer_close_output(e->peer); /* EOF on its stdin, with the SIGTERM */
	if (signal_generation(e, SIGTERM))
		reap_generation(e);
	stop_stderr(e);
	peer_destroy(e->peer);
	for (size_t i = 0; e->argv[i]; i++)
		free(e->argv[i]);
	free(e->argv);
	free(e->last.json);
	free(e);
}

static void exec_deliver(void *self, const unsigned char *data, size_t len, bool binary)
{
	struct exec_handler *e = self;
	enum peer_send r = e->peer ? peer_send(e->peer, data, len, binary) : PEER_FULL;
	unsigned long long n;

	if (r == PEER_SENT)
		return;
	if (r == PEER_UNFRAMABLE) {
		e->drops.unframable++;
		e->drops.unframable_bytes += len;
	} else {
		e->drops.undelivered++;
		e->drops.undelivered_bytes += len;
	}
	n = e->drops.unframable + e->drops.undelivered;
	if (ratelimit_allow(&e->drop_log, 0) || log_enabled(LOG_DEBUG))
		log_msg(LOG_WARNING,
			"exec handler: a message from the server was not delivered: %s "
			"(%llu so far)",
			r == PEER_UNFRAMABLE ? "it cannot be framed as a line"
			: e->peer	     ? "the handler is not reading its stdin"
			: e->pid > 0	     ? "its pipes were closed and it is being terminated"
					     : "the handler is not running (it is restarted)",
			n);
}

/* A link event (JSON) as an event frame on its stdin, when exec.events is on. */
static void exec_event(void *self, const char *json, size_t len)
{
	struct exec_handler *e = self;

	if (!e->events)
		return;
	last_event_keep(&e->last, json, len);
	/* one the handler does not read is lost, as a message would be */
	if (e->peer && peer_send_event(e->peer, json, len) != PEER_SENT)
		log_msg(LOG_WARNING,
			"exec handler %d: a link event was not delivered: it is not "
			"reading its stdin",
			e->name_pid);
}

static void exec_resume(void *self)
{
	struct exec_handler *e = self;

	if (e->peer)
		peer_resume(e->peer);
}

static void exec_stop_input(void *self)
{
	struct exec_handler *e = self;

	e->input_stopped = true;
	if (e->peer)
		peer_stop_input(e->peer);
}

static void exec_status(const void *self, struct wst_status *st)
{
	const struct exec_handler *e = self;

	endpoint_add_drops(st, &e->drops);
	st->exec_pid = e->pid;
	st->exec_restarts = e->restarts;
}

static size_t exec_pending(const void *self, double active_s)
{
	const struct exec_handler *e = self;

	return e->peer && peer_stalled_for(e->peer) < active_s ? peer_pending_output(e->peer) : 0;
}

static void exec_kill_stalled(void *self, double stall_s)
{
	struct exec_handler *e = self;

	if (!e->peer || e->pid <= 0 || ev_is_active(&e->grace) ||
	    peer_stalled_for(e->peer) < stall_s)
		return;
	e->drops.slow_readers++;
	log_msg(LOG_WARNING,
		"exec handler %d stopped reading its stdin (%zu bytes unread for "
		"%.0f s): terminating it",
		(int)e->pid, peer_pending_output(e->peer), stall_s);
	terminate(e);
}

const struct endpoint_impl exec_endpoint = {
    exec_deliver,      exec_resume,  exec_stop_input, exec_pending,
    exec_kill_stalled, exec_destroy, exec_event,      exec_status,
};
