#!/usr/bin/python3
"""The demo's recipe in PyTorch (Debian's 1.13), for a side-by-side run with arcnet-train:
CIFAR-style ResNet-14 (3x3 stem, stages of 2 basic blocks at 16-32-64 channels, global average pool)
+ ArcFace head on Fashion-MNIST (28x28, grey replicated to RGB), SGD with Nesterov momentum,
per-iteration linear warm-up then cosine to 0, random crop (pad 2) + horizontal flip. It trains
for a wall-clock budget: it measures its own speed over the first iterations and plans the
schedule (cosine included) to end when the budget does, so a slower framework gets fewer
epochs but a complete schedule. Then it evaluates retrieval exactly as arcnet-test does (the
10,000 test images as queries against the 60,000 training images, cosine similarity) and
prints one line: img/s and Recall@1.

  fashion_mnist_torch.py --budget SECONDS [--blocks 2] [--threads 2] [--root DIR]
"""
import argparse
import gzip
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(root, prefix):
    x = read_idx(os.path.join(root, prefix + "-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(root, prefix + "-labels-idx1-ubyte.gz"))
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(nn.Module):
    def __init__(self, blocks, width=16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, w in enumerate([width, 2 * width, 4 * width]):
            stage = []
            for b in range(blocks):
                stage.append(BasicBlock(cin, w, 2 if (b == 0 and i > 0) else 1))
                cin = w
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.feature_dim = cin
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=(2, 3))


class ArcFace(nn.Module):
    """mmpretrain's ArcFaceClsHead (k = 1): s * cos(theta + m), fallback cos - m sin(m)."""

    def __init__(self, features, classes, s, m):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, features))
        nn.init.xavier_uniform_(self.weight)
        self.s, self.m = s, m
        self.th, self.mm = math.cos(math.pi - m), math.sin(math.pi - m) * m

    def forward(self, feats, target):
        cos = F.linear(F.normalize(feats), F.normalize(self.weight))
        sin = torch.sqrt((1.0 - cos * cos).clamp(0, 1))
        phi = cos * math.cos(self.m) - sin * math.sin(self.m)
        phi = torch.where(cos > self.th, phi, cos - self.mm)
        onehot = F.one_hot(target, cos.shape[1]).to(cos.dtype)
        return F.cross_entropy(self.s * (onehot * phi + (1 - onehot) * cos), target)


def augment(x, gen):
    """Random crop 28 from the image padded by 2 (zeros), then flip with p = 0.5; x is (N, 3, 28, 28)."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    idx = torch.arange(28)
    rows = (dy[:, None] + idx[None, :])[:, None, :, None].expand(n, 3, 28, 32)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + idx[None, :])[:, None, None, :].expand(n, 3, 28, 28)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, required=True, help="training seconds")
    ap.add_argument("--blocks", type=int, default=2, help="per stage: 2 = ResNet-14, the demo's")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1, help="at this batch size")
    ap.add_argument("--scale", type=float, default=16)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--warmup", type=float, default=0.5 / 6, help="fraction of the iterations (the demo: 0.5 of 6 epochs)")
    ap.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    mean, std = 72.94, 90.02
    xtr, ytr = load(a.root, "train")
    xte, yte = load(a.root, "t10k")
    to_input = lambda x: ((x.float() - mean) / std)[:, None].expand(-1, 3, -1, -1).contiguous()
    xtr_f, xte_f = to_input(xtr), to_input(xte)

    net = CifarResNet(a.blocks, a.width)
    head = ArcFace(net.feature_dim, 10, a.scale, a.margin)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)

    n = xtr.shape[0]
    per_epoch = n // a.batch
    planned, it, done_images = None, 0, 0
    t0 = time.time()
    probe_iters = 10
    epoch = 0
    while True:
        perm = torch.randperm(n, generator=gen)
        for b in range(per_epoch):
            if planned is not None and it >= planned:
                break
            if it == probe_iters or (it > probe_iters and it % 100 == 0):
                # plan the whole schedule from the speed so far, and re-plan as it settles, so
                # that training ends at the budget (a plan from the first 10 iterations alone
                # ended runs up to 80 s early or late)
                rate = it / (time.time() - t0)
                planned = max(it + 1, int(rate * a.budget))
            total = planned if planned is not None else 10 ** 9
            warm = max(1, int(a.warmup * total)) if planned is not None else 10 ** 9
            if it < warm:
                lr = a.lr * (0.01 + 0.99 * it / warm)
            else:
                lr = a.lr * 0.5 * (1 + math.cos(math.pi * (it - warm) / max(1, total - warm)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[b * a.batch:(b + 1) * a.batch]
            x = augment(xtr_f[idx], gen)
            loss = head(net(x), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            done_images += len(idx)
        else:
            epoch += 1
            continue
        break
    train_seconds = time.time() - t0

    net.eval()
    with torch.no_grad():
        emb = lambda x: torch.cat([F.normalize(net(x[i:i + 1000])) for i in range(0, x.shape[0], 1000)])
        q, g = emb(xte_f), emb(xtr_f)
        hits = 0
        for i in range(0, q.shape[0], 1000):
            top = (q[i:i + 1000] @ g.T).argmax(dim=1)
            hits += (ytr[top] == yte[i:i + 1000]).sum().item()
    print("pytorch %s threads=%d train_s=%.1f iterations=%d epochs=%.2f img_s=%.1f recall@1=%.2f" % (
        torch.__version__, a.threads, train_seconds, it, done_images / n, done_images / train_seconds,
        100.0 * hits / q.shape[0]))


if __name__ == "__main__":
    main()
