"""DiLoCo (Douillard et al. 2023): each rank takes ``period`` local AdamW steps, then the ranks
average their parameter change and take an outer Nesterov step; optionally the change crosses
the wire compressed (``--compression fp16|powersgd|int8``).

    horovodrun -np 2 python examples/diloco.py --steps 256 --period 32

The model to evaluate is the outer one, shown by ``consensus_params()``; ``bytes_sent`` counts
what this rank sent.
"""
import argparse

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext

COMPRESSION = {"none": hvd_ext.Compression.none, "fp16": hvd_ext.Compression.fp16,
               "powersgd": hvd_ext.PowerSGD(rank=4, start_step=0), "int8": hvd_ext.Quantize()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--period", type=int, default=32, help="local steps between rounds")
    p.add_argument("--compression", choices=sorted(COMPRESSION), default="none")
    args = p.parse_args()

    hvd.init()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 4))
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    opt = hvd_ext.DistributedOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-3), named_parameters=model.named_parameters(),
        mode=hvd_ext.DiLoCo(period=args.period),  # outer_lr 1.0, outer_momentum 0.5
        compression=COMPRESSION[args.compression])

    w = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(hvd.rank())
    x_val = torch.randn(512, 32, generator=torch.Generator().manual_seed(1))
    for step in range(args.steps):
        x = torch.randn(32, 32, generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x), (x @ w).argmax(dim=1)).backward()
        opt.step()
        if (step + 1) % args.period == 0:
            with opt.consensus_params(), torch.no_grad():
                val = F.cross_entropy(model(x_val), (x_val @ w).argmax(dim=1)).item()
            if hvd.rank() == 0:
                print(f"step {step + 1}: outer-model loss {val:.4f}, "
                      f"{opt.bytes_sent / 1e3:.1f} kB sent by this rank")


if __name__ == "__main__":
    main()
