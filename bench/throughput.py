"""
bench/throughput.py: transactions per second of leader's calls against what a
user would run instead, with pgbench (SPEC "Performance": renew throughput
>= 1.0x the equivalent plain-SQL lease upsert at the same durability; a losing
leader_try_acquire >= 0.8x pg_try_advisory_xact_lock).

Owns: the plain-SQL lease table and its renewal upsert (bench/bloat.py uses
them too), the five scripts (renew_leader, renew_plain, lose_leader,
lose_advisory, select1), the state each runs against (a group held by a named
holder, an advisory lock held by another session), the checks that each run
did what it claims, and the ratios with their targets.  Every script runs
in both wire protocols, pgbench -M simple (a query string per call) and
-M prepared (bind and execute of a prepared statement), the two scripts of a
comparison one right after the other in each protocol, and every ratio is
taken per protocol.  Every script runs with the server's durability (fsync,
synchronous_commit on); the two renew scripts run again with
synchronous_commit = off, to show their CPU cost without the WAL flush.

Alone: python3 bench/throughput.py   (BENCH_SECONDS=2 for a quick run)
"""
import contextlib

from pgbench_run import CLIENTS, PROTOCOLS, SETTINGS, fresh_database, log, main, run_script

DATABASE = "bench_throughput"
ADVISORY_KEY = 4242
HELD_GROUP = "tp-held"
HELD_BY = "owner"
ASYNC_COMMIT = "-c synchronous_commit=off"
RENEW_TARGET = 1.0                     # SPEC: renew_leader / renew_plain, each durability
LOSE_TARGET = 0.8                      # SPEC: lose_leader / lose_advisory

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


def advisory_holders(conn):
    return conn.execute("SELECT array_agg(pid) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND objid = %s AND objsubid = 1 AND granted",
                        (ADVISORY_KEY,)).fetchone()[0]


# What each losing script loses to, as read before and after its runs.
LOSING_PROBES = {"lose_leader": held_lease, "lose_advisory": advisory_holders}


def check_losing(conn, script, before):
    """The script answers false from another session, and the holder still holds."""
    answer = conn.execute(SCRIPTS[script]).fetchone()[0]
    if answer is not False:
        raise AssertionError(f"{script} answered {answer}, not false")
    after = LOSING_PROBES[script](conn)
    if after != before:
        raise AssertionError(f"{script}: the holder lost its hold: {before} -> {after}")


def run_renew(cluster, conn, script, protocol, pgoptions=None):
    before = renew_states(conn, script)
    result = run_script(cluster, DATABASE, script, SCRIPTS[script], protocol=protocol,
                        pgoptions=pgoptions)
    check_renewals(conn, script, before)
    return result


def run_losing(cluster, conn, script, protocol):
    before = LOSING_PROBES[script](conn)
    check_losing(conn, script, before)
    result = run_script(cluster, DATABASE, script, SCRIPTS[script], protocol=protocol)
    check_losing(conn, script, before)
    return result


@contextlib.contextmanager
def held_for_losers(cluster, conn):
    """HELD_GROUP held by the named holder HELD_BY, ADVISORY_KEY by another session."""
    if not conn.execute("SELECT leader_try_acquire(%s, '1 day', %s)",
                        (HELD_GROUP, HELD_BY)).fetchone()[0]:
        raise AssertionError(f"{HELD_BY} could not take {HELD_GROUP}")
    with cluster.connect(dbname=DATABASE) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))
        if advisory_holders(conn) != [holder.info.backend_pid]:
            raise AssertionError(f"advisory lock {ADVISORY_KEY} held by "
                                 f"{advisory_holders(conn)}")
        yield
    conn.execute("SELECT leader_release(%s, %s)", (HELD_GROUP, HELD_BY))


def ratio(a, b):
    return round(a["tps"] / b["tps"], 3)


