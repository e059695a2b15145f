"""
bench/throughput.py: transactions per second of leader's calls against what a
user would run instead, with pgbench (SPEC "Performance": renew throughput
>= 1.0x the equivalent plain-SQL lease upsert at the same durability; a losing
leader_try_acquire >= 0.8x pg_try_advisory_xact_lock).

Owns: the plain-SQL lease table and its renewal upsert (bench/bloat.py uses
them too), the five scripts (renew_leader, renew_plain, lose_leader,
lose_advisory, select1), the state each runs against (a group held by a named
holder, an advisory lock held by another session), the checks that each run
did what it claims, and the ratios.  Every script runs with the server's
durability (fsync, synchronous_commit on); the two renew scripts run again
with synchronous_commit = off, to show their CPU cost without the WAL flush.

Alone: python3 bench/throughput.py   (BENCH_SECONDS=2 for a quick run)
"""
from pgbench_run import CLIENTS, SETTINGS, fresh_database, log, main, run_script

DATABASE = "bench_throughput"
ADVISORY_KEY = 4242
HELD_GROUP = "tp-held"
HELD_BY = "owner"
ASYNC_COMMIT = "-c synchronous_commit=off"

PLAIN_LEASE_TABLE = """
CREATE TABLE plain_lease (
    group_name  text PRIMARY KEY,
    holder      text,
    term        bigint,
    acquired_at timestamptz,
    renewed_at  timestamptz,
    expires_at  timestamptz
)"""


def plain_renewal(group, holder, ttl):
    """
    The plain-SQL equivalent of leader_try_acquire(group, ttl, holder): takes a
    new or expired lease with term + 1, renews the holder's own unexpired lease
    with the same term, and returns no row while someone else holds it.
    `group` and `holder` are SQL expressions, `ttl` an interval literal.
    """
    return f"""
INSERT INTO plain_lease AS l (group_name, holder, term, acquired_at, renewed_at, expires_at)
VALUES ({group}, {holder}, 1, now(), now(), now() + interval '{ttl}')
ON CONFLICT (group_name) DO UPDATE SET
    term = CASE WHEN l.holder = excluded.holder AND l.expires_at >= now()
                THEN l.term ELSE l.term + 1 END,
    acquired_at = CASE WHEN l.holder = excluded.holder AND l.expires_at >= now()
                       THEN l.acquired_at ELSE now() END,
    holder = excluded.holder,
    renewed_at = now(),
    expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING term;"""


SCRIPTS = {
    "renew_leader": "SELECT leader_try_acquire('tp-' || :client_id, '15 s');",
    "renew_plain": plain_renewal("'tp-' || :client_id", "'client-' || :client_id", "15 s"),
    "lose_leader": f"SELECT leader_try_acquire('{HELD_GROUP}');",
    "lose_advisory": f"SELECT pg_try_advisory_xact_lock({ADVISORY_KEY});",
    "select1": "SELECT 1;",
}

# How to read, per group of a renew script, its term and whether a lease is
# live (so that the run's first call renews rather than takes a new term).
RENEW_STATE = {
    "renew_leader": "SELECT term, leader_current(group_name) IS NOT NULL "
                    "FROM leader_lease WHERE group_name = %s",
    "renew_plain": "SELECT term, expires_at >= now() FROM plain_lease WHERE group_name = %s",
}


def renew_groups():
    return [f"tp-{client}" for client in range(CLIENTS)]


def renew_states(conn, script):
    """{group: (term, live)}, (0, False) for a group without a row."""
    states = {}
    for group in renew_groups():
        row = conn.execute(RENEW_STATE[script], (group,)).fetchone()
        states[group] = tuple(row) if row else (0, False)
    return states


def check_renewals(conn, script, before):
    """Each client kept one term for its group through the run."""
    after = renew_states(conn, script)
    for group, (term, live) in before.items():
        expected = term if live else term + 1
        if after[group][0] != expected:
            raise AssertionError(f"{script}: {group} went from term {term} to "
                                 f"{after[group][0]}, not {expected}")


def held_lease(conn):
    return conn.execute("SELECT holder, term FROM leader_lease WHERE group_name = %s",
                        (HELD_GROUP,)).fetchone()


def check_losing(conn, script, probe, before):
    """The script answers false from another session, and the holder still holds."""
    answer = conn.execute(SCRIPTS[script]).fetchone()[0]
    if answer is not False:
        raise AssertionError(f"{script} answered {answer}, not false")
    if probe(conn) != before:
        raise AssertionError(f"{script}: the holder lost its hold: {before} -> {probe(conn)}")


