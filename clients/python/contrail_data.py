"""Labelled data sets for contrail's Python examples and tests, as numpy arrays.

- IDX files (MNIST / Fashion-MNIST, gzipped or plain): read_idx_pair,
  read_fashion_mnist, and write_idx_pair for synthetic test data.
- .npz files with arrays `inputs` ([N] + the model's input shape, float32,
  raw values) and `labels` ([N], int64): read_npz, write_npz.

Pixels of IDX images are scaled to [0, 1], as contrail's trainer reads them
(common/idx_reader.h), and shaped [N, 1, rows, cols]: the input shape of the
built-in models. Needs numpy (Debian's python3-numpy); contrail_client does
not.
"""

import gzip
import os
import struct
from typing import Tuple

import numpy as np

_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def _open(path: str):
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_idx(path: str, magic: int) -> np.ndarray:
    with _open(path) as f:
        data = f.read()
    dims = magic & 0xFF
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(f"{path}: {len(data)} bytes is too short for an IDX header")
    found, = struct.unpack(">I", data[:4])
    if found != magic:
        raise ValueError(f"{path}: magic 0x{found:08x}, expected 0x{magic:08x}")
    shape = struct.unpack(f">{dims}I", data[4:header])
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise ValueError(f"{path}: header declares {size} bytes of payload, "
                         f"found {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(images_path: str, labels_path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(inputs float32 [N, 1, rows, cols] in [0, 1], labels int64 [N])."""
    images = _read_idx(images_path, _IMAGES_MAGIC)
    labels = _read_idx(labels_path, _LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_path} has {images.shape[0]} images but "
                         f"{labels_path} has {labels.shape[0]} labels")
    inputs = (images.astype(np.float32) / 255.0)[:, np.newaxis, :, :]
    return inputs, labels.astype(np.int64)


def read_fashion_mnist(data_dir: str, train: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """The train- or t10k- pair of the Fashion-MNIST file names in data_dir."""
    prefix = "train" if train else "t10k"
    return read_idx_pair(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"),
                         os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))


def write_idx_pair(data_dir: str, prefix: str, images: np.ndarray,
                   labels: np.ndarray) -> None:
    """Writes <data_dir>/<prefix>-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz.

    `images`: uint8 [N, rows, cols]; `labels`: [N] values in [0, 255].
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"images {images.shape} and labels {labels.shape} "
                         "are not [N, rows, cols] and [N]")
    os.makedirs(data_dir, exist_ok=True)
    with gzip.open(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">4I", _IMAGES_MAGIC, *images.shape))
        f.write(images.tobytes())
    with gzip.open(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">2I", _LABELS_MAGIC, labels.shape[0]))
        f.write(labels.tobytes())


def read_npz(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(inputs float32 [N, ...], labels int64 [N]) from a .npz file."""
    with np.load(path) as data:
        missing = {"inputs", "labels"} - set(data.files)
        if missing:
            raise ValueError(f"{path} lacks the arrays {sorted(missing)}")
        inputs = data["inputs"].astype(np.float32)
        labels = data["labels"].astype(np.int64)
    if labels.shape != (inputs.shape[0],):
        raise ValueError(f"{path}: inputs {inputs.shape} and labels {labels.shape} "
                         "disagree on the example count")
    return inputs, labels


def write_npz(path: str, inputs: np.ndarray, labels: np.ndarray) -> None:
    np.savez(path, inputs=np.asarray(inputs, dtype=np.float32),
             labels=np.asarray(labels, dtype=np.int64))


def load(path: str, train: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """A .npz file, or a folder of Fashion-MNIST-named IDX files."""
    if os.path.isdir(path):
        return read_fashion_mnist(path, train)
    return read_npz(path)
