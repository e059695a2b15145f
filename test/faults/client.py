"""
test/faults/client.py: one candidate of the fault-injection run.

Owns a candidate's loop: connect (to whichever server is the primary), wait to
lead its group (leader_acquire, session-bound or as a named holder), then
while it believes it leads, append records to the ledger, each in a
transaction guarded by leader_fence, and renew every third of the TTL.  It
logs every operation it invokes and its outcome, with wall-clock times, one
JSON object per line.  SIGUSR1 makes it run DISCARD ALL in its session at its
next step (the harness's "DISCARD ALL in a leader's session" fault).  It never
exits by itself: faults kill it, or the harness stops it with SIGTERM.

Also the writer that "pg_leader run" starts (--writer): it reads its group
and term from LEADER_GROUP and LEADER_TERM and appends fenced records until
pg_leader stops it.
"""
import argparse
import json
import os
import signal
import sys
import time

import psycopg

# The fence, with the time just before it and the lease's expiry as it stood
# when the statement began (the fence itself checks it is unexpired).
FENCE = """
SELECT clock_timestamp(),
       (SELECT expires_at FROM leader_lease WHERE group_name = %(group)s),
       leader_fence(%(group)s, %(term)s)"""

WRITE = """
INSERT INTO ledger (grp, term, seq, client, fenced_at, lease_expires_at)
VALUES (%(group)s, %(term)s, %(seq)s, %(client)s, %(fenced_at)s, %(expires_at)s)
RETURNING id"""


class Log:
    def __init__(self, path, client):
        self.file = open(path, "a", buffering=1)
        self.client = client

    def op(self, op, started, **fields):
        fields.update(client=self.client, op=op, t=started, t_end=time.time())
        self.file.write(json.dumps(fields) + "\n")


def sqlstate(error):
    return getattr(error, "sqlstate", None) or type(error).__name__


def fenced_write(conn, log, group, term, seq, work_ms):
    """
    Appends one ledger record in a transaction guarded by leader_fence(group,
    term), announced on channel "ledger" at its commit; logs it; raises when
    it fails.  work_ms is spent inside the transaction, as real work would.
    """
    started = time.time()
    fields = {"group": group, "term": term, "seq": seq}
    try:
        with conn.transaction():
            fenced_at, expires_at, _ = conn.execute(FENCE, fields).fetchone()
            conn.execute("SELECT pg_sleep(%s)", (work_ms / 1000,))
            row = conn.execute(WRITE, dict(fields, client=log.client, fenced_at=fenced_at,
                                           expires_at=expires_at)).fetchone()
            conn.execute("SELECT pg_notify('ledger', %s)",
                         (json.dumps(dict(fields, client=log.client, id=row[0])),))
    except psycopg.Error as error:
        log.op("write", started, ok=False, error=sqlstate(error), **fields)
        raise
    log.op("write", started, ok=True, id=row[0], **fields)


class Candidate:
    def __init__(self, args, log):
        self.args, self.log = args, log
        self.holder = f"named-{args.id}" if args.kind == "named" else None
        self.term = None
        self.seq = 0
        self.renewed = 0.0
        self.discard = False

    def call(self, conn, op, sql, params, **fields):
        """One statement; logs it; returns its first value, or raises."""
        started = time.time()
        try:
            value = conn.execute(sql, params).fetchone()[0]
        except psycopg.Error as error:
            self.log.op(op, started, ok=False, error=sqlstate(error), **fields)
            raise
        self.log.op(op, started, ok=True, value=value, **fields)
        return value

    def acquire(self, conn):
        g, ttl, h = self.args.group, f"{self.args.ttl} s", self.holder
        if self.call(conn, "acquire", "SELECT leader_acquire(%s, '1 s', %s::interval, %s)",
                     (g, ttl, h), group=g):
            self.term = self.call(conn, "term", "SELECT leader_term(%s, %s)", (g, h), group=g)
            self.renewed = time.monotonic()

    def renew(self, conn):
        g, ttl, h = self.args.group, f"{self.args.ttl} s", self.holder
        if self.call(conn, "renew", "SELECT leader_try_acquire(%s, %s::interval, %s)",
                     (g, ttl, h), group=g, term=self.term):
            term = self.call(conn, "term", "SELECT leader_term(%s, %s)", (g, h), group=g)
            self.term, self.renewed = term, time.monotonic()
        else:
            self.term = None

    def write(self, conn):
        """One fenced ledger record; a failed fence means it no longer leads."""
        self.seq += 1
        try:
            fenced_write(conn, self.log, self.args.group, self.term, self.seq, self.args.work_ms)
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            self.term = None

    def step(self, conn):
        if self.discard:
            self.discard = False
            started = time.time()
            conn.execute("DISCARD ALL")
            self.log.op("discard_all", started, ok=True, group=self.args.group)
        if self.term is None:
            self.acquire(conn)
            return
        if time.monotonic() - self.renewed >= self.args.ttl / 3:
            self.renew(conn)
        if self.term is not None:
            self.write(conn)
        time.sleep(self.args.pause_ms / 1000)

    def run(self):
        while True:
            started = time.time()
            try:
                with psycopg.connect(self.args.dsn, autocommit=True, connect_timeout=2,
                                     application_name=self.log.client) as conn:
                    self.log.op("connect", started, ok=True, pid=conn.info.backend_pid)
                    if self.holder is None:
                        self.term = None      # a session-bound lease died with the session
                    while True:
                        self.step(conn)
            except psycopg.Error as error:
                self.log.op("disconnected", started, ok=False, error=sqlstate(error))
                time.sleep(0.2)


def run_writer(args, log):
    """pg_leader's command: fenced records with LEADER_TERM until stopped."""
    group, term, seq = os.environ["LEADER_GROUP"], int(os.environ["LEADER_TERM"]), 0
    with psycopg.connect(args.dsn, autocommit=True, connect_timeout=2) as conn:
        while True:
            seq += 1
            try:
                fenced_write(conn, log, group, term, seq, args.work_ms)
            except psycopg.OperationalError:
                raise
            except psycopg.Error:
                pass                          # pg_leader stops it once the loss is known
            time.sleep(args.pause_ms / 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--id", required=True)
    parser.add_argument("--kind", choices=["session", "named"], default="session")
    parser.add_argument("--group")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--work-ms", type=float, default=20, help="time inside a fenced write")
    parser.add_argument("--pause-ms", type=float, default=30, help="time between writes")
    parser.add_argument("--log", required=True)
    parser.add_argument("--writer", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log = Log(args.log, f"client-{args.id}")
    if args.writer:
        return run_writer(args, log)
    candidate = Candidate(args, log)

    def ask_discard(*_):
        candidate.discard = True
    signal.signal(signal.SIGUSR1, ask_discard)
    candidate.run()


if __name__ == "__main__":
    main()
