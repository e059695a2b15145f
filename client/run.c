/*
 * run.c: "pg_leader run --group G [--ttl D] [--holder NAME] [--wait D]
 *         [--grace D] [--rejoin] -- COMMAND [ARG]..."
 * runs COMMAND only while this program leads group G.
 *
 * Protocol, in three phases:
 *
 * 1. Wait.  One "SELECT leader_acquire(G, timeout, ttl, holder)" sent
 *    asynchronously: the server wakes it when the group frees up; the client
 *    never polls.  Meanwhile select() watches the socket and the signal pipe:
 *    a signal cancels the wait (and releases the group if the cancel came too
 *    late), a dropped connection is reconnected (0.1 s, doubling to 5 s) and
 *    the wait sent again with what is left of --wait.
 *
 * 2. Confirm.  Right after winning, one renewal (leader_try_acquire), which
 *    also reads the term, the holder's name and the TTL.  The lease is known
 *    to last at least until "when that renewal was sent + TTL", by this
 *    program's monotonic clock: that is its local deadline.
 *
 * 3. Lead.  COMMAND is started by a guard process (guard.c), in a process
 *    group of its own, with LEADER_GROUP, LEADER_TERM, LEADER_HOLDER and
 *    LEADER_TTL_MS in its environment.  Every TTL/3 a renewal is sent; a
 *    renewal that answers true moves the deadline to its send time + TTL
 *    (and tells the guard).  Leadership is lost, and COMMAND stopped, the
 *    moment any of these happens:
 *      - a renewal answers false (someone else leads now);
 *      - an ending event of this term arrives on leader_changed (forced,
 *        expired, released or vacated by someone else);
 *      - the connection drops (a session-bound lease ends with its session;
 *        a named lease can no longer be confirmed);
 *      - the local deadline passes before a renewal was confirmed.
 *    Stopping COMMAND is the guard's work: SIGTERM to COMMAND and every
 *    process it started, SIGKILL after --grace (10 s by default).  Renewals
 *    go on while COMMAND stops after SIGINT or SIGTERM (a second one sends
 *    SIGKILL at once); not after a loss.  This program waits for the guard
 *    to exit, which it does only once that whole tree is gone, before it
 *    releases, disconnects or reports a loss.  If this program is killed,
 *    the guard stops the tree by itself, and keeps the connection's socket
 *    open until it is gone, so the server cannot end a session-bound lease
 *    before that.
 *
 * Before anything else, COMMAND is checked to be executable (resolved through
 * PATH): if it is not, run exits 126 or 127 without connecting, so it takes
 * no term.
 *
 * Endings: COMMAND exits by itself (what it left running is stopped), or
 * after SIGINT/SIGTERM/SIGHUP to this program: the group is released and run
 * exits with COMMAND's status (128+N for signal N).  Leadership lost: once
 * COMMAND's tree is gone, the connection is closed without waiting for the
 * server (which may be what stopped answering), and run exits EXIT_LOST, or
 * with --rejoin goes back to phase 1 (reconnecting) to run COMMAND again when
 * it leads again.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_leader.h"

typedef struct RunOptions
{
	const char *group;
	const char *holder;			/* NULL: session-bound */
	const char *ttl;			/* as given, NULL: the server's default */
	int64_t		wait_ms;		/* -1: no limit */
	int64_t		grace_ms;
	bool		rejoin;
	char	  **command;
	ConnOptions *conn;
} RunOptions;

/* What the wait phase ended with. */
typedef enum WaitResult
{
	WAIT_WON,
	WAIT_TIMEOUT,
	WAIT_SIGNALLED,
	WAIT_ERROR
} WaitResult;

/* The leadership this program holds. */
typedef struct Lease
{
	char		term[32];
	char	   *holder_name;	/* as leader_current shows it */
	int64_t		ttl_ms;
	int64_t		deadline;		/* monotonic ms: the lease lasts at least until then */
} Lease;

static int	run_signal;			/* the signal that asked us to stop, or 0 */

static bool
run_is_stop_signal(int sig)
{
	return sig == SIGINT || sig == SIGTERM || sig == SIGHUP;
}

/* Read every pending signal: stop signals are remembered in run_signal. */
static bool
run_drain_signals(void)
{
	int			sig;
	bool		stop = false;

	while ((sig = signals_next()) != 0)
	{
		if (run_is_stop_signal(sig))
		{
			if (run_signal == 0)
				run_signal = sig;
			stop = true;
		}
	}
	return stop;
}

