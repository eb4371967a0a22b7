"""The optimizers users would pick instead of ours, built for throughput.py: one registry entry
per peer (REGISTRY): Horovod as it comes, Horovod tuned for the cell (fusion threshold and cycle
time), Horovod with its fp16 compression, PyTorch DDP on Gloo, and DDP with its fp16 and PowerSGD
communication hooks.

Horovod's fusion threshold and cycle time are changed at run time through
``horovod_ext.runtime.horovod_knobs`` (the Horovod build of scripts/install_horovod.sh), so one job can
time Horovod with its defaults and tuned in alternating rounds. The tuned values
are the best of GRID, measured on this cell in the same job before the timed rounds.
"""
import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import horovod.torch as hvd
import torch

from benchmarks import torchft_peer

from horovod_ext.runtime.horovod_knobs import has_setter, set_knobs, started_with

GRID = list(itertools.product((1, 8, 128), (1.0, 5.0, 20.0)))  # (fusion MB, cycle ms)
SETTER_NEEDED = ("horovod-tuned skipped: it needs the Horovod build of scripts/install_horovod.sh "
                 "(HOROVOD_EXT_BUILD_HOROVOD=1 bash scripts/install_horovod.sh adds the fusion "
                 "setter)")


def _setter():
    if not has_setter():
        raise SystemExit(SETTER_NEEDED)


class TunedHorovod:
    """Horovod's DistributedOptimizer run under the best (fusion MB, cycle ms) of GRID."""

    def __init__(self):
        _setter()
        self.best = started_with()
        self.tried = {}

    def tune(self, run_steps, steps=2):
        """Times ``run_steps(steps)`` under every setting of GRID (averaged over ranks, so every
        rank picks the same) and keeps the fastest."""
        times = []
        for fusion, cycle in GRID:
            set_knobs(fusion, cycle)
            t0 = time.perf_counter()
            run_steps(steps)
            times.append((time.perf_counter() - t0) / steps)
        set_knobs(*started_with())
        mean = hvd.allreduce(torch.tensor(times), name="peers.tune").tolist()
        self.tried = {f"{f}MB/{c}ms": t * 1e3 for (f, c), t in zip(GRID, mean)}
        self.best = GRID[min(range(len(GRID)), key=mean.__getitem__)]

    @contextlib.contextmanager
    def applied(self):
        set_knobs(*self.best)
        try:
            yield
        finally:
            set_knobs(*started_with())

    def describe(self):
        return {"fusion_mb": self.best[0], "cycle_ms": self.best[1], "grid_ms": self.tried}


def init_ddp():
    """torch.distributed on Gloo over the ranks Horovod started (its rank and size; rank 0's
    address and a free port agreed through Horovod). The interface is Horovod's Gloo one where
    horovodrun names it (the benchmark's namespaces), else the loopback."""
    import socket

    import torch.distributed as dist
    if dist.is_initialized():
        return
    os.environ.setdefault("GLOO_SOCKET_IFNAME", os.environ.get("HOROVOD_GLOO_IFACE", "lo"))
    addr = port = None
    if hvd.rank() == 0:
        host = os.environ.get("HOROVOD_HOSTNAME", "127.0.0.1")
        addr = "127.0.0.1" if host in ("localhost", "") else host
        with socket.socket() as s:
            s.bind((addr, 0))
            port = s.getsockname()[1]
    addr, port = hvd.broadcast_object((addr, port), root_rank=0, name="peers.ddp_address")
    dist.init_process_group("gloo", init_method=f"tcp://{addr}:{port}", rank=hvd.rank(),
                            world_size=hvd.size())


def make_ddp(model):
    """DDP as its documentation sets it up: default 25 MB buckets, gradients as bucket views."""
    init_ddp()
    return torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=25,
                                                     gradient_as_bucket_view=True)


