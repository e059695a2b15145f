"""
bench/scale.py: leader with many groups and many waiters.

Owns two measurements:
  idle groups  the worker's CPU time and the expiry precision (expires_at to
               the "expired" event reaching a listener) while leases expire
               continuously (one group acquired every 10 ms with a 1 s TTL,
               about 100 expiries a second), first beside 1 000 idle groups
               (held by a named holder for a day, nothing happening to them),
               then beside 100 000; the worker's cost must not grow with them;
  waiters      1 000 sessions wait in leader_acquire on one group; the leader
               releases, the time until one of them leads is recorded, and
               every term must have exactly one winner (checked from the
               winners' reports and from the "acquired" events).
Run alone: python3 bench/scale.py [--quick]  (JSON on stdout).
"""
import json
import os
import queue
import resource
import sys
import threading
import time

import psycopg

from cluster import Cluster
from failover import Listener, timestamp_ns
from stats import percentiles

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def add_idle_groups(cluster, first, last):
    with cluster.connect() as conn:
        conn.execute("SELECT count(leader_try_acquire('idle-' || g, '1 day', 'idle')) "
                     "FROM generate_series(%s::int, %s::int) g", (first, last))


def expiry_churn(cluster, listener, seconds):
    """Leases expiring continuously; the worker's CPU use and the events' delay."""
    worker = cluster.worker_pid()
    groups = 200
    with cluster.connect() as conn:
        while not listener.events.empty():        # forget the set-up's events
            listener.events.get()
        cpu_before, started = cpu_seconds(worker), time.monotonic()
        i = 0
        while time.monotonic() - started < seconds:
            conn.execute("SELECT leader_try_acquire(%s, '1 s', 'churn')", (f"churn-{i % groups}",))
            i += 1
            time.sleep(0.01)
        time.sleep(1.5)                            # the last leases expire
        cpu = cpu_seconds(worker) - cpu_before
        elapsed = time.monotonic() - started
    delays = []
    while not listener.events.empty():
        arrived, event = listener.events.get()
        if event["event"] == "expired" and event["group"].startswith("churn-"):
            delays.append((arrived - timestamp_ns(event["expires_at"])) / 1e6)
    return {"acquisitions": i, "expired_events": len(delays),
            "worker_cpu_ms_per_s": round(cpu * 1000 / elapsed, 2),
            "worker_cpu_us_per_expiry": round(cpu * 1e6 / max(len(delays), 1), 1),
            "expiry_delay_ms": percentiles(delays)}


def idle_groups(cluster, quick):
    listener = Listener(cluster)
    seconds = 5 if quick else 20
    add_idle_groups(cluster, 1, 1000)
    small = expiry_churn(cluster, listener, seconds)
    add_idle_groups(cluster, 1001, 100000)
    time.sleep(2)                                  # the worker has taken in the new leases
    large = expiry_churn(cluster, listener, seconds)
    return {"with_1000_idle": small, "with_100000_idle": large,
            "cpu_ratio_100000_to_1000": round(large["worker_cpu_ms_per_s"] /
                                              max(small["worker_cpu_ms_per_s"], 0.01), 2)}


class Waiter(threading.Thread):
    """A session that waits in leader_acquire, reports each win, releases when told."""

    def __init__(self, cluster, group, wins, ready):
        super().__init__(daemon=True)
        self.cluster, self.group, self.wins, self.ready = cluster, group, wins, ready
        self.may_release = threading.Event()

    def run(self):
        try:
            self.lead_when_elected()
        except psycopg.OperationalError:
            pass                                   # the server stopped at the end

    def lead_when_elected(self):
        with self.cluster.connect() as conn:
            self.ready.put(self)
            while True:
                conn.execute("SELECT leader_acquire(%s, NULL, '1 hour')", (self.group,))
                led = time.time_ns()
                term = conn.execute("SELECT leader_term(%s)", (self.group,)).fetchone()[0]
                self.wins.put((self, term, led))
                self.may_release.wait()
                self.may_release.clear()
                self.released_at = time.time_ns()
                conn.execute("SELECT leader_release(%s)", (self.group,))


def many_waiters(cluster, quick):
    sessions, rounds = (100, 10) if quick else (1000, 50)
    # A thousand connections in one process: room for their descriptors, and
    # psycopg must wait with epoll, since select() cannot watch those above 1024.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * sessions), hard))
    psycopg.waiting.wait = psycopg.waiting.wait_epoll
    group = "herd"
    listener = Listener(cluster)
    wins, ready = queue.Queue(), queue.Queue()
    for _ in range(sessions):
        Waiter(cluster, group, wins, ready).start()
    for _ in range(sessions):
        ready.get(timeout=120)
    deadline = time.monotonic() + 120              # all of them are in leader_acquire
    while cluster.value("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                        "AND query LIKE 'SELECT leader_acquire%%'") < sessions - 1:
        if time.monotonic() > deadline:
            raise TimeoutError("the waiters did not all start waiting")
        time.sleep(0.1)
    leader, term, _ = wins.get(timeout=30)
    terms, latencies, extra_winners = [term], [], 0
    for _ in range(rounds):
        time.sleep(0.2)                            # the losers are back asleep
        leader.may_release.set()
        winner, term, led = wins.get(timeout=30)
        latencies.append((led - leader.released_at) / 1e6)
        terms.append(term)
        time.sleep(0.05)
        extra_winners += wins.qsize()              # nobody else may have won meanwhile
        leader = winner
    acquired = {}
    time.sleep(0.5)
    while not listener.events.empty():
        _, event = listener.events.get()
        if event["group"] == group and event["event"] == "acquired":
            acquired[event["term"]] = acquired.get(event["term"], 0) + 1
    return {"sessions": sessions, "rounds": rounds,
            "handover_ms": percentiles(latencies),
            "terms_strictly_increasing": all(b > a for a, b in zip(terms, terms[1:])),
            "extra_winners": extra_winners,
            "acquired_events_per_term_all_one": all(acquired.get(t) == 1 for t in terms)}


def run(cluster, quick=False):
    started = time.monotonic()
    out = {"idle_groups": idle_groups(cluster, quick),
           "waiters": many_waiters(cluster, quick)}
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    return out


if __name__ == "__main__":
    with Cluster() as c:
        print(json.dumps(run(c, quick="--quick" in sys.argv), indent=1))
