/*
 * event.c: reads one leader_changed payload, a flat JSON object such as
 *   {"group":"g","event":"acquired","holder":"web-2 (pid 42)","kind":"session",
 *    "pid":42,"term":17,"expires_at":"2026-11-22T10:15:30.123456+00:00"}
 * into a LeaderEvent.  String values are decoded (escapes, \u sequences and
 * surrogate pairs into UTF-8); numbers are kept as their text; null is NULL.
 * Unknown keys are skipped, so newer servers may add fields.  Anything that
 * is not a flat object of such values is rejected.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pg_leader.h"

/* Append the UTF-8 encoding of code point "cp" to out. */
static void
event_put_utf8(char **out, unsigned cp)
{
	char	   *o = *out;

	if (cp < 0x80)
		*o++ = (char) cp;
	else if (cp < 0x800)
	{
		*o++ = (char) (0xC0 | (cp >> 6));
		*o++ = (char) (0x80 | (cp & 0x3F));
	}
	else if (cp < 0x10000)
	{
		*o++ = (char) (0xE0 | (cp >> 12));
		*o++ = (char) (0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char) (0x80 | (cp & 0x3F));
	}
	else
	{
		*o++ = (char) (0xF0 | (cp >> 18));
		*o++ = (char) (0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char) (0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char) (0x80 | (cp & 0x3F));
	}
	*out = o;
}

static bool
event_hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++)
	{
		if (!isxdigit((unsigned char) p[i]))
			return false;
		*v = *v * 16 + (unsigned) (isdigit((unsigned char) p[i]) ? p[i] - '0'
								   : (tolower((unsigned char) p[i]) - 'a' + 10));
	}
	return true;
}

/* Parse a JSON string starting at *p (at the quote); malloc'd result, or NULL. */
static char *
event_string(const char **p)
{
	const char *s = *p + 1;
	char	   *out = malloc(strlen(s) * 2 + 1);	/* escapes never grow */
	char	   *o = out;

	if (out == NULL)
		return NULL;
	while (*s && *s != '"')
	{
		if (*s != '\\')
		{
			*o++ = *s++;
			continue;
		}
		s++;
		switch (*s)
		{
			case '"': case '\\': case '/':
				*o++ = *s++;
				break;
			case 'b': *o++ = '\b'; s++; break;
			case 'f': *o++ = '\f'; s++; break;
			case 'n': *o++ = '\n'; s++; break;
			case 'r': *o++ = '\r'; s++; break;
			case 't': *o++ = '\t'; s++; break;
			case 'u':
				{
					unsigned	cp,
								lo;

					if (!event_hex4(s + 1, &cp))
						goto bad;
					s += 5;
					if (cp >= 0xD800 && cp < 0xDC00 && s[0] == '\\' && s[1] == 'u' &&
						event_hex4(s + 2, &lo) && lo >= 0xDC00 && lo < 0xE000)
					{
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						s += 6;
					}
					event_put_utf8(&o, cp);
					break;
				}
			default:
				goto bad;
		}
	}
	if (*s != '"')
		goto bad;
	*o = '\0';
	*p = s + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static void
event_skip_space(const char **p)
{
	while (isspace((unsigned char) **p))
		(*p)++;
}

bool
parse_event(const char *payload, LeaderEvent *ev)
{
	const char *p = payload;

	memset(ev, 0, sizeof(*ev));
	event_skip_space(&p);
	if (*p++ != '{')
		return false;
	event_skip_space(&p);
	if (*p == '}')
		return true;
	for (;;)
	{
		char	   *key;
		char	   *value = NULL;
		char	  **slot = NULL;

		event_skip_space(&p);
		if (*p != '"' || (key = event_string(&p)) == NULL)
			goto bad;
		event_skip_space(&p);
		if (*p++ != ':')
		{
			free(key);
			goto bad;
		}
		event_skip_space(&p);
		if (*p == '"')
		{
			if ((value = event_string(&p)) == NULL)
			{
				free(key);
				goto bad;
			}
		}
		else if (strncmp(p, "null", 4) == 0)
			p += 4;
		else
		{
			const char *start = p;

			while (*p && (isalnum((unsigned char) *p) || strchr("+-.", *p)))
				p++;
			if (p == start)
			{
				free(key);
				goto bad;
			}
			value = strndup(start, p - start);
		}

		if (strcmp(key, "group") == 0)
			slot = &ev->group;
		else if (strcmp(key, "event") == 0)
			slot = &ev->event;
		else if (strcmp(key, "holder") == 0)
			slot = &ev->holder;
		else if (strcmp(key, "kind") == 0)
			slot = &ev->kind;
		else if (strcmp(key, "pid") == 0)
			slot = &ev->pid;
		else if (strcmp(key, "term") == 0)
			slot = &ev->term;
		else if (strcmp(key, "expires_at") == 0)
			slot = &ev->expires_at;
		free(key);
		if (slot && *slot == NULL)
			*slot = value;
		else
			free(value);

		event_skip_space(&p);
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p == '}')
			return true;
		goto bad;
	}
bad:
	free_event(ev);
	return false;
}

void
free_event(LeaderEvent *ev)
{
	free(ev->group);
	free(ev->event);
	free(ev->holder);
	free(ev->kind);
	free(ev->pid);
	free(ev->term);
	free(ev->expires_at);
	memset(ev, 0, sizeof(*ev));
}
