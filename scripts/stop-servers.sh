# scripts/stop-servers.sh: sourced by the scripts that run throwaway servers.
#
# Owns stop_servers_in DIR PG_BINDIR: stops every PostgreSQL server still running from a
# data directory under DIR (one an interrupted test or benchmark left behind), found by
# the pid in its postmaster.pid, with "pg_ctl stop -m immediate" as the OS user postgres,
# or SIGKILL if that fails. It ends only those servers, by their pid.
stop_servers_in() {
    local dir=$1 bindir=$2 pidfile datadir pid
    while IFS= read -r -d '' pidfile; do
        datadir=$(dirname "$pidfile")
        pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
        case "$pid" in '' | *[!0-9]*) continue ;; esac
        if kill -0 "$pid" 2>/dev/null; then
            echo "stopping a server left running in $datadir (pid $pid)"
            setpriv --reuid=postgres --regid=postgres --init-groups \
                "$bindir/pg_ctl" stop -D "$datadir" -m immediate -w >/dev/null 2>&1 ||
                kill -KILL "$pid" 2>/dev/null || true
        fi
    done < <(find "$dir" -name postmaster.pid -print0 2>/dev/null)
}
