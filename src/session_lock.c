/*
 * session_lock.c
 *	  The liveness locks of session-bound holders: session-level advisory
 *	  locks in our lock space, kept transactional by hand.
 *
 * Each session-bound lease has its own lock tag:
 *	 (database, holder pid, keyed hash of (term, backend start, group), 19525)
 * The holder keeps it in ExclusiveLock for as long as the lease lasts.  Any
 * other session tells whether the holder's session still lives by asking
 * for the same tag in ShareLock without waiting: if it gets it, the holder's
 * session has ended (or dropped its advisory locks with DISCARD ALL or
 * pg_advisory_unlock_all()), and it gives it back at once.  The tag names
 * one lease, not one session, so a frozen holder that keeps its lock never
 * stands in the way of the next leader, and the lock of a lease that ended
 * behind the holder's back is never mistaken for a live one.
 *
 * Session locks survive ROLLBACK, so this file makes them follow the
 * transaction (which is never prepared: group_lock.c refuses to): a lock taken in a transaction (or subtransaction) that
 * aborts is released; a lock whose lease the transaction ends is released
 * only when it commits.  It also remembers, per group, the lease the
 * session holds as of its last commit, so that the lock of a lease that
 * ended without this session's knowledge (expiry, forced release) is
 * released the next time the session takes the same group: a session keeps
 * at most one liveness lock per group it has led.
 *
 * With the library preloaded, the database's worker is told which groups to
 * look at when a session that held leases ends (it releases its liveness
 * locks first, then tells the worker, so the worker finds them free), and
 * when a commit finds that the session lost its locks (DISCARD ALL,
 * pg_advisory_unlock_all()).
 */
#include "leader.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

typedef struct PendingLock
{
	char		group[LEADER_MAX_NAME_BYTES + 1];
	int64		term;
	bool		taken;			/* true: taken in this transaction; false:
								 * to be released at commit */
	SubTransactionId subid;
} PendingLock;

typedef struct HeldLease
{
	char		group[LEADER_MAX_NAME_BYTES + 1];	/* hash key */
	int64		term;
} HeldLease;

static List *sl_pending = NIL;	/* PendingLock *, in TopMemoryContext */
static HTAB *sl_held = NULL;	/* group -> term, as of the last commit */
static bool sl_exit_hook_set = false;

static void
session_lock_tag(LOCKTAG *tag, const char *group, int64 term,
				 int32 pid, TimestampTz backend_start)
{
	int64		words[2] = {term, backend_start};

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) pid,
						 (uint32) leader_keyed_hash(group, words, lengthof(words)),
						 LEADER_LOCKSPACE_HOLDER);
}

static void
my_session_lock_tag(LOCKTAG *tag, const char *group, int64 term)
{
	session_lock_tag(tag, group, term, MyProcPid, MyStartTimestamp);
}

static void
pending_add(const char *group, int64 term, bool taken)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	PendingLock *p = palloc0(sizeof(PendingLock));

	strlcpy(p->group, group, sizeof(p->group));
	p->term = term;
	p->taken = taken;
	p->subid = GetCurrentSubTransactionId();
	sl_pending = lappend(sl_pending, p);
	MemoryContextSwitchTo(old);
}

static HeldLease *
held_lookup(const char *group, HASHACTION action)
{
	char		key[LEADER_MAX_NAME_BYTES + 1] = {0};

	if (sl_held == NULL)
	{
		HASHCTL		ctl;

		if (action != HASH_ENTER)
			return NULL;
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(HeldLease);
		sl_held = hash_create("leader held leases", 16, &ctl,
							  HASH_ELEM | HASH_STRINGS);
	}
	strlcpy(key, group, sizeof(key));
	return (HeldLease *) hash_search(sl_held, key, action, NULL);
}

/* Release one count of this session's lock on a lease, if it still has it. */
static void
release_if_held(const char *group, int64 term)
{
	LOCKTAG		tag;

	my_session_lock_tag(&tag, group, term);
	if (leader_lock_held_by_me(&tag, ExclusiveLock))
		LockRelease(&tag, ExclusiveLock, true);
}

/* Tell the worker to look now at every group this session led. */
static void
sl_tell_worker_held_groups(void)
{
	HASH_SEQ_STATUS seq;
	HeldLease  *held;

	hash_seq_init(&seq, sl_held);
	while ((held = hash_seq_search(&seq)) != NULL)
		leader_worker_note(MyDatabaseId, held->group, 0);
}

