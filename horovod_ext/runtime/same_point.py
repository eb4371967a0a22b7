"""Before each collective the optimizer issues on its own (the tuner's timings and knob claim,
the bucket plan from the first rank, the codec state from the first rank, every averaging
round), the ranks check that they are all at the same point.

NOTE: [same point] Horovod pairs collectives by name. Two ranks that disagree about where they
are in the tuning, the planning or the rounds submit different names and each waits for the
other forever: Horovod only warns, on the first rank, after 60 s. So every such collective is
preceded by ``same_point(what)``: one allgather of a hash of ``what`` (a sentence naming the
collective and its step) under one fixed name, which completes whichever point each rank is
at. When the hashes differ, every rank raises the same RuntimeError naming each rank's point.

A rank can also wait at a point while another waits in a gradient allreduce, which never
completes without it. Where that is possible (the gradient modes' points: the others are past
the same step's exchange, so they arrive within a step's compute), the wait is bounded by
``HOROVOD_EXT_SAME_POINT_TIMEOUT`` seconds (default 300); then Horovod is shut down on this rank
and it raises a TimeoutError naming the point, and the others, waiting in their collective,
fail at once with Horovod's shut-down error (failure.stop_all_ranks). Averaging rounds wait without a bound: those modes
issue no collective but at points, so a disagreement there always meets another point, and a
rank may legitimately be late by a whole evaluation.

NOTE: [one round, one cycle] On a link with latency every Horovod cycle costs round trips (the
negotiation, then the collective). An averaging round therefore starts its point check and its
exchange together (``Point``), waits for both where it needs the result, and checks the point
first: one negotiation per round instead of two, and an overlapped round blocks on nothing.
"""
import hashlib
import os
import time

import horovod.torch as hvd
import torch

from horovod_ext.runtime import session
from horovod_ext.runtime.failure import stop_all_ranks
from horovod_ext.runtime.same_setup import allgather_bytes

NAME = "hvd_ext.same_point"
TIMEOUT_ENV = "HOROVOD_EXT_SAME_POINT_TIMEOUT"


def timeout_seconds():
    """The bound of the gradient modes' points, from ``HOROVOD_EXT_SAME_POINT_TIMEOUT``."""
    raw = os.environ.get(TIMEOUT_ENV, "300")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds > 0; got {raw!r}")
    return value


def _code(what):
    return int.from_bytes(hashlib.sha256(what.encode()).digest()[:8], "little", signed=True)


def _ranks(process_set):
    return list(range(hvd.size())) if process_set.ranks is None else list(process_set.ranks)


class Point:
    """A same-point check in flight: ``start`` it beside the collectives it guards, so that all
    of them are negotiated in one Horovod cycle (NOTE: [one round, one cycle]), and ``finish`` it
    before using their results. Disagreeing ranks then raise at ``finish``; the collectives
    they submitted under different names never complete, and are dropped with Horovod."""

    def __init__(self, what="", process_set=None):
        """Without ``process_set``: a check already passed (a round restored from a checkpoint)."""
        self.what, self.process_set, self.handle = what, process_set, None
        self.session = session.token()
        if process_set is not None and process_set.included() and process_set.size() >= 2:
            self.handle = hvd.allgather_async(torch.tensor([_code(what)], dtype=torch.int64),
                                              name=NAME, process_set=process_set)

    def finish(self, bounded=False):
        """Returns once every rank started the same point; raises on every rank when they differ.
        ``bounded``: wait at most ``timeout_seconds()``."""
        if self.handle is None:
            return
        handle, what, self.handle = self.handle, self.what, None
        if bounded:
            limit = timeout_seconds()
            deadline, pause = time.monotonic() + limit, 5e-5
            while not hvd.poll(handle):
                if time.monotonic() > deadline:
                    stop_all_ranks(TimeoutError(
                        f"horovod_ext: rank {hvd.rank()} waited {limit:g} s at {what}, and the "
                        f"other ranks did not reach it: they are at another collective or "
                        f"stopped training ({TIMEOUT_ENV} sets the bound); Horovod was shut down "
                        f"so that they stop waiting too"))
                time.sleep(pause)
                pause = min(2 * pause, 1e-3)
        codes = hvd.synchronize(handle)
        if bool((codes == codes[0]).all()):
            return
        points = [b.decode() for b in allgather_bytes(what.encode(), self.process_set,
                                                      NAME + ".what")]
        where = "; ".join(f"rank {r} at {p}" for r, p in zip(_ranks(self.process_set), points))
        raise RuntimeError(f"horovod_ext: the ranks reached different collectives of the "
                           f"optimizer and would wait on each other forever: {where}")


    def drop(self, wait):
        """Forgets the check: waits for its collective (``wait``, or while its Horovod session
        runs: every rank started it, and its fixed name must be free for the next point) or
        abandons it (a session that is over: NOTE: [session token])."""
        if self.handle is not None and (wait or session.is_current(self.session)):
            hvd.synchronize(self.handle)
        self.handle = None


PASSED = Point()  # a check already passed: a round restored from a checkpoint


def same_point(what, process_set, bounded):
    """Returns once every rank of ``process_set`` called ``same_point`` with the same ``what``;
    raises on every rank when they differ (see NOTE: [same point]). ``bounded``: wait at most
    ``timeout_seconds()``."""
    Point(what, process_set).finish(bounded)
