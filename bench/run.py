"""
bench/run.py: the whole benchmark, or the parts of it asked for, on one
throwaway server, in one run.

Owns the order of the benchmarks (throughput first, on a quiet server; then
failover, with leader's trials before the baselines', scale and bloat), which
of them run (--only), the description of the machine they ran on, and where
the results go: results.json (every sample), RESULTS.md (the table against
the SPEC's targets) and failover.svg (the latency distributions), in the
directory given as its argument.
Usage: python3 bench/run.py OUT_DIR [--quick] [--only PART,...]
       (bench/run.sh calls it; PARTS below names the parts)
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

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


def parts_list(text):
    """--only's argument: comma-separated names from PARTS, in PARTS order."""
    named = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in named if name not in PARTS]
    if unknown or not named:
        problem = f"unknown part(s) {', '.join(unknown)}" if unknown else "no part named"
        raise argparse.ArgumentTypeError(f"{problem}; the parts are {', '.join(PARTS)}")
    return [name for name in PARTS if name in named]


def arguments():
    parser = argparse.ArgumentParser(
        description="Runs the benchmark on a throwaway server.",
        epilog="parts: " + "; ".join(f"{name}: {what}" for name, what in PARTS.items()))
    parser.add_argument("out_dir", help="where results.json, RESULTS.md and failover.svg go")
    parser.add_argument("--quick", action="store_true",
                        help="fewer trials and shorter pgbench runs (not for the record)")
    parser.add_argument("--only", type=parts_list, metavar="PART,...",
                        help="run only these parts (not for the record)")
    return parser.parse_args()


ARGS = arguments()
if ARGS.quick:                                     # before pgbench_run reads them
    os.environ.setdefault("BENCH_SECONDS", "2")
    os.environ.setdefault("BLOAT_RENEWALS", "100000")

import bloat                                       # noqa: E402
import failover                                    # noqa: E402
import report                                      # noqa: E402
import scale                                       # noqa: E402
import throughput                                  # noqa: E402
from cluster import Cluster, pg_bin                # noqa: E402

# Each benchmark, in the order they run: its key in results.json, the parts
# that make it run, and how it runs given the parts asked for.
BENCHMARKS = (
    ("throughput", {"throughput"}, lambda cluster, parts: throughput.run(cluster)),
    ("failover", {"failover", "baselines"},
     lambda cluster, parts: failover.run(cluster, quick=ARGS.quick, leader="failover" in parts,
                                         baselines="baselines" in parts)),
    ("scale", {"scale"}, lambda cluster, parts: scale.run(cluster, quick=ARGS.quick)),
    ("bloat", {"bloat"}, lambda cluster, parts: bloat.run(cluster)),
)


def machine():
    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    server = subprocess.run([pg_bin("postgres"), "--version"], capture_output=True,
                            text=True).stdout.strip()
    return {"cpu": f"{len(models)} × {models[0]}" if models else f"{os.cpu_count()} CPUs",
            "memory_gib": round(mem_kib / 2**20), "kernel": platform.release(),
            "server": server}


def main():
    parts = ARGS.only or list(PARTS)
    started = time.monotonic()
    results = {"date": datetime.date.today().isoformat(), "quick": ARGS.quick,
               "only": ARGS.only, "machine": machine()}
    with Cluster() as cluster:
        for name, wanted_by, run in BENCHMARKS:
            if not wanted_by & set(parts):
                continue
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            begun = time.monotonic()
            results[name] = run(cluster, parts)
            print(f"bench: {name} done in {time.monotonic() - begun:.0f} s",
                  file=sys.stderr, flush=True)
    results["elapsed_s"] = round(time.monotonic() - started)
    os.makedirs(ARGS.out_dir, exist_ok=True)
    with open(os.path.join(ARGS.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(report.write(results, ARGS.out_dir))


if __name__ == "__main__":
    main()
