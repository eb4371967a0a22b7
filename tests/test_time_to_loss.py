"""Time to a target loss (benchmarks/time_to_loss.py, ttl_report.py): on random curves and step
times, each method's time is its steps to the target times its step time, the best peer is the
fastest peer, a loss at the budget is read where the budget ends; and a real 2-rank run trains,
times (unshaped), checks one method end to end and writes the documented JSON."""
import json
import random
import statistics
import subprocess
import sys
from argparse import Namespace

import pytest

from benchmarks import ttl_report

METHODS = {"sync": ("sync", "sync", False), "ddp": ("sync", "ddp", True),
           "horovod": ("sync", "horovod", True), "diloco-H8": ("diloco", "diloco-H8", False),
           "late": ("late", "late", False)}


def curve(rng, steps, every, start, end):
    """A noisy falling validation curve: (step, val, bytes, seconds)."""
    pts, val = [], start
    for k, step in enumerate(range(every, steps + 1, every)):
        val = max(end, val - rng.uniform(0, 2 * (start - end) * every / steps))
        pts.append((step, val, 1000.0 * step, 0.01 * step))
    return pts


def inputs(rng):
    steps, every = 256, 16
    def runs(end):
        curves = [curve(rng, steps, every, 4.0, end) for _ in (0, 1)]
        return [dict(seed=s, curve=c, bytes=c[-1][2]) for s, c in enumerate(curves)]
    trained = {"methods": {"sync": dict(lr=0.003, runs=runs(1.5)),
                           "diloco": dict(lr=0.01, runs=runs(1.4)),
                           "late": dict(lr=0.001, runs=[dict(seed=s, bytes=None, curve=[
                               (st, 5.0, None, 0.0) for st in range(every, steps + 1, every)])
                               for s in (0, 1)])}}
    timed = {"results": [dict(mode=m, step_ms=rng.uniform(5, 500), bytes_per_step=None,
                              round_ms=[rng.uniform(5, 500) for _ in range(3)])
                         for m in ("sync", "ddp", "horovod", "diloco-H8", "late")],
             "compute_ms": rng.uniform(2, 10),
             "compute_round_ms": [rng.uniform(2, 10) for _ in range(3)],
             "config": {"provenance": dict(commit="0123456789abcdef", date="2026-12-06T00:00:00",
                                           torch="2.13.0", horovod="0.28.1", cores=2)}}
    args = Namespace(target_step=128, np=2, rate="100mbit")
    return args, trained, timed


@pytest.mark.parametrize("seed", range(10))
def test_time_is_steps_to_target_times_step_time(seed):
    rng = random.Random(seed)
    args, trained, timed = inputs(rng)
    out = ttl_report.combine(args, METHODS, trained, timed, checks={})
    target = sum(next(p[1] for p in r["curve"] if p[0] == 128)
                 for r in trained["methods"]["sync"]["runs"]) / 2
    assert out["target"]["loss"] == pytest.approx(target)
    step_ms = {r["mode"]: r["step_ms"] for r in timed["results"]}
    for name, row in out["methods"].items():
        runs = trained["methods"][METHODS[name][0]]["runs"]
        for r, s in zip(runs, row["runs"]):
            first = next((p for p in r["curve"] if p[1] <= target), None)
            assert s["steps_to_target"] == (None if first is None else first[0])
            if first is not None:
                assert s["time_to_target_s"] == pytest.approx(first[0] * step_ms[name] / 1e3)
                assert s["bytes_to_target"] == first[2]
    assert out["methods"]["late"]["time_to_target_s"] is None  # never reaches the target
    assert out["methods"]["late"]["vs_best_peer"] is None
    # Exact methods share sync's curve: the fastest of the peers is the one with the least step.
    assert out["best_peer"] == min(("ddp", "horovod"), key=step_ms.get)
    best = out["methods"][out["best_peer"]]
    assert out["budget_s"] == best["time_to_target_s"]
    lo, hi = best["vs_best_peer_ci95"]
    assert best["vs_best_peer"] == pytest.approx(1.0) and lo <= 1.0 <= hi
    sync_curve = trained["methods"]["sync"]["runs"][0]["curve"]
    at = out["budget_s"] * 1e3 / step_ms["sync"]
    assert out["methods"]["sync"]["loss_at_budget"] == \
        [p[1] for p in sync_curve if p[0] <= at][-1]
    assert "not reached" in ttl_report.table(out)


