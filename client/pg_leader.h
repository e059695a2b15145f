/*
 * pg_leader.h: declarations shared by the files of pg_leader, the command-line
 * client of the leader extension.
 *
 * pg_leader is a plain libpq program with one file per concern:
 *   main.c        arguments common to every subcommand, --help, --version, dispatch
 *   duration.c    durations such as "15s", "500ms" or "2min", and the monotonic clock
 *   connection.c  connecting (and reconnecting), finding the extension's schema,
 *                 listening on leader_changed, and running statements
 *   event.c       reading one leader_changed payload (a flat JSON object)
 *   signals.c     signals turned into bytes on a pipe that select() can watch
 *   run.c         "run": lead a group, and run a command only while leading
 *   guard.c       "run"'s guard process: starts the command, and stops it with
 *                 everything it started, even if "run" is killed
 *   watch.c       "watch": print leader_changed events as they happen
 *   status.c      "status": the table of leader_status
 *   release.c     "release": end a leadership
 *
 * Exit codes are defined here, once, and documented in the README.
 */
#ifndef PG_LEADER_H
#define PG_LEADER_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#define PG_LEADER_VERSION "1.1"

/* Exit codes of pg_leader itself ("run" otherwise exits with its command's). */
#define EXIT_OK				0
#define EXIT_FAILED			1	/* a statement failed; "release" released nothing */
#define EXIT_USAGE			2	/* bad arguments */
#define EXIT_CONNECTION		3	/* cannot connect to the server */
#define EXIT_NO_EXTENSION	4	/* the database has no "leader" extension */
#define EXIT_LOST			5	/* "run": leadership lost, command stopped */
#define EXIT_WAIT_TIMEOUT	6	/* "run": --wait passed without leading */
#define EXIT_CANNOT_EXEC	126 /* "run": the command cannot be executed */
#define EXIT_NOT_FOUND		127 /* "run": the command was not found */

/* Longest group or holder name the extension accepts, in bytes. */
#define NAME_MAX_BYTES		200

/* ---- main.c ---- */

/* Connection parameters from -d/-h/-p/-U (NULL when not given). */
typedef struct ConnOptions
{
	const char *dbname;			/* a database name or a connection string */
	const char *host;
	const char *port;
	const char *user;
} ConnOptions;

extern const char *progname;

/*
 * The connection options every subcommand accepts, for getopt_long: put
 * CONN_SHORT_OPTIONS in the option string and CONN_LONG_OPTIONS in the table,
 * and hand each option to parse_conn_option, which says whether it was one.
 */
#define CONN_SHORT_OPTIONS "d:h:p:U:"
#define CONN_LONG_OPTIONS \
	{"dbname", required_argument, NULL, 'd'}, \
	{"host", required_argument, NULL, 'h'}, \
	{"port", required_argument, NULL, 'p'}, \
	{"username", required_argument, NULL, 'U'}
extern bool parse_conn_option(int opt, const char *arg, ConnOptions *conn);
/* getopt_long's next option that is not a connection option (those go into conn); -1 at the end. */
extern int	next_option(int argc, char **argv, const char *optstring,
						const struct option *longopts, ConnOptions *conn);
/* A usage error if arguments are left after the options, or "group" (if any) is not valid. */
extern void check_arguments(const char *subcommand, int argc, char **argv,
							const char *group);

/* getopt_long's value for --help (with "-?", which bad_option handles). */
#define OPT_HELP 1000
extern void bad_option(int opt, char **argv) __attribute__((noreturn));
extern void usage_error(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));
extern bool valid_name(const char *what, const char *name);

/* ---- duration.c ---- */

/* Milliseconds of a duration ("15s", "500ms", "2min", "1.5h"); false if bad. */
extern bool parse_duration(const char *text, int64_t *ms);
/* Milliseconds of a monotonic clock. */
extern int64_t now_ms(void);

/* ---- connection.c ---- */

