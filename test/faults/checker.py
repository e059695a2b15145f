"""
test/faults/checker.py: the verdict on a fault-injection run.

Owns the invariants and how each is read off the run's records:
  the ledger (the durable table, with each record's commit timestamp),
  the listener's stream of leader_changed events and ledger commits, in
  commit order, with a "reconnected" mark after each time it was away,
  the clients' logs of every operation and its outcome, and the faults.
Invariants:
  ledger order     per group, in commit order, terms never go down: no two
                   terms overlap, and they strictly increase;
  one writer       every record of a (group, term) comes from one client;
  fenced in time   every record was fenced before its lease's expires_at;
  leader at commit in the commit-ordered stream, every ledger record of a
                   group carries the term of the group's lease at that point;
  events per term  exactly one acquired event for every term seen (ledger or
                   events; a term that may have been acquired while the listener
                   was away is excused) and at most one ending event, the
                   acquired terms of a group strictly increasing, no term
                   acquired while another is held, no end of a term that is
                   not the held one;
  renewed in time  a renewal that kept its term started before the lease, as
                   last confirmed, had expired (an expired lease is never
                   renewed: its next leadership gets a new term);
  nothing lost     every write a client saw commit is in the ledger;
  recovery         after the faults, every group has a leader within the bound;
  no crash         no server process died of a signal the run did not send.
Run alone on the history.json a run kept (run.py --keep), it judges that run
again: python3 test/faults/checker.py DIR/history.json

Where the listener was away, the stream cannot say what happened: the records
committed then are counted as unchecked, never assumed fine.  Each time it
is back it reads where every lease stands, between two markers it sends
into the stream: what committed before the first is in that reading, what
committed after the second is not, and what committed between them may be
either.  So from the second marker on, a group's lease is known from the
reading unless the group had an event between the markers (then it is known
again from its next acquired event), and records between them are unchecked.
"""
import json
import sys
from collections import Counter, defaultdict

ENDINGS = {"released", "expired", "vacated", "forced"}


def check(ledger, events, ops, faults, ttl, recovered_in, recovery_bound, gaps=(),
          crashes=()):
    violations = [f"crash: {line}" for line in crashes]
    records = sorted(ledger, key=lambda r: (r["committed_at"], r["id"]))

    # ledger order, one writer, fenced in time
    last_term = {}
    writers = defaultdict(set)
    for r in records:
        g = r["group"]
        if g in last_term and r["term"] < last_term[g]:
            violations.append(f"ledger: {g} record {r['id']} of term {r['term']} committed after "
                              f"a record of term {last_term[g]}")
        last_term[g] = max(last_term.get(g, r["term"]), r["term"])
        writers[(g, r["term"])].add(r["client"])
        if r["lease_expires_at"] is None or r["fenced_at"] >= r["lease_expires_at"]:
            violations.append(f"ledger: {g} record {r['id']} of term {r['term']} fenced at "
                              f"{r['fenced_at']}, not before its lease's expiry "
                              f"{r['lease_expires_at']}")
    for (g, term), clients in sorted(writers.items()):
        if len(clients) > 1:
            violations.append(f"ledger: {g} term {term} written by {sorted(clients)}")

    # the commit-ordered stream
    acquired, ended = Counter(), Counter()
    held, known, max_acquired = {}, {}, {}
    checked = unchecked = 0
    reading = {}                # group -> (term, held) read on reconnecting
    between = None              # groups with an event between the markers, while there
    excused = defaultdict(list) # group -> [(lo, hi)]: terms that may have been acquired
    for e in events:            # while it was away
        if e["channel"] == "reconnected":
            for g, (t, _) in e["leases"].items():
                excused[g].append((max_acquired.get(g, 0) + 1, t))
            reading, known, held = e["leases"], {}, {}
            continue
        if e["channel"] == "marker":
            if e["marker"] == "before":
                between = set()
            elif between is not None:
                for g, (t, h) in reading.items():
                    if g not in between:
                        held[g], known[g] = (t if h else None), True
                between = None
            continue
        g, term = e["group"], e["term"]
        if between is not None:
            between.add(g)
        if e["channel"] == "ledger":
            if known.get(g):
                checked += 1
                if held.get(g) != term:
                    violations.append(f"stream: {g} record {e['id']} of term {term} committed "
                                      f"while the lease was {held.get(g) or 'vacant'}")
            else:
                unchecked += 1
        elif e["event"] == "acquired":
            acquired[(g, term)] += 1
            if term <= max_acquired.get(g, 0):
                violations.append(f"stream: {g} term {term} acquired after term "
                                  f"{max_acquired[g]}")
            max_acquired[g] = max(max_acquired.get(g, 0), term)
            if known.get(g) and held.get(g) is not None:
                violations.append(f"stream: {g} term {term} acquired while term {held[g]} "
                                  "was held")
            held[g], known[g] = term, True
        elif e["event"] in ENDINGS:
            ended[(g, term)] += 1
            if known.get(g) and held.get(g) != term:
                violations.append(f"stream: {g} term {term} {e['event']} while the lease was "
                                  f"{held.get(g) or 'vacant'}")
            held[g] = None
    for (g, term), n in sorted(acquired.items()):
        if n > 1:
            violations.append(f"events: {g} term {term} has {n} acquired events")
    seen_terms = {(r["group"], r["term"]) for r in ledger} | set(ended)
    for g, term in sorted(seen_terms - set(acquired)):
        if not any(lo <= term <= hi for lo, hi in excused[g]):
            violations.append(f"events: {g} term {term} has no acquired event")
    for (g, term), n in sorted(ended.items()):
        if n > 1:
            violations.append(f"events: {g} term {term} has {n} ending events")

    violations += late_renewals(ops, ttl)

    # nothing lost
    in_ledger = {r["id"]: r for r in ledger}
    writes = [o for o in ops if o["op"] == "write" and o["ok"]]
    for o in writes:
        r = in_ledger.get(o["id"])
        if r is None or (r["group"], r["term"]) != (o["group"], o["term"]):
            violations.append(f"lost: {o['client']} saw record {o['id']} ({o['group']}, term "
                              f"{o['term']}) commit, but the ledger does not have it")

    if recovered_in is None:
        violations.append(f"recovery: not every group had a leader {recovery_bound} s after "
                          "the faults stopped")

    return {"violations": violations, "faults": faults,
            "fault_counts": Counter(f["kind"] for f in faults),
            "failovers": failovers(faults, events),
            "ledger_records": len(ledger), "stream_records_checked": checked,
            "stream_records_unchecked": unchecked,
            "terms": len({(r["group"], r["term"]) for r in ledger} | set(acquired)),
            "acquired_events": sum(acquired.values()), "ending_events": sum(ended.values()),
            "client_writes_ok": len(writes),
            "client_writes_failed": sum(1 for o in ops if o["op"] == "write" and not o["ok"]),
            "listener_gaps": len([g for g in gaps if g[1] - g[0] > 0.5]),
            "recovered_in_s": recovered_in}


