#!/usr/bin/python3
"""scripts/demo_listener.py: the event listener of scripts/demo.sh.

Owns: one line of output per leadership change. It connects with the libpq
connection string given as its only argument, runs LISTEN leader_changed, prints
"ready" once listening, then prints every notification as one readable line
prefixed with the local time it was received, until it is terminated (SIGTERM or
SIGINT). Needs python3-psycopg (psycopg 3).
"""

import datetime
import json
import signal
import sys

import psycopg


def stamp() -> str:
    return datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]


def describe(payload: str) -> str:
    """One line for one event; the raw payload if it is not the JSON we expect."""
    try:
        ev = json.loads(payload)
        return "{:<9} group={} term={} holder={} pid={} expires_at={}".format(
            ev["event"],
            json.dumps(ev["group"], ensure_ascii=False),
            ev["term"],
            json.dumps(ev["holder"], ensure_ascii=False),
            ev["pid"],
            ev.get("expires_at"),
        )
    except (ValueError, KeyError, TypeError):
        return "(unparsed) " + payload


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: demo_listener.py CONNINFO", file=sys.stderr)
        return 2
    # Exit quietly when the demo stops us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

    with psycopg.connect(
        sys.argv[1], autocommit=True, application_name="listener"
    ) as conn:
        conn.execute("LISTEN leader_changed")
        print(f"[{stamp()}] ready", flush=True)
        for note in conn.notifies():
            print(f"[{stamp()}] {describe(note.payload)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
