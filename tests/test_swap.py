"""Adopting the plug-in by assignment (``hvd.DistributedOptimizer =
hvd_ext.DistributedOptimizer``) keeps Horovod's resume recipe working: no hang, and every rank
ends with rank 0's optimizer state, on Gloo and MPI."""
import json

import pytest

from conftest import MPI, launch


@pytest.mark.parametrize("backend", ["gloo", pytest.param("mpi", marks=MPI)])
def test_resume_from_rank_0_after_the_swap(tmp_path, backend):
    launch("swap_resume.py", 2, backend, [str(tmp_path / "out"), str(tmp_path / "ckpt")],
           timeout=120)  # a hang fails here instead of holding the suite
    for rank in range(2):
        results = json.loads((tmp_path / f"out.{rank}").read_text())
        assert results.pop("surface")["differ"] == [], "attributes that differ from Horovod's"
        for mode, r in results.items():
            assert r["class_module"] == "horovod.torch.optimizer", mode
            assert r["parameter_names"], f"{mode}: _parameter_names is not Horovod's mapping"
            assert r["state_tensors"] > 0, f"{mode}: rank {rank} has no optimizer state"
            assert r["state_spread"] == 0.0, f"{mode}: ranks hold different optimizer states"
            assert r["state_step"] == 3.0, f"{mode}: rank {rank} did not get rank 0's state"
            assert r["param_spread"] == 0.0, f"{mode}: ranks diverged after resuming"
