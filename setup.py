"""Builds horovod_ext and its extension horovod_ext._C (CUDA kernels when torch has CUDA and nvcc
exists)."""
import glob
import os
import shutil
import sys

from setuptools import find_packages, setup

try:
    from torch.utils import cpp_extension
except ImportError:
    sys.exit("horovod_ext builds against the torch you train with, and this environment has none: "
             "install torch first, then: pip install --no-build-isolation .")


def _use_cuda():
    import torch
    if os.environ.get("HOROVOD_EXT_WITHOUT_CUDA") == "1":
        return False
    return torch.version.cuda is not None and (
        shutil.which("nvcc") is not None or cpp_extension.CUDA_HOME is not None)


sources = ["python/torch_kernel_bindings.cpp", "csrc/kernels_cpu.cpp"]
cxx_flags = ["-O3", "-std=c++17"]
if _use_cuda():
    ext_cls = cpp_extension.CUDAExtension
    sources += sorted(glob.glob("csrc/cuda/*.cu"))
    extra = {"cxx": cxx_flags + ["-DHVD_EXT_WITH_CUDA"],
             "nvcc": ["-O3", "-std=c++17", "-DHVD_EXT_WITH_CUDA", "-Xptxas", "-v"]}
else:
    ext_cls = cpp_extension.CppExtension
    extra = {"cxx": cxx_flags}

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
