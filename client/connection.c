/*
 * connection.c: connecting to the server like every PostgreSQL client, and
 * finding the leader extension there.
 *
 * The parameters are -d (a database name, or a whole connection string or
 * URI), -h, -p and -U; libpq takes whatever is missing from the PG*
 * environment variables and its defaults.  application_name defaults to
 * "pg_leader", which is how a session-bound leader shows in leader_status.
 *
 * Every call of the extension is qualified with the extension's schema, read
 * from pg_extension, so a user's search_path can neither hide nor replace it.
 * db_connect_listen also LISTENs on leader_changed, for the subcommands that
 * follow events.  Reconnecting is the subcommands' business: they call
 * db_connect (or db_connect_listen) again.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_leader.h"

int
db_connect(const ConnOptions *opts, Connection *c, bool quiet)
{
	const char *keywords[7];
	const char *values[7];
	int			n = 0;
	PGresult   *res;
	char	   *schema;

	c->conn = NULL;
	c->schema = NULL;

	/* dbname first: a connection string there must not override -h, -p or -U. */
	if (opts->dbname)
	{
		keywords[n] = "dbname";
		values[n++] = opts->dbname;
	}
	if (opts->host)
	{
		keywords[n] = "host";
		values[n++] = opts->host;
	}
	if (opts->port)
	{
		keywords[n] = "port";
		values[n++] = opts->port;
	}
	if (opts->user)
	{
		keywords[n] = "user";
		values[n++] = opts->user;
	}
	keywords[n] = "fallback_application_name";
	values[n++] = "pg_leader";
	keywords[n] = NULL;
	values[n] = NULL;

	c->conn = PQconnectdbParams(keywords, values, 1);
	if (c->conn == NULL)
	{
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_CONNECTION;
	}
	if (PQstatus(c->conn) != CONNECTION_OK)
	{
		char	   *msg = PQerrorMessage(c->conn);
		size_t		len = strlen(msg);

		while (len > 0 && msg[len - 1] == '\n')
			msg[--len] = '\0';
		if (quiet)
		{
			char	   *nl = strchr(msg, '\n');

			if (nl)
				*nl = '\0';
		}
		fprintf(stderr, "%s: cannot connect to the server: %s\n", progname, msg);
		db_disconnect(c);
		return EXIT_CONNECTION;
	}

	res = PQexec(c->conn,
				 "SELECT n.nspname FROM pg_catalog.pg_extension e "
				 "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
				 "WHERE e.extname = 'leader'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "%s: %s", progname, PQerrorMessage(c->conn));
		PQclear(res);
		db_disconnect(c);
		return EXIT_CONNECTION;
	}
	if (PQntuples(res) == 0)
	{
		fprintf(stderr,
				"%s: the extension \"leader\" is not installed in database \"%s\"\n"
				"HINT: a superuser can install it with: CREATE EXTENSION leader;\n",
				progname, PQdb(c->conn));
		PQclear(res);
		db_disconnect(c);
		return EXIT_NO_EXTENSION;
	}
	schema = PQescapeIdentifier(c->conn, PQgetvalue(res, 0, 0),
								strlen(PQgetvalue(res, 0, 0)));
	PQclear(res);
	if (schema == NULL)
	{
		fprintf(stderr, "%s: %s", progname, PQerrorMessage(c->conn));
		db_disconnect(c);
		return EXIT_CONNECTION;
	}
	c->schema = strdup(schema);
	PQfreemem(schema);
	return EXIT_OK;
}

int
db_connect_listen(const ConnOptions *opts, Connection *c, bool quiet)
{
	PGresult   *res;
	int			rc = db_connect(opts, c, quiet);

	if (rc != EXIT_OK)
		return rc;
	res = db_exec(c, "LISTEN leader_changed", 0, NULL);
	if (res == NULL)
	{
		db_disconnect(c);
		return EXIT_FAILED;
	}
	PQclear(res);
	return EXIT_OK;
}

void
db_disconnect(Connection *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	free(c->schema);
	c->schema = NULL;
}

bool
db_connection_ok(Connection *c)
{
	return c->conn != NULL && PQstatus(c->conn) == CONNECTION_OK;
}

PGresult *
db_exec(Connection *c, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = PQexecParams(c->conn, sql, nparams, NULL, params,
								   NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "%s: %s", progname, PQerrorMessage(c->conn));
		PQclear(res);
		return NULL;
	}
	return res;
}

/*
 * Format a statement, replacing each "@" with the extension's schema; the
 * result is malloc'd.  (The schema is an identifier, quoted when it needs
 * to be, so it cannot contain a lone "@" that matters.)
 */
char *
db_sql(Connection *c, const char *fmt,...)
{
	char		buf[2048];
	char	   *out;
	size_t		slen = strlen(c->schema);
	size_t		len = 0;
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	out = malloc(strlen(buf) * (slen + 1) + 1);
	if (out == NULL)
	{
		fprintf(stderr, "%s: out of memory\n", progname);
		exit(EXIT_FAILED);
	}
	for (const char *p = buf; *p; p++)
	{
		if (*p == '@')
		{
			memcpy(out + len, c->schema, slen);
			len += slen;
		}
		else
			out[len++] = *p;
	}
	out[len] = '\0';
	return out;
}
