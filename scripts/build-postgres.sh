#!/usr/bin/env bash
# scripts/build-postgres.sh: builds one PostgreSQL major from the shipped sources, once,
# for testing the extension against versions that Debian 12 does not package.
#
# Owns: the cache of built servers. Each build lives in
#   ${LEADER_PG_CACHE:-/var/cache/leader-postgres}/<first 16 hex digits of the tarball's
#   SHA-256>/ (the tarball's checksum is verified against SHA256SUMS first), with dblink
#   installed (the pg_regress suite needs it) and TAP support enabled. A finished build
#   (marked by the file .complete) is reused as it is; an unfinished one is built again.
#   The result is readable by every user (the tests run as the OS user "postgres") and
#   owned by root; concurrent callers build a version once (a lock file beside it).
#   The test command installs the extension into it: a cached build is
#   private to this project's tests.
# The sources are ../shared/postgresql relative to the repository root (a directory holding
# postgresql-<version>.tar.xz and SHA256SUMS), or $LEADER_PG_SOURCES.
#
# Usage (as root): bash scripts/build-postgres.sh VERSION      VERSION: 15, 16, 17, 18 or 19
# Prints the build's log only on failure; its last line of output is the pg_config path.
# 15 is Debian's package, built by nobody: it prints that package's pg_config at once.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOURCES=${LEADER_PG_SOURCES:-$ROOT/../shared/postgresql}
CACHE=${LEADER_PG_CACHE:-/var/cache/leader-postgres}

usage() {
    echo "usage: build-postgres.sh VERSION   (VERSION: 15, 16, 17, 18 or 19)" >&2
    exit 2
}

[ $# -eq 1 ] || usage
case "$1" in
    15)
        echo /usr/lib/postgresql/15/bin/pg_config
        exit 0
        ;;
    16 | 17 | 18 | 19) MAJOR=$1 ;;
    *) usage ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "build-postgres.sh: run this as root (it writes to $CACHE)" >&2
    exit 1
fi

# The one tarball of this major: postgresql-16.14.tar.xz, postgresql-19beta2.tar.xz, ...
shopt -s nullglob
tarballs=("$SOURCES"/postgresql-"$MAJOR".*.tar.xz "$SOURCES"/postgresql-"$MAJOR"beta*.tar.xz
    "$SOURCES"/postgresql-"$MAJOR"rc*.tar.xz)
shopt -u nullglob
if [ ${#tarballs[@]} -ne 1 ]; then
    echo "build-postgres.sh: expected one source tarball of PostgreSQL $MAJOR in $SOURCES," \
        "found ${#tarballs[@]}" >&2
    exit 1
fi
TARBALL=${tarballs[0]}
NAME=$(basename "$TARBALL")

expected=$(awk -v f="$NAME" '$2 == f || $2 == "*" f { print $1 }' "$SOURCES/SHA256SUMS")
actual=$(sha256sum "$TARBALL" | cut -d' ' -f1)
if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
    echo "build-postgres.sh: $NAME does not match its checksum in $SOURCES/SHA256SUMS" >&2
    exit 1
fi

PREFIX=$CACHE/${actual:0:16}
PG_CONFIG=$PREFIX/bin/pg_config

# One build of a version at a time: a second caller waits for the first one's result.
mkdir -p "$CACHE"
exec 9>"$PREFIX.lock"
flock 9

if [ ! -e "$PREFIX/.complete" ]; then
    rm -rf "$PREFIX"
    mkdir -p "$PREFIX"
    BUILD=$(mktemp -d "${TMPDIR:-/tmp}/leader-build-postgres.XXXXXX")
    trap 'rm -rf "$BUILD"' EXIT
    LOG=$BUILD/build.log
    echo "build-postgres: building $NAME into $PREFIX (a few minutes)" >&2
    if ! (
        tar -xJf "$TARBALL" -C "$BUILD" --strip-components=1 &&
            cd "$BUILD" &&
            ./configure --prefix="$PREFIX" --without-icu --enable-tap-tests &&
            make -j"$(nproc)" -s &&
            make -s install &&
            make -s -C contrib/dblink install
    ) </dev/null >"$LOG" 2>&1; then
        echo "build-postgres.sh: building $NAME failed; the end of its log follows:" >&2
        tail -n 60 "$LOG" >&2
        exit 1
    fi
    chmod -R a+rX "$PREFIX"
    touch "$PREFIX/.complete"
fi

echo "$PG_CONFIG"
