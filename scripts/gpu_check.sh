#!/usr/bin/env bash
# On a GPU machine, from a clean copy of the repository, with torch (CUDA), nvcc, pybind11 and
# ninja installed:
#   1. builds the patched Horovod with NCCL (in the background) and the extension with its CUDA
#      kernels for this GPU, and prints the kernels' register/spill report;
#   2. runs the CUDA kernel tests against float64 references and torch.library.opcheck of every
#      operator on CUDA, then the kernel tests under compute-sanitizer memcheck and racecheck
#      (zero errors);
#   3. runs the kernel benchmark (against a device-to-device copy measured in the same run and
#      against torch's _foreach_*/cat) and checks the memory-bound operators (pack, unpack, pull,
#      the fp16 casts) reach 0.85 of the copy's bandwidth;
#   4. runs two training steps per mode on the GPU with horovodrun -np 1, on a side stream,
#      against a float64 CPU reference, and counts the cast kernel's launches per bucket.
# Results go to OUT (default results/gpu): build.log, kernel_tests*.txt, kernels.json,
# gpu_step.json, summary.json. Exits non-zero when a check fails.
#
#     bash scripts/gpu_check.sh [OUT]
#
# A GPU machine without network needs Horovod's sdist and the test dependencies brought along
# in .cache/ (ignored by git); where there is a network:
#     pip download --no-deps --no-binary :all: -d .cache horovod==0.28.1
#     pip download -d .cache/wheels numpy pytest hypothesis tqdm cloudpickle psutil pyyaml cffi cmake
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
failed=()
step() { echo "== $* ($(date +%T))"; }

cap=$("$PY" -c "import torch; c = torch.cuda.get_device_capability(); print(f'{c[0]}.{c[1]}')") \
    || { echo "no GPU visible to torch" >&2; exit 1; }
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$cap}

step "build: Horovod with NCCL (background) and the extension for sm_${cap/./}"
if [ -d .cache/wheels ]; then
    "$PY" -m pip install -q --no-index --find-links .cache/wheels numpy pytest hypothesis tqdm \
        cloudpickle psutil pyyaml cffi cmake
else
    "$PY" -m pip install -q numpy pytest hypothesis tqdm
fi
[ -f .cache/horovod-0.28.1.tar.gz ] && export HOROVOD_SDIST=$PWD/.cache/horovod-0.28.1.tar.gz
PYTHON="$PY" bash scripts/install_horovod.sh > "$OUT/horovod_build.log" 2>&1 &
horovod_pid=$!
"$PY" -m pip install -v --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log"; echo "extension build failed" >&2; exit 1; }
grep -m1 "horovod_ext: torch" "$OUT/build.log"
grep -E "ptxas info +: Used" "$OUT/build.log" | sed -E "s/.*Used ([0-9]+) registers.*/\1 registers/" | sort | uniq -c
spills=$(grep -Eo "[0-9]+ bytes spill (stores|loads)" "$OUT/build.log" | awk '{s += $1} END {print s + 0}')
echo "spilled bytes over all kernels: $spills"
[ "$spills" = 0 ] || failed+=("register spills")
wait "$horovod_pid" || { tail -30 "$OUT/horovod_build.log"; echo "Horovod build failed" >&2; exit 1; }
grep -E "Horovod with|NCCL|\[X\]" "$OUT/horovod_build.log" | tail -12

step "CUDA kernel tests (float64 references) and torch.library.opcheck on CUDA"
(cd tests && "$PY" -m pytest -q test_kernels.py test_operators.py -k cuda -p no:cacheprovider) \
    > "$OUT/kernel_tests.txt" 2>&1 || failed+=("kernel tests or opcheck")
tail -2 "$OUT/kernel_tests.txt"

SANITIZER=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
for tool in memcheck racecheck; do
    step "kernel tests under compute-sanitizer --tool $tool"
    "$SANITIZER" --tool "$tool" --error-exitcode 9 --print-limit 20 \
        "$PY" -m pytest -q -x tests/test_kernels.py -k cuda -p no:cacheprovider \
        > "$OUT/kernel_tests_$tool.txt" 2>&1 || failed+=("$tool")
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed|failed" "$OUT/kernel_tests_$tool.txt" | tail -3
done

step "kernel benchmark: the memory-bound operators at >= 0.85 of a device-to-device copy"
"$PY" -m benchmarks.kernels --device cuda --json "$OUT/kernels.json" | grep -E "ours|copy [0-9]" \
    || failed+=("kernel benchmark")
"$PY" - "$OUT/kernels.json" <<'PY' || failed+=("0.85 of a device-to-device copy")
import json, sys
slow = [f"{res['params']} {r['op']}: {r['of_copy']:.2f}" for res in json.load(open(sys.argv[1]))["results"]
        for r in res["rows"] if r["impl"] == "ours" and r["of_copy"] < 0.85
        and r["op"] in ("pack", "unpack", "pull", "pack, cast to fp16", "unpack, cast from fp16")]
print("below 0.85 of a copy:", slow or "none")
sys.exit(1 if slow else 0)
PY

step "two steps per mode on the GPU, horovodrun -np 1, against float64 on the CPU"
HOROVODRUN=$(dirname "$("$PY" -c 'import sys; print(sys.executable)')")/horovodrun
"$HOROVODRUN" -np 1 --gloo "$PY" tests/workers/gpu_step.py "$OUT/gpu_step.json" \
    > "$OUT/gpu_step.txt" 2>&1 || failed+=("training steps")
"$PY" - "$OUT" <<'PY' || failed+=("one cast launch per bucket")
import json, sys
r = json.load(open(f"{sys.argv[1]}/gpu_step.json"))
for name, c in r.items():
    if isinstance(c, dict):
        print(f"{name:10s} rel. error {c['rel_err']:.2e} (tol {c['tol']:.0e}) buckets {c['buckets']}"
              + (f" cast launches {c['cast_launches_per_step']}" if c['cast_launches_per_step'] else ""))
fp16 = r["sync_fp16"]
sys.exit(0 if fp16["cast_launches_per_step"] == 2 * fp16["buckets"] else 1)
PY

"$PY" - "$OUT" "$(IFS=';'; echo "${failed[*]:-}")" <<'PY'
import json, sys, torch
out, failed = sys.argv[1], [f for f in sys.argv[2].split(";") if f]
json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "failed": failed}, open(f"{out}/summary.json", "w"), indent=1)
PY
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all GPU checks passed; results in $OUT"
