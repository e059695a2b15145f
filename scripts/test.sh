#!/usr/bin/env bash
# scripts/test.sh: runs every test of the leader extension, on every supported PostgreSQL
# major (15, 16, 17, 18 and 19beta2). This is the command CI runs.
#
# Owns: the test procedure, from a bare Debian 12 machine to one summary line.
# Without --pg it runs itself once per major, 15 first, and ends with each major's line
# and the total. With --pg VERSION it tests that one major:
#   1. installs the dependencies (scripts/install-deps.sh), and for 16 and later builds
#      that PostgreSQL from the sources in ../shared/postgresql, once: the build is cached
#      outside the checkout and reused (scripts/build-postgres.sh says where); 15 is
#      Debian's package;
#   2. builds the extension from clean ("make"; the Makefile turns warnings into errors)
#      and installs it ("make install") into that PostgreSQL; for 16 and later it first
#      builds and installs it into Debian's PostgreSQL 15.18 as well, unpacked into the
#      same cache (scripts/unpack-debian-postgres.sh says why not 15.20): the old side of
#      the pg_upgrade test (test/t/037_pg_upgrade.pl, told where by LEADER_UPGRADE_FROM);
#   3. copies the source tree into a fresh temporary directory owned by the unprivileged
#      OS user "postgres" (PostgreSQL refuses to run as root), installs the Node.js
#      examples' dependencies there (npm ci), and runs the Makefile's
#      "installcheck" there as that user, one suite at a time so that a failing suite
#      does not hide the results of the others:
#        pg_regress (sql/, expected/), pg_isolation_regress (test/specs, test/expected)
#        and the TAP tests (test/t/*.pl), each on its own temporary instance; then
#        "make faultcheck": the short fault-injection run (test/faults) and the run
#        against a planted bug that its checker must catch;
#      then, as root, the benchmark's self-checks (bench/test_bench.py) and the suites
#      that need root: test/liveness/silent-host.sh (leaders
#      whose host vanishes from the network, in network namespaces) and, on 15 only
#      (the one version Debian 12 packages), scripts/test-package.sh (the Debian
#      package built, installed and tried);
#   4. on failure prints the diffs and logs that say why;
#   5. ends with one line "N passed, N failed" (N counts test files) and exits 0 only if
#      everything passed.
# The temporary directory, and any server a test left running in it, is removed on exit.
#
# Usage (as root, from anywhere): bash scripts/test.sh [--pg VERSION]
#   --pg VERSION  only that major: 15, 16, 17, 18 or 19 (19beta2)
# Environment: LEADER_TEST_TIMEOUT (seconds per suite, default 1800).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run this as root (it installs packages and the extension, and runs the" >&2
    echo "test servers as the OS user \"postgres\")" >&2
    exit 1
fi

MAJORS=(15 16 17 18 19)
usage() {
    echo "usage: test.sh [--pg VERSION]   (VERSION: ${MAJORS[*]})" >&2
    exit 2
}
PG_MAJOR=
case "$#:${1:-}" in
    0:) ;;
    2:--pg)
        for m in "${MAJORS[@]}"; do
            [ "$2" != "$m" ] || PG_MAJOR=$2
        done
        [ -n "$PG_MAJOR" ] || usage
        ;;
    *) usage ;;
esac

# --- every major, one after the other ------------------------------------------------------
if [ -z "$PG_MAJOR" ]; then
    started=$SECONDS
    totals=()
    passed=0
    failed=0
    for m in "${MAJORS[@]}"; do
        out=$(mktemp "${TMPDIR:-/tmp}/leader-test-$m.XXXXXX")
        begun=$SECONDS
        status=0
        bash "$ROOT/scripts/test.sh" --pg "$m" 2>&1 | tee "$out" || status=$?
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
        rm -f "$out"
        if [ -z "$line" ]; then
            # It stopped before its suites ran (a build or an install failed).
            line="0 passed, 1 failed"
        elif [ "$status" -ne 0 ] && [ "${line#*passed, }" = "0 failed" ]; then
            line="${line%%passed, *}passed, 1 failed"
        fi
        read -r ok _ bad _ <<<"$line"
        passed=$((passed + ok))
        failed=$((failed + bad))
        totals+=("PostgreSQL $m, $(((SECONDS - begun) / 60)) min $(((SECONDS - begun) % 60)) s: $line")
    done
    echo
    printf '%s\n' "${totals[@]}"
    echo "all majors: $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
