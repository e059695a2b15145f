"""
bench/bloat.py: how much leader_lease grows under renewals (SPEC "Performance":
its size after 1 000 000 renewals of 1 000 groups <= 2x its size after the
first round), side by side with the plain-SQL lease table of
bench/throughput.py under the same workload.

Owns: the first round (groups bloat-1..bloat-1000, each taken once by its named
holder holder-N), the renewal workload (pgbench -M prepared, BLOAT_RENEWALS
renewals in all, default 1 000 000, synchronous_commit off since durability
does not change sizes), reading sizes (table with indexes and TOAST) and the share of
HOT updates once the statistics have arrived, and checking that every group
kept its holder and term 1.  Autovacuum stays at the server's defaults.

Each client renews random groups of its own share (groups N with
N - 1 = client_id mod clients): two clients renewing one named holder at once
would make leader_try_acquire answer false without waiting (README, Limits)
while the upsert waits and renews, so the two would not do the same renewals.

Alone: python3 bench/bloat.py   (BLOAT_RENEWALS=100000 for a quick run)
"""
import os
import time

from pgbench_run import CLIENTS, fresh_database, log, main, run_script
from throughput import PLAIN_LEASE_TABLE, plain_renewal

DATABASE = "bench_bloat"
GROUPS = 1000
RENEWALS = int(os.environ.get("BLOAT_RENEWALS", "1000000"))
TTL = "1 hour"
ASYNC_COMMIT = "-c synchronous_commit=off"
PROTOCOL = "prepared"                  # sizes do not depend on the wire protocol
STATS_WAIT_S = 30

# A random group of this client's share, as :g.
PICK_GROUP = r"""
\set k random(0, (:groups - 1 - :client_id) / :clients)
\set g 1 + :client_id + :k * :clients
"""

# Per table: its name, one renewal of group :g by holder-:g for pgbench, the
# same for Python's first round (group %(g)s), and the groups that kept their
# first holder and term 1.
TABLES = {
    "leader": {
        "table": "leader_lease",
        "renewal": f"SELECT leader_try_acquire('bloat-' || :g, '{TTL}', 'holder-' || :g);",
        "first_round": f"SELECT leader_try_acquire('bloat-' || %(g)s, '{TTL}', "
                       "'holder-' || %(g)s)",
    },
    "plain": {
        "table": "plain_lease",
        "renewal": plain_renewal("'bloat-' || :g", "'holder-' || :g", TTL),
        "first_round": plain_renewal("'bloat-' || %(g)s", "'holder-' || %(g)s", TTL),
    },
}

KEPT = """
SELECT count(*) FROM {table}
WHERE group_name LIKE 'bloat-%' AND holder = 'holder-' || substr(group_name, 7) AND term = 1
"""


def sizes(conn, table):
    total, heap, indexes = conn.execute(
        "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s)",
        (table, table, table)).fetchone()
    return {"total": total, "heap": heap, "indexes": indexes}


def update_counts(conn, table):
    return conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                        "WHERE relname = %s", (table,)).fetchone()


def counts_after(conn, table, expected_updates):
    """
    The update counters once the renewals' statistics have arrived: when
    n_tup_upd reaches expected_updates, or stops changing, within STATS_WAIT_S.
    Each read is its own transaction, so it sees fresh statistics.
    """
    deadline = time.monotonic() + STATS_WAIT_S
    last = None
    while True:
        counts = update_counts(conn, table)
        if counts[0] >= expected_updates or counts == last or time.monotonic() > deadline:
            return counts
        last = counts
        time.sleep(0.5)


def first_round(conn, spec):
    for g in range(1, GROUPS + 1):
        row = conn.execute(spec["first_round"], {"g": str(g)}).fetchone()
        if row is None or row[0] not in (True, 1):
            raise AssertionError(f"first round: holder-{g} did not take bloat-{g}: {row}")


def measure(cluster, conn, name, spec):
    table = spec["table"]
    first_round(conn, spec)
    first = sizes(conn, table)
    upd_before, hot_before = update_counts(conn, table)
    per_client = -(-RENEWALS // CLIENTS)
    bench = run_script(cluster, DATABASE, f"bloat_{name}", PICK_GROUP + spec["renewal"],
                       protocol=PROTOCOL, per_client=per_client,
                       variables={"groups": GROUPS, "clients": CLIENTS}, pgoptions=ASYNC_COMMIT)
    upd_after, hot_after = counts_after(conn, table, upd_before + bench["transactions"])
    after = sizes(conn, table)
    kept = conn.execute(KEPT.format(table=table)).fetchone()[0]
    if kept != GROUPS:
        raise AssertionError(f"{name}: only {kept} of {GROUPS} groups kept holder and term 1")
    updates = upd_after - upd_before
    return {
        "table": table,
        "renewals": bench["transactions"],
        "updates_counted": updates,
        "hot_share": round((hot_after - hot_before) / updates, 4) if updates else None,
        "size_first_round": first,
        "size_after": after,
        "ratio_after_vs_first": round(after["total"] / first["total"], 3),
        "elapsed_s": bench["elapsed_s"],
        "tps": bench["tps"],
    }


def run(cluster):
    fresh_database(cluster, DATABASE)
    results = {}
    with cluster.connect(dbname=DATABASE) as conn:
        conn.execute(PLAIN_LEASE_TABLE)
        log(f"bloat: {RENEWALS} renewals of {GROUPS} groups, {CLIENTS} clients")
        for name, spec in TABLES.items():
            results[name] = measure(cluster, conn, name, spec)
            log(f"  {name}: ratio {results[name]['ratio_after_vs_first']}, "
                f"hot {results[name]['hot_share']}, {results[name]['tps']:.0f} tps")
    return {
        "settings": {"groups": GROUPS, "renewals": RENEWALS, "clients": CLIENTS,
                     "ttl": TTL, "protocol": PROTOCOL, "pgoptions": ASYNC_COMMIT,
                     "autovacuum": "server defaults"},
        "tables": results,
        "target_ratio": 2.0,
    }


def summary(result):
    lines = [f"bloat ({result['settings']['renewals']} renewals of "
             f"{result['settings']['groups']} groups):"]
    for name, r in result["tables"].items():
        lines.append(f"  {name:6} {r['table']:12} first {r['size_first_round']['total']:>9} B, "
                     f"after {r['size_after']['total']:>9} B, ratio {r['ratio_after_vs_first']} "
                     f"(target <= {result['target_ratio']}), HOT {r['hot_share']}, "
                     f"{r['renewals']} renewals in {r['elapsed_s']} s ({r['tps']:.0f} tps)")
    return "\n".join(lines)


if __name__ == "__main__":
    main(run, summary)
