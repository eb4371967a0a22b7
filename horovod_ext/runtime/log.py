"""The package's logger, ``logging.getLogger("horovod_ext")``.

``HVD_EXT_LOG_LEVEL=DEBUG`` (or INFO, WARNING, ...) sets its level and prints its records to
stderr, on the first rank only, as ``TORCH_DISTRIBUTED_DEBUG`` does for DDP: at DEBUG the mode,
codec and bucket settings at construction, every bucket plan (its parameters and sizes), and
what each codec decided per tensor. Without the variable the logger is left to the application
(records propagate to the root logger; Python's default shows WARNING and above).
"""
import logging
import os

logger = logging.getLogger("horovod_ext")
_ENV = "HVD_EXT_LOG_LEVEL"


def _configure():
    level = os.environ.get(_ENV)
    if not level:
        return
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise ValueError(f"{_ENV} must be a logging level (DEBUG, INFO, WARNING, ERROR); "
                         f"got {level!r}")
    logger.setLevel(level.upper())
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[horovod_ext %(levelname)s] %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


def _first_rank():
    import horovod.torch as hvd  # here: the package's face reads the level without Horovod
    return hvd.is_initialized() and hvd.rank() == 0


def shown():
    """True when a DEBUG record would be printed here (the first rank, DEBUG enabled)."""
    return logger.isEnabledFor(logging.DEBUG) and _first_rank()


def debug(message, *args):
    """A DEBUG record on the first rank (the arguments are formatted only when it is shown)."""
    if shown():
        logger.debug(message, *args)


def info(message, *args):
    """An INFO record on the first rank."""
    if logger.isEnabledFor(logging.INFO) and _first_rank():
        logger.info(message, *args)


def op_name(op):
    """Horovod's reduction op by name (they are integers)."""
    from horovod.torch import mpi_ops
    names = {getattr(mpi_ops, n): n for n in ("Average", "Sum", "Adasum", "Min", "Max", "Product")
             if hasattr(mpi_ops, n)}
    return names.get(op, repr(op))


def debug_plan(plan, params, name_of, why):
    """The bucket plan: each bucket's size and parameters."""
    if not shown():
        return
    lines = [f"bucket plan ({why}): {len(plan)} buckets"]
    for i, bucket in enumerate(plan):
        ps = [params[j] for j in bucket]
        size = sum(p.numel() * p.element_size() for p in ps)
        names = ", ".join(f"{name_of[p]} {tuple(p.shape)}" for p in ps)
        lines.append(f"  bucket {i}: {size / 2**20:.3f} MiB, {len(ps)} tensors: {names}")
    logger.debug("\n".join(lines))


_configure()
