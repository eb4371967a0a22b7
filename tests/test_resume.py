"""Checkpoint/resume of every mode: a new process that loads the model's and the optimizer's
state_dict saved after any step continues bit-identically to the uninterrupted run (pending
delayed gradients, leader state and overlapped pulls, EASGD center, inner optimizer state,
gradient statistics, PowerSGD's error feedback and warm-start matrices, Quantize's sender and owner errors,
TopK's error, overlapped DiLoCo rounds in flight), and saving does not perturb the run."""
import json

import pytest

from conftest import MPI, launch

MODES = ["sync_adam_stats", "delayed", "leader_overlap", "easgd", "local_sgd", "sync_powersgd",
         "sync_int8", "delayed_powersgd", "diloco_overlap", "diloco_overlap_int4", "sync_topk", "diloco_overlap_topk"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    launch("resume.py", 2, "gloo", ["full", str(tmp / "full.json"), str(tmp / "ckpt")])
    launch("resume.py", 2, "gloo", ["resume", str(tmp / "resumed.json"), str(tmp / "ckpt")])
    return [(json.loads((tmp / f"full.json.{r}").read_text()),
             json.loads((tmp / f"resumed.json.{r}").read_text())) for r in range(2)]


@pytest.mark.parametrize("mode", MODES)
def test_resume_at_every_step_is_bit_identical(runs, mode):
    for rank, (full, resumed) in enumerate(runs):
        plain = full[mode]["plain"]
        assert plain["trajectory"][0] != plain["trajectory"][-1], "training must move"
        assert full[mode]["saving"] == plain, f"rank {rank}: saving checkpoints changed the run"
        assert sorted(map(int, resumed[mode])) == list(range(1, len(plain["trajectory"]) - 1))
        for t, run in resumed[mode].items():
            assert run["trajectory"] == plain["trajectory"][int(t):], \
                f"rank {rank}: resumed after step {t} diverges"
            assert repr(run["noise_scale"]) == repr(plain["noise_scale"])


@pytest.mark.parametrize("backend,np", [("gloo", 3), pytest.param("mpi", 2, marks=MPI)])
def test_horovods_rank_0_resume_recipe_in_the_averaging_modes(tmp_path, backend, np):
    """Rank 0 alone loads, then hvd.broadcast_optimizer_state (which cannot carry the mode's
    step counter, theta, center or leaders): the same as every rank loading the checkpoint,
    bit for bit, not a hang or rounds at different steps."""
    launch("rank0_resume.py", np, backend, [str(tmp_path / "out")], timeout=180)
    for rank in range(np):
        results = json.loads((tmp_path / f"out.{rank}").read_text())
        for mode, r in results.items():
            assert r["moved"] > 0, f"{mode}: training must move"
            assert r["steps"] == [13, 13], f"rank {rank} {mode}: step counters {r['steps']}"
            assert r["own"] == 0.0 and r["consensus"] == 0.0, \
                f"rank {rank} {mode}: rank-0 resume differs from every rank loading: {r}"
