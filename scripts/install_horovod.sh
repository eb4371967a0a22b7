#!/usr/bin/env bash
# Build and install Horovod 0.28.1 against the torch already installed in $PYTHON's environment.
#
# Horovod 0.28.1 (its last release) does not build as released against torch >= 2.1:
#   * its CMakeLists ask for C++14, torch headers need C++17;
#   * its bundled gloo's cmake_minimum_required is rejected by CMake >= 4.
# We fetch the sdist, set CMAKE_CXX_STANDARD 17 in the two CMakeLists, export
# CMAKE_POLICY_VERSION_MINIMUM=3.5 and build with --no-build-isolation. The built wheel is cached
# outside the repository, keyed by Horovod, torch and Python versions, so a reinstall takes seconds.
set -euo pipefail

PYTHON=${PYTHON:-python}
HOROVOD_VERSION=${HOROVOD_VERSION:-0.28.1}
CACHE=${HOROVOD_EXT_CACHE:-$HOME/.cache/horovod_ext}

if "$PYTHON" -c "import horovod.torch" 2>/dev/null; then
    echo "horovod.torch already importable; skipping the build"
    exit 0
fi

torch_ver=$("$PYTHON" -c "import torch; print(torch.__version__.replace('+', '_'))")
py_ver=$("$PYTHON" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
mpi=nompi
if command -v mpicc >/dev/null; then mpi=mpi; fi
key="horovod-${HOROVOD_VERSION}-torch-${torch_ver}-${py_ver}-${mpi}"
wheel_dir="$CACHE/$key"

if ! ls "$wheel_dir"/horovod-*.whl >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "building Horovod $HOROVOD_VERSION ($key); this takes a few minutes"
    "$PYTHON" -m pip download --no-deps --no-binary :all: -d "$work" "horovod==$HOROVOD_VERSION"
    tar -xzf "$work"/horovod-"$HOROVOD_VERSION".tar.gz -C "$work"
    src="$work/horovod-$HOROVOD_VERSION"
    for f in "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"; do
        sed -i -E 's/set\(CMAKE_CXX_STANDARD 1[14]\)/set(CMAKE_CXX_STANDARD 17)/' "$f"
        grep -q 'CMAKE_CXX_STANDARD 17' "$f" || { echo "patch did not apply to $f" >&2; exit 1; }
    done
    export CMAKE_POLICY_VERSION_MINIMUM=3.5
    export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
    export HOROVOD_WITH_GLOO=1
    if [ "$mpi" = mpi ]; then export HOROVOD_WITH_MPI=1; else export HOROVOD_WITHOUT_MPI=1; fi
    export MAKEFLAGS="-j$(nproc)"
    "$PYTHON" -m pip install -q cmake packaging
    "$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$work/dist" "$src"
    mkdir -p "$wheel_dir"
    cp "$work"/dist/horovod-*.whl "$wheel_dir"/
fi

"$PYTHON" -m pip install --no-deps "$wheel_dir"/horovod-*.whl
# Horovod's runtime dependencies (without pulling a different torch).
"$PYTHON" -m pip install -q cloudpickle psutil pyyaml packaging cffi
"$PYTHON" -c "import horovod.torch" || { echo "horovod.torch does not import after install" >&2; exit 1; }
HOROVODRUN=$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/horovodrun
"$HOROVODRUN" --check-build
