"""A trace of the user's own model and link: what the advisor's step-time model rests on.

    trace = hvd_ext.probe(model, optimizer, closure, batch_size=32)   # on every rank
    hvd_ext.advise.recommendation(trace)                             # or trace.save(path)

``closure()`` runs one forward and backward of the user's model on a fresh batch (as a training
loop would; it returns the loss); ``optimizer`` is the plain torch optimizer (not yet wrapped).
Each wire format in turn (float32 allreduce of the real gradients, then every codec named with
``probe=True``: float16, 8-bit quantization, PowerSGD) gets ``steps`` steps, the first untimed,
so that each is measured on the link in its own steady state, as training with it would load
the link. Each step measures, with no communication, the forward + backward, when each bucket's
last gradient is ready (post-accumulate hooks) against the end of backward, the engine's copies
of the gradients into its buckets and back, the codec's own arithmetic (its exchange replayed on
this process, ``codecs.replay``) and the optimizer step; on the link, the collectives that
replay issued, launched as the engine launches them (each bucket at its ready offset; the
buckets planned as the engine plans them, default caps over the ready order) and the wire left
after backward; for float32 and float16, the exchange behind a forward and backward (what
overlap the cores give). The float32 steps feed a ``GradientStats`` (noise scale). First,
``steps`` local steps back to back (forward, backward, optimizer step; no communication), as a
period of local SGD runs them; then ``steps`` outer rounds in each wire format the advisor's
periodic candidates send (float32, 4-bit, top-k): after a compute's pause (a period's end), all
parameters through the codec (its arithmetic) and over the link at once; last, each periodic
candidate trained for whole periods with its own rounds (``timed_rounds``). The model and
optimizer state are restored at the end. Every number is the median over the timed steps, then
the maximum over ranks.
"""
import copy
import json
import math
import statistics
import time
from dataclasses import replace
from types import SimpleNamespace

import horovod.torch as hvd
import torch
from horovod.torch.compression import Compression
from horovod.torch.mpi_ops import Average, Max

from horovod_ext.advisor import recommend
from horovod_ext.advisor.timed_rounds import timed_rounds
from horovod_ext.codecs import NAMED, BucketView, codec_for, replay
from horovod_ext.engine.plan import bucket_caps, plan_buckets
from horovod_ext.modes.flats import ParamFlats
from horovod_ext.runtime import checks
from horovod_ext.stats import GradientStats

STEADY = 1 << 20  # the step a codec is replayed at: past any warm-up (PowerSGD's start_step)


def formats():
    """Wire format -> codec: float32 (Horovod's allreduce) and every codec named with
    ``probe=True`` (codecs/__init__.py)."""
    out = {"fp32": codec_for(Compression.none)}
    out.update({name: codec_for(c.make()) for name, c in NAMED.items() if c.probe})
    return out


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


def _exchange(phases, tag, gaps=None, meanwhile=None):
    """Runs the phases (lists of ``Collective``s, one per bucket; a phase starts when the one
    before has finished): the first phase's collectives launched ``gaps`` ms apart (the
    engine's launch pattern: each bucket when its last gradient is ready), or all at once, then
    ``meanwhile()`` (compute overlapping the wire), then the later phases. Returns (ms from
    the first launch to the end, the first phase's outputs)."""
    ps = hvd.global_process_set
    t = _clock()
    handles = []
    for i, c in enumerate(phases[0]):
        _spin(gaps[i] if gaps else 0.0)
        handles.append(replace(c, name=f"{tag}.0.{i}").launch(ps))
    if meanwhile is not None:
        meanwhile()
    first = [hvd.synchronize(h) for h in handles]
    for j, phase in enumerate(phases[1:], 1):
        for h in [replace(c, name=f"{tag}.{j}.{i}").launch(ps) for i, c in enumerate(phase)]:
            hvd.synchronize(h)  # all launched before the first wait
    return _clock() - t, first


def _codec_phases(codec, views, flats):
    """The codec's own arithmetic on these buckets, replayed on this process (ms), and its
    collectives as phases: phase j holds each bucket's j-th collective."""
    st = SimpleNamespace(op=Average, gradient_predivide_factor=1.0,
                         process_set=hvd.global_process_set)
    for v, f in zip(views, flats):
        v.flat.copy_(f)
    t = _clock()
    done = [replay(codec, v, st, STEADY) for v in views]
    ms = _clock() - t
    return ms, [[d[j] for d in done if len(d) > j] for j in range(max(map(len, done)))]


