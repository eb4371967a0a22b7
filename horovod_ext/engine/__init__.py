"""The gradient bucket engine (sync and delayed mode) and the flat parameter buffers (the
averaging modes). The way of a gradient, as verbs:

  autograd accumulates into ``p.grad``, a view of its bucket  (bucket.py)
  -> ``GradientEngine._on_grad_ready`` (post-accumulate hook)  (gradient_engine.py)
  -> ``_mark_ready``: the bucket's last gradient of the step is final
  -> the launcher (``Fifo`` at once, or ``Priority`` in a window)  (priority.py)
  -> ``_launch``: taps' on_launch, ``Bucket.start_exchange`` (the codec's first collective)
     (a gathered sparse gradient goes to ``SparseLane.launch`` instead)  (sparse.py)
  -> ``close_step`` (from ``synchronize()``): launches what no hook launched, queues the set
  -> ``wait``: unpacks the reduced buckets, taps' on_reduced
  -> ``_finish``: taps' on_apply (statistics, non-finite check, delay compensation)  (taps.py)
  -> the inner step applies ``p.grad``; under the ``forward`` schedule (schedule.py) the next
     forward applies it bucket by bucket instead (overlap.py).

Which gradients share a bucket is a pure function (plan.py), rebuilt once from the order in
which gradients really became ready (planner.py); ``staleness + 1`` bucket sets form a ring
(bucket_set.py). Every flat buffer uses one offset layout (codecs/view.py).
"""
