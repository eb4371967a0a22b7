"""DiLoCo against an in-process simulation of all workers (2 and 3 ranks, Gloo and MPI): Nesterov
and plain outer momentum, fragments, pseudo-gradients in fp16, by PowerSGD and in 8 bits; equal
to LocalSGD with outer_lr=1, outer_momentum=0; bit-identical resume, with PowerSGD's state too;
its argument checks."""
import pytest
import torch

import horovod_ext as hvd_ext
from conftest import MPI, launch_json

RUNS = [("gloo", 2), ("gloo", 3), pytest.param(("mpi", 2), marks=MPI)]


@pytest.fixture(scope="module", params=RUNS, ids=lambda r: f"{r[0]}-np{r[1]}")
def results(request, tmp_path_factory):
    backend, np = request.param
    return launch_json("diloco_reference.py", np, backend, tmp_path_factory, timeout=300)


TOLERANCE = {"fp16": 2e-3, "int8": 2e-2, "powersgd_full_rank": 1e-4}


@pytest.mark.parametrize("case", ["nesterov", "momentum", "fragments", "fp16",
                                  "powersgd_before_start", "powersgd_full_rank", "int8"])
def test_matches_simulation(results, case):
    r = results[case]
    tol = TOLERANCE.get(case, 2e-5)
    assert r["moved"] > 1e-2, "training did not change the parameters"
    assert r["worst"] <= tol, f"{case}: step-wise relative difference {r['worst']:.3g}"
    assert r["consensus"] <= tol, "consensus_params must load theta"


def test_fp16_halves_the_bytes(results):
    assert results["fp16"]["bytes_sent"] == pytest.approx(results["nesterov"]["bytes_sent"] / 2)


def test_outer_lr_1_momentum_0_is_local_sgd(results):
    assert results["equals_localsgd"]["worst"] <= 1e-6


@pytest.mark.parametrize("case", ["resume", "resume_powersgd"])
def test_resume_is_bit_identical(results, case):
    assert results[case]["max_diff"] == 0.0


def test_codecs_send_fewer_bytes(results):
    whole = results["nesterov"]["bytes_sent"]
    assert results["powersgd_before_start"]["bytes_sent"] == whole
    assert results["int8"]["bytes_sent"] < 0.3 * whole


@pytest.mark.parametrize("kwargs, needle", [
    (dict(period=0), "DiLoCo.period"), (dict(period=2, outer_lr=0.0), "DiLoCo.outer_lr"),
    (dict(period=2, outer_lr=float("nan")), "DiLoCo.outer_lr"),
    (dict(period=2, outer_momentum=1.0), "DiLoCo.outer_momentum"),
    (dict(period=2, outer_momentum=-0.1), "DiLoCo.outer_momentum"),
    (dict(period=2, fragments=3), "DiLoCo.fragments"), (dict(period=2, fragments=0), "DiLoCo.fragments"),
    (dict(period=2, nesterov="yes"), "DiLoCo.nesterov"),
    (dict(period=4, overlap=4), "DiLoCo.overlap must be < period // fragments"),
    (dict(period=8, fragments=4, overlap=2), r"DiLoCo.overlap must be < period // fragments \(2\)"),
    (dict(period=4, overlap=-1), "DiLoCo.overlap"), (dict(period=4, overlap=True), "DiLoCo.overlap"),
    (dict(period=4, overlap=1.0), "DiLoCo.overlap"), (dict(period=4, mix=1.5), "DiLoCo.mix"),
    (dict(period=4, mix=-0.1), "DiLoCo.mix"), (dict(period=4, mix=float("nan")), "DiLoCo.mix"),
    (dict(period=4, mix="half"), "DiLoCo.mix")])
def test_bad_fields_raise(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        hvd_ext.DiLoCo(**kwargs)


def test_more_fragments_than_tensors_and_stats_are_refused():
    model = torch.nn.Linear(3, 2)  # two tensors
    with pytest.raises(ValueError, match=r"DiLoCo.fragments must be <= the number of parameter"):
        hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                     mode=hvd_ext.DiLoCo(period=4, fragments=3))
    with pytest.raises(ValueError, match="stats needs a gradient-averaging mode"):
        hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                     mode=hvd_ext.DiLoCo(period=4),
                                     stats=hvd_ext.GradientStats(batch_size=8))
