/*
 * election.c
 *	  The election: how a call reads a group's lease, decides, and changes
 *	  it (acquire, renew, release, force, fence), and which events result.
 *
 * Rules every change follows:
 *	 1. Read the lease without any lock first.  A call that can only lose
 *		(someone else leads, unexpired and alive) answers at once and takes
 *		no lock, so losers never get in the leader's way.
 *	 2. Take the group lock (group_lock.c), read again, decide again.  The
 *		version read under the lock is the one the change writes over.
 *	 3. A lease found ended (past expires_at, or its session gone) is first
 *		recorded as ended, with its "expired" or "vacated" event, by the
 *		worker or by the next change of the group (an acquisition or a
 *		forced release).  So every term gets exactly one ending event, in
 *		the transaction that ends it.  A call that cannot change the
 *		caller's own leadership (a release of a lease not the caller's)
 *		records nothing and leaves no lock past its statement.
 *	 4. A new leadership takes the group's term plus one, and its commit is
 *		flushed even under synchronous_commit = off; a renewal keeps the
 *		term and moves expires_at.
 * Time is the server's clock (GetCurrentTimestamp) when the call decides.
 */
#include "leader.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

/*
 * The group locks one change holds, to give back if it changes nothing.
 * A renewal needs only CHANGE; anything that ends or starts a leadership
 * needs HANDOVER, which excludes CHANGE too.  A call that waits asks for
 * HANDOVER alone and holds nothing while it waits, so two waiting changes
 * can never each hold what the other waits for.
 */
typedef struct GroupChange
{
	const char *group;
	GroupLockResult change;
	GroupLockResult handover;
} GroupChange;

static bool
change_lock(GroupChange *gc, const char *group, GroupLockMode mode, bool wait)
{
	GroupLockResult result = group_lock_take(group, mode, wait);
	GroupLockResult *held;

	if (gc->group == NULL)
	{
		gc->group = group;
		gc->change = GROUP_LOCK_ALREADY_HELD;
		gc->handover = GROUP_LOCK_ALREADY_HELD;
	}
	held = mode == GROUP_LOCK_HANDOVER ? &gc->handover : &gc->change;
	/* Asking again for a lock this change took keeps it to be given back. */
	if (*held != GROUP_LOCK_TAKEN)
		*held = result;
	return result != GROUP_LOCK_BUSY;
}

static void
change_abandon(GroupChange *gc)
{
	group_lock_undo(gc->group, GROUP_LOCK_HANDOVER, gc->handover);
	group_lock_undo(gc->group, GROUP_LOCK_CHANGE, gc->change);
}

static bool
is_my_session(const LeaseRow *row)
{
	return row->kind == HOLDER_SESSION &&
		row->pid == MyProcPid && row->backend_start == MyStartTimestamp;
}

/*
 * Where the lease stands for this caller (NULL: for nobody in particular).
 * A session-bound lease is the caller's only while the session acts as the
 * role that took it: under another current role (SET ROLE, a SECURITY
 * DEFINER function) the session does not lead it, so that a pool that
 * switches roles per tenant never lets one tenant renew or release
 * another's lease.
 */
LeaseState
leader_lease_state(const LeaseRow *row, const LeaderCaller *caller, TimestampTz now)
{
	bool		mine;

	if (!row->found || !row->held)
		return LEASE_VACANT;
	if (row->expires_at <= now)
		return LEASE_EXPIRED;
	if (row->kind == HOLDER_SESSION)
	{
		if (!session_lock_holder_alive(row->group, row->term, row->pid, row->backend_start))
			return LEASE_VACATED;
		mine = caller != NULL && caller->kind == HOLDER_SESSION && is_my_session(row) &&
			row->role == caller->role;
	}
	else
		mine = caller != NULL && caller->kind == HOLDER_NAMED &&
			row->role == caller->role && strcmp(row->holder, caller->name) == 0;
	return mine ? LEASE_MINE : LEASE_OTHERS;
}

