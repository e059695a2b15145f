"""
test/faults/run.py: the fault-injection run, in the style of the Jepsen
analyses of etcd and Consul, on one machine, against real servers over TCP.

Owns the run: a throwaway primary with leader preloaded and a streaming
standby (synchronous, so that a promotion loses no acknowledged commit);
candidate clients of three kinds (session-bound, named holders, and
"pg_leader run" with a writer command) competing for a few groups and
appending fenced records to a ledger while they believe they lead; a
listener recording every event and ledger commit in commit order; faults
from a seeded schedule; then a quiet period in which every group must get
a leader again; and the checker's verdict (checker.py).

Usage: python3 test/faults/run.py [--seed N] [--duration S] [--clients N]
           [--groups N] [--faults kind,...] [--bindir DIR] [--expect-violation]
Exit status 0 when the checker finds no violation (with --expect-violation:
when it finds one), 1 otherwise.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

import checker

HERE = os.path.dirname(os.path.abspath(__file__))

LEDGER = """
CREATE TABLE ledger (
    id bigserial PRIMARY KEY,
    grp text NOT NULL,
    term bigint NOT NULL,
    seq integer NOT NULL,
    client text NOT NULL,
    fenced_at timestamptz NOT NULL,
    lease_expires_at timestamptz
)"""

# kind: relative weight in the schedule
FAULT_WEIGHTS = {"kill_client": 3, "stop_client": 3, "terminate_leader": 2,
                 "discard_leader": 2, "restart_server": 1, "crash_server": 1,
                 "kill_worker": 1, "promote_standby": 0}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One PostgreSQL server in the run's directory."""

    def __init__(self, name, root, bindir):
        self.name, self.root, self.bindir = name, root, bindir
        self.data = os.path.join(root, name)
        self.port = free_port()
        self.log = os.path.join(root, f"{name}.log")

    def ctl(self, *args, check=True):
        return subprocess.run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                               "-l", self.log, "-w", "-t", "60", *args],
                              check=check, stdout=subprocess.DEVNULL)

    def configure(self, settings):
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            for name, value in settings.items():
                conf.write(f"{name} = {value}\n")

    def init_primary(self):
        subprocess.run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-A", "trust",
                        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], check=True,
                       stdout=subprocess.DEVNULL)
        self.configure({"port": self.port, "listen_addresses": "'127.0.0.1'",
                        "unix_socket_directories": f"'{self.root}'",
                        "shared_preload_libraries": "'leader'",
                        "track_commit_timestamp": "on",
                        "wal_keep_size": "'256MB'", "max_connections": "200",
                        "log_min_messages": "warning"})

    def init_standby(self, primary):
        subprocess.run([os.path.join(self.bindir, "pg_basebackup"), "-D", self.data, "-h",
                        "127.0.0.1", "-p", str(primary.port), "-X", "stream", "-R",
                        "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        self.configure({"port": self.port})

    def dsn(self):
        return f"host=127.0.0.1 port={self.port} dbname=postgres"

    def sql(self, query, params=None):
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None


class Listener(threading.Thread):
    """Every leader_changed event and ledger commit, in commit order, with
    the times it was not listening (its gaps)."""

    def __init__(self, dsn):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.events, self.gaps = [], []
        self.stopping = False

    def record(self, notify):
        """One notification, whichever way it came: those that arrive while a
        statement runs go to the connection's handler, the others to the
        notifies() loop."""
        payload = json.loads(notify.payload)
        if payload.get("stop"):
            self.stopping = True
            return
        channel = "marker" if "marker" in payload else notify.channel
        self.events.append({"t": time.time(), "channel": channel, **payload})

    def run(self):
        gap_start = time.time()
        while not self.stopping:
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=2) as conn:
                    conn.add_notify_handler(self.record)
                    reconnected = {"t": time.time(), "channel": "reconnected", "leases": {}}
                    self.events.append(reconnected)
                    conn.execute("LISTEN leader_changed")
                    conn.execute("LISTEN ledger")
                    self.gaps.append((gap_start, time.time()))
                    # Where every lease stands now, between two markers in the
                    # commit-ordered stream: what commits before the first is in
                    # the reading, what commits after the second is not.
                    conn.execute("SELECT pg_notify('ledger', '{\"marker\": \"before\"}')")
                    reconnected["leases"] = {
                        g: [t, h] for g, t, h in conn.execute(
                            "SELECT group_name, term, holder IS NOT NULL FROM leader_lease")}
                    conn.execute("SELECT pg_notify('ledger', '{\"marker\": \"after\"}')")
                    for notify in conn.notifies():
                        self.record(notify)
                        if self.stopping:
                            return
            except psycopg.Error:
                gap_start = time.time()
                time.sleep(0.1)


class Client:
    """One candidate process, restarted when it exits until the run ends."""

    def __init__(self, number, kind, group, run):
        self.id, self.kind, self.group, self.run = number, kind, group, run
        self.name = f"client-{number}"
        self.log = os.path.join(run.root, f"{self.name}.jsonl")
        self.proc = None
        self.stopped_until = 0.0

    def argv(self):
        common = ["--id", str(self.id), "--dsn", self.run.dsn, "--log", self.log,
                  "--work-ms", str(self.run.args.work_ms)]
        client = [sys.executable, os.path.join(HERE, "client.py")]
        if self.kind == "pg_leader":
            return [os.path.join(self.run.args.bindir, "pg_leader"), "run", "-d", self.run.dsn,
                    "--group", self.group, "--ttl", f"{self.run.args.ttl}s", "--rejoin",
                    "--grace", "1s", "--", *client, "--writer", *common]
        return [*client, "--kind", self.kind, "--group", self.group,
                "--ttl", str(self.run.args.ttl), *common]

    def start(self):
        env = dict(os.environ, PGAPPNAME=self.name, PGCONNECT_TIMEOUT="2")
        with open(self.log + ".stderr", "a") as stderr:
            self.proc = subprocess.Popen(self.argv(), env=env, stdout=subprocess.DEVNULL,
                                         stderr=stderr)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum):
        if self.alive():
            os.kill(self.proc.pid, signum)


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.root = tempfile.mkdtemp(prefix="leader-faults-")
        os.chmod(self.root, 0o700)
        self.primary = Server("primary", self.root, args.bindir)
        self.standby = Server("standby", self.root, args.bindir)
        self.current = self.primary
        self.dsn = (f"host=127.0.0.1,127.0.0.1 port={self.primary.port},{self.standby.port} "
                    "dbname=postgres target_session_attrs=read-write")
        self.groups = [f"group-{g}" for g in range(args.groups)]
        kinds = ["session", "named", "pg_leader"]
        self.clients = [Client(i, kinds[(i // args.groups) % 3], self.groups[i % args.groups], self)
                        for i in range(args.clients)]
        self.faults = []
        self.ending = False
        self.lock = threading.Lock()

    # ---- set-up and teardown ----

    def start_servers(self):
        self.primary.init_primary()
        self.primary.ctl("start")
        self.primary.sql("CREATE EXTENSION leader")
        self.primary.sql(LEDGER)
        self.standby.init_standby(self.primary)
        self.standby.ctl("start")
        # From now on a commit returns once the standby has it: a promotion loses none.
        self.primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.primary.sql("SELECT pg_reload_conf()")

    def stop_servers(self):
        for server in (self.primary, self.standby):
            if os.path.exists(os.path.join(server.data, "postmaster.pid")):
                server.ctl("stop", "-m", "immediate", check=False)

    def supervise(self):
        """Restart clients that exited (killed, or pg_leader giving up)."""
        while not self.ending:
            for client in self.clients:
                if not client.alive() and not self.ending:
                    client.start()
            time.sleep(0.3)

    # ---- faults ----

    def leaders(self):
        """group -> (term, holder, pid) of the held leases, read from the current primary."""
        rows = self.current.sql("SELECT group_name, term, holder, pid FROM leader_status "
                                "WHERE state = 'held'")
        return {g: (t, h, p) for g, t, h, p in rows}

    def leading_client(self, group, info):
        term, holder, pid = info
        for client in self.clients:
            if client.group != group:
                continue
            if holder == f"named-{client.id}" or (holder or "").startswith(client.name + " "):
                return client
        return None

    def pick_leader(self, kinds):
        """A client that now leads, of one of these kinds, with its group and term."""
        try:
            leaders = self.leaders()
        except psycopg.Error:
            return None
        choices = []
        for group, info in sorted(leaders.items()):
            client = self.leading_client(group, info)
            if client is not None and client.kind in kinds and client.alive():
                choices.append((client, group, info))
        return self.rng.choice(choices) if choices else None

    def inject(self, kind):
        ttl = self.args.ttl
        record = {"t": time.time(), "kind": kind}
        if kind in ("kill_client", "stop_client"):
            picked = self.pick_leader(("session", "named", "pg_leader"))
            client = picked[0] if picked and self.rng.random() < 0.7 else self.rng.choice(self.clients)
            record.update(client=client.name, group=client.group)
            if picked and picked[0] is client:
                record["term"] = picked[2][0]
            if kind == "kill_client":
                client.signal(signal.SIGKILL)
            else:
                seconds = self.rng.uniform(1.5, 3.0) * ttl
                record["seconds"] = round(seconds, 2)
                client.signal(signal.SIGSTOP)
                threading.Timer(seconds, client.signal, (signal.SIGCONT,)).start()
        elif kind in ("terminate_leader", "discard_leader"):
            picked = self.pick_leader(("session", "pg_leader") if kind == "terminate_leader"
                                      else ("session",))
            if picked is None:
                return None
            client, group, (term, _, pid) = picked
            record.update(client=client.name, group=group, term=term)
            if kind == "terminate_leader":
                self.current.sql("SELECT pg_terminate_backend(%s)", (pid,))
            else:
                client.signal(signal.SIGUSR1)
        elif kind == "restart_server":
            self.current.ctl("restart", "-m", "fast")
        elif kind == "crash_server":
            self.current.ctl("stop", "-m", "immediate")
            self.current.ctl("start")
        elif kind == "kill_worker":
            rows = self.current.sql("SELECT pid FROM pg_stat_activity "
                                    "WHERE backend_type = 'leader worker'")
            if not rows:
                return None
            os.kill(rows[0][0], signal.SIGKILL)
            record["pid"] = rows[0][0]
        elif kind == "promote_standby":
            self.primary.ctl("stop", "-m", "immediate")
            self.standby.ctl("promote")
            self.current = self.standby
        record["done"] = time.time()
        return record

    def schedule(self):
        kinds = [k for k in self.args.faults if FAULT_WEIGHTS.get(k, 1) > 0]
        weights = [FAULT_WEIGHTS[k] for k in kinds]
        promote_at = (time.monotonic() + self.args.duration * 0.6
                      if "promote_standby" in self.args.faults else None)
        end = time.monotonic() + self.args.duration
        while time.monotonic() < end:
            time.sleep(self.rng.uniform(1.0, 3.0))
            if promote_at is not None and time.monotonic() >= promote_at:
                kind, promote_at = "promote_standby", None
            elif kinds:
                kind = self.rng.choices(kinds, weights)[0]
            else:
                continue
            try:
                record = self.inject(kind)
            except (psycopg.Error, subprocess.CalledProcessError) as error:
                record = {"t": time.time(), "kind": kind, "failed": str(error)}
            if record:
                self.faults.append(record)
                print(f"fault: {json.dumps(record)}", file=sys.stderr, flush=True)

    # ---- the end ----

    def wait_for_leaders(self):
        """Seconds until every group has a leader again (None if not within the bound)."""
        for client in self.clients:
            client.signal(signal.SIGCONT)
        quiet = time.time()
        deadline = time.monotonic() + self.args.recovery_bound
        while time.monotonic() < deadline:
            try:
                if set(self.leaders()) == set(self.groups):
                    return round(time.time() - quiet, 2)
            except psycopg.Error:
                pass
            time.sleep(0.05)
        return None

    def collect_ledger(self):
        return [dict(zip(("id", "group", "term", "seq", "client", "fenced_at",
                          "lease_expires_at", "committed_at"), row))
                for row in self.current.sql(
                    "SELECT id, grp, term, seq, client, extract(epoch FROM fenced_at)::float8, "
                    "extract(epoch FROM lease_expires_at)::float8, "
                    "extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 FROM ledger")]

    def server_crashes(self):
        """Server processes that died of a signal the run did not send (it only
        sends SIGKILL), from the servers' logs."""
        crashes = []
        for server in (self.primary, self.standby):
            if os.path.exists(server.log):
                with open(server.log, errors="replace") as f:
                    crashes += [line.strip() for line in f
                                if "terminated by signal" in line
                                and "terminated by signal 9:" not in line]
        return crashes

    def client_logs(self):
        ops = []
        for client in self.clients:
            if os.path.exists(client.log):
                with open(client.log) as f:
                    ops += [json.loads(line) for line in f if line.strip()]
        return ops

    def execute(self):
        self.start_servers()
        listener = Listener(self.dsn)
        listener.start()
        supervisor = threading.Thread(target=self.supervise, daemon=True)
        supervisor.start()
        time.sleep(2)
        self.schedule()
        recovered_in = self.wait_for_leaders()
        time.sleep(self.args.ttl)               # everyone writes a little in peace
        self.ending = True
        supervisor.join()
        for client in self.clients:
            client.signal(signal.SIGCONT)
            client.signal(signal.SIGTERM)
        for client in self.clients:
            if client.proc is not None:
                try:
                    client.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    client.signal(signal.SIGKILL)
                    client.proc.wait()
        self.current.sql("SELECT pg_notify('ledger', '{\"stop\": true}')")
        listener.stopping = True
        listener.join(timeout=10)
        history = {"ledger": self.collect_ledger(), "events": listener.events,
                   "gaps": listener.gaps, "ops": self.client_logs(), "faults": self.faults,
                   "crashes": self.server_crashes(),
                   "ttl": self.args.ttl, "recovered_in": recovered_in,
                   "recovery_bound": self.args.recovery_bound}
        with open(os.path.join(self.root, "history.json"), "w") as f:
            json.dump(history, f)
        return checker.check(**history)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=60, help="seconds of faults")
    parser.add_argument("--clients", type=int, default=9)
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=2.0, help="the clients' lease TTL, s")
    parser.add_argument("--work-ms", type=float, default=20,
                        help="time each fenced write spends inside its transaction")
    parser.add_argument("--faults", default=",".join(FAULT_WEIGHTS),
                        help="kinds of fault to inject, comma-separated")
    parser.add_argument("--recovery-bound", type=float, default=15,
                        help="seconds within which every group must have a leader after the faults")
    parser.add_argument("--bindir", default=subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
    parser.add_argument("--expect-violation", action="store_true",
                        help="succeed only if the checker finds a violation (planted bug)")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    args = parser.parse_args()
    args.faults = [k for k in args.faults.split(",") if k]
    unknown = set(args.faults) - set(FAULT_WEIGHTS)
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # clean up on a timeout
    run = Run(args)
    print(f"faults: seed {args.seed}, {args.duration:g} s, {args.clients} clients, "
          f"{args.groups} groups, ttl {args.ttl:g} s; directory {run.root}", file=sys.stderr)
    try:
        verdict = run.execute()
    finally:
        run.ending = True
        for client in run.clients:
            client.signal(signal.SIGCONT)
            client.signal(signal.SIGKILL)
        run.stop_servers()
        if not args.keep:
            shutil.rmtree(run.root, ignore_errors=True)
    print(checker.report(verdict))
    found = len(verdict["violations"]) > 0
    return 0 if found == args.expect_violation else 1


if __name__ == "__main__":
    sys.exit(main())
