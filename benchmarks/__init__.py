"""The benchmarks, run from the repository's root as ``python -m benchmarks.<entry>`` (``make
bench``, ``make time-to-loss``): throughput against the peers (``throughput``, on an emulated
cluster by ``run``), time to a target loss (``time_to_loss``), the advisor's check, kernels,
soak, and the docs' tables and figures from the stored results (``docs_tables``, ``replot``).
``benchmarks.science`` holds the convergence experiments.

The processes an entry point starts (horovodrun's ranks, a harness inside a network namespace)
run ``python -m benchmarks.<entry>`` too: importing this package puts the repository's root on
their ``PYTHONPATH``, so they find it from any directory.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _on_child_path():
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if ROOT not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *parts])


_on_child_path()


def entry(name):
    """The command that runs ``benchmarks.<name>`` with this interpreter."""
    import sys
    return [sys.executable, "-m", f"benchmarks.{name}"]
