"""Warm-up before the timed rounds of throughput.py, and what each optimizer runs under.

Every optimizer runs ``--warmup`` untimed steps; one of ours whose online tuner is on runs as
many as its tuner may take (at least), so no timed round contains tuning, and its cost (steps,
seconds, what it tried) goes into the JSON beside the steady-state step time: a tuned mode is not
compared only after a free search. Horovod's fusion threshold and cycle time are process-wide:
after each warm-up they go back to what the job started with, and a method that chose or was
given other values (horovod-tuned, a mode of ours whose tuner changed them) gets them only for
its own rounds.
"""
import contextlib
import time

from benchmarks import peers
from horovod_ext.runtime import horovod_knobs


@contextlib.contextmanager
def knobs_applied(fusion_mb, cycle_ms):
    horovod_knobs.set_knobs(fusion_mb, cycle_ms)
    try:
        yield
    finally:
        horovod_knobs.set_knobs(*horovod_knobs.started_with())


def warm_up(runs, tuned_peer, warmup, run_steps, log):
    """``runs``: name -> (model, optimizer); ``tuned_peer``: the TunedHorovod or None, tuned here
    on its own optimizer; ``warmup``: name -> its untimed steps at least; ``run_steps(name, n)``
    runs n untimed steps. Returns (name -> context
    manager to run its rounds under, name -> its tuner's record with the warm-up's seconds)."""
    setting = {n: contextlib.nullcontext for n in runs}
    tuning = {}
    for n, (_, opt) in runs.items():
        record = getattr(opt, "tuned", None)
        if record is None:
            run_steps(n, warmup[n])
            continue
        t0 = time.perf_counter()
        run_steps(n, max(warmup[n], record["budget"]))
        record = dict(opt.tuned, warmup_steps=max(warmup[n], record["budget"]),
                      warmup_seconds=time.perf_counter() - t0)
        tuning[n] = record
        if not record["done"]:
            raise RuntimeError(f"{n}: the tuner did not finish within its budget: {record}")
        if record["horovod_knobs_tuned"]:
            chosen = (record["chosen"]["fusion_mb"], record["chosen"]["cycle_ms"])
            horovod_knobs.set_knobs(*horovod_knobs.started_with())
            if chosen != horovod_knobs.started_with():
                setting[n] = lambda c=chosen: knobs_applied(*c)
        log(f"{n}: tuned in {record['steps']} steps ({record['seconds']:.1f} s): "
            f"{record['chosen']}")
    if tuned_peer is not None:
        name = peers.tuned_name()
        tuned_peer.tune(lambda k: run_steps(name, k))
        for n in runs:
            if n == name or n.endswith("@tuned"):
                setting[n] = tuned_peer.applied
        log(f"{name}: fusion threshold {tuned_peer.best[0]} MB, cycle time "
            f"{tuned_peer.best[1]} ms (the fastest of {len(tuned_peer.tried)} settings)")
    return setting, tuning
