#!/usr/bin/env bash
# bench/run.sh: reruns the whole benchmark with one command, on a throwaway server per
# PostgreSQL version measured.
#
# Owns the benchmark's procedure, from a bare Debian 12 machine to recorded results:
#   1. installs the dependencies (scripts/install-deps.sh; pgbench comes with postgresql-15,
#      psycopg with python3-psycopg);
#   2. finds the PostgreSQL installations to measure: the one that PG_CONFIG names, or
#      with --pg those majors, in that order (15: Debian's package; 16-19 built once from
#      the sources and then reused, by scripts/build-postgres.sh);
#   3. builds the extension and pg_leader from clean (make clean, make, make install) into
#      each of them in turn, so that no object built for one version is reused for another;
#      the benchmark runs each installation's binaries (initdb, postgres, pgbench,
#      pg_leader);
#   4. copies bench/ into a temporary directory owned by the OS user postgres and runs
#      bench/run.py there as that user: for each installation, in order, one throwaway
#      server (initdb in that directory, TCP on 127.0.0.1 only) for every benchmark; the
#      baselines (the advisory-lock poller and the client-go style lease, which do not
#      depend on the server's version) run on the first installation only;
#   5. writes results.json, RESULTS.md (one measured column per version) and failover.svg
#      into bench/results/ (or, with --quick or --only, into bench/out/, never over the
#      record).
# About 16 minutes for the first version and 10 more for each one after it (--quick:
# about 3 and 1). Any server left behind by an interrupted run is stopped (by its pid) and the
# temporary directory removed.
#
# Usage (as root, from anywhere): bash bench/run.sh [--quick] [--only PART,...]
#                                                   [--pg MAJOR,...]
#   --quick         fewer trials, 2 s per pgbench script
#   --only PART,... only these parts (bench/run.py names them: throughput, failover,
#                   baselines, scale, bloat); e.g. --only throughput,failover measures
#                   the throughput and leader's failover targets in about 5 minutes
#   --pg MAJOR,...  these PostgreSQL majors (15, 16, 17, 18, 19), each once, one after the
#                   other in this order, side by side in the report; e.g. --pg 15,18
# Environment: PG_CONFIG (default: pg_config on PATH; ignored with --pg); BENCH_SECONDS,
#              BENCH_CLIENTS, BENCH_THREADS, BLOAT_RENEWALS (bench/README.md);
#              LEADER_PG_SOURCES, LEADER_PG_CACHE (scripts/build-postgres.sh).
set -euo pipefail

usage() { echo "usage: bash bench/run.sh [--quick] [--only PART,...] [--pg MAJOR,...]"; }
RUN_ARGS=()
OUT_NAME=results
PG_MAJORS=()

# pg_majors LIST: --pg's argument, into PG_MAJORS; a usage error unless it names majors
# from 15 to 19, each once.
pg_majors() {
    local major
    IFS=, read -r -a PG_MAJORS <<<"$1"
    # (read drops a trailing empty field: "18," would pass as "18")
    if [ ${#PG_MAJORS[@]} -eq 0 ] || [ "$(IFS=,; echo "${PG_MAJORS[*]}")" != "$1" ]; then
        pg_usage "$1"
    fi
    for major in "${PG_MAJORS[@]}"; do
        case "$major" in
            15 | 16 | 17 | 18 | 19) ;;
            *) pg_usage "$1" ;;
        esac
        [ "$(printf '%s\n' "${PG_MAJORS[@]}" | grep -cx "$major")" -eq 1 ] || pg_usage "$1"
    done
}
pg_usage() {
    echo "bench/run.sh: --pg takes a comma list of PostgreSQL majors from 15, 16, 17, 18" \
        "and 19, each once (got \"$1\")" >&2
    usage >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) RUN_ARGS+=(--quick) ;;
        --only)
            if [ $# -lt 2 ]; then usage >&2; exit 2; fi
            RUN_ARGS+=(--only "$2")
            shift
            ;;
        --only=*) RUN_ARGS+=(--only "${1#--only=}") ;;
        --pg)
            if [ $# -lt 2 ]; then usage >&2; exit 2; fi
            pg_majors "$2"
            shift
            ;;
        --pg=*) pg_majors "${1#--pg=}" ;;
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

