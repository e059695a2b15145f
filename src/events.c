/*
 * events.c
 *	  The leader_changed notifications: one JSON object per change of
 *	  leadership, queued with NOTIFY in the changing transaction, so that it
 *	  is delivered at commit, in commit order, and never after a rollback.
 *
 * Payload: {"group":..., "event":..., "holder":..., "kind":..., "pid":...,
 * "term":..., "expires_at":...}.  Strings go through the server's JSON
 * escaping, timestamps are ISO 8601 in UTC with microseconds.  With names of
 * at most 200 bytes (at most 6 characters each once escaped) a payload stays
 * far below the 8000-byte limit of NOTIFY.
 *
 * JSON text is UTF-8.  In a UTF8 database every name is; in a SQL_ASCII
 * database a name may hold any bytes, and escaping them would either lose
 * them or make two groups look alike.  So there a name that is not valid
 * UTF-8 is refused (22021) before it can start a leadership
 * (leader_event_check_name); a session holder's display name never needs
 * it, as application_name is cleaned to ASCII by the server.
 */
#include "leader.h"

#include "commands/async.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/timestamp.h"

static void
append_json_timestamp(StringInfo buf, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	appendStringInfo(buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00\"",
					 tm.tm_year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

/*
 * Refuse a name (of parameter param) that an event could not carry as JSON:
 * in a SQL_ASCII database, one that is not valid UTF-8.
 */
void
leader_event_check_name(const char *param, const char *name)
{
	if (GetDatabaseEncoding() == PG_SQL_ASCII &&
		!pg_verify_mbstr(PG_UTF8, name, (int) strlen(name), true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("%s is not valid UTF-8", param),
				 errdetail("The database's encoding is SQL_ASCII, and the leader_changed events carry names as JSON, which must be UTF-8."),
				 errhint("Use a name in UTF-8.")));
}

/*
 * Queue one event about a leadership: for "acquired" the new one, for the
 * ending events (released, expired, vacated, forced) the one that ended.
 */
void
leader_event_send(const char *event, const LeaseRow *lease)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"group\":");
	escape_json(&buf, lease->group);
	appendStringInfoString(&buf, ",\"event\":");
	escape_json(&buf, event);
	appendStringInfoString(&buf, ",\"holder\":");
	escape_json(&buf, lease->holder);
	appendStringInfoString(&buf, ",\"kind\":");
	escape_json(&buf, lease->kind == HOLDER_NAMED ? "named" : "session");
	if (lease->has_pid)
		appendStringInfo(&buf, ",\"pid\":%d", lease->pid);
	else
		appendStringInfoString(&buf, ",\"pid\":null");
	appendStringInfo(&buf, ",\"term\":" INT64_FORMAT ",\"expires_at\":", lease->term);
	append_json_timestamp(&buf, lease->expires_at);
	appendStringInfoChar(&buf, '}');

	Async_Notify(LEADER_CHANNEL, buf.data);
	pfree(buf.data);
}
