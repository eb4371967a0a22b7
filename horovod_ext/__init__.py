"""horovod_ext: a Horovod plug-in for PyTorch. ``import horovod_ext as hvd_ext`` and swap
``hvd.DistributedOptimizer`` for ``hvd_ext.DistributedOptimizer``.

The faces below are imported on first use, so that ``import horovod_ext.ops`` (the kernels) or
``python -m horovod_ext.advise`` does not import Horovod and the rest of the package first.
"""
import importlib

from horovod_ext._version import __version__
from horovod_ext.runtime import log  # noqa: F401  (HVD_EXT_LOG_LEVEL is read, and checked, here)

# public name -> the module that defines it
_FACES = {"Compression": "horovod_ext.compression", "PowerSGD": "horovod_ext.codecs",
          "Quantize": "horovod_ext.codecs", "TopK": "horovod_ext.codecs",
          "DistributedOptimizer": "horovod_ext.optimizer",
          "probe": "horovod_ext.advisor.probing", "GradientStats": "horovod_ext.stats",
          **{m: "horovod_ext.modes" for m in ("EASGD", "Delayed", "DiLoCo", "Leader", "LocalSGD",
                                              "Sync")}}
_MODULES = ("advise", "elastic", "methods")
_KERNELS = "ops"  # the kernels: no Horovod needed

__all__ = sorted([*_FACES, *_MODULES, _KERNELS, "__version__"])


def _horovod():
    try:
        import horovod.torch  # noqa: F401
    except ImportError as e:  # pragma: no cover - the message is the point
        raise ImportError(
            "horovod_ext needs Horovod with PyTorch support, built against the torch installed "
            f"here ({e}): run scripts/install_horovod.sh from the horovod_ext sources, or "
            "HOROVOD_WITH_PYTORCH=1 pip install --no-build-isolation horovod") from e
    importlib.import_module("horovod_ext.elastic")  # its state handler registers with Horovod


def __getattr__(name):
    if name in _FACES:
        _horovod()
        value = getattr(importlib.import_module(_FACES[name]), name)
    elif name in _MODULES:
        _horovod()
        value = importlib.import_module(f"horovod_ext.{name}")
    elif name == _KERNELS:
        value = importlib.import_module(f"horovod_ext.{name}")
    else:
        raise AttributeError(f"module 'horovod_ext' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
