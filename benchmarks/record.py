"""What a stored result says about how it was run: the command's arguments, with the output path
given relative to the repository (or by its name when it lies outside), so a stored JSON names
no directory of the machine that wrote it."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stored_path(path):
    full = os.path.abspath(path)
    inside = os.path.commonpath([full, ROOT]) == ROOT
    return os.path.relpath(full, ROOT) if inside else os.path.basename(full)


def stored_config(args, **extra):
    """``vars(args)`` plus ``extra``, with ``json`` as stored_path gives it."""
    config = dict(vars(args), **extra)
    if isinstance(config.get("json"), str):
        config["json"] = stored_path(config["json"])
    return config
