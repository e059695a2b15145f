/*
 * status.c: "pg_leader status [--group G]" prints leader_status as a table:
 * one line per group (or only G) with its state, term, holder, holder kind,
 * and when the lease expires, by the server's clock and as time left.
 * Exits 0, also when there is no group to show.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_leader.h"

#define STATUS_COLUMNS 6

/* Display width of a UTF-8 string: one column per character. */
static int
status_width(const char *s)
{
	int			w = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xC0) != 0x80)
			w++;
	return w;
}

static void
status_print_row(const char *const *cells, const int *widths)
{
	for (int i = 0; i < STATUS_COLUMNS; i++)
	{
		if (i == STATUS_COLUMNS - 1)
			printf("%s\n", cells[i]);
		else
			printf("%s%*s  ", cells[i], widths[i] - status_width(cells[i]), "");
	}
}

int
cmd_status(int argc, char **argv, ConnOptions *opts)
{
	static const struct option long_options[] = {
		CONN_LONG_OPTIONS,
		{"group", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0}
	};
	static const char *const headers[STATUS_COLUMNS] = {
		"GROUP", "STATE", "TERM", "HOLDER", "KIND", "EXPIRES"
	};
	const char *group = NULL;
	Connection c;
	PGresult   *res;
	char	   *sql;
	int			widths[STATUS_COLUMNS];
	int			opt;
	int			rc;

	while ((opt = next_option(argc, argv, "+:" CONN_SHORT_OPTIONS "g:?",
							  long_options, opts)) != -1)
	{
		if (opt == 'g')
			group = optarg;
		else if (opt == OPT_HELP)
		{
			printf("Usage: %s status [--group G] [CONNECTION OPTION]...\n"
				   "Print the current leaders, terms and expiries.\n", progname);
			return EXIT_OK;
		}
		else
			bad_option(opt, argv);
	}
	check_arguments("status", argc, argv, group);

	if ((rc = db_connect(opts, &c, false)) != EXIT_OK)
		return rc;

	sql = db_sql(&c,
				 "SELECT group_name, state, coalesce(term::text, '-'), "
				 "       coalesce(holder, '-'), coalesce(kind, '-'), "
				 "       CASE WHEN holder IS NULL THEN '-' "
				 "            ELSE to_char(expires_at, 'YYYY-MM-DD HH24:MI:SS.MS TZH:TZM') || "
				 "                 CASE WHEN expires_at > clock_timestamp() "
				 "                      THEN ' (in ' || to_char(extract(epoch FROM expires_at - clock_timestamp()), 'FM999999990.0') || ' s)' "
				 "                      ELSE ' (past)' END "
				 "       END "
				 "FROM @.leader_status "
				 "WHERE $1::text IS NULL OR group_name = $1 "
				 "ORDER BY group_name");
	res = db_exec(&c, sql, 1, (const char *const[]) {group});
	free(sql);
	if (res == NULL)
	{
		db_disconnect(&c);
		return EXIT_FAILED;
	}

	for (int i = 0; i < STATUS_COLUMNS; i++)
	{
		widths[i] = status_width(headers[i]);
		for (int r = 0; r < PQntuples(res); r++)
		{
			int			w = status_width(PQgetvalue(res, r, i));

			if (w > widths[i])
				widths[i] = w;
		}
	}
	status_print_row(headers, widths);
	for (int r = 0; r < PQntuples(res); r++)
	{
		const char *cells[STATUS_COLUMNS];

		for (int i = 0; i < STATUS_COLUMNS; i++)
			cells[i] = PQgetvalue(res, r, i);
		status_print_row(cells, widths);
	}
	if (PQntuples(res) == 0)
		printf(group ? "(no group \"%s\")\n" : "(no groups)\n", group);
	PQclear(res);
	db_disconnect(&c);
	return EXIT_OK;
}