def measure(cluster, conn):
    """
    Every script in every protocol: {protocol: {"durable": {script: result},
    "async_commit": {script: result}}}.  The two scripts of a comparison run
    one right after the other in each protocol, so that both see the same
    machine.
    """
    runs = {protocol: {"durable": {}, "async_commit": {}} for protocol in PROTOCOLS}

    def note(protocol, mode, script, result):
        runs[protocol][mode][script] = result
        log(f"  -M {protocol:8} {mode:12} {script:13} {result['tps']:8.0f} tps")

    for protocol in PROTOCOLS:
        for script in ("renew_leader", "renew_plain"):
            note(protocol, "durable", script, run_renew(cluster, conn, script, protocol))
    with held_for_losers(cluster, conn):
        for protocol in PROTOCOLS:
            for script in ("lose_leader", "lose_advisory"):
                note(protocol, "durable", script, run_losing(cluster, conn, script, protocol))
    for protocol in PROTOCOLS:
        note(protocol, "durable", "select1",
             run_script(cluster, DATABASE, "select1", SCRIPTS["select1"], protocol=protocol))
    for protocol in PROTOCOLS:
        for script in ("renew_leader", "renew_plain"):
            note(protocol, "async_commit", script,
                 run_renew(cluster, conn, script, protocol, ASYNC_COMMIT))
    return runs


def ratios(runs):
    """The SPEC's two comparisons and the share of the SELECT 1 floor, per protocol."""
    renew = {"target": RENEW_TARGET}
    lose = {"target": LOSE_TARGET}
    floor_share = {}
    for protocol, by_mode in runs.items():
        durable, async_commit = by_mode["durable"], by_mode["async_commit"]
        renew[protocol] = {
            "durable": ratio(durable["renew_leader"], durable["renew_plain"]),
            "async_commit": ratio(async_commit["renew_leader"], async_commit["renew_plain"])}
        lose[protocol] = {"durable": ratio(durable["lose_leader"], durable["lose_advisory"])}
        # select1 writes no WAL, so its one durable run is the floor for both passes.
        floor = durable["select1"]
        floor_share[protocol] = {
            "durable": {s: ratio(r, floor) for s, r in durable.items() if s != "select1"},
            "async_commit": {s: ratio(r, floor) for s, r in async_commit.items()}}
    return {"renew_leader_vs_plain": renew, "lose_leader_vs_advisory": lose,
            "vs_select1": floor_share}


def run(cluster):
    fresh_database(cluster, DATABASE)
    with cluster.connect(dbname=DATABASE) as conn:
        conn.execute(PLAIN_LEASE_TABLE)
        log(f"throughput: {CLIENTS} clients, {SETTINGS['seconds']} s per script, "
            f"protocols {', '.join(PROTOCOLS)}")
        runs = measure(cluster, conn)
    return {"settings": dict(SETTINGS, protocols=list(PROTOCOLS), async_commit=ASYNC_COMMIT),
            "runs": runs, "ratios": ratios(runs)}


def summary(result):
    lines = [f"throughput ({result['settings']['clients']} clients, "
             f"{result['settings']['seconds']} s each):"]
    for protocol, by_mode in result["runs"].items():
        for mode, runs in by_mode.items():
            for script, r in runs.items():
                lines.append(f"  -M {protocol:8} {mode:12} {script:14} {r['tps']:10.0f} tps "
                             f"{r['latency_ms']:8.3f} ms")
    renew = result["ratios"]["renew_leader_vs_plain"]
    lose = result["ratios"]["lose_leader_vs_advisory"]
    for protocol in result["runs"]:
        lines.append(f"  -M {protocol}: renew_leader / renew_plain: durable "
                     f"{renew[protocol]['durable']}, async_commit "
                     f"{renew[protocol]['async_commit']} (target >= {renew['target']}); "
                     f"lose_leader / lose_advisory: {lose[protocol]['durable']} "
                     f"(target >= {lose['target']})")
    return "\n".join(lines)


if __name__ == "__main__":
    main(run, summary)
