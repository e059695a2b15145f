"""
bench/run.py: the whole benchmark, on one throwaway server, in one run.

Owns the order of the benchmarks (throughput first, on a quiet server; then
failover, scale and bloat), the description of the machine they ran on, and
where the results go: results.json (every sample), RESULTS.md (the table
against the SPEC's targets) and failover.svg (the latency distributions), in
the directory given as its argument.
Usage: python3 bench/run.py OUT_DIR [--quick]   (bench/run.sh calls it)
"""
import datetime
import json
import os
import platform
import subprocess
import sys
import time

QUICK = "--quick" in sys.argv
if QUICK:                                          # before pgbench_run reads them
    os.environ.setdefault("BENCH_SECONDS", "2")
    os.environ.setdefault("BLOAT_RENEWALS", "100000")

import bloat                                       # noqa: E402
import failover                                    # noqa: E402
import report                                      # noqa: E402
import scale                                       # noqa: E402
import throughput                                  # noqa: E402
from cluster import Cluster, pg_bin                # noqa: E402


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
    out_dir = [a for a in sys.argv[1:] if not a.startswith("--")][0]
    started = time.monotonic()
    results = {"date": datetime.date.today().isoformat(), "quick": QUICK,
               "machine": machine()}
    with Cluster() as cluster:
        for name, module in (("throughput", throughput), ("failover", failover),
                             ("scale", scale), ("bloat", bloat)):
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            begun = time.monotonic()
            results[name] = module.run(cluster, quick=QUICK) if name in ("failover", "scale") \
                else module.run(cluster)
            print(f"bench: {name} done in {time.monotonic() - begun:.0f} s",
                  file=sys.stderr, flush=True)
    results["elapsed_s"] = round(time.monotonic() - started)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(report.write(results, out_dir))


if __name__ == "__main__":
    main()
