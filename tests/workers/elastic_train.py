"""An elastic job (horovodrun with a host discovery script) of a given mode. The test kills one
worker mid-training; the others must restore the last commit and finish.

    elastic_train.py MODE LOG OUT   every worker appends JSON lines to LOG: its pid, host and
                                    rank at start, every commit, every reset (with the step it
                                    resumed at); at the end each writes OUT.<pid>: final step,
                                    size and consensus parameters.
"""
import json
import os
import sys
import time

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model

STEPS, COMMIT_EVERY = 60, 5
MODES = {"delayed": dict(mode=hvd_ext.Delayed(staleness=2)),
         "leader": dict(mode=hvd_ext.Leader(period=3, pull=0.5)),
         "easgd": dict(mode=hvd_ext.EASGD(period=2)),
         "diloco": dict(mode=hvd_ext.DiLoCo(period=3, fragments=2)),
         # codec state (error feedback, warm-start Q) through a commit, a restore and a resize
         "powersgd": dict(compression=hvd_ext.PowerSGD(rank=1, start_step=2))}


def main():
    mode, log_path, out = sys.argv[1:4]
    hvd.init()
    torch.set_num_threads(1)

    def log(event, **kw):
        with open(log_path, "a") as f:
            f.write(json.dumps(dict(event=event, pid=os.getpid(), rank=hvd.rank(), size=hvd.size(),
                                    host=os.environ.get("HOROVOD_HOSTNAME"), time=time.time(), **kw))
                    + "\n")

    model = make_model()
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                                       named_parameters=model.named_parameters(), **MODES[mode])
    state = hvd.elastic.TorchState(model, opt, step=0)  # as in a script for Horovod
    state.register_reset_callbacks([lambda: log("reset", step=state.step)])
    log("start")

    @hvd.elastic.run
    def train(state):
        while state.step < STEPS:
            opt.zero_grad()
            x, y = batch(hvd.rank(), state.step, 0)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step(loss=loss)
            state.step += 1
            time.sleep(0.1)  # time for the test to kill a worker mid-training
            if state.step % COMMIT_EVERY == 0:
                state.commit()
                log("commit", step=state.step)

    train(state)
    with opt.consensus_params():
        params = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    with open(f"{out}.{os.getpid()}", "w") as f:
        json.dump(dict(step=state.step, size=hvd.size(), rank=hvd.rank(), params=params,
                       tuned=opt.tuned), f)


if __name__ == "__main__":
    main()
