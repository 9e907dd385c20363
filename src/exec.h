#ifndef WST_EXEC_H
#define WST_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ev_loop;
struct wst_config;
struct exec_handler;

/*
 * exec.command: a handler process spawned with pipes. Server messages go to
 * its stdin and its stdout feeds the queue, both framed like the bridge;
 * its stderr goes to the log. Restarted with backoff when it exits.
 */
struct exec_ops {
	void *ud;
	bool (*message)(void *ud, const unsigned char *data, size_t len, bool binary);
	void (*drained)(void *ud);	/* its stdin backlog fell low */
};

struct exec_handler *exec_create(struct ev_loop *loop, const struct wst_config *cfg,
				 const struct exec_ops *ops);
/* Terminate the handler (SIGTERM, then SIGKILL after 2 s) and reap it. */
void exec_destroy(struct exec_handler *e);

void exec_deliver(struct exec_handler *e, const unsigned char *data, size_t len, bool binary);
void exec_resume(struct exec_handler *e);
void exec_stop_input(struct exec_handler *e);
pid_t exec_pid(const struct exec_handler *e);
/* Output waiting for a handler that read some within active_s. */
size_t exec_pending(const struct exec_handler *e, double active_s);
/* SIGTERM a handler that read none of its pending input for stall_s (it is restarted). */
void exec_kill_stalled(struct exec_handler *e, double stall_s);
unsigned long long exec_restarts(const struct exec_handler *e);

#endif
