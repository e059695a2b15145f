/*
 * leader.h
 *	  Shared declarations of the leader extension: the lease model, the
 *	  interfaces between its files, and the PostgreSQL version guards.
 *
 * The design in one paragraph: every group has one row in leader_lease,
 * which is the truth (holder, term, expiry).  A session-bound holder also
 * keeps a session-level advisory lock, in this extension's own lock space,
 * whose only job is to tell other sessions that the holder's session is
 * still alive.  Every change of a group's row happens under that group's
 * transaction-level "group lock" (another advisory tag in our space), so
 * changes of one group are serialized without row locks and without ever
 * waiting on another session's uncommitted change.  Events are queued with
 * NOTIFY in the changing transaction and so are delivered at commit.
 */
#ifndef LEADER_H
#define LEADER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/itemptr.h"
#include "nodes/pg_list.h"
#include "storage/condition_variable.h"
#include "storage/lock.h"
#include "storage/lwlock.h"

/* ---- version guards (the floor is PostgreSQL 15) ---- */
#if PG_VERSION_NUM < 150000
#error "leader requires PostgreSQL 15 or later"
#endif

#if PG_VERSION_NUM >= 170000
#define leader_lock_held_by_me(tag, mode) LockHeldByMe((tag), (mode), false)
#else
#define leader_lock_held_by_me(tag, mode) LockHeldByMe((tag), (mode))
#endif

#if PG_VERSION_NUM >= 160000
#define leader_database_ownercheck(dboid, roleid) object_ownercheck(DatabaseRelationId, (dboid), (roleid))
#else
#define leader_database_ownercheck(dboid, roleid) pg_database_ownercheck((dboid), (roleid))
#endif

/* The setting transaction_timeout exists from 17. */
#if PG_VERSION_NUM >= 170000
#define LEADER_HAVE_TRANSACTION_TIMEOUT 1
#endif

/*
 * A heap update and the index entries its new version needs.  From 16,
 * simple_heap_update() says which indexes need one (TU_UpdateIndexes: none
 * after a HOT update, only the summarizing ones, or all); before, a HOT
 * update needs none and any other update needs all.
 */
#if PG_VERSION_NUM >= 160000
#define leader_simple_heap_update(rel, otid, tuple, update_indexes) \
	simple_heap_update((rel), (otid), (tuple), (update_indexes))
#else
typedef enum TU_UpdateIndexes
{
	TU_None,
	TU_All,
	TU_Summarizing
} TU_UpdateIndexes;

#define leader_simple_heap_update(rel, otid, tuple, update_indexes) \
	(simple_heap_update((rel), (otid), (tuple)), \
	 *(update_indexes) = HeapTupleIsHeapOnly(tuple) ? TU_None : TU_All)
#endif

/* Index entries for a new tuple version (no arbiter indexes, duplicates are errors). */
#if PG_VERSION_NUM >= 190000
#define leader_insert_index_tuples(rri, slot, estate, only_summarizing) \
	ExecInsertIndexTuples((rri), (estate), \
						  (only_summarizing) ? EIIT_ONLY_SUMMARIZING : 0, \
						  (slot), NIL, NULL)
#elif PG_VERSION_NUM >= 160000
#define leader_insert_index_tuples(rri, slot, estate, only_summarizing) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL, \
						  (only_summarizing))
#else
#define leader_insert_index_tuples(rri, slot, estate, only_summarizing) \
	(AssertMacro(!(only_summarizing)), \
	 ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL))
#endif

/* A plain sequential scan (19 added scan option flags). */
#if PG_VERSION_NUM >= 190000
#define leader_table_beginscan(rel, snapshot) table_beginscan((rel), (snapshot), 0, NULL, SO_NONE)
#else
#define leader_table_beginscan(rel, snapshot) table_beginscan((rel), (snapshot), 0, NULL)
#endif

/*
 * The module's magic block; from 18 it also names the library and its
 * version (LEADER_VERSION, leader.control's default_version, from the
 * Makefile), which pg_get_loaded_modules() shows.
 */
