"""Gradient noise statistics measured from the run itself (McCandlish et al. 2018, App. A).

With N ranks of per-rank batch b, each step gives two unbiased views of the gradient: the mean
over ranks of the local squared norms, E = |G|^2 + tr(S)/b, and the squared norm of the
averaged gradient, E = |G|^2 + tr(S)/(N b). Solving the two for |G|^2 and tr(S) gives per-step
unbiased estimates; ``noise_scale`` (B_noise) is the ratio of their moving averages.

The optimizer's statistics tap queues one pair of norms per reduced gradient (``observe`` reads
them): the local norms ride in the last bucket's allreduce as one extra element, the global norm
is taken after the reduction, both by the fused multi-tensor norm kernel. Nothing here
communicates.
"""
import json
import math
import statistics
from collections import deque
from typing import Deque, List


DRAIN_EVERY = 64


class GradientStats:
    """Gradient noise scale of a run: pass ``stats=GradientStats(batch_size=b)`` to
    ``hvd_ext.DistributedOptimizer`` and read ``optimizer.gradient_stats``.

    batch_size: samples behind one rank's gradient of one step (all backward passes of it).
    ema: decay of the moving averages of |G|^2 and tr(S) (bias-corrected, as in Adam), per
    observed step.
    every: observe every ``every``-th step only (steps 0, every, 2 every, ...). Each observed
    step costs two read passes over the gradients (the local norm, the averaged one).
    history: how many observed steps ``history`` keeps (the latest; memory stays bounded in
    long runs). The moving averages cover every step.
    """

    def __init__(self, batch_size: int, ema: float = 0.99, every: int = 1,
                 history: int = 10_000) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"GradientStats.batch_size must be an int >= 1; got {batch_size!r}")
        if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0 <= ema < 1:
            raise ValueError(f"GradientStats.ema must be a number in [0, 1); got {ema!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"GradientStats.every must be an int >= 1; got {every!r}")
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"GradientStats.history must be an int >= 1; got {history!r}")
        self.batch_size = batch_size
        self.every = every
        self.ema = float(ema)
        self.ranks = None     # set by the optimizer it is given to
        self.staleness = 0    # idem: the delay of the gradients it sees
        self._history: Deque[dict] = deque(maxlen=history)  # one dict per observed step
        self._observed = 0    # steps observed, including those dropped from the history
        self._pending: List[tuple] = []  # (step, tensor [local, global]) not converted yet
        self._g2 = self._tr = 0.0  # uncorrected moving averages
        self._weight = 0.0         # 1 - ema**steps, their bias correction

    def attach(self, ranks, staleness=0):
        """Says how many ranks average each observed gradient and how stale it is. The optimizer
        it is given to calls it; call it yourself to feed ``observe()`` from one process (a
        simulation of ``ranks`` workers, say). Once only."""
        if self.ranks is not None:
            raise ValueError("this GradientStats is already attached to an optimizer; "
                             "create one per optimizer")
        self.ranks, self.staleness = ranks, staleness

    def queue(self, step, norms):
        """Queues a device tensor [mean_i |g_i|^2, |g_bar|^2] without waiting for it; every
        ``DRAIN_EVERY`` steps the queue is read (one device sync), so it stays bounded when
        nobody reads the statistics."""
        self._pending.append((step, norms))
        if len(self._pending) >= DRAIN_EVERY:
            self._drain()

    def _drain(self):
        pending, self._pending = self._pending, []
        for step, norms in pending:
            local, global_ = norms.tolist()
            self.observe(step, local, global_)

    def observe(self, step, local_sq_norm, global_sq_norm):
        """Adds one step: ``local_sq_norm`` = mean over ranks of |g_i|^2 (batch b each),
        ``global_sq_norm`` = |mean_i g_i|^2 (batch N b)."""
        if self.ranks is None or self.ranks < 2:
            raise ValueError("GradientStats needs ranks >= 2 before observing a step")
        if not (math.isfinite(local_sq_norm) and math.isfinite(global_sq_norm)):
            return  # a non-finite gradient (skipped or ignored) would poison the averages for good
        b_small, b_big = self.batch_size, self.batch_size * self.ranks
        g2 = (b_big * global_sq_norm - b_small * local_sq_norm) / (b_big - b_small)
        tr = (local_sq_norm - global_sq_norm) / (1.0 / b_small - 1.0 / b_big)
        beta = self.ema
        self._g2 = beta * self._g2 + (1 - beta) * g2
        self._tr = beta * self._tr + (1 - beta) * tr
        self._weight = beta * self._weight + (1 - beta)
        self._observed += 1
        self._history.append({"step": step, "local_sq_norm": local_sq_norm,
                             "grad_sq_norm": global_sq_norm, "g2": g2, "trace": tr,
                             "noise_scale": _finite_or_none(self._ratio())})

    def _ratio(self):
        if self._weight == 0.0:
            return math.nan
        return self._tr / self._g2 if self._g2 > 0 else math.inf

    # ---- what users read ------------------------------------------------------------------
    @property
    def history(self):
        """One dict per observed step, oldest first: step (of the gradient), local_sq_norm,
        grad_sq_norm, the step's unbiased estimates g2 (|G|^2) and trace (tr S), and
        noise_scale (the ratio of moving averages after it; None while undefined)."""
        self._drain()
        return list(self._history)

    @property
    def steps(self):
        """Steps observed so far (the history keeps the latest ``history`` of them)."""
        self._drain()
        return self._observed

    @property
    def noise_scale(self):
        """B_noise = EMA(tr S) / EMA(|G|^2), in samples; inf while the mean gradient's estimate
        is not positive (noise dominates), nan before the first step."""
        self._drain()
        return self._ratio()

    @property
    def critical_batch(self):
        """The global batch beyond which more samples per step stop buying fewer steps, to a
        loss near the current one: B_crit ~ B_noise (McCandlish et al. 2018), as
        ``recent_noise_scale(history)``: checked against steps to a target measured at several
        batch sizes on the text task (docs, Advisor)."""
        self._drain()
        return recent_noise_scale(self._history)

    @property
    def grad_sq_norm(self):
        """|g_bar|^2 of the latest step: the squared norm of the averaged gradient."""
        self._drain()
        return self._history[-1]["grad_sq_norm"] if self._history else math.nan

    @property
    def local_grad_sq_norm(self):
        """Mean over ranks of |g_i|^2 of the latest step."""
        self._drain()
        return self._history[-1]["local_sq_norm"] if self._history else math.nan

    @property
    def true_grad_sq_norm(self):
        """Moving average of the unbiased estimate of |G|^2 (bias-corrected)."""
        self._drain()
        return self._g2 / self._weight if self._weight else math.nan

    @property
    def trace_cov(self):
        """Moving average of the unbiased estimate of tr(S), the per-sample gradient variance."""
        self._drain()
        return self._tr / self._weight if self._weight else math.nan

    def state_dict(self):
        self._drain()
        return {"g2": self._g2, "tr": self._tr, "weight": self._weight,
                "observed": self._observed, "history": [dict(h) for h in self._history]}

    def load_state_dict(self, state):
        self._pending = []
        self._g2, self._tr, self._weight = state["g2"], state["tr"], state["weight"]
        self._history.clear()
        self._history.extend(dict(h) for h in state["history"])
        self._observed = state.get("observed", len(self._history))

    def to_json(self):
        self._drain()
        return {"batch_size": self.batch_size, "ranks": self.ranks, "ema": self.ema,
                "every": self.every,
                "staleness": self.staleness, "noise_scale": _finite_or_none(self._ratio()),
                "history": list(self._history)}

    def save(self, path):
        """Writes ``to_json()`` to ``path``; ``python -m horovod_ext.advise path`` reads it."""
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1)


def recent_noise_scale(history):
    """The median of B_noise (the moving-average ratio after each step) over the latest quarter
    of ``history`` (at least one step): the noise scale grows as the loss falls, so the recent
    stretch says most about the steps ahead, and the median steadies a ratio whose denominator
    can come near zero. inf when noise dominates there; nan before any step."""
    recent = list(history)[-max(1, len(history) // 4):]
    if not recent:
        return math.nan
    return statistics.median(math.inf if h["noise_scale"] is None else h["noise_scale"]
                             for h in recent)


def _finite_or_none(x):
    return x if math.isfinite(x) else None
