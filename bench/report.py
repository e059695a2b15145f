"""
bench/report.py: the benchmark's results as people read them.

Owns the table against the SPEC's targets (Markdown, RESULTS.md and the
README's Benchmarks section) and the plot of the failover latency
distributions (SVG, drawn here without plotting libraries: cumulative share
of trials against latency on a logarithmic axis, one curve per system).
Run alone, it renders them again from a results directory's results.json:
python3 bench/report.py bench/results
"""
import json
import math
import os
import sys

from stats import percentiles

LEADER = "leader"


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


def targets_table(r):
    f = r["failover"]["samples_ms"][LEADER]
    crash, release, stop = (percentiles(f[k]) for k in ("crash", "handover", "pg_leader"))
    expiry_event = percentiles(f["partition_expired_event"])
    idle = r["scale"]["idle_groups"]
    churn_large = idle["with_100000_idle"]
    waiters = r["scale"]["waiters"]
    tp = r["throughput"]["ratios"]
    bl = r["bloat"]["tables"]
    expiry_p99 = max(expiry_event["p99"], churn_large["expiry_delay_ms"]["p99"])
    one_winner = (waiters["terms_strictly_increasing"] and waiters["extra_winners"] == 0
                  and waiters["acquired_events_per_term_all_one"])
    rows = [
        ("crash failover: client process killed → a waiting candidate leads",
         "p50 ≤ 10 ms, p99 ≤ 50 ms",
         f"p50 {duration(crash['p50'])}, p99 {duration(crash['p99'])}, max {duration(crash['max'])} (n={crash['n']})",
         crash["p50"] <= 10 and crash["p99"] <= 50),
        ("graceful handover: `leader_release` → a waiting candidate leads",
         "p50 ≤ 5 ms, p99 ≤ 20 ms",
         f"p50 {duration(release['p50'])}, p99 {duration(release['p99'])}, max {duration(release['max'])} (n={release['n']})",
         release["p50"] <= 5 and release["p99"] <= 20),
        ("graceful handover: `pg_leader run` stopping (SIGTERM) → a waiting candidate leads",
         "p50 ≤ 5 ms, p99 ≤ 20 ms",
         f"p50 {duration(stop['p50'])}, p99 {duration(stop['p99'])}, max {duration(stop['max'])} (n={stop['n']})",
         stop["p50"] <= 5 and stop["p99"] <= 20),
        ("expiry precision: `expires_at` → `expired` event",
         "p99 ≤ 50 ms",
         f"frozen leader: p99 {duration(expiry_event['p99'])} (n={expiry_event['n']}); "
         f"100 expiries/s beside 100 000 idle groups: p99 {duration(churn_large['expiry_delay_ms']['p99'])} "
         f"(n={churn_large['expiry_delay_ms']['n']})",
         expiry_p99 <= 50),
        ("renew throughput vs the plain-SQL lease upsert, same durability",
         "≥ 1.0×",
         f"{tp['renew_leader_vs_plain']['durable']}× durable, "
         f"{tp['renew_leader_vs_plain']['async_commit']}× with synchronous_commit off",
         tp["renew_leader_vs_plain"]["durable"] >= 1.0
         and tp["renew_leader_vs_plain"]["async_commit"] >= 1.0),
        ("losing `leader_try_acquire` vs `pg_try_advisory_xact_lock`",
         "≥ 0.8×", f"{tp['lose_leader_vs_advisory']['durable']}×",
         tp["lose_leader_vs_advisory"]["durable"] >= 0.8),
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
        (f"`leader_lease` size after {bl['leader']['renewals']:,} renewals of 1 000 groups",
         "≤ 2× its size after the first round",
         f"{bl['leader']['ratio_after_vs_first']}× ({bl['leader']['size_first_round']['total'] // 1024} → "
         f"{bl['leader']['size_after']['total'] // 1024} KiB), HOT updates "
         f"{bl['leader']['hot_share'] * 100:.2f}%; plain table: {bl['plain']['ratio_after_vs_first']}×",
         bl["leader"]["ratio_after_vs_first"] <= 2.0),
    ]
    out = ["| measure | target | measured | met |", "|---|---|---|---|"]
    out += [f"| {m} | {t} | {v} | {met(ok)} |" for m, t, v, ok in rows]
    return "\n".join(out)


def throughput_table(r):
    runs = r["throughput"]["runs"]
    s = r["throughput"]["settings"]
    out = [f"pgbench, {s['clients']} clients, {s['threads']} threads, {s['seconds']} s per script, "
           "`-M prepared`:", "",
           "| script | durable tps | synchronous_commit off tps |", "|---|---|---|"]
    for script, run in runs["durable"].items():
        off = runs["async_commit"].get(script)
        off_tps = f"{off['tps']:,.0f}" if off else "–"
        out.append(f"| `{script}` | {run['tps']:,.0f} | {off_tps} |")
    return "\n".join(out)


def table(r):
    m = r["machine"]
    return "\n".join([
        f"Measured {r['date']} on {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"{m['server']}; fsync and synchronous_commit on unless said; whole run "
        f"{r['elapsed_s'] // 60} min {r['elapsed_s'] % 60} s"
        + (" (quick mode: fewer trials, not for the record)" if r["quick"] else "") + ".",
        "", "#### Against the SPEC's targets", "", targets_table(r),
        "", "#### Failover, side by side (p50 / p90 / p99 / max, n trials)", "",
        failover_table(r["failover"]["samples_ms"]),
        "", "#### Throughput", "", throughput_table(r), ""])


COLOURS = ["#1b7837", "#c51b7d", "#e08214", "#2166ac", "#762a83"]


def plot(r):
    """Two panels (crash, graceful handover): share of trials done by a given latency."""
    samples = r["failover"]["samples_ms"]
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
        for i, (system, s) in enumerate(samples.items()):
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
    """RESULTS.md and failover.svg in out_dir; returns the table."""
    text = table(results)
    with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "failover.svg"), "w") as f:
        f.write(plot(results))
    return text


if __name__ == "__main__":
    with open(os.path.join(sys.argv[1], "results.json")) as f:
        write(json.load(f), sys.argv[1])
