/*
 * waiting.c
 *	  How a waiting leader_acquire sleeps between attempts, and what wakes
 *	  it: with the library preloaded, the group's condition variable, which
 *	  is broadcast when a lease of the group ends (wakeups.c); without it,
 *	  its latch and a timeout (the caller's bounded poll).  Either way it
 *	  wakes by the given time, and never sleeps past the death of its own
 *	  client.  Also how any candidate waits out the worker while it records
 *	  the end of a lease (leader_wait_for_worker).
 *
 * A candidate whose client has gone must not go on to win: it would lead
 * for a session nobody listens to.  So after every sleep it checks its
 * client connection, and a closed one ends the backend at once, as
 * client_connection_check_interval would.
 */
#include "leader.h"

#include "libpq/libpq.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#define WORKER_WAIT_SLICE_MS 10	/* a wait for the worker looks again after */

static ConditionVariable *waiting_on = NULL;

/*
 * Start waiting for the group, before the first attempt, so that no end of
 * a lease between an attempt and the sleep after it goes unnoticed.
 */
void
leader_wait_begin(const char *group)
{
	if (!leader_shared_available())
		return;
	waiting_on = leader_group_wakeup(group);
	ConditionVariablePrepareToSleep(waiting_on);
}

void
leader_sleep_until(TimestampTz wake_at)
{
	long		timeout_ms = Max(1, (long) ((wake_at - GetCurrentTimestamp() + 999) / 1000));

	if (waiting_on != NULL)
		(void) ConditionVariableTimedSleep(waiting_on, timeout_ms, PG_WAIT_EXTENSION);
	else
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
	if (MyProcPort != NULL && !pq_check_connection())
		ereport(FATAL,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("connection to client lost while waiting in leader_acquire()")));
}

/*
 * The database's worker holds the group's lock while it records the end of
 * a lease, for a few milliseconds: sleep on the group's condition variable,
 * which its commit broadcasts once the lock is free, until the worker lets
 * go or wait_until comes.  In short slices, as a worker that found nothing
 * to end broadcasts nothing.  A waiting leader_acquire stays ready to sleep
 * on the same variable afterwards.
 */
void
leader_wait_for_worker(const char *group, TimestampTz wait_until)
{
	ConditionVariable *cv = leader_group_wakeup(group);

	while (group_lock_holders(group) == GROUP_HELD_BY_WORKER &&
		   GetCurrentTimestamp() < wait_until)
		(void) ConditionVariableTimedSleep(cv, WORKER_WAIT_SLICE_MS, PG_WAIT_EXTENSION);
	if (waiting_on != cv)
		ConditionVariableCancelSleep();
}

void
leader_wait_end(void)
{
	if (waiting_on != NULL)
		ConditionVariableCancelSleep();
	waiting_on = NULL;
}
