"""Failure behaviour: nonfinite="ignore" | "skip" | "raise" in every mode, and a failing
backward hook (or a rank-local raise) that stops every rank quickly instead of hanging."""
import json

import pytest

from conftest import MPI, launch

BACKENDS = ["gloo", pytest.param("mpi", marks=MPI)]


def _per_rank(path, np=2):
    return [json.loads(path.with_name(f"{path.name}.{r}").read_text()) for r in range(np)]


@pytest.fixture(scope="module")
def nonfinite(tmp_path_factory):
    out = tmp_path_factory.mktemp("nonfinite") / "result.json"
    launch("failures.py", 2, "gloo", ["nonfinite", str(out)])
    return _per_rank(out)


@pytest.mark.parametrize("mode", ["sync", "delayed", "sync_stats"])
def test_gradient_modes_decide_on_the_average(nonfinite, mode):
    for rank in nonfinite:  # only rank 1's data has a NaN; every rank acts alike
        assert not rank[f"{mode}-ignore"]["finite"], "ignore applies the NaN, as Horovod does"
        skip = rank[f"{mode}-skip"]
        assert skip["finite"] and skip["skipped"] == 1 and skip["sim_skipped"] == 1
        assert skip["vs_simulation"] == 0.0, "skip must equal the simulation that omits that step"
        error = rank[f"{mode}-raise"]["error"]
        assert error.startswith("FloatingPointError") and "'4.bias'" in error
        assert "step 3" in error  # the step of the gradient, also when applied k steps later


@pytest.mark.parametrize("mode", ["leader", "easgd", "local_sgd"])
def test_averaging_modes_skip_on_the_rank_that_diverged(nonfinite, mode):
    assert [r[f"{mode}-skip"]["skipped"] for r in nonfinite] == [0, 1]
    assert all(r[f"{mode}-skip"]["finite"] for r in nonfinite)
    assert not nonfinite[1][f"{mode}-ignore"]["finite"]
    if mode == "leader":  # a NaN loss never wins the election: rank 0 stays finite
        assert nonfinite[0]["leader-ignore"]["finite"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_failing_hook_stops_every_rank(backend, tmp_path):
    out = tmp_path / "hook.json"
    launch("failures.py", 2, backend, ["stop", str(out), "hook"], timeout=120)
    failing, other = _per_rank(out)
    assert failing["step"] == other["step"] == 3
    assert failing["type"] == "RuntimeError" and failing["cause"] == "RuntimeError: injected failure"
    assert "backward hook of parameter '0.weight'" in failing["error"]
    # rank 1 waited for a bucket rank 0 never launched: it fails, at once, saying so
    assert other["type"] == "HorovodInternalError"
    assert "another rank failed or exited first" in other["error"]
    assert other["seconds"] < 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_rank_local_raise_stops_every_rank(backend, tmp_path):
    out = tmp_path / "leader.json"
    launch("failures.py", 2, backend, ["stop", str(out), "leader_raise"], timeout=120)
    waiting, failing = _per_rank(out)
    assert failing["type"] == "FloatingPointError" and "on rank 1 at step 3" in failing["error"]
    assert waiting["type"] == "HorovodInternalError" and "shut down" in waiting["error"]
    assert waiting["step"] == 3 and waiting["seconds"] < 5

