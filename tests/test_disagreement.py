"""Ranks that disagree about where they are in the optimizer's own collectives (the tuner's
timing exchange, the bucket plan, the codec state, the averaging rounds) raise on every rank,
naming the points, instead of waiting on each other forever (horovod_ext/runtime/same_point.py)."""
import json

import pytest

from conftest import MPI, launch

BOUND_S = 5  # HOROVOD_EXT_SAME_POINT_TIMEOUT of the gradient modes' points
SHUT_DOWN = "another rank failed or exited first"


def run(case, tmp_path, backend="gloo"):
    out = tmp_path / case
    launch("disagree.py", 2, backend, [case, str(out)], timeout=120,
           env={"HOROVOD_EXT_SAME_POINT_TIMEOUT": str(BOUND_S)})
    return [json.loads(out.with_name(f"{case}.{r}").read_text()) for r in range(2)]


@pytest.mark.parametrize("case,late,point", [
    ("tuner", 0, "the online tuner's timing exchange after tuning step"),
    ("plan", 1, "the bucket plan from the first rank's gradient order"),
    ("codec", 1, "the codec state from the first rank")])
def test_a_rank_alone_at_a_point_times_out_and_stops_the_others(case, late, point, tmp_path):
    """One rank waits at a point while the other waits in the next gradient allreduce: the first
    raises a TimeoutError naming its point after the bound and shuts Horovod down, the other
    fails at once with Horovod's shut-down error."""
    results = run(case, tmp_path)
    waiting, other = results[late], results[1 - late]
    # in a backward hook (codec) the TimeoutError is the cause of the hook's failure
    raised = waiting["type"] if waiting["cause"] is None else waiting["cause"]
    assert raised.startswith("TimeoutError"), waiting
    assert point in waiting["error"] and f"waited {BOUND_S} s" in waiting["error"], waiting
    assert other["type"] == "HorovodInternalError" and SHUT_DOWN in other["error"], other


@pytest.mark.parametrize("backend", ["gloo", pytest.param("mpi", marks=MPI)])
def test_ranks_at_different_points_both_raise_naming_both(backend, tmp_path):
    """After an unnoticed resize ranks were found at the tuner's timing exchange and at the
    plan's broadcast: both now raise the same error at once."""
    first, second = run("mixed", tmp_path, backend)
    assert first == second and first["type"] == "RuntimeError", (first, second)
    assert "rank 0 at the online tuner's timing exchange" in first["error"]
    assert "rank 1 at the bucket plan" in first["error"]


@pytest.mark.parametrize("case,points", [
    ("round", ["rank 0 at the sum of the parameters for consensus_params() after step 4",
               "rank 1 at the sum of the parameters for the round after step 6"]),
    ("fragment", ["rank 0 at the outer round of fragment 1 after step 2",
                  "rank 1 at the outer round of fragment 0 after step 2"])])
def test_averaging_rounds_that_differ_raise_on_every_rank(case, points, tmp_path):
    first, second = run(case, tmp_path)
    assert first["type"] == second["type"] == "RuntimeError", (first, second)
    assert first["error"] == second["error"]
    for p in points:
        assert p in first["error"]
