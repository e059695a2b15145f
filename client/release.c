/*
 * release.c: "pg_leader release --group G [--holder NAME] [--force]".
 *
 * With --holder, ends named holder NAME's leadership of G (leader_release; only
 * a session of the role that holds it can).  --force ends whoever leads G
 * (leader_force_release, which needs its EXECUTE privilege granted).  Without
 * either it calls leader_release for this program's own session, which never
 * leads: a session-bound leadership ends only with its own session (or by
 * force), and the message says so.  Exits 0 if a leadership ended, 1 if not.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_leader.h"

int
cmd_release(int argc, char **argv, ConnOptions *opts)
{
	static const struct option long_options[] = {
		CONN_LONG_OPTIONS,
		{"group", required_argument, NULL, 'g'},
		{"holder", required_argument, NULL, 'H'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0}
	};
	const char *group = NULL;
	const char *holder = NULL;
	bool		force = false;
	Connection c;
	PGresult   *res;
	char	   *sql;
	bool		released;
	int			opt;
	int			rc;

	while ((opt = next_option(argc, argv, "+:" CONN_SHORT_OPTIONS "g:f?",
							  long_options, opts)) != -1)
	{
		switch (opt)
		{
			case 'g':
				group = optarg;
				break;
			case 'H':
				holder = optarg;
				break;
			case 'f':
				force = true;
				break;
			case OPT_HELP:
				printf("Usage: %s release --group G [--holder NAME | --force] [CONNECTION OPTION]...\n"
					   "End named holder NAME's leadership of G, or (--force) whoever's.\n",
					   progname);
				return EXIT_OK;
			default:
				bad_option(opt, argv);
		}
	}
	check_arguments("release", argc, argv, group);
	if (group == NULL)
		usage_error("release: --group is required");
	if (holder)
		valid_name("the holder name", holder);
	if (force && holder)
		usage_error("release: --force and --holder cannot be used together");

	if ((rc = db_connect(opts, &c, false)) != EXIT_OK)
		return rc;

	if (force)
	{
		sql = db_sql(&c, "SELECT @.leader_force_release($1)");
		res = db_exec(&c, sql, 1, (const char *const[]) {group});
	}
	else
	{
		sql = db_sql(&c, "SELECT @.leader_release($1, $2)");
		res = db_exec(&c, sql, 2, (const char *const[]) {group, holder});
	}
	free(sql);
	if (res == NULL)
	{
		db_disconnect(&c);
		return EXIT_FAILED;
	}
	released = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	db_disconnect(&c);

	if (released)
	{
		printf("released \"%s\"\n", group);
		return EXIT_OK;
	}
	if (force)
		fprintf(stderr, "%s: nobody leads \"%s\"\n", progname, group);
	else if (holder)
		fprintf(stderr, "%s: \"%s\" does not lead \"%s\" (or belongs to another role)\n",
				progname, holder, group);
	else
		fprintf(stderr, "%s: nothing released: a session-bound leadership of \"%s\" ends only "
				"with its own session; use --holder NAME for a named holder, or --force\n",
				progname, group);
	return EXIT_FAILED;
}
