"""The advisor's recommendation: the probe on a real 2-rank job, the step-time model's formulas,
the steps model, the CLI, and the measured steps factors against the stored grid."""
import json
import math
import subprocess
import sys

import pytest

from conftest import ROOT, launch
from horovod_ext.advisor import recommend
from horovod_ext.advisor.recommend import CANDIDATES, recommendation, step_ms
from horovod_ext.advisor.timed_rounds import periodic_candidates


def trace(**over):
    t = {"ranks": 2, "batch_size": 32,
         "compute_ms": {"forward_backward": 8.0, "optimizer_step": 2.0, "pack_unpack": 1.0,
                        "local_step": 10.0},
         "exposed_ms": {"fp32": 30.0, "fp16": 20.0, "int8": 10.0, "powersgd": 3.0},
         "wire_ms": {"fp32": 40.0}, "overlapped_ms": {"fp32": 35.0, "fp16": 25.0},
         "codec_ms": {"fp32": 0.0, "fp16": 1.0, "int8": 3.0, "powersgd": 5.0},
         "buckets": [{"bytes": 300, "ready_ms": -6.0}, {"bytes": 100, "ready_ms": 0.0}],
         "stats": None}
    t.update(over)
    return t


def test_step_time_per_kind_of_exchange():
    t = trace()
    # sync with a codec: compute + codec + copies + the wire left after backward
    assert step_ms(t, "sync") == pytest.approx(8 + 2 + 0 + 1 + 30)
    assert step_ms(t, "sync-fp16") == pytest.approx(8 + 2 + 1 + 1 + 20)
    assert step_ms(t, "int8") == pytest.approx(8 + 2 + 3 + 1 + 10)
    assert step_ms(t, "powersgd") == pytest.approx(8 + 2 + 5 + 1 + 3)
    # delayed: forward + backward with the exchange behind it, then the step, codec, copies
    assert step_ms(t, "delayed") == pytest.approx(35 + 2 + 0 + 1)
    assert step_ms(t, "delayed-fp16") == pytest.approx(25 + 2 + 1 + 1)
    # periodic: the whole allreduce (and its copies) once per period
    assert step_ms(t, "diloco-H8") == pytest.approx(10 + 41 / 8)
    assert step_ms(trace(compute_ms=dict(t["compute_ms"], local_step=12.0)), "diloco-H8") == \
        pytest.approx(12 + 41 / 8), "a local step measured back to back"
    assert step_ms(t, "localsgd-H32") == pytest.approx(10 + 41 / 32)
    # overlapped rounds: what is left of each fragment's exchange after the overlapped steps
    assert step_ms(t, "diloco-H8-t3") == pytest.approx(10 + (41 - 30) / 8)
    assert step_ms(t, "diloco-H32-f2-t1") == pytest.approx(10 + 2 * (41 / 2 - 10) / 32)
    assert step_ms(t, "diloco-H32-f4-t5") == pytest.approx(10), "hidden: the local step alone"
    # a codec's rounds: its wire and its arithmetic, which no overlap hides
    q = trace(wire_ms={"fp32": 40.0, "int4": 12.0}, round_codec_ms={"int4": 2.0})
    assert step_ms(q, "diloco-H32+int4") == pytest.approx(10 + (2 + 13) / 32)
    assert step_ms(q, "diloco-H32-f2-t1+int4") == pytest.approx(10 + (2 + 2 * 0) / 32)
    assert math.isnan(step_ms(t, "diloco-H32+int4")), "a trace without 4-bit rounds"
    # a candidate the probe timed with its own rounds: its time; the others: the formula
    timed = trace(periodic_ms={"localsgd-H32": 7.5})
    assert step_ms(timed, "localsgd-H32") == 7.5
    assert step_ms(timed, "diloco-H8") == pytest.approx(10 + 41 / 8)
    assert "diloco-H32+int4" not in recommendation(t, extra=["diloco-H32+int4"])["best"]