#if PG_VERSION_NUM >= 180000
#define LEADER_MODULE_MAGIC PG_MODULE_MAGIC_EXT(.name = "leader", .version = LEADER_VERSION)
#else
#define LEADER_MODULE_MAGIC PG_MODULE_MAGIC
#endif

/* 18 replaced the trailing pg_attribute_noreturn() by a leading pg_noreturn. */
#if PG_VERSION_NUM < 180000
#define pg_noreturn pg_attribute_noreturn()
#endif

/* ---- limits ---- */
#define LEADER_MAX_NAME_BYTES		200 /* group names and named holders */
#define LEADER_MAX_TIMEOUT_USECS	(USECS_PER_DAY)
#define LEADER_CHANNEL				"leader_changed"
#define LEADER_SAFETY_WAKE_MS		1000	/* a woken waiter's longest sleep */
#define LEADER_WORKER_WAIT_MS		1000	/* a candidate's longest wait for the
											 * worker's bookkeeping */

/*
 * The fourth field of our LOCKTAG_ADVISORY tags.  SQL's pg_advisory_* use 1
 * (one bigint key) and 2 (two int keys), so these can never collide with, or
 * be pre-taken by, SQL advisory locks.
 */
#define LEADER_LOCKSPACE_HOLDER		0x4C45	/* 19525: a holder's liveness */
#define LEADER_LOCKSPACE_GROUP		0x4C46	/* 19526: a group's change lock */
#define LEADER_LOCKSPACE_DATABASE_LIST	0x4C47	/* 19527: a database's list entry */
#define LEADER_LOCKSPACE_TERM_FLOOR	0x4C54	/* 19540: the database's term floor */

/* ---- settings (settings.c) ---- */
extern int	leader_default_ttl_ms;
extern int	leader_max_ttl_ms;
extern int	leader_max_groups;
extern int	leader_max_groups_per_role;
extern int	leader_poll_interval_ms;
extern int	leader_max_databases;	/* only when preloaded */
extern void leader_define_settings(void);

/* ---- argument checks (arguments.c) ---- */
struct FunctionCallInfoBaseData;
extern char *leader_arg_group(struct FunctionCallInfoBaseData *fcinfo, int argno);
extern char *leader_arg_holder(struct FunctionCallInfoBaseData *fcinfo, int argno);
extern int64 leader_arg_ttl(struct FunctionCallInfoBaseData *fcinfo, int argno);
extern int64 leader_arg_timeout(struct FunctionCallInfoBaseData *fcinfo, int argno);
extern int64 leader_arg_term(struct FunctionCallInfoBaseData *fcinfo, int argno);
extern void leader_require_primary(const char *funcname);
extern void leader_require_writable(const char *funcname);

/* ---- who is calling (holder.c) ---- */
typedef enum LeaderHolderKind
{
	HOLDER_SESSION,				/* this database session */
	HOLDER_NAMED				/* a name owned by a role */
} LeaderHolderKind;

typedef struct LeaderCaller
{
	LeaderHolderKind kind;
	char	   *name;			/* named: the holder name; session: display */
	Oid			role;			/* the role acting */
	int32		pid;			/* session: MyProcPid */
	TimestampTz backend_start;	/* session: MyStartTimestamp */
} LeaderCaller;

extern void leader_caller_init(LeaderCaller *caller, const char *holder);

/* ---- the lease row (lease_store.c) ---- */
typedef struct LeaseRow
{
	bool		found;			/* a row exists for the group */
	ItemPointerData tid;		/* its current version */
	char	   *group;
	int64		term;			/* last term handed out; 0 for a new group */
	Oid			creator;		/* the role that created the row, if known */
	bool		held;			/* a leadership is recorded (holder not null) */
	LeaderHolderKind kind;
	char	   *holder;
	Oid			role;
	bool		has_pid;
	int32		pid;
	TimestampTz backend_start;
	TimestampTz acquired_at;
	TimestampTz renewed_at;
	TimestampTz expires_at;
} LeaseRow;

