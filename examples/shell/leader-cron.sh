#!/usr/bin/env bash
# examples/shell/leader-cron.sh: a cron job that runs on one machine only, the leader.
#
# Owns the shell example of the leader extension. Install the same crontab line on
# every machine, for instance once a minute:
#
#   * * * * *  PGHOST=db.internal PGDATABASE=app /usr/local/bin/leader-cron.sh
#
# Each run asks the server for the group's lease under this machine's name, a named
# holder (a cron run is a short-lived session, so the lease must outlive it):
#   - the first machine to ask leads; its later runs renew the lease and keep the term;
#   - the others print who leads and exit;
#   - if the leader stops running (machine down, cron stopped), its lease expires after
#     LEADER_TTL and the next run elsewhere takes over with a higher term.
# LEADER_TTL must be longer than the cron period (twice is a good choice), or leadership
# changes hands between runs. The job's database writes are fenced by the term: if the
# job outlives its lease and another machine took over, they fail (SQLSTATE 55000) and
# write nothing. All runs on one machine share its name, so a run that finds the
# previous run on the same machine still going (its lock file held) exits at once.
#
# Environment: PG* (the connection), LEADER_GROUP (default nightly-report),
# LEADER_TTL (seconds, default 120), WORKER_NAME (default: the host name),
# LOCK_FILE (default: leader-cron-GROUP.lock in TMPDIR or /tmp).
# Output: "elected term=T" when this machine became leader (its previous run was not
# leader of term T), "leader term=T" on later runs, "not leader: H leads" otherwise,
# and "work term=T" once the job's fenced write has committed.
set -euo pipefail

GROUP=${LEADER_GROUP:-nightly-report}
TTL=${LEADER_TTL:-120}
HOLDER=${WORKER_NAME:-$(hostname)}
LOCK_FILE=${LOCK_FILE:-${TMPDIR:-/tmp}/leader-cron-$GROUP.lock}

exec 9>>"$LOCK_FILE"
if ! flock -n 9; then
    echo "the previous run is still going"
    exit 0
fi

PSQL=(psql -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 -v group="$GROUP" -v holder="$HOLDER" -v ttl="$TTL")

# Acquire or renew, in one psql session. Prints "TERM NEW" when this machine leads
# (NEW is t when the term began now: a renewal keeps acquired_at), else nothing.
lease=$("${PSQL[@]}" <<'SQL'
SELECT leader_try_acquire(:'group', make_interval(secs => :'ttl'), :'holder') AS won \gset
\if :won
SELECT term, acquired_at = renewed_at FROM leader_status
 WHERE group_name = :'group' AND kind = 'named' AND holder = :'holder';
\endif
SQL
)

if [ -z "$lease" ]; then
    current=$("${PSQL[@]}" <<<"SELECT coalesce(leader_current(:'group'), 'nobody')")
    echo "not leader: $current leads"
    exit 0
fi
read -r term is_new <<<"$lease"
if [ "$is_new" = t ]; then
    echo "elected term=$term"
else
    echo "leader term=$term"
fi

# The job. Here it is one row of example_work (examples/schema.sql); a real job gets the
# term (say as LEADER_TERM in its environment) and starts each transaction that writes
# with leader_fence, as this one does.
"${PSQL[@]}" -v term="$term" <<'SQL'
BEGIN;
SELECT leader_fence(:'group', :term) \g /dev/null
INSERT INTO example_work (group_name, term, worker) VALUES (:'group', :term, :'holder');
COMMIT;
SQL
echo "work term=$term"
