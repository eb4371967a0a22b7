#!/usr/bin/env bash
# Build and install Horovod 0.28.1 against the torch already installed in $PYTHON's environment.
#
# Horovod 0.28.1 (its last release) does not build as released against current torch:
#   * its CMakeLists ask for C++14; torch's headers need C++17 (torch 2.13) or C++20 (newer), so
#     the core is built as C++17 and the torch binding with the standard torch's ATen.h asks for;
#   * its bundled gloo's cmake_minimum_required is rejected by CMake >= 4.
# One function is added (scripts/horovod_setter.py): horovod_ext_set_knobs(), which sets the
# tensor fusion threshold and cycle time of a running job, so the optimizer's online tuner can
# try them and the throughput benchmark can run a tuned Horovod in the same job as the others. A working Horovod already installed is kept.
# With a CUDA torch and a CUDA toolkit it is built with HOROVOD_GPU_OPERATIONS=NCCL against the
# NCCL that torch's CUDA wheels bring (nvidia-nccl-cu*), its CUDA kernels for the arch list
# (TORCH_CUDA_ARCH_LIST, else 8.0;9.0) as C++17, the toolkit found as setup.py finds it, and the
# wheels' CUDA headers (cuSPARSE, ...) after the toolkit's.
# We fetch the sdist, patch it, export CMAKE_POLICY_VERSION_MINIMUM=3.5 and build with
# --no-build-isolation. The built wheel is cached outside the repository, keyed by Horovod,
# torch, Python, MPI and NCCL, so a reinstall takes seconds.
set -euo pipefail

PYTHON=${PYTHON:-python}
HOROVOD_VERSION=${HOROVOD_VERSION:-0.28.1}
CACHE=${HOROVOD_EXT_CACHE:-$HOME/.cache/horovod_ext}

# A Horovod that already works with the installed torch is used as it is, never replaced,
# unless HOROVOD_EXT_BUILD_HOROVOD=1 asks for this build (the online tuner tunes Horovod's fusion
# threshold and cycle time, and the benchmark's horovod-tuned peer runs, only with its setter;
# every other use works with any Horovod 0.28.x).
if [ "${HOROVOD_EXT_BUILD_HOROVOD:-0}" != 1 ] && "$PYTHON" -c "
import torch, horovod.torch as hvd
hvd.init()
assert hvd.allreduce(torch.ones(2), name='install.check').tolist() == [1.0, 1.0]
hvd.shutdown()" >/dev/null 2>&1; then
    echo "horovod.torch already imports and works with this torch; using it (HOROVOD_EXT_BUILD_HOROVOD=1 rebuilds)"
    exit 0
fi

