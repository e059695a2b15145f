/*
 * wakeups.c
 *	  Who must hear of a transaction's changes once it commits: the callers
 *	  of leader_acquire waiting on a group that fell vacant, the database's
 *	  worker of every lease it must see end (a new lease, a renewal that
 *	  shortened one, a fence that held off an expiry), and the launcher
 *	  when a database may now need a worker (CREATE EXTENSION, CREATE
 *	  DATABASE from a template that has it).
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

/* All lists live in TopTransactionContext. */
static List *wk_vacated = NIL;	/* ConditionVariable * */
static List *wk_worker_notes = NIL; /* LeaderWorkerNote *: at commit */
static List *wk_worker_requests = NIL;	/* database OIDs */
static List *wk_fenced = NIL;	/* LeaderWorkerNote *: at the end, if expired */
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

static List *
wk_add_note(List *notes, const char *group, TimestampTz when)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	LeaderWorkerNote *note = palloc(sizeof(LeaderWorkerNote));

	note->when = when;
	strlcpy(note->group, group, sizeof(note->group));
	notes = lappend(notes, note);
	MemoryContextSwitchTo(old);
	return notes;
}

/*
 * This transaction fenced a lease that expires at expires_at: the worker
 * could not end it meanwhile, so if it has expired when the transaction
 * ends (commit or not), tell the worker to look at it at once.
 */
void
leader_wake_worker_after_fence(const char *group, TimestampTz expires_at)
{
	if (leader_shared_available())
		wk_fenced = wk_add_note(wk_fenced, group, expires_at);
}

/* The database needs a worker (if it has the extension) once this commits. */
void
leader_request_worker_at_commit(Oid dboid)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

	wk_worker_requests = list_append_unique_oid(wk_worker_requests, dboid);
	MemoryContextSwitchTo(old);
}

/*
 * A lease that expires at expires_at was written, and the worker may not
 * know: it is told at commit.
 */
void
leader_tell_worker_at_commit(const char *group, TimestampTz expires_at)
{
	if (leader_shared_available())
		wk_worker_notes = wk_add_note(wk_worker_notes, group, expires_at);
}

static void
wk_forget(void)
{
	/* the lists' memory goes with TopTransactionContext */
	wk_vacated = NIL;
	wk_worker_notes = NIL;
	wk_worker_requests = NIL;
	wk_fenced = NIL;
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
		foreach(lc, wk_worker_notes)
		{
			LeaderWorkerNote *note = lfirst(lc);

			leader_worker_note(MyDatabaseId, note->group, note->when);
		}
		if (wk_extension_dropped)
			leader_worker_rescan(MyDatabaseId);
	}
	foreach(lc, wk_fenced)
	{
		LeaderWorkerNote *note = lfirst(lc);

		if (GetCurrentTimestamp() >= note->when)
			leader_worker_note(MyDatabaseId, note->group, 0);
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
