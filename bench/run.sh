#!/usr/bin/env bash
# bench/run.sh: reruns the whole benchmark with one command, on a throwaway server.
#
# Owns the benchmark's procedure, from a bare Debian 12 machine to recorded results:
#   1. installs the dependencies (scripts/install-deps.sh; pgbench comes with postgresql-15,
#      psycopg with python3-psycopg);
#   2. builds and installs the extension and pg_leader (make, make install) into the
#      PostgreSQL installation that PG_CONFIG names, whose binaries (initdb, postgres,
#      pgbench, pg_leader) the benchmark then runs;
#   3. copies bench/ into a temporary directory owned by the OS user postgres and runs
#      bench/run.py there as that user: one throwaway server (initdb in that directory,
#      TCP on 127.0.0.1 only) for every benchmark;
#   4. writes results.json, RESULTS.md and failover.svg into bench/results/ (or, with
#      --quick or --only, into bench/out/, never over the record).
# About 15 minutes in all (--quick: about 3). Any server left behind by an interrupted run
# is stopped (by its pid) and the temporary directory removed.
#
# Usage (as root, from anywhere): bash bench/run.sh [--quick] [--only PART,...]
#   --quick         fewer trials, 2 s per pgbench script
#   --only PART,... only these parts (bench/run.py names them: throughput, failover,
#                   baselines, scale, bloat); e.g. --only throughput,failover measures
#                   the throughput and leader's failover targets in about 5 minutes
# Environment: PG_CONFIG (default: pg_config on PATH); BENCH_SECONDS, BENCH_CLIENTS,
#              BENCH_THREADS, BLOAT_RENEWALS (bench/README.md).
set -euo pipefail

usage() { echo "usage: bash bench/run.sh [--quick] [--only PART,...]"; }
RUN_ARGS=()
OUT_NAME=results
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) RUN_ARGS+=(--quick) ;;
        --only)
            if [ $# -lt 2 ]; then usage >&2; exit 2; fi
            RUN_ARGS+=(--only "$2")
            shift
            ;;
        --only=*) RUN_ARGS+=(--only "${1#--only=}") ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done
# Only a whole run at the full trial counts is a record.
if [ ${#RUN_ARGS[@]} -gt 0 ]; then OUT_NAME=out; fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ "$(id -u)" -ne 0 ]; then
    echo "bench/run.sh: run this as root (it installs packages and the extension, and runs" >&2
    echo "the benchmark's server as the OS user \"postgres\")" >&2
    exit 1
fi
export LANG=C.UTF-8 LC_ALL=C.UTF-8
OUT="$ROOT/bench/$OUT_NAME"

bash "$ROOT/scripts/install-deps.sh"
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || true)}
if [ -z "$PG_CONFIG" ] || ! PG_BINDIR=$("$PG_CONFIG" --bindir) || [ -z "$PG_BINDIR" ]; then
    echo "bench/run.sh: no working pg_config (set PG_CONFIG, or install" \
        "postgresql-server-dev-15)" >&2
    exit 1
fi
if ! setpriv --reuid=postgres --regid=postgres --init-groups test -x "$PG_BINDIR/postgres"; then
    echo "bench/run.sh: the OS user \"postgres\" cannot run $PG_BINDIR/postgres" >&2
    exit 1
fi
echo "bench/run.sh: using $("$PG_CONFIG" --version) in $PG_BINDIR"
make -s PG_CONFIG="$PG_CONFIG" </dev/null
make -s PG_CONFIG="$PG_CONFIG" install </dev/null

# shellcheck source=scripts/stop-servers.sh
. "$ROOT/scripts/stop-servers.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/leader-bench.XXXXXX")
cleanup() {
    trap - EXIT INT TERM
    stop_servers_in "$WORK" "$PG_BINDIR"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/bench"
cp "$ROOT"/bench/*.py "$WORK/bench/"
chown -R postgres:postgres "$WORK"
chmod 0700 "$WORK"
setpriv --reuid=postgres --regid=postgres --init-groups env -i \
    PATH="$PG_BINDIR:/usr/local/bin:/usr/bin:/bin" HOME="$WORK" TMPDIR="$WORK" \
    LANG="$LANG" LC_ALL="$LC_ALL" PG_CONFIG="$PG_CONFIG" \
    ${BENCH_SECONDS:+BENCH_SECONDS=$BENCH_SECONDS} \
    ${BENCH_CLIENTS:+BENCH_CLIENTS=$BENCH_CLIENTS} \
    ${BENCH_THREADS:+BENCH_THREADS=$BENCH_THREADS} \
    ${BLOAT_RENEWALS:+BLOAT_RENEWALS=$BLOAT_RENEWALS} \
    /usr/bin/python3 "$WORK/bench/run.py" "$WORK/results" ${RUN_ARGS[@]+"${RUN_ARGS[@]}"}
mkdir -p "$OUT"
cp "$WORK"/results/* "$OUT/"
echo "bench/run.sh: results in ${OUT#"$ROOT"/}/ (RESULTS.md, results.json; failover.svg" \
    "when failover trials ran)"
