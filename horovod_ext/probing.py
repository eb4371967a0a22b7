"""A trace of the user's own model and link: what the advisor's step-time model rests on.

    trace = hvd_ext.probe(model, optimizer, closure, batch_size=32)   # on every rank
    hvd_ext.advise.recommendation(trace)                             # or trace.save(path)

``closure()`` runs one forward and backward of the user's model on a fresh batch (as a training
loop would; it returns the loss); ``optimizer`` is the plain torch optimizer (not yet wrapped).
Each wire format in turn (float32 allreduce of the real gradients, float16 allreduce, 8-bit
quantization's alltoall + allgather, PowerSGD's two allreduces) gets ``steps`` steps, the first
untimed, so that each is measured on the link in its own steady state, as training with it
would load the link. Each step measures, with no communication, the forward + backward, when
each bucket's last gradient is ready (post-accumulate hooks) against the end of backward, the
engine's copies of the gradients into its buckets and back, the codec's own arithmetic and the
optimizer step; on the link, the format's collectives launched as the engine launches them
(each bucket at its ready offset; the buckets planned as the engine plans them, default caps
over the ready order) and the wire left after backward; for float32, the allreduce of all
buckets at once after a compute's pause (a period's end), and for float32 and float16 the
exchange behind a forward and backward (what overlap the cores give). The float32 steps feed a
``GradientStats`` (noise scale). First, ``steps`` local steps back to back (forward, backward,
optimizer step; no communication), as a period of local SGD runs them. The model and optimizer state are restored at the end. Every
number is the median over the timed steps, then the maximum over ranks.
"""
import copy
import json
import math
import statistics
import time

import horovod.torch as hvd
import torch
from horovod.torch.mpi_ops import Average, Max, Sum

from horovod_ext import checks
from horovod_ext.codecs import quantize
from horovod_ext.codecs.powersgd import PowerSGD, factors, orthonormalize, wire_numels
from horovod_ext.engine.plan import bucket_caps, plan_buckets
from horovod_ext.stats import GradientStats

FORMATS = ("fp32", "fp16", "int8", "powersgd")
INT8 = quantize.Quantize(bits=8)
POWERSGD = PowerSGD(rank=4)


class Trace(dict):
    """The probe's measurements (a dict; ``save(path)`` writes it as JSON)."""

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self, f, indent=1)


def _clock():
    return time.perf_counter() * 1e3


def _spin(ms):
    end = _clock() + ms
    while _clock() < end:
        pass


def _phases(fmt, flats, plan_mats):
    """The collectives of wire format ``fmt`` for these buckets, as phases (a phase starts when
    the one before has finished): lists of (kind, tensor), one per bucket."""
    n = hvd.size()
    if fmt == "fp32":
        return [[("average", f) for f in flats]]
    if fmt == "fp16":
        return [[("sum", f.half()) for f in flats]]
    if fmt == "int8":
        sizes = [sum(quantize.piece_layout(f.numel(), n, 8, INT8.chunk)[2:]) for f in flats]
        return [[("alltoall", torch.zeros(n, s, dtype=torch.uint8)) for s in sizes],
                [("allgather", torch.zeros(1, s, dtype=torch.uint8)) for s in sizes]]
    sizes = [wire_numels(mats, whole) for mats, whole in plan_mats]
    return [[("average", torch.zeros(max(1, p))) for p, _ in sizes],
            [("average", torch.zeros(max(1, q))) for _, q in sizes]]


def _start(kind, tensor, name):
    if kind == "alltoall":
        return hvd.alltoall_async(tensor, name=name)
    if kind == "allgather":
        return hvd.allgather_async(tensor, name=name)
    return hvd.allreduce_async_(tensor, name=name, op=Average if kind == "average" else Sum)


