"""The parameters as flat buffers, one per (dtype, device), in the layout of ``codecs/view.py``: what
the averaging modes move with one collective per buffer and update with one fused kernel."""
import torch

from horovod_ext import ops
from horovod_ext.codecs.view import flat_offsets


class ParamFlats:
    """``groups``: (params, offsets, total elements), one per (dtype, device), in first-seen order."""

    def __init__(self, params):
        by_key = {}
        for p in params:
            by_key.setdefault((p.dtype, p.device), []).append(p)
        self.groups = []
        for ps in by_key.values():
            offsets, total = flat_offsets(p.numel() for p in ps)
            self.groups.append((ps, offsets, total))

    def empty(self):
        """New flat buffers of this layout."""
        return [torch.empty(n, dtype=ps[0].dtype, device=ps[0].device) for ps, _, n in self.groups]

    def copy_params_to(self, flats):
        """flats <- the parameters."""
        with torch.no_grad():
            for (ps, offs, _), f in zip(self.groups, flats):
                ops.pack([p.detach() for p in ps], f, offs, 1.0)

    def load_params_from(self, flats, scale=1.0):
        """The parameters <- scale * flats."""
        with torch.no_grad():
            for (ps, offs, _), f in zip(self.groups, flats):
                ops.unpack(f, offs, [p.data for p in ps], scale, False)

    def pull_params_toward(self, flats, lam):
        """The parameters <- x - lam * (x - flats)."""
        with torch.no_grad():
            for (ps, offs, _), f in zip(self.groups, flats):
                ops.pull([p.data for p in ps], f, offs, lam)

    def easgd_update(self, center, totals, alpha, n):
        """EASGD's worker and center update (see ``ops.easgd``), every group in one pass each."""
        with torch.no_grad():
            for (ps, offs, _), c, s in zip(self.groups, center, totals):
                ops.easgd([p.data for p in ps], c, s, offs, alpha, n)
