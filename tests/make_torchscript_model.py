"""Writes a small TorchScript CNN for contrail's tests.

Usage: python3 make_torchscript_model.py OUT.pt

The model maps [N, 1, 28, 28] images to [N, 10] logits, has a batch norm
(so buffers travel too) and is initialised from a fixed seed, so the file is
the same on every run. Uses Debian's python3-torch, the same 1.13.1 as the
LibTorch the daemons link.
"""
import sys

import torch
from torch import nn


class TinyCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 5, stride=2)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 12 * 12, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


def main():
    torch.manual_seed(1)
    torch.jit.script(TinyCnn()).save(sys.argv[1])


if __name__ == "__main__":
    main()
