"""Checkpoint/resume of delayed mode (staleness 2, compensation 0.5, SGD with momentum).

    delayed_resume.py full   OUT CKPT_DIR   8 steps + flush, final parameters to OUT
    delayed_resume.py save   OUT CKPT_DIR   4 steps, then each rank saves model + optimizer
    delayed_resume.py resume OUT CKPT_DIR   a new process loads them, runs steps 4..7 + flush
"""
import os
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model

STEPS, SAVE_AT = 8, 4


def main():
    phase, out, ckpt_dir = sys.argv[1:4]
    hvd.init()
    torch.set_num_threads(1)
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9),
        named_parameters=model.named_parameters(),
        mode=hvd_ext.Delayed(staleness=2, compensation=0.5))
    ckpt = os.path.join(ckpt_dir, f"rank{hvd.rank()}.pt")
    first, last, pending = 0, STEPS, 0
    if phase == "save":
        last = SAVE_AT
    elif phase == "resume":
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        first, pending = SAVE_AT, state["pending"]
    for t in range(first, last):
        opt.zero_grad(set_to_none=True)
        x, y = batch(hvd.rank(), t, 0)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    if phase == "save":
        os.makedirs(ckpt_dir, exist_ok=True)
        sd = opt.state_dict()
        torch.save({"model": model.state_dict(), "opt": sd,
                    "pending": len(sd["hvd_ext"]["pending"])}, ckpt)
        return
    opt.flush()
    if hvd.rank() == 0:
        torch.save({"params": model.state_dict(), "initial": make_model().state_dict(),
                    "pending_at_save": pending}, out)


if __name__ == "__main__":
    main()
