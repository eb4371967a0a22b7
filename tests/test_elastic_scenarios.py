"""The scenarios of Horovod's elastic integration tests, on a script that keeps Horovod's
``hvd.elastic.TorchState`` and ``@hvd.elastic.run`` with only the optimizer swapped
(workers/elastic_scenario.py: Sync with its tuner, Delayed, Sync + PowerSGD and DiLoCo side by
side). Hosts come and go through a discovery script that answers by the epochs logged so far,
as in Horovod's tests; every job must end (a hang fails the test), with the sizes expected and
every rank holding the same parameters of every model at the end of every epoch."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import BIN, ROOT

HOSTS_ADDED_AND_REMOVED = [(0, ["localhost:2"]), (1, ["localhost:2", "127.0.0.1:2"]),
                           (None, ["127.0.0.1:2"])]
TWO_HOSTS = [(None, ["localhost:2", "127.0.0.1:2"])]
LIMIT_S = 300  # a job still running then hangs


def discovery_script(path, epochs_log, schedule):
    """Answers schedule's hosts for the number of epochs logged (None: every later epoch)."""
    lines = ["#!/bin/sh", f"n=$(cat {epochs_log} 2>/dev/null | wc -l)"]
    for i, (epoch, hosts) in enumerate(schedule):
        echo = "; ".join(f"echo {h}" for h in hosts)
        if epoch is None:
            lines.append(f"{'else' if i else ''} {echo}" + ("; fi" if i else ""))
        else:
            lines.append(f"{'if' if i == 0 else 'elif'} [ \"$n\" -eq {epoch} ]; then {echo}")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)


def run_job(tmp_path, hosts, np, schedule, min_np=2, max_np=4, extra=()):
    """Runs the elastic job; returns (exit code, output, {epoch: {rank: record}})."""
    log, discover = tmp_path / "log", tmp_path / "discover.sh"
    discovery_script(discover, f"{log}.epochs", hosts)
    env = dict(os.environ, OMP_NUM_THREADS="1", HOROVOD_GLOO_TIMEOUT_SECONDS="10",
               HOROVOD_EXT_SAME_POINT_TIMEOUT="60",
               PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'workers'}")
    cmd = [str(BIN / "horovodrun"), "-np", str(np), "--min-np", str(min_np), "--max-np",
           str(max_np), "--host-discovery-script", str(discover), "--network-interfaces", "lo",
           *extra, sys.executable,
           str(ROOT / "tests" / "workers" / "elastic_scenario.py"), str(log),
           json.dumps(schedule)]
    start = time.monotonic()
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    try:
        output, _ = job.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        output, _ = job.communicate()
        pytest.fail(f"the job hung ({LIMIT_S} s):\n{output[-6000:]}")
    print(f"{schedule}: exit {job.returncode} after {time.monotonic() - start:.1f} s")
    epochs = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        r = json.loads(line)
        epochs.setdefault(r["epoch"], {})[r["rank"]] = r  # the last record of a rank counts
    return job.returncode, output, epochs


def check_epochs(epochs, sizes, output):
    assert sorted(epochs) == list(range(len(sizes))), output[-6000:]
    for epoch, size in enumerate(sizes):
        ranks = epochs[epoch]
        allowed = (2, 4) if size is None else (size,)  # None: either, by timing
        assert len(ranks) in allowed, (epoch, sorted(ranks))
        assert sorted(ranks) == list(range(len(ranks))), (epoch, sorted(ranks))
        assert {r["size"] for r in ranks.values()} == {len(ranks)}
        for mode in ranks[0]["digests"]:
            seen = {r["digests"][mode] for r in ranks.values()}
            assert len(seen) == 1, f"epoch {epoch}: ranks disagree on the {mode} model: {seen}"


def test_hosts_added_and_removed(tmp_path):
    rc, out, epochs = run_job(tmp_path, HOSTS_ADDED_AND_REMOVED, 2,
                              dict(epochs=3, batches=10, hosts_changes=[0, 1]))
    assert rc == 0, out[-6000:]
    check_epochs(epochs, [2, 4, 2], out)
    assert [epochs[e][0]["host"] for e in range(3)] == ["localhost", "localhost", "127.0.0.1"]
    assert epochs[2][0]["start_rank"] == 2 and epochs[2][0]["rendezvous"] == 3


@pytest.mark.parametrize("exit_mode", ["exception", "kill"])
def test_single_rank_failure(exit_mode, tmp_path):
    rc, out, epochs = run_job(tmp_path, TWO_HOSTS, 4, dict(epochs=3, batches=10,
                              exits={"1,0": [0]}, exit_mode=exit_mode))
    assert rc == 0, out[-6000:]
    check_epochs(epochs, [4, 2, 2], out)
    assert epochs[1][0]["start_rank"] == 2 and epochs[1][0]["rendezvous"] == 2


def test_all_ranks_failure(tmp_path):
    rc, out, epochs = run_job(tmp_path, TWO_HOSTS, 4, dict(epochs=3, batches=10,
                              exits={"1,0": [0, 1, 2, 3]}))
    assert rc != 0
    assert "exited with non-zero status" in out, out[-6000:]
    check_epochs(epochs, [4], out)


def test_blacklisted_host_stays_out_for_its_cooldown(tmp_path):
    """The failed rank's host is left out until its cooldown (30 to 40 s) ends, longer than the
    rest of the job takes; the job goes on with the other host's two ranks."""
    rc, out, epochs = run_job(tmp_path, TWO_HOSTS, 4, dict(
        epochs=4, batches=10, exits={"1,0": [3]}, epoch_wait=0.25),
        extra=["--blacklist-cooldown-range", "30", "40"])
    assert rc == 0, out[-6000:]
    check_epochs(epochs, [4, 2, 2, 2], out)
    failed_host = next(r["host"] for r in epochs[0].values() if r["start_rank"] == 3)
    assert {r["host"] for e in (1, 2, 3) for r in epochs[e].values()} == \
        {r["host"] for r in epochs[0].values()} - {failed_host}
    assert epochs[1][0]["start_rank"] == 0 and epochs[3][0]["rendezvous"] == 2


@pytest.mark.parametrize("limit,fails", [(1, True), (2, False)])
def test_reset_limit(limit, fails, tmp_path):
    rc, out, epochs = run_job(tmp_path, HOSTS_ADDED_AND_REMOVED, 2,
                              dict(epochs=3, batches=10, hosts_changes=[0, 1]),
                              extra=["--reset-limit", str(limit)])
    if fails:
        assert rc != 0
        assert ("number of resets during elastic job exceeded limit: 1") in out, out[-4000:]
        return
    assert rc == 0, out[-6000:]
    check_epochs(epochs, [2, 4, 2], out)
