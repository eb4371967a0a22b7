"""Adds ``horovod_ext_set_fusion(threshold_bytes, cycle_time_ms)`` to Horovod's operations.cc:
it fixes the tensor fusion threshold and the cycle time of a running job, as the
HOROVOD_FUSION_THRESHOLD and HOROVOD_CYCLE_TIME variables do at ``hvd.init()``. Exported like
Horovod's other ``horovod_*`` C functions (its linker script keeps ``*horovod*``), so Python
reaches it through ctypes (see benchmarks/peers.py). Every rank must set the same values
between collectives."""
import sys

ANCHOR = "int horovod_rank() {"
SETTER = """// Added by horovod_ext: the tensor fusion threshold and cycle time, set at run time.
void horovod_ext_set_fusion(long long threshold_bytes, double cycle_time_ms) {
  horovod_global.parameter_manager.SetTensorFusionThresholdBytes(threshold_bytes, true);
  horovod_global.parameter_manager.SetCycleTimeMs(cycle_time_ms, true);
}

"""

path = sys.argv[1]
with open(path) as f:
    text = f.read()
if text.count(ANCHOR) != 1:
    sys.exit(f"patch did not apply to {path}: {ANCHOR!r} not found once")
with open(path, "w") as f:
    f.write(text.replace(ANCHOR, SETTER + ANCHOR))
