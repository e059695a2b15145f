/*
 * group_capacity.c
 *	  How many groups a database and a role may have, and reclaiming vacant
 *	  groups to make room for a new one without a term ever going backwards.
 *
 * Two caps apply when a call creates a group (inserts its row):
 * leader.max_groups_per_role, on the groups the calling role created that
 * still exist (superusers are exempt), so that one role's groups never
 * stop another role from creating one; and leader.max_groups, on all the
 * database's groups, as a backstop.  At a cap, the creating transaction
 * first reclaims vacant groups (the role's own for the per-role cap, any
 * for the database-wide one) by deleting their rows, at most
 * RECLAIM_BATCH per creation, counts again, and fails with 54000 if it is
 * still at the cap.  A full batch may have left more vacant groups: then
 * the creation goes ahead, as it does not add to the count, so that a count
 * far above its cap (the cap was lowered) comes back down creation by
 * creation, rather than every creation failing behind a reclaim larger
 * than one batch.  Everything is in the creating transaction, so a
 * rollback brings the rows back.
 *
 * A reclaimed group's term lives on in the database's term floor
 * (leader_term_floor, dumped with the leases): a group created anew starts
 * above it.  Locks, all taken without waiting, so that no creator ever
 * waits on another's uncommitted change:
 *	 - each reclaimed group's HANDOVER group lock, held to the end of the
 *	   transaction: whoever re-creates the group reads both its missing row
 *	   and the raised floor after the reclaim commits (or its restored row
 *	   after it aborts);
 *	 - the term floor lock (one transaction-level advisory lock per
 *	   database in our lock space), held to the end of the transaction by a
 *	   reclaimer that raised the floor, so that raises are serialized.
 * A group or floor lock that is busy means that group, or the reclaim, is
 * skipped.
 */
#include "leader.h"

#include "miscadmin.h"
#include "utils/acl.h"

/* The most groups one creation reclaims (each holds a lock to its commit). */
#define RECLAIM_BATCH 64

typedef struct Reclaim
{
	LeaseStore *store;
	int			reclaimed;
	int64		highest_term;	/* of the groups reclaimed */
} Reclaim;

static void
term_floor_lock_tag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, 0, LEADER_LOCKSPACE_TERM_FLOOR);
}

/* Reclaim one vacant group found by the scan, if its lock is free. */
static bool
reclaim_group(const LeaseRow *found, void *arg)
{
	Reclaim    *reclaim = (Reclaim *) arg;
	GroupLockResult how = group_lock_take(found->group, GROUP_LOCK_HANDOVER, false);
	LeaseRow	row;

	if (how == GROUP_LOCK_BUSY)
		return true;
	lease_store_read(reclaim->store, found->group, &row);
	if (!row.found || row.held)
	{
		group_lock_undo(found->group, GROUP_LOCK_HANDOVER, how);
		return true;
	}
	lease_store_delete(reclaim->store, &row);
	reclaim->highest_term = Max(reclaim->highest_term, row.term);
	reclaim->reclaimed++;
	return reclaim->reclaimed < RECLAIM_BATCH;
}

/*
 * Reclaim vacant groups (created by creator, if valid) and raise the term
 * floor to their highest term.  Returns how many were reclaimed.
 */
static int
reclaim_vacant_groups(LeaseStore *store, Oid creator)
{
	Reclaim		reclaim = {store, 0, 0};
	LOCKTAG		tag;
	LockAcquireResult floor_lock;

	term_floor_lock_tag(&tag);
	floor_lock = LockAcquire(&tag, ExclusiveLock, false, true);
	if (floor_lock == LOCKACQUIRE_NOT_AVAIL)
		return 0;
	lease_store_visit_vacant(store, creator, reclaim_group, &reclaim);
	if (reclaim.reclaimed > 0)
		lease_store_raise_term_floor(store, reclaim.highest_term);
	else if (floor_lock == LOCKACQUIRE_OK)
		LockRelease(&tag, ExclusiveLock, false);
	return reclaim.reclaimed;
}

/*
 * At a cap: whether reclaiming vacant groups (created by creator, if valid)
 * made room for one more.
 */
static bool
made_room(LeaseStore *store, Oid creator, int cap)
{
	int			reclaimed = reclaim_vacant_groups(store, creator);

	return reclaimed == RECLAIM_BATCH ||
		(reclaimed > 0 && !lease_store_has_at_least(store, creator, cap));
}

/*
 * Make room for the new group "group" that role creates, or fail with
 * 54000.  The caller holds the group's HANDOVER lock and found no row.
 */
void
group_capacity_make_room(LeaseStore *store, const char *group, Oid role)
{
	if (!superuser_arg(role) &&
		lease_store_has_at_least(store, role, leader_max_groups_per_role) &&
		!made_room(store, role, leader_max_groups_per_role))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot create group \"%s\": role \"%s\" has reached leader.max_groups_per_role (%d)",
						group, GetUserNameFromId(role, false), leader_max_groups_per_role),
				 errdetail("The role's vacant groups are reclaimed to make room, but too few could be reclaimed now."),
				 errhint("Release groups the role no longer needs and retry, or have an administrator raise leader.max_groups_per_role.")));

	if (lease_store_has_at_least(store, InvalidOid, leader_max_groups) &&
		!made_room(store, InvalidOid, leader_max_groups))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot create group \"%s\": the database has reached leader.max_groups (%d)",
						group, leader_max_groups),
				 errdetail("Vacant groups are reclaimed to make room, but too few could be reclaimed now."),
				 errhint("Reuse an existing group name, release groups that are no longer needed and retry, or have an administrator raise leader.max_groups.")));
}
