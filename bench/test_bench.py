"""
bench/test_bench.py: checks of the benchmark's own machinery, without running
a benchmark: the report's rows per wire protocol and of a partial run, the
installation that PG_CONFIG names, a server that does not start leaving
nothing behind, and the command lines of run.py and run.sh.

Run: /usr/bin/python3 -m unittest discover -s bench
(Debian's python3, which has psycopg, as run.sh uses; as any user: the check
of run.sh's PG_CONFIG needs root, as run.sh does, and is skipped otherwise)
"""
import os
import stat
import subprocess
import sys
import tempfile
import unittest

import report

HERE = os.path.dirname(os.path.abspath(__file__))
UNUSABLE_PG_CONFIG = "/nonexistent/pg_config"


def run_sh(*args, as_root=False):
    """
    bench/run.sh with an unusable PG_CONFIG, and as the OS user postgres unless
    as_root: a broken run.sh stops at its root check or at PG_CONFIG, and so
    never builds, installs or benchmarks anything.
    """
    argv = ["bash", os.path.join(HERE, "run.sh"), *args]
    if os.geteuid() == 0 and not as_root:
        argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + argv
    return subprocess.run(argv, env=dict(os.environ, PG_CONFIG=UNUSABLE_PG_CONFIG),
                          capture_output=True, text=True)


def pgbench_result(tps):
    return {"transactions": int(tps * 2), "latency_ms": round(4 / tps * 1000, 3),
            "tps": tps, "elapsed_s": 2.0}


def throughput_results(tps):
    """A throughput section from {protocol: {mode: {script: tps}}}, with its ratios."""
    runs = {protocol: {mode: {script: pgbench_result(value) for script, value in scripts.items()}
                       for mode, scripts in modes.items()}
            for protocol, modes in tps.items()}

    def ratio(protocol, mode, a, b):
        return round(tps[protocol][mode][a] / tps[protocol][mode][b], 3)

    return {
        "settings": {"clients": 4, "threads": 2, "seconds": 2, "pgbench": "-n",
                     "protocols": list(tps), "async_commit": "-c synchronous_commit=off"},
        "runs": runs,
        "ratios": {
            "renew_leader_vs_plain": dict(
                {p: {"durable": ratio(p, "durable", "renew_leader", "renew_plain"),
                     "async_commit": ratio(p, "async_commit", "renew_leader", "renew_plain")}
                 for p in tps}, target=1.0),
            "lose_leader_vs_advisory": dict(
                {p: {"durable": ratio(p, "durable", "lose_leader", "lose_advisory")}
                 for p in tps}, target=0.8),
        },
    }


# -M simple misses the losing target (0.7x), -M prepared the durable renewal one (0.9x).
TPS = {
    "simple": {"durable": {"renew_leader": 9000, "renew_plain": 8000, "lose_leader": 49000,
                           "lose_advisory": 70000, "select1": 89000},
               "async_commit": {"renew_leader": 24000, "renew_plain": 16000}},
    "prepared": {"durable": {"renew_leader": 9900, "renew_plain": 11000, "lose_leader": 69000,
                             "lose_advisory": 75000, "select1": 96000},
                 "async_commit": {"renew_leader": 38000, "renew_plain": 34000}},
}

LEADER_FAILOVER = {"crash": [4.0, 5.0, 6.0], "handover": [3.0, 4.0], "pg_leader": [3.5],
                   "partition": [2.5], "partition_expired_event": [2.4]}


def results(only, **sections):
    return dict({"date": "2026-12-03", "quick": True, "only": only, "elapsed_s": 75,
                 "machine": {"cpu": "2 × CPU", "memory_gib": 4, "kernel": "6.1",
                             "server": "postgres (PostgreSQL) 15"}}, **sections)


def target_rows(text):
    """{measure: met} of the table against the SPEC's targets."""
    section = text.split("#### Against the SPEC's targets")[1].split("####")[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0][2:]: cells[3].rstrip(" |") for cells in rows[1:]}


