"""Every script in examples/ runs as a user runs it (horovodrun, 2 ranks, a few steps) and does
what it says: the swap flag trains with either optimizer, losses fall, DiLoCo's codec sends
fewer bytes, the launch script starts the ranks it is given; HVD_EXT_LOG_LEVEL=DEBUG prints the
bucket plan on the first rank only."""
import os
import re
import subprocess
import sys

import pytest

from conftest import BIN, MPI, ROOT, launch
from horovod_ext.advisor import recommend


def rank0(proc, pattern):
    """The values printed on lines matching ``pattern`` (one group, a number): horovodrun tags
    the first rank's lines, mpirun tags none; only the first rank prints these lines."""
    return [float(m) for m in re.findall(r"^(?:\[0\]<stdout>:)?" + pattern, proc.stdout, re.M)]


@pytest.mark.parametrize("args", [["--optimizer", "horovod"], ["--optimizer", "hvd_ext"],
                                  ["--mode", "delayed", "--compression", "powersgd"]])
def test_synthetic_benchmark_runs_with_either_optimizer(args):
    proc = launch("examples/pytorch_synthetic_benchmark.py", 2, "gloo",
                  args + ["--num-iters", "1", "--num-batches-per-iter", "2"])
    rate, = rank0(proc, r"total img/sec on 2 ranks: ([\d.]+)")
    assert rate > 0
    name = "horovod" if "horovod" in args else "hvd_ext"
    assert f"[0]<stdout>:{name} (" in proc.stdout


@pytest.mark.parametrize("backend", ["gloo", pytest.param("mpi", marks=MPI)])
def test_amp_and_clipping_loop_lowers_the_loss(backend):
    proc = launch("examples/train_amp_clipping.py", 2, backend, ["--steps", "60"])
    losses = rank0(proc, r"step \d+: loss ([\d.]+)")
    assert len(losses) == 3 and losses[-1] < 0.7 * losses[0], losses


def test_delayed_example_scales_the_learning_rate_down():
    proc = launch("examples/delayed_with_lr_advice.py", 2, "gloo",
                  ["--steps", "100", "--measure-steps", "40"])
    factor, = rank0(proc, r"B_noise .* learning rate for staleness 2: x([\d.]+)")
    assert 0 < factor < 1
    loss, = rank0(proc, r"delayed mode, staleness 2, lr [\d.e-]+: last loss ([\d.]+)")
    assert loss < 1.2  # log(4) = 1.39 is chance


@pytest.mark.parametrize("compression", ["none", "powersgd"])
def test_diloco_example_trains_the_outer_model(compression):
    proc = launch("examples/diloco.py", 2, "gloo", ["--steps", "64", "--period", "16",
                                                     "--compression", compression])
    losses = rank0(proc, r"step \d+: outer-model loss ([\d.]+)")
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    sent, = rank0(proc, r"step 64: outer-model loss [\d.]+, ([\d.]+) kB")
    # 128-wide model: 4 rounds of 4.7k floats whole (75 kB); PowerSGD rank 4 sends far less
    assert (sent < 30) == (compression == "powersgd"), sent


def test_elastic_example_commits_every_step_it_reaches():
    proc = launch("examples/elastic_train.py", 2, "gloo", ["--steps", "30"])
    assert re.findall(r"\[0\]<stdout>:step (\d+) on 2 ranks", proc.stdout) == ["10", "20", "30"]


def test_launch_script_starts_the_ranks_of_its_hosts():
    env = dict(os.environ, HOSTS="localhost:2", PYTHON=sys.executable, OMP_NUM_THREADS="1",
               PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    proc = subprocess.run(["bash", str(ROOT / "examples" / "launch_multinode.sh"),
                           str(ROOT / "examples" / "pytorch_synthetic_benchmark.py"),
                           "--num-iters", "1", "--num-batches-per-iter", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "hvd_ext (sync, compression none), 2 ranks on cpu" in proc.stdout


def test_debug_log_shows_the_plan_on_the_first_rank_only():
    proc = launch("examples/pytorch_synthetic_benchmark.py", 2, "gloo",
                  ["--num-iters", "1", "--num-batches-per-iter", "1"],
                  env={"HVD_EXT_LOG_LEVEL": "DEBUG"})
    assert re.search(r"\[0\]<stderr>:\[horovod_ext DEBUG\] bucket plan \(the order gradients "
                     r"became ready on the first rank\): \d+ buckets", proc.stderr)
    assert "[0]<stderr>:  bucket 0:" in proc.stderr and "9.weight (10, 256)" in proc.stderr
    assert "mode Sync(overlap_forward=False)" in proc.stderr
    assert "[1]<stderr>:[horovod_ext" not in proc.stderr


def test_a_bad_log_level_is_named():
    env = dict(os.environ, HVD_EXT_LOG_LEVEL="LOUD", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", "import horovod_ext"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "HVD_EXT_LOG_LEVEL must be a logging level" in proc.stderr


def test_choose_mode_example_trains_with_the_recommendation():
    proc = launch("examples/choose_mode.py", 2, "gloo", ["--steps", "150"])
    out = proc.stdout
    chosen = re.findall(r"rank (\d) trains with (\S+)", out)
    assert sorted(r for r, _ in chosen) == ["0", "1"] and len({c for _, c in chosen}) == 1, chosen
    name = chosen[0][1]
    assert f"recommended: {recommend.HOW[name]}" in out
    first, = rank0(proc, r"step 0: loss ([\d.]+)")
    last, = rank0(proc, r"last loss ([\d.]+)")
    assert last < 0.7 * first, (first, last)  # log(8) = 2.08 is chance
