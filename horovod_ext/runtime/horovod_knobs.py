"""Horovod's two scheduling knobs of a running job: the tensor fusion threshold and the cycle
time. Horovod reads them once, at ``hvd.init()`` (``HOROVOD_FUSION_THRESHOLD``,
``HOROVOD_CYCLE_TIME``); the Horovod that scripts/install_horovod.sh builds adds
``horovod_ext_set_knobs()`` (scripts/horovod_setter.py), which changes them later. Without it
they stay what the job started with; a value the environment fixed is never changed."""
import ctypes
import os

import horovod.torch as hvd
import torch

DEFAULT_FUSION_MB, DEFAULT_CYCLE_MS = 128, 1.0  # Horovod 0.28.1's defaults
_FUSION_ENV, _CYCLE_ENV = "HOROVOD_FUSION_THRESHOLD", "HOROVOD_CYCLE_TIME"
_set_to: dict[str, float] = {}  # knob -> the value set_knobs last gave it in this process


def has_setter():
    """Whether the Horovod in use can change its fusion threshold and cycle time at run time."""
    from horovod.torch.mpi_ops import _basics
    return hasattr(_basics.MPI_LIB_CTYPES, "horovod_ext_set_knobs")


def started_with():
    """(fusion MB, cycle ms) this job started with: the environment's, else Horovod's defaults."""
    fusion = os.environ.get(_FUSION_ENV)
    cycle = os.environ.get(_CYCLE_ENV)
    return (DEFAULT_FUSION_MB if not fusion else int(fusion) / 2**20,
            DEFAULT_CYCLE_MS if not cycle else float(cycle))


def current():
    """(fusion MB, cycle ms) now: what set_knobs last set, else what the job started with."""
    fusion, cycle = started_with()
    return _set_to.get("fusion_mb", fusion), _set_to.get("cycle_ms", cycle)


def reinitialized():
    """Horovod was initialized again (elastic reset): it starts from the job's values."""
    _set_to.clear()


def fixed_by_user():
    """The knobs the job fixed itself (an environment variable, or Horovod's own autotuner),
    which a tuner of ours leaves alone: a subset of {"fusion_mb", "cycle_ms"}."""
    if os.environ.get("HOROVOD_AUTOTUNE", "") not in ("", "0"):
        return {"fusion_mb", "cycle_ms"}
    return {k for k, env in (("fusion_mb", _FUSION_ENV), ("cycle_ms", _CYCLE_ENV))
            if os.environ.get(env)}


def set_knobs(fusion_mb=None, cycle_ms=None, fence=True, process_set=None):
    """Sets Horovod's fusion threshold and cycle time (None: leave it) on this rank. Every rank
    must call it at the same point, with nothing launched on one rank that another has not
    launched: ``fence`` first runs a small allreduce that every collective launched before it
    completes with (pass False when such a collective has just completed on every rank). A knob
    the environment fixed is refused (see scripts/horovod_setter.py)."""
    from horovod.torch.mpi_ops import _basics
    fixed = fixed_by_user() & {k for k, v in (("fusion_mb", fusion_mb), ("cycle_ms", cycle_ms))
                               if v is not None}
    if fixed:
        raise ValueError(f"Horovod's {' and '.join(sorted(fixed))} was fixed by the environment "
                         f"(HOROVOD_FUSION_THRESHOLD, HOROVOD_CYCLE_TIME or HOROVOD_AUTOTUNE) and "
                         f"is not changed at run time")
    if fence:
        kw = {} if process_set is None else {"process_set": process_set}
        hvd.allreduce(torch.zeros(1), name="hvd_ext.knobs.fence", **kw)
    _basics.MPI_LIB_CTYPES.horovod_ext_set_knobs(
        ctypes.c_longlong(-1 if fusion_mb is None else int(fusion_mb * 2**20)),
        ctypes.c_double(-1.0 if cycle_ms is None else cycle_ms))
    _set_to.update({k: v for k, v in (("fusion_mb", fusion_mb), ("cycle_ms", cycle_ms))
                    if v is not None})
