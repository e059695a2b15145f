#!/usr/bin/env bash
# scripts/demo.sh: a narrated, self-contained, live demonstration of pg_leader.
#
# Owns: the demo (this file only). With no configuration it installs the dependencies,
# builds and installs the extension and pg_leader (make, make install), starts a throwaway
# PostgreSQL server with shared_preload_libraries = 'leader' (as the OS user "postgres",
# data and Unix socket in a temporary directory, no TCP), and then shows:
#   - three candidates, "pg_leader run --group demo --ttl 2s -- <heartbeat>", named
#     node-a, node-b and node-c (their application_name); only the leader's heartbeat runs,
#     printing "[node-x] leading, term N" every 0.5 s to its log, which is tailed live;
#   - "pg_leader watch --group demo", whose events are shown as they arrive ("watch |");
#   - crash failover: SIGKILL of the leader's pg_leader; its session ends, the server's
#     worker vacates the lease and wakes a waiting candidate; the failover time is computed
#     from the watch's arrival timestamps;
#   - graceful handover: SIGTERM of the new leader's pg_leader, which stops its heartbeat,
#     releases, and the last candidate takes over; the handover time likewise;
#   - "pg_leader status".
# Everything it started (server, candidates, watch, tail; by pid) and its temporary
# directory are removed on exit, also after an error or an interrupt.
#
# Usage (as root, from anywhere): bash scripts/demo.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GROUP=demo
NODES=(node-a node-b node-c)

# --- output helpers ------------------------------------------------------------------------
ts() { date +%H:%M:%S.%3N; }
now_ms() { date +%s%3N; }
say() { printf '[%s] %s\n' "$(ts)" "$*"; }
step() { printf '\n[%s] === %s\n' "$(ts)" "$*"; }
die() { echo "demo.sh: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run this as root (it installs packages and the extension, and runs the" >&2
    echo "demo server as the OS user \"postgres\")" >&2
    exit 1
fi
export LANG=C.UTF-8 LC_ALL=C.UTF-8

# --- state, and the teardown that undoes it -------------------------------------------------
T=                   # the temporary directory
SERVER_STARTED=      # set once pg_ctl start succeeded
TAIL_PID=            # the tail showing the heartbeats
WATCH_PID=           # pg_leader watch
declare -A PID=()    # node name -> pid of its pg_leader run
WATCH_SHOWN=0        # lines of the watch's output already shown

# Ends what this script started, by pid, stops the server and removes $T. Idempotent.
teardown() {
    local pid
    # Candidates first (SIGTERM: each stops its heartbeat and releases), then the watch.
    for pid in "${PID[@]}" $WATCH_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PID[@]}" $WATCH_PID; do
        wait "$pid" 2>/dev/null || true
    done
    PID=()
    WATCH_PID=
    if [ -n "$TAIL_PID" ]; then
        kill -TERM "$TAIL_PID" 2>/dev/null || true
        wait "$TAIL_PID" 2>/dev/null || true
        TAIL_PID=
    fi
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
        for f in "$T"/build.log "$T"/initdb.log "$T"/server.log "$T"/watch.* "$T"/node-*; do
            [ -s "$f" ] && { echo "----- $(basename "$f")"; tail -n 15 "$f"; }
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
        LANG="$LANG" LC_ALL="$LC_ALL" ${TZ+TZ="$TZ"} \
        PGHOST="$T" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres \
        "$@"
}

# Runs a program as postgres (see as_pg_exec) and waits for it.
as_pg() { (as_pg_exec "$@" </dev/null); }

# --- the watch ------------------------------------------------------------------------------
# wait_event PATTERN: waits (up to 10 s) until a line of the watch's output not shown yet
# matches PATTERN (grep -E), shows every new line up to it, and leaves it in $EVENT.
wait_event() {
    local i=0 n line
    while ! n=$(tail -n "+$((WATCH_SHOWN + 1))" "$T/watch.log" | grep -n -E -m 1 -- "$1" | cut -d: -f1) \
        || [ -z "$n" ]; do
        sleep 0.01
        i=$((i + 1))
        [ "$i" -lt 1000 ] || die "no event matching /$1/ within 10 s"
    done
    while IFS= read -r line; do
        printf '   watch | %s\n' "$line"
        EVENT=$line
    done < <(tail -n "+$((WATCH_SHOWN + 1))" "$T/watch.log" | head -n "$n")
    WATCH_SHOWN=$((WATCH_SHOWN + n))
}

