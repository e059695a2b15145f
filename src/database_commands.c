/*
 * database_commands.c
 *	  Keeps a database's background worker out of the way of the commands
 *	  that need a database nobody is connected to: DROP DATABASE, ALTER
 *	  DATABASE ... RENAME / SET TABLESPACE, and CREATE DATABASE ... TEMPLATE.
 *
 * Before such a command runs, the database's worker is asked to leave (and
 * kept from coming back); once the command is over, the worker comes back
 * if the database still exists.  A database just created gets a worker
 * too, in case its template had the extension.  Only with the library
 * preloaded.
 */
#include "leader.h"

#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

/* Which database the command needs free of connections, or NULL. */
static const char *
database_to_free(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			return ((DropdbStmt *) parsetree)->dbname;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				return ((RenameStmt *) parsetree)->subname;
			return NULL;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
					return ((AlterDatabaseStmt *) parsetree)->dbname;
			}
			return NULL;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *option = lfirst(lc);

				if (strcmp(option->defname, "template") == 0 && option->arg != NULL)
					return defGetString(option);
			}
			return NULL;
		default:
			return NULL;
	}
}

static void
leader_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					   ProcessUtilityContext context, ParamListInfo params,
					   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	const char *dbname = database_to_free(pstmt->utilityStmt);
	Oid			dboid = dbname != NULL ? get_database_oid(dbname, true) : InvalidOid;

	if (OidIsValid(dboid))
		leader_pause_worker(dboid);
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
								 queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (OidIsValid(dboid))
			leader_resume_worker(dboid, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (OidIsValid(dboid))
		leader_resume_worker(dboid, !IsA(pstmt->utilityStmt, DropdbStmt));

	/* A new database may have the extension already, from its template. */
	if (IsA(pstmt->utilityStmt, CreatedbStmt))
		leader_request_worker_at_commit(get_database_oid(((CreatedbStmt *) pstmt->utilityStmt)->dbname,
														 false));
}

void
leader_database_commands_install(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = leader_process_utility;
}
