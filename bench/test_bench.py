"""
bench/test_bench.py: checks of the benchmark's own machinery, without running
a benchmark: the report's rows per wire protocol and of a partial run, of two
PostgreSQL versions side by side (and of a results.json from before there
were runs), the installation that PG_CONFIG names, a server that does not
start leaving nothing behind, the baselines on the first version only, and
the command lines of run.py and run.sh (--pg among them).

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
import run

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


# A baseline's samples, as failover.py records a poller's.
POLLER_FAILOVER = {"crash": [900.0, 5000.0], "handover": [800.0, 4000.0],
                   "partition_without_failover": {"cap_s": 30, "took_over_within_s": None}}
POLLER = "advisory-lock poller, 10 s (default)"
SERVER_15 = "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
SERVER_18 = "postgres (PostgreSQL) 18.1"


def a_run(server=SERVER_15, elapsed_s=75, **sections):
    return dict({"server": server, "parts": [name for name in run.PARTS if name in sections],
                 "elapsed_s": elapsed_s}, **sections)


def results(only, *more_runs, **sections):
    """A results.json: one run of these sections on PostgreSQL 15, then more_runs."""
    first = a_run(**sections)
    return {"date": "2026-12-03", "quick": True, "only": only,
            "elapsed_s": sum(r["elapsed_s"] for r in (first, *more_runs)),
            "machine": {"cpu": "2 × CPU", "memory_gib": 4, "kernel": "6.1"},
            "runs": [first, *more_runs]}


def target_table(text):
    """The table against the SPEC's targets: its header's cells, then {measure: cells}."""
    section = text.split("#### Against the SPEC's targets")[1].split("####")[0]
    rows = [line[2:-2].split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return rows[0], {cells[0]: cells[1:] for cells in rows[1:]}


def target_rows(text):
    """{measure: met} of the table against the SPEC's targets of one run."""
    return {measure: cells[2] for measure, cells in target_table(text)[1].items()}


class ReportTest(unittest.TestCase):

    def test_one_version_has_one_measured_column(self):
        header = target_table(report.table(results(["throughput"],
                                                   throughput=throughput_results(TPS))))[0]
        self.assertEqual(header, ["measure", "target", "measured", "met"])

    def test_throughput_targets_per_protocol(self):
        rows = target_rows(report.table(results(["throughput"],
                                                throughput=throughput_results(TPS))))
        renew = "renew throughput vs the plain-SQL lease upsert, same durability, "
        lose = "losing `leader_try_acquire` vs `pg_try_advisory_xact_lock`, "
        self.assertEqual(rows, {renew + "`-M simple`": "yes", renew + "`-M prepared`": "**no**",
                                lose + "`-M simple`": "**no**", lose + "`-M prepared`": "yes"})

    def test_throughput_table_per_protocol(self):
        text = report.throughput_table(a_run(throughput=throughput_results(TPS)))
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