def run_renew(cluster, conn, script, pgoptions=None):
    before = renew_states(conn, script)
    result = run_script(cluster, DATABASE, script, SCRIPTS[script], pgoptions=pgoptions)
    check_renewals(conn, script, before)
    return result


def run_lose_leader(cluster, conn):
    if not conn.execute("SELECT leader_try_acquire(%s, '1 day', %s)",
                        (HELD_GROUP, HELD_BY)).fetchone()[0]:
        raise AssertionError(f"{HELD_BY} could not take {HELD_GROUP}")
    before = held_lease(conn)
    check_losing(conn, "lose_leader", held_lease, before)
    result = run_script(cluster, DATABASE, "lose_leader", SCRIPTS["lose_leader"])
    check_losing(conn, "lose_leader", held_lease, before)
    conn.execute("SELECT leader_release(%s, %s)", (HELD_GROUP, HELD_BY))
    return result


def run_lose_advisory(cluster, conn):
    with cluster.connect(dbname=DATABASE) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))

        def lock_holders(c):
            return c.execute("SELECT array_agg(pid) FROM pg_locks WHERE locktype = 'advisory' "
                             "AND objid = %s AND objsubid = 1 AND granted",
                             (ADVISORY_KEY,)).fetchone()[0]

        before = lock_holders(conn)
        if before != [holder.info.backend_pid]:
            raise AssertionError(f"advisory lock {ADVISORY_KEY} held by {before}")
        check_losing(conn, "lose_advisory", lock_holders, before)
        result = run_script(cluster, DATABASE, "lose_advisory", SCRIPTS["lose_advisory"])
        check_losing(conn, "lose_advisory", lock_holders, before)
    return result


def ratio(a, b):
    return round(a["tps"] / b["tps"], 3)


def run(cluster):
    fresh_database(cluster, DATABASE)
    durable, async_commit = {}, {}
    with cluster.connect(dbname=DATABASE) as conn:
        conn.execute(PLAIN_LEASE_TABLE)
        log(f"throughput: {CLIENTS} clients, {SETTINGS['seconds']} s per script")
        for script in ("renew_leader", "renew_plain"):
            durable[script] = run_renew(cluster, conn, script)
            log(f"  durable {script}: {durable[script]['tps']:.0f} tps")
        durable["lose_leader"] = run_lose_leader(cluster, conn)
        log(f"  durable lose_leader: {durable['lose_leader']['tps']:.0f} tps")
        durable["lose_advisory"] = run_lose_advisory(cluster, conn)
        log(f"  durable lose_advisory: {durable['lose_advisory']['tps']:.0f} tps")
        durable["select1"] = run_script(cluster, DATABASE, "select1", SCRIPTS["select1"])
        log(f"  durable select1: {durable['select1']['tps']:.0f} tps")
        for script in ("renew_leader", "renew_plain"):
            async_commit[script] = run_renew(cluster, conn, script, ASYNC_COMMIT)
            log(f"  async_commit {script}: {async_commit[script]['tps']:.0f} tps")
    # select1 writes no WAL, so the one durable run is the floor for both passes.
    floor = durable["select1"]
    return {
        "settings": dict(SETTINGS, async_commit=ASYNC_COMMIT),
        "runs": {"durable": durable, "async_commit": async_commit},
        "ratios": {
            "renew_leader_vs_plain": {
                "durable": ratio(durable["renew_leader"], durable["renew_plain"]),
                "async_commit": ratio(async_commit["renew_leader"],
                                      async_commit["renew_plain"]),
                "target": 1.0},
            "lose_leader_vs_advisory": {
                "durable": ratio(durable["lose_leader"], durable["lose_advisory"]),
                "target": 0.8},
            "vs_select1": {
                "durable": {s: ratio(r, floor) for s, r in durable.items() if s != "select1"},
                "async_commit": {s: ratio(r, floor) for s, r in async_commit.items()}},
        },
    }


def summary(result):
    lines = [f"throughput ({result['settings']['clients']} clients, "
             f"{result['settings']['seconds']} s each):"]
    for mode, runs in result["runs"].items():
        for script, r in runs.items():
            lines.append(f"  {mode:12} {script:14} {r['tps']:10.0f} tps "
                         f"{r['latency_ms']:8.3f} ms")
    ratios = result["ratios"]
    renew = ratios["renew_leader_vs_plain"]
    lose = ratios["lose_leader_vs_advisory"]
    lines.append(f"  renew_leader / renew_plain: durable {renew['durable']}, "
                 f"async_commit {renew['async_commit']} (target >= {renew['target']})")
    lines.append(f"  lose_leader / lose_advisory: {lose['durable']} "
                 f"(target >= {lose['target']})")
    return "\n".join(lines)


if __name__ == "__main__":
    main(run, summary)
