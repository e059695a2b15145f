"""
bench/candidate.py: one candidate process of a failover benchmark.

Owns: the three ways a service can elect its leader that the benchmarks
compare, each written the way its users run it:

  leader    this extension: one leader_acquire call that the server wakes,
            renewals with leader_try_acquire every third of the TTL,
            leader_release on a graceful stop;
  advisory  an advisory-lock poller as @platformatic/leader does it:
            pg_try_advisory_lock (key: the group's hashtext) every poll
            interval until it succeeds, the
            lock then held by the session, pg_advisory_unlock on a graceful stop;
  lease     a plain-SQL lease table driven the way Kubernetes client-go's
            leaderelection drives its Lease object: every retry period (with
            client-go's jitter factor 1.2) read the record, note when it last
            changed by the candidate's own clock, take it over with an
            optimistic-concurrency update once lease_duration has passed since
            that change; the leader renews every retry period and gives up
            after renew_deadline without a successful renewal; a graceful
            stop empties the holder (client-go's ReleaseOnCancel).

Protocol with the driver (bench/failover.py), one line per fact on stdout:
  READY <backend pid>          connected, about to try
  LEAD <wall ns> <term>        it leads from now (stamped as soon as it knows)
  RELEASE <wall ns>            a graceful stop (SIGTERM) starts releasing
  LOST <wall ns>               it found out it no longer leads
Wall-clock nanoseconds (time.time_ns()) so the driver can compare them with
the server's expires_at; every process runs on the same machine.
"""
import argparse
import os
import random
import signal
import sys
import time

import psycopg


class Stop(Exception):
    """SIGTERM: stop gracefully."""


def on_sigterm(signum, frame):
    raise Stop()


def say(*words):
    print(*words, flush=True)


def run_leader(conn, args):
    ttl = f"{args.ttl} s"
    say("READY", conn.info.backend_pid)
    conn.execute("SELECT leader_acquire(%s, NULL, %s::interval)", (args.group, ttl))
    now = time.time_ns()
    try:                                      # a SIGTERM from here on releases
        term = conn.execute("SELECT leader_term(%s)", (args.group,)).fetchone()[0]
        say("LEAD", now, term)
        while True:
            time.sleep(args.ttl / 3)
            if not conn.execute("SELECT leader_try_acquire(%s, %s::interval)",
                                (args.group, ttl)).fetchone()[0]:
                say("LOST", time.time_ns())
                return
    except Stop:
        say("RELEASE", time.time_ns())
        conn.execute("SELECT leader_release(%s)", (args.group,))


def run_advisory(conn, args):
    say("READY", conn.info.backend_pid)
    key = conn.execute("SELECT hashtext(%s)", (args.group,)).fetchone()[0]
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        time.sleep(args.poll)
    try:
        say("LEAD", time.time_ns(), 0)
        while True:
            time.sleep(3600)
    except Stop:
        say("RELEASE", time.time_ns())
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


# The driver creates it once, before the first candidate starts.
LEASE_TABLE = """
CREATE TABLE bench_lease (
    name text PRIMARY KEY,
    holder text NOT NULL DEFAULT '',
    lease_duration_seconds double precision NOT NULL DEFAULT 0,
    acquire_time timestamptz,
    renew_time timestamptz,
    transitions bigint NOT NULL DEFAULT 0,
    resource_version bigint NOT NULL DEFAULT 1
)"""


class LeaseElector:
    """client-go's tryAcquireOrRenew over a row instead of a Lease object."""

    def __init__(self, conn, args):
        self.conn = conn
        self.name = args.group
        self.me = f"candidate-{os.getpid()}"
        self.lease_duration = args.lease_duration
        self.observed_record = None
        self.observed_time = 0.0    # the candidate's own clock, as client-go does

    def read(self):
        return self.conn.execute(
            "SELECT holder, lease_duration_seconds, acquire_time, renew_time, transitions, "
            "resource_version FROM bench_lease WHERE name = %s", (self.name,)).fetchone()

    def try_acquire_or_renew(self):
        now = time.time()
        record = self.read()
        if record is None:
            inserted = self.conn.execute(
                "INSERT INTO bench_lease (name, holder, lease_duration_seconds, acquire_time, "
                "renew_time, transitions) VALUES (%s, %s, %s, now(), now(), 0) "
                "ON CONFLICT (name) DO NOTHING", (self.name, self.me, self.lease_duration))
            if inserted.rowcount == 1:
                self.observed_record, self.observed_time = self.read(), now
            return inserted.rowcount == 1
        holder, duration, _, _, transitions, version = record
        if record != self.observed_record:
            self.observed_record, self.observed_time = record, now
        if holder and holder != self.me and self.observed_time + duration > now:
            return False                      # someone else's lease is still valid
        i_held_it = holder == self.me
        updated = self.conn.execute(
            "UPDATE bench_lease SET holder = %s, lease_duration_seconds = %s, "
            "acquire_time = CASE WHEN %s THEN acquire_time ELSE now() END, "
            "renew_time = now(), transitions = %s, resource_version = resource_version + 1 "
            "WHERE name = %s AND resource_version = %s",
            (self.me, self.lease_duration, i_held_it,
             transitions if i_held_it else transitions + 1, self.name, version))
        if updated.rowcount != 1:
            return False                      # a conflict: someone wrote first
        self.observed_record, self.observed_time = self.read(), now
        return True

    def release(self):
        self.conn.execute(
            "UPDATE bench_lease SET holder = '', lease_duration_seconds = 1, "
            "acquire_time = now(), renew_time = now(), resource_version = resource_version + 1 "
            "WHERE name = %s AND holder = %s", (self.name, self.me))


def jittered(period):
    """wait.Jitter(period, 1.2): client-go's pause between two tries."""
    return period + random.random() * 1.2 * period


def run_lease(conn, args):
    elector = LeaseElector(conn, args)
    say("READY", conn.info.backend_pid)
    while not elector.try_acquire_or_renew():
        time.sleep(jittered(args.retry))
    try:
        say("LEAD", time.time_ns(), elector.observed_record[4])
        last_renewal = time.monotonic()
        while True:
            time.sleep(args.retry)
            if elector.try_acquire_or_renew():
                last_renewal = time.monotonic()
            elif time.monotonic() - last_renewal > args.renew_deadline:
                say("LOST", time.time_ns())
                return
    except Stop:
        say("RELEASE", time.time_ns())
        elector.release()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("kind", choices=["leader", "advisory", "lease"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--group", default="bench")
    parser.add_argument("--ttl", type=float, default=15.0, help="leader: lease TTL, s")
    parser.add_argument("--poll", type=float, default=10.0, help="advisory: poll period, s")
    parser.add_argument("--lease-duration", type=float, default=15.0, help="lease: s")
    parser.add_argument("--renew-deadline", type=float, default=10.0, help="lease: s")
    parser.add_argument("--retry", type=float, default=2.0, help="lease: retry period, s")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    conn = psycopg.connect(args.dsn, autocommit=True,
                           application_name=f"bench-{args.kind}-{os.getpid()}")
    try:
        {"leader": run_leader, "advisory": run_advisory, "lease": run_lease}[args.kind](conn, args)
    except Stop:
        pass                                  # stopped before it led
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
