#ifndef WST_BUILDINFO_H
#define WST_BUILDINFO_H

#include <stdio.h>

/*
 * The versions of the libraries wstether runs with (its own is WST_VERSION),
 * as the libraries themselves report them at run time (so they stay true
 * when the stack moves). Static strings.
 */
const char *buildinfo_lws(void);
const char *buildinfo_mbedtls(void);
/* --version: wstether's line, then one line per library. */
void buildinfo_print(FILE *out);

#endif
