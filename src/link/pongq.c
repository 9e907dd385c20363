#include "pongq.h"

#include <string.h>

bool pongq_push(struct pongq *q, const unsigned char *payload, size_t len)
{
	bool dropped = false;
	unsigned slot;

	if (len > PONGQ_PAYLOAD)
		len = PONGQ_PAYLOAD; /* wsrx never hands over more; no overrun if one ever did */
	if (q->count == PONGQ_MAX) {
		pongq_pop(q);
		dropped = true;
	}
	slot = (q->head + q->count) % PONGQ_MAX;
	if (len)
		memcpy(q->data[slot], payload, len);
	q->len[slot] = (unsigned char)len;
	q->count++;
	return dropped;
}

const unsigned char *pongq_peek(const struct pongq *q, size_t *len)
{
	if (!q->count)
		return NULL;
	*len = q->len[q->head];
	return q->data[q->head];
}

void pongq_pop(struct pongq *q)
{
	if (!q->count)
		return;
	q->head = (q->head + 1) % PONGQ_MAX;
	q->count--;
}
