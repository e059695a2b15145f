/*
 * signals.c: turns signals into bytes on a pipe (the self-pipe trick), so the
 * subcommands' select() loops see a signal, a child's exit and the server's
 * socket in one place.  The handlers only write the signal's number; all the
 * work happens in the loops.  Both ends of the pipe are non-blocking and
 * close-on-exec, so a command started by "run" never sees them.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "pg_leader.h"

static int	signal_pipe[2] = {-1, -1};

static void
signal_handler(int signo)
{
	int			save_errno = errno;
	unsigned char b = (unsigned char) signo;

	if (write(signal_pipe[1], &b, 1) < 0)
	{
		/* pipe full: enough wake-ups are pending already */
	}
	errno = save_errno;
}

int
signals_install(bool children)
{
	struct sigaction sa;

	/* Called again in a forked child, it gives the child a pipe of its own. */
	for (int i = 0; i < 2; i++)
	{
		if (signal_pipe[i] >= 0)
			close(signal_pipe[i]);
	}
	if (pipe(signal_pipe) != 0)
	{
		fprintf(stderr, "%s: could not create a pipe: %s\n", progname, strerror(errno));
		exit(EXIT_FAILED);
	}
	for (int i = 0; i < 2; i++)
	{
		fcntl(signal_pipe[i], F_SETFL, fcntl(signal_pipe[i], F_GETFL) | O_NONBLOCK);
		fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = signal_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (children)
	{
		sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
		sigaction(SIGCHLD, &sa, NULL);
	}
	/* A server that goes away must not kill us while we write to it. */
	signal(SIGPIPE, SIG_IGN);
	return signal_pipe[0];
}

int
signals_next(void)
{
	unsigned char b;

	if (signal_pipe[0] >= 0 && read(signal_pipe[0], &b, 1) == 1)
		return b;
	return 0;
}

/* Returns when the signal pipe or "sock" (if >= 0) is readable, or "ms" has passed. */
void
wait_for_input(int sock, int64_t ms)
{
	fd_set		rfds;
	struct timeval tv;
	int			maxfd = signal_pipe[0];

	FD_ZERO(&rfds);
	if (signal_pipe[0] >= 0)
		FD_SET(signal_pipe[0], &rfds);
	if (sock >= 0)
	{
		FD_SET(sock, &rfds);
		if (sock > maxfd)
			maxfd = sock;
	}
	if (ms < 0)
	{
		(void) select(maxfd + 1, &rfds, NULL, NULL, NULL);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	(void) select(maxfd + 1, &rfds, NULL, NULL, &tv);
}
