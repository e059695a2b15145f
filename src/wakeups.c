/*
 * wakeups.c
 *	  Who must hear of a transaction's changes once it commits: the callers
 *	  of leader_acquire waiting on a group that fell vacant, the database's
 *	  worker when a lease now expires sooner than it planned to wake, and
 *	  the launcher when a database may now need a worker (CREATE EXTENSION,
 *	  CREATE DATABASE from a template that has it).
 *
 * Nothing is woken before the commit has released the transaction's locks
 * (a rolled-back change must wake nobody into a state that never existed,
 * and a woken waiter must find the group lock free), and nothing happens
 * here at all unless the library was preloaded (leader_shared_available()).
 */
#include "leader.h"

#include "utils/resowner.h"
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension_d.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

static List *wk_vacated = NIL;	/* ConditionVariable *, in TopTransactionContext */
static TimestampTz wk_earliest_expiry = 0;
static List *wk_worker_requests = NIL;	/* database OIDs, in TopTransactionContext */
static TimestampTz wk_fenced_expiry = 0;
static bool wk_extension_dropped = false;
static object_access_hook_type prev_object_access_hook = NULL;

/* A lease of the group ended in this transaction: wake its waiters at commit. */
void
leader_wake_waiters_at_commit(const char *group)
{
	MemoryContext old;

	if (!leader_shared_available())
		return;
	old = MemoryContextSwitchTo(TopTransactionContext);
	wk_vacated = list_append_unique_ptr(wk_vacated, leader_group_wakeup(group));
	MemoryContextSwitchTo(old);
}

/*
 * This transaction fenced a lease that expires at expires_at: the worker
 * could not end it meanwhile, so if it has expired by commit, wake the worker.
 */
void
leader_wake_worker_after_fence(TimestampTz expires_at)
{
	if (wk_fenced_expiry == 0 || expires_at < wk_fenced_expiry)
		wk_fenced_expiry = expires_at;
}

/* The database needs a worker (if it has the extension) once this commits. */
void
leader_request_worker_at_commit(Oid dboid)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

	wk_worker_requests = list_append_unique_oid(wk_worker_requests, dboid);
	MemoryContextSwitchTo(old);
}

/* A lease that expires at expires_at was written: the worker must know. */
void
leader_wake_worker_at_commit(TimestampTz expires_at)
{
	if (wk_earliest_expiry == 0 || expires_at < wk_earliest_expiry)
		wk_earliest_expiry = expires_at;
}

static void
wk_forget(void)
{
	wk_vacated = NIL;			/* its memory goes with TopTransactionContext */
	wk_earliest_expiry = 0;
	wk_fenced_expiry = 0;
	wk_worker_requests = NIL;
	wk_extension_dropped = false;
}

/*
 * Wake them once the transaction has committed and released its locks,
 * including the group lock: a waiter woken any earlier could find that lock
 * still taken, and would go back to sleep.
 */
static void
wk_resource_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel, void *arg)
{
	ListCell   *lc;

	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel)
		return;
	if (isCommit && leader_shared_available())
	{
		foreach(lc, wk_vacated)
			ConditionVariableBroadcast((ConditionVariable *) lfirst(lc));
		foreach(lc, wk_worker_requests)
			leader_request_worker(lfirst_oid(lc));
		if (wk_extension_dropped ||
			(wk_fenced_expiry != 0 && GetCurrentTimestamp() >= wk_fenced_expiry))
			leader_wake_worker(MyDatabaseId, false, 0);
		else if (wk_earliest_expiry != 0)
			leader_wake_worker(MyDatabaseId, false, wk_earliest_expiry);
	}
	wk_forget();
}

/*
 * PREPARE TRANSACTION releases its resources as if it committed, but its
 * changes are not committed yet: nobody is woken for them.
 */
static void
wk_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PREPARE)
		wk_forget();
}

/*
 * Notice CREATE EXTENSION and DROP EXTENSION of any extension in this
 * database: at commit the launcher starts the database's worker (which
 * leaves again if the extension is not leader), or its worker rechecks
 * whether leader is still there.
 */
static void
wk_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (classId != ExtensionRelationId)
		return;
	if (access == OAT_POST_CREATE)
		leader_request_worker_at_commit(MyDatabaseId);
	else if (access == OAT_DROP)
		wk_extension_dropped = true;
}

void
leader_wakeups_install(void)
{
	RegisterResourceReleaseCallback(wk_resource_release, NULL);
	RegisterXactCallback(wk_xact_callback, NULL);
	prev_object_access_hook = object_access_hook;
	object_access_hook = wk_object_access;
}
