"""
bench/failover.py: how long a group goes without a leader, for leader and for
the elections users run today, in one run.

Owns the failover trials.  Each trial is one link of a chain: a leader runs,
a fresh candidate starts and waits, the leader is hit, and the time until the
candidate says it leads is recorded; the candidate then leads the next trial.
  crash      the leader's client process gets SIGKILL; measured from the kill
  handover   the leader stops gracefully (SIGTERM: it releases); measured from
             the moment it starts releasing
  pg_leader  leader only: the leader is "pg_leader run", which gets SIGTERM
             (it stops its command, then releases); measured from the signal
  partition  the leader's client is frozen with SIGSTOP past its TTL; measured
             from the lease's expires_at (and, for leader, also until the
             "expired" event reaches a listener)
The candidates are bench/candidate.py processes.  For the pollers the hit
comes at a random moment of their poll cycle, as it would in production.
leader's trials run first, alone; the baselines' after them, side by side
with each other.  Either can run without the other (bench/run.py's --only
failover, --only baselines).
Run alone: python3 bench/failover.py [--quick]  (JSON on stdout).
"""
import datetime
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import candidate
from cluster import Cluster, pg_bin

HERE = os.path.dirname(os.path.abspath(__file__))


class Candidate:
    """A running candidate process and the lines it printed."""

    def __init__(self, argv, stderr=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                     start_new_session=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.split())

    def expect(self, word, timeout):
        """The fields of the next line starting with word (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {word} from pid {self.proc.pid} within {timeout} s")
            try:
                fields = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if fields and fields[0] == word:
                return fields[1:]

    def signal(self, signum):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def end(self):
        """SIGKILL if still running (SIGCONT first, in case it is frozen), and reap."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self.proc.wait()


class Listener:
    """LISTEN leader_changed on its own connection; events stamped on arrival."""

    def __init__(self, cluster):
        self.conn = cluster.connect()
        self.conn.execute("LISTEN leader_changed")
        self.events = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for notify in self.conn.notifies():
                self.events.put((time.time_ns(), json.loads(notify.payload)))
        except Exception:
            pass                                  # the server stopped

    def expect(self, group, event, term, timeout):
        """Arrival time (ns) and payload of that event of that term of that group."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                arrived, payload = self.events.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                break
            if (payload["group"], payload["event"], payload["term"]) == (group, event, term):
                return arrived, payload
        raise TimeoutError(f"no {event} event for term {term} of {group}")


def timestamp_ns(iso):
    return int(datetime.datetime.fromisoformat(iso).timestamp() * 1e6) * 1000


def ms(ns):
    return ns / 1e6


class System:
    """One election system at one setting: how to start its candidates."""

    def __init__(self, name, kind, options, lease_seconds, poll_seconds):
        self.name, self.kind, self.options = name, kind, options
        self.lease_seconds = lease_seconds    # how long a frozen leader keeps it
        self.poll_seconds = poll_seconds      # its candidates' poll period, 0: woken

    def start(self, cluster, group):
        return Candidate([sys.executable, os.path.join(HERE, "candidate.py"), self.kind,
                          "--dsn", cluster.dsn, "--group", group] + self.options)

    def random_phase(self):
        """Sleep a random part of a poll period, so a hit lands anywhere in it."""
        time.sleep(random.uniform(0, self.poll_seconds * 2.2 if self.kind == "lease"
                                  else self.poll_seconds) + 0.01)


def wait_until_waiting(cluster, system, backend_pid):
    """Return once the new candidate is waiting for the lease."""
    if system.kind != "leader":
        time.sleep(system.poll_seconds * (1.5 if system.kind == "lease" else 0.1))
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if cluster.value("SELECT count(*) FROM pg_stat_activity WHERE pid = %s "
                         "AND state = 'active' AND query LIKE 'SELECT leader_acquire%%'",
                         (backend_pid,)):
            return
        time.sleep(0.002)
    raise TimeoutError("the candidate never started waiting")


def chain(cluster, system, scenario, trials, group, listener=None):
    """Runs trials of one scenario; returns the samples (ms) by measure."""
    samples = {"to_leader": []}
    if scenario == "partition" and system.kind == "leader":
        samples["to_expired_event"] = []
    leader = system.start(cluster, group)
    leader_led = leader.expect("LEAD", 60)
    try:
        for _ in range(trials):
            waiter = system.start(cluster, group)
            wait_until_waiting(cluster, system, int(waiter.expect("READY", 30)[0]))
            system.random_phase()
            if scenario == "crash":
                hit = time.time_ns()
                leader.signal(signal.SIGKILL)
                led = waiter.expect("LEAD", system.lease_seconds * 3 + 30)
            elif scenario == "handover":
                leader.signal(signal.SIGTERM)
                hit = int(leader.expect("RELEASE", 10)[0])
                led = waiter.expect("LEAD", system.poll_seconds * 3 + 30)
            else:
                leader.signal(signal.SIGSTOP)
                expires_at = frozen_lease_expiry(cluster, system, group)
                led = waiter.expect("LEAD", system.lease_seconds * 3 + 30)
                hit = expires_at
                if system.kind == "leader":
                    arrived, _ = listener.expect(group, "expired", int(leader_led[1]), 10)
                    samples["to_expired_event"].append(ms(arrived - expires_at))
            samples["to_leader"].append(ms(int(led[0]) - hit))
            leader.end()
            leader, leader_led = waiter, led
    finally:
        leader.end()
    return samples


def frozen_lease_expiry(cluster, system, group):
    """When the frozen leader's lease runs out (ns), as the store records it."""
    if system.kind == "leader":
        row = cluster.sql("SELECT extract(epoch FROM expires_at)::numeric * 1000000 "
                          "FROM leader_lease WHERE group_name = %s", (group,))
    else:
        row = cluster.sql("SELECT extract(epoch FROM renew_time + lease_duration_seconds "
                          "* interval '1 s')::numeric * 1000000 FROM bench_lease WHERE name = %s",
                          (group,))
    return int(row[0][0]) * 1000


