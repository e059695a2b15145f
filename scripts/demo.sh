#!/usr/bin/env bash
# scripts/demo.sh: a narrated, self-contained demonstration of the leader extension.
#
# Owns: the demo. With no configuration it installs the dependencies, builds and installs
# the extension, starts a throwaway PostgreSQL server (as the OS user "postgres", data and
# Unix socket in a temporary directory, no TCP), and then shows, with timestamps:
#   - a listener (scripts/demo_listener.py) printing every event on "leader_changed";
#   - three worker sessions (psql, application_name worker-a/b/c) competing for the group
#     "nightly-report" with leader_try_acquire: exactly one wins;
#   - the leader_status view;
#   - crash failover: the leader's psql is killed with SIGKILL and the next candidate
#     takes over at once, without waiting for the 15 s TTL ("vacated", then "acquired");
#   - graceful handover: leader_release, then the third worker takes over;
#   - fencing: a write guarded by leader_fence with a stale term fails, with the current
#     term it succeeds.
# Everything it started (server, listener, psql sessions, by pid) and its temporary
# directory are removed on exit, also after an error or an interrupt.
#
# This release has no background worker yet: expiry and session end are noticed by the
# next call that touches the group. The crash takeover is still immediate, because the
# dead session's advisory lock disappears with its backend.
#
# Usage (as root, from anywhere): bash scripts/demo.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GROUP=nightly-report
WORKERS=(worker-a worker-b worker-c)