# The local arrival time of $EVENT (pg_leader watch's first two fields), in epoch ms.
event_ms() { date -d "$(cut -c1-23 <<<"$EVENT")" +%s%3N; }

# The node that $EVENT says acquired the group ("acquired by "node-b (pid 123)"").
event_node() { sed -n 's/.* acquired by "\([^ "]*\) (pid [0-9]*)".*/\1/p' <<<"$EVENT"; }

# The term in $EVENT.
event_term() { sed -n 's/.*term \([0-9]*\).*/\1/p' <<<"$EVENT"; }

# wait_new_leader [EXCEPT]: waits for the next "acquired" event and sets NEW_LEADER,
# NEW_TERM and NEW_MS (when it arrived); dies unless the new leader is a running candidate
# other than EXCEPT.
wait_new_leader() {
    wait_event ' acquired by '
    NEW_MS=$(event_ms)
    NEW_LEADER=$(event_node)
    NEW_TERM=$(event_term)
    [ -n "${PID[$NEW_LEADER]:-}" ] && [ "$NEW_LEADER" != "${1:-}" ] ||
        die "unexpected leader in: $EVENT"
}

# --- 1. dependencies, build, server ---------------------------------------------------------
START_MS=$(now_ms)
step "Setting up"
say "installing dependencies (apt-get, only what is missing) ..."
bash "$ROOT/scripts/install-deps.sh" </dev/null
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || true)}
if [ -z "$PG_CONFIG" ] || ! PG_BINDIR=$("$PG_CONFIG" --bindir) || [ -z "$PG_BINDIR" ]; then
    die "no working pg_config (set PG_CONFIG, or install postgresql-server-dev-15)"
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/leader-demo.XXXXXX")
say "building and installing the extension and pg_leader (make, make install) ..."
if ! { make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" && make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" install; } \
    </dev/null >"$T/build.log" 2>&1; then
    die "the build failed"
fi
[ -x "$PG_BINDIR/pg_leader" ] || die "make install did not install $PG_BINDIR/pg_leader"

# The server listens only on a Unix socket inside $T, so no port can clash; a free TCP
# port number is still used, for tidiness.
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chown postgres: "$T"
chmod 0700 "$T"
say "creating a throwaway cluster in $T/data (as the OS user postgres) ..."
as_pg initdb -D "$T/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 -N >"$T/initdb.log" 2>&1
cat >>"$T/data/postgresql.conf" <<EOF
# leader demo: the extension's background worker; no TCP, the socket lives in the demo's
# private directory
shared_preload_libraries = 'leader'
listen_addresses = ''
unix_socket_directories = '$T'
port = $PORT
EOF
as_pg pg_ctl start -D "$T/data" -l "$T/server.log" -w >/dev/null
SERVER_STARTED=1
as_pg psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION leader' >/dev/null
say "PostgreSQL $(as_pg psql -X -At -c 'SHOW server_version') runs with shared_preload_libraries = 'leader'; CREATE EXTENSION leader done"

# --- 2. the watch ---------------------------------------------------------------------------
step "pg_leader watch --group $GROUP: every change of leadership, as the server announces it"
: >"$T/watch.log"
(as_pg_exec pg_leader watch --group "$GROUP") </dev/null >"$T/watch.log" 2>"$T/watch.err" &
WATCH_PID=$!
for _ in $(seq 500); do
    grep -q 'watching' "$T/watch.err" && break
    kill -0 "$WATCH_PID" 2>/dev/null || die "pg_leader watch exited"
    sleep 0.01
done
grep -q 'watching' "$T/watch.err" || die "pg_leader watch did not start listening"
say "watch runs (pid $WATCH_PID); its lines below start with 'watch |' and the time the event arrived"

