/*
 * functions.c
 *	  The SQL-callable functions: argument checks, then the election.
 *
 * Each function finds the extension's schema from its own pg_proc entry, so
 * nothing depends on the caller's search_path.  None runs in a parallel
 * worker: the functions are PARALLEL UNSAFE, but a wrapper declared
 * PARALLEL SAFE could still call them there, where the session is another
 * one and the caller's own session-bound lease would look vacant.
 */
#include "leader.h"

#include "access/parallel.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(leader_try_acquire);
PG_FUNCTION_INFO_V1(leader_acquire);
PG_FUNCTION_INFO_V1(leader_release);
PG_FUNCTION_INFO_V1(leader_is_leader);
PG_FUNCTION_INFO_V1(leader_current);
PG_FUNCTION_INFO_V1(leader_term);
PG_FUNCTION_INFO_V1(leader_fence);
PG_FUNCTION_INFO_V1(leader_force_release);
PG_FUNCTION_INFO_V1(leader_session_alive);

static Oid
extension_namespace(FunctionCallInfo fcinfo)
{
	return get_func_namespace(fcinfo->flinfo->fn_oid);
}

static void
refuse_in_parallel_worker(const char *funcname)
{
	if (IsParallelWorker())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot run in a parallel worker", funcname),
				 errdetail("A parallel worker is not the session that called it, so it would not see that session's leadership."),
				 errhint("Declare the function that calls it PARALLEL UNSAFE.")));
}

/* The caller of an acquisition, whose names its events must be able to carry. */
static void
acquiring_caller_init(LeaderCaller *caller, const char *group, const char *holder)
{
	leader_event_check_name("group_name", group);
	leader_caller_init(caller, holder);
	leader_event_check_name(holder != NULL ? "holder" : "application_name", caller->name);
}

/* leader_try_acquire(group_name text, ttl interval, holder text) */
Datum
leader_try_acquire(PG_FUNCTION_ARGS)
{
	char	   *group = leader_arg_group(fcinfo, 0);
	int64		ttl = leader_arg_ttl(fcinfo, 1);
	char	   *holder = leader_arg_holder(fcinfo, 2);
	LeaderCaller caller;
	TimestampTz retry_at;

	refuse_in_parallel_worker("leader_try_acquire()");
	leader_require_writable("leader_try_acquire()");
	acquiring_caller_init(&caller, group, holder);
	PG_RETURN_BOOL(leader_try_acquire_internal(extension_namespace(fcinfo), group,
											   ttl, &caller, &retry_at));
}

/*
 * leader_acquire(group_name text, timeout interval, ttl interval, holder text)
 *
 * Tries, then sleeps (waiting.c) and tries again, until it leads or the
 * timeout passes.  Preloaded, it is woken when a lease of the group ends
 * and otherwise looks again once a second; without preloading it looks
 * again every leader.poll_interval.  Either way it wakes at once when the
 * lease it waits on is due to expire.  It holds no row lock and no group
 * lock while it sleeps; cancel and statement_timeout end it.
 */
Datum
leader_acquire(PG_FUNCTION_ARGS)
{
	char	   *group = leader_arg_group(fcinfo, 0);
	int64		timeout = leader_arg_timeout(fcinfo, 1);
	int64		ttl = leader_arg_ttl(fcinfo, 2);
	char	   *holder = leader_arg_holder(fcinfo, 3);
	Oid			namespace = extension_namespace(fcinfo);
	TimestampTz deadline = timeout < 0 ? DT_NOEND : GetCurrentTimestamp() + timeout;
	MemoryContext attempt_context;
	MemoryContext old;
	LeaderCaller caller;
	bool		won = false;

	refuse_in_parallel_worker("leader_acquire()");
	leader_require_writable("leader_acquire()");
	acquiring_caller_init(&caller, group, holder);
	attempt_context = AllocSetContextCreate(CurrentMemoryContext, "leader_acquire attempt",
											ALLOCSET_SMALL_SIZES);
	leader_wait_begin(group);
	for (;;)
	{
		TimestampTz retry_at;
		TimestampTz now;
		TimestampTz wake_at;

		old = MemoryContextSwitchTo(attempt_context);
		won = leader_try_acquire_internal(namespace, group, ttl, &caller, &retry_at);
		MemoryContextSwitchTo(old);
		MemoryContextReset(attempt_context);

		now = GetCurrentTimestamp();
		if (won || now >= deadline)
			break;
		wake_at = TimestampTzPlusMilliseconds(now, leader_shared_available()
											  ? LEADER_SAFETY_WAKE_MS : leader_poll_interval_ms);
		if (retry_at > now && retry_at < wake_at)
			wake_at = retry_at;
		if (deadline < wake_at)
			wake_at = deadline;

		leader_sleep_until(wake_at);
	}
	leader_wait_end();
	MemoryContextDelete(attempt_context);
	PG_RETURN_BOOL(won);
}

