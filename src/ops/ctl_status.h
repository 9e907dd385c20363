#ifndef WST_CTL_STATUS_H
#define WST_CTL_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/*
 * The daemon's status answer (one JSON line) as `wstetherctl status` shows it
 * to people: state and uptime, URL, last error, queue, spool, TLS, proxy.
 * now: the time uptime is counted to. -1 when json is not a status answer.
 */
int ctl_status_render(const char *json, const char *socket, time_t now, FILE *f);

/* "1h 2min", "3d 4h", "42s"; "4.0 KiB", "512 B" */
void ctl_status_duration(char *buf, size_t len, uint64_t seconds);
void ctl_status_bytes(char *buf, size_t len, uint64_t bytes);

#endif
