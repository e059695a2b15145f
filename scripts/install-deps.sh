#!/usr/bin/env bash
# scripts/install-deps.sh: installs everything needed to build, test and demo the
# leader extension on Debian 12 (bookworm), and makes sure the unprivileged OS user
# "postgres" exists (PostgreSQL refuses to run as root).
#
# Owns: the list of Debian packages the project needs. Idempotent: when every package
# is already installed it touches nothing (and needs no network); otherwise it runs
# "apt-get update" and "apt-get install". Output is quiet: apt's log goes to a
# temporary file that is printed only if something fails.
#
# Usage (as root): bash scripts/install-deps.sh [--tests]
#   --tests  also what only the test command needs (PgBouncer, network namespaces,
#            Node.js, the Debian packaging tools, the tools that build PostgreSQL 16-19
#            from source), which the demo and the benchmarks do without.
set -euo pipefail

PACKAGES=(
    build-essential            # gcc, make
    postgresql-15              # server binaries (initdb, pg_ctl, postgres)
    postgresql-server-dev-15   # headers, PGXS, pg_regress, pg_isolation_regress, TAP modules
    postgresql-client-15       # psql
    libkrb5-dev                # gssapi.h, which the server header libpq/libpq.h includes
    perl                       # prove and Test::More, for the TAP tests ...
    libipc-run-perl            # ... and IPC::Run, which PostgreSQL's TAP modules need
    python3                    # the demo picks a free port with it
    python3-psycopg            # the fault-injection run and the benchmarks (Debian's python3)
    procps                     # ps, pgrep
    ca-certificates
)

TEST_PACKAGES=(
    pgbouncer                  # the tests of transaction pooling (test/t/014, 017)
    iproute2                   # network namespaces for the test of silent hosts (test/liveness)
    debhelper                  # builds the Debian package (scripts/test-package.sh) ...
    postgresql-server-dev-all  # ... with pg_buildext's debhelper sequence (dh --with pgxs_loop)
    libpq-dev                  # ... whose Build-Depends name libpq's headers
    lintian                    # checks the Debian package
    bison                      # building PostgreSQL 16-19 from source (build-postgres.sh) ...
    flex
    libreadline-dev
    zlib1g-dev
    pkg-config
    xz-utils                   # ... whose sources are .tar.xz
)
# Node.js and npm run the Node.js examples (examples/node); Debian's packages unless
# the machine already has both commands (from another source, which Debian's npm package
# would conflict with).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    TEST_PACKAGES+=(nodejs npm)
fi

case "${1:-}" in
    --tests) PACKAGES+=("${TEST_PACKAGES[@]}") ;;
    "") ;;
    *)
        echo "usage: install-deps.sh [--tests]" >&2
        exit 2
        ;;
esac

# Names of the wanted packages that are not fully installed yet.
missing_packages() {
    local pkg status
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = installed ] || printf '%s\n' "$pkg"
    done
}

ensure_postgres_user() {
    if ! getent passwd postgres >/dev/null; then
        # The postgresql-common package normally creates it; this covers the rest.
        getent group postgres >/dev/null || groupadd --system postgres
        useradd --system --gid postgres --home-dir /var/lib/postgresql \
            --shell /bin/bash --comment "PostgreSQL administrator" postgres
    fi
}

main() {
    local missing
    missing=$(missing_packages)

    if [ -n "$missing" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "install-deps: these packages are missing and installing them needs root:" >&2
            echo "$missing" | sed 's/^/  /' >&2
            exit 1
        fi
        local log
        log=$(mktemp "${TMPDIR:-/tmp}/leader-install-deps.XXXXXX")
        # shellcheck disable=SC2086  # word splitting of the package list is intended
        if ! {
            apt-get update -q &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                    --no-install-recommends $missing
        } </dev/null >"$log" 2>&1; then
            echo "install-deps: apt-get failed; its output follows:" >&2
            cat "$log" >&2
            rm -f "$log"
            exit 1
        fi
        rm -f "$log"
        echo "install-deps: installed $(paste -sd" " - <<<"$missing")"
    fi

    if [ "$(id -u)" -eq 0 ]; then
        ensure_postgres_user
    elif ! getent passwd postgres >/dev/null; then
        echo "install-deps: the OS user \"postgres\" is missing; run this script as root" >&2
        exit 1
    fi
}

main "$@"
