#!/usr/bin/env python3
"""A leader-only worker with psycopg 3: run several copies, and one of them works.

examples/python/leader_worker.py owns the Python example of the leader extension:
  - LeaderElector: the election loop, with the callbacks of client-go style
    libraries: on_elected(term), on_revoked(term) and on_new_leader(holder, term);
  - main(): a worker that prints each callback and, while it leads, writes a row
    of example_work (examples/schema.sql) every WORK_INTERVAL seconds, fenced by
    its term.

How it elects:
  - one connection holds a session-bound leadership: leader_try_acquire(group, ttl),
    called again every ttl/3 to renew. If this process dies, its session ends and
    the server hands the group to the next candidate at once;
  - a second connection LISTENs on leader_changed (psycopg's notifies() blocks, so
    it runs in a thread and hands the events to the loop through a queue). An
    ending event makes a candidate try at once, which is why failover takes
    milliseconds and nobody polls fast; an ending event for our own term revokes
    us at once;
  - every unit of work runs in a transaction that starts with
    leader_fence(group, term): if the term is no longer the group's, the
    transaction fails (SQLSTATE 55000) and writes nothing;
  - both connections use libpq's keepalives and tcp_user_timeout, so that a
    renewal sent to a server that vanished fails within ttl/3 and the worker
    revokes itself before its lease can have run out.

Run it (the connection comes from the PG* environment variables):
  PGHOST=... PGDATABASE=... python3 examples/python/leader_worker.py
Environment: LEADER_GROUP (default example-worker), LEADER_TTL (seconds, 10),
WORKER_NAME (hostname-pid; the application_name, so the holder shows as
"NAME (pid N)"), WORK_INTERVAL (seconds, 1).
It prints one line per callback ("elected term=T", "revoked term=T",
"new-leader term=T holder=H") and per unit of work ("work term=T"). SIGTERM or
SIGINT: it releases its leadership and exits 0.
"""

import json
import os
import queue
import signal
import socket
import sys
import threading
import time

import psycopg
from psycopg import errors

ENDING_EVENTS = ("released", "expired", "vacated", "forced")
RECONNECT_DELAY = 1.0


def parse_event(payload):
    """The event in a leader_changed payload; None for anything else sent there."""
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    if isinstance(event, dict) and {"group", "event", "holder", "term"} <= event.keys():
        return event
    return None


