"""The emulated-cluster launcher: a real run on a rate-limited namespace writes the documented
JSON and leaves no namespace behind; without the tools it refuses clearly."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

RUN = [sys.executable, str(ROOT / "benchmarks" / "run.py")]


def namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.skipif(os.geteuid() != 0, reason="shaping needs root")
def test_shaped_run_writes_the_schema_and_removes_its_namespace(tmp_path):
    before = namespaces()
    out = tmp_path / "out.json"
    proc = subprocess.run(RUN + ["--np", "2", "--rate", "1gbit", "--modes", "horovod,sync,delayed",
                                 "--steps", "2", "--rounds", "1", "--warmup", "1",
                                 "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loopback limited to 1gbit" in proc.stdout
    assert namespaces() == before
    d = json.loads(out.read_text())
    assert set(d) >= {"config", "bound_ms", "compute_ms", "allreduce_ms", "results"}
    assert [r["mode"] for r in d["results"]] == ["horovod", "sync", "delayed"]
    for r in d["results"]:
        assert set(r) >= {"mode", "step_ms", "samples_per_sec", "vs_horovod", "efficiency",
                          "bytes_per_step"}
        assert r["step_ms"] > 0 and isinstance(r["bytes_per_step"], int)
    # At 1 Gbit/s one allreduce of the 21.5 MB of gradients takes well over 100 ms.
    assert d["allreduce_ms"] > 100
    assert d["bound_ms"] == max(d["compute_ms"], d["allreduce_ms"])
    assert (tmp_path / "out.png").stat().st_size > 0


def test_refuses_clearly_without_iproute2(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no ip, no tc
    proc = subprocess.run(RUN + ["--rate", "1gbit", "--json", str(tmp_path / "x.json")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0
    assert ("needs iproute2" in proc.stderr) or ("needs root" in proc.stderr)
    assert "--allow-unshaped" in proc.stderr