/* leader_release(group_name text, holder text) */
Datum
leader_release(PG_FUNCTION_ARGS)
{
	char	   *group = leader_arg_group(fcinfo, 0);
	char	   *holder = leader_arg_holder(fcinfo, 1);
	LeaderCaller caller;

	refuse_in_parallel_worker("leader_release()");
	leader_require_writable("leader_release()");
	leader_caller_init(&caller, holder);
	PG_RETURN_BOOL(leader_release_internal(extension_namespace(fcinfo), group, &caller));
}

/* leader_force_release(group_name text): not executable by PUBLIC. */
Datum
leader_force_release(PG_FUNCTION_ARGS)
{
	char	   *group = leader_arg_group(fcinfo, 0);

	refuse_in_parallel_worker("leader_force_release()");
	leader_require_writable("leader_force_release()");
	PG_RETURN_BOOL(leader_force_release_internal(extension_namespace(fcinfo), group));
}

/* Read the group's lease and where it stands for the given holder. */
static LeaseState
caller_lease_state(FunctionCallInfo fcinfo, const char *funcname, int holder_argno,
				   LeaseRow *row)
{
	char	   *group = leader_arg_group(fcinfo, 0);
	LeaderCaller caller;

	refuse_in_parallel_worker(funcname);
	leader_caller_init(&caller, holder_argno >= 0 ? leader_arg_holder(fcinfo, holder_argno) : NULL);
	leader_read_lease(extension_namespace(fcinfo), group, row);
	return leader_lease_state(row, holder_argno >= 0 ? &caller : NULL, GetCurrentTimestamp());
}

/* leader_is_leader(group_name text, holder text) */
Datum
leader_is_leader(PG_FUNCTION_ARGS)
{
	LeaseRow	row;

	PG_RETURN_BOOL(caller_lease_state(fcinfo, "leader_is_leader()", 1, &row) == LEASE_MINE);
}

/* leader_term(group_name text, holder text): the caller's term, or NULL. */
Datum
leader_term(PG_FUNCTION_ARGS)
{
	LeaseRow	row;

	if (caller_lease_state(fcinfo, "leader_term()", 1, &row) != LEASE_MINE)
		PG_RETURN_NULL();
	PG_RETURN_INT64(row.term);
}

/* leader_current(group_name text): whoever leads right now, or NULL. */
Datum
leader_current(PG_FUNCTION_ARGS)
{
	LeaseRow	row;
	LeaseState	state = caller_lease_state(fcinfo, "leader_current()", -1, &row);

	if (state != LEASE_OTHERS)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(row.holder));
}

/* leader_fence(group_name text, term bigint) */
Datum
leader_fence(PG_FUNCTION_ARGS)
{
	char	   *group = leader_arg_group(fcinfo, 0);
	int64		term = leader_arg_term(fcinfo, 1);

	refuse_in_parallel_worker("leader_fence()");
	leader_require_primary("leader_fence()");
	leader_fence_internal(extension_namespace(fcinfo), group, term);
	PG_RETURN_VOID();
}

/*
 * leader_session_alive(group_name text, term bigint, pid integer,
 *						backend_start timestamptz)
 * Whether a session-bound lease's session still lives; NULL for named ones.
 * Used by the leader_status view.
 *
 * Only the group's current session-bound lease, as read from the table, is
 * probed, and only when the arguments name it; anything else answers NULL.
 * The probe asks for the lease's liveness lock, so probing a tag of the
 * caller's choosing could take, for an instant, the tag a takeover is
 * about to take for its new lease, and make it fail.
 */
Datum
leader_session_alive(PG_FUNCTION_ARGS)
{
	LeaseRow	row;

	refuse_in_parallel_worker("leader_session_alive()");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_NULL();
	leader_read_lease(extension_namespace(fcinfo), text_to_cstring(PG_GETARG_TEXT_PP(0)),
					  &row);
	if (!row.found || !row.held || row.kind != HOLDER_SESSION ||
		row.term != PG_GETARG_INT64(1) || row.pid != PG_GETARG_INT32(2) ||
		row.backend_start != PG_GETARG_TIMESTAMPTZ(3))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(session_lock_holder_alive(row.group, row.term, row.pid,
											 row.backend_start));
}
