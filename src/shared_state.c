/*
 * shared_state.c
 *	  The extension's shared memory (only with shared_preload_libraries):
 *	  one slot per database served by a worker (with the notes committed
 *	  transactions leave for it), the launcher's latch, and the condition
 *	  variables that waiting leader_acquire calls sleep on.
 *
 * A worker keeps its schedule in its own memory (schedule.c); what it
 * cannot see coming (a new lease, a session that ended) reaches it as a
 * note (group, when to look at it).  A slot holds LEADER_WORKER_NOTES
 * notes; when they run out, the slot asks the worker to read every held
 * lease instead (rescan), which is slower but loses nothing.
 *
 * Locking: the slots and the launcher fields are read and written under
 * the "leader" LWLock; a latch pointer is only set while its process lives
 * and is read under the lock before SetLatch.  The condition variables need
 * no lock of ours.  leader_shared is NULL in a server that did not preload
 * the library; every caller checks leader_shared_available() first.
 */
#include "leader.h"

#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/wait_event.h"

#include <signal.h>

#define LEADER_WAKEUP_SLOTS 1024

typedef struct LeaderWorkerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	bool		start_requested;	/* the launcher should start its worker */
	uint32		requests;		/* how many times a worker was asked for */
	bool		paused;			/* a database command needs it gone */
	bool		rescan;			/* the worker must read every held lease */
	pid_t		pid;			/* the worker, once running */
	Latch	   *latch;
	TimestampTz next_wake;		/* when the worker means to wake up; 0 while
								 * it works, when every note must wake it */
	int			note_count;
	LeaderWorkerNote notes[LEADER_WORKER_NOTES];
} LeaderWorkerSlot;

typedef struct LeaderShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	LeaderWorkerSlot workers[LEADER_MAX_DATABASES];
	ConditionVariable wakeups[LEADER_WAKEUP_SLOTS];
} LeaderShared;

static LeaderShared *leader_shared = NULL;
static bool worker_retired = false;	/* this worker's database dropped leader */
static uint32 worker_requests_seen = 0; /* slot->requests when it attached */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
leader_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LeaderShared)));
	RequestNamedLWLockTranche("leader", 1);
}

static void
leader_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	leader_shared = ShmemInitStruct("leader", sizeof(LeaderShared), &found);
	if (!found)
	{
		memset(leader_shared, 0, sizeof(LeaderShared));
		leader_shared->lock = &(GetNamedLWLockTranche("leader"))->lock;
		for (int i = 0; i < LEADER_WAKEUP_SLOTS; i++)
			ConditionVariableInit(&leader_shared->wakeups[i]);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init while the library is being preloaded. */
void
leader_shared_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = leader_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = leader_shmem_startup;
}

bool
leader_shared_available(void)
{
	return leader_shared != NULL;
}

/* The condition variable that waiters on this group of this database use. */
ConditionVariable *
leader_group_wakeup(const char *group)
{
	int64		database = MyDatabaseId;

	/* keyed, so that no name can be chosen to share another group's slot */
	return &leader_shared->wakeups[leader_keyed_hash(group, &database, 1) %
								   LEADER_WAKEUP_SLOTS];
}

/* The database's slot, or NULL; with create, a free slot is taken. */
static LeaderWorkerSlot *
slot_for(Oid dboid, bool create)
{
	LeaderWorkerSlot *free_slot = NULL;

	for (int i = 0; i < LEADER_MAX_DATABASES; i++)
	{
		LeaderWorkerSlot *slot = &leader_shared->workers[i];

		if (slot->dboid == dboid)
			return slot;
		if (slot->dboid == InvalidOid && free_slot == NULL)
			free_slot = slot;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(LeaderWorkerSlot));
	free_slot->dboid = dboid;
	return free_slot;
}

/* The pid of the database's worker, or 0 if it has none running. */
int
leader_worker_pid(Oid dboid)
{
	LeaderWorkerSlot *slot;
	int			pid = 0;

	LWLockAcquire(leader_shared->lock, LW_SHARED);
	slot = slot_for(dboid, false);
	if (slot != NULL)
		pid = slot->pid;
	LWLockRelease(leader_shared->lock);
	return pid;
}

/* Ask the launcher to start the database's worker (if it has none). */
void
leader_request_worker(Oid dboid)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(dboid, true);
	if (slot == NULL)
		ereport(LOG,
				(errmsg("leader: no room to serve database %u", dboid),
				 errdetail("The background worker serves at most %d databases.",
						   LEADER_MAX_DATABASES)));
	else
	{
		slot->requests++;
		if (slot->pid == 0)
			slot->start_requested = true;
	}
	if (leader_shared->launcher_latch != NULL)
		SetLatch(leader_shared->launcher_latch);
	LWLockRelease(leader_shared->lock);
}

/*
 * Tell the database's worker to look at the group at "when" at the latest
 * (0: now).  It is woken if that comes before it means to wake anyway, or
 * if it is busy and could miss the note, or if its notes run short.
 */
void
leader_worker_note(Oid dboid, const char *group, TimestampTz when)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(dboid, false);
	if (slot != NULL && slot->latch != NULL)
	{
		if (slot->note_count < LEADER_WORKER_NOTES)
		{
			LeaderWorkerNote *note = &slot->notes[slot->note_count++];

			note->when = when;
			strlcpy(note->group, group, sizeof(note->group));
		}
		else
			slot->rescan = true;
		if (when == 0 || slot->next_wake == 0 || when < slot->next_wake ||
			slot->note_count >= LEADER_WORKER_NOTES / 2)
			SetLatch(slot->latch);
	}
	LWLockRelease(leader_shared->lock);
}

