"""Leader SGD (one and two levels, overlap), EASGD and local SGD against an in-process
simulation of all workers, on 2, 3 and 4 ranks, Gloo and MPI; errors of the model-averaging
modes."""
import pytest
import torch

import horovod_ext as hvd_ext
from conftest import MPI, launch_json

RUNS = [("gloo", 2), ("gloo", 3), ("gloo", 4), pytest.param(("mpi", 2), marks=MPI)]
CASES = ["leader", "leader_adam_window3", "leader_overlap", "leader_overlap_period1",
         "leader_tie", "easgd", "easgd_default_rate", "localsgd", "leader_two_level",
         "leader_two_level_overlap"]


@pytest.fixture(scope="module", params=RUNS, ids=lambda r: f"{r[0]}-np{r[1]}")
def results(request, tmp_path_factory):
    backend, np = request.param
    return np, launch_json("averaging_reference.py", np, backend, tmp_path_factory)


@pytest.mark.parametrize("case", CASES)
def test_matches_simulation(results, case):
    np, per_rank = results
    if case not in per_rank[0]:
        pytest.skip("two-level cases run on 4 ranks (groups of 2)")
    for rank, res in enumerate(per_rank):
        r = res[case]
        assert r["moved"] > 1e-2, "training did not change the parameters"
        assert r["worst"] <= 2e-5, f"rank {rank}: step-wise relative difference {r['worst']:.3g}"
        assert r["after_flush"] <= 2e-5
        assert r["leaders_ok"], f"rank {rank}: leaders {r['leaders']} differ from the simulation"
        assert r["consensus"] <= 2e-5, "consensus_params loaded the wrong model"
        assert r["restored"], "consensus_params did not restore the rank's own parameters"
        if case != "leader_tie" and not case.startswith("localsgd"):
            assert r["replicas_differ"] > 0, "workers should not be identical between rounds"


def test_ties_go_to_the_lowest_rank(results):
    _, per_rank = results
    for res in per_rank:
        assert res["leader_tie"]["leaders"] == [[0, 0, 0]]


def test_leaders_vary(results):
    _, per_rank = results
    assert len({r for h in per_rank[0]["leader"]["leaders"] for r in h}) >= 1
    assert per_rank[0]["leader"]["leaders"] == per_rank[-1]["leader"]["leaders"]


def test_missing_loss_raises_on_every_rank(results):
    _, per_rank = results
    for res in per_rank:
        assert "optimizer.step(loss=loss)" in (res["missing_loss"]["message"] or "")


@pytest.mark.parametrize("make, needle", [
    (lambda: hvd_ext.Leader(period=0, pull=0.5), "Leader.period"),
    (lambda: hvd_ext.Leader(period=2, pull=0.0), "Leader.pull"),
    (lambda: hvd_ext.Leader(period=2, pull=1.5), "Leader.pull"),
    (lambda: hvd_ext.Leader(period=2, pull=0.5, window=0), "Leader.window"),
    (lambda: hvd_ext.Leader(period=2, pull=0.5, global_period=3), "global_pull must be given"),
    (lambda: hvd_ext.Leader(period=2, pull=0.5, global_period=0, global_pull=0.1),
     "Leader.global_period"),
    (lambda: hvd_ext.Leader(period=2, pull=0.5, global_period=2, global_pull=2.0),
     "Leader.global_pull"),
    (lambda: hvd_ext.Leader(period=2, pull=0.5, group_size=2), "Leader.group_size needs"),
    (lambda: hvd_ext.Leader(period=2, pull=0.5, overlap=1), "Leader.overlap"),
    (lambda: hvd_ext.EASGD(period=1.5), "EASGD.period"),
    (lambda: hvd_ext.EASGD(period=1, moving_rate=0), "EASGD.moving_rate"),
    (lambda: hvd_ext.LocalSGD(period=-1), "LocalSGD.period"),
])
def test_bad_fields_raise(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


@pytest.mark.parametrize("kwargs, needle", [
    (dict(backward_passes_per_step=2), "backward_passes_per_step applies to the gradient"),
    (dict(gradient_predivide_factor=2.0), "gradient_predivide_factor applies"),
    (dict(compression=hvd_ext.Compression.fp16), "compression applies"),
    (dict(mode="leader"), "has required fields"),
])
def test_gradient_arguments_refused_in_averaging_modes(kwargs, needle):
    model = torch.nn.Linear(3, 2)
    kwargs.setdefault("mode", hvd_ext.LocalSGD(period=2))
    with pytest.raises(ValueError, match=needle):
        hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)
