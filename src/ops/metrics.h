#ifndef WST_METRICS_H
#define WST_METRICS_H

#include <stddef.h>

struct wst_status;

/*
 * The status snapshot in the Prometheus text exposition format (0.0.4),
 * with HELP and TYPE lines, as node_exporter's textfile collector reads it.
 * Returns text to free() (length in *len), or NULL when out of memory.
 */
char *metrics_text(const struct wst_status *st, size_t *len);

#endif
