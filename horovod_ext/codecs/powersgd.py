"""PowerSGD (Vogels, Karimireddy and Jaggi, "PowerSGD: Practical Low-Rank Gradient Compression
for Distributed Optimization", NeurIPS 2019), as PyTorch DDP's ``powerSGD_hook`` applies it.

Per bucket and step, with M_k = G_k + e_k for each matrix-shaped gradient k (n x m; a conv weight
as [out, in*kh*kw]) and its rank r_k = min(rank, n, m):
  P_k = M_k Q_k, every P of the bucket and its uncompressed tensors in one allreduce (average);
  P^_k = orthonormalize(P_k) (Gram-Schmidt by columns);
  Q'_k = M_k^T P^_k, every Q' in a second allreduce (average);
  the gradient applied is P^_k Q'_k^T; error feedback keeps e_k = M_k - P^_k Q'_k^T;
  with warm start the next step's Q_k is Q'_k.
Q_k starts from a seed every rank shares. 1-D tensors and those that would not shrink by
``min_compression_rate`` (n m < rate r (n + m)) go whole in the first allreduce. Before
``start_step`` the bucket is reduced whole, exactly as Sync.
"""
import math
from dataclasses import dataclass

import torch

from horovod_ext import ops
from horovod_ext.codecs.base import Codec, allreduce, check_linear_op
from horovod_ext.runtime import checks, log

EPS = 1e-12  # Gram-Schmidt: a column below this fraction of the largest is numerical zero


def orthonormalize(p):
    """Gram-Schmidt on the columns of p (n x r), in place, computed in float64: P = M Q inherits
    the condition number of both, and in float32 the columns of a well-conditioned full-rank
    gradient lose their orthogonality (an update 5e-3 off where float64 gives 1e-6). The epsilon
    that keeps a zero column finite is relative to p's scale: gradients are small, and an
    absolute one would leave the columns of a full-rank but ill-conditioned P unnormalised."""
    w = p.double()
    eps = max(EPS * w.norm(dim=0).max().item(), 1e-300) if w.numel() else 1.0
    for i in range(w.shape[1]):
        col = w[:, i:i + 1]
        col.div_(col.norm() + eps)
        if i + 1 < w.shape[1]:
            rest = w[:, i + 1:]
            rest.sub_(col @ (col.t() @ rest))
    p.copy_(w)


def factors(codec, shapes):
    """Which of a bucket's tensors (by shape) the codec compresses: ([(k, n, m, r)] of the
    compressed, a matrix n x m at rank r; [k] of those sent whole)."""
    mats, whole = [], []
    for k, shape in enumerate(shapes):
        n = shape[0] if len(shape) >= 2 else 0
        m = math.prod(shape) // n if n else 0
        r = min(codec.rank, n, m)
        if len(shape) >= 2 and n * m >= codec.min_compression_rate * r * (n + m):
            mats.append((k, n, m, r))
        else:
            whole.append(k)
    return mats, whole


def wire_numels(mats, whole_numel):
    """Elements of the two allreduces (P with the tensors sent whole, then Q) for ``mats`` as
    ``factors`` gives them."""
    return (sum(n * r for _, n, _, r in mats) + whole_numel,
            sum(m * r for _, _, m, r in mats))


class _BucketState:
    """Which tensors of a bucket are compressed, their Q and error, and the two wire buffers."""

    def __init__(self, codec, view):
        self.mats, self.whole = factors(codec, view.shapes)
        flat = view.flat
        p_numel, q_numel = wire_numels(self.mats, sum(view.numel_of(k) for k in self.whole))
        self.pbuf, self.qbuf = flat.new_empty(p_numel), flat.new_empty(q_numel)
        self.q = {}
        self.error = {}
        for k, n, m, r in self.mats:
            self.q[k] = codec.initial_q(m, r, k, view.index, flat)
            self.error[k] = torch.zeros(n, m, dtype=flat.dtype, device=flat.device) \
                if codec.error_feedback else None


