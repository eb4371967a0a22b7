"""DiLoCo(period="auto"): the choice from the probe's timings (a pure function), and on real
2-rank jobs: every rank takes the same period, the rounds follow it, a checkpoint keeps it."""
import pytest

import horovod_ext as hvd_ext
from conftest import MPI, launch_json
from horovod_ext.modes.period_choice import CANDIDATES, PROBE_PERIOD, choose, overlap_for


@pytest.mark.parametrize("round_ms,step_ms,fragments,expected", [
    (10, 5, 1, (8, 4)),        # hidden behind 4 steps of 5 ms
    (100, 5, 1, (64, 32)),     # 16 x 5 = 80 < 100 <= 32 x 5
    (100, 5, 2, (128, 32)),    # two fragments: half the overlap at each period
    (1e6, 5, 1, (256, 128)),   # nothing hides it: the largest
    (3, 1, 4, (32, 4)),        # 8 and 16 give 4 fragments an overlap of 1 and 2 steps
])
def test_the_smallest_period_whose_round_is_hidden(round_ms, step_ms, fragments, expected):
    assert choose(round_ms, step_ms, fragments) == expected
    period, overlap = expected
    assert overlap == overlap_for(period, fragments) < period // fragments


@pytest.mark.parametrize("kwargs,words", [
    (dict(overlap=2), "leave DiLoCo.overlap at 0"),
    (dict(fragments=PROBE_PERIOD + 1), "DiLoCo.fragments <= 8"),
])
def test_auto_refuses_what_it_chooses_itself(kwargs, words):
    with pytest.raises(ValueError, match=words):
        hvd_ext.DiLoCo(period="auto", **kwargs)


@pytest.fixture(scope="module", params=["gloo", pytest.param("mpi", marks=MPI)])
def results(request, tmp_path_factory):
    return launch_json("diloco_auto.py", 2, request.param, tmp_path_factory, timeout=300)


def expected_rounds(period, fragments, first, last):
    """The steps (1-based) after which a round starts: the probe's, then the chosen period's."""
    probe = [(f * PROBE_PERIOD // fragments) % PROBE_PERIOD for f in range(fragments)]
    phases = [(f * period // fragments) % period for f in range(fragments)]
    return [t for t in range(first, last + 1)
            if (t % PROBE_PERIOD in probe if t <= PROBE_PERIOD else t % period in phases)]


@pytest.mark.parametrize("case,fragments", [("slow", 1), ("fast", 2)])
def test_every_rank_takes_the_period_its_timings_give_and_keeps_it(results, case, fragments):
    r = results[case]
    assert r["period"] in CANDIDATES and not r["probing"]
    assert (r["period"], r["overlap"]) == choose(r["round_ms"], r["step_ms"], fragments), r["log"]
    assert r["rounds_after"] == expected_rounds(r["period"], fragments, 1, 80)
    assert r["resumed_after"] == [t for t in expected_rounds(r["period"], fragments, 81,
                                                             80 + 2 * r["period"])]
    if case == "slow":  # 50 ms inner steps hide a loopback round at the smallest period
        assert r["step_ms"] >= 50 and r["period"] == 8, r["log"]


def test_the_ranks_agree(results):
    assert len({tuple(p) for p in results["periods_of_ranks"]}) == 1
