/*
 * module.c
 *	  The module's entry point: declares the settings, hooks the
 *	  transaction callbacks, and, when the library is preloaded, asks for
 *	  shared memory and registers the launcher of the background workers.
 *
 * Without shared_preload_libraries every function still works: expiry and
 * session end are then noticed by the next call that touches the group,
 * and leader_acquire polls.
 */
#include "leader.h"

#include "fmgr.h"
#include "miscadmin.h"

LEADER_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	leader_define_settings();
	session_lock_register_callbacks();
	leader_wakeups_install();
	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;
	leader_shared_install_hooks();
	leader_database_commands_install();
	leader_register_launcher();
}
