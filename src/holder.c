/*
 * holder.c
 *	  Who is calling: the identity a call acts as, either this database
 *	  session or a named holder owned by the current role.
 *
 * A session is identified by its backend pid and its start time, never by
 * the pid alone (pids are reused).  Its display name carries
 * application_name and the pid, e.g. "web-2 (pid 4242)".
 */
#include "leader.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/guc.h"

void
leader_caller_init(LeaderCaller *caller, const char *holder)
{
	caller->role = GetUserId();
	if (holder != NULL)
	{
		caller->kind = HOLDER_NAMED;
		caller->name = pstrdup(holder);
		caller->pid = 0;
		caller->backend_start = 0;
	}
	else
	{
		StringInfoData display;

		initStringInfo(&display);
		if (application_name != NULL && application_name[0] != '\0')
			appendStringInfo(&display, "%s (pid %d)", application_name, MyProcPid);
		else
			appendStringInfo(&display, "pid %d", MyProcPid);
		caller->kind = HOLDER_SESSION;
		caller->name = display.data;
		caller->pid = MyProcPid;
		caller->backend_start = MyStartTimestamp;
	}
}
