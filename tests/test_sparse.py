"""Sparse gradients (nn.Embedding(sparse=True)) in real 2-rank jobs on Gloo and MPI: SparseAdam
and SGD, sparse_as_dense False and True, sync against hvd.DistributedOptimizer, sync and delayed
against Horovod's own collectives applied by hand (a rank without the embedding in one step
included), and a delayed run resumed from a state_dict saved with a sparse gradient in flight."""
import pytest

from conftest import MPI, launch_json

BACKENDS = ["gloo", pytest.param("mpi", marks=MPI)]
CASES = [f"{optim}_dense{dense}_{against}"
         for optim in ("sparse_adam", "sgd") for dense in (0, 1)
         for against in ("horovod_s0", "reference_s0", "reference_s1")]


@pytest.fixture(scope="module", params=BACKENDS)
def results(request, tmp_path_factory):
    return launch_json("sparse_reference.py", 2, request.param, tmp_path_factory, timeout=300)


@pytest.mark.parametrize("case", CASES)
def test_sparse_gradients_match(results, case):
    r = results[case]
    assert r["moved"] > 1e-3, "training did not change the embedding"
    assert r["rel_err"] <= 1e-6, f"{case}: relative error {r['rel_err']:.3g}"
    assert r["grad_sparse"], "the inner step must see a sparse gradient (SparseAdam needs it)"
    gathered = "_dense0_" in case
    assert r["gathered"] == int(gathered)
    # A gathered embedding leaves the bucket plan; a densified one rides in a bucket.
    assert r["in_plan"] is not gathered


def test_delayed_resumes_with_a_sparse_gradient_in_flight(results):
    r = results["resume"]
    assert r["saved_sparse"]
    assert r["max_diff"] == 0.0