@pytest.mark.parametrize("seed", range(5))
def test_the_limit_is_syncs_steps_times_the_compute_only_step(seed):
    rng = random.Random(seed)
    args, trained, timed = inputs(rng)
    out = ttl_report.combine(args, METHODS, trained, timed, checks={})
    target = out["target"]["loss"]
    steps = [next(p[0] for p in r["curve"] if p[1] <= target)
             for r in trained["methods"]["sync"]["runs"]]
    limit = out["limit"]
    assert limit["steps"] == steps
    assert limit["time_to_target_s"] == pytest.approx(
        sum(steps) / len(steps) * timed["compute_ms"] / 1e3)
    lo, hi = limit["ci95"]
    samples = [s * ms / 1e3 for s in steps for ms in timed["compute_round_ms"]]
    assert min(samples) <= lo <= hi <= max(samples)
    for name, row in out["methods"].items():
        if row["time_to_target_s"] is None:
            assert row["vs_limit"] is None
            continue
        mine = [s["steps_to_target"] * ms / 1e3 for s in row["runs"] for ms in row["round_ms"]]
        assert row["vs_limit"] == pytest.approx(statistics.median(mine)
                                                / statistics.median(samples))
    text = ttl_report.table(out)
    assert "| no communication (limit) |" in text and "commit 0123456789ab, 2026-12-06" in text
    assert "train: not recorded" in text  # the random curves carry no provenance
    # sync never reaching the target: no limit, no multiples
    trained["methods"]["sync"]["runs"][1]["curve"] = [(p[0], 9.0) + tuple(p[2:]) for p in
                                                     trained["methods"]["sync"]["runs"][1]["curve"]]
    assert ttl_report.no_communication(trained, timed, -1.0) is None


def test_bad_arguments_are_refused_by_name():
    run = [sys.executable, "-m", "benchmarks.time_to_loss", "--rate", "none"]
    for extra, name in ((["--methods", "sync,nope"], "unknown method"),
                        (["--methods", "ddp"], "must include sync"),
                        (["--target-step", "100"], "--target-step"),
                        (["--check", "horovod"], "--check"),
                        (["--delay-ms", "20"], "--delay-ms")):
        proc = subprocess.run(run + extra, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and name in proc.stderr, proc.stderr


def test_a_real_run_writes_times_to_target_and_the_check(tmp_path):
    out = tmp_path / "ttl.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.time_to_loss", "--np", "2", "--rate",
         "none", "--methods", "sync,ddp,diloco-H8", "--steps", "64", "--target-step", "32",
         "--eval-every", "16", "--lrs", "0.003", "--seeds", "0", "--rounds", "2",
         "--check", "diloco-H8", "--json", str(out)], capture_output=True, text=True,
        timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert (tmp_path / "ttl.png").exists() and "| sync |" in proc.stdout
    sync, ddp = d["methods"]["sync"], d["methods"]["ddp"]
    assert sync["runs"][0]["steps_to_target"] == 32  # the target is sync's loss at step 32
    assert ddp["trained_as"] == "sync" and ddp["runs"][0]["steps_to_target"] == 32
    assert sync["time_to_target_s"] == pytest.approx(32 * sync["step_ms"] / 1e3)
    assert d["best_peer"] == "ddp"
    c = d["checks"]["diloco-H8"]
    if c["reached"]:
        assert c["measured_s"] > 0 and c["measured_over_predicted"] == pytest.approx(
            c["measured_s"] / c["predicted_s"])


def test_which_method_names_the_fastest_of_ours_against_the_best_peer():
    rng = random.Random(7)
    outs = []
    for rate in ("25mbit", "10gbit"):
        args, trained, timed = inputs(rng)
        args.rate = rate
        outs.append(ttl_report.combine(args, METHODS, trained, timed, checks={}))
    rows = ttl_report.which_method(outs).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| 10gbit", "| 25mbit"]  # fastest link first
    for out, row in zip(reversed(outs), rows):
        ours = {n: r["time_to_target_s"] for n, r in out["methods"].items()
                if not r["peer"] and r["time_to_target_s"] is not None}
        best = min(ours, key=ours.get)
        assert f"| {best}, " in row and f"| {out['best_peer']} (" in row
        assert f"{out['methods'][best]['vs_best_peer']:.2f}x" in row
        assert f"| {out['limit']['time_to_target_s']:.1f} s |" in row
        assert {"horovod": "(Horovod)", "ddp": "(PyTorch DDP)"}[out["best_peer"]] in row


def test_advice_names_the_fastest_two_of_ours_and_the_json():
    rng = random.Random(11)
    args, trained, timed = inputs(rng)
    out = ttl_report.combine(args, METHODS, trained, timed, checks={})
    (row,) = ttl_report.advice([out], ["x/100mbit.json"]).splitlines()[2:]
    ours = sorted((n for n, r in out["methods"].items()
                   if not r["peer"] and r["time_to_target_s"] is not None),
                  key=lambda n: out["methods"][n]["time_to_target_s"])
    assert row.startswith(f"| 100mbit | {ours[0]} (") and f"| {ours[1]} (" in row
    assert row.endswith("| `x/100mbit.json` |")
