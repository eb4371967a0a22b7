"""Elastic training (horovodrun --host-discovery-script, Gloo) with every kind of mode and codec
state: one worker is killed mid-training; the others restore the last commit, re-form the job
and finish with identical consensus parameters, and no committed step is lost."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import BIN, ROOT

# Two host names for this machine: Horovod blacklists the host of a failed worker, so the
# victim runs alone on "127.0.0.1" and the survivors on "localhost".
DISCOVERY = "#!/bin/sh\necho localhost:2\necho 127.0.0.1:1\n"
KILL_AFTER = 15  # committed steps


def _events(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("mode", ["delayed", "leader", "easgd", "diloco", "powersgd"])
def test_killed_worker_job_continues_from_last_commit(mode, tmp_path):
    discover, log, out = tmp_path / "discover.sh", tmp_path / "log", tmp_path / "out"
    discover.write_text(DISCOVERY)
    discover.chmod(0o755)
    # A survivor notices the dead peer when its Gloo collective times out (default 30 s).
    env = dict(os.environ, OMP_NUM_THREADS="1", HOROVOD_GLOO_TIMEOUT_SECONDS="5",
               PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'workers'}")
    cmd = [str(BIN / "horovodrun"), "-np", "3", "--min-np", "2", "--max-np", "3",
           "--host-discovery-script", str(discover), sys.executable,
           str(ROOT / "tests" / "workers" / "elastic_train.py"), mode, str(log), str(out)]
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline and job.poll() is None:
            events = _events(log)
            if any(e["event"] == "commit" and e["step"] >= KILL_AFTER for e in events):
                victim = next(e for e in events if e["event"] == "start" and e["host"] == "127.0.0.1")
            time.sleep(0.05)
        assert victim is not None, "the job never reached the step at which to kill a worker"
        os.kill(victim["pid"], signal.SIGKILL)
        killed_time = time.time()
        killed_at = max(e["step"] for e in _events(log) if e["event"] == "commit")
        output, _ = job.communicate(timeout=240)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 0, output[-6000:]
    events = _events(log)
    survivors = sorted({e["pid"] for e in events if e["event"] == "start"} - {victim["pid"]})
    assert len(survivors) == 2
    resets = [e for e in events if e["event"] == "reset"]
    assert {e["pid"] for e in resets} == set(survivors), "every survivor restores and re-forms"
    for e in resets:
        committed = [c["step"] for c in events if c["event"] == "commit" and c["pid"] == e["pid"]
                     and c["size"] == 3]
        # resumed exactly at its last commit (no committed step lost, none replayed from earlier)
        assert e["step"] == max(committed) >= killed_at
        assert e["size"] == 2
        print(f"{mode}: pid {e['pid']} resumed at step {e['step']}, "
              f"{e['time'] - killed_time:.1f} s after the kill")
    finals = [json.loads(out.with_name(f"out.{pid}").read_text()) for pid in survivors]
    assert [f["step"] for f in finals] == [60, 60] and [f["size"] for f in finals] == [2, 2]
    assert finals[0]["params"] == finals[1]["params"], "survivors disagree on the consensus model"
    if mode in ("delayed", "powersgd"):  # the gradient modes' tuner starts over after the resize
        assert all(f["tuned"]["restarts"] >= 1 and f["tuned"]["done"] for f in finals), \
            [(f["tuned"]["restarts"], f["tuned"]["steps"]) for f in finals]
    # after the reset every step was committed by the new job of 2
    after = sorted({c["step"] for c in events if c["event"] == "commit" and c["size"] == 2})
    assert after == list(range(resets[0]["step"] + 5, 61, 5))
