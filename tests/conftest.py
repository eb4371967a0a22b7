"""Shared helpers: launching real multi-process Horovod jobs from pytest."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Every process the tests start finds the benchmarks package (python -m benchmarks.<entry>);
# this process finds it through pytest's pythonpath setting (pyproject.toml).
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])


def _mpi_available():
    if shutil.which("mpirun") is None:
        return False
    import horovod.torch as hvd
    return hvd.mpi_built()


MPI = pytest.mark.skipif(not _mpi_available(), reason="needs mpirun and Horovod built with MPI")


def launch(script, np, backend, args=(), timeout=600, env=None):
    """Runs tests/workers/<script> (or <script> from the repository root when it names a
    folder, such as examples/x.py) on `np` ranks with Horovod's Gloo (horovodrun --gloo) or MPI
    (mpirun) and returns the completed process; raises with the output on failure."""
    worker = str(ROOT / script if "/" in script else ROOT / "tests" / "workers" / script)
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **(env or {}))
    if backend == "gloo":
        cmd = [str(BIN / "horovodrun"), "--gloo", "-np", str(np), sys.executable, worker, *args]
    else:
        full_env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        cmd = ["mpirun", "--oversubscribe", "-np", str(np), "-x", "PYTHONPATH", "-x",
               "OMP_NUM_THREADS", sys.executable, worker, *args]
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}")
    return proc


def launch_json(script, np, backend, tmp_path_factory, timeout=600):
    """launch() with a JSON result file as the worker's first argument; returns its content."""
    out = tmp_path_factory.mktemp(f"{Path(script).stem}_{backend}") / "result.json"
    launch(script, np, backend, [str(out)], timeout=timeout)
    return json.loads(out.read_text())
