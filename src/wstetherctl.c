/* wstetherctl: send one request to a running wstether's control socket. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EX_USAGE 64
#define EX_UNAVAILABLE 69
#define DEFAULT_SOCKET "/run/wstether/wstether.ctl"
#define TIMEOUT_MS 10000

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: wstetherctl [-s SOCKET] COMMAND [ARGS...]\n"
		"Commands: status | send TEXT | reconnect | close CODE [REASON] |\n"
		"          pause | resume | reload\n\n"
		"  -s, --socket PATH   control socket (default " DEFAULT_SOCKET ")\n"
		"  -h, --help          this help\n\n"
		"Prints the daemon's JSON answer. Exit status: 0 ok, 1 the daemon refused,\n"
		"64 bad usage, 69 no daemon answered. See wstetherctl(1).\n");
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_SOCKET;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *req, *ans = NULL;
	size_t rlen = 0, alen = 0, acap = 0;
	int c, fd;

	while ((c = getopt_long(argc, argv, "+s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	for (int i = optind; i < argc; i++)
		rlen += strlen(argv[i]) + 1;
	req = malloc(rlen + 1);
	if (!req)
		return 1;
	req[0] = '\0';
	for (int i = optind; i < argc; i++) {
		if (strchr(argv[i], '\n')) {
			fprintf(stderr, "wstetherctl: arguments cannot contain a newline\n");
			free(req);
			return EX_USAGE;
		}
		strcat(req, argv[i]);
		strcat(req, i + 1 < argc ? " " : "\n");
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "wstetherctl: %s: socket path too long\n", path);
		free(req);
		return EX_USAGE;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "wstetherctl: %s: %s (is wstether running with control.socket set?)\n",
			path, strerror(errno));
		free(req);
		return EX_UNAVAILABLE;
	}
	if (write_all(fd, req, strlen(req)) < 0) {
		fprintf(stderr, "wstetherctl: %s: %s\n", path, strerror(errno));
		free(req);
		return EX_UNAVAILABLE;
	}
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, TIMEOUT_MS) <= 0) {
			fprintf(stderr, "wstetherctl: %s: no answer within %d s\n", path,
				TIMEOUT_MS / 1000);
			free(req);
			free(ans);
			return EX_UNAVAILABLE;
		}
		if (alen + 4096 > acap) {
			char *nb = realloc(ans, acap = acap * 2 + 8192);

			if (!nb) {
				free(req);
				free(ans);
				return 1;
			}
			ans = nb;
		}
		n = recv(fd, ans + alen, acap - alen - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		alen += (size_t)n;
		if (memchr(ans, '\n', alen))
			break;
	}
	close(fd);
	free(req);
	if (!alen || !memchr(ans, '\n', alen)) {
		fprintf(stderr, "wstetherctl: %s: the daemon closed without answering\n", path);
		free(ans);
		return EX_UNAVAILABLE;
	}
	ans[alen] = '\0';
	*strchr(ans, '\n') = '\0';
	puts(ans);
	c = strncmp(ans, "{\"ok\":true", 10) == 0 ? 0 : 1;
	free(ans);
	return c;
}
