/*
 * worker.c
 *	  A database's worker: records the end of leases as soon as they end,
 *	  so that listeners hear "expired" at expires_at and "vacated" when a
 *	  holder's session ends, and waiting candidates are woken.
 *
 * Its loop: take the notes committed transactions left for it (a new
 * lease and its expiry; a group whose holder's session ended) into its
 * schedule (schedule.c); when asked to (at start, or when the notes ran
 * short), read every held lease into the schedule; read the row of each
 * group that is due and end those that are over, each in a transaction of
 * its own, with the same code a user's call would run (election.c); put
 * the others back at their current expires_at; then sleep on its latch
 * until the next group is due, or until a note wakes it.  So its work
 * grows with the leases that start and end, never with the groups nobody
 * touches; a renewed lease costs it one read per TTL.
 *
 * It never polls on a short period and never waits on a user's
 * transaction: a group whose lock is busy (a fence, a change in progress)
 * is looked at again after 20 ms, then 40, 80... up to a second while
 * groups stay busy, and the end of a fence that held an expired lease
 * tells it at once.  An error in one group (a full notification queue,
 * say) is logged and that group retried a second later, without stopping
 * the others.
 *
 * It runs as a superuser in a database whose owner may not be one, so it
 * reads and writes leader_lease only through lease_store.c (no SQL, no
 * name looked up through search_path, no user's operator, function or
 * trigger), and fixes the settings that ALTER DATABASE/ROLE ... SET could
 * use to subvert or stop it (worker_fix_settings).
 */
#include "leader.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void leader_worker_main(Datum arg);
pg_noreturn static void worker_leave_for_good(void);

static volatile sig_atomic_t worker_stop_requested = false;
static volatile sig_atomic_t worker_in_transaction = false;

/*
 * SIGTERM (server shutdown, or a database command that needs the database
 * free, see database_commands.c): leave with exit code 0, so that the
 * postmaster does not start the worker again.
 *
 * Asleep between passes, the worker leaves at the top of its loop.  In one
 * of its transactions it may be waiting inside PostgreSQL: for a lock a
 * user's transaction holds on the table, or in a commit, for a synchronous
 * standby that may never answer (it may be shutting down too).  Those waits
 * end only for an interrupt, so the stop then also cancels the transaction's
 * wait (a lock wait ends in an error, a commit's wait for the standby in a
 * warning, the commit staying local), and worker_run makes the worker leave
 * as soon as the transaction is over.
 */
static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	worker_stop_requested = true;
	if (worker_in_transaction)
	{
		QueryCancelPending = true;
		InterruptPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

#define WORKER_RETRY_MS 20		/* a busy group is tried again after this, */
#define WORKER_RETRY_MAX_MS 1000	/* doubling while groups stay busy, up to this */
#define WORKER_ERROR_RETRY_MS 1000

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

typedef void (*WorkerStep) (void *arg);

/*
 * Run step(arg) in a transaction of its own.  If it fails: a worker asked
 * to stop leaves (the error may be the cancel worker_sigterm asked for);
 * else, with rethrow, the error is raised again (the worker exits and the
 * postmaster starts it afresh), and without it, it is logged, the
 * transaction aborted and the call returns false.  After the transaction, a
 * worker asked to stop leaves.
 */
static bool
worker_run(WorkerStep step, void *arg, bool rethrow)
{
	MemoryContext context = CurrentMemoryContext;
	volatile bool failed = false;

	worker_in_transaction = true;	/* from here a stop cancels, see worker_sigterm */
	if (worker_stop_requested)
		proc_exit(0);			/* it came just before */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		step(arg);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		if (rethrow && !worker_stop_requested)
			PG_RE_THROW();
		MemoryContextSwitchTo(context);
		if (!worker_stop_requested)
			EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		failed = true;
	}
	PG_END_TRY();
	worker_in_transaction = false;
	if (worker_stop_requested)
		proc_exit(0);
	return !failed;
}

/*
 * Whether the extension is in this database, looked at under the
 * database's list lock (after any CREATE EXTENSION in progress), and the
 * list of databases with it kept true (database_list.c).
 */