def make_ddp_fp16(model):
    """DDP with ``fp16_compress_hook``: each bucket cast to fp16, averaged, cast back."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    ddp = make_ddp(model)
    ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
    return ddp


# DDP + PowerSGD's settings, for its training runs and its step times alike: rank 4, whole
# gradients for the first 10 steps as our PowerSGD's default, error feedback and warm start on.
DDP_POWERSGD = dict(matrix_approximation_rank=4, start_powerSGD_iter=10, min_compression_rate=2)


def make_ddp_powersgd(model):
    """DDP with ``powerSGD_hook`` at ``DDP_POWERSGD``, as its documentation sets it up."""
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook
    ddp = make_ddp(model)
    state = powerSGD_hook.PowerSGDState(process_group=None, **DDP_POWERSGD)
    ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
    return ddp


_SOLO = []  # this rank's subgroup of one (created once: every rank takes part)


def make_ddp_postlocalsgd(period):
    """DDP's own local SGD, as PyTorch documents it: ``post_localSGD_hook`` with each rank its own
    subgroup (so no gradient leaves the rank) from the first step, and
    ``PostLocalSGDOptimizer(PeriodicModelAverager(period))``, which averages the parameters over
    all ranks after steps 1, period + 1, 2 period + 1, ... (our ``LocalSGD`` after steps period,
    2 period, ...: the same math but for the phase)."""
    def wrap(model, opt):
        import torch.distributed as dist
        from torch.distributed.algorithms.ddp_comm_hooks import post_localSGD_hook as hook
        from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager
        from torch.distributed.optim import PostLocalSGDOptimizer
        ddp = make_ddp(model)
        if not _SOLO:
            _SOLO.append(dist.new_subgroups(group_size=1)[0])
        state = hook.PostLocalSGDState(process_group=None, subgroup=_SOLO[0],
                                       start_localSGD_iter=0)
        ddp.register_comm_hook(state, hook.post_localSGD_hook)
        return ddp, PostLocalSGDOptimizer(opt, PeriodicModelAverager(period=period,
                                                                     warmup_steps=0))
    return wrap


@dataclass(frozen=True)
class Peer:
    """A peer: ``wrap(model, optimizer)`` returns what the training loop uses: (model, optimizer);
    ``label`` names the optimizer; ``tuned``: runs under TunedHorovod's setting; ``wire``: the
    bytes it sends per step as a fraction of a float32 allreduce of every gradient (None: not
    known without reading the hook's state). How it trains: ``trains``, the method of ours with
    the same math (a catalog name: its training run is that method's), or None for a training
    run of its own, through ``wrap``; ``warmup``: steps before its steady state (the step times
    are taken after them); ``rounds``: (period, steps an outer round's exchange runs behind) of
    a local-update peer, else None; ``missing()``: why it cannot run here (one line), or None."""

    label: str
    wrap: Callable
    tuned: bool = False
    wire: float = 1.0
    trains: Optional[str] = None
    warmup: int = 0
    rounds: Optional[Tuple[int, int]] = None
    missing: Callable[[], Optional[str]] = lambda: None


def _horovod(compression=None):
    def wrap(model, opt):
        kwargs = {} if compression is None else {"compression": compression}
        return model, hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(),
                                               **kwargs)
    return wrap


def _ddp(make):
    return lambda model, opt: (make(model), opt)


# Horovod's average is Sync's to the bit (the equality tests), DDP's alike; Horovod + fp16 is
# Horovod's Compression.fp16 either way; DDP's hooks round differently and train on their own.
REGISTRY = {
    "horovod": Peer("hvd.DistributedOptimizer", _horovod(), trains="sync"),
    "horovod-tuned": Peer("hvd.DistributedOptimizer", _horovod(), tuned=True, trains="sync"),
    "horovod-fp16": Peer("hvd.DistributedOptimizer + Compression.fp16",
                         _horovod(hvd.Compression.fp16), wire=0.5, trains="sync+fp16"),
    "ddp": Peer("DistributedDataParallel", _ddp(make_ddp), trains="sync"),
    "ddp-fp16": Peer("DistributedDataParallel + fp16_compress_hook", _ddp(make_ddp_fp16),
                     wire=0.5),
    "ddp-powersgd": Peer("DistributedDataParallel + powerSGD_hook (rank 4)",
                         _ddp(make_ddp_powersgd), wire=None,
                         warmup=DDP_POWERSGD["start_powerSGD_iter"]),
    # DDP's local SGD at the periods of ours (localsgd-H4 in the step-time harness, H8, H16, H32
    # and H128 in the training grid)
    **{f"ddp-postlocalsgd-H{k}": Peer(f"DistributedDataParallel + post_localSGD_hook + "
                                      f"PostLocalSGDOptimizer (period {k})",
                                      make_ddp_postlocalsgd(k), wire=1 / k, rounds=(k, 0))
       for k in (4, 8, 16, 32, 128)},
    # torchft's local SGD and DiLoCo (outer Nesterov SGD lr 1.0, momentum 0.5, as ours), and its
    # Streaming DiLoCo: 2 fragments, each exchange overlapping 1 inner step, mixed at 0.5
    **{f"torchft-localsgd-H{k}": Peer(f"torchft LocalSGD (sync_every {k})",
                                      torchft_peer.local_sgd(k), wire=1 / k, rounds=(k, 0),
                                      missing=torchft_peer.missing)
       for k in (4, 8, 16, 32, 128)},
    **{f"torchft-diloco-H{k}": Peer(f"torchft DiLoCo (sync_every {k})", torchft_peer.diloco(k),
                                    wire=1 / k, rounds=(k, 0), missing=torchft_peer.missing)
       for k in (4, 8, 16, 32, 128)},
    # (and with each exchange overlapping a quarter of the period: -t<delay>)
    **{f"torchft-streaming-H{k}{'' if d == 1 else f'-t{d}'}": Peer(
        f"torchft Streaming DiLoCo (sync_every {k}, 2 fragments, fragment_sync_delay {d}, "
        f"fragment_update_alpha 0.5)", torchft_peer.diloco(k, 2, d, 0.5), wire=1 / k,
        rounds=(k, d), missing=torchft_peer.missing) for k, d in ((8, 1), (32, 1), (32, 8), (128, 32))},
}
# the names the stored training runs gave the peers that train on their own
STORED_AS = {"ddp_powersgd_r4": "ddp-powersgd", "ddp_fp16": "ddp-fp16"}


def library(name):
    """The library peer ``name`` comes from, in words: Horovod, PyTorch DDP or torchft."""
    label = REGISTRY[name].label
    return "Horovod" if label.startswith("hvd.") else \
        "torchft" if label.startswith("torchft") else "PyTorch DDP"


def tuned_name():
    """The name of the registry's peer that runs under TunedHorovod's setting (there is one)."""
    (name,) = [n for n, p in REGISTRY.items() if p.tuned]
    return name
