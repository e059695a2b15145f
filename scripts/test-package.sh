#!/usr/bin/env bash
# scripts/test-package.sh: tests the Debian packaging (debian/) and the PGXN metadata
# (META.json) of the leader extension, from the source tree to a running server.
#
# Owns: the packaging test. As root, on Debian 12:
#   1. installs the dependencies (scripts/install-deps.sh);
#   2. checks that META.json is valid JSON and that its version, debian/changelog's
#      upstream version and leader.control's default_version agree, and that META.json
#      and debian/ name the PostgreSQL majors that scripts/test.sh tests;
#   3. copies the source tree (tracked and untracked-but-not-ignored files, as
#      scripts/test.sh does) into a fresh temporary directory and makes the orig tarball
#      from it (without debian/); the tree itself is never written to;
#   4. installs the Build-Depends of debian/control ("apt-get build-dep") and lintian if
#      any is missing, and builds the source and binary packages in the copy
#      ("dpkg-buildpackage -us -uc");
#   5. runs lintian on the result and shows its output (only errors fail);
#   6. checks that the .deb contains leader.so, leader.control, the SQL scripts and
#      pg_leader, installs it with apt-get (over files that "make install" put at the same
#      paths, and over an installed copy of the same version), and checks the installed
#      package with "dpkg --verify", "dpkg -L" and "dpkg -S";
#   7. as the OS user postgres, runs a throwaway server from the package's files in the
#      temporary directory (shared_preload_libraries = 'leader', Unix socket only):
#      CREATE EXTENSION, leader_try_acquire, the background workers, and pg_leader
#      --version and status.
# Prints one line per check, "ok - ..." or "not ok - ...", and exits non-zero if any
# failed. The server it started and the temporary directory are removed on exit, also
# on failure or interrupt.
#
# The package stays installed afterwards: it holds the same files, at the same paths, as
# "make install" does ("make install" later simply overwrites them again; "apt-get remove
# postgresql-15-leader" removes them).
#
# Usage (as root, from anywhere): bash scripts/test-package.sh
# (The check functions below are called through "check", which shellcheck cannot follow.)
# shellcheck disable=SC2317
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "$(id -u)" -ne 0 ]; then
    echo "test-package.sh: run this as root (it installs packages, and runs the test" >&2
    echo "server as the OS user \"postgres\")" >&2
    exit 1
fi

export LANG=C.UTF-8 LC_ALL=C.UTF-8

# The package is built for the PostgreSQL version of Debian 12.
PGVERSION=15
PKG=postgresql-$PGVERSION-leader
PG_BINDIR=/usr/lib/postgresql/$PGVERSION/bin
PORT=5432 # only the name of the socket file in our own socket directory: no TCP

# apt-get, quiet and non-interactive; it waits for the dpkg lock if another apt holds it.
APT=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)

log() { printf '\n=== %s\n' "$*"; }

PASSED=0
FAILED=0
ok() {
    echo "ok - $*"
    PASSED=$((PASSED + 1))
}
not_ok() {
    echo "not ok - $*"
    FAILED=$((FAILED + 1))
}
# indent FILE: shows a command's output under a check line.
indent() { sed 's/^/    /' "$1"; }

# check DESCRIPTION COMMAND...: runs COMMAND with its output in $WORK/check.out, prints
# ok or not ok (with that output); returns COMMAND's status.
check() {
    local what=$1 status=0
    shift
    "$@" >"$WORK/check.out" 2>&1 || status=$?
    if [ "$status" -eq 0 ]; then
        ok "$what"
    else
        not_ok "$what"
        indent "$WORK/check.out"
    fi
    return "$status"
}

# finish: the summary line, and the exit status.
finish() {
    echo
    echo "test-package: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ] && exit 0
    exit 1
}

# --- 1. dependencies (and the OS user postgres) -------------------------------------------
log "installing dependencies"
bash "$ROOT/scripts/install-deps.sh" --tests

