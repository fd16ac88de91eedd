"""Writes a TorchScript model that misbehaves at inference, for the server's
fault tests: a linear map of [N, 1, 28, 28] images to [N, 10] logits whose
forward pass raises a RuntimeError from the TorchScript interpreter on a
batch of 3, and answers a batch of 5 with logits of the wrong width (4).
Other batches are served normally, so that the module loads (contrail
probes it with a batch of 2) and a server can be seen to go on serving.

Usage: python3 make_raising_model.py OUT.pt

Initialised from a fixed seed, with Debian's python3-torch (the LibTorch
the daemons link is the same 1.13.1).
"""
import sys

import torch
from torch import nn


class RaisingLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        if x.size(0) == 3:
            raise RuntimeError("injected fault: this module refuses batches of 3")
        logits = self.fc(torch.flatten(x, 1))
        if x.size(0) == 5:
            return logits[:, :4]
        return logits


def main():
    torch.manual_seed(3)
    torch.jit.script(RaisingLinear()).save(sys.argv[1])


if __name__ == "__main__":
    main()