fi

# C.UTF-8 exists on every Debian system: the test instances get UTF8 encoding and
# byte-order collation whatever the caller's locale is.
export LANG=C.UTF-8 LC_ALL=C.UTF-8
SUITE_TIMEOUT=${LEADER_TEST_TIMEOUT:-1800}

log() { printf '\n=== %s\n' "$*"; }

log "installing dependencies"
bash "$ROOT/scripts/install-deps.sh" --tests

log "PostgreSQL $PG_MAJOR (16 and later: built once, reused when cached)"
PG_CONFIG=$(bash "$ROOT/scripts/build-postgres.sh" "$PG_MAJOR" | tail -n 1)
if [ -z "$PG_CONFIG" ] || ! PG_BINDIR=$("$PG_CONFIG" --bindir) || [ -z "$PG_BINDIR" ]; then
    echo "test.sh: no working pg_config for PostgreSQL $PG_MAJOR" >&2
    exit 1
fi
export PG_CONFIG
echo "using $("$PG_CONFIG" --version) ($PG_BINDIR)"

# build_and_install PG_CONFIG: the extension and pg_leader, from clean (objects left from
# a build against another PostgreSQL must not be reused), into that PostgreSQL.
build_and_install() {
    make -s PG_CONFIG="$1" clean </dev/null >/dev/null
    make -s PG_CONFIG="$1" </dev/null
    make -s PG_CONFIG="$1" install </dev/null
}
if [ "$PG_MAJOR" != 15 ]; then
    log "building (make) and installing (make install) into Debian's PostgreSQL 15.18, the old side of the pg_upgrade test"
    OLD_PG_CONFIG=$(bash "$ROOT/scripts/unpack-debian-postgres.sh" | tail -n 1)
    build_and_install "$OLD_PG_CONFIG"
    LEADER_UPGRADE_FROM=$(dirname "$("$OLD_PG_CONFIG" --bindir)")
    export LEADER_UPGRADE_FROM
fi
log "building (make) and installing (make install)"
build_and_install "$PG_CONFIG"

# --- a private copy of the source tree, owned by postgres --------------------------------
# shellcheck source=scripts/stop-servers.sh
. "$ROOT/scripts/stop-servers.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/leader-test.XXXXXX")
COPY="$WORK/leader"

