"""DiLoCo (Douillard et al. 2023): local steps with the wrapped optimizer, then an outer Nesterov
step on the ranks' averaged parameter change; streamed in fragments (Streaming DiLoCo, 2025)."""
from dataclasses import dataclass

import torch

from horovod_ext import checks
from horovod_ext.engine.bucket import Bucket
from horovod_ext.engine.codec_agreement import broadcast_shared
from horovod_ext.engine.flats import ParamFlats
from horovod_ext.modes.averaging import AveragingConfig, AveragingMode


@dataclass(frozen=True)
class DiLoCo(AveragingConfig):
    """Each rank steps with its own gradient and the wrapped optimizer (its state stays local).
    The outer parameters theta start as the parameters at the first ``step()``. Parameter tensor
    j (optimizer order) belongs to fragment j * F // T; after step t, fragment f has a round when
    (t + 1) % period == (f * period // F) % period: with x the rank's parameters,
    delta = mean over ranks of (theta - x) (one exchange per dtype through the ``compression``
    codec, as a gradient bucket's; a codec's step is the fragment's round number, counted from
    0, so ``PowerSGD(start_step=s)`` sends the first s rounds whole),
    buf = outer_momentum * buf + delta, d = delta + outer_momentum * buf (Nesterov) or buf,
    theta -= outer_lr * d, and every rank's x becomes theta. With outer_lr=1 and
    outer_momentum=0 it is LocalSGD(period)."""

    period: int
    outer_lr: float = 0.7
    outer_momentum: float = 0.9
    nesterov: bool = True
    fragments: int = 1
    name = "diloco"
    compresses_rounds = True  # compression applies to the pseudo-gradient

    def __post_init__(self):
        checks.positive_int("DiLoCo.period", self.period)
        checks.finite_non_negative("DiLoCo.outer_lr", self.outer_lr)
        if self.outer_lr == 0:
            raise ValueError(f"DiLoCo.outer_lr must be > 0; got {self.outer_lr!r}")
        checks.finite_non_negative("DiLoCo.outer_momentum", self.outer_momentum)
        if self.outer_momentum >= 1:
            raise ValueError(f"DiLoCo.outer_momentum must be in [0, 1); got "
                             f"{self.outer_momentum!r}")
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"DiLoCo.nesterov must be True or False; got {self.nesterov!r}")
        checks.positive_int("DiLoCo.fragments", self.fragments)
        if self.fragments > self.period:
            raise ValueError(f"DiLoCo.fragments must be <= period ({self.period}); got "
                             f"{self.fragments}")

    def check(self, settings, optimizer):
        super().check(settings, optimizer)
        tensors = sum(len(g["params"]) for g in optimizer.param_groups)
        if self.fragments > tensors:
            raise ValueError(f"DiLoCo.fragments must be <= the number of parameter tensors "
                             f"({tensors}); got {self.fragments}")

    def build(self, optimizer, inner, settings):
        return DiLoCoMode(self, optimizer, inner, settings)


