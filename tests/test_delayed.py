"""Delayed mode: every step equals an in-process simulation of all ranks (k = 1, 2, 3, SGD with
momentum and Adam, delay compensation, 2 and 3 ranks, Gloo and MPI), flush() leaves nothing in
flight, checkpoint/resume in a new process is bit-identical, and bad fields raise."""
import pytest
import torch

import horovod_ext as hvd_ext
from conftest import MPI, launch, launch_json

RUNS = [("gloo", 2), ("gloo", 3), pytest.param(("mpi", 2), marks=MPI)]
CASES = [f"k{k}_{o}" for k in (1, 2, 3) for o in ("sgd", "adam")] + [
    "k1_sgd_compensation", "k2_adam_compensation", "k1_sgd_bpps2_fp16"]


@pytest.fixture(scope="module", params=RUNS, ids=lambda r: f"{r[0]}-np{r[1]}")
def results(request, tmp_path_factory):
    backend, np = request.param
    return launch_json("delayed_reference.py", np, backend, tmp_path_factory)


@pytest.mark.parametrize("case", CASES)
def test_matches_simulation(results, case):
    r = results[case]
    assert r["moved"] > 1e-2, "training did not change the parameters"
    assert r["worst"] <= r["tol"], f"{case}: step-wise relative difference {r['worst']:.3g}"
    assert r["after_flush"] <= r["tol"], f"{case}: after flush {r['after_flush']:.3g}"
    assert r["warmup_ok"], "the first k steps must take no inner step, the others must"
    assert r["in_flight_after_flush"] == 0
    assert r["pending_after_broadcast"] == 0
    assert r["rank_spread"] == 0.0


def test_compensation_changes_the_trajectory(results):
    a = torch.tensor(results["k1_sgd"]["final"])
    b = torch.tensor(results["k1_sgd_compensation"]["final"])
    assert ((a - b).abs().max() / a.abs().max()).item() > 1e-4


@pytest.mark.parametrize("backend", ["gloo", pytest.param("mpi", marks=MPI)])
def test_checkpoint_resume_is_bit_identical(backend, tmp_path):
    full, resumed, ckpt = tmp_path / "full.pt", tmp_path / "resumed.pt", tmp_path / "ckpt"
    launch("delayed_resume.py", 2, backend, ["full", str(full), str(ckpt)])
    launch("delayed_resume.py", 2, backend, ["save", str(resumed), str(ckpt)])
    launch("delayed_resume.py", 2, backend, ["resume", str(resumed), str(ckpt)])
    a, b = torch.load(full), torch.load(resumed)
    assert a["pending_at_save"] == 0 and b["pending_at_save"] == 2, "the checkpoint held no pending"
    for name in a["params"]:
        assert torch.equal(a["params"][name], b["params"][name]), name
    assert not torch.equal(a["params"]["0.weight"], b["initial"]["0.weight"])


@pytest.mark.parametrize("kwargs, needle", [
    (dict(staleness=0), "Delayed.staleness"), (dict(staleness=1.5), "Delayed.staleness"),
    (dict(staleness=True), "Delayed.staleness"), (dict(compensation=-0.1), "Delayed.compensation"),
    (dict(compensation=float("nan")), "Delayed.compensation"),
    (dict(compensation="1"), "Delayed.compensation")])
def test_bad_fields_raise(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        hvd_ext.Delayed(**kwargs)


def test_mode_by_name():
    from horovod_ext.modes import resolve_mode
    assert resolve_mode("delayed") == hvd_ext.Delayed(staleness=1, compensation=0.0)
    assert resolve_mode("DELAYED").staleness == 1