# --- 3. election ----------------------------------------------------------------------------
step "Three candidates want to run the same job; pg_leader lets only the leader run it"
say "each runs: pg_leader run --group $GROUP --ttl 2s -- <heartbeat: '[node-x] leading, term \$LEADER_TERM' every 0.5 s>"
for n in "${NODES[@]}"; do
    : >"$T/$n.log"
done
# Shows the heartbeats live, whoever prints them (tail ends by itself if this script dies).
LOGS=()
for n in "${NODES[@]}"; do LOGS+=("$T/$n.log"); done
tail -q -n 0 -s 0.1 -F --pid=$$ "${LOGS[@]}" 2>/dev/null &
TAIL_PID=$!
for n in "${NODES[@]}"; do
    (
        as_pg_exec PGAPPNAME="$n" pg_leader run --group "$GROUP" --ttl 2s --grace 2s -- \
            sh -c 'while :; do echo "  $(date +%H:%M:%S.%3N) [$1] leading, term $LEADER_TERM"; sleep 0.5; done' sh "$n"
    ) </dev/null >"$T/$n.log" 2>"$T/$n.err" &
    PID[$n]=$!
done
say "started node-a (pid ${PID[node-a]}), node-b (pid ${PID[node-b]}), node-c (pid ${PID[node-c]}); the server elects one:"
wait_new_leader
LEADER1=$NEW_LEADER TERM1=$NEW_TERM
say "$LEADER1 leads with term $TERM1 and runs the heartbeat; the other two wait, woken by the server, not polling"
sleep 1.6

# --- 4. crash failover ----------------------------------------------------------------------
step "Crash: kill -9 of $LEADER1's pg_leader (pid ${PID[$LEADER1]}); no release, no goodbye"
T_KILL=$(now_ms)
kill -KILL "${PID[$LEADER1]}"
wait "${PID[$LEADER1]}" 2>/dev/null || true
unset "PID[$LEADER1]"
say "its guard kills the heartbeat and its session ends; the server's worker vacates term $TERM1 and wakes a candidate:"
wait_event "term $TERM1 .* vacated"
T_VACATED=$(event_ms)
wait_new_leader
T_ACQUIRED=$NEW_MS LEADER2=$NEW_LEADER TERM2=$NEW_TERM
say "failover: $((T_ACQUIRED - T_KILL)) ms from kill to new leader ($LEADER2, term $TERM2); vacated after $((T_VACATED - T_KILL)) ms, not after the 2 s TTL"
sleep 1.6

# --- 5. graceful handover -------------------------------------------------------------------
step "Handover: SIGTERM to $LEADER2's pg_leader (pid ${PID[$LEADER2]}): it stops its heartbeat, then releases"
T_TERM=$(now_ms)
kill -TERM "${PID[$LEADER2]}"
wait_event "term $TERM2 .* released"
T_RELEASED=$(event_ms)
wait_new_leader "$LEADER2"
T_ACQUIRED=$NEW_MS LEADER3=$NEW_LEADER TERM3=$NEW_TERM
rc=0
wait "${PID[$LEADER2]}" 2>/dev/null || rc=$?
unset "PID[$LEADER2]"
say "handover: $((T_ACQUIRED - T_TERM)) ms from SIGTERM to new leader ($LEADER3, term $TERM3); released after $((T_RELEASED - T_TERM)) ms; $LEADER2's pg_leader exited with $rc (its heartbeat's SIGTERM)"
sleep 1.6

# --- 6. status and teardown -----------------------------------------------------------------
step "pg_leader status: what the server holds now"
as_pg pg_leader status | sed 's/^/    /'
say "terms $TERM1 -> $TERM2 -> $TERM3: each leadership has its own, never reused; LEADER_TERM lets the job fence its writes"

step "Tearing down"
say "stopping $LEADER3 (SIGTERM), the watch, the tail and the server; removing $T"
teardown
ELAPSED=$(($(now_ms) - START_MS))
say "done in $((ELAPSED / 1000)).$(printf '%03d' $((ELAPSED % 1000))) s"
