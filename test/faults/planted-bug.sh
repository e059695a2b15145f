#!/usr/bin/env bash
# test/faults/planted-bug.sh: shows that the fault-injection checker catches a real bug.
#
# Owns the planted-bug run: builds a copy of the extension whose leader_fence checks the
# term but takes no group lock (so a handover no longer waits for fenced writes), installs
# it into a private copy of the PostgreSQL installation (PostgreSQL finds its files
# relative to its binaries, so the copy uses its own library directory and leaves the
# real one alone), and runs a short fault run against it with frozen leaders and long
# fenced transactions. It succeeds only if the checker reports a violation.
#
# Usage (as a user that may run PostgreSQL, from the source tree):
#   bash test/faults/planted-bug.sh [SEED]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
SHAREDIR=$("$PG_CONFIG" --sharedir)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/leader-planted.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# A private installation: the server's directories, copied under $WORK/root.
PGHOME=$(dirname "$BINDIR")
mkdir -p "$WORK/root$PGHOME" "$WORK/root$SHAREDIR"
cp -a "$PGHOME/." "$WORK/root$PGHOME/"
cp -a "$SHAREDIR/." "$WORK/root$SHAREDIR/"

# The broken extension: leader_fence without its group lock.
mkdir -p "$WORK/src"
cp -a "$ROOT/Makefile" "$ROOT/leader.control" "$ROOT/src" "$ROOT/sql" "$WORK/src/"
sed -i 's/^\tgroup_lock_take(group, GROUP_LOCK_FENCE, true);$/\t\/* planted bug: no group lock *\//' \
    "$WORK/src/src/election.c"
if ! grep -q 'planted bug: no group lock' "$WORK/src/src/election.c"; then
    echo "planted-bug.sh: could not find leader_fence's group lock to remove" >&2
    exit 1
fi
make -s -C "$WORK/src" PG_CONFIG="$PG_CONFIG" leader.so >/dev/null
cp "$WORK/src/leader.so" "$WORK/root$PKGLIBDIR/leader.so"

echo "planted bug: leader_fence takes no group lock; this run must find a violation"
/usr/bin/python3 "$ROOT/test/faults/run.py" --bindir "$WORK/root$BINDIR" --seed "${1:-7}" \
    --duration 30 --faults stop_client --work-ms 300 --expect-violation
