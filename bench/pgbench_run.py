"""
bench/pgbench_run.py: what the pgbench-driven benchmarks share.

Owns: the load settings every pgbench run uses (clients, threads, seconds; from
the environment: BENCH_CLIENTS, BENCH_THREADS, BENCH_SECONDS), a fresh database
with the extension for each benchmark, running one custom script with pgbench
(-n, in the wire protocol the caller names: -M simple or -M prepared) and
parsing its summary, and running a benchmark module alone (its JSON to stdout,
its summary to stderr).
"""
import json
import os
import re
import subprocess
import sys
import time

from cluster import Cluster, pg_bin

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))

SETTINGS = {"clients": CLIENTS, "threads": THREADS, "seconds": SECONDS, "pgbench": "-n"}

# pgbench's -M values: one query string per statement (the simple query
# protocol), or parse once and bind/execute each time (the extended protocol
# with a prepared statement).
PROTOCOLS = ("simple", "prepared")

# Summary lines of pgbench 15, and the key each becomes.
SUMMARY = {
    "transactions": re.compile(r"^number of transactions actually processed: (\d+)", re.M),
    "failed": re.compile(r"^number of failed transactions: (\d+)", re.M),
    "latency_ms": re.compile(r"^latency average = ([\d.]+) ms", re.M),
    "tps": re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M),
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def fresh_database(cluster, name):
    """Creates database `name` (dropping an older one) with the extension."""
    cluster.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    cluster.sql(f'CREATE DATABASE "{name}"')
    with cluster.connect(dbname=name) as conn:
        conn.execute("CREATE EXTENSION leader")


def run_script(cluster, dbname, name, script, *, protocol, per_client=None, variables=None,
               pgoptions=None):
    """
    Runs one pgbench custom script on database `dbname` with CLIENTS clients and
    THREADS threads, in `protocol` (one of PROTOCOLS), for SECONDS seconds, or
    for `per_client` transactions per client when given.  `variables` become
    -D name=value; `pgoptions` is the sessions' PGOPTIONS (e.g.
    "-c synchronous_commit=off").  Returns tps (without connection time),
    average latency in ms, transactions processed and the wall time; fails if
    pgbench fails or any transaction failed.
    """
    path = os.path.join(cluster.dir, f"{name}.pgbench")
    with open(path, "w") as f:
        f.write(script.strip() + "\n")
    argv = [pg_bin("pgbench"), "-n", "-M", protocol, "-c", str(CLIENTS), "-j", str(THREADS),
            "-f", path, "-h", "127.0.0.1", "-p", str(cluster.port)]
    argv += ["-t", str(per_client)] if per_client else ["-T", str(SECONDS)]
    for key, value in (variables or {}).items():
        argv += ["-D", f"{key}={value}"]
    argv.append(dbname)
    env = dict(os.environ)
    env.pop("PGOPTIONS", None)
    if pgoptions:
        env["PGOPTIONS"] = pgoptions
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"pgbench {name} (-M {protocol}) exited {done.returncode}:\n"
                           f"{done.stdout}{done.stderr}")
    result = {}
    for key, pattern in SUMMARY.items():
        match = pattern.search(done.stdout)
        if match is None:
            raise RuntimeError(f"pgbench {name}: no '{key}' in its output:\n{done.stdout}")
        result[key] = float(match.group(1)) if "." in match.group(1) else int(match.group(1))
    if result["failed"]:
        raise RuntimeError(f"pgbench {name}: {result['failed']} failed transactions")
    del result["failed"]
    result["elapsed_s"] = round(elapsed, 2)
    return result


def main(run, summary):
    """Runs one benchmark module alone on its own throwaway server."""
    with Cluster() as cluster:
        result = run(cluster)
    json.dump(result, sys.stdout, indent=2)
    print()
    log(summary(result))
