"""Paired comparisons of rates measured round by round (each round's setups within the same
minute, so the machine's drift is shared): the geometric mean of the rounds' ratios with its
95 % interval. Used by replicas_interleaved.py and webhooks.py."""
import math
import statistics

# Student's t, two-sided 95 %, by degrees of freedom (1-30; beyond, the normal's 1.96).
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def paired_ratio(values, reference):
    """The geometric mean of the rounds' ratios values[r] / reference[r] and its 95 % interval
    (Student's t over the log ratios); the interval is NaN with fewer than two rounds."""
    logs = [math.log(v / r) for v, r in zip(values, reference) if v > 0 and r > 0]
    if len(logs) < 2:
        return (math.exp(logs[0]) if logs else math.nan), math.nan, math.nan
    mean, spread = statistics.mean(logs), statistics.stdev(logs) / math.sqrt(len(logs))
    t = T95[len(logs) - 2] if len(logs) - 1 <= len(T95) else 1.96
    return math.exp(mean), math.exp(mean - t * spread), math.exp(mean + t * spread)


def described(values, reference):
    """`-12.3 % (-20.1 .. -4.0)`: the paired ratio against `reference` as a change, with its interval."""
    mean, low, high = paired_ratio(values, reference)
    return f"{mean - 1:+.1%} " + (f"({low - 1:+.1%} .. {high - 1:+.1%})" if not math.isnan(low) else "(one round)")
