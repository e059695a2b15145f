"""
bench/stats.py: how the benchmarks summarise a list of samples.

Owns the percentile definition every figure uses: nearest rank (the value
below which p percent of the samples fall, taken from the samples, never
interpolated), with n and the maximum alongside.
"""


def percentiles(samples):
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}

    def at(p):
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)
    return {"n": len(ordered), "p50": at(50), "p90": at(90), "p99": at(99),
            "max": round(ordered[-1], 2)}
