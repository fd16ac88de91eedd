"""Writes a small TorchScript CNN for contrail's tests.

Usage: python3 make_torchscript_model.py OUT.pt [--fail_after=N]

The model maps [N, 1, 28, 28] images to [N, 10] logits, has a batch norm
(so buffers travel too) and is initialised from a fixed seed, so the file is
the same on every run. With --fail_after=N its forward pass raises a
RuntimeError from the TorchScript interpreter once it has run N times in
training mode (each training step runs it once): the fault tests' way of
making a training step fail. Uses Debian's python3-torch, the same 1.13.1 as the
LibTorch the daemons link.
"""
import sys

import torch
from torch import nn


class TinyCnn(nn.Module):
    fail_after: int
    training_calls: int

    def __init__(self, fail_after=-1):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 5, stride=2)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 12 * 12, 10)
        self.fail_after = fail_after
        self.training_calls = 0

    def forward(self, x):
        if self.training and self.fail_after >= 0:
            if self.training_calls >= self.fail_after:
                raise RuntimeError("injected fault: training step failed")
            self.training_calls += 1
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


def main():
    fail_after = -1
    for arg in sys.argv[2:]:
        if not arg.startswith("--fail_after="):
            sys.exit(f"unknown argument {arg}")
        fail_after = int(arg.split("=", 1)[1])
    torch.manual_seed(1)
    torch.jit.script(TinyCnn(fail_after)).save(sys.argv[1])


if __name__ == "__main__":
    main()