/*
 * Record the end of the row's leadership in *row (not yet written) and
 * queue its event.  The caller holds the group's HANDOVER lock.
 */
static void
lease_end(LeaseRow *row, const char *event)
{
	leader_event_send(event, row);
	leader_wake_waiters_at_commit(row->group);
	if (is_my_session(row))
		session_lock_drop_at_commit(row->group, row->term);
	row->held = false;
	row->holder = NULL;
	row->has_pid = false;
}

static const char *
ending_event(LeaseState state)
{
	return state == LEASE_EXPIRED ? "expired" : "vacated";
}

/*
 * The lowest term a new leadership may take on this WAL timeline: terms of
 * timeline N start at (N - 1) * 2^32.  A standby promoted to a new timeline
 * may have missed the last commits of the old primary, and with them the
 * last terms it handed out; since the old timeline never reaches the new
 * floor, the new primary's terms exceed all of them.
 */
static int64
timeline_term_floor(void)
{
	return ((int64) GetWALInsertionTimeLine() - 1) << 32;
}

/* Start a new leadership of the caller in *row and write it. */
static void
lease_start(LeaseStore *store, LeaseRow *row, const LeaderCaller *caller,
			int64 ttl_usecs, TimestampTz now)
{
	if (!row->found)
	{
		/* a group created anew starts above every reclaimed group's term */
		group_capacity_make_room(store, row->group, caller->role);
		row->term = lease_store_term_floor(store);
		row->creator = caller->role;
	}
	if (row->term == PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("group \"%s\" has used up its terms", row->group)));
	row->term = Max(row->term + 1, timeline_term_floor());
	row->held = true;
	row->kind = caller->kind;
	row->holder = caller->name;
	row->role = caller->role;
	row->has_pid = caller->kind == HOLDER_SESSION;
	row->pid = caller->pid;
	row->backend_start = caller->backend_start;
	row->acquired_at = now;
	row->renewed_at = now;
	row->expires_at = now + ttl_usecs;
	if (caller->kind == HOLDER_SESSION)
		session_lock_take(row->group, row->term);
	lease_store_write(store, row);
	leader_event_send("acquired", row);
	leader_tell_worker_at_commit(row->group, row->expires_at);
}

/*
 * One attempt of leader_try_acquire.  *busy: it lost because the group lock
 * was taken while the lease it read had ended (expired, or its session
 * gone) but was not yet recorded as ended: the one case where the worker
 * may be what holds the lock.  (A vacant group's lock is held by a
 * candidate that won it, a held group's by its leader.)
 */
static bool
try_acquire_once(Oid ext_namespace, const char *group, int64 ttl_usecs,
				 const LeaderCaller *caller, TimestampTz *retry_at, bool *busy)
{
	LeaseStore *store = lease_store_open(ext_namespace, RowExclusiveLock);
	LeaseRow	row;
	LeaseState	state;
	GroupChange gc = {0};
	TimestampTz now;
	bool		won = false;

	*retry_at = 0;
	*busy = false;
	lease_store_read(store, group, &row);
	state = leader_lease_state(&row, caller, GetCurrentTimestamp());
	if (state != LEASE_OTHERS &&
		change_lock(&gc, group, state == LEASE_MINE ? GROUP_LOCK_CHANGE : GROUP_LOCK_HANDOVER,
					false))
	{
		lease_store_read(store, group, &row);
		now = GetCurrentTimestamp();
		state = leader_lease_state(&row, caller, now);
		if (state == LEASE_MINE)
		{
			TimestampTz planned_expiry = row.expires_at;

			row.renewed_at = now;
			row.expires_at = now + ttl_usecs;
			lease_store_write(store, &row);
			/* the worker plans to look at it by planned_expiry at the latest */
			if (row.expires_at < planned_expiry)
				leader_tell_worker_at_commit(group, row.expires_at);
			won = true;
		}
		else if (state != LEASE_OTHERS &&
				 change_lock(&gc, group, GROUP_LOCK_HANDOVER, false))
		{
			if (state != LEASE_VACANT)
				lease_end(&row, ending_event(state));
			lease_start(store, &row, caller, ttl_usecs, now);

			/*
			 * A new term is flushed to WAL before the commit returns, and so
			 * before its event is sent, whatever synchronous_commit says: a
			 * term lost in a crash would be handed out again.  Renewals stay
			 * as durable as the caller's synchronous_commit asks.
			 */
			ForceSyncCommit();
			won = true;
		}
		else
		{
			*busy = state == LEASE_EXPIRED || state == LEASE_VACATED;
			change_abandon(&gc);
		}
	}
	else
		*busy = state == LEASE_EXPIRED || state == LEASE_VACATED;
	if (state == LEASE_OTHERS)
		*retry_at = row.expires_at;
	lease_store_close(store);
	return won;
}