/* Wake the database's worker to read every held lease (and to check that
 * the extension is still there). */
void
leader_worker_rescan(Oid dboid)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(dboid, false);
	if (slot != NULL && slot->latch != NULL)
	{
		slot->rescan = true;
		SetLatch(slot->latch);
	}
	LWLockRelease(leader_shared->lock);
}

/* ---- for the launcher ---- */

static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	leader_shared->launcher_latch = NULL;
	LWLockRelease(leader_shared->lock);
}

void
leader_launcher_attach(void)
{
	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	leader_shared->launcher_latch = MyLatch;
	LWLockRelease(leader_shared->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);
}

/* Databases whose worker should be started now; clears their requests. */
List *
leader_take_start_requests(void)
{
	List	   *dboids = NIL;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LEADER_MAX_DATABASES; i++)
	{
		LeaderWorkerSlot *slot = &leader_shared->workers[i];

		if (slot->dboid != InvalidOid && slot->start_requested && !slot->paused)
		{
			slot->start_requested = false;
			dboids = lappend_oid(dboids, slot->dboid);
		}
	}
	LWLockRelease(leader_shared->lock);
	return dboids;
}

/* The database is gone: forget its slot. */
void
leader_forget_database(Oid dboid)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(dboid, false);
	if (slot != NULL && slot->pid == 0)
		slot->dboid = InvalidOid;
	LWLockRelease(leader_shared->lock);
}

/*
 * Make the database's worker leave and keep it away (DROP DATABASE and other
 * commands that need a database nobody is connected to).  Waits up to 10 s
 * for it to exit.
 */
void
leader_pause_worker(Oid dboid)
{
	LeaderWorkerSlot *slot;
	pid_t		pid = 0;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(dboid, false);
	if (slot != NULL)
	{
		slot->paused = true;
		pid = slot->pid;
	}
	LWLockRelease(leader_shared->lock);
	if (pid == 0)
		return;
	kill(pid, SIGTERM);
	for (int waited_ms = 0; waited_ms < 10000; waited_ms += 10)
	{
		bool		gone;

		LWLockAcquire(leader_shared->lock, LW_SHARED);
		gone = slot->dboid != dboid || slot->pid != pid;
		LWLockRelease(leader_shared->lock);
		if (gone)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The command is over: the database gets its worker back, if it still exists. */
void
leader_resume_worker(Oid dboid, bool database_exists)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(dboid, false);
	if (slot != NULL && !database_exists)
		slot->dboid = InvalidOid;
	else if (slot != NULL)
	{
		slot->paused = false;
		slot->start_requested = true;
		if (leader_shared->launcher_latch != NULL)
			SetLatch(leader_shared->launcher_latch);
	}
	LWLockRelease(leader_shared->lock);
}

/* ---- for a database's worker ---- */

static void
worker_detach(int code, Datum arg)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(MyDatabaseId, false);
	if (slot != NULL && slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->latch = NULL;
		/*
		 * A worker leaving because the extension was dropped frees the slot,
		 * unless the extension was created again meanwhile: then it hands
		 * the slot back to the launcher for a new worker.
		 */
		if (worker_retired && slot->requests == worker_requests_seen)
			slot->dboid = InvalidOid;
		else if (worker_retired)
		{
			slot->start_requested = true;
			if (leader_shared->launcher_latch != NULL)
				SetLatch(leader_shared->launcher_latch);
		}
	}
	LWLockRelease(leader_shared->lock);
}

/*
 * Take this database's slot for the running worker.  False if another
 * worker already serves it, if a database command keeps workers away, or
 * if no slot is free.
 */
bool
leader_worker_attach(void)
{
	LeaderWorkerSlot *slot;
	bool		attached = false;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(MyDatabaseId, true);
	if (slot != NULL && !slot->paused && (slot->pid == 0 || slot->pid == MyProcPid))
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		slot->start_requested = false;
		slot->rescan = true;	/* look at every lease once */
		slot->note_count = 0;
		slot->next_wake = 0;
		worker_requests_seen = slot->requests;
		attached = true;
	}
	LWLockRelease(leader_shared->lock);
	if (slot == NULL)
		ereport(LOG,
				(errmsg("leader: no room to serve database %u", MyDatabaseId),
				 errdetail("The background worker serves at most %d databases.",
						   LEADER_MAX_DATABASES)));
	if (attached)
		before_shmem_exit(worker_detach, (Datum) 0);
	return attached;
}

/* The worker is leaving for good: free its slot when it exits. */
void
leader_worker_retire(void)
{
	worker_retired = true;
}

/*
 * The notes left for this worker since the last call, copied into notes
 * (room for LEADER_WORKER_NOTES), *count of them; and whether it must read
 * every held lease.
 */
bool
leader_worker_take_notes(LeaderWorkerNote *notes, int *count)
{
	LeaderWorkerSlot *slot;
	bool		rescan = false;

	*count = 0;
	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(MyDatabaseId, false);
	if (slot != NULL)
	{
		rescan = slot->rescan;
		slot->rescan = false;
		*count = slot->note_count;
		memcpy(notes, slot->notes, sizeof(LeaderWorkerNote) * *count);
		slot->note_count = 0;
	}
	LWLockRelease(leader_shared->lock);
	return rescan;
}

void
leader_worker_set_next_wake(TimestampTz next_wake)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(MyDatabaseId, false);
	if (slot != NULL)
		slot->next_wake = next_wake;
	LWLockRelease(leader_shared->lock);
}
