"""Models of the benchmarks, defined here (nothing downloaded); inputs are synthetic."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.tasks import CharMLP

# The character-level text model of the time-to-loss benchmark (time_to_loss.py trains it on
# real text; here it gets synthetic characters): printable ASCII and newline, 3 tanh layers of
# 512 (0.7M parameters), so a step's compute (5-10 ms on one core) is not negligible against
# the wire at 10 Gbit/s.
TEXT_VOCAB, TEXT_SHAPE = 96, dict(hidden_layers=3, width=512)


class CNN(nn.Module):
    """A VGG-style CNN for 32x32 inputs, 5.4M parameters, most of them in the first
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


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.skip(x))


class ResNet(nn.Module):
    """A ResNet-style CNN for 32x32 inputs (ResNet-18's layout at half width, 2.8M parameters in
    62 tensors): compute-heavy, many small gradients."""

    def __init__(self, classes=10, width=32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        layers, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            layers += [Block(cin, cout, 1 if i == 0 else 2), Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


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


class LM(nn.Module):
    """A small decoder-only transformer language model (4 layers, d 256, vocabulary 8192,
    context 64; 7.4M parameters, 4.2M of them in the untied embedding and output layer whose
    gradients are the last and first of backward)."""

    def __init__(self, vocab=8192, d=256, layers=4, heads=4, ctx=64):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(ctx, d))
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(ctx))

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos[:t]
        x = self.blocks(x, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(x))


MODELS = {"cnn": CNN, "vgg": CNN, "resnet": ResNet, "mlp": MLP, "lm": LM,
          "chars": lambda: CharMLP(TEXT_VOCAB, **TEXT_SHAPE)}


def inner_optimizer(name, params, ranks):
    """The optimizer model `name` is timed with: SGD with momentum, AdamW for the text model
    (as time_to_loss.py trains it)."""
    if name == "chars":
        return torch.optim.AdamW(params, lr=1e-3)
    return torch.optim.SGD(params, lr=0.01 * ranks, momentum=0.9)
# Samples per rank per step unless asked otherwise: 8 sequences (512 tokens) keep a step of the
# LM near the ResNet's on one core.
BATCH = {"lm": 8}


def make_batch(name, batch, generator=None):
    """Synthetic inputs and targets for model `name`: 32x32 images and 10 classes, token
    sequences of the LM's context length (targets: the next token), or characters."""
    if name == "chars":
        idx = torch.randint(0, TEXT_VOCAB, (batch, CharMLP.context + 1), generator=generator)
        return idx[:, :-1], idx[:, -1]
    if name == "lm":
        idx = torch.randint(0, 8192, (batch, 65), generator=generator)
        return idx[:, :-1], idx[:, 1:]
    return (torch.randn(batch, 3, 32, 32, generator=generator),
            torch.randint(0, 10, (batch,), generator=generator))


def loss_fn(output, target):
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))
