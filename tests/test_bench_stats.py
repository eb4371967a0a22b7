"""The benchmark's arithmetic: speedups with bootstrap intervals over rounds (ratios.py) and the
best step time of an exact synchronous schedule (bound.py), against cases worked by hand."""
import os
import random

import pytest

from benchmarks.bound import exact_sync_bound
from benchmarks.ratios import speedup, verdict

MB = 1 << 20


def test_identical_rounds_give_one_and_a_tie():
    rounds = [0.5, 0.7, 0.6, 0.55]
    ratio, ci = speedup(rounds, rounds)
    assert ratio == 1.0 and ci == [1.0, 1.0] and verdict(ci) == "tie"


def test_twice_as_fast_with_noise_excludes_one():
    rng = random.Random(1)
    base = [1.0 + rng.uniform(-0.1, 0.1) for _ in range(8)]
    fast = [b / 2 * (1 + rng.uniform(-0.05, 0.05)) for b in base]
    ratio, (lo, hi) = speedup(base, fast)
    assert 1.8 < lo <= ratio <= hi < 2.2
    assert verdict([lo, hi]) == "faster" and verdict([1 / hi, 1 / lo]) == "slower"


def test_an_interval_that_straddles_one_is_a_tie():
    base = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    other = [0.8, 1.25, 0.8, 1.25, 0.8, 1.25]  # as often faster as slower
    _, ci = speedup(base, other)
    assert ci[0] < 1.0 < ci[1] and verdict(ci) == "tie"


def test_rounds_must_pair():
    with pytest.raises(ValueError, match="same rounds"):
        speedup([1.0, 2.0], [1.0])


def test_one_layer_waits_for_its_whole_gradient():
    # Forward 0.1 s, backward 0.2 s, one 1 MB parameter read at the forward's start and ready at
    # backward's end: every step waits for its whole allreduce, F + B + 1 MB * w. Compute outside
    # forward and backward (the other parameters' optimizer steps) overlaps that wait.
    prof = (0.1, 0.2, [(MB, 0.0, 0.2)])
    assert exact_sync_bound(prof, 1e-7) == pytest.approx(0.3 + MB * 1e-7, rel=1e-9)
    assert exact_sync_bound(prof, 1e-7, other=0.05) == pytest.approx(0.3 + MB * 1e-7, rel=1e-9)
    assert exact_sync_bound(prof, 1e-7, other=0.2) == pytest.approx(0.5, rel=1e-9)


def test_a_fast_wire_leaves_only_the_first_layer_exposed():
    # Three 1 MB layers read at 0, 50 and 90 ms into the forward, ready at 200, 100 and 0 ms into
    # the backward. At 5e-8 s/byte (52 ms per layer) the last two arrive during backward; the
    # first layer's (ready last, read first) is all that the next forward waits for.
    prof = (0.1, 0.2, [(MB, 0.0, 0.2), (MB, 0.05, 0.1), (MB, 0.09, 0.0)])
    assert exact_sync_bound(prof, 5e-8) == pytest.approx(0.3 + MB * 5e-8, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_never_below_compute_or_wire(seed):
    rng = random.Random(seed)
    f, b = rng.uniform(0.01, 0.1), rng.uniform(0.02, 0.2)
    params = [(rng.randrange(1, 4 * MB), rng.uniform(0, f), rng.uniform(0, b)) for _ in range(12)]
    total = sum(s for s, _, _ in params)
    for spb in (1e-10, 1e-8, 1e-7):
        bound = exact_sync_bound((f, b, params), spb)
        assert bound >= max(f + b, total * spb) * (1 - 1e-9)


def test_stored_config_names_no_directory_of_this_machine(tmp_path):
    """A stored result gives its output path relative to the repository, or by name outside."""
    import argparse
    from benchmarks.record import ROOT, stored_config
    inside = argparse.Namespace(json=os.path.join(ROOT, "docs", "results", "x.json"), steps=3)
    outside = argparse.Namespace(json=str(tmp_path / "y.json"))
    config = stored_config(inside, np=2)
    assert config.pop("provenance")["cores"] == os.cpu_count()  # where it ran, by name only
    assert config == {"json": "docs/results/x.json", "steps": 3, "np": 2}
    assert stored_config(outside)["json"] == "y.json"