typedef struct LeaseStore LeaseStore;

extern LeaseStore *lease_store_open(Oid ext_namespace, LOCKMODE lockmode);
extern void lease_store_close(LeaseStore *store);
extern void lease_store_read(LeaseStore *store, const char *group, LeaseRow *row);
extern void lease_store_write(LeaseStore *store, LeaseRow *row);
extern void lease_store_delete(LeaseStore *store, LeaseRow *row);
extern bool lease_store_has_at_least(LeaseStore *store, Oid creator, int64 n);

typedef bool (*LeaseVisitor) (const LeaseRow *row, void *arg);
extern void lease_store_visit_vacant(LeaseStore *store, Oid creator,
									 LeaseVisitor visit, void *arg);
extern int64 lease_store_term_floor(LeaseStore *store);
extern void lease_store_raise_term_floor(LeaseStore *store, int64 term);

/* ---- how many groups there may be (group_capacity.c) ---- */
extern void group_capacity_make_room(LeaseStore *store, const char *group, Oid role);
extern void lease_store_visit_held(LeaseStore *store, LeaseVisitor visit, void *arg);

/* ---- keyed hashing of names (keyed_hash.c) ---- */
extern uint64 leader_keyed_hash(const char *name, const int64 *words, int nwords);

/* ---- per-group change lock (group_lock.c) ---- */
typedef enum GroupLockMode
{
	GROUP_LOCK_FENCE,			/* leader_fence: holds off handovers */
	GROUP_LOCK_CHANGE,			/* any change: one changer at a time */
	GROUP_LOCK_HANDOVER			/* a change of holder: also waits out fences */
} GroupLockMode;

typedef enum GroupLockResult
{
	GROUP_LOCK_BUSY,			/* not taken (conditional request) */
	GROUP_LOCK_TAKEN,			/* taken now by this call */
	GROUP_LOCK_ALREADY_HELD		/* this transaction had it already */
} GroupLockResult;

extern GroupLockResult group_lock_take(const char *group, GroupLockMode mode, bool wait);
extern void group_lock_undo(const char *group, GroupLockMode mode, GroupLockResult how);

typedef enum GroupLockHolders
{
	GROUP_HELD_BY_NOBODY,		/* no other transaction holds it */
	GROUP_HELD_BY_WORKER,		/* only the database's worker does */
	GROUP_HELD_BY_OTHERS		/* some other transaction does */
} GroupLockHolders;

extern GroupLockHolders group_lock_holders(const char *group);

/* ---- session-bound liveness locks (session_lock.c) ---- */
extern void session_lock_take(const char *group, int64 term);
extern void session_lock_drop_at_commit(const char *group, int64 term);
extern bool session_lock_held_by_me(const char *group, int64 term);
extern bool session_lock_holder_alive(const char *group, int64 term,
									  int32 pid, TimestampTz backend_start);
extern void session_lock_register_callbacks(void);

/* ---- sleeping between attempts (waiting.c) ---- */
extern void leader_wait_begin(const char *group);
extern void leader_sleep_until(TimestampTz wake_at);
extern void leader_wait_for_worker(const char *group, TimestampTz wait_until);
extern void leader_wait_end(void);

/* ---- shared memory (shared_state.c), only when preloaded ---- */
extern void leader_shared_install_hooks(void);
extern bool leader_shared_available(void);
extern ConditionVariable *leader_group_wakeup(const char *group);
extern void leader_request_worker(Oid dboid);
extern uint32 leader_worker_requests(void);
extern void leader_worker_unneeded(uint32 requests_seen);
extern int	leader_worker_pid(Oid dboid);

/* News for a database's worker: look at this group at "when" at the latest. */
#define LEADER_WORKER_NOTES			256 /* waiting in shared memory, per database */

typedef struct LeaderWorkerNote
{
	TimestampTz when;			/* 0: now */
	char		group[LEADER_MAX_NAME_BYTES + 1];
} LeaderWorkerNote;

