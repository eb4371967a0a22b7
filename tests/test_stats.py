"""Gradient statistics: the estimator recovers known |G|^2, tr(S) and B_noise on least squares
(2 and 4 ranks), every step's norms and unbiased estimates equal an in-process float64
computation (sync and delayed), refusals happen on every rank, and the advisor's numbers follow
its formulas."""
import json
import math
import subprocess
import sys

import pytest

import horovod_ext as hvd_ext
from conftest import BIN, ROOT, launch, launch_json


@pytest.fixture(scope="module", params=[2, 4], ids=lambda n: f"np{n}")
def results(request, tmp_path_factory):
    return request.param, launch_json("stats_reference.py", request.param, "gloo",
                                      tmp_path_factory)


@pytest.mark.parametrize("key", ["g2", "trace", "noise"])
def test_least_squares_within_25_percent(results, key):
    r = results[1]["least_squares"]
    value = r["noise_scale"] if key == "noise" else r[key]
    truth = r[f"{key}_true"]
    assert r["steps"] == 400
    assert abs(value / truth - 1) < 0.25, f"{key}: {value:.4g} against {truth:.4g}"
    assert r["critical_batch"] == r["noise_scale"]


@pytest.mark.parametrize("mode", ["sync", "delayed"])
def test_formulas_match_in_process_computation(results, mode):
    n, res = results
    r = res[f"formulas_{mode}"]
    assert r["bucket_count"] >= 3, "the case must spread gradients over several buckets"
    assert r["steps"] == list(range(9)), "one entry per step, in order"
    assert r["seen_before_flush"] == (9 if mode == "sync" else 7)
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
    (dict(batch_size=4, ema=-0.1), "GradientStats.ema")])
def test_bad_fields_raise(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        hvd_ext.GradientStats(**kwargs)
