#ifndef WST_CONFIG_FILE_H
#define WST_CONFIG_FILE_H

#include <stddef.h>

/*
 * A config file with its @include lines replaced by the files they name,
 * as one text for libconfig, and the map back from its lines to the files.
 * libconfig never opens a file itself: it would block on a FIFO and exit
 * the process on a directory.
 */
struct conf_span {
	int first;     /* first line of the text this span covers */
	int file;      /* index in files */
	int file_line; /* its line number in that file */
};

struct conf_text {
	char *text;
	size_t len, cap;
	int lines; /* '\n' in text */
	struct conf_span *spans;
	size_t n_spans;
	char **files;
	size_t n_files;
};

/* A config file, and every file it includes, may hold at most this much. */
#define CONF_TEXT_MAX (1024 * 1024)
#define CONF_INCLUDE_DEPTH 10

/* Read path and its includes. -1 with err "FILE: why" or "FILE:LINE: why". */
int conf_text_read(struct conf_text *t, const char *path, char *err, size_t errlen);
/* The file and line that line of the text came from. */
const char *conf_text_where(const struct conf_text *t, int line, int *file_line);
void conf_text_free(struct conf_text *t);

#endif
