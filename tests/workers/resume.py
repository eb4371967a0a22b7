"""Runs on every rank: checkpoint/resume of every mode is bit-identical to an uninterrupted run.

    resume.py full   OUT CKPT_DIR   per mode: an uninterrupted run, then the same run saving a
                                    checkpoint (model + optimizer state_dict) after every step
    resume.py resume OUT CKPT_DIR   per mode and saved step t: a new model and optimizer load
                                    checkpoint t and run the remaining steps

Each rank writes OUT.<rank>: per mode, the parameter trajectory (after every step and after
flush) of each run, as lists, so the test compares them with torch.equal.
"""
import json
import os
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model

STEPS = 7
MODES = {
    "sync_adam_stats": dict(mode="sync", optim="adam", stats=True),
    "delayed": dict(mode=hvd_ext.Delayed(staleness=2, compensation=0.5)),
    "leader_overlap": dict(mode=hvd_ext.Leader(period=3, pull=0.5, overlap=True)),
    "easgd": dict(mode=hvd_ext.EASGD(period=2)),
    "local_sgd": dict(mode=hvd_ext.LocalSGD(period=3), optim="adam"),
    "sync_powersgd": dict(mode="sync", compression=hvd_ext.PowerSGD(rank=2, start_step=2)),
    "sync_int8": dict(mode="sync", compression=hvd_ext.Quantize(bits=8)),
    "delayed_powersgd": dict(mode=hvd_ext.Delayed(staleness=1),
                             compression=hvd_ext.PowerSGD(rank=1, start_step=1)),
    # rounds in flight after steps 3-4 and 6-7 (flushed at the end)
    "diloco_overlap": dict(mode=hvd_ext.DiLoCo(period=3, overlap=2, mix=0.5), optim="adam"),
    # two fragments, rounds in flight after steps 2, 4 and 6, through 4-bit quantization
    "diloco_overlap_int4": dict(mode=hvd_ext.DiLoCo(period=4, fragments=2, overlap=1, mix=0.25),
                                compression=hvd_ext.Quantize(bits=4)),
    "sync_topk": dict(mode="sync", compression=hvd_ext.TopK(density=0.1, bits=2, chunk=64)),
    "diloco_overlap_topk": dict(mode=hvd_ext.DiLoCo(period=4, fragments=2, overlap=1, mix=0.25),
                                compression=hvd_ext.TopK(density=0.2, bits=4, chunk=128)),
}


def build(case):
    model = make_model()
    inner = torch.optim.Adam(model.parameters(), lr=0.05) if case.get("optim") == "adam" else \
        torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    stats = hvd_ext.GradientStats(batch_size=5) if case.get("stats") else None
    opt = hvd_ext.DistributedOptimizer(inner, named_parameters=model.named_parameters(),
                                       mode=case["mode"], stats=stats,
                                       compression=case.get("compression",
                                                            hvd_ext.Compression.none))
    return model, opt


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()


def train(model, opt, first, save_to=None):
    """Steps first..STEPS-1, then flush; returns the parameters after each, and the noise scale."""
    trajectory = []
    for t in range(first, STEPS):
        opt.zero_grad()
        x, y = batch(hvd.rank(), t, 0)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step(loss=loss)
        trajectory.append(flat(model))
        if save_to is not None:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()},
                       save_to.format(t=t + 1))
    opt.flush()
    trajectory.append(flat(model))
    stats = getattr(opt, "gradient_stats", None)
    return dict(trajectory=trajectory, noise_scale=None if stats is None else stats.noise_scale)


def main():
    phase, out, ckpt_dir = sys.argv[1:4]
    hvd.init()
    torch.set_num_threads(1)
    os.makedirs(ckpt_dir, exist_ok=True)
    results = {}
    for name, case in MODES.items():
        path = os.path.join(ckpt_dir, f"{name}.rank{hvd.rank()}.step{{t}}.pt")
        if phase == "full":
            results[name] = {"plain": train(*build(case), 0),
                             "saving": train(*build(case), 0, save_to=path)}
        else:
            results[name] = {}
            for t in range(1, STEPS):
                model, opt = build(case)
                state = torch.load(path.format(t=t))
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["opt"])
                results[name][t] = train(model, opt, t)
    with open(f"{out}.{hvd.rank()}", "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
