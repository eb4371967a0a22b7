"""One probe of a model on the link it runs on (``horovod_ext.advisor.probing``), written as a trace.

    horovodrun --gloo -np 2 python -m benchmarks.advisor_probe --model chars --json trace.json

Any model of models.py with its inner optimizer and batch (throughput.py's); the text model
draws its batches from the real text (its noise scale needs real data), the others from
make_batch. Rank 0 writes the trace.
"""
import argparse
import json
import os

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from benchmarks.models import MODELS, TEXT_SHAPE, inner_optimizer, make_batch


def batches(name, batch):
    """A function giving (inputs, targets) of one rank's batch."""
    g = torch.Generator().manual_seed(1000 + hvd.rank())
    if name != "chars":
        return lambda: make_batch(name, batch, g)
    from benchmarks.tasks import task
    _, x, y, *_ = task("chars", **TEXT_SHAPE)

    def draw():
        idx = torch.randint(0, len(y), (batch,), generator=g)
        return x[idx], y[idx]
    return draw


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="chars", choices=sorted(MODELS))
    p.add_argument("--batch", type=int, default=32, help="samples per rank per step")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--json", required=True)
    args = p.parse_args()
    hvd.init()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(0)
    model = MODELS[args.model]()
    opt = inner_optimizer(args.model, model.parameters(), hvd.size())
    draw = batches(args.model, args.batch)

    def closure():
        x, y = draw()
        out = model(x)
        loss = F.cross_entropy(out.flatten(0, -2) if out.dim() > 2 else out, y.flatten())
        loss.backward()
        return loss

    trace = hvd_ext.probe(model, opt, closure, batch_size=args.batch, steps=args.steps)
    if hvd.rank() == 0:
        trace["model"] = args.model
        trace.save(args.json)
        print(json.dumps({k: trace[k] for k in ("compute_ms", "wire_ms", "codec_ms")}))


if __name__ == "__main__":
    main()