torch_ver=$("$PYTHON" -c "import torch; print(torch.__version__.replace('+', '_'))")
py_ver=$("$PYTHON" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
mpi=nompi
if command -v mpicc >/dev/null; then mpi=mpi; fi
# What the build needs to know, found as setup.py finds it (scripts/build_env.py): the C++
# standard torch's headers require, the CUDA toolkit root, the NCCL of torch's CUDA wheels.
build_env() { "$PYTHON" "$(dirname "$0")/build_env.py" "$1"; }
torch_std=$(build_env cxx-std)
gpu=cpu
cuda_home=$(build_env cuda-home)
nccl_root=$("$PYTHON" -c "import torch; print(torch.version.cuda or '')" | grep -q . \
    && build_env nccl-root || true)
if [ "${HOROVOD_EXT_WITHOUT_CUDA:-0}" != 1 ] && [ -n "$cuda_home" ] && [ -n "$nccl_root" ]; then
    gpu=nccl
fi
key="horovod-${HOROVOD_VERSION}-torch-${torch_ver}-${py_ver}-${mpi}-${gpu}-knobs"
wheel_dir="$CACHE/$key"

if ! ls "$wheel_dir"/horovod-*.whl >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "building Horovod $HOROVOD_VERSION ($key); this takes a few minutes"
    # The sdist: HOROVOD_SDIST, else the cache's copy, else the package index (then cached,
    # so a machine without network can be given it: see scripts/gpu_check.sh).
    sdist=${HOROVOD_SDIST:-$CACHE/horovod-$HOROVOD_VERSION.tar.gz}
    if [ ! -f "$sdist" ]; then
        "$PYTHON" -m pip download --no-deps --no-binary :all: -d "$work" "horovod==$HOROVOD_VERSION"
        mkdir -p "$CACHE"
        cp "$work/horovod-$HOROVOD_VERSION.tar.gz" "$CACHE/"
        sdist=$CACHE/horovod-$HOROVOD_VERSION.tar.gz
    fi
    tar -xzf "$sdist" -C "$work"
    src="$work/horovod-$HOROVOD_VERSION"
    patch_std() {  # file, old standard pattern, new standard
        sed -i -E "s/set\((CMAKE_(CXX|CUDA)_STANDARD) $2\)/set(\1 $3)/" "$1"
        grep -q "STANDARD $3)" "$1" || { echo "patch did not apply to $1" >&2; exit 1; }
    }
    patch_std "$src/CMakeLists.txt" "1[14]" 17
    patch_std "$src/horovod/torch/CMakeLists.txt" "1[14]" "$torch_std"
    patch_std "$src/horovod/common/ops/cuda/CMakeLists.txt" "11" 17
    "$PYTHON" "$(dirname "$0")/horovod_setter.py" "$src/horovod/common/operations.cc"
    export CMAKE_POLICY_VERSION_MINIMUM=3.5
    export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
    export HOROVOD_WITH_GLOO=1
    if [ "$gpu" = nccl ]; then
        # NCCL's wheel has libnccl.so.2 only; Horovod's FindNCCL looks for libnccl.so.
        mkdir -p "$work/nccl/lib"
        ln -s "$nccl_root"/lib/libnccl.so.* "$work/nccl/lib/libnccl.so"
        arch=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}
        export HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_CUDA_HOME="$cuda_home" CUDA_HOME="$cuda_home"
        export HOROVOD_NCCL_INCLUDE="$nccl_root/include" HOROVOD_NCCL_LIB="$work/nccl/lib"
        export HOROVOD_NCCL_LINK=SHARED
        export HOROVOD_BUILD_CUDA_CC_LIST=$(echo "$arch" | tr -d '.' | tr ';' ',' | sed 's/+PTX//g')
        for d in $(build_env wheel-includes); do CXXFLAGS="${CXXFLAGS:-} -idirafter $d"; done
        export CXXFLAGS
        echo "Horovod with NCCL ($nccl_root), CUDA toolkit $cuda_home, archs $HOROVOD_BUILD_CUDA_CC_LIST, torch binding C++$torch_std"
    else
        echo "Horovod for CPU ($mpi), torch binding C++$torch_std"
    fi
    if [ "$mpi" = mpi ]; then export HOROVOD_WITH_MPI=1; else export HOROVOD_WITHOUT_MPI=1; fi
    export MAKEFLAGS="-j$(nproc)"
    "$PYTHON" -m pip install -q cmake packaging \
        || echo "cmake/packaging could not be installed (no network?); using those already there"
    "$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$work/dist" "$src"
    mkdir -p "$wheel_dir"
    cp "$work"/dist/horovod-*.whl "$wheel_dir"/
fi

"$PYTHON" -m pip install --no-deps --force-reinstall "$wheel_dir"/horovod-*.whl
# Horovod's runtime dependencies (without pulling a different torch).
"$PYTHON" -c "import cloudpickle, psutil, yaml, packaging, cffi" 2>/dev/null \
    || "$PYTHON" -m pip install -q cloudpickle psutil pyyaml packaging cffi
"$PYTHON" -c "import horovod.torch" || { echo "horovod.torch does not import after install" >&2; exit 1; }
HOROVODRUN=$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/horovodrun
"$HOROVODRUN" --check-build
