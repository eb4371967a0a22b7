"""The source archive users install from without a clone: `python -m build --sdist` in an
isolated environment (no torch there: the archive needs none) holds every source the extension
compiles from, the scripts its build and Horovod's install run, and the declared lower ends."""
import subprocess
import sys
import tarfile
from pathlib import Path

import horovod_ext

ROOT = Path(__file__).resolve().parent.parent


def test_the_source_archive_holds_what_a_build_needs(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (archive,) = tmp_path.glob("horovod_ext-*.tar.gz")
    assert archive.name == f"horovod_ext-{horovod_ext.__version__}.tar.gz"
    with tarfile.open(archive) as tar:
        top = f"horovod_ext-{horovod_ext.__version__}/"
        names = {n.removeprefix(top) for n in tar.getnames()}
        info = tar.extractfile(top + "PKG-INFO").read().decode()
    tracked = subprocess.run(["git", "ls-files", "csrc", "horovod_ext", "scripts"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    needed = [f for f in tracked if not f.startswith(("csrc/tests/", "scripts/gpu_check",
                                                      "scripts/cuda_check"))]
    assert not [f for f in needed if f not in names], "missing from the source archive"
    assert {"setup.py", "pyproject.toml", "README.md", "LICENSE"} <= names
    assert "Requires-Python: >=3.9" in info
    assert "Requires-Dist: torch>=2.13" in info and "Requires-Dist: numpy>=1.22" in info
