/*
 * launcher.c
 *	  The launcher: a background worker, started by the postmaster when the
 *	  library is preloaded, that starts one worker per database where the
 *	  extension exists.
 *
 * It connects to no database.  At start it starts a worker in every
 * database of the list of those that may have the extension
 * (database_list.c; every database that accepts connections when the list
 * cannot be trusted), as many at a time as max_worker_processes allows; a
 * worker whose database has no leader extension leaves at once, before
 * taking a slot in shared memory, and takes its database off the list.
 * After that it starts workers when asked: for CREATE EXTENSION (see
 * wakeups.c), after a database command that needed the worker gone
 * (database_commands.c), and when a worker left for any other reason than
 * its database dropping the extension (terminated, failed): that worker
 * asks for its own restart as it exits (shared_state.c), and the launcher
 * logs why it left and starts it again, 0.1 s later but at most once a second
 * per database.  The postmaster restarts no worker itself
 * (BGW_NEVER_RESTART); after a crash of any process it restarts the
 * launcher, which starts them all again.  It runs only once recovery has
 * finished, so nothing acts on a hot standby, and everything starts on
 * promotion.
 */
#include "leader.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void leader_launcher_main(Datum arg);

#define LAUNCHER_RETRY_MS 1000	/* a database waiting for a worker slot */

/* Register the launcher; called from _PG_init while preloading. */
void
leader_register_launcher(void)
{
	BackgroundWorker worker = {0};

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "leader", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "leader_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "leader launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "leader launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Every database that accepts connections. */
static List *
all_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	List	   *dboids = NIL;
	MemoryContext caller = CurrentMemoryContext;	/* the list outlives the transaction */

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			dboids = lappend_oid(dboids, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dboids;
}

static bool
database_exists(Oid dboid)
{
	bool		exists;

	StartTransactionCommand();
	exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboid));
	CommitTransactionCommand();
	return exists;
}

/* Start one database's worker; false if no worker slot was free. */
static bool
start_worker(Oid dboid)
{
	BackgroundWorker worker = {0};
	BackgroundWorkerHandle *handle;

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher does */
	strlcpy(worker.bgw_library_name, "leader", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "leader_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "leader worker for database %u", dboid);
	strlcpy(worker.bgw_type, "leader worker", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

static void
launcher_close_list(int code, Datum arg)
{
	database_list_close();
}

/*
 * The databases to start a worker in now: those asked for (logging why a
 * worker that left unasked left) and those still waiting for a worker slot.
 * *next_due: when the next restart held back is due.
 */
static List *
databases_to_serve(List *deferred, TimestampTz *next_due)
{
	List	   *requests = leader_take_start_requests(GetCurrentTimestamp(), next_due);
	List	   *dboids = NIL;
	ListCell   *lc;

	foreach(lc, requests)
	{
		LeaderStartRequest *request = lfirst(lc);

		if (request->restart)
			ereport(LOG,
					(errmsg("leader: restarting the worker for database %u", request->dboid),
					 request->exit_code == 0
					 ? errdetail("It was terminated (SIGTERM).")
					 : errdetail("It exited with exit code %d after an error.",
								 request->exit_code)));
		dboids = lappend_oid(dboids, request->dboid);
	}
	list_free_deep(requests);
	return list_concat_unique_oid(dboids, deferred);
}

void
leader_launcher_main(Datum arg)
{
	List	   *deferred;		/* databases still waiting for a worker slot */
	List	   *warned = NIL;	/* those of them already logged */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("leader launcher");

	leader_launcher_attach();
	/* A worker in each database that may have the extension. */
	deferred = database_list_open(all_databases);
	before_shmem_exit(launcher_close_list, (Datum) 0);

	for (;;)
	{
		TimestampTz next_due = DT_NOEND;
		List	   *dboids = databases_to_serve(deferred, &next_due);
		List	   *failed = NIL;
		ListCell   *lc;
		TimestampTz now;
		long		timeout_ms = -1;

		foreach(lc, dboids)
		{
			Oid			dboid = lfirst_oid(lc);

			if (!database_exists(dboid))
			{
				leader_forget_database(dboid);
				database_list_remove(dboid);
				continue;
			}
			if (start_worker(dboid))
			{
				warned = list_delete_oid(warned, dboid);
				continue;
			}
			failed = lappend_oid(failed, dboid);
			/* Said once per database, not at every retry. */
			if (!list_member_oid(warned, dboid))
			{
				ereport(LOG,
						(errmsg("leader: could not start the worker for database %u", dboid),
						 errhint("Raise max_worker_processes; leader needs one worker per database that uses it, plus its launcher.")));
				warned = lappend_oid(warned, dboid);
			}
		}
		list_free(dboids);
		deferred = failed;

		now = GetCurrentTimestamp();
		if (deferred != NIL)
			next_due = Min(next_due, TimestampTzPlusMilliseconds(now, LAUNCHER_RETRY_MS));
		if (next_due != DT_NOEND)
			timeout_ms = Max((long) ((next_due - now + 999) / 1000), 0);
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (timeout_ms >= 0 ? WL_TIMEOUT : 0),
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}