class TwoVersionsTest(unittest.TestCase):
    """A run of PostgreSQL 15 and 18: a measured column and a "met" for each."""

    def setUp(self):
        # 18 meets the two targets that 15 misses, and misses -M prepared's losing one.
        faster = {p: {m: dict(scripts) for m, scripts in modes.items()}
                  for p, modes in TPS.items()}
        faster["simple"]["durable"]["lose_leader"] = 65000
        faster["prepared"]["durable"]["renew_leader"] = 12000
        faster["prepared"]["durable"]["lose_leader"] = 50000
        self.r = results(["throughput", "failover"], a_run(
            SERVER_18, 62, throughput=throughput_results(faster),
            failover={"samples_ms": {report.LEADER: LEADER_FAILOVER}, "elapsed_s": 9}),
            throughput=throughput_results(TPS),
            failover={"samples_ms": {report.LEADER: LEADER_FAILOVER, POLLER: POLLER_FAILOVER},
                      "elapsed_s": 30})
        self.out = tempfile.TemporaryDirectory()
        self.text = report.write(self.r, self.out.name)

    def tearDown(self):
        self.out.cleanup()

    def test_a_column_and_a_met_per_version(self):
        header, rows = target_table(self.text)
        self.assertEqual(header, ["measure", "target", "PostgreSQL 15.20", "met",
                                  "PostgreSQL 18.1", "met"])
        self.assertIn("|---|---|---|---|---|---|", self.text.splitlines())
        renew = "renew throughput vs the plain-SQL lease upsert, same durability, "
        lose = "losing `leader_try_acquire` vs `pg_try_advisory_xact_lock`, "
        self.assertEqual(rows[renew + "`-M prepared`"],
                         ["≥ 1.0×", "0.9× durable, 1.118× with synchronous_commit off",
                          "**no**", "1.091× durable, 1.118× with synchronous_commit off",
                          "yes"])
        self.assertEqual([rows[lose + "`-M simple`"][i] for i in (2, 4)], ["**no**", "yes"])
        self.assertEqual([rows[lose + "`-M prepared`"][i] for i in (2, 4)], ["yes", "**no**"])
        self.assertEqual(len(rows), 8)              # 3 failover, 1 expiry, 4 throughput

    def test_header_names_both_servers_and_times(self):
        self.assertTrue(self.text.startswith(
            f"Measured 2026-12-03 on 2 × CPU, 4 GiB, Linux 6.1, {SERVER_15} and {SERVER_18}; "
            "fsync and synchronous_commit on unless said; whole run 2 min 17 s "
            "(PostgreSQL 15.20: 1 min 15 s, PostgreSQL 18.1: 1 min 2 s) (quick mode"),
            self.text.splitlines()[0])

    def test_tables_per_version(self):
        headings = [line for line in self.text.splitlines() if line.startswith("#### ")]
        self.assertEqual(headings, [
            "#### Against the SPEC's targets",
            "#### Failover on PostgreSQL 15.20, side by side (p50 / p90 / p99 / max, n trials)",
            "#### Failover on PostgreSQL 18.1, side by side (p50 / p90 / p99 / max, n trials)",
            "#### Throughput on PostgreSQL 15.20", "#### Throughput on PostgreSQL 18.1"])
        on_18 = self.text.split("#### Failover on PostgreSQL 18.1")[1].split("####")[0]
        self.assertNotIn(POLLER, on_18)
        self.assertIn("The baselines ran on PostgreSQL 15.20 only", on_18)
        self.assertIn(POLLER, self.text.split("#### Failover on PostgreSQL 15.20")[1]
                      .split("####")[0])

    def test_plot_names_the_version_of_leader_s_curves(self):
        with open(os.path.join(self.out.name, "failover.svg")) as f:
            svg = f.read()
        self.assertIn(">leader, PostgreSQL 15.20 (p50 ", svg)
        self.assertIn(">leader, PostgreSQL 18.1 (p50 ", svg)
        self.assertIn(f">{POLLER} (p50 ", svg)    # it ran once: no version named

    def test_a_row_one_version_did_not_measure(self):
        r = results(["throughput", "bloat"], a_run(SERVER_18, throughput=throughput_results(TPS)),
                    throughput=throughput_results(TPS))
        r["runs"][0]["bloat"] = {"tables": {
            name: {"renewals": 1000, "ratio_after_vs_first": 1.2, "hot_share": 0.99,
                   "size_first_round": {"total": 8192}, "size_after": {"total": 16384}}
            for name in ("leader", "plain")}}
        rows = target_table(report.table(r))[1]
        bloat = rows["`leader_lease` size after 1,000 renewals of 1 000 groups"]
        self.assertEqual(bloat[2:], ["yes", "–", "–"])


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

    def test_run_sh_rejects_a_bad_major(self):
        for majors in ("15,14", "15,15", "18,", ",", "15,,18", "fifteen"):
            with self.subTest(majors=majors):
                done = run_sh("--quick", "--pg", majors)
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertIn("bench/run.sh: --pg takes a comma list of PostgreSQL majors "
                              "from 15, 16, 17, 18 and 19, each once", done.stderr)
                self.assertIn("usage: bash bench/run.sh", done.stderr)
        self.assertEqual(run_sh("--pg").returncode, 2)

    def test_run_sh_takes_a_list_of_majors(self):
        """A good list passes the command line (and stops at the next check)."""
        done = run_sh("--pg", "15,18", "--only", "throughput")
        self.assertNotEqual(done.returncode, 2, done.stderr)
        self.assertNotIn("usage:", done.stderr)

    def test_baselines_on_the_first_version_only(self):
        every = list(run.PARTS)
        self.assertEqual(run.parts_per_installation(every, 1), [every])
        self.assertEqual(run.parts_per_installation(every, 3),
                         [every] + [["throughput", "failover", "scale", "bloat"]] * 2)
        self.assertEqual(run.parts_per_installation(["failover", "baselines"], 2),
                         [["failover", "baselines"], ["failover"]])

    def test_every_installation_checked_before_the_first_is_measured(self):
        """A second --pg-config whose server does not run: no server was started."""
        with tempfile.TemporaryDirectory() as tmp:
            bindir = os.path.join(tmp, "bin")
            os.mkdir(bindir)
            started = os.path.join(tmp, "initdb-ran")
            for name, body in (("pg_config", f"echo {bindir}"),
                               ("postgres", "echo 'postgres (PostgreSQL) 15.20'"),
                               ("initdb", f"touch {started}; exit 3")):
                path = os.path.join(bindir, name)
                with open(path, "w") as f:
                    f.write(f"#!/bin/sh\n{body}\n")
                os.chmod(path, stat.S_IRWXU)
            done = self.run_py("--quick", "--pg-config", os.path.join(bindir, "pg_config"),
                               "--pg-config", UNUSABLE_PG_CONFIG)
            self.assertNotEqual(done.returncode, 0)
            self.assertIn(UNUSABLE_PG_CONFIG, done.stderr)
            self.assertFalse(os.path.exists(started))


if __name__ == "__main__":
    unittest.main()
