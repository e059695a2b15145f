/*
 * shared_state.c
 *	  The extension's shared memory (only with shared_preload_libraries):
 *	  one slot per database served by a worker (leader.max_databases of
 *	  them, each with the notes committed transactions leave for it), the
 *	  launcher's latch, and the condition variables that waiting
 *	  leader_acquire calls sleep on.
 *
 * A worker keeps its schedule in its own memory (schedule.c); what it
 * cannot see coming (a new lease, a session that ended) reaches it as a
 * note (group, when to look at it).  A slot holds LEADER_WORKER_NOTES
 * notes; when they run out, the slot asks the worker to read every held
 * lease instead (rescan), which is slower but loses nothing.
 *
 * Locking: the slots and the launcher fields are read and written under
 * the first "leader" LWLock (the second is database_list.c's); a latch
 * pointer is only set while its process lives and is read under the lock
 * before SetLatch.  The condition variables need no lock of ours.
 * leader_shared is NULL in a server that did not preload the library;
 * every caller checks leader_shared_available() first.
 */
#include "leader.h"

#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include <signal.h>

#define LEADER_WAKEUP_SLOTS 1024

typedef struct LeaderWorkerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	bool		start_requested;	/* the launcher should start its worker */
	bool		restart;		/* ... because its worker left unasked */
	int			exit_code;		/* with restart: how that worker exited */
	TimestampTz exited_at;		/* with restart: when */
	TimestampTz last_start;		/* when the launcher last started one */
	uint32		requests;		/* how many times a worker was asked for */
	int			pauses;			/* database commands that need it gone */
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
	LWLock	   *list_lock;		/* the file of database_list.c */
	Latch	   *launcher_latch;
	LeaderWorkerSlot *workers;	/* leader_max_databases, after the struct */
	ConditionVariable wakeups[LEADER_WAKEUP_SLOTS];
} LeaderShared;

static LeaderShared *leader_shared = NULL;
static bool worker_retired = false;	/* this worker's database dropped leader */
static uint32 worker_requests_seen = 0; /* slot->requests when it attached */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
shared_size(void)
{
	return add_size(MAXALIGN(sizeof(LeaderShared)),
					mul_size(leader_max_databases, sizeof(LeaderWorkerSlot)));
}

static void
leader_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("leader", 2);
}

