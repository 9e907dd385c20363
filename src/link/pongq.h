#ifndef WST_PONGQ_H
#define WST_PONGQ_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The pongs we owe the server, in the order its pings came (RFC 6455
 * 5.5.3; Autobahn 2.10/2.11 expect one pong per ping). They wait here only
 * until our next write, so more than a burst piles up only when the server
 * pings faster than we can write. Past PONGQ_MAX the oldest unanswered ping
 * is dropped, which 5.5.3 allows (a pong may answer only the latest ping):
 * a ping flood costs at most PONGQ_MAX pongs per write, never unbounded
 * output or memory. Pure: link.c writes what is here.
 */
#define PONGQ_MAX 32
#define PONGQ_PAYLOAD 125 /* a control frame's payload limit (RFC 6455 5.5) */

/* Zeroed, it is empty. */
struct pongq {
	unsigned char data[PONGQ_MAX][PONGQ_PAYLOAD];
	unsigned char len[PONGQ_MAX];
	unsigned head, count;
};

/* Owe a pong with this payload (at most 125 bytes); true if an older one was dropped for it. */
bool pongq_push(struct pongq *q, const unsigned char *payload, size_t len);
/* The oldest pong owed, or NULL; pongq_pop once it is written. */
const unsigned char *pongq_peek(const struct pongq *q, size_t *len);
void pongq_pop(struct pongq *q);
static inline size_t pongq_len(const struct pongq *q)
{
	return q->count;
}

#endif