def test_steps_model_and_choice():
    measured = {"factors": {"sync-fp16": 1.0, "powersgd": 1.1, "int8": 1.0, "diloco-H8": 1.1,
                            "diloco-H32": 1.3,
                            "localsgd-H32": 1.1, "delayed": 1.4, "delayed-fp16": 1.4}}
    history = [{"noise_scale": v} for v in (10.0, 20.0, 30.0, 40.0, 310.0, 320.0, 330.0, 9e9)]
    stats = {"ranks": 2, "batch_size": 32, "history": history}  # median of the last quarter
    rec = recommendation(trace(), stats, measured)
    rows = rec["rows"]
    assert rec["critical_batch"] == pytest.approx((330 + 9e9) / 2)
    history[-1]["noise_scale"] = 310.0
    rec = recommendation(trace(), stats, measured)
    rows = rec["rows"]
    assert rec["critical_batch"] == pytest.approx(320), "B_crit 320 at global batch 64: M = 5"
    assert rows["delayed"]["steps_factor"] == pytest.approx(1 + 1 / 5), "1 + k/M"
    assert rows["sync"]["steps_factor"] == 1 and rows["sync"]["steps_basis"] == "exact"
    assert rows["sync-fp16"]["steps_basis"] == "measured on the text task"
    assert rows["powersgd"]["steps_factor"] == 1.1
    for name, r in rows.items():
        assert r["time_vs_sync"] == pytest.approx(r["steps_factor"] * r["step_ms"] / 41,
                                                  nan_ok=True), name
        assert math.isfinite(r["time_vs_sync"]) == (name in measured["factors"] or name == "sync")
    assert rec["best"] == min(rows, key=lambda n: rows[n]["time_vs_sync"]) == "localsgd-H32"
    assert "localsgd-H32" in rec["reason"] and "LocalSGD(period=32)" in recommend.report(rec)
    assert "measured on the text task, not on this model" in recommend.report(rec)
    assert "or keep Sync(), exact" in recommend.report(rec)
    # without statistics the delayed factor is the measured one
    assert recommendation(trace(), None, measured)["rows"]["delayed"]["steps_factor"] == 1.4
    # a fast link: nothing beats sync by more than its extra steps
    fast = trace(wire_ms={"fp32": 0.5}, exposed_ms={"fp32": 0.1, "fp16": 0.1, "int8": 0.1,
                                                    "powersgd": 0.1},
                 overlapped_ms={"fp32": 8.5, "fp16": 8.5},
                 compute_ms={"forward_backward": 8.0, "optimizer_step": 2.0, "pack_unpack": 0.2,
                             "local_step": 10.0})
    assert recommendation(fast, None, measured)["best"] == "sync"
    # a method that changes the math and is predicted 3% sooner loses to exact sync
    near = dict(measured, factors=dict(measured["factors"], **{n: 10.0 for n in CANDIDATES
                                                               if n not in ("sync", "int8")}))
    slow_fp16 = trace(exposed_ms=dict(trace()["exposed_ms"], fp16=100.0))
    for factor, chosen in ((1.0, "sync"), (0.9, "int8")):
        near["factors"]["int8"] = factor * 0.97 * 41 / step_ms(slow_fp16, "int8")
        rec = recommendation(slow_fp16, None, near)
        assert rec["best"] == chosen, (factor, rec["rows"]["int8"]["time_vs_sync"])
    assert "exact" in rec["reason"] or chosen == "int8"


def test_measured_factors_are_the_stored_grid():
    stored = json.loads((ROOT / "docs/results/time_to_loss/1gbit.json").read_text())
    steps = {n: sum(r["steps_to_target"] for r in m["runs"]) / len(m["runs"])
             for n, m in stored["methods"].items()
             if all(r["steps_to_target"] is not None for r in m["runs"])}  # reached the target
    shipped = recommend.measured_factors()
    assert set(shipped["factors"]) == set(CANDIDATES) - {recommend.EXACT}
    for name, factor in shipped["factors"].items():
        assert factor == pytest.approx(steps[name] / steps["sync"], rel=1e-3), name


