#!/usr/bin/env python3
"""The PyTorch reference of data_parallel.cpp: torchvision's ResNet-50 + an ArcFace head (3997
classes, s = 64, m = 0.5) trained with DistributedDataParallel (gloo, the CPU backend) on random
images, in N processes of T threads each on this machine.

  data_parallel_torch.py SIZE GLOBAL_BATCH RANKS THREADS [STEPS]

Prints one line in the format of arcnet_bench_data_parallel (allreduce_wait_ms is not separable
from DDP's backward: printed as nan).
"""
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
import torchvision


class ArcFace(torch.nn.Module):
    def __init__(self, classes, dim, s=64.0, m=0.5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(classes, dim).uniform_(-1 / math.sqrt(dim), 1 / math.sqrt(dim)))
        self.s, self.m = s, m

    def forward(self, x, y):
        cos = F.linear(F.normalize(x), F.normalize(self.weight)).clamp(-1, 1)
        theta = torch.acos(cos.gather(1, y[:, None]))
        target = torch.where(theta <= math.pi - self.m, torch.cos(theta + self.m),
                             cos.gather(1, y[:, None]) - self.m * math.sin(self.m))
        logits = cos.scatter(1, y[:, None], target) * self.s
        return F.cross_entropy(logits, y)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torchvision.models.resnet50()
        self.backbone.fc = torch.nn.Identity()
        self.head = ArcFace(3997, 2048)

    def forward(self, x, y):
        return self.head(self.backbone(x), y)


def run(rank, ranks, threads, size, global_batch, steps, out):
    torch.set_num_threads(threads)
    batch = global_batch // ranks
    if ranks > 1:
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29531')
        dist.init_process_group('gloo', rank=rank, world_size=ranks)
    torch.manual_seed(1)
    model = Model()
    if ranks > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.02 * global_batch / 256, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    g = torch.Generator().manual_seed(100 + rank)
    images = torch.randn(batch, 3, size, size, generator=g)
    labels = torch.randint(0, 3997, (batch,), generator=g)
    times = []
    for s in range(steps + 1):
        if ranks > 1:
            dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        model(images, labels).backward()
        opt.step()
        if s > 0:
            times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    if ranks > 1:
        t = torch.tensor([median])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        median = t.item()
        dist.destroy_process_group()
    if rank == 0:
        out.put(median)


def main():
    size, global_batch, ranks, threads = (int(a) for a in sys.argv[1:5])
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    ctx = mp.get_context('spawn')
    out = ctx.Queue()
    procs = [ctx.Process(target=run, args=(r, ranks, threads, size, global_batch, steps, out)) for r in range(ranks)]
    for p in procs:
        p.start()
    median = out.get()
    for p in procs:
        p.join()
    floats = 25557032 - 2049000 + 3997 * 2048  # torchvision ResNet-50 without fc, plus the head
    print("ranks %d threads %d size %d global_batch %d img_s %.3f step_ms %.1f allreduce_wait_ms nan allreduce_mb %.1f"
          % (ranks, threads, size, global_batch, global_batch / median, 1e3 * median,
             floats * 4 / 1e6 if ranks > 1 else 0.0))


if __name__ == '__main__':
    main()