extern void leader_worker_note(Oid dboid, const char *group, TimestampTz when);
extern void leader_worker_rescan(Oid dboid);
extern void leader_launcher_attach(void);
extern void leader_forget_database(Oid dboid);
extern void leader_pause_worker(Oid dboid);
extern void leader_resume_worker(Oid dboid, bool database_exists);
extern void leader_database_commands_install(void);
extern LWLock *leader_database_list_lock(void);

/* ---- the databases that may have the extension (database_list.c) ---- */
extern void database_list_add(Oid dboid);
extern void database_list_remove(Oid dboid);
extern void database_list_lock(Oid dboid);
extern List *database_list_open(List *(*all_databases) (void));
extern void database_list_close(void);

/* A database whose worker the launcher is to start. */
typedef struct LeaderStartRequest
{
	Oid			dboid;
	bool		restart;		/* its last worker left unasked */
	int			exit_code;		/* then: how it exited (0: terminated) */
} LeaderStartRequest;

#define LEADER_RESTART_DELAY_MS		100 /* from a worker's exit to its restart */
#define LEADER_RESTART_INTERVAL_MS	1000	/* between starts of one database's worker */

extern List *leader_take_start_requests(TimestampTz now, TimestampTz *next_due);
extern bool leader_worker_attach(void);
extern void leader_worker_retire(void);
extern bool leader_worker_take_notes(LeaderWorkerNote *notes, int *count);
extern void leader_worker_set_next_wake(TimestampTz next_wake);

/* ---- wakeups at commit (wakeups.c) ---- */
extern void leader_wakeups_install(void);
extern void leader_wake_waiters_at_commit(const char *group);
extern void leader_tell_worker_at_commit(const char *group, TimestampTz expires_at);
extern void leader_request_worker_at_commit(Oid dboid);
extern void leader_wake_worker_after_fence(const char *group, TimestampTz expires_at);

/* ---- the worker's schedule (schedule.c), in the worker only ---- */
extern void schedule_no_later_than(const char *group, TimestampTz due);
extern void schedule_exactly(const char *group, TimestampTz due);
extern bool schedule_take_due(TimestampTz now, char *group);
extern TimestampTz schedule_next_due(void);

/* ---- background processes (launcher.c, worker.c) ---- */
extern void leader_register_launcher(void);

/* ---- events (events.c) ---- */
extern void leader_event_check_name(const char *param, const char *name);
extern void leader_event_send(const char *event, const LeaseRow *lease);

/* ---- the election itself (election.c) ---- */
typedef enum LeaseState
{
	LEASE_VACANT,				/* no leadership recorded */
	LEASE_MINE,					/* the caller leads, unexpired */
	LEASE_OTHERS,				/* someone else leads, unexpired */
	LEASE_EXPIRED,				/* recorded, but past expires_at */
	LEASE_VACATED				/* recorded, but its session has ended */
} LeaseState;

extern LeaseState leader_lease_state(const LeaseRow *row, const LeaderCaller *caller,
									 TimestampTz now);
extern bool leader_try_acquire_internal(Oid ext_namespace, const char *group,
										int64 ttl_usecs, const LeaderCaller *caller,
										TimestampTz *retry_at);
extern bool leader_release_internal(Oid ext_namespace, const char *group,
									const LeaderCaller *caller);
extern bool leader_force_release_internal(Oid ext_namespace, const char *group);

typedef enum SettleResult
{
	SETTLE_NOTHING,				/* the lease had not ended */
	SETTLE_ENDED,				/* its end is recorded */
	SETTLE_BUSY					/* its group is being changed; try later */
} SettleResult;

extern SettleResult leader_settle_if_ended(Oid ext_namespace, const char *group);
extern void leader_fence_internal(Oid ext_namespace, const char *group, int64 term);
extern void leader_read_lease(Oid ext_namespace, const char *group, LeaseRow *row);

#endif							/* LEADER_H */
