"""What a GradientEngine saves and restores: the bucket sets still pending and every set's codec
state, in the order the sets take gradients (gradient_engine.py mixes this in)."""


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
