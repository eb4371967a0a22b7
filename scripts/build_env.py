"""What a build against the installed torch needs to know, found one way for both builds that
use it (setup.py for the extension, scripts/install_horovod.sh for Horovod):

    python scripts/build_env.py cxx-std | cuda-home | wheel-includes | nccl-root
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile


def cuda_home():
    """The CUDA toolkit root: ``CUDA_HOME``/``CUDA_PATH``, else the directory ``nvcc`` really
    runs from (``nvcc`` on the PATH may be a wrapper outside the toolkit, whose parent directory
    has no CUDA headers), else None. No torch import: setup.py sets CUDA_HOME from it before
    torch's cpp_extension derives its own."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.cu")
        open(src, "w").close()
        out = subprocess.run([nvcc, "--dryrun", "-c", src, "-o", src + ".o"],
                             capture_output=True, text=True).stderr
    top = re.search(r"^#\$ TOP=(.+)$", out, re.M)
    return os.path.normpath(top.group(1).strip()) if top else os.path.dirname(
        os.path.dirname(os.path.realpath(nvcc)))


def cxx_standard():
    """The C++ standard number the installed torch's headers require, read from ATen's own check
    (17 for torch 2.13, 20 for newer)."""
    from torch.utils import cpp_extension
    for include in cpp_extension.include_paths():
        header = os.path.join(include, "ATen", "ATen.h")
        if os.path.exists(header):
            with open(header, errors="replace") as f:
                found = re.search(r"C\+\+(\d+) or later compatible compiler is required", f.read())
            if found:
                return found.group(1)
    return "17"


def wheel_cuda_includes():
    """Headers torch's CUDA wheels bring (``nvidia/cu13/include``, ``nvidia/*/include``: cuSPARSE,
    cuBLAS, ... that torch's ATen/cuda headers include and a bare toolkit may lack)."""
    found = []
    for site in sys.path:
        found += sorted(glob.glob(os.path.join(site, "nvidia", "*", "include")))
    return [d for d in found if os.path.isdir(d)]


def nccl_root():
    """The NCCL torch's CUDA wheels bring (``nvidia/nccl``), or None."""
    for site in sys.path:
        if os.path.exists(os.path.join(site, "nvidia", "nccl", "include", "nccl.h")):
            return os.path.join(site, "nvidia", "nccl")
    return None


if __name__ == "__main__":
    what = sys.argv[1]
    if cuda_home() is not None:  # before torch is imported, as in setup.py
        os.environ.setdefault("CUDA_HOME", cuda_home())
    value = {"cxx-std": cxx_standard, "cuda-home": cuda_home,
             "wheel-includes": lambda: " ".join(wheel_cuda_includes()),
             "nccl-root": nccl_root}[what]()
    print(value or "")
