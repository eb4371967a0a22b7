"""Checkpoint/resume of every mode: a new process that loads the model's and the optimizer's
state_dict saved after any step continues bit-identically to the uninterrupted run (pending
delayed gradients, leader state and overlapped pulls, EASGD center, inner optimizer state,
gradient statistics), and saving does not perturb the run."""
import json

import pytest

from conftest import launch

MODES = ["sync_adam_stats", "delayed", "leader_overlap", "easgd", "local_sgd"]


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
