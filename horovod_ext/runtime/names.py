"""Parameter names, by Horovod's rules: the names of ``named_parameters`` (unique, every
optimizer parameter named), or ``allreduce.noname.<group>.<index>`` without it. They name the
collectives and appear in every message about a parameter, so they are the same on every rank."""


def parameter_names(param_groups, named_parameters):
    """parameter -> name; raises ValueError as ``hvd.DistributedOptimizer`` does."""
    if named_parameters is None:
        return {v: f"allreduce.noname.{i}.{j}" for i, g in enumerate(param_groups)
                for j, v in enumerate(g["params"])}
    named_parameters = list(named_parameters)
    if any(not isinstance(p, tuple) for p in named_parameters):
        raise ValueError("named_parameters should be a sequence of tuples (name, parameter), "
                         "usually produced by model.named_parameters().")
    seen, dups = set(), set()
    for k, _ in named_parameters:
        (dups if k in seen else seen).add(k)
    if dups:
        raise ValueError("Parameter names in named_parameters must be unique. Found duplicates: "
                         + ", ".join(sorted(dups)))
    names = {v: k for k, v in named_parameters}
    unnamed = [i for i, g in enumerate(param_groups) for p in g["params"] if p not in names]
    if unnamed:
        raise ValueError("named_parameters was specified, but one or more model parameters were "
                         f"not named (in param groups {sorted(set(unnamed))}).")
    return names
