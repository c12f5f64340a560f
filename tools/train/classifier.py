"""Fashion-MNIST classifier used to judge generated images (accuracy and a Frechet distance on its
128-d penultimate features). Trains in a few minutes on 2 cores and saves
bench/quality/fmnist_classifier.safetensors.

  /usr/bin/python3 tools/train/classifier.py [--epochs 6] [--out PATH]
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import REPO, crop28, load_fmnist, log, to_model_range
from pyref import st

DEFAULT_PATH = os.path.join(REPO, "bench", "quality", "fmnist_classifier.safetensors")


class Classifier(nn.Module):
    """Input (N, 1, 28, 28) in [-1, 1] (32x32 inputs are center-cropped)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 32, 3, padding=1)
        self.c3 = nn.Conv2d(32, 64, 3, padding=1)
        self.c4 = nn.Conv2d(64, 64, 3, padding=1)
        self.b1 = nn.BatchNorm2d(32)
        self.b2 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)
        self.drop = nn.Dropout(0.3)

    def features(self, x):
        x = crop28(x)
        x = F.relu(self.c1(x))
        x = F.max_pool2d(F.relu(self.b1(self.c2(x))), 2)
        x = F.relu(self.c3(x))
        x = F.max_pool2d(F.relu(self.b2(self.c4(x))), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x):
        return self.fc2(self.drop(self.features(x)))


def load_classifier(path=DEFAULT_PATH):
    m = Classifier()
    missing, unexpected = m.load_state_dict(st.load(path), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return m.eval()


@torch.no_grad()
def predict(model, x, batch=500):
    """Logits and 128-d features for images x (N, 1, H, W) in [-1, 1]."""
    logits, feats = [], []
    for i in range(0, len(x), batch):
        f = model.features(x[i:i + batch])
        feats.append(f)
        logits.append(model.fc2(f))
    return torch.cat(logits), torch.cat(feats)


def frechet_distance(f1, f2):
    """Frechet distance between Gaussians fitted to two feature sets (N, d) (numpy float64)."""
    f1 = np.asarray(f1, dtype=np.float64)
    f2 = np.asarray(f2, dtype=np.float64)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    # trace of sqrt(s1 s2) via the eigenvalues of sqrt(s1) s2 sqrt(s1) (symmetric PSD)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=DEFAULT_PATH)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    torch.manual_seed(args.seed)
    t0 = time.time()
    xi, yi = load_fmnist("train")
    xt, yt = load_fmnist("t10k")
    x, y = to_model_range(xi, pad=0), torch.from_numpy(yi)
    xtest, ytest = to_model_range(xt, pad=0), torch.from_numpy(yt)
    m = Classifier()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    steps = args.epochs * (len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(args.seed)
    for ep in range(args.epochs):
        m.train()
        perm = torch.randperm(len(x), generator=g)
        tot = 0.0
        for i in range(len(x) // args.batch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb = x[idx]
            flip = torch.rand(len(xb), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            # small random translations (+-2 px) by padding and cropping
            dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()
            xb = F.pad(xb, (2, 2, 2, 2), value=-1.0)[..., dy:dy + 28, dx:dx + 28]
            loss = F.cross_entropy(m(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        m.eval()
        logits, _ = predict(m, xtest)
        acc = (logits.argmax(1) == ytest).float().mean().item()
        log(f"epoch {ep + 1}/{args.epochs} loss {tot / (len(x) // args.batch):.4f} "
            f"test acc {acc * 100:.2f}% ({time.time() - t0:.0f}s)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    st.save({k: v.contiguous() for k, v in m.state_dict().items()
             if not k.endswith("num_batches_tracked")}, args.out)
    log(f"saved {args.out}; test accuracy {acc * 100:.2f}%")


if __name__ == "__main__":
    main()
