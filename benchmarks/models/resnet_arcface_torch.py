"""The PyTorch side of benchmarks/models/compare_cpu.sh: torchvision ResNet-50 + an ArcFace head
(3997 classes, s = 64, m = 0.5), inference and SGD-Nesterov training steps, images per second.
Run with Debian's PyTorch: /usr/bin/python3 resnet_arcface_torch.py SIZE BATCH [ITERS] [DEVICE] [PRECISION] [compile]
DEVICE cpu (default) or cuda; PRECISION on cuda: fp32 (TF32 off), tf32, or bf16 (autocast, channels_last,
PyTorch's usual fast setting); `compile` wraps the backbone in torch.compile (PyTorch 2; the warm-up
iteration then includes the compilation). benchmarks/gpu/run_all.sh runs the cuda side."""
import contextlib
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

size, batch = int(sys.argv[1]), int(sys.argv[2])
iters = int(sys.argv[3]) if len(sys.argv) > 3 else 3
device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
precision = sys.argv[5] if len(sys.argv) > 5 else "fp32"
compiled = len(sys.argv) > 6 and sys.argv[6] == "compile"
C, S, M = 3997, 64.0, 0.5


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm_product = nn.Linear(2048, C, bias=False)

    def forward(self, x, target):
        cos = F.linear(F.normalize(x), F.normalize(self.norm_product.weight))
        phi = torch.cos(torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7)) + M)
        phi = torch.where(cos > math.cos(math.pi - M), phi, cos - math.sin(M) * M)
        onehot = F.one_hot(target, C).to(cos.dtype)
        return S * (onehot * phi + (1 - onehot) * cos)


torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
torch.manual_seed(1)
if device == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.benchmark = True
backbone = torchvision.models.resnet50()
backbone.fc = nn.Identity()
head = Head()
fmt = torch.channels_last if precision == "bf16" else torch.contiguous_format
backbone.to(device, memory_format=fmt)
head.to(device)
params = list(backbone.parameters()) + list(head.parameters())
if compiled:
    backbone = torch.compile(backbone)
opt = torch.optim.SGD(params, lr=0.02 * batch / 256, momentum=0.9, nesterov=True, weight_decay=5e-4)
x = torch.randn(batch, 3, size, size).to(device, memory_format=fmt)
target = torch.randint(0, C, (batch,)).to(device)


def autocast():
    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync():
    if device == "cuda":
        torch.cuda.synchronize()


def median(v):
    return sorted(v)[len(v) // 2]


backbone.train()
train_t = []
for i in range(iters + 1):
    sync()
    t0 = time.perf_counter()
    opt.zero_grad()
    with autocast():
        feat = backbone(x)
    loss = F.cross_entropy(head(feat.float(), target), target)  # the head in fp32, as arcnet's
    loss.backward()
    opt.step()
    sync()
    if i:
        train_t.append(time.perf_counter() - t0)
backbone.eval()
infer_t = []
with torch.no_grad():
    for i in range(iters + 1):
        sync()
        t0 = time.perf_counter()
        with autocast():
            F.normalize(backbone(x).float())
        sync()
        if i:
            infer_t.append(time.perf_counter() - t0)
peak = " peak_in_use_mb=%.1f" % (torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else ""
print("pytorch device=%s precision=%s compile=%d size=%d batch=%d loss=%.3f infer_img_s=%.3f train_img_s=%.3f "
      "threads=%d%s" % (device, precision, compiled, size, batch, loss.item(), batch / median(infer_t),
                        batch / median(train_t), torch.get_num_threads(), peak))
