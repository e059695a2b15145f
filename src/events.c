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
 */
#include "leader.h"

#include "commands/async.h"
#include "lib/stringinfo.h"
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
