/*
 * launcher.c
 *	  The launcher: a background worker, started by the postmaster when the
 *	  library is preloaded, that starts one worker per database where the
 *	  extension exists.
 *
 * It connects to no database.  At start it starts a worker in every
 * database that accepts connections, as many at a time as
 * max_worker_processes allows; a worker whose database has no leader
 * extension leaves at once, before taking a slot in shared memory.  After that it starts workers only when
 * asked (CREATE EXTENSION, see wakeups.c) and restarts none itself: the
 * postmaster restarts a worker that failed (bgw_restart_time), and after a
 * crash of any process it restarts the launcher, which starts them all
 * again.  It runs only once recovery has finished, so nothing acts on a
 * hot standby, and everything starts on promotion.
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
#include "utils/wait_event.h"

PGDLLEXPORT void leader_launcher_main(Datum arg);

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
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "leader", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "leader_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "leader worker for database %u", dboid);
	strlcpy(worker.bgw_type, "leader worker", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, &handle);
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
	/* A worker in each database: those without the extension leave at once. */
	deferred = all_databases();

	for (;;)
	{
		List	   *dboids = list_concat_unique_oid(leader_take_start_requests(), deferred);
		List	   *failed = NIL;
		ListCell   *lc;

		foreach(lc, dboids)
		{
			Oid			dboid = lfirst_oid(lc);

			if (!database_exists(dboid))
			{
				leader_forget_database(dboid);
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
		list_free(deferred);
		deferred = failed;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (deferred != NIL ? WL_TIMEOUT : 0),
						 5000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}
