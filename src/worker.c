/*
 * worker.c
 *	  A database's worker: records the end of leases as soon as they end,
 *	  so that listeners hear "expired" at expires_at and "vacated" when a
 *	  holder's session ends, and waiting candidates are woken.
 *
 * Its loop: read the held leases (never the vacant groups), pick those
 * past expires_at and, when told a session ended, the session-bound ones;
 * end each that is over in a transaction of its own, with the same code a
 * user's call would run (election.c); then sleep on its latch until the
 * next expires_at, or until a commit or a session end wakes it.  It never
 * polls on a short period: a group it finds busy is tried again after
 * 20 ms, then 40, 80... up to a second while it stays busy, and the commit
 * of a fence that held an expired lease wakes it at once.  It never waits on a user's transaction: a group whose
 * lock is busy (a fence, a change in progress) is retried a moment later,
 * and an error in one group (a full notification queue, say) is logged and
 * retried without stopping the others.
 */
#include "leader.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void leader_worker_main(Datum arg);
static void worker_leave_for_good(void) pg_attribute_noreturn();

static volatile sig_atomic_t worker_stop_requested = false;

/*
 * SIGTERM (server shutdown, or a database command that needs the database
 * free, see database_commands.c): leave at the next turn of the loop, with
 * exit code 0, so that the postmaster does not start the worker again.
 */
static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	worker_stop_requested = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

#define WORKER_RETRY_MS 20		/* a busy group is tried again after this, */
#define WORKER_RETRY_MAX_MS 1000	/* doubling while it stays busy, up to this */
#define WORKER_ERROR_RETRY_MS 1000

typedef struct WorkerPlan
{
	List	   *groups;			/* char *: groups to look at now */
	TimestampTz next_expiry;	/* earliest expires_at not yet due, or 0 */
} WorkerPlan;

/* The extension's schema in this database, or InvalidOid if it is gone. */
static Oid
worker_extension_namespace(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			namespace = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("leader"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		namespace = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return namespace;
}

/* The database has no leader extension (any more): leave, and say why. */
static void
worker_leave_for_good(void)
{
	ereport(LOG,
			(errmsg("leader worker exiting: extension \"leader\" is not installed in database %u",
					MyDatabaseId)));
	proc_exit(0);
}

static bool
worker_database_has_extension(void)
{
	bool		found;

	StartTransactionCommand();
	found = OidIsValid(worker_extension_namespace());
	CommitTransactionCommand();
	return found;
}

/*
 * Which groups to look at now (leases past expires_at, and, when a session
 * may have ended, the session-bound ones), and when the next lease expires.
 * It reads the held leases only (the partial index leader_lease_held_idx).
 * Returns false when the extension is no longer in this database.
 */
static bool
worker_plan(WorkerPlan *plan, bool sessions_ended)
{
	Oid			namespace;
	TimestampTz now = GetCurrentTimestamp();

	memset(plan, 0, sizeof(WorkerPlan));
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	namespace = worker_extension_namespace();
	if (OidIsValid(namespace))
	{
		char	   *query = psprintf("SELECT group_name, expires_at, holder_kind = 'session', "
									 "term, pid, backend_start "
									 "FROM %s WHERE holder IS NOT NULL",
									 quote_qualified_identifier(get_namespace_name(namespace),
																"leader_lease"));

		SPI_connect();
		if (SPI_execute(query, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "leader worker: could not read the held leases");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			char	   *group = SPI_getvalue(tuple, desc, 1);
			TimestampTz expires_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 2, &isnull));
			bool		session = DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull));
			bool		vacated = false;

			/* A session-bound lease whose session is gone: probed right here. */
			if (session && sessions_ended && expires_at > now)
				vacated = !session_lock_holder_alive(group,
													 DatumGetInt64(SPI_getbinval(tuple, desc, 4, &isnull)),
													 DatumGetInt32(SPI_getbinval(tuple, desc, 5, &isnull)),
													 DatumGetTimestampTz(SPI_getbinval(tuple, desc, 6, &isnull)));
			if (expires_at <= now || vacated)
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

				plan->groups = lappend(plan->groups, pstrdup(group));
				MemoryContextSwitchTo(old);
			}
			else if (plan->next_expiry == 0 || expires_at < plan->next_expiry)
				plan->next_expiry = expires_at;
		}
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return OidIsValid(namespace);
}

/*
 * End one group's lease if it is over, in a transaction of its own.  Returns
 * 0 when done, else how many milliseconds to wait before trying again: a
 * little if its group was busy, longer if it failed.
 */
static int
worker_settle(const char *group)
{
	MemoryContext context = CurrentMemoryContext;
	volatile int retry_ms = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		Oid			namespace = worker_extension_namespace();

		pgstat_report_activity(STATE_RUNNING, "leader: ending a lease");
		if (OidIsValid(namespace) && leader_settle_if_ended(namespace, group) == SETTLE_BUSY)
			retry_ms = WORKER_RETRY_MS;
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		retry_ms = WORKER_ERROR_RETRY_MS;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return retry_ms;
}

void
leader_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	int			busy_backoff_ms = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("leader worker");

	if (!worker_database_has_extension())
		worker_leave_for_good();	/* nothing to serve here */
	if (!leader_worker_attach())
		proc_exit(0);			/* another worker serves this database */

	for (;;)
	{
		WorkerPlan	plan;
		ListCell   *lc;
		TimestampTz now;
		TimestampTz wake_at;
		int			retry_ms = 0;

		if (worker_stop_requested)
			proc_exit(0);
		leader_worker_set_next_wake(0);	/* from here on, every commit wakes it */
		if (!worker_plan(&plan, leader_worker_take_sessions_ended()))
			break;
		foreach(lc, plan.groups)
		{
			int			group_retry_ms;

			if (worker_stop_requested)
				break;
			group_retry_ms = worker_settle((const char *) lfirst(lc));
			if (group_retry_ms > 0)
				retry_ms = retry_ms == 0 ? group_retry_ms : Min(retry_ms, group_retry_ms);
			CHECK_FOR_INTERRUPTS();
		}
		list_free_deep(plan.groups);
		pgstat_report_stat(false);	/* let autovacuum see the ended leases */

		now = GetCurrentTimestamp();
		wake_at = plan.next_expiry != 0 ? plan.next_expiry : DT_NOEND;
		if (retry_ms == WORKER_RETRY_MS)	/* a group was busy: back off */
		{
			busy_backoff_ms = busy_backoff_ms == 0 ? WORKER_RETRY_MS
				: Min(busy_backoff_ms * 2, WORKER_RETRY_MAX_MS);
			retry_ms = busy_backoff_ms;
		}
		else
			busy_backoff_ms = 0;
		if (retry_ms > 0)
			wake_at = Min(wake_at, TimestampTzPlusMilliseconds(now, retry_ms));
		leader_worker_set_next_wake(wake_at);

		if (wake_at > now)
		{
			long		timeout_ms = wake_at == DT_NOEND ? -1 :
				(long) ((wake_at - now + 999) / 1000);

			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (timeout_ms >= 0 ? WL_TIMEOUT : 0),
							 timeout_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}

	leader_worker_retire();
	worker_leave_for_good();
}
