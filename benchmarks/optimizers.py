"""The optimizers the benchmarks time: the peers (peers.REGISTRY) and ours, by name, built the same
way for the throughput harness and the soak test. A name of ours is a harness name below or any
method of the catalog (``horovod_ext.methods``: ``sync+powersgd-r4``, ``diloco-H8-t2-a0.5``).
"""
import copy
import importlib
import importlib.util
import os
import time

import horovod.torch as hvd

import horovod_ext as hvd_ext
from benchmarks import peers
from benchmarks.models import inner_optimizer, loss_fn
from horovod_ext import methods

# Benchmarked optimizers: the peers (peers.REGISTRY) and ours, name -> hvd_ext.DistributedOptimizer
# arguments; stats=True measures the gradient noise scale on the way.
PEERS = tuple(peers.REGISTRY)
TUNED = "@tuned"  # a mode of ours under horovod-tuned's settings (needs horovod-tuned in --modes)
# this harness's name -> a method of the catalog (horovod_ext.methods); the periodic modes at
# period 4 so that a few timed steps hold whole periods; PowerSGD as trained (warmed up past its
# start step, steady_after).
METHODS = {"sync": "sync", "sync-fp16": "sync+fp16", "delayed-fp16": "delayed+fp16",
           "powersgd": "sync+powersgd-r4", "delayed-powersgd": "delayed+powersgd-r4",
           "int8": "sync+int8", "delayed-int8": "delayed+int8", "delayed": "delayed",
           "delayed2": "delayed-k2", "leader": "leader-H4-p0.2", "easgd": "easgd-H4",
           "localsgd": "localsgd-H4", "diloco": "diloco-H4", "diloco-H8": "diloco-H8-o1.0-m0.5",
           "diloco-H32": "diloco-H32-o1.0-m0.5", "localsgd-H32": "localsgd-H32"}
MODES = {**{name: name for name in PEERS},
         **{name: methods.parse(m).kwargs() for name, m in METHODS.items()},
         # settings of the harness beside a method: Sync's forward overlap, the statistics, a
         # bucket cap
         "sync-overlap": dict(mode=hvd_ext.Sync(overlap_forward=True)),
         "sync+stats": dict(mode=hvd_ext.Sync(), stats=True),
         "delayed+stats": dict(mode=hvd_ext.Delayed(staleness=1), stats=True),
         "sync-25mb": dict(mode=hvd_ext.Sync(), bucket_cap_mb=25)}


def load_plugins(plugins):
    """Imports each plugin: a path to a Python file, or a module name."""
    for i, plugin in enumerate(plugins):
        if os.path.isfile(plugin):
            spec = importlib.util.spec_from_file_location(f"benchmarks_plugin_{i}", plugin)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        else:
            importlib.import_module(plugin)


def known(name):
    """Whether ``name`` (without @tuned) is an optimizer these benchmarks can build."""
    if name in MODES:
        return True
    try:
        methods.parse(name)
    except ValueError:
        return False
    return True


def steady_after(name):
    """Steps before optimizer ``name`` runs as it will from then on: a peer's ``warmup``, our
    codec's ``start_step`` (PowerSGD sends whole gradients before it), else 0."""
    if name in PEERS:
        return peers.REGISTRY[name].warmup
    if name == "compute" or name not in MODES and not known(name):
        return 0
    codec = (MODES.get(name) or methods.parse(name).kwargs()).get("compression")
    return getattr(codec, "start_step", 0)


def rounds_of(name):
    """(period, steps a round's exchange runs behind) of a local-update optimizer, else None."""
    name = name.removesuffix(TUNED)
    if name in PEERS:
        return peers.REGISTRY[name].rounds
    if name in METHODS or name not in MODES and known(name):
        mode = methods.parse(METHODS.get(name, name)).kwargs()["mode"]
        if isinstance(getattr(mode, "period", None), int):
            return mode.period, getattr(mode, "overlap", 0)
    return None


def make(args_name, base, args):
    name = args_name.removesuffix(TUNED)
    model = copy.deepcopy(base)
    opt = inner_optimizer(args.model, model.parameters(), hvd.size())
    if name in PEERS:
        return peers.REGISTRY[name].wrap(model, opt)
    else:
        kwargs = dict(MODES[name]) if name in MODES else methods.parse(name).kwargs()
        if kwargs.pop("stats", False):
            kwargs["stats"] = hvd_ext.GradientStats(
                batch_size=args.batch_size, history=getattr(args, "stats_history", 10_000))
        kwargs.setdefault("bucket_cap_mb", args.bucket_cap_mb)
        if name != args_name:  # @tuned: under horovod-tuned's settings, nothing of its own
            kwargs["tune"] = False
        opt = hvd_ext.DistributedOptimizer(opt, named_parameters=model.named_parameters(),
                                           **kwargs)
    return model, opt


def run_round(model, opt, data, target, n, marks=None):
    """n training steps, then flush() where the optimizer has one, so every gradient of the
    round has crossed the wire inside the timed window (a delayed mode's last allreduces
    included). Returns the mean step time of the round (seconds). ``marks``, a list, gets each
    step's (start, backward end, step end) in microseconds since the epoch, the clock of
    Horovod's timeline."""
    t0 = time.perf_counter()
    ours = hasattr(opt, "flush")
    for _ in range(n):
        a = time.time()
        opt.zero_grad()
        (loss := loss_fn(model(data), target)).backward()
        b = time.time()
        opt.step(loss=loss) if ours else opt.step()  # leader modes elect by the loss
        if marks is not None:
            marks.append((a * 1e6, b * 1e6, time.time() * 1e6))
    opt.flush() if ours else None
    return (time.perf_counter() - t0) / n