def late_renewals(ops, ttl):
    """Renewals that kept a term although they started after the lease, as its
    holder last confirmed it (end of its last successful acquire or renew plus
    the TTL), had expired.  Each successful acquire or renew is followed in the
    client's log by the leader_term it then read (unless its connection broke)."""
    out = []
    by_client = defaultdict(list)
    for o in ops:
        by_client[o["client"]].append(o)
    for client, log in by_client.items():
        confirmed_at = None
        for i, o in enumerate(log):
            if o["op"] not in ("acquire", "renew") or not o["ok"]:
                continue
            if not o["value"]:
                confirmed_at = None
                continue
            after = log[i + 1] if i + 1 < len(log) and log[i + 1]["op"] == "term" else None
            if (o["op"] == "renew" and after is not None and after.get("value") == o["term"]
                    and confirmed_at is not None and o["t"] > confirmed_at + ttl):
                out.append(f"renewal: {client} renewed {o['group']} term {o['term']} "
                           f"{o['t'] - confirmed_at:.3f} s after it was last confirmed "
                           f"(ttl {ttl} s), keeping the term")
            confirmed_at = o["t_end"]
    return out


def failovers(faults, events):
    """Per fault: seconds until the hit group has a new leader (a fault on its
    leader; "kept" if instead the same term went on writing), or until every
    group writes again (a fault of the server)."""
    out = []
    for f in faults:
        if "failed" in f:
            continue
        if "term" in f:
            after = [e["t"] for e in events if e["channel"] == "leader_changed"
                     and e["event"] == "acquired" and e["group"] == f["group"]
                     and e["term"] > f["term"] and e["t"] >= f["t"]]
            kept = any(e["channel"] == "ledger" and e["group"] == f["group"]
                       and e["term"] == f["term"] and e["t"] >= f["done"] for e in events)
            out.append((f["kind"], f["group"], round(after[0] - f["t"], 3) if after
                        else "kept" if kept else None))
        elif f["kind"] in ("restart_server", "crash_server", "kill_worker", "promote_standby"):
            firsts = {}
            for e in events:
                if e["channel"] == "ledger" and e["t"] >= f["done"] and e["group"] not in firsts:
                    firsts[e["group"]] = e["t"]
            out.append((f["kind"], "all", round(max(firsts.values()) - f["t"], 3)
                        if firsts else None))
    return out


def report(v):
    lines = ["fault-injection run:"]
    lines.append("  faults: " + (", ".join(f"{k} {n}" for k, n in sorted(v["fault_counts"].items()))
                                 or "none"))
    lines.append(f"  terms: {v['terms']}; acquired events {v['acquired_events']}, ending events "
                 f"{v['ending_events']}")
    lines.append(f"  ledger records: {v['ledger_records']} (checked against the lease in commit "
                 f"order: {v['stream_records_checked']}, while the listener was away "
                 f"({v['listener_gaps']} times): {v['stream_records_unchecked']}); "
                 "client writes committed "
                 f"{v['client_writes_ok']}, refused or failed {v['client_writes_failed']}")
    lines.append(f"  every group led again {v['recovered_in_s']} s after the faults stopped")
    for kind, group, seconds in v["failovers"]:
        if seconds == "kept":
            lines.append(f"  after {kind}: {group} kept its leader (a named lease outlives "
                         "its client, or the client came back in time)")
            continue
        what = "new leader of " + group if group != "all" else "every group writing again"
        lines.append(f"  after {kind}: {what} in "
                     + (f"{seconds * 1000:.0f} ms" if seconds is not None else "— (none seen)"))
    lines.append(f"  violations: {len(v['violations'])}")
    lines += [f"    {m}" for m in v["violations"][:30]]
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        verdict = check(**json.load(f))
    print(report(verdict))
    sys.exit(1 if verdict["violations"] else 0)
