"""DDP's local SGD peer (benchmarks/peers.py) on every rank against a float64 reference of
periodic averaging after steps 1, k + 1, 2k + 1, ...: the largest parameter difference over 9
steps, and whether the ranks' parameters were equal after each step. argv[1]: the JSON to write;
argv[2]: the period."""
import json
import sys

import horovod.torch as hvd
import torch

from benchmarks import peers


def main(out, k):
    hvd.init()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    twin = [p.detach().double().clone() for p in model.parameters()]
    ddp, opt = peers.REGISTRY[f"ddp-postlocalsgd-H{k}"].wrap(
        model, torch.optim.SGD(model.parameters(), lr=0.2))
    worst, equal = 0.0, []
    for step in range(1, 10):
        g = torch.Generator().manual_seed(10 * step + hvd.rank())
        x, y = torch.randn(6, 5, generator=g), torch.randint(0, 2, (6,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()
        ref = [t.clone().requires_grad_() for t in twin]
        h = torch.tanh(x.double() @ ref[0].t() + ref[1])
        torch.nn.functional.cross_entropy(h @ ref[2].t() + ref[3], y).backward()
        twin = [t - 0.2 * r.grad for t, r in zip(twin, ref)]
        if (step - 1) % k == 0:
            twin = [hvd.allreduce(t, op=hvd.Average, name=f"ref.{step}.{i}")
                    for i, t in enumerate(twin)]
        worst = max(worst, max((p.double() - t).abs().max().item()
                               for p, t in zip(model.parameters(), twin)))
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        equal.append(bool(torch.equal(hvd.allgather(flat.unsqueeze(0), name=f"eq.{step}")[0],
                                      hvd.allgather(flat.unsqueeze(0), name=f"eq2.{step}")[1])))
    if hvd.rank() == 0:
        with open(out, "w") as f:
            json.dump(dict(worst=worst, equal=equal), f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
