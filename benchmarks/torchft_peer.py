"""torchft (PyTorch's fault-tolerance library, the ``bench`` extra) as a peer: its ``LocalSGD``
and ``DiLoCo`` (streaming: fragments, ``fragment_sync_delay``, ``fragment_update_alpha``), each
rank a replica group of one with torchft's ``Manager`` and ``ProcessGroupGloo``, and the
lighthouse the quorum forms at, started by the benchmark on the first rank
(``torchft.coordination.LighthouseServer``) inside the same emulated cluster.

The outer optimizer is ours (Nesterov SGD at outer lr 1.0, momentum 0.5, as the DiLoCo
candidates), so the math is the same. torchft's ``should_quantize`` needs Triton, which has no
CPU backend: here the pseudo-gradients go out in float32.
"""
import os
import socket
from datetime import timedelta

import horovod.torch as hvd
import torch

OUTER = dict(lr=1.0, momentum=0.5, nesterov=True)
_KEPT = []  # the lighthouse, stores, managers and contexts of this process, alive to its end


def missing():
    """Why torchft cannot run here (one line), or None."""
    try:
        import torchft  # noqa: F401
    except ImportError as e:
        return f"torchft is not installed ({e}): pip install -e '.[bench]'"
    return None


def _host():
    """This rank's address as the others reach it: horovodrun's name for the host (a switched
    network's host address), else this machine's name."""
    host = os.environ.get("HOROVOD_HOSTNAME", "")
    return socket.gethostname() if host in ("", "localhost", "127.0.0.1") else host


def _lighthouse():
    """The lighthouse's address, the same on every rank (the first rank runs it)."""
    from torchft.coordination import LighthouseServer
    address = None
    if hvd.rank() == 0:
        server = LighthouseServer(bind="0.0.0.0:0", min_replicas=hvd.size())  # IPv4, as Gloo
        _KEPT.append(server)
        address = f"http://{_host()}:{server.address().rsplit(':', 1)[1]}"
    return hvd.broadcast_object(address, root_rank=0, name="torchft.lighthouse")


def _manager(model):
    import torch.distributed as dist
    from torchft import Manager, ProcessGroupGloo
    store = dist.TCPStore(host_name="localhost", port=0, is_master=True, wait_for_workers=False)
    manager = Manager(pg=ProcessGroupGloo(), min_replica_size=hvd.size(),
                      load_state_dict=lambda sd: model.load_state_dict(sd["model"]),
                      state_dict=lambda: {"model": model.state_dict()},
                      use_async_quorum=False, replica_id=f"hvd_ext_bench_{hvd.rank()}",
                      store_addr=_host(), store_port=store.port, rank=0, world_size=1,
                      lighthouse_addr=_lighthouse(), hostname=_host(),
                      timeout=timedelta(seconds=120),
                      init_sync=False)  # every rank starts from the same parameters already
    _KEPT.extend([store, manager])
    return manager


def fragments(model, n):
    """The model's top-level modules in ``n`` contiguous groups (torchft's model fragments)."""
    children = list(model.children())
    if n > len(children):
        raise ValueError(f"{n} fragments of a model with {len(children)} top-level modules")
    return [torch.nn.ModuleList(children[i * len(children) // n:(i + 1) * len(children) // n])
            for i in range(n)]


def local_sgd(period):
    def wrap(model, opt):
        from torchft.local_sgd import LocalSGD
        context = LocalSGD(_manager(model), model, opt, sync_every=period)
        _KEPT.append(context.__enter__())
        return model, opt
    return wrap


def diloco(period, n_fragments=1, delay=0, alpha=0.0):
    def wrap(model, opt):
        from torchft.local_sgd import DiLoCo
        parts = fragments(model, n_fragments)
        # one outer optimizer per fragment, as ours keeps an outer momentum per fragment
        outer = [torch.optim.SGD(part.parameters(), **OUTER) for part in parts]
        context = DiLoCo(_manager(model), parts, opt, outer if n_fragments > 1 else outer[0],
                         sync_every=period, should_quantize=False,
                         fragment_sync_delay=delay, fragment_update_alpha=alpha)
        _KEPT.append(context.__enter__())
        return model, opt
    return wrap
