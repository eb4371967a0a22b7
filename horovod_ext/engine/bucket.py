"""A bucket: one flat gradient buffer shared by a few parameters, and what is in flight for it.

Gradients live in the buffer: each parameter's ``p.grad`` is a view of its slice, so autograd
accumulates straight into the bucket and nothing is copied in the common case.
"""
import horovod.torch as hvd
import torch
from horovod.common.exceptions import HorovodInternalError
from horovod.torch.mpi_ops import Average, Sum

from horovod_ext import ops
from horovod_ext.compression import KERNEL_CASTS
from horovod_ext.engine.layout import flat_offsets
from horovod_ext.failure import another_rank_failed
from horovod_ext.wire import wire_bytes


class Bucket:
    """Invariants: ``flat[offsets[k] : offsets[k] + params[k].numel()]`` is ``params[k]``'s
    gradient and ``views[k]`` is that slice shaped like the parameter; all params share dtype and
    device; ``launched`` is True from the launch of this bucket's allreduce until the set it
    belongs to is applied; ``handle`` is the Horovod handle while that allreduce may still be
    running; ``pending`` is the number of params whose gradient is not final for this step yet.
    """

    def __init__(self, index, params, comm_dtype, snapshot=False, extra=0):
        self.index = index
        self.params = params
        self.offsets, total = flat_offsets(p.numel() for p in params)
        self.numel = total
        p0 = params[0]
        # ``extra`` trailing elements travel with the gradients (the local squared norm of
        # gradient statistics rides there); ``grads`` is the flat gradient without them.
        self.flat = torch.zeros(total + extra, dtype=p0.dtype, device=p0.device)
        self.grads = self.flat[:total]
        self.views = [self.flat[o:o + p.numel()].view_as(p) for o, p in zip(self.offsets, params)]
        # Communication buffer of the compressed dtype; None when the bucket is reduced in place.
        cast = comm_dtype is not None and comm_dtype != p0.dtype
        self.comm = torch.empty(total + extra, dtype=comm_dtype, device=p0.device) if cast else None
        # The parameters at which the gradient was computed (delay compensation only).
        self.snap = torch.empty_like(self.flat) if snapshot else None
        self.pending = len(params)
        self.launched = False
        self.handle = None
        self.ctx = None  # decompress context of a user-supplied Compressor

    def snapshot_of(self, k):
        """The parameters at which params[k]'s gradient was computed (None without snapshots)."""
        if self.snap is None:
            return None
        return self.snap[self.offsets[k]:self.offsets[k] + self.params[k].numel()]

    def adopt_grads(self, keep=()):
        """Makes every ``p.grad`` the bucket's view again: a gradient that autograd or user code
        replaced is copied in (pack kernel; a sparse one densified), a missing one becomes zeros.
        Never drops a value. Parameters in ``keep`` (gathered sparse) keep their ``p.grad`` and
        a zero slot."""
        for k, (p, view) in enumerate(zip(self.params, self.views)):
            g = p.grad
            if p in keep:
                view.zero_()
                continue
            if g is view:
                continue
            if g is None:
                view.zero_()
            else:
                if g.is_sparse:
                    g = g.to_dense()
                with torch.no_grad():
                    ops.pack([g.detach().contiguous()], self.flat, [self.offsets[k]], 1.0)
            p.grad = view

    def start_allreduce(self, name, st):
        """Starts the bucket's allreduce under ``Settings`` st; returns the bytes this rank
        sends. Its gradients are final for this step and every ``p.grad`` is its view."""
        average = st.op == Average
        prescale = 1.0 / st.gradient_predivide_factor if average else 1.0
        postscale = st.gradient_predivide_factor if average else 1.0
        if self.comm is not None:
            # Cast + prescale in one pass; the average's 1/size is folded into the unpack.
            ops.pack([self.flat], self.comm, [0], prescale)
            self.handle = hvd.allreduce_async_(self.comm, name=name, op=Sum if average else st.op,
                                               process_set=st.process_set)
        else:
            tensor = self.flat
            if st.compression not in KERNEL_CASTS:  # a user-supplied Compressor
                tensor, self.ctx = st.compression.compress(self.flat)
            self.handle = hvd.allreduce_async_(tensor, name=name, op=st.op,
                                               prescale_factor=prescale,
                                               postscale_factor=postscale,
                                               process_set=st.process_set)
        self.launched = True
        sent = self.comm if self.comm is not None else self.flat
        return wire_bytes("allreduce", sent.numel() * sent.element_size(), st.process_set.size())

    def wait_allreduce(self, st, name):
        """Waits for the allreduce in flight, if any, and takes its result; ``name`` (of the
        first parameter) is for the message when another rank failed."""
        if self.handle is None:
            return
        try:
            output = hvd.synchronize(self.handle)
        except HorovodInternalError as e:
            self.handle = None
            raise another_rank_failed(f"the allreduce of gradient bucket {self.index} (first "
                                      f"parameter {name!r}) did not complete", e) from e
        self.handle = None
        self.take_result(output, st)

    def take_result(self, output, st):
        """The reduced ``output`` of the allreduce becomes the bucket's gradient."""
        if self.comm is not None:
            scale = st.gradient_predivide_factor / st.process_set.size() \
                if st.op == Average else 1.0
            ops.unpack(self.comm, [0], [self.flat], scale, False)
        elif output is not self.flat:
            self.flat.copy_(st.compression.decompress(output, self.ctx).view(-1))

    def reset(self):
        """Ready for the next step's backward: nothing launched, every gradient pending."""
        self.launched = False
        self.pending = len(self.params)
