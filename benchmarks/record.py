"""What a stored result says about how it was run: the command's arguments, with the output path
given relative to the repository (or by its name when it lies outside), so a stored JSON names
no directory of the machine that wrote it, and where it was run (``provenance``: the commit, the
date, the versions of Python, torch, Horovod and this package, the cores)."""
import datetime
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stored_path(path):
    full = os.path.abspath(path)
    inside = os.path.commonpath([full, ROOT]) == ROOT
    return os.path.relpath(full, ROOT) if inside else os.path.basename(full)


def provenance():
    """The commit (with ``+changes`` when the checkout differs from it; None outside a git
    checkout), the UTC date, the versions and the machine's cores."""
    def git(*cmd):
        try:
            return subprocess.run(["git", "-C", ROOT, *cmd], capture_output=True, text=True,
                                  timeout=30, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    commit = git("rev-parse", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "+changes"
    import horovod
    import torch

    import horovod_ext
    return dict(commit=commit, date=datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), python=platform.python_version(), torch=torch.__version__,
        horovod=horovod.__version__, horovod_ext=horovod_ext.__version__,
        cores=os.cpu_count(), machine=platform.machine())


def stored_config(args, **extra):
    """``vars(args)`` plus ``extra`` and ``provenance()``, with ``json`` as stored_path gives
    it."""
    config = dict(vars(args), **extra, provenance=provenance())
    if isinstance(config.get("json"), str):
        config["json"] = stored_path(config["json"])
    return config
