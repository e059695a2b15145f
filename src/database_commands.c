/*
 * database_commands.c
 *	  Keeps a database's background worker out of the way of the commands
 *	  that need a database nobody is connected to: DROP DATABASE, ALTER
 *	  DATABASE ... RENAME / SET TABLESPACE, and CREATE DATABASE ... TEMPLATE.
 *
 * Before such a command runs, and only if the role running it passes the
 * command's permission check on the database, the database's worker is
 * asked to leave (and kept from coming back); once the command is over,
 * failed or not (an error, or the session's end), the worker comes back if
 * the database still exists.  A database just created gets a worker
 * too, in case its template had the extension.  It also keeps the list of
 * the databases that may have the extension (database_list.c) true for
 * CREATE EXTENSION and CREATE DATABASE.  Only with the library preloaded.
 */
#include "leader.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/syscache.h"

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

/*
 * Whether the current role passes the command's own permission check on the
 * database: only then may its worker be made to leave, so that no role can
 * stop the worker of a database it could not drop, rename, move or copy.
 */
static bool
may_free_database(Node *parsetree, Oid dboid)
{
	HeapTuple	tuple;
	bool		template_copy = false;

	if (leader_database_ownercheck(dboid, GetUserId()))
		return true;
	if (!IsA(parsetree, CreatedbStmt))
		return false;
	/* CREATE DATABASE: any role with CREATEDB may copy a template database */
	tuple = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tuple))
	{
		template_copy = ((Form_pg_database) GETSTRUCT(tuple))->datistemplate;
		ReleaseSysCache(tuple);
	}
	if (!template_copy)
		return false;
	tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetUserId()));
	if (!HeapTupleIsValid(tuple))
		return false;
	template_copy = ((Form_pg_authid) GETSTRUCT(tuple))->rolcreatedb;
	ReleaseSysCache(tuple);
	return template_copy;
}

/* The command failed (ERROR, or FATAL in between): the worker comes back. */
static void
resume_after_failure(int code, Datum dboid)
{
	leader_resume_worker(DatumGetObjectId(dboid), true);
}

static void
run_command(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			ProcessUtilityContext context, ParamListInfo params,
			QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

static void
leader_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					   ProcessUtilityContext context, ParamListInfo params,
					   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	const char *dbname = database_to_free(pstmt->utilityStmt);
	Oid			dboid = dbname != NULL ? get_database_oid(dbname, true) : InvalidOid;

	if (!OidIsValid(dboid) || !may_free_database(pstmt->utilityStmt, dboid))
		run_command(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
	{
		/* the pause's own wait may be interrupted too */
		PG_ENSURE_ERROR_CLEANUP(resume_after_failure, ObjectIdGetDatum(dboid));
		{
			leader_pause_worker(dboid);
			run_command(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		}
		PG_END_ENSURE_ERROR_CLEANUP(resume_after_failure, ObjectIdGetDatum(dboid));
		leader_resume_worker(dboid, !IsA(pstmt->utilityStmt, DropdbStmt));
	}

	/*
	 * This database may have the extension from here on (CREATE EXTENSION
	 * of leader, or of an extension that needs it): listed before it can
	 * commit, under the lock that keeps its worker from taking it off.
	 */
	if (IsA(pstmt->utilityStmt, CreateExtensionStmt))
	{
		database_list_lock(MyDatabaseId);
		database_list_add(MyDatabaseId);
	}

	/* A new database may have the extension already, from its template. */
	if (IsA(pstmt->utilityStmt, CreatedbStmt))
	{
		Oid			created = get_database_oid(((CreatedbStmt *) pstmt->utilityStmt)->dbname,
											   false);

		database_list_add(created);
		leader_request_worker_at_commit(created);
	}
}

void
leader_database_commands_install(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = leader_process_utility;
}
