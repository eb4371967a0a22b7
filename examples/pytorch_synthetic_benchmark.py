"""Horovod's synthetic benchmark for PyTorch, with a flag to swap the optimizer.

    horovodrun -np 2 python examples/pytorch_synthetic_benchmark.py --optimizer hvd_ext
    horovodrun -np 2 python examples/pytorch_synthetic_benchmark.py --optimizer horovod

Trains a small convolutional network on random images and prints images per second per rank
and in total, as Horovod's ``pytorch_synthetic_benchmark.py`` does. ``--optimizer hvd_ext``
differs from ``--optimizer horovod`` in one line: which ``DistributedOptimizer`` wraps SGD.
"""
import argparse
import timeit

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext

MODES = {"sync": hvd_ext.Sync(), "delayed": hvd_ext.Delayed(staleness=1)}
COMPRESSION = {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16,
               "powersgd": hvd_ext.PowerSGD(rank=4), "int8": hvd_ext.Quantize(bits=8)}


def model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 8 * 8, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--optimizer", choices=["hvd_ext", "horovod"], default="hvd_ext")
    p.add_argument("--mode", choices=sorted(MODES), default="sync", help="hvd_ext only")
    p.add_argument("--compression", choices=sorted(COMPRESSION), default="none")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-warmup-batches", type=int, default=2)
    p.add_argument("--num-batches-per-iter", type=int, default=5)
    p.add_argument("--num-iters", type=int, default=5)
    args = p.parse_args()

    hvd.init()
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(hvd.local_rank())
    net = model().cuda() if cuda else model()
    opt = torch.optim.SGD(net.parameters(), lr=0.01 * hvd.size())
    compression = COMPRESSION[args.compression]
    if args.optimizer == "horovod":
        if not hasattr(compression, "compress"):
            p.error(f"--compression {args.compression} is a horovod_ext codec: use --optimizer "
                    f"hvd_ext")
        opt = hvd.DistributedOptimizer(opt, named_parameters=net.named_parameters(),
                                       compression=compression)
    else:
        opt = hvd_ext.DistributedOptimizer(opt, named_parameters=net.named_parameters(),
                                           compression=compression, mode=MODES[args.mode])
    hvd.broadcast_parameters(net.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)

    device = "cuda" if cuda else "cpu"
    data = torch.randn(args.batch_size, 3, 32, 32, device=device)
    target = torch.randint(0, 10, (args.batch_size,), device=device)

    def benchmark_step():
        opt.zero_grad()
        F.cross_entropy(net(data), target).backward()
        opt.step()

    timeit.timeit(benchmark_step, number=args.num_warmup_batches)
    rates = []
    for _ in range(args.num_iters):
        t = timeit.timeit(benchmark_step, number=args.num_batches_per_iter)
        rates.append(args.batch_size * args.num_batches_per_iter / t)
    if hasattr(opt, "flush"):
        opt.flush()
    mean = sum(rates) / len(rates)
    if hvd.rank() == 0:
        print(f"{args.optimizer} ({args.mode if args.optimizer == 'hvd_ext' else 'horovod'}, "
              f"compression {args.compression}), {hvd.size()} ranks on {device}")
        print(f"img/sec per rank: {mean:.1f}")
        print(f"total img/sec on {hvd.size()} ranks: {hvd.size() * mean:.1f}")


if __name__ == "__main__":
    main()