class DiLoCoMode(AveragingMode):
    def __init__(self, config, optimizer, inner, settings):
        super().__init__(config, optimizer, inner, settings)
        n, F, H = len(self._params), config.fragments, config.period
        members = [[p for j, p in enumerate(self._params) if j * F // n == f] for f in range(F)]
        self._fragments = [ParamFlats(ps) for ps in members]
        self._phase = [(f * H // F) % H for f in range(F)]  # a round when t % H == phase
        self._theta = None   # per fragment, flat buffers per dtype (equal on every rank)
        self._buf = None     # outer momentum, same layout
        # The pseudo-gradient of each fragment and dtype lives in a bucket of the fragment's
        # parameters (the layout of ParamFlats), so it crosses the wire through the codec.
        self._codec = settings.codec
        self._buckets, index = [], 0
        for fr in self._fragments:
            self._buckets.append([Bucket(index + i, ps, self._codec)
                                  for i, (ps, _, _) in enumerate(fr.groups)])
            index += len(fr.groups)
        self._delta = [[b.flat for b in bs] for bs in self._buckets]

    def buffers(self):
        codec = [t for bs in self._buckets for b in bs for t in self._codec.buffers(b.codec_state)]
        return [t for part in (self._theta or []) + (self._buf or []) + self._delta
                for t in part] + codec

    def prepare(self):
        if self._theta is None:  # not loaded here nor agreed from the first rank
            self._start_outer()

    def _start_outer(self):
        self._theta = [fr.empty() for fr in self._fragments]
        for fr, theta in zip(self._fragments, self._theta):
            fr.copy_params_to(theta)
        self._buf = [[torch.zeros_like(t) for t in theta] for theta in self._theta]

    def after_inner_step(self):
        for f, phase in enumerate(self._phase):
            if self._t % self.config.period == phase:
                self._round(f)

    def _round(self, f):
        cfg, fr = self.config, self._fragments[f]
        fr.copy_params_to(self._delta[f])
        rounds = (self._t - 1) // cfg.period  # this fragment's earlier rounds
        self.meet(f"the outer round of fragment {f} after step {self._t}")

        def count(kind, tensor):
            self.count(kind, tensor, self.process_set)

        for i, (theta, delta, buf) in enumerate(zip(self._theta[f], self._delta[f], self._buf[f])):
            torch.sub(theta, delta, out=delta)                  # theta - x
            bucket, name = self._buckets[f][i], f"hvd_ext.diloco.{f}.{i}"
            bucket.start_allreduce(name, self.settings, rounds, count)
            bucket.wait_allreduce(self.settings, name)          # delta <- decoded mean
            buf.mul_(cfg.outer_momentum).add_(delta)
            step = delta.add_(buf, alpha=cfg.outer_momentum) if cfg.nesterov else buf
            theta.sub_(step, alpha=cfg.outer_lr)
        fr.load_params_from(self._theta[f])

    def consensus_params(self):
        """theta, the outer parameters (the parameters themselves before the first step)."""
        return self.showing(self._load_theta)

    def _load_theta(self):
        if self._theta is not None:
            for fr, theta in zip(self._fragments, self._theta):
                fr.load_params_from(theta)

    def state(self):
        clone = (lambda parts: None if parts is None else [[t.clone() for t in p] for p in parts])
        return dict(super().state(), theta=clone(self._theta), buf=clone(self._buf),
                    codec=self._codec_saved())

    def own_state(self):
        """Each rank keeps its codec state through the agreement: error feedback is its own
        (the shared part, PowerSGD's Q, is then broadcast by ``agree_once``)."""
        return dict(super().own_state(), codec=self._codec_saved())

    def _codec_saved(self):
        """The codec's state per fragment, dtype bucket and parameter."""
        return [[[self._codec.save(b.codec_state, k) for k in range(len(b.params))] for b in bs]
                for bs in self._buckets]

    def load_state(self, saved):
        super().load_state(saved)
        if saved.get("theta") is not None:
            self._theta = [[t.clone() for t in p] for p in saved["theta"]]
            self._buf = [[t.clone() for t in p] for p in saved["buf"]]
        for bs, entry in zip(self._buckets, saved.get("codec", [])):
            for b, per_param in zip(bs, entry):
                for k, kept in enumerate(per_param):
                    self._codec.load(b.codec_state, k, kept)

    def agree_once(self):
        """The mode's agreement (NOTE: [rank-0 resume]), then the codec state every rank must
        hold alike (PowerSGD's Q) from the first rank."""
        if self._agreed:
            return
        super().agree_once()
        broadcast_shared(self._codec, [b for bs in self._buckets for b in bs], self.process_set,
                         "hvd_ext.diloco.codec")

    def on_reset(self):
        """Elastic resize: other ranks, other averages; the codec forgets what it learned and
        the next step agrees again."""
        for bs in self._buckets:
            for b in bs:
                self._codec.reset(b.codec_state)
        super().on_reset()
