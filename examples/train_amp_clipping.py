"""A training loop with mixed precision and gradient clipping, written for Horovod; only the
optimizer line differs. Horovod's recipe: ``synchronize()``, then unscale and clip the averaged
gradient, then ``step()`` inside ``skip_synchronize()``.

    horovodrun -np 2 python examples/train_amp_clipping.py --steps 50

On a GPU it autocasts to float16 with a GradScaler; on the CPU to bfloat16 (no scaler needed,
the scaler is then disabled and every call on it does nothing).
"""
import argparse

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm")
    args = p.parse_args()

    hvd.init()
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(hvd.local_rank())
    device = "cuda" if cuda else "cpu"
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.GELU(),
                                torch.nn.Linear(64, 2)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3 * hvd.size())
    opt = hvd_ext.DistributedOptimizer(opt, named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    scaler = torch.amp.GradScaler(device, enabled=cuda)
    dtype = torch.float16 if cuda else torch.bfloat16

    g = torch.Generator().manual_seed(hvd.rank())
    w = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    for step in range(args.steps):
        x = torch.randn(64, 20, generator=g).to(device)
        y = (x @ w.to(device)).argmax(dim=1)
        opt.zero_grad()
        with torch.autocast(device, dtype=dtype):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        opt.synchronize()                 # the averaged gradient is in p.grad now
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        with opt.skip_synchronize():
            scaler.step(opt)
        scaler.update()
        if hvd.rank() == 0 and (step % 50 == 0 or step == args.steps - 1):
            print(f"step {step}: loss {loss.item():.4f}, gradient norm {norm.item():.3f}")


if __name__ == "__main__":
    main()
