/*
 * watch.c: "pg_leader watch [--group G] [--json]" prints every leader_changed
 * event (of group G only, with --group) as it arrives: one readable line per
 * event, prefixed with the local time of arrival, or with --json the event's
 * JSON payload as sent.  It waits with select() on the connection's socket, so
 * it costs nothing between events.
 *
 * When the connection drops it says so on stderr and reconnects (after 0.1 s,
 * doubling up to 5 s), then listens again; events sent while it was away are
 * missed, and it says that too.  SIGINT, SIGTERM and SIGHUP end it (status 0).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "pg_leader.h"

/* Print a name between double quotes, with quotes and control bytes escaped. */
static void
watch_print_name(const char *s)
{
	putchar('"');
	for (; *s; s++)
	{
		unsigned char ch = (unsigned char) *s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", stdout);
		else if (ch < 0x20 || ch == 0x7F)
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void
watch_print_time(void)
{
	struct timeval tv;
	struct tm	tm;
	char		buf[32];

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s.%03ld  ", buf, (long) (tv.tv_usec / 1000));
}

/* One readable line for an event. */
static void
watch_print_event(const LeaderEvent *ev, const char *payload)
{
	const char *holder = ev->holder ? ev->holder : "?";
	const char *term = ev->term ? ev->term : "?";

	watch_print_time();
	if (ev->group == NULL || ev->event == NULL)
	{
		printf("(not a leader event) %s\n", payload);
		return;
	}
	watch_print_name(ev->group);
	if (strcmp(ev->event, "acquired") == 0)
	{
		printf(" acquired by ");
		watch_print_name(holder);
		printf(", term %s, lease until %s\n", term,
			   ev->expires_at ? ev->expires_at : "?");
		return;
	}
	printf(" term %s of ", term);
	watch_print_name(holder);
	if (strcmp(ev->event, "released") == 0)
		printf(" released\n");
	else if (strcmp(ev->event, "expired") == 0)
		printf(" expired (not renewed by %s)\n", ev->expires_at ? ev->expires_at : "?");
	else if (strcmp(ev->event, "vacated") == 0)
		printf(" vacated (its session ended)\n");
	else if (strcmp(ev->event, "forced") == 0)
		printf(" forced out (leader_force_release)\n");
	else
		printf(" %s\n", ev->event);
}

int
cmd_watch(int argc, char **argv, ConnOptions *opts)
{
	static const struct option long_options[] = {
		CONN_LONG_OPTIONS,
		{"group", required_argument, NULL, 'g'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0}
	};
	const char *group = NULL;
	bool		json = false;
	Connection c;
	int			opt;
	int			rc;

	while ((opt = next_option(argc, argv, "+:" CONN_SHORT_OPTIONS "g:?",
							  long_options, opts)) != -1)
	{
		if (opt == 'g')
			group = optarg;
		else if (opt == 'j')
			json = true;
		else if (opt == OPT_HELP)
		{
			printf("Usage: %s watch [--group G] [--json] [CONNECTION OPTION]...\n"
				   "Print every change of leadership as it happens.\n", progname);
			return EXIT_OK;
		}
		else
			bad_option(opt, argv);
	}
	check_arguments("watch", argc, argv, group);

	/* Lines go out as events arrive, also into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	signals_install(false);

	if ((rc = db_connect_listen(opts, &c, false)) != EXIT_OK)
		return rc;
	fprintf(stderr, "%s: watching %s%s%s\n", progname,
			group ? "group \"" : "every group", group ? group : "", group ? "\"" : "");

	for (;;)
	{
		PGnotify   *n;
		int			sig;

		wait_for_input(PQsocket(c.conn), -1);
		while ((sig = signals_next()) != 0)
		{
			if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			{
				db_disconnect(&c);
				return EXIT_OK;
			}
		}

		if (!PQconsumeInput(c.conn) || PQstatus(c.conn) != CONNECTION_OK)
		{
			int64_t		backoff = 100;

			fprintf(stderr, "%s: connection lost; reconnecting\n", progname);
			db_disconnect(&c);
			for (;;)
			{
				wait_for_input(-1, backoff);
				while ((sig = signals_next()) != 0)
					if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
						return EXIT_OK;
				rc = db_connect_listen(opts, &c, true);
				if (rc == EXIT_OK)
					break;
				if (backoff < 5000)
					backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
			}
			fprintf(stderr, "%s: reconnected; events sent while disconnected were missed\n",
					progname);
			continue;
		}

		while ((n = PQnotifies(c.conn)) != NULL)
		{
			LeaderEvent ev;
			bool		parsed = parse_event(n->extra, &ev);

			if (group == NULL ||
				(parsed && ev.group != NULL && strcmp(ev.group, group) == 0))
			{
				if (json)
					printf("%s\n", n->extra);
				else if (parsed)
					watch_print_event(&ev, n->extra);
				else
				{
					watch_print_time();
					printf("(not a leader event) %s\n", n->extra);
				}
			}
			if (parsed)
				free_event(&ev);
			PQfreemem(n);
		}
	}
}