class ReportTest(unittest.TestCase):

    def test_throughput_targets_per_protocol(self):
        rows = target_rows(report.table(results(["throughput"],
                                                throughput=throughput_results(TPS))))
        renew = "renew throughput vs the plain-SQL lease upsert, same durability, "
        lose = "losing `leader_try_acquire` vs `pg_try_advisory_xact_lock`, "
        self.assertEqual(rows, {renew + "`-M simple`": "yes", renew + "`-M prepared`": "**no**",
                                lose + "`-M simple`": "**no**", lose + "`-M prepared`": "yes"})

    def test_throughput_table_per_protocol(self):
        text = report.throughput_table(results(["throughput"],
                                               throughput=throughput_results(TPS)))
        lines = text.splitlines()
        self.assertIn("| script | `-M simple` durable tps | `-M simple` synchronous_commit off "
                      "tps | `-M prepared` durable tps | `-M prepared` synchronous_commit off "
                      "tps |", lines)
        self.assertIn("| `renew_leader` | 9,000 | 24,000 | 9,900 | 38,000 |", lines)
        self.assertIn("| `lose_leader` | 49,000 | – | 69,000 | – |", lines)
        self.assertIn("| `renew_leader` / `renew_plain` | 1.125× | 1.5× | 0.9× | 1.118× |",
                      lines)
        self.assertIn("| `lose_leader` / `lose_advisory` | 0.7× | – | 0.92× | – |", lines)

    def test_partial_run_without_failover(self):
        r = results(["throughput"], throughput=throughput_results(TPS))
        with tempfile.TemporaryDirectory() as out:
            text = report.write(r, out)
            self.assertEqual(sorted(os.listdir(out)), ["RESULTS.md"])
        self.assertIn("whole run 1 min 15 s (quick mode: fewer trials; only throughput; not "
                      "for the record).", text)
        self.assertNotIn("Failover", text)
        self.assertFalse(any(m.startswith("crash") for m in target_rows(text)))

    def test_partial_run_of_leader_failover(self):
        r = results(["throughput", "failover"], throughput=throughput_results(TPS),
                    failover={"samples_ms": {report.LEADER: LEADER_FAILOVER}, "elapsed_s": 9})
        with tempfile.TemporaryDirectory() as out:
            text = report.write(r, out)
            self.assertEqual(sorted(os.listdir(out)), ["RESULTS.md", "failover.svg"])
        rows = target_rows(text)
        self.assertEqual(rows["crash failover: client process killed → a waiting candidate "
                              "leads"], "yes")
        self.assertEqual(rows["expiry precision: `expires_at` → `expired` event"], "yes")
        self.assertEqual(len(rows), 8)              # 3 failover, 1 expiry, 4 throughput
        self.assertIn("| leader | 5.00 ms / 6.00 ms / 6.00 ms / 6.00 ms (n=3) |", text)

    def test_crash_failover_target(self):
        slow = dict(LEADER_FAILOVER, crash=[4.0] * 98 + [60.0, 70.0])
        rows = target_rows(report.table(results(["failover"], failover={
            "samples_ms": {report.LEADER: slow}, "elapsed_s": 9})))
        self.assertEqual(rows["crash failover: client process killed → a waiting candidate "
                              "leads"], "**no**")


class InstallationTest(unittest.TestCase):

    def test_pg_config_names_the_binaries(self):
        """cluster.py runs the binaries of PG_CONFIG's installation, not PATH's."""
        with tempfile.TemporaryDirectory() as tmp:
            fake = os.path.join(tmp, "pg_config")
            with open(fake, "w") as f:
                f.write('#!/bin/sh\n[ "$1" = --bindir ] && echo /private/pg/bin\n')
            os.chmod(fake, stat.S_IRWXU)
            done = subprocess.run(
                [sys.executable, "-c", "import cluster; print(cluster.pg_bin('postgres'))"],
                cwd=HERE, env=dict(os.environ, PG_CONFIG=fake), capture_output=True,
                text=True, check=True)
        self.assertEqual(done.stdout.strip(), "/private/pg/bin/postgres")

    def test_a_server_that_does_not_start_leaves_nothing(self):
        """A failed initdb: the temporary directory is gone, the error reported."""
        with tempfile.TemporaryDirectory() as tmp:
            bindir = os.path.join(tmp, "bin")
            os.mkdir(bindir)
            for name, body in (("pg_config", f"echo {bindir}"), ("initdb", "exit 3"),
                               ("pg_ctl", "exit 1")):
                path = os.path.join(bindir, name)
                with open(path, "w") as f:
                    f.write(f"#!/bin/sh\n{body}\n")
                os.chmod(path, stat.S_IRWXU)
            scratch = os.path.join(tmp, "scratch")
            os.mkdir(scratch)
            done = subprocess.run(
                [sys.executable, "-c", "import cluster\nwith cluster.Cluster(): pass"],
                cwd=HERE, env=dict(os.environ, PG_CONFIG=os.path.join(bindir, "pg_config"),
                                   TMPDIR=scratch), capture_output=True, text=True)
            self.assertIn("returned non-zero exit status 3", done.stderr)
            self.assertEqual(os.listdir(scratch), [])

    @unittest.skipUnless(os.geteuid() == 0, "run.sh runs as root")
    def test_run_sh_rejects_an_unusable_pg_config(self):
        done = run_sh("--quick", as_root=True)
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("bench/run.sh: no working pg_config (set PG_CONFIG", done.stderr)


class CommandLineTest(unittest.TestCase):

    def run_py(self, *args):
        with tempfile.TemporaryDirectory() as out:
            # An unusable PG_CONFIG: a broken run.py fails before it starts a server.
            return subprocess.run([sys.executable, os.path.join(HERE, "run.py"), out, *args],
                                  env=dict(os.environ, PG_CONFIG=UNUSABLE_PG_CONFIG),
                                  capture_output=True, text=True)

    def test_only_rejects_an_unknown_part(self):
        done = self.run_py("--only", "throughput,failvoer")
        self.assertEqual(done.returncode, 2)
        self.assertIn("unknown part(s) failvoer; the parts are throughput, failover, "
                      "baselines, scale, bloat", done.stderr)

    def test_only_rejects_an_empty_list(self):
        done = self.run_py("--only", ",")
        self.assertEqual(done.returncode, 2)
        self.assertIn("no part named; the parts are", done.stderr)

    def test_run_sh_rejects_an_unknown_option(self):
        done = run_sh("--quik")
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("usage: bash bench/run.sh [--quick] [--only PART,...]", done.stderr)

    def test_run_sh_needs_a_list_after_only(self):
        done = run_sh("--only")
        self.assertEqual(done.returncode, 2, done.stderr)


if __name__ == "__main__":
    unittest.main()