def probe(model, optimizer, closure, batch_size, steps=8, rounds=True):
    """Measures ``steps`` steps of ``model`` (see the module docstring); returns a Trace. Every
    rank must call it, with the same model. ``rounds``: also time the periodic candidates'
    own rounds (``timed_rounds``; the longest part of the probe)."""
    checks.positive_int("probe.batch_size", batch_size)
    if not callable(closure):
        raise ValueError(f"probe.closure must be callable (one forward and backward); got "
                         f"{type(closure).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 3:
        raise ValueError(f"probe.steps must be an int >= 3 (the first is untimed); got {steps!r}")
    if not isinstance(rounds, bool):
        raise ValueError(f"probe.rounds must be True or False; got {rounds!r}")
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
        for fmt, codec in formats().items():  # one at a time: each on the link in its own
            for step in range(steps):          # steady state
                got = _step(params, optimizer, closure, ready, planned, fmt, codec)
                if step == 0:
                    continue
                if stats.ranks and fmt == "fp32":
                    local = hvd.allreduce(torch.tensor(got.pop("local")), op=Average,
                                          name="probe.local").item()
                    stats.observe(step, local, got.pop("global"))
                for k, v in got.items():
                    samples.setdefault(k, []).append(v)
        pause = statistics.median(samples["forward_backward"])
        for fmt, codec in round_formats().items():  # a period's round in each wire format
            for step in range(steps):
                got = _round(params, fmt, codec, planned, pause)
                for k, v in got.items() if step else ():  # the first untimed
                    samples.setdefault(k, []).append(v)
        for h in hooks:  # no hook while the candidates train (removed again below: harmless)
            h.remove()
        periodic = timed_rounds(model, optimizer, closure) if rounds else {}
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
        **{group + "_ms": {f: worst[f"{group}_{f}"] for f in fmts if f"{group}_{f}" in worst}
           for group, fmts in (("exposed", formats()), ("overlapped", formats()),
                               ("codec", formats()), ("wire", round_formats()),
                               ("round_codec", round_formats()))},
        buckets=[{"bytes": sum(params[i].numel() * params[i].element_size() for i in b),
                  "ready_ms": worst[f"ready_{j}"]} for j, b in enumerate(plan)],
        stats=stats.to_json() if stats.ranks else None, periodic_ms=periodic)


def round_formats():
    """Wire format -> codec of the outer rounds the advisor's periodic candidates send
    (``recommend.round_codecs``): float32, 4-bit, top-k."""
    return {f: codec_for(c if c is not None else Compression.none)
            for f, c in recommend.round_codecs().items()}


def _round(params, fmt, codec, made, pause_ms):
    """One period's round in wire format ``fmt``: after a compute's pause, the parameters (one
    flat per dtype and device, as a round sends them: ``ParamFlats``) through the codec (its
    arithmetic on this process: ``round_codec_<fmt>``) and over the link all at once
    (``wire_<fmt>``). The flats and each format's views are made once, in ``made``."""
    if "flats" not in made:
        made["flats"] = ParamFlats(params)
    flats = made["flats"]
    if ("round", fmt) not in made:
        made["round", fmt] = [BucketView(j, f, [p.shape for p in ps])
                              for j, (f, (ps, _, _)) in enumerate(zip(flats.empty(), flats.groups))]
        for v in made["round", fmt]:
            v.state = codec.new_state(v)
    sent = flats.empty()
    flats.copy_params_to(sent)
    time.sleep(pause_ms / 1e3)
    arithmetic, phases = _codec_phases(codec, made["round", fmt], sent)
    return {f"round_codec_{fmt}": arithmetic,
            f"wire_{fmt}": _exchange(phases, f"probe.r.{fmt}")[0]}


def _step(params, optimizer, closure, ready, planned, fmt, codec):
    """One probed step with wire format ``fmt`` (``codec``): its measurements by name (and, for
    float32, the gradient norms: local, global). The first step plans the buckets into
    ``planned``, the first of each format makes its bucket views there."""
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
        planned["plan"] = plan_buckets([p.numel() for p in params],
                                       [p.element_size() for p in params],
                                       [(p.dtype, p.device) for p in params], order,
                                       *bucket_caps(None, None, total))
    plan = planned["plan"]
    offsets = [max(ready.get(params[i], t1) for i in b) - t1 for b in plan]
    by_ready = sorted(range(len(plan)), key=lambda j: offsets[j])
    gaps = [0.0] + [offsets[b] - offsets[a] for a, b in zip(by_ready, by_ready[1:])]
    t = _clock()  # the engine's copies: gradients into the buckets and back (two copies)
    flats = [torch.cat([grads[i] for i in plan[j]]) for j in by_ready]
    for j, f in zip(by_ready, flats):
        torch.cat([grads[i] for i in plan[j]], out=f)
    out["pack_unpack"] = _clock() - t
    local = sum(f.pow(2).sum().item() for f in flats)  # before the allreduce averages them
    if fmt not in planned:
        planned[fmt] = [BucketView(j, torch.empty_like(f), [params[i].shape for i in plan[j]])
                        for j, f in zip(by_ready, flats)]
        for v in planned[fmt]:
            v.state = codec.new_state(v)
    out["codec_" + fmt], phases = _codec_phases(codec, planned[fmt], flats)
    total, first = _exchange(phases, f"probe.e.{fmt}", gaps)
    out["exposed_" + fmt] = max(0.0, total + offsets[by_ready[0]])
    if fmt == "fp32":
        out["local"] = local
        out["global"] = sum(f.pow(2).sum().item() for f in first)
    if fmt in ("fp32", "fp16"):  # behind the next step's forward and backward
        optimizer.zero_grad()
        out["overlapped_" + fmt] = _exchange(phases, f"probe.o.{fmt}", meanwhile=closure)[0]
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