def test_cli_recommends_from_a_trace(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace()))
    proc = subprocess.run([sys.executable, "-m", "horovod_ext.advise", "--trace", str(path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rec = recommendation(trace())
    assert f"recommended: {recommend.HOW[rec['best']]}" in proc.stdout
    for name in CANDIDATES:
        assert f"{name} " in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "horovod_ext.advise", "--trace",
                          str(tmp_path / "none.json")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--trace: cannot read" in bad.stderr


@pytest.fixture(scope="module", params=[(2, "gloo"), (3, "mpi")], ids=["gloo-2", "mpi-3"])
def probed(request, tmp_path_factory):
    np_, backend = request.param
    prefix = tmp_path_factory.mktemp("probe") / "trace"
    launch("probe_run.py", np_, backend, [str(prefix)])
    return [json.loads(open(f"{prefix}.{r}.json").read()) for r in range(np_)]


def test_probe_on_two_and_three_ranks(probed):
    a, b = probed[0], probed[-1]
    assert a["ranks"] == len(probed)
    for key in ("compute_ms", "exposed_ms", "wire_ms", "overlapped_ms", "codec_ms", "buckets"):
        assert a[key] == b[key], f"{key}: the ranks agree on every number"
    assert a["restored"] and b["restored"], "the model's parameters are restored"
    assert a["optimizer_state"] == 0, "the optimizer's state is restored (none before)"
    assert sum(x["bytes"] for x in a["buckets"]) == a["params_bytes"]
    assert all(x["ready_ms"] <= 0 for x in a["buckets"]), "ready before backward ends"
    assert all(v > 0 for v in a["compute_ms"].values())
    assert all(a["exposed_ms"][f] >= 0 for f in ("fp32", "fp16", "int8", "powersgd"))
    rounds = recommend.round_codecs()
    assert {"fp32", "int4"} <= set(rounds) and any(f.startswith("topk") for f in rounds)
    assert set(a["wire_ms"]) == set(a["round_codec_ms"]) == set(rounds), "every round format"
    assert all(v > 0 for v in a["wire_ms"].values())
    assert a["round_codec_ms"]["int4"] > a["round_codec_ms"]["fp32"], "4-bit has arithmetic"
    assert a["periodic_ms"] == b["periodic_ms"], "the slowest rank's, on both"
    assert list(a["periodic_ms"]) == periodic_candidates() and len(a["periodic_ms"]) >= 10
    for name, ms in a["periodic_ms"].items():
        assert ms >= 0.5 * a["compute_ms"]["forward_backward"], name
        assert step_ms(a, name) == ms, name
    # rounds=False: nothing timed, every periodic candidate from the formula
    assert a["untimed_periodic"] == {} and set(a["untimed_wire"]) == set(rounds)
    untimed = dict(a, periodic_ms={}, wire_ms=a["untimed_wire"])
    assert all(math.isfinite(step_ms(untimed, n)) and step_ms(untimed, n) != a["periodic_ms"][n]
               for n in a["periodic_ms"])
    # the exchange behind a forward and backward takes at least the forward and backward
    assert all(a["overlapped_ms"][f] >= 0.9 * a["compute_ms"]["forward_backward"]
               for f in ("fp32", "fp16"))
    assert a["steps"] == 5 and len(a["stats"]["history"]) == 5
    assert all(math.isfinite(h["g2"]) for h in a["stats"]["history"])
    assert any("batch_size" in e for e in a["errors"].values())
    assert any("steps" in e for e in a["errors"].values()) and len(a["errors"]) == 4
    assert any("probe.rounds must be True or False" in e for e in a["errors"].values())
    assert any("probe.closure must be callable" in e for e in a["errors"].values())
    assert recommendation(a)["best"] in CANDIDATES


def test_optimizer_kwargs_build_what_the_report_names():
    import horovod_ext as hvd_ext
    for name in CANDIDATES:
        kwargs = recommend.optimizer_kwargs(name)
        how = recommend.HOW[name]
        assert how.startswith(type(kwargs["mode"]).__name__ + "("), name
        period = getattr(kwargs["mode"], "period", None)
        assert period is None or f"period={period}" in how, name
        if "compression" in kwargs:
            c = kwargs["compression"]
            assert (c is hvd_ext.Compression.fp16) == ("Compression.fp16" in how), name
            assert isinstance(c, (hvd_ext.PowerSGD, hvd_ext.Quantize, hvd_ext.TopK)) or \
                c is hvd_ext.Compression.fp16, name
            assert c is hvd_ext.Compression.fp16 or f"{type(c).__name__}(" in how, name
        else:
            assert "compression" not in how, name
    with pytest.raises(ValueError, match="unknown candidate 'sgd'"):
        recommend.optimizer_kwargs("sgd")
