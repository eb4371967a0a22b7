"""Construction-time same-setup check: every rank must wrap the same parameters (name, shape,
dtype, in order) with the same configuration, or the bucket allreduces would pair different
tensors and wait forever. One small allgather of a hash; the details travel only on mismatch,
and then every rank raises the same ValueError naming the first difference and the ranks."""
import hashlib
import os
import pickle

import horovod.torch as hvd
import torch

from horovod_ext.runtime.names import parameter_names


def allgather_bytes(blob, process_set, name):
    lengths = hvd.allgather(torch.tensor([len(blob)], dtype=torch.int64), name=name + ".len",
                            process_set=process_set)
    data = hvd.allgather(torch.frombuffer(bytearray(blob), dtype=torch.uint8), name=name,
                         process_set=process_set)
    out, start = [], 0
    for n in lengths.tolist():
        out.append(bytes(data[start:start + n].tolist()))
        start += n
    return out


def check_same_setup(params, names, config, process_set):
    """params, names: in the optimizer's order; config: a dict of what every rank must share."""
    if not hvd.is_initialized() or not process_set.included() or process_set.size() < 2:
        return
    entries = [(names[p], tuple(p.shape), str(p.dtype).replace("torch.", "")) for p in params]
    mine = pickle.dumps((sorted(config.items()), entries))
    digest = int.from_bytes(hashlib.sha256(mine).digest()[:8], "little", signed=True)
    hashes = hvd.allgather(torch.tensor([digest], dtype=torch.int64),
                           name="hvd_ext.same_setup", process_set=process_set)
    if bool((hashes == hashes[0]).all()):
        return
    everyone = [pickle.loads(b) for b in
                allgather_bytes(mine, process_set, "hvd_ext.same_setup.details")]
    ranks = list(range(hvd.size())) if process_set.ranks is None else list(process_set.ranks)
    raise ValueError(describe_mismatch(everyone, ranks))


def described(obj):
    """``repr(obj)``, the same on every rank for equal arguments: an object with the default
    repr (which shows its address, as a codec class of the user's may) is named by its class and
    its attributes instead."""
    text = repr(obj)
    if type(obj).__repr__ is not object.__repr__:
        return text
    fields = ", ".join(f"{k}={v!r}" for k, v in sorted(getattr(obj, "__dict__", {}).items())
                       if not k.startswith("_"))
    return f"{type(obj).__qualname__}({fields})"


def describe_mismatch(everyone, ranks):
    """The first difference between the ranks' (config, entries), as one sentence."""
    (config0, entries0), r0 = everyone[0], ranks[0]
    for key, value in config0:
        differ = [(r, dict(c)[key]) for r, (c, _) in zip(ranks, everyone) if dict(c)[key] != value]
        if differ:
            others = ", ".join(f"rank {r} has {v!r}" for r, v in differ)
            return (f"DistributedOptimizer configuration differs across ranks: {key} is {value!r} "
                    f"on rank {r0}, but {others}")
    for i in range(max(len(e) for _, e in everyone)):
        mine = entries0[i] if i < len(entries0) else None
        differ = [(r, e[i] if i < len(e) else None) for r, (_, e) in zip(ranks, everyone)
                  if (e[i] if i < len(e) else None) != mine]
        if differ:
            def show(entry):
                if entry is None:
                    return "no such parameter"
                return f"{entry[0]!r} with shape {list(entry[1])} and dtype {entry[2]}"
            counts = sorted({len(e) for _, e in everyone})
            extra = (" (parameter counts differ: "
                     + ", ".join(f"rank {r} has {len(e)}" for r, (_, e) in zip(ranks, everyone))
                     + ")") if len(counts) > 1 else ""
            return (f"parameters differ across ranks at position {i}: rank {r0} has "
                    f"{show(mine)}, but " + ", ".join(f"rank {r} has {show(e)}" for r, e in differ)
                    + extra)
    return "ranks differ in their DistributedOptimizer arguments"


def same_setup_at_construction(optimizer, named_parameters, process_set, config):
    """Runs before any local check of the arguments, so that a rank whose arguments differ raises
    with the others instead of leaving them waiting; names that fail Horovod's rules are
    compared as such. Returns the check's arguments, for ``check_same_setup(*them)`` later.
    Under Horovod elastic a worker may be constructed while the others train, so the check runs
    in ``hvd_ext.elastic.TorchState.sync()`` instead."""
    params = [p for g in getattr(optimizer, "param_groups", []) for p in g["params"]]
    try:
        names = parameter_names(getattr(optimizer, "param_groups", []), named_parameters)
    except (ValueError, TypeError) as e:
        config = dict(config, named_parameters=str(e))
        names = {p: f"#{i}" for i, p in enumerate(params)}
    setup = (params, names, config, process_set)
    if os.environ.get("HOROVOD_ELASTIC") != "1":
        check_same_setup(*setup)
    return setup