static void
leader_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	leader_shared = ShmemInitStruct("leader", shared_size(), &found);
	if (!found)
	{
		memset(leader_shared, 0, shared_size());
		leader_shared->lock = &(GetNamedLWLockTranche("leader"))[0].lock;
		leader_shared->list_lock = &(GetNamedLWLockTranche("leader"))[1].lock;
		leader_shared->workers = (LeaderWorkerSlot *)
			((char *) leader_shared + MAXALIGN(sizeof(LeaderShared)));
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

	for (int i = 0; i < leader_max_databases; i++)
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

/*
 * No slot is free for the database.  A request for this very database
 * comes from CREATE EXTENSION in this session, which is warned; a database
 * that may have it (a CREATE DATABASE, or its worker starting) is logged.
 */
static void
report_no_room(Oid dboid)
{
	ereport(dboid == MyDatabaseId ? WARNING : LOG,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("leader: no background worker can serve database %u", dboid),
			 errdetail("The background workers serve at most %d databases (leader.max_databases), and as many are served.",
					   leader_max_databases),
			 errhint("Raise leader.max_databases and restart the server.  Until then, a lease in this database ends only when a call touches its group, and waiting calls poll.")));
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
	if (slot != NULL)
	{
		slot->requests++;
		if (slot->pid == 0)
			slot->start_requested = true;
	}
	if (leader_shared->launcher_latch != NULL)
		SetLatch(leader_shared->launcher_latch);
	LWLockRelease(leader_shared->lock);
	if (slot == NULL)
		report_no_room(dboid);
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

LWLock *
leader_database_list_lock(void)
{
	return leader_shared->list_lock;
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

/*
 * The databases whose worker should be started now (LeaderStartRequest *),
 * clearing their requests.  A worker that left unasked is started again
 * LEADER_RESTART_DELAY_MS after it left (at a shutdown, the launcher is
 * told to leave too by then, and restarts nothing), and not sooner than
 * LEADER_RESTART_INTERVAL_MS after the previous start, so that a worker
 * failing at every start is not started over and over; *next_due is
 * lowered to when the next such restart is due.
 */
List *
leader_take_start_requests(TimestampTz now, TimestampTz *next_due)
{
	List	   *requests = NIL;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < leader_max_databases; i++)
	{
		LeaderWorkerSlot *slot = &leader_shared->workers[i];
		LeaderStartRequest *request;

		if (slot->dboid == InvalidOid || !slot->start_requested || slot->pauses > 0)
			continue;
		if (slot->restart)
		{
			TimestampTz due = Max(TimestampTzPlusMilliseconds(slot->last_start,
															  LEADER_RESTART_INTERVAL_MS),
								  TimestampTzPlusMilliseconds(slot->exited_at,
															  LEADER_RESTART_DELAY_MS));

			if (due > now)
			{
				*next_due = Min(*next_due, due);
				continue;
			}
		}
		request = palloc(sizeof(LeaderStartRequest));
		request->dboid = slot->dboid;
		request->restart = slot->restart;
		request->exit_code = slot->exit_code;
		requests = lappend(requests, request);
		slot->start_requested = false;
		slot->restart = false;
		slot->last_start = now;
	}
	LWLockRelease(leader_shared->lock);
	return requests;
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
		slot->pauses++;
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

/*
 * The command is over: unless another such command is still running, the
 * database gets its worker back, if it still exists.
 */
void
leader_resume_worker(Oid dboid, bool database_exists)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(dboid, false);
	if (slot != NULL && !database_exists)
		slot->dboid = InvalidOid;
	else if (slot != NULL && slot->pauses > 0 && --slot->pauses == 0)
	{
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
		 * the slot back to the launcher for a new worker.  One leaving for
		 * any other reason (terminated, failed) is started again, unless a
		 * database command made it leave (that command brings it back).
		 */
		if (worker_retired && slot->requests == worker_requests_seen)
			slot->dboid = InvalidOid;
		else if (worker_retired || slot->pauses == 0)
		{
			slot->start_requested = true;
			slot->restart = !worker_retired;
			slot->exit_code = code;
			slot->exited_at = GetCurrentTimestamp();
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
	if (slot != NULL && slot->pauses == 0 && (slot->pid == 0 || slot->pid == MyProcPid))
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		slot->start_requested = false;
		slot->restart = false;
		slot->rescan = true;	/* look at every lease once */
		slot->note_count = 0;
		slot->next_wake = 0;
		worker_requests_seen = slot->requests;
		attached = true;
	}
	LWLockRelease(leader_shared->lock);
	if (slot == NULL)
		report_no_room(MyDatabaseId);
	if (attached)
		before_shmem_exit(worker_detach, (Datum) 0);
	return attached;
}

/*
 * How many times a worker was asked for this database; with
 * leader_worker_unneeded, a worker that found no extension here gives back
 * the slot its start took, unless asked for again meanwhile (a CREATE
 * EXTENSION that committed after it looked).
 */
uint32
leader_worker_requests(void)
{
	LeaderWorkerSlot *slot;
	uint32		requests = 0;

	LWLockAcquire(leader_shared->lock, LW_SHARED);
	slot = slot_for(MyDatabaseId, false);
	if (slot != NULL)
		requests = slot->requests;
	LWLockRelease(leader_shared->lock);
	return requests;
}

void
leader_worker_unneeded(uint32 requests_seen)
{
	LeaderWorkerSlot *slot;

	LWLockAcquire(leader_shared->lock, LW_EXCLUSIVE);
	slot = slot_for(MyDatabaseId, false);
	if (slot != NULL && slot->pid == 0 && slot->requests == requests_seen)
		slot->dboid = InvalidOid;
	LWLockRelease(leader_shared->lock);
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