def partition_without_failover(cluster, system, group, cap_seconds):
    """Advisory locks: a frozen leader's session keeps its lock; nobody takes over."""
    leader = system.start(cluster, group)
    leader.expect("LEAD", 60)
    waiter = system.start(cluster, group)
    waiter.expect("READY", 30)
    leader.signal(signal.SIGSTOP)
    try:
        waiter.expect("LEAD", cap_seconds)
        took_over = True
    except TimeoutError:
        took_over = False
    waiter.end()
    leader.end()
    return {"took_over_within_s": cap_seconds if took_over else None, "cap_s": cap_seconds}


def pg_leader_chain(cluster, trials, group):
    """A leading "pg_leader run" gets SIGTERM; time until a waiting candidate leads."""
    argv = [pg_bin("pg_leader"), "run", "-d", cluster.dsn, "--group", group, "--ttl", "15s",
            "--", "sh", "-c", "echo LEAD 0 $LEADER_TERM; exec sleep 100000"]
    samples = []
    for _ in range(trials):
        leader = Candidate(argv, stderr=subprocess.DEVNULL)
        leader.expect("LEAD", 60)
        waiter = LEADER.start(cluster, group)
        try:
            wait_until_waiting(cluster, LEADER, int(waiter.expect("READY", 30)[0]))
            time.sleep(random.uniform(0, 0.05))
            hit = time.time_ns()
            leader.signal(signal.SIGTERM)
            samples.append(ms(int(waiter.expect("LEAD", 30)[0]) - hit))
            leader.proc.wait(timeout=30)
            waiter.signal(signal.SIGTERM)
            waiter.expect("RELEASE", 10)
            waiter.proc.wait(timeout=30)
        finally:
            leader.end()
            waiter.end()
    return samples


# name, kind, options, lease (s), poll (s)
LEADER = System("leader", "leader", ["--ttl", "15"], 15, 0)
LEADER_PARTITION = System("leader (ttl 1 s)", "leader", ["--ttl", "1"], 1, 0)
BASELINES = [
    System("advisory-lock poller, 10 s (default)", "advisory", ["--poll", "10"], 0, 10),
    System("client-go lease 15 s / retry 2 s (default)", "lease",
           ["--lease-duration", "15", "--renew-deadline", "10", "--retry", "2"], 15, 2),
    System("advisory-lock poller, 1 s (tuned)", "advisory", ["--poll", "1"], 0, 1),
    System("client-go lease 2 s / retry 0.5 s (tuned)", "lease",
           ["--lease-duration", "2", "--renew-deadline", "1.5", "--retry", "0.5"], 2, 0.5),
]


def baseline_trials(system, quick):
    """Fewer trials where a failover takes seconds (they take long)."""
    slow = system.poll_seconds >= 2 or system.lease_seconds >= 15
    if quick:
        return 2
    return 12 if slow else 40


def run_baseline(cluster, system, index, quick, results):
    group = f"baseline-{index}"
    trials = baseline_trials(system, quick)
    out = {"crash": chain(cluster, system, "crash", trials, group)["to_leader"],
           "handover": chain(cluster, system, "handover", trials, group)["to_leader"]}
    if system.kind == "lease":
        out["partition"] = chain(cluster, system, "partition", max(trials // 4, 1),
                                 group)["to_leader"]
    else:
        out["partition_without_failover"] = partition_without_failover(
            cluster, system, group + "-frozen", 6 if quick else int(system.poll_seconds * 3))
    results[system.name] = out


def run_leader(cluster, quick):
    """leader's trials, one scenario after the other, alone on the machine."""
    listener = Listener(cluster)
    trials = 10 if quick else 200
    samples = {
        "crash": chain(cluster, LEADER, "crash", trials, "failover")["to_leader"],
        "handover": chain(cluster, LEADER, "handover", trials, "failover")["to_leader"],
        "pg_leader": pg_leader_chain(cluster, trials, "failover-pg-leader"),
    }
    partition = chain(cluster, LEADER_PARTITION, "partition", 5 if quick else 50,
                      "failover-partition", listener)
    samples["partition"] = partition["to_leader"]
    samples["partition_expired_event"] = partition["to_expired_event"]
    return samples


def run_baselines(cluster, quick):
    """The baselines' trials: seconds each, idle meanwhile, so side by side."""
    cluster.sql(candidate.LEASE_TABLE)
    results = {}
    threads = [threading.Thread(target=run_baseline, args=(cluster, s, i, quick, results))
               for i, s in enumerate(BASELINES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    missing = [s.name for s in BASELINES if s.name not in results]
    if missing:
        raise RuntimeError(f"baseline trials failed: {missing}")
    return {s.name: results[s.name] for s in BASELINES}


def run(cluster, quick=False, leader=True, baselines=True):
    """
    The failover trials of leader, then of the baselines (either alone when the
    other is False); returns samples in milliseconds, by system and scenario.
    """
    started = time.monotonic()
    samples = {}
    if leader:
        samples[LEADER.name] = run_leader(cluster, quick)
    if baselines:
        samples.update(run_baselines(cluster, quick))
    return {"samples_ms": samples, "elapsed_s": round(time.monotonic() - started, 1)}


if __name__ == "__main__":
    with Cluster() as c:
        print(json.dumps(run(c, quick="--quick" in sys.argv), indent=1))
