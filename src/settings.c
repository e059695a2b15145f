/*
 * settings.c
 *	  The leader.* configuration settings: their variables, units, ranges
 *	  and who may change them.
 */
#include "leader.h"

#include "miscadmin.h"
#include "utils/guc.h"

int			leader_default_ttl_ms = 15000;
int			leader_max_ttl_ms = 24 * 60 * 60 * 1000;
int			leader_max_groups = 10000;
int			leader_max_groups_per_role = 1000;
int			leader_poll_interval_ms = 100;
int			leader_max_databases = 64;

void
leader_define_settings(void)
{
	DefineCustomIntVariable("leader.default_ttl",
							"Lease duration used when a call passes no ttl.",
							NULL,
							&leader_default_ttl_ms,
							15000, 1, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("leader.max_ttl",
							"Longest lease a call may ask for.",
							NULL,
							&leader_max_ttl_ms,
							24 * 60 * 60 * 1000, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("leader.max_groups",
							"Most groups (rows of leader_lease) a database may hold.",
							"A call that would create a group beyond this fails.",
							&leader_max_groups,
							10000, 1, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("leader.max_groups_per_role",
							"Most groups one role may have created that still exist in a database.",
							"A call that would create a group beyond this fails, after reclaiming the role's vacant groups. Superusers are exempt.",
							&leader_max_groups_per_role,
							1000, 1, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("leader.poll_interval",
							"How often a waiting leader_acquire looks again.",
							"A waiting call also wakes when the lease it waits on expires.",
							&leader_poll_interval_ms,
							100, 1, 10000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* Sizes shared memory, which only a preloaded library has. */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("leader.max_databases",
								"Most databases the background workers serve.",
								"Each takes about 55 kB of shared memory.  A database beyond this gets no worker.",
								&leader_max_databases,
								64, 1, 4096,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

	MarkGUCPrefixReserved("leader");
}
