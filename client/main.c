/*
 * main.c: pg_leader's entry point.  Owns the command line shared by every
 * subcommand (connection options, --help, --version), the checks of names,
 * the usage errors, and the dispatch to the subcommands.
 *
 * Connection options may come before or after the subcommand:
 *   pg_leader [CONNECTION OPTIONS] SUBCOMMAND [OPTIONS] [CONNECTION OPTIONS]
 * Anything not given comes from the PG* environment variables, as with psql.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_leader.h"

const char *progname = "pg_leader";

static void
main_help(void)
{
	printf("%s runs a command on exactly one machine at a time, using the leader\n"
		   "extension of a PostgreSQL database, and shows its elections.\n\n", progname);
	printf("Usage:\n"
		   "  %s [CONNECTION OPTION]... SUBCOMMAND [OPTION]...\n\n", progname);
	printf("Subcommands:\n"
		   "  run --group G [--ttl D] [--holder NAME] [--wait D] [--grace D] -- COMMAND [ARG]...\n"
		   "        wait until this program leads G, then run COMMAND while it leads;\n"
		   "        COMMAND and every process it started are stopped (SIGTERM, then\n"
		   "        SIGKILL after the grace, 10s by default) the moment the leadership\n"
		   "        is lost, and when pg_leader itself dies\n"
		   "  watch [--group G] [--json]\n"
		   "        print every change of leadership as it happens (--json: raw events)\n"
		   "  status [--group G]\n"
		   "        print the current leaders, terms and expiries\n"
		   "  release --group G [--holder NAME] [--force]\n"
		   "        end the leadership of named holder NAME (--force: whoever leads G)\n\n");
	printf("Durations (D) are a number and a unit: 500ms, 15s, 2min, 1h (default unit: s).\n"
		   "The TTL defaults to the server's leader.default_ttl; --wait to no limit.\n\n");
	printf("Connection options:\n"
		   "  -d, --dbname=DBNAME      database name or connection string\n"
		   "  -h, --host=HOSTNAME      database server host or socket directory\n"
		   "  -p, --port=PORT          database server port\n"
		   "  -U, --username=USERNAME  database user name\n\n");
	printf("Other options:\n"
		   "  -?, --help               show this help, then exit\n"
		   "  -V, --version            output version information, then exit\n\n");
	printf("Exit status: 0 success; 1 a statement failed, or release released nothing;\n"
		   "2 bad arguments; 3 cannot connect; 4 extension \"leader\" missing;\n"
		   "5 run: leadership lost (COMMAND stopped); 6 run: --wait passed;\n"
		   "126/127 run: COMMAND cannot be run / not found; otherwise run exits with\n"
		   "COMMAND's status (128+N if a signal N ended it).\n");
}

void
usage_error(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry \"%s --help\" for more information.\n", progname);
	exit(EXIT_USAGE);
}

/*
 * Report what getopt_long (with opterr = 0 and ':' leading the option string)
 * found wrong, as a usage error; "-?" asks for help.
 */
void
bad_option(int opt, char **argv)
{
	if (opt == '?' && optopt == '?')
	{
		main_help();
		exit(EXIT_OK);
	}
	if (opt == ':')
		usage_error("option \"%s\" needs a value", argv[optind - 1]);
	usage_error("invalid option \"%s\"", argv[optind - 1]);
}

bool
parse_conn_option(int opt, const char *arg, ConnOptions *conn)
{
	switch (opt)
	{
		case 'd':
			conn->dbname = arg;
			return true;
		case 'h':
			conn->host = arg;
			return true;
		case 'p':
			conn->port = arg;
			return true;
		case 'U':
			conn->user = arg;
			return true;
		default:
			return false;
	}
}

/*
 * The next option of a subcommand's arguments that is not a connection option,
 * or -1 at the end; connection options go into "conn" on the way.  "optstring"
 * and "longopts" are getopt_long's, with the connection options in them.
 */
int
next_option(int argc, char **argv, const char *optstring,
			const struct option *longopts, ConnOptions *conn)
{
	int			opt;

	while ((opt = getopt_long(argc, argv, optstring, longopts, NULL)) != -1)
	{
		if (!parse_conn_option(opt, optarg, conn))
			return opt;
	}
	return -1;
}

/*
 * A usage error if a subcommand's options are followed by an argument, or if
 * the group name given (NULL: none) is not valid.
 */
void
check_arguments(const char *subcommand, int argc, char **argv, const char *group)
{
	if (optind < argc)
		usage_error("%s: unexpected argument \"%s\"", subcommand, argv[optind]);
	if (group)
		valid_name("the group name", group);
}

/* Group and holder names: 1 to NAME_MAX_BYTES bytes, as the extension requires. */
bool
valid_name(const char *what, const char *name)
{
	size_t		len = strlen(name);

	if (len == 0)
		usage_error("%s must not be empty", what);
	if (len > NAME_MAX_BYTES)
		usage_error("%s is %zu bytes long; the limit is %d", what, len, NAME_MAX_BYTES);
	return true;
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		CONN_LONG_OPTIONS,
		{"help", no_argument, NULL, OPT_HELP},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	ConnOptions conn = {NULL, NULL, NULL, NULL};
	const char *sub;
	int			opt;

	/* '+': stop at the subcommand; ':' lets us word errors ourselves. */
	opterr = 0;
	while ((opt = next_option(argc, argv, "+:" CONN_SHORT_OPTIONS "?V",
							  long_options, &conn)) != -1)
	{
		switch (opt)
		{
			case OPT_HELP:
				main_help();
				return EXIT_OK;
			case 'V':
				printf("pg_leader (leader) %s\n", PG_LEADER_VERSION);
				return EXIT_OK;
			default:
				bad_option(opt, argv);
		}
	}

	if (optind >= argc)
		usage_error("no subcommand given (run, watch, status or release)");
	sub = argv[optind];

	/* Each subcommand parses its own arguments, argv[0] being its name. */
	argc -= optind;
	argv += optind;
	optind = 0;

	if (strcmp(sub, "run") == 0)
		return cmd_run(argc, argv, &conn);
	if (strcmp(sub, "watch") == 0)
		return cmd_watch(argc, argv, &conn);
	if (strcmp(sub, "status") == 0)
		return cmd_status(argc, argv, &conn);
	if (strcmp(sub, "release") == 0)
		return cmd_release(argc, argv, &conn);
	if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0)
	{
		main_help();
		return EXIT_OK;
	}
	usage_error("unknown subcommand \"%s\" (run, watch, status or release)", sub);
	return EXIT_USAGE;
}
