"""The emulated-cluster launcher: a real run on a rate-limited namespace writes the documented
JSON and leaves no namespace behind; without the tools it refuses clearly."""
import json
import os
import subprocess
import sys

import pytest

from conftest import BIN, ROOT

RUN = [sys.executable, "-m", "benchmarks.run"]


def namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def shaped_run(tmp_path, modes, *extra):
    """A 2-rank, 1 Gbit/s run of the launcher (2 steps, 1 round); asserts it succeeded and left
    no namespace. Returns (stdout, the JSON it wrote)."""
    before = namespaces()
    out = tmp_path / "out.json"
    proc = subprocess.run(RUN + ["--np", "2", "--rate", "1gbit", "--modes", modes, "--steps", "2",
                                 "--rounds", "1", "--warmup", "1", *extra, "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert namespaces() == before
    return proc.stdout, json.loads(out.read_text())


@pytest.mark.skipif(os.geteuid() != 0, reason="shaping needs root")
def test_shaped_run_writes_the_schema_and_removes_its_namespace(tmp_path):
    stdout, d = shaped_run(tmp_path, "horovod,horovod-tuned,ddp,sync,delayed", "--trace",
                           "--rounds", "2")
    assert "loopback limited to 1gbit" in stdout
    assert set(d) >= {"config", "bound_ms", "compute_ms", "allreduce_ms", "sync_bound_ms",
                      "best_peer", "horovod_tuned", "results"}
    modes = [r["mode"] for r in d["results"]]
    assert modes == ["horovod", "horovod-tuned", "ddp", "sync", "delayed"]
    step = {r["mode"]: r["step_ms"] for r in d["results"]}
    assert d["best_peer"] == min(("horovod", "horovod-tuned", "ddp"), key=step.get)
    tuned = d["horovod_tuned"]
    assert len(tuned["grid_ms"]) == 9 and f"{tuned['fusion_mb']}MB/{tuned['cycle_ms']}ms" in \
        tuned["grid_ms"]
    assert tuned["grid_ms"][f"{tuned['fusion_mb']}MB/{tuned['cycle_ms']}ms"] == \
        min(tuned["grid_ms"].values())
    for r in d["results"]:
        assert set(r) >= {"mode", "step_ms", "samples_per_sec", "vs_horovod", "efficiency",
                          "bytes_per_step", "vs_best_peer", "vs_best_peer_ci95", "vs_horovod_ci95",
                          "sync_efficiency", "round_ms"}
        assert r["step_ms"] > 0 and isinstance(r["bytes_per_step"], int)
        assert len(r["round_ms"]) == 2
        for key in ("vs_horovod", "vs_best_peer"):
            lo, hi = r[key + "_ci95"]
            assert lo <= r[key] <= hi
        assert r["vs_best_peer"] == pytest.approx(step[d["best_peer"]] / r["step_ms"])
    # At 1 Gbit/s one allreduce of the 21.5 MB of gradients takes well over 100 ms.
    assert d["allreduce_ms"] > 100
    # The bounds come from the fastest rounds, which no median is below.
    assert d["bound_ms"] == max(d["compute_fastest_ms"], d["allreduce_fastest_ms"])
    assert d["compute_fastest_ms"] <= d["compute_ms"]
    assert d["allreduce_fastest_ms"] <= d["allreduce_ms"]
    assert d["sync_bound_ms"] >= d["bound_ms"]
    # Our modes' warm-up covered their tuners, whose cost is stored.
    for mode in ("sync", "delayed"):
        t = d["tuning"][mode]
        assert t["done"] and t["steps"] <= t["budget"] <= t["warmup_steps"]
        assert t["warmup_seconds"] >= t["seconds"] > 0
    assert d["forward_ms"] > 0 and d["backward_ms"] > 0
    assert (tmp_path / "out.png").stat().st_size > 0
    # --trace: Horovod's timeline of each optimizer, read back. Every step of horovod and sync
    # moves the whole gradient, which takes longer than backward at this rate, so the wire is
    # busy for most of one allreduce's time and part of it is exposed after backward. DDP's
    # collectives are not Horovod's: its timeline is empty, its trace has the step marks only.
    for r in d["results"]:
        t = r["trace"]
        assert t["compute_ms"] > 0 and 0 <= t["wire_after_backward_ms"] <= t["wire_ms"]
        if r["mode"] == "ddp":
            assert t["wire_ms"] == 0
            continue
        assert (tmp_path / f"out.timeline.{r['mode']}.json").stat().st_size > 0
        if r["mode"] != "delayed":
            assert t["wire_ms"] > 0.5 * d["allreduce_ms"]
            assert t["wire_after_backward_ms"] > 0.2 * d["allreduce_ms"]
    assert (tmp_path / "out.timeline.png").stat().st_size > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="shaping needs root")
def test_switched_network_gives_each_host_its_own_link(tmp_path):
    """Two hosts on a switch, 1 Gbit/s each way: a ring allreduce of 2 ranks sends every byte of
    the 21.5 MB gradient once per host, about 172 ms; on the shared loopback of the test above
    both hosts' bytes cross one link (about 344 ms), and unshaped it takes about 30 ms."""
    stdout, d = shaped_run(tmp_path, "horovod,sync", "--switched")
    assert "switched network: 2 hosts" in stdout
    assert d["config"]["np"] == 2 and [r["mode"] for r in d["results"]] == ["horovod", "sync"]
    assert 120 < d["allreduce_ms"] < 280, d["allreduce_ms"]


def test_refuses_clearly_without_iproute2(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no ip, no tc
    proc = subprocess.run(RUN + ["--rate", "1gbit", "--json", str(tmp_path / "x.json")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0
    assert ("needs iproute2" in proc.stderr) or ("needs root" in proc.stderr)
    assert "--allow-unshaped" in proc.stderr


def test_soak_finds_no_growth(tmp_path):
    """A short soak of every mode: nothing the optimizers hold grows (handles, buffers, file
    descriptors, Python objects beyond the samples themselves) and RSS stays flat."""
    out = tmp_path / "soak.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(BIN / "horovodrun"), "--gloo", "-np", "2", sys.executable, "-m",
                           "benchmarks.soak", "--steps", "300", "--warmup",
                           "200", "--every", "150", "--json", str(out)], capture_output=True,
                          text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert set(d["results"]) >= {"sync", "delayed", "leader", "easgd", "localsgd", "sync+stats"}
    for mode, r in d["results"].items():
        assert r["handles_growth"] == r["buffer_bytes_growth"] == 0, mode
        # No new descriptors; the process may close one it had, which is no leak.
        assert r["fds_growth"] <= 0, f"{mode}: {r['fds_growth']} descriptors more"
        assert r["samples"][-1]["handles"] == 0, f"{mode}: handles left after flush()"
        if mode != "horovod":
            # one tracked object per sample taken (its dict), nothing else
            assert r["objects_growth"] <= len(r["samples"]) - 1, f"{mode}: {r['objects_growth']}"
        assert r["rss_growth"] < 0.05, f"{mode}: RSS grew {r['rss_growth']:.1%}"
    assert (tmp_path / "soak.png").stat().st_size > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="shaping needs root")
def test_horovod_autotune_runs_in_its_own_job_and_is_merged(tmp_path):
    """horovod-autotune: a second job under HOROVOD_AUTOTUNE=1, merged into the first's JSON
    with unpaired ratios and what Horovod's autotuner logged."""
    _, d = shaped_run(tmp_path, "horovod,sync,horovod-autotune", "--model", "mlp",
                      "--rounds", "2")
    modes = [r["mode"] for r in d["results"]]
    assert modes == ["horovod", "sync", "horovod-autotune"]
    a = d["results"][-1]
    assert a["own_job"] and len(a["round_ms"]) == 2
    best = next(r for r in d["results"] if r["mode"] == d["best_peer"])
    assert d["best_peer"] == "horovod"  # the autotuned job does not take part in choosing it
    assert a["vs_best_peer"] == pytest.approx(best["step_ms"] / a["step_ms"])
    lo, hi = a["vs_best_peer_ci95"]
    assert lo <= a["vs_best_peer"] <= hi
    t = d["tuning"]["horovod-autotune"]
    assert t["environment"]["HOROVOD_AUTOTUNE"] == "1"
    assert t["settings_scored"] >= 1 and {"cycle_time_ms", "tensor_fusion_threshold"} <= \
        set(t["last_logged"])