def _exchange(phases, tag, gaps=None, meanwhile=None):
    """Runs the phases: the first phase's collectives launched ``gaps`` ms apart (the engine's
    launch pattern: each bucket when its last gradient is ready), or all at once, then
    ``meanwhile()`` (compute overlapping the wire), then the later phases. Returns (ms from
    the first launch to the end, the first phase's tensors)."""
    t = _clock()
    handles = []
    for i, (kind, tensor) in enumerate(phases[0]):
        _spin(gaps[i] if gaps else 0.0)
        handles.append(_start(kind, tensor, f"{tag}.0.{i}"))
    if meanwhile is not None:
        meanwhile()
    first = [hvd.synchronize(h) for h in handles]
    for j, phase in enumerate(phases[1:], 1):
        for h in [_start(k, x, f"{tag}.{j}.{i}") for i, (k, x) in enumerate(phase)]:
            hvd.synchronize(h)  # all launched before the first wait
    return _clock() - t, first


def _codec_arithmetic(fmt, flats, mats):
    """Milliseconds of codec ``fmt``'s own work on these buckets (no communication)."""
    t = _clock()
    if fmt == "fp16":
        for f in flats:
            f.copy_(f.half())
    elif fmt == "int8":
        n = hvd.size()
        for f in flats:
            s, c, payload, scales = quantize.piece_layout(f.numel(), n, 8, INT8.chunk)
            piece, padded = torch.empty(payload + scales, dtype=torch.uint8), torch.zeros(s * n)
            padded[:f.numel()] = f
            for j in range(n):  # the shards out, the owner's sum back, every shard in
                quantize.encode(padded[j * s:(j + 1) * s], None, piece, 8, c)
                quantize.decode(piece, padded[j * s:(j + 1) * s], 8, c, 1.0, j > 0)
            quantize.encode(padded[:s], None, piece, 8, c)
            for j in range(n):
                quantize.decode(piece, padded[j * s:(j + 1) * s], 8, c)
    elif fmt == "powersgd":
        for g in mats:  # P = M Q, orthonormalized; Q = M^T P; the error and the update
            p = g @ torch.randn(g.shape[1], POWERSGD.rank)
            orthonormalize(p)
            q = g.t() @ p
            g.sub_(p @ q.t())
            g.copy_(p @ q.t())
    return _clock() - t


