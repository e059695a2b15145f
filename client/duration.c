/*
 * duration.c: durations given on the command line, and the monotonic clock
 * that pg_leader measures them with.
 *
 * A duration is a positive number (decimals allowed) and an optional unit:
 * ms, s (the default), min, h or d, or their longer spellings.  Every form
 * accepted here means the same to PostgreSQL's interval input, so the text is
 * passed to the server as given and both sides agree on its length.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "pg_leader.h"

typedef struct DurationUnit
{
	const char *name;
	double		ms;
} DurationUnit;

static const DurationUnit duration_units[] = {
	{"ms", 1}, {"msec", 1}, {"msecs", 1}, {"millisecond", 1}, {"milliseconds", 1},
	{"s", 1000}, {"sec", 1000}, {"secs", 1000}, {"second", 1000}, {"seconds", 1000},
	{"min", 60000}, {"mins", 60000}, {"minute", 60000}, {"minutes", 60000},
	{"h", 3600000}, {"hour", 3600000}, {"hours", 3600000},
	{"d", 86400000}, {"day", 86400000}, {"days", 86400000},
};

bool
parse_duration(const char *text, int64_t *ms)
{
	const char *p = text;
	char	   *end;
	double		value;
	double		unit = 1000;

	while (isspace((unsigned char) *p))
		p++;
	if (!isdigit((unsigned char) *p) && *p != '.')
		return false;			/* no sign, no "inf", no "nan" */
	errno = 0;
	value = strtod(p, &end);
	if (errno != 0 || end == p)
		return false;
	p = end;
	while (isspace((unsigned char) *p))
		p++;
	if (*p != '\0')
	{
		size_t		len = strlen(p);
		bool		found = false;

		while (len > 0 && isspace((unsigned char) p[len - 1]))
			len--;
		for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
		{
			if (strlen(duration_units[i].name) == len &&
				strncasecmp(p, duration_units[i].name, len) == 0)
			{
				unit = duration_units[i].ms;
				found = true;
				break;
			}
		}
		if (!found)
			return false;
	}
	value *= unit;
	/* At least a millisecond, at most about 100 years. */
	if (!(value >= 1) || value > 3.2e12)
		return false;
	*ms = (int64_t) llround(value);
	return true;
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
