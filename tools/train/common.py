"""Shared helpers for the training scripts: Fashion-MNIST loading, class names, paths."""
import gzip
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools"))

DATA_DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")

# id2label of model_index.json: the first synonym is the canonical name
ID2LABEL = {
    "0": "tshirt, top",
    "1": "trouser",
    "2": "pullover",
    "3": "dress",
    "4": "coat",
    "5": "sandal",
    "6": "shirt",
    "7": "sneaker",
    "8": "bag",
    "9": "ankle_boot, ankle boot",
}
CLASS_NAMES = [ID2LABEL[str(i)].split(",")[0].strip() for i in range(10)]


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist(split="train"):
    """uint8 images (N, 28, 28) and int64 labels (N,) of 'train' or 't10k'."""
    imgs = _read_idx(os.path.join(DATA_DIR, f"{split}-images-idx3-ubyte.gz"))
    labels = _read_idx(os.path.join(DATA_DIR, f"{split}-labels-idx1-ubyte.gz"))
    return imgs, labels.astype(np.int64)


def to_model_range(u8, pad=2):
    """uint8 (N, 28, 28) -> float32 tensor (N, 1, 28+2*pad, ...) in [-1, 1], padded with -1."""
    x = torch.from_numpy(u8.astype(np.float32) / 127.5 - 1.0)[:, None]
    if pad:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)
    return x


def crop28(x):
    """(N, 1, 32, 32) model images -> the central 28x28 the classifier sees."""
    if x.shape[-1] == 28:
        return x
    o = (x.shape[-1] - 28) // 2
    return x[..., o:o + 28, o:o + 28]


def log(msg):
    print(msg, flush=True)
