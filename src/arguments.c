/*
 * arguments.c
 *	  Checks of the SQL functions' arguments, and of whether the current
 *	  transaction may change leadership at all.
 *
 * Every check raises an error with a SQLSTATE and names the parameter; none
 * of them lets a NULL through silently.  They run before anything is read or
 * locked, so a rejected call changes nothing.
 */
#include "leader.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "common/int.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

static char *
arg_name(FunctionCallInfo fcinfo, int argno, const char *param, bool allow_null)
{
	text	   *value;
	int			len;

	if (PG_ARGISNULL(argno))
	{
		if (allow_null)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", param)));
	}
	value = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(value);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", param),
				 allow_null ? errhint("Pass NULL for a holder bound to this session.") : 0));
	if (len > LEADER_MAX_NAME_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", param),
				 errdetail("It has %d bytes; at most %d are allowed.",
						   len, LEADER_MAX_NAME_BYTES)));
	return text_to_cstring(value);
}

/* The group name: required, 1 to LEADER_MAX_NAME_BYTES bytes. */
char *
leader_arg_group(FunctionCallInfo fcinfo, int argno)
{
	return arg_name(fcinfo, argno, "group_name", false);
}

/* A named holder, or NULL for the calling session. */
char *
leader_arg_holder(FunctionCallInfo fcinfo, int argno)
{
	return arg_name(fcinfo, argno, "holder", true);
}

/*
 * An interval in microseconds.  One too large for an int64 either way is
 * clamped to PG_INT64_MAX or PG_INT64_MIN, which every range check rejects.
 */
static int64
interval_usecs(const Interval *iv)
{
	int64		days;
	int64		usecs;

	if (pg_mul_s64_overflow((int64) iv->month, DAYS_PER_MONTH, &days) ||
		pg_add_s64_overflow(days, (int64) iv->day, &days) ||
		pg_mul_s64_overflow(days, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, iv->time, &usecs))
	{
		double		approx = ((double) iv->month * DAYS_PER_MONTH + iv->day) *
			(double) USECS_PER_DAY + (double) iv->time;

		return approx > 0 ? PG_INT64_MAX : PG_INT64_MIN;
	}
	return usecs;
}

static int64
arg_duration(FunctionCallInfo fcinfo, int argno, const char *param,
			 int64 max_usecs, const char *max_source)
{
	int64		usecs = interval_usecs(PG_GETARG_INTERVAL_P(argno));

	if (usecs <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", param)));
	if (usecs > max_usecs)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not exceed %s", param, max_source),
				 errdetail("The maximum is " INT64_FORMAT " ms.", max_usecs / 1000)));
	return usecs;
}

/* The lease duration: NULL means leader.default_ttl; at most leader.max_ttl. */
int64
leader_arg_ttl(FunctionCallInfo fcinfo, int argno)
{
	int64		max_usecs = (int64) leader_max_ttl_ms * 1000;

	if (PG_ARGISNULL(argno))
	{
		if ((int64) leader_default_ttl_ms * 1000 > max_usecs)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("leader.default_ttl must not exceed leader.max_ttl"),
					 errhint("Pass a ttl, or lower leader.default_ttl.")));
		return (int64) leader_default_ttl_ms * 1000;
	}
	return arg_duration(fcinfo, argno, "ttl", max_usecs, "leader.max_ttl");
}

/* How long leader_acquire may wait: NULL (returned as -1) means no limit. */
int64
leader_arg_timeout(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return -1;
	return arg_duration(fcinfo, argno, "timeout", LEADER_MAX_TIMEOUT_USECS, "1 day");
}

/* A fencing term: required. */
int64
leader_arg_term(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("term must not be null"),
				 errhint("Pass the term that leader_term() returned when this holder led.")));
	return PG_GETARG_INT64(argno);
}

/* Leadership lives on the primary: a standby can neither change nor fence it. */
void
leader_require_primary(const char *funcname)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute %s during recovery", funcname),
				 errhint("Leadership changes only on the primary server; connect to it.")));
}

/* Changes need the primary, a read-write transaction, and no parallel mode. */
void
leader_require_writable(const char *funcname)
{
	leader_require_primary(funcname);
	PreventCommandIfReadOnly(funcname);
	PreventCommandIfParallelMode(funcname);
}
