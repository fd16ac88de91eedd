"""Writes small TorchScript models for contrail's tests.

Usage: python3 make_torchscript_model.py OUT.pt [--fail_after=N]
       python3 make_torchscript_model.py OUT.pt --mlp [--no_attributes]

By default the model is a CNN that maps [N, 1, 28, 28] images to [N, 10]
logits and has a batch norm (so buffers travel too). With --fail_after=N its
forward pass raises a RuntimeError from the TorchScript interpreter once it
has run N times in training mode (each training step runs it once): the
fault tests' way of making a training step fail.

With --mlp it is an MLP on flat vectors of 16 features scoring 3 classes,
16 -> 32 -> 3, which normalises its own inputs with fixed buffers
input_mean (0.5) and input_scale (2.0) that contrail must leave alone. It
declares its signature in the attributes input_shape = [16] and
num_classes = 3, unless --no_attributes leaves them out (the trainer's
--input_shape and --num_classes then say them).

Every model is initialised from a fixed seed, so a file is the same on every
run. Uses Debian's python3-torch, the same 1.13.1 as the LibTorch the daemons
link.
"""
import sys
from typing import List

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


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("input_mean", torch.full((16,), 0.5))
        self.register_buffer("input_scale", torch.full((16,), 2.0))
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        x = (x - self.input_mean) * self.input_scale
        return self.fc2(torch.relu(self.fc1(x)))


class DeclaredMlp(Mlp):
    input_shape: List[int]
    num_classes: int

    def __init__(self):
        super().__init__()
        self.input_shape = [16]
        self.num_classes = 3


def main():
    fail_after = -1
    mlp = False
    attributes = True
    for arg in sys.argv[2:]:
        if arg.startswith("--fail_after="):
            fail_after = int(arg.split("=", 1)[1])
        elif arg == "--mlp":
            mlp = True
        elif arg == "--no_attributes":
            attributes = False
        else:
            sys.exit(f"unknown argument {arg}")
    torch.manual_seed(1)
    if mlp:
        model = DeclaredMlp() if attributes else Mlp()
    else:
        model = TinyCnn(fail_after)
    torch.jit.script(model).save(sys.argv[1])


if __name__ == "__main__":
    main()
