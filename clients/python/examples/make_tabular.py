"""Makes a tabular example for contrail: a TorchScript MLP on flat feature
vectors and a synthetic data set for it.

    /usr/bin/python3 clients/python/examples/make_tabular.py \
        --model=/tmp/tabular/mlp.pt --train=/tmp/tabular/train.npz \
        --test=/tmp/tabular/test.npz

The model maps [N, features] raw feature vectors to [N, classes] logits. It
normalises its inputs itself: the mean and standard deviation of each
feature over the training set are buffers of the module (they travel to the
servers with the model and are never trained), so producers and clients
send raw values. The module carries its per-example input shape and class
count as attributes `input_shape` (List[int], here [features]) and
`num_classes` (int), from which contrail's trainer learns what examples to
accept and servers what batches to answer.

The data: each class is a Gaussian cloud around its own centre in a
standardised space, then every feature is scaled and shifted by its own
factor (between 0.1 and 100) and offset (between -500 and 500), so that a
model without normalisation would learn slowly. The .npz files hold
`inputs` (float32 [N, features]) and `labels` (int64 [N]); see
clients/python/contrail_data.py. A fixed --seed writes the same files.

Uses Debian's python3-torch (1.13.1, the version of the LibTorch the
daemons link) and numpy.
"""

import argparse
import os
from typing import List

import numpy as np
import torch
from torch import nn


class TabularMlp(nn.Module):
    """Normalise with stored statistics, one hidden ReLU layer, logits."""

    input_shape: List[int]
    num_classes: int

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int,
                 classes: int):
        super().__init__()
        features = mean.numel()
        self.register_buffer("mean", mean.reshape(features).float())
        self.register_buffer("std", std.reshape(features).float())
        self.hidden = nn.Linear(features, hidden)
        self.out = nn.Linear(hidden, classes)
        self.input_shape = [features]
        self.num_classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.out(torch.relu(self.hidden(x)))


def make_data(count: int, centres: np.ndarray, scale: np.ndarray,
              offset: np.ndarray, rng: np.random.Generator):
    classes, features = centres.shape
    labels = rng.integers(0, classes, size=count)
    standard = centres[labels] + rng.normal(0.0, 1.0, size=(count, features))
    inputs = standard * scale + offset
    return inputs.astype(np.float32), labels.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tabular_mlp.pt", help="TorchScript file to write")
    parser.add_argument("--train", default="tabular_train.npz",
                        help="training examples to write (.npz)")
    parser.add_argument("--test", default="tabular_test.npz",
                        help="held-out examples to write (.npz)")
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--train_count", type=int, default=4000)
    parser.add_argument("--test_count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.features < 1 or args.classes < 2 or args.hidden < 1:
        parser.error("need --features >= 1, --classes >= 2 and --hidden >= 1")
    if args.train_count < 2 or args.test_count < 0:
        parser.error("need --train_count >= 2 and --test_count >= 0")

    rng = np.random.default_rng(args.seed)
    centres = rng.normal(0.0, 0.6, size=(args.classes, args.features))
    scale = 10.0 ** rng.uniform(-1.0, 2.0, size=args.features)
    offset = rng.uniform(-500.0, 500.0, size=args.features)
    train_inputs, train_labels = make_data(args.train_count, centres, scale, offset, rng)
    test_inputs, test_labels = make_data(args.test_count, centres, scale, offset, rng)

    mean = torch.from_numpy(train_inputs.astype(np.float64).mean(axis=0))
    std = torch.from_numpy(train_inputs.astype(np.float64).std(axis=0)).clamp_min(1e-6)
    torch.manual_seed(args.seed)
    model = torch.jit.script(TabularMlp(mean, std, args.hidden, args.classes))

    # Under `bazel run`, relative paths are relative to where it was called.
    base = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    args.model, args.train, args.test = (
        os.path.join(base, path) for path in (args.model, args.train, args.test))
    for path in (args.model, args.train, args.test):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(args.model)
    np.savez(args.train, inputs=train_inputs, labels=train_labels)
    np.savez(args.test, inputs=test_inputs, labels=test_labels)
    print(f"wrote {args.model}: input_shape {model.input_shape}, "
          f"{model.num_classes} classes, "
          f"{sum(p.numel() for p in model.parameters())} parameters; "
          f"{args.train} ({args.train_count} examples), "
          f"{args.test} ({args.test_count} examples)")


if __name__ == "__main__":
    main()