# --- output helpers ------------------------------------------------------------------------
ts() { date +%H:%M:%S.%3N; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
say() { printf '[%s] %s\n' "$(ts)" "$*"; }
note() { printf '               %s\n' "$*"; }
step() { printf '\n[%s] === %s\n' "$(ts)" "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run this as root (it installs packages and the extension, and runs the" >&2
    echo "demo server as the OS user \"postgres\")" >&2
    exit 1
fi
export LANG=C.UTF-8 LC_ALL=C.UTF-8

# --- state, and the teardown that undoes it -------------------------------------------------
T=                    # the temporary directory
SERVER_STARTED=       # set once pg_ctl start succeeded
LISTENER_PID=
declare -A WPID=()    # worker name -> pid of its psql
declare -A WFD=()     # worker name -> our file descriptor writing to its psql's stdin
declare -A WLINES=()  # worker name -> lines of its output already shown
EVENTS_SHOWN=0        # listener lines already shown
SEQ=0                 # sequence number of the end-of-output markers

# Ends what this script started, by pid, stops the server and removes $T. Idempotent.
teardown() {
    local fd pid
    for fd in "${WFD[@]}"; do
        exec {fd}>&- # psql ends at the end of its input
    done
    WFD=()
    for pid in "${WPID[@]}" $LISTENER_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${WPID[@]}" $LISTENER_PID; do
        wait "$pid" 2>/dev/null || true
    done
    WPID=()
    LISTENER_PID=
    if [ -n "$SERVER_STARTED" ]; then
        as_pg pg_ctl stop -D "$T/data" -m fast -w >/dev/null 2>&1 || true
        SERVER_STARTED=
    fi
    if [ -n "$T" ]; then
        rm -rf "$T"
        T=
    fi
}

cleanup() {
    local status=$? f
    trap - EXIT INT TERM ERR
    set +e
    if [ "$status" -eq 130 ] || [ "$status" -eq 143 ]; then
        echo
        echo "demo.sh: interrupted; cleaning up."
    elif [ "$status" -ne 0 ] && [ -n "$T" ] && [ -d "$T" ]; then
        echo
        echo "demo.sh: FAILED (status $status); the last lines of its logs follow."
        for f in "$T"/build.log "$T"/initdb.log "$T"/server.log "$T"/events.log "$T"/worker-*.out; do
            [ -s "$f" ] && { echo "----- $(basename "$f")"; tail -n 25 "$f"; }
        done
    fi
    teardown
    exit "$status"
}
trap cleanup EXIT
trap 'echo "demo.sh: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# Replaces the current (sub)shell by a program run as the OS user postgres in $T, with a
# clean environment whose libpq variables point at the demo server. setpriv and env
# exec too, so a background "( as_pg_exec ... ) &" has the program's own pid in $!.
as_pg_exec() {
    cd "$T"
    exec setpriv --reuid=postgres --regid=postgres --init-groups env -i \
        PATH="$PG_BINDIR:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$T" \
        LANG="$LANG" LC_ALL="$LC_ALL" \
        PGHOST="$T" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres \
        "$@"
}

# Runs a program as postgres (see as_pg_exec) and waits for it.
as_pg() { (as_pg_exec "$@"); }

# Runs SQL in a new short-lived session (application_name "observer").
observe() {
    as_pg PGAPPNAME=observer psql -X -q -v ON_ERROR_STOP=1 "$@" </dev/null
}

# --- the listener ---------------------------------------------------------------------------
# show_events N: waits (up to 5 s) until the listener has printed N more events, then
# prints every event line not shown yet.
show_events() {
    local want=$(($1 + EVENTS_SHOWN + 1)) i=0 lines line
    while [ "$(wc -l <"$T/events.log")" -lt "$want" ] && [ "$i" -lt 500 ]; do
        sleep 0.01
        i=$((i + 1))
    done
    lines=$(wc -l <"$T/events.log")
    if [ "$lines" -lt "$want" ]; then
        say "(expected $1 more event(s) from the listener, got $((lines - EVENTS_SHOWN - 1)))"
    fi
    while IFS= read -r line; do
        printf '    listener | %s\n' "$line"
    done < <(sed -n "$((EVENTS_SHOWN + 2)),${lines}p" "$T/events.log")
    EVENTS_SHOWN=$((lines - 1))
}

# --- the worker sessions --------------------------------------------------------------------
# start_worker NAME: starts a long-lived psql session named NAME that reads its commands
# from a FIFO we keep open.
start_worker() {
    local w=$1 fd
    mkfifo "$T/$w.in"
    chown postgres: "$T/$w.in"
    (
        # Do not hand the other workers' FIFOs to this psql.
        for fd in "${WFD[@]}"; do exec {fd}>&-; done
        exec <"$T/$w.in" >"$T/$w.out" 2>&1
        as_pg_exec PGAPPNAME="$w" psql -X -q -A -t -v ON_ERROR_STOP=0
    ) &
    WPID[$w]=$!
    exec {fd}>"$T/$w.in"
    WFD[$w]=$fd
    WLINES[$w]=0
}

# in_worker NAME SQL: runs SQL in NAME's session and waits for its output (up to 10 s),
# leaves the output in $OUT and shows both like psql would: NAME=# for the first line,
# NAME-# for continuation lines; a one-line answer to a one-line query goes after "->".
in_worker() {
    local w=$1 sql=$2 marker end i=0 prompt cont pad
    SEQ=$((SEQ + 1))
    marker="--end-of-output-$SEQ--"
    printf '%s\n\\echo %s\n' "$sql" "$marker" >&"${WFD[$w]}"
    until end=$(grep -n -x -m 1 -- "$marker" "$T/$w.out" | cut -d: -f1) && [ -n "$end" ]; do
        sleep 0.005
        i=$((i + 1))
        if [ "$i" -gt 2000 ]; then
            echo "demo.sh: $w did not answer within 10 s" >&2
            return 1
        fi
    done
    OUT=$(sed -n "$((WLINES[$w] + 1)),$((end - 1))p" "$T/$w.out" | sed -E 's/^psql:<stdin>:[0-9]+: //')
    WLINES[$w]=$end

    prompt="  $w=# "
    cont="  $w-# "
    pad=$(printf '%*s' "${#prompt}" '')
    if [ "$(wc -l <<<"$sql")" -eq 1 ] && [ "$(wc -l <<<"$OUT")" -eq 1 ] && [ -n "$OUT" ]; then
        printf '%s%s   -> %s\n' "$prompt" "$sql" "$OUT"
    else
        printf '%s%s\n' "$prompt" "$(head -n 1 <<<"$sql")"
        sed -n '2,$p' <<<"$sql" | sed "s/^/$cont/"
        [ -z "$OUT" ] || sed "s/^/$pad/" <<<"$OUT"
    fi
}

# Indents a query's output and drops its blank lines.
indent() { sed -e '/^ *$/d' -e 's/^/    /'; }

# --- 1. dependencies, build, server ---------------------------------------------------------
START_MS=$(now_ms)
step "Setting up"
say "installing dependencies (apt-get, only what is missing) ..."
bash "$ROOT/scripts/install-deps.sh"
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || true)}
if [ -z "$PG_CONFIG" ] || ! PG_BINDIR=$("$PG_CONFIG" --bindir) || [ -z "$PG_BINDIR" ]; then
    echo "demo.sh: no working pg_config (set PG_CONFIG, or install postgresql-server-dev-15)" >&2
    exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/leader-demo.XXXXXX")
