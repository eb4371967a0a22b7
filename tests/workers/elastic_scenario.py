"""An elastic training script as a Horovod user writes it: ``hvd.elastic.TorchState`` and
``@hvd.elastic.run``, with ``hvd.DistributedOptimizer`` swapped for ours and nothing else
changed. Four models train side by side, one per optimizer: Sync at its defaults (tuner on),
Delayed, Sync + PowerSGD and DiLoCo, so every resize goes through all four.

    elastic_scenario.py LOG SCHEDULE   SCHEDULE is JSON: epochs, batches (per epoch),
        hosts_changes (epochs after which the discovery script answers other hosts: the first
        rank waits for the driver's notice then), exits ({"epoch,batch": [start ranks]}),
        exit_mode ("exception" or "kill"), epoch_wait (seconds).

At the end of every epoch each rank appends a JSON line to LOG: epoch, rank, size, its start
rank and host, the rendezvous count, and a digest of each model's parameters (DiLoCo: of its
outer parameters), which must be the same on every rank; the first rank also appends the
epoch to LOG.epochs, whose lines the discovery script counts.
"""
import hashlib
import json
import os
import sys
import time

import horovod.torch as hvd
import psutil
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model

MODES = {"sync": {},
         "delayed": dict(mode=hvd_ext.Delayed(staleness=2)),
         "powersgd": dict(compression=hvd_ext.PowerSGD(rank=1, start_step=2)),
         "diloco": dict(mode=hvd_ext.DiLoCo(period=3, fragments=2))}


def digest(name, model, optimizer):
    """Of the parameters (DiLoCo: the outer ones; the others' are equal on every rank)."""
    def flat():
        return torch.cat([p.detach().flatten() for p in model.parameters()])
    if name == "diloco":
        with optimizer.consensus_params():
            values = flat()
    else:
        values = flat()
    return hashlib.sha256(values.numpy().tobytes()).hexdigest()[:16]


def main():
    log_path, schedule = sys.argv[1], json.loads(sys.argv[2])
    hvd.init()
    torch.set_num_threads(1)
    start_rank = int(os.environ.get("HOROVOD_RANK", 0))
    models, optimizers = {}, {}
    for name, kwargs in MODES.items():
        torch.manual_seed(0)
        models[name] = make_model()
        inner = torch.optim.SGD(models[name].parameters(), lr=0.05 * hvd.size(), momentum=0.9)
        optimizers[name] = hvd_ext.DistributedOptimizer(
            inner, named_parameters=models[name].named_parameters(), **kwargs)
    state = hvd.elastic.TorchState(**{f"model_{n}": m for n, m in models.items()},
                                   **{f"opt_{n}": o for n, o in optimizers.items()},
                                   epoch=0, batch=0, rendezvous=0)

    def exit_if_scheduled(epoch, b):
        if start_rank in schedule.get("exits", {}).get(f"{epoch},{b}", []):
            if schedule.get("exit_mode", "exception") == "kill":
                psutil.Process(os.getpid()).kill()
            raise RuntimeError(f"scheduled exit at epoch {epoch} batch {b}, start rank "
                               f"{start_rank}")

    @hvd.elastic.run
    def train(state):
        state.rendezvous += 1
        while state.epoch < schedule["epochs"]:
            while state.batch < schedule["batches"]:
                exit_if_scheduled(state.epoch, state.batch)
                step = state.epoch * schedule["batches"] + state.batch
                x, y = batch(hvd.rank(), step, 0)
                for name, model in models.items():
                    opt = optimizers[name]
                    opt.zero_grad()
                    loss = F.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()
                state.batch += 1
                state.commit()
            record = dict(epoch=state.epoch, rank=hvd.rank(), size=hvd.size(),
                          start_rank=start_rank, host=os.environ.get("HOROVOD_HOSTNAME"),
                          rendezvous=state.rendezvous,
                          digests={n: digest(n, m, optimizers[n]) for n, m in models.items()})
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if hvd.rank() == 0:  # what the discovery script counts
                with open(log_path + ".epochs", "a") as f:
                    f.write(f"{state.epoch}\n")
            if hvd.rank() == 0 and state.epoch in schedule.get("hosts_changes", []):
                # the discovery script answers other hosts once this epoch is logged
                state._last_updated_timestamp = 0
                deadline = time.monotonic() + 120  # under load discovery can take long
                while state._host_messages.empty() and time.monotonic() < deadline:
                    time.sleep(0.05)
            time.sleep(schedule.get("epoch_wait", 0.0))
            state.epoch += 1
            state.batch = 0
            state.commit()

    train(state)


if __name__ == "__main__":
    main()
