"""Runs on every rank: Horovod's resume recipe with PowerSGD. Rank 0 alone loads a checkpoint
taken after 6 steps (past start_step 4: compressing, with warm-start Q and error feedback);
the others start afresh (step 0, before start_step, initial Q). Then hvd.broadcast_parameters
and hvd.broadcast_optimizer_state, and 4 more steps. Without agreement the ranks would run
different collectives (rank 0 P and Q, the others a plain allreduce) and hang. Rank r writes
OUT.<r>: its parameters after the run, rank 0's Q at the load, and each rank's Q after the first
resumed launch's agreement. argv[2] "sync" (the default) or "diloco": DiLoCo(period=2) with
PowerSGD on its pseudo-gradients (rank 0 loads after 3 rounds)."""
import copy
import json
import sys

import horovod.torch as hvd
import torch
from delayed_reference import make_model
from rank0_resume import train

import horovod_ext as hvd_ext

MODE = sys.argv[2] if len(sys.argv) > 2 else "sync"


def build():
    model = make_model()
    if MODE == "diloco":
        kwargs = dict(mode=hvd_ext.DiLoCo(period=2), compression=hvd_ext.PowerSGD(rank=1,
                                                                                   start_step=1))
    else:
        kwargs = dict(compression=hvd_ext.PowerSGD(rank=1, start_step=4))
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                       named_parameters=model.named_parameters(), **kwargs)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    return model, opt


def views(opt):
    """What the codec sees of each bucket (codecs/view.py)."""
    mode = opt._mode_object
    if MODE == "diloco":
        return [w.view for ws in mode._wires for w in ws]
    return [b.view for b in mode.engine.current.buckets]


def qs(opt):
    return [q.flatten().tolist() for v in views(opt) for q in v.state.q.values()]


def agree(opt):
    """What the first launch (sync) or the first step (DiLoCo) does; Q is read right after."""
    mode = opt._mode_object
    if MODE == "diloco":
        mode.adopt_first_rank_state()
        return mode._t
    mode.engine.take_shared_codec_state()
    return mode.engine.grad_steps


def main():
    hvd.init()
    torch.set_num_threads(1)
    model, opt = build()
    train(model, opt, 0, 6)
    ckpt = hvd.broadcast_object(copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict()})
                                if hvd.rank() == 0 else None, root_rank=0, name="ckpt")
    loaded_q = qs(opt)
    model, opt = build()
    if hvd.rank() == 0:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(copy.deepcopy(ckpt["opt"]))
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    steps = agree(opt)
    agreed_q = qs(opt)
    train(model, opt, 6, 10)
    with open(f"{sys.argv[1]}.{hvd.rank()}", "w") as f:
        json.dump({"params": torch.cat([p.detach().flatten() for p in model.parameters()]).tolist(),
                   "loaded_q": loaded_q, "agreed_q": agreed_q, "steps": steps,
                   "bytes": opt.bytes_sent}, f)


if __name__ == "__main__":
    main()
