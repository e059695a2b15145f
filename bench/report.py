"""
bench/report.py: the benchmark's results as people read them.

Owns the tables (Markdown, RESULTS.md and the README's Benchmarks section):
the SPEC's targets, each throughput comparison once per wire protocol, with
one measured column (and one "met") per PostgreSQL installation measured;
then, per installation, the failover side by side and the throughput per
script and protocol; and the plot of the failover latency distributions
(SVG, drawn here without plotting libraries: cumulative share of trials
against latency on a logarithmic axis, one curve per system and
installation).  Every results.json holds a list of runs, one per
installation (run.py); a run of one installation is a list of one and
renders with one measured column.
A run of only some benchmarks (run.py --only) gets the rows and tables of
those.
Run alone, it renders them again from a results directory's results.json:
python3 bench/report.py bench/results
"""
import json
import math
import os
import re
import sys

from stats import percentiles

LEADER = "leader"


def version(run):
    """"PostgreSQL 15.20" from `postgres --version`'s "postgres (PostgreSQL) 15.20 (...)"."""
    found = re.search(r"PostgreSQL\)? (\S+)", run["server"])
    return f"PostgreSQL {found.group(1)}" if found else run["server"]


def minutes(seconds):
    return f"{seconds // 60} min {seconds % 60} s"


def in_words(items):
    """a; a and b; a, b and c."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def duration(ms):
    if ms is None:
        return "–"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def spread(samples):
    """p50 / p90 / p99 / max (n)."""
    p = percentiles(samples)
    if not p["n"]:
        return "–"
    return (f"{duration(p['p50'])} / {duration(p['p90'])} / {duration(p['p99'])} / "
            f"{duration(p['max'])} (n={p['n']})")


def met(ok):
    return "yes" if ok else "**no**"


def failover_table(samples):
    rows = ["| system, setting | crash: SIGKILL of the leader's client → a waiting candidate "
            "leads | graceful handover → a waiting candidate leads | frozen leader (SIGSTOP): "
            "expires_at → next leader |",
            "|---|---|---|---|"]
    for system, s in samples.items():
        handover = spread(s["handover"])
        if "pg_leader" in s:
            handover = f"`leader_release`: {handover}<br>`pg_leader` stopping: {spread(s['pg_leader'])}"
        if "partition" in s:
            frozen = spread(s["partition"])
            if "partition_expired_event" in s:
                frozen += (f"<br>(ttl 1 s) expires_at → `expired` event: "
                           f"{spread(s['partition_expired_event'])}")
        else:
            p = s["partition_without_failover"]
            frozen = (f"no takeover within {p['cap_s']} s: the frozen client's session keeps "
                      "its lock" if p["took_over_within_s"] is None
                      else f"took over within {p['cap_s']} s")
        rows.append(f"| {system} | {spread(s['crash'])} | {handover} | {frozen} |")
    return "\n".join(rows)


def latency_target(measure, target, p, p50_max, p99_max):
    return (measure, target,
            f"p50 {duration(p['p50'])}, p99 {duration(p['p99'])}, max {duration(p['max'])} "
            f"(n={p['n']})",
            p["p50"] <= p50_max and p["p99"] <= p99_max)


def leader_failover(r):
    """leader's failover samples by scenario, or None when its trials did not run."""
    return r.get("failover", {}).get("samples_ms", {}).get(LEADER)


def failover_targets(r):
    """leader's crash and handover rows, when its failover trials ran."""
    f = leader_failover(r)
    if f is None:
        return []
    return [
        latency_target("crash failover: client process killed → a waiting candidate leads",
                       "p50 ≤ 10 ms, p99 ≤ 50 ms", percentiles(f["crash"]), 10, 50),
        latency_target("graceful handover: `leader_release` → a waiting candidate leads",
                       "p50 ≤ 5 ms, p99 ≤ 20 ms", percentiles(f["handover"]), 5, 20),
        latency_target("graceful handover: `pg_leader run` stopping (SIGTERM) → a waiting "
                       "candidate leads", "p50 ≤ 5 ms, p99 ≤ 20 ms",
                       percentiles(f["pg_leader"]), 5, 20),
    ]


