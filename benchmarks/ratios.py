"""Speed ratios between optimizers timed in the same alternating rounds, with a 95% bootstrap
confidence interval over rounds (throughput.py, run.py's table)."""
import random
import statistics


def speedup(base_rounds, rounds, resamples=2000, seed=0):
    """How many times faster ``rounds`` is than ``base_rounds`` (step times of the same rounds,
    in order): the ratio of their medians, and the 2.5th and 97.5th percentiles of that ratio
    over resamples of the rounds (pairs kept together, as both ran in the same round)."""
    if len(base_rounds) != len(rounds) or not rounds:
        raise ValueError("speedup needs the two optimizers' step times of the same rounds")
    point = statistics.median(base_rounds) / statistics.median(rounds)
    rng = random.Random(seed)
    n = len(rounds)
    samples = []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        samples.append(statistics.median(base_rounds[i] for i in pick)
                       / statistics.median(rounds[i] for i in pick))
    samples.sort()
    return point, [samples[int(0.025 * resamples)], samples[int(0.975 * resamples) - 1]]


def verdict(ci95):
    """'faster' or 'slower' only when the interval excludes 1.0, else 'tie'."""
    lo, hi = ci95
    return "faster" if lo > 1.0 else "slower" if hi < 1.0 else "tie"


def cell(ratio, ci95):
    """The console/README form of a ratio: 1.12x [1.05, 1.19]."""
    return f"{ratio:.2f}x [{ci95[0]:.2f}, {ci95[1]:.2f}]"


def speedup_unpaired(base_rounds, rounds, resamples=2000, seed=0):
    """``speedup`` for rounds of two different jobs: each side resampled on its own."""
    point = statistics.median(base_rounds) / statistics.median(rounds)
    rng = random.Random(seed)
    samples = sorted(
        statistics.median(rng.choices(base_rounds, k=len(base_rounds)))
        / statistics.median(rng.choices(rounds, k=len(rounds))) for _ in range(resamples))
    return point, [samples[int(0.025 * resamples)], samples[int(0.975 * resamples) - 1]]


def median_ci(samples, resamples=2000, seed=0):
    """The median of ``samples`` and the 2.5th and 97.5th percentiles of the median over
    resamples."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(samples, k=len(samples)))
                  for _ in range(resamples))
    return statistics.median(samples), [meds[int(0.025 * resamples)],
                                        meds[int(0.975 * resamples) - 1]]
