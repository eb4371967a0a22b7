"""The peers of the benchmarks are the libraries themselves, set up as they document it: DDP's
own local SGD (post_localSGD_hook, PostLocalSGDOptimizer, PeriodicModelAverager) on 2 real ranks
against a float64 reference of periodic averaging."""
import json

from conftest import launch


def test_ddp_local_sgd_averages_every_period_and_steps_locally_between(tmp_path):
    out = tmp_path / "out.json"
    launch("ddp_postlocalsgd.py", 2, "gloo", [str(out), "4"], timeout=300)
    got = json.loads(out.read_text())
    assert got["worst"] < 1e-5, got
    # the ranks hold one model right after an averaging step (1, 5, 9), their own in between
    assert got["equal"] == [s % 4 == 1 for s in range(1, 10)], got["equal"]


def test_torchft_local_sgd_and_diloco_are_our_math(tmp_path):
    """Each rank a replica group of one, the lighthouse on the first rank: torchft's LocalSGD and
    DiLoCo (outer Nesterov SGD 1.0 / 0.5) end where ours do, the ranks on one model."""
    out = tmp_path / "out.json"
    launch("torchft_peers.py", 2, "gloo", [str(out)], timeout=300)
    got = json.loads(out.read_text())
    for peer in ("torchft-localsgd-H4", "torchft-diloco-H4"):
        r = got[peer]
        assert r["diff"] < 1e-5 and r["ranks_equal"], (peer, r)
    # streamed (2 fragments, overlap 1, mix 0.5): its loss falls and it ends near ours (with one
    # outer optimizer for the whole model it diverged)
    r = got["torchft-streaming-H8"]
    assert r["loss_after"] < r["loss_before"], r
    assert r["diff"] < 0.5 * r["moved"], r
