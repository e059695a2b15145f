/*
 * waiting.c
 *	  How a waiting leader_acquire sleeps between attempts: on its latch,
 *	  until a given time, and never past the death of its own client.
 *
 * A candidate whose client has gone must not go on to win: it would lead
 * for a session nobody listens to.  So after every sleep it checks its
 * client connection, and a closed one ends the backend at once, as
 * client_connection_check_interval would.
 */
#include "leader.h"

#include "libpq/libpq.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

void
leader_sleep_until(TimestampTz wake_at)
{
	long		timeout_ms = Max(1, (long) ((wake_at - GetCurrentTimestamp() + 999) / 1000));

	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (MyProcPort != NULL && !pq_check_connection())
		ereport(FATAL,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("connection to client lost while waiting in leader_acquire()")));
}
