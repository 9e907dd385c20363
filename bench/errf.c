/*
 * errf for the bench programs that link src/ws/pmdeflate.c alone (echo-server
 * --deflate, pmd-window): its one need from the daemon's core, where log.c
 * would bring libwebsockets along.
 */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

int errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}