# --- the temporary directory, and cleanup -------------------------------------------------
# shellcheck source=scripts/stop-servers.sh
. "$ROOT/scripts/stop-servers.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/leader-package.XXXXXX")
# Owned by postgres, which runs the server in it; root builds in it all the same.
chown postgres:postgres "$WORK" 2>/dev/null || true
chmod 0700 "$WORK"
DATA=$WORK/data
SOCK=$WORK/sock
SERVER_STARTED=

# Stops the server this script started (pg_ctl, by its data directory), then anything
# still running from a data directory in $WORK (by the pid in its postmaster.pid), and
# removes $WORK. A second interrupt does not cut it short.
cleanup() {
    trap - EXIT
    trap '' INT TERM
    if [ -n "$SERVER_STARTED" ] && [ -f "$DATA/postmaster.pid" ]; then
        as_postgres pg_ctl stop -D "$DATA" -m fast -w -t 30 >/dev/null 2>&1 || true
    fi
    if [ -d "$WORK" ]; then
        stop_servers_in "$WORK" "$PG_BINDIR"
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# as_postgres COMMAND...: runs COMMAND as the OS user postgres in $WORK, with a small,
# clean environment that points libpq at the test server.
as_postgres() {
    (cd "$WORK" && exec setpriv --reuid=postgres --regid=postgres --init-groups \
        env -i PATH="$PG_BINDIR:/usr/local/bin:/usr/bin:/bin" HOME="$WORK" TMPDIR="$WORK" \
        LANG="$LANG" LC_ALL="$LC_ALL" \
        PGHOST="$SOCK" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres "$@")
}

# psql_value SQL: prints the single value SQL returns, from the test server.
psql_value() {
    as_postgres psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"
}

# --- 2. versions --------------------------------------------------------------------------
log "versions"
# X.Y -> X.Y.0 (PGXN wants semantic versions; extension versions are often X.Y).
semver() {
    case $1 in
    *.*.*) echo "$1" ;;
    *.*) echo "$1.0" ;;
    *) echo "$1.0.0" ;;
    esac
}
CONTROL_VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" leader.control)
SRC_NAME=$(dpkg-parsechangelog -l debian/changelog -S Source)
DEB_VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
UPSTREAM_VERSION=${DEB_VERSION#*:}
UPSTREAM_VERSION=${UPSTREAM_VERSION%-*}
META_VERSION=

if check "META.json is valid JSON" /usr/bin/python3 -m json.tool META.json; then
    META_VERSION=$(/usr/bin/python3 -c \
        'import json; print(json.load(open("META.json"))["version"])' 2>/dev/null || true)
fi
if [ -n "$CONTROL_VERSION" ] && [ "$META_VERSION" = "$(semver "$CONTROL_VERSION")" ]; then
    ok "META.json's version $META_VERSION matches leader.control's $CONTROL_VERSION"
else
    not_ok "META.json's version '$META_VERSION' matches leader.control's '$CONTROL_VERSION'"
fi
# provides.leader: the same version, and files that exist.
check "META.json provides leader $META_VERSION from files that exist" \
    /usr/bin/python3 - "$META_VERSION" <<'EOF' || true
import json, os, sys
meta = json.load(open("META.json"))
ext = meta["provides"]["leader"]
problems = []
if ext.get("version") != sys.argv[1]:
    problems.append("provides.leader.version is %r" % ext.get("version"))
for key in ("file", "docfile"):
    if not os.path.isfile(ext.get(key, "")):
        problems.append("provides.leader.%s %r does not exist" % (key, ext.get(key)))
if meta.get("meta-spec", {}).get("version") != "1.0.0":
    problems.append("meta-spec.version is not 1.0.0")
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
if [ "$UPSTREAM_VERSION" = "$CONTROL_VERSION" ] &&
    [ "$(semver "$UPSTREAM_VERSION")" = "$META_VERSION" ]; then
    ok "debian/changelog's upstream version $UPSTREAM_VERSION matches leader.control and META.json"
else
    not_ok "debian/changelog's upstream version '$UPSTREAM_VERSION' matches" \
        "leader.control ('$CONTROL_VERSION') and META.json ('$META_VERSION')"
fi

# The PostgreSQL majors that META.json and debian/ say are supported and tested: those of
# test.sh's matrix (MAJORS=(...)).
TESTED_MAJORS=$(sed -n 's/^MAJORS=(\(.*\))$/\1/p' scripts/test.sh)
check "META.json, debian/control.in and debian/pgversions name the majors scripts/test.sh tests ($TESTED_MAJORS)" \
    /usr/bin/python3 - "$TESTED_MAJORS" <<'EOF' || true
import json, re, sys
def majors(text):
    return list(dict.fromkeys(re.findall(r"\b(1[5-9]|[2-9][0-9])(?=\b|beta|rc)", text)))
def after(pattern, text):
    found = re.search(pattern, " ".join(text.split()))
    return found.group(1) if found else ""
said = {
    "META.json": " ".join(json.load(open("META.json"))["x_postgresql_tested"]),
    "debian/control.in": after(r"tested on, PostgreSQL ([^.]*)\.", open("debian/control.in").read()),
    "debian/pgversions": after(r"tests it on, ([^.]*)\.", open("debian/pgversions").read()),
}
wanted = sys.argv[1].split()
bad = [name for name, text in said.items() if majors(text) != wanted]
print("\n".join(f"{name} does not name {' '.join(wanted)}" for name in bad))
sys.exit(1 if bad else 0)
EOF

# --- 3. a copy of the source tree ---------------------------------------------------------
SRC_DIR=$WORK/src
COPY=$SRC_DIR/$SRC_NAME-$UPSTREAM_VERSION
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
    tar -C "$ROOT" -cf - -- "${files[@]}" | tar -C "$COPY" -xf -
else
    cp -a "$ROOT/." "$COPY/"
fi
# The upstream tarball that the 3.0 (quilt) source format wants next to the tree.
ORIG=$SRC_DIR/${SRC_NAME}_$UPSTREAM_VERSION.orig.tar.gz
tar -C "$SRC_DIR" --exclude="$SRC_NAME-$UPSTREAM_VERSION/debian" --sort=name \
    --owner=0 --group=0 --numeric-owner -czf "$ORIG" "$SRC_NAME-$UPSTREAM_VERSION"

# --- 4. build dependencies, and the build -------------------------------------------------
# in_copy COMMAND...: runs COMMAND in the copy.
in_copy() { (cd "$COPY" && "$@"); }
# Build-Depends (from debian/control, so the list lives in one place) and lintian.
build_deps_missing() {
    ! in_copy dpkg-checkbuilddeps >/dev/null 2>&1 ||
        [ "$(dpkg-query -W -f='${db:Status-Status}' lintian 2>/dev/null || true)" != installed ]
}
if build_deps_missing; then
    APT_LOG=$WORK/apt-build-deps.log
    if {
        "${APT[@]}" update &&
            "${APT[@]}" build-dep -y --no-install-recommends "$COPY" &&
            "${APT[@]}" install -y --no-install-recommends lintian
    } </dev/null >"$APT_LOG" 2>&1; then
        echo "installed the Build-Depends of debian/control and lintian"
    else
        echo "apt-get failed; its output follows:"
        indent "$APT_LOG"
    fi
fi
check "build dependencies of debian/control are installed" in_copy dpkg-checkbuilddeps || true
check "debian/control is up to date with debian/control.in (pg_buildext checkcontrol)" \
    in_copy pg_buildext checkcontrol || true

log "building the source and binary packages (dpkg-buildpackage -us -uc)"
BUILD_LOG=$SRC_DIR/build.log
build_status=0
(cd "$COPY" && exec env -u PG_CONFIG -u MAKEFLAGS -u MAKELEVEL -u MFLAGS \
    dpkg-buildpackage -us -uc) </dev/null >"$BUILD_LOG" 2>&1 || build_status=$?
ARCH=$(dpkg --print-architecture)
DEB=$SRC_DIR/${PKG}_${DEB_VERSION#*:}_$ARCH.deb
DSC=$SRC_DIR/${SRC_NAME}_${DEB_VERSION#*:}.dsc
CHANGES=$SRC_DIR/${SRC_NAME}_${DEB_VERSION#*:}_$ARCH.changes
if [ "$build_status" -eq 0 ] && [ -f "$DSC" ] && [ -f "$DEB" ] && [ -f "$CHANGES" ]; then
    ok "dpkg-buildpackage builds $(basename "$DSC") and $(basename "$DEB")"
else
    not_ok "dpkg-buildpackage builds $(basename "$DSC") and $(basename "$DEB")" \
        "(exit $build_status)"
    echo "    ----- the last 60 lines of the build log -----"
    tail -n 60 "$BUILD_LOG" | sed 's/^/    /'
    finish
fi

# --- 5. lintian ---------------------------------------------------------------------------
log "lintian"
# Run as postgres: lintian warns when it runs as root. Errors (E:) fail the check,
# warnings and the rest are shown.
lintian_status=0
as_postgres lintian --fail-on error "$CHANGES" >"$SRC_DIR/lintian.out" 2>&1 ||
    lintian_status=$?
indent "$SRC_DIR/lintian.out"
errors=$(grep -c '^E: ' "$SRC_DIR/lintian.out" || true)
warnings=$(grep -c '^W: ' "$SRC_DIR/lintian.out" || true)
if [ "$lintian_status" -eq 0 ]; then
    ok "lintian: no errors ($warnings warnings)"
else
    not_ok "lintian: no errors ($errors errors, $warnings warnings, exit $lintian_status)"
fi

# --- 6. the .deb, installed ---------------------------------------------------------------
# Never install a package that lacks one of the files that make the extension work.
PKGLIBDIR=/usr/lib/postgresql/$PGVERSION/lib
EXTDIR=/usr/share/postgresql/$PGVERSION/extension
SHIPPED=("$PKGLIBDIR/leader.so" "$EXTDIR/leader.control"
    "$EXTDIR/leader--1.0.sql" "$EXTDIR/leader--1.0--$CONTROL_VERSION.sql" "$PG_BINDIR/pg_leader")
dpkg-deb -c "$DEB" | awk '{ sub(/^\./, "", $6); print $6 }' >"$SRC_DIR/deb-contents"
deb_complete=1
for f in "${SHIPPED[@]}"; do
    if grep -qxF "$f" "$SRC_DIR/deb-contents"; then
        ok "$(basename "$DEB") contains $f"
    else
        not_ok "$(basename "$DEB") contains $f"
        deb_complete=
    fi
done
[ -n "$deb_complete" ] || finish

log "installing $(basename "$DEB")"
# dpkg overwrites the files "make install" left at the same paths (no package owns them);
# --reinstall makes a second run replace the same version.
INSTALL_LOG=$SRC_DIR/apt-install.log
if "${APT[@]}" install -y --reinstall --allow-downgrades --no-install-recommends "$DEB" \
    </dev/null >"$INSTALL_LOG" 2>&1 &&
    [ "$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$PKG" 2>/dev/null)" = \
        "installed $DEB_VERSION" ]; then
    ok "apt-get installs $PKG $DEB_VERSION"
else
    not_ok "apt-get installs $PKG $DEB_VERSION"
    indent "$INSTALL_LOG"
    finish
fi
# dpkg --verify prints one line per file whose checksum differs (and still exits 0).
verify() {
    local out
    out=$(dpkg --verify "$PKG" 2>&1) || { echo "$out"; return 1; }
    [ -z "$out" ] || { echo "$out"; return 1; }
}
check "dpkg --verify $PKG: every file is as the package installed it" verify || true

# ships PATH: the package lists PATH, dpkg says the package owns it, and it is there.
ships() {
    dpkg -L "$PKG" | grep -qxF "$1" || { echo "dpkg -L $PKG does not list $1"; return 1; }
    dpkg -S "$1" | grep -q "^$PKG: " || { dpkg -S "$1"; return 1; }
    [ -f "$1" ] || { echo "$1 is missing"; return 1; }
}
for f in "${SHIPPED[@]}"; do
    check "installed $PKG ships $f (dpkg -L, dpkg -S)" ships "$f" || true
done

# --- 7. a server with the packaged extension ----------------------------------------------
log "a throwaway server in $DATA (shared_preload_libraries = 'leader')"
start_server() {
    mkdir -p "$SOCK" && chown postgres:postgres "$SOCK" && chmod 0700 "$SOCK"
    as_postgres initdb -D "$DATA" -A trust -U postgres --no-sync -E UTF8 \
        --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; return 1; }
    cat >>"$DATA/postgresql.conf" <<EOF
# scripts/test-package.sh
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
shared_preload_libraries = 'leader'
fsync = off
EOF
    SERVER_STARTED=1
    as_postgres pg_ctl start -D "$DATA" -l "$WORK/server.log" -w -t 60 >/dev/null 2>&1 ||
        { tail -n 30 "$WORK/server.log"; return 1; }
}
check "initdb, and the server starts with shared_preload_libraries = 'leader'" \
    start_server || finish

create_extension() {
    local v
    psql_value "CREATE EXTENSION leader" || return 1
    v=$(psql_value "SELECT extversion FROM pg_extension WHERE extname = 'leader'") || return 1
    [ "$v" = "$CONTROL_VERSION" ] || { echo "extversion is '$v'"; return 1; }
}
check "CREATE EXTENSION leader (version $CONTROL_VERSION)" create_extension || finish

# A session-bound leadership (it ends with the psql session), then a named holder's,
# which pg_leader status shows below.
acquire() {
    local v
    v=$(psql_value "SELECT leader_try_acquire('g')") || return 1
    [ "$v" = t ] || { echo "leader_try_acquire('g') returned '$v'"; return 1; }
    v=$(psql_value "SELECT leader_try_acquire('g', '10 minutes', 'package-test')") || return 1
    [ "$v" = t ] || { echo "... as holder package-test returned '$v'"; return 1; }
}
check "leader_try_acquire('g') returns t (session-bound, then as a named holder)" acquire || true

# The launcher starts a worker for each database that has the extension.
workers_run() {
    local rows=
    for _ in $(seq 1 60); do
        rows=$(psql_value "SELECT string_agg(backend_type || ' (' || coalesce(datname, '-')
                                   || ')', ', ' ORDER BY backend_type)
                             FROM pg_stat_activity
                            WHERE backend_type IN ('leader launcher', 'leader worker')") ||
            return 1
        case $rows in *"leader launcher"*"leader worker (postgres)"*) echo "$rows"; return 0 ;; esac
        sleep 0.5
    done
    echo "after 30 s, pg_stat_activity shows: ${rows:-no leader processes}"
    return 1
}
check "the leader launcher and the worker for database postgres run (pg_stat_activity)" \
    workers_run || true

pg_leader_version() {
    local v
    v=$(as_postgres "$PG_BINDIR/pg_leader" --version) || return 1
    [ "$v" = "pg_leader (leader) $CONTROL_VERSION" ] || { echo "it printed: $v"; return 1; }
}
check "pg_leader --version prints version $CONTROL_VERSION" pg_leader_version || true

pg_leader_status() {
    local out
    out=$(as_postgres "$PG_BINDIR/pg_leader" status --group g 2>&1) || { echo "$out"; return 1; }
    echo "$out"
    echo "$out" | grep -qE '^g +held +[0-9]+ +package-test ' ||
        { echo "(no line \"g held TERM package-test ...\")"; return 1; }
}
check "pg_leader status shows group g held by package-test" pg_leader_status || true

finish
