/*
 * schedule.c
 *	  The worker's schedule: which group to look at next, and when.
 *
 * Kept in the worker's own memory: one entry per group it must look at (a
 * hash table by group name), ordered by when (a pairing heap), so that
 * finding what is due costs O(log n) per due group, whatever the number of
 * groups nobody is changing.  An entry's time is the earliest moment the
 * group's lease can have ended: its expires_at as last read, or now for a
 * group whose holder's session may have ended.  Looking too early is
 * harmless (the worker reads the row and schedules it again); the only rule
 * is never to look later than that moment, so news only ever moves an entry
 * earlier, and only a fresh read of the row moves it later.
 */
#include "leader.h"

#include "lib/pairingheap.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

typedef struct ScheduleEntry
{
	char		group[LEADER_MAX_NAME_BYTES + 1];	/* hash key */
	TimestampTz due;
	pairingheap_node node;
} ScheduleEntry;

static HTAB *sch_entries = NULL;
static pairingheap *sch_heap = NULL;

/* pairingheap keeps the "largest" first: the earliest due is the largest. */
static int
sch_compare(const pairingheap_node *a, const pairingheap_node *b, void *arg)
{
	TimestampTz due_a = pairingheap_const_container(ScheduleEntry, node, a)->due;
	TimestampTz due_b = pairingheap_const_container(ScheduleEntry, node, b)->due;

	return due_a < due_b ? 1 : due_a > due_b ? -1 : 0;
}

static void
sch_init(void)
{
	HASHCTL		ctl;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	ctl.keysize = LEADER_MAX_NAME_BYTES + 1;
	ctl.entrysize = sizeof(ScheduleEntry);
	sch_entries = hash_create("leader worker schedule", 1024, &ctl,
							  HASH_ELEM | HASH_STRINGS);
	sch_heap = pairingheap_allocate(sch_compare, NULL);
	MemoryContextSwitchTo(old);
}

static ScheduleEntry *
sch_enter(const char *group, bool *found)
{
	char		key[LEADER_MAX_NAME_BYTES + 1] = {0};

	if (sch_entries == NULL)
		sch_init();
	strlcpy(key, group, sizeof(key));
	return (ScheduleEntry *) hash_search(sch_entries, key, HASH_ENTER, found);
}

/*
 * Look at the group at due, or earlier; exactly: at due, even if that is
 * later than planned (only after reading the group's row).
 */
static void
sch_put(const char *group, TimestampTz due, bool exactly)
{
	bool		found;
	ScheduleEntry *entry = sch_enter(group, &found);

	if (found && (entry->due == due || (!exactly && entry->due < due)))
		return;
	if (found)
		pairingheap_remove(sch_heap, &entry->node);
	entry->due = due;
	pairingheap_add(sch_heap, &entry->node);
}

void
schedule_no_later_than(const char *group, TimestampTz due)
{
	sch_put(group, due, false);
}

void
schedule_exactly(const char *group, TimestampTz due)
{
	sch_put(group, due, true);
}

/*
 * Take one group that is due at now into group (LEADER_MAX_NAME_BYTES + 1
 * bytes) and forget it; false when none is due.
 */
bool
schedule_take_due(TimestampTz now, char *group)
{
	ScheduleEntry *entry;

	if (sch_heap == NULL || pairingheap_is_empty(sch_heap))
		return false;
	entry = pairingheap_container(ScheduleEntry, node, pairingheap_first(sch_heap));
	if (entry->due > now)
		return false;
	(void) pairingheap_remove_first(sch_heap);
	strlcpy(group, entry->group, LEADER_MAX_NAME_BYTES + 1);
	(void) hash_search(sch_entries, entry->group, HASH_REMOVE, NULL);
	return true;
}

/* When the next group is due, or DT_NOEND when none is scheduled. */
TimestampTz
schedule_next_due(void)
{
	if (sch_heap == NULL || pairingheap_is_empty(sch_heap))
		return DT_NOEND;
	return pairingheap_container(ScheduleEntry, node, pairingheap_first(sch_heap))->due;
}