# Stops any server still running from a data directory inside $WORK (a test that was
# interrupted may leave one), by the pid in its postmaster.pid, then removes $WORK.
cleanup() {
    trap - EXIT INT TERM
    if [ -d "$WORK" ]; then
        stop_servers_in "$WORK" "$PG_BINDIR"
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# On an interrupt, stop the suite that is running (by its pid), then exit via cleanup.
SUITE_PID=
interrupted() {
    if [ -n "$SUITE_PID" ] && kill -0 "$SUITE_PID" 2>/dev/null; then
        kill -TERM "$SUITE_PID" 2>/dev/null || true
        wait "$SUITE_PID" 2>/dev/null || true
    fi
    exit "$1"
}
trap 'interrupted 130' INT
trap 'interrupted 143' TERM

# The command prefix that runs a program as the OS user postgres with a small, clean
# environment (setpriv execs, so a background job's $! is the program's own pid).
pg_env() {
    PG_ENV=(setpriv --reuid=postgres --regid=postgres --init-groups
        env -i
        PATH="$PG_BINDIR:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        HOME="$WORK" TMPDIR="$WORK" LANG="$LANG" LC_ALL="$LC_ALL" PG_CONFIG="$PG_CONFIG")
    local v
    for v in PROVE_FLAGS PG_TEST_EXTRA PG_TEST_TIMEOUT_DEFAULT LEADER_UPGRADE_FROM; do
        [ -z "${!v:-}" ] || PG_ENV+=("$v=${!v}")
    done
}

pg_env

# Runs a command as postgres in $COPY.
as_postgres() {
    (cd "$COPY" 2>/dev/null || cd /; exec "${PG_ENV[@]}" "$@")
}

log "copying the source tree to $COPY"
mkdir -p "$COPY"
# (safe.directory: CI checkouts are often owned by another user than root.)
git_root() { git -c safe.directory="$ROOT" -C "$ROOT" "$@"; }
if command -v git >/dev/null && git_root rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked-but-not-ignored files: never build output or old results.
    files=()
    while IFS= read -r -d '' f; do
        [ -e "$f" ] && files+=("$f")
    done < <(git_root ls-files -z -co --exclude-standard)
    if [ "${#files[@]}" -gt 0 ]; then
        tar -C "$ROOT" -cf - -- "${files[@]}" | tar -C "$COPY" -xf -
    fi
else
    cp -a "$ROOT/." "$COPY/"
fi
# The Node.js examples' dependencies, from the npm registry as package-lock.json pins
# them (installed here, as root, with the caller's network settings).
log "installing the Node.js examples' dependencies (npm ci)"
npm ci --no-audit --no-fund --prefix "$COPY/examples/node" </dev/null
chown -R postgres:postgres "$WORK"
chmod 0700 "$WORK"

# --- the suites ---------------------------------------------------------------------------
PASSED=0
FAILED=0
FAILED_SUITES=()

# run_logged NAME COMMAND...: runs one suite's COMMAND (as root, unless COMMAND says
# otherwise) under a time limit, its output
# shown as it comes and kept in $WORK/NAME.out. Returns the command's status. (timeout
# runs the suite in its own process group and, when the time is up or it is sent
# SIGTERM, signals that whole group.)
run_logged() {
    local name=$1 out="$WORK/$1.out" status=0 tail_pid
    shift
    log "$name"
    : >"$out"
    timeout --kill-after=30 "$SUITE_TIMEOUT" "$@" </dev/null >"$out" 2>&1 &
    SUITE_PID=$!
    tail -n +1 -f -s 0.2 --pid="$SUITE_PID" "$out" &
    tail_pid=$!
    wait "$SUITE_PID" || status=$?
    SUITE_PID=
    wait "$tail_pid" || true
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "*** $name: timed out after ${SUITE_TIMEOUT}s"
    fi
    return "$status"
}

# run_suite NAME TARGET MAKE-VARIABLE-OVERRIDES...: runs "make TARGET" for one suite as
# postgres in $COPY.
run_suite() {
    local name=$1 target=$2
    shift 2
    run_logged "$name" "${PG_ENV[@]}" make --no-print-directory -C "$COPY" "$target" "$@"
}

# tally NAME STATUS OK BAD: adds one suite's counts of passed and failed tests to the
# totals. A suite that failed without any failed test (its harness failed: initdb, a
# server start) counts as one failure.
tally() {
    local name=$1 status=$2 ok=$3 bad=$4
    if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
        bad=1
    fi
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + bad))
    [ "$bad" -eq 0 ] || FAILED_SUITES+=("$name")
}

# count_pg_regress NAME STATUS: counts the passed and failed tests of pg_regress or
# pg_isolation_regress, in either output format: PostgreSQL 15's "test NAME ... ok" /
# "... FAILED" ("failed (ignored)" does not fail the run) or the TAP lines of 16 and
# later, "ok 1 - NAME" / "not ok 1 - NAME" ("+" instead of "-" in a parallel group).
count_pg_regress() {
    tally "$1" "$2" \
        "$(grep -cE '^ *(test +)?[^ ]+ +\.\.\. +(ok|failed \(ignored\))( |$)|^ok +[0-9]+ +[-+] ' \
            "$WORK/$1.out" || true)" \
        "$(grep -cE '^ *(test +)?[^ ]+ +\.\.\. +FAILED( |$)|^not ok +[0-9]+ +[-+] ' \
            "$WORK/$1.out" || true)"
}

