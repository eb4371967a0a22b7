"""Gradient statistics: the estimator recovers known |G|^2, tr(S) and B_noise on least squares
(2 and 4 ranks), every step's norms and unbiased estimates equal an in-process float64
computation (sync and delayed), refusals happen on every rank, and the advisor's numbers follow
its formulas."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import horovod_ext as hvd_ext
from conftest import ROOT, launch


@pytest.fixture(scope="module", params=[2, 4], ids=lambda n: f"np{n}")
def results(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"stats_np{request.param}") / "result.json"
    launch("stats_reference.py", request.param, "gloo", [str(out)])
    return request.param, json.loads(out.read_text()), Path(str(out) + ".stats.json")


@pytest.mark.parametrize("key", ["g2", "trace", "noise"])
def test_least_squares_within_25_percent(results, key):
    r = results[1]["least_squares"]
    value = r["noise_scale"] if key == "noise" else r[key]
    truth = r[f"{key}_true"]
    assert r["steps"] == 400
    assert abs(value / truth - 1) < 0.25, f"{key}: {value:.4g} against {truth:.4g}"
    # the median over the latest quarter of the steps, within the same 25% of the truth
    assert abs(r["critical_batch"] / r["noise_true"] - 1) < 0.25


@pytest.mark.parametrize("mode, steps, before_flush", [
    ("sync", list(range(9)), 9), ("delayed", list(range(9)), 7), ("every", [0, 3, 6], 3)])
def test_formulas_match_in_process_computation(results, mode, steps, before_flush):
    n, res, _ = results
    r = res[f"formulas_{mode}"]
    assert r["bucket_count"] >= 3, "the case must spread gradients over several buckets"
    assert r["steps"] == steps, "one entry per observed step, in order"
    assert r["seen_before_flush"] == before_flush
    assert r["worst"] < 1e-4, f"largest relative difference {r['worst']:.3g}"
    for key in ("noise_scale", "trace", "local"):
        assert math.isclose(r[key], r[f"{key}_ref"], rel_tol=1e-4), key


def test_refusals_on_every_rank(results):
    e = results[1]["errors"]
    assert "gradient-averaging mode" in e["leader"]
    assert "op=Average" in e["sum"]
    assert "Compression.none" in e["fp16"]
    assert "stats must be a horovod_ext.GradientStats" in e["not_stats"]
    assert e["reused"][0] is None and "already attached" in e["reused"][1]
    assert results[1]["errors_same_on_every_rank"]


def test_one_rank_is_refused():
    proc = launch("stats_reference.py", 1, "gloo", ["single"])
    assert "needs >= 2 ranks" in proc.stdout


@pytest.mark.parametrize("kwargs, needle", [
    (dict(batch_size=0), "GradientStats.batch_size"), (dict(batch_size=2.0), "batch_size"),
    (dict(batch_size=True), "batch_size"), (dict(batch_size=4, ema=1.0), "GradientStats.ema"),
    (dict(batch_size=4, ema=-0.1), "GradientStats.ema"),
    (dict(batch_size=4, every=0), "GradientStats.every"),
    (dict(batch_size=4, history=0), "GradientStats.history")])
def test_bad_fields_raise(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        hvd_ext.GradientStats(**kwargs)


def test_history_keeps_the_latest_steps_and_every_step_counts():
    stats = hvd_ext.GradientStats(batch_size=4, ema=0.5, history=3)
    stats.attach(2)
    for t in range(5):
        stats.observe(t, 2.0 + t, 1.0)
    assert [h["step"] for h in stats.history] == [2, 3, 4] and stats.steps == 5
    unbounded = hvd_ext.GradientStats(batch_size=4, ema=0.5)
    unbounded.attach(2)
    for t in range(5):
        unbounded.observe(t, 2.0 + t, 1.0)
    assert stats.noise_scale == unbounded.noise_scale  # the averages cover dropped steps too
    again = hvd_ext.GradientStats(batch_size=4, ema=0.5, history=3)
    again.load_state_dict(stats.state_dict())
    assert again.steps == 5 and again.history == stats.history


def test_advise_cli_follows_its_formulas(results, tmp_path):
    n, _, saved = results
    d = json.loads(saved.read_text())
    assert d["ranks"] == n and d["batch_size"] == 16 and len(d["history"]) == 400
    png = tmp_path / "advice.png"
    proc = subprocess.run([sys.executable, "-m", "horovod_ext.advise", str(saved), "--window", "50",
                           "--png", str(png)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    noise, b = d["noise_scale"], d["batch_size"]
    assert f"B_noise = {noise:.4g} samples" in out
    recent = [h["noise_scale"] for h in d["history"][-50:]]
    assert f"median {sorted(recent)[24] / 2 + sorted(recent)[25] / 2:.4g}" in out
    rows = {int(line.split()[0]): [float(v) for v in line.split()[1:]] for line in out.splitlines()
            if line.startswith("  ") and line.split()[0].isdigit()}
    assert sorted(rows) == [1, 2, 4, 8, 16, 32, 64]
    for m, (global_batch, speed, eff) in rows.items():
        predicted = (1 + noise / b) / (1 + noise / (m * b))
        assert global_batch == m * b and abs(speed - predicted) < 0.006, m
        assert abs(eff - predicted / m) < 0.006, m
    assert rows[64][1] < (1 + noise / b), "the speed-up saturates below 1 + B_noise/b"
    for formula in ("(1 + B_noise/b) / (1 + B_noise/(N b))", "1/(1 + M/B)", "1/(M + k)"):
        assert formula in out
    m = noise / (n * b)
    k4 = float(out.split("k=4: x")[1].split()[0])
    assert abs(k4 - m / (m + 4)) < 0.006 * k4, (k4, m)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_advise_refuses_an_undefined_noise_scale(tmp_path):
    from horovod_ext.advise import report
    with pytest.raises(ValueError, match="no finite positive noise scale"):
        report({"noise_scale": None, "history": [], "batch_size": 4, "ranks": 2})


def test_critical_batch_is_the_median_of_the_latest_quarter():
    from horovod_ext.stats import recent_noise_scale
    history = [{"noise_scale": float(v)} for v in range(1, 13)]  # latest quarter: 10, 11, 12
    assert recent_noise_scale(history) == 11.0
    history[-1]["noise_scale"] = None  # noise dominates at the last step: inf, still the median
    assert recent_noise_scale(history) == 11.0
    assert recent_noise_scale(history[:1]) == 1.0
    assert math.isnan(recent_noise_scale([]))
    stats = hvd_ext.GradientStats(batch_size=4, ema=0.0)
    stats.attach(2)
    for step, (local, global_) in enumerate([(3.0, 2.5), (5.0, 4.5), (4.0, 3.6), (6.0, 5.0)]):
        stats.observe(step, local, global_)
    assert stats.critical_batch == stats.history[-1]["noise_scale"], "a quarter of 4 steps: 1"
