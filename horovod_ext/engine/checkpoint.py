"""What a GradientEngine saves and restores: the bucket sets still pending and every set's codec
state, in the order the sets take gradients (gradient_engine.py mixes this in); and the restart
after Horovod re-initialized."""
from horovod_ext.runtime import log


class EngineCheckpoint:
    def state_dict(self):
        """The sets still pending (reduced, not applied yet), saved per parameter."""
        self.check_idle("state_dict")
        for s in self._pending:
            self.wait(s)
        pending = [s.saved(self.params) for s in self._pending]
        return {"pending": pending, "grad_steps": self.grad_steps,
                "codec": [self._sets[slot].codec_saved(self.params) for slot in self._ring()]}

    def _ring(self):
        """Set slots in the order they take gradients: the pending ones (oldest first), then the
        current one and the rest of the ring, as load_state_dict lays them out again."""
        n = len(self._sets)
        order = [s.slot for s in self._pending]
        return order + [(self._cur + i) % n for i in range(n) if (self._cur + i) % n not in order]

    def clear(self):
        """Forgets everything in flight or pending (waited for first): a state is loaded next."""
        self.drop_in_flight()
        self._hook_error = None
        for s in self._sets:
            s.reset()
        self._pending.clear()
        self._passes = [0] * len(self.params)

    def load_state_dict(self, saved):
        # NOTE: [plan after a load] The plan is not restored: every rank that loads goes back to
        # the construction-time plan and names, and rebuilds from the next step's gradient order
        # agreed from rank 0, as a rank that loaded nothing does. So Horovod's resume recipe
        # (rank 0 alone loads, then hvd.broadcast_optimizer_state) and an elastic sync with a
        # new worker launch the same buckets under the same names on every rank. Pending
        # gradients are saved per parameter: any plan holds them.
        self.grad_steps = saved.get("grad_steps", 0)
        self._start_plan()
        for s, entry in zip(self._sets, saved["pending"]):
            s.restore(entry, self.params, measured=self._extra > 0)
            self._pending.append(s)
        self._cur = len(saved["pending"]) % len(self._sets)
        self.current.step = self.grad_steps
        for s, entry in zip(self._sets, saved.get("codec", [])):
            s.codec_restore(entry, self.params)
        self._agree_codec = self.codec.shared
        self._show(self.current)

    def restart(self):
        """NOTE: [engine restart] After Horovod was re-initialized (an elastic reset): back to
        what a newly constructed engine has, the construction-time caps, plan and names (so the
        next step's gradient order is agreed from the first rank again, by the ranks that were
        there and the ones that joined alike), keeping the gradients already reduced and not
        applied, and what the current set has accumulated. An exchange still on the wire belongs
        to the old session: it is forgotten, never waited for, and its step's gradient is lost
        (said in the log); after a commit or a restore nothing is on the wire. Returns how many
        steps' gradients were lost."""
        lost = self._abandon_in_flight()
        accumulated = [None if p.grad is None or p.grad.is_sparse else p.grad.detach().clone()
                       for p in self.params]
        saved = self.state_dict()
        for s in self._sets:  # what clear() does, with nothing left to wait for
            self.launcher.forget(s)
            s.sparse.clear()
            s.reset()
        self._pending.clear()
        self.planner.restore_caps()
        self.load_state_dict(saved)
        for p, g in zip(self.params, accumulated):
            if g is not None and p.grad is not None and p.grad.shape == g.shape:
                p.grad.copy_(g)
        if lost:
            log.logger.warning("Horovod was re-initialized with the gradients of %d step(s) still on "
                        "the wire; they are dropped (commit() waits for them, so a resize at a "
                        "commit loses none)", lost)
        return lost

    def _abandon_in_flight(self):
        """Every set with a collective of the old session: its exchanges forgotten (see
        restart()); a set not completely reduced leaves the queue. Returns those sets' count."""
        if self.deferred:
            self._next_forward.take()  # still queued in _pending; dropped below if incomplete
        lost = 0
        for s in self._sets:
            incomplete = any(b.exchange is not None for b in s.launched) \
                or any(callable(r) for r in s.sparse.values())
            for b in s.launched:
                if b.exchange is not None:
                    b.exchange.abandon()
                    b.exchange = None
            if incomplete or (s.launched and s not in self._pending):
                s.sparse.clear()
                self.launcher.forget(s)
                if s in self._pending:
                    self._pending.remove(s)
                    lost += 1
                s.reset()
        self._hook_error = None
        return lost