# count_prove NAME STATUS: counts TAP test files from prove's summary; the files listed
# in its "Test Summary Report" are the failed ones.
count_prove() {
    local files bad
    files=$(sed -n 's/^Files=\([0-9]*\),.*/\1/p' "$WORK/$1.out" | tail -n 1)
    bad=$(sed -n '/^Test Summary Report/,$p' "$WORK/$1.out" |
        grep -cE '^[^ ].*\.(pl|t) +\(Wstat: ' || true)
    files=${files:-0}
    tally "$1" "$2" "$((files > bad ? files - bad : 0))" "$bad"
}

# count_checks NAME STATUS: counts the "ok - ..." / "not ok - ..." lines of a suite.
count_checks() {
    tally "$1" "$2" "$(grep -c '^ok - ' "$WORK/$1.out" || true)" \
        "$(grep -c '^not ok - ' "$WORK/$1.out" || true)"
}

# show head|tail N FILE...: prints the first or last N lines of each existing FILE under
# a header (diffs are read from the top, logs from the bottom).
show() {
    local how=$1 n=$2 f lines
    shift 2
    for f in "$@"; do
        [ -f "$f" ] || continue
        lines=$(wc -l <"$f")
        printf '\n----- %s (%s lines%s) -----\n' "${f#"$COPY"/}" "$lines" \
            "$([ "$lines" -le "$n" ] || echo ", $how $n shown")"
        "$how" -n "$n" "$f"
    done
}

# The three suites of the Makefile's installcheck, one at a time. Overriding a suite's
# variable with an empty value on the command line switches it off in PGXS.
status=0
run_suite pg_regress installcheck ISOLATION= TAP_TESTS= || status=$?
count_pg_regress pg_regress "$status"
if [ "$status" -ne 0 ]; then
    show head 1000 "$COPY/regression.diffs"
    show tail 100 "$COPY/tmp_check_regress/log/postmaster.log"
fi

status=0
run_suite isolation installcheck REGRESS= TAP_TESTS= || status=$?
count_pg_regress isolation "$status"
if [ "$status" -ne 0 ]; then
    show head 1000 "$COPY/test/output_iso/regression.diffs"
    show tail 100 "$COPY/tmp_check_iso/log/postmaster.log"
fi

if compgen -G "$COPY/test/t/*.pl" >/dev/null; then
    status=0
    run_suite tap installcheck REGRESS= ISOLATION= || status=$?
    count_prove tap "$status"
    if [ "$status" -ne 0 ]; then
        # Each test's own log first, then the server logs it produced.
        show tail 400 "$COPY"/tmp_check/log/regress_log_*
        for f in "$COPY"/tmp_check/log/*; do
            case "$f" in */regress_log_*) ;; *) show tail 100 "$f" ;; esac
        done
    fi
else
    log "tap"
    echo "no TAP tests (test/t/*.pl) found"
fi

status=0
run_suite faults faultcheck || status=$?
count_checks faults "$status"

# The benchmark's own machinery (bench/test_bench.py: its report, PG_CONFIG, its command
# lines), as root like bench/run.sh; it runs no benchmark.
status=0
run_logged bench-selftest /usr/bin/python3 -m unittest discover -v -s "$COPY/bench" || status=$?
tally bench-selftest "$status" \
    "$(grep -cE ' \.\.\. (ok|skipped.*)$' "$WORK/bench-selftest.out" || true)" \
    "$(grep -cE ' \.\.\. (FAIL|ERROR)$' "$WORK/bench-selftest.out" || true)"

# Suites that need root, run as root: connection liveness across a vanished network
# (network namespaces), and the Debian package, built, installed and tried.
status=0
run_logged liveness bash "$COPY/test/liveness/silent-host.sh" || status=$?
count_checks liveness "$status"

if [ "$PG_MAJOR" = 15 ]; then
    status=0
    run_logged package bash "$ROOT/scripts/test-package.sh" || status=$?
    count_checks package "$status"
else
    log "package"
    echo "skipped: the Debian package is built for PostgreSQL 15, the version Debian 12 packages"
fi

echo
if [ "${#FAILED_SUITES[@]}" -gt 0 ]; then
    echo "failed suites: ${FAILED_SUITES[*]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