/* Read and drop the results of the statement in progress (blocking). */
static void
run_drain_results(Connection *c)
{
	PGresult   *res;

	while ((res = PQgetResult(c->conn)) != NULL)
		PQclear(res);
}

static void
run_release(Connection *c, const RunOptions *o)
{
	char	   *sql;
	PGresult   *res;

	if (!db_connection_ok(c))
		return;
	run_drain_results(c);
	sql = db_sql(c, "SELECT @.leader_release($1, $2)");
	res = db_exec(c, sql, 2, (const char *const[]) {o->group, o->holder});
	free(sql);
	if (res)
		PQclear(res);
}

/*
 * (Re)connect and LISTEN, retrying while the server cannot be reached, until
 * connected (EXIT_OK), a stop signal, the --wait deadline (EXIT_WAIT_TIMEOUT)
 * or a missing extension (EXIT_NO_EXTENSION).
 */
static int
run_reconnect(Connection *c, const RunOptions *o, int64_t wait_deadline)
{
	int64_t		backoff = 100;

	for (;;)
	{
		int			rc;

		if (run_drain_signals())
			return EXIT_FAILED;
		if (wait_deadline >= 0 && now_ms() >= wait_deadline)
			return EXIT_WAIT_TIMEOUT;
		rc = db_connect_listen(o->conn, c, true);
		if (rc == EXIT_OK || rc == EXIT_NO_EXTENSION)
			return rc;
		wait_for_input(-1, backoff);
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
}

/* Phase 1: wait until this program leads the group. */
static WaitResult
run_wait(Connection *c, const RunOptions *o, int64_t wait_deadline, int *exit_code)
{
	for (;;)
	{
		char		timeout[32];
		char	   *sql;
		const char *params[4];
		bool		sent;

		if (!db_connection_ok(c))
		{
			int			rc;

			/* (No connection at all: closed by us after a loss; nothing to say.) */
			if (c->conn != NULL)
				fprintf(stderr, "%s: connection lost; reconnecting as a candidate\n", progname);
			db_disconnect(c);
			rc = run_reconnect(c, o, wait_deadline);
			if (rc == EXIT_WAIT_TIMEOUT)
				return WAIT_TIMEOUT;
			if (run_signal)
				return WAIT_SIGNALLED;
			if (rc != EXIT_OK)
			{
				*exit_code = rc;
				return WAIT_ERROR;
			}
		}

		params[0] = o->group;
		params[1] = NULL;
		if (wait_deadline >= 0)
		{
			int64_t		left = wait_deadline - now_ms();

			if (left <= 0)
				return WAIT_TIMEOUT;
			snprintf(timeout, sizeof(timeout), "%lld milliseconds", (long long) left);
			params[1] = timeout;
		}
		params[2] = o->ttl;
		params[3] = o->holder;
		sql = db_sql(c, "SELECT @.leader_acquire($1, $2::interval, $3::interval, $4)");
		sent = PQsendQueryParams(c->conn, sql, 4, NULL, params, NULL, NULL, 0);
		free(sql);
		if (!sent)
		{
			if (!db_connection_ok(c))
				continue;		/* the connection is gone: reconnect */
			fprintf(stderr, "%s: %s", progname, PQerrorMessage(c->conn));
			*exit_code = EXIT_FAILED;
			return WAIT_ERROR;
		}

		for (;;)
		{
			PGresult   *res;
			bool		won = false;
			bool		failed = false;

			wait_for_input(PQsocket(c->conn), -1);
			if (run_drain_signals())
			{
				PGcancel   *cancel = PQgetCancel(c->conn);
				char		errbuf[256];

				if (cancel)
				{
					PQcancel(cancel, errbuf, sizeof(errbuf));
					PQfreeCancel(cancel);
				}
				/* If we won before the cancel arrived, give it back. */
				run_release(c, o);
				return WAIT_SIGNALLED;
			}
			if (!PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK)
				break;
			if (PQisBusy(c->conn))
				continue;
			while ((res = PQgetResult(c->conn)) != NULL)
			{
				if (PQresultStatus(res) == PGRES_TUPLES_OK)
					won = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
				else if (PQstatus(c->conn) == CONNECTION_OK)
				{
					fprintf(stderr, "%s: %s", progname, PQresultErrorMessage(res));
					failed = true;
				}
				PQclear(res);
			}
			if (PQstatus(c->conn) != CONNECTION_OK)
				break;			/* reconnect and wait again */
			if (failed)
			{
				*exit_code = EXIT_FAILED;
				return WAIT_ERROR;
			}
			return won ? WAIT_WON : WAIT_TIMEOUT;
		}
	}
}

/*
 * Phase 2: renew once, right after winning, and learn the term, the holder's
 * name and the TTL; false if the lease is already gone.
 */
static bool
run_confirm(Connection *c, const RunOptions *o, Lease *lease)
{
	int64_t		sent_at = now_ms();
	char	   *sql;
	PGresult   *res;
	bool		ok;

	sql = db_sql(c,
				 "SELECT @.leader_try_acquire($1, $2::interval, $3), "
				 "       @.leader_term($1, $3), @.leader_current($1), "
				 "       (extract(epoch FROM coalesce($2::interval, "
				 "           current_setting('leader.default_ttl')::interval)) * 1000)::bigint");
	res = db_exec(c, sql, 3, (const char *const[]) {o->group, o->ttl, o->holder});
	free(sql);
	if (res == NULL)
		return false;
	ok = strcmp(PQgetvalue(res, 0, 0), "t") == 0 && !PQgetisnull(res, 0, 1);
	if (ok)
	{
		snprintf(lease->term, sizeof(lease->term), "%s", PQgetvalue(res, 0, 1));
		free(lease->holder_name);
		lease->holder_name = strdup(PQgetvalue(res, 0, 2));
		lease->ttl_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		lease->deadline = sent_at + lease->ttl_ms;
	}
	PQclear(res);
	return ok;
}

/* Start COMMAND under its guard; false if it could not be started. */
static bool
run_start_command(Connection *c, const RunOptions *o, const Lease *lease, Guard *guard)
{
	char		ttl[32];
	const char *env[9];

	snprintf(ttl, sizeof(ttl), "%lld", (long long) lease->ttl_ms);
	env[0] = "LEADER_GROUP";
	env[1] = o->group;
	env[2] = "LEADER_TERM";
	env[3] = lease->term;
	env[4] = "LEADER_HOLDER";
	env[5] = lease->holder_name ? lease->holder_name : "";
	env[6] = "LEADER_TTL_MS";
	env[7] = ttl;
	env[8] = NULL;
	return guard_start(guard, o->command, env, o->grace_ms, lease->deadline,
					   PQsocket(c->conn));
}

/*
 * Phase 3: lead while COMMAND runs.  Returns, once COMMAND and everything it
 * started are gone, COMMAND's status in *code (as a shell reports it) and
 * whether leadership was lost on the way (with the reason printed).
 */
static bool
run_lead(Connection *c, const RunOptions *o, Lease *lease, Guard *guard, int *code)
{
	int64_t		next_renew = lease->deadline - lease->ttl_ms + lease->ttl_ms / 3;
	int64_t		sent_at = 0;
	bool		in_flight = false;
	bool		stopping = false;
	bool		killed = false;
	const char *lost = NULL;

	for (;;)
	{
		int64_t		now = now_ms();
		int64_t		timeout = -1;
		int			sock = -1;

		if (guard_done(guard, code))
			break;

		/* Notice a loss, and stop COMMAND once. */
		if (!lost && now >= lease->deadline)
			lost = "the lease ran out before the server confirmed a renewal";
		if ((lost || run_signal) && !stopping)
		{
			if (lost)
				fprintf(stderr, "%s: leadership of \"%s\" (term %s) lost: %s; stopping the command\n",
						progname, o->group, lease->term, lost);
			else
				fprintf(stderr, "%s: %s received; stopping the command\n",
						progname, strsignal(run_signal));
			guard_stop(guard, false);
			stopping = true;
		}

		/* Renew while leading. */
		if (!lost && !in_flight && now >= next_renew)
		{
			char	   *sql = db_sql(c, "SELECT @.leader_try_acquire($1, $2::interval, $3)");
			const char *params[3] = {o->group, o->ttl, o->holder};

			sent_at = now;
			in_flight = PQsendQueryParams(c->conn, sql, 3, NULL, params, NULL, NULL, 0);
			free(sql);
			if (!in_flight)
				lost = "the connection to the server was lost";
			continue;
		}

		if (!lost)
		{
			sock = PQsocket(c->conn);
			timeout = lease->deadline - now;
			if (!in_flight && next_renew - now < timeout)
				timeout = next_renew - now;
		}
		if (timeout < 0 && (lost || stopping))
			timeout = 1000;		/* only the guard's exit to wait for */
		wait_for_input(sock, timeout < 0 ? 0 : timeout);

		if (run_drain_signals() && stopping && !killed)
		{
			/* asked twice: no more grace */
			guard_stop(guard, true);
			killed = true;
		}
		if (lost || sock < 0)
			continue;

		if (!PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK)
		{
			lost = "the connection to the server was lost";
			continue;
		}
		if (in_flight && !PQisBusy(c->conn))
		{
			PGresult   *res;
			int			renewed = -1;

			while ((res = PQgetResult(c->conn)) != NULL)
			{
				if (PQresultStatus(res) == PGRES_TUPLES_OK)
					renewed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
				else
					fprintf(stderr, "%s: renewal failed: %s", progname,
							PQresultErrorMessage(res));
				PQclear(res);
			}
			in_flight = false;
			if (renewed == 1)
			{
				lease->deadline = sent_at + lease->ttl_ms;
				next_renew = sent_at + lease->ttl_ms / 3;
				guard_set_deadline(guard, lease->deadline);
			}
			else if (renewed == 0)
				lost = "the server refused the renewal (someone else leads)";
			else if (PQstatus(c->conn) != CONNECTION_OK)
				lost = "the connection to the server was lost";
			else
				next_renew = now_ms() + 1000;	/* retry; the deadline still holds */
		}
		for (PGnotify *n; !lost && (n = PQnotifies(c->conn)) != NULL; PQfreemem(n))
		{
			LeaderEvent ev;

			if (!parse_event(n->extra, &ev))
				continue;
			if (ev.group && ev.event && ev.term &&
				strcmp(ev.group, o->group) == 0 &&
				strcmp(ev.term, lease->term) == 0 &&
				strcmp(ev.event, "acquired") != 0)
			{
				static char reason[64];

				snprintf(reason, sizeof(reason), "the server reports the term %s",
						 strcmp(ev.event, "forced") == 0 ? "force-released" : ev.event);
				lost = reason;
			}
			free_event(&ev);
		}
	}
	/* After a loss the server may not answer: do not wait for it. */
	if (in_flight && !lost && db_connection_ok(c))
		run_drain_results(c);
	return lost != NULL;
}

static void
run_help(void)
{
	printf("Usage: %s run --group G [OPTION]... [CONNECTION OPTION]... -- COMMAND [ARG]...\n\n"
		   "Wait until this program leads group G, then run COMMAND while it leads.\n\n"
		   "  -g, --group=G        the group to lead (required)\n"
		   "      --ttl=D          lease duration (default: the server's leader.default_ttl);\n"
		   "                       renewed every third of it\n"
		   "      --holder=NAME    lead as named holder NAME instead of this session\n"
		   "      --wait=D         give up (exit 6) if not leading within D\n"
		   "      --grace=D        time between SIGTERM and SIGKILL when stopping COMMAND\n"
		   "                       (default 10s)\n"
		   "      --rejoin         after losing leadership, wait to lead again instead of\n"
		   "                       exiting with status 5\n\n"
		   "COMMAND gets LEADER_GROUP, LEADER_TERM, LEADER_HOLDER and LEADER_TTL_MS in its\n"
		   "environment.  Every process COMMAND starts, in the foreground or the background,\n"
		   "is stopped with it: when leadership is lost, when COMMAND exits (what it left\n"
		   "running), and when pg_leader itself dies, even by SIGKILL (then by the lease's\n"
		   "end at the latest).  Only then does pg_leader release or report the loss.\n"
		   "If COMMAND cannot be executed, run exits 126 (127: not found) before connecting.\n",
		   progname);
}

int
cmd_run(int argc, char **argv, ConnOptions *opts)
{
	static const struct option long_options[] = {
		CONN_LONG_OPTIONS,
		{"group", required_argument, NULL, 'g'},
		{"ttl", required_argument, NULL, 't'},
		{"holder", required_argument, NULL, 'H'},
		{"wait", required_argument, NULL, 'w'},
		{"grace", required_argument, NULL, 'G'},
		{"rejoin", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0}
	};
	RunOptions	o = {NULL, NULL, NULL, -1, 10000, false, NULL, opts};
	Connection	c = {NULL, NULL};
	Lease		lease = {"", NULL, 0, 0};
	int64_t		ms;
	int64_t		wait_deadline;
	int			opt;
	int			rc;

	while ((opt = next_option(argc, argv, "+:" CONN_SHORT_OPTIONS "g:?",
							  long_options, opts)) != -1)
	{
		switch (opt)
		{
			case 'g':
				o.group = optarg;
				break;
			case 'H':
				o.holder = optarg;
				break;
			case 't':
				if (!parse_duration(optarg, &ms))
					usage_error("run: invalid duration \"%s\" for --ttl (examples: 15s, 500ms, 2min)", optarg);
				o.ttl = optarg;
				break;
			case 'w':
				if (!parse_duration(optarg, &ms))
					usage_error("run: invalid duration \"%s\" for --wait (examples: 15s, 500ms, 2min)", optarg);
				o.wait_ms = ms;
				break;
			case 'G':
				if (!parse_duration(optarg, &ms))
					usage_error("run: invalid duration \"%s\" for --grace (examples: 10s, 500ms)", optarg);
				o.grace_ms = ms;
				break;
			case 'r':
				o.rejoin = true;
				break;
			case OPT_HELP:
				run_help();
				return EXIT_OK;
			default:
				bad_option(opt, argv);
		}
	}
	if (o.group == NULL)
		usage_error("run: --group is required");
	valid_name("the group name", o.group);
	if (o.holder)
		valid_name("the holder name", o.holder);
	if (optind >= argc)
		usage_error("run: no command given (put it after \"--\")");
	o.command = argv + optind;

	/* Before connecting: a command that cannot run must not take a term. */
	if ((rc = guard_check_command(o.command[0])) != EXIT_OK)
		return rc;

	signals_install(true);
	wait_deadline = o.wait_ms >= 0 ? now_ms() + o.wait_ms : -1;

	if ((rc = db_connect_listen(opts, &c, false)) != EXIT_OK)
		return rc;

	for (;;)
	{
		WaitResult wr;
		Guard		guard;
		bool		lost;

		wr = run_wait(&c, &o, wait_deadline, &rc);
		if (wr == WAIT_TIMEOUT)
		{
			fprintf(stderr, "%s: did not lead \"%s\" within the --wait time\n", progname, o.group);
			db_disconnect(&c);
			return EXIT_WAIT_TIMEOUT;
		}
		if (wr == WAIT_SIGNALLED)
		{
			db_disconnect(&c);
			return 128 + run_signal;
		}
		if (wr == WAIT_ERROR)
		{
			db_disconnect(&c);
			return rc;
		}
		if (!run_confirm(&c, &o, &lease))
			continue;			/* lost at once: wait again */

		fprintf(stderr, "%s: leading \"%s\" as %s, term %s; starting the command\n",
				progname, o.group, lease.holder_name, lease.term);
		if (!run_start_command(&c, &o, &lease, &guard))
		{
			run_release(&c, &o);
			db_disconnect(&c);
			return EXIT_FAILED;
		}
		lost = run_lead(&c, &o, &lease, &guard, &rc);

		if (lost)
		{
			/*
			 * Not ours any more, or not confirmed: the server may not even
			 * answer.  Closing the session ends a session-bound lease that
			 * the server still holds; a named one ends by its TTL.
			 */
			db_disconnect(&c);
		}
		else
		{
			/* Give the group back. */
			run_release(&c, &o);
			if (run_signal == 0)
				fprintf(stderr, "%s: the command exited with status %d; released \"%s\"\n",
						progname, rc, o.group);
			db_disconnect(&c);
			return rc;
		}
		if (!o.rejoin || run_signal)
		{
			db_disconnect(&c);
			return run_signal ? 128 + run_signal : EXIT_LOST;
		}
		fprintf(stderr, "%s: waiting to lead \"%s\" again\n", progname, o.group);
		/* A new --wait period starts for each election. */
		wait_deadline = o.wait_ms >= 0 ? now_ms() + o.wait_ms : -1;
	}
}