say "building and installing the extension (make, make install) ..."
if ! { make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" && make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" install; } \
    </dev/null >"$T/build.log" 2>&1; then
    echo "demo.sh: the build failed" >&2
    exit 1
fi

# The server listens only on a Unix socket inside $T, so no port can clash; a free TCP
# port number is still used, for tidiness.
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chown postgres: "$T"
chmod 0700 "$T"
say "creating a throwaway cluster in $T/data (as the OS user postgres) ..."
as_pg initdb -D "$T/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 -N </dev/null >"$T/initdb.log" 2>&1
cat >>"$T/data/postgresql.conf" <<EOF
# leader demo: no TCP, the socket lives in the demo's private directory
listen_addresses = ''
unix_socket_directories = '$T'
port = $PORT
EOF
as_pg pg_ctl start -D "$T/data" -l "$T/server.log" -w </dev/null >/dev/null
SERVER_STARTED=1
say "PostgreSQL $(observe -At -c 'SHOW server_version') is running (postmaster pid $(head -n 1 "$T/data/postmaster.pid"), socket in $T, port $PORT)"

say "CREATE EXTENSION leader;"
observe -c 'CREATE EXTENSION leader'
note "installed version $(observe -At -c "SELECT extversion FROM pg_extension WHERE extname = 'leader'")"

# --- 2. the listener ------------------------------------------------------------------------
cp "$ROOT/scripts/demo_listener.py" "$T/demo_listener.py"
(as_pg_exec /usr/bin/python3 -u "$T/demo_listener.py" "host=$T port=$PORT dbname=postgres user=postgres") \
    </dev/null >"$T/events.log" 2>&1 &
LISTENER_PID=$!
for _ in $(seq 500); do
    grep -q ' ready$' "$T/events.log" && break
    sleep 0.01
done
grep -q ' ready$' "$T/events.log" || { echo "demo.sh: the listener did not start" >&2; exit 1; }
say "a listener (python3 + psycopg, pid $LISTENER_PID) runs LISTEN leader_changed for the whole demo."
note "Its lines below start with 'listener |' and the local time it received the event."

# --- 3. election ----------------------------------------------------------------------------
step "Three workers want to produce the nightly report; only one of them may"
for w in "${WORKERS[@]}"; do
    start_worker "$w"
done
say "started three psql sessions: worker-a (pid ${WPID[worker-a]}), worker-b (pid ${WPID[worker-b]}), worker-c (pid ${WPID[worker-c]})"
note "(application_name is the worker's name; leader_try_acquire never waits)"
for w in "${WORKERS[@]}"; do
    in_worker "$w" "SELECT leader_try_acquire('$GROUP');"
done
show_events 1
in_worker worker-a "SELECT leader_term('$GROUP');"
TERM_A=$OUT
in_worker worker-b "SELECT leader_current('$GROUP');"
say "worker-a leads with term $TERM_A (its fencing token) and keeps its session open while it works."

step "What the server knows: SELECT * FROM leader_status;"
observe -x -c 'SELECT * FROM leader_status' | indent
BACKEND_A=$(observe -At -c "SELECT pid FROM leader_status WHERE group_name = '$GROUP'")
TTL=$(observe -At -c "SELECT extract(epoch FROM expires_at - renewed_at)::int FROM leader_status WHERE group_name = '$GROUP'" 2>/dev/null || echo 15)
say "the lease lasts ${TTL} s unless renewed; session_alive comes from the advisory lock that"
note "worker-a's backend (pid $BACKEND_A) holds in the extension's own lock space:"
observe -c "SELECT locktype, classid, objid, objsubid, pid, mode, granted FROM pg_locks WHERE locktype = 'advisory'" | indent
note "(objsubid is neither 1 nor 2, so no pg_advisory_lock() call can ever take or collide with it)"

