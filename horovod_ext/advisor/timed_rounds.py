"""The periodic candidates' step times, timed on the user's own model and link: each local SGD
or DiLoCo candidate of the advisor wraps the user's optimizer as training would
(``hvd_ext.DistributedOptimizer(optimizer, named_parameters, mode=...)``), runs one period
untimed (its first rounds launched, an overlapped one in flight) and then whole periods, at
least ``MIN_STEPS`` steps, timed from the first to the last; ``flush()`` then ends what is in
flight, untimed. So a candidate's time holds everything its rounds cost in training: the
same-point check, the codec's stages as they are progressed between steps, the outer step,
what an overlap hides on these cores and what it does not, and the per-message latency of the
link. The candidates take ``PASSES`` turns, one after the other, and each keeps its fastest: a
slowdown of the machine in one turn does not decide between two candidates. Milliseconds per
step, the maximum over ranks."""
import time

import horovod.torch as hvd
import torch
from horovod.torch.mpi_ops import Max

from horovod_ext.advisor import recommend
from horovod_ext.optimizer import DistributedOptimizer

MIN_STEPS = 64  # timed steps of a candidate whose period is shorter
PASSES = 2      # turns of every candidate


def periodic_candidates():
    """The advisor's candidates that average parameters every period (local SGD, DiLoCo)."""
    return [n for n in recommend.CANDIDATES if recommend.shape(n)[0] == "periodic"]


def timed_step_ms(model, optimizer, closure, name):
    """Milliseconds per step of candidate ``name`` on this rank (see the module docstring)."""
    period = recommend.shape(name)[2]
    opt = DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                               **recommend.optimizer_kwargs(name))
    timed = period * -(-MIN_STEPS // period)  # whole periods

    def step():
        opt.zero_grad()
        closure()
        opt.step()

    for _ in range(period):
        step()
    t = time.perf_counter()
    for _ in range(timed):
        step()
    ms = (time.perf_counter() - t) * 1e3 / timed
    opt.flush()
    return ms


def timed_rounds(model, optimizer, closure):
    """Candidate -> milliseconds per step, every periodic candidate in turn, agreed over the
    ranks (the slowest rank's). The caller restores the model and optimizer state."""
    names = periodic_candidates()
    turns = [[timed_step_ms(model, optimizer, closure, n) for n in names] for _ in range(PASSES)]
    ms = [min(t) for t in zip(*turns)]
    worst = hvd.allreduce(torch.tensor(ms, dtype=torch.float64), op=Max, name="probe.rounds")
    return dict(zip(names, worst.tolist()))
