"""
bench/run.py: the whole benchmark, or the parts of it asked for, on one or
more PostgreSQL installations, one throwaway server each, in one run.

Owns the order of the benchmarks (throughput first, on a quiet server; then
failover, with leader's trials before the baselines', scale and bloat), which
of them run (--only) on which installation (--pg-config, in the order given:
every part on the first; the baselines, which measure the advisory-lock
poller and the client-go style lease rather than the server, on the first
only), the description of the machine they ran on, and where the results go:
results.json (every sample, one entry of "runs" per installation),
RESULTS.md (the table against the SPEC's targets, one column per
installation) and failover.svg (the latency distributions), in the directory
given as its argument.
Usage: python3 bench/run.py OUT_DIR [--quick] [--only PART,...]
                            [--pg-config PATH ...]
       (bench/run.sh calls it; PARTS below names the parts; without
       --pg-config, the installation that PG_CONFIG or pg_config on PATH names)
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import cluster
import report

# The parts --only can name, in the order they run, and what each measures.
PARTS = {
    "throughput": "pgbench: renewals and losing calls against their plain-SQL and "
                  "advisory-lock equivalents, in both wire protocols",
    "failover": "leader's crash, handover, pg_leader and frozen-leader trials",
    "baselines": "the same trials of the advisory-lock poller and the client-go style "
                 "lease (the slowest part: their failovers take seconds each)",
    "scale": "100 000 idle groups, 1 000 waiting sessions",
    "bloat": "the lease table's size after many renewals",
}
# The parts that do not measure the server: they run on the first installation only.
FIRST_ONLY = {"baselines"}


def parts_list(text):
    """--only's argument: comma-separated names from PARTS, in PARTS order."""
    named = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in named if name not in PARTS]
    if unknown or not named:
        problem = f"unknown part(s) {', '.join(unknown)}" if unknown else "no part named"
        raise argparse.ArgumentTypeError(f"{problem}; the parts are {', '.join(PARTS)}")
    return [name for name in PARTS if name in named]


def parts_per_installation(parts, count):
    """The parts each of count installations runs, in order: all on the first, on the
    others all but FIRST_ONLY."""
    return [parts] + [[name for name in parts if name not in FIRST_ONLY]] * (count - 1)


def arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Runs the benchmark on a throwaway server.",
        epilog="parts: " + "; ".join(f"{name}: {what}" for name, what in PARTS.items()))
    parser.add_argument("out_dir", help="where results.json, RESULTS.md and failover.svg go")
    parser.add_argument("--quick", action="store_true",
                        help="fewer trials and shorter pgbench runs (not for the record)")
    parser.add_argument("--only", type=parts_list, metavar="PART,...",
                        help="run only these parts (not for the record)")
    parser.add_argument("--pg-config", action="append", metavar="PATH",
                        help="the pg_config of an installation to measure; repeated, one "
                             "after the other, in this order (default: PG_CONFIG, else "
                             "pg_config on PATH)")
    return parser.parse_args(argv)


def benchmarks(args):
    """
    Each benchmark, in the order they run: its key in results.json, the parts
    that make it run, and how it runs given the server and the parts asked for.
    Imported here, once main() has set the environment that pgbench_run and
    bloat read when they are imported.
    """
    import bloat
    import failover
    import scale
    import throughput
    return (
        ("throughput", {"throughput"}, lambda server, parts: throughput.run(server)),
        ("failover", {"failover", "baselines"},
         lambda server, parts: failover.run(server, quick=args.quick,
                                            leader="failover" in parts,
                                            baselines="baselines" in parts)),
        ("scale", {"scale"}, lambda server, parts: scale.run(server, quick=args.quick)),
        ("bloat", {"bloat"}, lambda server, parts: bloat.run(server)),
    )


def machine():
    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"cpu": f"{len(models)} × {models[0]}" if models else f"{os.cpu_count()} CPUs",
            "memory_gib": round(mem_kib / 2**20), "kernel": platform.release()}


def server_version(pg_config):
    """The installation's `postgres --version`; exits unless its server runs."""
    try:
        cluster.use(pg_config)
        return subprocess.run([cluster.pg_bin("postgres"), "--version"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"bench/run.py: no working installation at {pg_config}: {e}")


def measure(todo, pg_config, version, parts):
    """One installation's run: a server of its own, the parts one after the other."""
    cluster.use(pg_config)
    run = {"server": version, "parts": parts}
    begun = time.monotonic()
    wanted = [(name, benchmark) for name, wanted_by, benchmark in todo if wanted_by & set(parts)]
    if wanted:
        with cluster.Cluster() as server:
            for name, benchmark in wanted:
                print(f"bench: {version}: {name} ...", file=sys.stderr, flush=True)
                started = time.monotonic()
                run[name] = benchmark(server, parts)
                print(f"bench: {version}: {name} done in {time.monotonic() - started:.0f} s",
                      file=sys.stderr, flush=True)
    run["elapsed_s"] = round(time.monotonic() - begun)
    return run


def main():
    args = arguments()
    if args.quick:                                 # before pgbench_run reads them
        os.environ.setdefault("BENCH_SECONDS", "2")
        os.environ.setdefault("BLOAT_RENEWALS", "100000")
    todo = benchmarks(args)
    parts = args.only or list(PARTS)
    pg_configs = args.pg_config or [cluster.PG_CONFIG]
    started = time.monotonic()
    # Every installation's server runs, before the first one is measured for minutes.
    versions = [server_version(pg_config) for pg_config in pg_configs]
    results = {"date": datetime.date.today().isoformat(), "quick": args.quick,
               "only": args.only, "machine": machine(), "runs": []}
    for pg_config, version, its_parts in zip(pg_configs, versions,
                                             parts_per_installation(parts, len(pg_configs))):
        results["runs"].append(measure(todo, pg_config, version, its_parts))
    results["elapsed_s"] = round(time.monotonic() - started)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(report.write(results, args.out_dir))


if __name__ == "__main__":
    main()
