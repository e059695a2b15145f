#!/usr/bin/env bash
# scripts/unpack-debian-postgres.sh: an older release of Debian 12's PostgreSQL 15,
# unpacked beside the installed one, as the old side of the pg_upgrade test
# (test/t/037_pg_upgrade.pl).
#
# Why not the installed 15: PostgreSQL 15.20, the release Debian 12 installs today, keeps
# a reserved column option (pg_attver) on every column of every table; the pg_dump of
# 16.14, 17.10, 18.4 and 19beta2 copies it into the new cluster, whose server rejects it
# ("unrecognized parameter"), so pg_upgrade from 15.20 to those releases fails for any
# table, with or without this extension. Debian 12's 15.18 has no such option.
#
# Owns: that unpacked installation. Debian's packages postgresql-15, postgresql-client-15,
# postgresql-server-dev-15, libpq5 and libpq-dev of version $VERSION are fetched with
# apt-get download (which checks them against the archive's signed index) and unpacked
# with dpkg -x into ${LEADER_PG_CACHE:-/var/cache/leader-postgres}/debian-$VERSION/,
# never installed: its pg_config finds the headers and PGXS inside it (PostgreSQL's
# paths are relative to its binaries). A finished unpack (marked by .complete) is reused.
# Readable by every user, owned by root.
#
# Usage (as root): bash scripts/unpack-debian-postgres.sh
# Its last line of output is the unpacked pg_config's path.
set -euo pipefail

VERSION=15.18-0+deb12u1
PACKAGES=(postgresql-15 postgresql-client-15 postgresql-server-dev-15 libpq5 libpq-dev)
CACHE=${LEADER_PG_CACHE:-/var/cache/leader-postgres}
PREFIX=$CACHE/debian-$VERSION
PG_CONFIG=$PREFIX/usr/lib/postgresql/15/bin/pg_config

if [ "$(id -u)" -ne 0 ]; then
    echo "unpack-debian-postgres.sh: run this as root (it writes to $CACHE)" >&2
    exit 1
fi

mkdir -p "$CACHE"
exec 9>"$PREFIX.lock"
flock 9

if [ ! -e "$PREFIX/.complete" ]; then
    rm -rf "$PREFIX"
    DEBS=$(mktemp -d "${TMPDIR:-/tmp}/leader-debs.XXXXXX")
    trap 'rm -rf "$DEBS"' EXIT
    chmod 0755 "$DEBS"              # apt-get download fetches as the user _apt
    echo "unpack-debian-postgres: fetching Debian's PostgreSQL $VERSION into $PREFIX" >&2
    if ! (cd "$DEBS" && apt-get download -q "${PACKAGES[@]/%/=$VERSION}") >"$DEBS/log" 2>&1; then
        apt-get update -q >>"$DEBS/log" 2>&1 || true
        if ! (cd "$DEBS" && apt-get download -q "${PACKAGES[@]/%/=$VERSION}") >>"$DEBS/log" 2>&1; then
            echo "unpack-debian-postgres.sh: could not fetch Debian's packages of" \
                "PostgreSQL $VERSION:" >&2
            tail -n 20 "$DEBS/log" >&2
            exit 1
        fi
    fi
    mkdir -p "$PREFIX"
    for deb in "$DEBS"/*.deb; do
        dpkg -x "$deb" "$PREFIX"
    done
    chmod -R a+rX "$PREFIX"
    touch "$PREFIX/.complete"
fi

echo "$PG_CONFIG"
