"""Builds the extension horovod_ext._C (CUDA kernels when torch has CUDA and nvcc exists); the
package's metadata is in pyproject.toml."""
import glob
import importlib.util
import os
import sys

from setuptools import setup


def _build_env():
    """scripts/build_env.py, which install_horovod.sh runs as a script."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "build_env.py")
    spec = importlib.util.spec_from_file_location("build_env", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_env = _build_env()
cuda_home, cxx_standard, wheel_cuda_includes = (_env.cuda_home, _env.cxx_standard,
                                                _env.wheel_cuda_includes)

toolkit = cuda_home()
if toolkit is not None:
    os.environ["CUDA_HOME"] = toolkit

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:
    if not {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"} \
            & set(sys.argv):
        setup()  # the source archive and the metadata need no compiler and no torch
        sys.exit(0)
    sys.exit("horovod_ext builds against the torch you train with, and this environment has none: "
             "install torch first, then: pip install --no-build-isolation .")


def _use_cuda():
    if os.environ.get("HOROVOD_EXT_WITHOUT_CUDA") == "1":
        return False
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


std = f"c++{cxx_standard()}"
# The operators (csrc/torch: schemas, checks, CPU and Meta implementations) and the framework-free
# CPU kernels, one translation unit per instruction set (csrc/cpu/isa_*.cpp, chosen at run time).
sources = (["csrc/torch/registration.cpp", "csrc/kernels_cpu.cpp", "csrc/topk_cpu.cpp"]
           + sorted(glob.glob("csrc/cpu/isa_*.cpp")))
# No contraction of a * b + c into an FMA: every instruction set then gives the same bits.
# -fopenmp: torch's at::parallel_for is inline OpenMP in torch's headers, so without it the
# kernels run on one thread; libgomp.so.1 resolves to the one torch has loaded (its thread pool).
cxx_flags = ["-O3", f"-std={std}", "-ffp-contract=off", "-fopenmp"]
if _use_cuda():
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        # No GPU to detect an arch from: Ampere and Hopper (A100, H100/H200) by default.
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
    ext_cls = cpp_extension.CUDAExtension
    sources += ["csrc/torch/cuda_backend.cpp"] + sorted(glob.glob("csrc/cuda/*.cu"))
    # After the toolkit's own headers: only what the toolkit lacks is taken from the wheels.
    wheel_includes = [f for d in wheel_cuda_includes() for f in ("-idirafter", d)]
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
    ext_modules=[ext_cls("horovod_ext._C", sources, extra_compile_args=extra,
                         extra_link_args=["-fopenmp"])],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
