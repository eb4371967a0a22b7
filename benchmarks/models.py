"""Models of the benchmarks, defined here (nothing downloaded); inputs are synthetic."""
import torch.nn as nn
import torch.nn.functional as F


class CNN(nn.Module):
    """A VGG-style CNN for 32x32 inputs, 5.3M parameters, most of them in the first
    fully-connected layer: communication-heavy, like the large classifiers of data-parallel
    training."""

    def __init__(self, classes=10):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1),
                                    nn.Conv2d(64, 128, 3, padding=1)])
        self.fc1 = nn.Linear(128 * 4 * 4, 2560)
        self.fc2 = nn.Linear(2560, classes)

    def forward(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class MLP(nn.Module):
    """A deep MLP: many mid-sized gradients, cheap compute."""

    def __init__(self, width=1024, depth=6, classes=10):
        super().__init__()
        self.layers = nn.Sequential(*[m for _ in range(depth)
                                      for m in (nn.Linear(width, width), nn.ReLU())])
        self.inp = nn.Linear(3 * 32 * 32, width)
        self.out = nn.Linear(width, classes)

    def forward(self, x):
        return self.out(self.layers(F.relu(self.inp(x.flatten(1)))))


MODELS = {"cnn": CNN, "mlp": MLP}