@dataclass(frozen=True)
class PowerSGD(Codec):
    """``compression=hvd_ext.PowerSGD(rank=4)``: see the module docstring.

    Args:
        rank: r, columns of the low-rank factors.
        start_step: steps sent whole (exactly Sync's) before compressing.
        warm_start: start each step's power iteration from the last Q.
        error_feedback: keep what the approximation lost and add it to the next gradient.
        min_compression_rate: a matrix is compressed only if it shrinks at least this much.
        seed: the seed of the first Q, the same on every rank.
    """

    rank: int = 4
    start_step: int = 10
    warm_start: bool = True
    error_feedback: bool = True
    min_compression_rate: float = 2.0
    seed: int = 0
    name = "powersgd"
    stages = 2
    shared = True

    def __post_init__(self):
        checks.positive_int("PowerSGD.rank", self.rank)
        checks.non_negative_int("PowerSGD.start_step", self.start_step)
        checks.boolean("PowerSGD.warm_start", self.warm_start)
        checks.boolean("PowerSGD.error_feedback", self.error_feedback)
        checks.positive_number("PowerSGD.min_compression_rate", self.min_compression_rate)
        checks.non_negative_int("PowerSGD.seed", self.seed)

    def initial_q(self, m, r, k, bucket_index, like, step=0):
        g = torch.Generator().manual_seed(hash((self.seed, bucket_index, k, m, r, step)) % 2**62)
        return torch.randn(m, r, generator=g, dtype=torch.float64).to(like)

    def check(self, settings):
        check_linear_op(self, settings)

    def new_state(self, view):
        state = _BucketState(self, view)
        log.debug("PowerSGD bucket %d: %s; whole (1-D, or shrinking by less than %g): %s",
                  view.index, ", ".join(f"{n}x{m} at rank {r}" for _, n, m, r in state.mats)
                  or "nothing compressed", self.min_compression_rate,
                  ", ".join(str(tuple(view.shapes[k])) for k in state.whole) or "none")
        return state

    def buffers(self, state):
        return [state.pbuf, state.qbuf] + list(state.q.values()) + \
            [e for e in state.error.values() if e is not None]

    def exchange(self, view, prefix, st, step):
        s = view.state
        if step < self.start_step or not s.mats:
            yield allreduce(view.flat, prefix, st)
            return
        ms = {k: view.views[k].view(n, m) for k, n, m, _ in s.mats}
        p_views, at = {}, 0
        for k, n, m, r in s.mats:
            if s.error[k] is not None:
                ms[k].add_(s.error[k])
            p_views[k] = s.pbuf[at:at + n * r].view(n, r)
            at += n * r
            torch.matmul(ms[k], s.q[k], out=p_views[k])
        whole = [view.views[k] for k in s.whole]
        whole_offsets = _offsets(at, whole)
        ops.pack(whole, s.pbuf, whole_offsets, 1.0)
        yield allreduce(s.pbuf, prefix + ".P", st)
        q_views, at = {}, 0
        for k, n, m, r in s.mats:
            orthonormalize(p_views[k])
            q_views[k] = s.qbuf[at:at + m * r].view(m, r)
            at += m * r
            torch.matmul(ms[k].t(), p_views[k], out=q_views[k])
        yield allreduce(s.qbuf, prefix + ".Q", st)
        for k, n, m, r in s.mats:  # two passes over M: the error (fused GEMM), the update
            if s.error[k] is not None:
                torch.addmm(ms[k], p_views[k], q_views[k].t(), alpha=-1, out=s.error[k])
            torch.matmul(p_views[k], q_views[k].t(), out=ms[k])
            if self.warm_start:
                s.q[k].copy_(q_views[k])
            else:
                s.q[k].copy_(self.initial_q(m, r, k, view.index, s.q[k], step + 1))
        ops.unpack(s.pbuf, whole_offsets, whole, 1.0, False)

    def shared_tensors(self, state):
        return [state.q[k] for k, _, _, _ in state.mats]

    def save(self, state, k):
        if k not in state.q:
            return None
        return {"q": state.q[k].clone(),
                "error": None if state.error[k] is None else state.error[k].clone()}

    def load(self, state, k, saved):
        if k in state.q and saved is not None and saved["q"].shape == state.q[k].shape:
            state.q[k].copy_(saved["q"])
            if state.error[k] is not None and saved["error"] is not None:
                state.error[k].copy_(saved["error"])

    def reset(self, state):
        for e in state.error.values():
            if e is not None:
                e.zero_()


def _offsets(start, tensors):
    out = []
    for t in tensors:
        out.append(start)
        start += t.numel()
    return out
