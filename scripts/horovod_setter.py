"""Adds ``horovod_ext_set_knobs(threshold_bytes, cycle_time_ms)`` to Horovod's operations.cc: it
sets the tensor fusion threshold and the cycle time of a running job. Exported like Horovod's
other ``horovod_*`` C functions (its linker script keeps ``*horovod*``), so Python reaches it
through ctypes (horovod_ext/runtime/horovod_knobs.py). Every rank must set the same values between
collectives; a negative value leaves that knob as it is.

The values are set as Horovod's defaults are (not "fixed"): with its autotuner off, Horovod uses
them. Fixing a value removes it from the autotuner's vectors, and the next ``hvd.init()`` in the
same process (an elastic reset) then writes the default at its old index, out of bounds. For the
same reason a value the environment fixed (HOROVOD_FUSION_THRESHOLD, HOROVOD_CYCLE_TIME) must not
be set (horovod_knobs.py refuses)."""
import sys

ANCHOR = "int horovod_rank() {"
SETTER = """// Added by horovod_ext: the tensor fusion threshold and cycle time, set at run time.
// A negative value leaves that knob as it is.
void horovod_ext_set_knobs(long long threshold_bytes, double cycle_time_ms) {
  if (threshold_bytes >= 0)
    horovod_global.parameter_manager.SetTensorFusionThresholdBytes(threshold_bytes, false);
  if (cycle_time_ms >= 0)
    horovod_global.parameter_manager.SetCycleTimeMs(cycle_time_ms, false);
}

"""

path = sys.argv[1]
with open(path) as f:
    text = f.read()
if text.count(ANCHOR) != 1:
    sys.exit(f"patch did not apply to {path}: {ANCHOR!r} not found once")
with open(path, "w") as f:
    f.write(text.replace(ANCHOR, SETTER + ANCHOR))