# --- 4. crash failover ----------------------------------------------------------------------
step "worker-a crashes: kill -9 of its psql client (pid ${WPID[worker-a]})"
note "No release, no goodbye: its backend (pid $BACKEND_A) just sees the connection drop."
t0=$(now_ms)
{ kill -KILL "${WPID[worker-a]}" && wait "${WPID[worker-a]}"; } 2>/dev/null || true
unset 'WPID[worker-a]'
fd=${WFD[worker-a]}
exec {fd}>&-
unset 'WFD[worker-a]'
say "worker-b asks again right away, long before the ${TTL} s lease would run out:"
attempts=1
in_worker worker-b "SELECT leader_try_acquire('$GROUP');"
# The killed client's backend may need a moment to notice the closed connection.
while [ "$OUT" != t ] && [ "$attempts" -lt 100 ]; do
    sleep 0.02
    attempts=$((attempts + 1))
    in_worker worker-b "SELECT leader_try_acquire('$GROUP');" >/dev/null
done
t1=$(now_ms)
[ "$OUT" = t ] || { echo "demo.sh: worker-b did not take over" >&2; exit 1; }
[ "$attempts" -eq 1 ] || note "(true at attempt $attempts: the old backend took a moment to exit)"
show_events 2
in_worker worker-b "SELECT leader_term('$GROUP');"
TERM_B=$OUT
say "worker-b leads with term $TERM_B, $((t1 - t0)) ms after worker-a was killed, not ${TTL} s"
note "(wall-clock time measured by this script, its own plumbing included)."
note "Its call saw that term $TERM_A's session was gone (its advisory lock went with it),"
note "ended that term ('vacated') and took over, in one transaction."

# --- 5. graceful handover -------------------------------------------------------------------
step "worker-b finishes its shift and hands over gracefully"
in_worker worker-b "SELECT leader_release('$GROUP');"
in_worker worker-c "SELECT leader_try_acquire('$GROUP');"
show_events 2
in_worker worker-c "SELECT leader_term('$GROUP');"
TERM_C=$OUT
say "worker-c leads with term $TERM_C: the release ended term $TERM_B at once, nothing to wait out."

# --- 6. fencing -----------------------------------------------------------------------------
step "Fencing: a write is accepted only under the current term"
observe -c 'CREATE TABLE nightly_report (term bigint, written_by text, written_at timestamptz DEFAULT now())'
say "created table nightly_report; each writer guards its write with leader_fence(group, its term)."
say "worker-b was paused, wakes up still believing it leads with term $TERM_B, and writes:"
in_worker worker-b "BEGIN;
SELECT leader_fence('$GROUP', $TERM_B);
INSERT INTO nightly_report (term, written_by) VALUES ($TERM_B, 'worker-b');
COMMIT;"
say "refused: term $TERM_B is stale, so the INSERT never ran and COMMIT rolled back."
say "worker-c, the real leader, writes with term $TERM_C:"
in_worker worker-c "BEGIN;
SELECT leader_fence('$GROUP', $TERM_C);
INSERT INTO nightly_report (term, written_by) VALUES ($TERM_C, 'worker-c');
COMMIT;"
say "accepted: until that COMMIT, leadership could not change hands."
say "SELECT term, written_by FROM nightly_report;"
observe -c 'SELECT term, written_by FROM nightly_report' | indent

# --- 7. summary and teardown ----------------------------------------------------------------
step "Final state"
observe -c 'SELECT group_name, holder, kind, term, state, session_alive FROM leader_status' | indent
say "every event the listener received, in order:"
sed -n '2,$p' "$T/events.log" | indent
EVENTS=$(sed -n '2,$p' "$T/events.log" | awk '{print $2}' | paste -sd' ')
if [ "$EVENTS" != "acquired vacated acquired released acquired" ]; then
    say "unexpected sequence of events: $EVENTS"
    exit 1
fi
note "Each term has exactly one 'acquired' and, once over, exactly one ending event."

step "Tearing down"
say "stopping the psql sessions, the listener and the server; removing $T"
teardown
ELAPSED=$(($(now_ms) - START_MS))
say "done in $((ELAPSED / 1000)).$(printf '%03d' $((ELAPSED % 1000))) s"
