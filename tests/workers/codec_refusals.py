"""Runs on every rank: each argument a codec cannot work with raises ValueError naming it, on
every rank; rank 0 writes the messages to argv[1]."""
import json
import sys

import horovod.torch as hvd
import torch

import horovod_ext as hvd_ext

CASES = {
    "averaging_mode": dict(mode=hvd_ext.LocalSGD(period=2), compression=hvd_ext.PowerSGD()),
    "diloco_float64": dict(mode=hvd_ext.DiLoCo(period=2), compression=hvd_ext.Quantize()),
    "stats": dict(compression=hvd_ext.PowerSGD(), stats=hvd_ext.GradientStats(batch_size=4)),
    "op_min": dict(compression=hvd_ext.Quantize(), op=hvd.Min),
    "not_a_codec": dict(compression="fp16"),
}


def main():
    hvd.init()
    out = {}
    for name, kwargs in CASES.items():
        model = torch.nn.Linear(4, 4).double() if name.endswith("float64") else \
            torch.nn.Linear(4, 4)
        try:
            hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                         named_parameters=model.named_parameters(), **kwargs)
            out[name] = None
        except ValueError as e:
            out[name] = str(e)
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f)
    else:
        assert all(v is not None for v in out.values()), out


if __name__ == "__main__":
    main()