static void
worker_find_extension(void *found)
{
	database_list_lock(MyDatabaseId);
	InvalidateCatalogSnapshot();
	*(bool *) found = OidIsValid(worker_extension_namespace());
	if (*(bool *) found)
		database_list_add(MyDatabaseId);
	else
		database_list_remove(MyDatabaseId);
}

static bool
worker_database_has_extension(void)
{
	bool		found = false;

	worker_run(worker_find_extension, &found, true);
	return found;
}

/* Schedule a held lease: at its expires_at, or now if session-bound. */
static bool
worker_schedule_lease(const LeaseRow *row, void *arg)
{
	schedule_no_later_than(row->group, row->kind == HOLDER_SESSION ? 0 : row->expires_at);
	return true;
}

/*
 * Schedule every held lease: at its expires_at, or now for a session-bound
 * one (its session may have ended unseen).  *found: whether the extension
 * is still in this database.
 */
static void
worker_read_held_leases(void *found)
{
	Oid			namespace;

	PushActiveSnapshot(GetTransactionSnapshot());
	namespace = worker_extension_namespace();
	if (OidIsValid(namespace))
	{
		LeaseStore *store = lease_store_open(namespace, AccessShareLock);

		lease_store_visit_held(store, worker_schedule_lease, NULL);
		lease_store_close(store);
	}
	PopActiveSnapshot();
	*(bool *) found = OidIsValid(namespace);
}

/* Returns false when the extension is no longer in this database. */
static bool
worker_schedule_held_leases(void)
{
	bool		found = false;

	worker_run(worker_read_held_leases, &found, true);
	return found;
}

typedef struct DueGroups
{
	TimestampTz now;
	List	   *ended;			/* char *, in TopMemoryContext */
	bool		found;			/* the extension is still there */
} DueGroups;

/*
 * Read the row of every group due now: put a lease that has not ended back
 * in the schedule at its expires_at, forget a vacant group, and list the
 * groups whose lease is over.
 */
static void
worker_read_due_groups(void *arg)
{
	DueGroups  *due = (DueGroups *) arg;
	char		group[LEADER_MAX_NAME_BYTES + 1];
	Oid			namespace;

	PushActiveSnapshot(GetTransactionSnapshot());
	namespace = worker_extension_namespace();
	due->found = OidIsValid(namespace);
	if (due->found)
	{
		LeaseStore *store = lease_store_open(namespace, AccessShareLock);

		while (schedule_take_due(due->now, group))
		{
			LeaseRow	row;

			lease_store_read(store, group, &row);
			switch (leader_lease_state(&row, NULL, due->now))
			{
				case LEASE_EXPIRED:
				case LEASE_VACATED:
					{
						MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

						due->ended = lappend(due->ended, pstrdup(group));
						MemoryContextSwitchTo(old);
						break;
					}
				case LEASE_OTHERS:
					schedule_exactly(group, row.expires_at);
					break;
				default:
					break;		/* vacant: nothing to wait for */
			}
		}
		lease_store_close(store);
	}
	PopActiveSnapshot();
}

/*
 * The groups whose lease is over among those due now (see
 * worker_read_due_groups), in *ended.  Returns false when the extension is
 * no longer in this database.
 */
static bool
worker_look_at_due_groups(List **ended)
{
	DueGroups	due = {.now = GetCurrentTimestamp(), .ended = NIL, .found = true};

	if (schedule_next_due() <= due.now)
		worker_run(worker_read_due_groups, &due, true);
	*ended = due.ended;
	return due.found;
}

typedef struct Settlement
{
	const char *group;
	SettleResult result;
} Settlement;

static void
worker_end_lease(void *arg)
{
	Settlement *settlement = (Settlement *) arg;
	Oid			namespace = worker_extension_namespace();

	pgstat_report_activity(STATE_RUNNING, "leader: ending a lease");
	if (OidIsValid(namespace))
		settlement->result = leader_settle_if_ended(namespace, settlement->group);
}

