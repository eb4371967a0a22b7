"""DiLoCo (Douillard et al. 2023): local steps with the wrapped optimizer, then an outer Nesterov
step on the ranks' averaged parameter change; streamed in fragments, each fragment's exchange
overlapping the next inner steps (Streaming DiLoCo, Douillard et al. 2025)."""
from dataclasses import dataclass
from typing import Union

import torch

from horovod_ext.codecs import BucketView
from horovod_ext.codecs.base import Wire
from horovod_ext.codecs.shared import broadcast_shared
from horovod_ext.modes.averaging import AveragingConfig, AveragingMode
from horovod_ext.modes.flats import ParamFlats
from horovod_ext.modes.period_choice import PROBE_PERIOD, PeriodProbe
from horovod_ext.runtime import checks, log
from horovod_ext.runtime.same_point import PASSED


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
    outer_momentum=0 it is LocalSGD(period).

    ``overlap=tau`` (0 <= tau < period // fragments) lets a round's exchange run during the next
    tau inner steps: delta is taken after step t, the outer step is done after step t + tau,
    and the fragment's x then becomes (1 - mix) * theta + mix * x (torchft's
    ``fragment_sync_delay`` and ``fragment_update_alpha``). After each step the rounds due are
    applied before new ones are launched; ``flush()`` applies every round in flight. With
    ``overlap=0, mix=0`` (the defaults) a round is applied where it starts, as above.

    ``period="auto"`` times an inner step and a round over the first 8 steps, then takes the
    smallest period of 8, 16, ..., 256 whose round an overlap of ``period // (2 * fragments)``
    steps hides (``period_choice.py``; logged, the same on every rank).

    Args:
        period: H, local steps between a fragment's rounds, or "auto".
        outer_lr: the outer learning rate (default 1.0).
        outer_momentum: the outer momentum in [0, 1) (default 0.5).
        nesterov: Nesterov outer momentum (default True).
        fragments: F, parts of the model sent in rounds spread over the period.
        overlap: tau, local steps a round's exchange runs behind (0 <= tau < period // F).
        mix: alpha in [0, 1], the weight of the local parameters when a round lands.
    """

    period: Union[int, str]
    outer_lr: float = 1.0     # the best of the measured grid at tens of outer steps (docs/modes.md)
    outer_momentum: float = 0.5
    nesterov: bool = True
    fragments: int = 1
    overlap: int = 0
    mix: float = 0.0
    name = "diloco"
    compresses_rounds = True  # compression applies to the pseudo-gradient

    def __post_init__(self):
        if self.period != "auto":
            checks.positive_int("DiLoCo.period", self.period)
        elif self.overlap != 0 or self.fragments > PROBE_PERIOD:
            raise ValueError(f"DiLoCo(period='auto') chooses the overlap with the period and "
                             f"probes at period {PROBE_PERIOD}: leave DiLoCo.overlap at 0 (got "
                             f"{self.overlap!r}) and give DiLoCo.fragments <= {PROBE_PERIOD} "
                             f"(got {self.fragments!r})")
        checks.positive_number("DiLoCo.outer_lr", self.outer_lr)
        checks.finite_non_negative("DiLoCo.outer_momentum", self.outer_momentum)
        if self.outer_momentum >= 1:
            raise ValueError(f"DiLoCo.outer_momentum must be in [0, 1); got "
                             f"{self.outer_momentum!r}")
        checks.boolean("DiLoCo.nesterov", self.nesterov)
        checks.positive_int("DiLoCo.fragments", self.fragments)
        period = PROBE_PERIOD if self.period == "auto" else self.period
        if self.fragments > period:
            raise ValueError(f"DiLoCo.fragments must be <= period ({self.period}); got "
                             f"{self.fragments}")
        checks.non_negative_int("DiLoCo.overlap", self.overlap)
        if self.overlap >= period // self.fragments:
            raise ValueError(f"DiLoCo.overlap must be < period // fragments "
                             f"({period // self.fragments}): a fragment's round is applied "
                             f"before the next one starts; got {self.overlap}")
        checks.weight("DiLoCo.mix", self.mix)

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
        n, F = len(self._params), config.fragments
        members = [[p for j, p in enumerate(self._params) if j * F // n == f] for f in range(F)]
        self._fragments = [ParamFlats(ps) for ps in members]
        self._probe = PeriodProbe() if config.period == "auto" else None
        self._rounds = [0] * F  # each fragment's rounds so far (a codec's step)
        self._set_period(PROBE_PERIOD if self._probe else config.period,
                         0 if self._probe else config.overlap)
        self._theta = None   # per fragment, flat buffers per dtype (equal on every rank)
        self._buf = None     # outer momentum, same layout
        # The pseudo-gradient of each fragment and dtype is a bucket view of the fragment's
        # parameters (the layout of ParamFlats), so it crosses the wire through the codec.
        self._codec = settings.codec
        self._wires, index = [], 0
        for fr in self._fragments:
            self._wires.append([
                Wire(self._codec, BucketView(index + i, torch.zeros(n, dtype=ps[0].dtype,
                                                                    device=ps[0].device),
                                             [p.shape for p in ps],
                                             [settings.name_of.get(p, "?") for p in ps]))
                for i, (ps, _, n) in enumerate(fr.groups)])
            index += len(fr.groups)
        self._delta = [[w.view.flat for w in ws] for ws in self._wires]
        # Rounds launched, not applied: (fragment, step due, its same-point check: NOTE: [one
        # round, one cycle]); their exchanges on the wire, or done into ``_delta[f]``.
        self._flight = []

    def _set_period(self, period, overlap):
        self._period, self._overlap = period, overlap
        self._phase = [(f * period // len(self._fragments)) % period
                       for f in range(len(self._fragments))]  # a round when t % H == phase

    def buffers(self):
        codec = [t for ws in self._wires for w in ws for t in self._codec.buffers(w.view.state)]
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

    def before_step(self, closure, synchronize):
        """Runs the next stages of the exchanges in flight whose collective completed."""
        for f, _, _ in self._flight:
            for w in self._wires[f]:
                w.advance()
        return super().before_step(closure, synchronize)

    def after_inner_step(self):
        if self._probe is None:
            self._rounds_due()
        elif chosen := self._probe.timed_step(self._rounds_due, self._t, len(self._fragments),
                                              self.process_set, self.meet):
            self._set_period(*chosen)
            self._probe = None

    def _rounds_due(self):
        """Applies the rounds due after this step, launches the new ones; returns how many."""
        while self._flight and self._flight[0][1] == self._t:
            self._apply(self._flight.pop(0))
        due = [f for f, phase in enumerate(self._phase) if self._t % self._period == phase]
        for f in due:
            self._launch(f)
            if self._overlap == 0:
                self._apply(self._flight.pop())
        return len(due)

    def _launch(self, f):
        fr = self._fragments[f]
        fr.copy_params_to(self._delta[f])
        rounds = self._rounds[f]  # this fragment's earlier rounds
        self._rounds[f] += 1
        point = self.start_point(f"the outer round of fragment {f} after step {self._t}")

        def count(kind, tensor):
            self.count(kind, tensor, self.process_set)

        for i, (theta, delta) in enumerate(zip(self._theta[f], self._delta[f])):
            torch.sub(theta, delta, out=delta)                  # theta - x
            self._wires[f][i].start(f"hvd_ext.diloco.{f}.{i}", self.settings, rounds, count)
        self._flight.append((f, self._t + self._overlap, point))

    def _apply(self, round_):
        """The outer step of a fragment's round in flight, then its x from theta (and mix)."""
        f, _, point = round_
        point.finish()
        cfg, fr = self.config, self._fragments[f]
        for i, (theta, delta, buf) in enumerate(zip(self._theta[f], self._delta[f], self._buf[f])):
            self._wires[f][i].wait(f"the exchange of DiLoCo's fragment {f}, dtype bucket {i}")
            buf.mul_(cfg.outer_momentum).add_(delta)            # delta: the decoded mean
            step = delta.add_(buf, alpha=cfg.outer_momentum) if cfg.nesterov else buf
            theta.sub_(step, alpha=cfg.outer_lr)
        if cfg.mix == 0:
            fr.load_params_from(self._theta[f])
            return
        fr.copy_params_to(self._delta[f])
        for theta, mixed in zip(self._theta[f], self._delta[f]):
            mixed.mul_(cfg.mix).add_(theta, alpha=1 - cfg.mix)
        fr.load_params_from(self._delta[f])

    def flush(self, apply=None):
        """Applies every round in flight, in launch order (``apply`` has nothing to do here:
        DiLoCo keeps no gradient pending)."""
        while self._flight:
            self._apply(self._flight.pop(0))

    def consensus_params(self):
        """theta, the outer parameters (the parameters themselves before the first step)."""
        return self.showing(self._load_theta)

    def _load_theta(self):
        if self._theta is not None:
            for fr, theta in zip(self._fragments, self._theta):
                fr.load_params_from(theta)

    def state(self):
        """Adds theta, the outer momentum, the codec's state and the rounds in flight (their
        exchanges are waited for here; the decoded means are saved and applied when due)."""
        clone = (lambda parts: None if parts is None else [[t.clone() for t in p] for p in parts])
        for f, _, point in self._flight:
            point.finish()
            for i, w in enumerate(self._wires[f]):
                w.wait(f"the exchange of DiLoCo's fragment {f}, dtype bucket {i}")
        flight = [dict(fragment=f, due=due, delta=[d.clone() for d in self._delta[f]])
                  for f, due, _ in self._flight]
        return dict(super().state(), theta=clone(self._theta), buf=clone(self._buf),
                    codec=self._codec_saved(), flight=flight, rounds=list(self._rounds),
                    period=self._period, overlap=self._overlap, probing=bool(self._probe))

    def own_state(self):
        """Each rank keeps its codec state when it adopts the first rank's: error feedback is its own
        (the shared part, PowerSGD's Q, is then broadcast by ``adopt_first_rank_state``)."""
        return dict(super().own_state(), codec=self._codec_saved())

    def _codec_saved(self):
        """The codec's state per fragment, dtype bucket and parameter."""
        return [[w.saved() for w in ws] for ws in self._wires]

    def load_state(self, saved):
        super().load_state(saved)
        self._drop_flight(wait=True)
        if "period" in saved:  # the period chosen (or being chosen) for "auto"
            self._set_period(saved["period"], saved["overlap"])
            self._probe = PeriodProbe() if saved["probing"] else None
        self._rounds = list(saved["rounds"]) if "rounds" in saved else [
            (self._t - p) // self._period + (p > 0) if self._t >= p else 0 for p in self._phase]
        for entry in saved.get("flight", []):
            for d, kept in zip(self._delta[entry["fragment"]], entry["delta"]):
                d.copy_(kept)
            self._flight.append((entry["fragment"], entry["due"], PASSED))
        if saved.get("theta") is not None:
            self._theta = [[t.clone() for t in p] for p in saved["theta"]]
            self._buf = [[t.clone() for t in p] for p in saved["buf"]]
        for ws, entry in zip(self._wires, saved.get("codec", [])):
            for w, per_param in zip(ws, entry):
                w.load_saved(per_param)

    def adopt_first_rank_state(self):
        """The first rank's state (NOTE: [rank-0 resume]), then the codec state every rank must
        hold alike (PowerSGD's Q) from the first rank."""
        if self._agreed:
            return
        super().adopt_first_rank_state()
        broadcast_shared(self._codec, [w.view for ws in self._wires for w in ws],
                         self.process_set, "hvd_ext.diloco.codec")

    def on_reset(self):
        """Elastic resize: other ranks, other averages; the codec forgets what it learned and
        the next step agrees again."""
        if self._drop_flight(wait=False):
            log.logger.warning("Horovod was re-initialized with a DiLoCo round on the wire; "
                               "it is dropped")
        for ws in self._wires:
            for w in ws:
                self._codec.reset(w.view.state)
        super().on_reset()

    def _drop_flight(self, wait):
        """Forgets the rounds in flight whose exchange is still on the wire (``wait``: for its
        collective, else abandoned: a Horovod session that is over); True when there was one.
        A round already received (waited for by a commit's ``state()``) is kept, unless
        ``wait`` (a load replaces every round)."""
        on_wire, kept = False, []
        for f, due, point in self._flight:
            point.drop(wait)
            live = [w.drop(wait) for w in self._wires[f]]
            on_wire = on_wire or any(live)
            if not any(live) and not wait:
                kept.append((f, due, point))
        self._flight = kept
        return on_wire
