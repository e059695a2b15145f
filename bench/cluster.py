"""
bench/cluster.py: the throwaway PostgreSQL server every benchmark runs against.

Owns: which installation's binaries every benchmark runs (initdb, pg_ctl,
postgres, pgbench, pg_leader: those in the bindir of the pg_config that use()
was last given, else that the environment's PG_CONFIG names, else of
pg_config on PATH; run.py switches installations between versions), creating a data
directory in a temporary directory (initdb), its settings (the library
preloaded, TCP on 127.0.0.1 only, room for 1 100 connections and 1 000 000
groups, the server's default durability: fsync and synchronous_commit on),
starting and stopping it (and removing it again when it does not start), and
small helpers to connect and run SQL.  It runs as the OS user
that calls it (never root: PostgreSQL refuses to).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg

PG_CONFIG = os.environ.get("PG_CONFIG") or "pg_config"
PG_BINDIR = None                                   # PG_CONFIG's bindir, once asked for


def use(pg_config):
    """Runs the binaries of the installation that this pg_config names from now on."""
    global PG_CONFIG, PG_BINDIR
    PG_CONFIG = pg_config
    PG_BINDIR = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                               check=True).stdout.strip()


def pg_bin(name):
    if PG_BINDIR is None:
        use(PG_CONFIG)
    return os.path.join(PG_BINDIR, name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A server in a temporary directory; a context manager that removes it."""

    SETTINGS = {
        "shared_preload_libraries": "'leader'",
        "listen_addresses": "'127.0.0.1'",
        "max_connections": "1100",
        "shared_buffers": "256MB",
        "max_wal_size": "4GB",
        "logging_collector": "off",
        "log_min_messages": "warning",
        "leader.max_groups": "1000000",     # room for the scale benchmark's groups
    }

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="leader-bench-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.dsn = f"host=127.0.0.1 port={self.port} dbname=postgres"
        self.log = os.path.join(self.dir, "server.log")

    def __enter__(self):
        try:
            subprocess.run([pg_bin("initdb"), "-D", self.data, "-A", "trust", "-E", "UTF8",
                            "--locale=C.UTF-8", "--no-sync"], check=True,
                           stdout=subprocess.DEVNULL)
            with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
                conf.write(f"port = {self.port}\n")
                conf.write(f"unix_socket_directories = '{self.dir}'\n")
                for name, value in self.SETTINGS.items():
                    conf.write(f"{name} = {value}\n")
            self.start()
            self.sql("CREATE EXTENSION leader")
        except BaseException:
            self.__exit__()                        # no server or directory left behind
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        subprocess.run([pg_bin("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "start"],
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self):
        subprocess.run([pg_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def connect(self, **kwargs):
        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def sql(self, query, params=None):
        """Runs one statement on a new connection; returns its rows (or None)."""
        with self.connect() as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def value(self, query, params=None):
        return self.sql(query, params)[0][0]

    def worker_pid(self):
        """The pid of this database's leader worker, waiting until it runs."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = self.sql("SELECT pid FROM pg_stat_activity "
                            "WHERE backend_type = 'leader worker' "
                            "AND datname = current_database()")
            if rows:
                return rows[0][0]
            time.sleep(0.05)
        raise RuntimeError("the leader worker did not start")