def probe(model, optimizer, closure, batch_size, steps=8):
    """Measures ``steps`` steps of ``model`` (see the module docstring); returns a Trace. Every
    rank must call it, with the same model."""
    checks.positive_int("probe.batch_size", batch_size)
    if not callable(closure):
        raise ValueError(f"probe.closure must be callable (one forward and backward); got "
                         f"{type(closure).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 3:
        raise ValueError(f"probe.steps must be an int >= 3 (the first is untimed); got {steps!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    saved = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    ready = {}
    hooks = [p.register_post_accumulate_grad_hook(lambda p: ready.__setitem__(p, _clock()))
             for p in params]
    stats = GradientStats(batch_size=batch_size)
    if hvd.size() > 1:
        stats.attach(hvd.size())
    samples, planned = {}, {}
    try:
        for step in range(steps):  # local steps back to back, as a period's are
            optimizer.zero_grad()
            t = _clock()
            closure()
            optimizer.step()
            if step:
                samples.setdefault("local_step", []).append(_clock() - t)
        for fmt in FORMATS:  # one format at a time: each on the link in its own steady state
            for step in range(steps):
                got = _step(params, optimizer, closure, ready, planned, fmt)
                if step == 0:
                    continue
                if stats.ranks and fmt == "fp32":
                    local = hvd.allreduce(torch.tensor(got.pop("local")), op=Average,
                                          name="probe.local").item()
                    stats.observe(step, local, got.pop("global"))
                for k, v in got.items():
                    samples.setdefault(k, []).append(v)
    finally:
        for h in hooks:
            h.remove()
        model.load_state_dict(saved[0])
        optimizer.load_state_dict(saved[1])
    worst = _agree({k: statistics.median(v) for k, v in samples.items()})
    plan = planned["plan"]
    return Trace(
        ranks=hvd.size(), batch_size=batch_size, steps=steps - 1,
        compute_ms={k: worst[k] for k in ("forward_backward", "optimizer_step", "pack_unpack",
                                           "local_step")},
        **{group + "_ms": {f: worst[f"{group}_{f}"] for f in FORMATS if f"{group}_{f}" in worst}
           for group in ("exposed", "wire", "overlapped", "codec")},
        buckets=[{"bytes": sum(params[i].numel() * params[i].element_size() for i in b),
                  "ready_ms": worst[f"ready_{j}"]} for j, b in enumerate(plan)],
        stats=stats.to_json() if stats.ranks else None)


def _step(params, optimizer, closure, ready, planned, fmt):
    """One probed step with wire format ``fmt``: its measurements by name (and, for float32,
    the gradient norms: local, global). The first step plans the buckets into ``planned``."""
    optimizer.zero_grad()
    ready.clear()
    t0 = _clock()
    closure()
    t1 = _clock()
    out = {"forward_backward": t1 - t0}
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten()
             for p in params]  # a parameter the forward did not use: zeros, as the engine sends
    if not planned:  # the engine's plan over the first rank's ready order, as on its first step
        order = hvd.broadcast_object(
            sorted(range(len(params)), key=lambda i: ready.get(params[i], t1)), root_rank=0,
            name="probe.order")
        total = sum(p.numel() * p.element_size() for p in params)
        plan = plan_buckets([p.numel() for p in params], [p.element_size() for p in params],
                            [(p.dtype, p.device) for p in params], order,
                            *bucket_caps(None, None, total))
        mats = [factors(POWERSGD, [params[i].shape for i in b]) for b in plan]
        planned.update(plan=plan, mats=[(m, sum(params[b[k]].numel() for k in whole))
                                        for b, (m, whole) in zip(plan, mats)],
                       matrices=factors(POWERSGD, [p.shape for p in params])[0])
    plan, plan_mats = planned["plan"], planned["mats"]
    offsets = [max(ready.get(params[i], t1) for i in b) - t1 for b in plan]
    by_ready = sorted(range(len(plan)), key=lambda j: offsets[j])
    gaps = [0.0] + [offsets[b] - offsets[a] for a, b in zip(by_ready, by_ready[1:])]
    t = _clock()  # the engine's copies: gradients into the buckets and back (two copies)
    flats = [torch.cat([grads[i] for i in plan[j]]) for j in by_ready]
    for j, f in zip(by_ready, flats):
        torch.cat([grads[i] for i in plan[j]], out=f)
    out["pack_unpack"] = _clock() - t
    mats_of = [plan_mats[j] for j in by_ready]
    local = sum(f.pow(2).sum().item() for f in flats)  # before the allreduce averages them
    total, first = _exchange(_phases(fmt, flats, mats_of), f"probe.e.{fmt}", gaps)
    out["exposed_" + fmt] = max(0.0, total + offsets[by_ready[0]])
    if fmt == "fp32":
        out["local"] = local
        out["global"] = sum(f.pow(2).sum().item() for f in first)
        time.sleep(out["forward_backward"] / 1e3)  # a compute's pause, as at a period's end
        out["wire_fp32"] = _exchange(_phases("fp32", flats, mats_of), "probe.w")[0]
    if fmt in ("fp32", "fp16"):  # behind the next step's forward and backward
        optimizer.zero_grad()
        out["overlapped_" + fmt] = _exchange(_phases(fmt, flats, mats_of), f"probe.o.{fmt}",
                                             meanwhile=closure)[0]
    mats = [grads[k].clone().view(n, m) for k, n, m, _ in planned["matrices"]]
    out["codec_" + fmt] = _codec_arithmetic(fmt, [f.clone() for f in flats], mats)
    for j, off in enumerate(offsets):
        out[f"ready_{j}"] = off
    t2 = _clock()
    optimizer.step()
    out["optimizer_step"] = _clock() - t2
    return out


def _agree(values):
    """The maximum over ranks of each value (a dict of floats), in one allreduce."""
    keys = sorted(values)
    t = hvd.allreduce(torch.tensor([values[k] for k in keys], dtype=torch.float64), op=Max,
                      name="probe.agree")
    return {k: v for k, v in zip(keys, t.tolist()) if math.isfinite(v)}
