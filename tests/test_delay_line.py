"""The delay line (benchmarks/delay_line.py) on a switched network of two hosts: the round trip
is twice the one-way delay, the rate is still the limit, a 2-rank Horovod job runs across it,
and the namespaces, devices and the delay line's process are gone afterwards, also when what ran
inside failed."""
import json
import os
import subprocess
import sys

import pytest

from benchmarks.cluster import Switch
from benchmarks.link_check import round_trip_ms, throughput_mbit
from conftest import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="namespaces and TAP devices need root and /dev/net/tun")

def left_over(sw):
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [n for n in [sw.name, *sw.hosts] if n in names] + \
        [w for w in links.split() if w.startswith("hvdxd")]


def test_round_trip_is_twice_the_delay_and_nothing_is_left():
    with Switch(2, "100mbit", delay_ms=20) as sw:
        rtt, mbit = round_trip_ms(sw), throughput_mbit(sw, seconds=3)
        line = sw.line
    assert 40 <= rtt < 48, rtt
    assert 80 < mbit < 110, mbit  # the rate is still the limit
    assert line.poll() is not None and not left_over(sw)
    stats = json.loads(open(sw.line_stats).read())
    assert stats["frames"] > 0 and stats["cpu_s"] < stats["wall_s"]


def test_without_delay_the_round_trip_stays_short():
    with Switch(2, "100mbit", delay_ms=0.001) as sw:
        assert round_trip_ms(sw) < 5


def test_removed_when_the_job_inside_fails():
    with pytest.raises(RuntimeError, match="the job failed"):
        with Switch(2, "100mbit", delay_ms=20) as sw:
            line = sw.line
            raise RuntimeError("the job failed")
    assert line.poll() is not None and not left_over(sw)


def test_a_horovod_job_runs_across_the_delay(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--np", "2", "--rate", "1gbit",
                           "--switched", "--delay-ms", "20", "--model", "mlp", "--modes",
                           "horovod", "--steps", "2", "--rounds", "1", "--warmup", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=400,
                          cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["config"]["link"] == "1gbit switched, 20 ms one way"
    # a ring allreduce of 2 ranks waits for the other rank at least once each way
    assert d["allreduce_ms"] > 40, d["allreduce_ms"]
