/*
 * group_lock.c
 *	  The per-group change lock: a transaction-level advisory lock in our
 *	  lock space that serializes every change of one group's lease.
 *
 * Protocol (lock modes of one tag per group):
 *	 FENCE		RowShareLock		leader_fence; many at once.
 *	 CHANGE		ShareUpdateExclusiveLock	a renewal; conflicts with other
 *					changes, not with fences, so a leader renews while its
 *					fenced writes run.
 *	 HANDOVER	ExclusiveLock		anything that ends or starts a
 *					leadership; conflicts with all of the above, so a fenced
 *					transaction keeps its term until it ends.
 * Changers that must not wait (leader_try_acquire) ask conditionally and
 * answer false when the lock is busy: that is how they never wait on
 * another session's uncommitted change.  A caller that took the lock and
 * then changed nothing gives it back at once (group_lock_undo), so a losing
 * attempt never holds off the leader's next renewal.
 *
 * A transaction that holds a group lock cannot be prepared: PREPARE
 * TRANSACTION would keep the lock, across restarts, until someone commits
 * or rolls back the prepared transaction, holding off the group all that
 * time.  This is the one place that refuses it, for every call that keeps
 * a group lock (an acquisition, a renewal, a release, a forced release, a
 * fence); since every change of a lease happens under its group lock, no
 * change of the extension is ever prepared.
 *
 * A candidate that finds the lock busy may ask who holds it
 * (group_lock_holders): the database's worker, recording the end of a lease
 * in a transaction of a few milliseconds, is waited for (election.c); any
 * other holder is not.
 */
#include "leader.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/memutils.h"

/* Groups whose lock this transaction asked for, in TopTransactionContext. */
static List *gl_requested = NIL;
static bool gl_callback_registered = false;

/* (database, keyed hash of the name: 64 bits in two fields, 19526) */
static void
group_lock_tag(LOCKTAG *tag, const char *group)
{
	uint64		hash = leader_keyed_hash(group, NULL, 0);

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (hash >> 32),
						 (uint32) hash, LEADER_LOCKSPACE_GROUP);
}

static LOCKMODE
group_lock_mode(GroupLockMode mode)
{
	switch (mode)
	{
		case GROUP_LOCK_FENCE:
			return RowShareLock;
		case GROUP_LOCK_CHANGE:
			return ShareUpdateExclusiveLock;
		case GROUP_LOCK_HANDOVER:
			return ExclusiveLock;
	}
	pg_unreachable();
}

/* Does this transaction hold the group's lock, in any mode? */
static bool
group_lock_held(const char *group)
{
	LOCKTAG		tag;

	group_lock_tag(&tag, group);
	return leader_lock_held_by_me(&tag, group_lock_mode(GROUP_LOCK_FENCE)) ||
		leader_lock_held_by_me(&tag, group_lock_mode(GROUP_LOCK_CHANGE)) ||
		leader_lock_held_by_me(&tag, group_lock_mode(GROUP_LOCK_HANDOVER));
}

static void
gl_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			foreach(lc, gl_requested)
			{
				const char *group = lfirst(lc);

				if (group_lock_held(group))
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot PREPARE a transaction that holds the group lock of group \"%s\"",
									group),
							 errdetail("The transaction changed or fenced a leadership of the group, and a prepared transaction would keep the group locked, across restarts, until it is committed or rolled back."),
							 errhint("Call the leader functions in a transaction that is committed, not prepared.")));
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			gl_requested = NIL; /* its memory goes with the transaction */
			break;
		default:
			break;
	}
}

/* Remember that this transaction asked for the group's lock. */
static void
gl_remember(const char *group)
{
	MemoryContext old;
	ListCell   *lc;

	if (!gl_callback_registered)
	{
		RegisterXactCallback(gl_xact_callback, NULL);
		gl_callback_registered = true;
	}
	foreach(lc, gl_requested)
	{
		if (strcmp(lfirst(lc), group) == 0)
			return;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	gl_requested = lappend(gl_requested, pstrdup(group));
	MemoryContextSwitchTo(old);
}

GroupLockResult
group_lock_take(const char *group, GroupLockMode mode, bool wait)
{
	LOCKTAG		tag;
	bool		fenced_here;
	LockAcquireResult result;

	group_lock_tag(&tag, group);

	/*
	 * A transaction that fenced the group and now waits to hand it over
	 * would deadlock with another transaction holding the group lock that
	 * may do the same (another fencer): it refuses to wait for one, and says
	 * why.  Waiting behind mere waiters is safe, as its fence puts it ahead
	 * of them.
	 */
	fenced_here = mode == GROUP_LOCK_HANDOVER && wait &&
		leader_lock_held_by_me(&tag, RowShareLock);
	if (fenced_here)
	{
		int			holders;

		(void) GetLockConflicts(&tag, ExclusiveLock, &holders);
		if (holders > 0)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("cannot end the leadership of group \"%s\" while another transaction holds its group lock",
							group),
					 errdetail("This transaction fenced the group, so waiting for the other one could deadlock."),
					 errhint("End the leadership in a transaction that did not call leader_fence(), or retry.")));
	}
	gl_remember(group);
	result = LockAcquire(&tag, group_lock_mode(mode), false, !wait);
	switch (result)
	{
		case LOCKACQUIRE_NOT_AVAIL:
			return GROUP_LOCK_BUSY;
		case LOCKACQUIRE_OK:
			return GROUP_LOCK_TAKEN;
		case LOCKACQUIRE_ALREADY_HELD:
		case LOCKACQUIRE_ALREADY_CLEAR:
			return GROUP_LOCK_ALREADY_HELD;
	}
	pg_unreachable();
}

/*
 * Who, besides this transaction, holds the group's lock: nobody, only the
 * database's worker (recording the end of a lease), or anyone else.  (A
 * holder without a virtual transaction id would be a prepared transaction,
 * which is never let hold a group lock, see gl_xact_callback.)
 */
GroupLockHolders
group_lock_holders(const char *group)
{
	LOCKTAG		tag;
	VirtualTransactionId *holders;
	VirtualTransactionId worker = {0};
	PGPROC	   *worker_proc = NULL;
	int			count;
	GroupLockHolders result = GROUP_HELD_BY_NOBODY;

	if (leader_shared_available())
	{
		int			worker_pid = leader_worker_pid(MyDatabaseId);

		worker_proc = worker_pid != 0 ? BackendPidGetProc(worker_pid) : NULL;
	}
	if (worker_proc != NULL)
		GET_VXID_FROM_PGPROC(worker, *worker_proc);
	group_lock_tag(&tag, group);
	holders = GetLockConflicts(&tag, group_lock_mode(GROUP_LOCK_HANDOVER), &count);
	for (int i = 0; i < count && result != GROUP_HELD_BY_OTHERS; i++)
		result = worker_proc != NULL && VirtualTransactionIdEquals(holders[i], worker)
			? GROUP_HELD_BY_WORKER : GROUP_HELD_BY_OTHERS;
	pfree(holders);
	return result;
}

/* Give back a lock this call took, when the call ends up changing nothing. */
void
group_lock_undo(const char *group, GroupLockMode mode, GroupLockResult how)
{
	LOCKTAG		tag;

	if (how != GROUP_LOCK_TAKEN)
		return;
	group_lock_tag(&tag, group);
	LockRelease(&tag, group_lock_mode(mode), false);
}
