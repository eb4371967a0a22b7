"""Runs on every rank: one rank is made to disagree about where it is in the optimizer's own
collectives, as ranks did after an unnoticed resize; every rank must raise instead of waiting.

    disagree.py CASE OUT   CASE:
      tuner    Sync (tuner on): rank 1 times one step more than rank 0 before the timing exchange
      mixed    Sync (tuner on): rank 1 rebuilds the plan at the step rank 0 exchanges timings
      plan     Sync, tune=False: rank 1 rebuilds the bucket plan again after step 3
      codec    Sync + PowerSGD, tune=False: rank 1 takes the codec state again after step 3
      round    LocalSGD(period=2): rank 0 alone asks for consensus_params() after step 3
      fragment DiLoCo(period=4, fragments=2): rank 1 runs its fragments' rounds swapped

Each rank writes OUT.<rank> (JSON): the step it failed at, the type and message of the error.
"""
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model

STEPS = 40
OPTIONS = {"tuner": {}, "mixed": {}, "plan": dict(tune=False),
           "codec": dict(tune=False, compression=hvd_ext.PowerSGD(rank=1, start_step=1)),
           "round": dict(mode=hvd_ext.LocalSGD(period=2)),
           "fragment": dict(mode=hvd_ext.DiLoCo(period=4, fragments=2))}


def disagree(case, opt, t):
    """After step t: this rank's part of the disagreement."""
    mode, rank = opt._mode_object, hvd.rank()
    if case == "tuner" and rank == 1 and mode.tuner._candidate is not None and not disagree.done:
        mode.tuner._phase_end += 1  # rank 0 reaches the timing exchange one step earlier
        disagree.done = True
    elif case == "mixed" and rank == 1 and mode.tuner._candidate is not None and \
            mode.tuner.steps == mode.tuner._phase_end - 1 and not disagree.done:
        mode.engine.planner.rebuilt = False  # its next step ends at the plan's broadcast
        disagree.done = True
    elif case == "plan" and rank == 1 and t == 3:
        mode.engine.planner.rebuilt = False
    elif case == "codec" and rank == 1 and t == 3:
        mode.engine._agree_codec = True
    elif case == "round" and rank == 0 and t == 3:
        with opt.consensus_params():
            pass
    elif case == "fragment" and rank == 1 and t == 0:
        mode._phase.reverse()


disagree.done = False


def main():
    case, out = sys.argv[1], sys.argv[2]
    hvd.init()
    torch.set_num_threads(1)
    rank = hvd.rank()  # Horovod may be shut down when the case ends
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.05),
                                       named_parameters=model.named_parameters(),
                                       **OPTIONS[case])
    result = dict(step=None)
    for t in range(STEPS):
        try:
            opt.zero_grad()
            x, y = batch(rank, t, 0)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            disagree(case, opt, t)
        except Exception as e:  # noqa: BLE001 - what each rank raised is the result
            cause = e.__cause__
            result = dict(step=t, type=type(e).__name__, error=str(e),
                          cause=None if cause is None else f"{type(cause).__name__}: {cause}")
            break
    with open(f"{out}.{rank}", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