/*
 * End one group's lease if it is over, in a transaction of its own.  Unless
 * its end is recorded, the group goes back in the schedule: after
 * busy_retry_ms if its group lock was busy, after a second if it failed,
 * and at once if its lease changed since it was read (the next pass reads
 * it again).  Returns whether the group was busy.
 */
static bool
worker_settle(const char *group, int busy_retry_ms)
{
	Settlement	settlement = {.group = group, .result = SETTLE_ENDED};
	bool		done = worker_run(worker_end_lease, &settlement, false);

	pgstat_report_activity(STATE_IDLE, NULL);
	if (!done)
		schedule_exactly(group, TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 WORKER_ERROR_RETRY_MS));
	else if (settlement.result == SETTLE_BUSY)
		schedule_exactly(group, TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 busy_retry_ms));
	else if (settlement.result == SETTLE_NOTHING)
		schedule_exactly(group, GetCurrentTimestamp());
	return done && settlement.result == SETTLE_BUSY;
}

/*
 * The settings the worker runs with whatever ALTER DATABASE ... SET or
 * ALTER ROLE ... SET say (a database's owner may set these): it resolves no
 * name through a search_path a user can change, acts as the superuser it
 * was started as, and no timeout, read-only default, isolation level or
 * exit_on_error of a user's choosing stops it or turns the error of one
 * group into its exit.
 */
static const struct
{
	const char *name;
	const char *value;
}			worker_fixed_settings[] =
{
	{"search_path", "pg_catalog, pg_temp"},
	{"role", "none"},
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	{"idle_session_timeout", "0"},
#ifdef LEADER_HAVE_TRANSACTION_TIMEOUT
	{"transaction_timeout", "0"},
#endif
	{"default_transaction_read_only", "off"},
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_deferrable", "off"},
	{"exit_on_error", "off"},
};

static void
worker_fix_settings(void)
{
	for (int i = 0; i < lengthof(worker_fixed_settings); i++)
		SetConfigOption(worker_fixed_settings[i].name, worker_fixed_settings[i].value,
						PGC_SUSET, PGC_S_OVERRIDE);
}

void
leader_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	int			busy_backoff_ms = 0;
	uint32		requests_seen;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	worker_fix_settings();
	pgstat_report_appname("leader worker");

	requests_seen = leader_worker_requests();
	if (!worker_database_has_extension())
	{
		leader_worker_unneeded(requests_seen);
		worker_leave_for_good();	/* nothing to serve here */
	}
	if (!leader_worker_attach())
		proc_exit(0);			/* another worker serves this database */

	for (;;)
	{
		LeaderWorkerNote notes[LEADER_WORKER_NOTES];
		int			note_count;
		bool		rescan;
		List	   *ended;
		ListCell   *lc;
		TimestampTz now;
		TimestampTz wake_at;
		int			busy_retry_ms;
		bool		busy = false;

		if (worker_stop_requested)
			proc_exit(0);
		leader_worker_set_next_wake(0);	/* from here on, every note wakes it */
		rescan = leader_worker_take_notes(notes, &note_count);
		for (int i = 0; i < note_count; i++)
			schedule_no_later_than(notes[i].group, notes[i].when);
		if (rescan && !worker_schedule_held_leases())
			break;
		if (!worker_look_at_due_groups(&ended))
			break;
		busy_retry_ms = busy_backoff_ms == 0 ? WORKER_RETRY_MS
			: Min(busy_backoff_ms * 2, WORKER_RETRY_MAX_MS);
		foreach(lc, ended)
		{
			busy |= worker_settle((const char *) lfirst(lc), busy_retry_ms);
			CHECK_FOR_INTERRUPTS();
		}
		busy_backoff_ms = busy ? busy_retry_ms : 0;
		if (ended != NIL)
			pgstat_report_stat(false);	/* let autovacuum see the ended leases */
		list_free_deep(ended);

		now = GetCurrentTimestamp();
		wake_at = schedule_next_due();
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
	if (!worker_database_has_extension())	/* to update the list */
		worker_leave_for_good();
	proc_exit(0);				/* created again: the launcher starts a worker */
}