class LeaderElector:
    """Keeps one session-bound leadership of `group` and reports its changes."""

    def __init__(self, group, ttl, name, on_elected, on_revoked, on_new_leader):
        self.group = group
        self.ttl = ttl
        self.name = name
        self.on_elected = on_elected
        self.on_revoked = on_revoked
        self.on_new_leader = on_new_leader
        self.term = None  # the term we lead, or None
        self.last_announced_term = 0  # on_new_leader fires once per term
        self.conn = None
        self.events = queue.SimpleQueue()  # put() may be called from a signal handler
        self.stopping = False

    # ---- the connections ----

    def connect(self):
        self.conn = psycopg.connect(autocommit=True, application_name=self.name,
                                    **self.liveness())

    def liveness(self):
        """libpq settings that bound how long a call may hang on a vanished server.

        A renewal sent into a dead network fails after ttl/3 (tcp_user_timeout), so
        this worker learns it may have lost its lease before the lease runs out;
        keepalives do the same for an idle connection."""
        probe = max(1, int(self.ttl / 9))
        return {"keepalives": 1, "keepalives_idle": probe, "keepalives_interval": probe,
                "keepalives_count": 3, "tcp_user_timeout": int(self.ttl * 1000 / 3)}

    def listen_forever(self, listening):
        """Thread: puts every leader_changed event of our group on self.events."""
        while not self.stopping:
            try:
                with psycopg.connect(autocommit=True, application_name=self.name + " listener",
                                     **self.liveness()) as conn:
                    conn.execute("LISTEN leader_changed")
                    listening.set()
                    # Events sent while we were away are lost: look again.
                    self.events.put({"event": "listener-connected"})
                    for note in conn.notifies():
                        event = parse_event(note.payload)
                        if event and event["group"] == self.group:
                            self.events.put(event)
            except psycopg.OperationalError as e:
                print(f"listener: {e}".strip(), file=sys.stderr, flush=True)
            time.sleep(RECONNECT_DELAY)

    # ---- leadership ----

    def try_acquire(self):
        """Acquires or renews; reports what changed."""
        won = self.conn.execute(
            "SELECT leader_try_acquire(%s, make_interval(secs => %s))",
            (self.group, self.ttl)).fetchone()[0]
        term = None
        if won:
            term = self.conn.execute("SELECT leader_term(%s)", (self.group,)).fetchone()[0]
        if term != self.term:
            self.revoke()
            if term is not None:
                self.term = term
                self.on_elected(term)

    def revoke(self):
        if self.term is not None:
            term, self.term = self.term, None
            self.on_revoked(term)

    def fenced(self, work):
        """Runs work(conn, term) in a transaction fenced by our term."""
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT leader_fence(%s, %s)", (self.group, self.term))
                work(self.conn, self.term)
            return True
        except errors.ObjectNotInPrerequisiteState:  # 55000: the term is over
            self.revoke()
            return False

    def handle(self, event):
        """Acts on one event of our group."""
        kind = event["event"]
        if kind == "listener-connected":
            self.check_current()
        elif kind == "acquired" and event["term"] > self.last_announced_term:
            self.last_announced_term = event["term"]
            self.on_new_leader(event["holder"], event["term"])
        elif kind in ENDING_EVENTS:
            if event["term"] == self.term:
                self.revoke()
            if not self.stopping:
                self.try_acquire()  # a candidate tries at once: this is the failover

    def check_current(self):
        """Announces the current leader if an event about it was missed."""
        row = self.conn.execute(
            "SELECT holder, term FROM leader_status WHERE group_name = %s AND state = 'held'",
            (self.group,)).fetchone()
        if row and row[1] > self.last_announced_term:
            self.handle({"event": "acquired", "holder": row[0], "term": row[1]})

    def run(self, work, work_interval):
        """The loop: renews every ttl/3, works every work_interval, reacts to events."""
        listening = threading.Event()
        threading.Thread(target=self.listen_forever, args=(listening,), daemon=True).start()
        listening.wait(10)
        next_renewal = next_work = 0.0
        while not self.stopping:
            try:
                if self.conn is None:
                    self.connect()
                    self.check_current()
                now = time.monotonic()
                if now >= next_renewal:
                    self.try_acquire()
                    next_renewal = now + self.ttl / 3
                if self.term is not None and now >= next_work:
                    if self.fenced(work):
                        print(f"work term={self.term}", flush=True)
                    next_work = now + work_interval
                deadline = min(next_renewal, next_work if self.term else next_renewal)
                try:
                    event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
                    self.handle(event)
                except queue.Empty:
                    pass
            except psycopg.OperationalError as e:
                # The connection is gone, and with it a session-bound leadership.
                print(f"connection lost: {e}".strip(), file=sys.stderr, flush=True)
                self.revoke()
                self.conn = None
                time.sleep(RECONNECT_DELAY)
            except psycopg.Error as e:
                # Any other error (say, the server became a read-only standby): the
                # session and its leadership, if any, go on; try again shortly.
                print(f"error: {e}".strip(), file=sys.stderr, flush=True)
                time.sleep(RECONNECT_DELAY)
        self.release()

    def release(self):
        if self.term is not None and self.conn is not None:
            try:
                self.conn.execute("SELECT leader_release(%s)", (self.group,))
            except psycopg.OperationalError:
                pass
        self.revoke()

    def stop(self, *_):
        self.stopping = True
        self.events.put({"event": "stop"})


def positive_seconds(variable, default):
    try:
        value = float(os.environ.get(variable, default))
    except ValueError:
        value = 0
    if not value > 0:
        sys.exit(f"{variable} must be a positive number of seconds")
    return value


def main():
    group = os.environ.get("LEADER_GROUP", "example-worker")
    ttl = positive_seconds("LEADER_TTL", "10")
    name = os.environ.get("WORKER_NAME", f"{socket.gethostname()}-{os.getpid()}")
    work_interval = positive_seconds("WORK_INTERVAL", "1")

    def work(conn, term):
        conn.execute(
            "INSERT INTO example_work (group_name, term, worker) VALUES (%s, %s, %s)",
            (group, term, name))

    elector = LeaderElector(
        group, ttl, name,
        on_elected=lambda term: print(f"elected term={term}", flush=True),
        on_revoked=lambda term: print(f"revoked term={term}", flush=True),
        on_new_leader=lambda holder, term: print(
            f"new-leader term={term} holder={holder}", flush=True))
    signal.signal(signal.SIGTERM, elector.stop)
    signal.signal(signal.SIGINT, elector.stop)
    elector.run(work, work_interval)


if __name__ == "__main__":
    main()
