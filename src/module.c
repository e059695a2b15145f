/*
 * module.c
 *	  The module's entry point: declares the settings and hooks the
 *	  transaction callbacks that keep liveness locks transactional.
 *
 * Loading the library needs no preloading; every function works in any
 * session that has loaded it.
 */
#include "leader.h"

#include "fmgr.h"
#include "miscadmin.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	leader_define_settings();
	session_lock_register_callbacks();
}