/*
 * leader_try_acquire: lead the group, or renew the caller's lease, without
 * waiting on anyone's change of the group but the worker's.  When it
 * answers false because someone else leads, *retry_at is when that lease
 * expires (else 0), for callers that wait.
 *
 * A group whose lock is busy because the worker is recording the end of
 * its lease is free but for the worker's bookkeeping, a transaction of a
 * few milliseconds: the attempt waits for it (up to LEADER_WORKER_WAIT_MS)
 * and tries again, rather than answer false and cost a polling candidate a
 * whole retry period.  A lock held by any other transaction still answers
 * false at once, and so does a group someone else leads.
 */
bool
leader_try_acquire_internal(Oid ext_namespace, const char *group,
							int64 ttl_usecs, const LeaderCaller *caller,
							TimestampTz *retry_at)
{
	TimestampTz wait_until = 0;
	bool		retried_free = false;

	for (;;)
	{
		bool		busy;

		if (try_acquire_once(ext_namespace, group, ttl_usecs, caller, retry_at, &busy))
			return true;
		if (!busy)
			return false;
		switch (group_lock_holders(group))
		{
			case GROUP_HELD_BY_OTHERS:
				return false;
			case GROUP_HELD_BY_NOBODY:
				/* let go just now: one more attempt */
				if (retried_free)
					return false;
				retried_free = true;
				break;
			case GROUP_HELD_BY_WORKER:
				if (wait_until == 0)
					wait_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 LEADER_WORKER_WAIT_MS);
				else if (GetCurrentTimestamp() >= wait_until)
					return false;
				leader_wait_for_worker(group, wait_until);
				break;
		}
	}
}

/*
 * Record the end of the group's lease if it has ended (past expires_at, or
 * its session gone), without waiting for anything.  Used by the worker.
 */
SettleResult
leader_settle_if_ended(Oid ext_namespace, const char *group)
{
	LeaseStore *store = lease_store_open(ext_namespace, RowExclusiveLock);
	GroupChange gc = {0};
	LeaseRow	row;
	LeaseState	state;
	SettleResult result = SETTLE_NOTHING;

	lease_store_read(store, group, &row);
	state = leader_lease_state(&row, NULL, GetCurrentTimestamp());
	if (state == LEASE_EXPIRED || state == LEASE_VACATED)
	{
		if (!change_lock(&gc, group, GROUP_LOCK_HANDOVER, false))
			result = SETTLE_BUSY;
		else
		{
			lease_store_read(store, group, &row);
			state = leader_lease_state(&row, NULL, GetCurrentTimestamp());
			if (state == LEASE_EXPIRED || state == LEASE_VACATED)
			{
				lease_end(&row, ending_event(state));
				lease_store_write(store, &row);
				result = SETTLE_ENDED;
			}
			else
				change_abandon(&gc);
		}
	}
	lease_store_close(store);
	return result;
}

