"""A PyTorch expression network, as researchers write them: the model class of the state_dict checkpoints here.

``ExpressionCNN``: a stem (3x3 convolution, BatchNorm, ReLU), three residual
blocks (two 3x3 convolutions with BatchNorm; a 1x1 stride-2 convolution with
BatchNorm on the shortcut where a block halves the maps), global average
pooling and a linear classifier. Each block's forward ends in a functional
``F.relu(out + shortcut)``, after its last submodule, which is where
ferjax's torch importer must cut when asked for that block. ``final`` adds
what many released models end in: ``"softmax"`` (an ``nn.Softmax`` module)
or ``"log_softmax"`` (``F.log_softmax`` in forward); ferjax leaves it out.

ferjax imports it with ``-S network.model=models.torch.expression_cnn:ExpressionCNN``
(``docs/networks.md``); ``benchmarks/foreign_networks.py`` times it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """A residual block: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ExpressionCNN(nn.Module):
    """Stem, three residual blocks (widths ``width``, 2 ``width``, 4 ``width``; the last two stride 2), pooling,
    a linear classifier over ``num_classes``; optionally a final ``softmax`` or ``log_softmax``."""

    def __init__(self, num_classes=8, channels=1, width=16, final=None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2),
                                    Block(2 * width, 4 * width, 2))
        self.fc = nn.Linear(4 * width, num_classes)
        self.final = final
        self.softmax = nn.Softmax(dim=1) if final == "softmax" else None

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = self.fc(x.mean(dim=(2, 3)))
        if self.final == "log_softmax":
            return F.log_softmax(x, dim=1)
        return self.softmax(x) if self.softmax is not None else x


def randomise(model, seed=0):
    """Random but informative weights: BatchNorm statistics and scales drawn away from (0, 1), so that a test
    sees them used; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()
