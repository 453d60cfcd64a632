#!/usr/bin/env python3
"""The training input pipeline of benchmarks/data/pipeline.cpp in Pillow + numpy, for comparison:
decode a JPEG from memory (Image.open + convert("RGB")), resize to 512x512 (BILINEAR, antialiased,
as torchvision/mmpretrain on PIL images), random crop 448, random horizontal flip, then
(x - mean) / std as float32 (mmpretrain's ImageNet statistics) in its fast numpy form. Prints the time of each stage,
then images per wall-clock second and per CPU second (the processes' own CPU time) in 1 process and in a
multiprocessing pool of N processes.

usage: pipeline_pillow.py [--jpeg FILE] [--make FILE] [--seconds S] [--processes N] [--blocks-max N]
  --make FILE      writes the photo-like 600x800 (width x height) quality-90 JPEG both benchmarks use, and exits
  --blocks-max N   lets Pillow keep N freed image blocks (Image.core.set_blocks_max; default 0, as
                   torchvision / mmpretrain run it): fewer page faults, a faster decode + convert("RGB")
"""
import argparse
import io
import multiprocessing as mp
import os
import random
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


def photo(w, h, seed):
    """Gradients, soft discs and noise: compresses like a photograph (as pipeline.cpp's)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([40 + 170 * x / w, 30 + 190 * y / h, 60 + 150 * (x + y) / (w + h)], -1)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.3) * min(w, h)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        img += rng.uniform(-60, 60, 3) * np.clip(1 - d / r, 0, 1)[..., None]
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))


def decode(data):
    return Image.open(io.BytesIO(data)).convert("RGB")


def transform(img, rng):
    img = img.resize((512, 512), Image.BILINEAR)
    top, left = rng.randrange(512 - 448 + 1), rng.randrange(512 - 448 + 1)
    img = img.crop((left, top, left + 448, top + 448))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return normalise(img)


_tiles = {}


def normalise(img):
    """(x - mean) / std as float32, (H, W, 3). The mean and std are tiled along a row so that numpy
    works on rows of W * 3 values: broadcasting (H, W, 3) against (3,) runs an inner loop of
    length 3 and costs 10-20x more (measured 11-17 ms against 0.8 ms for 448x448)."""
    w, h = img.size
    if w not in _tiles:
        _tiles[w] = (np.tile(MEAN, w), np.tile(STD, w))
    mean, std = _tiles[w]
    x = np.asarray(img, dtype=np.float32).reshape(h, w * 3)
    x -= mean
    x /= std
    return x.reshape(h, w, 3)


def run_for(data, seconds, seed):
    """(images, wall seconds, CPU seconds of this process) for about `seconds` of work."""
    rng = random.Random(seed)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        transform(decode(data), rng)
        n += 1
    return n, time.perf_counter() - t0, time.process_time() - c0


def worker(args):
    data, seconds, seed, start_at = args
    while time.time() < start_at:  # start together
        time.sleep(0.001)
    n, _, cpu = run_for(data, seconds, seed)
    return n, cpu


def ms_per_call(f, min_iters=20, min_seconds=0.5):
    """CPU milliseconds per call of f."""
    f()
    n, t0 = 0, time.process_time()
    while n < min_iters or time.process_time() - t0 < min_seconds:
        f()
        n += 1
    return (time.process_time() - t0) * 1e3 / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jpeg")
    ap.add_argument("--make")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--processes", type=int, default=os.cpu_count())
    ap.add_argument("--blocks-max", type=int, default=0)
    a = ap.parse_args()
    if a.blocks_max:
        Image.core.set_blocks_max(a.blocks_max)  # inherited by the pool's forked processes
    if a.make:
        photo(600, 800, 1).save(a.make, quality=90)
        return 0
    if a.jpeg:
        data = open(a.jpeg, "rb").read()
    else:
        buf = io.BytesIO()
        photo(600, 800, 1).save(buf, "JPEG", quality=90)
        data = buf.getvalue()
    img = decode(data)
    x = transform(img, random.Random(1))
    assert x.shape == (448, 448, 3) and x.dtype == np.float32
    print(f"input: {img.size[0]}x{img.size[1]} JPEG, {len(data)} bytes; Pillow {Image.__version__}, numpy {np.__version__}; "
          f"blocks_max {a.blocks_max}")

    rng = random.Random(3)
    resized = img.resize((512, 512), Image.BILINEAR)
    cropped = resized.crop((10, 20, 458, 468))
    t_decode = ms_per_call(lambda: decode(data))
    t_resize = ms_per_call(lambda: img.resize((512, 512), Image.BILINEAR))
    t_crop = ms_per_call(lambda: resized.crop((10, 20, 458, 468)).transpose(Image.FLIP_LEFT_RIGHT))
    t_norm = ms_per_call(lambda: normalise(cropped))
    assert np.allclose(normalise(cropped), (np.asarray(cropped, dtype=np.float32) - MEAN) / STD)
    print(f"stages (1 process, CPU ms): decode {t_decode:.3f}  resize {t_resize:.3f}  crop+flip {t_crop:.3f}  "
          f"normalise {t_norm:.3f}  sum {t_decode + t_resize + t_crop + t_norm:.3f}")

    n, elapsed, cpu = run_for(data, a.seconds, 0)
    print(f"pillow_pipeline processes=1 img_s={n / elapsed:.1f} img_per_cpu_s={n / cpu:.1f}")
    if a.processes > 1:
        start_at = time.time() + 0.5
        with mp.Pool(a.processes) as pool:
            t0 = time.time()
            results = pool.map(worker, [(data, a.seconds, s, start_at) for s in range(a.processes)])
            wall = time.time() - max(t0, start_at)
        n = sum(r[0] for r in results)
        print(f"pillow_pipeline processes={a.processes} img_s={n / wall:.1f} "
              f"img_per_cpu_s={n / sum(r[1] for r in results):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