def expiry_target(r):
    """The expiry precision row, from the frozen leaders and the churn, whichever ran."""
    measured, p99s = [], []
    f = leader_failover(r)
    if f is not None:
        event = percentiles(f["partition_expired_event"])
        measured.append(f"frozen leader: p99 {duration(event['p99'])} (n={event['n']})")
        p99s.append(event["p99"])
    if "scale" in r:
        churn = r["scale"]["idle_groups"]["with_100000_idle"]["expiry_delay_ms"]
        measured.append(f"100 expiries/s beside 100 000 idle groups: p99 "
                        f"{duration(churn['p99'])} (n={churn['n']})")
        p99s.append(churn["p99"])
    if not p99s:
        return []
    return [("expiry precision: `expires_at` → `expired` event", "p99 ≤ 50 ms",
             "; ".join(measured), max(p99s) <= 50)]


def throughput_targets(r):
    """The two comparisons of the SPEC, one row per wire protocol each."""
    if "throughput" not in r:
        return []
    protocols = r["throughput"]["settings"]["protocols"]
    renew = r["throughput"]["ratios"]["renew_leader_vs_plain"]
    lose = r["throughput"]["ratios"]["lose_leader_vs_advisory"]
    rows = []
    for protocol in protocols:
        durable, off = renew[protocol]["durable"], renew[protocol]["async_commit"]
        rows.append((f"renew throughput vs the plain-SQL lease upsert, same durability, "
                     f"`-M {protocol}`", f"≥ {renew['target']}×",
                     f"{durable}× durable, {off}× with synchronous_commit off",
                     durable >= renew["target"] and off >= renew["target"]))
    for protocol in protocols:
        losing = lose[protocol]["durable"]
        rows.append((f"losing `leader_try_acquire` vs `pg_try_advisory_xact_lock`, "
                     f"`-M {protocol}`", f"≥ {lose['target']}×", f"{losing}×",
                     losing >= lose["target"]))
    return rows


def scale_targets(r):
    if "scale" not in r:
        return []
    idle = r["scale"]["idle_groups"]
    churn_large = idle["with_100000_idle"]
    waiters = r["scale"]["waiters"]
    one_winner = (waiters["terms_strictly_increasing"] and waiters["extra_winners"] == 0
                  and waiters["acquired_events_per_term_all_one"])
    return [
        ("100 000 groups: the worker's CPU while 100 leases/s expire",
         "independent of the number of idle groups",
         f"{idle['with_1000_idle']['worker_cpu_ms_per_s']} ms/s beside 1 000 idle groups, "
         f"{churn_large['worker_cpu_ms_per_s']} ms/s beside 100 000 "
         f"({idle['cpu_ratio_100000_to_1000']}×)",
         idle["cpu_ratio_100000_to_1000"] <= 1.5),
        (f"{waiters['sessions']} sessions waiting in `leader_acquire` on one group",
         "handover as above; exactly one winner per term",
         f"handover p50 {duration(waiters['handover_ms']['p50'])}, p99 "
         f"{duration(waiters['handover_ms']['p99'])} (n={waiters['handover_ms']['n']}); "
         f"one winner and one `acquired` per term: {'yes' if one_winner else 'NO'}",
         one_winner and waiters["handover_ms"]["p99"] <= 20),
    ]


def bloat_targets(r):
    if "bloat" not in r:
        return []
    bl = r["bloat"]["tables"]
    return [
        (f"`leader_lease` size after {bl['leader']['renewals']:,} renewals of 1 000 groups",
         "≤ 2× its size after the first round",
         f"{bl['leader']['ratio_after_vs_first']}× ({bl['leader']['size_first_round']['total'] // 1024} → "
         f"{bl['leader']['size_after']['total'] // 1024} KiB), HOT updates "
         f"{bl['leader']['hot_share'] * 100:.2f}%; plain table: {bl['plain']['ratio_after_vs_first']}×",
         bl["leader"]["ratio_after_vs_first"] <= 2.0),
    ]