/*
 * leader_release: end the caller's leadership.  Waits for fenced
 * transactions of the group to end, since they were promised the term; it
 * holds neither the group lock nor a lock on the table while it waits.
 * A call that finds no leadership of the caller to end (someone else's,
 * or one that has expired or whose session is gone) changes nothing and
 * keeps no lock: recording such an end is left to the worker or to the
 * next acquisition, as its transaction would otherwise hold the group lock,
 * and with it every candidate, for as long as it stays open.
 */
bool
leader_release_internal(Oid ext_namespace, const char *group, const LeaderCaller *caller)
{
	LeaseStore *store;
	LeaseRow	row;
	LeaseState	state;
	GroupChange gc = {0};

	leader_read_lease(ext_namespace, group, &row);
	if (leader_lease_state(&row, caller, GetCurrentTimestamp()) != LEASE_MINE)
		return false;

	change_lock(&gc, group, GROUP_LOCK_HANDOVER, true);
	store = lease_store_open(ext_namespace, RowExclusiveLock);
	lease_store_read(store, group, &row);
	state = leader_lease_state(&row, caller, GetCurrentTimestamp());
	if (state == LEASE_MINE)
	{
		lease_end(&row, "released");
		lease_store_write(store, &row);
	}
	else
		change_abandon(&gc);
	lease_store_close(store);
	return state == LEASE_MINE;
}

/* leader_force_release: end whoever leads.  Waits like leader_release. */
bool
leader_force_release_internal(Oid ext_namespace, const char *group)
{
	LeaseStore *store;
	LeaseRow	row;
	LeaseState	state;
	GroupChange gc = {0};

	change_lock(&gc, group, GROUP_LOCK_HANDOVER, true);
	store = lease_store_open(ext_namespace, RowExclusiveLock);
	lease_store_read(store, group, &row);
	state = leader_lease_state(&row, NULL, GetCurrentTimestamp());
	if (state == LEASE_VACANT)
		change_abandon(&gc);
	else
	{
		lease_end(&row, state == LEASE_OTHERS ? "forced" : ending_event(state));
		lease_store_write(store, &row);
	}
	lease_store_close(store);
	return state == LEASE_OTHERS;
}

/*
 * leader_fence: fail unless term is the group's current, unexpired term
 * and the caller acts as the lease's role; on success the group lock in
 * FENCE mode, held to the end of the transaction, keeps any handover
 * waiting until then.  (Only the holder's role may fence: anyone else could
 * otherwise freeze the group by fencing and idling.)
 */
void
leader_fence_internal(Oid ext_namespace, const char *group, int64 term)
{
	LeaseRow	row;
	LeaseState	state;

	group_lock_take(group, GROUP_LOCK_FENCE, true);
	leader_read_lease(ext_namespace, group, &row);
	state = leader_lease_state(&row, NULL, GetCurrentTimestamp());
	if (!row.found || row.term != term)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("term " INT64_FORMAT " is not the current term of group \"%s\"",
						term, group),
				 row.found ? errdetail("The current term is " INT64_FORMAT ".", row.term)
				 : errdetail("The group has never had a leader.")));
	if (state == LEASE_OTHERS && !has_privs_of_role(GetUserId(), row.role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to fence group \"%s\"", group),
				 errdetail("Only the role that holds the lease (or a member of it) may fence its term.")));
	if (state != LEASE_OTHERS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("term " INT64_FORMAT " of group \"%s\" has ended", term, group),
				 state == LEASE_EXPIRED ? errdetail("Its lease expired at %s.",
													timestamptz_to_str(row.expires_at))
				 : state == LEASE_VACATED ? errdetail("Its holder's session has ended.")
				 : errdetail("It was released.")));
	leader_wake_worker_after_fence(group, row.expires_at);
}

/* Read a group's lease for a caller that changes nothing. */
void
leader_read_lease(Oid ext_namespace, const char *group, LeaseRow *row)
{
	LeaseStore *store = lease_store_open(ext_namespace, AccessShareLock);

	lease_store_read(store, group, row);
	lease_store_close(store);
}