typedef struct Connection
{
	PGconn	   *conn;
	char	   *schema;			/* the extension's schema, quoted for SQL */
} Connection;

/*
 * Connect and find the extension.  On failure prints why and returns the exit
 * code (EXIT_CONNECTION or EXIT_NO_EXTENSION); on success returns EXIT_OK.
 * "quiet" keeps connection failures to one line (used while reconnecting).
 */
extern int	db_connect(const ConnOptions *opts, Connection *c, bool quiet);
/* db_connect, then LISTEN leader_changed; EXIT_FAILED (disconnected) if that fails. */
extern int	db_connect_listen(const ConnOptions *opts, Connection *c, bool quiet);
extern void db_disconnect(Connection *c);
extern bool db_connection_ok(Connection *c);
/* A statement with text parameters; prints the error and returns NULL if it failed. */
extern PGresult *db_exec(Connection *c, const char *sql, int nparams,
						 const char *const *params);
/* A statement with every "@" replaced by the extension's schema (malloc'd). */
extern char *db_sql(Connection *c, const char *fmt,...) __attribute__((format(printf, 2, 3)));

/* ---- event.c ---- */

typedef struct LeaderEvent
{
	char	   *group;
	char	   *event;			/* acquired, released, expired, vacated, forced */
	char	   *holder;			/* NULL for JSON null */
	char	   *kind;
	char	   *pid;			/* digits, or NULL */
	char	   *term;			/* digits, or NULL */
	char	   *expires_at;
} LeaderEvent;

/* Parse a leader_changed payload; false if it is not a JSON object. */
extern bool parse_event(const char *payload, LeaderEvent *ev);
extern void free_event(LeaderEvent *ev);

/* ---- signals.c ---- */

/*
 * Route SIGINT, SIGTERM, SIGHUP and (if "children") SIGCHLD to a pipe; returns
 * its read end, for select().
 */
extern int	signals_install(bool children);
/* The next signal number waiting on the pipe, or 0 if none. */
extern int	signals_next(void);
/* Wait up to "ms" milliseconds (negative: forever) for the signal pipe or "sock". */
extern void wait_for_input(int sock, int64_t ms);

/* ---- guard.c ---- */

/* "run"'s ends of the guard process of one COMMAND. */
typedef struct Guard
{
	pid_t		pid;
	int			control_fd;		/* requests to the guard */
	int			status_fd;		/* COMMAND's status from the guard */
} Guard;

/*
 * EXIT_OK if "file" resolves, as execvp resolves it, to an executable regular
 * file; otherwise prints why and returns EXIT_CANNOT_EXEC or EXIT_NOT_FOUND.
 */
extern int	guard_check_command(const char *file);
/*
 * Fork the guard, which starts COMMAND with "env" (NAME, VALUE, ..., NULL)
 * added to its environment and keeps "keep_fd" (the connection's socket) open
 * until COMMAND and everything it started are gone.  The guard stops them
 * when asked, when COMMAND exits (what it left running), and when this
 * process dies (by "deadline" at the latest); false if it could not start.
 */
extern bool guard_start(Guard *g, char **command, const char *const *env,
						int64_t grace_ms, int64_t deadline, int keep_fd);
/* The lease now lasts at least until "deadline" (monotonic ms). */
extern void guard_set_deadline(Guard *g, int64_t deadline);
/* Stop COMMAND's tree: SIGTERM, SIGKILL after the grace (or at once). */
extern void guard_stop(Guard *g, bool at_once);
/* Whether the guard has exited, the tree gone; then *code is COMMAND's status as a shell reports it. */
extern bool guard_done(Guard *g, int *code);

/* ---- subcommands ---- */

extern int	cmd_run(int argc, char **argv, ConnOptions *conn);
extern int	cmd_watch(int argc, char **argv, ConnOptions *conn);
extern int	cmd_status(int argc, char **argv, ConnOptions *conn);
extern int	cmd_release(int argc, char **argv, ConnOptions *conn);

#endif							/* PG_LEADER_H */
