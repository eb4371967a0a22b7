"""One rank (``horovodrun -np 1``) on a GPU: two training steps per mode with the model on the
device, run on a side stream (so an allreduce that did not wait for backward's stream would read
unfinished gradients), against the same steps in float64 on the CPU. Writes JSON to argv[1].

    horovodrun -np 1 python tests/workers/gpu_step.py OUT.json [--device cuda]

Per case: the largest relative parameter difference from the float64 reference, the number of
buckets, and (fp16 compression) the launches of the cast kernel per step: one pack at launch and
one unpack at wait per bucket is the target.
"""
import copy
import json
import sys
from contextlib import nullcontext

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext

LR = 0.1
CASES = {  # name: (mode, compression, float64 reference applies the gradient of step t - delay)
    "sync": (hvd_ext.Sync(), hvd_ext.Compression.none, 0),
    "sync_fp16": (hvd_ext.Sync(), hvd_ext.Compression.fp16, 0),
    "delayed": (hvd_ext.Delayed(staleness=1), hvd_ext.Compression.none, 1),
    "local_sgd": (hvd_ext.LocalSGD(period=1), hvd_ext.Compression.none, 0),
}


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


def batch(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(64, 256, generator=g), torch.randint(0, 10, (64,), generator=g)


def reference(delay, steps=2):
    """Plain SGD in float64 on the CPU, applying the gradient of step t - delay (then flush)."""
    model = make_model().double()
    queue = []
    for step in range(steps):
        x, y = batch(step)
        model.zero_grad()
        F.cross_entropy(model(x.double()), y).backward()
        queue.append([p.grad.clone() for p in model.parameters()])
        if len(queue) > delay:
            apply(model, queue.pop(0))
    for grads in queue:
        apply(model, grads)
    return model


def apply(model, grads):
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p -= LR * g


def run(device, mode, compression, profile):
    model = make_model().to(device)
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=LR),
                                       named_parameters=model.named_parameters(), mode=mode,
                                       compression=compression)
    side = torch.cuda.Stream() if device == "cuda" else None
    launches = None
    for step in range(2):
        x, y = (t.to(device) for t in batch(step))
        with torch.cuda.stream(side) if side is not None else nullcontext():
            if profile and step == 1:
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    train_step(model, opt, x, y)
                    torch.cuda.synchronize()
                launches = sum(e.count for e in prof.key_averages() if "scale_copy" in e.key)
            else:
                train_step(model, opt, x, y)
    opt.flush()
    if device == "cuda":
        torch.cuda.synchronize()
    engine = getattr(opt._mode_object, "engine", None)
    return model, (engine.bucket_count if engine is not None else None), launches


def train_step(model, opt, x, y):
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def main():
    out = sys.argv[1]
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cuda"
    hvd.init()
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    for name, (mode, compression, delay) in CASES.items():
        profile = name == "sync_fp16" and device == "cuda"
        model, buckets, launches = run(device, copy.deepcopy(mode), compression, profile)
        ref = reference(delay)
        err = max(((a.detach().double().cpu() - b).abs().max() / b.abs().max()).item()
                  for a, b in zip(model.parameters(), ref.parameters()))
        results[name] = dict(rel_err=err, buckets=buckets, cast_launches_per_step=launches,
                             tol=2e-3 if compression is hvd_ext.Compression.fp16 else 1e-4)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    bad = [n for n, r in results.items() if isinstance(r, dict) and r["rel_err"] > r["tol"]]
    print(json.dumps(results, indent=1))
    sys.exit(f"differ from the float64 reference: {bad}" if bad else 0)


if __name__ == "__main__":
    main()
