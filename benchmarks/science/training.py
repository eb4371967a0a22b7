"""What the MNIST science scripts share: data-parallel training epochs with a cosine schedule,
test accuracy, and writing the results (JSON, and a PNG beside it) on rank 0."""
import json
import math
import os
import time

import horovod.torch as hvd
import torch
import torch.nn.functional as F

from benchmarks.record import provenance, stored_path


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train_epochs(model, opt, x, y, batch_size, epochs, lr, after_epoch):
    """Trains ``epochs`` epochs: each epoch shuffles the training set the same way on every rank
    (seeded by the epoch), rank r takes slice r of each global batch of ``batch_size`` per rank,
    and the learning rate follows one cosine schedule over all steps. ``opt.step(loss=loss)``,
    so the leader modes see the loss. After each epoch calls ``after_epoch(epoch, steps,
    seconds, losses)``: steps so far, this epoch's training seconds, its per-step losses."""
    n, r = hvd.size(), hvd.rank()
    steps_per_epoch = len(y) // (batch_size * n)
    total, step = steps_per_epoch * epochs, 0
    for epoch in range(epochs):
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        losses, t0 = [], time.perf_counter()
        for i in range(steps_per_epoch):
            idx = perm[(i * n + r) * batch_size:(i * n + r + 1) * batch_size]
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step(loss=loss)
            losses.append(loss.item())
            step += 1
        after_epoch(epoch, step, time.perf_counter() - t0, losses)


def write_results(out, path, plot):
    """Rank 0 writes ``out`` as JSON to ``path`` and ``plot(out, png)`` beside it."""
    if hvd.rank() != 0:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    out = dict(out, config=dict(out.get("config", {}), provenance=provenance()))
    if isinstance(out["config"].get("json"), str):
        out = dict(out, config=dict(out["config"], json=stored_path(out["config"]["json"])))
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    plot(out, os.path.splitext(path)[0] + ".png")
