"""What the optimizers do when a step goes wrong: non-finite gradients, and errors that must stop
every rank rather than leave the others waiting for this one."""
import horovod.torch as hvd
import torch
from horovod.common.exceptions import HorovodInternalError

from horovod_ext import ops

NONFINITE = ("ignore", "skip", "raise")


def check_nonfinite(value):
    if value not in NONFINITE:
        raise ValueError(f"nonfinite must be one of {', '.join(map(repr, NONFINITE))}; "
                         f"got {value!r}")


def nonfinite_names(groups):
    """Names of the tensors that hold a NaN or an infinity. ``groups``: (tensors, names) pairs,
    one dtype and device each. One fused squared-norm pass per group (accumulated in float64,
    so it is not finite exactly when an element is not, short of |g| ~ 1e19); the per-tensor
    check runs only when a sum is not finite."""
    groups = [(ts, ns) for ts, ns in groups if ts]
    sums = torch.zeros(len(groups), dtype=torch.float32)
    for i, (tensors, _) in enumerate(groups):
        out = torch.zeros(1, dtype=torch.float32, device=tensors[0].device)
        ops.sq_norm([t.contiguous() for t in tensors], out)
        sums[i:i + 1].copy_(out)
    if bool(torch.isfinite(sums).all()):
        return []
    return [n for ts, ns in groups for t, n in zip(ts, ns) if not bool(torch.isfinite(t).all())]


def nonfinite_error(names, where):
    more = f" (and {len(names) - 1} more: {', '.join(names[1:4])}{', ...' if len(names) > 4 else ''})" \
        if len(names) > 1 else ""
    return FloatingPointError(f"non-finite gradient (NaN or inf) in parameter {names[0]!r}{more} "
                              f"{where}; nonfinite='raise' stops here, 'skip' would skip the step")


def stop_all_ranks(error, cause=None):
    """Shuts Horovod down on this rank, then raises ``error``. The shutdown reaches every other
    rank at its next collective, which then fails with Horovod's shut-down error instead of
    waiting forever for this rank (as when a rank exits on an exception)."""
    if hvd.is_initialized():
        hvd.shutdown()
    raise error from cause


def drain(handles):
    """Waits for every Horovod handle and keeps none of the results; one that fails because a
    rank died (elastic restore) is dropped too."""
    for h in handles:
        try:
            hvd.synchronize(h)
        except HorovodInternalError:
            pass


def raise_hook_failure(name, error):
    """Raises what the backward hook of parameter ``name`` raised. Unless Horovod itself stopped
    (a rank died: elastic restores), Horovod is shut down first so that the other ranks, which
    wait for this rank's gradients, fail too."""
    if isinstance(error, HorovodInternalError):
        raise another_rank_failed(f"the allreduce of parameter {name!r} could not start",
                                  error) from error
    stop_all_ranks(RuntimeError(
        f"the backward hook of parameter {name!r} raised {type(error).__name__}: {error}. "
        "Horovod was shut down on this rank so that the other ranks stop waiting for its "
        "gradients."), error)


def another_rank_failed(what, error):
    """The error a rank raises when a collective fails because another rank stopped."""
    return HorovodInternalError(f"{what}: another rank failed or exited first, and its error says "
                                f"why. ({error})")