def run_targets(run):
    """One run's rows: (measure, target, measured, met) of the targets it measured."""
    return (failover_targets(run) + expiry_target(run) + throughput_targets(run)
            + scale_targets(run) + bloat_targets(run))


def targets_table(r):
    """
    The SPEC's targets that the benchmarks which ran measure, with the figures:
    a measured column and a "met" per run ("measured" when there is one run),
    "–" where a run did not measure that row.
    """
    rs = r["runs"]
    measured = [{m: (t, v, ok) for m, t, v, ok in run_targets(run)} for run in rs]
    measures = list(dict.fromkeys(m for of_run in measured for m in of_run))
    names = ["measured"] if len(rs) == 1 else [version(run) for run in rs]
    out = ["| measure | target | " + " | ".join(f"{name} | met" for name in names) + " |",
           "|---|---" + "|---|---" * len(rs) + "|"]
    for m in measures:
        target = next(of_run[m][0] for of_run in measured if m in of_run)
        cells = [f"{of_run[m][1]} | {met(of_run[m][2])}" if m in of_run else "– | –"
                 for of_run in measured]
        out.append(f"| {m} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def throughput_table(run):
    """tps per script, durability and wire protocol, then the two ratios."""
    t = run["throughput"]
    s, runs, ratios = t["settings"], t["runs"], t["ratios"]
    columns = [(protocol, mode) for protocol in s["protocols"]
               for mode in ("durable", "async_commit")]
    mode_names = {"durable": "durable", "async_commit": "synchronous_commit off"}
    out = [f"pgbench, {s['clients']} clients, {s['threads']} threads, {s['seconds']} s per "
           f"script, in each wire protocol; the two scripts of a comparison ran one right "
           f"after the other:", "",
           "| script | " + " | ".join(f"`-M {p}` {mode_names[m]} tps" for p, m in columns)
           + " |", "|---" * (len(columns) + 1) + "|"]
    for script in runs[s["protocols"][0]]["durable"]:
        cells = []
        for protocol, mode in columns:
            run = runs[protocol][mode].get(script)
            cells.append(f"{run['tps']:,.0f}" if run else "–")
        out.append(f"| `{script}` | " + " | ".join(cells) + " |")
    for name, key in (("`renew_leader` / `renew_plain`", "renew_leader_vs_plain"),
                      ("`lose_leader` / `lose_advisory`", "lose_leader_vs_advisory")):
        cells = []
        for protocol, mode in columns:
            value = ratios[key][protocol].get(mode)
            cells.append(f"{value}×" if value is not None else "–")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def table(r):
    m, rs = r["machine"], r["runs"]
    unlike_the_record = (["quick mode: fewer trials"] if r["quick"] else []) \
        + ([f"only {', '.join(r['only'])}"] if r["only"] else [])
    per_run = "" if len(rs) == 1 else " (" + ", ".join(
        f"{version(run)}: {minutes(run['elapsed_s'])}" for run in rs) + ")"
    lines = [
        f"Measured {r['date']} on {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"{in_words([run['server'] for run in rs])}; fsync and synchronous_commit on unless "
        f"said; whole run {minutes(r['elapsed_s'])}{per_run}"
        + (f" ({'; '.join(unlike_the_record)}; not for the record)" if unlike_the_record
           else "") + ".",
        "", "#### Against the SPEC's targets", "", targets_table(r)]

    def on(run):
        return "" if len(rs) == 1 else f" on {version(run)}"
    first_systems = set(rs[0].get("failover", {}).get("samples_ms", {}))
    for run in rs:
        if "failover" in run:
            samples = run["failover"]["samples_ms"]
            lines += ["", f"#### Failover{on(run)}, side by side (p50 / p90 / p99 / max, "
                      "n trials)", "", failover_table(samples)]
            if run is not rs[0] and first_systems - set(samples):
                lines += ["", f"The baselines ran on {version(rs[0])} only: they measure "
                          "the poller and the lease, which do not depend on the server's "
                          "version."]
    for run in rs:
        if "throughput" in run:
            lines += ["", f"#### Throughput{on(run)}", "", throughput_table(run)]
    return "\n".join(lines + [""])


COLOURS = ["#1b7837", "#c51b7d", "#e08214", "#2166ac", "#762a83", "#35978f", "#8c510a",
           "#4d4d4d"]


def curves(r):
    """(label, samples by scenario) of every system of every run that ran failover trials;
    the label names the installation when the system ran on more than one."""
    measured = [(run, system, s) for run in r["runs"]
                for system, s in run.get("failover", {}).get("samples_ms", {}).items()]
    systems = [system for _, system, _ in measured]
    return [(f"{system}, {version(run)}" if systems.count(system) > 1 else system, s)
            for run, system, s in measured]


def plot(r):
    """Two panels (crash, graceful handover): share of trials done by a given latency."""
    samples = curves(r)
    width, panel_h, left, right, top = 1120, 300, 70, 450, 40
    lo, hi = 0.5, 60000.0                          # ms, the logarithmic axis

    def x(ms):
        ms = min(max(ms, lo), hi)
        return left + (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) \
            * (width - left - right)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{2 * panel_h + top + 30}" font-family="sans-serif" font-size="12">',
             f'<rect width="100%" height="100%" fill="white"/>']
    for p, (key, title) in enumerate((("crash", "crash failover: SIGKILL of the leader's client"),
                                      ("handover", "graceful handover: the leader releases"))):
        y0 = top + p * panel_h
        plot_h = panel_h - 70

        def y(share):
            return y0 + plot_h * (1 - share)
        parts.append(f'<text x="{left}" y="{y0 - 12}" font-size="14" font-weight="bold">'
                     f'{title}: share of trials in which a waiting candidate leads within …</text>')
        for ms_tick in (1, 10, 100, 1000, 10000, 60000):
            label = f"{ms_tick} ms" if ms_tick < 1000 else f"{ms_tick // 1000} s"
            parts.append(f'<line x1="{x(ms_tick):.1f}" y1="{y(0):.1f}" x2="{x(ms_tick):.1f}" '
                         f'y2="{y(1):.1f}" stroke="#ddd"/>'
                         f'<text x="{x(ms_tick):.1f}" y="{y(0) + 16:.1f}" '
                         f'text-anchor="middle">{label}</text>')
        for share in (0, 0.5, 1):
            parts.append(f'<line x1="{left}" y1="{y(share):.1f}" x2="{width - right}" '
                         f'y2="{y(share):.1f}" stroke="#ddd"/>'
                         f'<text x="{left - 6}" y="{y(share) + 4:.1f}" text-anchor="end">'
                         f'{int(share * 100)}%</text>')
        for i, (system, s) in enumerate(samples):
            data = sorted(s[key])
            if not data:
                continue
            points = [(x(data[0]), y(0))]
            for k, ms in enumerate(data):
                points += [(x(ms), y(k / len(data))), (x(ms), y((k + 1) / len(data)))]
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" '
                         f'stroke-width="2" points="{path}"/>')
            p50 = percentiles(data)["p50"]
            ly = y0 + 12 + i * 18
            parts.append(f'<line x1="{width - right + 15}" y1="{ly - 4}" x2="{width - right + 35}" '
                         f'y2="{ly - 4}" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="3"/>'
                         f'<text x="{width - right + 40}" y="{ly}">{system} '
                         f'(p50 {duration(p50)})</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write(results, out_dir):
    """RESULTS.md, and failover.svg when the failover trials ran, in out_dir; returns the table."""
    text = table(results)
    with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
        f.write(text)
    if curves(results):
        with open(os.path.join(out_dir, "failover.svg"), "w") as f:
            f.write(plot(results))
    return text


if __name__ == "__main__":
    with open(os.path.join(sys.argv[1], "results.json")) as f:
        write(json.load(f), sys.argv[1])
