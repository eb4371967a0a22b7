"""Builds horovod_ext and its extension horovod_ext._C (CUDA kernels when torch has CUDA and nvcc
exists)."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import find_packages, setup


def _cuda_home():
    """The CUDA toolkit root: ``CUDA_HOME``/``CUDA_PATH``, else the directory ``nvcc`` really
    runs from (``nvcc`` on the PATH may be a wrapper outside the toolkit, whose parent directory
    has no CUDA headers), else None. Read before torch's cpp_extension derives its own."""
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


if _cuda_home() is not None:
    os.environ["CUDA_HOME"] = _cuda_home()

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:
    sys.exit("horovod_ext builds against the torch you train with, and this environment has none: "
             "install torch first, then: pip install --no-build-isolation .")


def _cxx_standard():
    """The C++ standard the installed torch's headers require, read from ATen's own check
    (17 for torch 2.13, 20 for newer)."""
    for include in cpp_extension.include_paths():
        header = os.path.join(include, "ATen", "ATen.h")
        if os.path.exists(header):
            with open(header, errors="replace") as f:
                found = re.search(r"C\+\+(\d+) or later compatible compiler is required", f.read())
            if found:
                return f"c++{found.group(1)}"
    return "c++17"


def _use_cuda():
    if os.environ.get("HOROVOD_EXT_WITHOUT_CUDA") == "1":
        return False
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def _wheel_cuda_includes():
    """Headers torch's CUDA wheels bring (``nvidia/cu13/include``, ``nvidia/*/include``: cuSPARSE,
    cuBLAS, ... that torch's ATen/cuda headers include and a bare toolkit may lack)."""
    found = []
    for site in sys.path:
        found += sorted(glob.glob(os.path.join(site, "nvidia", "*", "include")))
    return [d for d in found if os.path.isdir(d)]


std = _cxx_standard()
sources = ["python/torch_kernel_bindings.cpp", "csrc/kernels_cpu.cpp"]
cxx_flags = ["-O3", f"-std={std}"]
if _use_cuda():
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        # No GPU to detect an arch from: Ampere and Hopper (A100, H100/H200) by default.
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
    ext_cls = cpp_extension.CUDAExtension
    sources += sorted(glob.glob("csrc/cuda/*.cu"))
    # After the toolkit's own headers: only what the toolkit lacks is taken from the wheels.
    wheel_includes = [f for d in _wheel_cuda_includes() for f in ("-idirafter", d)]
    extra = {"cxx": cxx_flags + ["-DHVD_EXT_WITH_CUDA"] + wheel_includes,
             "nvcc": ["-O3", f"-std={std}", "-DHVD_EXT_WITH_CUDA", "-Xptxas", "-v"]}
else:
    ext_cls = cpp_extension.CppExtension
    extra = {"cxx": cxx_flags}
print(f"horovod_ext: torch {torch.__version__}, -std={std}, "
      + (f"CUDA kernels for {os.environ.get('TORCH_CUDA_ARCH_LIST') or 'the visible GPU'} "
         f"(toolkit {cpp_extension.CUDA_HOME})" if ext_cls is cpp_extension.CUDAExtension
         else "CPU kernels only"), file=sys.stderr)

setup(
    name="horovod_ext",
    version="0.1.0",
    description="Horovod plug-in for PyTorch: overlapped, bucketed gradient synchronisation",
    packages=find_packages(include=["horovod_ext", "horovod_ext.*"]),
    ext_modules=[ext_cls("horovod_ext._C", sources, extra_compile_args=extra)],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    python_requires=">=3.9",
    install_requires=["numpy"],  # torch and the patched Horovod: see the README's install section
)
