#!/usr/bin/env bash
# make cuda-check: the GPU build as a GPU user makes it, on any machine with a CUDA toolkit (no
# GPU needed). In its own virtual environment (.venv-cuda/, ignored by git): the CUDA build of
# torch from the package index, the patched Horovod with NCCL, the extension with its CUDA
# kernels; both imported, `horovodrun --check-build` and the kernels' register/spill report
# printed; then the test suite against that torch (the CUDA tests skip without a GPU).
#
# The extension is built in a copy of the working tree (.venv-cuda/src), so the CPU build in
# the tree itself (make install) is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CUDA_VENV:-.venv-cuda}
TORCH_SPEC=${CUDA_TORCH:-torch==2.14.1}
PY=$VENV/bin/python

command -v nvcc >/dev/null || [ -n "${CUDA_HOME:-}" ] || { echo "cuda-check needs a CUDA toolkit (nvcc or CUDA_HOME)" >&2; exit 1; }
test -x "$PY" || python3 -m venv "$VENV"
if ! "$PY" -c "import torch, sys; sys.exit(torch.version.cuda is None)" 2>/dev/null; then
    "$PY" -m pip install "$TORCH_SPEC"
fi
"$PY" -m pip install -q numpy pybind11 ninja pytest hypothesis tqdm matplotlib mlxtend
PYTHON="$PY" bash scripts/install_horovod.sh

src=$VENV/src
rm -rf "$src"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src"
(cd "$src" && ../bin/python -m pip install -v --no-build-isolation --no-deps -e . > build.log 2>&1) \
    || { tail -40 "$src/build.log"; exit 1; }
echo "== the extension"
grep -m1 -E "horovod_ext: torch" "$src/build.log" | sed "s/^ *//"
echo "kernels (ptxas, per kernel and arch): registers / spills"
grep -E "ptxas info +: Used" "$src/build.log" | sed -E 's/.*Used ([0-9]+) registers.*/\1 registers/' \
    | sort | uniq -c
grep -Eo "[0-9]+ bytes spill (stores|loads)" "$src/build.log" | sort | uniq -c
(cd "$src" && ../bin/python -c "
import horovod.torch as hvd, torch
from horovod_ext import ops
print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), GPU visible: {torch.cuda.is_available()}')
print(f'horovod_ext._C with CUDA kernels: {ops.with_cuda}; Horovod with NCCL: {bool(hvd.nccl_built())}')
assert ops.with_cuda, 'the extension was built without its CUDA kernels'
assert hvd.nccl_built(), 'Horovod was built without NCCL'
")
"$VENV/bin/horovodrun" --check-build
echo "== tests against $("$PY" -c 'import torch; print(torch.__version__)')"
cd "$src/tests" && OMP_NUM_THREADS=1 ../../bin/python -m pytest -q -rs -p no:cacheprovider . 2>&1 \
    | grep -Ev "^SKIPPED .*needs a GPU" | tail -25