# The installations to measure, in order: their pg_config and bindir.
PG_CONFIGS=()
PG_BINDIRS=()
if [ ${#PG_MAJORS[@]} -eq 0 ]; then
    PG_CONFIGS=("${PG_CONFIG:-$(command -v pg_config || true)}")
else
    for major in "${PG_MAJORS[@]}"; do
        echo "bench/run.sh: PostgreSQL $major (16 and later: built once, reused when cached)"
        PG_CONFIGS+=("$(bash "$ROOT/scripts/build-postgres.sh" "$major" | tail -n 1)")
    done
fi
for pg_config in "${PG_CONFIGS[@]}"; do
    if [ -z "$pg_config" ] || ! bindir=$("$pg_config" --bindir) || [ -z "$bindir" ]; then
        echo "bench/run.sh: no working pg_config (set PG_CONFIG, or install" \
            "postgresql-server-dev-15)" >&2
        exit 1
    fi
    if ! setpriv --reuid=postgres --regid=postgres --init-groups test -x "$bindir/postgres"; then
        echo "bench/run.sh: the OS user \"postgres\" cannot run $bindir/postgres" >&2
        exit 1
    fi
    PG_BINDIRS+=("$bindir")
done
# From clean for each installation: objects built for one version must not be linked
# for another.
for pg_config in "${PG_CONFIGS[@]}"; do
    echo "bench/run.sh: building and installing into $("$pg_config" --version)" \
        "in $("$pg_config" --bindir)"
    make -s PG_CONFIG="$pg_config" clean </dev/null >/dev/null
    make -s PG_CONFIG="$pg_config" </dev/null
    make -s PG_CONFIG="$pg_config" install </dev/null
done

# shellcheck source=scripts/stop-servers.sh
. "$ROOT/scripts/stop-servers.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/leader-bench.XXXXXX")
cleanup() {
    trap - EXIT INT TERM
    local bindir
    for bindir in "${PG_BINDIRS[@]}"; do
        stop_servers_in "$WORK" "$bindir"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/bench"
cp "$ROOT"/bench/*.py "$WORK/bench/"
chown -R postgres:postgres "$WORK"
chmod 0700 "$WORK"
PG_CONFIG_ARGS=()
for pg_config in "${PG_CONFIGS[@]}"; do
    PG_CONFIG_ARGS+=(--pg-config "$pg_config")
done
setpriv --reuid=postgres --regid=postgres --init-groups env -i \
    PATH="/usr/local/bin:/usr/bin:/bin" HOME="$WORK" TMPDIR="$WORK" \
    LANG="$LANG" LC_ALL="$LC_ALL" \
    ${BENCH_SECONDS:+BENCH_SECONDS=$BENCH_SECONDS} \
    ${BENCH_CLIENTS:+BENCH_CLIENTS=$BENCH_CLIENTS} \
    ${BENCH_THREADS:+BENCH_THREADS=$BENCH_THREADS} \
    ${BLOAT_RENEWALS:+BLOAT_RENEWALS=$BLOAT_RENEWALS} \
    /usr/bin/python3 "$WORK/bench/run.py" "$WORK/results" "${PG_CONFIG_ARGS[@]}" \
    ${RUN_ARGS[@]+"${RUN_ARGS[@]}"}
mkdir -p "$OUT"
cp "$WORK"/results/* "$OUT/"
echo "bench/run.sh: results in ${OUT#"$ROOT"/}/ (RESULTS.md, results.json; failover.svg" \
    "when failover trials ran)"