/* At session end: free this session's liveness locks, then tell the worker. */
static void
sl_session_exit(int code, Datum arg)
{
	HASH_SEQ_STATUS seq;
	HeldLease  *held;

	if (sl_held == NULL || hash_get_num_entries(sl_held) == 0)
		return;
	hash_seq_init(&seq, sl_held);
	while ((held = hash_seq_search(&seq)) != NULL)
		release_if_held(held->group, held->term);
	sl_tell_worker_held_groups();
}

/* Has this session lost the lock of a lease it held (DISCARD ALL and the like)? */
static bool
sl_lost_a_lock(void)
{
	HASH_SEQ_STATUS seq;
	HeldLease  *held;

	if (sl_held == NULL)
		return false;
	hash_seq_init(&seq, sl_held);
	while ((held = hash_seq_search(&seq)) != NULL)
	{
		if (!session_lock_held_by_me(held->group, held->term))
		{
			hash_seq_term(&seq);
			return true;
		}
	}
	return false;
}

/*
 * Take the liveness lock of a new lease of this session.  Also schedules
 * the release, at commit, of the lock of this session's previous lease of
 * the same group, if it still has one.
 */
void
session_lock_take(const char *group, int64 term)
{
	LOCKTAG		tag;
	HeldLease  *previous = held_lookup(group, HASH_FIND);

	my_session_lock_tag(&tag, group, term);
	/*
	 * A lock this session already has (left by a lease of the same group and
	 * term in an earlier incarnation of the extension) is adopted, not
	 * counted twice, so that the lease's end frees it.
	 */
	if (!leader_lock_held_by_me(&tag, ExclusiveLock) &&
		LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("could not take the liveness lock of group \"%s\"", group),
				 errdetail("Another session holds the advisory lock this lease would use."),
				 errhint("Try again.")));
	pending_add(group, term, true);
	if (previous != NULL && previous->term != term)
		pending_add(group, previous->term, false);
	if (!sl_exit_hook_set && leader_shared_available())
	{
		before_shmem_exit(sl_session_exit, (Datum) 0);
		sl_exit_hook_set = true;
	}
}

/* The lease this session held ends with this transaction, if it commits. */
void
session_lock_drop_at_commit(const char *group, int64 term)
{
	pending_add(group, term, false);
}

bool
session_lock_held_by_me(const char *group, int64 term)
{
	LOCKTAG		tag;

	my_session_lock_tag(&tag, group, term);
	return leader_lock_held_by_me(&tag, ExclusiveLock);
}

/*
 * Does the session that took this lease still live (and still hold its
 * lock)?  On a standby the holders' sessions are on the primary, out of
 * sight: there the lease is trusted until it expires.
 */
bool
session_lock_holder_alive(const char *group, int64 term,
						  int32 pid, TimestampTz backend_start)
{
	LOCKTAG		tag;

	if (pid == MyProcPid && backend_start == MyStartTimestamp)
		return session_lock_held_by_me(group, term);
	if (RecoveryInProgress())
		return true;
	session_lock_tag(&tag, group, term, pid, backend_start);
	if (LockAcquire(&tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, ShareLock, false);
	return false;
}

static void
sl_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (sl_pending == NIL)
	{
		if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) &&
			leader_shared_available() && sl_lost_a_lock())
		{
			sl_tell_worker_held_groups();
			hash_destroy(sl_held);
			sl_held = NULL;
		}
		return;
	}
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			foreach(lc, sl_pending)
			{
				PendingLock *p = lfirst(lc);

				if (p->taken)
					held_lookup(p->group, HASH_ENTER)->term = p->term;
				else
				{
					HeldLease  *held = held_lookup(p->group, HASH_FIND);

					release_if_held(p->group, p->term);
					if (held != NULL && held->term == p->term)
						held_lookup(p->group, HASH_REMOVE);
				}
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			foreach(lc, sl_pending)
			{
				PendingLock *p = lfirst(lc);

				if (p->taken)
					release_if_held(p->group, p->term);
			}
			break;
		default:
			return;
	}
	list_free_deep(sl_pending);
	sl_pending = NIL;
}

static void
sl_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			foreach(lc, sl_pending)
			{
				PendingLock *p = lfirst(lc);

				if (p->subid == mySubid)
					p->subid = parentSubid;
			}
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			foreach(lc, sl_pending)
			{
				PendingLock *p = lfirst(lc);

				if (p->subid != mySubid)
					continue;
				if (p->taken)
					release_if_held(p->group, p->term);
				sl_pending = foreach_delete_current(sl_pending, lc);
				pfree(p);
			}
			break;
		default:
			break;
	}
}

void
session_lock_register_callbacks(void)
{
	RegisterXactCallback(sl_xact_callback, NULL);
	RegisterSubXactCallback(sl_subxact_callback, NULL);
}
