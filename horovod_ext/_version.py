"""The package version, read by ``pyproject.toml`` and ``horovod_ext.__version__``."""
__version__ = "0.2.0"
