"""The two tasks of the convergence experiments, shared by them and by the benchmarks: the MNIST
CNN and a character-level text model (``CharMLP``) on offline data (``task``), plain SGD through
``hvd_ext.DistributedOptimizer`` to a target loss (``train``), and the fit of steps against batch
size, S(B) = S_min (1 + B_noise / B) (McCandlish et al. 2018)."""
import glob
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext
from benchmarks.mnist_data import Net, mnist_split


class CharMLP(nn.Module):
    """A small neural language model: 16 characters of context -> the next character, through
    ``hidden_layers`` tanh layers of ``width`` units."""
    context = 16

    def __init__(self, vocab, hidden_layers=1, width=256):
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.h = nn.Linear(16 * self.context, width)
        self.deeper = nn.ModuleList(nn.Linear(width, width) for _ in range(hidden_layers - 1))
        self.out = nn.Linear(width, vocab)

    def forward(self, x):
        h = torch.tanh(self.h(self.emb(x).flatten(1)))
        for layer in self.deeper:
            h = torch.tanh(layer(h))
        return self.out(h)


def task(name, hidden_layers=1, width=256):
    """(make_model, train x, train y, validation x, validation y, test x, test y); the text
    model has ``hidden_layers`` hidden layers of ``width`` units."""
    if name == "mnist":
        x, y, x_te, y_te = mnist_split()
        return Net, x[500:], y[500:], x[:500], y[:500], x_te, y_te
    root = os.path.dirname(os.__file__)
    text = "".join(open(f, encoding="utf-8", errors="ignore").read()
                   for f in sorted(glob.glob(os.path.join(root, "*.py"))))
    text = "".join(c for c in text if 32 <= ord(c) < 127 or c == "\n")[:300_000]
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])
    c = CharMLP.context
    x = ids.unfold(0, c + 1, 1)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x = x[order]
    tr, va, te = x[:-20_000], x[-20_000:-10_000], x[-10_000:]
    return (lambda: CharMLP(len(chars), hidden_layers, width), tr[:, :c], tr[:, c], va[:, :c], va[:, c],
            te[:, :c], te[:, c])


def loss_on(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


def full_grad_sq_norm(model, twin, x, y):
    """|grad F(w)|^2 over (a fixed subset of) the training set, on a copy without hooks."""
    twin.load_state_dict(model.state_dict())
    twin.zero_grad()
    F.cross_entropy(twin(x), y).backward()
    return sum(p.grad.pow(2).sum().item() for p in twin.parameters())


def train(t, batch, lr, staleness, samples, target=None, eval_every=256, stats=None,
          seed=0):
    """Trains with plain SGD at global ``batch`` and ``staleness``. Stops after ``samples``
    samples or when the training loss (on 1,000 fixed training examples, every ``eval_every``
    samples) reaches ``target``. Returns a dict with steps, grad_norms (|grad F|^2 at each
    evaluation), the final validation and test loss."""
    make, x, y, x_va, y_va, x_te, y_te = t
    torch.manual_seed(seed)
    model, twin = make(), make()
    mode = hvd_ext.Delayed(staleness) if staleness else hvd_ext.Sync()
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=lr),
                                       named_parameters=model.named_parameters(), mode=mode)
    g = torch.Generator().manual_seed(1000 + seed)
    probe_x, probe_y = x[:1000], y[:1000]
    every = max(1, eval_every // batch)
    max_steps = samples // batch
    out = {"steps": None, "grad_norms": [], "train_loss": []}
    for step in range(max_steps):
        idx = torch.randint(0, len(y), (batch,), generator=g)
        opt.zero_grad()
        if stats is not None:  # two half batches: two virtual ranks for the noise scale
            twin.load_state_dict(model.state_dict())  # a copy without the optimizer's hooks
            halves = []
            for h in idx.chunk(2):
                twin.zero_grad()
                F.cross_entropy(twin(x[h]), y[h]).backward()
                halves.append(torch.cat([p.grad.flatten() for p in twin.parameters()]))
            stats.observe(step, sum(v.pow(2).sum().item() for v in halves) / 2,
                          ((halves[0] + halves[1]) / 2).pow(2).sum().item())
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        if (step + 1) % every == 0 or step + 1 == max_steps:
            train_loss = loss_on(model, probe_x, probe_y)
            if not math.isfinite(train_loss) or train_loss > 2 * out.get("first", train_loss):
                break  # diverged
            out.setdefault("first", train_loss)
            out["train_loss"].append(train_loss)
            if target is None:
                out["grad_norms"].append(full_grad_sq_norm(model, twin, probe_x, probe_y))
            elif train_loss <= target:
                out["steps"] = step + 1
                break
    opt.flush()
    out["val_loss"], out["test_loss"] = loss_on(model, x_va, y_va), loss_on(model, x_te, y_te)
    return out


def best(runs, key):
    ok = [r for r in runs if r[key] is not None and math.isfinite(r[key])]
    return min(ok, key=lambda r: r[key]) if ok else None


def fit_s_min(bs, steps, noise):
    """S_min of S(B) = S_min (1 + noise/B), least squares in log space."""
    return float(np.exp(np.mean([np.log(s) - np.log(1 + noise / b) for b, s in zip(bs, steps)])))


def fit_both(bs, steps):
    """(S_min, B_noise) of the same form, both free (grid search on B_noise)."""
    grid = np.logspace(-1, 5, 601)
    err = [np.sum((np.log(steps) - np.log(fit_s_min(bs, steps, n)) - np.log(1 + n / np.array(bs))
                   ) ** 2) for n in grid]
    n = float(grid[int(np.argmin(err))])
    return fit_s_min(bs, steps, n), n
