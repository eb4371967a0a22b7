"""Runs on every rank: Horovod's resume recipe in the averaging modes. After 6 steps (mid-way
through a period of 4) rank 0's model and optimizer state_dict are the checkpoint. Then two
ways to resume, 7 more steps each: every rank loads the checkpoint ("all"), or rank 0 alone
loads it and every rank calls hvd.broadcast_parameters and hvd.broadcast_optimizer_state
("rank0", Horovod's documented recipe). Both must give the same parameters on every rank,
also with an overlapped DiLoCo round in flight at the save.

    rank0_resume.py OUT      rank r writes OUT.<r>: per mode, the largest difference of the
                             rank's own and of the consensus parameters, and the step counter
"""
import copy
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model

MODES = {"localsgd": hvd_ext.LocalSGD(period=4), "diloco": hvd_ext.DiLoCo(period=4),
         "diloco_fragments": hvd_ext.DiLoCo(period=4, fragments=2),
         "easgd": hvd_ext.EASGD(period=4), "leader": hvd_ext.Leader(period=4, pull=0.5),
         # saved after step 6 with a round in flight: launched after step 4, due after 7
         "diloco_overlap": hvd_ext.DiLoCo(period=4, overlap=3, mix=0.5),
         # fragment 1's round launched after step 6, due after 7
         "diloco_overlap_fragments": hvd_ext.DiLoCo(period=4, fragments=2, overlap=1)}


def build(mode):
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(torch.optim.Adam(model.parameters(), lr=0.01),
                                       named_parameters=model.named_parameters(), mode=mode)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    return model, opt


def train(model, opt, start, stop):
    for t in range(start, stop):
        x, y = batch(hvd.rank(), t, 0)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step(loss=loss)


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def main():
    out = sys.argv[1]
    hvd.init()
    torch.set_num_threads(1)
    results = {}
    for name, mode in MODES.items():
        model, opt = build(mode)
        initial = flat(model)
        train(model, opt, 0, 6)
        # the file rank 0 would write (named: Horovod's default name differs between ranks)
        ckpt = hvd.broadcast_object(
            copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict()})
            if hvd.rank() == 0 else None, root_rank=0, name=f"ckpt.{name}")
        got = {}
        for recipe in ("all", "rank0"):
            model, opt = build(mode)
            if recipe == "all" or hvd.rank() == 0:
                model.load_state_dict(ckpt["model"])
                opt.load_state_dict(copy.deepcopy(ckpt["opt"]))
            if recipe == "rank0":
                hvd.broadcast_parameters(model.state_dict(), root_rank=0)
                hvd.broadcast_optimizer_state(opt, root_rank=0)
            train(model, opt, 6, 13)
            own = flat(model)
            with opt.consensus_params():
                got[recipe] = (own, flat(model), opt.state_dict()["hvd_ext"]["t"])
        results[name] = dict(
            own=(got["all"][0] - got["rank0"][0]).abs().max().item(),
            consensus=(got["all"][1] - got["rank0"][1]).abs().max().item(),
            moved=(got["all"][0] - initial).abs().max().item(),
            steps=[got["all"][2], got["rank0"][2]])
    with open(f"{out}.{hvd.rank()}", "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
